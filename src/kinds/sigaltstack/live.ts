/**
 * The alternate signal stack of each thread (sigaltstack(NULL, &old) in it): address, size and flags (SS_DISABLE
 * when there is none, SS_ONSTACK when the thread runs on it). Restored by src/restore/kind-steps.ts.
 */
import type { SigAltStack } from '../../model.js';
import { SYS } from '../../os/syscalls.js';
import type { LiveThreadKind } from '../live.js';

export const sigaltstackLive: LiveThreadKind<SigAltStack> = {
  scope: 'thread',
  name: 'sigaltstack',
  inspect({ tid, calls }) {
    const r = calls.call(SYS.sigaltstack, [0, calls.scratch]);
    if (r < 0n) throw new Error(`sigaltstack in thread ${tid} returned ${r}`);
    const dv = new DataView(calls.read(24).buffer);
    return { sp: dv.getBigUint64(0, true), flags: dv.getUint32(8, true), size: dv.getBigUint64(16, true) };
  },
  save(thread, stack) {
    thread.sigaltstack = stack;
  },
};
