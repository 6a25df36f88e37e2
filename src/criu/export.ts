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
 *
 * Everything is written into a temporary directory next to the destination, which is
 * renamed into place when complete: a failure leaves nothing behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CrimgError, ioError } from '../errors.js';
import { kernels } from '../kernels/index.js';
import type { Kernels } from '../kernels/api.js';
import { claimRegion, releaseRegion } from '../kernels/arena.js';
import { type Model, type Task, type Thread, type Vma, FdKind, LOCK_EOF, LOCK_KIND, SIGEV, VmaFlags, FXSAVE_BYTES, NREGS } from '../model.js';
import { Image } from '../reader.js';
import { isFileVma } from '../elf/export.js';
import type { Msg } from './pb.js';
import { imageBytes, type MagicName } from './img.js';
import {
  CORE_MARCH_X86_64, CRTOOLS_IMAGES_V1_1, FD_TYPE_REG, MAP, PE_PRESENT, TASK_ALIVE, TASK_STOPPED, TASK_ZOMBIE, VMA,
  X86_REGS_NATIVE, CRIU_FL, type MessageName,
} from './proto.js';
import { GPREG_FIELDS, XSAVE_PARTS, SIG_SLOTS, O_DIRECTORY, FD_CLOEXEC, MADV_BITS, MAP_LOCKED } from './layout.js';
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
  constructor(readonly fd: number, readonly name: string) {}
  write(b: Uint8Array): void {
    let off = 0;
    try {
      while (off < b.length) off += fs.writeSync(this.fd, b, off, b.length - off, this.pos + off);
    } catch (e) { throw ioError(`writing ${this.name}`, e); }
    this.pos += b.length;
  }
  hole(n: number): void { this.pos += n; }
  finish(sync: boolean): void {
    try {
      fs.ftruncateSync(this.fd, this.pos);
      if (sync) fs.fsyncSync(this.fd);
    } catch (e) { throw ioError(`finishing ${this.name}`, e); }
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
    cwd: dv.getUint16(0, true), swd: dv.getUint16(2, true), twd: dv.getUint16(4, true), fop: dv.getUint16(6, true),
    rip: dv.getBigUint64(8, true), rdp: dv.getBigUint64(16, true), mxcsr: dv.getUint32(24, true), mxcsr_mask: dv.getUint32(28, true),
    st_space: u32s(f, 32, 32), xmm_space: u32s(f, 160, 64), padding: u32s(f, 416, 24),
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
    uid: c.uid, gid: c.gid, euid: c.euid, egid: c.egid, suid: c.suid, sgid: c.sgid, fsuid: c.fsuid, fsgid: c.fsgid,
    cap_inh: cap(c.capInh), cap_prm: cap(c.capPrm), cap_eff: cap(c.capEff), cap_bnd: cap(c.capBnd),
    secbits: c.securebits, groups: [...c.groups],
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

function coreOf(task: Task, th: Thread, leader: boolean): Msg {
  if (th.regs.length !== NREGS) throw new CrimgError('INTERNAL', `thread ${th.tid}: ${th.regs.length} registers, expected ${NREGS}`);
  const gpregs: Msg = { mode: X86_REGS_NATIVE };
  GPREG_FIELDS.forEach((f, i) => { gpregs[f] = th.regs[i]!; });
  const fx = th.futex;
  const tcore: Msg = {
    futex_rla: fx?.robustHead ?? 0n, futex_rla_len: Number(fx?.robustLen ?? 0n), blk_sigset: th.sigmask, creds: credsOf(task), comm: task.comm,
  };
  const pend = pendingOf(th.sigpending);
  if (pend) tcore.signals_p = pend;
  if (task.creds.seccompMode) tcore.seccomp_mode = task.creds.seccompMode;
  if (th.sigaltstack) tcore.sas = { ss_sp: th.sigaltstack.sp, ss_size: th.sigaltstack.size, ss_flags: th.sigaltstack.flags >>> 0 };
  if (th.rseq) tcore.rseq_entry = { rseq_abi_pointer: th.rseq.ptr, rseq_abi_size: th.rseq.len, signature: th.rseq.sig };
  const core: Msg = {
    mtype: CORE_MARCH_X86_64,
    thread_info: { clear_tid_addr: fx?.clearChildTid ?? 0n, gpregs, fpregs: fpregsOf(th) },
    thread_core: tcore,
  };
  if (leader) {
    const tc: Msg = {
      task_state: taskState(th), exit_code: 0, personality: task.personality >>> 0, flags: 0, blk_sigset: th.sigmask, comm: task.comm,
      rlimits: { rlimits: task.rlimits.map((r) => ({ cur: r.cur, max: r.max })) },
    };
    if (task.creds.seccompMode) tc.old_seccomp_mode = task.creds.seccompMode;
    if (task.itimers || task.posixTimers?.length) {
      const it = (which: number): Msg => {
        const x = task.itimers?.find((t) => t.which === which);
        const i = x?.intervalUs ?? 0n, v = x?.valueUs ?? 0n;
        return { isec: i / 1_000_000n, iusec: i % 1_000_000n, vsec: v / 1_000_000n, vusec: v % 1_000_000n };
      };
      const ns = 1_000_000_000n;
      tc.timers = {
        real: it(0), virt: it(1), prof: it(2),
        posix: (task.posixTimers ?? []).map((p) => ({
          it_id: p.id, clock_id: p.clock >>> 0, si_signo: p.signo, it_sigev_notify: p.notify, sival_ptr: p.sigevValue, overrun: 0,
          isec: p.intervalNs / ns, insec: p.intervalNs % ns, vsec: p.valueNs / ns, vnsec: p.valueNs % ns,
          ...(p.notify === SIGEV.THREAD_ID ? { notify_thread_id: p.notifyTid } : {}),
        })),
      };
    }
    if (task.sigactions) {
      const by = new Map(task.sigactions.map((a) => [a.sig, a]));
      tc.sigactions = SIG_SLOTS.map((sig) => {
        const a = by.get(sig);
        return a ? { sigaction: a.handler, flags: a.flags, restorer: a.restorer, mask: a.mask } : { sigaction: 0n, flags: 0n, restorer: 0n, mask: 0n };
      });
    }
    core.tc = tc;
  }
  return core;
}

function mapFlags(v: Vma): number {
  return (v.flags & VmaFlags.SHARED ? MAP.SHARED : MAP.PRIVATE) | (v.flags & VmaFlags.ANON ? MAP.ANONYMOUS : 0)
    | (v.flags & VmaFlags.GROWSDOWN ? MAP.GROWSDOWN : 0) | (v.flags & VmaFlags.HUGETLB ? MAP.HUGETLB : 0)
    | (v.flags & VmaFlags.LOCKED ? MAP_LOCKED : 0);
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
  const e: Msg = { start: v.start, end: v.end, pgoff: v.pgoff * BigInt(PAGE), shmid, prot: v.prot & 7, flags: mapFlags(v), status, fd: -1n };
  if (fdflags !== undefined) e.fdflags = fdflags;
  let madv = 0n;
  for (const [flag, advice] of MADV_BITS) if (v.flags & flag) madv |= 1n << BigInt(advice);
  if (madv) e.madv = madv;
  return e;
}

interface Counts { pagesWritten: number; pagesHole: number; pagesDropped: number; bytes: number }

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
      if (noPages(v)) { c.pagesDropped += count; continue; }
      // pagemap_entry.nr_pages is a u32
      for (let s = first; s < first + count; s += 0x7fff0000) {
        entries.push({ vaddr: v.start + BigInt(s) * BigInt(PAGE), nr_pages: Math.min(0x7fff0000, first + count - s), flags: PE_PRESENT });
      }
      for (const s of pageSpans(k, v, first, count, region, CHUNK_PAGES)) {
        if (!s.zero) { out.write(k.u8().subarray(s.at, s.at + s.pages * PAGE)); c.pagesWritten += s.pages; } else { out.hole(s.pages * PAGE); c.pagesHole += s.pages; }
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

/**
 * Write the tasks of a model (or of an opened image) as a CRIU image directory at `dir`
 * (which must not exist, or be an empty directory).
 */
export async function toCriuImages(src: Model | Image, dir: string, opts: CriuExportOptions = {}): Promise<CriuExportResult> {
  const model = src instanceof Image ? src.model : src;
  const k = opts.kernels ?? (src instanceof Image ? src.k : kernels());
  if (model.tasks.length === 0) throw new CrimgError('NOT_FOUND', 'the image has no tasks');
  const pids = new Set(model.tasks.map((t) => t.pid));
  for (const t of model.tasks) {
    if (t.threads.length === 0) throw new CrimgError('NOT_FOUND', `task ${t.pid} has no threads`);
    if (!t.threads.some((th) => th.tid === t.pid)) throw new CrimgError('NOT_FOUND', `task ${t.pid} has no thread ${t.pid}: CRIU keeps the task's state in core-${t.pid}.img`);
  }
  try {
    const st = fs.statSync(dir);
    if (!st.isDirectory()) throw new CrimgError('IO', `${dir} exists and is not a directory`);
    if (fs.readdirSync(dir).length) throw new CrimgError('IO', `${dir} is not empty`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`checking ${dir}`, e);
  }
  const parent = path.dirname(path.resolve(dir));
  const tmp = path.join(parent, `.${path.basename(dir)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
  try { fs.mkdirSync(tmp, { mode: 0o755 }); } catch (e) { throw ioError(`cannot create ${tmp}`, e); }

  const c: Counts = { pagesWritten: 0, pagesHole: 0, pagesDropped: 0, bytes: 0 };
  let nfiles = 0, fdsSkipped = 0;
  const put = (name: string, magic: MagicName, entries: [MessageName, Msg][]): void => {
    const b = imageBytes(magic, entries);
    const file = path.join(tmp, name);
    let fd: number;
    try { fd = fs.openSync(file, 'wx', 0o644); } catch (e) { throw ioError(`cannot create ${file}`, e); }
    try {
      let off = 0;
      while (off < b.length) off += fs.writeSync(fd, b, off, b.length - off);
      if (opts.fsync) fs.fsyncSync(fd);
    } catch (e) { throw ioError(`writing ${file}`, e); } finally { fs.closeSync(fd); }
    c.bytes += b.length;
    nfiles++;
  };

  const region = claimRegion(k, CHUNK_PAGES * PAGE + CHUNK_PAGES / 8);
  try {
    const files = new FileTable();
    const ids = model.tasks.map((t, i): Msg => {
      const n = i + 1;
      const m: Msg = { vm_id: n, files_id: n, fs_id: n, sighand_id: n };
      const ns = (v: bigint): number | undefined => (v > 0n && v <= 0xffffffffn ? Number(v) : undefined);
      m.pid_ns_id = ns(t.ns.pid); m.net_ns_id = ns(t.ns.net); m.ipc_ns_id = ns(t.ns.ipc); m.uts_ns_id = ns(t.ns.uts);
      m.mnt_ns_id = ns(t.ns.mnt); m.user_ns_id = ns(t.ns.user); m.cgroup_ns_id = ns(t.ns.cgroup); m.time_ns_id = ns(t.ns.time);
      return m;
    });
    put('inventory.img', 'INVENTORY', [['inventory_entry', {
      img_version: CRTOOLS_IMAGES_V1_1, fdinfo_per_id: true, root_ids: ids[0], ns_per_id: true, lsmtype: 0,
    }]]);
    put('pstree.img', 'PSTREE', model.tasks.map((t) => ['pstree_entry', {
      pid: t.pid, ppid: pids.has(t.ppid) && t.ppid !== t.pid ? t.ppid : 0, pgid: t.pgid, sid: t.sid,
      threads: [t.pid, ...t.threads.filter((th) => th.tid !== t.pid).map((th) => th.tid)],
    }]));
    for (const [i, t] of model.tasks.entries()) {
      const n = i + 1;
      for (const th of t.threads) put(`core-${th.tid}.img`, 'CORE', [['core_entry', coreOf(t, th, th.tid === t.pid)]]);
      put(`ids-${t.pid}.img`, 'IDS', [['task_kobj_ids_entry', ids[i]!]]);
      put(`creds-${t.pid}.img`, 'CREDS', [['creds_entry', credsOf(t)]]);
      put(`fs-${t.pid}.img`, 'FS', [['fs_entry', {
        cwd_id: files.add(t.cwd, O_DIRECTORY, { key: `dir:${t.cwd}` }),
        root_id: files.add(t.root, O_DIRECTORY, { key: `dir:${t.root}` }),
      }]]);
      const fdinfo: [MessageName, Msg][] = [];
      for (const f of t.files) {
        if (!regularFd(f.kind, f.path)) { fdsSkipped++; continue; }
        const id = files.add(f.path, f.flags >>> 0, { pos: f.pos, size: f.size, mode: f.mode });
        fdinfo.push(['fdinfo_entry', { id, flags: f.cloexec ? FD_CLOEXEC : 0, type: FD_TYPE_REG, fd: f.fd }]);
      }
      put(`fdinfo-${n}.img`, 'FDINFO', fdinfo);
      if (t.mm) {
        const mm = t.mm;
        const vmas = mm.vmas.map((v) => vmaOf(v, files));
        const exeId = t.exe ? files.add(t.exe, 0, { key: `map:0:${t.exe}` }) : 0;
        put(`mm-${t.pid}.img`, 'MM', [['mm_entry', {
          mm_start_code: mm.startCode, mm_end_code: mm.endCode, mm_start_data: mm.startData, mm_end_data: mm.endData,
          mm_start_stack: mm.startStack, mm_start_brk: mm.startBrk, mm_brk: mm.brk, mm_arg_start: mm.argStart,
          mm_arg_end: mm.argEnd, mm_env_start: mm.envStart, mm_env_end: mm.envEnd, exe_file_id: exeId,
          mm_saved_auxv: [...mm.auxv, 0n, 0n], vmas,
        }]]);
        const pagesName = `pages-${n}.img`;
        let fd: number;
        try { fd = fs.openSync(path.join(tmp, pagesName), 'wx', 0o644); } catch (e) { throw ioError(`cannot create ${pagesName}`, e); }
        const out = new RawOut(fd, pagesName);
        let entries: Msg[];
        try {
          entries = writePages(t, k, region, out, c, opts.onProgress);
          out.finish(!!opts.fsync);
        } finally { fs.closeSync(fd); }
        c.bytes += out.pos;
        nfiles++;
        put(`pagemap-${t.pid}.img`, 'PAGEMAP', [['pagemap_head', { pages_id: n }], ...entries.map((e): [MessageName, Msg] => ['pagemap_entry', e])]);
      }
    }
    put('files.img', 'FILES', files.entries.map((e) => ['file_entry', e]));
    // file locks: one filelocks.img for the dump (CRIU restores each entry in the task of its pid, on its fd)
    const flag = { [LOCK_KIND.FLOCK]: CRIU_FL.FLOCK, [LOCK_KIND.POSIX]: CRIU_FL.POSIX, [LOCK_KIND.OFD]: CRIU_FL.OFD } as Record<number, number>;
    const locks: [MessageName, Msg][] = model.tasks.flatMap((t) => t.files.filter((f) => regularFd(f.kind, f.path)).flatMap((f) => (f.locks ?? []).map((l): [MessageName, Msg] => ['file_lock_entry', {
      flag: flag[l.kind]!, type: l.write ? 1 : 0, pid: t.pid, fd: f.fd,
      start: l.kind === LOCK_KIND.FLOCK ? 0n : l.start, len: l.kind === LOCK_KIND.FLOCK || l.end === LOCK_EOF ? 0n : l.end - l.start + 1n,
    }])));
    if (locks.length) put('filelocks.img', 'FILE_LOCKS', locks);
    // the host and domain names of the UTS namespaces the tasks use
    for (const ns of model.namespaces) {
      if (ns.kind !== 'uts' || (ns.nodename === undefined && ns.domainname === undefined) || ns.id <= 0n || ns.id > 0xffffffffn) continue;
      if (!model.tasks.some((t) => t.ns.uts === ns.id)) continue;
      put(`utsns-${ns.id}.img`, 'UTSNS', [['utsns_entry', { nodename: ns.nodename ?? '', domainname: ns.domainname ?? '' }]]);
    }
    if (opts.fsync) {
      const dfd = fs.openSync(tmp, 'r');
      try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
    }
    // inventory.img's mtime is when the snapshot was taken (fromCriuImages reads it back as header.createdNs)
    if (model.header.createdNs > 0n) {
      const t = Number(model.header.createdNs / 1000n) / 1e6 + 5e-7;
      try { fs.utimesSync(path.join(tmp, 'inventory.img'), new Date(), t); } catch { /* a courtesy */ }
    }
    try { fs.renameSync(tmp, dir); } catch (e) { throw ioError(`renaming ${tmp} to ${dir}`, e); }
    if (opts.fsync) {
      try { const pfd = fs.openSync(parent, 'r'); try { fs.fsyncSync(pfd); } finally { fs.closeSync(pfd); } } catch { /* best effort */ }
    }
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    releaseRegion(k, region);
  }
  return {
    dir, files: nfiles, tasks: model.tasks.length, threads: model.tasks.reduce((s, t) => s + t.threads.length, 0),
    vmas: model.tasks.reduce((s, t) => s + (t.mm?.vmas.length ?? 0), 0),
    pagesWritten: c.pagesWritten, pagesHole: c.pagesHole, pagesDropped: c.pagesDropped, fdsSkipped, bytes: c.bytes,
  };
}
