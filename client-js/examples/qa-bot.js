#!/usr/bin/env node
// A quality-check bot: it checks the annotations of a room and writes its verdict into each
// one's `review` field, `{"status": "accepted" | "rejected", "by": "qa-bot", "comment": ...}`.
//
// Checks:
// - the label is allowed: one of --labels, else of the room's label schema, else of its
//   `category` objects (no check when none of these names a label);
// - a box lies inside its image (the `item` object's width and height);
// - a polygon lies inside its box: the bbox named by its `box` field, else the bbox of the same
//   `group`, else the image.
//
// Usage: node examples/qa-bot.js --url ws://127.0.0.1:7700 --room demo [--token TOKEN]
//          [--labels car,bus] [--actor bot-qa] [--once]
// With authentication on, the token needs the role `reviewer` (or `admin`): other roles may not
// set `review`. --once checks the annotations the room has, waits for the acks, and exits.

import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { AnnoliveSession } from '../src/index.js';

const REVIEWER = 'qa-bot';
const CHECKED_KINDS = new Set(['bbox', 'polygon']);

/** Returns the labels the room allows, or null when it names none. */
export function allowedLabels(room, fromOptions) {
  if (fromOptions && fromOptions.length > 0) return new Set(fromOptions);
  const schema = room.settings.schema;
  if (schema && typeof schema.labels === 'object') return new Set(Object.keys(schema.labels));
  const categories = room.objects().filter((o) => o.kind === 'category' && typeof o.fields.name === 'string');
  return categories.length > 0 ? new Set(categories.map((o) => o.fields.name)) : null;
}

/** Returns true when the points [x1, y1, x2, y2, ...] lie inside [x, y, w, h]. */
function pointsInside(points, [x, y, w, h]) {
  for (let i = 0; i + 1 < points.length; i += 2) {
    if (points[i] < x || points[i] > x + w || points[i + 1] < y || points[i + 1] > y + h) return false;
  }
  return true;
}

/** Returns the box a polygon must lie in, and what it is, or null. */
function enclosingBox(room, polygon, item) {
  const named = polygon.fields.box !== undefined ? room.get(polygon.fields.box) : null;
  if (named?.kind === 'bbox') return { box: named.fields.geometry, what: `box ${named.id}` };
  if (polygon.fields.group !== undefined) {
    const peer = room.objects().find((o) => o.kind === 'bbox' && o.fields.group === polygon.fields.group && o.fields.item === polygon.fields.item);
    if (peer) return { box: peer.fields.geometry, what: `box ${peer.id} of group ${polygon.fields.group}` };
  }
  if (item) return { box: [0, 0, item.fields.width, item.fields.height], what: 'the image' };
  return null;
}

/** Returns the problems of one annotation, as sentences; none means it passes. */
export function check(room, object, labels) {
  const problems = [];
  const { label, geometry } = object.fields;
  if (labels && !labels.has(label)) problems.push(`label ${JSON.stringify(label ?? null)} is not one of ${[...labels].join(', ')}`);
  const item = room.get(object.fields.item);
  const sized = item && Number.isFinite(item.fields.width) && Number.isFinite(item.fields.height);
  if (object.kind === 'bbox' && Array.isArray(geometry) && sized) {
    if (!pointsInside([geometry[0], geometry[1], geometry[0] + geometry[2], geometry[1] + geometry[3]], [0, 0, item.fields.width, item.fields.height])) {
      problems.push(`box ${JSON.stringify(geometry)} is not inside the ${item.fields.width}x${item.fields.height} image`);
    }
  }
  if (object.kind === 'polygon' && Array.isArray(geometry)) {
    const outer = enclosingBox(room, object, sized ? item : null);
    if (outer && !geometry.every((ring) => pointsInside(ring, outer.box))) problems.push(`polygon is not inside ${outer.what}`);
  }
  return problems;
}

/** Returns the review an object should have. */
export function reviewOf(problems) {
  return problems.length === 0
    ? { status: 'accepted', by: REVIEWER, comment: 'all checks passed' }
    : { status: 'rejected', by: REVIEWER, comment: problems.join('; ') };
}

function sameReview(a, b) {
  return a && b && a.status === b.status && a.by === b.by && a.comment === b.comment;
}

/**
 * Checks every annotation of a joined Room now and whenever one changes, and writes the reviews
 * that differ. Returns a promise of the results of the reviews written now.
 */
export function runQa(room, { labels: fromOptions = null, log = () => {} } = {}) {
  const pending = [];
  const review = (object) => {
    if (!CHECKED_KINDS.has(object.kind)) return;
    const wanted = reviewOf(check(room, object, allowedLabels(room, fromOptions)));
    if (sameReview(object.fields.review, wanted)) return;
    pending.push(room.update(object.id, { set: { review: wanted } }));
    log(`${object.id}: ${wanted.status}: ${wanted.comment}`);
  };
  for (const object of room.objects()) review(object);
  room.on('change', ({ object }) => {
    if (object) review(object);
  });
  return Promise.all(pending);
}

const HELP_TEXT = `usage: qa-bot.js --url URL --room ROOM [OPTION]...

Checks the annotations of a room and writes its verdict into their review field.

  --url URL       the server's WebSocket URL, e.g. ws://127.0.0.1:7700
  --room ROOM     the room to check
  --token TOKEN   a token with the reviewer or admin role (default: $ANNOLIVE_TOKEN)
  --labels LIST   allowed labels, comma-separated (default: the room's label schema,
                  else its category objects)
  --actor ID      the actor the verdicts are written as (default: bot-qa)
  --once          check the annotations the room has, wait for the acks, and exit
  --help          print this help`;

async function main() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' }, room: { type: 'string' }, token: { type: 'string' }, labels: { type: 'string' },
      actor: { type: 'string', default: 'bot-qa' }, once: { type: 'boolean', default: false },
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
  session.on('error', (err) => console.error(`qa-bot: ${err.message}`));
  session.on('status', ({ status, reason }) => {
    if (status === 'closed' && reason === 'rejected') process.exit(1);
  });
  const room = await session.join(values.room);
  room.on('rejected', ({ id, result }) => console.error(`qa-bot: review of ${id} rejected: ${result.message ?? result.reason}`));
  const labels = values.labels ? values.labels.split(',').map((s) => s.trim()).filter(Boolean) : null;
  const results = await runQa(room, { labels, log: (line) => console.log(line) });
  if (values.once) {
    console.log(`reviewed ${results.filter((r) => r.status === 'applied').length} annotations`);
    await session.close();
    return;
  }
  process.once('SIGINT', () => session.close().then(() => process.exit(0)));
  process.once('SIGTERM', () => session.close().then(() => process.exit(0)));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    console.error(`qa-bot: ${err.message}`);
    process.exit(1);
  });
}
