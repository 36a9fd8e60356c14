/**
 * Conversion of Label Studio task JSON to annolive objects.
 *
 * Input is one task (`{id, data, annotations, predictions}`) or a list of tasks, as Label
 * Studio exports them. Each task becomes one `item` object, each region of an annotation or a
 * prediction one object, and each label name one `category`. Label Studio can write a region
 * as several results with the same `id`, such as a `rectangle` result for the shape and a
 * `labels` result for its label, so the results of one id are merged into one object.
 *
 * Label Studio stores positions in percent of the image (`original_width`,
 * `original_height`); objects get absolute pixels: x * original_width / 100, and so on.
 * - rectangle, rectanglelabels -> bbox `[x, y, w, h]`. Label Studio rotates a rectangle
 *   around its top-left corner; annolive's `rotation` field turns the box around its center
 *   (degrees, clockwise), so x and y are those of the unrotated box with the same center;
 * - ellipse -> ellipse `[cx, cy, rx, ry]`, rotation as given (around the center);
 * - keypoint -> points `[x, y]`; polygon -> polygon with one ring;
 * - brush -> mask: Label Studio's brush RLE (run-length packed RGBA bytes of the whole
 *   image, row by row) is decoded and its alpha channel becomes a COCO RLE;
 * - labels with numeric `start` and `end` (text) -> span `[start, end]`;
 * - choices, textarea and other results without a position -> tag;
 * - relation -> relation with `from` and `to`, the object ids of the two regions.
 *
 * Every object has `label` when its region has exactly one label, and `labels` when it has
 * more. Values of a result that the geometry does not use are kept in `ls_value`, other
 * members of a result as `ls_NAME`. Predictions get `"source": "auto"`, `model` (the
 * prediction's `model_version`) and `score` (the result's score, else the prediction's);
 * when the file has no score, the object has none. The members of annotations and
 * predictions other than their results are kept on the task's item, in `ls_annotations`
 * and `ls_predictions`.
 *
 * Ids come from task ids, which are unique only within a Label Studio project, so files of
 * different projects imported into one room need different prefixes.
 */

import { checkObjectId, isJsonNumber, isJsonObject, without } from './ids.js';
import { rleFromBitmap } from './rle.js';

export const DEFAULT_LABELSTUDIO_PREFIX = 'ls:';

const TASK_MEMBERS = ['id', 'data', 'annotations', 'predictions'];
const RESULT_MEMBERS = [
  'id', 'type', 'value', 'from_name', 'to_name', 'original_width', 'original_height',
  'image_rotation', 'origin', 'score',
];
// Value members that name a region's labels, by the tool that writes them.
const LABEL_KEYS = [
  'labels', 'rectanglelabels', 'ellipselabels', 'keypointlabels', 'polygonlabels', 'brushlabels',
  'hypertextlabels', 'timeserieslabels', 'paragraphlabels',
];

function hasResults(list) {
  return list === undefined || (Array.isArray(list) && list.every((entry) => isJsonObject(entry) && Array.isArray(entry.result)));
}

/** Returns true for one task: annotations or predictions with result lists, and no COCO images. */
function isTask(value) {
  if (!isJsonObject(value) || 'images' in value) return false;
  if (!Array.isArray(value.annotations) && !Array.isArray(value.predictions)) return false;
  return hasResults(value.annotations) && hasResults(value.predictions);
}

/** Returns true when value is a Label Studio task or a non-empty list of tasks. */
export function isLabelStudio(value) {
  if (Array.isArray(value)) return value.length > 0 && value.every(isTask);
  return isTask(value);
}

/**
 * @typedef {{where: string, reason: string}} Skipped
 * An input element that was not converted, and why.
 */

/**
 * Converts Label Studio tasks to protocol `create` ops: categories and items first.
 *
 * Ids: `${prefix}task:${task}:item`, `${prefix}task:${task}:ann:${annotation}:${region}`,
 * `${prefix}task:${task}:pred:${prediction}:${region}`, `...:rel:${index}` for relations and
 * `${prefix}label:${name}` for categories, where an annotation or prediction without an id is
 * named by its index.
 * @param {object | object[]} input parsed Label Studio JSON.
 * @param {{prefix?: string}} [options]
 * @returns {{ops: object[], skipped: Skipped[]}}
 * @throws {Error} when the input is not Label Studio tasks or an id would be invalid.
 */
export function labelStudioToOps(input, options = {}) {
  if (!isLabelStudio(input)) {
    throw new Error('input is not Label Studio JSON: expected a task with "annotations" or "predictions", or a list of tasks');
  }
  const context = {
    prefix: options.prefix ?? DEFAULT_LABELSTUDIO_PREFIX,
    categories: new Map(),
    items: [],
    annotations: [],
    skipped: [],
  };
  const tasks = Array.isArray(input) ? input : [input];
  for (const [index, task] of tasks.entries()) convertTask(task, index, context);
  return { ops: [...context.categories.values(), ...context.items, ...context.annotations], skipped: context.skipped };
}

function idPart(value, fallback) {
  return encodeURIComponent(String(value ?? fallback));
}

function convertTask(task, index, context) {
  const taskKey = idPart(task.id, index);
  const base = `${context.prefix}task:${taskKey}:`;
  const sizes = imageSizes(task);
  const itemId = `${base}item`;
  const item = { op: 'create', id: checkObjectId(itemId, `Label Studio task ${taskKey}`), kind: 'item', fields: itemFields(task, sizes) };
  context.items.push(item);

  for (const [source, list] of [['ann', task.annotations], ['pred', task.predictions]]) {
    if (list === undefined) continue;
    if (!Array.isArray(list)) {
      context.skipped.push({ where: `task ${taskKey}`, reason: `its ${source === 'ann' ? 'annotations' : 'predictions'} are not a list` });
      continue;
    }
    const metadata = [];
    for (const [i, entry] of list.entries()) {
      const key = idPart(isJsonObject(entry) ? entry.id : undefined, i);
      const where = `task ${taskKey} ${source === 'ann' ? 'annotation' : 'prediction'} ${key}`;
      if (!isJsonObject(entry) || !Array.isArray(entry.result)) {
        context.skipped.push({ where, reason: 'it is not an object with a result list' });
        continue;
      }
      metadata.push(without(entry, ['result']));
      const scope = { base: `${base}${source}:${key}:`, where, itemId, sizes, entry, prediction: source === 'pred' };
      convertResults(entry.result, scope, context);
    }
    if (metadata.length > 0) item.fields[source === 'ann' ? 'ls_annotations' : 'ls_predictions'] = metadata;
  }
}

/** Returns image sizes by to_name, from every result of the task that has them. */
function imageSizes(task) {
  const sizes = new Map();
  for (const list of [task.annotations, task.predictions]) {
    for (const entry of Array.isArray(list) ? list : []) {
      for (const result of Array.isArray(entry?.result) ? entry.result : []) {
        const ok = isJsonObject(result) && isJsonNumber(result.original_width) && isJsonNumber(result.original_height);
        if (ok && !sizes.has(result.to_name)) {
          sizes.set(result.to_name, { width: Number(result.original_width), height: Number(result.original_height) });
        }
      }
    }
  }
  return sizes;
}

function itemFields(task, sizes) {
  const fields = {};
  const data = isJsonObject(task.data) ? task.data : {};
  const file = Object.values(data).find((v) => typeof v === 'string');
  if (file !== undefined) fields.file_name = file;
  const [size] = sizes.values();
  if (size) Object.assign(fields, size);
  if (task.id !== undefined) fields.ls_task_id = task.id;
  if (task.data !== undefined) fields.ls_data = task.data;
  for (const [key, value] of Object.entries(without(task, TASK_MEMBERS))) fields[`ls_${key}`] = value;
  return fields;
}

// Regions

function convertResults(results, scope, context) {
  const regions = new Map();
  const relations = [];
  for (const [index, result] of results.entries()) {
    if (!isJsonObject(result)) {
      context.skipped.push({ where: `${scope.where} result ${index}`, reason: 'it is not an object' });
    } else if (result.type === 'relation') {
      relations.push(result);
    } else {
      const key = result.id ?? `result-${index}`;
      if (!regions.has(key)) regions.set(key, []);
      regions.get(key).push(result);
    }
  }
  const objectIds = new Map();
  for (const [key, group] of regions) {
    const op = convertRegion(key, group, scope, context);
    if (op) objectIds.set(key, op.id);
  }
  relations.forEach((relation, index) => convertRelation(relation, index, objectIds, scope, context));
}

/** Merges the results of one region into one object; returns the op or undefined. */
function convertRegion(key, group, scope, context) {
  const where = `${scope.where} region ${key}`;
  const value = Object.assign({}, ...group.map((r) => (isJsonObject(r.value) ? r.value : {})));
  const main = group.find((r) => !LABEL_KEYS.includes(r.type)) ?? group[0];
  const fail = (reason) => {
    context.skipped.push({ where, reason });
    return undefined;
  };
  if (isJsonNumber(main.image_rotation) && Number(main.image_rotation) !== 0) {
    return fail(`its image_rotation ${main.image_rotation} is not supported`);
  }
  const size = isJsonNumber(main.original_width) && isJsonNumber(main.original_height)
    ? { width: Number(main.original_width), height: Number(main.original_height) }
    : scope.sizes.get(main.to_name);
  const shape = regionShape(value, size);
  if (typeof shape === 'string') return fail(`its ${group.map((r) => r.type).join('/')} result: ${shape}`);

  const fields = { item: scope.itemId, ...labelFields(value, context, where) };
  if (shape.geometry !== undefined) fields.geometry = shape.geometry;
  if (isJsonNumber(value.rotation) && Number(value.rotation) !== 0) fields.rotation = value.rotation;
  Object.assign(fields, resultFields(group, main, key));
  const rest = without(value, [...shape.used, ...LABEL_KEYS, 'choices', 'rotation']);
  if (Object.keys(rest).length > 0) fields.ls_value = rest;
  Object.assign(fields, sourceFields(group, scope));
  const op = { op: 'create', id: checkObjectId(`${scope.base}${idPart(key)}`, where), kind: shape.kind, fields };
  context.annotations.push(op);
  return op;
}

function labelFields(value, context, where) {
  const names = [];
  for (const key of [...LABEL_KEYS, 'choices']) {
    if (Array.isArray(value[key])) names.push(...value[key]);
  }
  for (const name of names) categoryFor(name, context, where);
  if (names.length === 1) return { label: names[0] };
  return names.length > 1 ? { labels: names } : {};
}

function categoryFor(name, context, where) {
  if (typeof name !== 'string' || context.categories.has(name)) return;
  const id = `${context.prefix}label:${encodeURIComponent(name)}`;
  try {
    context.categories.set(name, { op: 'create', id: checkObjectId(id, `label ${name}`), kind: 'category', fields: { name } });
  } catch (error) {
    context.categories.set(name, null);
    context.skipped.push({ where, reason: `no category object for its label: ${error.message}` });
  }
}

function resultFields(group, main, key) {
  const fields = { ls_id: key, ls_type: main.type };
  if (main.from_name !== undefined) fields.ls_from_name = main.from_name;
  if (main.to_name !== undefined) fields.ls_to_name = main.to_name;
  const origin = group.find((r) => r.origin !== undefined)?.origin;
  if (origin !== undefined) fields.ls_origin = origin;
  for (const result of group) {
    for (const [name, value] of Object.entries(without(result, RESULT_MEMBERS))) fields[`ls_${name}`] = value;
  }
  return fields;
}

function sourceFields(group, scope) {
  const score = group.find((r) => isJsonNumber(r.score))?.score;
  const fields = {};
  if (score !== undefined) fields.score = score;
  if (!scope.prediction) return fields;
  fields.source = 'auto';
  if (score === undefined && isJsonNumber(scope.entry.score)) fields.score = scope.entry.score;
  if (scope.entry.model_version !== undefined) fields.model = scope.entry.model_version;
  return fields;
}

function finite(value, ...names) {
  return names.every((name) => isJsonNumber(value[name]) && Number.isFinite(Number(value[name])));
}

/**
 * Returns {kind, geometry, used} for a merged result value, where used names the value
 * members the geometry took, or a string with the reason it has none.
 */
function regionShape(value, size) {
  const needsSize = 'rle' in value || 'points' in value || finite(value, 'x', 'y');
  if (needsSize && !size) return 'the image size is unknown (no original_width and original_height for its image)';
  const px = (v) => (Number(v) * size.width) / 100;
  const py = (v) => (Number(v) * size.height) / 100;
  if ('rle' in value) return brushShape(value, size);
  if ('points' in value) {
    const points = value.points;
    const valid = Array.isArray(points) && points.length >= 3 && points.every((p) => Array.isArray(p) && p.length === 2 && finite(p, 0, 1));
    if (!valid) return 'its points are not at least 3 [x, y] pairs';
    return { kind: 'polygon', geometry: [points.flatMap(([x, y]) => [px(x), py(y)])], used: ['points'] };
  }
  if (finite(value, 'x', 'y', 'radiusX', 'radiusY')) {
    const geometry = [px(value.x), py(value.y), px(value.radiusX), py(value.radiusY)];
    return { kind: 'ellipse', geometry, used: ['x', 'y', 'radiusX', 'radiusY'] };
  }
  if (finite(value, 'x', 'y', 'width', 'height')) return boxShape(value, px, py);
  if (finite(value, 'x', 'y')) return { kind: 'points', geometry: [px(value.x), py(value.y)], used: ['x', 'y'] };
  if ('start' in value || 'end' in value) {
    if (!finite(value, 'start', 'end') || Number(value.start) > Number(value.end)) {
      return 'its start and end are not numbers with start <= end';
    }
    return { kind: 'span', geometry: [value.start, value.end], used: ['start', 'end'] };
  }
  if (Array.isArray(value.choices) || 'text' in value) return { kind: 'tag', used: [] };
  return 'it has no position, choices or text';
}

/** Returns the unrotated box with the center of Label Studio's box rotated around its corner. */
function boxShape(value, px, py) {
  const used = ['x', 'y', 'width', 'height'];
  const x = px(value.x);
  const y = py(value.y);
  const w = px(value.width);
  const h = py(value.height);
  if (w < 0 || h < 0) return 'its width or height is negative';
  const degrees = isJsonNumber(value.rotation) ? Number(value.rotation) : 0;
  if (degrees === 0) return { kind: 'bbox', geometry: [x, y, w, h], used };
  const angle = (degrees * Math.PI) / 180;
  const cx = x + (w / 2) * Math.cos(angle) - (h / 2) * Math.sin(angle);
  const cy = y + (w / 2) * Math.sin(angle) + (h / 2) * Math.cos(angle);
  return { kind: 'bbox', geometry: [cx - w / 2, cy - h / 2, w, h], used };
}

function brushShape(value, size) {
  if (value.format !== undefined && value.format !== 'rle') return `its brush format ${JSON.stringify(value.format)} is not rle`;
  const { width, height } = size;
  let decoded;
  try {
    decoded = brushDecode(value.rle);
  } catch (error) {
    return `its brush RLE is invalid: ${error.message}`;
  }
  if (decoded.length !== width * height * 4) {
    return `its brush RLE holds ${decoded.length} bytes, not the ${width * height * 4} of a ${width}x${height} RGBA image`;
  }
  const bits = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (decoded[(y * width + x) * 4 + 3] !== 0) bits[x * height + y] = 1;
    }
  }
  return { kind: 'mask', geometry: rleFromBitmap(bits, height, width), used: ['rle', 'format'] };
}

// Relations

function convertRelation(relation, index, objectIds, scope, context) {
  const where = `${scope.where} relation ${index}`;
  const from = objectIds.get(relation.from_id);
  const to = objectIds.get(relation.to_id);
  if (from === undefined || to === undefined) {
    const missing = from === undefined ? relation.from_id : relation.to_id;
    const owner = scope.prediction ? 'prediction' : 'annotation';
    context.skipped.push({ where, reason: `its region ${JSON.stringify(missing)} is not an imported object of the same ${owner}` });
    return;
  }
  const fields = { item: scope.itemId, from, to };
  if (relation.direction !== undefined) fields.direction = relation.direction;
  if (Array.isArray(relation.labels)) {
    for (const name of relation.labels) categoryFor(name, context, where);
    if (relation.labels.length === 1) fields.label = relation.labels[0];
    else if (relation.labels.length > 1) fields.labels = relation.labels;
  }
  for (const [name, value] of Object.entries(without(relation, ['type', 'from_id', 'to_id', 'direction', 'labels']))) {
    fields[`ls_${name}`] = value;
  }
  Object.assign(fields, sourceFields([relation], scope));
  context.annotations.push({ op: 'create', id: checkObjectId(`${scope.base}rel:${index}`, where), kind: 'relation', fields });
}

// Brush RLE

/** Reads numbers of up to 32 bits from bytes, most significant bit first. */
class BitReader {
  constructor(bytes) {
    this.bytes = bytes;
    this.pos = 0;
  }

  read(count) {
    if (this.pos + count > this.bytes.length * 8) throw new Error('the data ends early');
    let value = 0;
    for (let i = 0; i < count; i++, this.pos++) {
      const bit = (this.bytes[this.pos >> 3] >> (7 - (this.pos & 7))) & 1;
      value = value * 2 + bit;
    }
    return value;
  }
}

/**
 * Decodes Label Studio's brush RLE: a 32-bit value count, the word size less one (5 bits),
 * four run-length sizes less one (4 bits each), then chunks. A chunk starts with a flag bit,
 * a 2-bit index of a run-length size, and the chunk's length less one in that many bits. One
 * word follows for the whole chunk when the flag is set, else one word per value.
 * @param {ArrayLike<number>} rle bytes, 0 to 255.
 * @returns {Uint8Array | Uint16Array | Uint32Array} the decoded values.
 * @throws {Error} for data that is not bytes, ends early or overflows its count.
 */
export function brushDecode(rle) {
  if (!Array.isArray(rle) && !ArrayBuffer.isView(rle)) throw new Error('it is not a list of bytes');
  const bytes = Uint8Array.from(rle, (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 255) throw new Error(`${JSON.stringify(v)} is not a byte`);
    return n;
  });
  const input = new BitReader(bytes);
  const count = input.read(32);
  const wordSize = input.read(5) + 1;
  const runSizes = [0, 1, 2, 3].map(() => input.read(4) + 1);
  if (count > 2 ** 30) throw new Error(`its value count ${count} is too large`);
  let out = new Uint32Array(count);
  if (wordSize <= 8) out = new Uint8Array(count);
  else if (wordSize <= 16) out = new Uint16Array(count);
  for (let i = 0; i < count;) {
    const repeat = input.read(1);
    const end = i + 1 + input.read(runSizes[input.read(2)]);
    if (end > count) throw new Error(`a chunk ends at value ${end}, past the count ${count}`);
    if (repeat) {
      out.fill(input.read(wordSize), i, end);
      i = end;
    } else {
      for (; i < end; i++) out[i] = input.read(wordSize);
    }
  }
  return out;
}

/** Writes numbers of up to 32 bits, most significant bit first. */
class BitWriter {
  constructor() {
    this.bytes = [];
    this.pos = 0;
  }

  write(value, count) {
    for (let i = count - 1; i >= 0; i--, this.pos++) {
      if ((this.pos & 7) === 0) this.bytes.push(0);
      if (Math.floor(value / 2 ** i) % 2) this.bytes[this.bytes.length - 1] |= 0x80 >> (this.pos & 7);
    }
  }
}

const ENCODE_RUN_SIZES = [3, 6, 10, 16];

/**
 * Encodes byte values in the brush RLE that brushDecode reads, with 8-bit words and one
 * repeated chunk per run of equal values (runs longer than 65536 are split).
 * @param {ArrayLike<number>} values bytes, 0 to 255.
 * @returns {number[]} the encoded bytes.
 */
export function brushEncode(values) {
  const output = new BitWriter();
  output.write(values.length, 32);
  output.write(8 - 1, 5);
  for (const size of ENCODE_RUN_SIZES) output.write(size - 1, 4);
  let i = 0;
  while (i < values.length) {
    let end = i + 1;
    while (end < values.length && values[end] === values[i] && end - i < 2 ** 16) end++;
    const sizeIndex = ENCODE_RUN_SIZES.findIndex((bits) => end - i - 1 < 2 ** bits);
    output.write(1, 1);
    output.write(sizeIndex, 2);
    output.write(end - i - 1, ENCODE_RUN_SIZES[sizeIndex]);
    output.write(values[i], 8);
    i = end;
  }
  return output.bytes;
}
