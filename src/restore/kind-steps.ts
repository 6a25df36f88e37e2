/**
 * The runner of the restore steps of the kinds of saved state: each kind's steps are in its module
 * (src/kinds/<dir>/live.ts, over RestoreCalls of src/kinds/live.ts, which restoreCalls() below gives them), gathered
 * here in one ordered table (KIND_STEPS, in the order of RESTORE_KINDS; rseq, not a kind module, is here) that the
 * steps of restore.ts run, each kind when it must:
 *
 *   task    in the main thread before the threads are cloned (what they share): signal dispositions, process
 *           attributes;
 *   fd      in fd order with the reopened files (files.ts): the first kind whose value a file has makes it; `late`
 *           ones after every other fd is in place (epoll: the fds it watches must exist);
 *   thread  in each thread (the others first, the main thread last), before its FPU state and registers: rseq, futex
 *           addresses, alternate signal stack;
 *   last    in the main thread at the very end, just before the park goes: interval timers, POSIX timers, file
 *           locks and dumpable (a SIGALRM that came while crimg still ran calls in the task would be suppressed
 *           with the injection's stray signals; a POSIX lock goes away when the process closes any fd of its file).
 *
 * A value with nothing to restore (no handlers, a disabled stack, no timers ...) makes no system call and no step.
 */
import type { OpenFile, Rseq, Thread } from '../model.js';
import { RESTORE_KINDS, type RestoreCalls, type ThreadCalls } from '../kinds/live.js';
import { type RestoreCtx, RESULTS, Step, hex, placeFd, readPair, scratch, str, threadAt } from './ctx.js';
import { NR } from './inject.js';

// ---- rseq (per thread; not a kind module)

export function restoreRseq(ctx: RestoreCtx, th: Thread, rs: Rseq): void {
  if (!rs.ptr) return;
  ctx.step('rseq', `${threadAt(ctx, th)} ${hex(rs.ptr)}`, () => ctx.injs.get(th)!.call(NR.rseq, [rs.ptr, rs.len, 0, rs.sig]));
}

// ---- what a kind's restore step may do

/** The calls of thread th, once it exists in the new process. */
function threadCalls(ctx: RestoreCtx, th: Thread): ThreadCalls | undefined {
  const ti = ctx.injs.get(th);
  if (!ti) return undefined;
  return {
    tid: ti.tid,
    at: threadAt(ctx, th),
    call: (nr, args, what) => ti.call(nr, args, what),
    scratch: (b) => {
      ti.write(ctx.data, b);
      return ctx.data;
    },
  };
}

/** What a kind module's restore step may do (src/kinds/live.ts RestoreCalls), over the context. */
export function restoreCalls(ctx: RestoreCtx): RestoreCalls {
  return {
    pid: ctx.pid,
    leader: ctx.leader,
    call: (nr, args, what) => ctx.inj.call(nr, args, what),
    step: ctx.step,
    fail: (name, at, cause) => new Step(name, at, cause),
    batch: (name, calls) => ctx.batch(name, calls),
    scratch: (b) => scratch(ctx, b),
    scratchAt: ctx.data,
    scratchSize: Number(RESULTS),
    str: (s) => str(ctx, s),
    readPair: () => readPair(ctx),
    thread: (th) => threadCalls(ctx, th),
    placeFd: (f, at, got) => placeFd(ctx, f, at, got),
    fdsOnce: (key, same) => {
      if (ctx.fds.made.has(key)) return null;
      ctx.fds.made.add(key);
      return ctx.fds.sorted.filter((x) => same(x) && !ctx.fds.inherit.has(x.fd));
    },
    fdsAbove: ctx.fds.above,
    treePipe: (ino) => ctx.fds.treePipes.get(ino),
  };
}

// ---- the table

/** The restore step of one kind, by when it runs (see the header comment). */
export type KindStep =
  | { kind: string; when: 'task' | 'last'; run(ctx: RestoreCtx): void }
  | { kind: string; when: 'thread'; run(ctx: RestoreCtx, th: Thread): void }
  | { kind: string; when: 'fd'; late: boolean; has(f: OpenFile): boolean; run(ctx: RestoreCtx, f: OpenFile): void };

/** The restore steps of the kinds in RESTORE_KINDS, in its order. */
function moduleSteps(): KindStep[] {
  return RESTORE_KINDS.flatMap((k): KindStep[] => {
    if (k.scope === 'task')
      return (k.restore ?? []).map((r) => ({ kind: k.name, when: r.when, run: (ctx) => r.run(restoreCalls(ctx), ctx.task) }));
    if (k.scope === 'thread')
      return (k.restore ?? []).map((r) => ({
        kind: k.name,
        when: 'thread',
        run: (ctx, th) => {
          const rc = restoreCalls(ctx);
          r.run(rc.thread(th)!, th, rc);
        },
      }));
    return (k.restore ?? []).map((r): KindStep => {
      if (r.when === 'fd')
        return { kind: k.name, when: 'fd', late: r.late ?? false, has: r.has, run: (ctx, f) => r.run(restoreCalls(ctx), f) };
      return {
        kind: k.name,
        when: r.when,
        run: (ctx) => {
          const rc = restoreCalls(ctx);
          for (const f of ctx.task.files) if (r.has(f)) r.run(rc, f);
        },
      };
    });
  });
}

/** Every kind's restore step; in each `when`, in the order they run. */
export const KIND_STEPS: readonly KindStep[] = [
  {
    kind: 'rseq',
    when: 'thread',
    run: (ctx, th) => {
      if (th.rseq) restoreRseq(ctx, th, th.rseq);
    },
  },
  ...moduleSteps(),
];

/** The steps of the kinds that run at `when`, in order. */
export function kindSteps<W extends KindStep['when']>(when: W): (KindStep & { when: W })[] {
  return KIND_STEPS.filter((k): k is KindStep & { when: W } => k.when === when);
}
