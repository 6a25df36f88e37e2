/** The alternate signal stack of a thread: the SIGALTSTACK record under THREAD. */
import { defineKind } from '../kind.js';
import { hex } from '../show.js';

/** stack_t of sigaltstack(2): SA_ONSTACK handlers run on [sp, sp + size). flags: SS_ONSTACK 1, SS_DISABLE 2,
 *  SS_AUTODISARM 1 << 31. */
export interface SigAltStack {
  sp: bigint;
  size: bigint;
  flags: number;
}

export const sigaltstack = defineKind<'thread', SigAltStack>({
  key: 'sigaltstack',
  label: 'sigaltstack',
  owner: 'thread',
  record: {
    kind: 0x0216,
    name: 'SIGALTSTACK',
    parent: 0x0201,
    fixedLen: 24,
    doc: "Optional: the thread's alternate signal stack (sigaltstack; absent: not recorded).",
    fields: [
      ['sp', 'u64'],
      ['size', 'u64'],
      ['ssFlags', 'u32', 'SS_ONSTACK 1, SS_DISABLE 2, SS_AUTODISARM 1 << 31'],
      ['reserved', 'u32', '0'],
    ],
  },
  encode: (v) => ({ sp: v.sp, size: v.size, ssFlags: v.flags >>> 0, reserved: 0 }),
  decode(f, _th, bad) {
    if (f.reserved !== 0) bad('reserved field not zero');
    return { sp: f.sp as bigint, size: f.size as bigint, flags: f.ssFlags as number };
  },
  text: (v) => [v.flags & 2 ? 'sigaltstack disabled' : `sigaltstack ${hex(v.sp)} size ${v.size} flags ${hex(v.flags >>> 0)}`],
});
