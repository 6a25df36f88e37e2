/**
 * The restore step of each kind of saved state, one self-contained function per kind over the restore context and
 * the task's, thread's or file's value of that kind, gathered in one ordered table (KIND_STEPS) that the steps of
 * restore.ts run, each kind when it must:
 *
 *   task    in the main thread before the threads are cloned (what they share): signal dispositions;
 *   fd      in fd order with the reopened files (files.ts): the first kind whose value a file has makes it; `late`
 *           ones after every other fd is in place (epoll: the fds it watches must exist);
 *   thread  in each thread (the others first, the main thread last), before its FPU state and registers: rseq, futex
 *           addresses, alternate signal stack;
 *   last    in the main thread at the very end, just before the park goes: interval timers, POSIX timers and file
 *           locks (a SIGALRM that came while crimg still ran calls in the task would be suppressed with the
 *           injection's stray signals; a POSIX lock goes away when the process closes any fd of its file).
 *
 * A value with nothing to restore (no handlers, a disabled stack, no timers ...) makes no system call and no step.
 */
import {
  type AnonFd,
  ANON_KIND,
  type FileLock,
  type InotifyWatch,
  type Itimer,
  LOCK_EOF,
  LOCK_KIND,
  type OpenFile,
  type PipeEnd,
  type PosixTimer,
  type Rseq,
  SIGEV,
  type SigAction,
  type SigAltStack,
  type Task,
  type TcpListen,
  type Thread,
  type ThreadFutex,
  type UnixPairEnd,
} from '../model.js';
import { createAnon } from '../kinds/anon-fd/live.js';
import { createPipe, placeEnds } from '../kinds/pipe/live.js';
import { createUnixPair } from '../kinds/unix-pair/live.js';
import { createInotify } from '../kinds/inotify/live.js';
import { createListener } from '../kinds/tcp-listen/live.js';
import { addressOf, syscall } from '../os/libc.js';
import { readPosixTimers } from '../kinds/posix-timers/live.js';
import { type RestoreCtx, RESULTS, Step, call, hex, placeFd, readPair, scratch, str, threadAt } from './ctx.js';
import { NR } from './inject.js';
import {
  F_OFD_SETLK,
  F_RDLCK,
  F_SETLK,
  F_WRLCK,
  LOCK_EX,
  LOCK_NB,
  LOCK_SH,
  PR_TIMER_CREATE_RESTORE_IDS,
  SI_TIMER,
  SS_DISABLE,
  SS_ONSTACK,
} from '../os/consts.js';
import { SYS } from '../os/syscalls.js';
import { LIVE_TASK_KINDS, type RestoreCalls } from '../kinds/live.js';

// ---- signal dispositions (sigacts)

/**
 * The dispositions are shared by all threads (CLONE_SIGHAND): set once, before the threads exist; every other signal
 * to SIG_DFL (the stub may have inherited ignored ones: ignoring survives exec).
 */
export function restoreSigactions(ctx: RestoreCtx, given: SigAction[]): void {
  const bySig = new Map(given.map((a) => [a.sig, a]));
  const acts = Array.from({ length: 64 }, (_, i) => i + 1)
    .filter((s) => s !== 9 && s !== 19)
    .map((sig) => bySig.get(sig) ?? { sig, handler: 0n, flags: 0n, restorer: 0n, mask: 0n });
  const b = new Uint8Array(32 * acts.length);
  const dv = new DataView(b.buffer);
  acts.forEach((a, i) => {
    dv.setBigUint64(32 * i, a.handler, true);
    dv.setBigUint64(32 * i + 8, a.flags, true);
    dv.setBigUint64(32 * i + 16, a.restorer, true);
    dv.setBigUint64(32 * i + 24, a.mask, true);
  });
  if (b.length > Number(RESULTS)) throw new Step('signal handlers', '', new Error(`${acts.length} dispositions do not fit the park`));
  ctx.step('signal handlers', '', () => ctx.inj.write(ctx.data, b));
  ctx.batch(
    'signal handlers',
    acts.map((a, i) => ({ nr: NR.rt_sigaction, args: [a.sig, ctx.data + BigInt(32 * i), 0, 8], at: `signal ${a.sig}` })),
  );
}

// ---- rseq, futex addresses, alternate signal stack (per thread)

const injOf = (ctx: RestoreCtx, th: Thread) => ctx.injs.get(th)!;

export function restoreRseq(ctx: RestoreCtx, th: Thread, rs: Rseq): void {
  if (!rs.ptr) return;
  ctx.step('rseq', `${threadAt(ctx, th)} ${hex(rs.ptr)}`, () => injOf(ctx, th).call(NR.rseq, [rs.ptr, rs.len, 0, rs.sig]));
}

/** Where the kernel clears the tid and wakes pthread_join when the thread exits; the robust futex list. */
export function restoreFutex(ctx: RestoreCtx, th: Thread, f: ThreadFutex): void {
  const ti = injOf(ctx, th),
    at = threadAt(ctx, th);
  ctx.step('clear_child_tid', `${at} ${hex(f.clearChildTid)}`, () => ti.call(NR.set_tid_address, [f.clearChildTid]));
  if (f.robustHead)
    ctx.step('robust futex list', `${at} ${hex(f.robustHead)}`, () => ti.call(NR.set_robust_list, [f.robustHead, f.robustLen]));
}

export function restoreSigaltstack(ctx: RestoreCtx, th: Thread, alt: SigAltStack): void {
  if (alt.flags & SS_DISABLE) return;
  const b = new Uint8Array(24);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(0, alt.sp, true);
  dv.setUint32(8, alt.flags & ~SS_ONSTACK, true); // on it at the freeze: it is set up all the same
  dv.setBigUint64(16, alt.size, true);
  const ti = injOf(ctx, th);
  ctx.step('sigaltstack', `${threadAt(ctx, th)} ${hex(alt.sp)}`, () => {
    ti.write(ctx.data, b);
    ti.call(NR.sigaltstack, [ctx.data, 0]);
  });
}

// ---- interval timers (itimers)

/** Armed with the time that remained at the freeze; one that had expired (its signal is queued again with the pending
 *  signals) starts a new interval. */
export function restoreItimers(ctx: RestoreCtx, itimers: Itimer[]): void {
  if (!itimers.length) return;
  const its = itimers.map((x) => ({ ...x, valueUs: x.valueUs || x.intervalUs }));
  const b = new Uint8Array(32 * its.length);
  const dv = new DataView(b.buffer);
  its.forEach((x, i) => {
    dv.setBigUint64(32 * i, x.intervalUs / 1_000_000n, true);
    dv.setBigUint64(32 * i + 8, x.intervalUs % 1_000_000n, true);
    dv.setBigUint64(32 * i + 16, x.valueUs / 1_000_000n, true);
    dv.setBigUint64(32 * i + 24, x.valueUs % 1_000_000n, true);
  });
  ctx.step('interval timers', '', () => ctx.inj.write(ctx.data, b));
  ctx.batch(
    'interval timers',
    its.map((x, i) => ({ nr: NR.setitimer, args: [x.which, ctx.data + BigInt(32 * i), 0], at: `timer ${x.which}` })),
  );
}

// ---- POSIX timers

const SIGEVENT_BYTES = 64;

/**
 * The task's POSIX timers, in the main thread at the end (like the interval timers): each created with its id, clock,
 * notification, signal and sigev_value (a SIGEV_THREAD_ID one aimed at the new tid of its thread), then armed with
 * the time that remained at the freeze (one that had expired, its signal queued again, starts a new interval).
 * The id is chosen with PR_TIMER_CREATE_RESTORE_IDS (Linux 6.15); without it the kernel hands out ids from 0 up,
 * which gives the same ids when the program made its timers in order and deleted none. Either way the ids are
 * then checked in /proc/PID/timers.
 */
export function restorePosixTimers(ctx: RestoreCtx, pts: PosixTimer[]): void {
  if (!pts.length) return;
  const ti = ctx.inj;
  let chosen = true;
  try {
    ti.call(NR.prctl, [PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0]);
  } catch {
    chosen = false;
  }
  const b = new Uint8Array(SIGEVENT_BYTES + 8 + 32);
  const dv = new DataView(b.buffer);
  for (const pt of pts) {
    let tid = 0;
    if (pt.notify === SIGEV.THREAD_ID) {
      const th = ctx.task.threads.find((t) => t.tid === pt.notifyTid);
      if (!th || !ctx.injs.has(th))
        throw new Step('POSIX timers', `timer ${pt.id}`, new Error(`thread ${pt.notifyTid} it signals is not in the image`));
      tid = ctx.injs.get(th)!.tid;
    }
    b.fill(0);
    dv.setBigUint64(0, pt.sigevValue, true);
    dv.setInt32(8, pt.signo, true);
    dv.setInt32(12, pt.notify, true);
    dv.setInt32(16, tid, true);
    dv.setInt32(SIGEVENT_BYTES, pt.id, true); // the id asked for (restore mode)
    ctx.step('POSIX timers', `timer ${pt.id}`, () => {
      ti.write(ctx.data, b);
      ti.call(NR.timer_create, [pt.clock, ctx.data, ctx.data + BigInt(SIGEVENT_BYTES)], `clock ${pt.clock}`);
    });
  }
  if (chosen) ctx.step('POSIX timers', 'restore ids off', () => ti.call(NR.prctl, [PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0]));
  const got = readPosixTimers(ctx.pid)
    .map((t) => t.id)
    .sort((x, y) => x - y);
  const want = pts.map((t) => t.id);
  if (got.join() !== want.join()) {
    throw new Step(
      'POSIX timers',
      '',
      new Error(
        `the new process has timer ids ${got.join(', ')} instead of ${want.join(', ')}${chosen ? '' : ' (this kernel cannot choose them: PR_TIMER_CREATE_RESTORE_IDS needs Linux 6.15)'}`,
      ),
    );
  }
  for (const pt of pts) {
    const valueNs = pt.valueNs || pt.intervalNs;
    if (!valueNs) continue; // disarmed
    dv.setBigUint64(0, pt.intervalNs / 1_000_000_000n, true);
    dv.setBigUint64(8, pt.intervalNs % 1_000_000_000n, true);
    dv.setBigUint64(16, valueNs / 1_000_000_000n, true);
    dv.setBigUint64(24, valueNs % 1_000_000_000n, true);
    ctx.step('POSIX timers', `arm timer ${pt.id}`, () => {
      ti.write(ctx.data, b.subarray(0, 32));
      ti.call(NR.timer_settime, [pt.id, 0, ctx.data, 0]);
    });
  }
}

/** The POSIX timer of the task that sent the pending signal `sig` of thread `th` (to the process, or to this thread),
 *  the one with the least time left if several do; undefined when none sends it. */
export function timerSending(ctx: RestoreCtx, th: Thread, sig: number): PosixTimer | undefined {
  return (ctx.task.posixTimers ?? [])
    .filter(
      (x) => x.signo === sig && (x.notify === SIGEV.THREAD_ID ? x.notifyTid === th.tid : x.notify === SIGEV.SIGNAL && th === ctx.leader),
    )
    .sort((a, b) => (a.valueNs < b.valueNs ? -1 : a.valueNs > b.valueNs ? 1 : a.id - b.id))[0];
}

/** Queue signal sig to thread tid of tgid as POSIX timer pt sends it: a siginfo with SI_TIMER, the timer id, no
 *  overrun and its sigev_value (the kernel lets any sender use a negative si_code other than SI_TKILL). */
export function queueTimerSignal(tgid: number, tid: number, sig: number, pt: PosixTimer): void {
  const info = new Uint8Array(128);
  const dv = new DataView(info.buffer);
  dv.setInt32(0, sig, true);
  dv.setInt32(8, SI_TIMER, true);
  dv.setInt32(16, pt.id, true);
  dv.setBigUint64(24, pt.sigevValue, true);
  syscall(SYS.rt_tgsigqueueinfo, tgid, tid, sig, addressOf(info));
}

// ---- file locks (flocks)

/**
 * The locks taken through one fd, at the end: flock, or fcntl F_SETLK / F_OFD_SETLK on the bytes recorded, none of
 * them waiting. A lock someone else holds now fails the restore (EAGAIN) rather than leave the task believing it
 * has it.
 */
export function restoreFlocks(ctx: RestoreCtx, f: OpenFile, locks: FileLock[]): void {
  const ti = ctx.inj;
  const fl = new Uint8Array(32);
  const dv = new DataView(fl.buffer);
  for (const l of locks) {
    const at = `fd ${f.fd} ${f.path} ${l.write ? 'write' : 'read'} lock ${l.start}..${l.end === LOCK_EOF ? 'EOF' : l.end}`;
    if (l.kind === LOCK_KIND.FLOCK) {
      ctx.step('file lock', at, () => ti.call(SYS.flock, [f.fd, (l.write ? LOCK_EX : LOCK_SH) | LOCK_NB], 'flock'));
      continue;
    }
    fl.fill(0);
    dv.setInt16(0, l.write ? F_WRLCK : F_RDLCK, true);
    dv.setInt16(2, 0, true); // SEEK_SET
    dv.setBigInt64(8, l.start, true);
    dv.setBigInt64(16, l.end === LOCK_EOF ? 0n : l.end - l.start + 1n, true); // 0: to the end of the file
    ctx.step('file lock', at, () => {
      ti.write(ctx.data, fl);
      ti.call(
        NR.fcntl,
        [f.fd, l.kind === LOCK_KIND.OFD ? F_OFD_SETLK : F_SETLK, ctx.data],
        l.kind === LOCK_KIND.OFD ? 'F_OFD_SETLK' : 'F_SETLK',
      );
    });
  }
}

// ---- pipes and UNIX socket pairs: made with all their fds when the lowest of them comes; scratch ends above every
// fd of the task

/** The task's fds of one pipe or socket pair (those not inherited), or null when it was made already. */
function endsOnce(ctx: RestoreCtx, key: string, same: (x: OpenFile) => boolean): OpenFile[] | null {
  if (ctx.fds.made.has(key)) return null;
  ctx.fds.made.add(key);
  return ctx.fds.sorted.filter((x) => same(x) && !ctx.fds.inherit.has(x.fd));
}

export function restorePipe(ctx: RestoreCtx, _f: OpenFile, pipe: PipeEnd): void {
  const key = `pipe ${pipe.ino}`;
  const ends = endsOnce(ctx, key, (x) => x.pipe?.ino === pipe.ino);
  if (!ends) return;
  const at = `fd ${ends.map((x) => x.fd).join(', ')} ${key}`;
  const shared = ctx.fds.treePipes.get(pipe.ino); // between tasks of the tree: placed from the ends every stub has
  if (shared) {
    ctx.step('place pipe', at, () => placeEnds(ends, shared[0], shared[1], call(ctx)));
    return;
  }
  ctx.step('create pipe', at, () => createPipe(ends, ctx.pid, call(ctx), ctx.data, () => readPair(ctx), ctx.fds.above));
}

export function restoreUnixPair(ctx: RestoreCtx, _f: OpenFile, end: UnixPairEnd): void {
  const key = `socket pair ${end.pair}`;
  const ends = endsOnce(ctx, key, (x) => !x.pipe && x.unixPair?.pair === end.pair);
  if (!ends) return;
  ctx.step('create socket', `fd ${ends.map((x) => x.fd).join(', ')} ${key}`, () =>
    createUnixPair(ends, ctx.pid, call(ctx), ctx.data, () => readPair(ctx), ctx.fds.above),
  );
}

// ---- a listening TCP socket, inotify, eventfd / timerfd / signalfd / epoll: made, then moved to their fd

export function restoreListener(ctx: RestoreCtx, f: OpenFile, _l: TcpListen): void {
  const at = `fd ${f.fd} listening socket`;
  placeFd(
    ctx,
    f,
    at,
    ctx.step('create file', at, () => createListener(f, call(ctx), (b) => scratch(ctx, b))),
  );
}

export function restoreInotify(ctx: RestoreCtx, f: OpenFile, _w: InotifyWatch[]): void {
  const at = `fd ${f.fd} inotify`;
  placeFd(
    ctx,
    f,
    at,
    ctx.step('create file', at, () => createInotify(f, call(ctx), (s) => str(ctx, s))),
  );
}

export function restoreAnonFd(ctx: RestoreCtx, f: OpenFile, _a: AnonFd): void {
  const at = `fd ${f.fd} ${f.path}`;
  placeFd(
    ctx,
    f,
    at,
    ctx.step('create file', at, () => createAnon(f, call(ctx), (b) => scratch(ctx, b))),
  );
}

// ---- the table

/** The restore step of one kind, by when it runs (see the header comment). */
export type KindStep =
  | { kind: string; when: 'task' | 'last'; run(ctx: RestoreCtx): void }
  | { kind: string; when: 'thread'; run(ctx: RestoreCtx, th: Thread): void }
  | { kind: string; when: 'fd'; late: boolean; has(f: OpenFile): boolean; run(ctx: RestoreCtx, f: OpenFile): void };

function ofTask<V>(
  kind: string,
  when: 'task' | 'last',
  value: (t: Task) => V | undefined,
  restore: (ctx: RestoreCtx, v: V) => void,
): KindStep {
  return {
    kind,
    when,
    run: (ctx) => {
      const v = value(ctx.task);
      if (v !== undefined) restore(ctx, v);
    },
  };
}

/** A kind of every file of the task that has it, all at once (file locks). */
function ofFiles<V>(
  kind: string,
  when: 'task' | 'last',
  value: (f: OpenFile) => V | undefined,
  restore: (ctx: RestoreCtx, f: OpenFile, v: V) => void,
): KindStep {
  return {
    kind,
    when,
    run: (ctx) => {
      for (const f of ctx.task.files) {
        const v = value(f);
        if (v !== undefined) restore(ctx, f, v);
      }
    },
  };
}

function ofThread<V>(kind: string, value: (th: Thread) => V | undefined, restore: (ctx: RestoreCtx, th: Thread, v: V) => void): KindStep {
  return {
    kind,
    when: 'thread',
    run: (ctx, th) => {
      const v = value(th);
      if (v !== undefined) restore(ctx, th, v);
    },
  };
}

function ofFd<V>(
  kind: string,
  value: (f: OpenFile) => V | undefined,
  restore: (ctx: RestoreCtx, f: OpenFile, v: V) => void,
  late = false,
): KindStep {
  return { kind, when: 'fd', late, has: (f) => value(f) !== undefined, run: (ctx, f) => restore(ctx, f, value(f)!) };
}

/** What a kind module's restore step may do (src/kinds/live.ts RestoreCalls), over the context. */
function restoreCalls(ctx: RestoreCtx): RestoreCalls {
  return { pid: ctx.pid, call: (nr, args, what) => ctx.inj.call(nr, args, what), step: ctx.step };
}

/** Every kind's restore step; in each `when`, in the order they run. */
export const KIND_STEPS: readonly KindStep[] = [
  ofTask('sigacts', 'task', (t) => t.sigactions, restoreSigactions),
  ofFd('pipe', (f) => f.pipe, restorePipe),
  ofFd('unix-pair', (f) => f.unixPair, restoreUnixPair),
  ofFd('tcp-listen', (f) => f.tcpListen, restoreListener),
  ofFd('inotify', (f) => f.inotify, restoreInotify),
  ofFd('anon-fd', (f) => (f.anon && f.anon.kind !== ANON_KIND.EPOLL ? f.anon : undefined), restoreAnonFd),
  ofFd('anon-fd', (f) => (f.anon?.kind === ANON_KIND.EPOLL ? f.anon : undefined), restoreAnonFd, true),
  ofThread('rseq', (th) => th.rseq ?? undefined, restoreRseq),
  ofThread('futex', (th) => th.futex, restoreFutex),
  ofThread('sigaltstack', (th) => th.sigaltstack, restoreSigaltstack),
  ofTask('itimers', 'last', (t) => t.itimers, restoreItimers),
  ofTask('posix-timers', 'last', (t) => t.posixTimers, restorePosixTimers),
  ofFiles('flocks', 'last', (f) => f.locks, restoreFlocks),
  // the kinds whose restore steps are in their own module (src/kinds/<dir>/live.ts)
  ...LIVE_TASK_KINDS.flatMap((k) =>
    (k.restore ?? []).map((r): KindStep => ({ kind: k.name, when: r.when, run: (ctx) => r.run(restoreCalls(ctx), ctx.task) })),
  ),
];

/** The steps of the kinds that run at `when`, in order. */
export function kindSteps<W extends KindStep['when']>(when: W): (KindStep & { when: W })[] {
  return KIND_STEPS.filter((k): k is KindStep & { when: W } => k.when === when);
}
