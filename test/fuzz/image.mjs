/**
 * Image surgery for the fuzzer, written independently of src/ (its own record
 * walker and its own XXH3-64, @node-rs/xxhash): split an image into records,
 * edit them, and put it back together with the checksums left stale or
 * recomputed at three depths (the record, the INDEX, the TRAILER with its
 * whole-image checksum) so that mutants reach the structural checks behind
 * each checksum.
 */
import { xxh3 } from '@node-rs/xxhash';

export const HDR = 16;
export const K = {
  HEADER: 0x0001,
  NS: 0x0002,
  TASK: 0x0101,
  CREDS: 0x0102,
  RLIMITS: 0x0103,
  NSIDS: 0x0104,
  NOCR: 0x0105,
  THREAD: 0x0201,
  REGS: 0x0211,
  FPU: 0x0212,
  XSTATE: 0x0213,
  MM: 0x0301,
  VMA: 0x0302,
  PAGES: 0x0303,
  FD: 0x0401,
  INDEX: 0x7f01,
  TRAILER: 0x7fff,
};
export const KNOWN_KINDS = new Set(Object.values(K));
export const INDEX_ENTRY = 24;
export const TRAILER_MAGIC = 0x00444e45474d5243n;

/** Padded length; safe for any u32 (no 32-bit overflow). */
export const pad8 = (n) => Math.ceil(n / 8) * 8;

/** XXH3-64 (seed 0) of the concatenation of the parts. */
export function hash(...parts) {
  const h = xxh3.Xxh3.withSeed(0n);
  for (const p of parts) if (p.length) h.update(p);
  return h.digest();
}

/**
 * @typedef {{ kind: number, flags: number, payload: Uint8Array, pad?: Uint8Array,
 *   len?: number, csum?: bigint, stale?: boolean }} Rec
 * payload: the payload (without padding). pad: padding bytes (default zeros).
 * len: a length to write in the header instead of payload.length (framing then follows payload).
 * csum: the stored checksum; with stale=true it is written as is, else recomputed.
 */

/** Split a well-formed image into its magic and records (each with its stored checksum). */
export function parse(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const recs = [];
  let o = 8;
  while (o + HDR <= bytes.length) {
    const kind = dv.getUint16(o, true),
      flags = dv.getUint16(o + 2, true),
      len = dv.getUint32(o + 4, true);
    const csum = dv.getBigUint64(o + 8, true);
    if (o + HDR + pad8(len) > bytes.length) break;
    recs.push({
      kind,
      flags,
      csum,
      off: o,
      payload: bytes.slice(o + HDR, o + HDR + len),
      pad: bytes.slice(o + HDR + len, o + HDR + pad8(len)),
    });
    o += HDR + pad8(len);
  }
  if (o !== bytes.length) throw new Error(`parse: ${bytes.length - o} trailing bytes at ${o}`);
  return { magic: bytes.slice(0, 8), recs };
}

function header(r) {
  const h = new Uint8Array(HDR);
  const dv = new DataView(h.buffer);
  dv.setUint16(0, r.kind, true);
  dv.setUint16(2, r.flags, true);
  dv.setUint32(4, r.len ?? r.payload.length, true);
  return h;
}

function padded(r) {
  const n = pad8(r.payload.length);
  const out = new Uint8Array(n);
  out.set(r.payload);
  if (r.pad) out.set(r.pad.subarray(0, n - r.payload.length), r.payload.length);
  return out;
}

/** The checksum a reader computes for the record as framed. */
export function recordCsum(r) {
  return hash(padded(r), header(r).subarray(0, 8));
}

/** The payload of a PAGES record: addr, npages. */
function pagesInfo(p) {
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  return p.length >= 16 ? { addr: dv.getBigUint64(0, true), npages: dv.getUint32(8, true) } : null;
}

/**
 * Serialize. fix: 'none' keeps every stored checksum (records whose csum is undefined get a
 * fresh one); 'rec' recomputes record checksums (except records marked stale); 'full' also
 * rewrites the trailer (record count, index offset, whole-image checksum); fixIndex rebuilds the
 * INDEX from the PAGES records first.
 */
export function build(magic, recs, { fix = 'rec', fixIndex = false } = {}) {
  recs = recs.map((r) => ({ ...r }));
  // offsets
  const offs = [];
  let o = 8;
  const layout = () => {
    o = 8;
    offs.length = 0;
    for (const r of recs) {
      offs.push(o);
      o += HDR + pad8(r.payload.length);
    }
  };
  layout();
  if (fixIndex) {
    const ix = recs.findIndex((r) => r.kind === K.INDEX);
    if (ix >= 0) {
      const entries = [];
      let pid = 0;
      recs.forEach((r, i) => {
        if (r.kind === K.TASK && r.payload.length >= 4) pid = new DataView(r.payload.buffer, r.payload.byteOffset).getInt32(0, true);
        if (r.kind === K.PAGES && i < ix) {
          const pi = pagesInfo(r.payload);
          if (pi) entries.push({ pid, ...pi, off: offs[i] });
        }
      });
      const p = new Uint8Array(8 + entries.length * INDEX_ENTRY);
      const dv = new DataView(p.buffer);
      dv.setUint32(0, entries.length, true);
      entries.forEach((e, i) => {
        const b = 8 + i * INDEX_ENTRY;
        dv.setInt32(b, e.pid, true);
        dv.setUint32(b + 4, e.npages, true);
        dv.setBigUint64(b + 8, e.addr, true);
        dv.setBigUint64(b + 16, BigInt(e.off), true);
      });
      recs[ix] = { ...recs[ix], payload: p, pad: undefined, len: undefined, csum: undefined, stale: false };
      layout();
    }
  }
  for (const r of recs) {
    if (r.csum === undefined || (fix !== 'none' && !r.stale)) r.csum = recordCsum(r);
  }
  const last = recs[recs.length - 1];
  if (fix === 'full' && last && last.kind === K.TRAILER && last.payload.length === 32) {
    const h = xxh3.Xxh3.withSeed(0n);
    h.update(magic);
    for (let i = 0; i < recs.length - 1; i++) {
      const hd = header(recs[i]);
      new DataView(hd.buffer).setBigUint64(8, recs[i].csum, true);
      h.update(hd);
    }
    const p = last.payload.slice();
    const dv = new DataView(p.buffer);
    dv.setBigUint64(8, BigInt(recs.length - 1), true);
    const ix = recs.findIndex((r) => r.kind === K.INDEX);
    dv.setBigUint64(16, BigInt(ix >= 0 ? offs[ix] : 0), true);
    dv.setBigUint64(24, h.digest(), true);
    recs[recs.length - 1] = { ...last, payload: p };
    if (!last.stale) recs[recs.length - 1].csum = recordCsum(recs[recs.length - 1]);
  }
  const out = new Uint8Array(o);
  out.set(magic.subarray(0, 8));
  recs.forEach((r, i) => {
    const hd = header(r);
    new DataView(hd.buffer).setBigUint64(8, r.csum, true);
    out.set(hd, offs[i]);
    out.set(padded(r), offs[i] + HDR);
  });
  return out;
}

/**
 * Numeric slots of a payload, following the schema: every fixed field, string
 * length prefix and array count, with its byte offset and size; the items of a
 * u64[] of tuples are named by tuple and member (`timers[1].clock`), and a raw
 * field is one slot (role 'raw') to the end of the payload. Stops quietly where
 * the payload is too short (mutants are allowed to be malformed).
 * @param {readonly any[]} fields schema fields [name, type, doc, of]
 */
export function slots(fields, p) {
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const out = [];
  let o = 0;
  const fits = (n) => o + n <= p.length;
  for (const [name, type, , of] of fields) {
    if (type === 'u32' || type === 'i32') {
      if (!fits(4)) break;
      out.push({ name, off: o, size: 4, role: 'field' });
      o += 4;
    } else if (type === 'u64') {
      if (!fits(8)) break;
      out.push({ name, off: o, size: 8, role: 'field' });
      o += 8;
    } else if (type === 'str' || type === 'strn') {
      if (!fits(4)) break;
      const n = dv.getUint32(o, true);
      out.push({ name, off: o, size: 4, role: 'strlen' });
      o += 4 + (type === 'strn' && n === 0xffffffff ? 0 : n);
      if (o > p.length) break;
    } else if (type === 'u32[]' || type === 'u64[]' || type === 'str[]') {
      if (!fits(4)) break;
      const n = dv.getUint32(o, true);
      out.push({ name, off: o, size: 4, role: 'count' });
      o += 4;
      if (type === 'str[]') {
        for (let i = 0; i < n && fits(4); i++) {
          out.push({ name: `${name}[${i}]`, off: o, size: 4, role: 'strlen' });
          o += 4 + dv.getUint32(o, true);
        }
      } else {
        const item = type === 'u32[]' ? 4 : 8;
        for (let i = 0; i < n && fits(item); i++) {
          const itemName = of ? `${name}[${Math.floor(i / of.length)}].${of[i % of.length]}` : `${name}[${i}]`;
          out.push({ name: itemName, off: o, size: item, role: 'item' });
          o += item;
        }
      }
      if (o > p.length) break;
    } else if (type === 'raw') {
      out.push({ name, off: o, size: p.length - o, role: 'raw' });
      break;
    }
  }
  return out;
}

/** The string fields of a payload: offset and length of their bytes. */
export function strings(fields, p) {
  return slots(fields, p)
    .filter((s) => s.role === 'strlen')
    .map((s) => {
      const n = new DataView(p.buffer, p.byteOffset).getUint32(s.off, true);
      return { name: s.name, off: s.off + 4, len: n === 0xffffffff ? 0 : Math.min(n, p.length - s.off - 4) };
    });
}

/**
 * True when every checksum in the image is right: each record's stored checksum
 * matches its header and padded payload, and the last record is a TRAILER whose
 * whole-image checksum matches the magic and the headers before it. A reader may
 * accept such an image (it is then a valid image of some model, if the structure
 * holds); it must reject every other one.
 */
export function isConsistent(bytes) {
  let p;
  try {
    p = parse(bytes);
  } catch {
    return false;
  }
  const { recs, magic } = p;
  if (!recs.length) return false;
  for (const r of recs) if (recordCsum(r) !== r.csum) return false;
  const t = recs[recs.length - 1];
  if (t.kind !== K.TRAILER || t.payload.length !== 32) return false;
  const h = xxh3.Xxh3.withSeed(0n);
  h.update(magic);
  for (let i = 0; i < recs.length - 1; i++) h.update(bytes.subarray(recs[i].off, recs[i].off + HDR));
  return new DataView(t.payload.buffer, t.payload.byteOffset, 32).getBigUint64(24, true) === h.digest();
}
