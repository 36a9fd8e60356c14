/**
 * AnnoliveSession: a collaborating replica of annolive rooms that survives disconnects.
 *
 * It keeps one connection (an AnnoliveClient) open, reconnecting with exponential backoff and
 * full jitter, and keeps a Room (./replica.js) per joined room. After a reconnect it resumes each
 * room with `since` (or takes the reset snapshot the server sends instead). Then it sends again,
 * in order and under the same actor and opseq, every batch the server has not acknowledged. The
 * server applies a batch once, so a batch whose ack was lost is not applied twice. Edits made
 * while offline wait in the same queue, which can be kept in localStorage or any Storage.
 *
 * It runs in browsers and in Node 20; it needs no bundler.
 *
 * Events (session.on(name, fn)):
 * - `status`: `{status, attempt, delayMs}`; status is `connecting`, `resyncing` (connected, rooms
 *   being joined or resumed), `open`, `offline` (waiting delayMs before attempt) or `closed`.
 * - `pending`: the number of unacknowledged ops of every room.
 * - `error`: an Error (AnnoliveError for server errors) that no promise reports.
 * - `authed`: the server's `authed` reply to a token refresh.
 * - `retry`: `{room, opseq, code}` when the server asked for a batch to be sent again later
 *   (`unavailable`, `rate_limited`, `internal`); it is, with the batches after it.
 */

import { Backoff } from './backoff.js';
import { AnnoliveClient, AnnoliveError, DEFAULT_TIMEOUT_MS } from './client.js';
import { Emitter } from './emitter.js';
import { Batch, Room } from './replica.js';

export const DEFAULT_PRESENCE_INTERVAL_MS = 50;
export const DEFAULT_REFRESH_MARGIN_MS = 60000;
const STORAGE_VERSION = 1;
/** Errors after which a batch is sent again later, in order with the batches after it. */
const RETRY_CODES = new Set(['unavailable', 'rate_limited', 'internal', 'not_joined']);

/**
 * @typedef {object} Storage where the outbox is kept; load and save may return promises.
 * @property {(key: string) => any} load returns the value saved under key, or undefined.
 * @property {(key: string, value: any) => any} save
 */

/** Returns a Storage in memory, for tests and for programs that restart a session in place. */
export function memoryStorage() {
  const values = new Map();
  return {
    load: (key) => (values.has(key) ? JSON.parse(values.get(key)) : undefined),
    save: (key, value) => {
      values.set(key, JSON.stringify(value));
    },
  };
}

/**
 * Returns a Storage in a browser's localStorage (or any object with getItem and setItem).
 * @param {{getItem: (k: string) => string | null, setItem: (k: string, v: string) => void}} [store]
 */
export function localStorageStorage(store = globalThis.localStorage) {
  if (!store) throw new TypeError('localStorage is missing here: pass an object with getItem and setItem, or use memoryStorage()');
  return {
    load: (key) => {
      const text = store.getItem(key);
      return text === null ? undefined : JSON.parse(text);
    },
    save: (key, value) => store.setItem(key, JSON.stringify(value)),
  };
}

/**
 * Returns the `exp` claim of a JWT in milliseconds since the epoch, or null when the token has
 * none or cannot be read. The signature is not checked: the server does that.
 */
export function tokenExpiry(token) {
  try {
    const part = String(token).split('.')[1];
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
    const exp = JSON.parse(atob(base64)).exp;
    return Number.isFinite(exp) ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/** Returns a random actor id such as `js-3f9a0c2e7b1d4a58`. */
function randomActor() {
  const bytes = new Uint8Array(8);
  if (globalThis.crypto?.getRandomValues) globalThis.crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return `js-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * @typedef {object} SessionOptions
 * @property {string} [actor] the replica's actor id, kept across reconnects; the stored one, else
 *   a random one. It is also the presence key sent with every join.
 * @property {string} [token] access token.
 * @property {() => string | Promise<string>} [getToken] returns a fresh token; called before
 *   each connect and, for tokens with `exp`, refreshMarginMs before expiry (sent as `auth`).
 * @property {number} [refreshMarginMs] how long before expiry a token is refreshed; at most a
 *   quarter of its remaining life. 60000 by default.
 * @property {'json' | 'msgpack'} [encoding] wire encoding; json by default.
 * @property {object} [json] codec of the json encoding, as AnnoliveClient takes it.
 * @property {any} [WebSocket] WebSocket constructor, as AnnoliveClient takes it.
 * @property {number} [minDelayMs] smallest cap of a reconnect delay; 250 by default.
 * @property {number} [maxDelayMs] largest reconnect delay; 30000 by default.
 * @property {() => number} [random] random numbers in [0, 1) for the jitter; Math.random.
 * @property {number} [timeoutMs] time limit of join replies and claim replies; 30000 by default.
 * @property {number} [presenceIntervalMs] least time between two presence messages of a room;
 *   50 by default. The latest state is always sent.
 * @property {Storage} [storage] keeps the actor, the next opseq and the unacknowledged batches,
 *   so a reloaded page sends its offline edits. One storageKey per replica: two tabs must not
 *   share one.
 * @property {string} [storageKey] 'annolive' by default.
 * @property {number} [opseq] first opseq when storage holds none; 1 for a random actor, else
 *   derived from the clock so that a restarted program with a fixed actor never reuses one.
 */

export class AnnoliveSession extends Emitter {
  /**
   * @param {string | (() => string)} url server URL such as `ws://127.0.0.1:7700`, or a
   *   function called before each connect (for example to pick another instance).
   * @param {SessionOptions} [options]
   */
  constructor(url, options = {}) {
    super();
    if (typeof url !== 'string' && typeof url !== 'function') {
      throw new TypeError(`invalid url ${String(url)}: expected a ws: or wss: URL, or a function that returns one`);
    }
    this.url = url;
    this.options = options;
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.backoff = new Backoff({ minMs: options.minDelayMs, maxMs: options.maxDelayMs, random: options.random });
    this.retryBackoff = new Backoff({ minMs: options.minDelayMs ?? 250, maxMs: options.maxDelayMs, random: options.random });
    /** @type {Map<string, Room>} */
    this.rooms = new Map();
    /** Stored batches of rooms not joined yet, by room. */
    this.stored = new Map();
    this.client = null;
    this.status = 'idle';
    this.started = null;
    this.closed = false;
    this.timers = new Set();
    this.claimRefs = new Map();
    this.nextRef = 1;
    this.presenceState = new Map();
    this.saving = Promise.resolve();
    this.pendingSaves = 0;
  }

  /**
   * Loads the storage and starts connecting. Safe to call again.
   * @returns {Promise<this>} resolves once the stored outbox is loaded, not when connected.
   */
  start() {
    this.started ??= this.load().then(() => {
      this.connectOnce();
      return this;
    });
    return this.started;
  }

  async load() {
    const { storage, storageKey = 'annolive' } = this.options;
    const saved = storage ? await storage.load(storageKey) : undefined;
    const record = saved?.version === STORAGE_VERSION ? saved : null;
    this.actor = this.options.actor ?? record?.actor ?? randomActor();
    if (!/^[\x21-\x7e]{1,64}$/.test(this.actor)) {
      throw new TypeError(`invalid actor ${JSON.stringify(this.actor)}: use 1 to 64 printable ASCII characters`);
    }
    const fromClock = this.options.actor !== undefined ? Date.now() * 1000 : 1;
    const stored = record?.actor === this.actor ? record.nextOpseq : undefined;
    this.nextOpseq = Math.max(stored ?? this.options.opseq ?? fromClock, ...(record?.batches ?? []).map((b) => b.opseq + 1));
    for (const data of record?.batches ?? []) {
      if (!this.stored.has(data.room)) this.stored.set(data.room, []);
      this.stored.get(data.room).push(new Batch(data));
    }
  }

  /** Saves the actor, next opseq and unacknowledged batches, when a storage is set. */
  save() {
    const { storage, storageKey = 'annolive' } = this.options;
    if (!storage) return;
    const batches = [];
    for (const list of this.stored.values()) batches.push(...list);
    for (const room of this.rooms.values()) batches.push(...room.batches.filter((b) => !b.results));
    const value = { version: STORAGE_VERSION, actor: this.actor, nextOpseq: this.nextOpseq, batches: batches.map((b) => b.toJSON()) };
    const failed = (err) => this.emit('error', new Error(`cannot save the outbox: ${err.message}`, { cause: err }));
    // A synchronous store (localStorage) is written at once, so an edit survives a page that
    // closes right after it. An asynchronous store is written after the saves before it.
    const done = () => {
      this.pendingSaves -= 1;
    };
    if (this.pendingSaves > 0) {
      this.pendingSaves += 1;
      this.saving = this.saving.then(() => storage.save(storageKey, value)).catch(failed).finally(done);
      return;
    }
    let result;
    try {
      result = storage.save(storageKey, value);
    } catch (err) {
      failed(err);
      return;
    }
    if (result instanceof Promise) {
      this.pendingSaves += 1;
      this.saving = result.catch(failed).finally(done);
    }
  }

  // Rooms.

  /**
   * Returns the Room of name, joining it when the session is connected (now or later). Call
   * start() first. `room.ready` resolves after the first join reply.
   * @param {string} name
   * @returns {Room}
   */
  room(name) {
    if (!this.actor) throw new Error('call start() before room(): the outbox is not loaded yet');
    let room = this.rooms.get(name);
    if (room) return room;
    room = new Room(name, {
      actor: this.actor,
      submit: (r, ops, atomic) => this.submit(r, ops, atomic),
      queued: (r) => this.queued(r),
      pendingChanged: () => this.emitPending(),
    });
    room.adopt(this.stored.get(name) ?? []);
    this.stored.delete(name);
    this.rooms.set(name, room);
    if (this.client && this.status !== 'connecting') this.sendJoin(room);
    this.emitPending();
    return room;
  }

  /**
   * Starts the session when needed, joins a room and waits for its first join reply.
   * @param {string} name
   * @returns {Promise<Room>}
   */
  async join(name) {
    await this.start();
    return this.room(name).ready;
  }

  /**
   * Leaves a room. Its unacknowledged batches stay in the storage, and are sent when the room
   * is joined again.
   */
  leave(name) {
    const room = this.rooms.get(name);
    if (!room) return;
    room.flush();
    const unacked = room.batches.filter((b) => !b.results);
    if (unacked.length > 0) this.stored.set(name, unacked.map((b) => new Batch(b.toJSON())));
    this.rooms.delete(name);
    this.trySend({ type: 'leave', room: name });
    this.emitPending();
  }

  /** The number of ops of every room that the server has not acknowledged. */
  get pendingOps() {
    let n = 0;
    for (const room of this.rooms.values()) n += room.pendingOps;
    for (const list of this.stored.values()) for (const b of list) n += b.ops.length;
    return n;
  }

  emitPending() {
    const n = this.pendingOps;
    if (n !== this.lastPending) {
      this.lastPending = n;
      this.emit('pending', n);
    }
  }

  /** Called by a Room: numbers a batch. */
  submit(room, ops, atomic) {
    return new Batch({ room: room.name, actor: this.actor, opseq: this.nextOpseq++, ops, atomic });
  }

  /** Called by a Room after it queued a batch: stores the outbox and sends the batch when it can. */
  queued(room) {
    this.save();
    this.pump(room);
  }

  // Presence and claims.

  /**
   * Sets this replica's presence state in a room (cursor, selection, name, color, ...). Calls
   * closer than presenceIntervalMs apart are merged: the latest state is sent. The state is sent
   * again after every reconnect.
   * @param {string} name the room
   * @param {object | null} state
   */
  setPresence(name, state) {
    const entry = this.presenceState.get(name) ?? { state: null, lastSent: 0, timer: null };
    entry.state = state;
    this.presenceState.set(name, entry);
    if (entry.timer) return;
    const interval = this.options.presenceIntervalMs ?? DEFAULT_PRESENCE_INTERVAL_MS;
    const wait = entry.lastSent + interval - Date.now();
    if (wait <= 0) {
      this.sendPresence(name);
      return;
    }
    entry.timer = this.later(wait, () => {
      entry.timer = null;
      this.sendPresence(name);
    });
  }

  sendPresence(name) {
    const entry = this.presenceState.get(name);
    const room = this.rooms.get(name);
    if (!entry || entry.state === null || !room?.synced) return;
    entry.lastSent = Date.now();
    this.trySend({ type: 'presence', room: name, state: entry.state });
  }

  /**
   * Claims an object (`{id}`) or a frame range of an item (`{item, frames: [first, last]}`).
   * @param {string} name the room
   * @param {object} target
   * @param {{ttl?: number}} [options] ttl in milliseconds, 1000 to 600000.
   * @returns {Promise<object>} the `claim_ack`, granted or denied; rejects with an AnnoliveError
   *   on a server error, when offline (`not_connected`), on close and on timeout.
   */
  claim(name, target, { ttl } = {}) {
    const message = { type: 'claim', room: name, ref: 0, target };
    if (ttl !== undefined) message.ttl = ttl;
    return this.request(message, 'claim_ack');
  }

  /**
   * Releases a claim.
   * @returns {Promise<object>} the `release_ack` (status `released` or `not_held`).
   */
  release(name, target) {
    return this.request({ type: 'release', room: name, ref: 0, target }, 'release_ack');
  }

  request(message, replyType) {
    return new Promise((resolve, reject) => {
      const room = this.rooms.get(message.room);
      if (!this.client || !room?.synced) {
        reject(new AnnoliveError('not_connected', `cannot send ${message.type}: room ${message.room} is not joined on an open connection`));
        return;
      }
      message.ref = this.nextRef++;
      const timer = setTimeout(() => {
        this.claimRefs.delete(message.ref);
        reject(new AnnoliveError('timeout', `no ${replyType} for ${message.type} ref ${message.ref} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.claimRefs.set(message.ref, {
        replyType,
        resolve: (reply) => { clearTimeout(timer); resolve(reply); },
        reject: (err) => { clearTimeout(timer); reject(err); },
      });
      if (!this.trySend(message)) this.settleRef(message.ref, null, new AnnoliveError('not_connected', `cannot send ${message.type}: not connected`));
    });
  }

  settleRef(ref, reply, err) {
    const entry = this.claimRefs.get(ref);
    if (!entry) return false;
    this.claimRefs.delete(ref);
    if (err) entry.reject(err);
    else entry.resolve(reply);
    return true;
  }

  // Connection.

  /** Closes the connection for good and stops reconnecting. Unacknowledged batches stay stored. */
  async close() {
    for (const room of this.rooms.values()) room.flush();
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const entry of this.presenceState.values()) entry.timer = null;
    const client = this.client;
    this.client = null;
    this.setStatus('closed');
    if (client) await client.close();
    await this.saving;
  }

  /** Closes the current connection as if the network had dropped it; the session reconnects. */
  drop() {
    this.client?.socket?.close(4000, 'client resync');
  }

  later(ms, fn) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.closed) fn();
    }, ms);
    this.timers.add(timer);
    return timer;
  }

  setStatus(status, extra = {}) {
    this.status = status;
    this.emit('status', { status, ...extra });
  }

  /** Reports the session offline and tries to connect again after the next backoff delay. */
  reconnectLater() {
    if (this.closed) return;
    const attempt = this.backoff.attempt;
    const delayMs = this.backoff.next();
    this.setStatus('offline', { attempt, delayMs });
    this.later(delayMs, () => this.connectOnce());
  }

  async connectOnce() {
    this.setStatus('connecting', { attempt: this.backoff.attempt });
    let client;
    try {
      if (this.options.getToken) this.token = await this.options.getToken();
      const url = typeof this.url === 'function' ? this.url() : this.url;
      client = new AnnoliveClient(url, {
        actor: this.actor, token: this.token, encoding: this.options.encoding, json: this.options.json,
        WebSocket: this.options.WebSocket, timeoutMs: this.timeoutMs,
      });
      client.on('message', (message) => this.client === client && this.handleMessage(message));
      client.on('close', (event) => this.handleClose(client, event));
      await client.connect();
    } catch (err) {
      if (this.closed) return;
      this.emit('error', err);
      // Without getToken a rejected token or Origin stays rejected, so the
      // session stops instead of retrying for ever.
      if (!this.options.getToken && /Unexpected server response: 40[13]\b/.test(err.message)) {
        await this.close();
        this.setStatus('closed', { reason: 'rejected', message: err.message });
        return;
      }
      this.reconnectLater();
      return;
    }
    if (this.closed) {
      client.close();
      return;
    }
    this.client = client;
    this.scheduleRefresh(tokenExpiry(this.token));
    this.setStatus(this.rooms.size > 0 ? 'resyncing' : 'open');
    for (const room of this.rooms.values()) this.sendJoin(room);
  }

  handleClose(client, event) {
    if (this.client !== client) return;
    this.client = null;
    for (const room of this.rooms.values()) {
      room.connectionLost();
      room.joining = false;
    }
    for (const ref of [...this.claimRefs.keys()]) {
      this.settleRef(ref, null, new AnnoliveError('closed', `connection closed (code ${event.code})`));
    }
    if (this.closed) return;
    this.reconnectLater();
  }

  trySend(message) {
    if (!this.client) return false;
    try {
      this.client.write(message);
      return true;
    } catch (err) {
      this.emit('error', err);
      return false;
    }
  }

  sendJoin(room) {
    const message = { type: 'join', room: room.name, actor: this.actor };
    if (room.seq !== null) message.since = room.seq;
    // The actor given in the join is the connection's presence key in the room.
    room.client = this.actor;
    room.joining = true;
    if (!this.trySend(message)) return;
    const client = this.client;
    this.later(this.timeoutMs, () => {
      if (room.joining && this.client === client) {
        this.emit('error', new AnnoliveError('timeout', `no reply to the join of ${room.name} within ${this.timeoutMs} ms; reconnecting`));
        this.drop();
      }
    });
  }

  /** Sends the room's unsent batches in order, unless a retry is waiting. */
  pump(room) {
    if (!this.client || !room.synced || room.holdUntilRetry || this.rooms.get(room.name) !== room) return;
    for (const batch of room.batches) {
      if (batch.sent || batch.results) continue;
      if (!this.trySend(batch.message())) return;
      batch.sent = true;
    }
  }

  // Server messages.

  handleMessage(message) {
    const room = this.rooms.get(message.room);
    switch (message.type) {
      case 'joined':
        if (room && typeof message.client === 'string') room.client = message.client;
        break;
      case 'snapshot':
      case 'resumed':
        if (room) this.joined(room, message);
        break;
      case 'event':
        if (room && room.applyEvent(message) === 'gap') {
          this.emit('error', new Error(`event seq ${message.seq} of room ${room.name} skips events after ${room.seq}; resynchronising`));
          this.drop();
        }
        break;
      case 'ack':
        if (room) this.acked(room, message);
        break;
      case 'presence':
        room?.applyPresence(message);
        break;
      case 'claimed':
      case 'released':
        room?.applyClaim(message);
        break;
      case 'claim_ack':
      case 'release_ack':
        this.settleRef(message.ref, message);
        break;
      case 'authed':
        this.scheduleRefresh(Number.isFinite(message.exp) ? message.exp * 1000 : tokenExpiry(this.token));
        this.emit('authed', message);
        break;
      case 'error':
        this.handleError(message, room);
        break;
      default:
        break;
    }
  }

  joined(room, message) {
    room.joining = false;
    if (message.type === 'snapshot') room.applySnapshot(message);
    else room.applyResumed(message);
    this.sendPresence(room.name);
    if ([...this.rooms.values()].every((r) => r.synced) && this.status !== 'open') {
      this.backoff.reset();
      this.setStatus('open');
    }
    this.pump(room);
  }

  acked(room, ack) {
    const batch = room.batches.find((b) => b.opseq === ack.opseq && !b.results);
    if (!batch) return;
    this.retryBackoff.reset();
    room.applyAck(batch, ack);
    this.save();
  }

  handleError(message, room) {
    const err = new AnnoliveError(String(message.code), String(message.message ?? message.code), message);
    if (message.ref !== undefined && this.settleRef(message.ref, null, err)) return;
    if (room && message.opseq !== undefined) {
      this.batchError(room, message, err);
      return;
    }
    if (room?.joining) {
      room.joining = false;
      room.emit('error', err);
      // A join that failed for a passing reason is tried again; forbidden and other errors
      // wait for the next connection.
      if (RETRY_CODES.has(message.code)) {
        const client = this.client;
        this.later(this.retryBackoff.next(), () => this.client === client && this.rooms.get(room.name) === room && this.sendJoin(room));
      }
    }
    this.emit('error', err);
  }

  /** Handles an error that names a batch: retry later, or give the batch up. */
  batchError(room, message, err) {
    const index = room.batches.findIndex((b) => b.opseq === message.opseq && !b.results);
    if (index < 0) return;
    if (RETRY_CODES.has(message.code)) {
      this.emit('retry', { room: room.name, opseq: message.opseq, code: message.code });
      // The server rejects the later batches of the actor until this one is sent again.
      for (const batch of room.batches.slice(index)) if (!batch.results) batch.sent = false;
      if (!room.holdUntilRetry) {
        room.holdUntilRetry = true;
        this.later(this.retryBackoff.next(), () => {
          room.holdUntilRetry = false;
          this.pump(room);
        });
      }
      return;
    }
    // stale_opseq and errors that sending again cannot fix end the batch.
    room.failBatch(room.batches[index], message.code, message.message);
    this.save();
    this.emit('error', err);
  }

  // Tokens.

  /** Schedules a token refresh before expiresAt (milliseconds since the epoch). */
  scheduleRefresh(expiresAt) {
    if (this.refreshTimer) {
      clearTimeout(this.refreshTimer);
      this.timers.delete(this.refreshTimer);
      this.refreshTimer = null;
    }
    if (!this.options.getToken || !expiresAt) return;
    const remaining = expiresAt - Date.now();
    const margin = Math.min(this.options.refreshMarginMs ?? DEFAULT_REFRESH_MARGIN_MS, remaining / 4);
    this.refreshTimer = this.later(Math.max(0, remaining - margin), () => this.refreshToken());
  }

  async refreshToken() {
    this.refreshTimer = null;
    let token;
    try {
      token = await this.options.getToken();
    } catch (err) {
      this.emit('error', new Error(`getToken failed: ${err.message}`, { cause: err }));
      this.refreshTimer = this.later(5000, () => this.refreshToken());
      return;
    }
    this.token = token;
    this.trySend({ type: 'auth', token });
  }
}
