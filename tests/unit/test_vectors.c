/*
 * Runs the merge test vectors of protocol/vectors/merge: each case gives
 * stored objects, optional room settings, one batch and the expected ack
 * results, final objects and event ops (protocol/vectors/README.md has the
 * format). Every case also replays its expected event ops with
 * obj_replay() and checks that the replicas reach the same objects.
 *
 * Usage: test_vectors DIR (the folder of *.json vector files).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merge.h"
#include "msg.h"
#include "obj.h"
#include "pack.h"

#define ROOM "vectors"
#define SETTINGS_ACTOR "admin" /* writer of the room object of "settings" */
#define DUMP_MAX 600           /* bytes of a JSON value shown in a diff */

/* One case of a vector file. */
typedef struct {
    char *title; /* "FILE: NAME", the cmocka test name */
    json_t *c;   /* the case object */
} vcase_t;

/* Objects by id, owned. */
typedef struct {
    obj_t **v;
    size_t n;
} objmap_t;

static void map_free(objmap_t *m)
{
    size_t i;

    for (i = 0; i < m->n; i++)
        obj_free(m->v[i]);
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

static obj_t **map_slot(objmap_t *m, const char *id)
{
    size_t i;

    for (i = 0; i < m->n; i++) {
        if (strcmp(m->v[i]->id, id) == 0)
            return &m->v[i];
    }
    return NULL;
}

static const obj_t *map_lookup(const char *id, void *arg)
{
    obj_t **slot = map_slot(arg, id);

    return slot ? *slot : NULL;
}

/* Puts obj into m, replacing the object with its id. */
static void map_put(objmap_t *m, obj_t *obj)
{
    obj_t **slot = map_slot(m, obj->id);

    if (slot != NULL) {
        obj_free(*slot);
        *slot = obj;
        return;
    }
    m->v = realloc(m->v, (m->n + 1) * sizeof(*m->v));
    assert_non_null(m->v);
    m->v[m->n++] = obj;
}

/* ---- stored objects as JSON ---- */

/* Reads an object in its stored form {id, kind, fields, dots, vv, deleted}
 * through the msgpack codec the store uses. */
static obj_t *obj_from_stored(const json_t *j)
{
    const char *id = json_string_value(json_object_get(j, "id"));
    char err[PROTO_ERR_MAX];
    msgpack_sbuffer sbuf;
    obj_t *obj = NULL;

    if (id == NULL)
        fail_msg("a state object has no id");
    msgpack_sbuffer_init(&sbuf);
    assert_int_equal(pack_json(&sbuf, j), 0);
    if (unpack_obj(sbuf.data, sbuf.size, id, 0, &obj, err, sizeof(err)) < 0)
        fail_msg("state object %s: %s", id, err);
    msgpack_sbuffer_destroy(&sbuf);
    return obj;
}

static json_t *obj_to_stored(const obj_t *obj)
{
    char err[PROTO_ERR_MAX];
    msgpack_sbuffer sbuf;
    json_t *j = NULL;

    msgpack_sbuffer_init(&sbuf);
    assert_int_equal(pack_obj(&sbuf, obj), 0);
    if (unpack_json(sbuf.data, sbuf.size, PACK_DEPTH_MAX, &j, err,
                    sizeof(err)) < 0)
        fail_msg("object %s: %s", obj->id, err);
    msgpack_sbuffer_destroy(&sbuf);
    json_object_set_new(j, "id", json_string(obj->id));
    return j;
}

/* Builds the room object that the "settings" member of a case is short
 * for: each setting written once by SETTINGS_ACTOR. */
static obj_t *room_from_settings(const json_t *settings)
{
    json_t *dots = json_object();
    json_t *j;
    const char *name;
    json_t *value;
    obj_t *obj;

    json_object_foreach ((json_t *)settings, name, value)
        json_object_set_new(dots, name, json_pack("[si]", SETTINGS_ACTOR, 1));
    j = json_pack("{s:s, s:s, s:O, s:o, s:{s:i}, s:b}", "id", OBJ_ROOM_ID,
                  "kind", OBJ_ROOM_KIND, "fields", settings, "dots", dots,
                  "vv", SETTINGS_ACTOR, 1, "deleted", 0);
    obj = obj_from_stored(j);
    json_decref(j);
    return obj;
}

static void load_state(const json_t *c, objmap_t *m, json_t *ids)
{
    const json_t *settings = json_object_get(c, "settings");
    json_t *j;
    size_t i;

    json_array_foreach (json_object_get(c, "state"), i, j) {
        map_put(m, obj_from_stored(j));
        json_object_set_new(ids, json_string_value(json_object_get(j, "id")),
                            json_true());
    }
    if (settings != NULL)
        map_put(m, room_from_settings(settings));
}

/* ---- readable differences ---- */

static void dump(const json_t *j, char *buf, size_t buflen)
{
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS |
                                       JSON_ENCODE_ANY)
                   : NULL;

    snprintf(buf, buflen, "%s", text ? text : "(absent)");
    free(text);
}

/* Writes into out the path and values of the first place where got and
 * want differ. Returns 1 when they differ. */
static int first_diff(const json_t *got, const json_t *want, const char *path,
                      char *out, size_t outlen)
{
    char sub[512], g[DUMP_MAX], w[DUMP_MAX];
    const char *key;
    json_t *value;
    size_t i;

    if (got != NULL && want != NULL && json_equal(got, want))
        return 0;
    if (json_is_object(got) && json_is_object(want)) {
        json_object_foreach ((json_t *)want, key, value) {
            snprintf(sub, sizeof(sub), "%s.%s", path, key);
            if (first_diff(json_object_get(got, key), value, sub, out, outlen))
                return 1;
        }
        json_object_foreach ((json_t *)got, key, value) {
            snprintf(sub, sizeof(sub), "%s.%s", path, key);
            if (first_diff(value, json_object_get(want, key), sub, out, outlen))
                return 1;
        }
    }
    if (json_is_array(got) && json_is_array(want) &&
        json_array_size(got) == json_array_size(want)) {
        for (i = 0; i < json_array_size(want); i++) {
            snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
            if (first_diff(json_array_get(got, i), json_array_get(want, i),
                           sub, out, outlen))
                return 1;
        }
    }
    dump(got, g, sizeof(g));
    dump(want, w, sizeof(w));
    snprintf(out, outlen, "at %s:\n    got  %s\n    want %s", path, g, w);
    return 1;
}

static void expect_equal(const vcase_t *vc, const char *what,
                         const json_t *got, const json_t *want)
{
    char diff[2 * DUMP_MAX + 600];

    if (first_diff(got, want, what, diff, sizeof(diff)))
        fail_msg("%s: %s differs %s", vc->title, what, diff);
}

/* ---- one case ---- */

static void decode_batch(const vcase_t *vc, msg_t *msg)
{
    json_t *batch = json_deep_copy(json_object_get(vc->c, "batch"));
    msg_error_t err;
    char *text;

    if (batch == NULL)
        fail_msg("%s: no batch", vc->title);
    json_object_set_new(batch, "type", json_string("ops"));
    json_object_set_new(batch, "room", json_string(ROOM));
    text = json_dumps(batch, JSON_COMPACT);
    if (msg_decode_json(text, strlen(text), NULL, msg, &err) != 0)
        fail_msg("%s: batch does not decode: %s", vc->title, err.message);
    free(text);
    json_decref(batch);
}

static json_t *results_json(const msg_t *msg, const merge_out_t *out)
{
    const char **ids = calloc(msg->nops, sizeof(*ids));
    json_t *ack, *results;
    size_t i;

    for (i = 0; i < msg->nops; i++)
        ids[i] = msg->ops[i].id;
    ack = msg_ack_json(ROOM, msg->opseq, 0, ids, out->results, msg->nops);
    results = json_incref(json_object_get(ack, "results"));
    json_decref(ack);
    free(ids);
    return results;
}

/* Returns {id: stored object} for every id in ids, from m. */
static json_t *state_json(const objmap_t *m, const json_t *ids)
{
    json_t *state = json_object();
    const char *id;
    json_t *value;

    json_object_foreach ((json_t *)ids, id, value) {
        obj_t **slot = map_slot((objmap_t *)m, id);

        if (slot != NULL)
            json_object_set_new(state, id, obj_to_stored(*slot));
    }
    return state;
}

static json_t *expected_state(const vcase_t *vc)
{
    json_t *expect = json_object_get(vc->c, "expect");
    json_t *state = json_object();
    json_t *j;
    size_t i;

    json_array_foreach (json_object_get(expect, "state"), i, j)
        json_object_set(state, json_string_value(json_object_get(j, "id")), j);
    return state;
}

/* Replays the expected event ops on a fresh copy of the initial state. */
static void check_replay(const vcase_t *vc, const msg_t *msg,
                         const json_t *ids, const json_t *want)
{
    json_t *ops = json_object_get(json_object_get(vc->c, "expect"),
                                  "event_ops");
    char err[PROTO_ERR_MAX];
    objmap_t m = {NULL, 0};
    json_t *j, *got, *seen = json_object();
    size_t i;

    load_state(vc->c, &m, seen);
    json_decref(seen);
    json_array_foreach (ops, i, j) {
        obj_t *next = NULL;
        op_t op;

        if (msg_op_from_json(j, NULL, 1, &op, err, sizeof(err)) != 0)
            fail_msg("%s: event op %zu does not parse: %s", vc->title, i, err);
        if (obj_replay(map_lookup(op.id, &m), &op, msg->actor, &op.base,
                       &next) != 0)
            fail_msg("%s: event op %zu does not replay", vc->title, i);
        map_put(&m, next);
        op_clear(&op);
    }
    got = state_json(&m, ids);
    expect_equal(vc, "replayed state", got, want);
    json_decref(got);
    map_free(&m);
}

static void run_case(void **state)
{
    const vcase_t *vc = *state;
    json_t *expect = json_object_get(vc->c, "expect");
    json_t *ids = json_object();
    json_t *got, *want;
    objmap_t m = {NULL, 0};
    merge_out_t out;
    msg_t msg;
    size_t i;

    load_state(vc->c, &m, ids);
    decode_batch(vc, &msg);
    assert_int_equal(merge_batch(&msg, map_lookup, &m, &out), 0);

    got = results_json(&msg, &out);
    expect_equal(vc, "results", got, json_object_get(expect, "results"));
    json_decref(got);
    expect_equal(vc, "event_ops", out.event_ops,
                 json_object_get(expect, "event_ops"));

    /* Every id of the initial state and every id written is compared. */
    for (i = 0; i < out.nobjs; i++) {
        json_object_set_new(ids, out.objs[i]->id, json_true());
        map_put(&m, out.objs[i]);
        out.objs[i] = NULL;
    }
    got = state_json(&m, ids);
    want = expected_state(vc);
    expect_equal(vc, "state", got, want);
    check_replay(vc, &msg, ids, want);

    json_decref(got);
    json_decref(want);
    json_decref(ids);
    merge_out_clear(&out);
    msg_clear(&msg);
    map_free(&m);
}

/* ---- loading the files ---- */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Returns the sorted names of the *.json files in dir. */
static char **list_files(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;

    *n = 0;
    if (d == NULL)
        return NULL;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);

        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        names = realloc(names, (*n + 1) * sizeof(*names));
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, *n, sizeof(*names), name_cmp);
    return names;
}

/* Appends the cases of one file to *cases. Returns 0 or -1. */
static int load_file(const char *dir, const char *name, vcase_t **cases,
                     size_t *n)
{
    char path[4096];
    json_error_t jerr;
    json_t *list, *c;
    size_t i;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    list = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_array(list)) {
        fprintf(stderr, "%s: line %d: %s\n", path, jerr.line,
                list ? "not an array of cases" : jerr.text);
        json_decref(list);
        return -1;
    }
    json_array_foreach (list, i, c) {
        const char *title = json_string_value(json_object_get(c, "name"));
        size_t len = strlen(name) + (title ? strlen(title) : 8) + 3;
        vcase_t *vc;

        *cases = realloc(*cases, (*n + 1) * sizeof(**cases));
        vc = &(*cases)[(*n)++];
        vc->title = malloc(len);
        snprintf(vc->title, len, "%s: %s", name, title ? title : "unnamed");
        vc->c = json_incref(c);
    }
    json_decref(list);
    return 0;
}

int main(int argc, char **argv)
{
    struct CMUnitTest *tests;
    vcase_t *cases = NULL;
    size_t i, nfiles, n = 0;
    char **files;
    int failed;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    files = list_files(argv[1], &nfiles);
    if (nfiles == 0) {
        fprintf(stderr, "%s: no *.json vector files\n", argv[1]);
        return 2;
    }
    for (i = 0; i < nfiles; i++) {
        if (load_file(argv[1], files[i], &cases, &n) < 0)
            return 2;
        free(files[i]);
    }
    free(files);

    tests = calloc(n, sizeof(*tests));
    for (i = 0; i < n; i++) {
        tests[i].name = cases[i].title;
        tests[i].test_func = run_case;
        tests[i].initial_state = &cases[i];
    }
    failed = _cmocka_run_group_tests("vectors", tests, n, NULL, NULL);

    for (i = 0; i < n; i++) {
        free(cases[i].title);
        json_decref(cases[i].c);
    }
    free(cases);
    free(tests);
    return failed;
}
