/*
 * Shared definitions of the protocol library: error codes, limits, name checks.
 *
 * Functions of protocol/ return 0 or a negative errno value and, where they
 * take one, write a human-readable message into a caller's buffer.
 */
#ifndef AL_PROTO_H
#define AL_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_ROOM_MAX 128  /* bytes in a room name */
#define PROTO_ID_MAX 64     /* bytes in an object id */
#define PROTO_FIELD_MAX 128 /* bytes in a field name */
#define PROTO_ERR_MAX 256   /* size of an error message buffer */

/* Limits on decoded client input; the server fills them from its options. */
typedef struct {
    size_t max_message;     /* bytes in one message */
    size_t max_ops;         /* ops in one batch */
    size_t max_fields;      /* fields set by one op or held by one object */
    size_t max_depth;       /* JSON nesting levels */
    size_t max_presence;    /* bytes of a presence state as JSON */
} proto_limits_t;

/* Fills limits with the defaults of the protocol: 1 MiB, 1000 ops, 256
 * fields, 31 levels. */
void proto_limits_default(proto_limits_t *limits);

/* Returns 1 when name matches [A-Za-z0-9._:-]{1,PROTO_ROOM_MAX}. */
int proto_room_valid(const char *name, size_t len);

/* Returns 1 when s is 1..max bytes of printable ASCII (0x21-0x7e). */
int proto_token_valid(const char *s, size_t len, size_t max);

/* Returns 1 when kind is one of the object kinds of the protocol. */
int proto_kind_valid(const char *kind);

/* Writes s (len bytes) into buf as a double-quoted string for error
 * messages. Control characters become '?', and a string over 40 bytes is
 * cut at a character boundary and ends in "...", so valid UTF-8 stays
 * valid. buf is NUL-terminated when buflen > 0. Returns buf. */
const char *proto_quote(const char *s, size_t len, char *buf, size_t buflen);

struct json_t;

/* Writes a short description of a JSON value for error messages: a quoted
 * string as proto_quote() writes it, the number, true, false or null, or
 * "an array", "an object", and "nothing" for NULL. Returns buf. */
const char *proto_json_describe(const struct json_t *j, char *buf,
                                size_t buflen);

/* Formats a message into err (errlen bytes; err may be NULL) and returns
 * code, so that callers can write `return proto_fail(err, n, -EINVAL, ...)`.
 * A message too long for err is cut at a character boundary, so it stays
 * valid UTF-8 when the arguments are. */
int proto_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
