/** Entry point of annolive-client: the client, the converters and the lossless JSON codec. */
export { AnnoliveClient, AnnoliveError, MSGPACK_SUBPROTOCOL, SUBPROTOCOL, SUBPROTOCOLS, resolveUrl } from './client.js';
export { cocoToOps, objectsToCoco, isCoco, DEFAULT_COCO_PREFIX } from './coco.js';
export { labelmeToOps, isLabelme, DEFAULT_LABELME_PREFIX } from './labelme.js';
export { JsonFloat, losslessJson, parse as parseJson, stringify as stringifyJson } from './json.js';
