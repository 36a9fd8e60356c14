/*
 * COCO instances JSON to create ops and back, with the object mapping of
 * client-js/src/coco.js. Where the JavaScript code relies on JavaScript's
 * value semantics (String() of ids, Map keys, number output), the helpers
 * below state the rule they reproduce. No I/O and no logging.
 */
#include "coco.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define SHOWN_MAX 64  /* bytes of a value quoted in a message */
#define WHERE_MAX 48  /* bytes of a path such as "annotations[123]" */
#define NUMBER_MAX 64 /* bytes of a number written as JavaScript does */
#define DIGITS_MAX 24 /* bytes of the digits of a double, 17 at most */

/* Integral doubles below INT_LIMIT are written as JSON integers, and
 * below SAFE_LIMIT (2^53) they are exact. */
#define INT_LIMIT 9.2e18
#define SAFE_LIMIT 9007199254740992.0

static const char *const top_level[] = {"info", "licenses", "images",
                                        "annotations", "categories", NULL};

/* Fields of an annotation object that export writes itself. */
static const char *const annotation_internal[] = {
    "item", "label", "coco_id", "geometry", "category_id", "bbox", "area",
    "iscrowd", "segmentation", NULL};

/* ---- JavaScript value rules ---- */

static int in_list(const char *const *names, const char *name)
{
    size_t i;

    for (i = 0; names[i] != NULL; i++) {
        if (strcmp(names[i], name) == 0)
            return 1;
    }
    return 0;
}

/* Returns 1 for what coco.js counts as a number: an integer or a finite
 * real. */
static int is_number(const json_t *j)
{
    return json_is_integer(j) ||
           (json_is_real(j) && isfinite(json_real_value(j)));
}

static double number_of(const json_t *j)
{
    return json_number_value(j);
}

/* Writes d as JavaScript's Number.prototype.toString() does: the fewest
 * digits that read back as d, in plain notation from 1e-6 to below 1e21. */
static void js_number(double d, char *out, size_t outlen)
{
    char tmp[DIGITS_MAX + 8], digits[DIGITS_MAX];
    const char *p, *sign = d < 0 ? "-" : "";
    int prec, k = 0, n;

    if (d == 0) {
        snprintf(out, outlen, "0");
        return;
    }
    for (prec = 1; prec < 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, fabs(d));
    for (p = tmp; *p != 'e' && k < DIGITS_MAX - 1; p++) {
        if (*p != '.')
            digits[k++] = *p;
    }
    digits[k] = '\0';
    n = atoi(strchr(tmp, 'e') + 1) + 1; /* d = 0.DIGITS x 10^n */

    if (k <= n && n <= 21) /* 1234000 */
        snprintf(out, outlen, "%s%s%.*s", sign, digits, n - k,
                 "000000000000000000000");
    else if (0 < n && n <= 21) /* 12.34 */
        snprintf(out, outlen, "%s%.*s.%s", sign, n, digits, digits + n);
    else if (-6 < n && n <= 0) /* 0.001234 */
        snprintf(out, outlen, "%s0.%.*s%s", sign, -n, "000000", digits);
    else /* 1.234e+25 */
        snprintf(out, outlen, "%s%c%s%se%c%d", sign, digits[0],
                 k > 1 ? "." : "", digits + 1, n - 1 < 0 ? '-' : '+',
                 abs(n - 1));
}

/* A growing string. */
typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} text_t;

static void text_add(text_t *t, const char *s)
{
    size_t n = strlen(s);

    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = (t->len + n + 1) * 2;
        char *s2 = realloc(t->s, cap);

        if (s2 == NULL) {
            t->failed = 1;
            return;
        }
        t->s = s2;
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, n + 1);
    t->len += n;
}

static void js_string_add(text_t *t, const json_t *j)
{
    char num[NUMBER_MAX];
    json_t *v;
    size_t i;

    if (j == NULL) {
        text_add(t, "undefined");
    } else if (json_is_string(j)) {
        text_add(t, json_string_value(j));
    } else if (json_is_integer(j)) {
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(j));
        text_add(t, num);
    } else if (json_is_real(j)) {
        js_number(json_real_value(j), num, sizeof(num));
        text_add(t, num);
    } else if (json_is_array(j)) {
        /* Array.prototype.join: null elements are empty. */
        json_array_foreach (j, i, v) {
            if (i > 0)
                text_add(t, ",");
            if (!json_is_null(v))
                js_string_add(t, v);
        }
    } else if (json_is_object(j)) {
        text_add(t, "[object Object]");
    } else {
        text_add(t, json_is_null(j) ? "null" : json_is_true(j) ? "true"
                                                                : "false");
    }
}

/* Returns String(j) of JavaScript as a new string (j NULL is undefined),
 * or NULL on allocation failure. */
static char *js_string(const json_t *j)
{
    text_t t = {NULL, 0, 0, 0};

    text_add(&t, "");
    js_string_add(&t, j);
    if (t.failed) {
        free(t.s);
        return NULL;
    }
    return t.s;
}

/* Writes a key that two values share exactly when a JavaScript Map holding
 * values parsed by the lossless JSON codec treats them as the same key.
 * Integral reals, arrays and objects are distinct objects there and match
 * nothing: returns 0 for them, else 1. j NULL is undefined. */
static int map_key(const json_t *j, char *buf, size_t buflen)
{
    if (j == NULL)
        snprintf(buf, buflen, "u");
    else if (json_is_null(j))
        snprintf(buf, buflen, "n");
    else if (json_is_boolean(j))
        snprintf(buf, buflen, json_is_true(j) ? "t" : "f");
    else if (json_is_integer(j))
        snprintf(buf, buflen, "i%" JSON_INTEGER_FORMAT, json_integer_value(j));
    else if (json_is_real(j) &&
             json_real_value(j) != floor(json_real_value(j)))
        snprintf(buf, buflen, "r%.17g", json_real_value(j));
    else
        return 0;
    return 1;
}

/* Returns a computed number as JavaScript would write it and the lossless
 * codec read it back: an integer when integral, else a real. JavaScript
 * writes integral doubles from 2^53 on with their shortest digits and
 * zeros after them, which read back as a different integer. */
static json_t *number_json(double d)
{
    char text[NUMBER_MAX], *end;
    long long v;

    if (!isfinite(d))
        return json_null(); /* as JSON.stringify writes it */
    if (d != floor(d) || fabs(d) >= INT_LIMIT)
        return json_real(d);
    if (fabs(d) < SAFE_LIMIT)
        return json_integer((json_int_t)d);
    js_number(d, text, sizeof(text));
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return json_real(d);
    return json_integer(v);
}

/* Sorts n pointers stably by cmp, using tmp (n slots). */
static void sort_stable(void **a, void **tmp, size_t n,
                        int (*cmp)(const void *, const void *))
{
    size_t mid = n / 2, i = 0, j = mid, k = 0;

    if (n < 2)
        return;
    sort_stable(a, tmp, mid, cmp);
    sort_stable(a + mid, tmp, n - mid, cmp);
    while (i < mid && j < n)
        tmp[k++] = cmp(a[j], a[i]) < 0 ? a[j++] : a[i++];
    while (i < mid)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof(*a));
}

static int sort_pointers(void **a, size_t n,
                         int (*cmp)(const void *, const void *))
{
    void **tmp = malloc((n ? n : 1) * sizeof(*tmp));

    if (tmp == NULL)
        return -ENOMEM;
    sort_stable(a, tmp, n, cmp);
    free(tmp);
    return 0;
}

/* ---- import ---- */

typedef struct {
    const char *prefix;
    json_t *ops;     /* create ops */
    json_t *skipped; /* {where, id?, reason} */
    json_t *taken;   /* object id -> where of the element that made it */
    json_t *names;   /* String(category id) -> [name], or [] without name */
    char reason[PROTO_ERR_MAX];
} import_t;

/* Appends a skipped entry with ctx->reason. Returns 0 or -ENOMEM. */
static int skip(import_t *ctx, const char *where, const char *id)
{
    json_t *entry = json_pack("{s:s}", "where", where);

    if (entry == NULL ||
        (id != NULL &&
         json_object_set_new(entry, "id", json_string(id)) < 0) ||
        json_object_set_new(entry, "reason", json_string(ctx->reason)) < 0 ||
        json_array_append_new(ctx->skipped, entry) < 0)
        return -ENOMEM;
    return 0;
}

/* Writes the object id PREFIX INFIX String(value) into id. Returns 0,
 * -EINVAL with ctx->reason when it is no valid object id, or -ENOMEM. */
static int make_id(import_t *ctx, const char *infix, const json_t *value,
                   const char *where, char *id, size_t idlen)
{
    char *s = js_string(value), shown[SHOWN_MAX];
    int n;

    if (s == NULL)
        return -ENOMEM;
    n = snprintf(id, idlen, "%s%s%s", ctx->prefix, infix, s);
    free(s);
    if (n > 0 && (size_t)n < idlen &&
        proto_token_valid(id, (size_t)n, PROTO_ID_MAX) && id[0] != '@')
        return 0;
    return proto_fail(ctx->reason, sizeof(ctx->reason), -EINVAL,
                      "%s.id: %s makes no valid object id (1 to %d printable "
                      "ASCII characters, not starting with '@')",
                      where, proto_json_describe(value, shown, sizeof(shown)),
                      PROTO_ID_MAX);
}

/* Checks that element is an object whose "id" is a number or a string and
 * writes its object id. Returns 0, -EINVAL with ctx->reason, or -ENOMEM. */
static int element_id(import_t *ctx, const json_t *element, const char *infix,
                      const char *where, char *id, size_t idlen)
{
    const json_t *value = json_object_get(element, "id");
    char shown[SHOWN_MAX];

    if (!json_is_object(element))
        return proto_fail(ctx->reason, sizeof(ctx->reason), -EINVAL,
                          "%s: must be an object, got %s", where,
                          proto_json_describe(element, shown, sizeof(shown)));
    if (!is_number(value) && !json_is_string(value))
        return proto_fail(ctx->reason, sizeof(ctx->reason), -EINVAL,
                          "%s.id: must be a number or a string, got %s",
                          where,
                          proto_json_describe(value, shown, sizeof(shown)));
    return make_id(ctx, infix, value, where, id, idlen);
}

/* Writes the merge's message about an object made from the element at
 * where into ctx->reason. A message that starts with a field path gets
 * where in front, "geometry" becoming member; others follow "where: ". */
static void reason_from_merge(import_t *ctx, const char *where,
                              const char *member, const char *msg)
{
    size_t glen = strlen("geometry"), n = strspn(msg, "abcdefghijklmnopqrstu"
                                                      "vwxyzABCDEFGHIJKLMNOP"
                                                      "QRSTUVWXYZ0123456789_");

    if (member != NULL && strncmp(msg, "geometry", glen) == 0)
        proto_fail(ctx->reason, sizeof(ctx->reason), -EINVAL, "%s.%s%s",
                   where, member, msg + glen);
    else if (n > 0 && msg[n] != '\0' && strchr(":.[", msg[n]) != NULL)
        proto_fail(ctx->reason, sizeof(ctx->reason), -EINVAL, "%s.%s", where,
                   msg);
    else
        proto_fail(ctx->reason, sizeof(ctx->reason), -EINVAL, "%s: %s", where,
                   msg);
}

/* Applies the create as the server would, to an empty room with no
 * schema, so that every op that import makes applies. Returns 0, -EINVAL
 * with ctx->reason, or -ENOMEM. member names the element's member that
 * became "geometry". */
static int check_object(import_t *ctx, const char *id, const char *kind,
                        json_t *fields, const char *where, const char *member)
{
    op_result_t res;
    obj_t *next = NULL;
    op_t op;
    int rc;

    op_init(&op);
    op_result_init(&res);
    op.type = OP_CREATE;
    op.id = strdup(id);
    op.kind = strdup(kind);
    op.fields = json_incref(fields);
    rc = op.id != NULL && op.kind != NULL ? 0 : -ENOMEM;
    if (rc == 0)
        rc = obj_apply(NULL, &op, "coco", &next, &res);
    if (rc == 0 && res.status != RES_APPLIED) {
        reason_from_merge(ctx, where, member, res.message);
        rc = -EINVAL;
    }
    obj_free(next);
    op_result_clear(&res);
    op_clear(&op);
    return rc;
}

/* Appends a create op, or a skipped entry when the object is invalid or
 * its id is taken. Steals fields. Returns 0 or -ENOMEM. */
static int add_op(import_t *ctx, const char *where, const char *id,
                  const char *kind, json_t *fields, const char *member)
{
    const char *first = json_string_value(json_object_get(ctx->taken, id));
    json_t *op;
    int rc;

    if (fields == NULL)
        return -ENOMEM;
    if (first != NULL) {
        json_decref(fields);
        snprintf(ctx->reason, sizeof(ctx->reason),
                 "%s.id: makes the object id of %s again", where, first);
        return skip(ctx, where, id);
    }
    rc = check_object(ctx, id, kind, fields, where, member);
    if (rc < 0) {
        json_decref(fields);
        return rc == -EINVAL ? skip(ctx, where, id) : rc;
    }
    op = json_pack("{s:s,s:s,s:s,s:o}", "op", "create", "id", id, "kind",
                   kind, "fields", fields);
    if (op == NULL || json_array_append_new(ctx->ops, op) < 0 ||
        json_object_set_new(ctx->taken, id, json_string(where)) < 0)
        return -ENOMEM;
    return 0;
}

/* Copies the members of element except the named ones into fields. */
static int copy_members(json_t *fields, const json_t *element,
                        const char *const *except)
{
    const char *key;
    json_t *value;

    json_object_foreach ((json_t *)element, key, value) {
        if (!in_list(except, key) && json_object_set(fields, key, value) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int import_dataset(import_t *ctx, const json_t *coco)
{
    json_t *fields = json_object(), *extra = json_object();
    char id[PROTO_ID_MAX + 8];

    if (fields == NULL || extra == NULL ||
        (json_object_get(coco, "info") != NULL &&
         json_object_set(fields, "coco_info",
                         json_object_get(coco, "info")) < 0) ||
        (json_object_get(coco, "licenses") != NULL &&
         json_object_set(fields, "coco_licenses",
                         json_object_get(coco, "licenses")) < 0) ||
        copy_members(extra, coco, top_level) < 0 ||
        (json_object_size(extra) > 0 &&
         json_object_set(fields, "coco_extra", extra) < 0)) {
        json_decref(fields);
        json_decref(extra);
        return -ENOMEM;
    }
    json_decref(extra);
    snprintf(id, sizeof(id), "%sdataset", ctx->prefix);
    if (json_object_size(fields) == 0) {
        json_decref(fields);
        return 0;
    }
    return add_op(ctx, "dataset", id, "tag", fields, NULL);
}

/* Makes the op of a category or image: every member but "id" as a field,
 * then "coco_id". */
static int import_element(import_t *ctx, const json_t *element,
                          const char *infix, const char *kind,
                          const char *where)
{
    static const char *const id_only[] = {"id", NULL};
    char id[PROTO_ID_MAX + 8];
    json_t *fields;
    int rc = element_id(ctx, element, infix, where, id, sizeof(id));

    if (rc < 0)
        return rc == -EINVAL ? skip(ctx, where, NULL) : rc;
    fields = json_object();
    if (fields == NULL || copy_members(fields, element, id_only) < 0 ||
        json_object_set(fields, "coco_id", json_object_get(element, "id")) <
            0) {
        json_decref(fields);
        return -ENOMEM;
    }
    return add_op(ctx, where, id, kind, fields, NULL);
}

/* Remembers a category's name under String(id), the last one winning, as
 * a JavaScript Map does. */
static int remember_name(import_t *ctx, const json_t *category)
{
    const json_t *name = json_object_get(category, "name");
    char *key = js_string(json_object_get(category, "id"));
    json_t *entry = name != NULL ? json_pack("[O]", name) : json_array();
    int rc = -ENOMEM;

    if (key != NULL && entry != NULL)
        rc = json_object_set_new_nocheck(ctx->names, key, entry) < 0 ? -ENOMEM
                                                                     : 0;
    else
        json_decref(entry);
    free(key);
    return rc;
}

static int import_categories(import_t *ctx, const json_t *categories)
{
    char where[WHERE_MAX], id[PROTO_ID_MAX + 8];
    const json_t *category;
    size_t i;
    int rc;

    json_array_foreach (categories, i, category) {
        snprintf(where, sizeof(where), "categories[%zu]", i);
        rc = element_id(ctx, category, "cat:", where, id, sizeof(id));
        if (rc == 0)
            rc = remember_name(ctx, category);
        if (rc == -ENOMEM)
            return rc;
        rc = import_element(ctx, category, "cat:", "category", where);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int is_ring_list(const json_t *seg)
{
    const json_t *ring;
    size_t i;

    if (!json_is_array(seg) || json_array_size(seg) == 0)
        return 0;
    json_array_foreach (seg, i, ring) {
        if (!json_is_array(ring))
            return 0;
    }
    return 1;
}

static int is_rle(const json_t *seg)
{
    return json_is_object(seg) && json_object_get(seg, "counts") != NULL &&
           json_object_get(seg, "size") != NULL;
}

/* Checks an annotation's bbox member, when present and not null: 4 finite
 * numbers. Returns 0 or -EINVAL with ctx->reason. */
static int check_bbox(import_t *ctx, const json_t *bbox, const char *where)
{
    char shown[SHOWN_MAX];
    const json_t *v;
    size_t i;

    if (bbox == NULL || json_is_null(bbox))
        return 0;
    if (!json_is_array(bbox))
        return proto_fail(ctx->reason, sizeof(ctx->reason), -EINVAL,
                          "%s.bbox: must be 4 numbers [x, y, width, height], "
                          "got %s",
                          where,
                          proto_json_describe(bbox, shown, sizeof(shown)));
    if (json_array_size(bbox) != 4)
        return proto_fail(ctx->reason, sizeof(ctx->reason), -EINVAL,
                          "%s.bbox: must be 4 numbers, got %zu", where,
                          json_array_size(bbox));
    json_array_foreach (bbox, i, v) {
        if (!is_number(v))
            return proto_fail(ctx->reason, sizeof(ctx->reason), -EINVAL,
                              "%s.bbox[%zu]: must be a finite number, got %s",
                              where, i,
                              proto_json_describe(v, shown, sizeof(shown)));
    }
    return 0;
}

/* Builds the fields of an annotation: item, label, the other members,
 * coco_id and geometry, in that order. Returns them or NULL. */
static json_t *annotation_fields(import_t *ctx, const json_t *ann,
                                 const json_t *geometry, int consumes_seg)
{
    static const char *const plain[] = {"id", "image_id", NULL};
    static const char *const with_seg[] = {"id", "image_id", "segmentation",
                                           NULL};
    char *item = js_string(json_object_get(ann, "image_id"));
    char *key = js_string(json_object_get(ann, "category_id"));
    json_t *fields = json_object(), *name;
    int ok = item != NULL && key != NULL && fields != NULL;

    if (ok)
        ok = json_object_set_new(fields, "item",
                                 json_sprintf("%simg:%s", ctx->prefix,
                                              item)) == 0;
    name = json_array_get(json_object_get(ctx->names, ok ? key : ""), 0);
    if (ok && name != NULL)
        ok = json_object_set(fields, "label", name) == 0;
    if (ok)
        ok = copy_members(fields, ann, consumes_seg ? with_seg : plain) == 0 &&
             json_object_set(fields, "coco_id", json_object_get(ann, "id")) ==
                 0 &&
             json_object_set(fields, "geometry", (json_t *)geometry) == 0;
    free(item);
    free(key);
    if (!ok) {
        json_decref(fields);
        return NULL;
    }
    return fields;
}

static int import_annotation(import_t *ctx, const json_t *ann,
                             const char *where)
{
    const json_t *seg = json_object_get(ann, "segmentation");
    const json_t *bbox = json_object_get(ann, "bbox");
    const char *kind = "bbox", *member = "bbox";
    const json_t *geometry = bbox;
    char id[PROTO_ID_MAX + 8];
    int rc = element_id(ctx, ann, "ann:", where, id, sizeof(id));

    if (rc < 0)
        return rc == -EINVAL ? skip(ctx, where, NULL) : rc;
    if (is_ring_list(seg) || is_rle(seg)) {
        kind = is_rle(seg) ? "mask" : "polygon";
        member = "segmentation";
        geometry = seg;
    } else if (!json_is_array(bbox)) {
        snprintf(ctx->reason, sizeof(ctx->reason),
                 "%s: has neither a segmentation (rings or RLE) nor a bbox",
                 where);
        return skip(ctx, where, id);
    }
    if (check_bbox(ctx, bbox, where) < 0)
        return skip(ctx, where, id);
    return add_op(ctx, where, id, kind,
                  annotation_fields(ctx, ann, geometry, geometry == seg),
                  member);
}

static int import_list(import_t *ctx, const json_t *list, const char *name,
                       const char *infix, const char *kind)
{
    char where[WHERE_MAX];
    const json_t *element;
    size_t i;
    int rc;

    json_array_foreach (list, i, element) {
        snprintf(where, sizeof(where), "%s[%zu]", name, i);
        rc = infix != NULL ? import_element(ctx, element, infix, kind, where)
                           : import_annotation(ctx, element, where);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Checks the top level and the prefix. Returns 0 or -EINVAL with err. */
static int check_input(const json_t *coco, const char *prefix, char *err,
                       size_t errlen)
{
    const json_t *categories = json_object_get(coco, "categories");
    char shown[SHOWN_MAX];
    size_t n = strlen(prefix) + strlen("dataset");

    if (!json_is_object(coco) ||
        !json_is_array(json_object_get(coco, "images")) ||
        !json_is_array(json_object_get(coco, "annotations")))
        return proto_fail(err, errlen, -EINVAL,
                          "input is not COCO instances JSON: expected an "
                          "object with \"images\" and \"annotations\" arrays");
    if (categories != NULL && !json_is_array(categories))
        return proto_fail(err, errlen, -EINVAL,
                          "categories: must be an array, got %s",
                          proto_json_describe(categories, shown,
                                              sizeof(shown)));
    if (n > PROTO_ID_MAX || prefix[0] == '@' ||
        (prefix[0] != '\0' && !proto_token_valid(prefix, strlen(prefix),
                                                 PROTO_ID_MAX)))
        return proto_fail(err, errlen, -EINVAL,
                          "prefix: %s makes no valid object ids (printable "
                          "ASCII, not starting with '@', %d bytes at most "
                          "with the id)",
                          proto_quote(prefix, strlen(prefix), shown,
                                      sizeof(shown)),
                          PROTO_ID_MAX);
    return 0;
}

int coco_import(const json_t *coco, const char *prefix, json_t **ops,
                json_t **skipped, char *err, size_t errlen)
{
    import_t ctx = {.prefix = prefix != NULL ? prefix : COCO_PREFIX_DEFAULT};
    const json_t *categories = json_object_get(coco, "categories");
    int rc = check_input(coco, ctx.prefix, err, errlen);

    *ops = NULL;
    *skipped = NULL;
    if (rc < 0)
        return rc;
    ctx.ops = json_array();
    ctx.skipped = json_array();
    ctx.taken = json_object();
    ctx.names = json_object();
    rc = -ENOMEM;
    if (ctx.ops != NULL && ctx.skipped != NULL && ctx.taken != NULL &&
        ctx.names != NULL && import_dataset(&ctx, coco) == 0 &&
        import_categories(&ctx, categories) == 0 &&
        import_list(&ctx, json_object_get(coco, "images"), "images", "img:",
                    "item") == 0 &&
        import_list(&ctx, json_object_get(coco, "annotations"), "annotations",
                    NULL, NULL) == 0)
        rc = 0;
    json_decref(ctx.taken);
    json_decref(ctx.names);
    if (rc < 0) {
        json_decref(ctx.ops);
        json_decref(ctx.skipped);
        return proto_fail(err, errlen, rc, "out of memory");
    }
    *ops = ctx.ops;
    *skipped = ctx.skipped;
    return 0;
}

/* ---- export ---- */

/* One room object as export reads it. fields is never NULL. */
typedef struct {
    const char *id;
    const char *kind;
    const json_t *fields;
} entry_t;

/* A COCO element being built from an object. */
typedef struct {
    const entry_t *obj;
    json_t *element;  /* owned */
    int missing_id;   /* 1 when it has neither coco_id nor an id field */
} elem_t;

typedef struct {
    elem_t *v;
    size_t n;
} elems_t;

/* Objects of one COCO list, sorted by object id. */
typedef struct {
    const entry_t **v;
    size_t n;
} group_t;

typedef struct {
    json_t *skipped; /* {id, kind, reason} */
    group_t dataset, category, item, annotation;
    json_t *image_ids;  /* item object id -> COCO image id */
    json_t *by_name;    /* map_key(name) -> category id, or null if shared */
    json_t *cat_ids;    /* String(category id) -> true */
} export_t;

static int nullish(const json_t *j)
{
    return j == NULL || json_is_null(j);
}

static const char *show(const json_t *j, char *buf, size_t buflen)
{
    if (j == NULL) {
        snprintf(buf, buflen, "undefined");
        return buf;
    }
    return proto_json_describe(j, buf, buflen);
}

static int skip_object(export_t *ctx, const entry_t *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Lists e in ctx->skipped with the formatted reason. Returns 0 or
 * -ENOMEM. */
static int skip_object(export_t *ctx, const entry_t *e, const char *fmt, ...)
{
    char reason[PROTO_ERR_MAX];
    json_t *entry;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    entry = json_pack("{s:s,s:s,s:s}", "id", e->id, "kind", e->kind,
                      "reason", reason);
    if (entry == NULL || json_array_append_new(ctx->skipped, entry) < 0)
        return -ENOMEM;
    return 0;
}

/* Returns a new map key of j (see map_key()) in *key, or NULL when j
 * matches no other value. Returns 0 or -ENOMEM. */
static int value_key(const json_t *j, char **key)
{
    char buf[NUMBER_MAX];

    *key = NULL;
    if (json_is_string(j)) {
        size_t n = json_string_length(j);

        *key = malloc(n + 2);
        if (*key == NULL)
            return -ENOMEM;
        (*key)[0] = 's';
        memcpy(*key + 1, json_string_value(j), n + 1);
        return 0;
    }
    if (!map_key(j, buf, sizeof(buf)))
        return 0;
    *key = strdup(buf);
    return *key == NULL ? -ENOMEM : 0;
}

/* Orders COCO ids as coco.js does: numbers first by value, then the others
 * by their string form. */
static int compare_ids(const json_t *a, const json_t *b)
{
    int an = is_number(a), bn = is_number(b), rc = 0;
    char *sa, *sb;

    if (an && bn) {
        double d = number_of(a) - number_of(b);

        return d < 0 ? -1 : d > 0;
    }
    if (an != bn)
        return an ? -1 : 1;
    if (json_is_string(a) && json_is_string(b))
        return strcmp(json_string_value(a), json_string_value(b));
    sa = js_string(a);
    sb = js_string(b);
    if (sa != NULL && sb != NULL)
        rc = strcmp(sa, sb);
    free(sa);
    free(sb);
    return rc;
}

static int compare_elements(const void *a, const void *b)
{
    return compare_ids(json_object_get(a, "id"), json_object_get(b, "id"));
}

static int compare_entries(const void *a, const void *b)
{
    return strcmp(((const entry_t *)a)->id, ((const entry_t *)b)->id);
}

static int is_dataset(const entry_t *e)
{
    return strcmp(e->kind, "tag") == 0 &&
           (json_object_get(e->fields, "coco_info") != NULL ||
            json_object_get(e->fields, "coco_licenses") != NULL ||
            json_object_get(e->fields, "coco_extra") != NULL);
}

static int is_annotation_kind(const char *kind)
{
    return strcmp(kind, "bbox") == 0 || strcmp(kind, "polygon") == 0 ||
           strcmp(kind, "mask") == 0;
}

/* Sorts the entries by object id and sorts them into the groups. */
static int group_objects(export_t *ctx, const entry_t **order, size_t n)
{
    group_t *g;
    size_t i;

    if (sort_pointers((void **)order, n, compare_entries) < 0)
        return -ENOMEM;
    for (i = 0; i < n; i++) {
        const entry_t *e = order[i];

        if (strcmp(e->kind, "category") == 0)
            g = &ctx->category;
        else if (strcmp(e->kind, "item") == 0)
            g = &ctx->item;
        else if (is_annotation_kind(e->kind))
            g = &ctx->annotation;
        else if (is_dataset(e))
            g = &ctx->dataset;
        else if (skip_object(ctx, e, "kind %s has no COCO instances form",
                             e->kind) < 0)
            return -ENOMEM;
        else
            continue;
        g->v[g->n++] = e;
    }
    return 0;
}

/* Sets the top-level members kept by the first dataset tag. */
static int dataset_members(export_t *ctx, json_t *coco)
{
    const json_t *fields, *extra;
    const char *key;
    json_t *value;
    size_t i;

    if (ctx->dataset.n == 0)
        return 0;
    fields = ctx->dataset.v[0]->fields;
    extra = json_object_get(fields, "coco_extra");
    if ((json_object_get(fields, "coco_info") != NULL &&
         json_object_set(coco, "info", json_object_get(fields, "coco_info")) <
             0) ||
        (json_object_get(fields, "coco_licenses") != NULL &&
         json_object_set(coco, "licenses",
                         json_object_get(fields, "coco_licenses")) < 0))
        return -ENOMEM;
    json_object_foreach ((json_t *)extra, key, value) {
        if (!in_list(top_level, key) && json_object_set(coco, key, value) < 0)
            return -ENOMEM;
    }
    for (i = 1; i < ctx->dataset.n; i++) {
        if (skip_object(ctx, ctx->dataset.v[i],
                        "a second COCO dataset tag; info and licenses are "
                        "taken from %s",
                        ctx->dataset.v[0]->id) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* Starts an element: {"id": coco_id} with null standing in for a missing
 * id, which assign_ids() fills in. */
static int start_element(elem_t *el, const entry_t *e)
{
    const json_t *coco_id = json_object_get(e->fields, "coco_id");

    el->obj = e;
    el->missing_id = coco_id == NULL &&
                     json_object_get(e->fields, "id") == NULL;
    el->element = json_object();
    if (el->element == NULL ||
        json_object_set_new(el->element, "id",
                            coco_id ? json_incref((json_t *)coco_id)
                                    : json_null()) < 0)
        return -ENOMEM;
    return 0;
}

static void elems_free(elems_t *list)
{
    size_t i;

    for (i = 0; list->v != NULL && i < list->n; i++)
        json_decref(list->v[i].element);
    free(list->v);
    list->v = NULL;
    list->n = 0;
}

/* Gives elements without an id the next free ids and drops elements whose
 * id, as a string, repeats an earlier one. Returns 0 or -ENOMEM. */
static int assign_ids(export_t *ctx, elems_t *list)
{
    json_t *seen = json_object();
    double max = 0;
    size_t i, kept = 0;
    int rc = 0;

    for (i = 0; i < list->n; i++) {
        const json_t *id = json_object_get(list->v[i].element, "id");

        if (!list->v[i].missing_id && is_number(id) && number_of(id) > max)
            max = number_of(id);
    }
    for (i = 0; seen != NULL && rc == 0 && i < list->n; i++) {
        elem_t *el = &list->v[i];
        char *key = NULL;
        const char *first;

        if (el->missing_id) {
            max += 1;
            rc = json_object_set_new(el->element, "id", number_json(max));
        } else if ((key = js_string(json_object_get(el->element, "id"))) ==
                   NULL) {
            rc = -ENOMEM;
        } else if ((first = json_string_value(json_object_get(seen, key)))) {
            rc = skip_object(ctx, el->obj,
                             "coco_id %s is also the COCO id of %s", key,
                             first);
            json_decref(el->element);
            el->element = NULL;
        } else {
            rc = json_object_set_new_nocheck(seen, key,
                                             json_string(el->obj->id));
        }
        free(key);
        if (el->element != NULL)
            list->v[kept++] = *el;
    }
    for (; i < list->n; i++)
        list->v[kept++] = list->v[i];
    list->n = kept;
    json_decref(seen);
    return seen == NULL || rc < 0 ? -ENOMEM : 0;
}

/* Builds the elements of item or category objects: {id: coco_id,
 * ...fields}. */
static int export_elements(export_t *ctx, const group_t *g, elems_t *out)
{
    static const char *const coco_id_only[] = {"coco_id", NULL};
    size_t i;

    out->v = calloc(g->n ? g->n : 1, sizeof(*out->v));
    out->n = 0;
    if (out->v == NULL)
        return -ENOMEM;
    for (i = 0; i < g->n; i++) {
        elem_t *el = &out->v[out->n++];

        if (start_element(el, g->v[i]) < 0 ||
            copy_members(el->element, g->v[i]->fields, coco_id_only) < 0)
            return -ENOMEM;
    }
    return assign_ids(ctx, out);
}

/* Fills the lookups of image ids and categories from the kept elements. */
static int build_lookups(export_t *ctx, const elems_t *items,
                         const elems_t *cats)
{
    size_t i;

    for (i = 0; i < items->n; i++) {
        if (json_object_set(ctx->image_ids, items->v[i].obj->id,
                            json_object_get(items->v[i].element, "id")) < 0)
            return -ENOMEM;
    }
    for (i = 0; i < cats->n; i++) {
        const json_t *cat = cats->v[i].element;
        const json_t *id = json_object_get(cat, "id");
        char *name = NULL, *key = js_string(id);
        int rc = key != NULL ? value_key(json_object_get(cat, "name"), &name)
                             : -ENOMEM;

        /* A name shared by two categories resolves to none of them. */
        if (rc == 0 && name != NULL) {
            json_t *v = json_object_get(ctx->by_name, name)
                            ? json_null()
                            : json_incref((json_t *)id);

            rc = json_object_set_new_nocheck(ctx->by_name, name, v);
        }
        if (rc == 0)
            rc = json_object_set_new_nocheck(ctx->cat_ids, key, json_true());
        free(name);
        free(key);
        if (rc < 0)
            return -ENOMEM;
    }
    return 0;
}

/* Finds the category id of an annotation: the category named by its label,
 * else its category_id when a category has that id. *id is NULL when
 * none fits. Returns 0 or -ENOMEM. */
static int resolve_category(export_t *ctx, const json_t *fields,
                            const json_t **id)
{
    const json_t *cid = json_object_get(fields, "category_id");
    char *key = NULL;

    *id = NULL;
    if (value_key(json_object_get(fields, "label"), &key) < 0)
        return -ENOMEM;
    if (key != NULL)
        *id = json_object_get(ctx->by_name, key);
    free(key);
    if (*id != NULL && !json_is_null(*id))
        return 0;
    *id = NULL;
    if (cid == NULL)
        return 0;
    if ((key = js_string(cid)) == NULL)
        return -ENOMEM;
    if (json_object_get(ctx->cat_ids, key) != NULL)
        *id = cid;
    free(key);
    return 0;
}

/* What an annotation's geometry gives its COCO element. */
typedef struct {
    const json_t *segmentation; /* borrowed, NULL for none */
    json_t *bbox;               /* new reference, NULL when unknown */
    json_t *area;               /* new reference, NULL when unknown */
} shape_t;

static int is_box(const json_t *g)
{
    size_t i;

    if (!json_is_array(g) || json_array_size(g) != 4)
        return 0;
    for (i = 0; i < 4; i++) {
        if (!is_number(json_array_get(g, i)))
            return 0;
    }
    return 1;
}

static int is_ring(const json_t *ring)
{
    size_t i, n = json_array_size(ring);

    if (n < 6 || n % 2 != 0)
        return 0;
    for (i = 0; i < n; i++) {
        if (!is_number(json_array_get(ring, i)))
            return 0;
    }
    return 1;
}

static int is_ring_geometry(const json_t *g)
{
    const json_t *ring;
    size_t i;

    if (!is_ring_list(g))
        return 0;
    json_array_foreach (g, i, ring) {
        if (!is_ring(ring))
            return 0;
    }
    return 1;
}

static json_t *box_json(double x, double y, double w, double h)
{
    return json_pack("[oooo]", number_json(x), number_json(y), number_json(w),
                     number_json(h));
}

/* The box around every point of the rings. */
static json_t *rings_box(const json_t *rings)
{
    double min[2] = {INFINITY, INFINITY}, max[2] = {-INFINITY, -INFINITY};
    const json_t *ring;
    size_t i, j;

    json_array_foreach (rings, i, ring) {
        for (j = 0; j < json_array_size(ring); j++) {
            double v = number_of(json_array_get(ring, j));

            min[j % 2] = fmin(min[j % 2], v);
            max[j % 2] = fmax(max[j % 2], v);
        }
    }
    return box_json(min[0], min[1], max[0] - min[0], max[1] - min[1]);
}

/* Sum of the rings' areas by the shoelace formula, each ring's taken as
 * positive, with the operations in the order of coco.js so that the
 * double is the same. */
static double rings_area(const json_t *rings)
{
    const json_t *r;
    double total = 0;
    size_t i, k;

    json_array_foreach (rings, k, r) {
        size_t n = json_array_size(r);
        double twice = 0;

        for (i = 0; i < n; i += 2) {
            size_t j = (i + 2) % n;

            twice += number_of(json_array_get(r, i)) *
                         number_of(json_array_get(r, j + 1)) -
                     number_of(json_array_get(r, j)) *
                         number_of(json_array_get(r, i + 1));
        }
        total += fabs(twice) / 2;
    }
    return total;
}

/* Area and box of a mask, accumulated run by run as pycocotools computes
 * them: a run that spans columns covers every row between its ends. */
typedef struct {
    double height, total, area, pos;
    double min_x, min_y, max_x, max_y;
    size_t runs;
} rle_scan_t;

static void scan_run(rle_scan_t *st, double run)
{
    if (st->runs++ % 2 == 1 && run > 0) {
        double first = st->pos, last = st->pos + run - 1;
        double fx = floor(first / st->height), lx = floor(last / st->height);

        st->area += run;
        st->min_x = fmin(st->min_x, fx);
        st->max_x = fmax(st->max_x, lx);
        st->min_y = fmin(st->min_y, lx > fx ? 0 : fmod(first, st->height));
        st->max_y = fmax(st->max_y,
                         lx > fx ? st->height - 1 : fmod(last, st->height));
    }
    st->pos += run;
    st->total += run;
}

/* A count as rle.js accepts one: a safe non-negative integer, as any JSON
 * number. */
static int is_safe_count(const json_t *j)
{
    double v = is_number(j) ? number_of(j) : -1;

    return v >= 0 && v == floor(v) && v <= SAFE_LIMIT - 1;
}

/* Decodes the compressed counts string of pycocotools run by run, in
 * doubles as rle.js does. Returns NULL or why the string is invalid. */
static const char *scan_string(rle_scan_t *st, const char *text, size_t len,
                               char *why, size_t whylen)
{
    double prev[2] = {0, 0}, value, shift;
    char num[NUMBER_MAX];
    size_t pos = 0;
    int code, group;

    while (pos < len) {
        for (value = 0, shift = 1, code = 0x20; code & 0x20; shift *= 32) {
            if (pos >= len)
                return proto_fail(why, whylen, -EINVAL, "compressed RLE "
                                  "counts end inside a value at character "
                                  "%zu", pos), why;
            code = (unsigned char)text[pos] - 48;
            if (code < 0 || code > 63)
                return proto_fail(why, whylen, -EINVAL, "compressed RLE "
                                  "counts have an invalid character at %zu",
                                  pos), why;
            group = code & 0x1f;
            value += group * shift;
            pos++;
        }
        if (group & 0x10)
            value -= shift;
        if (st->runs > 2)
            value += prev[st->runs % 2];
        if (!(value >= 0 && value == floor(value) && value < SAFE_LIMIT)) {
            js_number(value, num, sizeof(num));
            return proto_fail(why, whylen, -EINVAL, "compressed RLE counts "
                              "decode to the invalid run length %s at run %zu",
                              num, st->runs), why;
        }
        prev[st->runs % 2] = value;
        scan_run(st, value);
    }
    return NULL;
}

/* Reads a mask's size and runs in either form and fills st. Returns NULL,
 * or why the mask is invalid in the words of rle.js. */
static const char *rle_scan(const json_t *rle, rle_scan_t *st, char *why,
                            size_t whylen)
{
    const json_t *size = json_object_get(rle, "size");
    const json_t *counts = json_object_get(rle, "counts");
    char a[NUMBER_MAX], b[NUMBER_MAX], c[NUMBER_MAX];
    const json_t *v;
    const char *bad;
    double width;
    size_t i;

    memset(st, 0, sizeof(*st));
    st->min_x = st->min_y = INFINITY;
    st->max_x = st->max_y = -INFINITY;
    if (json_array_size(size) != 2 || !is_safe_count(json_array_get(size, 0)) ||
        !is_safe_count(json_array_get(size, 1)))
        return "RLE size is not [height, width] of non-negative integers";
    st->height = number_of(json_array_get(size, 0));
    width = number_of(json_array_get(size, 1));
    if (json_is_string(counts)) {
        bad = scan_string(st, json_string_value(counts),
                          json_string_length(counts), why, whylen);
        if (bad != NULL)
            return bad;
    } else {
        json_array_foreach (counts, i, v) {
            if (!is_safe_count(v))
                break;
        }
        if (!json_is_array(counts) || i < json_array_size(counts))
            return "RLE counts are neither a list of non-negative integers "
                   "nor a compressed string";
        json_array_foreach (counts, i, v)
            scan_run(st, number_of(v));
    }
    if (st->total != st->height * width) {
        js_number(st->total, a, sizeof(a));
        js_number(st->height, b, sizeof(b));
        js_number(width, c, sizeof(c));
        proto_fail(why, whylen, -EINVAL,
                   "RLE runs add up to %s pixels, but size %sx%s has ", a, b,
                   c);
        js_number(st->height * width, a, sizeof(a));
        strncat(why, a, whylen - strlen(why) - 1);
        return why;
    }
    return NULL;
}

/* Area and box of a valid mask. */
static void rle_stats(const rle_scan_t *st, json_t **area, json_t **bbox)
{
    *area = number_json(st->area);
    *bbox = st->area == 0
                ? box_json(0, 0, 0, 0)
                : box_json(st->min_x, st->min_y, st->max_x - st->min_x + 1,
                           st->max_y - st->min_y + 1);
}

/* Fills shape from an annotation object, or returns why its geometry is
 * invalid. */
static const char *annotation_shape(const entry_t *e, shape_t *shape,
                                    char *reason, size_t reasonlen)
{
    const json_t *g = json_object_get(e->fields, "geometry");
    const json_t *bbox = json_object_get(e->fields, "bbox");
    char why[PROTO_ERR_MAX];
    const char *bad;
    rle_scan_t st;

    memset(shape, 0, sizeof(*shape));
    if (strcmp(e->kind, "bbox") == 0) {
        if (!is_box(g))
            return "its geometry is not a bbox [x, y, width, height]";
        shape->segmentation = json_object_get(e->fields, "segmentation");
        shape->bbox = json_incref((json_t *)g);
        shape->area = number_json(number_of(json_array_get(g, 2)) *
                                  number_of(json_array_get(g, 3)));
        return NULL;
    }
    if (strcmp(e->kind, "polygon") == 0) {
        if (!is_ring_geometry(g))
            return "its geometry is not a list of [x1, y1, x2, y2, ...] "
                   "rings";
        shape->segmentation = g;
        shape->bbox =
            nullish(bbox) ? rings_box(g) : json_incref((json_t *)bbox);
        shape->area = number_json(rings_area(g));
        return NULL;
    }
    if (!is_rle(g))
        return "its geometry is not an RLE object {counts, size}";
    if ((bad = rle_scan(g, &st, why, sizeof(why))) != NULL) {
        snprintf(reason, reasonlen, "its geometry is not a valid COCO RLE: %s",
                 bad);
        return reason;
    }
    shape->segmentation = g;
    rle_stats(&st, &shape->area, &shape->bbox);
    if (!nullish(bbox)) {
        json_decref(shape->bbox);
        shape->bbox = json_incref((json_t *)bbox);
    }
    return NULL;
}

/* Sets the geometry members of an element: segmentation, area, bbox,
 * iscrowd, then the other fields. Returns 0 or -ENOMEM. */
static int set_geometry(json_t *element, const entry_t *e, shape_t *shape)
{
    const json_t *area = json_object_get(e->fields, "area");
    const json_t *iscrowd = json_object_get(e->fields, "iscrowd");
    int mask = strcmp(e->kind, "mask") == 0;

    if (shape->segmentation != NULL &&
        json_object_set(element, "segmentation",
                        (json_t *)shape->segmentation) < 0)
        return -ENOMEM;
    if (!nullish(area)) {
        json_decref(shape->area);
        shape->area = json_incref((json_t *)area);
    }
    if ((shape->area != NULL &&
         json_object_set(element, "area", shape->area) < 0) ||
        (shape->bbox != NULL &&
         json_object_set(element, "bbox", shape->bbox) < 0) ||
        json_object_set_new(element, "iscrowd",
                            nullish(iscrowd)
                                ? json_integer(mask)
                                : json_incref((json_t *)iscrowd)) < 0 ||
        copy_members(element, e->fields, annotation_internal) < 0)
        return -ENOMEM;
    return 0;
}

/* Builds the element of an annotation object into el. Returns 0, 1 when
 * the object is skipped (el->element NULL), or -ENOMEM. */
static int annotation_element(export_t *ctx, const entry_t *e, elem_t *el)
{
    const json_t *item = json_object_get(e->fields, "item");
    const json_t *image_id = json_object_get(ctx->image_ids,
                                             json_is_string(item)
                                                 ? json_string_value(item)
                                                 : "");
    const json_t *category = NULL;
    char a[SHOWN_MAX], b[SHOWN_MAX], reason[PROTO_ERR_MAX];
    const char *bad;
    shape_t shape;
    int rc;

    el->element = NULL;
    if (!json_is_string(item) || image_id == NULL)
        return skip_object(ctx, e, "its item %s is not an exported item object",
                           show(item, a, sizeof(a))) < 0 ? -ENOMEM : 1;
    if (resolve_category(ctx, e->fields, &category) < 0)
        return -ENOMEM;
    if (category == NULL)
        return skip_object(ctx, e,
                           "neither its label %s nor its category_id %s names "
                           "an exported category",
                           show(json_object_get(e->fields, "label"), a,
                                sizeof(a)),
                           show(json_object_get(e->fields, "category_id"), b,
                                sizeof(b))) < 0 ? -ENOMEM : 1;
    if ((bad = annotation_shape(e, &shape, reason, sizeof(reason))) != NULL)
        return skip_object(ctx, e, "%s", bad) < 0 ? -ENOMEM : 1;

    rc = start_element(el, e);
    if (rc == 0 &&
        (json_object_set(el->element, "image_id", (json_t *)image_id) < 0 ||
         json_object_set(el->element, "category_id", (json_t *)category) < 0))
        rc = -ENOMEM;
    if (rc == 0)
        rc = set_geometry(el->element, e, &shape);
    bad = shape.area == NULL ? "area" : shape.bbox == NULL ? "bbox" : NULL;
    json_decref(shape.area);
    json_decref(shape.bbox);
    if (rc == 0 && bad != NULL) {
        json_decref(el->element);
        el->element = NULL;
        return skip_object(ctx, e,
                           "its %s is missing and cannot be computed from its "
                           "geometry",
                           bad) < 0 ? -ENOMEM : 1;
    }
    return rc;
}

static int export_annotations(export_t *ctx, elems_t *out)
{
    size_t i;
    int rc;

    out->v = calloc(ctx->annotation.n ? ctx->annotation.n : 1,
                    sizeof(*out->v));
    out->n = 0;
    if (out->v == NULL)
        return -ENOMEM;
    for (i = 0; i < ctx->annotation.n; i++) {
        rc = annotation_element(ctx, ctx->annotation.v[i], &out->v[out->n]);
        if (out->v[out->n].element != NULL)
            out->n++;
        if (rc < 0)
            return rc;
    }
    return assign_ids(ctx, out);
}

/* Sorts the elements by COCO id and moves them into coco[name]. */
static int set_list(json_t *coco, const char *name, elems_t *list)
{
    json_t **order = malloc((list->n ? list->n : 1) * sizeof(*order));
    json_t *array = json_array();
    size_t i;
    int rc = -ENOMEM;

    if (order != NULL && array != NULL) {
        for (i = 0; i < list->n; i++)
            order[i] = list->v[i].element;
        rc = sort_pointers((void **)order, list->n, compare_elements);
    }
    for (i = 0; rc == 0 && i < list->n; i++) {
        if (json_array_append(array, order[i]) < 0)
            rc = -ENOMEM;
    }
    if (rc == 0)
        rc = json_object_set(coco, name, array) < 0 ? -ENOMEM : 0;
    json_decref(array);
    free(order);
    return rc;
}

static int export_lists(export_t *ctx, json_t *coco)
{
    elems_t cats = {NULL, 0}, items = {NULL, 0}, anns = {NULL, 0};
    int rc = -ENOMEM;

    if (export_elements(ctx, &ctx->category, &cats) == 0 &&
        export_elements(ctx, &ctx->item, &items) == 0 &&
        build_lookups(ctx, &items, &cats) == 0 &&
        export_annotations(ctx, &anns) == 0 &&
        set_list(coco, "images", &items) == 0 &&
        set_list(coco, "annotations", &anns) == 0 &&
        set_list(coco, "categories", &cats) == 0)
        rc = 0;
    elems_free(&cats);
    elems_free(&items);
    elems_free(&anns);
    return rc;
}

static int export_entries(const entry_t *entries, size_t n, json_t **coco,
                          json_t **skipped, char *err, size_t errlen)
{
    export_t ctx = {0};
    const entry_t **v = calloc(5 * (n ? n : 1), sizeof(*v));
    json_t *out = json_object();
    size_t i;
    int rc = -ENOMEM;

    ctx.skipped = json_array();
    ctx.image_ids = json_object();
    ctx.by_name = json_object();
    ctx.cat_ids = json_object();
    if (v != NULL) {
        for (i = 0; i < n; i++)
            v[i] = &entries[i];
        ctx.dataset.v = v + n;
        ctx.category.v = v + 2 * n;
        ctx.item.v = v + 3 * n;
        ctx.annotation.v = v + 4 * n;
    }
    if (v != NULL && out != NULL && ctx.skipped != NULL &&
        ctx.image_ids != NULL && ctx.by_name != NULL && ctx.cat_ids != NULL &&
        group_objects(&ctx, v, n) == 0 && dataset_members(&ctx, out) == 0 &&
        export_lists(&ctx, out) == 0)
        rc = 0;
    free(v);
    json_decref(ctx.image_ids);
    json_decref(ctx.by_name);
    json_decref(ctx.cat_ids);
    if (rc < 0) {
        json_decref(out);
        json_decref(ctx.skipped);
        return proto_fail(err, errlen, rc, "out of memory");
    }
    *coco = out;
    *skipped = ctx.skipped;
    return 0;
}

/* Reads objects[i] into e. Returns 0 or -EINVAL with err. */
static int entry_from_json(const json_t *o, size_t i, const json_t *empty,
                           entry_t *e, char *err, size_t errlen)
{
    const json_t *fields = json_object_get(o, "fields");
    char shown[SHOWN_MAX];

    e->id = json_string_value(json_object_get(o, "id"));
    e->kind = json_string_value(json_object_get(o, "kind"));
    e->fields = nullish(fields) ? empty : fields;
    if (!json_is_object(o) || e->id == NULL || e->kind == NULL ||
        !json_is_object(e->fields))
        return proto_fail(err, errlen, -EINVAL,
                          "objects[%zu]: must be an object with string id and "
                          "kind and object fields, got %s",
                          i, proto_json_describe(o, shown, sizeof(shown)));
    return 0;
}

int coco_export(const json_t *objects, json_t **coco, json_t **skipped,
                char *err, size_t errlen)
{
    size_t i, n = json_array_size(objects);
    entry_t *entries = calloc(n ? n : 1, sizeof(*entries));
    json_t *empty = json_object();
    int rc = 0;

    *coco = NULL;
    *skipped = NULL;
    if (!json_is_array(objects))
        rc = proto_fail(err, errlen, -EINVAL,
                        "objects: must be an array of objects");
    else if (entries == NULL || empty == NULL)
        rc = proto_fail(err, errlen, -ENOMEM, "out of memory");
    for (i = 0; rc == 0 && i < n; i++)
        rc = entry_from_json(json_array_get(objects, i), i, empty,
                             &entries[i], err, errlen);
    if (rc == 0)
        rc = export_entries(entries, n, coco, skipped, err, errlen);
    free(entries);
    json_decref(empty);
    return rc;
}

int coco_export_objs(const obj_t *const *objs, size_t n, json_t **coco,
                     json_t **skipped, char *err, size_t errlen)
{
    entry_t *entries = calloc(n ? n : 1, sizeof(*entries));
    size_t i, live = 0;
    int rc;

    *coco = NULL;
    *skipped = NULL;
    if (entries == NULL)
        return proto_fail(err, errlen, -ENOMEM, "out of memory");
    for (i = 0; i < n; i++) {
        if (objs[i]->deleted)
            continue;
        entries[live].id = objs[i]->id;
        entries[live].kind = objs[i]->kind;
        entries[live++].fields = objs[i]->fields;
    }
    rc = export_entries(entries, live, coco, skipped, err, errlen);
    free(entries);
    return rc;
}
