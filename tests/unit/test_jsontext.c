/*
 * Unit tests of the JSON text encoder in protocol/jsontext.c: reals read
 * back as the same double in few digits, and everything else is written
 * byte for byte as jansson's JSON_COMPACT writes it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsontext.h"

/* Returns the text of j from jsontext_dumps(), to be freed. */
static char *dump(const json_t *j)
{
    char *text = jsontext_dumps(j);

    assert_non_null(text);
    return text;
}

static void real_is(double d, const char *expected)
{
    char buf[JSONTEXT_REAL_MAX];
    size_t len = jsontext_real(d, buf);

    assert_string_equal(buf, expected);
    assert_int_equal(len, strlen(expected));
}

static void reals_take_few_digits(void **state)
{
    (void)state;
    real_is(0.91, "0.91");
    real_is(239.54, "239.54");
    real_is(-12.5, "-12.5");
    real_is(3.0, "3.0");
    real_is(-0.0, "-0.0");
    real_is(0.0, "0.0");
    real_is(0.1 + 0.2, "0.30000000000000004");
    real_is(1e300, "1e+300");
    real_is(1e15, "1e+15");
    real_is(0.000001, "0.000001");
    real_is(1.5e-7, "0.00000015");
    real_is(1.5e-12, "1.5e-12");
    real_is(123456789012.25, "123456789012.25");
    real_is(9007199254740993.0, "9007199254740992.0");
    real_is(5e-324, "4.94065645841247e-324");
    real_is(1.7976931348623157e308, "1.7976931348623157e+308");
}

/* Returns a double from random bits that is finite. */
static double random_double(void)
{
    for (;;) {
        uint64_t bits = 0;
        double d;

        for (int i = 0; i < 4; i++)
            bits = (bits << 16) ^ (uint64_t)(rand() & 0xffff);
        memcpy(&d, &bits, sizeof(d));
        if (isfinite(d))
            return d;
    }
}

static void random_reals_read_back(void **state)
{
    char buf[JSONTEXT_REAL_MAX];

    (void)state;
    srand(7);
    for (int i = 0; i < 200000; i++) {
        double d = random_double();
        size_t len = jsontext_real(d, buf);

        assert_true(len < JSONTEXT_REAL_MAX);
        assert_true(strtod(buf, NULL) == d);
        assert_non_null(strpbrk(buf, ".e"));
    }
}

/* Decimals with up to 9 places come out as their own digits. */
static void short_decimals_keep_their_digits(void **state)
{
    char buf[JSONTEXT_REAL_MAX], expected[64];

    (void)state;
    srand(11);
    for (int i = 0; i < 200000; i++) {
        int places = rand() % 10;
        long long whole = rand() % 100000;
        long long frac = places ? rand() % (long long)pow(10, places) : 0;
        char *end;

        snprintf(expected, sizeof(expected), "%s%lld.%0*lld",
                 i % 2 ? "-" : "", whole, places ? places : 1, frac);
        /* The expected text drops trailing zeros but keeps one digit. */
        end = expected + strlen(expected) - 1;
        while (*end == '0' && end[-1] != '.')
            *end-- = '\0';
        if (strcmp(expected, "-0.0") == 0)
            continue;
        jsontext_real(strtod(expected, NULL), buf);
        assert_string_equal(buf, expected);
    }
}

static void non_reals_match_jansson(void **state)
{
    const char *texts[] = {
        "{\"type\":\"event\",\"seq\":42,\"ok\":true,\"no\":false,\"n\":null}",
        "[1,-2,9223372036854775807,-9223372036854775808,0,[],{},[[{}]]]",
        "{\"s\":\"quote \\\" backslash \\\\ slash / tab \\t nl \\n cr \\r\"}",
        "{\"c\":\"\\u0001\\u001f\\b\\f\\u007f\",\"u\":\"\\u00e9\\u2028\\ud83d\\ude00\"}",
        "{\"z\":1,\"a\":2,\"m\":{\"y\":[\"x\",\"\"],\"\":3}}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        json_t *j = json_loads(texts[i], 0, NULL);
        char *ours, *theirs;

        assert_non_null(j);
        ours = dump(j);
        theirs = json_dumps(j, JSON_COMPACT);
        assert_string_equal(ours, theirs);
        free(ours);
        free(theirs);
        json_decref(j);
    }
}

static void nul_in_string_is_escaped(void **state)
{
    json_t *j = json_stringn("a\0b", 3);
    char *ours = dump(j);

    (void)state;
    assert_string_equal(ours, "\"a\\u0000b\"");
    free(ours);
    json_decref(j);
}

static void reals_in_trees_read_back_as_reals(void **state)
{
    json_t *j = json_pack("{s:[f,f,f,f], s:f, s:i}", "points", 239.54, 0.91,
                          -0.0, 1e21, "score", 0.1 + 0.2, "n", 3);
    char *ours = dump(j);
    json_t *back = json_loads(ours, 0, NULL);

    (void)state;
    assert_string_equal(ours, "{\"points\":[239.54,0.91,-0.0,1e+21],"
                              "\"score\":0.30000000000000004,\"n\":3}");
    assert_non_null(back);
    assert_true(json_equal(j, back));
    assert_true(json_is_real(json_array_get(json_object_get(back, "points"), 2)));
    free(ours);
    json_decref(back);
    json_decref(j);
}

static void dumps_and_length_agree(void **state)
{
    json_t *j = json_pack("{s:f, s:s, s:[i,b,n]}", "x", 0.91, "name", "caf\u00e9",
                          "list", 7, 1);
    char *text = jsontext_dumps(j);
    size_t len = 0;

    (void)state;
    assert_string_equal(text, "{\"x\":0.91,\"name\":\"caf\u00e9\",\"list\":[7,true,null]}");
    assert_int_equal(jsontext_length(j, &len), 0);
    assert_int_equal(len, strlen(text));
    free(text);
    json_decref(j);
}

static int fail_second(const char *piece, size_t len, void *arg)
{
    (void)piece;
    (void)len;
    return ++*(int *)arg > 1 ? -1 : 0;
}

static void write_failure_stops_the_dump(void **state)
{
    json_t *j = json_array();
    int calls = 0;

    (void)state;
    for (int i = 0; i < 5000; i++)
        json_array_append_new(j, json_string("abcdefgh"));
    assert_int_equal(jsontext_dump(j, fail_second, &calls), -1);
    assert_int_equal(calls, 2);
    json_decref(j);
}

static void deep_nesting_fails(void **state)
{
    json_t *j = json_array();
    json_t *inner = j;

    (void)state;
    for (int i = 0; i < 3000; i++) {
        json_t *next = json_array();

        json_array_append_new(inner, next);
        inner = next;
    }
    assert_null(jsontext_dumps(j));
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reals_take_few_digits),
        cmocka_unit_test(random_reals_read_back),
        cmocka_unit_test(short_decimals_keep_their_digits),
        cmocka_unit_test(non_reals_match_jansson),
        cmocka_unit_test(nul_in_string_is_escaped),
        cmocka_unit_test(reals_in_trees_read_back_as_reals),
        cmocka_unit_test(dumps_and_length_agree),
        cmocka_unit_test(write_failure_stops_the_dump),
        cmocka_unit_test(deep_nesting_fails),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
