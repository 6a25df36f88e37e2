/**
 * Image reader: source -> records (framing, limits, checksums) -> grammar ->
 * model. Everything read is checked before it is used: magic, version and
 * architecture; each record's length against its kind and against what remains
 * of the file; each payload's checksum; nesting and counts; the index and the
 * whole-image checksum in the trailer. Page contents stay in the file and are
 * read (and their record checksum verified again) on demand.
 */
import { CrimgError } from './errors.js';
import { now } from './platform.js';
import { kernels } from './kernels/index.js';
import type { Kernels } from './kernels/api.js';
import { claimRegion, claimSlot, releaseRegion, releaseSlot } from './kernels/arena.js';
import {
  ARCH_X86_64, type Credentials, type Mm, type Model, type Namespace, type NamespaceIds, NS_KINDS,
  type Itimer, type PosixTimer, SIGEV, POSIX_TIMER_CLOCKS, type FileLock, FdKind, LOCK_EOF, LOCK_KIND, type AnonFd, ANON_KIND, type PipeEnd, type UnixPairEnd, type InotifyWatch, type TcpListen, type NocrReason, type OpenFile, type SigAction, type PageSource, type Task, type Thread, type Vma, MM_FIELD_NAMES,
} from './model.js';
import {
  CHECKSUM_XXH3_64, FORMAT_MAJOR, FORMAT_MINOR, INDEX_ENTRY_BYTES, K, MAGIC, MAX_INDEX_RECORD, MAX_META_RECORD,
  MAX_RUN_PAGES, PAGE_SIZE, RECORD_BY_KIND, RECORD_HEADER_BYTES, RF_MUST_UNDERSTAND, TRAILER_MAGIC,
  decodeFields, isCompatible, kindName, minLen, pad8, type Fields,
} from './schema.js';
import { type Source, type SourceTarget, openSource } from './source.js';

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
const META_READAHEAD = 16 * 1024;
/** Bytes of a streamed PAGES payload kept at its end: the largest bitmap plus padding. */
const TAIL = 136;
const MAX_PAGES_PAYLOAD = 16 + MAX_RUN_PAGES * PAGE_SIZE + (MAX_RUN_PAGES / 64) * 8;

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

  constructor(readonly src: Source, readonly k: Kernels) {
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
      throw new CrimgError('TRUNCATED', `image ends at ${this.src.size}, ${abs + n - this.src.size} bytes short of a complete record`, { offset: abs });
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
    if (arch !== ARCH_X86_64) throw new CrimgError('WRONG_ARCH', `image architecture ${arch} is not x86_64 (${ARCH_X86_64})`, { offset: 4 });
    const major = m[p + 6]!, minor = m[p + 7]!;
    if (!isCompatible(major, minor)) {
      throw new CrimgError('UNSUPPORTED_VERSION', `image format ${major}.${minor} is not readable by this reader (${FORMAT_MAJOR}.${FORMAT_MINOR})`, { offset: 6 });
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
    if (flags & ~RF_MUST_UNDERSTAND) throw new CrimgError('BAD_RECORD', `reserved record flags 0x${flags.toString(16)} set`, { offset: off + 2, kind });
    const def = RECORD_BY_KIND.get(kind);
    if (len > maxLen(kind)) {
      throw new CrimgError('LIMIT_EXCEEDED', `${kindName(kind)} record length ${len} exceeds the limit ${maxLen(kind)}`, { offset: off + 4, kind });
    }
    if (def && (def.fixedLen !== undefined ? len !== def.fixedLen : len < minLen(def))) {
      throw new CrimgError('BAD_RECORD', `${def.name} record length ${len} is invalid for its kind`, { offset: off + 4, kind });
    }
    const total = RECORD_HEADER_BYTES + pad8(len);
    if (off + total > size) {
      throw new CrimgError('TRUNCATED', `${kindName(kind)} record of ${total} bytes runs past the end of the image (${size})`, { offset: off, kind });
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
      throw new CrimgError('CHECKSUM_MISMATCH', `${kindName(kind)} record checksum 0x${got.toString(16)} does not match the stored 0x${csum.toString(16)}`, { offset: off, kind });
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
      const lo = Math.max(rel, tailFrom), hi = rel + n;
      if (lo < hi) m.copyWithin(tailEnd - (plen - lo), p + (lo - rel), p + (hi - rel));
      pos += n;
    }
    k.xxh3Update(this.slot, side, 8);
    const got = k.xxh3Digest(this.slot);
    if (got !== csum) {
      throw new CrimgError('CHECKSUM_MISMATCH', `${kindName(kind)} record checksum 0x${got.toString(16)} does not match the stored 0x${csum.toString(16)}`, { offset: off, kind });
    }
    const endPtr = tailEnd - (plen - len);
    for (let i = len; i < plen; i++) {
      if (m[endPtr + (i - len)] !== 0) throw new CrimgError('BAD_RECORD', 'non-zero padding', { offset: off + RECORD_HEADER_BYTES + i, kind });
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
      throw new CrimgError('CHECKSUM_MISMATCH', `${kindName(r.kind)} record header changed since it was first read`, { offset: r.off, kind: r.kind });
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
export interface Preverified { offs: number[]; lens: number[]; csums: bigint[]; i: number }

function isPreverified(p: Preverified, off: number, len: number, csum: bigint): boolean {
  while (p.i < p.offs.length && p.offs[p.i]! < off) p.i++;
  if (p.i >= p.offs.length || p.offs[p.i] !== off) return false;
  const ok = p.lens[p.i] === len && p.csums[p.i] === csum;
  p.i++;
  return ok;
}

/** Bytes per read of the bulk pass, and reads kept in flight (in as many buffers, plus the one being hashed). */
const BULK_CHUNK = 1024 * 1024;
const BULK_DEPTH = 3;
/** Images smaller than this are verified in one pass (the bulk pass pays off on big images). */
const BULK_MIN = 16 * 1024 * 1024;

/**
 * The bulk pass of verification: walk the record framing from offset 8 over large
 * reads done off the main thread (src.preadAsync), checksumming every record's payload
 * while the next chunks are read, and note the PAGES records that check out. It checks
 * only what it needs to move on (length against the kind's limit and the file size) and
 * stops at the first record it cannot frame or whose checksum fails: the grammar walk
 * then verifies from there on in full, so errors, their codes and offsets are those of
 * the one-pass reader.
 */
async function bulkPass(src: Source, k: Kernels, chunk: number, onProgress?: (offset: number) => void): Promise<Preverified> {
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
    done.catch(() => { /* seen when awaited */ });
    inflight.push({ p, pos: next, n, done });
    next += n;
  };
  let off = 8; // header of the record being walked
  let have = 0; // bytes of that header gathered at `side`
  let remain = -1; // padded payload bytes still to hash; -1 while gathering the header
  let kind = 0, len = 0, csum = 0n;
  let stop = false;
  try {
    for (let i = 0; i < BULK_DEPTH; i++) issue();
    while (inflight.length) {
      const c = inflight.shift()!;
      let got = 0;
      try { got = await c.done; } catch { stop = true; } // the grammar walk reports read errors
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
          if (len > maxLen(kind) || off + RECORD_HEADER_BYTES + pad8(len) > size) { stop = true; break; }
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
          if (k.xxh3Digest(slot) !== csum) { stop = true; break; }
          if (kind === K.PAGES && len % 8 === 0) { pre.offs.push(off); pre.lens.push(len); pre.csums.push(csum); }
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
function checkPagesPayload(m: Uint8Array, fixedPtr: number, bmPtr: number, r: Rec, npages: number, flags: number): number {
  const bad = (why: string, at = r.off): never => { throw new CrimgError('BAD_RECORD', `PAGES record: ${why}`, { offset: at, kind: K.PAGES }); };
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
    const lo = dv.getUint32(w * 8, true), hi = dv.getUint32(w * 8 + 4, true);
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

// ---------------------------------------------------------------- the image

export type ReadMode = 'full' | 'meta';

export interface ReadOptions {
  kernels?: Kernels;
  /** 'full' verifies every payload now (default for readImage/verifyImage); 'meta' defers page payloads. */
  mode?: ReadMode;
  /** Called as page records go by with the offset reached (for progress bars). */
  onProgress?: (offset: number) => void;
}

export interface VmaStats { start: bigint; end: bigint; path: string | null; pages: number; stored: number; zero: number }
export interface TaskStats { pid: number; vmas: VmaStats[] }

export interface ImageStats {
  fileBytes: number;
  records: number;
  pageRecords: number;
  pagesStored: number;
  pagesZero: number;
  pageBytes: number;
  metaBytes: number;
  imageCsum: bigint;
  tasks: TaskStats[];
}

/** An opened image: its model (with lazily read pages) and random access to task memory. */
export class Image {
  readonly model: Model;
  readonly stats: ImageStats;
  private readonly rs: RecordStream;
  /** Regions for loadRun (two slots, so that one record can be read while the other is used), claimed on first use
   *  (-1 until then). */
  private readonly recRegions = [-1, -1];
  /** Per slot: the run whose verified record is there (reads of parts of one run load it once). */
  private readonly loaded: (PageRec | null)[] = [null, null];
  private readonly loadedAt = [{ data: 0, bitmap: 0 }, { data: 0, bitmap: 0 }];
  /** Per slot: the run whose bytes fetchRun read there, not yet verified. */
  private readonly fetched: (PageRec | null)[] = [null, null];
  private readonly runsByVma = new Map<Vma, PageRec[]>();
  private closed = false;

  /** @internal */
  constructor(private readonly src: Source, readonly k: Kernels, mode: ReadMode, private readonly ownsSource: boolean, onProgress?: (offset: number) => void, pre?: Preverified) {
    this.rs = new RecordStream(src, k);
    if (mode === 'meta' || pre) this.rs.readahead = META_READAHEAD;
    if (pre) this.rs.pre = pre;
    try {
      const parsed = parse(this.rs, mode, (vma, runs) => this.runsByVma.set(vma, runs), this, onProgress);
      this.model = parsed.model;
      this.stats = parsed.stats;
    } catch (e) {
      this.close();
      throw e;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.rs.release();
    for (const r of this.recRegions) if (r >= 0) releaseRegion(this.k, r);
    if (this.ownsSource) this.src.close();
  }

  private recRegion(slot: number): number {
    if (this.recRegions[slot]! < 0) this.recRegions[slot] = claimRegion(this.k, MAX_PAGES_PAYLOAD + RECORD_HEADER_BYTES + 8);
    return this.recRegions[slot]!;
  }

  /**
   * Start reading PAGES record r into the region of `slot`, off the calling thread when the source can (a file: the
   * libuv thread pool); a later loadRun(r, slot) verifies it without reading it again. Until the promise settles,
   * nothing may use that slot or grow the kernels' memory.
   */
  fetchRun(r: PageRec, slot: 0 | 1): Promise<void> {
    if (this.closed) return Promise.reject(new CrimgError('IO', 'image is closed'));
    this.loaded[slot] = null;
    this.fetched[slot] = null;
    const total = RECORD_HEADER_BYTES + pad8(r.len);
    const at = this.recRegion(slot);
    const dst = this.k.u8().subarray(at, at + total);
    const p = this.src.preadAsync ? this.src.preadAsync(dst, r.off) : Promise.resolve(this.src.pread(dst, r.off));
    return p.then((got) => {
      if (got < total) throw new CrimgError('TRUNCATED', 'image shrank while open', { offset: r.off });
      this.fetched[slot] = r;
    });
  }

  /** Read (unless fetchRun did) and verify one PAGES record; returns pointers to its stored pages and bitmap. */
  loadRun(r: PageRec, slot: 0 | 1 = 0): { data: number; bitmap: number } {
    if (this.closed) throw new CrimgError('IO', 'image is closed');
    if (this.loaded[slot] === r) return this.loadedAt[slot]!;
    this.loaded[slot] = null;
    const total = RECORD_HEADER_BYTES + pad8(r.len);
    const at = this.recRegion(slot);
    if (this.fetched[slot] !== r) {
      const got = this.src.pread(this.k.u8().subarray(at, at + total), r.off);
      if (got < total) throw new CrimgError('TRUNCATED', 'image shrank while open', { offset: r.off });
    }
    this.fetched[slot] = null;
    const m = this.k.u8();
    const dv = new DataView(m.buffer, m.byteOffset + at, RECORD_HEADER_BYTES + 16);
    if (dv.getUint16(0, true) !== K.PAGES || dv.getUint32(4, true) !== r.len || dv.getBigUint64(8, true) !== r.csum
      || dv.getBigUint64(16, true) !== r.addr || dv.getUint32(24, true) !== r.npages) {
      throw new CrimgError('CHECKSUM_MISMATCH', 'PAGES record changed since the image was opened', { offset: r.off, kind: K.PAGES });
    }
    const hs = claimSlot(this.k);
    try {
      this.k.xxh3Update(hs, at + RECORD_HEADER_BYTES, pad8(r.len));
      this.k.xxh3Update(hs, at, 8);
      if (this.k.xxh3Digest(hs) !== r.csum) {
        throw new CrimgError('CHECKSUM_MISMATCH', 'PAGES record checksum does not match', { offset: r.off, kind: K.PAGES });
      }
    } finally { releaseSlot(this.k, hs); }
    const data = at + RECORD_HEADER_BYTES + 16;
    const bitmap = data + r.nstored * PAGE_SIZE;
    checkPagesPayload(m, at + RECORD_HEADER_BYTES, bitmap, { kind: K.PAGES, flags: 0, len: r.len, off: r.off, ptr: 0, csum: r.csum }, r.npages, 0);
    this.loaded[slot] = r;
    this.loadedAt[slot] = { data, bitmap };
    return this.loadedAt[slot]!;
  }

  /** The PAGES records of a VMA of this image. */
  runsOf(vma: Vma): PageRec[] { return this.runsByVma.get(vma) ?? []; }

  /** Copy pages [first, first+n) of the VMA (relative) into kernel memory at dst; absent and zero pages read as 0. */
  readVmaPages(vma: Vma, dst: number, first: number, n: number): void {
    const k = this.k;
    const runs = this.runsOf(vma);
    const lo = vma.start + BigInt(first * PAGE_SIZE);
    const hi = lo + BigInt(n * PAGE_SIZE);
    let z = 0; // pages of dst [0, z) are written
    const zero = (to: number): void => {
      if (to > z) { k.u8().fill(0, dst + z * PAGE_SIZE, dst + to * PAGE_SIZE); z = to; }
    };
    for (let i = lowerRun(runs, lo); i < runs.length; i++) {
      const r = runs[i]!;
      if (r.addr >= hi) break;
      const { data, bitmap } = this.loadRun(r);
      // the run's first page, counted from `lo` (negative when the run starts before it); addresses are page aligned
      const rel = Number((r.addr - lo) / 4096n);
      const p0 = Math.max(0, -rel), p1 = Math.min(r.npages, n - rel);
      zero(rel + p0);
      if (p0 === 0 && p1 === r.npages) {
        k.pagesUnpack(data, bitmap, r.npages, dst + rel * PAGE_SIZE);
      } else {
        zero(rel + p1);
        const m = k.u8();
        const bdv = new DataView(m.buffer, m.byteOffset + bitmap, Math.ceil(r.npages / 64) * 8);
        let stored = 0;
        for (let p = 0; p < p1; p++) {
          const bit = (bdv.getUint32((p >> 5) * 4, true) >>> (p & 31)) & 1;
          if (bit && p >= p0) m.copyWithin(dst + (rel + p) * PAGE_SIZE, data + stored * PAGE_SIZE, data + (stored + 1) * PAGE_SIZE);
          stored += bit;
        }
      }
      z = rel + p1;
    }
    zero(n);
  }

  /** Bytes of task `pid`'s memory at [addr, addr+len): zero-filled for elided and absent pages. */
  readMemory(pid: number, addr: bigint, len: number): Uint8Array {
    const task = this.model.tasks.find((t) => t.pid === pid) ?? this.model.tasks.find((t) => t.threads.some((th) => th.tid === pid));
    if (!task) throw new CrimgError('NOT_FOUND', `no task with pid ${pid} in the image`);
    if (!task.mm) throw new CrimgError('UNMAPPED', `task ${pid} has no address space`);
    const out = new Uint8Array(len);
    const end = addr + BigInt(len);
    let at = addr;
    const scratch = claimRegion(this.k, 64 * PAGE_SIZE);
    try {
      while (at < end) {
        const vma = task.mm.vmas.find((v) => v.start <= at && at < v.end);
        if (!vma) throw new CrimgError('UNMAPPED', `address 0x${at.toString(16)} is not mapped in task ${pid}`);
        const stop = end < vma.end ? end : vma.end;
        while (at < stop) {
          const pageAddr = at & ~0xfffn;
          const first = Number((pageAddr - vma.start) / 4096n);
          const lastPage = Number(((stop - 1n) & ~0xfffn) - vma.start) / 4096;
          const n = Math.min(64, lastPage - first + 1);
          this.readVmaPages(vma, scratch, first, n);
          const chunkEnd = pageAddr + BigInt(n * PAGE_SIZE) < stop ? pageAddr + BigInt(n * PAGE_SIZE) : stop;
          const from = scratch + Number(at - pageAddr);
          const cnt = Number(chunkEnd - at);
          out.set(this.k.u8().subarray(from, from + cnt), Number(at - addr));
          at = chunkEnd;
        }
      }
    } finally { releaseRegion(this.k, scratch); }
    return out;
  }
}

function lowerRun(runs: PageRec[], addr: bigint): number {
  // first run whose end is above addr
  let lo = 0, hi = runs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const r = runs[mid]!;
    if (r.addr + BigInt(r.npages * PAGE_SIZE) <= addr) lo = mid + 1; else hi = mid;
  }
  return lo;
}

/** Pages of a VMA stored in an open image. */
class ImagePageSource implements PageSource {
  constructor(private readonly img: Image, private readonly vma: () => Vma) {}
  runs(): Iterable<[number, number]> {
    const v = this.vma();
    return this.img.runsOf(v).map((r) => [Number((r.addr - v.start) / BigInt(PAGE_SIZE)), r.npages] as [number, number]);
  }
  read(k: Kernels, dst: number, first: number, n: number): void {
    if (k !== this.img.k) {
      const tmp = claimRegion(this.img.k, n * PAGE_SIZE);
      try {
        this.img.readVmaPages(this.vma(), tmp, first, n);
        k.u8().set(this.img.k.u8().subarray(tmp, tmp + n * PAGE_SIZE), dst);
      } finally { releaseRegion(this.img.k, tmp); }
      return;
    }
    this.img.readVmaPages(this.vma(), dst, first, n);
  }
}

// ---------------------------------------------------------------- grammar

interface Parsed { model: Model; stats: ImageStats }

/** ITIMERS triples -> Itimer[], checked: which 0..2, ascending, in use (interval or remaining time not 0). */
function itimersOf(r: Rec, v: bigint[], bad: (r: Rec, why: string) => never): Itimer[] {
  if (v.length % 3) bad(r, `${v.length} values are not (which, interval, remaining) triples`);
  const out: Itimer[] = [];
  for (let i = 0; i < v.length; i += 3) {
    if (v[i]! > 2n) bad(r, `interval timer ${v[i]} is none of ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF`);
    const which = Number(v[i]!);
    if (out.length && which <= out[out.length - 1]!.which) bad(r, `interval timer ${which} out of order`);
    if (v[i + 1] === 0n && v[i + 2] === 0n) bad(r, `interval timer ${which} recorded disarmed`);
    out.push({ which, intervalUs: v[i + 1]!, valueUs: v[i + 2]! });
  }
  return out;
}

/** POSIX_TIMERS octuples -> PosixTimer[], checked: ids ascending, known clock and notify, signal 1..64 (0 with
 *  SIGEV_NONE), a tid with SIGEV_THREAD_ID only (that it is a thread of the task is checked after the threads). */
function posixTimersOf(r: Rec, v: bigint[], bad: (r: Rec, why: string) => never): PosixTimer[] {
  if (v.length % 8) bad(r, `${v.length} values are not (id, clock, notify, tid, signal, value, interval, remaining) octuples`);
  const out: PosixTimer[] = [];
  for (let i = 0; i < v.length; i += 8) {
    const [id, clock, notify, tid, signo] = [v[i]!, BigInt.asIntN(64, v[i + 1]!), v[i + 2]!, v[i + 3]!, v[i + 4]!];
    if (id > 0x7fffffffn) bad(r, `POSIX timer id ${id} out of range`);
    if (out.length && Number(id) <= out[out.length - 1]!.id) bad(r, `POSIX timer ${id} out of order`);
    if (!POSIX_TIMER_CLOCKS.includes(Number(clock))) bad(r, `POSIX timer ${id}: clock ${clock} is not one a timer can be restored on`);
    if (notify !== BigInt(SIGEV.SIGNAL) && notify !== BigInt(SIGEV.NONE) && notify !== BigInt(SIGEV.THREAD_ID)) bad(r, `POSIX timer ${id}: notify ${notify} is none of SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID`);
    if ((notify === BigInt(SIGEV.THREAD_ID)) !== (tid !== 0n) || tid > 0x7fffffffn) bad(r, `POSIX timer ${id}: notify tid ${tid} with notify ${notify}`);
    if (signo > 64n || (signo === 0n && notify !== BigInt(SIGEV.NONE))) bad(r, `POSIX timer ${id}: signal ${signo}`);
    out.push({ id: Number(id), clock: Number(clock), notify: Number(notify), notifyTid: Number(tid), signo: Number(signo), sigevValue: v[i + 5]!, intervalNs: v[i + 6]!, valueNs: v[i + 7]! });
  }
  return out;
}

/** FLOCKS quadruples -> FileLock[], checked: known kind and type, start <= end, flock over the whole file, a
 *  regular file or directory. */
function locksOf(r: Rec, v: bigint[], f: OpenFile, bad: (r: Rec, why: string) => never): FileLock[] {
  if (v.length % 4 || !v.length) bad(r, `${v.length} values are not (kind, type, start, end) quadruples`);
  if (f.kind !== FdKind.REGULAR && f.kind !== FdKind.DIRECTORY) bad(r, `locks on fd ${f.fd}, which is not a regular file or directory`);
  const out: FileLock[] = [];
  for (let i = 0; i < v.length; i += 4) {
    const [kind, type, start, end] = [v[i]!, v[i + 1]!, v[i + 2]!, v[i + 3]!];
    if (kind < 1n || kind > 3n) bad(r, `fd ${f.fd}: lock kind ${kind} is none of flock, POSIX, OFD`);
    if (type > 1n) bad(r, `fd ${f.fd}: lock type ${type} is neither read nor write`);
    if (start > end || start > 0x7fffffffffffffffn || (end !== LOCK_EOF && end > 0x7fffffffffffffffn)) bad(r, `fd ${f.fd}: lock range ${start}..${end}`);
    if (kind === BigInt(LOCK_KIND.FLOCK) && (start !== 0n || end !== LOCK_EOF)) bad(r, `fd ${f.fd}: a flock lock covers the whole file`);
    out.push({ kind: Number(kind), write: type === 1n, start, end });
  }
  return out;
}

/** A PIPE record -> PipeEnd, checked: a file of kind other, end 0/1, capacity a power of two >= 4096, the bytes
 *  within it. Files come in fd order, so the first of a pipe is its lowest fd. */
function pipeOf(r: Rec, f: Fields, file: OpenFile, bad: (r: Rec, why: string) => never): PipeEnd {
  const end = f.end as number, size = f.size as number, data = f.data as Uint8Array;
  if (file.kind !== FdKind.OTHER) bad(r, `fd ${file.fd} is a regular file or directory`);
  if (end > 1) bad(r, `fd ${file.fd}: pipe end ${end}`);
  if (size < 4096 || (size & (size - 1)) !== 0) bad(r, `fd ${file.fd}: pipe capacity ${size}`);
  if (data.length > size) bad(r, `fd ${file.fd}: ${data.length} bytes buffered in a pipe of ${size}`);
  const pe: PipeEnd = { ino: f.pipeIno as bigint, write: end === 1, size };
  if (data.length) pe.data = data;
  return pe;
}

/** A TCP_LISTEN record -> TcpListen, checked: a file of kind other, AF_INET with 4 address bytes or AF_INET6 with 16,
 *  a port, known option bits. */
function tcpListenOf(r: Rec, f: Fields, file: OpenFile, bad: (r: Rec, why: string) => never): TcpListen {
  const family = f.family as number, addr = f.addr as Uint8Array, port = f.port as number, opts = f.opts as number;
  if (file.kind !== FdKind.OTHER) bad(r, `fd ${file.fd} is a regular file or directory`);
  if (!((family === 2 && addr.length === 4) || (family === 10 && addr.length === 16))) bad(r, `fd ${file.fd}: family ${family} with a ${addr.length}-byte address`);
  if (port < 1 || port > 65535 || opts > 7) bad(r, `fd ${file.fd}: port ${port}, options ${opts}`);
  return { family, addr, port, backlog: f.backlog as number, opts };
}

/** An INOTIFY record -> InotifyWatch[], checked: a file of kind other, one path per (wd, mask), wds ascending. */
function inotifyOf(r: Rec, f: Fields, file: OpenFile, bad: (r: Rec, why: string) => never): InotifyWatch[] {
  const v = f.watches as bigint[], paths = f.paths as string[];
  if (file.kind !== FdKind.OTHER) bad(r, `fd ${file.fd} is a regular file or directory`);
  if (v.length % 2 || v.length / 2 !== paths.length) bad(r, `fd ${file.fd}: ${v.length} values and ${paths.length} paths are not (wd, mask) pairs with a path each`);
  const out: InotifyWatch[] = [];
  for (let i = 0; i < v.length; i += 2) {
    const wd = v[i]!, mask = v[i + 1]!, path = paths[i / 2]!;
    if (wd < 1n || wd > 0x7fffffffn || (out.length && Number(wd) <= out[out.length - 1]!.wd)) bad(r, `fd ${file.fd}: wd ${wd} out of order`);
    if (mask > 0xffffffffn || !path.startsWith('/')) bad(r, `fd ${file.fd}: watch ${wd} with mask ${mask} on '${path}'`);
    out.push({ wd: Number(wd), mask: Number(mask), path });
  }
  return out;
}

/** A UNIX_PAIR record -> UnixPairEnd, checked: a file of kind other, known type, bytes only for a stream pair. */
function unixPairOf(r: Rec, f: Fields, file: OpenFile, bad: (r: Rec, why: string) => never): UnixPairEnd {
  const type = f.sockType as number, second = f.second as number, data = f.data as Uint8Array;
  if (file.kind !== FdKind.OTHER) bad(r, `fd ${file.fd} is a regular file or directory`);
  if (second > 1) bad(r, `fd ${file.fd}: socket ${second} of a pair`);
  if (type !== 1 && type !== 2 && type !== 5) bad(r, `fd ${file.fd}: socket type ${type} is none of stream, datagram, seqpacket`);
  if (data.length && type !== 1) bad(r, `fd ${file.fd}: bytes queued to a socket of type ${type}`);
  const u: UnixPairEnd = { pair: f.pairId as bigint, second: second === 1, type };
  if (data.length) u.data = data;
  return u;
}

/** An ANON_FD record -> AnonFd, checked: a file of kind other, known kind, the number of values and their ranges. */
function anonOf(r: Rec, f: Fields, file: OpenFile, bad: (r: Rec, why: string) => never): AnonFd {
  const kind = f.anonKind as number, v = f.values as bigint[];
  if (f.reserved !== 0) bad(r, 'reserved field not zero');
  if (file.kind !== FdKind.OTHER) bad(r, `fd ${file.fd} is a regular file or directory`);
  const want = { [ANON_KIND.EVENTFD]: 2, [ANON_KIND.TIMERFD]: 5, [ANON_KIND.SIGNALFD]: 1 }[kind];
  if (kind === ANON_KIND.EPOLL) {
    if (v.length % 3) bad(r, `fd ${file.fd}: ${v.length} values are not (fd, events, data) triples`);
    for (let i = 0; i < v.length; i += 3) if (v[i]! > 0x7fffffffn || v[i + 1]! > 0xffffffffn) bad(r, `fd ${file.fd}: watch of fd ${v[i]} with events ${v[i + 1]}`);
  } else if (want === undefined) {
    bad(r, `fd ${file.fd}: anonymous file kind ${kind} is none of eventfd, timerfd, signalfd, epoll`);
  } else if (v.length !== want) {
    bad(r, `fd ${file.fd}: ${v.length} values for a kind ${kind} file, expected ${want}`);
  }
  if (kind === ANON_KIND.EVENTFD && (v[0]! >= 0xffffffffffffffffn || v[1]! > 1n)) bad(r, `fd ${file.fd}: eventfd count ${v[0]} / semaphore ${v[1]}`);
  if (kind === ANON_KIND.TIMERFD && (![0n, 1n, 7n, 8n, 9n].includes(v[0]!) || v[1]! > 3n)) bad(r, `fd ${file.fd}: timerfd clock ${v[0]} / flags ${v[1]}`);
  return { kind, values: v };
}

/** SIGACTS quintuples -> SigAction[], checked: signals 1..64, ascending, no SIG_DFL entries. */
function sigactionsOf(r: Rec, v: bigint[], bad: (r: Rec, why: string) => never): SigAction[] {
  if (v.length % 5) bad(r, `${v.length} values are not (signal, handler, flags, restorer, mask) quintuples`);
  const out: SigAction[] = [];
  for (let i = 0; i < v.length; i += 5) {
    const sig = Number(v[i]);
    if (v[i]! < 1n || v[i]! > 64n) bad(r, `signal ${v[i]} out of range 1..64`);
    if (out.length && sig <= out[out.length - 1]!.sig) bad(r, `signal ${sig} out of order`);
    if (v[i + 1] === 0n) bad(r, `signal ${sig} recorded with SIG_DFL`);
    out.push({ sig, handler: v[i + 1]!, flags: v[i + 2]!, restorer: v[i + 3]!, mask: v[i + 4]! });
  }
  return out;
}

function parse(rs: RecordStream, mode: ReadMode, setRuns: (v: Vma, r: PageRec[]) => void, img: Image, onProgress?: (offset: number) => void): Parsed {
  const k = rs.k;
  rs.magic();
  let pending: Rec | null = null;
  const skipPages = (kind: number): boolean => mode === 'meta' && kind === K.PAGES;
  const nextKnown = (): Rec | null => {
    if (pending) { const p = pending; pending = null; return p; }
    for (;;) {
      const r = rs.next(skipPages);
      if (!r) return null;
      if (RECORD_BY_KIND.has(r.kind)) return r;
      if (r.flags & RF_MUST_UNDERSTAND) throw new CrimgError('BAD_RECORD', `unknown record kind ${kindName(r.kind)} marked must-understand`, { offset: r.off, kind: r.kind });
    }
  };
  const expect = (kind: number, context: string): Rec => {
    const r = nextKnown();
    if (!r) throw new CrimgError('TRUNCATED', `image ends where a ${kindName(kind)} record is expected (${context})`, { offset: rs.pos });
    if (r.kind !== kind) throw new CrimgError('BAD_RECORD', `expected a ${kindName(kind)} record (${context}), found ${kindName(r.kind)}`, { offset: r.off, kind: r.kind });
    return r;
  };
  const fields = (r: Rec): Fields => {
    const def = RECORD_BY_KIND.get(r.kind)!;
    return decodeFields(def, k.u8().subarray(r.ptr, r.ptr + r.len), r.off + RECORD_HEADER_BYTES);
  };
  const bad = (r: Rec, why: string): never => { throw new CrimgError('BAD_RECORD', `${kindName(r.kind)} record: ${why}`, { offset: r.off, kind: r.kind }); };

  const hr = expect(K.HEADER, 'first record');
  const h = fields(hr);
  if (h.checksumAlgo !== CHECKSUM_XXH3_64) bad(hr, `unknown checksum algorithm ${h.checksumAlgo}`);
  if (h.pageSize !== PAGE_SIZE) bad(hr, `page size ${h.pageSize} is not 4096`);
  const model: Model = {
    header: {
      crid: h.crid as bigint, createdNs: h.createdNs as bigint, freezeNs: h.freezeNs as bigint, flags: h.flags as number, tool: h.tool as string,
      uts: {
        sysname: h.sysname as string, nodename: h.nodename as string, release: h.release as string,
        version: h.version as string, machine: h.machine as string, domainname: h.domainname as string,
      },
    },
    namespaces: [],
    tasks: [],
  };
  const stats: ImageStats = {
    fileBytes: rs.src.size, records: 0, pageRecords: 0, pagesStored: 0, pagesZero: 0, pageBytes: 0, metaBytes: 0, imageCsum: 0n, tasks: [],
  };
  for (let i = 0; i < (h.nns as number); i++) {
    const r = expect(K.NS, `namespace ${i} of ${h.nns}`);
    const f = fields(r);
    const kind = NS_KINDS[f.nsKind as number];
    if (!kind) bad(r, `namespace kind ${f.nsKind} unknown`);
    const ns: Namespace = { kind: kind!, id: f.id as bigint };
    if ((f.nsFlags as number) & 1) { ns.nodename = f.nodename as string; ns.domainname = f.domainname as string; }
    if ((f.nsFlags as number) & ~1) bad(r, `reserved namespace flags ${f.nsFlags}`);
    model.namespaces.push(ns);
  }
  const allRuns: { pid: number; r: PageRec }[] = [];
  const pids = new Set<number>();
  for (let ti = 0; ti < (h.ntasks as number); ti++) {
    const tr = expect(K.TASK, `task ${ti} of ${h.ntasks}`);
    const tf = fields(tr);
    if (pids.has(tf.pid as number)) bad(tr, `duplicate pid ${tf.pid}`);
    pids.add(tf.pid as number);
    const c = fields(expect(K.CREDS, 'after TASK')) as unknown as Credentials;
    const rlr = expect(K.RLIMITS, 'after CREDS');
    const rl = fields(rlr).limits as bigint[];
    if (rl.length % 2) bad(rlr, 'odd number of limit values');
    const ns = fields(expect(K.NSIDS, 'after RLIMITS')) as unknown as NamespaceIds;
    const task: Task = {
      pid: tf.pid as number, tgid: tf.tgid as number, ppid: tf.ppid as number, pgid: tf.pgid as number, sid: tf.sid as number,
      comm: tf.comm as string, exe: tf.exe as string, cwd: tf.cwd as string, root: tf.root as string,
      args: tf.args as string[], env: tf.env as string[], personality: tf.personality as number, exitSignal: tf.exitSignal as number,
      creds: {
        uid: c.uid, gid: c.gid, euid: c.euid, egid: c.egid, suid: c.suid, sgid: c.sgid, fsuid: c.fsuid, fsgid: c.fsgid, groups: c.groups,
        capInh: c.capInh, capPrm: c.capPrm, capEff: c.capEff, capBnd: c.capBnd, capAmb: c.capAmb,
        securebits: c.securebits, noNewPrivs: c.noNewPrivs, seccompMode: c.seccompMode,
      },
      rlimits: Array.from({ length: rl.length / 2 }, (_, i) => ({ cur: rl[2 * i]!, max: rl[2 * i + 1]! })),
      ns: { uts: ns.uts, ipc: ns.ipc, mnt: ns.mnt, pid: ns.pid, net: ns.net, user: ns.user, cgroup: ns.cgroup, time: ns.time },
      threads: [], mm: null, files: [], nocr: [],
    };
    // optional task records, each at most once, in this order
    let ptRec: Rec | null = null;
    for (let opt = nextKnown(), want = 0; ; opt = nextKnown()) {
      if (opt && opt.kind === K.SIGACTS && want <= 0) { task.sigactions = sigactionsOf(opt, fields(opt).actions as bigint[], bad); want = 1; continue; }
      if (opt && opt.kind === K.ITIMERS && want <= 1) { task.itimers = itimersOf(opt, fields(opt).timers as bigint[], bad); want = 2; continue; }
      if (opt && opt.kind === K.POSIX_TIMERS && want <= 2) { task.posixTimers = posixTimersOf(opt, fields(opt).timers as bigint[], bad); ptRec = opt; want = 3; continue; }
      pending = opt;
      break;
    }
    const tids = new Set<number>();
    for (let i = 0; i < (tf.nthreads as number); i++) {
      const thr = expect(K.THREAD, `thread ${i} of ${tf.nthreads} of task ${task.pid}`);
      const f = fields(thr);
      if (tids.has(f.tid as number)) bad(thr, `duplicate tid ${f.tid}`);
      tids.add(f.tid as number);
      if ((f.thFlags as number) & ~3) bad(thr, `reserved thread flags ${f.thFlags}`);
      const rr = expect(K.REGS, 'after THREAD');
      const regs = new BigUint64Array(27);
      new Uint8Array(regs.buffer).set(k.u8().subarray(rr.ptr, rr.ptr + 216));
      const fr = expect(K.FPU, 'after REGS');
      const fpu = k.u8().slice(fr.ptr, fr.ptr + 512);
      const th: Thread = {
        tid: f.tid as number, regs, fpu, xstate: null, sigmask: f.sigmask as bigint, sigpending: f.sigpending as bigint,
        rseq: (f.thFlags as number) & 2 ? { ptr: f.rseqPtr as bigint, len: f.rseqLen as number, sig: f.rseqSig as number, flags: f.rseqFlags as number } : null,
        state: f.state as string,
      };
      if ((f.thFlags as number) & 1) {
        const xf = fields(expect(K.XSTATE, 'after FPU (thread flags say XSTATE follows)'));
        th.xstate = { xcr0: xf.xcr0 as bigint, ext: xf.ext as Uint8Array };
      }
      // optional thread records, each at most once, in this order
      for (let opt = nextKnown(), want = 0; ; opt = nextKnown()) {
        if (opt && opt.kind === K.FUTEX && want <= 0) {
          const ff = fields(opt);
          th.futex = { clearChildTid: ff.clearChildTid as bigint, robustHead: ff.robustHead as bigint, robustLen: ff.robustLen as bigint };
          want = 1;
          continue;
        }
        if (opt && opt.kind === K.SIGALTSTACK && want <= 1) {
          const sf = fields(opt);
          if (sf.reserved !== 0) bad(opt, 'reserved field not zero');
          th.sigaltstack = { sp: sf.sp as bigint, size: sf.size as bigint, flags: sf.ssFlags as number };
          want = 2;
          continue;
        }
        pending = opt;
        break;
      }
      task.threads.push(th);
    }
    for (const pt of task.posixTimers ?? []) {
      if (pt.notify === SIGEV.THREAD_ID && !tids.has(pt.notifyTid)) bad(ptRec!, `POSIX timer ${pt.id} notifies thread ${pt.notifyTid}, which is not a thread of task ${task.pid}`);
    }
    const tstats: TaskStats = { pid: task.pid, vmas: [] };
    stats.tasks.push(tstats);
    if (tf.hasMm) {
      if (tf.hasMm !== 1) bad(tr, `hasMm ${tf.hasMm}`);
      const mr = expect(K.MM, `address space of task ${task.pid}`);
      const mf = fields(mr);
      const auxv = mf.auxv as bigint[];
      if (auxv.length % 2) bad(mr, 'odd auxv length');
      const mm = { auxv, vmas: [] as Vma[] } as unknown as Mm;
      for (const n of MM_FIELD_NAMES) (mm as unknown as Record<string, bigint>)[n] = mf[n] as bigint;
      let prevEnd = 0n;
      for (let i = 0; i < (mf.nvmas as number); i++) {
        const vr = expect(K.VMA, `VMA ${i} of ${mf.nvmas} of task ${task.pid}`);
        const vf = fields(vr);
        const start = vf.start as bigint, end = vf.end as bigint;
        if (start % 4096n || end % 4096n || start >= end) bad(vr, `range 0x${start.toString(16)}-0x${end.toString(16)} is empty or not page aligned`);
        if (start < prevEnd) bad(vr, `VMA 0x${start.toString(16)} overlaps or precedes the previous one`);
        if ((vf.prot as number) & ~7) bad(vr, `prot ${vf.prot}`);
        prevEnd = end;
        const runs: PageRec[] = [];
        const vma: Vma = {
          start, end, prot: vf.prot as number, flags: vf.vmaFlags as number, pgoff: vf.pgoff as bigint,
          devMajor: vf.devMajor as number, devMinor: vf.devMinor as number, inode: vf.inode as bigint, path: vf.path as string | null,
          pages: undefined as unknown as PageSource,
        };
        vma.pages = new ImagePageSource(img, () => vma);
        const vs: VmaStats = { start, end, path: vma.path, pages: Number((end - start) / 4096n), stored: 0, zero: 0 };
        let at = start;
        for (;;) {
          const pr = nextKnown();
          if (!pr) break;
          if (pr.kind !== K.PAGES) { pending = pr; break; }
          onProgress?.(pr.off);
          let addr: bigint, npages: number, pflags: number, nstored: number;
          if (pr.ptr >= 0 || pr.streamed) {
            const head = pr.streamed ? pr.streamed.head : pr.ptr;
            const endPtr = pr.streamed ? pr.streamed.end : pr.ptr + pr.len;
            const m = k.u8();
            const dv = new DataView(m.buffer, m.byteOffset + head, 16);
            addr = dv.getBigUint64(0, true); npages = dv.getUint32(8, true); pflags = dv.getUint32(12, true);
            const bmBytes = Math.ceil(Math.min(Math.max(npages, 1), MAX_RUN_PAGES) / 64) * 8;
            nstored = checkPagesPayload(m, head, endPtr - bmBytes, pr, npages, pflags);
          } else {
            let p = rs.ensure(pr.off + RECORD_HEADER_BYTES, 16);
            let m = k.u8();
            const dv = new DataView(m.buffer, m.byteOffset + p, 16);
            addr = dv.getBigUint64(0, true); npages = dv.getUint32(8, true); pflags = dv.getUint32(12, true);
            const bmBytes = Math.ceil(Math.min(Math.max(npages, 1), MAX_RUN_PAGES) / 64) * 8;
            if (pr.len < 16 + bmBytes) bad(pr, `length ${pr.len} too short for ${npages} pages`);
            // the bitmap, the next record's header and fixed part: page runs are walked one small read per record
            p = rs.ensure(pr.off + RECORD_HEADER_BYTES + pr.len - bmBytes, bmBytes, bmBytes + 8 + 2 * RECORD_HEADER_BYTES);
            m = k.u8();
            nstored = checkPagesPayload(m, -1, p, pr, npages, pflags);
          }
          if (addr % 4096n || addr < at || addr + BigInt(npages * PAGE_SIZE) > end) {
            bad(pr, `run at 0x${addr.toString(16)} of ${npages} pages is outside its VMA or not in ascending order`);
          }
          at = addr + BigInt(npages * PAGE_SIZE);
          const rec: PageRec = { addr, npages, nstored, off: pr.off, len: pr.len, csum: pr.csum };
          runs.push(rec);
          allRuns.push({ pid: task.pid, r: rec });
          vs.stored += nstored; vs.zero += npages - nstored;
          stats.pageRecords++; stats.pagesStored += nstored; stats.pagesZero += npages - nstored;
        }
        setRuns(vma, runs);
        tstats.vmas.push(vs);
        mm.vmas.push(vma);
      }
      task.mm = mm;
    }
    const fds = new Set<number>();
    const anonRecs = new Map<OpenFile, Rec>();
    const pipeRecs = new Map<OpenFile, Rec>();
    const pairRecs = new Map<OpenFile, Rec>();
    for (let i = 0; i < (tf.nfiles as number); i++) {
      const r = expect(K.FD, `file ${i} of ${tf.nfiles} of task ${task.pid}`);
      const f = fields(r);
      if (fds.has(f.fd as number)) bad(r, `duplicate fd ${f.fd}`);
      fds.add(f.fd as number);
      if ((f.fdKind as number) > 2) bad(r, `fd kind ${f.fdKind}`);
      const file: OpenFile = {
        fd: f.fd as number, kind: f.fdKind as number, path: f.path as string, flags: f.flags as number, pos: f.pos as bigint,
        mode: f.mode as number, cloexec: f.cloexec !== 0, devMajor: f.devMajor as number, devMinor: f.devMinor as number,
        inode: f.inode as bigint, size: f.size as bigint,
      };
      let opt = nextKnown();
      if (opt && opt.kind === K.FLOCKS) { file.locks = locksOf(opt, fields(opt).locks as bigint[], file, bad); opt = nextKnown(); }
      if (opt && opt.kind === K.ANON_FD) { file.anon = anonOf(opt, fields(opt), file, bad); anonRecs.set(file, opt); opt = nextKnown(); }
      if (opt && opt.kind === K.PIPE) { file.pipe = pipeOf(opt, fields(opt), file, bad); pipeRecs.set(file, opt); opt = nextKnown(); }
      if (opt && opt.kind === K.TCP_LISTEN) { file.tcpListen = tcpListenOf(opt, fields(opt), file, bad); opt = nextKnown(); }
      if (opt && opt.kind === K.INOTIFY) { file.inotify = inotifyOf(opt, fields(opt), file, bad); opt = nextKnown(); }
      if (opt && opt.kind === K.UNIX_PAIR) { file.unixPair = unixPairOf(opt, fields(opt), file, bad); pairRecs.set(file, opt); opt = nextKnown(); }
      pending = opt;
      task.files.push(file);
    }
    // the buffered bytes of a pipe are on its lowest fd, which has the pipe's capacity like its other fds
    const pipeFirst = new Map<bigint, OpenFile>();
    for (const [file, r] of pipeRecs) {
      const first = pipeFirst.get(file.pipe!.ino);
      if (!first) { pipeFirst.set(file.pipe!.ino, file); continue; }
      if (file.pipe!.data?.length) bad(r, `fd ${file.fd} carries bytes of pipe ${file.pipe!.ino}, whose lowest fd is ${first.fd}`);
      if (file.pipe!.size !== first.pipe!.size) bad(r, `fd ${file.fd} gives pipe ${file.pipe!.ino} capacity ${file.pipe!.size}, fd ${first.fd} ${first.pipe!.size}`);
    }
    // a socket pair has both sockets, of one type; the queued bytes of a socket are on its first fd
    const sockFirst = new Map<string, OpenFile>();
    for (const [file, r] of pairRecs) {
      const u = file.unixPair!;
      const key = `${u.pair}:${u.second}`;
      const first = sockFirst.get(key);
      if (!first) sockFirst.set(key, file);
      else if (u.data?.length) bad(r, `fd ${file.fd} carries bytes queued to a socket whose first fd is ${first.fd}`);
      const other = [...pairRecs.keys()].find((x) => x.unixPair!.pair === u.pair && x.unixPair!.second !== u.second);
      if (!other) return bad(r, `fd ${file.fd} is a socket of pair ${u.pair}, whose other socket the task does not have`);
      if (other.unixPair!.type !== u.type) bad(r, `fd ${file.fd}: the sockets of pair ${u.pair} differ in type`);
    }
    // an epoll watches fds of the task, none of them an epoll
    for (const [file, r] of anonRecs) {
      if (file.anon!.kind !== ANON_KIND.EPOLL) continue;
      const v = file.anon!.values;
      for (let i = 0; i < v.length; i += 3) {
        const t = task.files.find((x) => BigInt(x.fd) === v[i]);
        if (!t) return bad(r, `epoll fd ${file.fd} watches fd ${v[i]}, which the task does not have`);
        if (t.anon?.kind === ANON_KIND.EPOLL) bad(r, `epoll fd ${file.fd} watches another epoll (fd ${t.fd})`);
      }
    }
    for (let i = 0; i < (tf.nnocr as number); i++) {
      const f = fields(expect(K.NOCR, `nocr reason ${i} of task ${task.pid}`));
      task.nocr.push({ pid: f.pid as number, code: f.code as string, text: f.text as string } as NocrReason);
    }
    model.tasks.push(task);
  }
  const ir = expect(K.INDEX, 'after the last task');
  {
    const m = k.u8();
    const dv = new DataView(m.buffer, m.byteOffset + ir.ptr, ir.len);
    const count = dv.getUint32(0, true);
    if (dv.getUint32(4, true) !== 0) bad(ir, 'reserved field not zero');
    if (ir.len !== 8 + count * INDEX_ENTRY_BYTES) bad(ir, `length ${ir.len} does not hold ${count} entries`);
    if (count !== allRuns.length) bad(ir, `${count} entries, but the image has ${allRuns.length} PAGES records`);
    for (let i = 0; i < count; i++) {
      const o = 8 + i * INDEX_ENTRY_BYTES;
      const e = allRuns[i]!;
      if (dv.getInt32(o, true) !== e.pid || dv.getUint32(o + 4, true) !== e.r.npages || dv.getBigUint64(o + 8, true) !== e.r.addr
        || dv.getBigUint64(o + 16, true) !== BigInt(e.r.off)) {
        throw new CrimgError('BAD_RECORD', `INDEX entry ${i} does not match PAGES record at ${e.r.off}`, { offset: ir.off + RECORD_HEADER_BYTES + o, kind: K.INDEX });
      }
    }
  }
  const imageCsum = k.xxh3Digest(rs.imgSlot);
  const trr = expect(K.TRAILER, 'after INDEX');
  const t = fields(trr);
  if (t.tmagic !== TRAILER_MAGIC) throw new CrimgError('BAD_MAGIC', 'trailer magic is wrong', { offset: trr.off + RECORD_HEADER_BYTES, kind: K.TRAILER });
  if (t.records !== BigInt(rs.records - 1)) bad(trr, `trailer counts ${t.records} records, the image has ${rs.records - 1}`);
  if (t.indexOffset !== BigInt(ir.off)) bad(trr, `trailer puts INDEX at ${t.indexOffset}, it is at ${ir.off}`);
  if (t.imageCsum !== imageCsum) {
    throw new CrimgError('CHECKSUM_MISMATCH', `whole-image checksum 0x${imageCsum.toString(16)} does not match the trailer's 0x${(t.imageCsum as bigint).toString(16)}`, { offset: trr.off, kind: K.TRAILER });
  }
  if (rs.pos !== rs.src.size) throw new CrimgError('BAD_RECORD', `${rs.src.size - rs.pos} bytes follow the trailer`, { offset: rs.pos });
  stats.records = rs.records;
  stats.imageCsum = imageCsum;
  stats.pageBytes = stats.pagesStored * PAGE_SIZE;
  stats.metaBytes = stats.fileBytes - stats.pageBytes;
  return { model, stats };
}

// ---------------------------------------------------------------- API

/** Read and verify a whole image; pages are read lazily from the source afterwards. Close it when done. */
export function readImage(src: SourceTarget, opts: ReadOptions = {}): Image {
  const s = openSource(src);
  return new Image(s, opts.kernels ?? kernels(), opts.mode ?? 'full', s !== src, opts.onProgress);
}

/** Open an image for random access: metadata verified now, page records verified when read. */
export function openImage(src: SourceTarget, opts: ReadOptions = {}): Image {
  return readImage(src, { ...opts, mode: opts.mode ?? 'meta' });
}

export interface VerifyResult { ok: true; stats: ImageStats; seconds: number }

/**
 * verifyImage, faster on big files: a bulk pass checksums every record from large reads
 * that run off the main thread while the previous chunk is hashed, then the grammar walk
 * checks the structure, bitmaps, index and trailer reading only headers and bitmaps of
 * the page records the bulk pass verified. Same checks, same errors as verifyImage.
 * Sources without preadAsync (bytes, custom sources) and small files take one pass.
 */
export function verifyImageAsync(src: SourceTarget, opts: Omit<ReadOptions, 'mode'> = {}): Promise<VerifyResult> {
  return verifyBulk(src, opts, BULK_CHUNK, BULK_MIN);
}

/** @internal verifyImageAsync with the bulk pass's read size and size threshold chosen (tests). */
export async function verifyBulk(src: SourceTarget, opts: Omit<ReadOptions, 'mode'>, chunk: number, minSize: number): Promise<VerifyResult> {
  const t0 = now();
  const s = openSource(src);
  const owns = s !== src;
  try {
    const k = opts.kernels ?? kernels();
    const pre = s.preadAsync && s.size >= minSize ? await bulkPass(s, k, chunk, opts.onProgress) : undefined;
    const img = new Image(s, k, 'full', false, pre ? undefined : opts.onProgress, pre);
    img.close();
    return { ok: true, stats: img.stats, seconds: now() - t0 };
  } finally {
    if (owns) s.close();
  }
}

/** Check everything in an image without keeping the model. Throws CrimgError on the first problem. */
export function verifyImage(src: SourceTarget, opts: Omit<ReadOptions, 'mode'> = {}): VerifyResult {
  const t0 = now();
  const img = readImage(src, { ...opts, mode: 'full' });
  img.close();
  return { ok: true, stats: img.stats, seconds: now() - t0 };
}
