/*
 * Command-line and environment parsing. Every option has an environment
 * variable and a default, and --help lists them all.
 */
#include "config.h"

#include "obj.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_LISTEN "127.0.0.1:7700"
#define DEFAULT_REDIS "redis://127.0.0.1:6379/0"

enum {
    OPT_LISTEN = 'l',
    OPT_REDIS = 'r',
    OPT_INSTANCE = 'i',
    OPT_STATIC = 's',
    OPT_HELP = 'h',
    OPT_VERSION = 'V',
    OPT_LOG_LEVEL = 256,
    OPT_MAX_MESSAGE,
    OPT_MAX_OPS,
    OPT_MAX_FIELDS,
    OPT_MAX_DEPTH,
    OPT_MAX_QUEUE,
    OPT_STREAM_MAX,
    OPT_MAX_BODY,
    OPT_REDIS_TIMEOUT,
    OPT_MAX_ROOMS,
    OPT_MAX_PRESENCE,
    OPT_PRESENCE_TTL,
    OPT_CLAIM_GRACE,
    OPT_ACTOR_IDLE,
    OPT_PING_INTERVAL,
    OPT_PING_TIMEOUT,
    OPT_NO_AUTH,
    OPT_AUTH_ALG,
    OPT_AUTH_SECRET_FILE,
    OPT_AUTH_KEY_FILE,
    OPT_AUTH_AUDIENCE,
    OPT_AUTH_ISSUER,
    OPT_AUTH_SKEW,
    OPT_ALLOW_ORIGIN,
    OPT_RATE_OPS,
    OPT_RATE_BURST,
    OPT_MAX_CONNS_PER_IP,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_REDIS_PASSWORD_FILE,
};

typedef struct {
    const char *name;
    int id;
    const char *env;
    const char *arg;
    const char *help;
} option_doc_t;

static const option_doc_t option_docs[] = {
    {"listen", OPT_LISTEN, "ANNOLIVE_LISTEN", "HOST:PORT",
     "address for WebSocket and HTTP (default " DEFAULT_LISTEN ")"},
    {"redis", OPT_REDIS, "ANNOLIVE_REDIS", "URL",
     "Redis as redis://[[USER]:PASSWORD@]IP:PORT[/DB], where IP may also "
     "be localhost, with % escapes in USER and PASSWORD (default "
     DEFAULT_REDIS ")"},
    {"redis-password-file", OPT_REDIS_PASSWORD_FILE,
     "ANNOLIVE_REDIS_PASSWORD_FILE", "FILE",
     "Redis password, read from FILE instead of the --redis URL"},
    {"instance", OPT_INSTANCE, "ANNOLIVE_INSTANCE", "NAME",
     "name of this instance in logs and /healthz (default HOSTNAME-PID)"},
    {"static", OPT_STATIC, "ANNOLIVE_STATIC", "DIR",
     "serve the files under DIR at / (default: none)"},
    {"log-level", OPT_LOG_LEVEL, "ANNOLIVE_LOG_LEVEL", "LEVEL",
     "error, warn, info or debug (default info)"},
    {"max-message", OPT_MAX_MESSAGE, "ANNOLIVE_MAX_MESSAGE", "BYTES",
     "largest client message accepted (default 1048576)"},
    {"max-ops", OPT_MAX_OPS, "ANNOLIVE_MAX_OPS", "N",
     "maximum ops in one batch (default 1000)"},
    {"max-fields", OPT_MAX_FIELDS, "ANNOLIVE_MAX_FIELDS", "N",
     "maximum fields in one object or op (default 256)"},
    {"max-depth", OPT_MAX_DEPTH, "ANNOLIVE_MAX_DEPTH", "N",
     "deepest nesting of a client message, 2 to 31 (default 31)"},
    {"max-rooms", OPT_MAX_ROOMS, "ANNOLIVE_MAX_ROOMS", "N",
     "maximum rooms one connection may join (default 64)"},
    {"max-presence", OPT_MAX_PRESENCE, "ANNOLIVE_MAX_PRESENCE", "BYTES",
     "maximum size of a presence state as JSON (default 4096)"},
    {"presence-ttl", OPT_PRESENCE_TTL, "ANNOLIVE_PRESENCE_TTL", "SECONDS",
     "seconds a presence entry lives without renewal; entries of a "
     "crashed instance vanish within 4/3 of it (default 15)"},
    {"claim-grace", OPT_CLAIM_GRACE, "ANNOLIVE_CLAIM_GRACE", "SECONDS",
     "seconds a closed connection's claims wait for its replica to rejoin "
     "(default 10)"},
    {"actor-idle", OPT_ACTOR_IDLE, "ANNOLIVE_ACTOR_IDLE", "SECONDS",
     "seconds after an actor's last write before a room forgets it and its "
     "stored acks (default 2592000, 30 days)"},
    {"ping-interval", OPT_PING_INTERVAL, "ANNOLIVE_PING_INTERVAL", "SECONDS",
     "seconds without traffic before a connection is pinged (default 30)"},
    {"ping-timeout", OPT_PING_TIMEOUT, "ANNOLIVE_PING_TIMEOUT", "SECONDS",
     "seconds a ping may go unanswered before the connection is closed "
     "(default 30)"},
    {"auth-alg", OPT_AUTH_ALG, "ANNOLIVE_AUTH_ALG", "ALG",
     "token signature algorithm: HS256, RS256 or ES256 (default HS256)"},
    {"auth-secret-file", OPT_AUTH_SECRET_FILE, "ANNOLIVE_AUTH_SECRET_FILE",
     "FILE", "HS256 secret, at least 32 bytes; ANNOLIVE_AUTH_SECRET may hold "
     "the secret itself"},
    {"auth-key-file", OPT_AUTH_KEY_FILE, "ANNOLIVE_AUTH_KEY_FILE", "FILE",
     "PEM public key for RS256 or ES256 tokens"},
    {"auth-audience", OPT_AUTH_AUDIENCE, "ANNOLIVE_AUTH_AUDIENCE", "AUD",
     "required token audience (default: tokens must carry none)"},
    {"auth-issuer", OPT_AUTH_ISSUER, "ANNOLIVE_AUTH_ISSUER", "ISS",
     "required token issuer (default: not checked)"},
    {"auth-skew", OPT_AUTH_SKEW, "ANNOLIVE_AUTH_SKEW", "SECONDS",
     "clock skew allowed on token times (default 60)"},
    {"no-auth", OPT_NO_AUTH, "ANNOLIVE_NO_AUTH", NULL,
     "development mode: no tokens, every client may do anything; "
     "loopback listen addresses only"},
    {"allow-origin", OPT_ALLOW_ORIGIN, "ANNOLIVE_ALLOW_ORIGIN", "LIST",
     "comma-separated origins allowed to open WebSockets from a browser "
     "(default: any)"},
    {"rate-ops", OPT_RATE_OPS, "ANNOLIVE_RATE_OPS", "N",
     "ops per second one connection may send, on average (default 1000)"},
    {"rate-burst", OPT_RATE_BURST, "ANNOLIVE_RATE_BURST", "N",
     "ops one connection may send at once (default 2000)"},
    {"max-conns-per-ip", OPT_MAX_CONNS_PER_IP, "ANNOLIVE_MAX_CONNS_PER_IP",
     "N", "open WebSocket connections per client address (default 256)"},
    {"tls-cert", OPT_TLS_CERT, "ANNOLIVE_TLS_CERT", "FILE",
     "PEM certificate chain: serve wss and https (needs --tls-key)"},
    {"tls-key", OPT_TLS_KEY, "ANNOLIVE_TLS_KEY", "FILE",
     "PEM private key of --tls-cert"},
    {"max-queue", OPT_MAX_QUEUE, "ANNOLIVE_MAX_QUEUE", "BYTES",
     "bytes queued for one connection before it is closed "
     "(default 16777216)"},
    {"max-body", OPT_MAX_BODY, "ANNOLIVE_MAX_BODY", "BYTES",
     "largest HTTP request body, such as an op batch or a COCO import; "
     "HTTP batches over --max-ops are applied in slices (default "
     "67108864)"},
    {"stream-max", OPT_STREAM_MAX, "ANNOLIVE_STREAM_MAX", "N",
     "events kept in each room's Redis stream, approximately "
     "(default 100000)"},
    {"redis-timeout", OPT_REDIS_TIMEOUT, "ANNOLIVE_REDIS_TIMEOUT", "MS",
     "Redis connect timeout in milliseconds (default 3000)"},
    {"help", OPT_HELP, NULL, NULL, "print this help and exit"},
    {"version", OPT_VERSION, NULL, NULL, "print the version and exit"},
};

#define N_OPTIONS (sizeof(option_docs) / sizeof(option_docs[0]))

static void print_help(const char *prog)
{
    printf("Usage: %s [OPTION]...\n"
           "Real-time collaboration server for annotation tools.\n\n",
           prog);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const option_doc_t *d = &option_docs[i];
        char left[64];

        snprintf(left, sizeof(left), "--%s%s%s", d->name, d->arg ? " " : "",
                 d->arg ? d->arg : "");
        if (strlen(left) > 24)
            printf("  %s\n  %-24s %s\n", left, "", d->help);
        else
            printf("  %-24s %s\n", left, d->help);
        if (d->env)
            printf("  %-24s environment: %s\n", "", d->env);
    }
    printf("\nOptions override environment variables.\n\n"
           "%s token --secret-file FILE --sub SUB [OPTION]... mints an HS256 "
           "token;\n%s token --help lists its options.\n",
           prog, prog);
}

static int parse_host_port(const char *s, char *host, size_t hostlen,
                           int *port)
{
    const char *colon = strrchr(s, ':');
    char *end;
    long p;

    if (!colon || colon == s || (size_t)(colon - s) >= hostlen)
        return -EINVAL;
    p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 0 || p > 65535)
        return -EINVAL;

    /* Accept [::1]:7700 for IPv6 addresses. */
    if (s[0] == '[' && colon[-1] == ']')
        snprintf(host, hostlen, "%.*s", (int)(colon - s - 2), s + 1);
    else
        snprintf(host, hostlen, "%.*s", (int)(colon - s), s);
    *port = (int)p;
    return 0;
}

static int is_ip(const char *s)
{
    unsigned char addr[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, s, addr) == 1 ||
           inet_pton(AF_INET6, s, addr) == 1;
}

/* Copies the n bytes at s to out, decoding %XX escapes. Returns 0, or
 * -EINVAL for a bad escape, a NUL byte or a result that does not fit. */
static int url_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (c == '%') {
            char hex[3] = {0};

            if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                return -EINVAL;
            memcpy(hex, s + i + 1, 2);
            c = (char)strtol(hex, NULL, 16);
            if (c == '\0')
                return -EINVAL;
            i += 2;
        }
        if (o + 1 >= outlen)
            return -EINVAL;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* Parses USER:PASSWORD, USER or :PASSWORD from the n bytes at s into cfg.
 * Returns 0 or -EINVAL. */
static int parse_userinfo(config_t *cfg, const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    size_t user_len = colon ? (size_t)(colon - s) : n;

    if (url_decode(s, user_len, cfg->redis_user, sizeof(cfg->redis_user)) < 0)
        return -EINVAL;
    if (!colon)
        return 0;
    return url_decode(colon + 1, n - user_len - 1, cfg->redis_password,
                      sizeof(cfg->redis_password));
}

static int parse_redis_url(config_t *cfg, const char *url)
{
    const char *rest;
    const char *at;
    const char *slash;
    char hostport[96];
    char *end;
    long db = 0;

    if (strncmp(url, "redis://", 8) != 0)
        return -EINVAL;
    rest = url + 8;

    /* A password may contain '@' and '/', so the host starts after the
     * last '@'. */
    cfg->redis_user[0] = cfg->redis_password[0] = '\0';
    at = strrchr(rest, '@');
    if (at) {
        if (parse_userinfo(cfg, rest, (size_t)(at - rest)) < 0)
            return -EINVAL;
        rest = at + 1;
    }
    slash = strchr(rest, '/');
    if (slash) {
        if (slash[1]) {
            db = strtol(slash + 1, &end, 10);
            if (*end || db < 0 || db > 15)
                return -EINVAL;
        }
        if ((size_t)(slash - rest) >= sizeof(hostport))
            return -EINVAL;
        snprintf(hostport, sizeof(hostport), "%.*s", (int)(slash - rest),
                 rest);
    } else {
        snprintf(hostport, sizeof(hostport), "%s", rest);
    }
    if (parse_host_port(hostport, cfg->redis_host, sizeof(cfg->redis_host),
                        &cfg->redis_port) < 0)
        return -EINVAL;
    if (cfg->redis_port == 0)
        return -EINVAL;

    /* hiredis resolves names with a blocking call, so only IPs are taken. */
    if (strcmp(cfg->redis_host, "localhost") == 0)
        snprintf(cfg->redis_host, sizeof(cfg->redis_host), "127.0.0.1");
    if (!is_ip(cfg->redis_host))
        return -EINVAL;
    cfg->redis_db = (int)db;
    return 0;
}

static int parse_count(const char *s, uint64_t min, uint64_t max,
                       uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!*s || *s == '-')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static const option_doc_t *find_doc(int id)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (option_docs[i].id == id)
            return &option_docs[i];
    return NULL;
}

static int set_count(config_t *cfg, int id, const char *val)
{
    uint64_t v;

    switch (id) {
    case OPT_MAX_MESSAGE:
        if (parse_count(val, 1024, 64ULL << 20, &v) < 0)
            return -EINVAL;
        cfg->limits.max_message = (size_t)v;
        return 0;
    case OPT_MAX_OPS:
        if (parse_count(val, 1, 100000, &v) < 0)
            return -EINVAL;
        cfg->limits.max_ops = (size_t)v;
        return 0;
    case OPT_MAX_FIELDS:
        if (parse_count(val, 1, OBJ_FIELDS_MAX, &v) < 0)
            return -EINVAL;
        cfg->limits.max_fields = (size_t)v;
        return 0;
    case OPT_MAX_DEPTH:
        if (parse_count(val, 2, 31, &v) < 0)
            return -EINVAL;
        cfg->limits.max_depth = (size_t)v;
        return 0;
    case OPT_MAX_QUEUE:
        if (parse_count(val, 65536, 1ULL << 32, &v) < 0)
            return -EINVAL;
        cfg->max_queue = (size_t)v;
        return 0;
    case OPT_MAX_BODY:
        if (parse_count(val, 1024, 1ULL << 30, &v) < 0)
            return -EINVAL;
        cfg->max_body = (size_t)v;
        return 0;
    case OPT_STREAM_MAX:
        if (parse_count(val, 100, 1ULL << 40, &v) < 0)
            return -EINVAL;
        cfg->stream_max = v;
        return 0;
    case OPT_REDIS_TIMEOUT:
        if (parse_count(val, 100, 600000, &v) < 0)
            return -EINVAL;
        cfg->redis_timeout_ms = (int)v;
        return 0;
    case OPT_RATE_OPS:
    case OPT_RATE_BURST:
        if (parse_count(val, 1, 1000000, &v) < 0)
            return -EINVAL;
        if (id == OPT_RATE_OPS)
            cfg->rate_ops = (uint32_t)v;
        else
            cfg->rate_burst = (uint32_t)v;
        return 0;
    case OPT_MAX_CONNS_PER_IP:
        if (parse_count(val, 1, 1000000, &v) < 0)
            return -EINVAL;
        cfg->max_conns_per_ip = (size_t)v;
        return 0;
    case OPT_AUTH_SKEW:
        if (parse_count(val, 0, 3600, &v) < 0)
            return -EINVAL;
        cfg->auth_skew_s = (int)v;
        return 0;
    case OPT_MAX_ROOMS:
        if (parse_count(val, 1, 10000, &v) < 0)
            return -EINVAL;
        cfg->max_rooms = (size_t)v;
        return 0;
    case OPT_MAX_PRESENCE:
        if (parse_count(val, 64, 65536, &v) < 0)
            return -EINVAL;
        cfg->limits.max_presence = (size_t)v;
        return 0;
    case OPT_PRESENCE_TTL:
        if (parse_count(val, 3, 3600, &v) < 0)
            return -EINVAL;
        cfg->presence_ttl_s = (int)v;
        return 0;
    case OPT_CLAIM_GRACE:
        if (parse_count(val, 0, 3600, &v) < 0)
            return -EINVAL;
        cfg->claim_grace_s = (int)v;
        return 0;
    case OPT_ACTOR_IDLE:
        if (parse_count(val, 1, 1ULL << 31, &v) < 0)
            return -EINVAL;
        cfg->actor_idle_s = v;
        return 0;
    case OPT_PING_INTERVAL:
    case OPT_PING_TIMEOUT:
        if (parse_count(val, 1, 3600, &v) < 0)
            return -EINVAL;
        if (id == OPT_PING_INTERVAL)
            cfg->ping_interval_s = (int)v;
        else
            cfg->ping_timeout_s = (int)v;
        return 0;
    }
    return -EINVAL;
}

static const char *range_hint(int id)
{
    switch (id) {
    case OPT_MAX_MESSAGE: return "an integer from 1024 to 67108864";
    case OPT_MAX_OPS: return "an integer from 1 to 100000";
    case OPT_MAX_FIELDS: return "an integer from 1 to 256";
    case OPT_MAX_DEPTH: return "an integer from 2 to 31";
    case OPT_MAX_QUEUE: return "an integer from 65536 to 4294967296";
    case OPT_STREAM_MAX: return "an integer from 100 to 1099511627776";
    case OPT_MAX_BODY: return "an integer from 1024 to 1073741824";
    case OPT_REDIS_TIMEOUT: return "an integer from 100 to 600000";
    case OPT_MAX_ROOMS: return "an integer from 1 to 10000";
    case OPT_MAX_PRESENCE: return "an integer from 64 to 65536";
    case OPT_PRESENCE_TTL: return "an integer from 3 to 3600";
    case OPT_CLAIM_GRACE: return "an integer from 0 to 3600";
    case OPT_ACTOR_IDLE: return "an integer from 1 to 2147483648";
    case OPT_AUTH_SKEW: return "an integer from 0 to 3600";
    case OPT_RATE_OPS:
    case OPT_RATE_BURST:
    case OPT_MAX_CONNS_PER_IP: return "an integer from 1 to 1000000";
    case OPT_AUTH_ALG: return "HS256, RS256 or ES256";
    case OPT_NO_AUTH: return "1 or true";
    case OPT_PING_INTERVAL:
    case OPT_PING_TIMEOUT: return "an integer from 1 to 3600";
    case OPT_LISTEN: return "HOST:PORT, such as 127.0.0.1:7700";
    case OPT_REDIS: return "redis://[[USER]:PASSWORD@]IP:PORT[/DB], such as "
                           "redis://:secret@127.0.0.1:6379/0";
    case OPT_LOG_LEVEL: return "error, warn, info or debug";
    case OPT_INSTANCE: return "1 to 63 characters from [A-Za-z0-9._-]";
    }
    return "a valid value";
}

static int valid_instance(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63)
        return 0;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    "0123456789._-", *s))
            return 0;
    return 1;
}

/* Applies one setting. Returns 0 or -EINVAL. */
static int set_option(config_t *cfg, int id, const char *val)
{
    switch (id) {
    case OPT_LISTEN:
        return parse_host_port(val, cfg->listen_host,
                               sizeof(cfg->listen_host), &cfg->listen_port);
    case OPT_REDIS:
        return parse_redis_url(cfg, val);
    case OPT_INSTANCE:
        if (!valid_instance(val))
            return -EINVAL;
        snprintf(cfg->instance, sizeof(cfg->instance), "%s", val);
        return 0;
    case OPT_STATIC:
        cfg->static_dir = val;
        return 0;
    case OPT_LOG_LEVEL:
        return log_parse_level(val, &cfg->log_level);
    case OPT_NO_AUTH:
        if (strcmp(val, "1") != 0 && strcmp(val, "true") != 0)
            return -EINVAL;
        cfg->no_auth = 1;
        return 0;
    case OPT_AUTH_ALG:
        if (strcmp(val, "HS256") && strcmp(val, "RS256") &&
            strcmp(val, "ES256"))
            return -EINVAL;
        cfg->auth_alg = val;
        return 0;
    case OPT_AUTH_SECRET_FILE:
        cfg->auth_secret_file = val;
        return 0;
    case OPT_AUTH_KEY_FILE:
        cfg->auth_key_file = val;
        return 0;
    case OPT_AUTH_AUDIENCE:
        cfg->auth_audience = val;
        return 0;
    case OPT_AUTH_ISSUER:
        cfg->auth_issuer = val;
        return 0;
    case OPT_ALLOW_ORIGIN:
        cfg->allow_origin = val;
        return 0;
    case OPT_TLS_CERT:
        cfg->tls_cert = val;
        return 0;
    case OPT_TLS_KEY:
        cfg->tls_key = val;
        return 0;
    case OPT_REDIS_PASSWORD_FILE:
        cfg->redis_password_file = val;
        return 0;
    }
    return set_count(cfg, id, val);
}

static void set_defaults(config_t *cfg)
{
    char host[32] = "annolive";

    memset(cfg, 0, sizeof(*cfg));
    parse_host_port(DEFAULT_LISTEN, cfg->listen_host,
                    sizeof(cfg->listen_host), &cfg->listen_port);
    parse_redis_url(cfg, DEFAULT_REDIS);
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    snprintf(cfg->instance, sizeof(cfg->instance), "%s-%ld", host,
             (long)getpid());
    cfg->log_level = LOG_INFO;
    proto_limits_default(&cfg->limits);
    cfg->stream_max = 100000;
    cfg->max_queue = 16u << 20;
    cfg->max_body = 64u << 20;
    cfg->redis_timeout_ms = 3000;
    cfg->max_rooms = 64;
    cfg->presence_ttl_s = 15;
    cfg->claim_grace_s = 10;
    cfg->actor_idle_s = 30 * 24 * 3600;
    cfg->ping_interval_s = 30;
    cfg->ping_timeout_s = 30;
    cfg->auth_alg = "HS256";
    cfg->rate_ops = 1000;
    cfg->rate_burst = 2000;
    cfg->max_conns_per_ip = 256;
    cfg->auth_skew_s = 60;
}

static int reject(const char *source, const char *val, int id)
{
    const char *at = id == OPT_REDIS ? strrchr(val, '@') : NULL;

    /* A Redis URL may contain a password, so the message leaves it out. */
    if (at)
        fprintf(stderr, "annolive: invalid %s 'redis://...%s': expected %s\n",
                source, at, range_hint(id));
    else
        fprintf(stderr, "annolive: invalid %s '%s': expected %s\n", source,
                val, range_hint(id));
    return -EINVAL;
}

static int load_env(config_t *cfg)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const option_doc_t *d = &option_docs[i];
        const char *val = d->env ? getenv(d->env) : NULL;

        if (!val || !*val)
            continue;
        if (set_option(cfg, d->id, val) < 0)
            return reject(d->env, val, d->id);
    }
    return 0;
}

static int load_argv(config_t *cfg, int argc, char **argv)
{
    struct option longopts[N_OPTIONS + 1];
    char source[48];
    int c;

    memset(longopts, 0, sizeof(longopts));
    for (size_t i = 0; i < N_OPTIONS; i++) {
        longopts[i].name = option_docs[i].name;
        longopts[i].has_arg = option_docs[i].arg ? required_argument
                                                 : no_argument;
        longopts[i].val = option_docs[i].id;
    }

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":l:r:i:s:hV", longopts, NULL)) !=
           -1) {
        if (c == OPT_HELP) {
            print_help(argv[0]);
            return 1;
        }
        if (c == OPT_VERSION) {
            printf("annolive %s\n", ANNOLIVE_VERSION);
            return 1;
        }
        if (c == '?' || c == ':') {
            fprintf(stderr,
                    "annolive: %s option '%s'; run '%s --help' for the list\n",
                    c == '?' ? "unknown" : "missing value for",
                    argv[optind - 1], argv[0]);
            return -EINVAL;
        }
        snprintf(source, sizeof(source), "--%s", find_doc(c)->name);
        if (set_option(cfg, c, optarg ? optarg : "1") < 0)
            return reject(source, optarg ? optarg : "", c);
    }
    if (optind < argc) {
        fprintf(stderr, "annolive: unexpected argument '%s'; run '%s --help'\n",
                argv[optind], argv[0]);
        return -EINVAL;
    }
    return 0;
}

static int is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0;
}

/* Checks the settings that only make sense together. */
static int check_auth(const config_t *cfg)
{
    int has_key = cfg->auth_secret_file || cfg->auth_key_file ||
                  (getenv("ANNOLIVE_AUTH_SECRET") &&
                   *getenv("ANNOLIVE_AUTH_SECRET"));

    if (!cfg->tls_cert != !cfg->tls_key) {
        fprintf(stderr, "annolive: TLS needs both --tls-cert and --tls-key\n");
        return -EINVAL;
    }
    if (cfg->no_auth && !is_loopback(cfg->listen_host)) {
        fprintf(stderr, "annolive: --no-auth is for local development and "
                "needs a loopback --listen address, got %s\n",
                cfg->listen_host);
        return -EINVAL;
    }
    if (!cfg->no_auth && !has_key) {
        fprintf(stderr, "annolive: no way to check tokens: give "
                "--auth-secret-file (or ANNOLIVE_AUTH_SECRET) for HS256, or "
                "--auth-key-file for RS256 and ES256; --no-auth runs without "
                "tokens on loopback for development\n");
        return -EINVAL;
    }
    return 0;
}

/* Reads --redis-password-file into cfg->redis_password, dropping trailing
 * newlines. Returns 0, or -EINVAL after printing why. */
static int read_redis_password(config_t *cfg)
{
    const char *path = cfg->redis_password_file;
    FILE *f;
    size_t n;

    if (cfg->redis_password[0]) {
        fprintf(stderr, "annolive: the Redis password is given twice: in "
                "the --redis URL and in --redis-password-file %s\n", path);
        return -EINVAL;
    }
    f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "annolive: cannot read --redis-password-file %s: "
                "%s\n", path, strerror(errno));
        return -EINVAL;
    }
    n = fread(cfg->redis_password, 1, sizeof(cfg->redis_password), f);
    fclose(f);
    while (n > 0 && n < sizeof(cfg->redis_password) &&
           (cfg->redis_password[n - 1] == '\n' ||
            cfg->redis_password[n - 1] == '\r'))
        n--;
    if (n == 0 || n == sizeof(cfg->redis_password) ||
        memchr(cfg->redis_password, '\0', n)) {
        memset(cfg->redis_password, 0, sizeof(cfg->redis_password));
        fprintf(stderr, "annolive: --redis-password-file %s must contain "
                "one password of 1 to %zu bytes\n", path,
                sizeof(cfg->redis_password) - 1);
        return -EINVAL;
    }
    cfg->redis_password[n] = '\0';
    return 0;
}

/* Checks the Redis credentials and reads the password file. */
static int check_redis(config_t *cfg)
{
    if (cfg->redis_password_file && read_redis_password(cfg) < 0)
        return -EINVAL;
    if (cfg->redis_user[0] && !cfg->redis_password[0]) {
        fprintf(stderr, "annolive: the Redis user %s has no password: give "
                "it in the --redis URL or in --redis-password-file\n",
                cfg->redis_user);
        return -EINVAL;
    }
    return 0;
}

int config_load(config_t *cfg, int argc, char **argv)
{
    int r;

    set_defaults(cfg);
    r = load_env(cfg);
    if (r < 0)
        return r;
    r = load_argv(cfg, argc, argv);
    if (r != 0)
        return r;
    r = check_redis(cfg);
    if (r < 0)
        return r;
    return check_auth(cfg);
}
