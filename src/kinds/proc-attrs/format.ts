/** Process attributes: the PROC_ATTRS record under TASK. */
import { defineKind } from '../kind.js';

/**
 * Attributes of a process that its programs can see and set: the file creation mask (umask), the OOM killer's
 * score adjustment (/proc/PID/oom_score_adj, -1000..1000), whether it may be dumped and ptraced by its user
 * (PR_SET_DUMPABLE 0 or 1), transparent huge pages disabled (PR_SET_THP_DISABLE), whether it reaps orphaned
 * descendants (PR_SET_CHILD_SUBREAPER), and the main thread's timer slack in nanoseconds (PR_SET_TIMERSLACK; threads
 * made after it inherit it).
 */
export interface ProcAttrs {
  umask: number;
  oomScoreAdj: number;
  dumpable: boolean;
  thpDisable: boolean;
  childSubreaper: boolean;
  timerSlackNs: bigint;
}

const FLAG_DUMPABLE = 1,
  FLAG_THP_DISABLE = 2,
  FLAG_SUBREAPER = 4;

export const procAttrs = defineKind<'task', ProcAttrs>({
  key: 'procAttrs',
  label: 'process attributes',
  owner: 'task',
  record: {
    kind: 0x0109,
    name: 'PROC_ATTRS',
    parent: 0x0101,
    fixedLen: 24,
    doc: 'Optional: attributes of the process its programs see and set (absent: not recorded).',
    fields: [
      ['umask', 'u32', 'file creation mask, 0..0o777'],
      ['oomScoreAdj', 'i32', '/proc/PID/oom_score_adj, -1000..1000'],
      ['flags', 'u32', 'bit 0 dumpable (PR_GET_DUMPABLE 1), bit 1 THP disabled (PR_GET_THP_DISABLE), bit 2 child subreaper'],
      ['reserved', 'u32', '0'],
      ['timerSlackNs', 'u64', "the main thread's timer slack (PR_GET_TIMERSLACK), at least 1"],
    ],
  },
  encode: (v) => ({
    umask: v.umask,
    oomScoreAdj: v.oomScoreAdj,
    flags: (v.dumpable ? FLAG_DUMPABLE : 0) | (v.thpDisable ? FLAG_THP_DISABLE : 0) | (v.childSubreaper ? FLAG_SUBREAPER : 0),
    reserved: 0,
    timerSlackNs: v.timerSlackNs,
  }),
  decode(f, _task, bad) {
    const umask = f.umask as number,
      adj = f.oomScoreAdj as number,
      flags = f.flags as number,
      slack = f.timerSlackNs as bigint;
    if (umask > 0o777) bad(`umask 0o${umask.toString(8)} has bits above 0o777`);
    if (adj < -1000 || adj > 1000) bad(`oom_score_adj ${adj} outside -1000..1000`);
    if (flags & ~7) bad(`unknown flags 0x${flags.toString(16)}`);
    if (f.reserved !== 0) bad('reserved field not zero');
    if (slack === 0n) bad('timer slack 0');
    return {
      umask,
      oomScoreAdj: adj,
      dumpable: (flags & FLAG_DUMPABLE) !== 0,
      thpDisable: (flags & FLAG_THP_DISABLE) !== 0,
      childSubreaper: (flags & FLAG_SUBREAPER) !== 0,
      timerSlackNs: slack,
    };
  },
  text: (v) => [
    `umask ${v.umask.toString(8).padStart(4, '0')} oom_score_adj ${v.oomScoreAdj} timer slack ${v.timerSlackNs} ns${v.dumpable ? '' : ' not-dumpable'}${
      v.thpDisable ? ' thp-disabled' : ''
    }${v.childSubreaper ? ' child-subreaper' : ''}`,
  ],
});

declare module '../../model.js' {
  interface Task {
    /** Process attributes (src/kinds/proc-attrs); undefined when not recorded. */
    procAttrs?: ProcAttrs;
  }
}
