import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { isCoco } from '../src/coco.js';
import { parse } from '../src/json.js';
import { brushDecode, brushEncode, isLabelStudio, labelStudioToOps } from '../src/labelstudio.js';
import { rleStats, rleToBitmap } from '../src/rle.js';
import { kindCounts, labelStudioCounts } from '../test-support/counts.js';
import { SHARED_DATA, skipUnless } from '../test-support/data.js';

const BBOX_200 = `${SHARED_DATA}labelstudio_bbox_200.json`;
const MIXED = `${SHARED_DATA}labelstudio_mixed_tools.json`;

function load(file) {
  return parse(readFileSync(file, 'utf8'));
}

test('bbox sample imports with the counts the file holds', { skip: skipUnless(BBOX_200) }, () => {
  const task = load(BBOX_200);
  assert.ok(isLabelStudio(task));
  const { ops, skipped } = labelStudioToOps(task);
  assert.deepStrictEqual(kindCounts(ops), labelStudioCounts(task));
  assert.equal(kindCounts(ops).bbox, 202);
  assert.deepStrictEqual(skipped, []);
  assert.equal(new Set(ops.map((op) => op.id)).size, ops.length);
});

test('percent coordinates become pixels', { skip: skipUnless(BBOX_200) }, () => {
  const task = load(BBOX_200);
  const { ops } = labelStudioToOps(task);
  const item = ops.find((op) => op.kind === 'item');
  assert.equal(item.fields.width, 2242);
  assert.equal(item.fields.height, 2802);
  assert.equal(item.fields.file_name, task.data.image);
  // Region Dx_aB91ISN: x 25.7333.. %, y 24.7598.. %, w 12.4 %, h 10.4589.. % of 2242 x 2802.
  const box = ops.find((op) => op.id === 'ls:task:1:ann:1001:Dx_aB91ISN');
  const expected = [576.9413333333334, 693.7716115261474, 278.008, 293.0586979722519];
  box.fields.geometry.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-9, `geometry[${i}] ${v}`));
  assert.equal(box.fields.label, 'Moonwalker');
  assert.equal(box.fields.item, item.id);
  for (const [index, result] of task.annotations[0].result.entries()) {
    const op = ops.find((o) => o.fields.ls_id === result.id && o.id.includes(':ann:'));
    const { x, y, width, height } = result.value;
    const pixels = [x * 22.42, y * 28.02, width * 22.42, height * 28.02];
    op.fields.geometry.forEach((v, i) => assert.ok(Math.abs(v - pixels[i]) < 1e-6, `result ${index} geometry[${i}]`));
  }
});

test('predictions are auto objects with their model', { skip: skipUnless(BBOX_200) }, () => {
  const task = load(BBOX_200);
  const { ops } = labelStudioToOps(task);
  const predictions = ops.filter((op) => op.id.includes(':pred:'));
  assert.deepStrictEqual(predictions.map((op) => [op.id, op.fields.source, op.fields.model]), [
    ['ls:task:1:pred:0:t5sp3TyXPo', 'auto', 'model 1'],
    ['ls:task:1:pred:1:t5sp3TyXPo', 'auto', 'model 2'],
  ]);
  // The predictions carry no original size: the size of the same image in the annotation serves.
  assert.ok(Math.abs(predictions[0].fields.geometry[0] - 13.2 * 22.42) < 1e-9);
  // This file has no scores, so the objects have none.
  assert.ok(predictions.every((op) => op.fields.score === undefined));

  const scored = structuredClone(task);
  scored.predictions[0].score = 0.75;
  scored.predictions[1].result[0].score = 0.5;
  const withScores = labelStudioToOps(scored).ops.filter((op) => op.id.includes(':pred:'));
  assert.deepStrictEqual(withScores.map((op) => op.fields.score), [0.75, 0.5]);
});

test('mixed tools sample imports every region', { skip: skipUnless(MIXED) }, () => {
  const task = load(MIXED);
  const { ops, skipped } = labelStudioToOps(task);
  assert.deepStrictEqual(kindCounts(ops), labelStudioCounts(task));
  assert.deepStrictEqual(skipped, []);
  const byId = new Map(ops.map((op) => [op.id, op]));

  // The rectangle kuZf2E5DRQ has its shape and its label in two results.
  const rect = byId.get('ls:task:1:ann:1001:kuZf2E5DRQ');
  assert.equal(rect.kind, 'bbox');
  assert.equal(rect.fields.label, 'Moonwalker');
  assert.ok(Math.abs(rect.fields.geometry[0] - 48.26666666666667 * 22.42) < 1e-9);

  const ellipse = byId.get('ls:task:1:ann:1001:YnhRme7NvX');
  const [cx, cy, rx, ry] = ellipse.fields.geometry;
  assert.ok(Math.abs(cx - 62.933333333333366 * 22.42) < 1e-9, `cx ${cx}`);
  assert.ok(Math.abs(cy - 38.36712913553899 * 28.02) < 1e-9, `cy ${cy}`);
  assert.ok(Math.abs(rx - 14.666666666666679 * 22.42) < 1e-9, `rx ${rx}`);
  assert.ok(Math.abs(ry - 4.322305229455678 * 28.02) < 1e-9, `ry ${ry}`);

  const point = byId.get('ls:task:1:ann:1001:VGt7HG67jC');
  assert.equal(point.kind, 'points');
  assert.deepStrictEqual(point.fields.ls_value, { width: 0.26666666666666666 });

  const polygon = byId.get('ls:task:1:ann:1001:3-21_8nfMb');
  assert.equal(polygon.fields.geometry[0].length, 8);
  assert.ok(Math.abs(polygon.fields.geometry[0][1] - 69.15688367129135 * 28.02) < 1e-9);

  const relations = ops.filter((op) => op.kind === 'relation');
  assert.deepStrictEqual(relations.map((op) => [op.fields.from, op.fields.to, op.fields.direction]), [
    ['ls:task:1:ann:1001:wkl8d6uPq5', 'ls:task:1:ann:1001:kuZf2E5DRQ', 'right'],
    ['ls:task:1:ann:1001:YnhRme7NvX', 'ls:task:1:ann:1001:3-21_8nfMb', 'right'],
  ]);
});

test('brush masks decode to COCO RLE', { skip: skipUnless(MIXED) }, () => {
  const task = load(MIXED);
  const { ops } = labelStudioToOps(task);
  const mask = ops.find((op) => op.kind === 'mask');
  assert.equal(mask.fields.label, 'Planet');
  assert.deepStrictEqual(mask.fields.geometry.size, [2802, 2242]);

  // Independently of the converter: the set pixels are those whose alpha byte is not 0.
  const brush = task.annotations[0].result.find((r) => r.type === 'brush');
  const rgba = brushDecode(brush.value.rle);
  assert.equal(rgba.length, 2242 * 2802 * 4);
  const { bits } = rleToBitmap(mask.fields.geometry);
  let area = 0;
  for (let i = 0; i < 2242 * 2802; i++) {
    const set = rgba[i * 4 + 3] !== 0;
    if (set) area++;
    const x = i % 2242;
    const y = Math.floor(i / 2242);
    if (set !== (bits[x * 2802 + y] === 1)) assert.fail(`pixel ${x},${y} differs`);
  }
  assert.ok(area > 0);
  assert.equal(rleStats(mask.fields.geometry).area, area);

  // Encoding the decoded bytes again gives the same bytes back.
  assert.deepStrictEqual(brushDecode(brushEncode(rgba)), rgba);
});

test('brush RLE round-trips and rejects bad data', () => {
  const values = Uint8Array.from([0, 0, 0, 255, 255, 255, 255, 7, 0, 0]);
  assert.deepStrictEqual(brushDecode(brushEncode(values)), values);
  const long = new Uint8Array(200000).fill(255, 1000, 150000);
  assert.deepStrictEqual(brushDecode(brushEncode(long)), long);
  assert.throws(() => brushDecode([0, 0]), /ends early/);
  assert.throws(() => brushDecode([0, 0, 0, 1, 256]), /256 is not a byte/);
  // Count 1, word size 8, run sizes 1: a literal chunk of length 2 overflows the count.
  assert.throws(() => brushDecode([0, 0, 0, 1, 0x38, 0, 0x02, 0xff, 0xff]), /past the count 1/);
});

function task(results, extra = {}) {
  return { id: 7, data: { image: 'a.jpg' }, annotations: [{ id: 1, result: results }], ...extra };
}

function region(id, type, value, more = {}) {
  return { id, type, value, from_name: 'f', to_name: 'img', original_width: 100, original_height: 50, image_rotation: 0, ...more };
}

test('rotated rectangles turn around their center', () => {
  // Label Studio turns the box 20 x 10 px by 90 degrees around its corner (10, 10): its center
  // goes to (5, 20), so the unrotated box with that center starts at (-5, 15).
  const { ops } = labelStudioToOps(task([region('r', 'rectanglelabels', { x: 10, y: 20, width: 20, height: 20, rotation: 90, rectanglelabels: ['a'] })]));
  const box = ops.find((op) => op.kind === 'bbox');
  const expected = [-5, 15, 20, 10];
  box.fields.geometry.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-9, `geometry ${box.fields.geometry}`));
  assert.equal(box.fields.rotation, 90);
});

test('choices, text spans and unsupported results', () => {
  const { ops, skipped } = labelStudioToOps(task([
    { id: 'c', type: 'choices', from_name: 'class', to_name: 'img', value: { choices: ['night'] } },
    { id: 's', type: 'labels', from_name: 'ner', to_name: 'text', value: { start: 3, end: 9, text: 'Berlin', labels: ['City'] } },
    region('bad', 'polygonlabels', { points: [[1, 2]], polygonlabels: ['a'] }),
    region('turned', 'rectanglelabels', { x: 1, y: 1, width: 1, height: 1 }, { image_rotation: 90 }),
    { type: 'relation', from_id: 'c', to_id: 'missing', direction: 'right' },
    { id: 'v', type: 'videorectangle', to_name: 'video', value: { sequence: [], framesCount: 10 } },
  ]));
  const byId = new Map(ops.map((op) => [op.fields.ls_id, op]));
  assert.equal(byId.get('c').kind, 'tag');
  assert.equal(byId.get('c').fields.label, 'night');
  assert.equal(byId.get('s').kind, 'span');
  assert.deepStrictEqual(byId.get('s').fields.geometry, [3, 9]);
  assert.deepStrictEqual(byId.get('s').fields.ls_value, { text: 'Berlin' });
  const reasons = skipped.map((s) => `${s.where}: ${s.reason}`);
  assert.equal(reasons.length, 4, reasons.join('\n'));
  assert.match(reasons[0], /region bad: .*not at least 3 \[x, y\] pairs/);
  assert.match(reasons[1], /region turned: its image_rotation 90 is not supported/);
  assert.match(reasons[2], /region v: .*no position, choices or text/);
  assert.match(reasons[3], /relation 0: its region "missing" is not an imported object/);
});

test('Label Studio detection', () => {
  assert.ok(isLabelStudio([task([])]));
  assert.ok(isLabelStudio({ predictions: [{ result: [] }] }));
  assert.ok(!isLabelStudio([]));
  const coco = { images: [], annotations: [{ id: 1, bbox: [0, 0, 1, 1] }], categories: [] };
  assert.ok(isCoco(coco));
  assert.ok(!isLabelStudio(coco));
  assert.ok(!isLabelStudio({ annotations: [{ id: 1 }] }));
});
