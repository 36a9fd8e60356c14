/*
 * Snapshot messages, with the encoded objects of a room kept until the
 * objects change.
 *
 * The objects array is spliced into the encoded head: in JSON before the
 * head's closing brace, in msgpack after a map header that counts one more
 * entry than the head has.
 */
#include "snap.h"

#include <errno.h>
#include <msgpack.h>
#include <string.h>

#include "pack.h"

#define OBJECTS_KEY "objects"

/* Returns the cached objects array in encoding enc, encoding it first when
 * the cache has none. */
static buf_t *objects_in(snap_cache_t *cache, enc_t enc,
                         snap_objects_fn objects, void *arg)
{
    json_t *array;

    if (cache->objects[enc])
        return cache->objects[enc];
    array = objects(arg);
    if (!array)
        return NULL;
    cache->objects[enc] = enc == ENC_MSGPACK ? buf_from_msgpack(array)
                                             : buf_from_json(array);
    json_decref(array);
    return cache->objects[enc];
}

static buf_t *join_json(const json_t *head, const buf_t *objects)
{
    static const char key[] = ",\"" OBJECTS_KEY "\":";
    buf_t *encoded = buf_from_json(head);
    buf_t *b = NULL;
    size_t open_len;

    /* The head is a non-empty object, so its text ends with '}'. */
    if (encoded && encoded->len >= 2 && encoded->data[encoded->len - 1] == '}') {
        open_len = encoded->len - 1;
        b = buf_new(open_len + sizeof(key) - 1 + objects->len + 1);
    }
    if (b) {
        unsigned char *p = b->data;

        memcpy(p, encoded->data, open_len);
        p += open_len;
        memcpy(p, key, sizeof(key) - 1);
        p += sizeof(key) - 1;
        memcpy(p, objects->data, objects->len);
        p += objects->len;
        *p = '}';
    }
    buf_unref(encoded);
    return b;
}

static int pack_key(msgpack_packer *pk, const char *key)
{
    size_t len = strlen(key);

    if (msgpack_pack_str(pk, len) != 0 ||
        msgpack_pack_str_body(pk, key, len) != 0)
        return -ENOMEM;
    return 0;
}

static buf_t *join_msgpack(const json_t *head, const buf_t *objects)
{
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    const char *key;
    json_t *value;
    buf_t *b = NULL;
    int rc;

    msgpack_sbuffer_init(&sbuf);
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    rc = msgpack_pack_map(&pk, json_object_size(head) + 1) != 0 ? -ENOMEM
                                                                : 0;
    json_object_foreach((json_t *)head, key, value) {
        if (rc == 0)
            rc = pack_key(&pk, key);
        if (rc == 0)
            rc = pack_json(&sbuf, value);
    }
    if (rc == 0)
        rc = pack_key(&pk, OBJECTS_KEY);
    if (rc == 0 && msgpack_sbuffer_write(&sbuf, (const char *)objects->data,
                                         objects->len) != 0)
        rc = -ENOMEM;
    if (rc == 0)
        b = buf_new(sbuf.size);
    if (b)
        memcpy(b->data, sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy(&sbuf);
    return b;
}

buf_t *snap_message(snap_cache_t *cache, enc_t enc, const json_t *head,
                    snap_objects_fn objects, void *arg)
{
    buf_t *array = objects_in(cache, enc, objects, arg);
    buf_t *b;

    if (!array || !json_is_object(head) || json_object_size(head) == 0)
        return NULL;
    b = enc == ENC_MSGPACK ? join_msgpack(head, array)
                           : join_json(head, array);
    if (b)
        buf_encodes[enc]++;
    return b;
}

void snap_forget(snap_cache_t *cache)
{
    for (int i = 0; i < ENC_COUNT; i++) {
        buf_unref(cache->objects[i]);
        cache->objects[i] = NULL;
    }
}
