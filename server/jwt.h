/*
 * JSON Web Tokens (RFC 7519) for client authentication: verification of
 * HS256, RS256 and ES256 tokens against one configured algorithm and key,
 * the annolive claims (sub, name, role, rooms), room pattern matching and
 * minting of HS256 tokens.
 *
 * The module does no logging and keeps no global state. It reads files only
 * in jwt_verifier_new(), to load a PEM public key. It fetches no keys: the
 * header members jku, x5u, jwk and kid are ignored.
 */
#ifndef AL_JWT_H
#define AL_JWT_H

#include <stddef.h>
#include <stdint.h>

#define JWT_TOKEN_MAX 8192  /* bytes in a token */
#define JWT_SECRET_MIN 32   /* bytes in an HS256 secret */
#define JWT_SKEW_DEFAULT 60 /* seconds of clock skew allowed */
#define JWT_SKEW_MAX 3600   /* maximum configurable clock skew, seconds */
#define JWT_SUB_MAX 128     /* bytes in sub */
#define JWT_NAME_MAX 128    /* bytes in name */
#define JWT_PATTERN_MAX 128 /* bytes in a room pattern, '*' included */
#define JWT_ROOMS_MAX 256   /* entries in rooms */
#define JWT_TIME_MAX 253402300799LL /* 9999-12-31T23:59:59Z, Unix seconds */

/* Roles, in the order of their names in jwt_role_name(). The order is not
 * a ranking: what each role may do is decided by the caller. */
typedef enum {
    JWT_ROLE_VIEWER,
    JWT_ROLE_ANNOTATOR,
    JWT_ROLE_REVIEWER,
    JWT_ROLE_BOT,
    JWT_ROLE_ADMIN,
    JWT_ROLE_COUNT
} jwt_role_t;

/* Parses "viewer", "annotator", "reviewer", "bot" or "admin" (exact case).
 * Returns 0 with *out set, or -EINVAL. */
int jwt_role_parse(const char *name, jwt_role_t *out);

/* Returns the name of role, or NULL for a value outside the enum. */
const char *jwt_role_name(jwt_role_t role);

/* Settings of a verifier. Fill it with jwt_config_init() first. */
typedef struct {
    const char *alg;             /* "HS256", "RS256" or "ES256" */
    const unsigned char *secret; /* HS256 only: the shared secret */
    size_t secret_len;           /* at least JWT_SECRET_MIN */
    const char *key_file;        /* RS256 and ES256 only: PEM public key */
    const char *audience;        /* NULL: tokens must carry no aud */
    const char *issuer;          /* NULL: iss is not checked */
    int skew_s;                  /* 0..JWT_SKEW_MAX seconds */
} jwt_config_t;

/* Sets every member to NULL or 0 and skew_s to JWT_SKEW_DEFAULT. */
void jwt_config_init(jwt_config_t *cfg);

struct jwt_verifier;
typedef struct jwt_verifier jwt_verifier_t;

/*
 * Creates a verifier that accepts only tokens whose header alg is cfg->alg.
 * The verifier copies the secret, audience and issuer, and loads the key
 * file, so cfg may be freed afterwards. An RS256 key must be RSA of 2048 to
 * 8192 bits and an ES256 key must be EC on P-256. Giving a secret for
 * RS256 or ES256, or a key file for HS256, is an error.
 *
 * Returns 0 with *out set, which the caller frees with jwt_verifier_free().
 * On failure it returns -EINVAL for a bad setting or key, the negative
 * errno of fopen() for an unreadable key file, or -ENOMEM, and writes a
 * message into err (errlen bytes, and err may be NULL).
 */
int jwt_verifier_new(jwt_verifier_t **out, const jwt_config_t *cfg, char *err,
                     size_t errlen);

/* Frees v and wipes its copy of the secret. v may be NULL. */
void jwt_verifier_free(jwt_verifier_t *v);

/* One entry of the rooms claim. A pattern that ends in '*' matches every
 * room name that starts with the bytes before the '*', so "project:*"
 * matches "project:42" and "*" matches every room. Any other pattern
 * matches only the room of the same name. */
typedef struct {
    char pattern[JWT_PATTERN_MAX + 1];
    int has_role;    /* 1 when the entry was {"pattern": ..., "role": ...} */
    jwt_role_t role; /* the entry's role when has_role is 1 */
} jwt_room_t;

/* The claims of a verified token. */
typedef struct {
    char sub[JWT_SUB_MAX + 1];   /* 1..JWT_SUB_MAX bytes of 0x21-0x7e */
    char name[JWT_NAME_MAX + 1]; /* "" when the token has no name */
    jwt_role_t role;
    jwt_room_t *rooms; /* owned array of nrooms entries, no two patterns
                          equal */
    size_t nrooms;
    int64_t exp; /* Unix seconds */
} jwt_claims_t;

/*
 * Verifies a compact-serialised token of len bytes and reads its claims.
 *
 * Each segment must be base64url without padding: a '=' or any byte
 * outside the base64url alphabet is rejected, and so are unused low bits
 * that are not zero, so each byte string has one encoding. The header and
 * payload must be JSON objects without duplicate keys. The header alg must
 * equal the configured alg ("none" never does), and a header crit member
 * is rejected because no extension is supported. Other header members,
 * such as typ and kid, are ignored. The signature is checked
 * before the payload is parsed. An HS256 signature is compared in constant
 * time, and an ES256 signature must be the 64-byte JOSE form r || s.
 *
 * Claims: exp is required, and nbf and iat are optional. Each must be an
 * integer in 0..JWT_TIME_MAX. The token is rejected when now is exp +
 * skew or later, when now + skew is before nbf, or when iat is after now +
 * skew. With an audience configured, aud (a string or an array of strings)
 * must contain it. Without one, a token that has aud is rejected (RFC 7519
 * section 4.1.3). With an issuer configured, iss must equal it. sub and
 * role are required, and so is rooms: an array of at most JWT_ROOMS_MAX
 * patterns, each a string or an object {"pattern": string, "role":
 * string}. A pattern is 1..JWT_PATTERN_MAX bytes of [A-Za-z0-9._:-] with
 * an optional final '*'. Other claims are ignored.
 *
 * now is the current Unix time in seconds, 0..JWT_TIME_MAX. claims need
 * not be initialised, and its old contents are not freed.
 *
 * Returns 0 with claims filled, which the caller releases with
 * jwt_claims_clear(). On failure claims are left empty and it returns
 * -EACCES when the token is rejected for any reason, -EINVAL for a now out
 * of range, or -ENOMEM when memory runs out or an OpenSSL call fails. err
 * (errlen bytes, and err may be NULL) then receives a message naming what
 * failed, such as "token expired 120 s ago". Messages never contain the
 * secret, the signature or the token. They quote at most 16 sanitised
 * bytes of a header or claim value.
 */
int jwt_verify(const jwt_verifier_t *v, const char *token, size_t len,
               int64_t now, jwt_claims_t *claims, char *err, size_t errlen);

/* Frees the rooms of c and leaves it empty. A zeroed c is empty. */
void jwt_claims_clear(jwt_claims_t *c);

/*
 * Finds the role of the token's holder in room. Of the patterns that match
 * room, the most specific one decides: an exact pattern beats every
 * wildcard, and of two wildcards the one with the longer prefix wins. No
 * two patterns are equal, so the winner is unique. Its own role is used
 * when it has one, and the token's role otherwise.
 *
 * Returns 0 with *role set, or -EACCES when no pattern matches room.
 */
int jwt_room_role(const jwt_claims_t *c, const char *room, jwt_role_t *role);

/* Claims of a token to mint. */
typedef struct {
    const char *sub;
    const char *name; /* NULL to leave name out */
    jwt_role_t role;
    const char *const *rooms; /* nrooms patterns, as jwt_verify() accepts */
    size_t nrooms;
    const char *audience; /* NULL to leave aud out */
    const char *issuer;   /* NULL to leave iss out */
    int64_t ttl_s;        /* seconds from now to exp, at least 1 */
    int64_t now;          /* iat, Unix seconds */
} jwt_mint_t;

/*
 * Mints an HS256 token with the claims in, signed with secret (at least
 * JWT_SECRET_MIN bytes). The header is {"alg":"HS256","typ":"JWT"}, and the
 * payload has iat = now and exp = now + ttl_s.
 *
 * Returns 0 with *out set to a NUL-terminated token that the caller frees
 * with free(). On failure *out is NULL and a message is written into err.
 * The error is -EINVAL for a claim or secret that jwt_verify() would
 * reject, -E2BIG when the token would be longer than JWT_TOKEN_MAX, or
 * -ENOMEM.
 */
int jwt_mint_hs256(const unsigned char *secret, size_t secret_len,
                   const jwt_mint_t *in, char **out, char *err, size_t errlen);

#endif
