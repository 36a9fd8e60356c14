/*
 * libFuzzer target: decodes arbitrary bytes as a client message of the
 * annolive.v1.msgpack subprotocol with msg_decode_msgpack() and the default
 * limits. A decoded batch must contain ops, a failure must leave an error
 * message, and a message that decodes must encode back to msgpack.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "msg.h"
#include "pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Packs every op back as an event shows it, to drive the encoder over
 * whatever values the decoder let through. */
static void repack_ops(const msg_t *msg)
{
    for (size_t i = 0; i < msg->nops; i++) {
        vv_t vv;
        json_t *j;
        msgpack_sbuffer sbuf;

        vv_init(&vv);
        j = msg_event_op_json(&msg->ops[i], &vv);
        msgpack_sbuffer_init(&sbuf);
        if (j && pack_json(&sbuf, j) != 0)
            abort();
        msgpack_sbuffer_destroy(&sbuf);
        json_decref(j);
        vv_free(&vv);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msg_error_t err;
    msg_t msg;
    int rc;

    memset(&err, 0, sizeof(err));
    rc = msg_decode_msgpack((const char *)data, size, NULL, &msg, &err);
    if (rc == 0) {
        if (msg.type == MSG_OPS && (msg.ops == NULL || msg.nops == 0))
            abort();
        repack_ops(&msg);
        msg_clear(&msg);
    } else if (memchr(err.message, '\0', sizeof(err.message)) == NULL) {
        abort();
    }
    return 0;
}
