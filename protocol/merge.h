/*
 * Merging of op batches: the pure step between a decoded "ops" message and
 * what the server stores, acks and publishes.
 *
 * merge_batch() applies the ops of one batch in order against the objects
 * a lookup function returns, under the room's settings, and returns the
 * results, the objects written and the event ops. It does no I/O and keeps
 * no state between calls.
 */
#ifndef AL_MERGE_H
#define AL_MERGE_H

#include <jansson.h>
#include <stddef.h>

#include "msg.h"
#include "obj.h"

/* policy_t and merge_settings_t are defined in obj.h, which applies them
 * to one op. */

/* Returns the stored object with id, or NULL when the id is unknown. The
 * object must stay valid and unchanged until merge_batch() returns. */
typedef const obj_t *(*merge_lookup_fn)(const char *id, void *arg);

/* What a batch did. Every member is owned by the struct. */
typedef struct {
    op_result_t *results; /* one per op, in the order of the ops */
    size_t nresults;
    obj_t **objs;      /* the final state of each object written, one per id;
                          an entry may be set to NULL by its new owner */
    size_t nobjs;
    json_t *event_ops; /* array of the applied part of each op */
    size_t applied;    /* ops that applied in whole or in part */
} merge_out_t;

/* Reads the settings of a room from its OBJ_ROOM_ID object (NULL when the
 * room has none): the field "policy" ("lww" or the default "reject") and
 * the field "schema" (NULL when absent or JSON null). out->schema is
 * borrowed from room_obj. */
void merge_settings_from(const obj_t *room_obj, merge_settings_t *out);

/*
 * Applies the ops of batch, written by batch->actor, in order. Each op sees
 * the objects written by the ops before it, then lookup(id, arg). The
 * settings come from lookup(OBJ_ROOM_ID, arg) once, so a settings op takes
 * effect for the next batch.
 *
 * With batch->atomic set and any op merged, in conflict or rejected,
 * nothing applies: a merged op is reported as a "concurrent" conflict with
 * its conflicts, every applied op is rejected with reason "atomic" and a
 * message naming the first op that did not apply, and conflicts carry the
 * vv of the stored object (empty when none is stored).
 *
 * out need not be initialised; its old contents are not freed. Returns 0
 * with out filled (the caller calls merge_out_clear()), or -ENOMEM with out
 * empty.
 */
int merge_batch(const msg_t *batch, merge_lookup_fn lookup, void *arg,
                merge_out_t *out);

/* The access check of a batch: fn returns NULL when batch->actor may run
 * op on cur (the object as the ops before it left it, NULL when unknown),
 * or a message saying why not (a static string, or one that stays valid
 * until merge_batch_permit() returns). *reason is "forbidden" on entry;
 * fn may point it at another static reason. */
typedef struct {
    const char *(*fn)(const msg_t *batch, const op_t *op, const obj_t *cur,
                      void *arg, const char **reason);
    void *arg;
} merge_permit_t;

/* Like merge_batch(), and first calls permit for each op: a refused op is
 * rejected with the reason permit gives ("forbidden" by default) and its
 * message, and is not applied. */
int merge_batch_permit(const msg_t *batch, merge_lookup_fn lookup, void *arg,
                       const merge_permit_t *permit, merge_out_t *out);

/* Frees what out contains and leaves it empty. A zeroed out is empty. */
void merge_out_clear(merge_out_t *out);

#endif
