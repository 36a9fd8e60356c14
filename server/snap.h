/*
 * Snapshot messages, with the encoded objects of a room kept until the
 * objects change.
 *
 * A snapshot is a small head (type, room, seq, presence, claims, and reset
 * when set) plus the array of the room's objects, which can be megabytes.
 * The head changes with every member, so it is encoded for each snapshot.
 * The objects array is encoded once per encoding and reused by later
 * snapshots until snap_forget() runs, so joins between two edits of a big
 * room copy bytes instead of formatting them again.
 */
#ifndef AL_SNAP_H
#define AL_SNAP_H

#include <jansson.h>

#include "buf.h"

typedef struct snap_cache {
    buf_t *objects[ENC_COUNT]; /* the objects array, or NULL */
} snap_cache_t;

/* Builds the array of the room's objects. Returns NULL on failure. */
typedef json_t *(*snap_objects_fn)(void *arg);

/* Returns a new reference to the snapshot message in encoding enc: the
 * members of head followed by "objects", whose encoding is taken from
 * cache or built with objects(arg) and kept there. Returns NULL on
 * failure. */
buf_t *snap_message(snap_cache_t *cache, enc_t enc, const json_t *head,
                    snap_objects_fn objects, void *arg);

/* Drops the encoded objects. Call it whenever an object changes. */
void snap_forget(snap_cache_t *cache);

#endif
