// Type declarations of annolive-client (src/index.js and the modules it re-exports).

// ---- protocol values ----

export type VersionVector = Record<string, number>;
export type Dot = [actor: string, counter: number];
export type Fields = Record<string, any>;

export type Op =
  | { op: 'create'; id: string; kind: string; fields?: Fields }
  | { op: 'update'; id: string; base: VersionVector; set?: Fields; unset?: string[] }
  | { op: 'delete'; id: string; base: VersionVector }
  | { op: 'restore'; id: string; base: VersionVector; fields?: Fields }
  | { op: 'settings'; base: VersionVector; set: { policy?: 'reject' | 'lww'; schema?: object | null; claims?: 'advisory' | 'enforced' } };

export interface WireObject {
  id: string;
  kind: string;
  vv: VersionVector;
  fields: Fields;
}

export interface FieldConflict {
  field: string;
  /** The current value; absent when the field was removed. */
  value?: any;
  /** The dot of the current value's write: its actor and counter. */
  dot: Dot;
}

export interface OpResult {
  id: string;
  status: 'applied' | 'merged' | 'conflict' | 'rejected';
  reason?: string;
  message?: string;
  vv?: VersionVector;
  conflicts?: FieldConflict[];
  overwritten?: FieldConflict[];
}

export interface AckMessage {
  type: 'ack';
  room: string;
  opseq: number;
  seq?: number;
  results: OpResult[];
}

export interface PresenceEntry {
  client: string;
  sub?: string;
  name?: string;
  state: Record<string, any> | null;
}

export type ClaimTarget = { id: string } | { item: string; frames: [first: number, last: number] };

export interface Claim {
  target: ClaimTarget;
  client: string;
  sub?: string;
  name?: string;
  ttl?: number;
}

export interface ClaimAck {
  type: 'claim_ack';
  room: string;
  ref: number;
  status: 'granted' | 'denied';
  target: ClaimTarget;
  ttl?: number;
  holder?: Claim;
}

export interface ReleaseAck {
  type: 'release_ack';
  room: string;
  ref: number;
  status: 'released' | 'not_held';
}

// ---- connection client (src/client.js) ----

export const SUBPROTOCOL: 'annolive.v1.json';
export const MSGPACK_SUBPROTOCOL: 'annolive.v1.msgpack';
export const SUBPROTOCOLS: Readonly<{ json: 'annolive.v1.json'; msgpack: 'annolive.v1.msgpack' }>;
export function resolveUrl(url: string): string;

export interface JsonCodec {
  parse(text: string): any;
  stringify(value: any): string;
}

export interface ClientOptions {
  actor?: string;
  token?: string;
  WebSocket?: any;
  opseq?: number;
  timeoutMs?: number;
  encoding?: 'json' | 'msgpack';
  json?: JsonCodec;
}

export class AnnoliveError extends Error {
  constructor(code: string, message: string, details?: object);
  code: string;
  details?: any;
}

export type ClientListenerType = 'event' | 'snapshot' | 'error' | 'close' | 'message';

export class AnnoliveClient {
  constructor(url: string, options?: ClientOptions);
  readonly url: string;
  actor: string;
  nextOpseq: number;
  encoding: 'json' | 'msgpack';
  connect(): Promise<void>;
  join(room: string, options?: { timeoutMs?: number; since?: number; actor?: string }): Promise<any>;
  leave(room: string, options?: { timeoutMs?: number }): Promise<any>;
  send(room: string, ops: Op[], options?: { timeoutMs?: number; opseq?: number; atomic?: boolean }): Promise<AckMessage>;
  on(type: ClientListenerType, fn: (message: any) => void): this;
  off(type: ClientListenerType, fn: (message: any) => void): this;
  /** Sends one protocol message as it is; throws an AnnoliveError `not_connected` when closed. */
  write(message: object): void;
  close(): Promise<void>;
}

// ---- events ----

export class Emitter {
  on(name: string, fn: (value: any) => void): () => void;
  off(name: string, fn: (value: any) => void): this;
  emit(name: string, value?: any): void;
}

// ---- room replica (src/replica.js) ----

export interface ChangeEvent {
  id: string;
  /** The object as the view shows it now; null when it is gone. */
  object: WireObject | null;
  previous: WireObject | null;
}

export interface ConflictEvent {
  id: string;
  op: Op;
  result: OpResult;
  conflicts: FieldConflict[];
  object: WireObject | null;
  /** Sends the part of op that did not apply again, on the fresh base. */
  retry(): Promise<OpResult>;
}

export interface RoomEvents {
  change: ChangeEvent;
  conflict: ConflictEvent;
  rejected: { id: string; op: Op; result: OpResult };
  overwritten: { id: string; field: string; value?: any; dot: Dot; by: string };
  reset: { seq: number };
  synced: { seq: number; resumed: boolean };
  presence: { client: string; entry: PresenceEntry | null };
  claims: { type: 'claimed' | 'released'; claim: Claim; reason?: string };
  pending: number;
  error: AnnoliveError;
}

export class Batch {
  constructor(data: { room: string; actor: string; opseq: number; ops: Op[]; atomic?: boolean });
  room: string;
  actor: string;
  opseq: number;
  ops: Op[];
  atomic: boolean;
  sent: boolean;
  results: OpResult[] | null;
  ackSeq: number | null;
  message(): object;
  toJSON(): { room: string; actor: string; opseq: number; ops: Op[]; atomic: boolean };
}

export class Room extends Emitter {
  readonly name: string;
  /** The room's seq in this replica; null before the first snapshot. */
  seq: number | null;
  presence: Map<string, PresenceEntry>;
  claims: Map<string, Claim>;
  /** This connection's presence key. */
  client: string | null;
  synced: boolean;
  batches: Batch[];
  /** Resolves with the room after the first join reply. */
  ready: Promise<Room>;
  readonly pendingOps: number;
  readonly settings: Fields;

  on<K extends keyof RoomEvents>(name: K, fn: (value: RoomEvents[K]) => void): () => void;
  get(id: string): WireObject | undefined;
  objects(): WireObject[];
  claimOf(id: string): Claim | null;

  create(kind: string, fields?: Fields, options?: { id?: string }): Promise<OpResult>;
  update(id: string, change: { set?: Fields; unset?: string[] }): Promise<OpResult>;
  delete(id: string): Promise<OpResult>;
  restore(id: string, fields?: Fields): Promise<OpResult>;
  setSettings(set: { policy?: 'reject' | 'lww'; schema?: object | null; claims?: 'advisory' | 'enforced' }): Promise<OpResult>;
  /** Queues any op as it is (base included). */
  edit(op: Op): Promise<OpResult>;
  batch(fn: () => void, options?: { atomic?: boolean }): void;
  flush(): void;
  baseOf(id: string): VersionVector;
  rebase<T extends Op>(op: T, vv?: VersionVector): T;
  retry(op: Op, options?: { vv?: VersionVector; fields?: string[] }): Promise<OpResult>;
}

export function newId(): string;
export function targetKey(target: ClaimTarget): string;
export function mergeVv(a?: VersionVector, b?: VersionVector): VersionVector;

// ---- session (src/session.js) ----

export interface Storage {
  load(key: string): any | Promise<any>;
  save(key: string, value: any): void | Promise<void>;
}

export function memoryStorage(): Storage;
export function localStorageStorage(store?: { getItem(key: string): string | null; setItem(key: string, value: string): void }): Storage;
export function tokenExpiry(token: string): number | null;
export const DEFAULT_PRESENCE_INTERVAL_MS: number;
export const DEFAULT_REFRESH_MARGIN_MS: number;

export interface SessionOptions {
  actor?: string;
  token?: string;
  getToken?: () => string | Promise<string>;
  refreshMarginMs?: number;
  encoding?: 'json' | 'msgpack';
  json?: JsonCodec;
  WebSocket?: any;
  minDelayMs?: number;
  maxDelayMs?: number;
  random?: () => number;
  timeoutMs?: number;
  presenceIntervalMs?: number;
  storage?: Storage;
  storageKey?: string;
  opseq?: number;
}

export type SessionStatus = 'idle' | 'connecting' | 'resyncing' | 'open' | 'offline' | 'closed';

export interface SessionEvents {
  status: { status: SessionStatus; attempt?: number; delayMs?: number };
  pending: number;
  error: Error;
  authed: { type: 'authed'; sub: string; exp: number };
  retry: { room: string; opseq: number; code: string };
}

export class AnnoliveSession extends Emitter {
  constructor(url: string | (() => string), options?: SessionOptions);
  /** Set once start() has loaded the storage. */
  actor: string;
  status: SessionStatus;
  rooms: Map<string, Room>;
  readonly pendingOps: number;

  on<K extends keyof SessionEvents>(name: K, fn: (value: SessionEvents[K]) => void): () => void;
  start(): Promise<this>;
  room(name: string): Room;
  join(name: string): Promise<Room>;
  leave(name: string): void;
  setPresence(room: string, state: Record<string, any> | null): void;
  claim(room: string, target: ClaimTarget, options?: { ttl?: number }): Promise<ClaimAck>;
  release(room: string, target: ClaimTarget): Promise<ReleaseAck>;
  /** Closes the connection as a network failure would; the session reconnects. */
  drop(): void;
  close(): Promise<void>;
}

// ---- reconnect delays (src/backoff.js) ----

export const DEFAULT_MIN_DELAY_MS: number;
export const DEFAULT_MAX_DELAY_MS: number;
export function backoffCap(attempt: number, limits?: { minMs?: number; maxMs?: number }): number;
export function backoffDelay(attempt: number, options?: { minMs?: number; maxMs?: number; random?: () => number }): number;
export class Backoff {
  constructor(options?: { minMs?: number; maxMs?: number; random?: () => number });
  attempt: number;
  readonly cap: number;
  next(): number;
  reset(): void;
}

// ---- object state (src/objects.js) ----

export interface StoredRecord {
  id: string;
  kind: string;
  fields: Fields;
  dots: Record<string, Dot>;
  vv: VersionVector;
  deleted: boolean;
}

export const ROOM_ID: '@room';
export const TOMBSTONE_FIELDS: readonly string[];
export function applyEventOp(records: Map<string, StoredRecord>, op: object, actor: string): string | null;
export function applyLocalOp(view: Map<string, StoredRecord>, op: Op): boolean;
export function appliedPart<T extends Op>(op: T, result: OpResult | null | undefined): T | null;
export function fromWire(object: WireObject): StoredRecord;
export function toWire(record: StoredRecord): WireObject;

// ---- converters and codecs ----

export function cocoToOps(coco: object, options?: object): any;
export function objectsToCoco(objects: WireObject[], options?: object): any;
export function isCoco(value: unknown): boolean;
export const DEFAULT_COCO_PREFIX: string;
export function labelmeToOps(labelme: object, options?: object): any;
export function isLabelme(value: unknown): boolean;
export const DEFAULT_LABELME_PREFIX: string;

export class JsonFloat extends Number {
  toJSONText(): string;
}
export const losslessJson: JsonCodec;
export function parseJson(text: string): any;
export function stringifyJson(value: any): string;
