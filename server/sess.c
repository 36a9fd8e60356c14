/*
 * WebSocket sessions on the annolive.v1.json and annolive.v1.msgpack
 * subprotocols.
 *
 * Incoming frames are assembled up to the message size limit, decoded once
 * and dispatched. Outgoing messages are shared reference-counted buffers
 * that each session queues by reference. A message queued while nothing
 * waits is written at once, which saves the two poll changes and the loop
 * turn of a WRITEABLE callback. Otherwise a WRITEABLE callback writes
 * queued messages back to back until libwebsockets keeps part of one.
 */
#include "sess.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "map.h"
#include "metrics.h"
#include "room.h"

#define SESS_WRITE_CLOSE 4     /* lws' private LWS_WRITE_CLOSE */
#define SLOW_CLOSE_GRACE_S 2  /* seconds a slow client gets to take the close */
#define CLOSE_REPLY_S 2       /* seconds a client gets to reply to a close */
#define WRITE_BURST 32        /* messages written in one turn at most */

static const config_t *cfg;
static sess_t *sessions;
static size_t nsessions;
static map_t per_peer; /* client address -> open sessions, as a pointer */
static uint64_t next_id = 1;

void sess_configure(const config_t *config)
{
    cfg = config;
}

size_t sess_count(void)
{
    return nsessions;
}

size_t sess_count_from(const char *peer)
{
    return (size_t)(uintptr_t)map_get(&per_peer, peer);
}

static void count_peer(const char *peer, int delta)
{
    size_t n = sess_count_from(peer) + (size_t)(ssize_t)delta;

    if (n == 0)
        map_remove(&per_peer, peer);
    else if (map_put(&per_peer, peer, (void *)(uintptr_t)n, NULL) < 0)
        log_warn("sess", "cannot count the connections of %s", peer);
}

/* Takes nops tokens from the connection's bucket, refilled at
 * cfg->rate_ops per second up to cfg->rate_burst. Returns 0, or -EAGAIN
 * when the bucket contains fewer. */
static int take_rate(sess_t *s, size_t nops)
{
    uint64_t now = (uint64_t)lws_now_usecs();
    double refill = (double)(now - s->rate_at_us) / 1e6 * cfg->rate_ops;

    s->rate_at_us = now;
    s->rate_tokens += refill;
    if (s->rate_tokens > cfg->rate_burst)
        s->rate_tokens = cfg->rate_burst;
    if ((double)nops > s->rate_tokens)
        return -EAGAIN;
    s->rate_tokens -= (double)nops;
    return 0;
}

static void drop_queue(sess_t *s)
{
    while (s->out_head) {
        sess_out_t *o = s->out_head;

        s->out_head = o->next;
        buf_unref(o->buf);
        free(o);
    }
    s->out_tail = NULL;
    s->out_bytes = 0;
    s->paced_bytes = 0;
}

void sess_close(sess_t *s, int code, const char *reason)
{
    if (s->close_code)
        return;
    s->close_code = code;
    snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason);
    lws_callback_on_writable(s->wsi);
}

size_t sess_close_all(void)
{
    for (sess_t *s = sessions; s; s = s->next)
        sess_close(s, LWS_CLOSE_STATUS_GOINGAWAY, "server is stopping");
    return nsessions;
}

static void enqueue(sess_t *s, buf_t *b, int paced);

void sess_send(sess_t *s, buf_t *b)
{
    size_t counted = s->out_bytes - s->paced_bytes;

    if (s->close_code)
        return;
    /* An empty queue takes any message, so a snapshot larger than the
     * limit still reaches a client that reads. Paced messages do not count
     * against the limit: their producers wait for the queue to drain. */
    if (s->out_bytes > 0 && counted + b->len > cfg->max_queue) {
        log_warn("sess", "c%" PRIu64 ": closing a slow client: %zu bytes "
                 "queued, limit %zu", s->id, s->out_bytes, cfg->max_queue);
        drop_queue(s);
        metrics.slow_closes++;
        sess_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                   "outbound queue over its limit");

        /* A client that reads nothing never makes the socket writeable
         * for the close frame, so the connection is cut after a grace. */
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_REASON_BASE,
                        SLOW_CLOSE_GRACE_S);
        return;
    }
    enqueue(s, b, 0);
}

void sess_send_paced(sess_t *s, buf_t *b)
{
    if (!s->close_code)
        enqueue(s, b, 1);
}

int sess_backlogged(const sess_t *s)
{
    return s->out_bytes > cfg->max_queue / 2;
}

int sess_on_drain(sess_t *s, void (*cb)(sess_t *s, void *arg), void *arg)
{
    sess_drain_t *d = malloc(sizeof(*d));

    if (!d)
        return -ENOMEM;
    d->cb = cb;
    d->arg = arg;
    d->next = s->drains;
    s->drains = d;
    return 0;
}

/* Runs and removes the drain callbacks. Callbacks added meanwhile wait for
 * the next drain. */
static void drained(sess_t *s)
{
    sess_drain_t *d = s->drains;

    s->drains = NULL;
    while (d) {
        sess_drain_t *next = d->next;

        d->cb(s, d->arg);
        free(d);
        d = next;
    }
}

static int flush_queue(sess_t *s, struct lws *wsi);

/* A message can go out at once when nothing waits before it and no close
 * is under way. */
static int can_write_now(const sess_t *s)
{
    return s->out_head == s->out_tail && !s->writing && !s->closing &&
           !s->close_code && !lws_partial_buffered(s->wsi);
}

static void enqueue(sess_t *s, buf_t *b, int paced)
{
    sess_out_t *o = malloc(sizeof(*o));

    if (!o) {
        sess_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return;
    }
    o->next = NULL;
    o->buf = buf_ref(b);
    o->paced = paced;
    if (s->out_tail)
        s->out_tail->next = o;
    else
        s->out_head = o;
    s->out_tail = o;
    s->out_bytes += b->len;
    if (paced)
        s->paced_bytes += b->len;
    if (can_write_now(s)) {
        if (flush_queue(s, s->wsi) < 0) {
            s->close_code = LWS_CLOSE_STATUS_ABNORMAL_CLOSE;
            lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_REASON_BASE,
                            LWS_TO_KILL_ASYNC);
            return;
        }
        /* Producers waiting for a drain run in the next WRITEABLE
         * callback, not inside their own send. */
        if (!s->out_head && !s->drains)
            return;
    }
    lws_callback_on_writable(s->wsi);
}

void sess_send_wire(sess_t *s, wire_t *w)
{
    buf_t *b = wire_get(w, s->enc);

    if (!b) {
        log_error("sess", "c%" PRIu64 ": cannot encode a message as %s",
                  s->id, buf_enc_name(s->enc));
        return;
    }
    sess_send(s, b);
}

void sess_send_wire_paced(sess_t *s, wire_t *w)
{
    buf_t *b = wire_get(w, s->enc);

    if (b)
        sess_send_paced(s, b);
}

void sess_send_json(sess_t *s, json_t *j)
{
    wire_t w;

    wire_init(&w, j);
    sess_send_wire(s, &w);
    wire_clear(&w);
}

void sess_send_error(sess_t *s, msg_err_t code, const char *room,
                     uint64_t opseq, const char *fmt, ...)
{
    msg_error_t err = {.code = code, .opseq = opseq};
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err.message, sizeof(err.message), fmt, ap);
    va_end(ap);
    if (room)
        snprintf(err.room, sizeof(err.room), "%s", room);
    log_debug("sess", "c%" PRIu64 ": error %s: %s", s->id,
              msg_code_name(code), err.message);
    sess_send_json(s, msg_error_json(&err));
}

/* Closes the session when its token expires, with the same clock-skew
 * allowance as token checks. */
static void arm_expiry(sess_t *s)
{
    int64_t left;

    if (!auth_enabled())
        return;

    /* jwt_verify() bounds exp to year 9999, so this cannot overflow. */
    left = s->claims.exp + cfg->auth_skew_s - auth_now();
    if (left < 0)
        left = 0;
    lws_set_timer_usecs(s->wsi, (lws_usec_t)left * LWS_US_PER_SEC);
}

/* Replaces the token of a connection. The new token must be valid, name
 * the same subject and still grant a role in every room joined, so a
 * refresh never widens what an expired token allowed nor keeps a session
 * alive past its rooms. */
static void refresh_token(sess_t *s, const msg_t *msg)
{
    char why[PROTO_ERR_MAX];
    jwt_claims_t fresh;

    if (auth_token(msg->token, strlen(msg->token), &fresh, why,
                   sizeof(why)) < 0) {
        sess_send_error(s, MSG_ERR_UNAUTHORIZED, NULL, 0,
                        "token rejected: %s", why);
        return;
    }
    if (strcmp(fresh.sub, s->claims.sub) != 0) {
        jwt_claims_clear(&fresh);
        sess_send_error(s, MSG_ERR_FORBIDDEN, NULL, 0,
                        "the new token is for another subject; open a new "
                        "connection for it");
        return;
    }
    for (size_t i = 0; i < s->nrooms; i++) {
        const char *room = room_name(s->rooms[i]);
        jwt_role_t role;

        if (jwt_room_role(&fresh, room, &role) < 0) {
            jwt_claims_clear(&fresh);
            sess_send_error(s, MSG_ERR_FORBIDDEN, room, 0,
                            "the new token does not grant room %s, which "
                            "this connection has joined; leave it first",
                            room);
            return;
        }
    }
    jwt_claims_clear(&s->claims);
    s->claims = fresh;
    arm_expiry(s);
    sess_send_json(s, json_pack("{s:s, s:s, s:I}", "type", "authed", "sub",
                                s->claims.sub, "exp",
                                (json_int_t)s->claims.exp));
}

void sess_hold(sess_t *s, const char *actor, uint64_t opseq, msg_err_t code)
{
    if (s->held_opseq)
        return;
    s->held_opseq = opseq;
    s->held_code = code;
    snprintf(s->held_actor, sizeof(s->held_actor), "%s", actor);
}

/* Meters the ops of a batch, and holds back later batches of an actor
 * whose batch failed (rate-limited here, or unavailable in the room) until
 * that batch is resent. Returns 0 when the batch may go on, or -EAGAIN
 * after sending the error. */
static int check_rate(sess_t *s, const msg_t *msg)
{
    int held = s->held_opseq &&
               strcmp(s->held_actor, msg->actor) == 0;

    if (msg->nops > cfg->rate_burst) {
        sess_send_error(s, MSG_ERR_TOO_LARGE, msg->room, msg->opseq,
                        "the batch has %zu ops, over the %u a connection "
                        "may send at once (--rate-burst); split it",
                        msg->nops, cfg->rate_burst);
        return -EAGAIN;
    }
    if (held && msg->opseq > s->held_opseq) {
        sess_send_error(s, s->held_code, msg->room, msg->opseq,
                        "batch %" PRIu64 " of actor %s waits for the resend "
                        "of batch %" PRIu64 "; nothing was applied",
                        msg->opseq, msg->actor, s->held_opseq);
        return -EAGAIN;
    }
    if (take_rate(s, msg->nops) < 0) {
        log_info("sess", "c%" PRIu64 ": batch %" PRIu64 " of %zu ops over "
                 "the rate limit", s->id, msg->opseq, msg->nops);
        sess_hold(s, msg->actor, msg->opseq, MSG_ERR_RATE_LIMITED);
        sess_send_error(s, MSG_ERR_RATE_LIMITED, msg->room, msg->opseq,
                        "over the limit of %u ops per second (bursts of "
                        "%u); nothing was applied, resend it later",
                        cfg->rate_ops, cfg->rate_burst);
        return -EAGAIN;
    }
    if (held && msg->opseq == s->held_opseq)
        s->held_opseq = 0;
    return 0;
}

/* Decodes and handles one complete message of len bytes. */
static void dispatch(sess_t *s, const char *buf, size_t len)
{
    msg_error_t err;
    msg_t msg;
    int rc;

    msg_init(&msg);
    if (len == 0) {
        sess_send_error(s, MSG_ERR_INVALID_JSON, NULL, 0,
                        "empty message: expected %s",
                        s->enc == ENC_MSGPACK ? "a msgpack map"
                                              : "a JSON object");
        return;
    }
    rc = s->enc == ENC_MSGPACK
             ? msg_decode_msgpack(buf, len, &cfg->limits, &msg, &err)
             : msg_decode_json(buf, len, &cfg->limits, &msg, &err);
    if (rc < 0) {
        sess_send_error(s, err.code, err.room[0] ? err.room : NULL,
                        err.opseq, "%s", err.message);
        return;
    }
    switch (msg.type) {
    case MSG_JOIN:
        room_join(s, &msg);
        break;
    case MSG_LEAVE:
        room_leave(s, msg.room);
        break;
    case MSG_OPS:
        if (check_rate(s, &msg) == 0)
            room_submit(s, &msg);
        break;
    case MSG_AUTH:
        refresh_token(s, &msg);
        break;
    case MSG_PRESENCE:
        room_presence(s, &msg);
        break;
    case MSG_CLAIM:
    case MSG_RELEASE:
        /* Each claim and release costs one op of the rate limit. */
        if (take_rate(s, 1) == 0)
            room_claim(s, &msg);
        else
            sess_send_error(s, MSG_ERR_RATE_LIMITED, msg.room, 0,
                            "over the limit of %u ops per second (bursts "
                            "of %u), which claims share; nothing was done, "
                            "send it again later",
                            cfg->rate_ops, cfg->rate_burst);
        break;
    }
    msg_clear(&msg);
}

/* Appends a received chunk. Returns 0, or -E2BIG over the message limit,
 * or -ENOMEM. */
static int append_rx(sess_t *s, const void *in, size_t len)
{
    size_t need = s->rx_len + len;

    if (need > cfg->limits.max_message)
        return -E2BIG;
    if (need > s->rx_cap) {
        size_t cap = s->rx_cap ? s->rx_cap : 4096;
        char *rx;

        while (cap < need)
            cap *= 2;
        rx = realloc(s->rx, cap);
        if (!rx)
            return -ENOMEM;
        s->rx = rx;
        s->rx_cap = cap;
    }
    if (len > 0)
        memcpy(s->rx + s->rx_len, in, len);
    s->rx_len = need;
    return 0;
}

static void on_receive(sess_t *s, struct lws *wsi, const void *in,
                       size_t len)
{
    int rc;

    if (s->close_code)
        return;
    if (lws_is_first_fragment(wsi)) {
        s->rx_len = 0;
        s->rx_binary = lws_frame_is_binary(wsi);
    }
    if (s->rx_binary != (s->enc == ENC_MSGPACK)) {
        log_info("sess", "c%" PRIu64 ": closing: %s frame on %s", s->id,
                 s->rx_binary ? "binary" : "text",
                 s->enc == ENC_MSGPACK ? "annolive.v1.msgpack"
                                       : "annolive.v1.json");
        sess_close(s, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                   s->enc == ENC_MSGPACK
                       ? "annolive.v1.msgpack takes binary frames only"
                       : "binary frames are not part of annolive.v1.json");
        return;
    }
    /* A message that arrived in one piece is read where lws keeps it,
     * so an idle connection keeps no reassembly buffer. */
    if (lws_is_first_fragment(wsi) && lws_is_final_fragment(wsi) &&
        !lws_remaining_packet_payload(wsi) && len <= cfg->limits.max_message) {
        dispatch(s, in, len);
        return;
    }
    rc = append_rx(s, in, len);
    if (rc == -E2BIG) {
        log_info("sess", "c%" PRIu64 ": closing: message over %zu bytes",
                 s->id, cfg->limits.max_message);
        sess_send_error(s, MSG_ERR_TOO_LARGE, NULL, 0,
                        "message is over the limit of %zu bytes",
                        cfg->limits.max_message);
        sess_close(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
        return;
    }
    if (rc < 0) {
        sess_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return;
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
        return;

    dispatch(s, s->rx, s->rx_len);
    s->rx_len = 0;
    free(s->rx);
    s->rx = NULL;
    s->rx_cap = 0;
}

/* Sends the close frame with the session's code and reason, then gives the
 * client CLOSE_REPLY_S to reply before the connection is cut: closing at
 * once while the client still sends would reset the connection and could
 * discard the frame. lws 4.1.6 sends no close frame when a WRITEABLE
 * callback returns -1 after lws_close_reason(), so the frame is written
 * here with the close opcode lws keeps internal (LWS_WRITE_CLOSE, 4). */
static int send_close(sess_t *s, struct lws *wsi)
{
    unsigned char frame[LWS_PRE + 2 + sizeof(s->close_reason)];
    unsigned char *p = frame + LWS_PRE;
    size_t len = strlen(s->close_reason);

    if (s->close_sent)
        return 0;
    s->close_sent = 1;
    p[0] = (unsigned char)(s->close_code >> 8);
    p[1] = (unsigned char)(s->close_code & 0xff);
    memcpy(p + 2, s->close_reason, len);
    if (lws_write(wsi, p, 2 + len, (enum lws_write_protocol)SESS_WRITE_CLOSE) <
        0)
        return -1;
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_REASON_BASE, CLOSE_REPLY_S);
    return 0;
}

/* Writes the first queued message. Returns -1 when the write fails. */
static int write_head(sess_t *s, struct lws *wsi)
{
    sess_out_t *o = s->out_head;
    int n;

    s->out_head = o->next;
    if (!s->out_head)
        s->out_tail = NULL;
    s->out_bytes -= o->buf->len;
    if (o->paced)
        s->paced_bytes -= o->buf->len;

    n = lws_write(wsi, o->buf->data, o->buf->len,
                  s->enc == ENC_MSGPACK ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    if (n >= 0)
        metrics.bytes_sent += o->buf->len;
    buf_unref(o->buf);
    free(o);
    if (n < 0) {
        log_info("sess", "c%" PRIu64 ": write failed; closing", s->id);
        return -1;
    }
    return 0;
}

/* Writes queued messages back to back until the queue is empty, until
 * libwebsockets keeps part of a frame for later, or for WRITE_BURST
 * messages. Returns -1 when a write fails. */
static int flush_queue(sess_t *s, struct lws *wsi)
{
    int written = 0;

    s->writing = 1;
    while (s->out_head && written < WRITE_BURST) {
        if (write_head(s, wsi) < 0) {
            s->writing = 0;
            return -1;
        }
        written++;
        if (lws_partial_buffered(wsi))
            break;
    }
    s->writing = 0;
    return 0;
}

/* Writes queued messages and runs the producers that wait for the queue to
 * drain, then writes the close frame once the queue is empty. Returns -1
 * to close the connection. */
static int on_writeable(sess_t *s, struct lws *wsi)
{
    if (s->out_head && flush_queue(s, wsi) < 0)
        return -1;
    if (s->drains && !sess_backlogged(s))
        drained(s);
    if (s->out_head) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    return s->close_code ? send_close(s, wsi) : 0;
}

static void on_established(sess_t *s, struct lws *wsi)
{
    char peer[64] = "";

    memset(s, 0, sizeof(*s));
    s->wsi = wsi;
    s->id = next_id++;
    s->enc = strcmp(lws_get_protocol(wsi)->name, SESS_SUBPROTOCOL_MSGPACK) == 0
                 ? ENC_MSGPACK
                 : ENC_JSON;
    s->next = sessions;
    if (sessions)
        sessions->prev = s;
    sessions = s;
    nsessions++;
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    snprintf(s->peer, sizeof(s->peer), "%s", peer);
    count_peer(s->peer, 1);
    s->rate_tokens = cfg->rate_burst;
    s->rate_at_us = (uint64_t)lws_now_usecs();
    log_debug("sess", "c%" PRIu64 ": connected from %s (%s)", s->id, peer,
              buf_enc_name(s->enc));
}

/* Reads the token of the upgrade request, which the upgrade check already
 * accepted. Returns 0, or -1 to close the connection. */
static int authenticate(sess_t *s, struct lws *wsi)
{
    char why[PROTO_ERR_MAX];

    if (auth_request(wsi, &s->claims, why, sizeof(why)) < 0) {
        log_info("sess", "c%" PRIu64 ": token rejected: %s", s->id, why);
        return -1;
    }
    log_info("sess", "c%" PRIu64 ": %s connected as %s", s->id,
             s->claims.sub, jwt_role_name(s->claims.role));
    arm_expiry(s);
    return 0;
}

static void on_closed(sess_t *s)
{
    s->closing = 1;
    room_drop_session(s);
    drained(s); /* the callback finds the session gone from its rooms */
    drop_queue(s);
    free(s->rx);
    free(s->rooms);
    jwt_claims_clear(&s->claims);
    count_peer(s->peer, -1);
    if (s->prev)
        s->prev->next = s->next;
    else
        sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    nsessions--;
    log_debug("sess", "c%" PRIu64 ": closed", s->id);
}

int sess_callback(struct lws *wsi, enum lws_callback_reasons reason,
                  sess_t *s, void *in, size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        on_established(s, wsi);
        return authenticate(s, wsi);
    case LWS_CALLBACK_TIMER:
        log_info("sess", "c%" PRIu64 ": closing: the token of %s expired",
                 s->id, s->claims.sub);
        sess_close(s, SESS_CLOSE_TOKEN_EXPIRED, "token expired");
        return 0;
    case LWS_CALLBACK_RECEIVE:
        on_receive(s, wsi, in, len);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_writeable(s, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        s->closing = 1; /* libwebsockets replies to the close frame */
        return 0;
    case LWS_CALLBACK_CLOSED:
        on_closed(s);
        return 0;
    default:
        return 0;
    }
}
