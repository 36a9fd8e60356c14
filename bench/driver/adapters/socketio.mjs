// Socket.IO's wire protocol (Engine.IO 4 over a plain WebSocket): "0" opens,
// "40" connects the main namespace, "2"/"3" are ping and pong, and "42"
// carries an event as a JSON array.
export const name = 'socketio';
export const protocols = undefined;

export function wsUrl(base) {
  return `${base}/socket.io/?EIO=4&transport=websocket`;
}

export function onOpen() {}

export function handle(c, data) {
  const text = data.toString();
  switch (text[0]) {
    case '0':
      c.send('40');
      return;
    case '2':
      c.send('3');
      return;
    case '4':
      if (text[1] === '0') c.settle('connect', null);
      else if (text[1] === '2') event(c, JSON.parse(text.slice(2)));
      else if (text[1] === '4') c.hooks.onError(text);
      return;
    default:
  }
}

function event(c, [kind, value]) {
  if (kind === 'edit') c.hooks.onEdit(value);
  else if (kind === 'joined') c.settle(`join:${value}`, value);
}

export async function join(c, room) {
  if (!c.connected) {
    await c.waitFor('connect');
    c.connected = true;
  }
  c.send(`42${JSON.stringify(['join', room])}`);
  return c.waitFor(`join:${room}`);
}

export async function prepareWriter() {}

export function sendEdit(c, room, edit) {
  c.send(`42${JSON.stringify(['edit', room, edit])}`);
  return null;
}
