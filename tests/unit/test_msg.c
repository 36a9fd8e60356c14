/*
 * Unit tests of protocol/msg.c: decoding of client messages, with many bad
 * inputs, and the JSON shapes of server messages.
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

#include "msg.h"

static int decode(const char *text, const proto_limits_t *limits, msg_t *msg,
                  msg_error_t *err)
{
    return msg_decode_json(text, strlen(text), limits, msg, err);
}

static void assert_json(const json_t *j, const char *text)
{
    json_t *want = json_loads(text, 0, NULL);
    char *got;

    assert_non_null(want);
    if (!json_equal(j, want)) {
        got = json_dumps(j, JSON_SORT_KEYS);
        fail_msg("got %s, want %s", got ? got : "NULL", text);
    }
    json_decref(want);
}

static void decodes_join(void **state)
{
    msg_error_t err;
    msg_t msg;

    assert_int_equal(decode("{\"type\": \"join\", \"room\": \"project:42\"}",
                            NULL, &msg, &err),
                     0);
    assert_int_equal(msg.type, MSG_JOIN);
    assert_string_equal(msg.room, "project:42");
    assert_int_equal(msg.nops, 0);
    assert_false(msg.has_opseq);
    msg_clear(&msg);
}

static void decodes_join_since(void **state)
{
    msg_error_t err;
    msg_t msg;

    assert_int_equal(decode("{\"type\": \"join\", \"room\": \"r\", "
                            "\"since\": 57}",
                            NULL, &msg, &err),
                     0);
    assert_true(msg.has_since);
    assert_int_equal(msg.since, 57);
    msg_clear(&msg);

    assert_int_equal(decode("{\"type\": \"join\", \"room\": \"r\", "
                            "\"since\": 0}",
                            NULL, &msg, &err),
                     0);
    assert_true(msg.has_since);
    assert_int_equal(msg.since, 0);
    msg_clear(&msg);
}

static void rejects_bad_since(void **state)
{
    static const char *bad[] = {
        "{\"type\": \"join\", \"room\": \"r\", \"since\": -1}",
        "{\"type\": \"join\", \"room\": \"r\", \"since\": 1.5}",
        "{\"type\": \"join\", \"room\": \"r\", \"since\": \"3\"}",
        ("{\"type\": \"join\", \"room\": \"r\", "
         "\"since\": 9007199254740992}"),
    };
    msg_error_t err;
    msg_t msg;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(decode(bad[i], NULL, &msg, &err), -EINVAL);
        assert_int_equal(err.code, MSG_ERR_INVALID_MESSAGE);
        assert_non_null(strstr(err.message, "since"));
    }
}

static void decodes_leave(void **state)
{
    msg_error_t err;
    msg_t msg;

    assert_int_equal(decode("{\"type\": \"leave\", \"room\": \"a.b_c-d:9\"}",
                            NULL, &msg, &err),
                     0);
    assert_int_equal(msg.type, MSG_LEAVE);
    assert_string_equal(msg.room, "a.b_c-d:9");
    msg_clear(&msg);
}

static const char example_ops[] =
    "{\"type\": \"ops\", \"room\": \"project:42\", \"actor\": \"tab-a\", "
    "\"opseq\": 12, \"ops\": ["
    "{\"op\": \"create\", \"id\": \"o1\", \"kind\": \"bbox\", "
    "\"fields\": {\"item\": \"img-1\", \"label\": \"cat\", "
    "\"geometry\": [10, 20, 30, 40]}},"
    "{\"op\": \"update\", \"id\": \"o2\", \"base\": {\"tab-a\": 1, "
    "\"tab-b\": 3}, \"set\": {\"label\": \"dog\"}, \"unset\": [\"occluded\"]},"
    "{\"op\": \"delete\", \"id\": \"o3\", \"base\": {\"tab-b\": 1}}]}";

static void decodes_ops_example(void **state)
{
    msg_error_t err;
    msg_t msg;

    assert_int_equal(decode(example_ops, NULL, &msg, &err), 0);
    assert_int_equal(msg.type, MSG_OPS);
    assert_string_equal(msg.room, "project:42");
    assert_string_equal(msg.actor, "tab-a");
    assert_int_equal(msg.opseq, 12);
    assert_true(msg.has_opseq);
    assert_int_equal(msg.nops, 3);

    assert_int_equal(msg.ops[0].type, OP_CREATE);
    assert_string_equal(msg.ops[0].id, "o1");
    assert_string_equal(msg.ops[0].kind, "bbox");
    assert_json(msg.ops[0].fields, "{\"item\": \"img-1\", \"label\": \"cat\", "
                                   "\"geometry\": [10, 20, 30, 40]}");
    assert_int_equal(msg.ops[0].base.len, 0);

    assert_int_equal(msg.ops[1].type, OP_UPDATE);
    assert_json(msg.ops[1].set, "{\"label\": \"dog\"}");
    assert_json(msg.ops[1].unset, "[\"occluded\"]");
    assert_int_equal(vv_get(&msg.ops[1].base, "tab-b"), 3);
    assert_null(msg.ops[1].kind);

    assert_int_equal(msg.ops[2].type, OP_DELETE);
    assert_int_equal(vv_get(&msg.ops[2].base, "tab-b"), 1);
    assert_null(msg.ops[2].set);
    msg_clear(&msg);
}

static void accepts_128_byte_room(void **state)
{
    char text[256], room[129];
    msg_error_t err;
    msg_t msg;

    memset(room, 'r', 128);
    room[128] = '\0';
    snprintf(text, sizeof(text), "{\"type\": \"join\", \"room\": \"%s\"}",
             room);
    assert_int_equal(decode(text, NULL, &msg, &err), 0);
    assert_string_equal(msg.room, room);
    msg_clear(&msg);
}

static void ignores_unknown_members(void **state)
{
    msg_error_t err;
    msg_t msg;

    assert_int_equal(decode("{\"type\": \"join\", \"room\": \"r\", "
                            "\"since\": 4, \"x\": [1]}",
                            NULL, &msg, &err),
                     0);
    msg_clear(&msg);
}

static void brackets_in_strings_do_not_count_as_depth(void **state)
{
    char text[512];
    msg_error_t err;
    msg_t msg;

    snprintf(text, sizeof(text),
             "{\"type\": \"ops\", \"room\": \"r\", \"actor\": \"a\", "
             "\"opseq\": 1, \"ops\": [{\"op\": \"create\", \"id\": \"x\", "
             "\"kind\": \"tag\", \"fields\": {\"note\": \"%s\\\"[[\"}}]}",
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[");
    assert_int_equal(decode(text, NULL, &msg, &err), 0);
    msg_clear(&msg);
}

/* One bad input and what decoding must report. */
typedef struct {
    const char *text;
    int rc;
    msg_err_t code;
    const char *message; /* a substring of the expected message */
} bad_case_t;

#define OPS_HEAD                                              \
    "{\"type\": \"ops\", \"room\": \"r\", \"actor\": \"a\", " \
    "\"opseq\": 1, \"ops\": "
#define IN_OPS(op) OPS_HEAD "[" op "]}"
#define INVALID -EINVAL, MSG_ERR_INVALID_MESSAGE

static const bad_case_t bad_cases[] = {
    /* Not a JSON object. */
    {"", -EINVAL, MSG_ERR_INVALID_JSON, "invalid JSON"},
    {"{\"type\": ", -EINVAL, MSG_ERR_INVALID_JSON, "invalid JSON"},
    {"[1, 2]", -EINVAL, MSG_ERR_INVALID_JSON,
     "a message must be a JSON object, got an array"},
    {"\"join\"", -EINVAL, MSG_ERR_INVALID_JSON, "must be a JSON object"},
    {"{\"type\": \"join\", \"room\": \"r\"} x", -EINVAL, MSG_ERR_INVALID_JSON,
     "invalid JSON"},
    {"{\"type\": \"join\", \"type\": \"leave\", \"room\": \"r\"}", -EINVAL,
     MSG_ERR_INVALID_JSON, "duplicate"},
    {"{\"type\": \"join\", \"room\": \"\xff\"}", -EINVAL, MSG_ERR_INVALID_JSON,
     "invalid JSON"},
    {"{\"type\": \"join\", \"room\": \"\xc3\x28\"}", -EINVAL,
     MSG_ERR_INVALID_JSON, "invalid JSON"},
    {"{\"type\": \"join\", \"room\": \"r\\u0000\"}", -EINVAL,
     MSG_ERR_INVALID_JSON, "invalid JSON"},
    {OPS_HEAD "[], \"n\": 99999999999999999999}", -EINVAL, MSG_ERR_INVALID_JSON,
     "invalid JSON"},
    {OPS_HEAD "[], \"n\": 1e400}", -EINVAL, MSG_ERR_INVALID_JSON,
     "invalid JSON"},

    /* type */
    {"{\"room\": \"r\"}", INVALID, "type is missing"},
    {"{\"type\": 3}", INVALID, "type must be a string, got 3"},
    {"{\"type\": \"snapshot\"}", -EINVAL, MSG_ERR_UNKNOWN_TYPE,
     "got \"snapshot\""},
    {"{\"type\": \"JOIN\", \"room\": \"r\"}", -EINVAL, MSG_ERR_UNKNOWN_TYPE,
     "type must be"},

    /* room */
    {"{\"type\": \"join\"}", INVALID, "room is missing"},
    {"{\"type\": \"join\", \"room\": 42}", INVALID, "room must be"},
    {"{\"type\": \"join\", \"room\": \"\"}", INVALID, "got \"\""},
    {"{\"type\": \"leave\", \"room\": \"a b\"}", INVALID, "got \"a b\""},
    {"{\"type\": \"join\", \"room\": \"a/b\"}", INVALID, "room must be"},
    {"{\"type\": \"join\", \"room\": \"caf\\u00e9\"}", INVALID,
     "got \"caf\xc3\xa9\""},
    {"{\"type\": \"join\", \"room\": \"" /* 129 bytes */
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "\"}",
     INVALID, "room must be 1 to 128 characters"},

    /* ops envelope */
    {"{\"type\": \"ops\", \"room\": \"r\", \"opseq\": 1, \"ops\": []}", INVALID,
     "actor is missing"},
    {"{\"type\": \"ops\", \"room\": \"r\", \"actor\": \"a b\", "
     "\"opseq\": 1, \"ops\": []}",
     INVALID, "actor must be 1 to 64 bytes"},
    {"{\"type\": \"ops\", \"room\": \"r\", \"actor\": \"a\", \"ops\": []}",
     INVALID, "opseq is missing"},
    {"{\"type\": \"ops\", \"room\": \"r\", \"actor\": \"a\", \"opseq\": 0, "
     "\"ops\": []}",
     INVALID,
     "opseq must be an integer from 1 to "
     "9007199254740991, got 0"},
    {"{\"type\": \"ops\", \"room\": \"r\", \"actor\": \"a\", \"opseq\": -1, "
     "\"ops\": []}",
     INVALID, "got -1"},
    {"{\"type\": \"ops\", \"room\": \"r\", \"actor\": \"a\", "
     "\"opseq\": 9007199254740992, \"ops\": []}",
     INVALID, "got 9007199254740992"},
    {"{\"type\": \"ops\", \"room\": \"r\", \"actor\": \"a\", "
     "\"opseq\": 1.5, \"ops\": []}",
     INVALID, "got 1.5"},
    {"{\"type\": \"ops\", \"room\": \"r\", \"actor\": \"a\", "
     "\"opseq\": \"1\", \"ops\": []}",
     INVALID, "got \"1\""},
    {"{\"type\": \"ops\", \"room\": \"r\", \"actor\": \"a\", \"opseq\": 1}",
     INVALID, "ops is missing"},
    {OPS_HEAD "{}}", INVALID, "ops must be an array of ops, got an object"},
    {OPS_HEAD "[]}", INVALID, "ops must contain at least one op"},
    {IN_OPS("3"), INVALID, "ops[0] must be an object, got 3"},

    /* op and id */
    {IN_OPS("{\"id\": \"x\"}"), INVALID, "ops[0].op is missing"},
    {IN_OPS("{\"op\": \"move\", \"id\": \"x\"}"), INVALID,
     "ops[0].op must be \"create\", \"update\", \"delete\", \"restore\" or "
     "\"settings\", got \"move\""},
    {IN_OPS("{\"op\": \"delete\", \"base\": {}}"), INVALID,
     "ops[0].id is missing"},
    {IN_OPS("{\"op\": \"delete\", \"id\": 7, \"base\": {}}"), INVALID,
     "ops[0].id must be a string, got 7"},
    {IN_OPS("{\"op\": \"delete\", \"id\": \"\", \"base\": {}}"), INVALID,
     "ops[0].id must be 1 to 64 bytes of printable ASCII"},
    {IN_OPS("{\"op\": \"delete\", \"id\": \"12345678901234567890123456789"
            "012345678901234567890123456789012345\", \"base\": {}}"),
     INVALID, "ops[0].id must be 1 to 64 bytes"},

    /* create */
    {IN_OPS("{\"op\": \"create\", \"id\": \"x\"}"), INVALID,
     "ops[0].kind is missing"},
    {IN_OPS("{\"op\": \"create\", \"id\": \"x\", \"kind\": \"blob\"}"), INVALID,
     "ops[0].kind must be an object kind"},
    {IN_OPS("{\"op\": \"create\", \"id\": \"x\", \"kind\": 1}"), INVALID,
     "got 1"},
    {IN_OPS("{\"op\": \"create\", \"id\": \"x\", \"kind\": \"tag\", "
            "\"fields\": [1]}"),
     INVALID, "ops[0].fields must be an object, got an array"},
    {IN_OPS("{\"op\": \"create\", \"id\": \"x\", \"kind\": \"tag\", "
            "\"fields\": null}"),
     INVALID, "got null"},
    {IN_OPS("{\"op\": \"create\", \"id\": \"x\", \"kind\": \"tag\", "
            "\"fields\": {\"\": 1}}"),
     INVALID, "ops[0].fields: field name \"\" must be 1 to 128 bytes"},
    {IN_OPS("{\"op\": \"create\", \"id\": \"x\", \"kind\": \"tag\", "
            "\"base\": {}}"),
     INVALID,
     "ops[0].base is not allowed in a "
     "create"},
    {IN_OPS("{\"op\": \"create\", \"id\": \"x\", \"kind\": \"tag\", "
            "\"set\": {}}"),
     INVALID, "ops[0].set is not allowed"},

    /* update */
    {IN_OPS("{\"op\": \"update\", \"id\": \"x\", \"set\": {\"a\": 1}}"),
     INVALID, "ops[0].base is missing"},
    {IN_OPS("{\"op\": \"update\", \"id\": \"x\", \"base\": [], "
            "\"set\": {\"a\": 1}}"),
     INVALID, "ops[0].base: must be an object of actor counters, got an array"},
    {IN_OPS("{\"op\": \"update\", \"id\": \"x\", \"base\": {\"a\": -1}, "
            "\"set\": {\"a\": 1}}"),
     INVALID,
     "ops[0].base: counter for actor \"a\" must be an integer from 1 to "
     "9007199254740991, got -1"},
    {IN_OPS("{\"op\": \"update\", \"id\": \"x\", \"base\": {}}"), INVALID,
     "ops[0].set or unset must name at least one field"},
    {IN_OPS("{\"op\": \"update\", \"id\": \"x\", \"base\": {}, \"set\": {}, "
            "\"unset\": []}"),
     INVALID, "at least one field"},
    {IN_OPS("{\"op\": \"update\", \"id\": \"x\", \"base\": {}, "
            "\"set\": 5}"),
     INVALID, "ops[0].set must be an object, got 5"},
    {IN_OPS("{\"op\": \"update\", \"id\": \"x\", \"base\": {}, "
            "\"unset\": \"a\"}"),
     INVALID, "ops[0].unset must be an array of field names, got \"a\""},
    {IN_OPS("{\"op\": \"update\", \"id\": \"x\", \"base\": {}, "
            "\"unset\": [\"a\", 2]}"),
     INVALID, "ops[0].unset[1] must be a string, got 2"},
    {IN_OPS("{\"op\": \"update\", \"id\": \"x\", \"base\": {}, "
            "\"unset\": [\"a\", \"a\"]}"),
     INVALID, "ops[0].unset lists \"a\" twice"},
    {IN_OPS("{\"op\": \"update\", \"id\": \"x\", \"base\": {}, "
            "\"set\": {\"a\": 1}, \"unset\": [\"a\"]}"),
     INVALID, "ops[0].unset names \"a\", which set writes too"},
    {IN_OPS("{\"op\": \"update\", \"id\": \"x\", \"base\": {}, "
            "\"kind\": \"tag\", \"set\": {\"a\": 1}}"),
     INVALID, "ops[0].kind is not allowed in an update"},

    /* delete */
    {IN_OPS("{\"op\": \"delete\", \"id\": \"x\"}"), INVALID,
     "ops[0].base is missing"},
    {IN_OPS("{\"op\": \"delete\", \"id\": \"x\", \"base\": {}, "
            "\"set\": {\"a\": 1}}"),
     INVALID, "ops[0].set is not allowed in a delete"},

    /* restore and settings */
    {IN_OPS("{\"op\": \"restore\", \"id\": \"x\"}"), INVALID,
     "ops[0].base is missing"},
    {IN_OPS("{\"op\": \"restore\", \"id\": \"x\", \"base\": {}, "
            "\"set\": {\"a\": 1}}"),
     INVALID, "ops[0].set is not allowed in a restore"},
    {IN_OPS("{\"op\": \"restore\", \"id\": \"x\", \"base\": {}, "
            "\"kind\": \"tag\"}"),
     INVALID, "ops[0].kind is not allowed in a restore"},
    {IN_OPS("{\"op\": \"restore\", \"id\": \"x\", \"base\": {}, "
            "\"fields\": 3}"),
     INVALID, "ops[0].fields must be an object, got 3"},
    {IN_OPS("{\"op\": \"settings\", \"base\": {}}"), INVALID,
     "ops[0].set is missing"},
    {IN_OPS("{\"op\": \"settings\", \"base\": {}, \"set\": {}}"), INVALID,
     "ops[0].set must name policy or schema"},
    {IN_OPS("{\"op\": \"settings\", \"id\": \"@room\", \"base\": {}, "
            "\"set\": {\"policy\": \"lww\"}}"),
     INVALID, "ops[0].id is not allowed in a settings op"},
    {IN_OPS("{\"op\": \"settings\", \"set\": {\"policy\": \"lww\"}}"),
     INVALID, "ops[0].base is missing"},
    {OPS_HEAD "[{\"op\": \"delete\", \"id\": \"x\", \"base\": {}}], "
              "\"atomic\": 1}",
     INVALID, "atomic must be a boolean, got 1"},

    /* An error in a later op names its index. */
    {OPS_HEAD "[{\"op\": \"delete\", \"id\": \"x\", \"base\": {}}, "
              "{\"op\": \"delete\", \"id\": \"y\", \"base\": {\"b\": 0}}]}",
     INVALID, "ops[1].base: counter for actor \"b\""},
};

static void rejects_bad_inputs(void **state)
{
    size_t i, n = sizeof(bad_cases) / sizeof(bad_cases[0]);
    msg_error_t err;
    msg_t msg;
    int rc;

    for (i = 0; i < n; i++) {
        const bad_case_t *c = &bad_cases[i];

        rc = decode(c->text, NULL, &msg, &err);
        if (rc != c->rc || err.code != c->code)
            fail_msg("case %zu %s: rc %d code %s (%s), want %d %s", i, c->text,
                     rc, msg_code_name(err.code), err.message, c->rc,
                     msg_code_name(c->code));
        if (strstr(err.message, c->message) == NULL)
            fail_msg("case %zu %s: message \"%s\" lacks \"%s\"", i, c->text,
                     err.message, c->message);
        assert_int_equal(msg.nops, 0);
        assert_null(msg.ops);
    }
}

static void error_names_room_and_opseq(void **state)
{
    msg_error_t err;
    msg_t msg;

    assert_int_equal(
        decode(IN_OPS("{\"op\": \"delete\", \"id\": \"x\"}"), NULL, &msg, &err),
        -EINVAL);
    assert_string_equal(err.room, "r");
    assert_int_equal(err.opseq, 1);

    assert_int_equal(decode("{\"type\": \"ops\", \"room\": \"bad room\", "
                            "\"opseq\": 0}",
                            NULL, &msg, &err),
                     -EINVAL);
    assert_string_equal(err.room, "");
    assert_int_equal(err.opseq, 0);

    assert_int_equal(decode("[]", NULL, &msg, &err), -EINVAL);
    assert_string_equal(err.room, "");
}

static void too_many_ops_is_too_large(void **state)
{
    proto_limits_t limits;
    msg_error_t err;
    msg_t msg;
    const char *text =
        OPS_HEAD "["
                 "{\"op\": \"delete\", \"id\": \"a\", \"base\": {}},"
                 "{\"op\": \"delete\", \"id\": \"b\", \"base\": {}},"
                 "{\"op\": \"delete\", \"id\": \"c\", \"base\": {}}]}";

    proto_limits_default(&limits);
    limits.max_ops = 3;
    assert_int_equal(decode(text, &limits, &msg, &err), 0);
    assert_int_equal(msg.nops, 3);
    msg_clear(&msg);

    limits.max_ops = 2;
    assert_int_equal(decode(text, &limits, &msg, &err), -E2BIG);
    assert_int_equal(err.code, MSG_ERR_TOO_LARGE);
    assert_string_equal(err.message,
                        "the batch contains 3 ops, over the limit of 2");
    assert_int_equal(err.opseq, 1);
}

static void default_limit_of_1000_ops(void **state)
{
    size_t cap = 64 * 1001 + 256, len, i;
    char *text = malloc(cap);
    msg_error_t err;
    msg_t msg;

    assert_non_null(text);
    for (int n = 1000; n <= 1001; n++) {
        len = (size_t)snprintf(text, cap, "%s", OPS_HEAD "[");
        for (i = 0; i < (size_t)n; i++)
            len += (size_t)snprintf(text + len, cap - len,
                                    "%s{\"op\": \"delete\", \"id\": \"o%zu\", "
                                    "\"base\": {}}",
                                    i ? "," : "", i);
        snprintf(text + len, cap - len, "]}");
        if (n == 1000) {
            assert_int_equal(decode(text, NULL, &msg, &err), 0);
            assert_int_equal(msg.nops, 1000);
            msg_clear(&msg);
        } else {
            assert_int_equal(decode(text, NULL, &msg, &err), -E2BIG);
            assert_int_equal(err.code, MSG_ERR_TOO_LARGE);
        }
    }
    free(text);
}

static void too_many_fields_is_too_large(void **state)
{
    proto_limits_t limits;
    msg_error_t err;
    msg_t msg;

    proto_limits_default(&limits);
    limits.max_fields = 2;
    assert_int_equal(decode(IN_OPS("{\"op\": \"create\", \"id\": \"x\", "
                                   "\"kind\": \"tag\", \"fields\": "
                                   "{\"a\": 1, \"b\": 2, \"c\": 3}}"),
                            &limits, &msg, &err),
                     -E2BIG);
    assert_int_equal(err.code, MSG_ERR_TOO_LARGE);
    assert_string_equal(err.message, "ops[0].fields write 3 fields, over the "
                                     "limit of 2");

    assert_int_equal(decode(IN_OPS("{\"op\": \"update\", \"id\": \"x\", "
                                   "\"base\": {}, \"set\": {\"a\": 1}, "
                                   "\"unset\": [\"b\", \"c\"]}"),
                            &limits, &msg, &err),
                     -E2BIG);
    assert_int_equal(err.code, MSG_ERR_TOO_LARGE);
}

/* Returns a join message nested depth levels deep: the object and, in its
 * member "x", depth - 1 arrays. */
static char *nested_message(size_t depth)
{
    size_t inner = depth - 1, i, len = 0;
    char *text = malloc(2 * inner + 64);

    len += (size_t)sprintf(text, "{\"type\": \"join\", \"room\": \"r\", "
                                 "\"x\": ");
    for (i = 0; i < inner; i++)
        text[len++] = '[';
    for (i = 0; i < inner; i++)
        text[len++] = ']';
    strcpy(text + len, "}");
    return text;
}

static void nesting_over_limit_is_too_large(void **state)
{
    msg_error_t err;
    msg_t msg;
    char *ok = nested_message(31);
    char *deep = nested_message(32);
    char *bomb = nested_message(100000);

    assert_int_equal(decode(ok, NULL, &msg, &err), 0);
    msg_clear(&msg);
    assert_int_equal(decode(deep, NULL, &msg, &err), -E2BIG);
    assert_int_equal(err.code, MSG_ERR_TOO_LARGE);
    assert_non_null(strstr(err.message, "31 levels"));
    assert_int_equal(decode(bomb, NULL, &msg, &err), -E2BIG);
    assert_int_equal(err.code, MSG_ERR_TOO_LARGE);
    free(ok);
    free(deep);
    free(bomb);
}

static void message_over_size_is_too_large(void **state)
{
    const char *text = "{\"type\": \"join\", \"room\": \"r\"}";
    proto_limits_t limits;
    msg_error_t err;
    msg_t msg;

    proto_limits_default(&limits);
    limits.max_message = strlen(text);
    assert_int_equal(decode(text, &limits, &msg, &err), 0);
    msg_clear(&msg);

    limits.max_message = strlen(text) - 1;
    assert_int_equal(decode(text, &limits, &msg, &err), -E2BIG);
    assert_int_equal(err.code, MSG_ERR_TOO_LARGE);
    assert_non_null(strstr(err.message, "over the limit of"));
}

static void decode_needs_no_nul_terminator(void **state)
{
    const char text[] = "{\"type\": \"join\", \"room\": \"r\"}garbage";
    msg_error_t err;
    msg_t msg;

    assert_int_equal(msg_decode_json(text, strlen(text) - 7, NULL, &msg, &err),
                     0);
    assert_string_equal(msg.room, "r");
    msg_clear(&msg);
}

static void long_unicode_value_gives_valid_error_json(void **state)
{
    char text[1024], *dumped;
    size_t len;
    msg_error_t err;
    json_t *j;
    msg_t msg;
    int i;

    /* A 300-byte room of two-byte characters: the message is cut, and must
     * stay valid UTF-8. */
    len = (size_t)snprintf(text, sizeof(text),
                           "{\"type\": \"join\", \"room\": \"");
    for (i = 0; i < 150; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "\xc3\xa9");
    snprintf(text + len, sizeof(text) - len, "\"}");
    assert_int_equal(decode(text, NULL, &msg, &err), -EINVAL);

    j = msg_error_json(&err);
    assert_non_null(j);
    dumped = json_dumps(j, 0);
    assert_non_null(dumped);
    free(dumped);
    json_decref(j);
}

static void error_json_has_protocol_shape(void **state)
{
    msg_error_t err = {.code = MSG_ERR_NOT_JOINED, .opseq = 12};
    json_t *j;

    strcpy(err.message, "join room project:42 before sending ops to it");
    strcpy(err.room, "project:42");
    j = msg_error_json(&err);
    assert_json(j, "{\"type\": \"error\", \"code\": \"not_joined\", "
                   "\"message\": \"join room project:42 before sending ops "
                   "to it\", \"room\": \"project:42\", \"opseq\": 12}");
    json_decref(j);

    err.room[0] = '\0';
    err.opseq = 0;
    err.code = MSG_ERR_INVALID_JSON;
    strcpy(err.message, "bad");
    j = msg_error_json(&err);
    assert_json(j, "{\"type\": \"error\", \"code\": \"invalid_json\", "
                   "\"message\": \"bad\"}");
    json_decref(j);
}

static void code_names_match_protocol(void **state)
{
    assert_string_equal(msg_code_name(MSG_ERR_INVALID_JSON), "invalid_json");
    assert_string_equal(msg_code_name(MSG_ERR_INVALID_MESSAGE),
                        "invalid_message");
    assert_string_equal(msg_code_name(MSG_ERR_UNKNOWN_TYPE), "unknown_type");
    assert_string_equal(msg_code_name(MSG_ERR_NOT_JOINED), "not_joined");
    assert_string_equal(msg_code_name(MSG_ERR_TOO_LARGE), "too_large");
    assert_string_equal(msg_code_name(MSG_ERR_UNAVAILABLE), "unavailable");
    assert_string_equal(msg_code_name(MSG_ERR_INTERNAL), "internal");
    assert_string_equal(msg_code_name(MSG_ERR_STALE_OPSEQ), "stale_opseq");
}

static void ack_json_has_protocol_shape(void **state)
{
    const char *ids[3] = {"o1", "o2", "o3"};
    op_result_t res[3];
    json_t *j;
    int i;

    for (i = 0; i < 3; i++)
        op_result_init(&res[i]);
    vv_set(&res[0].vv, "tab-a", 1);

    res[1].status = RES_CONFLICT;
    res[1].reason = "concurrent";
    vv_set(&res[1].vv, "tab-a", 1);
    vv_set(&res[1].vv, "tab-b", 4);
    res[1].conflicts = json_loads("[{\"field\": \"label\", \"value\": "
                                  "\"bird\", \"dot\": [\"tab-b\", 4]}]",
                                  0, NULL);

    res[2].status = RES_REJECTED;
    res[2].reason = "not_found";
    strcpy(res[2].message, "object o3 does not exist");

    j = msg_ack_json("project:42", 12, 58, ids, res, 3);
    assert_json(j, "{\"type\": \"ack\", \"room\": \"project:42\", "
                   "\"opseq\": 12, \"seq\": 58, \"results\": ["
                   "{\"id\": \"o1\", \"status\": \"applied\", "
                   "\"vv\": {\"tab-a\": 1}},"
                   "{\"id\": \"o2\", \"status\": \"conflict\", "
                   "\"reason\": \"concurrent\", "
                   "\"vv\": {\"tab-a\": 1, \"tab-b\": 4}, \"conflicts\": "
                   "[{\"field\": \"label\", \"value\": \"bird\", "
                   "\"dot\": [\"tab-b\", 4]}]},"
                   "{\"id\": \"o3\", \"status\": \"rejected\", "
                   "\"reason\": \"not_found\", "
                   "\"message\": \"object o3 does not exist\"}]}");
    json_decref(j);

    j = msg_ack_json("r", 3, 0, ids + 2, res + 2, 1);
    assert_null(json_object_get(j, "seq"));
    assert_int_equal(json_array_size(json_object_get(j, "results")), 1);
    json_decref(j);

    for (i = 0; i < 3; i++)
        op_result_clear(&res[i]);
}

static void left_json_has_protocol_shape(void **state)
{
    json_t *j = msg_left_json("project:42");

    assert_json(j, "{\"type\": \"left\", \"room\": \"project:42\"}");
    json_decref(j);
}

static void event_ops_match_protocol_and_read_back(void **state)
{
    const char *want[3] = {
        "{\"op\": \"create\", \"id\": \"o1\", \"kind\": \"bbox\", "
        "\"fields\": {\"item\": \"img-1\", \"label\": \"cat\", "
        "\"geometry\": [10, 20, 30, 40]}, \"vv\": {\"tab-a\": 1}}",
        "{\"op\": \"update\", \"id\": \"o2\", \"set\": {\"label\": \"dog\"}, "
        "\"unset\": [\"occluded\"], \"vv\": {\"tab-a\": 2, \"tab-b\": 3}}",
        "{\"op\": \"delete\", \"id\": \"o3\", "
        "\"vv\": {\"tab-a\": 1, \"tab-b\": 1}}",
    };
    char err[PROTO_ERR_MAX];
    msg_error_t merr;
    json_t *j, *again;
    size_t i;
    msg_t msg;
    op_t op;

    assert_int_equal(decode(example_ops, NULL, &msg, &merr), 0);
    for (i = 0; i < 3; i++) {
        json_t *w = json_loads(want[i], 0, NULL);
        vv_t vv;

        vv_init(&vv);
        assert_int_equal(
            vv_from_json(&vv, json_object_get(w, "vv"), err, sizeof(err)), 0);
        j = msg_event_op_json(&msg.ops[i], &vv);
        assert_json(j, want[i]);

        /* An event op reads back with its vv in op.base. */
        if (msg_op_from_json(j, NULL, 1, &op, err, sizeof(err)) != 0)
            fail_msg("event op %zu: %s", i, err);
        assert_true(vv_equal(&op.base, &vv));
        again = msg_event_op_json(&op, &op.base);
        assert_true(json_equal(again, j));

        json_decref(again);
        op_clear(&op);
        json_decref(j);
        json_decref(w);
        vv_free(&vv);
    }
    msg_clear(&msg);
}

static void event_op_needs_vv(void **state)
{
    json_t *j = json_loads("{\"op\": \"delete\", \"id\": \"o3\", "
                           "\"base\": {}}",
                           0, NULL);
    char err[PROTO_ERR_MAX];
    op_t op;

    assert_int_equal(msg_op_from_json(j, NULL, 1, &op, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "vv is missing");
    assert_null(op.id);
    json_decref(j);
}

static void decodes_restore_settings_and_atomic(void **state)
{
    msg_error_t err;
    msg_t msg;

    assert_int_equal(
        decode(OPS_HEAD "[{\"op\": \"restore\", \"id\": \"o1\", "
                        "\"base\": {\"a\": 2}, \"fields\": {\"z\": 1}}, "
                        "{\"op\": \"settings\", \"base\": {}, "
                        "\"set\": {\"policy\": \"lww\"}}, "
                        "{\"op\": \"update\", \"id\": \"@x\", \"base\": {}, "
                        "\"set\": {\"a\": 1}}], \"atomic\": true}",
               NULL, &msg, &err),
        0);
    assert_true(msg.atomic);
    assert_int_equal(msg.nops, 3);
    assert_int_equal(msg.ops[0].type, OP_RESTORE);
    assert_json(msg.ops[0].fields, "{\"z\": 1}");
    assert_int_equal(vv_get(&msg.ops[0].base, "a"), 2);
    assert_int_equal(msg.ops[1].type, OP_SETTINGS);
    assert_string_equal(msg.ops[1].id, "@room");
    assert_json(msg.ops[1].set, "{\"policy\": \"lww\"}");

    /* Reserved ids decode; the merge rejects the op alone. */
    assert_string_equal(msg.ops[2].id, "@x");
    msg_clear(&msg);

    assert_int_equal(decode(IN_OPS("{\"op\": \"delete\", \"id\": \"x\", "
                                   "\"base\": {}}"),
                            NULL, &msg, &err),
                     0);
    assert_false(msg.atomic);
    msg_clear(&msg);
}

static void reads_every_event_op_form(void **state)
{
    static const char *const forms[] = {
        "{\"op\": \"restore\", \"id\": \"o1\", \"kind\": \"bbox\", "
        "\"fields\": {\"item\": \"i\"}, \"vv\": {\"a\": 3}}",
        "{\"op\": \"settings\", \"set\": {\"schema\": null}, "
        "\"vv\": {\"a\": 1}}",
        "{\"op\": \"delete\", \"id\": \"o1\", \"vv\": {\"a\": 2}, "
        "\"overwritten\": [{\"field\": \"label\", "
        "\"dot\": [\"b\", 1]}]}",
    };
    char err[PROTO_ERR_MAX];
    json_t *j, *again;
    size_t i;
    op_t op;

    for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        j = json_loads(forms[i], 0, NULL);
        if (msg_op_from_json(j, NULL, 1, &op, err, sizeof(err)) != 0)
            fail_msg("event op %zu: %s", i, err);
        again = msg_event_op_json(&op, &op.base);
        json_object_del(j, "overwritten");
        assert_true(json_equal(again, j));
        json_decref(again);
        op_clear(&op);
        json_decref(j);
    }
}

static void ack_json_shows_merged_and_overwritten(void **state)
{
    op_result_t res[2];
    json_t *j;

    op_result_init(&res[0]);
    op_result_init(&res[1]);
    res[0].status = RES_MERGED;
    res[0].reason = "concurrent";
    vv_set(&res[0].vv, "b", 2);
    res[0].conflicts = json_loads("[{\"field\": \"attrs.color\", "
                                  "\"dot\": [\"b\", 1]}]",
                                  0, NULL);
    vv_set(&res[1].vv, "b", 3);
    res[1].overwritten = json_loads("[{\"field\": \"label\", "
                                    "\"value\": \"car\", "
                                    "\"dot\": [\"c\", 2]}]",
                                    0, NULL);
    j = msg_ack_json("r", 4, 9, NULL, res, 2);
    assert_json(json_object_get(j, "results"),
                "[{\"status\": \"merged\", \"reason\": \"concurrent\", "
                "\"vv\": {\"b\": 2}, \"conflicts\": [{\"field\": "
                "\"attrs.color\", \"dot\": [\"b\", 1]}]}, "
                "{\"status\": \"applied\", \"vv\": {\"b\": 3}, "
                "\"overwritten\": [{\"field\": \"label\", "
                "\"value\": \"car\", \"dot\": [\"c\", 2]}]}]");
    json_decref(j);
    op_result_clear(&res[0]);
    op_result_clear(&res[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decodes_join),
        cmocka_unit_test(decodes_join_since),
        cmocka_unit_test(rejects_bad_since),
        cmocka_unit_test(decodes_leave),
        cmocka_unit_test(decodes_ops_example),
        cmocka_unit_test(accepts_128_byte_room),
        cmocka_unit_test(ignores_unknown_members),
        cmocka_unit_test(brackets_in_strings_do_not_count_as_depth),
        cmocka_unit_test(rejects_bad_inputs),
        cmocka_unit_test(error_names_room_and_opseq),
        cmocka_unit_test(too_many_ops_is_too_large),
        cmocka_unit_test(default_limit_of_1000_ops),
        cmocka_unit_test(too_many_fields_is_too_large),
        cmocka_unit_test(nesting_over_limit_is_too_large),
        cmocka_unit_test(message_over_size_is_too_large),
        cmocka_unit_test(decode_needs_no_nul_terminator),
        cmocka_unit_test(long_unicode_value_gives_valid_error_json),
        cmocka_unit_test(error_json_has_protocol_shape),
        cmocka_unit_test(code_names_match_protocol),
        cmocka_unit_test(ack_json_has_protocol_shape),
        cmocka_unit_test(left_json_has_protocol_shape),
        cmocka_unit_test(event_ops_match_protocol_and_read_back),
        cmocka_unit_test(event_op_needs_vv),
        cmocka_unit_test(decodes_restore_settings_and_atomic),
        cmocka_unit_test(reads_every_event_op_form),
        cmocka_unit_test(ack_json_shows_merged_and_overwritten),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
