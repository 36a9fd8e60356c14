/*
 * Token checks for the server: the configured verifier, where a request
 * carries its token, and the claims of the unauthenticated development
 * mode.
 */
#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "log.h"


static jwt_verifier_t *verifier;
static int no_auth;

int64_t auth_now(void)
{
    return (int64_t)time(NULL);
}

/* Reads a secret file, dropping trailing newlines. Returns the length or
 * a negative code. */
static int read_secret(const char *path, unsigned char *buf, size_t cap,
                       char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    size_t n;
    int code;

    if (!f) {
        code = errno;
        snprintf(err, errlen, "cannot read secret file %s: %s", path,
                 strerror(code));
        return -code;
    }
    n = fread(buf, 1, cap, f);
    fclose(f);
    if (n == cap) {
        snprintf(err, errlen, "secret file %s is over %zu bytes", path,
                 cap - 1);
        return -EINVAL;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    return (int)n;
}

int auth_load_secret(const char *path, unsigned char *buf, size_t cap,
                     size_t *len, char *err, size_t errlen)
{
    const char *env = getenv("ANNOLIVE_AUTH_SECRET");
    int n;

    *len = 0;
    if (path) {
        n = read_secret(path, buf, cap, err, errlen);
        if (n < 0)
            return n;
        *len = (size_t)n;
        return 0;
    }
    if (env && *env) {
        if (strlen(env) >= cap) {
            snprintf(err, errlen, "ANNOLIVE_AUTH_SECRET is over %zu bytes",
                     cap - 1);
            return -EINVAL;
        }
        *len = strlen(env);
        memcpy(buf, env, *len);
    }
    return 0;
}

int auth_init(const config_t *cfg, char *err, size_t errlen)
{
    unsigned char secret[AUTH_SECRET_MAX];
    jwt_config_t jc;
    size_t len = 0;
    int rc;

    if (cfg->no_auth) {
        no_auth = 1;
        log_warn("auth", "--no-auth: every client may read and write every "
                 "room; use it for local development only");
        return 0;
    }
    rc = auth_load_secret(cfg->auth_secret_file, secret, sizeof(secret),
                          &len, err, errlen);
    if (rc < 0)
        return rc;
    jwt_config_init(&jc);
    jc.alg = cfg->auth_alg;
    jc.secret = len ? secret : NULL;
    jc.secret_len = len;
    jc.key_file = cfg->auth_key_file;
    jc.audience = cfg->auth_audience;
    jc.issuer = cfg->auth_issuer;
    jc.skew_s = cfg->auth_skew_s;
    rc = jwt_verifier_new(&verifier, &jc, err, errlen);
    OPENSSL_cleanse(secret, sizeof(secret));
    if (rc == 0)
        log_info("auth", "tokens are checked with %s", cfg->auth_alg);
    return rc;
}

void auth_free(void)
{
    jwt_verifier_free(verifier);
    verifier = NULL;
}

int auth_enabled(void)
{
    return !no_auth;
}

static int anonymous(jwt_claims_t *claims)
{
    memset(claims, 0, sizeof(*claims));
    snprintf(claims->sub, sizeof(claims->sub), "anonymous");
    claims->role = JWT_ROLE_ADMIN;
    claims->rooms = calloc(1, sizeof(*claims->rooms));
    if (!claims->rooms)
        return -ENOMEM;
    snprintf(claims->rooms[0].pattern, sizeof(claims->rooms[0].pattern),
             "*");
    claims->nrooms = 1;
    claims->exp = INT64_MAX;
    return 0;
}

int auth_token(const char *token, size_t len, jwt_claims_t *claims,
               char *err, size_t errlen)
{
    if (no_auth)
        return anonymous(claims);
    return jwt_verify(verifier, token, len, auth_now(), claims, err, errlen);
}

/* Copies the token of the request into buf. Returns its length or -ENOENT. */
static int find_token(struct lws *wsi, char *buf, size_t cap)
{
    static const char bearer[] = "Bearer ";
    int n = lws_hdr_copy(wsi, buf, (int)cap, WSI_TOKEN_HTTP_AUTHORIZATION);

    if (n > (int)sizeof(bearer) - 1 &&
        strncasecmp(buf, bearer, sizeof(bearer) - 1) == 0) {
        memmove(buf, buf + sizeof(bearer) - 1,
                (size_t)n - (sizeof(bearer) - 1) + 1);
        return n - (int)(sizeof(bearer) - 1);
    }
    {
        char arg[JWT_TOKEN_MAX + 16];
        const char *v = lws_get_urlarg_by_name(wsi, "token=", arg,
                                               (int)sizeof(arg));
        size_t len = v ? strlen(v) : 0;

        if (!v || len == 0 || len >= cap)
            return -ENOENT;
        memcpy(buf, v, len + 1);
        return (int)len;
    }
}

int auth_request(struct lws *wsi, jwt_claims_t *claims, char *err,
                 size_t errlen)
{
    char token[JWT_TOKEN_MAX + 16];
    int n;

    if (no_auth)
        return anonymous(claims);
    n = find_token(wsi, token, sizeof(token));
    if (n < 0) {
        snprintf(err, errlen, "a token is required: send \"Authorization: "
                 "Bearer TOKEN\" or the query argument token=TOKEN");
        return -ENOENT;
    }
    return auth_token(token, (size_t)n, claims, err, errlen);
}
