// Concurrent edits through two instances that share one Redis: version-vector
// conflicts, rejections, and event order for every member on both instances.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { EventRecorder, TestEnv, httpSnapshot, sortById } from './harness.mjs';

const env = new TestEnv('conflict');
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

/** Returns a connected client that has joined room, with its snapshot and an event recorder. */
async function member(instance, actor, room) {
  const client = await env.client(instance, actor);
  const events = new EventRecorder(client, room);
  const snapshot = await client.join(room);
  assert.equal(snapshot.type, 'snapshot', `join reply for ${actor}`);
  assert.equal(snapshot.room, room, `snapshot room for ${actor}`);
  return { client, events, snapshot };
}

/**
 * Waits until member m has the room as of seq, from its snapshot or an event.
 * A join snapshot shows the room as of the latest seq its instance has seen.
 * That seq may be older than an ack sent by another instance, so a test waits
 * until a member on the instance has seen the seq before it joins there.
 */
async function waitUntilSeen(m, seq) {
  if (m.snapshot.seq >= seq) return;
  await m.events.waitForSeq(seq);
}

function findObject(snapshot, id) {
  return snapshot.objects.find((o) => o.id === id);
}

describe('conflicts', () => {
  test('concurrent label updates', { timeout: 60000 }, env.wrap(async () => {
    const room = 'conflict-label';
    const x = await member(a, 'x', room);
    const y = await member(b, 'y', room);

    const created = await x.client.send(room, [
      { op: 'create', id: 'o', kind: 'bbox', fields: { item: 'img-1', label: 'cat', geometry: [1, 2, 3, 4] } },
    ]);
    assert.equal(created.results[0].status, 'applied', JSON.stringify(created));
    assert.deepEqual(created.results[0].vv, { x: 1 });
    const createEventAtY = await y.events.waitFor('create of o at y', (e) => e.seq === created.seq);
    const base = createEventAtY.ops[0].vv;
    assert.deepEqual(base, created.results[0].vv, 'vv of o as y learns it from the event');

    const fromX = x.client.send(room, [{ op: 'update', id: 'o', base, set: { label: 'dog' } }]);
    const fromY = y.client.send(room, [{ op: 'update', id: 'o', base, set: { label: 'bird' } }]);
    const [ackX, ackY] = await Promise.all([fromX, fromY]);
    const resultX = ackX.results[0];
    const resultY = ackY.results[0];

    const statuses = [resultX.status, resultY.status].sort();
    assert.deepEqual(statuses, ['applied', 'conflict'], `statuses: ${JSON.stringify([ackX, ackY])}`);
    const [winnerAck, loserAck, winnerValue, winnerClient] = resultX.status === 'applied'
      ? [ackX, ackY, 'dog', x.client] : [ackY, ackX, 'bird', y.client];
    const winner = winnerAck.results[0];
    const loser = loserAck.results[0];

    assert.equal(loser.reason, 'concurrent', `loser result: ${JSON.stringify(loser)}`);
    assert.ok(Array.isArray(loser.conflicts), `loser result has conflicts: ${JSON.stringify(loser)}`);
    const labelConflict = loser.conflicts.find((c) => c.field === 'label');
    assert.ok(labelConflict, `conflicts name the field label: ${JSON.stringify(loser.conflicts)}`);
    assert.equal(labelConflict.value, winnerValue, 'conflict carries the winner value');
    assert.equal(labelConflict.dot[0], winnerClient.actor, 'conflict dot names the winner actor');
    assert.deepEqual(loser.vv, winner.vv, 'conflict vv is the vv after the winning update');
    assert.equal(loserAck.seq, undefined, 'an ack with no applied op has no seq');
    assert.equal(typeof winnerAck.seq, 'number', 'the winner ack has a seq');

    await x.events.waitForSeq(winnerAck.seq);
    await y.events.waitForSeq(winnerAck.seq);

    const freshA = await member(a, 'x-fresh', room);
    const freshB = await member(b, 'y-fresh', room);
    const objectA = findObject(freshA.snapshot, 'o');
    const objectB = findObject(freshB.snapshot, 'o');
    assert.ok(objectA, 'o is in the snapshot from A');
    assert.ok(objectB, 'o is in the snapshot from B');
    assert.equal(objectA.fields.label, winnerValue, 'label in the snapshot from A');
    assert.equal(objectB.fields.label, winnerValue, 'label in the snapshot from B');
    assert.deepEqual(objectA.vv, winner.vv, 'vv in the snapshot from A');
    assert.deepEqual(objectB.vv, objectA.vv, 'vv from A and B');
    assert.equal(freshA.snapshot.seq, freshB.snapshot.seq, 'snapshot seq from A and B');
  }));

  test('update of unknown id', { timeout: 30000 }, env.wrap(async () => {
    const room = 'conflict-unknown';
    const x = await member(a, 'x2', room);
    const ack = await x.client.send(room, [
      { op: 'update', id: 'no-such-object', base: {}, set: { label: 'cat' } },
    ]);
    const result = ack.results[0];
    assert.equal(result.id, 'no-such-object');
    assert.equal(result.status, 'rejected', JSON.stringify(result));
    assert.equal(result.reason, 'not_found', JSON.stringify(result));
    assert.equal(typeof result.message, 'string', 'a rejection has a message');
    assert.equal(ack.seq, undefined, 'no seq when nothing applied');
  }));

  test('create of existing id', { timeout: 30000 }, env.wrap(async () => {
    const room = 'conflict-exists';
    const x = await member(a, 'x3', room);
    const y = await member(b, 'y3', room);
    const first = await x.client.send(room, [{ op: 'create', id: 'dup', kind: 'tag', fields: { label: 'one' } }]);
    assert.equal(first.results[0].status, 'applied', JSON.stringify(first));

    const second = await y.client.send(room, [{ op: 'create', id: 'dup', kind: 'tag', fields: { label: 'two' } }]);
    const result = second.results[0];
    assert.equal(result.status, 'conflict', JSON.stringify(result));
    assert.equal(result.reason, 'exists', JSON.stringify(result));
    assert.deepEqual(result.vv, { x3: 1 }, 'conflict vv is the existing object vv');

    await waitUntilSeen(y, first.seq);
    const fresh = await member(b, 'y3-fresh', room);
    assert.equal(findObject(fresh.snapshot, 'dup').fields.label, 'one', 'the first create is kept');
  }));

  test('delete with stale base', { timeout: 30000 }, env.wrap(async () => {
    const room = 'conflict-delete';
    const x = await member(a, 'x4', room);
    const y = await member(b, 'y4', room);
    const created = await x.client.send(room, [{ op: 'create', id: 'd', kind: 'tag', fields: { label: 'a' } }]);
    const staleBase = created.results[0].vv;
    const updated = await x.client.send(room, [{ op: 'update', id: 'd', base: staleBase, set: { label: 'b' } }]);
    assert.equal(updated.results[0].status, 'applied', JSON.stringify(updated));

    const deleted = await y.client.send(room, [{ op: 'delete', id: 'd', base: staleBase }]);
    const result = deleted.results[0];
    assert.equal(result.status, 'conflict', JSON.stringify(result));
    assert.equal(result.reason, 'concurrent', JSON.stringify(result));
    assert.deepEqual(result.vv, updated.results[0].vv, 'conflict vv is the current vv');

    await waitUntilSeen(y, updated.seq);
    const fresh = await member(b, 'y4-fresh', room);
    assert.ok(findObject(fresh.snapshot, 'd'), 'the object is still live after the rejected delete');

    const current = await y.client.send(room, [{ op: 'delete', id: 'd', base: result.vv }]);
    assert.equal(current.results[0].status, 'applied', `delete with the current vv: ${JSON.stringify(current)}`);
    await waitUntilSeen(x, current.seq);
    const afterDelete = await member(a, 'x4-after', room);
    assert.equal(findObject(afterDelete.snapshot, 'd'), undefined, 'a deleted object is not in snapshots');

    const updateDeleted = await x.client.send(room, [{ op: 'update', id: 'd', base: result.vv, set: { label: 'c' } }]);
    assert.equal(updateDeleted.results[0].status, 'conflict', JSON.stringify(updateDeleted));
    assert.equal(updateDeleted.results[0].reason, 'deleted', JSON.stringify(updateDeleted));
    const recreate = await x.client.send(room, [{ op: 'create', id: 'd', kind: 'tag' }]);
    assert.equal(recreate.results[0].status, 'conflict', JSON.stringify(recreate));
    assert.equal(recreate.results[0].reason, 'exists', JSON.stringify(recreate));
  }));

  test('disjoint concurrent updates merge', { timeout: 30000 }, env.wrap(async () => {
    const room = 'conflict-merge';
    const x = await member(a, 'x5', room);
    const y = await member(b, 'y5', room);
    const created = await x.client.send(room, [
      { op: 'create', id: 'm', kind: 'bbox', fields: { item: 'img-1', label: 'cat', geometry: [0, 0, 10, 10] } },
    ]);
    const base = created.results[0].vv;

    const relabel = await x.client.send(room, [{ op: 'update', id: 'm', base, set: { label: 'dog' } }]);
    assert.equal(relabel.results[0].status, 'applied', JSON.stringify(relabel));
    const move = await y.client.send(room, [{ op: 'update', id: 'm', base, set: { geometry: [5, 5, 10, 10] } }]);
    assert.equal(move.results[0].status, 'applied', `an update of another field from the same base: ${JSON.stringify(move)}`);

    const both = await y.client.send(room, [
      { op: 'update', id: 'm', base, set: { label: 'bird', occluded: true } },
    ]);
    const result = both.results[0];
    assert.equal(result.status, 'merged', `label is concurrent, occluded is not: ${JSON.stringify(result)}`);
    assert.deepEqual(result.conflicts.map((c) => c.field), ['label'], JSON.stringify(result));
    assert.equal(result.conflicts[0].value, 'dog', JSON.stringify(result));

    await x.events.waitForSeq(both.seq);
    const fresh = await member(a, 'x5-fresh', room);
    const object = findObject(fresh.snapshot, 'm');
    assert.equal(object.fields.label, 'dog', 'label keeps the first write');
    assert.deepEqual(object.fields.geometry, [5, 5, 10, 10], 'geometry has the disjoint write');
    assert.equal(object.fields.occluded, true, 'occluded has the merged write');
    assert.deepEqual(object.vv, result.vv, 'snapshot vv is the vv of the last ack');
  }));

  test('retried batch applies once', { timeout: 30000 }, env.wrap(async () => {
    const room = 'conflict-retry';
    const first = await member(a, 'retrier', room);
    const ops = [{ op: 'create', id: 'r', kind: 'tag', fields: { label: 'once' } }];
    const ack = await first.client.send(room, ops, { opseq: 7 });
    assert.equal(ack.results[0].status, 'applied', JSON.stringify(ack));

    // The same actor resends the batch through the other instance, as after a lost ack.
    const second = await member(b, 'retrier', room);
    const again = await second.client.send(room, ops, { opseq: 7 });
    assert.deepEqual(again, ack, 'a resent batch gets the ack of its first arrival');

    // The HTTP snapshot is read from Redis, so it shows any event the resend made.
    const stored = await httpSnapshot(b, room);
    assert.equal(stored.seq, ack.seq, 'the resent batch made no new event');
    assert.deepEqual(findObject(stored, 'r').vv, { retrier: 1 });
  }));

  test('events in seq order everywhere', { timeout: 60000 }, env.wrap(async () => {
    const room = 'conflict-order';
    const members = [
      await member(a, 'a1', room), await member(a, 'a2', room),
      await member(b, 'b1', room), await member(b, 'b2', room),
    ];
    const startSeq = members[0].snapshot.seq;
    for (const m of members) assert.equal(m.snapshot.seq, startSeq, `snapshot seq of ${m.client.actor}`);

    // Every member sends batches concurrently: creates, then updates on the objects it made.
    const rounds = 30;
    const acks = await Promise.all(members.map(async (m) => {
      const own = [];
      for (let i = 0; i < rounds; i++) {
        const id = `${m.client.actor}-${i}`;
        const created = await m.client.send(room, [{ op: 'create', id, kind: 'tag', fields: { n: i } }]);
        assert.equal(created.results[0].status, 'applied', `create: ${JSON.stringify(created)}`);
        const updated = await m.client.send(room, [{ op: 'update', id, base: created.results[0].vv, set: { n: i + 100 } }]);
        assert.equal(updated.results[0].status, 'applied',
          `update right after its create was acked: ${JSON.stringify(updated)}; create ack: ${JSON.stringify(created)}`);
        own.push(created, updated);
      }
      return own;
    }));
    const applied = acks.flat();
    for (const ack of applied) {
      for (const r of ack.results) assert.equal(r.status, 'applied', JSON.stringify(ack));
    }
    const lastSeq = startSeq + applied.length;
    assert.equal(Math.max(...applied.map((ack) => ack.seq)), lastSeq, 'the last ack seq');

    for (const m of members) await m.events.waitForSeq(lastSeq, 20000);
    const expected = Array.from({ length: applied.length }, (_, i) => startSeq + 1 + i);
    const reference = members[0].events.events.map((e) => [e.seq, e.actor, e.opseq]);
    for (const m of members) {
      const seqs = m.events.events.map((e) => e.seq);
      assert.deepEqual(seqs, expected, `event seqs at ${m.client.actor}: consecutive, no gaps, no duplicates`);
      assert.deepEqual(m.events.events.map((e) => [e.seq, e.actor, e.opseq]), reference,
        `events at ${m.client.actor} match those at ${members[0].client.actor}`);
    }

    const ackBySeq = new Map(applied.map((ack) => [ack.seq, ack]));
    for (const event of members[0].events.events) {
      const ack = ackBySeq.get(event.seq);
      assert.ok(ack, `an ack has seq ${event.seq}`);
      assert.equal(event.opseq, ack.opseq, `opseq of event ${event.seq}`);
    }

    const fromA = await member(a, 'a-check', room);
    const fromB = await member(b, 'b-check', room);
    assert.equal(fromA.snapshot.seq, lastSeq, 'snapshot seq from A after the batches');
    assert.deepEqual(sortById(fromB.snapshot.objects), sortById(fromA.snapshot.objects), 'snapshots from A and B');
  }));
});
