// annolive over annolive.v1.json: a room is an annolive room; each writer
// creates one bbox and then moves and relabels it with one update per edit.
// Events reach every member, the sender too; the sender's own copy is not
// counted as a delivery, its ack is timed instead.
export const name = 'annolive';
export const protocols = ['annolive.v1.json'];

export function wsUrl(base) {
  return `${base}/v1/ws`;
}

export function onOpen() {}

export function handle(c, data) {
  const msg = JSON.parse(data);
  switch (msg.type) {
    case 'event':
      if (msg.actor === c.actor) return;
      for (const op of msg.ops) {
        if (op.set && op.set.t !== undefined) c.hooks.onEdit(op.set);
      }
      return;
    case 'ack':
      c.hooks.onAck(msg.opseq);
      c.settle(`ack:${msg.opseq}`, msg);
      return;
    case 'snapshot':
      c.settle(`join:${msg.room}`, msg);
      return;
    case 'error':
      c.hooks.onError(`${msg.code}: ${msg.message}`);
      if (msg.opseq !== undefined) c.hooks.onAck(msg.opseq);
      return;
    default:
  }
}

export function join(c, room) {
  c.send(JSON.stringify({ type: 'join', room }));
  return c.waitFor(`join:${room}`);
}

export function prepareWriter(c, room, key) {
  // Actors are new in each run, so that a reused Redis never takes a
  // batch for the retry of an earlier run's batch with the same opseq.
  c.actor = `drv${process.pid}-${key}`;
  c.opseq = 1;
  c.objectId = `o-${c.actor}`;
  c.send(JSON.stringify({
    type: 'ops', room, actor: c.actor, opseq: c.opseq, ops: [{
      op: 'create', id: c.objectId, kind: 'bbox',
      fields: { item: 'img-1', label: 'person', geometry: [10, 20, 30, 40] },
    }],
  }));
  return c.waitFor(`ack:${c.opseq}`);
}

export function sendEdit(c, room, edit) {
  c.opseq++;
  c.send(JSON.stringify({
    type: 'ops', room, actor: c.actor, opseq: c.opseq, ops: [{
      op: 'update', id: c.objectId, base: {}, set: edit,
    }],
  }));
  return c.opseq;
}
