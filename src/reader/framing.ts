/**
 * Framing of an image: the magic, each record's header, length limits and checksum, read through a small window
 * (RecordStream); the bulk checksum pass of verifyImageAsync; and the checks of a PAGES payload (bitmap, length).
 * It knows record kinds only for their length limits; what follows what is the grammar's (./grammar.ts).
 */
import { CrimgError } from '../errors.js';
import type { Kernels } from '../kernels/api.js';
import { claimRegion, claimSlot, releaseRegion, releaseSlot } from '../kernels/arena.js';
import { ARCH_X86_64 } from '../model.js';
import {
  FORMAT_MAJOR,
  FORMAT_MINOR,
  K,
  MAGIC,
  MAX_INDEX_RECORD,
  MAX_META_RECORD,
  MAX_RUN_PAGES,
  PAGE_SIZE,
  RECORD_BY_KIND,
  RECORD_HEADER_BYTES,
  RF_MUST_UNDERSTAND,
  isCompatible,
  kindName,
  minLen,
  pad8,
} from '../schema.js';
import type { Source } from '../source.js';

/**
 * Read window. Small on purpose: the kernel copies page-cache bytes into it and the
 * checksum reads them back while they are still in the CPU cache, and a fresh page of
 * WebAssembly memory costs a page fault on first touch (slow on VMs), so a small window
 * that every RecordStream reuses keeps both the copy and the faults cheap. Records
 * larger than the window are hashed in window-sized pieces (PAGES) or read into a
 * temporary region (metadata records, which must be contiguous).
 */
const WINDOW = 1024 * 1024;
/** @internal The read window's size (tests place records across its boundaries). */
export const READ_WINDOW = WINDOW;
/** Readahead when page payloads are skipped ('meta' mode): just the headers, fixed parts and bitmaps. */
export const META_READAHEAD = 16 * 1024;
/** Bytes of a streamed PAGES payload kept at its end: the largest bitmap plus padding. */
const TAIL = 136;
export const MAX_PAGES_PAYLOAD = 16 + MAX_RUN_PAGES * PAGE_SIZE + (MAX_RUN_PAGES / 64) * 8;

/** Largest payload accepted for a kind (unknown kinds: MAX_META_RECORD). */
function maxLen(kind: number): number {
  if (kind === K.PAGES) return MAX_PAGES_PAYLOAD;
  if (kind === K.INDEX) return MAX_INDEX_RECORD;
  return MAX_META_RECORD;
}

export interface Rec {
  kind: number;
  flags: number;
  len: number;
  /** Absolute offset of the record header. */
  off: number;
  /** Pointer to the payload in kernel memory, or -1 when the payload was skipped or streamed. */
  ptr: number;
  csum: bigint;
  /**
   * Set for a PAGES record that was verified piecewise (its payload is not contiguous in
   * memory): `head` points to a copy of its first 16 payload bytes, `end` to where payload
   * byte `len` would be, with at least the 128 bytes before it (the bitmap) copied there.
   * Valid until the next call to next().
   */
  streamed?: { head: number; end: number };
}

/** Walks the framed records of an image, verifying each one. */
export class RecordStream {
  private readonly win: number;
  private winStart = 0;
  private winLen = 0;
  private big = -1; // temporary region for records larger than the window
  /** Small area after the window: header, head and tail copies of a streamed PAGES record. */
  private readonly side: number;
  /** Bytes read at a time when the window is refilled. */
  readahead = WINDOW;
  private readonly slot: number;
  readonly imgSlot: number;
  pos: number;
  records = 0;
  private released = false;
  /** PAGES records a bulk pass already verified (their payloads are skipped here). */
  pre: Preverified | null = null;

  constructor(
    readonly src: Source,
    readonly k: Kernels,
  ) {
    this.win = claimRegion(k, WINDOW + 1024);
    this.side = this.win + WINDOW;
    this.slot = claimSlot(k);
    this.imgSlot = claimSlot(k);
    this.pos = 0;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    releaseRegion(this.k, this.win);
    if (this.big >= 0) releaseRegion(this.k, this.big);
    releaseSlot(this.k, this.slot);
    releaseSlot(this.k, this.imgSlot);
  }

  /** Make [abs, abs+n) available in kernel memory, reading `ahead` bytes on a miss; returns its pointer. */
  ensure(abs: number, n: number, ahead = this.readahead): number {
    if (abs >= this.winStart && abs + n <= this.winStart + this.winLen) return this.win + (abs - this.winStart);
    if (abs + n > this.src.size) {
      throw new CrimgError('TRUNCATED', `image ends at ${this.src.size}, ${abs + n - this.src.size} bytes short of a complete record`, {
        offset: abs,
      });
    }
    if (n > WINDOW) {
      if (this.big >= 0) releaseRegion(this.k, this.big);
      this.big = claimRegion(this.k, n);
      const got = this.src.pread(this.k.u8().subarray(this.big, this.big + n), abs);
      if (got < n) throw new CrimgError('TRUNCATED', `short read at ${abs}`, { offset: abs });
      return this.big;
    }
    const want = Math.min(Math.max(n, ahead), this.src.size - abs);
    const m = this.k.u8();
    // Bytes of [abs, ...) already in the window move to its start instead of being read again.
    let keep = 0;
    if (abs >= this.winStart && abs < this.winStart + this.winLen) {
      keep = Math.min(this.winStart + this.winLen - abs, want);
      m.copyWithin(this.win, this.win + (abs - this.winStart), this.win + (abs - this.winStart) + keep);
    }
    const got = keep < want ? this.src.pread(m.subarray(this.win + keep, this.win + want), abs + keep) : 0;
    this.winStart = abs;
    this.winLen = keep + got;
    if (this.winLen < n) throw new CrimgError('TRUNCATED', `short read at ${abs}`, { offset: abs });
    return this.win;
  }

  /** Read and check the 8-byte magic. */
  magic(): void {
    const n = Math.min(8, this.src.size);
    const p = n > 0 ? this.ensure(0, n) : 0;
    const m = this.k.u8();
    const want = new TextEncoder().encode(MAGIC);
    for (let i = 0; i < Math.min(n, 4); i++) {
      if (m[p + i] !== want[i]) throw new CrimgError('BAD_MAGIC', 'not a crimg image (magic "CRMG" expected)', { offset: i });
    }
    if (n < 8) throw new CrimgError('TRUNCATED', `image of ${this.src.size} bytes is shorter than its magic`, { offset: n });
    const arch = m[p + 4]! | (m[p + 5]! << 8);
    if (arch !== ARCH_X86_64)
      throw new CrimgError('WRONG_ARCH', `image architecture ${arch} is not x86_64 (${ARCH_X86_64})`, { offset: 4 });
    const major = m[p + 6]!,
      minor = m[p + 7]!;
    if (!isCompatible(major, minor)) {
      throw new CrimgError(
        'UNSUPPORTED_VERSION',
        `image format ${major}.${minor} is not readable by this reader (${FORMAT_MAJOR}.${FORMAT_MINOR})`,
        { offset: 6 },
      );
    }
    this.k.xxh3Init(this.imgSlot);
    this.k.xxh3Update(this.imgSlot, p, 8);
    this.pos = 8;
  }

  /**
   * The next record, verified; null at the exact end of the source. With skip=true the
   * payload is neither read nor verified (the caller verifies it later, before use).
   */
  next(skip: (kind: number) => boolean = () => false): Rec | null {
    const off = this.pos;
    const size = this.src.size;
    if (off === size) return null;
    if (size - off < RECORD_HEADER_BYTES) {
      throw new CrimgError('TRUNCATED', `${size - off} bytes left, a record header needs ${RECORD_HEADER_BYTES}`, { offset: off });
    }
    let h = this.ensure(off, RECORD_HEADER_BYTES);
    let m = this.k.u8();
    const dv = new DataView(m.buffer, m.byteOffset + h, RECORD_HEADER_BYTES);
    const kind = dv.getUint16(0, true);
    const flags = dv.getUint16(2, true);
    const len = dv.getUint32(4, true);
    const csum = dv.getBigUint64(8, true);
    if (flags & ~RF_MUST_UNDERSTAND)
      throw new CrimgError('BAD_RECORD', `reserved record flags 0x${flags.toString(16)} set`, { offset: off + 2, kind });
    const def = RECORD_BY_KIND.get(kind);
    if (len > maxLen(kind)) {
      throw new CrimgError('LIMIT_EXCEEDED', `${kindName(kind)} record length ${len} exceeds the limit ${maxLen(kind)}`, {
        offset: off + 4,
        kind,
      });
    }
    if (def && (def.fixedLen !== undefined ? len !== def.fixedLen : len < minLen(def))) {
      throw new CrimgError('BAD_RECORD', `${def.name} record length ${len} is invalid for its kind`, { offset: off + 4, kind });
    }
    const total = RECORD_HEADER_BYTES + pad8(len);
    if (off + total > size) {
      throw new CrimgError('TRUNCATED', `${kindName(kind)} record of ${total} bytes runs past the end of the image (${size})`, {
        offset: off,
        kind,
      });
    }
    // The image checksum covers the magic and every record header except the trailer's.
    if (kind !== K.TRAILER) this.k.xxh3Update(this.imgSlot, h, RECORD_HEADER_BYTES);
    this.pos = off + total;
    this.records++;
    if (kind === K.PAGES && this.pre && isPreverified(this.pre, off, len, csum)) return { kind, flags, len, off, ptr: -1, csum };
    if (skip(kind)) return { kind, flags, len, off, ptr: -1, csum };
    if (kind === K.PAGES) return this.streamPages(h, kind, flags, len, off, csum);
    h = this.ensure(off, total);
    const ptr = h + RECORD_HEADER_BYTES;
    this.k.xxh3Init(this.slot);
    this.k.xxh3Update(this.slot, ptr, pad8(len));
    this.k.xxh3Update(this.slot, h, 8);
    const got = this.k.xxh3Digest(this.slot);
    if (got !== csum) {
      throw new CrimgError(
        'CHECKSUM_MISMATCH',
        `${kindName(kind)} record checksum 0x${got.toString(16)} does not match the stored 0x${csum.toString(16)}`,
        { offset: off, kind },
      );
    }
    m = this.k.u8();
    for (let i = len; i < pad8(len); i++) {
      if (m[ptr + i] !== 0) throw new CrimgError('BAD_RECORD', 'non-zero padding', { offset: off + RECORD_HEADER_BYTES + i, kind });
    }
    return { kind, flags, len, off, ptr, csum };
  }

  /**
   * Verify a PAGES record whose header is at `h` (in the window) piece by piece as the
   * window slides over it: every payload byte is read once and hashed where it landed.
   * The checks and their order are those of the contiguous path in next().
   */
  private streamPages(h: number, kind: number, flags: number, len: number, off: number, csum: bigint): Rec {
    const k = this.k;
    const side = this.side;
    const head = side + RECORD_HEADER_BYTES;
    const tailEnd = head + 16 + TAIL; // corresponds to padded payload offset plen
    const plen = pad8(len);
    const tailFrom = Math.max(0, plen - TAIL);
    let m = k.u8();
    m.copyWithin(side, h, h + RECORD_HEADER_BYTES);
    k.xxh3Init(this.slot);
    const base = off + RECORD_HEADER_BYTES;
    let pos = base;
    const end = base + plen;
    while (pos < end) {
      let avail = this.winStart + this.winLen - pos;
      let p: number;
      if (pos >= this.winStart && avail > 0) {
        p = this.win + (pos - this.winStart);
      } else {
        p = this.ensure(pos, Math.min(WINDOW, end - pos));
        avail = this.winLen;
        m = k.u8();
      }
      const n = Math.min(avail, end - pos);
      k.xxh3Update(this.slot, p, n);
      const rel = pos - base;
      if (rel < 16) m.copyWithin(head + rel, p, p + Math.min(16 - rel, n));
      const lo = Math.max(rel, tailFrom),
        hi = rel + n;
      if (lo < hi) m.copyWithin(tailEnd - (plen - lo), p + (lo - rel), p + (hi - rel));
      pos += n;
    }
    k.xxh3Update(this.slot, side, 8);
    const got = k.xxh3Digest(this.slot);
    if (got !== csum) {
      throw new CrimgError(
        'CHECKSUM_MISMATCH',
        `${kindName(kind)} record checksum 0x${got.toString(16)} does not match the stored 0x${csum.toString(16)}`,
        { offset: off, kind },
      );
    }
    const endPtr = tailEnd - (plen - len);
    for (let i = len; i < plen; i++) {
      if (m[endPtr + (i - len)] !== 0)
        throw new CrimgError('BAD_RECORD', 'non-zero padding', { offset: off + RECORD_HEADER_BYTES + i, kind });
    }
    return { kind, flags, len, off, ptr: -1, csum, streamed: { head, end: endPtr } };
  }

  /** Verify a skipped record now (reads it whole). Returns the payload pointer. */
  verify(r: Rec): number {
    const total = RECORD_HEADER_BYTES + pad8(r.len);
    const h = this.ensure(r.off, total);
    const m = this.k.u8();
    const dv = new DataView(m.buffer, m.byteOffset + h, RECORD_HEADER_BYTES);
    if (dv.getUint16(0, true) !== r.kind || dv.getUint32(4, true) !== r.len || dv.getBigUint64(8, true) !== r.csum) {
      throw new CrimgError('CHECKSUM_MISMATCH', `${kindName(r.kind)} record header changed since it was first read`, {
        offset: r.off,
        kind: r.kind,
      });
    }
    this.k.xxh3Init(this.slot);
    this.k.xxh3Update(this.slot, h + RECORD_HEADER_BYTES, pad8(r.len));
    this.k.xxh3Update(this.slot, h, 8);
    if (this.k.xxh3Digest(this.slot) !== r.csum) {
      throw new CrimgError('CHECKSUM_MISMATCH', `${kindName(r.kind)} record checksum does not match`, { offset: r.off, kind: r.kind });
    }
    return h + RECORD_HEADER_BYTES;
  }
}

// ---------------------------------------------------------------- bulk pass

/**
 * PAGES records whose framing and checksum the bulk pass verified, in file order
 * (offset, length, checksum of each). The grammar walk that follows skips their
 * payloads when it meets a record at the same offset with the same header.
 */
export interface Preverified {
  offs: number[];
  lens: number[];
  csums: bigint[];
  i: number;
}

function isPreverified(p: Preverified, off: number, len: number, csum: bigint): boolean {
  while (p.i < p.offs.length && p.offs[p.i]! < off) p.i++;
  if (p.i >= p.offs.length || p.offs[p.i] !== off) return false;
  const ok = p.lens[p.i] === len && p.csums[p.i] === csum;
  p.i++;
  return ok;
}

/** Bytes per read of the bulk pass, and reads kept in flight (in as many buffers, plus the one being hashed). */
export const BULK_CHUNK = 1024 * 1024;
const BULK_DEPTH = 3;
/** Images smaller than this are verified in one pass (the bulk pass pays off on big images). */
export const BULK_MIN = 16 * 1024 * 1024;

/**
 * The bulk pass of verification: walk the record framing from offset 8 over large
 * reads done off the main thread (src.preadAsync), checksumming every record's payload
 * while the next chunks are read, and note the PAGES records that check out. It checks
 * only what it needs to move on (length against the kind's limit and the file size) and
 * stops at the first record it cannot frame or whose checksum fails: the grammar walk
 * then verifies from there on in full, so errors, their codes and offsets are those of
 * the one-pass reader.
 */
export async function bulkPass(src: Source, k: Kernels, chunk: number, onProgress?: (offset: number) => void): Promise<Preverified> {
  const pre: Preverified = { offs: [], lens: [], csums: [], i: 0 };
  const size = src.size;
  const ring = claimRegion(k, chunk * (BULK_DEPTH + 1) + 64);
  const side = ring + chunk * (BULK_DEPTH + 1); // the current record's header
  const slot = claimSlot(k);
  const inflight: { p: number; pos: number; n: number; done: Promise<number> }[] = [];
  let next = 0;
  let seq = 0;
  const issue = (): void => {
    if (next >= size) return;
    const n = Math.min(chunk, size - next);
    // BULK_DEPTH reads in flight and the chunk being hashed: each in its own buffer
    const p = ring + (seq++ % (BULK_DEPTH + 1)) * chunk;
    const done = src.preadAsync!(k.u8().subarray(p, p + n), next);
    done.catch(() => {
      /* seen when awaited */
    });
    inflight.push({ p, pos: next, n, done });
    next += n;
  };
  let off = 8; // header of the record being walked
  let have = 0; // bytes of that header gathered at `side`
  let remain = -1; // padded payload bytes still to hash; -1 while gathering the header
  let kind = 0,
    len = 0,
    csum = 0n;
  let stop = false;
  try {
    for (let i = 0; i < BULK_DEPTH; i++) issue();
    while (inflight.length) {
      const c = inflight.shift()!;
      let got = 0;
      try {
        got = await c.done;
      } catch {
        stop = true;
      } // the grammar walk reports read errors
      if (got < c.n) stop = true;
      if (!stop) issue();
      const m = k.u8();
      const dv = new DataView(m.buffer, m.byteOffset);
      const end = c.pos + got;
      let at = Math.max(c.pos, Math.min(8, end));
      while (!stop && at < end) {
        const p = c.p + (at - c.pos);
        if (remain < 0) {
          const take = Math.min(16 - have, end - at);
          m.copyWithin(side + have, p, p + take);
          have += take;
          at += take;
          if (have < 16) break;
          have = 0;
          kind = dv.getUint16(side, true);
          len = dv.getUint32(side + 4, true);
          csum = dv.getBigUint64(side + 8, true);
          if (len > maxLen(kind) || off + RECORD_HEADER_BYTES + pad8(len) > size) {
            stop = true;
            break;
          }
          k.xxh3Init(slot);
          remain = pad8(len);
        } else {
          const take = Math.min(remain, end - at);
          k.xxh3Update(slot, p, take);
          at += take;
          remain -= take;
        }
        if (remain === 0) {
          k.xxh3Update(slot, side, 8);
          if (k.xxh3Digest(slot) !== csum) {
            stop = true;
            break;
          }
          if (kind === K.PAGES && len % 8 === 0) {
            pre.offs.push(off);
            pre.lens.push(len);
            pre.csums.push(csum);
          }
          off += RECORD_HEADER_BYTES + pad8(len);
          remain = -1;
        }
      }
      onProgress?.(end);
    }
  } finally {
    // Nothing may still be writing into the ring when it is handed back.
    await Promise.allSettled(inflight.map((c) => c.done));
    releaseSlot(k, slot);
    releaseRegion(k, ring);
  }
  return pre;
}

// ---------------------------------------------------------------- page records

export interface PageRec {
  addr: bigint;
  npages: number;
  nstored: number;
  off: number;
  len: number;
  csum: bigint;
}

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/** Checks the fixed part and bitmap of a PAGES payload; returns nstored. */
export function checkPagesPayload(m: Uint8Array, fixedPtr: number, bmPtr: number, r: Rec, npages: number, flags: number): number {
  const bad = (why: string, at = r.off): never => {
    throw new CrimgError('BAD_RECORD', `PAGES record: ${why}`, { offset: at, kind: K.PAGES });
  };
  void fixedPtr;
  if (flags !== 0) bad(`reserved flags ${flags}`, r.off + RECORD_HEADER_BYTES + 12);
  if (npages < 1 || npages > MAX_RUN_PAGES) bad(`page count ${npages} outside 1..${MAX_RUN_PAGES}`, r.off + RECORD_HEADER_BYTES + 8);
  const bmBytes = Math.ceil(npages / 64) * 8;
  const dataLen = r.len - 16 - bmBytes;
  if (dataLen < 0 || dataLen % PAGE_SIZE !== 0) bad(`length ${r.len} does not fit ${npages} pages`);
  const nstored = dataLen / PAGE_SIZE;
  const dv = new DataView(m.buffer, m.byteOffset + bmPtr, bmBytes);
  let count = 0;
  for (let w = 0; w < bmBytes / 8; w++) {
    const lo = dv.getUint32(w * 8, true),
      hi = dv.getUint32(w * 8 + 4, true);
    const valid = Math.min(64, npages - w * 64);
    // bits at and above `valid` must be clear (valid >= 1)
    if (valid < 64 && (valid <= 32 ? (valid < 32 && lo >>> valid !== 0) || hi !== 0 : hi >>> (valid - 32) !== 0)) {
      bad('bitmap bits set past the page count');
    }
    count += popcount32(lo) + popcount32(hi);
  }
  if (count !== nstored) bad(`bitmap says ${count} pages stored, length says ${nstored}`);
  return nstored;
}
