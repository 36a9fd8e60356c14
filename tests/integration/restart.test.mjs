// Persistence: rooms survive a stop of every instance and of redis-server,
// because Redis keeps them in its append-only file.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { LABELME_COCO, TestEnv, describeRun, fetchJson, sortById } from './harness.mjs';

const env = new TestEnv('restart');

before(async () => {
  await env.init();
  await env.startRedis();
}, { timeout: 60000 });

after(async () => {
  await env.cleanup();
}, { timeout: 120000 });

async function httpSnapshot(instance, room) {
  const response = await fetchJson(`${instance.httpUrl}/v1/rooms/${encodeURIComponent(room)}/snapshot`);
  assert.equal(response.status, 200, `GET snapshot of ${room} from ${instance.name}: ${response.text.slice(0, 500)}`);
  return response.body;
}

function normalise(snapshot) {
  return { ...snapshot, objects: sortById(snapshot.objects) };
}

async function stopCleanly(instance) {
  const result = await instance.stop();
  assert.equal(result.exitedBefore, false, `instance ${instance.name} was running until SIGTERM`);
  assert.equal(result.killed, false, `instance ${instance.name} exits on SIGTERM without SIGKILL`);
  assert.equal(result.code, 0, `exit code of instance ${instance.name} on SIGTERM`);
}

describe('restart', () => {
  test('rooms survive a full restart', { timeout: 120000 }, env.wrap(async () => {
    const importRoom = 'restart-import';
    const editRoom = 'restart-edits';
    const a = await env.startInstance('a');
    const b = await env.startInstance('b');

    const imported = await env.runCli(['import', '--url', a.wsUrl, '--room', importRoom, LABELME_COCO],
      { timeoutMs: 120000 });
    assert.equal(imported.code, 0, describeRun('import', imported));

    // Creates, an update, a field removal and a delete, so that vv, dots and tombstones are stored.
    const client = await env.client(a, 'editor');
    await client.join(editRoom);
    const created = await client.send(editRoom, [
      { op: 'create', id: 'keep', kind: 'bbox', fields: { item: 'img', label: 'cat', geometry: [0.5, 1, 2.25, 3], occluded: true } },
      { op: 'create', id: 'gone', kind: 'tag', fields: { label: 'x' } },
    ]);
    for (const r of created.results) assert.equal(r.status, 'applied', JSON.stringify(created));
    const updated = await client.send(editRoom, [
      { op: 'update', id: 'keep', base: created.results[0].vv, set: { label: 'dog', score: 0.1 }, unset: ['occluded'] },
      { op: 'delete', id: 'gone', base: created.results[1].vv },
    ]);
    for (const r of updated.results) assert.equal(r.status, 'applied', JSON.stringify(updated));
    await client.close();

    const snapshotsBefore = {};
    for (const room of [importRoom, editRoom]) {
      snapshotsBefore[room] = normalise(await httpSnapshot(a, room));
      assert.deepEqual(normalise(await httpSnapshot(b, room)), snapshotsBefore[room], `snapshot of ${room} from A and B`);
    }
    assert.ok(snapshotsBefore[importRoom].objects.length > 0, 'the import created objects');
    assert.equal(snapshotsBefore[editRoom].objects.length, 1, 'one live object in the edit room');

    await stopCleanly(a);
    await stopCleanly(b);
    const redisStop = await env.redis.stop();
    assert.equal(redisStop.code, 0, `redis-server exit after SHUTDOWN: ${JSON.stringify(redisStop)}`);
    await env.redis.start();

    await a.start();
    await b.start();
    for (const room of [importRoom, editRoom]) {
      assert.deepEqual(normalise(await httpSnapshot(a, room)), snapshotsBefore[room], `snapshot of ${room} from A after restart`);
      assert.deepEqual(normalise(await httpSnapshot(b, room)), snapshotsBefore[room], `snapshot of ${room} from B after restart`);
    }

    // The room seq and the tombstone survive too.
    const again = await env.client(b, 'editor-2');
    await again.join(editRoom);
    const next = await again.send(editRoom, [
      { op: 'create', id: 'gone', kind: 'tag' },
      { op: 'create', id: 'new', kind: 'tag' },
    ]);
    assert.equal(next.results[0].status, 'conflict', `create of a deleted id: ${JSON.stringify(next)}`);
    assert.equal(next.results[0].reason, 'exists', JSON.stringify(next));
    assert.equal(next.results[1].status, 'applied', JSON.stringify(next));
    assert.equal(next.seq, snapshotsBefore[editRoom].seq + 1, 'the seq continues after the restart');
  }));
});
