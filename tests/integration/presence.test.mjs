// Presence and claims across instances that share one Redis: entries and
// their updates on every instance, removal after kill -9 within the
// documented bound, one winner of simultaneous claims, advisory and enforced
// claims, and frame ranges.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { REPO, TestEnv, runProcess, withTimeout } from './harness.mjs';

const require = createRequire(path.join(REPO, 'client-js', 'package.json'));
const WebSocket = require('ws');

// Short times so that the bounds are reached quickly: entries expire after
// TTL seconds without renewal, claims GRACE seconds after their entry.
const TTL = 3;
const GRACE = 1;
const ARGS = ['--presence-ttl', String(TTL), '--claim-grace', String(GRACE)];

// The documented bounds: an entry of a crashed instance is gone within
// TTL * 4/3; its claims end GRACE later, at the next sweep (TTL / 3).
const PRESENCE_BOUND_MS = TTL * 4000 / 3;
const CLAIMS_BOUND_MS = PRESENCE_BOUND_MS + GRACE * 1000 + TTL * 1000 / 3;
// Scheduling slack on a loaded machine: a wide margin, not a speed claim.
const SLACK_MS = 5000;

const env = new TestEnv('presence');
let a;
let b;

before(async () => {
  await env.init();
  await env.startRedis();
  a = await env.startInstance('a', { args: ARGS });
  b = await env.startInstance('b', { args: ARGS });
}, { timeout: 60000 });

after(async () => {
  for (const p of peers) p.close();
  await env.cleanup();
}, { timeout: 120000 });

const peers = [];

/** A raw WebSocket peer that records every message it receives. */
class Peer {
  constructor(instance, name) {
    this.name = name;
    this.messages = [];
    this.waiters = [];
    this.ws = new WebSocket(`${instance.wsUrl}/v1/ws`, 'annolive.v1.json');
    this.ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      this.messages.push(msg);
      for (const w of [...this.waiters]) w.check();
    });
    this.closed = new Promise((resolve) => this.ws.on('close', resolve));
    peers.push(this);
  }

  async open() {
    await withTimeout(new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
    }), 10000, `${this.name} to connect`);
    return this;
  }

  send(msg) {
    this.ws.send(JSON.stringify(msg));
  }

  /** Resolves with the first message, from index `from` on, that pred accepts. */
  waitFor(what, pred, { from = 0, timeoutMs = 20000 } = {}) {
    return withTimeout(new Promise((resolve) => {
      const w = {
        check: () => {
          const found = this.messages.slice(from).find(pred);
          if (found) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            resolve(found);
          }
        },
      };
      this.waiters.push(w);
      w.check();
    }), timeoutMs, `${this.name}: ${what}`);
  }

  async join(room, actor) {
    const from = this.messages.length;
    this.send({ type: 'join', room, ...(actor ? { actor } : {}) });
    return this.waitFor(`snapshot of ${room}`, (m) => m.type === 'snapshot' && m.room === room, { from });
  }

  async ops(room, actor, opseq, ops) {
    const from = this.messages.length;
    this.send({ type: 'ops', room, actor, opseq, ops });
    return this.waitFor(`ack of ${actor}/${opseq}`, (m) => (m.type === 'ack' || m.type === 'error') && m.opseq === opseq, { from });
  }

  async claim(room, ref, target, ttl) {
    const from = this.messages.length;
    this.send({ type: 'claim', room, ref, target, ...(ttl ? { ttl } : {}) });
    return this.waitFor(`claim_ack ${ref}`, (m) => (m.type === 'claim_ack' || m.type === 'error') && (m.ref === ref || m.type === 'error'), { from });
  }

  async release(room, ref, target) {
    const from = this.messages.length;
    this.send({ type: 'release', room, ref, target });
    return this.waitFor(`release_ack ${ref}`, (m) => m.type === 'release_ack' && m.ref === ref, { from });
  }

  close() {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }
}

async function peer(instance, name) {
  return new Peer(instance, name).open();
}

/** Runs redis-cli against the test's Redis and returns its output lines. */
async function redisLines(args) {
  const result = await runProcess('redis-cli', ['-p', String(env.redis.port), '--raw', ...args]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.split('\n').filter((line) => line !== '');
}

/**
 * Accepts a message that shows client's entry in room: a presence message,
 * or a snapshot whose presence list has it.
 */
function showsEntry(room, client) {
  return (m) => (m.type === 'presence' && m.room === room && m.client === client && m.state !== null) ||
    (m.type === 'snapshot' && m.room === room && m.presence.some((p) => p.client === client));
}

function isPresenceOf(room, client, pred = () => true) {
  return (m) => m.type === 'presence' && m.room === room && m.client === client && pred(m);
}

describe('presence', () => {
  test('entries appear, update and leave on the other instance', { timeout: 60000 }, env.wrap(async () => {
    const room = 'pres-basic';
    const x = await peer(a, 'x');
    const y = await peer(b, 'y');
    await x.join(room, 'tab-x');
    await y.join(room, 'tab-y');
    await y.waitFor('tab-x present', showsEntry(room, 'tab-x'));
    await x.waitFor('tab-y present', showsEntry(room, 'tab-y'));

    x.send({ type: 'presence', room, state: { name: 'Ana', cursor: [310.5, 122], selected: ['o1'], item: 'img-1', frame: 3 } });
    const seen = await y.waitFor('tab-x cursor', isPresenceOf(room, 'tab-x', (m) => m.state && m.state.cursor));
    assert.deepEqual(seen.state, { name: 'Ana', cursor: [310.5, 122], selected: ['o1'], item: 'img-1', frame: 3 });
    assert.equal(seen.sub, 'anonymous');

    // A later member gets both entries in its snapshot.
    const z = await peer(b, 'z');
    const snap = await z.join(room, 'tab-z');
    const keys = snap.presence.map((p) => p.client).sort();
    assert.ok(keys.includes('tab-x'), JSON.stringify(snap.presence));
    assert.ok(keys.includes('tab-y'), JSON.stringify(snap.presence));
    assert.deepEqual(snap.presence.find((p) => p.client === 'tab-x').state.cursor, [310.5, 122]);
    assert.deepEqual(snap.claims, []);

    // A burst of states: the last one always arrives.
    for (let i = 0; i < 30; i++) x.send({ type: 'presence', room, state: { cursor: [i, i] } });
    await y.waitFor('last cursor of the burst', isPresenceOf(room, 'tab-x', (m) => m.state?.cursor?.[0] === 29));

    // Leaving removes the entry at once, without waiting for the ttl.
    x.send({ type: 'leave', room });
    await y.waitFor('tab-x gone', isPresenceOf(room, 'tab-x', (m) => m.state === null));
    z.close();
    await y.waitFor('tab-z gone', isPresenceOf(room, 'tab-z', (m) => m.state === null));
    x.close();
    y.close();
  }));

  test('a join without actor is told its key', { timeout: 30000 }, env.wrap(async () => {
    const room = 'pres-key';
    const x = await peer(a, 'x');
    x.send({ type: 'join', room });
    const joined = await x.waitFor('joined', (m) => m.type === 'joined');
    assert.equal(typeof joined.client, 'string');
    await x.waitFor('own entry', showsEntry(room, joined.client));
    x.close();
  }));

  test('bad presence and claim messages get errors', { timeout: 30000 }, env.wrap(async () => {
    const room = 'pres-bad';
    const x = await peer(a, 'x');
    x.send({ type: 'presence', room, state: {} });
    await x.waitFor('not_joined', (m) => m.type === 'error' && m.code === 'not_joined');
    await x.join(room, 'tab-x');
    x.send({ type: 'presence', room, state: { blob: 'x'.repeat(5000) } });
    const big = await x.waitFor('too_large', (m) => m.type === 'error' && m.code === 'too_large');
    assert.match(big.message, /over the limit of 4096/);
    x.send({ type: 'presence', room, state: [1, 2] });
    await x.waitFor('state must be an object', (m) => m.type === 'error' && /state/.test(m.message));
    x.send({ type: 'claim', room, target: { item: 'v', frames: [5, 2] } });
    await x.waitFor('frames order', (m) => m.type === 'error' && /target.frames/.test(m.message));
    x.send({ type: 'claim', room, target: { id: 'o', item: 'v' } });
    await x.waitFor('one kind of target', (m) => m.type === 'error' && /target/.test(m.message));
    x.send({ type: 'claim', room, target: { id: 'o' }, ttl: 10 });
    await x.waitFor('ttl range', (m) => m.type === 'error' && /ttl/.test(m.message));
    x.close();
  }));
});

describe('claims', () => {
  test('two simultaneous claims of one object: exactly one wins', { timeout: 60000 }, env.wrap(async () => {
    const room = 'claim-race';
    const x = await peer(a, 'x');
    const y = await peer(b, 'y');
    await x.join(room, 'tab-x');
    await y.join(room, 'tab-y');
    for (let i = 0; i < 20; i++) {
      const target = { id: `obj-${i}` };
      const [cx, cy] = await Promise.all([x.claim(room, i, target), y.claim(room, i, target)]);
      const granted = [cx, cy].filter((c) => c.status === 'granted');
      const denied = [cx, cy].filter((c) => c.status === 'denied');
      assert.equal(granted.length, 1, `claim ${i}: ${JSON.stringify([cx, cy])}`);
      assert.equal(denied.length, 1, `claim ${i}: ${JSON.stringify([cx, cy])}`);
      const winner = cx.status === 'granted' ? 'tab-x' : 'tab-y';
      assert.equal(denied[0].holder.client, winner);
    }
    // A later member gets the same holders.
    const z = await peer(b, 'z');
    const snap = await z.join(room, 'tab-z');
    assert.equal(snap.claims.length, 20);
    x.close();
    y.close();
    z.close();
  }));

  test('advisory claims only tell; enforced ones block other writers', { timeout: 60000 }, env.wrap(async () => {
    const room = 'claim-modes';
    const x = await peer(a, 'x');
    const y = await peer(b, 'y');
    await x.join(room, 'tab-x');
    await y.join(room, 'tab-y');
    const created = await y.ops(room, 'tab-y', 1, [
      { op: 'create', id: 'o', kind: 'bbox', fields: { item: 'img-1', label: 'cat', geometry: [1, 2, 3, 4] } },
    ]);
    assert.equal(created.results[0].status, 'applied');

    const claimed = await x.claim(room, 1, { id: 'o' }, 20000);
    assert.equal(claimed.status, 'granted');
    assert.equal(claimed.ttl, 20000);
    const told = await y.waitFor('claimed event', (m) => m.type === 'claimed' && m.claim.target.id === 'o');
    assert.equal(told.claim.client, 'tab-x');

    // Advisory (the default): the other writer's update applies.
    const advisory = await y.ops(room, 'tab-y', 2, [{ op: 'update', id: 'o', base: { 'tab-y': 1 }, set: { label: 'dog' } }]);
    assert.equal(advisory.results[0].status, 'applied', JSON.stringify(advisory));

    const settings = await x.ops(room, 'admin-x', 1, [{ op: 'settings', base: {}, set: { claims: 'enforced' } }]);
    assert.equal(settings.results[0].status, 'applied', JSON.stringify(settings));
    await y.waitFor('settings event', (m) => m.type === 'event' && m.seq === settings.seq);

    // Enforced: rejected for the other writer, applied for the holder.
    const blocked = await y.ops(room, 'tab-y', 3, [{ op: 'update', id: 'o', base: { 'tab-y': 2 }, set: { label: 'cow' } }]);
    assert.equal(blocked.results[0].status, 'rejected', JSON.stringify(blocked));
    assert.equal(blocked.results[0].reason, 'claimed');
    assert.match(blocked.results[0].message, /claimed by .*tab-x/);
    const deleted = await y.ops(room, 'tab-y', 4, [{ op: 'delete', id: 'o', base: { 'tab-y': 2 } }]);
    assert.equal(deleted.results[0].reason, 'claimed');
    const own = await x.ops(room, 'tab-x', 1, [{ op: 'update', id: 'o', base: { 'tab-y': 2 }, set: { label: 'cow' } }]);
    assert.equal(own.results[0].status, 'applied', JSON.stringify(own));

    // After the release the other writer may write again.
    assert.equal((await x.release(room, 2, { id: 'o' })).status, 'released');
    assert.equal((await x.release(room, 3, { id: 'o' })).status, 'not_held');
    await y.waitFor('released event', (m) => m.type === 'released' && m.reason === 'released');
    const freed = await y.ops(room, 'tab-y', 5, [{ op: 'update', id: 'o', base: { 'tab-y': 2, 'tab-x': 1 }, set: { label: 'ox' } }]);
    assert.equal(freed.results[0].status, 'applied', JSON.stringify(freed));
    x.close();
    y.close();
  }));

  test('a claim granted on another instance blocks the next write at once', { timeout: 60000 }, env.wrap(async () => {
    const room = 'claim-atomic';
    const x = await peer(a, 'x');
    const y = await peer(b, 'y');
    await x.join(room, 'tab-x');
    await y.join(room, 'tab-y');
    const setup = await y.ops(room, 'tab-y', 1, [
      { op: 'settings', base: {}, set: { claims: 'enforced' } },
      { op: 'create', id: 'p', kind: 'bbox', fields: { item: 'img-1', label: 'cat', geometry: [1, 2, 3, 4] } },
    ]);
    assert.equal(setup.results[1].status, 'applied');
    await x.waitFor('setup event', (m) => m.type === 'event' && m.seq === setup.seq);
    // The write is sent right after the grant, before the announcement can
    // be relied on to have reached instance b.
    for (let i = 0; i < 10; i++) {
      const claim = await x.claim(room, 100 + i, { id: 'p' });
      assert.equal(claim.status, 'granted');
      const write = await y.ops(room, 'tab-y', 2 + i * 2, [{ op: 'update', id: 'p', base: { 'tab-y': 1 }, set: { note: `n${i}` } }]);
      assert.equal(write.results[0].status, 'rejected', JSON.stringify(write));
      assert.equal(write.results[0].reason, 'claimed');
      assert.equal((await x.release(room, 200 + i, { id: 'p' })).status, 'released');
      const after = await y.ops(room, 'tab-y', 3 + i * 2, [{ op: 'update', id: 'p', base: { 'tab-y': 1 }, set: { note: `m${i}` } }]);
      assert.notEqual(after.results[0].reason, 'claimed', JSON.stringify(after));
    }
    x.close();
    y.close();
  }));

  test('overlapping frame ranges conflict and adjacent ones do not', { timeout: 60000 }, env.wrap(async () => {
    const room = 'claim-frames';
    const x = await peer(a, 'x');
    const y = await peer(b, 'y');
    await x.join(room, 'tab-x');
    await y.join(room, 'tab-y');
    assert.equal((await x.claim(room, 1, { item: 'vid-3', frames: [100, 180] })).status, 'granted');
    const overlap = await y.claim(room, 2, { item: 'vid-3', frames: [180, 200] });
    assert.equal(overlap.status, 'denied');
    assert.deepEqual(overlap.holder.target, { item: 'vid-3', frames: [100, 180] });
    assert.equal((await y.claim(room, 3, { item: 'vid-3', frames: [50, 99] })).status, 'granted');
    assert.equal((await y.claim(room, 4, { item: 'vid-3', frames: [181, 200] })).status, 'granted');
    assert.equal((await y.claim(room, 5, { item: 'vid-4', frames: [100, 180] })).status, 'granted');
    assert.equal((await y.claim(room, 6, { item: 'vid-3', frames: [120, 130] })).status, 'denied');
    // A holder's own ranges do not conflict with each other.
    assert.equal((await x.claim(room, 7, { item: 'vid-3', frames: [110, 120] })).status, 'granted');

    // Enforced: writes to objects on claimed frames of another holder fail.
    const setup = await x.ops(room, 'tab-x', 1, [
      { op: 'settings', base: {}, set: { claims: 'enforced' } },
    ]);
    assert.equal(setup.results[0].status, 'applied');
    await y.waitFor('settings event', (m) => m.type === 'event' && m.seq === setup.seq);
    const create = await y.ops(room, 'tab-y', 1, [
      { op: 'create', id: 'f150', kind: 'bbox', fields: { item: 'vid-3', frame: 150, label: 'car', geometry: [0, 0, 5, 5] } },
      { op: 'create', id: 'f190', kind: 'bbox', fields: { item: 'vid-3', frame: 190, label: 'car', geometry: [0, 0, 5, 5] } },
    ]);
    assert.equal(create.results[0].status, 'rejected', JSON.stringify(create));
    assert.equal(create.results[0].reason, 'claimed');
    assert.match(create.results[0].message, /frames 100 to 180 of item vid-3/);
    assert.equal(create.results[1].status, 'applied', JSON.stringify(create));
    x.close();
    y.close();
  }));

  test('claims end with their ttl, and with their connection after the grace', { timeout: 60000 }, env.wrap(async () => {
    const room = 'claim-end';
    const x = await peer(a, 'x');
    const y = await peer(b, 'y');
    await x.join(room, 'tab-x');
    await y.join(room, 'tab-y');
    assert.equal((await x.claim(room, 1, { id: 'short' }, 1000)).status, 'granted');
    const expired = await y.waitFor('expired claim', (m) => m.type === 'released' && m.claim.target.id === 'short');
    assert.equal(expired.reason, 'expired');

    // A replica that rejoins within the grace keeps its claims.
    assert.equal((await x.claim(room, 2, { id: 'kept' }, 60000)).status, 'granted');
    x.close();
    await y.waitFor('tab-x gone', isPresenceOf(room, 'tab-x', (m) => m.state === null));
    const x2 = await peer(b, 'x2');
    const snap = await x2.join(room, 'tab-x');
    assert.ok(snap.claims.some((c) => c.target.id === 'kept'), JSON.stringify(snap.claims));
    assert.equal((await y.claim(room, 3, { id: 'kept' })).status, 'denied');

    // Without a rejoin they end after the grace.
    assert.equal((await y.claim(room, 4, { id: 'mine' }, 60000)).status, 'granted');
    const from = x2.messages.length;
    y.close();
    const ended = await x2.waitFor('claims of tab-y end', (m) => m.type === 'released' && m.claim.target.id === 'mine', { from });
    assert.equal(ended.reason, 'disconnected');
    x2.close();
  }));

  test('kill -9 of an instance removes its presence and claims everywhere', { timeout: 90000 }, env.wrap(async () => {
    const room = 'claim-crash';
    const c = await env.startInstance('c', { args: ARGS });
    const w = await peer(c, 'w');
    const y = await peer(b, 'y');
    await w.join(room, 'tab-w');
    await y.join(room, 'tab-y');
    await y.waitFor('tab-w present', showsEntry(room, 'tab-w'));
    assert.equal((await w.claim(room, 1, { id: 'held' }, 600000)).status, 'granted');
    assert.equal((await w.claim(room, 2, { item: 'vid', frames: [0, 10] }, 600000)).status, 'granted');

    const killedAt = Date.now();
    c.child.kill('SIGKILL');
    await withTimeout(c.child.exited, 5000, 'instance c to exit after SIGKILL');
    env.instances.splice(env.instances.indexOf(c), 1); // its exit is the test
    await y.waitFor('tab-w gone', isPresenceOf(room, 'tab-w', (m) => m.state === null), { timeoutMs: 60000 });
    const goneMs = Date.now() - killedAt;
    const released = [];
    await y.waitFor('both claims end', (m) => {
      if (m.type === 'released' && m.claim.client === 'tab-w' && !released.includes(m)) released.push(m);
      return released.length === 2;
    }, { timeoutMs: 60000 });
    const claimsMs = Date.now() - killedAt;
    assert.ok(released.every((m) => m.reason === 'disconnected'), JSON.stringify(released));
    assert.ok(goneMs <= PRESENCE_BOUND_MS + SLACK_MS, `presence vanished after ${goneMs} ms; bound ${PRESENCE_BOUND_MS} ms`);
    assert.ok(claimsMs <= CLAIMS_BOUND_MS + SLACK_MS, `claims ended after ${claimsMs} ms; bound ${CLAIMS_BOUND_MS} ms`);

    // Nothing is left behind in Redis.
    assert.deepEqual(await redisLines(['HKEYS', `al:{${room}}:pres`]), ['tab-y']);
    assert.deepEqual(await redisLines(['HLEN', `al:{${room}}:claims`]), ['0']);
    y.close();
  }));

  test('a restarted instance leaves no presence behind', { timeout: 90000 }, env.wrap(async () => {
    const room = 'pres-restart';
    const x = await peer(a, 'x');
    const y = await peer(b, 'y');
    await x.join(room, 'tab-x');
    await y.join(room, 'tab-y');
    await y.waitFor('tab-x present', showsEntry(room, 'tab-x'));
    await a.stop('SIGTERM');
    await y.waitFor('tab-x gone', isPresenceOf(room, 'tab-x', (m) => m.state === null), { timeoutMs: 30000 });
    await a.start();
    const x2 = await peer(a, 'x2');
    const snap = await x2.join(room, 'tab-x');
    const keys = snap.presence.map((p) => p.client).sort();
    assert.deepEqual(keys.filter((k) => k === 'tab-x').length <= 1, true, JSON.stringify(keys));
    const stored = await redisLines(['HKEYS', `al:{${room}}:pres`]);
    assert.deepEqual(stored.sort(), ['tab-x', 'tab-y']);
    x2.close();
    y.close();
  }));
});

describe('idle actors', () => {
  test('an idle actor is forgotten with its acks', { timeout: 90000 }, env.wrap(async () => {
    const room = 'actor-idle';
    // Beats come every TTL / 3 seconds and idle actors are swept every
    // twelfth beat, so with TTL 3 the sweep runs about every 12 seconds.
    const d = await env.startInstance('d', { args: [...ARGS, '--actor-idle', '1'] });
    const x = await peer(d, 'x');
    await x.join(room, 'tab-x');
    const batch = [{ op: 'create', id: 'once', kind: 'tag' }];
    const first = await x.ops(room, 'old-bot', 1, batch);
    assert.equal(first.results[0].status, 'applied');
    assert.deepEqual(await redisLines(['HGET', `al:{${room}}:actors`, 'old-bot']), ['1']);
    assert.deepEqual(await redisLines(['LLEN', `al:{${room}}:ackq:old-bot`]), ['1']);

    const deadline = Date.now() + 60000;
    while ((await redisLines(['HEXISTS', `al:{${room}}:actors`, 'old-bot']))[0] === '1') {
      assert.ok(Date.now() < deadline, 'actor old-bot was not forgotten within 60 s');
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    assert.deepEqual(await redisLines(['HLEN', `al:{${room}}:acks`]), ['0']);
    assert.deepEqual(await redisLines(['EXISTS', `al:{${room}}:ackq:old-bot`]), ['0']);
    assert.deepEqual(await redisLines(['ZCARD', `al:{${room}}:seen`]), ['0']);

    // As documented, the same batch resent after that is decided again.
    const again = await x.ops(room, 'old-bot', 1, batch);
    assert.equal(again.results[0].status, 'conflict');
    assert.equal(again.results[0].reason, 'exists');
    x.close();
  }));
});
