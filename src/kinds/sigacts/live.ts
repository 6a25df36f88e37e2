/**
 * Signal dispositions. /proc/PID/status says which signals are ignored (SigIgn) and which are caught (SigCgt);
 * only the caught ones need a call, rt_sigaction(sig, NULL, &old, 8) in a stopped thread, for their handler,
 * flags, restorer and mask. The dispositions are shared by the threads of a process. Restored by
 * restoreSigactions below (run by src/restore/kind-steps.ts).
 */
import type { SigAction } from '../../model.js';
import type { Status } from '../../os/proc.js';
import { SIG_IGN } from '../../os/consts.js';
import { SYS } from '../../os/syscalls.js';
import type { LiveTaskKind, RestoreCalls } from '../live.js';
import { sigacts as kindFormat } from './format.js';

const hexBig = (s: string | undefined): bigint => (s ? BigInt(`0x${s}`) : 0n);

/** Signal numbers (1..64) whose bit is set in mask. */
function signalsIn(mask: bigint): number[] {
  const out: number[] = [];
  for (let s = 1; s <= 64; s++) if (mask & (1n << BigInt(s - 1))) out.push(s);
  return out;
}

/** The ignored signals, as dispositions. */
function ignored(status: Status): SigAction[] {
  return signalsIn(hexBig(status.get('SigIgn'))).map((sig) => ({ sig, handler: BigInt(SIG_IGN), flags: 0n, restorer: 0n, mask: 0n }));
}

const caught = (status: Status): number[] => signalsIn(hexBig(status.get('SigCgt')));

export const sigactsLive: LiveTaskKind<SigAction[]> = {
  scope: 'task',
  format: kindFormat,
  name: 'sigacts',
  inspect({ tid, status, calls }) {
    const actions = ignored(status);
    for (const sig of caught(status)) {
      const r = calls.call(SYS.rt_sigaction, [sig, 0, calls.scratch, 8]);
      if (r < 0n) throw new Error(`rt_sigaction(${sig}) in thread ${tid} returned ${r}`);
      const dv = new DataView(calls.read(32).buffer);
      const handler = dv.getBigUint64(0, true);
      if (handler !== 0n)
        actions.push({
          sig,
          handler,
          flags: dv.getBigUint64(8, true),
          restorer: dv.getBigUint64(16, true),
          mask: dv.getBigUint64(24, true),
        });
    }
    return actions.sort((a, b) => a.sig - b.sig);
  },
  /** Without calls, only a process that catches no signal: its dispositions are the ignored ones. */
  withoutCalls(_pid, status) {
    return caught(status).length ? null : ignored(status);
  },
  restore: [
    {
      when: 'task',
      run(rc, task) {
        if (task.sigactions) restoreSigactions(rc, task.sigactions);
      },
    },
  ],
};

/**
 * The dispositions are shared by all threads (CLONE_SIGHAND): set once, before the threads exist; every other signal
 * to SIG_DFL (the stub may have inherited ignored ones: ignoring survives exec).
 */
export function restoreSigactions(rc: RestoreCalls, given: SigAction[]): void {
  const bySig = new Map(given.map((a) => [a.sig, a]));
  const acts = Array.from({ length: 64 }, (_, i) => i + 1)
    .filter((s) => s !== 9 && s !== 19)
    .map((sig) => bySig.get(sig) ?? { sig, handler: 0n, flags: 0n, restorer: 0n, mask: 0n });
  const b = new Uint8Array(32 * acts.length);
  const dv = new DataView(b.buffer);
  acts.forEach((a, i) => {
    dv.setBigUint64(32 * i, a.handler, true);
    dv.setBigUint64(32 * i + 8, a.flags, true);
    dv.setBigUint64(32 * i + 16, a.restorer, true);
    dv.setBigUint64(32 * i + 24, a.mask, true);
  });
  if (b.length > rc.scratchSize) throw rc.fail('signal handlers', '', new Error(`${acts.length} dispositions do not fit the park`));
  const data = rc.step('signal handlers', '', () => rc.scratch(b));
  rc.batch(
    'signal handlers',
    acts.map((a, i) => ({ nr: SYS.rt_sigaction, args: [a.sig, data + BigInt(32 * i), 0, 8], at: `signal ${a.sig}` })),
  );
}
