// Attacks on presence and claims. The tests send malformed messages in both
// encodings, floods of states and storms of claims, take entries over and
// reconnect in storms. They stop instances and Redis, delete rooms, write to
// claimed objects as other users, and resume over many events. Each test
// checks the behaviour PROTOCOL.md documents.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { REPO, TestEnv, fetchJson, runProcess, sleep, waitUntil, withTimeout } from './harness.mjs';

const require = createRequire(path.join(REPO, 'client-js', 'package.json'));
const WebSocket = require('ws');
const { encode, decode } = require('@msgpack/msgpack');

// Short times so that expiry and grace are reached quickly.
const TTL = 3;
const GRACE = 1;
const ARGS = ['--presence-ttl', String(TTL), '--claim-grace', String(GRACE)];
// An entry of a stopped instance is gone within TTL * 4/3 seconds, and its
// claims end GRACE seconds and one sweep (TTL / 3) later. The 10 s of slack
// only bound a hang on a loaded machine.
const SWEEP_BOUND_MS = TTL * 4000 / 3 + GRACE * 1000 + TTL * 1000 / 3 + 10000;

const env = new TestEnv('presence-abuse');
let a;
let b;
let secret;
let secretFile;
let authA;
let authB;

const peers = [];

before(async () => {
  await env.init();
  await env.startRedis();
  secret = crypto.randomBytes(32).toString('hex');
  secretFile = path.join(env.dir, 'hs256.secret');
  fs.writeFileSync(secretFile, secret, { mode: 0o600 });
  a = await env.startInstance('a', { args: ARGS });
  b = await env.startInstance('b', { args: ARGS });
  authA = await env.startInstance('auth-a', { args: ARGS, auth: { secretFile } });
  authB = await env.startInstance('auth-b', { args: ARGS, auth: { secretFile } });
}, { timeout: 90000 });

after(async () => {
  for (const p of peers) p.close();
  await env.cleanup();
}, { timeout: 120000 });

/** Signs an HS256 token for sub with role in every room. */
function tokenFor(sub, role = 'annotator', name = null) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub, role, rooms: ['*'], iat: now, exp: now + 3600, ...(name ? { name } : {}) };
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/**
 * A raw WebSocket peer that records every message it receives, in the JSON
 * or the msgpack encoding, with an optional bearer token.
 */
class Peer {
  constructor(instance, name, { enc = 'json', token = null } = {}) {
    this.name = name;
    this.instance = instance;
    this.enc = enc;
    this.messages = [];
    this.waiters = [];
    const protocol = enc === 'msgpack' ? 'annolive.v1.msgpack' : 'annolive.v1.json';
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    this.ws = new WebSocket(`${instance.wsUrl}/v1/ws`, protocol, { headers });
    this.counts = {};
    this.ws.on('message', (data, isBinary) => {
      const msg = isBinary ? decode(data) : JSON.parse(data.toString());
      this.messages.push(msg);
      this.counts[msg.type] = (this.counts[msg.type] ?? 0) + 1;
      for (const w of [...this.waiters]) w.check();
    });
    this.ws.on('error', () => {});
    this.closed = new Promise((resolve) => this.ws.on('close', (code) => resolve(code)));
    peers.push(this);
  }

  async open() {
    await withTimeout(new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
    }), 10000, `${this.name} to connect`);
    return this;
  }

  /** Sends a message: an object in the peer's encoding, or raw text or bytes. */
  send(msg) {
    if (typeof msg === 'string' || Buffer.isBuffer(msg)) this.ws.send(msg);
    else if (this.enc === 'msgpack') this.ws.send(encode(msg));
    else this.ws.send(JSON.stringify(msg));
  }

  /** Resolves with the first message, from index `from` on, that pred accepts. */
  waitFor(what, pred, { from = 0, timeoutMs = 20000 } = {}) {
    return withTimeout(new Promise((resolve) => {
      // Each message is looked at once, so long runs stay linear.
      let next = from;
      const w = {
        check: () => {
          for (; next < this.messages.length; next++) {
            if (!pred(this.messages[next])) continue;
            this.waiters.splice(this.waiters.indexOf(w), 1);
            resolve(this.messages[next]);
            return;
          }
        },
      };
      this.waiters.push(w);
      w.check();
    }), timeoutMs, `${this.name}: ${what}`);
  }

  /** Sends msg and waits for the next error message. */
  async expectError(msg, what) {
    const from = this.messages.length;
    this.send(msg);
    return this.waitFor(`error for ${what}`, (m) => m.type === 'error', { from });
  }

  async join(room, actor, extra = {}) {
    const from = this.messages.length;
    this.send({ type: 'join', room, ...(actor ? { actor } : {}), ...extra });
    return this.waitFor(`snapshot of ${room}`,
      (m) => (m.type === 'snapshot' || m.type === 'resumed' || m.type === 'error') && m.room === room, { from });
  }

  async ops(room, actor, opseq, ops) {
    const from = this.messages.length;
    this.send({ type: 'ops', room, actor, opseq, ops });
    return this.waitFor(`ack of ${actor}/${opseq}`, (m) => (m.type === 'ack' || m.type === 'error') && m.opseq === opseq, { from });
  }

  async claim(room, ref, target, ttl) {
    const from = this.messages.length;
    this.send({ type: 'claim', room, ref, target, ...(ttl ? { ttl } : {}) });
    return this.waitFor(`claim_ack ${ref}`, (m) => (m.type === 'claim_ack' && m.ref === ref) || m.type === 'error', { from });
  }

  async release(room, ref, target) {
    const from = this.messages.length;
    this.send({ type: 'release', room, ref, target });
    return this.waitFor(`release_ack ${ref}`, (m) => (m.type === 'release_ack' && m.ref === ref) || m.type === 'error', { from });
  }

  close() {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }
}

async function peer(instance, name, options) {
  return new Peer(instance, name, options).open();
}

/** Runs redis-cli against env's Redis and returns its output lines. */
async function redisLines(args, e = env) {
  const result = await runProcess('redis-cli', ['-p', String(e.redis.port), '--raw', ...args]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.split('\n').filter((line) => line !== '');
}

function isPresenceOf(room, client, pred = () => true) {
  return (m) => m.type === 'presence' && m.room === room && m.client === client && pred(m);
}

function showsEntry(room, client) {
  return (m) => (m.type === 'presence' && m.room === room && m.client === client && m.state !== null) ||
    ((m.type === 'snapshot' || m.type === 'resumed') && m.room === room && m.presence.some((p) => p.client === client));
}

/** Returns the open WebSocket connections of instance, from /metrics. */
async function openConnections(instance) {
  const response = await fetch(`${instance.httpUrl}/metrics`, { signal: AbortSignal.timeout(10000) });
  const match = /^annolive_connections (\d+)$/m.exec(await response.text());
  assert.ok(match, `/metrics of ${instance.name} has annolive_connections`);
  return Number(match[1]);
}

/** Checks that instance still serves /healthz and a join. */
async function stillServes(instance, room) {
  const health = await fetchJson(`${instance.httpUrl}/healthz`);
  assert.equal(health.status, 200);
  const p = await peer(instance, 'probe');
  const snap = await p.join(room, 'probe');
  assert.equal(snap.type, 'snapshot', JSON.stringify(snap));
  p.close();
}

/** Sends a POST of an op batch over HTTP and returns {status, body}. */
async function httpOps(instance, room, batch, token = null) {
  const response = await fetch(`${instance.httpUrl}/v1/rooms/${room}/ops`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(batch),
    signal: AbortSignal.timeout(20000),
  });
  return { status: response.status, body: await response.json() };
}

describe('malformed presence, claim and release messages', () => {
  test('JSON: claim bounds', { timeout: 60000 }, env.wrap(async () => {
    const room = 'abuse-json';
    const x = await peer(a, 'x');
    await x.join(room, 'tab-x');
    const claim = (rest) => `{"type":"claim","room":"${room}",${rest}}`;

    // The largest ref and frame are echoed exactly, and one more is rejected.
    x.send(claim('"ref":9007199254740991,"target":{"item":"v","frames":[0,9007199254740991]}'));
    const big = await x.waitFor('claim_ack of ref 2^53-1', (m) => m.type === 'claim_ack' || m.type === 'error');
    assert.equal(big.type, 'claim_ack', JSON.stringify(big));
    assert.equal(big.status, 'granted');
    assert.equal(big.ref, 9007199254740991);
    assert.deepEqual(big.target, { item: 'v', frames: [0, 9007199254740991] });
    for (const [rest, what] of [
      ['"ref":9007199254740992,"target":{"id":"o"}', /ref/],
      ['"ref":-1,"target":{"id":"o"}', /ref/],
      ['"ref":1.5,"target":{"id":"o"}', /ref/],
      ['"ref":"1","target":{"id":"o"}', /ref/],
      ['"ref":18446744073709551615,"target":{"id":"o"}', /./],
      ['"target":{"item":"v","frames":[0,9007199254740992]}', /frames/],
      ['"target":{"item":"v","frames":[-1,3]}', /frames/],
      ['"target":{"item":"v","frames":[1.0,3]}', /frames/],
      ['"target":{"item":"v","frames":[1,2,3]}', /frames/],
      ['"target":{"item":"v"}', /frames/],
      ['"target":{"item":"v","frames":"1-3"}', /frames/],
      ['"target":{"id":"o","item":"v","frames":[1,2]}', /target/],
      ['"target":{}', /target/],
      ['"target":[]', /target/],
      ['"target":null', /target/],
      ['"target":{"id":""}', /id/],
      ['"target":{"id":"a\\u0001b"}', /id/],
      ['"target":{"id":"a b"}', /id/],
      ['"target":{"id":"caf\u00e9"}', /id/],
      [`"target":{"id":"${'o'.repeat(65)}"}`, /id/],
      ['"target":{"id":7}', /id/],
      ['"target":{"id":"o"},"ttl":999', /ttl/],
      ['"target":{"id":"o"},"ttl":600001', /ttl/],
      ['"target":{"id":"o"},"ttl":1e3', /ttl/],
      ['"target":{"id":"o"},"ttl":null', /ttl/],
    ]) {
      const err = await x.expectError(claim(rest), rest);
      assert.ok(['invalid_message', 'invalid_json'].includes(err.code), `${rest}: ${JSON.stringify(err)}`);
      assert.match(err.message, what, rest);
    }
    const unjoined = await x.expectError({ type: 'claim', room: 'abuse-other', target: { id: 'o' } }, 'not joined');
    assert.equal(unjoined.code, 'not_joined');
    const release = await x.expectError(`{"type":"release","room":"${room}","target":{"id":"o","item":"v"}}`, 'release');
    assert.equal(release.code, 'invalid_message');

    // The ttl bounds themselves are accepted.
    assert.equal((await x.claim(room, 1, { id: 'lo' }, 1000)).status, 'granted');
    assert.equal((await x.claim(room, 2, { id: 'hi' }, 600000)).status, 'granted');
    await stillServes(a, room);
    x.close();
  }));

  test('JSON: presence state limits', { timeout: 60000 }, env.wrap(async () => {
    const room = 'abuse-state';
    const x = await peer(a, 'x');
    const y = await peer(b, 'y');
    await x.join(room, 'tab-x');
    await y.join(room, 'tab-y');

    // {"b":"..."} is 8 bytes plus the string: exactly 4096 bytes is accepted.
    const exact = { b: 'x'.repeat(4096 - 8) };
    assert.equal(JSON.stringify(exact).length, 4096);
    x.send({ type: 'presence', room, state: exact });
    const seen = await y.waitFor('state of 4096 bytes', isPresenceOf(room, 'tab-x', (m) => m.state?.b?.length === 4088));
    assert.deepEqual(seen.state, exact);
    const over = await x.expectError({ type: 'presence', room, state: { b: 'x'.repeat(4089) } }, '4097 bytes');
    assert.equal(over.code, 'too_large');
    // Multi-byte characters count as their UTF-8 bytes.
    const wide = await x.expectError({ type: 'presence', room, state: { b: '\u00e9'.repeat(2045) } }, 'wide');
    assert.equal(wide.code, 'too_large', JSON.stringify(wide));

    // Nesting past --max-depth is rejected, and a state within it is kept.
    let deep = {};
    for (let i = 0; i < 40; i++) deep = { d: deep };
    const tooDeep = await x.expectError({ type: 'presence', room, state: deep }, 'deep state');
    assert.match(tooDeep.code, /too_large|invalid_json|invalid_message/);
    let ok = { end: true };
    for (let i = 0; i < 28; i++) ok = { d: ok };
    x.send({ type: 'presence', room, state: ok });
    const deepSeen = await y.waitFor('state nested 29 levels', isPresenceOf(room, 'tab-x', (m) => m.state?.d !== undefined));
    assert.deepEqual(deepSeen.state, ok);

    // A NUL in a key is rejected. Unicode, escapes and odd keys travel unchanged.
    const nul = await x.expectError(JSON.stringify({ type: 'presence', room, state: { 'na\u0000me': 1 } }), 'NUL key');
    assert.equal(nul.code, 'invalid_json', JSON.stringify(nul));
    const odd = { '': 1, emoji: '\u{1F600}\u2028', big: 1e308, neg: -0.5, n: null, t: true, v: { client: 'forged', sub: 'root' } };
    x.send({ type: 'presence', room, state: odd });
    const oddSeen = await y.waitFor('odd state', isPresenceOf(room, 'tab-x', (m) => m.state?.emoji !== undefined));
    assert.deepEqual(oddSeen.state, odd);
    assert.equal(oddSeen.sub, 'anonymous');

    for (const [bad, what] of [
      [`{"type":"presence","room":"${room}","state":null}`, /state/],
      [`{"type":"presence","room":"${room}","state":"x"}`, /state/],
      [`{"type":"presence","room":"${room}"}`, /state/],
      [`{"type":"presence","room":"${room}","state":{"a":1,"a":2}}`, /./],
      [`{"type":"presence","room":"${room}","state":{"a":NaN}}`, /./],
      [`{"type":"presence","room":"${room}","state":{"a":"\\ud800"}}`, /./],
    ]) {
      const err = await x.expectError(bad, bad);
      assert.match(err.message, what, bad);
    }
    await stillServes(a, room);
    await stillServes(b, room);
    x.close();
    y.close();
  }));

  test('msgpack: out-of-range and unsupported values', { timeout: 60000 }, env.wrap(async () => {
    const room = 'abuse-msgpack';
    const x = await peer(a, 'x', { enc: 'msgpack' });
    const y = await peer(b, 'y');
    await x.join(room, 'tab-x');
    await y.join(room, 'tab-y');

    const claimOf = (extra) => ({ type: 'claim', room, ...extra });
    const u64max = encode(claimOf({ ref: 18446744073709551615n, target: { id: 'o' } }), { useBigInt64: true });
    // The last byte of the two-byte character becomes an ASCII one.
    const badUtf8 = Buffer.from(encode({ type: 'presence', room, state: { s: '\u00e9' } }));
    badUtf8[badUtf8.length - 1] = 0x28;
    // The empty map of the state becomes {1: "x"}.
    const empty = Buffer.from(encode({ type: 'presence', room, state: {} }));
    const intKey = Buffer.concat([empty.subarray(0, -1), Buffer.from([0x81, 0x01, 0xa1, 0x78])]);
    const cases = [
      [encode(claimOf({ ref: 2 ** 53, target: { id: 'o' } })), 'ref 2^53'],
      [u64max, 'ref 2^64-1'],
      [encode(claimOf({ ref: -5, target: { id: 'o' } })), 'negative ref'],
      [encode(claimOf({ ref: 1.25, target: { id: 'o' } })), 'float ref'],
      [encode(claimOf({ target: { item: 'v', frames: [0, 2 ** 53] } })), 'frame 2^53'],
      [encode(claimOf({ target: { item: 'v', frames: [0.5, 3] } })), 'float frame'],
      [encode(claimOf({ target: { item: 'v', frames: [Number.NaN, 3] } })), 'NaN frame'],
      [encode(claimOf({ target: { id: new Uint8Array([0x6f]) } })), 'bin id'],
      [encode(claimOf({ target: { id: 'o' }, ttl: 2 ** 60 })), 'ttl 2^60'],
      [encode({ type: 'presence', room, state: { blob: new Uint8Array(8) } }), 'bin in state'],
      [encode({ type: 'presence', room, state: { x: Number.POSITIVE_INFINITY } }), 'infinity in state'],
      [intKey, 'integer key'],
      [Buffer.from([0x83, 0xa4, 0x74, 0x79, 0x70, 0x65, 0xa8, 0x70, 0x72, 0x65, 0x73, 0x65, 0x6e, 0x63, 0x65,
        0xa4, 0x72, 0x6f, 0x6f, 0x6d, 0xa0, 0xa5, 0x73, 0x74, 0x61, 0x74, 0x65, 0xdf, 0xff, 0xff, 0xff, 0xff]), 'huge map count'],
      [Buffer.concat([encode({ type: 'presence', room, state: { s: 'ok' } }).subarray(0, 20)]), 'truncated'],
      [badUtf8, 'bad UTF-8'],
    ];
    for (const [bytes, what] of cases) {
      const err = await x.expectError(Buffer.from(bytes), what);
      assert.ok(['invalid_message', 'invalid_json', 'too_large'].includes(err.code), `${what}: ${JSON.stringify(err)}`);
    }

    // Good messages still work on the same connection.
    assert.equal((await x.claim(room, 2 ** 53 - 1, { item: 'v', frames: [2 ** 53 - 2, 2 ** 53 - 1] })).status, 'granted');
    x.send({ type: 'presence', room, state: { cursor: [1.5, 2] } });
    const seen = await y.waitFor('msgpack state on the JSON side', isPresenceOf(room, 'tab-x', (m) => m.state?.cursor));
    assert.deepEqual(seen.state, { cursor: [1.5, 2] });
    await stillServes(a, room);
    x.close();
    y.close();
  }));
});

describe('floods and storms', () => {
  test('state flood: last states arrive', { timeout: 120000 }, env.wrap(async () => {
    const room = 'abuse-flood';
    const N = 16;
    const BURST = 300;
    const watcher = await peer(b, 'watcher');
    await watcher.join(room, 'watcher');
    const senders = [];
    for (let i = 0; i < N; i++) {
      const p = await peer(i % 2 ? a : b, `s${i}`);
      await p.join(room, `s${i}`);
      senders.push(p);
    }
    const from = watcher.messages.length;
    for (let k = 0; k < BURST; k++) {
      for (let i = 0; i < N; i++) senders[i].send({ type: 'presence', room, state: { k, i, pad: 'p'.repeat(200) } });
    }
    for (let i = 0; i < N; i++) {
      await watcher.waitFor(`last state of s${i}`, isPresenceOf(room, `s${i}`, (m) => m.state?.k === BURST - 1), { from, timeoutMs: 60000 });
    }
    // Coalescing: far fewer states went out than were sent.
    const relayed = watcher.messages.slice(from).filter((m) => m.type === 'presence').length;
    assert.ok(relayed < N * BURST, `relayed ${relayed} of ${N * BURST} states`);

    // A later member gets every last state in its snapshot.
    const late = await peer(a, 'late');
    const snap = await late.join(room, 'late');
    for (let i = 0; i < N; i++) {
      assert.equal(snap.presence.find((e) => e.client === `s${i}`)?.state?.k, BURST - 1, `s${i}`);
    }
    for (const p of senders) p.close();
    late.close();
    await waitUntil('every entry of the flood to leave Redis', async () =>
      (await redisLines(['HKEYS', `al:{${room}}:pres`])).join(',') === 'watcher', { timeoutMs: 20000 });
    watcher.close();
  }));

  /**
   * Opens five holders on instance and sends 2,000 claims from each without
   * waiting, the burst that the default rate limit allows. Holder h claims
   * the targets target(h, k). Returns the holders once every claim has a reply.
   */
  async function claimStorm(instance, room, target) {
    const holders = [];
    for (let i = 0; i < 5; i++) {
      const p = await peer(instance, `h${i}`);
      await p.join(room, `h${i}`);
      holders.push(p);
    }
    for (let h = 0; h < 5; h++) {
      for (let k = 0; k < 2000; k++) holders[h].send({ type: 'claim', room, ref: k, target: target(h, k), ttl: 600000 });
    }
    for (let h = 0; h < 5; h++) {
      await waitUntil(`the 2,000 replies of h${h}`, () =>
        (holders[h].counts.claim_ack ?? 0) + (holders[h].counts.error ?? 0) >= 2000, { timeoutMs: 200000, intervalMs: 200 });
      const errors = holders[h].messages.filter((m) => m.type === 'error');
      assert.equal(errors.length, 0, JSON.stringify(errors.slice(0, 3)));
      const denied = holders[h].messages.find((m) => m.type === 'claim_ack' && m.status !== 'granted');
      assert.equal(denied, undefined, JSON.stringify(denied));
    }
    return holders;
  }

  test('claim storm: room limit and cleanup', { timeout: 240000 }, env.wrap(async () => {
    const room = 'abuse-storm';
    const storm = await env.startInstance('storm', { args: ARGS });
    const watcher = await peer(b, 'watcher');
    await watcher.join(room, 'watcher');
    const holders = await claimStorm(storm, room, (h, k) => ({ id: `o-${h}-${k}` }));
    assert.deepEqual(await redisLines(['HLEN', `al:{${room}}:claims`]), ['10000']);

    // The limit: one more is too_large, a renewal is not, and a release frees a place.
    const full = await holders[0].claim(room, 90001, { id: 'one-more' });
    assert.equal(full.type, 'error');
    assert.equal(full.code, 'too_large');
    assert.equal((await holders[0].claim(room, 90002, { id: 'o-0-1' }, 30000)).status, 'granted');
    const other = await holders[1].claim(room, 90003, { id: 'o-0-1' });
    assert.equal(other.status, 'denied');
    assert.equal((await holders[0].release(room, 90004, { id: 'o-0-1' })).status, 'released');
    assert.equal((await holders[1].claim(room, 90005, { id: 'one-more' })).status, 'granted');

    // A later member gets all of them.
    const late = await peer(a, 'late');
    const snap = await late.join(room, 'late');
    assert.equal(snap.claims.length, 10000);
    late.close();

    // The holders leave: every claim ends, everywhere, and nothing is left in Redis.
    for (const p of holders) p.close();
    await waitUntil('10,000 released messages at the watcher', () => (watcher.counts.released ?? 0) >= 10001,
      { timeoutMs: SWEEP_BOUND_MS + 60000, intervalMs: 500 });
    assert.deepEqual(await redisLines(['HLEN', `al:{${room}}:claims`]), ['0']);
    await storm.stop();
    watcher.close();
  }));

  // Range claims are checked against an index of the item's ranges, so a
  // burst of them leaves Redis free to take the claimers' renewals.
  test('range claim storm: claimers stay present', { timeout: 300000 }, env.wrap(async () => {
    const room = 'abuse-range-storm';
    const storm = await env.startInstance('range-storm', { args: ARGS });
    const watcher = await peer(b, 'watcher');
    await watcher.join(room, 'watcher');
    const from = watcher.messages.length;
    const holders = await claimStorm(storm, room,
      // An item takes at most 256 frame-range claims, so the ranges are
      // spread over ten items per holder.
      (h, k) => (h < 3 ? { id: `o-${h}-${k}` } : { item: `it-${h}-${k % 10}`, frames: [k * 10, k * 10 + 9] }));
    const ended = watcher.messages.slice(from).filter((m) => m.type === 'released' || (m.type === 'presence' && m.state === null));
    assert.deepEqual(ended.slice(0, 3), [], `${ended.length} entries and claims of connected holders ended`);
    assert.deepEqual(await redisLines(['HLEN', `al:{${room}}:claims`]), ['10000']);
    for (const p of holders) p.close();
    await storm.stop();
    watcher.close();
  }));

  test('claims and releases: rate limit', { timeout: 60000 }, env.wrap(async () => {
    const room = 'abuse-rate';
    const slow = await env.startInstance('slow', { args: [...ARGS, '--rate-ops', '1', '--rate-burst', '3'] });
    const x = await peer(slow, 'x');
    await x.join(room, 'tab-x');
    const from = x.messages.length;
    for (let i = 0; i < 20; i++) x.send({ type: i % 2 ? 'release' : 'claim', room, ref: i, target: { id: `r${i}` } });
    await waitUntil('20 replies', () => x.messages.slice(from).filter((m) => ['claim_ack', 'release_ack', 'error'].includes(m.type)).length >= 20);
    const limited = x.messages.slice(from).filter((m) => m.type === 'error' && m.code === 'rate_limited');
    assert.ok(limited.length >= 10, `${limited.length} rate_limited`);
    await slow.stop();
    x.close();
  }));
});

describe('entries across connections and instances', () => {
  test('entry takeover: same and other user', { timeout: 60000 }, env.wrap(async () => {
    const room = 'abuse-takeover';
    const u1 = tokenFor('u1', 'annotator', 'Ana');
    const u2 = tokenFor('u2', 'annotator', 'Bo');
    const watcher = await peer(authB, 'watcher', { token: tokenFor('w') });
    await watcher.join(room, 'watcher');
    const first = await peer(authA, 'first', { token: u1 });
    await first.join(room, 'tab-a');
    assert.equal((await first.claim(room, 1, { id: 'o1' })).status, 'granted');

    // Another user with the same key is rejected on either instance.
    for (const inst of [authA, authB]) {
      const thief = await peer(inst, 'thief', { token: u2 });
      thief.send({ type: 'join', room, actor: 'tab-a' });
      const err = await thief.waitFor('forbidden', (m) => m.type === 'error' && m.code === 'forbidden');
      assert.match(err.message, /another user/);
      const claim = await thief.claim(room, 2, { id: 'o1' });
      assert.equal(claim.type, 'error', JSON.stringify(claim));
      assert.equal(claim.code, 'forbidden');
      const rel = await thief.release(room, 3, { id: 'o1' });
      assert.equal(rel.type, 'error', JSON.stringify(rel));
      thief.close();
    }

    // The same user on the other instance takes the entry and its claims over.
    const second = await peer(authB, 'second', { token: u1 });
    const snap = await second.join(room, 'tab-a');
    assert.ok(snap.claims.some((c) => c.target.id === 'o1' && c.client === 'tab-a'));
    assert.equal((await second.release(room, 4, { id: 'o1' })).status, 'released');
    assert.deepEqual((await redisLines(['HKEYS', `al:{${room}}:pres`])).sort(), ['tab-a', 'watcher']);

    // The old connection closing does not remove the new owner's entry.
    first.close();
    await first.closed;
    second.send({ type: 'presence', room, state: { after: 1 } });
    await watcher.waitFor('state of the new owner', isPresenceOf(room, 'tab-a', (m) => m.state?.after === 1));
    assert.deepEqual((await redisLines(['HKEYS', `al:{${room}}:pres`])).sort(), ['tab-a', 'watcher']);
    second.close();
    await watcher.waitFor('tab-a gone', isPresenceOf(room, 'tab-a', (m) => m.state === null));
    assert.deepEqual(await redisLines(['HKEYS', `al:{${room}}:pres`]), ['watcher']);
    watcher.close();
  }));

  test('reconnect storm: one entry, then none', { timeout: 120000 }, env.wrap(async () => {
    const room = 'abuse-reconnect';
    const watcher = await peer(a, 'watcher');
    await watcher.join(room, 'watcher');
    const live = [];
    const before = [await openConnections(a), await openConnections(b)];
    for (let i = 0; i < 40; i++) {
      const p = new Peer(i % 2 ? a : b, `r${i}`);
      await p.open();
      p.send({ type: 'join', room, actor: 'tab-r' });
      p.send({ type: 'presence', room, state: { i } });
      if (i % 3 === 0) p.send({ type: 'claim', room, ref: i, target: { id: `rc${i % 4}` } });
      // Some close at once, some after their snapshot, some stay a while.
      if (i % 4 === 0) p.close();
      else if (i % 4 === 1) await p.waitFor('snapshot', (m) => m.type === 'snapshot').then(() => p.close());
      else live.push(p);
      if (live.length > 3) live.shift().close();
    }
    // The entry belongs to the connection whose join reaches Redis last,
    // and joins on two instances reach it in any order. The joins and
    // closes above are all handled before the last join is sent.
    for (const p of live) await p.waitFor('snapshot', (m) => m.type === 'snapshot');
    const liveOn = (inst) => live.filter((p) => p.instance === inst).length;
    await waitUntil('the closed connections to end on both instances', async () =>
      await openConnections(a) === before[0] + liveOn(a) &&
      await openConnections(b) === before[1] + liveOn(b), { timeoutMs: 30000 });
    await sleep(200);
    const last = await peer(b, 'last');
    await last.join(room, 'tab-r');
    last.send({ type: 'presence', room, state: { final: true } });
    await watcher.waitFor('final state', isPresenceOf(room, 'tab-r', (m) => m.state?.final === true), { timeoutMs: 30000 });
    for (const p of live) p.close();

    // The last connection owns the entry, so the others closing leave it.
    // The pause gives their closes time to reach Redis.
    await sleep(500);
    assert.deepEqual((await redisLines(['HKEYS', `al:{${room}}:pres`])).sort(), ['tab-r', 'watcher']);
    const snap = await (await peer(a, 'check')).join(room, 'check');
    assert.equal(snap.presence.filter((e) => e.client === 'tab-r').length, 1);
    assert.deepEqual(snap.presence.find((e) => e.client === 'tab-r').state, { final: true });
    last.close();
    await waitUntil('tab-r to leave Redis', async () =>
      !(await redisLines(['HKEYS', `al:{${room}}:pres`])).includes('tab-r'), { timeoutMs: 20000 });
    await waitUntil('the claims of tab-r to end', async () =>
      (await redisLines(['HLEN', `al:{${room}}:claims`]))[0] === '0', { timeoutMs: SWEEP_BOUND_MS });
    watcher.close();
  }));

  test('SIGTERM during joins: no entry left', { timeout: 90000 }, env.wrap(async () => {
    const doomed = await env.startInstance('doomed', { args: ARGS });
    const N = 40;
    const ps = [];
    for (let i = 0; i < N; i++) ps.push(await peer(doomed, `d${i}`));
    // Joins and claims are sent and the signal follows at once.
    for (let i = 0; i < N; i++) {
      ps[i].send({ type: 'join', room: `abuse-term-${i % 8}`, actor: `d${i}` });
      ps[i].send({ type: 'claim', room: `abuse-term-${i % 8}`, ref: 1, target: { id: `t${i}` } });
    }
    const stopped = await doomed.stop('SIGTERM');
    assert.equal(stopped.code, 0, JSON.stringify(stopped));
    env.instances.splice(env.instances.indexOf(doomed), 1);
    // Right after the exit: no entry is left (claims wait for the grace).
    const left = [];
    for (let r = 0; r < 8; r++) left.push(...await redisLines(['HKEYS', `al:{abuse-term-${r}}:pres`]));
    assert.deepEqual(left, []);
    for (const p of ps) p.close();
  }));
});

describe('recovery of entries', () => {
  // An entry swept while its instance stalled is written again by the
  // next renewal or state of its member.
  test('stalled instance: members come back', { timeout: 90000 }, env.wrap(async () => {
    const room = 'abuse-stall';
    const stall = await env.startInstance('stall', { args: ARGS });
    const x = await peer(stall, 'x');
    const y = await peer(b, 'y');
    await x.join(room, 'tab-x');
    await y.join(room, 'tab-y');
    await y.waitFor('tab-x present', showsEntry(room, 'tab-x'));

    stall.child.kill('SIGSTOP');
    try {
      await y.waitFor('tab-x swept while its instance is stopped', isPresenceOf(room, 'tab-x', (m) => m.state === null), { timeoutMs: 30000 });
    } finally {
      stall.child.kill('SIGCONT');
    }
    const from = y.messages.length;
    x.send({ type: 'presence', room, state: { back: 1 } });
    await y.waitFor('tab-x back after the stall', isPresenceOf(room, 'tab-x', (m) => m.state?.back === 1), { from, timeoutMs: 20000 });
    x.close();
    y.close();
    await stall.stop();
  }));

  // A state sent while Redis is down goes out once Redis is back.
  test('Redis outage: last state arrives', { timeout: 90000 }, async () => {
    const own = new TestEnv('presence-abuse-outage');
    await own.init();
    try {
      await own.startRedis();
      // A long ttl, so that no entry expires during the outage.
      const longTtl = ['--presence-ttl', '60', '--claim-grace', '60'];
      const p = await own.startInstance('p', { args: longTtl });
      const q = await own.startInstance('q', { args: longTtl });
      const room = 'abuse-outage';
      const x = await peer(p, 'x');
      const y = await peer(q, 'y');
      await x.join(room, 'tab-x');
      await y.join(room, 'tab-y');
      await y.waitFor('tab-x present', showsEntry(room, 'tab-x'));

      await own.redis.stop();
      await waitUntil('instance p to see Redis down', async () => (await fetchJson(`${p.httpUrl}/healthz`)).body?.redis === false);
      x.send({ type: 'presence', room, state: { during: 1 } });
      await sleep(200);
      await own.redis.start();
      for (const inst of [p, q]) {
        await waitUntil(`instance ${inst.name} to see Redis up`, async () => (await fetchJson(`${inst.httpUrl}/healthz`)).body?.redis === true, { timeoutMs: 20000 });
      }
      await y.waitFor('the state sent during the outage', isPresenceOf(room, 'tab-x', (m) => m.state?.during === 1), { timeoutMs: 20000 });
      // A state sent after the outage arrives.
      x.send({ type: 'presence', room, state: { after: 1 } });
      await y.waitFor('the state sent after the outage', isPresenceOf(room, 'tab-x', (m) => m.state?.after === 1), { timeoutMs: 20000 });
      x.close();
      y.close();
    } catch (err) {
      own.printLogs(`outage test failed: ${err.message.split('\n')[0]}`);
      throw err;
    } finally {
      await own.cleanup();
    }
  });

  // After Redis restarts from its AOF, no instance sweeps for a ttl, so
  // every instance renews its members first.
  test('Redis kill -9: entries and claims kept', { timeout: 120000 }, async () => {
    const own = new TestEnv('presence-abuse-redis-kill');
    await own.init();
    try {
      await own.startRedis();
      const p = await own.startInstance('p', { args: ARGS });
      const q = await own.startInstance('q', { args: ARGS });
      const room = 'abuse-redis-kill';
      const x = await peer(p, 'x');
      const y = await peer(q, 'y');
      await x.join(room, 'tab-x');
      await y.join(room, 'tab-y');
      assert.equal((await x.claim(room, 1, { id: 'kx' }, 600000)).status, 'granted');
      assert.equal((await y.claim(room, 2, { id: 'ky' }, 600000)).status, 'granted');
      await sleep(1500); // the AOF is synced every second

      own.redis.child.kill('SIGKILL');
      await withTimeout(own.redis.child.exited, 5000, 'redis-server to exit');
      await sleep(TTL * 4000 / 3 + 1000); // longer than an entry lives without renewal
      await own.redis.start();
      for (const inst of [p, q]) {
        await waitUntil(`instance ${inst.name} to see Redis up`, async () => (await fetchJson(`${inst.httpUrl}/healthz`)).body?.redis === true, { timeoutMs: 20000 });
      }
      // Two renewal periods and the grace: a wrong sweep has shown by then.
      await sleep(2 * TTL * 1000 / 3 + GRACE * 1000 + 1000);
      const z = await peer(q, 'z');
      const snap = await z.join(room, 'tab-z');
      assert.deepEqual(snap.presence.map((e) => e.client).filter((c) => c !== 'tab-z').sort(), ['tab-x', 'tab-y']);
      assert.deepEqual(snap.claims.map((c) => c.target.id).sort(), ['kx', 'ky']);
      const ends = [...x.messages, ...y.messages].filter((m) => m.type === 'released' || (m.type === 'presence' && m.state === null));
      assert.deepEqual(ends, []);
      for (const c of [x, y, z]) c.close();
    } catch (err) {
      own.printLogs(`Redis kill test failed: ${err.message.split('\n')[0]}`);
      throw err;
    } finally {
      await own.cleanup();
    }
  });
});

describe('deleted rooms', () => {
  // A deleted room's caches start over, so later entries and claims
  // reach every instance.
  test('deleted room: later entries and claims', { timeout: 60000 }, env.wrap(async () => {
    const room = 'abuse-delete';
    const x = await peer(a, 'x');
    const y = await peer(b, 'y');
    await x.join(room, 'tab-x');
    await y.join(room, 'tab-y');
    for (let i = 0; i < 5; i++) x.send({ type: 'presence', room, state: { i } });
    await y.waitFor('the last state before the delete', isPresenceOf(room, 'tab-x', (m) => m.state?.i === 4));
    // An edit, so that the delete changes the room's seq and members get a reset.
    const created = await x.ops(room, 'tab-x', 1, [{ op: 'create', id: 'd', kind: 'tag', fields: { label: 'x' } }]);
    await y.waitFor('the event of the edit', (m) => m.type === 'event' && m.seq === created.seq);

    const response = await fetch(`${a.httpUrl}/v1/rooms/${room}`, { method: 'DELETE', signal: AbortSignal.timeout(10000) });
    assert.equal(response.status, 200);
    await y.waitFor('reset snapshot', (m) => m.type === 'snapshot' && m.reset === true);

    const from = y.messages.length;
    const z = await peer(a, 'z');
    await z.join(room, 'tab-z');
    assert.equal((await z.claim(room, 1, { id: 'after-delete' })).status, 'granted');
    await y.waitFor('tab-z joined after the delete', showsEntry(room, 'tab-z'), { from, timeoutMs: 10000 });
    await y.waitFor('the claim made after the delete', (m) => m.type === 'claimed' && m.claim.target.id === 'after-delete', { from, timeoutMs: 10000 });
    for (const c of [x, y, z]) c.close();
  }));

  // A delete ends every claim with reason "deleted".
  test('deleted room: claims released', { timeout: 60000 }, env.wrap(async () => {
    const room = 'abuse-delete-claims';
    const x = await peer(a, 'x');
    const y = await peer(b, 'y');
    await x.join(room, 'tab-x');
    await y.join(room, 'tab-y');
    assert.equal((await x.claim(room, 1, { id: 'doomed' }, 600000)).status, 'granted');
    const response = await fetch(`${a.httpUrl}/v1/rooms/${room}`, { method: 'DELETE', signal: AbortSignal.timeout(10000) });
    assert.equal(response.status, 200);
    const ended = await y.waitFor('released with reason deleted', (m) => m.type === 'released' && m.claim.target.id === 'doomed', { timeoutMs: 10000 });
    assert.equal(ended.reason, 'deleted');
    x.close();
    y.close();
  }));
});

describe('enforced claims against other writers', () => {
  /** Creates room with enforced claims and object o on item vid, frame 10, as an admin. */
  async function enforcedRoom(instance, room, token) {
    const setup = await httpOps(instance, room, {
      actor: 'setup', opseq: 1, ops: [
        { op: 'settings', base: {}, set: { claims: 'enforced' } },
        { op: 'create', id: 'o', kind: 'bbox', fields: { item: 'vid', frame: 10, label: 'car', geometry: [0, 0, 5, 5] } },
      ],
    }, token);
    assert.equal(setup.status, 200, JSON.stringify(setup.body));
    assert.deepEqual(setup.body.results.map((r) => r.status), ['applied', 'applied']);
  }

  // A claim belongs to a client key and a token subject, so another user
  // who names the holder's key is still blocked.
  test('enforced claim: holder actor by another user', { timeout: 60000 }, env.wrap(async () => {
    const room = 'abuse-impersonate';
    await enforcedRoom(authA, room, tokenFor('admin', 'admin'));
    const holder = await peer(authA, 'holder', { token: tokenFor('u1') });
    await holder.join(room, 'tab-a');
    assert.equal((await holder.claim(room, 1, { id: 'o' }, 600000)).status, 'granted');

    const u2 = tokenFor('u2');
    const viaHttp = await httpOps(authB, room, {
      actor: 'tab-a', opseq: 100, ops: [{ op: 'update', id: 'o', base: { setup: 1 }, set: { label: 'stolen-http' } }],
    }, u2);
    assert.equal(viaHttp.status, 200, JSON.stringify(viaHttp.body));

    const thief = await peer(authB, 'thief', { token: u2 });
    thief.send({ type: 'join', room, actor: 'tab-a' });
    await thief.waitFor('forbidden key', (m) => m.type === 'error' && m.code === 'forbidden');
    await thief.waitFor('snapshot', (m) => m.type === 'snapshot');
    const viaWs = await thief.ops(room, 'tab-a', 200, [{ op: 'update', id: 'o', base: { setup: 1 }, set: { note: 'stolen-ws' } }]);

    assert.deepEqual([viaHttp.body.results[0].reason, viaWs.results?.[0]?.reason], ['claimed', 'claimed'],
      `HTTP: ${JSON.stringify(viaHttp.body.results[0])}; WebSocket: ${JSON.stringify(viaWs)}`);
    holder.close();
    thief.close();
  }));

  // A frame written as a float, and an update that moves an object into
  // a claimed range, are checked like an integer frame.
  test('enforced range claim: float and moved frames', { timeout: 60000 }, env.wrap(async () => {
    const room = 'abuse-frames';
    await enforcedRoom(a, room, null);
    const x = await peer(a, 'x');
    const y = await peer(b, 'y');
    await x.join(room, 'tab-x');
    await y.join(room, 'tab-y');
    assert.equal((await x.claim(room, 1, { item: 'vid', frames: [100, 180] }, 600000)).status, 'granted');
    await y.waitFor('claimed', (m) => m.type === 'claimed');

    const plain = await y.ops(room, 'tab-y', 1, [
      { op: 'create', id: 'c150', kind: 'bbox', fields: { item: 'vid', frame: 150, label: 'car', geometry: [0, 0, 5, 5] } },
    ]);
    assert.equal(plain.results[0].reason, 'claimed', JSON.stringify(plain));

    const from = y.messages.length;
    y.send(`{"type":"ops","room":"${room}","actor":"tab-y","opseq":2,"ops":[{"op":"create","id":"f150","kind":"bbox",` +
      '"fields":{"item":"vid","frame":150.0,"label":"car","geometry":[0,0,5,5]}}]}');
    const float = await y.waitFor('ack of opseq 2', (m) => (m.type === 'ack' || m.type === 'error') && m.opseq === 2, { from });
    const moved = await y.ops(room, 'tab-y', 3, [{ op: 'update', id: 'o', base: { setup: 1 }, set: { frame: 150 } }]);
    assert.deepEqual([float.results[0].reason, moved.results[0].reason], ['claimed', 'claimed'],
      `frame 150.0: ${JSON.stringify(float.results)}; moved into the range: ${JSON.stringify(moved.results)}`);
    x.close();
    y.close();
  }));
});

describe('resumes', () => {
  // A member that resumes takes presence and claim changes from its
  // "resumed" reply on, while its replay still runs.
  test('long resume: presence during replay', { timeout: 180000 }, env.wrap(async () => {
    const room = 'abuse-resume';
    const replayer = await env.startInstance('replayer', { args: [...ARGS, '--max-queue', '65536'] });
    // The writer is on another instance: with the small queue of the
    // replayer, its own events could close it as a slow reader.
    const x = await peer(b, 'x');
    await x.join(room, 'tab-x');
    // 400 events of 48 KiB: far more than the socket buffers and the queue hold.
    const pad = 'p'.repeat(48 * 1024);
    const EVENTS = 400;
    for (let i = 1; i <= EVENTS; i++) {
      x.send({ type: 'ops', room, actor: 'tab-x', opseq: i, ops: [{ op: 'create', id: `e${i}`, kind: 'tag', fields: { label: 'l', pad } }] });
      if (i % 50 === 0) await x.waitFor(`ack ${i}`, (m) => m.type === 'ack' && m.opseq === i, { timeoutMs: 60000 });
    }

    const z = await peer(replayer, 'z');
    z.send({ type: 'join', room, actor: 'tab-z', since: 0 });
    const resumed = await z.waitFor('resumed', (m) => m.type === 'resumed' || m.type === 'error', { timeoutMs: 30000 });
    assert.equal(resumed.type, 'resumed', JSON.stringify(resumed));
    z.ws.pause(); // the replay now waits for the client to read
    x.send({ type: 'presence', room, state: { during: 'replay' } });
    await x.waitFor('own state', isPresenceOf(room, 'tab-x', (m) => m.state?.during === 'replay'));
    z.ws.resume();
    await z.waitFor('the last event', (m) => m.type === 'event' && m.seq === EVENTS, { timeoutMs: 120000 });
    // Anything sent after the replay ended comes after this state.
    x.send({ type: 'presence', room, state: { marker: 1 } });
    await z.waitFor('a state after the replay', isPresenceOf(room, 'tab-x', (m) => m.state?.marker === 1));
    const seen = z.messages.filter((m) => m.type === 'presence' && m.client === 'tab-x').map((m) => m.state);
    assert.ok(seen.some((s) => s?.during === 'replay'), `states of tab-x at z: ${JSON.stringify(seen)}`);
    x.close();
    z.close();
    await replayer.stop();
  }));
});

describe('rooms evicted while requests are in flight', () => {
  // Rooms are freed 10 s after their last member left. Joins, claims,
  // states, leaves and HTTP writes keep arriving around that time. A
  // sanitizer build writes any use of a freed room to its log, which
  // cleanup() checks.
  test('room eviction: requests in flight', { timeout: 120000 }, env.wrap(async () => {
    const ROOMS = 12;
    const names = Array.from({ length: ROOMS }, (_, i) => `abuse-evict-${i}`);
    for (const room of names) {
      const p = await peer(a, 'first');
      await p.join(room, 'first');
      assert.equal((await p.claim(room, 1, { id: 'e' }, 1000)).status, 'granted');
      p.close();
    }
    const deadline = Date.now() + 20000;
    let round = 0;
    while (Date.now() < deadline) {
      round += 1;
      const room = names[round % ROOMS];
      const p = await peer(a, `r${round}`);
      p.send({ type: 'join', room, actor: `r${round % 3}` });
      p.send({ type: 'presence', room, state: { round } });
      p.send({ type: 'claim', room, ref: round, target: { id: 'e' }, ttl: 1000 });
      p.send({ type: 'release', room, ref: round, target: { id: 'e' } });
      p.send({ type: 'leave', room });
      p.send({ type: 'claim', room, ref: round, target: { id: 'e' } });
      if (round % 2) p.close();
      else setTimeout(() => p.close(), 20);
      if (round % 5 === 0) {
        await httpOps(a, names[(round + 3) % ROOMS], { actor: 'http', opseq: round, ops: [{ op: 'create', id: `h${round}`, kind: 'tag', fields: { label: 'x' } }] });
      }
      await sleep(700);
    }
    await stillServes(a, names[0]);
  }));
});
