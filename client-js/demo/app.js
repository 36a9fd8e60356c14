// The annolive demo page: several people draw, move and relabel boxes and polygons on one image,
// and see each other's cursors, selections, claims and conflicts live. It is served by an
// annolive instance started with `--static client-js/demo`; lib/ links to the client's src/.
//
// Query arguments: room (default `demo`), name, token, encoding (`json` or `msgpack`), image
// (default `images/sample.jpg`, a link that demo/link-image.mjs makes).

import { AnnoliveSession, localStorageStorage } from './lib/session.js';
import { newId } from './lib/replica.js';

const SVG = 'http://www.w3.org/2000/svg';
const COLORS = ['#e4572e', '#17bebb', '#76b041', '#ffc914', '#9c27b0', '#2e86ab', '#f46036'];
const params = new URLSearchParams(location.search);
const roomName = params.get('room') ?? 'demo';
const imageUrl = params.get('image') ?? 'images/sample.jpg';
const itemId = `item:${imageUrl.split('/').pop()}`;

const $ = (id) => document.getElementById(id);
const overlay = $('overlay');
const image = $('image');

// Each tab keeps its own outbox key across reloads (sessionStorage is per tab), so offline
// edits of a reloaded tab are sent under the actor and opseq they had.
let tabKey = sessionStorage.getItem('annolive-demo-tab');
if (!tabKey) {
  tabKey = `annolive-demo:${newId()}`;
  sessionStorage.setItem('annolive-demo-tab', tabKey);
}

const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
const session = new AnnoliveSession(`${scheme}://${location.host}`, {
  token: params.get('token') ?? undefined,
  encoding: params.get('encoding') ?? 'json',
  storage: localStorageStorage(),
  storageKey: tabKey,
});

const state = {
  tool: 'select',
  selected: null,
  drag: null,
  draft: null,
  name: params.get('name') ?? `Guest ${Math.floor(Math.random() * 900 + 100)}`,
  color: COLORS[Math.floor(Math.random() * COLORS.length)],
  cursor: null,
};

/** Returns the image coordinates of a pointer event. */
function imagePoint(event) {
  const box = overlay.getBoundingClientRect();
  const sx = image.naturalWidth / box.width;
  const sy = image.naturalHeight / box.height;
  return [Math.round((event.clientX - box.left) * sx), Math.round((event.clientY - box.top) * sy)];
}

function svg(tag, attrs, parent = overlay) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  parent.appendChild(el);
  return el;
}

/** Returns the outline points of an object: a bbox's corners or a polygon's first ring. */
function outline(object) {
  const g = object.fields.geometry;
  if (object.kind === 'bbox' && Array.isArray(g)) {
    const [x, y, w, h] = g;
    return [x, y, x + w, y, x + w, y + h, x, y + h];
  }
  if (object.kind === 'polygon' && Array.isArray(g?.[0])) return g[0];
  return null;
}

function moved(object, dx, dy) {
  const g = object.fields.geometry;
  if (object.kind === 'bbox') return [g[0] + dx, g[1] + dy, g[2], g[3]];
  return g.map((ring) => ring.map((v, i) => v + (i % 2 === 0 ? dx : dy)));
}

/** Returns the name to show for a presence key (an actor): its presence name, else the key. */
function who(room, client, fallback) {
  const entry = room.presence.get(client);
  return entry?.state?.name ?? entry?.name ?? fallback ?? client;
}

function presenceState() {
  return {
    name: state.name, color: state.color, cursor: state.cursor, item: itemId,
    selected: state.selected ? [state.selected] : [],
  };
}

function sendPresence() {
  session.setPresence(roomName, presenceState());
}

// Rendering.

function render(room) {
  overlay.replaceChildren();
  overlay.setAttribute('viewBox', `0 0 ${image.naturalWidth || 500} ${image.naturalHeight || 375}`);
  for (const object of room.objects()) {
    if (object.fields.item !== itemId) continue;
    drawObject(room, object);
  }
  drawDraft();
  drawMembers(room);
  renderLists(room);
}

function drawObject(room, object) {
  let points = outline(object);
  if (!points) return;
  if (state.drag?.id === object.id && state.drag.moved) {
    points = points.map((v, i) => v + (i % 2 === 0 ? state.drag.dx : state.drag.dy));
  }
  const claim = room.claimOf(object.id);
  const classes = ['shape'];
  if (object.fields.source === 'auto') classes.push('auto');
  if (object.id === state.selected) classes.push('selected');
  else if (claim && claim.client !== room.client) classes.push('claimed');
  const shape = svg('polygon', { points: points.join(' '), class: classes.join(' '), 'data-id': object.id });
  shape.addEventListener('pointerdown', (event) => startMove(event, room, object));
  let text = object.fields.label ?? '?';
  if (claim && claim.client !== room.client) text += ` (claimed by ${who(room, claim.client, claim.name)})`;
  const label = svg('text', { x: points[0] + 3, y: points[1] + 14, class: 'label' });
  label.textContent = text;
}

function drawDraft() {
  const d = state.draft;
  if (!d) return;
  if (d.kind === 'bbox' && d.end) {
    const [x0, y0] = d.start;
    const [x1, y1] = d.end;
    svg('rect', { x: Math.min(x0, x1), y: Math.min(y0, y1), width: Math.abs(x1 - x0), height: Math.abs(y1 - y0), class: 'draft' });
  } else if (d.kind === 'polygon' && d.points.length > 0) {
    const pts = d.hover ? [...d.points, ...d.hover] : d.points;
    svg('polyline', { points: pts.join(' '), class: 'draft' });
  }
}

function drawMembers(room) {
  for (const entry of room.presence.values()) {
    if (entry.client === room.client || !entry.state) continue;
    const color = entry.state.color ?? '#000';
    for (const id of entry.state.selected ?? []) {
      const object = room.get(id);
      const points = object && outline(object);
      if (points) svg('polygon', { points: points.join(' '), class: 'remote-selection', stroke: color });
    }
    const cursor = entry.state.cursor;
    if (Array.isArray(cursor) && entry.state.item === itemId) {
      const g = svg('g', { class: 'cursor', 'data-client': entry.client, transform: `translate(${cursor[0]} ${cursor[1]})` });
      svg('path', { d: 'M0 0 L0 16 L4 12 L8 20 L10 19 L6 11 L12 11 Z', fill: color, stroke: '#fff' }, g);
      const name = svg('text', { x: 12, y: 24, class: 'label' }, g);
      name.textContent = entry.state.name ?? entry.name ?? entry.client;
    }
  }
}

function renderLists(room) {
  const members = [...room.presence.values()].map((entry) => {
    const li = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = entry.state?.color ?? '#999';
    li.append(swatch, `${entry.state?.name ?? entry.name ?? entry.client}${entry.client === room.client ? ' (you)' : ''}`);
    return li;
  });
  $('members').replaceChildren(...members);
  const objects = room.objects().filter((o) => o.fields.item === itemId && o.kind !== 'item').map((o) => {
    const li = document.createElement('li');
    li.dataset.id = o.id;
    const score = typeof o.fields.score === 'number' ? ` ${o.fields.score.toFixed(2)}` : '';
    li.textContent = `${o.kind} ${o.fields.label ?? '?'}${o.fields.source === 'auto' ? ` (auto${score})` : ''}${o.fields.review ? ` [${o.fields.review.status}]` : ''}`;
    return li;
  });
  $('objects').replaceChildren(...objects);
  $('delete').disabled = !state.selected;
}

function notice(text, { kind = 'info', action = null } = {}) {
  const li = document.createElement('li');
  li.className = kind;
  li.textContent = text;
  if (action) {
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = action.label;
    button.addEventListener('click', () => {
      action.run();
      li.remove();
    });
    li.appendChild(button);
  }
  $('notices').prepend(li);
  while ($('notices').children.length > 8) $('notices').lastChild.remove();
}

// Editing.

function select(room, id) {
  const previous = state.selected;
  if (previous === id) return;
  state.selected = id;
  if (previous) session.release(roomName, { id: previous }).catch(() => {});
  if (id) {
    session.claim(roomName, { id }, { ttl: 60000 }).then((ack) => {
      if (ack.status === 'denied') notice(`${id} is claimed by ${who(room, ack.holder?.client, ack.holder?.name)}`);
    }, () => {});
    const label = room.get(id)?.fields.label;
    if (label) $('label').value = label;
  }
  sendPresence();
  render(room);
}

function startMove(event, room, object) {
  if (state.tool !== 'select') return;
  event.stopPropagation();
  select(room, object.id);
  state.drag = { id: object.id, start: imagePoint(event), dx: 0, dy: 0, moved: false };
  overlay.setPointerCapture(event.pointerId);
}

function onPointerDown(event, room) {
  const point = imagePoint(event);
  if (state.tool === 'box') {
    state.draft = { kind: 'bbox', start: point, end: null };
    overlay.setPointerCapture(event.pointerId);
  } else if (state.tool === 'polygon') {
    if (!state.draft) state.draft = { kind: 'polygon', points: [] };
    state.draft.points.push(...point);
  } else {
    select(room, null);
  }
  render(room);
}

function onPointerMove(event, room) {
  const point = imagePoint(event);
  state.cursor = point;
  sendPresence();
  if (state.drag) {
    state.drag.dx = point[0] - state.drag.start[0];
    state.drag.dy = point[1] - state.drag.start[1];
    state.drag.moved = state.drag.moved || Math.abs(state.drag.dx) + Math.abs(state.drag.dy) > 2;
  } else if (state.draft?.kind === 'bbox') {
    state.draft.end = point;
  } else if (state.draft?.kind === 'polygon') {
    state.draft.hover = point;
  } else {
    return;
  }
  render(room);
}

function onPointerUp(event, room) {
  if (state.drag) {
    const { id, dx, dy, moved: wasMoved } = state.drag;
    state.drag = null;
    const object = room.get(id);
    if (wasMoved && object) room.update(id, { set: { geometry: moved(object, dx, dy) } });
  } else if (state.draft?.kind === 'bbox' && state.draft.end) {
    const [x0, y0] = state.draft.start;
    const [x1, y1] = imagePoint(event);
    state.draft = null;
    if (Math.abs(x1 - x0) > 3 && Math.abs(y1 - y0) > 3) {
      const geometry = [Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0)];
      const id = newId();
      room.create('bbox', { item: itemId, label: $('label').value, geometry, source: 'manual' }, { id });
      select(room, id);
    }
  }
  render(room);
}

function closePolygon(room) {
  const d = state.draft;
  state.draft = null;
  // A double-click adds its point twice; drop the repeat.
  const pts = d?.points ?? [];
  const n = pts.length;
  if (n >= 4 && pts[n - 1] === pts[n - 3] && pts[n - 2] === pts[n - 4]) pts.splice(n - 2, 2);
  if (pts.length >= 6) {
    const id = newId();
    room.create('polygon', { item: itemId, label: $('label').value, geometry: [pts], source: 'manual' }, { id });
    select(room, id);
  }
  render(room);
}

function setTool(tool, room) {
  state.tool = tool;
  state.draft = null;
  for (const button of document.querySelectorAll('#tools button')) button.classList.toggle('active', button.dataset.tool === tool);
  render(room);
}

function wire(room) {
  overlay.addEventListener('pointerdown', (e) => onPointerDown(e, room));
  overlay.addEventListener('pointermove', (e) => onPointerMove(e, room));
  overlay.addEventListener('pointerup', (e) => onPointerUp(e, room));
  overlay.addEventListener('dblclick', () => state.tool === 'polygon' && closePolygon(room));
  overlay.addEventListener('pointerleave', () => {
    state.cursor = null;
    sendPresence();
  });
  for (const button of document.querySelectorAll('#tools button')) {
    button.addEventListener('click', () => setTool(button.dataset.tool, room));
  }
  $('label').addEventListener('change', () => {
    if (state.selected && room.get(state.selected)) room.update(state.selected, { set: { label: $('label').value } });
  });
  $('delete').addEventListener('click', () => {
    if (!state.selected) return;
    const id = state.selected;
    select(room, null);
    room.delete(id);
  });
  document.addEventListener('keydown', (e) => {
    if (e.target instanceof HTMLSelectElement) return;
    if (e.key === 'Delete' || e.key === 'Backspace') $('delete').click();
    else if (e.key === 'Escape') setTool(state.tool, room);
    else if (e.key === 's') setTool('select', room);
    else if (e.key === 'b') setTool('box', room);
    else if (e.key === 'p') setTool('polygon', room);
  });

  let frame = 0;
  const redraw = () => {
    if (!frame) frame = requestAnimationFrame(() => {
      frame = 0;
      render(room);
    });
  };
  for (const name of ['change', 'presence', 'claims', 'reset']) room.on(name, redraw);
  room.on('conflict', (c) => {
    if (c.id === itemId && c.result.reason === 'exists') return;
    const fields = c.conflicts.map((x) => `${x.field} is now ${JSON.stringify(x.value ?? null)} (written by ${who(room, x.dot?.[0])})`).join('; ');
    const what = c.result.status === 'merged' ? 'part of your change' : 'your change';
    notice(`Conflict: ${what} to ${c.id} did not apply: ${fields || c.result.reason}`, {
      kind: 'conflict', action: c.op.op === 'create' ? null : { label: 'Keep mine', run: () => c.retry() },
    });
  });
  room.on('rejected', (r) => notice(`Rejected: ${r.op.op} of ${r.id}: ${r.result.message ?? r.result.reason}`, { kind: 'conflict' }));
  room.on('overwritten', (o) => notice(`${o.by} overwrote your ${o.field} of ${o.id}`));
}

async function main() {
  $('room-name').textContent = `room ${roomName}`;
  session.on('status', ({ status }) => {
    $('status').textContent = status;
    $('status').className = `status ${status}`;
  });
  session.on('pending', (n) => {
    $('pending').textContent = `${n} pending`;
  });
  session.on('error', (err) => console.warn('annolive:', err.message));
  const loaded = new Promise((resolve) => {
    image.addEventListener('load', resolve, { once: true });
    image.addEventListener('error', () => {
      notice(`cannot load ${imageUrl}: run node demo/link-image.mjs, or pass ?image=URL`);
      resolve();
    }, { once: true });
  });
  image.src = imageUrl;
  await loaded;
  const room = await session.join(roomName);
  if (!room.get(itemId)) {
    room.create('item', { file_name: imageUrl.split('/').pop(), width: image.naturalWidth, height: image.naturalHeight }, { id: itemId });
  }
  wire(room);
  sendPresence();
  render(room);
  return room;
}

const ready = main();
// For tests and the console: the session, the room once joined, and the item id.
window.annoliveDemo = { session, ready, itemId };
ready.then((room) => {
  window.annoliveDemo.room = room;
});
