// Register kernels: XSAVE compacted <-> standard form conversion, and packing of
// register sets (user_regs_struct + FXSAVE) into framed, checksummed REGS/FPU
// records. Specified in docs/KERNELS.md ("Registers").

import { SECRET, avalanche as aval, mulFold64 as fold, xxh3_64, xxh3UpdateRaw } from './xxh3';
import { slotPtr } from './abi';

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
// Output: REGS record (16-byte header {KIND_REGS, 0, 216, csum} + 216) then FPU
// record ({KIND_FPU, 0, 512, csum} + 512) = 760 bytes per entry.
// csum = XXH3-64(payload || header[0..8]). To hash that contiguously without a
// copy, the 8 header bytes are written just after the payload (where the next
// header goes, overwritten later); only the last FPU record uses a side buffer.

const REGS_LEN: usize = 216;
const FPU_LEN: usize = 512;
const RAW: usize = REGS_LEN + FPU_LEN; // 728
const REC: usize = 16 + REGS_LEN + 16 + FPU_LEN; // 760
/** Record kinds of REGS and FPU (src/schema.ts K.REGS, K.FPU; test/schema.test.ts checks them). */
const KIND_REGS: u64 = 0x0211;
const KIND_FPU: u64 = 0x0212;
const HDR_REGS: u64 = KIND_REGS | (<u64>REGS_LEN << 32);
const HDR_FPU: u64 = KIND_FPU | (<u64>FPU_LEN << 32);

/** Side buffer for the last record: 512 payload + 8 header bytes. */
const SIDE: usize = memory.data(528, 16);

// The checksums of the two records are XXH3-64 of fixed lengths (224 = 216 + 8
// and 520 = 512 + 8 bytes), computed here by specialised, fully unrolled forms
// of the XXH3 short (129..240) and long paths: every secret offset is a
// constant, the trailing header bytes come from a register (no stores into the
// next record), and the FXSAVE area is copied by the same loads that hash it.

/** The default XXH3 secret (kSecret), from xxh3.ts. */
const KSECRET: usize = SECRET;

/** Secret words of the long-path merge, paired as fold2 lanes: (s11, s27), (s19, s35), (s43, s59), (s51, s67). */
const MERGE_KEYS: usize = memory.data(64, 16);
store<u64>(MERGE_KEYS, load<u64>(KSECRET + 11)); store<u64>(MERGE_KEYS + 8, load<u64>(KSECRET + 27));
store<u64>(MERGE_KEYS + 16, load<u64>(KSECRET + 19)); store<u64>(MERGE_KEYS + 24, load<u64>(KSECRET + 35));
store<u64>(MERGE_KEYS + 32, load<u64>(KSECRET + 43)); store<u64>(MERGE_KEYS + 40, load<u64>(KSECRET + 59));
store<u64>(MERGE_KEYS + 48, load<u64>(KSECRET + 51)); store<u64>(MERGE_KEYS + 56, load<u64>(KSECRET + 67));

// @ts-ignore: decorator
@inline const XP64_1: u64 = 0x9E3779B185EBCA87;


/** mix16 of XXH3 on the 16 bytes at p with the secret at KSECRET + so. */
// @ts-ignore: decorator
@inline function mixAt(p: usize, so: usize): u64 {
  return fold(load<u64>(p) ^ load<u64>(KSECRET + so), load<u64>(p, 8) ^ load<u64>(KSECRET + so, 8));
}

/** Sum over both lanes of fold(a_lane, b_lane): two 64x64->128 products at once from four
 *  32x32->64 extended multiplies, returned as the per-lane values lo ^ hi (add the lanes). */
// @ts-ignore: decorator
@inline function fold2(a: v128, b: v128): v128 {
  const ae = i32x4.shuffle(a, a, 0, 2, 1, 3); // aLo0 aLo1 aHi0 aHi1
  const be = i32x4.shuffle(b, b, 0, 2, 1, 3); // bLo0 bLo1 bHi0 bHi1
  const bs = i32x4.shuffle(b, b, 1, 3, 0, 2); // bHi0 bHi1 bLo0 bLo1
  const ll = i64x2.extmul_low_i32x4_u(ae, be);
  const hh = i64x2.extmul_high_i32x4_u(ae, be);
  const lh = i64x2.extmul_low_i32x4_u(ae, bs);
  const hl = i64x2.extmul_high_i32x4_u(ae, bs);
  const m32 = i64x2.splat(0xFFFFFFFF);
  const cross = i64x2.add(i64x2.add(i64x2.shr_u(ll, 32), v128.and(hl, m32)), lh);
  const hi = i64x2.add(i64x2.add(i64x2.shr_u(hl, 32), i64x2.shr_u(cross, 32)), hh);
  const lo = v128.or(i64x2.shl(cross, 32), v128.and(ll, m32));
  return v128.xor(lo, hi);
}

/** mix16 of two 16-byte pieces (at p and q, secrets at so and to) as the lanes of fold2. */
// @ts-ignore: decorator
@inline function mix2(p: usize, so: usize, q: usize, to: usize): v128 {
  const x = v128.xor(v128.load(p), v128.load(KSECRET + so)); // (a0, b0)
  const y = v128.xor(v128.load(q), v128.load(KSECRET + to)); // (a1, b1)
  return fold2(i64x2.shuffle(x, y, 0, 2), i64x2.shuffle(x, y, 1, 3));
}

// @ts-ignore: decorator
@inline function lanesSum(v: v128): u64 { return i64x2.extract_lane(v, 0) + i64x2.extract_lane(v, 1); }

/** XXH3-64 of the 216 bytes at p followed by the 8 bytes of `hdr` (224 bytes: the 129..240 path). */
// @ts-ignore: decorator
@inline function hashRegs(p: usize, hdr: u64): u64 {
  let v = i64x2.add(i64x2.add(mix2(p, 0, p + 16, 16), mix2(p + 32, 32, p + 48, 48)),
    i64x2.add(mix2(p + 64, 64, p + 80, 80), mix2(p + 96, 96, p + 112, 112)));
  let acc: u64 = aval(<u64>224 * XP64_1 + lanesSum(v));
  // rounds 8..12, then round 13 (bytes 208..223, secret 83) and the last 16 bytes (208..223,
  // secret 119): both read the header word
  const w = i64x2.replace_lane(v128.load64_zero(p + 208), 1, hdr);
  const r13 = v128.xor(w, v128.load(KSECRET + 83)), rl = v128.xor(w, v128.load(KSECRET + 119));
  v = i64x2.add(i64x2.add(mix2(p + 128, 3, p + 144, 19), mix2(p + 160, 35, p + 176, 51)),
    fold2(i64x2.shuffle(r13, rl, 0, 2), i64x2.shuffle(r13, rl, 1, 3)));
  acc += lanesSum(v) + fold(load<u64>(p, 192) ^ load<u64>(KSECRET + 67), load<u64>(p, 200) ^ load<u64>(KSECRET + 75));
  return aval(acc);
}

/** One stripe of the XXH3 long path into the lane-swapped accumulators (see accRun in xxh3.ts). */
// @ts-ignore: decorator
@inline function stripeAcc(a: v128, x0: v128, x1: v128, so: usize, lo: bool): v128 {
  const k0 = v128.xor(x0, v128.load(KSECRET + so)), k1 = v128.xor(x1, v128.load(KSECRET + so, 16));
  const l = i32x4.shuffle(k0, k1, 2, 0, 6, 4), h = i32x4.shuffle(k0, k1, 3, 1, 7, 5);
  return lo ? i64x2.extmul_low_i32x4_u(l, h) : i64x2.extmul_high_i32x4_u(l, h);
}

/** Copy the 512-byte FXSAVE area s -> d and return XXH3-64 of it followed by the 8 bytes of `hdr`
 *  (520 bytes: eight stripes, then the last 64 bytes, then the merge; no scrambling). */
function copyHashFpu(s: usize, d: usize, hdr: u64): u64 {
  // initial accumulators, lane-swapped: (acc1, acc0), (acc3, acc2), ...
  let a0 = i64x2(0x9E3779B185EBCA87, 0xC2B2AE3D);
  let a1 = i64x2(0x165667B19E3779F9, 0xC2B2AE3D27D4EB4F);
  let a2 = i64x2(0x85EBCA77, 0x85EBCA77C2B2AE63);
  let a3 = i64x2(0x9E3779B1, 0x27D4EB2F165667C5);
  for (let j: usize = 0; j < 8; j++) {
    const p = s + (j << 6), q = d + (j << 6), so = j << 3;
    const x0 = v128.load(p), x1 = v128.load(p, 16), x2 = v128.load(p, 32), x3 = v128.load(p, 48);
    v128.store(q, x0); v128.store(q, x1, 16); v128.store(q, x2, 32); v128.store(q, x3, 48);
    const k0 = v128.xor(x0, v128.load(KSECRET + so)), k1 = v128.xor(x1, v128.load(KSECRET + so, 16));
    const k2 = v128.xor(x2, v128.load(KSECRET + so, 32)), k3 = v128.xor(x3, v128.load(KSECRET + so, 48));
    a0 = i64x2.add(a0, x0); a1 = i64x2.add(a1, x1); a2 = i64x2.add(a2, x2); a3 = i64x2.add(a3, x3);
    const l01 = i32x4.shuffle(k0, k1, 2, 0, 6, 4), h01 = i32x4.shuffle(k0, k1, 3, 1, 7, 5);
    const l23 = i32x4.shuffle(k2, k3, 2, 0, 6, 4), h23 = i32x4.shuffle(k2, k3, 3, 1, 7, 5);
    a0 = i64x2.add(a0, i64x2.extmul_low_i32x4_u(l01, h01));
    a1 = i64x2.add(a1, i64x2.extmul_high_i32x4_u(l01, h01));
    a2 = i64x2.add(a2, i64x2.extmul_low_i32x4_u(l23, h23));
    a3 = i64x2.add(a3, i64x2.extmul_high_i32x4_u(l23, h23));
  }
  // last stripe: bytes 456..519 (payload 456..511, then the header word), secret + 121
  {
    const x0 = v128.load(s, 456), x1 = v128.load(s, 472), x2 = v128.load(s, 488);
    const x3 = i64x2.replace_lane(v128.load64_zero(s + 504), 1, hdr);
    const k0 = v128.xor(x0, v128.load(KSECRET + 121)), k1 = v128.xor(x1, v128.load(KSECRET + 137));
    const k2 = v128.xor(x2, v128.load(KSECRET + 153)), k3 = v128.xor(x3, v128.load(KSECRET + 169));
    a0 = i64x2.add(a0, x0); a1 = i64x2.add(a1, x1); a2 = i64x2.add(a2, x2); a3 = i64x2.add(a3, x3);
    const l01 = i32x4.shuffle(k0, k1, 2, 0, 6, 4), h01 = i32x4.shuffle(k0, k1, 3, 1, 7, 5);
    const l23 = i32x4.shuffle(k2, k3, 2, 0, 6, 4), h23 = i32x4.shuffle(k2, k3, 3, 1, 7, 5);
    a0 = i64x2.add(a0, i64x2.extmul_low_i32x4_u(l01, h01));
    a1 = i64x2.add(a1, i64x2.extmul_high_i32x4_u(l01, h01));
    a2 = i64x2.add(a2, i64x2.extmul_low_i32x4_u(l23, h23));
    a3 = i64x2.add(a3, i64x2.extmul_high_i32x4_u(l23, h23));
  }
  // merge (secret + 11): fold(acc[2i] ^ s[11 + 16i], acc[2i+1] ^ s[19 + 16i]) for i = 0..3;
  // lanes are swapped (lane 1 holds acc[2i]): pair the folds two by two
  const ka = v128.load(MERGE_KEYS), kb = v128.load(MERGE_KEYS, 16), kc = v128.load(MERGE_KEYS, 32), kd = v128.load(MERGE_KEYS, 48);
  const v = i64x2.add(
    fold2(v128.xor(i64x2.shuffle(a0, a1, 1, 3), ka), v128.xor(i64x2.shuffle(a0, a1, 0, 2), kb)),
    fold2(v128.xor(i64x2.shuffle(a2, a3, 1, 3), kc), v128.xor(i64x2.shuffle(a2, a3, 0, 2), kd)));
  const r: u64 = <u64>520 * XP64_1 + lanesSum(v);
  return aval(r);
}

/** Copy the 216-byte user_regs_struct s -> d (13 vectors and a word). */
// @ts-ignore: decorator
@inline function copyRegs(s: usize, d: usize): void {
  for (let o: usize = 0; o < 208; o += 16) v128.store(d + o, v128.load(s + o));
  store<u64>(d, load<u64>(s, 208), 208);
}

/** Pack one register set (728 bytes at s) into its REGS + FPU records (760 bytes at d). */
// @ts-ignore: decorator
@inline function packOne(s: usize, d: usize): void {
  copyRegs(s, d + 16);
  const c1 = hashRegs(d + 16, HDR_REGS);
  store<u64>(d, HDR_REGS);
  store<u64>(d, c1, 8);
  const f = d + 16 + REGS_LEN;
  const c2 = copyHashFpu(s + REGS_LEN, f + 16, HDR_FPU);
  store<u64>(f, HDR_FPU);
  store<u64>(f, c2, 8);
}

export function regs_pack(src: usize, n: u32, dst: usize): u32 {
  for (let i: u32 = 0; i < n; i++) packOne(src + <usize>i * RAW, dst + <usize>i * REC);
  return n * <u32>REC;
}

/** regs_pack of one set whose user_regs_struct (216 bytes) and FXSAVE area (512 bytes) lie at
 *  separate addresses, straight into its records at dst (760 bytes); both record headers are then
 *  fed to hash slot imgSlot (the image checksum). */
export function regs_pack1(regs: usize, fpu: usize, dst: usize, imgSlot: u32): void {
  copyRegs(regs, dst + 16);
  const c1 = hashRegs(dst + 16, HDR_REGS);
  store<u64>(dst, HDR_REGS);
  store<u64>(dst, c1, 8);
  const f = dst + 16 + REGS_LEN;
  const c2 = copyHashFpu(fpu, f + 16, HDR_FPU);
  store<u64>(f, HDR_FPU);
  store<u64>(f, c2, 8);
  const st = slotPtr(imgSlot);
  xxh3UpdateRaw(st, dst, 16);
  xxh3UpdateRaw(st, f, 16);
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

