import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createXXHash3, type IHasher } from 'hash-wasm';
import { xxh3_64 as twinXxh3 } from '../src/kernels/twin/xxh3.js';
import { PAGE, SCRATCH_BASE, type Kernels } from '../src/kernels/api.js';
import { both, rng, twin, wasm } from './helpers/kernels.js';

type Kind = 'zero' | 'random' | 'one-byte';

/** npages pages: zero pages, random pages, and pages that are zero except for one
 *  byte at a random (or the last, or the first) position. */
function makePages(npages: number, seed: number, zeroFrac: number, oneByteFrac = 0.15): { data: Uint8Array; kinds: Kind[] } {
  const r = rng(seed);
  const data = new Uint8Array(npages * PAGE);
  const kinds: Kind[] = [];
  for (let i = 0; i < npages; i++) {
    const x = r();
    if (x < zeroFrac) {
      kinds.push('zero');
    } else if (x < zeroFrac + oneByteFrac) {
      const y = r();
      const pos = y < 0.3 ? PAGE - 1 : y < 0.4 ? 0 : Math.floor(r() * PAGE);
      data[i * PAGE + pos] = 1 + Math.floor(r() * 255);
      kinds.push('one-byte');
    } else {
      for (let j = 0; j < PAGE; j++) data[i * PAGE + j] = Math.floor(r() * 256);
      kinds.push('random');
    }
  }
  return { data, kinds };
}

function expectedBitmap(kinds: Kind[]): Uint8Array {
  const b = new Uint8Array(Math.ceil(kinds.length / 64) * 8);
  kinds.forEach((k, i) => {
    if (k !== 'zero') b[i >> 3]! |= 1 << (i & 7);
  });
  return b;
}

function storedPages(data: Uint8Array, kinds: Kind[]): Uint8Array {
  const out = new Uint8Array(kinds.filter((k) => k !== 'zero').length * PAGE);
  let n = 0;
  kinds.forEach((k, i) => {
    if (k !== 'zero') out.set(data.subarray(i * PAGE, (i + 1) * PAGE), n++ * PAGE);
  });
  return out;
}

const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

let hw: IHasher;
beforeAll(async () => {
  hw = await createXXHash3(0, 0);
});
function refHash(b: Uint8Array): bigint {
  hw.init();
  hw.update(b);
  return BigInt(`0x${hw.digest('hex')}`);
}

const BITMAP = SCRATCH_BASE;
/** Words beyond the bitmap, pre-filled with a guard pattern that must survive. */
const GUARD = 0xa5;

interface PackResult {
  count: number;
  bitmap: Uint8Array;
  stored: Uint8Array;
  digest: bigint;
  guard: Uint8Array;
}

/**
 * Lay out `data` at staging + srcOff, pre-fill the bitmap with garbage and the
 * bytes after it with GUARD, optionally feed `header` to the slot first, run
 * pagesPack(src, npages, staging + dstOff, ...) and collect the results.
 */
function runPack(k: Kernels, data: Uint8Array, npages: number, srcOff: number, dstOff: number, header?: Uint8Array, slot = 2): PackResult {
  const base = k.staging(Math.max(srcOff, dstOff) + npages * PAGE + PAGE);
  const src = base + srcOff;
  const dst = base + dstOff;
  const words = Math.ceil(npages / 64);
  let m = k.u8();
  m.set(data, src);
  m.fill(0xff, BITMAP, BITMAP + words * 8);
  m.fill(GUARD, BITMAP + words * 8, BITMAP + words * 8 + 64);
  k.xxh3Init(slot);
  if (header) {
    const hp = BITMAP + 4096; // a spot in scratch, away from the bitmap
    m.set(header, hp);
    k.xxh3Update(slot, hp, header.length);
  }
  const count = k.pagesPack(src, npages, dst, BITMAP, slot);
  m = k.u8();
  return {
    count,
    bitmap: m.slice(BITMAP, BITMAP + words * 8),
    stored: m.slice(dst, dst + count * PAGE),
    digest: k.xxh3Digest(slot),
    guard: m.slice(BITMAP + words * 8, BITMAP + words * 8 + 64),
  };
}

describe('zeroScan', () => {
  it('WASM and twin agree with the expected bitmap, for page counts around word boundaries', () => {
    for (const npages of [0, 1, 2, 31, 63, 64, 65, 127, 128, 129, 200]) {
      const { data, kinds } = makePages(npages, 100 + npages, 0.4);
      const expected = expectedBitmap(kinds);
      for (const k of both) {
        const base = k.staging(npages * PAGE + PAGE);
        const m = k.u8();
        m.set(data, base);
        m.fill(0xff, BITMAP, BITMAP + expected.length); // stale bits must be cleared
        m.fill(GUARD, BITMAP + expected.length, BITMAP + expected.length + 64);
        const count = k.zeroScan(base, npages, BITMAP);
        expect(count, `${k.name} n=${npages}`).toBe(kinds.filter((x) => x !== 'zero').length);
        expect(same(k.u8().slice(BITMAP, BITMAP + expected.length), expected), `${k.name} n=${npages} bitmap`).toBe(true);
        expect(
          k
            .u8()
            .slice(BITMAP + expected.length, BITMAP + expected.length + 64)
            .every((b) => b === GUARD),
          `${k.name} guard`,
        ).toBe(true);
      }
    }
  });

  it('finds a single non-zero byte at every 61st offset of a page, and the last byte', () => {
    const base = wasm.staging(3 * PAGE);
    const m = wasm.u8();
    for (let pos = 0; pos < PAGE; pos += pos === 4087 ? 8 : 61) {
      m.fill(0, base, base + 3 * PAGE);
      m[base + PAGE + pos] = 0x80;
      expect(wasm.zeroScan(base, 3, BITMAP), `pos ${pos}`).toBe(1);
      expect(m[BITMAP], `pos ${pos}`).toBe(0b010);
    }
    m.fill(0, base, base + 3 * PAGE);
    expect(wasm.zeroScan(base, 3, BITMAP)).toBe(0);
    expect(m[BITMAP]).toBe(0);
  });
});

describe('pagesPack', () => {
  it('to a separate dst: count, bitmap, stored pages and slot digest (WASM = twin = reference)', () => {
    for (const [npages, zf] of [
      [1, 0],
      [1, 1],
      [65, 0.5],
      [130, 0.3],
      [64, 0],
      [100, 0.97],
    ] as const) {
      const { data, kinds } = makePages(npages, 200 + npages, zf);
      const stored = storedPages(data, kinds);
      const results = both.map((k) => runPack(k, data, npages, 0, npages * PAGE + 8192));
      for (const [i, res] of results.entries()) {
        const tag = `${both[i]!.name} n=${npages} zf=${zf}`;
        expect(res.count, tag).toBe(stored.length / PAGE);
        expect(same(res.bitmap, expectedBitmap(kinds)), `${tag} bitmap`).toBe(true);
        expect(same(res.stored, stored), `${tag} stored`).toBe(true);
        expect(res.digest, `${tag} digest`).toBe(refHash(stored));
        expect(
          res.guard.every((b) => b === GUARD),
          `${tag} guard`,
        ).toBe(true);
      }
    }
  });

  it('in place (dst = src) and compacting downwards with overlap (dst below src by various offsets)', () => {
    const npages = 90;
    const { data, kinds } = makePages(npages, 300, 0.35);
    const stored = storedPages(data, kinds);
    const hash = refHash(stored);
    const srcOff = 8 * PAGE;
    for (const dstOff of [srcOff, srcOff - 8, srcOff - 16, srcOff - 64, srcOff - 100, srcOff - PAGE, srcOff - 3 * PAGE - 24, 0]) {
      for (const k of both) {
        const res = runPack(k, data, npages, srcOff, dstOff);
        const tag = `${k.name} dst=src-${srcOff - dstOff}`;
        expect(res.count, tag).toBe(stored.length / PAGE);
        expect(same(res.stored, stored), `${tag} stored`).toBe(true);
        expect(res.digest, `${tag} digest`).toBe(hash);
        expect(same(res.bitmap, expectedBitmap(kinds)), `${tag} bitmap`).toBe(true);
      }
    }
  });

  it('continues a stream that already holds a misaligning header', () => {
    const { data, kinds } = makePages(40, 400, 0.25);
    const stored = storedPages(data, kinds);
    for (const hlen of [1, 8, 63, 64, 65, 200, 300]) {
      const header = new Uint8Array(hlen).map((_, i) => (i * 37 + hlen) & 0xff);
      const all = new Uint8Array(hlen + stored.length);
      all.set(header);
      all.set(stored, hlen);
      for (const k of both) {
        expect(runPack(k, data, 40, 0, 41 * PAGE, header, 5).digest, `${k.name} header ${hlen}`).toBe(refHash(all));
      }
    }
  });

  it('the slot digest equals the twin one-shot of the concatenated stored pages', () => {
    const { data, kinds } = makePages(20, 500, 0.5);
    const stored = storedPages(data, kinds);
    const res = runPack(wasm, data, 20, 0, 0);
    expect(res.digest).toBe(twinXxh3(stored));
    expect(res.digest).toBe(wasm.xxh3(wasm.staging(0), res.count * PAGE));
  });

  it('matches the twin on random page sets (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 140 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 0x7fffffff }),
        fc.constantFrom('separate', 'in-place', 'below'),
        (npages, zf, seed, layout) => {
          const { data } = makePages(npages, seed, zf);
          const srcOff = 4 * PAGE;
          const dstOff = layout === 'separate' ? srcOff + npages * PAGE + 64 : layout === 'in-place' ? srcOff : srcOff - 3 * PAGE - 40;
          const a = runPack(wasm, data, npages, srcOff, dstOff, undefined, 11);
          const b = runPack(twin, data, npages, srcOff, dstOff, undefined, 11);
          expect(a.count).toBe(b.count);
          expect(same(a.bitmap, b.bitmap)).toBe(true);
          expect(same(a.stored, b.stored)).toBe(true);
          expect(a.digest).toBe(b.digest);
          expect(same(a.guard, b.guard)).toBe(true);
        },
      ),
      { numRuns: 25, seed: 4242 },
    );
  });
});

describe('pagesUnpack and copyPages', () => {
  it('pack then unpack restores the original pages (WASM and twin)', () => {
    for (const [npages, zf] of [
      [1, 0],
      [1, 1],
      [64, 0.5],
      [129, 0.6],
      [77, 0.02],
    ] as const) {
      const { data } = makePages(npages, 600 + npages, zf);
      for (const k of both) {
        const bytes = npages * PAGE;
        const base = k.staging(3 * bytes + PAGE);
        const dst = base + bytes;
        const out = base + 2 * bytes;
        let m = k.u8();
        m.set(data, base);
        m.fill(0x77, out, out + bytes); // the zero pages must be written, not skipped
        k.xxh3Init(0);
        const count = k.pagesPack(base, npages, dst, BITMAP, 0);
        k.pagesUnpack(dst, BITMAP, npages, out);
        m = k.u8();
        expect(same(m.subarray(out, out + bytes), data), `${k.name} n=${npages} zf=${zf} (${count} stored)`).toBe(true);
      }
    }
  });

  it('unpack: WASM equals twin for a random bitmap and stored data', () => {
    const r = rng(700);
    const npages = 150;
    const bitmap = new Uint8Array(Math.ceil(npages / 64) * 8);
    let set = 0;
    for (let i = 0; i < npages; i++)
      if (r() < 0.5) {
        bitmap[i >> 3]! |= 1 << (i & 7);
        set++;
      }
    const { data: stored } = makePages(set, 701, 0);
    const outs = both.map((k) => {
      const base = k.staging(npages * PAGE + set * PAGE);
      const m = k.u8();
      m.set(stored, base);
      m.set(bitmap, BITMAP);
      m.fill(0x33, base + set * PAGE, base + set * PAGE + npages * PAGE);
      k.pagesUnpack(base, BITMAP, npages, base + set * PAGE);
      return k.u8().slice(base + set * PAGE, base + set * PAGE + npages * PAGE);
    });
    expect(same(outs[0]!, outs[1]!)).toBe(true);
    // Page i is the next stored page when its bit is set, else zeros.
    let s = 0;
    for (let i = 0; i < npages; i++) {
      const page = outs[0]!.subarray(i * PAGE, (i + 1) * PAGE);
      if ((bitmap[i >> 3]! >> (i & 7)) & 1) expect(same(page, stored.subarray(s * PAGE, ++s * PAGE)), `page ${i}`).toBe(true);
      else
        expect(
          page.every((b) => b === 0),
          `page ${i}`,
        ).toBe(true);
    }
  });

  it('copyPages copies exactly npages pages (WASM and twin)', () => {
    const { data } = makePages(33, 800, 0.2);
    for (const k of both) {
      const base = k.staging(70 * PAGE);
      const m = k.u8();
      m.set(data, base);
      m.fill(0x5a, base + 34 * PAGE, base + 70 * PAGE);
      k.copyPages(base, base + 35 * PAGE, 33);
      const after = k.u8();
      expect(same(after.subarray(base + 35 * PAGE, base + 68 * PAGE), data), k.name).toBe(true);
      expect(
        after.subarray(base + 34 * PAGE, base + 35 * PAGE).every((b) => b === 0x5a),
        `${k.name} before`,
      ).toBe(true);
      expect(
        after.subarray(base + 68 * PAGE, base + 70 * PAGE).every((b) => b === 0x5a),
        `${k.name} after`,
      ).toBe(true);
      k.copyPages(base, base + 35 * PAGE, 0);
      expect(same(k.u8().subarray(base + 35 * PAGE, base + 68 * PAGE), data), `${k.name} npages 0`).toBe(true);
    }
  });
});
