/*
 * Redis access over hiredis' async API on the libuv loop.
 *
 * Two connections: cmd runs functions and reads, sub only SUBSCRIBEs.
 * hiredis 0.14 has no reconnect, so a timer reconnects both with capped
 * backoff. When the store reports that it is up again, the owner
 * re-subscribes and catches its rooms up.
 */
#include "store.h"

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "map.h"
#include "metrics.h"
#include "redis_uv.h"
#include "store_lua.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct store {
    uv_loop_t *loop;
    const config_t *cfg;
    store_events_t events;
    void *arg;
    void (*done)(int status, void *arg); /* start-up result, then NULL */

    redisAsyncContext *cmd;
    redisAsyncContext *sub;
    int cmd_ready; /* connected, SELECT and FUNCTION LOAD replied */
    int sub_ready;
    int up;        /* last state reported through events.connection */
    int stopping;

    uv_timer_t timer; /* connect timeout, then reconnect backoff */
    uv_timer_t resync_timer; /* defers store_resync() out of callbacks */
    int handles_open;        /* uv handles left to close before freeing */
    int backing_off;  /* the timer waits to reconnect */
    int backoff_ms;
    map_t subs; /* room -> sub_state_t, cast to a pointer */
};

typedef enum { REQ_APPLY, REQ_LOAD, REQ_RANGE, REQ_COMMAND } req_kind_t;

/* The state of a channel on the subscriber connection. hiredis 0.14 keeps
 * one callback per channel and drops it when an UNSUBSCRIBE is confirmed,
 * so a SUBSCRIBE must not be sent while an UNSUBSCRIBE is in flight. */
typedef enum {
    SUB_NONE,
    SUB_PENDING,     /* SUBSCRIBE sent */
    SUB_ACTIVE,      /* SUBSCRIBE confirmed */
    SUB_LEAVING,     /* UNSUBSCRIBE sent */
    SUB_RETURNING,   /* UNSUBSCRIBE sent, SUBSCRIBE wanted after it */
} sub_state_t;

#define SUB_PTR(state) ((void *)(uintptr_t)(state))
#define SUB_STATE(ptr) ((sub_state_t)(uintptr_t)(ptr))

typedef struct {
    store_t *st;
    req_kind_t kind;
    void *cb;
    void *arg;
    uint64_t sent_us; /* when the command was queued, for the histogram */
} req_t;

static int connect_both(store_t *st);

static void channel_name(const store_t *st, const char *room, char *out,
                         size_t outlen)
{
    /* Pub/sub ignores the database number, so a non-zero one is part of
     * the channel name. */
    if (st->cfg->redis_db == 0)
        snprintf(out, outlen, "al:{%s}", room);
    else
        snprintf(out, outlen, "al:db%d:{%s}", st->cfg->redis_db, room);
}

static int room_from_channel(const char *ch, size_t len, char *room,
                             size_t roomlen)
{
    const char *open = memchr(ch, '{', len);
    size_t n;

    if (!open || len < 2 || ch[len - 1] != '}')
        return -EINVAL;
    n = (size_t)(ch + len - 1 - (open + 1));
    if (n == 0 || n >= roomlen)
        return -EINVAL;
    memcpy(room, open + 1, n);
    room[n] = '\0';
    return 0;
}

static void report_state(store_t *st)
{
    int up = st->cmd_ready && st->sub_ready;

    if (up == st->up)
        return;
    st->up = up;
    if (up) {
        st->backoff_ms = BACKOFF_MIN_MS;
        uv_timer_stop(&st->timer);
        log_info("store", "connected to Redis at %s:%d/%d",
                 st->cfg->redis_host, st->cfg->redis_port, st->cfg->redis_db);
    }
    if (st->done) {
        void (*done)(int, void *) = st->done;

        st->done = NULL;
        done(0, st->arg);
        return;
    }
    if (st->events.connection)
        st->events.connection(up, st->arg);
}

static void fail_start(store_t *st, int status)
{
    void (*done)(int, void *) = st->done;

    st->done = NULL;
    if (done)
        done(status, st->arg);
}

/* Closes both connections; the disconnect callback schedules a retry. */
static void drop_connections(store_t *st)
{
    if (st->cmd)
        redisAsyncDisconnect(st->cmd);
    if (st->sub)
        redisAsyncDisconnect(st->sub);
}

/* A command sent after each connect. The reply to the one marked last
 * makes the connection ready. */
typedef struct {
    const char *name;
    int last;
} setup_step_t;

static setup_step_t step_auth = {"AUTH", 0};
static setup_step_t step_select = {"SELECT", 0};
static setup_step_t step_select_last = {"SELECT", 1};
static setup_step_t step_load = {"FUNCTION LOAD", 1};

static void log_setup_error(const setup_step_t *step, const char *err)
{
    /* A restarted Redis replies LOADING while it reads its data. */
    if (strncmp(err, "LOADING", 7) == 0)
        log_warn("store", "Redis is loading its data; retrying");
    else if (strncmp(err, "NOAUTH", 6) == 0)
        log_error("store", "Redis rejected %s: %s (Redis needs a password: "
                  "give it in the --redis URL or in --redis-password-file)",
                  step->name, err);
    else
        log_error("store", "Redis rejected %s: %s", step->name, err);
}

static void on_setup_reply(redisAsyncContext *ac, void *r, void *priv)
{
    store_t *st = ac->data;
    redisReply *reply = r;
    const setup_step_t *step = priv;

    if (!reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        /* The commands after a failed one fail too: report only the
         * first. */
        if (ac->c.flags & REDIS_DISCONNECTING)
            return;
        log_setup_error(step, reply->str);
        if (st->done) {
            fail_start(st, -EPROTO);
            return;
        }
        drop_connections(st);
        return;
    }
    if (!step->last)
        return;
    if (ac == st->cmd)
        st->cmd_ready = 1;
    else
        st->sub_ready = 1;
    report_state(st);
}

/* Sends AUTH when a password is set. It goes first, because Redis rejects
 * every other command until AUTH succeeds. */
static void send_auth(store_t *st, redisAsyncContext *ac)
{
    const config_t *cfg = st->cfg;
    const char *argv[] = {"AUTH", cfg->redis_user, cfg->redis_password};
    size_t len[] = {4, strlen(cfg->redis_user), strlen(cfg->redis_password)};
    int argc = 3;

    if (!cfg->redis_password[0])
        return;

    /* Without a user, AUTH takes the password alone. */
    if (!cfg->redis_user[0]) {
        argv[1] = argv[2];
        len[1] = len[2];
        argc = 2;
    }
    redisAsyncCommandArgv(ac, on_setup_reply, &step_auth, argc, argv, len);
}

/* The function library as FUNCTION LOAD takes it: both parts in one. */
static char lua_source[sizeof(store_lua_library) + sizeof(store_lua_aware)];

static void send_setup(store_t *st, redisAsyncContext *ac)
{
    char db[16];
    const char *select_argv[] = {"SELECT", db};
    size_t select_len[] = {6, 0};
    const char *load_argv[] = {"FUNCTION", "LOAD", "REPLACE", lua_source};
    size_t load_len[] = {8, 4, 7, 0};

    if (!lua_source[0])
        snprintf(lua_source, sizeof(lua_source), "%s%s", store_lua_library,
                 store_lua_aware);
    load_len[3] = strlen(lua_source);
    int is_cmd = ac == st->cmd;

    send_auth(st, ac);
    snprintf(db, sizeof(db), "%d", st->cfg->redis_db);
    select_len[1] = strlen(db);
    redisAsyncCommandArgv(ac, on_setup_reply,
                          is_cmd ? &step_select : &step_select_last, 2,
                          select_argv, select_len);
    if (is_cmd)
        redisAsyncCommandArgv(ac, on_setup_reply, &step_load, 4, load_argv,
                              load_len);
}

static void schedule_reconnect(store_t *st);

/* Called when a connection is gone or failed to connect. Both connections
 * go down and come back together, so a connected survivor is closed too. */
static void connection_gone(store_t *st)
{
    if (st->stopping || st->done)
        return;
    map_free(&st->subs);
    report_state(st);
    if (st->cmd && (st->cmd->c.flags & REDIS_CONNECTED))
        redisAsyncDisconnect(st->cmd);
    if (st->sub && (st->sub->c.flags & REDIS_CONNECTED))
        redisAsyncDisconnect(st->sub);

    /* A survivor still connecting is freed when its timeout fires. */
    if (!st->cmd && !st->sub && !st->backing_off)
        schedule_reconnect(st);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    store_t *st = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees ac itself and will not call on_disconnect. */
        log_error("store", "cannot connect to Redis at %s:%d: %s",
                  st->cfg->redis_host, st->cfg->redis_port,
                  ac->errstr[0] ? ac->errstr : "connection failed");
        if (ac == st->cmd)
            st->cmd = NULL;
        else
            st->sub = NULL;
        if (st->done) {
            fail_start(st, -ECONNREFUSED);
            return;
        }
        connection_gone(st);
        return;
    }
    redisEnableKeepAlive(&ac->c);
    send_setup(st, ac);
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    store_t *st = cac->data;

    if (cac == st->cmd) {
        st->cmd = NULL;
        st->cmd_ready = 0;
    } else if (cac == st->sub) {
        st->sub = NULL;
        st->sub_ready = 0;
    }
    if (!st->stopping && status != REDIS_OK)
        log_error("store", "lost Redis connection: %s",
                  cac->errstr[0] ? cac->errstr : "closed");
    if (st->done) {
        fail_start(st, -ECONNRESET);
        return;
    }
    connection_gone(st);
}

static void on_timer(uv_timer_t *t)
{
    store_t *st = t->data;

    st->backing_off = 0;
    if (st->done) {
        log_error("store",
                  "timed out connecting to Redis at %s:%d after %d ms",
                  st->cfg->redis_host, st->cfg->redis_port,
                  st->cfg->redis_timeout_ms);
        fail_start(st, -ETIMEDOUT);
        return;
    }
    if (st->cmd || st->sub) {
        /* Free what is left of the last attempt, then try again. */
        redisAsyncContext *cmd = st->cmd, *sub = st->sub;

        st->cmd = st->sub = NULL;
        st->cmd_ready = st->sub_ready = 0;
        if (cmd)
            redisAsyncFree(cmd);
        if (sub)
            redisAsyncFree(sub);
        schedule_reconnect(st);
        return;
    }
    log_info("store", "reconnecting to Redis at %s:%d", st->cfg->redis_host,
             st->cfg->redis_port);
    if (connect_both(st) < 0)
        schedule_reconnect(st);
}

static void schedule_reconnect(store_t *st)
{
    st->backing_off = 1;
    uv_timer_start(&st->timer, on_timer, (uint64_t)st->backoff_ms, 0);
    st->backoff_ms *= 2;
    if (st->backoff_ms > BACKOFF_MAX_MS)
        st->backoff_ms = BACKOFF_MAX_MS;
}

static redisAsyncContext *connect_one(store_t *st)
{
    redisAsyncContext *ac =
        redisAsyncConnect(st->cfg->redis_host, st->cfg->redis_port);

    if (!ac)
        return NULL;
    if (ac->err) {
        log_error("store", "cannot connect to Redis at %s:%d: %s",
                  st->cfg->redis_host, st->cfg->redis_port, ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = st;
    if (redis_uv_attach(ac, st->loop) < 0) {
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static int connect_both(store_t *st)
{
    st->cmd = connect_one(st);
    st->sub = st->cmd ? connect_one(st) : NULL;
    if (!st->cmd || !st->sub) {
        if (st->cmd)
            redisAsyncFree(st->cmd);
        st->cmd = st->sub = NULL;
        return -ECONNREFUSED;
    }

    /* The timer bounds a connect that gets no answer at all. */
    uv_timer_start(&st->timer, on_timer, (uint64_t)st->cfg->redis_timeout_ms,
                   0);
    return 0;
}

int store_start(store_t **out, uv_loop_t *loop, const config_t *cfg,
                const store_events_t *events, void *arg,
                void (*done)(int status, void *arg))
{
    store_t *st = calloc(1, sizeof(*st));

    if (!st)
        return -ENOMEM;
    st->loop = loop;
    st->cfg = cfg;
    st->events = *events;
    st->arg = arg;
    st->done = done;
    st->backoff_ms = BACKOFF_MIN_MS;
    map_init(&st->subs);
    uv_timer_init(loop, &st->timer);
    uv_timer_init(loop, &st->resync_timer);
    st->timer.data = st->resync_timer.data = st;
    st->handles_open = 2;
    *out = st;

    if (connect_both(st) < 0) {
        /* Report through the loop, as every other start-up failure. */
        uv_timer_start(&st->timer, on_timer, 0, 0);
    }
    return 0;
}

static void free_store(uv_handle_t *h)
{
    store_t *st = h->data;

    if (--st->handles_open > 0)
        return;
    map_free(&st->subs);
    free(st);
}

void store_stop(store_t *st)
{
    redisAsyncContext *cmd = st->cmd, *sub = st->sub;

    /* redisAsyncFree runs the pending callbacks (with no reply) now, while
     * the store is alive, instead of when a slow Redis answers. Callbacks
     * that send more get -ENOTCONN, as up is cleared first. */
    st->stopping = 1;
    st->done = NULL;
    st->up = 0;
    st->cmd = st->sub = NULL;
    st->cmd_ready = st->sub_ready = 0;
    if (cmd)
        redisAsyncFree(cmd);
    if (sub)
        redisAsyncFree(sub);
    uv_timer_stop(&st->timer);
    uv_timer_stop(&st->resync_timer);
    uv_close((uv_handle_t *)&st->timer, free_store);
    uv_close((uv_handle_t *)&st->resync_timer, free_store);
}

static void on_resync(uv_timer_t *t)
{
    store_t *st = t->data;

    /* A lost connection has its own path back; only a live one is
     * dropped here. */
    if (st->stopping || !st->up)
        return;
    log_warn("store", "dropping the Redis connections to resynchronise "
             "after an error reply");
    drop_connections(st);
}

void store_resync(store_t *st)
{
    /* Called from hiredis callbacks, which must not disconnect their own
     * context, so the work runs on the next loop iteration. */
    if (!st->stopping)
        uv_timer_start(&st->resync_timer, on_resync, 0, 0);
}

int store_is_up(const store_t *st)
{
    return st->up;
}

size_t store_commands_pending(const store_t *st)
{
    size_t n = 0;

    if (!st || !st->cmd || !st->up)
        return 0;
    for (const redisCallback *cb = st->cmd->replies.head; cb; cb = cb->next)
        n++;
    return n;
}

/* Subscriptions */

static int send_channel_command(store_t *st, const char *command,
                                const char *room);

static void on_sub_reply(redisAsyncContext *ac, void *r, void *priv)
{
    store_t *st = priv;
    redisReply *reply = r;
    char room[PROTO_ROOM_MAX + 1];
    const redisReply *kind;
    const redisReply *ch;

    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;
    kind = reply->element[0];
    ch = reply->element[1];
    if (kind->type != REDIS_REPLY_STRING || ch->type != REDIS_REPLY_STRING)
        return;
    if (room_from_channel(ch->str, ch->len, room, sizeof(room)) < 0)
        return;

    if (strcmp(kind->str, "subscribe") == 0) {
        map_put(&st->subs, room, SUB_PTR(SUB_ACTIVE), NULL);
        if (st->events.subscribed)
            st->events.subscribed(room, st->arg);
        return;
    }
    if (strcmp(kind->str, "unsubscribe") == 0) {
        sub_state_t state = SUB_STATE(map_remove(&st->subs, room));

        if (state == SUB_RETURNING && send_channel_command(st, "SUBSCRIBE",
                                                           room) < 0)
            log_warn("store", "room %s: cannot subscribe again", room);
        return;
    }
    if (strcmp(kind->str, "message") == 0 &&
        reply->element[2]->type == REDIS_REPLY_STRING) {
        const redisReply *p = reply->element[2];
        const char *space = memchr(p->str, ' ', p->len);
        char *end;
        uint64_t seq;

        if (p->len >= 2 && p->str[0] == 'A' && p->str[1] == ' ') {
            if (st->events.aware)
                st->events.aware(room, p->str + 2, p->len - 2, st->arg);
            return;
        }
        if (p->len == 1 && p->str[0] == 'D') {
            if (st->events.deleted)
                st->events.deleted(room, st->arg);
            return;
        }
        if (!space) {
            log_warn("store", "room %s: malformed message on channel", room);
            return;
        }
        seq = strtoull(p->str, &end, 10);
        if (end != space || seq == 0) {
            log_warn("store", "room %s: malformed seq on channel", room);
            return;
        }
        st->events.message(room, seq, space + 1,
                           p->len - (size_t)(space + 1 - p->str), st->arg);
    }
}

/* Sends SUBSCRIBE or UNSUBSCRIBE for room's channel and records the state
 * that follows. Returns 0 or a negative code. */
static int send_channel_command(store_t *st, const char *command,
                                const char *room)
{
    char ch[PROTO_ROOM_MAX + 32];
    const char *argv[2] = {command, ch};
    size_t lens[2] = {strlen(command), 0};
    int subscribing = strcmp(command, "SUBSCRIBE") == 0;

    channel_name(st, room, ch, sizeof(ch));
    lens[1] = strlen(ch);
    if (map_put(&st->subs, room,
                SUB_PTR(subscribing ? SUB_PENDING : SUB_LEAVING), NULL) < 0)
        return -ENOMEM;
    if (redisAsyncCommandArgv(st->sub, on_sub_reply, st, 2, argv, lens) !=
        REDIS_OK) {
        map_remove(&st->subs, room);
        return -EIO;
    }
    return 0;
}

int store_subscribe(store_t *st, const char *room)
{
    sub_state_t state;

    if (!st->up)
        return -ENOTCONN;
    state = SUB_STATE(map_get(&st->subs, room));
    switch (state) {
    case SUB_NONE:
        return send_channel_command(st, "SUBSCRIBE", room);
    case SUB_ACTIVE:
        if (st->events.subscribed)
            st->events.subscribed(room, st->arg);
        return 0;
    case SUB_LEAVING:
        return map_put(&st->subs, room, SUB_PTR(SUB_RETURNING), NULL);
    default:
        return 0;
    }
}

void store_unsubscribe(store_t *st, const char *room)
{
    sub_state_t state = SUB_STATE(map_get(&st->subs, room));

    if (!st->up || state != SUB_ACTIVE)
        return;
    if (send_channel_command(st, "UNSUBSCRIBE", room) < 0)
        log_warn("store", "room %s: cannot unsubscribe", room);
}

/* Commands */

static req_t *new_req(store_t *st, req_kind_t kind, void *cb, void *arg)
{
    req_t *req = malloc(sizeof(*req));

    if (!req)
        return NULL;
    req->st = st;
    req->kind = kind;
    req->cb = cb;
    req->arg = arg;
    req->sent_us = metrics_now_us();
    return req;
}

/* Records the latency of a command that got a reply. */
static void observe(const req_t *req, const redisReply *reply)
{
    if (reply)
        metrics_observe_redis(metrics_now_us() - req->sent_us);
}

static int reply_failed(const redisReply *reply, const char *what)
{
    if (!reply)
        return 1;
    if (reply->type == REDIS_REPLY_ERROR) {
        log_error("store", "%s failed: %s", what, reply->str);
        return 1;
    }
    return 0;
}

static uint64_t reply_u64(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER)
        return (uint64_t)r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoull(r->str, NULL, 10);
    return 0;
}

static int outcome_of(const redisReply *reply, store_outcome_t *outcome)
{
    static const struct {
        const char *name;
        store_outcome_t outcome;
    } names[] = {{"ok", STORE_APPLIED},
                 {"stale", STORE_STALE},
                 {"dup", STORE_DUPLICATE},
                 {"old", STORE_TOO_OLD}};
    const redisReply *first;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1)
        return -EPROTO;
    first = reply->element[0];
    if (first->type != REDIS_REPLY_STRING)
        return -EPROTO;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(first->str, names[i].name) == 0) {
            *outcome = names[i].outcome;
            return 0;
        }
    }
    return -EPROTO;
}

static void on_apply_reply(redisAsyncContext *ac, void *r, void *priv)
{
    req_t *req = priv;
    store_apply_cb cb = (store_apply_cb)req->cb;
    redisReply *reply = r;
    store_outcome_t outcome = STORE_STALE;
    const redisReply *extra;
    const char *space;

    observe(req, reply);
    if (reply_failed(reply, "al_apply") || outcome_of(reply, &outcome) < 0) {
        cb(-EIO, STORE_STALE, 0, NULL, 0, req->arg);
        free(req);
        return;
    }
    extra = reply->elements > 1 ? reply->element[1] : NULL;
    if (outcome == STORE_APPLIED && extra) {
        cb(0, outcome, reply_u64(extra), NULL, 0, req->arg);
    } else if (outcome == STORE_DUPLICATE && extra &&
               extra->type == REDIS_REPLY_STRING &&
               (space = memchr(extra->str, ' ', extra->len))) {
        cb(0, outcome, strtoull(extra->str, NULL, 10), space + 1,
           extra->len - (size_t)(space + 1 - extra->str), req->arg);
    } else if (outcome == STORE_STALE || outcome == STORE_TOO_OLD) {
        cb(0, outcome, 0, NULL, 0, req->arg);
    } else {
        log_error("store", "al_apply returned a malformed reply");
        cb(-EPROTO, outcome, 0, NULL, 0, req->arg);
    }
    free(req);
}

static void room_keys(const char *room, char keys[8][PROTO_ROOM_MAX + 16])
{
    snprintf(keys[7], sizeof(keys[7]), "al:{%s}:seen", room);
    snprintf(keys[6], sizeof(keys[6]), "al:{%s}:meta", room);
    snprintf(keys[0], sizeof(keys[0]), "al:{%s}:objs", room);
    snprintf(keys[1], sizeof(keys[1]), "al:{%s}:revs", room);
    snprintf(keys[2], sizeof(keys[2]), "al:{%s}:seq", room);
    snprintf(keys[3], sizeof(keys[3]), "al:{%s}:log", room);
    snprintf(keys[4], sizeof(keys[4]), "al:{%s}:actors", room);
    snprintf(keys[5], sizeof(keys[5]), "al:{%s}:acks", room);
}

int store_apply(store_t *st, const char *room, const store_batch_t *batch,
                store_apply_cb cb, void *arg)
{
    char keys[8][PROTO_ROOM_MAX + 16];
    char ackq[PROTO_ROOM_MAX + PROTO_ID_MAX + 16];
    char ch[PROTO_ROOM_MAX + 32];
    char max[24], count[24], opseq[24], nreads[24];
    char (*revs)[24];
    size_t n = batch->n;
    size_t argc = 3 + 9 + 8 + 3 * n + 2 * batch->nreads;
    const char **argv;
    size_t *lens;
    req_t *req;
    size_t i = 0;
    int r = -ENOMEM;

    if (!st->up)
        return -ENOTCONN;
    argv = malloc(argc * sizeof(*argv));
    lens = malloc(argc * sizeof(*lens));
    revs = malloc((n + batch->nreads + 1) * sizeof(*revs));
    req = new_req(st, REQ_APPLY, (void *)cb, arg);
    if (!argv || !lens || !revs || !req)
        goto out;

    room_keys(room, keys);
    snprintf(ackq, sizeof(ackq), "al:{%s}:ackq:%s", room, batch->actor);
    channel_name(st, room, ch, sizeof(ch));
    snprintf(max, sizeof(max), "%" PRIu64, st->cfg->stream_max);
    snprintf(count, sizeof(count), "%zu", n);
    snprintf(opseq, sizeof(opseq), "%" PRIu64, batch->opseq);

#define ARG(s, l) (argv[i] = (s), lens[i] = (l), i++)
    ARG("FCALL", 5);
    ARG("al_apply", 8);
    ARG("9", 1);
    for (int k = 0; k < 6; k++)
        ARG(keys[k], strlen(keys[k]));
    ARG(ackq, strlen(ackq));
    ARG(keys[6], strlen(keys[6]));
    ARG(keys[7], strlen(keys[7]));
    ARG(ch, strlen(ch));
    ARG(max, strlen(max));
    ARG(n ? batch->body : "", n ? batch->body_len : 0);
    ARG(count, strlen(count));
    ARG(batch->actor, strlen(batch->actor));
    ARG(opseq, strlen(opseq));
    ARG(batch->results, batch->results_len);
    snprintf(nreads, sizeof(nreads), "%zu", batch->nreads);
    ARG(nreads, strlen(nreads));
    for (size_t w = 0; w < n; w++) {
        const store_write_t *wr = &batch->writes[w];

        snprintf(revs[w], sizeof(revs[w]), "%" PRIu64, wr->expected_rev);
        ARG(wr->id, strlen(wr->id));
        ARG(revs[w], strlen(revs[w]));
        ARG(wr->blob, wr->blob_len);
    }
    for (size_t k = 0; k < batch->nreads; k++) {
        const store_write_t *rd = &batch->reads[k];

        snprintf(revs[n + k], sizeof(revs[n + k]), "%" PRIu64,
                 rd->expected_rev);
        ARG(rd->id, strlen(rd->id));
        ARG(revs[n + k], strlen(revs[n + k]));
    }
#undef ARG

    r = redisAsyncCommandArgv(st->cmd, on_apply_reply, req, (int)argc, argv,
                              lens) == REDIS_OK
            ? 0
            : -EIO;
    if (r == 0)
        req = NULL;
out:
    free(argv);
    free(lens);
    free(revs);
    free(req);
    return r;
}

/* Parses an al_load reply into parallel arrays. Returns 0 or -EPROTO. */
static int parse_load(const redisReply *reply, store_room_t *room,
                      map_t *revs_by_id)
{
    const redisReply *objs, *revs;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3)
        return -EPROTO;
    objs = reply->element[1];
    revs = reply->element[2];
    if (objs->type != REDIS_REPLY_ARRAY || revs->type != REDIS_REPLY_ARRAY ||
        objs->elements % 2 || revs->elements % 2)
        return -EPROTO;
    room->seq = reply_u64(reply->element[0]);
    room->n = objs->elements / 2;

    for (size_t i = 0; i + 1 < revs->elements; i += 2)
        if (map_put(revs_by_id, revs->element[i]->str,
                    revs->element[i + 1], NULL) < 0)
            return -ENOMEM;
    return 0;
}

static void on_load_reply(redisAsyncContext *ac, void *r, void *priv)
{
    req_t *req = priv;
    store_load_cb cb = (store_load_cb)req->cb;
    redisReply *reply = r;
    store_room_t room = {0};
    map_t revs_by_id;
    const char **ids = NULL, **blobs = NULL;
    size_t *lens = NULL;
    uint64_t *revs = NULL;
    int status;

    map_init(&revs_by_id);
    observe(req, reply);
    if (reply_failed(reply, "al_load")) {
        status = -EIO;
        goto done;
    }
    status = parse_load(reply, &room, &revs_by_id);
    if (status < 0)
        goto done;

    ids = malloc((room.n + 1) * sizeof(*ids));
    blobs = malloc((room.n + 1) * sizeof(*blobs));
    lens = malloc((room.n + 1) * sizeof(*lens));
    revs = malloc((room.n + 1) * sizeof(*revs));
    if (!ids || !blobs || !lens || !revs) {
        status = -ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < room.n; i++) {
        const redisReply *id = reply->element[1]->element[2 * i];
        const redisReply *blob = reply->element[1]->element[2 * i + 1];
        const redisReply *rev = map_get(&revs_by_id, id->str);

        ids[i] = id->str;
        blobs[i] = blob->str;
        lens[i] = blob->len;
        revs[i] = rev ? reply_u64(rev) : 0;
    }
    room.ids = ids;
    room.blobs = blobs;
    room.blob_lens = lens;
    room.revs = revs;

done:
    cb(status, status < 0 ? NULL : &room, req->arg);
    map_free(&revs_by_id);
    free(ids);
    free(blobs);
    free(lens);
    free(revs);
    free(req);
}

int store_load(store_t *st, const char *room, store_load_cb cb, void *arg)
{
    char keys[8][PROTO_ROOM_MAX + 16];
    const char *argv[6];
    size_t lens[6];
    req_t *req;

    if (!st->up)
        return -ENOTCONN;
    req = new_req(st, REQ_LOAD, (void *)cb, arg);
    if (!req)
        return -ENOMEM;
    room_keys(room, keys);
    argv[0] = "FCALL";
    argv[1] = "al_load";
    argv[2] = "3";
    argv[3] = keys[0];
    argv[4] = keys[1];
    argv[5] = keys[2];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    if (redisAsyncCommandArgv(st->cmd, on_load_reply, req, 6, argv, lens) !=
        REDIS_OK) {
        free(req);
        return -EIO;
    }
    return 0;
}

/* Reads one XRANGE entry [id, [field, value, ...]] into e. */
static int parse_entry(const redisReply *r, store_entry_t *e)
{
    const redisReply *fields;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return -EPROTO;
    fields = r->element[1];
    e->seq = strtoull(r->element[0]->str, NULL, 10);
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        if (strcmp(fields->element[i]->str, "e") == 0) {
            e->body = fields->element[i + 1]->str;
            e->len = fields->element[i + 1]->len;
            return 0;
        }
    }
    return -EPROTO;
}

static void on_range_reply(redisAsyncContext *ac, void *r, void *priv)
{
    req_t *req = priv;
    store_range_cb cb = (store_range_cb)req->cb;
    redisReply *reply = r;
    store_entry_t *entries = NULL;
    const redisReply *list;
    uint64_t first = 0, room_seq = 0;
    int status = 0;
    size_t n = 0;

    observe(req, reply);
    if (reply_failed(reply, "al_range") || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 3 ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        status = -EIO;
        goto done;
    }
    first = reply_u64(reply->element[0]);
    room_seq = reply_u64(reply->element[2]);
    list = reply->element[1];
    entries = calloc(list->elements + 1, sizeof(*entries));
    if (!entries) {
        status = -ENOMEM;
        goto done;
    }
    for (n = 0; n < list->elements; n++) {
        if (parse_entry(list->element[n], &entries[n]) < 0) {
            status = -EPROTO;
            break;
        }
    }

done:
    cb(status, entries, status < 0 ? 0 : n, first, room_seq, req->arg);
    free(entries);
    free(req);
}

int store_range(store_t *st, const char *room, uint64_t after, size_t count,
                store_range_cb cb, void *arg)
{
    char key[PROTO_ROOM_MAX + 16], seq_key[PROTO_ROOM_MAX + 16];
    char from[24], num[24];
    const char *argv[7] = {"FCALL", "al_range", "2", key, seq_key, from, num};
    size_t lens[7];
    req_t *req;

    if (!st->up)
        return -ENOTCONN;
    req = new_req(st, REQ_RANGE, (void *)cb, arg);
    if (!req)
        return -ENOMEM;
    snprintf(key, sizeof(key), "al:{%s}:log", room);
    snprintf(seq_key, sizeof(seq_key), "al:{%s}:seq", room);
    snprintf(from, sizeof(from), "%" PRIu64, after);
    snprintf(num, sizeof(num), "%zu", count);
    for (int i = 0; i < 7; i++)
        lens[i] = strlen(argv[i]);
    if (redisAsyncCommandArgv(st->cmd, on_range_reply, req, 7, argv, lens) !=
        REDIS_OK) {
        free(req);
        return -EIO;
    }
    return 0;
}

static void on_command_reply(redisAsyncContext *ac, void *r, void *priv)
{
    req_t *req = priv;
    store_reply_cb cb = (store_reply_cb)req->cb;
    redisReply *reply = r;

    observe(req, reply);
    if (!reply)
        cb(-EIO, NULL, req->arg);
    else if (reply->type == REDIS_REPLY_ERROR)
        cb(-EPROTO, reply, req->arg);
    else
        cb(0, reply, req->arg);
    free(req);
}

int store_command(store_t *st, int argc, const char **argv,
                  const size_t *lens, store_reply_cb cb, void *arg)
{
    req_t *req;

    if (!st->up)
        return -ENOTCONN;
    req = new_req(st, REQ_COMMAND, (void *)cb, arg);
    if (!req)
        return -ENOMEM;
    if (redisAsyncCommandArgv(st->cmd, on_command_reply, req, argc, argv,
                              lens) != REDIS_OK) {
        free(req);
        return -EIO;
    }
    return 0;
}

static void on_forget_reply(int status, const redisReply *reply, void *arg)
{
    const char *room = arg;

    if (status == -EPROTO)
        log_warn("store", "room %s: al_forget failed: %s", room, reply->str);
    else if (status == 0 && reply->type == REDIS_REPLY_INTEGER &&
             reply->integer > 0)
        log_info("store", "room %s: forgot %lld idle actors and their acks",
                 room, reply->integer);
    free(arg);
}

int store_forget(store_t *st, const char *room, uint64_t idle_ms)
{
    char keys[8][PROTO_ROOM_MAX + 16], idle[24];
    const char *argv[7] = {"FCALL", "al_forget", "3", keys[4], keys[5],
                           keys[7], idle};
    size_t lens[7];
    char *name = strdup(room);
    int rc;

    if (!name)
        return -ENOMEM;
    room_keys(room, keys);
    snprintf(idle, sizeof(idle), "%" PRIu64, idle_ms);
    for (int i = 0; i < 7; i++)
        lens[i] = strlen(argv[i]);
    rc = store_command(st, 7, argv, lens, on_forget_reply, name);
    if (rc < 0)
        free(name);
    return rc;
}

void store_channel(const store_t *st, const char *room, char *out,
                   size_t outlen)
{
    channel_name(st, room, out, outlen);
}
