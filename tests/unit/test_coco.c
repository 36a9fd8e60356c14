/*
 * Unit tests of protocol/coco.c. Real COCO files go through create ops,
 * the merge, msgpack storage and export, and must come back unchanged.
 * Other cases check the mapping rules of client-js/src/coco.js, skipped
 * elements and objects, and bad input.
 *
 * Usage: test_coco [DATA_DIR [LABELME_COCO_FILE]]. The file tests read
 * DATA_DIR/coco_instances_val2014_100.json and the labelme example COCO
 * file, and are skipped with a message when they are absent.
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

#include "coco.h"
#include "msg.h"
#include "pack.h"

#define COCO_FILE "coco_instances_val2014_100.json"

static const char *data_dir;
static const char *labelme_file;

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);

    if (j == NULL)
        fail_msg("bad test JSON: %s: %s", jerr.text, text);
    return j;
}

/* Loads path, or skips the test with a message when it is absent. */
static json_t *load_or_skip(const char *path)
{
    json_error_t jerr;
    json_t *j;
    FILE *f = path != NULL ? fopen(path, "rb") : NULL;

    if (f == NULL) {
        print_message("SKIP: %s is absent\n", path ? path : "the file");
        skip();
    }
    fclose(f);
    j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        fail_msg("%s: %s", path, jerr.text);
    return j;
}

/* Byte-for-byte: the same JSON text, number types included. */
static void assert_same_json(const json_t *a, const json_t *b,
                             const char *what)
{
    size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS;
    char *ta = json_dumps(a, flags), *tb = json_dumps(b, flags);

    if (ta == NULL || tb == NULL || strcmp(ta, tb) != 0 || !json_equal(a, b))
        fail_msg("%s differs:\n%.300s\n%.300s", what, ta ? ta : "(none)",
                 tb ? tb : "(none)");
    free(ta);
    free(tb);
}

/* Applies the create ops as the server does (decode, merge, msgpack
 * storage) and returns the stored objects; *n receives their count. */
static obj_t **store_ops(const json_t *ops, size_t *n)
{
    obj_t **objs = calloc(json_array_size(ops) + 1, sizeof(*objs));
    char err[PROTO_ERR_MAX] = "";
    const json_t *j;
    size_t i;

    assert_non_null(objs);
    json_array_foreach (ops, i, j) {
        msgpack_sbuffer sbuf;
        op_result_t res;
        obj_t *next = NULL;
        op_t op;

        if (msg_op_from_json(j, NULL, 0, &op, err, sizeof(err)) != 0)
            fail_msg("ops[%zu] does not decode: %s", i, err);
        op_result_init(&res);
        assert_int_equal(obj_apply(NULL, &op, "importer", &next, &res), 0);
        if (res.status != RES_APPLIED)
            fail_msg("ops[%zu] not applied: %s", i, res.message);
        msgpack_sbuffer_init(&sbuf);
        assert_int_equal(pack_obj(&sbuf, next), 0);
        if (unpack_obj(sbuf.data, sbuf.size, next->id, 1, &objs[i], err,
                       sizeof(err)) != 0)
            fail_msg("ops[%zu] does not unpack: %s", i, err);
        msgpack_sbuffer_destroy(&sbuf);
        obj_free(next);
        op_result_clear(&res);
        op_clear(&op);
    }
    *n = json_array_size(ops);
    return objs;
}

static void free_objs(obj_t **objs, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        obj_free(objs[i]);
    free(objs);
}

/* Returns the element of list whose "id" equals id, or fails. */
static const json_t *find_by_id(const json_t *list, const json_t *id)
{
    const json_t *e;
    size_t i;

    json_array_foreach (list, i, e) {
        if (json_equal(json_object_get(e, "id"), id))
            return e;
    }
    fail_msg("no element with id %lld", (long long)json_integer_value(id));
    return NULL;
}

/* Checks that every element of the original list comes back with every
 * member byte-for-byte, and nothing more, and that ids ascend. */
static void assert_list_back(const json_t *orig, const json_t *back,
                             const char *name)
{
    const json_t *e, *prev = NULL;
    const char *key;
    json_t *value;
    char what[128];
    size_t i;

    assert_int_equal(json_array_size(back), json_array_size(orig));
    json_array_foreach (orig, i, e) {
        const json_t *b = find_by_id(back, json_object_get(e, "id"));

        assert_int_equal(json_object_size(b), json_object_size(e));
        json_object_foreach ((json_t *)e, key, value) {
            snprintf(what, sizeof(what), "%s[%zu].%s", name, i, key);
            assert_same_json(value, json_object_get(b, key), what);
        }
    }
    json_array_foreach (back, i, e) {
        if (prev != NULL)
            assert_true(json_integer_value(json_object_get(prev, "id")) <
                        json_integer_value(json_object_get(e, "id")));
        prev = e;
    }
}

/* Imports a file, stores its objects and exports them: every list and
 * top-level member must come back as it was. */
static void round_trip_file(const json_t *coco, size_t expect_ops)
{
    char err[PROTO_ERR_MAX] = "";
    json_t *ops, *skipped, *back, *skipped_back;
    const char *key;
    json_t *value;
    obj_t **objs;
    size_t n;

    if (coco_import(coco, NULL, &ops, &skipped, err, sizeof(err)) != 0)
        fail_msg("import failed: %s", err);
    assert_int_equal(json_array_size(skipped), 0);
    assert_int_equal(json_array_size(ops), expect_ops);
    objs = store_ops(ops, &n);
    if (coco_export_objs((const obj_t *const *)objs, n, &back, &skipped_back,
                         err, sizeof(err)) != 0)
        fail_msg("export failed: %s", err);
    assert_int_equal(json_array_size(skipped_back), 0);

    assert_int_equal(json_object_size(back), json_object_size(coco));
    json_object_foreach ((json_t *)coco, key, value) {
        if (json_is_array(value) && strcmp(key, "licenses") != 0)
            assert_list_back(value, json_object_get(back, key), key);
        else
            assert_same_json(value, json_object_get(back, key), key);
    }
    free_objs(objs, n);
    json_decref(ops);
    json_decref(skipped);
    json_decref(back);
    json_decref(skipped_back);
}

static size_t list_size(const json_t *coco, const char *name)
{
    return json_array_size(json_object_get(coco, name));
}

static void coco_val2014_round_trips(void **state)
{
    char path[4096];
    json_t *coco;

    if (data_dir == NULL) {
        print_message("SKIP: no data folder given on the command line\n");
        skip();
    }
    snprintf(path, sizeof(path), "%s/%s", data_dir, COCO_FILE);
    coco = load_or_skip(path);
    round_trip_file(coco, 1 + list_size(coco, "categories") +
                              list_size(coco, "images") +
                              list_size(coco, "annotations"));
    json_decref(coco);
}

static void labelme_coco_round_trips(void **state)
{
    json_t *coco = load_or_skip(labelme_file);

    round_trip_file(coco, 1 + list_size(coco, "categories") +
                              list_size(coco, "images") +
                              list_size(coco, "annotations"));
    json_decref(coco);
}

/* Imports text and returns the ops; *skipped receives the skipped list. */
static json_t *import_ok(const char *text, json_t **skipped)
{
    char err[PROTO_ERR_MAX] = "";
    json_t *coco = parse(text), *ops;

    if (coco_import(coco, NULL, &ops, skipped, err, sizeof(err)) != 0)
        fail_msg("import failed: %s", err);
    json_decref(coco);
    return ops;
}

static void import_maps_like_coco_js(void **state)
{
    json_t *skipped, *ops = import_ok(
        "{\"info\": {\"year\": 2020}, \"type\": \"instances\","
        " \"categories\": [{\"id\": 1, \"name\": \"cat\"}],"
        " \"images\": [{\"id\": 7, \"file_name\": \"a.jpg\", \"width\": 4,"
        "              \"height\": 3}],"
        " \"annotations\": ["
        "  {\"id\": 1, \"image_id\": 7, \"category_id\": 1, \"iscrowd\": 0,"
        "   \"segmentation\": [[0, 0, 2.5, 0, 2.5, 2]], \"area\": 2.5,"
        "   \"bbox\": [0, 0, 2.5, 2]},"
        "  {\"id\": 2, \"image_id\": 7, \"category_id\": 1, \"iscrowd\": 1,"
        "   \"segmentation\": {\"counts\": [1, 2, 9], \"size\": [3, 4]}},"
        "  {\"id\": 3, \"image_id\": 7, \"category_id\": 9,"
        "   \"bbox\": [1.0, 1, 2, 2]}]}",
        &skipped);
    json_t *expected = parse(
        "[{\"op\": \"create\", \"id\": \"coco:dataset\", \"kind\": \"tag\","
        "  \"fields\": {\"coco_info\": {\"year\": 2020},"
        "              \"coco_extra\": {\"type\": \"instances\"}}},"
        " {\"op\": \"create\", \"id\": \"coco:cat:1\", \"kind\": \"category\","
        "  \"fields\": {\"name\": \"cat\", \"coco_id\": 1}},"
        " {\"op\": \"create\", \"id\": \"coco:img:7\", \"kind\": \"item\","
        "  \"fields\": {\"file_name\": \"a.jpg\", \"width\": 4, \"height\": 3,"
        "              \"coco_id\": 7}},"
        " {\"op\": \"create\", \"id\": \"coco:ann:1\", \"kind\": \"polygon\","
        "  \"fields\": {\"item\": \"coco:img:7\", \"label\": \"cat\","
        "   \"category_id\": 1, \"iscrowd\": 0, \"area\": 2.5,"
        "   \"bbox\": [0, 0, 2.5, 2], \"coco_id\": 1,"
        "   \"geometry\": [[0, 0, 2.5, 0, 2.5, 2]]}},"
        " {\"op\": \"create\", \"id\": \"coco:ann:2\", \"kind\": \"mask\","
        "  \"fields\": {\"item\": \"coco:img:7\", \"label\": \"cat\","
        "   \"category_id\": 1, \"iscrowd\": 1, \"coco_id\": 2,"
        "   \"geometry\": {\"counts\": [1, 2, 9], \"size\": [3, 4]}}},"
        " {\"op\": \"create\", \"id\": \"coco:ann:3\", \"kind\": \"bbox\","
        "  \"fields\": {\"item\": \"coco:img:7\", \"category_id\": 9,"
        "   \"bbox\": [1.0, 1, 2, 2], \"coco_id\": 3,"
        "   \"geometry\": [1.0, 1, 2, 2]}}]");

    assert_int_equal(json_array_size(skipped), 0);
    assert_same_json(ops, expected, "ops");
    json_decref(ops);
    json_decref(skipped);
    json_decref(expected);
}

/* Imports one file with one image whose id is the JSON text id_text, and
 * checks the item's object id. */
static void expect_image_id(const char *id_text, const char *object_id)
{
    char text[256];
    json_t *skipped, *ops;

    snprintf(text, sizeof(text),
             "{\"images\": [{\"id\": %s}], \"annotations\": []}", id_text);
    ops = import_ok(text, &skipped);
    assert_int_equal(json_array_size(skipped), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(ops, 0), "id")),
        object_id);
    json_decref(ops);
    json_decref(skipped);
}

static void ids_match_javascript_strings(void **state)
{
    expect_image_id("12", "coco:img:12");
    expect_image_id("-3", "coco:img:-3");
    expect_image_id("1.0", "coco:img:1");
    expect_image_id("1.5", "coco:img:1.5");
    expect_image_id("0.1", "coco:img:0.1");
    expect_image_id("1e3", "coco:img:1000");
    expect_image_id("1e21", "coco:img:1e+21");
    expect_image_id("1.25e-7", "coco:img:1.25e-7");
    expect_image_id("0.000001", "coco:img:0.000001");
    expect_image_id("123456789012.5", "coco:img:123456789012.5");
    expect_image_id("9007199254740993", "coco:img:9007199254740993");
    expect_image_id("\"abc\"", "coco:img:abc");
}

/* Imports text and expects one skipped element whose reason is reason. */
static void expect_skipped(const char *text, const char *reason)
{
    json_t *skipped, *ops = import_ok(text, &skipped);
    const char *got = json_string_value(
        json_object_get(json_array_get(skipped, 0), "reason"));

    if (json_array_size(skipped) != 1 || got == NULL ||
        strcmp(got, reason) != 0)
        fail_msg("expected skipped \"%s\", got %zu: \"%s\"", reason,
                 json_array_size(skipped), got ? got : "");
    json_decref(ops);
    json_decref(skipped);
}

#define IMG "\"images\": [{\"id\": 1, \"width\": 10, \"height\": 10}]"

static void bad_elements_are_skipped(void **state)
{
    expect_skipped("{" IMG ", \"annotations\": [{\"id\": 5, \"image_id\": 1,"
                   " \"bbox\": [1, 2, 3]}]}",
                   "annotations[0].bbox: must be 4 numbers, got 3");
    expect_skipped("{" IMG ", \"annotations\": [{\"id\": 5, \"image_id\": 1,"
                   " \"segmentation\": [[1, 2, 3, 4]],"
                   " \"bbox\": [1, 2, 3, \"x\"]}]}",
                   "annotations[0].bbox[3]: must be a finite number, got "
                   "\"x\"");
    expect_skipped("{" IMG ", \"annotations\": [{\"id\": 5, \"image_id\": 1,"
                   " \"segmentation\": [[1, 2, 3, 4]]}]}",
                   "annotations[0].segmentation[0]: polygon ring needs 3 or "
                   "more points, got 2");
    expect_skipped("{" IMG ", \"annotations\": [{\"id\": 5, \"image_id\": 1,"
                   " \"bbox\": [1, 2, -3, 4]}]}",
                   "annotations[0].bbox: bbox width must be >= 0, got -3");
    expect_skipped("{" IMG ", \"annotations\": [{\"id\": 5, \"image_id\": 1,"
                   " \"segmentation\": {\"counts\": [1, 2],"
                   " \"size\": [2, 2]}}]}",
                   "annotations[0].segmentation.counts: the runs cover 3 "
                   "pixels, but size [2, 2] has 4");
    expect_skipped("{" IMG ", \"annotations\": [{\"id\": 5, \"image_id\": 1}]}",
                   "annotations[0]: has neither a segmentation (rings or RLE) "
                   "nor a bbox");
    expect_skipped("{" IMG ", \"annotations\": [{\"image_id\": 1}]}",
                   "annotations[0].id: must be a number or a string, got "
                   "nothing");
    expect_skipped("{\"images\": [{\"id\": 1}, 3], \"annotations\": []}",
                   "images[1]: must be an object, got 3");
    expect_skipped("{\"images\": [{\"id\": 1}, {\"id\": 1.0}],"
                   " \"annotations\": []}",
                   "images[1].id: makes the object id of images[0] again");
    expect_skipped("{\"images\": [{\"id\": 1, \"width\": -4}],"
                   " \"annotations\": []}",
                   "images[0].width: must be a non-negative integer, got -4");
    expect_skipped("{\"images\": [{\"id\": 1, \"attrs.x\": 1}],"
                   " \"annotations\": []}",
                   "images[0]: field name \"attrs.x\" is reserved: write attrs "
                   "keys inside \"attrs\"");
    expect_skipped("{\"images\": [{\"id\": \"a b\"}], \"annotations\": []}",
                   "images[0].id: \"a b\" makes no valid object id (1 to 64 "
                   "printable ASCII characters, not starting with '@')");
}

/* Expects coco_import() to fail with a message that contains expected. */
static void expect_import_error(const char *text, const char *prefix,
                                const char *expected)
{
    char err[PROTO_ERR_MAX] = "";
    json_t *coco = parse(text), *ops = (json_t *)1, *skipped = (json_t *)1;

    assert_int_equal(coco_import(coco, prefix, &ops, &skipped, err,
                                 sizeof(err)),
                     -EINVAL);
    assert_null(ops);
    assert_null(skipped);
    if (strstr(err, expected) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err, expected);
    json_decref(coco);
}

static void bad_input_is_an_error(void **state)
{
    expect_import_error("[]", NULL, "not COCO instances JSON");
    expect_import_error("{\"images\": []}", NULL, "not COCO instances JSON");
    expect_import_error("{\"images\": {}, \"annotations\": []}", NULL,
                        "not COCO instances JSON");
    expect_import_error("{\"images\": [], \"annotations\": [],"
                        " \"categories\": 3}",
                        NULL, "categories: must be an array, got 3");
    expect_import_error("{\"images\": [], \"annotations\": []}", "@srv:",
                        "prefix: \"@srv:\" makes no valid object ids");
    expect_import_error("{\"images\": [], \"annotations\": []}", "a b",
                        "prefix: \"a b\"");
}

/* Exports objects given as JSON and checks the result and the ids and
 * reasons of the skipped objects. */
static void expect_export(const char *objects, const char *coco,
                          const char *skipped_text)
{
    char err[PROTO_ERR_MAX] = "";
    json_t *in = parse(objects), *want = parse(coco), *out, *skipped;
    json_t *want_skipped = parse(skipped_text), *got_skipped = json_array();
    const json_t *s;
    size_t i;

    if (coco_export(in, &out, &skipped, err, sizeof(err)) != 0)
        fail_msg("export failed: %s", err);
    assert_same_json(out, want, "export");
    json_array_foreach (skipped, i, s)
        json_array_append_new(got_skipped,
                              json_pack("[OO]", json_object_get(s, "id"),
                                        json_object_get(s, "reason")));
    assert_same_json(got_skipped, want_skipped, "skipped");
    json_decref(in);
    json_decref(want);
    json_decref(out);
    json_decref(skipped);
    json_decref(want_skipped);
    json_decref(got_skipped);
}

static void export_computes_missing_values(void **state)
{
    expect_export(
        "[{\"id\": \"i\", \"kind\": \"item\", \"fields\": {\"width\": 4}},"
        " {\"id\": \"c\", \"kind\": \"category\","
        "  \"fields\": {\"name\": \"dog\"}},"
        " {\"id\": \"p\", \"kind\": \"polygon\", \"fields\": {\"item\": \"i\","
        "  \"label\": \"dog\", \"geometry\": [[1, 1, 3.5, 1, 3.5, 3]]}},"
        " {\"id\": \"m\", \"kind\": \"mask\", \"fields\": {\"item\": \"i\","
        "  \"label\": \"dog\", \"geometry\": {\"counts\": [5, 2, 3, 2, 0],"
        "  \"size\": [3, 4]}}},"
        " {\"id\": \"n\", \"kind\": \"mask\", \"fields\": {\"item\": \"i\","
        "  \"label\": \"dog\", \"geometry\": {\"counts\": \"5230M\","
        "  \"size\": [3, 4]}}},"
        " {\"id\": \"b\", \"kind\": \"bbox\", \"fields\": {\"item\": \"i\","
        "  \"label\": \"dog\", \"geometry\": [0, 0, 1.5, 2], \"score\": 0.5}}]",
        "{\"images\": [{\"id\": 1, \"width\": 4}],"
        " \"annotations\": ["
        "  {\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"area\": 3,"
        "   \"bbox\": [0, 0, 1.5, 2], \"iscrowd\": 0, \"score\": 0.5},"
        "  {\"id\": 2, \"image_id\": 1, \"category_id\": 1,"
        "   \"segmentation\": {\"counts\": [5, 2, 3, 2, 0], \"size\": [3, 4]},"
        "   \"area\": 4, \"bbox\": [1, 0, 3, 3], \"iscrowd\": 1},"
        "  {\"id\": 3, \"image_id\": 1, \"category_id\": 1,"
        "   \"segmentation\": {\"counts\": \"5230M\", \"size\": [3, 4]},"
        "   \"area\": 4, \"bbox\": [1, 0, 3, 3], \"iscrowd\": 1},"
        "  {\"id\": 4, \"image_id\": 1, \"category_id\": 1,"
        "   \"segmentation\": [[1, 1, 3.5, 1, 3.5, 3]], \"area\": 2.5,"
        "   \"bbox\": [1, 1, 2.5, 2], \"iscrowd\": 0}],"
        " \"categories\": [{\"id\": 1, \"name\": \"dog\"}]}",
        "[]");
}

static void export_lists_inexpressible_objects(void **state)
{
    expect_export(
        "[{\"id\": \"d1\", \"kind\": \"tag\", \"fields\": {\"coco_info\": 1}},"
        " {\"id\": \"d2\", \"kind\": \"tag\","
        "  \"fields\": {\"coco_extra\": {}}},"
        " {\"id\": \"t\", \"kind\": \"tag\", \"fields\": {}},"
        " {\"id\": \"e\", \"kind\": \"ellipse\", \"fields\": {}},"
        " {\"id\": \"i1\", \"kind\": \"item\", \"fields\": {\"coco_id\": 3}},"
        " {\"id\": \"i2\", \"kind\": \"item\", \"fields\": {\"coco_id\": 3.0}},"
        " {\"id\": \"x\", \"kind\": \"bbox\", \"fields\": {\"item\": \"nope\","
        "  \"geometry\": [0, 0, 1, 1]}},"
        " {\"id\": \"y\", \"kind\": \"bbox\", \"fields\": {\"item\": \"i1\","
        "  \"label\": \"cow\", \"geometry\": [0, 0, 1, 1]}},"
        " {\"id\": \"z\", \"kind\": \"mask\", \"fields\": {\"item\": \"i1\","
        "  \"category_id\": \"7\", \"geometry\": {\"counts\": \"1\","
        "  \"size\": [2, 2]}}},"
        " {\"id\": \"c\", \"kind\": \"category\","
        "  \"fields\": {\"coco_id\": 7}}]",
        "{\"info\": 1, \"images\": [{\"id\": 3}], \"annotations\": [],"
        " \"categories\": [{\"id\": 7}]}",
        "[[\"e\", \"kind ellipse has no COCO instances form\"],"
        " [\"t\", \"kind tag has no COCO instances form\"],"
        " [\"d2\", \"a second COCO dataset tag; info and licenses are taken "
        "from d1\"],"
        " [\"i2\", \"coco_id 3 is also the COCO id of i1\"],"
        " [\"x\", \"its item \\\"nope\\\" is not an exported item object\"],"
        " [\"y\", \"neither its label \\\"cow\\\" nor its category_id "
        "undefined names an exported category\"],"
        " [\"z\", \"its geometry is not a valid COCO RLE: RLE runs add up "
        "to 1 pixels, but size 2x2 has 4\"]]");
}

static void export_sorts_and_fills_ids(void **state)
{
    expect_export(
        "[{\"id\": \"a\", \"kind\": \"item\", \"fields\": {}},"
        " {\"id\": \"b\", \"kind\": \"item\","
        "  \"fields\": {\"coco_id\": \"s\"}},"
        " {\"id\": \"c\", \"kind\": \"item\", \"fields\": {\"coco_id\": 10}},"
        " {\"id\": \"d\", \"kind\": \"item\", \"fields\": {\"coco_id\": 2.5}},"
        " {\"id\": \"e\", \"kind\": \"item\", \"fields\": {}}]",
        "{\"images\": [{\"id\": 2.5}, {\"id\": 10}, {\"id\": 11}, {\"id\": 12},"
        " {\"id\": \"s\"}], \"annotations\": [], \"categories\": []}",
        "[]");
}

static void numbers_keep_their_type(void **state)
{
    json_t *skipped, *back, *skipped_back, *ops = import_ok(
        "{\"images\": [{\"id\": 1, \"width\": 640}],"
        " \"categories\": [{\"id\": 2, \"name\": \"a\"}],"
        " \"annotations\": [{\"id\": 3, \"image_id\": 1, \"category_id\": 2,"
        "  \"bbox\": [0.1, 3.0, 1e-300, 1.7976931348623157e308],"
        "  \"area\": 191.0, \"iscrowd\": 0}]}",
        &skipped);
    json_t *want = parse("[0.1, 3.0, 1e-300, 1.7976931348623157e308]");
    char err[PROTO_ERR_MAX] = "";
    const json_t *ann;
    obj_t **objs;
    size_t n;

    objs = store_ops(ops, &n);
    assert_int_equal(coco_export_objs((const obj_t *const *)objs, n, &back,
                                      &skipped_back, err, sizeof(err)),
                     0);
    ann = json_array_get(json_object_get(back, "annotations"), 0);
    assert_same_json(json_object_get(ann, "bbox"), want, "bbox");
    assert_true(json_is_real(json_object_get(ann, "area")));
    assert_true(json_is_integer(json_object_get(ann, "iscrowd")));
    free_objs(objs, n);
    json_decref(ops);
    json_decref(skipped);
    json_decref(back);
    json_decref(skipped_back);
    json_decref(want);
}

static void bad_export_input_is_an_error(void **state)
{
    char err[PROTO_ERR_MAX] = "";
    json_t *in = parse("[{\"id\": \"a\", \"kind\": \"item\"}, {\"id\": 3}]");
    json_t *out = (json_t *)1, *skipped = (json_t *)1;

    assert_int_equal(coco_export(in, &out, &skipped, err, sizeof(err)),
                     -EINVAL);
    assert_null(out);
    assert_null(skipped);
    assert_non_null(
        strstr(err, "objects[1]: must be an object with string id"));
    json_decref(in);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(coco_val2014_round_trips),
        cmocka_unit_test(labelme_coco_round_trips),
        cmocka_unit_test(import_maps_like_coco_js),
        cmocka_unit_test(ids_match_javascript_strings),
        cmocka_unit_test(bad_elements_are_skipped),
        cmocka_unit_test(bad_input_is_an_error),
        cmocka_unit_test(export_computes_missing_values),
        cmocka_unit_test(export_lists_inexpressible_objects),
        cmocka_unit_test(export_sorts_and_fills_ids),
        cmocka_unit_test(numbers_keep_their_type),
        cmocka_unit_test(bad_export_input_is_an_error),
    };

    if (argc > 1)
        data_dir = argv[1];
    if (argc > 2)
        labelme_file = argv[2];
    return cmocka_run_group_tests(tests, NULL, NULL);
}
