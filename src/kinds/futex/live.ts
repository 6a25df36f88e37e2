/**
 * Per-thread futex state: clear_child_tid (prctl PR_GET_TID_ADDRESS: where the kernel clears the tid and wakes
 * pthread_join when the thread exits) and the robust futex list (get_robust_list), asked in each thread.
 * Restored by restoreFutex below (set_tid_address, set_robust_list).
 */
import type { ThreadFutex } from '../../model.js';
import { PR_GET_TID_ADDRESS } from '../../os/consts.js';
import { SYS } from '../../os/syscalls.js';
import type { LiveThreadKind, RestoreCalls, ThreadCalls } from '../live.js';
import { futex as kindFormat } from './format.js';

export const futexLive: LiveThreadKind<ThreadFutex> = {
  scope: 'thread',
  format: kindFormat,
  name: 'futex',
  inspect({ tid, calls }) {
    const a = calls.call(SYS.prctl, [PR_GET_TID_ADDRESS, calls.scratch, 0, 0, 0]);
    const b = calls.call(SYS.get_robust_list, [0, calls.scratch + 8n, calls.scratch + 16n]);
    if (a < 0n || b < 0n) throw new Error(`PR_GET_TID_ADDRESS / get_robust_list in thread ${tid} returned ${a} / ${b}`);
    const dv = new DataView(calls.read(24).buffer);
    return { clearChildTid: dv.getBigUint64(0, true), robustHead: dv.getBigUint64(8, true), robustLen: dv.getBigUint64(16, true) };
  },
  restore: [
    {
      run(tc, th, rc) {
        if (th.futex) restoreFutex(rc, tc, th.futex);
      },
    },
  ],
};

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** Where the kernel clears the tid and wakes pthread_join when the thread exits; the robust futex list. */
export function restoreFutex(rc: RestoreCalls, tc: ThreadCalls, f: ThreadFutex): void {
  rc.step('clear_child_tid', `${tc.at} ${hex(f.clearChildTid)}`, () => tc.call(SYS.set_tid_address, [f.clearChildTid]));
  if (f.robustHead)
    rc.step('robust futex list', `${tc.at} ${hex(f.robustHead)}`, () => tc.call(SYS.set_robust_list, [f.robustHead, f.robustLen]));
}
