/*
 * annolive-echo: the ceiling of libwebsockets on libuv for fan-out on this
 * machine. A raw broadcast server with no Redis, no decoding and no merge
 * logic: a client joins one room with {"type":"join","room":...} and gets
 * an empty snapshot; every later message it sends is relayed as it is to
 * every member of its room, itself included, from one shared buffer.
 * Serves annolive.v1.json text frames only; for benchmarks, not for use.
 */
#include <errno.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#define ROOM_BUCKETS 4096
#define MAX_QUEUE 65536 /* messages queued for one member before it is cut */

typedef struct {
    int refs;
    size_t len;
    unsigned char data[]; /* LWS_PRE bytes, then the message */
} shared_t;

typedef struct qent {
    struct qent *next;
    shared_t *msg;
} qent_t;

typedef struct room room_t;

typedef struct member {
    struct member *next, *prev; /* in the room */
    struct lws *wsi;
    room_t *room;
    qent_t *head, *tail;
    size_t queued;
    int cut;
    char *rx;
    size_t rx_len, rx_cap;
} member_t;

struct room {
    room_t *next; /* in the bucket */
    char name[132];
    member_t *members;
};

static room_t *buckets[ROOM_BUCKETS];

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h % ROOM_BUCKETS;
}

static room_t *get_room(const char *name)
{
    unsigned b = hash(name);
    room_t *r;

    for (r = buckets[b]; r; r = r->next) {
        if (strcmp(r->name, name) == 0)
            return r;
    }
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->next = buckets[b];
    buckets[b] = r;
    return r;
}

static void leave(member_t *m)
{
    if (!m->room)
        return;
    if (m->prev)
        m->prev->next = m->next;
    else
        m->room->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    m->room = NULL;
    m->next = m->prev = NULL;
}

static shared_t *make_shared(const char *text, size_t len)
{
    shared_t *s = malloc(sizeof(*s) + LWS_PRE + len);

    if (!s)
        return NULL;
    s->refs = 0;
    s->len = len;
    memcpy(s->data + LWS_PRE, text, len);
    return s;
}

static void unref(shared_t *s)
{
    if (--s->refs == 0)
        free(s);
}

static void enqueue(member_t *m, shared_t *s)
{
    qent_t *q;

    if (m->cut)
        return;
    if (m->queued >= MAX_QUEUE) {
        m->cut = 1;
        lws_callback_on_writable(m->wsi);
        return;
    }
    q = malloc(sizeof(*q));
    if (!q)
        return;
    q->next = NULL;
    q->msg = s;
    s->refs++;
    if (m->tail)
        m->tail->next = q;
    else
        m->head = q;
    m->tail = q;
    m->queued++;
    lws_callback_on_writable(m->wsi);
}

static void drop_queue(member_t *m)
{
    while (m->head) {
        qent_t *q = m->head;

        m->head = q->next;
        unref(q->msg);
        free(q);
    }
    m->tail = NULL;
    m->queued = 0;
}

/* Copies the value of "room" in a join message; returns 0 or -EINVAL. */
static int join_room_name(const char *text, char *out, size_t cap)
{
    const char *p = strstr(text, "\"room\":\"");
    size_t n = 0;

    if (!p)
        return -EINVAL;
    for (p += 8; *p && *p != '"' && n + 1 < cap; p++)
        out[n++] = *p;
    out[n] = '\0';
    return *p == '"' && n > 0 ? 0 : -EINVAL;
}

static void on_join(member_t *m, const char *text)
{
    char name[132], reply[256];
    room_t *r;
    shared_t *s;
    int n;

    if (join_room_name(text, name, sizeof(name)) < 0)
        return;
    r = get_room(name);
    if (!r)
        return;
    leave(m);
    m->room = r;
    m->next = r->members;
    if (r->members)
        r->members->prev = m;
    r->members = m;
    n = snprintf(reply, sizeof(reply),
                 "{\"type\":\"snapshot\",\"room\":\"%s\",\"seq\":0,"
                 "\"objects\":[]}",
                 name);
    s = make_shared(reply, (size_t)n);
    if (s) {
        enqueue(m, s);
        if (s->refs == 0)
            free(s);
    }
}

static void on_message(member_t *m, const char *text, size_t len)
{
    shared_t *s;
    member_t *to;

    if (strncmp(text, "{\"type\":\"join\"", 14) == 0) {
        on_join(m, text);
        return;
    }
    if (!m->room)
        return;
    s = make_shared(text, len);
    if (!s)
        return;
    for (to = m->room->members; to; to = to->next)
        enqueue(to, s);
    if (s->refs == 0)
        free(s);
}

static int append_rx(member_t *m, const void *in, size_t len)
{
    if (m->rx_len + len + 1 > m->rx_cap) {
        size_t cap = (m->rx_len + len + 1) * 2;
        char *grown = realloc(m->rx, cap);

        if (!grown)
            return -ENOMEM;
        m->rx = grown;
        m->rx_cap = cap;
    }
    memcpy(m->rx + m->rx_len, in, len);
    m->rx_len += len;
    m->rx[m->rx_len] = '\0';
    return 0;
}

static int write_one(member_t *m)
{
    qent_t *q = m->head;
    int rc;

    if (m->cut)
        return -1;
    if (!q)
        return 0;
    m->head = q->next;
    if (!m->head)
        m->tail = NULL;
    m->queued--;
    rc = lws_write(m->wsi, q->msg->data + LWS_PRE, q->msg->len, LWS_WRITE_TEXT);
    unref(q->msg);
    free(q);
    if (m->head)
        lws_callback_on_writable(m->wsi);
    return rc < 0 ? -1 : 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
    member_t *m = user;

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(m, 0, sizeof(*m));
        m->wsi = wsi;
        break;
    case LWS_CALLBACK_RECEIVE:
        if (append_rx(m, in, len) < 0)
            return -1;
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            on_message(m, m->rx, m->rx_len);
            m->rx_len = 0;
        }
        break;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return write_one(m);
    case LWS_CALLBACK_CLOSED:
        leave(m);
        drop_queue(m);
        free(m->rx);
        m->rx = NULL;
        break;
    default:
        break;
    }
    return 0;
}

/* Not const: --rx-buffer sets the receive buffer size before use. */
static struct lws_protocols protocols[] = {
    {"annolive.v1.json", callback, sizeof(member_t), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

static void on_signal(uv_signal_t *sig, int signum)
{
    exit(0);
}

static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    struct lws_context_creation_info info;
    struct lws_context *ctx;
    uv_signal_t sigterm, sigint;
    uv_loop_t *loop = uv_default_loop();
    void *foreign[1] = {loop};
    char host[64] = "127.0.0.1";
    int port = 0;

    if ((argc != 3 && argc != 5) || strcmp(argv[1], "--listen") != 0 ||
        sscanf(argv[2], "%63[^:]:%d", host, &port) != 2 ||
        (argc == 5 &&
         (strcmp(argv[3], "--rx-buffer") != 0 || atoi(argv[4]) < 128))) {
        fprintf(stderr, "Usage: annolive-echo --listen HOST:PORT "
                        "[--rx-buffer BYTES]\n"
                        "BYTES is libwebsockets' receive buffer per "
                        "connection, at least 128 (default 65536, as in "
                        "annolive).\n");
        return 2;
    }
    if (argc == 5)
        protocols[0].rx_buffer_size = (size_t)atoi(argv[4]);
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(LLL_ERR, NULL);

    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.foreign_loops = foreign;
    ctx = lws_create_context(&info);
    if (!ctx)
        return 1;
    info.port = port;
    info.iface = host;
    info.protocols = protocols;
    if (!lws_create_vhost(ctx, &info)) {
        fprintf(stderr, "annolive-echo: cannot listen on %s:%d\n", host, port);
        return 1;
    }
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    printf("ready echo %s:%d pid %d\n", host, port, (int)getpid());
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
