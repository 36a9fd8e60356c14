/*
 * Counters of the instance and their Prometheus text exposition for
 * /metrics. The counters are plain globals bumped on the loop thread; this
 * module does no I/O.
 */
#ifndef AL_METRICS_H
#define AL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Results of ops, as acks report them, in the order of res_status_t. */
typedef enum {
    METRICS_APPLIED,
    METRICS_MERGED,
    METRICS_CONFLICT,
    METRICS_REJECTED,
    METRICS_RESULTS,
} metrics_result_t;

/* Where a batch came from. */
typedef enum { METRICS_WS, METRICS_HTTP, METRICS_SOURCES } metrics_source_t;

#define METRICS_LATENCY_BUCKETS 12

typedef struct {
    unsigned long long ops[METRICS_SOURCES][METRICS_RESULTS];
    unsigned long long conflicts; /* fields reported in "conflicts" */
    unsigned long long batches[METRICS_SOURCES];
    unsigned long long events_sent;   /* event messages queued to clients */
    unsigned long long bytes_sent;    /* WebSocket payload bytes written */
    unsigned long long slow_closes;   /* closes for a full outbound queue */
    unsigned long long http_requests; /* HTTP requests routed */
    /* Redis command latency: counts per bucket (not cumulative), the
     * number over the last bound, their count and sum in seconds. */
    unsigned long long redis_buckets[METRICS_LATENCY_BUCKETS + 1];
    unsigned long long redis_count;
    double redis_sum_s;
} metrics_t;

extern metrics_t metrics;

/* Records one Redis command that took us microseconds. */
void metrics_observe_redis(uint64_t us);

/* Returns a monotonic clock in microseconds, for latency measurements. */
uint64_t metrics_now_us(void);

/* Values that other modules own, read when /metrics is served. */
typedef struct {
    size_t connections;
    size_t rooms;
    size_t members;
    size_t batches_in_flight;
    int redis_up;
} metrics_gauges_t;

/* Renders every metric as Prometheus text (format 0.0.4). Returns a new
 * buffer or NULL when out of memory. */
buf_t *metrics_render(const metrics_gauges_t *g);

#endif
