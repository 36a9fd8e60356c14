/*
 * HTTP endpoints. Responses are JSON built in one buffer and written in one
 * HTTP_WRITEABLE callback; snapshots are read from Redis asynchronously and
 * survive the client going away first.
 */
#include "http.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth.h"
#include "log.h"
#include "obj.h"
#include "pack.h"
#include "proto.h"
#include "room.h"
#include "sess.h"

/* A Redis read for a request; outlives the request when it closes first. */
typedef struct http_pending {
    struct lws *wsi;
    http_t *h;
    int cancelled;
    char room[PROTO_ROOM_MAX + 1];
} http_pending_t;

static const config_t *cfg;
static store_t *store;
static int stopping;

void http_configure(const config_t *config, store_t *st)
{
    cfg = config;
    store = st;
}

void http_set_stopping(void)
{
    stopping = 1;
}

int http_stopping(void)
{
    return stopping;
}

static int respond(struct lws *wsi, http_t *h, int status, json_t *body);

/* Writes the Prometheus text exposition of the instance's counters. */
static int get_metrics(struct lws *wsi, http_t *h)
{
    char text[1024];
    int n;

    n = snprintf(text, sizeof(text),
                 "# HELP annolive_connections Open WebSocket connections.\n"
                 "# TYPE annolive_connections gauge\n"
                 "annolive_connections %zu\n"
                 "# HELP annolive_rooms Rooms cached on this instance.\n"
                 "# TYPE annolive_rooms gauge\n"
                 "annolive_rooms %zu\n"
                 "# HELP annolive_redis_up 1 while Redis is reachable.\n"
                 "# TYPE annolive_redis_up gauge\n"
                 "annolive_redis_up %d\n"
                 "# HELP annolive_encodes_total Messages encoded for "
                 "sending, by wire encoding.\n"
                 "# TYPE annolive_encodes_total counter\n"
                 "annolive_encodes_total{encoding=\"json\"} %llu\n"
                 "annolive_encodes_total{encoding=\"msgpack\"} %llu\n",
                 sess_count(), room_count(), store_is_up(store),
                 buf_encodes[ENC_JSON], buf_encodes[ENC_MSGPACK]);
    if (n < 0 || (size_t)n >= sizeof(text))
        return -1;
    h->status = 200;
    h->content_type = "text/plain; version=0.0.4";
    h->body = buf_new((size_t)n);
    if (!h->body)
        return -1;
    memcpy(h->body->data, text, (size_t)n);
    lws_callback_on_writable(wsi);
    return 0;
}

static int get_readyz(struct lws *wsi, http_t *h)
{
    const char *status = "ready";
    int code = 200;

    if (stopping) {
        status = "stopping";
        code = 503;
    } else if (!store_is_up(store)) {
        status = "unavailable";
        code = 503;
    }
    return respond(wsi, h, code,
                   json_pack("{s:s, s:s, s:b}", "status", status, "instance",
                             cfg->instance, "redis", store_is_up(store)));
}

/* Queues a response; takes the reference to body. */
static int respond(struct lws *wsi, http_t *h, int status, json_t *body)
{
    h->status = status;
    h->content_type = "application/json";
    h->body = buf_take_json(body);
    if (!h->body)
        return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int respond_error(struct lws *wsi, http_t *h, int status,
                         const char *code, const char *message)
{
    return respond(wsi, h, status,
                   json_pack("{s:{s:s, s:s}}", "error", "code", code,
                             "message", message));
}

static int write_response(struct lws *wsi, http_t *h)
{
    unsigned char hdr[LWS_PRE + 512];
    unsigned char *start = hdr + LWS_PRE, *p = start;
    unsigned char *end = hdr + sizeof(hdr) - 1;

    if (!h->body)
        return 0;
    if (lws_add_http_common_headers(wsi, (unsigned)h->status,
                                    h->content_type, h->body->len, &p,
                                    end) ||
        lws_add_http_header_by_name(wsi,
                                    (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8,
                                    &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    if (lws_write(wsi, h->body->data, h->body->len, LWS_WRITE_HTTP_FINAL) <
        (int)h->body->len)
        return -1;
    buf_unref(h->body);
    h->body = NULL;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static json_t *snapshot_body(const char *room, const store_room_t *sr)
{
    json_t *objects = json_array();
    char err[PROTO_ERR_MAX];

    for (size_t i = 0; objects && i < sr->n; i++) {
        obj_t *o = NULL;

        if (unpack_obj(sr->blobs[i], sr->blob_lens[i], sr->ids[i],
                       sr->revs[i], &o, err, sizeof(err)) < 0) {
            log_error("http", "room %s: skipping unreadable object %s: %s",
                      room, sr->ids[i], err);
            continue;
        }
        if (!o->deleted)
            json_array_append_new(objects, obj_to_wire(o));
        obj_free(o);
    }
    return json_pack("{s:s, s:I, s:o}", "room", room, "seq",
                     (json_int_t)sr->seq, "objects", objects);
}

static void on_snapshot(int status, const store_room_t *sr, void *arg)
{
    http_pending_t *pend = arg;
    http_t *h = pend->h;

    if (pend->cancelled) {
        free(pend);
        return;
    }
    h->pending = NULL;
    if (status < 0)
        respond_error(pend->wsi, h, 503, "unavailable",
                      "Redis is unreachable; retry later");
    else
        respond(pend->wsi, h, 200, snapshot_body(pend->room, sr));
    free(pend);
}

/* Checks that the request's token grants a role in room. Returns 0 when
 * it does, 1 after queueing a 401 or 403 response, or -1. */
static int authorize(struct lws *wsi, http_t *h, const char *room,
                     size_t len)
{
    char name[PROTO_ROOM_MAX + 1];
    char why[256];
    jwt_claims_t claims;
    jwt_role_t role;
    int rc;

    memcpy(name, room, len);
    name[len] = '\0';
    rc = auth_request(wsi, &claims, why, sizeof(why));
    if (rc < 0) {
        log_info("http", "request rejected: %s", why);
        return respond_error(wsi, h, 401, "unauthorized",
                             rc == -ENOENT ? "a token is required"
                                           : "the token was rejected") < 0
                   ? -1
                   : 1;
    }
    rc = jwt_room_role(&claims, name, &role);
    jwt_claims_clear(&claims);
    if (rc < 0)
        return respond_error(wsi, h, 403, "forbidden",
                             "the token grants no role in this room") < 0
                   ? -1
                   : 1;
    return 0;
}

static int get_snapshot(struct lws *wsi, http_t *h, const char *room,
                        size_t len)
{
    http_pending_t *pend;
    int rc;

    if (!proto_room_valid(room, len))
        return respond_error(wsi, h, 400, "invalid_message",
                             "invalid room name: expected 1 to 128 "
                             "characters from [A-Za-z0-9._:-]");
    rc = authorize(wsi, h, room, len);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    pend = calloc(1, sizeof(*pend));
    if (!pend)
        return -1;
    pend->wsi = wsi;
    pend->h = h;
    memcpy(pend->room, room, len);
    if (store_load(store, pend->room, on_snapshot, pend) < 0) {
        free(pend);
        return respond_error(wsi, h, 503, "unavailable",
                             "Redis is unreachable; retry later");
    }
    h->pending = pend;
    return 0;
}

static const char *mime_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html"},        {".js", "text/javascript"},
        {".mjs", "text/javascript"},   {".css", "text/css"},
        {".json", "application/json"}, {".png", "image/png"},
        {".jpg", "image/jpeg"},        {".jpeg", "image/jpeg"},
        {".svg", "image/svg+xml"},     {".ico", "image/x-icon"},
    };
    const char *dot = strrchr(path, '.');

    for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static int serve_static(struct lws *wsi, http_t *h, const char *path)
{
    char file[1024];
    struct stat st;
    int n;

    if (strstr(path, "..") || path[0] != '/')
        return respond_error(wsi, h, 404, "not_found", "no such file");
    n = snprintf(file, sizeof(file), "%s%s", cfg->static_dir,
                 strcmp(path, "/") == 0 ? "/index.html" : path);
    if (n < 0 || (size_t)n >= sizeof(file) || stat(file, &st) < 0 ||
        !S_ISREG(st.st_mode))
        return respond_error(wsi, h, 404, "not_found", "no such file");
    n = lws_serve_http_file(wsi, file, mime_type(file), NULL, 0);
    if (n < 0)
        return -1;
    if (n > 0 && lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}

static int route(struct lws *wsi, http_t *h, const char *path)
{
    static const char prefix[] = "/v1/rooms/";
    static const char suffix[] = "/snapshot";
    size_t len = strlen(path);

    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
        return respond_error(wsi, h, 405, "method_not_allowed",
                             "only GET is served on this path");
    if (strcmp(path, "/healthz") == 0)
        return respond(wsi, h, 200,
                       json_pack("{s:s, s:s, s:b}", "status", "ok",
                                 "instance", cfg->instance, "redis",
                                 store_is_up(store)));
    if (strcmp(path, "/readyz") == 0)
        return get_readyz(wsi, h);
    if (strcmp(path, "/metrics") == 0)
        return get_metrics(wsi, h);
    if (strncmp(path, prefix, sizeof(prefix) - 1) == 0 &&
        len > sizeof(prefix) - 1 + sizeof(suffix) - 1 &&
        strcmp(path + len - (sizeof(suffix) - 1), suffix) == 0)
        return get_snapshot(wsi, h, path + sizeof(prefix) - 1,
                            len - (sizeof(prefix) - 1) - (sizeof(suffix) - 1));
    if (cfg->static_dir)
        return serve_static(wsi, h, path);
    return respond_error(wsi, h, 404, "not_found", "no such endpoint");
}

int http_callback(struct lws *wsi, enum lws_callback_reasons reason,
                  http_t *h, void *in, size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        memset(h, 0, sizeof(*h));
        return route(wsi, h, in);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return write_response(wsi, h);
    case LWS_CALLBACK_HTTP_FILE_COMPLETION:
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    case LWS_CALLBACK_CLOSED_HTTP:
        if (h->pending)
            h->pending->cancelled = 1;
        h->pending = NULL;
        buf_unref(h->body);
        h->body = NULL;
        return 0;
    default:
        return 0;
    }
}

int http_reject_upgrade(struct lws *wsi, int status, const char *code,
                        const char *message)
{
    unsigned char buf[LWS_PRE + 1024];
    unsigned char *start = buf + LWS_PRE, *p = start;
    unsigned char *end = buf + sizeof(buf) - 1;
    char body[512];
    int n;

    /* Headers and body go out in one write, as the connection closes when
     * the callback returns. */
    n = snprintf(body, sizeof(body),
                 "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                 code, message);
    if (n < 0 || (size_t)n >= sizeof(body))
        return 1;
    if (lws_add_http_common_headers(wsi, (unsigned)status,
                                    "application/json", (lws_filepos_t)n, &p,
                                    end) ||
        lws_finalize_http_header(wsi, &p, end) || end - p < n)
        return 1;
    memcpy(p, body, (size_t)n);
    p += n;
    lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS);
    return 1;
}
