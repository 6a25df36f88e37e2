/**
 * Pages of a VMA as stretches of non-zero and zero pages: the shape the ELF and
 * CRIU exporters write (data for the one, holes for the other).
 */
import type { Kernels } from './kernels/api.js';
import type { Vma } from './model.js';

const PAGE = 4096;

/** `pages` pages at `at` in kernel memory, all non-zero or all zero; `chunkEnd` on the last span of a chunk. */
export interface PageSpan {
  zero: boolean;
  at: number;
  pages: number;
  chunkEnd: boolean;
}

/**
 * Pages [first, first + count) of `v`, read chunkPages at a time into `region` (room for chunkPages pages, then
 * chunkPages / 8 bytes of bitmap), as alternating spans. A span's bytes stay valid until the next span is asked for.
 */
export function* pageSpans(k: Kernels, v: Vma, first: number, count: number, region: number, chunkPages: number): Generator<PageSpan> {
  const bitmap = region + chunkPages * PAGE;
  for (let q = first; q < first + count; q += chunkPages) {
    const n = Math.min(chunkPages, first + count - q);
    v.pages.read(k, region, q, n);
    k.zeroScan(region, n, bitmap);
    const m = k.u8();
    const bdv = new DataView(m.buffer, m.byteOffset + bitmap, Math.ceil(n / 64) * 8);
    const nonzero = (j: number): boolean => ((bdv.getUint32((j >> 5) * 4, true) >>> (j & 31)) & 1) === 1;
    let j = 0;
    while (j < n) {
      const z = nonzero(j);
      let e = j + 1;
      while (e < n && nonzero(e) === z) e++;
      yield { zero: !z, at: region + j * PAGE, pages: e - j, chunkEnd: e === n };
      j = e;
    }
  }
}
