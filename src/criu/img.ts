/**
 * CRIU image files (images v1.1): two magic words (IMG_COMMON, then the image's own
 * magic; inventory.img has only its own), then entries, each a little-endian u32
 * payload size followed by one protobuf message. pages-N.img is raw page data.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CrimgError, ioError } from '../errors.js';
import { decodeMessage, encodeMessage, type Msg } from './pb.js';
import { MAGIC, type MessageName } from './proto.js';

export type MagicName = keyof typeof MAGIC;

/** Bytes of an image file holding `entries` (each a [message type, message] pair). */
export function imageBytes(magic: MagicName, entries: [MessageName, Msg][]): Uint8Array {
  const bodies = entries.map(([name, m]) => encodeMessage(name, m));
  const head = magic === 'INVENTORY' ? 4 : 8;
  const out = new Uint8Array(head + bodies.reduce((s, b) => s + 4 + b.length, 0));
  const dv = new DataView(out.buffer);
  let o = 0;
  if (magic !== 'INVENTORY') {
    dv.setUint32(0, MAGIC.IMG_COMMON, true);
    o = 4;
  }
  dv.setUint32(o, MAGIC[magic], true);
  o += 4;
  for (const b of bodies) {
    dv.setUint32(o, b.length, true);
    out.set(b, o + 4);
    o += 4 + b.length;
  }
  return out;
}

/** Largest protobuf image file read into memory (page data is never read this way). */
const MAX_IMAGE_FILE = 256 << 20;

export interface ImageEntry {
  msg: Msg;
  offset: number;
}

/** The second magic word of a file, or null when it has none of CRIU's (shorter than 4 bytes: null). */
export function readMagic(file: string): number | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const b = new Uint8Array(8);
    const n = fs.readSync(fd, b, 0, 8, 0);
    if (n < 4) return null;
    const dv = new DataView(b.buffer);
    const m0 = dv.getUint32(0, true);
    if ((m0 === MAGIC.IMG_COMMON || m0 === MAGIC.IMG_SERVICE) && n >= 8) return dv.getUint32(4, true);
    return m0;
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Read the entries of an image file: checks the magic, then decodes every entry as
 * `first` (the first entry) or `rest`. Returns null when the file does not exist and
 * `optional` is set.
 */
export function readImage(
  dir: string,
  name: string,
  magic: MagicName,
  first: MessageName,
  rest: MessageName = first,
  optional = false,
): ImageEntry[] | null {
  const file = path.join(dir, name);
  let b: Uint8Array;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new CrimgError('BAD_CRIU', `${name} is not a regular file`);
    if (st.size > MAX_IMAGE_FILE) {
      throw new CrimgError('LIMIT_EXCEEDED', `${name} is ${st.size} bytes: more than the ${MAX_IMAGE_FILE} crimg reads for an image file`);
    }
    b = new Uint8Array(fs.readFileSync(file));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      if (optional) return null;
      throw new CrimgError('BAD_CRIU', `${name} is missing from ${dir}`);
    }
    throw ioError(`reading ${file}`, e);
  }
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length < 4) throw new CrimgError('TRUNCATED', `${name} is ${b.length} bytes long: too short for its magic`, { offset: b.length });
  let o = 0;
  let m = dv.getUint32(0, true);
  if (m === MAGIC.IMG_COMMON || m === MAGIC.IMG_SERVICE) {
    if (b.length < 8) throw new CrimgError('TRUNCATED', `${name} ends inside its magic`, { offset: b.length });
    m = dv.getUint32(4, true);
    o = 8;
  } else o = 4;
  if (m !== MAGIC[magic]) {
    const want = `0x${MAGIC[magic].toString(16)} (${magic})`;
    throw new CrimgError('BAD_CRIU', `${name} has magic 0x${m.toString(16)}, expected ${want}`, { offset: o - 4 });
  }
  const out: ImageEntry[] = [];
  while (o < b.length) {
    if (b.length - o < 4) throw new CrimgError('TRUNCATED', `${name} ends inside the size of entry ${out.length}`, { offset: o });
    const size = dv.getInt32(o, true);
    if (size < 0) throw new CrimgError('BAD_CRIU', `${name}: entry ${out.length} has a negative size ${size}`, { offset: o });
    if (size > b.length - o - 4) {
      const msg = `${name} ends inside entry ${out.length} (${size} bytes announced, ${b.length - o - 4} left)`;
      throw new CrimgError('TRUNCATED', msg, { offset: o });
    }
    const msg = decodeMessage(out.length === 0 ? first : rest, b, { file: name, base: 0 }, o + 4, o + 4 + size);
    out.push({ msg, offset: o });
    o += 4 + size;
  }
  return out;
}

/** The single entry of an image that holds exactly one (inventory, core, mm, ids, fs, creds). */
export function readOne(dir: string, name: string, magic: MagicName, msg: MessageName, optional = false): ImageEntry | null {
  const e = readImage(dir, name, magic, msg, msg, optional);
  if (e === null) return null;
  if (e.length !== 1) {
    const offset = e[1]?.offset ?? (magic === 'INVENTORY' ? 4 : 8);
    throw new CrimgError('BAD_CRIU', `${name} holds ${e.length} entries, expected 1`, { offset });
  }
  return e[0]!;
}
