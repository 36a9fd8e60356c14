// The JavaScript session (client-js/src/session.js) against real annolive
// instances and a real Redis. The tests cover replicas that converge,
// conflicts with the writer's dot, offline edits delivered once after the
// server comes back, and a batch resent after a lost ack that is not applied
// twice. They also cover reset snapshots, rate limits, token refresh,
// msgpack, presence, claims and the example bots.
//
// A connection is cut with a TCP relay on loopback that this file runs
// between the session and the instance: it can drop what the server sends
// (so an ack is lost), cut every connection, and refuse new ones.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { REPO, TestEnv, describeRun, httpSnapshot, runProcess, waitUntil, withTimeout } from './harness.mjs';

const SESSION_MODULE = path.join(REPO, 'client-js', 'src', 'index.js');
const EXAMPLES = path.join(REPO, 'client-js', 'examples');
const { AnnoliveClient, AnnoliveSession, memoryStorage } = await import(pathToFileURL(SESSION_MODULE).href);

const env = new TestEnv('client');
const sessions = [];
const relays = [];
let main;
let other;

/** A TCP relay from a loopback port to target's port, which tests can break. */
class Relay {
  constructor(target) {
    this.target = target;
    this.sockets = new Set();
    this.dropReplies = false;
    this.refusing = false;
    this.server = net.createServer((down) => this.accept(down));
  }

  async listen() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = this.server.address().port;
    return this;
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.port}`;
  }

  accept(down) {
    if (this.refusing) {
      down.destroy();
      return;
    }
    const up = net.connect(this.target.port, '127.0.0.1');
    this.sockets.add(down).add(up);
    down.on('data', (chunk) => up.write(chunk));
    up.on('data', (chunk) => {
      if (!this.dropReplies) down.write(chunk);
    });
    for (const [a, b] of [[down, up], [up, down]]) {
      a.on('error', () => b.destroy());
      a.on('close', () => {
        this.sockets.delete(a);
        b.destroy();
      });
    }
  }

  /** Destroys every relayed connection. */
  cut() {
    for (const socket of this.sockets) socket.destroy();
  }

  close() {
    this.cut();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

async function relayTo(instance) {
  const relay = await new Relay(instance).listen();
  relays.push(relay);
  return relay;
}

/** Starts a session on url with fast reconnects; closed in after(). */
async function session(url, options = {}) {
  const s = new AnnoliveSession(url, { minDelayMs: 20, maxDelayMs: 400, timeoutMs: 15000, ...options });
  s.errors = [];
  s.statuses = [];
  s.on('error', (err) => s.errors.push(err));
  s.on('status', (st) => s.statuses.push(st.status));
  sessions.push(s);
  await s.start();
  return s;
}

function joined(s, room) {
  return withTimeout(s.join(room), 15000, `session ${s.actor} to join ${room}`);
}

function settled(s, what = 'every edit to be acknowledged') {
  return waitUntil(`session ${s.actor}: ${what}`, () => s.pendingOps === 0 && s.status === 'open', { timeoutMs: 30000 });
}

/** Runs fn, which breaks the connection, and waits for the next open status and no pending edit. */
async function reconnected(s, fn) {
  const opens = s.statuses.filter((st) => st === 'open').length;
  await fn();
  await waitUntil(`session ${s.actor} to reconnect`, () => s.statuses.filter((st) => st === 'open').length > opens, { timeoutMs: 30000 });
  await settled(s, 'the edits after the reconnect');
}

function sameObjects(room, snapshot) {
  const byId = (a, b) => {
    if (a.id === b.id) return 0;
    return a.id < b.id ? -1 : 1;
  };
  const mine = room.objects().map((o) => ({ id: o.id, kind: o.kind, vv: o.vv, fields: o.fields })).sort(byId);
  const theirs = snapshot.objects.filter((o) => o.id !== '@room').map((o) => ({ id: o.id, kind: o.kind, vv: o.vv, fields: o.fields })).sort(byId);
  assert.deepStrictEqual(mine, theirs);
}

let roomCount = 0;
function roomName(what) {
  roomCount += 1;
  return `client-${what}-${roomCount}`;
}

before(async () => {
  await env.init();
  await env.startRedis();
  main = await env.startInstance('main');
  other = await env.startInstance('other');
}, { timeout: 60000 });

after(async () => {
  for (const s of sessions) await s.close().catch(() => {});
  for (const relay of relays) await relay.close();
  await env.cleanup();
}, { timeout: 60000 });

describe('session', () => {
  test('replicas on two instances converge, and a conflict names the writer', { timeout: 60000 }, env.wrap(async () => {
    const room = roomName('converge');
    const a = await session(main.wsUrl, { actor: 'conv-a' });
    const b = await session(other.wsUrl, { actor: 'conv-b', encoding: 'msgpack' });
    const ra = await joined(a, room);
    const rb = await joined(b, room);

    await ra.create('bbox', { item: 'img-1', label: 'car', geometry: [10, 20, 30, 40] }, { id: 'box' });
    await waitUntil('b to see the box', () => rb.get('box'));

    // Both edit the label from the same base; b's geometry is not contested.
    const conflicts = [];
    rb.on('conflict', (c) => conflicts.push(c));
    const first = await ra.update('box', { set: { label: 'bus' } });
    assert.equal(first.status, 'applied');
    const baseBeforeEvent = { 'conv-a': 1 };
    const second = await rb.edit({ op: 'update', id: 'box', base: baseBeforeEvent, set: { label: 'van', geometry: [0, 0, 5, 5] } });
    assert.equal(second.status, 'merged');
    assert.equal(conflicts.length, 1);
    assert.deepStrictEqual(conflicts[0].conflicts, [{ field: 'label', value: 'bus', dot: ['conv-a', 2] }]);
    await settled(a);
    await settled(b);
    await waitUntil('both views to agree', () => ra.seq === rb.seq && ra.seq === 3);
    assert.equal(rb.get('box').fields.label, 'bus', 'the conflicting label is corrected to the current value');
    assert.deepStrictEqual(rb.get('box').fields.geometry, [0, 0, 5, 5]);

    // retry() writes the lost value on the fresh base.
    const retried = await conflicts[0].retry();
    assert.equal(retried.status, 'applied');
    await waitUntil('a to see the retried label', () => ra.get('box')?.fields.label === 'van');
    sameObjects(ra, await httpSnapshot(main, room));
    sameObjects(rb, await httpSnapshot(main, room));
  }));

  test('offline edits are kept and delivered once after the server comes back', { timeout: 90000 }, env.wrap(async () => {
    const room = roomName('offline');
    const solo = await env.startInstance('solo');
    const storage = memoryStorage();
    const a = await session(() => solo.wsUrl, { actor: 'off-a', storage });
    const ra = await joined(a, room);
    await ra.create('bbox', { item: 'img-1', label: 'car', geometry: [1, 1, 5, 5] }, { id: 'o1' });

    await solo.stop();
    await waitUntil('the session to notice', () => a.status === 'offline' || a.status === 'connecting');
    ra.update('o1', { set: { label: 'truck' } });
    ra.create('tag', { label: 'offline-1' }, { id: 't1' });
    await Promise.resolve();
    ra.create('tag', { label: 'offline-2' }, { id: 't2' });
    await Promise.resolve();
    assert.equal(a.pendingOps, 3);
    assert.equal(ra.get('o1').fields.label, 'truck', 'the view shows offline edits');
    const saved = storage.load('annolive');
    assert.deepStrictEqual(saved.batches.map((b) => b.ops.length), [2, 1], 'the outbox is in the storage');

    await solo.start();
    await settled(a, 'the offline edits to be acknowledged');
    const snapshot = await httpSnapshot(solo, room);
    assert.equal(snapshot.seq, 3, 'the create, then one event per offline batch');
    assert.deepStrictEqual(snapshot.objects.find((o) => o.id === 'o1').vv, { 'off-a': 2 });
    sameObjects(ra, snapshot);
    assert.deepStrictEqual(storage.load('annolive').batches, [], 'the outbox is empty');
    assert.ok(a.statuses.includes('offline'), `statuses ${a.statuses.join(' ')}`);
    assert.ok(a.statuses.includes('resyncing'), `statuses ${a.statuses.join(' ')}`);
  }));

  test('a stored outbox is sent by a new session with the same storage', { timeout: 60000 }, env.wrap(async () => {
    const room = roomName('reload');
    const relay = await relayTo(main);
    relay.refusing = true;
    const storage = memoryStorage();
    const first = await session(relay.wsUrl, { storage, storageKey: 'tab' });
    const r1 = first.room(room);
    r1.create('tag', { label: 'before reload' }, { id: 'kept' });
    await Promise.resolve();
    await first.close();

    relay.refusing = false;
    const second = await session(relay.wsUrl, { storage, storageKey: 'tab' });
    assert.equal(second.actor, first.actor, 'the stored actor is reused');
    const r2 = await joined(second, room);
    await settled(second);
    assert.equal(r2.get('kept').fields.label, 'before reload');
    assert.deepStrictEqual(r2.get('kept').vv, { [first.actor]: 1 });
  }));

  test('a stored batch older than the kept acks is dropped as stale', { timeout: 60000 }, env.wrap(async () => {
    const room = roomName('stale');
    const writer = new AnnoliveClient(main.wsUrl, { actor: 'stale-a' });
    sessions.push({ close: () => writer.close() });
    await writer.connect();
    await writer.join(room);
    for (let opseq = 1; opseq <= 300; opseq++) {
      await writer.send(room, [{ op: 'create', id: `n${opseq}`, kind: 'tag' }], { opseq });
    }
    await writer.close();

    // A replica of the same actor that kept batch 1 from long ago, with another op in it.
    const storage = memoryStorage();
    storage.save('annolive', {
      version: 1, actor: 'stale-a', nextOpseq: 301,
      batches: [{ room, actor: 'stale-a', opseq: 1, ops: [{ op: 'create', id: 'late', kind: 'tag' }], atomic: false }],
    });
    const a = await session(main.wsUrl, { storage });
    const ra = a.room(room);
    const rejected = [];
    ra.on('rejected', (r) => rejected.push(r.result.reason));
    await ra.ready;
    await settled(a, 'the stale batch to be dropped');
    assert.deepStrictEqual(rejected, ['stale_opseq']);
    assert.ok(a.errors.some((e) => e.code === 'stale_opseq'), 'the error is reported');
    assert.equal(ra.get('late'), undefined, 'the dropped create leaves the view');
    assert.deepStrictEqual(storage.load('annolive').batches, []);
    assert.equal((await httpSnapshot(main, room)).seq, 300);
  }));

  test('a batch sent again after its ack was lost is not applied twice', { timeout: 60000 }, env.wrap(async () => {
    const room = roomName('lost-ack');
    const relay = await relayTo(main);
    const a = await session(relay.wsUrl, { actor: 'lost-a' });
    const ra = await joined(a, room);
    await ra.create('bbox', { item: 'img-1', label: 'car', geometry: [1, 1, 5, 5] }, { id: 'o1' });

    relay.dropReplies = true;
    const result = ra.update('o1', { set: { label: 'bus' } });
    await waitUntil('the server to apply the update', async () => (await httpSnapshot(main, room)).seq === 2);
    relay.cut();
    relay.dropReplies = false;

    const ack = await withTimeout(result, 30000, 'the result of the resent batch');
    assert.equal(ack.status, 'applied', 'the resent batch gets the ack of its first arrival');
    await settled(a);
    const snapshot = await httpSnapshot(main, room);
    assert.equal(snapshot.seq, 2, 'no second event');
    assert.deepStrictEqual(snapshot.objects.find((o) => o.id === 'o1').vv, { 'lost-a': 2 }, 'the update applied once');
    sameObjects(ra, snapshot);
  }));

  test('a resume past the trimmed stream takes the reset snapshot', { timeout: 120000 }, env.wrap(async () => {
    const room = roomName('reset');
    const short = await env.startInstance('short', { args: ['--stream-max', '100'] });
    const relay = await relayTo(short);
    const a = await session(relay.wsUrl, { actor: 'reset-a' });
    const ra = await joined(a, room);
    const resets = [];
    ra.on('reset', (r) => resets.push(r));
    await ra.create('tag', { label: 'early' }, { id: 'early' });

    relay.refusing = true;
    relay.cut();
    await waitUntil('the session to go offline', () => a.status === 'offline');
    ra.create('tag', { label: 'while away' }, { id: 'away' });

    const writer = new AnnoliveClient(short.wsUrl, { actor: 'reset-w' });
    sessions.push({ close: () => writer.close() });
    await writer.connect();
    await writer.join(room);
    await writer.send(room, [{ op: 'create', id: 'n', kind: 'tag', fields: { n: 0 } }]);
    for (let i = 1; i <= 340; i++) {
      await writer.send(room, [{ op: 'update', id: 'n', base: {}, set: { n: i } }]);
    }
    relay.refusing = false;

    await settled(a, 'the session to resynchronise');
    assert.equal(resets.length, 1, 'one reset snapshot');
    const snapshot = await httpSnapshot(short, room);
    assert.equal(snapshot.seq, 343);
    sameObjects(ra, snapshot);
    assert.equal(ra.get('n').fields.n, 340);
    assert.equal(ra.get('away').fields.label, 'while away', 'the offline edit was sent after the reset');
  }));

  test('rate-limited batches are sent again in order until each applies once', { timeout: 90000 }, env.wrap(async () => {
    const room = roomName('rate');
    const slow = await env.startInstance('slow', { args: ['--rate-ops', '4', '--rate-burst', '4'] });
    const a = await session(slow.wsUrl, { actor: 'rate-a' });
    const ra = await joined(a, room);
    const results = [];
    for (let i = 0; i < 12; i++) {
      results.push(ra.create('tag', { n: i }, { id: `t${i}` }));
      await Promise.resolve();
    }
    const retries = [];
    a.on('retry', (r) => retries.push(r.code));
    const statuses = (await withTimeout(Promise.all(results), 60000, 'every create to be acknowledged')).map((r) => r.status);
    assert.deepStrictEqual(statuses, Array(12).fill('applied'));
    const snapshot = await httpSnapshot(slow, room);
    assert.equal(snapshot.seq, 12, 'one event per batch');
    assert.ok(retries.includes('rate_limited'), `the server limited the rate: retries ${retries.join(' ')}`);
    sameObjects(ra, snapshot);
  }));

  test('edits made while Redis is down are sent again until they apply', { timeout: 90000 }, env.wrap(async () => {
    const room = roomName('redis-down');
    const a = await session(main.wsUrl, { actor: 'down-a' });
    const ra = await joined(a, room);
    await ra.create('tag', { label: 'before' }, { id: 'before' });
    const retries = [];
    a.on('retry', (r) => retries.push(r.code));

    await env.redis.stop();
    const results = [ra.create('tag', { label: 'during' }, { id: 'during' })];
    await Promise.resolve();
    results.push(ra.update('during', { set: { label: 'during, edited' } }));
    await waitUntil('the server to report Redis unreachable', () => retries.includes('unavailable'), { timeoutMs: 30000 });
    await env.redis.start();

    const statuses = (await withTimeout(Promise.all(results), 60000, 'the edits to apply')).map((r) => r.status);
    assert.deepStrictEqual(statuses, ['applied', 'applied']);
    await settled(a);
    const snapshot = await httpSnapshot(main, room);
    assert.equal(snapshot.seq, 3, 'each batch applied once');
    sameObjects(ra, snapshot);
  }));

  test('a token is refreshed before it expires and on reconnect', { timeout: 60000 }, env.wrap(async () => {
    const secret = crypto.randomBytes(32).toString('hex');
    const secretFile = path.join(env.dir, 'client-hs256.secret');
    fs.writeFileSync(secretFile, secret, { mode: 0o600 });
    const strict = await env.startInstance('strict', { auth: { secretFile }, args: ['--auth-skew', '0'] });
    const room = roomName('token');
    let minted = 0;
    let lastExp = 0;
    const getToken = () => {
      minted += 1;
      const now = Math.floor(Date.now() / 1000);
      lastExp = now + 6;
      const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
      const claims = Buffer.from(JSON.stringify({ sub: 'refresher', role: 'annotator', rooms: ['client-*'], iat: now, exp: lastExp })).toString('base64url');
      const signature = crypto.createHmac('sha256', secret).update(`${header}.${claims}`).digest('base64url');
      return `${header}.${claims}.${signature}`;
    };
    const relay = await relayTo(strict);
    const a = await session(relay.wsUrl, { actor: 'tok-a', getToken });
    const authed = [];
    a.on('authed', (m) => authed.push(m));
    const ra = await joined(a, room);
    const firstExp = lastExp;
    await waitUntil('two refreshes', () => authed.length >= 2, { timeoutMs: 30000 });
    await waitUntil('the first token to expire', () => Date.now() > firstExp * 1000 + 1500, { timeoutMs: 15000 });
    assert.equal(a.statuses.filter((s) => s === 'connecting').length, 1, `no reconnect: ${a.statuses.join(' ')}`);
    assert.equal((await ra.create('tag', { label: 'still in' })).status, 'applied');

    const before = minted;
    await reconnected(a, () => relay.cut());
    assert.ok(minted > before, 'the reconnect used a fresh token');
  }));
});

describe('presence and claims', () => {
  test('presence states reach the other members and vanish when one leaves', { timeout: 60000 }, env.wrap(async () => {
    const room = roomName('presence');
    const a = await session(main.wsUrl, { actor: 'pres-a' });
    const b = await session(other.wsUrl, { actor: 'pres-b' });
    const ra = await joined(a, room);
    const rb = await joined(b, room);
    assert.equal(ra.client, 'pres-a', 'the join sends the actor as the presence key');
    for (let x = 0; x <= 20; x++) a.setPresence(room, { name: 'Ana', cursor: [x, 5] });
    await waitUntil('b to see the last cursor', () => rb.presence.get('pres-a')?.state?.cursor?.[0] === 20);

    await reconnected(a, () => a.drop());
    await waitUntil('the state to come back after the reconnect', () => rb.presence.get('pres-a')?.state?.cursor?.[0] === 20);
    await a.close();
    await waitUntil('the entry to go', () => !rb.presence.has('pres-a'));
  }));

  test('claims: grant, deny, reconnect, release', { timeout: 60000 }, env.wrap(async () => {
    const room = roomName('claims');
    const a = await session(main.wsUrl, { actor: 'claim-a' });
    const b = await session(other.wsUrl, { actor: 'claim-b' });
    const ra = await joined(a, room);
    const rb = await joined(b, room);
    const events = [];
    rb.on('claims', (e) => events.push(`${e.type} ${e.claim.client}`));

    const granted = await a.claim(room, { id: 'o1' }, { ttl: 30000 });
    assert.equal(granted.status, 'granted');
    const denied = await b.claim(room, { id: 'o1' });
    assert.equal(denied.status, 'denied');
    assert.equal(denied.holder.client, 'claim-a');
    await waitUntil('b to see the claim', () => rb.claimOf('o1')?.client === 'claim-a');

    await reconnected(a, () => a.drop());
    assert.equal(ra.claimOf('o1')?.client, 'claim-a', 'the claim survives the reconnect');
    const released = await a.release(room, { id: 'o1' });
    assert.equal(released.status, 'released');
    await waitUntil('b to see the release', () => rb.claimOf('o1') === null);
    assert.deepStrictEqual(events, ['claimed claim-a', 'released claim-a']);
  }));
});

describe('example bots', () => {
  test('pre-label bot then QA bot', { timeout: 90000 }, env.wrap(async () => {
    const room = roomName('bots');
    const a = await session(main.wsUrl, { actor: 'bots-a' });
    const ra = await joined(a, room);
    await ra.create('item', { file_name: 'a.jpg', width: 500, height: 375 }, { id: 'img-a' });
    const bot = (name, args) => runProcess(process.execPath, [path.join(EXAMPLES, name), '--url', main.wsUrl, '--room', room, '--once', ...args], { timeoutMs: 30000 });

    const first = await bot('prelabel-bot.js', []);
    assert.equal(first.code, 0, describeRun('prelabel-bot', first));
    const created = Number(/created (\d+) boxes/.exec(first.stdout)?.[1]);
    assert.ok(created >= 1, first.stdout);
    assert.ok(created <= 3, first.stdout);
    const again = await bot('prelabel-bot.js', []);
    assert.equal(again.code, 0, describeRun('prelabel-bot again', again));
    assert.match(again.stdout, /created 0 boxes/);

    let snapshot = await httpSnapshot(main, room);
    const auto = snapshot.objects.filter((o) => o.fields.source === 'auto');
    assert.equal(auto.length, created);
    for (const box of auto) {
      assert.equal(box.kind, 'bbox');
      assert.equal(box.fields.item, 'img-a');
      assert.equal(typeof box.fields.score, 'number');
      assert.ok(box.fields.score > 0.5, `score ${box.fields.score}`);
      assert.ok(box.fields.score < 1, `score ${box.fields.score}`);
      const [x, y, w, h] = box.fields.geometry;
      assert.ok(x >= 0, `box ${box.fields.geometry} starts inside the image`);
      assert.ok(y >= 0, `box ${box.fields.geometry} starts inside the image`);
      assert.ok(x + w <= 500, `box ${box.fields.geometry} ends inside the image`);
      assert.ok(y + h <= 375, `box ${box.fields.geometry} ends inside the image`);
    }

    // A box that leaves the image, a polygon that leaves its box, and a label not in --labels.
    await ra.create('bbox', { item: 'img-a', label: 'car', geometry: [450, 300, 100, 50] }, { id: 'wide' });
    await ra.create('bbox', { item: 'img-a', label: 'car', geometry: [10, 10, 50, 50] }, { id: 'frame' });
    await ra.create('polygon', { item: 'img-a', label: 'car', box: 'frame', geometry: [[20, 20, 80, 20, 40, 40]] }, { id: 'poly' });
    await ra.create('bbox', { item: 'img-a', label: 'spaceship', geometry: [1, 1, 5, 5] }, { id: 'odd' });
    const qa = await bot('qa-bot.js', ['--labels', 'car,bus,person,bicycle']);
    assert.equal(qa.code, 0, describeRun('qa-bot', qa));
    snapshot = await httpSnapshot(main, room);
    const review = (id) => snapshot.objects.find((o) => o.id === id).fields.review;
    for (const box of auto) assert.equal(review(box.id).status, 'accepted');
    assert.equal(review('frame').status, 'accepted');
    assert.equal(review('wide').status, 'rejected');
    assert.match(review('wide').comment, /not inside the 500x375 image/);
    assert.equal(review('poly').status, 'rejected');
    assert.match(review('poly').comment, /not inside box frame/);
    assert.match(review('odd').comment, /label "spaceship" is not one of/);
    assert.equal(review('odd').by, 'qa-bot');
  }));

  test('--help lists every option the bots take', env.wrap(async () => {
    for (const [name, options] of [
      ['prelabel-bot.js', ['--url', '--room', '--token', '--actor', '--once', '--help']],
      ['qa-bot.js', ['--url', '--room', '--token', '--labels', '--actor', '--once', '--help']],
    ]) {
      const run = await runProcess(process.execPath, [path.join(EXAMPLES, name), '--help'], { timeoutMs: 10000 });
      assert.equal(run.code, 0, describeRun(`${name} --help`, run));
      for (const option of options) assert.match(run.stdout, new RegExp(`^  ${option} `, 'm'), `${name} --help names ${option}`);
      const bare = await runProcess(process.execPath, [path.join(EXAMPLES, name)], { timeoutMs: 10000 });
      assert.equal(bare.code, 2, describeRun(`${name} with no options`, bare));
      assert.match(bare.stderr, /--url URL --room ROOM/);
    }
  }));
});
