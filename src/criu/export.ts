/**
 * Model -> CRIU image directory (images v1.1, as CRIU 3.x writes and `crit` reads):
 *
 *   inventory.img          img_version 2, root task's ids, fdinfo_per_id, ns_per_id
 *   pstree.img             one entry per task (pre-order): pid, ppid (0 for a root), pgid, sid, threads
 *   core-TID.img           per thread: x86 registers (gpregs, fpregs, xsave), thread_core (signal mask,
 *                          pending signals, creds, rseq, seccomp); the task's leader also carries tc
 *                          (state, personality, comm, rlimits, blocked set, signal dispositions)
 *   ids-PID.img            vm/files/fs/sighand ids and namespace ids
 *   mm-PID.img             mm_struct boundaries, saved auxv, VMAs, exe_file_id
 *   pagemap-PID.img        pagemap_head {pages_id} + one entry per run of recorded pages
 *   pages-N.img            the page data in pagemap order; zero pages are holes of the (sparse) file
 *   creds-PID.img, fs-PID.img, fdinfo-N.img, files.img (regular files: mapped, exe, cwd, root, open fds)
 *   utsns-ID.img           host and domain name of each UTS namespace the tasks use
 *   filelocks.img, ...     dump-wide images of the kinds of optional state (only when they have entries)
 *
 * Each kind of optional state crimg records (signal dispositions, timers, futex state, file locks, ...) is put
 * into these messages by its src/kinds/<dir>/criu.ts, through the one table in ./kind-map.ts.
 * Everything is written into a temporary directory next to the destination, which is
 * renamed into place when complete: a failure leaves nothing behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CrimgError, ioError } from '../errors.js';
import { kernels } from '../kernels/index.js';
import type { Kernels } from '../kernels/api.js';
import { claimRegion, releaseRegion } from '../kernels/arena.js';
import { type Model, type Task, type Thread, type Vma, FdKind, VmaFlags, FXSAVE_BYTES, NREGS } from '../model.js';
import { Image } from '../reader.js';
import { isFileVma } from '../elf/export.js';
import type { Msg } from './pb.js';
import { imageBytes, type MagicName } from './img.js';
import {
  CORE_MARCH_X86_64,
  CRTOOLS_IMAGES_V1_1,
  FD_TYPE_REG,
  MAP,
  PE_PRESENT,
  TASK_ALIVE,
  TASK_STOPPED,
  TASK_ZOMBIE,
  VMA,
  X86_REGS_NATIVE,
  type MessageName,
} from './proto.js';
import { GPREG_FIELDS, XSAVE_PARTS, O_DIRECTORY, FD_CLOEXEC, MADV_BITS, MAP_LOCKED } from './layout.js';
import { type CriuDumpImage, type CriuDumpOut, criuKindsOf } from './kind-map.js';
import { pageSpans } from '../pagespans.js';

export interface CriuExportOptions {
  kernels?: Kernels;
  /** fsync every file and the directory before the rename. */
  fsync?: boolean;
  /** Called after each run of pages with the page bytes written so far. */
  onProgress?: (bytes: number) => void;
}

export interface CriuExportResult {
  dir: string;
  files: number;
  tasks: number;
  threads: number;
  vmas: number;
  /** Pages written with data, pages left as holes (zero pages), pages not written (vsyscall/vvar). */
  pagesWritten: number;
  pagesHole: number;
  pagesDropped: number;
  /** Open file descriptors left out (pipes, sockets, anonymous inodes: CRIU needs state crimg does not have). */
  fdsSkipped: number;
  /** Bytes of all files (holes included). */
  bytes: number;
}

const PAGE = 4096;
const CHUNK_PAGES = 256;

/** Writes a raw file with holes: positioned writes, ftruncate at the end. */
class RawOut {
  pos = 0;
  constructor(
    readonly fd: number,
    readonly name: string,
  ) {}
  write(b: Uint8Array): void {
    let off = 0;
    try {
      while (off < b.length) off += fs.writeSync(this.fd, b, off, b.length - off, this.pos + off);
    } catch (e) {
      throw ioError(`writing ${this.name}`, e);
    }
    this.pos += b.length;
  }
  hole(n: number): void {
    this.pos += n;
  }
  finish(sync: boolean): void {
    try {
      fs.ftruncateSync(this.fd, this.pos);
      if (sync) fs.fsyncSync(this.fd);
    } catch (e) {
      throw ioError(`finishing ${this.name}`, e);
    }
  }
}

/** Regular files of the dump (files.img), shared between fds, mappings, exe, cwd and root. */
class FileTable {
  readonly entries: Msg[] = [];
  private byKey = new Map<string, number>();
  private next = 1;
  add(name: string, flags: number, extra: { pos?: bigint; size?: bigint; mode?: number; key?: string } = {}): number {
    const key = extra.key;
    if (key !== undefined) {
      const have = this.byKey.get(key);
      if (have !== undefined) return have;
    }
    const id = this.next++;
    const reg: Msg = { id, flags, pos: extra.pos ?? 0n, fown: { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 }, name };
    if (extra.size !== undefined) reg.size = extra.size;
    if (extra.mode !== undefined && extra.mode !== 0) reg.mode = extra.mode;
    this.entries.push({ type: FD_TYPE_REG, id, reg });
    if (key !== undefined) this.byKey.set(key, id);
    return id;
  }
}

function u32s(b: Uint8Array, off: number, n: number): number[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(dv.getUint32(off + 4 * i, true));
  return out;
}
function u64s(b: Uint8Array, off: number, n: number): bigint[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: bigint[] = [];
  for (let i = 0; i < n; i++) out.push(dv.getBigUint64(off + 8 * i, true));
  return out;
}

function fpregsOf(th: Thread): Msg {
  const f = th.fpu;
  if (f.length !== FXSAVE_BYTES) throw new CrimgError('INTERNAL', `thread ${th.tid}: FXSAVE area of ${f.length} bytes`);
  const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const m: Msg = {
    cwd: dv.getUint16(0, true),
    swd: dv.getUint16(2, true),
    twd: dv.getUint16(4, true),
    fop: dv.getUint16(6, true),
    rip: dv.getBigUint64(8, true),
    rdp: dv.getBigUint64(16, true),
    mxcsr: dv.getUint32(24, true),
    mxcsr_mask: dv.getUint32(28, true),
    st_space: u32s(f, 32, 32),
    xmm_space: u32s(f, 160, 64),
    padding: u32s(f, 416, 24),
  };
  // XCR0 in the sw_reserved word at 464 (as ptrace's XSAVE area and so CRIU's own dumps have it),
  // unless the FXSAVE area holds something there: import takes XCR0 from it
  if (th.xstate && dv.getBigUint64(464, true) === 0n) {
    const pad = m.padding as number[];
    pad[12] = Number(th.xstate.xcr0 & 0xffffffffn);
    pad[13] = Number(th.xstate.xcr0 >> 32n);
  }
  if (th.xstate) {
    const x = th.xstate;
    const ext = x.ext;
    const xm: Msg = { xstate_bv: ext.length >= 8 ? new DataView(ext.buffer, ext.byteOffset, 8).getBigUint64(0, true) : 0n };
    for (const p of XSAVE_PARTS) {
      if (!((x.xcr0 >> BigInt(p.bit)) & 1n)) continue;
      const at = p.offset - FXSAVE_BYTES;
      const bytes = p.count * p.width;
      const src = new Uint8Array(bytes);
      if (at < ext.length) src.set(ext.subarray(at, Math.min(ext.length, at + bytes)));
      xm[p.field] = p.width === 4 ? u32s(src, 0, p.count) : u64s(src, 0, p.count);
    }
    m.xsave = xm;
  }
  return m;
}

function credsOf(t: Task): Msg {
  const c = t.creds;
  const cap = (v: bigint): number[] => [Number(v & 0xffffffffn), Number((v >> 32n) & 0xffffffffn)];
  return {
    uid: c.uid,
    gid: c.gid,
    euid: c.euid,
    egid: c.egid,
    suid: c.suid,
    sgid: c.sgid,
    fsuid: c.fsuid,
    fsgid: c.fsgid,
    cap_inh: cap(c.capInh),
    cap_prm: cap(c.capPrm),
    cap_eff: cap(c.capEff),
    cap_bnd: cap(c.capBnd),
    secbits: c.securebits,
    groups: [...c.groups],
  };
}

/** Pending signals as siginfo entries (si_signo set, si_code SI_USER): the model keeps only the set. */
function pendingOf(set: bigint): Msg | undefined {
  if (set === 0n) return undefined;
  const signals: Msg[] = [];
  for (let s = 1; s <= 64; s++) {
    if (!((set >> BigInt(s - 1)) & 1n)) continue;
    const si = new Uint8Array(128);
    new DataView(si.buffer).setInt32(0, s, true);
    signals.push({ siginfo: si });
  }
  return { signals };
}

function taskState(th: Thread): number {
  if (th.state === 'T' || th.state === 't') return TASK_STOPPED;
  if (th.state === 'Z') return TASK_ZOMBIE;
  return TASK_ALIVE;
}

/** The thread's thread_core_entry (futex_rla and futex_rla_len are required: the FUTEX kind sets them when recorded). */
function threadCoreOf(task: Task, th: Thread): Msg {
  const core: Msg = { futex_rla: 0n, futex_rla_len: 0, blk_sigset: th.sigmask, creds: credsOf(task), comm: task.comm };
  const pend = pendingOf(th.sigpending);
  if (pend) core.signals_p = pend;
  if (task.creds.seccompMode) core.seccomp_mode = task.creds.seccompMode;
  if (th.rseq) core.rseq_entry = { rseq_abi_pointer: th.rseq.ptr, rseq_abi_size: th.rseq.len, signature: th.rseq.sig };
  return core;
}

/** The leader's task_core_entry. */
function taskCoreOf(task: Task, leader: Thread): Msg {
  const tc: Msg = {
    task_state: taskState(leader),
    exit_code: 0,
    personality: task.personality >>> 0,
    flags: 0,
    blk_sigset: leader.sigmask,
    comm: task.comm,
    rlimits: { rlimits: task.rlimits.map((r) => ({ cur: r.cur, max: r.max })) },
  };
  if (task.creds.seccompMode) tc.old_seccomp_mode = task.creds.seccompMode;
  for (const k of criuKindsOf('task')) {
    const v = k.get(task);
    if (v !== undefined) k.toCriu(v, { task, tc });
  }
  return tc;
}

function coreOf(task: Task, th: Thread, leader: boolean): Msg {
  if (th.regs.length !== NREGS) throw new CrimgError('INTERNAL', `thread ${th.tid}: ${th.regs.length} registers, expected ${NREGS}`);
  const gpregs: Msg = { mode: X86_REGS_NATIVE };
  GPREG_FIELDS.forEach((f, i) => {
    gpregs[f] = th.regs[i]!;
  });
  // clear_tid_addr is required: the FUTEX kind sets it when recorded
  const info: Msg = { clear_tid_addr: 0n, gpregs, fpregs: fpregsOf(th) };
  const core = threadCoreOf(task, th);
  for (const k of criuKindsOf('thread')) {
    const v = k.get(th);
    if (v !== undefined) k.toCriu(v, { thread: th, info, core });
  }
  const m: Msg = { mtype: CORE_MARCH_X86_64, thread_info: info, thread_core: core };
  if (leader) m.tc = taskCoreOf(task, th);
  return m;
}

function mapFlags(v: Vma): number {
  return (
    (v.flags & VmaFlags.SHARED ? MAP.SHARED : MAP.PRIVATE)
    | (v.flags & VmaFlags.ANON ? MAP.ANONYMOUS : 0)
    | (v.flags & VmaFlags.GROWSDOWN ? MAP.GROWSDOWN : 0)
    | (v.flags & VmaFlags.HUGETLB ? MAP.HUGETLB : 0)
    | (v.flags & VmaFlags.LOCKED ? MAP_LOCKED : 0)
  );
}

/** Kernel-provided areas CRIU never dumps pages of. */
function noPages(v: Vma): boolean {
  return (v.flags & (VmaFlags.VSYSCALL | VmaFlags.VVAR)) !== 0;
}

function vmaOf(v: Vma, files: FileTable): Msg {
  let status = 0;
  let shmid = 0n;
  let fdflags: number | undefined;
  if (v.flags & VmaFlags.VSYSCALL) status = VMA.AREA_VSYSCALL;
  else {
    status = VMA.AREA_REGULAR;
    if (v.flags & VmaFlags.VDSO) status |= VMA.AREA_VDSO;
    if (v.flags & VmaFlags.VVAR) status |= VMA.AREA_VVAR;
    if (isFileVma(v)) {
      status |= v.flags & VmaFlags.SHARED ? VMA.FILE_SHARED : VMA.FILE_PRIVATE;
      fdflags = v.flags & VmaFlags.SHARED && v.prot & 2 ? 2 : 0; // O_RDWR for a writable shared mapping
      shmid = BigInt(files.add(v.path!, fdflags, { key: `map:${fdflags}:${v.path}` }));
    } else if (!(v.flags & (VmaFlags.VDSO | VmaFlags.VVAR))) {
      status |= v.flags & VmaFlags.SHARED ? VMA.ANON_SHARED : VMA.ANON_PRIVATE;
      if (v.flags & VmaFlags.SHARED) shmid = v.inode;
    }
  }
  if (v.flags & VmaFlags.STACK) status |= VMA.AREA_STACK;
  if (v.flags & VmaFlags.HEAP) status |= VMA.AREA_HEAP;
  const e: Msg = {
    start: v.start,
    end: v.end,
    pgoff: v.pgoff * BigInt(PAGE),
    shmid,
    prot: v.prot & 7,
    flags: mapFlags(v),
    status,
    fd: -1n,
  };
  if (fdflags !== undefined) e.fdflags = fdflags;
  let madv = 0n;
  for (const [flag, advice] of MADV_BITS) if (v.flags & flag) madv |= 1n << BigInt(advice);
  if (madv) e.madv = madv;
  return e;
}

interface Counts {
  pagesWritten: number;
  pagesHole: number;
  pagesDropped: number;
  bytes: number;
}

/** Stream the recorded pages of a task: pagemap entries (returned) and pages-N.img (written through out). */
function writePages(task: Task, k: Kernels, region: number, out: RawOut, c: Counts, onProgress?: (n: number) => void): Msg[] {
  const entries: Msg[] = [];
  for (const v of task.mm!.vmas) {
    const npages = Number((v.end - v.start) / BigInt(PAGE));
    let last = -1;
    for (const [first, count] of v.pages.runs(npages)) {
      if (first < 0 || count <= 0 || first + count > npages || first < last) {
        throw new CrimgError('INTERNAL', `page source of VMA 0x${v.start.toString(16)} gave a bad run [${first}, +${count})`);
      }
      last = first + count;
      if (noPages(v)) {
        c.pagesDropped += count;
        continue;
      }
      // pagemap_entry.nr_pages is a u32
      for (let s = first; s < first + count; s += 0x7fff0000) {
        entries.push({ vaddr: v.start + BigInt(s) * BigInt(PAGE), nr_pages: Math.min(0x7fff0000, first + count - s), flags: PE_PRESENT });
      }
      for (const s of pageSpans(k, v, first, count, region, CHUNK_PAGES)) {
        if (!s.zero) {
          out.write(k.u8().subarray(s.at, s.at + s.pages * PAGE));
          c.pagesWritten += s.pages;
        } else {
          out.hole(s.pages * PAGE);
          c.pagesHole += s.pages;
        }
        if (s.chunkEnd) onProgress?.(c.bytes + out.pos);
      }
    }
  }
  return entries;
}

/** True for a path that names a file CRIU can keep as a regular file (fds of pipes, sockets, anon inodes cannot). */
function regularFd(kind: number, p: string): boolean {
  return kind === FdKind.REGULAR || kind === FdKind.DIRECTORY || p.startsWith('/');
}

/** The temporary directory the images are written to, renamed to the destination when complete; with counts. */
class DirOut {
  files = 0;
  fdsSkipped = 0;
  readonly c: Counts = { pagesWritten: 0, pagesHole: 0, pagesDropped: 0, bytes: 0 };
  constructor(
    readonly tmp: string,
    readonly opts: CriuExportOptions,
  ) {}

  /** Write an image file of protobuf entries. */
  put(name: string, magic: MagicName, entries: [MessageName, Msg][]): void {
    const b = imageBytes(magic, entries);
    const file = path.join(this.tmp, name);
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx', 0o644);
    } catch (e) {
      throw ioError(`cannot create ${file}`, e);
    }
    try {
      let off = 0;
      while (off < b.length) off += fs.writeSync(fd, b, off, b.length - off);
      if (this.opts.fsync) fs.fsyncSync(fd);
    } catch (e) {
      throw ioError(`writing ${file}`, e);
    } finally {
      fs.closeSync(fd);
    }
    this.c.bytes += b.length;
    this.files++;
  }

  /** Write a raw file (pages-N.img) through `write`; returns what it returns. */
  raw<T>(name: string, write: (out: RawOut) => T): T {
    let fd: number;
    try {
      fd = fs.openSync(path.join(this.tmp, name), 'wx', 0o644);
    } catch (e) {
      throw ioError(`cannot create ${name}`, e);
    }
    const out = new RawOut(fd, name);
    let r: T;
    try {
      r = write(out);
      out.finish(!!this.opts.fsync);
    } finally {
      fs.closeSync(fd);
    }
    this.c.bytes += out.pos;
    this.files++;
    return r;
  }
}

/** The entries of the kinds' dump-wide images (filelocks.img, ...), collected over all tasks. */
class DumpImages implements CriuDumpOut {
  private readonly byFile = new Map<string, { image: CriuDumpImage; entries: Msg[] }>();
  add(image: CriuDumpImage, entry: Msg): void {
    const have = this.byFile.get(image.file) ?? { image, entries: [] };
    have.entries.push(entry);
    this.byFile.set(image.file, have);
  }
  /** Write each image that has entries. */
  write(out: DirOut): void {
    for (const { image, entries } of this.byFile.values()) {
      if (entries.length)
        out.put(
          image.file,
          image.magic,
          entries.map((e): [MessageName, Msg] => [image.entry, e]),
        );
    }
  }
}

/** What the images of all tasks share: the regular files (files.img), the kinds' dump-wide images, the kernels' region pages go through. */
interface Shared {
  files: FileTable;
  dump: DumpImages;
  k: Kernels;
  region: number;
  opts: CriuExportOptions;
}

/** task_kobj_ids_entry of the n-th task (from 1): its own vm/files/fs/sighand ids, the namespace ids that fit a u32. */
function idsOf(t: Task, n: number): Msg {
  const m: Msg = { vm_id: n, files_id: n, fs_id: n, sighand_id: n };
  const ns = (v: bigint): number | undefined => (v > 0n && v <= 0xffffffffn ? Number(v) : undefined);
  m.pid_ns_id = ns(t.ns.pid);
  m.net_ns_id = ns(t.ns.net);
  m.ipc_ns_id = ns(t.ns.ipc);
  m.uts_ns_id = ns(t.ns.uts);
  m.mnt_ns_id = ns(t.ns.mnt);
  m.user_ns_id = ns(t.ns.user);
  m.cgroup_ns_id = ns(t.ns.cgroup);
  m.time_ns_id = ns(t.ns.time);
  return m;
}

function pstreeOf(model: Model): [MessageName, Msg][] {
  const pids = new Set(model.tasks.map((t) => t.pid));
  return model.tasks.map((t) => [
    'pstree_entry',
    {
      pid: t.pid,
      ppid: pids.has(t.ppid) && t.ppid !== t.pid ? t.ppid : 0,
      pgid: t.pgid,
      sid: t.sid,
      threads: [t.pid, ...t.threads.filter((th) => th.tid !== t.pid).map((th) => th.tid)],
    },
  ]);
}

/** fdinfo entries of the fds CRIU keeps as regular files (the others are counted as skipped), with their kinds. */
function fdinfoOf(t: Task, sh: Shared, out: DirOut): [MessageName, Msg][] {
  const fdinfo: [MessageName, Msg][] = [];
  for (const f of t.files) {
    if (!regularFd(f.kind, f.path)) {
      out.fdsSkipped++;
      continue;
    }
    const id = sh.files.add(f.path, f.flags >>> 0, { pos: f.pos, size: f.size, mode: f.mode });
    fdinfo.push(['fdinfo_entry', { id, flags: f.cloexec ? FD_CLOEXEC : 0, type: FD_TYPE_REG, fd: f.fd }]);
    for (const k of criuKindsOf('fd')) {
      const v = k.get(f);
      if (v !== undefined) k.toCriu(v, { pid: t.pid, file: f, dump: sh.dump });
    }
  }
  return fdinfo;
}

/** mm-PID.img, pages-N.img and pagemap-PID.img of a task with an address space. */
function writeMm(t: Task, n: number, sh: Shared, out: DirOut): void {
  const mm = t.mm!;
  const vmas = mm.vmas.map((v) => vmaOf(v, sh.files));
  const exeId = t.exe ? sh.files.add(t.exe, 0, { key: `map:0:${t.exe}` }) : 0;
  out.put(`mm-${t.pid}.img`, 'MM', [
    [
      'mm_entry',
      {
        mm_start_code: mm.startCode,
        mm_end_code: mm.endCode,
        mm_start_data: mm.startData,
        mm_end_data: mm.endData,
        mm_start_stack: mm.startStack,
        mm_start_brk: mm.startBrk,
        mm_brk: mm.brk,
        mm_arg_start: mm.argStart,
        mm_arg_end: mm.argEnd,
        mm_env_start: mm.envStart,
        mm_env_end: mm.envEnd,
        exe_file_id: exeId,
        mm_saved_auxv: [...mm.auxv, 0n, 0n],
        vmas,
      },
    ],
  ]);
  const entries = out.raw(`pages-${n}.img`, (raw) => writePages(t, sh.k, sh.region, raw, out.c, sh.opts.onProgress));
  const pagemap = entries.map((e): [MessageName, Msg] => ['pagemap_entry', e]);
  out.put(`pagemap-${t.pid}.img`, 'PAGEMAP', [['pagemap_head', { pages_id: n }], ...pagemap]);
}

/** The images of the n-th task (from 1): its threads' cores, ids, creds, fs, fdinfo and address space. */
function writeTask(t: Task, n: number, ids: Msg, sh: Shared, out: DirOut): void {
  for (const th of t.threads) out.put(`core-${th.tid}.img`, 'CORE', [['core_entry', coreOf(t, th, th.tid === t.pid)]]);
  out.put(`ids-${t.pid}.img`, 'IDS', [['task_kobj_ids_entry', ids]]);
  out.put(`creds-${t.pid}.img`, 'CREDS', [['creds_entry', credsOf(t)]]);
  out.put(`fs-${t.pid}.img`, 'FS', [
    [
      'fs_entry',
      {
        cwd_id: sh.files.add(t.cwd, O_DIRECTORY, { key: `dir:${t.cwd}` }),
        root_id: sh.files.add(t.root, O_DIRECTORY, { key: `dir:${t.root}` }),
      },
    ],
  ]);
  out.put(`fdinfo-${n}.img`, 'FDINFO', fdinfoOf(t, sh, out));
  if (t.mm) writeMm(t, n, sh, out);
}

/** utsns-ID.img: the host and domain names of the UTS namespaces the tasks use. */
function writeUtsns(model: Model, out: DirOut): void {
  for (const ns of model.namespaces) {
    if (ns.kind !== 'uts' || (ns.nodename === undefined && ns.domainname === undefined) || ns.id <= 0n || ns.id > 0xffffffffn) continue;
    if (!model.tasks.some((t) => t.ns.uts === ns.id)) continue;
    out.put(`utsns-${ns.id}.img`, 'UTSNS', [['utsns_entry', { nodename: ns.nodename ?? '', domainname: ns.domainname ?? '' }]]);
  }
}

/** Every image file of the model, into out's temporary directory. */
function writeImages(model: Model, sh: Shared, out: DirOut): void {
  const ids = model.tasks.map((t, i) => idsOf(t, i + 1));
  out.put('inventory.img', 'INVENTORY', [
    ['inventory_entry', { img_version: CRTOOLS_IMAGES_V1_1, fdinfo_per_id: true, root_ids: ids[0], ns_per_id: true, lsmtype: 0 }],
  ]);
  out.put('pstree.img', 'PSTREE', pstreeOf(model));
  model.tasks.forEach((t, i) => writeTask(t, i + 1, ids[i]!, sh, out));
  out.put(
    'files.img',
    'FILES',
    sh.files.entries.map((e) => ['file_entry', e]),
  );
  sh.dump.write(out);
  writeUtsns(model, out);
}

/** The tasks CRIU needs: threads, the leader among them (its core file holds the task's state). */
function checkTasks(model: Model): void {
  if (model.tasks.length === 0) throw new CrimgError('NOT_FOUND', 'the image has no tasks');
  for (const t of model.tasks) {
    if (t.threads.length === 0) throw new CrimgError('NOT_FOUND', `task ${t.pid} has no threads`);
    if (!t.threads.some((th) => th.tid === t.pid)) {
      throw new CrimgError('NOT_FOUND', `task ${t.pid} has no thread ${t.pid}: CRIU keeps the task's state in core-${t.pid}.img`);
    }
  }
}

/** A temporary directory next to `dir`, which must not exist or be empty. */
function makeTemp(dir: string): string {
  try {
    const st = fs.statSync(dir);
    if (!st.isDirectory()) throw new CrimgError('IO', `${dir} exists and is not a directory`);
    if (fs.readdirSync(dir).length) throw new CrimgError('IO', `${dir} is not empty`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`checking ${dir}`, e);
  }
  const parent = path.dirname(path.resolve(dir));
  const tmp = path.join(parent, `.${path.basename(dir)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
  try {
    fs.mkdirSync(tmp, { mode: 0o755 });
  } catch (e) {
    throw ioError(`cannot create ${tmp}`, e);
  }
  return tmp;
}

/** Sync (with fsync), date inventory.img, and rename the temporary directory into place. */
function finish(model: Model, tmp: string, dir: string, fsync: boolean): void {
  if (fsync) {
    const dfd = fs.openSync(tmp, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  }
  // inventory.img's mtime is when the snapshot was taken (fromCriuImages reads it back as header.createdNs)
  if (model.header.createdNs > 0n) {
    const t = Number(model.header.createdNs / 1000n) / 1e6 + 5e-7;
    try {
      fs.utimesSync(path.join(tmp, 'inventory.img'), new Date(), t);
    } catch {
      /* a courtesy */
    }
  }
  try {
    fs.renameSync(tmp, dir);
  } catch (e) {
    throw ioError(`renaming ${tmp} to ${dir}`, e);
  }
  if (fsync) {
    const parent = path.dirname(path.resolve(dir));
    try {
      const pfd = fs.openSync(parent, 'r');
      try {
        fs.fsyncSync(pfd);
      } finally {
        fs.closeSync(pfd);
      }
    } catch {
      /* best effort */
    }
  }
}

/**
 * Write the tasks of a model (or of an opened image) as a CRIU image directory at `dir`
 * (which must not exist, or be an empty directory).
 */
export async function toCriuImages(src: Model | Image, dir: string, opts: CriuExportOptions = {}): Promise<CriuExportResult> {
  const model = src instanceof Image ? src.model : src;
  const k = opts.kernels ?? (src instanceof Image ? src.k : kernels());
  checkTasks(model);
  const tmp = makeTemp(dir);
  const out = new DirOut(tmp, opts);
  const region = claimRegion(k, CHUNK_PAGES * PAGE + CHUNK_PAGES / 8);
  try {
    writeImages(model, { files: new FileTable(), dump: new DumpImages(), k, region, opts }, out);
    finish(model, tmp, dir, !!opts.fsync);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    releaseRegion(k, region);
  }
  const c = out.c;
  return {
    dir,
    files: out.files,
    tasks: model.tasks.length,
    threads: model.tasks.reduce((s, t) => s + t.threads.length, 0),
    vmas: model.tasks.reduce((s, t) => s + (t.mm?.vmas.length ?? 0), 0),
    pagesWritten: c.pagesWritten,
    pagesHole: c.pagesHole,
    pagesDropped: c.pagesDropped,
    fdsSkipped: out.fdsSkipped,
    bytes: c.bytes,
  };
}
