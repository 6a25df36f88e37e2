/**
 * XXH3-64 (seed 0, default secret) in plain TypeScript: the test oracle of the
 * WebAssembly kernel in assembly/xxh3.ts. Written from the XXH3 specification
 * (xxHash doc/xxhash_spec.md) for clarity, not speed.
 *
 * Scalar steps use BigInt, reduced mod 2^64 where a result can overflow. The
 * eight accumulators of the long path (> 240 bytes) are kept as pairs of u32
 * halves instead, because that loop runs once per 8 input bytes and BigInt
 * arithmetic there would make the oracle too slow for page-sized tests.
 */

const MASK64 = (1n << 64n) - 1n;

const PRIME32_1 = 0x9e3779b1;
const PRIME32_2 = 0x85ebca77n;
const PRIME32_3 = 0xc2b2ae3dn;
const PRIME64_1 = 0x9e3779b185ebca87n;
const PRIME64_2 = 0xc2b2ae3d27d4eb4fn;
const PRIME64_3 = 0x165667b19e3779f9n;
const PRIME64_4 = 0x85ebca77c2b2ae63n;
const PRIME64_5 = 0x27d4eb2f165667c5n;
const PRIME_MX1 = 0x165667919e3779f9n;
const PRIME_MX2 = 0x9fb21c651e98df25n;

/** The default 192-byte secret. */
const SECRET = Uint8Array.from([
  0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c, 0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97,
  0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f, 0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff,
  0x72, 0x21, 0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c, 0x3c, 0x28, 0x52, 0xbb, 0x91,
  0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3, 0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46,
  0xa9, 0xde, 0xac, 0xd8, 0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d, 0x8a, 0x51, 0xe0,
  0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64, 0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81,
  0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb, 0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e, 0x2b,
  0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce, 0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28,
  0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
]);
const SECRET_VIEW = new DataView(SECRET.buffer);

const STRIPE = 64;
const STRIPES_PER_BLOCK = (SECRET.length - 64) / 8; // 16
const BLOCK = STRIPE * STRIPES_PER_BLOCK; // 1024
const SCRAMBLE_SECRET = SECRET.length - 64; // 128
const LAST_STRIPE_SECRET = SECRET.length - 64 - 7; // 121
const MERGE_SECRET = 11;

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}
const u64 = (v: DataView, off: number): bigint => v.getBigUint64(off, true);
const u32 = (v: DataView, off: number): number => v.getUint32(off, true);
const sec64 = (off: number): bigint => SECRET_VIEW.getBigUint64(off, true);
const sec32 = (off: number): number => SECRET_VIEW.getUint32(off, true);

// ------------------------------------------------------------------ scalar pieces

/** Low 64 bits xor high 64 bits of the full 128-bit product. */
function mulFold64(a: bigint, b: bigint): bigint {
  const p = a * b;
  return (p & MASK64) ^ (p >> 64n);
}

function avalanche(h: bigint): bigint {
  h ^= h >> 37n;
  h = (h * PRIME_MX1) & MASK64;
  return h ^ (h >> 32n);
}

function avalancheXxh64(h: bigint): bigint {
  h ^= h >> 33n;
  h = (h * PRIME64_2) & MASK64;
  h ^= h >> 29n;
  h = (h * PRIME64_3) & MASK64;
  return h ^ (h >> 32n);
}

function rotl64(x: bigint, r: bigint): bigint {
  return ((x << r) | (x >> (64n - r))) & MASK64;
}

function bswap64(x: bigint): bigint {
  let r = 0n;
  for (let i = 0; i < 8; i++) {
    r = (r << 8n) | (x & 0xffn);
    x >>= 8n;
  }
  return r;
}

/** mixStep of the spec: 16 data bytes at `off` against 16 secret bytes at `s`. */
function mix16(v: DataView, off: number, s: number): bigint {
  return mulFold64(u64(v, off) ^ sec64(s), u64(v, off + 8) ^ sec64(s + 8));
}

function hash0to16(v: DataView, len: number): bigint {
  if (len > 8) {
    const lo = u64(v, 0) ^ (sec64(24) ^ sec64(32));
    const hi = u64(v, len - 8) ^ (sec64(40) ^ sec64(48));
    return avalanche((BigInt(len) + bswap64(lo) + hi + mulFold64(lo, hi)) & MASK64);
  }
  if (len >= 4) {
    const first = BigInt(u32(v, 0));
    const last = BigInt(u32(v, len - 4));
    let h = ((first << 32n) | last) ^ (sec64(8) ^ sec64(16));
    h ^= rotl64(h, 49n) ^ rotl64(h, 24n);
    h = (h * PRIME_MX2) & MASK64;
    h ^= (h >> 35n) + BigInt(len);
    h = (h * PRIME_MX2) & MASK64;
    return h ^ (h >> 28n);
  }
  if (len > 0) {
    const b = (i: number): number => v.getUint8(i);
    const combined = ((b(0) << 16) | (b(len >> 1) << 24) | b(len - 1) | (len << 8)) >>> 0;
    return avalancheXxh64(BigInt(combined) ^ BigInt((sec32(0) ^ sec32(4)) >>> 0));
  }
  return avalancheXxh64(sec64(56) ^ sec64(64));
}

function hash17to128(v: DataView, len: number): bigint {
  let acc = BigInt(len) * PRIME64_1;
  // Pairs of 16-byte chunks, one from the front and one from the back.
  const rounds = ((len - 1) >> 5) + 1;
  for (let i = rounds - 1; i >= 0; i--) {
    acc += mix16(v, 16 * i, 32 * i);
    acc += mix16(v, len - 16 * i - 16, 32 * i + 16);
  }
  return avalanche(acc & MASK64);
}

function hash129to240(v: DataView, len: number): bigint {
  let acc = BigInt(len) * PRIME64_1;
  for (let i = 0; i < 8; i++) acc += mix16(v, 16 * i, 16 * i);
  acc = avalanche(acc & MASK64);
  const chunks = len >> 4;
  for (let i = 8; i < chunks; i++) acc += mix16(v, 16 * i, 16 * (i - 8) + 3);
  acc += mix16(v, len - 16, 119);
  return avalanche(acc & MASK64);
}

// ------------------------------------------------------------------ long path

/** Low 32 bits of the product of two u32. */
const mulLo32 = (a: number, b: number): number => Math.imul(a, b) >>> 0;

/** High 32 bits of the product of two u32, computed exactly in doubles:
 *  a * b = u * 2^16 + t with u = (a >> 16) * b and t = (a & 0xffff) * b. */
function mulHi32(a: number, b: number): number {
  const t = (a & 0xffff) * b;
  const u = (a >>> 16) * b;
  return (Math.floor(u / 65536) + Math.floor(((u % 65536) * 65536 + t) / 4294967296)) >>> 0;
}

/** Eight u64 accumulators as [lo0, hi0, lo1, hi1, ...]. */
type Acc = Uint32Array;

function initAcc(): Acc {
  const init = [PRIME32_3, PRIME64_1, PRIME64_2, PRIME64_3, PRIME64_4, PRIME32_2, PRIME64_5, BigInt(PRIME32_1)];
  const acc = new Uint32Array(16);
  init.forEach((x, i) => {
    acc[2 * i] = Number(x & 0xffffffffn);
    acc[2 * i + 1] = Number(x >> 32n);
  });
  return acc;
}

/** acc[lane] += (hi:lo), mod 2^64 (the Uint32Array store wraps each half). */
function addTo(acc: Acc, lane: number, lo: number, hi: number): void {
  const sum = acc[2 * lane]! + lo;
  acc[2 * lane] = sum;
  acc[2 * lane + 1] = acc[2 * lane + 1]! + hi + (sum > 0xffffffff ? 1 : 0);
}

/** The accumulation step: one 64-byte stripe at `off` against the secret at `s`. */
function accumulate(acc: Acc, v: DataView, off: number, s: number): void {
  for (let i = 0; i < 8; i++) {
    const dLo = u32(v, off + 8 * i);
    const dHi = u32(v, off + 8 * i + 4);
    const kLo = (dLo ^ sec32(s + 8 * i)) >>> 0;
    const kHi = (dHi ^ sec32(s + 8 * i + 4)) >>> 0;
    addTo(acc, i ^ 1, dLo, dHi); // acc[i ^ 1] += data
    addTo(acc, i, mulLo32(kLo, kHi), mulHi32(kLo, kHi)); // acc[i] += lo32(key) * hi32(key)
  }
}

/** The scramble step: acc = (acc ^ (acc >> 47) ^ secret) * PRIME32_1. */
function scramble(acc: Acc): void {
  for (let i = 0; i < 8; i++) {
    let lo = acc[2 * i]!;
    let hi = acc[2 * i + 1]!;
    lo = (lo ^ (hi >>> 15)) >>> 0; // acc >> 47 only reaches the low half
    lo = (lo ^ sec32(SCRAMBLE_SECRET + 8 * i)) >>> 0;
    hi = (hi ^ sec32(SCRAMBLE_SECRET + 8 * i + 4)) >>> 0;
    acc[2 * i] = mulLo32(lo, PRIME32_1);
    acc[2 * i + 1] = mulHi32(lo, PRIME32_1) + Math.imul(hi, PRIME32_1);
  }
}

function lane(acc: Acc, i: number): bigint {
  return (BigInt(acc[2 * i + 1]!) << 32n) | BigInt(acc[2 * i]!);
}

function mergeAccs(acc: Acc, len: number): bigint {
  let r = (BigInt(len) * PRIME64_1) & MASK64;
  for (let i = 0; i < 4; i++) {
    const s = MERGE_SECRET + 16 * i;
    r += mulFold64(lane(acc, 2 * i) ^ sec64(s), lane(acc, 2 * i + 1) ^ sec64(s + 8));
  }
  return avalanche(r & MASK64);
}

function hashLong(v: DataView, len: number): bigint {
  const acc = initAcc();
  // Whole blocks, leaving at least one byte for the last block.
  const blocks = Math.floor((len - 1) / BLOCK);
  for (let b = 0; b < blocks; b++) {
    for (let s = 0; s < STRIPES_PER_BLOCK; s++) accumulate(acc, v, b * BLOCK + s * STRIPE, 8 * s);
    scramble(acc);
  }
  // The last block: its whole stripes except a final one, then the last 64 bytes.
  const lastBlockLen = len - blocks * BLOCK;
  const stripes = Math.floor((lastBlockLen - 1) / STRIPE);
  for (let s = 0; s < stripes; s++) accumulate(acc, v, blocks * BLOCK + s * STRIPE, 8 * s);
  accumulate(acc, v, len - STRIPE, LAST_STRIPE_SECRET);
  return mergeAccs(acc, len);
}

/** XXH3-64 with seed 0 of `data`. */
export function xxh3_64(data: Uint8Array): bigint {
  const v = view(data);
  const len = data.length;
  if (len <= 16) return hash0to16(v, len);
  if (len <= 128) return hash17to128(v, len);
  if (len <= 240) return hash129to240(v, len);
  return hashLong(v, len);
}

/** XXH3-64 of each of `npages` consecutive 4096-byte pages of memory `m` at
 *  `ptr`, written as little-endian u64 at `outPtr` (8 bytes per page). */
export function xxh3Pages(m: Uint8Array, ptr: number, npages: number, outPtr: number): void {
  const out = new DataView(m.buffer, m.byteOffset + outPtr, npages * 8);
  for (let i = 0; i < npages; i++) out.setBigUint64(i * 8, xxh3_64(m.subarray(ptr + i * 4096, ptr + (i + 1) * 4096)), true);
}

/**
 * Streaming XXH3-64 (seed 0). A stripe is accumulated as soon as at least one
 * byte is known to follow it, so at most 64 bytes stay pending; the last 64
 * bytes of the input form the final stripe at digest time. Inputs of up to 240
 * bytes in total are also kept whole, for the short-input algorithms.
 */
export class Xxh3Stream {
  private readonly acc = initAcc();
  /** Stripes accumulated in the current block. */
  private stripes = 0;
  private total = 0;
  /** Unconsumed bytes (0..64 of them). */
  private pending: Uint8Array = new Uint8Array(0);
  /** The last 64 consumed bytes. */
  private consumed: Uint8Array = new Uint8Array(0);
  /** The whole input while it is at most 240 bytes long. */
  private small: Uint8Array = new Uint8Array(0);

  update(data: Uint8Array): void {
    this.total += data.length;
    if (this.total <= 240) this.small = concat(this.small, data);
    const all = concat(this.pending, data);
    const v = view(all);
    let off = 0;
    while (all.length - off > STRIPE) {
      accumulate(this.acc, v, off, 8 * this.stripes);
      off += STRIPE;
      if (++this.stripes === STRIPES_PER_BLOCK) {
        scramble(this.acc);
        this.stripes = 0;
      }
    }
    if (off > 0) this.consumed = all.slice(off - STRIPE, off);
    this.pending = all.slice(off);
  }

  /** Digest of everything so far; the stream stays usable. */
  digest(): bigint {
    if (this.total <= 240) return xxh3_64(this.small);
    const last = concat(this.consumed, this.pending).subarray(-STRIPE);
    const acc = this.acc.slice();
    accumulate(acc, view(last), 0, LAST_STRIPE_SECRET);
    return mergeAccs(acc, this.total);
  }
}

/** A new array holding a then b (never aliases the caller's memory). */
function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const r = new Uint8Array(a.length + b.length);
  r.set(a);
  r.set(b, a.length);
  return r;
}
