/*
 * Plain HTTP on the WebSocket port: health, room snapshots and, when
 * configured, static files.
 */
#ifndef AL_HTTP_H
#define AL_HTTP_H

#include <libwebsockets.h>

#include "buf.h"
#include "config.h"
#include "store.h"

struct http_pending;

/* Per-connection state of an HTTP request. */
typedef struct {
    int status;
    buf_t *body;                  /* response body, sent when writeable */
    const char *content_type;
    struct http_pending *pending; /* a Redis read in flight */
} http_t;

void http_configure(const config_t *cfg, store_t *store);

/* Marks the instance as stopping: /readyz returns 503 and new WebSocket
 * upgrades are rejected with 503. */
void http_set_stopping(void);

/* Returns 1 once http_set_stopping() was called. */
int http_stopping(void);

/* libwebsockets callback for the HTTP part of the protocol. */
int http_callback(struct lws *wsi, enum lws_callback_reasons reason,
                  http_t *h, void *in, size_t len);

/* Rejects a WebSocket upgrade with an HTTP status and a JSON error body
 * {"error": {code, message}}, from LWS_CALLBACK_HTTP_CONFIRM_UPGRADE.
 * message must need no JSON escaping. Returns what that callback returns. */
int http_reject_upgrade(struct lws *wsi, int status, const char *code,
                        const char *message);

#endif
