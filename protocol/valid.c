/*
 * Validation rules of objects: geometry per kind, COCO RLE masks, item
 * sizes, attrs, label schemas and room settings. Decoding of messages and
 * the merge rules live elsewhere.
 */
#include "valid.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proto.h"

#define SHOWN_MAX 64 /* bytes of a value quoted in a message */
#define LIST_MAX 160 /* bytes of a list of enum values in a message */
#define RLE_BASE 48  /* COCO RLE strings hold 6 bits per char from '0' */

/* How the flat geometry of a kind is laid out. exact is the count of
 * numbers when fixed. Otherwise the array contains tuples of stride numbers,
 * at least min_points of them. */
typedef struct {
    const char *kind;
    const char *form;
    size_t exact;
    size_t stride;
    size_t min_points;
} layout_t;

static const layout_t layouts[] = {
    {"bbox", "[x, y, w, h]", 4, 0, 0},
    {"ellipse", "[cx, cy, rx, ry]", 4, 0, 0},
    {"span", "[start, end]", 2, 0, 0},
    {"cuboid", "8 points [x1, y1, ..., x8, y8]", 16, 0, 0},
    {"polyline", "x, y pairs", 0, 2, 2},
    {"points", "x, y pairs", 0, 2, 1},
    {"keypoints", "x, y, v triples", 0, 3, 1},
    {"skeleton", "x, y, v triples", 0, 3, 1},
};

/* Kinds that have no geometry and that the schema does not apply to
 * unless they have a label. */
static const char *const plain_kinds[] = {"item", "category", OBJ_ROOM_KIND};

static const char *describe(const json_t *j, char *buf)
{
    return proto_json_describe(j, buf, SHOWN_MAX);
}

static const char *quote(const char *s, char *buf)
{
    return proto_quote(s, strlen(s), buf, SHOWN_MAX);
}

static int is_finite_number(const json_t *j)
{
    return json_is_integer(j) || (json_is_real(j) && isfinite(json_real_value(j)));
}

static int is_count(const json_t *j)
{
    return json_is_integer(j) && json_integer_value(j) >= 0;
}

/* ---- geometry ---- */

/* Checks that every element of the array g is a finite number. where names
 * g in messages. */
static int check_numbers(const json_t *g, const char *where, char *err,
                         size_t errlen)
{
    char shown[SHOWN_MAX];
    json_t *value;
    size_t i;

    json_array_foreach (g, i, value) {
        if (!is_finite_number(value))
            return proto_fail(err, errlen, -EINVAL,
                              "%s[%zu]: must be a finite number, got %s",
                              where, i, describe(value, shown));
    }
    return 0;
}

static int check_layout(const layout_t *l, const json_t *g, const char *where,
                        char *err, size_t errlen)
{
    char shown[SHOWN_MAX];
    size_t n = json_array_size(g);

    if (!json_is_array(g))
        return proto_fail(err, errlen, -EINVAL, "%s: %s must be %s, got %s",
                          where, l->kind, l->form, describe(g, shown));
    if (check_numbers(g, where, err, errlen) < 0)
        return -EINVAL;
    if (l->exact != 0 && n != l->exact)
        return proto_fail(err, errlen, -EINVAL,
                          "%s: %s must be %s, got %zu number%s", where,
                          l->kind, l->form, n, n == 1 ? "" : "s");
    if (l->stride != 0 && n % l->stride != 0)
        return proto_fail(err, errlen, -EINVAL,
                          "%s: %s must hold %s, got %zu number%s", where,
                          l->kind, l->form, n, n == 1 ? "" : "s");
    if (l->stride != 0 && n / l->stride < l->min_points)
        return proto_fail(err, errlen, -EINVAL,
                          "%s: %s needs %zu or more points, got %zu", where,
                          l->kind, l->min_points, n / l->stride);
    return 0;
}

static double number_at(const json_t *g, size_t i)
{
    return json_number_value(json_array_get(g, i));
}

/* Checks the sizes and order that the layouts do not cover. */
static int check_extents(const char *kind, const json_t *g, char *err,
                         size_t errlen)
{
    static const char *const box_names[] = {"width", "height"};
    static const char *const ellipse_names[] = {"rx", "ry"};
    const char *const *names = NULL;
    char shown[SHOWN_MAX], end[SHOWN_MAX];
    size_t i;

    if (strcmp(kind, "span") == 0 && number_at(g, 0) > number_at(g, 1)) {
        describe(json_array_get(g, 0), shown);
        return proto_fail(err, errlen, -EINVAL,
                          "geometry: span start must be <= end, got start %s "
                          "and end %s",
                          shown, describe(json_array_get(g, 1), end));
    }
    if (strcmp(kind, "bbox") == 0)
        names = box_names;
    else if (strcmp(kind, "ellipse") == 0)
        names = ellipse_names;
    for (i = 0; names != NULL && i < 2; i++) {
        const json_t *v = json_array_get(g, 2 + i);

        if (json_number_value(v) < 0)
            return proto_fail(err, errlen, -EINVAL,
                              "geometry: %s %s must be >= 0, got %s", kind,
                              names[i], describe(v, shown));
    }
    return 0;
}

static int check_polygon(const json_t *g, char *err, size_t errlen)
{
    static const layout_t ring = {"polygon ring", "x, y pairs", 0, 2, 3};
    char shown[SHOWN_MAX], where[32];
    json_t *r;
    size_t i;

    if (!json_is_array(g) || json_array_size(g) == 0)
        return proto_fail(err, errlen, -EINVAL,
                          "geometry: polygon must be an array of one or more "
                          "rings [x1, y1, x2, y2, ...], got %s",
                          json_is_array(g) ? "[]" : describe(g, shown));
    json_array_foreach (g, i, r) {
        snprintf(where, sizeof(where), "geometry[%zu]", i);
        if (check_layout(&ring, r, where, err, errlen) < 0)
            return -EINVAL;
    }
    return 0;
}

/* ---- masks ---- */

/* Reads the next run of a compressed COCO RLE string: 5 bits per char,
 * low bits first, the 0x20 bit marking that more chars follow and the 0x10
 * bit of the last char giving the sign. Returns 0 with *run and *pos
 * advanced, or -EINVAL. */
static int rle_next(const char *s, size_t len, size_t *pos, int64_t *run)
{
    uint64_t bits = 0;
    unsigned shift = 0;
    int c = 0x20;

    while (c & 0x20) {
        if (*pos >= len || shift > 55)
            return -EINVAL;
        c = (unsigned char)s[*pos] - RLE_BASE;
        if (c < 0 || c > 63)
            return -EINVAL;
        bits |= (uint64_t)(c & 0x1f) << shift;
        shift += 5;
        (*pos)++;
    }
    if (c & 0x10)
        bits |= ~(uint64_t)0 << shift;
    *run = (int64_t)bits;
    return 0;
}

/* Sums the runs of a compressed RLE string into *total. Runs after the
 * second are stored as the difference to the run two places before. */
static int rle_string_total(const char *s, size_t len, uint64_t *total,
                            char *err, size_t errlen)
{
    int64_t runs[3] = {0, 0, 0};
    size_t pos = 0, n = 0;

    *total = 0;
    while (pos < len) {
        int64_t run;

        if (rle_next(s, len, &pos, &run) < 0)
            return proto_fail(err, errlen, -EINVAL,
                              "geometry.counts: invalid RLE string at byte "
                              "%zu",
                              pos);
        if (n > 2)
            run += runs[(n - 2) % 3];
        if (run < 0 || (uint64_t)run > UINT64_MAX - *total)
            return proto_fail(err, errlen, -EINVAL,
                              "geometry.counts: run %zu of the RLE string is "
                              "out of range",
                              n);
        runs[n % 3] = run;
        *total += (uint64_t)run;
        n++;
    }
    return 0;
}

static int rle_array_total(const json_t *counts, uint64_t *total, char *err,
                           size_t errlen)
{
    char shown[SHOWN_MAX];
    json_t *value;
    size_t i;

    *total = 0;
    json_array_foreach (counts, i, value) {
        if (!is_count(value))
            return proto_fail(err, errlen, -EINVAL,
                              "geometry.counts[%zu]: must be a non-negative "
                              "integer, got %s",
                              i, describe(value, shown));
        if ((uint64_t)json_integer_value(value) > UINT64_MAX - *total)
            return proto_fail(err, errlen, -EINVAL,
                              "geometry.counts: the runs overflow");
        *total += (uint64_t)json_integer_value(value);
    }
    return 0;
}

static int check_mask(const json_t *g, char *err, size_t errlen)
{
    const json_t *size = json_object_get(g, "size");
    const json_t *counts = json_object_get(g, "counts");
    char shown[SHOWN_MAX];
    uint64_t total = 0, h, w;
    int rc;

    if (!json_is_object(g))
        return proto_fail(err, errlen, -EINVAL,
                          "geometry: mask must be {\"counts\": ..., "
                          "\"size\": [height, width]}, got %s",
                          describe(g, shown));
    if (json_array_size(size) != 2 || !is_count(json_array_get(size, 0)) ||
        !is_count(json_array_get(size, 1)))
        return proto_fail(err, errlen, -EINVAL,
                          "geometry.size: must be [height, width] of "
                          "non-negative integers, got %s",
                          describe(size, shown));
    h = (uint64_t)json_integer_value(json_array_get(size, 0));
    w = (uint64_t)json_integer_value(json_array_get(size, 1));

    if (json_is_string(counts))
        rc = rle_string_total(json_string_value(counts),
                              json_string_length(counts), &total, err, errlen);
    else if (json_is_array(counts))
        rc = rle_array_total(counts, &total, err, errlen);
    else
        rc = proto_fail(err, errlen, -EINVAL,
                        "geometry.counts: must be an array of runs or an RLE "
                        "string, got %s",
                        describe(counts, shown));
    if (rc < 0)
        return rc;

    /* The runs cover the mask column by column, every pixel once. */
    if (h != 0 && w > UINT64_MAX / h)
        return proto_fail(err, errlen, -EINVAL,
                          "geometry.size: %" PRIu64 " x %" PRIu64
                          " pixels is too large",
                          h, w);
    if (total != h * w)
        return proto_fail(err, errlen, -EINVAL,
                          "geometry.counts: the runs cover %" PRIu64
                          " pixels, but size [%" PRIu64 ", %" PRIu64
                          "] has %" PRIu64,
                          total, h, w, h * w);
    return 0;
}

static int is_plain_kind(const char *kind)
{
    size_t i;

    for (i = 0; i < sizeof(plain_kinds) / sizeof(plain_kinds[0]); i++) {
        if (strcmp(kind, plain_kinds[i]) == 0)
            return 1;
    }
    return 0;
}

int valid_geometry(const char *kind, const json_t *geometry, char *err,
                   size_t errlen)
{
    char shown[SHOWN_MAX];
    size_t i;

    for (i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++) {
        if (strcmp(kind, layouts[i].kind) != 0)
            continue;
        if (check_layout(&layouts[i], geometry, "geometry", err, errlen) < 0)
            return -EINVAL;
        return check_extents(kind, geometry, err, errlen);
    }
    if (strcmp(kind, "polygon") == 0)
        return check_polygon(geometry, err, errlen);
    if (strcmp(kind, "mask") == 0)
        return check_mask(geometry, err, errlen);
    return proto_fail(err, errlen, -EINVAL,
                      "geometry: objects of kind %s have no geometry, got %s",
                      kind, describe(geometry, shown));
}

/* ---- fields of every object ---- */

static int check_item_size(const obj_t *obj, char *err, size_t errlen)
{
    static const char *const names[] = {"width", "height"};
    char shown[SHOWN_MAX];
    size_t i;

    if (strcmp(obj->kind, "item") != 0)
        return 0;
    for (i = 0; i < 2; i++) {
        const json_t *v = json_object_get(obj->fields, names[i]);

        if (v != NULL && !is_count(v))
            return proto_fail(err, errlen, -EINVAL,
                              "%s: must be a non-negative integer, got %s",
                              names[i], describe(v, shown));
    }
    return 0;
}

static int check_attrs_shape(const json_t *attrs, char *err, size_t errlen)
{
    char shown[SHOWN_MAX];
    const char *key;
    json_t *value;

    if (attrs == NULL)
        return 0;
    if (!json_is_object(attrs))
        return proto_fail(err, errlen, -EINVAL,
                          "attrs: must be an object of keys, got %s",
                          describe(attrs, shown));
    json_object_foreach ((json_t *)attrs, key, value) {
        size_t len = strlen(key);

        if (len == 0 || len > VALID_ATTR_KEY_MAX)
            return proto_fail(err, errlen, -EINVAL,
                              "attrs: key %s must be 1 to %d bytes",
                              quote(key, shown), VALID_ATTR_KEY_MAX);
    }
    return 0;
}

/* ---- the label schema applied to an object ---- */

/* Writes the JSON values of list, comma-separated, into buf. */
static const char *join_values(const json_t *list, char *buf, size_t buflen)
{
    char shown[SHOWN_MAX];
    size_t i, used = 0;
    json_t *v;

    buf[0] = '\0';
    json_array_foreach (list, i, v) {
        int n = snprintf(buf + used, buflen - used, "%s%s", i ? ", " : "",
                         describe(v, shown));

        if (n < 0 || (size_t)n >= buflen - used) {
            buf[used] = '\0';
            break;
        }
        used += (size_t)n;
    }
    return buf;
}

static int list_holds(const json_t *list, const json_t *value)
{
    size_t i;
    json_t *v;

    json_array_foreach (list, i, v) {
        if (json_equal(v, value))
            return 1;
    }
    return 0;
}

static int type_known(const char *type)
{
    static const char *const types[] = {"string", "number", "integer",
                                        "boolean"};
    size_t i;

    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(type, types[i]) == 0)
            return 1;
    }
    return 0;
}

static int type_matches(const char *type, const json_t *value)
{
    if (strcmp(type, "string") == 0)
        return json_is_string(value);
    if (strcmp(type, "number") == 0)
        return is_finite_number(value);
    if (strcmp(type, "integer") == 0)
        return json_is_integer(value);
    if (strcmp(type, "boolean") == 0)
        return json_is_boolean(value);
    return 0;
}

/* Checks one attrs key against the label's declaration. */
static int check_attr(const json_t *decls, const char *label, const char *key,
                      const json_t *value, char *err, size_t errlen)
{
    const json_t *decl = json_object_get(decls, key);
    const char *type = json_string_value(json_object_get(decl, "type"));
    char shown[SHOWN_MAX], name[SHOWN_MAX], list[LIST_MAX];
    const json_t *values;

    describe(value, shown);
    if (decl == NULL || type == NULL)
        return proto_fail(err, errlen, -EINVAL,
                          "attrs.%s: %s is not declared for label %s", key,
                          shown, quote(label, name));
    if (strcmp(type, "enum") != 0) {
        if (type_matches(type, value))
            return 0;
        return proto_fail(err, errlen, -EINVAL, "attrs.%s: must be %s %s, got %s",
                          key, strcmp(type, "integer") == 0 ? "an" : "a", type,
                          shown);
    }
    values = json_object_get(decl, "values");
    if (list_holds(values, value))
        return 0;
    return proto_fail(err, errlen, -EINVAL, "attrs.%s: %s is not one of %s",
                      key, shown, join_values(values, list, sizeof(list)));
}

static int check_required(const obj_t *obj, const json_t *spec,
                          const char *label, char *err, size_t errlen)
{
    const json_t *attrs = json_object_get(obj->fields, OBJ_ATTRS);
    size_t plen = strlen(OBJ_ATTRS_PREFIX);
    char shown[SHOWN_MAX];
    json_t *name;
    size_t i;

    json_array_foreach (json_object_get(spec, "required"), i, name) {
        const char *s = json_string_value(name);
        int present;

        if (s == NULL)
            continue;
        if (strncmp(s, OBJ_ATTRS_PREFIX, plen) == 0)
            present = json_object_get(attrs, s + plen) != NULL;
        else
            present = json_object_get(obj->fields, s) != NULL;
        if (!present)
            return proto_fail(err, errlen, -EINVAL,
                              "%s: missing, but label %s requires it", s,
                              quote(label, shown));
    }
    return 0;
}

static int strings_hold(const json_t *list, const char *s)
{
    size_t i;
    json_t *v;

    json_array_foreach (list, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return 1;
    }
    return 0;
}

static int check_kind_allowed(const obj_t *obj, const json_t *spec,
                              const char *label, char *err, size_t errlen)
{
    const json_t *kinds = json_object_get(spec, "kinds");
    char shown[SHOWN_MAX], name[SHOWN_MAX], list[LIST_MAX];

    if (kinds == NULL || strings_hold(kinds, obj->kind))
        return 0;
    return proto_fail(err, errlen, -EINVAL,
                      "kind: %s is not allowed for label %s, which allows %s",
                      quote(obj->kind, shown), quote(label, name),
                      join_values(kinds, list, sizeof(list)));
}

static int check_label(const obj_t *obj, const json_t *labels,
                       const json_t **spec, char *err, size_t errlen)
{
    const json_t *label = json_object_get(obj->fields, "label");
    char shown[SHOWN_MAX];

    if (label == NULL)
        return proto_fail(err, errlen, -EINVAL,
                          "label: missing, but the room's schema requires a "
                          "label on %s objects",
                          obj->kind);
    *spec = json_object_get(labels, json_string_value(label));
    if (!json_is_string(label) || *spec == NULL)
        return proto_fail(err, errlen, -EINVAL,
                          "label: %s is not a label of the room's schema",
                          describe(label, shown));
    return 0;
}

static int check_schema(const obj_t *obj, const json_t *schema, char *err,
                        size_t errlen)
{
    const json_t *attrs = json_object_get(obj->fields, OBJ_ATTRS);
    const json_t *spec = NULL;
    const char *label, *key;
    json_t *value;

    if (is_plain_kind(obj->kind) &&
        json_object_get(obj->fields, "label") == NULL)
        return 0;
    if (check_label(obj, json_object_get(schema, "labels"), &spec, err,
                    errlen) < 0)
        return -EINVAL;
    label = json_string_value(json_object_get(obj->fields, "label"));

    if (check_kind_allowed(obj, spec, label, err, errlen) < 0)
        return -EINVAL;
    json_object_foreach ((json_t *)attrs, key, value) {
        if (check_attr(json_object_get(spec, "attrs"), label, key, value, err,
                       errlen) < 0)
            return -EINVAL;
    }
    return check_required(obj, spec, label, err, errlen);
}

/* ---- room settings ---- */

int valid_policy(const json_t *policy, char *err, size_t errlen)
{
    const char *s = json_string_value(policy);
    char shown[SHOWN_MAX];

    if (s != NULL && (strcmp(s, "reject") == 0 || strcmp(s, "lww") == 0))
        return 0;
    return proto_fail(err, errlen, -EINVAL,
                      "policy: must be \"reject\" or \"lww\", got %s",
                      describe(policy, shown));
}

const char *const valid_room_settings[] = {"policy", "schema", "claims",
                                           NULL};

int valid_room_setting(const char *name)
{
    for (size_t i = 0; valid_room_settings[i]; i++)
        if (strcmp(name, valid_room_settings[i]) == 0)
            return 1;
    return 0;
}

int valid_claims_mode(const json_t *mode, char *err, size_t errlen)
{
    const char *s = json_string_value(mode);
    char shown[SHOWN_MAX];

    if (s != NULL &&
        (strcmp(s, "advisory") == 0 || strcmp(s, "enforced") == 0))
        return 0;
    return proto_fail(err, errlen, -EINVAL,
                      "claims: must be \"advisory\" or \"enforced\", got %s",
                      describe(mode, shown));
}

/* Fails when obj has a member not in names (NULL-terminated). */
static int only_members(const json_t *obj, const char *const *names,
                        const char *where, char *err, size_t errlen)
{
    char shown[SHOWN_MAX];
    const char *key;
    json_t *value;
    size_t i;

    json_object_foreach ((json_t *)obj, key, value) {
        for (i = 0; names[i] != NULL && strcmp(names[i], key) != 0; i++)
            ;
        if (names[i] == NULL)
            return proto_fail(err, errlen, -EINVAL, "%s: unknown member %s",
                              where, quote(key, shown));
    }
    return 0;
}

static int check_attr_decl(const char *where, const json_t *decl, char *err,
                           size_t errlen)
{
    static const char *const members[] = {"type", "values", NULL};
    const json_t *type = json_object_get(decl, "type");
    const json_t *values = json_object_get(decl, "values");
    const char *t = json_string_value(type);
    char shown[SHOWN_MAX];
    int is_enum = t != NULL && strcmp(t, "enum") == 0;

    if (!json_is_object(decl))
        return proto_fail(err, errlen, -EINVAL, "%s: must be an object, got %s",
                          where, describe(decl, shown));
    if (only_members(decl, members, where, err, errlen) < 0)
        return -EINVAL;
    if (!is_enum && (t == NULL || !type_known(t)))
        return proto_fail(err, errlen, -EINVAL,
                          "%s: type must be \"string\", \"number\", "
                          "\"integer\", \"boolean\" or \"enum\", got %s",
                          where, describe(type, shown));
    if (is_enum && json_array_size(values) == 0)
        return proto_fail(err, errlen, -EINVAL,
                          "%s: an enum needs a non-empty array of values, "
                          "got %s",
                          where, describe(values, shown));
    if (!is_enum && values != NULL)
        return proto_fail(err, errlen, -EINVAL,
                          "%s: values are only for type \"enum\"", where);
    return 0;
}

static int check_label_attrs(const char *where, const json_t *attrs, char *err,
                             size_t errlen)
{
    char path[PROTO_ERR_MAX], shown[SHOWN_MAX];
    const char *key;
    json_t *decl;

    if (attrs == NULL)
        return 0;
    if (!json_is_object(attrs))
        return proto_fail(err, errlen, -EINVAL,
                          "%s attrs: must be an object, got %s", where,
                          describe(attrs, shown));
    json_object_foreach ((json_t *)attrs, key, decl) {
        snprintf(path, sizeof(path), "%s attrs %s", where, quote(key, shown));
        if (strlen(key) == 0 || strlen(key) > VALID_ATTR_KEY_MAX)
            return proto_fail(err, errlen, -EINVAL,
                              "%s: keys are 1 to %d bytes", path,
                              VALID_ATTR_KEY_MAX);
        if (check_attr_decl(path, decl, err, errlen) < 0)
            return -EINVAL;
    }
    return 0;
}

/* Checks that list, when present, is an array of strings accepted by ok,
 * which expected describes. */
static int check_names(const char *where, const char *what, const json_t *list,
                       int (*ok)(const char *), const char *expected,
                       char *err, size_t errlen)
{
    char shown[SHOWN_MAX];
    json_t *name;
    size_t i;

    if (list == NULL)
        return 0;
    if (!json_is_array(list))
        return proto_fail(err, errlen, -EINVAL,
                          "%s %s: must be an array, got %s", where, what,
                          describe(list, shown));
    json_array_foreach (list, i, name) {
        if (!json_is_string(name) || !ok(json_string_value(name)))
            return proto_fail(err, errlen, -EINVAL,
                              "%s %s[%zu]: must be %s, got %s", where, what,
                              i, expected, describe(name, shown));
    }
    return 0;
}

static int field_name(const char *name)
{
    size_t len = strlen(name);

    return len >= 1 && len <= PROTO_FIELD_MAX;
}

static int check_label_spec(const char *label, const json_t *spec, char *err,
                            size_t errlen)
{
    static const char *const members[] = {"kinds", "attrs", "required", NULL};
    char where[SHOWN_MAX + 16], shown[SHOWN_MAX];

    snprintf(where, sizeof(where), "schema: label %s", quote(label, shown));
    if (!json_is_object(spec))
        return proto_fail(err, errlen, -EINVAL, "%s: must be an object, got %s",
                          where, describe(spec, shown));
    if (only_members(spec, members, where, err, errlen) < 0 ||
        check_names(where, "kinds", json_object_get(spec, "kinds"),
                    proto_kind_valid, "an object kind", err, errlen) < 0 ||
        check_label_attrs(where, json_object_get(spec, "attrs"), err,
                          errlen) < 0 ||
        check_names(where, "required", json_object_get(spec, "required"),
                    field_name, "a field name", err, errlen) < 0)
        return -EINVAL;
    return 0;
}

int valid_schema(const json_t *schema, char *err, size_t errlen)
{
    static const char *const members[] = {"labels", NULL};
    const json_t *labels = json_object_get(schema, "labels");
    char shown[SHOWN_MAX];
    const char *label;
    json_t *spec;

    if (json_is_null(schema))
        return 0;
    if (!json_is_object(schema))
        return proto_fail(err, errlen, -EINVAL,
                          "schema: must be null or an object with labels, "
                          "got %s",
                          describe(schema, shown));
    if (only_members(schema, members, "schema", err, errlen) < 0)
        return -EINVAL;
    if (!json_is_object(labels))
        return proto_fail(err, errlen, -EINVAL,
                          "schema: labels must be an object, got %s",
                          describe(labels, shown));
    json_object_foreach ((json_t *)labels, label, spec) {
        if (check_label_spec(label, spec, err, errlen) < 0)
            return -EINVAL;
    }
    return 0;
}

static int check_room(const obj_t *obj, char *err, size_t errlen)
{
    const json_t *policy = json_object_get(obj->fields, "policy");
    const json_t *schema = json_object_get(obj->fields, "schema");
    const json_t *claims = json_object_get(obj->fields, "claims");
    char shown[SHOWN_MAX];
    const char *key;
    json_t *value;

    json_object_foreach (obj->fields, key, value) {
        if (!valid_room_setting(key))
            return proto_fail(err, errlen, -EINVAL,
                              "%s: not a room setting, which are policy, "
                              "schema and claims",
                              quote(key, shown));
    }
    if (policy != NULL && valid_policy(policy, err, errlen) < 0)
        return -EINVAL;
    if (claims != NULL && valid_claims_mode(claims, err, errlen) < 0)
        return -EINVAL;
    if (schema != NULL && valid_schema(schema, err, errlen) < 0)
        return -EINVAL;
    return 0;
}

int valid_object(const obj_t *obj, const json_t *schema, char *err,
                 size_t errlen)
{
    const json_t *geometry = json_object_get(obj->fields, "geometry");

    if (strcmp(obj->kind, OBJ_ROOM_KIND) == 0)
        return check_room(obj, err, errlen);
    if (geometry != NULL &&
        valid_geometry(obj->kind, geometry, err, errlen) < 0)
        return -EINVAL;
    if (check_item_size(obj, err, errlen) < 0 ||
        check_attrs_shape(json_object_get(obj->fields, OBJ_ATTRS), err,
                          errlen) < 0)
        return -EINVAL;
    if (schema == NULL || json_is_null(schema))
        return 0;
    return check_schema(obj, schema, err, errlen);
}
