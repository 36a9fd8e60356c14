// Tests of the HTTP API for pipelines. Op batches posted over HTTP are
// sliced, idempotent and live on WebSocket clients of another instance. The
// event feed resumes, long-polls and reports a reset. /metrics is checked in
// the Prometheus text format. Also: tokens and roles on every /v1 path, body
// limits, room administration, and COCO import and export.
// Two instances share one Redis. Tokens are HS256, signed here.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { LABELME_COCO, REPO, SHARED_DATA, TestEnv, redisCommand, waitUntil, withTimeout } from './harness.mjs';
import { parse as parseJson, stringify as stringifyJson } from '../../client-js/src/json.js';

// The msgpack encoder that client-js depends on.
const { encode } = createRequire(path.join(REPO, 'client-js', 'package.json'))('@msgpack/msgpack');

const env = new TestEnv('http-api');
const MAX_OPS = 200;       // --max-ops of instance a: 800 ops make 4 slices
const MAX_BODY = 262144;   // --max-body of instance a

let a;
let b;
let secret;
const tokens = {};

function base64url(text) {
  return Buffer.from(text).toString('base64url');
}

function sign(claims, key = secret) {
  const input = `${base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${base64url(JSON.stringify(claims))}`;
  return `${input}.${crypto.createHmac('sha256', key).update(input).digest('base64url')}`;
}

function claims(sub, role, rooms) {
  const now = Math.floor(Date.now() / 1000);
  return { sub, role, rooms, iat: now, exp: now + 3600 };
}

/**
 * Sends an HTTP request and returns {status, body, text}. body is sent as
 * JSON unless it is a Buffer or string, with contentType when given.
 */
async function call(instance, method, urlPath, { token, body, contentType } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    headers['content-type'] = contentType ?? 'application/json';
  }
  const response = await fetch(`${instance.httpUrl}${urlPath}`, {
    method, headers, body: payload, signal: AbortSignal.timeout(60000),
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  return { status: response.status, body: parsed, text };
}

function boxes(prefix, n, item = 'img-1') {
  return Array.from({ length: n }, (_, i) => ({
    op: 'create', id: `${prefix}${i}`, kind: 'bbox',
    fields: { item, label: 'car', geometry: [i, i + 1, 10, 20] },
  }));
}

function postOps(instance, room, batch, token = tokens.admin) {
  return call(instance, 'POST', `/v1/rooms/${room}/ops`, { token, body: batch });
}

// A strict parser of the Prometheus text format 0.0.4: every line is a
// HELP, a TYPE or a sample; names and label names are valid; label values
// are quoted with escapes; values are numbers; each sample belongs to a
// family declared by HELP and TYPE before it, and no family is declared twice.
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseLabels(text) {
  const labels = {};
  let rest = text;
  while (rest.length > 0) {
    const m = /^([^=]+)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/.exec(rest);
    if (!m) throw new Error(`bad labels: {${text}}`);
    if (!LABEL.test(m[1])) throw new Error(`bad label name ${m[1]}`);
    if (m[1] in labels) throw new Error(`label ${m[1]} repeated`);
    labels[m[1]] = m[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    rest = rest.slice(m[0].length);
  }
  return labels;
}

function familyOf(name, families) {
  if (families.has(name)) return name;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    const base = name.endsWith(suffix) ? name.slice(0, -suffix.length) : null;
    if (base && families.get(base)?.type === 'histogram') return base;
  }
  return null;
}

function parseMetrics(text) {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const families = new Map();
  const samples = [];
  for (const line of text.slice(0, -1).split('\n')) {
    let m = /^# (HELP|TYPE) (\S+) (.+)$/.exec(line);
    if (m) {
      assert.match(m[2], NAME, `metric name in "${line}"`);
      const family = families.get(m[2]) ?? { help: null, type: null };
      const key = m[1] === 'HELP' ? 'help' : 'type';
      assert.equal(family[key], null, `${m[1]} of ${m[2]} given twice`);
      if (key === 'type') {
        assert.ok(TYPES.has(m[3]), `type ${m[3]}`);
        assert.ok(!samples.some((s) => familyOf(s.name, families) === m[2]), `TYPE of ${m[2]} after its samples`);
      }
      family[key] = m[3];
      families.set(m[2], family);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `unparsable line "${line}"`);
    const value = m[3] === '+Inf' ? Infinity : Number(m[3]);
    assert.ok(!Number.isNaN(value) && /^[-+0-9.eE]+$|^\+Inf$/.test(m[3]), `value in "${line}"`);
    const family = familyOf(m[1], families);
    assert.ok(family, `sample ${m[1]} has no HELP and TYPE before it`);
    assert.ok(families.get(family).help && families.get(family).type, `HELP and TYPE of ${family}`);
    if (families.get(family).type === 'counter') assert.ok(m[1].endsWith('_total'), `counter ${m[1]} ends in _total`);
    samples.push({ name: m[1], labels: parseLabels(m[2] ?? ''), value });
  }
  return { families, samples };
}

function sample(parsed, name, labels = {}) {
  const found = parsed.samples.filter((s) => s.name === name &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(found.length, 1, `one sample ${name} ${JSON.stringify(labels)}`);
  return found[0].value;
}

async function metrics(instance) {
  const response = await fetch(`${instance.httpUrl}/metrics`, { signal: AbortSignal.timeout(10000) });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return parseMetrics(await response.text());
}

before(async () => {
  await env.init();
  await env.startRedis();
  secret = crypto.randomBytes(48).toString('hex');
  const secretFile = path.join(env.dir, 'hs256.secret');
  fs.writeFileSync(secretFile, secret, { mode: 0o600 });
  const auth = { secretFile };
  a = await env.startInstance('a', {
    auth, args: ['--max-ops', String(MAX_OPS), '--max-body', String(MAX_BODY)],
  });
  b = await env.startInstance('b', { auth });
  tokens.admin = sign(claims('ops-admin', 'admin', ['*']));
  tokens.annotator = sign(claims('anna', 'annotator', ['*']));
  tokens.otherRoom = sign(claims('olga', 'admin', ['elsewhere']));
  tokens.wrongKey = sign(claims('mallory', 'admin', ['*']), crypto.randomBytes(48).toString('hex'));
  // Small stream nodes, so that trimming to a few entries takes effect.
  await redisCommand(env.redis.port, ['CONFIG', 'SET', 'stream-node-max-entries', '4']);
});

after(async () => {
  await env.cleanup();
});

describe('op batches over HTTP', { timeout: 120000 }, () => {
  test('800 posted boxes reach another instance', { timeout: 90000 }, env.wrap(async () => {
    const room = 'http:bulk';
    const client = await env.client(b, 'viewer-tab', { token: tokens.admin });
    let created = 0;
    client.on('event', (event) => {
      if (event.room === room) created += event.ops.filter((op) => op.op === 'create').length;
    });
    await client.join(room);

    const batch = { actor: 'prelabel-bot', opseq: 1, ops: boxes('box-', 800) };
    const response = await postOps(a, room, batch);
    assert.equal(response.status, 200, response.text);
    assert.equal(response.body.room, room);
    assert.equal(response.body.opseq, 1);
    assert.equal(response.body.last_opseq, 4, '800 ops in slices of 200 take opseqs 1 to 4');
    assert.equal(response.body.results.length, 800);
    assert.ok(response.body.results.every((r) => r.status === 'applied'));
    assert.deepEqual(response.body.results[799], { status: 'applied', id: 'box-799', vv: { 'prelabel-bot': 1 } });

    await waitUntil('800 creates on the WebSocket client', () => created === 800, { timeoutMs: 30000 });
    const snapshot = await call(b, 'GET', `/v1/rooms/${room}/snapshot`, { token: tokens.admin });
    assert.equal(snapshot.body.objects.length, 800);
    assert.equal(snapshot.body.seq, response.body.seq);

    // A retry of the whole request gets the stored acks.
    const retry = await postOps(a, room, batch);
    assert.equal(retry.status, 200, retry.text);
    assert.deepEqual(retry.body, response.body);
    const after = await call(a, 'GET', `/v1/rooms/${room}/events?since=${response.body.seq}`, { token: tokens.admin });
    assert.deepEqual(after.body.events, [], 'the retry wrote nothing');
    assert.equal(created, 800);
  }));

  test('msgpack bodies, conflicts and invalid ops', env.wrap(async () => {
    const room = 'http:mixed';
    const first = await postOps(a, room, { actor: 'tab-1', opseq: 1, ops: boxes('m', 2) });
    assert.equal(first.status, 200, first.text);
    const again = { actor: 'tab-2', opseq: 1, ops: boxes('m', 1) };
    const conflict = await call(a, 'POST', `/v1/rooms/${room}/ops`, {
      token: tokens.admin, body: Buffer.from(encode(again)), contentType: 'application/msgpack',
    });
    assert.equal(conflict.status, 200, conflict.text);
    assert.equal(conflict.body.results[0].status, 'conflict');
    assert.equal(conflict.body.results[0].reason, 'exists');

    const bad = await postOps(a, room, { actor: 'tab-1', opseq: 2, ops: [{ op: 'create', id: 'x' }] });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'invalid_message');
    assert.match(bad.body.error.message, /^ops\[0\]/);

    const atomic = await postOps(a, room, { actor: 'tab-1', opseq: 3, atomic: true, ops: boxes('n', MAX_OPS + 1) });
    assert.equal(atomic.status, 413);
    assert.equal(atomic.body.error.code, 'too_large');

    const plain = await call(a, 'POST', `/v1/rooms/${room}/ops`, { token: tokens.admin, body: 'x', contentType: 'text/plain' });
    assert.equal(plain.status, 415);
    const notJson = await call(a, 'POST', `/v1/rooms/${room}/ops`, { token: tokens.admin, body: '{"actor":' });
    assert.equal(notJson.status, 400);
    assert.equal(notJson.body.error.code, 'invalid_json');
  }));

  test('a body over --max-body gets 413', env.wrap(async () => {
    const ops = boxes('big-', 3000);
    const text = JSON.stringify({ actor: 'big', opseq: 1, ops });
    assert.ok(text.length > MAX_BODY);
    const response = await call(a, 'POST', '/v1/rooms/http:big/ops', { token: tokens.admin, body: text });
    assert.equal(response.status, 413);
    assert.equal(response.body.error.code, 'too_large');
    assert.match(response.body.error.message, /--max-body/);
  }));
});

describe('the event feed', { timeout: 120000 }, () => {
  test('feed resumes and long-polls', env.wrap(async () => {
    const room = 'http:feed';
    for (let i = 1; i <= 5; i += 1) {
      const r = await postOps(a, room, { actor: 'feeder', opseq: i, ops: boxes(`f${i}-`, 1) });
      assert.equal(r.status, 200, r.text);
    }
    const feed = await call(b, 'GET', `/v1/rooms/${room}/events?since=2`, { token: tokens.admin });
    assert.equal(feed.status, 200, feed.text);
    assert.deepEqual(feed.body.events.map((e) => e.seq), [3, 4, 5]);
    assert.equal(feed.body.next, 5);
    assert.equal(feed.body.events[0].actor, 'feeder');
    assert.equal(feed.body.events[0].opseq, 3);
    assert.equal(feed.body.events[0].ops[0].id, 'f3-0');

    const limited = await call(b, 'GET', `/v1/rooms/${room}/events?since=0&limit=2`, { token: tokens.admin });
    assert.deepEqual(limited.body.events.map((e) => e.seq), [1, 2]);
    assert.equal(limited.body.next, 2);

    // A long poll returns when the next batch applies.
    const poll = call(b, 'GET', `/v1/rooms/${room}/events?since=5&wait=30`, { token: tokens.admin });
    const written = await postOps(a, room, { actor: 'feeder', opseq: 6, ops: boxes('f6-', 1) });
    assert.equal(written.status, 200);
    const polled = await withTimeout(poll, 40000, 'the long poll');
    assert.deepEqual(polled.body.events.map((e) => e.seq), [6]);

    const bad = await call(b, 'GET', `/v1/rooms/${room}/events?since=x`, { token: tokens.admin });
    assert.equal(bad.status, 400);
    const ahead = await call(b, 'GET', `/v1/rooms/${room}/events?since=99`, { token: tokens.admin });
    assert.equal(ahead.body.reset, true, 'a since ahead of the room is a reset');
  }));

  test('reset after the stream is trimmed', env.wrap(async () => {
    const room = 'http:trimmed';
    const created = await call(a, 'PUT', `/v1/rooms/${room}`, { token: tokens.admin, body: { stream_max: 5 } });
    assert.equal(created.status, 200, created.text);
    for (let i = 1; i <= 40; i += 1) {
      const r = await postOps(a, room, { actor: 'trim', opseq: i, ops: boxes(`t${i}-`, 1) });
      assert.equal(r.status, 200, r.text);
    }
    const old = await call(b, 'GET', `/v1/rooms/${room}/events?since=1`, { token: tokens.admin });
    assert.equal(old.status, 200, old.text);
    assert.equal(old.body.reset, true);
    assert.equal(old.body.seq, 41);
    assert.ok(old.body.first > 2, `first ${old.body.first}`);
    assert.ok(old.body.first <= 41, `first ${old.body.first}`);

    // From the oldest event kept, the feed reads on.
    const fromFirst = await call(b, 'GET', `/v1/rooms/${room}/events?since=${old.body.first - 1}`, { token: tokens.admin });
    assert.equal(fromFirst.body.reset, undefined);
    assert.equal(fromFirst.body.next, 41);
    assert.equal(fromFirst.body.events[0].seq, old.body.first);
  }));
});

describe('metrics', () => {
  test('metrics text valid, counters follow traffic', env.wrap(async () => {
    const before = await metrics(a);
    for (const name of ['annolive_connections', 'annolive_rooms', 'annolive_redis_up', 'annolive_ops_total',
      'annolive_conflicts_total', 'annolive_events_sent_total', 'annolive_sent_bytes_total',
      'annolive_slow_consumer_closes_total', 'annolive_redis_command_duration_seconds']) {
      assert.ok(before.families.has(name), `family ${name}`);
    }
    assert.equal(sample(before, 'annolive_redis_up'), 1);
    const buckets = before.samples.filter((s) => s.name === 'annolive_redis_command_duration_seconds_bucket');
    assert.ok(buckets.length > 2);
    assert.equal(buckets.at(-1).labels.le, '+Inf');
    for (let i = 1; i < buckets.length; i += 1) assert.ok(buckets[i].value >= buckets[i - 1].value, 'cumulative buckets');
    assert.equal(buckets.at(-1).value, sample(before, 'annolive_redis_command_duration_seconds_count'));

    const room = 'http:metrics';
    const client = await env.client(a, 'metrics-tab', { token: tokens.admin });
    await client.join(room);
    const ok = await postOps(a, room, { actor: 'm1', opseq: 1, ops: boxes('q', 3) });
    assert.equal(ok.status, 200);
    const dup = await postOps(a, room, { actor: 'm2', opseq: 1, ops: boxes('q', 1) });
    assert.equal(dup.body.results[0].status, 'conflict');
    const update = await postOps(a, room, {
      actor: 'm2', opseq: 2, ops: [{ op: 'update', id: 'q1', base: {}, set: { label: 'bus' } }],
    });
    assert.equal(update.body.results[0].status, 'conflict');

    const later = await waitUntil('the metrics to count the event sent', async () => {
      const m = await metrics(a);
      return sample(m, 'annolive_events_sent_total') > sample(before, 'annolive_events_sent_total') ? m : null;
    });
    const delta = (name, labels) => sample(later, name, labels) - sample(before, name, labels);
    assert.equal(delta('annolive_ops_total', { source: 'http', result: 'applied' }), 3);
    assert.equal(delta('annolive_ops_total', { source: 'http', result: 'conflict' }), 2);
    assert.equal(delta('annolive_conflicts_total'), 1);
    assert.ok(delta('annolive_sent_bytes_total') > 0);
    assert.ok(delta('annolive_redis_command_duration_seconds_count') >= 3);
    assert.ok(sample(later, 'annolive_connections') >= 1);
  }));
});

describe('tokens and roles', () => {
  const paths = [
    ['GET', '/v1/rooms'],
    ['PUT', '/v1/rooms/http:auth', {}],
    ['PATCH', '/v1/rooms/http:auth', { policy: 'lww' }],
    ['DELETE', '/v1/rooms/http:auth'],
    ['GET', '/v1/rooms/http:auth/snapshot'],
    ['GET', '/v1/rooms/http:auth/events?since=0'],
    ['POST', '/v1/rooms/http:auth/ops', { actor: 'x', opseq: 1, ops: boxes('z', 1) }],
    ['GET', '/v1/rooms/http:auth/export?format=coco'],
    ['POST', '/v1/rooms/http:auth/import?format=coco', { images: [], annotations: [] }],
  ];

  test('every /v1 path rejects a missing and a wrong token with 401', env.wrap(async () => {
    for (const [method, urlPath, body] of paths) {
      for (const token of [undefined, tokens.wrongKey, 'not-a-token']) {
        const r = await call(a, method, urlPath, { token, body });
        assert.equal(r.status, 401, `${method} ${urlPath} with ${token ? 'a wrong' : 'no'} token`);
        assert.equal(r.body.error.code, 'unauthorized');
      }
    }
  }));

  test('a token without a role in the room, or without admin, gets 403', env.wrap(async () => {
    for (const [method, urlPath, body] of paths.slice(1)) {
      const r = await call(a, method, urlPath, { token: tokens.otherRoom, body });
      assert.equal(r.status, 403, `${method} ${urlPath} for another room`);
      assert.equal(r.body.error.code, 'forbidden');
    }
    // The operator finds each rejection in the log, with the room and the reason.
    const log = fs.readFileSync(a.logPath, 'utf8');
    assert.match(log, /INFO  http: 403 forbidden in room http:auth: /);
    assert.match(log, /INFO  http: 401 unauthorized: /);
    // The list of an admin of other rooms contains only the rooms its token names.
    const listed = await call(a, 'GET', '/v1/rooms', { token: tokens.otherRoom });
    assert.equal(listed.status, 200);
    assert.ok(listed.body.rooms.every((r) => r.room === 'elsewhere'));
    for (const [method, urlPath, body] of paths.slice(0, 4)) {
      const r = await call(a, method, urlPath, { token: tokens.annotator, body });
      assert.equal(r.status, 403, `${method} ${urlPath} as annotator`);
    }
    const wrongMethod = await call(a, 'GET', '/v1/rooms/http:auth/ops', { token: tokens.admin });
    assert.equal(wrongMethod.status, 405);
    const unknown = await call(a, 'GET', '/v1/rooms/http:auth/nothing', { token: tokens.admin });
    assert.equal(unknown.status, 404);
    const badRoom = await call(a, 'GET', '/v1/rooms/bad%20room/snapshot', { token: tokens.admin });
    assert.equal(badRoom.status, 400);
  }));
});

describe('room administration', () => {
  test('create, list, patch and delete a room', env.wrap(async () => {
    const room = 'http:admin';
    const created = await call(a, 'PUT', `/v1/rooms/${room}`, { token: tokens.admin, body: { policy: 'lww', stream_max: 1000 } });
    assert.equal(created.status, 200, created.text);
    assert.equal(created.body.results[0].id, '@room');
    assert.equal(created.body.results[0].status, 'applied');
    const twice = await call(a, 'PUT', `/v1/rooms/${room}`, { token: tokens.admin, body: {} });
    assert.equal(twice.status, 409);

    const patched = await call(b, 'PATCH', `/v1/rooms/${room}`, { token: tokens.admin, body: { claims: 'enforced' } });
    assert.equal(patched.status, 200, patched.text);
    const snap = await call(b, 'GET', `/v1/rooms/${room}/snapshot`, { token: tokens.admin });
    const settings = snap.body.objects.find((o) => o.id === '@room');
    assert.deepEqual(settings.fields, { policy: 'lww', claims: 'enforced' });
    const missing = await call(a, 'PATCH', '/v1/rooms/http:nowhere', { token: tokens.admin, body: { policy: 'lww' } });
    assert.equal(missing.status, 404);

    const client = await env.client(b, 'admin-tab', { token: tokens.admin });
    await client.join(room);
    await postOps(a, room, { actor: 'adm', opseq: 1, ops: boxes('d', 2) });
    const list = await call(a, 'GET', '/v1/rooms', { token: tokens.admin });
    assert.equal(list.status, 200);
    assert.equal(list.body.members, 'instance');
    const entry = list.body.rooms.find((r) => r.room === room);
    assert.equal(entry.seq, 3);
    assert.equal(entry.objects, 3, 'two boxes and @room');
    const listB = await call(b, 'GET', '/v1/rooms', { token: tokens.admin });
    assert.equal(listB.body.rooms.find((r) => r.room === room).members, 1);

    // A claim of the member ends with the room.
    const messages = [];
    client.on('message', (m) => { if (m.room === room) messages.push(m); });
    client.write({ type: 'claim', room, ref: 1, target: { id: 'd0' }, ttl: 60000 });
    const granted = await waitUntil('the claim to be granted', () => messages.find((m) => m.type === 'claim_ack'));
    assert.equal(granted.status, 'granted');

    const resets = [];
    client.on('snapshot', (m) => { if (m.room === room && m.reset) resets.push(m); });
    const deleted = await call(a, 'DELETE', `/v1/rooms/${room}`, { token: tokens.admin });
    assert.equal(deleted.status, 200, deleted.text);
    assert.ok(deleted.body.keys >= 4);
    await waitUntil('a reset snapshot for the member', () => resets.length > 0, { timeoutMs: 15000 });
    assert.deepEqual(resets[0].objects, []);
    const released = messages.find((m) => m.type === 'released');
    assert.equal(released?.reason, 'deleted');
    assert.deepEqual(released.claim.target, { id: 'd0' });
    const neverCreated = await call(a, 'DELETE', `/v1/rooms/${room}-never-created`, { token: tokens.admin });
    assert.equal(neverCreated.status, 404, `DELETE of a room with no keys: ${neverCreated.text}`);
    assert.equal(neverCreated.body.error.code, 'not_found');
    const listAfterDelete = await call(a, 'GET', '/v1/rooms', { token: tokens.admin });
    assert.ok(!listAfterDelete.body.rooms.some((r) => r.room === room));
    const empty = await call(a, 'GET', `/v1/rooms/${room}/snapshot`, { token: tokens.admin });
    assert.equal(empty.body.seq, 0);
  }));
});

describe('COCO import and export', () => {
  /** Imports a COCO file over HTTP and checks that its export has the same fields, as the same JSON text. */
  async function roundTrip(room, cocoPath) {
    const file = fs.readFileSync(cocoPath);
    const coco = JSON.parse(file);
    const url = `/v1/rooms/${room}/import?format=coco&actor=importer&opseq=1`;
    const imported = await call(b, 'POST', url, { token: tokens.admin, body: file });
    assert.equal(imported.status, 200, imported.text);
    assert.deepEqual(imported.body.skipped, []);
    assert.ok(imported.body.results.every((r) => r.status === 'applied'));
    const retry = await call(b, 'POST', url, { token: tokens.admin, body: file });
    assert.deepEqual(retry.body.results, imported.body.results);

    const exported = await call(a, 'GET', `/v1/rooms/${room}/export?format=coco`, { token: tokens.admin });
    assert.equal(exported.status, 200);
    assert.equal(exported.body.images.length, coco.images.length);
    assert.equal(exported.body.annotations.length, coco.annotations.length);
    assert.deepEqual(exported.body.categories.map((c) => c.name), coco.categories.map((c) => c.name));

    // The fields COCO defines come back as the same JSON text: numbers keep
    // their digits and their integer or float type.
    const original = parseJson(file.toString('utf8'));
    const back = parseJson(exported.text);
    const text = (value) => stringifyJson(value ?? null);
    const categoryName = (doc, id) => doc.categories.find((c) => text(c.id) === text(id))?.name;
    assert.equal(back.categories.length, original.categories.length);
    original.categories.forEach((category, i) => {
      for (const field of ['id', 'name', 'supercategory']) {
        assert.equal(text(back.categories[i][field]), text(category[field]), `categories[${i}].${field}`);
      }
    });
    for (const ann of original.annotations) {
      const out = back.annotations.find((x) => text(x.id) === text(ann.id));
      assert.ok(out, `annotation ${text(ann.id)} is exported`);
      for (const field of ['image_id', 'bbox', 'segmentation', 'area', 'iscrowd']) {
        assert.equal(text(out[field]), text(ann[field]), `annotation ${text(ann.id)} ${field}`);
      }
      assert.equal(categoryName(back, out.category_id), categoryName(original, ann.category_id));
    }
    for (const image of original.images) {
      const out = back.images.find((x) => text(x.id) === text(image.id));
      assert.ok(out, `image ${text(image.id)} is exported`);
      for (const field of ['file_name', 'width', 'height']) {
        assert.equal(text(out[field]), text(image[field]), `image ${text(image.id)} ${field}`);
      }
    }
  }

  test('COCO import then export round trip', { skip: !fs.existsSync(LABELME_COCO) && 'labelme-examples is not installed' }, env.wrap(async () => {
    await roundTrip('http:coco', LABELME_COCO);
    const room = 'http:coco';
    const other = await call(a, 'GET', `/v1/rooms/${room}/export?format=voc`, { token: tokens.admin });
    assert.equal(other.status, 400);
  }));

  const VAL2014 = path.join(SHARED_DATA, 'coco_instances_val2014_100.json');
  test('COCO round trip with RLE masks', { skip: !fs.existsSync(VAL2014) && `${VAL2014} is absent` }, env.wrap(async () => {
    await roundTrip('http:coco-val2014', VAL2014);
  }));
});
