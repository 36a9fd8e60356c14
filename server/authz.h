/*
 * What each role may do in a room, in one place. The apply path calls
 * authz_check_op() for every op before it is merged.
 */
#ifndef AL_AUTHZ_H
#define AL_AUTHZ_H

#include "jwt.h"
#include "msg.h"

/* Returns NULL when a writer with *role (a const jwt_role_t *) may run op
 * of batch, or a message saying why not; a refused op is rejected with
 * reason "forbidden". */
const char *authz_check_op(const msg_t *batch, const op_t *op, void *role);

#endif
