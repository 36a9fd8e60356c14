/**
 * Conversion of CVAT annotation dumps to annolive objects.
 *
 * Input is what CVAT's REST API returns for the annotations of a job or a task,
 * `{version, tags, shapes, tracks}`, or an object that contains several of them by section and
 * id, `{"job": {"2": dump, ...}, "task": {...}}`. Such dumps carry label and attribute ids
 * but no names, and frame numbers but no image sizes; the options can supply both.
 *
 * Objects, with geometry in absolute pixels:
 * - one `category` per label id (`cvat_id`, and `name` when known) and one `item` per frame
 *   that has annotations (`frame`, the dump's `cvat_version`, its section and id, and
 *   `file_name`, `width`, `height` when known);
 * - rectangle -> bbox `[x, y, w, h]`; polygon -> polygon with one ring; polyline -> polyline;
 *   points -> points; ellipse -> ellipse `[cx, cy, rx, ry]`; cuboid -> cuboid (its 8 points as
 *   CVAT orders them); tag -> tag;
 * - skeleton -> skeleton `[x, y, v, ...]`, one point per element, elements sorted by label id;
 *   v is 0 for an element that is outside, 1 for an occluded one, else 2. The field
 *   `elements` lists, in the same order, each element's `label_id`, `cvat_id`, `occluded`,
 *   `outside` and `attrs`, so nothing of an element is lost;
 * - mask -> mask: CVAT stores the runs of its mask row by row over the mask's bounding box,
 *   `[runs..., left, top, right, bottom]`. With the image size known it becomes a COCO RLE
 *   over the whole image; without it the object has no geometry, keeps CVAT's points exactly
 *   in `cvat_points`, and is listed in `skipped`.
 *
 * A rotation is the field `rotation`, in degrees clockwise around the shape's center, as
 * CVAT defines it; it is left out when it is 0. Attributes go to `attrs`, keyed by name when
 * known, else by spec id. A `group` of 0 (no group) is left out. CVAT's own `source`
 * (manual, auto, semi-auto, file) is kept as `cvat_source`. Members this converter does not
 * know are kept with the prefix `cvat_`, or `cvat_track_` for those of a track.
 *
 * Tracks: each keyframe of a track becomes one object of its shape's kind, with `track`
 * (the same string for every frame of a track), `frame`, `keyframe: true` and the keyframe's
 * `outside` and `occluded`, so every keyframe and outside flag is kept. A skeleton track
 * becomes one skeleton object per frame on which the skeleton or one of its elements has a
 * keyframe. Its `keyframe` is true when the skeleton itself has one there, and the `keyframe`
 * of each entry of `elements` is true when that element has one. An element without a
 * keyframe on that frame shows its latest earlier keyframe, not an interpolation, and an
 * element with no keyframe yet is outside.
 */

import { checkObjectId, isCount, isJsonNumber, isJsonObject, keepFloat, without } from './ids.js';
import { rleFromBitmap } from './rle.js';

export const DEFAULT_CVAT_PREFIX = 'cvat:';

const DUMP_MEMBERS = ['version', 'tags', 'shapes', 'tracks'];
const SHAPE_MEMBERS = [
  'id', 'type', 'frame', 'label_id', 'group', 'source', 'attributes', 'points', 'rotation',
  'occluded', 'outside', 'z_order', 'elements', 'shapes',
];

/** Returns true when value is one CVAT annotation dump: shapes, tracks and tags arrays. */
export function isCvatDump(value) {
  return isJsonObject(value) && Array.isArray(value.shapes) && Array.isArray(value.tracks) && Array.isArray(value.tags);
}

/** Returns true when value is a CVAT dump or an object of dumps by section and id. */
export function isCvat(value) {
  if (isCvatDump(value)) return true;
  if (!isJsonObject(value) || Object.keys(value).length === 0) return false;
  return Object.values(value).every((section) => isJsonObject(section) && Object.values(section).every(isCvatDump));
}

/**
 * @typedef {{where: string, reason: string}} Skipped
 * An input element that was not converted, or converted only in part, and why.
 */

/**
 * Converts CVAT annotations to protocol `create` ops: categories and items first.
 *
 * Ids start with `${prefix}${name}:` for a single dump and `${prefix}${section}:${id}:` for
 * a dump in a section. The rest is `frame:${n}` for items, `shape:${id}`, `tag:${id}`, or
 * `track:${id}:frame:${n}` for track frames. Categories are `${prefix}label:${id}`.
 * @param {object} cvat parsed CVAT JSON.
 * @param {object} [options]
 * @param {string} [options.prefix] id prefix, `cvat:` by default.
 * @param {string} [options.name] name of a single dump, such as the file's base name.
 * @param {{id: number, name: string, attributes?: {id: number, name: string}[], sublabels?: object[]}[]} [options.labels]
 *   CVAT's label list, for label and attribute names.
 * @param {{width: number, height: number, name?: string}[]} [options.frames] image sizes and
 *   file names by frame number, as CVAT's data meta lists them.
 * @param {{width: number, height: number}} [options.imageSize] one size for every frame.
 * @returns {{ops: object[], skipped: Skipped[]}}
 * @throws {Error} when the input is not CVAT annotations or an id would be invalid.
 */
export function cvatToOps(cvat, options = {}) {
  if (!isCvat(cvat)) {
    throw new Error('input is not CVAT annotations: expected "shapes", "tracks" and "tags" arrays, or sections of such dumps');
  }
  const context = newContext(options);
  if (isCvatDump(cvat)) {
    const name = encodeURIComponent(String(options.name ?? 'annotations').replace(/\.json$/i, ''));
    convertDump(cvat, { base: `${context.prefix}${name}:`, where: name, meta: {} }, context);
  } else {
    for (const [section, dumps] of Object.entries(cvat)) {
      for (const [id, dump] of Object.entries(dumps)) {
        const meta = { [`cvat_${section}`]: isNaN(Number(id)) ? id : Number(id) };
        convertDump(dump, { base: `${context.prefix}${section}:${id}:`, where: `${section} ${id}`, meta }, context);
      }
    }
  }
  const ops = [...context.categories.values(), ...context.items.values(), ...context.annotations];
  return { ops, skipped: context.skipped };
}

function newContext(options) {
  const labelNames = new Map();
  const attrNames = new Map();
  const addLabels = (labels) => {
    for (const label of Array.isArray(labels) ? labels : []) {
      if (!isJsonObject(label)) continue;
      labelNames.set(String(label.id), label.name);
      for (const spec of Array.isArray(label.attributes) ? label.attributes : []) attrNames.set(String(spec?.id), spec?.name);
      addLabels(label.sublabels);
    }
  };
  addLabels(options.labels);
  return {
    prefix: options.prefix ?? DEFAULT_CVAT_PREFIX,
    frames: Array.isArray(options.frames) ? options.frames : [],
    imageSize: options.imageSize,
    labelNames,
    attrNames,
    categories: new Map(),
    items: new Map(),
    annotations: [],
    skipped: [],
  };
}

function convertDump(dump, dumpSource, context) {
  let source = dumpSource;
  if ('version' in dump) source = { ...dumpSource, meta: { ...dumpSource.meta, cvat_version: dump.version } };
  const extra = without(dump, DUMP_MEMBERS);
  if (Object.keys(extra).length > 0) {
    context.skipped.push({ where: source.where, reason: `members ${Object.keys(extra).join(', ')} of the dump have no annolive form` });
  }
  for (const tag of dump.tags) convertTag(tag, source, context);
  for (const shape of dump.shapes) convertShape(shape, source, context);
  for (const track of dump.tracks) convertTrack(track, source, context);
}

// Shapes

function convertShape(shape, source, context) {
  const where = `${source.where} shape ${isJsonObject(shape) ? shape.id : '?'}`;
  if (!isJsonObject(shape)) return skip(context, where, 'it is not an object');
  const id = `${source.base}shape:${shape.id}`;
  const fields = commonFields(shape, shape, source, context);
  if (!fields) return skip(context, where, `its frame ${JSON.stringify(shape.frame)} is not a non-negative integer`);
  return addAnnotation(id, shape, fields, where, context);
}

function convertTag(tag, source, context) {
  const where = `${source.where} tag ${isJsonObject(tag) ? tag.id : '?'}`;
  if (!isJsonObject(tag)) return skip(context, where, 'it is not an object');
  const fields = commonFields(tag, tag, source, context);
  if (!fields) return skip(context, where, `its frame ${JSON.stringify(tag.frame)} is not a non-negative integer`);
  context.annotations.push(createOp(`${source.base}tag:${tag.id}`, 'tag', fields, where));
  return undefined;
}

/**
 * Converts the geometry of shape and adds the object; lists it in skipped when its type or
 * points do not fit. fields already hold the common fields.
 */
function addAnnotation(id, shape, fields, where, context) {
  const converted = shapeGeometry(shape, fields, context);
  if (typeof converted === 'string') return skip(context, where, converted);
  const { kind, geometry, note } = converted;
  if (geometry !== undefined) fields.geometry = geometry;
  const op = createOp(id, kind, fields, where);
  context.annotations.push(op);
  if (note) skip(context, where, `${note}; object ${op.id}`);
  return op;
}

/** Fields that every converted element has, from the element and its owner (a track). */
function commonFields(element, owner, source, context) {
  const frame = element.frame;
  if (!isCount(frame)) return null;
  const fields = { item: itemFor(Number(frame), source, context), frame: Number(frame) };
  Object.assign(fields, labelFields(owner.label_id, context));
  fields.cvat_id = element.id;
  if (isJsonNumber(owner.group) && Number(owner.group) !== 0) fields.group = owner.group;
  if (owner.source !== undefined) fields.cvat_source = owner.source;
  if ('occluded' in element) fields.occluded = element.occluded;
  if ('outside' in element) fields.outside = element.outside;
  if ('z_order' in element) fields.z = element.z_order;
  if (isJsonNumber(element.rotation) && Number(element.rotation) !== 0) fields.rotation = element.rotation;
  const attrs = attrsOf([owner.attributes, element === owner ? [] : element.attributes], context);
  if (attrs) fields.attrs = attrs;
  for (const [key, value] of Object.entries(without(element, SHAPE_MEMBERS))) fields[`cvat_${key}`] = value;
  if (owner !== element) {
    for (const [key, value] of Object.entries(without(owner, SHAPE_MEMBERS))) fields[`cvat_track_${key}`] = value;
  }
  return fields;
}

function labelFields(labelId, context) {
  if (labelId === undefined) return {};
  const fields = {};
  const name = context.labelNames.get(String(labelId));
  if (typeof name === 'string') fields.label = name;
  fields.label_id = labelId;
  categoryFor(labelId, context);
  return fields;
}

function categoryFor(labelId, context) {
  const key = String(labelId);
  if (context.categories.has(key)) return;
  const fields = { cvat_id: labelId };
  const name = context.labelNames.get(key);
  if (typeof name === 'string') fields.name = name;
  context.categories.set(key, createOp(`${context.prefix}label:${key}`, 'category', fields, `label ${key}`));
}

function attrsOf(lists, context) {
  const attrs = {};
  for (const list of lists) {
    for (const attribute of Array.isArray(list) ? list : []) {
      if (!isJsonObject(attribute)) continue;
      const name = context.attrNames.get(String(attribute.spec_id));
      attrs[typeof name === 'string' && name !== '' ? name : String(attribute.spec_id)] = attribute.value;
    }
  }
  return Object.keys(attrs).length > 0 ? attrs : null;
}

function frameInfo(frame, context) {
  const meta = context.frames[frame];
  if (isJsonObject(meta)) return meta;
  return isJsonObject(context.imageSize) ? context.imageSize : {};
}

function itemFor(frame, source, context) {
  const id = `${source.base}frame:${frame}`;
  if (!context.items.has(id)) {
    const info = frameInfo(frame, context);
    const fields = { frame, ...source.meta };
    if (typeof info.name === 'string') fields.file_name = info.name;
    if (isJsonNumber(info.width)) fields.width = info.width;
    if (isJsonNumber(info.height)) fields.height = info.height;
    context.items.set(id, createOp(id, 'item', fields, `${source.where} frame ${frame}`));
  }
  return id;
}

function createOp(id, kind, fields, where) {
  return { op: 'create', id: checkObjectId(id, `CVAT ${where}`), kind, fields };
}

function skip(context, where, reason) {
  context.skipped.push({ where, reason });
  return undefined;
}

// Geometry

function numbers(points, { min, even = true, exact }) {
  if (!Array.isArray(points) || !points.every(isJsonNumber)) return null;
  if (points.length < min || (even && points.length % 2 !== 0)) return null;
  if (exact !== undefined && points.length !== exact) return null;
  return points;
}

/**
 * Returns {kind, geometry, note} for a shape, or a string with the reason it cannot be
 * converted. note, when present, names what the object lacks.
 */
function shapeGeometry(shape, fields, context) {
  const points = shape.points;
  const bad = (problem) => `its ${shape.type} points ${problem}`;
  switch (shape.type) {
    case 'rectangle': {
      const p = numbers(points, { min: 4, exact: 4 });
      if (!p) return bad('are not [x1, y1, x2, y2]');
      const [x1, y1, x2, y2] = p;
      const w = keepFloat(Number(x2) - Number(x1), [x1, x2]);
      const h = keepFloat(Number(y2) - Number(y1), [y1, y2]);
      if (w < 0 || h < 0) return bad('have x2 < x1 or y2 < y1');
      return { kind: 'bbox', geometry: [x1, y1, w, h] };
    }
    case 'polygon':
      return numbers(points, { min: 6 }) ? { kind: 'polygon', geometry: [points] } : bad('are not at least 3 [x, y] pairs');
    case 'polyline':
      return numbers(points, { min: 4 }) ? { kind: 'polyline', geometry: points } : bad('are not at least 2 [x, y] pairs');
    case 'points':
      return numbers(points, { min: 2 }) ? { kind: 'points', geometry: points } : bad('are not [x, y] pairs');
    case 'cuboid':
      return numbers(points, { min: 16, exact: 16 }) ? { kind: 'cuboid', geometry: points } : bad('are not 8 [x, y] pairs');
    case 'ellipse': {
      const p = numbers(points, { min: 4, exact: 4 });
      if (!p) return bad('are not [cx, cy, x, y]');
      const [cx, cy, x, y] = p;
      const rx = keepFloat(Math.abs(Number(x) - Number(cx)), [cx, x]);
      const ry = keepFloat(Math.abs(Number(cy) - Number(y)), [cy, y]);
      return { kind: 'ellipse', geometry: [cx, cy, rx, ry] };
    }
    case 'mask':
      return maskGeometry(shape, fields, context);
    case 'skeleton':
      return skeletonGeometry(shape.elements, fields, context);
    default:
      return `its type ${JSON.stringify(shape.type)} has no annolive kind`;
  }
}

function maskGeometry(shape, fields, context) {
  const p = numbers(shape.points, { min: 5, even: false });
  const integers = p && p.every(isCount);
  if (!integers) return 'its mask points are not runs followed by left, top, right, bottom (non-negative integers)';
  const values = p.map(Number);
  const [left, top, right, bottom] = values.slice(-4);
  const runs = values.slice(0, -4);
  const boxWidth = right - left + 1;
  const boxHeight = bottom - top + 1;
  const total = runs.reduce((sum, run) => sum + run, 0);
  if (boxWidth < 1 || boxHeight < 1 || total !== boxWidth * boxHeight) {
    const pixels = Math.max(boxWidth, 0) * Math.max(boxHeight, 0);
    return `its mask runs add up to ${total} pixels, but its box ${left},${top} to ${right},${bottom} has ${pixels}`;
  }
  const { width, height } = frameInfo(fields.frame, context);
  if (!isJsonNumber(width) || !isJsonNumber(height)) {
    fields.cvat_points = shape.points;
    const note = `the image size of frame ${fields.frame} is unknown, so the mask has no COCO geometry`;
    return { kind: 'mask', note: `${note} and keeps CVAT's runs in cvat_points` };
  }
  const imageWidth = Number(width);
  const imageHeight = Number(height);
  if (right >= imageWidth || bottom >= imageHeight) {
    return `its mask box ${left},${top} to ${right},${bottom} does not fit the ${imageWidth}x${imageHeight} image`;
  }
  return { kind: 'mask', geometry: boxRunsToRle(runs, { left, top, boxWidth }, imageHeight, imageWidth) };
}

/** Converts runs over a box, row by row, to a COCO RLE over the whole image. */
function boxRunsToRle(runs, { left, top, boxWidth }, imageHeight, imageWidth) {
  const bits = new Uint8Array(imageHeight * imageWidth);
  let pos = 0;
  for (let i = 0; i < runs.length; i++) {
    if (i % 2 === 1) {
      for (let k = pos; k < pos + runs[i]; k++) {
        const x = left + (k % boxWidth);
        const y = top + Math.floor(k / boxWidth);
        bits[x * imageHeight + y] = 1;
      }
    }
    pos += runs[i];
  }
  return rleFromBitmap(bits, imageHeight, imageWidth);
}

function visibility(element) {
  if (element.outside) return 0;
  return element.occluded ? 1 : 2;
}

/** Builds the geometry of a skeleton shape from its elements, each a points shape with one point. */
function skeletonGeometry(elements, fields, context) {
  if (!Array.isArray(elements) || elements.length === 0) return 'its skeleton has no elements';
  const sorted = [...elements].sort((a, b) => Number(a?.label_id) - Number(b?.label_id));
  const geometry = [];
  const entries = [];
  for (const element of sorted) {
    const point = isJsonObject(element) && element.type === 'points' && numbers(element.points, { min: 2, exact: 2 });
    if (!point) return `its skeleton element ${JSON.stringify(element?.id)} is not a points shape with one point`;
    geometry.push(point[0], point[1], visibility(element));
    entries.push(elementEntry(element, context));
  }
  fields.elements = entries;
  return { kind: 'skeleton', geometry };
}

function elementEntry(element, context) {
  const entry = { label_id: element.label_id };
  const name = context.labelNames.get(String(element.label_id));
  if (typeof name === 'string') entry.label = name;
  categoryFor(element.label_id, context);
  entry.cvat_id = element.id;
  entry.occluded = element.occluded ?? false;
  entry.outside = element.outside ?? false;
  const attrs = attrsOf([element.attributes], context);
  if (attrs) entry.attrs = attrs;
  return entry;
}

// Tracks

function convertTrack(track, source, context) {
  const where = `${source.where} track ${isJsonObject(track) ? track.id : '?'}`;
  if (!isJsonObject(track) || !Array.isArray(track.shapes)) return skip(context, where, 'it is not an object with a shapes array');
  const trackId = `${source.base}track:${track.id}`;
  const isSkeleton = Array.isArray(track.elements) && track.elements.length > 0;
  if (isSkeleton) return convertSkeletonTrack(track, trackId, where, source, context);
  for (const shape of track.shapes) {
    const shapeWhere = `${where} frame ${isJsonObject(shape) ? shape.frame : '?'}`;
    if (!isJsonObject(shape)) {
      skip(context, shapeWhere, 'it is not an object');
      continue;
    }
    const fields = commonFields(shape, track, source, context);
    if (!fields) {
      skip(context, shapeWhere, `its frame ${JSON.stringify(shape.frame)} is not a non-negative integer`);
      continue;
    }
    Object.assign(fields, { track: trackId, keyframe: true, cvat_track_id: track.id });
    addAnnotation(`${trackId}:frame:${fields.frame}`, shape, fields, shapeWhere, context);
  }
  return undefined;
}

/** Returns the shapes of a track sorted by frame, or null when one has no valid frame. */
function keyframes(shapes) {
  if (!Array.isArray(shapes)) return null;
  return shapes.every((s) => isJsonObject(s) && isCount(s.frame)) ? [...shapes].sort((a, b) => Number(a.frame) - Number(b.frame)) : null;
}

/** Returns the latest shape at or before frame, or undefined. */
function shapeAt(shapes, frame) {
  let found;
  for (const shape of shapes) {
    if (Number(shape.frame) > frame) break;
    found = shape;
  }
  return found;
}

function convertSkeletonTrack(track, trackId, where, source, context) {
  const own = keyframes(track.shapes);
  const elements = [...track.elements].sort((a, b) => Number(a?.label_id) - Number(b?.label_id));
  const elementShapes = elements.map((element) => (isJsonObject(element) ? keyframes(element.shapes) : null));
  if (!own || own.length === 0 || elementShapes.some((shapes) => shapes === null)) {
    return skip(context, where, 'its skeleton shapes or element shapes are not objects with a frame number');
  }
  const frames = new Set(own.map((s) => Number(s.frame)));
  for (const shapes of elementShapes) for (const s of shapes) frames.add(Number(s.frame));

  for (const frame of [...frames].sort((a, b) => a - b)) {
    const frameWhere = `${where} frame ${frame}`;
    const skeleton = shapeAt(own, frame) ?? own[0];
    const fields = commonFields({ ...skeleton, frame }, track, source, context);
    fields.cvat_id = skeleton.id;
    Object.assign(fields, { track: trackId, keyframe: Number(skeleton.frame) === frame, cvat_track_id: track.id });
    const built = skeletonFrame(elements, elementShapes, frame, context);
    if (typeof built === 'string') {
      skip(context, frameWhere, built);
      continue;
    }
    fields.geometry = built.geometry;
    fields.elements = built.entries;
    context.annotations.push(createOp(`${trackId}:frame:${frame}`, 'skeleton', fields, frameWhere));
  }
  return undefined;
}

function skeletonFrame(elements, elementShapes, frame, context) {
  const geometry = [];
  const entries = [];
  for (const [i, element] of elements.entries()) {
    const shape = shapeAt(elementShapes[i], frame);
    const entry = elementEntry({ ...element, occluded: shape?.occluded, outside: shape ? shape.outside : true }, context);
    entry.cvat_track_id = element.id;
    if (shape) entry.cvat_id = shape.id;
    else delete entry.cvat_id;
    entry.keyframe = shape !== undefined && Number(shape.frame) === frame;
    const shapeAttrs = attrsOf([shape?.attributes], context);
    if (shapeAttrs) entry.attrs = { ...entry.attrs, ...shapeAttrs };
    if (!shape) {
      geometry.push(0, 0, 0);
    } else {
      const point = shape.type === 'points' && numbers(shape.points, { min: 2, exact: 2 });
      if (!point) return `its skeleton element ${JSON.stringify(element.id)} has a keyframe that is not one point`;
      geometry.push(point[0], point[1], visibility(shape));
    }
    entries.push(entry);
  }
  return { geometry, entries };
}
