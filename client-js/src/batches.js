/**
 * Splitting of op lists into batches that fit the server's limits, and tallying of acks.
 */

import { stringify } from './json.js';
import { encodeMessage } from './msgpack.js';

/** Kinds that annotations refer to; import sends them before the annotations. */
export const REFERENCED_KINDS = new Set(['tag', 'category', 'item']);

/**
 * Message sizes per encoding, as upper bounds. `envelope` is the size of an ops message around
 * its ops, with the longest opseq and room. `op` is the size that one more op adds.
 */
const SIZES = {
  json: {
    envelope: (message) => Buffer.byteLength(stringify(message)),
    // One more byte for the comma between ops.
    op: (op) => Buffer.byteLength(stringify(op)) + 1,
  },
  msgpack: {
    // The header of the ops array grows from 1 byte (fixarray) to at most 5 (array 32).
    envelope: (message) => encodeMessage(message).length + 4,
    op: (op) => encodeMessage(op).length,
  },
};

/**
 * Splits ops into batches of at most maxOps ops and at most maxBytes bytes per message.
 * @param {object[]} ops
 * @param {{maxOps: number, maxBytes: number, actor: string, encoding?: 'json' | 'msgpack'}} limits
 *   encoding is the wire encoding the sizes are measured in; json by default.
 * @returns {{batches: object[][], oversized: {op: object, bytes: number}[]}} oversized lists
 *   the ops that exceed maxBytes on their own; they are in no batch.
 * @throws {RangeError} with the msgpack encoding, for an integer it cannot carry.
 */
export function splitBatches(ops, { maxOps, maxBytes, actor, encoding = 'json' }) {
  const sizes = SIZES[encoding];
  if (!sizes) throw new TypeError(`invalid encoding ${JSON.stringify(encoding)}: use json or msgpack`);
  const envelope = sizes.envelope({ type: 'ops', room: 'r'.repeat(128), actor, opseq: Number.MAX_SAFE_INTEGER, ops: [] });
  const batches = [];
  const oversized = [];
  let batch = [];
  let bytes = envelope;
  for (const op of ops) {
    const opBytes = sizes.op(op);
    if (envelope + opBytes > maxBytes) {
      oversized.push({ op, bytes: envelope + opBytes });
      continue;
    }
    if (batch.length >= maxOps || bytes + opBytes > maxBytes) {
      batches.push(batch);
      batch = [];
      bytes = envelope;
    }
    batch.push(op);
    bytes += opBytes;
  }
  if (batch.length > 0) batches.push(batch);
  return { batches, oversized };
}

/** Counts op outcomes by status (`applied`, `conflict:exists`, `rejected:invalid`, ...). */
export class Tally {
  constructor() {
    /** @type {Map<string, number>} */
    this.counts = new Map();
    /** Ops that failed, with their id, outcome and message. */
    this.failures = [];
  }

  add(outcome, count = 1) {
    this.counts.set(outcome, (this.counts.get(outcome) ?? 0) + count);
  }

  /** Adds the results of an ack for the ops of the batch it acknowledges. */
  addAck(ops, ack) {
    const results = Array.isArray(ack.results) ? ack.results : [];
    ops.forEach((op, i) => {
      const result = results[i];
      if (!result) {
        this.addFailure(op.id, 'missing_result', `the ack of opseq ${ack.opseq} has no result for this op`);
        return;
      }
      const outcome = result.reason ? `${result.status}:${result.reason}` : String(result.status);
      if (result.status === 'applied') {
        this.add(outcome);
      } else {
        this.addFailure(op.id, outcome, result.message ?? '');
      }
    });
  }

  addFailure(id, outcome, message) {
    this.add(outcome);
    this.failures.push({ id, outcome, message });
  }

  /** Returns the counts as `applied 10, conflict:exists 2`, in a fixed order. */
  summary() {
    const entries = [...this.counts.entries()].sort(([a], [b]) => a.localeCompare(b));
    return entries.map(([outcome, count]) => `${outcome} ${count}`).join(', ') || 'no ops';
  }
}
