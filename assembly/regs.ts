// Register kernels: XSAVE compacted <-> standard form conversion, and packing of
// register sets (user_regs_struct + FXSAVE) into framed, checksummed REGS/FPU
// records. Specified in docs/KERNELS.md ("Registers").

import { xxh3_64 } from './xxh3';

// ---------------------------------------------------------------------------
// XSAVE component table (architectural sizes; Intel standard-form offsets).
// Index = state component number; 0 and 1 live in the 512-byte legacy area.

/** Components crimg knows: 0-7 (x87, SSE, AVX, MPX x2, opmask, ZMM_Hi256, Hi16_ZMM), 9 (PKRU), 17-18 (AMX). */
const KNOWN: u64 = 0x602FF;
/** Components that start on a 64-byte boundary in the compacted form (CPUID.(0DH,i):ECX[1]). */
const ALIGN64: u64 = (<u64>1 << 17) | (<u64>1 << 18);
const BIT63: u64 = <u64>1 << 63;
const LEGACY: usize = 512;
const HDR_END: usize = 576;

const STD_OFF: usize = memory.data<u16>([
  0, 160, 576, 960, 1024, 1088, 1152, 1664, 0, 2688, 0, 0, 0, 0, 0, 0, 0, 2752, 2816,
], 16);
const SIZE: usize = memory.data<u16>([
  160, 256, 256, 64, 64, 64, 512, 1024, 0, 8, 0, 0, 0, 0, 0, 0, 0, 64, 8192,
], 16);

// @ts-ignore: decorator
@inline function stdOff(i: u32): usize { return <usize>load<u16>(STD_OFF + (<usize>i << 1)); }
// @ts-ignore: decorator
@inline function compSize(i: u32): usize { return <usize>load<u16>(SIZE + (<usize>i << 1)); }

/** Standard-form size covering the components in `comps` (known bits only). */
function stdSize(comps: u64): usize {
  let end = HDR_END;
  let m = comps & ~(<u64>3);
  while (m != 0) {
    const i = <u32>ctz(m);
    m &= m - 1;
    const e = stdOff(i) + compSize(i);
    if (e > end) end = e;
  }
  return end;
}

/** Compacted-form size for `comps`. */
function compSizeAll(comps: u64): usize {
  let off = HDR_END;
  let m = comps & ~(<u64>3);
  while (m != 0) {
    const j = <u32>ctz(m);
    m &= m - 1;
    if ((ALIGN64 >> j) & 1) off = (off + 63) & ~(<usize>63);
    off += compSize(j);
  }
  return off;
}

/** Standard-form XSAVE size for the components enabled in xcr0; 0 if xcr0 has unknown bits. */
export function xsave_standard_size(xcr0: u64): u32 {
  if (xcr0 & ~KNOWN) return 0;
  return <u32>stdSize(xcr0);
}

/** Expand a compacted XSAVE area to standard form. Returns the standard size or 0 if malformed. */
export function xsave_to_standard(src: usize, srcLen: u32, dst: usize, dstCap: u32): u32 {
  if (<usize>srcLen < HDR_END) return 0;
  const xstate = load<u64>(src, 512);
  const xcomp = load<u64>(src, 520);
  if (!(xcomp & BIT63)) return 0;
  const comps = xcomp & ~BIT63;
  if (comps & ~KNOWN) return 0;
  if (xstate & ~comps) return 0;
  if (compSizeAll(comps) > <usize>srcLen) return 0;
  const size = stdSize(comps);
  if (size > <usize>dstCap) return 0;
  memory.copy(dst, src, LEGACY);
  store<u64>(dst, xstate, 512);
  memory.fill(dst + 520, 0, size - 520);
  let off = HDR_END;
  let m = comps & ~(<u64>3);
  while (m != 0) {
    const j = <u32>ctz(m);
    m &= m - 1;
    if ((ALIGN64 >> j) & 1) off = (off + 63) & ~(<usize>63);
    const n = compSize(j);
    if ((xstate >> j) & 1) memory.copy(dst + stdOff(j), src + off, n);
    off += n;
  }
  return <u32>size;
}

/** Compact a standard-form XSAVE area for the components in xcompBv. Returns the compacted size or 0. */
export function xsave_to_compacted(src: usize, srcLen: u32, xcompBv: u64, dst: usize, dstCap: u32): u32 {
  const comps = xcompBv & ~BIT63;
  if (comps & ~KNOWN) return 0;
  if (<usize>srcLen < HDR_END) return 0;
  const xstate = load<u64>(src, 512);
  if (load<u64>(src, 520) != 0) return 0;
  if (xstate & ~comps) return 0;
  if (stdSize(xstate) > <usize>srcLen) return 0;
  const size = compSizeAll(comps);
  if (size > <usize>dstCap) return 0;
  memory.copy(dst, src, LEGACY);
  store<u64>(dst, xstate, 512);
  store<u64>(dst, comps | BIT63, 520);
  memory.fill(dst + 528, 0, size - 528);
  let off = HDR_END;
  let m = comps & ~(<u64>3);
  while (m != 0) {
    const j = <u32>ctz(m);
    m &= m - 1;
    if ((ALIGN64 >> j) & 1) off = (off + 63) & ~(<usize>63);
    const n = compSize(j);
    if ((xstate >> j) & 1) memory.copy(dst + off, src + stdOff(j), n);
    off += n;
  }
  return <u32>size;
}

// ---------------------------------------------------------------------------
// Register sets <-> REGS + FPU records.
//
// Input entry: 216 bytes user_regs_struct + 512 bytes FXSAVE = 728 bytes.
// Output: REGS record (16-byte header {0x0211, 0, 216, csum} + 216) then FPU
// record ({0x0212, 0, 512, csum} + 512) = 760 bytes per entry.
// csum = XXH3-64(payload || header[0..8]). To hash that contiguously without a
// copy, the 8 header bytes are written just after the payload (where the next
// header goes, overwritten later); only the last FPU record uses a side buffer.

const REGS_LEN: usize = 216;
const FPU_LEN: usize = 512;
const RAW: usize = REGS_LEN + FPU_LEN; // 728
const REC: usize = 16 + REGS_LEN + 16 + FPU_LEN; // 760
const HDR_REGS: u64 = 0x0211 | (<u64>REGS_LEN << 32);
const HDR_FPU: u64 = 0x0212 | (<u64>FPU_LEN << 32);

/** Side buffer for the last record: 512 payload + 8 header bytes. */
const SIDE: usize = memory.data(528, 16);

export function regs_pack(src: usize, n: u32, dst: usize): u32 {
  for (let i: u32 = 0; i < n; i++) {
    const s = src + <usize>i * RAW;
    const d = dst + <usize>i * REC;
    // REGS: header at d, payload at d+16..d+232; the FPU header follows at d+232.
    memory.copy(d + 16, s, REGS_LEN);
    store<u64>(d + 16 + REGS_LEN, HDR_REGS);
    const c1 = xxh3_64(d + 16, REGS_LEN + 8);
    store<u64>(d, HDR_REGS);
    store<u64>(d, c1, 8);
    // FPU: header at d+232, payload at d+248..d+760.
    const f = d + 16 + REGS_LEN;
    memory.copy(f + 16, s + REGS_LEN, FPU_LEN);
    let c2: u64;
    if (i + 1 < n) {
      store<u64>(f + 16 + FPU_LEN, HDR_FPU); // next entry's header slot
      c2 = xxh3_64(f + 16, FPU_LEN + 8);
    } else {
      memory.copy(SIDE, s + REGS_LEN, FPU_LEN);
      store<u64>(SIDE + FPU_LEN, HDR_FPU);
      c2 = xxh3_64(SIDE, FPU_LEN + 8);
    }
    store<u64>(f, HDR_FPU);
    store<u64>(f, c2, 8);
  }
  return n * <u32>REC;
}

/** Parse n REGS+FPU pairs at src into 728-byte entries at dst (no overlap).
 *  Returns -1 on success, else the index of the first bad pair (dst contents
 *  from that entry on are unspecified). */
export function regs_unpack(src: usize, n: u32, dst: usize): i32 {
  for (let i: u32 = 0; i < n; i++) {
    const s = src + <usize>i * REC;
    const d = dst + <usize>i * RAW;
    if (load<u64>(s) != HDR_REGS) return <i32>i;
    const f = s + 16 + REGS_LEN;
    if (load<u64>(f) != HDR_FPU) return <i32>i;
    // REGS payload to d, header bytes after it (overwritten by the FXSAVE copy).
    memory.copy(d, s + 16, REGS_LEN);
    store<u64>(d + REGS_LEN, HDR_REGS);
    if (xxh3_64(d, REGS_LEN + 8) != load<u64>(s, 8)) return <i32>i;
    memory.copy(d + REGS_LEN, f + 16, FPU_LEN);
    let c2: u64;
    if (i + 1 < n) {
      store<u64>(d + RAW, HDR_FPU); // next entry's first bytes, rewritten next round
      c2 = xxh3_64(d + REGS_LEN, FPU_LEN + 8);
    } else {
      memory.copy(SIDE, f + 16, FPU_LEN);
      store<u64>(SIDE + FPU_LEN, HDR_FPU);
      c2 = xxh3_64(SIDE, FPU_LEN + 8);
    }
    if (c2 != load<u64>(f, 8)) return <i32>i;
  }
  return -1;
}
