// XXH3-64 (seed 0, default 192-byte secret): one-shot and streaming.
//
// Written from the XXH3 specification (xxHash doc/xxhash_spec.md). The long
// path (> 240 bytes) runs on v128: each 16-byte piece of a stripe contributes
// lo32(d^k) * hi32(d^k) (i64x2.extmul of two i32x4 shuffles, two pieces at a
// time) to its own lanes and its raw value to the swapped lane. Inside a run
// of stripes each accumulator vector is kept lane-swapped, so the raw values
// add in directly and no vector is spent on separate sums (see accRun).
//
// consume() keeps the accumulators in registers for a whole call and
// scrambles them there. The loop is bound by instruction throughput, not by
// memory: V8 lowers every extmul to two unpacks and a pmuludq, so a 64-byte
// stripe is about 28 vector instructions (plus 8 loads and the loop) however
// the shuffles are arranged; measured on the bench machine, each costs ~0.1 ns
// and the loop runs at ~22 GB/s in cache. (Moving lanes 6..7 to the scalar
// units, as xxHash's NEON path does, measured within noise of this: the scalar
// lanes cost as many instructions as they save.) Packing kernels hash while
// they copy: xxh3UpdateCopyRaw stores each stripe from the registers that hash it.
//
// Streaming state (SLOT_BYTES = 1024 bytes at slotPtr(slot)):
//   +0    acc[8]       u64 accumulators
//   +64   totalLen     u64 bytes fed since init
//   +72   bufLen       u32 bytes in buf (0..256, >= 1 once anything was consumed)
//   +76   stripes      u32 stripes accumulated in the current block (0..15)
//   +128  prev[64]     the last 64 consumed bytes (the final stripe may reach into them)
//   +256  buf[256]     unconsumed input, starting at a stripe boundary
//   +512  scratch      digest works on a copy of acc here (+512) and builds a
//                      last stripe here (+576); the state itself is untouched
// Invariant: stripes are consumed only when at least one byte follows them, so
// the final stripe (the last 64 input bytes) is always handled by the digest.
import { PAGE, slotPtr } from './abi';

// @ts-ignore: decorator
@inline const P32_1: u64 = 0x9E3779B1;
// @ts-ignore: decorator
@inline const P32_2: u64 = 0x85EBCA77;
// @ts-ignore: decorator
@inline const P32_3: u64 = 0xC2B2AE3D;
// @ts-ignore: decorator
@inline const P64_1: u64 = 0x9E3779B185EBCA87;
// @ts-ignore: decorator
@inline const P64_2: u64 = 0xC2B2AE3D27D4EB4F;
// @ts-ignore: decorator
@inline const P64_3: u64 = 0x165667B19E3779F9;
// @ts-ignore: decorator
@inline const P64_4: u64 = 0x85EBCA77C2B2AE63;
// @ts-ignore: decorator
@inline const P64_5: u64 = 0x27D4EB2F165667C5;
// @ts-ignore: decorator
@inline const PMX_1: u64 = 0x165667919E3779F9;
// @ts-ignore: decorator
@inline const PMX_2: u64 = 0x9FB21C651E98DF25;

// @ts-ignore: decorator
@inline const STRIPE: usize = 64;
// @ts-ignore: decorator
@inline const STRIPES_PER_BLOCK: u32 = 16; // (192 - 64) / 8
// @ts-ignore: decorator
@inline const BLOCK: usize = 1024;
// @ts-ignore: decorator
@inline const BUF_SIZE: usize = 256;

// State field offsets inside a slot.
// @ts-ignore: decorator
@inline const S_ACC: usize = 0;
// @ts-ignore: decorator
@inline const S_TOTAL: usize = 64;
// @ts-ignore: decorator
@inline const S_BUFLEN: usize = 72;
// @ts-ignore: decorator
@inline const S_STRIPES: usize = 76;
// @ts-ignore: decorator
@inline const S_PREV: usize = 128;
// @ts-ignore: decorator
@inline const S_BUF: usize = 256;
// @ts-ignore: decorator
@inline const S_TMPACC: usize = 512;
// @ts-ignore: decorator
@inline const S_TMPSTRIPE: usize = 576;

/** The default XXH3 secret (kSecret), 192 bytes, 16-byte aligned static data. */
export const SECRET: usize = memory.data<u8>([
  0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
  0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
  0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
  0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
  0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
  0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
  0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
  0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
  0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
  0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
  0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
  0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
], 16);

/** Initial accumulator values of the long path. */
const ACC_INIT: usize = memory.data<u64>([P32_3, P64_1, P64_2, P64_3, P64_4, P32_2, P64_5, P32_1], 16);

// ---------------------------------------------------------------- scalar helpers

/** Low 64 bits xor high 64 bits of the 128-bit product a * b. */
// @ts-ignore: decorator
@inline export function mulFold64(a: u64, b: u64): u64 {
  const aLo = a & 0xFFFFFFFF, aHi = a >> 32;
  const bLo = b & 0xFFFFFFFF, bHi = b >> 32;
  const ll = aLo * bLo, hl = aHi * bLo, lh = aLo * bHi, hh = aHi * bHi;
  const cross = (ll >> 32) + (hl & 0xFFFFFFFF) + lh; // < 2^64, no overflow
  const hi = (hl >> 32) + (cross >> 32) + hh;
  const lo = (cross << 32) | (ll & 0xFFFFFFFF);
  return lo ^ hi;
}

// @ts-ignore: decorator
@inline export function avalanche(h: u64): u64 {
  h ^= h >> 37;
  h *= PMX_1;
  return h ^ (h >> 32);
}

// @ts-ignore: decorator
@inline function avalancheXXH64(h: u64): u64 {
  h ^= h >> 33;
  h *= P64_2;
  h ^= h >> 29;
  h *= P64_3;
  return h ^ (h >> 32);
}

// @ts-ignore: decorator
@inline function mix16(p: usize, s: usize): u64 {
  return mulFold64(load<u64>(p) ^ load<u64>(s), load<u64>(p, 8) ^ load<u64>(s, 8));
}

/** XXH3-64 of 0..240 bytes. */
function hashShort(p: usize, len: usize): u64 {
  const S = SECRET;
  if (len <= 16) {
    if (len > 8) {
      const lo = load<u64>(p) ^ (load<u64>(S, 24) ^ load<u64>(S, 32));
      const hi = load<u64>(p + len - 8) ^ (load<u64>(S, 40) ^ load<u64>(S, 48));
      return avalanche(<u64>len + bswap<u64>(lo) + hi + mulFold64(lo, hi));
    }
    if (len >= 4) {
      const first = <u64>load<u32>(p), last = <u64>load<u32>(p + len - 4);
      let h = (last | (first << 32)) ^ (load<u64>(S, 8) ^ load<u64>(S, 16));
      h ^= rotl<u64>(h, 49) ^ rotl<u64>(h, 24);
      h *= PMX_2;
      h ^= (h >> 35) + <u64>len;
      h *= PMX_2;
      return h ^ (h >> 28);
    }
    if (len > 0) {
      const c1 = <u32>load<u8>(p), c2 = <u32>load<u8>(p + (len >> 1)), c3 = <u32>load<u8>(p + len - 1);
      const combined = (c1 << 16) | (c2 << 24) | c3 | (<u32>len << 8);
      return avalancheXXH64(<u64>combined ^ <u64>(load<u32>(S) ^ load<u32>(S, 4)));
    }
    return avalancheXXH64(load<u64>(S, 56) ^ load<u64>(S, 64));
  }
  let acc = <u64>len * P64_1;
  if (len <= 128) {
    if (len > 32) {
      if (len > 64) {
        if (len > 96) {
          acc += mix16(p + 48, S + 96);
          acc += mix16(p + len - 64, S + 112);
        }
        acc += mix16(p + 32, S + 64);
        acc += mix16(p + len - 48, S + 80);
      }
      acc += mix16(p + 16, S + 32);
      acc += mix16(p + len - 32, S + 48);
    }
    acc += mix16(p, S);
    acc += mix16(p + len - 16, S + 16);
    return avalanche(acc);
  }
  // 129..240
  for (let i: usize = 0; i < 8; i++) acc += mix16(p + 16 * i, S + 16 * i);
  acc = avalanche(acc);
  const rounds = len >> 4;
  for (let i: usize = 8; i < rounds; i++) acc += mix16(p + 16 * i, S + 16 * (i - 8) + 3);
  acc += mix16(p + len - 16, S + 119);
  return avalanche(acc);
}

// ---------------------------------------------------------------- small copies

/** Copy n bytes (n <= 256) between non-overlapping ranges without the
 *  memory.copy call, which costs more than the copy for such sizes. Reads and
 *  writes stay inside [s, s + n) and [d, d + n) (overlapping tail chunks). */
function smallCopy(d: usize, s: usize, n: usize): void {
  if (n >= 16) {
    const last = v128.load(s + n - 16);
    let i: usize = 0;
    while (i + 16 < n) {
      v128.store(d + i, v128.load(s + i));
      i += 16;
    }
    v128.store(d + n - 16, last);
  } else if (n >= 8) {
    const a = load<u64>(s), b = load<u64>(s + n - 8);
    store<u64>(d, a);
    store<u64>(d + n - 8, b);
  } else if (n >= 4) {
    const a = load<u32>(s), b = load<u32>(s + n - 4);
    store<u32>(d, a);
    store<u32>(d + n - 4, b);
  } else {
    for (let i: usize = 0; i < n; i++) store<u8>(d + i, load<u8>(s + i));
  }
}

// @ts-ignore: decorator
@inline function copy64(d: usize, s: usize): void {
  const a = v128.load(s), b = v128.load(s, 16), c = v128.load(s, 32), e = v128.load(s, 48);
  v128.store(d, a);
  v128.store(d, b, 16);
  v128.store(d, c, 32);
  v128.store(d, e, 48);
}

// ---------------------------------------------------------------- v128 long path

/** Accumulate n consecutive stripes at p into acc[8] at `acc`, the stripe j
 *  using the secret at sec + 8j. No scrambling.
 *
 *  XXH3 adds lo32(d^k) * hi32(d^k) to lane i and the raw d to lane i ^ 1. The
 *  loop keeps each accumulator vector with its two lanes swapped, so the raw
 *  data adds straight in (no per-stripe swap, no separate sum vectors: fewer
 *  live registers, no spills) and the products come out pre-swapped from the
 *  shuffles that split halves (lanes 2,0 / 3,1 instead of 0,2 / 1,3). */
function accRun(acc: usize, p: usize, n: usize, sec: usize): void {
  let a0 = v128.load(acc), a1 = v128.load(acc, 16), a2 = v128.load(acc, 32), a3 = v128.load(acc, 48);
  a0 = i64x2.shuffle(a0, a0, 1, 0); a1 = i64x2.shuffle(a1, a1, 1, 0);
  a2 = i64x2.shuffle(a2, a2, 1, 0); a3 = i64x2.shuffle(a3, a3, 1, 0);
  const end = p + n * STRIPE;
  while (p < end) {
    const x0 = v128.load(p), x1 = v128.load(p, 16), x2 = v128.load(p, 32), x3 = v128.load(p, 48);
    const k0 = v128.xor(x0, v128.load(sec)), k1 = v128.xor(x1, v128.load(sec, 16));
    const k2 = v128.xor(x2, v128.load(sec, 32)), k3 = v128.xor(x3, v128.load(sec, 48));
    a0 = i64x2.add(a0, x0); a1 = i64x2.add(a1, x1);
    a2 = i64x2.add(a2, x2); a3 = i64x2.add(a3, x3);
    const l01 = i32x4.shuffle(k0, k1, 2, 0, 6, 4), h01 = i32x4.shuffle(k0, k1, 3, 1, 7, 5);
    const l23 = i32x4.shuffle(k2, k3, 2, 0, 6, 4), h23 = i32x4.shuffle(k2, k3, 3, 1, 7, 5);
    a0 = i64x2.add(a0, i64x2.extmul_low_i32x4_u(l01, h01));
    a1 = i64x2.add(a1, i64x2.extmul_high_i32x4_u(l01, h01));
    a2 = i64x2.add(a2, i64x2.extmul_low_i32x4_u(l23, h23));
    a3 = i64x2.add(a3, i64x2.extmul_high_i32x4_u(l23, h23));
    p += STRIPE;
    sec += 8;
  }
  v128.store(acc, i64x2.shuffle(a0, a0, 1, 0));
  v128.store(acc, i64x2.shuffle(a1, a1, 1, 0), 16);
  v128.store(acc, i64x2.shuffle(a2, a2, 1, 0), 32);
  v128.store(acc, i64x2.shuffle(a3, a3, 1, 0), 48);
}

/** acc = (acc ^ (acc >> 47) ^ secret[128..192]) * PRIME32_1, lane-wise (s: that secret piece). */
// @ts-ignore: decorator
@inline function scr(a: v128, s: v128): v128 {
  return i64x2.mul(v128.xor(v128.xor(a, i64x2.shr_u(a, 47)), s), i64x2.splat(P32_1));
}

/** The scramble secret (bytes 128..192) with the two u64 lanes of each 16-byte
 *  piece swapped: scrambling lane-swapped accumulators with it gives the
 *  lane-swapped scrambled accumulators (the multiply is by a splat). */
const SCRAMBLE_SW: usize = memory.data<u8>([
  0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb, 0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3,
  0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e, 0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49,
  0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce, 0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc,
  0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e, 0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28,
], 16);

/** Accumulate ns whole stripes from p, continuing a block in which `c` stripes
 *  were already accumulated; scrambles at every block end. Returns the new c.
 *  One loop for all blocks: the accumulators stay in registers (lane-swapped,
 *  see accRun) for the whole call, the scramble runs on them in place. */
function consume(acc: usize, c: u32, p: usize, ns: usize): u32 {
  return consumeLoop(acc, c, p, 0, ns, false);
}

/** consume() that also copies the stripes from p to q (q <= p or disjoint):
 *  each stripe is loaded once, stored, and hashed from registers. */
function consumeCopy(acc: usize, c: u32, p: usize, q: usize, ns: usize): u32 {
  return consumeLoop(acc, c, p, q, ns, true);
}

/** The loop of consume and consumeCopy: inlined into each with `copy` constant, so neither pays for the other. */
// @ts-ignore: decorator
@inline function consumeLoop(acc: usize, c: u32, p: usize, q: usize, ns: usize, copy: bool): u32 {
  if (ns == 0) return c;
  let a0 = v128.load(acc), a1 = v128.load(acc, 16), a2 = v128.load(acc, 32), a3 = v128.load(acc, 48);
  a0 = i64x2.shuffle(a0, a0, 1, 0); a1 = i64x2.shuffle(a1, a1, 1, 0);
  a2 = i64x2.shuffle(a2, a2, 1, 0); a3 = i64x2.shuffle(a3, a3, 1, 0);
  let sec = SECRET + (<usize>c << 3);
  const secEnd = SECRET + (<usize>STRIPES_PER_BLOCK << 3);
  const end = p + ns * STRIPE;
  do {
    const x0 = v128.load(p), x1 = v128.load(p, 16), x2 = v128.load(p, 32), x3 = v128.load(p, 48);
    if (copy) {
      v128.store(q, x0); v128.store(q, x1, 16); v128.store(q, x2, 32); v128.store(q, x3, 48);
      q += STRIPE;
    }
    const k0 = v128.xor(x0, v128.load(sec)), k1 = v128.xor(x1, v128.load(sec, 16));
    const k2 = v128.xor(x2, v128.load(sec, 32)), k3 = v128.xor(x3, v128.load(sec, 48));
    a0 = i64x2.add(a0, x0); a1 = i64x2.add(a1, x1);
    a2 = i64x2.add(a2, x2); a3 = i64x2.add(a3, x3);
    const l01 = i32x4.shuffle(k0, k1, 2, 0, 6, 4), h01 = i32x4.shuffle(k0, k1, 3, 1, 7, 5);
    const l23 = i32x4.shuffle(k2, k3, 2, 0, 6, 4), h23 = i32x4.shuffle(k2, k3, 3, 1, 7, 5);
    a0 = i64x2.add(a0, i64x2.extmul_low_i32x4_u(l01, h01));
    a1 = i64x2.add(a1, i64x2.extmul_high_i32x4_u(l01, h01));
    a2 = i64x2.add(a2, i64x2.extmul_low_i32x4_u(l23, h23));
    a3 = i64x2.add(a3, i64x2.extmul_high_i32x4_u(l23, h23));
    p += STRIPE;
    sec += 8;
    if (sec == secEnd) {
      const s = SCRAMBLE_SW;
      a0 = scr(a0, v128.load(s)); a1 = scr(a1, v128.load(s, 16));
      a2 = scr(a2, v128.load(s, 32)); a3 = scr(a3, v128.load(s, 48));
      sec = SECRET;
    }
  } while (p < end);
  v128.store(acc, i64x2.shuffle(a0, a0, 1, 0));
  v128.store(acc, i64x2.shuffle(a1, a1, 1, 0), 16);
  v128.store(acc, i64x2.shuffle(a2, a2, 1, 0), 32);
  v128.store(acc, i64x2.shuffle(a3, a3, 1, 0), 48);
  return <u32>((sec - SECRET) >> 3);
}

function mergeAccs(acc: usize, len: u64): u64 {
  const s = SECRET + 11;
  let r = len * P64_1;
  r += mulFold64(load<u64>(acc) ^ load<u64>(s), load<u64>(acc, 8) ^ load<u64>(s, 8));
  r += mulFold64(load<u64>(acc, 16) ^ load<u64>(s, 16), load<u64>(acc, 24) ^ load<u64>(s, 24));
  r += mulFold64(load<u64>(acc, 32) ^ load<u64>(s, 32), load<u64>(acc, 40) ^ load<u64>(s, 40));
  r += mulFold64(load<u64>(acc, 48) ^ load<u64>(s, 48), load<u64>(acc, 56) ^ load<u64>(s, 56));
  return avalanche(r);
}

/** Scratch accumulators of the one-shot long path (static, 16-byte aligned). */
const ONESHOT_ACC: usize = memory.data(64, 16);

function hashLong(p: usize, len: usize): u64 {
  const acc = ONESHOT_ACC;
  copy64(acc, ACC_INIT);
  // Every stripe that has at least one byte after it, then the last 64 bytes.
  consume(acc, 0, p, (len - 1) / STRIPE);
  accRun(acc, p + len - STRIPE, 1, SECRET + 121);
  return mergeAccs(acc, <u64>len);
}

/** One-shot XXH3-64 (seed 0) of [ptr, ptr + len). */
export function xxh3_64(ptr: usize, len: usize): u64 {
  return len <= 240 ? hashShort(ptr, len) : hashLong(ptr, len);
}

/** XXH3-64 of each of npages consecutive 4 KiB pages at ptr, as npages
 *  little-endian u64 at out (which must not overlap the pages): one call for a
 *  whole batch instead of one host call (and one BigInt) per page. */
export function xxh3_pages(ptr: usize, npages: u32, out: usize): void {
  for (let i: u32 = 0; i < npages; i++) {
    store<u64>(out + (<usize>i << 3), hashLong(ptr + <usize>i * PAGE, PAGE));
  }
}

// ---------------------------------------------------------------- streaming

/** Reset the streaming state at `st` (SLOT_BYTES bytes). */
export function xxh3InitRaw(st: usize): void {
  copy64(st + S_ACC, ACC_INIT);
  store<u64>(st + S_TOTAL, 0);
  store<u32>(st + S_BUFLEN, 0);
  store<u32>(st + S_STRIPES, 0);
}

/** Feed [p, p + n) to the streaming state at `st` (any n; st = slotPtr(slot)).
 *  Whole stripes are consumed straight from the input: a large update copies at
 *  most 63 bytes (to complete buf's last stripe) plus its last 1..64 bytes into
 *  buf. Other kernels call this to hash data they produce. */
export function xxh3UpdateRaw(st: usize, p: usize, n: usize): void {
  if (n == 0) return;
  store<u64>(st + S_TOTAL, load<u64>(st + S_TOTAL) + <u64>n);
  let b = <usize>load<u32>(st + S_BUFLEN);
  const buf = st + S_BUF;
  if (b + n <= BUF_SIZE) {
    smallCopy(buf + b, p, n);
    store<u32>(st + S_BUFLEN, <u32>(b + n));
    return;
  }
  // More than BUF_SIZE bytes are pending: stripes will be consumed.
  let c = load<u32>(st + S_STRIPES);
  if (b > 0) {
    // Complete the buffer's last stripe (fill <= BUF_SIZE - b < n, so input remains).
    const fill = (STRIPE - (b & (STRIPE - 1))) & (STRIPE - 1);
    smallCopy(buf + b, p, fill);
    p += fill;
    n -= fill;
    b += fill;
    c = consume(st + S_ACC, c, buf, b / STRIPE);
    copy64(st + S_PREV, buf + b - STRIPE);
  }
  if (n > STRIPE) {
    // Every whole stripe that has at least one byte after it, straight from the input.
    const ns = (n - 1) / STRIPE;
    c = consume(st + S_ACC, c, p, ns);
    p += ns * STRIPE;
    n -= ns * STRIPE;
    copy64(st + S_PREV, p - STRIPE);
  }
  smallCopy(buf, p, n); // 1..64 bytes remain
  store<u32>(st + S_BUFLEN, <u32>n);
  store<u32>(st + S_STRIPES, c);
}

/** Copy [p, p + n) to [q, q + n) and feed the bytes to the state at `st`, in
 *  one pass: the whole stripes consumed straight from the input are stored to
 *  q from the registers that hash them. Same result as a copy followed by
 *  xxh3UpdateRaw(st, q, n). The ranges must not overlap. */
export function xxh3UpdateCopyRaw(st: usize, q: usize, p: usize, n: usize): void {
  if (n == 0) return;
  let b = <usize>load<u32>(st + S_BUFLEN);
  if (b + n <= BUF_SIZE || n <= 2 * STRIPE) {
    memory.copy(q, p, n);
    xxh3UpdateRaw(st, q, n);
    return;
  }
  store<u64>(st + S_TOTAL, load<u64>(st + S_TOTAL) + <u64>n);
  const buf = st + S_BUF;
  let c = load<u32>(st + S_STRIPES);
  if (b > 0) {
    const fill = (STRIPE - (b & (STRIPE - 1))) & (STRIPE - 1);
    smallCopy(buf + b, p, fill);
    smallCopy(q, p, fill);
    p += fill;
    q += fill;
    n -= fill;
    b += fill;
    c = consume(st + S_ACC, c, buf, b / STRIPE);
    copy64(st + S_PREV, buf + b - STRIPE);
  }
  if (n > STRIPE) {
    const ns = (n - 1) / STRIPE;
    c = consumeCopy(st + S_ACC, c, p, q, ns);
    p += ns * STRIPE;
    q += ns * STRIPE;
    n -= ns * STRIPE;
    copy64(st + S_PREV, p - STRIPE);
  }
  smallCopy(buf, p, n); // 1..64 bytes remain
  smallCopy(q, p, n);
  store<u32>(st + S_BUFLEN, <u32>n);
  store<u32>(st + S_STRIPES, c);
}

/** Digest of everything fed to `st` since init. The state is not modified. */
export function xxh3DigestRaw(st: usize): u64 {
  const total = load<u64>(st + S_TOTAL);
  const buf = st + S_BUF;
  if (total <= 240) return hashShort(buf, <usize>total);
  const acc = st + S_TMPACC;
  copy64(acc, st + S_ACC);
  const b = <usize>load<u32>(st + S_BUFLEN); // >= 1 here
  consume(acc, load<u32>(st + S_STRIPES), buf, (b - 1) / STRIPE);
  let last = buf + b - STRIPE;
  if (b < STRIPE) {
    // The last stripe starts inside the previously consumed bytes.
    last = st + S_TMPSTRIPE;
    smallCopy(last, st + S_PREV + b, STRIPE - b);
    smallCopy(last + STRIPE - b, buf, b);
  }
  accRun(acc, last, 1, SECRET + 121);
  return mergeAccs(acc, total);
}

export function xxh3_init(slot: u32): void { xxh3InitRaw(slotPtr(slot)); }
export function xxh3_update(slot: u32, ptr: usize, len: usize): void { xxh3UpdateRaw(slotPtr(slot), ptr, len); }
export function xxh3_digest(slot: u32): u64 { return xxh3DigestRaw(slotPtr(slot)); }
