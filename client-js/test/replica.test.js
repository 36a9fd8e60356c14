// Runs the shared merge vectors of protocol/vectors/merge through the client's replica. For every
// case, the event ops replayed onto the stored objects give the expected objects, dots included.
// The optimistic view shows the whole batch before the ack, the applied part between the ack and
// the event, and the expected objects after the event.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';

import { ROOM_ID, applyEventOp, appliedPart } from '../src/objects.js';
import { Batch, Room, mergeVv, newId, targetKey } from '../src/replica.js';

const MERGE_DIR = new URL('../../protocol/vectors/merge/', import.meta.url);

/** Returns the stored objects of a case as records, with the `settings` shorthand expanded. */
function caseRecords(c) {
  const records = new Map();
  if (c.settings) {
    const dots = Object.fromEntries(Object.keys(c.settings).map((name) => [name, ['admin', 1]]));
    records.set(ROOM_ID, { id: ROOM_ID, kind: 'room', fields: structuredClone(c.settings), dots, vv: { admin: 1 }, deleted: false });
  }
  for (const object of c.state) records.set(object.id, structuredClone(object));
  return records;
}

function comparable(record) {
  return { id: record.id, kind: record.kind, fields: record.fields, dots: record.dots, vv: record.vv, deleted: record.deleted };
}

/** Returns a Room whose submit() only numbers batches, for tests without a server. */
function offlineRoom(name = 'r') {
  let opseq = 1;
  return new Room(name, {
    actor: 'me',
    submit: (room, ops, atomic) => new Batch({ room: room.name, actor: 'me', opseq: opseq++, ops, atomic }),
  });
}

/** Loads the records of a case into a fresh room at seq 10. */
function roomWith(c) {
  const room = offlineRoom();
  room.seq = 10;
  room.records = caseRecords(c);
  room.refresh(new Set(room.records.keys()));
  return room;
}

function liveFields(room, id) {
  return room.get(id)?.fields ?? null;
}

function expectedFields(c, id) {
  const object = c.expect.state.find((o) => o.id === id);
  return object && !object.deleted ? object.fields : null;
}

/** Ids whose view between ack and event this test can predict exactly. */
function predictable(c, id) {
  // An unset of every attrs key that conflicts on one key removes keys the ack does not name.
  return !c.batch.ops.some((op) => op.id === id && op.unset?.includes('attrs'));
}

const files = readdirSync(MERGE_DIR).filter((name) => name.endsWith('.json')).sort();

test('the merge vector folder has files', () => {
  assert.ok(files.length > 0, `no *.json files in ${MERGE_DIR.pathname}`);
});

for (const file of files) {
  const cases = JSON.parse(readFileSync(new URL(file, MERGE_DIR), 'utf8'));
  describe(file, () => {
    for (const c of cases) {
      test(`${c.name}: event ops replayed give the expected objects`, () => {
        const records = caseRecords(c);
        for (const op of c.expect.event_ops) {
          assert.equal(applyEventOp(records, op, c.batch.actor), null, `op ${JSON.stringify(op)}`);
        }
        for (const object of c.expect.state) {
          assert.ok(records.has(object.id), `object ${object.id} is missing`);
          assert.deepStrictEqual(comparable(records.get(object.id)), comparable(object), `object ${object.id}`);
        }
      });

      test(`${c.name}: the view before the ack, after it and after the event`, () => {
        const room = roomWith(c);
        const batch = new Batch({ room: 'r', actor: c.batch.actor, opseq: 1, ops: c.batch.ops, atomic: c.batch.atomic });
        room.batches.push(batch);
        const ids = new Set(c.batch.ops.map((op) => (op.op === 'settings' ? ROOM_ID : op.id)));
        room.refresh(ids);
        assert.equal(room.pendingOps, c.batch.ops.length);

        const applied = c.expect.event_ops.length > 0;
        room.applyAck(batch, { opseq: 1, seq: applied ? 11 : undefined, results: c.expect.results });
        assert.equal(room.pendingOps, 0);
        for (const id of ids) {
          if (!applied) assert.deepStrictEqual(liveFields(room, id), liveFields(roomWith(c), id), `${id} after an ack with nothing applied`);
        }
        assert.equal(room.batches.length, applied ? 1 : 0, 'an applied batch waits for its event');
        if (applied) {
          for (const id of ids) {
            if (predictable(c, id)) assert.deepStrictEqual(liveFields(room, id), expectedFields(c, id), `${id} between the ack and the event`);
          }
          const outcome = room.applyEvent({ type: 'event', room: 'r', seq: 11, actor: c.batch.actor, opseq: 1, ops: c.expect.event_ops });
          assert.equal(outcome, 'applied');
          assert.equal(room.batches.length, 0, 'the event ends the batch');
        }
        for (const id of ids) assert.deepStrictEqual(liveFields(room, id), expectedFields(c, id), `${id} at the end`);
      });
    }
  });
}

test('appliedPart keeps the fields of a merged update that did not conflict', () => {
  const op = { op: 'update', id: 'b1', base: {}, set: { label: 'x', note: 'n', attrs: { a: 1, b: 2 } }, unset: ['z', 'attrs.c'] };
  const result = { status: 'merged', conflicts: [{ field: 'label' }, { field: 'attrs.a' }, { field: 'attrs.c' }] };
  assert.deepStrictEqual(appliedPart(op, result), { op: 'update', id: 'b1', base: {}, set: { note: 'n', attrs: { b: 2 } }, unset: ['z'] });
  assert.equal(appliedPart(op, { status: 'conflict' }), null);
  assert.equal(appliedPart(op, { status: 'applied' }), op);
});

test('edits of one task form one batch', async () => {
  const room = offlineRoom();
  room.applySnapshot({ type: 'snapshot', room: 'r', seq: 4, objects: [{ id: 'o1', kind: 'bbox', vv: { x: 2 }, fields: { label: 'a' } }] });
  const changes = [];
  room.on('change', (change) => changes.push(change));
  room.update('o1', { set: { label: 'b' } });
  room.create('tag', { label: 't' }, { id: 't1' });
  assert.equal(room.get('o1').fields.label, 'b', 'the view shows the edit at once');
  assert.equal(room.batches.length, 0);
  await Promise.resolve();
  assert.equal(room.batches.length, 1);
  assert.deepStrictEqual(room.batches[0].ops, [
    { op: 'update', id: 'o1', base: { x: 2 }, set: { label: 'b' } },
    { op: 'create', id: 't1', kind: 'tag', fields: { label: 't' } },
  ]);
  assert.deepStrictEqual(changes.map((c) => [c.id, c.previous?.fields.label ?? null, c.object.fields.label]), [['o1', 'a', 'b'], ['t1', null, 't']]);
});

test('a rejected op is rolled back and reported, and its promise resolves', async () => {
  const room = offlineRoom();
  room.applySnapshot({ type: 'snapshot', room: 'r', seq: 1, objects: [{ id: 'o1', kind: 'bbox', vv: { x: 1 }, fields: { label: 'a' } }] });
  const rejected = [];
  room.on('rejected', (r) => rejected.push(r));
  const done = room.update('o1', { set: { label: 'bad' } });
  await Promise.resolve();
  room.applyAck(room.batches[0], { opseq: 1, results: [{ id: 'o1', status: 'rejected', reason: 'invalid', message: 'no' }] });
  assert.equal(room.get('o1').fields.label, 'a');
  assert.equal((await done).reason, 'invalid');
  assert.equal(rejected.length, 1);
});

test('conflict reports value, dot and retry', async () => {
  const room = offlineRoom();
  room.applySnapshot({ type: 'snapshot', room: 'r', seq: 1, objects: [{ id: 'o1', kind: 'bbox', vv: { x: 1 }, fields: { label: 'a', note: 'n' } }] });
  const conflicts = [];
  room.on('conflict', (c) => conflicts.push(c));
  room.update('o1', { set: { label: 'mine', note: 'm' } });
  await Promise.resolve();
  // Another actor relabelled the object first: its event, then this replica's ack.
  room.applyEvent({ type: 'event', room: 'r', seq: 2, actor: 'y', opseq: 9, ops: [{ op: 'update', id: 'o1', set: { label: 'theirs' }, vv: { x: 1, y: 1 } }] });
  assert.equal(room.get('o1').fields.label, 'mine', 'the pending edit still shows');
  room.applyAck(room.batches[0], {
    opseq: 1, seq: 3,
    results: [{ id: 'o1', status: 'merged', reason: 'concurrent', vv: { x: 1, y: 1, me: 1 }, conflicts: [{ field: 'label', value: 'theirs', dot: ['y', 1] }] }],
  });
  assert.equal(room.get('o1').fields.label, 'theirs', 'the conflicting field is corrected');
  assert.equal(room.get('o1').fields.note, 'm', 'the applied field stays');
  assert.equal(conflicts.length, 1);
  assert.deepStrictEqual(conflicts[0].conflicts, [{ field: 'label', value: 'theirs', dot: ['y', 1] }]);
  conflicts[0].retry();
  await Promise.resolve();
  const retried = room.batches.at(-1).ops[0];
  assert.deepStrictEqual(retried, { op: 'update', id: 'o1', base: { x: 1, y: 1, me: 1 }, set: { label: 'mine' } });
});

test('a reset snapshot replaces the copy and keeps pending edits on top', async () => {
  const room = offlineRoom();
  room.applySnapshot({ type: 'snapshot', room: 'r', seq: 5, objects: [{ id: 'gone', kind: 'tag', vv: { x: 1 }, fields: {} }] });
  room.create('tag', { label: 'offline' }, { id: 'new' });
  await Promise.resolve();
  const resets = [];
  room.on('reset', (r) => resets.push(r));
  room.applySnapshot({ type: 'snapshot', room: 'r', seq: 90, reset: true, objects: [{ id: 'other', kind: 'tag', vv: { z: 1 }, fields: {} }] });
  assert.deepStrictEqual(resets, [{ seq: 90 }]);
  assert.deepStrictEqual(room.objects().map((o) => o.id).sort(), ['new', 'other']);
  assert.equal(room.seq, 90);
  assert.equal(room.applyEvent({ type: 'event', room: 'r', seq: 90, actor: 'z', opseq: 1, ops: [] }), 'old');
  assert.equal(room.applyEvent({ type: 'event', room: 'r', seq: 92, actor: 'z', opseq: 1, ops: [] }), 'gap');
});

test('presence and claims follow join replies and messages', () => {
  const room = offlineRoom();
  room.applySnapshot({
    type: 'snapshot', room: 'r', seq: 0, objects: [], client: 'me',
    presence: [{ client: 'me', sub: 'u1', state: {} }, { client: 'b', sub: 'u2', name: 'Bo', state: { cursor: [1, 2] } }],
    claims: [{ target: { id: 'o1' }, client: 'b', sub: 'u2', ttl: 1000 }],
  });
  assert.equal(room.client, 'me');
  assert.deepStrictEqual([...room.presence.keys()], ['me', 'b']);
  room.applyPresence({ type: 'presence', room: 'r', client: 'b', sub: 'u2', state: null });
  assert.deepStrictEqual([...room.presence.keys()], ['me']);
  assert.equal(room.claimOf('o1').client, 'b');
  room.applyClaim({ type: 'claimed', room: 'r', claim: { target: { item: 'img', frames: [3, 9] }, client: 'c' } });
  room.applyClaim({ type: 'released', room: 'r', reason: 'expired', claim: { target: { id: 'o1' }, client: 'b' } });
  assert.equal(room.claimOf('o1'), null);
  assert.deepStrictEqual([...room.claims.keys()], [targetKey({ item: 'img', frames: [3, 9] })]);
});

test('helpers: mergeVv and newId', () => {
  assert.deepStrictEqual(mergeVv({ a: 1, b: 5 }, { b: 2, c: 3 }), { a: 1, b: 5, c: 3 });
  const ids = new Set(Array.from({ length: 100 }, () => newId()));
  assert.equal(ids.size, 100);
  for (const id of ids) assert.match(id, /^[0-9A-Z]{26}$/);
});
