/*
 * Unit tests of the version vectors in protocol/vv.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "proto.h"
#include "vv.h"

/* Builds a vv from valid JSON text, failing the test otherwise. */
static void vv_parse(vv_t *vv, const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    char err[PROTO_ERR_MAX];

    assert_non_null(j);
    vv_init(vv);
    assert_int_equal(vv_from_json(vv, j, err, sizeof(err)), 0);
    json_decref(j);
}

static void get_absent_actor_is_zero(void **state)
{
    vv_t vv;

    vv_parse(&vv, "{\"a\": 3}");
    assert_int_equal(vv_get(&vv, "a"), 3);
    assert_int_equal(vv_get(&vv, "b"), 0);
    vv_free(&vv);
}

static void set_keeps_entries_sorted(void **state)
{
    vv_t vv;

    vv_init(&vv);
    assert_int_equal(vv_set(&vv, "m", 1), 0);
    assert_int_equal(vv_set(&vv, "z", 2), 0);
    assert_int_equal(vv_set(&vv, "a", 3), 0);
    assert_int_equal(vv_set(&vv, "m", 4), 0);
    assert_int_equal(vv.len, 3);
    assert_string_equal(vv.entries[0].actor, "a");
    assert_string_equal(vv.entries[1].actor, "m");
    assert_string_equal(vv.entries[2].actor, "z");
    assert_int_equal(vv.entries[1].counter, 4);
    vv_free(&vv);
}

static void set_rejects_out_of_range_counter(void **state)
{
    vv_t vv;

    vv_init(&vv);
    assert_int_equal(vv_set(&vv, "a", 0), -EINVAL);
    assert_int_equal(vv_set(&vv, "a", VV_COUNTER_MAX + 1), -EINVAL);
    assert_int_equal(vv_set(&vv, NULL, 1), -EINVAL);
    assert_int_equal(vv.len, 0);
    vv_free(&vv);
}

static void bump_counts_from_one(void **state)
{
    uint64_t counter = 0;
    vv_t vv;

    vv_init(&vv);
    assert_int_equal(vv_bump(&vv, "a", &counter), 0);
    assert_int_equal(counter, 1);
    assert_int_equal(vv_bump(&vv, "a", &counter), 0);
    assert_int_equal(counter, 2);
    assert_int_equal(vv_get(&vv, "a"), 2);
    vv_free(&vv);
}

static void bump_past_max_is_erange(void **state)
{
    uint64_t counter = 7;
    vv_t vv;

    vv_init(&vv);
    assert_int_equal(vv_set(&vv, "a", VV_COUNTER_MAX), 0);
    assert_int_equal(vv_bump(&vv, "a", &counter), -ERANGE);
    assert_int_equal(counter, 7);
    assert_int_equal(vv_get(&vv, "a"), VV_COUNTER_MAX);
    vv_free(&vv);
}

static void covers_dot_compares_counter(void **state)
{
    vv_t base;

    vv_parse(&base, "{\"a\": 2}");
    assert_true(vv_covers_dot(&base, "a", 1));
    assert_true(vv_covers_dot(&base, "a", 2));
    assert_false(vv_covers_dot(&base, "a", 3));
    assert_false(vv_covers_dot(&base, "b", 1));
    vv_free(&base);
}

static void covers_needs_every_entry(void **state)
{
    vv_t base, same, lower, higher, other, empty;

    vv_parse(&base, "{\"a\": 2, \"c\": 5}");
    vv_parse(&same, "{\"c\": 5, \"a\": 2}");
    vv_parse(&lower, "{\"a\": 1}");
    vv_parse(&higher, "{\"a\": 2, \"c\": 6}");
    vv_parse(&other, "{\"b\": 1}");
    vv_init(&empty);

    assert_true(vv_covers(&base, &same));
    assert_true(vv_covers(&base, &lower));
    assert_true(vv_covers(&base, &empty));
    assert_false(vv_covers(&base, &higher));
    assert_false(vv_covers(&base, &other));
    assert_false(vv_covers(&empty, &lower));
    assert_true(vv_covers(&empty, &empty));

    vv_free(&base);
    vv_free(&same);
    vv_free(&lower);
    vv_free(&higher);
    vv_free(&other);
}

static void merge_takes_max_of_each_actor(void **state)
{
    vv_t dst, src, want;

    vv_parse(&dst, "{\"a\": 3, \"c\": 1}");
    vv_parse(&src, "{\"a\": 1, \"b\": 4, \"c\": 2, \"d\": 9}");
    vv_parse(&want, "{\"a\": 3, \"b\": 4, \"c\": 2, \"d\": 9}");
    assert_int_equal(vv_merge(&dst, &src), 0);
    assert_true(vv_equal(&dst, &want));
    assert_true(vv_covers(&dst, &src));
    vv_free(&dst);
    vv_free(&src);
    vv_free(&want);
}

static void merge_into_empty_copies(void **state)
{
    vv_t dst, src;

    vv_init(&dst);
    vv_parse(&src, "{\"x\": 2, \"y\": 1}");
    assert_int_equal(vv_merge(&dst, &src), 0);
    assert_true(vv_equal(&dst, &src));
    vv_free(&dst);
    vv_free(&src);
}

static void copy_is_independent(void **state)
{
    vv_t src, dst;

    vv_parse(&src, "{\"a\": 1}");
    vv_parse(&dst, "{\"z\": 7}");
    assert_int_equal(vv_copy(&dst, &src), 0);
    assert_true(vv_equal(&dst, &src));
    assert_int_equal(vv_set(&src, "a", 5), 0);
    assert_int_equal(vv_get(&dst, "a"), 1);
    assert_int_equal(vv_get(&dst, "z"), 0);
    vv_free(&src);
    vv_free(&dst);
}

static void equal_compares_entries(void **state)
{
    vv_t a, b, c;

    vv_parse(&a, "{\"a\": 1, \"b\": 2}");
    vv_parse(&b, "{\"b\": 2, \"a\": 1}");
    vv_parse(&c, "{\"a\": 1, \"b\": 3}");
    assert_true(vv_equal(&a, &b));
    assert_false(vv_equal(&a, &c));
    vv_free(&a);
    vv_free(&b);
    vv_free(&c);
}

static void to_json_round_trips(void **state)
{
    json_t *j,
        *want = json_loads("{\"a\": 1, \"tab-b\": 9007199254740991}", 0, NULL);
    char err[PROTO_ERR_MAX];
    vv_t vv;

    vv_init(&vv);
    assert_int_equal(vv_from_json(&vv, want, err, sizeof(err)), 0);
    j = vv_to_json(&vv);
    assert_non_null(j);
    assert_true(json_equal(j, want));
    json_decref(j);
    json_decref(want);
    vv_free(&vv);
}

/* Expects vv_from_json to reject text with a message holding expected. */
static void expect_from_json_error(const char *text, const char *expected)
{
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    char err[PROTO_ERR_MAX] = "";
    vv_t vv;

    assert_non_null(j);
    vv_parse(&vv, "{\"keep\": 1}");
    assert_int_equal(vv_from_json(&vv, j, err, sizeof(err)), -EINVAL);
    if (strstr(err, expected) == NULL)
        fail_msg("input %s: message \"%s\" lacks \"%s\"", text, err, expected);
    assert_int_equal(vv_get(&vv, "keep"), 1);
    assert_int_equal(vv.len, 1);
    json_decref(j);
    vv_free(&vv);
}

static void from_json_rejects_bad_counters(void **state)
{
    expect_from_json_error("{\"a\": -1}",
                           "counter for actor \"a\" must be an integer "
                           "from 1 to 9007199254740991, got -1");
    expect_from_json_error("{\"a\": 0}", "got 0");
    expect_from_json_error("{\"a\": 9007199254740992}", "got 9007199254740992");
    expect_from_json_error("{\"a\": 1.5}", "got 1.5");
    expect_from_json_error("{\"a\": 2.0}", "got 2.0");
    expect_from_json_error("{\"a\": \"3\"}", "got \"3\"");
    expect_from_json_error("{\"a\": null}", "got null");
    expect_from_json_error("{\"a\": [1]}", "got an array");
}

static void from_json_rejects_bad_actors(void **state)
{
    char text[200];

    expect_from_json_error("{\"\": 1}", "actor \"\" must be 1 to 64 bytes");
    expect_from_json_error("{\"tab a\": 1}", "actor \"tab a\"");
    expect_from_json_error("{\"t\\u00e9\": 1}", "printable ASCII");
    snprintf(text, sizeof(text), "{\"%065d\": 1}", 0);
    expect_from_json_error(text, "must be 1 to 64 bytes");
}

static void from_json_rejects_non_objects(void **state)
{
    expect_from_json_error("[]", "must be an object of actor counters, got "
                                 "an array");
    expect_from_json_error("3", "got 3");
    expect_from_json_error("null", "got null");
}

static void from_json_accepts_64_byte_actor(void **state)
{
    char text[200];
    vv_t vv;

    snprintf(text, sizeof(text), "{\"%064d\": 1}", 0);
    vv_parse(&vv, text);
    assert_int_equal(vv.len, 1);
    vv_free(&vv);
}

static void from_json_reads_many_actors_sorted(void **state)
{
    json_t *j = json_object();
    char actor[16], err[PROTO_ERR_MAX];
    size_t i;
    vv_t vv;

    for (i = 0; i < 2000; i++) {
        snprintf(actor, sizeof(actor), "actor-%zu", (i * 7919) % 2000);
        json_object_set_new(j, actor, json_integer((json_int_t)i + 1));
    }
    vv_init(&vv);
    assert_int_equal(vv_from_json(&vv, j, err, sizeof(err)), 0);
    assert_int_equal(vv.len, 2000);
    for (i = 1; i < vv.len; i++)
        assert_true(strcmp(vv.entries[i - 1].actor, vv.entries[i].actor) < 0);
    json_decref(j);
    vv_free(&vv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_absent_actor_is_zero),
        cmocka_unit_test(set_keeps_entries_sorted),
        cmocka_unit_test(set_rejects_out_of_range_counter),
        cmocka_unit_test(bump_counts_from_one),
        cmocka_unit_test(bump_past_max_is_erange),
        cmocka_unit_test(covers_dot_compares_counter),
        cmocka_unit_test(covers_needs_every_entry),
        cmocka_unit_test(merge_takes_max_of_each_actor),
        cmocka_unit_test(merge_into_empty_copies),
        cmocka_unit_test(copy_is_independent),
        cmocka_unit_test(equal_compares_entries),
        cmocka_unit_test(to_json_round_trips),
        cmocka_unit_test(from_json_rejects_bad_counters),
        cmocka_unit_test(from_json_rejects_bad_actors),
        cmocka_unit_test(from_json_rejects_non_objects),
        cmocka_unit_test(from_json_accepts_64_byte_actor),
        cmocka_unit_test(from_json_reads_many_actors_sorted),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
