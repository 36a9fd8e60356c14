// Client-side copy of a room and a reference model of the edit semantics of
// PROTOCOL.md, for the merge and convergence tests.
//
// Replica builds a room from a join snapshot plus the events that follow it,
// as a client does. Model replays the batches that clients sent, in seq order,
// and keeps the part of each op that its ack reports as applied. Model also
// keeps per-field dots, so it can predict which fields an op finds
// concurrently modified.

/** Returns a deep copy of a JSON value. */
export function cloneJson(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

export function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** JSON text with object keys sorted at every level, for order-independent comparison. */
export function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (isPlainObject(value)) {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Returns a wire object in a comparable form: {id, kind, vv, fields}. The
 * contract does not say whether an attrs field with no keys left is sent as {}
 * or left out, so an empty attrs is left out here.
 */
export function normaliseObject(object) {
  const fields = cloneJson(object.fields ?? {});
  if (isPlainObject(fields.attrs) && Object.keys(fields.attrs).length === 0) delete fields.attrs;
  return { id: object.id, kind: object.kind, vv: cloneJson(object.vv ?? {}), fields };
}

/** Returns a list of wire objects normalised and sorted by id. */
export function normaliseObjects(objects) {
  const byId = (a, b) => {
    if (a.id === b.id) return 0;
    return a.id < b.id ? -1 : 1;
  };
  return objects.map(normaliseObject).sort(byId);
}

/**
 * Returns a short description of how two lists of objects differ, or null
 * when they are equal after normalisation.
 */
export function diffObjects(actualObjects, expectedObjects, actualName = 'actual', expectedName = 'expected') {
  const actual = new Map(normaliseObjects(actualObjects).map((o) => [o.id, o]));
  const expected = new Map(normaliseObjects(expectedObjects).map((o) => [o.id, o]));
  const lines = [];
  for (const [id, object] of expected) {
    if (!actual.has(id)) lines.push(`${id}: in ${expectedName} ${canonical(object)}, missing from ${actualName}`);
    else if (canonical(actual.get(id)) !== canonical(object)) {
      lines.push(`${id}: ${actualName} ${canonical(actual.get(id))} != ${expectedName} ${canonical(object)}`);
    }
  }
  for (const [id, object] of actual) {
    if (!expected.has(id)) lines.push(`${id}: in ${actualName} ${canonical(object)}, missing from ${expectedName}`);
  }
  if (lines.length === 0) return null;
  const shown = lines.slice(0, 10);
  if (lines.length > shown.length) shown.push(`... and ${lines.length - shown.length} more differences`);
  return shown.join('\n');
}

/** Writes `set` into fields; the value of `attrs` is merged key by key when both are objects. */
export function setFields(fields, set) {
  for (const [name, value] of Object.entries(set ?? {})) {
    if (name === 'attrs' && isPlainObject(value)) {
      const current = isPlainObject(fields.attrs) ? fields.attrs : {};
      fields.attrs = { ...current, ...cloneJson(value) };
    } else {
      fields[name] = cloneJson(value);
    }
  }
}

/** Removes field names from fields; `attrs.KEY` removes one attrs key, `attrs` every key. */
export function unsetFields(fields, names) {
  for (const name of names ?? []) {
    if (name.startsWith('attrs.')) {
      if (isPlainObject(fields.attrs)) delete fields.attrs[name.slice('attrs.'.length)];
    } else {
      delete fields[name];
    }
  }
}

/** The fields a tombstone keeps. */
export const TOMBSTONE_FIELDS = ['item', 'frame'];

function keptFields(fields) {
  const kept = {};
  for (const name of TOMBSTONE_FIELDS) if (name in fields) kept[name] = cloneJson(fields[name]);
  return kept;
}

/**
 * A client's copy of one room, built from a join snapshot and the events
 * after it. Problems (gaps, duplicates, ops it cannot apply) are collected in
 * `problems` rather than thrown, so a test can report all of them.
 */
export class Replica {
  constructor(name) {
    this.name = name;
    this.seq = null;
    this.objects = new Map();
    this.tombstones = new Map();
    this.problems = [];
    this.eventsApplied = 0;
  }

  /** Replaces the copy with a snapshot. Tombstones are not in snapshots, so they are forgotten. */
  reset(snapshot) {
    this.seq = snapshot.seq;
    this.objects = new Map();
    this.tombstones = new Map();
    for (const object of snapshot.objects ?? []) this.objects.set(object.id, normaliseObject(object));
  }

  problem(text) {
    if (this.problems.length < 50) this.problems.push(`${this.name}: ${text}`);
  }

  /** Applies one event message; events must follow the snapshot's seq with no gap or repeat. */
  applyEvent(event) {
    if (this.seq === null) {
      this.problem(`event seq ${event.seq} arrived before any snapshot`);
      return;
    }
    if (event.seq !== this.seq + 1) {
      this.problem(`event seq ${event.seq} (actor ${event.actor}, opseq ${event.opseq}) after seq ${this.seq}: expected ${this.seq + 1}`);
      if (event.seq <= this.seq) return;
    }
    this.seq = event.seq;
    this.eventsApplied += 1;
    for (const op of event.ops ?? []) this.applyOp(op, event);
  }

  applyOp(op, event) {
    const where = `event seq ${event.seq} op ${op.op} ${op.id ?? ''}`;
    const vv = cloneJson(op.vv);
    if (!isPlainObject(vv)) this.problem(`${where} has no vv object: ${canonical(op)}`);
    switch (op.op) {
      case 'create':
        if (this.objects.has(op.id)) this.problem(`${where} creates an id that is live in the copy`);
        this.tombstones.delete(op.id);
        this.objects.set(op.id, { id: op.id, kind: op.kind, vv: vv ?? {}, fields: cloneJson(op.fields ?? {}) });
        break;
      case 'update':
      case 'settings': {
        const id = op.id ?? '@room';
        let object = this.objects.get(id);
        if (!object && id === '@room') {
          object = { id, kind: 'room', vv: {}, fields: {} };
          this.objects.set(id, object);
        }
        if (!object) {
          this.problem(`${where} names an id that the copy does not hold`);
          return;
        }
        setFields(object.fields, op.set);
        unsetFields(object.fields, op.unset);
        object.vv = vv ?? object.vv;
        break;
      }
      case 'delete': {
        const object = this.objects.get(op.id);
        if (!object) {
          this.problem(`${where} names an id that the copy does not hold`);
          return;
        }
        this.objects.delete(op.id);
        this.tombstones.set(op.id, { id: op.id, kind: object.kind, vv: vv ?? object.vv, fields: keptFields(object.fields) });
        break;
      }
      case 'restore': {
        const tombstone = this.tombstones.get(op.id);
        const kind = op.kind ?? tombstone?.kind;
        if (kind === undefined) {
          this.problem(`${where}: the event has no kind and the copy never saw the tombstone ` +
            '(it joined after the delete), so it cannot build the object');
          return;
        }
        const fields = tombstone ? cloneJson(tombstone.fields) : {};
        setFields(fields, op.fields);
        this.tombstones.delete(op.id);
        this.objects.set(op.id, { id: op.id, kind, vv: vv ?? {}, fields });
        break;
      }
      default:
        this.problem(`${where}: unknown op`);
    }
  }

  /** Returns the live objects, as a snapshot lists them. */
  list() {
    return [...this.objects.values()].map(cloneJson);
  }
}

/** Returns true when vector base covers the write [actor, n]. */
export function coversDot(base, dot) {
  return (base?.[dot[0]] ?? 0) >= dot[1];
}

/** Returns true when base covers every entry of vv. */
export function coversVector(base, vv) {
  return Object.entries(vv ?? {}).every(([actor, n]) => (base?.[actor] ?? 0) >= n);
}

/** A dot that the contract does not pin down (the dot of a field removed by a delete). */
const UNCERTAIN = 'uncertain';

/** Returns the field names an update writes: set keys (attrs as attrs.KEY), then unset names. */
export function writtenNames(op) {
  const names = [];
  for (const [name, value] of Object.entries(op.set ?? {})) {
    if (name === 'attrs' && isPlainObject(value)) {
      for (const key of Object.keys(value)) names.push(`attrs.${key}`);
    } else {
      names.push(name);
    }
  }
  for (const name of op.unset ?? []) names.push(name);
  return names;
}

/** Returns op with the field names in `drop` taken out of its set and unset. */
function withoutNames(op, drop) {
  const set = {};
  for (const [name, value] of Object.entries(op.set ?? {})) {
    if (name === 'attrs' && isPlainObject(value)) {
      if (drop.has('attrs')) continue;
      const attrs = {};
      for (const [key, v] of Object.entries(value)) if (!drop.has(`attrs.${key}`)) attrs[key] = v;
      if (Object.keys(attrs).length > 0) set.attrs = attrs;
    } else if (!drop.has(name)) {
      set[name] = value;
    }
  }
  const unset = (op.unset ?? []).filter((name) => !drop.has(name));
  return { ...op, set, unset };
}

/** Returns a deep copy of a model object, dots included. */
function cloneModelObject(object) {
  if (!object) return undefined;
  return { ...cloneJson({ id: object.id, kind: object.kind, vv: object.vv, fields: object.fields, deleted: object.deleted }),
    dots: new Map(object.dots) };
}

/** Returns the value of a field name (attrs.KEY included) in a model object, or undefined. */
function fieldValue(object, name) {
  const fields = object?.fields ?? {};
  if (name.startsWith('attrs.')) return fields.attrs?.[name.slice('attrs.'.length)];
  return fields[name];
}

/**
 * Predicts the result of op by actor on object (a model object, or undefined
 * when the id is unknown) under policy. Returns {status, reason, names,
 * certain}: names are the concurrently modified fields (conflicts under
 * reject, overwritten under lww), and certain is false when the result
 * depends on something the contract leaves open.
 */
export function predictOp(op, object, policy, meta = {}, actor = undefined) {
  if (meta.invalid) return { certain: false };
  const geometry = op.set?.geometry ?? op.fields?.geometry;
  if (geometry !== undefined && meta.kind !== undefined && object && object.kind !== meta.kind) {
    return { certain: false };
  }
  switch (op.op) {
    case 'create':
      if (object) return { status: 'conflict', reason: 'exists', certain: true };
      return { status: 'applied', certain: true, names: [] };
    case 'update':
    case 'settings': {
      if (!object && op.op === 'update') return { status: 'rejected', reason: 'not_found', certain: true };
      if (object?.deleted) return { status: 'conflict', reason: 'deleted', certain: true };
      const names = writtenNames(op);
      // An op has seen every earlier write of its own actor, whatever its
      // base says, so only other actors' dots can be concurrent.
      const concurrent = [];
      let certain = true;
      for (const name of names) {
        const dot = object?.dots.get(name);
        if (dot === UNCERTAIN || (name === 'attrs' && object?.fields.attrs !== undefined)) {
          certain = false;
        } else if (dot && dot[0] !== actor && !coversDot(op.base, dot)) {
          concurrent.push(name);
        }
      }
      if (policy === 'lww') return { status: 'applied', names: concurrent, certain };
      if (concurrent.length === 0) return { status: 'applied', names: [], certain };
      if (concurrent.length === names.length) return { status: 'conflict', reason: 'concurrent', names: concurrent, certain };
      return { status: 'merged', reason: 'concurrent', names: concurrent, certain };
    }
    case 'delete':
    case 'restore': {
      if (!object) return { status: 'rejected', reason: 'not_found', certain: true };
      if (op.op === 'delete' && object.deleted) return { status: 'conflict', reason: 'deleted', certain: true };
      if (op.op === 'restore' && !object.deleted) return { status: 'conflict', reason: 'exists', certain: true };
      const seen = actor === undefined ? op.base : { ...op.base, [actor]: object.vv[actor] };
      if (coversVector(seen, object.vv)) return { status: 'applied', names: [], certain: true };
      if (policy === 'lww') return { status: 'applied', certain: true };
      return { status: 'conflict', reason: 'concurrent', certain: true };
    }
    default:
      return { certain: false };
  }
}

/**
 * Compares an op's result with what predictOp() gives on object under policy.
 * Returns the differences as text; an empty list when they agree or the
 * prediction is not certain.
 */
export function resultDifferences(op, result, object, policy, meta = {}, actor = undefined) {
  const predicted = predictOp(op, object, policy, meta, actor);
  if (!predicted.certain) return [];
  const differences = [];
  if (predicted.status !== result.status || (predicted.reason && predicted.reason !== result.reason)) {
    const on = predicted.names?.length ? ` on ${predicted.names.join(', ')}` : '';
    differences.push(`expected ${predicted.status}${predicted.reason ? ` (${predicted.reason})` : ''}${on}`);
    return differences;
  }
  const expectedNames = canonical([...(predicted.names ?? [])].sort());
  if (predicted.names && (result.status === 'merged' || result.reason === 'concurrent')) {
    const got = canonical((result.conflicts ?? []).map((c) => c.field).sort());
    if (got !== expectedNames) differences.push(`conflicts name ${got}, expected ${expectedNames}`);
  } else if (predicted.names && result.status === 'applied' && policy === 'lww') {
    const got = canonical((result.overwritten ?? []).map((o) => o.field).sort());
    if (got !== expectedNames) differences.push(`overwritten names ${got}, expected ${expectedNames}`);
  }
  for (const entry of [...(result.conflicts ?? []), ...(result.overwritten ?? [])]) {
    const value = fieldValue(object, entry.field);
    if (canonical(entry.value) !== canonical(value)) {
      differences.push(`${entry.field} has value ${canonical(entry.value)}, expected ${canonical(value)}`);
    }
    const dot = object?.dots.get(entry.field);
    if (Array.isArray(dot) && canonical(dot) !== canonical(entry.dot)) {
      differences.push(`${entry.field} has dot ${canonical(entry.dot)}, expected ${canonical(dot)}`);
    }
  }
  if (result.status === 'conflict' && object && canonical(result.vv) !== canonical(object.vv)) {
    differences.push(`vv ${canonical(result.vv)}, expected ${canonical(object.vv)}`);
  }
  return differences;
}

/**
 * Reference model of a room: objects with dots and tombstones, the policy,
 * and the history of both by seq. For each batch in seq order the caller
 * runs beginBatch(), then for each op compares the ack's result with
 * resultDifferences() and runs applyResult(), then runs commit(seq).
 */
export class Model {
  constructor() {
    /** id -> {id, kind, vv, fields, dots: Map(name -> dot | 'uncertain'), deleted} */
    this.objects = new Map();
    this.policy = 'reject';
    this.nextPolicy = 'reject';
    /** id -> [{seq, object}], the object after each batch that wrote it. */
    this.history = new Map();
    /** [{seq, policy}]: the policy for batches after seq. */
    this.policyHistory = [{ seq: 0, policy: 'reject' }];
    this.touched = new Set();
  }

  /**
   * Starts the next batch: a policy set by the previous batch takes effect
   * now, since settings apply to the batches computed after theirs.
   */
  beginBatch() {
    this.policy = this.nextPolicy;
    this.touched = new Set();
  }

  /** Records the objects the batch at seq wrote, and the policy after it. */
  commit(seq) {
    for (const id of this.touched) {
      if (!this.history.has(id)) this.history.set(id, []);
      this.history.get(id).push({ seq, object: cloneModelObject(this.objects.get(id)) });
    }
    if (this.nextPolicy !== this.policyHistory.at(-1).policy) this.policyHistory.push({ seq, policy: this.nextPolicy });
  }

  /** Returns the states of id after each seq from low to high, distinct, oldest first. */
  statesBetween(id, low, high) {
    const states = [];
    let before;
    for (const entry of this.history.get(id) ?? []) {
      if (entry.seq <= low) before = entry.object;
      else if (entry.seq <= high) states.push(entry.object);
    }
    return [before, ...states];
  }

  /** Returns the policies in effect for batches computed after any seq from low to high. */
  policiesBetween(low, high) {
    const policies = new Set();
    let before = 'reject';
    for (const entry of this.policyHistory) {
      if (entry.seq <= low) before = entry.policy;
      else if (entry.seq <= high) policies.add(entry.policy);
    }
    policies.add(before);
    return [...policies];
  }

  /** Returns the live objects, as a snapshot lists them. */
  list() {
    const out = [];
    for (const o of this.objects.values()) {
      if (!o.deleted) out.push({ id: o.id, kind: o.kind, vv: cloneJson(o.vv), fields: cloneJson(o.fields) });
    }
    return out;
  }

  get(id) {
    return this.objects.get(id);
  }

  /** Applies the part of op that result reports as applied or merged. */
  applyResult(op, actor, result) {
    const id = op.op === 'settings' ? '@room' : op.id;
    let object = this.objects.get(id);
    const status = result?.status;
    if (status !== 'applied' && status !== 'merged') return;
    this.touched.add(id);
    let effective = op;
    if (status === 'merged') {
      effective = withoutNames(op, new Set((result.conflicts ?? []).map((c) => c.field)));
    }
    switch (op.op) {
      case 'create': {
        object = { id, kind: op.kind, vv: { [actor]: 1 }, fields: cloneJson(op.fields ?? {}), dots: new Map(), deleted: false };
        for (const name of writtenNames({ set: object.fields })) object.dots.set(name, [actor, 1]);
        this.objects.set(id, object);
        break;
      }
      case 'update':
      case 'settings': {
        if (!object) {
          object = { id, kind: 'room', vv: {}, fields: {}, dots: new Map(), deleted: false };
          this.objects.set(id, object);
        }
        object.vv[actor] = (object.vv[actor] ?? 0) + 1;
        const dot = [actor, object.vv[actor]];
        for (const name of writtenNames({ set: effective.set })) object.dots.set(name, dot);
        // NOTE: the contract does not say whether removing a field that is
        // already absent writes a dot, so such a dot is left uncertain.
        for (const name of effective.unset ?? []) {
          if (name === 'attrs') {
            for (const key of Object.keys(object.fields.attrs ?? {})) object.dots.set(`attrs.${key}`, dot);
            object.dots.set(name, UNCERTAIN);
          } else {
            object.dots.set(name, fieldValue(object, name) === undefined ? UNCERTAIN : dot);
          }
        }
        setFields(object.fields, effective.set);
        unsetFields(object.fields, effective.unset);
        if (id === '@room' && typeof object.fields.policy === 'string') this.nextPolicy = object.fields.policy;
        break;
      }
      case 'delete': {
        // The contract does not give the dots of a tombstone's fields, so every dot becomes uncertain.
        object.vv[actor] = (object.vv[actor] ?? 0) + 1;
        object.deleted = true;
        object.fields = keptFields(object.fields);
        for (const name of object.dots.keys()) object.dots.set(name, UNCERTAIN);
        break;
      }
      case 'restore': {
        object.vv[actor] = (object.vv[actor] ?? 0) + 1;
        object.deleted = false;
        const dot = [actor, object.vv[actor]];
        setFields(object.fields, op.fields);
        for (const name of writtenNames({ set: op.fields ?? {} })) object.dots.set(name, dot);
        break;
      }
      default:
        break;
    }
  }
}
