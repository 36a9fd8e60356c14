// The production topology: three annolive instances behind HAProxy, run with
// deploy/haproxy.cfg (the file docker-compose.yml mounts), and Redis with a
// password and a database number.
//
// The rolling-restart case stops and starts the instances one at a time with
// SIGTERM while clients edit one room through the proxy. A client whose
// connection closes connects to the proxy again, joins with `since`, and
// resends its unacknowledged batch under the same actor and opseq. At the end
// every acknowledged batch is in the snapshot exactly once, and every client's
// copy equals the snapshot.
//
// Batch k of actor W creates the object `W.k` with `{n: k}` and updates
// `W.(k-1)` with `{next: k}`, so in the final snapshot `W.k` has `vv {W: 2}`
// (`{W: 1}` for the last one). A batch applied twice would raise the vv to 3,
// and a missing batch would leave its object out.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  ANNOLIVE_BIN, LineProcess, REPO, TestEnv, describeRun, fetchJson, freePort,
  runProcess, sleep, waitUntil, withTimeout,
} from './harness.mjs';
import { Replica, diffObjects } from './replica.mjs';

const require = createRequire(path.join(REPO, 'client-js', 'package.json'));
const WebSocket = require('ws');

const HAPROXY_CFG = path.join(REPO, 'deploy', 'haproxy.cfg');
const SUBPROTOCOL = 'annolive.v1.json';
const REPLY_TIMEOUT_MS = 10000;
const PROGRESS_TIMEOUT_MS = 60000;

const env = new TestEnv('topology');

/** The three instances behind the proxy, by name. */
const instances = {};

/** HAProxy: {port, wsUrl, httpUrl, proc, vars}. */
let proxy = null;

/** WebSocket peers of this file, closed in after(). */
const livePeers = new Set();

/** Returns the path of the haproxy binary, or null when it is not installed. */
function findHaproxy() {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin']) {
    const candidate = path.join(dir, 'haproxy');
    if (dir && fs.existsSync(candidate)) return candidate;
  }
  return null;
}

/** Returns the environment that fills the addresses in deploy/haproxy.cfg. */
function proxyVars(port) {
  return {
    ANNOLIVE_PROXY_BIND: `127.0.0.1:${port}`,
    ANNOLIVE_A: `127.0.0.1:${instances.a.port}`,
    ANNOLIVE_B: `127.0.0.1:${instances.b.port}`,
    ANNOLIVE_C: `127.0.0.1:${instances.c.port}`,
  };
}

/** Starts HAProxy with deploy/haproxy.cfg and waits for its /proxy-health. */
async function startProxy(haproxy) {
  const port = await freePort();
  const vars = proxyVars(port);
  const check = await runProcess(haproxy, ['-c', '-f', HAPROXY_CFG], { env: vars, timeoutMs: 20000 });
  assert.equal(check.code, 0, describeRun(`haproxy -c -f ${HAPROXY_CFG}`, check));

  // -db keeps HAProxy in the foreground; its log goes to stderr, which the
  // harness prints when a test fails.
  const proc = new LineProcess(haproxy, ['-db', '-f', HAPROXY_CFG], { env: vars });
  env.lineProcesses.push(proc);
  const started = {
    port, vars, proc, wsUrl: `ws://127.0.0.1:${port}`, httpUrl: `http://127.0.0.1:${port}`, name: 'proxy',
  };
  await waitUntil('HAProxy to answer /proxy-health', async () => {
    if (proc.child.exitCode !== null) throw new Error(`haproxy exited with ${proc.child.exitCode}: ${proc.stderr}`);
    return (await fetchJson(`${started.httpUrl}/proxy-health`, 1000)).status === 200;
  }, { timeoutMs: 15000 });
  return started;
}

/**
 * Waits until a GET /readyz through the proxy returns a response from
 * instance `name`, so HAProxy routes requests to it.
 */
async function waitRoutedTo(name, timeoutMs = 30000) {
  await waitUntil(`HAProxy to route a request to instance ${name}`, async () => {
    const response = await fetchJson(`${proxy.httpUrl}/readyz`, 2000);
    return response.status === 200 && response.body?.instance === name;
  }, { timeoutMs, intervalMs: 100 });
}

/** Returns how many times HAProxy has logged that server `name` went `state` (UP or DOWN). */
function proxyLogged(name, state) {
  const pattern = new RegExp(`Server annolive/${name} is ${state}\\b`, 'g');
  return (proxy.proc.stderr.match(pattern) ?? []).length;
}

/** Returns the room's snapshot over HTTP from target (the proxy or an instance). */
async function snapshotVia(target, room) {
  const response = await fetchJson(`${target.httpUrl}/v1/rooms/${encodeURIComponent(room)}/snapshot`);
  assert.equal(response.status, 200, `snapshot of ${room} through ${target.name}: ${response.text.slice(0, 300)}`);
  return response.body;
}

// ---- a WebSocket peer that records every message ----

/** An Error for a reply that did not come because the connection closed or time ran out. */
class TransientError extends Error {}

class Peer {
  constructor(name) {
    this.name = name;
    this.ws = null;
    this.messages = [];
    this.closed = null;
    this.onMessage = null;
    this.waiters = new Set();
  }

  /** Opens a WebSocket to target's /v1/ws with the annolive subprotocol. */
  static async open(target, name, timeoutMs = 5000) {
    const peer = new Peer(name);
    const url = `${target.wsUrl}/v1/ws`;
    const opening = new Promise((resolve, reject) => {
      const ws = new WebSocket(url, SUBPROTOCOL);
      peer.ws = ws;
      livePeers.add(peer);
      ws.on('open', resolve);
      ws.on('error', reject);
      ws.on('message', (data) => {
        let message;
        try {
          message = JSON.parse(data.toString('utf8'));
        } catch {
          message = { type: 'not-json', text: data.toString('utf8').slice(0, 200) };
        }
        peer.messages.push(message);
        peer.onMessage?.(message);
        peer.notify();
      });
      ws.on('close', (code, reason) => {
        peer.closed = { code, reason: reason.toString('utf8') };
        livePeers.delete(peer);
        reject(new Error(`closed with code ${code} before it opened`));
        peer.notify();
      });
    });
    await withTimeout(opening, timeoutMs, `${name} to open ${url}`).catch((err) => {
      peer.terminate();
      throw err;
    });
    return peer;
  }

  get open() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  notify() {
    for (const waiter of [...this.waiters]) waiter();
  }

  /**
   * Sends message and resolves with the first later message that satisfies
   * predicate. Rejects with a TransientError when the connection closes or
   * the time runs out first.
   */
  request(message, what, predicate, timeoutMs = REPLY_TIMEOUT_MS) {
    if (!this.open) return Promise.reject(new TransientError(`${this.name}: the connection is not open`));
    let cursor = this.messages.length;
    this.ws.send(JSON.stringify(message));
    return new Promise((resolve, reject) => {
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
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
          reject(new TransientError(`${this.name}: connection closed (${JSON.stringify(this.closed)}) waiting for ${what}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new TransientError(`${this.name}: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  terminate() {
    this.ws?.terminate();
  }
}

// ---- a client replica of one room, connected through the proxy ----

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
  /**
   * dropEvery > 0 makes the member close its connection right after sending
   * every dropEvery-th batch, before any ack can arrive, so that batch is
   * always resent on a new connection.
   */
  constructor(name, room, { dropEvery = 0 } = {}) {
    this.dropEvery = dropEvery;
    this.dropped = 0;
    this.name = name;
    this.actor = name;
    this.room = room;
    this.replica = new Replica(name);
    this.peer = null;
    this.joined = false;
    this.joinSince = undefined;
    this.connects = 0;
    this.resumes = 0; // joins with `since` that got `resumed`
    this.opseq = 0;
    this.pending = null; // {opseq, ops, sent} of the batch without an ack
    this.acks = new Map(); // opseq -> ack
    this.resends = 0;
    this.failures = [];
    this.problems = [];
  }

  problem(text) {
    if (this.problems.length < 50) this.problems.push(`${this.name}: ${text}`);
  }

  get connected() {
    return Boolean(this.peer?.open && this.joined);
  }

  /**
   * Connects to the proxy and joins the room, with `since` once the member
   * has a copy. Throws a TransientError for a failed connection or join.
   */
  async connect() {
    this.peer?.terminate();
    const peer = await Peer.open(proxy, this.name).catch((err) => {
      throw new TransientError(`${this.name}: cannot connect through the proxy: ${err.message}`);
    });
    this.peer = peer;
    this.joined = false;
    this.connects += 1;
    this.joinSince = this.replica.seq ?? undefined;
    peer.onMessage = (m) => this.onMessage(peer, m);
    const join = { type: 'join', room: this.room };
    if (this.joinSince !== undefined) join.since = this.joinSince;
    const reply = await peer.request(join, `reply to ${JSON.stringify(join)}`,
      (m) => m.room === this.room && ['snapshot', 'resumed', 'error'].includes(m.type));
    if (reply.type === 'error') {
      peer.terminate();
      throw new TransientError(`${this.name}: join got ${JSON.stringify(reply)}`);
    }
  }

  /** Connects unless connected, retrying transient failures for up to timeoutMs. */
  async ensureConnected(timeoutMs = 30000) {
    const deadline = Date.now() + timeoutMs;
    while (!this.connected) {
      try {
        await this.connect();
      } catch (err) {
        if (!(err instanceof TransientError)) throw err;
        this.failures.push(err.message);
        if (Date.now() >= deadline) {
          throw new Error(`${this.name}: no connection through the proxy in ${timeoutMs} ms: ${this.failures.slice(-3).join(' | ')}`);
        }
        await sleep(200);
      }
    }
  }

  onMessage(peer, m) {
    if (peer !== this.peer || m.room !== this.room) return;
    if (m.type === 'snapshot') {
      if (this.joined && m.reset !== true) this.problem('a snapshot without "reset": true after the join reply');
      this.replica.reset(m);
      this.joined = true;
    } else if (m.type === 'resumed') {
      if (m.since !== this.joinSince) this.problem(`"resumed" with since ${m.since}, the join had ${this.joinSince}`);
      this.resumes += 1;
      this.joined = true;
    } else if (m.type === 'event') {
      if (!this.joined) this.problem(`event seq ${m.seq} before the join reply`);
      this.replica.applyEvent(m);
    }
  }

  /**
   * Sends the pending batch once, connecting first when needed. Returns true
   * when it was acknowledged. Throws for an error reply other than
   * `unavailable`.
   */
  async trySend() {
    try {
      await this.ensureConnected();
      const { opseq, ops } = this.pending;
      if (this.pending.sent) this.resends += 1;
      if (!this.pending.sent && this.dropEvery > 0 && opseq % this.dropEvery === 0) {
        this.pending.sent = true;
        this.dropped += 1;
        this.peer.ws.send(JSON.stringify({ type: 'ops', room: this.room, actor: this.actor, opseq, ops }));
        this.peer.terminate();
        return false;
      }
      this.pending.sent = true;
      const reply = await this.peer.request({ type: 'ops', room: this.room, actor: this.actor, opseq, ops },
        `reply to opseq ${opseq}`,
        (m) => (m.type === 'ack' || m.type === 'error') && m.room === this.room && m.opseq === opseq);
      if (reply.type === 'ack') {
        this.acks.set(opseq, reply);
        this.pending = null;
        return true;
      }
      if (reply.code === 'unavailable') return false;
      throw new Error(`${this.name}: opseq ${opseq} got ${JSON.stringify(reply)}`);
    } catch (err) {
      if (!(err instanceof TransientError)) throw err;
      this.failures.push(err.message);
      if (/timed out/.test(err.message)) this.peer?.terminate();
      return false;
    }
  }

  /** Writes batches until stop() returns true; a started batch is always finished. */
  async writeChain(stop, timeLimitMs) {
    const deadline = Date.now() + timeLimitMs;
    while (this.pending || !stop()) {
      if (Date.now() > deadline) {
        throw new Error(`${this.name}: ${this.acks.size} batches acked after ${timeLimitMs} ms; ` +
          `last failures: ${this.failures.slice(-3).join(' | ')}`);
      }
      if (!this.pending) {
        this.opseq += 1;
        this.pending = { opseq: this.opseq, ops: chainOps(this.actor, this.opseq), sent: false };
      }
      if (await this.trySend()) await sleep(10);
      else await sleep(150);
    }
  }

  /** Stays connected until stop() returns true, for a member that only reads. */
  async follow(stop) {
    while (!stop()) {
      if (!this.connected) await this.ensureConnected();
      await sleep(50);
    }
  }

  allProblems() {
    return [...this.problems, ...this.replica.problems];
  }
}

/** Waits until the members have, in all, `count` more acks than `from`. */
function waitForAcks(writers, from, count, what) {
  const total = () => writers.reduce((sum, w) => sum + w.acks.size, 0);
  return waitUntil(`${count} more acked batches ${what} (at ${total() - from})`,
    () => total() >= from + count, { timeoutMs: PROGRESS_TIMEOUT_MS, intervalMs: 20 });
}

function totalAcks(writers) {
  return writers.reduce((sum, w) => sum + w.acks.size, 0);
}

/** Stops instance with SIGTERM and asserts a clean exit. */
async function stopCleanly(instance) {
  const result = await instance.stop('SIGTERM');
  assert.equal(result.exitedBefore, false, `instance ${instance.name} ran until SIGTERM; log:\n${instance.log()}`);
  assert.equal(result.killed, false, `instance ${instance.name} exited on SIGTERM without SIGKILL`);
  assert.equal(result.code, 0, `exit code of instance ${instance.name} on SIGTERM; log:\n${instance.log()}`);
}

describe('topology behind HAProxy', () => {
  before(async () => {
    const haproxy = findHaproxy();
    if (!haproxy) throw new Error('haproxy not found: scripts/setup.sh installs the Debian package haproxy');
    await env.init();
    await env.startRedis();
    for (const name of ['a', 'b', 'c']) instances[name] = await env.startInstance(name, { keepPort: true });
    proxy = await startProxy(haproxy);
  }, { timeout: 90000 });

  after(async () => {
    for (const peer of livePeers) peer.terminate();
    await env.cleanup();
  }, { timeout: 120000 });

  test('the proxy spreads requests over every instance', { timeout: 60000 }, env.wrap(async () => {
    for (const name of ['a', 'b', 'c']) await waitRoutedTo(name);
  }));

  test('rolling restart under load loses no acknowledged edit', { timeout: 300000 }, env.wrap(async () => {
    const room = 'rolling';
    const writers = ['w1', 'w2', 'w3'].map((name) => new Member(name, room, { dropEvery: 40 }));
    const reader = new Member('reader', room);
    const members = [...writers, reader];
    for (const name of ['a', 'b', 'c']) await waitRoutedTo(name);
    for (const member of members) await member.ensureConnected();

    let restarting = true;
    const work = Promise.all([
      ...writers.map((w) => w.writeChain(() => !restarting, 240000)),
      reader.follow(() => !restarting),
    ]);
    // A failure of the workload ends the test at once, not at the end of
    // the restarts.
    let workError = null;
    work.catch((err) => {
      workError = err;
    });
    const progress = async (what) => {
      await waitForAcks(writers, totalAcks(writers), 25, what);
      if (workError) throw workError;
    };

    try {
      await progress('before the first restart');
      for (const name of ['a', 'b', 'c']) {
        const instance = instances[name];
        const downs = proxyLogged(name, 'DOWN');
        await stopCleanly(instance);
        // The failed health check takes the instance out of the rotation.
        await waitUntil(`HAProxy to mark instance ${name} DOWN`, () => proxyLogged(name, 'DOWN') > downs,
          { timeoutMs: 30000 });
        await progress(`while instance ${name} is stopped`);
        await instance.start();
        await waitRoutedTo(name);
        await progress(`after instance ${name} is back`);
      }
      await waitUntil('each writer to get the ack of its first dropped batch',
        () => writers.every((w) => w.acks.has(w.dropEvery)) || workError, { timeoutMs: PROGRESS_TIMEOUT_MS });
      if (workError) throw workError;
    } finally {
      restarting = false;
    }
    await withTimeout(work, 120000, 'the writers to finish their last batches');

    // Each member's copy, caught up on a live connection, equals the
    // snapshot of every instance and of the proxy.
    const snapshot = await snapshotVia(proxy, room);
    for (const name of ['a', 'b', 'c']) {
      const direct = await snapshotVia(instances[name], room);
      assert.equal(direct.seq, snapshot.seq, `seq of the snapshot of instance ${name}`);
      assert.equal(diffObjects(direct.objects, snapshot.objects, name, 'proxy'), null, `snapshot of instance ${name}`);
    }
    for (const writer of writers) {
      assert.equal(writer.acks.size, writer.opseq, `every batch of ${writer.name} was acked`);
      for (const [opseq, ack] of writer.acks) {
        for (const result of ack.results) {
          assert.equal(result.status, 'applied', `ack of ${writer.name} opseq ${opseq}: ${JSON.stringify(ack)}`);
        }
      }
      const mine = snapshot.objects.filter((o) => o.id.startsWith(`${writer.actor}.`));
      const diff = diffObjects(mine, chainObjects(writer.actor, writer.opseq), 'the snapshot',
        `batches 1..${writer.opseq} of ${writer.actor} applied once`);
      assert.equal(diff, null, `objects of ${writer.actor}:\n${diff}`);
    }
    for (const member of members) {
      await member.ensureConnected();
      await waitUntil(`${member.name} to reach seq ${snapshot.seq} (at ${member.replica.seq})`,
        () => member.replica.seq >= snapshot.seq, { timeoutMs: 20000, intervalMs: 20 });
      assert.deepEqual(member.allProblems(), [], `problems seen by ${member.name}`);
      const diff = diffObjects(member.replica.list(), snapshot.objects, `${member.name}'s copy`, 'the snapshot');
      assert.equal(diff, null, `${member.name}'s copy differs from the snapshot:\n${diff}`);
    }

    // The restarts closed connections: clients came back through the proxy
    // and resumed with `since`.
    const reconnects = members.reduce((sum, m) => sum + m.connects - 1, 0);
    const resumes = members.reduce((sum, m) => sum + m.resumes, 0);
    assert.ok(reconnects >= 1, `clients reconnected through the proxy (${reconnects} reconnects)`);
    assert.ok(resumes >= 1, `a reconnected client resumed with since (${resumes} resumes)`);
    for (const writer of writers) {
      assert.ok(writer.resends >= writer.dropped, `${writer.name} resent each of its ${writer.dropped} dropped batches`);
    }
    process.stderr.write(`topology: ${totalAcks(writers)} batches acked, seq ${snapshot.seq}, ` +
      `${reconnects} reconnects, ${resumes} resumes, ${writers.reduce((s, w) => s + w.resends, 0)} resends\n`);
  }));
});

// ---- Redis with a password and a database number ----

const authEnv = new TestEnv('topology-auth');
const PASSWORD = 'p@ss w/rd:%1';
const PASSWORD_URL = encodeURIComponent(PASSWORD);
const DB = 5;

/** Runs redis-cli against the password-protected Redis and returns its trimmed output. */
async function redisCli(args) {
  const result = await runProcess('redis-cli', [
    '-h', '127.0.0.1', '-p', String(authEnv.redis.port), '--no-auth-warning', '-a', PASSWORD, ...args,
  ], { timeoutMs: 10000 });
  assert.equal(result.code, 0, describeRun(`redis-cli ${args.join(' ')}`, result));
  return result.stdout.trim();
}

/** Runs the server to its end with the given Redis settings; it is expected to fail. */
function runFailing(args) {
  return freePort().then((port) => runProcess(ANNOLIVE_BIN, [
    '--no-auth', '--listen', `127.0.0.1:${port}`, ...args,
  ], { timeoutMs: 20000 }));
}

describe('Redis password and database', () => {
  let passwordFile;

  before(async () => {
    await authEnv.init();
    await authEnv.startRedis({ password: PASSWORD });
    passwordFile = path.join(authEnv.dir, 'redis-password');
    fs.writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  }, { timeout: 60000 });

  after(async () => {
    await authEnv.cleanup();
  }, { timeout: 60000 });

  test('a password file and a password in the URL both reach the same database', { timeout: 60000 }, authEnv.wrap(async () => {
    const fromFile = await authEnv.startInstance('file', {
      redisUrl: `redis://127.0.0.1:${authEnv.redis.port}/${DB}`, args: ['--redis-password-file', passwordFile],
    });
    const fromUrl = await authEnv.startInstance('url', {
      redisUrl: `redis://:${PASSWORD_URL}@127.0.0.1:${authEnv.redis.port}/${DB}`,
    });
    const writer = await authEnv.client(fromFile, 'auth-writer');
    await writer.join('secured');
    const ack = await writer.send('secured', [{ op: 'create', id: 'x1', kind: 'tag', fields: { label: 'cat' } }]);
    assert.equal(ack.results[0].status, 'applied', JSON.stringify(ack));

    // The write is in database DB, not in database 0, and the other
    // instance reads it there.
    assert.equal(await redisCli(['-n', String(DB), 'HEXISTS', 'al:{secured}:objs', 'x1']), '1');
    assert.equal(await redisCli(['-n', '0', 'EXISTS', 'al:{secured}:objs']), '0');
    const reader = await authEnv.client(fromUrl, 'auth-reader');
    const snapshot = await reader.join('secured');
    assert.deepEqual(snapshot.objects.map((o) => o.id), ['x1'], JSON.stringify(snapshot));
  }));

  test('an instance authenticates again after Redis restarts', { timeout: 90000 }, authEnv.wrap(async () => {
    const instance = authEnv.instances.find((i) => i.name === 'file');
    await authEnv.redis.restart();
    await waitUntil('instance file to be ready again after the Redis restart', async () =>
      (await fetchJson(`${instance.httpUrl}/readyz`, 1000)).status === 200, { timeoutMs: 30000 });
    const client = await authEnv.client(instance, 'auth-after-restart');
    await client.join('secured');
    const ack = await client.send('secured', [{ op: 'create', id: 'x2', kind: 'tag' }]);
    assert.equal(ack.results[0].status, 'applied', JSON.stringify(ack));
    assert.equal(await redisCli(['-n', String(DB), 'HEXISTS', 'al:{secured}:objs', 'x2']), '1');
  }));

  test('a wrong or missing password stops the start with a clear error', { timeout: 60000 }, authEnv.wrap(async () => {
    const port = authEnv.redis.port;
    const wrong = await runFailing(['--redis', `redis://:not-it@127.0.0.1:${port}/${DB}`]);
    assert.equal(wrong.timedOut, false, describeRun('annolive with a wrong password', wrong));
    assert.notEqual(wrong.code, 0, describeRun('annolive with a wrong password', wrong));
    assert.match(wrong.stderr, /Redis rejected AUTH: WRONGPASS/, describeRun('the error names AUTH', wrong));
    assert.ok(!wrong.stderr.includes('not-it'), describeRun('the password stays out of the log', wrong));

    const missing = await runFailing(['--redis', `redis://127.0.0.1:${port}/${DB}`]);
    assert.notEqual(missing.code, 0, describeRun('annolive without a password', missing));
    assert.match(missing.stderr, /NOAUTH.*--redis-password-file/, describeRun('the error says how to give one', missing));
  }));

  test('bad password settings are rejected before connecting', { timeout: 60000 }, authEnv.wrap(async () => {
    const port = authEnv.redis.port;
    const cases = [
      ['password twice', ['--redis', `redis://:${PASSWORD_URL}@127.0.0.1:${port}`, '--redis-password-file', passwordFile]],
      ['unreadable file', ['--redis', `redis://127.0.0.1:${port}`, '--redis-password-file', path.join(authEnv.dir, 'none')]],
      ['user without password', ['--redis', `redis://someone@127.0.0.1:${port}`]],
      ['bad escape', ['--redis', `redis://:hidden%zz@127.0.0.1:${port}`]],
    ];
    for (const [name, args] of cases) {
      const result = await runFailing(args);
      assert.equal(result.code, 2, describeRun(`${name}: exit code 2`, result));
      const lines = result.stderr.split('\n').filter((line) => line.trim() !== '');
      assert.equal(lines.length, 1, describeRun(`${name}: one line`, result));
      assert.ok(!result.stderr.includes('hidden') && !result.stderr.includes(PASSWORD_URL),
        describeRun(`${name}: no password in the message`, result));
    }
  }));
});

// ---- docker-compose.yml and the Dockerfile against the tested topology ----

const COMPOSE = path.join(REPO, 'docker-compose.yml');
const DOCKERFILE = path.join(REPO, 'Dockerfile');

/** Parses a YAML file with Python's yaml module (Debian's python3-yaml) and returns it as JSON. */
async function loadYaml(file) {
  const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const result = await runProcess(python, ['-c',
    'import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)', file], { timeoutMs: 20000 });
  assert.equal(result.code, 0, describeRun(`parsing ${file} (scripts/setup.sh installs python3-yaml)`, result));
  return JSON.parse(result.stdout);
}

/** Returns true when `docker compose version` runs. */
async function hasDockerCompose() {
  try {
    const result = await runProcess('docker', ['compose', 'version'], { timeoutMs: 20000 });
    return result.code === 0;
  } catch {
    return false;
  }
}

/** Returns the names of the environment variables that deploy/haproxy.cfg uses. */
function haproxyCfgVars() {
  const text = fs.readFileSync(HAPROXY_CFG, 'utf8');
  return [...new Set([...text.matchAll(/\$\{([A-Z0-9_]+)\}/g)].map((m) => m[1]))].sort();
}

describe('deployment files', () => {
  const composeEnv = new TestEnv('topology-compose');

  before(async () => {
    await composeEnv.init();
  });

  after(async () => {
    await composeEnv.cleanup();
  });

  test('docker compose accepts docker-compose.yml', { timeout: 60000 }, composeEnv.wrap(async (t) => {
    if (!(await hasDockerCompose())) {
      t.skip('docker compose is not available: the next test checks docker-compose.yml as YAML');
      return;
    }
    // A copy with stand-in secrets, so that no file is created in the repository.
    const dir = composeEnv.dir;
    fs.mkdirSync(path.join(dir, 'deploy'), { recursive: true });
    fs.copyFileSync(COMPOSE, path.join(dir, 'docker-compose.yml'));
    fs.copyFileSync(DOCKERFILE, path.join(dir, 'Dockerfile'));
    fs.copyFileSync(HAPROXY_CFG, path.join(dir, 'deploy', 'haproxy.cfg'));
    fs.writeFileSync(path.join(dir, 'secret.txt'), 'x'.repeat(44));
    fs.writeFileSync(path.join(dir, 'redis-password.txt'), 'y'.repeat(64));
    const result = await runProcess('docker', ['compose', '-f', path.join(dir, 'docker-compose.yml'), 'config', '-q'],
      { timeoutMs: 30000, cwd: dir });
    assert.equal(result.code, 0, describeRun('docker compose config -q', result));
  }));

  test('docker-compose.yml runs the topology of this file', { timeout: 60000 }, composeEnv.wrap(async () => {
    const compose = await loadYaml(COMPOSE);
    const services = compose.services;
    assert.deepEqual(Object.keys(services).sort(), ['annolive-a', 'annolive-b', 'annolive-c', 'haproxy', 'redis']);
    const ipOf = (name) => services[name].networks?.annolive?.ipv4_address;

    // Redis 7 with AOF on a named volume.
    const redis = services.redis;
    assert.match(redis.image, /^redis:7\b/);
    assert.match([].concat(redis.command).join(' '), /--appendonly yes/);
    assert.ok(redis.volumes.includes('redis-data:/data'), JSON.stringify(redis.volumes));
    assert.ok('redis-data' in compose.volumes);

    // Three instances of the image of the Dockerfile, on the one Redis, with
    // their secrets in files.
    for (const name of ['a', 'b', 'c']) {
      const service = services[`annolive-${name}`];
      const vars = service.environment;
      assert.equal(service.build.dockerfile, 'Dockerfile');
      assert.equal(vars.ANNOLIVE_INSTANCE, name);
      assert.equal(vars.ANNOLIVE_REDIS, `redis://${ipOf('redis')}:6379/0`);
      assert.equal(service.ports, undefined, `annolive-${name} is reached through HAProxy only`);
      for (const key of ['ANNOLIVE_REDIS_PASSWORD_FILE', 'ANNOLIVE_AUTH_SECRET_FILE']) {
        const secret = vars[key].replace('/run/secrets/', '');
        assert.ok(service.secrets.includes(secret), `annolive-${name} mounts the secret of ${key}`);
        assert.ok(compose.secrets[secret]?.file, `secret ${secret} is declared with a file`);
      }
      assert.ok(ipOf(`annolive-${name}`), `annolive-${name} has a fixed address`);
    }
    assert.ok(services.redis.secrets.includes('redis_password'));

    // HAProxy runs deploy/haproxy.cfg with the variables the test sets, and
    // they name the three instances.
    const proxyService = services.haproxy;
    assert.ok(proxyService.volumes.some((v) => v.startsWith('./deploy/haproxy.cfg:')), JSON.stringify(proxyService.volumes));
    const proxyEnv = proxyService.environment;
    assert.deepEqual(Object.keys(proxyEnv).sort(), haproxyCfgVars());
    assert.deepEqual(Object.keys(proxyVars(1)).sort(), haproxyCfgVars());
    for (const name of ['a', 'b', 'c']) {
      const listenPort = services[`annolive-${name}`].environment.ANNOLIVE_LISTEN.split(':').pop();
      assert.equal(proxyEnv[`ANNOLIVE_${name.toUpperCase()}`], `${ipOf(`annolive-${name}`)}:${listenPort}`);
    }
    const bindPort = proxyEnv.ANNOLIVE_PROXY_BIND.split(':').pop();
    assert.ok(proxyService.ports.some((p) => String(p).endsWith(`:${bindPort}`)), JSON.stringify(proxyService.ports));
  }));

  test('the Dockerfile builds with the packages of scripts/setup.sh and runs as a user', { timeout: 20000 }, composeEnv.wrap(async () => {
    const dockerfile = fs.readFileSync(DOCKERFILE, 'utf8');
    const setup = fs.readFileSync(path.join(REPO, 'scripts', 'setup.sh'), 'utf8');
    const packages = setup.slice(setup.indexOf('PACKAGES=('), setup.indexOf('\n)', setup.indexOf('PACKAGES=(')))
      .split('\n').filter((line) => !line.trim().startsWith('#')).join(' ').split(/\s+/);
    const buildLibs = packages.filter((p) => /^lib.*-dev$|^libwebsockets-evlib-uv$/.test(p) && p !== 'libcmocka-dev' && !p.startsWith('libclang'));
    assert.ok(buildLibs.length >= 7, `library packages found in setup.sh: ${buildLibs}`);
    for (const pkg of buildLibs) assert.match(dockerfile, new RegExp(`\\s${pkg}\\s`), `the build stage installs ${pkg}`);
    assert.equal(dockerfile.match(/^FROM /gm)?.length, 2, 'a build stage and a runtime stage');
    assert.match(dockerfile, /^USER (?!root)\S+/m);
    assert.match(dockerfile, /^HEALTHCHECK .*\n?.*curl.*\/(healthz|readyz)/m);
  }));
});
