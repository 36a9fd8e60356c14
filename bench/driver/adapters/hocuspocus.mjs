// Hocuspocus' wire protocol: binary messages that start with the document
// name, then a message type (0 sync, 1 awareness, 2 auth, 3 query
// awareness). A member authenticates, sends sync step 1 and waits for step
// 2. A writer keeps its own Yjs document and sends the update of each edit.
// Each edit is a JSON string in the room's map "edits" under the writer's
// key. Members read the send time out of the update's bytes, where Yjs
// keeps the string as it is, so they need no Yjs document of their own.
import { createRequire } from 'node:module';

// The packages live in bench/peers/node_modules.
const require = createRequire(new URL('../../peers/package.json', import.meta.url));
const Y = require('yjs');
const encoding = require('lib0/encoding');
const decoding = require('lib0/decoding');

export const name = 'hocuspocus';
export const protocols = undefined;

// Yjs sends state, not history: an update that waited for a missing earlier
// one goes out merged with it, and a value overwritten in between is never
// sent. Lost edits are reported but do not fail a step.
export const coalesces = true;

const SYNC = 0;
const AUTH = 2;
const QUERY_AWARENESS = 3;
const SYNC_STEP1 = 0;
const SYNC_STEP2 = 1;
const SYNC_UPDATE = 2;
const AUTHENTICATED = 2;
const KEEPALIVE_MS = 20000;

export function wsUrl(base) {
  return base;
}

export function onOpen(c) {
  c.rooms = [];
  // The server closes a connection it has heard nothing from for a minute.
  c.keepalive = setInterval(() => {
    for (const room of c.rooms) c.send(message(room, QUERY_AWARENESS, () => {}));
  }, KEEPALIVE_MS);
  c.keepalive.unref();
  c.onClose = () => clearInterval(c.keepalive);
}

function message(room, type, body) {
  const enc = encoding.createEncoder();
  encoding.writeVarString(enc, room);
  encoding.writeVarUint(enc, type);
  body(enc);
  return encoding.toUint8Array(enc);
}

const T_FIELD = /"t":([0-9.]+),"s":([0-9]+),"k":([0-9]+),"n":([0-9]+)/g;

export function handle(c, data) {
  const buf = new Uint8Array(data);
  const dec = decoding.createDecoder(buf);
  const room = decoding.readVarString(dec);
  const type = decoding.readVarUint(dec);
  if (type === AUTH) {
    if (decoding.readVarUint(dec) === AUTHENTICATED) c.settle(`auth:${room}`, null);
    else c.hooks.onError(`authentication rejected for document ${room}`);
    return;
  }
  if (type !== SYNC) return;
  const sub = decoding.readVarUint(dec);
  if (sub === SYNC_STEP2) c.settle(`join:${room}`, null);
  if (sub !== SYNC_UPDATE) return;
  const text = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('latin1');
  // An update can carry earlier edits again, so each edit counts once per
  // member. The server also sends a writer its own updates back: those are
  // not deliveries.
  for (const m of text.matchAll(T_FIELD)) {
    const [t, step, k, n] = [Number(m[1]), Number(m[2]), Number(m[3]), m[4]];
    if (k === c.ownKey) continue;
    if (c.seenStep !== step) {
      c.seenStep = step;
      c.seen = new Set();
    }
    const id = `${k}:${n}`;
    if (c.seen.has(id)) continue;
    c.seen.add(id);
    c.hooks.onEdit({ t, s: step });
  }
}

export async function join(c, room) {
  c.rooms.push(room);
  c.send(message(room, AUTH, (enc) => {
    encoding.writeVarUint(enc, 0);
    encoding.writeVarString(enc, 'bench');
  }));
  await c.waitFor(`auth:${room}`);
  c.send(message(room, SYNC, (enc) => {
    encoding.writeVarUint(enc, SYNC_STEP1);
    encoding.writeVarUint8Array(enc, new Uint8Array([0]));
  }));
  return c.waitFor(`join:${room}`);
}

export async function prepareWriter(c, room, key) {
  c.key = `w${key}`;
  c.doc = new Y.Doc();
  c.map = c.doc.getMap('edits');
  c.doc.on('update', (update) => {
    c.send(message(room, SYNC, (enc) => {
      encoding.writeVarUint(enc, SYNC_UPDATE);
      encoding.writeVarUint8Array(enc, update);
    }));
  });
}

export function sendEdit(c, room, edit) {
  // The edit's JSON must start with t, s, k and n for T_FIELD.
  c.ownKey = edit.k;
  c.map.set(c.key, JSON.stringify(edit));
  return null;
}
