/*
 * Chained hash map with FNV-1a hashing, doubling at a load factor of 1.
 */
#include "map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t hash_key(const char *key)
{
    size_t h = 1469598103934665603ULL;

    for (; *key; key++) {
        h ^= (unsigned char)*key;
        h *= 1099511628211ULL;
    }
    return h;
}

void map_init(map_t *m)
{
    memset(m, 0, sizeof(*m));
}

void map_free(map_t *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        map_entry_t *e = m->buckets[i];

        while (e) {
            map_entry_t *next = e->next;

            free(e);
            e = next;
        }
    }
    free(m->buckets);
    map_init(m);
}

static map_entry_t **find_slot(const map_t *m, const char *key, size_t h)
{
    map_entry_t **slot = &m->buckets[h & (m->nbuckets - 1)];

    while (*slot && ((*slot)->hash != h || strcmp((*slot)->key, key) != 0))
        slot = &(*slot)->next;
    return slot;
}

void *map_get(const map_t *m, const char *key)
{
    size_t h;

    if (m->len == 0)
        return NULL;
    h = hash_key(key);
    map_entry_t *e = *find_slot(m, key, h);
    return e ? e->value : NULL;
}

static int grow(map_t *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
    map_entry_t **buckets = calloc(n, sizeof(*buckets));

    if (!buckets)
        return -ENOMEM;
    for (size_t i = 0; i < m->nbuckets; i++) {
        map_entry_t *e = m->buckets[i];

        while (e) {
            map_entry_t *next = e->next;

            e->next = buckets[e->hash & (n - 1)];
            buckets[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = buckets;
    m->nbuckets = n;
    return 0;
}

int map_put(map_t *m, const char *key, void *value, void **old)
{
    size_t h = hash_key(key);
    size_t keylen = strlen(key);
    map_entry_t **slot;
    map_entry_t *e;

    if (old)
        *old = NULL;
    if (m->len >= m->nbuckets && grow(m) < 0)
        return -ENOMEM;

    slot = find_slot(m, key, h);
    if (*slot) {
        if (old)
            *old = (*slot)->value;
        (*slot)->value = value;
        return 0;
    }

    e = malloc(sizeof(*e) + keylen + 1);
    if (!e)
        return -ENOMEM;
    e->next = NULL;
    e->value = value;
    e->hash = h;
    memcpy(e->key, key, keylen + 1);
    *slot = e;
    m->len++;
    return 0;
}

void *map_remove(map_t *m, const char *key)
{
    map_entry_t **slot;
    map_entry_t *e;
    void *value;

    if (m->len == 0)
        return NULL;
    slot = find_slot(m, key, hash_key(key));
    e = *slot;
    if (!e)
        return NULL;
    *slot = e->next;
    value = e->value;
    free(e);
    m->len--;
    return value;
}

void map_each(const map_t *m, void (*fn)(const char *key, void *value,
                                         void *arg),
              void *arg)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (map_entry_t *e = m->buckets[i]; e; e = e->next)
            fn(e->key, e->value, arg);
}
