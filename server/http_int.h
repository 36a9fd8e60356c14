/*
 * Shared parts of the HTTP modules (http.c routes requests and sends responses,
 * http_ops.c applies op batches and COCO imports, http_rooms.c administers
 * rooms). Not for use outside them. Everything runs on the loop thread.
 */
#ifndef AL_HTTP_INT_H
#define AL_HTTP_INT_H

#include <jansson.h>
#include <libwebsockets.h>
#include <uv.h>

#include "config.h"
#include "http.h"
#include "msg.h"
#include "store.h"

extern const config_t *http_cfg;
extern store_t *http_store;
extern uv_loop_t *http_loop;

/* An asynchronous step of a request (a Redis call, a batch, a wait). It
 * outlives the request when the client goes away first: the request's
 * close sets cancelled, and the step's callback then frees it without
 * a response. on_cancel, when set, runs at that moment (to stop a timer). */
typedef struct http_pending {
    struct lws *wsi;
    http_t *h;
    int cancelled;
    void (*on_cancel)(struct http_pending *p);
} http_pending_t;

/* Attaches p to the request. */
void http_pending_start(http_pending_t *p, struct lws *wsi, http_t *h);

/* Detaches p from its request before a response. Returns 1 when the
 * request is still open and may get a response. */
int http_pending_finish(http_pending_t *p);

/* Queues a JSON response and takes the reference to body. Returns 0, or
 * -1 when the connection must close. */
int http_respond(struct lws *wsi, http_t *h, int status, json_t *body);

/* Queues {"error": {"code", "message"}} with status. */
int http_error(struct lws *wsi, http_t *h, int status, const char *code,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Returns the value of the query argument name (such as "since=") copied
 * into buf, or NULL when the request has none. */
const char *http_query(struct lws *wsi, const char *name, char *buf,
                       size_t len);

/* Returns the HTTP status of a protocol error code. */
int http_status_of(msg_err_t code);

/* Parses the request body as JSON, or msgpack when h->rx_msgpack, with the
 * nesting limit of client messages. Returns the value, or NULL after
 * queueing a 400 response. */
json_t *http_parse_body(struct lws *wsi, http_t *h);

/* Decodes ops (a JSON array of ops) as the batch of actor and opseq,
 * applies it to h->room in slices of at most --max-ops ops and responds
 * with the gathered acks plus the members of extra (whose reference it
 * takes; may be NULL). Returns 0, or -1 when the connection must close. */
int http_ops_apply(struct lws *wsi, http_t *h, const char *actor,
                   uint64_t opseq, const json_t *ops, int atomic,
                   json_t *extra);

/* Returns an opseq from the clock in microseconds, larger than the last
 * one it returned, for batches the server makes itself. */
uint64_t http_clock_opseq(void);

/* Applies the op batch of the request body to h->room (http_ops.c). */
int http_ops_post(struct lws *wsi, http_t *h);

/* Imports the COCO file of the request body into h->room. */
int http_ops_import(struct lws *wsi, http_t *h);

/* Serves GET /v1/rooms/{room}/export?format=coco. */
int http_ops_export(struct lws *wsi, http_t *h);

/* Room administration (http_rooms.c). */
int http_rooms_list(struct lws *wsi, http_t *h);
int http_rooms_create(struct lws *wsi, http_t *h);
int http_rooms_patch(struct lws *wsi, http_t *h);
int http_rooms_delete(struct lws *wsi, http_t *h);

#endif
