// Command-line checks that need no server: help, usage errors and exit codes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/annolive.js', import.meta.url));
const PACKAGE_JSON = fileURLToPath(new URL('../package.json', import.meta.url));

function run(...args) {
  const result = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('help prints usage on stdout', () => {
  for (const args of [['--help'], ['import', '--help'], ['export', '--help'], ['watch', '-h']]) {
    const { code, stdout, stderr } = run(...args);
    assert.equal(code, 0, args.join(' '));
    assert.match(stdout, /^Usage: annolive/);
    assert.equal(stderr, '');
  }
});

test('usage errors exit 2 with one line', () => {
  const cases = [
    [[], /Usage: annolive/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['export', '--room', 'r'], /missing --url; pass the server URL/],
    [['export', '--url', 'ws://127.0.0.1:1'], /missing --room/],
    [['watch', '--url', 'ws://127.0.0.1:1', '--room', 'a b'], /invalid --room "a b"/],
    [['export', '--url', 'ws://127.0.0.1:1', '--room', 'r', '--format', 'voc'], /invalid --format "voc"/],
    [['import', '--url', 'ws://127.0.0.1:1', '--room', 'r'], /missing input files/],
    [['import', '--url', 'ws://127.0.0.1:1', '--room', 'r', '--batch', '0', 'x.json'], /invalid --batch "0"/],
    [['import', '--url', 'ws://127.0.0.1:1', '--room', 'r', '/nonexistent.json'], /cannot read \/nonexistent\.json: no such file/],
    [['import', '--url', 'http://127.0.0.1:1', '--room', 'r', 'x.json'], /scheme must be ws: or wss:/],
    [['watch', '--url', 'ws://127.0.0.1:1', '--room', 'r', '--bogus'], /Unknown option '--bogus'; see annolive watch --help/],
    [['watch', '--url', 'ws://127.0.0.1:1', '--room', 'r', '--encoding', 'cbor'], /invalid --encoding "cbor": use json or msgpack/],
    [['import', '--url', 'ws://127.0.0.1:1', '--room', 'r', '--format', 'voc', 'x.json'], /invalid --format "voc": use coco, labelme, cvat, labelstudio/],
    [['import', '--url', 'ws://127.0.0.1:1', '--room', 'r', '--image-size', '0x5', 'x.json'], /invalid --image-size "0x5": use WIDTHxHEIGHT/],
    [['import', '--url', 'ws://127.0.0.1:1', '--room', 'r', '--format', 'cvat', PACKAGE_JSON], /package\.json: the file is not cvat JSON, which --format cvat expects/],
    [['import', '--url', 'ws://127.0.0.1:1', '--room', 'r', '--cvat-meta', PACKAGE_JSON, 'x.json'], /invalid --cvat-meta .*package\.json: expected an object with a "frames" list/],
    [['import', '--url', 'ws://127.0.0.1:1', '--room', 'r', '--cvat-labels', PACKAGE_JSON, 'x.json'], /invalid --cvat-labels .*package\.json: expected a list of labels/],
  ];
  for (const [args, pattern] of cases) {
    const { code, stdout, stderr } = run(...args);
    assert.equal(code, 2, `exit code of ${args.join(' ')}`);
    assert.equal(stdout, '', `stdout of ${args.join(' ')}`);
    assert.match(stderr, pattern);
  }
});

test('unknown file format is a usage error', () => {
  const { code, stderr } = run('import', '--url', 'ws://127.0.0.1:1', '--room', 'r', BIN.replace(/bin\/annolive\.js$/, 'package.json'));
  assert.equal(code, 2);
  assert.match(stderr, /package\.json: not COCO instances JSON .*, labelme JSON .*, CVAT annotations .* nor Label Studio tasks/);
});

test('unreachable server exits 1', () => {
  for (const command of ['export', 'watch']) {
    const { code, stdout, stderr } = run(command, '--url', 'ws://127.0.0.1:1', '--room', 'r');
    assert.equal(code, 1, command);
    assert.equal(stdout, '');
    assert.match(stderr, /^annolive \w+: cannot connect to ws:\/\/127\.0\.0\.1:1\/v1\/ws: .*is an annolive server listening there\?\n$/);
  }
});

test('msgpack import rejects integers beyond 2^53-1', () => {
  const dir = mkdtempSync(join(tmpdir(), 'annolive-cli-'));
  try {
    const file = join(dir, 'big.json');
    writeFileSync(file, '{"images": [{"id": 18446744073709551615, "file_name": "a.jpg"}], "annotations": []}');
    // The unreachable server shows that nothing was sent: the split fails before connecting.
    const { code, stdout, stderr } = run('import', '--url', 'ws://127.0.0.1:1', '--room', 'r', '--encoding', 'msgpack', file);
    assert.equal(code, 2);
    assert.equal(stdout, '');
    assert.match(stderr, /cannot import with --encoding msgpack: cannot send the integer 18446744073709551615 with the msgpack encoding/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('import lists elements it did not convert', () => {
  const dir = mkdtempSync(join(tmpdir(), 'annolive-cli-'));
  try {
    const file = join(dir, 'job.json');
    const shapes = [
      { id: 1, type: 'rectangle', frame: 0, label_id: 3, points: [0, 0, 2, 2] },
      { id: 2, type: 'brush', frame: 0, label_id: 3, points: [] },
    ];
    writeFileSync(file, JSON.stringify({ version: 0, tags: [], tracks: [], shapes }));
    // The list is printed before connecting; the unreachable server then fails the import.
    const { code, stderr } = run('import', '--url', 'ws://127.0.0.1:1', '--room', 'r', file);
    assert.equal(code, 1);
    assert.match(stderr, /1 input elements were not converted, or only in part:\n/);
    assert.match(stderr, /job\.json: job shape 2: its type "brush" has no annolive kind\n/);
    assert.match(stderr, /cannot connect to ws:\/\/127\.0\.0\.1:1/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
