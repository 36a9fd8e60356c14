// Seeded randomized convergence test: 3 annolive instances on one Redis and 12
// clients spread over them, each with its own actor. The clients send random
// batches (some atomic) of creates, updates, deletes, restores and policy
// changes on a shared pool of ids. At random a client drops its connection,
// sometimes with a batch in flight, reconnects to any instance and resends the
// unacked batch with the same opseq.
//
// At the end, after a quiet period, the test checks that:
// - every watcher (one per instance, never reconnecting) saw the same events,
//   with seqs 1..N and no gap or repeat;
// - every ack with an applied or merged result has a seq, and the event with
//   that seq carries the same actor and opseq. No batch is in two events, and
//   a batch that applied nothing has no event;
// - a reference model that replays, in seq order, the applied part of each
//   acked batch agrees with the acks (vv, predicted conflicts) and with the
//   events, step by step;
// - the model's final state equals every client's replica, a fresh snapshot
//   from every instance and GET /v1/rooms/R/snapshot from every instance;
// - a few acked batches resent at the end get their first ack again and apply
//   nothing.
//
// The first test checks the log, the acks and the final states. The second
// checks each op result against the edit semantics, applied to any state of the
// room since the batch was sent. The third checks that results that wrote
// nothing were computed from the room at the seq before their batch.
//
// The seed fixes the random numbers each client draws. The batches also depend
// on what each client has seen, which depends on timing, so a seed repeats a
// run only approximately.
//
// Environment:
//   ANNOLIVE_SEED                 seed (an unsigned 32-bit integer); random when unset, printed always
//   ANNOLIVE_CONVERGENCE_OPS      batches to send over all clients (default 6000, about 10 s in
//                                 all on 2 cores); the long run is 100000 with a larger time below
//   ANNOLIVE_CONVERGENCE_TIME_MS  time after which clients stop starting new batches
//                                 (default 30000; 600000 for the long run)

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  TestEnv, httpSnapshot, sendBatch, sleep, waitUntil, withTimeout,
} from './harness.mjs';
import {
  Model, Replica, canonical, cloneJson, diffObjects, normaliseObject, resultDifferences,
} from './replica.mjs';

function envInt(name, fallback) {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${name}=${text} is not a non-negative integer`);
  return value;
}

const SEED = envInt('ANNOLIVE_SEED', Math.floor(Math.random() * 2 ** 32)) >>> 0;
const TOTAL_BATCHES = envInt('ANNOLIVE_CONVERGENCE_OPS', 6000);
const RUN_TIME_MS = envInt('ANNOLIVE_CONVERGENCE_TIME_MS', 30000);
const INSTANCES = 3;
const CLIENTS = 12;
const ROOM = 'convergence';
const POOL = Array.from({ length: 24 }, (_, i) => `o${String(i).padStart(2, '0')}`);
const KINDS = ['bbox', 'ellipse', 'polygon', 'points', 'tag'];
const LABELS = ['cat', 'dog', 'car', 'person'];
const ATTRS = {
  color: ['red', 'blue', 'green'],
  size: [1, 2, 3, 4, 5],
  truncated: [true, false],
};
const ATTR_KEYS = Object.keys(ATTRS);
const SEND_TIMEOUT_MS = 15000;
const MAX_DELIVERY_ATTEMPTS = 20;
const QUIET_MS = 500;

process.stderr.write(`convergence: ANNOLIVE_SEED=${SEED} ANNOLIVE_CONVERGENCE_OPS=${TOTAL_BATCHES}\n`);

const env = new TestEnv('convergence');
const instances = [];

before(async () => {
  await env.init();
  await env.startRedis();
  for (let i = 0; i < INSTANCES; i++) instances.push(await env.startInstance(`n${i}`));
}, { timeout: 60000 });

after(async () => {
  await env.cleanup();
}, { timeout: 120000 });

/** mulberry32: a small seeded generator of floats in [0, 1). */
function makeRng(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = (rng, list) => list[Math.floor(rng() * list.length)];
const coord = (rng, max) => Math.round(rng() * max * 100) / 100;

function geometryFor(rng, kind) {
  switch (kind) {
    case 'bbox':
    case 'ellipse':
      return [coord(rng, 500), coord(rng, 500), coord(rng, 100), coord(rng, 100)];
    case 'polygon':
      return [Array.from({ length: 6 }, () => coord(rng, 500))];
    case 'points':
      return Array.from({ length: 4 }, () => coord(rng, 500));
    default:
      return undefined;
  }
}

function randomAttrs(rng, min = 1) {
  const attrs = {};
  for (const key of ATTR_KEYS) if (rng() < 0.4) attrs[key] = pick(rng, ATTRS[key]);
  if (Object.keys(attrs).length < min) {
    const key = pick(rng, ATTR_KEYS);
    attrs[key] = pick(rng, ATTRS[key]);
  }
  return attrs;
}

function randomCreate(rng, id) {
  const kind = pick(rng, KINDS);
  const fields = { item: `img-${1 + Math.floor(rng() * 3)}`, label: pick(rng, LABELS) };
  const geometry = geometryFor(rng, kind);
  if (geometry !== undefined) fields.geometry = geometry;
  if (rng() < 0.5) fields.attrs = randomAttrs(rng);
  if (rng() < 0.3) fields.occluded = rng() < 0.5;
  if (rng() < 0.3) fields.frame = Math.floor(rng() * 100);
  return { op: { op: 'create', id, kind, fields }, meta: {} };
}

/** Returns a random update of object: a subset of label, geometry, occluded and attrs keys, sometimes an unset. */
function randomUpdate(rng, object) {
  const set = {};
  const unset = [];
  // The kind is the client's own guess: another client's create of the
  // same id may have won with another kind, which makes a geometry invalid.
  const meta = { kind: object.kind };
  const hasGeometry = geometryFor(rng, object.kind) !== undefined;
  if (rng() < 0.5) set.label = pick(rng, LABELS);
  if (hasGeometry && rng() < 0.4) set.geometry = geometryFor(rng, object.kind);
  if (rng() < 0.2) set.occluded = rng() < 0.5;
  if (rng() < 0.4) set.attrs = randomAttrs(rng);
  if (rng() < 0.25) {
    const candidates = ['occluded', 'label', ...ATTR_KEYS.map((k) => `attrs.${k}`)]
      .filter((name) => !(name in set) && !(name.startsWith('attrs.') && set.attrs && name.slice(6) in set.attrs));
    if (candidates.length > 0) unset.push(pick(rng, candidates));
  }
  if (Object.keys(set).length === 0 && unset.length === 0) set.label = pick(rng, LABELS);
  if (rng() < 0.03) {
    // A geometry that no kind of KINDS accepts: three numbers fit neither a box, an ellipse,
    // a polygon's rings nor x, y pairs, and a tag takes none. The kind the client sees may be
    // stale, so the geometry must be invalid whichever create won.
    set.geometry = [1, 1, -5];
    meta.invalid = true;
  }
  const op = { op: 'update', id: object.id, base: cloneJson(object.vv) };
  if (Object.keys(set).length > 0) op.set = set;
  if (unset.length > 0) op.unset = unset;
  return { op, meta };
}

function randomRestore(rng, tombstone) {
  const op = { op: 'restore', id: tombstone.id, base: cloneJson(tombstone.vv) };
  const fields = {};
  if (rng() < 0.7) fields.label = pick(rng, LABELS);
  const geometry = geometryFor(rng, tombstone.kind);
  if (geometry !== undefined && rng() < 0.7) fields.geometry = geometry;
  if (rng() < 0.3) fields.attrs = randomAttrs(rng);
  if (Object.keys(fields).length > 0) op.fields = fields;
  return { op, meta: {} };
}

/**
 * Picks one op on id from what the client's replica shows of it. hints are
 * the vv of ids that acks reported while the replica had no live object.
 */
function randomOp(rng, replica, id, actor, hints) {
  const live = replica.objects.get(id);
  const tombstone = replica.tombstones.get(id) ?? hints.get(id);
  const r = rng();
  if (live) {
    if (r < 0.72) return [randomUpdate(rng, live)];
    if (r < 0.9) return [{ op: { op: 'delete', id, base: cloneJson(live.vv) }, meta: {} }];
    if (r < 0.95) return [randomCreate(rng, id)];
    return [{ op: { op: 'restore', id, base: cloneJson(live.vv) }, meta: {} }];
  }
  if (tombstone) {
    if (r < 0.7) return [randomRestore(rng, tombstone)];
    if (r < 0.85) return [randomUpdate(rng, tombstone)];
    return [randomCreate(rng, id)];
  }
  if (r < 0.85) {
    const created = randomCreate(rng, id);
    if (rng() < 0.15) {
      // Create and update in one batch; the update's base is the create's vv.
      const object = { id, kind: created.op.kind, vv: { [actor]: 1 } };
      return [created, randomUpdate(rng, object)];
    }
    return [created];
  }
  return [{ op: { op: 'update', id, base: {}, set: { label: pick(rng, LABELS) } }, meta: {} }];
}

/** Returns a random batch: 1 to 4 ops on distinct ids, sometimes a settings op, sometimes atomic. */
function randomBatch(rng, replica, actor, hints) {
  const size = 1 + Math.floor(rng() * 4);
  const ops = [];
  const meta = [];
  const used = new Set();
  if (rng() < 0.03) {
    const room = replica.objects.get('@room');
    ops.push({ op: 'settings', base: cloneJson(room?.vv ?? {}), set: { policy: rng() < 0.5 ? 'lww' : 'reject' } });
    meta.push({});
  }
  for (let tries = 0; ops.length < size && tries < 20; tries++) {
    const id = pick(rng, POOL);
    if (used.has(id)) continue;
    used.add(id);
    for (const item of randomOp(rng, replica, id, actor, hints)) {
      ops.push(item.op);
      meta.push(item.meta);
    }
  }
  return { ops, meta, atomic: rng() < 0.2 };
}

const STATUSES = new Set(['applied', 'merged', 'conflict', 'rejected']);

/** Checks an ack against its batch on its own; returns the problems found. */
function ackProblems(batch, ack) {
  const where = `ack of ${batch.actor}/${batch.opseq}`;
  const problems = [];
  if (!Array.isArray(ack.results) || ack.results.length !== batch.ops.length) {
    return [`${where}: ${ack.results?.length} results for ${batch.ops.length} ops: ${JSON.stringify(ack)}`];
  }
  const appliedAny = ack.results.some((r) => r.status === 'applied' || r.status === 'merged');
  const failedAny = ack.results.some((r) => r.status !== 'applied');
  if (appliedAny !== (typeof ack.seq === 'number')) {
    problems.push(`${where}: seq ${ack.seq} while ${appliedAny ? 'some op applied' : 'no op applied'}: ${JSON.stringify(ack)}`);
  }
  batch.ops.forEach((op, i) => {
    const result = ack.results[i];
    const id = op.op === 'settings' ? '@room' : op.id;
    if (result.id !== id) problems.push(`${where}: result ${i} id ${result.id}, op id ${id}`);
    if (!STATUSES.has(result.status)) problems.push(`${where}: result ${i} status ${result.status}`);
    if (result.status === 'rejected' && typeof result.message !== 'string') {
      problems.push(`${where}: result ${i} is rejected without a message: ${JSON.stringify(result)}`);
    }
    if (batch.meta[i].invalid && result.status === 'applied') {
      problems.push(`${where}: op ${i} with an invalid geometry was applied in full: ${JSON.stringify(op)}`);
    }
    if (result.reason === 'atomic' && !batch.atomic) problems.push(`${where}: reason atomic in a batch that is not atomic`);
  });
  if (batch.atomic && failedAny) {
    if (appliedAny) problems.push(`${where}: an atomic batch applied in part: ${JSON.stringify(ack)}`);
    for (const [i, result] of ack.results.entries()) {
      if (result.status === 'applied') problems.push(`${where}: op ${i} of a failed atomic batch is applied`);
    }
  }
  return problems;
}

/** One client: its actor, its sessions, its batches and their acks. */
class Worker {
  constructor(index, rng) {
    this.index = index;
    this.rng = rng;
    this.actor = `c${index}`;
    this.nextOpseq = 1;
    this.batches = [];
    this.client = null;
    this.replica = null;
    this.instance = instances[index % instances.length];
    this.sessions = 0;
    this.problems = [];
    this.stats = { reconnects: 0, resends: 0, inFlightCloses: 0, unavailable: 0 };
    this.hints = new Map();
  }

  problem(text) {
    if (this.problems.length < 50) this.problems.push(`${this.actor}: ${text}`);
  }

  async connect() {
    this.sessions += 1;
    const replica = new Replica(`${this.actor} session ${this.sessions} on ${this.instance.name}`);
    const client = await env.client(this.instance, this.actor, { timeoutMs: SEND_TIMEOUT_MS });
    client.on('snapshot', (message) => {
      if (message.room === ROOM) replica.reset(message);
    });
    client.on('event', (message) => {
      if (message.room === ROOM) replica.applyEvent(message);
    });
    client.on('error', (message) => {
      if (message.opseq === undefined) this.problem(`error message without opseq: ${JSON.stringify(message)}`);
    });
    this.client = client;
    this.replica = replica;
    await client.join(ROOM);
  }

  async reconnect() {
    if (this.client) {
      await withTimeout(this.client.close(), 5000, `close of ${this.actor}`);
      this.problems.push(...this.replica.problems);
    }
    this.instance = pick(this.rng, instances);
    this.stats.reconnects += 1;
    await this.connect();
  }

  /**
   * Sends batch until it has an ack. With closeMode 'now' or 'later', closes the
   * connection right after the first send, or a few milliseconds after it.
   */
  async deliver(batch, closeMode) {
    let outcome = sendBatch(this.client, ROOM, batch.ops, { opseq: batch.opseq, atomic: batch.atomic })
      .then((ack) => ({ ack }), (err) => ({ err }));
    batch.sends += 1;
    if (closeMode) {
      this.stats.inFlightCloses += 1;
      if (closeMode === 'later') await sleep(Math.floor(this.rng() * 8));
      await withTimeout(this.client.close(), 5000, `close of ${this.actor}`);
    }
    for (let attempt = 1; ; attempt++) {
      const { ack, err } = await outcome;
      if (ack) {
        if (!this.client.socket) await this.reconnect();
        return ack;
      }
      if (attempt >= MAX_DELIVERY_ATTEMPTS) throw new Error(`no ack for ${this.actor}/${batch.opseq} after ${attempt} sends: ${err.message}`);
      if (err.code === 'closed' || err.code === 'not_connected') {
        await this.reconnect();
      } else if (err.code === 'unavailable') {
        this.stats.unavailable += 1;
        await sleep(10 * attempt);
      } else {
        throw new Error(`batch ${this.actor}/${batch.opseq} ${JSON.stringify(batch.ops)}: ${err.code}: ${err.message}`);
      }
      this.stats.resends += 1;
      batch.sends += 1;
      outcome = sendBatch(this.client, ROOM, batch.ops, { opseq: batch.opseq, atomic: batch.atomic })
        .then((a) => ({ ack: a }), (e) => ({ err: e }));
    }
  }

  /**
   * Keeps the vv that an ack reports for an id the replica has no live object
   * for, as a client does that retries on the fresh vv. Without it, tombstones
   * that a client did not see deleted would never be restored.
   */
  learn(batch) {
    batch.ops.forEach((op, i) => {
      const result = batch.ack.results[i];
      if (op.id === undefined || !result?.vv || this.replica.objects.has(op.id)) return;
      // The kind of a create that conflicted may differ from the object's, so it is not kept.
      const kind = this.replica.tombstones.get(op.id)?.kind ?? this.hints.get(op.id)?.kind;
      this.hints.set(op.id, { id: op.id, vv: result.vv, kind });
    });
  }

  async run(count, deadline) {
    await this.connect();
    for (let i = 0; i < count && Date.now() < deadline; i++) {
      const r = this.rng();
      if (r < 0.02) await this.reconnect();
      let closeMode = null;
      if (r > 0.97) closeMode = 'now';
      else if (r > 0.94) closeMode = 'later';
      const { ops, meta, atomic } = randomBatch(this.rng, this.replica, this.actor, this.hints);
      if (ops.length === 0) continue;
      const batch = {
        actor: this.actor, opseq: this.nextOpseq, ops, meta, atomic, ack: null, sends: 0, sentAtSeq: this.replica.seq,
      };
      this.nextOpseq += this.rng() < 0.1 ? 2 + Math.floor(this.rng() * 3) : 1;
      this.batches.push(batch);
      batch.ack = await this.deliver(batch, closeMode);
      this.problems.push(...ackProblems(batch, batch.ack));
      this.learn(batch);
      if (this.rng() < 0.3) await sleep(Math.floor(this.rng() * 5));
    }
  }
}

/** Returns a member that joins once and keeps every event it receives. */
async function watcher(instance, name) {
  const client = await env.client(instance, name);
  const replica = new Replica(`watcher ${name} on ${instance.name}`);
  const events = [];
  client.on('snapshot', (message) => {
    if (message.room === ROOM) replica.reset(message);
  });
  client.on('event', (message) => {
    if (message.room !== ROOM) return;
    events.push(message);
    replica.applyEvent(message);
  });
  const snapshot = await client.join(ROOM);
  return { client, replica, events, snapshot, name };
}

/** Lists up to 20 problems of a list, with the seed, for an assertion message. */
function report(title, problems) {
  const shown = problems.slice(0, 20);
  const more = problems.length > shown.length ? `\n... and ${problems.length - shown.length} more` : '';
  return `${title} (ANNOLIVE_SEED=${SEED}):\n${shown.join('\n')}${more}`;
}

/**
 * Replays the event log through the reference model and a replica side by
 * side. Returns {model, problems, resultProblems, staleResults}:
 * - problems: events, acks and the room state disagree;
 * - resultProblems: op results that no reading of the room since the batch was sent explains;
 * - staleResults: op results that match the room as of a seq before seq - 1 only.
 */
function replayLog(log, batchByKey, stats) {
  const model = new Model();
  const stepper = new Replica('replay of the watcher log');
  stepper.reset({ seq: 0, objects: [] });
  const problems = [];
  const resultProblems = [];
  const staleResults = [];
  for (const event of log) {
    const batch = batchByKey.get(`${event.actor}\n${event.opseq}`);
    if (!batch?.ack) continue;
    model.beginBatch();
    const where = `seq ${event.seq} (${event.actor}/${event.opseq}${batch.atomic ? ', atomic' : ''}, policy ${model.policy})`;
    // The batch was computed after its first send, when its client had seen sentAtSeq.
    const low = Math.min(batch.sentAtSeq, event.seq - 1);
    const policies = model.policiesBetween(low, event.seq - 1);
    const appliedOps = [];
    batch.ops.forEach((op, i) => {
      const result = batch.ack.results[i];
      const id = op.op === 'settings' ? '@room' : op.id;
      const at = `${where} op ${i} ${canonical(op)} -> ${canonical(result)}`;
      const current = model.get(id);
      const fresh = resultDifferences(op, result, current, model.policy, batch.meta[i], batch.actor);
      if (fresh.length > 0) {
        // A result that wrote nothing may come from an older read of the object,
        // but one that wrote must match the object at seq - 1. The policy may be
        // any in effect since the batch was sent.
        const wrote = result.status === 'applied' || result.status === 'merged';
        const states = wrote || model.touched.has(id) ? [current] : model.statesBetween(id, low, event.seq - 1);
        const matches = states.some((state) => policies.some((policy) =>
          resultDifferences(op, result, state, policy, batch.meta[i], batch.actor).length === 0));
        const text = `${at}: ${fresh.join('; ')}`;
        if (!matches) resultProblems.push(`${text} (and no earlier state since seq ${low} matches)`);
        else staleResults.push(`${text}; it matches the room as of an earlier seq (sent at seq ${batch.sentAtSeq})`);
      }
      model.applyResult(op, batch.actor, result);
      if (result.status === 'applied' || result.status === 'merged') {
        appliedOps.push({ op, result, id });
        if (canonical(result.vv) !== canonical(model.get(id)?.vv)) {
          problems.push(`${at}: vv after the op is ${canonical(model.get(id)?.vv)} in the model`);
        }
      }
      const key = `${op.op} ${result.status}${result.reason ? ` ${result.reason}` : ''}`;
      stats[key] = (stats[key] ?? 0) + 1;
    });
    model.commit(event.seq);
    const eventOps = event.ops ?? [];
    if (eventOps.length !== appliedOps.length) {
      problems.push(`${where}: the event has ${eventOps.length} ops, the ack ${appliedOps.length} applied: ${canonical(event)}`);
    } else {
      appliedOps.forEach(({ op, result, id }, k) => {
        const eventOp = eventOps[k];
        if (eventOp.op !== op.op || (eventOp.id ?? '@room') !== id || canonical(eventOp.vv) !== canonical(result.vv)) {
          problems.push(`${where}: event op ${k} ${canonical(eventOp)} does not match applied op ${canonical(op)} with vv ${canonical(result.vv)}`);
        }
      });
    }
    stepper.applyEvent(event);
    for (const { id } of appliedOps) {
      const fromEvents = stepper.objects.get(id);
      const fromModel = model.get(id);
      const expected = fromModel && !fromModel.deleted ? canonical(normaliseObject(fromModel)) : 'absent';
      const actual = fromEvents ? canonical(normaliseObject(fromEvents)) : 'absent';
      if (expected !== actual) {
        problems.push(`${where}: object ${id} built from the events is ${actual}, from the ops and acks ${expected}`);
      }
    }
    if (problems.length > 200) break;
  }
  problems.push(...stepper.problems);
  return { model, problems, resultProblems, staleResults };
}

/** Results of the random run, for the tests after the first. */
let run = null;

test('random edits converge everywhere', { timeout: RUN_TIME_MS + 150000 }, env.wrap(async (t) => {
  t.diagnostic(`ANNOLIVE_SEED=${SEED} ANNOLIVE_CONVERGENCE_OPS=${TOTAL_BATCHES}`);
  const started = Date.now();
  const watchers = [];
  for (const [i, instance] of instances.entries()) watchers.push(await watcher(instance, `watcher-${i}`));
  for (const w of watchers) assert.equal(w.snapshot.seq, 0, `${w.name} joins an empty room`);

  const master = makeRng(SEED);
  const workers = Array.from({ length: CLIENTS }, (_, i) => new Worker(i, makeRng(Math.floor(master() * 2 ** 32))));
  const perWorker = Math.ceil(TOTAL_BATCHES / CLIENTS);
  const deadline = Date.now() + RUN_TIME_MS;
  const outcomes = await Promise.allSettled(workers.map((w) => w.run(perWorker, deadline)));
  const failures = outcomes.flatMap((o, i) => (o.status === 'rejected' ? [`c${i}: ${o.reason?.stack ?? o.reason}`] : []));
  assert.deepEqual(failures, [], report('clients that stopped on an error', failures));

  const batches = workers.flatMap((w) => w.batches);
  const lastSeq = Math.max(0, ...batches.map((b) => b.ack.seq ?? 0));
  t.diagnostic(`${batches.length} batches, last seq ${lastSeq}, ${Date.now() - started} ms`);

  // Quiet period: every watcher and every client reaches the last seq, and nothing follows.
  const members = [...watchers.map((w) => w.replica), ...workers.map((w) => w.replica)];
  await waitUntil(`every member to reach seq ${lastSeq}`, () => members.every((r) => r.seq >= lastSeq),
    { timeoutMs: 20000, intervalMs: 50 }).catch((err) => {
    const behind = members.filter((r) => r.seq < lastSeq).map((r) => `${r.name} at ${r.seq}`);
    throw new Error(`${err.message}; behind: ${behind.join(', ')} (ANNOLIVE_SEED=${SEED})`);
  });
  await sleep(QUIET_MS);
  for (const r of members) assert.equal(r.seq, lastSeq, `${r.name} got no event after the last acked seq`);

  const problems = [];
  for (const w of workers) problems.push(...w.problems, ...w.replica.problems);
  for (const w of watchers) problems.push(...w.replica.problems);
  assert.deepEqual(problems, [], report('problems seen by clients while running', problems));

  // Every watcher saw the same log: seqs 1..lastSeq in order.
  const log = watchers[0].events;
  const logKeys = log.map((e) => `${e.seq} ${e.actor}/${e.opseq}`);
  assert.deepEqual(log.map((e) => e.seq), Array.from({ length: lastSeq }, (_, i) => i + 1),
    `event seqs at ${watchers[0].name} are 1..${lastSeq} (ANNOLIVE_SEED=${SEED})`);
  for (const w of watchers.slice(1)) {
    assert.deepEqual(w.events.map((e) => `${e.seq} ${e.actor}/${e.opseq}`), logKeys,
      `events at ${w.name} equal those at ${watchers[0].name} (ANNOLIVE_SEED=${SEED})`);
  }

  // Acks and events match one to one.
  const batchByKey = new Map(batches.map((b) => [`${b.actor}\n${b.opseq}`, b]));
  const seen = new Map();
  const logProblems = [];
  for (const event of log) {
    const key = `${event.actor}\n${event.opseq}`;
    if (seen.has(key)) logProblems.push(`batch ${event.actor}/${event.opseq} is in events ${seen.get(key)} and ${event.seq}`);
    seen.set(key, event.seq);
    const batch = batchByKey.get(key);
    if (!batch) logProblems.push(`event ${event.seq} names ${event.actor}/${event.opseq}, which no client sent`);
    else if (batch.ack.seq !== event.seq) logProblems.push(`event ${event.seq} is ${event.actor}/${event.opseq}, whose ack has seq ${batch.ack.seq}`);
  }
  for (const batch of batches) {
    if (typeof batch.ack.seq === 'number') {
      const event = log[batch.ack.seq - 1];
      if (!event || event.actor !== batch.actor || event.opseq !== batch.opseq) {
        logProblems.push(`ack of ${batch.actor}/${batch.opseq} has seq ${batch.ack.seq}, whose event is ${event ? `${event.actor}/${event.opseq}` : 'missing'}`);
      }
    } else if (seen.has(`${batch.actor}\n${batch.opseq}`)) {
      logProblems.push(`batch ${batch.actor}/${batch.opseq} applied nothing but has event ${seen.get(`${batch.actor}\n${batch.opseq}`)}`);
    }
  }
  assert.deepEqual(logProblems, [], report('acks and events do not match one to one', logProblems));

  // The reference model replays the log and checks acks and events step by step.
  const stats = {};
  const { model, problems: replayProblems, resultProblems, staleResults } = replayLog(log, batchByKey, stats);
  run = { resultProblems, staleResults };
  const workerStats = workers.reduce((sum, w) => {
    for (const [k, v] of Object.entries(w.stats)) sum[k] = (sum[k] ?? 0) + v;
    return sum;
  }, {});
  t.diagnostic(`results in the log: ${JSON.stringify(stats)}`);
  t.diagnostic(`clients: ${JSON.stringify(workerStats)}, atomic batches ${batches.filter((b) => b.atomic).length}`);
  if (replayProblems.length + resultProblems.length + staleResults.length > 0) {
    env.failed = true;
    const trace = path.join(env.dir, 'convergence-trace.json');
    fs.writeFileSync(trace, JSON.stringify({ seed: SEED, log, batches }, null, 1));
    const where = `the event log and every batch with its ack are in ${trace}`;
    for (const list of [replayProblems, resultProblems, staleResults]) if (list.length > 0) list.push(where);
  }
  assert.deepEqual(replayProblems, [], report('the replay of the log disagrees with acks or events', replayProblems));

  // A few acked batches, resent from a new connection of their actor, get their first ack and apply nothing.
  // The server keeps the acks of each actor's last 256 batches, so only those are resent.
  const resendRng = makeRng(SEED ^ 0x5bd1e995);
  const recent = workers.flatMap((w) => w.batches.slice(-256));
  const resent = [];
  for (let i = 0; i < 8 && recent.length > 0; i++) {
    const batch = pick(resendRng, recent);
    if (resent.includes(batch)) continue;
    resent.push(batch);
    const instance = pick(resendRng, instances);
    const client = await env.client(instance, batch.actor);
    await client.join(ROOM);
    const again = await sendBatch(client, ROOM, batch.ops, { opseq: batch.opseq, atomic: batch.atomic });
    assert.deepEqual(again, batch.ack,
      `resend of ${batch.actor}/${batch.opseq} through ${instance.name} gets the first ack (ANNOLIVE_SEED=${SEED})`);
    await client.close();
  }
  const markerClient = await env.client(instances[0], 'marker');
  await markerClient.join(ROOM);
  const markerAck = await markerClient.send(ROOM, [{ op: 'create', id: 'marker', kind: 'tag' }]);
  assert.equal(markerAck.seq, lastSeq + 1, `the marker after the resends gets seq ${lastSeq + 1}: ${JSON.stringify(markerAck)}`);
  model.applyResult({ op: 'create', id: 'marker', kind: 'tag' }, 'marker', markerAck.results[0]);
  await waitUntil('every member to see the marker', () => members.every((r) => r.seq >= lastSeq + 1),
    { timeoutMs: 10000 });

  // Final state: the model, every replica, and fresh snapshots from every instance.
  const expected = model.list();
  const views = [];
  for (const w of watchers) views.push([w.replica.name, w.replica.list()]);
  for (const w of workers) views.push([`replica of ${w.replica.name}`, w.replica.list()]);
  for (const instance of instances) {
    const client = await env.client(instance, `final-${instance.name}`);
    const snapshot = await client.join(ROOM);
    assert.equal(snapshot.seq, lastSeq + 1, `seq of the snapshot from ${instance.name}`);
    views.push([`WebSocket snapshot from ${instance.name}`, snapshot.objects]);
    await client.close();
    const http = await httpSnapshot(instance, ROOM);
    assert.equal(http.seq, lastSeq + 1, `seq of GET snapshot from ${instance.name}`);
    views.push([`GET snapshot from ${instance.name}`, http.objects]);
  }
  const differences = [];
  for (const [name, objects] of views) {
    const diff = diffObjects(objects, expected, name, 'the model');
    if (diff) differences.push(`${name} differs from the model:\n${diff}`);
  }
  assert.deepEqual(differences, [], report('final states differ', differences));
  t.diagnostic(`${expected.length} live objects at the end; ${Date.now() - started} ms in all`);
}));

test('op results follow edit semantics', { timeout: 10000 }, () => {
  assert.ok(run, 'the random run did not get as far as the replay of its log; see the first test');
  assert.deepEqual(run.resultProblems, [], report(
    'op results that the edit semantics of PROTOCOL.md do not give on any state of the room since the batch was sent',
    run.resultProblems));
});

test('conflict results read seq - 1', { timeout: 10000 }, () => {
  assert.ok(run, 'the random run did not get as far as the replay of its log; see the test before');
  assert.deepEqual(run.staleResults, [], report(
    'results computed from the room as of a seq older than the one before their batch ' +
    '(PROTOCOL.md: conflicts carry the current value; vv is the object vv as the server holds it)', run.staleResults));
});
