// Field-level merge, policies, tombstones, atomic batches, validation and
// idempotent retries, through two instances A and B that share one Redis, with
// clients on each. Every expected value comes from PROTOCOL.md ("Edit
// semantics", "Validation", "Retries", "ack", "event").
//
// Before a client sends an op on an object, it waits until it has seen the
// object's last event, as a client that takes its base from its own copy does.
// The test "acked create visible on other instance" covers the case without
// that wait.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { EventRecorder, TestEnv, httpSnapshot, sendBatch, withTimeout } from './harness.mjs';
import { Replica, canonical, diffObjects, normaliseObject } from './replica.mjs';

const env = new TestEnv('merge');
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

let checkers = 0;

const show = (value) => JSON.stringify(value);

/**
 * Returns a connected client that has joined room, with its join snapshot, an
 * event recorder and a Replica built from the snapshot and the events.
 */
async function member(instance, actor, room) {
  const client = await env.client(instance, actor);
  const events = new EventRecorder(client, room);
  const replica = new Replica(`${actor}@${instance.name}`);
  client.on('snapshot', (message) => {
    if (message.room === room) replica.reset(message);
  });
  client.on('event', (message) => {
    if (message.room === room) replica.applyEvent(message);
  });
  const snapshot = await client.join(room);
  assert.equal(snapshot.type, 'snapshot', `join reply for ${actor}`);
  return { client, events, snapshot, replica, actor };
}

/** Sends one batch and returns its ack; fails when the ack's results do not match the ops. */
async function sendOk(m, room, ops, options = {}) {
  const ack = await sendBatch(m.client, room, ops, options);
  assert.equal(ack.type, 'ack', `reply to a batch of ${m.actor}: ${show(ack)}`);
  assert.equal(ack.results.length, ops.length, `one result per op: ${show(ack)}`);
  ops.forEach((op, i) => {
    assert.equal(ack.results[i].id, op.op === 'settings' ? '@room' : op.id, `result ${i} id: ${show(ack)}`);
  });
  return ack;
}

function assertStatus(ack, index, status, reason, what) {
  const result = ack.results[index];
  assert.equal(result.status, status, `${what}: status of result ${index}: ${show(ack)}`);
  if (reason !== undefined) assert.equal(result.reason, reason, `${what}: reason of result ${index}: ${show(ack)}`);
  return result;
}

/**
 * Waits until every member's replica reached seq, then reads fresh snapshots
 * over WebSocket and HTTP from A and B. Fails unless all of them and every
 * member's replica hold the same objects. Returns the objects by id.
 */
async function converged(room, members, seq) {
  for (const m of members) {
    await m.events.waitForSeq(seq);
    assert.deepEqual(m.replica.problems, [], `events applied by ${m.replica.name}`);
  }
  const views = [];
  for (const instance of [a, b]) {
    checkers += 1;
    const fresh = await member(instance, `check-${checkers}`, room);
    assert.equal(fresh.snapshot.seq, seq, `seq of the WebSocket snapshot from ${instance.name}`);
    views.push([`WebSocket snapshot from ${instance.name}`, fresh.snapshot.objects]);
    await fresh.client.close();
    const http = await httpSnapshot(instance, room);
    assert.equal(http.seq, seq, `seq of GET snapshot from ${instance.name}`);
    views.push([`GET snapshot from ${instance.name}`, http.objects]);
  }
  for (const m of members) views.push([`replica of ${m.replica.name}`, m.replica.list()]);
  const [referenceName, reference] = views[0];
  for (const [name, objects] of views.slice(1)) {
    const diff = diffObjects(objects, reference, name, referenceName);
    assert.equal(diff, null, `${name} differs from ${referenceName}:\n${diff}`);
  }
  return new Map(reference.map((o) => [o.id, normaliseObject(o)]));
}

/** Sends a create of a tag from m and waits until every member saw its event; returns its seq. */
async function marker(m, room, members, id) {
  const ack = await sendOk(m, room, [{ op: 'create', id, kind: 'tag' }]);
  assertStatus(ack, 0, 'applied', undefined, `marker ${id}`);
  for (const other of members) await other.events.waitForSeq(ack.seq);
  return ack.seq;
}

const BOX = { item: 'img-1', label: 'cat', geometry: [10, 20, 30, 40], attrs: { color: 'blue', size: 1 } };

describe('field-level merge', () => {
  test('disjoint concurrent edits both apply', { timeout: 60000 }, env.wrap(async () => {
    const room = 'merge-disjoint';
    const x = await member(a, 'mover', room);
    const y = await member(b, 'labeler', room);
    const created = await sendOk(x, room, [{ op: 'create', id: 'box', kind: 'bbox', fields: BOX }]);
    assertStatus(created, 0, 'applied', undefined, 'create');
    await y.events.waitForSeq(created.seq);
    const baseX = x.replica.objects.get('box').vv;
    const baseY = y.replica.objects.get('box').vv;
    assert.deepEqual(baseY, baseX, 'both clients load the same box');

    const [moved, relabeled] = await Promise.all([
      sendOk(x, room, [{ op: 'update', id: 'box', base: baseX, set: { geometry: [50, 60, 30, 40] } }]),
      sendOk(y, room, [{ op: 'update', id: 'box', base: baseY, set: { label: 'dog' } }]),
    ]);
    for (const [ack, who] of [[moved, 'move by A'], [relabeled, 'relabel by B']]) {
      const result = assertStatus(ack, 0, 'applied', undefined, who);
      assert.equal(result.conflicts, undefined, `${who} has no conflicts: ${show(ack)}`);
      assert.equal(typeof ack.seq, 'number', `${who} has a seq: ${show(ack)}`);
    }
    assert.notEqual(moved.seq, relabeled.seq, 'the two batches have their own seq');
    const last = Math.max(moved.seq, relabeled.seq);
    assert.deepEqual(moved.seq > relabeled.seq ? moved.results[0].vv : relabeled.results[0].vv,
      { mover: 2, labeler: 1 }, 'vv after both edits');

    const objects = await converged(room, [x, y], last);
    const box = objects.get('box');
    assert.deepEqual(box.fields.geometry, [50, 60, 30, 40], `geometry is A's: ${canonical(box)}`);
    assert.equal(box.fields.label, 'dog', `label is B's: ${canonical(box)}`);
    assert.deepEqual(box.fields.attrs, BOX.attrs, `attrs untouched: ${canonical(box)}`);
    assert.equal(box.fields.item, 'img-1', `item untouched: ${canonical(box)}`);
    assert.deepEqual(box.vv, { mover: 2, labeler: 1 }, `vv: ${canonical(box)}`);
  }));

  test('stale save merges disjoint fields', { timeout: 60000 }, env.wrap(async () => {
    const room = 'merge-stale';
    const creator = await member(a, 'creator', room);
    const idle = await member(a, 'idle', room);
    const other = await member(b, 'other', room);
    const created = await sendOk(creator, room, [{ op: 'create', id: 'box', kind: 'bbox', fields: BOX }]);
    await idle.events.waitForSeq(created.seq);
    const staleBase = idle.replica.objects.get('box').vv;
    assert.deepEqual(staleBase, { creator: 1 }, 'vv that the idle client holds');

    // While the idle client is away, label and attrs.color change.
    const relabel = await sendOk(creator, room, [{ op: 'update', id: 'box', base: { creator: 1 }, set: { label: 'dog' } }]);
    assertStatus(relabel, 0, 'applied', undefined, 'relabel');
    await other.events.waitForSeq(relabel.seq);
    const recolor = await sendOk(other, room, [
      { op: 'update', id: 'box', base: relabel.results[0].vv, set: { attrs: { color: 'red' } } }]);
    assertStatus(recolor, 0, 'applied', undefined, 'recolor');
    assert.deepEqual(recolor.results[0].vv, { creator: 2, other: 1 }, `vv after recolor: ${show(recolor)}`);

    const save = await sendOk(idle, room, [{
      op: 'update', id: 'box', base: staleBase,
      set: { label: 'bird', geometry: [1, 2, 3, 4], attrs: { size: 3 } },
    }]);
    const result = assertStatus(save, 0, 'merged', 'concurrent', 'save of the stale client');
    assert.equal(typeof save.seq, 'number', `a merged op is applied in part, so the ack has a seq: ${show(save)}`);
    assert.deepEqual(result.conflicts, [{ field: 'label', value: 'dog', dot: ['creator', 2] }],
      `conflicts list label only, with its current value and dot: ${show(save)}`);
    assert.deepEqual(result.vv, { creator: 2, other: 1, idle: 1 }, `vv after the merge: ${show(save)}`);

    const event = await other.events.waitFor('event of the save', (e) => e.seq === save.seq);
    assert.equal(event.actor, 'idle', `event actor: ${show(event)}`);
    assert.equal(event.ops.length, 1, `one op in the event: ${show(event)}`);
    const op = event.ops[0];
    assert.equal(op.set?.label, undefined, `the event leaves out the label that did not apply: ${show(event)}`);
    assert.deepEqual(op.set?.geometry, [1, 2, 3, 4], `the event carries geometry: ${show(event)}`);
    assert.deepEqual(op.set?.attrs, { size: 3 }, `the event carries attrs.size only: ${show(event)}`);
    assert.deepEqual(op.vv, result.vv, `event vv equals ack vv: ${show(event)}`);

    const objects = await converged(room, [creator, idle, other], save.seq);
    assert.deepEqual(objects.get('box').fields, {
      item: 'img-1', label: 'dog', geometry: [1, 2, 3, 4], attrs: { color: 'red', size: 3 },
    }, 'label and attrs.color of the others are kept, geometry and attrs.size of the stale client applied');
  }));

  test('attrs merge key by key', { timeout: 60000 }, env.wrap(async () => {
    const room = 'merge-attrs';
    const x = await member(a, 'ax', room);
    const y = await member(b, 'by', room);
    const created = await sendOk(x, room, [{
      op: 'create', id: 'p', kind: 'polygon',
      fields: { item: 'img-2', label: 'cat', geometry: [[0, 0, 10, 0, 10, 10]], attrs: { color: 'blue', size: 1, pose: 'left' } },
    }]);
    assertStatus(created, 0, 'applied', undefined, 'create');
    await y.events.waitForSeq(created.seq);
    const base = created.results[0].vv;
    const [colored, sized] = await Promise.all([
      sendOk(x, room, [{ op: 'update', id: 'p', base, set: { attrs: { color: 'red' } } }]),
      sendOk(y, room, [{ op: 'update', id: 'p', base, set: { attrs: { size: 2, occluded: true } } }]),
    ]);
    assertStatus(colored, 0, 'applied', undefined, 'attrs.color from A');
    assertStatus(sized, 0, 'applied', undefined, 'attrs.size and attrs.occluded from B');
    let objects = await converged(room, [x, y], Math.max(colored.seq, sized.seq));
    assert.deepEqual(objects.get('p').fields.attrs, { color: 'red', size: 2, pose: 'left', occluded: true },
      'every attrs key written concurrently is kept, and the untouched key too');

    const current = objects.get('p').vv;
    const unset = await sendOk(y, room, [{ op: 'update', id: 'p', base: current, unset: ['attrs.pose'] }]);
    assertStatus(unset, 0, 'applied', undefined, 'unset of attrs.pose');
    objects = await converged(room, [x, y], unset.seq);
    assert.deepEqual(objects.get('p').fields.attrs, { color: 'red', size: 2, occluded: true },
      'unset of attrs.pose removes that key only');

    // A stale writer of attrs.color conflicts on that key only, named attrs.color.
    const stale = await sendOk(y, room, [{ op: 'update', id: 'p', base, set: { attrs: { color: 'green', shade: 'dark' } } }]);
    const result = assertStatus(stale, 0, 'merged', 'concurrent', 'stale attrs write');
    assert.deepEqual(result.conflicts, [{ field: 'attrs.color', value: 'red', dot: ['ax', 2] }],
      `conflict on attrs.color with its value and dot: ${show(stale)}`);
    objects = await converged(room, [x, y], stale.seq);
    assert.deepEqual(objects.get('p').fields.attrs, { color: 'red', size: 2, occluded: true, shade: 'dark' },
      'the key that was not concurrent applied');
  }));

  test('unset and set conflict', { timeout: 60000 }, env.wrap(async () => {
    const room = 'merge-unset';
    const x = await member(a, 'ux', room);
    const y = await member(b, 'uy', room);
    const created = await sendOk(x, room, [{
      op: 'create', id: 'e', kind: 'ellipse', fields: { item: 'img-3', label: 'cat', geometry: [5, 5, 2, 1], occluded: true },
    }]);
    await y.events.waitForSeq(created.seq);
    const base = created.results[0].vv;

    const removed = await sendOk(x, room, [{ op: 'update', id: 'e', base, unset: ['occluded'] }]);
    assertStatus(removed, 0, 'applied', undefined, 'unset of occluded');
    const setAfterRemove = await sendOk(y, room, [{ op: 'update', id: 'e', base, set: { occluded: false } }]);
    const conflict = assertStatus(setAfterRemove, 0, 'conflict', 'concurrent', 'set of a field removed concurrently');
    assert.equal(setAfterRemove.seq, undefined, `nothing applied, no seq: ${show(setAfterRemove)}`);
    assert.deepEqual(conflict.conflicts, [{ field: 'occluded', dot: ['ux', 2] }],
      `the conflict has the remover's dot and no value, since the field was removed: ${show(setAfterRemove)}`);
    assert.deepEqual(conflict.vv, { ux: 2 }, `conflict vv is the current vv: ${show(setAfterRemove)}`);

    const relabel = await sendOk(y, room, [{ op: 'update', id: 'e', base: removed.results[0].vv, set: { label: 'dog' } }]);
    assertStatus(relabel, 0, 'applied', undefined, 'relabel');
    const unsetAfterSet = await sendOk(x, room, [{ op: 'update', id: 'e', base: removed.results[0].vv, unset: ['label'] }]);
    const conflict2 = assertStatus(unsetAfterSet, 0, 'conflict', 'concurrent', 'unset of a field set concurrently');
    assert.deepEqual(conflict2.conflicts, [{ field: 'label', value: 'dog', dot: ['uy', 1] }],
      `the conflict has the current value and dot: ${show(unsetAfterSet)}`);

    const objects = await converged(room, [x, y], relabel.seq);
    assert.deepEqual(objects.get('e').fields, { item: 'img-3', label: 'dog', geometry: [5, 5, 2, 1] },
      'occluded stays removed and label stays set');
  }));
});

describe('own writes', () => {
  test('own earlier write is seen', { timeout: 60000 }, env.wrap(async () => {
    // An op has seen every earlier write of its own actor, whatever its base
    // says, so a client may send a batch before the previous ack arrives.
    const room = 'merge-own';
    const x = await member(a, 'ox', room);
    const y = await member(b, 'oy', room);
    const created = await sendOk(x, room, [{ op: 'create', id: 'own', kind: 'bbox', fields: BOX }]);
    const base = created.results[0].vv;
    const first = await sendOk(x, room, [{ op: 'update', id: 'own', base, set: { label: 'dog' } }]);
    assertStatus(first, 0, 'applied', undefined, 'first relabel');
    const second = await sendOk(x, room, [{ op: 'update', id: 'own', base, set: { label: 'bird', geometry: [1, 1, 1, 1] } }]);
    assertStatus(second, 0, 'applied', undefined, 'relabel from a base older than the actor\'s own first relabel');

    // Another actor's write is still concurrent for the same base.
    await y.events.waitForSeq(second.seq);
    const other = await sendOk(y, room, [{ op: 'update', id: 'own', base, set: { label: 'cat' } }]);
    const result = assertStatus(other, 0, 'conflict', 'concurrent', 'relabel by another actor from the old base');
    assert.deepEqual(result.conflicts, [{ field: 'label', value: 'bird', dot: ['ox', 3] }],
      `the conflict names the other actor's write: ${show(other)}`);
  }));
});

describe('reads after an ack', () => {
  test('acked create visible on other instance', { timeout: 60000 }, env.wrap(async () => {
    // An op sent after the ack of a create, through another instance, finds
    // the object: the ack means the create is stored in Redis.
    const room = 'merge-read-after-ack';
    const x = await member(a, 'rx', room);
    const y = await member(b, 'ry', room);
    const outcomes = [];
    for (let i = 0; i < 100; i++) {
      const id = `fresh-${i}`;
      const created = await sendOk(x, room, [{ op: 'create', id, kind: 'tag', fields: { label: 'a' } }]);
      assertStatus(created, 0, 'applied', undefined, `create of ${id}`);
      const noop = await sendOk(y, room, [{ op: 'restore', id, base: created.results[0].vv }]);
      outcomes.push(`${id}: ${noop.results[0].status} ${noop.results[0].reason}`);
    }
    const wrong = outcomes.filter((text) => !text.endsWith('conflict exists'));
    assert.deepEqual(wrong, [],
      'a restore of a live object sent through B right after the create was acked through A is a conflict with reason exists; ' +
      'other results mean that B computed the batch from a room state older than the ack');
  }));
});

describe('delete, policies and tombstones', () => {
  test('delete of changed object conflicts', { timeout: 60000 }, env.wrap(async () => {
    const room = 'merge-delete';
    const x = await member(a, 'dx', room);
    const y = await member(b, 'dy', room);
    const created = await sendOk(x, room, [{ op: 'create', id: 'd', kind: 'bbox', fields: BOX }]);
    await y.events.waitForSeq(created.seq);
    const base = created.results[0].vv;
    const changed = await sendOk(x, room, [{ op: 'update', id: 'd', base, set: { label: 'dog' } }]);
    const deleted = await sendOk(y, room, [{ op: 'delete', id: 'd', base }]);
    const result = assertStatus(deleted, 0, 'conflict', 'concurrent', 'delete with a stale base');
    assert.deepEqual(result.conflicts, [{ field: 'label', value: 'dog', dot: ['dx', 2] }],
      `conflicts list the field the deleter did not see: ${show(deleted)}`);
    assert.deepEqual(result.vv, changed.results[0].vv, `conflict vv: ${show(deleted)}`);
    const objects = await converged(room, [x, y], changed.seq);
    assert.ok(objects.has('d'), 'the object is still live');
  }));

  test('lww overwrites and reports it', { timeout: 60000 }, env.wrap(async () => {
    const room = 'merge-lww';
    const x = await member(a, 'lx', room);
    const y = await member(b, 'ly', room);
    const settings = await sendOk(x, room, [{ op: 'settings', base: {}, set: { policy: 'lww' } }]);
    const settingsResult = assertStatus(settings, 0, 'applied', undefined, 'settings op');
    assert.deepEqual(settingsResult.vv, { lx: 1 }, `vv of @room: ${show(settings)}`);
    let objects = await converged(room, [x, y], settings.seq);
    assert.deepEqual(objects.get('@room'), { id: '@room', kind: 'room', vv: { lx: 1 }, fields: { policy: 'lww' } },
      'the snapshot holds the settings as the object @room');

    const created = await sendOk(x, room, [{ op: 'create', id: 'w', kind: 'bbox', fields: BOX }]);
    await y.events.waitForSeq(created.seq);
    const base = created.results[0].vv;
    const first = await sendOk(y, room, [{ op: 'update', id: 'w', base, set: { label: 'dog' } }]);
    assertStatus(first, 0, 'applied', undefined, 'first write');
    const later = await sendOk(x, room, [{ op: 'update', id: 'w', base, set: { label: 'bird', geometry: [0, 0, 1, 1] } }]);
    const result = assertStatus(later, 0, 'applied', undefined, 'later concurrent write under lww');
    assert.deepEqual(result.overwritten, [{ field: 'label', value: 'dog', dot: ['ly', 1] }],
      `the ack lists the overwritten value and its dot: ${show(later)}`);
    assert.equal(result.conflicts, undefined, `no conflicts under lww: ${show(later)}`);
    assert.deepEqual(result.vv, { lx: 2, ly: 1 }, `vv after the later write: ${show(later)}`);

    const event = await y.events.waitFor('event of the later write at the overwritten client', (e) => e.seq === later.seq);
    assert.deepEqual(event.ops[0].overwritten, [{ field: 'label', value: 'dog', dot: ['ly', 1] }],
      `the event that the overwritten client receives carries its old value and dot: ${show(event)}`);
    assert.deepEqual(event.ops[0].set, { label: 'bird', geometry: [0, 0, 1, 1] }, `event set: ${show(event)}`);

    // A delete with a stale base applies under lww and lists what it overwrote.
    const staleDelete = await sendOk(y, room, [{ op: 'delete', id: 'w', base: first.results[0].vv }]);
    const deleteResult = assertStatus(staleDelete, 0, 'applied', undefined, 'stale delete under lww');
    const names = (deleteResult.overwritten ?? []).map((o) => o.field).sort();
    assert.deepEqual(names, ['geometry', 'label'], `overwritten lists the fields the deleter did not see: ${show(staleDelete)}`);
    objects = await converged(room, [x, y], staleDelete.seq);
    assert.equal(objects.has('w'), false, 'the object is deleted');
    assert.equal(objects.get('@room').fields.policy, 'lww', 'the policy is kept');
  }));

  test('tombstone and restore', { timeout: 60000 }, env.wrap(async () => {
    const room = 'merge-tombstone';
    const x = await member(a, 'tx', room);
    const y = await member(b, 'ty', room);
    const created = await sendOk(x, room, [{
      op: 'create', id: 't', kind: 'bbox', fields: { ...BOX, frame: 7 },
    }]);
    await y.events.waitForSeq(created.seq);
    const deleted = await sendOk(y, room, [{ op: 'delete', id: 't', base: created.results[0].vv }]);
    const deleteResult = assertStatus(deleted, 0, 'applied', undefined, 'delete');
    assert.deepEqual(deleteResult.vv, { tx: 1, ty: 1 }, `a tombstone's vv grows by one: ${show(deleted)}`);
    let objects = await converged(room, [x, y], deleted.seq);
    assert.equal(objects.has('t'), false, 'a tombstone is not in snapshots');

    const late = await member(b, 'tlate', room);
    const tombVv = deleteResult.vv;

    const update = await sendOk(x, room, [{ op: 'update', id: 't', base: tombVv, set: { label: 'dog' } }]);
    assertStatus(update, 0, 'conflict', 'deleted', 'update of a tombstone');
    const del = await sendOk(x, room, [{ op: 'delete', id: 't', base: tombVv }]);
    assertStatus(del, 0, 'conflict', 'deleted', 'delete of a tombstone');
    const create = await sendOk(x, room, [{ op: 'create', id: 't', kind: 'bbox', fields: BOX }]);
    assertStatus(create, 0, 'conflict', 'exists', 'create of a deleted id');
    const staleRestore = await sendOk(x, room, [{ op: 'restore', id: 't', base: created.results[0].vv }]);
    assertStatus(staleRestore, 0, 'conflict', 'concurrent', 'restore with a base older than the tombstone');

    const restored = await sendOk(x, room, [{
      op: 'restore', id: 't', base: tombVv, fields: { label: 'cat', geometry: [3, 3, 3, 3] },
    }]);
    const restoreResult = assertStatus(restored, 0, 'applied', undefined, 'restore');
    assert.deepEqual(restoreResult.vv, { tx: 2, ty: 1 }, `vv after restore: ${show(restored)}`);
    const event = await y.events.waitFor('restore event', (e) => e.seq === restored.seq);
    assert.equal(event.ops[0].op, 'restore', `event op: ${show(event)}`);
    assert.equal(typeof event.ops[0].fields, 'object', `a restore event carries fields: ${show(event)}`);

    await late.events.waitForSeq(restored.seq);
    assert.deepEqual(late.replica.problems, [],
      'a member that joined after the delete can apply the restore event to its copy');
    objects = await converged(room, [x, y, late], restored.seq);
    assert.deepEqual(objects.get('t'), {
      id: 't', kind: 'bbox', vv: { tx: 2, ty: 1 },
      fields: { item: 'img-1', frame: 7, label: 'cat', geometry: [3, 3, 3, 3] },
    }, 'the restored object has the fields the tombstone kept (item, frame) plus the restore fields');

    const again = await sendOk(y, room, [{ op: 'restore', id: 't', base: restoreResult.vv }]);
    assertStatus(again, 0, 'conflict', 'exists', 'restore of a live object');
    const unknown = await sendOk(y, room, [{ op: 'delete', id: 'never', base: {} }]);
    assertStatus(unknown, 0, 'rejected', 'not_found', 'delete of an unknown id');
  }));
});

describe('atomic batches', () => {
  test('atomic batch applies all or nothing', { timeout: 60000 }, env.wrap(async () => {
    const room = 'merge-atomic';
    const x = await member(a, 'bx', room);
    const y = await member(b, 'by2', room);
    const created = await sendOk(x, room, [
      { op: 'create', id: 'ok', kind: 'bbox', fields: BOX },
      { op: 'create', id: 'hot', kind: 'bbox', fields: BOX },
    ]);
    const okBase = created.results[0].vv;
    const hotBase = created.results[1].vv;
    await y.events.waitForSeq(created.seq);
    const bumped = await sendOk(y, room, [{ op: 'update', id: 'hot', base: hotBase, set: { label: 'dog' } }]);
    assertStatus(bumped, 0, 'applied', undefined, 'update of hot through B');
    await x.events.waitForSeq(bumped.seq);

    const batch = [
      { op: 'update', id: 'ok', base: okBase, set: { label: 'horse' } },
      { op: 'update', id: 'hot', base: hotBase, set: { label: 'bird' } },
    ];
    const atomic = await sendOk(x, room, batch, { atomic: true });
    assertStatus(atomic, 0, 'rejected', 'atomic', 'the valid op of an atomic batch');
    assert.equal(typeof atomic.results[0].message, 'string', `a rejection has a message: ${show(atomic)}`);
    assertStatus(atomic, 1, 'conflict', 'concurrent', 'the conflicting op of an atomic batch');
    assert.equal(atomic.seq, undefined, `nothing applied, so no seq: ${show(atomic)}`);

    const merged = [
      { op: 'update', id: 'ok', base: okBase, set: { label: 'horse' } },
      { op: 'update', id: 'hot', base: hotBase, set: { label: 'bird', geometry: [9, 9, 9, 9] } },
    ];
    // Nothing of a failed atomic batch applies, so the op that alone would merge
    // reports conflict ("nothing of the op applied") and lists only its conflicting field.
    const atomicMerged = await sendOk(x, room, merged, { atomic: true });
    assertStatus(atomicMerged, 0, 'rejected', 'atomic', 'the valid op when the other would merge');
    const wouldMerge = assertStatus(atomicMerged, 1, 'conflict', 'concurrent', 'the op that would merge');
    assert.deepEqual(wouldMerge.conflicts, [{ field: 'label', value: 'dog', dot: ['by2', 1] }],
      `the op that would merge lists label only: ${show(atomicMerged)}`);
    assert.equal(atomicMerged.seq, undefined, `an atomic batch with a merged op applies nothing: ${show(atomicMerged)}`);

    const withMissing = await sendOk(x, room, [
      { op: 'update', id: 'ok', base: okBase, set: { label: 'horse' } },
      { op: 'update', id: 'missing', base: {}, set: { label: 'x' } },
    ], { atomic: true });
    assertStatus(withMissing, 0, 'rejected', 'atomic', 'the valid op when the other is not found');
    assertStatus(withMissing, 1, 'rejected', 'not_found', 'the op on a missing id');

    const sentinel = await marker(y, room, [x, y], 'atomic-marker');
    assert.equal(sentinel, bumped.seq + 1, 'no event between the bump and the marker: the atomic batches applied nothing');
    let objects = await converged(room, [x, y], sentinel);
    assert.equal(objects.get('ok').fields.label, 'cat', 'the valid op of the atomic batches did not apply');
    assert.deepEqual(objects.get('ok').vv, okBase, 'vv of ok unchanged');

    const plain = await sendOk(x, room, batch);
    assertStatus(plain, 0, 'applied', undefined, 'the valid op without atomic');
    assertStatus(plain, 1, 'conflict', 'concurrent', 'the conflicting op without atomic');
    assert.equal(plain.seq, sentinel + 1, `the plain batch applied: ${show(plain)}`);
    const event = await y.events.waitFor('event of the plain batch', (e) => e.seq === plain.seq);
    assert.deepEqual(event.ops.map((op) => op.id), ['ok'], `the event holds only the applied op: ${show(event)}`);
    objects = await converged(room, [x, y], plain.seq);
    assert.equal(objects.get('ok').fields.label, 'horse', 'the valid op applied');
    assert.equal(objects.get('hot').fields.label, 'dog', 'the conflicting op did not');

    const allGood = await sendOk(x, room, [
      { op: 'create', id: 'n1', kind: 'tag', fields: { label: 'a' } },
      { op: 'update', id: 'n1', base: { bx: 1 }, set: { label: 'b' } },
    ], { atomic: true });
    assertStatus(allGood, 0, 'applied', undefined, 'atomic create');
    assertStatus(allGood, 1, 'applied', undefined, 'atomic update of the object created in the batch');
    objects = await converged(room, [x, y], allGood.seq);
    assert.deepEqual(objects.get('n1'), { id: 'n1', kind: 'tag', vv: { bx: 2 }, fields: { label: 'b' } },
      'an atomic batch whose ops all apply applies in full');
  }));
});

describe('validation', () => {
  const invalidGeometries = [
    ['bbox', [0, 0, -1, 5], 'negative width'],
    ['bbox', [0, 0, 5], 'three numbers'],
    ['bbox', 'big', 'a string'],
    ['polygon', [[0, 0, 1, 1]], 'a ring of two points'],
    ['polygon', [0, 0, 1, 1, 2, 0], 'a flat array instead of rings'],
    ['polyline', [5, 5], 'one point'],
    ['points', [1, 2, 3], 'an odd number of coordinates'],
    ['ellipse', [0, 0, 1, -1], 'negative ry'],
    ['cuboid', [0, 0, 1, 1, 2, 2, 3, 3], 'four points'],
    ['keypoints', [1, 2], 'a point without visibility'],
    ['span', [10, 5], 'start after end'],
    ['tag', [0, 0, 1, 1], 'geometry on a tag'],
    ['mask', { counts: [1, 2] }, 'a mask without size'],
  ];

  test('invalid geometry is rejected', { timeout: 60000 }, env.wrap(async () => {
    const room = 'merge-validation';
    const x = await member(a, 'vx', room);
    const ops = invalidGeometries.map(([kind, geometry], i) => ({
      op: 'create', id: `bad-${i}`, kind, fields: { item: 'img-1', label: 'cat', geometry },
    }));
    ops.push({ op: 'create', id: 'bad-item', kind: 'item', fields: { file_name: 'a.jpg', width: -3, height: 10 } });
    ops.push({ op: 'create', id: 'good', kind: 'bbox', fields: { item: 'img-1', label: 'cat', geometry: [0, 0, 0, 0] } });
    const ack = await sendOk(x, room, ops);
    invalidGeometries.forEach(([kind, geometry, what], i) => {
      const result = assertStatus(ack, i, 'rejected', 'invalid', `${kind} geometry with ${what} ${show(geometry)}`);
      assert.match(result.message ?? '', /geometry/, `the message names the field geometry: ${show(result)}`);
    });
    const itemResult = assertStatus(ack, invalidGeometries.length, 'rejected', 'invalid', 'item with negative width');
    assert.match(itemResult.message ?? '', /width/, `the message names the field width: ${show(itemResult)}`);
    assertStatus(ack, invalidGeometries.length + 1, 'applied', undefined, 'a valid bbox of size zero');

    const good = ack.results[invalidGeometries.length + 1];
    const badUpdate = await sendOk(x, room, [{ op: 'update', id: 'good', base: good.vv, set: { geometry: [0, 0, 1, -2] } }]);
    const updateResult = assertStatus(badUpdate, 0, 'rejected', 'invalid', 'update to an invalid geometry');
    assert.match(updateResult.message ?? '', /geometry/, `the message names geometry: ${show(updateResult)}`);
    const objects = await converged(room, [x], ack.seq);
    assert.deepEqual(objects.get('good').fields.geometry, [0, 0, 0, 0], 'the invalid update changed nothing');
    assert.deepEqual([...objects.keys()], ['good'], 'no invalid object was created');
  }));

  test('label schema violations are rejected', { timeout: 60000 }, env.wrap(async () => {
    const room = 'merge-schema';
    const x = await member(a, 'sx', room);
    const schema = {
      labels: {
        car: {
          kinds: ['bbox', 'polygon'],
          attrs: { color: { type: 'enum', values: ['red', 'blue'] }, parked: { type: 'boolean' } },
          required: ['attrs.color'],
        },
        person: {},
      },
    };
    const badPolicy = await sendOk(x, room, [{ op: 'settings', base: {}, set: { policy: 'fifo' } }]);
    const policyResult = assertStatus(badPolicy, 0, 'rejected', 'invalid', 'an unknown policy');
    assert.match(policyResult.message ?? '', /policy/, `the message names policy: ${show(policyResult)}`);

    const settings = await sendOk(x, room, [{ op: 'settings', base: {}, set: { schema } }]);
    assertStatus(settings, 0, 'applied', undefined, 'settings with a schema');

    const box = (fields) => ({ item: 'img-1', geometry: [0, 0, 2, 2], ...fields });
    const cases = [
      ['unknown label', { op: 'create', id: 's1', kind: 'bbox', fields: box({ label: 'truck' }) }, /label/, /truck/],
      ['kind not allowed', { op: 'create', id: 's2', kind: 'ellipse', fields: { item: 'img-1', label: 'car', geometry: [1, 1, 1, 1], attrs: { color: 'red' } } }, /kind|ellipse/, null],
      ['missing required attrs.color', { op: 'create', id: 's3', kind: 'bbox', fields: box({ label: 'car' }) }, /attrs\.color/, null],
      ['enum value not listed', { op: 'create', id: 's4', kind: 'bbox', fields: box({ label: 'car', attrs: { color: 'green' } }) }, /color/, /green/],
      ['wrong type', { op: 'create', id: 's5', kind: 'bbox', fields: box({ label: 'car', attrs: { color: 'red', parked: 'yes' } }) }, /parked/, null],
      ['undeclared attrs key', { op: 'create', id: 's6', kind: 'bbox', fields: box({ label: 'car', attrs: { color: 'red', speed: 3 } }) }, /speed/, null],
      ['annotation without label', { op: 'create', id: 's7', kind: 'bbox', fields: box({}) }, /label/, null],
    ];
    const ack = await sendOk(x, room, [
      ...cases.map(([, op]) => op),
      { op: 'create', id: 'car-ok', kind: 'bbox', fields: box({ label: 'car', attrs: { color: 'red', parked: true } }) },
      { op: 'create', id: 'person-ok', kind: 'tag', fields: { item: 'img-1', label: 'person' } },
      { op: 'create', id: 'img-ok', kind: 'item', fields: { file_name: 'a.jpg', width: 4, height: 3 } },
    ]);
    cases.forEach(([what, , field, value], i) => {
      const result = assertStatus(ack, i, 'rejected', 'invalid', what);
      assert.match(result.message ?? '', field, `${what}: the message names the field: ${show(result)}`);
      if (value) assert.match(result.message ?? '', value, `${what}: the message names the value: ${show(result)}`);
    });
    for (let i = cases.length; i < ack.results.length; i++) assertStatus(ack, i, 'applied', undefined, 'objects the schema allows');

    const carVv = ack.results[cases.length].vv;
    const unsetRequired = await sendOk(x, room, [{ op: 'update', id: 'car-ok', base: carVv, unset: ['attrs.color'] }]);
    assertStatus(unsetRequired, 0, 'rejected', 'invalid', 'removing a required attrs key');
    const objects = await converged(room, [x], ack.seq);
    assert.deepEqual(objects.get('car-ok').fields.attrs, { color: 'red', parked: true }, 'the rejected unset changed nothing');
  }));
});

describe('idempotent retries', () => {
  test('retry across instances and restart', { timeout: 120000 }, env.wrap(async () => {
    const room = 'merge-retry';
    const sender = await member(a, 'retrier', room);
    const watchA = await member(a, 'watch-a', room);
    const watchB = await member(b, 'watch-b', room);
    const created = await sendOk(sender, room, [{ op: 'create', id: 'r1', kind: 'bbox', fields: BOX }], { opseq: 3 });
    const batch = [
      { op: 'create', id: 'r2', kind: 'tag', fields: { label: 'x' } },
      { op: 'update', id: 'r1', base: created.results[0].vv, set: { label: 'dog' } },
      { op: 'update', id: 'nope', base: {}, set: { label: 'x' } },
    ];
    const first = await sendOk(sender, room, batch, { opseq: 7 });
    assertStatus(first, 0, 'applied', undefined, 'create in the batch');
    assertStatus(first, 1, 'applied', undefined, 'update in the batch');
    assertStatus(first, 2, 'rejected', 'not_found', 'update of a missing id in the batch');
    const conflictOnly = [{ op: 'create', id: 'r1', kind: 'tag' }];
    const firstConflict = await sendOk(sender, room, conflictOnly, { opseq: 9 });
    assertStatus(firstConflict, 0, 'conflict', 'exists', 'a batch that applies nothing');

    // The same actor on another connection, through the other instance.
    const again = await member(b, 'retrier', room);
    const second = await sendOk(again, room, batch, { opseq: 7 });
    assert.deepEqual(second, first, 'the resent batch gets the ack of its first arrival (same seq and results)');
    const secondConflict = await sendOk(again, room, conflictOnly, { opseq: 9 });
    assert.deepEqual(secondConflict, firstConflict, 'a resent batch that applied nothing gets its first ack');

    const members = [sender, watchA, watchB, again];
    const markSeq = await marker(watchB, room, members, 'retry-marker-1');
    assert.equal(markSeq, first.seq + 1, 'no event between the first arrival and the marker');
    for (const w of [watchA, watchB]) {
      const count = w.events.events.filter((e) => e.actor === 'retrier' && e.opseq === 7).length;
      assert.equal(count, 1, `events of (retrier, 7) at ${w.actor}`);
    }
    const objectsBefore = await converged(room, members, markSeq);

    await sender.client.close();
    await again.client.close();
    for (const instance of [a, b]) {
      const result = await instance.stop();
      assert.equal(result.code, 0, `instance ${instance.name} stops with code 0: ${show(result)}`);
    }
    await env.redis.restart();
    await a.start();
    await b.start();

    const afterA = await member(a, 'after-a', room);
    const afterB = await member(b, 'retrier', room);
    assert.equal(afterA.snapshot.seq, markSeq, 'the room seq survives the restart');
    const third = await withTimeout(sendOk(afterB, room, batch, { opseq: 7 }), 20000, 'ack of the retry after the restart');
    assert.deepEqual(third, first, 'after a restart of Redis and both instances, the retry gets the first ack');
    const thirdConflict = await sendOk(afterB, room, conflictOnly, { opseq: 9 });
    assert.deepEqual(thirdConflict, firstConflict, 'the conflict-only batch too');

    const next = await sendOk(afterB, room, [{ op: 'create', id: 'r3', kind: 'tag' }], { opseq: 12 });
    assertStatus(next, 0, 'applied', undefined, 'a new batch with a larger opseq');
    assert.equal(next.seq, markSeq + 1, `the first new batch after the restart gets the next seq: ${show(next)}`);
    const markSeq2 = await marker(afterA, room, [afterA, afterB], 'retry-marker-2');
    for (const w of [afterA, afterB]) {
      const seqs = w.events.events.map((e) => [e.seq, e.actor, e.opseq]);
      assert.deepEqual(seqs, [[next.seq, 'retrier', 12], [markSeq2, 'after-a', 1]],
        `events at ${w.actor} after the restart: no repeat of (retrier, 7)`);
    }
    const objects = await converged(room, [afterA, afterB], markSeq2);
    for (const [id, object] of objectsBefore) {
      assert.deepEqual(objects.get(id), object, `object ${id} unchanged by the retries`);
    }
  }));
});
