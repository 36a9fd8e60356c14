/*
 * libFuzzer target: decodes arbitrary bytes as a client message with
 * msg_decode_json() and the default limits, then clears the message. A
 * decoded batch must contain ops, and a failure must leave an error message.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msg_error_t err;
    msg_t msg;
    int rc;

    memset(&err, 0, sizeof(err));
    rc = msg_decode_json((const char *)data, size, NULL, &msg, &err);
    if (rc == 0) {
        /* A decoded batch contains at least one op. */
        if (msg.type == MSG_OPS && (msg.ops == NULL || msg.nops == 0))
            abort();
        msg_clear(&msg);
    } else if (memchr(err.message, '\0', sizeof(err.message)) == NULL) {
        /* A failure always leaves a NUL-terminated message. */
        abort();
    }
    return 0;
}
