/*
 * WebSocket sessions: one per connection on /v1/ws. A session assembles
 * incoming messages, decodes them and hands them to the rooms, and sends
 * shared output buffers through a queue bounded in bytes.
 */
#ifndef AL_SESS_H
#define AL_SESS_H

#include <jansson.h>
#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "jwt.h"
#include "msg.h"

#define SESS_SUBPROTOCOL_JSON "annolive.v1.json"
#define SESS_CLOSE_TOKEN_EXPIRED 4001 /* close code: token expired */
#define SESS_SUBPROTOCOL_MSGPACK "annolive.v1.msgpack"

typedef struct sess_out {
    struct sess_out *next;
    buf_t *buf;
    int paced; /* queued by sess_send_paced() */
} sess_out_t;

struct room;
struct sess;

typedef struct sess_drain {
    struct sess_drain *next;
    void (*cb)(struct sess *s, void *arg);
    void *arg;
} sess_drain_t;

typedef struct sess {
    struct sess *prev, *next; /* all open sessions */
    struct lws *wsi;
    uint64_t id;           /* for logs: "c<id>" */
    enc_t enc;             /* the subprotocol's encoding */
    char *rx;              /* the message being assembled */
    size_t rx_len, rx_cap;
    int rx_binary;
    sess_out_t *out_head, *out_tail;
    size_t out_bytes;      /* bytes queued */
    size_t paced_bytes;    /* of which paced; the rest is bounded by
                              max_queue */
    int close_code;        /* non-zero once a close is pending */
    int close_sent;        /* the close frame is written */
    int closing;           /* the peer closed or the connection ends */
    int writing;           /* inside flush_queue() */
    char close_reason[64];
    struct room **rooms;   /* rooms joined, at most cfg->max_rooms */
    size_t nrooms, cap_rooms;
    struct sess_drain *drains; /* callbacks of sess_on_drain() */
    jwt_claims_t claims;   /* of the connection's token */
    char peer[48];         /* client address, for the per-address cap */
    double rate_tokens;    /* ops the connection may send now */
    uint64_t held_opseq;   /* a failed batch that must be resent first */
    char held_actor[PROTO_ID_MAX + 1];
    msg_err_t held_code;   /* why it failed */
    uint64_t rate_at_us;   /* when rate_tokens was last refilled */
} sess_t;

/* Sets the configuration that every session uses. */
void sess_configure(const config_t *cfg);

/* libwebsockets callback for the WebSocket part of the protocol. */
int sess_callback(struct lws *wsi, enum lws_callback_reasons reason,
                  sess_t *s, void *in, size_t len);

/* Queues a reference to b for sending. Over the queue limit the session is
 * closed instead. */
void sess_send(sess_t *s, buf_t *b);

/* Queues the message of w in the session's encoding. */
void sess_send_wire(sess_t *s, wire_t *w);

/* Queues b like sess_send() but past the queue limit, for a producer that
 * paces itself with sess_on_drain(). */
void sess_send_paced(sess_t *s, buf_t *b);

/* Queues the message of w like sess_send_paced(). */
void sess_send_wire_paced(sess_t *s, wire_t *w);

/* Records that batch opseq of actor failed with code, unless a batch is
 * held already. Later batches of the actor on this connection then fail
 * the same way until it is resent. So it cannot fall behind the actor's
 * last opseq and become stale. */
void sess_hold(sess_t *s, const char *actor, uint64_t opseq, msg_err_t code);

/* Returns 1 when the queue is over half its limit: a paced producer should
 * wait for sess_on_drain() before it sends more. */
int sess_backlogged(const sess_t *s);

/* Calls cb once, when the queue has drained below half its limit or when
 * the session closes (then the session has left its rooms and cb must not
 * send). Returns 0 or -ENOMEM. */
int sess_on_drain(sess_t *s, void (*cb)(sess_t *s, void *arg), void *arg);

/* Encodes j in the session's encoding, queues it and releases the
 * reference to j. */
void sess_send_json(sess_t *s, json_t *j);

/* Sends an error message. room may be NULL and opseq 0. */
void sess_send_error(sess_t *s, msg_err_t code, const char *room,
                     uint64_t opseq, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Closes the session with a WebSocket close code after what is queued. */
void sess_close(sess_t *s, int code, const char *reason);

/* Starts closing every open session with 1001 (server going away).
 * Returns how many sessions were open. */
size_t sess_close_all(void);

/* Returns the number of open sessions. */
size_t sess_count(void);

/* Returns the number of open sessions from the client address peer. */
size_t sess_count_from(const char *peer);

#endif
