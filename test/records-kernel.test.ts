import { describe, expect, it } from 'vitest';
import { xxh3 as nodeXxh3 } from '@node-rs/xxhash';
import type { Kernels } from '../src/kernels/api.js';
import { both, rng, twin, wasm } from './helpers/kernels.js';

function randomBytes(r: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const pad8 = (n: number): number => (n + 7) & ~7;
const IMG = 9,
  REC = 10;

/** Independent reference: the bytes of a sealed record and its checksum (docs/FORMAT.md). */
function reference(kind: number, flags: number, payload: Uint8Array): Uint8Array {
  const padded = pad8(payload.length);
  const rec = new Uint8Array(16 + padded);
  const dv = new DataView(rec.buffer);
  dv.setUint16(0, kind, true);
  dv.setUint16(2, flags, true);
  dv.setUint32(4, payload.length, true);
  rec.set(payload, 16);
  const hashed = new Uint8Array(padded + 8);
  hashed.set(rec.subarray(16));
  hashed.set(rec.subarray(0, 8), padded);
  dv.setBigUint64(8, nodeXxh3.xxh64(hashed), true);
  return rec;
}

describe('record framing kernels', () => {
  it('recSeal writes the header, zeroes the padding and feeds the header to the image slot (WASM = twin = reference)', () => {
    const r = rng(31);
    for (const len of [0, 1, 7, 8, 9, 100, 223, 224, 232, 233, 240, 241, 1000, 4096, 70000]) {
      const payload = randomBytes(r, len);
      const kind = 1 + Math.floor(r() * 0x7ffe),
        flags = Math.floor(r() * 4);
      const want = reference(kind, flags, payload);
      const outs: Uint8Array[] = [];
      for (const k of both) {
        const at = k.staging(200000) + 8; // deliberately unaligned to 16
        const m = k.u8();
        m.fill(0xa5, at, at + 16 + pad8(len) + 8); // garbage in the padding, header and scratch
        m.set(payload, at + 16);
        k.xxh3Init(IMG);
        const size = k.recSeal(at, kind, flags, len, IMG);
        expect(size).toBe(16 + pad8(len));
        outs.push(k.u8().slice(at, at + size));
        expect(k.xxh3Digest(IMG)).toBe(nodeXxh3.xxh64(want.subarray(0, 16)));
      }
      expect(hex(outs[0]!)).toBe(hex(want));
      expect(hex(outs[1]!)).toBe(hex(want));
    }
  });

  it('recSealStream seals a record whose payload was hashed while being produced', () => {
    const r = rng(32);
    for (const len of [5, 16, 300, 5000]) {
      const payload = randomBytes(r, len);
      const want = reference(0x0303, 0, payload);
      for (const k of both) {
        const at = k.staging(200000);
        const m = k.u8();
        m.fill(0x5a, at, at + 16 + pad8(len));
        m.set(payload, at + 16);
        k.xxh3Init(REC);
        k.xxh3Init(IMG);
        k.xxh3Update(REC, at + 16, len);
        expect(k.recSealStream(at, 0x0303, 0, len, REC, IMG)).toBe(16 + pad8(len));
        expect(hex(k.u8().slice(at, at + 16 + pad8(len)))).toBe(hex(want));
        expect(k.xxh3Digest(IMG)).toBe(nodeXxh3.xxh64(want.subarray(0, 16)));
      }
    }
  });

  it('pagesRecHead + pagesPack + pagesRecTail make the PAGES record the format describes', () => {
    const r = rng(33);
    for (const n of [1, 63, 64, 65, 130]) {
      const pages = new Uint8Array(n * 4096);
      const keep: boolean[] = [];
      for (let i = 0; i < n; i++) {
        keep.push(r() < 0.6);
        if (keep[i]) pages.set(randomBytes(r, 4096), i * 4096);
      }
      const addr = 0x7f0012340000n + BigInt(Math.floor(r() * 1000)) * 4096n;
      const stored = keep.filter(Boolean).length;
      const bm = new Uint8Array(Math.ceil(n / 64) * 8);
      keep.forEach((b, i) => {
        if (b) bm[i >> 3]! |= 1 << (i & 7);
      });
      const payload = new Uint8Array(16 + stored * 4096 + bm.length);
      const pdv = new DataView(payload.buffer);
      pdv.setBigUint64(0, addr, true);
      pdv.setUint32(8, n, true);
      let j = 0;
      for (let i = 0; i < n; i++) if (keep[i]) payload.set(pages.subarray(i * 4096, (i + 1) * 4096), 16 + 4096 * j++);
      payload.set(bm, 16 + stored * 4096);
      const want = reference(0x0303, 0, payload);
      for (const k of both as Kernels[]) {
        const base = k.staging(4 << 20);
        const src = base,
          bmp = base + (1 << 20),
          at = base + (2 << 20);
        k.u8().set(pages, src);
        k.u8().fill(0x77, at, at + 32);
        k.xxh3Init(IMG);
        k.pagesRecHead(at, addr, n, REC);
        expect(k.pagesPack(src, n, at + 32, bmp, REC)).toBe(stored);
        expect(k.pagesRecTail(at, n, stored, bmp, REC, IMG)).toBe(want.length);
        expect(hex(k.u8().slice(at, at + want.length))).toBe(hex(want));
        expect(k.xxh3Digest(IMG)).toBe(nodeXxh3.xxh64(want.subarray(0, 16)));
      }
    }
  });

  it('regsPack1 = regsPack of the adjacent set, and feeds both headers to the image slot', () => {
    const r = rng(34);
    for (let t = 0; t < 20; t++) {
      const regs = randomBytes(r, 216),
        fpu = randomBytes(r, 512);
      const results: string[] = [];
      for (const k of both) {
        const base = k.staging(1 << 16);
        const m = k.u8();
        m.set(regs, base);
        m.set(fpu, base + 216);
        k.regsPack(base, 1, base + 1024);
        const viaPack = m.slice(base + 1024, base + 1024 + 760);
        // apart, in the other order, unaligned
        m.set(fpu, base + 4096 + 3);
        m.set(regs, base + 8192 + 5);
        k.xxh3Init(IMG);
        k.regsPack1(base + 8192 + 5, base + 4096 + 3, base + 12288 + 8, IMG);
        const got = k.u8().slice(base + 12288 + 8, base + 12288 + 8 + 760);
        expect(hex(got)).toBe(hex(viaPack));
        const hdrs = new Uint8Array(32);
        hdrs.set(got.subarray(0, 16));
        hdrs.set(got.subarray(232, 248), 16);
        expect(k.xxh3Digest(IMG)).toBe(nodeXxh3.xxh64(hdrs));
        results.push(hex(got));
      }
      expect(results[0]).toBe(results[1]);
    }
  });

  it('images written with the WASM kernels and with the twin are identical', async () => {
    const { generate } = await import('../src/gen/generate.js');
    const { writeImage, MemorySink } = await import('../src/index.js');
    for (const spec of [
      { seed: 3, size: 300 << 10, threads: 3 },
      { seed: 4, size: 64 << 10, content: 'text' as const },
    ]) {
      const a = new MemorySink(),
        b = new MemorySink();
      await writeImage(generate(spec), a, { kernels: wasm });
      await writeImage(generate(spec), b, { kernels: twin });
      expect(a.written).toBeGreaterThan(0);
      expect(Buffer.from(a.bytes()).equals(Buffer.from(b.bytes()))).toBe(true);
    }
  });
});
