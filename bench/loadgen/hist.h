/*
 * A log-bucket latency histogram in the manner of HdrHistogram: values in
 * microseconds, 64 linear sub-buckets per power of two, so a recorded value
 * is kept within about 1.6 % in constant memory. Not thread-safe.
 */
#ifndef LG_HIST_H
#define LG_HIST_H

#include <stdint.h>

#define HIST_BUCKETS (26 * 64)

typedef struct {
    uint64_t counts[HIST_BUCKETS];
    uint64_t n;
    uint64_t max;
} hist_t;

/* Records a value in microseconds; larger than 2^31 - 1 counts as that. */
void hist_record(hist_t *h, uint64_t us);

/* Returns the value at quantile q (0 to 1) in microseconds, 0 when empty. */
uint64_t hist_quantile(const hist_t *h, double q);

#endif
