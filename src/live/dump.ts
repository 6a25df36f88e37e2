/**
 * Live checkpoint: freeze a process (tree), write its image while it is frozen,
 * then let it continue exactly where it was (or leave it stopped, or kill it).
 *
 * Whatever goes wrong (the target exits, the disk fills, crimg is interrupted),
 * every thread is detached and resumed and no partial image is left behind.
 *
 * The image header carries the freeze time. It is only known once the target was
 * let go, after the last page was written, so the header of a file or memory
 * image is patched in place before the image is moved into place (its record
 * checksum and the whole-image checksum in the trailer are recomputed).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { CrimgError, ioError } from '../errors.js';
import { kernels as defaultKernels } from '../kernels/index.js';
import type { Kernels } from '../kernels/api.js';
import { claimRegion, claimSlot, releaseRegion, releaseSlot } from '../kernels/arena.js';
import { type Model, type NocrReason, type Task, HeaderFlags } from '../model.js';
import { RECORD_HEADER_BYTES, MAGIC_BYTES, pad8, K } from '../schema.js';
import { FileSink, MemorySink, type Sink, type SinkTarget, openSink } from '../sink.js';
import { type WriteResult, writeImage } from '../writer.js';
import { generate } from '../gen/generate.js';
import { blocking } from './check.js';
import { type Inspection, inspectProcesses } from './inspect.js';
import { collectTask, collectThread, hostUts, namespacesOf } from './collect.js';
import { Freezer, type ReleaseMode, checkTarget, listTree } from './freeze.js';
import {
  NT,
  PTRACE,
  addressOf,
  fallocate,
  isSysError,
  kill,
  loadLibc,
  madvise,
  processVmReadRaw,
  ptraceGetRegs,
  ptraceGetRegset,
  ptraceGetRseq,
  ptraceGetSigmask,
  ptraceRaw,
} from '../os/libc.js';
import { MADV_HUGEPAGE, SIG } from '../os/consts.js';
import { LivePageSource, ProcMemory } from './pages.js';
import { type CallMode, applySelfState, collectSelfState } from './selfstate.js';
import { type FdInfo, type MapEntry, exists, readFds, readMaps, readStat, readStatus } from '../os/proc.js';

export const TOOL = 'crimg 0.1.0';

export interface DumpOptions {
  /** Also dump every descendant process. */
  tree?: boolean;
  /** What happens to the target after a successful dump (default resume; on failure it is always resumed). */
  after?: ReleaseMode;
  /** Dump even when check finds reasons the target cannot be restarted faithfully (they are recorded in the image). */
  force?: boolean;
  /** Checkpoint id for the header (default: random). */
  crid?: bigint;
  kernels?: Kernels;
  fsync?: boolean;
  /** Called with the bytes written so far. */
  onProgress?: (bytes: number) => void;
  /** Aborting it stops the dump: the target is resumed, the partial image removed, INTERRUPTED thrown. */
  signal?: AbortSignal;
  /** Keep the target frozen this long before reading it (testing aid for interruption). */
  holdFrozenMs?: number;
}

export interface DumpResult extends WriteResult {
  crid: bigint;
  /** Nanoseconds the target was frozen (first PTRACE_SEIZE to the last thread let go). */
  freezeNs: bigint;
  /** Whether the header of the image carries freezeNs (false for sinks that cannot be patched). */
  freezeInHeader: boolean;
  tasks: { pid: number; comm: string; threads: number[]; vmas: number; pagesRead: number }[];
  nocr: NocrReason[];
  /** Signals the target received while being frozen (delivered to it as usual). */
  signalsDelivered: number[];
  /** Pages read through /proc/PID/mem because process_vm_readv could not. */
  memFallbackPages: number;
  /** Pages nothing could read (stored as zero). */
  unreadablePages: number;
  after: ReleaseMode;
}

function interrupted(signal?: AbortSignal): CrimgError {
  const why = signal?.reason;
  return new CrimgError(
    'INTERRUPTED',
    `dump interrupted${typeof why === 'string' ? ` by ${why}` : ''}; the target was resumed and no image was written`,
  );
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

async function checkpoint(signal?: AbortSignal): Promise<void> {
  await tick();
  if (signal?.aborted) throw interrupted(signal);
}

/**
 * The dump's sink: yields to the event loop between writes (so SIGINT/SIGTERM handlers
 * run), writes files asynchronously in libuv's thread pool (the writer fills its other
 * buffer meanwhile, see OverlapSink), cuts a preallocated file to size and runs a hook
 * before closing.
 */
class DumpSink implements Sink {
  beforeClose: (() => Promise<void>) | null = null;
  /** The file was preallocated past its final size: cut it to the bytes written before closing. */
  preallocated = false;
  /** Present when the destination is a file. */
  writeAsync?: (b: Uint8Array) => Promise<void>;
  /** Settles when the write in flight (and a deferred abort) is done; never rejects. */
  private inflight: Promise<void> | null = null;
  private aborted = false;
  constructor(
    readonly inner: Sink,
    readonly signal?: AbortSignal,
  ) {
    if (inner instanceof FileSink && inner.writeAsync) this.writeAsync = (b) => this.writeFile(inner, b);
  }
  get written(): number {
    return this.inner.written;
  }
  async write(b: Uint8Array): Promise<void> {
    await this.idle();
    const r = this.inner.write(b);
    if (r) await r;
    await checkpoint(this.signal);
  }
  private writeFile(f: FileSink, b: Uint8Array): Promise<void> {
    const p = f.writeAsync!(b).then(() => {
      if (this.signal?.aborted) throw interrupted(this.signal);
    });
    this.track(p);
    return p;
  }
  private track(p: Promise<void>): void {
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    this.inflight = settled;
    void settled.then(() => {
      if (this.inflight === settled) this.inflight = null;
    });
  }
  /** Resolves once no write is in flight and a deferred abort is done. */
  async idle(): Promise<void> {
    while (this.inflight) await this.inflight;
  }
  async close(): Promise<void> {
    await this.idle();
    if (this.preallocated && this.inner instanceof FileSink) {
      try {
        fs.ftruncateSync(this.inner.fd, this.written);
      } catch (e) {
        throw ioError('sizing the image', e);
      }
    }
    if (this.beforeClose) await this.beforeClose();
    await this.inner.close();
  }
  /** Remove the partial image; with a write in flight, once it is done (its descriptor stays open until then). */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const p = this.inflight;
    if (!p) {
      this.inner.abort();
      return;
    }
    this.track(
      p.then(() => {
        this.inner.abort();
      }),
    );
  }
}

// ------------------------------------------------------------------ before the freeze

/** Staging memory the writer claims: two output buffers (8 MiB and one page record each) and one run of pages. */
const WARM_BYTES = 20 * 1024 * 1024;
const HUGE = 2 * 1024 * 1024;
const warmed = new WeakMap<Kernels, number>();

/**
 * Everything that can be done before the target is stopped: load libc, and grow and
 * touch the kernels' staging memory the writer will use (up to `bytes`, the size of the
 * image if known; asking for huge pages: page faults are slow on some VMs), so that
 * neither happens while the target is frozen.
 */
export function prepareDump(k: Kernels, bytes = WARM_BYTES): void {
  loadLibc();
  const want = Math.min(WARM_BYTES, Math.ceil(bytes / 4096) * 4096);
  const done = warmed.get(k) ?? 0;
  if (want <= done) return;
  warmed.set(k, want);
  let at: number;
  try {
    at = claimRegion(k, WARM_BYTES);
  } catch {
    return;
  }
  try {
    const m = k.u8();
    const base = addressOf(m);
    const from = Math.ceil((base + at) / HUGE) * HUGE;
    const to = Math.floor((base + at + WARM_BYTES) / HUGE) * HUGE;
    if (to > from && done === 0) madvise(from, to - from, MADV_HUGEPAGE);
    for (let o = at + done; o < at + want; o += 4096) m[o] = 0;
  } finally {
    releaseRegion(k, at);
  }
}

/** Discards what it is given. */
class NullSink implements Sink {
  written = 0;
  write(b: Uint8Array): void {
    this.written += b.length;
  }
  async close(): Promise<void> {
    /* nothing */
  }
  abort(): void {
    /* nothing */
  }
}

/**
 * Run, once per process and before the freeze, the code the frozen phase runs: the /proc
 * readers and parsers on the (still running) target, a ptrace call, and the writer on a
 * small generated image. Results are thrown away. A first run is several times slower
 * than the next (lazy compilation, cold kernel caches), and it should not be the target
 * that waits for it.
 */
async function warmUp(pid: number, k: Kernels): Promise<void> {
  try {
    // the ptrace requests of the frozen phase, on pid 0 (ESRCH), and a read of our own memory
    ptraceRaw(PTRACE.INTERRUPT, 0);
    for (const f of [
      () => ptraceGetRegs(0),
      () => ptraceGetRegset(0, NT.PRFPREG, new Uint8Array(512)),
      () => ptraceGetSigmask(0),
      () => ptraceGetRseq(0),
    ]) {
      try {
        f();
      } catch {
        /* ESRCH */
      }
    }
    const scratch = claimRegion(k, 4096);
    try {
      const at = addressOf(k.u8()) + scratch;
      processVmReadRaw(process.pid, at, BigInt(at + 2048), 8);
    } finally {
      releaseRegion(k, scratch);
    }
    const fds = readFds(pid);
    const maps = readMaps(pid, true);
    const seen = inspectProcesses([pid], {
      selfTraced: true,
      fds: new Map([[pid, fds]]),
      maps: new Map([[pid, maps]]),
      quick: true,
      wantState: true,
    });
    const mem = new ProcMemory(pid);
    try {
      const t = collectTask(pid, [], mem, fds, seen.fdStates.get(pid) ?? new Map(), maps.slice(0, 16)); // the code, not all the work
      namespacesOf([t]);
    } finally {
      mem.close();
    }
  } catch {
    /* the freeze reports what is wrong with the target */
  }
  if (warmedWriter.has(k)) return;
  warmedWriter.add(k);
  try {
    await writeImage(generate({ size: 16 * 4096, tasks: 1, threads: 2 }), new NullSink(), { kernels: k });
  } catch {
    /* only a warm-up */
  }
}
const warmedWriter = new WeakSet<Kernels>();

/** Bytes the image of these processes will roughly take (their anonymous and shared resident memory and swap). */
function estimateImageBytes(pids: number[]): number {
  let kb = 0;
  for (const p of pids) {
    try {
      const st = readStatus(p);
      for (const f of ['RssAnon', 'RssShmem', 'VmSwap']) kb += parseInt(st.get(f) ?? '0', 10) || 0;
    } catch {
      /* gone: the freeze reports it */
    }
  }
  return kb * 1024 + 1024 * 1024;
}

/**
 * Allocate the image file's space before the freeze, so that writing it while the target
 * is stopped only copies bytes (allocating page cache or tmpfs pages is the slow part).
 */
function preallocate(sink: DumpSink, bytes: number): void {
  const inner = sink.inner;
  if (!(inner instanceof FileSink) || inner.written !== 0) return;
  try {
    if (!fs.fstatSync(inner.fd).isFile()) return;
  } catch {
    return;
  }
  if (fallocate(inner.fd, 0, bytes)) sink.preallocated = true;
}

// ------------------------------------------------------------------ header patch

interface Patchable {
  read(pos: number, n: number): Uint8Array;
  write(pos: number, b: Uint8Array): void;
  size: number;
}

function patchableOf(s: Sink, written: number): Patchable | null {
  if (s instanceof FileSink) {
    const fd = s.fd;
    try {
      if (!fs.fstatSync(fd).isFile()) return null;
    } catch {
      return null;
    }
    return {
      size: written,
      read: (pos, n) => {
        const b = new Uint8Array(n);
        let o = 0;
        while (o < n) {
          const r = fs.readSync(fd, b, o, n - o, pos + o);
          if (r <= 0) break;
          o += r;
        }
        return b;
      },
      write: (pos, b) => {
        let o = 0;
        while (o < b.length) o += fs.writeSync(fd, b, o, b.length - o, pos + o);
      },
    };
  }
  if (s instanceof MemorySink) {
    const all = s.bytes();
    return {
      size: all.length,
      read: (pos, n) => all.slice(pos, pos + n),
      write: (pos, b) => {
        all.set(b, pos);
      },
    };
  }
  return null;
}

const HEADER_FREEZE_AT = 16; // HEADER payload: crid u64, createdNs u64, freezeNs u64, ...

/** Rewrite freezeNs in the HEADER record of a finished image and recompute the checksums that cover it. */
export function patchFreezeNs(img: Patchable, freezeNs: bigint, k: Kernels): bigint {
  const hdrAt = MAGIC_BYTES;
  const h = img.read(hdrAt, RECORD_HEADER_BYTES);
  const hv = new DataView(h.buffer);
  if (hv.getUint16(0, true) !== K.HEADER) throw new CrimgError('INTERNAL', 'image does not start with a HEADER record');
  const len = hv.getUint32(4, true);
  const payload = img.read(hdrAt + RECORD_HEADER_BYTES, pad8(len));
  new DataView(payload.buffer).setBigUint64(HEADER_FREEZE_AT, freezeNs, true);
  const scratch = claimRegion(k, Math.max(pad8(len) + 8, 4096));
  const slot = claimSlot(k);
  try {
    const put = (b: Uint8Array, at = 0): void => {
      k.u8().set(b, scratch + at);
    };
    // record checksum: XXH3-64 of the padded payload followed by the first 8 header bytes
    put(payload);
    put(h.subarray(0, 8), payload.length);
    hv.setBigUint64(8, k.xxh3(scratch, payload.length + 8), true);
    img.write(hdrAt, h);
    img.write(hdrAt + RECORD_HEADER_BYTES, payload);
    // whole-image checksum: the magic and every record header before the trailer
    const trailerAt = img.size - (RECORD_HEADER_BYTES + 32);
    const buf = new Uint8Array(4096);
    let n = 0;
    const drain = (): void => {
      put(buf.subarray(0, n));
      k.xxh3Update(slot, scratch, n);
      n = 0;
    };
    k.xxh3Init(slot);
    buf.set(img.read(0, MAGIC_BYTES), 0);
    n = MAGIC_BYTES;
    let at = MAGIC_BYTES;
    while (at < trailerAt) {
      const rh = img.read(at, RECORD_HEADER_BYTES);
      if (rh.length < RECORD_HEADER_BYTES) throw new CrimgError('INTERNAL', 'image ends inside a record while patching its header');
      if (n + RECORD_HEADER_BYTES > buf.length) drain();
      buf.set(rh, n);
      n += RECORD_HEADER_BYTES;
      at += RECORD_HEADER_BYTES + pad8(new DataView(rh.buffer).getUint32(4, true));
    }
    drain();
    if (at !== trailerAt) throw new CrimgError('INTERNAL', 'record chain does not end at the trailer while patching the header');
    const imageCsum = k.xxh3Digest(slot);
    const th = img.read(trailerAt, RECORD_HEADER_BYTES + 32);
    const tv = new DataView(th.buffer);
    tv.setBigUint64(RECORD_HEADER_BYTES + 24, imageCsum, true);
    put(th.subarray(RECORD_HEADER_BYTES));
    put(th.subarray(0, 8), 32);
    tv.setBigUint64(8, k.xxh3(scratch, 40), true);
    img.write(trailerAt, th);
    return imageCsum;
  } finally {
    releaseRegion(k, scratch);
    releaseSlot(k, slot);
  }
}

// ------------------------------------------------------------------ dump

function mapError(e: unknown, pids: number[]): CrimgError {
  if (e instanceof CrimgError) return e;
  const gone = pids.find((p) => !exists(p));
  if (gone !== undefined) return new CrimgError('NO_PROCESS', `process ${gone} exited during the dump`, { cause: e });
  if (isSysError(e)) return new CrimgError('PTRACE', e.message, { cause: e });
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'EACCES' || code === 'EPERM') return new CrimgError('PERMISSION', (e as Error).message, { cause: e });
  return ioError('dump', e);
}

/** Stopped threads of one process, as the freezer (or `crimg run`) holds them. */
export interface StoppedProcess {
  pid: number;
  /** `calls`: whether crimg may run system calls in the thread to read state only the task can ask for (signal
   *  handlers, clear_child_tid, robust futex list; see selfstate.ts): 'run' for a thread in an interrupt or
   *  signal-delivery stop that is resumed with signal 0 afterwards, 'restop' for one in a group stop. Without a
   *  usable thread that state is not recorded (a SIGACTIONS NOCR reason says so when handlers are missing). */
  threads: { tid: number; stateBefore: string; calls?: CallMode }[];
  reinjected?: number[];
}

export interface FrozenWriteOptions {
  tree?: boolean;
  force?: boolean;
  crid?: bigint;
  kernels?: Kernels;
  leftStopped?: boolean;
  signal?: AbortSignal;
  onProgress?: (bytes: number) => void;
  /** Runs once every byte is written, before the image is moved into place: let the target go here. Returns the freeze time. */
  release: () => bigint;
  /** Runs after the image is in place (e.g. kill the target). */
  afterClose?: () => void;
}

/** The fd tables and mappings of the frozen processes and what one inspection of them found (inspect.ts);
 *  throws UNSAFE when it found reasons and `force` is not set. */
function inspectFrozen(
  pids: number[],
  o: FrozenWriteOptions,
): { fds: Map<number, FdInfo[]>; maps: Map<number, MapEntry[]>; seen: Inspection } {
  const fds = new Map<number, FdInfo[]>();
  const maps = new Map<number, MapEntry[]>();
  for (const p of pids) {
    fds.set(p, readFds(p));
    maps.set(p, readMaps(p, true));
  }
  const seen = inspectProcesses(pids, { tree: o.tree, selfTraced: true, fds, maps, wantState: true });
  const unsafe = blocking(seen.reasons);
  if (unsafe.length && !o.force) {
    const codes = [...new Set(unsafe.map((r) => r.code))];
    throw new CrimgError(
      'UNSAFE',
      `process ${pids[0]} cannot be checkpointed faithfully (${codes.join(', ')}): ${unsafe[0]!.text}${unsafe.length > 1 ? ` (and ${unsafe.length - 1} more; see crimg check ${pids[0]}${o.tree ? ' --tree' : ''})` : ''}; use --force to dump anyway`,
    );
  }
  return { fds, maps, seen };
}

/** The model of one frozen process: its threads, memory (read through `mem` later), files with the state the
 *  inspection read, and the state only the task can ask for (selfstate.ts). */
function collectProcess(fp: StoppedProcess, mem: ProcMemory, fds: FdInfo[], maps: MapEntry[], seen: Inspection): Task {
  const threads = fp.threads.map((t) => collectThread(fp.pid, t.tid, t.stateBefore));
  if (threads.length === 0) throw new CrimgError('NO_PROCESS', `process ${fp.pid} exited during the dump`);
  const t = collectTask(fp.pid, threads, mem, fds, seen.fdStates.get(fp.pid) ?? new Map(), maps);
  t.nocr = seen.reasons.filter((r) => r.pid === fp.pid);
  // threads that can run calls, those resumed normally first (the task kinds are read in the first)
  const callable = new Map<number, CallMode>();
  for (const mode of ['run', 'restop'] as const) for (const x of fp.threads) if (x.calls === mode) callable.set(x.tid, mode);
  const ss = collectSelfState(fp.pid, callable, maps);
  applySelfState(t, threads, ss);
  if (!ss.complete)
    t.nocr.push({ pid: fp.pid, code: 'SIGACTIONS', text: `the signal handlers of process ${fp.pid} could not be read: ${ss.reason}` });
  return t;
}

/** What DumpResult says of a task. */
function taskSummary(t: Task): DumpResult['tasks'][number] {
  return {
    pid: t.pid,
    comm: t.comm,
    threads: t.threads.map((x) => x.tid),
    vmas: t.mm?.vmas.length ?? 0,
    pagesRead: (t.mm?.vmas ?? []).reduce((s, v) => {
      let n = 0;
      for (const [, c] of v.pages.runs(Number((v.end - v.start) / 4096n))) n += c;
      return s + n;
    }, 0),
  };
}

/**
 * Write the image of processes whose threads are all stopped in ptrace stops.
 * Checks them first (refusing with UNSAFE unless force), then streams the model
 * to the sink; calls release() after the last byte and patches the freeze time.
 */
export async function writeFrozen(procs: StoppedProcess[], target: SinkTarget | Sink, o: FrozenWriteOptions): Promise<DumpResult> {
  const k = o.kernels ?? defaultKernels();
  const inner = target instanceof DumpSink ? target.inner : openSink(target as SinkTarget);
  const sink = target instanceof DumpSink ? target : new DumpSink(inner, o.signal);
  const crid = o.crid ?? randomBytes(8).readBigUInt64LE(0);
  const mems: ProcMemory[] = [];
  const pids = procs.map((p) => p.pid);
  let freezeInHeader = false;
  let freezeNs = 0n;
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    freezeNs = o.release();
  };
  let patchedCsum: bigint | null = null;
  const alive = (): void => {
    for (const p of pids) {
      let state = 'X';
      try {
        state = readStat(p).state;
      } catch {
        /* gone */
      }
      if (state === 'Z' || state === 'X') throw new CrimgError('NO_PROCESS', `process ${p} exited during the dump`);
    }
  };
  try {
    alive();
    prepareDump(k, 0); // libc only: the staging memory was prepared before the freeze (dumpProcess, runTraced)
    const { fds, maps, seen } = inspectFrozen(pids, o);
    const tasks: Task[] = [];
    for (const fp of procs) {
      const mem = new ProcMemory(fp.pid);
      mems.push(mem);
      tasks.push(collectProcess(fp, mem, fds.get(fp.pid)!, maps.get(fp.pid)!, seen));
    }
    alive();
    const model: Model = {
      header: {
        crid,
        createdNs: BigInt(Date.now()) * 1_000_000n,
        freezeNs: 0n,
        flags: HeaderFlags.LIVE | (o.leftStopped ? HeaderFlags.LEFT_STOPPED : 0),
        tool: TOOL,
        uts: hostUts(),
      },
      namespaces: namespacesOf(tasks),
      tasks,
    };
    // Let the target go as soon as its last page is read: what remains is writing what
    // crimg already holds (the tail of the pages, file descriptors, the index).
    let left = 0;
    for (const t of tasks) for (const v of t.mm?.vmas ?? []) if (v.pages instanceof LivePageSource) left += v.pages.pageCount;
    const onRead = (n: number): void => {
      left -= n;
      if (left <= 0) release();
    };
    if (left > 0) for (const m of mems) m.onRead = onRead;
    if (o.signal?.aborted) throw interrupted(o.signal);
    sink.beforeClose = async () => {
      release();
      const p = patchableOf(inner, sink.written);
      if (p) {
        patchedCsum = patchFreezeNs(p, freezeNs, k);
        freezeInHeader = true;
      }
    };
    const res = await writeImage(model, sink, { kernels: k, onProgress: o.onProgress });
    o.afterClose?.();
    return {
      ...res,
      imageCsum: patchedCsum ?? res.imageCsum,
      crid,
      freezeNs,
      freezeInHeader,
      after: 'resume',
      tasks: tasks.map(taskSummary),
      nocr: seen.reasons,
      signalsDelivered: procs.flatMap((p) => p.reinjected ?? []),
      memFallbackPages: mems.reduce((s, m) => s + m.memFallbackPages, 0),
      unreadablePages: mems.reduce((s, m) => s + m.unreadablePages, 0),
    };
  } catch (e) {
    sink.abort();
    await sink.idle(); // the partial image is gone before the caller hears of the failure
    throw mapError(e, pids);
  } finally {
    for (const m of mems) {
      m.onRead = null;
      m.close();
    }
  }
}

/**
 * Checkpoint the live process pid (with tree: and its descendants) into the sink.
 * The sink may be a path (written under a temporary name and renamed when complete).
 */
export async function dumpProcess(pid: number, target: SinkTarget, options: DumpOptions = {}): Promise<DumpResult> {
  const after = options.after ?? 'resume';
  checkTarget(pid);
  if (options.signal?.aborted) throw interrupted(options.signal);
  const k = options.kernels ?? defaultKernels();
  const estimate = estimateImageBytes(listTree(pid, !!options.tree));
  prepareDump(k, estimate + 1024 * 1024);
  await warmUp(pid, k);
  const inner = openSink(target, { fsync: options.fsync });
  const sink = new DumpSink(inner, options.signal);
  const fz = new Freezer();
  let stoppedEarly = false;
  let ok = false;
  try {
    try {
      preallocate(sink, estimate);
      fz.freeze(pid, !!options.tree);
      if (options.holdFrozenMs) {
        const until = Date.now() + options.holdFrozenMs;
        while (Date.now() < until) {
          await new Promise((r) => setTimeout(r, Math.min(20, until - Date.now())));
          if (options.signal?.aborted) throw interrupted(options.signal);
        }
      }
      await checkpoint(options.signal);
    } catch (e) {
      sink.abort();
      throw mapError(
        e,
        fz.procs.map((p) => p.pid),
      );
    }
    const procs: StoppedProcess[] = fz.procs.map((fp) => ({
      pid: fp.pid,
      reinjected: fp.reinjected,
      threads: fz
        .threadsOf(fp.pid)
        .map((tid) => ({
          tid,
          stateBefore: fp.threads.get(tid)!.stateBefore,
          calls: fp.threads.get(tid)!.groupStop ? ('restop' as const) : ('run' as const),
        })),
    }));
    const r = await writeFrozen(procs, sink, {
      tree: options.tree,
      force: options.force,
      crid: options.crid,
      kernels: k,
      leftStopped: after === 'stop',
      signal: options.signal,
      onProgress: options.onProgress,
      release: () => {
        if (after === 'kill') fz.markEnd();
        else {
          stoppedEarly = after === 'stop';
          fz.release(after);
        }
        return fz.freezeNs;
      },
      afterClose: () => {
        if (after === 'kill') fz.release('kill');
      },
    });
    ok = true;
    return { ...r, after };
  } finally {
    // on any failure the target goes on as if nothing happened
    fz.release('resume');
    if (!ok && stoppedEarly)
      for (const p of fz.procs) {
        try {
          kill(p.pid, SIG.SIGCONT);
        } catch {
          /* gone */
        }
      }
  }
}

/** Reasons the process (tree) cannot be checkpointed faithfully, read from /proc without stopping it. */
export { checkProcesses } from './check.js';
