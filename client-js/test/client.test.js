// Unit tests of the client's request matching against an in-process fake server. The fake
// only sends scripted replies, so these tests show nothing about the real server's behavior.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { decode, encode } from '@msgpack/msgpack';
import { WebSocketServer } from 'ws';

import { AnnoliveClient, resolveUrl } from '../src/client.js';
import { losslessJson, JsonFloat } from '../src/json.js';

/**
 * A fake server: each received message is passed to `handler(message, reply, socket)`. On
 * annolive.v1.msgpack it decodes binary frames and replies with them; `frames` records
 * `{binary, data}` of every frame it receives.
 */
let server;
let url;
let handler = () => {};
const upgrades = [];
let lastFrame = '';
const frames = [];

before(async () => {
  server = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (protocols) => [...protocols][0] ?? false });
  server.on('connection', (socket, request) => {
    upgrades.push({ path: request.url, protocol: socket.protocol });
    socket.on('message', (data, isBinary) => {
      frames.push({ binary: isBinary, data });
      if (socket.protocol === 'annolive.v1.msgpack') {
        const reply = (message) => socket.send(encode(message));
        handler(decode(data), reply, socket);
        return;
      }
      lastFrame = String(data);
      const reply = (message) => socket.send(JSON.stringify(message));
      handler(JSON.parse(String(data)), reply, socket);
    });
  });
  await new Promise((resolve) => server.on('listening', resolve));
  url = `ws://127.0.0.1:${server.address().port}`;
});

after(() => new Promise((resolve) => server.close(resolve)));

async function connected(options = {}) {
  const client = new AnnoliveClient(url, { actor: 'tester', ...options });
  await client.connect();
  return client;
}

test('resolveUrl adds the default path', () => {
  assert.equal(resolveUrl('ws://127.0.0.1:7700'), 'ws://127.0.0.1:7700/v1/ws');
  assert.equal(resolveUrl('ws://127.0.0.1:7700/'), 'ws://127.0.0.1:7700/v1/ws');
  assert.equal(resolveUrl('wss://example.test/custom/ws'), 'wss://example.test/custom/ws');
  assert.throws(() => resolveUrl('http://127.0.0.1:7700'), /scheme must be ws: or wss:/);
  assert.throws(() => resolveUrl('not a url'), /invalid server URL "not a url"/);
});

test('connect uses path and subprotocol', async () => {
  const client = await connected();
  await client.close();
  assert.deepStrictEqual(upgrades.at(-1), { path: '/v1/ws', protocol: 'annolive.v1.json' });
});

test('connect failure names the url', async () => {
  const client = new AnnoliveClient('ws://127.0.0.1:1');
  await assert.rejects(client.connect(), /cannot connect to ws:\/\/127\.0\.0\.1:1\/v1\/ws/);
});

test('join resolves with the snapshot', async () => {
  handler = (message, reply) => {
    if (message.type === 'join') reply({ type: 'snapshot', room: message.room, seq: 3, objects: [] });
  };
  const client = await connected();
  const seen = [];
  client.on('snapshot', (message) => seen.push(message));
  const snapshot = await client.join('project:1');
  assert.deepStrictEqual(snapshot, { type: 'snapshot', room: 'project:1', seq: 3, objects: [] });
  assert.deepStrictEqual(seen, [snapshot]);
  await client.close();
});

test('join with since resolves with resumed', async () => {
  const joins = [];
  handler = (message, reply) => {
    joins.push(message);
    reply({ type: 'resumed', room: message.room, since: message.since, seq: 9 });
  };
  const client = await connected();
  const seen = [];
  client.on('message', (message) => seen.push(message.type));
  const reply = await client.join('project:1', { since: 4, actor: 'tab-a' });
  await client.close();
  assert.deepStrictEqual(joins, [{ type: 'join', room: 'project:1', since: 4, actor: 'tab-a' }]);
  assert.deepStrictEqual(reply, { type: 'resumed', room: 'project:1', since: 4, seq: 9 });
  assert.deepStrictEqual(seen, ['resumed']);
});

test('send with atomic marks the batch', async () => {
  handler = (message, reply) => reply({ type: 'ack', room: message.room, opseq: message.opseq, results: [] });
  const client = await connected();
  await client.send('project:1', [], { atomic: true });
  await client.close();
  assert.equal(JSON.parse(lastFrame).atomic, true);
});

test('acks match by room and opseq', async () => {
  const batches = [];
  handler = (message, reply) => {
    batches.push(message);
    if (batches.length < 3) return;
    // Answer the three batches in reverse order.
    for (const batch of [...batches].reverse()) {
      reply({ type: 'ack', room: batch.room, opseq: batch.opseq, seq: 10 + batch.opseq, results: [{ id: batch.ops[0].id, status: 'applied' }] });
    }
  };
  const client = await connected({ opseq: 5 });
  const op = (id) => [{ op: 'create', id, kind: 'tag' }];
  const acks = await Promise.all([client.send('r1', op('a')), client.send('r2', op('b')), client.send('r1', op('c'))]);
  assert.deepStrictEqual(batches.map((b) => [b.type, b.room, b.actor, b.opseq]), [
    ['ops', 'r1', 'tester', 5],
    ['ops', 'r2', 'tester', 6],
    ['ops', 'r1', 'tester', 7],
  ]);
  assert.deepStrictEqual(acks.map((a) => [a.room, a.opseq, a.results[0].id]), [
    ['r1', 5, 'a'],
    ['r2', 6, 'b'],
    ['r1', 7, 'c'],
  ]);
  await client.close();
});

test('error with opseq rejects that send', async () => {
  handler = (message, reply) => {
    if (message.opseq === 1) {
      reply({ type: 'error', code: 'not_joined', message: 'join room r before sending ops to it', room: 'r', opseq: 1 });
    } else {
      reply({ type: 'ack', room: message.room, opseq: message.opseq, results: [] });
    }
  };
  const client = await connected();
  const errors = [];
  client.on('error', (message) => errors.push(message));
  const failing = client.send('r', []);
  const passing = client.send('r', []);
  await assert.rejects(failing, (err) => {
    assert.equal(err.code, 'not_joined');
    assert.equal(err.message, 'join room r before sending ops to it');
    return true;
  });
  assert.equal((await passing).opseq, 2);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, 'not_joined');
  await client.close();
});

test('error with room rejects the join', async () => {
  handler = (message, reply) => reply({ type: 'error', code: 'invalid_message', message: 'room is invalid', room: message.room });
  const client = await connected();
  await assert.rejects(client.join('bad room'), { code: 'invalid_message', message: 'room is invalid' });
  await client.close();
});

test('leave resolves with left', async () => {
  handler = (message, reply) => reply({ type: 'left', room: message.room });
  const client = await connected();
  assert.deepStrictEqual(await client.leave('r'), { type: 'left', room: 'r' });
  await client.close();
});

test('send times out without an ack', async () => {
  handler = () => {};
  const client = await connected();
  await assert.rejects(client.send('r', [], { timeoutMs: 50 }), { code: 'timeout' });
  assert.equal(client.pendingAcks.size, 0);
  await client.close();
});

test('events reach listeners until off', async () => {
  handler = (message, reply) => {
    reply({ type: 'event', room: 'r', seq: 1, actor: 'x', opseq: 1, ops: [] });
    reply({ type: 'ack', room: 'r', opseq: message.opseq, results: [] });
  };
  const client = await connected();
  const events = [];
  const listener = (message) => events.push(message.seq);
  client.on('event', listener);
  await client.send('r', []);
  client.off('event', listener);
  await client.send('r', []);
  assert.deepStrictEqual(events, [1]);
  assert.throws(() => client.on('ack', () => {}), /unknown listener type "ack"/);
  await client.close();
});

test('server close rejects pending sends', async () => {
  handler = (_message, _reply, socket) => socket.close(1001, 'server stopping');
  const client = await connected();
  const closes = [];
  client.on('close', (message) => closes.push(message));
  await assert.rejects(client.send('r', []), { code: 'closed', message: /code 1001, server stopping/ });
  assert.deepStrictEqual(closes, [{ type: 'close', code: 1001, reason: 'server stopping', byClient: false }]);
});

test('client close is reported as such', async () => {
  const client = await connected();
  const closes = [];
  client.on('close', (message) => closes.push(message));
  await client.close();
  assert.equal(closes.length, 1);
  assert.equal(closes[0].byClient, true);
  await assert.rejects(client.send('r', []), { code: 'not_connected' });
});

test('lossless codec keeps integral floats', async () => {
  handler = (_message, _reply, socket) => {
    socket.send('{"type":"ack","room":"r","opseq":1,"results":[{"id":"a","status":"applied","vv":{"tester":1}}],"seq":2.0}');
  };
  const client = await connected({ json: losslessJson });
  const ack = await client.send('r', [{ op: 'create', id: 'a', kind: 'bbox', fields: { geometry: [new JsonFloat(1), 2] } }]);
  assert.ok(ack.seq instanceof JsonFloat);
  assert.match(lastFrame, /"geometry":\[1\.0,2\]/);
  await client.close();
});

test('constructor validates actor and opseq', () => {
  assert.throws(() => new AnnoliveClient(url, { actor: 'has space' }), /invalid actor/);
  assert.throws(() => new AnnoliveClient(url, { opseq: 0 }), /invalid opseq 0/);
  assert.match(new AnnoliveClient(url).actor, /^js-[0-9a-f]{16}$/);
});

test('constructor validates the encoding', () => {
  assert.throws(() => new AnnoliveClient(url, { encoding: 'cbor' }), /invalid encoding "cbor": use json or msgpack/);
  assert.equal(new AnnoliveClient(url).encoding, 'json');
});

test('msgpack subprotocol and binary frames', async () => {
  handler = (message, reply) => {
    if (message.type === 'join') reply({ type: 'snapshot', room: message.room, seq: 4, objects: [{ id: 'o1', kind: 'bbox', vv: { x: 1 }, fields: { geometry: [1.5, 2, 3, 4] } }] });
    if (message.type === 'ops') reply({ type: 'ack', room: message.room, opseq: message.opseq, seq: 5, results: [{ id: 'a', status: 'applied', vv: { tester: 1 } }] });
  };
  const client = await connected({ encoding: 'msgpack' });
  assert.deepStrictEqual(upgrades.at(-1), { path: '/v1/ws', protocol: 'annolive.v1.msgpack' });
  const snapshot = await client.join('r');
  assert.deepStrictEqual(snapshot.objects[0].fields, { geometry: [1.5, 2, 3, 4] });
  frames.length = 0;
  const ack = await client.send('r', [{ op: 'create', id: 'a', kind: 'bbox', fields: { geometry: [1.5, 2, 3, 4], note: undefined } }]);
  assert.equal(ack.seq, 5);
  assert.equal(frames.length, 1);
  assert.equal(frames[0].binary, true);
  // undefined members are left out, as JSON.stringify does.
  assert.deepStrictEqual(decode(frames[0].data), {
    type: 'ops', room: 'r', actor: 'tester', opseq: 1,
    ops: [{ op: 'create', id: 'a', kind: 'bbox', fields: { geometry: [1.5, 2, 3, 4] } }],
  });
  await client.close();
});

test('msgpack integral floats and BigInts', async () => {
  handler = (message, reply) => reply({ type: 'ack', room: message.room, opseq: message.opseq, results: [] });
  const client = await connected({ encoding: 'msgpack' });
  frames.length = 0;
  await client.send('r', [{ op: 'create', id: 'a', kind: 'tag', fields: { f: new JsonFloat(3), g: 2.5, n: 12n } }]);
  const bytes = Buffer.from(frames[0].data);
  // 3.0 as positive fixint 0x03, 2.5 as float64 0xcb, 12n as fixint 0x0c.
  assert.ok(bytes.includes(Buffer.from('a16603', 'hex')));
  assert.ok(bytes.includes(Buffer.from('a167cb4004000000000000', 'hex')));
  assert.ok(bytes.includes(Buffer.from('a16e0c', 'hex')));
  await assert.rejects(client.send('r', [{ op: 'create', id: 'b', kind: 'tag', fields: { n: 2n ** 60n } }]),
    (err) => err instanceof RangeError && /integer 1152921504606846976 .* beyond 2\^53-1/.test(err.message));
  await client.close();
});

test('msgpack undecodable frames emit errors', async () => {
  handler = (message, _reply, socket) => {
    socket.send('{"type":"ack"}');
    socket.send(Buffer.from('81a474797065', 'hex'));
    socket.send(Buffer.concat([encode({ type: 'ack', room: 'r', opseq: 1, results: [] }), Buffer.from([0xc0])]));
    socket.send(encode({ type: 'ack', room: message.room, opseq: message.opseq, results: [] }));
  };
  const client = await connected({ encoding: 'msgpack' });
  const errors = [];
  client.on('error', (message) => errors.push(message));
  await client.send('r', []);
  assert.equal(errors.length, 3);
  for (const error of errors) {
    assert.equal(error.code, 'invalid_json');
    assert.equal(error.fromClient, true);
  }
  assert.match(errors[0].message, /text frame on annolive\.v1\.msgpack/);
  assert.match(errors[1].message, /not one msgpack value/);
  assert.match(errors[2].message, /not one msgpack value: Extra 1 of \d+ byte/);
  await client.close();
});
