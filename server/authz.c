/*
 * Role rules for ops:
 *   viewer     reads only;
 *   annotator  creates, updates, deletes and restores objects, but does not
 *              set "review";
 *   reviewer   as annotator, and sets "review";
 *   bot        writes objects marked "source": "auto" (with a "score"),
 *              never "review";
 *   admin      everything, including room settings.
 */
#include "authz.h"

#include <string.h>

/* Returns the value op writes to field, or NULL. */
static const json_t *written(const op_t *op, const char *field)
{
    if (op->type == OP_CREATE || op->type == OP_RESTORE)
        return op->fields ? json_object_get(op->fields, field) : NULL;
    if (op->type == OP_UPDATE)
        return op->set ? json_object_get(op->set, field) : NULL;
    return NULL;
}

static int unsets(const op_t *op, const char *field)
{
    size_t i;
    json_t *name;

    if (!op->unset)
        return 0;
    json_array_foreach(op->unset, i, name)
        if (strcmp(json_string_value(name), field) == 0)
            return 1;
    return 0;
}

static const char *check_bot(const op_t *op)
{
    const json_t *source = written(op, "source");

    if (op->type == OP_DELETE)
        return NULL;
    if (op->type == OP_CREATE &&
        !(json_is_string(source) &&
          strcmp(json_string_value(source), "auto") == 0))
        return "role bot creates only objects with \"source\": \"auto\"";
    if (source && !(json_is_string(source) &&
                    strcmp(json_string_value(source), "auto") == 0))
        return "role bot may set \"source\" only to \"auto\"";
    if (op->type == OP_CREATE && !json_is_number(written(op, "score")))
        return "role bot creates objects with a numeric \"score\"";
    return NULL;
}

const char *authz_check_op(const msg_t *batch, const op_t *op, void *arg)
{
    jwt_role_t role = *(const jwt_role_t *)arg;
    int review = written(op, "review") != NULL || unsets(op, "review");

    (void)batch;
    if (role == JWT_ROLE_ADMIN)
        return NULL;
    if (op->type == OP_SETTINGS)
        return "only role admin changes room settings";
    switch (role) {
    case JWT_ROLE_VIEWER:
        return "role viewer may not write";
    case JWT_ROLE_ANNOTATOR:
        return review ? "role annotator may not set \"review\"" : NULL;
    case JWT_ROLE_REVIEWER:
        return NULL;
    case JWT_ROLE_BOT:
        return review ? "role bot may not set \"review\"" : check_bot(op);
    default:
        return "unknown role";
    }
}
