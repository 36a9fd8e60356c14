#!/usr/bin/env node
// A pre-labeling bot: it watches a room for `item` objects (images) and writes the boxes a
// detector predicts for each, with `"source": "auto"`, the detector's `score` and `model`.
//
// The detector here is a stand-in: a deterministic function of the item's id and size, so runs
// are repeatable. Replace predict() with a real model. Box ids derive from the item id, so a
// restarted bot gets `exists` conflicts instead of writing the same boxes twice.
//
// Usage: node examples/prelabel-bot.js --url ws://127.0.0.1:7700 --room demo
//          [--token TOKEN] [--actor bot-prelabel] [--once]
// With authentication on, the token needs the role `bot` (or higher) in the room. --once handles
// the items the room has, waits for the acks, and exits.

import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { AnnoliveSession } from '../src/index.js';

export const MODEL = 'fake-detector-1';
const LABELS = ['car', 'bus', 'person', 'bicycle'];

/** Returns a 32-bit FNV-1a hash of text. */
function hash(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Returns a pseudo-random generator of numbers in [0, 1) seeded with seed. */
function generator(seed) {
  let state = seed || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

/**
 * Predicts boxes with the stand-in detector: one to three boxes inside the image, each
 * `{label, score, box}` with box as `[x, y, w, h]` in pixels.
 */
export function predict(itemId, width, height) {
  const random = generator(hash(itemId));
  const count = 1 + Math.floor(random() * 3);
  const boxes = [];
  for (let i = 0; i < count; i++) {
    const w = Math.max(4, Math.round(width * (0.15 + random() * 0.35)));
    const h = Math.max(4, Math.round(height * (0.15 + random() * 0.35)));
    const x = Math.round(random() * (width - w));
    const y = Math.round(random() * (height - h));
    // Scores keep a fraction, so they stay floats on the wire.
    const score = Math.round((0.501 + random() * 0.49) * 1000) / 1000;
    boxes.push({ label: LABELS[Math.floor(random() * LABELS.length)], score, box: [x, y, w, h] });
  }
  return boxes;
}

/** Returns the create ops of the predictions for an item object. */
export function predictionOps(item) {
  const { width, height } = item.fields;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) return [];
  const prefix = `auto-${hash(item.id).toString(36)}`;
  return predict(item.id, width, height).map((p, i) => ({
    op: 'create',
    id: `${prefix}-${i}`,
    kind: 'bbox',
    fields: { item: item.id, label: p.label, geometry: p.box, source: 'auto', score: p.score, model: MODEL },
  }));
}

/**
 * Runs the bot on a joined Room: labels every item it has and, unless once, every item that
 * appears later. Returns a promise that resolves when the work on the current items is acked.
 */
export function runPrelabel(room, { log = () => {} } = {}) {
  const done = new Set();
  const pending = [];
  const handle = (item) => {
    if (done.has(item.id)) return;
    const ops = predictionOps(item);
    if (ops.length === 0) return;
    done.add(item.id);
    const hasAuto = room.objects().some((o) => o.fields.item === item.id && o.fields.model === MODEL);
    if (hasAuto) return;
    room.batch(() => {
      for (const op of ops) pending.push(room.edit(op));
    });
    log(`item ${item.id}: ${ops.length} boxes`);
  };
  for (const object of room.objects()) if (object.kind === 'item') handle(object);
  room.on('change', ({ object }) => {
    if (object?.kind === 'item') handle(object);
  });
  return Promise.all(pending);
}

const HELP_TEXT = `usage: prelabel-bot.js --url URL --room ROOM [OPTION]...

Writes predicted boxes (source auto, with score and model) for the items of a room.

  --url URL       the server's WebSocket URL, e.g. ws://127.0.0.1:7700
  --room ROOM     the room to watch
  --token TOKEN   a token with the bot role or higher (default: $ANNOLIVE_TOKEN)
  --actor ID      the actor the boxes are written as (default: bot-prelabel)
  --once          handle the items the room has, wait for the acks, and exit
  --help          print this help`;

async function main() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' }, room: { type: 'string' }, token: { type: 'string' },
      actor: { type: 'string', default: 'bot-prelabel' }, once: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP_TEXT);
    return;
  }
  if (!values.url || !values.room) {
    console.error(HELP_TEXT);
    process.exit(2);
  }
  const session = new AnnoliveSession(values.url, { actor: values.actor, token: values.token ?? process.env.ANNOLIVE_TOKEN });
  session.on('error', (err) => console.error(`prelabel-bot: ${err.message}`));
  session.on('status', ({ status, reason }) => {
    if (status === 'closed' && reason === 'rejected') process.exit(1);
  });
  const room = await session.join(values.room);
  room.on('rejected', ({ id, result }) => console.error(`prelabel-bot: ${id} rejected: ${result.message ?? result.reason}`));
  const results = await runPrelabel(room, { log: (line) => console.log(line) });
  if (values.once) {
    const created = results.filter((r) => r.status === 'applied').length;
    console.log(`created ${created} boxes`);
    await session.close();
    return;
  }
  process.once('SIGINT', () => session.close().then(() => process.exit(0)));
  process.once('SIGTERM', () => session.close().then(() => process.exit(0)));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    console.error(`prelabel-bot: ${err.message}`);
    process.exit(1);
  });
}
