/*
 * Annotation objects and the pure apply logic of edit ops.
 *
 * obj_apply_ex() decides what one op does to one object and builds the
 * object that results. It touches no storage and no network, so the same
 * rules run in the server, in tests and in tools. Batches of ops are
 * merged by merge_batch() in merge.h.
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

/* The reserved object that contains a room's settings, and its kind. Ids that
 * start with '@' belong to the server. */
#define OBJ_ROOM_ID "@room"
#define OBJ_ROOM_KIND "room"

/* The field merged key by key. Each key has its own dot, named
 * "attrs.KEY", so keys are at most PROTO_FIELD_MAX - 6 bytes. */
#define OBJ_ATTRS "attrs"
#define OBJ_ATTRS_PREFIX "attrs."

typedef struct {
    char *id;       /* owned */
    char *kind;     /* owned */
    json_t *fields; /* owned JSON object: field name -> value */
    json_t *dots;   /* owned JSON object: field name -> [actor, counter] */
    vv_t vv;
    int deleted;    /* 1 for a tombstone */
    uint64_t rev;   /* room seq of the last write, 0 when never stored */
} obj_t;

typedef enum {
    OP_CREATE,
    OP_UPDATE,
    OP_DELETE,
    OP_RESTORE,
    OP_SETTINGS,
} op_type_t;

typedef struct {
    op_type_t type;
    char *id;       /* owned; OBJ_ROOM_ID for settings */
    char *kind;     /* owned; create, and restore in events; else NULL */
    json_t *fields; /* owned object; create and restore, may be NULL */
    json_t *set;    /* owned object; update and settings, may be NULL */
    json_t *unset;  /* owned array of strings; update only, may be NULL */
    vv_t base;      /* every op but create; the event's vv in events */
} op_t;

typedef enum {
    RES_APPLIED,
    RES_MERGED,
    RES_CONFLICT,
    RES_REJECTED,
} res_status_t;

/* The outcome of one op, as reported in an ack. */
typedef struct {
    res_status_t status;
    const char *reason;  /* static string: NULL, "concurrent", "exists",
                            "deleted", "not_found", "invalid" or "atomic" */
    char message[256];   /* for rejected ops */
    json_t *conflicts;   /* owned array of {field, value?, dot}, or NULL */
    json_t *overwritten; /* owned array of {field, value?, dot}, or NULL */
    vv_t vv;             /* vv after the op, or as held when nothing
                            applied */
} op_result_t;

/* What a room does with a concurrently modified field. */
typedef enum { POLICY_REJECT, POLICY_LWW } policy_t;

/* The settings of a room, read from its OBJ_ROOM_ID object by
 * merge_settings_from(). schema is borrowed, NULL for none. */
typedef struct {
    policy_t policy;
    const json_t *schema;
} merge_settings_t;

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
 * Applies op, written by actor, to cur (NULL when the id is unknown), under
 * settings (NULL for the reject policy and no schema).
 *
 * When anything of the op applies (RES_APPLIED or RES_MERGED), *next
 * receives a new object owned by the caller (for a delete, a tombstone) and
 * res->vv its version vector. Otherwise *next is NULL and res says why.
 * cur is never modified. res must be initialised; its old contents are
 * cleared first. Returns 0 with res filled, or -ENOMEM.
 *
 * *next has its own fields, dots and attrs objects, but the field values
 * in them are shared references with cur and op: treat field values as
 * immutable. next->rev is cur's rev (0 for a create); the store sets the
 * new one.
 *
 * A field or attrs key ("attrs.KEY") is concurrently modified when its dot
 * is neither covered by op->base nor written by actor: an actor has always
 * seen its own writes. Such fields of an update or settings op are listed
 * in res->conflicts and left alone under POLICY_REJECT (RES_MERGED when
 * other fields applied, RES_CONFLICT "concurrent" when none did), and
 * written anyway under POLICY_LWW with the old values in res->overwritten.
 * A delete or restore is concurrent when op->base, with actor's own writes,
 * does not cover cur's vv; its list holds every field dot not covered,
 * sorted by field name. Entries are {field, value, dot}, with no value for
 * a removed field; overwritten is NULL when it would be empty.
 *
 * A field removed by "unset" keeps its dot, with no value in fields, so a
 * later concurrent update sees it. An unset of a field that has neither a
 * value nor a dot writes nothing for that name, and an object never keeps
 * an empty "attrs". A tombstone keeps the fields "item" and "frame" and
 * their dots. A restore writes every field of the restored object, the
 * kept ones and op->fields, with the new dot.
 *
 * An op is rejected with reason "invalid" when it is malformed (a bad or
 * reserved id, a bad kind or field name, an update with no field, "attrs"
 * that is not an object), when the object it would produce fails
 * valid_object() against settings->schema, or when that object would have
 * more than OBJ_FIELDS_MAX fields or OBJ_DOTS_MAX dots.
 */
int obj_apply_ex(const obj_t *cur, const op_t *op, const char *actor,
                 const merge_settings_t *settings, obj_t **next,
                 op_result_t *res);

/* obj_apply_ex() with the reject policy and no schema. */
int obj_apply(const obj_t *cur, const op_t *op, const char *actor,
              obj_t **next, op_result_t *res);

/*
 * Applies an op from an event (already decided by the writer) to cur,
 * setting vv to the event's vv and each written field's dot to
 * [actor, vv[actor]]. Used to keep a room cache in step with the events.
 * On success *next is a new object equal to the one obj_apply_ex() built
 * for the writer. Returns 0, -EINVAL for an op that does not fit cur, or
 * -ENOMEM. Ops that do not fit are a create of an existing id, an update
 * or delete of an unknown or deleted one, a restore of anything but a
 * tombstone, a settings op for another id than OBJ_ROOM_ID, a vv with no
 * entry for actor, and a malformed op. A settings op creates the room
 * object when cur is NULL. A restore in an event carries all the fields of
 * the restored object. op->base is not read, and no schema is checked.
 */
int obj_replay(const obj_t *cur, const op_t *op, const char *actor,
               const vv_t *vv, obj_t **next);

/* Returns the object as the protocol shows it: {id, kind, vv, fields}, or
 * NULL on allocation failure. A tombstone is shown the same way. */
json_t *obj_to_wire(const obj_t *obj);

/*
 * Builds the part of op that applied, as an event shows it: {op, id?,
 * kind?, fields?, set?, unset?, vv, overwritten?}, from the cur, res and
 * next of obj_apply_ex(). An update or settings op shows only its applied
 * fields, an unset of "attrs" that applied in part lists the removed keys
 * as "attrs.KEY", a restore shows kind and every field of next, and a
 * settings op has no id. Field values are shared with op and next.
 * Returns a new reference, or NULL when nothing applied or on allocation
 * failure.
 */
json_t *obj_event_op(const obj_t *cur, const op_t *op, const op_result_t *res,
                     const obj_t *next);

#endif
