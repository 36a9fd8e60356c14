/**
 * Conversion between COCO instances JSON and annolive objects.
 *
 * Import makes one `create` op per category (kind `category`), image (kind `item`) and
 * annotation (kind `polygon`, `mask` or `bbox`), plus one `tag` object that keeps the
 * file's `info`, `licenses` and other top-level members. Ids are deterministic, so a
 * second import of the same file meets `exists` conflicts instead of making copies.
 * Export is the inverse and leaves every imported value as it was read.
 */

import { checkObjectId, isJsonNumber, isJsonObject, without } from './ids.js';
import { rleParse, rleStats } from './rle.js';

export const DEFAULT_COCO_PREFIX = 'coco:';

const TOP_LEVEL = ['info', 'licenses', 'images', 'annotations', 'categories'];
const ANNOTATION_KINDS = new Set(['bbox', 'polygon', 'mask']);

/** Returns true when value looks like COCO instances JSON (it has images and annotations). */
export function isCoco(value) {
  return isJsonObject(value) && Array.isArray(value.images) && Array.isArray(value.annotations);
}

/**
 * Converts COCO instances JSON to protocol `create` ops: the dataset tag (when the file has
 * info, licenses or other top-level members), categories and images first, then annotations.
 *
 * Ids: `${prefix}dataset`, `${prefix}cat:${id}`, `${prefix}img:${id}` and `${prefix}ann:${id}`.
 * An annotation is a `polygon` when its segmentation is a non-empty list of rings, a `mask`
 * when it is an RLE object (geometry `{counts, size}` as is, with counts a list or the
 * compressed string of pycocotools, both column-major), else a `bbox` whose geometry
 * is its bbox. It keeps every member as a field except `id` (now `coco_id`), `image_id`
 * (now `item`, the item's object id) and a segmentation that became its geometry, and
 * gets `label`, the name of its category.
 * @param {object} coco parsed COCO instances JSON.
 * @param {{prefix?: string}} [options]
 * @returns {object[]} create ops.
 * @throws {Error} when the input is not COCO instances JSON or an element has no usable id.
 */
export function cocoToOps(coco, options = {}) {
  const prefix = options.prefix ?? DEFAULT_COCO_PREFIX;
  if (!isCoco(coco)) {
    throw new Error('input is not COCO instances JSON: expected an object with "images" and "annotations" arrays');
  }
  const categories = coco.categories ?? [];
  if (!Array.isArray(categories)) throw new Error('COCO "categories" must be an array');

  const dataset = datasetOp(coco, prefix);
  const ops = Object.keys(dataset.fields).length > 0 ? [dataset] : [];
  const categoryNames = new Map();
  for (const [index, category] of categories.entries()) {
    const id = elementId(category, `categories[${index}]`);
    categoryNames.set(String(id), category.name);
    ops.push(createOp(`${prefix}cat:${id}`, 'category', { ...without(category, ['id']), coco_id: category.id }));
  }
  for (const [index, image] of coco.images.entries()) {
    const id = elementId(image, `images[${index}]`);
    ops.push(createOp(`${prefix}img:${id}`, 'item', { ...without(image, ['id']), coco_id: image.id }));
  }
  for (const [index, annotation] of coco.annotations.entries()) {
    ops.push(annotationOp(annotation, `annotations[${index}]`, prefix, categoryNames));
  }
  return ops;
}

function createOp(id, kind, fields) {
  return { op: 'create', id: checkObjectId(id, `a COCO ${kind}`), kind, fields };
}

function elementId(element, where) {
  if (!isJsonObject(element)) throw new Error(`COCO ${where} is not an object`);
  const id = element.id;
  if (!isJsonNumber(id) && typeof id !== 'string') {
    throw new Error(`COCO ${where} has no "id" (a number or a string)`);
  }
  return id;
}

function datasetOp(coco, prefix) {
  const fields = {};
  if ('info' in coco) fields.coco_info = coco.info;
  if ('licenses' in coco) fields.coco_licenses = coco.licenses;
  const extra = without(coco, TOP_LEVEL);
  if (Object.keys(extra).length > 0) fields.coco_extra = extra;
  return createOp(`${prefix}dataset`, 'tag', fields);
}

function isRingList(segmentation) {
  return Array.isArray(segmentation) && segmentation.length > 0 && segmentation.every(Array.isArray);
}

function isRle(segmentation) {
  return isJsonObject(segmentation) && 'counts' in segmentation && 'size' in segmentation;
}

function annotationOp(annotation, where, prefix, categoryNames) {
  const id = elementId(annotation, where);
  const segmentation = annotation.segmentation;
  let kind;
  let geometry;
  let consumed = ['id', 'image_id'];
  if (isRingList(segmentation)) {
    kind = 'polygon';
    geometry = segmentation;
    consumed = [...consumed, 'segmentation'];
  } else if (isRle(segmentation)) {
    kind = 'mask';
    geometry = segmentation;
    consumed = [...consumed, 'segmentation'];
  } else if (Array.isArray(annotation.bbox)) {
    kind = 'bbox';
    geometry = annotation.bbox;
  } else {
    throw new Error(`COCO ${where} (id ${id}) has neither a segmentation nor a bbox`);
  }
  const fields = { item: `${prefix}img:${annotation.image_id}` };
  const label = categoryNames.get(String(annotation.category_id));
  if (label !== undefined) fields.label = label;
  Object.assign(fields, without(annotation, consumed), { coco_id: annotation.id, geometry });
  return createOp(`${prefix}ann:${id}`, kind, fields);
}

/**
 * @typedef {{id: string, kind: string, reason: string}} SkippedObject
 * An object that COCO cannot express, and why.
 */

/**
 * Converts snapshot objects to COCO instances JSON.
 *
 * Images, annotations and categories are sorted by COCO id. Objects without `coco_id`
 * get the next free id. Every value that import stored is written back unchanged; `bbox`,
 * `area` and `iscrowd` are computed only where an object lacks them.
 * Objects that COCO cannot express (other kinds, annotations without an exported image or
 * category, invalid geometry, duplicate COCO ids) are listed in `skipped`.
 * @param {{id: string, kind: string, fields?: object}[]} objects
 * @returns {{coco: object, skipped: SkippedObject[]}}
 */
export function objectsToCoco(objects) {
  const skipped = [];
  const byKind = groupObjects(objects, skipped);
  const coco = datasetMembers(byKind.dataset, skipped);

  const categories = exportElements(byKind.category, skipped);
  const images = exportElements(byKind.item, skipped);
  const imageIds = new Map(images.map(({ object, element }) => [object.id, element.id]));
  const resolveCategory = categoryResolver(categories.map(({ element }) => element));

  const annotations = [];
  for (const object of byKind.annotation) {
    const annotation = annotationElement(object, imageIds, resolveCategory, skipped);
    if (annotation) annotations.push({ object, element: annotation });
  }
  assignIds(annotations, skipped);

  coco.images = sortById(images.map(({ element }) => element));
  coco.annotations = sortById(annotations.map(({ element }) => element));
  coco.categories = sortById(categories.map(({ element }) => element));
  return { coco, skipped };
}

function groupObjects(objects, skipped) {
  const byKind = { dataset: [], category: [], item: [], annotation: [] };
  const sorted = [...objects].sort((a, b) => compareIds(a.id, b.id));
  for (const object of sorted) {
    const fields = object.fields ?? {};
    if (object.kind === 'category' || object.kind === 'item') {
      byKind[object.kind].push(object);
    } else if (ANNOTATION_KINDS.has(object.kind)) {
      byKind.annotation.push(object);
    } else if (object.kind === 'tag' && ('coco_info' in fields || 'coco_licenses' in fields || 'coco_extra' in fields)) {
      byKind.dataset.push(object);
    } else {
      skipped.push({ id: object.id, kind: object.kind, reason: `kind ${object.kind} has no COCO instances form` });
    }
  }
  return byKind;
}

function datasetMembers(datasets, skipped) {
  const coco = {};
  const [first, ...others] = datasets;
  if (first) {
    const fields = first.fields ?? {};
    if ('coco_info' in fields) coco.info = fields.coco_info;
    if ('coco_licenses' in fields) coco.licenses = fields.coco_licenses;
    if (isJsonObject(fields.coco_extra)) Object.assign(coco, without(fields.coco_extra, TOP_LEVEL));
  }
  for (const other of others) {
    skipped.push({
      id: other.id,
      kind: other.kind,
      reason: `a second COCO dataset tag; info and licenses are taken from ${first.id}`,
    });
  }
  return coco;
}

/**
 * Builds the COCO elements of item or category objects: `{id: coco_id, ...fields}`.
 * Objects without coco_id get new ids; a repeated coco_id is skipped.
 */
function exportElements(objects, skipped) {
  const exported = [];
  for (const object of objects) {
    const fields = object.fields ?? {};
    const element = { id: fields.coco_id, ...without(fields, ['coco_id']) };
    exported.push({ object, element });
  }
  return assignIds(exported, skipped);
}

/** Gives elements without an id the next free ids and drops repeated ids, in place. */
function assignIds(entries, skipped) {
  const seen = new Map();
  let maxId = 0;
  for (const { element } of entries) {
    if (isJsonNumber(element.id)) maxId = Math.max(maxId, Number(element.id));
  }
  const kept = [];
  for (const entry of entries) {
    const { object, element } = entry;
    if (element.id === undefined) {
      element.id = ++maxId;
    } else {
      const key = String(element.id);
      if (seen.has(key)) {
        skipped.push({ id: object.id, kind: object.kind, reason: `coco_id ${key} is also the COCO id of ${seen.get(key)}` });
        continue;
      }
      seen.set(key, object.id);
    }
    kept.push(entry);
  }
  entries.splice(0, entries.length, ...kept);
  return entries;
}

/** Returns a function that maps an annotation's fields to a category id, or undefined. */
function categoryResolver(categories) {
  const byName = new Map();
  const ids = new Set();
  for (const category of categories) {
    ids.add(String(category.id));
    // A name shared by two categories resolves to none of them.
    byName.set(category.name, byName.has(category.name) ? null : category.id);
  }
  return (fields) => {
    const byLabel = byName.get(fields.label);
    if (byLabel !== undefined && byLabel !== null) return byLabel;
    if (fields.category_id !== undefined && ids.has(String(fields.category_id))) return fields.category_id;
    return undefined;
  };
}

const ANNOTATION_INTERNAL = ['item', 'label', 'coco_id', 'geometry', 'category_id', 'bbox', 'area', 'iscrowd', 'segmentation'];

function annotationElement(object, imageIds, resolveCategory, skipped) {
  const fields = object.fields ?? {};
  const skip = (reason) => {
    skipped.push({ id: object.id, kind: object.kind, reason });
    return null;
  };
  const imageId = imageIds.get(fields.item);
  if (imageId === undefined) return skip(`its item ${JSON.stringify(fields.item)} is not an exported item object`);
  const categoryId = resolveCategory(fields);
  if (categoryId === undefined) {
    return skip(`neither its label ${JSON.stringify(fields.label)} nor its category_id ${JSON.stringify(fields.category_id)} names an exported category`);
  }
  const shape = annotationShape(object.kind, fields);
  if (typeof shape === 'string') return skip(shape);

  const element = { id: fields.coco_id, image_id: imageId, category_id: categoryId };
  // NOTE: a stored bbox or area is written as imported, even when an edit has since changed the geometry.
  if (shape.segmentation !== undefined) element.segmentation = shape.segmentation;
  element.area = fields.area ?? shape.area();
  element.bbox = shape.bbox;
  element.iscrowd = fields.iscrowd ?? (object.kind === 'mask' ? 1 : 0);
  Object.assign(element, without(fields, ANNOTATION_INTERNAL));
  if (element.area === undefined) return skip('its area is missing and cannot be computed from its geometry');
  if (element.bbox === undefined) return skip('its bbox is missing and cannot be computed from its geometry');
  return element;
}

/**
 * Returns {segmentation, bbox, area()} of an annotation object, or a string saying why its
 * geometry is invalid.
 */
function annotationShape(kind, fields) {
  const geometry = fields.geometry;
  if (kind === 'bbox') {
    if (!isBox(geometry)) return 'its geometry is not a bbox [x, y, width, height]';
    return { segmentation: fields.segmentation, bbox: geometry, area: () => Number(geometry[2]) * Number(geometry[3]) };
  }
  if (kind === 'polygon') {
    if (!isRingList(geometry) || !geometry.every(isRing)) {
      return 'its geometry is not a list of [x1, y1, x2, y2, ...] rings';
    }
    return { segmentation: geometry, bbox: fields.bbox ?? ringsBox(geometry), area: () => ringsArea(geometry) };
  }
  if (!isRle(geometry)) return 'its geometry is not an RLE object {counts, size}';
  try {
    rleParse(geometry);
  } catch (error) {
    return `its geometry is not a valid COCO RLE: ${error.message}`;
  }
  const stats = rleStats(geometry);
  return { segmentation: geometry, bbox: fields.bbox ?? stats.bbox, area: () => stats.area };
}

function isBox(value) {
  return Array.isArray(value) && value.length === 4 && value.every(isJsonNumber);
}

function isRing(ring) {
  return ring.length >= 6 && ring.length % 2 === 0 && ring.every(isJsonNumber);
}

function ringsBox(rings) {
  const xs = rings.flatMap((ring) => ring.filter((_, i) => i % 2 === 0).map(Number));
  const ys = rings.flatMap((ring) => ring.filter((_, i) => i % 2 === 1).map(Number));
  const x = Math.min(...xs);
  const y = Math.min(...ys);
  return [x, y, Math.max(...xs) - x, Math.max(...ys) - y];
}

/** Sum of the rings' areas by the shoelace formula, as pycocotools adds polygon parts. */
function ringsArea(rings) {
  let total = 0;
  for (const ring of rings) {
    let twice = 0;
    for (let i = 0; i < ring.length; i += 2) {
      const j = (i + 2) % ring.length;
      twice += Number(ring[i]) * Number(ring[j + 1]) - Number(ring[j]) * Number(ring[i + 1]);
    }
    total += Math.abs(twice) / 2;
  }
  return total;
}

function sortById(elements) {
  return elements.sort((a, b) => compareIds(a.id, b.id));
}

function compareIds(a, b) {
  const aNumber = isJsonNumber(a);
  const bNumber = isJsonNumber(b);
  if (aNumber && bNumber) return Number(a) - Number(b);
  if (aNumber !== bNumber) return aNumber ? -1 : 1;
  if (String(a) === String(b)) return 0;
  return String(a) < String(b) ? -1 : 1;
}
