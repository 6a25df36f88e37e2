import { describe, expect, it } from 'vitest';
import { xxh3 as nodeXxh3 } from '@node-rs/xxhash';
import { type Kernels, REGSET_RAW_BYTES, REGSET_RECORD_BYTES } from '../src/kernels/api.js';
import { both, rng, twin, wasm } from './helpers/kernels.js';

function randomBytes(r: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}
function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

/** Independent description of the layout (Intel SDM vol. 1, 13.4 and CPUID leaf 0DH). */
const TABLE: Record<number, [offset: number, size: number, align64: boolean]> = {
  2: [576, 256, false],
  3: [960, 64, false],
  4: [1024, 64, false],
  5: [1088, 64, false],
  6: [1152, 512, false],
  7: [1664, 1024, false],
  9: [2688, 8, false],
  17: [2752, 64, true],
  18: [2816, 8192, true],
};
const KNOWN_BITS = [0, 1, 2, 3, 4, 5, 6, 7, 9, 17, 18];

function compactOffsets(mask: bigint): { offs: Map<number, number>; size: number } {
  const offs = new Map<number, number>();
  let off = 576;
  for (let i = 2; i <= 18; i++) {
    if (!((mask >> BigInt(i)) & 1n)) continue;
    const [, size, al] = TABLE[i]!;
    if (al) off = (off + 63) & ~63;
    offs.set(i, off);
    off += size;
  }
  return { offs, size: off };
}
function randomSubset(r: () => number, bits: number[], p = 0.5): bigint {
  let m = 0n;
  for (const b of bits) if (r() < p) m |= 1n << BigInt(b);
  return m;
}

/** A random compacted area for (xcomp, xstate), and the standard form it must expand to. */
function makeCompacted(r: () => number, xcomp: bigint, xstate: bigint) {
  const { offs, size } = compactOffsets(xcomp);
  const c = randomBytes(r, size);
  const dv = new DataView(c.buffer);
  dv.setBigUint64(512, xstate, true);
  dv.setBigUint64(520, xcomp | (1n << 63n), true);
  c.fill(0, 528, 576);
  let stdSize = 576;
  for (const i of offs.keys()) stdSize = Math.max(stdSize, TABLE[i]![0] + TABLE[i]![1]);
  const s = new Uint8Array(stdSize);
  s.set(c.subarray(0, 512));
  new DataView(s.buffer).setBigUint64(512, xstate, true);
  for (const [i, off] of offs) {
    if (!((xstate >> BigInt(i)) & 1n)) continue;
    const [so, sz] = TABLE[i]!;
    s.set(c.subarray(off, off + sz), so);
  }
  return { c, s };
}

function toStandard(k: Kernels, src: Uint8Array, srcLen = src.length, dstCap = 16384): { n: number; out: Uint8Array } {
  const b = k.staging(src.length + dstCap + 64);
  const m = k.u8();
  m.set(src, b);
  m.fill(0xa5, b + src.length, b + src.length + dstCap);
  const n = k.xsaveToStandard(b, srcLen, b + src.length, dstCap);
  return { n, out: k.u8().slice(b + src.length, b + src.length + n) };
}
function toCompacted(k: Kernels, src: Uint8Array, xcomp: bigint, srcLen = src.length, dstCap = 16384): { n: number; out: Uint8Array } {
  const b = k.staging(src.length + dstCap + 64);
  const m = k.u8();
  m.set(src, b);
  m.fill(0x5a, b + src.length, b + src.length + dstCap);
  const n = k.xsaveToCompacted(b, srcLen, xcomp, b + src.length, dstCap);
  return { n, out: k.u8().slice(b + src.length, b + src.length + n) };
}

function pack(k: Kernels, raw: Uint8Array, n: number): { ret: number; out: Uint8Array } {
  const b = k.staging(raw.length + n * REGSET_RECORD_BYTES + 64);
  k.u8().set(raw, b);
  const d = b + raw.length;
  const ret = k.regsPack(b, n, d);
  return { ret, out: k.u8().slice(d, d + n * REGSET_RECORD_BYTES) };
}
function unpack(k: Kernels, recs: Uint8Array, n: number): { ret: number; out: Uint8Array } {
  const b = k.staging(recs.length + n * REGSET_RAW_BYTES + 64);
  k.u8().set(recs, b);
  const d = b + recs.length;
  const ret = k.regsUnpack(b, n, d);
  return { ret, out: k.u8().slice(d, d + n * REGSET_RAW_BYTES) };
}

describe('XSAVE layout', () => {
  it('standard sizes', () => {
    const cases: [bigint, number][] = [
      [0x3n, 576],
      [0x7n, 832],
      [0x1fn, 1088],
      [0xe7n, 2688],
      [0x2e7n, 2696],
      [0x2ffn, 2696],
      [0x602e7n, 11008],
      [0x20007n, 2816],
      [0x1n, 576],
      [0n, 576],
      [0x100n, 0],
      [0x400n, 0],
      [0x80000n, 0],
      [1n << 63n, 0],
      [0x2e7n | (1n << 40n), 0],
    ];
    for (const k of both) for (const [x, n] of cases) expect(k.xsaveStandardSize(x), `${k.name} ${x.toString(16)}`).toBe(n);
  });

  it('compacted sizes and 64-byte alignment of the AMX components', () => {
    const cases: [bigint, number][] = [
      [0xe7n, 2432], // what CPUID.(0DH,1).EBX reports for XCR0 = 0xe7
      [0x2e7n, 2440],
      [0x7n, 832],
      [0x3n, 576],
      [0x20207n, 896 + 64], // PKRU ends at 840, XTILECFG starts at 896
      [0x60207n, 960 + 8192], // XTILEDATA right after XTILECFG at 960
      [0x40003n, 576 + 8192],
      [0x40203n, 640 + 8192], // PKRU 576..584, XTILEDATA at 640
    ];
    for (const k of both) {
      for (const [mask, size] of cases) {
        const std = new Uint8Array(12000);
        expect(toCompacted(k, std, mask).n, `${k.name} ${mask.toString(16)}`).toBe(size);
        expect(compactOffsets(mask).size).toBe(size);
      }
    }
  });

  it('compacted -> standard -> compacted round trips for random XCOMP_BV and XSTATE_BV', () => {
    const r = rng(11);
    for (let iter = 0; iter < 120; iter++) {
      const xcomp = randomSubset(r, KNOWN_BITS, iter % 3 === 0 ? 0.9 : 0.5) | (r() < 0.8 ? 3n : 0n);
      let xstate = 0n;
      for (let i = 0; i < 19; i++) if ((xcomp >> BigInt(i)) & 1n && r() < 0.6) xstate |= 1n << BigInt(i);
      const { c, s } = makeCompacted(r, xcomp, xstate);
      const w = toStandard(wasm, c),
        t = toStandard(twin, c);
      expect(w.n).toBe(s.length);
      expect(same(w.out, s)).toBe(true);
      expect(same(t.out, s)).toBe(true);
      expect(w.n).toBe(wasm.xsaveStandardSize(xcomp));
      // back to compacted with the same XCOMP_BV: exact for legacy, header and components in XSTATE_BV
      const wc = toCompacted(wasm, w.out, xcomp),
        tc = toCompacted(twin, w.out, xcomp);
      expect(wc.n).toBe(c.length);
      expect(same(wc.out, tc.out)).toBe(true);
      const { offs } = compactOffsets(xcomp);
      const expect2 = new Uint8Array(c.length);
      expect2.set(c.subarray(0, 576));
      for (const [i, off] of offs) {
        if ((xstate >> BigInt(i)) & 1n) expect2.set(c.subarray(off, off + TABLE[i]![1]), off);
      }
      expect(same(wc.out, expect2)).toBe(true);
      // standard -> compacted with a random superset -> standard is the identity
      const sup = xcomp | randomSubset(r, KNOWN_BITS, 0.3);
      const wc2 = toCompacted(wasm, s, sup);
      expect(wc2.n).toBe(compactOffsets(sup).size);
      const back = toStandard(wasm, wc2.out);
      expect(same(back.out.subarray(0, s.length), s)).toBe(true);
      expect(back.out.subarray(s.length).every((x) => x === 0)).toBe(true);
      expect(same(toCompacted(twin, s, sup).out, wc2.out)).toBe(true);
    }
  });

  it('malformed areas give 0', () => {
    const r = rng(12);
    const { c, s } = makeCompacted(r, 0x2e7n, 0x2a5n);
    const bad = (k: Kernels, f: (x: Uint8Array) => void, len?: number, cap?: number): number => {
      const x = c.slice();
      f(x);
      return toStandard(k, x, len ?? x.length, cap).n;
    };
    const set = (off: number, v: bigint) => (x: Uint8Array) => new DataView(x.buffer).setBigUint64(off, v, true);
    for (const k of both) {
      expect(bad(k, () => {})).toBe(2696);
      expect(bad(k, set(520, 0x2e7n))).toBe(0); // bit 63 clear: standard form, not compacted
      expect(bad(k, set(520, 0x2e7n | (1n << 8n) | (1n << 63n)))).toBe(0); // unknown component (PT)
      expect(bad(k, set(520, 0x2e7n | (1n << 19n) | (1n << 63n)))).toBe(0); // unknown component
      expect(bad(k, set(512, 0x2a5n | (1n << 3n)))).toBe(0); // XSTATE_BV not within XCOMP_BV
      expect(bad(k, () => {}, c.length - 1)).toBe(0); // too short for its components
      expect(bad(k, () => {}, 575)).toBe(0);
      expect(bad(k, () => {}, undefined, 2695)).toBe(0); // dst too small
      expect(bad(k, () => {}, undefined, 2696)).toBe(2696);
      // standard -> compacted
      const sc = (x: Uint8Array, xc: bigint, len?: number, cap?: number) => toCompacted(k, x, xc, len ?? x.length, cap).n;
      expect(sc(s, 0x2e7n)).toBe(2440);
      expect(sc(s, 0x2e7n | (1n << 63n))).toBe(2440);
      expect(sc(s, 0x2e3n)).toBe(0); // XSTATE_BV has AVX (bit 2) which XCOMP_BV lacks
      expect(sc(s, 0x2e7n | (1n << 10n))).toBe(0);
      expect(sc(s, 0x2e7n, 2695)).toBe(0); // PKRU is in XSTATE_BV but outside srcLen
      expect(sc(s, 0x2e7n, 500)).toBe(0);
      expect(sc(s, 0x2e7n, undefined, 2439)).toBe(0);
      const s2 = s.slice();
      new DataView(s2.buffer).setBigUint64(520, 0x2e7n | (1n << 63n), true);
      expect(sc(s2, 0x2e7n)).toBe(0); // already compacted
      const s3 = s.slice();
      new DataView(s3.buffer).setBigUint64(512, 0x2a5n | (1n << 11n), true);
      expect(sc(s3, 0x2e7n | (1n << 11n))).toBe(0);
    }
  });
});

describe('register set records', () => {
  it('regsPack frames REGS and FPU records with the image checksum; WASM equals twin', () => {
    const r = rng(21);
    for (const n of [1, 2, 3, 7, 40]) {
      const raw = randomBytes(r, n * REGSET_RAW_BYTES);
      const w = pack(wasm, raw, n),
        t = pack(twin, raw, n);
      expect(w.ret).toBe(n * 760);
      expect(t.ret).toBe(n * 760);
      expect(same(w.out, t.out)).toBe(true);
      const dv = new DataView(w.out.buffer);
      for (let i = 0; i < n; i++) {
        const at = i * 760;
        for (const [off, kind, len, payload] of [
          [at, 0x0211, 216, raw.subarray(i * 728, i * 728 + 216)],
          [at + 232, 0x0212, 512, raw.subarray(i * 728 + 216, i * 728 + 728)],
        ] as const) {
          expect(dv.getUint16(off, true)).toBe(kind);
          expect(dv.getUint16(off + 2, true)).toBe(0);
          expect(dv.getUint32(off + 4, true)).toBe(len);
          expect(same(w.out.subarray(off + 16, off + 16 + len), payload)).toBe(true);
          const hashed = new Uint8Array([...payload, ...w.out.subarray(off, off + 8)]);
          expect(dv.getBigUint64(off + 8, true)).toBe(nodeXxh3.xxh64(hashed));
        }
      }
    }
    expect(wasm.regsPack(wasm.staging(0), 0, wasm.staging(0))).toBe(0);
  });

  it('regsPack -> regsUnpack round trips (and across implementations)', () => {
    const r = rng(22);
    for (const n of [1, 5, 33]) {
      const raw = randomBytes(r, n * REGSET_RAW_BYTES);
      const recs = pack(wasm, raw, n).out;
      for (const k of both) {
        const u = unpack(k, recs, n);
        expect(u.ret).toBe(-1);
        expect(same(u.out, raw)).toBe(true);
      }
    }
  });

  it('a flipped byte anywhere is reported as the index of its pair', () => {
    const r = rng(23);
    const n = 6;
    const raw = randomBytes(r, n * REGSET_RAW_BYTES);
    const recs = pack(wasm, raw, n).out;
    const positions = [0, 1, 2, 3, 4, 5, 6, 7, 8, 15, 16, 231, 232, 233, 236, 240, 247, 248, 759];
    for (let i = 0; i < 40; i++) positions.push(Math.floor(r() * recs.length));
    for (const k of both) {
      for (const pos of positions) {
        for (const flip of [0x01, 0x80]) {
          const x = recs.slice();
          x[pos] ^= flip;
          expect(unpack(k, x, n).ret, `${k.name} pos ${pos}`).toBe(Math.floor(pos / 760) % n);
        }
      }
      // a pair that is valid but in the wrong order (FPU first) is rejected
      const swapped = recs.slice();
      swapped.set(recs.subarray(232, 760), 0);
      swapped.set(recs.subarray(0, 232), 528);
      expect(unpack(k, swapped, n).ret).toBe(0);
      // a valid record with flags != 0 and a matching checksum is still rejected
      const fl = recs.slice(760 * 2, 760 * 3);
      const dv = new DataView(fl.buffer);
      dv.setUint16(2, 1, true);
      const hashed = new Uint8Array([...fl.subarray(16, 232), ...fl.subarray(0, 8)]);
      dv.setBigUint64(8, nodeXxh3.xxh64(hashed), true);
      const x = recs.slice();
      x.set(fl, 760 * 2);
      expect(unpack(k, x, n).ret).toBe(2);
    }
  });
});
