/**
 * `crimg run`: start a command traced by crimg and checkpoint it whenever it
 * receives the checkpoint signal.
 *
 * The checkpoint is taken at the signal-delivery-stop of the thread the signal
 * was delivered to: that thread is on its way back to user space, so its
 * registers are exactly what the program would resume with. Every other thread
 * is interrupted (PTRACE_INTERRUPT) and waited for, the image is written, and
 * every thread continues; the signaled thread with the signal suppressed, so
 * the program never sees it. Other signals are passed through unchanged, group
 * stops are kept with PTRACE_LISTEN, new threads are followed (PTRACE_O_TRACECLONE).
 *
 * Only the process itself (all its threads) is checkpointed, not processes it forks.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CrimgError, ioError } from '../errors.js';
import {
  PTRACE,
  PTRACE_EVENT,
  PTRACE_O,
  WAIT,
  WEXITSTATUS,
  WIFEXITED,
  WIFSIGNALED,
  WIFSTOPPED,
  WPTRACEEVENT,
  WSTOPSIG,
  WTERMSIG,
  isSysError,
  kill,
  ptraceGetEventMsg,
  ptraceRaw,
  spawn,
  waitpid,
} from '../os/libc.js';
import { ERRNO, SIG, STOP_SIGNALS } from '../os/consts.js';
import { listTasks, readStat } from '../os/proc.js';
import { prepareDump, writeFrozen } from './dump.js';
import { kernels } from '../kernels/index.js';

export interface RunCheckpoint {
  seq: number;
  path: string;
  pid: number;
  tid: number;
  bytes: number;
  freezeNs: bigint;
}

export interface RunOptions {
  /** Checkpoint signal (default SIGUSR2). */
  signal?: number;
  /** Directory for the images (NNNNNN.crimg). */
  outDir: string;
  /** Aborting it (SIGINT/SIGTERM to crimg) forwards the signal to the command, or detaches with leaveRunning. */
  abort?: AbortSignal;
  leaveRunning?: boolean;
  onCheckpoint?: (c: RunCheckpoint) => void;
  /** Called once the command runs traced (with its pid). */
  onStart?: (pid: number) => void;
}

function exitedAlready(pid: number): boolean {
  try {
    const st = readStat(pid).state;
    return st === 'Z' || st === 'X';
  } catch {
    return true;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Tracee {
  tid: number;
  groupStop: boolean;
}

/** How a thread stopped for a checkpoint goes on afterwards: with a signal to deliver, or kept in its group stop. */
interface Held {
  sig: number;
  group: boolean;
}

/** The command crimg runs traced: its threads, the checkpoints taken, and how the trace ends. */
class TracedRun {
  readonly tracees = new Map<number, Tracee>();
  /** Number of the last image in outDir. */
  seq = 0;
  private forwarded = false;
  detached = false;

  constructor(
    readonly pid: number,
    readonly argv: string[],
    readonly o: RunOptions,
    readonly ckpt: number,
  ) {}

  /** Seize every thread of the command (PTRACE_O_TRACECLONE follows the new ones), until a pass finds no new one. */
  seizeAll(): void {
    for (;;) {
      let fresh = 0;
      let tids: number[] = [];
      try {
        tids = listTasks(this.pid);
      } catch {
        return;
      }
      for (const tid of tids) {
        if (this.tracees.has(tid)) continue;
        const r = ptraceRaw(PTRACE.SEIZE, tid, 0, PTRACE_O.TRACECLONE);
        if (r.ret === -1) {
          if (r.errno === ERRNO.ESRCH || exitedAlready(this.pid)) continue; // it ended before we could trace it
          try {
            kill(this.pid, SIG.SIGKILL);
          } catch {
            /* gone */
          }
          throw new CrimgError('PTRACE', `cannot trace ${this.argv[0]} (pid ${this.pid}): PTRACE_SEIZE failed with errno ${r.errno}`);
        }
        this.tracees.set(tid, { tid, groupStop: false });
        fresh++;
      }
      if (!fresh) return;
    }
  }

  /** The number of the last NNNNNN.crimg in outDir (0 when there is none). */
  existingImages(): number {
    let n = 0;
    try {
      for (const f of fs.readdirSync(this.o.outDir)) {
        const m = /^(\d{6})\.crimg$/.exec(f);
        if (m) n = Math.max(n, Number(m[1]));
      }
    } catch {
      /* empty */
    }
    return n;
  }

  /** Interrupt every thread but `tid` and wait for each to stop; returns how each goes on afterwards. */
  private stopOthers(tid: number): Map<number, Held> {
    const stopped = new Map<number, Held>();
    const waiting = new Set<number>();
    for (const t of this.tracees.keys()) {
      if (t === tid) continue;
      if (ptraceRaw(PTRACE.INTERRUPT, t).ret === 0) waiting.add(t);
      else this.tracees.delete(t);
    }
    while (waiting.size) {
      const t = waiting.values().next().value as number;
      let st: number;
      try {
        st = waitpid(t, WAIT.__WALL).status;
      } catch {
        waiting.delete(t);
        this.tracees.delete(t);
        continue;
      }
      if (WIFEXITED(st) || WIFSIGNALED(st)) {
        waiting.delete(t);
        this.tracees.delete(t);
        continue;
      }
      if (!WIFSTOPPED(st)) continue;
      const ev = WPTRACEEVENT(st);
      const sig = WSTOPSIG(st);
      if (ev === PTRACE_EVENT.STOP) {
        stopped.set(t, { sig: 0, group: STOP_SIGNALS.has(sig) });
        waiting.delete(t);
        continue;
      }
      if (ev === 0) {
        // a signal on its way to this thread: it is stopped on the way back to user space too; deliver it afterwards
        // (a second checkpoint request is folded into this checkpoint)
        stopped.set(t, { sig: sig === this.ckpt ? 0 : sig, group: false });
        waiting.delete(t);
        continue;
      }
      if (ev === PTRACE_EVENT.CLONE) {
        const nt = Number(ptraceGetEventMsg(t));
        this.tracees.set(nt, { tid: nt, groupStop: false });
        waiting.add(nt); // it starts in a trap stop
        ptraceRaw(PTRACE.CONT, t, 0, 0);
        ptraceRaw(PTRACE.INTERRUPT, t);
        continue;
      }
      ptraceRaw(PTRACE.CONT, t, 0, 0);
    }
    return stopped;
  }

  /** Let the threads stopped for a checkpoint go: `tid` (which took the checkpoint signal) with it suppressed. */
  private resume(tid: number, stopped: Map<number, Held>): void {
    for (const [t, s] of stopped) {
      if (s.sig) ptraceRaw(PTRACE.CONT, t, 0, s.sig);
      else if (s.group) ptraceRaw(PTRACE.LISTEN, t, 0, 0);
      else ptraceRaw(PTRACE.CONT, t, 0, 0);
    }
    ptraceRaw(PTRACE.CONT, tid, 0, 0); // the checkpoint signal is suppressed
    stopped.clear();
  }

  /** A checkpoint at the signal-delivery-stop of `tid`: every other thread stopped, the image written, all let go. */
  async checkpoint(tid: number): Promise<void> {
    const { pid, o } = this;
    const stopped = this.stopOthers(tid);
    this.seq++;
    const file = path.join(o.outDir, `${String(this.seq).padStart(6, '0')}.crimg`);
    const t0 = process.hrtime.bigint();
    const threads = [tid, ...stopped.keys()].sort((a, b) => (a === pid ? -1 : b === pid ? 1 : a - b));
    const states = new Map<number, string>();
    for (const t of threads) {
      try {
        states.set(t, readStat(pid, t).state);
      } catch {
        /* */
      }
    }
    let released = false;
    try {
      // system calls only in threads resumed with signal 0 (a signal to deliver or a group stop to keep would be lost)
      const calls = (t: number): 'run' | undefined =>
        t === tid || (stopped.get(t) && !stopped.get(t)!.sig && !stopped.get(t)!.group) ? 'run' : undefined;
      const r = await writeFrozen(
        [{ pid, threads: threads.map((t) => ({ tid: t, stateBefore: states.get(t) ?? '', calls: calls(t) })) }],
        file,
        {
          force: true,
          signal: o.abort,
          release: () => {
            released = true;
            this.resume(tid, stopped);
            return process.hrtime.bigint() - t0;
          },
        },
      );
      o.onCheckpoint?.({ seq: this.seq, path: file, pid, tid, bytes: r.bytes, freezeNs: r.freezeNs });
    } catch (e) {
      this.seq--;
      if (!released) this.resume(tid, stopped);
      if (e instanceof CrimgError && e.code === 'INTERRUPTED') return;
      process.stderr.write(`crimg: checkpoint of ${pid} failed: ${e instanceof CrimgError ? e.line() : (e as Error).message}\n`);
    }
  }

  /** Stop tracing every thread (each let go as it was, a pending signal other than the checkpoint's delivered). */
  detachAll(): void {
    for (const t of this.tracees.keys()) {
      if (ptraceRaw(PTRACE.INTERRUPT, t).ret !== 0) continue;
      try {
        for (;;) {
          const st = waitpid(t, WAIT.__WALL).status;
          if (!WIFSTOPPED(st)) break;
          const ev = WPTRACEEVENT(st);
          if (ev === PTRACE_EVENT.STOP) {
            ptraceRaw(PTRACE.DETACH, t, 0, 0);
            break;
          }
          if (ev === 0) {
            ptraceRaw(PTRACE.DETACH, t, 0, WSTOPSIG(st) === this.ckpt ? 0 : WSTOPSIG(st));
            break;
          }
          ptraceRaw(PTRACE.CONT, t, 0, 0);
        }
      } catch {
        /* gone */
      }
    }
    this.tracees.clear();
    this.detached = true;
  }

  /** On SIGINT/SIGTERM/SIGHUP to crimg (once): detach with leaveRunning, else pass the signal to the command. */
  onAbort(): void {
    const { o } = this;
    if (!o.abort?.aborted || this.forwarded) return;
    this.forwarded = true;
    if (o.leaveRunning) {
      this.detachAll();
      return;
    }
    const why = o.abort.reason;
    const s = why === 'SIGINT' ? SIG.SIGINT : why === 'SIGHUP' ? SIG.SIGHUP : SIG.SIGTERM;
    try {
      kill(this.pid, s);
    } catch {
      /* gone */
    }
  }

  /** A ptrace stop of `tid`: new threads are followed, group stops kept, the checkpoint signal taken, others passed on. */
  async onStop(tid: number, st: number): Promise<void> {
    if (!this.tracees.has(tid)) this.tracees.set(tid, { tid, groupStop: false });
    const ev = WPTRACEEVENT(st);
    const sig = WSTOPSIG(st);
    if (ev === PTRACE_EVENT.CLONE) {
      try {
        const nt = Number(ptraceGetEventMsg(tid));
        if (!this.tracees.has(nt)) this.tracees.set(nt, { tid: nt, groupStop: false });
      } catch {
        /* */
      }
      ptraceRaw(PTRACE.CONT, tid, 0, 0);
    } else if (ev === PTRACE_EVENT.STOP) {
      if (STOP_SIGNALS.has(sig)) ptraceRaw(PTRACE.LISTEN, tid, 0, 0);
      else ptraceRaw(PTRACE.CONT, tid, 0, 0);
    } else if (ev === 0) {
      if (sig === this.ckpt) await this.checkpoint(tid);
      else ptraceRaw(PTRACE.CONT, tid, 0, sig);
    } else {
      ptraceRaw(PTRACE.CONT, tid, 0, 0);
    }
  }

  /** Wait for the command's threads until it exits (its exit code, 128 + signal when killed) or crimg detached (0). */
  async loop(): Promise<number> {
    for (;;) {
      this.onAbort();
      if (this.detached) return 0;
      let r;
      try {
        r = waitpid(-1, WAIT.__WALL | WAIT.WNOHANG);
      } catch (e) {
        if (isSysError(e, ERRNO.ECHILD)) return 0;
        throw e;
      }
      if (r.pid === 0) {
        await sleep(5);
        continue;
      }
      const tid = r.pid;
      const st = r.status;
      if (WIFEXITED(st) || WIFSIGNALED(st)) {
        this.tracees.delete(tid);
        if (tid === this.pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        continue;
      }
      if (WIFSTOPPED(st)) await this.onStop(tid, st);
    }
  }
}

/** Run argv traced; resolves with its exit code (128 + signal when killed by one). */
export async function runTraced(argv: string[], o: RunOptions): Promise<number> {
  if (argv.length === 0) throw new CrimgError('USAGE', 'run: no command given');
  try {
    fs.mkdirSync(o.outDir, { recursive: true });
  } catch (e) {
    throw ioError(`cannot create ${o.outDir}`, e);
  }
  prepareDump(kernels()); // before any checkpoint: the writer's memory, libc
  let pid: number;
  try {
    pid = spawn(argv);
  } catch (e) {
    throw new CrimgError('NO_PROCESS', `cannot start ${argv[0]}: ${(e as Error).message}`);
  }
  const run = new TracedRun(pid, argv, o, o.signal ?? SIG.SIGUSR2);
  run.seizeAll();
  o.onStart?.(pid);
  run.seq = run.existingImages();
  return run.loop();
}
