/*
 * Unit tests of the apply rules in protocol/obj.c: creates, updates,
 * deletes, conflicts, policies and the replay of events. The data-driven
 * cases of every merge rule are in test_vectors.c.
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
#include "obj.h"

/* Builds an op from valid client JSON, failing the test otherwise. */
static void op_parse(op_t *op, const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    char err[PROTO_ERR_MAX] = "";

    assert_non_null(j);
    if (msg_op_from_json(j, NULL, 0, op, err, sizeof(err)) != 0)
        fail_msg("op %s: %s", text, err);
    json_decref(j);
}

/* Applies text by actor to cur and expects it to apply; returns the new
 * object. */
static obj_t *apply_ok(const obj_t *cur, const char *text, const char *actor)
{
    op_result_t res;
    obj_t *next = NULL;
    op_t op;

    op_parse(&op, text);
    op_result_init(&res);
    assert_int_equal(obj_apply(cur, &op, actor, &next, &res), 0);
    if (res.status != RES_APPLIED)
        fail_msg("op %s: status %d, reason %s, message %s", text,
                 (int)res.status, res.reason ? res.reason : "-", res.message);
    assert_non_null(next);
    assert_true(vv_equal(&res.vv, &next->vv));
    op_result_clear(&res);
    op_clear(&op);
    return next;
}

/* Applies text by actor to cur and expects no object; res is filled. */
static void apply_fails(const obj_t *cur, const char *text, const char *actor,
                        op_result_t *res)
{
    obj_t *next = (obj_t *)1;
    op_t op;

    op_parse(&op, text);
    assert_int_equal(obj_apply(cur, &op, actor, &next, res), 0);
    assert_null(next);
    op_clear(&op);
}

static void assert_json(const json_t *j, const char *text)
{
    json_t *want = json_loads(text, JSON_DECODE_ANY, NULL);
    char *got;

    assert_non_null(want);
    if (!json_equal(j, want)) {
        got = json_dumps(j, JSON_SORT_KEYS);
        fail_msg("got %s, want %s", got ? got : "NULL", text);
    }
    json_decref(want);
}

static void assert_vv(const vv_t *vv, const char *text)
{
    json_t *j = vv_to_json(vv);

    assert_json(j, text);
    json_decref(j);
}

static obj_t *make_box(void)
{
    return apply_ok(NULL,
                    "{\"op\": \"create\", \"id\": \"o1\", \"kind\": \"bbox\", "
                    "\"fields\": {\"item\": \"img-1\", \"label\": \"cat\", "
                    "\"frame\": 3, \"geometry\": [10, 20, 30, 40]}}",
                    "tab-a");
}

static void create_sets_vv_and_dots(void **state)
{
    obj_t *obj = make_box();

    assert_string_equal(obj->id, "o1");
    assert_string_equal(obj->kind, "bbox");
    assert_false(obj->deleted);
    assert_int_equal(obj->rev, 0);
    assert_vv(&obj->vv, "{\"tab-a\": 1}");
    assert_json(obj->fields, "{\"item\": \"img-1\", \"label\": \"cat\", "
                             "\"frame\": 3, \"geometry\": [10, 20, 30, 40]}");
    assert_json(obj->dots, "{\"item\": [\"tab-a\", 1], "
                           "\"label\": [\"tab-a\", 1], "
                           "\"frame\": [\"tab-a\", 1], "
                           "\"geometry\": [\"tab-a\", 1]}");
    obj_free(obj);
}

static void create_without_fields_is_empty(void **state)
{
    obj_t *obj = apply_ok(NULL,
                          "{\"op\": \"create\", \"id\": \"t\", "
                          "\"kind\": \"tag\"}",
                          "bot");

    assert_int_equal(json_object_size(obj->fields), 0);
    assert_int_equal(json_object_size(obj->dots), 0);
    assert_vv(&obj->vv, "{\"bot\": 1}");
    obj_free(obj);
}

static void create_of_live_id_is_exists(void **state)
{
    obj_t *cur = make_box();
    op_result_t res;

    op_result_init(&res);
    apply_fails(cur, "{\"op\": \"create\", \"id\": \"o1\", \"kind\": \"tag\"}",
                "tab-b", &res);
    assert_int_equal(res.status, RES_CONFLICT);
    assert_string_equal(res.reason, "exists");
    assert_true(vv_equal(&res.vv, &cur->vv));
    assert_null(res.conflicts);
    op_result_clear(&res);
    obj_free(cur);
}

static void create_of_deleted_id_is_exists(void **state)
{
    obj_t *cur = make_box();
    obj_t *dead = apply_ok(cur,
                           "{\"op\": \"delete\", \"id\": \"o1\", "
                           "\"base\": {\"tab-a\": 1}}",
                           "tab-a");
    op_result_t res;

    op_result_init(&res);
    apply_fails(dead, "{\"op\": \"create\", \"id\": \"o1\", \"kind\": \"tag\"}",
                "tab-a", &res);
    assert_int_equal(res.status, RES_CONFLICT);
    assert_string_equal(res.reason, "exists");
    assert_vv(&res.vv, "{\"tab-a\": 2}");
    op_result_clear(&res);
    obj_free(dead);
    obj_free(cur);
}

static void update_sets_and_unsets_fields(void **state)
{
    obj_t *cur = make_box();
    obj_t *next = apply_ok(cur,
                           "{\"op\": \"update\", \"id\": \"o1\", "
                           "\"base\": {\"tab-a\": 1}, "
                           "\"set\": {\"label\": \"dog\", \"z\": 2}, "
                           "\"unset\": [\"geometry\"]}",
                           "tab-b");

    assert_vv(&next->vv, "{\"tab-a\": 1, \"tab-b\": 1}");
    assert_json(next->fields, "{\"item\": \"img-1\", \"label\": \"dog\", "
                              "\"frame\": 3, \"z\": 2}");
    assert_json(next->dots, "{\"item\": [\"tab-a\", 1], "
                            "\"label\": [\"tab-b\", 1], "
                            "\"frame\": [\"tab-a\", 1], "
                            "\"geometry\": [\"tab-b\", 1], "
                            "\"z\": [\"tab-b\", 1]}");
    obj_free(next);
    obj_free(cur);
}

static void update_leaves_cur_unchanged(void **state)
{
    obj_t *cur = make_box();
    obj_t *before = obj_clone(cur);
    obj_t *next = apply_ok(cur,
                           "{\"op\": \"update\", \"id\": \"o1\", "
                           "\"base\": {\"tab-a\": 1}, "
                           "\"set\": {\"label\": \"dog\"}, "
                           "\"unset\": [\"frame\"]}",
                           "tab-a");

    assert_true(obj_equal(cur, before));
    assert_vv(&next->vv, "{\"tab-a\": 2}");
    obj_free(next);
    obj_free(before);
    obj_free(cur);
}

static void update_keeps_rev(void **state)
{
    obj_t *cur = make_box();
    obj_t *next;

    cur->rev = 41;
    next = apply_ok(cur,
                    "{\"op\": \"update\", \"id\": \"o1\", "
                    "\"base\": {\"tab-a\": 1}, \"set\": {\"z\": 1}}",
                    "tab-a");
    assert_int_equal(next->rev, 41);
    obj_free(next);
    obj_free(cur);
}

static void unset_of_unknown_field_writes_no_dot(void **state)
{
    obj_t *cur = make_box();
    obj_t *next = apply_ok(cur,
                           "{\"op\": \"update\", \"id\": \"o1\", "
                           "\"base\": {\"tab-a\": 1}, "
                           "\"unset\": [\"never\"]}",
                           "tab-a");

    assert_null(json_object_get(next->dots, "never"));
    assert_vv(&next->vv, "{\"tab-a\": 2}");
    obj_free(next);
    obj_free(cur);
}

static void update_of_unknown_id_is_not_found(void **state)
{
    op_result_t res;

    op_result_init(&res);
    apply_fails(NULL,
                "{\"op\": \"update\", \"id\": \"o3\", \"base\": {}, "
                "\"set\": {\"a\": 1}}",
                "tab-a", &res);
    assert_int_equal(res.status, RES_REJECTED);
    assert_string_equal(res.reason, "not_found");
    assert_string_equal(res.message, "object \"o3\" does not exist");
    op_result_clear(&res);
}

static void update_of_deleted_is_deleted(void **state)
{
    obj_t *cur = make_box();
    obj_t *dead = apply_ok(cur,
                           "{\"op\": \"delete\", \"id\": \"o1\", "
                           "\"base\": {\"tab-a\": 1}}",
                           "tab-b");
    op_result_t res;

    op_result_init(&res);
    apply_fails(dead,
                "{\"op\": \"update\", \"id\": \"o1\", "
                "\"base\": {\"tab-a\": 1, \"tab-b\": 1}, "
                "\"set\": {\"label\": \"x\"}}",
                "tab-a", &res);
    assert_int_equal(res.status, RES_CONFLICT);
    assert_string_equal(res.reason, "deleted");
    assert_vv(&res.vv, "{\"tab-a\": 1, \"tab-b\": 1}");
    op_result_clear(&res);
    obj_free(dead);
    obj_free(cur);
}

static void second_update_from_same_base_conflicts(void **state)
{
    obj_t *cur = make_box();
    obj_t *next = apply_ok(cur,
                           "{\"op\": \"update\", \"id\": \"o1\", "
                           "\"base\": {\"tab-a\": 1}, "
                           "\"set\": {\"label\": \"bird\"}}",
                           "tab-b");
    op_result_t res;

    op_result_init(&res);
    apply_fails(next,
                "{\"op\": \"update\", \"id\": \"o1\", "
                "\"base\": {\"tab-a\": 1}, "
                "\"set\": {\"label\": \"dog\"}}",
                "tab-c", &res);
    assert_int_equal(res.status, RES_CONFLICT);
    assert_string_equal(res.reason, "concurrent");
    assert_vv(&res.vv, "{\"tab-a\": 1, \"tab-b\": 1}");
    assert_non_null(res.conflicts);
    assert_json(res.conflicts, "[{\"field\": \"label\", \"value\": \"bird\", "
                               "\"dot\": [\"tab-b\", 1]}]");
    op_result_clear(&res);
    obj_free(next);
    obj_free(cur);
}

static void concurrent_conflict_lists_removed_field(void **state)
{
    obj_t *cur = make_box();
    obj_t *next = apply_ok(cur,
                           "{\"op\": \"update\", \"id\": \"o1\", "
                           "\"base\": {\"tab-a\": 1}, "
                           "\"unset\": [\"label\"]}",
                           "tab-b");
    op_result_t res;

    op_result_init(&res);
    apply_fails(next,
                "{\"op\": \"delete\", \"id\": \"o1\", "
                "\"base\": {\"tab-a\": 1}}",
                "tab-a", &res);
    assert_int_equal(res.status, RES_CONFLICT);
    assert_string_equal(res.reason, "concurrent");
    assert_json(res.conflicts,
                "[{\"field\": \"label\", \"dot\": [\"tab-b\", 1]}]");
    op_result_clear(&res);
    obj_free(next);
    obj_free(cur);
}

static void disjoint_concurrent_updates_merge(void **state)
{
    obj_t *cur = make_box();
    obj_t *mid = apply_ok(cur,
                          "{\"op\": \"update\", \"id\": \"o1\", "
                          "\"base\": {\"tab-a\": 1}, "
                          "\"set\": {\"label\": \"bird\"}}",
                          "tab-b");
    obj_t *last = apply_ok(mid,
                           "{\"op\": \"update\", \"id\": \"o1\", "
                           "\"base\": {\"tab-a\": 1}, "
                           "\"set\": {\"z\": 5}}",
                           "tab-c");

    /* z has no dot that base missed, so it applies beside tab-b's label. */
    assert_vv(&last->vv, "{\"tab-a\": 1, \"tab-b\": 1, \"tab-c\": 1}");
    assert_json(json_object_get(last->fields, "label"), "\"bird\"");
    assert_json(json_object_get(last->fields, "z"), "5");
    obj_free(last);
    obj_free(mid);
    obj_free(cur);
}

static void partly_concurrent_update_is_merged(void **state)
{
    obj_t *cur = make_box();
    obj_t *mid = apply_ok(cur,
                          "{\"op\": \"update\", \"id\": \"o1\", "
                          "\"base\": {\"tab-a\": 1}, "
                          "\"set\": {\"label\": \"bird\"}}",
                          "tab-b");
    op_result_t res;
    obj_t *next = NULL;
    op_t op;

    op_parse(&op, "{\"op\": \"update\", \"id\": \"o1\", "
                  "\"base\": {\"tab-a\": 1}, "
                  "\"set\": {\"label\": \"dog\", \"z\": 5}}");
    op_result_init(&res);
    assert_int_equal(obj_apply(mid, &op, "tab-c", &next, &res), 0);
    assert_int_equal(res.status, RES_MERGED);
    assert_string_equal(res.reason, "concurrent");
    assert_json(res.conflicts, "[{\"field\": \"label\", \"value\": \"bird\", "
                               "\"dot\": [\"tab-b\", 1]}]");
    assert_json(json_object_get(next->fields, "label"), "\"bird\"");
    assert_json(json_object_get(next->dots, "z"), "[\"tab-c\", 1]");
    assert_true(vv_equal(&res.vv, &next->vv));
    op_result_clear(&res);
    op_clear(&op);
    obj_free(next);
    obj_free(mid);
    obj_free(cur);
}

static void lww_overwrites_and_lists_old_value(void **state)
{
    merge_settings_t lww = {POLICY_LWW, NULL};
    obj_t *cur = make_box();
    obj_t *mid = apply_ok(cur,
                          "{\"op\": \"update\", \"id\": \"o1\", "
                          "\"base\": {\"tab-a\": 1}, "
                          "\"set\": {\"label\": \"bird\"}}",
                          "tab-b");
    op_result_t res;
    obj_t *next = NULL;
    op_t op;

    op_parse(&op, "{\"op\": \"update\", \"id\": \"o1\", "
                  "\"base\": {\"tab-a\": 1}, "
                  "\"set\": {\"label\": \"dog\"}}");
    op_result_init(&res);
    assert_int_equal(obj_apply_ex(mid, &op, "tab-c", &lww, &next, &res), 0);
    assert_int_equal(res.status, RES_APPLIED);
    assert_null(res.conflicts);
    assert_json(res.overwritten, "[{\"field\": \"label\", "
                                 "\"value\": \"bird\", "
                                 "\"dot\": [\"tab-b\", 1]}]");
    assert_json(json_object_get(next->fields, "label"), "\"dog\"");
    op_result_clear(&res);
    op_clear(&op);
    obj_free(next);
    obj_free(mid);
    obj_free(cur);
}

static void own_earlier_write_is_not_concurrent(void **state)
{
    obj_t *cur = make_box();
    obj_t *mid = apply_ok(cur,
                          "{\"op\": \"update\", \"id\": \"o1\", "
                          "\"base\": {\"tab-a\": 1}, "
                          "\"set\": {\"label\": \"bird\"}}",
                          "tab-b");
    obj_t *last = apply_ok(mid,
                           "{\"op\": \"update\", \"id\": \"o1\", "
                           "\"base\": {\"tab-a\": 1}, "
                           "\"set\": {\"label\": \"owl\"}}",
                           "tab-b");

    assert_json(json_object_get(last->dots, "label"), "[\"tab-b\", 2]");
    obj_free(last);
    obj_free(mid);
    obj_free(cur);
}

static void reserved_id_is_invalid(void **state)
{
    op_result_t res;

    op_result_init(&res);
    apply_fails(NULL,
                "{\"op\": \"create\", \"id\": \"@room\", "
                "\"kind\": \"tag\"}",
                "tab-a", &res);
    assert_int_equal(res.status, RES_REJECTED);
    assert_string_equal(res.reason, "invalid");
    assert_non_null(strstr(res.message, "\"@room\" is reserved"));
    op_result_clear(&res);
}

static void retry_on_fresh_vv_applies(void **state)
{
    obj_t *cur = make_box();
    obj_t *mid = apply_ok(cur,
                          "{\"op\": \"update\", \"id\": \"o1\", "
                          "\"base\": {\"tab-a\": 1}, "
                          "\"set\": {\"label\": \"bird\"}}",
                          "tab-b");
    obj_t *last = apply_ok(mid,
                           "{\"op\": \"update\", \"id\": \"o1\", "
                           "\"base\": {\"tab-a\": 1, \"tab-b\": 1}, "
                           "\"set\": {\"label\": \"dog\"}}",
                           "tab-a");

    assert_vv(&last->vv, "{\"tab-a\": 2, \"tab-b\": 1}");
    assert_json(json_object_get(last->dots, "label"), "[\"tab-a\", 2]");
    obj_free(last);
    obj_free(mid);
    obj_free(cur);
}

static void delete_leaves_tombstone_with_item_and_frame(void **state)
{
    obj_t *cur = make_box();
    obj_t *dead = apply_ok(cur,
                           "{\"op\": \"delete\", \"id\": \"o1\", "
                           "\"base\": {\"tab-a\": 1}}",
                           "tab-a");

    assert_true(dead->deleted);
    assert_string_equal(dead->kind, "bbox");
    assert_vv(&dead->vv, "{\"tab-a\": 2}");
    assert_json(dead->fields, "{\"item\": \"img-1\", \"frame\": 3}");
    assert_json(dead->dots, "{\"item\": [\"tab-a\", 1], "
                            "\"frame\": [\"tab-a\", 1]}");
    obj_free(dead);
    obj_free(cur);
}

static void delete_from_old_base_conflicts(void **state)
{
    obj_t *cur = make_box();
    obj_t *next = apply_ok(cur,
                           "{\"op\": \"update\", \"id\": \"o1\", "
                           "\"base\": {\"tab-a\": 1}, "
                           "\"set\": {\"label\": \"dog\"}}",
                           "tab-a");
    op_result_t res;

    op_result_init(&res);
    apply_fails(next,
                "{\"op\": \"delete\", \"id\": \"o1\", "
                "\"base\": {\"tab-a\": 1}}",
                "tab-b", &res);
    assert_int_equal(res.status, RES_CONFLICT);
    assert_string_equal(res.reason, "concurrent");
    assert_json(res.conflicts, "[{\"field\": \"label\", \"value\": \"dog\", "
                               "\"dot\": [\"tab-a\", 2]}]");
    op_result_clear(&res);
    obj_free(next);
    obj_free(cur);
}

static void delete_of_unknown_id_is_not_found(void **state)
{
    op_result_t res;

    op_result_init(&res);
    apply_fails(NULL, "{\"op\": \"delete\", \"id\": \"gone\", \"base\": {}}",
                "tab-a", &res);
    assert_int_equal(res.status, RES_REJECTED);
    assert_string_equal(res.reason, "not_found");
    op_result_clear(&res);
}

static void update_past_field_limit_is_invalid(void **state)
{
    obj_t *cur = make_box();
    json_t *set = json_object();
    op_result_t res;
    obj_t *next;
    char name[16];
    op_t op;
    int i;

    /* The box has 4 fields, so 253 more pass the limit of 256. */
    for (i = 0; i < 253; i++) {
        snprintf(name, sizeof(name), "f%d", i);
        json_object_set_new(set, name, json_integer(i));
    }
    op_init(&op);
    op.type = OP_UPDATE;
    op.id = strdup("o1");
    op.set = set;
    vv_set(&op.base, "tab-a", 1);
    op_result_init(&res);

    assert_int_equal(obj_apply(cur, &op, "tab-a", &next, &res), 0);
    assert_null(next);
    assert_int_equal(res.status, RES_REJECTED);
    assert_string_equal(res.reason, "invalid");
    assert_non_null(strstr(res.message, "more than 256 fields"));

    op_result_clear(&res);
    op_clear(&op);
    obj_free(cur);
}

static void op_built_in_code_is_checked(void **state)
{
    op_result_t res;
    obj_t *next;
    op_t op;

    op_init(&op);
    op.type = OP_CREATE;
    op.id = strdup("has space");
    op.kind = strdup("bbox");
    op_result_init(&res);
    assert_int_equal(obj_apply(NULL, &op, "tab-a", &next, &res), 0);
    assert_int_equal(res.status, RES_REJECTED);
    assert_string_equal(res.reason, "invalid");

    free(op.id);
    op.id = strdup("ok");
    free(op.kind);
    op.kind = strdup("blob");
    assert_int_equal(obj_apply(NULL, &op, "tab-a", &next, &res), 0);
    assert_string_equal(res.reason, "invalid");
    assert_non_null(strstr(res.message, "\"blob\""));

    free(op.kind);
    op.kind = strdup("bbox");
    assert_int_equal(obj_apply(NULL, &op, "bad actor", &next, &res), 0);
    assert_string_equal(res.reason, "invalid");
    assert_null(next);

    op_result_clear(&res);
    op_clear(&op);
}

static void counter_overflow_is_invalid(void **state)
{
    obj_t *cur = make_box();
    op_result_t res;

    vv_set(&cur->vv, "tab-a", VV_COUNTER_MAX);
    op_result_init(&res);
    apply_fails(cur,
                "{\"op\": \"update\", \"id\": \"o1\", "
                "\"base\": {\"tab-a\": 9007199254740991}, "
                "\"set\": {\"z\": 1}}",
                "tab-a", &res);
    assert_int_equal(res.status, RES_REJECTED);
    assert_string_equal(res.reason, "invalid");
    op_result_clear(&res);
    obj_free(cur);
}

/* Applies text to cur, replays it with the resulting vv, and compares. */
static obj_t *check_replay(const obj_t *cur, const char *text,
                           const char *actor)
{
    obj_t *applied = apply_ok(cur, text, actor);
    obj_t *replayed = NULL;
    op_t op;

    op_parse(&op, text);
    assert_int_equal(obj_replay(cur, &op, actor, &applied->vv, &replayed), 0);
    assert_non_null(replayed);
    assert_true(obj_equal(applied, replayed));
    obj_free(replayed);
    op_clear(&op);
    return applied;
}

static void replay_equals_apply(void **state)
{
    obj_t *a = check_replay(NULL,
                            "{\"op\": \"create\", \"id\": \"o1\", "
                            "\"kind\": \"polygon\", \"fields\": "
                            "{\"item\": \"i\", \"points\": [[1.5, 2]]}}",
                            "tab-a");
    obj_t *b = check_replay(a,
                            "{\"op\": \"update\", \"id\": \"o1\", "
                            "\"base\": {\"tab-a\": 1}, "
                            "\"set\": {\"label\": \"x\"}, "
                            "\"unset\": [\"points\"]}",
                            "bot-1");
    obj_t *c = check_replay(b,
                            "{\"op\": \"delete\", \"id\": \"o1\", "
                            "\"base\": {\"tab-a\": 1, \"bot-1\": 1}}",
                            "tab-a");

    assert_true(c->deleted);
    obj_free(c);
    obj_free(b);
    obj_free(a);
}

static void replay_uses_event_vv(void **state)
{
    obj_t *cur = make_box();
    obj_t *next = NULL;
    vv_t vv;
    op_t op;

    op_parse(&op, "{\"op\": \"update\", \"id\": \"o1\", \"base\": {}, "
                  "\"set\": {\"label\": \"dog\"}}");
    vv_init(&vv);
    vv_set(&vv, "tab-a", 1);
    vv_set(&vv, "tab-b", 7);
    assert_int_equal(obj_replay(cur, &op, "tab-b", &vv, &next), 0);
    assert_true(vv_equal(&next->vv, &vv));
    assert_json(json_object_get(next->dots, "label"), "[\"tab-b\", 7]");
    obj_free(next);
    vv_free(&vv);
    op_clear(&op);
    obj_free(cur);
}

static void replay_rejects_ops_that_do_not_fit(void **state)
{
    obj_t *cur = make_box();
    obj_t *next = NULL;
    op_t create, update;
    vv_t vv, other;

    op_parse(&create, "{\"op\": \"create\", \"id\": \"o1\", "
                      "\"kind\": \"tag\"}");
    op_parse(&update, "{\"op\": \"update\", \"id\": \"o1\", \"base\": {}, "
                      "\"set\": {\"a\": 1}}");
    vv_init(&vv);
    vv_set(&vv, "tab-a", 2);
    vv_init(&other);
    vv_set(&other, "tab-z", 2);

    assert_int_equal(obj_replay(cur, &create, "tab-a", &vv, &next), -EINVAL);
    assert_int_equal(obj_replay(NULL, &update, "tab-a", &vv, &next), -EINVAL);
    assert_int_equal(obj_replay(cur, &update, "tab-a", &other, &next), -EINVAL);
    assert_null(next);

    vv_free(&vv);
    vv_free(&other);
    op_clear(&create);
    op_clear(&update);
    obj_free(cur);
}

static void clone_is_deep_and_equal(void **state)
{
    obj_t *cur = make_box();
    obj_t *copy = obj_clone(cur);

    assert_true(obj_equal(cur, copy));
    json_array_set_new(json_object_get(copy->fields, "geometry"), 0,
                       json_integer(99));
    assert_false(obj_equal(cur, copy));
    assert_json(json_object_get(cur->fields, "geometry"), "[10, 20, 30, 40]");
    obj_free(copy);
    obj_free(cur);
}

static void to_wire_has_protocol_shape(void **state)
{
    obj_t *cur = make_box();
    json_t *j = obj_to_wire(cur);

    assert_json(j, "{\"id\": \"o1\", \"kind\": \"bbox\", "
                   "\"vv\": {\"tab-a\": 1}, \"fields\": {\"item\": \"img-1\", "
                   "\"label\": \"cat\", \"frame\": 3, "
                   "\"geometry\": [10, 20, 30, 40]}}");
    json_decref(j);
    obj_free(cur);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_sets_vv_and_dots),
        cmocka_unit_test(create_without_fields_is_empty),
        cmocka_unit_test(create_of_live_id_is_exists),
        cmocka_unit_test(create_of_deleted_id_is_exists),
        cmocka_unit_test(update_sets_and_unsets_fields),
        cmocka_unit_test(update_leaves_cur_unchanged),
        cmocka_unit_test(update_keeps_rev),
        cmocka_unit_test(unset_of_unknown_field_writes_no_dot),
        cmocka_unit_test(update_of_unknown_id_is_not_found),
        cmocka_unit_test(update_of_deleted_is_deleted),
        cmocka_unit_test(second_update_from_same_base_conflicts),
        cmocka_unit_test(concurrent_conflict_lists_removed_field),
        cmocka_unit_test(disjoint_concurrent_updates_merge),
        cmocka_unit_test(partly_concurrent_update_is_merged),
        cmocka_unit_test(lww_overwrites_and_lists_old_value),
        cmocka_unit_test(own_earlier_write_is_not_concurrent),
        cmocka_unit_test(reserved_id_is_invalid),
        cmocka_unit_test(retry_on_fresh_vv_applies),
        cmocka_unit_test(delete_leaves_tombstone_with_item_and_frame),
        cmocka_unit_test(delete_from_old_base_conflicts),
        cmocka_unit_test(delete_of_unknown_id_is_not_found),
        cmocka_unit_test(update_past_field_limit_is_invalid),
        cmocka_unit_test(op_built_in_code_is_checked),
        cmocka_unit_test(counter_overflow_is_invalid),
        cmocka_unit_test(replay_equals_apply),
        cmocka_unit_test(replay_uses_event_vv),
        cmocka_unit_test(replay_rejects_ops_that_do_not_fit),
        cmocka_unit_test(clone_is_deep_and_equal),
        cmocka_unit_test(to_wire_has_protocol_shape),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
