import assert from 'node:assert/strict';
import { test } from 'node:test';

import { JsonFloat, parse, stringify } from '../src/json.js';

test('parse keeps integral floats apart', () => {
  const value = parse('{"a": 191.0, "b": 191, "c": 1e3, "d": 2.5, "e": -0.0}');
  assert.ok(value.a instanceof JsonFloat);
  assert.equal(Number(value.a), 191);
  assert.equal(value.b, 191);
  assert.ok(value.c instanceof JsonFloat);
  assert.equal(Number(value.c), 1000);
  assert.equal(value.d, 2.5);
  assert.ok(value.e instanceof JsonFloat);
});

test('deepStrictEqual tells JsonFloat from integer', () => {
  assert.notDeepStrictEqual(parse('[321.0]'), parse('[321]'));
  assert.deepStrictEqual(parse('[321.0]'), parse('[321.00]'));
});

test('stringify writes floats back as floats', () => {
  const text = '{"a":191.0,"b":191,"c":1000.0,"d":2.5,"e":-0.0,"f":[1.0e+21,null,true,"x"]}';
  assert.equal(stringify(parse(text)), '{"a":191.0,"b":191,"c":1000.0,"d":2.5,"e":-0.0,"f":[1e+21,null,true,"x"]}');
});

test('large integers round-trip as BigInt', () => {
  const value = parse('[12345678901234567890, -9007199254740993]');
  assert.equal(typeof value[0], 'bigint');
  assert.equal(stringify(value), '[12345678901234567890,-9007199254740993]');
});

test('real floats keep every digit', () => {
  const text = '[250.8142292490119,107.33596837944665,18234.62355,0.1,5e-324]';
  assert.equal(stringify(parse(text)), text);
});

test('strings with escapes decode like JSON.parse', () => {
  const text = '["a\\"b\\\\c\\n\\u00e9\\ud83d\\ude00", "plain", ""]';
  assert.deepStrictEqual(parse(text), JSON.parse(text));
  assert.equal(stringify(parse(text)), JSON.stringify(JSON.parse(text)));
});

test('__proto__ member is stored as data', () => {
  const value = parse('{"__proto__": {"polluted": 1}}');
  assert.equal(Object.getPrototypeOf(value), Object.prototype);
  assert.deepStrictEqual(Object.keys(value), ['__proto__']);
  assert.equal({}.polluted, undefined);
});

test('stringify follows JSON.stringify for other values', () => {
  const value = { a: undefined, b: () => 1, c: [undefined, NaN, Infinity], d: new Date(0), e: 'é' };
  assert.equal(stringify(value), JSON.stringify(value));
  assert.equal(stringify(undefined), undefined);
});

test('parse rejects invalid JSON with a position', () => {
  for (const text of ['', '{', '[1,]', '{"a" 1}', '01', '"abc', 'nul', '[1] x', '{"a":1,}', '"\t"']) {
    assert.throws(() => parse(text), SyntaxError, `accepted ${JSON.stringify(text)}`);
  }
  assert.throws(() => parse('[1,]'), /position 3/);
});

test('stringify rejects cycles', () => {
  const value = [];
  value.push(value);
  assert.throws(() => stringify(value), /cyclic/);
});
