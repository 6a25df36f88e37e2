/**
 * The task around its memory and files (steps 5-8 of restore.ts): its attributes (name, personality, rlimits, the
 * kinds of state its threads share, working directory), its threads, credentials in every thread, each thread's own
 * state (the main thread last, which removes the park), the pending signals, and the detach that lets it go.
 */
import { readFileSync } from 'node:fs';
import type { Thread } from '../model.js';
import { NT, kill, ptraceDetach, ptraceSetRegs, ptraceSetRegset, ptraceSetSigmask, tgkill } from '../os/libc.js';
import { restartedRegs } from '../os/taskcall.js';
import { SIG } from '../os/consts.js';
import { ownCaps } from './check.js';
import { type BatchFn, PARK_CODE, PARK_DATA, type RestoreCtx, batchFor, hex, str, threadAt } from './ctx.js';
import { type BatchCall, Injector, NR, R, waitStop } from './inject.js';
import { kindSteps } from './kind-steps.js';
import { queueTimerSignal, timerSending } from '../kinds/posix-timers/live.js';
import { CLONE_ARGS_SIZE, threadCloneArgs } from './pidns.js';
import { buildXstate, imageXstateBv } from './xsave.js';
import { ARCH_REQ_XCOMP_PERM, PR_CAPBSET_DROP, PR_SET_DUMPABLE, PR_SET_NAME, PR_SET_NO_NEW_PRIVS } from '../os/consts.js';

const CLONE_THREAD_FLAGS = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000; // VM FS FILES SIGHAND THREAD SYSVSEM

/** True when the thread was interrupted in a system call the kernel restarts through its restart block. */
export function restartBlock(regs: BigUint64Array): boolean {
  return BigInt.asIntN(64, regs[R.orig_rax]!) >= 0n && BigInt.asIntN(64, regs[R.rax]!) === -516n;
}

/** Registers as the task must resume: an interrupted system call is set up the way the kernel restarts it. */
export function resumeRegs(regs: BigUint64Array): BigUint64Array {
  return restartedRegs(regs, false);
}

/** Step 5a: name, personality, rlimits, the kinds of state the threads will share (kind steps at 'task'), working
 *  directory. */
export function restoreAttributes(ctx: RestoreCtx): void {
  const { task, inj } = ctx;
  ctx.step('comm', task.comm, () => inj.call(NR.prctl, [PR_SET_NAME, str(ctx, task.comm.slice(0, 15)), 0, 0, 0]));
  ctx.step('personality', hex(BigInt(task.personality)), () => inj.call(NR.personality, [task.personality >>> 0]));
  if (task.rlimits.length) {
    const b = new Uint8Array(16 * task.rlimits.length);
    const dv = new DataView(b.buffer);
    task.rlimits.forEach((rl, i) => {
      dv.setBigUint64(16 * i, rl.cur, true);
      dv.setBigUint64(16 * i + 8, rl.max, true);
    });
    ctx.step('rlimit', '', () => inj.write(ctx.data, b));
    ctx.batch(
      'rlimit',
      task.rlimits.map((_, i) => ({ nr: NR.prlimit64, args: [0, i, ctx.data + BigInt(16 * i), 0], at: `resource ${i}` })),
    );
  }
  for (const k of kindSteps('task')) k.run(ctx);
  if (task.cwd) ctx.step('cwd', task.cwd, () => inj.call(NR.chdir, [str(ctx, task.cwd)], task.cwd));
}

/** Step 6a: one thread per extra thread of the image, by an injected clone (with pidNs clone3 at the image's tid). */
export function cloneThreads(ctx: RestoreCtx): void {
  const { inj, data } = ctx;
  for (const th of ctx.others) {
    ctx.step('clone thread', `thread ${th.tid}`, () => {
      inj.cloned.length = 0;
      if (ctx.opts.pidNs) {
        inj.write(data, threadCloneArgs(CLONE_THREAD_FLAGS, data, th.tid));
        inj.call(NR.clone3, [data, CLONE_ARGS_SIZE], `set_tid ${th.tid}`);
      } else {
        inj.call(NR.clone, [CLONE_THREAD_FLAGS, 0, 0, 0, 0]);
      }
      const tid = inj.cloned[0];
      if (tid === undefined) throw new Error('clone reported no new thread');
      ctx.tids.push(tid);
      waitStop(tid);
      ctx.injs.set(th, new Injector(tid, ctx.park));
    });
  }
}

/** Step 6b: credentials in every thread (they are per thread: cloning first keeps clone3's set_tid privileged, and
 *  the new threads need no privilege the task lacks). */
export function restoreAllCreds(ctx: RestoreCtx): void {
  for (const th of [...ctx.others, ctx.leader]) {
    const ti = ctx.injs.get(th)!;
    restoreCreds(ctx, ti, batchFor(ctx, ti));
  }
}

/** Bounding set, no_new_privs, groups, gids, uids (the uids last: they drop root's capabilities). */
function restoreCreds(ctx: RestoreCtx, inj: Injector, batch: BatchFn): void {
  const { step, data } = ctx;
  const c = ctx.task.creds;
  const own = ownCaps();
  let last = 40;
  try {
    last = parseInt(readFileSync('/proc/sys/kernel/cap_last_cap', 'latin1'), 10);
  } catch {
    /* older kernel */
  }
  const drops: (BatchCall & { at: string })[] = [];
  for (let cap = 0; cap <= last; cap++) {
    const bit = 1n << BigInt(cap);
    if (own.bnd & bit && !(c.capBnd & bit)) drops.push({ nr: NR.prctl, args: [PR_CAPBSET_DROP, cap, 0, 0, 0], at: `cap ${cap}` });
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

/** Step 7: the state of each thread, the main thread last. */
export function restoreThreads(ctx: RestoreCtx): void {
  for (const th of [...ctx.others, ctx.leader]) restoreThread(ctx, th);
}

/**
 * One thread: AMX permission, its kind steps ('thread'), FPU / XSAVE state, signal mask; in the main thread then the
 * kind steps at 'last' and the park's removal (its last system call, stopped at its exit); registers (interrupted
 * system calls set up to restart).
 */
function restoreThread(ctx: RestoreCtx, th: Thread): void {
  const ti = ctx.injs.get(th)!;
  const tid = ti.tid;
  const at = threadAt(ctx, th);
  if (imageXstateBv(th) & (1n << 18n)) ctx.step('AMX permission', at, () => ti.call(NR.arch_prctl, [ARCH_REQ_XCOMP_PERM, 18]));
  for (const k of kindSteps('thread')) k.run(ctx, th);
  ctx.step('fpu', at, () => {
    if (ctx.stub.xstate) ptraceSetRegset(tid, NT.X86_XSTATE, buildXstate(ctx.stub.xstate, th));
    else ptraceSetRegset(tid, NT.PRFPREG, th.fpu.subarray(0, 512));
  });
  ctx.step('sigmask', at, () => ptraceSetSigmask(tid, th.sigmask));
  if (th === ctx.leader) {
    for (const k of kindSteps('last')) k.run(ctx);
    ctx.step('unmap park', hex(ctx.park), () => ti.callAtExit(NR.munmap, [ctx.park, PARK_CODE + PARK_DATA]));
  }
  // Left stopped, the task passes through the signal code on SIGCONT, which restarts an interrupted system
  // call itself: it gets the image's registers unchanged, except a -ERESTART_RESTARTBLOCK (the kernel would run
  // restart_syscall with the restart block this thread has here: the stub's sleep, or nothing). Running on, it
  // gets them as the restart would leave them.
  ctx.step('registers', at, () => ptraceSetRegs(tid, ctx.opts.stopped && !restartBlock(th.regs) ? th.regs : resumeRegs(th.regs)));
}

/**
 * Pending signals, queued again (tgkill: their siginfo is not in the image, and shared ones were recorded on the
 * main thread); a traced thread does not take them before it is let go, a blocked one keeps them pending. A signal
 * that a POSIX timer of the task sends is queued as that timer would have sent it (timerSending).
 */
export function queuePendingSignals(ctx: RestoreCtx): void {
  for (const [th, ti] of ctx.injs) {
    for (let sig = 1; sig <= 64; sig++) {
      if (!(th.sigpending & (1n << BigInt(sig - 1))) || sig === SIG.SIGKILL || sig === SIG.SIGSTOP) continue;
      const pt = timerSending(ctx, th, sig);
      ctx.step('pending signal', `thread ${th.tid} signal ${sig}`, () =>
        pt ? queueTimerSignal(ctx.pid, ti.tid, sig, pt) : tgkill(ctx.pid, ti.tid, sig),
      );
    }
  }
}

/** Step 8: let it go (or leave it stopped with `stopped`). */
export function detach(ctx: RestoreCtx): void {
  ctx.step('detach', '', () => {
    if (ctx.opts.stopped) kill(ctx.pid, SIG.SIGSTOP);
    for (const t of [...ctx.tids.filter((x) => x !== ctx.pid), ctx.pid]) ptraceDetach(t, 0);
  });
}
