/**
 * Entry point of annolive-client: the connection client, the session with its room replicas,
 * the converters and the lossless JSON codec.
 */
export { AnnoliveClient, AnnoliveError, MSGPACK_SUBPROTOCOL, SUBPROTOCOL, SUBPROTOCOLS, resolveUrl } from './client.js';
export {
  AnnoliveSession, DEFAULT_PRESENCE_INTERVAL_MS, DEFAULT_REFRESH_MARGIN_MS, localStorageStorage, memoryStorage, tokenExpiry,
} from './session.js';
export { Batch, Room, mergeVv, newId, targetKey } from './replica.js';
export { Backoff, backoffCap, backoffDelay, DEFAULT_MAX_DELAY_MS, DEFAULT_MIN_DELAY_MS } from './backoff.js';
export { Emitter } from './emitter.js';
export { ROOM_ID, TOMBSTONE_FIELDS, applyEventOp, applyLocalOp, appliedPart, fromWire, toWire } from './objects.js';
export { cocoToOps, objectsToCoco, isCoco, DEFAULT_COCO_PREFIX } from './coco.js';
export { labelmeToOps, isLabelme, DEFAULT_LABELME_PREFIX } from './labelme.js';
export { JsonFloat, losslessJson, parse as parseJson, stringify as stringifyJson } from './json.js';
