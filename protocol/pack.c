/*
 * msgpack encoding of jansson values and stored objects, with a validating
 * scan of untrusted bytes before msgpack-c parses them.
 */
#include "pack.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "proto.h"

/* ---- packing ---- */

static int pack_value(msgpack_packer *pk, const json_t *j, size_t depth);

static int pack_string(msgpack_packer *pk, const char *s, size_t len)
{
    if (msgpack_pack_str(pk, len) != 0)
        return -ENOMEM;
    return msgpack_pack_str_body(pk, s, len) != 0 ? -ENOMEM : 0;
}

static int pack_object(msgpack_packer *pk, const json_t *j, size_t depth)
{
    void *it;
    int rc;

    if (msgpack_pack_map(pk, json_object_size(j)) != 0)
        return -ENOMEM;
    for (it = json_object_iter((json_t *)j); it != NULL;
         it = json_object_iter_next((json_t *)j, it)) {
        rc = pack_string(pk, json_object_iter_key(it),
                         json_object_iter_key_len(it));
        if (rc == 0)
            rc = pack_value(pk, json_object_iter_value(it), depth + 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int pack_array(msgpack_packer *pk, const json_t *j, size_t depth)
{
    size_t i, n = json_array_size(j);
    int rc;

    if (msgpack_pack_array(pk, n) != 0)
        return -ENOMEM;
    for (i = 0; i < n; i++) {
        rc = pack_value(pk, json_array_get(j, i), depth + 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Packs j, which sits inside depth arrays and maps. */
static int pack_value(msgpack_packer *pk, const json_t *j, size_t depth)
{
    int rc = 0;

    if (j == NULL)
        return -EINVAL;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
    case JSON_ARRAY:
        if (depth + 1 > PACK_DEPTH_MAX)
            return -EINVAL;
        return json_is_object(j) ? pack_object(pk, j, depth)
                                 : pack_array(pk, j, depth);
    case JSON_STRING:
        return pack_string(pk, json_string_value(j), json_string_length(j));
    case JSON_INTEGER:
        rc = msgpack_pack_int64(pk, json_integer_value(j));
        break;
    case JSON_REAL:
        rc = msgpack_pack_double(pk, json_real_value(j));
        break;
    case JSON_TRUE:
        rc = msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        rc = msgpack_pack_false(pk);
        break;
    case JSON_NULL:
        rc = msgpack_pack_nil(pk);
        break;
    }
    return rc != 0 ? -ENOMEM : 0;
}

int pack_json(msgpack_sbuffer *sbuf, const json_t *j)
{
    size_t start = sbuf->size;
    msgpack_packer pk;
    int rc;

    msgpack_packer_init(&pk, sbuf, msgpack_sbuffer_write);
    rc = pack_value(&pk, j, 0);
    if (rc < 0)
        sbuf->size = start;
    return rc;
}

static int pack_vv(msgpack_packer *pk, const vv_t *vv)
{
    size_t i;

    if (msgpack_pack_map(pk, vv->len) != 0)
        return -ENOMEM;
    for (i = 0; i < vv->len; i++) {
        const vv_entry_t *e = &vv->entries[i];

        if (pack_string(pk, e->actor, strlen(e->actor)) < 0 ||
            msgpack_pack_uint64(pk, e->counter) != 0)
            return -ENOMEM;
    }
    return 0;
}

/* Packs a map key and returns 0 or -ENOMEM. */
static int pack_key(msgpack_packer *pk, const char *key)
{
    return pack_string(pk, key, strlen(key));
}

static int pack_obj_members(msgpack_packer *pk, const obj_t *obj)
{
    int rc;

    if (msgpack_pack_map(pk, 5) != 0 || pack_key(pk, "kind") < 0 ||
        pack_key(pk, obj->kind) < 0 || pack_key(pk, "fields") < 0)
        return -ENOMEM;
    rc = pack_value(pk, obj->fields, 1);
    if (rc == 0)
        rc = pack_key(pk, "dots");
    if (rc == 0)
        rc = pack_value(pk, obj->dots, 1);
    if (rc < 0)
        return rc;
    if (pack_key(pk, "vv") < 0 || pack_vv(pk, &obj->vv) < 0 ||
        pack_key(pk, "deleted") < 0)
        return -ENOMEM;
    rc = obj->deleted ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    return rc != 0 ? -ENOMEM : 0;
}

int pack_obj(msgpack_sbuffer *sbuf, const obj_t *obj)
{
    size_t start = sbuf->size;
    msgpack_packer pk;
    int rc;

    msgpack_packer_init(&pk, sbuf, msgpack_sbuffer_write);
    rc = pack_obj_members(&pk, obj);
    if (rc < 0)
        sbuf->size = start;
    return rc;
}

/* ---- scanning untrusted bytes ---- */

typedef struct {
    const unsigned char *start;
    const unsigned char *p;
    const unsigned char *end;
    size_t max_depth;
    char *err;
    size_t errlen;
} scan_t;

static size_t scan_left(const scan_t *s)
{
    return (size_t)(s->end - s->p);
}

static size_t scan_offset(const scan_t *s)
{
    return (size_t)(s->p - s->start);
}

/* Reads an n-byte big-endian unsigned integer; the caller checked n bytes
 * are left. */
static uint64_t read_be(scan_t *s, size_t n)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < n; i++)
        v = (v << 8) | s->p[i];
    s->p += n;
    return v;
}

static int truncated(const scan_t *s)
{
    return proto_fail(s->err, s->errlen, -EINVAL,
                      "msgpack value truncated at byte %zu", scan_offset(s));
}

/* Returns the length of the valid UTF-8 sequence at p (n bytes left), or 0
 * when it is invalid: overlong, a surrogate, past U+10FFFF, or cut short. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t need, i;
    uint32_t cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }

    /* Reject overlong forms, surrogates and code points past U+10FFFF. */
    if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000))
        return 0;
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return need;
}

static int scan_str_body(scan_t *s, uint64_t len)
{
    size_t i = 0, n;

    if (len > scan_left(s))
        return truncated(s);
    while (i < len) {
        if (s->p[i] == 0)
            return proto_fail(s->err, s->errlen, -EINVAL,
                              "string at byte %zu contains a NUL byte",
                              scan_offset(s));
        n = utf8_seq(s->p + i, (size_t)len - i);
        if (n == 0)
            return proto_fail(s->err, s->errlen, -EINVAL,
                              "string at byte %zu is not valid UTF-8",
                              scan_offset(s));
        i += n;
    }
    s->p += len;
    return 0;
}

static int scan_value(scan_t *s, size_t depth, int is_key);

/* Scans the count items (or count key-value pairs when is_map) of a
 * container that sits at level depth + 1. */
static int scan_items(scan_t *s, uint64_t count, int is_map, size_t depth)
{
    uint64_t i, per = is_map ? 2 : 1;
    int rc;

    if (depth + 1 > s->max_depth)
        return proto_fail(s->err, s->errlen, -EINVAL,
                          "msgpack nesting deeper than %zu levels at byte "
                          "%zu",
                          s->max_depth, scan_offset(s));

    /* Each item takes at least one byte, so a larger count is invalid.
     * msgpack-c would allocate memory for it before reading the items. */
    if (count > scan_left(s) / per)
        return proto_fail(s->err, s->errlen, -EINVAL,
                          "msgpack %s at byte %zu declares %" PRIu64
                          " entries but only %zu bytes follow",
                          is_map ? "map" : "array", scan_offset(s), count,
                          scan_left(s));
    for (i = 0; i < count; i++) {
        if (is_map) {
            rc = scan_value(s, depth + 1, 1);
            if (rc < 0)
                return rc;
        }
        rc = scan_value(s, depth + 1, 0);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Returns the byte size of a fixed-size scalar's payload after its type
 * byte b, or -1 when b does not start one. */
static int fixed_size(unsigned char b)
{
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return 0;
    switch (b) {
    case 0xcc:
    case 0xd0:
        return 1;
    case 0xcd:
    case 0xd1:
        return 2;
    case 0xca:
    case 0xce:
    case 0xd2:
        return 4;
    case 0xcb:
    case 0xcf:
    case 0xd3:
        return 8;
    }
    return -1;
}

/* Scans a header byte b that starts a str, array or map. */
static int scan_container_or_str(scan_t *s, unsigned char b, size_t depth)
{
    if (b >= 0xa0 && b <= 0xbf)
        return scan_str_body(s, b & 0x1f);
    if (b >= 0x90 && b <= 0x9f)
        return scan_items(s, b & 0x0f, 0, depth);
    if (b >= 0x80 && b <= 0x8f)
        return scan_items(s, b & 0x0f, 1, depth);

    /* The 8-, 16- and 32-bit length forms. */
    size_t n = b == 0xd9 ? 1 : (b == 0xda || b == 0xdc || b == 0xde) ? 2 : 4;

    if (scan_left(s) < n)
        return truncated(s);
    uint64_t len = read_be(s, n);

    if (b >= 0xd9 && b <= 0xdb)
        return scan_str_body(s, len);
    return scan_items(s, len, b >= 0xde, depth);
}

static int is_str_byte(unsigned char b)
{
    return (b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb);
}

static int scan_value(scan_t *s, size_t depth, int is_key)
{
    unsigned char b;
    int size;

    if (scan_left(s) == 0)
        return truncated(s);
    b = *s->p;
    if (is_key && !is_str_byte(b))
        return proto_fail(s->err, s->errlen, -EINVAL,
                          "msgpack map key at byte %zu is not a string "
                          "(type byte 0x%02x)",
                          scan_offset(s), b);
    s->p++;

    size = fixed_size(b);
    if (size >= 0) {
        if (scan_left(s) < (size_t)size)
            return truncated(s);
        s->p += size;
        return 0;
    }
    if ((b >= 0x80 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdf))
        return scan_container_or_str(s, b, depth);
    if (b >= 0xc4 && b <= 0xc6)
        return proto_fail(s->err, s->errlen, -EINVAL,
                          "msgpack bin at byte %zu is not supported",
                          scan_offset(s) - 1);
    if (b == 0xc1)
        return proto_fail(s->err, s->errlen, -EINVAL,
                          "invalid msgpack type byte 0xc1 at byte %zu",
                          scan_offset(s) - 1);
    return proto_fail(s->err, s->errlen, -EINVAL,
                      "msgpack ext at byte %zu is not supported",
                      scan_offset(s) - 1);
}

static int scan_all(const char *buf, size_t len, size_t max_depth, char *err,
                    size_t errlen)
{
    scan_t s = {
        .start = (const unsigned char *)buf,
        .p = (const unsigned char *)buf,
        .end = (const unsigned char *)buf + len,
        .max_depth = max_depth,
        .err = err,
        .errlen = errlen,
    };
    int rc;

    if (len == 0)
        return proto_fail(err, errlen, -EINVAL, "empty msgpack input");
    rc = scan_value(&s, 0, 0);
    if (rc < 0)
        return rc;
    if (scan_left(&s) != 0)
        return proto_fail(err, errlen, -EINVAL,
                          "%zu trailing bytes after the msgpack value",
                          scan_left(&s));
    return 0;
}

/* ---- converting msgpack-c objects ---- */

static int to_json(const msgpack_object *o, json_t **out, char *err,
                   size_t errlen);

/* Returns the bytes of a msgpack-c string. msgpack-c gives an empty fixstr
 * (0xa0) a NULL pointer, which jansson takes for a failed allocation. */
static const char *str_ptr(const msgpack_object_str *str)
{
    return str->size == 0 ? "" : str->ptr;
}

static int map_to_json(const msgpack_object_map *map, json_t *obj, char *err,
                       size_t errlen)
{
    uint32_t i;
    int rc;

    for (i = 0; i < map->size; i++) {
        const msgpack_object_str *key = &map->ptr[i].key.via.str;
        const char *name = str_ptr(key);
        char shown[64];
        json_t *value;

        if (json_object_getn(obj, name, key->size) != NULL) {
            proto_quote(name, key->size, shown, sizeof(shown));
            return proto_fail(err, errlen, -EINVAL,
                              "duplicate msgpack map key %s", shown);
        }
        rc = to_json(&map->ptr[i].val, &value, err, errlen);
        if (rc < 0)
            return rc;
        if (json_object_setn_new_nocheck(obj, name, key->size, value) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int array_to_json(const msgpack_object_array *arr, json_t *list,
                         char *err, size_t errlen)
{
    uint32_t i;
    json_t *value;
    int rc;

    for (i = 0; i < arr->size; i++) {
        rc = to_json(&arr->ptr[i], &value, err, errlen);
        if (rc < 0)
            return rc;
        if (json_array_append_new(list, value) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int container_to_json(const msgpack_object *o, json_t **out, char *err,
                             size_t errlen)
{
    int is_map = o->type == MSGPACK_OBJECT_MAP;
    json_t *j = is_map ? json_object() : json_array();
    int rc;

    if (j == NULL)
        return -ENOMEM;
    rc = is_map ? map_to_json(&o->via.map, j, err, errlen)
                : array_to_json(&o->via.array, j, err, errlen);
    if (rc < 0) {
        json_decref(j);
        return rc;
    }
    *out = j;
    return 0;
}

/* Converts a scanned msgpack-c object into a new JSON value in *out. */
static int to_json(const msgpack_object *o, json_t **out, char *err,
                   size_t errlen)
{
    json_t *j = NULL;

    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        j = json_null();
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        j = json_boolean(o->via.boolean);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > INT64_MAX)
            return proto_fail(err, errlen, -EINVAL,
                              "msgpack integer %" PRIu64 " is over 2^63-1",
                              o->via.u64);
        j = json_integer((json_int_t)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        j = json_integer((json_int_t)o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64))
            return proto_fail(err, errlen, -EINVAL,
                              "msgpack float is NaN or infinite");
        j = json_real(o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        j = json_stringn_nocheck(str_ptr(&o->via.str), o->via.str.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
    case MSGPACK_OBJECT_MAP:
        return container_to_json(o, out, err, errlen);
    default:
        return proto_fail(err, errlen, -EINVAL,
                          "msgpack bin and ext are not supported");
    }
    if (j == NULL)
        return -ENOMEM;
    *out = j;
    return 0;
}

int unpack_json(const char *buf, size_t len, size_t max_depth, json_t **out,
                char *err, size_t errlen)
{
    msgpack_unpacked result;
    msgpack_unpack_return ret;
    size_t off = 0;
    int rc;

    *out = NULL;
    if (max_depth > PACK_DEPTH_MAX)
        max_depth = PACK_DEPTH_MAX;
    rc = scan_all(buf, len, max_depth, err, errlen);
    if (rc < 0)
        return rc;

    /* The scan bounds every count, so msgpack-c allocates at most a small
     * multiple of len. Strings point into buf. */
    msgpack_unpacked_init(&result);
    ret = msgpack_unpack_next(&result, buf, len, &off);
    if (ret == MSGPACK_UNPACK_NOMEM_ERROR)
        rc = -ENOMEM;
    else if (ret != MSGPACK_UNPACK_SUCCESS || off != len)
        rc = proto_fail(err, errlen, -EINVAL,
                        "msgpack-c rejected the input (code %d)", (int)ret);
    else
        rc = to_json(&result.data, out, err, errlen);
    msgpack_unpacked_destroy(&result);
    return rc;
}

/* ---- stored objects ---- */

static int member(const json_t *root, const char *name, json_type type,
                  json_t **value, char *err, size_t errlen)
{
    *value = json_object_get(root, name);
    if (*value == NULL)
        return proto_fail(err, errlen, -EINVAL, "stored object has no \"%s\"",
                          name);
    if (json_typeof(*value) != type)
        return proto_fail(err, errlen, -EINVAL,
                          "stored object member \"%s\" has the wrong type",
                          name);
    return 0;
}

static int check_dots(const json_t *dots, char *err, size_t errlen)
{
    const char *name;
    json_t *dot;

    json_object_foreach ((json_t *)dots, name, dot) {
        json_t *actor = json_array_get(dot, 0);
        json_t *counter = json_array_get(dot, 1);

        if (json_array_size(dot) != 2 || !json_is_string(actor) ||
            !json_is_integer(counter) || json_integer_value(counter) < 1)
            return proto_fail(err, errlen, -EINVAL,
                              "stored object: the dot of a field is not "
                              "[actor, counter]");
    }
    return 0;
}

static int fill_obj(obj_t *obj, const json_t *root, char *err, size_t errlen)
{
    json_t *fields, *dots, *vv, *deleted;
    int rc;

    if (member(root, "fields", JSON_OBJECT, &fields, err, errlen) < 0 ||
        member(root, "dots", JSON_OBJECT, &dots, err, errlen) < 0 ||
        member(root, "vv", JSON_OBJECT, &vv, err, errlen) < 0 ||
        check_dots(dots, err, errlen) < 0)
        return -EINVAL;
    deleted = json_object_get(root, "deleted");
    if (!json_is_boolean(deleted))
        return proto_fail(err, errlen, -EINVAL,
                          "stored object member \"deleted\" is missing or "
                          "not a boolean");

    rc = vv_from_json(&obj->vv, vv, err, errlen);
    if (rc < 0)
        return rc;
    json_decref(obj->fields);
    json_decref(obj->dots);
    obj->fields = json_incref(fields);
    obj->dots = json_incref(dots);
    obj->deleted = json_is_true(deleted);
    return 0;
}

/* Returns 1 for the room's settings object, whose kind only it may have. */
static int room_settings(const char *id, const char *kind)
{
    return strcmp(id, OBJ_ROOM_ID) == 0 && strcmp(kind, OBJ_ROOM_KIND) == 0;
}

int unpack_obj(const char *buf, size_t len, const char *id, uint64_t rev,
               obj_t **out, char *err, size_t errlen)
{
    json_t *root, *kind;
    obj_t *obj = NULL;
    char shown[64];
    int rc;

    *out = NULL;
    if (id == NULL)
        return proto_fail(err, errlen, -EINVAL, "stored object has no id");
    rc = unpack_json(buf, len, PACK_DEPTH_MAX, &root, err, errlen);
    if (rc < 0)
        return rc;
    if (!json_is_object(root)) {
        rc = proto_fail(err, errlen, -EINVAL, "stored object is not a map");
        goto done;
    }
    rc = member(root, "kind", JSON_STRING, &kind, err, errlen);
    if (rc == 0 && !proto_kind_valid(json_string_value(kind)) &&
        !room_settings(id, json_string_value(kind)))
        rc = proto_fail(err, errlen, -EINVAL,
                        "stored object has an unknown kind %s",
                        proto_json_describe(kind, shown, sizeof(shown)));
    if (rc < 0)
        goto done;

    obj = obj_new(id, json_string_value(kind));
    if (obj == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    rc = fill_obj(obj, root, err, errlen);
    if (rc == 0) {
        obj->rev = rev;
        *out = obj;
        obj = NULL;
    }

done:
    obj_free(obj);
    json_decref(root);
    return rc;
}
