/*
 * Access rules for the ops of a batch, in one place: the apply path asks
 * here about every op before it is merged.
 */
#ifndef AL_AUTHZ_H
#define AL_AUTHZ_H

#include "msg.h"

/* Returns NULL when the connection sess may run op of batch, or a message
 * saying why not; a refused op is rejected with reason "forbidden". */
const char *authz_check_op(const msg_t *batch, const op_t *op, void *sess);

#endif
