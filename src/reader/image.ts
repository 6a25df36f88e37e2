/**
 * An opened image: its model (from the grammar walk, ./grammar.ts) and random access to task memory, each PAGES
 * record verified again when it is read; and the entry points readImage, openImage, verifyImage.
 */
import { CrimgError } from '../errors.js';
import { now } from '../platform.js';
import { kernels } from '../kernels/index.js';
import type { Kernels } from '../kernels/api.js';
import { claimRegion, claimSlot, releaseRegion, releaseSlot } from '../kernels/arena.js';
import type { Model, PageSource, Vma } from '../model.js';
import { K, PAGE_SIZE, RECORD_HEADER_BYTES, pad8 } from '../schema.js';
import { type Source, type SourceTarget, openSource } from '../source.js';
import {
  BULK_CHUNK,
  BULK_MIN,
  MAX_PAGES_PAYLOAD,
  META_READAHEAD,
  type PageRec,
  type Preverified,
  RecordStream,
  bulkPass,
  checkPagesPayload,
} from './framing.js';
import { type ImageStats, type ReadMode, parse } from './grammar.js';

export type { ImageStats, ReadMode, TaskStats, VmaStats } from './grammar.js';

export interface ReadOptions {
  kernels?: Kernels;
  /** 'full' verifies every payload now (default for readImage/verifyImage); 'meta' defers page payloads. */
  mode?: ReadMode;
  /** Called as page records go by with the offset reached (for progress bars). */
  onProgress?: (offset: number) => void;
}

// ---------------------------------------------------------------- the image

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
  private readonly loadedAt = [
    { data: 0, bitmap: 0 },
    { data: 0, bitmap: 0 },
  ];
  /** Per slot: the run whose bytes fetchRun read there, not yet verified. */
  private readonly fetched: (PageRec | null)[] = [null, null];
  private readonly runsByVma = new Map<Vma, PageRec[]>();
  private closed = false;

  /** @internal */
  constructor(
    private readonly src: Source,
    readonly k: Kernels,
    mode: ReadMode,
    private readonly ownsSource: boolean,
    onProgress?: (offset: number) => void,
    pre?: Preverified,
  ) {
    this.rs = new RecordStream(src, k);
    if (mode === 'meta' || pre) this.rs.readahead = META_READAHEAD;
    if (pre) this.rs.pre = pre;
    try {
      const parsed = parse(this.rs, mode, {
        setRuns: (vma, runs) => {
          this.runsByVma.set(vma, runs);
        },
        pageSource: (vma) => new ImagePageSource(this, vma),
        onProgress,
      });
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
    if (
      dv.getUint16(0, true) !== K.PAGES
      || dv.getUint32(4, true) !== r.len
      || dv.getBigUint64(8, true) !== r.csum
      || dv.getBigUint64(16, true) !== r.addr
      || dv.getUint32(24, true) !== r.npages
    ) {
      throw new CrimgError('CHECKSUM_MISMATCH', 'PAGES record changed since the image was opened', { offset: r.off, kind: K.PAGES });
    }
    const hs = claimSlot(this.k);
    try {
      this.k.xxh3Update(hs, at + RECORD_HEADER_BYTES, pad8(r.len));
      this.k.xxh3Update(hs, at, 8);
      if (this.k.xxh3Digest(hs) !== r.csum) {
        throw new CrimgError('CHECKSUM_MISMATCH', 'PAGES record checksum does not match', { offset: r.off, kind: K.PAGES });
      }
    } finally {
      releaseSlot(this.k, hs);
    }
    const data = at + RECORD_HEADER_BYTES + 16;
    const bitmap = data + r.nstored * PAGE_SIZE;
    checkPagesPayload(
      m,
      at + RECORD_HEADER_BYTES,
      bitmap,
      { kind: K.PAGES, flags: 0, len: r.len, off: r.off, ptr: 0, csum: r.csum },
      r.npages,
      0,
    );
    this.loaded[slot] = r;
    this.loadedAt[slot] = { data, bitmap };
    return this.loadedAt[slot]!;
  }

  /** The PAGES records of a VMA of this image. */
  runsOf(vma: Vma): PageRec[] {
    return this.runsByVma.get(vma) ?? [];
  }

  /** Copy pages [first, first+n) of the VMA (relative) into kernel memory at dst; absent and zero pages read as 0. */
  readVmaPages(vma: Vma, dst: number, first: number, n: number): void {
    const k = this.k;
    const runs = this.runsOf(vma);
    const lo = vma.start + BigInt(first * PAGE_SIZE);
    const hi = lo + BigInt(n * PAGE_SIZE);
    let z = 0; // pages of dst [0, z) are written
    const zero = (to: number): void => {
      if (to > z) {
        k.u8().fill(0, dst + z * PAGE_SIZE, dst + to * PAGE_SIZE);
        z = to;
      }
    };
    for (let i = lowerRun(runs, lo); i < runs.length; i++) {
      const r = runs[i]!;
      if (r.addr >= hi) break;
      const { data, bitmap } = this.loadRun(r);
      // the run's first page, counted from `lo` (negative when the run starts before it); addresses are page aligned
      const rel = Number((r.addr - lo) / 4096n);
      const p0 = Math.max(0, -rel),
        p1 = Math.min(r.npages, n - rel);
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
    } finally {
      releaseRegion(this.k, scratch);
    }
    return out;
  }
}

function lowerRun(runs: PageRec[], addr: bigint): number {
  // first run whose end is above addr
  let lo = 0,
    hi = runs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const r = runs[mid]!;
    if (r.addr + BigInt(r.npages * PAGE_SIZE) <= addr) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Pages of a VMA stored in an open image. */
class ImagePageSource implements PageSource {
  constructor(
    private readonly img: Image,
    private readonly vma: () => Vma,
  ) {}
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
      } finally {
        releaseRegion(this.img.k, tmp);
      }
      return;
    }
    this.img.readVmaPages(this.vma(), dst, first, n);
  }
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

export interface VerifyResult {
  ok: true;
  stats: ImageStats;
  seconds: number;
}

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
export async function verifyBulk(
  src: SourceTarget,
  opts: Omit<ReadOptions, 'mode'>,
  chunk: number,
  minSize: number,
): Promise<VerifyResult> {
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
