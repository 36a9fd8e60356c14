import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { cocoToOps, objectsToCoco } from '../src/coco.js';
import { JsonFloat, parse, stringify } from '../src/json.js';
import { LABELME_EXAMPLES, SHARED_DATA, skipUnless } from '../test-support/data.js';

const VAL2014 = `${SHARED_DATA}coco_instances_val2014_100.json`;
const LABELME_COCO = `${LABELME_EXAMPLES}instance_segmentation/data_dataset_coco/annotations.json`;

/** Returns the snapshot objects a server would hold after applying the create ops. */
function applyCreates(ops) {
  // The round trip through the lossless codec replaces the server, which receives the fields and sends them back.
  return ops.map((op) => ({ id: op.id, kind: op.kind, vv: { importer: 1 }, fields: parse(stringify(op.fields ?? {})) }));
}

function sortedById(elements) {
  return [...elements].sort((a, b) => Number(a.id) - Number(b.id));
}

function checkRoundTrip(file) {
  const input = parse(readFileSync(file, 'utf8'));
  const { coco, skipped } = objectsToCoco(applyCreates(cocoToOps(input)));
  assert.deepStrictEqual(skipped, []);
  assert.deepStrictEqual(coco.info, input.info);
  assert.deepStrictEqual(coco.licenses, input.licenses);
  assert.deepStrictEqual(coco.categories, sortedById(input.categories));
  assert.deepStrictEqual(coco.images, sortedById(input.images));
  assert.deepStrictEqual(coco.annotations, sortedById(input.annotations));
  assert.deepStrictEqual(Object.keys(coco).sort(), Object.keys(input).sort());
  return { input, coco };
}

test('val2014 sample round-trips through objects', { skip: skipUnless(VAL2014) }, () => {
  const { coco } = checkRoundTrip(VAL2014);
  assert.equal(coco.images.length, 100);
  assert.equal(coco.annotations.length, 839);
  assert.equal(coco.categories.length, 80);
});

test('val2014 sample keeps float notation', { skip: skipUnless(VAL2014) }, () => {
  const text = readFileSync(VAL2014, 'utf8');
  const { coco } = checkRoundTrip(VAL2014);
  // The first polygon in the file starts with 321.02, 321.0: the second is a float with an integer value.
  const first = parse(text).annotations[0];
  const exported = coco.annotations.find((a) => a.id === first.id);
  assert.ok(exported.segmentation[0][1] instanceof JsonFloat);
  assert.ok(stringify(exported.segmentation).startsWith('[[321.02,321.0,'));
});

test('labelme COCO file round-trips', { skip: skipUnless(LABELME_COCO) }, () => {
  const { input, coco } = checkRoundTrip(LABELME_COCO);
  // This file has a top-level "type" member besides the standard ones.
  assert.equal(coco.type, input.type);
  assert.ok(coco.annotations[0].area instanceof JsonFloat);
});

test('val2014 sample maps to kinds and ids', { skip: skipUnless(VAL2014) }, () => {
  const input = parse(readFileSync(VAL2014, 'utf8'));
  const ops = cocoToOps(input);
  const kinds = {};
  for (const op of ops) kinds[op.kind] = (kinds[op.kind] ?? 0) + 1;
  assert.deepStrictEqual(kinds, { tag: 1, category: 80, item: 100, polygon: 830, mask: 9 });
  assert.ok(ops.every((op) => op.op === 'create'));
  assert.equal(new Set(ops.map((op) => op.id)).size, ops.length);

  const dataset = ops[0];
  assert.equal(dataset.id, 'coco:dataset');
  assert.deepStrictEqual(dataset.fields, { coco_info: input.info, coco_licenses: input.licenses });

  const category = ops.find((op) => op.id === 'coco:cat:1');
  assert.deepStrictEqual(category.fields, { supercategory: 'person', name: 'person', coco_id: 1 });

  const image = input.images[0];
  const item = ops.find((op) => op.id === `coco:img:${image.id}`);
  assert.equal(item.kind, 'item');
  assert.equal(item.fields.coco_id, image.id);
  assert.equal(item.fields.file_name, image.file_name);
  assert.equal(item.fields.id, undefined);
});

test('annotation fields name item and label', { skip: skipUnless(VAL2014) }, () => {
  const input = parse(readFileSync(VAL2014, 'utf8'));
  const ops = cocoToOps(input, { prefix: 'v:' });
  const crowd = input.annotations.find((a) => a.iscrowd === 1);
  const mask = ops.find((op) => op.id === `v:ann:${crowd.id}`);
  assert.equal(mask.kind, 'mask');
  assert.equal(mask.fields.geometry, crowd.segmentation);
  assert.equal(mask.fields.item, `v:img:${crowd.image_id}`);
  assert.equal(mask.fields.label, input.categories.find((c) => c.id === crowd.category_id).name);
  assert.equal(mask.fields.category_id, crowd.category_id);
  assert.equal(mask.fields.coco_id, crowd.id);
  assert.deepStrictEqual(mask.fields.bbox, crowd.bbox);
  assert.equal(mask.fields.area, crowd.area);
  assert.equal(mask.fields.iscrowd, 1);
  assert.equal(mask.fields.segmentation, undefined);
  assert.equal(mask.fields.image_id, undefined);
});

const SMALL = {
  images: [{ id: 7, file_name: 'a.jpg', width: 10, height: 10 }],
  categories: [{ id: 3, name: 'cat', supercategory: 'animal' }],
  annotations: [
    { id: 1, image_id: 7, category_id: 3, bbox: [1, 2, 3, 4], area: 12, iscrowd: 0, segmentation: [] },
    { id: 2, image_id: 7, category_id: 3, bbox: [0, 0, 2, 2], area: 4, iscrowd: 0, score: 0.5 },
  ],
};

test('annotation without rings becomes bbox', () => {
  const ops = cocoToOps(SMALL);
  const [withEmpty, without] = ops.slice(-2);
  assert.equal(withEmpty.kind, 'bbox');
  assert.deepStrictEqual(withEmpty.fields.geometry, [1, 2, 3, 4]);
  assert.deepStrictEqual(withEmpty.fields.segmentation, []);
  assert.equal(without.kind, 'bbox');
  assert.equal(without.fields.score, 0.5);
  const { coco, skipped } = objectsToCoco(applyCreates(ops));
  assert.deepStrictEqual(skipped, []);
  assert.deepStrictEqual(coco.annotations, SMALL.annotations);
  assert.equal('info' in coco, false);
});

test('cocoToOps rejects invalid input', () => {
  assert.throws(() => cocoToOps({ images: [] }), /not COCO instances JSON/);
  assert.throws(() => cocoToOps({ images: [{ file_name: 'x' }], annotations: [] }), /images\[0\] has no "id"/);
  assert.throws(() => cocoToOps({ images: [], annotations: [{ id: 1, image_id: 1 }] }), /neither a segmentation nor a bbox/);
  assert.throws(() => cocoToOps(SMALL, { prefix: 'x'.repeat(60) }), /shorter --prefix/);
});

test('objects without COCO form are skipped with reasons', () => {
  const objects = applyCreates(cocoToOps(SMALL));
  objects.push(
    { id: 'line-1', kind: 'polyline', vv: {}, fields: { item: 'coco:img:7', label: 'cat', geometry: [0, 0, 1, 1] } },
    { id: 'box-orphan', kind: 'bbox', vv: {}, fields: { item: 'nowhere', label: 'cat', geometry: [0, 0, 1, 1] } },
    { id: 'box-unlabeled', kind: 'bbox', vv: {}, fields: { item: 'coco:img:7', label: 'dog', geometry: [0, 0, 1, 1] } },
    { id: 'poly-bad', kind: 'polygon', vv: {}, fields: { item: 'coco:img:7', label: 'cat', geometry: [[0, 0, 1]] } },
    { id: 'note', kind: 'tag', vv: {}, fields: { text: 'check lighting' } },
  );
  const { coco, skipped } = objectsToCoco(objects);
  assert.equal(coco.annotations.length, 2);
  const reasons = Object.fromEntries(skipped.map((s) => [s.id, s.reason]));
  assert.deepStrictEqual(Object.keys(reasons).sort(), ['box-orphan', 'box-unlabeled', 'line-1', 'note', 'poly-bad']);
  assert.match(reasons['line-1'], /kind polyline has no COCO/);
  assert.match(reasons['box-orphan'], /item "nowhere" is not an exported item/);
  assert.match(reasons['box-unlabeled'], /label "dog"/);
  assert.match(reasons['poly-bad'], /not a list of \[x1, y1/);
});

test('new objects get ids, bbox and area', () => {
  const objects = applyCreates(cocoToOps(SMALL));
  objects.push(
    { id: 'p1', kind: 'polygon', vv: {}, fields: { item: 'coco:img:7', label: 'cat', geometry: [[0, 0, 4, 0, 4, 3, 0, 3]] } },
    { id: 'm1', kind: 'mask', vv: {}, fields: { item: 'coco:img:7', label: 'cat', geometry: { size: [4, 3], counts: [5, 2, 1, 3, 1] } } },
    { id: 'cat-new', kind: 'category', vv: {}, fields: { name: 'dog' } },
    { id: 'b1', kind: 'bbox', vv: {}, fields: { item: 'coco:img:7', label: 'dog', geometry: [1, 1, 2, 5] } },
  );
  const { coco, skipped } = objectsToCoco(objects);
  assert.deepStrictEqual(skipped, []);
  assert.deepStrictEqual(coco.categories.map((c) => [c.id, c.name]), [[3, 'cat'], [4, 'dog']]);
  const byId = Object.fromEntries(coco.annotations.map((a) => [a.id, a]));
  // Objects sort by id (b1, m1, p1) before they get the ids after the largest, 2.
  assert.deepStrictEqual(byId[3], { id: 3, image_id: 7, category_id: 4, area: 10, bbox: [1, 1, 2, 5], iscrowd: 0 });
  // The mask covers pixels 5-6 (column 1, rows 1-2) and 8-10 (column 2, rows 0-2) of a 4x3 image.
  assert.deepStrictEqual(byId[4].bbox, [1, 0, 2, 3]);
  assert.equal(byId[4].area, 5);
  assert.equal(byId[4].iscrowd, 1);
  assert.deepStrictEqual(byId[5].bbox, [0, 0, 4, 3]);
  assert.equal(byId[5].area, 12);
});

test('label wins over stale category_id', () => {
  const objects = applyCreates(cocoToOps({ ...SMALL, categories: [...SMALL.categories, { id: 9, name: 'dog' }] }));
  const box = objects.find((o) => o.id === 'coco:ann:2');
  box.fields.label = 'dog';
  const { coco } = objectsToCoco(objects);
  assert.equal(coco.annotations.find((a) => a.id === 2).category_id, 9);
});
