/** How crimg's model fields sit in CRIU's x86 messages (shared by export and import). */
import { REG_NAMES } from '../schema.js';
import { VmaFlags } from '../model.js';
import type { Msg } from './pb.js';

/** user_x86_regs_entry fields 1..27 are user_regs_struct in kernel order, as the model's registers. */
export const GPREG_FIELDS = [
  'r15',
  'r14',
  'r13',
  'r12',
  'bp',
  'bx',
  'r11',
  'r10',
  'r9',
  'r8',
  'ax',
  'cx',
  'dx',
  'si',
  'di',
  'orig_ax',
  'ip',
  'cs',
  'flags',
  'sp',
  'ss',
  'fs_base',
  'gs_base',
  'ds',
  'es',
  'fs',
  'gs',
] as const;
if (GPREG_FIELDS.length !== REG_NAMES.length) throw new Error('GPREG_FIELDS and REG_NAMES differ in length');

/**
 * user_x86_xsave_entry arrays: XCR0 bit, Intel standard-form offset, element width and
 * count (CRIU's struct ymmh_struct, mpx_bndreg_state, mpx_bndcsr_state, avx_512_opmask_state,
 * avx_512_zmm_uppers_state, avx_512_hi16_state, pkru_state). CRIU writes an array when
 * the CPU has the feature, so the arrays present tell XCR0.
 */
export const XSAVE_PARTS = [
  { field: 'ymmh_space', bit: 2, offset: 576, width: 4, count: 64 },
  { field: 'bndreg_state', bit: 3, offset: 960, width: 8, count: 8 },
  { field: 'bndcsr_state', bit: 4, offset: 1024, width: 8, count: 2 },
  { field: 'opmask_reg', bit: 5, offset: 1088, width: 8, count: 8 },
  { field: 'zmm_upper', bit: 6, offset: 1152, width: 8, count: 64 },
  { field: 'hi16_zmm', bit: 7, offset: 1664, width: 8, count: 128 },
  { field: 'pkru', bit: 9, offset: 2688, width: 4, count: 2 },
] as const;

/** task_core_entry.sigactions: one entry per signal 1..64 except SIGKILL and SIGSTOP, in order. */
export const SIG_SLOTS: number[] = [];
for (let s = 1; s <= 64; s++) if (s !== 9 && s !== 19) SIG_SLOTS.push(s);

/** Flags and modes CRIU images carry as Linux has them (MAP_LOCKED in vma_entry.flags: an mlock'ed VMA, CRIU's "lo"). */
export { FD_CLOEXEC, MAP_LOCKED, O_DIRECTORY, S_IFDIR, S_IFMT, S_IFREG } from '../os/consts.js';

/**
 * vma_entry.madv: bit n set = madvise(n) applies to the VMA (CRIU sets them from smaps VmFlags and
 * replays them on restore). MADV_RANDOM 1, MADV_SEQUENTIAL 2, MADV_DONTFORK 10, MADV_MERGEABLE 12,
 * MADV_HUGEPAGE 14, MADV_NOHUGEPAGE 15, MADV_DONTDUMP 16, MADV_WIPEONFORK 18.
 */
export const MADV_BITS: readonly [flag: number, advice: number][] = [
  [VmaFlags.RAND_READ, 1],
  [VmaFlags.SEQ_READ, 2],
  [VmaFlags.DONTFORK, 10],
  [VmaFlags.MERGEABLE, 12],
  [VmaFlags.HUGEPAGE, 14],
  [VmaFlags.NOHUGEPAGE, 15],
  [VmaFlags.DONTDUMP, 16],
  [VmaFlags.WIPEONFORK, 18],
];

const US = 1_000_000n;

/** An itimer_entry: interval and value in seconds and microseconds. */
export function itimerEntry(intervalUs: bigint, valueUs: bigint): Msg {
  return { isec: intervalUs / US, iusec: intervalUs % US, vsec: valueUs / US, vusec: valueUs % US };
}

/**
 * task_core_entry.timers, made when missing: the interval timers (ITIMERS) and the POSIX timers (POSIX_TIMERS)
 * share it; the first of the two kinds to export makes it with the interval timers disarmed and no POSIX timer.
 */
export function taskTimers(tc: Msg): Msg {
  tc.timers ??= { real: itimerEntry(0n, 0n), virt: itimerEntry(0n, 0n), prof: itimerEntry(0n, 0n), posix: [] };
  return tc.timers as Msg;
}
