/** Per-thread futex state: the FUTEX record under THREAD. */
import { defineKind } from '../kind.js';
import { hex } from '../show.js';

/** Per-thread futex state: where the kernel clears the tid and wakes a futex when the thread exits
 *  (set_tid_address, CLONE_CHILD_CLEARTID; pthread_join waits on it) and the robust futex list (set_robust_list). */
export interface ThreadFutex {
  clearChildTid: bigint;
  robustHead: bigint;
  robustLen: bigint;
}

export const futex = defineKind<'thread', ThreadFutex>({
  key: 'futex',
  label: 'futex',
  owner: 'thread',
  record: {
    kind: 0x0215,
    name: 'FUTEX',
    parent: 0x0201,
    fixedLen: 24,
    doc: 'Optional: clear_child_tid (set_tid_address) and the robust futex list (set_robust_list) (absent: not recorded).',
    fields: [
      ['clearChildTid', 'u64'],
      ['robustHead', 'u64'],
      ['robustLen', 'u64'],
    ],
  },
  encode: (v) => v as unknown as Record<string, unknown>,
  decode: (f) => ({ clearChildTid: f.clearChildTid as bigint, robustHead: f.robustHead as bigint, robustLen: f.robustLen as bigint }),
  text: (v) => [`futex clear_child_tid ${hex(v.clearChildTid)} robust list ${hex(v.robustHead)} (${v.robustLen} bytes)`],
});
