/*
 * Batch merging: runs obj_apply_ex() over the ops of a batch against a
 * working copy of the objects they write, then keeps or drops the whole
 * batch by the atomic rule and collects the event ops.
 */
#include "merge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void merge_settings_from(const obj_t *room_obj, merge_settings_t *out)
{
    const char *policy;
    const json_t *schema;

    out->policy = POLICY_REJECT;
    out->schema = NULL;
    if (room_obj == NULL || room_obj->deleted)
        return;
    policy = json_string_value(json_object_get(room_obj->fields, "policy"));
    if (policy != NULL && strcmp(policy, "lww") == 0)
        out->policy = POLICY_LWW;
    schema = json_object_get(room_obj->fields, "schema");
    if (schema != NULL && !json_is_null(schema))
        out->schema = schema;
}

void merge_out_clear(merge_out_t *out)
{
    size_t i;

    for (i = 0; i < out->nresults; i++)
        op_result_clear(&out->results[i]);
    free(out->results);
    for (i = 0; i < out->nobjs; i++)
        obj_free(out->objs[i]);
    free(out->objs);
    json_decref(out->event_ops);
    memset(out, 0, sizeof(*out));
}

/* ---- the working copy ---- */

static obj_t **working_slot(merge_out_t *out, const char *id)
{
    size_t i;

    for (i = 0; i < out->nobjs; i++) {
        if (strcmp(out->objs[i]->id, id) == 0)
            return &out->objs[i];
    }
    return NULL;
}

/* Returns the object an op of the batch sees for id. */
static const obj_t *current(merge_out_t *out, const char *id,
                            merge_lookup_fn lookup, void *arg)
{
    obj_t **slot = working_slot(out, id);

    return slot != NULL ? *slot : lookup(id, arg);
}

/* Puts obj into the working copy, replacing the object with its id. The
 * objs array has room for one object per op. */
static void working_put(merge_out_t *out, obj_t *obj)
{
    obj_t **slot = working_slot(out, obj->id);

    if (slot != NULL) {
        obj_free(*slot);
        *slot = obj;
        return;
    }
    out->objs[out->nobjs++] = obj;
}

/* ---- one op ---- */

/* Rejects op when permit refuses it. Returns 1 when it was rejected. */
static int forbid(const msg_t *batch, const op_t *op, const obj_t *cur,
                  const merge_permit_t *permit, op_result_t *res)
{
    const char *reason = "forbidden";
    const char *why;

    if (!permit || !permit->fn)
        return 0;
    why = permit->fn(batch, op, cur, permit->arg, &reason);
    if (!why)
        return 0;
    res->status = RES_REJECTED;
    res->reason = reason;
    snprintf(res->message, sizeof(res->message), "%s", why);
    return 1;
}

static int merge_op(const msg_t *batch, size_t i,
                    const merge_settings_t *settings, merge_lookup_fn lookup,
                    void *arg, const merge_permit_t *permit,
                    merge_out_t *out)
{
    const op_t *op = &batch->ops[i];
    const obj_t *cur = current(out, op->id, lookup, arg);
    op_result_t *res = &out->results[i];
    obj_t *next = NULL;
    json_t *event_op;
    int rc;

    if (forbid(batch, op, cur, permit, res))
        return 0;
    rc = obj_apply_ex(cur, op, batch->actor, settings, &next, res);
    if (rc < 0 || next == NULL)
        return rc;

    /* The event op reads cur, so it is built before cur is replaced. */
    event_op = obj_event_op(cur, op, res, next);
    if (event_op == NULL || json_array_append_new(out->event_ops, event_op)) {
        obj_free(next);
        return -ENOMEM;
    }
    working_put(out, next);
    out->applied++;
    return 0;
}

/* ---- atomic batches ---- */

static const char *status_word(res_status_t status)
{
    switch (status) {
    case RES_APPLIED:
        return "applied";
    case RES_MERGED:
        return "merged";
    case RES_CONFLICT:
        return "in conflict";
    case RES_REJECTED:
        return "rejected";
    }
    return "rejected";
}

/* Rewrites result res of an atomic batch that did not apply: failed is the
 * index of the first op that did not apply in full. */
static int undo_result(const msg_t *batch, size_t i, size_t failed,
                       const char *word, merge_lookup_fn lookup, void *arg,
                       op_result_t *res)
{
    const op_t *bad = &batch->ops[failed];
    const obj_t *held;
    vv_t empty;

    if (res->status == RES_APPLIED) {
        op_result_clear(res);
        proto_fail(res->message, sizeof(res->message), 0,
                   "not applied: the batch is atomic and op %zu (id %s) "
                   "was %s",
                   failed, bad->id, word);
        res->status = RES_REJECTED;
        res->reason = "atomic";
        return 0;
    }
    if (res->status == RES_REJECTED)
        return 0;

    /* A merged op applied nothing after all, and the vv a conflict names
     * is the one stored, not one the batch would have written. */
    json_decref(res->overwritten);
    res->overwritten = NULL;
    res->status = RES_CONFLICT;
    held = lookup(batch->ops[i].id, arg);
    if (held != NULL)
        return vv_copy(&res->vv, &held->vv);
    vv_init(&empty);
    return vv_copy(&res->vv, &empty);
}

/* Drops everything an atomic batch wrote when op failed did not apply in
 * full. */
static int undo_batch(const msg_t *batch, size_t failed,
                      merge_lookup_fn lookup, void *arg, merge_out_t *out)
{
    const char *word = status_word(out->results[failed].status);
    size_t i;
    int rc = 0;

    for (i = 0; i < out->nobjs; i++)
        obj_free(out->objs[i]);
    out->nobjs = 0;
    out->applied = 0;
    json_array_clear(out->event_ops);

    for (i = 0; rc == 0 && i < batch->nops; i++)
        rc = undo_result(batch, i, failed, word, lookup, arg,
                         &out->results[i]);
    return rc;
}

/* ---- merge_batch ---- */

static int out_init(merge_out_t *out, size_t nops)
{
    size_t i;

    memset(out, 0, sizeof(*out));
    out->results = calloc(nops + 1, sizeof(*out->results));
    out->objs = calloc(nops + 1, sizeof(*out->objs));
    out->event_ops = json_array();
    if (out->results == NULL || out->objs == NULL || out->event_ops == NULL)
        return -ENOMEM;
    for (i = 0; i < nops; i++)
        op_result_init(&out->results[i]);
    out->nresults = nops;
    return 0;
}

int merge_batch(const msg_t *batch, merge_lookup_fn lookup, void *arg,
                merge_out_t *out)
{
    return merge_batch_permit(batch, lookup, arg, NULL, out);
}

int merge_batch_permit(const msg_t *batch, merge_lookup_fn lookup, void *arg,
                       const merge_permit_t *permit, merge_out_t *out)
{
    merge_settings_t settings;
    size_t i, failed = batch->nops;
    int rc;

    rc = out_init(out, batch->nops);
    merge_settings_from(lookup(OBJ_ROOM_ID, arg), &settings);
    for (i = 0; rc == 0 && i < batch->nops; i++) {
        rc = merge_op(batch, i, &settings, lookup, arg, permit, out);
        if (rc == 0 && failed == batch->nops &&
            out->results[i].status != RES_APPLIED)
            failed = i;
    }
    if (rc == 0 && batch->atomic && failed < batch->nops)
        rc = undo_batch(batch, failed, lookup, arg, out);
    if (rc < 0)
        merge_out_clear(out);
    return rc;
}
