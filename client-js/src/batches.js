/**
 * Splitting of op lists into batches that fit the server's limits, and tallying of acks.
 */

import { stringify } from './json.js';

/** Kinds that annotations refer to; import sends them before the annotations. */
export const REFERENCED_KINDS = new Set(['tag', 'category', 'item']);

/** Bytes of an ops message around its ops, with the longest opseq and room; an upper bound. */
function envelopeBytes(actor) {
  const message = { type: 'ops', room: 'r'.repeat(128), actor, opseq: Number.MAX_SAFE_INTEGER, ops: [] };
  return Buffer.byteLength(stringify(message));
}

/**
 * Splits ops into batches of at most maxOps ops and at most maxBytes bytes per message.
 * @param {object[]} ops
 * @param {{maxOps: number, maxBytes: number, actor: string}} limits
 * @returns {{batches: object[][], oversized: {op: object, bytes: number}[]}} oversized lists
 *   the ops that exceed maxBytes on their own; they are in no batch.
 */
export function splitBatches(ops, { maxOps, maxBytes, actor }) {
  const envelope = envelopeBytes(actor);
  const batches = [];
  const oversized = [];
  let batch = [];
  let bytes = envelope;
  for (const op of ops) {
    // One more byte for the comma between ops.
    const opBytes = Buffer.byteLength(stringify(op)) + 1;
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
