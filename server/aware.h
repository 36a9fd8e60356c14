/*
 * Awareness: the presence entries and claims of a room.
 *
 * Redis holds them (the al_pset, al_pdel, al_beat, al_claim and al_release
 * functions of store_lua.h) and announces every change on the room's
 * channel with a version number. Each room on an instance keeps a cache,
 * loaded once with al_aware_load and then kept in step with those
 * announcements: an announcement at or below the loaded version is already
 * in the cache, and one that arrives before the load is held until it
 * returns.
 *
 * Every function runs on the loop thread.
 */
#ifndef AL_AWARE_H
#define AL_AWARE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "obj.h"
#include "store.h"

#define AWARE_CLAIMS_MAX 10000 /* claims one room may hold */
#define AWARE_CLAIMS_ID "@claims" /* the revs field that counts claim
                                     changes */

typedef struct aware aware_t;

/* Receives each server message (a new reference) that a change produces,
 * for the room's members. */
typedef void (*aware_emit_fn)(json_t *msg, void *arg);

aware_t *aware_new(const char *room);
void aware_free(aware_t *a);

/* Returns 1 once a load has returned. */
int aware_loaded(const aware_t *a);

/* Marks the cache stale before a new load, which then emits what changed
 * to the members. Announcements are kept until the load returns. */
void aware_unload(aware_t *a);

/* Empties the cache, for a room whose keys were deleted, and unloads it. */
void aware_forget(aware_t *a);

/* Installs the reply of al_aware_load, then emits the kept announcements
 * that are newer. Returns 0 or -EPROTO for a malformed reply. */
int aware_load_reply(aware_t *a, const struct redisReply *reply,
                     aware_emit_fn emit, void *arg);

/* Takes one announcement from the channel: applies it and emits the
 * message it gives, or keeps it until the load returns. */
void aware_on_announce(aware_t *a, const char *json, size_t len,
                       aware_emit_fn emit, void *arg);

/* Adds "presence" and "claims" arrays to a snapshot or resumed message.
 * Returns 0 or -ENOMEM. */
int aware_describe(const aware_t *a, json_t *msg);

/* The count of claim changes that the cache reflects, which al_apply
 * checks as the revision of "@claims". */
uint64_t aware_claims_rev(const aware_t *a);

/* Returns NULL when no claim of another holder covers the object that op
 * writes, where it is (cur) or where op puts it. Otherwise writes the
 * reason into buf and returns buf. A holder is a client key together with
 * its token's sub, so a writer that names another user's key is blocked. */
const char *aware_blocker(const aware_t *a, const op_t *op, const obj_t *cur,
                          const char *client, const char *sub, char *buf,
                          size_t buflen);

/* Writes the Redis key of a claim's target: "o\nID" or
 * "f\nITEM\nFIRST\nLAST". */
void aware_claim_key(const msg_target_t *t, char *out, size_t outlen);

/* Builds the JSON form of a target. Returns a new reference or NULL. */
json_t *aware_target_json(const msg_target_t *t);

/* The outcome word of a reply to al_pset, al_claim or al_release ("ok",
 * "granted", "denied", ...), or NULL for a malformed reply. */
const char *aware_reply_word(const struct redisReply *reply);

/* The holder's claim in a "denied" reply to al_claim, as a new reference,
 * or NULL. */
json_t *aware_reply_holder(const struct redisReply *reply);

/* Calls fn(key, arg) for each key of a reply to al_beat: the entries that
 * were missing. */
void aware_each_missing(const struct redisReply *reply,
                        void (*fn)(const char *key, void *arg), void *arg);

/* Redis calls. Each returns 0 or a negative code (cb is then not called);
 * cb may be NULL. */
int aware_load(store_t *st, const char *room, store_reply_cb cb, void *arg);
int aware_set(store_t *st, const char *room, const char *key,
              const char *conn, const char *sub, const char *entry,
              int ttl_ms, int joining, store_reply_cb cb, void *arg);
int aware_drop(store_t *st, const char *room, const char *key,
               const char *conn, int grace_ms);
int aware_beat(store_t *st, const char *room, int ttl_ms, int grace_ms,
               int sweep, const char *const *keys, const char *const *conns,
               size_t n, store_reply_cb cb, void *arg);
int aware_claim(store_t *st, const char *room, const msg_target_t *t,
                const char *client, const char *claim, uint64_t ttl_ms,
                store_reply_cb cb, void *arg);
int aware_release(store_t *st, const char *room, const msg_target_t *t,
                  const char *client, store_reply_cb cb, void *arg);

#endif
