/*
 * The Redis store: two hiredis async connections on the server's libuv loop,
 * one for commands and one for SUBSCRIBE, and the server-side Redis
 * functions that apply edits atomically.
 *
 * Every callback runs on the loop thread. A callback with status < 0 means
 * Redis was unreachable or replied with an error; nothing was written then
 * unless the status says otherwise.
 */
#ifndef AL_STORE_H
#define AL_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"

#define STORE_RANGES_MAX 256 /* frame-range claims per item of a room */

typedef struct store store_t;

/* Notifications from the store to its owner. */
typedef struct {
    /* Redis became reachable (up = 1) or was lost (up = 0). */
    void (*connection)(int up, void *arg);
    /* SUBSCRIBE to a room's channel was confirmed. */
    void (*subscribed)(const char *room, void *arg);
    /* An event arrived on a room's channel. body is msgpack, valid only
     * during the call. */
    void (*message)(const char *room, uint64_t seq, const char *body,
                    size_t len, void *arg);
    /* A presence or claim change arrived on a room's channel: JSON text,
     * valid only during the call. */
    void (*aware)(const char *room, const char *json, size_t len,
                  void *arg);
    /* The room's data was deleted (the message "D" on its channel). */
    void (*deleted)(const char *room, void *arg);
} store_events_t;

/* One object write of an apply: the object's new msgpack record and the
 * revision the writer computed it from (0 for an object that is new). */
typedef struct {
    const char *id;
    uint64_t expected_rev;
    const char *blob;
    size_t blob_len;
} store_write_t;

/* Objects of a room as loaded: parallel arrays, valid during the callback. */
typedef struct {
    uint64_t seq;
    size_t n;
    const char **ids;
    const char **blobs;
    const size_t *blob_lens;
    const uint64_t *revs;
} store_room_t;

/* Events of a room's stream, valid during the callback. */
typedef struct {
    uint64_t seq;
    const char *body;
    size_t len;
} store_entry_t;

/* What al_apply did with a batch. */
typedef enum {
    STORE_APPLIED,   /* written as seq (0 when it wrote no object) */
    STORE_STALE,     /* an expected revision no longer holds; nothing written */
    STORE_DUPLICATE, /* seen before: seq and results of its first arrival */
    STORE_TOO_OLD,   /* older than the acks kept for its actor */
} store_outcome_t;

/* A batch as al_apply writes it. */
typedef struct {
    const char *actor;
    uint64_t opseq;
    const char *body;    /* msgpack event body; unused when n is 0 */
    size_t body_len;
    const char *results; /* msgpack of the ack's results, kept for retries */
    size_t results_len;
    const store_write_t *writes;
    size_t n;
    const store_write_t *reads; /* objects the results depend on but the
                                   batch does not write; blobs unused */
    size_t nreads;
} store_batch_t;

/* status is 0 or negative when Redis failed; results (msgpack, valid
 * during the call) is set for STORE_DUPLICATE only. */
typedef void (*store_apply_cb)(int status, store_outcome_t outcome,
                               uint64_t seq, const char *results,
                               size_t results_len, void *arg);
typedef void (*store_load_cb)(int status, const store_room_t *room,
                              void *arg);
typedef void (*store_range_cb)(int status, const store_entry_t *entries,
                               size_t n, uint64_t first_seq,
                               uint64_t room_seq, void *arg);

/*
 * Connects both connections and loads the Redis functions. done is called
 * once: with 0 when ready, or a negative code after logging why.
 * Returns 0, or -ENOMEM.
 */
int store_start(store_t **out, uv_loop_t *loop, const config_t *cfg,
                const store_events_t *events, void *arg,
                void (*done)(int status, void *arg));

/* Disconnects and frees the store once its callbacks have run; pending
 * callbacks receive a failure status. */
void store_stop(store_t *st);

/* Closes both connections after an error that left a room behind; the
 * reconnect resubscribes and resynchronises every room. */
void store_resync(store_t *st);

/* Returns 1 while both connections are up. */
int store_is_up(const store_t *st);

/* Returns the commands sent on the command connection whose replies have
 * not arrived, counting those not yet written to the socket. */
size_t store_commands_pending(const store_t *st);

/* Subscribes to room's channel; events->subscribed follows, also when the
 * channel was subscribed already. Returns 0 or a negative code when Redis
 * is down. */
int store_subscribe(store_t *st, const char *room);

/* Unsubscribes from room's channel once its SUBSCRIBE was confirmed; a
 * store_subscribe() before the UNSUBSCRIBE is confirmed subscribes again
 * after it. */
void store_unsubscribe(store_t *st, const char *room);

/* Writes a batch atomically: unless (actor, opseq) was seen before or an
 * expected revision of an object written or read no longer holds, the
 * objects are written, the room's
 * next seq assigned, the event appended to the stream and published, and
 * the ack's results kept for retries. Returns 0 or a negative code (cb is
 * then not called). */
int store_apply(store_t *st, const char *room, const store_batch_t *batch,
                store_apply_cb cb, void *arg);

/* Loads the room's seq and objects in one atomic read. */
int store_load(store_t *st, const char *room, store_load_cb cb, void *arg);

/* Reads up to count stream events with seq > after. first_seq is the seq
 * of the oldest event still in the stream (0 when it is empty), so a caller
 * can tell when the stream no longer reaches back to after + 1. room_seq is
 * the room's seq in Redis, which is lower than after only when Redis lost
 * data. */
int store_range(store_t *st, const char *room, uint64_t after, size_t count,
                store_range_cb cb, void *arg);

struct redisReply;

/* status is 0, -EPROTO with reply set to Redis' error reply, or -EIO with
 * reply NULL when Redis was unreachable. reply is valid during the call. */
typedef void (*store_reply_cb)(int status, const struct redisReply *reply,
                               void *arg);

/* Sends one command on the command connection, for the rare requests that
 * need no function of their own (room administration). Returns 0 or a
 * negative code (cb is then not called). */
int store_command(store_t *st, int argc, const char **argv,
                  const size_t *lens, store_reply_cb cb, void *arg);

/* Removes the actors of room that have not written for idle_ms, with
 * their acks, so that a retry after that long applies again. Returns 0 or
 * a negative code. */
int store_forget(store_t *st, const char *room, uint64_t idle_ms);

/* Writes the pub/sub channel name of room into out. */
void store_channel(const store_t *st, const char *room, char *out,
                   size_t outlen);

#endif
