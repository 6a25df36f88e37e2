/**
 * Streaming image writer: model -> records -> kernels (checksums, page packing)
 * -> sink. Records are assembled in the kernels' memory and handed to the sink
 * from there; page data is copied at most once (source -> packed record).
 * Memory use is bounded by OUT_CAP + one run of pages whatever the image size.
 */
import { CrimgError } from './errors.js';
import { kernels } from './kernels/index.js';
import { type Kernels, REGSET_RECORD_BYTES } from './kernels/api.js';
import { claimRegion, claimSlot, releaseRegion, releaseSlot } from './kernels/arena.js';
import {
  type Model, type Task, type Vma, NS_KINDS,
} from './model.js';
import {
  Builder, CHECKSUM_XXH3_64, FORMAT_MAJOR, FORMAT_MINOR, K, MAGIC, PAGE_SIZE, RECORD_BY_KIND, RUN_PAGES,
  RECORD_HEADER_BYTES, TRAILER_MAGIC, encodeFields, pad8, type Fields, INDEX_ENTRY_BYTES,
} from './schema.js';
import { type Sink, type SinkOptions, type SinkTarget, openSink } from './sink.js';
import { ARCH_X86_64 } from './model.js';

const OUT_CAP = 8 * 1024 * 1024;
const MAX_PAGES_RECORD = RECORD_HEADER_BYTES + 16 + RUN_PAGES * PAGE_SIZE + (RUN_PAGES / 64) * 8;

export interface WriteOptions extends SinkOptions {
  /** Kernels instance (default: the shared WebAssembly one). */
  kernels?: Kernels;
  /** Called after each run of pages with the bytes written so far. */
  onProgress?: (bytesWritten: number) => void;
}

export interface IndexEntry { pid: number; npages: number; addr: bigint; offset: number }

export interface WriteResult {
  bytes: number;
  records: number;
  pagesStored: number;
  pagesZero: number;
  imageCsum: bigint;
}

/** The 8-byte magic: "CRMG", u16 architecture (EM_X86_64), u8 major, u8 minor. */
export function magicBytes(): Uint8Array {
  return MAGIC_BYTES.slice();
}
const MAGIC_BYTES = ((): Uint8Array => {
  const b = new Uint8Array(8);
  b.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(b.buffer).setUint16(4, ARCH_X86_64, true);
  b[6] = FORMAT_MAJOR; b[7] = FORMAT_MINOR;
  return b;
})();

/** Builders are reused across writers: a fresh ArrayBuffer per image costs more than writing a small image. */
const builders: Builder[] = [];
function takeBuilder(): Builder { return builders.pop() ?? new Builder(); }

/**
 * A sink that can also write asynchronously. The writer then fills a second output
 * buffer while the first one is being written (live dump: the target is frozen for
 * less time when writing overlaps reading its memory).
 */
export interface OverlapSink extends Sink {
  /** Write b; the caller leaves b unchanged until the promise settles and has one such write in flight at a time. */
  writeAsync(b: Uint8Array): Promise<void>;
}

/** Low-level record emitter. Exposed for tools that build images record by record. */
export class RecordWriter {
  readonly k: Kernels;
  private out: number; // region: OUT_CAP bytes + room for one page record
  private alt = -1; // a second such region when the sink writes asynchronously
  private pending: Promise<void> | null = null; // the asynchronous write of the other region
  private readonly inp: number; // region: one run of full pages
  private readonly bm: number; // bitmap scratch inside the input region's tail
  private readonly recSlot: number;
  private readonly imgSlot: number;
  private cur = 0; // bytes used in out
  private flushed = 0; // bytes handed to the sink
  records = 0;
  pagesStored = 0;
  pagesZero = 0;
  readonly index: IndexEntry[] = [];
  private readonly b = takeBuilder();
  private closed = false;

  constructor(readonly sink: Sink, k?: Kernels) {
    this.k = k ?? kernels();
    this.out = claimRegion(this.k, OUT_CAP + MAX_PAGES_RECORD);
    this.inp = claimRegion(this.k, RUN_PAGES * PAGE_SIZE + 4096);
    if ((sink as Partial<OverlapSink>).writeAsync) this.alt = claimRegion(this.k, OUT_CAP + MAX_PAGES_RECORD);
    this.bm = this.inp + RUN_PAGES * PAGE_SIZE;
    this.recSlot = claimSlot(this.k);
    this.imgSlot = claimSlot(this.k);
  }

  /** Offset in the image of the next byte to be written. */
  get offset(): number { return this.flushed + this.cur; }

  private async room(n: number): Promise<void> {
    if (this.cur + n > OUT_CAP) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.cur === 0) return;
    const view = this.k.u8().subarray(this.out, this.out + this.cur);
    const n = this.cur;
    this.cur = 0;
    this.flushed += n;
    if (this.alt >= 0) {
      // one write in flight at a time: wait for the other region's, then swap regions
      await this.settle();
      const p = (this.sink as OverlapSink).writeAsync(view);
      p.catch(() => { /* awaited by settle() */ });
      this.pending = p;
      [this.out, this.alt] = [this.alt, this.out];
      return;
    }
    const r = this.sink.write(view);
    if (r) await r;
  }

  /** Wait for the asynchronous write in flight, if any. */
  private async settle(): Promise<void> {
    const p = this.pending;
    this.pending = null;
    if (p) await p;
  }

  async magic(): Promise<void> {
    await this.room(8);
    const m = MAGIC_BYTES;
    this.k.u8().set(m, this.out + this.cur);
    this.k.xxh3Update(this.imgSlot, this.out + this.cur, 8);
    this.cur += 8;
  }

  /** Frame the payload already placed at out+cur+16 (len bytes): padding, header, checksum. */
  private seal(kind: number, flags: number, len: number, hashedSoFar: boolean): void {
    const m = this.k.u8();
    const at = this.out + this.cur;
    const padded = pad8(len);
    m.fill(0, at + RECORD_HEADER_BYTES + len, at + RECORD_HEADER_BYTES + padded);
    const dv = new DataView(m.buffer, m.byteOffset + at, RECORD_HEADER_BYTES);
    dv.setUint16(0, kind, true);
    dv.setUint16(2, flags, true);
    dv.setUint32(4, len, true);
    if (!hashedSoFar) {
      this.k.xxh3Init(this.recSlot);
      this.k.xxh3Update(this.recSlot, at + RECORD_HEADER_BYTES, padded);
    } else if (padded !== len) {
      this.k.xxh3Update(this.recSlot, at + RECORD_HEADER_BYTES + len, padded - len);
    }
    this.k.xxh3Update(this.recSlot, at, 8);
    dv.setBigUint64(8, this.k.xxh3Digest(this.recSlot), true);
    this.k.xxh3Update(this.imgSlot, at, RECORD_HEADER_BYTES);
    this.cur += RECORD_HEADER_BYTES + padded;
    this.records++;
  }

  // The record emitters below return a promise only when the out buffer must be flushed first
  // (then the caller awaits it before emitting the next record); otherwise they complete
  // synchronously, which spares small images the cost of an async frame per record.

  /** Emit a record whose payload is `payload` (`payload` must stay unchanged until a returned promise settles). */
  raw(kind: number, payload: Uint8Array, flags = 0): void | Promise<void> {
    const need = RECORD_HEADER_BYTES + pad8(payload.length);
    if (need > OUT_CAP + MAX_PAGES_RECORD) {
      throw new CrimgError('LIMIT_EXCEEDED', `record of ${payload.length} bytes is too large`, { kind });
    }
    if (this.cur + need > OUT_CAP) return this.flush().then(() => this.rawNow(kind, payload, flags));
    this.rawNow(kind, payload, flags);
  }

  private rawNow(kind: number, payload: Uint8Array, flags: number): void {
    this.k.u8().set(payload, this.out + this.cur + RECORD_HEADER_BYTES);
    this.seal(kind, flags, payload.length, false);
  }

  /** Emit the REGS and FPU records of one thread, framed and checksummed by the regsPack kernel. */
  regset(regs: BigUint64Array, fpu: Uint8Array): void | Promise<void> {
    if (this.cur + REGSET_RECORD_BYTES > OUT_CAP) return this.flush().then(() => this.regsetNow(regs, fpu));
    this.regsetNow(regs, fpu);
  }

  private regsetNow(regs: BigUint64Array, fpu: Uint8Array): void {
    const k = this.k;
    let m = k.u8();
    m.set(new Uint8Array(regs.buffer, regs.byteOffset, 216), this.inp);
    m.set(fpu, this.inp + 216);
    const at = this.out + this.cur;
    const n = k.regsPack(this.inp, 1, at);
    if (n !== REGSET_RECORD_BYTES) throw new CrimgError('INTERNAL', `regsPack wrote ${n} bytes`);
    k.xxh3Update(this.imgSlot, at, RECORD_HEADER_BYTES);
    k.xxh3Update(this.imgSlot, at + RECORD_HEADER_BYTES + 216, RECORD_HEADER_BYTES);
    this.cur += REGSET_RECORD_BYTES;
    this.records += 2;
  }

  /** Emit an XSTATE record (XCR0, then the XSAVE area from byte 512) without staging it in JS. */
  xstate(xcr0: bigint, ext: Uint8Array): void | Promise<void> {
    const need = RECORD_HEADER_BYTES + pad8(8 + ext.length);
    if (need > OUT_CAP) throw new CrimgError('LIMIT_EXCEEDED', `XSTATE area of ${ext.length} bytes is too large`, { kind: K.XSTATE });
    if (this.cur + need > OUT_CAP) return this.flush().then(() => this.xstateNow(xcr0, ext));
    this.xstateNow(xcr0, ext);
  }

  private xstateNow(xcr0: bigint, ext: Uint8Array): void {
    const len = 8 + ext.length;
    const m = this.k.u8();
    const at = this.out + this.cur + RECORD_HEADER_BYTES;
    new DataView(m.buffer, m.byteOffset + at, 8).setBigUint64(0, xcr0, true);
    m.set(ext, at + 8);
    this.seal(K.XSTATE, 0, len, false);
  }

  /** Emit a schema record from an object holding its fields. */
  record(kind: number, fields: Fields, flags = 0, extra?: Fields): void | Promise<void> {
    const def = RECORD_BY_KIND.get(kind);
    if (!def) throw new CrimgError('INTERNAL', `no schema for kind ${kind}`);
    encodeFields(def, fields, this.b.reset(), extra);
    return this.raw(kind, this.b.view(), flags);
  }

  /** Emit the PAGES records of one VMA. */
  async pages(pid: number, vma: Vma, onProgress?: (n: number) => void): Promise<void> {
    const npagesVma = Number((vma.end - vma.start) / BigInt(PAGE_SIZE));
    let last = -1;
    for (const [first, count] of vma.pages.runs(npagesVma)) {
      if (first < 0 || count <= 0 || first + count > npagesVma || first < last) {
        throw new CrimgError('INTERNAL', `page source of VMA ${vma.start.toString(16)} gave a bad run [${first}, +${count})`);
      }
      last = first + count;
      for (let p = first; p < first + count; p += RUN_PAGES) {
        const n = Math.min(RUN_PAGES, first + count - p);
        await this.pageRun(pid, vma, p, n);
        onProgress?.(this.offset);
      }
    }
  }

  private async pageRun(pid: number, vma: Vma, first: number, n: number): Promise<void> {
    const bmBytes = Math.ceil(n / 64) * 8;
    await this.room(RECORD_HEADER_BYTES + 16 + n * PAGE_SIZE + bmBytes);
    const k = this.k;
    const at = this.out + this.cur;
    const addr = vma.start + BigInt(first) * BigInt(PAGE_SIZE);
    let m = k.u8();
    const fixed = new DataView(m.buffer, m.byteOffset + at + RECORD_HEADER_BYTES, 16);
    fixed.setBigUint64(0, addr, true);
    fixed.setUint32(8, n, true);
    fixed.setUint32(12, 0, true);
    k.xxh3Init(this.recSlot);
    k.xxh3Update(this.recSlot, at + RECORD_HEADER_BYTES, 16);
    const dst = at + RECORD_HEADER_BYTES + 16;
    let stored: number;
    if (vma.pages.pack) {
      stored = vma.pages.pack(k, dst, first, n, this.bm, this.recSlot);
    } else {
      vma.pages.read(k, this.inp, first, n);
      stored = k.pagesPack(this.inp, n, dst, this.bm, this.recSlot);
    }
    m = k.u8();
    const bmAt = dst + stored * PAGE_SIZE;
    m.copyWithin(bmAt, this.bm, this.bm + bmBytes);
    k.xxh3Update(this.recSlot, bmAt, bmBytes);
    this.index.push({ pid, npages: n, addr, offset: this.offset });
    this.pagesStored += stored;
    this.pagesZero += n - stored;
    this.seal(K.PAGES, 0, 16 + stored * PAGE_SIZE + bmBytes, true);
  }

  /** Write INDEX and TRAILER, flush, close the sink. */
  async finish(): Promise<WriteResult> {
    const indexOffset = this.offset;
    const ib = new Uint8Array(8 + this.index.length * INDEX_ENTRY_BYTES);
    const dv = new DataView(ib.buffer);
    dv.setUint32(0, this.index.length, true);
    this.index.forEach((e, i) => {
      const o = 8 + i * INDEX_ENTRY_BYTES;
      dv.setInt32(o, e.pid, true);
      dv.setUint32(o + 4, e.npages, true);
      dv.setBigUint64(o + 8, e.addr, true);
      dv.setBigUint64(o + 16, BigInt(e.offset), true);
    });
    // The index can exceed the out buffer for huge images: emit it through a dedicated path.
    await this.bigRecord(K.INDEX, ib);
    const imageCsum = this.k.xxh3Digest(this.imgSlot);
    await this.record(K.TRAILER, { tmagic: TRAILER_MAGIC, records: BigInt(this.records), indexOffset: BigInt(indexOffset), imageCsum });
    await this.flush();
    await this.settle();
    await this.sink.close();
    this.release();
    return { bytes: this.flushed, records: this.records, pagesStored: this.pagesStored, pagesZero: this.pagesZero, imageCsum };
  }

  private async bigRecord(kind: number, payload: Uint8Array): Promise<void> {
    if (RECORD_HEADER_BYTES + pad8(payload.length) <= OUT_CAP) { await this.raw(kind, payload); return; }
    // Hash and write the payload in pieces through the out buffer.
    await this.flush();
    await this.settle();
    const k = this.k;
    const len = payload.length;
    const padded = pad8(len);
    const full = new Uint8Array(padded);
    full.set(payload);
    k.xxh3Init(this.recSlot);
    const hdr = new Uint8Array(RECORD_HEADER_BYTES);
    const hdv = new DataView(hdr.buffer);
    hdv.setUint16(0, kind, true); hdv.setUint16(2, 0, true); hdv.setUint32(4, len, true);
    for (let o = 0; o < padded; o += OUT_CAP) {
      const piece = full.subarray(o, Math.min(padded, o + OUT_CAP));
      k.u8().set(piece, this.out);
      k.xxh3Update(this.recSlot, this.out, piece.length);
    }
    k.u8().set(hdr.subarray(0, 8), this.out);
    k.xxh3Update(this.recSlot, this.out, 8);
    hdv.setBigUint64(8, k.xxh3Digest(this.recSlot), true);
    k.u8().set(hdr, this.out);
    k.xxh3Update(this.imgSlot, this.out, RECORD_HEADER_BYTES);
    this.records++;
    const w1 = this.sink.write(hdr); if (w1) await w1;
    const w2 = this.sink.write(full); if (w2) await w2;
    this.flushed += RECORD_HEADER_BYTES + padded;
  }

  release(): void {
    if (this.closed) return;
    this.closed = true;
    builders.push(this.b);
    releaseRegion(this.k, this.out);
    if (this.alt >= 0) releaseRegion(this.k, this.alt);
    releaseRegion(this.k, this.inp);
    releaseSlot(this.k, this.recSlot);
    releaseSlot(this.k, this.imgSlot);
  }

  abort(): void {
    this.release();
    this.sink.abort();
  }
}

/** Emit the records of one task subtree (TASK ... NOCR). */
async function writeTask(w: RecordWriter, t: Task, onProgress?: (n: number) => void): Promise<void> {
  let p: void | Promise<void>;
  if ((p = w.record(K.TASK, t as unknown as Fields, 0, {
    nthreads: t.threads.length, nfiles: t.files.length, nnocr: t.nocr.length, hasMm: t.mm ? 1 : 0,
  }))) await p;
  if ((p = w.record(K.CREDS, t.creds as unknown as Fields))) await p;
  if ((p = w.record(K.RLIMITS, { limits: t.rlimits.flatMap((r) => [r.cur, r.max]) }))) await p;
  if ((p = w.record(K.NSIDS, t.ns as unknown as Fields))) await p;
  for (const th of t.threads) {
    if ((p = w.record(K.THREAD, {
      tid: th.tid, thFlags: (th.xstate ? 1 : 0) | (th.rseq ? 2 : 0), sigmask: th.sigmask, sigpending: th.sigpending,
      rseqPtr: th.rseq?.ptr ?? 0n, rseqLen: th.rseq?.len ?? 0, rseqSig: th.rseq?.sig ?? 0, rseqFlags: th.rseq?.flags ?? 0,
      state: th.state,
    }))) await p;
    if (th.regs.length !== 27) throw new CrimgError('INTERNAL', `thread ${th.tid}: ${th.regs.length} registers, expected 27`);
    if (th.fpu.length !== 512) throw new CrimgError('INTERNAL', `thread ${th.tid}: FXSAVE area of ${th.fpu.length} bytes, expected 512`);
    if ((p = w.regset(th.regs, th.fpu))) await p;
    if (th.xstate && (p = w.xstate(th.xstate.xcr0, th.xstate.ext))) await p;
  }
  if (t.mm) {
    if ((p = w.record(K.MM, t.mm as unknown as Fields, 0, { nvmas: t.mm.vmas.length, mmFlags: 0 }))) await p;
    for (const v of t.mm.vmas) {
      if ((p = w.record(K.VMA, v as unknown as Fields, 0, { vmaFlags: v.flags }))) await p;
      await w.pages(t.pid, v, onProgress);
    }
  }
  for (const f of t.files) if ((p = w.record(K.FD, f as unknown as Fields, 0, { fdKind: f.kind, cloexec: f.cloexec ? 1 : 0 }))) await p;
  for (const r of t.nocr) if ((p = w.record(K.NOCR, r as unknown as Fields))) await p;
}

/**
 * Write a model as an image. The sink may be a path (temp name + rename), a
 * file descriptor, a Node Writable, a MemorySink or any Sink.
 */
export async function writeImage(model: Model, target: SinkTarget, opts: WriteOptions = {}): Promise<WriteResult> {
  const sink = openSink(target, opts);
  let w: RecordWriter | undefined;
  try {
    w = new RecordWriter(sink, opts.kernels);
    await w.magic();
    const h = model.header;
    let p: void | Promise<void>;
    if ((p = w.record(K.HEADER, {
      ...h, ...h.uts, ntasks: model.tasks.length, nns: model.namespaces.length,
      checksumAlgo: CHECKSUM_XXH3_64, pageSize: PAGE_SIZE,
    }))) await p;
    for (const ns of model.namespaces) {
      const hasUts = ns.nodename !== undefined || ns.domainname !== undefined;
      if ((p = w.record(K.NS, {
        nsKind: NS_KINDS.indexOf(ns.kind), nsFlags: hasUts ? 1 : 0, id: ns.id,
        nodename: ns.nodename ?? '', domainname: ns.domainname ?? '',
      }))) await p;
    }
    for (const t of model.tasks) await writeTask(w, t, opts.onProgress);
    return await w.finish();
  } catch (e) {
    if (w) w.abort(); else sink.abort();
    throw e;
  }
}
