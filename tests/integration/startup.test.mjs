// Start-up and shutdown of the annolive binary: option errors, an unreachable
// Redis, a port in use, --help, environment variables and signals.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  REPO,
  ANNOLIVE_BIN, TestEnv, describeRun, fetchJson, freePort, runProcess,
} from './harness.mjs';

const OPTIONS = [
  '--listen', '--redis', '--redis-password-file', '--instance', '--static', '--log-level', '--max-message', '--max-ops',
  '--max-fields', '--max-depth', '--max-rooms', '--max-queue', '--stream-max', '--redis-timeout',
  '--ping-interval', '--ping-timeout', '--help', '--version',
];

const env = new TestEnv('startup');

before(async () => {
  await env.init();
  await env.startRedis();
}, { timeout: 60000 });

after(async () => {
  await env.cleanup();
}, { timeout: 120000 });

// Runs the server without token checks, as these cases are about other
// settings.
function runServer(args, options = {}) {
  return runProcess(ANNOLIVE_BIN, ['--no-auth', ...args], { timeoutMs: 15000, ...options });
}

function stderrLines(result) {
  return result.stderr.split('\n').filter((line) => line.trim() !== '');
}

describe('startup', () => {
  const badOptions = [
    ['unknown option', ['--no-such-option']],
    ['listen without port', ['--listen', '127.0.0.1']],
    ['listen port out of range', ['--listen', '127.0.0.1:70000']],
    ['redis URL scheme', ['--redis', 'http://127.0.0.1:6379']],
    ['log level', ['--log-level', 'loud']],
    ['negative max-message', ['--max-message', '-5']],
    ['max-ops not a number', ['--max-ops', 'many']],
    ['missing option value', ['--instance']],
    ['stray argument', ['extra']],
  ];
  for (const [name, args] of badOptions) {
    test(`bad option: ${name}`, { timeout: 20000 }, env.wrap(async () => {
      // A later option overrides an earlier one, so a bad --listen replaces the good one.
      const result = await runServer(['--listen', `127.0.0.1:${await freePort()}`, '--redis', env.redis.url, ...args]);
      assert.equal(result.timedOut, false, describeRun(`annolive ${args.join(' ')}`, result));
      assert.notEqual(result.code, 0, describeRun(`annolive ${args.join(' ')}`, result));
      assert.equal(stderrLines(result).length, 1, describeRun(`annolive ${args.join(' ')} prints one line`, result));
    }));
  }

  test('bad environment variable', { timeout: 20000 }, env.wrap(async () => {
    const result = await runServer([], { env: { ANNOLIVE_LOG_LEVEL: 'loud' } });
    assert.notEqual(result.code, 0, describeRun('ANNOLIVE_LOG_LEVEL=loud', result));
    assert.equal(stderrLines(result).length, 1, describeRun('ANNOLIVE_LOG_LEVEL=loud prints one line', result));
    assert.match(result.stderr, /ANNOLIVE_LOG_LEVEL/, 'the error names the variable');
  }));

  test('unreachable Redis', { timeout: 30000 }, env.wrap(async () => {
    const redisPort = await freePort();
    const started = Date.now();
    const result = await runServer(['--listen', `127.0.0.1:${await freePort()}`,
      '--redis', `redis://127.0.0.1:${redisPort}`], { timeoutMs: 15000 });
    const elapsed = Date.now() - started;
    assert.equal(result.timedOut, false, describeRun('annolive with nothing at the Redis port', result));
    assert.notEqual(result.code, 0, describeRun('annolive with nothing at the Redis port', result));
    assert.ok(elapsed < 10000, `exit took ${elapsed} ms; expected under 10000 ms`);
    assert.match(result.stderr, new RegExp(String(redisPort)), describeRun('the error names the Redis port', result));
  }));

  test('port in use', { timeout: 30000 }, env.wrap(async () => {
    const blocker = net.createServer();
    await new Promise((resolve, reject) => {
      blocker.once('error', reject);
      blocker.listen(0, '127.0.0.1', resolve);
    });
    const { port } = blocker.address();
    try {
      const result = await runServer(['--listen', `127.0.0.1:${port}`, '--redis', env.redis.url]);
      assert.equal(result.timedOut, false, describeRun(`annolive on busy port ${port}`, result));
      assert.notEqual(result.code, 0, describeRun(`annolive on busy port ${port}`, result));
      assert.match(result.stderr, new RegExp(String(port)), describeRun('the error names the port', result));
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  }));

  test('start-up failures log one error', { timeout: 30000 }, env.wrap(async () => {
    const blocker = net.createServer();
    await new Promise((resolve, reject) => {
      blocker.once('error', reject);
      blocker.listen(0, '127.0.0.1', resolve);
    });
    const { port } = blocker.address();
    try {
      const cases = [
        ['unreachable Redis', ['--listen', `127.0.0.1:${await freePort()}`, '--redis', `redis://127.0.0.1:${await freePort()}`]],
        ['port in use', ['--listen', `127.0.0.1:${port}`, '--redis', env.redis.url]],
      ];
      for (const [what, args] of cases) {
        const result = await runServer(args);
        const errors = stderrLines(result).filter((line) => / ERROR /.test(line));
        assert.notEqual(result.code, 0, describeRun(what, result));
        assert.equal(errors.length, 1, describeRun(`${what} logs one ERROR line`, result));
      }
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  }));

  test('listens only on the given address', { timeout: 30000 }, env.wrap(async () => {
    // /proc/net/tcp lists listening sockets (state 0A) with the local address
    // in hex; 127.0.0.1 is 0100007F on little-endian machines.
    const instance = await env.startInstance('loopback-only');
    const portHex = instance.port.toString(16).toUpperCase().padStart(4, '0');
    const listening = [];
    for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
      const rows = fs.readFileSync(file, 'utf8').trim().split('\n').slice(1);
      for (const row of rows) {
        const [, local, , state] = row.trim().split(/\s+/);
        if (state === '0A' && local.endsWith(`:${portHex}`)) listening.push(`${file} ${local}`);
      }
    }
    assert.deepEqual(listening, [`/proc/net/tcp 0100007F:${portHex}`],
      'the server listens on 127.0.0.1 only, not on every address');
    const result = await instance.stop();
    assert.equal(result.code, 0, `exit code on SIGTERM; log:\n${instance.log()}`);
  }));

  test('help lists every option', { timeout: 20000 }, env.wrap(async () => {
    const result = await runServer(['--help']);
    assert.equal(result.code, 0, describeRun('annolive --help', result));
    const text = result.stdout + result.stderr;
    for (const option of OPTIONS) assert.ok(text.includes(option), `--help mentions ${option}:\n${text}`);

    // README's options table and --help name the same options.
    const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
    const documented = new Set([...readme.matchAll(/^\| `(--[a-z-]+)/gm)].map((m) => m[1]));
    documented.add('--version');
    const listed = new Set([...text.matchAll(/^ {2}(--[a-z-]+)/gm)].map((m) => m[1]));
    assert.deepEqual([...listed].sort(), [...documented].sort());
  }));

  test('settings from environment', { timeout: 30000 }, env.wrap(async () => {
    const instance = await env.startInstance('from-env', { settingsFromEnv: true });
    const health = await fetchJson(`${instance.httpUrl}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(health.body.status, 'ok', `healthz body: ${health.text}`);
    assert.equal(health.body.instance, 'from-env', `healthz body: ${health.text}`);
    const result = await instance.stop();
    assert.equal(result.code, 0, `exit code on SIGTERM; log:\n${instance.log()}`);
  }));

  for (const signal of ['SIGTERM', 'SIGINT']) {
    test(`${signal} exits with 0`, { timeout: 30000 }, env.wrap(async () => {
      const instance = await env.startInstance(`signal-${signal.toLowerCase()}`);
      const health = await fetchJson(`${instance.httpUrl}/healthz`);
      assert.equal(health.body.status, 'ok', `healthz body: ${health.text}`);
      assert.equal(health.body.instance, instance.name, `healthz body: ${health.text}`);
      const result = await instance.stop(signal);
      assert.equal(result.killed, false, `the instance exits on ${signal} without SIGKILL`);
      assert.equal(result.code, 0, `exit code on ${signal}; log:\n${instance.log()}`);
    }));
  }
});
