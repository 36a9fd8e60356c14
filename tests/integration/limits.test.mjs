// Limits and transport options. The tests cover the Origin allow-list
// (--allow-origin), the rate limit on ops per connection (--rate-ops,
// --rate-burst), the cap on WebSocket connections per address
// (--max-conns-per-ip) and TLS on the server's port (--tls-cert, --tls-key).
// They also check that an upgrade with a token whose nbf lies beyond the
// clock skew gets 401.
//
// Each group starts an instance of its own with the options it tests. Every
// instance except the one of the nbf group runs with --no-auth.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';

import {
  REPO, TestEnv, describeRun, fetchJson, fetchJsonAnyCert, runProcess, sleep, sortById, waitUntil, withTimeout,
} from './harness.mjs';

// The `ws` package that client-js depends on. It sets request headers
// (Origin, Authorization), the local address and the TLS options of a
// connection, and reports the status and body of a rejected upgrade.
const requireFromClient = createRequire(path.join(REPO, 'client-js', 'package.json'));
const WebSocket = requireFromClient('ws');

const SUBPROTOCOL = 'annolive.v1.json';

const env = new TestEnv('limits');

// Instance plain has every option at its default.
let plain;

before(async () => {
  await env.init();
  await env.startRedis();
  plain = await env.startInstance('plain');
}, { timeout: 60000 });

after(async () => {
  await env.cleanup();
}, { timeout: 120000 });

// ---- connections ----

let opened = 0;

/**
 * A JSON WebSocket connection that stores every message it receives. It has
 * the `actor` and `close()` of an AnnoliveClient, so env.cleanup() closes it.
 */
class Connection {
  constructor(socket) {
    opened += 1;
    this.socket = socket;
    this.actor = `limits-${opened}-${crypto.randomBytes(3).toString('hex')}`;
    this.messages = [];
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      socket.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8') };
        resolve(this.closeInfo);
      });
    });
    socket.on('message', (data) => this.messages.push(JSON.parse(data.toString('utf8'))));
    env.clients.push(this);
  }

  send(message) {
    this.socket.send(JSON.stringify(message));
  }

  /** Waits for a message that satisfies predicate, removes it from the store and returns it. */
  async take(what, predicate, timeoutMs = 10000) {
    const message = await waitUntil(`${what} at ${this.actor}`, () => {
      const found = this.messages.find(predicate);
      if (found) return found;
      if (this.closeInfo) throw new Error(`connection closed with ${this.closeInfo.code} ${this.closeInfo.reason}`);
      return null;
    }, { timeoutMs, intervalMs: 20 });
    this.messages.splice(this.messages.indexOf(message), 1);
    return message;
  }

  /** Sends a join and returns the snapshot or the error that replies to it. */
  join(room) {
    this.send({ type: 'join', room });
    return this.take(`reply to the join of ${room}`,
      (m) => m.room === room && (m.type === 'snapshot' || m.type === 'error'));
  }

  /** Sends an op batch without waiting for its reply. */
  sendOps(room, opseq, ops) {
    this.send({ type: 'ops', room, actor: this.actor, opseq, ops });
  }

  /** Returns the ack or the error that replies to the batch opseq in room. */
  reply(room, opseq, timeoutMs = 10000) {
    return this.take(`reply to ops ${opseq} in ${room}`,
      (m) => m.room === room && m.opseq === opseq && (m.type === 'ack' || m.type === 'error'), timeoutMs);
  }

  async close() {
    if (this.closeInfo) return;
    this.socket.close(1000);
    const info = await Promise.race([this.closed, sleep(3000).then(() => null)]);
    if (!info) {
      this.socket.terminate();
      await this.closed;
    }
  }
}

/**
 * Sends a WebSocket upgrade to url with the options of `ws` (headers,
 * localAddress, TLS options). Resolves with `{status: 101, connection}` when
 * the WebSocket opens, or `{status, headers, body}` of the response that
 * rejected it.
 */
function attemptUpgrade(url, options = {}) {
  const socket = new WebSocket(url, SUBPROTOCOL, { handshakeTimeout: 5000, ...options });
  socket.on('error', () => {
    // The promise below reports the first error; later ones add nothing.
  });
  const outcome = new Promise((resolve, reject) => {
    socket.once('open', () => resolve({ status: 101, connection: new Connection(socket) }));
    socket.once('unexpected-response', (request, response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        resolve({ status: response.statusCode, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') });
        request.destroy();
      });
    });
    socket.once('error', reject);
  });
  return withTimeout(outcome, 10000, `upgrade at ${url}`).catch((err) => {
    socket.terminate();
    throw err;
  });
}

/** Returns the WebSocket URL of instance. */
function wsUrl(instance) {
  return `${instance.wsUrl}/v1/ws`;
}

/** Opens a WebSocket to url and fails unless the upgrade succeeds. */
async function connect(url, options = {}) {
  const result = await attemptUpgrade(url, options);
  assert.equal(result.status, 101, `upgrade at ${url}: status ${result.status}, body ${result.body}`);
  return result.connection;
}

/** Opens a connection to url and joins room; fails unless the join returns a snapshot. */
async function connectJoined(url, room, options = {}) {
  const connection = await connect(url, options);
  const reply = await connection.join(room);
  assert.equal(reply.type, 'snapshot', `join of ${room}: ${JSON.stringify(reply)}`);
  return connection;
}

/**
 * Checks that a rejected upgrade has the status and the JSON error body of the
 * protocol, `{"error": {"code": ..., "message": ...}}`. Returns the body.
 */
function assertJsonError(response, status, what) {
  assert.equal(response.status, status, `${what}: status ${response.status}, body ${response.body}`);
  assert.match(String(response.headers['content-type']), /^application\/json/,
    `${what}: content type ${response.headers['content-type']}`);
  let body;
  assert.doesNotThrow(() => {
    body = JSON.parse(response.body);
  }, `${what}: the body is JSON: ${response.body}`);
  assert.equal(typeof body.error?.code, 'string', `${what}: error code in ${response.body}`);
  assert.ok(body.error.code.length > 0, `${what}: error code is not empty`);
  assert.equal(typeof body.error?.message, 'string', `${what}: error message in ${response.body}`);
  assert.ok(body.error.message.length > 0, `${what}: error message is not empty`);
  return body;
}

/** Returns `count` create ops of bboxes with ids PREFIX0, PREFIX1, ... */
function creates(prefix, count) {
  return Array.from({ length: count }, (_, i) => ({
    op: 'create', id: `${prefix}${i}`, kind: 'bbox',
    fields: { item: 'img-1', label: 'cat', geometry: [i, i, 10, 10] },
  }));
}

function assertAllApplied(ack, count, what) {
  assert.equal(ack.type, 'ack', `${what}: ${JSON.stringify(ack)}`);
  assert.equal(ack.results.length, count, `${what}: one result per op`);
  for (const result of ack.results) assert.equal(result.status, 'applied', `${what}: ${JSON.stringify(result)}`);
  assert.equal(typeof ack.seq, 'number', `${what}: seq of the ack`);
}

/** Returns the HTTP snapshot of room from instance, read from Redis. */
async function httpSnapshot(instance, room) {
  const url = `${instance.httpUrl}/v1/rooms/${room}/snapshot`;
  const response = instance.tls ? await fetchJsonAnyCert(url) : await fetchJson(url);
  assert.equal(response.status, 200, `GET ${url}: ${response.text}`);
  return response.body;
}

function ids(objects) {
  return sortById(objects).map((o) => o.id);
}

// ---- Origin ----

describe('Origin allow-list', () => {
  const ALLOWED = ['https://app.example.com', 'http://localhost:5173'];
  let guarded;

  before(async () => {
    guarded = await env.startInstance('origin', { args: ['--allow-origin', ALLOWED.join(',')] });
  }, { timeout: 30000 });

  test('foreign Origin gets 403', { timeout: 30000 }, env.wrap(async () => {
    // Near misses of a listed origin: another host, a longer host, another
    // scheme, a prefix, another port, the opaque origin and the whole list.
    // The last origin is 259 bytes long, a DNS name of 246 bytes with a port.
    const longHost = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(50)}.com`;
    const foreign = [
      'https://evil.example.com',
      'https://app.example.com.evil.net',
      'http://app.example.com',
      'https://app.example.co',
      'http://localhost:5174',
      'null',
      ALLOWED.join(','),
      `https://${longHost}:8443`,
    ];
    for (const origin of foreign) {
      const response = await attemptUpgrade(wsUrl(guarded), { headers: { Origin: origin } });
      if (response.status === 101) await response.connection.close();
      assertJsonError(response, 403, `upgrade with Origin ${origin} (${origin.length} bytes)`);
    }
    const health = await fetchJson(`${guarded.httpUrl}/healthz`);
    assert.equal(health.status, 200, `/healthz after the rejected upgrades: ${health.text}`);
  }));

  test('listed Origins connect', { timeout: 30000 }, env.wrap(async () => {
    for (const [i, origin] of ALLOWED.entries()) {
      const room = `origin:listed-${i}`;
      const connection = await connectJoined(wsUrl(guarded), room, { headers: { Origin: origin } });
      connection.sendOps(room, 1, creates(`o${i}-`, 1));
      assertAllApplied(await connection.reply(room, 1), 1, `create with Origin ${origin}`);
    }
  }));

  test('no Origin connects', { timeout: 30000 }, env.wrap(async () => {
    // `ws` sends no Origin header unless it is given one, as bots do.
    const connection = await connectJoined(wsUrl(guarded), 'origin:none');
    connection.sendOps('origin:none', 1, creates('none-', 1));
    assertAllApplied(await connection.reply('origin:none', 1), 1, 'create without Origin');
  }));

  test('no check without --allow-origin', { timeout: 30000 }, env.wrap(async () => {
    await connectJoined(wsUrl(plain), 'origin:unchecked', { headers: { Origin: 'https://evil.example.com' } });
  }));
});

// ---- rate limit ----

describe('rate limit', () => {
  // The bucket has room for 20 ops and refills at 20 ops per second.
  let limited;

  before(async () => {
    limited = await env.startInstance('rate', { args: ['--rate-ops', '20', '--rate-burst', '20'] });
  }, { timeout: 30000 });

  test('over the rate gets rate_limited', { timeout: 30000 }, env.wrap(async () => {
    const room = 'rate:1';
    const connection = await connectJoined(wsUrl(limited), room);
    const first = creates('first-', 15);
    const second = creates('second-', 15);
    // Both batches leave in one turn of the event loop: the first takes 15
    // of the 20 ops in the bucket, and the second needs 15 when about 5 are
    // left, which take half a second to refill to 15.
    connection.sendOps(room, 1, first);
    connection.sendOps(room, 2, second);
    const firstAck = await connection.reply(room, 1);
    assertAllApplied(firstAck, first.length, 'the first batch');
    const rejected = await connection.reply(room, 2);
    assert.equal(rejected.type, 'error', `the second batch: ${JSON.stringify(rejected)}`);
    assert.equal(rejected.code, 'rate_limited', JSON.stringify(rejected));
    assert.equal(rejected.room, room, JSON.stringify(rejected));
    assert.equal(rejected.opseq, 2, JSON.stringify(rejected));
    assert.equal(typeof rejected.message, 'string', JSON.stringify(rejected));

    // Nothing of the second batch is in Redis, and no event carries it.
    const between = await httpSnapshot(limited, room);
    assert.deepEqual(ids(between.objects), ids(first), `snapshot after rate_limited: ${JSON.stringify(between)}`);
    assert.equal(between.seq, firstAck.seq, 'seq after rate_limited');
    await connection.take('event of the first batch', (m) => m.type === 'event' && m.room === room && m.opseq === 1);
    const events = connection.messages.filter((m) => m.type === 'event' && m.room === room);
    assert.deepEqual(events, [], 'events other than that of the first batch before the resend');

    // Each connection has a bucket of its own.
    const other = await connectJoined(wsUrl(limited), 'rate:other');
    other.sendOps('rate:other', 1, creates('other-', 15));
    assertAllApplied(await other.reply('rate:other', 1), 15, 'a batch on another connection');

    // After a second the bucket is full again, and the same batch with the same opseq applies.
    await sleep(1100);
    connection.sendOps(room, 2, second);
    const secondAck = await connection.reply(room, 2);
    assertAllApplied(secondAck, second.length, 'the resent batch');
    assert.equal(secondAck.seq, firstAck.seq + 1, 'seq of the resent batch');
    const afterResend = await httpSnapshot(limited, room);
    assert.deepEqual(ids(afterResend.objects), ids([...first, ...second]),
      `snapshot after the resend: ${JSON.stringify(afterResend)}`);
    await connection.take('event of the resent batch', (m) => m.type === 'event' && m.room === room && m.opseq === 2);
  }));

  test('resend works after a later batch', { timeout: 30000 }, env.wrap(async () => {
    // A client may send a batch before the ack of the previous one arrives,
    // so here a small batch 3 follows the rejected batch 2 at once. Batch 3
    // may apply or be rejected too, and each rejected batch must apply when
    // resent with its opseq.
    const room = 'rate:pipelined';
    const connection = await connectJoined(wsUrl(limited), room);
    const batches = new Map([[1, creates('p1-', 15)], [2, creates('p2-', 15)], [3, creates('p3-', 3)]]);
    for (const [opseq, ops] of batches) connection.sendOps(room, opseq, ops);
    const replies = new Map();
    for (const opseq of batches.keys()) replies.set(opseq, await connection.reply(room, opseq));
    assertAllApplied(replies.get(1), 15, 'batch 1');
    assert.equal(replies.get(2).code, 'rate_limited', `batch 2: ${JSON.stringify(replies.get(2))}`);
    const rejected = [...replies].filter(([, reply]) => reply.type === 'error').map(([opseq]) => opseq);
    for (const opseq of rejected) {
      assert.equal(replies.get(opseq).code, 'rate_limited', `batch ${opseq}: ${JSON.stringify(replies.get(opseq))}`);
    }

    await sleep(1100);
    for (const opseq of rejected) {
      connection.sendOps(room, opseq, batches.get(opseq));
      assertAllApplied(await connection.reply(room, opseq), batches.get(opseq).length,
        `batch ${opseq} resent after batches ${[...replies.keys()].join(', ')} were sent`);
    }
    const snapshot = await httpSnapshot(limited, room);
    assert.deepEqual(ids(snapshot.objects), ids([...batches.values()].flat()), 'snapshot after the resends');
  }));

  test('defaults take 2000 ops at once', { timeout: 60000 }, env.wrap(async () => {
    // The default bucket has room for 2000 ops, two batches of the default maximum of 1000 ops.
    const room = 'rate:defaults';
    const connection = await connectJoined(wsUrl(plain), room);
    connection.sendOps(room, 1, creates('d1-', 1000));
    connection.sendOps(room, 2, creates('d2-', 1000));
    assertAllApplied(await connection.reply(room, 1, 30000), 1000, 'the first batch of 1000 ops');
    assertAllApplied(await connection.reply(room, 2, 30000), 1000, 'the second batch of 1000 ops');
  }));
});

// ---- connections per address ----

describe('connections per address', () => {
  const MAX_CONNS = 3;
  let capped;

  before(async () => {
    capped = await env.startInstance('capped', { args: ['--max-conns-per-ip', String(MAX_CONNS)] });
  }, { timeout: 30000 });

  /** Retries an upgrade until it opens, because the server counts a close only once it has processed it. */
  function connectOnceFreed(what) {
    return waitUntil(what, async () => {
      const result = await attemptUpgrade(wsUrl(capped));
      if (result.status === 101) return result.connection;
      if (result.status === 429) return null;
      throw new Error(`status ${result.status}, body ${result.body}`);
    }, { timeoutMs: 5000, intervalMs: 100 });
  }

  test('N+1th connection gets 429', { timeout: 60000 }, env.wrap(async () => {
    // Of 2 * MAX_CONNS upgrades sent at once, exactly MAX_CONNS open.
    const burst = await Promise.all(Array.from({ length: 2 * MAX_CONNS }, () => attemptUpgrade(wsUrl(capped))));
    const open = burst.filter((r) => r.status === 101).map((r) => r.connection);
    assert.equal(open.length, MAX_CONNS,
      `upgrades that opened of ${2 * MAX_CONNS} at once: statuses ${burst.map((r) => r.status).join(' ')}`);
    for (const rejected of burst.filter((r) => r.status !== 101)) {
      assertJsonError(rejected, 429, 'an upgrade of the burst over the cap');
    }
    assertJsonError(await attemptUpgrade(wsUrl(capped)), 429, `upgrade number ${2 * MAX_CONNS + 1}`);

    // Plain HTTP requests are not WebSocket connections, and another address has a count of its own.
    const health = await fetchJson(`${capped.httpUrl}/healthz`);
    assert.equal(health.status, 200, `/healthz at the cap: ${health.text}`);
    const fromOther = await connect(wsUrl(capped), { localAddress: '127.0.0.2' });
    await fromOther.close();

    // A closed connection frees its place, and the rejected upgrades took none.
    await open.shift().close();
    open.push(await connectOnceFreed('a new connection after a close'));
    assertJsonError(await attemptUpgrade(wsUrl(capped)), 429, 'upgrade after the place was taken again');

    // A connection cut without a close frame frees its place too.
    const cut = open.shift();
    cut.socket.terminate();
    await withTimeout(cut.closed, 5000, 'the cut connection to close');
    open.push(await connectOnceFreed('a new connection after a cut'));
    assertJsonError(await attemptUpgrade(wsUrl(capped)), 429, 'upgrade after the cut place was taken again');

    const reply = await open.at(-1).join('capped:1');
    assert.equal(reply.type, 'snapshot', `join on the newest connection: ${JSON.stringify(reply)}`);
    for (const connection of open) await connection.close();
  }));
});

// ---- TLS ----

describe('TLS', () => {
  let secure;
  let certPem;

  before(async () => {
    const certFile = path.join(env.dir, 'tls-cert.pem');
    const keyFile = path.join(env.dir, 'tls-key.pem');
    const req = await runProcess('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
      '-keyout', keyFile, '-out', certFile,
    ], { timeoutMs: 30000 });
    assert.equal(req.code, 0, describeRun('openssl req -x509', req));
    fs.chmodSync(keyFile, 0o600);
    certPem = fs.readFileSync(certFile, 'utf8');
    secure = await env.startInstance('tls', { tls: true, args: ['--tls-cert', certFile, '--tls-key', keyFile] });
  }, { timeout: 60000 });

  test('wss join gets a snapshot', { timeout: 30000 }, env.wrap(async () => {
    const room = 'tls:1';
    // The certificate is the only CA; its name is localhost, not 127.0.0.1.
    const trust = { ca: certPem, servername: 'localhost' };
    const writer = await connect(wsUrl(secure), trust);
    assert.ok(wsUrl(secure).startsWith('wss://'), wsUrl(secure));
    const first = await writer.join(room);
    assert.equal(first.type, 'snapshot', JSON.stringify(first));
    assert.deepEqual(first.objects, [], JSON.stringify(first));
    writer.sendOps(room, 1, creates('tls-', 2));
    const ack = await writer.reply(room, 1);
    assertAllApplied(ack, 2, 'creates over wss');

    const reader = await connect(wsUrl(secure), { rejectUnauthorized: false });
    const snapshot = await reader.join(room);
    assert.equal(snapshot.type, 'snapshot', JSON.stringify(snapshot));
    assert.equal(snapshot.seq, ack.seq, JSON.stringify(snapshot));
    assert.deepEqual(ids(snapshot.objects), ['tls-0', 'tls-1'], JSON.stringify(snapshot));
  }));

  test('wss carries a 2 MB snapshot and a burst of events in order', { timeout: 60000 }, env.wrap(async () => {
    // Messages larger than one TLS record and than one send() go out in
    // parts, and events queued behind them keep their order.
    const room = 'tls:big';
    const writer = await connect(wsUrl(secure), { rejectUnauthorized: false });
    await writer.join(room);
    const note = 'n'.repeat(900);
    for (let batch = 0; batch < 20; batch++) {
      const ops = creates(`big-${batch}-`, 100).map((op) => ({ ...op, fields: { ...op.fields, note } }));
      writer.sendOps(room, batch + 1, ops);
      assertAllApplied(await writer.reply(room, batch + 1), 100, `batch ${batch} over wss`);
    }
    const reader = await connect(wsUrl(secure), { rejectUnauthorized: false });
    const snapshot = await reader.join(room);
    assert.equal(snapshot.objects.length, 2000, `objects in the snapshot: ${snapshot.objects.length}`);
    assert.ok(JSON.stringify(snapshot).length > 2e6, 'the snapshot is over 2 MB');
    for (let i = 0; i < 200; i++) writer.sendOps(room, 100 + i, creates(`burst-${i}-`, 1));
    for (let i = 0; i < 200; i++) {
      const reply = await writer.reply(room, 100 + i);
      assert.equal(reply.type, 'ack', JSON.stringify(reply));
    }
    const last = await reader.take('the last event of the burst', (m) => m.type === 'event' && m.seq === snapshot.seq + 200, 30000);
    const seqs = reader.messages.filter((m) => m.type === 'event' && m.room === room).map((m) => m.seq);
    assert.deepEqual([...seqs, last.seq], Array.from({ length: 200 }, (_, i) => snapshot.seq + 1 + i));
  }));

  test('https GET /healthz', { timeout: 30000 }, env.wrap(async () => {
    const health = await fetchJsonAnyCert(`${secure.httpUrl}/healthz`);
    assert.equal(health.status, 200, health.text);
    assert.equal(health.body?.status, 'ok', health.text);
    assert.equal(health.body?.instance, 'tls', health.text);
    const snapshot = await httpSnapshot(secure, 'tls:1');
    assert.equal(snapshot.room, 'tls:1', JSON.stringify(snapshot));
  }));

  test('port presents the certificate', { timeout: 30000 }, env.wrap(async () => {
    const expected = new crypto.X509Certificate(certPem).fingerprint256;
    const presented = await withTimeout(new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: secure.port, ca: certPem, servername: 'localhost' }, () => {
        const result = { authorized: socket.authorized, error: socket.authorizationError, fingerprint: socket.getPeerCertificate().fingerprint256 };
        socket.destroy();
        resolve(result);
      });
      socket.on('error', reject);
    }), 10000, 'a TLS handshake with the tls instance');
    assert.equal(presented.fingerprint, expected, 'fingerprint of the presented certificate');
    assert.ok(presented.authorized, `the certificate verifies against itself: ${presented.error}`);
  }));

  test('plain HTTP on TLS port fails', { timeout: 30000 }, env.wrap(async () => {
    // Plain HTTP gets no 200: a TLS port reads it as a bad handshake.
    const outcome = await new Promise((resolve) => {
      const request = http.get({ host: '127.0.0.1', port: secure.port, path: '/healthz', agent: false, timeout: 5000 },
        (response) => {
          response.resume();
          resolve({ status: response.statusCode });
        });
      request.on('timeout', () => request.destroy(new Error('no response within 5000 ms')));
      request.on('error', (err) => resolve({ error: err.message }));
    });
    assert.notEqual(outcome.status, 200, `plain HTTP GET /healthz on the TLS port: ${JSON.stringify(outcome)}`);
    // The instance still serves TLS after the bad handshake.
    const health = await fetchJsonAnyCert(`${secure.httpUrl}/healthz`);
    assert.equal(health.status, 200, `/healthz over https after plain HTTP: ${health.text}`);
  }));
});

// ---- nbf ----

describe('token nbf', () => {
  // The instance checks HS256 tokens with the default clock skew of 60 s.
  const SKEW_SECONDS = 60;
  let checked;
  let secret;

  before(async () => {
    secret = crypto.randomBytes(48).toString('hex');
    const secretFile = path.join(env.dir, 'hs256.secret');
    fs.writeFileSync(secretFile, secret, { mode: 0o600 });
    fs.chmodSync(secretFile, 0o600);
    checked = await env.startInstance('nbf', { auth: { secretFile } });
  }, { timeout: 30000 });

  /** Returns an HS256 token for a viewer of nbf:* whose nbf is now + nbfOffset seconds. */
  function tokenWithNbf(nbfOffset) {
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: 'u-nbf', role: 'viewer', rooms: ['nbf:*'], iat: now, nbf: now + nbfOffset, exp: now + 3600 + nbfOffset };
    const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const signingInput = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(claims)}`;
    const signature = crypto.createHmac('sha256', secret).update(signingInput).digest('base64url');
    return `${signingInput}.${signature}`;
  }

  function assertUnauthorized(response, what) {
    const body = assertJsonError(response, 401, what);
    assert.equal(body.error.code, 'unauthorized', `${what}: ${response.body}`);
  }

  test('nbf in the future gets 401', { timeout: 30000 }, env.wrap(async () => {
    const token = tokenWithNbf(3600);
    assertUnauthorized(await attemptUpgrade(wsUrl(checked), { headers: { Authorization: `Bearer ${token}` } }),
      'upgrade with nbf an hour ahead, in a header');
    assertUnauthorized(await attemptUpgrade(`${checked.wsUrl}/v1/ws?token=${encodeURIComponent(token)}`),
      'upgrade with nbf an hour ahead, in the query');
    const response = await fetch(`${checked.httpUrl}/v1/rooms/nbf:1/snapshot`, {
      headers: { Authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10000),
    });
    const text = await response.text();
    assert.equal(response.status, 401, `HTTP snapshot with nbf an hour ahead: ${text}`);

    const late = tokenWithNbf(SKEW_SECONDS + 30);
    assertUnauthorized(await attemptUpgrade(wsUrl(checked), { headers: { Authorization: `Bearer ${late}` } }),
      `upgrade with nbf ${SKEW_SECONDS + 30} s ahead`);
  }));

  test('nbf past or within skew connects', { timeout: 30000 }, env.wrap(async () => {
    for (const offset of [-60, 0, SKEW_SECONDS - 30]) {
      const token = tokenWithNbf(offset);
      const room = `nbf:ok-${offset + 100}`;
      await connectJoined(wsUrl(checked), room, { headers: { Authorization: `Bearer ${token}` } });
    }
  }));
});
