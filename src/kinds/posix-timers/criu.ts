/**
 * POSIX_TIMERS <-> task_core_entry.timers.posix (posix_timer_entry: id, clock, signal, notification,
 * notify_thread_id for SIGEV_THREAD_ID, sival_ptr, interval and remaining time in s and ns; overrun 0). The
 * timers message is shared with the interval timers (see taskTimers): an empty list adds nothing to it, and
 * import gives the list of any image whose tc has timers (empty when it has no POSIX timer).
 */
import type { CriuKindMap } from '../../criu/kind-map.js';
import type { Msg } from '../../criu/pb.js';
import { taskTimers } from '../../criu/layout.js';
import { arr, u64 } from '../../criu/fields.js';
import { type PosixTimer, SIGEV } from '../../model.js';

const NS = 1_000_000_000n;

function entryOf(p: PosixTimer): Msg {
  return {
    it_id: p.id,
    clock_id: p.clock >>> 0,
    si_signo: p.signo,
    it_sigev_notify: p.notify,
    sival_ptr: p.sigevValue,
    overrun: 0,
    isec: p.intervalNs / NS,
    insec: p.intervalNs % NS,
    vsec: p.valueNs / NS,
    vnsec: p.valueNs % NS,
    ...(p.notify === SIGEV.THREAD_ID ? { notify_thread_id: p.notifyTid } : {}),
  };
}

function timerOf(p: Msg): PosixTimer {
  return {
    id: Number(p.it_id ?? 0),
    clock: Number(p.clock_id ?? 0) | 0,
    notify: Number(p.it_sigev_notify ?? 0),
    notifyTid: p.notify_thread_id === undefined ? 0 : Number(p.notify_thread_id),
    signo: Number(p.si_signo ?? 0),
    sigevValue: u64(p.sival_ptr ?? 0),
    intervalNs: u64(p.isec ?? 0) * NS + u64(p.insec ?? 0),
    valueNs: u64(p.vsec ?? 0) * NS + u64(p.vnsec ?? 0),
  };
}

export const criuMap: CriuKindMap<PosixTimer[], 'task'> = {
  record: 'POSIX_TIMERS',
  owner: 'task',
  get: (t) => t.posixTimers,
  set: (t, v) => {
    t.posixTimers = v;
  },
  toCriu(timers, { tc }) {
    if (timers.length) taskTimers(tc).posix = timers.map(entryOf);
  },
  fromCriu({ tc }) {
    const tm = tc.timers as Msg | undefined;
    return tm
      ? arr<Msg>(tm.posix)
          .map(timerOf)
          .sort((a, b) => a.id - b.id)
      : undefined;
  },
};
