/*
 * A string-keyed hash map of pointers with chaining, for rooms by name and
 * objects by id. The map copies keys and never owns values.
 */
#ifndef AL_MAP_H
#define AL_MAP_H

#include <stddef.h>

typedef struct map_entry {
    struct map_entry *next;
    void *value;
    size_t hash;
    char key[]; /* NUL-terminated copy */
} map_entry_t;

typedef struct {
    map_entry_t **buckets;
    size_t nbuckets; /* a power of two, or 0 before the first insert */
    size_t len;
} map_t;

void map_init(map_t *m);

/* Frees the entries; values are left to the caller. */
void map_free(map_t *m);

void *map_get(const map_t *m, const char *key);

/* Inserts or replaces key. When old is not NULL it receives the replaced
 * value (NULL when the key was new). Returns 0 or -ENOMEM. */
int map_put(map_t *m, const char *key, void *value, void **old);

/* Removes key and returns its value, or NULL when absent. */
void *map_remove(map_t *m, const char *key);

/* Calls fn on each entry; fn must not change the map. */
void map_each(const map_t *m, void (*fn)(const char *key, void *value,
                                         void *arg),
              void *arg);

#endif
