/*
 * Version vectors kept as arrays sorted by actor, with linear merges and
 * coverage checks and a validating JSON reader.
 */
#include "vv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

void vv_init(vv_t *vv)
{
    vv->entries = NULL;
    vv->len = 0;
    vv->cap = 0;
}

void vv_free(vv_t *vv)
{
    size_t i;

    for (i = 0; i < vv->len; i++)
        free(vv->entries[i].actor);
    free(vv->entries);
    vv_init(vv);
}

/* Finds actor by binary search. Returns 1 with *pos at its entry, or 0 with
 * *pos where it would be inserted. */
static int find(const vv_t *vv, const char *actor, size_t *pos)
{
    size_t lo = 0, hi = vv->len;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(vv->entries[mid].actor, actor);

        if (c == 0) {
            *pos = mid;
            return 1;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return 0;
}

static int reserve(vv_t *vv, size_t n)
{
    vv_entry_t *entries;
    size_t cap;

    if (n <= vv->cap)
        return 0;
    cap = vv->cap ? vv->cap * 2 : 4;
    if (cap < n)
        cap = n;
    entries = realloc(vv->entries, cap * sizeof(*entries));
    if (entries == NULL)
        return -ENOMEM;
    vv->entries = entries;
    vv->cap = cap;
    return 0;
}

int vv_copy(vv_t *dst, const vv_t *src)
{
    vv_t tmp;
    size_t i;

    if (dst == src)
        return 0;
    vv_init(&tmp);
    if (reserve(&tmp, src->len) < 0)
        return -ENOMEM;
    for (i = 0; i < src->len; i++) {
        tmp.entries[i].actor = strdup(src->entries[i].actor);
        if (tmp.entries[i].actor == NULL) {
            vv_free(&tmp);
            return -ENOMEM;
        }
        tmp.entries[i].counter = src->entries[i].counter;
        tmp.len++;
    }
    vv_free(dst);
    *dst = tmp;
    return 0;
}

uint64_t vv_get(const vv_t *vv, const char *actor)
{
    size_t pos;

    if (actor == NULL || !find(vv, actor, &pos))
        return 0;
    return vv->entries[pos].counter;
}

int vv_set(vv_t *vv, const char *actor, uint64_t counter)
{
    size_t pos;
    char *copy;

    if (actor == NULL || counter == 0 || counter > VV_COUNTER_MAX)
        return -EINVAL;
    if (find(vv, actor, &pos)) {
        vv->entries[pos].counter = counter;
        return 0;
    }

    copy = strdup(actor);
    if (copy == NULL || reserve(vv, vv->len + 1) < 0) {
        free(copy);
        return -ENOMEM;
    }
    memmove(vv->entries + pos + 1, vv->entries + pos,
            (vv->len - pos) * sizeof(*vv->entries));
    vv->entries[pos].actor = copy;
    vv->entries[pos].counter = counter;
    vv->len++;
    return 0;
}

int vv_bump(vv_t *vv, const char *actor, uint64_t *counter)
{
    uint64_t next = vv_get(vv, actor) + 1;
    int rc;

    if (next > VV_COUNTER_MAX)
        return -ERANGE;
    rc = vv_set(vv, actor, next);
    if (rc < 0)
        return rc;
    if (counter != NULL)
        *counter = next;
    return 0;
}

int vv_covers_dot(const vv_t *base, const char *actor, uint64_t counter)
{
    return vv_get(base, actor) >= counter;
}

int vv_covers(const vv_t *base, const vv_t *vv)
{
    size_t i, j = 0;

    for (i = 0; i < vv->len; i++) {
        const vv_entry_t *e = &vv->entries[i];
        int c = 1;

        /* Both arrays are sorted, so advance base to e's actor or past it. */
        while (j < base->len) {
            c = strcmp(base->entries[j].actor, e->actor);
            if (c >= 0)
                break;
            j++;
        }
        if (j == base->len || c != 0 || base->entries[j].counter < e->counter)
            return 0;
    }
    return 1;
}

/* Appends a copy of actor with counter to tmp, which has room for it. */
static int push_copy(vv_t *tmp, const char *actor, uint64_t counter)
{
    char *copy = strdup(actor);

    if (copy == NULL)
        return -ENOMEM;
    tmp->entries[tmp->len].actor = copy;
    tmp->entries[tmp->len].counter = counter;
    tmp->len++;
    return 0;
}

int vv_merge(vv_t *dst, const vv_t *src)
{
    vv_t tmp;
    size_t i = 0, j = 0;
    int rc = 0;

    vv_init(&tmp);
    if (reserve(&tmp, dst->len + src->len) < 0)
        return -ENOMEM;

    /* Merge the two sorted arrays, keeping the larger counter of an actor
     * present in both. */
    while (rc == 0 && (i < dst->len || j < src->len)) {
        const vv_entry_t *a = i < dst->len ? &dst->entries[i] : NULL;
        const vv_entry_t *b = j < src->len ? &src->entries[j] : NULL;
        int c;

        if (a == NULL)
            c = 1;
        else if (b == NULL)
            c = -1;
        else
            c = strcmp(a->actor, b->actor);

        if (c < 0) {
            rc = push_copy(&tmp, a->actor, a->counter);
            i++;
        } else if (c > 0) {
            rc = push_copy(&tmp, b->actor, b->counter);
            j++;
        } else {
            rc = push_copy(&tmp, a->actor,
                           a->counter > b->counter ? a->counter : b->counter);
            i++;
            j++;
        }
    }
    if (rc < 0) {
        vv_free(&tmp);
        return rc;
    }
    vv_free(dst);
    *dst = tmp;
    return 0;
}

int vv_equal(const vv_t *a, const vv_t *b)
{
    size_t i;

    if (a->len != b->len)
        return 0;
    for (i = 0; i < a->len; i++) {
        if (a->entries[i].counter != b->entries[i].counter)
            return 0;
        if (strcmp(a->entries[i].actor, b->entries[i].actor) != 0)
            return 0;
    }
    return 1;
}

static int entry_cmp(const void *a, const void *b)
{
    const vv_entry_t *x = a, *y = b;

    return strcmp(x->actor, y->actor);
}

/* Checks one {actor: counter} member and appends it to tmp. */
static int read_entry(vv_t *tmp, const char *actor, const json_t *value,
                      char *err, size_t errlen)
{
    char shown[64], got[64];
    json_int_t n;

    if (!proto_token_valid(actor, strlen(actor), VV_ACTOR_MAX)) {
        proto_quote(actor, strlen(actor), shown, sizeof(shown));
        return proto_fail(err, errlen, -EINVAL,
                          "actor %s must be 1 to %d bytes of printable "
                          "ASCII",
                          shown, VV_ACTOR_MAX);
    }

    n = json_is_integer(value) ? json_integer_value(value) : 0;
    if (n < 1 || (uint64_t)n > VV_COUNTER_MAX) {
        proto_quote(actor, strlen(actor), shown, sizeof(shown));
        proto_json_describe(value, got, sizeof(got));
        return proto_fail(err, errlen, -EINVAL,
                          "counter for actor %s must be an integer from 1 "
                          "to %" PRIu64 ", got %s",
                          shown, (uint64_t)VV_COUNTER_MAX, got);
    }
    return push_copy(tmp, actor, (uint64_t)n);
}

int vv_from_json(vv_t *vv, const json_t *obj, char *err, size_t errlen)
{
    const char *actor;
    json_t *value;
    vv_t tmp;
    int rc = 0;

    if (!json_is_object(obj)) {
        char got[64];

        proto_json_describe(obj, got, sizeof(got));
        return proto_fail(err, errlen, -EINVAL,
                          "must be an object of actor counters, got %s", got);
    }

    vv_init(&tmp);
    if (reserve(&tmp, json_object_size(obj)) < 0)
        return -ENOMEM;

    /* jansson's object iteration needs a non-const object. */
    json_object_foreach ((json_t *)obj, actor, value) {
        rc = read_entry(&tmp, actor, value, err, errlen);
        if (rc < 0)
            break;
    }
    if (rc < 0) {
        vv_free(&tmp);
        return rc;
    }

    /* Keys of a JSON object are unique, so sorting leaves no duplicates. */
    if (tmp.len > 1)
        qsort(tmp.entries, tmp.len, sizeof(*tmp.entries), entry_cmp);
    vv_free(vv);
    *vv = tmp;
    return 0;
}

json_t *vv_to_json(const vv_t *vv)
{
    json_t *obj = json_object();
    size_t i;

    if (obj == NULL)
        return NULL;
    for (i = 0; i < vv->len; i++) {
        const vv_entry_t *e = &vv->entries[i];

        if (json_object_set_new(obj, e->actor,
                                json_integer((json_int_t)e->counter)) < 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}
