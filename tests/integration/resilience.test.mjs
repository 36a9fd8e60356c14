// Resilience: clients that lose their connection and come back, instances that
// crash or stop, Redis that goes away for a few seconds, and the keepalive and
// room limits of a connection.
//
// A Member below is one client replica of one room: it joins, keeps a Replica
// of the room from the snapshot and the events, and after a lost connection
// joins again with `since` = the seq of its copy. A Member that writes sends
// one batch at a time. It resends a batch without an ack (lost connection,
// `unavailable`, no reply) under the same actor and opseq until it is acked.
//
// Batch k of actor W creates the object `W.k` with `{n: k}` and updates the
// object `W.(k-1)` with `{next: k}`. Each object is written once by its create
// and once by the next batch's update, so in the final snapshot `W.k` has
// `vv {W: 2}` (`{W: 1}` for the last one). A batch applied twice would raise
// the vv to 3, and a missing batch would leave its object out.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  AnnoliveInstance, REPO, TestEnv, fetchJson, httpSnapshot, redisCommand, sleep, waitUntil, withTimeout,
} from './harness.mjs';
import { Replica, diffObjects } from './replica.mjs';

const require = createRequire(path.join(REPO, 'client-js', 'package.json'));
const WebSocket = require('ws');

const SUBPROTOCOL = 'annolive.v1.json';
const REPLY_TIMEOUT_MS = 10000;

const env = new TestEnv('resilience');

/** The instances every test may use; tests that crash or stop an instance start their own. */
let a;
let b;

/** WebSocket peers and raw sockets of this file, closed in after(). */
const livePeers = new Set();
const rawSockets = new Set();

before(async () => {
  await env.init();
  await env.startRedis();
  a = await env.startInstance('a');
  b = await env.startInstance('b');
}, { timeout: 60000 });

after(async () => {
  for (const peer of livePeers) peer.terminate();
  for (const socket of rawSockets) socket.destroy();
  await env.cleanup();
}, { timeout: 180000 });

/**
 * Starts an instance with extra options. It joins env's instances (and so
 * cleanup()) only once it has started, so an option the server rejects fails
 * the test that uses it and not the cleanup of the file.
 */
async function startDedicated(name, args = []) {
  const instance = new AnnoliveInstance(env, name, { redisUrl: env.redis.url, args });
  try {
    await instance.start();
  } catch (err) {
    await instance.stop('SIGKILL').catch(() => {});
    throw new Error(`instance ${name} with ${args.join(' ')} did not start: ${err.message}`);
  }
  env.instances.push(instance);
  return instance;
}

/** Stops an instance with SIGTERM and asserts a clean exit. */
async function stopCleanly(instance) {
  const result = await instance.stop('SIGTERM');
  assert.equal(result.exitedBefore, false, `instance ${instance.name} ran until SIGTERM; log:\n${instance.log()}`);
  assert.equal(result.killed, false, `instance ${instance.name} exited on SIGTERM without SIGKILL`);
  assert.equal(result.code, 0, `exit code of instance ${instance.name} on SIGTERM; log:\n${instance.log()}`);
}

/** Returns the lines of every log of instance that match pattern. */
function logLines(instance, pattern) {
  const lines = [];
  for (let start = 1; start <= instance.starts; start++) {
    const file = path.join(env.dir, `annolive-${instance.name}-${start}.log`);
    let text = '';
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) if (pattern.test(line)) lines.push(line);
  }
  return lines;
}

/** Returns the last lines of instance's current log, for assertion messages. */
function logTail(instance, lines = 40) {
  return instance.log().split('\n').slice(-lines).join('\n');
}

let uniq = 0;
function roomName(prefix) {
  uniq += 1;
  return `${prefix}-${uniq}`;
}

// ---- a WebSocket peer that records every message ----

/** An Error for a reply that did not come because the connection closed or time ran out. */
class TransientError extends Error {}

class Peer {
  /** Opens a WebSocket to instance with the annolive subprotocol. */
  static async open(instance, name, { timeoutMs = 5000, keepEvents = true } = {}) {
    const peer = new Peer(name, keepEvents);
    await peer.connect(`${instance.wsUrl}/v1/ws`, timeoutMs);
    return peer;
  }

  constructor(name, keepEvents) {
    this.name = name;
    this.keepEvents = keepEvents;
    this.ws = null;
    this.messages = [];
    this.closed = null; // {code, reason, at}
    this.pings = 0;
    this.error = null;
    this.onMessage = null;
    this.waiters = new Set();
  }

  connect(url, timeoutMs) {
    const opening = new Promise((resolve, reject) => {
      const ws = new WebSocket(url, SUBPROTOCOL);
      this.ws = ws;
      livePeers.add(this);
      ws.on('open', resolve);
      ws.on('error', (err) => {
        this.error = err;
        reject(err);
      });
      ws.on('ping', () => {
        this.pings += 1;
      });
      ws.on('message', (data, isBinary) => {
        let message;
        try {
          message = JSON.parse(data.toString('utf8'));
        } catch {
          message = { type: 'not-json', binary: isBinary, text: data.toString('utf8').slice(0, 200) };
        }
        if (this.keepEvents || message.type !== 'event') this.messages.push(message);
        this.onMessage?.(message);
        this.notify();
      });
      ws.on('close', (code, reason) => {
        this.closed = { code, reason: reason.toString('utf8'), at: Date.now() };
        livePeers.delete(this);
        reject(new Error(`closed with code ${code} before it opened`));
        this.notify();
      });
    });
    return withTimeout(opening, timeoutMs, `${this.name} to open a WebSocket to ${url}`).catch((err) => {
      this.terminate();
      throw err;
    });
  }

  get open() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  notify() {
    for (const waiter of [...this.waiters]) waiter();
  }

  send(message) {
    if (!this.open) throw new TransientError(`${this.name}: the connection is not open (close ${JSON.stringify(this.closed)})`);
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /**
   * Resolves with the first message from index `from` on that satisfies
   * predicate. Rejects with a TransientError when the connection closes or
   * the time runs out first.
   */
  waitFor(what, predicate, { from = 0, timeoutMs = REPLY_TIMEOUT_MS } = {}) {
    return new Promise((resolve, reject) => {
      let cursor = from;
      const check = () => {
        for (; cursor < this.messages.length; cursor++) {
          if (predicate(this.messages[cursor])) {
            finish();
            resolve(this.messages[cursor]);
            return;
          }
        }
        if (this.closed) {
          finish();
          reject(new TransientError(`${this.name}: connection closed (${JSON.stringify(this.closed)}) while waiting for ${what}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new TransientError(`${this.name}: timed out after ${timeoutMs} ms waiting for ${what}; ` +
          `last messages: ${JSON.stringify(this.messages.slice(-3)).slice(0, 600)}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Sends message and waits for a later message that satisfies predicate. */
  request(message, what, predicate, timeoutMs = REPLY_TIMEOUT_MS) {
    const from = this.messages.length;
    this.send(message);
    return this.waitFor(what, predicate, { from, timeoutMs });
  }

  /** Waits until the connection is closed and returns {code, reason, at}. */
  async waitClosed(what, timeoutMs = 5000) {
    await waitUntil(what, () => this.closed, { timeoutMs, intervalMs: 20 });
    return this.closed;
  }

  /** Closes the TCP connection at once, with no close frame. */
  terminate() {
    this.ws?.terminate();
  }
}

// ---- a client replica of one room ----

/** Returns the ops of batch k of actor: create `actor.k`, update `actor.(k-1)`. */
function chainOps(actor, k) {
  const ops = [{ op: 'create', id: `${actor}.${k}`, kind: 'tag', fields: { n: k } }];
  if (k > 1) ops.push({ op: 'update', id: `${actor}.${k - 1}`, base: {}, set: { next: k } });
  return ops;
}

/** Returns the objects that batches 1..count of actor leave in a room. */
function chainObjects(actor, count) {
  const objects = [];
  for (let k = 1; k <= count; k++) {
    const fields = { n: k };
    if (k < count) fields.next = k + 1;
    objects.push({ id: `${actor}.${k}`, kind: 'tag', vv: { [actor]: k < count ? 2 : 1 }, fields });
  }
  return objects;
}

class Member {
  constructor(name, room, home) {
    this.name = name;
    this.actor = name;
    this.room = room;
    this.home = home; // the instance of the next connect
    this.instance = null;
    this.replica = new Replica(name);
    this.peer = null;
    this.joined = false;
    this.joinSince = undefined;
    this.connSeqs = []; // event seqs received on the current connection
    this.replies = []; // {type, since, seq, reset, instance} of every join reply and snapshot
    this.resets = 0;
    this.seen = new Map(); // `actor opseq` -> events received with them
    this.opseq = 0;
    this.pending = null; // {opseq, ops} of the batch without an ack
    this.acks = new Map(); // opseq -> {ack, instance}
    this.unavailable = 0;
    this.resends = 0; // sends of a batch after its first
    this.failures = []; // transient failures, for messages
    this.problems = []; // protocol violations seen by this member
    this.connects = 0;
  }

  problem(text) {
    if (this.problems.length < 50) this.problems.push(`${this.name}: ${text}`);
  }

  get connected() {
    return Boolean(this.peer?.open && this.joined);
  }

  /**
   * Opens a connection to this.home and joins the room, with `since` when
   * resume is true and the member has a copy. Returns the join reply, and
   * throws a TransientError for an error reply or a failed connection.
   */
  async connect({ resume = false, timeoutMs = REPLY_TIMEOUT_MS } = {}) {
    this.peer?.terminate();
    const instance = this.home;
    const peer = await Peer.open(instance, this.name).catch((err) => {
      throw new TransientError(`${this.name}: cannot connect to ${instance.name}: ${err.message}`);
    });
    this.peer = peer;
    this.instance = instance;
    this.joined = false;
    this.connSeqs = [];
    this.connects += 1;
    this.joinSince = resume && this.replica.seq !== null ? this.replica.seq : undefined;
    peer.onMessage = (m) => this.onMessage(peer, m);
    const join = { type: 'join', room: this.room };
    if (this.joinSince !== undefined) join.since = this.joinSince;
    const reply = await peer.request(join, `reply to ${JSON.stringify(join)}`,
      (m) => m.room === this.room && ['snapshot', 'resumed', 'error'].includes(m.type), timeoutMs);
    if (reply.type === 'error') {
      peer.terminate();
      const err = new TransientError(`${this.name}: join on ${instance.name} got ${JSON.stringify(reply)}`);
      err.reply = reply;
      throw err;
    }
    return reply;
  }

  /** Connects, retrying transient failures until timeoutMs has passed. */
  async reconnect({ resume = true, timeoutMs = 30000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.connect({ resume });
      } catch (err) {
        if (!(err instanceof TransientError)) throw err;
        this.failures.push(err.message);
        if (Date.now() >= deadline) {
          throw new Error(`${this.name}: no connection to ${this.home.name} after ${attempt} attempts in ${timeoutMs} ms: ` +
            this.failures.slice(-3).join(' | '));
        }
        await sleep(200);
      }
    }
  }

  onMessage(peer, m) {
    if (peer !== this.peer || m.room !== this.room) return;
    const where = `on ${this.instance?.name} (connection ${this.connects})`;
    if (m.type === 'snapshot') {
      if (!this.joined && this.joinSince !== undefined && m.reset !== true) {
        this.problem(`${where}: a snapshot without "reset": true replied to a join with since ${this.joinSince}`);
      }
      if (this.joined && m.reset !== true) {
        this.problem(`${where}: a snapshot without "reset": true after the join reply`);
      }
      if (m.reset === true) this.resets += 1;
      this.replies.push({ type: 'snapshot', seq: m.seq, reset: m.reset === true, instance: this.instance?.name, joinReply: !this.joined });
      this.replica.reset(m);
      this.joined = true;
    } else if (m.type === 'resumed') {
      if (this.joined) this.problem(`${where}: "resumed" after the join reply: ${JSON.stringify(m)}`);
      if (m.since !== this.joinSince) this.problem(`${where}: "resumed" with since ${m.since}, the join had ${this.joinSince}`);
      if (!(m.seq >= m.since)) this.problem(`${where}: "resumed" with seq ${m.seq} below since ${m.since}`);
      this.replies.push({ type: 'resumed', since: m.since, seq: m.seq, instance: this.instance?.name });
      this.joined = true;
    } else if (m.type === 'event') {
      if (!this.joined) this.problem(`${where}: event seq ${m.seq} before the join reply`);
      this.connSeqs.push(m.seq);
      const key = `${m.actor} ${m.opseq}`;
      this.seen.set(key, (this.seen.get(key) ?? 0) + 1);
      this.replica.applyEvent(m);
    }
  }

  /** Starts the next batch of the chain; it stays pending until acked. */
  nextBatch() {
    this.opseq += 1;
    this.pending = { opseq: this.opseq, ops: chainOps(this.actor, this.opseq) };
  }

  /**
   * Sends the pending batch once, connecting first when needed. Returns true
   * when it was acked. Throws for an error reply other than `unavailable`.
   */
  async trySend() {
    try {
      if (!this.connected) await this.connect({ resume: this.replica.seq !== null });
      const { opseq, ops } = this.pending;
      if (this.pending.sent) this.resends += 1;
      this.pending.sent = true;
      const reply = await this.peer.request({ type: 'ops', room: this.room, actor: this.actor, opseq, ops },
        `reply to opseq ${opseq}`,
        (m) => (m.type === 'ack' || m.type === 'error') && m.room === this.room && m.opseq === opseq);
      if (reply.type === 'ack') {
        this.acks.set(opseq, { ack: reply, instance: this.instance.name });
        this.pending = null;
        return true;
      }
      if (reply.code === 'unavailable') {
        this.unavailable += 1;
        return false;
      }
      throw new Error(`${this.name}: opseq ${opseq} on ${this.instance.name} got ${JSON.stringify(reply)}`);
    } catch (err) {
      if (!(err instanceof TransientError)) throw err;
      this.failures.push(err.message);
      if (/timed out/.test(err.message) && this.peer?.open) {
        this.problem(`no reply from ${this.instance?.name}: ${err.message}`);
        this.peer.terminate();
      }
      return false;
    }
  }

  /**
   * Writes batches until `count` are acked or stop() returns true; a started
   * batch is always finished. Bounded by timeLimitMs.
   */
  async writeChain(count, { stop = () => false, timeLimitMs = 60000, pauseMs = 0 } = {}) {
    const deadline = Date.now() + timeLimitMs;
    while (this.pending || (this.opseq < count && !stop())) {
      if (Date.now() > deadline) {
        throw new Error(`${this.name}: ${this.acks.size} batches acked after ${timeLimitMs} ms, opseq ${this.opseq} ` +
          `pending ${this.pending !== null}; last failures: ${this.failures.slice(-3).join(' | ')}`);
      }
      if (!this.pending) this.nextBatch();
      const acked = await this.trySend();
      if (!acked) await sleep(150);
      else if (pauseMs > 0) await sleep(pauseMs);
    }
  }

  /** Waits until the copy reaches seq. */
  waitForSeq(seq, timeoutMs = 15000) {
    return waitUntil(`${this.name} to reach seq ${seq} (at ${this.replica.seq}, problems ${this.problems.length + this.replica.problems.length})`,
      () => this.replica.seq !== null && this.replica.seq >= seq, { timeoutMs, intervalMs: 20 });
  }

  allProblems() {
    return [...this.problems, ...this.replica.problems];
  }
}

/**
 * Waits until every member's copy reaches the seq of the room's HTTP snapshot
 * on instance, then asserts that each copy equals it and that no member saw a
 * gap, a repeat or another protocol violation.
 */
async function assertConverged(members, instance, room, what) {
  const snapshot = await httpSnapshot(instance, room);
  for (const member of members) {
    await member.waitForSeq(snapshot.seq);
    assert.deepEqual(member.allProblems(), [], `${what}: problems seen by ${member.name}`);
    assert.equal(member.replica.seq, snapshot.seq, `${what}: seq of ${member.name}'s copy`);
    const diff = diffObjects(member.replica.list(), snapshot.objects, `${member.name}'s copy`, `the snapshot of ${instance.name}`);
    assert.equal(diff, null, `${what}: ${member.name}'s copy differs from the HTTP snapshot:\n${diff}`);
  }
  return snapshot;
}

/**
 * Asserts that the snapshot contains exactly the chain of batches 1..opseq of
 * each writer ({actor, opseq}): each batch applied once and none missing.
 */
function assertChains(snapshot, writers, what) {
  for (const writer of writers) {
    const mine = snapshot.objects.filter((o) => o.id.startsWith(`${writer.actor}.`));
    const diff = diffObjects(mine, chainObjects(writer.actor, writer.opseq), 'the snapshot', `batches 1..${writer.opseq} of ${writer.actor} applied once`);
    assert.equal(diff, null, `${what}: objects of ${writer.actor}:\n${diff}`);
  }
}

/** Asserts that every batch of each writer Member was acked and applied in full. */
function assertAcked(writers, what) {
  for (const writer of writers) {
    assert.equal(writer.acks.size, writer.opseq, `${what}: every batch of ${writer.actor} was acked`);
    for (const [opseq, { ack, instance }] of writer.acks) {
      for (const result of ack.results) {
        assert.equal(result.status, 'applied', `${what}: ack of ${writer.actor} opseq ${opseq} from ${instance}: ${JSON.stringify(ack)}`);
      }
    }
  }
}

/**
 * Asserts that observer received exactly one event for each batch of each
 * writer, and none for other batches of theirs. Only meaningful when the
 * observer got no reset snapshot.
 */
function assertEventsOnce(observer, writers, what) {
  const wrong = [];
  for (const writer of writers) {
    for (let k = 1; k <= writer.opseq; k++) {
      const n = observer.seen.get(`${writer.actor} ${k}`) ?? 0;
      if (n !== 1) wrong.push(`${writer.actor} opseq ${k}: ${n} events`);
    }
  }
  assert.deepEqual(wrong.slice(0, 20), [], `${what}: events at ${observer.name} by actor and opseq (${wrong.length} wrong)`);
}

/** Returns the members of a join reply that a `resumed` reply has, for comparison. */
function resumedPart(reply) {
  const part = { type: reply.type, room: reply.room, since: reply.since, seq: reply.seq };
  if (reply.type !== 'resumed') part.reset = reply.reset;
  return part;
}

// ---- a TCP client that completes the upgrade and then stays silent ----

const HANDSHAKE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/**
 * Opens a WebSocket on a plain TCP socket and never sends another byte, so it
 * sends no pong. Resolves once the upgrade reply (or the close) has
 * arrived, with a state object that keeps counting pings and records the close.
 */
function openSilentSocket(instance, timeoutMs = 5000) {
  return withTimeout(new Promise((resolve) => {
    const state = { status: null, pings: 0, closeCode: null, openedAt: null, closedAt: null, error: null, socket: null };
    let pending = Buffer.alloc(0);
    const socket = net.connect({ host: '127.0.0.1', port: instance.port });
    state.socket = socket;
    rawSockets.add(socket);
    socket.on('error', (err) => {
      state.error = err;
    });
    socket.on('close', () => {
      state.closedAt = Date.now();
      rawSockets.delete(socket);
      resolve(state);
    });
    socket.on('connect', () => {
      socket.write(`GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:${instance.port}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${HANDSHAKE_KEY}\r\nSec-WebSocket-Version: 13\r\n` +
        `Sec-WebSocket-Protocol: ${SUBPROTOCOL}\r\n\r\n`);
    });
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      if (state.status === null) {
        const end = pending.indexOf('\r\n\r\n');
        if (end < 0) return;
        state.status = Number(pending.subarray(0, end).toString('latin1').split(' ')[1]);
        state.openedAt = Date.now();
        pending = pending.subarray(end + 4);
        resolve(state);
      }
      // Server frames are not masked.
      for (;;) {
        if (pending.length < 2) return;
        let length = pending[1] & 0x7f;
        let offset = 2;
        if (length === 126) {
          if (pending.length < 4) return;
          length = pending.readUInt16BE(2);
          offset = 4;
        } else if (length === 127) {
          if (pending.length < 10) return;
          length = Number(pending.readBigUInt64BE(2));
          offset = 10;
        }
        if (pending.length < offset + length) return;
        const opcode = pending[0] & 0x0f;
        const payload = pending.subarray(offset, offset + length);
        if (opcode === 9) state.pings += 1;
        if (opcode === 8) state.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        pending = pending.subarray(offset + length);
      }
    });
  }), timeoutMs, `the WebSocket upgrade of a silent client on port ${instance.port}`);
}

// ---- the tests ----

describe('resilience', () => {
  test('resume with since', { timeout: 60000 }, env.wrap(async () => {
    const room = roomName('resume');
    const writer = new Member('resume-w', room, b);
    await writer.connect();
    const reader = new Member('resume-r', room, a);
    await reader.connect();
    await writer.writeChain(5);
    await reader.waitForSeq(5);
    const since = reader.replica.seq;
    assert.equal(since, 5);
    reader.peer.terminate();
    await reader.peer.waitClosed('the reader to close');

    await writer.writeChain(25);
    const reply = await reader.connect({ resume: true });
    assert.deepEqual(resumedPart(reply), { type: 'resumed', room, since: 5, seq: 25 }, 'reply to a join with since 5');
    await reader.waitForSeq(25);
    assert.deepEqual(reader.connSeqs, Array.from({ length: 20 }, (_, i) => 6 + i), 'events after resumed');
    // Live events follow the stream's.
    await writer.writeChain(28);
    await reader.waitForSeq(28);
    assert.deepEqual(reader.connSeqs, Array.from({ length: 23 }, (_, i) => 6 + i), 'events after resumed, then live');
    await assertConverged([reader, writer], a, room, 'after the resume');

    // since equal to the room's seq: resumed with no event to send.
    reader.peer.terminate();
    const level = await reader.connect({ resume: true });
    assert.deepEqual(resumedPart(level), { type: 'resumed', room, since: 28, seq: 28 }, 'reply to a join with since = the room seq');
    await sleep(300);
    assert.deepEqual(reader.connSeqs, [], 'no event after resuming at the room seq');

    // since ahead of the room: a reset snapshot.
    const ahead = await Peer.open(a, 'resume-ahead');
    const aheadReply = await ahead.request({ type: 'join', room, since: 1000 }, 'reply to since 1000',
      (m) => m.room === room && ['snapshot', 'resumed', 'error'].includes(m.type));
    assert.equal(aheadReply.type, 'snapshot', `reply to a join with since past the room: ${JSON.stringify(aheadReply).slice(0, 300)}`);
    assert.equal(aheadReply.reset, true, 'the snapshot for a since past the room has reset: true');
    assert.equal(aheadReply.seq, 28);
    ahead.terminate();

    // A client that saw no event resumes with since 0.
    const quiet = roomName('resume-zero');
    const zeroWriter = new Member('zero-w', quiet, b);
    await zeroWriter.connect();
    const zero = new Member('zero-r', quiet, a);
    const first = await zero.connect();
    assert.equal(first.seq, 0, 'a new room is at seq 0');
    zero.peer.terminate();
    await zeroWriter.writeChain(10);
    const zeroReply = await zero.connect({ resume: true });
    assert.deepEqual(resumedPart(zeroReply), { type: 'resumed', room: quiet, since: 0, seq: 10 }, 'reply to a join with since 0');
    await zero.waitForSeq(10);
    assert.deepEqual(zero.connSeqs, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await assertConverged([zero, zeroWriter], b, quiet, 'after a resume from 0');
    assertChains(await httpSnapshot(a, quiet), [zeroWriter], 'room resumed from 0');
    assertAcked([zeroWriter], 'room resumed from 0');
  }));

  test('resume past the trimmed stream gets a reset snapshot', { timeout: 90000 }, env.wrap(async () => {
    const sa = await startDedicated('stream-a', ['--stream-max', '100']);
    const sb = await startDedicated('stream-b', ['--stream-max', '100']);
    const room = roomName('trim');
    const writer = new Member('trim-w', room, sb);
    await writer.connect();
    const reader = new Member('trim-r', room, sa);
    await reader.connect();
    const recent = new Member('trim-recent', room, sa);
    await recent.connect();
    await writer.writeChain(3);
    await reader.waitForSeq(3);
    reader.peer.terminate();

    await writer.writeChain(340, { timeLimitMs: 60000 });
    await recent.waitForSeq(340);
    const xlen = await redisCommand(env.redis.port, ['XLEN', `al:{${room}}:log`]);
    assert.match(xlen, /^:\d+$/, `XLEN of the room's stream: ${xlen}`);
    assert.ok(Number(xlen.slice(1)) < 300, `--stream-max 100 trimmed the stream to ${xlen.slice(1)} of 340 entries`);

    const reply = await reader.connect({ resume: true });
    assert.equal(reply.type, 'snapshot', `reply to since 3 after 337 more events with --stream-max 100: ${JSON.stringify(reply).slice(0, 300)}`);
    assert.equal(reply.reset, true, 'the snapshot has reset: true');
    const http = await httpSnapshot(sb, room);
    assert.equal(reply.seq, http.seq);
    assert.equal(diffObjects(reply.objects, http.objects, 'the reset snapshot', 'the HTTP snapshot'), null);
    await writer.writeChain(342);
    await reader.waitForSeq(342);
    assert.deepEqual(reader.connSeqs, [341, 342], 'live events after the reset snapshot');

    // A since the trimmed stream still reaches is resumed.
    recent.peer.terminate();
    await writer.writeChain(350);
    const recentReply = await recent.connect({ resume: true });
    assert.deepEqual(resumedPart(recentReply), { type: 'resumed', room, since: 342, seq: 350 }, 'reply to a since the stream still holds');
    await assertConverged([reader, recent, writer], sa, room, 'after the reset');
    assertChains(await httpSnapshot(sa, room), [writer], 'trimmed room');
    assertAcked([writer], 'trimmed room');
    await stopCleanly(sa);
    await stopCleanly(sb);
  }));

  test('kill -9 of an instance under load', { timeout: 120000 }, env.wrap(async () => {
    const ca = await startDedicated('crash-a');
    const cb = await startDedicated('crash-b');
    const room = roomName('crash');
    const observer = new Member('crash-obs', room, cb);
    await observer.connect();
    const onA = [new Member('crash-a1', room, ca), new Member('crash-a2', room, ca), new Member('crash-a3', room, ca)];
    const onB = [new Member('crash-b1', room, cb), new Member('crash-b2', room, cb)];
    const writers = [...onA, ...onB];
    for (const member of writers) await member.connect();
    const COUNT = 120;
    const loops = writers.map((member) => member.writeChain(COUNT, { timeLimitMs: 90000 }));
    await waitUntil('each writer on crash-a to have 30 acks', () => onA.every((m) => m.acks.size >= 30), { timeoutMs: 30000 });
    for (const member of onA) member.home = cb;
    ca.child.kill('SIGKILL');
    await withTimeout(ca.child.exited, 5000, 'crash-a to exit after SIGKILL');
    await withTimeout(Promise.all(loops), 100000, 'the writers to finish');

    process.stderr.write(`resilience: resends after kill -9: ${onA.map((m) => `${m.name} ${m.resends}`).join(', ')}\n`);
    for (const member of onA) {
      assert.ok(member.connects >= 2, `${member.name} reconnected after the kill (connects: ${member.connects})`);
      const rejoin = member.replies.filter((r) => r.instance === 'crash-b');
      assert.ok(rejoin.length > 0, `${member.name} joined on crash-b: ${JSON.stringify(member.replies)}`);
      assert.equal(rejoin[0].type, 'resumed', `${member.name} resumed on crash-b with since: ${JSON.stringify(member.replies)}`);
    }
    const snapshot = await assertConverged([observer, ...writers], cb, room, 'after kill -9 of crash-a');
    assertChains(snapshot, writers, 'after kill -9 of crash-a');
    assertAcked(writers, 'after kill -9 of crash-a');
    assert.equal(observer.resets, 0, 'the observer on crash-b never needed a reset');
    assertEventsOnce(observer, writers, 'after kill -9 of crash-a');
    for (const member of writers) {
      assert.equal(member.resets, 0, `${member.name} resumed without a reset: ${JSON.stringify(member.replies)}`);
      assertEventsOnce(member, writers, `events at ${member.name}`);
    }

    // A restarted crash-a serves the same room.
    await ca.start();
    const again = await httpSnapshot(ca, room);
    assert.equal(diffObjects(again.objects, snapshot.objects, 'crash-a after restart', 'crash-b'), null);
    await stopCleanly(ca);
    await stopCleanly(cb);
  }));

  test('Redis stopped for 4 s under load', { timeout: 150000 }, env.wrap(async () => {
    const room = roomName('outage');
    const observers = [new Member('outage-obs-a', room, a), new Member('outage-obs-b', room, b)];
    const writers = [new Member('outage-wa', room, a), new Member('outage-wb', room, b), new Member('outage-wb2', room, b)];
    for (const member of [...observers, ...writers]) await member.connect();
    let stop = false;
    const loops = writers.map((member) => member.writeChain(1000, { stop: () => stop, timeLimitMs: 120000, pauseMs: 20 }));
    await waitUntil('20 acks per writer', () => writers.every((m) => m.acks.size >= 20), { timeoutMs: 20000 });
    for (const instance of [a, b]) {
      const ready = await fetchJson(`${instance.httpUrl}/readyz`, 2000);
      assert.equal(ready.status, 200, `/readyz of ${instance.name} before the outage: ${ready.text}`);
      assert.equal(ready.body?.status, 'ready', `/readyz of ${instance.name} before the outage: ${ready.text}`);
    }

    const probes = [];
    let probing = true;
    const probeLoop = (async () => {
      for (let i = 0; i < 400 && probing; i++) {
        for (const instance of [a, b]) {
          const ready = await fetchJson(`${instance.httpUrl}/readyz`, 2000).catch((err) => ({ status: err.message }));
          const health = await fetchJson(`${instance.httpUrl}/healthz`, 2000).catch((err) => ({ status: err.message }));
          probes.push({
            at: Date.now(), instance: instance.name, ready: ready.status, readyBody: ready.body?.status,
            health: health.status, redis: health.body?.redis,
          });
        }
        await sleep(200);
      }
    })();

    const stopped = Date.now();
    const redisStop = await env.redis.stop();
    assert.equal(redisStop?.code, 0, `redis-server exit after SHUTDOWN: ${JSON.stringify(redisStop)}`);
    const unavailableBefore = writers.reduce((n, m) => n + m.unavailable, 0);
    await sleep(4000);
    const restarted = Date.now();
    const unavailableDuring = writers.reduce((n, m) => n + m.unavailable, 0) - unavailableBefore;
    for (const instance of [a, b]) {
      assert.ok(instance.running, `instance ${instance.name} runs while Redis is down; log:\n${logTail(instance)}`);
    }
    await env.redis.start();
    for (const instance of [a, b]) {
      await waitUntil(`/readyz of ${instance.name} to return 200 after the Redis restart`, async () => {
        const ready = await fetchJson(`${instance.httpUrl}/readyz`, 2000);
        return ready.status === 200;
      }, { timeoutMs: 20000, intervalMs: 100 });
    }
    const back = Date.now();
    await sleep(1500);
    stop = true;
    await withTimeout(Promise.all(loops), 120000, 'the writers to finish');
    probing = false;
    await withTimeout(probeLoop, 10000, 'the probes to stop');

    assert.ok(unavailableDuring > 0, `writes during the outage got unavailable (${unavailableDuring}); failures: ` +
      writers.flatMap((m) => m.failures.slice(-2)).join(' | '));
    const healthDown = probes.filter((p) => p.health !== 200);
    assert.deepEqual(healthDown, [], '/healthz returned 200 all along');
    for (const instance of [a, b]) {
      const down = probes.filter((p) => p.instance === instance.name && p.at >= stopped + 1500 && p.at < restarted);
      assert.ok(down.length > 0, `probes of ${instance.name} during the outage`);
      assert.deepEqual(down.filter((p) => p.ready !== 503), [], `/readyz of ${instance.name} from 1.5 s after the Redis stop to its restart`);
      assert.deepEqual(down.filter((p) => p.readyBody !== 'unavailable'), [], `/readyz body of ${instance.name} during the outage`);
      assert.ok(down.every((p) => p.redis === false), `/healthz of ${instance.name} says redis: false during the outage`);
      const up = probes.filter((p) => p.instance === instance.name && p.at >= back + 500);
      assert.ok(up.length > 0, `probes of ${instance.name} after the restart`);
      assert.deepEqual(up.filter((p) => p.ready !== 200 || p.readyBody !== 'ready'), [], `/readyz of ${instance.name} after the restart`);
    }

    const snapshot = await assertConverged([...observers, ...writers], a, room, 'after the Redis outage');
    assertChains(snapshot, writers, 'after the Redis outage');
    assertAcked(writers, 'after the Redis outage');
    const fromB = await httpSnapshot(b, room);
    assert.equal(diffObjects(fromB.objects, snapshot.objects, 'instance b', 'instance a'), null);
    for (const observer of observers) {
      if (observer.resets === 0) assertEventsOnce(observer, writers, `after the Redis outage, at ${observer.name}`);
    }
    const resets = [...observers, ...writers].map((m) => `${m.name}: ${m.resets}`).join(', ');
    process.stderr.write(`resilience: reset snapshots after the Redis outage: ${resets}\n`);
  }));

  test('slow reader resumes after being closed', { timeout: 150000 }, env.wrap(async () => {
    const q = await startDedicated('queue', ['--max-queue', '1048576']);
    const room = roomName('lag');
    const slow = new Member('lag-r', room, q);
    await slow.connect();
    const writer = await Peer.open(b, 'lag-w', { keepEvents: false });
    await writer.request({ type: 'join', room }, 'snapshot', (m) => m.type === 'snapshot');
    let opseq = 1;
    let reply = await writer.request({ type: 'ops', room, actor: 'lag-w', opseq, ops: [{ op: 'create', id: 'big', kind: 'tag' }] },
      'ack 1', (m) => m.type === 'ack' && m.opseq === 1);
    await slow.waitForSeq(1);
    slow.peer.ws.pause();

    const slowLines = () => logLines(q, /slow/i).length;
    const pad = 'p'.repeat(8000);
    const started = Date.now();
    while (slowLines() === 0 && opseq < 4000 && Date.now() - started < 40000) {
      for (let k = 0; k < 10; k++) {
        opseq += 1;
        writer.send({ type: 'ops', room, actor: 'lag-w', opseq, ops: [{ op: 'update', id: 'big', base: {}, set: { pad, n: opseq } }] });
      }
      const last = opseq;
      reply = await writer.waitFor(`ack ${last}`, (m) => m.type === 'ack' && m.opseq === last, { timeoutMs: 20000 });
      writer.messages.length = 0;
    }
    assert.ok(slowLines() > 0, `instance queue closed the slow reader after ${opseq} batches of 8 kB; log:\n${logTail(q)}`);
    // Events that the slow reader misses entirely.
    for (let k = 0; k < 10; k++) {
      opseq += 1;
      const mine = opseq;
      reply = await writer.request({ type: 'ops', room, actor: 'lag-w', opseq: mine, ops: [{ op: 'create', id: `after-${k}`, kind: 'tag' }] },
        `ack ${mine}`, (m) => m.type === 'ack' && m.opseq === mine);
    }
    const finalSeq = reply.seq;
    slow.peer.ws.resume();
    const close = await slow.peer.waitClosed('the slow reader to see its connection end', 20000);
    const seenBefore = slow.replica.seq;
    const resumed = await slow.connect({ resume: true, timeoutMs: 30000 }).catch((err) => err);
    assert.ok(!(resumed instanceof Error),
      `the slow reader's join with since ${seenBefore}, ${finalSeq - seenBefore} events behind the room at seq ${finalSeq}, ` +
      `got no reply: ${resumed.message}; log:\n${logTail(q, 10)}`);
    assert.ok(resumed.type === 'resumed' || (resumed.type === 'snapshot' && resumed.reset === true),
      `reply to the slow reader's join with since ${seenBefore}: ${JSON.stringify(resumed).slice(0, 300)}`);
    process.stderr.write(`resilience: the slow reader joined with since ${seenBefore} at room seq ${finalSeq} and got ${resumed.type}\n`);
    await slow.waitForSeq(finalSeq, 30000);
    assert.equal(slow.peer.closed, null, `the resumed connection stays open (it was closed with ${JSON.stringify(slow.peer.closed)})`);
    await assertConverged([slow], b, room, `after the slow reader resumed from ${seenBefore} (close ${close.code}, reply ${resumed.type})`);
    writer.terminate();
    await stopCleanly(q);
  }));

  // destroy() closes the socket with FIN when nothing is unread, resetAndDestroy() with RST.
  // Linux keeps the bytes that arrived before an RST readable, so a server that reads them before it
  // handles the error still gets the batch.
  for (const how of ['destroy', 'reset']) {
    test(`batch sent just before the socket closes (${how})`, { timeout: 60000 }, env.wrap(async () => {
      const room = roomName(`last-words-${how.toLowerCase()}`);
      const receiver = new Member(`last-recv-${how}`, room, b);
      await receiver.connect();
      const actor = `last-${how}`;
      const sent = [];
      for (let opseq = 1; opseq <= 30; opseq++) {
        // Once the previous batch has applied, the join snapshot covers it and no event of it reaches
        // this peer. An event that arrived after the close would make the kernel reply with RST.
        if (opseq > 1) {
          await waitUntil(`the receiver to get opseq ${opseq - 1}`, () => receiver.seen.has(`${actor} ${opseq - 1}`),
            { timeoutMs: how === 'destroy' ? 2000 : 500, intervalMs: 5 }).catch(() => {});
        }
        const key = `${actor}-${opseq}`;
        const previous = `${actor}-${opseq - 1}`;
        const peer = await Peer.open(a, key);
        const snapshot = await peer.request({ type: 'join', room, actor: key }, 'snapshot',
          (m) => m.type === 'snapshot' && m.room === room);
        // Presence messages about this peer and the previous one are the
        // last the server sends here; once they are in, nothing more comes.
        const shown = (k) => snapshot.presence.some((p) => p.client === k) ||
          peer.messages.some((m) => m.type === 'presence' && m.client === k && m.state !== null);
        const gone = (k) => !snapshot.presence.some((p) => p.client === k) ||
          peer.messages.some((m) => m.type === 'presence' && m.client === k && m.state === null);
        await waitUntil(`${key} to see its presence and not that of ${previous}`,
          () => shown(key) && gone(previous), { timeoutMs: 5000, intervalMs: 5 });
        const ops = [{ op: 'create', id: `${actor}.${opseq}`, kind: 'tag', fields: { n: opseq } }];
        // The close follows the write callback, so the frame has left the process and nothing more is sent.
        await new Promise((resolve) => {
          peer.ws.send(JSON.stringify({ type: 'ops', room, actor, opseq, ops }), () => {
            if (how === 'destroy') peer.ws._socket.destroy();
            else peer.ws._socket.resetAndDestroy();
            resolve();
          });
        });
        sent.push(opseq);
      }

      const waited = await waitUntil('every batch to reach the receiver on the other instance',
        () => sent.every((k) => receiver.seen.has(`${actor} ${k}`)), { timeoutMs: 10000 }).catch((err) => err);
      const missing = sent.filter((k) => !receiver.seen.has(`${actor} ${k}`));
      const http = await httpSnapshot(b, room);

      // After a reset the server can see the error before the last frame
      // (seen here with libwebsockets 4.1: batches were lost, never doubled),
      // so only a close with FIN promises that a fully sent batch applies.
      if (how === 'reset') {
        process.stderr.write(`resilience: ${missing.length} of ${sent.length} batches sent before an RST did not apply (opseq ${missing.join(' ')})\n`);
        for (const k of sent) assert.ok((receiver.seen.get(`${actor} ${k}`) ?? 0) <= 1, `events of opseq ${k}`);
        await assertConverged([receiver], b, room, `batches before a ${how}`);
        return;
      }
      assert.deepEqual(missing, [],
        `batches (of ${sent.length}) whose socket closed (${how}) right after the send and that never reached the receiver ` +
        `(${waited instanceof Error ? waited.message : ''}); objects in Redis: ${http.objects.map((o) => o.id).join(' ')}; ` +
        `log of a:\n${logTail(a, 20)}`);
      for (const k of sent) assert.equal(receiver.seen.get(`${actor} ${k}`), 1, `events of opseq ${k}`);
      await assertConverged([receiver], b, room, `batches before a ${how}`);
    }));
  }

  test('two quick reconnects while another client writes', { timeout: 90000 }, env.wrap(async () => {
    const room = roomName('blink');
    const writer = new Member('blink-w', room, b);
    await writer.connect();
    const reader = new Member('blink-r', room, a);
    await reader.connect();
    let stop = false;
    const loop = writer.writeChain(2000, { stop: () => stop, timeLimitMs: 60000, pauseMs: 5 });
    const gaps = [];
    for (let round = 0; round < 2; round++) {
      const target = (reader.replica.seq ?? 0) + 15;
      await reader.waitForSeq(target);
      const down = Date.now();
      reader.peer.terminate();
      await reader.peer.waitClosed('the reader to close');
      await sleep(300);
      const reply = await reader.connect({ resume: true });
      gaps.push(Date.now() - down);
      assert.equal(reply.type, 'resumed', `round ${round}: reply to the join with since: ${JSON.stringify(reply).slice(0, 300)}`);
    }
    await reader.waitForSeq((reader.replica.seq ?? 0) + 15);
    stop = true;
    await withTimeout(loop, 60000, 'the writer to stop');
    assert.ok(gaps.every((ms) => ms < 1000), `each reconnect took under 1 s: ${gaps.join(', ')} ms`);
    await assertConverged([reader, writer], a, room, 'after two quick reconnects');
    assertChains(await httpSnapshot(a, room), [writer], 'after two quick reconnects');
    assertAcked([writer], 'after two quick reconnects');
    assertEventsOnce(reader, [writer], 'after two quick reconnects');
  }));

  test('SIGTERM', { timeout: 60000 }, env.wrap(async () => {
    const term = await startDedicated('term');
    const room = roomName('term');
    const observer = new Member('term-obs', room, b);
    await observer.connect();
    const member = new Member('term-member', room, term);
    await member.connect();
    const writer = await Peer.open(term, 'term-w');
    await writer.request({ type: 'join', room }, 'snapshot', (m) => m.type === 'snapshot' && m.room === room);
    const actor = 'term-w';
    const COUNT = 20;
    for (let k = 1; k <= COUNT; k++) writer.send({ type: 'ops', room, actor, opseq: k, ops: chainOps(actor, k) });
    let exitedAt = null;
    term.child.exited.then(() => {
      exitedAt = Date.now();
    });
    const signalled = Date.now();
    const stopping = term.stop('SIGTERM');

    const memberClose = await member.peer.waitClosed('the member on term to be closed', 6000);
    assert.equal(memberClose.code, 1001, `close code at a member: ${JSON.stringify(memberClose)}`);
    const writerClose = await writer.waitClosed('the writer on term to be closed', 6000);
    assert.equal(writerClose.code, 1001, `close code at the writer: ${JSON.stringify(writerClose)}`);

    // After the close, the instance serves no new client.
    const late = await Peer.open(term, 'term-late', { timeoutMs: 3000 }).catch((err) => err);
    if (!(late instanceof Error)) {
      const joined = await late.request({ type: 'join', room }, 'a join reply after SIGTERM',
        (m) => m.room === room, 3000).catch((err) => err);
      assert.ok(joined instanceof Error, `a connection opened after SIGTERM was served a ${joined.type}`);
      assert.equal(late.closed?.code, 1001, `a connection opened after SIGTERM is closed with 1001: ${JSON.stringify(late.closed)}`);
    }
    const ready = await fetchJson(`${term.httpUrl}/readyz`, 2000).catch((err) => ({ status: `refused (${err.cause?.code ?? err.message})` }));
    assert.ok(ready.status === 503 || String(ready.status).startsWith('refused'), `/readyz after SIGTERM: ${JSON.stringify(ready)}`);

    const result = await stopping;
    const elapsed = (exitedAt ?? Date.now()) - signalled;
    assert.equal(result.killed, false, `term exited without SIGKILL; log:\n${logTail(term)}`);
    assert.equal(result.code, 0, `exit code on SIGTERM: ${JSON.stringify(result)}; log:\n${logTail(term)}`);
    assert.ok(elapsed < 6000, `term exited ${elapsed} ms after SIGTERM`);

    // Every batch is acked or applies once when resent to instance b.
    const acked = new Map(writer.messages.filter((m) => m.type === 'ack').map((m) => [m.opseq, m]));
    await sleep(500);
    const appliedUnacked = [];
    for (let k = 1; k <= COUNT; k++) {
      if (!acked.has(k) && observer.seen.has(`${actor} ${k}`)) appliedUnacked.push(k);
    }
    const resend = await Peer.open(b, 'term-w-again');
    await resend.request({ type: 'join', room }, 'snapshot', (m) => m.type === 'snapshot' && m.room === room);
    for (let k = 1; k <= COUNT; k++) {
      const again = await resend.request({ type: 'ops', room, actor, opseq: k, ops: chainOps(actor, k) }, `reply to the resend of ${k}`,
        (m) => (m.type === 'ack' || m.type === 'error') && m.opseq === k);
      assert.equal(again.type, 'ack', `resend of opseq ${k} to b: ${JSON.stringify(again)}`);
      if (acked.has(k)) assert.deepEqual(again, acked.get(k), `the resend of acked opseq ${k} gets its first ack`);
      for (const r of again.results) assert.equal(r.status, 'applied', `opseq ${k}: ${JSON.stringify(again)}`);
    }
    resend.terminate();
    const snapshot = await assertConverged([observer], b, room, 'after SIGTERM');
    const chain = { actor, opseq: COUNT };
    assertChains(snapshot, [chain], 'after SIGTERM');
    assertEventsOnce(observer, [chain], 'after SIGTERM');
    process.stderr.write(`resilience: term acked ${acked.size} of ${COUNT} batches before it stopped, and applied ` +
      `${appliedUnacked.length} more whose ack did not reach the client (opseq ${appliedUnacked.join(' ')}); its log on stopping:\n` +
      `${logLines(term, /stop|signal|closing|exit/i).join('\n')}\n`);
  }));

  test('keepalive closes a silent peer', { timeout: 60000 }, env.wrap(async () => {
    const ka = await startDedicated('keepalive', ['--ping-interval', '1', '--ping-timeout', '2']);
    const room = roomName('keepalive');
    const normal = new Member('ka-normal', room, ka);
    await normal.connect();
    const silent = await openSilentSocket(ka);
    assert.equal(silent.status, 101, 'the silent client completed the upgrade');
    await waitUntil('the server to close the silent client', () => silent.closedAt !== null, { timeoutMs: 8000, intervalMs: 50 })
      .catch(() => {});
    const openFor = (silent.closedAt ?? Date.now()) - silent.openedAt;
    assert.ok(silent.closedAt !== null, `the server closed a client that answered no ping within 8 s (pings sent to it: ${silent.pings})`);
    assert.ok(openFor <= 5500, `the silent client was closed ${openFor} ms after the upgrade`);
    assert.ok(openFor >= 2000, `the silent client was closed ${openFor} ms after the upgrade, before --ping-timeout 2 ran out`);
    assert.ok(silent.pings >= 1, `the server pinged the silent client (${silent.pings} pings)`);
    // The normal client has been connected at least as long and still works.
    await sleep(Math.max(0, 5500 - (Date.now() - silent.openedAt)));
    assert.equal(normal.peer.closed, null, `the client that answers pings is still connected: ${JSON.stringify(normal.peer.closed)}`);
    assert.ok(normal.peer.pings >= 2, `the normal client was pinged (${normal.peer.pings} pings)`);
    await normal.writeChain(1, { timeLimitMs: 10000 });
    assert.equal(normal.connects, 1, 'the normal client wrote on its first connection');
    normal.peer.terminate();
    await stopCleanly(ka);
  }));

  test('--max-rooms 2', { timeout: 30000 }, env.wrap(async () => {
    const mr = await startDedicated('max-rooms', ['--max-rooms', '2']);
    const prefix = roomName('max-rooms');
    const peer = await Peer.open(mr, 'max-rooms');
    const join = (room) => peer.request({ type: 'join', room }, `reply to the join of ${room}`,
      (m) => m.room === room && ['snapshot', 'error'].includes(m.type));
    assert.equal((await join(`${prefix}-1`)).type, 'snapshot');
    assert.equal((await join(`${prefix}-2`)).type, 'snapshot');
    const third = await join(`${prefix}-3`);
    assert.equal(third.type, 'error', `third join: ${JSON.stringify(third).slice(0, 300)}`);
    assert.equal(third.code, 'too_large', JSON.stringify(third));
    assert.match(third.message, /\b2\b/, `the message names the limit: ${third.message}`);
    // A joined room does not count twice, and a leave frees a place.
    assert.equal((await join(`${prefix}-1`)).type, 'snapshot', 'a second join of a joined room');
    await peer.request({ type: 'leave', room: `${prefix}-2` }, 'left', (m) => m.type === 'left');
    assert.equal((await join(`${prefix}-3`)).type, 'snapshot', 'a join after a leave');
    assert.equal(peer.closed, null);
    peer.terminate();
    await stopCleanly(mr);
  }));
});
