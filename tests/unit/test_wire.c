/*
 * Runs the wire vectors of protocol/vectors/wire: each case gives a message
 * as JSON and the msgpack bytes that pack_json() makes of it (the format is
 * in protocol/vectors/README.md). For every case the runner checks that
 * pack_json() gives exactly those bytes and that unpack_json() reads them
 * back to the same JSON. For client messages (join, leave, ops) it also
 * checks that msg_decode_msgpack() of the bytes and msg_decode_json() of
 * the text both succeed and give the same message.
 *
 * Usage: test_wire DIR (the folder of *.json vector files).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "pack.h"

#define SHOW_MAX 600 /* characters of a value shown in a failure */

/* One case of a vector file. */
typedef struct {
    char *title; /* "FILE: NAME", the cmocka test name */
    json_t *c;   /* the case object */
} wcase_t;

/* ---- hex ---- */

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes lowercase hex into a new buffer of *len bytes. Returns NULL when
 * the text is not an even number of lowercase hex digits. */
static unsigned char *hex_decode(const char *hex, size_t *len)
{
    size_t n = strlen(hex);
    unsigned char *out;
    size_t i;

    if (n % 2 != 0)
        return NULL;
    out = malloc(n / 2 + 1);
    assert_non_null(out);
    for (i = 0; i < n / 2; i++) {
        int hi = hex_digit(hex[2 * i]);
        int lo = hex_digit(hex[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            free(out);
            return NULL;
        }
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    *len = n / 2;
    return out;
}

static char *hex_encode(const char *data, size_t len)
{
    char *out = malloc(2 * len + 1);
    size_t i;

    assert_non_null(out);
    for (i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", (unsigned char)data[i]);
    out[2 * len] = '\0';
    return out;
}

/* Returns the first n characters of s, with "..." when s is longer, in a
 * static buffer. */
static const char *cut(const char *s)
{
    static char buf[SHOW_MAX + 4];

    snprintf(buf, sizeof(buf), "%.*s%s", SHOW_MAX, s,
             strlen(s) > SHOW_MAX ? "..." : "");
    return buf;
}

/* ---- comparing decoded messages ---- */

static const char *type_name(msg_type_t t)
{
    if (t == MSG_JOIN)
        return "join";
    if (t == MSG_LEAVE)
        return "leave";
    return "ops";
}

/* Fails when the two decodings of one message differ in any member. */
static void expect_same_msg(const char *title, const msg_t *a,
                            const msg_t *b)
{
    size_t i;

    if (a->type != b->type)
        fail_msg("%s: type: msgpack %s, JSON %s", title, type_name(a->type),
                 type_name(b->type));
    if (strcmp(a->room, b->room) != 0)
        fail_msg("%s: room: msgpack \"%s\", JSON \"%s\"", title, a->room,
                 b->room);
    if (strcmp(a->actor, b->actor) != 0)
        fail_msg("%s: actor: msgpack \"%s\", JSON \"%s\"", title, a->actor,
                 b->actor);
    if (a->has_opseq != b->has_opseq || a->opseq != b->opseq)
        fail_msg("%s: opseq: msgpack %d/%llu, JSON %d/%llu", title,
                 a->has_opseq, (unsigned long long)a->opseq, b->has_opseq,
                 (unsigned long long)b->opseq);
    if (a->has_since != b->has_since || a->since != b->since)
        fail_msg("%s: since: msgpack %d/%llu, JSON %d/%llu", title,
                 a->has_since, (unsigned long long)a->since, b->has_since,
                 (unsigned long long)b->since);
    if (a->atomic != b->atomic)
        fail_msg("%s: atomic: msgpack %d, JSON %d", title, a->atomic,
                 b->atomic);
    if (a->nops != b->nops)
        fail_msg("%s: nops: msgpack %zu, JSON %zu", title, a->nops, b->nops);
    for (i = 0; i < a->nops; i++) {
        const op_t *oa = &a->ops[i];
        const op_t *ob = &b->ops[i];
        json_t *ja, *jb;

        if (oa->type != ob->type)
            fail_msg("%s: ops[%zu].op: msgpack %d, JSON %d", title, i,
                     (int)oa->type, (int)ob->type);
        /* The event form shows id, kind, fields, set, unset and the base
         * (as "vv"), which is every member an op decodes to. */
        ja = msg_event_op_json(oa, &oa->base);
        jb = msg_event_op_json(ob, &ob->base);
        assert_non_null(ja);
        assert_non_null(jb);
        if (!json_equal(ja, jb)) {
            char *ta = json_dumps(ja, JSON_COMPACT | JSON_SORT_KEYS);
            char *tb = json_dumps(jb, JSON_COMPACT | JSON_SORT_KEYS);

            print_error("ops[%zu] from msgpack: %s\n", i, cut(ta));
            print_error("ops[%zu] from JSON:    %s\n", i, cut(tb));
            free(ta);
            free(tb);
            fail_msg("%s: ops[%zu] differ", title, i);
        }
        json_decref(ja);
        json_decref(jb);
    }
}

static int is_client_message(const json_t *j)
{
    const char *type = json_string_value(json_object_get(j, "type"));

    return type != NULL &&
           (strcmp(type, "join") == 0 || strcmp(type, "leave") == 0 ||
            strcmp(type, "ops") == 0);
}

/* Decodes the message both ways and compares the results. */
static void check_client_message(const char *title, const json_t *j,
                                 const unsigned char *bytes, size_t len)
{
    char *text = json_dumps(j, JSON_COMPACT);
    msg_error_t err;
    msg_t from_mp, from_json;

    assert_non_null(text);
    if (msg_decode_msgpack((const char *)bytes, len, NULL, &from_mp, &err) <
        0)
        fail_msg("%s: msg_decode_msgpack: %s: %s", title,
                 msg_code_name(err.code), err.message);
    if (msg_decode_json(text, strlen(text), NULL, &from_json, &err) < 0)
        fail_msg("%s: msg_decode_json: %s: %s", title,
                 msg_code_name(err.code), err.message);
    expect_same_msg(title, &from_mp, &from_json);
    msg_clear(&from_mp);
    msg_clear(&from_json);
    free(text);
}

/* ---- one case ---- */

static void run_case(void **state)
{
    const wcase_t *wc = *state;
    const json_t *j = json_object_get(wc->c, "json");
    const char *hex = json_string_value(json_object_get(wc->c, "msgpack"));
    char err[PROTO_ERR_MAX];
    msgpack_sbuffer sbuf;
    unsigned char *bytes;
    json_t *back = NULL;
    size_t len = 0;
    char *got;

    if (j == NULL || hex == NULL)
        fail_msg("%s: a case needs \"json\" and \"msgpack\"", wc->title);
    bytes = hex_decode(hex, &len);
    if (bytes == NULL)
        fail_msg("%s: \"msgpack\" is not lowercase hex of whole bytes",
                 wc->title);

    /* pack_json() gives exactly the bytes of the case. */
    msgpack_sbuffer_init(&sbuf);
    assert_int_equal(pack_json(&sbuf, j), 0);
    got = hex_encode(sbuf.data, sbuf.size);
    if (strcmp(got, hex) != 0) {
        size_t at = 0;

        while (got[at] != '\0' && got[at] == hex[at])
            at++;
        print_error("want %s\n", cut(hex));
        print_error("got  %s\n", cut(got));
        fail_msg("%s: pack_json() differs at byte %zu (%zu bytes, want %zu)",
                 wc->title, at / 2, sbuf.size, len);
    }
    free(got);
    msgpack_sbuffer_destroy(&sbuf);

    /* unpack_json() reads the bytes back to the same JSON, with integers
     * and floats apart. */
    if (unpack_json((const char *)bytes, len, PACK_DEPTH_MAX, &back, err,
                    sizeof(err)) < 0)
        fail_msg("%s: unpack_json: %s", wc->title, err);
    if (!json_equal(back, j)) {
        char *text = json_dumps(back, JSON_COMPACT);

        print_error("unpacked %s\n", cut(text));
        free(text);
        fail_msg("%s: unpack_json() does not give the case's JSON",
                 wc->title);
    }
    json_decref(back);

    if (is_client_message(j))
        check_client_message(wc->title, j, bytes, len);
    free(bytes);
}

/* ---- loading the files ---- */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Returns the sorted names of the *.json files in dir, or NULL. */
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
        assert_non_null(names);
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (*n > 0)
        qsort(names, *n, sizeof(*names), name_cmp);
    return names;
}

/* Appends the cases of one file to *cases. Returns 0 or -1. Integers stay
 * integers (JSON_DECODE_INT_AS_REAL is not set). */
static int load_file(const char *dir, const char *name, wcase_t **cases,
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
        wcase_t *wc;

        *cases = realloc(*cases, (*n + 1) * sizeof(**cases));
        assert_non_null(*cases);
        wc = &(*cases)[(*n)++];
        wc->title = malloc(len);
        assert_non_null(wc->title);
        snprintf(wc->title, len, "%s: %s", name, title ? title : "unnamed");
        wc->c = json_incref(c);
    }
    json_decref(list);
    return 0;
}

int main(int argc, char **argv)
{
    struct CMUnitTest *tests;
    wcase_t *cases = NULL;
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
    assert_non_null(tests);
    for (i = 0; i < n; i++) {
        tests[i].name = cases[i].title;
        tests[i].test_func = run_case;
        tests[i].initial_state = &cases[i];
    }
    failed = _cmocka_run_group_tests("wire", tests, n, NULL, NULL);

    for (i = 0; i < n; i++) {
        free(cases[i].title);
        json_decref(cases[i].c);
    }
    free(cases);
    free(tests);
    return failed;
}
