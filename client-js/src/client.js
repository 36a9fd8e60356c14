/**
 * WebSocket client of the annolive protocol, version 1. It speaks either subprotocol:
 * `annolive.v1.json` (JSON text frames, the default) or `annolive.v1.msgpack` (one msgpack map
 * per binary frame). ./msgpack.js describes which numbers keep their type and value in msgpack.
 *
 * It runs in browsers (globalThis.WebSocket) and in Node (the `ws` package), chosen when
 * connect() runs. The msgpack codec is loaded only for the msgpack encoding, so a page that
 * speaks JSON needs no import map. It does not reconnect: after a close, pending requests are
 * rejected, and the caller may call connect() again and join its rooms anew. AnnoliveSession
 * (./session.js) adds reconnects, a replica per room and an outbox on top of this class.
 */

/** The subprotocol of the `msgpack` encoding (also exported by ./msgpack.js). */
export const MSGPACK_SUBPROTOCOL = 'annolive.v1.msgpack';
/** The subprotocol of the `json` encoding. */
export const SUBPROTOCOL = 'annolive.v1.json';
/** The subprotocol offered for each value of the `encoding` option. */
export const SUBPROTOCOLS = Object.freeze({ json: SUBPROTOCOL, msgpack: MSGPACK_SUBPROTOCOL });
export const DEFAULT_TIMEOUT_MS = 30000;

const EVENT_TYPES = new Set(['event', 'snapshot', 'error', 'close', 'message']);

/**
 * @typedef {Record<string, number>} VersionVector
 *
 * @typedef {{op: 'create', id: string, kind: string, fields?: Record<string, any>}
 *   | {op: 'update', id: string, base: VersionVector, set?: Record<string, any>, unset?: string[]}
 *   | {op: 'delete', id: string, base: VersionVector}} Op
 *
 * @typedef {{id: string, kind: string, vv: VersionVector, fields: Record<string, any>}} WireObject
 * @typedef {{type: 'snapshot', room: string, seq: number, objects: WireObject[]}} SnapshotMessage
 * @typedef {{id: string, status: 'applied' | 'conflict' | 'rejected', reason?: string,
 *   message?: string, vv?: VersionVector,
 *   conflicts?: {field: string, value?: any, dot: [string, number]}[]}} OpResult
 * @typedef {{type: 'ack', room: string, opseq: number, seq?: number, results: OpResult[]}} AckMessage
 * @typedef {{type: 'event', room: string, seq: number, actor: string, opseq: number,
 *   ops: object[]}} EventMessage
 * @typedef {{type: 'error', code: string, message: string, room?: string, opseq?: number}} ErrorMessage
 * @typedef {{type: 'close', code: number, reason: string, byClient: boolean}} CloseMessage
 *
 * @typedef {object} JsonCodec
 * @property {(text: string) => any} parse
 * @property {(value: any) => string} stringify
 *
 * @typedef {object} ClientOptions
 * @property {string} [actor] actor id, 1 to 64 bytes of printable ASCII; a random id by default.
 * @property {string} [token] access token, sent as the query argument `token`; error messages
 *   show the URL without it.
 * @property {any} [WebSocket] WebSocket constructor; globalThis.WebSocket, else the `ws` package.
 * @property {number} [opseq] first opseq that send() assigns; 1 by default. An actor that
 *   keeps its id across restarts starts above the last opseq it used.
 * @property {number} [timeoutMs] default time limit of join, leave and send, in milliseconds.
 * @property {'json' | 'msgpack'} [encoding] wire encoding; `json` by default. `msgpack` offers
 *   the subprotocol `annolive.v1.msgpack` and sends and receives binary frames. With msgpack,
 *   integers beyond ±(2^53-1) lose precision when received, and a BigInt beyond that range
 *   cannot be sent. JavaScript cannot tell `3.0` from `3`, so integral floats
 *   ({@link JsonFloat} included) are sent as msgpack ints and received as plain numbers.
 * @property {JsonCodec} [json] codec of the frames of the `json` encoding; JSON by default. The
 *   `losslessJson` codec of ./json.js keeps integral floats such as `191.0` apart from integers.
 *   The msgpack encoding does not use it.
 */

/** An Error with a `code`, from a server `error` message or from the client itself. */
export class AnnoliveError extends Error {
  /**
   * @param {string} code server error code, or `timeout`, `closed` or `not_connected`.
   * @param {string} message
   * @param {object} [details] the server's error message, when there is one.
   */
  constructor(code, message, details) {
    super(message);
    this.name = 'AnnoliveError';
    this.code = code;
    if (details !== undefined) this.details = details;
  }
}

/** Returns a random actor id such as `js-3f9a0c2e7b1d4a58`. */
function randomActor() {
  const bytes = new Uint8Array(8);
  if (globalThis.crypto?.getRandomValues) {
    globalThis.crypto.getRandomValues(bytes);
  } else {
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  }
  return `js-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * Returns the WebSocket URL to open: `/v1/ws` is appended when the path is empty.
 * @param {string} url
 */
export function resolveUrl(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`invalid server URL ${JSON.stringify(url)}: expected a URL such as ws://127.0.0.1:7700`);
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw new TypeError(`invalid server URL ${JSON.stringify(url)}: the scheme must be ws: or wss:`);
  }
  if (parsed.pathname === '' || parsed.pathname === '/') parsed.pathname = '/v1/ws';
  return parsed.toString();
}

async function loadWebSocket() {
  if (typeof globalThis.WebSocket === 'function') return globalThis.WebSocket;
  const module = await import('ws');
  return module.WebSocket ?? module.default;
}

/** Decodes a frame's data to text; `ws` and browsers give strings for text frames. */
function frameText(data) {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return new TextDecoder().decode(data);
  return String(data);
}

/**
 * Client of one annolive server connection.
 *
 * Listeners registered with on() receive the raw protocol messages of type `event`,
 * `snapshot` and `error`; `close` listeners receive `{type: 'close', code, reason, byClient}`;
 * `message` listeners receive every message the server sends, of any type, before the others.
 * Every server `error` message reaches the `error` listeners, including those that also
 * reject a pending send, join or leave.
 */
export class AnnoliveClient {
  /**
   * @param {string} url server URL such as `ws://127.0.0.1:7700`.
   * @param {ClientOptions} [options]
   */
  constructor(url, options = {}) {
    this.url = resolveUrl(url);
    /** The URL opened: this.url plus the token, kept out of messages. */
    this.socketUrl = this.url;
    if (options.token !== undefined) {
      if (typeof options.token !== 'string' || options.token === '') {
        throw new TypeError('invalid token: expected a non-empty string');
      }
      // Browsers cannot set headers on a WebSocket, so the token goes in
      // the query, which the server reads as token=TOKEN.
      const withToken = new URL(this.url);
      withToken.searchParams.set('token', options.token);
      this.socketUrl = withToken.toString();
    }
    this.actor = options.actor ?? randomActor();
    if (typeof this.actor !== 'string' || !/^[\x21-\x7e]{1,64}$/.test(this.actor)) {
      throw new TypeError(`invalid actor ${JSON.stringify(this.actor)}: use 1 to 64 printable ASCII characters`);
    }
    const firstOpseq = options.opseq ?? 1;
    if (!Number.isSafeInteger(firstOpseq) || firstOpseq < 1) {
      throw new TypeError(`invalid opseq ${firstOpseq}: use an integer from 1 to 2^53-1`);
    }
    /** The opseq that the next send() assigns. */
    this.nextOpseq = firstOpseq;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    /** The wire encoding, `json` or `msgpack`. */
    this.encoding = options.encoding ?? 'json';
    if (!Object.hasOwn(SUBPROTOCOLS, this.encoding)) {
      throw new TypeError(`invalid encoding ${JSON.stringify(this.encoding)}: use json or msgpack`);
    }
    this.json = options.json ?? JSON;
    this.WebSocketImpl = options.WebSocket;
    this.socket = null;
    this.closing = null;
    /** @type {Map<string, Set<Function>>} */
    this.listeners = new Map();
    /** Pending sends by `${room}\n${opseq}`. */
    this.pendingAcks = new Map();
    /** Pending joins and leaves by room, oldest first. */
    this.pendingJoins = new Map();
    this.pendingLeaves = new Map();
  }

  /**
   * Opens the connection.
   * @returns {Promise<void>} resolves when the socket is open.
   * @throws {Error} naming the URL when the connection fails or closes before it opens.
   */
  async connect() {
    if (this.socket) throw new Error(`client is already connected to ${this.url}`);
    const WebSocketImpl = this.WebSocketImpl ?? (await loadWebSocket());
    if (this.encoding === 'msgpack' && !this.codec) this.codec = await import('./msgpack.js');
    let socket;
    try {
      socket = new WebSocketImpl(this.socketUrl, SUBPROTOCOLS[this.encoding]);
    } catch (err) {
      throw new Error(`cannot connect to ${this.url}: ${err.message}`, { cause: err });
    }
    // Browsers deliver binary frames as Blobs by default, which can only be read asynchronously.
    // `ws` accepts 'arraybuffer' too.
    if (this.encoding === 'msgpack') socket.binaryType = 'arraybuffer';
    this.socket = socket;
    this.closing = null;
    this.closedByClient = false;
    // Set before open, because `ws` may emit a frame that arrived with the handshake at once.
    socket.onmessage = (event) => this.handleFrame(event.data);
    await new Promise((resolve, reject) => {
      let lastError = null;
      socket.onopen = () => {
        socket.onerror = null;
        socket.onclose = (event) => this.handleClose(event);
        resolve();
      };
      socket.onerror = (event) => {
        lastError = event?.error ?? event?.message ?? null;
      };
      socket.onclose = (event) => {
        this.socket = null;
        this.onClosed?.();
        const text = String(lastError?.message ?? lastError ?? `close code ${event?.code}`);
        // The ws package names the HTTP status of a rejected upgrade.
        const status = /Unexpected server response: (\d+)/.exec(text)?.[1];
        const hints = {
          401: 'the server wants a valid token: pass --token or set ANNOLIVE_TOKEN (mint one with annolive token)',
          403: 'the server rejected this Origin',
          429: 'this address has too many connections open (--max-conns-per-ip)',
          503: 'the instance is stopping or cannot reach Redis; try another instance or retry',
        };
        const detail = this.closedByClient
          ? 'close() was called before the connection opened'
          : `${text}; ${hints[status] ?? 'is an annolive server listening there?'}`;
        reject(new Error(`cannot connect to ${this.url}: ${detail}`));
      };
    });
  }

  /**
   * Joins a room.
   * @param {string} room
   * @param {{timeoutMs?: number, since?: number, actor?: string}} [options] since resumes
   *   after that seq; actor is the presence key (the protocol's `actor` of a join).
   * @returns {Promise<SnapshotMessage | object>} the room's snapshot, or the `resumed` reply to
   *   a join with since; the events follow.
   */
  join(room, options = {}) {
    const message = { type: 'join', room };
    if (options.since !== undefined) message.since = options.since;
    if (options.actor !== undefined) message.actor = options.actor;
    return this.request(this.pendingJoins, room, message, options);
  }

  /**
   * Leaves a room.
   * @param {string} room
   * @param {{timeoutMs?: number}} [options]
   * @returns {Promise<object>} the server's `left` message.
   */
  leave(room, options = {}) {
    return this.request(this.pendingLeaves, room, { type: 'leave', room }, options);
  }

  /**
   * Sends an op batch to a joined room, with the next opseq of this actor.
   *
   * The promise resolves with the batch's ack, whatever the status of each op, and
   * rejects with an AnnoliveError when the server replies with an `error` message
   * for this opseq, on timeout (code `timeout`) or when the connection closes (`closed`).
   * @param {string} room
   * @param {Op[]} ops
   * @param {{timeoutMs?: number, opseq?: number, atomic?: boolean}} [options] `opseq` resends a
   *   batch under the opseq it had, as the protocol requires after an `unavailable` error; the
   *   counter does not move then. `atomic` requests that every op applies or none does.
   * @returns {Promise<AckMessage>}
   */
  send(room, ops, options = {}) {
    if (!Array.isArray(ops)) {
      return Promise.reject(new TypeError(`ops must be an array of op objects, got ${typeof ops}`));
    }
    let opseq = options.opseq;
    if (opseq === undefined) {
      opseq = this.nextOpseq++;
    } else if (!Number.isSafeInteger(opseq) || opseq < 1) {
      return Promise.reject(new TypeError(`invalid opseq ${opseq}: use an integer from 1 to 2^53-1`));
    }
    const key = `${room}\n${opseq}`;
    if (this.pendingAcks.has(key)) {
      return Promise.reject(new Error(`opseq ${opseq} in room ${room} is already waiting for its ack`));
    }
    const message = { type: 'ops', room, actor: this.actor, opseq, ops };
    if (options.atomic) message.atomic = true;
    return this.track(options.timeoutMs, `ack of opseq ${opseq} in room ${room}`, (entry) => {
      entry.room = room;
      entry.opseq = opseq;
      this.pendingAcks.set(key, entry);
      entry.remove = () => this.pendingAcks.delete(key);
      this.write(message);
    });
  }

  /**
   * Registers a listener for `event`, `snapshot`, `error`, `close` or every (`message`) message.
   * @param {'event' | 'snapshot' | 'error' | 'close' | 'message'} type
   * @param {(message: any) => void} fn
   * @returns {this}
   */
  on(type, fn) {
    if (!EVENT_TYPES.has(type)) {
      throw new TypeError(`unknown listener type ${JSON.stringify(type)}: use event, snapshot, error, close or message`);
    }
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return this;
  }

  /**
   * Removes a listener registered with on().
   * @param {'event' | 'snapshot' | 'error' | 'close' | 'message'} type
   * @param {(message: any) => void} fn
   * @returns {this}
   */
  off(type, fn) {
    this.listeners.get(type)?.delete(fn);
    return this;
  }

  /**
   * Closes the connection with code 1000 and rejects pending requests.
   * @returns {Promise<void>} resolves when the socket has closed.
   */
  close() {
    if (this.closing) return this.closing;
    const socket = this.socket;
    if (!socket) return Promise.resolve();
    this.closedByClient = true;
    this.closing = new Promise((resolve) => {
      this.onClosed = resolve;
    });
    socket.close(1000, 'client closed');
    return this.closing;
  }

  // Internals.

  emit(type, message) {
    for (const fn of [...(this.listeners.get(type) ?? [])]) {
      try {
        fn(message);
      } catch (err) {
        // A listener's exception must not stop the dispatch of the frame, so it is rethrown apart.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  write(message) {
    if (!this.socket || this.socket.readyState !== 1) {
      throw new AnnoliveError('not_connected', `not connected to ${this.url}: call connect() first`);
    }
    this.socket.send(this.encoding === 'msgpack' ? this.codec.encodeMessage(message) : this.json.stringify(message));
  }

  /**
   * Runs start(entry) and returns a promise settled through entry.resolve/entry.reject,
   * rejected with code `timeout` after timeoutMs.
   */
  track(timeoutMs, what, start) {
    const limit = timeoutMs ?? this.timeoutMs;
    return new Promise((resolve, reject) => {
      const entry = { remove: () => {} };
      const timer = setTimeout(() => {
        entry.remove();
        reject(new AnnoliveError('timeout', `timed out after ${limit} ms waiting for the ${what} from ${this.url}`));
      }, limit);
      entry.resolve = (value) => {
        clearTimeout(timer);
        entry.remove();
        resolve(value);
      };
      entry.reject = (err) => {
        clearTimeout(timer);
        entry.remove();
        reject(err);
      };
      try {
        start(entry);
      } catch (err) {
        entry.reject(err);
      }
    });
  }

  request(pending, room, message, options) {
    return this.track(options.timeoutMs, `reply to ${message.type} of room ${room}`, (entry) => {
      if (!pending.has(room)) pending.set(room, []);
      const queue = pending.get(room);
      queue.push(entry);
      entry.remove = () => {
        const i = queue.indexOf(entry);
        if (i >= 0) queue.splice(i, 1);
        if (queue.length === 0 && pending.get(room) === queue) pending.delete(room);
      };
      this.write(message);
    });
  }

  /** Decodes a frame; returns undefined after emitting an `error` when it cannot be read. */
  decodeFrame(data) {
    const fail = (text) => {
      // The server uses the code invalid_json for undecodable frames of either encoding.
      this.emit('error', { type: 'error', code: 'invalid_json', message: text, fromClient: true });
      return undefined;
    };
    if (this.encoding === 'msgpack') {
      if (typeof data === 'string') return fail(`the server sent a text frame on ${MSGPACK_SUBPROTOCOL}`);
      if (!(data instanceof ArrayBuffer) && !ArrayBuffer.isView(data)) {
        return fail(`the server sent a binary frame as ${Object.prototype.toString.call(data)}, expected an ArrayBuffer`);
      }
      try {
        return this.codec.decodeMessage(data);
      } catch (err) {
        return fail(`the server sent a frame that is not one msgpack value: ${err.message}`);
      }
    }
    try {
      return this.json.parse(frameText(data));
    } catch (err) {
      return fail(`the server sent a frame that is not JSON: ${err.message}`);
    }
  }

  handleFrame(data) {
    const message = this.decodeFrame(data);
    if (message === null || typeof message !== 'object') return;
    this.emit('message', message);
    switch (message.type) {
      case 'resumed':
        this.pendingJoins.get(message.room)?.[0]?.resolve(message);
        break;
      case 'snapshot':
        this.pendingJoins.get(message.room)?.[0]?.resolve(message);
        this.emit('snapshot', message);
        break;
      case 'left':
        this.pendingLeaves.get(message.room)?.[0]?.resolve(message);
        break;
      case 'ack':
        this.pendingAcks.get(`${message.room}\n${message.opseq}`)?.resolve(message);
        break;
      case 'event':
        this.emit('event', message);
        break;
      case 'error':
        this.rejectForError(message);
        this.emit('error', message);
        break;
      default:
        break;
    }
  }

  /** Rejects the pending request that a server `error` message replies to, when it names one. */
  rejectForError(message) {
    const err = new AnnoliveError(String(message.code), String(message.message ?? message.code), message);
    if (message.opseq !== undefined) {
      let entry = this.pendingAcks.get(`${message.room}\n${message.opseq}`);
      if (!entry && message.room === undefined) {
        // Without a room the opseq alone names the batch, unless two rooms share it.
        const matches = [...this.pendingAcks.values()].filter((e) => e.opseq === message.opseq);
        if (matches.length === 1) entry = matches[0];
      }
      entry?.reject(err);
      return;
    }
    if (message.room !== undefined) {
      // An error with a room and no opseq replies to a join or leave of that room. Joins are matched first.
      const entry = this.pendingJoins.get(message.room)?.[0] ?? this.pendingLeaves.get(message.room)?.[0];
      entry?.reject(err);
    }
  }

  handleClose(event) {
    this.socket = null;
    const byClient = Boolean(this.closedByClient);
    const code = event?.code ?? 1006;
    const reason = event?.reason ?? '';
    const err = new AnnoliveError('closed', `connection to ${this.url} closed (code ${code}${reason ? `, ${reason}` : ''})`);
    for (const entry of [...this.pendingAcks.values()]) entry.reject(err);
    for (const pending of [this.pendingJoins, this.pendingLeaves]) {
      for (const queue of [...pending.values()]) {
        for (const entry of [...queue]) entry.reject(err);
      }
    }
    this.emit('close', { type: 'close', code, reason, byClient });
    this.onClosed?.();
  }
}
