/**
 * Building the model of a frozen process from ptrace and /proc: threads with all
 * registers, the address space with live page sources, open files, credentials,
 * limits, namespaces, auxv, cmdline and environment.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { CrimgError } from '../errors.js';
import {
  type Mm,
  type Namespace,
  type OpenFile,
  type Task,
  type Thread,
  type Uts,
  type Vma,
  FdKind,
  NO_PAGES,
  Prot,
  VMFLAG_MNEMONICS,
  VmaFlags,
  newThread,
  namespacesOf as namespacesOfTasks,
} from '../model.js';
import { XSAVE_MIN_BYTES, guessLayout, toIntelExt, xstateXcr0 } from '../cpu/xsave.js';
import { type SavedFdState, applyFdStates } from './inspect.js';
import { NT, addressOf, isSysError, ptraceGetRegs, ptraceGetRegset, ptraceGetRseq, ptraceGetSigmask, syscall } from '../os/libc.js';
import {
  type FdInfo,
  type MapEntry,
  devMajor,
  devMinor,
  fileType,
  isDeletedPath,
  isMemfdPath,
  isPseudoPath,
  isSharedAnonPath,
  isSysvShmPath,
  procPath,
  readAuxv,
  readLimits,
  readMaps,
  readNsIds,
  readNulList,
  readPersonality,
  readStat,
  readStatus,
  statusCreds,
  statusSigPending,
  stripDeleted,
  tryReadlink,
} from '../os/proc.js';
import { CLONE_NEWUTS, O_CLOEXEC, S_IFDIR, S_IFREG } from '../os/consts.js';
import { SYS } from '../os/syscalls.js';
import { LivePageSource, type PagePolicy, type ProcMemory, PAGE } from './pages.js';

const XSTATE_BUF = 64 * 1024;

function ptraceFail(pid: number, tid: number, what: string, e: unknown): CrimgError {
  if (isSysError(e) && e.code === 'ESRCH') return new CrimgError('NO_PROCESS', `process ${pid} exited during the dump (thread ${tid})`);
  return new CrimgError('PTRACE', `${what} of thread ${tid} of process ${pid} failed: ${(e as Error).message}`, { cause: e });
}

/** Registers, FPU/XSAVE state, signal mask and rseq of one stopped thread. */
export function collectThread(pid: number, tid: number, stateBefore: string): Thread {
  const th = newThread(tid);
  th.state = stateBefore;
  try {
    th.regs = ptraceGetRegs(tid);
  } catch (e) {
    throw ptraceFail(pid, tid, 'PTRACE_GETREGS', e);
  }
  try {
    const fp = new Uint8Array(512);
    const n = ptraceGetRegset(tid, NT.PRFPREG, fp);
    if (n !== 512) throw new CrimgError('PTRACE', `NT_PRFPREG of thread ${tid} returned ${n} bytes, expected 512`);
    th.fpu = fp;
  } catch (e) {
    throw e instanceof CrimgError ? e : ptraceFail(pid, tid, 'PTRACE_GETREGSET NT_PRFPREG', e);
  }
  try {
    const area = new Uint8Array(XSTATE_BUF);
    const n = ptraceGetRegset(tid, NT.X86_XSTATE, area);
    if (n >= XSAVE_MIN_BYTES) {
      const xcr0 = xstateXcr0(area);
      const a = area.subarray(0, n);
      th.xstate = { xcr0, ext: toIntelExt(a, xcr0, guessLayout(xcr0, n)) };
    }
  } catch (e) {
    // ENODEV/EINVAL: no XSAVE on this CPU; the FXSAVE area is all there is
    if (!(isSysError(e) && (e.code === 'ENODEV' || e.code === 'EINVAL' || e.code === 'EIO')))
      throw ptraceFail(pid, tid, 'PTRACE_GETREGSET NT_X86_XSTATE', e);
  }
  try {
    th.sigmask = ptraceGetSigmask(tid);
  } catch (e) {
    throw ptraceFail(pid, tid, 'PTRACE_GETSIGMASK', e);
  }
  try {
    th.rseq = ptraceGetRseq(tid);
  } catch (e) {
    throw ptraceFail(pid, tid, 'PTRACE_GET_RSEQ_CONFIGURATION', e);
  }
  try {
    const sp = statusSigPending(readStatus(pid, tid));
    th.sigpending = sp.thread | (tid === pid ? sp.shared : 0n);
  } catch {
    /* exiting */
  }
  return th;
}

// ------------------------------------------------------------------ memory

function vmaFlags(e: MapEntry): number {
  let f = 0;
  const p = e.path;
  if (e.shared) f |= VmaFlags.SHARED;
  if (p === '' || isPseudoPath(p) || isSharedAnonPath(p)) f |= VmaFlags.ANON;
  if (p === '[heap]') f |= VmaFlags.HEAP;
  if (p === '[stack]') f |= VmaFlags.STACK;
  if (p === '[vdso]') f |= VmaFlags.VDSO;
  if (p === '[vvar]' || p === '[vvar_vclock]') f |= VmaFlags.VVAR;
  if (p === '[vsyscall]') f |= VmaFlags.VSYSCALL;
  if (e.vmflags.has('gd')) f |= VmaFlags.GROWSDOWN;
  if (e.vmflags.has('ht')) f |= VmaFlags.HUGETLB;
  for (const [m, bit] of VMFLAG_MNEMONICS) if (e.vmflags.has(m)) f |= bit;
  if (!(f & VmaFlags.ANON) && isDeletedPath(p)) f |= VmaFlags.FILE_DELETED;
  return f;
}

/** Which pages of a mapping the image stores. */
export function pagePolicy(e: MapEntry): PagePolicy {
  const p = e.path;
  if (p === '[vvar]' || p === '[vvar_vclock]' || p === '[vsyscall]') return 'none';
  if (e.vmflags.has('io') || e.vmflags.has('pf')) return 'none'; // device memory: reported by check
  const anon = p === '' || isPseudoPath(p) || isSharedAnonPath(p) || isSysvShmPath(p);
  if (anon) return 'populated';
  if (e.shared) {
    // a shared file mapping lives in its file, unless the file cannot be reached again
    return isDeletedPath(p) || isMemfdPath(p) ? 'populated' : 'none';
  }
  return 'private-file';
}

function vmaPath(e: MapEntry): string | null {
  const p = e.path;
  if (p === '' || isSharedAnonPath(p)) return null;
  if (isPseudoPath(p) || isSysvShmPath(p)) return p;
  return stripDeleted(p);
}

export function collectMm(pid: number, mem: ProcMemory, smaps?: MapEntry[]): Mm {
  const st = readStat(pid);
  const maps = smaps ?? readMaps(pid, true);
  const vmas: Vma[] = [];
  let brk = st.startBrk;
  for (const e of maps) {
    if (e.path === '[heap]') brk = e.end;
    const policy = pagePolicy(e);
    const npages = Number((e.end - e.start) / BigInt(PAGE));
    const runs = mem.runs(e.start, npages, policy);
    vmas.push({
      start: e.start,
      end: e.end,
      prot: (e.read ? Prot.READ : 0) | (e.write ? Prot.WRITE : 0) | (e.exec ? Prot.EXEC : 0),
      flags: vmaFlags(e),
      pgoff: e.offset / BigInt(PAGE),
      devMajor: e.devMajor,
      devMinor: e.devMinor,
      inode: e.inode,
      path: vmaPath(e),
      pages: runs.length ? new LivePageSource(mem, e.start, runs) : NO_PAGES,
    });
  }
  return {
    startCode: st.startCode,
    endCode: st.endCode,
    startData: st.startData,
    endData: st.endData,
    startBrk: st.startBrk,
    brk,
    startStack: st.startStack,
    argStart: st.argStart,
    argEnd: st.argEnd,
    envStart: st.envStart,
    envEnd: st.envEnd,
    auxv: readAuxv(pid),
    vmas,
  };
}

// ------------------------------------------------------------------ files

export function openFileOf(f: FdInfo): OpenFile {
  const mode = f.stat ? f.stat.mode : 0n;
  const t = fileType(mode);
  const regularPath = t === S_IFREG || t === S_IFDIR;
  return {
    fd: f.fd,
    kind: t === S_IFREG ? FdKind.REGULAR : t === S_IFDIR ? FdKind.DIRECTORY : FdKind.OTHER,
    path: regularPath ? stripDeleted(f.link) : f.link,
    flags: f.flags & ~O_CLOEXEC,
    pos: f.pos,
    mode: Number(mode),
    cloexec: (f.flags & O_CLOEXEC) !== 0,
    devMajor: f.stat ? devMajor(f.stat.dev) : 0,
    devMinor: f.stat ? devMinor(f.stat.dev) : 0,
    inode: f.stat ? f.stat.ino : 0n,
    size: f.stat && t === S_IFREG ? f.stat.size : 0n,
  };
}

/** The open files, in fd order, each with the state the kinds read of it (inspect.ts: eventfds ..., pipe ends,
 *  socket pairs, inotify watches, listening sockets, file locks). */
export function openFiles(fds: FdInfo[], states: Map<number, SavedFdState[]>): OpenFile[] {
  return [...fds]
    .sort((a, b) => a.fd - b.fd)
    .map((f) => {
      const file = openFileOf(f);
      applyFdStates(file, states.get(f.fd));
      return file;
    });
}

// ------------------------------------------------------------------ the task

/** Everything but the threads of one process (call while it is frozen): `fds` its fd table and `fdStates` what the
 *  inspection read of each fd (inspectProcesses with wantState). */
export function collectTask(
  pid: number,
  threads: Thread[],
  mem: ProcMemory,
  fds: FdInfo[],
  fdStates: Map<number, SavedFdState[]>,
  smaps?: MapEntry[],
): Task {
  const st = readStat(pid);
  const status = readStatus(pid);
  const link = (what: string): string => tryReadlink(procPath(pid, what)) ?? '';
  let args: string[] = [];
  let env: string[] = [];
  try {
    args = readNulList(procPath(pid, 'cmdline'));
  } catch {
    /* exiting */
  }
  try {
    env = readNulList(procPath(pid, 'environ'));
  } catch {
    /* no permission or exiting */
  }
  const exe = link('exe');
  const files = openFiles(fds, fdStates);
  return {
    pid,
    tgid: pid,
    ppid: st.ppid,
    pgid: st.pgrp,
    sid: st.session,
    comm: st.comm,
    exe: stripDeleted(exe),
    cwd: stripDeleted(link('cwd')),
    root: link('root'),
    args,
    env,
    personality: readPersonality(pid),
    exitSignal: st.exitSignal,
    creds: statusCreds(status),
    rlimits: readLimits(pid),
    ns: readNsIds(pid),
    threads,
    mm: collectMm(pid, mem, smaps),
    files,
    nocr: [],
  };
}

// ------------------------------------------------------------------ uts

function unameNow(): Uts {
  const b = new Uint8Array(6 * 65);
  syscall(SYS.uname, addressOf(b));
  const f = (i: number): string => {
    const s = b.subarray(i * 65, (i + 1) * 65);
    const z = s.indexOf(0);
    return new TextDecoder().decode(s.subarray(0, z < 0 ? 65 : z));
  };
  return { sysname: f(0), nodename: f(1), release: f(2), version: f(3), machine: f(4), domainname: f(5) };
}

/** uname of this host as crimg sees it. */
export function hostUts(): Uts {
  try {
    return unameNow();
  } catch {
    return {
      sysname: os.type(),
      nodename: os.hostname(),
      release: os.release(),
      version: os.version(),
      machine: os.machine(),
      domainname: '',
    };
  }
}

/** The UTS strings of pid's UTS namespace (entering it briefly with setns when it is not ours). */
export function utsOf(pid: number): Uts | null {
  const mine = tryReadlink('/proc/thread-self/ns/uts');
  const theirs = tryReadlink(procPath(pid, 'ns/uts'));
  if (!theirs) return null;
  if (mine === theirs) return hostUts();
  let back = -1;
  let fd = -1;
  try {
    back = fs.openSync('/proc/thread-self/ns/uts', 'r');
    fd = fs.openSync(procPath(pid, 'ns/uts'), 'r');
    syscall(SYS.setns, fd, CLONE_NEWUTS);
    try {
      return unameNow();
    } finally {
      syscall(SYS.setns, back, CLONE_NEWUTS);
    }
  } catch {
    return null;
  } finally {
    if (fd >= 0) fs.closeSync(fd);
    if (back >= 0) fs.closeSync(back);
  }
}

/** The namespaces the tasks use (one entry per distinct kind and id; UTS ones with their names, read in the task). */
export function namespacesOf(tasks: Task[]): Namespace[] {
  return namespacesOfTasks(tasks, (t) => utsOf(t.pid));
}
