import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { JsonFloat, parse, stringify } from '../src/json.js';
import { labelmeToOps } from '../src/labelme.js';
import { LABELME_EXAMPLES, skipUnless } from '../test-support/data.js';

const BBOX_FILE = `${LABELME_EXAMPLES}bbox_detection/data_annotated/2011_000003.json`;
const POLYGON_FILE = `${LABELME_EXAMPLES}instance_segmentation/data_annotated/2011_000003.json`;
const PRIMITIVES_FILE = `${LABELME_EXAMPLES}primitives/primitives.json`;

function load(file) {
  return parse(readFileSync(file, 'utf8'));
}

test('rectangles become bboxes', { skip: skipUnless(BBOX_FILE) }, () => {
  const labelme = load(BBOX_FILE);
  const ops = labelmeToOps(labelme, { name: '2011_000003.json' });
  const labels = [...new Set(labelme.shapes.map((shape) => shape.label))];
  assert.equal(ops.length, labelme.shapes.length + 1 + labels.length);
  const [item, ...rest] = ops;
  const shapes = rest.slice(0, labelme.shapes.length);
  assert.deepStrictEqual(rest.slice(labelme.shapes.length), labels.map((label) => ({
    op: 'create', id: `labelme:cat:${encodeURIComponent(label)}`, kind: 'category', fields: { name: label },
  })));
  assert.deepStrictEqual(item, {
    op: 'create',
    id: 'labelme:2011_000003:item',
    kind: 'item',
    fields: { file_name: '2011_000003.jpg', width: 500, height: 338, labelme_version: '4.0.0', flags: {} },
  });
  for (const [index, op] of shapes.entries()) {
    const shape = labelme.shapes[index];
    const xs = shape.points.map((p) => Number(p[0]));
    const ys = shape.points.map((p) => Number(p[1]));
    assert.equal(op.id, `labelme:2011_000003:shape:${index}`);
    assert.equal(op.kind, 'bbox');
    const [x, y, width, height] = op.fields.geometry.map(Number);
    assert.equal(x, Math.min(...xs));
    assert.equal(y, Math.min(...ys));
    assert.equal(width, Math.max(...xs) - Math.min(...xs));
    assert.equal(height, Math.max(...ys) - Math.min(...ys));
    assert.equal(op.fields.item, item.id);
    assert.equal(op.fields.label, shape.label);
    assert.equal(op.fields.group_id, shape.group_id);
    assert.deepStrictEqual(op.fields.flags, shape.flags);
  }
});

test('rectangle numbers match the file', { skip: skipUnless(BBOX_FILE) }, () => {
  // The file's first shape has the corners [191.0, 107.36900369003689] and [313.0, 329.36900369003695].
  const [, first] = labelmeToOps(load(BBOX_FILE), { name: '2011_000003.json' });
  assert.equal(stringify(first.fields.geometry), '[191.0,107.36900369003689,122.0,222.00000000000006]');
  assert.ok(first.fields.geometry[2] instanceof JsonFloat);
});

test('polygons keep their points as one ring', { skip: skipUnless(POLYGON_FILE) }, () => {
  const labelme = load(POLYGON_FILE);
  const ops = labelmeToOps(labelme, { name: '2011_000003.json', prefix: 'seg:' });
  for (const [index, shape] of labelme.shapes.entries()) {
    const op = ops[index + 1];
    assert.equal(op.kind, 'polygon');
    assert.equal(op.id, `seg:2011_000003:shape:${index}`);
    assert.deepStrictEqual(op.fields.geometry, [shape.points.flat()]);
    assert.equal(op.fields.group_id, shape.group_id);
  }
  // The second and third shapes are two parts of one person, grouped by group_id 0.
  assert.equal(ops[2].fields.group_id, 0);
  assert.equal(ops[3].fields.group_id, 0);
  assert.equal(ops[1].fields.geometry[0][0], 250.8142292490119);
  assert.equal(ops[1].fields.geometry[0].length, 82);
});

test('primitives map to kinds', { skip: skipUnless(PRIMITIVES_FILE) }, () => {
  const labelme = load(PRIMITIVES_FILE);
  const ops = labelmeToOps(labelme, { name: 'primitives.json' });
  const kinds = ops.slice(1, 1 + labelme.shapes.length).map((op, i) => [labelme.shapes[i].shape_type, op.kind]);
  assert.deepStrictEqual(kinds, [
    ['rectangle', 'bbox'],
    ['circle', 'ellipse'],
    ['rectangle', 'bbox'],
    ['polygon', 'polygon'],
    ['line', 'polyline'],
    ['point', 'points'],
    ['linestrip', 'polyline'],
  ]);
  const circle = ops[2].fields.geometry;
  // Center [195.0, 84.0], point on the circle [225.0, 125.0]: radius sqrt(30^2 + 41^2).
  assert.deepStrictEqual(circle.slice(0, 2).map(Number), [195, 84]);
  assert.equal(circle[2], Math.hypot(30, 41));
  assert.equal(circle[3], Math.hypot(30, 41));
  assert.deepStrictEqual(ops[6].fields.geometry.map(Number), [345, 174]);
});

test('labelme ids are printable ASCII', () => {
  const ops = labelmeToOps({ shapes: [], imagePath: 'x.jpg' }, { name: 'photo été 1.json' });
  assert.equal(ops[0].id, 'labelme:photo%20%C3%A9t%C3%A9%201:item');
  assert.throws(() => labelmeToOps({ shapes: [] }, { name: `${'a'.repeat(70)}.json` }), /shorter --prefix/);
});

test('labelmeToOps rejects unknown shapes', () => {
  const file = { shapes: [{ label: 'x', points: [[1, 2]], shape_type: 'mask' }] };
  assert.throws(() => labelmeToOps(file, { name: 'a.json' }), /shape 0 of a\.json has shape_type "mask"/);
  const few = { shapes: [{ label: 'x', points: [[1, 2]], shape_type: 'rectangle' }] };
  assert.throws(() => labelmeToOps(few, { name: 'a.json' }), /needs at least 2/);
  const bad = { shapes: [{ label: 'x', points: [[1, 'y']], shape_type: 'point' }] };
  assert.throws(() => labelmeToOps(bad, { name: 'a.json' }), /invalid points/);
  assert.throws(() => labelmeToOps({ images: [] }, { name: 'a.json' }), /not a labelme file/);
});

test('image data is not sent', () => {
  const ops = labelmeToOps({ shapes: [], imagePath: 'x.jpg', imageData: 'iVBORw0KGgo=', imageWidth: 2, imageHeight: 1 }, { name: 'x.json' });
  assert.deepStrictEqual(ops[0].fields, { file_name: 'x.jpg', width: 2, height: 1 });
});
