/*
 * Protocol messages and their JSON encoding.
 *
 * Client messages decode into msg_t; server messages are built as jansson
 * values and dumped by the caller. Decoding validates every member and
 * returns an error code and message on bad input; it never aborts.
 */
#ifndef AL_MSG_H
#define AL_MSG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "obj.h"
#include "proto.h"

typedef enum {
    MSG_JOIN,
    MSG_LEAVE,
    MSG_OPS,
    MSG_AUTH,
    MSG_PRESENCE,
    MSG_CLAIM,
    MSG_RELEASE,
} msg_type_t;

#define MSG_TOKEN_MAX 8192 /* bytes in the token of an "auth" message */
#define MSG_PRESENCE_MAX 4096 /* default bytes of a presence state as JSON */
#define MSG_TTL_MIN 1000      /* milliseconds a claim may last, at least */
#define MSG_TTL_MAX 600000    /* and at most */
#define MSG_TTL_DEFAULT 30000

/* What a claim names: an object (id set, item empty) or an inclusive range
 * of frames of an item (item set, id empty). */
typedef struct {
    char id[PROTO_ID_MAX + 1];
    char item[PROTO_ID_MAX + 1];
    uint64_t first, last;
} msg_target_t;

typedef struct {
    msg_type_t type;
    char room[PROTO_ROOM_MAX + 1];
    char actor[PROTO_ID_MAX + 1]; /* ops, and join when has_actor */
    int has_actor;
    uint64_t opseq;               /* ops only */
    int has_opseq;
    uint64_t since;               /* join only: the last seq the client has */
    int has_since;
    char *token;                  /* auth only: owned, NUL-terminated */
    json_t *state;     /* presence only: owned object */
    size_t state_len;  /* presence only: bytes of state as compact JSON */
    msg_target_t target; /* claim and release */
    uint64_t ref;        /* claim and release: echoed in the reply */
    uint64_t ttl;        /* claim: milliseconds */
    int atomic; /* ops only: 1 when every op applies in full or none does */
    op_t *ops;  /* owned array of nops ops */
    size_t nops;
} msg_t;

/* Error codes sent in "error" messages; msg_code_name() gives the wire name. */
typedef enum {
    MSG_ERR_INVALID_JSON,
    MSG_ERR_INVALID_MESSAGE,
    MSG_ERR_UNKNOWN_TYPE,
    MSG_ERR_NOT_JOINED,
    MSG_ERR_TOO_LARGE,
    MSG_ERR_UNAVAILABLE,
    MSG_ERR_INTERNAL,
    MSG_ERR_STALE_OPSEQ,
    MSG_ERR_FORBIDDEN,
    MSG_ERR_UNAUTHORIZED,
    MSG_ERR_RATE_LIMITED,
} msg_err_t;

/* Details of a decode failure. room and opseq are filled when the message
 * carried them, so the error reply can name them. */
typedef struct {
    msg_err_t code;
    char message[PROTO_ERR_MAX];
    char room[PROTO_ROOM_MAX + 1]; /* "" when unknown */
    uint64_t opseq;                /* 0 when unknown */
} msg_error_t;

const char *msg_code_name(msg_err_t code);

void msg_init(msg_t *msg);
void msg_clear(msg_t *msg);

/*
 * Decodes one client message from len bytes of JSON text.
 * Returns 0 with msg filled (the caller clears it), or a negative errno
 * with err filled: -EINVAL for bad input, -E2BIG over a limit, -ENOMEM.
 *
 * msg need not be initialised, and its old contents are not freed; on
 * failure it is left empty. limits may be NULL for the defaults.
 *
 * A message over a limit gives MSG_ERR_TOO_LARGE and -E2BIG: more than
 * max_message bytes, more than max_ops ops, more than max_fields fields in
 * one op, or nesting deeper than max_depth levels. Each array or object is
 * a level, so the message object itself is level 1.
 * Text that is not JSON, has duplicate keys or is not an object gives
 * MSG_ERR_INVALID_JSON. An unknown "type" gives MSG_ERR_UNKNOWN_TYPE.
 * Any other bad member gives MSG_ERR_INVALID_MESSAGE with the member's
 * path, such as "ops[3].base: ...". An empty "ops" array is invalid, and
 * "atomic" must be a boolean when present.
 * Unknown members are ignored, but a member of another op type (such as
 * "set" in a create) is invalid. Ids that start with '@' decode; the merge
 * rejects them per op.
 */
int msg_decode_json(const char *buf, size_t len, const proto_limits_t *limits,
                    msg_t *msg, msg_error_t *err);

/*
 * Decodes one client message from len bytes of msgpack (the
 * annolive.v1.msgpack subprotocol): a map with the same members as the JSON
 * form. Decoding is bounded as unpack_json() is, and nesting is capped at
 * the smaller of limits->max_depth and PACK_DEPTH_MAX. Returns and errors as
 * msg_decode_json(); bytes that are not one msgpack map give
 * MSG_ERR_INVALID_JSON.
 */
int msg_decode_msgpack(const char *buf, size_t len,
                       const proto_limits_t *limits, msg_t *msg,
                       msg_error_t *err);

/*
 * Parses one op from its JSON form (as in "ops" messages and in events).
 * In events the ops carry "vv" and no "base"; pass is_event = 1 to read
 * "vv" into op->base instead (for creates too). Events may also give a
 * restore its "kind" and any op an "overwritten" list, which is ignored.
 * A settings op has no "id" and gets OBJ_ROOM_ID; its "set" must name at
 * least one setting. op need not be initialised; on failure it is left
 * empty. limits may be NULL. Returns 0,
 * -EINVAL with err, -E2BIG with err when the op writes more than
 * limits->max_fields fields, or -ENOMEM. Messages name the member relative
 * to the op, such as "base: ...".
 */
int msg_op_from_json(const json_t *j, const proto_limits_t *limits,
                     int is_event, op_t *op, char *err, size_t errlen);

/* Builders of server messages. Each returns a new reference or NULL.
 * msg_error_json() omits "room" when err->room is "" and "opseq" when
 * err->opseq is 0. msg_ack_json() omits "seq" when seq is 0; each result
 * contains "vv" unless it is rejected, "message" only when rejected, and
 * "conflicts" and "overwritten" when the result has them. ids[i] names
 * results[i]; a NULL ids or ids[i] leaves "id" out. */
json_t *msg_error_json(const msg_error_t *err);
json_t *msg_ack_json(const char *room, uint64_t opseq, uint64_t seq,
                     const char *const *ids, const op_result_t *results,
                     size_t n);
json_t *msg_left_json(const char *room);

/* Builds the op as an event shows it: {op, id, kind?, fields?, set?, unset?,
 * vv}, for an op that applied in full. kind and fields appear for creates
 * and restores, set for updates and settings, unset for updates, each only
 * when the op has it; settings ops have no id. The values are shared with
 * op, not copied. obj_event_op() builds the applied part of a merged op. */
json_t *msg_event_op_json(const op_t *op, const vv_t *vv);

#endif
