import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { cvatToOps, isCvat } from '../src/cvat.js';
import { isLabelme } from '../src/labelme.js';
import { parse } from '../src/json.js';
import { rleStats, rleToBitmap } from '../src/rle.js';
import { cvatCounts, kindCounts } from '../test-support/counts.js';
import { SHARED_DATA, skipUnless } from '../test-support/data.js';

const SAMPLE = `${SHARED_DATA}cvat_annotations.json`;

function load() {
  return parse(readFileSync(SAMPLE, 'utf8'));
}

test('sample imports with the counts the file holds', { skip: skipUnless(SAMPLE) }, () => {
  const data = load();
  assert.ok(isCvat(data));
  const { ops, skipped } = cvatToOps(data);
  assert.deepStrictEqual(kindCounts(ops), cvatCounts(data));
  assert.equal(new Set(ops.map((op) => op.id)).size, ops.length, 'ids are unique');
  assert.ok(ops.every((op) => op.op === 'create'));
  // Categories and items come first, so the annotations can refer to them.
  const firstAnnotation = ops.findIndex((op) => op.kind !== 'category' && op.kind !== 'item');
  assert.ok(ops.slice(firstAnnotation).every((op) => op.kind !== 'category' && op.kind !== 'item'));

  // Without image sizes only the masks are listed, and they keep CVAT's points exactly.
  const masks = ops.filter((op) => op.kind === 'mask');
  assert.equal(skipped.length, masks.length);
  for (const mask of masks) {
    assert.equal(mask.fields.geometry, undefined);
    const [section, id, , shapeId] = mask.id.split(':').slice(1);
    const shape = data[section][id].shapes.find((s) => String(s.id) === shapeId);
    assert.equal(mask.fields.cvat_points, shape.points);
    assert.ok(skipped.some((s) => s.where === `${section} ${id} shape ${shapeId}` && /image size of frame 0|frame 1 is unknown/.test(s.reason)));
  }
});

test('boxes and ellipses land on their pixels', { skip: skipUnless(SAMPLE) }, () => {
  const { ops } = cvatToOps(load());
  const byId = new Map(ops.map((op) => [op.id, op]));
  // Rectangle 34 of job 17: points 106.361328125, 85.150390625 to 240.083984375, 241.263671875.
  const box = byId.get('cvat:job:17:shape:34');
  assert.equal(box.kind, 'bbox');
  assert.deepStrictEqual(box.fields.geometry.map(Number), [106.361328125, 85.150390625, 133.72265625, 156.11328125]);
  assert.equal(Number(box.fields.rotation), 45.9);
  assert.equal(box.fields.item, 'cvat:job:17:frame:0');
  assert.equal(box.fields.label_id, 16);
  // Ellipse 125 of job 28: center 359.22314453125, 57.5439453125; corner 381.7900390625, 37.9365234375.
  const ellipse = byId.get('cvat:job:28:shape:125');
  assert.deepStrictEqual(ellipse.fields.geometry.map(Number), [359.22314453125, 57.5439453125, 22.56689453125, 19.607421875]);
  assert.equal(ellipse.fields.frame, 1);
  assert.deepStrictEqual(ellipse.fields.attrs, { 13: 'yy', 14: '1' });
  const cuboid = byId.get('cvat:job:28:shape:126');
  assert.equal(cuboid.fields.geometry.length, 16);
  const tag = byId.get('cvat:job:28:tag:7');
  assert.equal(tag.kind, 'tag');
  assert.equal(tag.fields.geometry, undefined);
});

test('skeletons keep their elements', { skip: skipUnless(SAMPLE) }, () => {
  const { ops } = cvatToOps(load());
  const skeleton = ops.find((op) => op.id === 'cvat:job:28:shape:131');
  assert.equal(skeleton.kind, 'skeleton');
  // Elements sorted by label id 69..72; 71 is outside (v 0), the others occluded (v 1).
  assert.deepStrictEqual(skeleton.fields.elements.map((e) => [e.label_id, e.cvat_id, e.outside, e.occluded]), [
    [69, 133, false, true], [70, 134, false, true], [71, 135, true, false], [72, 136, false, true],
  ]);
  assert.deepStrictEqual(skeleton.fields.geometry.map(Number), [
    694.826171875, 75.810546875, 1, 741.2801300238552, 102.21971169729295, 1,
    695.9322103203158, 102.5765956792493, 0, 697.5912898439183, 126.84447272867328, 1,
  ]);
});

test('skeleton tracks keep every keyframe', { skip: skipUnless(SAMPLE) }, () => {
  const { ops } = cvatToOps(load());
  const frames = ops.filter((op) => op.fields.track === 'cvat:job:18:track:1');
  assert.deepStrictEqual(frames.map((op) => op.fields.frame), [0, 3]);
  const [first, last] = frames;
  assert.equal(first.fields.keyframe, true);
  assert.equal(last.fields.keyframe, false, 'the skeleton itself has a keyframe only on frame 0');
  assert.ok(last.fields.elements.every((e) => e.keyframe), 'every element has a keyframe on frame 3');
  assert.deepStrictEqual(last.fields.geometry.slice(0, 3).map(Number), [137.0966796875, 156.11214469590232, 2]);
  assert.equal(last.fields.item, 'cvat:job:18:frame:3');
  assert.deepStrictEqual(first.fields.attrs, { 2: 'white' });
});

const SMALL = {
  version: 0,
  tags: [],
  shapes: [
    // A 3x2 box at left 2, top 1, row by row: 0 1 1 / 1 0 0.
    { id: 1, type: 'mask', frame: 0, label_id: 5, group: 0, source: 'manual', attributes: [], occluded: false, outside: false, z_order: 0, rotation: 0.0, points: [1, 3, 2, 2, 1, 4, 2] },
    { id: 2, type: 'mask', frame: 0, label_id: 5, points: [1, 3, 2, 5, 1, 7, 2] },
    { id: 3, type: 'brush', frame: 0, label_id: 5, points: [] },
    { id: 4, type: 'rectangle', frame: 0, label_id: 6, attributes: [{ spec_id: 9, value: 'red' }], points: [1, 2, 3], rotation: 0 },
    { id: 5, type: 'rectangle', frame: 1, label_id: 6, attributes: [{ spec_id: 9, value: 'red' }], points: [1, 2, 4, 6], rotation: 0, score: 0.5 },
  ],
  tracks: [{
    id: 7, frame: 0, label_id: 6, group: 3, source: 'auto', attributes: [{ spec_id: 10, value: 'x' }],
    shapes: [
      { id: 8, type: 'rectangle', frame: 0, points: [0, 0, 2, 2], outside: false, occluded: false, attributes: [] },
      { id: 9, type: 'rectangle', frame: 4, points: [1, 1, 3, 3], outside: true, occluded: true, attributes: [{ spec_id: 11, value: 'y' }] },
    ],
  }],
};

const LABELS = [{ id: 6, name: 'car', attributes: [{ id: 9, name: 'color' }, { id: 10, name: 'kind' }] }, { id: 5, name: 'road' }];

test('masks become COCO RLE over the image when its size is known', () => {
  const { ops, skipped } = cvatToOps(SMALL, { name: 'small.json', imageSize: { width: 5, height: 4 } });
  const mask = ops.find((op) => op.id === 'cvat:small:shape:1');
  assert.deepStrictEqual(mask.fields.geometry.size, [4, 5]);
  const { bits } = rleToBitmap(mask.fields.geometry);
  const set = [];
  for (let x = 0; x < 5; x++) for (let y = 0; y < 4; y++) if (bits[x * 4 + y]) set.push([x, y]);
  assert.deepStrictEqual(set, [[2, 2], [3, 1], [4, 1]]);
  assert.deepStrictEqual(rleStats(mask.fields.geometry), { area: 3, bbox: [2, 1, 3, 2] });
  const reasons = Object.fromEntries(skipped.map((s) => [s.where, s.reason]));
  assert.match(reasons['small shape 2'], /box 5,1 to 7,2 does not fit the 5x4 image/);
  assert.match(reasons['small shape 3'], /type "brush" has no annolive kind/);
  assert.match(reasons['small shape 4'], /points are not \[x1, y1, x2, y2\]/);
  assert.equal(skipped.length, 3);
});

test('track keyframes keep outside, and labels name things', () => {
  const { ops, skipped } = cvatToOps(SMALL, { name: 'small.json', labels: LABELS });
  assert.equal(skipped.length, 4, 'masks without size, brush, bad rectangle');
  const track = ops.filter((op) => op.fields.track === 'cvat:small:track:7');
  assert.deepStrictEqual(track.map((op) => [op.id, op.kind, op.fields.frame, op.fields.outside, op.fields.occluded, op.fields.keyframe]), [
    ['cvat:small:track:7:frame:0', 'bbox', 0, false, false, true],
    ['cvat:small:track:7:frame:4', 'bbox', 4, true, true, true],
  ]);
  assert.deepStrictEqual(track[1].fields.geometry, [1, 1, 2, 2]);
  assert.deepStrictEqual(track[1].fields.attrs, { kind: 'x', 11: 'y' });
  assert.equal(track[1].fields.label, 'car');
  assert.equal(track[1].fields.group, 3);
  assert.equal(track[1].fields.cvat_source, 'auto');

  const box = ops.find((op) => op.id === 'cvat:small:shape:5');
  assert.deepStrictEqual(box.fields.attrs, { color: 'red' });
  assert.equal(box.fields.cvat_score, 0.5);
  assert.equal(box.fields.rotation, undefined);
  const categories = ops.filter((op) => op.kind === 'category').map((op) => [op.id, op.fields.name]);
  assert.deepStrictEqual(categories, [['cvat:label:5', 'road'], ['cvat:label:6', 'car']]);
  const items = ops.filter((op) => op.kind === 'item').map((op) => op.fields.frame);
  assert.deepStrictEqual(items.sort(), [0, 1, 4]);
});

test('CVAT detection', () => {
  assert.ok(isCvat(SMALL));
  assert.ok(isCvat({ job: { 1: SMALL }, task: { 2: SMALL } }));
  assert.ok(!isCvat({ shapes: [], imagePath: 'a.jpg' }));
  assert.ok(!isCvat({ job: { 1: { shapes: [] } } }));
  assert.ok(isLabelme(SMALL), 'a CVAT dump also has the shapes of labelme files; the CLI tells them apart');
  assert.throws(() => cvatToOps({ shapes: [] }), /not CVAT annotations/);
});
