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

/* Removes s from name and sends "left". */
void room_leave(sess_t *s, const char *name);

/* Applies a batch from s. Takes over msg's contents (msg is cleared). */
void room_submit(sess_t *s, msg_t *msg);

/* Removes s from every room and detaches it from its batches in flight. */
void room_drop_session(sess_t *s);

/* Returns the name of r. */
const char *room_name(const room_t *r);

/* Returns the number of rooms with a cache on this instance. */
size_t room_count(void);

/* Returns the number of batches sent to Redis that have not returned yet. */
size_t room_batches_in_flight(void);

#endif
