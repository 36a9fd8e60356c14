/*
 * Reference-counted output buffers with LWS_PRE bytes of headroom.
 *
 * One encoded message is shared by every connection it goes to: each queue
 * entry holds a reference, and libwebsockets writes its frame header into
 * the headroom in front of the payload. Buffers belong to the loop thread.
 */
#ifndef AL_BUF_H
#define AL_BUF_H

#include <jansson.h>
#include <stddef.h>

typedef struct {
    unsigned refs;
    size_t len;         /* payload bytes */
    unsigned char *data; /* payload; LWS_PRE writable bytes come before it */
} buf_t;

/* Returns a buffer with room for len payload bytes and one reference,
 * or NULL. */
buf_t *buf_new(size_t len);

/* Encodes j as compact JSON into a new buffer. Returns NULL on failure. */
buf_t *buf_from_json(const json_t *j);

/* Like buf_from_json(), and releases the reference to j (which may be
 * NULL, giving NULL). */
buf_t *buf_take_json(json_t *j);

buf_t *buf_ref(buf_t *b);
void buf_unref(buf_t *b);

/* Wire encodings of the two subprotocols. */
typedef enum { ENC_JSON, ENC_MSGPACK, ENC_COUNT } enc_t;

/* Messages encoded for WebSocket connections so far, per encoding, for
 * /metrics and tests. */
extern unsigned long long buf_encodes[ENC_COUNT];

/* Returns the wire name of an encoding ("json" or "msgpack"). */
const char *buf_enc_name(enc_t enc);

/* Encodes j as msgpack into a new buffer. Returns NULL on failure. */
buf_t *buf_from_msgpack(const json_t *j);

/* One message on its way to many connections: it is encoded at most once
 * per encoding, on first use, and the buffers are shared. */
typedef struct {
    json_t *msg;           /* owned */
    buf_t *bufs[ENC_COUNT];
    int failed[ENC_COUNT]; /* the encoding failed once; not tried again */
} wire_t;

/* Takes the reference to msg (which may be NULL). */
void wire_init(wire_t *w, json_t *msg);

/* Returns the message in enc, encoding it on first use; the wire keeps the
 * reference. Returns NULL on failure. */
buf_t *wire_get(wire_t *w, enc_t enc);

void wire_clear(wire_t *w);

#endif
