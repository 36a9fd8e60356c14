/*
 * annolive-loadgen: simulated annotators against annolive (or against the
 * raw broadcast server of bench/echo) over annolive.v1.json, on one
 * libuv loop with libwebsockets clients.
 *
 * Modes: fanout (the default: R rooms of N members, W writers per room
 * sending op batches at a rate for a duration), idle (N members that only
 * join: memory per connection) and bigroom (one room loaded with many
 * polygons, then joins timed one at a time). Reports a table on stdout and
 * JSON to --json. It does not start servers; bench/run.sh does.
 */
#include <errno.h>
#include <libwebsockets.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "hist.h"
#include "proc.h"
#include "work.h"

#define MAX_URLS 8
#define MAX_PIDS 16
#define RING 4096 /* send times kept per writer, by opseq */
#define MSG_CAP 65536
#define MAX_CODES 16

typedef enum { MODE_FANOUT, MODE_IDLE, MODE_BIGROOM } run_mode_t;
typedef enum {
    PH_CONNECT,
    PH_SETTLE,
    PH_RUN,
    PH_DRAIN,
    PH_LOAD,
    PH_JOINS
} phase_t;

typedef struct {
    run_mode_t mode;
    char host[MAX_URLS][64];
    int port[MAX_URLS];
    int nurls;
    int rooms, clients, writers;
    double rate, duration;
    mix_t mix;
    int polygon_share;
    const char *coco, *json, *prefix;
    int pids[MAX_PIDS], npids;
    int echo;
    int objects, joiners; /* bigroom */
    int ramp;
} opts_t;

typedef struct out_msg {
    struct out_msg *next;
    size_t len;
    unsigned char data[]; /* LWS_PRE bytes, then the message */
} out_msg_t;

typedef struct writer writer_t;

typedef struct {
    struct lws *wsi;
    int index, room, url;
    writer_t *writer;
    int open, joined, closed;
    out_msg_t *head, *tail;
    char *rx;
    size_t rx_len, rx_cap;
    double join_sent, join_ms;
    size_t snapshot_bytes;
} conn_t;

struct writer {
    conn_t *conn;
    char actor[48];
    unsigned long opseq, objects, sent;
    unsigned long *live; /* numbers of the writer's live objects */
    size_t nlive, cap_live;
    double phase;
    unsigned seed;
    double send_t[RING];
    unsigned long send_seq[RING];
};

typedef struct {
    unsigned long batches_sent, presence_sent, acked, applied, op_conflicts;
    unsigned long delivered, expected, presence_delivered, unknown_type;
    unsigned long connect_errors, closed;
    double last_delivery, last_ack; /* ms, for the rates */
    char codes[MAX_CODES][32];
    unsigned long code_counts[MAX_CODES];
    hist_t ack, delivery;
} stats_t;

static opts_t o;
static conn_t *conns;
static writer_t *writers;
static int nconns, nwriters, started, nopen, njoined;
static phase_t phase = PH_CONNECT;
static double phase_start, run_start, run_end;
static stats_t st;
static uv_loop_t *loop;
static uv_timer_t tick;
static struct lws_context *ctx;
static double cpu0, self_cpu0;
static long rss_before;
static char room_names[1][160];
static unsigned long big_acked, big_sent;
static int joiner_next;

static double now_ms(void)
{
    return (double)uv_hrtime() / 1e6;
}

static void room_name(int r, char *out, size_t cap)
{
    snprintf(out, cap, "%sr%d", o.prefix, r);
}

/* ---- sending ---- */

static void enqueue(conn_t *c, const char *text, size_t len)
{
    out_msg_t *m;

    if (!c->wsi || c->closed)
        return;
    m = malloc(sizeof(*m) + LWS_PRE + len);
    if (!m)
        return;
    m->next = NULL;
    m->len = len;
    memcpy(m->data + LWS_PRE, text, len);
    if (c->tail)
        c->tail->next = m;
    else
        c->head = m;
    c->tail = m;
    lws_callback_on_writable(c->wsi);
}

static void write_one(conn_t *c)
{
    out_msg_t *m = c->head;

    if (!m)
        return;
    c->head = m->next;
    if (!c->head)
        c->tail = NULL;
    lws_write(c->wsi, m->data + LWS_PRE, m->len, LWS_WRITE_TEXT);
    free(m);
    if (c->head)
        lws_callback_on_writable(c->wsi);
}

static void send_join(conn_t *c)
{
    char text[256], room[160];
    int n;

    room_name(c->room, room, sizeof(room));
    n = snprintf(text, sizeof(text), "{\"type\":\"join\",\"room\":\"%s\"}",
                 room);
    c->join_sent = now_ms();
    enqueue(c, text, (size_t)n);
}

static void remember(writer_t *w, unsigned long obj)
{
    if (w->nlive == w->cap_live) {
        size_t cap = w->cap_live ? w->cap_live * 2 : 16;
        unsigned long *grown = realloc(w->live, cap * sizeof(*grown));

        if (!grown)
            return;
        w->live = grown;
        w->cap_live = cap;
    }
    w->live[w->nlive++] = obj;
}

static int is_polygon(unsigned long obj)
{
    return (int)(obj % 100) < o.polygon_share;
}

/* Builds the writer's next message by the mix; returns its length. */
static size_t next_message(writer_t *w, char *buf, op_kind_t *kind)
{
    char room[160];
    unsigned long obj;
    size_t pick;

    room_name(w->conn->room, room, sizeof(room));
    *kind = work_pick(&o.mix, (int)(rand_r(&w->seed) % 100));
    if (*kind == OP_PRESENCE)
        return work_presence(
            buf, MSG_CAP, room, w->actor, (double)(rand_r(&w->seed) % 1280),
            (double)(rand_r(&w->seed) % 720), w->nlive ? w->live[0] : 0);
    if (w->nlive == 0)
        *kind = OP_CREATE;
    w->opseq++;
    if (*kind == OP_CREATE) {
        obj = ++w->objects;
        remember(w, obj);
        return work_create(buf, MSG_CAP, room, w->actor, w->opseq, obj,
                           obj * 7 + (unsigned long)w->conn->index,
                           is_polygon(obj));
    }
    pick = (size_t)rand_r(&w->seed) % w->nlive;
    obj = w->live[pick];
    if (*kind == OP_DELETE) {
        w->live[pick] = w->live[--w->nlive];
        return work_delete(buf, MSG_CAP, room, w->actor, w->opseq, obj);
    }
    if (*kind == OP_RELABEL)
        return work_relabel(buf, MSG_CAP, room, w->actor, w->opseq, obj,
                            rand_r(&w->seed));
    return work_move(buf, MSG_CAP, room, w->actor, w->opseq, obj,
                     obj * 7 + (unsigned long)w->conn->index, is_polygon(obj),
                     (double)(rand_r(&w->seed) % 9) - 4,
                     (double)(rand_r(&w->seed) % 9) - 4);
}

static void writer_send(writer_t *w)
{
    static char buf[MSG_CAP];
    op_kind_t kind;
    size_t len = next_message(w, buf, &kind);

    if (len == 0)
        return;
    w->sent++;
    if (kind == OP_PRESENCE) {
        st.presence_sent++;
    } else {
        st.batches_sent++;
        w->send_t[w->opseq % RING] = now_ms();
        w->send_seq[w->opseq % RING] = w->opseq;
    }
    enqueue(w->conn, buf, len);
}

static void send_due(double now)
{
    double elapsed = (now - run_start) / 1000.0;
    int i;

    for (i = 0; i < nwriters; i++) {
        writer_t *w = &writers[i];
        unsigned long due = (unsigned long)floor(elapsed * o.rate + w->phase);

        while (w->sent < due && w->conn->joined)
            writer_send(w);
    }
}

/* ---- receiving ---- */

/* Returns the number after key in text, or -1. */
static long long number_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);

    return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

/* The writer that actor names, or NULL for an actor of someone else. */
static writer_t *writer_of(const char *text)
{
    const char *p = strstr(text, "\"actor\":\"");
    size_t plen = strlen(o.prefix);
    long idx;

    if (!p)
        return NULL;
    p += 9;
    if (strncmp(p, o.prefix, plen) != 0 || p[plen] != 'w')
        return NULL;
    idx = strtol(p + plen + 1, NULL, 10);
    return idx >= 0 && idx < nwriters ? &writers[idx] : NULL;
}

static void record_send_latency(hist_t *h, writer_t *w, long long opseq)
{
    unsigned long slot;

    if (opseq < 0)
        return;
    slot = (unsigned long)opseq % RING;
    if (w->send_seq[slot] == (unsigned long)opseq)
        hist_record(h, (uint64_t)((now_ms() - w->send_t[slot]) * 1000.0));
}

static void on_event(conn_t *c, const char *text)
{
    writer_t *w = writer_of(text);

    if (!w)
        return;
    if (w->conn == c) {
        if (o.echo) { /* the echo server's copy stands for the ack */
            st.acked++;
            st.last_ack = now_ms();
            st.applied++;
            st.expected += (unsigned long)(o.clients - 1);
            record_send_latency(&st.ack, w, number_after(text, "\"opseq\":"));
        }
        return;
    }
    st.delivered++;
    st.last_delivery = now_ms();
    record_send_latency(&st.delivery, w, number_after(text, "\"opseq\":"));
}

static void count_code(const char *text)
{
    const char *p = strstr(text, "\"code\":\"");
    char code[32];
    size_t n = 0;
    int i;

    if (!p)
        return;
    for (p += 8; *p && *p != '"' && n < sizeof(code) - 1; p++)
        code[n++] = *p;
    code[n] = '\0';
    if (strcmp(code, "unknown_type") == 0) {
        st.unknown_type++;
        return;
    }
    for (i = 0; i < MAX_CODES && st.codes[i][0]; i++) {
        if (strcmp(st.codes[i], code) == 0)
            break;
    }
    if (i == MAX_CODES)
        return;
    strcpy(st.codes[i], code);
    st.code_counts[i]++;
}

static void on_ack(conn_t *c, const char *text)
{
    writer_t *w = c->writer;

    if (phase == PH_LOAD) {
        big_acked++;
        return;
    }
    if (!w)
        return;
    st.acked++;
    st.last_ack = now_ms();
    if (strstr(text, "\"seq\":")) {
        st.applied++;
        st.expected += (unsigned long)(o.clients - 1);
    }
    if (strstr(text, "\"status\":\"conflict\"") ||
        strstr(text, "\"status\":\"rejected\""))
        st.op_conflicts++;
    record_send_latency(&st.ack, w, number_after(text, "\"opseq\":"));
}

static void on_snapshot(conn_t *c, size_t len)
{
    if (c->joined)
        return;
    c->joined = 1;
    c->join_ms = now_ms() - c->join_sent;
    c->snapshot_bytes = len;
    njoined++;
}

static void on_message(conn_t *c, const char *text, size_t len)
{
    static const char head[] = "{\"type\":\"";
    const char *type;

    if (strncmp(text, head, sizeof(head) - 1) != 0)
        return;
    type = text + sizeof(head) - 1;
    if (strncmp(type, "event\"", 6) == 0 || strncmp(type, "ops\"", 4) == 0)
        on_event(c, text);
    else if (strncmp(type, "ack\"", 4) == 0)
        on_ack(c, text);
    else if (strncmp(type, "presence\"", 9) == 0)
        st.presence_delivered++;
    else if (strncmp(type, "snapshot\"", 9) == 0)
        on_snapshot(c, len);
    else if (strncmp(type, "error\"", 6) == 0)
        count_code(text);
}

static int append_rx(conn_t *c, const void *in, size_t len)
{
    if (c->rx_len + len + 1 > c->rx_cap) {
        size_t cap = (c->rx_len + len + 1) * 2;
        char *grown = realloc(c->rx, cap);

        if (!grown)
            return -ENOMEM;
        c->rx = grown;
        c->rx_cap = cap;
    }
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    c->rx[c->rx_len] = '\0';
    return 0;
}

static void drop_queue(conn_t *c)
{
    while (c->head) {
        out_msg_t *m = c->head;

        c->head = m->next;
        free(m);
    }
    c->tail = NULL;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
    conn_t *c = user;

    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c->open = 1;
        nopen++;
        send_join(c);
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (append_rx(c, in, len) < 0)
            return -1;
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            on_message(c, c->rx, c->rx_len);
            c->rx_len = 0;
        }
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        write_one(c);
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        st.connect_errors++;
        if (st.connect_errors <= 3)
            fprintf(stderr, "loadgen: connection %d failed: %s\n", c->index,
                    in ? (const char *)in : "no reason given");
        /* fall through */
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (c && !c->closed) {
            c->closed = 1;
            st.closed++;
            c->wsi = NULL;
            drop_queue(c);
        }
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"annolive.v1.json", callback, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

/* ---- phases ---- */

static void connect_one(conn_t *c)
{
    struct lws_client_connect_info ci;
    char host[96];

    memset(&ci, 0, sizeof(ci));
    snprintf(host, sizeof(host), "%s:%d", o.host[c->url], o.port[c->url]);
    ci.context = ctx;
    ci.address = o.host[c->url];
    ci.port = o.port[c->url];
    ci.path = "/v1/ws";
    ci.host = host;
    ci.protocol = "annolive.v1.json";
    ci.local_protocol_name = "annolive.v1.json";
    ci.userdata = c;
    ci.pwsi = &c->wsi;
    if (!lws_client_connect_via_info(&ci)) {
        st.connect_errors++;
        c->closed = 1;
    }
}

/* Opens connections, at most o.ramp handshakes in flight. */
static void ramp_up(int upto)
{
    while (started < upto && started - nopen - (int)st.connect_errors < o.ramp)
        connect_one(&conns[started++]);
}

static void enter(phase_t p)
{
    phase = p;
    phase_start = now_ms();
}

static void start_run(void)
{
    /* Presence updates of the joins are not part of the run. */
    st.presence_delivered = 0;
    cpu0 = proc_cpu_seconds(o.pids, (size_t)o.npids);
    self_cpu0 = proc_cpu_seconds((int[]){getpid()}, 1);
    run_start = now_ms();
    enter(PH_RUN);
}

static void send_big_batch(void)
{
    static char buf[1 << 22];
    writer_t *w = &writers[0];
    unsigned count = 100;
    size_t len;

    if (big_sent + count > (unsigned long)o.objects)
        count = (unsigned)((unsigned long)o.objects - big_sent);
    w->opseq++;
    len = work_create_many(buf, sizeof(buf), room_names[0], w->actor, w->opseq,
                           big_sent + 1, count);
    big_sent += count;
    if (len)
        enqueue(w->conn, buf, len);
}

static void step_bigroom(void)
{
    if (phase == PH_LOAD) {
        while (big_sent < (unsigned long)o.objects &&
               big_sent / 100 < big_acked + 4)
            send_big_batch();
        if (now_ms() - phase_start > 120000) {
            fprintf(stderr,
                    "loadgen: loading the big room timed out after "
                    "%lu of %d objects\n",
                    big_acked * 100, o.objects);
            uv_stop(loop);
        } else if (big_acked * 100 >= (unsigned long)o.objects) {
            enter(PH_JOINS);
            joiner_next = 1;
            ramp_up(2);
        }
        return;
    }

    /* One joiner at a time: connect, join, wait for its snapshot. */
    if (joiner_next < nconns &&
        (conns[joiner_next].joined || conns[joiner_next].closed)) {
        joiner_next++;
        if (joiner_next < nconns)
            ramp_up(joiner_next + 1);
    }
    if (joiner_next >= nconns || now_ms() - phase_start > 120000)
        uv_stop(loop);
}

static void on_tick(uv_timer_t *t)
{
    double now = now_ms();

    switch (phase) {
    case PH_CONNECT:
        ramp_up(o.mode == MODE_BIGROOM ? 1 : nconns);
        if (njoined + (int)st.closed >= (o.mode == MODE_BIGROOM ? 1 : nconns) ||
            now - phase_start > 300000) {
            if (o.mode == MODE_BIGROOM) {
                enter(PH_LOAD);
                room_name(0, room_names[0], sizeof(room_names[0]));
            } else {
                enter(PH_SETTLE);
            }
        }
        break;
    case PH_SETTLE:
        if (now - phase_start > (o.mode == MODE_IDLE ? 3000 : 1000)) {
            if (o.mode == MODE_IDLE)
                uv_stop(loop);
            else
                start_run();
        }
        break;
    case PH_RUN:
        send_due(now);
        if (now - run_start >= o.duration * 1000) {
            run_end = now;
            enter(PH_DRAIN);
        }
        break;
    case PH_DRAIN:
        if ((st.acked >= st.batches_sent && st.delivered >= st.expected) ||
            now - phase_start > 5000)
            uv_stop(loop);
        break;
    case PH_LOAD:
    case PH_JOINS:
        step_bigroom();
        break;
    }
}

/* ---- report ---- */

static void put_hist(FILE *f, const char *name, const hist_t *h)
{
    fprintf(f,
            "  \"%s\": {\"count\": %llu, \"p50\": %.3f, \"p90\": %.3f, "
            "\"p99\": %.3f, \"p999\": %.3f, \"max\": %.3f},\n",
            name, (unsigned long long)h->n, hist_quantile(h, 0.5) / 1000.0,
            hist_quantile(h, 0.9) / 1000.0, hist_quantile(h, 0.99) / 1000.0,
            hist_quantile(h, 0.999) / 1000.0, (double)h->max / 1000.0);
}

static void print_hist(const char *name, const hist_t *h)
{
    printf("%-22s %8.2f %8.2f %8.2f %8.2f %8.2f   (%llu samples)\n", name,
           hist_quantile(h, 0.5) / 1000.0, hist_quantile(h, 0.9) / 1000.0,
           hist_quantile(h, 0.99) / 1000.0, hist_quantile(h, 0.999) / 1000.0,
           (double)h->max / 1000.0, (unsigned long long)h->n);
}

static void put_codes(FILE *f)
{
    int i;

    fprintf(f, "  \"errors\": {");
    for (i = 0; i < MAX_CODES && st.codes[i][0]; i++)
        fprintf(f, "%s\"%s\": %lu", i ? ", " : "", st.codes[i],
                st.code_counts[i]);
    fprintf(f, "},\n");
}

/* Seconds from the start of sending to t, at least the sending time. */
static double span_to(double t, double secs)
{
    double s = (t - run_start) / 1000.0;

    return s > secs ? s : secs;
}

static void report_fanout(FILE *f, double secs, double cpu, double self_cpu)
{
    unsigned long messages = st.delivered + st.presence_delivered;
    double per_event = messages ? cpu * 1e6 / (double)messages : 0;
    double ev_s = (double)st.delivered / span_to(st.last_delivery, secs);
    double ack_s = (double)st.acked / span_to(st.last_ack, secs);

    fprintf(f,
            "  \"seconds\": %.3f,\n  \"drain_seconds\": %.3f,\n"
            "  \"batches_sent\": %lu,\n"
            "  \"presence_sent\": %lu,\n  \"acked\": %lu,\n"
            "  \"ops_acked_per_s\": %.1f,\n  \"applied\": %lu,\n"
            "  \"op_conflicts_or_rejections\": %lu,\n"
            "  \"events_delivered\": %lu,\n  \"events_expected\": %lu,\n"
            "  \"events_delivered_per_s\": %.1f,\n"
            "  \"presence_delivered\": %lu,\n  \"unknown_type\": %lu,\n"
            "  \"server_cpu_s\": %.3f,\n  \"server_cpu_us_per_event\": %.3f,\n"
            "  \"loadgen_cpu_s\": %.3f,\n",
            secs, span_to(st.last_delivery, secs) - secs, st.batches_sent,
            st.presence_sent, st.acked, ack_s, st.applied, st.op_conflicts,
            st.delivered, st.expected, ev_s, st.presence_delivered,
            st.unknown_type, cpu, per_event, self_cpu);
    put_hist(f, "ack_ms", &st.ack);
    put_hist(f, "delivery_ms", &st.delivery);

    printf("ops acked/s %.0f (%lu of %lu), events delivered/s %.0f (%lu of "
           "%lu), presence delivered %lu\n",
           ack_s, st.acked, st.batches_sent, ev_s, st.delivered, st.expected,
           st.presence_delivered);
    printf("server CPU %.2f s (%.3f us per delivered event or presence), "
           "loadgen CPU %.2f s\n",
           cpu, per_event, self_cpu);
    printf("%-22s %8s %8s %8s %8s %8s\n", "latency (ms)", "p50", "p90", "p99",
           "p99.9", "max");
    print_hist("send -> ack", &st.ack);
    print_hist("send -> delivery", &st.delivery);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static void report_bigroom(FILE *f)
{
    double ms[64];
    int i, n = 0;

    fprintf(f, "  \"objects\": %d,\n  \"joins\": [", o.objects);
    for (i = 1; i < nconns; i++) {
        if (!conns[i].joined)
            continue;
        fprintf(f, "%s{\"url\": %d, \"ms\": %.3f, \"bytes\": %zu}",
                n ? ", " : "", conns[i].url, conns[i].join_ms,
                conns[i].snapshot_bytes);
        printf("join %d via url %d: %.2f ms, snapshot %zu bytes\n", i,
               conns[i].url, conns[i].join_ms, conns[i].snapshot_bytes);
        if (n < 64)
            ms[n++] = conns[i].join_ms;
    }
    qsort(ms, (size_t)n, sizeof(double), cmp_double);
    fprintf(f, "],\n  \"join_ms_median\": %.3f,\n  \"snapshot_bytes\": %zu,\n",
            n ? ms[n / 2] : 0.0, nconns > 1 ? conns[1].snapshot_bytes : 0);
}

static void report(void)
{
    double secs = (run_end > run_start ? run_end - run_start : 0) / 1000.0;
    double cpu = proc_cpu_seconds(o.pids, (size_t)o.npids) - cpu0;
    double self_cpu = proc_cpu_seconds((int[]){getpid()}, 1) - self_cpu0;
    long rss = proc_status_kib(o.pids, (size_t)o.npids, "VmRSS");
    long hwm = proc_status_kib(o.pids, (size_t)o.npids, "VmHWM");
    static const char *const names[] = {"fanout", "idle", "bigroom"};
    FILE *f = o.json ? fopen(o.json, "w") : NULL;

    if (o.json && !f)
        fprintf(stderr, "loadgen: cannot write %s\n", o.json);
    if (!f)
        f = fopen("/dev/null", "w");
    fprintf(f,
            "{\n  \"tool\": \"annolive-loadgen\",\n  \"mode\": \"%s\",\n"
            "  \"target\": \"%s\",\n  \"rooms\": %d,\n  \"clients\": %d,\n"
            "  \"writers\": %d,\n  \"rate\": %.2f,\n  \"instances\": %d,\n"
            "  \"connections\": %d,\n  \"joined\": %d,\n"
            "  \"connect_errors\": %lu,\n  \"closed\": %lu,\n",
            names[o.mode], o.echo ? "echo" : "annolive", o.rooms, o.clients,
            o.writers, o.rate, o.nurls, nconns, njoined, st.connect_errors,
            st.closed);
    printf("%s: %d connections (%d joined, %lu connect errors, %lu closed)\n",
           names[o.mode], nconns, njoined, st.connect_errors, st.closed);
    if (o.mode == MODE_FANOUT)
        report_fanout(f, secs > 0 ? secs : 1, cpu, self_cpu);
    else if (o.mode == MODE_BIGROOM)
        report_bigroom(f);
    put_codes(f);
    fprintf(f,
            "  \"server_rss_before_kib\": %ld,\n  \"server_rss_kib\": %ld,\n"
            "  \"server_peak_rss_kib\": %ld,\n"
            "  \"bytes_per_connection\": %.0f\n}\n",
            rss_before, rss, hwm,
            njoined ? (double)(rss - rss_before) * 1024.0 / njoined : 0.0);
    printf("server RSS %ld KiB (peak %ld KiB, %.0f bytes per connection "
           "above the %ld KiB before)\n",
           rss, hwm,
           njoined ? (double)(rss - rss_before) * 1024.0 / njoined : 0,
           rss_before);
    fclose(f);
}

/* ---- options ---- */

static const char usage[] =
    "Usage: annolive-loadgen --url ws://HOST:PORT[,...] [OPTION]...\n"
    "\n"
    "  --url LIST          server URLs; the members of a room alternate\n"
    "  --mode MODE         fanout (default), idle or bigroom\n"
    "  --rooms N           rooms (default 20)\n"
    "  --clients N         members per room (default 50)\n"
    "  --writers N         writers per room (default 5)\n"
    "  --rate X            messages per second per writer (default 10)\n"
    "  --duration S        seconds of sending (default 10)\n"
    "  --mix LIST          shares in percent (default create=10,move=50,\n"
    "                      relabel=20,delete=5,presence=15)\n"
    "  --polygon-share P   percent of created objects that are polygons\n"
    "                      (default 50; the rest are boxes)\n"
    "  --coco FILE         COCO instances file for real polygon sizes\n"
    "  --objects N         bigroom: polygons loaded (default 5000)\n"
    "  --joiners N         bigroom: joins timed one after another (default 6)\n"
    "  --pids LIST         server process ids for CPU time and memory\n"
    "  --echo              the target is bench/echo: relayed ops are events\n"
    "  --prefix TEXT       room and actor prefix (default lgPID-)\n"
    "  --ramp N            handshakes in flight at once (default 200)\n"
    "  --json FILE         write the results as JSON\n"
    "  --help              print this help\n"
    "\n"
    "Writers send op batches of one op (create, move, relabel, delete) and\n"
    "presence updates; an unknown_type error for presence is counted, not\n"
    "fatal. Latencies are in milliseconds.\n";

static int parse_urls(const char *list)
{
    char buf[1024], *save = NULL, *u;

    snprintf(buf, sizeof(buf), "%s", list);
    for (u = strtok_r(buf, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
        if (o.nurls == MAX_URLS || sscanf(u, "ws://%63[^:]:%d", o.host[o.nurls],
                                          &o.port[o.nurls]) != 2)
            return -EINVAL;
        o.nurls++;
    }
    return o.nurls ? 0 : -EINVAL;
}

static int parse_pids(const char *list)
{
    char buf[512], *save = NULL, *p;

    snprintf(buf, sizeof(buf), "%s", list);
    for (p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (o.npids == MAX_PIDS)
            return -EINVAL;
        o.pids[o.npids++] = atoi(p);
    }
    return 0;
}

static int parse_mode(const char *m)
{
    if (strcmp(m, "fanout") == 0)
        o.mode = MODE_FANOUT;
    else if (strcmp(m, "idle") == 0)
        o.mode = MODE_IDLE;
    else if (strcmp(m, "bigroom") == 0)
        o.mode = MODE_BIGROOM;
    else
        return -EINVAL;
    return 0;
}

static int parse_one(const char *name, const char *v)
{
    if (strcmp(name, "--url") == 0)
        return parse_urls(v);
    if (strcmp(name, "--mode") == 0)
        return parse_mode(v);
    if (strcmp(name, "--mix") == 0)
        return work_parse_mix(v, &o.mix);
    if (strcmp(name, "--pids") == 0)
        return parse_pids(v);
    if (strcmp(name, "--rooms") == 0)
        o.rooms = atoi(v);
    else if (strcmp(name, "--clients") == 0)
        o.clients = atoi(v);
    else if (strcmp(name, "--writers") == 0)
        o.writers = atoi(v);
    else if (strcmp(name, "--rate") == 0)
        o.rate = atof(v);
    else if (strcmp(name, "--duration") == 0)
        o.duration = atof(v);
    else if (strcmp(name, "--polygon-share") == 0)
        o.polygon_share = atoi(v);
    else if (strcmp(name, "--coco") == 0)
        o.coco = v;
    else if (strcmp(name, "--objects") == 0)
        o.objects = atoi(v);
    else if (strcmp(name, "--joiners") == 0)
        o.joiners = atoi(v);
    else if (strcmp(name, "--prefix") == 0)
        o.prefix = v;
    else if (strcmp(name, "--ramp") == 0)
        o.ramp = atoi(v);
    else if (strcmp(name, "--json") == 0)
        o.json = v;
    else
        return -EINVAL;
    return 0;
}

static int parse_args(int argc, char **argv)
{
    static char prefix[32];
    int i;

    o.rooms = 20;
    o.clients = 50;
    o.writers = 5;
    o.rate = 10;
    o.duration = 10;
    o.polygon_share = 50;
    o.objects = 5000;
    o.joiners = 6;
    o.ramp = 200;
    work_parse_mix("create=10,move=50,relabel=20,delete=5,presence=15", &o.mix);
    snprintf(prefix, sizeof(prefix), "lg%d-", (int)getpid());
    o.prefix = prefix;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            exit(0);
        }
        if (strcmp(argv[i], "--echo") == 0) {
            o.echo = 1;
            continue;
        }
        if (i + 1 >= argc || parse_one(argv[i], argv[i + 1]) < 0) {
            fprintf(stderr, "loadgen: invalid option %s (see --help)\n",
                    argv[i]);
            return -EINVAL;
        }
        i++;
    }
    if (!o.nurls || o.rooms < 1 || o.clients < 1 || o.writers < 0 ||
        o.rate <= 0 || o.ramp < 1 || o.joiners < 1) {
        fprintf(stderr, "loadgen: --url is required and counts must be "
                        "positive (see --help)\n");
        return -EINVAL;
    }
    if (o.writers > o.clients)
        o.writers = o.clients;
    return 0;
}

/* ---- set-up ---- */

static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int make_members(void)
{
    int r, j, n = 0, w = 0;

    if (o.mode == MODE_BIGROOM) {
        o.rooms = 1;
        o.clients = 1 + o.joiners;
        o.writers = 1;
    }
    if (o.mode == MODE_IDLE)
        o.writers = 0;
    nconns = o.rooms * o.clients;
    nwriters = o.rooms * o.writers;
    conns = calloc((size_t)nconns, sizeof(*conns));
    writers = calloc((size_t)(nwriters ? nwriters : 1), sizeof(*writers));
    if (!conns || !writers)
        return -ENOMEM;
    for (r = 0; r < o.rooms; r++) {
        for (j = 0; j < o.clients; j++, n++) {
            conns[n].index = n;
            conns[n].room = r;
            conns[n].url = j % o.nurls;
            if (j >= o.writers)
                continue;
            writers[w].conn = &conns[n];
            writers[w].seed = (unsigned)n * 2654435761u;
            writers[w].phase = (double)w / (nwriters ? nwriters : 1);
            snprintf(writers[w].actor, sizeof(writers[w].actor), "%sw%d",
                     o.prefix, w);
            conns[n].writer = &writers[w++];
        }
    }
    return 0;
}

static int make_context(void)
{
    struct lws_context_creation_info info;
    void *foreign[1];

    loop = uv_default_loop();
    foreign[0] = loop;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_LIBUV;
    info.foreign_loops = foreign;
    lws_set_log_level(LLL_ERR, NULL);
    ctx = lws_create_context(&info);
    return ctx ? 0 : -EIO;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) < 0)
        return 2;
    raise_fd_limit();
    if (work_load_coco(o.coco) < 0) {
        fprintf(stderr, "loadgen: cannot read shapes from %s\n", o.coco);
        return 1;
    }
    if (make_members() < 0 || make_context() < 0) {
        fprintf(stderr, "loadgen: out of memory or no libwebsockets context "
                        "(is libwebsockets-evlib-uv installed?)\n");
        return 1;
    }
    rss_before = proc_status_kib(o.pids, (size_t)o.npids, "VmRSS");
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 1, 1);
    enter(PH_CONNECT);
    uv_run(loop, UV_RUN_DEFAULT);
    report();

    /* The servers see the connections drop when the process exits. */
    return st.connect_errors ? 3 : 0;
}
