// Runs the shared wire vectors of protocol/vectors/wire against @msgpack/msgpack as the client
// uses it. The bytes of every case decode to its JSON. Encoding the JSON gives the bytes, except
// where JavaScript numbers cannot represent what the C packer writes. The test output names
// those skipped cases and the reason.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';

import { decode, encode } from '@msgpack/msgpack';

import { JsonFloat, parse as parseLossless } from '../src/json.js';

const WIRE_DIR = new URL('../../protocol/vectors/wire/', import.meta.url);

/**
 * Returns why JavaScript cannot encode value as the C packer does, or false. The value comes
 * from the lossless parser, which keeps integral floats as JsonFloat and integers beyond
 * ±(2^53-1) as BigInt.
 */
function encodeSkipReason(value) {
  const found = new Set();
  const walk = (v) => {
    // @msgpack/msgpack writes a number as an int only when it is a safe integer, so an integral
    // float beyond 2^53-1 is written as float64, as C writes it.
    if (v instanceof JsonFloat && Number.isSafeInteger(v.valueOf())) {
      found.add('a float with an integral value, which JavaScript reads as an integer and @msgpack/msgpack writes as an int');
    } else if (typeof v === 'bigint') {
      found.add('an integer beyond 2^53-1, which a JavaScript number cannot hold');
    } else if (Array.isArray(v)) {
      v.forEach(walk);
    } else if (v !== null && typeof v === 'object') {
      Object.values(v).forEach(walk);
    }
  };
  walk(value);
  return found.size === 0 ? false : `the JSON has ${[...found].join(', and ')}`;
}

const files = readdirSync(WIRE_DIR).filter((name) => name.endsWith('.json')).sort();

test('the wire vector folder has files', () => {
  assert.ok(files.length > 0, `no *.json files in ${WIRE_DIR.pathname}`);
});

for (const file of files) {
  const text = readFileSync(new URL(file, WIRE_DIR), 'utf8');
  // JSON.parse gives the values a decoder produces: integral floats are plain numbers.
  const cases = JSON.parse(text);
  const lossless = parseLossless(text);

  describe(file, () => {
    cases.forEach((c, i) => {
      const bytes = Buffer.from(c.msgpack, 'hex');

      test(`${c.name}: decode`, () => {
        assert.match(c.msgpack, /^(?:[0-9a-f]{2})+$/);
        assert.deepStrictEqual(decode(bytes), c.json);
      });

      test(`${c.name}: encode`, { skip: encodeSkipReason(lossless[i].json) }, () => {
        assert.equal(Buffer.from(encode(c.json)).toString('hex'), c.msgpack);
      });
    });
  });
}
