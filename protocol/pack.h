/*
 * msgpack encoding of JSON values, stored objects and event bodies.
 *
 * Redis stores objects and events as msgpack. pack_json() and unpack_json()
 * convert between jansson values and msgpack bytes, keeping integers and
 * floats apart; unpacking is bounded in depth, counts and size so that
 * hostile bytes cannot make it allocate more than the input justifies.
 */
#ifndef AL_PACK_H
#define AL_PACK_H

#include <jansson.h>
#include <msgpack.h>
#include <stddef.h>

#include "obj.h"

/* Nesting levels msgpack-c 4.0 can unpack: its parser keeps a fixed stack of
 * 32 open arrays and maps. An array or map counts as one level, so [] is 1
 * and {"a": [1]} is 2; a scalar is 0. */
#define PACK_DEPTH_MAX 32

/* Appends the msgpack encoding of j to sbuf. Integers are written as msgpack
 * ints and reals always as float64, so 3.0 stays a float. Returns 0, -EINVAL
 * for a value nested deeper than PACK_DEPTH_MAX (which unpack_json() could
 * not read back), or -ENOMEM. On failure sbuf is cut back to its old size. */
int pack_json(msgpack_sbuffer *sbuf, const json_t *j);

/* Decodes exactly one msgpack value of len bytes into a new JSON value.
 * Map keys must be strings; strings must be valid UTF-8; bin and ext are
 * rejected; nesting deeper than max_depth is rejected; trailing bytes are
 * an error. Returns 0 with *out set, or -EINVAL (message in err), -ENOMEM.
 *
 * max_depth counts levels as PACK_DEPTH_MAX does and is lowered to it when
 * larger. Strings and map keys must not contain NUL bytes (the JSON side
 * rejects \u0000 too). Integers keep their type; a uint64 over INT64_MAX
 * and a NaN or infinite float are rejected because jansson cannot hold
 * them. The bytes are scanned before msgpack-c parses them, and every
 * declared array or map count is checked against the bytes left, so memory
 * use stays proportional to len. */
int unpack_json(const char *buf, size_t len, size_t max_depth, json_t **out,
                char *err, size_t errlen);

/* Encodes a stored object: {kind, fields, dots, vv, deleted}. The id and rev
 * are kept outside (they are the hash field and the revs entry). Returns as
 * pack_json() does. */
int pack_obj(msgpack_sbuffer *sbuf, const obj_t *obj);

/* Decodes a stored object; id is copied into it and rev set. All five
 * members must be present with their types, each dot must be [actor,
 * counter], and unknown members are ignored. The kind must be an object
 * kind, or OBJ_ROOM_KIND for the id OBJ_ROOM_ID. Returns 0 with *out set,
 * or -EINVAL (message in err), -ENOMEM. */
int unpack_obj(const char *buf, size_t len, const char *id, uint64_t rev,
               obj_t **out, char *err, size_t errlen);

#endif
