/*
 * Awareness: the cache of a room's presence and claims, and the Redis
 * calls that change them.
 */
#include "aware.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "map.h"

#define PENDING_MAX 1024 /* announcements kept while a load is in flight */

typedef struct {
    char holder[PROTO_ID_MAX + 1];
    const char *sub; /* of the holder's token, in json */
    msg_target_t target;
    json_t *json; /* the claim as announced */
} claim_t;

struct aware {
    char room[PROTO_ROOM_MAX + 1];
    int loaded;
    uint64_t version; /* of the last change the cache reflects */
    uint64_t crev;    /* claim changes the cache reflects */
    map_t pres;       /* key -> json_t entry */
    map_t claims;     /* claim key -> claim_t */
    char **pending;      /* announcements that came before the load */
    size_t *pending_lens;
    size_t npending;
    int pending_lost;    /* more came than PENDING_MAX */
};

aware_t *aware_new(const char *room)
{
    aware_t *a = calloc(1, sizeof(*a));

    if (!a)
        return NULL;
    snprintf(a->room, sizeof(a->room), "%s", room);
    map_init(&a->pres);
    map_init(&a->claims);
    return a;
}

static void free_entry(const char *key, void *value, void *arg)
{
    (void)key;
    (void)arg;
    json_decref(value);
}

static void free_claim(const char *key, void *value, void *arg)
{
    claim_t *c = value;

    (void)key;
    (void)arg;
    json_decref(c->json);
    free(c);
}

static void clear_pending(aware_t *a)
{
    for (size_t i = 0; i < a->npending; i++)
        free(a->pending[i]);
    free(a->pending);
    free(a->pending_lens);
    a->pending = NULL;
    a->pending_lens = NULL;
    a->npending = 0;
    a->pending_lost = 0;
}

static void clear_cache(aware_t *a)
{
    map_each(&a->pres, free_entry, NULL);
    map_free(&a->pres);
    map_each(&a->claims, free_claim, NULL);
    map_free(&a->claims);
    map_init(&a->pres);
    map_init(&a->claims);
}

void aware_free(aware_t *a)
{
    if (!a)
        return;
    clear_cache(a);
    clear_pending(a);
    free(a);
}

int aware_loaded(const aware_t *a)
{
    return a->loaded;
}

void aware_unload(aware_t *a)
{
    a->loaded = 0;
    clear_pending(a);
}

void aware_forget(aware_t *a)
{
    clear_cache(a);
    a->version = 0;
    a->crev = 0;
    aware_unload(a);
}

uint64_t aware_claims_rev(const aware_t *a)
{
    return a->crev;
}

/* Targets and claims */

void aware_claim_key(const msg_target_t *t, char *out, size_t outlen)
{
    if (t->id[0])
        snprintf(out, outlen, "o\n%s", t->id);
    else
        snprintf(out, outlen, "f\n%s\n%" PRIu64 "\n%" PRIu64, t->item,
                 t->first, t->last);
}

json_t *aware_target_json(const msg_target_t *t)
{
    if (t->id[0])
        return json_pack("{s:s}", "id", t->id);
    return json_pack("{s:s, s:[I, I]}", "item", t->item, "frames",
                     (json_int_t)t->first, (json_int_t)t->last);
}

/* Reads a target back from its JSON form, as the server wrote it. */
static int target_from_json(const json_t *j, msg_target_t *t)
{
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *item = json_string_value(json_object_get(j, "item"));
    const json_t *frames = json_object_get(j, "frames");

    memset(t, 0, sizeof(*t));
    if (id) {
        snprintf(t->id, sizeof(t->id), "%s", id);
        return 0;
    }
    if (!item || json_array_size(frames) != 2)
        return -EPROTO;
    snprintf(t->item, sizeof(t->item), "%s", item);
    t->first = (uint64_t)json_integer_value(json_array_get(frames, 0));
    t->last = (uint64_t)json_integer_value(json_array_get(frames, 1));
    return 0;
}

/* Adds or replaces a claim from its announced JSON (reference taken). */
static int put_claim(aware_t *a, json_t *json)
{
    const char *holder = json_string_value(json_object_get(json, "client"));
    char key[3 * PROTO_ID_MAX + 64];
    claim_t *c = calloc(1, sizeof(*c));
    void *old = NULL;

    if (!c || !holder ||
        target_from_json(json_object_get(json, "target"), &c->target) < 0) {
        free(c);
        json_decref(json);
        return -EPROTO;
    }
    snprintf(c->holder, sizeof(c->holder), "%s", holder);
    c->sub = json_string_value(json_object_get(json, "sub"));
    if (!c->sub)
        c->sub = "";
    c->json = json;
    aware_claim_key(&c->target, key, sizeof(key));
    if (map_put(&a->claims, key, c, &old) < 0) {
        free_claim(key, c, NULL);
        return -ENOMEM;
    }
    if (old)
        free_claim(key, old, NULL);
    return 0;
}

static void drop_claim(aware_t *a, const json_t *json)
{
    char key[3 * PROTO_ID_MAX + 64];
    msg_target_t t;
    void *old;

    if (target_from_json(json_object_get(json, "target"), &t) < 0)
        return;
    aware_claim_key(&t, key, sizeof(key));
    old = map_remove(&a->claims, key);
    if (old)
        free_claim(key, old, NULL);
}

static int put_entry(aware_t *a, json_t *entry)
{
    const char *key = json_string_value(json_object_get(entry, "client"));
    void *old = NULL;

    if (!key) {
        json_decref(entry);
        return -EPROTO;
    }
    if (map_put(&a->pres, key, entry, &old) < 0) {
        json_decref(entry);
        return -ENOMEM;
    }
    json_decref(old);
    return 0;
}

/* The check of enforced claims */

/* Returns 1 when claim c belongs to the writer client with sub. */
static int held_by(const claim_t *c, const char *client, const char *sub)
{
    return strcmp(c->holder, client) == 0 && strcmp(c->sub, sub) == 0;
}

/* Returns another holder's claim on the object id, or NULL. */
static const claim_t *claim_on_id(const aware_t *a, const char *id,
                                  const char *client, const char *sub)
{
    char key[PROTO_ID_MAX + 4];
    const claim_t *c;

    snprintf(key, sizeof(key), "o\n%s", id);
    c = map_get(&a->claims, key);
    return c && !held_by(c, client, sub) ? c : NULL;
}

/* Reads a frame number: a non-negative integer, or a float with an
 * integral value. Returns 0, or -EINVAL when frame is not one. */
static int frame_of(const json_t *frame, uint64_t *out)
{
    double d;

    if (json_is_integer(frame) && json_integer_value(frame) >= 0) {
        *out = (uint64_t)json_integer_value(frame);
        return 0;
    }
    d = json_is_real(frame) ? json_real_value(frame) : -1;
    if (d < 0 || d > 9007199254740991.0 || d != (double)(uint64_t)d)
        return -EINVAL;
    *out = (uint64_t)d;
    return 0;
}

/* Returns another holder's range claim that covers frame of item.
 * NOTE: this scans every claim of the room for each op of a batch in a
 * room that enforces claims. An index by item would bound it. */
static const claim_t *claim_on_frame(const aware_t *a, const char *item,
                                     const json_t *frame, const char *client,
                                     const char *sub)
{
    uint64_t f;

    if (!item || frame_of(frame, &f) < 0)
        return NULL;
    for (size_t i = 0; i < a->claims.nbuckets; i++) {
        for (map_entry_t *e = a->claims.buckets[i]; e; e = e->next) {
            const claim_t *c = e->value;

            if (c->target.item[0] && strcmp(c->target.item, item) == 0 &&
                c->target.first <= f && f <= c->target.last &&
                !held_by(c, client, sub))
                return c;
        }
    }
    return NULL;
}

/* Reads the item and frame of a set of fields, keeping *item and *frame
 * where fields has none. */
static void place_in(const json_t *fields, const char **item,
                     const json_t **frame)
{
    const json_t *value = json_object_get(fields, "item");

    if (json_is_string(value))
        *item = json_string_value(value);
    if ((value = json_object_get(fields, "frame")))
        *frame = value;
}

/* Returns another holder's range claim on the place of the object before
 * op (cur) or after it. */
static const claim_t *claim_on_place(const aware_t *a, const op_t *op,
                                     const obj_t *cur, const char *client,
                                     const char *sub)
{
    const char *item = NULL;
    const json_t *frame = NULL;
    const claim_t *c;

    if (cur)
        place_in(cur->fields, &item, &frame);
    if (cur && (c = claim_on_frame(a, item, frame, client, sub)))
        return c;
    if (op->type == OP_CREATE || op->type == OP_RESTORE)
        place_in(op->fields, &item, &frame);
    else if (op->type == OP_UPDATE)
        place_in(op->set, &item, &frame);
    return claim_on_frame(a, item, frame, client, sub);
}

const char *aware_blocker(const aware_t *a, const op_t *op, const obj_t *cur,
                          const char *client, const char *sub, char *buf,
                          size_t buflen)
{
    const claim_t *c = NULL;
    const char *name;

    if (op->type == OP_SETTINGS || a->claims.len == 0)
        return NULL;
    if (op->type != OP_CREATE)
        c = claim_on_id(a, op->id, client, sub);
    if (!c)
        c = claim_on_place(a, op, cur, client, sub);
    if (!c)
        return NULL;
    name = json_string_value(json_object_get(c->json, "name"));
    if (!name)
        name = json_string_value(json_object_get(c->json, "sub"));
    if (c->target.id[0])
        snprintf(buf, buflen, "object %s is claimed by %s (client %s); "
                 "the room enforces claims", op->id, name ? name : "?",
                 c->holder);
    else
        snprintf(buf, buflen, "frames %" PRIu64 " to %" PRIu64 " of item %s "
                 "are claimed by %s (client %s); the room enforces claims",
                 c->target.first, c->target.last, c->target.item,
                 name ? name : "?", c->holder);
    return buf;
}

/* Announcements */

/* Builds the server message of an announcement for the room's members.
 * Returns a new reference, or NULL when it changes nothing to show. */
static json_t *message_of(const aware_t *a, const json_t *ann)
{
    json_t *part, *msg;

    if ((part = json_object_get(ann, "presence"))) {
        msg = json_pack("{s:s, s:s}", "type", "presence", "room", a->room);
        if (msg)
            json_object_update(msg, part);
        return msg;
    }
    if ((part = json_object_get(ann, "gone")))
        return json_pack("{s:s, s:s, s:O, s:n}", "type", "presence", "room",
                         a->room, "client", part, "state");
    if ((part = json_object_get(ann, "claimed")))
        return json_pack("{s:s, s:s, s:O}", "type", "claimed", "room",
                         a->room, "claim", part);
    if ((part = json_object_get(ann, "released")))
        return json_pack("{s:s, s:s, s:O, s:O}", "type", "released", "room",
                         a->room, "reason",
                         json_object_get(ann, "reason"), "claim", part);
    return NULL;
}

/* Applies one parsed announcement to the cache. */
static void apply_announce(aware_t *a, const json_t *ann)
{
    json_t *part;

    if ((part = json_object_get(ann, "presence")))
        put_entry(a, json_incref(part));
    else if ((part = json_object_get(ann, "gone")))
        free_entry(NULL, map_remove(&a->pres, json_string_value(part)),
                   NULL);
    else if ((part = json_object_get(ann, "claimed")))
        put_claim(a, json_incref(part));
    else if ((part = json_object_get(ann, "released")))
        drop_claim(a, part);
    if (json_is_integer(json_object_get(ann, "crev")))
        a->crev = (uint64_t)json_integer_value(json_object_get(ann, "crev"));
}

static void take(aware_t *a, const char *json, size_t len, aware_emit_fn emit,
                 void *arg)
{
    json_error_t jerr;
    json_t *ann = json_loadb(json, len, 0, &jerr);
    json_t *v = json_object_get(ann, "v");
    json_t *msg;

    if (!json_is_integer(v)) {
        log_warn("aware", "room %s: malformed announcement: %s", a->room,
                 ann ? "no version" : jerr.text);
        json_decref(ann);
        return;
    }
    if ((uint64_t)json_integer_value(v) > a->version) {
        a->version = (uint64_t)json_integer_value(v);
        apply_announce(a, ann);
        msg = message_of(a, ann);
        if (msg)
            emit(msg, arg);
    }
    json_decref(ann);
}

static void keep_pending(aware_t *a, const char *json, size_t len)
{
    char **pending;
    size_t *lens;
    char *copy;

    if (a->npending == PENDING_MAX) {
        a->pending_lost = 1;
        return;
    }
    pending = realloc(a->pending, (a->npending + 1) * sizeof(*pending));
    if (pending)
        a->pending = pending;
    lens = realloc(a->pending_lens, (a->npending + 1) * sizeof(*lens));
    if (lens)
        a->pending_lens = lens;
    copy = malloc(len);
    if (!pending || !lens || !copy) {
        free(copy);
        a->pending_lost = 1;
        return;
    }
    memcpy(copy, json, len);
    a->pending[a->npending] = copy;
    a->pending_lens[a->npending++] = len;
}

void aware_on_announce(aware_t *a, const char *json, size_t len,
                       aware_emit_fn emit, void *arg)
{
    if (a->loaded)
        take(a, json, len, emit, arg);
    else
        keep_pending(a, json, len);
}

/* Loading */

static uint64_t str_u64(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER)
        return (uint64_t)r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoull(r->str, NULL, 10);
    return 0;
}

/* Parses one stored JSON text into *out. */
static int parse_stored(const redisReply *r, json_t **out)
{
    json_error_t jerr;

    if (r->type != REDIS_REPLY_STRING)
        return -EPROTO;
    *out = json_loadb(r->str, r->len, 0, &jerr);
    return *out ? 0 : -EPROTO;
}

static int load_claims(aware_t *a, const redisReply *pairs)
{
    for (size_t i = 0; i + 1 < pairs->elements; i += 2) {
        const redisReply *v = pairs->element[i + 1];
        const char *nl = v->type == REDIS_REPLY_STRING
                             ? memchr(v->str, '\n', v->len)
                             : NULL;
        json_error_t jerr;
        json_t *json;

        if (!nl)
            return -EPROTO;
        json = json_loadb(nl + 1, v->len - (size_t)(nl + 1 - v->str), 0,
                          &jerr);
        if (!json || put_claim(a, json) < 0)
            return -EPROTO;
    }
    return 0;
}

/* Emits what changed between the caches old and a: entries that are new,
 * changed or gone, and claims that are new or gone. */
static void emit_changes(const aware_t *a, const map_t *old_pres,
                         const map_t *old_claims, aware_emit_fn emit,
                         void *arg)
{
    json_t *msg;

    for (size_t i = 0; i < a->pres.nbuckets; i++)
        for (map_entry_t *e = a->pres.buckets[i]; e; e = e->next) {
            const json_t *was = map_get(old_pres, e->key);

            if (!was || !json_equal((json_t *)was, e->value)) {
                msg = json_pack("{s:s, s:s}", "type", "presence", "room",
                                a->room);
                if (msg && json_object_update(msg, e->value) == 0)
                    emit(msg, arg);
                else
                    json_decref(msg);
            }
        }
    for (size_t i = 0; i < old_pres->nbuckets; i++)
        for (map_entry_t *e = old_pres->buckets[i]; e; e = e->next)
            if (!map_get(&a->pres, e->key) &&
                (msg = json_pack("{s:s, s:s, s:s, s:n}", "type", "presence",
                                 "room", a->room, "client", e->key,
                                 "state")))
                emit(msg, arg);
    for (size_t i = 0; i < a->claims.nbuckets; i++)
        for (map_entry_t *e = a->claims.buckets[i]; e; e = e->next)
            if (!map_get(old_claims, e->key) &&
                (msg = json_pack("{s:s, s:s, s:O}", "type", "claimed", "room",
                                 a->room, "claim",
                                 ((claim_t *)e->value)->json)))
                emit(msg, arg);
    for (size_t i = 0; i < old_claims->nbuckets; i++)
        for (map_entry_t *e = old_claims->buckets[i]; e; e = e->next)
            if (!map_get(&a->claims, e->key) &&
                (msg = json_pack("{s:s, s:s, s:s, s:O}", "type", "released",
                                 "room", a->room, "reason", "expired",
                                 "claim", ((claim_t *)e->value)->json)))
                emit(msg, arg);
}

int aware_load_reply(aware_t *a, const redisReply *reply, aware_emit_fn emit,
                     void *arg)
{
    const redisReply *pres, *claims;
    map_t old_pres = a->pres, old_claims = a->claims;
    int rc = -EPROTO;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 ||
        reply->element[2]->type != REDIS_REPLY_ARRAY ||
        reply->element[3]->type != REDIS_REPLY_ARRAY)
        return -EPROTO;

    /* The old cache is kept until the members got the changes. */
    map_init(&a->pres);
    map_init(&a->claims);
    a->version = str_u64(reply->element[0]);
    a->crev = str_u64(reply->element[1]);
    pres = reply->element[2];
    claims = reply->element[3];
    for (size_t i = 0; i < pres->elements; i++) {
        json_t *entry;

        if (parse_stored(pres->element[i], &entry) < 0 ||
            put_entry(a, entry) < 0)
            goto out;
    }
    if (load_claims(a, claims) < 0)
        goto out;
    emit_changes(a, &old_pres, &old_claims, emit, arg);
    rc = 0;
out:
    map_each(&old_pres, free_entry, NULL);
    map_free(&old_pres);
    map_each(&old_claims, free_claim, NULL);
    map_free(&old_claims);
    if (rc < 0)
        return rc;
    a->loaded = 1;
    if (a->pending_lost)
        log_warn("aware", "room %s: announcements were dropped while "
                 "loading; the cache may trail until the next load", a->room);
    for (size_t i = 0; i < a->npending; i++)
        take(a, a->pending[i], a->pending_lens[i], emit, arg);
    clear_pending(a);
    return 0;
}

int aware_describe(const aware_t *a, json_t *msg)
{
    json_t *pres = json_array(), *claims = json_array();

    for (size_t i = 0; pres && i < a->pres.nbuckets; i++)
        for (map_entry_t *e = a->pres.buckets[i]; e; e = e->next)
            json_array_append(pres, e->value);
    for (size_t i = 0; claims && i < a->claims.nbuckets; i++)
        for (map_entry_t *e = a->claims.buckets[i]; e; e = e->next)
            json_array_append(claims, ((claim_t *)e->value)->json);
    if (!pres || !claims || json_object_set_new(msg, "presence", pres) < 0) {
        json_decref(claims);
        return -ENOMEM;
    }
    return json_object_set_new(msg, "claims", claims) < 0 ? -ENOMEM : 0;
}

/* Redis calls */

const char *aware_reply_word(const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS)
        return reply->str;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
        reply->element[0]->type == REDIS_REPLY_STRING)
        return reply->element[0]->str;
    return NULL;
}

void aware_each_missing(const redisReply *reply,
                        void (*fn)(const char *key, void *arg), void *arg)
{
    if (reply->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < reply->elements; i++)
        if (reply->element[i]->type == REDIS_REPLY_STRING)
            fn(reply->element[i]->str, arg);
}

json_t *aware_reply_holder(const redisReply *reply)
{
    json_error_t jerr;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return NULL;
    return json_loadb(reply->element[1]->str, reply->element[1]->len, 0,
                      &jerr);
}

#define AWARE_NKEYS 8

/* Sends FCALL fn with the room's awareness keys, the room's channel and
 * args. */
static int fcall(store_t *st, const char *room, const char *fn,
                 const char *const *args, size_t nargs, store_reply_cb cb,
                 void *arg)
{
    static const char *const suffixes[AWARE_NKEYS] = {
        "pres", "pown", "pexp", "cgone", "claims", "cexp", "aw", "revs"};
    char keys[AWARE_NKEYS][PROTO_ROOM_MAX + 16];
    char ch[PROTO_ROOM_MAX + 32];
    size_t argc = 3 + AWARE_NKEYS + 1 + nargs;
    const char **argv = calloc(argc, sizeof(*argv));
    size_t *lens = calloc(argc, sizeof(*lens));
    size_t at = 0;
    int rc;

    if (!argv || !lens) {
        free(argv);
        free(lens);
        return -ENOMEM;
    }
    argv[at++] = "FCALL";
    argv[at++] = fn;
    argv[at++] = "8";
    for (size_t i = 0; i < AWARE_NKEYS; i++) {
        snprintf(keys[i], sizeof(keys[i]), "al:{%s}:%s", room, suffixes[i]);
        argv[at++] = keys[i];
    }
    store_channel(st, room, ch, sizeof(ch));
    argv[at++] = ch;
    for (size_t i = 0; i < nargs; i++)
        argv[at++] = args[i];
    for (size_t i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    rc = store_command(st, (int)argc, argv, lens, cb, arg);
    free(argv);
    free(lens);
    return rc;
}

static void log_failure(int status, const redisReply *reply, void *arg)
{
    const char *what = arg;

    if (status == -EPROTO)
        log_warn("aware", "%s failed: %s", what, reply->str);
}

int aware_load(store_t *st, const char *room, store_reply_cb cb, void *arg)
{
    return fcall(st, room, "al_aware_load", NULL, 0, cb, arg);
}

int aware_set(store_t *st, const char *room, const char *key,
              const char *conn, const char *sub, const char *entry,
              int ttl_ms, int joining, store_reply_cb cb, void *arg)
{
    char ttl[24];
    const char *args[6] = {key, conn, sub, entry, ttl, joining ? "1" : "0"};

    snprintf(ttl, sizeof(ttl), "%d", ttl_ms);
    return fcall(st, room, "al_pset", args, 6, cb, arg);
}

int aware_drop(store_t *st, const char *room, const char *key,
               const char *conn, int grace_ms)
{
    char grace[24];
    const char *args[3] = {key, conn, grace};

    snprintf(grace, sizeof(grace), "%d", grace_ms);
    return fcall(st, room, "al_pdel", args, 3, log_failure, (void *)"al_pdel");
}

int aware_beat(store_t *st, const char *room, int ttl_ms, int grace_ms,
               int sweep, const char *const *keys, const char *const *conns,
               size_t n, store_reply_cb cb, void *arg)
{
    char ttl[24], grace[24];
    const char **args = calloc(2 * n + 3, sizeof(*args));
    int rc;

    if (!args)
        return -ENOMEM;
    snprintf(ttl, sizeof(ttl), "%d", ttl_ms);
    snprintf(grace, sizeof(grace), "%d", grace_ms);
    args[0] = ttl;
    args[1] = grace;
    args[2] = sweep ? "1" : "0";
    for (size_t i = 0; i < n; i++) {
        args[3 + 2 * i] = keys[i];
        args[4 + 2 * i] = conns[i];
    }
    rc = fcall(st, room, "al_beat", args, 2 * n + 3, cb, arg);
    free(args);
    return rc;
}

int aware_claim(store_t *st, const char *room, const msg_target_t *t,
                const char *client, const char *claim, uint64_t ttl_ms,
                store_reply_cb cb, void *arg)
{
    char key[3 * PROTO_ID_MAX + 64], ttl[24], first[24], last[24], max[24];
    const char *args[8] = {key, client, claim, ttl, t->item, first, last,
                           max};

    aware_claim_key(t, key, sizeof(key));
    snprintf(ttl, sizeof(ttl), "%" PRIu64, ttl_ms);
    snprintf(first, sizeof(first), "%" PRIu64, t->first);
    snprintf(last, sizeof(last), "%" PRIu64, t->last);
    snprintf(max, sizeof(max), "%d", AWARE_CLAIMS_MAX);
    return fcall(st, room, "al_claim", args, 8, cb, arg);
}

int aware_release(store_t *st, const char *room, const msg_target_t *t,
                  const char *client, store_reply_cb cb, void *arg)
{
    char key[3 * PROTO_ID_MAX + 64];
    const char *args[2] = {key, client};

    aware_claim_key(t, key, sizeof(key));
    return fcall(st, room, "al_release", args, 2, cb, arg);
}
