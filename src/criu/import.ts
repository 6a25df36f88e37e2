/**
 * CRIU image directory -> model. Reads what toCriuImages writes and what `criu dump`
 * (3.x, images v1.1) writes: pstree.img gives the tasks, core-TID.img the threads,
 * mm-PID.img the address space, pagemap-PID.img + pages-N.img the page contents
 * (read from pages-N.img into the kernels' memory when the writer asks for them),
 * ids/creds/fs/fdinfo/files the rest. Fields crimg has no place for are skipped;
 * what the model needs but CRIU does not keep is left neutral (see docs/CRIU.md).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CrimgError } from '../errors.js';
import type { Kernels } from '../kernels/api.js';
import {
  type Model, type Task, type Thread, type Vma, type PageSource, type OpenFile, type NocrReason, type SigAction, type Itimer, type PosixTimer, type Credentials,
  type XState, FdKind, LOCK_EOF, LOCK_KIND, namespacesOf, VmaFlags, NO_PAGES, defaultRlimits, emptyCreds, emptyNsIds, newThread, FXSAVE_BYTES,
} from '../model.js';
import { type Source, openSource } from '../source.js';
import { intelXsaveSize } from '../cpu/xsave.js';
import type { Msg } from './pb.js';
import { readImage, readOne, readMagic, type ImageEntry } from './img.js';
import {
  MAGIC, CORE_MARCH_X86_64, X86_REGS_NATIVE, FD_TYPE_REG, MAP, PE_PARENT, PE_PRESENT, TASK_STOPPED, TASK_ZOMBIE, VMA, CRIU_FL,
} from './proto.js';
import { GPREG_FIELDS, XSAVE_PARTS, SIG_SLOTS, O_DIRECTORY, FD_CLOEXEC, S_IFMT, S_IFDIR, S_IFREG, MADV_BITS, MAP_LOCKED } from './layout.js';

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
  try { if (!fs.statSync(p).isDirectory()) return false; } catch { return false; }
  return readMagic(path.join(p, 'inventory.img')) === MAGIC.INVENTORY;
}

const u64 = (v: unknown): bigint => (typeof v === 'bigint' ? v : BigInt(v as number));
const num = (v: unknown): number => (typeof v === 'bigint' ? Number(v) : (v as number));
const arr = <T>(v: unknown): T[] => (v as T[] | undefined) ?? [];

/** A run of pages of one VMA whose data sits at `fileOff` of pages-N.img. */
interface Seg { first: number; count: number; fileOff: number }

class CriuVmaPages implements PageSource {
  constructor(private readonly src: Source, private readonly segs: Seg[], private readonly file: string) {}
  runs(): Iterable<[number, number]> {
    const out: [number, number][] = [];
    for (const s of this.segs) {
      const last = out[out.length - 1];
      if (last && last[0] + last[1] === s.first) last[1] += s.count; else out.push([s.first, s.count]);
    }
    return out;
  }
  read(k: Kernels, dst: number, first: number, n: number): void {
    k.u8().fill(0, dst, dst + n * PAGE);
    // first segment that ends after `first`
    let lo = 0, hi = this.segs.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (this.segs[mid]!.first + this.segs[mid]!.count <= first) lo = mid + 1; else hi = mid; }
    for (let i = lo; i < this.segs.length; i++) {
      const s = this.segs[i]!;
      if (s.first >= first + n) break;
      const a = Math.max(first, s.first);
      const b = Math.min(first + n, s.first + s.count);
      const len = (b - a) * PAGE;
      const pos = s.fileOff + (a - s.first) * PAGE;
      const m = k.u8();
      const got = this.src.pread(m.subarray(dst + (a - first) * PAGE, dst + (a - first) * PAGE + len), pos);
      if (got < len) throw new CrimgError('TRUNCATED', `${this.file} ends inside page data (file shrank while converting)`, { offset: pos + got });
    }
  }
}

function fail(file: string, msg: string, offset?: number): never {
  throw new CrimgError('BAD_CRIU', `${file}: ${msg}`, offset !== undefined ? { offset } : {});
}

function thread(tid: number, core: ImageEntry, file: string): Thread {
  const m = core.msg;
  if (num(m.mtype) !== CORE_MARCH_X86_64) throw new CrimgError('WRONG_ARCH', `${file}: core_entry.mtype ${num(m.mtype)} is not X86_64 (1)`, { offset: core.offset });
  const ti = m.thread_info as Msg | undefined;
  if (!ti) fail(file, 'no thread_info (x86 registers)', core.offset);
  const gp = ti.gpregs as Msg;
  if (gp.mode !== undefined && num(gp.mode) !== X86_REGS_NATIVE) fail(file, `registers of a 32-bit (compat) task: only x86_64 tasks are imported`, core.offset);
  const th = newThread(tid);
  GPREG_FIELDS.forEach((f, i) => { th.regs[i] = u64(gp[f]); });
  const fp = ti.fpregs as Msg;
  const st = arr<number>(fp.st_space), xmm = arr<number>(fp.xmm_space), pad = arr<number>(fp.padding);
  if (st.length !== 32 || xmm.length !== 64 || pad.length > 24) {
    fail(file, `fpregs has ${st.length} st_space, ${xmm.length} xmm_space and ${pad.length} padding words (expected 32, 64, at most 24)`, core.offset);
  }
  const f = new Uint8Array(FXSAVE_BYTES);
  const dv = new DataView(f.buffer);
  dv.setUint16(0, num(fp.cwd) & 0xffff, true); dv.setUint16(2, num(fp.swd) & 0xffff, true);
  dv.setUint16(4, num(fp.twd) & 0xffff, true); dv.setUint16(6, num(fp.fop) & 0xffff, true);
  dv.setBigUint64(8, u64(fp.rip), true); dv.setBigUint64(16, u64(fp.rdp), true);
  dv.setUint32(24, num(fp.mxcsr), true); dv.setUint32(28, num(fp.mxcsr_mask), true);
  st.forEach((w, i) => dv.setUint32(32 + 4 * i, w, true));
  xmm.forEach((w, i) => dv.setUint32(160 + 4 * i, w, true));
  pad.forEach((w, i) => dv.setUint32(416 + 4 * i, w, true));
  th.fpu = f;
  const xs = fp.xsave as Msg | undefined;
  if (xs) {
    th.xstate = xstate(xs, dv.getBigUint64(464, true), file, core.offset);
    // XCR0 taken from the sw_reserved word: the model keeps it in xstate, its FXSAVE area as NT_PRFPREG gives it (0 there)
    if (dv.getBigUint64(464, true) === th.xstate.xcr0) dv.setBigUint64(464, 0n, true);
  }
  const tcore = m.thread_core as Msg | undefined;
  // clear_child_tid and the robust list; all zero: not recorded
  const clearChildTid = u64(ti.clear_tid_addr), robustHead = tcore ? u64(tcore.futex_rla) : 0n, robustLen = tcore ? BigInt(num(tcore.futex_rla_len)) : 0n;
  if (clearChildTid || robustHead || robustLen) th.futex = { clearChildTid, robustHead, robustLen };
  if (tcore) {
    if (tcore.blk_sigset !== undefined) th.sigmask = u64(tcore.blk_sigset);
    th.sigpending = pendingSet(tcore.signals_p as Msg | undefined);
    const sas = tcore.sas as Msg | undefined;
    if (sas) th.sigaltstack = { sp: u64(sas.ss_sp ?? 0n), size: u64(sas.ss_size ?? 0n), flags: num(sas.ss_flags ?? 0) >>> 0 };
    const rs = tcore.rseq_entry as Msg | undefined;
    if (rs && u64(rs.rseq_abi_pointer) !== 0n) th.rseq = { ptr: u64(rs.rseq_abi_pointer), len: num(rs.rseq_abi_size), sig: num(rs.signature), flags: 0 };
  }
  return th;
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

function creds(c: Msg | undefined, seccomp: number): Credentials {
  const out = emptyCreds();
  if (!c) { out.seccompMode = seccomp; return out; }
  const cap = (v: unknown): bigint => { const a = arr<number>(v); return BigInt(a[0] ?? 0) | (BigInt(a[1] ?? 0) << 32n); };
  Object.assign(out, {
    uid: num(c.uid), gid: num(c.gid), euid: num(c.euid), egid: num(c.egid), suid: num(c.suid), sgid: num(c.sgid),
    fsuid: num(c.fsuid), fsgid: num(c.fsgid), groups: arr<number>(c.groups).slice(),
    capInh: cap(c.cap_inh), capPrm: cap(c.cap_prm), capEff: cap(c.cap_eff), capBnd: cap(c.cap_bnd),
    securebits: num(c.secbits), seccompMode: seccomp,
  });
  return out;
}

function vmaFlags(e: Msg, name: string | null): number {
  const f = num(e.flags), st = num(e.status);
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

const FD_NOCR: Record<number, string> = { 2: 'PIPE', 3: 'FIFO', 4: 'SOCKET', 5: 'SOCKET', 6: 'EVENTFD', 7: 'EPOLL', 8: 'INOTIFY', 9: 'SIGNALFD', 10: 'SOCKET', 11: 'TTY', 12: 'FANOTIFY', 13: 'SOCKET', 17: 'TIMERFD', 18: 'MEMFD', 19: 'BPF' };

function fileKind(mode: number, flags: number): number {
  const t = mode & S_IFMT;
  if (t === S_IFDIR) return FdKind.DIRECTORY;
  if (t === S_IFREG) return FdKind.REGULAR;
  if (t === 0) return flags & O_DIRECTORY ? FdKind.DIRECTORY : FdKind.REGULAR;
  return FdKind.OTHER;
}

/**
 * Open a CRIU image directory as a model. Every image file is checked now (BAD_CRIU,
 * TRUNCATED, WRONG_ARCH, with the file name and byte offset); page contents are read
 * from pages-N.img when the model's page sources are asked for them.
 */
export function fromCriuImages(dir: string, opts: CriuImportOptions = {}): CriuImages {
  const sources: Source[] = [];
  const closeAll = (): void => { for (const s of sources.splice(0)) { try { s.close(); } catch { /* ignore */ } } };
  try {
    const inv = readOne(dir, 'inventory.img', 'INVENTORY', 'inventory_entry')!;
    const ver = num(inv.msg.img_version);
    if (ver !== 1 && ver !== 2) fail('inventory.img', `img_version ${ver} is not one crimg reads (1 or 2)`, inv.offset);
    const fdinfoPerId = inv.msg.fdinfo_per_id === true;
    const tree = readImage(dir, 'pstree.img', 'PSTREE', 'pstree_entry')!;
    const lockEntries = readImage(dir, 'filelocks.img', 'FILE_LOCKS', 'file_lock_entry', 'file_lock_entry', true) ?? [];
    if (tree.length === 0) fail('pstree.img', 'no tasks');

    // files.img (images of CRIU 3.x) or reg-files.img (older)
    const regs = new Map<number, Msg>();
    const others = new Map<number, number>();
    for (const e of readImage(dir, 'files.img', 'FILES', 'file_entry', 'file_entry', true) ?? []) {
      const id = num(e.msg.id);
      if (num(e.msg.type) === FD_TYPE_REG && e.msg.reg) regs.set(id, e.msg.reg as Msg); else others.set(id, num(e.msg.type));
    }
    if (regs.size === 0) {
      for (const e of readImage(dir, 'reg-files.img', 'REG_FILES', 'reg_file_entry', 'reg_file_entry', true) ?? []) regs.set(num(e.msg.id), e.msg);
    }
    const regName = (id: number, file: string, at: number): string => {
      const r = regs.get(id);
      if (!r) fail(file, `file id ${id} is not in files.img`, at);
      return r.name as string;
    };

    // tasks in pre-order: every parent before its children
    const entries = tree.map((e) => e.msg);
    const byPid = new Map(entries.map((e, i) => [num(e.pid), i]));
    if (byPid.size !== entries.length) fail('pstree.img', 'a pid appears twice');
    const kids = new Map<number, number[]>();
    const roots: number[] = [];
    entries.forEach((e, i) => {
      const pp = num(e.ppid);
      if (pp !== 0 && byPid.has(pp) && pp !== num(e.pid)) { const l = kids.get(pp) ?? []; l.push(i); kids.set(pp, l); } else roots.push(i);
    });
    const order: number[] = [];
    const visit = (i: number): void => { order.push(i); for (const c of kids.get(num(entries[i]!.pid)) ?? []) visit(c); };
    roots.forEach(visit);
    if (order.length !== entries.length) fail('pstree.img', 'the parent links form a cycle');

    const tasks: Task[] = [];
    for (const i of order) {
      const pe = entries[i]!;
      const pid = num(pe.pid);
      const tids = arr<number>(pe.threads);
      if (!tids.includes(pid)) tids.unshift(pid);
      if (new Set(tids).size !== tids.length) fail('pstree.img', `task ${pid} lists a thread twice`, tree[i]!.offset);
      const cores = new Map<number, ImageEntry>(tids.map((tid) => [tid, readOne(dir, `core-${tid}.img`, 'CORE', 'core_entry')!]));
      const lead = cores.get(pid)!;
      const tc = lead.msg.tc as Msg | undefined;
      if (!tc) fail(`core-${pid}.img`, 'the task leader has no tc (task_core_entry)', lead.offset);
      const threads = tids.map((tid) => thread(tid, cores.get(tid)!, `core-${tid}.img`));
      const shared = pendingSet(tc.signals_s as Msg | undefined);
      if (shared) for (const th of threads) th.sigpending |= shared;
      const main = threads[tids.indexOf(pid)]!;
      const state = num(tc.task_state);
      main.state = state === TASK_STOPPED ? 'T' : state === TASK_ZOMBIE ? 'Z' : '';
      if (tc.blk_sigset !== undefined && (lead.msg.thread_core as Msg | undefined)?.blk_sigset === undefined) main.sigmask = u64(tc.blk_sigset);

      const ids = (readOne(dir, `ids-${pid}.img`, 'IDS', 'task_kobj_ids_entry', true)?.msg ?? lead.msg.ids) as Msg | undefined;
      const ns = emptyNsIds();
      if (ids) {
        const nsv = (k: string): bigint => (ids[k] !== undefined ? BigInt(num(ids[k])) : 0n);
        Object.assign(ns, { pid: nsv('pid_ns_id'), net: nsv('net_ns_id'), ipc: nsv('ipc_ns_id'), uts: nsv('uts_ns_id'), mnt: nsv('mnt_ns_id'), user: nsv('user_ns_id'), cgroup: nsv('cgroup_ns_id'), time: nsv('time_ns_id') });
      }
      const ltc = lead.msg.thread_core as Msg | undefined;
      const seccomp = ltc?.seccomp_mode !== undefined ? num(ltc.seccomp_mode) : tc.old_seccomp_mode !== undefined ? num(tc.old_seccomp_mode) : 0;
      const credMsg = (ltc?.creds as Msg | undefined) ?? readOne(dir, `creds-${pid}.img`, 'CREDS', 'creds_entry', true)?.msg;

      const rl = arr<Msg>((tc.rlimits as Msg | undefined)?.rlimits);
      const rlimits = defaultRlimits();
      rl.slice(0, 16).forEach((r, j) => { rlimits[j] = { cur: u64(r.cur), max: u64(r.max) }; });

      let itimers: Itimer[] | undefined;
      let posixTimers: PosixTimer[] | undefined;
      const tm = tc.timers as Msg | undefined;
      if (tm) {
        itimers = [];
        (['real', 'virt', 'prof'] as const).forEach((k, which) => {
          const e = tm[k] as Msg | undefined;
          const f = (k2: string): bigint => (e?.[k2] === undefined ? 0n : u64(e[k2]));
          const intervalUs = f('isec') * 1_000_000n + f('iusec'), valueUs = f('vsec') * 1_000_000n + f('vusec');
          if (intervalUs || valueUs) itimers!.push({ which, intervalUs, valueUs });
        });
        posixTimers = arr<Msg>(tm.posix).map((p) => ({
          id: Number(p.it_id ?? 0), clock: Number(p.clock_id ?? 0) | 0, notify: Number(p.it_sigev_notify ?? 0),
          notifyTid: p.notify_thread_id === undefined ? 0 : Number(p.notify_thread_id), signo: Number(p.si_signo ?? 0),
          sigevValue: u64(p.sival_ptr ?? 0), intervalNs: u64(p.isec ?? 0) * 1_000_000_000n + u64(p.insec ?? 0),
          valueNs: u64(p.vsec ?? 0) * 1_000_000_000n + u64(p.vnsec ?? 0),
        })).sort((a, b) => a.id - b.id);
      }
      let sigactions: SigAction[] | undefined;
      const sas = arr<Msg>(tc.sigactions);
      if (sas.length) {
        sigactions = [];
        sas.slice(0, SIG_SLOTS.length).forEach((a, j) => {
          const handler = u64(a.sigaction);
          if (handler !== 0n) sigactions!.push({ sig: SIG_SLOTS[j]!, handler, flags: u64(a.flags), restorer: u64(a.restorer), mask: u64(a.mask) });
        });
      }

      let cwd = '', root = '/';
      const fsE = readOne(dir, `fs-${pid}.img`, 'FS', 'fs_entry', true);
      if (fsE) { cwd = regName(num(fsE.msg.cwd_id), `fs-${pid}.img`, fsE.offset); root = regName(num(fsE.msg.root_id), `fs-${pid}.img`, fsE.offset); }

      const files: OpenFile[] = [];
      const nocr: NocrReason[] = [];
      const fdName = ids && fdinfoPerId ? `fdinfo-${num(ids.files_id)}.img` : `fdinfo-${pid}.img`;
      for (const e of readImage(dir, fdName, 'FDINFO', 'fdinfo_entry', 'fdinfo_entry', true) ?? []) {
        const fdn = num(e.msg.fd), type = num(e.msg.type), id = num(e.msg.id);
        if (type !== FD_TYPE_REG) {
          nocr.push({ code: FD_NOCR[type] ?? 'ANON_INODE', pid, text: `fd ${fdn} is a CRIU file of type ${type}, which crimg does not import` });
          continue;
        }
        const r = regs.get(id);
        if (!r) fail(fdName, `fd ${fdn} refers to file id ${id}, which is not in files.img`, e.offset);
        const flags = num(r.flags), mode = r.mode !== undefined ? num(r.mode) : 0;
        files.push({
          fd: fdn, kind: fileKind(mode, flags), path: r.name as string, flags, pos: u64(r.pos), mode,
          cloexec: (num(e.msg.flags) & FD_CLOEXEC) !== 0, devMajor: 0, devMinor: 0, inode: 0n, size: r.size !== undefined ? u64(r.size) : 0n,
        });
      }

      // file locks of this task (filelocks.img entries with its pid), on the fds they name
      const kindOf: Record<number, number> = { [CRIU_FL.FLOCK]: LOCK_KIND.FLOCK, [CRIU_FL.POSIX]: LOCK_KIND.POSIX, [CRIU_FL.OFD]: LOCK_KIND.OFD };
      for (const e of lockEntries) {
        if (num(e.msg.pid) !== pid) continue;
        const fdn = num(e.msg.fd), flag = num(e.msg.flag), kind = kindOf[flag];
        const f = files.find((x) => x.fd === fdn);
        const start = BigInt(e.msg.start as bigint), len = BigInt(e.msg.len as bigint);
        if (!kind || !f || start < 0n || len < 0n) {
          nocr.push({ code: 'FILE_LOCK', pid, text: `filelocks.img: a lock (flag ${flag}) on fd ${fdn}${f ? '' : ', which crimg does not import'} is not imported` });
          continue;
        }
        (f.locks ??= []).push({
          kind, write: num(e.msg.type) === 1, start: kind === LOCK_KIND.FLOCK ? 0n : start,
          end: kind === LOCK_KIND.FLOCK || len === 0n ? LOCK_EOF : start + len - 1n,
        });
      }

      let mm: Task['mm'] = null;
      let exe = '';
      const mmE = readOne(dir, `mm-${pid}.img`, 'MM', 'mm_entry', true);
      if (mmE) {
        const mf = `mm-${pid}.img`;
        const m = mmE.msg;
        const exeId = num(m.exe_file_id);
        if (exeId && regs.has(exeId)) exe = regs.get(exeId)!.name as string;
        const auxv = arr<bigint>(m.mm_saved_auxv).map(u64);
        let n = 0;
        while (n + 1 < auxv.length && auxv[n] !== 0n) n += 2; // up to AT_NULL
        const vmas: Vma[] = [];
        let prevEnd = 0n;
        for (const v of arr<Msg>(m.vmas)) {
          const start = u64(v.start), end = u64(v.end);
          if (start % PAGE_N || end % PAGE_N || end <= start) fail(mf, `VMA 0x${start.toString(16)}-0x${end.toString(16)} is not a page-aligned, non-empty range`, mmE.offset);
          if (start < prevEnd) fail(mf, `VMA 0x${start.toString(16)} overlaps the one before or is out of order`, mmE.offset);
          prevEnd = end;
          const st = num(v.status);
          const isFile = (st & (VMA.FILE_PRIVATE | VMA.FILE_SHARED)) !== 0;
          const p = isFile ? regName(num(u64(v.shmid)), mf, mmE.offset) : pseudoName(st);
          vmas.push({
            start, end, prot: num(v.prot) & 7, flags: vmaFlags(v, isFile ? p : null), pgoff: u64(v.pgoff) / PAGE_N,
            devMajor: 0, devMinor: 0, inode: st & VMA.ANON_SHARED ? u64(v.shmid) : 0n, path: p, pages: NO_PAGES,
          });
        }
        pagesInto(dir, pid, vmas, sources);
        mm = {
          startCode: u64(m.mm_start_code), endCode: u64(m.mm_end_code), startData: u64(m.mm_start_data), endData: u64(m.mm_end_data),
          startBrk: u64(m.mm_start_brk), brk: u64(m.mm_brk), startStack: u64(m.mm_start_stack),
          argStart: u64(m.mm_arg_start), argEnd: u64(m.mm_arg_end), envStart: u64(m.mm_env_start), envEnd: u64(m.mm_env_end),
          auxv: auxv.slice(0, n), vmas,
        };
      }
      const task: Task = {
        pid, tgid: pid, ppid: num(pe.ppid), pgid: num(pe.pgid), sid: num(pe.sid), comm: tc.comm as string, exe, cwd, root,
        args: [], env: [], personality: num(tc.personality) | 0, exitSignal: 17, creds: creds(credMsg as Msg | undefined, seccomp),
        rlimits, ns, threads, mm, files, nocr,
      };
      if (sigactions) task.sigactions = sigactions;
      if (itimers) task.itimers = itimers;
      if (posixTimers) task.posixTimers = posixTimers;
      tasks.push(task);
    }

    // the namespaces the tasks use, in the order crimg's live dump lists them; UTS names from utsns-ID.img
    const namespaces = namespacesOf(tasks, (_t, id) => {
      const u = readOne(dir, `utsns-${id}.img`, 'UTSNS', 'utsns_entry', true);
      return u ? { nodename: u.msg.nodename as string, domainname: u.msg.domainname as string } : null;
    });
    let createdNs = opts.createdNs;
    if (createdNs === undefined) {
      createdNs = 0n;
      try { createdNs = ((fs.statSync(path.join(dir, 'inventory.img'), { bigint: true }).mtimeNs + 500n) / 1000n) * 1000n; } catch { /* keep 0 */ }
    }
    const model: Model = {
      header: {
        crid: opts.crid ?? 0n, createdNs, flags: 0, tool: 'crimg (from CRIU images)',
        uts: { sysname: 'Linux', nodename: '', release: '', version: '', machine: 'x86_64', domainname: '' }, freezeNs: 0n,
      },
      namespaces,
      tasks,
    };
    let closed = false;
    return { model, dir, close: () => { if (!closed) closeAll(); closed = true; } };
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
    if (flags & PE_PARENT) fail(pf, `pages at 0x${vaddr.toString(16)} are in the parent images (an incremental dump): not supported`, offset);
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
  if (src.size < fileOff) throw new CrimgError('TRUNCATED', `${pagesName} holds ${src.size} bytes, ${pf} needs ${fileOff}`, { offset: src.size });
  vmas.forEach((v, i) => { if (segs[i]!.length) v.pages = new CriuVmaPages(src, segs[i]!, pagesName); });
}
