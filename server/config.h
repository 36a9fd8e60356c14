/*
 * Server settings: defaults, environment variables and command-line options,
 * in that order of precedence (options win).
 */
#ifndef AL_CONFIG_H
#define AL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "proto.h"

typedef struct {
    char listen_host[64];
    int listen_port;
    char redis_host[64];
    int redis_port;
    int redis_db;
    char redis_user[128];      /* ACL user for AUTH, or "" */
    char redis_password[512];  /* password for AUTH, or "" for none */
    const char *redis_password_file; /* file that contains the password */
    char instance[64];
    const char *static_dir; /* NULL when no files are served */
    log_level_t log_level;
    proto_limits_t limits;
    uint64_t stream_max;     /* entries kept in each room's event stream */
    size_t max_queue;        /* bytes queued for one slow connection */
    size_t max_body;         /* bytes of an HTTP request body */
    int redis_timeout_ms;    /* connect timeout */
    size_t max_rooms;        /* rooms one connection may join */
    int presence_ttl_s;      /* seconds a presence entry lives unrenewed */
    int claim_grace_s;       /* seconds claims outlive their connection */
    uint64_t actor_idle_s;   /* seconds before an idle actor is forgotten */
    int ping_interval_s;     /* idle seconds before the server pings */
    int ping_timeout_s;      /* seconds a ping may go unanswered */
    int no_auth;             /* development mode: no token checks */
    const char *auth_alg;    /* "HS256", "RS256" or "ES256" */
    const char *auth_secret_file; /* HS256 secret; or ANNOLIVE_AUTH_SECRET */
    const char *auth_key_file;    /* RS256/ES256 PEM public key */
    const char *auth_audience;    /* required aud, or NULL */
    const char *auth_issuer;      /* required iss, or NULL */
    int auth_skew_s;              /* clock skew allowed, seconds */
    const char *allow_origin;     /* comma-separated origins, or NULL */
    uint32_t rate_ops;            /* ops per second per connection */
    uint32_t rate_burst;          /* ops a connection may send at once */
    size_t max_conns_per_ip;      /* open WebSockets per client address */
    const char *tls_cert;         /* PEM certificate chain, or NULL */
    const char *tls_key;          /* PEM private key, or NULL */
} config_t;

/*
 * Fills cfg from defaults, the ANNOLIVE_* environment and argv.
 * Returns 0 to run, 1 when --help or --version was printed (exit 0), or
 * -EINVAL after printing one line on stderr naming the bad value (exit 2).
 */
int config_load(config_t *cfg, int argc, char **argv);

#endif
