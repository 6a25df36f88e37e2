/**
 * Image reader: source -> records (framing, limits, checksums: ./reader/framing.ts) -> grammar (the schema's
 * children, walked in ./reader/grammar.ts) -> model (./reader/image.ts: the Image, with random access to pages).
 * Everything read is checked before it is used: magic, version and architecture; each record's length against its
 * kind and against what remains of the file; each payload's checksum; nesting, order and counts; the semantic
 * checks of each kind of state; the index and the whole-image checksum in the trailer. Page contents stay in the
 * file and are read (and their record checksum verified again) on demand.
 */
export { READ_WINDOW, type PageRec, type Rec, RecordStream } from './reader/framing.js';
export type { ImageStats, ReadMode, TaskStats, VmaStats } from './reader/grammar.js';
export {
  Image,
  type ReadOptions,
  type VerifyResult,
  openImage,
  readImage,
  verifyBulk,
  verifyImage,
  verifyImageAsync,
} from './reader/image.js';
