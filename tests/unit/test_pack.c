/*
 * Unit tests of protocol/pack.c: msgpack round trips of JSON values and
 * stored objects, hostile input, and a real COCO annotation file.
 *
 * Usage: test_pack [DATA_DIR]. The COCO test reads
 * DATA_DIR/coco_instances_val2014_100.json and is skipped when the file is
 * absent.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msg.h"
#include "pack.h"

#define COCO_FILE "coco_instances_val2014_100.json"

static const char *data_dir;

/* Packs j and unpacks it again, expecting an equal value of the same
 * types. */
static void round_trip(const json_t *j)
{
    char err[PROTO_ERR_MAX] = "";
    msgpack_sbuffer sbuf;
    json_t *back = NULL;

    msgpack_sbuffer_init(&sbuf);
    assert_int_equal(pack_json(&sbuf, j), 0);
    if (unpack_json(sbuf.data, sbuf.size, PACK_DEPTH_MAX, &back, err,
                    sizeof(err)) != 0)
        fail_msg("unpack failed: %s", err);
    assert_true(json_equal(back, j));
    json_decref(back);
    msgpack_sbuffer_destroy(&sbuf);
}

/* Unpacks len bytes and expects -EINVAL with a message holding expected. */
static void expect_unpack_error(const char *buf, size_t len, size_t max_depth,
                                const char *expected)
{
    char err[PROTO_ERR_MAX] = "";
    json_t *out = (json_t *)1;

    assert_int_equal(unpack_json(buf, len, max_depth, &out, err, sizeof(err)),
                     -EINVAL);
    assert_null(out);
    if (strstr(err, expected) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err, expected);
}

static json_t *unpack_ok(const char *buf, size_t len)
{
    char err[PROTO_ERR_MAX] = "";
    json_t *out = NULL;

    if (unpack_json(buf, len, PACK_DEPTH_MAX, &out, err, sizeof(err)) != 0)
        fail_msg("unpack failed: %s", err);
    return out;
}

static void integers_stay_integers(void **state)
{
    json_t *j = json_pack("[I, I, I, I, I, I]", (json_int_t)0, (json_int_t)-1,
                          (json_int_t)127, (json_int_t)-33,
                          (json_int_t)INT64_MAX, (json_int_t)INT64_MIN);
    msgpack_sbuffer sbuf;
    json_t *back;
    size_t i;

    round_trip(j);
    msgpack_sbuffer_init(&sbuf);
    assert_int_equal(pack_json(&sbuf, j), 0);
    back = unpack_ok(sbuf.data, sbuf.size);
    for (i = 0; i < json_array_size(back); i++)
        assert_true(json_is_integer(json_array_get(back, i)));
    json_decref(back);
    msgpack_sbuffer_destroy(&sbuf);
    json_decref(j);
}

static void floats_stay_floats(void **state)
{
    json_t *j =
        json_loads("[3.0, 0.1, -2.5e-300, 1.7976931348623157e308]", 0, NULL);
    msgpack_sbuffer sbuf;
    json_t *back;
    size_t i;

    msgpack_sbuffer_init(&sbuf);
    assert_int_equal(pack_json(&sbuf, j), 0);

    /* 3.0 is written as a float64 (0xcb), not as the integer 3. */
    assert_int_equal((unsigned char)sbuf.data[1], 0xcb);
    back = unpack_ok(sbuf.data, sbuf.size);
    assert_true(json_equal(back, j));
    for (i = 0; i < json_array_size(back); i++)
        assert_true(json_is_real(json_array_get(back, i)));
    assert_true(json_real_value(json_array_get(back, 1)) == 0.1);
    json_decref(back);
    msgpack_sbuffer_destroy(&sbuf);
    json_decref(j);
}

static void float32_reads_as_real(void **state)
{
    const char buf[] = {(char)0xca, 0x40, 0x20, 0x00, 0x00}; /* 2.5f */
    json_t *j = unpack_ok(buf, sizeof(buf));

    assert_true(json_is_real(j));
    assert_true(json_real_value(j) == 2.5);
    json_decref(j);
}

static void nested_values_round_trip(void **state)
{
    json_t *j = json_loads(
        "{\"a\": [1, 2.5, \"x\", null, true, false, {\"b\": {\"c\": []}}], "
        "\"\\u00e9t\\u00e9\": \"\\ud83d\\ude00\", \"empty\": {}, "
        "\"s\": \"\"}",
        0, NULL);

    assert_non_null(j);
    round_trip(j);
    json_decref(j);
}

/* msgpack-c gives an empty fixstr that comes before any other string or
 * multi-byte value a NULL pointer. */
static void empty_strings_round_trip(void **state)
{
    const char *texts[] = {"\"\"", "[\"\"]", "{\"\": \"\"}",
                           "[{\"\": []}, \"\"]"};
    size_t i;

    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        json_t *j = json_loads(texts[i], JSON_DECODE_ANY, NULL);

        assert_non_null(j);
        round_trip(j);
        json_decref(j);
    }
}

static void long_strings_and_arrays_round_trip(void **state)
{
    char *s = malloc(70000);
    json_t *j = json_object(), *arr = json_array();
    size_t i;

    memset(s, 'q', 69999);
    s[69999] = '\0';
    json_object_set_new(j, "s", json_string(s));
    for (i = 0; i < 70000; i++)
        json_array_append_new(arr, json_integer((json_int_t)i * 1000));
    json_object_set_new(j, "arr", arr);
    round_trip(j);
    json_decref(j);
    free(s);
}

static void uint64_over_int64_max_is_rejected(void **state)
{
    const char big[] = {(char)0xcf, (char)0x80, 0, 0, 0, 0, 0, 0, 0};
    const char max[] = {(char)0xcf, 0x7f,       (char)0xff,
                        (char)0xff, (char)0xff, (char)0xff,
                        (char)0xff, (char)0xff, (char)0xff};
    json_t *j;

    expect_unpack_error(big, sizeof(big), 32, "over 2^63-1");
    j = unpack_ok(max, sizeof(max));
    assert_true(json_integer_value(j) == INT64_MAX);
    json_decref(j);
}

static void nan_and_infinity_are_rejected(void **state)
{
    const char nan64[] = {(char)0xcb, 0x7f, (char)0xf8, 0, 0, 0, 0, 0, 0};
    const char inf64[] = {(char)0xcb, 0x7f, (char)0xf0, 0, 0, 0, 0, 0, 0};
    const char inf32[] = {(char)0xca, (char)0xff, (char)0x80, 0, 0};

    expect_unpack_error(nan64, sizeof(nan64), 32, "NaN or infinite");
    expect_unpack_error(inf64, sizeof(inf64), 32, "NaN or infinite");
    expect_unpack_error(inf32, sizeof(inf32), 32, "NaN or infinite");
}

static void huge_declared_counts_fail_fast(void **state)
{
    const char arr32[] = {(char)0xdd, (char)0xff, (char)0xff, (char)0xff,
                          (char)0xff};
    const char map32[] = {(char)0xdf, (char)0xff, (char)0xff, (char)0xff,
                          (char)0xff};
    const char arr16[] = {(char)0xdc, (char)0xff, (char)0xff, 1, 2, 3};
    const char str32[] = {(char)0xdb, (char)0xff, (char)0xff,
                          (char)0xff, (char)0xff, 'a'};
    const char map_odd[] = {(char)0x81, (char)0xa1, 'k'}; /* no value */
    const char map16[] = {(char)0xde, 0x00, 0x02, (char)0xa1, 'k', 0x01};
    clock_t start = clock();

    expect_unpack_error(arr32, sizeof(arr32), 32,
                        "declares 4294967295 entries but only 0 bytes");
    expect_unpack_error(map32, sizeof(map32), 32, "msgpack map");
    expect_unpack_error(arr16, sizeof(arr16), 32, "declares 65535 entries");
    expect_unpack_error(str32, sizeof(str32), 32, "truncated");
    expect_unpack_error(map16, sizeof(map16), 32,
                        "map at byte 3 declares 2 entries but only 3 bytes");
    expect_unpack_error(map_odd, sizeof(map_odd), 32, "truncated");
    assert_true(clock() - start < CLOCKS_PER_SEC);
}

static void truncated_input_is_rejected(void **state)
{
    json_t *j = json_loads("{\"a\": [1, 300, 70000, 5000000000, -200, 2.5, "
                           "\"text\", {\"b\": null}]}",
                           0, NULL);
    char err[PROTO_ERR_MAX];
    msgpack_sbuffer sbuf;
    json_t *out;
    size_t len;

    msgpack_sbuffer_init(&sbuf);
    assert_int_equal(pack_json(&sbuf, j), 0);
    for (len = 0; len < sbuf.size; len++) {
        assert_int_equal(
            unpack_json(sbuf.data, len, 32, &out, err, sizeof(err)), -EINVAL);
        assert_null(out);
    }
    msgpack_sbuffer_destroy(&sbuf);
    json_decref(j);
}

static void trailing_bytes_are_rejected(void **state)
{
    const char two[] = {0x01, 0x02};
    const char arr_extra[] = {(char)0x91, 0x01, (char)0xc0};

    expect_unpack_error(two, sizeof(two), 32, "1 trailing bytes");
    expect_unpack_error(arr_extra, sizeof(arr_extra), 32, "trailing");
}

/* Returns n nested one-element arrays around nil. */
static char *nested_arrays(size_t n)
{
    char *buf = malloc(n + 1);

    memset(buf, 0x91, n);
    buf[n] = (char)0xc0;
    return buf;
}

static void depth_is_capped(void **state)
{
    char *ok = nested_arrays(32);
    char *deep = nested_arrays(33);
    char *bomb = nested_arrays(1000000);
    const char two_levels[] = {(char)0x91, (char)0x90};
    json_t *j = unpack_ok(ok, 33);

    json_decref(j);
    expect_unpack_error(deep, 34, 32, "deeper than 32 levels");
    expect_unpack_error(bomb, 1000001, 32, "deeper than 32 levels");

    /* A larger max_depth is lowered to what msgpack-c can parse. */
    expect_unpack_error(deep, 34, 1000, "deeper than 32 levels");

    /* max_depth counts empty containers too. */
    expect_unpack_error(two_levels, sizeof(two_levels), 1,
                        "deeper than 1 levels");
    j = unpack_ok(two_levels, sizeof(two_levels));
    json_decref(j);
    free(ok);
    free(deep);
    free(bomb);
}

static void pack_rejects_values_too_deep_to_read(void **state)
{
    json_t *root = json_array(), *cur = root;
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    int i;

    /* 32 levels pack; a 33rd makes the value unreadable. */
    for (i = 1; i < 32; i++) {
        json_t *inner = json_array();

        json_array_append_new(cur, inner);
        cur = inner;
    }
    msgpack_sbuffer_init(&sbuf);
    assert_int_equal(pack_json(&sbuf, root), 0);
    msgpack_sbuffer_clear(&sbuf);

    json_array_append_new(cur, json_array());
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    assert_int_equal(msgpack_pack_nil(&pk), 0);
    assert_int_equal(pack_json(&sbuf, root), -EINVAL);
    assert_int_equal(sbuf.size, 1); /* cut back to the nil before it */
    msgpack_sbuffer_destroy(&sbuf);
    json_decref(root);
}

static void bad_types_are_rejected(void **state)
{
    const char int_key[] = {(char)0x81, 0x01, 0x02};
    const char nil_key[] = {(char)0x81, (char)0xc0, 0x02};
    const char bin[] = {(char)0xc4, 0x01, 'a'};
    const char ext[] = {(char)0xd4, 0x01, 0x00};
    const char ext8[] = {(char)0xc7, 0x01, 0x05, 'a'};
    const char never[] = {(char)0xc1};
    const char bad_utf8[] = {(char)0xa2, (char)0xc3, 0x28};
    const char overlong[] = {(char)0xa2, (char)0xc0, (char)0x80};
    const char surrogate[] = {(char)0xa3, (char)0xed, (char)0xa0, (char)0x80};
    const char nul[] = {(char)0xa3, 'a', 0x00, 'b'};
    const char dup[] = {(char)0x82, (char)0xa1, 'k', 0x01,
                        (char)0xa1, 'k',        0x02};

    expect_unpack_error(int_key, sizeof(int_key), 32,
                        "key at byte 1 is not "
                        "a string");
    expect_unpack_error(nil_key, sizeof(nil_key), 32, "not a string");
    expect_unpack_error(bin, sizeof(bin), 32, "bin");
    expect_unpack_error(ext, sizeof(ext), 32, "ext");
    expect_unpack_error(ext8, sizeof(ext8), 32, "ext");
    expect_unpack_error(never, sizeof(never), 32, "0xc1");
    expect_unpack_error(bad_utf8, sizeof(bad_utf8), 32, "not valid UTF-8");
    expect_unpack_error(overlong, sizeof(overlong), 32, "not valid UTF-8");
    expect_unpack_error(surrogate, sizeof(surrogate), 32, "not valid UTF-8");
    expect_unpack_error(nul, sizeof(nul), 32, "NUL byte");
    expect_unpack_error(dup, sizeof(dup), 32,
                        "duplicate msgpack map key "
                        "\"k\"");
    expect_unpack_error("", 0, 32, "empty");
}

/* Flips random bytes of a valid encoding: every result must be a clean
 * success or -EINVAL, with nothing leaked (checked under valgrind/ASan). */
static void mutated_input_never_crashes(void **state)
{
    json_t *j = json_loads("{\"kind\": \"bbox\", \"fields\": {\"geometry\": "
                           "[1.5, 2, 300, 70000], \"label\": \"cat\", "
                           "\"attrs\": {\"x\": [[true, null]]}}, "
                           "\"vv\": {\"a\": 5000000000}}",
                           0, NULL);
    char err[PROTO_ERR_MAX];
    msgpack_sbuffer sbuf;
    unsigned seed = 12345;
    json_t *out;
    char *copy;
    int i, k, rc;

    msgpack_sbuffer_init(&sbuf);
    assert_int_equal(pack_json(&sbuf, j), 0);
    copy = malloc(sbuf.size);
    for (i = 0; i < 20000; i++) {
        memcpy(copy, sbuf.data, sbuf.size);
        for (k = 0; k < 1 + i % 4; k++) {
            seed = seed * 1103515245u + 12345u;
            copy[(seed >> 8) % sbuf.size] = (char)(seed >> 16);
        }
        rc = unpack_json(copy, sbuf.size - (size_t)(i % 3 == 0), 32, &out, err,
                         sizeof(err));
        assert_true(rc == 0 || rc == -EINVAL);
        json_decref(out);
    }
    free(copy);
    msgpack_sbuffer_destroy(&sbuf);
    json_decref(j);
}

/* Builds an object by applying client ops in JSON form. */
static obj_t *apply_text(const obj_t *cur, const char *text, const char *actor)
{
    json_t *j = json_loads(text, 0, NULL);
    char err[PROTO_ERR_MAX];
    op_result_t res;
    obj_t *next = NULL;
    op_t op;

    assert_int_equal(msg_op_from_json(j, NULL, 0, &op, err, sizeof(err)), 0);
    op_result_init(&res);
    assert_int_equal(obj_apply(cur, &op, actor, &next, &res), 0);
    assert_int_equal(res.status, RES_APPLIED);
    op_result_clear(&res);
    op_clear(&op);
    json_decref(j);
    return next;
}

static void obj_round_trips(void **state)
{
    obj_t *a = apply_text(NULL,
                          "{\"op\": \"create\", \"id\": \"o1\", "
                          "\"kind\": \"polygon\", \"fields\": {\"item\": "
                          "\"img-1\", \"points\": [[1.0, 2.5], [3, 4]], "
                          "\"frame\": 7, \"label\": \"cat\"}}",
                          "tab-a");
    obj_t *b = apply_text(a,
                          "{\"op\": \"update\", \"id\": \"o1\", "
                          "\"base\": {\"tab-a\": 1}, \"unset\": [\"label\"]}",
                          "bot-1");
    obj_t *dead = apply_text(b,
                             "{\"op\": \"delete\", \"id\": \"o1\", \"base\": "
                             "{\"tab-a\": 1, \"bot-1\": 1}}",
                             "tab-a");
    obj_t *objs[3] = {a, b, dead};
    char err[PROTO_ERR_MAX] = "";
    msgpack_sbuffer sbuf;
    obj_t *back;
    int i;

    for (i = 0; i < 3; i++) {
        msgpack_sbuffer_init(&sbuf);
        assert_int_equal(pack_obj(&sbuf, objs[i]), 0);
        if (unpack_obj(sbuf.data, sbuf.size, "o1", 77, &back, err,
                       sizeof(err)) != 0)
            fail_msg("object %d: %s", i, err);
        assert_true(obj_equal(back, objs[i]));
        assert_int_equal(back->rev, 77);
        if (!back->deleted)
            assert_true(json_is_real(json_array_get(
                json_array_get(json_object_get(back->fields, "points"), 0),
                0)));
        obj_free(back);
        msgpack_sbuffer_destroy(&sbuf);
    }
    assert_true(dead->deleted);
    obj_free(a);
    obj_free(b);
    obj_free(dead);
}

/* Packs the JSON text as msgpack and expects unpack_obj to reject it. */
static void expect_obj_error(const char *text, const char *expected)
{
    json_t *j = json_loads(text, 0, NULL);
    char err[PROTO_ERR_MAX] = "";
    msgpack_sbuffer sbuf;
    obj_t *out = (obj_t *)1;

    assert_non_null(j);
    msgpack_sbuffer_init(&sbuf);
    assert_int_equal(pack_json(&sbuf, j), 0);
    assert_int_equal(
        unpack_obj(sbuf.data, sbuf.size, "o1", 1, &out, err, sizeof(err)),
        -EINVAL);
    assert_null(out);
    if (strstr(err, expected) == NULL)
        fail_msg("%s: message \"%s\" lacks \"%s\"", text, err, expected);
    msgpack_sbuffer_destroy(&sbuf);
    json_decref(j);
}

static void bad_stored_objects_are_rejected(void **state)
{
    expect_obj_error("[1]", "not a map");
    expect_obj_error("{\"fields\": {}, \"dots\": {}, \"vv\": {}, "
                     "\"deleted\": false}",
                     "no \"kind\"");
    expect_obj_error("{\"kind\": \"blob\", \"fields\": {}, \"dots\": {}, "
                     "\"vv\": {}, \"deleted\": false}",
                     "unknown kind");
    expect_obj_error("{\"kind\": \"tag\", \"fields\": [], \"dots\": {}, "
                     "\"vv\": {}, \"deleted\": false}",
                     "\"fields\"");
    expect_obj_error("{\"kind\": \"tag\", \"fields\": {}, \"dots\": "
                     "{\"a\": [\"x\"]}, \"vv\": {}, \"deleted\": false}",
                     "[actor, counter]");
    expect_obj_error("{\"kind\": \"tag\", \"fields\": {}, \"dots\": {}, "
                     "\"vv\": {\"a\": 0}, \"deleted\": false}",
                     "counter for actor \"a\"");
    expect_obj_error("{\"kind\": \"tag\", \"fields\": {}, \"dots\": {}, "
                     "\"vv\": {}, \"deleted\": 0}",
                     "\"deleted\"");
    expect_obj_error("{\"kind\": \"tag\", \"fields\": {}, \"dots\": {}, "
                     "\"vv\": {}}",
                     "\"deleted\"");
}

static void coco_file_round_trips(void **state)
{
    char path[4096], err[PROTO_ERR_MAX] = "";
    msgpack_sbuffer sbuf;
    json_error_t jerr;
    json_t *j, *back = NULL;
    FILE *f;

    if (data_dir == NULL) {
        print_message("SKIP: no data folder given on the command line\n");
        skip();
    }
    snprintf(path, sizeof(path), "%s/%s", data_dir, COCO_FILE);
    f = fopen(path, "rb");
    if (f == NULL) {
        print_message("SKIP: %s is absent\n", path);
        skip();
    }
    fclose(f);

    j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        fail_msg("%s: %s", path, jerr.text);
    assert_true(json_array_size(json_object_get(j, "annotations")) > 0);

    msgpack_sbuffer_init(&sbuf);
    assert_int_equal(pack_json(&sbuf, j), 0);
    if (unpack_json(sbuf.data, sbuf.size, PACK_DEPTH_MAX, &back, err,
                    sizeof(err)) != 0)
        fail_msg("unpack of %s failed: %s", path, err);
    assert_true(json_equal(back, j));
    json_decref(back);
    msgpack_sbuffer_destroy(&sbuf);
    json_decref(j);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(integers_stay_integers),
        cmocka_unit_test(floats_stay_floats),
        cmocka_unit_test(float32_reads_as_real),
        cmocka_unit_test(nested_values_round_trip),
        cmocka_unit_test(empty_strings_round_trip),
        cmocka_unit_test(long_strings_and_arrays_round_trip),
        cmocka_unit_test(uint64_over_int64_max_is_rejected),
        cmocka_unit_test(nan_and_infinity_are_rejected),
        cmocka_unit_test(huge_declared_counts_fail_fast),
        cmocka_unit_test(truncated_input_is_rejected),
        cmocka_unit_test(trailing_bytes_are_rejected),
        cmocka_unit_test(depth_is_capped),
        cmocka_unit_test(pack_rejects_values_too_deep_to_read),
        cmocka_unit_test(bad_types_are_rejected),
        cmocka_unit_test(mutated_input_never_crashes),
        cmocka_unit_test(obj_round_trips),
        cmocka_unit_test(bad_stored_objects_are_rejected),
        cmocka_unit_test(coco_file_round_trips),
    };

    if (argc > 1)
        data_dir = argv[1];
    return cmocka_run_group_tests(tests, NULL, NULL);
}
