/**
 * The reader's read window: records whose header, fixed part, page data or bitmap
 * straddle a window boundary verify and read back exactly, and corruptions there are
 * reported with the same codes and offsets as anywhere else. Images are built from
 * the fuzzer's record-writer seed (runs of 1, 63, 64, 65 and 1024 pages) with every
 * page stored, a padding record of unknown kind shifting the big run across the
 * boundary byte by byte, and checksums recomputed independently (test/fuzz/image.mjs).
 */
import { describe, expect, it } from 'vitest';
import * as lib from '../src/index.js';
import { CrimgError, openImage, readImage, verifyImage } from '../src/index.js';
import { READ_WINDOW } from '../src/reader.js';
import { claimRegion, releaseRegion } from '../src/kernels/arena.js';
// @ts-expect-error plain JavaScript helper without types
import { recordWriterImage } from './fuzz/corpus.mjs';
// @ts-expect-error plain JavaScript helper without types
import { K as KIND, build, parse } from './fuzz/image.mjs';

interface FRec {
  kind: number;
  flags: number;
  payload: Uint8Array;
  pad?: Uint8Array;
  off: number;
  csum?: bigint;
  stale?: boolean;
}
const BIG_PAGES = 1000; // the big run: 16 bitmap words, the last one partly used
const BIG_STORED = 768; // its first 768 pages stored: a payload of 3 windows + 144 bytes, so that its end moves with its start
const PAD_KIND = 0x0304; // unknown, skippable

/** Deterministic content of page q of run ri. */
const fillPage = (dst: Uint8Array, at: number, ri: number, q: number): void => {
  for (let j = 0; j < 4096; j += 8) {
    dst[at + j] = (q * 7 + ri * 31 + (j >> 3)) & 0xff;
    dst[at + j + 3] = 0x5a;
  }
};

const base = await recordWriterImage(lib);
const parsed = parse(base) as { magic: Uint8Array; recs: FRec[] };

/** Records of the seed with dense PAGES payloads (every page stored but the big run's last ones). */
function denseRecs(): { recs: FRec[]; bigIndex: number; smallIndex: number } {
  let ri = 0,
    bigIndex = -1,
    smallIndex = -1;
  const recs = parsed.recs.map((r, i) => {
    if (r.kind !== KIND.PAGES) return r;
    const dv0 = new DataView(r.payload.buffer, r.payload.byteOffset, 16);
    let n = dv0.getUint32(8, true);
    if (n === 1024) {
      n = BIG_PAGES;
      bigIndex = i;
    }
    if (n === 65) smallIndex = i;
    const stored: number[] = [];
    for (let q = 0; q < n; q++) if (n !== BIG_PAGES || q < BIG_STORED) stored.push(q);
    const bmb = Math.ceil(n / 64) * 8;
    const pl = new Uint8Array(16 + stored.length * 4096 + bmb);
    pl.set(r.payload.subarray(0, 16));
    new DataView(pl.buffer).setUint32(8, n, true);
    stored.forEach((q, k) => fillPage(pl, 16 + k * 4096, ri, q));
    const bm = 16 + stored.length * 4096;
    for (const q of stored) pl[bm + (q >> 3)]! |= 1 << (q & 7);
    ri++;
    return { kind: r.kind, flags: 0, payload: pl, off: r.off };
  });
  return { recs, bigIndex, smallIndex };
}

/** The dense image with a padding record placing the big run's header at `at` (or as close as 8-byte framing allows). */
function imageWithBigAt(
  at: number,
  edit?: (recs: FRec[], big: number, small: number) => void,
  fix = 'full',
): { bytes: Uint8Array; offs: number[]; big: number; small: number } {
  const { recs, bigIndex, smallIndex } = denseRecs();
  // offsets without padding
  const sizes = recs.map((r) => 16 + Math.ceil(r.payload.length / 8) * 8);
  const bigOff0 = 8 + sizes.slice(0, bigIndex).reduce((a, b) => a + b, 0);
  const padLen = at - bigOff0 - 16;
  if (padLen < 0 || padLen % 8) throw new Error(`cannot place the big run at ${at}`);
  recs.splice(bigIndex, 0, { kind: PAD_KIND, flags: 0, payload: new Uint8Array(padLen).fill(0xa5), off: 0 });
  const big = bigIndex + 1,
    small = smallIndex;
  edit?.(recs, big, small);
  const bytes = build(parsed.magic, recs, { fix, fixIndex: fix === 'full' }) as Uint8Array;
  const offs = (parse(bytes) as { recs: FRec[] }).recs.map((r) => r.off);
  return { bytes, offs, big, small };
}

function errorOf(f: () => unknown): { code: string; offset: number | undefined } | null {
  try {
    f();
  } catch (e) {
    if (e instanceof CrimgError) return { code: e.code, offset: e.offset };
    throw e;
  }
  return null;
}

/** Expected bytes of the whole VMA of the seed image (runs separated by absent pages). */
function expectedVma(img: ReturnType<typeof openImage>): { vma: lib.Vma; bytes: Uint8Array } {
  const vma = img.model.tasks[0]!.mm!.vmas[0]!;
  const out = new Uint8Array(Number(vma.end - vma.start));
  let ri = 0;
  for (const r of img.runsOf(vma)) {
    const first = Number((r.addr - vma.start) / 4096n);
    for (let q = 0; q < r.npages; q++) {
      if (r.npages === BIG_PAGES && q >= BIG_STORED) continue;
      fillPage(out, (first + q) * 4096, ri, q);
    }
    ri++;
  }
  return { vma, bytes: out };
}

// header straddling (-8), ending at the boundary (-16), fixed part straddling (-24),
// payload straddling (-40...); the record ends at 4 windows + delta + 160, so with
// deltas from -152 to -32 its bitmap straddles a boundary (the last piece 8..128 bytes)
const W = READ_WINDOW;
const DELTAS = [-176, -160, -152, -144, -136, -112, -96, -72, -48, -40, -32, -24, -16, -8, 0, 8];

describe('records across the read window', () => {
  it('the seed is what the test expects', () => {
    const { recs, bigIndex, smallIndex } = denseRecs();
    expect(bigIndex).toBeGreaterThan(0);
    expect(smallIndex).toBeGreaterThan(0);
    expect(recs[bigIndex]!.payload.length).toBe(3 * W + 144);
  });

  it.each(DELTAS)('big run header at window + %i: verifies, reads back every page', (d) => {
    const { bytes, offs, big } = imageWithBigAt(W + d);
    expect(offs[big]).toBe(W + d);
    const r = verifyImage(bytes);
    expect(r.stats.pagesStored).toBe(1 + 63 + 64 + 65 + BIG_STORED);
    const img = openImage(bytes);
    try {
      const { vma, bytes: want } = expectedVma(img);
      const k = img.k;
      const n = want.length / 4096;
      const reg = claimRegion(k, n * 4096);
      try {
        img.readVmaPages(vma, reg, 0, n);
        expect(Buffer.compare(k.u8().subarray(reg, reg + n * 4096), want)).toBe(0);
        // pieces that start and end inside runs, across runs and gaps
        for (const [first, cnt] of [
          [0, 1],
          [2, 70],
          [65, 64],
          [130, 200],
          [200, 1],
          [260, n - 260 - 5],
          [1000, n - 1000],
          [n - 1, 1],
        ] as const) {
          k.u8().fill(0xee, reg, reg + n * 4096);
          img.readVmaPages(vma, reg, first, cnt);
          expect(
            k
              .u8()
              .subarray(reg + cnt * 4096, reg + n * 4096)
              .every((b) => b === 0xee),
            `pages ${first}+${cnt} wrote past the end`,
          ).toBe(true);
          expect(
            Buffer.compare(k.u8().subarray(reg, reg + cnt * 4096), want.subarray(first * 4096, (first + cnt) * 4096)),
            `pages ${first}+${cnt}`,
          ).toBe(0);
        }
      } finally {
        releaseRegion(k, reg);
      }
      const mem = img.readMemory(img.model.tasks[0]!.pid, vma.start + 12345n, 3 * W + 77);
      expect(Buffer.compare(mem, want.subarray(12345, 12345 + 3 * W + 77))).toBe(0);
    } finally {
      img.close();
    }
  });

  it.each(DELTAS)('big run header at window + %i: corruptions give the code and offset of the record', (d) => {
    // a flipped byte in the header, the fixed part, the middle and the bitmap, checksums stale
    const { bytes, offs, big } = imageWithBigAt(W + d);
    const off = offs[big]!;
    const end = offs[big + 1]!;
    for (const at of [off + 1, off + 9, off + 16 + 5, off + Math.floor((end - off) / 2), end - 3, end - 100]) {
      const m = bytes.slice();
      m[at]! ^= 0x04;
      const e = errorOf(() => verifyImage(m));
      expect(e, `flip at ${at - off}`).not.toBeNull();
      if (at === off + 1)
        expect(e!.code).not.toBe('OK'); // the kind changed: framing error of some kind
      else expect(e, `flip at ${at - off}`).toEqual({ code: 'CHECKSUM_MISMATCH', offset: off });
    }
    // with the record checksum recomputed: bad page count (fixed part), bits past the page count (bitmap)
    const npagesZero = imageWithBigAt(
      W + d,
      (recs, b) => {
        const p = recs[b]!.payload.slice();
        new DataView(p.buffer).setUint32(8, 0, true);
        recs[b] = { ...recs[b]!, payload: p };
      },
      'rec',
    );
    expect(errorOf(() => verifyImage(npagesZero.bytes))).toEqual({ code: 'BAD_RECORD', offset: off + 16 + 8 });
    const bitPast = imageWithBigAt(
      W + d,
      (recs, b) => {
        const p = recs[b]!.payload.slice();
        p[p.length - 1]! |= 0x80;
        recs[b] = { ...recs[b]!, payload: p };
      },
      'rec',
    );
    const e = errorOf(() => verifyImage(bitPast.bytes));
    expect(e).toEqual({ code: 'BAD_RECORD', offset: off });
    // the lazy reader opens a stale image and refuses its pages when read
    const m = bytes.slice();
    m[Math.floor((off + end) / 2)]! ^= 0x01;
    const img = openImage(m);
    try {
      const vma = img.model.tasks[0]!.mm!.vmas[0]!;
      const reg = claimRegion(img.k, 4096);
      try {
        const first = Number((img.runsOf(vma).find((r) => r.off === off)!.addr - vma.start) / 4096n);
        expect(errorOf(() => img.readVmaPages(vma, reg, first + 500, 1))).toEqual({ code: 'CHECKSUM_MISMATCH', offset: off });
      } finally {
        releaseRegion(img.k, reg);
      }
    } finally {
      img.close();
    }
  });

  it('a record whose payload has non-zero padding is rejected at the padding byte, also across the window', () => {
    for (const d of [-24, -8, 0]) {
      // the 65-page run's payload gets 4 extra bytes (length not a multiple of 8) and padding 0x01
      const { bytes, offs, small } = imageWithBigAt(
        W + d,
        (recs, _b, s) => {
          const p = new Uint8Array(recs[s]!.payload.length + 4);
          p.set(recs[s]!.payload);
          recs[s] = { ...recs[s]!, payload: p, pad: Uint8Array.of(0, 0, 0, 1) };
        },
        'rec',
      );
      const off = offs[small]!;
      const len = new DataView(bytes.buffer, bytes.byteOffset + off + 4, 4).getUint32(0, true);
      expect(errorOf(() => readImage(bytes).close())).toEqual({ code: 'BAD_RECORD', offset: off + 16 + len + 3 });
    }
  });
});
