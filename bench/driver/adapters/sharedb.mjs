// ShareDB's JSON wire protocol: a handshake ("hs"), a subscribe ("s") of
// the room's document in collection "rooms", and json0 ops ("op") that
// insert each writer's latest edit under its own key. Ops carry no version,
// so the server applies them to the latest one. Each instance creates the
// document in its own in-memory database before the writers start.
export const name = 'sharedb';
export const protocols = undefined;

export function wsUrl(base) {
  return base;
}

export function onOpen(c) {
  c.seq = 1;
  c.send(JSON.stringify({ a: 'hs', id: null }));
}

export function handle(c, data) {
  const msg = JSON.parse(data);
  if (msg.error) {
    // A create of a document that exists is expected on the second instance.
    if (!/already created/.test(msg.error.message)) c.hooks.onError(`${msg.a}: ${msg.error.message}`);
    if (msg.a === 'op') c.settle(`op:${msg.seq}`, msg);
    return;
  }
  switch (msg.a) {
    case 'hs':
      c.settle('hs', msg);
      return;
    case 's':
      c.settle(`join:${msg.d}`, msg);
      return;
    case 'op':
      if (msg.src === c.id || msg.src === undefined) {
        c.hooks.onAck(msg.seq);
        c.settle(`op:${msg.seq}`, msg);
      } else if (msg.op) {
        for (const part of msg.op) if (part.oi && part.oi.t !== undefined) c.hooks.onEdit(part.oi);
      }
      return;
    default:
  }
}

export async function join(c, room) {
  if (!c.id) c.id = (await c.waitFor('hs')).id;
  c.send(JSON.stringify({ a: 's', c: 'rooms', d: room }));
  return c.waitFor(`join:${room}`);
}

/** Creates the room's document on this client's instance. */
export async function prepareRoom(c, room) {
  const seq = c.seq++;
  c.send(JSON.stringify({
    a: 'op', c: 'rooms', d: room, seq,
    create: { type: 'http://sharejs.org/types/JSONv0', data: {} },
  }));
  await c.waitFor(`op:${seq}`);
}

export async function prepareWriter(c, room, key) {
  c.key = `w${key}`;
}

export function sendEdit(c, room, edit) {
  const seq = c.seq++;
  c.send(JSON.stringify({ a: 'op', c: 'rooms', d: room, seq, op: [{ p: [c.key], oi: edit }] }));
  return seq;
}
