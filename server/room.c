/*
 * Rooms and the apply path.
 *
 * Each room on this instance keeps a cache of its objects at the room seq
 * it has reached. Events are applied to the cache strictly in seq order:
 * from the room channel when they arrive in order, and from the room's
 * stream when a seq is missing (a gap, a late subscribe, a reconnect).
 *
 * A batch is computed from the cache with the pure obj_apply() and written
 * by the al_apply function in Redis, which checks that every touched object
 * still has the revision the batch was computed from. When another write
 * came first, the room catches up from the stream and the batch is
 * computed again, so a conflict is always judged against the latest state.
 */
#include "room.h"

#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <uv.h>

#include "authz.h"
#include "aware.h"
#include "log.h"
#include "map.h"
#include "merge.h"
#include "metrics.h"
#include "jsontext.h"
#include "pack.h"
#include "snap.h"

#define RANGE_PAGE 500     /* stream entries read per catch-up request */
#define MAX_ATTEMPTS 8     /* computations of one batch before giving up */
#define ROOM_SWEEP_MS 5000 /* how often rooms without members are freed */
#define ROOM_IDLE_MS 10000 /* how long a room stays cached with no member */
#define PRESENCE_GAP_MS 50 /* minimum time between two states of an entry */
#define FORGET_BEATS 12    /* presence beats between two idle actor sweeps */

typedef enum {
    ROOM_SUBSCRIBING, /* waiting for the SUBSCRIBE confirmation */
    ROOM_LOADING,     /* waiting for al_load */
    ROOM_CATCHING_UP, /* reading the stream after room->seq */
    ROOM_READY,
} room_state_t;

typedef struct {
    sess_t *sess;
    uint64_t seq;  /* last seq sent to this member */
    int ready;     /* snapshot or resumed sent, and events follow */
    int reset;     /* next snapshot is marked reset */
    int resume;    /* joined with since: replay the stream after seq */
    int replaying; /* a stream read for this member is in flight */
    int resumed_sent; /* the "resumed" reply went out */
    char key[PROTO_ID_MAX + 1]; /* of the presence entry and the claims */
    int has_entry;     /* the entry was written or is being written */
    json_t *state;     /* the latest presence state, sent or not */
    int dirty;         /* state waits for PRESENCE_GAP_MS to pass */
    uint64_t state_at; /* loop time the last state was sent to Redis */
} member_t;

typedef struct batch {
    struct batch *next;
    room_t *room;
    sess_t *sess; /* NULL once the connection closed */
    const room_sink_t *sink; /* replies when no session sent it */
    void *sink_arg;
    jwt_role_t role; /* the writer's role in the room when it sent */
    int enforced;    /* computed under enforced claims */
    char sub[JWT_SUB_MAX + 1]; /* the writer's token subject */
    msg_t msg;
    int attempts;
} batch_t;

struct room {
    char name[PROTO_ROOM_MAX + 1];
    room_state_t state;
    int loaded;          /* the cache contains the room as of seq */
    uint64_t seq;
    uint64_t seen_seq;   /* highest seq seen on the channel */
    map_t objs;          /* id -> obj_t*, tombstones included */
    snap_cache_t snap;   /* objs encoded for snapshots, until they change */
    aware_t *aware;      /* presence and claims */
    int aware_once;      /* presence and claims were loaded before */
    int resend_entries;  /* write the members' entries after the load */
    member_t *members;
    size_t nmembers, cap_members;
    batch_t *waiting;    /* FIFO of batches not yet computed */
    batch_t *waiting_tail;
    batch_t *in_flight;  /* the batch whose al_apply has not returned */
    unsigned requests;   /* loads and stream reads not yet returned */
    struct room *next_idle; /* list built by sweep() */
    uint64_t idle_since; /* loop time when the last member left */
};

static const config_t *cfg;
static store_t *store;
static uv_loop_t *loop;
static uv_timer_t sweep_timer;
static map_t rooms;
static size_t in_flight_count;

static char conn_prefix[20]; /* random per process, so keys never repeat */
static uv_timer_t beat_timer;     /* renews presence entries */
static uv_timer_t flush_timer;    /* sends presence states that waited */
static size_t pending_states;     /* members with a state waiting */
static uint64_t sweep_from;       /* loop time before which no sweeps run */

static void room_advance(room_t *r);
static void pump(room_t *r);
static void on_beat(uv_timer_t *t);

/* Registry */

static void sweep(uv_timer_t *t);

int room_module_init(uv_loop_t *uv_loop, const config_t *config,
                     store_t *st)
{
    uint32_t nonce[2];

    cfg = config;
    store = st;
    loop = uv_loop;
    map_init(&rooms);
    uv_timer_init(loop, &sweep_timer);
    uv_timer_start(&sweep_timer, sweep, ROOM_SWEEP_MS, ROOM_SWEEP_MS);
    if (getrandom(nonce, sizeof(nonce), 0) != sizeof(nonce))
        nonce[0] = (uint32_t)uv_hrtime(), nonce[1] = (uint32_t)getpid();
    snprintf(conn_prefix, sizeof(conn_prefix), "%08x%08x", nonce[0],
             nonce[1]);
    uv_timer_init(loop, &flush_timer);
    uv_timer_init(loop, &beat_timer);
    uv_timer_start(&beat_timer, on_beat, cfg->presence_ttl_s * 1000 / 3,
                   cfg->presence_ttl_s * 1000 / 3);
    return 0;
}

void room_module_stop(void)
{
    if (!uv_is_closing((uv_handle_t *)&sweep_timer)) {
        uv_close((uv_handle_t *)&sweep_timer, NULL);
        uv_close((uv_handle_t *)&beat_timer, NULL);
        uv_close((uv_handle_t *)&flush_timer, NULL);
    }
}

static void free_obj_entry(const char *key, void *value, void *arg)
{
    obj_free(value);
}

static void free_batches(batch_t *b)
{
    while (b) {
        batch_t *next = b->next;

        /* A sink frees its request when its callback runs. */
        if (b->sink)
            b->sink->fail(MSG_ERR_UNAVAILABLE, "the server is stopping",
                          b->sink_arg);
        msg_clear(&b->msg);
        free(b);
        b = next;
    }
}

static void free_room(const char *key, void *value, void *arg)
{
    room_t *r = value;

    map_each(&r->objs, free_obj_entry, NULL);
    map_free(&r->objs);
    snap_forget(&r->snap);
    for (size_t i = 0; i < r->nmembers; i++)
        json_decref(r->members[i].state);
    free(r->members);
    free_batches(r->waiting);
    aware_free(r->aware);
    free(r);
}

void room_module_free(void)
{
    map_each(&rooms, free_room, NULL);
    map_free(&rooms);
}

/* Returns 1 when nothing refers to r but the registry. */
static int evictable(const room_t *r, uint64_t now)
{
    return r->nmembers == 0 && !r->in_flight && !r->waiting &&
           r->requests == 0 && r->state == ROOM_READY &&
           now - r->idle_since >= ROOM_IDLE_MS;
}

static void collect_idle(const char *key, void *value, void *arg)
{
    room_t **list = arg;
    room_t *r = value;

    if (evictable(r, uv_now(loop))) {
        r->next_idle = *list;
        *list = r;
    }
}

/* Frees the rooms that had no member for ROOM_IDLE_MS, so memory and
 * subscriptions follow the rooms in use. */
static void sweep(uv_timer_t *t)
{
    room_t *idle = NULL;

    map_each(&rooms, collect_idle, &idle);
    while (idle) {
        room_t *r = idle;

        idle = r->next_idle;
        log_debug("room", "room %s: freed after %d ms without members",
                  r->name, ROOM_IDLE_MS);
        store_unsubscribe(store, r->name);
        map_remove(&rooms, r->name);
        free_room(r->name, r, NULL);
    }
}

const char *room_name(const room_t *r)
{
    return r->name;
}

size_t room_count(void)
{
    return rooms.len;
}

size_t room_batches_in_flight(void)
{
    return in_flight_count;
}

static room_t *get_room(const char *name, int create)
{
    room_t *r = map_get(&rooms, name);

    if (r || !create)
        return r;
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    snprintf(r->name, sizeof(r->name), "%s", name);
    map_init(&r->objs);
    r->aware = aware_new(name);
    if (!r->aware) {
        free(r);
        return NULL;
    }
    r->state = ROOM_SUBSCRIBING;
    if (map_put(&rooms, name, r, NULL) < 0) {
        aware_free(r->aware);
        free(r);
        return NULL;
    }
    if (store_subscribe(store, name) < 0) {
        map_remove(&rooms, name);
        aware_free(r->aware);
        free(r);
        return NULL;
    }
    return r;
}

/* Members */

static member_t *find_member(room_t *r, const sess_t *s)
{
    for (size_t i = 0; i < r->nmembers; i++)
        if (r->members[i].sess == s)
            return &r->members[i];
    return NULL;
}

static int add_member(room_t *r, sess_t *s)
{
    if (r->nmembers == r->cap_members) {
        size_t cap = r->cap_members ? r->cap_members * 2 : 8;
        member_t *m = realloc(r->members, cap * sizeof(*m));

        if (!m)
            return -ENOMEM;
        r->members = m;
        r->cap_members = cap;
    }
    r->members[r->nmembers++] = (member_t){.sess = s};
    return 0;
}

static void drop_entry(room_t *r, member_t *m);

static void remove_member(room_t *r, sess_t *s)
{
    member_t *m = find_member(r, s);

    if (m) {
        drop_entry(r, m);
        *m = r->members[--r->nmembers];
    }
    if (r->nmembers == 0)
        r->idle_since = uv_now(loop);
    for (size_t i = 0; i < s->nrooms; i++) {
        if (s->rooms[i] == r) {
            s->rooms[i] = s->rooms[--s->nrooms];
            break;
        }
    }
}

/* Builds the array of the cache's objects. Returns NULL on failure. */
static json_t *objects_json(void *arg)
{
    room_t *r = arg;
    json_t *objects = json_array();

    for (size_t i = 0; objects && i < r->objs.nbuckets; i++) {
        for (map_entry_t *e = r->objs.buckets[i]; e; e = e->next) {
            const obj_t *o = e->value;

            if (!o->deleted && json_array_append_new(objects,
                                                     obj_to_wire(o)) < 0) {
                json_decref(objects);
                return NULL;
            }
        }
    }
    return objects;
}

/* Builds the snapshot message without its objects. Returns NULL on
 * failure. */
static json_t *snapshot_head(room_t *r, int reset)
{
    json_t *msg = json_pack("{s:s, s:s, s:I}", "type", "snapshot", "room",
                            r->name, "seq", (json_int_t)r->seq);

    if (msg && reset)
        json_object_set_new(msg, "reset", json_true());
    if (msg && aware_describe(r->aware, msg) < 0) {
        json_decref(msg);
        return NULL;
    }
    return msg;
}

static void start_replay(room_t *r, member_t *m);
static void wait_for_drain(room_t *r, member_t *m);

/* Sends snapshots to the members that wait for one, and starts the replay
 * of members that resume. */
static void serve_members(room_t *r)
{
    json_t *heads[2] = {NULL, NULL};      /* plain, reset */
    buf_t *bufs[2][ENC_COUNT] = {{NULL}}; /* by kind and encoding */

    if (!aware_loaded(r->aware))
        return;
    for (size_t i = 0; i < r->nmembers; i++) {
        member_t *m = &r->members[i];
        enc_t enc = m->sess->enc;
        buf_t **slot;

        if (m->resume && !m->ready && !m->replaying) {
            start_replay(r, m);
            if (!m->reset)
                continue;
        }
        if ((m->ready && !m->reset) || m->replaying)
            continue;

        /* One snapshot of each kind and encoding is built and shared by
         * the members. */
        slot = &bufs[m->reset][enc];
        if (!heads[m->reset])
            heads[m->reset] = snapshot_head(r, m->reset);
        if (!*slot && heads[m->reset])
            *slot = snap_message(&r->snap, enc, heads[m->reset],
                                 objects_json, r);
        if (!*slot) {
            sess_send_error(m->sess, MSG_ERR_INTERNAL, r->name, 0,
                            "cannot build the snapshot of room %s",
                            r->name);
            continue;
        }
        /* A snapshot may be larger than the queue limit, so it goes paced
         * unless another paced message still waits: a client that joins
         * again and again without reading is then closed. */
        if (m->sess->paced_bytes == 0)
            sess_send_paced(m->sess, *slot);
        else
            sess_send(m->sess, *slot);
        m->ready = 1;
        m->reset = 0;
        m->resume = 0;
        m->seq = r->seq;
    }
    for (int kind = 0; kind < 2; kind++) {
        json_decref(heads[kind]);
        for (int enc = 0; enc < ENC_COUNT; enc++)
            buf_unref(bufs[kind][enc]);
    }
}

/* Events */

/* Builds the event message of body at seq into w. Returns 0, or -ENOMEM
 * after logging. */
static int event_wire(room_t *r, uint64_t seq, const json_t *body,
                      wire_t *w)
{
    json_t *msg = json_pack("{s:s, s:s, s:I}", "type", "event", "room",
                            r->name, "seq", (json_int_t)seq);

    if (!msg || json_object_update(msg, (json_t *)body) < 0) {
        json_decref(msg);
        log_error("room", "room %s: cannot build event %" PRIu64, r->name,
                  seq);
        return -ENOMEM;
    }
    wire_init(w, msg);
    return 0;
}

/* Sends an event to every ready member that has not seen its seq, encoding
 * it at most once per encoding. */
static void fan_out(room_t *r, uint64_t seq, json_t *body)
{
    wire_t w;

    if (event_wire(r, seq, body, &w) < 0)
        return;
    for (size_t i = 0; i < r->nmembers; i++) {
        member_t *m = &r->members[i];

        if (!m->ready || m->seq >= seq)
            continue;
        m->seq = seq;
        sess_send_wire(m->sess, &w);
        metrics.events_sent++;
    }
    wire_clear(&w);
}

/* Replaces the cached object of obj->id with obj (taking it). */
static int install(room_t *r, obj_t *obj)
{
    void *old;

    snap_forget(&r->snap);
    if (map_put(&r->objs, obj->id, obj, &old) < 0) {
        obj_free(obj);
        return -ENOMEM;
    }
    obj_free(old);
    return 0;
}

/* Applies the ops of one event body to the cache. Returns 0 or a negative
 * code; on failure the cache may hold part of the event. */
static int replay_ops(room_t *r, uint64_t seq, const json_t *body)
{
    const char *actor = json_string_value(json_object_get(body, "actor"));
    const json_t *ops = json_object_get(body, "ops");
    proto_limits_t limits;
    char err[PROTO_ERR_MAX];
    size_t i;
    json_t *j;

    if (!actor || !json_is_array(ops))
        return -EINVAL;

    /* Events were validated by their writer; these limits only bound
     * what a corrupt record could make the server do. */
    limits = cfg->limits;
    limits.max_fields = 65536;
    json_array_foreach(ops, i, j) {
        op_t op;
        obj_t *next = NULL;
        int rc;

        op_init(&op);
        rc = msg_op_from_json(j, &limits, 1, &op, err, sizeof(err));
        if (rc == 0)
            rc = obj_replay(map_get(&r->objs, op.id), &op, actor, &op.base,
                            &next);
        if (rc == 0) {
            next->rev = seq;
            rc = install(r, next);
        }
        op_clear(&op);
        if (rc < 0) {
            log_error("room", "room %s: cannot replay op %zu of event %" PRIu64
                      ": %s", r->name, i, seq, rc == -EINVAL ? err : "failed");
            return rc;
        }
    }
    return 0;
}

/* Applies the event with the next seq to the cache and sends it to the
 * members. Returns 0 or a negative code. */
static int apply_event(room_t *r, uint64_t seq, const char *body,
                       size_t len)
{
    char err[PROTO_ERR_MAX];
    json_t *j = NULL;
    int rc;

    rc = unpack_json(body, len, PACK_DEPTH_MAX, &j, err, sizeof(err));
    if (rc < 0) {
        log_error("room", "room %s: undecodable event %" PRIu64 ": %s",
                  r->name, seq, err);
        return rc;
    }
    rc = replay_ops(r, seq, j);
    if (rc == 0) {
        r->seq = seq;
        fan_out(r, seq, j);
    }
    json_decref(j);
    return rc;
}

static void start_load(room_t *r);
static void start_catch_up(room_t *r);

static void on_range(int status, const store_entry_t *entries, size_t n,
                     uint64_t first_seq, uint64_t room_seq, void *arg)
{
    room_t *r = arg;

    r->requests--;
    if (status < 0) {
        log_warn("room", "room %s: cannot read the stream; retrying when "
                 "Redis is back", r->name);
        store_resync(store);
        return;
    }
    if (room_seq < r->seq) {
        log_warn("room", "room %s: Redis is at seq %" PRIu64 " but the cache "
                 "is at %" PRIu64 "; Redis lost data, reloading",
                 r->name, room_seq, r->seq);
        start_load(r);
        return;
    }
    if (n > 0 && entries[0].seq != r->seq + 1) {
        /* NOTE: members get a snapshot marked reset in place of the
         * events the trimmed stream no longer holds. */
        log_warn("room", "room %s: stream starts at %" PRIu64
                 " but the cache is at %" PRIu64 "; reloading",
                 r->name, first_seq, r->seq);
        start_load(r);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (entries[i].seq != r->seq + 1 ||
            apply_event(r, entries[i].seq, entries[i].body,
                        entries[i].len) < 0) {
            start_load(r);
            return;
        }
    }
    if (n == RANGE_PAGE) {
        start_catch_up(r);
        return;
    }

    /* A seq seen on the channel is in the stream before it is published,
     * so an empty read past it means the room's keys were removed. */
    if (n == 0 && r->seen_seq > r->seq) {
        log_warn("room", "room %s: seq %" PRIu64 " was published but is "
                 "not in the stream", r->name, r->seen_seq);
        r->seen_seq = r->seq;
    }
    room_advance(r);
}

/* Reads the stream after r->seq. */
static void start_catch_up(room_t *r)
{
    r->state = ROOM_CATCHING_UP;
    if (store_range(store, r->name, r->seq, RANGE_PAGE, on_range, r) == 0)
        r->requests++;
    else
        log_warn("room", "room %s: cannot catch up while Redis is down",
                 r->name);
}

static void on_load(int status, const store_room_t *sr, void *arg)
{
    room_t *r = arg;
    char err[PROTO_ERR_MAX];

    r->requests--;
    if (status < 0) {
        log_warn("room", "room %s: cannot load; retrying when Redis is back",
                 r->name);
        store_resync(store);
        return;
    }
    map_each(&r->objs, free_obj_entry, NULL);
    map_free(&r->objs);
    snap_forget(&r->snap);
    for (size_t i = 0; i < sr->n; i++) {
        obj_t *o = NULL;

        if (unpack_obj(sr->blobs[i], sr->blob_lens[i], sr->ids[i],
                       sr->revs[i], &o, err, sizeof(err)) < 0 ||
            install(r, o) < 0) {
            log_error("room", "room %s: skipping unreadable object %s: %s",
                      r->name, sr->ids[i], err);
        }
    }

    /* Members that saw events of the old cache get a fresh snapshot. */
    if (r->loaded && sr->seq != r->seq)
        for (size_t i = 0; i < r->nmembers; i++)
            r->members[i].reset = r->members[i].ready;
    if (sr->seq < r->seq)
        r->seen_seq = sr->seq; /* seqs seen before Redis lost data */
    r->loaded = 1;
    r->seq = sr->seq;
    log_info("room", "room %s: loaded %zu objects at seq %" PRIu64, r->name,
             sr->n, r->seq);
    r->state = ROOM_READY;
    room_advance(r);
}

static void start_load(room_t *r)
{
    r->state = ROOM_LOADING;
    if (store_load(store, r->name, on_load, r) == 0)
        r->requests++;
    else
        log_warn("room", "room %s: cannot load while Redis is down",
                 r->name);
}

/* Moves a ready room forward: catches up when the channel showed a newer
 * seq, else serves waiting members and batches. */
static void room_advance(room_t *r)
{
    if (r->seen_seq > r->seq) {
        start_catch_up(r);
        return;
    }
    r->state = ROOM_READY;
    serve_members(r);
    pump(r);
}

static void start_aware_load(room_t *r);

void room_on_subscribed(const char *name, void *arg)
{
    room_t *r = get_room(name, 0);

    if (!r)
        return;

    /* Redis may have lost the entries while the channel was down. */
    r->resend_entries = r->aware_once;
    start_aware_load(r);
    if (r->loaded)
        start_catch_up(r);
    else
        start_load(r);
}

void room_on_message(const char *name, uint64_t seq, const char *body,
                     size_t len, void *arg)
{
    room_t *r = get_room(name, 0);

    if (!r)
        return;
    if (seq > r->seen_seq)
        r->seen_seq = seq;
    if (r->state != ROOM_READY || seq <= r->seq)
        return;
    if (seq != r->seq + 1) {
        log_info("room", "room %s: seq %" PRIu64 " after %" PRIu64
                 "; filling the gap from the stream", name, seq, r->seq);
        start_catch_up(r);
        return;
    }
    if (apply_event(r, seq, body, len) < 0)
        start_load(r);
}

static void resubscribe(const char *key, void *value, void *arg)
{
    room_t *r = value;

    r->state = ROOM_SUBSCRIBING;
    if (store_subscribe(store, r->name) < 0)
        log_warn("room", "room %s: cannot subscribe", r->name);
}

void room_on_connection(int up, void *arg)
{
    if (up) {
        sweep_from = uv_now(loop) + (uint64_t)cfg->presence_ttl_s * 1000;
        log_info("room", "Redis is back: resubscribing %zu rooms",
                 rooms.len);
        map_each(&rooms, resubscribe, NULL);
        return;
    }
    log_warn("room", "Redis is down: writes fail with 'unavailable' until "
             "it is back");
}

/* Resuming */

/* A stream read for one resuming member. The member is found again by its
 * session id, as the member array moves and the session may close. */
typedef struct {
    room_t *room;
    uint64_t sess_id;
} replay_t;

static member_t *find_member_by_id(room_t *r, uint64_t sess_id)
{
    for (size_t i = 0; i < r->nmembers; i++)
        if (r->members[i].sess->id == sess_id)
            return &r->members[i];
    return NULL;
}

/* Sends one stream entry to m as an event. Returns 0 or a negative code. */
static int replay_entry(room_t *r, member_t *m, const store_entry_t *e)
{
    char err[PROTO_ERR_MAX];
    json_t *body = NULL;
    wire_t w;
    int rc;

    if (unpack_json(e->body, e->len, PACK_DEPTH_MAX, &body, err,
                    sizeof(err)) < 0) {
        log_error("room", "room %s: undecodable event %" PRIu64 ": %s",
                  r->name, e->seq, err);
        return -EINVAL;
    }
    rc = event_wire(r, e->seq, body, &w);
    json_decref(body);
    if (rc < 0)
        return rc;
    sess_send_wire_paced(m->sess, &w);
    wire_clear(&w);
    m->seq = e->seq;
    return 0;
}

/* Sends the reply to a join with since, before the first replayed event;
 * seq is the room's seq the replay runs up to. */
static void send_resumed(room_t *r, member_t *m, uint64_t seq)
{
    json_t *msg = json_pack("{s:s, s:s, s:I, s:I}", "type", "resumed",
                            "room", r->name, "since", (json_int_t)m->seq,
                            "seq", (json_int_t)seq);

    if (msg && aware_describe(r->aware, msg) < 0) {
        json_decref(msg);
        msg = NULL;
    }
    sess_send_json(m->sess, msg);
    m->resumed_sent = 1;
}

/* Replaces a replay that cannot be served from the stream by a snapshot
 * marked reset. */
static void replay_reset(room_t *r, member_t *m, const char *why)
{
    log_info("room", "room %s: c%" PRIu64 " resumes from %" PRIu64
             " but %s; sending a reset snapshot", r->name, m->sess->id,
             m->seq, why);
    m->replaying = 0;
    m->resume = 0;
    m->ready = 0;
    m->reset = 1;
    if (r->state == ROOM_READY)
        serve_members(r);
}

static void on_replay(int status, const store_entry_t *entries, size_t n,
                      uint64_t first_seq, uint64_t room_seq, void *arg)
{
    replay_t *rp = arg;
    room_t *r = rp->room;
    member_t *m = find_member_by_id(r, rp->sess_id);

    r->requests--;
    free(rp);
    if (!m)
        return;
    m->replaying = 0;
    if (status < 0) {
        sess_send_error(m->sess, MSG_ERR_UNAVAILABLE, r->name, 0,
                        "cannot read the events of room %s; join again",
                        r->name);
        remove_member(r, m->sess);
        return;
    }
    if (m->seq > room_seq) {
        replay_reset(r, m, "it is ahead of the room");
        return;
    }
    if (n > 0 && entries[0].seq != m->seq + 1) {
        replay_reset(r, m, "the stream no longer reaches back that far");
        return;
    }
    if (!m->resumed_sent)
        send_resumed(r, m, room_seq > r->seq ? room_seq : r->seq);
    for (size_t i = 0; i < n; i++) {
        if (replay_entry(r, m, &entries[i]) < 0) {
            replay_reset(r, m, "an event is unreadable");
            return;
        }

        /* The rest of the page is read again after the drain. */
        if (sess_backlogged(m->sess) && m->seq < r->seq) {
            wait_for_drain(r, m);
            return;
        }
    }

    /* Read on until the member has caught up with the cache, a page at a
     * time once the client has taken the last one. */
    if (n == RANGE_PAGE || m->seq < r->seq) {
        if (n == 0) {
            replay_reset(r, m, "the stream ends before the room's seq");
            return;
        }
        if (sess_backlogged(m->sess))
            wait_for_drain(r, m);
        else
            start_replay(r, m);
        return;
    }
    m->ready = 1;
    m->resume = 0;
}

/* Continues a replay once the member's queue has drained. */
static void on_drain(sess_t *s, void *arg)
{
    replay_t *rp = arg;
    room_t *r = rp->room;
    member_t *m = find_member_by_id(r, rp->sess_id);

    r->requests--;
    free(rp);
    if (!m || s->close_code)
        return;
    m->replaying = 0;
    start_replay(r, m);
}

/* Parks a replay until the member's client has read what is queued. */
static void wait_for_drain(room_t *r, member_t *m)
{
    replay_t *rp = malloc(sizeof(*rp));

    if (!rp) {
        replay_reset(r, m, "the server is out of memory");
        return;
    }
    rp->room = r;
    rp->sess_id = m->sess->id;
    if (sess_on_drain(m->sess, on_drain, rp) < 0) {
        free(rp);
        replay_reset(r, m, "the server is out of memory");
        return;
    }
    m->replaying = 1;
    r->requests++;
}

/* Reads the stream after m->seq for a resuming member. */
static void start_replay(room_t *r, member_t *m)
{
    replay_t *rp;

    /* A since ahead of this instance's cache may still be behind Redis
     * (this instance lags the channel), so Redis' seq decides, in
     * on_replay(). */
    if (m->seq == r->seq) {
        if (!m->resumed_sent)
            send_resumed(r, m, r->seq);
        m->ready = 1;
        m->resume = 0;
        return;
    }
    rp = malloc(sizeof(*rp));
    if (!rp || store_range(store, r->name, m->seq, RANGE_PAGE, on_replay,
                           rp) < 0) {
        free(rp);
        sess_send_error(m->sess, MSG_ERR_UNAVAILABLE, r->name, 0,
                        "cannot read the events of room %s; join again",
                        r->name);
        return;
    }
    rp->room = r;
    rp->sess_id = m->sess->id;
    m->replaying = 1;
    r->requests++;
}

/* Presence and claims */


/* A Redis call made for one member, found again by its session id. */
typedef struct {
    room_t *room;
    uint64_t sess_id;
    uint64_t ref;
    msg_target_t target;
    uint64_t ttl;
} aware_req_t;

static void conn_of(const sess_t *s, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s-%" PRIu64, conn_prefix, s->id);
}

static void emit_aware(json_t *msg, void *arg)
{
    room_t *r = arg;
    wire_t w;

    /* A resuming member has the lists of its "resumed" reply, so it takes
     * changes from then on, while its replay still runs. */
    wire_init(&w, msg);
    for (size_t i = 0; i < r->nmembers; i++)
        if (r->members[i].ready || r->members[i].resumed_sent)
            sess_send_wire(r->members[i].sess, &w);
    wire_clear(&w);
}

void room_on_aware(const char *name, const char *json, size_t len, void *arg)
{
    room_t *r = get_room(name, 0);

    (void)arg;
    if (r)
        aware_on_announce(r->aware, json, len, emit_aware, r);
}

static void beat_room(const char *key, void *value, void *arg);
static int send_state(room_t *r, member_t *m, int joining);

static void on_aware_load(int status, const struct redisReply *reply,
                          void *arg)
{
    room_t *r = arg;

    r->requests--;
    if (status < 0 || aware_load_reply(r->aware, reply, emit_aware, r) < 0) {
        log_warn("room", "room %s: cannot load presence and claims; "
                 "retrying when Redis is back", r->name);
        store_resync(store);
        return;
    }

    /* The first load sweeps at once: no instance may have served the room
     * for a while, so entries of a crashed one can be waiting. */
    if (!r->aware_once)
        beat_room(r->name, r, NULL);
    r->aware_once = 1;
    if (r->resend_entries) {
        r->resend_entries = 0;
        for (size_t i = 0; i < r->nmembers; i++)
            if (r->members[i].has_entry)
                send_state(r, &r->members[i], 1);
    }
    if (r->state == ROOM_READY) {
        serve_members(r);
        pump(r);
    }
}

static void start_aware_load(room_t *r)
{
    aware_unload(r->aware);
    if (aware_load(store, r->name, on_aware_load, r) == 0)
        r->requests++;
}

static aware_req_t *new_req(room_t *r, const sess_t *s, const msg_t *msg)
{
    aware_req_t *req = calloc(1, sizeof(*req));

    if (!req)
        return NULL;
    req->room = r;
    req->sess_id = s->id;
    if (msg) {
        req->ref = msg->ref;
        req->target = msg->target;
        req->ttl = msg->ttl;
    }
    r->requests++;
    return req;
}

/* Ends a request: returns its member, or NULL when it left. */
static member_t *end_req(aware_req_t *req)
{
    req->room->requests--;
    return find_member_by_id(req->room, req->sess_id);
}

static void on_state_set(int status, const struct redisReply *reply,
                         void *arg)
{
    aware_req_t *req = arg;
    member_t *m = end_req(req);
    const char *outcome = status == 0 ? aware_reply_word(reply) : NULL;

    if (m && outcome && strcmp(outcome, "forbidden") == 0) {
        m->has_entry = 0;
        sess_send_error(m->sess, MSG_ERR_FORBIDDEN, req->room->name, 0,
                        "presence key %s belongs to another user; join "
                        "room %s with another actor", m->key,
                        req->room->name);
    } else if (m && outcome && strcmp(outcome, "moved") == 0) {
        m->has_entry = 0; /* another connection took the entry over */
    } else if (m && m->has_entry && outcome && strcmp(outcome, "gone") == 0) {
        /* Swept while this instance stalled: write the entry again. */
        log_info("room", "room %s: presence of %s was swept; writing it "
                 "again", req->room->name, m->key);
        send_state(req->room, m, 1);
    } else if (status < 0) {
        log_warn("room", "room %s: cannot set the presence of %s; it is "
                 "sent again when Redis is back", req->room->name,
                 m ? m->key : "a member that left");
    }
    free(req);
}

/* Sends a member's state to Redis; joining creates the entry when it is
 * missing. Returns 0 or a negative code. */
static int send_state(room_t *r, member_t *m, int joining)
{
    json_t *state = m->state;
    const sess_t *s = m->sess;
    char conn[64], *text;
    json_t *entry = json_pack("{s:s, s:s}", "client", m->key, "sub",
                              s->claims.sub);
    aware_req_t *req;
    int rc = -ENOMEM;

    if (entry && s->claims.name[0])
        json_object_set_new(entry, "name", json_string(s->claims.name));
    if (entry)
        json_object_set(entry, "state", state);
    text = entry ? jsontext_dumps(entry) : NULL;
    json_decref(entry);
    req = text ? new_req(r, s, NULL) : NULL;
    if (req) {
        conn_of(s, conn, sizeof(conn));
        rc = aware_set(store, r->name, m->key, conn, s->claims.sub, text,
                       cfg->presence_ttl_s * 1000, joining, on_state_set,
                       req);
        if (rc < 0) {
            r->requests--;
            free(req);
        }
    }
    free(text);
    m->state_at = uv_now(loop);
    return rc;
}

/* Creates the member's presence entry when it joins. */
static void start_entry(room_t *r, member_t *m, const msg_t *join)
{
    json_t *empty;

    if (m->has_entry)
        return;
    if (join->has_actor) {
        snprintf(m->key, sizeof(m->key), "%s", join->actor);
    } else {
        conn_of(m->sess, m->key, sizeof(m->key));
        sess_send_json(m->sess, json_pack("{s:s, s:s, s:s}", "type",
                                          "joined", "room", r->name,
                                          "client", m->key));
    }
    json_decref(m->state);
    m->state = empty = json_object();
    m->has_entry = empty && send_state(r, m, 1) == 0;
}

static void drop_entry(room_t *r, member_t *m)
{
    char conn[64];

    if (m->dirty) {
        m->dirty = 0;
        pending_states--;
    }
    json_decref(m->state);
    m->state = NULL;
    if (!m->has_entry)
        return;
    m->has_entry = 0;
    conn_of(m->sess, conn, sizeof(conn));
    if (aware_drop(store, r->name, m->key, conn,
                   cfg->claim_grace_s * 1000) < 0)
        log_info("room", "room %s: presence of %s is left to expire",
                 r->name, m->key);
}

static void flush_member(room_t *r, member_t *m)
{
    m->dirty = 0;
    pending_states--;

    /* A state that Redis did not take is sent again when Redis is back. */
    if (m->has_entry)
        send_state(r, m, 0);
}

static void flush_room(const char *key, void *value, void *arg)
{
    room_t *r = value;
    uint64_t now = uv_now(loop);

    (void)key;
    (void)arg;
    for (size_t i = 0; i < r->nmembers; i++) {
        member_t *m = &r->members[i];

        if (m->dirty && now - m->state_at >= PRESENCE_GAP_MS)
            flush_member(r, m);
    }
}

static void on_flush(uv_timer_t *t)
{
    map_each(&rooms, flush_room, NULL);
    if (pending_states == 0)
        uv_timer_stop(t);
}

void room_presence(sess_t *s, msg_t *msg)
{
    room_t *r = get_room(msg->room, 0);
    member_t *m = r ? find_member(r, s) : NULL;

    if (!m) {
        sess_send_error(s, MSG_ERR_NOT_JOINED, msg->room, 0,
                        "join room %s before setting presence in it",
                        msg->room);
        return;
    }
    if (!m->dirty)
        pending_states++;
    m->dirty = 1;
    json_decref(m->state);
    m->state = msg->state;
    msg->state = NULL;
    if (uv_now(loop) - m->state_at >= PRESENCE_GAP_MS)
        flush_member(r, m);
    else if (!uv_is_active((uv_handle_t *)&flush_timer))
        uv_timer_start(&flush_timer, on_flush, PRESENCE_GAP_MS / 2,
                       PRESENCE_GAP_MS / 2);
}

/* Writes again the entry of the member with key, which Redis lost. */
static void restore_entry(const char *key, void *arg)
{
    room_t *r = arg;

    for (size_t i = 0; i < r->nmembers; i++) {
        member_t *m = &r->members[i];

        if (m->has_entry && strcmp(m->key, key) == 0) {
            log_info("room", "room %s: presence of %s is missing in Redis; "
                     "writing it again", r->name, key);
            send_state(r, m, 1);
        }
    }
}

static void on_beat_reply(int status, const struct redisReply *reply,
                          void *arg)
{
    char *name = arg;
    room_t *r = get_room(name, 0);

    if (status == -EPROTO)
        log_warn("room", "room %s: al_beat failed: %s", name,
                 aware_reply_word(reply));
    else if (status == 0 && r)
        aware_each_missing(reply, restore_entry, r);
    free(name);
}

/* Renews the entries of this instance's members and sweeps the room,
 * unless Redis came back less than a ttl ago: the other instances may not
 * have renewed their entries yet. */
static void beat_room(const char *key, void *value, void *arg)
{
    room_t *r = value;
    char *name;
    const char **keys = calloc(r->nmembers + 1, sizeof(*keys));
    char (*conns)[64] = calloc(r->nmembers + 1, sizeof(*conns));
    const char **conn_ptrs = calloc(r->nmembers + 1, sizeof(*conn_ptrs));
    size_t n = 0;

    (void)key;
    (void)arg;
    for (size_t i = 0; keys && conns && conn_ptrs && i < r->nmembers; i++) {
        member_t *m = &r->members[i];

        if (!m->has_entry)
            continue;
        conn_of(m->sess, conns[n], sizeof(conns[n]));
        conn_ptrs[n] = conns[n];
        keys[n++] = m->key;
    }
    name = keys && conns && conn_ptrs ? strdup(r->name) : NULL;
    if (name && (!store_is_up(store) ||
                 aware_beat(store, r->name, cfg->presence_ttl_s * 1000,
                            cfg->claim_grace_s * 1000,
                            uv_now(loop) >= sweep_from, keys, conn_ptrs, n,
                            on_beat_reply, name) < 0))
        free(name);
    free(keys);
    free(conns);
    free(conn_ptrs);
}

static void forget_actors(const char *key, void *value, void *arg)
{
    (void)value;
    (void)arg;
    store_forget(store, key, (uint64_t)cfg->actor_idle_s * 1000);
}

static void on_beat(uv_timer_t *t)
{
    static unsigned beats;

    (void)t;
    map_each(&rooms, beat_room, NULL);

    /* Idle actors are few and old, so a sweep every FORGET_BEATS beats
     * is enough. */
    if (++beats % FORGET_BEATS == 0 && store_is_up(store))
        map_each(&rooms, forget_actors, NULL);
}

/* Sends a claim_ack or release_ack. */
static void send_claim_ack(member_t *m, const aware_req_t *req,
                           const char *type, const char *status,
                           json_t *holder)
{
    json_t *msg = json_pack("{s:s, s:s, s:I, s:s, s:o}", "type", type,
                            "room", req->room->name, "ref",
                            (json_int_t)req->ref, "status", status,
                            "target", aware_target_json(&req->target));

    if (msg && strcmp(status, "granted") == 0)
        json_object_set_new(msg, "ttl", json_integer((json_int_t)req->ttl));
    if (msg && holder) {
        json_object_del(holder, "ttl");
        json_object_set(msg, "holder", holder);
    }
    sess_send_json(m->sess, msg);
}

static void on_claim_reply(int status, const struct redisReply *reply,
                           void *arg)
{
    aware_req_t *req = arg;
    member_t *m = end_req(req);
    const char *outcome = status == 0 ? aware_reply_word(reply) : NULL;
    json_t *holder;

    if (!m) {
        free(req);
        return;
    }
    if (!outcome) {
        sess_send_error(m->sess, MSG_ERR_UNAVAILABLE, req->room->name, 0,
                        "the claim was not decided: Redis did not answer; "
                        "retry");
    } else if (strcmp(outcome, "full") == 0) {
        sess_send_error(m->sess, MSG_ERR_TOO_LARGE, req->room->name, 0,
                        "room %s holds %d claims, or the item %d frame "
                        "ranges, the limits; release some first",
                        req->room->name, AWARE_CLAIMS_MAX, STORE_RANGES_MAX);
    } else if (strcmp(outcome, "denied") == 0) {
        holder = aware_reply_holder(reply);
        send_claim_ack(m, req, "claim_ack", "denied", holder);
        json_decref(holder);
    } else {
        send_claim_ack(m, req, "claim_ack", "granted", NULL);
    }
    free(req);
}

static void on_release_reply(int status, const struct redisReply *reply,
                             void *arg)
{
    aware_req_t *req = arg;
    member_t *m = end_req(req);
    const char *outcome = status == 0 ? aware_reply_word(reply) : NULL;

    if (m && !outcome)
        sess_send_error(m->sess, MSG_ERR_UNAVAILABLE, req->room->name, 0,
                        "the release was not done: Redis did not answer; "
                        "retry");
    else if (m)
        send_claim_ack(m, req, "release_ack", outcome, NULL);
    free(req);
}

/* Builds the JSON text of a claim by m. Returns NULL on failure. */
static char *claim_text(const member_t *m, const msg_t *msg)
{
    json_t *claim = json_pack("{s:o, s:s, s:s}", "target",
                              aware_target_json(&msg->target), "client",
                              m->key, "sub", m->sess->claims.sub);
    char *text;

    if (claim && m->sess->claims.name[0])
        json_object_set_new(claim, "name",
                            json_string(m->sess->claims.name));
    if (claim)
        json_object_set_new(claim, "ttl", json_integer((json_int_t)msg->ttl));
    text = claim ? jsontext_dumps(claim) : NULL;
    json_decref(claim);
    return text;
}

/* Returns the member of s that may claim in msg's room, or NULL after
 * sending the error. */
static member_t *claimer(sess_t *s, const msg_t *msg, room_t **out)
{
    room_t *r = get_room(msg->room, 0);
    member_t *m = r ? find_member(r, s) : NULL;
    jwt_role_t role;

    if (!m) {
        sess_send_error(s, MSG_ERR_NOT_JOINED, msg->room, 0,
                        "join room %s before claiming in it", msg->room);
        return NULL;
    }
    if (jwt_room_role(&s->claims, r->name, &role) < 0 ||
        role == JWT_ROLE_VIEWER) {
        sess_send_error(s, MSG_ERR_FORBIDDEN, msg->room, 0,
                        "role viewer may not claim in room %s", msg->room);
        return NULL;
    }
    if (!m->has_entry) {
        sess_send_error(s, MSG_ERR_FORBIDDEN, msg->room, 0,
                        "the connection has no presence entry in room %s; "
                        "join it again", msg->room);
        return NULL;
    }
    *out = r;
    return m;
}

void room_claim(sess_t *s, msg_t *msg)
{
    room_t *r = NULL;
    member_t *m = claimer(s, msg, &r);
    aware_req_t *req;
    char *text;
    int rc = -ENOMEM;

    if (!m)
        return;
    req = new_req(r, s, msg);
    text = msg->type == MSG_CLAIM ? claim_text(m, msg) : NULL;
    if (req && msg->type == MSG_RELEASE)
        rc = aware_release(store, r->name, &msg->target, m->key,
                           on_release_reply, req);
    else if (req && text)
        rc = aware_claim(store, r->name, &msg->target, m->key, text,
                         msg->ttl, on_claim_reply, req);
    free(text);
    if (rc < 0) {
        if (req) {
            r->requests--;
            free(req);
        }
        sess_send_error(s, MSG_ERR_UNAVAILABLE, msg->room, 0,
                        "cannot reach Redis to decide the %s; retry",
                        msg->type == MSG_CLAIM ? "claim" : "release");
    }
}

/* Joining and leaving */

/* Adds r to the rooms of s. Returns 0 or -ENOMEM. */
static int sess_add_room(sess_t *s, room_t *r)
{
    if (s->nrooms == s->cap_rooms) {
        size_t cap = s->cap_rooms ? s->cap_rooms * 2 : 4;
        room_t **rooms_of = realloc(s->rooms, cap * sizeof(*rooms_of));

        if (!rooms_of)
            return -ENOMEM;
        s->rooms = rooms_of;
        s->cap_rooms = cap;
    }
    s->rooms[s->nrooms++] = r;
    return 0;
}

/* Adds s to r, or restarts its join. Returns 0 or a negative code after
 * sending the error. */
static int enter(room_t *r, sess_t *s, const msg_t *join)
{
    member_t *m = find_member(r, s);

    if (m && m->replaying) {
        sess_send_error(s, MSG_ERR_INVALID_MESSAGE, r->name, 0,
                        "a join of room %s is still replaying events; wait "
                        "for it before joining again", r->name);
        return -EBUSY;
    }
    if (!m) {
        if (add_member(r, s) < 0 || sess_add_room(s, r) < 0) {
            remove_member(r, s);
            sess_send_error(s, MSG_ERR_INTERNAL, r->name, 0,
                            "out of memory joining room %s", r->name);
            return -ENOMEM;
        }
        m = find_member(r, s);
    }

    /* A second join starts over: a fresh snapshot or a new replay. */
    m->ready = 0;
    m->reset = 0;
    m->resume = join->has_since;
    m->resumed_sent = 0;
    m->seq = join->has_since ? join->since : 0;
    start_entry(r, m, join);
    return 0;
}

void room_join(sess_t *s, const msg_t *join)
{
    const char *name = join->room;
    room_t *r = get_room(name, 0);
    jwt_role_t role;

    if (jwt_room_role(&s->claims, name, &role) < 0) {
        log_info("room", "c%" PRIu64 ": %s may not join %s", s->id,
                 s->claims.sub, name);
        sess_send_error(s, MSG_ERR_FORBIDDEN, name, 0,
                        "the token of %s grants no role in room %s",
                        s->claims.sub, name);
        return;
    }
    if ((!r || !find_member(r, s)) && s->nrooms >= cfg->max_rooms) {
        log_info("room", "c%" PRIu64 ": join of %s rejected: %zu rooms "
                 "joined, the limit", s->id, name, cfg->max_rooms);
        sess_send_error(s, MSG_ERR_TOO_LARGE, name, 0,
                        "a connection may join at most %zu rooms "
                        "(--max-rooms); leave one before joining %s",
                        cfg->max_rooms, name);
        return;
    }
    if (!r)
        r = get_room(name, 1);
    if (!r) {
        sess_send_error(s, MSG_ERR_UNAVAILABLE, name, 0,
                        "cannot join room %s while Redis is unreachable; "
                        "retry later", name);
        return;
    }
    if (enter(r, s, join) < 0)
        return;
    if (r->state == ROOM_READY)
        serve_members(r);
}

void room_leave(sess_t *s, const char *name)
{
    room_t *r = get_room(name, 0);

    if (r)
        remove_member(r, s);
    sess_send_json(s, msg_left_json(name));
}

static void forget_session(batch_t *b, const sess_t *s)
{
    for (; b; b = b->next)
        if (b->sess == s)
            b->sess = NULL;
}

static void forget_in_room(const char *key, void *value, void *arg)
{
    room_t *r = value;

    forget_session(r->waiting, arg);
    if (r->in_flight && r->in_flight->sess == arg)
        r->in_flight->sess = NULL;
}

void room_drop_session(sess_t *s)
{
    /* Batches outlive a leave, so every room is searched, not only the
     * rooms the session is still in. */
    map_each(&rooms, forget_in_room, s);
    while (s->nrooms > 0)
        remove_member(s->rooms[0], s);
}

/* Batches */

static const obj_t *lookup_cache(const char *id, void *arg)
{
    return map_get(&((room_t *)arg)->objs, id);
}

/* Fails the waiting batches that b's connection sent after b for the same
 * actor: applying them first would put b behind the actor's last opseq,
 * where a resend of b is stale. */
static void fail_followers(batch_t *b, msg_err_t code)
{
    batch_t **p = &b->room->waiting;
    room_t *r = b->room;

    while (*p) {
        batch_t *f = *p;

        if (f->sess != b->sess || strcmp(f->msg.actor, b->msg.actor) != 0 ||
            f->msg.opseq <= b->msg.opseq) {
            p = &f->next;
            continue;
        }
        *p = f->next;
        if (r->waiting_tail == f)
            r->waiting_tail = NULL;
        sess_send_error(f->sess, code, r->name, f->msg.opseq,
                        "batch %" PRIu64 " of actor %s was not applied: "
                        "batch %" PRIu64 " before it failed; resend both in "
                        "order", f->msg.opseq, f->msg.actor, b->msg.opseq);
        msg_clear(&f->msg);
        free(f);
    }

    /* Restore the tail after removals. */
    r->waiting_tail = NULL;
    for (batch_t *w = r->waiting; w; w = w->next)
        r->waiting_tail = w;
}

/* Sends an error about batch b to its session or sink. */
static void reply_error(batch_t *b, msg_err_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply_error(batch_t *b, msg_err_t code, const char *fmt, ...)
{
    char text[PROTO_ERR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (b->sess)
        sess_send_error(b->sess, code, b->room->name, b->msg.opseq, "%s",
                        text);
    else if (b->sink)
        b->sink->fail(code, text, b->sink_arg);
}

static void fail_batch(batch_t *b, msg_err_t code, const char *why)
{
    if (b->sink) {
        reply_error(b, code, "batch %" PRIu64 " of actor %s was not "
                    "applied: %s", b->msg.opseq, b->msg.actor, why);
    } else if (b->sess) {
        sess_send_error(b->sess, code, b->room->name, b->msg.opseq,
                        "batch %" PRIu64 " of actor %s was not applied: %s",
                        b->msg.opseq, b->msg.actor, why);
        fail_followers(b, code);
        sess_hold(b->sess, b->msg.actor, b->msg.opseq, code);
    }
    msg_clear(&b->msg);
    free(b);
}

static void free_batch(batch_t *b)
{
    msg_clear(&b->msg);
    free(b);
}

/* A batch computed against the cache and sent to Redis. */
typedef struct {
    batch_t *batch;
    merge_out_t out;
    json_t *ack;  /* the ack without seq */
    json_t *body; /* the event body, NULL when nothing applied */
} apply_t;

static void free_apply(apply_t *a)
{
    merge_out_clear(&a->out);
    json_decref(a->ack);
    json_decref(a->body);
    free(a);
}

/* Puts the written objects into the cache when the cache is exactly one
 * seq behind, so members here get the event without waiting for the
 * channel. Otherwise the event arrives through the channel or stream. */
static void apply_locally(apply_t *a, uint64_t seq)
{
    room_t *r = a->batch->room;

    if (r->state != ROOM_READY || r->seq + 1 != seq)
        return;
    for (size_t i = 0; i < a->out.nobjs; i++) {
        obj_t *o = a->out.objs[i];

        a->out.objs[i] = NULL; /* the cache owns it now */
        o->rev = seq;
        if (install(r, o) < 0) {
            log_error("room", "room %s: out of memory; reloading", r->name);
            start_load(r);
            return;
        }
    }
    r->seq = seq;
    fan_out(r, seq, a->body);
}

static void send_ack(batch_t *b, json_t *ack, uint64_t seq)
{
    if (!b->sess && !b->sink)
        return;
    if (seq > 0)
        json_object_set_new(ack, "seq", json_integer((json_int_t)seq));
    if (b->sess)
        sess_send_json(b->sess, json_incref(ack));
    else
        b->sink->ack(ack, b->sink_arg);
}

/* Replies to a batch seen before with the ack of its first arrival. */
static void send_stored_ack(batch_t *b, uint64_t seq, const char *results,
                            size_t len)
{
    char err[PROTO_ERR_MAX];
    json_t *list = NULL;
    json_t *ack;

    if (!b->sess && !b->sink)
        return;
    if (unpack_json(results, len, PACK_DEPTH_MAX, &list, err,
                    sizeof(err)) < 0) {
        log_error("room", "room %s: unreadable stored ack of %s/%" PRIu64
                  ": %s", b->room->name, b->msg.actor, b->msg.opseq, err);
        reply_error(b, MSG_ERR_INTERNAL, "the stored ack of this batch is "
                    "unreadable");
        return;
    }
    ack = json_pack("{s:s, s:s, s:I, s:o}", "type", "ack", "room",
                    b->room->name, "opseq", (json_int_t)b->msg.opseq,
                    "results", list);
    if (ack)
        send_ack(b, ack, seq);
    json_decref(ack);
}

/* Adds the results of an acknowledged batch to the metrics. */
static void count_results(const batch_t *b, const merge_out_t *out)
{
    metrics_source_t src = b->sink ? METRICS_HTTP : METRICS_WS;

    metrics.batches[src]++;
    for (size_t i = 0; i < b->msg.nops; i++) {
        const op_result_t *res = &out->results[i];

        metrics.ops[src][res->status]++;
        metrics.conflicts += json_array_size(res->conflicts);
    }
}

static void on_apply(int status, store_outcome_t outcome, uint64_t seq,
                     const char *results, size_t len, void *arg)
{
    apply_t *a = arg;
    batch_t *b = a->batch;
    room_t *r = b->room;

    r->in_flight = NULL;
    in_flight_count--;
    if (status < 0) {
        fail_batch(b, MSG_ERR_UNAVAILABLE, "Redis did not apply it; retry");
    } else if (outcome == STORE_STALE) {
        /* Another write came first: catch up, then compute again. Under
         * enforced claims the claims may be what changed. */
        if (b->enforced)
            start_aware_load(r);
        b->next = r->waiting;
        r->waiting = b;
        if (!r->waiting_tail)
            r->waiting_tail = b;
        if (r->state == ROOM_READY)
            start_catch_up(r);
        free_apply(a);
        return;
    } else if (outcome == STORE_DUPLICATE) {
        send_stored_ack(b, seq, results, len);
        free_batch(b);
    } else if (outcome == STORE_TOO_OLD) {
        reply_error(b, MSG_ERR_STALE_OPSEQ,
                    "batch %" PRIu64 " of actor %s is older than the acks "
                    "this room keeps; read the room's state instead of "
                    "resending it", b->msg.opseq, b->msg.actor);
        free_batch(b);
    } else {
        count_results(b, &a->out);
        if (seq > 0)
            apply_locally(a, seq);
        send_ack(b, a->ack, seq);
        free_batch(b);
    }
    free_apply(a);
    pump(r);
}

/* Builds the ack, the event body and the records of a merged batch. */
static int build_apply(room_t *r, apply_t *a, msgpack_sbuffer *results,
                       msgpack_sbuffer *body)
{
    const msg_t *m = &a->batch->msg;
    const char **ids = calloc(m->nops + 1, sizeof(*ids));
    int rc;

    if (!ids)
        return -ENOMEM;
    for (size_t i = 0; i < m->nops; i++)
        ids[i] = m->ops[i].id;
    a->ack = msg_ack_json(r->name, m->opseq, 0, ids, a->out.results,
                          m->nops);
    free(ids);
    if (!a->ack)
        return -ENOMEM;
    rc = pack_json(results, json_object_get(a->ack, "results"));
    if (rc < 0 || a->out.applied == 0)
        return rc;

    a->body = json_pack("{s:s, s:I, s:O}", "actor", m->actor, "opseq",
                        (json_int_t)m->opseq, "ops", a->out.event_ops);
    if (!a->body)
        return -ENOMEM;
    return pack_json(body, a->body);
}

/* Packs the records of the objects written. */
static int pack_records(room_t *r, apply_t *a, msgpack_sbuffer *blobs,
                        store_write_t *writes)
{
    for (size_t i = 0; i < a->out.nobjs; i++) {
        const obj_t *o = a->out.objs[i];
        const obj_t *cur = map_get(&r->objs, o->id);
        int rc;

        msgpack_sbuffer_init(&blobs[i]);
        rc = pack_obj(&blobs[i], o);
        if (rc < 0)
            return rc;
        writes[i] = (store_write_t){
            .id = o->id,
            .expected_rev = cur ? cur->rev : 0,
            .blob = blobs[i].data,
            .blob_len = blobs[i].size,
        };
    }
    return 0;
}

/* Adds id to the reads unless the batch writes it or it is listed. */
static int add_read(room_t *r, map_t *seen, const char *id,
                    store_write_t *reads, size_t *nreads)
{
    const obj_t *cur;

    if (map_get(seen, id))
        return 0;
    if (map_put(seen, id, (void *)1, NULL) < 0)
        return -ENOMEM;
    cur = map_get(&r->objs, id);
    reads[(*nreads)++] = (store_write_t){
        .id = id,
        .expected_rev = cur ? cur->rev : 0,
    };
    return 0;
}

/* Lists the objects whose state the results depend on without the batch
 * writing them: the objects of conflicting and rejected ops and the room's
 * settings. Redis checks their revisions too, so no result is decided on a
 * cache older than the state the client was acked. */
static int collect_reads(room_t *r, apply_t *a, store_write_t *reads,
                         size_t *nreads)
{
    const msg_t *m = &a->batch->msg;
    map_t seen;
    int rc = 0;

    map_init(&seen);
    *nreads = 0;
    for (size_t i = 0; rc == 0 && i < a->out.nobjs; i++)
        rc = map_put(&seen, a->out.objs[i]->id, (void *)1, NULL);
    for (size_t i = 0; rc == 0 && i < m->nops; i++)
        rc = add_read(r, &seen, m->ops[i].id, reads, nreads);
    if (rc == 0)
        rc = add_read(r, &seen, OBJ_ROOM_ID, reads, nreads);
    if (rc == 0 && a->batch->enforced)
        reads[(*nreads)++] = (store_write_t){
            .id = AWARE_CLAIMS_ID,
            .expected_rev = aware_claims_rev(r->aware),
        };
    map_free(&seen);
    return rc;
}

/* Sends the computed batch to Redis. Returns 0 or a negative code. */
static int submit(batch_t *b, apply_t *a)
{
    size_t n = a->out.nobjs, nreads = 0;
    msgpack_sbuffer results, body;
    msgpack_sbuffer *blobs = calloc(n + 1, sizeof(*blobs));
    store_write_t *writes = calloc(n + 1, sizeof(*writes));
    store_write_t *reads = calloc(b->msg.nops + 2, sizeof(*reads));
    store_batch_t sb;
    int rc = -ENOMEM;

    msgpack_sbuffer_init(&results);
    msgpack_sbuffer_init(&body);
    if (blobs && writes && reads)
        rc = build_apply(b->room, a, &results, &body);
    if (rc == 0)
        rc = pack_records(b->room, a, blobs, writes);
    if (rc == 0)
        rc = collect_reads(b->room, a, reads, &nreads);
    if (rc == 0) {
        sb = (store_batch_t){
            .actor = b->msg.actor,
            .opseq = b->msg.opseq,
            .body = body.data,
            .body_len = body.size,
            .results = results.data,
            .results_len = results.size,
            .writes = writes,
            .n = n,
            .reads = reads,
            .nreads = nreads,
        };
        rc = store_apply(store, b->room->name, &sb, on_apply, a);
    }
    msgpack_sbuffer_destroy(&results);
    msgpack_sbuffer_destroy(&body);
    for (size_t i = 0; blobs && i < n; i++)
        msgpack_sbuffer_destroy(&blobs[i]);
    free(blobs);
    free(writes);
    free(reads);
    return rc;
}

/* The access check of a batch: the writer's role, then the claims of
 * other clients when the room enforces them. */
typedef struct {
    const batch_t *batch;
    const char *client;
    char why[PROTO_ERR_MAX];
} permit_arg_t;

static const char *permit_op(const msg_t *batch, const op_t *op,
                             const obj_t *cur, void *arg, const char **reason)
{
    permit_arg_t *pa = arg;
    const char *why = authz_check_op(batch, op, (void *)&pa->batch->role);

    if (why || !pa->batch->enforced)
        return why;
    why = aware_blocker(pa->batch->room->aware, op, cur, pa->client,
                        pa->batch->sub, pa->why, sizeof(pa->why));
    if (why)
        *reason = "claimed";
    return why;
}

/* Returns 1 when the room's settings enforce claims. */
static int claims_enforced(room_t *r)
{
    const obj_t *settings = map_get(&r->objs, OBJ_ROOM_ID);
    const char *mode;

    if (!settings || settings->deleted)
        return 0;
    mode = json_string_value(json_object_get(settings->fields, "claims"));
    return mode && strcmp(mode, "enforced") == 0;
}

/* The presence key a batch writes as: its member's, else its actor. */
static const char *writer_key(room_t *r, const batch_t *b)
{
    member_t *m = b->sess ? find_member(r, b->sess) : NULL;

    return m && m->has_entry ? m->key : b->msg.actor;
}

static void batch_run(batch_t *b)
{
    room_t *r = b->room;
    permit_arg_t pa = {.batch = b, .client = writer_key(r, b)};
    merge_permit_t permit = {.fn = permit_op, .arg = &pa};
    apply_t *a;

    b->enforced = claims_enforced(r);
    if (++b->attempts > MAX_ATTEMPTS) {
        fail_batch(b, MSG_ERR_UNAVAILABLE,
                   "the objects kept changing while it was applied; retry");
        return;
    }
    a = calloc(1, sizeof(*a));
    if (!a) {
        fail_batch(b, MSG_ERR_INTERNAL, "out of memory");
        return;
    }
    a->batch = b;
    if (merge_batch_permit(&b->msg, lookup_cache, r, &permit, &a->out) < 0) {
        free_apply(a);
        fail_batch(b, MSG_ERR_INTERNAL, "out of memory");
        return;
    }
    if (submit(b, a) < 0) {
        free_apply(a);
        fail_batch(b, MSG_ERR_UNAVAILABLE,
                   store_is_up(store) ? "cannot send it to Redis"
                                      : "Redis is unreachable; retry");
        return;
    }
    r->in_flight = b;
    in_flight_count++;
}

/* Computes waiting batches one at a time: a batch is computed only after
 * the one before it is in the cache, so a connection's batches apply in
 * the order sent.
 * NOTE: one al_apply per room is in flight at a time on an instance. */
static void pump(room_t *r)
{
    while (r->state == ROOM_READY && aware_loaded(r->aware) &&
           !r->in_flight && r->waiting) {
        batch_t *b = r->waiting;

        r->waiting = b->next;
        if (!r->waiting)
            r->waiting_tail = NULL;
        b->next = NULL;
        batch_run(b);
    }
}

void room_submit(sess_t *s, msg_t *msg)
{
    room_t *r = get_room(msg->room, 0);
    batch_t *b;

    if (!r || !find_member(r, s)) {
        sess_send_error(s, MSG_ERR_NOT_JOINED, msg->room, msg->opseq,
                        "join room %s before sending ops to it", msg->room);
        msg_clear(msg);
        return;
    }
    b = calloc(1, sizeof(*b));
    if (!b) {
        sess_send_error(s, MSG_ERR_INTERNAL, msg->room, msg->opseq,
                        "out of memory");
        msg_clear(msg);
        return;
    }
    b->room = r;
    b->sess = s;
    snprintf(b->sub, sizeof(b->sub), "%s", s->claims.sub);
    if (jwt_room_role(&s->claims, r->name, &b->role) < 0)
        b->role = JWT_ROLE_VIEWER; /* the room left the token on refresh */
    b->msg = *msg;
    msg_init(msg);
    if (r->waiting_tail)
        r->waiting_tail->next = b;
    else
        r->waiting = b;
    r->waiting_tail = b;
    pump(r);
}

int room_submit_sink(const char *name, msg_t *msg, jwt_role_t role,
                     const char *sub, const room_sink_t *sink, void *arg)
{
    room_t *r = get_room(name, 1);
    batch_t *b;

    if (!r)
        return store_is_up(store) ? -ENOMEM : -ENOTCONN;
    b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->room = r;
    b->sink = sink;
    b->sink_arg = arg;
    b->role = role;
    snprintf(b->sub, sizeof(b->sub), "%s", sub);
    b->msg = *msg;
    msg_init(msg);

    /* Batches of sessions and sinks share the room's queue, so both are
     * computed in arrival order against the same cache. */
    if (r->waiting_tail)
        r->waiting_tail->next = b;
    else
        r->waiting = b;
    r->waiting_tail = b;
    pump(r);
    return 0;
}

static void add_members(const char *key, void *value, void *arg)
{
    *(size_t *)arg += ((room_t *)value)->nmembers;
}

size_t room_member_count(void)
{
    size_t n = 0;

    map_each(&rooms, add_members, &n);
    return n;
}

size_t room_members_in(const char *name)
{
    room_t *r = get_room(name, 0);

    return r ? r->nmembers : 0;
}

/* Tells the members that every claim of the deleted room r is gone. */
static void release_deleted_claims(room_t *r)
{
    json_t *held = json_object();
    json_t *claim;
    size_t i;

    if (!held || aware_describe(r->aware, held) < 0) {
        json_decref(held);
        return;
    }
    json_array_foreach(json_object_get(held, "claims"), i, claim) {
        json_t *copy = json_deep_copy(claim); /* the cache shares claim */

        json_object_del(copy, "ttl");
        emit_aware(json_pack("{s:s, s:s, s:s, s:o}", "type", "released",
                             "room", r->name, "reason", "deleted", "claim",
                             copy),
                   r);
    }
    json_decref(held);
}

void room_on_deleted(const char *name, void *arg)
{
    room_t *r = get_room(name, 0);

    /* A room still subscribing or loading reads the new state anyway. */
    if (!r || !r->loaded)
        return;
    log_info("room", "room %s: deleted; reloading", name);
    if (aware_loaded(r->aware))
        release_deleted_claims(r);

    /* The members stay, so their entries are written again. */
    aware_forget(r->aware);
    r->resend_entries = 1;
    start_aware_load(r);
    r->seen_seq = 0;
    start_load(r);
}
