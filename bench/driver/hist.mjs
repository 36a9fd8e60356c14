// A log-bucket latency histogram in the manner of HdrHistogram: values in
// microseconds, 64 linear sub-buckets per power of two, so every recorded
// value is kept within about 1.6 % and memory stays constant.
const SUB = 64;
const BUCKETS = 26 * SUB; // values up to 2^31 - 1

// Bucket b contains the values whose top 7 bits are b % 64 + 64 once shifted
// right by b / 64 - 1. Values below 128 have a bucket each.
function bucketOf(v) {
  const msb = 31 - Math.clz32(v | 1);
  const shift = Math.max(0, msb - 6);
  return shift * SUB + (v >>> shift);
}

// Returns the middle of the values that bucket b contains.
function valueOf(b) {
  if (b < 2 * SUB) return b;
  const shift = Math.floor(b / SUB) - 1;
  const low = (b - shift * SUB) * 2 ** shift;
  return low + 2 ** (shift - 1);
}

export class Histogram {
  constructor() {
    this.counts = new Float64Array(BUCKETS);
    this.n = 0;
    this.max = 0;
    this.sum = 0;
  }

  /** Records a value in microseconds; negative values count as 0. */
  record(us) {
    const v = Math.min(Math.max(0, Math.round(us)), 0x7fffffff);
    this.counts[bucketOf(v)]++;
    this.n++;
    this.sum += v;
    if (v > this.max) this.max = v;
  }

  /** Returns the value at quantile q (0 to 1) in microseconds, or 0 when empty. */
  quantile(q) {
    if (this.n === 0) return 0;
    const want = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.counts[b];
      if (seen >= want) return Math.min(valueOf(b), this.max);
    }
    return this.max;
  }

  /** p50, p90, p99, p99.9 and max in milliseconds. */
  summary() {
    const ms = (us) => Math.round(us) / 1000;
    return {
      count: this.n,
      p50: ms(this.quantile(0.5)),
      p90: ms(this.quantile(0.9)),
      p99: ms(this.quantile(0.99)),
      p999: ms(this.quantile(0.999)),
      max: ms(this.max),
    };
  }
}
