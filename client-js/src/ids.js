/** Helpers shared by the converters. */

import { JsonFloat } from './json.js';

/** Object ids are 1 to 64 bytes of printable ASCII (0x21 to 0x7e). */
const OBJECT_ID = /^[\x21-\x7e]{1,64}$/;

/**
 * Returns id when it is a valid protocol object id.
 * @param {string} id
 * @param {string} what the input element the id is made for, named in the error.
 * @throws {Error} when the id is empty, longer than 64 bytes or not printable ASCII.
 */
export function checkObjectId(id, what) {
  if (!OBJECT_ID.test(id)) {
    throw new Error(
      `cannot make an object id for ${what}: ${JSON.stringify(id)} is not 1 to 64 printable ASCII characters; use a shorter --prefix`,
    );
  }
  return id;
}

/**
 * Returns true for a JSON number as the converters see it: a number, a Number object
 * (such as JsonFloat from the lossless codec) or a BigInt.
 */
export function isJsonNumber(value) {
  return (typeof value === 'number' && Number.isFinite(value)) || value instanceof Number || typeof value === 'bigint';
}

/** Returns a copy of object without the named members. */
export function without(object, names) {
  const copy = {};
  for (const [key, value] of Object.entries(object)) {
    if (!names.includes(key)) copy[key] = value;
  }
  return copy;
}

/** Returns true for a plain JSON object (not null, not an array). */
export function isJsonObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Number);
}

/**
 * Returns value, as a JsonFloat when it is an integer computed from floats, so that a width
 * computed from 191.0 and 313.0 is written as 122.0 and not as an integer.
 * @param {number} value the computed number.
 * @param {unknown[]} inputs the values it was computed from, as read.
 */
export function keepFloat(value, inputs) {
  const fromFloats = inputs.some((v) => v instanceof JsonFloat || (typeof v === 'number' && !Number.isInteger(v)));
  return fromFloats && Number.isInteger(value) ? new JsonFloat(value) : value;
}

/** Returns true for a JSON number that is a non-negative safe integer, such as a count. */
export function isCount(value) {
  return isJsonNumber(value) && Number.isSafeInteger(Number(value)) && Number(value) >= 0;
}
