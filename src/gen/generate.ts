/**
 * Deterministic synthetic images for benchmark harnesses and testers of storage
 * and restore engines. The same spec and seed give byte-identical images on any
 * machine and in any shard split: every choice derives from (seed, image index,
 * task index, address), and page contents are made by the WASM generator from
 * (seed, page address) alone.
 */
import { CrimgError } from '../errors.js';
import { FillKind, type GenParams, type Kernels } from '../kernels/api.js';
import {
  type Model,
  type Task,
  type Thread,
  type Vma,
  type PageSource,
  type OpenFile,
  type Namespace,
  HeaderFlags,
  Prot,
  VmaFlags,
  FdKind,
  NS_KINDS,
  defaultRlimits,
  emptyCreds,
  newThread,
  type NamespaceIds,
  type Credentials,
} from '../model.js';
import { REG_INDEX, PAGE_SIZE } from '../schema.js';

export type ContentKind = 'random' | 'text' | 'pattern';

export interface GenSpec {
  /** 64-bit seed (default 1). */
  seed?: bigint | number;
  /** Number of tasks (default 1). Task 0 is the root; the rest form a tree of the given fan-out. */
  tasks?: number;
  /** Children per task in the tree (default 3). */
  fanout?: number;
  /** Threads per task (default 2). */
  threads?: number;
  /** Extra anonymous mappings per task besides the standard layout (default 4). */
  vmas?: number;
  /** Total bytes of populated memory over all tasks (default 64 MiB). */
  size?: number;
  /** Fraction of populated pages that are zero (default 0.3). */
  zeroRatio?: number;
  /** Fraction of non-zero pages that duplicate another page (default 0.05). */
  dupRatio?: number;
  content?: ContentKind;
  /** Open files per task besides stdin/stdout/stderr (default 3). */
  files?: number;
  /** Give tasks their own uts/pid/mnt namespaces (a container) — default true. */
  namespaces?: boolean;
  /** Position in an incremental series (default 0) and fraction of pages changed per step (default 0.1). */
  epoch?: number;
  dirtyRatio?: number;
  /** Image index within a series of distinct images (mixes into the seed; default 0). */
  index?: number;
  /** Creation time recorded in the header, ns (default 2026-01-01T00:00:00Z + index seconds). */
  createdNs?: bigint;
}

export interface ResolvedSpec extends Required<Omit<GenSpec, 'seed' | 'createdNs'>> {
  seed: bigint;
  createdNs: bigint;
}

const M64 = (1n << 64n) - 1n;

/** (ah:al) * (bh:bl) mod 2^64 on 32-bit halves; result in MUL_HI/MUL_LO. */
let MUL_HI = 0,
  MUL_LO = 0;
function mul64(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff,
    a1 = al >>> 16,
    b0 = bl & 0xffff,
    b1 = bl >>> 16;
  const p00 = a0 * b0,
    p01 = a0 * b1,
    p10 = a1 * b0,
    p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  MUL_LO = (((mid & 0xffff) << 16) | (p00 & 0xffff)) >>> 0;
  MUL_HI = (p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16) + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
}

/** Little-endian u64 <-> two u32 halves (one BigInt made per conversion). */
const W64 = new BigUint64Array(1);
const W32 = new Uint32Array(W64.buffer);
const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** splitmix64, the metadata PRNG (page contents use the WASM generator), computed on 32-bit
 *  halves: the same sequence as the BigInt definition, without BigInt arithmetic. */
export class Rng {
  private h: number;
  private l: number;
  private oh = 0;
  private ol = 0;
  constructor(seed: bigint) {
    seed &= M64;
    this.h = Number(seed >> 32n);
    this.l = Number(seed & 0xffffffffn);
  }
  private step(): void {
    // s += 0x9e3779b97f4a7c15
    const l = this.l + 0x7f4a7c15;
    this.l = l >>> 0;
    this.h = (this.h + 0x9e3779b9 + (l > 0xffffffff ? 1 : 0)) >>> 0;
    let zh = this.h,
      zl = this.l;
    // z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
    zl = (zl ^ ((zl >>> 30) | (zh << 2))) >>> 0;
    zh = (zh ^ (zh >>> 30)) >>> 0;
    mul64(zh, zl, 0xbf58476d, 0x1ce4e5b9);
    zh = MUL_HI;
    zl = MUL_LO;
    // z = (z ^ (z >> 27)) * 0x94d049bb133111eb
    zl = (zl ^ ((zl >>> 27) | (zh << 5))) >>> 0;
    zh = (zh ^ (zh >>> 27)) >>> 0;
    mul64(zh, zl, 0x94d049bb, 0x133111eb);
    zh = MUL_HI;
    zl = MUL_LO;
    // z ^ (z >> 31)
    this.ol = (zl ^ ((zl >>> 31) | (zh << 1))) >>> 0;
    this.oh = (zh ^ (zh >>> 31)) >>> 0;
  }
  next(): bigint {
    this.step();
    if (!LE) return (BigInt(this.oh) << 32n) | BigInt(this.ol);
    W32[0] = this.ol;
    W32[1] = this.oh;
    return W64[0]!;
  }
  /** next() as two 32-bit halves written to u32[at] (low) and u32[at + 1] (high): no BigInt. */
  nextInto(u32: Uint32Array, at: number): void {
    this.step();
    u32[at] = this.ol;
    u32[at + 1] = this.oh;
  }
  /** Integer in [0, n): the 64-bit output mod n. */
  int(n: number): number {
    this.step();
    if (n > 0xffffffff) return Number(((BigInt(this.oh) << 32n) | BigInt(this.ol)) % BigInt(n));
    let x = this.oh % n;
    x = (x * 65536 + (this.ol >>> 16)) % n;
    return (x * 65536 + (this.ol & 0xffff)) % n;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
}

export function mixSeed(...parts: (bigint | number)[]): bigint {
  let h = 0x243f6a8885a308d3n;
  for (const p of parts) {
    h = (h ^ (BigInt(p) & M64)) & M64;
    h = new Rng(h).next();
  }
  return h;
}

export function resolveSpec(spec: GenSpec = {}): ResolvedSpec {
  const r: ResolvedSpec = {
    seed: BigInt(spec.seed ?? 1) & M64,
    tasks: spec.tasks ?? 1,
    fanout: spec.fanout ?? 3,
    threads: spec.threads ?? 2,
    vmas: spec.vmas ?? 4,
    size: spec.size ?? 64 * 1024 * 1024,
    zeroRatio: spec.zeroRatio ?? 0.3,
    dupRatio: spec.dupRatio ?? 0.05,
    content: spec.content ?? 'random',
    files: spec.files ?? 3,
    namespaces: spec.namespaces ?? true,
    epoch: spec.epoch ?? 0,
    dirtyRatio: spec.dirtyRatio ?? 0.1,
    index: spec.index ?? 0,
    createdNs: spec.createdNs ?? 1_767_225_600_000_000_000n + BigInt(spec.index ?? 0) * 1_000_000_000n,
  };
  const bad = (m: string): never => {
    throw new CrimgError('BAD_SPEC', m);
  };
  const int = (n: string, v: number, lo: number, hi: number): void => {
    if (!Number.isInteger(v) || v < lo || v > hi) bad(`${n} must be an integer in ${lo}..${hi}, got ${v}`);
  };
  const ratio = (n: string, v: number): void => {
    if (!(v >= 0 && v <= 1)) bad(`${n} must be in 0..1, got ${v}`);
  };
  int('tasks', r.tasks, 1, 100000);
  int('fanout', r.fanout, 1, 1000);
  int('threads', r.threads, 1, 10000);
  int('vmas', r.vmas, 0, 60000);
  int('files', r.files, 0, 100000);
  int('epoch', r.epoch, 0, 1_000_000);
  int('index', r.index, 0, 2 ** 40);
  if (!Number.isSafeInteger(r.size) || r.size < 0 || r.size > 2 ** 50) bad(`size must be 0..1 PiB, got ${r.size}`);
  ratio('zeroRatio', r.zeroRatio);
  ratio('dupRatio', r.dupRatio);
  ratio('dirtyRatio', r.dirtyRatio);
  if (!['random', 'text', 'pattern'].includes(r.content)) bad(`content must be random, text or pattern, got ${r.content}`);
  return r;
}

const q16 = (x: number): number => Math.round(x * 65536);
const KIND: Record<ContentKind, FillKind> = { random: FillKind.Random, text: FillKind.Text, pattern: FillKind.Pattern };

/** Pages made by the WASM generator; every page depends only on the params and its address. */
export class GenPageSource implements PageSource {
  constructor(
    readonly vmaStart: bigint,
    readonly npages: number,
    readonly p: GenParams,
  ) {}
  runs(npages: number): Iterable<[number, number]> {
    const n = Math.min(npages, this.npages);
    return n > 0 ? [[0, n]] : [];
  }
  read(k: Kernels, dst: number, first: number, n: number): void {
    k.genPages(dst, this.vmaStart + BigInt(first * PAGE_SIZE), n, this.p);
  }
  pack(k: Kernels, dst: number, first: number, n: number, bitmapPtr: number, slot: number): number {
    return k.genPack(dst, this.vmaStart + BigInt(first * PAGE_SIZE), n, this.p, bitmapPtr, slot);
  }
}

const COMMS = ['postgres', 'nginx', 'redis-server', 'java', 'python3', 'node', 'memcached', 'mysqld', 'envoy', 'haproxy'];
const LIBS = ['libc.so.6', 'libm.so.6', 'libpthread.so.0', 'libssl.so.3', 'libcrypto.so.3', 'libz.so.1', 'libstdc++.so.6', 'libgcc_s.so.1'];
const LIBDIR = '/usr/lib/x86_64-linux-gnu/';
const R = Prot.READ,
  W = Prot.WRITE,
  X = Prot.EXEC;

interface VmaPlan {
  start: bigint;
  end: bigint;
  prot: number;
  flags: number;
  path: string | null;
  pgoff: bigint;
  inode: bigint;
  populated: number;
  weight: number;
}

function pages(n: number): bigint {
  return BigInt(n * PAGE_SIZE);
}

/** A mapping's plan with the defaults of an anonymous one: no path, no file offset, no inode, no weight. */
function vmaPlan(p: Pick<VmaPlan, 'start' | 'end' | 'prot' | 'flags' | 'populated'> & Partial<VmaPlan>): VmaPlan {
  return { path: null, pgoff: 0n, inode: 0n, weight: 0, ...p };
}

/** The mmap area: mappings placed top-down from a random address above 0x7f0000000000. */
class MmapArea {
  private top: bigint;
  constructor(rng: Rng) {
    this.top = 0x7f0000000000n + BigInt(rng.int(0xfffffff)) * 0x1000n;
  }
  /** Start of the next n pages below the last mapping placed. */
  below(n: number): bigint {
    this.top -= pages(n);
    return this.top;
  }
}

interface TaskPlan {
  plans: VmaPlan[];
  mm: Record<string, bigint>;
  tls: bigint;
  stackTop: bigint;
  text: [bigint, bigint];
}

/** The layout of one task's address space, with how many pages of each mapping are populated
 *  (`taskBytes` in all). The rng is drawn in a fixed order: every step below in turn. */
function planTask(rng: Rng, spec: ResolvedSpec, taskBytes: number, comm: string): TaskPlan {
  const plans: VmaPlan[] = [];
  const inode = (): bigint => BigInt(100000 + rng.int(9_000_000));
  const { text, startBrk } = planExecutable(rng, plans, `/usr/bin/${comm}`, inode);
  const area = new MmapArea(rng);
  const anon = planAnonymous(rng, spec.vmas, area);
  const tls = planTls(rng, plans, area);
  planLibraries(rng, plans, area, inode);
  const stackTop = planStackAndVdso(rng, plans);
  const heap = spreadBudget(plans, anon, Math.floor(taskBytes / PAGE_SIZE));
  layAnonymous(rng, plans, anon);
  plans.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const stack = plans.find((p) => p.flags & VmaFlags.STACK)!;
  stack.start = stackTop - pages(Math.max(stack.populated, 8) + 25);
  const mm: Record<string, bigint> = {
    startCode: text[0],
    endCode: text[1],
    startData: plans[3]!.start,
    endData: plans[3]!.end,
    startBrk: startBrk,
    brk: heap.end,
    startStack: stackTop - 0x1000n,
    argStart: stackTop - 0x800n,
    argEnd: stackTop - 0x700n,
    envStart: stackTop - 0x700n,
    envEnd: stackTop - 0x100n,
  };
  return { plans, mm, tls, stackTop, text };
}

/** The executable (PIE, at 0x55..): its four segments, its bss and the (still empty) heap. */
function planExecutable(rng: Rng, plans: VmaPlan[], exe: string, inode: () => bigint): { text: [bigint, bigint]; startBrk: bigint } {
  let at = 0x550000000000n + BigInt(rng.int(0xffffff)) * 0x1000n;
  const exeIno = inode();
  const textPages = 16 + rng.int(240);
  const segs: [number, number, number][] = [
    [R, 4, 0],
    [R | X, textPages, 0],
    [R, 8 + rng.int(32), 0],
    [R | W, 2 + rng.int(8), 0],
  ];
  let off = 0n;
  let text: [bigint, bigint] = [0n, 0n];
  for (const [prot, n] of segs) {
    plans.push({ start: at, end: at + pages(n), prot, flags: 0, path: exe, pgoff: off, inode: exeIno, populated: n, weight: 0 });
    if (prot & X) text = [at, at + pages(n)];
    at += pages(n);
    off += BigInt(n);
  }
  const bss = 1 + rng.int(16);
  plans.push(vmaPlan({ start: at, end: at + pages(bss), prot: R | W, flags: VmaFlags.ANON, populated: bss }));
  at += pages(bss);
  const startBrk = at + pages(rng.int(512));
  // heap: weight 4
  plans.push(
    vmaPlan({ start: startBrk, end: startBrk, prot: R | W, flags: VmaFlags.ANON | VmaFlags.HEAP, path: '[heap]', populated: 0, weight: 4 }),
  );
  return { text, startBrk };
}

/** The extra anonymous mappings, weighted; placed and sized later by spreadBudget and layAnonymous. */
function planAnonymous(rng: Rng, n: number, area: MmapArea): VmaPlan[] {
  const anon: VmaPlan[] = [];
  for (let i = 0; i < n; i++) {
    const s = area.below(1); // placeholder, sized later
    anon.push(vmaPlan({ start: s, end: s, prot: R | W, flags: VmaFlags.ANON, populated: 0, weight: 1 + rng.int(4) }));
  }
  return anon;
}

/** The TLS block; returns the thread pointer of the main thread. */
function planTls(rng: Rng, plans: VmaPlan[], area: MmapArea): bigint {
  const tlsPages = 4;
  const tlsStart = area.below(tlsPages);
  plans.push(vmaPlan({ start: tlsStart, end: tlsStart + pages(tlsPages), prot: R | W, flags: VmaFlags.ANON, populated: tlsPages }));
  return tlsStart + pages(2) + BigInt(rng.int(256)) * 16n;
}

/** Shared libraries, 4 mappings each. */
function planLibraries(rng: Rng, plans: VmaPlan[], area: MmapArea, inode: () => bigint): void {
  const nlibs = 2 + rng.int(4);
  const libs = [...LIBS].sort(() => 0).slice(0, nlibs);
  for (const lib of libs) {
    const ino = inode();
    const sizes: [number, number][] = [
      [R, 8 + rng.int(40)],
      [R | X, 64 + rng.int(400)],
      [R, 16 + rng.int(64)],
      [R | W, 2 + rng.int(8)],
    ];
    const total = sizes.reduce((a, [, n]) => a + n, 0);
    let s = area.below(total);
    let po = 0n;
    for (const [prot, n] of sizes) {
      plans.push({
        start: s,
        end: s + pages(n),
        prot,
        flags: 0,
        path: LIBDIR + lib,
        pgoff: po,
        inode: ino,
        populated: prot & W ? n : Math.ceil(n / 2),
        weight: 0,
      });
      s += pages(n);
      po += BigInt(n);
    }
  }
}

/** Stack, vvar and vdso near the top; returns the top of the stack. */
function planStackAndVdso(rng: Rng, plans: VmaPlan[]): bigint {
  // user space ends at 0x7ffffffff000: keep the stack, vvar and vdso below it
  const stackTop = 0x7ffc00000000n + BigInt(rng.int(0x3f0000)) * 0x1000n;
  const stackPages = 33;
  plans.push(
    vmaPlan({
      start: stackTop - pages(stackPages),
      end: stackTop,
      prot: R | W,
      flags: VmaFlags.ANON | VmaFlags.STACK | VmaFlags.GROWSDOWN,
      path: '[stack]',
      populated: 8,
      weight: 1,
    }),
  );
  const vvar = stackTop + pages(64 + rng.int(4096));
  plans.push(vmaPlan({ start: vvar, end: vvar + pages(4), prot: R, flags: VmaFlags.VVAR, path: '[vvar]', populated: 0 }));
  plans.push(vmaPlan({ start: vvar + pages(4), end: vvar + pages(6), prot: R | X, flags: VmaFlags.VDSO, path: '[vdso]', populated: 2 }));
  return stackTop;
}

/** Distribute the remaining page budget over heap and anonymous mappings by weight; returns the heap. */
function spreadBudget(plans: VmaPlan[], anon: VmaPlan[], taskPages: number): VmaPlan {
  const fixed = fitFixed(plans, taskPages);
  let budget = Math.max(0, taskPages - fixed);
  const weighted = [plans.find((p) => p.flags & VmaFlags.HEAP)!, ...anon];
  const wsum = weighted.reduce((a, p) => a + p.weight, 0);
  weighted.forEach((p, i) => {
    const n = i === weighted.length - 1 ? budget : Math.floor(((taskPages - fixed) * p.weight) / wsum);
    const take = Math.min(budget, Math.max(0, n));
    budget -= take;
    p.populated = take;
  });
  const heap = weighted[0]!;
  heap.end = heap.start + pages(Math.max(heap.populated, 33));
  return heap;
}

/** Pages populated in the fixed mappings; in a small image (more than taskPages) they are scaled down
 *  in proportion, keeping the layout, so the total is `size`. */
function fitFixed(plans: VmaPlan[], taskPages: number): number {
  const fixed = plans.reduce((a, p) => a + p.populated, 0);
  if (fixed <= taskPages) return fixed;
  let left = taskPages;
  for (const p of plans) {
    p.populated = Math.min(left, Math.floor((p.populated * taskPages) / fixed));
    left -= p.populated;
  }
  for (const p of plans)
    if (left > 0 && p.populated < Number((p.end - p.start) / BigInt(PAGE_SIZE))) {
      p.populated++;
      left--;
    }
  return taskPages - left;
}

/** Re-lay the anonymous mappings top-down with their final sizes, below the libraries' lowest address. */
function layAnonymous(rng: Rng, plans: VmaPlan[], anon: VmaPlan[]): void {
  let low = plans
    .filter((p) => p.start >= 0x7f0000000000n && p.start < 0x7ffc00000000n)
    // biome-ignore lint/complexity/useMathMinMax: bigints (Math.min takes numbers)
    .reduce((a, p) => (p.start < a ? p.start : a), 0x7f0000000000n + 0xfffffffn * 0x1000n);
  for (const p of anon) {
    const n = Math.max(p.populated, 1) + (rng.int(4) === 0 ? rng.int(64) : 0); // some are partly unpopulated
    low -= pages(n) + pages(rng.int(16));
    p.start = low;
    p.end = low + pages(n);
    plans.push(p);
  }
}

/** Bytes of one thread's register state: user_regs_struct, FXSAVE, XSAVE beyond the legacy area. */
const XSAVE_AVX512_BYTES = 2696;
const THREAD_BYTES = 216 + 512 + (XSAVE_AVX512_BYTES - 512);

/** A thread whose register areas are views of `buf` at `off` (one allocation per model, not three per thread). */
function makeThread(rng: Rng, tid: number, text: [bigint, bigint], sp: bigint, tls: bigint, buf: ArrayBuffer, off: number): Thread {
  const th = newThread(tid, new BigUint64Array(buf, off, 27), new Uint8Array(buf, off + 216, 512));
  if (LE) {
    const u32 = new Uint32Array(buf, off, 54);
    for (let i = 0; i < 27; i++) rng.nextInto(u32, 2 * i);
  } else {
    for (let i = 0; i < 27; i++) th.regs[i] = rng.next();
  }
  const R_ = REG_INDEX;
  th.regs[R_.rip] = (text[0] + (rng.next() % (text[1] - text[0]))) & ~0x3n;
  th.regs[R_.rsp] = sp & ~0xfn;
  th.regs[R_.rbp] = (sp + 0x40n) & ~0xfn;
  th.regs[R_.eflags] = 0x246n;
  th.regs[R_.cs] = 0x33n;
  th.regs[R_.ss] = 0x2bn;
  th.regs[R_.ds] = 0n;
  th.regs[R_.es] = 0n;
  th.regs[R_.fs] = 0n;
  th.regs[R_.gs] = 0n;
  th.regs[R_.fs_base] = tls;
  th.regs[R_.gs_base] = 0n;
  th.regs[R_.orig_rax] = BigInt.asUintN(64, -1n);
  // XSAVE as a fresh process on an AVX-512 machine: XCR0 0x2e7, only x87/SSE in use.
  const ext = new Uint8Array(buf, off + 216 + 512, XSAVE_AVX512_BYTES - 512);
  new DataView(buf, off + 216 + 512, 8).setBigUint64(0, 0x3n, true); // XSTATE_BV
  th.xstate = { xcr0: 0x2e7n, ext };
  th.state = 'S';
  return th;
}

/** Build the model of one synthetic image (pages are generated lazily while writing). */
export function generate(specIn: GenSpec = {}): Model {
  const spec = resolveSpec(specIn);
  const seed = mixSeed(spec.seed, spec.index);
  const rng = new Rng(seed);
  const namespaces = genNamespaces(spec, seed);
  const tasks: Task[] = [];
  const per = Math.floor(spec.size / spec.tasks / PAGE_SIZE) * PAGE_SIZE;
  const basePid = spec.namespaces ? 1 : 1000 + rng.int(30000);
  for (let ti = 0; ti < spec.tasks; ti++) {
    const taskBytes = ti === spec.tasks - 1 ? spec.size - per * (spec.tasks - 1) : per;
    tasks.push(genTask(spec, seed, ti, basePid + ti * spec.threads, taskBytes, tasks));
  }
  return { header: genHeader(spec, namespaces[0]!.nodename!), namespaces, tasks };
}

/** The namespace ids of task i: its own uts/pid/mnt/ipc in a container, the host's others. */
function nsIds(spec: ResolvedSpec, i: number): NamespaceIds {
  const o = {} as NamespaceIds;
  NS_KINDS.forEach((k, j) => {
    o[k] = 4026531835n + BigInt(j) + (spec.namespaces && ['uts', 'pid', 'mnt', 'ipc'].includes(k) ? 1000n + BigInt(i * 0) : 0n);
  });
  return o;
}

function genNamespaces(spec: ResolvedSpec, seed: bigint): Namespace[] {
  const ids = nsIds(spec, 0);
  const namespaces: Namespace[] = NS_KINDS.map((k) => ({ kind: k, id: ids[k] }));
  namespaces[0] = {
    ...namespaces[0]!,
    nodename: spec.namespaces ? `ctr-${(seed & 0xffffffn).toString(16)}` : 'host',
    domainname: '(none)',
  };
  return namespaces;
}

function genHeader(spec: ResolvedSpec, nodename: string): Model['header'] {
  return {
    crid: BigInt(spec.index + 1),
    createdNs: spec.createdNs,
    freezeNs: 0n,
    flags: HeaderFlags.SYNTHETIC,
    tool: 'crimg 0.1.0',
    uts: {
      sysname: 'Linux',
      nodename,
      release: '6.1.0-synthetic',
      version: '#1 SMP PREEMPT_DYNAMIC',
      machine: 'x86_64',
      domainname: '(none)',
    },
  };
}

/** Task ti (pid `pid`, `taskBytes` of populated memory); `tasks` holds the tasks made before it. */
function genTask(spec: ResolvedSpec, seed: bigint, ti: number, pid: number, taskBytes: number, tasks: readonly Task[]): Task {
  const trng = new Rng(mixSeed(seed, ti));
  const comm = ti === 0 ? trng.pick(COMMS) : tasks[0]!.comm;
  const plan = planTask(trng, spec, taskBytes, comm);
  const taskSeed = mixSeed(seed, 0x7a5c, ti);
  const vmas = genVmas(plan.plans, genParams(spec, taskSeed));
  const threads = genThreads(spec, plan, trng, taskSeed, pid);
  const files = genFiles(spec.files, trng, comm);
  const ppid = ti === 0 ? (spec.namespaces ? 0 : 1) : tasks[Math.floor((ti - 1) / spec.fanout)]!.pid;
  const uid = spec.namespaces ? 0 : 1000;
  const auxv = genAuxv(plan, vmas.find((v) => v.flags & VmaFlags.VDSO)!.start, uid);
  return {
    pid,
    tgid: pid,
    ppid,
    pgid: tasks[0]?.pid ?? pid,
    sid: tasks[0]?.pid ?? pid,
    comm,
    exe: `/usr/bin/${comm}`,
    cwd: `/var/lib/${comm}`,
    root: '/',
    args: [`/usr/bin/${comm}`, '--config', `/etc/${comm}.conf`],
    env: ['PATH=/usr/local/bin:/usr/bin:/bin', `HOME=/var/lib/${comm}`, 'LANG=C.UTF-8'],
    personality: 0,
    exitSignal: 17,
    creds: genCreds(uid),
    rlimits: defaultRlimits(),
    ns: nsIds(spec, ti),
    threads,
    mm: { ...(plan.mm as unknown as Record<string, bigint>), auxv, vmas } as unknown as Task['mm'],
    files,
    nocr: [],
  };
}

/** Parameters of the WASM page generator for one task. */
function genParams(spec: ResolvedSpec, taskSeed: bigint): GenParams {
  return {
    seed: taskSeed,
    kind: KIND[spec.content],
    zeroQ16: q16(spec.zeroRatio),
    dupQ16: q16(spec.dupRatio),
    dupPool: 64,
    epoch: spec.epoch,
    dirtyQ16: q16(spec.dirtyRatio),
  };
}

/** The task's mappings, with generated pages. */
function genVmas(plans: VmaPlan[], gp: GenParams): Vma[] {
  const vmas: Vma[] = plans.map((p) => ({
    start: p.start,
    end: p.end,
    prot: p.prot,
    flags: p.flags,
    pgoff: p.pgoff,
    devMajor: p.inode ? 8 : 0,
    devMinor: p.inode ? 1 : 0,
    inode: p.inode,
    path: p.path,
    pages: new GenPageSource(
      p.flags & VmaFlags.STACK ? p.end - pages(p.populated) : p.start,
      Math.min(p.populated, Number((p.end - p.start) / 4096n)),
      gp,
    ),
  }));
  // the stack is populated from its top: express that as a run at the end
  for (const v of vmas) {
    if (v.flags & VmaFlags.STACK) {
      const src = v.pages as GenPageSource;
      const total = Number((v.end - v.start) / 4096n);
      const n = src.npages;
      v.pages = {
        runs: () => (n > 0 ? [[total - n, n]] : []),
        read: (k, dst, first, m) => k.genPages(dst, v.start + BigInt(first * PAGE_SIZE), m, gp),
        pack: (k, dst, first, m, bm, slot) => k.genPack(dst, v.start + BigInt(first * PAGE_SIZE), m, gp, bm, slot),
      };
    }
  }
  return vmas;
}

/** The task's threads: tids pid, pid + 1, ...; register areas share one buffer. */
function genThreads(spec: ResolvedSpec, plan: TaskPlan, trng: Rng, taskSeed: bigint, pid: number): Thread[] {
  const threads: Thread[] = [];
  const regBuf = new ArrayBuffer(spec.threads * THREAD_BYTES);
  const pthreadStacks = plan.plans.filter(
    (p) => p.flags === VmaFlags.ANON && p.path === null && p.weight > 0 && p.end - p.start >= 0x4000n,
  );
  for (let j = 0; j < spec.threads; j++) {
    // the main thread runs on [stack]; other threads, like glibc's, on an anonymous mapping with
    // their TLS (fs_base) at its top
    const own = j === 0 ? undefined : pthreadStacks[(j - 1) % pthreadStacks.length];
    const sp = own ? own.end - 0x3000n - BigInt(j) * 0x40n : plan.stackTop - 0x2000n - BigInt(trng.int(0x800)) * 8n;
    const fsBase = own ? own.end - 0x700n : plan.tls;
    threads.push(makeThread(new Rng(mixSeed(taskSeed, j, spec.epoch)), pid + j, plan.text, sp, fsBase, regBuf, j * THREAD_BYTES));
  }
  return threads;
}

/** stdin/stdout/stderr on /dev/null, then n data files and directories under /var/lib/<comm>. */
function genFiles(n: number, trng: Rng, comm: string): OpenFile[] {
  const files: OpenFile[] = [0, 1, 2].map((fd) => ({
    fd,
    kind: FdKind.OTHER,
    path: '/dev/null',
    flags: fd === 0 ? 0 : 1,
    pos: 0n,
    mode: 0o20666,
    cloexec: false,
    devMajor: 1,
    devMinor: 3,
    inode: 5n,
    size: 0n,
  }));
  for (let f = 0; f < n; f++) {
    const dir = trng.int(5) === 0;
    files.push({
      fd: 3 + f,
      kind: dir ? FdKind.DIRECTORY : FdKind.REGULAR,
      path: dir ? `/var/lib/${comm}` : `/var/lib/${comm}/data-${f}.db`,
      flags: dir ? 0o200000 : 0o2,
      pos: dir ? 0n : BigInt(trng.int(1 << 20)) * 512n,
      mode: dir ? 0o40755 : 0o100644,
      cloexec: trng.int(2) === 0,
      devMajor: 8,
      devMinor: 1,
      inode: BigInt(200000 + trng.int(1 << 20)),
      size: BigInt(trng.int(1 << 24)) * 512n,
    });
  }
  return files;
}

/** Credentials of a task running as uid (root: with every capability). */
function genCreds(uid: number): Credentials {
  const creds = emptyCreds();
  Object.assign(creds, {
    uid,
    gid: uid,
    euid: uid,
    egid: uid,
    suid: uid,
    sgid: uid,
    fsuid: uid,
    fsgid: uid,
    groups: [uid],
    capBnd: 0x1ffffffffffn,
  });
  if (uid === 0) Object.assign(creds, { capPrm: 0x1ffffffffffn, capEff: 0x1ffffffffffn });
  return creds;
}

/** The auxiliary vector (type, value pairs) of an x86_64 process. */
function genAuxv(plan: TaskPlan, vdso: bigint, uid: number): bigint[] {
  return [
    33n,
    vdso,
    16n,
    0xbfebfbffn,
    6n,
    4096n,
    17n,
    100n,
    3n,
    plan.plans[0]!.start + 64n,
    4n,
    56n,
    5n,
    13n,
    7n,
    0n,
    8n,
    0n,
    9n,
    plan.text[0] + 0x100n,
    11n,
    BigInt(uid),
    12n,
    BigInt(uid),
    13n,
    BigInt(uid),
    14n,
    BigInt(uid),
    23n,
    0n,
    25n,
    plan.stackTop - 0x900n,
    26n,
    2n,
    31n,
    plan.stackTop - 0x80n,
    15n,
    plan.stackTop - 0x890n,
    51n,
    0xd30n,
  ];
}
