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
import { type Model, type Task, type Vma, NS_KINDS } from './model.js';
import {
  Builder,
  CHECKSUM_XXH3_64,
  FORMAT_MAJOR,
  FORMAT_MINOR,
  K,
  MAGIC,
  PAGE_SIZE,
  RECORD_BY_KIND,
  RUN_PAGES,
  RECORD_HEADER_BYTES,
  TRAILER_MAGIC,
  encodeFields,
  pad8,
  type Fields,
  INDEX_ENTRY_BYTES,
  IX,
  NO_ROOM,
} from './schema.js';
import { type Sink, type SinkOptions, type SinkTarget, openSink } from './sink.js';
import { KINDS_OF } from './kinds/index.js';
import { type OwnerName, type Owners, kindValue } from './kinds/kind.js';
import { ARCH_X86_64 } from './model.js';

const OUT_CAP = 8 * 1024 * 1024;
const MAX_PAGES_RECORD = RECORD_HEADER_BYTES + 16 + RUN_PAGES * PAGE_SIZE + (RUN_PAGES / 64) * 8;

export interface WriteOptions extends SinkOptions {
  /** Kernels instance (default: the shared WebAssembly one). */
  kernels?: Kernels;
  /** Called after each run of pages with the bytes written so far. */
  onProgress?: (bytesWritten: number) => void;
}

export interface IndexEntry {
  pid: number;
  npages: number;
  addr: bigint;
  offset: number;
}

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
  b[6] = FORMAT_MAJOR;
  b[7] = FORMAT_MINOR;
  return b;
})();

/** Builders are reused across writers: a fresh ArrayBuffer per image costs more than writing a small image. */
const builders: Builder[] = [];
function takeBuilder(): Builder {
  return builders.pop() ?? new Builder();
}
const inPlace = new Builder();

/**
 * A sink that can also write asynchronously (FileSink; the live dump's sink). The writer
 * then fills a second output buffer while the first one is being written: generation,
 * conversion and a live dump's reading of the target overlap the writes (the target is
 * frozen for less time).
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
  private readonly inp: number; // region: staging for one register set (4 KiB), then the bitmap scratch
  private readonly bm: number; // bitmap scratch (one run) after the staging
  private readonly recSlot: number;
  private readonly imgSlot: number;
  private cur = 0; // bytes used in out
  private flushed = 0; // bytes handed to the sink
  records = 0;
  pagesStored = 0;
  pagesZero = 0;
  readonly index: IndexEntry[] = [];
  private readonly b = takeBuilder();
  /** Builder attached to the out buffer (encodes payloads in place; shared: attach to seal is synchronous). */
  private readonly wb = inPlace;
  private closed = false;

  constructor(
    readonly sink: Sink,
    k?: Kernels,
  ) {
    this.k = k ?? kernels();
    this.out = claimRegion(this.k, OUT_CAP + MAX_PAGES_RECORD);
    this.inp = claimRegion(this.k, 4096 + Math.ceil(RUN_PAGES / 64) * 8);
    if ((sink as Partial<OverlapSink>).writeAsync) this.alt = claimRegion(this.k, OUT_CAP + MAX_PAGES_RECORD);
    this.bm = this.inp + 4096;
    this.recSlot = claimSlot(this.k);
    this.imgSlot = claimSlot(this.k);
  }

  private dv: DataView | null = null;
  /** A DataView of the kernels' whole memory (rebuilt when the memory grows). */
  private view(): DataView {
    const buf = this.k.u8().buffer;
    if (!this.dv || this.dv.buffer !== buf) this.dv = new DataView(buf);
    return this.dv;
  }

  /** Offset in the image of the next byte to be written. */
  get offset(): number {
    return this.flushed + this.cur;
  }

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
      p.catch(() => {
        /* awaited by settle() */
      });
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

  /** Frame the payload already placed at out+cur+16 (len bytes): padding, header, checksum (one kernel
   *  call, which also feeds the header to the image checksum). */
  private seal(kind: number, flags: number, len: number, hashedSoFar: boolean): void {
    const at = this.out + this.cur;
    this.cur += hashedSoFar
      ? this.k.recSealStream(at, kind, flags, len, this.recSlot, this.imgSlot)
      : this.k.recSeal(at, kind, flags, len, this.imgSlot);
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
    const m = k.u8();
    const inp = this.inp;
    if (fpu.buffer === regs.buffer && fpu.byteOffset === regs.byteOffset + 216) {
      m.set(new Uint8Array(regs.buffer, regs.byteOffset, 728), inp); // one copy when the areas are adjacent
    } else {
      m.set(new Uint8Array(regs.buffer, regs.byteOffset, 216), inp);
      m.set(fpu, inp + 216);
    }
    k.regsPack1(inp, inp + 216, this.out + this.cur, this.imgSlot);
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
    this.view().setBigUint64(at, xcr0, true);
    m.set(ext, at + 8);
    this.seal(K.XSTATE, 0, len, false);
  }

  /** Emit a schema record from an object holding its fields. */
  record(kind: number, fields: Fields, flags = 0, extra?: Fields): void | Promise<void> {
    const def = RECORD_BY_KIND.get(kind);
    if (!def) throw new CrimgError('INTERNAL', `no schema for kind ${kind}`);
    // Encode in place, right after the last record; the region has MAX_PAGES_RECORD bytes of room past
    // OUT_CAP (8 of them kept for the sealing kernel's scratch).
    const start = this.out + this.cur + RECORD_HEADER_BYTES;
    const b = this.wb.attach(this.k.u8(), this.view(), start, this.out + OUT_CAP + MAX_PAGES_RECORD - 8);
    try {
      encodeFields(def, fields, b, extra);
    } catch (e) {
      if (e !== NO_ROOM) throw e;
      b.len = -1;
    }
    const len = b.len - start;
    if (b.len >= 0 && this.cur + RECORD_HEADER_BYTES + pad8(len) <= OUT_CAP) {
      this.seal(kind, flags, len, false);
      return;
    }
    // too big for what is left of the out buffer: encode apart, flush, copy
    encodeFields(def, fields, this.b.reset(), extra);
    return this.raw(kind, this.b.view(), flags);
  }

  /** Emit the PAGES records of one VMA. Completes synchronously unless the out buffer must be flushed
   *  to a sink that writes asynchronously (then the returned promise settles when all runs are out). */
  pages(pid: number, vma: Vma, onProgress?: (n: number) => void): void | Promise<void> {
    const npagesVma = Number((vma.end - vma.start) / BigInt(PAGE_SIZE));
    const it = vma.pages.runs(npagesVma)[Symbol.iterator]();
    let last = -1;
    let end = 0,
      p = 0; // the current run ends at `end`; next page p
    const step = (): void | Promise<void> => {
      for (;;) {
        if (p >= end) {
          const r = it.next();
          if (r.done) return;
          const [f, count] = r.value;
          if (f < 0 || count <= 0 || f + count > npagesVma || f < last) {
            throw new CrimgError('INTERNAL', `page source of VMA ${vma.start.toString(16)} gave a bad run [${f}, +${count})`);
          }
          end = f + count;
          p = f;
          last = end;
          continue;
        }
        const n = Math.min(RUN_PAGES, end - p);
        const at = p;
        p += n;
        const w = this.pageRun(pid, vma, at, n);
        if (w)
          return w.then(() => {
            onProgress?.(this.offset);
            return step();
          });
        onProgress?.(this.offset);
      }
    };
    return step();
  }

  private pageRun(pid: number, vma: Vma, first: number, n: number): void | Promise<void> {
    const bmBytes = Math.ceil(n / 64) * 8;
    if (this.cur + RECORD_HEADER_BYTES + 16 + n * PAGE_SIZE + bmBytes > OUT_CAP)
      return this.flush().then(() => this.pageRunNow(pid, vma, first, n));
    this.pageRunNow(pid, vma, first, n);
  }

  private pageRunNow(pid: number, vma: Vma, first: number, n: number): void {
    const k = this.k;
    const at = this.out + this.cur;
    const addr = vma.start + BigInt(first * PAGE_SIZE);
    k.pagesRecHead(at, addr, n, this.recSlot);
    const dst = at + RECORD_HEADER_BYTES + 16;
    let stored: number;
    if (vma.pages.pack) {
      stored = vma.pages.pack(k, dst, first, n, this.bm, this.recSlot);
    } else {
      // read straight into the record and pack in place: the zero check and checksum read the pages where they
      // landed, and only pages after a zero page move (down)
      vma.pages.read(k, dst, first, n);
      stored = k.pagesPack(dst, n, dst, this.bm, this.recSlot);
    }
    this.index.push({ pid, npages: n, addr, offset: this.offset });
    this.pagesStored += stored;
    this.pagesZero += n - stored;
    this.cur += k.pagesRecTail(at, n, stored, this.bm, this.recSlot, this.imgSlot);
    this.records++;
  }

  /** Write INDEX and TRAILER, flush, close the sink. */
  async finish(): Promise<WriteResult> {
    const indexOffset = this.offset;
    const ib = new Uint8Array(8 + this.index.length * INDEX_ENTRY_BYTES);
    const dv = new DataView(ib.buffer);
    dv.setUint32(0, this.index.length, true);
    this.index.forEach((e, i) => {
      const o = 8 + i * INDEX_ENTRY_BYTES;
      dv.setInt32(o + IX.pid, e.pid, true);
      dv.setUint32(o + IX.npages, e.npages, true);
      dv.setBigUint64(o + IX.addr, e.addr, true);
      dv.setBigUint64(o + IX.offset, BigInt(e.offset), true);
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
    if (RECORD_HEADER_BYTES + pad8(payload.length) <= OUT_CAP) {
      await this.raw(kind, payload);
      return;
    }
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
    hdv.setUint16(0, kind, true);
    hdv.setUint16(2, 0, true);
    hdv.setUint32(4, len, true);
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
    const w1 = this.sink.write(hdr);
    if (w1) await w1;
    const w2 = this.sink.write(full);
    if (w2) await w2;
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

  /** abort(), once the asynchronous write in flight (if any) is done: the partial file is gone when this resolves. */
  async abortWhenIdle(): Promise<void> {
    await this.settle().catch(() => undefined);
    this.abort();
  }
}

/** Emit the records of the optional kinds an owner has (from the `from`th kind on), in the schema's order
 *  (src/kinds/index.ts). Completes synchronously unless a record waits for a flush. */
function writeKinds<O extends OwnerName>(w: RecordWriter, owner: O, o: Owners[O], from = 0): void | Promise<void> {
  const kinds = KINDS_OF[owner];
  for (let i = from; i < kinds.length; i++) {
    const kd = kinds[i]!;
    const v = kindValue(kd, o);
    if (v === undefined || (kd.present && !kd.present(v))) continue;
    const p = w.record(kd.record.kind, kd.encode(v, o));
    if (p) return p.then(() => writeKinds(w, owner, o, i + 1));
  }
}

/** Emit the records of one task subtree (TASK ... NOCR). */
async function writeTask(w: RecordWriter, t: Task, onProgress?: (n: number) => void): Promise<void> {
  let p: void | Promise<void>;
  if (
    (p = w.record(K.TASK, t as unknown as Fields, 0, {
      nthreads: t.threads.length,
      nfiles: t.files.length,
      nnocr: t.nocr.length,
      hasMm: t.mm ? 1 : 0,
    }))
  )
    await p;
  if ((p = w.record(K.CREDS, t.creds as unknown as Fields))) await p;
  if ((p = w.record(K.RLIMITS, { limits: t.rlimits.flatMap((r) => [r.cur, r.max]) }))) await p;
  if ((p = w.record(K.NSIDS, t.ns as unknown as Fields))) await p;
  if ((p = writeKinds(w, 'task', t))) await p;
  for (const th of t.threads) {
    if (
      (p = w.record(K.THREAD, {
        tid: th.tid,
        thFlags: (th.xstate ? 1 : 0) | (th.rseq ? 2 : 0),
        sigmask: th.sigmask,
        sigpending: th.sigpending,
        rseqPtr: th.rseq?.ptr ?? 0n,
        rseqLen: th.rseq?.len ?? 0,
        rseqSig: th.rseq?.sig ?? 0,
        rseqFlags: th.rseq?.flags ?? 0,
        state: th.state,
      }))
    )
      await p;
    if (th.regs.length !== 27) throw new CrimgError('INTERNAL', `thread ${th.tid}: ${th.regs.length} registers, expected 27`);
    if (th.fpu.length !== 512) throw new CrimgError('INTERNAL', `thread ${th.tid}: FXSAVE area of ${th.fpu.length} bytes, expected 512`);
    if ((p = w.regset(th.regs, th.fpu))) await p;
    if (th.xstate && (p = w.xstate(th.xstate.xcr0, th.xstate.ext))) await p;
    if ((p = writeKinds(w, 'thread', th))) await p;
  }
  if (t.mm) {
    if ((p = w.record(K.MM, t.mm as unknown as Fields, 0, { nvmas: t.mm.vmas.length, mmFlags: 0 }))) await p;
    for (const v of t.mm.vmas) {
      if ((p = w.record(K.VMA, v as unknown as Fields, 0, { vmaFlags: v.flags }))) await p;
      if ((p = w.pages(t.pid, v, onProgress))) await p;
    }
  }
  for (const f of t.files) {
    if ((p = w.record(K.FD, f as unknown as Fields, 0, { fdKind: f.kind, cloexec: f.cloexec ? 1 : 0 }))) await p;
    if ((p = writeKinds(w, 'fd', f))) await p;
  }
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
    const u = h.uts;
    if (
      (p = w.record(K.HEADER, h as unknown as Fields, 0, {
        sysname: u.sysname,
        nodename: u.nodename,
        release: u.release,
        version: u.version,
        machine: u.machine,
        domainname: u.domainname,
        ntasks: model.tasks.length,
        nns: model.namespaces.length,
        checksumAlgo: CHECKSUM_XXH3_64,
        pageSize: PAGE_SIZE,
      }))
    )
      await p;
    for (const ns of model.namespaces) {
      const hasUts = ns.nodename !== undefined || ns.domainname !== undefined;
      if (
        (p = w.record(K.NS, {
          nsKind: NS_KINDS.indexOf(ns.kind),
          nsFlags: hasUts ? 1 : 0,
          id: ns.id,
          nodename: ns.nodename ?? '',
          domainname: ns.domainname ?? '',
        }))
      )
        await p;
    }
    for (const t of model.tasks) await writeTask(w, t, opts.onProgress);
    return await w.finish();
  } catch (e) {
    if (w) await w.abortWhenIdle();
    else sink.abort();
    throw e;
  }
}
