/*
 * Annotation objects and the rules that decide what an edit op does to one:
 * creates, field updates with per-field dots, tombstones, and conflict
 * reports. Storage and transport live elsewhere.
 */
#include "obj.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

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
    if (json_object_size(op->fields) > OBJ_FIELDS_MAX)
        return proto_fail(err, errlen, -EINVAL,
                          "fields: an object has at most %d fields",
                          OBJ_FIELDS_MAX);
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

/* Checks the shape of op. msg decoding has checked ops that came from a
 * client already, so this guards ops built in code. */
static int check_op(const op_t *op, char *err, size_t errlen)
{
    if (op->id == NULL ||
        !proto_token_valid(op->id, strlen(op->id), PROTO_ID_MAX))
        return proto_fail(err, errlen, -EINVAL,
                          "id must be 1 to %d bytes of printable ASCII",
                          PROTO_ID_MAX);
    switch (op->type) {
    case OP_CREATE:
        return check_create(op, err, errlen);
    case OP_UPDATE:
        return check_update(op, err, errlen);
    case OP_DELETE:
        return 0;
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

/* ---- building the resulting object ---- */

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

static int set_field(obj_t *obj, const char *name, json_t *value,
                     const char *actor, uint64_t counter)
{
    if (json_object_set(obj->fields, name, value) < 0)
        return -ENOMEM;
    return write_dot(obj, name, actor, counter);
}

static int unset_field(obj_t *obj, const char *name, const char *actor,
                       uint64_t counter)
{
    int had_value = json_object_get(obj->fields, name) != NULL;

    if (!had_value && json_object_get(obj->dots, name) == NULL)
        return 0;
    if (had_value)
        json_object_del(obj->fields, name);
    return write_dot(obj, name, actor, counter);
}

static int set_all(obj_t *obj, const json_t *fields, const char *actor,
                   uint64_t counter)
{
    const char *name;
    json_t *value;

    json_object_foreach ((json_t *)fields, name, value) {
        if (set_field(obj, name, value, actor, counter) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int unset_all(obj_t *obj, const json_t *names, const char *actor,
                     uint64_t counter)
{
    size_t i;
    json_t *name;

    json_array_foreach (names, i, name) {
        if (unset_field(obj, json_string_value(name), actor, counter) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* Returns a new object with cur's id and kind and the version vector vv. */
static obj_t *obj_with_vv(const char *id, const char *kind, const vv_t *vv)
{
    obj_t *obj = obj_new(id, kind);

    if (obj != NULL && vv_copy(&obj->vv, vv) < 0) {
        obj_free(obj);
        return NULL;
    }
    return obj;
}

static int build_create(const op_t *op, const char *actor, const vv_t *vv,
                        obj_t **next)
{
    obj_t *obj = obj_with_vv(op->id, op->kind, vv);

    if (obj == NULL)
        return -ENOMEM;
    if (op->fields != NULL &&
        set_all(obj, op->fields, actor, vv_get(vv, actor)) < 0) {
        obj_free(obj);
        return -ENOMEM;
    }
    *next = obj;
    return 0;
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
                          "counting removed fields",
                          shown, OBJ_DOTS_MAX);
    return 0;
}

/* Returns 0 with *next set, -EINVAL (message in err) when the result would
 * be over the object limits, or -ENOMEM. */
static int build_update(const obj_t *cur, const op_t *op, const char *actor,
                        const vv_t *vv, obj_t **next, char *err, size_t errlen)
{
    uint64_t counter = vv_get(vv, actor);
    obj_t *obj = obj_with_vv(cur->id, cur->kind, vv);
    int rc = -ENOMEM;

    if (obj == NULL || copy_maps(obj, cur, 0) < 0)
        goto fail;
    obj->rev = cur->rev;

    if (op->set != NULL && set_all(obj, op->set, actor, counter) < 0)
        goto fail;
    if (op->unset != NULL && unset_all(obj, op->unset, actor, counter) < 0)
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

/* Appends {field, value, dot} to list for a field whose dot base has not
 * seen. A malformed dot is skipped. Returns 0 or -ENOMEM. */
static int add_conflict(json_t *list, const obj_t *cur, const char *name,
                        json_t *dot, const vv_t *base)
{
    const char *actor = json_string_value(json_array_get(dot, 0));
    json_int_t counter = json_integer_value(json_array_get(dot, 1));
    json_t *value = json_object_get(cur->fields, name);
    json_t *entry;

    if (actor == NULL || vv_covers_dot(base, actor, (uint64_t)counter))
        return 0;
    entry = json_pack("{s:s}", "field", name);
    if (entry == NULL)
        return -ENOMEM;
    if ((value != NULL && json_object_set(entry, "value", value) < 0) ||
        json_object_set(entry, "dot", dot) < 0) {
        json_decref(entry);
        return -ENOMEM;
    }
    return json_array_append_new(list, entry) < 0 ? -ENOMEM : 0;
}

static int concurrent(op_result_t *res, const obj_t *cur, const vv_t *base)
{
    const char *name;
    json_t *dot;

    res->conflicts = json_array();
    if (res->conflicts == NULL)
        return -ENOMEM;
    json_object_foreach (cur->dots, name, dot) {
        if (add_conflict(res->conflicts, cur, name, dot, base) < 0)
            return -ENOMEM;
    }
    return conflict(res, "concurrent", &cur->vv);
}

static int apply_create(const obj_t *cur, const op_t *op, const char *actor,
                        obj_t **next, op_result_t *res)
{
    vv_t vv;
    int rc;

    if (cur != NULL)
        return conflict(res, "exists", &cur->vv);

    vv_init(&vv);
    rc = vv_set(&vv, actor, 1);
    if (rc == 0)
        rc = build_create(op, actor, &vv, next);
    vv_free(&vv);
    return rc;
}

/* Decides whether an update or delete may apply to cur. Returns 1 when it
 * may, 0 after filling res with the conflict or rejection, or -ENOMEM. */
static int check_base(const obj_t *cur, const op_t *op, op_result_t *res)
{
    char shown[64];

    if (cur == NULL) {
        proto_quote(op->id, strlen(op->id), shown, sizeof(shown));
        proto_fail(res->message, sizeof(res->message), 0,
                   "object %s does not exist", shown);
        return reject(res, "not_found");
    }
    if (cur->deleted)
        return conflict(res, "deleted", &cur->vv);
    if (!vv_covers(&op->base, &cur->vv))
        return concurrent(res, cur, &op->base);
    return 1;
}

static int apply_change(const obj_t *cur, const op_t *op, const char *actor,
                        obj_t **next, op_result_t *res)
{
    vv_t vv;
    int rc = check_base(cur, op, res);

    if (rc <= 0)
        return rc;

    vv_init(&vv);
    rc = vv_copy(&vv, &cur->vv);
    if (rc == 0)
        rc = vv_bump(&vv, actor, NULL);
    if (rc == -ERANGE) {
        proto_fail(res->message, sizeof(res->message), 0,
                   "the counter of actor %s would pass 2^53-1", actor);
        rc = reject(res, "invalid");
    } else if (rc == 0 && op->type == OP_DELETE) {
        rc = build_tombstone(cur, &vv, next);
    } else if (rc == 0) {
        rc = build_update(cur, op, actor, &vv, next, res->message,
                          sizeof(res->message));
        if (rc == -EINVAL)
            rc = reject(res, "invalid");
    }
    vv_free(&vv);
    return rc;
}

int obj_apply(const obj_t *cur, const op_t *op, const char *actor, obj_t **next,
              op_result_t *res)
{
    int rc;

    *next = NULL;
    op_result_clear(res);
    if (check_actor(actor, res->message, sizeof(res->message)) < 0 ||
        check_op(op, res->message, sizeof(res->message)) < 0)
        return reject(res, "invalid");

    if (op->type == OP_CREATE)
        rc = apply_create(cur, op, actor, next, res);
    else
        rc = apply_change(cur, op, actor, next, res);

    if (rc == 0 && *next != NULL) {
        res->status = RES_APPLIED;
        res->reason = NULL;
        rc = vv_copy(&res->vv, &(*next)->vv);
    }
    if (rc < 0) {
        obj_free(*next);
        *next = NULL;
        op_result_clear(res);
    }
    return rc;
}

/* ---- obj_replay ---- */

int obj_replay(const obj_t *cur, const op_t *op, const char *actor,
               const vv_t *vv, obj_t **next)
{
    char err[PROTO_ERR_MAX];

    *next = NULL;
    if (check_actor(actor, err, sizeof(err)) < 0 ||
        check_op(op, err, sizeof(err)) < 0 || vv_get(vv, actor) == 0)
        return -EINVAL;

    switch (op->type) {
    case OP_CREATE:
        if (cur != NULL)
            return -EINVAL;
        return build_create(op, actor, vv, next);
    case OP_UPDATE:
        if (cur == NULL || cur->deleted)
            return -EINVAL;
        return build_update(cur, op, actor, vv, next, err, sizeof(err));
    case OP_DELETE:
        if (cur == NULL || cur->deleted)
            return -EINVAL;
        return build_tombstone(cur, vv, next);
    }
    return -EINVAL;
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
