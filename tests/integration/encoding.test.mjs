// The two wire encodings, annolive.v1.json and annolive.v1.msgpack, on two
// instances that share one Redis. Members of either encoding see the same
// snapshots and events. Further tests cover the subprotocol negotiation,
// frames of the wrong kind, malformed msgpack, and how often the server
// encodes an event.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';

import path from 'node:path';

import {
  CLIENT_MODULE, EventRecorder, TestEnv, describeRun, fetchJson, httpSnapshot, sortById, waitUntil,
  withTimeout,
} from './harness.mjs';
import { JsonFloat, losslessJson } from '../../client-js/src/json.js';

// ws and @msgpack/msgpack are dependencies of client-js, so they resolve from its folder.
const requireFromClient = createRequire(CLIENT_MODULE);
const WebSocket = requireFromClient('ws');
const { encode } = requireFromClient('@msgpack/msgpack');

const JSON_PROTOCOL = 'annolive.v1.json';
const MSGPACK_PROTOCOL = 'annolive.v1.msgpack';

const env = new TestEnv('encoding');
let a;
let b;

before(async () => {
  await env.init();
  await env.startRedis();
  a = await env.startInstance('a');
  b = await env.startInstance('b');
}, { timeout: 60000 });

after(async () => {
  await env.cleanup();
}, { timeout: 120000 });

/** Returns a client of encoding on instance that has joined room, with its snapshot and events. */
async function member(instance, actor, room, encoding, options = {}) {
  const client = await env.client(instance, actor, { encoding, ...options });
  assert.equal(client.socket.protocol, encoding === 'msgpack' ? MSGPACK_PROTOCOL : JSON_PROTOCOL,
    `subprotocol of ${actor}`);
  const events = new EventRecorder(client, room);
  const snapshot = await client.join(room);
  assert.equal(snapshot.type, 'snapshot', `join reply for ${actor}`);
  return { client, events, snapshot, actor, encoding, instance };
}

/** Returns the errors a client receives, as an array that fills up. */
function recordErrors(client) {
  const errors = [];
  client.on('error', (message) => errors.push(message));
  return errors;
}

/** Returns the first close a client receives. */
function nextClose(client) {
  return new Promise((resolve) => client.on('close', resolve));
}

/** Returns the annolive_encodes_total counters of instance: {json, msgpack}. */
async function encodeCounts(instance) {
  const response = await fetchJson(`${instance.httpUrl}/metrics`);
  assert.equal(response.status, 200, `GET /metrics of ${instance.name}: ${response.text.slice(0, 300)}`);
  const counts = {};
  for (const encoding of ['json', 'msgpack']) {
    const match = response.text.match(new RegExp(`^annolive_encodes_total\\{encoding="${encoding}"\\} (\\d+)$`, 'm'));
    assert.ok(match, `/metrics of ${instance.name} has annolive_encodes_total for ${encoding}:\n${response.text}`);
    counts[encoding] = Number(match[1]);
  }
  return counts;
}

/** The members of an event that every member must see alike. */
function eventView(event) {
  return { type: event.type, room: event.room, seq: event.seq, actor: event.actor, opseq: event.opseq, ops: event.ops };
}

/** Opens a WebSocket that offers protocols (nothing when empty), with `opened` resolved on open. */
function openRaw(instance, protocols) {
  const socket = new WebSocket(`${instance.wsUrl}/v1/ws`, protocols);
  const messages = [];
  socket.on('message', (data, isBinary) => messages.push({ data, isBinary }));
  const opened = new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  return { socket, messages, opened: withTimeout(opened, 10000, `WebSocket to ${instance.name}`) };
}

/** Sends an upgrade request for /v1/ws that offers protocol, and resolves with the reply. */
function upgradeRequest(instance, protocol) {
  return withTimeout(new Promise((resolve, reject) => {
    const request = http.request({
      host: '127.0.0.1', port: instance.port, path: '/v1/ws',
      headers: {
        Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Protocol': protocol,
      },
    });
    request.on('upgrade', (response, socket) => {
      socket.destroy();
      reject(new Error(`the upgrade offering ${protocol} was accepted with status ${response.statusCode}`));
    });
    request.on('response', (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => {
        body += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode, headers: response.headers, body }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end();
  }), 10000, `the reply to an upgrade offering ${protocol}`);
}

describe('encodings', () => {
  test('mixed encodings see identical events', { timeout: 90000 }, env.wrap(async () => {
    const room = 'enc-mixed';

    // A seeding client with the lossless codec writes a float with an integral value and an
    // integer beyond 2^53-1 before the members join. The server keeps both exactly, and JSON.parse
    // and the msgpack decoder both read them as the nearest JavaScript number.
    const seeder = await member(a, 'seeder', room, 'json', { json: losslessJson });
    const seeded = await seeder.client.send(room, [
      { op: 'create', id: 'seed-1', kind: 'bbox', fields: {
        item: 'img-1', label: 'car', geometry: [new JsonFloat(3), 4.5, 10, 20],
        attrs: { color: 'red', big: 9007199254740993n, small: -9007199254740993n } } },
      { op: 'create', id: 'seed-2', kind: 'tag', fields: { note: 'caf\u00e9 \u732b \u{1F431}', empty: [], map: {} } },
    ]);
    assert.deepEqual(seeded.results.map((r) => r.status), ['applied', 'applied'], JSON.stringify(seeded));

    const members = [
      await member(a, 'json-a', room, 'json'),
      await member(b, 'mp-b', room, 'msgpack'),
      await member(a, 'mp-a', room, 'msgpack'),
      await member(b, 'json-b', room, 'json'),
    ];
    // A join on b may show the room before b has seen the seeding event, and such a member
    // catches up through events. So only the snapshots at the seeding seq are compared.
    const sameSeq = members.filter((m) => m.snapshot.seq === seeded.seq);
    assert.ok(sameSeq.length >= 2, `snapshot seqs: ${members.map((m) => m.snapshot.seq)}; seeding seq ${seeded.seq}`);
    for (const m of sameSeq) {
      assert.deepStrictEqual(sortById(m.snapshot.objects), sortById(sameSeq[0].snapshot.objects),
        `snapshot of ${m.actor} (${m.encoding}) equals that of ${sameSeq[0].actor} (${sameSeq[0].encoding})`);
    }
    const seed1 = sameSeq[0].snapshot.objects.find((o) => o.id === 'seed-1');
    assert.deepStrictEqual(seed1.fields.geometry, [3, 4.5, 10, 20]);
    assert.deepStrictEqual(seed1.fields.attrs, { color: 'red', big: 9007199254740992, small: -9007199254740992 });

    // A writer on each encoding, on different instances, sends creates and updates at once.
    const writers = [members[0], members[1]];
    const rounds = 5;
    const sends = writers.map(async (w) => {
      const acks = [];
      for (let i = 0; i < rounds; i++) {
        const id = `${w.actor}-${i}`;
        acks.push(await w.client.send(room, [
          { op: 'create', id, kind: 'bbox', fields: {
            item: 'img-1', label: '\u00e9tiquette', geometry: [0.1, -2.5, 1e-7, 2 ** 53 - 1],
            attrs: { n: -129, deep: { list: [1, [2, { x: null, t: true, f: false }]] } } } },
          { op: 'update', id, base: {}, set: { label: `\u732b ${i}`, frame: i, score: i + 0.25 }, unset: ['item'] },
        ]));
      }
      return acks;
    });
    const acks = (await Promise.all(sends)).flat();
    for (const ack of acks) {
      assert.deepEqual(ack.results.map((r) => r.status), ['applied', 'applied'], JSON.stringify(ack));
    }
    const lastSeq = Math.max(...acks.map((ack) => ack.seq));
    for (const m of members) await m.events.waitForSeq(lastSeq, 20000);

    // Every member has seen every seq after its snapshot. From the last snapshot seq on, all four
    // have the same events.
    const from = Math.max(...members.map((m) => m.snapshot.seq));
    const views = members.map((m) => m.events.events.filter((e) => e.seq > from).map(eventView));
    assert.equal(views[0].length, lastSeq - from, `events after seq ${from}`);
    for (let i = 1; i < members.length; i++) {
      assert.deepStrictEqual(views[i], views[0],
        `events of ${members[i].actor} (${members[i].encoding}) equal those of ${members[0].actor} (json)`);
    }
    const writerActors = new Set(views[0].map((e) => e.actor));
    assert.deepEqual([...writerActors].sort(), ['json-a', 'mp-b']);
    const update = views[0].find((e) => e.actor === 'mp-b').ops[1];
    assert.deepStrictEqual(update.set, { label: '\u732b 0', frame: 0, score: 0.25 });

    // Fresh snapshots on each encoding and instance, once both instances have the last seq.
    const snapshots = [];
    for (const m of members) {
      await m.client.leave(room);
      const snapshot = await m.client.join(room);
      assert.equal(snapshot.seq, lastSeq, `snapshot seq of ${m.actor}`);
      snapshots.push(sortById(snapshot.objects));
    }
    for (let i = 1; i < members.length; i++) {
      assert.deepStrictEqual(snapshots[i], snapshots[0], `snapshot of ${members[i].actor} (${members[i].encoding})`);
    }
    assert.deepStrictEqual(sortById((await httpSnapshot(b, room)).objects), snapshots[0], 'HTTP snapshot of b');
  }));

  test('no subprotocol gets JSON', { timeout: 30000 }, env.wrap(async () => {
    const raw = openRaw(a, []);
    try {
      await raw.opened;
      assert.equal(raw.socket.protocol, '');
      raw.socket.send(JSON.stringify({ type: 'join', room: 'enc-plain' }));
      const isSnapshot = (m) => JSON.parse(String(m.data)).type === 'snapshot';
      await waitUntil('the snapshot on a connection without subprotocol', () => raw.messages.some(isSnapshot));
      assert.ok(raw.messages.every((m) => m.isBinary === false));
      const { type, room, seq, objects } = JSON.parse(String(raw.messages.find(isSnapshot).data));
      assert.deepEqual({ type, room, seq, objects }, { type: 'snapshot', room: 'enc-plain', seq: 0, objects: [] });
    } finally {
      raw.socket.terminate();
    }

    // Among several offers, the known one is chosen.
    const picky = openRaw(b, ['annolive.v2.cbor', MSGPACK_PROTOCOL]);
    try {
      await picky.opened;
      assert.equal(picky.socket.protocol, MSGPACK_PROTOCOL);
    } finally {
      picky.socket.terminate();
    }
  }));

  test('unknown subprotocol gets 400', { timeout: 30000 }, env.wrap(async () => {
    const reply = await upgradeRequest(a, 'annolive.v2.cbor');
    assert.equal(reply.status, 400, reply.body);
    assert.match(reply.headers['content-type'] ?? '', /^application\/json/);
    const body = JSON.parse(reply.body);
    assert.equal(body.error.code, 'invalid_message');
    assert.match(body.error.message, /annolive\.v1\.json/);
    assert.match(body.error.message, /annolive\.v1\.msgpack/);
    assert.equal((await fetchJson(`${a.httpUrl}/healthz`)).status, 200);
  }));

  test('msgpack text frame closes 1003', { timeout: 30000 }, env.wrap(async () => {
    const room = 'enc-text-frame';
    const bystander = await member(a, 'text-bystander', room, 'msgpack');
    const client = await env.client(a, 'text-sender', { encoding: 'msgpack' });
    const closed = nextClose(client);
    client.socket.send(JSON.stringify({ type: 'join', room }));
    const close = await withTimeout(closed, 10000, 'the close after a text frame');
    assert.equal(close.code, 1003, JSON.stringify(close));
    assert.equal(close.byClient, false);

    // The server and the other members go on.
    assert.equal((await fetchJson(`${a.httpUrl}/healthz`)).status, 200);
    const ack = await bystander.client.send(room, [{ op: 'create', id: 't1', kind: 'tag' }]);
    assert.equal(ack.results[0].status, 'applied', JSON.stringify(ack));
    await bystander.events.waitForSeq(ack.seq);
  }));

  test('malformed msgpack frames get errors', { timeout: 30000 }, env.wrap(async () => {
    const room = 'enc-malformed';
    const client = await env.client(b, 'malformed', { encoding: 'msgpack' });
    const errors = recordErrors(client);
    const join = Buffer.from(encode({ type: 'join', room }));
    const frames = [
      ['truncated', join.subarray(0, join.length - 1)],
      ['trailing bytes', Buffer.concat([join, Buffer.from([0xc0])])],
      ['an array of 2^32-1 items declared in 5 bytes', Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff])],
      ['a map of 2^32-1 members declared in 5 bytes', Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff])],
      ['a string of 2^32-1 bytes declared in 5 bytes', Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff])],
      ['an array, not a map', Buffer.from(encode(['join', room]))],
      ['a map with an integer key', Buffer.from([0x81, 0x01, 0xa4, 0x6a, 0x6f, 0x69, 0x6e])],
      ['a reserved byte', Buffer.from([0xc1])],
    ];
    for (const [what, frame] of frames) {
      const seen = errors.length;
      client.socket.send(frame);
      await waitUntil(`an error message for ${what}`, () => errors.length > seen);
      const error = errors[seen];
      assert.equal(error.code, 'invalid_json', `${what}: ${JSON.stringify(error)}`);
      assert.equal(error.fromClient, undefined, `${what}: the error comes from the server`);
    }
    assert.equal(errors.length, frames.length, JSON.stringify(errors));

    // The same connection still joins and writes, and the server is healthy.
    const snapshot = await client.join(room);
    assert.equal(snapshot.seq, 0);
    const ack = await client.send(room, [{ op: 'create', id: 'm1', kind: 'tag', fields: { n: 1.5 } }]);
    assert.equal(ack.results[0].status, 'applied', JSON.stringify(ack));
    assert.equal((await fetchJson(`${b.httpUrl}/healthz`)).status, 200);
  }));

  test('events encoded once per encoding', { timeout: 90000 }, env.wrap(async () => {
    const room = 'enc-count';
    const members = [];
    for (let i = 0; i < 5; i++) members.push(await member(a, `count-json-${i}`, room, 'json'));
    for (let i = 0; i < 5; i++) members.push(await member(a, `count-mp-${i}`, room, 'msgpack'));
    const remote = await member(b, 'count-remote', room, 'msgpack');
    const EVENTS = 20;

    // Each batch below makes one event. Instance a encodes an event once per encoding that its
    // members use and shares the bytes, so 20 events add 20 to each counter of a. Encoding per
    // member would add 5 * 20 = 100 to each. Acks are per connection: the writer's instance
    // encodes one ack per batch, in the writer's encoding. The expected growth of a's counters:
    //   writer is a JSON member on a:    json 20 events + 20 acks = 40, msgpack 20
    //   writer is a msgpack member on a: json 20, msgpack 20 events + 20 acks = 40
    //   writer is on b (acks made on b): json 20, msgpack 20
    // Nothing else is sent to a meanwhile, and GET /metrics encodes nothing.
    const writers = [
      { writer: members[0], acksOnA: { json: EVENTS, msgpack: 0 } },
      { writer: members[5], acksOnA: { json: 0, msgpack: EVENTS } },
      { writer: remote, acksOnA: { json: 0, msgpack: 0 } },
    ];
    let n = 0;
    for (const { writer, acksOnA } of writers) {
      const start = await encodeCounts(a);
      let lastSeq = 0;
      for (let i = 0; i < EVENTS; i++) {
        const ack = await writer.client.send(room, [
          { op: 'create', id: `c${n++}`, kind: 'bbox', fields: { label: 'cat', geometry: [i, 0.5, 2, 2] } },
        ]);
        assert.equal(ack.results[0].status, 'applied', JSON.stringify(ack));
        lastSeq = ack.seq;
      }
      for (const m of members) await m.events.waitForSeq(lastSeq, 20000);
      const end = await encodeCounts(a);
      const grown = { json: end.json - start.json, msgpack: end.msgpack - start.msgpack };
      assert.deepEqual(grown, { json: EVENTS + acksOnA.json, msgpack: EVENTS + acksOnA.msgpack },
        `encodes on a while ${writer.actor} (${writer.encoding} on ${writer.instance.name}) sent ${EVENTS} batches`);
    }
  }));

  test('cli import and export with msgpack', { timeout: 90000 }, env.wrap(async () => {
    const room = 'enc-cli';
    const coco = {
      images: [{ id: 1, file_name: 'a.jpg', width: 640, height: 480 }],
      categories: [{ id: 3, name: 'car', supercategory: 'vehicle' }],
      annotations: [
        { id: 10, image_id: 1, category_id: 3, bbox: [10.5, 20.25, 30.75, 40.125], area: 1233.84, iscrowd: 0,
          segmentation: [[10.5, 20.25, 41.25, 20.25, 41.25, 60.375]] },
        { id: 11, image_id: 1, category_id: 3, bbox: [1.5, 2.5, 3.5, 4.5], area: 15.75, iscrowd: 0,
          segmentation: [[1.5, 2.5, 5, 2.5, 5, 7]] },
      ],
    };
    const file = path.join(env.dir, 'enc-cli.json');
    fs.writeFileSync(file, JSON.stringify(coco));

    const imported = await env.runCli(['import', '--url', a.wsUrl, '--room', room, '--encoding', 'msgpack', file]);
    assert.equal(imported.code, 0, describeRun('import --encoding msgpack', imported));
    assert.match(imported.stderr, /applied 4\b/);

    const exports = {};
    for (const encoding of ['msgpack', 'json']) {
      const exported = await env.runCli(['export', '--url', b.wsUrl, '--room', room, '--format', 'coco', '--encoding', encoding]);
      assert.equal(exported.code, 0, describeRun(`export --encoding ${encoding}`, exported));
      exports[encoding] = exported.stdout;
    }
    assert.equal(exports.msgpack, exports.json, 'the exports of both encodings are the same text');
    const output = JSON.parse(exports.msgpack);
    const byId = new Map(output.annotations.map((ann) => [ann.id, ann]));
    for (const ann of coco.annotations) {
      assert.deepStrictEqual(byId.get(ann.id)?.bbox, ann.bbox, `bbox of annotation ${ann.id}`);
      assert.deepStrictEqual(byId.get(ann.id)?.segmentation, ann.segmentation, `segmentation of annotation ${ann.id}`);
    }
  }));
});
