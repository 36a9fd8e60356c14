/*
 * libwebsockets set-up. lws runs on the server's own libuv loop (a foreign
 * loop), installs no signal handlers, and sends its log lines through the
 * server's logger. The vhost is created explicitly so that a port in use
 * is reported as an error instead of a half-built context.
 */
#include "net.h"

#include <errno.h>
#include <libwebsockets.h>
#include <string.h>

#include "auth.h"
#include "http.h"
#include "log.h"
#include "sess.h"

/* Per-connection memory: an HTTP request or, after the upgrade, a session. */
typedef union {
    http_t http;
    sess_t sess;
} conn_t;

static struct lws_context *context;
static struct lws_vhost *vhost;
static const config_t *cfg;

/* Returns 1 when the offered subprotocols (a comma-separated list) name one
 * of ours or offer nothing. */
static int offers_known(struct lws *wsi)
{
    char offered[256];
    char *save = NULL;
    int n = lws_hdr_copy(wsi, offered, sizeof(offered), WSI_TOKEN_PROTOCOL);

    if (n <= 0)
        return 1;
    for (char *tok = strtok_r(offered, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save))
        if (strcmp(tok, SESS_SUBPROTOCOL_JSON) == 0 ||
            strcmp(tok, SESS_SUBPROTOCOL_MSGPACK) == 0)
            return 1;
    return 0;
}

/* Rejects an upgrade without a valid token with 401, before the WebSocket
 * opens. The reason goes to the log; the client gets a fixed message. */
static int check_token(struct lws *wsi)
{
    char why[256];
    jwt_claims_t claims;
    int rc = auth_request(wsi, &claims, why, sizeof(why));

    if (rc == 0) {
        jwt_claims_clear(&claims);
        return 0;
    }
    log_info("net", "upgrade rejected: %s", why);
    return http_reject_upgrade(wsi, 401, "unauthorized",
                               rc == -ENOENT
                                   ? "a token is required"
                                   : "the token was rejected");
}

/* Returns 1 when origin is one of the comma-separated list. */
static int origin_listed(const char *origin, const char *list)
{
    size_t len = strlen(origin);

    while (*list) {
        const char *comma = strchr(list, ',');
        size_t n = comma ? (size_t)(comma - list) : strlen(list);

        if (n == len && strncmp(list, origin, len) == 0)
            return 1;
        list += n + (comma ? 1 : 0);
    }
    return 0;
}

/* Rejects a browser upgrade from a site not in --allow-origin, which
 * stops other sites from opening WebSockets with the user's cookies or
 * tokens (cross-site WebSocket hijacking). Requests without Origin come
 * from programs and pass. */
static int check_origin(struct lws *wsi)
{
    char origin[256];
    int len = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);

    if (!cfg->allow_origin || len <= 0)
        return 0;

    /* An Origin too long for the buffer cannot be listed: reject it. */
    if (len < (int)sizeof(origin) &&
        lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) > 0 &&
        origin_listed(origin, cfg->allow_origin))
        return 0;
    if (len >= (int)sizeof(origin))
        snprintf(origin, sizeof(origin), "(%d bytes)", len);
    log_info("net", "upgrade rejected: origin %.64s is not allowed", origin);
    return http_reject_upgrade(wsi, 403, "forbidden",
                               "this origin may not open WebSockets here");
}

static int check_peer_cap(struct lws *wsi)
{
    char peer[64] = "";

    lws_get_peer_simple(wsi, peer, sizeof(peer));
    if (sess_count_from(peer) < cfg->max_conns_per_ip)
        return 0;
    log_info("net", "upgrade rejected: %s has %zu connections, the limit",
             peer, cfg->max_conns_per_ip);
    return http_reject_upgrade(wsi, 429, "too_many_connections",
                               "too many connections from this address");
}

static int confirm_upgrade(struct lws *wsi)
{
    char uri[256];
    int n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);

    if (http_stopping())
        return http_reject_upgrade(wsi, 503, "unavailable",
                                   "the server is stopping; connect to "
                                   "another instance");
    if (check_origin(wsi) || check_peer_cap(wsi))
        return 1;
    if (n <= 0 || strcmp(uri, "/v1/ws") != 0)
        return http_reject_upgrade(wsi, 404, "not_found",
                                   "the WebSocket endpoint is /v1/ws");
    if (!offers_known(wsi))
        return http_reject_upgrade(wsi, 400, "invalid_message",
                                   "unsupported subprotocol: offer "
                                   SESS_SUBPROTOCOL_JSON " or "
                                   SESS_SUBPROTOCOL_MSGPACK);
    return check_token(wsi);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
    conn_t *conn = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(wsi);
    case LWS_CALLBACK_HTTP:
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_HTTP_FILE_COMPLETION:
    case LWS_CALLBACK_CLOSED_HTTP:
        return conn ? http_callback(wsi, reason, &conn->http, in, len) : 0;
    case LWS_CALLBACK_ESTABLISHED:
    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_TIMER:
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    case LWS_CALLBACK_CLOSED:
        return sess_callback(wsi, reason, &conn->sess, in, len);
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* Bytes libwebsockets reads for a connection at a time. It allocates them
 * for every connection, so they stay small: a longer message arrives in
 * pieces that the session puts together. */
#define RX_BUFFER_SIZE 4096
/* The maximum bytes of one send(). A larger message goes out in several. */
#define TX_PACKET_SIZE (256 * 1024)

/* The first protocol also serves HTTP and clients that offer no
 * subprotocol. */
static const struct lws_protocols protocols[] = {
    {
        .name = SESS_SUBPROTOCOL_JSON,
        .callback = callback,
        .per_session_data_size = sizeof(conn_t),
        .rx_buffer_size = RX_BUFFER_SIZE,
        .tx_packet_size = TX_PACKET_SIZE,
    },
    {
        .name = SESS_SUBPROTOCOL_MSGPACK,
        .callback = callback,
        .per_session_data_size = sizeof(conn_t),
        .rx_buffer_size = RX_BUFFER_SIZE,
        .tx_packet_size = TX_PACKET_SIZE,
    },
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static lws_retry_bo_t retry;

int net_start(uv_loop_t *loop, const config_t *config)
{
    struct lws_context_creation_info info;
    void *foreign_loops[1] = {loop};

    cfg = config;
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_LIBUV |
                   LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                   LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (cfg->tls_cert)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.foreign_loops = foreign_loops;
    info.port = CONTEXT_PORT_NO_LISTEN;
    context = lws_create_context(&info);
    if (!context) {
        log_error("net", "cannot create the libwebsockets context");
        return -ENOMEM;
    }

    /* lws pings a connection idle for the interval and hangs up when
     * nothing valid arrived for interval + timeout. */
    retry.secs_since_valid_ping = (uint16_t)cfg->ping_interval_s;
    retry.secs_since_valid_hangup =
        (uint16_t)(cfg->ping_interval_s + cfg->ping_timeout_s);

    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;

    /* lws 4.1.6 binds every address when it is given an IPv4 interface
     * address with IPv6 enabled, so IPv4 listen addresses disable IPv6. */
    if (strchr(cfg->listen_host, ':') == NULL)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.port = cfg->listen_port;
    info.iface = cfg->listen_host;
    if (cfg->tls_cert) {
        /* lws 4.1 sets up TLS on a vhost only with this option on it too. */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->tls_cert;
        info.ssl_private_key_filepath = cfg->tls_key;
        /* Browsers would try WebSocket over HTTP/2 otherwise. */
        info.alpn = "http/1.1";
    }
    info.protocols = protocols;
    info.retry_and_idle_policy = &retry;
    info.vhost_name = "annolive";
    /* A busy port makes lws log two error lines of its own. The line below
     * reports the failure, so lws stays quiet while the vhost is created. */
    lws_set_log_level(0, NULL);
    vhost = lws_create_vhost(context, &info);
    log_route_lws(cfg->log_level);
    if (!vhost) {
        log_error("net", "cannot listen on %s:%d: the address is in use or "
                  "not local to this machine%s",
                  cfg->listen_host, cfg->listen_port,
                  cfg->tls_cert ? ", or the TLS certificate or key is "
                                  "unreadable" : "");
        return -EADDRINUSE;
    }
    log_info("net", "listening on %s:%d with %s (WebSocket at /v1/ws, "
             "subprotocols " SESS_SUBPROTOCOL_JSON " and "
             SESS_SUBPROTOCOL_MSGPACK ")",
             cfg->listen_host, cfg->listen_port,
             cfg->tls_cert ? "TLS" : "no TLS");
    return 0;
}

void net_destroy(void)
{
    static int calls;

    if (!context)
        return;
    lws_context_destroy(context);
    if (++calls == 2)
        context = NULL;
}
