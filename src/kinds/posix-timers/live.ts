/**
 * POSIX timers (timer_create): /proc/PID/timers gives each one's id, clock, notification, signal and sigev_value;
 * the time left and the interval are asked of the kernel with timer_gettime in a stopped thread. A timer on a
 * clock crimg cannot restore it on (a thread's CPU time, another process's clock), or notifying in a way it does
 * not know, is a reason (POSIX_TIMER). Restored by restorePosixTimers below (run by
 * src/restore/kind-steps.ts), which reads /proc/PID/timers of the new process to check the ids.
 */
import * as fs from 'node:fs';
import { POSIX_TIMER_CLOCKS, type PosixTimer, SIGEV, type Task, type Thread } from '../../model.js';
import { PR_TIMER_CREATE_RESTORE_IDS, SI_TIMER } from '../../os/consts.js';
import { addressOf, syscall } from '../../os/libc.js';
import { procPath } from '../../os/proc.js';
import { SYS } from '../../os/syscalls.js';
import type { LiveTaskKind, Reason, RestoreCalls } from '../live.js';
import { posixTimers as kindFormat } from './format.js';

/** A POSIX timer as /proc/PID/timers shows it (notify: sigev_notify, with SIGEV_THREAD_ID 4 for a thread). */
export interface ProcTimer {
  id: number;
  signo: number;
  sigevValue: bigint;
  notify: number;
  notifyTid: number;
  clock: number;
}

/** /proc/PID/timers: the POSIX timers of the process (empty when there are none or the file cannot be read). */
export function readPosixTimers(pid: number): ProcTimer[] {
  let text = '';
  try {
    text = fs.readFileSync(procPath(pid, 'timers'), 'latin1');
  } catch {
    return [];
  }
  const out: ProcTimer[] = [];
  const kinds: Record<string, number> = { signal: 0, none: 1, thread: 2 };
  for (const m of text.matchAll(/^ID: (-?\d+)\nsignal: (\d+)\/([0-9a-fA-Fx]+)\nnotify: (\w+)\/(pid|tid)\.(\d+)\nClockID: (-?\d+)$/gm)) {
    const tid = m[5] === 'tid';
    out.push({
      id: Number(m[1]),
      signo: Number(m[2]),
      sigevValue: BigInt(m[3]!.startsWith('0x') ? m[3]! : `0x${m[3]}`),
      notify: (kinds[m[4]!] ?? -1) + (tid ? 4 : 0),
      notifyTid: tid ? Number(m[6]) : 0,
      clock: Number(m[7]),
    });
  }
  return out;
}

/** Whether a POSIX timer can be saved and restored (see the POSIX_TIMERS record). */
export function posixTimerSupported(t: ProcTimer): boolean {
  return POSIX_TIMER_CLOCKS.includes(t.clock) && (t.notify === SIGEV.SIGNAL || t.notify === SIGEV.NONE || t.notify === SIGEV.THREAD_ID);
}

export const posixTimersLive: LiveTaskKind<PosixTimer[]> = {
  scope: 'task',
  format: kindFormat,
  name: 'posix-timers',
  reasons(pid): Reason[] {
    return readPosixTimers(pid)
      .filter((t) => !posixTimerSupported(t))
      .map((t) => ({
        code: 'POSIX_TIMER',
        text: `process ${pid} has POSIX timer ${t.id} on clock ${t.clock} (notify ${t.notify}), which crimg cannot restore`,
      }));
  },
  inspect({ pid, tid, calls }) {
    const pts: PosixTimer[] = [];
    for (const t of readPosixTimers(pid).filter(posixTimerSupported)) {
      const r = calls.call(SYS.timer_gettime, [t.id, calls.scratch]);
      if (r < 0n) throw new Error(`timer_gettime(${t.id}) in thread ${tid} returned ${r}`);
      const dv = new DataView(calls.read(32).buffer);
      const ns = (o: number): bigint => dv.getBigUint64(o, true) * 1_000_000_000n + dv.getBigUint64(o + 8, true);
      pts.push({ ...t, signo: t.notify === SIGEV.NONE ? 0 : t.signo, intervalNs: ns(0), valueNs: ns(16) }); // no signal
    }
    return pts.sort((a, b) => a.id - b.id);
  },
  restore: [
    {
      when: 'last',
      run(rc, task) {
        if (task.posixTimers) restorePosixTimers(rc, task, task.posixTimers);
      },
    },
  ],
};

const SIGEVENT_BYTES = 64;

/**
 * The task's POSIX timers, in the main thread at the end (like the interval timers): each created with its id, clock,
 * notification, signal and sigev_value (a SIGEV_THREAD_ID one aimed at the new tid of its thread), then armed with
 * the time that remained at the freeze (one that had expired, its signal queued again, starts a new interval).
 * The id is chosen with PR_TIMER_CREATE_RESTORE_IDS (Linux 6.15); without it the kernel hands out ids from 0 up,
 * which gives the same ids when the program made its timers in order and deleted none. Either way the ids are
 * then checked in /proc/PID/timers.
 */
export function restorePosixTimers(rc: RestoreCalls, task: Pick<Task, 'threads'>, pts: PosixTimer[]): void {
  if (!pts.length) return;
  let chosen = true;
  try {
    rc.call(SYS.prctl, [PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0]);
  } catch {
    chosen = false;
  }
  const b = new Uint8Array(SIGEVENT_BYTES + 8 + 32);
  const dv = new DataView(b.buffer);
  for (const pt of pts) {
    let tid = 0;
    if (pt.notify === SIGEV.THREAD_ID) {
      const th = task.threads.find((t) => t.tid === pt.notifyTid);
      const tc = th && rc.thread(th);
      if (!tc) throw rc.fail('POSIX timers', `timer ${pt.id}`, new Error(`thread ${pt.notifyTid} it signals is not in the image`));
      tid = tc.tid;
    }
    b.fill(0);
    dv.setBigUint64(0, pt.sigevValue, true);
    dv.setInt32(8, pt.signo, true);
    dv.setInt32(12, pt.notify, true);
    dv.setInt32(16, tid, true);
    dv.setInt32(SIGEVENT_BYTES, pt.id, true); // the id asked for (restore mode)
    rc.step('POSIX timers', `timer ${pt.id}`, () => {
      const data = rc.scratch(b);
      rc.call(SYS.timer_create, [pt.clock, data, data + BigInt(SIGEVENT_BYTES)], `clock ${pt.clock}`);
    });
  }
  if (chosen) rc.step('POSIX timers', 'restore ids off', () => rc.call(SYS.prctl, [PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0]));
  checkTimerIds(rc, pts, chosen);
  armPosixTimers(rc, pts, b);
}

/** The ids the new process has are those of the image. */
function checkTimerIds(rc: RestoreCalls, pts: PosixTimer[], chosen: boolean): void {
  const got = readPosixTimers(rc.pid)
    .map((t) => t.id)
    .sort((x, y) => x - y);
  const want = pts.map((t) => t.id);
  if (got.join() !== want.join()) {
    throw rc.fail(
      'POSIX timers',
      '',
      new Error(
        `the new process has timer ids ${got.join(', ')} instead of ${want.join(', ')}${chosen ? '' : ' (this kernel cannot choose them: PR_TIMER_CREATE_RESTORE_IDS needs Linux 6.15)'}`,
      ),
    );
  }
}

/** Each timer armed with the time that remained at the freeze (`b`: room for an itimerspec). */
function armPosixTimers(rc: RestoreCalls, pts: PosixTimer[], b: Uint8Array): void {
  const dv = new DataView(b.buffer);
  for (const pt of pts) {
    const valueNs = pt.valueNs || pt.intervalNs;
    if (!valueNs) continue; // disarmed
    dv.setBigUint64(0, pt.intervalNs / 1_000_000_000n, true);
    dv.setBigUint64(8, pt.intervalNs % 1_000_000_000n, true);
    dv.setBigUint64(16, valueNs / 1_000_000_000n, true);
    dv.setBigUint64(24, valueNs % 1_000_000_000n, true);
    rc.step('POSIX timers', `arm timer ${pt.id}`, () => {
      rc.call(SYS.timer_settime, [pt.id, 0, rc.scratch(b.subarray(0, 32)), 0]);
    });
  }
}

/** The POSIX timer of the task that sent the pending signal `sig` of thread `th` (to the process, or to this thread),
 *  the one with the least time left if several do; undefined when none sends it. */
export function timerSending(ctx: { task: Task; leader: Thread }, th: Thread, sig: number): PosixTimer | undefined {
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
