/*
 * Version vectors: per-object maps from actor id to write counter.
 *
 * A vv_t is a small array of (actor, counter) entries kept sorted by actor.
 * This module is pure: no I/O, no logging, no global state.
 */
#ifndef AL_VV_H
#define AL_VV_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define VV_ACTOR_MAX 64 /* bytes in an actor id */
#define VV_COUNTER_MAX 9007199254740991ULL /* 2^53-1: exact in JSON and JS */

typedef struct {
    char *actor;      /* owned, NUL-terminated */
    uint64_t counter; /* >= 1 */
} vv_entry_t;

typedef struct {
    vv_entry_t *entries; /* sorted by strcmp(actor) */
    size_t len;
    size_t cap;
} vv_t;

/* A dot names one write: the actor and that actor's counter after it. */
typedef struct {
    const char *actor; /* borrowed */
    uint64_t counter;
} vv_dot_t;

void vv_init(vv_t *vv);
void vv_free(vv_t *vv);

/* Copies src into dst (dst must be initialised; its old entries are freed).
 * Returns 0 or -ENOMEM. */
int vv_copy(vv_t *dst, const vv_t *src);

/* Returns the counter of actor, 0 when absent. */
uint64_t vv_get(const vv_t *vv, const char *actor);

/* Sets actor's counter (counter >= 1). Returns 0, -EINVAL for a NULL actor
 * or a counter outside 1..VV_COUNTER_MAX, or -ENOMEM. */
int vv_set(vv_t *vv, const char *actor, uint64_t counter);

/* Adds one to actor's counter and stores the new value in *counter (when
 * counter is not NULL).
 * Returns 0, -ENOMEM, or -ERANGE past VV_COUNTER_MAX. */
int vv_bump(vv_t *vv, const char *actor, uint64_t *counter);

/* Returns 1 when base has seen the write named by dot, else 0. */
int vv_covers_dot(const vv_t *base, const char *actor, uint64_t counter);

/* Returns 1 when base covers every entry of vv, else 0. */
int vv_covers(const vv_t *base, const vv_t *vv);

/* Raises each counter of dst to at least src's. Returns 0 or -ENOMEM. */
int vv_merge(vv_t *dst, const vv_t *src);

/* Returns 1 when a and b hold the same entries. */
int vv_equal(const vv_t *a, const vv_t *b);

/* Parses a JSON object {actor: counter}. Each actor must be 1..VV_ACTOR_MAX
 * printable ASCII bytes, each counter an integer in 1..VV_COUNTER_MAX.
 * Returns 0, or -EINVAL with a message naming the bad entry in err
 * (errlen bytes, may be NULL), or -ENOMEM. vv must be initialised; its old
 * entries are replaced on success and kept on failure. */
int vv_from_json(vv_t *vv, const json_t *obj, char *err, size_t errlen);

/* Returns a new JSON object {actor: counter}, or NULL on allocation failure. */
json_t *vv_to_json(const vv_t *vv);

#endif
