/**
 * Reconnect delays: exponential backoff with full jitter. The cap of attempt n (0 for the first
 * retry) is min(maxMs, minMs * 2^n), and the delay is a uniform random value in [0, cap], so
 * clients that lost the same server spread their reconnects over the whole window.
 */

export const DEFAULT_MIN_DELAY_MS = 250;
export const DEFAULT_MAX_DELAY_MS = 30000;

/**
 * Returns the cap of the delay before retry number attempt.
 * @param {number} attempt 0 for the first retry after a failure.
 * @param {{minMs?: number, maxMs?: number}} [limits]
 */
export function backoffCap(attempt, { minMs = DEFAULT_MIN_DELAY_MS, maxMs = DEFAULT_MAX_DELAY_MS } = {}) {
  // 2^n overflows to Infinity for large n, which Math.min turns into maxMs.
  return Math.min(maxMs, minMs * 2 ** Math.max(0, attempt));
}

/**
 * Returns the delay before retry number attempt: random() * cap, in [0, cap].
 * @param {number} attempt
 * @param {{minMs?: number, maxMs?: number, random?: () => number}} [options] random returns a
 *   number in [0, 1); Math.random by default.
 */
export function backoffDelay(attempt, { random = Math.random, ...limits } = {}) {
  return Math.floor(random() * backoffCap(attempt, limits));
}

/**
 * Counts failed attempts and hands out the next delay. reset() after a success starts the
 * caps from minMs again.
 */
export class Backoff {
  /**
   * @param {{minMs?: number, maxMs?: number, random?: () => number}} [options]
   * @throws {RangeError} unless 0 <= minMs <= maxMs.
   */
  constructor(options = {}) {
    const { minMs = DEFAULT_MIN_DELAY_MS, maxMs = DEFAULT_MAX_DELAY_MS } = options;
    if (!(Number.isFinite(minMs) && Number.isFinite(maxMs) && minMs >= 0 && minMs <= maxMs)) {
      throw new RangeError(`invalid backoff limits: need 0 <= minMs (${minMs}) <= maxMs (${maxMs})`);
    }
    this.options = { ...options, minMs, maxMs };
    this.attempt = 0;
  }

  /** Returns the delay before the next retry and counts the attempt. */
  next() {
    return backoffDelay(this.attempt++, this.options);
  }

  /** Returns the cap that the next call of next() draws from. */
  get cap() {
    return backoffCap(this.attempt, this.options);
  }

  reset() {
    this.attempt = 0;
  }
}
