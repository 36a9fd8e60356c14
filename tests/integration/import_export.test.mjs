// Imports real annotation files through instance A with the command-line
// tool, watches the room on instance B, exports from B and compares the
// export with the input.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  LABELME_BBOX_DIR, LABELME_COCO, SHARED_DATA, TestEnv, describeRun, fetchJson, opsOf, sleep,
  waitUntil,
} from './harness.mjs';

const VAL2014_COCO = path.join(SHARED_DATA, 'coco_instances_val2014_100.json');
const CLI_TIMEOUT_MS = 120000;

const env = new TestEnv('import-export');
let a;
let b;
let probeClient;

before(async () => {
  await env.init();
  await env.startRedis();
  a = await env.startInstance('a');
  b = await env.startInstance('b');
  probeClient = await env.client(a, 'probe');
}, { timeout: 60000 });

after(async () => {
  await env.cleanup();
}, { timeout: 120000 });

/**
 * Starts `watch` on instance for room and returns it once it prints events.
 * The watch has joined when it prints the create of a probe object made
 * after its start. The probe objects are deleted again, so they are not
 * part of the room's snapshot.
 */
async function startWatch(instance, room) {
  await probeClient.join(room);
  const watch = env.spawnCli(['watch', '--url', instance.wsUrl, '--room', room]);
  const probes = [];
  await waitUntil(`watch on room ${room} to print a probe create`, async () => {
    if (watch.child.exitInfo) {
      throw new Error(`watch exited early: ${JSON.stringify(watch.child.exitInfo)}; stderr: ${watch.stderr}`);
    }
    const id = `probe-${room}-${probes.length + 1}`;
    const ack = await probeClient.send(room, [{ op: 'create', id, kind: 'tag', fields: { label: 'probe' } }]);
    assert.equal(ack.results[0].status, 'applied', `probe create ${id}: ${JSON.stringify(ack)}`);
    probes.push({ id, vv: ack.results[0].vv });
    for (let i = 0; i < 10; i++) {
      if (watch.lines.some((line) => line.includes(id))) return true;
      await sleep(100);
    }
    return false;
  }, { timeoutMs: 20000, intervalMs: 10 });

  const ack = await probeClient.send(room, probes.map((p) => ({ op: 'delete', id: p.id, base: p.vv })));
  for (const result of ack.results) {
    assert.equal(result.status, 'applied', `probe delete ${result.id}: ${JSON.stringify(result)}`);
  }
  watch.probeIds = new Set(probes.map((p) => p.id));
  return watch;
}

async function importFile(instance, room, file) {
  const result = await env.runCli(['import', '--url', instance.wsUrl, '--room', room, file],
    { timeoutMs: CLI_TIMEOUT_MS });
  assert.equal(result.code, 0, describeRun(`import of ${file} into ${room}`, result));
  return result;
}

async function exportCoco(instance, room) {
  const result = await env.runCli(['export', '--url', instance.wsUrl, '--room', room, '--format', 'coco'],
    { timeoutMs: CLI_TIMEOUT_MS });
  assert.equal(result.code, 0, describeRun(`export of ${room}`, result));
  try {
    return JSON.parse(result.stdout);
  } catch (err) {
    assert.fail(`export of ${room} printed invalid JSON (${err.message}); first 500 characters: ${result.stdout.slice(0, 500)}`);
  }
}

async function httpSnapshot(instance, room) {
  const response = await fetchJson(`${instance.httpUrl}/v1/rooms/${encodeURIComponent(room)}/snapshot`);
  assert.equal(response.status, 200, `GET snapshot of ${room}: ${response.text.slice(0, 500)}`);
  return response.body;
}

/**
 * Waits until the watch has printed a create for each object of the snapshot
 * and checks that it printed no others, apart from the probes.
 */
async function checkWatchCreates(watch, snapshot) {
  const expectedIds = new Set(snapshot.objects.map((o) => o.id));
  const importedCreates = () => opsOf(watch.json(), 'create').filter((op) => !watch.probeIds.has(op.id));
  await waitUntil(`watch to print ${expectedIds.size} creates`, () => importedCreates().length >= expectedIds.size,
    { timeoutMs: 60000, intervalMs: 100 });
  await sleep(200);

  const creates = importedCreates();
  assert.equal(creates.length, expectedIds.size, 'number of creates printed by watch');
  const printed = new Set(creates.map((op) => op.id));
  assert.equal(printed.size, creates.length, 'watch printed a create twice');
  for (const id of expectedIds) assert.ok(printed.has(id), `watch printed no create of object ${id}`);

  const seqs = watch.json().filter((e) => e.type === undefined || e.type === 'event').map((e) => e.seq);
  for (let i = 1; i < seqs.length; i++) {
    assert.equal(seqs[i], seqs[i - 1] + 1, `watch event seqs must be consecutive: ${seqs.slice(Math.max(0, i - 3), i + 2)}`);
  }
}

function countKinds(objects) {
  const counts = {};
  for (const o of objects) counts[o.kind] = (counts[o.kind] ?? 0) + 1;
  return counts;
}

/**
 * Checks that a snapshot has an item per image, a category per category and
 * an annotation object per annotation. The importer also keeps the file's
 * info and licenses in one tag object.
 */
function checkSnapshotShape(snapshot, input) {
  const counts = countKinds(snapshot.objects);
  const described = JSON.stringify(counts);
  assert.equal(counts.item ?? 0, input.images.length, `item objects in the snapshot: ${described}`);
  assert.equal(counts.category ?? 0, input.categories.length, `category objects in the snapshot: ${described}`);
  assert.ok((counts.tag ?? 0) <= 1, `at most one tag object in the snapshot: ${described}`);
  const annotations = snapshot.objects.length - (counts.item ?? 0) - (counts.category ?? 0) - (counts.tag ?? 0);
  assert.equal(annotations, input.annotations.length, `annotation objects in the snapshot: ${described}`);
}

/** Compares a COCO export with the file that was imported. */
function compareCoco(input, output) {
  assert.ok(Array.isArray(output.images), 'export has an images array');
  assert.ok(Array.isArray(output.annotations), 'export has an annotations array');
  assert.ok(Array.isArray(output.categories), 'export has a categories array');
  assert.equal(output.images.length, input.images.length, 'image count');
  assert.equal(output.annotations.length, input.annotations.length, 'annotation count');
  assert.deepEqual(output.categories.map((c) => c.name).sort(), input.categories.map((c) => c.name).sort(),
    'category names');

  const inImages = new Map(input.images.map((i) => [i.id, i]));
  const outImages = new Map(output.images.map((i) => [i.id, i]));
  const inCategories = new Map(input.categories.map((c) => [c.id, c]));
  const outCategories = new Map(output.categories.map((c) => [c.id, c]));

  const outByFile = new Map(output.images.map((i) => [i.file_name, i]));
  for (const image of input.images) {
    const exported = outByFile.get(image.file_name);
    assert.ok(exported, `image ${image.file_name} is missing from the export`);
    assert.equal(exported.width, image.width, `width of image ${image.file_name}`);
    assert.equal(exported.height, image.height, `height of image ${image.file_name}`);
  }

  const outById = new Map(output.annotations.map((x) => [x.id, x]));
  for (const annotation of input.annotations) {
    const exported = outById.get(annotation.id);
    assert.ok(exported, `annotation id ${annotation.id} is missing from the export`);
    assert.deepStrictEqual(exported.bbox, annotation.bbox, `bbox of annotation ${annotation.id}`);
    assert.deepStrictEqual(exported.segmentation, annotation.segmentation, `segmentation of annotation ${annotation.id}`);
    assert.deepStrictEqual(exported.area, annotation.area, `area of annotation ${annotation.id}`);
    assert.equal(exported.iscrowd ?? 0, annotation.iscrowd ?? 0, `iscrowd of annotation ${annotation.id}`);
    assert.equal(outImages.get(exported.image_id)?.file_name, inImages.get(annotation.image_id).file_name,
      `image of annotation ${annotation.id}`);
    assert.equal(outCategories.get(exported.category_id)?.name, inCategories.get(annotation.category_id).name,
      `category of annotation ${annotation.id}`);
  }
}

async function roundTripCoco(room, file) {
  const input = JSON.parse(fs.readFileSync(file, 'utf8'));
  const watch = await startWatch(b, room);
  await importFile(a, room, file);

  const snapshot = await httpSnapshot(b, room);
  checkSnapshotShape(snapshot, input);
  await checkWatchCreates(watch, snapshot);

  const output = await exportCoco(b, room);
  compareCoco(input, output);

  const stopped = await watch.stop();
  assert.equal(stopped.killed, false, 'watch stops on SIGTERM');
}

describe('import and export', () => {
  test('labelme COCO round trip', { timeout: 180000 }, env.wrap(async () => {
    await roundTripCoco('coco-labelme', LABELME_COCO);
  }));

  test('COCO val2014 100 images round trip', { timeout: 300000 }, env.wrap(async (t) => {
    if (!fs.existsSync(VAL2014_COCO)) {
      t.skip(`${VAL2014_COCO} not found`);
      return;
    }
    await roundTripCoco('coco-val2014', VAL2014_COCO);
  }));

  test('labelme rectangles import', { timeout: 180000 }, env.wrap(async () => {
    const room = 'labelme-bbox';
    const files = fs.readdirSync(LABELME_BBOX_DIR).filter((f) => f.endsWith('.json')).sort();
    assert.ok(files.length > 0, `no labelme files in ${LABELME_BBOX_DIR}`);
    for (const file of files) await importFile(a, room, path.join(LABELME_BBOX_DIR, file));

    const snapshot = await httpSnapshot(b, room);
    const items = snapshot.objects.filter((o) => o.kind === 'item');
    const categories = new Map(snapshot.objects.filter((o) => o.kind === 'category').map((o) => [o.id, o]));
    const boxes = snapshot.objects.filter((o) => o.kind === 'bbox');
    const labelName = (o) => categories.get(o.fields.label)?.fields.name ?? o.fields.label;

    for (const file of files) {
      const doc = JSON.parse(fs.readFileSync(path.join(LABELME_BBOX_DIR, file), 'utf8'));
      const item = items.find((o) => o.fields.file_name === doc.imagePath ||
        path.basename(String(o.fields.file_name)) === path.basename(doc.imagePath));
      assert.ok(item, `no item object for ${doc.imagePath} of ${file}; items: ${JSON.stringify(items.map((o) => o.fields))}`);
      assert.equal(item.fields.width, doc.imageWidth, `width of item ${doc.imagePath}`);
      assert.equal(item.fields.height, doc.imageHeight, `height of item ${doc.imagePath}`);

      const itemBoxes = boxes.filter((o) => o.fields.item === item.id);
      const rectangles = doc.shapes.filter((s) => s.shape_type === 'rectangle');
      assert.equal(itemBoxes.length, rectangles.length, `bbox objects on item ${doc.imagePath}`);
      const unmatched = [...itemBoxes];
      for (const shape of rectangles) {
        const [[x1, y1], [x2, y2]] = shape.points;
        const expected = [Math.min(x1, x2), Math.min(y1, y2), Math.abs(x2 - x1), Math.abs(y2 - y1)];
        const index = unmatched.findIndex((o) => labelName(o) === shape.label &&
          Array.isArray(o.fields.geometry) && o.fields.geometry.length === 4 &&
          o.fields.geometry.every((v, i) => Math.abs(v - expected[i]) < 1e-6));
        assert.ok(index >= 0, `no bbox ${JSON.stringify(expected)} labelled ${shape.label} on item ${doc.imagePath}; ` +
          `boxes: ${JSON.stringify(unmatched.map((o) => o.fields))}`);
        unmatched.splice(index, 1);
      }
    }

    // Every box exports to COCO, under one category per label.
    const exported = await env.runCli(['export', '--url', b.wsUrl, '--room', room, '--format', 'coco']);
    assert.equal(exported.code, 0, describeRun('export of the labelme room', exported));
    const coco = JSON.parse(exported.stdout);
    const shapes = files.flatMap((file) => JSON.parse(fs.readFileSync(path.join(LABELME_BBOX_DIR, file), 'utf8')).shapes);
    assert.equal(coco.annotations.length, shapes.length);
    assert.deepEqual(coco.categories.map((c) => c.name).sort(), [...new Set(shapes.map((s) => s.label))].sort());
  }));

  test('HTTP snapshot of empty and invalid rooms', { timeout: 30000 }, env.wrap(async () => {
    const empty = await fetchJson(`${b.httpUrl}/v1/rooms/never-edited/snapshot`);
    assert.equal(empty.status, 200, empty.text);
    assert.equal(empty.body.room, 'never-edited', empty.text);
    assert.equal(empty.body.seq, 0, empty.text);
    assert.deepEqual(empty.body.objects, [], empty.text);

    const invalid = await fetchJson(`${b.httpUrl}/v1/rooms/bad%20room/snapshot`);
    assert.equal(invalid.status, 400, invalid.text);
    assert.equal(typeof invalid.body?.error?.code, 'string', `error body: ${invalid.text}`);
    assert.equal(typeof invalid.body?.error?.message, 'string', `error body: ${invalid.text}`);
  }));
});
