/** POSIX timers (timer_create): the POSIX_TIMERS record under TASK. */
import { defineKind } from '../kind.js';
import { hex, sigName } from '../show.js';

/** How a POSIX timer notifies (sigev_notify): a signal to the process, nothing, or a signal to one thread. */
export const SIGEV = { SIGNAL: 0, NONE: 1, THREAD_ID: 4 } as const;

/** Clocks a POSIX timer may have in an image: REALTIME, MONOTONIC, PROCESS_CPUTIME_ID, BOOTTIME, REALTIME_ALARM,
 *  BOOTTIME_ALARM, TAI, and -6, the process's own CPU clock as glibc asks for CLOCK_PROCESS_CPUTIME_ID
 *  (MAKE_PROCESS_CPUCLOCK(0, CPUCLOCK_SCHED)). Not a thread's CPU clock (glibc's CLOCK_THREAD_CPUTIME_ID is -2: the
 *  thread that created the timer, which the kernel does not tell) nor another process's. */
export const POSIX_TIMER_CLOCKS: readonly number[] = [0, 1, 2, 7, 8, 9, 11, -6];

/** A POSIX timer (timer_create): its id (the process's timer_t), clock, how it notifies (SIGEV; notifyTid for
 *  SIGEV_THREAD_ID), the signal and sigev_value it delivers, and its interval and remaining time as at the freeze
 *  in nanoseconds (both 0: disarmed; remaining 0 with an interval: it expired and its signal is pending). */
export interface PosixTimer {
  id: number;
  clock: number;
  notify: number;
  notifyTid: number;
  signo: number;
  sigevValue: bigint;
  intervalNs: bigint;
  valueNs: bigint;
}

interface Row {
  id: bigint;
  clock: bigint;
  notify: bigint;
  tid: bigint;
  signal: bigint;
  value: bigint;
  interval: bigint;
  remaining: bigint;
}

export const posixTimers = defineKind<'task', PosixTimer[]>({
  key: 'posixTimers',
  label: 'POSIX timers',
  owner: 'task',
  record: {
    kind: 0x0108,
    name: 'POSIX_TIMERS',
    parent: 0x0101,
    doc: 'Optional: the POSIX timers of the process (absent: not recorded).',
    fields: [
      [
        'timers',
        'u64[]',
        'by ascending id; '
          + "clock (two's complement) 0 REALTIME, 1 MONOTONIC, 2 PROCESS_CPUTIME_ID, 7 BOOTTIME, 8 REALTIME_ALARM, 9 BOOTTIME_ALARM, 11 TAI, -6 the process's CPU clock (glibc's CLOCK_PROCESS_CPUTIME_ID); "
          + 'notify 0 SIGEV_SIGNAL, 1 SIGEV_NONE, 4 SIGEV_THREAD_ID (tid: a thread of the task; 0 otherwise); '
          + 'signal 1..64 (0 with SIGEV_NONE); value: sigev_value; interval and remaining in ns, both 0: disarmed',
        ['id', 'clock', 'notify', 'tid', 'signal', 'value', 'interval', 'remaining'],
      ],
    ],
  },
  encode: (v) => ({
    timers: v.map((x) => ({
      id: BigInt(x.id),
      clock: BigInt.asUintN(64, BigInt(x.clock)),
      notify: BigInt(x.notify),
      tid: BigInt(x.notifyTid),
      signal: BigInt(x.signo),
      value: x.sigevValue,
      interval: x.intervalNs,
      remaining: x.valueNs,
    })),
  }),
  decode(f, _task, bad) {
    const out: PosixTimer[] = [];
    for (const r of f.timers as Row[]) {
      const { id, notify, tid, signal: signo } = r;
      const clock = BigInt.asIntN(64, r.clock);
      if (id > 0x7fffffffn) bad(`POSIX timer id ${id} out of range`);
      if (out.length && Number(id) <= out[out.length - 1]!.id) bad(`POSIX timer ${id} out of order`);
      if (!POSIX_TIMER_CLOCKS.includes(Number(clock))) bad(`POSIX timer ${id}: clock ${clock} is not one a timer can be restored on`);
      if (notify !== BigInt(SIGEV.SIGNAL) && notify !== BigInt(SIGEV.NONE) && notify !== BigInt(SIGEV.THREAD_ID)) {
        bad(`POSIX timer ${id}: notify ${notify} is none of SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID`);
      }
      if ((notify === BigInt(SIGEV.THREAD_ID)) !== (tid !== 0n) || tid > 0x7fffffffn)
        bad(`POSIX timer ${id}: notify tid ${tid} with notify ${notify}`);
      if (signo > 64n || (signo === 0n && notify !== BigInt(SIGEV.NONE))) bad(`POSIX timer ${id}: signal ${signo}`);
      out.push({
        id: Number(id),
        clock: Number(clock),
        notify: Number(notify),
        notifyTid: Number(tid),
        signo: Number(signo),
        sigevValue: r.value,
        intervalNs: r.interval,
        valueNs: r.remaining,
      });
    }
    return out;
  },
  checkTask(task, values, bad) {
    const tids = new Set(task.threads.map((t) => t.tid));
    for (const pt of values[0]?.[1] ?? []) {
      if (pt.notify === SIGEV.THREAD_ID && !tids.has(pt.notifyTid)) {
        bad(task, `POSIX timer ${pt.id} notifies thread ${pt.notifyTid}, which is not a thread of task ${task.pid}`);
      }
    }
  },
  text: (v) =>
    v.map((x) => {
      const how =
        x.notify === SIGEV.NONE
          ? 'no signal'
          : `${sigName(x.signo)}${x.notify === SIGEV.THREAD_ID ? ` to thread ${x.notifyTid}` : ''} value ${hex(x.sigevValue)}`;
      return `timer ${x.id} clock ${x.clock} ${how} interval ${x.intervalNs} ns remaining ${x.valueNs} ns`;
    }),
});
