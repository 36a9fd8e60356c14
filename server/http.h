/*
 * Plain HTTP on the WebSocket port: health, room snapshots and, when
 * configured, static files.
 */
#ifndef AL_HTTP_H
#define AL_HTTP_H

#include <jansson.h>
#include <libwebsockets.h>
#include <uv.h>

#include "buf.h"
#include "config.h"
#include "jwt.h"
#include "proto.h"
#include "store.h"

struct http_pending;

/* What a request with a body does once the body has arrived. */
typedef enum {
    HTTP_BODY_NONE,   /* no body expected */
    HTTP_BODY_OPS,    /* POST /v1/rooms/{room}/ops */
    HTTP_BODY_IMPORT, /* POST /v1/rooms/{room}/import */
    HTTP_BODY_CREATE, /* PUT /v1/rooms/{room} */
    HTTP_BODY_PATCH,  /* PATCH /v1/rooms/{room} */
} http_body_kind_t;

/* Per-connection state of an HTTP request. */
typedef struct {
    int status;
    buf_t *body;                  /* response body, sent when writeable */
    const char *content_type;
    struct http_pending *pending; /* a Redis request in flight */
    http_body_kind_t body_kind;
    char *rx;                     /* request body received so far */
    size_t rx_len, rx_cap;
    int rx_over;                  /* the body is over --max-body */
    int rx_msgpack;               /* Content-Type is application/msgpack */
    char room[PROTO_ROOM_MAX + 1];
    jwt_claims_t claims;          /* of the request's token */
    jwt_role_t role;              /* in room */
    int awaiting_body;            /* responses wait for the whole body */
    json_t *deferred;             /* a response queued while it waits */
    int deferred_status;
} http_t;

void http_configure(const config_t *cfg, store_t *store, uv_loop_t *loop);

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
