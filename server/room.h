/*
 * Rooms: the members of each room on this instance, a cache of the room's
 * objects kept in step with its event stream, and the apply path that turns
 * op batches into atomic writes in Redis.
 *
 * Every function runs on the loop thread.
 */
#ifndef AL_ROOM_H
#define AL_ROOM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "msg.h"
#include "sess.h"
#include "store.h"

struct room;
typedef struct room room_t;

/* Sets up the room registry and the timer that frees rooms left without
 * members. Returns 0 or -ENOMEM. */
int room_module_init(uv_loop_t *loop, const config_t *cfg, store_t *store);

/* Stops the timer, so that the loop can end. */
void room_module_stop(void);

/* Frees every room. Sessions must be gone. */
void room_module_free(void);

/* The store notifications, wired by main. */
void room_on_connection(int up, void *arg);
void room_on_subscribed(const char *room, void *arg);
void room_on_message(const char *room, uint64_t seq, const char *body,
                     size_t len, void *arg);

/* Joins s to the room of a join message; a snapshot, or the "resumed"
 * reply and the events after join->since, follow when the room is ready. */
void room_join(sess_t *s, const msg_t *join);

/* Sets the presence state of s in a room (msg->state is taken). */
void room_presence(sess_t *s, msg_t *msg);

/* Claims or releases a target for s (a claim or release message). */
void room_claim(sess_t *s, msg_t *msg);

/* The store's notification of a presence or claim change. */
void room_on_aware(const char *room, const char *json, size_t len,
                   void *arg);

/* Removes s from name and sends "left". */
void room_leave(sess_t *s, const char *name);

/* Applies a batch from s. Takes over msg's contents (msg is cleared). */
void room_submit(sess_t *s, msg_t *msg);

/* Where the reply to a batch goes when no WebSocket session sent it, such
 * as an HTTP request. Exactly one of the two is called, once, on the loop
 * thread; the arguments are valid during the call only. */
typedef struct {
    /* The batch was acknowledged: ack is the "ack" message as a session
     * gets it (also for a batch seen before). */
    void (*ack)(const json_t *ack, void *arg);
    /* Nothing of the batch was applied: code and message give the
     * reason. */
    void (*fail)(msg_err_t code, const char *message, void *arg);
} room_sink_t;

/* Applies a batch to room name through the same path as room_submit(),
 * for a writer with role, and replies through sink (which must outlive
 * the call of one of its functions). Takes over msg's contents. Returns 0,
 * or a negative code when the room cannot be opened (Redis is down, or no
 * memory); the sink is then not called. */
int room_submit_sink(const char *name, msg_t *msg, jwt_role_t role,
                     const char *sub,
                     const room_sink_t *sink, void *arg);

/* Returns the number of room memberships of the sessions on this
 * instance. */
size_t room_member_count(void);

/* Returns the number of members of room name on this instance. */
size_t room_members_in(const char *name);

/* Reloads room name from Redis when it is cached here, after its data
 * was deleted: its members get a snapshot marked reset. */
void room_on_deleted(const char *name, void *arg);

/* Removes s from every room and detaches it from its batches in flight. */
void room_drop_session(sess_t *s);

/* Returns the name of r. */
const char *room_name(const room_t *r);

/* Returns the number of rooms with a cache on this instance. */
size_t room_count(void);

/* Returns the number of batches sent to Redis that have not returned yet. */
size_t room_batches_in_flight(void);

#endif
