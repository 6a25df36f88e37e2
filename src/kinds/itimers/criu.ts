/**
 * ITIMERS <-> task_core_entry.timers real, virt, prof (itimer_entry: interval and value in seconds and
 * microseconds; the timers message is shared with the POSIX timers, see taskTimers). Import keeps the armed
 * ones (interval or value not 0).
 */
import type { CriuKindMap } from '../../criu/kind-map.js';
import type { Msg } from '../../criu/pb.js';
import { itimerEntry, taskTimers } from '../../criu/layout.js';
import { u64 } from '../../criu/fields.js';
import type { Itimer } from '../../model.js';

/** task_timers_entry's itimer_entry fields, by `which` (ITIMER_REAL 0, ITIMER_VIRTUAL 1, ITIMER_PROF 2). */
const WHICH = ['real', 'virt', 'prof'] as const;
const US = 1_000_000n;

export const criuMap: CriuKindMap<Itimer[], 'task'> = {
  record: 'ITIMERS',
  owner: 'task',
  get: (t) => t.itimers,
  set: (t, v) => {
    t.itimers = v;
  },
  toCriu(timers, { tc }) {
    const tm = taskTimers(tc);
    WHICH.forEach((k, which) => {
      const x = timers.find((t) => t.which === which);
      tm[k] = itimerEntry(x?.intervalUs ?? 0n, x?.valueUs ?? 0n);
    });
  },
  fromCriu({ tc }) {
    const tm = tc.timers as Msg | undefined;
    if (!tm) return undefined;
    const out: Itimer[] = [];
    WHICH.forEach((k, which) => {
      const e = tm[k] as Msg | undefined;
      const f = (field: string): bigint => (e?.[field] === undefined ? 0n : u64(e[field]));
      const intervalUs = f('isec') * US + f('iusec'),
        valueUs = f('vsec') * US + f('vusec');
      if (intervalUs || valueUs) out.push({ which, intervalUs, valueUs });
    });
    return out;
  },
};
