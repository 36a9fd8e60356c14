/*
 * Annotation objects and the rules that decide what an edit op does to one:
 * creates, field updates with per-field dots and attrs merged by key,
 * tombstones and restores, room settings, and the conflict reports of the
 * reject and lww policies. Batches, storage and transport live elsewhere.
 */
#include "obj.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "valid.h"

obj_t *obj_new(const char *id, const char *kind)
{
    obj_t *obj;

    if (id == NULL || kind == NULL)
        return NULL;
    obj = calloc(1, sizeof(*obj));
    if (obj == NULL)
        return NULL;
    vv_init(&obj->vv);
    obj->id = strdup(id);
    obj->kind = strdup(kind);
    obj->fields = json_object();
    obj->dots = json_object();
    if (!obj->id || !obj->kind || !obj->fields || !obj->dots) {
        obj_free(obj);
        return NULL;
    }
    return obj;
}

/* Replaces dst's fields and dots with fresh containers holding the values of
 * src's, shared by reference (deep copies when deep is set). */
static int copy_maps(obj_t *dst, const obj_t *src, int deep)
{
    json_t *fields, *dots;

    fields = deep ? json_deep_copy(src->fields) : json_copy(src->fields);
    dots = deep ? json_deep_copy(src->dots) : json_copy(src->dots);
    if (fields == NULL || dots == NULL) {
        json_decref(fields);
        json_decref(dots);
        return -ENOMEM;
    }
    json_decref(dst->fields);
    json_decref(dst->dots);
    dst->fields = fields;
    dst->dots = dots;
    return 0;
}

obj_t *obj_clone(const obj_t *obj)
{
    obj_t *copy = obj_new(obj->id, obj->kind);

    if (copy == NULL)
        return NULL;
    if (copy_maps(copy, obj, 1) < 0 || vv_copy(&copy->vv, &obj->vv) < 0) {
        obj_free(copy);
        return NULL;
    }
    copy->deleted = obj->deleted;
    copy->rev = obj->rev;
    return copy;
}

void obj_free(obj_t *obj)
{
    if (obj == NULL)
        return;
    free(obj->id);
    free(obj->kind);
    json_decref(obj->fields);
    json_decref(obj->dots);
    vv_free(&obj->vv);
    free(obj);
}

int obj_equal(const obj_t *a, const obj_t *b)
{
    if (strcmp(a->id, b->id) != 0 || strcmp(a->kind, b->kind) != 0)
        return 0;
    if (a->deleted != b->deleted || !vv_equal(&a->vv, &b->vv))
        return 0;
    return json_equal(a->fields, b->fields) && json_equal(a->dots, b->dots);
}

void op_init(op_t *op)
{
    memset(op, 0, sizeof(*op));
    vv_init(&op->base);
}

void op_clear(op_t *op)
{
    free(op->id);
    free(op->kind);
    json_decref(op->fields);
    json_decref(op->set);
    json_decref(op->unset);
    vv_free(&op->base);
    op_init(op);
}

void op_result_init(op_result_t *res)
{
    memset(res, 0, sizeof(*res));
    vv_init(&res->vv);
}

void op_result_clear(op_result_t *res)
{
    json_decref(res->conflicts);
    json_decref(res->overwritten);
    vv_free(&res->vv);
    op_result_init(res);
}

/* ---- op checks ---- */

static int check_name(const char *name, const char *where, char *err,
                      size_t errlen)
{
    size_t len = strlen(name);
    char shown[64];

    if (len >= 1 && len <= PROTO_FIELD_MAX)
        return 0;
    proto_quote(name, len, shown, sizeof(shown));
    return proto_fail(err, errlen, -EINVAL,
                      "%s: field name %s must be 1 to %d bytes", where, shown,
                      PROTO_FIELD_MAX);
}

static int check_object_names(const json_t *obj, const char *where, char *err,
                              size_t errlen)
{
    const char *name;
    json_t *value;

    if (obj == NULL)
        return 0;
    if (!json_is_object(obj))
        return proto_fail(err, errlen, -EINVAL, "%s must be an object", where);
    if (json_object_size(obj) > OBJ_FIELDS_MAX)
        return proto_fail(err, errlen, -EINVAL,
                          "%s: an object has at most %d fields", where,
                          OBJ_FIELDS_MAX);
    json_object_foreach ((json_t *)obj, name, value) {
        if (check_name(name, where, err, errlen) < 0)
            return -EINVAL;
    }
    return 0;
}

static int check_unset(const json_t *unset, char *err, size_t errlen)
{
    size_t i;
    json_t *name;

    if (unset == NULL)
        return 0;
    if (!json_is_array(unset))
        return proto_fail(err, errlen, -EINVAL, "unset must be an array");
    json_array_foreach (unset, i, name) {
        if (!json_is_string(name))
            return proto_fail(err, errlen, -EINVAL,
                              "unset[%zu] must be a string", i);
        if (check_name(json_string_value(name), "unset", err, errlen) < 0)
            return -EINVAL;
    }
    return 0;
}

static int check_create(const op_t *op, char *err, size_t errlen)
{
    char shown[64];

    if (op->kind == NULL)
        return proto_fail(err, errlen, -EINVAL, "a create needs a kind");
    if (!proto_kind_valid(op->kind)) {
        proto_quote(op->kind, strlen(op->kind), shown, sizeof(shown));
        return proto_fail(err, errlen, -EINVAL, "kind %s is not known", shown);
    }
    return check_object_names(op->fields, "fields", err, errlen);
}

static int check_update(const op_t *op, char *err, size_t errlen)
{
    if (check_object_names(op->set, "set", err, errlen) < 0)
        return -EINVAL;
    if (check_unset(op->unset, err, errlen) < 0)
        return -EINVAL;
    if (json_object_size(op->set) + json_array_size(op->unset) == 0)
        return proto_fail(err, errlen, -EINVAL,
                          "an update must set or unset at least one field");
    return 0;
}

static int check_settings(const op_t *op, char *err, size_t errlen)
{
    const char *name;
    json_t *value;
    char shown[64];

    if (strcmp(op->id, OBJ_ROOM_ID) != 0 || op->unset != NULL)
        return proto_fail(err, errlen, -EINVAL,
                          "a settings op writes only the set of %s",
                          OBJ_ROOM_ID);
    if (!json_is_object(op->set) || json_object_size(op->set) == 0)
        return proto_fail(err, errlen, -EINVAL,
                          "a settings op must set policy, schema or "
                          "claims");
    json_object_foreach (op->set, name, value) {
        if (!valid_room_setting(name)) {
            proto_quote(name, strlen(name), shown, sizeof(shown));
            return proto_fail(err, errlen, -EINVAL,
                              "set: %s is not a room setting, which are "
                              "policy, schema and claims",
                              shown);
        }
    }
    return 0;
}

static int check_id(const op_t *op, char *err, size_t errlen)
{
    char shown[64];

    if (op->id == NULL ||
        !proto_token_valid(op->id, strlen(op->id), PROTO_ID_MAX))
        return proto_fail(err, errlen, -EINVAL,
                          "id must be 1 to %d bytes of printable ASCII",
                          PROTO_ID_MAX);
    if (op->id[0] == '@' && op->type != OP_SETTINGS) {
        proto_quote(op->id, strlen(op->id), shown, sizeof(shown));
        return proto_fail(err, errlen, -EINVAL,
                          "id %s is reserved for the server: ids that start "
                          "with @ are written only by settings ops",
                          shown);
    }
    return 0;
}

/* Checks the shape of op. msg decoding has checked ops that came from a
 * client already, so this guards ops built in code. */
static int check_op(const op_t *op, char *err, size_t errlen)
{
    if (check_id(op, err, errlen) < 0)
        return -EINVAL;
    switch (op->type) {
    case OP_CREATE:
        return check_create(op, err, errlen);
    case OP_UPDATE:
        return check_update(op, err, errlen);
    case OP_DELETE:
        return 0;
    case OP_RESTORE:
        return check_object_names(op->fields, "fields", err, errlen);
    case OP_SETTINGS:
        return check_settings(op, err, errlen);
    }
    return proto_fail(err, errlen, -EINVAL, "unknown op type %d",
                      (int)op->type);
}

static int check_actor(const char *actor, char *err, size_t errlen)
{
    if (actor != NULL && proto_token_valid(actor, strlen(actor), VV_ACTOR_MAX))
        return 0;
    return proto_fail(err, errlen, -EINVAL,
                      "actor must be 1 to %d bytes of printable ASCII",
                      VV_ACTOR_MAX);
}

/* ---- items: the writes of an op, one per dot ---- */

/* One write of an op. Plain fields are named by their field name, attrs
 * keys by "attrs.KEY"; the name is also the name of the dot. */
typedef struct {
    char name[PROTO_FIELD_MAX + 1];
    const char *key; /* the attrs key inside name, NULL for a plain field */
    json_t *value;   /* borrowed; NULL to remove */
    int skip;        /* 1 when the policy leaves the field as it is */
} item_t;

typedef struct {
    item_t *v;
    size_t n, cap;
} items_t;

static void items_free(items_t *items)
{
    free(items->v);
    memset(items, 0, sizeof(*items));
}

static int is_attrs_key(const char *name)
{
    return strncmp(name, OBJ_ATTRS_PREFIX, strlen(OBJ_ATTRS_PREFIX)) == 0;
}

static int find_item(const items_t *items, const char *name)
{
    size_t i;

    for (i = 0; i < items->n; i++) {
        if (strcmp(items->v[i].name, name) == 0)
            return 1;
    }
    return 0;
}

static int grow_items(items_t *items)
{
    size_t cap = items->cap ? items->cap * 2 : 8;
    item_t *v;

    if (items->n < items->cap)
        return 0;
    v = realloc(items->v, cap * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    items->v = v;
    items->cap = cap;
    return 0;
}

/* Adds the write of field name, or of attrs key when key is not NULL. A
 * second write of the same name is an error unless dup_ok is set, in which
 * case the first one stays. */
static int add_item(items_t *items, const char *name, const char *key,
                    json_t *value, int dup_ok, char *err, size_t errlen)
{
    char full[PROTO_FIELD_MAX + 1], shown[64];
    size_t plen = strlen(OBJ_ATTRS_PREFIX);
    item_t *item;

    if (key != NULL && (key[0] == '\0' || strlen(key) > PROTO_FIELD_MAX - plen))
        return proto_fail(err, errlen, -EINVAL,
                          "attrs: key %s must be 1 to %zu bytes",
                          proto_quote(key, strlen(key), shown, sizeof(shown)),
                          PROTO_FIELD_MAX - plen);
    snprintf(full, sizeof(full), "%s%s", key ? OBJ_ATTRS_PREFIX : "",
             key ? key : name);
    if (find_item(items, full))
        return dup_ok ? 0
                      : proto_fail(err, errlen, -EINVAL,
                                   "%s: written twice by one op",
                                   proto_quote(full, strlen(full), shown,
                                               sizeof(shown)));
    if (items->n >= OBJ_DOTS_MAX)
        return proto_fail(err, errlen, -EINVAL,
                          "an op writes at most %d fields and attrs keys",
                          OBJ_DOTS_MAX);
    if (grow_items(items) < 0)
        return -ENOMEM;
    item = &items->v[items->n++];
    memcpy(item->name, full, sizeof(full));
    item->key = key ? item->name + plen : NULL;
    item->value = value;
    item->skip = 0;
    return 0;
}

static int add_attrs(items_t *items, json_t *attrs, int dup_ok, char *err,
                     size_t errlen)
{
    char shown[64];
    const char *key;
    json_t *value;

    if (!json_is_object(attrs))
        return proto_fail(err, errlen, -EINVAL,
                          "attrs: must be an object of keys, got %s",
                          proto_json_describe(attrs, shown, sizeof(shown)));
    json_object_foreach (attrs, key, value) {
        int rc = add_item(items, NULL, key, value, dup_ok, err, errlen);

        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Adds a write for each member of fields (create fields, restore fields,
 * update and settings set); "attrs" adds one per key. */
static int add_fields(items_t *items, const json_t *fields, int dup_ok,
                      char *err, size_t errlen)
{
    const char *name;
    json_t *value;
    char shown[64];
    int rc;

    json_object_foreach ((json_t *)fields, name, value) {
        if (is_attrs_key(name))
            return proto_fail(err, errlen, -EINVAL,
                              "field name %s is reserved: write attrs keys "
                              "inside \"attrs\"",
                              proto_quote(name, strlen(name), shown,
                                          sizeof(shown)));
        if (strcmp(name, OBJ_ATTRS) == 0)
            rc = add_attrs(items, value, dup_ok, err, errlen);
        else
            rc = add_item(items, name, NULL, value, dup_ok, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Adds a removal for each attrs key of cur that has a value or a dot. */
static int add_all_attrs(items_t *items, const obj_t *cur, char *err,
                         size_t errlen)
{
    size_t plen = strlen(OBJ_ATTRS_PREFIX);
    json_t *attrs = json_object_get(cur->fields, OBJ_ATTRS);
    const char *key;
    json_t *value;
    int rc;

    json_object_foreach (attrs, key, value) {
        rc = add_item(items, NULL, key, NULL, 1, err, errlen);
        if (rc < 0)
            return rc;
    }
    json_object_foreach (cur->dots, key, value) {
        if (!is_attrs_key(key))
            continue;
        rc = add_item(items, NULL, key + plen, NULL, 1, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int add_unset(items_t *items, const obj_t *cur, const json_t *unset,
                     char *err, size_t errlen)
{
    size_t plen = strlen(OBJ_ATTRS_PREFIX);
    json_t *attrs = json_object_get(cur->fields, OBJ_ATTRS);
    json_t *j;
    size_t i;
    int rc;

    json_array_foreach (unset, i, j) {
        const char *name = json_string_value(j);

        if (strcmp(name, OBJ_ATTRS) == 0 &&
            (attrs == NULL || json_is_object(attrs)))
            rc = add_all_attrs(items, cur, err, errlen);
        else if (strcmp(name, OBJ_ATTRS) == 0)
            rc = add_item(items, name, NULL, NULL, 0, err, errlen);
        else if (is_attrs_key(name))
            rc = add_item(items, NULL, name + plen, NULL, 0, err, errlen);
        else
            rc = add_item(items, name, NULL, NULL, 0, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Fails when the op writes attrs keys into an "attrs" that is not an
 * object, which only data stored before attrs were merged can hold. */
static int check_attrs_target(const items_t *items, const obj_t *cur,
                              char *err, size_t errlen)
{
    json_t *attrs = cur ? json_object_get(cur->fields, OBJ_ATTRS) : NULL;
    char shown[64];
    size_t i;

    if (attrs == NULL || json_is_object(attrs))
        return 0;
    for (i = 0; i < items->n; i++) {
        if (items->v[i].key != NULL)
            return proto_fail(err, errlen, -EINVAL,
                              "attrs: holds %s, not an object of keys; unset "
                              "\"attrs\" first",
                              proto_json_describe(attrs, shown,
                                                  sizeof(shown)));
    }
    return 0;
}

/* Lists the writes of op against cur (NULL for a create or a settings op
 * on a room without settings). Returns 0, -EINVAL with err, or -ENOMEM. */
static int op_items(const obj_t *cur, const op_t *op, items_t *items,
                    char *err, size_t errlen)
{
    int rc = 0;

    memset(items, 0, sizeof(*items));
    if (op->type == OP_CREATE || op->type == OP_RESTORE)
        rc = add_fields(items, op->fields, 0, err, errlen);
    if (op->type == OP_UPDATE || op->type == OP_SETTINGS)
        rc = add_fields(items, op->set, 0, err, errlen);
    if (rc == 0 && op->unset != NULL && cur != NULL)
        rc = add_unset(items, cur, op->unset, err, errlen);

    /* A restore brings back the kept fields that op->fields leaves out. */
    if (rc == 0 && op->type == OP_RESTORE && cur != NULL)
        rc = add_fields(items, cur->fields, 1, err, errlen);
    if (rc == 0)
        rc = check_attrs_target(items, cur, err, errlen);
    if (rc < 0)
        items_free(items);
    return rc;
}

/* ---- writing items into an object ---- */

static json_t *dot_new(const char *actor, uint64_t counter)
{
    return json_pack("[sI]", actor, (json_int_t)counter);
}

static int write_dot(obj_t *obj, const char *name, const char *actor,
                     uint64_t counter)
{
    json_t *dot = dot_new(actor, counter);

    if (dot == NULL)
        return -ENOMEM;
    return json_object_set_new(obj->dots, name, dot) < 0 ? -ENOMEM : 0;
}

/* Writes one item into map (obj's fields, or its own attrs object) under
 * map_name, and its dot. A removal of a name with neither a value nor a
 * dot writes nothing. */
static int write_item(obj_t *obj, json_t *map, const item_t *item,
                      const char *actor, uint64_t counter)
{
    const char *map_name = item->key ? item->key : item->name;

    if (item->value != NULL) {
        if (json_object_set(map, map_name, item->value) < 0)
            return -ENOMEM;
    } else if (json_object_get(map, map_name) != NULL) {
        json_object_del(map, map_name);
    } else if (json_object_get(obj->dots, item->name) == NULL) {
        return 0;
    }
    return write_dot(obj, item->name, actor, counter);
}

/* Gives obj an attrs object of its own, since the one copied from cur is
 * shared. */
static json_t *own_attrs(obj_t *obj)
{
    json_t *old = json_object_get(obj->fields, OBJ_ATTRS);
    json_t *attrs = json_is_object(old) ? json_copy(old) : json_object();

    if (attrs == NULL ||
        json_object_set_new(obj->fields, OBJ_ATTRS, attrs) < 0)
        return NULL;
    return attrs;
}

/* Writes the items that are not skipped, each with the dot
 * [actor, counter]. An "attrs" left empty is removed. */
static int write_items(obj_t *obj, const items_t *items, const char *actor,
                       uint64_t counter)
{
    json_t *attrs = NULL;
    size_t i;

    for (i = 0; i < items->n; i++) {
        const item_t *item = &items->v[i];

        if (item->skip)
            continue;
        if (item->key != NULL && attrs == NULL && (attrs = own_attrs(obj)) == NULL)
            return -ENOMEM;
        if (write_item(obj, item->key ? attrs : obj->fields, item, actor,
                       counter) < 0)
            return -ENOMEM;
    }
    if (attrs != NULL && json_object_size(attrs) == 0)
        json_object_del(obj->fields, OBJ_ATTRS);
    return 0;
}

/* ---- building the resulting object ---- */

/* Returns a new object with id, kind and the version vector vv. */
static obj_t *obj_with_vv(const char *id, const char *kind, const vv_t *vv)
{
    obj_t *obj = obj_new(id, kind);

    if (obj != NULL && vv_copy(&obj->vv, vv) < 0) {
        obj_free(obj);
        return NULL;
    }
    return obj;
}

static int check_size(const obj_t *obj, char *err, size_t errlen)
{
    char shown[64];

    proto_quote(obj->id, strlen(obj->id), shown, sizeof(shown));
    if (json_object_size(obj->fields) > OBJ_FIELDS_MAX)
        return proto_fail(err, errlen, -EINVAL,
                          "object %s would have more than %d fields", shown,
                          OBJ_FIELDS_MAX);
    if (json_object_size(obj->dots) > OBJ_DOTS_MAX)
        return proto_fail(err, errlen, -EINVAL,
                          "object %s would keep more than %d field dots, "
                          "counting removed fields and attrs keys",
                          shown, OBJ_DOTS_MAX);
    return 0;
}

/*
 * Builds the object that results from writing items: a copy of base (or an
 * empty object of kind when base is NULL) with vv and the items written
 * with the dot [actor, vv[actor]]. Returns 0 with *next set, -EINVAL with
 * err when the result is over the object limits, or -ENOMEM.
 */
static int build_written(const obj_t *base, const char *id, const char *kind,
                         const items_t *items, const char *actor,
                         const vv_t *vv, obj_t **next, char *err,
                         size_t errlen)
{
    obj_t *obj = obj_with_vv(id, kind, vv);
    int rc = -ENOMEM;

    if (obj == NULL || (base != NULL && copy_maps(obj, base, 0) < 0))
        goto fail;
    obj->rev = base ? base->rev : 0;
    if (write_items(obj, items, actor, vv_get(vv, actor)) < 0)
        goto fail;
    rc = check_size(obj, err, errlen);
    if (rc < 0)
        goto fail;
    *next = obj;
    return 0;

fail:
    obj_free(obj);
    return rc;
}

/* Copies field name and its dot from cur to obj when cur has them. */
static int keep_field(obj_t *obj, const obj_t *cur, const char *name)
{
    json_t *value = json_object_get(cur->fields, name);
    json_t *dot = json_object_get(cur->dots, name);

    if (value != NULL && json_object_set(obj->fields, name, value) < 0)
        return -ENOMEM;
    if (dot != NULL && json_object_set(obj->dots, name, dot) < 0)
        return -ENOMEM;
    return 0;
}

static int build_tombstone(const obj_t *cur, const vv_t *vv, obj_t **next)
{
    obj_t *obj = obj_with_vv(cur->id, cur->kind, vv);

    if (obj == NULL)
        return -ENOMEM;
    obj->deleted = 1;
    obj->rev = cur->rev;
    if (keep_field(obj, cur, "item") < 0 || keep_field(obj, cur, "frame") < 0) {
        obj_free(obj);
        return -ENOMEM;
    }
    *next = obj;
    return 0;
}

/* ---- concurrency ---- */

/* Returns 1 when the write named by dot is covered by base or is one of
 * actor's own writes. A malformed dot counts as seen. */
static int dot_seen(const json_t *dot, const vv_t *base, const char *actor)
{
    const char *writer = json_string_value(json_array_get(dot, 0));
    json_int_t counter = json_integer_value(json_array_get(dot, 1));

    if (writer == NULL || strcmp(writer, actor) == 0)
        return 1;
    return vv_covers_dot(base, writer, (uint64_t)counter);
}

/* Returns 1 when base, with actor's own writes, covers vv. */
static int vv_seen(const vv_t *base, const vv_t *vv, const char *actor)
{
    size_t i;

    for (i = 0; i < vv->len; i++) {
        const vv_entry_t *e = &vv->entries[i];

        if (strcmp(e->actor, actor) != 0 &&
            !vv_covers_dot(base, e->actor, e->counter))
            return 0;
    }
    return 1;
}

/* Appends {field, value?, dot} to list. */
static int add_entry(json_t *list, const char *field, json_t *value,
                     json_t *dot)
{
    json_t *entry = json_pack("{s:s, s:O}", "field", field, "dot", dot);

    if (entry == NULL)
        return -ENOMEM;
    if (value != NULL && json_object_set(entry, "value", value) < 0) {
        json_decref(entry);
        return -ENOMEM;
    }
    return json_array_append_new(list, entry) < 0 ? -ENOMEM : 0;
}

/* Returns the value that cur holds for name: a field, or an attrs key. */
static json_t *current_value(const obj_t *cur, const char *name)
{
    if (is_attrs_key(name))
        return json_object_get(json_object_get(cur->fields, OBJ_ATTRS),
                               name + strlen(OBJ_ATTRS_PREFIX));
    return json_object_get(cur->fields, name);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Builds in *list every field of cur whose dot actor has not seen, sorted
 * by name. */
static int unseen_fields(const obj_t *cur, const vv_t *base, const char *actor,
                         json_t **list)
{
    size_t i, n = 0, cap = json_object_size(cur->dots);
    const char **names = calloc(cap + 1, sizeof(*names));
    const char *name;
    json_t *dot;
    int rc = 0;

    *list = json_array();
    if (names == NULL || *list == NULL) {
        free(names);
        return -ENOMEM;
    }
    json_object_foreach (cur->dots, name, dot) {
        if (!dot_seen(dot, base, actor))
            names[n++] = name;
    }
    qsort(names, n, sizeof(*names), name_cmp);
    for (i = 0; rc == 0 && i < n; i++)
        rc = add_entry(*list, names[i], current_value(cur, names[i]),
                       json_object_get(cur->dots, names[i]));
    free(names);
    return rc;
}

/* ---- obj_apply ---- */

static int reject(op_result_t *res, const char *reason)
{
    res->status = RES_REJECTED;
    res->reason = reason;
    return 0;
}

static int conflict(op_result_t *res, const char *reason, const vv_t *vv)
{
    res->status = RES_CONFLICT;
    res->reason = reason;
    return vv_copy(&res->vv, vv);
}

static int not_found(op_result_t *res, const char *id)
{
    char shown[64];

    proto_quote(id, strlen(id), shown, sizeof(shown));
    proto_fail(res->message, sizeof(res->message), 0,
               "object %s does not exist", shown);
    return reject(res, "not_found");
}

/* Turns a build error into a rejection: -EINVAL and -ERANGE reject the op
 * as invalid (the message is in res), -ENOMEM stays. */
static int build_failed(op_result_t *res, int rc, const char *actor)
{
    if (rc == -ERANGE)
        proto_fail(res->message, sizeof(res->message), 0,
                   "the counter of actor %s would pass 2^53-1", actor);
    if (rc == -EINVAL || rc == -ERANGE)
        return reject(res, "invalid");
    return rc;
}

/* Sets *vv to cur's vv (empty for NULL) with actor's counter grown by one.
 * Returns 0, -ERANGE or -ENOMEM. */
static int next_vv(const obj_t *cur, const char *actor, vv_t *vv)
{
    int rc = cur ? vv_copy(vv, &cur->vv) : 0;

    return rc < 0 ? rc : vv_bump(vv, actor, NULL);
}

/* Checks the object an op built. On failure it is freed, *next cleared
 * and res rejected as invalid. */
static int validate(obj_t **next, const merge_settings_t *settings,
                    op_result_t *res)
{
    const json_t *schema = settings ? settings->schema : NULL;

    if (valid_object(*next, schema, res->message, sizeof(res->message)) == 0)
        return 0;
    obj_free(*next);
    *next = NULL;
    return reject(res, "invalid");
}

/* Builds the object of an op that applies, from base (NULL for a new
 * object) and the items that are not skipped, and validates it. */
static int build_checked(const obj_t *cur, const obj_t *base, const op_t *op,
                         const char *kind, const items_t *items,
                         const char *actor, const merge_settings_t *settings,
                         obj_t **next, op_result_t *res)
{
    vv_t vv;
    int rc;

    vv_init(&vv);
    rc = next_vv(cur, actor, &vv);
    if (rc == 0)
        rc = build_written(base, op->id, kind, items, actor, &vv, next,
                           res->message, sizeof(res->message));
    vv_free(&vv);
    if (rc < 0)
        return build_failed(res, rc, actor);
    (*next)->rev = cur ? cur->rev : 0;
    return validate(next, settings, res);
}

static int apply_create(const obj_t *cur, const op_t *op, const char *actor,
                        const merge_settings_t *settings, obj_t **next,
                        op_result_t *res)
{
    items_t items;
    int rc;

    if (cur != NULL)
        return conflict(res, "exists", &cur->vv);
    rc = op_items(NULL, op, &items, res->message, sizeof(res->message));
    if (rc < 0)
        return build_failed(res, rc, actor);
    rc = build_checked(NULL, NULL, op, op->kind, &items, actor, settings, next,
                       res);
    items_free(&items);
    return rc;
}

/* Lists the concurrently modified items in *list; under the reject policy
 * they are marked skip. Returns the count of items that still apply, or
 * -ENOMEM. */
static int sort_items(const obj_t *cur, const op_t *op, const char *actor,
                      policy_t policy, items_t *items, json_t **list)
{
    int applied = 0;
    size_t i;

    *list = json_array();
    if (*list == NULL)
        return -ENOMEM;
    for (i = 0; i < items->n; i++) {
        item_t *item = &items->v[i];
        json_t *dot = json_object_get(cur->dots, item->name);

        if (dot != NULL && !dot_seen(dot, &op->base, actor)) {
            if (add_entry(*list, item->name, current_value(cur, item->name),
                          dot) < 0)
                return -ENOMEM;
            item->skip = policy == POLICY_REJECT;
        }
        applied += !item->skip;
    }
    return applied;
}

/* Files the concurrent list in res once the op applied. */
static void file_list(op_result_t *res, policy_t policy, json_t **list)
{
    if (json_array_size(*list) > 0 && policy == POLICY_REJECT) {
        res->status = RES_MERGED;
        res->reason = "concurrent";
        res->conflicts = *list;
    } else if (json_array_size(*list) > 0) {
        res->overwritten = *list;
    } else {
        json_decref(*list);
    }
    *list = NULL;
}

/* Applies an update, or a settings op to an existing room object. */
static int apply_update(const obj_t *cur, const op_t *op, const char *actor,
                        const merge_settings_t *settings, obj_t **next,
                        op_result_t *res)
{
    policy_t policy = settings ? settings->policy : POLICY_REJECT;
    json_t *list = NULL;
    items_t items;
    int rc;

    if (cur == NULL)
        return not_found(res, op->id);
    if (cur->deleted)
        return conflict(res, "deleted", &cur->vv);
    rc = op_items(cur, op, &items, res->message, sizeof(res->message));
    if (rc < 0)
        return build_failed(res, rc, actor);

    rc = sort_items(cur, op, actor, policy, &items, &list);
    if (rc == 0 && json_array_size(list) > 0) {
        res->conflicts = list;
        list = NULL;
        rc = conflict(res, "concurrent", &cur->vv);
    } else if (rc >= 0) {
        rc = build_checked(cur, cur, op, cur->kind, &items, actor, settings,
                           next, res);
        if (rc == 0 && *next != NULL)
            file_list(res, policy, &list);
    }
    json_decref(list);
    items_free(&items);
    return rc;
}

static int apply_settings(const obj_t *cur, const op_t *op, const char *actor,
                          const merge_settings_t *settings, obj_t **next,
                          op_result_t *res)
{
    items_t items;
    int rc;

    if (cur != NULL)
        return apply_update(cur, op, actor, settings, next, res);

    /* The first settings op creates the room object. */
    rc = op_items(NULL, op, &items, res->message, sizeof(res->message));
    if (rc < 0)
        return build_failed(res, rc, actor);
    rc = build_checked(NULL, NULL, op, OBJ_ROOM_KIND, &items, actor, settings,
                       next, res);
    items_free(&items);
    return rc;
}

/* Decides whether a delete or restore is concurrent: returns 1 when it may
 * apply (with *list set under lww), 0 after filling res with the conflict,
 * or -ENOMEM. */
static int check_whole(const obj_t *cur, const op_t *op, const char *actor,
                       policy_t policy, json_t **list, op_result_t *res)
{
    int rc;

    *list = NULL;
    if (vv_seen(&op->base, &cur->vv, actor))
        return 1;
    rc = unseen_fields(cur, &op->base, actor, list);
    if (rc < 0) {
        json_decref(*list);
        *list = NULL;
        return rc;
    }
    if (policy == POLICY_LWW)
        return 1;
    res->conflicts = *list;
    *list = NULL;
    return conflict(res, "concurrent", &cur->vv);
}

static int apply_delete(const obj_t *cur, const op_t *op, const char *actor,
                        const merge_settings_t *settings, obj_t **next,
                        op_result_t *res)
{
    policy_t policy = settings ? settings->policy : POLICY_REJECT;
    json_t *list;
    vv_t vv;
    int rc;

    if (cur == NULL)
        return not_found(res, op->id);
    if (cur->deleted)
        return conflict(res, "deleted", &cur->vv);
    rc = check_whole(cur, op, actor, policy, &list, res);
    if (rc <= 0)
        return rc;

    vv_init(&vv);
    rc = next_vv(cur, actor, &vv);
    if (rc == 0)
        rc = build_tombstone(cur, &vv, next);
    vv_free(&vv);
    if (rc == 0)
        file_list(res, policy, &list);
    json_decref(list);
    return rc < 0 ? build_failed(res, rc, actor) : 0;
}

static int apply_restore(const obj_t *cur, const op_t *op, const char *actor,
                         const merge_settings_t *settings, obj_t **next,
                         op_result_t *res)
{
    policy_t policy = settings ? settings->policy : POLICY_REJECT;
    json_t *list;
    items_t items;
    int rc;

    if (cur == NULL)
        return not_found(res, op->id);
    if (!cur->deleted)
        return conflict(res, "exists", &cur->vv);
    rc = check_whole(cur, op, actor, policy, &list, res);
    if (rc <= 0)
        return rc;

    rc = op_items(cur, op, &items, res->message, sizeof(res->message));
    if (rc == 0) {
        rc = build_checked(cur, NULL, op, cur->kind, &items, actor, settings,
                           next, res);
        items_free(&items);
    } else {
        rc = build_failed(res, rc, actor);
    }
    if (rc == 0 && *next != NULL)
        file_list(res, policy, &list);
    json_decref(list);
    return rc;
}

static int apply_op(const obj_t *cur, const op_t *op, const char *actor,
                    const merge_settings_t *settings, obj_t **next,
                    op_result_t *res)
{
    switch (op->type) {
    case OP_CREATE:
        return apply_create(cur, op, actor, settings, next, res);
    case OP_UPDATE:
        return apply_update(cur, op, actor, settings, next, res);
    case OP_DELETE:
        return apply_delete(cur, op, actor, settings, next, res);
    case OP_RESTORE:
        return apply_restore(cur, op, actor, settings, next, res);
    case OP_SETTINGS:
        return apply_settings(cur, op, actor, settings, next, res);
    }
    return reject(res, "invalid");
}

int obj_apply_ex(const obj_t *cur, const op_t *op, const char *actor,
                 const merge_settings_t *settings, obj_t **next,
                 op_result_t *res)
{
    int rc;

    *next = NULL;
    op_result_clear(res);
    if (check_actor(actor, res->message, sizeof(res->message)) < 0 ||
        check_op(op, res->message, sizeof(res->message)) < 0)
        return reject(res, "invalid");

    rc = apply_op(cur, op, actor, settings, next, res);
    if (rc == 0 && *next != NULL) {
        if (res->status != RES_MERGED) {
            res->status = RES_APPLIED;
            res->reason = NULL;
        }
        rc = vv_copy(&res->vv, &(*next)->vv);
    }
    if (rc < 0) {
        obj_free(*next);
        *next = NULL;
        op_result_clear(res);
    }
    return rc;
}

int obj_apply(const obj_t *cur, const op_t *op, const char *actor, obj_t **next,
              op_result_t *res)
{
    return obj_apply_ex(cur, op, actor, NULL, next, res);
}

/* ---- obj_replay ---- */

/* Checks that op fits cur as an event op. Returns 0 or -EINVAL. */
static int replay_fits(const obj_t *cur, const op_t *op)
{
    switch (op->type) {
    case OP_CREATE:
        return cur == NULL ? 0 : -EINVAL;
    case OP_UPDATE:
    case OP_DELETE:
        return cur != NULL && !cur->deleted ? 0 : -EINVAL;
    case OP_RESTORE:
        return cur != NULL && cur->deleted ? 0 : -EINVAL;
    case OP_SETTINGS:
        return cur == NULL || !cur->deleted ? 0 : -EINVAL;
    }
    return -EINVAL;
}

static const char *replay_kind(const obj_t *cur, const op_t *op)
{
    if (op->type == OP_CREATE)
        return op->kind;
    if (op->type == OP_SETTINGS)
        return OBJ_ROOM_KIND;
    return cur->kind;
}

int obj_replay(const obj_t *cur, const op_t *op, const char *actor,
               const vv_t *vv, obj_t **next)
{
    char err[PROTO_ERR_MAX];
    const obj_t *base = cur;
    items_t items;
    int rc;

    *next = NULL;
    if (check_actor(actor, err, sizeof(err)) < 0 ||
        check_op(op, err, sizeof(err)) < 0 || vv_get(vv, actor) == 0 ||
        replay_fits(cur, op) < 0)
        return -EINVAL;
    if (op->type == OP_DELETE)
        return build_tombstone(cur, vv, next);

    /* A restore rebuilds the object from its fields alone. */
    if (op->type == OP_RESTORE)
        base = NULL;
    rc = op_items(cur, op, &items, err, sizeof(err));
    if (rc < 0)
        return rc;
    rc = build_written(base, op->id, replay_kind(cur, op), &items, actor, vv,
                       next, err, sizeof(err));
    items_free(&items);
    return rc;
}

json_t *obj_to_wire(const obj_t *obj)
{
    json_t *vv = vv_to_json(&obj->vv);
    json_t *fields = json_copy(obj->fields);

    if (vv == NULL || fields == NULL) {
        json_decref(vv);
        json_decref(fields);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:o, s:o}", "id", obj->id, "kind", obj->kind,
                     "vv", vv, "fields", fields);
}

/* ---- event ops ---- */

static const char *const op_names[] = {
    [OP_CREATE] = "create",   [OP_UPDATE] = "update",
    [OP_DELETE] = "delete",   [OP_RESTORE] = "restore",
    [OP_SETTINGS] = "settings",
};

/* Returns 1 when the list of {field, ...} entries names field. */
static int list_names(const json_t *list, const char *field)
{
    json_t *entry;
    size_t i;

    json_array_foreach (list, i, entry) {
        const char *s = json_string_value(json_object_get(entry, "field"));

        if (s != NULL && strcmp(s, field) == 0)
            return 1;
    }
    return 0;
}

/* Adds to set the members of op's set that applied: those not in
 * conflicts, and of "attrs" the keys not in conflicts. */
static int applied_set(const json_t *opset, const json_t *conflicts,
                       json_t *set)
{
    char full[PROTO_FIELD_MAX + 8];
    const char *name, *key;
    json_t *value, *v, *attrs;

    json_object_foreach ((json_t *)opset, name, value) {
        if (strcmp(name, OBJ_ATTRS) != 0) {
            if (!list_names(conflicts, name) &&
                json_object_set(set, name, value) < 0)
                return -ENOMEM;
            continue;
        }
        attrs = json_object();
        if (attrs == NULL || json_object_set_new(set, name, attrs) < 0)
            return -ENOMEM;
        json_object_foreach (value, key, v) {
            snprintf(full, sizeof(full), "%s%s", OBJ_ATTRS_PREFIX, key);
            if (!list_names(conflicts, full) &&
                json_object_set(attrs, key, v) < 0)
                return -ENOMEM;
        }
        if (json_object_size(attrs) == 0)
            json_object_del(set, name);
    }
    return 0;
}

/* Adds to unset the removals of op that applied. An "attrs" of which some
 * keys conflicted becomes the list of the keys removed. */
static int applied_unset(const obj_t *cur, const op_t *op,
                         const json_t *conflicts, json_t *unset)
{
    char err[PROTO_ERR_MAX];
    items_t items;
    size_t i;
    int rc;

    rc = op_items(cur, op, &items, err, sizeof(err));
    if (rc < 0)
        return rc == -ENOMEM ? rc : 0;
    for (i = 0; rc == 0 && i < items.n; i++) {
        const item_t *item = &items.v[i];

        if (item->value != NULL || list_names(conflicts, item->name))
            continue;
        rc = json_array_append_new(unset, json_string(item->name));
    }
    items_free(&items);
    return rc < 0 ? -ENOMEM : 0;
}

/* Adds the set and unset members of a merged op: only what applied. */
static int add_merged_fields(json_t *j, const obj_t *cur, const op_t *op,
                             const json_t *conflicts)
{
    json_t *set = json_object();
    json_t *unset = json_array();
    int rc = 0;

    if (set == NULL || unset == NULL)
        rc = -ENOMEM;
    if (rc == 0 && op->set != NULL)
        rc = applied_set(op->set, conflicts, set);
    if (rc == 0 && op->unset != NULL)
        rc = applied_unset(cur, op, conflicts, unset);
    if (rc == 0 && json_object_size(set) > 0)
        rc = json_object_set(j, "set", set);
    if (rc == 0 && json_array_size(unset) > 0)
        rc = json_object_set(j, "unset", unset);
    json_decref(set);
    json_decref(unset);
    return rc < 0 ? -ENOMEM : 0;
}

static int add_op_fields(json_t *j, const obj_t *cur, const op_t *op,
                         const op_result_t *res, const obj_t *next)
{
    int rc = 0;

    switch (op->type) {
    case OP_CREATE:
        rc |= json_object_set_new(j, "kind", json_string(op->kind));
        if (op->fields != NULL)
            rc |= json_object_set(j, "fields", op->fields);
        break;
    case OP_RESTORE:
        rc |= json_object_set_new(j, "kind", json_string(next->kind));
        rc |= json_object_set_new(j, "fields", json_copy(next->fields));
        break;
    case OP_UPDATE:
    case OP_SETTINGS:
        if (res->status == RES_MERGED)
            return add_merged_fields(j, cur, op, res->conflicts);
        if (op->set != NULL)
            rc |= json_object_set(j, "set", op->set);
        if (op->unset != NULL)
            rc |= json_object_set(j, "unset", op->unset);
        break;
    case OP_DELETE:
        break;
    }
    return rc != 0 ? -ENOMEM : 0;
}

json_t *obj_event_op(const obj_t *cur, const op_t *op, const op_result_t *res,
                     const obj_t *next)
{
    json_t *j;
    int rc = 0;

    if (next == NULL ||
        (res->status != RES_APPLIED && res->status != RES_MERGED) ||
        (size_t)op->type >= sizeof(op_names) / sizeof(op_names[0]))
        return NULL;
    j = json_pack("{s:s}", "op", op_names[op->type]);
    if (j == NULL)
        return NULL;
    if (op->type != OP_SETTINGS)
        rc |= json_object_set_new(j, "id", json_string(op->id));
    if (rc == 0)
        rc = add_op_fields(j, cur, op, res, next);
    if (rc == 0)
        rc = json_object_set_new(j, "vv", vv_to_json(&res->vv));
    if (rc == 0 && res->overwritten != NULL)
        rc = json_object_set(j, "overwritten", res->overwritten);
    if (rc != 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}
