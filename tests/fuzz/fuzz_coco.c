/*
 * libFuzzer target: reads arbitrary bytes as JSON and imports them with
 * coco_import(), as the server does with an uploaded COCO file. Every op
 * the importer makes must decode and apply as a create, since the
 * importer leaves out what the server would reject. The objects are then
 * exported with coco_export(), which must succeed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "coco.h"
#include "msg.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Applies one op from the importer as a create, and aborts when it does
 * not decode or apply. Returns the object as a snapshot lists it. */
static json_t *apply_or_abort(const json_t *j)
{
    char err[PROTO_ERR_MAX];
    op_result_t res;
    obj_t *next = NULL;
    json_t *wire;
    op_t op;

    if (msg_op_from_json(j, NULL, 0, &op, err, sizeof(err)) != 0)
        abort();
    op_result_init(&res);
    if (obj_apply(NULL, &op, "fuzz", &next, &res) != 0 ||
        res.status != RES_APPLIED)
        abort();
    wire = obj_to_wire(next);
    obj_free(next);
    op_result_clear(&res);
    op_clear(&op);
    return wire;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[PROTO_ERR_MAX];
    json_t *in, *ops, *skipped, *objects, *coco, *unsaid, *op;
    json_error_t jerr;
    size_t i;

    in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (in == NULL)
        return 0;
    if (coco_import(in, NULL, &ops, &skipped, err, sizeof(err)) != 0) {
        json_decref(in);
        return 0;
    }
    objects = json_array();
    json_array_foreach (ops, i, op)
        json_array_append_new(objects, apply_or_abort(op));
    if (coco_export(objects, &coco, &unsaid, err, sizeof(err)) != 0)
        abort();
    json_decref(coco);
    json_decref(unsaid);
    json_decref(objects);
    json_decref(ops);
    json_decref(skipped);
    json_decref(in);
    return 0;
}
