/*
 * Shared output buffers. The payload and its headroom are one allocation.
 */
#include "buf.h"

#include <libwebsockets.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "jsontext.h"
#include "pack.h"

unsigned long long buf_encodes[ENC_COUNT];

#define JSON_FIRST_CAP 512 /* bytes first allocated for a JSON message */

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

const char *buf_enc_name(enc_t enc)
{
    return enc == ENC_MSGPACK ? "msgpack" : "json";
}

/* A buffer that jsontext_dump() fills as it encodes. */
typedef struct json_sink {
    buf_t *b;
    size_t cap; /* payload bytes that b has room for */
} json_sink_t;

static int append_json(const char *text, size_t size, void *arg)
{
    json_sink_t *sink = arg;
    buf_t *b = sink->b;

    if (b->len + size > sink->cap) {
        size_t cap = sink->cap * 2;

        while (cap < b->len + size)
            cap *= 2;
        b = realloc(b, sizeof(*b) + LWS_PRE + cap + 1);
        if (!b)
            return -1;
        b->data = (unsigned char *)(b + 1) + LWS_PRE;
        sink->b = b;
        sink->cap = cap;
    }
    memcpy(b->data + b->len, text, size);
    b->len += size;
    return 0;
}

/* Encodes j once, into a buffer that grows as needed. Floats take the
 * fewest digits that read back as the same double. */
buf_t *buf_from_json(const json_t *j)
{
    json_sink_t sink = {.b = buf_new(JSON_FIRST_CAP), .cap = JSON_FIRST_CAP};

    if (!sink.b)
        return NULL;
    sink.b->len = 0;
    if (jsontext_dump(j, append_json, &sink) < 0 ||
        sink.b->len == 0) {
        free(sink.b);
        return NULL;
    }
    return sink.b;
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

buf_t *buf_from_msgpack(const json_t *j)
{
    msgpack_sbuffer sbuf;
    buf_t *b = NULL;

    msgpack_sbuffer_init(&sbuf);
    if (pack_json(&sbuf, j) == 0) {
        b = buf_new(sbuf.size);
        if (b)
            memcpy(b->data, sbuf.data, sbuf.size);
    }
    msgpack_sbuffer_destroy(&sbuf);
    return b;
}

void wire_init(wire_t *w, json_t *msg)
{
    memset(w, 0, sizeof(*w));
    w->msg = msg;
}

buf_t *wire_get(wire_t *w, enc_t enc)
{
    if (!w->msg || w->failed[enc])
        return NULL;
    if (!w->bufs[enc]) {
        w->bufs[enc] = enc == ENC_MSGPACK ? buf_from_msgpack(w->msg)
                                          : buf_from_json(w->msg);
        if (w->bufs[enc])
            buf_encodes[enc]++;
        else
            w->failed[enc] = 1;
    }
    return w->bufs[enc];
}

void wire_clear(wire_t *w)
{
    for (int i = 0; i < ENC_COUNT; i++)
        buf_unref(w->bufs[i]);
    json_decref(w->msg);
    memset(w, 0, sizeof(*w));
}
