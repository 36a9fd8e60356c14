/**
 * Object state as PROTOCOL.md defines it, for a client's copy of a room: how the ops of an
 * `event` change objects (fields, per-field dots, version vectors, tombstones), and how a
 * client's own op changes its optimistic view before the server acknowledges it.
 *
 * A record is `{id, kind, fields, dots, vv, deleted}`, the stored form of the protocol. Dots are
 * known only for writes the client saw as events: snapshots carry no dots, so the records they
 * make start with none. Nothing here decides conflicts; the server does that.
 */

/** The fields a tombstone keeps. */
export const TOMBSTONE_FIELDS = Object.freeze(['item', 'frame']);

/** The reserved id of the room's settings object. */
export const ROOM_ID = '@room';

/** Returns true for a plain object: not null, not an array, not a boxed number. */
export function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Number);
}

/**
 * Returns a deep copy of a JSON value. Arrays and plain objects are copied. Other values
 * (primitives, the JsonFloat and BigInt values of the lossless codec) are shared, because
 * nothing here changes them in place.
 */
export function cloneValue(value) {
  if (Array.isArray(value)) return value.map(cloneValue);
  if (isPlainObject(value)) {
    const copy = {};
    for (const key of Object.keys(value)) {
      Object.defineProperty(copy, key, { value: cloneValue(value[key]), enumerable: true, writable: true, configurable: true });
    }
    return copy;
  }
  return value;
}

/** Returns true when two JSON values are equal: same members, same array order. */
export function sameValue(a, b) {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((v, i) => sameValue(v, b[i]));
  if (isPlainObject(a)) {
    if (!isPlainObject(b)) return false;
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && sameValue(a[k], b[k]));
  }
  // Boxed numbers (JsonFloat) compare by value and by being boxed.
  if (a instanceof Number || b instanceof Number) {
    return a instanceof Number && b instanceof Number && a.valueOf() === b.valueOf();
  }
  return false;
}

/** Returns a record made from a wire object of a snapshot: no dots, not deleted. */
export function fromWire(object) {
  return {
    id: object.id,
    kind: object.kind,
    fields: cloneValue(object.fields ?? {}),
    dots: {},
    vv: { ...(object.vv ?? {}) },
    deleted: false,
  };
}

/** Returns the wire form `{id, kind, vv, fields}` of a record, sharing nothing with it. */
export function toWire(record) {
  return { id: record.id, kind: record.kind, vv: { ...record.vv }, fields: cloneValue(record.fields) };
}

/**
 * Writes `set` into fields: `attrs` merges key by key, every other member replaces the field.
 * dots, when given, gets dot for each written field (`attrs.KEY` for attrs keys).
 */
export function setFields(fields, set, dots, dot) {
  for (const name of Object.keys(set ?? {})) {
    const value = set[name];
    if (name === 'attrs' && isPlainObject(value)) {
      const keys = Object.keys(value);
      if (keys.length === 0) continue;
      if (!isPlainObject(fields.attrs)) fields.attrs = {};
      for (const key of keys) {
        fields.attrs[key] = cloneValue(value[key]);
        if (dots) dots[`attrs.${key}`] = dot;
      }
    } else {
      fields[name] = cloneValue(value);
      if (dots) dots[name] = dot;
    }
  }
}

/**
 * Removes fields by name: `attrs.KEY` removes one attrs key, `attrs` every key that has a value
 * or a dot. A removed field keeps a dot, set to dot, so a later concurrent write is still seen.
 * A field that had neither a value nor a dot gets none. An attrs left with no keys is removed.
 */
export function unsetFields(fields, names, dots, dot) {
  for (const name of names ?? []) {
    if (name === 'attrs') {
      const keys = new Set(isPlainObject(fields.attrs) ? Object.keys(fields.attrs) : []);
      for (const dotName of Object.keys(dots ?? {})) {
        if (dotName.startsWith('attrs.')) keys.add(dotName.slice('attrs.'.length));
      }
      for (const key of keys) if (dots) dots[`attrs.${key}`] = dot;
      delete fields.attrs;
    } else if (name.startsWith('attrs.')) {
      const key = name.slice('attrs.'.length);
      const had = isPlainObject(fields.attrs) && Object.hasOwn(fields.attrs, key);
      if (had) delete fields.attrs[key];
      // A field that never had a value or a dot gets none.
      if (dots && (had || Object.hasOwn(dots, name))) dots[name] = dot;
    } else {
      const had = Object.hasOwn(fields, name);
      delete fields[name];
      if (dots && (had || Object.hasOwn(dots, name))) dots[name] = dot;
    }
  }
  if (isPlainObject(fields.attrs) && Object.keys(fields.attrs).length === 0) delete fields.attrs;
}

/** Returns a copy of record that shares no object or array with it. */
export function copyRecord(record) {
  return { ...record, fields: cloneValue(record.fields), dots: { ...record.dots }, vv: { ...record.vv } };
}

/** Returns a record for the fields of a create or restore, every field at dot. */
function freshRecord(id, kind, fields, vv, dot) {
  const record = { id, kind, fields: {}, dots: {}, vv: { ...(vv ?? {}) }, deleted: false };
  setFields(record.fields, fields, record.dots, dot);
  return record;
}

/**
 * Applies one op of an `event` to records (a Map from id to record), as the server applied it.
 * actor is the event's actor: the fields the op wrote get the dot `[actor, op.vv[actor]]`.
 * @returns {string | null} null when applied, else why the op could not be applied to this copy
 *   (for example an update of an id it does not hold).
 */
export function applyEventOp(records, op, actor) {
  const vv = isPlainObject(op.vv) ? op.vv : {};
  const dot = [actor, vv[actor] ?? 0];
  const id = op.op === 'settings' ? ROOM_ID : op.id;
  const current = records.get(id);
  switch (op.op) {
    case 'create':
      records.set(id, freshRecord(id, op.kind, op.fields, vv, dot));
      return current && !current.deleted ? `create of ${id}, which the copy holds live` : null;
    case 'update':
    case 'settings': {
      let record = current;
      if (!record && id === ROOM_ID) {
        record = { id, kind: 'room', fields: {}, dots: {}, vv: {}, deleted: false };
      }
      if (!record || record.deleted) return `${op.op} of ${id}, which the copy does not hold live`;
      // A new record, so that views and listeners that hold the old one keep seeing it.
      record = copyRecord(record);
      records.set(id, record);
      setFields(record.fields, op.set, record.dots, dot);
      unsetFields(record.fields, op.unset, record.dots, dot);
      record.vv = { ...vv };
      return null;
    }
    case 'delete': {
      if (!current || current.deleted) return `delete of ${id}, which the copy does not hold live`;
      const fields = {};
      const dots = {};
      for (const name of TOMBSTONE_FIELDS) {
        if (name in current.fields) fields[name] = current.fields[name];
        if (name in current.dots) dots[name] = current.dots[name];
      }
      records.set(id, { id, kind: current.kind, fields, dots, vv: { ...vv }, deleted: true });
      return null;
    }
    case 'restore': {
      const kind = op.kind ?? current?.kind;
      if (kind === undefined) return `restore of ${id} without a kind, of a tombstone the copy never saw`;
      const fields = { ...(current?.fields ?? {}), ...(op.fields ?? {}) };
      records.set(id, freshRecord(id, kind, fields, vv, dot));
      return null;
    }
    default:
      return `unknown op ${JSON.stringify(op.op)}`;
  }
}

/**
 * Applies a client's own op to its optimistic view (a Map from id to record), before the
 * server acknowledges it: fields change, version vectors and dots do not.
 * @returns {boolean} whether the op changed the view.
 */
export function applyLocalOp(view, op) {
  const id = op.op === 'settings' ? ROOM_ID : op.id;
  const current = view.get(id);
  switch (op.op) {
    case 'create':
      if (current && !current.deleted) return false;
      view.set(id, freshRecord(id, op.kind, op.fields, {}, null));
      return true;
    case 'update':
    case 'settings': {
      let record = current;
      if (!record && id === ROOM_ID) {
        record = { id, kind: 'room', fields: {}, dots: {}, vv: {}, deleted: false };
      }
      if (!record || record.deleted) return false;
      record = copyRecord(record);
      setFields(record.fields, op.set);
      unsetFields(record.fields, op.unset);
      view.set(id, record);
      return true;
    }
    case 'delete':
      if (!current || current.deleted) return false;
      view.set(id, { ...current, deleted: true });
      return true;
    case 'restore': {
      if (!current || !current.deleted) return false;
      const fields = {};
      for (const name of TOMBSTONE_FIELDS) if (name in current.fields) fields[name] = current.fields[name];
      setFields(fields, op.fields);
      view.set(id, { ...current, fields, deleted: false });
      return true;
    }
    default:
      return false;
  }
}

/**
 * Returns the part of an op that its ack result reports as applied: the whole op for `applied`,
 * the op without its conflicting fields for `merged`, and null when nothing applied.
 */
export function appliedPart(op, result) {
  if (!result || result.status === 'applied') return op;
  if (result.status !== 'merged') return null;
  const conflicted = new Set((result.conflicts ?? []).map((c) => c.field));
  const part = { ...op };
  if (op.set) {
    part.set = {};
    for (const [name, value] of Object.entries(op.set)) {
      if (name === 'attrs' && isPlainObject(value)) {
        const kept = Object.fromEntries(Object.entries(value).filter(([key]) => !conflicted.has(`attrs.${key}`)));
        if (Object.keys(kept).length > 0) part.set.attrs = kept;
      } else if (!conflicted.has(name)) {
        part.set[name] = value;
      }
    }
  }
  if (op.unset) {
    // An unset of every attrs key with a conflicting key removed only the other keys. The
    // event of the batch names them, so until it arrives the view keeps every key.
    const attrsConflict = [...conflicted].some((name) => name.startsWith('attrs.'));
    part.unset = op.unset.filter((name) => !conflicted.has(name) && !(name === 'attrs' && attrsConflict));
  }
  return part;
}
