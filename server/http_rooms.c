/*
 * Room administration over HTTP, for tokens with the admin role: list the
 * rooms in Redis, create a room with settings, change its settings, and
 * delete a room with all its keys.
 *
 * Settings (policy, schema, claims) change through a settings op on the
 * normal apply path, so they are versioned in the room's @room object like
 * any settings op from a WebSocket. The per-room stream length lives in
 * the hash al:{room}:meta, which al_apply reads.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"
#include "log.h"
#include "obj.h"
#include "pack.h"
#include "room.h"

#define LIST_MAX 10000 /* rooms listed at most */
#define SCAN_COUNT "1000"
#define STREAM_MAX_LIMIT (1ULL << 40)
#define ADMIN_ACTOR "http-admin" /* actor of settings ops made here */

/* Listing */

typedef struct {
    http_pending_t p;
    char cursor[32];
    json_t *rooms;  /* {room, objects, seq, members} per room */
    size_t waiting; /* HLEN and GET replies outstanding */
    int failed;
    int truncated;
} list_req_t;

static void list_page(list_req_t *req);

static void free_list(list_req_t *req)
{
    json_decref(req->rooms);
    free(req);
}

static void list_fail(list_req_t *req)
{
    if (http_pending_finish(&req->p))
        http_error(req->p.wsi, req->p.h, 503, "unavailable",
                   "Redis is unreachable; retry later");
    free_list(req);
}

static void list_done(list_req_t *req)
{
    if (http_pending_finish(&req->p))
        http_respond(req->p.wsi, req->p.h, 200,
                     json_pack("{s:O, s:s, s:b}", "rooms", req->rooms,
                               "members", "instance", "truncated",
                               req->truncated));
    free_list(req);
}

/* A room entry and the member that one reply fills. */
typedef struct {
    list_req_t *req;
    json_t *entry;
    const char *member;
} list_cell_t;

static void on_count(int status, const redisReply *reply, void *arg)
{
    list_cell_t *cell = arg;
    list_req_t *req = cell->req;

    if (status < 0 || !reply)
        req->failed = 1;
    else if (reply->type == REDIS_REPLY_INTEGER)
        json_object_set_new(cell->entry, cell->member,
                            json_integer((json_int_t)reply->integer));
    else if (reply->type == REDIS_REPLY_STRING)
        json_object_set_new(cell->entry, cell->member,
                            json_integer(strtoll(reply->str, NULL, 10)));
    free(cell);
    if (--req->waiting > 0)
        return;
    if (req->failed || req->p.cancelled)
        list_fail(req);
    else if (strcmp(req->cursor, "0") == 0)
        list_done(req);
    else
        list_page(req);
}

/* Sends one counting command for entry. Returns 0 or -1. */
static int ask(list_req_t *req, json_t *entry, const char *member,
               const char *cmd, const char *key)
{
    const char *argv[2] = {cmd, key};
    size_t lens[2] = {strlen(cmd), strlen(key)};
    list_cell_t *cell = malloc(sizeof(*cell));

    if (!cell)
        return -1;
    *cell = (list_cell_t){req, entry, member};
    if (store_command(http_store, 2, argv, lens, on_count, cell) < 0) {
        free(cell);
        return -1;
    }
    req->waiting++;
    return 0;
}

/* Adds room to the list and requests its counts. Returns 0 or -1. */
static int add_room(list_req_t *req, const char *room)
{
    char objs[PROTO_ROOM_MAX + 16], seq[PROTO_ROOM_MAX + 16];
    json_t *entry =
        json_pack("{s:s, s:i, s:i, s:I}", "room", room, "objects", 0, "seq", 0,
                  "members", (json_int_t)room_members_in(room));

    if (!entry || json_array_append_new(req->rooms, entry) < 0)
        return -1;
    snprintf(objs, sizeof(objs), "al:{%s}:objs", room);
    snprintf(seq, sizeof(seq), "al:{%s}:seq", room);
    if (ask(req, entry, "objects", "HLEN", objs) < 0 ||
        ask(req, entry, "seq", "GET", seq) < 0)
        return -1;
    return 0;
}

/* Extracts ROOM from the key al:{ROOM}:seq. Returns 0 or -EINVAL. */
static int room_of_key(const char *key, size_t len, char *room)
{
    size_t n;

    if (len < 10 || strncmp(key, "al:{", 4) != 0 ||
        strcmp(key + len - 5, "}:seq") != 0)
        return -EINVAL;
    n = len - 9;
    if (!proto_room_valid(key + 4, n))
        return -EINVAL;
    memcpy(room, key + 4, n);
    room[n] = '\0';
    return 0;
}

static void on_scan(int status, const redisReply *reply, void *arg)
{
    list_req_t *req = arg;
    const redisReply *keys;
    char room[PROTO_ROOM_MAX + 1];

    if (status < 0 || req->p.cancelled || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 2) {
        list_fail(req);
        return;
    }
    snprintf(req->cursor, sizeof(req->cursor), "%s", reply->element[0]->str);
    keys = reply->element[1];
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        jwt_role_t role;

        if (room_of_key(k->str, k->len, room) < 0 ||
            jwt_room_role(&req->p.h->claims, room, &role) < 0 ||
            role != JWT_ROLE_ADMIN)
            continue;
        if (json_array_size(req->rooms) >= LIST_MAX) {
            req->truncated = 1;
            snprintf(req->cursor, sizeof(req->cursor), "0");
            break;
        }
        if (add_room(req, room) < 0)
            req->failed = 1;
    }
    if (req->waiting > 0)
        return;
    if (req->failed)
        list_fail(req);
    else if (strcmp(req->cursor, "0") == 0)
        list_done(req);
    else
        list_page(req);
}

static void list_page(list_req_t *req)
{
    const char *argv[6] = {"SCAN",       req->cursor, "MATCH",
                           "al:{*}:seq", "COUNT",     SCAN_COUNT};
    size_t lens[6];

    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    if (store_command(http_store, 6, argv, lens, on_scan, req) < 0)
        list_fail(req);
}

int http_rooms_list(struct lws *wsi, http_t *h)
{
    list_req_t *req;

    if (h->claims.role != JWT_ROLE_ADMIN)
        return http_error(wsi, h, 403, "forbidden",
                          "listing rooms needs the admin role");
    req = calloc(1, sizeof(*req));
    if (!req || !(req->rooms = json_array())) {
        free(req);
        return -1;
    }
    snprintf(req->cursor, sizeof(req->cursor), "0");
    http_pending_start(&req->p, wsi, h);
    list_page(req);
    return 0;
}

/* Creating and changing */

typedef struct {
    http_pending_t p;
    json_t *set;         /* settings to write, or NULL */
    uint64_t stream_max; /* 0 when not given */
    int create;          /* PUT: the room must not exist */
} admin_req_t;

static void free_admin(admin_req_t *req)
{
    json_decref(req->set);
    free(req);
}

static void admin_fail(admin_req_t *req, int status, const char *code,
                       const char *message)
{
    if (http_pending_finish(&req->p))
        http_error(req->p.wsi, req->p.h, status, code, "%s", message);
    free_admin(req);
}

/* Reads the body {policy?, schema?, claims?, stream_max?}. Returns 0, or
 * -1 after queueing a 400. */
static int read_settings(struct lws *wsi, http_t *h, admin_req_t *req)
{
    json_t *root = h->rx_len ? http_parse_body(wsi, h) : json_object();
    const char *key;
    json_t *v;

    if (!root)
        return -1;
    if (!json_is_object(root)) {
        json_decref(root);
        return http_error(wsi, h, 400, "invalid_message",
                          "the body must be an object of settings"),
               -1;
    }
    req->set = json_object();
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "stream_max") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                (uint64_t)json_integer_value(v) > STREAM_MAX_LIMIT) {
                json_decref(root);
                return http_error(wsi, h, 400, "invalid_message",
                                  "stream_max: expected an integer from 1 "
                                  "to 2^40"),
                       -1;
            }
            req->stream_max = (uint64_t)json_integer_value(v);
        } else {
            json_object_set(req->set, key, v);
        }
    }
    json_decref(root);
    return 0;
}

/* Applies the settings with base (a vv) through the apply path. */
static void apply_settings(admin_req_t *req, json_t *base)
{
    struct lws *wsi = req->p.wsi;
    http_t *h = req->p.h;
    json_t *ops;

    if (!http_pending_finish(&req->p)) {
        json_decref(base);
        free_admin(req);
        return;
    }
    ops = json_pack("[{s:s, s:o, s:O}]", "op", "settings", "base", base, "set",
                    req->set);
    if (!ops || http_ops_apply(wsi, h, ADMIN_ACTOR, http_clock_opseq(), ops, 0,
                               NULL) < 0)
        http_error(wsi, h, 500, "internal", "cannot apply the settings");
    json_decref(ops);
    free_admin(req);
}

/* Reads the @room object's vv for the base of the settings op. */
static void on_room_object(int status, const redisReply *reply, void *arg)
{
    admin_req_t *req = arg;
    char err[PROTO_ERR_MAX];
    obj_t *o = NULL;
    json_t *base;

    if (status < 0 || req->p.cancelled) {
        admin_fail(req, 503, "unavailable", "Redis is unreachable");
        return;
    }
    if (reply->type == REDIS_REPLY_STRING &&
        unpack_obj(reply->str, reply->len, OBJ_ROOM_ID, 0, &o, err,
                   sizeof(err)) == 0) {
        base = vv_to_json(&o->vv);
        obj_free(o);
    } else {
        base = json_object();
    }
    apply_settings(req, base);
}

static void read_room_object(admin_req_t *req)
{
    char key[PROTO_ROOM_MAX + 16];
    const char *argv[3] = {"HGET", key, OBJ_ROOM_ID};
    size_t lens[3];

    snprintf(key, sizeof(key), "al:{%s}:objs", req->p.h->room);
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(argv[i]);
    if (store_command(http_store, 3, argv, lens, on_room_object, req) < 0)
        admin_fail(req, 503, "unavailable", "Redis is unreachable");
}

static void on_meta(int status, const redisReply *reply, void *arg)
{
    admin_req_t *req = arg;

    if (status < 0 || req->p.cancelled) {
        admin_fail(req, 503, "unavailable", "Redis is unreachable");
        return;
    }
    if (json_object_size(req->set) > 0) {
        read_room_object(req);
        return;
    }
    if (http_pending_finish(&req->p))
        http_respond(req->p.wsi, req->p.h, 200,
                     json_pack("{s:s, s:I}", "room", req->p.h->room,
                               "stream_max", (json_int_t)req->stream_max));
    free_admin(req);
}

/* Writes the room's stream length, then the settings. */
static void write_meta(admin_req_t *req)
{
    char key[PROTO_ROOM_MAX + 16], num[24];
    const char *argv[4] = {"HSET", key, "stream_max", num};
    size_t lens[4];

    if (req->stream_max == 0) {
        on_meta(0, NULL, req);
        return;
    }
    snprintf(key, sizeof(key), "al:{%s}:meta", req->p.h->room);
    snprintf(num, sizeof(num), "%" PRIu64, req->stream_max);
    for (int i = 0; i < 4; i++)
        lens[i] = strlen(argv[i]);
    if (store_command(http_store, 4, argv, lens, on_meta, req) < 0)
        admin_fail(req, 503, "unavailable", "Redis is unreachable");
}

/* A room exists once it has a seq or a stream length. */
static void on_exists(int status, const redisReply *reply, void *arg)
{
    admin_req_t *req = arg;
    int exists;

    if (status < 0 || req->p.cancelled || reply->type != REDIS_REPLY_INTEGER) {
        admin_fail(req, 503, "unavailable", "Redis is unreachable");
        return;
    }
    exists = reply->integer > 0;
    if (req->create && exists) {
        admin_fail(req, 409, "exists",
                   "the room exists; change its "
                   "settings with PATCH");
        return;
    }
    if (!req->create && !exists) {
        admin_fail(req, 404, "not_found",
                   "no such room; create it with "
                   "PUT");
        return;
    }

    /* A new room gets a settings op even with no setting given, so that it
     * has a seq and is listed. */
    if (req->create && json_object_size(req->set) == 0)
        json_object_set_new(req->set, "policy", json_string("reject"));
    write_meta(req);
}

static int admin_start(struct lws *wsi, http_t *h, int create)
{
    char seq[PROTO_ROOM_MAX + 16], meta[PROTO_ROOM_MAX + 16];
    const char *argv[3] = {"EXISTS", seq, meta};
    size_t lens[3];
    admin_req_t *req = calloc(1, sizeof(*req));

    if (!req)
        return -1;
    req->create = create;
    if (read_settings(wsi, h, req) < 0) {
        free_admin(req);
        return 0;
    }
    snprintf(seq, sizeof(seq), "al:{%s}:seq", h->room);
    snprintf(meta, sizeof(meta), "al:{%s}:meta", h->room);
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(argv[i]);
    if (store_command(http_store, 3, argv, lens, on_exists, req) < 0) {
        free_admin(req);
        return http_error(wsi, h, 503, "unavailable",
                          "Redis is unreachable; retry later");
    }
    http_pending_start(&req->p, wsi, h);
    return 0;
}

int http_rooms_create(struct lws *wsi, http_t *h)
{
    return admin_start(wsi, h, 1);
}

int http_rooms_patch(struct lws *wsi, http_t *h)
{
    return admin_start(wsi, h, 0);
}

/* Deleting */

typedef struct {
    http_pending_t p;
    char room[PROTO_ROOM_MAX + 1];
    char cursor[32];
    size_t keys; /* keys removed so far */
} delete_req_t;

static void delete_page(delete_req_t *req);

static void delete_fail(delete_req_t *req)
{
    if (http_pending_finish(&req->p))
        http_error(req->p.wsi, req->p.h, 503, "unavailable",
                   "Redis is unreachable; the room may be partly deleted; "
                   "retry");
    free(req);
}

static void on_published(int status, const redisReply *reply, void *arg)
{
    delete_req_t *req = arg;

    if (status < 0) {
        delete_fail(req);
        return;
    }
    log_info("http", "room %s: deleted %zu keys", req->room, req->keys);
    if (http_pending_finish(&req->p))
        http_respond(req->p.wsi, req->p.h, 200,
                     json_pack("{s:s, s:b, s:I}", "room", req->room, "deleted",
                               1, "keys", (json_int_t)req->keys));
    free(req);
}

/* Tells every instance that the room is gone, so that its members get a
 * snapshot marked reset. */
static void publish_deleted(delete_req_t *req)
{
    char ch[PROTO_ROOM_MAX + 32];
    const char *argv[3] = {"PUBLISH", ch, "D"};
    size_t lens[3];

    store_channel(http_store, req->room, ch, sizeof(ch));
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(argv[i]);
    if (store_command(http_store, 3, argv, lens, on_published, req) < 0)
        delete_fail(req);
}

/* Ends the scan. A room with no key gets 404, as PATCH gives it. Otherwise
 * the deletion is published to the other instances. */
static void scan_done(delete_req_t *req)
{
    if (req->keys > 0) {
        publish_deleted(req);
        return;
    }
    if (http_pending_finish(&req->p))
        http_error(req->p.wsi, req->p.h, 404, "not_found",
                   "no such room: room %s has no keys", req->room);
    free(req);
}

static void on_unlink(int status, const redisReply *reply, void *arg)
{
    delete_req_t *req = arg;

    if (status < 0) {
        delete_fail(req);
        return;
    }
    if (reply->type == REDIS_REPLY_INTEGER)
        req->keys += (size_t)reply->integer;
    if (strcmp(req->cursor, "0") == 0)
        scan_done(req);
    else
        delete_page(req);
}

/* Removes the keys of one SCAN page. */
static void unlink_keys(delete_req_t *req, const redisReply *keys)
{
    const char **argv = malloc((keys->elements + 1) * sizeof(*argv));
    size_t *lens = malloc((keys->elements + 1) * sizeof(*lens));
    int rc = -1;

    if (argv && lens) {
        argv[0] = "UNLINK";
        lens[0] = 6;
        for (size_t i = 0; i < keys->elements; i++) {
            argv[i + 1] = keys->element[i]->str;
            lens[i + 1] = keys->element[i]->len;
        }
        rc = store_command(http_store, (int)keys->elements + 1, argv, lens,
                           on_unlink, req);
    }
    free(argv);
    free(lens);
    if (rc < 0)
        delete_fail(req);
}

static void on_delete_scan(int status, const redisReply *reply, void *arg)
{
    delete_req_t *req = arg;

    if (status < 0 || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 2) {
        delete_fail(req);
        return;
    }
    snprintf(req->cursor, sizeof(req->cursor), "%s", reply->element[0]->str);
    if (reply->element[1]->elements > 0)
        unlink_keys(req, reply->element[1]);
    else if (strcmp(req->cursor, "0") == 0)
        scan_done(req);
    else
        delete_page(req);
}

static void delete_page(delete_req_t *req)
{
    char match[PROTO_ROOM_MAX + 16];
    const char *argv[6] = {"SCAN", req->cursor, "MATCH",
                           match,  "COUNT",     SCAN_COUNT};
    size_t lens[6];

    /* Room names hold no glob characters, so the pattern matches this
     * room's keys only. */
    snprintf(match, sizeof(match), "al:{%s}:*", req->room);
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    if (store_command(http_store, 6, argv, lens, on_delete_scan, req) < 0)
        delete_fail(req);
}

int http_rooms_delete(struct lws *wsi, http_t *h)
{
    delete_req_t *req = calloc(1, sizeof(*req));

    if (!req)
        return -1;
    snprintf(req->room, sizeof(req->room), "%s", h->room);
    snprintf(req->cursor, sizeof(req->cursor), "0");
    if (!store_is_up(http_store)) {
        free(req);
        return http_error(wsi, h, 503, "unavailable",
                          "Redis is unreachable; retry later");
    }
    http_pending_start(&req->p, wsi, h);
    delete_page(req);
    return 0;
}
