/*
 * Validation of the objects that edit ops produce: geometry per kind, item
 * sizes, the shape of attrs, a room's label schema and its settings.
 *
 * The checks are pure and never modify their input. Each failure returns
 * -EINVAL with a message that names the field and the value, such as
 * `geometry: bbox width must be >= 0, got -3`.
 */
#ifndef AL_VALID_H
#define AL_VALID_H

#include <jansson.h>
#include <stddef.h>

#include "obj.h"

/* Bytes of an attrs key: its dot is named "attrs.KEY", and dot names are
 * field names of at most PROTO_FIELD_MAX bytes. */
#define VALID_ATTR_KEY_MAX (PROTO_FIELD_MAX - 6)

/*
 * Checks a live object. Room objects (kind OBJ_ROOM_KIND) may hold only the
 * fields "policy" and "schema", checked by valid_policy() and
 * valid_schema(). Other objects get the geometry rules of their kind, the
 * width and height of items, the shape of "attrs" (an object of keys of 1
 * to VALID_ATTR_KEY_MAX bytes), and schema when it is not NULL or JSON null.
 * Returns 0 or -EINVAL with a message in err (errlen bytes, may be NULL).
 */
int valid_object(const obj_t *obj, const json_t *schema, char *err,
                 size_t errlen);

/* Checks a geometry value for kind. Returns 0 or -EINVAL with err. */
int valid_geometry(const char *kind, const json_t *geometry, char *err,
                   size_t errlen);

/* Checks a room policy: "reject" or "lww". Returns 0 or -EINVAL. */
int valid_policy(const json_t *policy, char *err, size_t errlen);

/* The names of a room's settings, NULL-terminated. */
extern const char *const valid_room_settings[];

/* Returns 1 when name is one of valid_room_settings. */
int valid_room_setting(const char *name);

/* Checks a room's "claims" setting: "advisory" or "enforced". */
int valid_claims_mode(const json_t *mode, char *err, size_t errlen);

/* Checks the shape of a label schema: null, or {"labels": {NAME: {kinds?,
 * attrs?, required?}}} with known kinds, attrs of {type} where type is
 * string, number, integer, boolean or enum (with a non-empty "values"
 * array), and field names in required. Unknown members are errors, so a
 * misspelt rule cannot pass unnoticed. Returns 0 or -EINVAL with err. */
int valid_schema(const json_t *schema, char *err, size_t errlen);

#endif
