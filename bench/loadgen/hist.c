/*
 * The histogram of hist.h. Bucket b contains the values whose top seven
 * bits are b % 64 + 64 after a right shift by b / 64 - 1. Values below 128
 * have a bucket each.
 */
#include "hist.h"

static unsigned bucket_of(uint64_t v)
{
    unsigned msb = 63 - (unsigned)__builtin_clzll(v | 1);
    unsigned shift = msb > 6 ? msb - 6 : 0;

    return shift * 64 + (unsigned)(v >> shift);
}

/* The middle of the values that bucket b holds. */
static uint64_t value_of(unsigned b)
{
    unsigned shift;

    if (b < 128)
        return b;
    shift = b / 64 - 1;
    return ((uint64_t)(b - shift * 64) << shift) + (1ull << (shift - 1));
}

void hist_record(hist_t *h, uint64_t us)
{
    if (us > 0x7fffffff)
        us = 0x7fffffff;
    h->counts[bucket_of(us)]++;
    h->n++;
    if (us > h->max)
        h->max = us;
}

uint64_t hist_quantile(const hist_t *h, double q)
{
    uint64_t want, seen = 0;
    unsigned b;

    if (h->n == 0)
        return 0;
    want = (uint64_t)(q * (double)h->n + 0.999999);
    if (want < 1)
        want = 1;
    for (b = 0; b < HIST_BUCKETS; b++) {
        seen += h->counts[b];
        if (seen >= want)
            return value_of(b) < h->max ? value_of(b) : h->max;
    }
    return h->max;
}
