/**
 * Conversion of labelme JSON files to annolive objects.
 *
 * A file becomes one `item` object for its image and one object per shape. Coordinates are
 * absolute pixels, as labelme stores them.
 */

import { checkObjectId, isJsonNumber, isJsonObject, keepFloat, without } from './ids.js';

export const DEFAULT_LABELME_PREFIX = 'labelme:';

/** Returns true when value looks like a labelme file (it has a shapes array). */
export function isLabelme(value) {
  return isJsonObject(value) && Array.isArray(value.shapes);
}

// Top-level members that become item fields under other names, or no field at all:
// imageData is the base64 image itself, too large to send as a field.
const ITEM_MEMBERS = ['shapes', 'imagePath', 'imageWidth', 'imageHeight', 'imageData', 'version'];
const SHAPE_MEMBERS = ['points', 'shape_type'];

/**
 * Converts a labelme file to protocol `create` ops: the item first, then one op per shape,
 * then one `category` per label (`${prefix}cat:${label}`, percent-encoded).
 *
 * Ids are `${prefix}${name}:item` and `${prefix}${name}:shape:${index}`, where name is the
 * file's base name without `.json`, percent-encoded where it is not printable ASCII.
 * Shapes map to kinds as follows, with geometry in absolute pixels:
 * rectangle -> bbox `[x, y, width, height]` spanning its points; polygon -> polygon
 * `[[x1, y1, x2, y2, ...]]`; linestrip and line -> polyline `[x1, y1, ...]`; point and
 * points -> points `[x1, y1, ...]`; circle -> ellipse `[cx, cy, r, r]` (labelme stores the
 * center and one point on the circle). The protocol does not define the polyline, points and
 * ellipse geometries yet, so these forms are this converter's choice. Each shape keeps `label`, `group_id`, `flags` and
 * any other member as fields, and names its item in `item`.
 * @param {object} labelme parsed labelme JSON.
 * @param {{name: string, prefix?: string}} options name is the file's base name.
 * @returns {object[]} create ops.
 * @throws {Error} for a shape type that has no annolive kind or points that do not fit it.
 */
export function labelmeToOps(labelme, options) {
  if (!isLabelme(labelme)) throw new Error('input is not a labelme file: expected an object with a "shapes" array');
  const name = encodeURIComponent(String(options.name).replace(/\.json$/i, ''));
  const base = `${options.prefix ?? DEFAULT_LABELME_PREFIX}${name}:`;
  const itemId = checkObjectId(`${base}item`, `labelme file ${options.name}`);

  const itemFields = { file_name: labelme.imagePath, width: labelme.imageWidth, height: labelme.imageHeight };
  if ('version' in labelme) itemFields.labelme_version = labelme.version;
  Object.assign(itemFields, without(labelme, ITEM_MEMBERS));
  const ops = [{ op: 'create', id: itemId, kind: 'item', fields: itemFields }];
  const categories = new Set();

  for (const [index, shape] of labelme.shapes.entries()) {
    const where = `shape ${index} of ${options.name}`;
    if (!isJsonObject(shape)) throw new Error(`${where} is not an object`);
    const { kind, geometry } = shapeGeometry(shape, where);
    const fields = { item: itemId, label: shape.label, ...without(shape, SHAPE_MEMBERS), geometry };
    ops.push({ op: 'create', id: checkObjectId(`${base}shape:${index}`, where), kind, fields });
    if (typeof shape.label === 'string') categories.add(shape.label);
  }

  // One category per label, shared by every file of the room, so that a
  // COCO export has categories to name. A second file's create of the same
  // category is a harmless "exists" conflict.
  const prefix = options.prefix ?? DEFAULT_LABELME_PREFIX;
  for (const label of categories) {
    const id = checkObjectId(`${prefix}cat:${encodeURIComponent(label)}`, `label ${JSON.stringify(label)}`);
    ops.push({ op: 'create', id, kind: 'category', fields: { name: label } });
  }
  return ops;
}

function shapeGeometry(shape, where) {
  const points = shape.points;
  const valid = Array.isArray(points) && points.every((p) => Array.isArray(p) && p.length === 2 && p.every(isJsonNumber));
  if (!valid) throw new Error(`${where} has invalid points: expected a list of [x, y] pairs`);
  const need = (count) => {
    if (points.length < count) {
      throw new Error(`${where} is a ${shape.shape_type} with ${points.length} points; it needs at least ${count}`);
    }
  };
  switch (shape.shape_type ?? 'polygon') {
    case 'rectangle':
      need(2);
      return { kind: 'bbox', geometry: boxOf(points) };
    case 'polygon':
      need(3);
      return { kind: 'polygon', geometry: [points.flat()] };
    case 'linestrip':
    case 'line':
      need(2);
      return { kind: 'polyline', geometry: points.flat() };
    case 'point':
    case 'points':
      need(1);
      return { kind: 'points', geometry: points.flat() };
    case 'circle': {
      need(2);
      const [[cx, cy], [px, py]] = points;
      const radius = keepFloat(Math.hypot(Number(px) - Number(cx), Number(py) - Number(cy)), [cx, cy, px, py]);
      return { kind: 'ellipse', geometry: [cx, cy, radius, radius] };
    }
    default:
      throw new Error(`${where} has shape_type ${JSON.stringify(shape.shape_type)}, which has no annolive kind`);
  }
}

/** Returns [x, y, width, height] spanning the points; x and y are the input values as read. */
function boxOf(points) {
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const minX = extreme(xs, (a, b) => a < b);
  const maxX = extreme(xs, (a, b) => a > b);
  const minY = extreme(ys, (a, b) => a < b);
  const maxY = extreme(ys, (a, b) => a > b);
  return [minX, minY, keepFloat(Number(maxX) - Number(minX), [minX, maxX]), keepFloat(Number(maxY) - Number(minY), [minY, maxY])];
}

function extreme(values, better) {
  return values.reduce((best, value) => (better(Number(value), Number(best)) ? value : best));
}
