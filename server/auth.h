/*
 * Authentication of connections and HTTP requests with JSON Web Tokens.
 *
 * A token comes in "Authorization: Bearer TOKEN" (bots, HTTP clients) or in
 * the query argument token=TOKEN (browsers cannot set headers on a
 * WebSocket). With --no-auth every request is let in with full rights; the
 * server accepts that mode only on a loopback address.
 */
#ifndef AL_AUTH_H
#define AL_AUTH_H

#include <libwebsockets.h>
#include <stddef.h>

#include "config.h"
#include "jwt.h"

#define AUTH_SECRET_MAX 4096 /* bytes of an HS256 secret, at most */

/* Reads an HS256 secret from the file path, or from ANNOLIVE_AUTH_SECRET
 * when path is NULL, into buf (cap bytes), dropping trailing newlines.
 * Returns 0 with *len set (0 when neither gives a secret), or a negative
 * code with a message in err. */
int auth_load_secret(const char *path, unsigned char *buf, size_t cap,
                     size_t *len, char *err, size_t errlen);

/* Loads the secret or key named by cfg and builds the verifier. Returns 0,
 * or a negative code with a message in err naming the setting to fix. */
int auth_init(const config_t *cfg, char *err, size_t errlen);

void auth_free(void);

/* Returns 1 when tokens are checked, 0 in --no-auth mode. */
int auth_enabled(void);

/*
 * Verifies the token of the request on wsi. Returns 0 with claims filled
 * (the caller clears them), -ENOENT when the request carries no token, or
 * -EACCES with the reason in err. In --no-auth mode it returns 0 with
 * claims for the subject "anonymous" as admin of every room.
 */
int auth_request(struct lws *wsi, jwt_claims_t *claims, char *err,
                 size_t errlen);

/* Verifies a token given in a message. Returns as auth_request(). */
int auth_token(const char *token, size_t len, jwt_claims_t *claims,
               char *err, size_t errlen);

/* Returns the current Unix time in seconds. */
int64_t auth_now(void);

#endif
