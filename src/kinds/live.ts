/**
 * The live facet of the kinds of saved state: how a kind is read from a running (frozen) task, and what makes it
 * impossible to save faithfully. `crimg check` and `crimg dump` go through the registry below, examining each fd
 * of a task once (src/live/inspect.ts): the same inspection gives check its reasons and the dump its state. The
 * restart side of each kind is in the same module (createPipe, createAnon ...), called by src/restore.
 *
 * Three scopes:
 *  - fd kinds look at one open file (FdInfo: its link, stat and fdinfo lines). Object kinds say what a file is (an
 *    inotify instance, a pipe ...): the first of them that claims an fd decides it; an fd none claims gets the
 *    generic reasons (a device, a deleted file ...: src/live/reasons.ts). Attribute kinds (file locks) add to any
 *    fd, after those. Kinds whose state spans fds (the two ends of a pipe, the sockets of a pair) look at the
 *    task's whole fd table first (`task`), and each fd then gets its part.
 *  - task kinds (signal dispositions, timers) and thread kinds (futex state, alternate signal stack) are read by
 *    system calls run in a stopped thread of the task (src/os/taskcall.ts InCall), after the freeze; what /proc
 *    shows of them without stopping the task is their `reasons`.
 *
 * Kind modules import only src/os, src/model, src/errors, src/schema and the types here (test/layers.test.ts).
 */
import type { NocrCode } from '../errors.js';
import type { OpenFile, Task, Thread } from '../model.js';
import type { FdInfo, Status } from '../os/proc.js';
import type { InCall } from '../os/taskcall.js';
import { anonFdLive } from './anon-fd/live.js';
import { flocksLive } from './flocks/live.js';
import { futexLive } from './futex/live.js';
import { inotifyLive } from './inotify/live.js';
import { itimersLive } from './itimers/live.js';
import { pipeLive } from './pipe/live.js';
import { posixTimersLive } from './posix-timers/live.js';
import { sigactsLive } from './sigacts/live.js';
import { sigaltstackLive } from './sigaltstack/live.js';
import { tcpListenLive } from './tcp-listen/live.js';
import { unixPairLive } from './unix-pair/live.js';

/** Why something cannot be checkpointed and restarted faithfully: a stable code and a plain sentence. */
export interface Reason { code: NocrCode; text: string }

/**
 * What an fd kind makes of one fd: null (not its kind), the state to save, or a reason it cannot be saved
 * faithfully (with the part of the state that is saved all the same, if any: the locks crimg can take again of a
 * file that also holds a lease).
 */
export type FdInspected<V> = null | { state: V; reason?: undefined } | { reason: Reason; state?: V };

/** What an fd kind may know of the task and of the other processes while it inspects an fd. */
export interface FdInspectCtx {
  readonly pid: number;
  /** The task's whole fd table, by fd. */
  readonly fds: readonly FdInfo[];
  /** Whether the state is wanted (a dump, the task frozen) or only the reasons (`crimg check`, on a running task):
   *  kinds then leave out of the state what costs more than finding the reasons (the bytes buffered in a pipe). */
  readonly wantState: boolean;
  /** Processes outside the tree that also hold `link` (pipe:[N], socket:[N]). */
  holdersOutside(link: string): number[];
  /** Other tasks of the tree that also hold `link`. */
  holdersInTree(link: string): number[];
  /** A value made once for all the tasks inspected together (a sock_diag dump, the mount table). */
  once<T>(key: string, make: () => T): T;
}

/** The live facet of an fd kind (state V; T: what its optional look at the whole fd table gives each fd). */
export interface LiveFdKind<V = unknown, T = unknown> {
  readonly scope: 'fd';
  /** Its directory under src/kinds. */
  readonly name: string;
  /** State any fd may carry beside what it is (file locks): inspected on every fd, after what the fd is. */
  readonly attribute?: boolean;
  /** A look at the task's whole fd table before its fds, for state that spans fds. */
  task?(ctx: FdInspectCtx): T;
  inspect(fd: FdInfo, ctx: FdInspectCtx, task: T): FdInspected<V>;
  /** Puts the state into the fd's entry of the model. */
  save(file: OpenFile, state: V): void;
}

/** A session of system calls in one stopped thread of the task, and its /proc status. */
export interface TaskCallCtx {
  readonly pid: number;
  readonly tid: number;
  readonly status: Status;
  readonly calls: InCall;
}

/** The live facet of a kind of per-process state. */
export interface LiveTaskKind<V = unknown> {
  readonly scope: 'task';
  readonly name: string;
  /** Reasons it cannot be saved that /proc shows without stopping the task (checked by `crimg check` and dump). */
  reasons?(pid: number): Reason[];
  /** Its state, asked of the kernel by calls in a stopped thread; throws when a call fails. */
  inspect(ctx: TaskCallCtx): V;
  /** Its state when no thread can run the calls, when /proc tells it all the same; else null (the default). */
  withoutCalls?(pid: number, status: Status): V | null;
  save(task: Task, state: V): void;
}

/** The live facet of a kind of per-thread state (read in each thread by calls in it). */
export interface LiveThreadKind<V = unknown> {
  readonly scope: 'thread';
  readonly name: string;
  /** Its state; throws when a call fails. */
  inspect(ctx: TaskCallCtx): V;
  save(thread: Thread, state: V): void;
}

export type LiveKind = LiveFdKind | LiveTaskKind | LiveThreadKind;

/** Every kind with a live facet. Order matters for fd kinds (the first object kind that claims an fd decides it)
 *  and sets the order of the reasons `crimg check` prints for a task. */
export const LIVE_KINDS: readonly LiveKind[] = [
  inotifyLive, anonFdLive, tcpListenLive, unixPairLive, pipeLive, flocksLive,
  sigactsLive, itimersLive, posixTimersLive, futexLive, sigaltstackLive,
];

export const LIVE_FD_KINDS = LIVE_KINDS.filter((k): k is LiveFdKind => k.scope === 'fd');
export const LIVE_TASK_KINDS = LIVE_KINDS.filter((k): k is LiveTaskKind => k.scope === 'task');
export const LIVE_THREAD_KINDS = LIVE_KINDS.filter((k): k is LiveThreadKind => k.scope === 'thread');
