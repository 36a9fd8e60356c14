// The raw libwebsockets broadcast server of bench/echo: it relays each
// message of a member to every other member of its room, with no Redis and
// no merge logic. It speaks just enough of annolive's join to be driven the
// same way.
export const name = 'echo';
export const protocols = ['annolive.v1.json'];

export function wsUrl(base) {
  return `${base}/v1/ws`;
}

export function onOpen() {}

export function handle(c, data) {
  const msg = JSON.parse(data);
  if (msg.type === 'ops') {
    if (msg.actor !== c.actor) c.hooks.onEdit(msg.ops[0].set);
  } else if (msg.type === 'snapshot') c.settle(`join:${msg.room}`, msg);
}

export function join(c, room) {
  c.send(JSON.stringify({ type: 'join', room }));
  return c.waitFor(`join:${room}`);
}

export async function prepareWriter(c, room, key) {
  c.actor = `drv-${key}`;
  c.opseq = 1;
}

export function sendEdit(c, room, edit) {
  c.opseq++;
  c.send(JSON.stringify({
    type: 'ops', room, actor: c.actor, opseq: c.opseq,
    ops: [{ op: 'update', id: `o-${c.actor}`, base: {}, set: edit }],
  }));
  return null;
}
