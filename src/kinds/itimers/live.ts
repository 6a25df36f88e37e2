/**
 * Interval timers (setitimer: ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF), asked of the kernel with getitimer in a
 * stopped thread: the armed ones with the time left and the interval. Restored by restoreItimers below.
 */
import type { Itimer } from '../../model.js';
import { SYS } from '../../os/syscalls.js';
import type { LiveTaskKind, RestoreCalls } from '../live.js';
import { itimers as kindFormat } from './format.js';

export const itimersLive: LiveTaskKind<Itimer[]> = {
  scope: 'task',
  format: kindFormat,
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
  restore: [
    {
      when: 'last',
      run(rc, task) {
        if (task.itimers) restoreItimers(rc, task.itimers);
      },
    },
  ],
};

/** Armed with the time that remained at the freeze; one that had expired (its signal is queued again with the pending
 *  signals) starts a new interval. */
export function restoreItimers(rc: RestoreCalls, itimers: Itimer[]): void {
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
  const data = rc.step('interval timers', '', () => rc.scratch(b));
  rc.batch(
    'interval timers',
    its.map((x, i) => ({ nr: SYS.setitimer, args: [x.which, data + BigInt(32 * i), 0], at: `timer ${x.which}` })),
  );
}
