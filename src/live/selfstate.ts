/**
 * State the kernel tells only the task itself, read by system calls run inside its frozen threads
 * (src/os/taskcall.ts InCall): the task kinds (signal dispositions, interval timers, the times of POSIX timers)
 * in the first thread that can run them, the thread kinds (clear_child_tid and the robust futex list, the
 * alternate signal stack) in every thread. Each kind's own module (src/kinds/<dir>/live.ts) says what it asks.
 * Restored by src/restore/kind-steps.ts.
 */
import { setValue } from '../kinds/kind.js';
import type { Task, Thread } from '../model.js';
import { type MapEntry, type Status, readStatus } from '../os/proc.js';
import { InCall, findSyscallInsn } from '../os/taskcall.js';
import { LIVE_TASK_KINDS, LIVE_THREAD_KINDS, type LiveTaskKind, type LiveThreadKind, type TaskCallCtx } from '../kinds/live.js';

/** How crimg may run calls in a thread: 'run' (interrupt or signal-delivery stop, resumed with signal 0 afterwards),
 *  'restop' (a group stop: it gets a SIGSTOP back afterwards). */
export type CallMode = 'run' | 'restop';

export interface SelfState {
  /** The task kinds' states. */
  task: { kind: LiveTaskKind; state: unknown }[];
  /** Whether the task kinds were read by calls (else only those /proc tells without them: see `reason`). */
  complete: boolean;
  /** The thread kinds' states, by tid (threads where they could be read). */
  threads: Map<number, { kind: LiveThreadKind; state: unknown }[]>;
  /** Why something could not be read (for a NOCR reason), or ''. */
  reason: string;
}

/** Every task kind read in one thread (all or none: the first failure throws). */
function readTaskKinds(ctx: TaskCallCtx): SelfState['task'] {
  return LIVE_TASK_KINDS.map((kind) => ({ kind, state: kind.inspect(ctx) }));
}

/** The task kinds /proc tells without calls. */
function taskKindsWithoutCalls(pid: number, status: Status): SelfState['task'] {
  const out: SelfState['task'] = [];
  for (const kind of LIVE_TASK_KINDS) {
    const state = kind.withoutCalls?.(pid, status) ?? null;
    if (state !== null) out.push({ kind, state });
  }
  return out;
}

/** Reads the task kinds of process pid and the thread kinds of each thread in `threads` (tid -> how). */
export function collectSelfState(pid: number, threads: Map<number, CallMode>, maps: MapEntry[]): SelfState {
  const out: SelfState = { task: [], complete: false, threads: new Map(), reason: '' };
  const status = readStatus(pid);
  const insn = threads.size ? findSyscallInsn(pid, maps) : null;
  if (insn === null) {
    out.reason = threads.size ? 'no syscall instruction found in an executable mapping' : 'no stopped thread to run system calls in';
    out.task = taskKindsWithoutCalls(pid, status);
    return out;
  }
  const problems: string[] = [];
  for (const [tid, mode] of threads) {
    let calls: InCall;
    try {
      calls = new InCall(pid, tid, insn, maps, mode === 'restop');
    } catch (e) {
      problems.push((e as Error).message);
      continue;
    }
    try {
      const ctx: TaskCallCtx = { pid, tid, status, calls };
      if (!out.complete) {
        out.task = readTaskKinds(ctx);
        out.complete = true;
      }
      out.threads.set(
        tid,
        LIVE_THREAD_KINDS.map((kind) => ({ kind, state: kind.inspect(ctx) })),
      );
    } catch (e) {
      problems.push((e as Error).message);
    } finally {
      calls.close();
    }
  }
  if (!out.complete) out.task = taskKindsWithoutCalls(pid, status);
  out.reason = problems.join('; ');
  return out;
}

/** Put what collectSelfState read into the task and its threads. */
export function applySelfState(task: Task, threads: Thread[], ss: SelfState): void {
  for (const s of ss.task) setValue(s.kind.format, task, s.state);
  for (const th of threads) for (const s of ss.threads.get(th.tid) ?? []) setValue(s.kind.format, th, s.state);
}
