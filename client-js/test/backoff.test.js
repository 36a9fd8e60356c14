// Reconnect delays: full jitter within [0, cap], caps that double up to the maximum. The random
// source is replaced, so nothing here depends on the clock.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Backoff, backoffCap, backoffDelay } from '../src/backoff.js';
import { tokenExpiry } from '../src/session.js';

test('caps double from minMs and stop at maxMs', () => {
  const caps = Array.from({ length: 12 }, (_, n) => backoffCap(n, { minMs: 100, maxMs: 30000 }));
  assert.deepStrictEqual(caps, [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000]);
  assert.equal(backoffCap(5000, { minMs: 100, maxMs: 30000 }), 30000, 'a huge attempt number stays at the cap');
});

test('delays lie within [0, cap] for the extreme random values', () => {
  for (let n = 0; n < 20; n++) {
    const cap = backoffCap(n, { minMs: 50, maxMs: 5000 });
    assert.equal(backoffDelay(n, { minMs: 50, maxMs: 5000, random: () => 0 }), 0);
    const top = backoffDelay(n, { minMs: 50, maxMs: 5000, random: () => 0.999999 });
    assert.ok(top >= 0, `delay ${top} of attempt ${n} is not negative`);
    assert.ok(top <= cap, `delay ${top} of attempt ${n} is at most ${cap}`);
    assert.ok(top >= cap / 2, `a random value near 1 gives a delay near the cap ${cap}, got ${top}`);
  }
});

test('a Backoff draws from growing caps and starts over after reset', () => {
  const draws = [];
  const backoff = new Backoff({ minMs: 10, maxMs: 1000, random: () => 0.5 });
  const caps = [];
  for (let i = 0; i < 9; i++) {
    caps.push(backoff.cap);
    draws.push(backoff.next());
  }
  assert.deepStrictEqual(caps, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
  assert.deepStrictEqual(draws, [5, 10, 20, 40, 80, 160, 320, 500, 500]);
  for (let i = 0; i < caps.length; i++) assert.ok(draws[i] >= 0 && draws[i] <= caps[i]);
  backoff.reset();
  assert.equal(backoff.cap, 10);
});

test('many random delays stay within their caps', () => {
  const backoff = new Backoff({ minMs: 1, maxMs: 64 });
  for (let i = 0; i < 200; i++) {
    const cap = backoff.cap;
    const delay = backoff.next();
    assert.ok(Number.isInteger(delay), `delay ${delay} is an integer`);
    assert.ok(delay >= 0, `delay ${delay} is not negative`);
    assert.ok(delay <= cap, `delay ${delay} is at most ${cap}`);
  }
});

test('invalid limits are refused', () => {
  assert.throws(() => new Backoff({ minMs: 10, maxMs: 5 }), /invalid backoff limits/);
  assert.throws(() => new Backoff({ minMs: -1 }), /invalid backoff limits/);
});

test('tokenExpiry reads exp from a JWT payload', () => {
  const payload = Buffer.from(JSON.stringify({ sub: 'u', exp: 2000000000 })).toString('base64url');
  assert.equal(tokenExpiry(`eyJhbGciOiJIUzI1NiJ9.${payload}.sig`), 2000000000 * 1000);
  assert.equal(tokenExpiry('not a token'), null);
  assert.equal(tokenExpiry(`x.${Buffer.from('{"sub":"u"}').toString('base64url')}.y`), null);
});
