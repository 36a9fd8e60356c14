/*
 * Shared output buffers. The payload and its headroom are one allocation.
 */
#include "buf.h"

#include <libwebsockets.h>
#include <stdlib.h>

buf_t *buf_new(size_t len)
{
    buf_t *b = malloc(sizeof(*b) + LWS_PRE + len + 1);

    if (!b)
        return NULL;
    b->refs = 1;
    b->len = len;
    b->data = (unsigned char *)(b + 1) + LWS_PRE;
    return b;
}

buf_t *buf_from_json(const json_t *j)
{
    size_t len = json_dumpb(j, NULL, 0, JSON_COMPACT);
    buf_t *b;

    if (len == 0)
        return NULL;
    b = buf_new(len);
    if (!b)
        return NULL;
    if (json_dumpb(j, (char *)b->data, len, JSON_COMPACT) != len) {
        free(b);
        return NULL;
    }
    return b;
}

buf_t *buf_take_json(json_t *j)
{
    buf_t *b;

    if (!j)
        return NULL;
    b = buf_from_json(j);
    json_decref(j);
    return b;
}

buf_t *buf_ref(buf_t *b)
{
    b->refs++;
    return b;
}

void buf_unref(buf_t *b)
{
    if (b && --b->refs == 0)
        free(b);
}
