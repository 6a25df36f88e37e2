/**
 * What every step of a restore works on: one context object (RestoreCtx) per task being built, the step runner
 * (each step named, with where it is; any failure becomes a Step error naming both) and the helpers the steps share
 * (batched system calls, strings and scratch bytes in the park, placing an fd at its number).
 */
import { CrimgError } from '../errors.js';
import { FdKind, type OpenFile, type Task, type Thread } from '../model.js';
import type { Image } from '../reader.js';
import { processVmRead } from '../os/libc.js';
import { O_CLOEXEC } from '../os/consts.js';
import { type CheckOptions, fdReopenable } from './check.js';
import { type BatchCall, InjectError, type Injector, NR } from './inject.js';
import type { PageWriterOptions } from './pages.js';

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

/** A failed step: its name, where (address, fd, thread ...) and the error. */
export class Step extends Error {
  constructor(
    readonly step: string,
    readonly where: string,
    readonly cause0: unknown,
  ) {
    super(`${step}${where ? ` at ${where}` : ''}: ${(cause0 as Error)?.message ?? String(cause0)}`);
  }
}

export type StepFn = <T>(name: string, at: string, fn: () => T) => T;
export type BatchFn = (name: string, calls: (BatchCall & { at: string; detail?: string })[]) => bigint[];

/** Runs the steps of a restore and remembers the last one begun (what a failure outside any step is reported at). */
export class StepRunner {
  name = 'start';
  where = '';
  constructor(private readonly failAt?: string) {}

  readonly step: StepFn = <T>(name: string, at: string, fn: () => T): T => {
    this.name = name;
    this.where = at;
    if (this.failAt === name) throw new Step(name, at, new Error('failing on purpose (failAt)'));
    try {
      return fn();
    } catch (e) {
      if (e instanceof Step || e instanceof CrimgError) throw e;
      throw new Step(name, at, e);
    }
  };
}

/** Park layout: code page, then scratch data, then room for the stub's vdso mappings. The code page holds the
 *  `syscall; int3` of single calls at its start and the code of batched calls from BATCH_CODE on; the results of
 *  batched calls go to the end of the data area, from RESULTS on. */
export const PARK_CODE = 4096n;
export const PARK_DATA = 60n * 1024n;
export const BATCH_CODE = 64n;
export const RESULTS = PARK_DATA - 4096n;

export const PAGE = 4096n;
export const hex = (v: bigint): string => `0x${v.toString(16)}`;

export interface Stub {
  pid: number;
  xstate: Uint8Array | null;
}

/** A mapping of the stub ([vvar], [vdso] ... or any other). */
export interface StubMap {
  start: bigint;
  end: bigint;
  path: string;
}

/** The fds of the task as the files step places them. */
export interface FdPlan {
  /** fds 0-2 that take crimg's own (--inherit-stdio): left as the stub has them. */
  inherit: Set<number>;
  /** The task's files by fd. */
  sorted: OpenFile[];
  /** First fd above every fd of the task (scratch ends of pipes and socket pairs go there). */
  above: number;
  /** Pipes and socket pairs made already (with all their fds, when the lowest came): "pipe INO", "socket pair ID". */
  made: Set<string>;
  /** Pipes between tasks of the tree (opts.treePipes). */
  treePipes: Map<bigint, [number, number]>;
}

export interface RestoreCtx {
  readonly image: Image;
  readonly task: Task;
  readonly opts: RestoreOptions;
  readonly stub: Stub;
  /** The stub's pid (as crimg sees it): the task's from now on. */
  readonly pid: number;
  /** Threads of the new task as crimg sees them (the stub first; each thread cloned is added). */
  readonly tids: number[];
  readonly step: StepFn;
  /** Injector of the main thread. */
  readonly inj: Injector;
  readonly park: bigint;
  readonly parkSize: bigint;
  /** Scratch data in the park (RESULTS bytes before the batch results). */
  readonly data: bigint;
  /** Batched calls in the main thread (batchFor(inj)). */
  readonly batch: BatchFn;
  /** The main thread of the image and the others. */
  readonly leader: Thread;
  readonly others: Thread[];
  /** Injector of each thread of the image, once it exists (the main thread's is `inj`). */
  readonly injs: Map<Thread, Injector>;
  /** The stub's mappings when it was seized, its vdso ones, and where each of these went in the park. */
  readonly stubMaps: StubMap[];
  readonly specials: StubMap[];
  readonly parked: Map<string, bigint>;
  readonly fds: FdPlan;
  pages: number;
  userfaultfd: boolean;
}

/**
 * Calls that do not depend on one another, run in one stop (see Injector.batchRaw) in the thread of `bi`; the first
 * that failed is reported as a failure of step `name` at its `at`.
 */
export function batchFor(ctx: Pick<RestoreCtx, 'step' | 'opts' | 'park' | 'data'>, bi: Injector): BatchFn {
  return (name, calls) => {
    if (!calls.length) return [];
    if (ctx.opts.failAt === name) throw new Step(name, calls[0]!.at, new Error('failing on purpose (failAt)'));
    const res = ctx.step(name, '', () => bi.batchRaw(calls, ctx.park + BATCH_CODE, Number(PARK_CODE - BATCH_CODE), ctx.data + RESULTS));
    res.forEach((v, i) => {
      if (v < 0n && v >= -4095n) throw new Step(name, calls[i]!.at, new InjectError(calls[i]!.nr, Number(-v), calls[i]!.detail ?? ''));
    });
    return res;
  };
}

/** `s` as a C string in the park's scratch data at offset `off`; its address. */
export function str(ctx: RestoreCtx, s: string, off = 0n): bigint {
  const b = Buffer.from(`${s}\0`, 'utf8');
  if (BigInt(b.length) + off > RESULTS) throw new Error(`path too long: ${s.slice(0, 64)}...`);
  ctx.inj.write(ctx.data + off, b);
  return ctx.data + off;
}

/** Bytes into the park's scratch data; their address. */
export function scratch(ctx: RestoreCtx, b: Uint8Array): bigint {
  ctx.inj.write(ctx.data, b);
  return ctx.data;
}

/** A system call in the main thread (throws InjectError when it fails). */
export function call(ctx: RestoreCtx): (nr: number, args: (number | bigint)[], detail?: string) => bigint {
  return (nr, args, detail) => ctx.inj.call(nr, args, detail);
}

/** The two fds pipe2 / socketpair left in the scratch data. */
export function readPair(ctx: RestoreCtx): [number, number] {
  const b = new Int32Array(2);
  processVmRead(ctx.pid, new Uint8Array(b.buffer), ctx.data);
  return [b[0]!, b[1]!];
}

/** The file opened or made at fd `got` goes to its own fd number (with its close-on-exec flag). */
export function placeFd(ctx: RestoreCtx, f: OpenFile, at: string, got: number): void {
  if (got === f.fd) return;
  ctx.step('dup file', at, () => {
    ctx.inj.call(NR.dup3, [got, f.fd, f.cloexec ? O_CLOEXEC : 0]);
    ctx.inj.call(NR.close, [got]);
  });
}

/** A thread in step locations: its tid in the image and in the new process. */
export function threadAt(ctx: RestoreCtx, th: Thread): string {
  return `thread ${th.tid} (now ${ctx.injs.get(th)!.tid})`;
}

/** The plan of the files step: --inherit-stdio gives crimg's own for fds 0-2 that cannot be reopened, and for a
 *  terminal (now maybe another's). */
export function planFds(task: Task, opts: RestoreOptions): FdPlan {
  const tty = (f: OpenFile): boolean => /^\/dev\/(pts\/\d+|tty\w*|console)$/.test(f.path);
  const inherit = new Set<number>();
  for (const f of task.files)
    if (opts.inheritStdio && f.fd <= 2 && f.kind === FdKind.OTHER && (!fdReopenable(f) || tty(f))) inherit.add(f.fd);
  const sorted = [...task.files].sort((a, b) => a.fd - b.fd);
  const above = sorted.reduce((m, f) => Math.max(m, f.fd), 2) + 1;
  return { inherit, sorted, above, made: new Set(), treePipes: opts.treePipes ?? new Map() };
}
