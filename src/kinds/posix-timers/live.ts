/**
 * POSIX timers (timer_create): /proc/PID/timers gives each one's id, clock, notification, signal and sigev_value;
 * the time left and the interval are asked of the kernel with timer_gettime in a stopped thread. A timer on a
 * clock crimg cannot restore it on (a thread's CPU time, another process's clock), or notifying in a way it does
 * not know, is a reason (POSIX_TIMER). Restored by src/restore/kind-steps.ts (restorePosixTimers), which reads
 * /proc/PID/timers of the new process to check the ids.
 */
import * as fs from 'node:fs';
import { POSIX_TIMER_CLOCKS, type PosixTimer, SIGEV } from '../../model.js';
import { procPath } from '../../os/proc.js';
import { SYS } from '../../os/syscalls.js';
import type { LiveTaskKind, Reason } from '../live.js';

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
  save(task, timers) {
    task.posixTimers = timers;
  },
};
