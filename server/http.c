/*
 * HTTP endpoints: routing, authentication of /v1 requests, request bodies,
 * health, metrics, room snapshots and the event feed. Responses are built
 * in one buffer and written in one HTTP_WRITEABLE callback. Asynchronous
 * steps (Redis reads, batches, long polls) survive the client going away
 * first. Op batches, imports and exports live in http_ops.c, room
 * administration in http_rooms.c.
 */
#include "http.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "auth.h"
#include "http_int.h"
#include "log.h"
#include "metrics.h"
#include "obj.h"
#include "pack.h"
#include "proto.h"
#include "room.h"
#include "sess.h"
#include "vv.h"

#define EVENTS_LIMIT_DEFAULT 1000 /* events per feed response */
#define EVENTS_LIMIT_MAX 10000
#define EVENTS_WAIT_MAX_S 60 /* maximum wait of a long poll, seconds */
#define EVENTS_POLL_MS 200   /* interval of stream reads in a long poll */

const config_t *http_cfg;
store_t *http_store;
uv_loop_t *http_loop;
static int stopping;

void http_configure(const config_t *config, store_t *st, uv_loop_t *loop)
{
    http_cfg = config;
    http_store = st;
    http_loop = loop;
}

void http_set_stopping(void)
{
    stopping = 1;
}

int http_stopping(void)
{
    return stopping;
}

/* Responses */

static int queue_body(struct lws *wsi, http_t *h, int status, const char *type,
                      buf_t *body)
{
    if (!body)
        return -1;
    buf_unref(h->body);
    h->status = status;
    h->content_type = type;
    h->body = body;
    lws_callback_on_writable(wsi);
    return 0;
}

int http_respond(struct lws *wsi, http_t *h, int status, json_t *body)
{
    /* A response queued before the body has arrived (such as a 401) waits
     * for it, so that the body is not read as the next request. */
    if (h->awaiting_body) {
        if (!body)
            return -1;
        json_decref(h->deferred);
        h->deferred = body;
        h->deferred_status = status;
        return 0;
    }
    return queue_body(wsi, h, status, "application/json", buf_take_json(body));
}

int http_error(struct lws *wsi, http_t *h, int status, const char *code,
               const char *fmt, ...)
{
    char text[PROTO_ERR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (status >= 500)
        log_warn("http", "%d %s%s%s: %s", status, code,
                 h->room[0] ? " in room " : "", h->room, text);
    else
        log_info("http", "%d %s%s%s: %s", status, code,
                 h->room[0] ? " in room " : "", h->room, text);
    return http_respond(
        wsi, h, status,
        json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", text));
}

int http_status_of(msg_err_t code)
{
    switch (code) {
    case MSG_ERR_TOO_LARGE:
        return 413;
    case MSG_ERR_UNAVAILABLE:
        return 503;
    case MSG_ERR_INTERNAL:
        return 500;
    case MSG_ERR_STALE_OPSEQ:
        return 409;
    case MSG_ERR_FORBIDDEN:
        return 403;
    case MSG_ERR_UNAUTHORIZED:
        return 401;
    case MSG_ERR_RATE_LIMITED:
        return 429;
    default:
        return 400;
    }
}

void http_pending_start(http_pending_t *p, struct lws *wsi, http_t *h)
{
    p->wsi = wsi;
    p->h = h;
    p->cancelled = 0;
    h->pending = p;
}

int http_pending_finish(http_pending_t *p)
{
    if (p->cancelled)
        return 0;
    p->h->pending = NULL;
    return 1;
}

/* Frees the request body, token claims and deferred response of h. */
static void release_request(http_t *h)
{
    free(h->rx);
    h->rx = NULL;
    h->rx_len = h->rx_cap = 0;
    json_decref(h->deferred);
    h->deferred = NULL;
    jwt_claims_clear(&h->claims);
}

static int write_response(struct lws *wsi, http_t *h)
{
    unsigned char hdr[LWS_PRE + 512];
    unsigned char *start = hdr + LWS_PRE, *p = start;
    unsigned char *end = hdr + sizeof(hdr) - 1;

    if (!h->body)
        return 0;
    if (lws_add_http_common_headers(wsi, (unsigned)h->status, h->content_type,
                                    h->body->len, &p, end) ||
        lws_add_http_header_by_name(
            wsi, (const unsigned char *)"cache-control:",
            (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    if (lws_write(wsi, h->body->data, h->body->len, LWS_WRITE_HTTP_FINAL) <
        (int)h->body->len)
        return -1;
    buf_unref(h->body);
    h->body = NULL;

    /* The request is done: lws may reuse or free h from here on. */
    release_request(h);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* Frees what a request holds, for the next request on the connection. */
static void clear_request(http_t *h)
{
    if (h->pending) {
        h->pending->cancelled = 1;
        if (h->pending->on_cancel)
            h->pending->on_cancel(h->pending);
    }
    buf_unref(h->body);
    release_request(h);
    memset(h, 0, sizeof(*h));
}

/* Health and metrics */

static int get_metrics(struct lws *wsi, http_t *h)
{
    metrics_gauges_t g = {
        .connections = sess_count(),
        .rooms = room_count(),
        .members = room_member_count(),
        .batches_in_flight = room_batches_in_flight(),
        .redis_up = store_is_up(http_store),
    };

    return queue_body(wsi, h, 200, "text/plain; version=0.0.4",
                      metrics_render(&g));
}

static int get_readyz(struct lws *wsi, http_t *h)
{
    const char *status = "ready";
    int code = 200;

    if (stopping) {
        status = "stopping";
        code = 503;
    } else if (!store_is_up(http_store)) {
        status = "unavailable";
        code = 503;
    }
    return http_respond(wsi, h, code,
                        json_pack("{s:s, s:s, s:b}", "status", status,
                                  "instance", http_cfg->instance, "redis",
                                  store_is_up(http_store)));
}

/* Snapshots */

typedef struct {
    http_pending_t p;
    char room[PROTO_ROOM_MAX + 1];
} snapshot_req_t;

static json_t *snapshot_body(const char *room, const store_room_t *sr)
{
    json_t *objects = json_array();
    char err[PROTO_ERR_MAX];

    for (size_t i = 0; objects && i < sr->n; i++) {
        obj_t *o = NULL;

        if (unpack_obj(sr->blobs[i], sr->blob_lens[i], sr->ids[i], sr->revs[i],
                       &o, err, sizeof(err)) < 0) {
            log_error("http", "room %s: skipping unreadable object %s: %s",
                      room, sr->ids[i], err);
            continue;
        }
        if (!o->deleted)
            json_array_append_new(objects, obj_to_wire(o));
        obj_free(o);
    }
    return json_pack("{s:s, s:I, s:o}", "room", room, "seq",
                     (json_int_t)sr->seq, "objects", objects);
}

static void on_snapshot(int status, const store_room_t *sr, void *arg)
{
    snapshot_req_t *req = arg;

    if (http_pending_finish(&req->p)) {
        if (status < 0)
            http_error(req->p.wsi, req->p.h, 503, "unavailable",
                       "Redis is unreachable; retry later");
        else
            http_respond(req->p.wsi, req->p.h, 200,
                         snapshot_body(req->room, sr));
    }
    free(req);
}

static int get_snapshot(struct lws *wsi, http_t *h)
{
    snapshot_req_t *req = calloc(1, sizeof(*req));

    if (!req)
        return -1;
    snprintf(req->room, sizeof(req->room), "%s", h->room);
    if (store_load(http_store, req->room, on_snapshot, req) < 0) {
        free(req);
        return http_error(wsi, h, 503, "unavailable",
                          "Redis is unreachable; retry later");
    }
    http_pending_start(&req->p, wsi, h);
    return 0;
}

/* The event feed */

typedef struct {
    http_pending_t p;
    char room[PROTO_ROOM_MAX + 1];
    uint64_t since;
    size_t limit;
    uint64_t deadline; /* loop time when a long poll responds anyway */
    uv_timer_t timer;
    int timer_open;
} events_req_t;

static void free_events_req(uv_handle_t *t)
{
    free(t->data);
}

static void end_events(events_req_t *req)
{
    if (req->timer_open)
        uv_close((uv_handle_t *)&req->timer, free_events_req);
    else
        free(req);
}

/* Returns the feed body of n stream entries, or NULL. */
static json_t *events_body(const events_req_t *req,
                           const store_entry_t *entries, size_t n)
{
    json_t *list = json_array();
    uint64_t next = req->since;
    char err[PROTO_ERR_MAX];

    for (size_t i = 0; list && i < n; i++) {
        json_t *ev = NULL;

        if (unpack_json(entries[i].body, entries[i].len, PACK_DEPTH_MAX, &ev,
                        err, sizeof(err)) < 0) {
            log_error("http", "room %s: undecodable event %" PRIu64 ": %s",
                      req->room, entries[i].seq, err);
            json_decref(list);
            return NULL;
        }
        json_object_set_new(ev, "seq",
                            json_integer((json_int_t)entries[i].seq));
        json_array_append_new(list, ev);
        next = entries[i].seq;
    }
    return json_pack("{s:s, s:o, s:I}", "room", req->room, "events", list,
                     "next", (json_int_t)next);
}

static void read_events(events_req_t *req);

static void on_poll_timer(uv_timer_t *t)
{
    events_req_t *req = t->data;

    if (req->p.cancelled) {
        end_events(req);
        return;
    }
    read_events(req);
}

/* The stream no longer contains the events after since, or since is ahead
 * of the room: the client must read a snapshot. */
static int reset_reply(events_req_t *req, uint64_t first_seq, uint64_t room_seq)
{
    return http_respond(
        req->p.wsi, req->p.h, 200,
        json_pack("{s:s, s:b, s:I, s:I, s:I}", "room", req->room, "reset", 1,
                  "since", (json_int_t)req->since, "first",
                  (json_int_t)first_seq, "seq", (json_int_t)room_seq));
}

static void on_events(int status, const store_entry_t *entries, size_t n,
                      uint64_t first_seq, uint64_t room_seq, void *arg)
{
    events_req_t *req = arg;
    http_t *h = req->p.h;

    if (req->p.cancelled) {
        end_events(req);
        return;
    }
    if (status < 0) {
        http_pending_finish(&req->p);
        http_error(req->p.wsi, h, 503, "unavailable",
                   "Redis is unreachable; retry later");
    } else if (req->since > room_seq ||
               (n > 0 && entries[0].seq != req->since + 1) ||
               (n == 0 && room_seq > req->since)) {
        http_pending_finish(&req->p);
        reset_reply(req, first_seq, room_seq);
    } else if (n == 0 && uv_now(http_loop) < req->deadline) {
        /* A long poll: read again shortly. */
        uv_timer_start(&req->timer, on_poll_timer, EVENTS_POLL_MS, 0);
        return;
    } else {
        http_pending_finish(&req->p);
        if (http_respond(req->p.wsi, h, 200, events_body(req, entries, n)) < 0)
            http_error(req->p.wsi, h, 500, "internal",
                       "cannot build the events");
    }
    end_events(req);
}

static void read_events(events_req_t *req)
{
    if (store_range(http_store, req->room, req->since, req->limit, on_events,
                    req) == 0)
        return;
    http_pending_finish(&req->p);
    http_error(req->p.wsi, req->p.h, 503, "unavailable",
               "Redis is unreachable; retry later");
    end_events(req);
}

static void cancel_events(http_pending_t *p)
{
    events_req_t *req = (events_req_t *)p;

    /* A timer that waits is stopped here; a read in flight frees the
     * request when it returns. */
    if (uv_is_active((uv_handle_t *)&req->timer)) {
        uv_timer_stop(&req->timer);
        end_events(req);
    }
}

const char *http_query(struct lws *wsi, const char *name, char *buf, size_t len)
{
    return lws_get_urlarg_by_name(wsi, name, buf, (int)len);
}

/* Reads the unsigned integer query argument name into *out (unchanged
 * when absent). Returns 0, or -EINVAL when it is present but not a number
 * from 0 to max. */
static int query_u64(struct lws *wsi, const char *name, uint64_t max,
                     uint64_t *out)
{
    char buf[48];
    const char *arg = http_query(wsi, name, buf, sizeof(buf));
    char *end;
    unsigned long long v;

    if (!arg)
        return 0;
    if (arg[0] < '0' || arg[0] > '9')
        return -EINVAL;
    errno = 0;
    v = strtoull(arg, &end, 10);
    if (errno || *end || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static int get_events(struct lws *wsi, http_t *h)
{
    uint64_t since = 0, limit = EVENTS_LIMIT_DEFAULT, wait = 0;
    events_req_t *req;

    if (query_u64(wsi, "since=", VV_COUNTER_MAX, &since) < 0 ||
        query_u64(wsi, "limit=", EVENTS_LIMIT_MAX, &limit) < 0 ||
        query_u64(wsi, "wait=", EVENTS_WAIT_MAX_S, &wait) < 0 || limit == 0)
        return http_error(wsi, h, 400, "invalid_message",
                          "since must be a seq, limit 1 to %d and wait 0 "
                          "to %d seconds",
                          EVENTS_LIMIT_MAX, EVENTS_WAIT_MAX_S);
    req = calloc(1, sizeof(*req));
    if (!req)
        return -1;
    snprintf(req->room, sizeof(req->room), "%s", h->room);
    req->since = since;
    req->limit = (size_t)limit;
    req->deadline = uv_now(http_loop) + wait * 1000;
    uv_timer_init(http_loop, &req->timer);
    req->timer.data = req;
    req->timer_open = 1;
    req->p.on_cancel = cancel_events;
    http_pending_start(&req->p, wsi, h);
    read_events(req);
    return 0;
}

/* Authentication */

/* Verifies the request's token into h->claims. Returns 0, or 1 after
 * queueing a 401. */
static int authenticate(struct lws *wsi, http_t *h)
{
    char why[256];
    int rc = auth_request(wsi, &h->claims, why, sizeof(why));

    if (rc == 0)
        return 0;
    log_info("http", "request rejected: %s", why);
    http_error(wsi, h, 401, "unauthorized", "%s",
               rc == -ENOENT ? "a token is required"
                             : "the token was rejected");
    return 1;
}

/* Finds the token's role in h->room. Returns 0, or 1 after queueing a
 * 403. With admin set, only the admin role passes. */
static int authorize(struct lws *wsi, http_t *h, int admin)
{
    if (jwt_room_role(&h->claims, h->room, &h->role) < 0) {
        http_error(wsi, h, 403, "forbidden",
                   "the token grants no role in this room");
        return 1;
    }
    if (admin && h->role != JWT_ROLE_ADMIN) {
        http_error(wsi, h, 403, "forbidden",
                   "this request needs the admin role in the room");
        return 1;
    }
    return 0;
}

/* Request bodies */

/* Reads the Content-Type of a request with a body into h. Returns 0, or
 * -EINVAL for a type that is neither JSON nor msgpack. */
static int body_type(struct lws *wsi, http_t *h)
{
    char type[128] = "";
    char *semi;

    if (lws_hdr_copy(wsi, type, sizeof(type), WSI_TOKEN_HTTP_CONTENT_TYPE) < 0)
        return -EINVAL;
    semi = strchr(type, ';');
    if (semi)
        *semi = '\0';
    while (*type && type[strlen(type) - 1] == ' ')
        type[strlen(type) - 1] = '\0';
    h->rx_msgpack = strcasecmp(type, "application/msgpack") == 0 ||
                    strcasecmp(type, "application/x-msgpack") == 0;
    if (!type[0] || h->rx_msgpack || strcasecmp(type, "application/json") == 0)
        return 0;
    return -EINVAL;
}

static int append_body(http_t *h, const void *in, size_t len)
{
    if (h->deferred)
        return 0; /* a response is queued: the body is drained unread */
    if (h->rx_over || len > http_cfg->max_body - h->rx_len) {
        h->rx_over = 1;
        return 0;
    }
    if (h->rx_len + len > h->rx_cap) {
        size_t cap = h->rx_cap ? h->rx_cap : 65536;
        char *p;

        while (cap < h->rx_len + len)
            cap *= 2;
        if (cap > http_cfg->max_body)
            cap = http_cfg->max_body;
        p = realloc(h->rx, cap);
        if (!p)
            return -1;
        h->rx = p;
        h->rx_cap = cap;
    }
    memcpy(h->rx + h->rx_len, in, len);
    h->rx_len += len;
    return 0;
}

/* Returns the nesting depth of j, counting j itself. */
static size_t json_depth(const json_t *j)
{
    size_t max = 0, i;
    const char *key;
    json_t *v;

    if (json_is_array(j)) {
        json_array_foreach(j, i, v)
        {
            size_t d = json_depth(v);

            if (d > max)
                max = d;
        }
        return max + 1;
    }
    if (json_is_object(j)) {
        json_object_foreach((json_t *)j, key, v)
        {
            size_t d = json_depth(v);

            if (d > max)
                max = d;
        }
        return max + 1;
    }
    return 0;
}

json_t *http_parse_body(struct lws *wsi, http_t *h)
{
    size_t depth = http_cfg->limits.max_depth;
    char err[PROTO_ERR_MAX];
    json_error_t jerr;
    json_t *root = NULL;

    if (h->rx_msgpack) {
        if (unpack_json(h->rx, h->rx_len,
                        depth < PACK_DEPTH_MAX ? depth : PACK_DEPTH_MAX, &root,
                        err, sizeof(err)) < 0) {
            http_error(wsi, h, 400, "invalid_json", "%s", err);
            return NULL;
        }
        return root;
    }
    root = json_loadb(h->rx ? h->rx : "", h->rx_len, JSON_REJECT_DUPLICATES,
                      &jerr);
    if (!root) {
        http_error(wsi, h, 400, "invalid_json",
                   "invalid JSON at line %d, column %d", jerr.line,
                   jerr.column);
        return NULL;
    }
    if (json_depth(root) > depth) {
        json_decref(root);
        http_error(wsi, h, 413, "too_large",
                   "the body nests deeper than the limit of %zu levels", depth);
        return NULL;
    }
    return root;
}

/* Runs the request once its whole body has arrived. */
static int body_complete(struct lws *wsi, http_t *h)
{
    h->awaiting_body = 0;
    if (h->deferred) {
        json_t *d = h->deferred;

        h->deferred = NULL;
        return http_respond(wsi, h, h->deferred_status, d);
    }
    if (h->rx_over)
        return http_error(wsi, h, 413, "too_large",
                          "the body is over the limit of %zu bytes "
                          "(--max-body)",
                          http_cfg->max_body);
    switch (h->body_kind) {
    case HTTP_BODY_OPS:
        return http_ops_post(wsi, h);
    case HTTP_BODY_IMPORT:
        return http_ops_import(wsi, h);
    case HTTP_BODY_CREATE:
        return http_rooms_create(wsi, h);
    case HTTP_BODY_PATCH:
        return http_rooms_patch(wsi, h);
    default:
        return 0;
    }
}

/* Routing */

typedef enum { M_GET, M_POST, M_PUT, M_PATCH, M_DELETE, M_OTHER } method_t;

static method_t method_of(struct lws *wsi)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
        return M_GET;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0)
        return M_POST;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_PUT_URI) > 0)
        return M_PUT;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_PATCH_URI) > 0)
        return M_PATCH;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI) > 0)
        return M_DELETE;
    return M_OTHER;
}

/* Returns the declared body length, 0 when there is none. */
static unsigned long long content_length(struct lws *wsi)
{
    char buf[32];

    if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
        return 0;
    return strtoull(buf, NULL, 10);
}

/* Prepares a request that carries a body: the work runs when the body is
 * complete, and an error found now is sent then. */
static int expect_body(struct lws *wsi, http_t *h, http_body_kind_t kind)
{
    h->body_kind = kind;
    if (body_type(wsi, h) < 0)
        http_error(wsi, h, 415, "unsupported_media_type",
                   "send application/json or application/msgpack");
    if (!h->awaiting_body)
        return body_complete(wsi, h);
    return 0;
}

static int method_error(struct lws *wsi, http_t *h, const char *allowed)
{
    return http_error(wsi, h, 405, "method_not_allowed", "this path serves %s",
                      allowed);
}

/* Routes /v1/rooms/{room}[/action] once the token is known. */
static int route_room(struct lws *wsi, http_t *h, method_t m,
                      const char *action)
{
    int admin = action[0] == '\0';

    if (authorize(wsi, h, admin))
        return 0;
    if (admin) {
        if (m == M_PUT)
            return expect_body(wsi, h, HTTP_BODY_CREATE);
        if (m == M_PATCH)
            return expect_body(wsi, h, HTTP_BODY_PATCH);
        if (m == M_DELETE)
            return http_rooms_delete(wsi, h);
        return method_error(wsi, h, "PUT, PATCH and DELETE");
    }
    if (strcmp(action, "/ops") == 0 || strcmp(action, "/import") == 0) {
        if (m != M_POST)
            return method_error(wsi, h, "POST");
        return expect_body(wsi, h,
                           action[1] == 'o' ? HTTP_BODY_OPS : HTTP_BODY_IMPORT);
    }
    if (m != M_GET)
        return method_error(wsi, h, "GET");
    if (strcmp(action, "/snapshot") == 0)
        return get_snapshot(wsi, h);
    if (strcmp(action, "/events") == 0)
        return get_events(wsi, h);
    if (strcmp(action, "/export") == 0)
        return http_ops_export(wsi, h);
    return http_error(wsi, h, 404, "not_found", "no such endpoint");
}

/* Splits the rest of a /v1/rooms/ path into the room and its action: the
 * room is what comes before a known action, or the whole rest for the
 * room itself. lws has decoded %XX escapes already, so a room name with a
 * '/' in it is found as a room and rejected as invalid. Returns the action
 * ("" for the room itself), or NULL when the path names no endpoint. */
static const char *split_room(const char *rest, size_t *room_len)
{
    static const char *const actions[] = {"/snapshot", "/events", "/ops",
                                          "/import", "/export"};
    size_t len = strlen(rest);

    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        size_t n = strlen(actions[i]);

        if (len > n && strcmp(rest + len - n, actions[i]) == 0) {
            *room_len = len - n;
            return rest + len - n;
        }
    }
    if (len == 0 || strchr(rest, '/'))
        return NULL;
    *room_len = len;
    return "";
}

/* Routes every path under /v1/: the token is checked first, so an unknown
 * path without a token is 401 as well. */
static int route_v1(struct lws *wsi, http_t *h, method_t m, const char *path)
{
    static const char rooms[] = "/v1/rooms";
    const char *action = NULL;
    size_t len = 0;

    if (authenticate(wsi, h))
        return 0;
    if (strcmp(path, rooms) == 0) {
        if (m != M_GET)
            return method_error(wsi, h, "GET");
        return http_rooms_list(wsi, h);
    }
    if (strncmp(path, rooms, sizeof(rooms) - 1) == 0 &&
        path[sizeof(rooms) - 1] == '/')
        action = split_room(path + sizeof(rooms), &len);

    /* The room itself has no GET: its objects are at .../snapshot. */
    if (!action || (action[0] == '\0' && m == M_GET))
        return http_error(wsi, h, 404, "not_found", "no such endpoint");
    if (!proto_room_valid(path + sizeof(rooms), len))
        return http_error(wsi, h, 400, "invalid_message",
                          "invalid room name: expected 1 to 128 "
                          "characters from [A-Za-z0-9._:-]");
    memcpy(h->room, path + sizeof(rooms), len);
    h->room[len] = '\0';
    return route_room(wsi, h, m, action);
}

static const char *mime_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html"},        {".js", "text/javascript"},
        {".mjs", "text/javascript"},   {".css", "text/css"},
        {".json", "application/json"}, {".png", "image/png"},
        {".jpg", "image/jpeg"},        {".jpeg", "image/jpeg"},
        {".svg", "image/svg+xml"},     {".ico", "image/x-icon"},
    };
    const char *dot = strrchr(path, '.');

    for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static int serve_static(struct lws *wsi, http_t *h, const char *path)
{
    char file[1024];
    struct stat st;
    int n;

    if (strstr(path, "..") || path[0] != '/')
        return http_error(wsi, h, 404, "not_found", "no such file");
    n = snprintf(file, sizeof(file), "%s%s", http_cfg->static_dir,
                 strcmp(path, "/") == 0 ? "/index.html" : path);
    if (n < 0 || (size_t)n >= sizeof(file) || stat(file, &st) < 0 ||
        !S_ISREG(st.st_mode))
        return http_error(wsi, h, 404, "not_found", "no such file");
    n = lws_serve_http_file(wsi, file, mime_type(file), NULL, 0);
    if (n < 0)
        return -1;
    if (n > 0 && lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}

static int route(struct lws *wsi, http_t *h, const char *path)
{
    method_t m = method_of(wsi);

    metrics.http_requests++;
    h->awaiting_body =
        (m == M_POST || m == M_PUT || m == M_PATCH) && content_length(wsi) > 0;
    if (strncmp(path, "/v1/", 4) == 0 || strcmp(path, "/v1") == 0)
        return route_v1(wsi, h, m, path);
    if (m != M_GET)
        return method_error(wsi, h, "GET");
    if (strcmp(path, "/healthz") == 0)
        return http_respond(wsi, h, 200,
                            json_pack("{s:s, s:s, s:b}", "status", "ok",
                                      "instance", http_cfg->instance, "redis",
                                      store_is_up(http_store)));
    if (strcmp(path, "/readyz") == 0)
        return get_readyz(wsi, h);
    if (strcmp(path, "/metrics") == 0)
        return get_metrics(wsi, h);
    if (http_cfg->static_dir)
        return serve_static(wsi, h, path);
    return http_error(wsi, h, 404, "not_found", "no such endpoint");
}

int http_callback(struct lws *wsi, enum lws_callback_reasons reason, http_t *h,
                  void *in, size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        clear_request(h);
        return route(wsi, h, in);
    case LWS_CALLBACK_HTTP_BODY:
        return append_body(h, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return body_complete(wsi, h);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return write_response(wsi, h);
    case LWS_CALLBACK_HTTP_FILE_COMPLETION:
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    case LWS_CALLBACK_CLOSED_HTTP:
        clear_request(h);
        return 0;
    default:
        return 0;
    }
}

int http_reject_upgrade(struct lws *wsi, int status, const char *code,
                        const char *message)
{
    unsigned char buf[LWS_PRE + 1024];
    unsigned char *start = buf + LWS_PRE, *p = start;
    unsigned char *end = buf + sizeof(buf) - 1;
    char body[512];
    int n;

    /* Headers and body go out in one write, as the connection closes when
     * the callback returns. */
    n = snprintf(body, sizeof(body),
                 "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code,
                 message);
    if (n < 0 || (size_t)n >= sizeof(body))
        return 1;
    if (lws_add_http_common_headers(wsi, (unsigned)status, "application/json",
                                    (lws_filepos_t)n, &p, end) ||
        lws_finalize_http_header(wsi, &p, end) || end - p < n)
        return 1;
    memcpy(p, body, (size_t)n);
    p += n;
    lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS);
    return 1;
}
