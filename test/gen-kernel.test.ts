import { describe, expect, it } from 'vitest';
import { deflateSync } from 'node:zlib';
import { xxh3 as nodeXxh3 } from '@node-rs/xxhash';
import { DICT } from '../src/kernels/twin/gen.js';
import { type GenParams, type Kernels, PAGE } from '../src/kernels/api.js';
import { rng, twin, wasm } from './helpers/kernels.js';

function params(over: Partial<GenParams> = {}): GenParams {
  return { seed: 42n, kind: 0, zeroQ16: 0, dupQ16: 0, dupPool: 1, epoch: 0, dirtyQ16: 0, ...over };
}

function gen(k: Kernels, vaddr: bigint, n: number, p: GenParams): Uint8Array {
  const b = k.staging(n * PAGE);
  k.genPages(b, vaddr, n, p);
  return k.u8().slice(b, b + n * PAGE);
}

function page(buf: Uint8Array, i: number): Uint8Array {
  return buf.subarray(i * PAGE, (i + 1) * PAGE);
}
function isZero(b: Uint8Array): boolean {
  return b.every((x) => x === 0);
}
function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

/** genPack into staging; returns the stored pages, the bitmap bytes and the slot digest. */
function pack(k: Kernels, vaddr: bigint, n: number, p: GenParams, slot = 3) {
  const words = Math.ceil(n / 64);
  const b = k.staging(n * PAGE + words * 8 + 64);
  const bm = b + n * PAGE;
  k.u8().fill(0xee, bm, bm + words * 8); // the kernel must write every bitmap word
  k.xxh3Init(slot);
  const stored = k.genPack(b, vaddr, n, p, bm, slot);
  const m = k.u8();
  return { stored, pages: m.slice(b, b + stored * PAGE), bitmap: m.slice(bm, bm + words * 8), digest: k.xxh3Digest(slot) };
}

function randomParams(r: () => number): GenParams {
  const q = (): number => [0, 65536, Math.floor(r() * 65537)][Math.floor(r() * 3)]!;
  return {
    seed: BigInt.asUintN(64, BigInt(Math.floor(r() * 2 ** 53)) * 0x9e3779b97f4a7c15n),
    kind: Math.floor(r() * 3),
    zeroQ16: Math.floor(r() * 4) === 0 ? q() : Math.floor(r() * 30000),
    dupQ16: q(),
    dupPool: 1 + Math.floor(r() * 6),
    epoch: Math.floor(r() * 12),
    dirtyQ16: q(),
  };
}

describe('synthetic content kernels', () => {
  it('the dictionary is 256 entries of at most 13 bytes, identical in WASM and twin', () => {
    expect((wasm.x.gen_dict_size as () => number)()).toBe(256);
    expect(DICT).toHaveLength(256);
    expect(Math.max(...DICT.map((w) => w.length))).toBeLessThanOrEqual(13);
  });

  it('WASM genPages equals the twin on many parameter sets', () => {
    const r = rng(1);
    for (let iter = 0; iter < 60; iter++) {
      const p = randomParams(r);
      const n = 1 + Math.floor(r() * 12);
      const vaddr = BigInt(Math.floor(r() * 2 ** 35)) << 12n;
      const a = gen(wasm, vaddr, n, p),
        b = gen(twin, vaddr, n, p);
      expect(same(a, b), `params ${JSON.stringify({ ...p, seed: String(p.seed) })} vaddr ${vaddr}`).toBe(true);
    }
  });

  it('each kind is produced and pages at the top of the address space work', () => {
    for (const kind of [0, 1, 2]) {
      const p = params({ kind, seed: 7n });
      const v = (1n << 64n) - 4n * 4096n;
      expect(same(gen(wasm, v, 4, p), gen(twin, v, 4, p))).toBe(true);
    }
  });

  it('genPack equals genPages followed by pagesPack, and the twin', () => {
    const r = rng(2);
    for (let iter = 0; iter < 30; iter++) {
      const p = { ...randomParams(r), kind: iter % 3 };
      if (iter < 6) p.zeroQ16 = 20000; // never all-zero runs in the first rounds
      const n = 1 + Math.floor(r() * (iter % 2 ? 30 : 140));
      const vaddr = BigInt(Math.floor(r() * 2 ** 30)) << 12n;
      const got = pack(wasm, vaddr, n, p);
      // reference: full pages, then pages_pack in place
      const words = Math.ceil(n / 64);
      const b = wasm.staging(n * PAGE + words * 8);
      wasm.genPages(b, vaddr, n, p);
      const bm = b + n * PAGE;
      wasm.xxh3Init(5);
      const refStored = wasm.pagesPack(b, n, b, bm, 5);
      const m = wasm.u8();
      expect(got.stored).toBe(refStored);
      expect(same(got.pages, m.subarray(b, b + refStored * PAGE))).toBe(true);
      expect(same(got.bitmap, m.subarray(bm, bm + words * 8))).toBe(true);
      expect(got.digest).toBe(wasm.xxh3Digest(5));
      expect(got.digest).toBe(nodeXxh3.xxh64(got.pages));
      if (n <= 30) {
        const t = pack(twin, vaddr, n, p);
        expect(t.stored).toBe(got.stored);
        expect(same(t.pages, got.pages)).toBe(true);
        expect(same(t.bitmap, got.bitmap)).toBe(true);
        expect(t.digest).toBe(got.digest);
      }
    }
  });

  it('genPack bitmap: bit i = page i stored, bits past npages zero, zero pages skipped', () => {
    const p = params({ zeroQ16: 32768, seed: 99n });
    const n = 70;
    const got = pack(wasm, 0x400000n, n, p);
    const full = gen(wasm, 0x400000n, n, p);
    const words = new DataView(got.bitmap.buffer);
    let k = 0;
    for (let i = 0; i < 128; i++) {
      const bit = (words.getBigUint64((i >> 6) * 8, true) >> BigInt(i & 63)) & 1n;
      if (i >= n) {
        expect(bit).toBe(0n);
        continue;
      }
      expect(bit === 1n).toBe(!isZero(page(full, i)));
      if (bit) {
        expect(same(page(got.pages, k), page(full, i))).toBe(true);
        k++;
      }
    }
    expect(k).toBe(got.stored);
    expect(got.stored).toBeGreaterThan(20);
    expect(got.stored).toBeLessThan(50);
    expect(pack(wasm, 0n, 0, p).stored).toBe(0);
  });

  it('a page has the same content however the range is split', () => {
    const r = rng(3);
    for (const kind of [0, 1, 2]) {
      const p = params({ kind, seed: 1234n, zeroQ16: 8000, dupQ16: 9000, dupPool: 3, epoch: 4, dirtyQ16: 20000 });
      const base = 0x7f12_3456_0000n;
      const whole = gen(wasm, base, 48, p);
      expect(same(whole, gen(twin, base, 48, p))).toBe(true);
      for (let trial = 0; trial < 4; trial++) {
        let i = 0;
        while (i < 48) {
          const n = Math.min(48 - i, 1 + Math.floor(r() * 11));
          const part = gen(wasm, base + BigInt(i * PAGE), n, p);
          expect(same(part, whole.subarray(i * PAGE, (i + n) * PAGE))).toBe(true);
          i += n;
        }
      }
      // packed in chunks: concatenated stored pages equal the whole run's
      const one = pack(wasm, base, 48, p);
      const a = pack(wasm, base, 20, p),
        b = pack(wasm, base + 20n * 4096n, 28, p);
      expect(a.stored + b.stored).toBe(one.stored);
      expect(same(new Uint8Array([...a.pages, ...b.pages]), one.pages)).toBe(true);
    }
  });

  it('different seeds give different content; pages within a run differ', () => {
    for (const kind of [0, 1, 2]) {
      const a = gen(wasm, 0x10000n, 8, params({ kind, seed: 1n }));
      const b = gen(wasm, 0x10000n, 8, params({ kind, seed: 2n }));
      for (let i = 0; i < 8; i++) {
        expect(same(page(a, i), page(b, i))).toBe(false);
        if (i > 0) expect(same(page(a, i), page(a, i - 1))).toBe(false);
      }
    }
  });

  it('zero and duplicate ratios follow zeroQ16 and dupQ16', () => {
    const n = 4096;
    const p = params({ seed: 77n, zeroQ16: 16384, dupQ16: 13107, dupPool: 8 });
    const got = pack(wasm, 0x100000000n, n, p);
    // zero fraction 0.25
    expect(Math.abs(1 - got.stored / n - 0.25)).toBeLessThan(0.03);
    const hashes = new Map<bigint, number>();
    for (let i = 0; i < got.stored; i++) {
      const h = nodeXxh3.xxh64(page(got.pages, i));
      hashes.set(h, (hashes.get(h) ?? 0) + 1);
    }
    const dupPages = [...hashes.values()].filter((c) => c > 1).reduce((s, c) => s + c, 0);
    const pools = [...hashes.values()].filter((c) => c > 1).length;
    expect(pools).toBe(8);
    // dup fraction of non-zero pages 0.2
    expect(Math.abs(dupPages / got.stored - 0.2)).toBeLessThan(0.03);
    // no dups at all when dupQ16 = 0
    const nd = pack(wasm, 0n, 512, params({ seed: 77n }));
    const set = new Set<bigint>();
    for (let i = 0; i < nd.stored; i++) set.add(nodeXxh3.xxh64(page(nd.pages, i)));
    expect(set.size).toBe(512);
  });

  it('incremental series: about dirtyQ16 of pages change per epoch; the others stay', () => {
    const n = 2048;
    const dirty = 6554; // 10 %
    for (const [kind, dupQ16] of [
      [0, 0],
      [2, 0],
      [1, 0],
      [0, 20000],
    ] as const) {
      const ep = (e: number): Uint8Array =>
        gen(wasm, 0x5550000000n, n, params({ kind, seed: 5n, dupQ16, dupPool: 1000, zeroQ16: 6000, epoch: e, dirtyQ16: dirty }));
      const e0 = ep(0),
        e1 = ep(1),
        e2 = ep(2),
        e3 = ep(3);
      let d01 = 0,
        d12 = 0,
        d03 = 0,
        stable = 0,
        zeros = 0;
      for (let i = 0; i < n; i++) {
        const [a, b, c, d] = [page(e0, i), page(e1, i), page(e2, i), page(e3, i)];
        if (isZero(a)) {
          zeros++;
          expect(isZero(d)).toBe(true);
          continue;
        }
        const c01 = !same(a, b),
          c12 = !same(b, c);
        if (c01) d01++;
        if (c12) d12++;
        if (!same(a, d)) d03++;
        // a rewritten page never returns to an earlier content: equal at 0 and 3 means untouched
        if (same(a, d)) {
          stable++;
          expect(!c01 && !c12 && same(c, d)).toBe(true);
        }
      }
      const nz = n - zeros;
      expect(Math.abs(d01 / nz - 0.1), `kind ${kind}`).toBeLessThan(0.03);
      expect(Math.abs(d12 / nz - 0.1), `kind ${kind}`).toBeLessThan(0.03);
      expect(Math.abs(d03 / nz - (1 - 0.9 ** 3)), `kind ${kind}`).toBeLessThan(0.04);
      expect(stable).toBeGreaterThan(nz * 0.65);
      // twin agrees on a later epoch
      const p7 = params({ kind, seed: 5n, dupQ16, dupPool: 1000, zeroQ16: 6000, epoch: 7, dirtyQ16: dirty });
      expect(same(gen(wasm, 0x5550000000n, 16, p7), gen(twin, 0x5550000000n, 16, p7))).toBe(true);
    }
  });

  it('dirtyQ16 = 65536 rewrites every non-zero page at every epoch; 0 never', () => {
    const p = (e: number, d: number): GenParams => params({ seed: 9n, epoch: e, dirtyQ16: d, zeroQ16: 0 });
    const a = gen(wasm, 0n, 16, p(4, 65536)),
      b = gen(wasm, 0n, 16, p(5, 65536));
    const c = gen(wasm, 0n, 16, p(0, 0)),
      d = gen(wasm, 0n, 16, p(9, 0));
    for (let i = 0; i < 16; i++) expect(same(page(a, i), page(b, i))).toBe(false);
    expect(same(c, d)).toBe(true);
  });

  it('random content is incompressible, text compresses, pattern is not trivial', () => {
    const ratio = (b: Uint8Array): number => deflateSync(b).length / b.length;
    const rnd = gen(wasm, 0x200000n, 64, params({ kind: 0 }));
    const txt = gen(wasm, 0x200000n, 64, params({ kind: 1 }));
    const pat = gen(wasm, 0x200000n, 64, params({ kind: 2 }));
    expect(ratio(rnd)).toBeGreaterThan(0.95);
    expect(ratio(txt)).toBeLessThan(0.5);
    expect(ratio(txt)).toBeGreaterThan(0.15);
    expect(ratio(pat)).toBeLessThan(0.5);
    // text is printable words, spaces, newlines and punctuation
    expect(/^[a-z .,\n]+$/.test(Buffer.from(txt).toString('latin1'))).toBe(true);
    // every byte value appears in random content, roughly uniformly
    const hist = new Array(256).fill(0);
    for (const x of rnd) hist[x]++;
    expect(Math.min(...hist)).toBeGreaterThan(700);
    expect(Math.max(...hist)).toBeLessThan(1350);
  });

  it('pattern words are (address + offset) XOR a per-page key', () => {
    const g = gen(twin, 0x7000n, 2, params({ kind: 2 }));
    const dv = new DataView(g.buffer);
    const key0 = dv.getBigUint64(0, true) ^ 0x7000n;
    for (let w = 0; w < 512; w++) expect(dv.getBigUint64(w * 8, true) ^ key0).toBe(0x7000n + BigInt(8 * w));
    const key1 = dv.getBigUint64(4096, true) ^ 0x8000n;
    expect(key1).not.toBe(key0);
    expect(dv.getBigUint64(4096 + 8 * 100, true) ^ key1).toBe(0x8000n + 800n);
  });
});
