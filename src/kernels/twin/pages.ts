/**
 * Page kernels in plain TypeScript: the test oracle of assembly/pages.ts.
 * `m` is the whole linear memory; pointers are byte offsets into it.
 *
 * Bitmaps are arrays of little-endian u64 words where bit i (word i >> 6,
 * bit i & 63) stands for page i. Bit i is therefore bit (i & 7) of byte
 * (i >> 3), which is how this twin reads and writes them.
 */
import { PAGE } from '../api.js';
import type { Xxh3Stream } from './xxh3.js';

function isZeroPage(m: Uint8Array, p: number): boolean {
  for (let i = p; i < p + PAGE; i++) if (m[i] !== 0) return false;
  return true;
}

/** Bytes of a bitmap for npages pages: whole u64 words. */
function bitmapBytes(npages: number): number {
  return Math.ceil(npages / 64) * 8;
}

function setBit(m: Uint8Array, bitmapPtr: number, i: number): void {
  m[bitmapPtr + (i >> 3)]! |= 1 << (i & 7);
}

function getBit(m: Uint8Array, bitmapPtr: number, i: number): boolean {
  return ((m[bitmapPtr + (i >> 3)]! >> (i & 7)) & 1) === 1;
}

/** Bitmap of the non-zero pages of [ptr, ptr + npages * PAGE); returns their count. */
export function zeroScan(m: Uint8Array, ptr: number, npages: number, bitmapPtr: number): number {
  m.fill(0, bitmapPtr, bitmapPtr + bitmapBytes(npages));
  let count = 0;
  for (let i = 0; i < npages; i++) {
    if (!isZeroPage(m, ptr + i * PAGE)) {
      setBit(m, bitmapPtr, i);
      count++;
    }
  }
  return count;
}

/** Copy each non-zero page of src to the next free page at dst (dst may equal
 *  src or lie below it), feed it to `stream`, set its bitmap bit. Returns the
 *  number of pages stored. */
export function pagesPack(m: Uint8Array, src: number, npages: number, dst: number, bitmapPtr: number, stream: Xxh3Stream): number {
  m.fill(0, bitmapPtr, bitmapPtr + bitmapBytes(npages));
  let stored = 0;
  for (let i = 0; i < npages; i++) {
    const p = src + i * PAGE;
    if (isZeroPage(m, p)) continue;
    const d = dst + stored * PAGE;
    m.copyWithin(d, p, p + PAGE); // memmove: fine when d < p overlaps
    stream.update(m.subarray(d, d + PAGE));
    setBit(m, bitmapPtr, i);
    stored++;
  }
  return stored;
}

/** Expand the stored pages at src into npages pages at dst; pages whose bit is 0 become zero. */
export function pagesUnpack(m: Uint8Array, src: number, bitmapPtr: number, npages: number, dst: number): void {
  let s = src;
  for (let i = 0; i < npages; i++) {
    const d = dst + i * PAGE;
    if (getBit(m, bitmapPtr, i)) {
      m.copyWithin(d, s, s + PAGE);
      s += PAGE;
    } else {
      m.fill(0, d, d + PAGE);
    }
  }
}

export function copyPages(m: Uint8Array, src: number, dst: number, npages: number): void {
  m.copyWithin(dst, src, src + npages * PAGE);
}
