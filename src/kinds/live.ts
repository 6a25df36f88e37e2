/**
 * The live facet of the kinds of saved state: how a kind is read from a running (frozen) task, and what makes it
 * impossible to save faithfully. `crimg check` and `crimg dump` go through the registry below, examining each fd
 * of a task once (src/live/inspect.ts): the same inspection gives check its reasons and the dump its state. The
 * restart side of each kind is in the same module (its `restore` steps, over RestoreCalls below), run by
 * src/restore/kind-steps.ts.
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
import type { OpenFile, Task, Thread } from '../model.js';
import type { KindFormat } from './kind.js';
import type { FdInfo, Status } from '../os/proc.js';
import type { InCall } from '../os/taskcall.js';
import { anonFdLive } from './anon-fd/live.js';
import { flocksLive } from './flocks/live.js';
import { futexLive } from './futex/live.js';
import { inotifyLive } from './inotify/live.js';
import { itimersLive } from './itimers/live.js';
import { pipeLive } from './pipe/live.js';
import { posixTimersLive } from './posix-timers/live.js';
import { procAttrsLive } from './proc-attrs/live.js';
import { sigactsLive } from './sigacts/live.js';
import { sigaltstackLive } from './sigaltstack/live.js';
import { tcpListenLive } from './tcp-listen/live.js';
import { unixPairLive } from './unix-pair/live.js';

/**
 * The reasons a live task cannot be checkpointed and restarted faithfully (`crimg check`, and NOCR records of a
 * dump), each a stable code with what it means.
 */
export const NOCR_CODES = {
  STDIO:
    'fd 0, 1 or 2 is a terminal, or a pipe or socket another process holds (a shell, a supervisor, a log collector): no reason not to checkpoint, but `crimg restore` needs --inherit-stdio to give the task its own',
  TRACED: 'the task is traced by another process (debugger, strace)',
  SECCOMP: 'the task runs under seccomp (strict mode or filters), which crimg does not save',
  SOCKET: 'an open socket (other than a UNIX socket pair the task holds both of): connection state and queued data are not saved',
  PIPE: "a pipe also held by a process outside the tree (a task's own pipes and those between tasks of the tree are saved with their bytes)",
  FIFO: 'an open named pipe (FIFO): its buffered data and the other end are not saved',
  EVENTFD: 'an eventfd whose counter fdinfo does not show',
  SIGNALFD: 'a signalfd whose mask fdinfo does not show',
  TIMERFD: 'a timerfd crimg cannot set up again (TFD_TIMER_CANCEL_ON_SET)',
  POSIX_TIMER:
    "a POSIX timer (timer_create) on a clock crimg cannot restore it on (a thread's CPU time, another process's clock), or notifying in a way it does not know",
  INOTIFY: 'an inotify instance with events queued (no /proc file shows them), or watching a file crimg finds no path to',
  FANOTIFY: 'a fanotify instance: its marks and queued events are not saved',
  EPOLL: 'an epoll instance watching a file no longer at the fd it was added with, or another epoll',
  IO_URING: 'an io_uring instance: rings and in-flight requests are not saved',
  USERFAULTFD: 'a userfaultfd: registered ranges and pending faults are not saved',
  PIDFD: 'a pidfd: refers to a process that will not exist after a restart',
  PERF_EVENT: 'a perf event fd: not saved',
  BPF: 'a BPF map or program fd: not saved',
  ANON_INODE: 'another anonymous-inode file (kernel object without a path): not saved',
  DEVICE: 'an open device file (other than /dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom): device state is not saved',
  TTY: "an open terminal: terminal state and the session's controlling terminal are not saved",
  FILE_DELETED: 'an open or mapped file that was deleted: it cannot be reopened by path',
  FILE_UNREACHABLE: 'an open file whose path no longer leads to the same file (renamed, replaced or in another mount namespace)',
  FILE_LOCK:
    'a file lease or delegation, or a lock on a file crimg does not reopen: not saved (flock, POSIX and OFD locks on regular files and directories are)',
  MEMFD: 'a memfd (file or shared mapping): its contents are not saved',
  SYSV_SHM: 'a System V shared memory segment: the segment is not saved',
  POSIX_SHM: 'a POSIX shared memory object (/dev/shm) mapped shared: other users of it are not checkpointed',
  SHARED_ANON: 'shared anonymous memory also mapped by a task outside the tree',
  HUGETLB: 'hugetlb memory: not supported',
  DEVICE_MEMORY: 'a mapping of device memory (VM_IO/VM_PFNMAP): not saved',
  AIO: 'an AIO context: in-flight requests are not saved',
  NS_SHARED: 'a namespace (of a container dump) is shared with tasks outside the tree',
  CHILDREN: 'the process has children that are not part of the dump (use --tree)',
  ZOMBIE: 'a task of the tree is a zombie',
  VANISHED: 'a task of the tree exited while it was being examined',
  SIGACTIONS:
    'the signal handlers, timers and futex state of a task could not be read (no stopped thread could run the system calls that ask for them)',
} as const;
export type NocrCode = keyof typeof NOCR_CODES;

/** What a STDIO note adds to its reason: restore removes it again when the option is given (src/restore/check.ts). */
export const STDIO_DUMP_HINT = "; `crimg restore --inherit-stdio` gives the restored task crimg's own";

/** Why something cannot be checkpointed and restarted faithfully: a stable code and a plain sentence. */
export interface Reason {
  code: NocrCode;
  text: string;
}

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
  /** Its format facet: the state goes to the model under its key (kindValue/setValue). */
  readonly format: KindFormat<'fd', V>;
  /** Its restore steps (src/restore/kind-steps.ts runs them). */
  readonly restore?: readonly FdRestoreStep[];
}

/** A session of system calls in one stopped thread of the task, and its /proc status. */
export interface TaskCallCtx {
  readonly pid: number;
  readonly tid: number;
  readonly status: Status;
  readonly calls: InCall;
}

/** One call of a batch (RestoreCalls.batch): `at` names it in errors, `detail` in the system call's error. */
export interface RestoreBatchCall {
  nr: number;
  args: (number | bigint)[];
  at: string;
  detail?: string;
}

/** What a thread kind's restore step may do in one thread of the task being built. */
export interface ThreadCalls {
  /** The thread's tid in the new process. */
  readonly tid: number;
  /** The thread in step locations: its tid in the image and in the new process. */
  readonly at: string;
  /** One system call in this thread; a failure throws. */
  call(nr: number, args: (number | bigint)[], what?: string): bigint;
  /** Writes bytes into the task's scratch data (through this thread); their address. */
  scratch(bytes: Uint8Array): bigint;
}

/** What a kind's restore step may do in the task being built (src/restore gives it: kinds never import restore). */
export interface RestoreCalls {
  /** The task's pid as crimg sees it. */
  readonly pid: number;
  /** The task's main thread in the image. */
  readonly leader: Thread;
  /** One system call in the task's main thread (`what` names it in errors); a failure throws. */
  call(nr: number, args: (number | bigint)[], what?: string): bigint;
  /** Runs fn as a named step of the restore: a failure names the step and `at`, and the restore is undone. */
  step<T>(name: string, at: string, fn: () => T): T;
  /** The error of step `name` failed at `at` (for a failure found outside any step). */
  fail(name: string, at: string, cause: Error): Error;
  /** Calls that do not depend on one another, in one stop of the main thread, as step `name`; the first that
   *  failed fails the step at its `at`. Their results. */
  batch(name: string, calls: RestoreBatchCall[]): bigint[];
  /** Writes bytes into the task's scratch data; their address (scratchAt). */
  scratch(bytes: Uint8Array): bigint;
  /** The address of the task's scratch data. */
  readonly scratchAt: bigint;
  /** How many bytes the scratch data holds. */
  readonly scratchSize: number;
  /** `s` as a C string in the task's scratch data; its address. */
  str(s: string): bigint;
  /** The two fds pipe2 / socketpair left at the start of the scratch data. */
  readPair(): [number, number];
  /** The calls of thread `th` of the image, once it exists in the new process; else undefined. */
  thread(th: Thread): ThreadCalls | undefined;
  /** The file made at fd `got` moves to its own fd number f.fd (with its close-on-exec flag), as step 'dup file'. */
  placeFd(f: OpenFile, at: string, got: number): void;
  /** The task's fds (but those crimg leaves as the stub has them) that `same` picks, lowest first, the first time
   *  `key` is asked (a pipe or socket pair made with all its fds when its lowest comes); null after. */
  fdsOnce(key: string, same: (f: OpenFile) => boolean): OpenFile[] | null;
  /** The first fd above every fd of the task (scratch ends of pipes and socket pairs go there). */
  readonly fdsAbove: number;
  /** A pipe between tasks of the tree: the fds [read, write] every stub inherited; else undefined. */
  treePipe(ino: bigint): [number, number] | undefined;
}

/** A restore step of a task kind: in the main thread before the threads are cloned ('task'), or after everything
 *  else, credentials included ('last'). */
export interface TaskRestoreStep {
  readonly when: 'task' | 'last';
  run(rc: RestoreCalls, task: Task): void;
}

/** A restore step of a thread kind: in each thread (the others first, the main thread last), before its FPU state
 *  and registers. */
export interface ThreadRestoreStep {
  run(tc: ThreadCalls, th: Thread, rc: RestoreCalls): void;
}

/** A restore step of an fd kind, for each file that `has` it: in fd order with the reopened files ('fd'; the first
 *  kind that has a file makes it; `late` ones after every other fd is in place), or at the very end ('last'). */
export interface FdRestoreStep {
  readonly when: 'fd' | 'last';
  readonly late?: boolean;
  has(f: OpenFile): boolean;
  run(rc: RestoreCalls, f: OpenFile): void;
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
  /** Its format facet: the state goes to the model under its key (kindValue/setValue). */
  readonly format: KindFormat<'task', V>;
  /** Its restore steps (src/restore/kind-steps.ts runs them). */
  readonly restore?: readonly TaskRestoreStep[];
}

/** The live facet of a kind of per-thread state (read in each thread by calls in it). */
export interface LiveThreadKind<V = unknown> {
  readonly scope: 'thread';
  readonly name: string;
  /** Its state; throws when a call fails. */
  inspect(ctx: TaskCallCtx): V;
  /** Its format facet: the state goes to the model under its key (kindValue/setValue). */
  readonly format: KindFormat<'thread', V>;
  /** Its restore steps, run in each thread (src/restore/kind-steps.ts runs them). */
  readonly restore?: readonly ThreadRestoreStep[];
}

export type LiveKind = LiveFdKind | LiveTaskKind | LiveThreadKind;

/** Every kind with a live facet. Order matters for fd kinds (the first object kind that claims an fd decides it)
 *  and sets the order of the reasons `crimg check` prints for a task. */
export const LIVE_KINDS: readonly LiveKind[] = [
  inotifyLive,
  anonFdLive,
  tcpListenLive,
  unixPairLive,
  pipeLive,
  flocksLive,
  sigactsLive,
  itimersLive,
  posixTimersLive,
  procAttrsLive,
  futexLive,
  sigaltstackLive,
];

/** The kinds in the order their restore steps run, in each `when` of src/restore/kind-steps.ts (every kind of
 *  LIVE_KINDS once). */
export const RESTORE_KINDS: readonly LiveKind[] = [
  sigactsLive,
  pipeLive,
  unixPairLive,
  tcpListenLive,
  inotifyLive,
  anonFdLive,
  futexLive,
  sigaltstackLive,
  itimersLive,
  posixTimersLive,
  flocksLive,
  procAttrsLive,
];

export const LIVE_FD_KINDS = LIVE_KINDS.filter((k): k is LiveFdKind => k.scope === 'fd');
export const LIVE_TASK_KINDS = LIVE_KINDS.filter((k): k is LiveTaskKind => k.scope === 'task');
export const LIVE_THREAD_KINDS = LIVE_KINDS.filter((k): k is LiveThreadKind => k.scope === 'thread');
