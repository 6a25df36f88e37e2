// The one ABI shared by every crimg kernel.
//
// Linear memory layout (all offsets are byte addresses in the module's memory):
//
//   [0, __heap_base)            static data (constants such as the XXH3 secret)
//   [STATE_BASE, +STATE_BYTES)  NSLOTS streaming-hash states, SLOT_BYTES each
//   [SCRATCH_BASE, +SCRATCH_BYTES)  small inputs/outputs (register sets, bitmaps)
//   [STAGING_BASE, memory end)  the staging buffer: page data lives here on hot paths
//
// Kernels take (ptr, len) pairs into this memory and never allocate. The host
// checks that every range lies inside memory once, before the call; kernels then
// use raw load/store. Results that do not fit a scalar are written to memory.

export const PAGE: usize = 4096;
export const NSLOTS: u32 = 16;
export const SLOT_BYTES: usize = 1024;
export const SCRATCH_BYTES: usize = 256 * 1024;

// Fixed, 64 KiB-aligned bases independent of the size of static data.
export const STATE_BASE: usize = 64 * 1024;
export const SCRATCH_BASE: usize = STATE_BASE + 64 * 1024;
export const STAGING_BASE: usize = SCRATCH_BASE + SCRATCH_BYTES;

export function slotPtr(slot: u32): usize {
  return STATE_BASE + (<usize>slot) * SLOT_BYTES;
}

/** Grow memory so that the staging area holds at least `bytes`. Returns the
 *  staging base, or 0 when memory cannot grow that far. */
export function stagingEnsure(bytes: usize): usize {
  const need = STAGING_BASE + bytes;
  const have = (<usize>memory.size()) << 16;
  if (need > have) {
    const pages = <i32>((need - have + 0xffff) >> 16);
    if (memory.grow(pages) < 0) return 0;
  }
  return STAGING_BASE;
}

export function stagingBase(): usize { return STAGING_BASE; }
export function scratchBase(): usize { return SCRATCH_BASE; }
export function stateBase(): usize { return STATE_BASE; }

/** True when static data fits below STATE_BASE (checked by the host at load). */
export function layoutOk(): bool { return __heap_base <= STATE_BASE; }
