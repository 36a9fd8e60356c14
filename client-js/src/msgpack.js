/**
 * The msgpack encoding of the annolive protocol (subprotocol `annolive.v1.msgpack`). Each binary
 * frame is one msgpack map with the members of the JSON form and string keys.
 *
 * Messages are encoded with @msgpack/msgpack `encode` and decoded with its `decode`, with
 * `useBigInt64` off, so every number is a JavaScript number. Two limits follow from that:
 *
 * - JavaScript has one number type, so it cannot tell the float `3.0` from the integer `3`. The
 *   server sends floats as float64 whatever their value, and they decode to plain numbers. An
 *   outgoing number with an integral value, {@link JsonFloat} included, is sent as a msgpack int.
 *   The `json` encoding with the `losslessJson` codec of ./json.js keeps integral floats apart.
 * - Integers beyond ±(2^53-1) lose precision when they are decoded. An outgoing BigInt within
 *   ±(2^53-1) is sent as an int, and a larger one raises a RangeError, because @msgpack/msgpack
 *   would write its rounded value as a float64.
 *
 * Outgoing values are otherwise written as JSON.stringify writes them: `toJSON` is called,
 * undefined members are left out of maps and become nil in arrays, and non-finite numbers
 * become nil.
 *
 * NOTE: @msgpack/msgpack rejects a whole frame that has a map key `__proto__`, so a message that
 * carries a field or attrs key of that name cannot be read with this encoding.
 */

import { decode, encode } from '@msgpack/msgpack';

import { JsonFloat } from './json.js';

export const MSGPACK_SUBPROTOCOL = 'annolive.v1.msgpack';

/**
 * Returns value in the form that is encoded: plain objects, arrays, strings, finite numbers,
 * booleans and null, or undefined where JSON.stringify would leave the value out.
 * @throws {RangeError} for a BigInt beyond ±(2^53-1).
 * @throws {TypeError} for a cyclic structure.
 */
function toPlain(value, ancestors) {
  if (value instanceof JsonFloat) return value.valueOf();

  if (typeof value === 'bigint') {
    const number = Number(value);
    if (!Number.isSafeInteger(number)) {
      throw new RangeError(`cannot send the integer ${value} with the msgpack encoding: it is beyond 2^53-1; use the json encoding with the losslessJson codec`);
    }
    return number;
  }

  if (value !== null && typeof value === 'object' && typeof value.toJSON === 'function') {
    value = value.toJSON();
  }
  if (value instanceof Number || value instanceof String || value instanceof Boolean) {
    value = value.valueOf();
  }
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value !== 'object') return undefined;

  if (ancestors.has(value)) throw new TypeError('cannot encode a cyclic structure as msgpack');
  ancestors.add(value);
  let plain;
  if (Array.isArray(value)) {
    plain = value.map((item) => toPlain(item, ancestors) ?? null);
  } else {
    plain = {};
    for (const key of Object.keys(value)) {
      const member = toPlain(value[key], ancestors);
      // defineProperty stores a member named __proto__ as data.
      if (member !== undefined) {
        Object.defineProperty(plain, key, { value: member, enumerable: true, writable: true, configurable: true });
      }
    }
  }
  ancestors.delete(value);
  return plain;
}

/**
 * Encodes one message as msgpack.
 * @param {object} message
 * @returns {Uint8Array}
 * @throws {RangeError} for a BigInt beyond ±(2^53-1).
 * @throws {TypeError} for a cyclic structure.
 */
export function encodeMessage(message) {
  return encode(toPlain(message, new Set()));
}

/**
 * Decodes the payload of one binary frame: exactly one msgpack value.
 * @param {ArrayBuffer | ArrayBufferView} data
 * @returns {any}
 * @throws {RangeError | Error} when the bytes are not one complete msgpack value.
 */
export function decodeMessage(data) {
  return decode(data);
}
