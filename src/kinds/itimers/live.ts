/**
 * Interval timers (setitimer: ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF), asked of the kernel with getitimer in a
 * stopped thread: the armed ones with the time left and the interval. Restored by src/restore/kind-steps.ts.
 */
import type { Itimer } from '../../model.js';
import { SYS } from '../../os/syscalls.js';
import type { LiveTaskKind } from '../live.js';

export const itimersLive: LiveTaskKind<Itimer[]> = {
  scope: 'task',
  name: 'itimers',
  inspect({ tid, calls }) {
    const timers: Itimer[] = [];
    for (let which = 0; which <= 2; which++) {
      const r = calls.call(SYS.getitimer, [which, calls.scratch]);
      if (r < 0n) throw new Error(`getitimer(${which}) in thread ${tid} returned ${r}`);
      const dv = new DataView(calls.read(32).buffer);
      const us = (o: number): bigint => dv.getBigUint64(o, true) * 1_000_000n + dv.getBigUint64(o + 8, true);
      // remaining 0 with an interval: expired, its signal pending (the kernel re-arms ITIMER_REAL when it is taken)
      if (us(16) !== 0n || us(0) !== 0n) timers.push({ which, intervalUs: us(0), valueUs: us(16) });
    }
    return timers;
  },
  save(task, timers) {
    task.itimers = timers;
  },
};
