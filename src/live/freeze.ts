/**
 * Freezing live processes with PTRACE_SEIZE + PTRACE_INTERRUPT, and letting
 * them go again exactly as they were.
 *
 * Freezing a process: every thread listed in /proc/PID/task is seized and
 * interrupted, then the listing is repeated until it shows no thread we do not
 * hold (a stopped thread cannot create new ones, so one clean pass after all
 * known threads stopped is final). Threads that exit meanwhile are dropped.
 *
 * A thread that reports a signal-delivery-stop before its interrupt stop gets
 * the signal re-injected (PTRACE_CONT with it: the program handles it exactly as
 * it would have) and is waited for again: the interrupt stays pending and
 * comes right after (the same approach as CRIU's compel).
 *
 * Resuming: PTRACE_DETACH from the interrupt stop. A system call interrupted by
 * the stop has -ERESTART* in rax; the kernel restarts it on the way back to user
 * space because no signal handler ran, so no EINTR leaks to the program.
 *
 * The freezer never throws from release(): every thread is detached, resumed,
 * stopped (SIGSTOP) or killed whatever happened before.
 */
import { CrimgError } from '../errors.js';
import {
  PTRACE,
  PTRACE_EVENT,
  WAIT,
  WIFEXITED,
  WIFSIGNALED,
  WIFSTOPPED,
  WPTRACEEVENT,
  WSTOPSIG,
  errnoName,
  kill,
  ptraceRaw,
  waitpid,
} from '../os/libc.js';
import { ERRNO, PF_KTHREAD, SIG, STOP_SIGNALS } from '../os/consts.js';
import { exists, listChildren, listTasks, readStat, readStatus, tracerPid } from '../os/proc.js';

export interface FrozenThread {
  tid: number;
  /** Stopped in a ptrace stop (interrupt or group stop) and ready for inspection. */
  stopped: boolean;
  /** The process was in (or entered) a group stop (SIGSTOP and friends). */
  groupStop: boolean;
  /** Scheduler state letter before we seized it. */
  stateBefore: string;
}

export interface FrozenProcess {
  pid: number;
  threads: Map<number, FrozenThread>;
  /** Signals passed back to the program while freezing (handled as they would have been). */
  reinjected: number[];
}

export type ReleaseMode = 'resume' | 'stop' | 'kill';

/** How long a seized thread may take to reach its interrupt stop. */
const STOP_TIMEOUT_MS = 30_000;
const SLEEPER = new Int32Array(new SharedArrayBuffer(4));

function cmdline(pid: number): string {
  try {
    return readStat(pid).comm;
  } catch {
    return '?';
  }
}

/** Check that pid names a live user process we may trace; throws a CrimgError with a clear sentence otherwise. */
export function checkTarget(pid: number): void {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new CrimgError('USAGE', `'${pid}' is not a process id`);
  let st;
  try {
    st = readStat(pid);
  } catch {
    throw new CrimgError('NO_PROCESS', `no process ${pid}`);
  }
  if (st.flags & PF_KTHREAD) throw new CrimgError('NO_PROCESS', `process ${pid} (${st.comm}) is a kernel thread, not a user process`);
  if (st.state === 'Z')
    throw new CrimgError('NO_PROCESS', `process ${pid} (${st.comm}) is a zombie: it has exited and waits for its parent to reap it`);
  if (st.state === 'X') throw new CrimgError('NO_PROCESS', `process ${pid} is dead`);
  if (pid === process.pid) throw new CrimgError('USAGE', 'crimg cannot checkpoint itself');
  try {
    const tp = tracerPid(readStatus(pid));
    if (tp !== 0) {
      throw new CrimgError(
        'TRACED',
        `process ${pid} (${st.comm}) is already traced by process ${tp} (${cmdline(tp)}); detach that tracer (debugger, strace) first`,
      );
    }
  } catch (e) {
    if (e instanceof CrimgError) throw e;
    throw new CrimgError('NO_PROCESS', `no process ${pid}`);
  }
}

function seizeError(pid: number, tid: number, errno: number): CrimgError {
  if (errno === ERRNO.EPERM) {
    let tp = 0;
    try {
      tp = tracerPid(readStatus(pid, tid));
    } catch {
      /* gone */
    }
    if (tp !== 0 && tp !== process.pid) {
      return new CrimgError('TRACED', `process ${pid} is already traced by process ${tp} (${cmdline(tp)}); detach that tracer first`);
    }
    const root = typeof process.getuid === 'function' && process.getuid() === 0;
    return new CrimgError(
      'PERMISSION',
      root
        ? `not allowed to trace process ${pid}: it may be protected (a Yama ptrace_scope of 3, a security module, or it runs in another user namespace)`
        : `not allowed to trace process ${pid}: run crimg as root or with CAP_SYS_PTRACE, or as the same user with kernel.yama.ptrace_scope 0 (or 1 for descendants)`,
    );
  }
  if (errno === ERRNO.ESRCH) return new CrimgError('NO_PROCESS', `process ${pid} exited before crimg could attach`);
  return new CrimgError('PTRACE', `PTRACE_SEIZE of thread ${tid} of process ${pid} failed: ${errnoName(errno)}`);
}

export class Freezer {
  readonly procs: FrozenProcess[] = [];
  private startNs = 0n;
  private endNs = 0n;
  private released = false;

  /** Nanoseconds between the first PTRACE_SEIZE and the end of release(). */
  get freezeNs(): bigint {
    if (this.startNs === 0n) return 0n;
    return (this.endNs || process.hrtime.bigint()) - this.startNs;
  }

  /** Stop the freeze clock now (before a release that comes later, e.g. a kill after the image is in place). */
  markEnd(): void {
    this.endNs = process.hrtime.bigint();
  }

  get frozen(): boolean {
    return this.procs.length > 0 && !this.released;
  }

  /** Freeze pid (and with tree, every descendant, parents first). */
  freeze(pid: number, tree = false): void {
    if (this.startNs === 0n) this.startNs = process.hrtime.bigint();
    this.freezeOne(pid);
    if (!tree) return;
    const queue = [pid];
    const seen = new Set([pid]);
    while (queue.length) {
      const p = queue.shift()!;
      for (const c of listChildren(p)) {
        if (seen.has(c)) continue;
        seen.add(c);
        let st;
        try {
          st = readStat(c);
        } catch {
          continue;
        }
        if (st.state === 'Z' || st.state === 'X') continue; // exited children are reported by check, not dumped
        this.freezeOne(c);
        queue.push(c);
      }
    }
  }

  /** Seize and stop every thread of one process. */
  private freezeOne(pid: number): void {
    const fp: FrozenProcess = { pid, threads: new Map(), reinjected: [] };
    this.procs.push(fp);
    const tried = new Set<number>();
    for (;;) {
      let tids: number[];
      try {
        tids = listTasks(pid);
      } catch {
        throw new CrimgError('NO_PROCESS', `process ${pid} exited while crimg was freezing it`);
      }
      const fresh = tids.filter((t) => !tried.has(t));
      if (fresh.length === 0) break;
      let err: CrimgError | null = null;
      const seized: number[] = [];
      for (const tid of fresh) {
        tried.add(tid);
        let stateBefore = '';
        try {
          stateBefore = readStat(pid, tid).state;
        } catch {
          /* exiting */
        }
        const r = ptraceRaw(PTRACE.SEIZE, tid, 0, 0);
        if (r.ret === -1) {
          if (r.errno === ERRNO.ESRCH) continue; // thread exited meanwhile
          if (r.errno === ERRNO.EPERM && (stateBefore === 'Z' || stateBefore === 'X')) continue; // a dead thread (e.g. a leader that called pthread_exit)
          err ??= seizeError(pid, tid, r.errno);
          break;
        }
        fp.threads.set(tid, { tid, stopped: false, groupStop: false, stateBefore });
        seized.push(tid);
        ptraceRaw(PTRACE.INTERRUPT, tid); // ESRCH: it is exiting; the wait below sees that
      }
      this.waitStops(fp, seized);
      if (err) throw err;
      if (fp.threads.size === 0 && !exists(pid)) {
        throw new CrimgError('NO_PROCESS', `process ${pid} exited while crimg was freezing it`);
      }
    }
    if (!fp.threads.has(pid) && fp.threads.size === 0) {
      throw new CrimgError('NO_PROCESS', `process ${pid} exited while crimg was freezing it`);
    }
  }

  /**
   * Wait until every thread in tids is in its interrupt (or group) stop; drop the ones that exit.
   * Polls each thread (never blocks on one): a killed leader's exit is reported only after its
   * other threads were reaped, and library callers may have children that are none of our business.
   */
  private waitStops(fp: FrozenProcess, tids: number[]): void {
    const pending = new Set(tids.filter((t) => fp.threads.has(t)));
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    let polls = 0;
    while (pending.size) {
      let progressed = false;
      for (const tid of [...pending]) {
        const th = fp.threads.get(tid)!;
        let r;
        try {
          r = waitpid(tid, WAIT.__WALL | WAIT.WNOHANG);
        } catch {
          fp.threads.delete(tid);
          pending.delete(tid);
          progressed = true; // ECHILD: gone
          continue;
        }
        if (r.pid !== tid) continue;
        progressed = true;
        const status = r.status;
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
          fp.threads.delete(tid);
          pending.delete(tid);
          continue;
        }
        if (!WIFSTOPPED(status)) continue;
        const sig = WSTOPSIG(status);
        const ev = WPTRACEEVENT(status);
        if (ev === PTRACE_EVENT.STOP) {
          th.stopped = true;
          th.groupStop = STOP_SIGNALS.has(sig);
          pending.delete(tid);
        } else if (ev === 0) {
          // signal-delivery-stop: give the signal back to the program; the interrupt stop follows
          fp.reinjected.push(sig);
          if (ptraceRaw(PTRACE.CONT, tid, 0, sig).ret === -1) {
            fp.threads.delete(tid);
            pending.delete(tid);
          }
        } else {
          ptraceRaw(PTRACE.CONT, tid, 0, 0); // no PTRACE_O_* options are set; continue defensively
        }
      }
      if (progressed) continue;
      // a dead leader whose other threads are gone is not going to stop
      for (const tid of pending) {
        let st = 'X';
        try {
          st = readStat(fp.pid, tid).state;
        } catch {
          /* gone */
        }
        if ((st === 'Z' || st === 'X') && [...pending].every((t) => t === tid || !fp.threads.has(t))) {
          fp.threads.delete(tid);
          pending.delete(tid);
        }
      }
      if (!pending.size) break;
      if (Date.now() > deadline) {
        throw new CrimgError(
          'PTRACE',
          `thread${pending.size > 1 ? 's' : ''} ${[...pending].join(', ')} of process ${fp.pid} did not stop within ${STOP_TIMEOUT_MS / 1000} s (uninterruptible sleep?)`,
        );
      }
      // a thread usually reaches its stop within microseconds: poll finely at first
      Atomics.wait(SLEEPER, 0, 0, polls++ < 100 ? 0.02 : 1);
    }
  }

  /** All frozen threads of pid that are stopped, leader first. */
  threadsOf(pid: number): number[] {
    const fp = this.procs.find((p) => p.pid === pid);
    if (!fp) return [];
    return [...fp.threads.values()]
      .filter((t) => t.stopped)
      .map((t) => t.tid)
      .sort((a, b) => (a === pid ? -1 : b === pid ? 1 : a - b));
  }

  /**
   * Let every frozen thread go: resume it where it was, leave the processes stopped
   * (SIGSTOP, a normal group stop) or kill them. Never throws; returns problems as text.
   */
  release(mode: ReleaseMode = 'resume'): string[] {
    if (this.released) return [];
    this.released = true;
    const problems: string[] = [];
    for (const fp of [...this.procs].reverse()) {
      if (mode === 'stop') {
        try {
          kill(fp.pid, SIG.SIGSTOP);
        } catch {
          /* gone */
        }
      }
      if (mode === 'kill') {
        try {
          kill(fp.pid, SIG.SIGKILL);
        } catch {
          /* gone */
        }
      }
      // leader last: a traced leader's exit is reported only after its other threads were reaped
      const order = [...fp.threads.values()].sort((a, b) => (a.tid === fp.pid ? 1 : b.tid === fp.pid ? -1 : a.tid - b.tid));
      for (const th of order) {
        if (mode === 'kill') {
          // collect the exit so no traced zombie lingers on our account
          for (let i = 0; i < 100; i++) {
            const st = waitBounded(th.tid, 2000);
            if (st === null || WIFEXITED(st) || WIFSIGNALED(st)) break;
            ptraceRaw(PTRACE.CONT, th.tid, 0, 0);
          }
          continue;
        }
        let r = ptraceRaw(PTRACE.DETACH, th.tid, 0, 0);
        if (r.ret === -1 && r.errno === ERRNO.ESRCH) {
          if (ptraceRaw(PTRACE.INTERRUPT, th.tid).ret === 0) {
            // seized but not in a ptrace stop (never stopped, or woken by SIGKILL): stop it, then detach
            const st = waitBounded(th.tid, 2000);
            if (st !== null && WIFSTOPPED(st)) r = ptraceRaw(PTRACE.DETACH, th.tid, 0, WPTRACEEVENT(st) === 0 ? WSTOPSIG(st) : 0);
          } else {
            waitBounded(th.tid, 200); // dead: collect its exit so it does not linger as our traced zombie
          }
        }
        if (r.ret === -1 && r.errno !== ERRNO.ESRCH) problems.push(`detaching thread ${th.tid}: ${errnoName(r.errno)}`);
      }
    }
    if (this.endNs === 0n) this.endNs = process.hrtime.bigint();
    return problems;
  }
}

/** waitpid(tid, __WALL) for at most ms milliseconds; null when nothing came (or the thread is not ours). */
function waitBounded(tid: number, ms: number): number | null {
  const until = Date.now() + ms;
  for (;;) {
    let r;
    try {
      r = waitpid(tid, WAIT.__WALL | WAIT.WNOHANG);
    } catch {
      return null;
    }
    if (r.pid === tid) return r.status;
    if (Date.now() > until) return null;
    Atomics.wait(SLEEPER, 0, 0, 1);
  }
}

/** Process ids of pid and (with tree) its descendants, parents first, without freezing anything. */
export function listTree(pid: number, tree: boolean): number[] {
  const out = [pid];
  if (!tree) return out;
  for (let i = 0; i < out.length; i++) {
    for (const c of listChildren(out[i]!)) if (!out.includes(c)) out.push(c);
  }
  return out;
}
