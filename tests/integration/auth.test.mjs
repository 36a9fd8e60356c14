// Authentication and roles: start-up checks of the auth settings, the 401
// response to an upgrade without a valid token, room patterns, what each role
// may write, the HTTP snapshot, token refresh, the close at token expiry and
// RS256 tokens.
//
// Tokens come from `annolive token` or are signed here with node:crypto, so a
// test can build any header and claim. Secrets live in files of mode 0600 in
// the test's temporary directory and are never printed.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  ANNOLIVE_BIN, CLI, REPO, TestEnv, describeRun, fetchJson, freePort, runProcess, sleep, waitUntil, withTimeout,
} from './harness.mjs';

// The `ws` package that client-js depends on. It can send an Authorization
// header with the upgrade request, which the browser WebSocket API cannot.
const requireFromClient = createRequire(path.join(REPO, 'client-js', 'package.json'));
const WebSocket = requireFromClient('ws');

const env = new TestEnv('auth');

const SUBPROTOCOL = 'annolive.v1.json';
const CLOSE_TOKEN_EXPIRED = 4001;

// Instance main checks HS256 tokens with the default skew of 60 s. Instance
// strict allows no skew, so it closes a connection when the token's exp passes. Instance
// rsa checks RS256 tokens against a public key.
let main;
let strict;
let rsa;
let secret;
let secretFile;
let rsaPrivateKey;
let rsaPublicKeyFile;

/** Writes data to a new file of mode 0600 in the env's directory and returns its path. */
function writePrivateFile(name, data) {
  const file = path.join(env.dir, name);
  fs.writeFileSync(file, data, { mode: 0o600 });
  fs.chmodSync(file, 0o600);
  return file;
}

before(async () => {
  await env.init();
  await env.startRedis();

  secret = crypto.randomBytes(48).toString('hex');
  secretFile = writePrivateFile('hs256.secret', secret);

  const privateKeyFile = path.join(env.dir, 'rsa-private.pem');
  rsaPublicKeyFile = path.join(env.dir, 'rsa-public.pem');
  const genpkey = await runProcess('openssl', [
    'genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', privateKeyFile,
  ], { timeoutMs: 30000 });
  assert.equal(genpkey.code, 0, describeRun('openssl genpkey', genpkey));
  fs.chmodSync(privateKeyFile, 0o600);
  const pubout = await runProcess('openssl', [
    'pkey', '-in', privateKeyFile, '-pubout', '-out', rsaPublicKeyFile,
  ], { timeoutMs: 30000 });
  assert.equal(pubout.code, 0, describeRun('openssl pkey -pubout', pubout));
  rsaPrivateKey = fs.readFileSync(privateKeyFile, 'utf8');

  main = await env.startInstance('main', { auth: { secretFile } });
  strict = await env.startInstance('strict', { auth: { secretFile }, args: ['--auth-skew', '0'] });
  rsa = await env.startInstance('rsa', {
    auth: {}, args: ['--auth-alg', 'RS256', '--auth-key-file', rsaPublicKeyFile],
  });
}, { timeout: 90000 });

after(async () => {
  await env.cleanup();
}, { timeout: 120000 });

// ---- tokens ----

function base64url(data) {
  return Buffer.from(data).toString('base64url');
}

function nowSeconds() {
  return Math.floor(Date.now() / 1000);
}

/** Returns the claims of a token for sub that is valid from now for ttlSeconds. */
function claimsFor(sub, role, rooms, ttlSeconds = 600) {
  const now = nowSeconds();
  return { sub, role, rooms, iat: now, exp: now + ttlSeconds };
}

/** Signs claims as an HS256 token with key (the server's secret unless given). */
function signHs256(claims, { key = secret, header = { alg: 'HS256', typ: 'JWT' } } = {}) {
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const signature = crypto.createHmac('sha256', key).update(signingInput).digest('base64url');
  return `${signingInput}.${signature}`;
}

/** Signs claims as an RS256 token with a PEM private key. */
function signRs256(claims, privateKey) {
  const header = { alg: 'RS256', typ: 'JWT' };
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const signature = crypto.sign('RSA-SHA256', Buffer.from(signingInput), privateKey).toString('base64url');
  return `${signingInput}.${signature}`;
}

/** Returns the decoded payload of a token. */
function payloadOf(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

/** Mints a token with `annolive token` and the server's secret file. */
async function mintWithCli({ sub, role, rooms, ttl = '10m', name = null }) {
  const args = ['token', '--secret-file', secretFile, '--sub', sub, '--role', role, '--rooms', rooms, '--ttl', ttl];
  if (name !== null) args.push('--name', name);
  const result = await runProcess(ANNOLIVE_BIN, args, { timeoutMs: 10000 });
  assert.equal(result.code, 0, describeRun(`annolive token --sub ${sub}`, result));
  return result.stdout.trim();
}

// ---- upgrade requests and HTTP ----

/**
 * Sends a WebSocket upgrade request for urlPath and returns `{status,
 * headers, body}` of the response. A 101 response has the body null, and its
 * socket is destroyed at once.
 */
function requestUpgrade(instance, { urlPath = '/v1/ws', headers = {} } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const request = http.request({
      host: '127.0.0.1',
      port: instance.port,
      path: urlPath,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Protocol': SUBPROTOCOL,
        ...headers,
      },
    });
    request.on('upgrade', (response, socket) => {
      socket.destroy();
      resolve({ status: response.statusCode, headers: response.headers, body: null });
    });
    request.on('response', (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => {
        resolve({
          status: response.statusCode,
          headers: response.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        });
      });
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end();
  }), 10000, `upgrade request to ${instance.name}${urlPath}`);
}

function bearer(token) {
  return { Authorization: `Bearer ${token}` };
}

/** Checks that an upgrade response is a 401 with the JSON error body of the protocol. */
function assertUnauthorized(response, what) {
  assert.equal(response.status, 401, `${what}: status ${response.status}, body ${response.body}`);
  assert.match(String(response.headers['content-type']), /^application\/json/, `${what}: content type`);
  let body;
  assert.doesNotThrow(() => {
    body = JSON.parse(response.body);
  }, `${what}: the body is JSON: ${response.body}`);
  assert.equal(body.error?.code, 'unauthorized', `${what}: error code in ${response.body}`);
  assert.equal(typeof body.error?.message, 'string', `${what}: error message in ${response.body}`);
  assert.ok(body.error.message.length > 0, `${what}: error message is not empty`);
}

/** GETs url with optional headers and returns `{status, text, body}`. */
async function getJson(url, headers = {}) {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(10000) });
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: response.status, text, body };
}

// ---- a WebSocket connection that carries a token ----

let connections = 0;

/**
 * A JSON WebSocket connection that stores every message it receives. It has
 * the `actor` and `close()` of an AnnoliveClient, so env.cleanup() closes it.
 */
class TokenConnection {
  constructor(socket, actor) {
    this.socket = socket;
    this.actor = actor;
    this.nextOpseq = 1;
    this.messages = [];
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      socket.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8'), at: Date.now() };
        resolve(this.closeInfo);
      });
    });
    socket.on('message', (data) => this.messages.push(JSON.parse(data.toString('utf8'))));
    socket.on('error', () => {
      // The close event reports the end of the connection.
    });
  }

  /**
   * Opens a connection to instance with token, sent as an Authorization
   * header (via 'header') or as the query argument token (via 'query').
   */
  static async open(instance, token, { via = 'header' } = {}) {
    connections += 1;
    const actor = `auth-${connections}-${crypto.randomBytes(3).toString('hex')}`;
    const url = via === 'query'
      ? `${instance.wsUrl}/v1/ws?token=${encodeURIComponent(token)}`
      : `${instance.wsUrl}/v1/ws`;
    const headers = via === 'header' ? bearer(token) : {};
    const socket = new WebSocket(url, SUBPROTOCOL, { headers, handshakeTimeout: 5000 });
    const connection = new TokenConnection(socket, actor);
    env.clients.push(connection);
    await withTimeout(new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('unexpected-response', (request, response) => {
        reject(new Error(`upgrade to ${instance.name} via ${via} returned status ${response.statusCode}`));
        request.destroy();
      });
      socket.once('error', reject);
    }), 10000, `WebSocket to ${instance.name} via ${via} to open`);
    return connection;
  }

  get open() {
    return this.socket.readyState === WebSocket.OPEN;
  }

  send(message) {
    this.socket.send(JSON.stringify(message));
  }

  /** Waits for a message that satisfies predicate, removes it from the store and returns it. */
  async take(what, predicate, timeoutMs = 10000) {
    const message = await waitUntil(`${what} at ${this.actor}`, () => {
      if (this.closeInfo) throw new Error(`connection closed with ${this.closeInfo.code} ${this.closeInfo.reason}`);
      return this.messages.find(predicate);
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

  /** Sends an op batch and returns the ack or the error that replies to it. */
  sendOps(room, ops) {
    const opseq = this.nextOpseq;
    this.nextOpseq += 1;
    this.send({ type: 'ops', room, actor: this.actor, opseq, ops });
    return this.take(`reply to ops ${opseq} in ${room}`,
      (m) => m.room === room && m.opseq === opseq && (m.type === 'ack' || m.type === 'error'));
  }

  /** Sends an auth message and returns the authed reply or the error. */
  refresh(token) {
    this.send({ type: 'auth', token });
    return this.take('reply to auth', (m) => m.type === 'authed' || m.type === 'error');
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

/** Opens a connection and joins room. Fails unless the join returns a snapshot. */
async function openJoined(instance, token, room) {
  const connection = await TokenConnection.open(instance, token);
  const reply = await connection.join(room);
  assert.equal(reply.type, 'snapshot', `join of ${room}: ${JSON.stringify(reply)}`);
  return connection;
}

/** Sends one op and returns its result. Fails when the batch gets an error instead of an ack. */
async function sendOne(connection, room, op) {
  const reply = await connection.sendOps(room, [op]);
  assert.equal(reply.type, 'ack', `ops in ${room}: ${JSON.stringify(reply)}`);
  assert.equal(reply.results.length, 1, `one result: ${JSON.stringify(reply)}`);
  return reply.results[0];
}

function assertApplied(result, what) {
  assert.equal(result.status, 'applied', `${what}: ${JSON.stringify(result)}`);
}

function assertForbidden(result, what) {
  assert.equal(result.status, 'rejected', `${what}: ${JSON.stringify(result)}`);
  assert.equal(result.reason, 'forbidden', `${what}: ${JSON.stringify(result)}`);
  assert.equal(typeof result.message, 'string', `${what}: message in ${JSON.stringify(result)}`);
  assert.ok(result.message.length > 0, `${what}: message is not empty`);
}

function bbox(id, extra = {}) {
  return { op: 'create', id, kind: 'bbox', fields: { item: 'img-1', label: 'cat', geometry: [0, 0, 10, 10], ...extra } };
}

// ---- tests ----

describe('auth start-up settings', () => {
  // The variables that could give the server a secret, a key or --no-auth
  // are removed from the environment of these runs (spawn drops undefined values).
  const NO_AUTH_ENV = {
    ANNOLIVE_AUTH_SECRET: undefined,
    ANNOLIVE_AUTH_SECRET_FILE: undefined,
    ANNOLIVE_AUTH_KEY_FILE: undefined,
    ANNOLIVE_NO_AUTH: undefined,
  };

  async function runServer(args, extraEnv = {}) {
    return runProcess(ANNOLIVE_BIN, [
      '--listen', `127.0.0.1:${await freePort()}`, '--redis', env.redis.url, ...args,
    ], { timeoutMs: 15000, env: { ...NO_AUTH_ENV, ...extraEnv } });
  }

  function stderrLines(result) {
    return result.stderr.split('\n').filter((line) => line.trim() !== '');
  }

  test('no secret and no key', { timeout: 20000 }, env.wrap(async () => {
    const result = await runServer([]);
    assert.equal(result.timedOut, false, describeRun('annolive without auth settings', result));
    assert.equal(result.code, 2, describeRun('annolive without auth settings', result));
    assert.equal(stderrLines(result).length, 1, describeRun('one line on stderr', result));
    for (const name of ['--auth-secret-file', 'ANNOLIVE_AUTH_SECRET', '--auth-key-file', '--no-auth']) {
      assert.ok(result.stderr.includes(name), describeRun(`the message names ${name}`, result));
    }
  }));

  test('no-auth on a non-loopback address', { timeout: 20000 }, env.wrap(async () => {
    const result = await runProcess(ANNOLIVE_BIN, [
      '--no-auth', '--listen', `0.0.0.0:${await freePort()}`, '--redis', env.redis.url,
    ], { timeoutMs: 15000, env: NO_AUTH_ENV });
    assert.equal(result.timedOut, false, describeRun('annolive --no-auth --listen 0.0.0.0', result));
    assert.equal(result.code, 2, describeRun('annolive --no-auth --listen 0.0.0.0', result));
    assert.match(result.stderr, /--no-auth/, describeRun('the message names --no-auth', result));
  }));

  test('ANNOLIVE_NO_AUTH on a non-loopback address', { timeout: 20000 }, env.wrap(async () => {
    const result = await runProcess(ANNOLIVE_BIN, [
      '--listen', `0.0.0.0:${await freePort()}`, '--redis', env.redis.url,
    ], { timeoutMs: 15000, env: { ...NO_AUTH_ENV, ANNOLIVE_NO_AUTH: '1' } });
    assert.equal(result.code, 2, describeRun('ANNOLIVE_NO_AUTH=1 --listen 0.0.0.0', result));
  }));

  test('secret file of 31 bytes', { timeout: 20000 }, env.wrap(async () => {
    const file = writePrivateFile('short.secret', 'x'.repeat(31));
    const result = await runServer(['--auth-secret-file', file]);
    assert.equal(result.timedOut, false, describeRun('annolive with a 31-byte secret', result));
    assert.equal(result.code, 2, describeRun('annolive with a 31-byte secret', result));
    assert.match(result.stderr, /32/, describeRun('the message names the minimum of 32 bytes', result));
  }));

  test('secret of 31 bytes and a newline', { timeout: 20000 }, env.wrap(async () => {
    // The server drops one trailing newline, so 31 bytes remain.
    const file = writePrivateFile('short-newline.secret', `${'y'.repeat(31)}\n`);
    const result = await runServer(['--auth-secret-file', file]);
    assert.equal(result.code, 2, describeRun('annolive with a 31-byte secret and a newline', result));
  }));

  test('ANNOLIVE_AUTH_SECRET of 31 bytes', { timeout: 20000 }, env.wrap(async () => {
    const result = await runServer([], { ANNOLIVE_AUTH_SECRET: 'z'.repeat(31) });
    assert.equal(result.code, 2, describeRun('annolive with a 31-byte ANNOLIVE_AUTH_SECRET', result));
  }));

  test('secret file of 32 bytes', { timeout: 30000 }, env.wrap(async () => {
    const file = writePrivateFile('exact.secret', 'k'.repeat(32));
    const instance = await env.startInstance('secret32', { auth: { secretFile: file } });
    const health = await fetchJson(`${instance.httpUrl}/healthz`);
    assert.equal(health.status, 200);
    await instance.stop();
  }));
});

describe('upgrade without a valid token', () => {
  const cases = [
    ['no token', () => ({})],
    ['malformed token', () => bearer('not-a-token')],
    ['three segments of garbage', () => bearer('abc.def.ghi')],
    ['wrong signature', () => bearer(signHs256(claimsFor('u1', 'admin', ['*']), {
      key: crypto.randomBytes(48).toString('hex'),
    }))],
    ['alg none', () => {
      const header = base64url(JSON.stringify({ alg: 'none', typ: 'JWT' }));
      const payload = base64url(JSON.stringify(claimsFor('u1', 'admin', ['*'])));
      return bearer(`${header}.${payload}.`);
    }],
    ['alg none with a signature', () => bearer(signHs256(claimsFor('u1', 'admin', ['*']), {
      header: { alg: 'none', typ: 'JWT' },
    }))],
    ['expired token', () => {
      const now = nowSeconds();
      return bearer(signHs256({ sub: 'u1', role: 'admin', rooms: ['*'], iat: now - 7200, exp: now - 3600 }));
    }],
    ['token without exp', () => bearer(signHs256({ sub: 'u1', role: 'admin', rooms: ['*'] }))],
    ['empty bearer', () => ({ Authorization: 'Bearer ' })],
  ];
  for (const [name, makeHeaders] of cases) {
    test(`401 for ${name}`, { timeout: 15000 }, env.wrap(async () => {
      const response = await requestUpgrade(main, { headers: makeHeaders() });
      assertUnauthorized(response, name);
    }));
  }

  test('401 for a bad query token', { timeout: 15000 }, env.wrap(async () => {
    const wrongKey = crypto.randomBytes(48).toString('hex');
    const token = signHs256(claimsFor('u1', 'admin', ['*']), { key: wrongKey });
    const response = await requestUpgrade(main, { urlPath: `/v1/ws?token=${token}` });
    assertUnauthorized(response, 'query token with a wrong signature');
  }));

  test('valid token as bearer header', { timeout: 15000 }, env.wrap(async () => {
    const token = await mintWithCli({ sub: 'u1', role: 'viewer', rooms: 'p:1' });
    const response = await requestUpgrade(main, { headers: bearer(token) });
    assert.equal(response.status, 101, `status ${response.status}, body ${response.body}`);
  }));

  test('valid token as query argument', { timeout: 15000 }, env.wrap(async () => {
    const token = await mintWithCli({ sub: 'u1', role: 'viewer', rooms: 'p:1' });
    const response = await requestUpgrade(main, { urlPath: `/v1/ws?token=${token}` });
    assert.equal(response.status, 101, `status ${response.status}, body ${response.body}`);
  }));

  test('query token opens a working connection', { timeout: 20000 }, env.wrap(async () => {
    const token = await mintWithCli({ sub: 'u-query', role: 'viewer', rooms: 'p:1', name: 'Query User' });
    const connection = await TokenConnection.open(main, token, { via: 'query' });
    const reply = await connection.join('p:1');
    assert.equal(reply.type, 'snapshot', JSON.stringify(reply));
  }));
});

describe('room patterns', () => {
  test('exact and prefix patterns', { timeout: 30000 }, env.wrap(async () => {
    const token = await mintWithCli({ sub: 'u-rooms', role: 'viewer', rooms: 'p:1,q:*' });
    const connection = await TokenConnection.open(main, token);
    for (const room of ['p:1', 'q:1', 'q:abc', 'q:']) {
      const reply = await connection.join(room);
      assert.equal(reply.type, 'snapshot', `join of ${room}: ${JSON.stringify(reply)}`);
    }
    for (const room of ['p:2', 'p:10', 'p:1x', 'p', 'q', 'r:1', 'Q:1']) {
      const reply = await connection.join(room);
      assert.equal(reply.type, 'error', `join of ${room}: ${JSON.stringify(reply)}`);
      assert.equal(reply.code, 'forbidden', `join of ${room}: ${JSON.stringify(reply)}`);
      assert.equal(reply.room, room, `join of ${room}: ${JSON.stringify(reply)}`);
    }
  }));

  test('pattern role overrides token role', { timeout: 30000 }, env.wrap(async () => {
    // The exact pattern beats both prefixes, and the longer prefix beats "pr:*".
    const token = signHs256(claimsFor('u-pattern', 'viewer', [
      { pattern: 'pr:edit', role: 'annotator' },
      { pattern: 'pr:admin:*', role: 'admin' },
      'pr:*',
    ]));
    const connection = await TokenConnection.open(main, token);
    for (const room of ['pr:edit', 'pr:view', 'pr:admin:1']) {
      const reply = await connection.join(room);
      assert.equal(reply.type, 'snapshot', `join of ${room}: ${JSON.stringify(reply)}`);
    }
    assertApplied(await sendOne(connection, 'pr:edit', bbox('pe-1')), 'create as annotator of pr:edit');
    assertForbidden(await sendOne(connection, 'pr:view', bbox('pv-1')), 'create as viewer of pr:view');
    assertApplied(await sendOne(connection, 'pr:admin:1', { op: 'settings', base: {}, set: { policy: 'lww' } }),
      'settings as admin of pr:admin:1');
    assertForbidden(await sendOne(connection, 'pr:edit', { op: 'settings', base: {}, set: { policy: 'lww' } }),
      'settings as annotator of pr:edit');
  }));

  test('pattern role narrows token role', { timeout: 30000 }, env.wrap(async () => {
    const token = signHs256(claimsFor('u-narrow', 'annotator', [{ pattern: 'pn:ro', role: 'viewer' }, 'pn:*']));
    const connection = await TokenConnection.open(main, token);
    for (const room of ['pn:ro', 'pn:rw']) {
      const reply = await connection.join(room);
      assert.equal(reply.type, 'snapshot', `join of ${room}: ${JSON.stringify(reply)}`);
    }
    assertForbidden(await sendOne(connection, 'pn:ro', bbox('pn-1')), 'create as viewer of pn:ro');
    assertApplied(await sendOne(connection, 'pn:rw', bbox('pn-2')), 'create as annotator of pn:rw');
  }));
});

describe('ops by role', () => {
  /** Opens a connection as role with a token for the rooms roles:*. */
  async function connectAs(role, room) {
    const token = await mintWithCli({ sub: `u-${role}`, role, rooms: 'roles:*' });
    return openJoined(main, token, room);
  }

  test('viewer cannot write', { timeout: 30000 }, env.wrap(async () => {
    const room = 'roles:viewer';
    const admin = await connectAs('admin', room);
    const created = await sendOne(admin, room, bbox('v-1'));
    assertApplied(created, 'create as admin');
    const viewer = await connectAs('viewer', room);
    assertForbidden(await sendOne(viewer, room, bbox('v-2')), 'create as viewer');
    assertForbidden(await sendOne(viewer, room, { op: 'update', id: 'v-1', base: created.vv, set: { label: 'dog' } }),
      'update as viewer');
    assertForbidden(await sendOne(viewer, room, { op: 'delete', id: 'v-1', base: created.vv }), 'delete as viewer');
  }));

  test('annotator writes but not review', { timeout: 30000 }, env.wrap(async () => {
    const room = 'roles:annotator';
    const annotator = await connectAs('annotator', room);
    const created = await sendOne(annotator, room, bbox('a-1'));
    assertApplied(created, 'create as annotator');
    const updated = await sendOne(annotator, room, { op: 'update', id: 'a-1', base: created.vv, set: { label: 'dog' } });
    assertApplied(updated, 'update as annotator');
    assertForbidden(await sendOne(annotator, room, { op: 'update', id: 'a-1', base: updated.vv, set: { review: 'ok' } }),
      'update of review as annotator');
    assertForbidden(await sendOne(annotator, room, { op: 'update', id: 'a-1', base: updated.vv, unset: ['review'] }),
      'unset of review as annotator');
    assertForbidden(await sendOne(annotator, room, bbox('a-2', { review: 'ok' })), 'create with review as annotator');
    assertApplied(await sendOne(annotator, room, { op: 'delete', id: 'a-1', base: updated.vv }), 'delete as annotator');
  }));

  test('reviewer sets review', { timeout: 30000 }, env.wrap(async () => {
    const room = 'roles:reviewer';
    const reviewer = await connectAs('reviewer', room);
    const created = await sendOne(reviewer, room, bbox('r-1'));
    assertApplied(created, 'create as reviewer');
    const reviewed = await sendOne(reviewer, room, { op: 'update', id: 'r-1', base: created.vv, set: { review: 'accepted' } });
    assertApplied(reviewed, 'update of review as reviewer');
    assertApplied(await sendOne(reviewer, room, { op: 'update', id: 'r-1', base: reviewed.vv, unset: ['review'] }),
      'unset of review as reviewer');
  }));

  test('bot creates only auto objects', { timeout: 30000 }, env.wrap(async () => {
    const room = 'roles:bot';
    const bot = await connectAs('bot', room);
    assertForbidden(await sendOne(bot, room, bbox('b-1')), 'create without source as bot');
    assertForbidden(await sendOne(bot, room, bbox('b-2', { source: 'manual', score: 0.5 })),
      'create with source manual as bot');
    assertForbidden(await sendOne(bot, room, bbox('b-3', { source: 'auto' })), 'create without score as bot');
    assertForbidden(await sendOne(bot, room, bbox('b-4', { source: 'auto', score: '0.9' })),
      'create with a string score as bot');
    const created = await sendOne(bot, room, bbox('b-5', { source: 'auto', score: 0.9 }));
    assertApplied(created, 'create with source auto and a numeric score as bot');
    assertForbidden(await sendOne(bot, room, bbox('b-6', { source: 'auto', score: 0.9, review: 'ok' })),
      'create with review as bot');
    assertForbidden(await sendOne(bot, room, { op: 'update', id: 'b-5', base: created.vv, set: { review: 'ok' } }),
      'update of review as bot');
    assertForbidden(await sendOne(bot, room, { op: 'update', id: 'b-5', base: created.vv, set: { source: 'manual' } }),
      'update of source to manual as bot');
    const updated = await sendOne(bot, room, { op: 'update', id: 'b-5', base: created.vv, set: { label: 'dog' } });
    assertApplied(updated, 'update of label as bot');
    assertApplied(await sendOne(bot, room, { op: 'delete', id: 'b-5', base: updated.vv }), 'delete as bot');
  }));

  test('only admin sends settings', { timeout: 30000 }, env.wrap(async () => {
    const room = 'roles:settings';
    const settings = { op: 'settings', base: {}, set: { policy: 'lww' } };
    for (const role of ['viewer', 'annotator', 'reviewer', 'bot']) {
      const connection = await connectAs(role, room);
      const result = await sendOne(connection, room, settings);
      assertForbidden(result, `settings as ${role}`);
      assert.equal(result.id, '@room', `settings result id: ${JSON.stringify(result)}`);
    }
    const admin = await connectAs('admin', room);
    assertApplied(await sendOne(admin, room, settings), 'settings as admin');
  }));
});

describe('HTTP snapshot', () => {
  const room = 'snap:1';

  before(async () => {
    const token = await mintWithCli({ sub: 'u-snap-writer', role: 'annotator', rooms: 'snap:*' });
    const writer = await openJoined(main, token, room);
    assertApplied(await sendOne(writer, room, bbox('s-1')), 'create in snap:1');
    await writer.close();
  }, { timeout: 30000 });

  test('401 without token', { timeout: 15000 }, env.wrap(async () => {
    const response = await getJson(`${main.httpUrl}/v1/rooms/${room}/snapshot`);
    assert.equal(response.status, 401, response.text);
    assert.equal(response.body?.error?.code, 'unauthorized', response.text);
  }));

  test('401 with a bad token', { timeout: 15000 }, env.wrap(async () => {
    const token = signHs256(claimsFor('u-snap', 'viewer', ['snap:*']), { key: crypto.randomBytes(48).toString('hex') });
    const response = await getJson(`${main.httpUrl}/v1/rooms/${room}/snapshot`, bearer(token));
    assert.equal(response.status, 401, response.text);
    assert.equal(response.body?.error?.code, 'unauthorized', response.text);
  }));

  test('403 for a room not granted', { timeout: 15000 }, env.wrap(async () => {
    const token = await mintWithCli({ sub: 'u-snap', role: 'admin', rooms: 'other:*' });
    const response = await getJson(`${main.httpUrl}/v1/rooms/${room}/snapshot`, bearer(token));
    assert.equal(response.status, 403, response.text);
    assert.equal(response.body?.error?.code, 'forbidden', response.text);
  }));

  test('200 with bearer token', { timeout: 15000 }, env.wrap(async () => {
    const token = await mintWithCli({ sub: 'u-snap', role: 'viewer', rooms: 'snap:1' });
    const response = await getJson(`${main.httpUrl}/v1/rooms/${room}/snapshot`, bearer(token));
    assert.equal(response.status, 200, response.text);
    assert.equal(response.body.room, room);
    assert.deepEqual(response.body.objects.map((o) => o.id), ['s-1']);
  }));

  test('200 with query token', { timeout: 15000 }, env.wrap(async () => {
    const token = await mintWithCli({ sub: 'u-snap', role: 'viewer', rooms: 'snap:*' });
    const response = await getJson(`${main.httpUrl}/v1/rooms/${room}/snapshot?token=${token}`);
    assert.equal(response.status, 200, response.text);
    assert.deepEqual(response.body.objects.map((o) => o.id), ['s-1']);
  }));
});

describe('token refresh', () => {
  test('fresh token for same sub', { timeout: 20000 }, env.wrap(async () => {
    const first = await mintWithCli({ sub: 'u-refresh', role: 'annotator', rooms: 'rf:*', ttl: '5m' });
    const connection = await openJoined(main, first, 'rf:1');
    const second = await mintWithCli({ sub: 'u-refresh', role: 'annotator', rooms: 'rf:*', ttl: '20m' });
    const reply = await connection.refresh(second);
    assert.equal(reply.type, 'authed', JSON.stringify(reply));
    assert.equal(reply.sub, 'u-refresh');
    assert.equal(reply.exp, payloadOf(second).exp);
    assertApplied(await sendOne(connection, 'rf:1', bbox('rf-1')), 'create after the refresh');
  }));

  test('expired token is unauthorized', { timeout: 20000 }, env.wrap(async () => {
    const token = await mintWithCli({ sub: 'u-refresh-2', role: 'annotator', rooms: 'rf:*' });
    const connection = await openJoined(main, token, 'rf:2');
    const now = nowSeconds();
    const expired = signHs256({ sub: 'u-refresh-2', role: 'annotator', rooms: ['rf:*'], iat: now - 7200, exp: now - 3600 });
    const reply = await connection.refresh(expired);
    assert.equal(reply.type, 'error', JSON.stringify(reply));
    assert.equal(reply.code, 'unauthorized', JSON.stringify(reply));
    assert.ok(connection.open, 'the connection stays open');
    assertApplied(await sendOne(connection, 'rf:2', bbox('rf-2')), 'create with the old token');
  }));

  test('bad signature is unauthorized', { timeout: 20000 }, env.wrap(async () => {
    const token = await mintWithCli({ sub: 'u-refresh-3', role: 'annotator', rooms: 'rf:*' });
    const connection = await openJoined(main, token, 'rf:3');
    const forged = signHs256(claimsFor('u-refresh-3', 'admin', ['*']), { key: crypto.randomBytes(48).toString('hex') });
    const reply = await connection.refresh(forged);
    assert.equal(reply.type, 'error', JSON.stringify(reply));
    assert.equal(reply.code, 'unauthorized', JSON.stringify(reply));
  }));

  test('another sub is forbidden', { timeout: 20000 }, env.wrap(async () => {
    const token = await mintWithCli({ sub: 'u-refresh-4', role: 'viewer', rooms: 'rf:*' });
    const connection = await openJoined(main, token, 'rf:4');
    const other = await mintWithCli({ sub: 'u-someone-else', role: 'admin', rooms: 'rf:*' });
    const reply = await connection.refresh(other);
    assert.equal(reply.type, 'error', JSON.stringify(reply));
    assert.equal(reply.code, 'forbidden', JSON.stringify(reply));
    // The old viewer token stays in force, so the admin role did not arrive.
    assertForbidden(await sendOne(connection, 'rf:4', bbox('rf-4')), 'create as viewer after the failed refresh');
  }));

  test('narrower rooms are forbidden', { timeout: 20000 }, env.wrap(async () => {
    const token = await mintWithCli({ sub: 'u-refresh-5', role: 'annotator', rooms: 'rf:5,rf:6' });
    const connection = await openJoined(main, token, 'rf:5');
    const narrower = await mintWithCli({ sub: 'u-refresh-5', role: 'annotator', rooms: 'rf:7' });
    const reply = await connection.refresh(narrower);
    assert.equal(reply.type, 'error', JSON.stringify(reply));
    assert.equal(reply.code, 'forbidden', JSON.stringify(reply));
    assert.equal(reply.room, 'rf:5', JSON.stringify(reply));

    // The old token grants rf:5 and rf:6 but not rf:7, the only room of the rejected one.
    const join = await connection.join('rf:6');
    assert.equal(join.type, 'snapshot', `join of rf:6 with the old token: ${JSON.stringify(join)}`);
    const rejectedJoin = await connection.join('rf:7');
    assert.equal(rejectedJoin.type, 'error', `join of rf:7, granted only by the rejected token: ${JSON.stringify(rejectedJoin)}`);
    assert.equal(rejectedJoin.code, 'forbidden', JSON.stringify(rejectedJoin));
    assertApplied(await sendOne(connection, 'rf:5', bbox('rf-5')), 'create in rf:5 with the old token');
  }));
});

describe('token expiry', () => {
  test('expired token closes with 4001', { timeout: 20000 }, env.wrap(async () => {
    const token = await mintWithCli({ sub: 'u-expiry', role: 'viewer', rooms: 'ex:*', ttl: '3s' });
    const expMs = payloadOf(token).exp * 1000;
    const connection = await openJoined(strict, token, 'ex:1');
    const info = await withTimeout(connection.closed, 12000, 'the server to close a connection whose token expired');
    assert.equal(info.code, CLOSE_TOKEN_EXPIRED, `close code ${info.code} reason ${info.reason}`);
    assert.ok(info.at >= expMs - 1000, `closed ${expMs - info.at} ms before exp`);
    assert.ok(info.at <= expMs + 5000, `closed ${info.at - expMs} ms after exp`);
  }));

  test('refreshed connection stays open', { timeout: 30000 }, env.wrap(async () => {
    // A connection that does not refresh runs next to it, so the test shows
    // that expiry closes connections on this server.
    const stale = await mintWithCli({ sub: 'u-expiry-2', role: 'viewer', rooms: 'ex:*', ttl: '3s' });
    const expMs = payloadOf(stale).exp * 1000;
    const refreshed = await openJoined(strict, stale, 'ex:2');
    const control = await openJoined(strict, stale, 'ex:2');
    await sleep(1000);
    const fresh = await mintWithCli({ sub: 'u-expiry-2', role: 'viewer', rooms: 'ex:*', ttl: '60s' });
    const reply = await refreshed.refresh(fresh);
    assert.equal(reply.type, 'authed', JSON.stringify(reply));
    assert.equal(reply.exp, payloadOf(fresh).exp);

    const info = await withTimeout(control.closed, 12000, 'the server to close the connection that did not refresh');
    assert.equal(info.code, CLOSE_TOKEN_EXPIRED, `control close code ${info.code} reason ${info.reason}`);
    await sleep(Math.max(0, expMs + 3000 - Date.now()));
    assert.ok(refreshed.open, `refreshed connection closed: ${JSON.stringify(refreshed.closeInfo)}`);
    const join = await refreshed.join('ex:3');
    assert.equal(join.type, 'snapshot', `join after the first exp: ${JSON.stringify(join)}`);
  }));
});

describe('RS256', () => {
  test('RS256 token is accepted', { timeout: 20000 }, env.wrap(async () => {
    const token = signRs256(claimsFor('u-rsa', 'annotator', ['rsa:*']), rsaPrivateKey);
    const response = await requestUpgrade(rsa, { headers: bearer(token) });
    assert.equal(response.status, 101, `status ${response.status}, body ${response.body}`);
    const connection = await openJoined(rsa, token, 'rsa:1');
    assertApplied(await sendOne(connection, 'rsa:1', bbox('rsa-1')), 'create with an RS256 token');
  }));

  test('HS256 with public key is rejected', { timeout: 15000 }, env.wrap(async () => {
    const publicKeyPem = fs.readFileSync(rsaPublicKeyFile);
    const token = signHs256(claimsFor('u-rsa', 'admin', ['*']), { key: publicKeyPem });
    assertUnauthorized(await requestUpgrade(rsa, { headers: bearer(token) }), 'HS256 signed with the public key');
    const trimmed = signHs256(claimsFor('u-rsa', 'admin', ['*']), { key: publicKeyPem.toString('utf8').trim() });
    assertUnauthorized(await requestUpgrade(rsa, { headers: bearer(trimmed) }), 'HS256 signed with the trimmed public key');
  }));

  test('RS256 from another key is rejected', { timeout: 15000 }, env.wrap(async () => {
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const token = signRs256(claimsFor('u-rsa', 'admin', ['*']), privateKey);
    assertUnauthorized(await requestUpgrade(rsa, { headers: bearer(token) }), 'RS256 signed with another key');
  }));

  test('HS256 server rejects RS256', { timeout: 15000 }, env.wrap(async () => {
    const token = signRs256(claimsFor('u-rsa', 'admin', ['*']), rsaPrivateKey);
    assertUnauthorized(await requestUpgrade(main, { headers: bearer(token) }), 'RS256 token at an HS256 server');
  }));
});

describe('endpoints without token', () => {
  for (const [urlPath, contentType] of [
    ['/healthz', /^application\/json/], ['/readyz', /^application\/json/], ['/metrics', /^text\/plain/],
  ]) {
    test(`${urlPath} without token`, { timeout: 15000 }, env.wrap(async () => {
      for (const instance of [main, rsa]) {
        const response = await fetch(`${instance.httpUrl}${urlPath}`, { signal: AbortSignal.timeout(10000) });
        await response.text();
        assert.equal(response.status, 200, `${urlPath} on ${instance.name}`);
        assert.match(String(response.headers.get('content-type')), contentType, `${urlPath} content type`);
      }
    }));
  }
});

describe('command-line tool with a token', () => {
  test('import and export with --token', { timeout: 30000 }, env.wrap(async () => {
    const room = 'cli:tokens';
    const token = await mintWithCli({ sub: 'cli-bot', role: 'annotator', rooms: 'cli:*' });
    const file = path.join(env.dir, 'cli-labelme.json');
    fs.writeFileSync(file, JSON.stringify({
      version: '5.0.1', flags: {}, imagePath: 'x.jpg', imageData: null, imageHeight: 10, imageWidth: 10,
      shapes: [{ label: 'box', points: [[1, 1], [4, 5]], group_id: null, shape_type: 'rectangle', flags: {} }],
    }));
    const withoutToken = await runProcess('node', [CLI, 'import', '--url', main.wsUrl, '--room', room, file],
      { timeoutMs: 20000, env: { ANNOLIVE_TOKEN: '' } });
    assert.notEqual(withoutToken.code, 0, `import without a token must fail: ${withoutToken.stderr}`);
    const imported = await runProcess('node', [CLI, 'import', '--url', main.wsUrl, '--room', room, '--token', token, file],
      { timeoutMs: 20000 });
    assert.equal(imported.code, 0, `import with --token: ${imported.stderr}`);
    assert.ok(!imported.stderr.includes(token), 'the token is not printed');
    const exported = await runProcess('node', [CLI, 'export', '--url', main.wsUrl, '--room', room, '--format', 'coco'],
      { timeoutMs: 20000, env: { ANNOLIVE_TOKEN: token } });
    assert.equal(exported.code, 0, `export with ANNOLIVE_TOKEN: ${exported.stderr}`);
    assert.equal(JSON.parse(exported.stdout).images.length, 1, exported.stdout.slice(0, 300));
  }));
});
