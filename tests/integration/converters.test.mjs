// Imports the CVAT and Label Studio samples with the command-line tool into a
// real server and checks the rooms' objects by kind against counts taken from
// the raw files.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { REPO, SHARED_DATA, TestEnv, describeRun, httpSnapshot } from './harness.mjs';

const COUNTS_MODULE = path.join(REPO, 'client-js', 'test-support', 'counts.js');
const { cvatCounts, kindCounts, labelStudioCounts } = await import(pathToFileURL(COUNTS_MODULE).href);

const CVAT = path.join(SHARED_DATA, 'cvat_annotations.json');
const LS_BBOX = path.join(SHARED_DATA, 'labelstudio_bbox_200.json');
const LS_MIXED = path.join(SHARED_DATA, 'labelstudio_mixed_tools.json');
const CLI_TIMEOUT_MS = 120000;

const env = new TestEnv('converters');
let a;

before(async () => {
  await env.init();
  await env.startRedis();
  a = await env.startInstance('a');
}, { timeout: 60000 });

after(async () => {
  await env.cleanup();
}, { timeout: 120000 });

/** Returns the skip option for a test that reads a sample file. */
function needs(file) {
  return fs.existsSync(file) ? false : `${file} is absent; the shared data folder is not in this checkout`;
}

async function importInto(room, args) {
  const result = await env.runCli(['import', '--url', a.wsUrl, '--room', room, ...args], { timeoutMs: CLI_TIMEOUT_MS });
  assert.equal(result.code, 0, describeRun(`import ${args.join(' ')} into ${room}`, result));
  return result;
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

function maskShapes(data) {
  let count = 0;
  for (const dumps of Object.values(data)) {
    for (const dump of Object.values(dumps)) count += dump.shapes.filter((s) => s.type === 'mask').length;
  }
  return count;
}

describe('CVAT and Label Studio import', () => {
  test('CVAT sample with an image size', { skip: needs(CVAT), timeout: 180000 }, env.wrap(async () => {
    const result = await importInto('cvat-sized', ['--format', 'cvat', '--image-size', '800x600', CVAT]);
    assert.doesNotMatch(result.stderr, /not converted/, 'every element converts when the image size is known');
    const snapshot = await httpSnapshot(a, 'cvat-sized');
    assert.deepStrictEqual(kindCounts(snapshot.objects), cvatCounts(readJson(CVAT)));

    const masks = snapshot.objects.filter((o) => o.kind === 'mask');
    assert.ok(masks.length > 0);
    for (const mask of masks) assert.deepStrictEqual(mask.fields.geometry.size, [600, 800], `size of ${mask.id}`);
    const box = snapshot.objects.find((o) => o.id === 'cvat:job:17:shape:34');
    assert.deepStrictEqual(box.fields.geometry, [106.361328125, 85.150390625, 133.72265625, 156.11328125]);
    assert.equal(box.fields.rotation, 45.9);
  }));

  test('CVAT sample with labels and data meta', { skip: needs(CVAT), timeout: 180000 }, env.wrap(async () => {
    const labelsFile = path.join(env.dir, 'cvat-labels.json');
    const metaFile = path.join(env.dir, 'cvat-meta.json');
    const labels = [{ id: 67, name: 'car', attributes: [{ id: 13, name: 'model' }, { id: 14, name: 'doors' }] }];
    fs.writeFileSync(labelsFile, JSON.stringify({ count: 1, results: labels }));
    const frames = [{ name: 'a.png', width: 800, height: 600 }, { name: 'b.png', width: 800, height: 600 }];
    fs.writeFileSync(metaFile, JSON.stringify({ chunk_size: 72, frames }));

    const result = await importInto('cvat-meta', ['--cvat-labels', labelsFile, '--cvat-meta', metaFile, CVAT]);
    assert.doesNotMatch(result.stderr, /not converted/, 'every mask is on frame 0 or 1, whose sizes are known');
    const snapshot = await httpSnapshot(a, 'cvat-meta');
    const ellipse = snapshot.objects.find((o) => o.id === 'cvat:job:28:shape:125');
    assert.equal(ellipse.fields.label, 'car');
    assert.deepStrictEqual(ellipse.fields.attrs, { model: 'yy', doors: '1' });
    const item = snapshot.objects.find((o) => o.id === ellipse.fields.item);
    assert.deepStrictEqual([item.fields.file_name, item.fields.width, item.fields.height], ['b.png', 800, 600]);
    const category = snapshot.objects.find((o) => o.id === 'cvat:label:67');
    assert.equal(category.fields.name, 'car');
  }));

  test('CVAT sample without image sizes lists its masks', { skip: needs(CVAT), timeout: 180000 }, env.wrap(async () => {
    const data = readJson(CVAT);
    // Detected from the content, without --format.
    const result = await importInto('cvat-unsized', [CVAT]);
    assert.match(result.stderr, new RegExp(`${maskShapes(data)} input elements were not converted, or only in part`));
    const snapshot = await httpSnapshot(a, 'cvat-unsized');
    assert.deepStrictEqual(kindCounts(snapshot.objects), cvatCounts(data));
    for (const mask of snapshot.objects.filter((o) => o.kind === 'mask')) {
      assert.equal(mask.fields.geometry, undefined);
      assert.ok(Array.isArray(mask.fields.cvat_points), `${mask.id} keeps CVAT's points`);
    }
  }));

  test('Label Studio samples', { skip: needs(LS_BBOX) || needs(LS_MIXED), timeout: 180000 }, env.wrap(async () => {
    // Both files are task 1 of their projects, so they go to two rooms.
    for (const [room, file] of [['ls-bbox', LS_BBOX], ['ls-mixed', LS_MIXED]]) {
      const result = await importInto(room, [file]);
      assert.doesNotMatch(result.stderr, /not converted/, `${file} converts in full`);
      const snapshot = await httpSnapshot(a, room);
      assert.deepStrictEqual(kindCounts(snapshot.objects), labelStudioCounts(readJson(file)), `objects of ${file}`);
    }

    const bbox = await httpSnapshot(a, 'ls-bbox');
    const predictions = bbox.objects.filter((o) => o.fields.source === 'auto');
    assert.equal(predictions.length, 2);
    const box = bbox.objects.find((o) => o.id === 'ls:task:1:ann:1001:Dx_aB91ISN');
    const expected = [576.9413333333334, 693.7716115261474, 278.008, 293.0586979722519];
    box.fields.geometry.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-9, `geometry ${box.fields.geometry}`));

    const mixed = await httpSnapshot(a, 'ls-mixed');
    const mask = mixed.objects.find((o) => o.kind === 'mask');
    assert.deepStrictEqual(mask.fields.geometry.size, [2802, 2242]);
    const relation = mixed.objects.find((o) => o.kind === 'relation');
    assert.ok(mixed.objects.some((o) => o.id === relation.fields.from), 'a relation names an imported object');

    // The msgpack encoding carries the same objects.
    await importInto('ls-mixed-msgpack', ['--encoding', 'msgpack', LS_MIXED]);
    const packed = await httpSnapshot(a, 'ls-mixed-msgpack');
    assert.deepStrictEqual(kindCounts(packed.objects), labelStudioCounts(readJson(LS_MIXED)));
    const packedMask = packed.objects.find((o) => o.kind === 'mask');
    assert.deepStrictEqual(packedMask.fields.geometry, mask.fields.geometry);
  }));
});
