import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createXXHash3, type IHasher } from 'hash-wasm';
import { xxh3_64 as twinXxh3, Xxh3Stream } from '../src/kernels/twin/xxh3.js';
import { NSLOTS, SLOT_BYTES, STATE_BASE, type Kernels } from '../src/kernels/api.js';
import { rng, twin, wasm } from './helpers/kernels.js';

interface Kat {
  short: string[];
  long: Record<string, string>;
}
const kat = JSON.parse(readFileSync(new URL('./fixtures/xxh3-kat.json', import.meta.url), 'utf8')) as Kat;

/** The known-answer input (see the fixture's "about"): a 32-bit LCG, top byte per step. */
function katBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = 0x2545f491;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function randomBytes(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (r() * 256) | 0;
  return b;
}

const hex = (h: bigint): string => h.toString(16).padStart(16, '0');

let hw: IHasher;
beforeAll(async () => {
  hw = await createXXHash3(0, 0);
});
function refHash(b: Uint8Array): string {
  hw.init();
  hw.update(b);
  return hw.digest('hex');
}

/** Place `data` in kernel memory at staging + offset; returns its pointer. */
function put(k: Kernels, data: Uint8Array, offset = 0): number {
  const p = k.staging(offset + data.length + 16) + offset;
  k.u8().set(data, p);
  return p;
}

/** Stream `data` into `slot` in the given chunk sizes (which sum to data.length). */
function streamChunks(k: Kernels, slot: number, ptr: number, chunks: number[]): bigint {
  k.xxh3Init(slot);
  let off = 0;
  for (const c of chunks) {
    k.xxh3Update(slot, ptr + off, c);
    off += c;
  }
  return k.xxh3Digest(slot);
}

describe('XXH3-64 known answers (xxhsum -H3, committed fixture)', () => {
  const maxLong = Math.max(...Object.keys(kat.long).map(Number));
  const input = katBytes(maxLong);

  it('the fixture covers every length 0..1024 and the long lengths', () => {
    expect(kat.short).toHaveLength(1025);
    expect(Object.keys(kat.long).length).toBeGreaterThanOrEqual(10);
    expect(kat.short[0]).toBe('2d06800538d394c2'); // the well-known XXH3-64 of the empty input
  });

  it('hash-wasm agrees with the fixture (the fixture is sound)', () => {
    for (let n = 0; n <= 1024; n++) expect(refHash(input.subarray(0, n)), `len ${n}`).toBe(kat.short[n]);
    for (const [n, h] of Object.entries(kat.long)) expect(refHash(input.subarray(0, Number(n))), `len ${n}`).toBe(h);
  });

  it('WASM one-shot matches every known answer', () => {
    const p = put(wasm, input);
    for (let n = 0; n <= 1024; n++) expect(hex(wasm.xxh3(p, n)), `len ${n}`).toBe(kat.short[n]);
    for (const [n, h] of Object.entries(kat.long)) expect(hex(wasm.xxh3(p, Number(n))), `len ${n}`).toBe(h);
  });

  it('twin one-shot matches every known answer', () => {
    for (let n = 0; n <= 1024; n++) expect(hex(twinXxh3(input.subarray(0, n))), `len ${n}`).toBe(kat.short[n]);
    for (const [n, h] of Object.entries(kat.long)) {
      if (Number(n) > 200_000) continue; // the BigInt twin is slow; WASM covers the MiB lengths
      expect(hex(twinXxh3(input.subarray(0, Number(n)))), `len ${n}`).toBe(h);
    }
  });

  it('WASM streaming in 4 KiB pieces matches the long known answers', () => {
    const p = put(wasm, input);
    for (const [n, h] of Object.entries(kat.long)) {
      const len = Number(n);
      const chunks: number[] = [];
      for (let o = 0; o < len; o += 4096) chunks.push(Math.min(4096, len - o));
      expect(hex(streamChunks(wasm, 5, p, chunks)), `len ${n}`).toBe(h);
    }
  });
});

describe('XXH3-64 against xxhsum at test time', () => {
  const have = spawnSync('xxhsum', ['--version'], { encoding: 'utf8' }).status === 0;

  it(`random inputs agree with ${have ? 'xxhsum -H3' : 'hash-wasm (xxhsum is not installed)'}`, () => {
    const r = rng(99);
    const lens = [0, 1, 3, 4, 8, 9, 16, 17, 128, 129, 240, 241, 1023, 1024, 1025, 4096, 65537];
    for (let i = 0; i < 6; i++) lens.push(Math.floor(r() * 3 * 1024 * 1024));
    for (const [i, n] of lens.entries()) {
      const data = randomBytes(n, 1000 + i);
      let expected: string;
      if (have) {
        const out = spawnSync('xxhsum', ['-H3', '-'], { input: data, encoding: 'utf8' });
        expect(out.status).toBe(0);
        expected = /([0-9a-f]{16})/.exec(out.stdout)![1]!;
      } else {
        expected = refHash(data);
      }
      const p = put(wasm, data, i % 16);
      expect(hex(wasm.xxh3(p, n)), `len ${n}`).toBe(expected);
    }
  });
});

describe('XXH3-64: WASM, twin and hash-wasm agree', () => {
  it('at every length 0..1024 and around the block sizes, at unaligned addresses', () => {
    const data = randomBytes(4200, 7);
    const lens = [...Array(1025).keys(), 2047, 2048, 2049, 3071, 3072, 3073, 4095, 4096, 4097, 4200];
    for (const n of lens) {
      const slice = data.subarray(0, n);
      const expected = refHash(slice);
      const p = put(wasm, slice, n % 13);
      expect(hex(wasm.xxh3(p, n)), `wasm len ${n}`).toBe(expected);
      expect(hex(twinXxh3(slice)), `twin len ${n}`).toBe(expected);
    }
  });

  it('through the Kernels interface of both implementations', () => {
    const data = randomBytes(3000, 8);
    for (const k of [wasm, twin] as Kernels[]) {
      const p = put(k, data, 3);
      for (const n of [0, 5, 100, 240, 241, 1500, 3000]) {
        expect(hex(k.xxh3(p, n)), `${k.name} len ${n}`).toBe(refHash(data.subarray(0, n)));
      }
    }
  });

  it('hashes bytes at the very end of memory without reading past it', () => {
    const mem = wasm.u8();
    const end = mem.length;
    const data = randomBytes(5000, 9);
    for (const n of [1, 7, 15, 63, 64, 65, 300, 5000]) {
      mem.set(data.subarray(0, n), end - n);
      expect(hex(wasm.xxh3(end - n, n)), `len ${n}`).toBe(refHash(data.subarray(0, n)));
      wasm.xxh3Init(2);
      wasm.xxh3Update(2, end - n, n);
      expect(hex(wasm.xxh3Digest(2)), `stream len ${n}`).toBe(refHash(data.subarray(0, n)));
    }
  });
});

describe('XXH3-64 streaming equals one-shot', () => {
  it('at every split point of a 2.5 KiB input (WASM and twin)', () => {
    const n = 2500;
    const data = randomBytes(n, 11);
    const expected = refHash(data);
    const pw = put(wasm, data);
    const pt = put(twin, data);
    for (let split = 0; split <= n; split++) {
      expect(hex(streamChunks(wasm, 1, pw, [split, n - split])), `wasm split ${split}`).toBe(expected);
      expect(hex(streamChunks(twin, 1, pt, [split, n - split])), `twin split ${split}`).toBe(expected);
    }
  });

  it('at every pair of split points (step 7) of a 2 KiB input, WASM', () => {
    const n = 2048;
    const data = randomBytes(n, 12);
    const expected = refHash(data);
    const p = put(wasm, data);
    for (let a = 0; a <= n; a += 7) {
      for (let b = a; b <= n; b += 61) {
        expect(hex(streamChunks(wasm, 4, p, [a, b - a, n - b])), `splits ${a},${b}`).toBe(expected);
      }
    }
  });

  it('every prefix 0..1100 as 1-byte updates (digest after each byte), WASM and twin', () => {
    const data = randomBytes(1100, 13);
    const pw = put(wasm, data);
    const ts = new Xxh3Stream();
    wasm.xxh3Init(6);
    for (let i = 0; i <= data.length; i++) {
      const expected = refHash(data.subarray(0, i));
      expect(hex(wasm.xxh3Digest(6)), `wasm prefix ${i}`).toBe(expected);
      expect(hex(ts.digest()), `twin prefix ${i}`).toBe(expected);
      if (i < data.length) {
        wasm.xxh3Update(6, pw + i, 1);
        ts.update(data.subarray(i, i + 1));
      }
    }
  });

  it('random chunkings of ~100 KiB, with empty updates and digests in between', () => {
    const r = rng(21);
    const n = 100 * 1024 + 37;
    const data = randomBytes(n, 14);
    const expected = refHash(data);
    const pw = put(wasm, data);
    const pt = put(twin, data);
    for (let trial = 0; trial < 40; trial++) {
      const chunks: number[] = [];
      let left = n;
      const scale = [16, 300, 5000, 40000][trial % 4]!;
      while (left > 0) {
        const c = Math.min(left, Math.floor(r() * r() * scale));
        chunks.push(c);
        left -= c;
      }
      const slot = trial % NSLOTS;
      for (const k of trial % 5 === 0 ? [wasm, twin] : [wasm]) {
        const p = k === wasm ? pw : pt;
        k.xxh3Init(slot);
        let off = 0;
        let before = '';
        for (const c of chunks) {
          k.xxh3Update(slot, p + off, c);
          off += c;
          if (r() < 0.05) {
            // Digest is idempotent and leaves the state usable.
            const d1 = k.xxh3Digest(slot);
            expect(k.xxh3Digest(slot)).toBe(d1);
            if (off === n) before = hex(d1);
          }
        }
        expect(hex(k.xxh3Digest(slot)), `${k.name} trial ${trial}`).toBe(expected);
        if (before) expect(before).toBe(expected);
      }
    }
  });

  it('page-aligned big updates over 6 MiB, after a misaligning header', () => {
    const n = 6 * 1024 * 1024;
    const data = randomBytes(n + 8, 15);
    const pages = data.subarray(8);
    const p = put(wasm, data);
    const one = hex(wasm.xxh3(p + 8, n));
    expect(one).toBe(refHash(pages));
    const chunkings: number[][] = [
      [n],
      Array(n / 4096).fill(4096),
      Array(n / 65536).fill(65536),
      [4096, 1024 * 1024, n - 4096 - 2 * 1024 * 1024, 1024 * 1024],
      [1024 * 1024 + 4096, 3 * 4096, n - 1024 * 1024 - 4 * 4096],
    ];
    for (const [i, chunks] of chunkings.entries()) {
      expect(hex(streamChunks(wasm, 7, p + 8, chunks)), `chunking ${i}`).toBe(one);
      // The same pages after an 8-byte header leave the buffer misaligned.
      expect(hex(streamChunks(wasm, 8, p, [8, ...chunks])), `header + chunking ${i}`).toBe(refHash(data));
    }
  });

  it('digest is idempotent and continuable across the 240-byte and block boundaries', () => {
    const data = randomBytes(5000, 16);
    const pw = put(wasm, data);
    const stops = [0, 100, 240, 241, 256, 257, 1000, 1024, 1025, 2048, 4000, 5000];
    for (const k of [wasm, twin] as Kernels[]) {
      const p = k === wasm ? pw : put(twin, data);
      k.xxh3Init(9);
      let at = 0;
      for (const s of stops) {
        k.xxh3Update(9, p + at, s - at);
        at = s;
        const d = k.xxh3Digest(9);
        expect(hex(d), `${k.name} at ${s}`).toBe(refHash(data.subarray(0, s)));
        expect(k.xxh3Digest(9)).toBe(d);
      }
    }
  });

  it('slots are independent and init resets', () => {
    const data = randomBytes(9000, 17);
    const p = put(wasm, data);
    for (let s = 0; s < NSLOTS; s++) wasm.xxh3Init(s);
    // Interleave: slot s gets bytes [0, 500 * (s + 1)) in 100-byte steps.
    for (let off = 0; off < 8000; off += 100) {
      for (let s = 0; s < NSLOTS; s++) if (off < 500 * (s + 1)) wasm.xxh3Update(s, p + off, 100);
    }
    for (let s = 0; s < NSLOTS; s++) {
      expect(hex(wasm.xxh3Digest(s)), `slot ${s}`).toBe(refHash(data.subarray(0, Math.min(8000, 500 * (s + 1)))));
    }
    wasm.xxh3Init(3);
    expect(hex(wasm.xxh3Digest(3))).toBe(kat.short[0]);
    wasm.xxh3Update(3, p, 9000);
    expect(hex(wasm.xxh3Digest(3))).toBe(refHash(data));
  });

  it('the state lives in its slot: slots sit at STATE_BASE + slot * 1 KiB, below staging', () => {
    const data = randomBytes(3000, 18);
    const p = put(wasm, data);
    wasm.xxh3Init(15);
    wasm.xxh3Update(15, p, 3000);
    const mem = wasm.u8();
    const slot15 = STATE_BASE + 15 * SLOT_BYTES;
    const saved = mem.slice(slot15, slot15 + SLOT_BYTES);
    const d = wasm.xxh3Digest(15);
    // Clobbering the state changes the digest; restoring it restores the digest.
    mem.fill(0x55, slot15, slot15 + 64);
    expect(wasm.xxh3Digest(15)).not.toBe(d);
    mem.set(saved, slot15);
    expect(wasm.xxh3Digest(15)).toBe(d);
  });
});

describe('xxh3Pages: one XXH3-64 per 4 KiB page in one call', () => {
  it('WASM and twin give the one-shot hash of every page, in order, and write nothing past the output', () => {
    const npages = 37;
    const data = randomBytes(npages * 4096, 21);
    // pages that exercise the accumulators: all-zero, all-0xff, a copy of another page
    data.fill(0, 5 * 4096, 6 * 4096);
    data.fill(0xff, 9 * 4096, 10 * 4096);
    data.copyWithin(20 * 4096, 3 * 4096, 4 * 4096);
    for (const k of [wasm, twin] as Kernels[]) {
      const p = put(k, data, 16);
      const out = p + npages * 4096 + 24;
      const m = k.u8();
      m.fill(0x5a, out, out + npages * 8 + 64);
      k.xxh3Pages(p, npages, out);
      const dv = new DataView(k.u8().buffer, k.u8().byteOffset + out, npages * 8);
      for (let i = 0; i < npages; i++) {
        const want = refHash(data.subarray(i * 4096, (i + 1) * 4096));
        expect(hex(dv.getBigUint64(i * 8, true)), `${k.name} page ${i}`).toBe(want);
        expect(hex(k.xxh3(p + i * 4096, 4096)), `${k.name} one-shot page ${i}`).toBe(want);
      }
      expect(
        k
          .u8()
          .subarray(out + npages * 8, out + npages * 8 + 64)
          .every((b) => b === 0x5a),
        `${k.name} guard`,
      ).toBe(true);
      k.xxh3Pages(p, 0, out); // no pages: no output
      expect(k.u8()[out + npages * 8]).toBe(0x5a);
    }
  });

  it('pages at unaligned addresses: every offset 0..15 and 61', () => {
    const data = randomBytes(3 * 4096, 22);
    const want = [0, 1, 2].map((i) => refHash(data.subarray(i * 4096, (i + 1) * 4096)));
    for (const off of [...Array(16).keys(), 61]) {
      const p = put(wasm, data, off);
      const out = wasm.staging(4 * 4096 + 64) + 4 * 4096;
      wasm.xxh3Pages(p, 3, out);
      const dv = new DataView(wasm.u8().buffer, out, 24);
      expect(
        [0, 1, 2].map((i) => hex(dv.getBigUint64(i * 8, true))),
        `offset ${off}`,
      ).toEqual(want);
    }
  });

  it('WASM rejects an output that overlaps the pages', () => {
    const p = put(wasm, randomBytes(2 * 4096, 23));
    expect(() => wasm.xxh3Pages(p, 2, p + 4096)).toThrow(/overlaps/);
  });
});
