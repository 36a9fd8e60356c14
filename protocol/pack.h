/*
 * msgpack encoding of JSON values, stored objects and event bodies.
 *
 * Redis holds objects and events as msgpack. pack_json() and unpack_json()
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

/* Appends the msgpack encoding of j to sbuf. Returns 0, -EINVAL for a value
 * msgpack cannot hold, or -ENOMEM. */
int pack_json(msgpack_sbuffer *sbuf, const json_t *j);

/* Decodes exactly one msgpack value of len bytes into a new JSON value.
 * Map keys must be strings; strings must be valid UTF-8; bin and ext are
 * rejected; nesting deeper than max_depth is rejected; trailing bytes are
 * an error. Returns 0 with *out set, or -EINVAL (message in err), -ENOMEM. */
int unpack_json(const char *buf, size_t len, size_t max_depth, json_t **out,
                char *err, size_t errlen);

/* Encodes a stored object: {kind, fields, dots, vv, deleted}. The id and rev
 * are kept outside (they are the hash field and the revs entry). */
int pack_obj(msgpack_sbuffer *sbuf, const obj_t *obj);

/* Decodes a stored object; id is copied into it and rev set. Returns 0 with
 * *out set, or -EINVAL (message in err), -ENOMEM. */
int unpack_obj(const char *buf, size_t len, const char *id, uint64_t rev,
               obj_t **out, char *err, size_t errlen);

#endif
