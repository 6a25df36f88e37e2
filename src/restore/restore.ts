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
 *
 * The list is STEPS below: each step is a function over one context (RestoreCtx,
 * ctx.ts: the task, the image, the stub's injector, the park, the step runner ...):
 * steps 1-4 in memory.ts, the files in files.ts, the rest in task.ts, and the
 * restore steps of the kinds of saved state (in their modules, src/kinds/<dir>/live.ts)
 * run by kind-steps.ts, in one ordered table.
 */
import { CrimgError } from '../errors.js';
import { SIG } from '../os/consts.js';
import type { OpenFile, Task } from '../model.js';
import { makePipe } from '../kinds/pipe/live.js';
import type { Image } from '../reader.js';
import {
  NT,
  PTRACE,
  PTRACE_O,
  WAIT,
  isSysError,
  kill,
  ptrace,
  ptraceGetRegset,
  ptraceInterrupt,
  processVmRead,
  spawn,
  waitpid,
} from '../os/libc.js';
import { type RestoreReason, checkTask, checkXsave, formatReasons, hostSpecials, pickTask } from './check.js';
import { type RestoreCtx, type RestoreOptions, Step, type StepFn, StepRunner, type Stub } from './ctx.js';
import { Injector, waitStop } from './inject.js';
import { mapMemory, parkStub, parkVdso, placeVdso, setMmFields, unmapStub, unregisterStubRseq } from './memory.js';
import { restoreFiles } from './files.js';
import { cloneThreads, detach, queuePendingSignals, restoreAllCreds, restoreAttributes, restoreThreads } from './task.js';
import { inTask, reason } from './reasons.js';
import { xstateXcr0 } from './xsave.js';
import { type PidNsProcs, buildPidNs, forkWithPid, killPidNs, releaseReapers } from './pidns.js';

export type { RestoreOptions } from './ctx.js';
export { restartBlock, resumeRegs } from './task.js';

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
    ns.push(
      reason(
        'PID_NS',
        { of: 'pid-ns', task: task.pid },
        'restoring into a new PID namespace with the original pid needs root (CAP_SYS_ADMIN)',
      ),
    );
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
    const a = first * 4096,
      b = (first + n) * 4096;
    if (Buffer.compare(Buffer.from(mine.subarray(a, b)), Buffer.from(theirs.subarray(a, b))) !== 0) {
      return [
        reason(
          'VDSO_MISMATCH',
          { of: 'vdso', task: task.pid, vma: v.start, end: v.end, path: '[vdso]' },
          "the vdso of the image differs from this kernel's: restore on the kernel that made the image",
        ),
      ];
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
  } finally {
    killStub([s.pid], []);
  }
}

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
  try {
    kill(pid, SIG.SIGKILL);
  } catch {
    /* gone already */
  }
}

/** Waits until each thread we traced has exited (ignoring the stops it may report on the way). */
function reapTraced(tids: number[]): void {
  for (const tid of tids) {
    for (;;) {
      try {
        const { status } = waitpid(tid, WAIT.__WALL);
        if ((status & 0x7f) !== 0x7f) break; // exited or killed
      } catch {
        break;
      } // ECHILD: reaped already
    }
  }
}

/**
 * The steps that turn a seized stub into the task of the image, in order (parkStub, step 1, made the park and the
 * context they work on). Each names what it does in the step runner; the numbers are those of the header comment.
 */
const STEPS: readonly ((ctx: RestoreCtx) => void | Promise<void>)[] = [
  unregisterStubRseq,
  parkVdso, // 1. the stub's rseq and vdso out of the way
  unmapStub, // 2.
  mapMemory, // 3. VMAs and pages
  placeVdso,
  setMmFields, // 4.
  restoreAttributes,
  restoreFiles, // 5.
  cloneThreads,
  restoreAllCreds, // 6.
  restoreThreads, // 7. per-thread state, the main thread last (it removes the park)
  queuePendingSignals, // pending signals, queued again
  detach, // 8.
];

async function build(
  image: Image,
  task: Task,
  stub: Stub,
  tids: number[],
  step: StepFn,
  opts: RestoreOptions,
): Promise<{ tids: number[]; pages: number; userfaultfd: boolean }> {
  const ctx = parkStub(image, task, stub, tids, step, opts);
  for (const s of STEPS) await s(ctx);
  return { tids, pages: ctx.pages, userfaultfd: ctx.userfaultfd };
}

/** What one restore made so far (killed when it fails) and its step runner. */
interface Run {
  /** Every process made so far: the stub, or with pidNs the holder, init and task (and the tree's stubs). */
  procs: number[];
  /** The threads of the task (of the root, with tree). */
  tids: number[];
  /** With tree: the threads of each task below the root. */
  childTids: number[][];
  steps: StepRunner;
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
  const below = opts.tree ? treeBelow(image, task, opts) : [];
  const first = startStub(opts.stub ?? 'sleep');
  const run: Run = { procs: [first.pid], tids: [], childTids: [], steps: new StepRunner(opts.failAt) };
  try {
    return await restoreTree(image, task, below, first, run, opts, t0);
  } catch (e) {
    throw failure(e, run);
  }
}

/** --tree: the tasks below the root, parents before children (each made from its parent's stub); each must be
 *  restorable. */
function treeBelow(image: Image, task: Task, opts: RestoreOptions): Task[] {
  if (!opts.pidNs) throw new CrimgError('USAGE', 'restoring a process tree needs --pid-ns: the parents know their children by pid');
  const below: Task[] = [];
  const add = (p: Task): void => {
    for (const c of image.model.tasks.filter((t) => t.ppid === p.pid && t !== p)) {
      below.push(c);
      add(c);
    }
  };
  add(task);
  const reasons = below.flatMap((t) => prepareRestore(image, { ...opts, pid: t.pid }).reasons.map((r) => inTask(r, t.pid)));
  if (reasons.length) throw new CrimgError('NOT_RESTORABLE', `the image cannot be restored: ${formatReasons(reasons)}`);
  return below;
}

/** The task (and with tree every task below it) built from the seized stub `first`. */
async function restoreTree(
  image: Image,
  task: Task,
  below: Task[],
  first: Stub,
  run: Run,
  opts: RestoreOptions,
  t0: bigint,
): Promise<RestoreResult> {
  const step = run.steps.step;
  const xr = checkXsave(task, first.xstate ? xstateXcr0(first.xstate) : null);
  if (xr.length) throw new CrimgError('NOT_RESTORABLE', `the image cannot be restored: ${formatReasons(xr)}`);
  let stub = first;
  let pns: PidNsProcs | null = null;
  if (opts.pidNs) {
    pns = buildPidNs(first.pid, task.pid, step, run.procs);
    stub = { pid: pns.task, xstate: first.xstate };
  }
  const treePipes = below.length ? makeTreePipes([task, ...below], stub.pid, pns!.scratch, step) : new Map<bigint, [number, number]>();
  opts = { ...opts, treePipes };
  // the tree's stubs, all before any is turned into its task (a child is a copy of its parent's stub)
  const hostOf = new Map<number, number>([[task.pid, stub.pid]]);
  for (const c of below) {
    const parent = hostOf.get(c.ppid)!;
    hostOf.set(
      c.pid,
      step('fork child', `task ${c.pid} of ${c.ppid}`, () =>
        forkWithPid(new Injector(parent), pns!.scratch, c.pid, c.exitSignal || SIG.SIGCHLD, run.procs),
      ),
    );
  }
  run.tids.push(stub.pid);
  const r = await build(image, task, stub, run.tids, step, opts);
  const tree: NonNullable<RestoreResult['tree']> = [{ pid: task.pid, hostPid: stub.pid, tids: task.threads.map((t) => t.tid) }];
  for (const c of below) {
    const host = hostOf.get(c.pid)!;
    const ct = [host]; // this task's threads (build adds them); cleanup sees them through childTids
    run.childTids.push(ct);
    await build(image, c, { pid: host, xstate: first.xstate }, ct, step, { ...opts, pid: c.pid, treeChild: true });
    tree.push({ pid: c.pid, hostPid: host, tids: c.threads.map((t) => t.tid) });
  }
  let ns: RestoreResult['pidNs'];
  if (pns) {
    const p = pns;
    step('pid namespace: release holder and init', '', () => releaseReapers(p));
    ns = { pid: task.pid, tids: task.threads.map((t) => t.tid), holder: p.holder, init: p.init };
  }
  return {
    pid: stub.pid,
    tids: r.tids,
    pagesWritten: r.pages,
    userfaultfd: r.userfaultfd,
    seconds: Number(process.hrtime.bigint() - t0) / 1e9,
    pidNs: ns,
    ...(opts.tree ? { tree } : {}),
  };
}

/** Pipes between tasks of the tree: made in the root's stub (at fds above every fd of the tree, with the bytes that
 *  were in them), so that every child inherits both ends. inode -> [read, write]. */
function makeTreePipes(all: Task[], root: number, scratchPage: bigint, step: StepFn): Map<bigint, [number, number]> {
  const treePipes = new Map<bigint, [number, number]>();
  const byIno = new Map<bigint, { tasks: Set<Task>; ends: OpenFile[] }>();
  for (const t of all)
    for (const f of t.files) {
      if (!f.pipe) continue;
      const e = byIno.get(f.pipe.ino) ?? { tasks: new Set(), ends: [] };
      e.tasks.add(t);
      e.ends.push(f);
      byIno.set(f.pipe.ino, e);
    }
  const above = all.flatMap((t) => t.files.map((f) => f.fd)).reduce((m, fd) => Math.max(m, fd), 2) + 1;
  const at = scratchPage + 0xc00n;
  const readPair = (): [number, number] => {
    const b = new Int32Array(2);
    processVmRead(root, new Uint8Array(b.buffer), at);
    return [b[0]!, b[1]!];
  };
  for (const [ino, e] of byIno) {
    if (e.tasks.size < 2) continue;
    const data = e.ends.find((f) => f.pipe!.data?.length)?.pipe?.data;
    const readable = e.ends.some((f) => !f.pipe!.write);
    treePipes.set(
      ino,
      step('pipe between tasks', `pipe ${ino}`, () => {
        const inj = new Injector(root);
        return makePipe(
          root,
          (nr, args, detail) => inj.call(nr, args, detail),
          at,
          readPair,
          above,
          e.ends[0]!.pipe!.size,
          readable ? data : undefined,
        );
      }),
    );
  }
  return treePipes;
}

/** After a failure: every process made killed and reaped; the error to throw (RESTORE naming the step and where). */
function failure(e: unknown, run: Run): CrimgError {
  const { procs } = run;
  if (procs.length > 1) killPidNs(procs, [...run.tids, ...run.childTids.flat()], killHard, reapTraced);
  else killStub(procs, run.tids);
  const killed = procs.length > 1 ? `stubs ${procs.join(', ')}` : `stub ${procs[0]}`;
  const { name: stepName, where } = run.steps;
  if (e instanceof CrimgError) {
    if (e.code === 'NOT_RESTORABLE') return e;
    return new CrimgError('RESTORE', `step ${stepName}${where ? ` at ${where}` : ''}: ${e.line()}; ${killed} killed`, { cause: e });
  }
  if (e instanceof Step) return new CrimgError('RESTORE', `step ${e.message}; ${killed} killed`, { cause: e.cause0 });
  return new CrimgError(
    'RESTORE',
    `step ${stepName}${where ? ` at ${where}` : ''}: ${(e as Error)?.message ?? String(e)}; ${killed} killed`,
    { cause: e },
  );
}
