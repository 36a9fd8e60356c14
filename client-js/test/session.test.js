// The session's storage: the stores, and what a session takes from a stored outbox. Nothing here
// connects; tests/integration/client.test.mjs runs sessions against real servers.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { AnnoliveSession, localStorageStorage, memoryStorage } from '../src/session.js';

test('localStorageStorage round trip', () => {
  const items = new Map();
  const store = { getItem: (k) => (items.has(k) ? items.get(k) : null), setItem: (k, v) => items.set(k, v) };
  const storage = localStorageStorage(store);
  assert.equal(storage.load('k'), undefined);
  storage.save('k', { a: [1, 2.5] });
  assert.deepStrictEqual(storage.load('k'), { a: [1, 2.5] });
  assert.equal(items.get('k'), '{"a":[1,2.5]}');
});

test('localStorageStorage without a store', () => {
  assert.throws(() => localStorageStorage(null), /localStorage is missing/);
});

test('stored outbox: actor, opseq and batches', async () => {
  const storage = memoryStorage();
  storage.save('tab', {
    version: 1, actor: 'tab-7', nextOpseq: 12,
    batches: [{ room: 'r1', actor: 'tab-7', opseq: 10, ops: [{ op: 'create', id: 'a', kind: 'tag' }], atomic: false }],
  });
  const session = new AnnoliveSession('ws://127.0.0.1:1', { storage, storageKey: 'tab' });
  await session.load();
  assert.equal(session.actor, 'tab-7');
  assert.equal(session.nextOpseq, 12);
  assert.equal(session.pendingOps, 1);

  const room = session.room('r1');
  assert.equal(room.pendingOps, 1);
  assert.equal(room.get('a').kind, 'tag', 'a stored create shows in the view');
  room.create('tag', {}, { id: 'b' });
  await Promise.resolve();
  assert.deepStrictEqual(room.batches.map((b) => b.opseq), [10, 12]);
  assert.deepStrictEqual(storage.load('tab').batches.map((b) => b.opseq), [10, 12], 'the new batch is stored at once');
  assert.equal(storage.load('tab').nextOpseq, 13);
});

test('a fixed actor without storage starts opseq from the clock', async () => {
  const before = Date.now() * 1000;
  const session = new AnnoliveSession('ws://127.0.0.1:1', { actor: 'bot-1' });
  await session.load();
  assert.ok(session.nextOpseq >= before, `opseq ${session.nextOpseq} is at least ${before}`);
  assert.ok(Number.isSafeInteger(session.nextOpseq));
  const random = new AnnoliveSession('ws://127.0.0.1:1');
  await random.load();
  assert.equal(random.nextOpseq, 1);
  assert.match(random.actor, /^js-[0-9a-f]{16}$/);
});

test('invalid url and actor are rejected', async () => {
  assert.throws(() => new AnnoliveSession(42), /invalid url 42/);
  await assert.rejects(new AnnoliveSession('ws://127.0.0.1:1', { actor: 'has space' }).load(), /invalid actor/);
});
