/*
 * Instance counters and their Prometheus text rendering. Every metric has
 * a HELP and a TYPE line; names follow the Prometheus rules (counters end
 * in _total, durations are in seconds).
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

metrics_t metrics;

/* Upper bounds of the Redis latency buckets, in seconds. */
static const double latency_bounds[METRICS_LATENCY_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01,   0.025,   0.05,   0.1,   0.25,   1.0,
};

static const char *const result_names[METRICS_RESULTS] = {
    "applied", "merged", "conflict", "rejected"};
static const char *const source_names[METRICS_SOURCES] = {"websocket", "http"};

uint64_t metrics_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void metrics_observe_redis(uint64_t us)
{
    double s = (double)us / 1e6;
    size_t i = 0;

    while (i < METRICS_LATENCY_BUCKETS && s > latency_bounds[i])
        i++;
    metrics.redis_buckets[i]++;
    metrics.redis_count++;
    metrics.redis_sum_s += s;
}

/* A growing text buffer. failed is set once an allocation fails. */
typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} text_t;

static void put(text_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void put(text_t *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }

        /* Too small: grow and format again. */
        size_t cap = t->cap * 2 + (size_t)n + 1;
        char *p = realloc(t->data, cap);

        if (!p) {
            t->failed = 1;
            return;
        }
        t->data = p;
        t->cap = cap;
    }
}

static void head(text_t *t, const char *name, const char *type,
                 const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(text_t *t, const char *name, const char *help,
                  unsigned long long v)
{
    head(t, name, "gauge", help);
    put(t, "%s %llu\n", name, v);
}

static void counter(text_t *t, const char *name, const char *help,
                    unsigned long long v)
{
    head(t, name, "counter", help);
    put(t, "%s %llu\n", name, v);
}

static void render_ops(text_t *t)
{
    head(t, "annolive_ops_total", "counter",
         "Ops answered, by batch source and result.");
    for (int s = 0; s < METRICS_SOURCES; s++)
        for (int r = 0; r < METRICS_RESULTS; r++)
            put(t, "annolive_ops_total{source=\"%s\",result=\"%s\"} %llu\n",
                source_names[s], result_names[r], metrics.ops[s][r]);
    head(t, "annolive_batches_total", "counter",
         "Op batches answered with an ack, by source.");
    for (int s = 0; s < METRICS_SOURCES; s++)
        put(t, "annolive_batches_total{source=\"%s\"} %llu\n", source_names[s],
            metrics.batches[s]);
    counter(t, "annolive_conflicts_total",
            "Concurrently modified fields reported in acks.",
            metrics.conflicts);
}

static void render_redis(text_t *t)
{
    unsigned long long cum = 0;

    head(t, "annolive_redis_command_duration_seconds", "histogram",
         "Time from sending a Redis command to its reply.");
    for (size_t i = 0; i < METRICS_LATENCY_BUCKETS; i++) {
        cum += metrics.redis_buckets[i];
        put(t,
            "annolive_redis_command_duration_seconds_bucket"
            "{le=\"%g\"} %llu\n",
            latency_bounds[i], cum);
    }
    cum += metrics.redis_buckets[METRICS_LATENCY_BUCKETS];
    put(t,
        "annolive_redis_command_duration_seconds_bucket{le=\"+Inf\"} "
        "%llu\n",
        cum);
    put(t, "annolive_redis_command_duration_seconds_sum %.6f\n",
        metrics.redis_sum_s);
    put(t, "annolive_redis_command_duration_seconds_count %llu\n",
        metrics.redis_count);
}

static void render_gauges(text_t *t, const metrics_gauges_t *g)
{
    gauge(t, "annolive_connections", "Open WebSocket connections.",
          g->connections);
    gauge(t, "annolive_rooms", "Rooms cached on this instance.", g->rooms);
    gauge(t, "annolive_room_members",
          "Room memberships of the connections on this instance.", g->members);
    gauge(t, "annolive_batches_in_flight",
          "Batches sent to Redis that have not returned.",
          g->batches_in_flight);
    gauge(t, "annolive_redis_up", "1 while Redis is reachable.",
          (unsigned long long)g->redis_up);
}

buf_t *metrics_render(const metrics_gauges_t *g)
{
    text_t t = {.cap = 4096};
    buf_t *b = NULL;

    t.data = malloc(t.cap);
    if (!t.data)
        return NULL;
    render_gauges(&t, g);
    render_ops(&t);
    counter(&t, "annolive_events_sent_total",
            "Event messages queued to WebSocket connections.",
            metrics.events_sent);
    counter(&t, "annolive_sent_bytes_total",
            "WebSocket payload bytes written to clients.", metrics.bytes_sent);
    counter(&t, "annolive_slow_consumer_closes_total",
            "Connections closed because their outbound queue was full.",
            metrics.slow_closes);
    counter(&t, "annolive_http_requests_total", "HTTP requests routed.",
            metrics.http_requests);
    head(&t, "annolive_encodes_total", "counter",
         "Messages encoded for sending, by wire encoding.");
    for (int e = 0; e < ENC_COUNT; e++)
        put(&t, "annolive_encodes_total{encoding=\"%s\"} %llu\n",
            buf_enc_name((enc_t)e), buf_encodes[e]);
    render_redis(&t);
    if (!t.failed && (b = buf_new(t.len)) != NULL)
        memcpy(b->data, t.data, t.len);
    free(t.data);
    return b;
}
