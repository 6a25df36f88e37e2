/**
 * Restore: bring one task of an image back to life.
 *
 * crimg starts a throwaway stub process (`sleep`), seizes it with ptrace and,
 * by injecting system calls into it (see inject.ts), turns it into the task of
 * the image:
 *
 *   1. a "park" mapping at an address free in both the stub and the image takes
 *      the injection code and scratch data; the stub's rseq is unregistered and
 *      its [vvar]/[vvar_vclock]/[vdso] are moved into the park;
 *   2. every other mapping of the stub is removed;
 *   3. every VMA of the image is recreated at its address with its protection and
 *      flags (files reopened by path at their offset), and the stored pages are
 *      written into it straight from WebAssembly memory (pages.ts: UFFDIO_COPY for
 *      private anonymous memory, process_vm_writev for the rest);
 *   4. the vdso mappings move to the image's addresses; PR_SET_MM_MAP sets the
 *      mm fields (code, data, brk, stack, args, env), the auxv and the exe link;
 *   5. name, personality, rlimits, signal handlers, working directory, open files (at their fd
 *      numbers, flags and positions; everything else closed);
 *   6. one thread per extra thread of the image by an injected clone (clone3 with
 *      set_tid = the image's tid under pidNs, see pidns.ts), then credentials in
 *      every thread;
 *   7. per thread: rseq registration, clear_child_tid and robust futex list, FXSAVE/XSAVE state (SETREGSET), signal mask
 *      and registers (with interrupted system calls set up to restart, as the
 *      kernel would have done); the main thread removes the park with its last
 *      system call and gets its registers at that call's exit stop;
 *   8. detach: the task runs on (or stays stopped with `stopped`).
 *
 * Independent system calls run in batches (Injector.batchRaw): one stop for all
 * the munmaps, mmaps, mprotects, rlimits, fd closes ... of a step.
 *
 * Every step that fails kills the stub (and so everything half-built) and
 * reports the step, the address or fd, and the system error as RESTORE.
 */
import { readFileSync, statSync } from 'node:fs';
import { CrimgError } from '../errors.js';
import { ANON_KIND, FdKind, LOCK_EOF, LOCK_KIND, SIGEV, VmaFlags, type OpenFile, type PosixTimer, type Task, type Thread, type Vma } from '../model.js';
import { createAnon } from '../kinds/anon-fd/live.js';
import { createPipe, makePipe, placeEnds } from '../kinds/pipe/live.js';
import { createUnixPair } from '../kinds/unix-pair/live.js';
import { createInotify } from '../kinds/inotify/live.js';
import { createListener } from '../kinds/tcp-listen/live.js';
import { readPosixTimers } from '../kinds/posix-timers/live.js';
import type { Image } from '../reader.js';
import {
  NT, PTRACE, PTRACE_O, WAIT, isSysError, kill, ptrace, ptraceDetach, ptraceGetRegset, ptraceGetRseq,
  ptraceInterrupt, ptraceSetRegs, ptraceSetRegset, ptraceSetSigmask, processVmRead, spawn, tgkill, waitpid, syscall, addressOf,
} from '../os/libc.js';
import {
  AT_FDCWD, ARCH_REQ_XCOMP_PERM, MAP_ANONYMOUS, MAP_FIXED_NOREPLACE, MAP_GROWSDOWN, MAP_PRIVATE, MAP_SHARED, MREMAP_FIXED,
  MREMAP_MAYMOVE, O_ACCMODE, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_EXCL, O_NOCTTY, O_RDONLY, O_RDWR, O_TRUNC, PROT_EXEC,
  PROT_READ, PROT_WRITE, PR_CAPBSET_DROP, PR_SET_DUMPABLE, PR_SET_MM, PR_SET_MM_MAP, PR_SET_NAME, PR_SET_NO_NEW_PRIVS,
  RSEQ_FLAG_UNREGISTER, SIG, SS_DISABLE, SS_ONSTACK,
} from '../os/consts.js';
import { readFds, readMaps } from '../os/proc.js';
import { type TaskCall, restartedRegs } from '../os/taskcall.js';
import {
  type CheckOptions, type RestoreReason, checkTask, checkXsave, fdReopenable, formatReasons, hostSpecials, isFileVma, ownCaps,
  isSpecialVma, pickTask,
} from './check.js';
import { type BatchCall, InjectError, Injector, NR, R, SYSCALL_INT3, waitStop } from './inject.js';
import { buildXstate, imageXstateBv, xstateXcr0 } from './xsave.js';
import { PageWriter, type PageWriterOptions } from './pages.js';
import { CLONE_ARGS_SIZE, type PidNsProcs, buildPidNs, forkWithPid, killPidNs, releaseReapers, threadCloneArgs } from './pidns.js';

export interface RestoreOptions extends CheckOptions {
  /** Task of the image to restore (default: the only one). */
  pid?: number;
  /** Leave the restored task stopped (SIGSTOP) instead of letting it run. */
  stopped?: boolean;
  /** Stub program (default `sleep`, found in PATH). */
  stub?: string;
  /** For tests: fail on purpose when this step begins (everything built so far must be torn down). */
  failAt?: string;
  /** How pages are written (tests and benchmarks; default: userfaultfd for private anonymous memory where possible). */
  pageWriter?: PageWriterOptions;
  /**
   * Restore into a new PID namespace where the task gets its original pid and its threads their original tids
   * (clone3 with set_tid; needs root). See pidns.ts for the processes this makes.
   */
  pidNs?: boolean;
  /** @internal a task of a tree other than its root: it keeps its parent's session (no setsid). */
  treeChild?: boolean;
  /** @internal pipes between tasks of a tree, made in the root's stub before the children: inode -> [read, write]
   *  fds every stub inherited (above every fd of the tree). */
  treePipes?: Map<bigint, [number, number]>;
}

export interface RestoreResult {
  pid: number;
  tids: number[];
  /** Pages written into the new process (the image's stored pages of its VMAs, shared file mappings aside). */
  pagesWritten: number;
  /** Whether pages of private anonymous memory were copied with UFFDIO_COPY (else all went by process_vm_writev). */
  userfaultfd: boolean;
  seconds: number;
  /** With `pidNs`: the task's pid and tids inside its new PID namespace (the image's), and the holder and init
   *  processes (pids as crimg sees them; the holder is the caller's child). */
  pidNs?: { pid: number; tids: number[]; holder: number; init: number };
  /** With `tree`: every task restored, root first (pids and tids in the new namespace; `hostPid` as crimg sees it). */
  tree?: { pid: number; hostPid: number; tids: number[] }[];
}

const PAGE = 4096n;
const CLONE_THREAD_FLAGS = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000; // VM FS FILES SIGHAND THREAD SYSVSEM

/** Park layout: code page, then scratch data, then room for the stub's vdso mappings. The code page holds the
 *  `syscall; int3` of single calls at its start and the code of batched calls from BATCH_CODE on; the results of
 *  batched calls go to the end of the data area, from RESULTS on. */
const PARK_CODE = 4096n;
const PARK_DATA = 60n * 1024n;
const BATCH_CODE = 64n;
const RESULTS = PARK_DATA - 4096n;

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** VMA flags restored by madvise: flag, advice, whether it must succeed, name. */
const MADVICE: readonly [number, number, boolean, string][] = [
  [VmaFlags.DONTDUMP, 16, true, 'MADV_DONTDUMP'], [VmaFlags.DONTFORK, 10, true, 'MADV_DONTFORK'],
  [VmaFlags.WIPEONFORK, 18, true, 'MADV_WIPEONFORK'], [VmaFlags.HUGEPAGE, 14, false, 'MADV_HUGEPAGE'],
  [VmaFlags.NOHUGEPAGE, 15, false, 'MADV_NOHUGEPAGE'], [VmaFlags.MERGEABLE, 12, false, 'MADV_MERGEABLE'],
  [VmaFlags.SEQ_READ, 2, false, 'MADV_SEQUENTIAL'], [VmaFlags.RAND_READ, 1, false, 'MADV_RANDOM'],
];

/** True when the thread was interrupted in a system call the kernel restarts through its restart block. */
export function restartBlock(regs: BigUint64Array): boolean {
  return BigInt.asIntN(64, regs[R.orig_rax]!) >= 0n && BigInt.asIntN(64, regs[R.rax]!) === -516n;
}

/** Registers as the task must resume: an interrupted system call is set up the way the kernel restarts it. */
export function resumeRegs(regs: BigUint64Array): BigUint64Array { return restartedRegs(regs, false); }

/** Finds `size` bytes free of all the given ranges, 1 MiB aligned, from 4 GiB up. */
function findHole(ranges: [bigint, bigint][], size: bigint): bigint {
  const sorted = [...ranges].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const align = 1n << 20n;
  let at = 1n << 32n;
  for (const [s, e] of sorted) {
    if (e <= at) continue;
    if (s >= at + size + align) break; // keep a gap below the next range
    at = (e + align) & ~(align - 1n);
  }
  if (at + size > 0x7ff000000000n) throw new Error('no free address range for the restore park area');
  return at;
}

class Step extends Error {
  constructor(readonly step: string, readonly where: string, readonly cause0: unknown) {
    super(`${step}${where ? ` at ${where}` : ''}: ${(cause0 as Error)?.message ?? String(cause0)}`);
  }
}

export interface Prepared {
  task: Task;
  reasons: RestoreReason[];
}

/** Static checks (no process is created): the task to restore and the reasons it cannot be. */
export function prepareRestore(image: Image, opts: RestoreOptions = {}): Prepared {
  const { task, reasons } = pickTask(image.model, opts.pid);
  if (!task) return { task: null as unknown as Task, reasons };
  const ns: RestoreReason[] = [];
  if (opts.pidNs && (process.getuid?.() ?? 0) !== 0) {
    ns.push({ code: 'PID_NS', where: 'pid namespace', text: 'restoring into a new PID namespace with the original pid needs root (CAP_SYS_ADMIN)' });
  }
  return { task, reasons: [...checkTask(image.model, task, opts), ...checkVdsoBytes(image, task), ...ns] };
}

/** The vdso pages the image stored must be this kernel's vdso: the task's libc keeps pointers into it. */
function checkVdsoBytes(image: Image, task: Task): RestoreReason[] {
  const v = task.mm?.vmas.find((x) => x.path === '[vdso]');
  const h = hostSpecials().find((m) => m.path === '[vdso]');
  if (!v || !h || h.end - h.start !== v.end - v.start) return []; // layout differences are reported by checkTask
  const mine = new Uint8Array(Number(h.end - h.start));
  if (processVmRead(process.pid, mine, h.start) !== mine.length) return [];
  const theirs = image.readMemory(task.pid, v.start, mine.length);
  for (const [first, n] of v.pages.runs(mine.length / 4096)) {
    const a = first * 4096, b = (first + n) * 4096;
    if (Buffer.compare(Buffer.from(mine.subarray(a, b)), Buffer.from(theirs.subarray(a, b))) !== 0) {
      return [{ code: 'VDSO_MISMATCH', where: '[vdso]', text: 'the vdso of the image differs from this kernel\'s: restore on the kernel that made the image' }];
    }
  }
  return [];
}

/** Everything `restore --check` reports: static checks plus the CPU's XSAVE features (asked of a short-lived stub). */
export function checkRestore(image: Image, opts: RestoreOptions = {}): RestoreReason[] {
  const p = prepareRestore(image, opts);
  if (!p.task) return p.reasons;
  return [...p.reasons, ...checkXsave(p.task, probeXcr0(opts.stub))];
}

/** XCR0 of this machine as the kernel reports it for a new process (null when the CPU has no XSAVE). */
function probeXcr0(stub = 'sleep'): bigint | null {
  const s = startStub(stub);
  try {
    return s.xstate ? xstateXcr0(s.xstate) : null;
  } finally { killStub([s.pid], []); }
}

interface Stub { pid: number; xstate: Uint8Array | null }

function startStub(stub: string): Stub {
  let pid: number;
  try {
    pid = spawn([stub, '2147483647']);
  } catch (e) {
    throw new CrimgError('RESTORE', `step start stub: cannot start the stub program ${stub}: ${(e as Error).message}`, { cause: e });
  }
  try {
    ptrace(PTRACE.SEIZE, pid, 0, PTRACE_O.EXITKILL | PTRACE_O.TRACESYSGOOD | PTRACE_O.TRACECLONE);
    ptraceInterrupt(pid);
    waitStop(pid);
    let xstate: Uint8Array | null = null;
    const buf = new Uint8Array(64 * 1024);
    try {
      const n = ptraceGetRegset(pid, NT.X86_XSTATE, buf);
      xstate = buf.slice(0, n);
    } catch (e) {
      if (!isSysError(e)) throw e; // no XSAVE: FXSAVE only
    }
    return { pid, xstate };
  } catch (e) {
    killStub([pid], []);
    throw new CrimgError('RESTORE', `step seize stub: ${(e as Error).message}; stub ${pid} killed`, { cause: e });
  }
}

/** Kill the stub processes (all their threads) and reap everything we traced. Never throws. */
function killStub(pids: number[], threads: number[]): void {
  for (const pid of pids) killHard(pid);
  reapTraced([...threads.filter((t) => !pids.includes(t)), ...[...pids].reverse()]);
}

function killHard(pid: number): void {
  try { kill(pid, SIG.SIGKILL); } catch { /* gone already */ }
}

/** Waits until each thread we traced has exited (ignoring the stops it may report on the way). */
function reapTraced(tids: number[]): void {
  for (const tid of tids) {
    for (;;) {
      try {
        const { status } = waitpid(tid, WAIT.__WALL);
        if ((status & 0x7f) !== 0x7f) break; // exited or killed
      } catch { break; } // ECHILD: reaped already
    }
  }
}

/**
 * Restore one task of `image` as a new process; returns its pid. Throws NOT_RESTORABLE (nothing was started) or
 * RESTORE (a step failed; the half-built process was killed and reaped). The new process is a child of the calling
 * process: a long-lived caller reaps it (waitpid) when it exits.
 */
export async function restoreImage(image: Image, opts: RestoreOptions = {}): Promise<RestoreResult> {
  const t0 = process.hrtime.bigint();
  if (opts.tree && opts.pid === undefined) opts = { ...opts, pid: image.model.tasks[0]?.pid }; // the tree's root
  const prep = prepareRestore(image, opts);
  if (prep.reasons.length) {
    throw new CrimgError('NOT_RESTORABLE', `the image cannot be restored: ${formatReasons(prep.reasons)}`);
  }
  const task = prep.task;
  // --tree: the tasks below the root, parents before children (each made from its parent's stub)
  const below: Task[] = [];
  if (opts.tree) {
    if (!opts.pidNs) throw new CrimgError('USAGE', 'restoring a process tree needs --pid-ns: the parents know their children by pid');
    const add = (p: Task): void => { for (const c of image.model.tasks.filter((t) => t.ppid === p.pid && t !== p)) { below.push(c); add(c); } };
    add(task);
    const reasons = below.flatMap((t) => prepareRestore(image, { ...opts, pid: t.pid }).reasons.map((r) => ({ ...r, where: `task ${t.pid} ${r.where}` })));
    if (reasons.length) throw new CrimgError('NOT_RESTORABLE', `the image cannot be restored: ${formatReasons(reasons)}`);
  }
  const first = startStub(opts.stub ?? 'sleep');
  /** Every process made so far: the stub, or with pidNs the holder, init and task. */
  const procs: number[] = [first.pid];
  let stub = first;
  let pns: PidNsProcs | null = null;
  const tids: number[] = [];
  /** With tree: the threads of each task below the root. */
  const childTids: number[][] = [];
  let where = '';
  let stepName = 'start';
  const step = <T>(name: string, at: string, fn: () => T): T => {
    stepName = name; where = at;
    if (opts.failAt === name) throw new Step(name, at, new Error('failing on purpose (failAt)'));
    try { return fn(); } catch (e) {
      if (e instanceof Step || e instanceof CrimgError) throw e;
      throw new Step(name, at, e);
    }
  };
  try {
    const xr = checkXsave(task, stub.xstate ? xstateXcr0(stub.xstate) : null);
    if (xr.length) throw new CrimgError('NOT_RESTORABLE', `the image cannot be restored: ${formatReasons(xr)}`);
    if (opts.pidNs) {
      pns = buildPidNs(first.pid, task.pid, step, procs);
      stub = { pid: pns.task, xstate: first.xstate };
    }
    // pipes between tasks of the tree: made in the root's stub, so that every child inherits both ends
    const treePipes = new Map<bigint, [number, number]>();
    if (below.length) {
      const all = [task, ...below];
      const byIno = new Map<bigint, { tasks: Set<Task>; ends: OpenFile[] }>();
      for (const t of all) for (const f of t.files) {
        if (!f.pipe) continue;
        const e = byIno.get(f.pipe.ino) ?? { tasks: new Set(), ends: [] };
        e.tasks.add(t); e.ends.push(f);
        byIno.set(f.pipe.ino, e);
      }
      const above = all.flatMap((t) => t.files.map((f) => f.fd)).reduce((m, fd) => Math.max(m, fd), 2) + 1;
      const root = stub.pid, at = pns!.scratch + 0xc00n;
      const readPair = (): [number, number] => { const b = new Int32Array(2); processVmRead(root, new Uint8Array(b.buffer), at); return [b[0]!, b[1]!]; };
      for (const [ino, e] of byIno) {
        if (e.tasks.size < 2) continue;
        const data = e.ends.find((f) => f.pipe!.data?.length)?.pipe!.data;
        const readable = e.ends.some((f) => !f.pipe!.write);
        treePipes.set(ino, step('pipe between tasks', `pipe ${ino}`, () => {
          const inj = new Injector(root);
          return makePipe(root, (nr, args, detail) => inj.call(nr, args, detail), at, readPair, above, e.ends[0]!.pipe!.size, readable ? data : undefined);
        }));
      }
    }
    opts = { ...opts, treePipes };
    // the tree's stubs, all before any is turned into its task (a child is a copy of its parent's stub)
    const hostOf = new Map<number, number>([[task.pid, stub.pid]]);
    for (const c of below) {
      const parent = hostOf.get(c.ppid)!;
      const made = step('fork child', `task ${c.pid} of ${c.ppid}`, () => forkWithPid(new Injector(parent), pns!.scratch, c.pid, c.exitSignal || SIG.SIGCHLD, procs));
      hostOf.set(c.pid, made);
    }
    tids.push(stub.pid);
    const r = await build(image, task, stub, tids, step, opts);
    const tree: NonNullable<RestoreResult['tree']> = [{ pid: task.pid, hostPid: stub.pid, tids: task.threads.map((t) => t.tid) }];
    for (const c of below) {
      const host = hostOf.get(c.pid)!;
      const ct = [host]; // this task's threads (build adds them); cleanup sees them through childTids
      childTids.push(ct);
      await build(image, c, { pid: host, xstate: first.xstate }, ct, step, { ...opts, pid: c.pid, treeChild: true });
      tree.push({ pid: c.pid, hostPid: host, tids: c.threads.map((t) => t.tid) });
    }
    let ns: RestoreResult['pidNs'];
    if (pns) {
      const p = pns;
      step('pid namespace: release holder and init', '', () => releaseReapers(p));
      ns = { pid: task.pid, tids: task.threads.map((t) => t.tid), holder: p.holder, init: p.init };
    }
    return { pid: stub.pid, tids: r.tids, pagesWritten: r.pages, userfaultfd: r.userfaultfd, seconds: Number(process.hrtime.bigint() - t0) / 1e9, pidNs: ns, ...(opts.tree ? { tree } : {}) };
  } catch (e) {
    if (procs.length > 1) killPidNs(procs, [...tids, ...childTids.flat()], killHard, reapTraced);
    else killStub(procs, tids);
    const killed = procs.length > 1 ? `stubs ${procs.join(', ')}` : `stub ${procs[0]}`;
    if (e instanceof CrimgError) {
      if (e.code === 'NOT_RESTORABLE') throw e;
      throw new CrimgError('RESTORE', `step ${stepName}${where ? ` at ${where}` : ''}: ${e.line()}; ${killed} killed`, { cause: e });
    }
    if (e instanceof Step) throw new CrimgError('RESTORE', `step ${e.message}; ${killed} killed`, { cause: e.cause0 });
    throw new CrimgError('RESTORE', `step ${stepName}${where ? ` at ${where}` : ''}: ${(e as Error)?.message ?? String(e)}; ${killed} killed`, { cause: e });
  }
}

type StepFn = <T>(name: string, at: string, fn: () => T) => T;

const SYS_FLOCK = 73, F_SETLK = 6, F_OFD_SETLK = 37, F_RDLCK = 0, F_WRLCK = 1, LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4;

/**
 * The file locks, taken last (a POSIX lock goes away when the process closes any descriptor of its file, and crimg
 * closes its own along the way): flock, or fcntl F_SETLK / F_OFD_SETLK on the bytes recorded, none of them waiting.
 * A lock someone else holds now fails the restore (EAGAIN) rather than leave the task believing it has it.
 */
function restoreLocks(task: Task, ti: Injector, data: bigint, step: StepFn): void {
  const fl = new Uint8Array(32);
  const dv = new DataView(fl.buffer);
  for (const f of task.files) {
    for (const l of f.locks ?? []) {
      const at = `fd ${f.fd} ${f.path} ${l.write ? 'write' : 'read'} lock ${l.start}..${l.end === LOCK_EOF ? 'EOF' : l.end}`;
      if (l.kind === LOCK_KIND.FLOCK) {
        step('file lock', at, () => ti.call(SYS_FLOCK, [f.fd, (l.write ? LOCK_EX : LOCK_SH) | LOCK_NB], 'flock'));
        continue;
      }
      fl.fill(0);
      dv.setInt16(0, l.write ? F_WRLCK : F_RDLCK, true);
      dv.setInt16(2, 0, true); // SEEK_SET
      dv.setBigInt64(8, l.start, true);
      dv.setBigInt64(16, l.end === LOCK_EOF ? 0n : l.end - l.start + 1n, true); // 0: to the end of the file
      step('file lock', at, () => {
        ti.write(data, fl);
        ti.call(NR.fcntl, [f.fd, l.kind === LOCK_KIND.OFD ? F_OFD_SETLK : F_SETLK, data], l.kind === LOCK_KIND.OFD ? 'F_OFD_SETLK' : 'F_SETLK');
      });
    }
  }
}

const PR_TIMER_CREATE_RESTORE_IDS = 77;
const SYS_RT_TGSIGQUEUEINFO = 297, SI_TIMER = -2;

/** Queue signal sig to thread tid of tgid as POSIX timer pt sends it: a siginfo with SI_TIMER, the timer id, no
 *  overrun and its sigev_value (the kernel lets any sender use a negative si_code other than SI_TKILL). */
function queueTimerSignal(tgid: number, tid: number, sig: number, pt: PosixTimer): void {
  const info = new Uint8Array(128);
  const dv = new DataView(info.buffer);
  dv.setInt32(0, sig, true);
  dv.setInt32(8, SI_TIMER, true);
  dv.setInt32(16, pt.id, true);
  dv.setBigUint64(24, pt.sigevValue, true);
  syscall(SYS_RT_TGSIGQUEUEINFO, tgid, tid, sig, addressOf(info));
}
const SIGEVENT_BYTES = 64;

/**
 * The task's POSIX timers, in the leader at the end (like the interval timers): each created with its id, clock,
 * notification, signal and sigev_value (a SIGEV_THREAD_ID one aimed at the new tid of its thread), then armed with
 * the time that remained at the freeze (one that had expired, its signal queued again, starts a new interval).
 * The id is chosen with PR_TIMER_CREATE_RESTORE_IDS (Linux 6.15); without it the kernel hands out ids from 0 up,
 * which gives the same ids when the program made its timers in order and deleted none. Either way the ids are
 * then checked in /proc/PID/timers.
 */
function restorePosixTimers(task: Task, pid: number, ti: Injector, injs: Map<Thread, Injector>, data: bigint, step: StepFn): void {
  const pts = task.posixTimers!;
  let chosen = true;
  try { ti.call(NR.prctl, [PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0]); } catch { chosen = false; }
  const b = new Uint8Array(SIGEVENT_BYTES + 8 + 32);
  const dv = new DataView(b.buffer);
  for (const pt of pts) {
    let tid = 0;
    if (pt.notify === SIGEV.THREAD_ID) {
      const th = task.threads.find((t) => t.tid === pt.notifyTid);
      if (!th || !injs.has(th)) throw new Step('POSIX timers', `timer ${pt.id}`, new Error(`thread ${pt.notifyTid} it signals is not in the image`));
      tid = injs.get(th)!.tid;
    }
    b.fill(0);
    dv.setBigUint64(0, pt.sigevValue, true);
    dv.setInt32(8, pt.signo, true);
    dv.setInt32(12, pt.notify, true);
    dv.setInt32(16, tid, true);
    dv.setInt32(SIGEVENT_BYTES, pt.id, true); // the id asked for (restore mode)
    step('POSIX timers', `timer ${pt.id}`, () => {
      ti.write(data, b);
      ti.call(NR.timer_create, [pt.clock, data, data + BigInt(SIGEVENT_BYTES)], `clock ${pt.clock}`);
    });
  }
  if (chosen) step('POSIX timers', 'restore ids off', () => ti.call(NR.prctl, [PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0]));
  const got = readPosixTimers(pid).map((t) => t.id).sort((x, y) => x - y);
  const want = pts.map((t) => t.id);
  if (got.join() !== want.join()) {
    throw new Step('POSIX timers', '', new Error(`the new process has timer ids ${got.join(', ')} instead of ${want.join(', ')}${chosen ? '' : ' (this kernel cannot choose them: PR_TIMER_CREATE_RESTORE_IDS needs Linux 6.15)'}`));
  }
  for (const pt of pts) {
    const valueNs = pt.valueNs || pt.intervalNs;
    if (!valueNs) continue; // disarmed
    dv.setBigUint64(0, pt.intervalNs / 1_000_000_000n, true); dv.setBigUint64(8, pt.intervalNs % 1_000_000_000n, true);
    dv.setBigUint64(16, valueNs / 1_000_000_000n, true); dv.setBigUint64(24, valueNs % 1_000_000_000n, true);
    step('POSIX timers', `arm timer ${pt.id}`, () => {
      ti.write(data, b.subarray(0, 32));
      ti.call(NR.timer_settime, [pt.id, 0, data, 0]);
    });
  }
}
type BatchFn = (name: string, calls: (BatchCall & { at: string; detail?: string })[]) => bigint[];
type BatchFor = (inj: Injector) => BatchFn;

async function build(image: Image, task: Task, stub: Stub, tids: number[], step: StepFn, opts: RestoreOptions): Promise<{ tids: number[]; pages: number; userfaultfd: boolean }> {
  const pid = stub.pid;
  const mm = task.mm!;
  const leaderTh = task.threads.find((t) => t.tid === task.pid) ?? task.threads[0]!;
  const others = task.threads.filter((t) => t !== leaderTh);

  // ---- 1. park area, rseq, vdso
  const stubMaps = step('read stub maps', '', () => readMaps(pid, false));
  const specials = stubMaps.filter((m) => m.path === '[vvar]' || m.path === '[vvar_vclock]' || m.path === '[vdso]');
  const specialBytes = specials.reduce((n, m) => n + (m.end - m.start), 0n);
  const parkSize = PARK_CODE + PARK_DATA + specialBytes;
  const park = step('choose park', '', () => findHole([
    ...stubMaps.map((m) => [m.start, m.end] as [bigint, bigint]),
    ...mm.vmas.map((v) => [v.start, v.end] as [bigint, bigint]),
  ], parkSize));
  const data = park + PARK_CODE;
  const inj = step('bootstrap', '', () => new Injector(pid));
  // A session of its own: no terminal signals for crimg's job (^C, SIGWINCH), no controlling terminal, and no SIGHUP
  // when crimg exits and leaves it (stopped, with --stopped) in an orphaned process group.
  if (!opts.treeChild) step('setsid', '', () => inj.call(NR.setsid, []));
  else if (task.pgid === task.pid) step('setpgid', '', () => inj.call(NR.setpgid, [0, 0])); // led its own group
  step('map park', hex(park), () => {
    inj.call(NR.mmap, [park, parkSize, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0]);
    const code = new Uint8Array(16).fill(0xcc);
    new DataView(code.buffer).setBigUint64(0, SYSCALL_INT3, true);
    inj.write(park, code);
    inj.code = park;
  });
  const str = (s: string, off = 0n): bigint => {
    const b = Buffer.from(`${s}\0`, 'utf8');
    if (BigInt(b.length) + off > RESULTS) throw new Error(`path too long: ${s.slice(0, 64)}...`);
    inj.write(data + off, b);
    return data + off;
  };
  /**
   * Calls that do not depend on one another, run in one stop (see Injector.batchRaw); the first that failed is
   * reported as a failure of step `name` at its `at`.
   */
  const batchFor: BatchFor = (bi) => (name, calls) => {
    if (!calls.length) return [];
    if (opts.failAt === name) throw new Step(name, calls[0]!.at, new Error('failing on purpose (failAt)'));
    const res = step(name, '', () => bi.batchRaw(calls, park + BATCH_CODE, Number(PARK_CODE - BATCH_CODE), data + RESULTS));
    res.forEach((v, i) => {
      if (v < 0n && v >= -4095n) throw new Step(name, calls[i]!.at, new InjectError(calls[i]!.nr, Number(-v), calls[i]!.detail ?? ''));
    });
    return res;
  };
  const batch = batchFor(inj);
  const rseq = ptraceGetRseq(pid);
  if (rseq && rseq.ptr) {
    step('unregister stub rseq', hex(rseq.ptr), () => inj.call(NR.rseq, [rseq.ptr, rseq.len, RSEQ_FLAG_UNREGISTER, rseq.sig]));
  }
  const parked = new Map<string, bigint>();
  let at = park + PARK_CODE + PARK_DATA;
  for (const m of specials) {
    step('park vdso', `${m.path} ${hex(m.start)}`, () => inj.call(NR.mremap, [m.start, m.end - m.start, m.end - m.start, MREMAP_MAYMOVE | MREMAP_FIXED, at]));
    parked.set(m.path, at);
    at += m.end - m.start;
  }

  // ---- 2. empty the stub
  batch('unmap stub', stubMaps.filter((m) => !specials.includes(m) && m.path !== '[vsyscall]')
    .map((m) => ({ nr: NR.munmap, args: [m.start, m.end - m.start], at: `${hex(m.start)}-${hex(m.end)}` })));

  // ---- 3. the image's memory
  const writer = new PageWriter(image, opts.pageWriter);
  let pages = 0;
  let userfaultfd = false;
  const fileFds = new Map<string, number>();
  try {
    const vmas = mm.vmas.filter((v) => !isSpecialVma(v)).sort((a, b) => (a.start < b.start ? -1 : 1));
    step('userfaultfd', '', () => writer.begin(pid, (nr, args) => inj.call(nr, args)));
    const vmaAt = (v: Vma): string => `vma ${hex(v.start)}-${hex(v.end)}${v.path ? ` ${v.path}` : ''}`;
    const fileMode = (v: Vma): number => ((v.flags & VmaFlags.SHARED) && (v.prot & PROT_WRITE) ? O_RDWR : O_RDONLY);
    // the mapped files, opened all at once (their paths side by side in the park)
    const toOpen: { key: string; path: string; mode: number; at: string }[] = [];
    for (const v of vmas) {
      if (!isFileVma(v)) continue;
      const key = `${fileMode(v)}\0${v.path}`;
      if (!toOpen.some((o) => o.key === key)) toOpen.push({ key, path: v.path!, mode: fileMode(v), at: vmaAt(v) });
    }
    const paths = toOpen.map((o) => Buffer.from(`${o.path}\0`, 'utf8'));
    if (paths.reduce((n, b) => n + b.length, 0) <= Number(RESULTS)) {
      const calls: (BatchCall & { at: string; detail: string })[] = [];
      let off = 0;
      step('open mapped file', '', () => inj.write(data, Buffer.concat(paths)));
      toOpen.forEach((o, i) => {
        calls.push({ nr: NR.openat, args: [AT_FDCWD, data + BigInt(off), o.mode | O_CLOEXEC, 0], at: o.at, detail: o.path });
        off += paths[i]!.length;
      });
      batch('open mapped file', calls).forEach((fd, i) => fileFds.set(toOpen[i]!.key, Number(fd)));
    } else {
      for (const o of toOpen) {
        fileFds.set(o.key, step('open mapped file', o.at, () => Number(inj.call(NR.openat, [AT_FDCWD, str(o.path), o.mode | O_CLOEXEC, 0], o.path))));
      }
    }
    // every VMA mapped at once; read-only ones that get pages are mapped writable, then protected
    const storedRuns = (v: Vma): [number, number][] => (isFileVma(v) && (v.flags & VmaFlags.SHARED) ? [] : [...v.pages.runs(Number((v.end - v.start) / PAGE))]);
    const withPages = new Set(vmas.filter((v) => storedRuns(v).length > 0));
    const needWrite = (v: Vma): boolean => withPages.has(v) && !(v.prot & PROT_WRITE);
    const maps = vmas.map((v) => {
      const file = isFileVma(v);
      let flags = ((v.flags & VmaFlags.SHARED) ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED_NOREPLACE;
      if (v.flags & VmaFlags.GROWSDOWN) flags |= MAP_GROWSDOWN;
      if (!file) flags |= MAP_ANONYMOUS;
      const fd = file ? fileFds.get(`${fileMode(v)}\0${v.path}`)! : -1;
      const prot = v.prot | (needWrite(v) ? PROT_WRITE : 0);
      return { nr: NR.mmap, args: [v.start, v.end - v.start, prot, flags, fd, file ? v.pgoff * PAGE : 0n], at: vmaAt(v), detail: '' };
    });
    batch('map', maps).forEach((got, i) => {
      const v = vmas[i]!;
      if (BigInt.asUintN(64, got) !== v.start) throw new Step('map', vmaAt(v), new Error(`mmap placed it at ${hex(BigInt.asUintN(64, got))}`));
    });
    for (const v of vmas) {
      if (!withPages.has(v)) continue;
      const p = step('write pages', vmaAt(v), () => writer.writeVmaAsync(v));
      try { pages += await p; } catch (e) { throw e instanceof Step || e instanceof CrimgError ? e : new Step('write pages', vmaAt(v), e); }
    }
    batch('protect', vmas.filter(needWrite).map((v) => ({ nr: NR.mprotect, args: [v.start, v.end - v.start, v.prot], at: vmaAt(v) })));
    step('close userfaultfd', '', () => writer.end());
    userfaultfd = writer.copied > 0;
    // VM flags: advice that changes behaviour (dump, fork) must hold; advice that only tunes (THP, KSM, read-ahead)
    // is best effort (a kernel without KSM refuses MADV_MERGEABLE)
    const must: (BatchCall & { at: string; detail: string })[] = [];
    const tune: BatchCall[] = [];
    for (const v of vmas) {
      for (const [bit, advice, required, name] of MADVICE) {
        if (!(v.flags & bit)) continue;
        const call = { nr: NR.madvise, args: [v.start, v.end - v.start, advice], at: vmaAt(v), detail: name };
        if (required) must.push(call); else tune.push(call);
      }
    }
    batch('madvise', must);
    if (tune.length) step('madvise (tuning)', '', () => inj.batchRaw(tune, park + BATCH_CODE, Number(PARK_CODE - BATCH_CODE), data + RESULTS));
    batch('mlock', vmas.filter((v) => v.flags & VmaFlags.LOCKED).map((v) => ({ nr: NR.mlock, args: [v.start, v.end - v.start], at: vmaAt(v) })));
  } finally {
    writer.close();
  }
  batch('close mapped file', [...fileFds.values()].map((fd) => ({ nr: NR.close, args: [fd], at: `fd ${fd}` })));

  // ---- 4. vdso to its place, mm fields, exe
  for (const m of specials) {
    const target = mm.vmas.find((v) => v.path === m.path);
    const from = parked.get(m.path)!;
    if (target) {
      step('place vdso', `${m.path} ${hex(target.start)}`, () => {
        inj.call(NR.mremap, [from, m.end - m.start, m.end - m.start, MREMAP_MAYMOVE | MREMAP_FIXED, target.start]);
        // fault in the vdso pages the task had touched (the vvar pages have no struct page to read)
        if (m.path === '[vdso]') {
          for (const [first, n] of target.pages.runs(Number((m.end - m.start) / PAGE))) {
            processVmRead(pid, new Uint8Array(n * 4096), target.start + BigInt(first) * PAGE);
          }
        }
      });
    }
    else step('drop vdso', m.path, () => inj.call(NR.munmap, [from, m.end - m.start]));
  }
  step('mm fields', '', () => {
    // the kernel refuses a new exe while the old one is mapped: when the task runs the stub's own program (a
    // restored `sleep`), its exe is already the right one (-1: unchanged)
    let same = false;
    try {
      const a = statSync(`/proc/${pid}/exe`), b = statSync(task.exe);
      same = a.dev === b.dev && a.ino === b.ino;
    } catch { /* not the same */ }
    const exeFd = same ? -1 : Number(inj.call(NR.openat, [AT_FDCWD, str(task.exe), O_RDONLY | O_CLOEXEC, 0], task.exe));
    const auxv = [...mm.auxv, 0n, 0n];
    const b = new Uint8Array(104 + auxv.length * 8);
    const dv = new DataView(b.buffer);
    const f = [mm.startCode, mm.endCode, mm.startData, mm.endData, mm.startBrk, mm.brk, mm.startStack, mm.argStart, mm.argEnd, mm.envStart, mm.envEnd];
    f.forEach((x, i) => dv.setBigUint64(i * 8, x, true));
    const auxvAt = data + 1024n;
    dv.setBigUint64(88, auxvAt, true);
    dv.setUint32(96, auxv.length * 8, true);
    dv.setUint32(100, exeFd >>> 0, true);
    inj.write(data, b.subarray(0, 104));
    const a = new Uint8Array(auxv.length * 8);
    const adv = new DataView(a.buffer);
    auxv.forEach((x, i) => adv.setBigUint64(i * 8, x, true));
    inj.write(auxvAt, a);
    inj.call(NR.prctl, [PR_SET_MM, PR_SET_MM_MAP, data, 104, 0], 'PR_SET_MM_MAP');
    if (exeFd >= 0) inj.call(NR.close, [exeFd]);
  });

  // ---- 5. process attributes and files
  step('comm', task.comm, () => inj.call(NR.prctl, [PR_SET_NAME, str(task.comm.slice(0, 15)), 0, 0, 0]));
  step('personality', hex(BigInt(task.personality)), () => inj.call(NR.personality, [task.personality >>> 0]));
  if (task.rlimits.length) {
    const b = new Uint8Array(16 * task.rlimits.length);
    const dv = new DataView(b.buffer);
    task.rlimits.forEach((rl, i) => {
      dv.setBigUint64(16 * i, rl.cur, true);
      dv.setBigUint64(16 * i + 8, rl.max, true);
    });
    step('rlimit', '', () => inj.write(data, b));
    batch('rlimit', task.rlimits.map((_, i) => ({ nr: NR.prlimit64, args: [0, i, data + BigInt(16 * i), 0], at: `resource ${i}` })));
  }
  if (task.sigactions) {
    // the dispositions are shared by all threads (CLONE_SIGHAND): set once, before the threads exist; every other
    // signal to SIG_DFL (the stub may have inherited ignored ones: ignoring survives exec)
    const given = new Map(task.sigactions.map((a) => [a.sig, a]));
    const acts = Array.from({ length: 64 }, (_, i) => i + 1).filter((s) => s !== 9 && s !== 19)
      .map((sig) => given.get(sig) ?? { sig, handler: 0n, flags: 0n, restorer: 0n, mask: 0n });
    const b = new Uint8Array(32 * acts.length);
    const dv = new DataView(b.buffer);
    acts.forEach((a, i) => {
      dv.setBigUint64(32 * i, a.handler, true);
      dv.setBigUint64(32 * i + 8, a.flags, true);
      dv.setBigUint64(32 * i + 16, a.restorer, true);
      dv.setBigUint64(32 * i + 24, a.mask, true);
    });
    if (b.length > Number(RESULTS)) throw new Step('signal handlers', '', new Error(`${acts.length} dispositions do not fit the park`));
    step('signal handlers', '', () => inj.write(data, b));
    batch('signal handlers', acts.map((a, i) => ({ nr: NR.rt_sigaction, args: [a.sig, data + BigInt(32 * i), 0, 8], at: `signal ${a.sig}` })));
  }
  if (task.cwd) step('cwd', task.cwd, () => inj.call(NR.chdir, [str(task.cwd)], task.cwd));
  restoreFiles(task, pid, inj, str, data, step, batch, opts);

  // ---- 6. threads (with pidNs, each at its own tid), then credentials in every thread (they are per thread:
  // cloning first keeps clone3's set_tid privileged, and the new threads need no privilege the task lacks)
  const injs = new Map<Thread, Injector>([[leaderTh, inj]]);
  for (const th of others) {
    step('clone thread', `thread ${th.tid}`, () => {
      inj.cloned.length = 0;
      if (opts.pidNs) {
        inj.write(data, threadCloneArgs(CLONE_THREAD_FLAGS, data, th.tid));
        inj.call(NR.clone3, [data, CLONE_ARGS_SIZE], `set_tid ${th.tid}`);
      } else {
        inj.call(NR.clone, [CLONE_THREAD_FLAGS, 0, 0, 0, 0]);
      }
      const tid = inj.cloned[0];
      if (tid === undefined) throw new Error('clone reported no new thread');
      tids.push(tid);
      waitStop(tid);
      injs.set(th, new Injector(tid, park));
    });
  }
  for (const th of [...others, leaderTh]) restoreCreds(task, injs.get(th)!, data, step, batchFor(injs.get(th)!));

  // ---- 7. per-thread state; the leader last
  for (const th of [...others, leaderTh]) {
    const ti = injs.get(th)!;
    const tid = ti.tid;
    const at = `thread ${th.tid} (now ${tid})`;
    if (imageXstateBv(th) & (1n << 18n)) step('AMX permission', at, () => ti.call(NR.arch_prctl, [ARCH_REQ_XCOMP_PERM, 18]));
    if (th.rseq && th.rseq.ptr) {
      const rs = th.rseq;
      step('rseq', `${at} ${hex(rs.ptr)}`, () => ti.call(NR.rseq, [rs.ptr, rs.len, 0, rs.sig]));
    }
    if (th.futex) {
      // where the kernel clears the tid and wakes pthread_join when the thread exits; the robust futex list
      const f = th.futex;
      step('clear_child_tid', `${at} ${hex(f.clearChildTid)}`, () => ti.call(NR.set_tid_address, [f.clearChildTid]));
      if (f.robustHead) step('robust futex list', `${at} ${hex(f.robustHead)}`, () => ti.call(NR.set_robust_list, [f.robustHead, f.robustLen]));
    }
    const alt = th.sigaltstack;
    if (alt && !(alt.flags & SS_DISABLE)) {
      const b = new Uint8Array(24);
      const dv = new DataView(b.buffer);
      dv.setBigUint64(0, alt.sp, true);
      dv.setUint32(8, alt.flags & ~SS_ONSTACK, true); // on it at the freeze: it is set up all the same
      dv.setBigUint64(16, alt.size, true);
      step('sigaltstack', `${at} ${hex(alt.sp)}`, () => { ti.write(data, b); ti.call(NR.sigaltstack, [data, 0]); });
    }
    step('fpu', at, () => {
      if (stub.xstate) ptraceSetRegset(tid, NT.X86_XSTATE, buildXstate(stub.xstate, th));
      else ptraceSetRegset(tid, NT.PRFPREG, th.fpu.subarray(0, 512));
    });
    step('sigmask', at, () => ptraceSetSigmask(tid, th.sigmask));
    if (th === leaderTh && task.itimers?.length) {
      // armed last (a SIGALRM that came while crimg still ran calls in the task would be suppressed with the
      // injection's stray signals), with the time that remained at the freeze; one that had expired (its signal is
      // queued again below) starts a new interval
      const its = task.itimers.map((x) => ({ ...x, valueUs: x.valueUs || x.intervalUs }));
      const b = new Uint8Array(32 * its.length);
      const dv = new DataView(b.buffer);
      its.forEach((x, i) => {
        dv.setBigUint64(32 * i, x.intervalUs / 1_000_000n, true); dv.setBigUint64(32 * i + 8, x.intervalUs % 1_000_000n, true);
        dv.setBigUint64(32 * i + 16, x.valueUs / 1_000_000n, true); dv.setBigUint64(32 * i + 24, x.valueUs % 1_000_000n, true);
      });
      step('interval timers', '', () => ti.write(data, b));
      batchFor(ti)('interval timers', its.map((x, i) => ({ nr: NR.setitimer, args: [x.which, data + BigInt(32 * i), 0], at: `timer ${x.which}` })));
    }
    if (th === leaderTh && task.posixTimers?.length) restorePosixTimers(task, pid, ti, injs, data, step);
    if (th === leaderTh) restoreLocks(task, ti, data, step);
    if (th === leaderTh) {
      if (opts.failAt === 'unmap park') throw new Step('unmap park', hex(park), new Error('failing on purpose (failAt)'));
      step('unmap park', hex(park), () => ti.callAtExit(NR.munmap, [park, PARK_CODE + PARK_DATA]));
    }
    // Left stopped, the task passes through the signal code on SIGCONT, which restarts an interrupted system
    // call itself: it gets the image's registers unchanged, except a -ERESTART_RESTARTBLOCK (the kernel would run
    // restart_syscall with the restart block this thread has here: the stub's sleep, or nothing). Running on, it
    // gets them as the restart would leave them.
    step('registers', at, () => ptraceSetRegs(tid, opts.stopped && !restartBlock(th.regs) ? th.regs : resumeRegs(th.regs)));
  }

  // ---- pending signals, queued again (tgkill: their siginfo is not in the image, and shared ones were recorded on
  // the leader); a traced thread does not take them before it is let go, a blocked one keeps them pending. A signal
  // that a POSIX timer of the task sends (to the process, or to this thread) is taken for that timer's and queued
  // as it would have sent it (SI_TIMER, its id and sigev_value), the timer with the least time left if several do.
  for (const [th, ti] of injs) {
    for (let sig = 1; sig <= 64; sig++) {
      if (!(th.sigpending & (1n << BigInt(sig - 1))) || sig === SIG.SIGKILL || sig === SIG.SIGSTOP) continue;
      const pt = (task.posixTimers ?? [])
        .filter((x) => x.signo === sig && (x.notify === SIGEV.THREAD_ID ? x.notifyTid === th.tid : x.notify === SIGEV.SIGNAL && th === leaderTh))
        .sort((a, b) => (a.valueNs < b.valueNs ? -1 : a.valueNs > b.valueNs ? 1 : a.id - b.id))[0];
      step('pending signal', `thread ${th.tid} signal ${sig}`, () => (pt ? queueTimerSignal(pid, ti.tid, sig, pt) : tgkill(pid, ti.tid, sig)));
    }
  }

  // ---- 8. let it go
  step('detach', '', () => {
    if (opts.stopped) kill(pid, SIG.SIGSTOP);
    for (const t of [...tids.filter((x) => x !== pid), pid]) ptraceDetach(t, 0);
  });
  return { tids, pages, userfaultfd };
}

/** Bounding set, no_new_privs, groups, gids, uids (the uids last: they drop root's capabilities). New threads
 *  inherit them from the main thread, which sets them before cloning. */
function restoreCreds(task: Task, inj: Injector, data: bigint, step: StepFn, batch: BatchFn): void {
  const c = task.creds;
  const own = ownCaps();
  let last = 40;
  try { last = parseInt(readFileSync('/proc/sys/kernel/cap_last_cap', 'latin1'), 10); } catch { /* older kernel */ }
  const drops: (BatchCall & { at: string })[] = [];
  for (let cap = 0; cap <= last; cap++) {
    const bit = 1n << BigInt(cap);
    if ((own.bnd & bit) && !(c.capBnd & bit)) drops.push({ nr: NR.prctl, args: [PR_CAPBSET_DROP, cap, 0, 0, 0], at: `cap ${cap}` });
  }
  batch('capability bounding set', drops);
  if (c.noNewPrivs) step('no_new_privs', '', () => inj.call(NR.prctl, [PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0]));
  const me = process.getuid?.() ?? 0;
  if (me !== 0) return; // checkCreds made sure the task ran as crimg's user
  step('groups', c.groups.join(','), () => {
    const b = new Uint8Array(Math.max(4, c.groups.length * 4));
    const dv = new DataView(b.buffer);
    c.groups.forEach((g, i) => dv.setUint32(i * 4, g, true));
    inj.write(data, b);
    inj.call(NR.setgroups, [c.groups.length, data]);
  });
  step('gids', `${c.gid}/${c.egid}/${c.sgid}`, () => inj.call(NR.setresgid, [c.gid, c.egid, c.sgid]));
  if (c.fsgid !== c.egid) step('fsgid', String(c.fsgid), () => inj.raw(NR.setfsgid, c.fsgid));
  step('uids', `${c.uid}/${c.euid}/${c.suid}`, () => inj.call(NR.setresuid, [c.uid, c.euid, c.suid]));
  // changing uids made the task non-dumpable; the original, started as that user, was dumpable
  if (c.euid !== 0) step('dumpable', '', () => inj.call(NR.prctl, [PR_SET_DUMPABLE, 1, 0, 0, 0]));
  if (c.fsuid !== c.euid) step('fsuid', String(c.fsuid), () => inj.raw(NR.setfsuid, c.fsuid));
}

function restoreFiles(task: Task, pid: number, inj: Injector, str: (s: string, off?: bigint) => bigint, data: bigint, step: StepFn, batch: BatchFn, opts: RestoreOptions): void {
  const inherit = new Set<number>();
  // --inherit-stdio: crimg's own for fds 0-2 that cannot be reopened, and for a terminal (now maybe another's)
  const tty = (f: OpenFile): boolean => /^\/dev\/(pts\/\d+|tty\w*|console)$/.test(f.path);
  for (const f of task.files) if (opts.inheritStdio && f.fd <= 2 && f.kind === FdKind.OTHER && (!fdReopenable(f) || tty(f))) inherit.add(f.fd);
  const have = step('list stub fds', '', () => readFds(pid).map((f) => f.fd));
  const treePipes = opts.treePipes ?? new Map<bigint, [number, number]>();
  const keep = new Set([...treePipes.values()].flat()); // pipes between tasks of the tree: placed from these, then closed
  batch('close stub fd', have.filter((fd) => !inherit.has(fd) && !keep.has(fd)).map((fd) => ({ nr: NR.close, args: [fd], at: `fd ${fd}` })));
  const place = (f: OpenFile, at: string, got: number): void => {
    if (got === f.fd) return;
    step('dup file', at, () => {
      inj.call(NR.dup3, [got, f.fd, f.cloexec ? O_CLOEXEC : 0]);
      inj.call(NR.close, [got]);
    });
  };
  // eventfd, timerfd, signalfd (in fd order with the others) and epoll (last: its watched fds must be in place)
  const anon = (f: OpenFile): void => {
    const at = `fd ${f.fd} ${f.path}`;
    place(f, at, step('create file', at, () => createAnon(f, (nr, args, detail) => inj.call(nr, args, detail), (b) => { inj.write(data, b); return data; })));
  };
  const sorted = [...task.files].sort((a, b) => a.fd - b.fd);
  // a pipe with all its fds when its lowest comes; scratch ends above every fd of the task
  const above = sorted.reduce((m, f) => Math.max(m, f.fd), 2) + 1;
  const readPair = (): [number, number] => { // the two fds pipe2 / socketpair left in the scratch area
    const b = new Int32Array(2);
    processVmRead(pid, new Uint8Array(b.buffer), data);
    return [b[0]!, b[1]!];
  };
  // a pipe or socket pair: made with all its fds when the lowest of them comes
  const made = new Set<string>();
  const twoEnded = (f: OpenFile): void => {
    const key = f.pipe ? `pipe ${f.pipe.ino}` : `socket pair ${f.unixPair!.pair}`;
    if (made.has(key)) return;
    made.add(key);
    const ends = sorted.filter((x) => (x.pipe ? `pipe ${x.pipe.ino}` : x.unixPair ? `socket pair ${x.unixPair.pair}` : '') === key && !inherit.has(x.fd));
    const call: TaskCall = (nr, args, detail) => inj.call(nr, args, detail);
    const shared = f.pipe ? treePipes.get(f.pipe.ino) : undefined;
    if (shared) { step('place pipe', `fd ${ends.map((x) => x.fd).join(', ')} ${key}`, () => placeEnds(ends, shared[0], shared[1], call)); return; }
    step(`create ${key.split(' ')[0]}`, `fd ${ends.map((x) => x.fd).join(', ')} ${key}`,
      () => (f.pipe ? createPipe : createUnixPair)(ends, pid, call, data, readPair, above));
  };
  for (const f of sorted) {
    if (inherit.has(f.fd)) continue;
    if (f.pipe || f.unixPair) { twoEnded(f); continue; }
    if (f.tcpListen) {
      const at = `fd ${f.fd} listening socket`;
      place(f, at, step('create file', at, () => createListener(f, (nr, args, detail) => inj.call(nr, args, detail), (b) => { inj.write(data, b); return data; })));
      continue;
    }
    if (f.inotify) {
      const at = `fd ${f.fd} inotify`;
      place(f, at, step('create file', at, () => createInotify(f, (nr, args, detail) => inj.call(nr, args, detail), (s) => str(s))));
      continue;
    }
    if (f.anon) { if (f.anon.kind !== ANON_KIND.EPOLL) anon(f); continue; }
    const at = `fd ${f.fd} ${f.path}`;
    const dir = f.kind === FdKind.DIRECTORY;
    let flags = (f.flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC)) | O_NOCTTY;
    if (dir) flags = (flags & ~O_ACCMODE) | O_DIRECTORY;
    if (f.cloexec) flags |= O_CLOEXEC;
    const got = step('open file', at, () => Number(inj.call(NR.openat, [AT_FDCWD, str(f.path), flags, 0], f.path)));
    place(f, at, got);
    if (f.kind === FdKind.REGULAR || (dir && f.pos !== 0n)) {
      step('seek file', `${at} pos ${f.pos}`, () => inj.call(NR.lseek, [f.fd, f.pos, 0]));
    }
  }
  for (const f of sorted) if (f.anon?.kind === ANON_KIND.EPOLL && !inherit.has(f.fd)) anon(f);
  if (keep.size) batch('close tree pipes', [...keep].map((fd) => ({ nr: NR.close, args: [fd], at: `fd ${fd}` })));
}
