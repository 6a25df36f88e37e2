/**
 * The alternate signal stack of each thread (sigaltstack(NULL, &old) in it): address, size and flags (SS_DISABLE
 * when there is none, SS_ONSTACK when the thread runs on it). Restored by restoreSigaltstack below.
 */
import type { SigAltStack } from '../../model.js';
import { SYS } from '../../os/syscalls.js';
import { SS_DISABLE, SS_ONSTACK } from '../../os/consts.js';
import type { LiveThreadKind, RestoreCalls, ThreadCalls } from '../live.js';
import { sigaltstack as kindFormat } from './format.js';

export const sigaltstackLive: LiveThreadKind<SigAltStack> = {
  scope: 'thread',
  format: kindFormat,
  name: 'sigaltstack',
  inspect({ tid, calls }) {
    const r = calls.call(SYS.sigaltstack, [0, calls.scratch]);
    if (r < 0n) throw new Error(`sigaltstack in thread ${tid} returned ${r}`);
    const dv = new DataView(calls.read(24).buffer);
    return { sp: dv.getBigUint64(0, true), flags: dv.getUint32(8, true), size: dv.getBigUint64(16, true) };
  },
  restore: [
    {
      run(tc, th, rc) {
        if (th.sigaltstack) restoreSigaltstack(rc, tc, th.sigaltstack);
      },
    },
  ],
};

export function restoreSigaltstack(rc: Pick<RestoreCalls, 'step'>, tc: ThreadCalls, alt: SigAltStack): void {
  if (alt.flags & SS_DISABLE) return;
  const b = new Uint8Array(24);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(0, alt.sp, true);
  dv.setUint32(8, alt.flags & ~SS_ONSTACK, true); // on it at the freeze: it is set up all the same
  dv.setBigUint64(16, alt.size, true);
  rc.step('sigaltstack', `${tc.at} 0x${alt.sp.toString(16)}`, () => {
    tc.call(SYS.sigaltstack, [tc.scratch(b), 0]);
  });
}
