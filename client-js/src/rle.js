/**
 * COCO run-length encoding (RLE) of binary masks, the `geometry` of `mask` objects.
 *
 * A mask of `size` [height, width] is read column by column: pixel (x, y) has the index
 * x * height + y. `counts` lists the lengths of the alternating runs of unset and set pixels,
 * starting with unset ones, so it starts with 0 when the first pixel is set. The compressed
 * form, as pycocotools writes it, is a string: each count from the fourth on is stored as the
 * difference to the count two places before it, and each value as 5-bit groups, low group
 * first, in characters 48 to 111. Bit 0x20 of a character marks that another group follows,
 * and bit 0x10 of the last group is the sign.
 *
 * This module converts between the two forms, computes area and bounding box, and converts
 * masks to and from bitmaps. It does not draw polygons.
 */

import { isCount } from './ids.js';

/**
 * Decodes the compressed counts string of pycocotools.
 * @param {string} text
 * @returns {number[]} run lengths.
 * @throws {Error} for a character outside 48 to 111, a string that ends inside a value, or a
 *   negative or unsafe run length.
 */
export function rleFromString(text) {
  const counts = [];
  let pos = 0;
  while (pos < text.length) {
    let value = 0;
    let shift = 1;
    let more = true;
    let group = 0;
    while (more) {
      if (pos >= text.length) throw new Error(`compressed RLE counts end inside a value at character ${pos}`);
      const code = text.charCodeAt(pos) - 48;
      if (code < 0 || code > 63) throw new Error(`compressed RLE counts have an invalid character at ${pos}`);
      group = code & 0x1f;
      value += group * shift;
      shift *= 32;
      more = (code & 0x20) !== 0;
      pos++;
    }
    if (group & 0x10) value -= shift;
    if (counts.length > 2) value += counts[counts.length - 2];
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new Error(`compressed RLE counts decode to the invalid run length ${value} at run ${counts.length}`);
    }
    counts.push(value);
  }
  return counts;
}

/**
 * Encodes run lengths as the compressed counts string of pycocotools.
 * @param {ArrayLike<number>} counts non-negative integers.
 * @returns {string}
 */
export function rleToString(counts) {
  let text = '';
  for (let i = 0; i < counts.length; i++) {
    let value = Number(counts[i]);
    if (i > 2) value -= Number(counts[i - 2]);
    let more = true;
    while (more) {
      let group = ((value % 32) + 32) % 32;
      value = Math.floor(value / 32);
      more = (group & 0x10) ? value !== -1 : value !== 0;
      if (more) group |= 0x20;
      text += String.fromCharCode(group + 48);
    }
  }
  return text;
}

/**
 * Returns the run lengths of a COCO RLE in either form, checked against its size.
 * @param {{counts: number[] | string, size: number[]}} rle
 * @returns {{counts: number[], height: number, width: number}}
 * @throws {Error} saying what is wrong: a size that is not [height, width], counts that are
 *   neither non-negative integers nor a valid string, or runs that do not add up to
 *   height * width.
 */
export function rleParse(rle) {
  const size = rle?.size;
  if (!Array.isArray(size) || size.length !== 2 || !size.every(isCount)) throw new Error('RLE size is not [height, width] of non-negative integers');
  const [height, width] = size.map(Number);
  let counts;
  if (typeof rle.counts === 'string') {
    counts = rleFromString(rle.counts);
  } else if (Array.isArray(rle.counts) && rle.counts.every(isCount)) {
    counts = rle.counts.map(Number);
  } else {
    throw new Error('RLE counts are neither a list of non-negative integers nor a compressed string');
  }
  const total = counts.reduce((sum, run) => sum + run, 0);
  if (total !== height * width) {
    throw new Error(`RLE runs add up to ${total} pixels, but size ${height}x${width} has ${height * width}`);
  }
  return { counts, height, width };
}

/**
 * Returns the area (set pixels) and COCO bbox [x, y, width, height] of a mask, computed as
 * pycocotools does: a run that spans columns covers every row between its ends.
 * @param {{counts: number[] | string, size: number[]}} rle
 * @returns {{area: number, bbox: number[]} | undefined} undefined for an invalid RLE.
 */
export function rleStats(rle) {
  let parsed;
  try {
    parsed = rleParse(rle);
  } catch {
    return undefined;
  }
  const { counts, height } = parsed;
  let area = 0;
  let pos = 0;
  const box = { minX: Infinity, minY: Infinity, maxX: -Infinity, maxY: -Infinity };
  for (let i = 0; i < counts.length; i++) {
    const run = counts[i];
    if (i % 2 === 1 && run > 0) {
      area += run;
      extendBox(box, pos, pos + run - 1, height);
    }
    pos += run;
  }
  if (area === 0) return { area: 0, bbox: [0, 0, 0, 0] };
  return { area, bbox: [box.minX, box.minY, box.maxX - box.minX + 1, box.maxY - box.minY + 1] };
}

function extendBox(box, first, last, height) {
  const firstX = Math.floor(first / height);
  const lastX = Math.floor(last / height);
  box.minX = Math.min(box.minX, firstX);
  box.maxX = Math.max(box.maxX, lastX);
  box.minY = Math.min(box.minY, lastX > firstX ? 0 : first % height);
  box.maxY = Math.max(box.maxY, lastX > firstX ? height - 1 : last % height);
}

/**
 * Encodes a column-major bitmap (one byte per pixel, non-zero = set) as uncompressed COCO RLE.
 * @param {Uint8Array} bits height * width bytes; index x * height + y.
 * @param {number} height
 * @param {number} width
 * @returns {{size: number[], counts: number[]}}
 */
export function rleFromBitmap(bits, height, width) {
  if (bits.length !== height * width) throw new Error(`bitmap has ${bits.length} pixels, not ${height}x${width}`);
  const counts = [];
  let current = 0;
  let run = 0;
  for (let i = 0; i < bits.length; i++) {
    const bit = bits[i] ? 1 : 0;
    if (bit !== current) {
      counts.push(run);
      current = bit;
      run = 0;
    }
    run++;
  }
  counts.push(run);
  return { size: [height, width], counts };
}

/**
 * Decodes a COCO RLE in either form to a column-major bitmap.
 * @param {{counts: number[] | string, size: number[]}} rle
 * @returns {{bits: Uint8Array, height: number, width: number}}
 * @throws {Error} for an invalid RLE, as rleParse.
 */
export function rleToBitmap(rle) {
  const { counts, height, width } = rleParse(rle);
  const bits = new Uint8Array(height * width);
  let pos = 0;
  for (let i = 0; i < counts.length; i++) {
    if (i % 2 === 1) bits.fill(1, pos, pos + counts[i]);
    pos += counts[i];
  }
  return { bits, height, width };
}
