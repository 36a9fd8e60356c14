import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { cocoToOps, objectsToCoco } from '../src/coco.js';
import { parse, stringify } from '../src/json.js';
import { rleFromBitmap, rleFromString, rleParse, rleStats, rleToBitmap, rleToString } from '../src/rle.js';
import { SHARED_DATA, skipUnless } from '../test-support/data.js';

const VAL2014 = `${SHARED_DATA}coco_instances_val2014_100.json`;

function crowdAnnotations() {
  return parse(readFileSync(VAL2014, 'utf8')).annotations.filter((a) => a.iscrowd === 1);
}

// Worked by hand from the format. Each value is written in 5-bit groups, low group first,
// plus 48. Bit 0x20 marks a following group and bit 0x10 of the last group is the sign.
// Counts from the fourth on are stored as the difference to the count two places before.
const STRING_VECTORS = [
  [[5, 2, 1, 3, 1], '52110'], // 3 - 2 = 1 and 1 - 1 = 0
  [[0, 10, 3, 2], '0:3H'], // 2 - 10 = -8: group 24 (sign set), character 72
  [[100], 'T3'], // 100 = 4 + 3 * 32: 4 | 0x20 = 36, then 3
];

test('compressed counts match hand-worked strings', () => {
  for (const [counts, text] of STRING_VECTORS) {
    assert.equal(rleToString(counts), text, `encode ${counts}`);
    assert.deepStrictEqual(rleFromString(text), counts, `decode ${text}`);
  }
});

test('invalid compressed counts are errors', () => {
  assert.throws(() => rleFromString('5 2'), /invalid character at 1/);
  assert.throws(() => rleFromString('T'), /end inside a value/);
  // 'O' is the group 31 with the sign bit and no continuation: -1, a negative run length.
  assert.throws(() => rleFromString('O'), /invalid run length -1/);
  assert.throws(() => rleParse({ size: [2, 2], counts: [1, 2] }), /add up to 3 pixels, but size 2x2 has 4/);
  assert.throws(() => rleParse({ size: [2], counts: [2] }), /size is not \[height, width\]/);
  assert.throws(() => rleParse({ size: [1, 1], counts: [0.5, 0.5] }), /neither a list of non-negative integers/);
  assert.equal(rleStats({ size: [2, 2], counts: 'T3' }), undefined);
});

test('crowd masks: stats agree with the file and the bitmap', { skip: skipUnless(VAL2014) }, () => {
  const crowd = crowdAnnotations();
  assert.equal(crowd.length, 9);
  for (const annotation of crowd) {
    const rle = annotation.segmentation;
    const stats = rleStats(rle);
    // The file's crowd bboxes span coordinates (max - min); rleStats counts pixels, one more.
    const [x, y, w, h] = annotation.bbox.map(Number);
    assert.deepStrictEqual(stats.bbox, [x, y, w + 1, h + 1], `bbox of annotation ${annotation.id}`);
    const { bits } = rleToBitmap(rle);
    assert.equal(stats.area, bits.reduce((sum, bit) => sum + bit, 0), `area of annotation ${annotation.id}`);

    const text = rleToString(rle.counts);
    assert.deepStrictEqual(rleFromString(text), rle.counts.map(Number), `string round trip of ${annotation.id}`);
    assert.deepStrictEqual(rleStats({ size: rle.size, counts: text }), stats);
  }
});

test('bitmaps round-trip through RLE', { skip: skipUnless(VAL2014) }, () => {
  for (const annotation of crowdAnnotations()) {
    const rle = annotation.segmentation;
    const { bits, height, width } = rleToBitmap(rle);
    assert.deepStrictEqual(rleFromBitmap(bits, height, width), { size: rle.size, counts: rle.counts.map(Number) });
    // Pixel (x, y) is at x * height + y: the first set pixel starts the second run.
    const first = Number(rle.counts[0]);
    assert.equal(bits[first], 1);
    if (first > 0) assert.equal(bits[first - 1], 0);
  }
  const set = rleFromBitmap(Uint8Array.from([1, 1, 0, 1]), 2, 2);
  assert.deepStrictEqual(set, { size: [2, 2], counts: [0, 2, 1, 1] });
});

test('COCO files with compressed counts import and export exactly', { skip: skipUnless(VAL2014) }, () => {
  const input = parse(readFileSync(VAL2014, 'utf8'));
  for (const annotation of input.annotations) {
    if (annotation.iscrowd === 1) annotation.segmentation.counts = rleToString(annotation.segmentation.counts);
  }
  const ops = cocoToOps(input);
  const masks = ops.filter((op) => op.kind === 'mask');
  assert.equal(masks.length, 9);
  assert.ok(masks.every((op) => typeof op.fields.geometry.counts === 'string'));

  const objects = ops.map((op) => ({ id: op.id, kind: op.kind, vv: { a: 1 }, fields: parse(stringify(op.fields)) }));
  const { coco, skipped } = objectsToCoco(objects);
  assert.deepStrictEqual(skipped, []);
  const byId = new Map(coco.annotations.map((a) => [a.id, a]));
  for (const annotation of input.annotations.filter((a) => a.iscrowd === 1)) {
    assert.deepStrictEqual(byId.get(annotation.id), annotation);
  }
});

test('export computes area and bbox of compressed masks', () => {
  const rle = { size: [4, 3], counts: rleToString([5, 2, 1, 3, 1]) };
  const objects = [
    { id: 'i', kind: 'item', vv: {}, fields: { coco_id: 1, file_name: 'a.jpg', width: 3, height: 4 } },
    { id: 'c', kind: 'category', vv: {}, fields: { coco_id: 1, name: 'cat' } },
    { id: 'm', kind: 'mask', vv: {}, fields: { item: 'i', label: 'cat', geometry: rle } },
    { id: 'bad', kind: 'mask', vv: {}, fields: { item: 'i', label: 'cat', geometry: { size: [4, 3], counts: [1, 2] } } },
  ];
  const { coco, skipped } = objectsToCoco(objects);
  assert.equal(coco.annotations.length, 1);
  assert.deepStrictEqual(coco.annotations[0], { id: 1, image_id: 1, category_id: 1, segmentation: rle, area: 5, bbox: [1, 0, 2, 3], iscrowd: 1 });
  assert.equal(skipped.length, 1);
  assert.match(skipped[0].reason, /not a valid COCO RLE: RLE runs add up to 3 pixels/);
});
