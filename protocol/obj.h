/*
 * Annotation objects and the pure apply logic of edit ops.
 *
 * obj_apply() decides what one op does to one object and builds the object
 * that results; it touches no storage and no network, so the same rules run
 * in the server, in tests and in tools.
 */
#ifndef AL_OBJ_H
#define AL_OBJ_H

#include <jansson.h>
#include <stdint.h>

#include "vv.h"

/* Maximum fields of one object. A removed field keeps its dot so that a
 * later conflict can report it, and dots therefore have their own cap. */
#define OBJ_FIELDS_MAX 256
#define OBJ_DOTS_MAX (2 * OBJ_FIELDS_MAX)

typedef struct {
    char *id;       /* owned */
    char *kind;     /* owned */
    json_t *fields; /* owned JSON object: field name -> value */
    json_t *dots;   /* owned JSON object: field name -> [actor, counter] */
    vv_t vv;
    int deleted;    /* 1 for a tombstone */
    uint64_t rev;   /* room seq of the last write, 0 when never stored */
} obj_t;

typedef enum { OP_CREATE, OP_UPDATE, OP_DELETE } op_type_t;

typedef struct {
    op_type_t type;
    char *id;       /* owned */
    char *kind;     /* owned; create only */
    json_t *fields; /* owned object; create only, may be NULL */
    json_t *set;    /* owned object; update only, may be NULL */
    json_t *unset;  /* owned array of strings; update only, may be NULL */
    vv_t base;      /* update and delete */
} op_t;

typedef enum { RES_APPLIED, RES_CONFLICT, RES_REJECTED } res_status_t;

/* The outcome of one op, as reported in an ack. */
typedef struct {
    res_status_t status;
    const char *reason; /* static string: NULL, "concurrent", "exists",
                           "deleted", "not_found" or "invalid" */
    char message[256];  /* for rejected ops */
    json_t *conflicts;  /* owned array of {field, value, dot}, or NULL */
    vv_t vv;            /* vv after the op, or as held on conflict */
} op_result_t;

/* Returns a new empty object with copies of id and kind, or NULL. */
obj_t *obj_new(const char *id, const char *kind);

/* Returns a deep copy of obj (fields and dots copied), or NULL. */
obj_t *obj_clone(const obj_t *obj);

void obj_free(obj_t *obj);

/* Returns 1 when a and b have the same id, kind, fields, dots, vv and
 * deleted flag. rev is not compared. */
int obj_equal(const obj_t *a, const obj_t *b);

void op_init(op_t *op);
void op_clear(op_t *op);

void op_result_init(op_result_t *res);
void op_result_clear(op_result_t *res);

/*
 * Applies op, written by actor, to cur (NULL when the id is unknown).
 *
 * On RES_APPLIED, *next receives a new object owned by the caller (for a
 * delete, a tombstone) and res->vv its version vector. On a conflict or a
 * rejection *next is NULL and res says why. cur is never modified.
 * res must be initialised; its old contents are cleared first.
 * Returns 0 with res filled, or -ENOMEM.
 *
 * *next has its own fields and dots objects, but the field values in them
 * are shared references with cur and op: treat field values as immutable.
 * next->rev is cur's rev (0 for a create); the store sets the new one.
 *
 * An update or delete applies only when op->base covers cur's vv, as a
 * whole: otherwise it is a "concurrent" conflict whose res->conflicts lists
 * each field with a dot base has not seen, as {field, value, dot}, with no
 * value for a removed field. The list is empty when the only unseen write
 * is a create without fields.
 *
 * A field removed by "unset" keeps its dot, with no value in fields, so a
 * later concurrent update can list it in its conflicts. An unset of a field
 * that has neither a value nor a dot writes nothing for that name. An op
 * that would leave more than OBJ_FIELDS_MAX fields or OBJ_DOTS_MAX dots, or
 * that is malformed (bad id, kind or field name, an update with no field),
 * is rejected with reason "invalid". A tombstone keeps the fields "item"
 * and "frame" and their dots.
 */
int obj_apply(const obj_t *cur, const op_t *op, const char *actor,
              obj_t **next, op_result_t *res);

/*
 * Applies an op from an event (already decided by the writer) to cur,
 * setting vv to the event's vv and each written field's dot to
 * [actor, vv[actor]]. Used to keep a room cache in step with the events.
 * On success *next is a new object. Returns 0, -EINVAL for an op that does
 * not fit cur, or -ENOMEM. Ops that do not fit are a create of an existing
 * id, an update or delete of an unknown or deleted one, a vv with no entry
 * for actor, and an op that obj_apply() would reject as invalid.
 * op->base is not read.
 */
int obj_replay(const obj_t *cur, const op_t *op, const char *actor,
               const vv_t *vv, obj_t **next);

/* Returns the object as the protocol shows it: {id, kind, vv, fields}, or
 * NULL on allocation failure. A tombstone is shown the same way. */
json_t *obj_to_wire(const obj_t *obj);

#endif
