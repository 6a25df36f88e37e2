/**
 * Process attributes (./format.ts), read from a frozen task and set again in a restored one.
 *
 * Checkpoint: umask and THP from /proc/PID/status, oom_score_adj and timer slack from their /proc files, dumpable
 * and child subreaper by prctl in a stopped thread (no /proc file shows them). A process whose dumpable value is 2
 * (made so by the kernel's suid_dumpable for a set-id program) cannot be given that value again: that is a reason.
 *
 * Restart: in the main thread, before the threads are cloned (they inherit the timer slack): umask,
 * PR_SET_THP_DISABLE, PR_SET_CHILD_SUBREAPER, PR_SET_TIMERSLACK; oom_score_adj is written to /proc/PID/oom_score_adj
 * by crimg; PR_SET_DUMPABLE last, after the credentials (changing them resets it).
 */
import * as fs from 'node:fs';
import {
  PR_GET_CHILD_SUBREAPER,
  PR_GET_DUMPABLE,
  PR_SET_CHILD_SUBREAPER,
  PR_SET_DUMPABLE,
  PR_SET_THP_DISABLE,
  PR_SET_TIMERSLACK,
} from '../../os/consts.js';
import { procPath, readText } from '../../os/proc.js';
import { SYS } from '../../os/syscalls.js';
import type { LiveTaskKind, RestoreCalls } from '../live.js';
import type { ProcAttrs } from './format.js';
import { procAttrs as kindFormat } from './format.js';

function readInt(pid: number, file: string): number {
  const v = Number.parseInt(readText(procPath(pid, file)).trim(), 10);
  if (!Number.isInteger(v)) throw new Error(`/proc/${pid}/${file} holds no number`);
  return v;
}

export const procAttrsLive: LiveTaskKind<ProcAttrs> = {
  scope: 'task',
  format: kindFormat,
  name: 'proc-attrs',
  inspect({ pid, tid, status, calls }) {
    const umask = Number.parseInt(status.get('Umask') ?? '', 8);
    const thp = status.get('THP_enabled');
    if (!Number.isInteger(umask) || thp === undefined) throw new Error(`/proc/${pid}/status shows no Umask or THP_enabled`);
    const dumpable = calls.call(SYS.prctl, [PR_GET_DUMPABLE, 0, 0, 0, 0]);
    if (dumpable < 0n || dumpable > 1n) throw new Error(`thread ${tid}: PR_GET_DUMPABLE gives ${dumpable}, which crimg cannot set again`);
    if (calls.call(SYS.prctl, [PR_GET_CHILD_SUBREAPER, calls.scratch, 0, 0, 0]) !== 0n)
      throw new Error(`thread ${tid}: PR_GET_CHILD_SUBREAPER failed`);
    const subreaper = new DataView(calls.read(4).buffer).getInt32(0, true);
    return {
      umask,
      oomScoreAdj: readInt(pid, 'oom_score_adj'),
      dumpable: dumpable === 1n,
      thpDisable: thp === '0',
      childSubreaper: subreaper !== 0,
      timerSlackNs: BigInt(readInt(pid, 'timerslack_ns')),
    };
  },
  restore: [
    {
      when: 'task',
      run(rc: RestoreCalls, task) {
        const a = task.procAttrs;
        if (!a) return;
        rc.step('umask', a.umask.toString(8), () => rc.call(SYS.umask, [a.umask], 'umask'));
        rc.step('THP disable', '', () => rc.call(SYS.prctl, [PR_SET_THP_DISABLE, a.thpDisable ? 1 : 0, 0, 0, 0], 'PR_SET_THP_DISABLE'));
        rc.step('child subreaper', '', () =>
          rc.call(SYS.prctl, [PR_SET_CHILD_SUBREAPER, a.childSubreaper ? 1 : 0, 0, 0, 0], 'PR_SET_CHILD_SUBREAPER'),
        );
        rc.step('timer slack', String(a.timerSlackNs), () =>
          rc.call(SYS.prctl, [PR_SET_TIMERSLACK, a.timerSlackNs, 0, 0, 0], 'PR_SET_TIMERSLACK'),
        );
        rc.step('oom_score_adj', String(a.oomScoreAdj), () => fs.writeFileSync(procPath(rc.pid, 'oom_score_adj'), String(a.oomScoreAdj)));
      },
    },
    {
      when: 'last',
      run(rc: RestoreCalls, task) {
        const a = task.procAttrs;
        if (!a) return;
        rc.step('dumpable', String(a.dumpable), () =>
          rc.call(SYS.prctl, [PR_SET_DUMPABLE, a.dumpable ? 1 : 0, 0, 0, 0], 'PR_SET_DUMPABLE'),
        );
      },
    },
  ],
};
