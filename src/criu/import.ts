/**
 * CRIU image directory -> model. Reads what toCriuImages writes and what `criu dump`
 * (3.x, images v1.1) writes: pstree.img gives the tasks, core-TID.img the threads,
 * mm-PID.img the address space, pagemap-PID.img + pages-N.img the page contents
 * (read from pages-N.img into the kernels' memory when the writer asks for them),
 * ids/creds/fs/fdinfo/files the rest. Fields crimg has no place for are skipped;
 * what the model needs but CRIU does not keep is left neutral (see docs/CRIU.md). Each kind of
 * optional state is read back by its src/kinds/<dir>/criu.ts, through the one table in ./kind-map.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CrimgError } from '../errors.js';
import type { Kernels } from '../kernels/api.js';
import {
  type Model,
  type Task,
  type Thread,
  type Vma,
  type PageSource,
  type OpenFile,
  type NocrReason,
  type Credentials,
  type NamespaceIds,
  type Rlimit,
  type XState,
  FdKind,
  namespacesOf,
  VmaFlags,
  NO_PAGES,
  defaultRlimits,
  emptyCreds,
  emptyNsIds,
  newThread,
  FXSAVE_BYTES,
} from '../model.js';
import { type Source, openSource } from '../source.js';
import { intelXsaveSize } from '../cpu/xsave.js';
import type { Msg } from './pb.js';
import { readImage, readOne, readMagic, type ImageEntry } from './img.js';
import {
  MAGIC,
  CORE_MARCH_X86_64,
  X86_REGS_NATIVE,
  FD_TYPE_REG,
  MAP,
  PE_PARENT,
  PE_PRESENT,
  TASK_STOPPED,
  TASK_ZOMBIE,
  VMA,
} from './proto.js';
import { GPREG_FIELDS, XSAVE_PARTS, O_DIRECTORY, FD_CLOEXEC, S_IFMT, S_IFDIR, S_IFREG, MADV_BITS, MAP_LOCKED } from './layout.js';
import { arr, num, u64 } from './fields.js';
import { type CriuDumpIn, criuDumpImages, criuKindsOf } from './kind-map.js';

export interface CriuImportOptions {
  kernels?: Kernels;
  /** Creation time for the model's header (default: inventory.img's mtime to the microsecond). */
  createdNs?: bigint;
  crid?: bigint;
}

/** An opened CRIU image directory: its model (pages read lazily from pages-N.img). Close it when done. */
export interface CriuImages {
  readonly model: Model;
  readonly dir: string;
  close(): void;
}

const PAGE = 4096;
const PAGE_N = 4096n;

/** True when `p` is a directory whose inventory.img starts with CRIU's inventory magic. */
export function isCriuDir(p: string): boolean {
  try {
    if (!fs.statSync(p).isDirectory()) return false;
  } catch {
    return false;
  }
  return readMagic(path.join(p, 'inventory.img')) === MAGIC.INVENTORY;
}

/** A run of pages of one VMA whose data sits at `fileOff` of pages-N.img. */
interface Seg {
  first: number;
  count: number;
  fileOff: number;
}

class CriuVmaPages implements PageSource {
  constructor(
    private readonly src: Source,
    private readonly segs: Seg[],
    private readonly file: string,
  ) {}
  runs(): Iterable<[number, number]> {
    const out: [number, number][] = [];
    for (const s of this.segs) {
      const last = out[out.length - 1];
      if (last && last[0] + last[1] === s.first) last[1] += s.count;
      else out.push([s.first, s.count]);
    }
    return out;
  }
  read(k: Kernels, dst: number, first: number, n: number): void {
    k.u8().fill(0, dst, dst + n * PAGE);
    // first segment that ends after `first`
    let lo = 0,
      hi = this.segs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.segs[mid]!.first + this.segs[mid]!.count <= first) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.segs.length; i++) {
      const s = this.segs[i]!;
      if (s.first >= first + n) break;
      const a = Math.max(first, s.first);
      const b = Math.min(first + n, s.first + s.count);
      const len = (b - a) * PAGE;
      const pos = s.fileOff + (a - s.first) * PAGE;
      const m = k.u8();
      const got = this.src.pread(m.subarray(dst + (a - first) * PAGE, dst + (a - first) * PAGE + len), pos);
      if (got < len) {
        throw new CrimgError('TRUNCATED', `${this.file} ends inside page data (file shrank while converting)`, { offset: pos + got });
      }
    }
  }
}

function fail(file: string, msg: string, offset?: number): never {
  throw new CrimgError('BAD_CRIU', `${file}: ${msg}`, offset !== undefined ? { offset } : {});
}

// ------------------------------------------------------------------ threads

function thread(tid: number, core: ImageEntry, file: string): Thread {
  const m = core.msg;
  if (num(m.mtype) !== CORE_MARCH_X86_64) {
    throw new CrimgError('WRONG_ARCH', `${file}: core_entry.mtype ${num(m.mtype)} is not X86_64 (1)`, { offset: core.offset });
  }
  const ti = m.thread_info as Msg | undefined;
  if (!ti) fail(file, 'no thread_info (x86 registers)', core.offset);
  const gp = ti.gpregs as Msg;
  if (gp.mode !== undefined && num(gp.mode) !== X86_REGS_NATIVE) {
    fail(file, 'registers of a 32-bit (compat) task: only x86_64 tasks are imported', core.offset);
  }
  const th = newThread(tid);
  GPREG_FIELDS.forEach((f, i) => {
    th.regs[i] = u64(gp[f]);
  });
  const fp = ti.fpregs as Msg;
  th.fpu = fxsave(fp, file, core.offset);
  const xs = fp.xsave as Msg | undefined;
  if (xs) {
    const dv = new DataView(th.fpu.buffer);
    th.xstate = xstate(xs, dv.getBigUint64(464, true), file, core.offset);
    // XCR0 taken from the sw_reserved word: the model keeps it in xstate, its FXSAVE area as NT_PRFPREG gives it (0 there)
    if (dv.getBigUint64(464, true) === th.xstate.xcr0) dv.setBigUint64(464, 0n, true);
  }
  const tcore = m.thread_core as Msg | undefined;
  if (tcore) {
    if (tcore.blk_sigset !== undefined) th.sigmask = u64(tcore.blk_sigset);
    th.sigpending = pendingSet(tcore.signals_p as Msg | undefined);
    const rs = tcore.rseq_entry as Msg | undefined;
    if (rs && u64(rs.rseq_abi_pointer) !== 0n) {
      th.rseq = { ptr: u64(rs.rseq_abi_pointer), len: num(rs.rseq_abi_size), sig: num(rs.signature), flags: 0 };
    }
  }
  for (const k of criuKindsOf('thread')) {
    const v = k.fromCriu({ tid, info: ti, core: tcore });
    if (v !== undefined) k.set(th, v);
  }
  return th;
}

/** The 512-byte FXSAVE area of user_x86_fpregs_entry. */
function fxsave(fp: Msg, file: string, at: number): Uint8Array {
  const st = arr<number>(fp.st_space),
    xmm = arr<number>(fp.xmm_space),
    pad = arr<number>(fp.padding);
  if (st.length !== 32 || xmm.length !== 64 || pad.length > 24) {
    const has = `${st.length} st_space, ${xmm.length} xmm_space and ${pad.length} padding words`;
    fail(file, `fpregs has ${has} (expected 32, 64, at most 24)`, at);
  }
  const f = new Uint8Array(FXSAVE_BYTES);
  const dv = new DataView(f.buffer);
  dv.setUint16(0, num(fp.cwd) & 0xffff, true);
  dv.setUint16(2, num(fp.swd) & 0xffff, true);
  dv.setUint16(4, num(fp.twd) & 0xffff, true);
  dv.setUint16(6, num(fp.fop) & 0xffff, true);
  dv.setBigUint64(8, u64(fp.rip), true);
  dv.setBigUint64(16, u64(fp.rdp), true);
  dv.setUint32(24, num(fp.mxcsr), true);
  dv.setUint32(28, num(fp.mxcsr_mask), true);
  st.forEach((w, i) => dv.setUint32(32 + 4 * i, w, true));
  xmm.forEach((w, i) => dv.setUint32(160 + 4 * i, w, true));
  pad.forEach((w, i) => dv.setUint32(416 + 4 * i, w, true));
  return f;
}

/** The model's XState from user_x86_xsave_entry. XCR0: the padding's sw_reserved word when it is one, else from the arrays present. */
function xstate(xs: Msg, swXcr0: bigint, file: string, at: number): XState {
  let derived = 3n;
  for (const p of XSAVE_PARTS) {
    const a = arr<number | bigint>(xs[p.field]);
    if (a.length === 0) continue;
    if (a.length < (p.field === 'pkru' ? 1 : p.count)) fail(file, `xsave.${p.field} has ${a.length} elements, expected ${p.count}`, at);
    derived |= 1n << BigInt(p.bit);
  }
  const xcr0 = (swXcr0 & 3n) === 3n && (swXcr0 & derived) === derived ? swXcr0 : derived;
  const ext = new Uint8Array(intelXsaveSize(xcr0) - FXSAVE_BYTES);
  const dv = new DataView(ext.buffer);
  dv.setBigUint64(0, u64(xs.xstate_bv) & xcr0, true);
  for (const p of XSAVE_PARTS) {
    const a = arr<number | bigint>(xs[p.field]);
    if (a.length === 0 || !((xcr0 >> BigInt(p.bit)) & 1n)) continue;
    const base = p.offset - FXSAVE_BYTES;
    const n = Math.min(a.length, p.count);
    for (let i = 0; i < n; i++) {
      if (p.width === 4) dv.setUint32(base + 4 * i, num(a[i]), true);
      else dv.setBigUint64(base + 8 * i, u64(a[i]), true);
    }
  }
  return { xcr0, ext };
}

/** The set of signals in a signal_queue_entry (si_signo of each siginfo). */
function pendingSet(q: Msg | undefined): bigint {
  let set = 0n;
  for (const s of arr<Msg>(q?.signals)) {
    const b = s.siginfo as Uint8Array;
    if (b.length < 4) continue;
    const signo = new DataView(b.buffer, b.byteOffset, 4).getInt32(0, true);
    if (signo >= 1 && signo <= 64) set |= 1n << BigInt(signo - 1);
  }
  return set;
}

/** The threads of a task, leader's state, blocked set and the task's shared pending signals included. */
function threadsOf(tids: number[], cores: Map<number, ImageEntry>, pid: number, tc: Msg): Thread[] {
  const threads = tids.map((tid) => thread(tid, cores.get(tid)!, `core-${tid}.img`));
  const shared = pendingSet(tc.signals_s as Msg | undefined);
  if (shared) for (const th of threads) th.sigpending |= shared;
  const main = threads[tids.indexOf(pid)]!;
  const state = num(tc.task_state);
  main.state = state === TASK_STOPPED ? 'T' : state === TASK_ZOMBIE ? 'Z' : '';
  const leaderCore = cores.get(pid)!.msg.thread_core as Msg | undefined;
  if (tc.blk_sigset !== undefined && leaderCore?.blk_sigset === undefined) main.sigmask = u64(tc.blk_sigset);
  return threads;
}

// ------------------------------------------------------------------ task state

function creds(c: Msg | undefined, seccomp: number): Credentials {
  const out = emptyCreds();
  if (!c) {
    out.seccompMode = seccomp;
    return out;
  }
  const cap = (v: unknown): bigint => {
    const a = arr<number>(v);
    return BigInt(a[0] ?? 0) | (BigInt(a[1] ?? 0) << 32n);
  };
  Object.assign(out, {
    uid: num(c.uid),
    gid: num(c.gid),
    euid: num(c.euid),
    egid: num(c.egid),
    suid: num(c.suid),
    sgid: num(c.sgid),
    fsuid: num(c.fsuid),
    fsgid: num(c.fsgid),
    groups: arr<number>(c.groups).slice(),
    capInh: cap(c.cap_inh),
    capPrm: cap(c.cap_prm),
    capEff: cap(c.cap_eff),
    capBnd: cap(c.cap_bnd),
    securebits: num(c.secbits),
    seccompMode: seccomp,
  });
  return out;
}

/** Credentials from the leader's thread_core, else creds-PID.img; seccomp mode from thread_core, else tc. */
function taskCreds(dir: string, pid: number, lead: ImageEntry, tc: Msg): Credentials {
  const ltc = lead.msg.thread_core as Msg | undefined;
  const seccomp =
    ltc?.seccomp_mode !== undefined ? num(ltc.seccomp_mode) : tc.old_seccomp_mode !== undefined ? num(tc.old_seccomp_mode) : 0;
  const credMsg = (ltc?.creds as Msg | undefined) ?? readOne(dir, `creds-${pid}.img`, 'CREDS', 'creds_entry', true)?.msg;
  return creds(credMsg as Msg | undefined, seccomp);
}

function nsIds(ids: Msg | undefined): NamespaceIds {
  const ns = emptyNsIds();
  if (ids) {
    const nsv = (k: string): bigint => (ids[k] !== undefined ? BigInt(num(ids[k])) : 0n);
    Object.assign(ns, {
      pid: nsv('pid_ns_id'),
      net: nsv('net_ns_id'),
      ipc: nsv('ipc_ns_id'),
      uts: nsv('uts_ns_id'),
      mnt: nsv('mnt_ns_id'),
      user: nsv('user_ns_id'),
      cgroup: nsv('cgroup_ns_id'),
      time: nsv('time_ns_id'),
    });
  }
  return ns;
}

function rlimitsOf(tc: Msg): Rlimit[] {
  const rlimits = defaultRlimits();
  arr<Msg>((tc.rlimits as Msg | undefined)?.rlimits)
    .slice(0, 16)
    .forEach((r, j) => {
      rlimits[j] = { cur: u64(r.cur), max: u64(r.max) };
    });
  return rlimits;
}

// ------------------------------------------------------------------ files

function vmaFlags(e: Msg, name: string | null): number {
  const f = num(e.flags),
    st = num(e.status);
  let out = 0;
  if (f & MAP.SHARED) out |= VmaFlags.SHARED;
  if (f & MAP.ANONYMOUS) out |= VmaFlags.ANON;
  if (f & MAP.GROWSDOWN) out |= VmaFlags.GROWSDOWN;
  if (f & MAP.HUGETLB) out |= VmaFlags.HUGETLB;
  if (st & VMA.AREA_STACK) out |= VmaFlags.STACK;
  if (st & VMA.AREA_HEAP) out |= VmaFlags.HEAP;
  if (st & VMA.AREA_VDSO) out |= VmaFlags.VDSO;
  if (st & VMA.AREA_VVAR) out |= VmaFlags.VVAR;
  if (st & VMA.AREA_VSYSCALL) out |= VmaFlags.VSYSCALL;
  if (f & MAP_LOCKED) out |= VmaFlags.LOCKED;
  const madv = e.madv !== undefined ? u64(e.madv) : 0n;
  for (const [flag, advice] of MADV_BITS) if ((madv >> BigInt(advice)) & 1n) out |= flag;
  if (name?.endsWith(' (deleted)')) out |= VmaFlags.FILE_DELETED;
  return out;
}

function pseudoName(st: number): string | null {
  if (st & VMA.AREA_VSYSCALL) return '[vsyscall]';
  if (st & VMA.AREA_VDSO) return '[vdso]';
  if (st & VMA.AREA_VVAR) return '[vvar]';
  if (st & VMA.AREA_STACK) return '[stack]';
  if (st & VMA.AREA_HEAP) return '[heap]';
  return null;
}

/** The reason code of an fd of each CRIU file type crimg does not import (fdinfo_entry.type; others: ANON_INODE). */
const FD_NOCR: Record<number, string> = {
  2: 'PIPE',
  3: 'FIFO',
  4: 'SOCKET',
  5: 'SOCKET',
  6: 'EVENTFD',
  7: 'EPOLL',
  8: 'INOTIFY',
  9: 'SIGNALFD',
  10: 'SOCKET',
  11: 'TTY',
  12: 'FANOTIFY',
  13: 'SOCKET',
  17: 'TIMERFD',
  18: 'MEMFD',
  19: 'BPF',
};

function fileKind(mode: number, flags: number): number {
  const t = mode & S_IFMT;
  if (t === S_IFDIR) return FdKind.DIRECTORY;
  if (t === S_IFREG) return FdKind.REGULAR;
  if (t === 0) return flags & O_DIRECTORY ? FdKind.DIRECTORY : FdKind.REGULAR;
  return FdKind.OTHER;
}

/** Regular files by id: files.img (images of CRIU 3.x) or reg-files.img (older). */
function readRegFiles(dir: string): Map<number, Msg> {
  const regs = new Map<number, Msg>();
  for (const e of readImage(dir, 'files.img', 'FILES', 'file_entry', 'file_entry', true) ?? []) {
    if (num(e.msg.type) === FD_TYPE_REG && e.msg.reg) regs.set(num(e.msg.id), e.msg.reg as Msg);
  }
  if (regs.size === 0) {
    const old = readImage(dir, 'reg-files.img', 'REG_FILES', 'reg_file_entry', 'reg_file_entry', true) ?? [];
    for (const e of old) regs.set(num(e.msg.id), e.msg);
  }
  return regs;
}

function regName(d: CriuDir, id: number, file: string, at: number): string {
  const r = d.regs.get(id);
  if (!r) fail(file, `file id ${id} is not in files.img`, at);
  return r.name as string;
}

/** cwd and root from fs-PID.img ('' and '/' without one). */
function fsOf(d: CriuDir, pid: number): { cwd: string; root: string } {
  const name = `fs-${pid}.img`;
  const e = readOne(d.dir, name, 'FS', 'fs_entry', true);
  if (!e) return { cwd: '', root: '/' };
  return { cwd: regName(d, num(e.msg.cwd_id), name, e.offset), root: regName(d, num(e.msg.root_id), name, e.offset) };
}

/** The task's open regular files from its fdinfo image; other fds become reasons. */
function filesOf(d: CriuDir, pid: number, ids: Msg | undefined): { files: OpenFile[]; nocr: NocrReason[] } {
  const files: OpenFile[] = [];
  const nocr: NocrReason[] = [];
  const fdName = ids && d.fdinfoPerId ? `fdinfo-${num(ids.files_id)}.img` : `fdinfo-${pid}.img`;
  for (const e of readImage(d.dir, fdName, 'FDINFO', 'fdinfo_entry', 'fdinfo_entry', true) ?? []) {
    const fdn = num(e.msg.fd),
      type = num(e.msg.type),
      id = num(e.msg.id);
    if (type !== FD_TYPE_REG) {
      const text = `fd ${fdn} is a CRIU file of type ${type}, which crimg does not import`;
      nocr.push({ code: FD_NOCR[type] ?? 'ANON_INODE', pid, text });
      continue;
    }
    const r = d.regs.get(id);
    if (!r) fail(fdName, `fd ${fdn} refers to file id ${id}, which is not in files.img`, e.offset);
    const flags = num(r.flags),
      mode = r.mode !== undefined ? num(r.mode) : 0;
    files.push({
      fd: fdn,
      kind: fileKind(mode, flags),
      path: r.name as string,
      flags,
      pos: u64(r.pos),
      mode,
      cloexec: (num(e.msg.flags) & FD_CLOEXEC) !== 0,
      devMajor: 0,
      devMinor: 0,
      inode: 0n,
      size: r.size !== undefined ? u64(r.size) : 0n,
    });
  }
  for (const k of criuKindsOf('fd')) for (const [f, v] of k.fromCriu({ pid, files, dump: d.dump, nocr })) k.set(f, v);
  return { files, nocr };
}

// ------------------------------------------------------------------ address space

function vmasOf(d: CriuDir, m: Msg, file: string, at: number): Vma[] {
  const vmas: Vma[] = [];
  let prevEnd = 0n;
  for (const v of arr<Msg>(m.vmas)) {
    const start = u64(v.start),
      end = u64(v.end);
    if (start % PAGE_N || end % PAGE_N || end <= start) {
      fail(file, `VMA 0x${start.toString(16)}-0x${end.toString(16)} is not a page-aligned, non-empty range`, at);
    }
    if (start < prevEnd) fail(file, `VMA 0x${start.toString(16)} overlaps the one before or is out of order`, at);
    prevEnd = end;
    const st = num(v.status);
    const isFile = (st & (VMA.FILE_PRIVATE | VMA.FILE_SHARED)) !== 0;
    const p = isFile ? regName(d, num(u64(v.shmid)), file, at) : pseudoName(st);
    vmas.push({
      start,
      end,
      prot: num(v.prot) & 7,
      flags: vmaFlags(v, isFile ? p : null),
      pgoff: u64(v.pgoff) / PAGE_N,
      devMajor: 0,
      devMinor: 0,
      inode: st & VMA.ANON_SHARED ? u64(v.shmid) : 0n,
      path: p,
      pages: NO_PAGES,
    });
  }
  return vmas;
}

/** The address space from mm-PID.img (null without one), its pages from pagemap-PID.img, and the exe's path. */
function mmOf(d: CriuDir, pid: number): { mm: Task['mm']; exe: string } {
  const mf = `mm-${pid}.img`;
  const mmE = readOne(d.dir, mf, 'MM', 'mm_entry', true);
  if (!mmE) return { mm: null, exe: '' };
  const m = mmE.msg;
  const exeId = num(m.exe_file_id);
  const exe = exeId && d.regs.has(exeId) ? (d.regs.get(exeId)!.name as string) : '';
  const auxv = arr<bigint>(m.mm_saved_auxv).map(u64);
  let n = 0;
  while (n + 1 < auxv.length && auxv[n] !== 0n) n += 2; // up to AT_NULL
  const vmas = vmasOf(d, m, mf, mmE.offset);
  pagesInto(d.dir, pid, vmas, d.sources);
  const mm = {
    startCode: u64(m.mm_start_code),
    endCode: u64(m.mm_end_code),
    startData: u64(m.mm_start_data),
    endData: u64(m.mm_end_data),
    startBrk: u64(m.mm_start_brk),
    brk: u64(m.mm_brk),
    startStack: u64(m.mm_start_stack),
    argStart: u64(m.mm_arg_start),
    argEnd: u64(m.mm_arg_end),
    envStart: u64(m.mm_env_start),
    envEnd: u64(m.mm_env_end),
    auxv: auxv.slice(0, n),
    vmas,
  };
  return { mm, exe };
}

// ------------------------------------------------------------------ tasks

/** What is read before the tasks: the inventory, the tree, the kinds' dump-wide images, the regular files. */
interface CriuDir {
  dir: string;
  fdinfoPerId: boolean;
  tree: ImageEntry[];
  dump: CriuDumpIn;
  regs: Map<number, Msg>;
  /** Page sources opened for the model (closed with it). */
  sources: Source[];
}

function readDir(dir: string, sources: Source[]): CriuDir {
  const inv = readOne(dir, 'inventory.img', 'INVENTORY', 'inventory_entry')!;
  const ver = num(inv.msg.img_version);
  if (ver !== 1 && ver !== 2) fail('inventory.img', `img_version ${ver} is not one crimg reads (1 or 2)`, inv.offset);
  const tree = readImage(dir, 'pstree.img', 'PSTREE', 'pstree_entry')!;
  const dump = readDumpImages(dir);
  if (tree.length === 0) fail('pstree.img', 'no tasks');
  return { dir, fdinfoPerId: inv.msg.fdinfo_per_id === true, tree, dump, regs: readRegFiles(dir), sources };
}

/** The dump-wide images the mapped kinds keep their entries in (a missing file: no entries). */
function readDumpImages(dir: string): CriuDumpIn {
  const byFile = new Map<string, readonly ImageEntry[]>();
  for (const i of criuDumpImages()) byFile.set(i.file, readImage(dir, i.file, i.magic, i.entry, i.entry, true) ?? []);
  return {
    entries: (i) => {
      const e = byFile.get(i.file);
      if (!e) throw new CrimgError('INTERNAL', `${i.file} is not a dump-wide image of a mapped kind`);
      return e;
    },
  };
}

/** Indexes of the pstree entries in pre-order: every parent before its children. */
function taskOrder(tree: ImageEntry[]): number[] {
  const entries = tree.map((e) => e.msg);
  const byPid = new Map(entries.map((e, i) => [num(e.pid), i]));
  if (byPid.size !== entries.length) fail('pstree.img', 'a pid appears twice');
  const kids = new Map<number, number[]>();
  const roots: number[] = [];
  entries.forEach((e, i) => {
    const pp = num(e.ppid);
    if (pp !== 0 && byPid.has(pp) && pp !== num(e.pid)) {
      const l = kids.get(pp) ?? [];
      l.push(i);
      kids.set(pp, l);
    } else roots.push(i);
  });
  const order: number[] = [];
  const visit = (i: number): void => {
    order.push(i);
    for (const c of kids.get(num(entries[i]!.pid)) ?? []) visit(c);
  };
  roots.forEach(visit);
  if (order.length !== entries.length) fail('pstree.img', 'the parent links form a cycle');
  return order;
}

function importTask(d: CriuDir, te: ImageEntry): Task {
  const pe = te.msg;
  const pid = num(pe.pid);
  const tids = arr<number>(pe.threads);
  if (!tids.includes(pid)) tids.unshift(pid);
  if (new Set(tids).size !== tids.length) fail('pstree.img', `task ${pid} lists a thread twice`, te.offset);
  const cores = new Map<number, ImageEntry>(tids.map((tid) => [tid, readOne(d.dir, `core-${tid}.img`, 'CORE', 'core_entry')!]));
  const lead = cores.get(pid)!;
  const tc = lead.msg.tc as Msg | undefined;
  if (!tc) fail(`core-${pid}.img`, 'the task leader has no tc (task_core_entry)', lead.offset);
  const threads = threadsOf(tids, cores, pid, tc);
  const ids = (readOne(d.dir, `ids-${pid}.img`, 'IDS', 'task_kobj_ids_entry', true)?.msg ?? lead.msg.ids) as Msg | undefined;
  const ns = nsIds(ids);
  const taskCredentials = taskCreds(d.dir, pid, lead, tc);
  const rlimits = rlimitsOf(tc);
  const { cwd, root } = fsOf(d, pid);
  const { files, nocr } = filesOf(d, pid, ids);
  const { mm, exe } = mmOf(d, pid);
  const task: Task = {
    pid,
    tgid: pid,
    ppid: num(pe.ppid),
    pgid: num(pe.pgid),
    sid: num(pe.sid),
    comm: tc.comm as string,
    exe,
    cwd,
    root,
    args: [],
    env: [],
    personality: num(tc.personality) | 0,
    exitSignal: 17,
    creds: taskCredentials,
    rlimits,
    ns,
    threads,
    mm,
    files,
    nocr,
  };
  for (const k of criuKindsOf('task')) {
    const v = k.fromCriu({ pid, tc });
    if (v !== undefined) k.set(task, v);
  }
  return task;
}

/** Creation time for the header: the option, else inventory.img's mtime to the microsecond (0 when unknown). */
function createdNsOf(dir: string, opts: CriuImportOptions): bigint {
  if (opts.createdNs !== undefined) return opts.createdNs;
  try {
    return ((fs.statSync(path.join(dir, 'inventory.img'), { bigint: true }).mtimeNs + 500n) / 1000n) * 1000n;
  } catch {
    return 0n;
  }
}

/**
 * Open a CRIU image directory as a model. Every image file is checked now (BAD_CRIU,
 * TRUNCATED, WRONG_ARCH, with the file name and byte offset); page contents are read
 * from pages-N.img when the model's page sources are asked for them.
 */
export function fromCriuImages(dir: string, opts: CriuImportOptions = {}): CriuImages {
  const sources: Source[] = [];
  const closeAll = (): void => {
    for (const s of sources.splice(0)) {
      try {
        s.close();
      } catch {
        /* ignore */
      }
    }
  };
  try {
    const d = readDir(dir, sources);
    const tasks = taskOrder(d.tree).map((i) => importTask(d, d.tree[i]!));
    // the namespaces the tasks use, in the order crimg's live dump lists them; UTS names from utsns-ID.img
    const namespaces = namespacesOf(tasks, (_t, id) => {
      const u = readOne(dir, `utsns-${id}.img`, 'UTSNS', 'utsns_entry', true);
      return u ? { nodename: u.msg.nodename as string, domainname: u.msg.domainname as string } : null;
    });
    const model: Model = {
      header: {
        crid: opts.crid ?? 0n,
        createdNs: createdNsOf(dir, opts),
        flags: 0,
        tool: 'crimg (from CRIU images)',
        uts: { sysname: 'Linux', nodename: '', release: '', version: '', machine: 'x86_64', domainname: '' },
        freezeNs: 0n,
      },
      namespaces,
      tasks,
    };
    let closed = false;
    return {
      model,
      dir,
      close: () => {
        if (!closed) closeAll();
        closed = true;
      },
    };
  } catch (e) {
    closeAll();
    throw e;
  }
}

/** Attach the pages of pagemap-PID.img / pages-N.img to the VMAs (sorted, disjoint). */
function pagesInto(dir: string, pid: number, vmas: Vma[], sources: Source[]): void {
  const pf = `pagemap-${pid}.img`;
  const pm = readImage(dir, pf, 'PAGEMAP', 'pagemap_head', 'pagemap_entry', true);
  if (!pm) return;
  if (pm.length === 0) fail(pf, 'no pagemap_head');
  const pagesName = `pages-${num(pm[0]!.msg.pages_id)}.img`;
  const segs = vmas.map((): Seg[] => []);
  let fileOff = 0;
  let vi = 0;
  let prevEnd = 0n;
  for (const { msg: e, offset } of pm.slice(1)) {
    const vaddr = u64(e.vaddr);
    const count = num(e.nr_pages);
    const flags = e.flags !== undefined ? num(e.flags) : e.in_parent ? PE_PARENT : PE_PRESENT;
    if (flags & PE_PARENT) {
      fail(pf, `pages at 0x${vaddr.toString(16)} are in the parent images (an incremental dump): not supported`, offset);
    }
    if (!(flags & PE_PRESENT)) continue; // lazy pages: not in this directory
    if (vaddr % PAGE_N) fail(pf, `pagemap entry at 0x${vaddr.toString(16)} is not page aligned`, offset);
    if (vaddr < prevEnd) fail(pf, `pagemap entry at 0x${vaddr.toString(16)} is out of order`, offset);
    const end = vaddr + BigInt(count) * PAGE_N;
    prevEnd = end;
    // split over the VMAs it covers (CRIU merges adjacent VMAs into one entry)
    let a = vaddr;
    while (a < end) {
      while (vi < vmas.length && vmas[vi]!.end <= a) vi++;
      const v = vmas[vi];
      if (!v || v.start > a) fail(pf, `pages at 0x${a.toString(16)} are outside every VMA`, offset);
      const b = end < v.end ? end : v.end;
      const n = Number((b - a) / PAGE_N);
      segs[vi]!.push({ first: Number((a - v.start) / PAGE_N), count: n, fileOff });
      fileOff += n * PAGE;
      a = b;
    }
  }
  if (fileOff === 0) return;
  const src = openSource(path.join(dir, pagesName));
  sources.push(src);
  if (src.size < fileOff) {
    throw new CrimgError('TRUNCATED', `${pagesName} holds ${src.size} bytes, ${pf} needs ${fileOff}`, { offset: src.size });
  }
  vmas.forEach((v, i) => {
    if (segs[i]!.length) v.pages = new CriuVmaPages(src, segs[i]!, pagesName);
  });
}
