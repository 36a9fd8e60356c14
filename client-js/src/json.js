/**
 * A JSON codec that keeps the integer/float distinction of numbers.
 *
 * JSON.parse reads `191.0` and `191` as the same JavaScript number, and JSON.stringify
 * writes both back as `191`. The annolive protocol keeps a number's JSON type (an
 * integer stays an integer, a float stays a float), so tools that copy data through
 * JavaScript use this codec to avoid turning floats into integers:
 *
 * - a number written with a fraction or an exponent whose value is an integer, such as
 *   `191.0` or `1e3`, is read as a {@link JsonFloat} and written back with `.0`;
 * - an integer outside ±(2^53-1) is read as a BigInt, so no digit is lost;
 * - every other value is read and written as JSON.parse and JSON.stringify do.
 *
 * Floats with a fraction, such as `250.8142292490119`, are plain numbers: JavaScript
 * writes them with the shortest digits that read back as the same double, so they keep
 * both their type and their value.
 */

/** A float whose value is an integer, kept apart from integers. Arithmetic works on it. */
export class JsonFloat extends Number {
  /** @returns {string} the JSON text of this float, for example `191.0`. */
  toJSONText() {
    const value = this.valueOf();
    if (Object.is(value, -0)) return '-0.0';
    const text = JSON.stringify(value);
    return /^-?\d+$/.test(text) ? `${text}.0` : text;
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const WHITESPACE = /[ \t\n\r]*/y;

class Parser {
  /** @param {string} text */
  constructor(text) {
    this.text = text;
    this.pos = 0;
  }

  fail(what) {
    const found = this.pos < this.text.length ? JSON.stringify(this.text[this.pos]) : 'end of input';
    throw new SyntaxError(`invalid JSON at position ${this.pos}: expected ${what}, found ${found}`);
  }

  skipWhitespace() {
    WHITESPACE.lastIndex = this.pos;
    WHITESPACE.test(this.text);
    this.pos = WHITESPACE.lastIndex;
  }

  parseDocument() {
    const value = this.parseValue();
    this.skipWhitespace();
    if (this.pos !== this.text.length) this.fail('end of input');
    return value;
  }

  parseValue() {
    this.skipWhitespace();
    const c = this.text[this.pos];
    if (c === '{') return this.parseObject();
    if (c === '[') return this.parseArray();
    if (c === '"') return this.parseString();
    if (c === '-' || (c >= '0' && c <= '9')) return this.parseNumber();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]]) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return value;
      }
    }
    return this.fail('a JSON value');
  }

  parseObject() {
    const object = {};
    this.pos++;
    this.skipWhitespace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return object;
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.pos] !== '"') this.fail('a member name');
      const key = this.parseString();
      this.skipWhitespace();
      if (this.text[this.pos] !== ':') this.fail("':'");
      this.pos++;
      const value = this.parseValue();
      // defineProperty stores a member named __proto__ as data, as JSON.parse does.
      Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
      this.skipWhitespace();
      const c = this.text[this.pos++];
      if (c === '}') return object;
      if (c !== ',') {
        this.pos--;
        this.fail("',' or '}'");
      }
    }
  }

  parseArray() {
    const array = [];
    this.pos++;
    this.skipWhitespace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return array;
    }
    for (;;) {
      array.push(this.parseValue());
      this.skipWhitespace();
      const c = this.text[this.pos++];
      if (c === ']') return array;
      if (c !== ',') {
        this.pos--;
        this.fail("',' or ']'");
      }
    }
  }

  parseString() {
    const start = this.pos;
    let end = start + 1;
    let escaped = false;
    for (;;) {
      const c = this.text.charCodeAt(end);
      if (Number.isNaN(c)) {
        this.pos = end;
        this.fail('the closing quote of a string');
      }
      if (c === 0x22) break;
      if (c === 0x5c) {
        escaped = true;
        end++;
      } else if (c < 0x20) {
        this.pos = end;
        this.fail('no control character in a string');
      }
      end++;
    }
    this.pos = end + 1;
    if (!escaped) return this.text.slice(start + 1, end);
    // JSON.parse decodes the escapes and rejects invalid ones.
    return JSON.parse(this.text.slice(start, end + 1));
  }

  parseNumber() {
    NUMBER.lastIndex = this.pos;
    const match = NUMBER.exec(this.text);
    if (!match) this.fail('a number');
    this.pos = NUMBER.lastIndex;
    const value = Number(match[0]);
    const isFloat = match[1] !== undefined || match[2] !== undefined;
    if (isFloat) return Number.isInteger(value) ? new JsonFloat(value) : value;
    return Number.isSafeInteger(value) ? value : BigInt(match[0]);
  }
}

/**
 * Parses JSON text, keeping integral floats as {@link JsonFloat} and large integers as BigInt.
 * @param {string} text
 * @returns {any}
 * @throws {SyntaxError} naming the position of the first invalid character.
 */
export function parse(text) {
  return new Parser(String(text)).parseDocument();
}

/**
 * Serializes a value to compact JSON text, writing {@link JsonFloat} values with `.0` and
 * BigInt values as integers. Other values follow JSON.stringify: `toJSON` is called,
 * undefined, functions and symbols are left out of objects and become null in arrays,
 * and non-finite numbers become null.
 * @param {any} value
 * @returns {string | undefined} undefined when value itself has no JSON form, as with JSON.stringify.
 */
export function stringify(value) {
  return serialize(value, new Set());
}

function serialize(value, ancestors) {
  if (value instanceof JsonFloat) return value.toJSONText();
  if (typeof value === 'bigint') return value.toString();
  if (value !== null && typeof value === 'object' && typeof value.toJSON === 'function') {
    value = value.toJSON();
  }
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (value instanceof Number || value instanceof String || value instanceof Boolean) {
    return JSON.stringify(value);
  }
  if (ancestors.has(value)) throw new TypeError('cannot serialize a cyclic structure to JSON');
  ancestors.add(value);
  let text;
  if (Array.isArray(value)) {
    const items = value.map((item) => serialize(item, ancestors) ?? 'null');
    text = `[${items.join(',')}]`;
  } else {
    const members = [];
    for (const key of Object.keys(value)) {
      const member = serialize(value[key], ancestors);
      if (member !== undefined) members.push(`${JSON.stringify(key)}:${member}`);
    }
    text = `{${members.join(',')}}`;
  }
  ancestors.delete(value);
  return text;
}

/** The lossless codec, in the shape that AnnoliveClient's `json` option takes. */
export const losslessJson = Object.freeze({ parse, stringify });
