/**
 * A client's replica of one room: the objects as the server confirmed them (from the join
 * snapshot and the events after it), the room's seq, its presence entries and claims. The
 * client's own edits that the server has not acknowledged yet apply on top, as an optimistic view.
 *
 * A Room does no I/O. AnnoliveSession (./session.js) feeds it server messages, takes the batches
 * it makes, sends them and hands their acks back. Edits made offline stay in the room's batch
 * queue and in the view until they are acknowledged.
 *
 * Events (room.on(name, fn)):
 * - `change`: `{id, object, previous}` for each object whose view changed; object is null when
 *   the object is gone (deleted or never created).
 * - `conflict`: `{id, op, result, conflicts, object, retry}` when an op of this replica was
 *   `merged` (part of it applied) or got a `conflict`. Each of conflicts is `{field, value, dot}`:
 *   the current value and the dot `[actor, counter]` of its writer. retry() sends the
 *   part that did not apply again on the fresh base.
 * - `rejected`: `{id, op, result}` for an op the server rejected (or a batch it refused).
 * - `overwritten`: `{id, field, value, dot, by}` when another actor's write replaced a value this
 *   replica wrote, under the room policy `lww`.
 * - `reset`: `{seq}` after a snapshot with `"reset": true` replaced the copy.
 * - `synced`: `{seq, resumed}` after each join reply.
 * - `presence`: `{client, entry}`; entry is null when the member left.
 * - `claims`: `{type: 'claimed' | 'released', claim, reason}`.
 * - `pending`: the number of ops not yet acknowledged, when it changes.
 */

import { Emitter } from './emitter.js';
import {
  ROOM_ID, applyEventOp, applyLocalOp, appliedPart, cloneValue, fromWire, isPlainObject, sameValue,
} from './objects.js';

/** Returns a random object id: 26 characters, time first, so ids sort by creation time. */
export function newId() {
  const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  let time = Date.now();
  let text = '';
  for (let i = 0; i < 10; i++) {
    text = alphabet[time % 32] + text;
    time = Math.floor(time / 32);
  }
  const bytes = new Uint8Array(16);
  if (globalThis.crypto?.getRandomValues) globalThis.crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  for (const byte of bytes) text += alphabet[byte % 32];
  return text;
}

/** Returns the key of a claim target: `id:ID` or `item:ITEM:FIRST-LAST`. */
export function targetKey(target) {
  if (target && target.id !== undefined) return `id:${target.id}`;
  const frames = Array.isArray(target?.frames) ? target.frames : [];
  return `item:${target?.item}:${frames[0]}-${frames[1]}`;
}

/** Returns the pointwise maximum of two version vectors. */
export function mergeVv(a = {}, b = {}) {
  const out = { ...a };
  for (const [actor, n] of Object.entries(b)) if (!(out[actor] >= n)) out[actor] = n;
  return out;
}

/** Returns the id an op writes: the room object for settings ops. */
function opId(op) {
  return op.op === 'settings' ? ROOM_ID : op.id;
}

/** Returns true when two view records show the same live object, or both none. */
function sameLive(a, b) {
  const x = liveObject(a);
  const y = liveObject(b);
  if (!x || !y) return !x && !y;
  return x.kind === y.kind && sameValue(x.vv, y.vv) && sameValue(x.fields, y.fields);
}

/** Returns the wire form of a live view record, or null. */
function liveObject(record) {
  if (!record || record.deleted) return null;
  return { id: record.id, kind: record.kind, vv: record.vv, fields: record.fields };
}

/**
 * One op batch of this replica. Until its ack, every op applies to the view. The ack sets
 * `results` and `ackSeq`, and from then on only the applied part shows, until the room reaches ackSeq.
 */
export class Batch {
  constructor({ room, actor, opseq, ops, atomic = false }) {
    this.room = room;
    this.actor = actor;
    this.opseq = opseq;
    this.ops = ops;
    this.atomic = atomic;
    this.sent = false;
    this.results = null;
    this.ackSeq = null;
    /** Resolvers of the promises of the ops, by op index; not persisted. */
    this.waiters = [];
  }

  /** Returns the `ops` message of this batch. */
  message() {
    const message = { type: 'ops', room: this.room, actor: this.actor, opseq: this.opseq, ops: this.ops };
    if (this.atomic) message.atomic = true;
    return message;
  }

  /** Returns the ops this batch applies to the view now. */
  overlay() {
    if (!this.results) return this.ops;
    return this.ops.map((op, i) => appliedPart(op, this.results[i])).filter(Boolean);
  }

  /** Returns the form kept in storage. */
  toJSON() {
    return { room: this.room, actor: this.actor, opseq: this.opseq, ops: this.ops, atomic: this.atomic };
  }
}

export class Room extends Emitter {
  /**
   * @param {string} name
   * @param {{actor: string, submit: (room: Room, ops: object[], atomic: boolean) => Batch,
   *   queued?: (room: Room) => void, pendingChanged?: () => void}} host submit makes a batch
   *   with the next opseq; queued is called after the room added it to its queue.
   */
  constructor(name, host) {
    super();
    this.name = name;
    this.host = host;
    /** The room's seq in this copy; null before the first snapshot. */
    this.seq = null;
    /** Confirmed records by id, tombstones included. */
    this.records = new Map();
    /** The optimistic view: records by id. */
    this.view = new Map();
    /** Unacknowledged batches, and acknowledged ones whose event has not arrived, by opseq. */
    this.batches = [];
    /** Presence entries by client key. */
    this.presence = new Map();
    /** Claims by targetKey(). */
    this.claims = new Map();
    /** This connection's presence key in the room: the actor sent with the join. */
    this.client = null;
    this.synced = false;
    this.openOps = null;
    this.ready = new Promise((resolve) => {
      this.resolveReady = resolve;
    });
  }

  // Reading.

  /** Returns the live object with id, as `{id, kind, vv, fields}`, or undefined. Do not modify it. */
  get(id) {
    return liveObject(this.view.get(id)) ?? undefined;
  }

  /** Returns the live objects of the view. Do not modify them. */
  objects() {
    const list = [];
    for (const record of this.view.values()) {
      const object = liveObject(record);
      if (object && object.id !== ROOM_ID) list.push(object);
    }
    return list;
  }

  /** The room's settings (policy, schema, claims) in the view. */
  get settings() {
    return this.view.get(ROOM_ID)?.fields ?? {};
  }

  /** The number of ops not yet acknowledged. */
  get pendingOps() {
    let n = this.openOps?.ops.length ?? 0;
    for (const batch of this.batches) if (!batch.results) n += batch.ops.length;
    return n;
  }

  /** Returns the claim on object id, or on a frame range of its item that contains its frame. */
  claimOf(id) {
    const direct = this.claims.get(targetKey({ id }));
    if (direct) return direct;
    const fields = this.view.get(id)?.fields;
    if (!fields || fields.item === undefined || !Number.isInteger(fields.frame)) return null;
    for (const claim of this.claims.values()) {
      const t = claim.target;
      if (t.item === fields.item && t.frames?.[0] <= fields.frame && fields.frame <= t.frames?.[1]) return claim;
    }
    return null;
  }

  // Editing. Each method returns a promise of the op's result, which never rejects: a batch
  // the server refuses as a whole gives each op a result with status `rejected` and the error
  // code as reason.

  /**
   * Creates an object.
   * @param {string} kind
   * @param {Record<string, any>} [fields]
   * @param {{id?: string}} [options] id: a new random id by default.
   */
  create(kind, fields = {}, { id = newId() } = {}) {
    return this.edit({ op: 'create', id, kind, fields: cloneValue(fields) });
  }

  /**
   * Updates fields of an object: set writes fields (attrs key by key), unset removes them.
   * @param {string} id
   * @param {{set?: Record<string, any>, unset?: string[]}} change
   */
  update(id, { set, unset } = {}) {
    const op = { op: 'update', id, base: this.baseOf(id) };
    if (set && Object.keys(set).length > 0) op.set = cloneValue(set);
    if (unset && unset.length > 0) op.unset = [...unset];
    return this.edit(op);
  }

  /** Deletes an object. */
  delete(id) {
    return this.edit({ op: 'delete', id, base: this.baseOf(id) });
  }

  /** Brings a deleted object back, with the fields it kept plus fields. */
  restore(id, fields) {
    const op = { op: 'restore', id, base: this.baseOf(id) };
    if (fields) op.fields = cloneValue(fields);
    return this.edit(op);
  }

  /** Changes the room's settings: any of policy, schema and claims. */
  setSettings(set) {
    return this.edit({ op: 'settings', base: this.baseOf(ROOM_ID), set: cloneValue(set) });
  }

  /**
   * Sends the ops that fn makes through this room's edit methods as one batch.
   * @param {() => void} fn
   * @param {{atomic?: boolean}} [options] atomic: every op applies or none does.
   */
  batch(fn, { atomic = false } = {}) {
    this.flush();
    this.openOps = { ops: [], waiters: [], atomic, explicit: true };
    try {
      fn();
    } finally {
      const open = this.openOps;
      this.openOps = null;
      this.submitOpen(open);
    }
  }

  /** Returns the version vector this replica has confirmed for id, the base of its next op. */
  baseOf(id) {
    return { ...(this.records.get(id)?.vv ?? {}) };
  }

  /**
   * Returns op with the freshest base of this replica, for sending again after a conflict: the
   * confirmed vector merged with vv (a conflict result's vv).
   */
  rebase(op, vv) {
    const copy = cloneValue(op);
    if (copy.op !== 'create') copy.base = mergeVv(this.baseOf(opId(op)), vv);
    return copy;
  }

  /** Sends op again on the fresh base; for update ops, only fields (all of them by default). */
  retry(op, { vv, fields } = {}) {
    const fresh = this.rebase(op, vv);
    if (fields && fresh.op === 'update') {
      const keep = new Set(fields);
      if (fresh.set) {
        const set = {};
        for (const [name, value] of Object.entries(fresh.set)) {
          if (name === 'attrs' && isPlainObject(value)) {
            const attrs = Object.fromEntries(Object.entries(value).filter(([key]) => keep.has(`attrs.${key}`)));
            if (Object.keys(attrs).length > 0) set.attrs = attrs;
          } else if (keep.has(name)) {
            set[name] = value;
          }
        }
        fresh.set = set;
      }
      if (fresh.unset) fresh.unset = fresh.unset.filter((name) => keep.has(name));
      if (Object.keys(fresh.set ?? {}).length === 0) delete fresh.set;
      if ((fresh.unset ?? []).length === 0) delete fresh.unset;
    }
    return this.edit(fresh);
  }

  /** Adds op to the open batch, which is sent at the end of the current task. */
  edit(op) {
    const explicit = this.openOps?.explicit;
    if (!this.openOps) {
      this.openOps = { ops: [], waiters: [], atomic: false, explicit: false };
      queueMicrotask(() => this.flush());
    }
    const open = this.openOps;
    const promise = new Promise((resolve) => {
      open.waiters.push(resolve);
    });
    open.ops.push(op);
    const previous = this.view.get(opId(op)) ?? null;
    if (applyLocalOp(this.view, op)) this.emitChange(opId(op), previous);
    this.emitPending();
    if (!explicit && open.ops.length >= 1000) this.flush();
    return promise;
  }

  /** Queues batches restored from storage, after the room's own, and shows them in the view. */
  adopt(batches) {
    this.batches.push(...batches);
    this.refresh(new Set(batches.flatMap((b) => b.ops.map(opId))));
    this.emitPending();
  }

  /** Sends the open batch now. */
  flush() {
    if (!this.openOps || this.openOps.explicit) return;
    const open = this.openOps;
    this.openOps = null;
    this.submitOpen(open);
  }

  submitOpen(open) {
    if (open.ops.length === 0) return;
    const batch = this.host.submit(this, open.ops, open.atomic);
    batch.waiters = open.waiters;
    this.batches.push(batch);
    this.host.queued?.(this);
    this.emitPending();
  }

  // Server messages.

  /** Replaces the copy with a snapshot (a join reply or a reset). */
  applySnapshot(message) {
    const before = new Map(this.view);
    this.records = new Map();
    for (const object of message.objects ?? []) this.records.set(object.id, fromWire(object));
    this.seq = message.seq;
    this.takeMembers(message);
    this.dropConfirmed();
    this.rebuildView(before);
    if (message.reset === true) this.emit('reset', { seq: this.seq });
    this.markSynced(false);
  }

  /** Takes a `resumed` reply: the events after since follow it. */
  applyResumed(message) {
    this.takeMembers(message);
    this.markSynced(true);
  }

  markSynced(resumed) {
    this.synced = true;
    this.emit('synced', { seq: this.seq, resumed });
    this.resolveReady(this);
  }

  /** Replaces presence entries and claims with those of a join reply. */
  takeMembers(message) {
    if (message.client !== undefined) this.client = message.client;
    if (Array.isArray(message.presence)) {
      const old = this.presence;
      this.presence = new Map();
      for (const entry of message.presence) this.presence.set(entry.client, entry);
      for (const client of old.keys()) if (!this.presence.has(client)) this.emit('presence', { client, entry: null });
      for (const [client, entry] of this.presence) this.emit('presence', { client, entry });
    }
    if (Array.isArray(message.claims)) {
      const old = this.claims;
      this.claims = new Map();
      for (const claim of message.claims) this.claims.set(targetKey(claim.target), claim);
      for (const [key, claim] of old) {
        if (!this.claims.has(key)) this.emit('claims', { type: 'released', claim, reason: 'resync' });
      }
      for (const [key, claim] of this.claims) if (!old.has(key)) this.emit('claims', { type: 'claimed', claim });
    }
  }

  /**
   * Applies an event. Returns 'old' for an event the copy already holds, 'gap' when events
   * are missing before it (the caller resynchronises), else 'applied'.
   */
  applyEvent(event) {
    if (this.seq === null || event.seq <= this.seq) return 'old';
    if (event.seq !== this.seq + 1) return 'gap';
    const ids = new Set();
    for (const op of event.ops ?? []) {
      applyEventOp(this.records, op, event.actor);
      ids.add(opId(op));
      this.noticeOverwritten(op, event.actor);
    }
    this.seq = event.seq;
    for (const batch of this.dropConfirmed()) for (const op of batch.ops) ids.add(opId(op));
    this.refresh(ids);
    return 'applied';
  }

  noticeOverwritten(op, actor) {
    for (const entry of op.overwritten ?? []) {
      if (entry.dot?.[0] === this.host.actor && actor !== this.host.actor) {
        this.emit('overwritten', { id: opId(op), field: entry.field, value: entry.value, dot: entry.dot, by: actor });
      }
    }
  }

  /** Takes the ack of batch: resolves its ops' promises and reports conflicts and rejections. */
  applyAck(batch, ack) {
    const results = Array.isArray(ack.results) ? ack.results : [];
    batch.results = batch.ops.map((op, i) => results[i] ?? { id: opId(op), status: 'rejected', reason: 'missing', message: 'the ack has no result for this op' });
    batch.ackSeq = Number.isSafeInteger(ack.seq) ? ack.seq : null;
    const ids = new Set(batch.ops.map(opId));
    if (batch.ackSeq === null || (this.seq !== null && batch.ackSeq <= this.seq)) this.removeBatch(batch);
    this.refresh(ids);
    batch.ops.forEach((op, i) => this.report(op, batch.results[i]));
    batch.waiters.forEach((resolve, i) => resolve(batch.results[i]));
    this.emitPending();
  }

  /** Ends batch without an ack, for an error the server will not change its mind about. */
  failBatch(batch, code, message) {
    const results = batch.ops.map((op) => ({ id: opId(op), status: 'rejected', reason: code, message }));
    this.applyAck(batch, { results });
  }

  report(op, result) {
    const id = opId(op);
    if (result.status === 'merged' || result.status === 'conflict') {
      const conflicts = result.conflicts ?? [];
      const fields = conflicts.map((c) => c.field);
      this.emit('conflict', {
        id, op, result, conflicts, object: this.get(id) ?? null,
        retry: () => this.retry(op, { vv: result.vv, fields: op.op === 'update' && fields.length > 0 ? fields : undefined }),
      });
    } else if (result.status === 'rejected') {
      this.emit('rejected', { id, op, result });
    }
  }

  /** Applies a `presence` message. */
  applyPresence(message) {
    if (message.state === null) this.presence.delete(message.client);
    else this.presence.set(message.client, { client: message.client, sub: message.sub, name: message.name, state: message.state });
    this.emit('presence', { client: message.client, entry: this.presence.get(message.client) ?? null });
  }

  /** Applies a `claimed` or `released` message. */
  applyClaim(message) {
    const claim = message.claim;
    if (!claim?.target) return;
    const key = targetKey(claim.target);
    if (message.type === 'claimed') this.claims.set(key, claim);
    else this.claims.delete(key);
    this.emit('claims', { type: message.type, claim, reason: message.reason });
  }

  /** Called when the connection is lost: every sent, unacknowledged batch must be sent again. */
  connectionLost() {
    this.synced = false;
    for (const batch of this.batches) if (!batch.results) batch.sent = false;
  }

  // View upkeep.

  removeBatch(batch) {
    const i = this.batches.indexOf(batch);
    if (i >= 0) this.batches.splice(i, 1);
  }

  /** Removes acknowledged batches whose event the copy holds; returns them. */
  dropConfirmed() {
    const done = this.batches.filter((b) => b.results && (b.ackSeq === null || (this.seq !== null && b.ackSeq <= this.seq)));
    for (const batch of done) this.removeBatch(batch);
    return done;
  }

  /** Recomputes the view of ids from the confirmed records and the batches' overlays. */
  refresh(ids) {
    for (const id of ids) {
      const previous = this.view.get(id) ?? null;
      const scratch = new Map();
      const confirmed = this.records.get(id);
      if (confirmed) scratch.set(id, confirmed);
      for (const batch of this.batches) {
        for (const op of batch.overlay()) if (opId(op) === id) applyLocalOp(scratch, op);
      }
      for (const op of this.openOps?.ops ?? []) if (opId(op) === id) applyLocalOp(scratch, op);
      const next = scratch.get(id);
      if (next) this.view.set(id, next);
      else this.view.delete(id);
      if (!sameLive(next, previous)) this.emitChange(id, previous);
    }
  }

  rebuildView(before) {
    this.view = new Map();
    const ids = new Set([...before.keys(), ...this.records.keys()]);
    for (const batch of this.batches) for (const op of batch.ops) ids.add(opId(op));
    for (const id of ids) {
      this.view.set(id, before.get(id));
      if (!before.has(id)) this.view.delete(id);
    }
    this.refresh(ids);
  }

  emitChange(id, previous) {
    this.emit('change', { id, object: liveObject(this.view.get(id)), previous: liveObject(previous) });
  }

  emitPending() {
    const n = this.pendingOps;
    if (n !== this.lastPending) {
      this.lastPending = n;
      this.emit('pending', n);
      this.host.pendingChanged?.();
    }
  }
}
