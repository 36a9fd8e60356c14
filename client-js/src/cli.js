/**
 * The `annolive` command: import COCO, labelme, CVAT and Label Studio files into a room,
 * export a room as COCO, and watch a room's events.
 *
 * main() returns the exit code: 0 on success, 1 for runtime failures (connection, server,
 * ops that did not apply) and 2 for usage errors (options, input files).
 */

import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

import { splitBatches, REFERENCED_KINDS, Tally } from './batches.js';
import { AnnoliveClient } from './client.js';
import { cocoToOps, isCoco, objectsToCoco } from './coco.js';
import { cvatToOps, isCvat, isCvatDump } from './cvat.js';
import { losslessJson, parse as parseJson } from './json.js';
import { isLabelme, labelmeToOps } from './labelme.js';
import { isLabelStudio, labelStudioToOps } from './labelstudio.js';

const ROOM = /^[A-Za-z0-9._:-]{1,128}$/;
const DEFAULT_BATCH = 500;
// The server's default message limit is 1 MiB; this leaves room for a server configured a little lower.
const DEFAULT_MAX_BYTES = 1000000;
const UNAVAILABLE_RETRIES = 3;
const MAX_LISTED = 20;

/** An error in the command line or its input files: exit code 2. */
class UsageError extends Error {}

const COMMON_OPTIONS = {
  url: { type: 'string' },
  room: { type: 'string' },
  actor: { type: 'string' },
  token: { type: 'string' },
  timeout: { type: 'string' },
  encoding: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

const COMMON_HELP = `  --url URL        server WebSocket URL, for example ws://127.0.0.1:7700 (/v1/ws is added
                   when the path is empty)
  --room ROOM      room name, [A-Za-z0-9._:-]{1,128}, for example project:42
  --actor ID       actor id of this process (default: a random id)
  --token TOKEN    access token for a server that checks tokens (default: the
                   ANNOLIVE_TOKEN environment variable, else none)
  --timeout MS     time limit for each server reply, in milliseconds (default 30000)
  --encoding E     wire encoding: json (default, subprotocol annolive.v1.json) or msgpack
                   (annolive.v1.msgpack). JavaScript cannot tell 3.0 from 3 in msgpack, so
                   with msgpack floats with an integral value, such as 191.0, are sent and
                   printed as integers, and integers beyond 2^53-1 are rounded when
                   received and cannot be sent; json keeps both exact
  -h, --help       print this help`;

const HELP = {
  main: `Usage: annolive <command> [options]

Commands:
  import    send the objects of COCO, labelme, CVAT or Label Studio files to a room
  export    print a room's objects as COCO instances JSON
  watch     print a room's events, one JSON line each

Run annolive <command> --help for its options.`,
  import: `Usage: annolive import --url URL --room ROOM [options] FILE...

Sends the objects of annotation files as create ops. The format of each file is detected
from its content unless --format names it: COCO instances (with "images" and
"annotations"), labelme (with "shapes"), CVAT annotations as its REST API returns them
(with "shapes", "tracks" and "tags", or sections of such dumps) and Label Studio tasks
(with "annotations" or "predictions"). Categories, items and the COCO dataset tag go
first, then annotations. Object ids are deterministic, so a second import of a file
reports "conflict:exists" for each object instead of making copies. Counts per outcome go
to stderr, as does the list of input elements that were not converted, or only in part.
Exits 1 when an op was rejected or conflicted for another reason than "exists".

Options:
${COMMON_HELP}
  --batch N        maximum ops per batch (default ${DEFAULT_BATCH})
  --max-bytes N    maximum bytes per ops message (default ${DEFAULT_MAX_BYTES})
  --format F       input format of every file: coco, labelme, cvat or labelstudio
                   (default: detected per file; a file that fits several formats needs it)
  --prefix P       object id prefix (default "coco:" for COCO files, "labelme:" for labelme
                   files, where the file's base name follows it, "cvat:" for CVAT files
                   and "ls:" for Label Studio files)
  --image-size WxH image width and height of every frame of CVAT files, for example
                   1920x1080; CVAT masks become COCO RLE masks only when the size of
                   their frame is known from this option or --cvat-meta
  --cvat-labels F  JSON file with CVAT's label list, for label and attribute names
  --cvat-meta F    JSON file with CVAT's data meta of the task, whose "frames" list gives
                   each frame's file name, width and height
  --fail-on-exists exit 1 when an object id exists already; such objects are not compared
                   with the file, so this catches imports that reuse another file's ids`,
  export: `Usage: annolive export --url URL --room ROOM --format coco

Prints the room's snapshot as COCO instances JSON on stdout. Objects that COCO cannot
express are listed on stderr.

Options:
${COMMON_HELP}
  --format coco    output format; coco is the only one`,
  watch: `Usage: annolive watch --url URL --room ROOM

Joins the room and prints each event message as one JSON line on stdout until SIGINT or
SIGTERM (exit 0) or until the server closes the connection (exit 1). Diagnostics go to stderr.

Options:
${COMMON_HELP}`,
};

const COMMANDS = {
  import: {
    options: {
      ...COMMON_OPTIONS,
      batch: { type: 'string' },
      'max-bytes': { type: 'string' },
      prefix: { type: 'string' },
      format: { type: 'string' },
      'image-size': { type: 'string' },
      'cvat-labels': { type: 'string' },
      'cvat-meta': { type: 'string' },
      'fail-on-exists': { type: 'boolean' },
    },
    positionals: true,
    run: runImport,
  },
  export: { options: { ...COMMON_OPTIONS, format: { type: 'string' } }, positionals: false, run: runExport },
  watch: { options: COMMON_OPTIONS, positionals: false, run: runWatch },
};

/**
 * Runs the command line.
 * @param {string[]} argv arguments after the program name.
 * @param {{stdout?: NodeJS.WritableStream, stderr?: NodeJS.WritableStream, signals?: NodeJS.EventEmitter}} [io]
 * @returns {Promise<number>} exit code.
 */
export async function main(argv, io = {}) {
  const out = io.stdout ?? process.stdout;
  const err = io.stderr ?? process.stderr;
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? err : out).write(`${HELP.main}\n`);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    err.write(`annolive: unknown command ${JSON.stringify(name)}; use import, export or watch (see annolive --help)\n`);
    return 2;
  }
  const log = (line) => err.write(`annolive ${name}: ${line}\n`);
  try {
    const { values, positionals } = parseOptions(name, command, rest);
    if (values.help) {
      out.write(`${HELP[name]}\n`);
      return 0;
    }
    return await command.run(values, positionals, { out, log, signals: io.signals ?? process });
  } catch (error) {
    log(error.message);
    return error instanceof UsageError ? 2 : 1;
  }
}

function parseOptions(name, command, args) {
  try {
    return parseArgs({ args, options: command.options, allowPositionals: command.positionals, strict: true });
  } catch (error) {
    // parseArgs adds a second sentence about '--' that does not apply here.
    const reason = error.message.replace(/\. .*$/s, '');
    throw new UsageError(`${reason}; see annolive ${name} --help`);
  }
}

function requireConnection(values) {
  if (!values.url) throw new UsageError('missing --url; pass the server URL, for example --url ws://127.0.0.1:7700');
  if (!values.room) throw new UsageError('missing --room; pass the room name, for example --room project:42');
  if (!ROOM.test(values.room)) {
    throw new UsageError(`invalid --room ${JSON.stringify(values.room)}: use 1 to 128 characters of A-Z a-z 0-9 . _ : -`);
  }
  const timeoutMs = positiveInteger(values.timeout, '--timeout', 30000);
  const encoding = values.encoding ?? 'json';
  if (encoding !== 'json' && encoding !== 'msgpack') {
    throw new UsageError(`invalid --encoding ${JSON.stringify(encoding)}: use json or msgpack`);
  }
  try {
    const token = values.token ?? (process.env.ANNOLIVE_TOKEN || undefined);
    return new AnnoliveClient(values.url, { actor: values.actor, token, timeoutMs, encoding, json: losslessJson });
  } catch (error) {
    // The constructor validates the URL and the actor.
    throw new UsageError(error.message);
  }
}

function positiveInteger(text, option, fallback) {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    throw new UsageError(`invalid ${option} ${JSON.stringify(text)}: use a positive integer`);
  }
  return value;
}

async function connectAndJoin(client, room, log) {
  await client.connect();
  const snapshot = await client.join(room);
  log(`joined room ${room} at seq ${snapshot.seq} with ${snapshot.objects?.length ?? 0} objects`);
  return snapshot;
}

// import

/**
 * The import formats, in the order detection tries them. `convert` returns `{ops, skipped}`.
 * A CVAT dump also has the "shapes" array of labelme files, so labelme excludes it.
 */
const IMPORT_FORMATS = {
  coco: {
    detect: isCoco,
    convert: (data, { prefix }) => ({ ops: cocoToOps(data, prefix === undefined ? {} : { prefix }), skipped: [] }),
  },
  labelme: {
    detect: (data) => isLabelme(data) && !isCvatDump(data),
    convert: (data, { prefix, name }) => ({ ops: labelmeToOps(data, { name, prefix }), skipped: [] }),
  },
  cvat: {
    detect: isCvat,
    convert: (data, { prefix, name, imageSize, labels, frames }) => cvatToOps(data, { prefix, name, imageSize, labels, frames }),
  },
  labelstudio: { detect: isLabelStudio, convert: (data, { prefix }) => labelStudioToOps(data, { prefix }) },
};

function importFormat(data, format) {
  if (format !== undefined) {
    if (!IMPORT_FORMATS[format].detect(data)) throw new Error(`the file is not ${format} JSON, which --format ${format} expects`);
    return format;
  }
  const found = Object.keys(IMPORT_FORMATS).filter((name) => IMPORT_FORMATS[name].detect(data));
  if (found.length === 1) return found[0];
  if (found.length > 1) throw new Error(`it fits the formats ${found.join(' and ')}; choose one with --format`);
  throw new Error('not COCO instances JSON (no "images" and "annotations" arrays), labelme JSON (no "shapes" array), '
    + 'CVAT annotations (no "shapes", "tracks" and "tags" arrays) nor Label Studio tasks (no "annotations" or "predictions")');
}

function imageSizeOption(text) {
  if (text === undefined) return undefined;
  const match = /^(\d+)x(\d+)$/.exec(text);
  const size = match && { width: Number(match[1]), height: Number(match[2]) };
  if (!size || !Number.isSafeInteger(size.width * size.height) || size.width < 1 || size.height < 1) {
    throw new UsageError(`invalid --image-size ${JSON.stringify(text)}: use WIDTHxHEIGHT, for example 1920x1080`);
  }
  return size;
}

/**
 * Reads and converts every input file before connecting, so a bad file sends nothing.
 * Returns the ops and the input elements that were not converted, each with its file.
 */
async function readImportOps(files, values) {
  const format = values.format;
  if (format !== undefined && !(format in IMPORT_FORMATS)) {
    throw new UsageError(`invalid --format ${JSON.stringify(format)}: use ${Object.keys(IMPORT_FORMATS).join(', ')}`);
  }
  const options = { prefix: values.prefix, imageSize: imageSizeOption(values['image-size']), ...await cvatMeta(values) };
  const ops = [];
  const skipped = [];
  for (const file of files) {
    const data = await readJsonFile(file, 'import');
    try {
      const converted = IMPORT_FORMATS[importFormat(data, format)].convert(data, { ...options, name: basename(file) });
      ops.push(...converted.ops);
      for (const entry of converted.skipped) skipped.push({ file, ...entry });
    } catch (error) {
      throw new UsageError(`cannot import ${file}: ${error.message}`);
    }
  }
  return { ops, skipped };
}

/** Reads and parses a JSON file; action names the purpose in the error message. */
async function readJsonFile(file, action) {
  let text;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
  }
  try {
    // A UTF-8 byte order mark is not JSON, but some editors write one.
    return parseJson(text.replace(/^\uFEFF/, ''));
  } catch (error) {
    throw new UsageError(`cannot ${action} ${file}: ${error.message}`);
  }
}

/**
 * Reads the CVAT label list (a list, or an object with a `results` list as the labels
 * endpoint returns it) and data meta (with a `frames` list) named by the options.
 */
async function cvatMeta(values) {
  const meta = {};
  const labelsFile = values['cvat-labels'];
  if (labelsFile !== undefined) {
    const labels = await readJsonFile(labelsFile, 'read the labels of');
    meta.labels = Array.isArray(labels) ? labels : labels?.results;
    if (!Array.isArray(meta.labels)) {
      throw new UsageError(`invalid --cvat-labels ${labelsFile}: expected a list of labels or {"results": [...]}`);
    }
  }
  const metaFile = values['cvat-meta'];
  if (metaFile !== undefined) {
    meta.frames = (await readJsonFile(metaFile, 'read the data meta of'))?.frames;
    if (!Array.isArray(meta.frames)) throw new UsageError(`invalid --cvat-meta ${metaFile}: expected an object with a "frames" list`);
  }
  return meta;
}

function reportNotConverted(skipped, log) {
  if (skipped.length === 0) return;
  log(`${skipped.length} input elements were not converted, or only in part:`);
  for (const { file, where, reason } of skipped.slice(0, MAX_LISTED)) log(`  ${file}: ${where}: ${reason}`);
  if (skipped.length > MAX_LISTED) log(`  ... and ${skipped.length - MAX_LISTED} more`);
}

async function runImport(values, files, { log }) {
  if (files.length === 0) throw new UsageError('missing input files; pass one or more annotation JSON files');
  const client = requireConnection(values);
  const maxOps = positiveInteger(values.batch, '--batch', DEFAULT_BATCH);
  const maxBytes = positiveInteger(values['max-bytes'], '--max-bytes', DEFAULT_MAX_BYTES);
  const { ops, skipped } = await readImportOps(files, values);
  reportNotConverted(skipped, log);
  const referenced = ops.filter((op) => REFERENCED_KINDS.has(op.kind));
  const annotations = ops.filter((op) => !REFERENCED_KINDS.has(op.kind));
  // Split before connecting, so ops that the encoding cannot carry send nothing.
  let phases;
  try {
    phases = [referenced, annotations].map((phase) => splitBatches(phase, {
      maxOps, maxBytes, actor: client.actor, encoding: client.encoding,
    }));
  } catch (error) {
    throw new UsageError(`cannot import with --encoding ${client.encoding}: ${error.message}`);
  }

  const tally = new Tally();
  try {
    await connectAndJoin(client, values.room, log);
    for (const { batches, oversized } of phases) {
      for (const { op, bytes } of oversized) {
        tally.addFailure(op.id, 'not_sent:too_large', `the op alone makes a ${bytes}-byte message, over --max-bytes ${maxBytes}`);
      }
      for (const batch of batches) await sendBatch(client, values.room, batch, tally, log);
    }
  } catch (error) {
    const sent = tally.counts.size > 0 ? `; stopped after ${tally.summary()}` : '';
    log(`${error.message}${sent}`);
    return 1;
  } finally {
    await client.close();
  }
  return reportImport(ops.length, tally, values['fail-on-exists'], log);
}

/** Sends one batch and tallies its ack; splits it on too_large and retries on unavailable. */
async function sendBatch(client, room, batch, tally, log) {
  let opseq;
  for (let attempt = 0; ; attempt++) {
    try {
      const ack = await client.send(room, batch, opseq === undefined ? {} : { opseq });
      tally.addAck(batch, ack);
      return;
    } catch (error) {
      if (error.code === 'unavailable' && attempt < UNAVAILABLE_RETRIES) {
        // Nothing of a batch rejected as unavailable was applied, so it is resent under its opseq.
        opseq = error.details?.opseq;
        const delayMs = 500 * 2 ** attempt;
        log(`server unavailable (${error.message}); retrying opseq ${opseq} in ${delayMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        continue;
      }
      if (error.code === 'too_large' && batch.length > 1) {
        const half = Math.ceil(batch.length / 2);
        log(`batch of ${batch.length} ops is too large (${error.message}); sending it in two halves`);
        await sendBatch(client, room, batch.slice(0, half), tally, log);
        await sendBatch(client, room, batch.slice(half), tally, log);
        return;
      }
      if (error.code === 'closed' || error.code === 'not_connected') throw error;
      for (const op of batch) tally.addFailure(op.id, `error:${error.code ?? 'client'}`, error.message);
      return;
    }
  }
}

function reportImport(total, tally, failOnExists, log) {
  log(`${total} ops: ${tally.summary()}`);
  const failures = tally.failures.filter((f) => f.outcome !== 'conflict:exists' || failOnExists);
  for (const failure of failures.slice(0, MAX_LISTED)) {
    log(`${failure.outcome}: ${failure.id}${failure.message ? `: ${failure.message}` : ''}`);
  }
  if (failures.length > MAX_LISTED) log(`... and ${failures.length - MAX_LISTED} more failed ops`);
  const exists = tally.counts.get('conflict:exists') ?? 0;
  if (exists > 0 && !failOnExists) {
    log(`${exists} objects exist already (imported before?) and were left as they are`);
  }
  return failures.length > 0 ? 1 : 0;
}

// export

async function runExport(values, _files, { out, log }) {
  const format = values.format ?? 'coco';
  if (format !== 'coco') throw new UsageError(`invalid --format ${JSON.stringify(format)}: coco is the only format`);
  const client = requireConnection(values);
  let snapshot;
  try {
    snapshot = await connectAndJoin(client, values.room, log);
  } finally {
    await client.close();
  }
  const { coco, skipped } = objectsToCoco(snapshot.objects ?? []);
  out.write(`${losslessJson.stringify(coco)}\n`);
  log(`exported ${coco.images.length} images, ${coco.annotations.length} annotations, ${coco.categories.length} categories`);
  reportSkipped(skipped, log);
  return 0;
}

function reportSkipped(skipped, log) {
  if (skipped.length === 0) return;
  const byKind = new Map();
  for (const { kind } of skipped) byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
  const counts = [...byKind.entries()].map(([kind, count]) => `${kind} ${count}`).join(', ');
  log(`${skipped.length} objects have no COCO form and are not in the output (${counts}):`);
  for (const { id, kind, reason } of skipped.slice(0, MAX_LISTED)) log(`  ${id} (${kind}): ${reason}`);
  if (skipped.length > MAX_LISTED) log(`  ... and ${skipped.length - MAX_LISTED} more`);
}

// watch

async function runWatch(values, _files, { out, log, signals }) {
  const client = requireConnection(values);
  const closed = new Promise((resolve) => client.on('close', resolve));
  client.on('event', (message) => out.write(`${losslessJson.stringify(message)}\n`));
  client.on('error', (message) => log(`server error ${message.code}: ${message.message}`));
  let stopSignal = null;
  const stop = (signal) => {
    stopSignal = signal;
    client.close();
  };
  signals.on('SIGINT', stop);
  signals.on('SIGTERM', stop);
  try {
    try {
      await connectAndJoin(client, values.room, log);
    } catch (error) {
      await client.close();
      throw error;
    }
    const close = await closed;
    if (close.byClient) {
      log(`stopped by ${stopSignal ?? 'close'}`);
      return 0;
    }
    log(`the server closed the connection (code ${close.code}${close.reason ? `, ${close.reason}` : ''})`);
    return 1;
  } finally {
    signals.off('SIGINT', stop);
    signals.off('SIGTERM', stop);
  }
}
