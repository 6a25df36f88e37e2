/** Interval timers (setitimer, alarm): the ITIMERS record under TASK. */
import { defineKind } from '../kind.js';

/** An interval timer in use (setitimer): which 0 ITIMER_REAL, 1 ITIMER_VIRTUAL, 2 ITIMER_PROF; microseconds.
 *  valueUs 0 with an interval: it expired and its signal is pending (ITIMER_REAL is re-armed when that signal is
 *  taken); restore queues that signal again and starts a new interval. */
export interface Itimer {
  which: number;
  intervalUs: bigint;
  valueUs: bigint;
}

const NAMES = ['REAL', 'VIRTUAL', 'PROF'];

export const itimers = defineKind<'task', Itimer[]>({
  key: 'itimers',
  label: 'itimers',
  owner: 'task',
  record: {
    kind: 0x0107,
    name: 'ITIMERS',
    parent: 0x0101,
    doc: 'Optional: the armed interval timers (absent: not recorded).',
    fields: [
      [
        'timers',
        'u64[]',
        'by ascending which: 0 ITIMER_REAL, 1 ITIMER_VIRTUAL, 2 ITIMER_PROF; interval and remaining in us, not both 0',
        ['which', 'interval', 'remaining'],
      ],
    ],
  },
  encode: (v) => ({ timers: v.map((x) => ({ which: BigInt(x.which), interval: x.intervalUs, remaining: x.valueUs })) }),
  decode(f, _task, bad) {
    const out: Itimer[] = [];
    for (const r of f.timers as { which: bigint; interval: bigint; remaining: bigint }[]) {
      if (r.which > 2n) bad(`interval timer ${r.which} is none of ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF`);
      const which = Number(r.which);
      if (out.length && which <= out[out.length - 1]!.which) bad(`interval timer ${which} out of order`);
      if (r.interval === 0n && r.remaining === 0n) bad(`interval timer ${which} recorded disarmed`);
      out.push({ which, intervalUs: r.interval, valueUs: r.remaining });
    }
    return out;
  },
  text: (v) => v.map((x) => `itimer ${NAMES[x.which]} interval ${x.intervalUs} us remaining ${x.valueUs} us`),
});
