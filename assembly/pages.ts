// Page kernels: zero-page detection, fused pack (compact + bitmap + checksum),
// unpack and plain copy. A page is 4096 bytes; bitmaps are arrays of
// little-endian u64 words, bit i (word i >> 6, bit i & 63) standing for page i.
import { PAGE, slotPtr } from './abi';
import { xxh3UpdateRaw, xxh3UpdateCopyRaw } from './xxh3';

/** True when the page at p holds a non-zero byte. OR-reduces 128 bytes per
 *  step and stops at the first non-zero step (data pages usually exit at once). */
export function pageNonZero(p: usize): bool {
  const end = p + PAGE;
  do {
    const v = v128.or(
      v128.or(v128.or(v128.load(p), v128.load(p, 16)), v128.or(v128.load(p, 32), v128.load(p, 48))),
      v128.or(v128.or(v128.load(p, 64), v128.load(p, 80)), v128.or(v128.load(p, 96), v128.load(p, 112))),
    );
    if (v128.any_true(v)) return true;
    p += 128;
  } while (p < end);
  return false;
}

/** Copy n bytes (a multiple of 64) from s to d, ascending. Also correct when the
 *  ranges overlap with d <= s: each 64-byte group is loaded before it is stored,
 *  and a store only reaches bytes that were already loaded. */
// @ts-ignore: decorator
@inline function copyFwd(d: usize, s: usize, n: usize): void {
  const end = s + n;
  while (s < end) {
    const a = v128.load(s), b = v128.load(s, 16), c = v128.load(s, 32), e = v128.load(s, 48);
    v128.store(d, a);
    v128.store(d, b, 16);
    v128.store(d, c, 32);
    v128.store(d, e, 48);
    s += 64;
    d += 64;
  }
}

/** Zero-fill n bytes (a multiple of 64) at d. */
// @ts-ignore: decorator
@inline function zeroFill(d: usize, n: usize): void {
  const z = i64x2.splat(0);
  const end = d + n;
  while (d < end) {
    v128.store(d, z);
    v128.store(d, z, 16);
    v128.store(d, z, 32);
    v128.store(d, z, 48);
    d += 64;
  }
}

/** Bitmap of non-zero pages of [ptr, ptr + npages * PAGE) at bitmapPtr
 *  (ceil(npages / 64) words, unused high bits of the last word are 0).
 *  Returns the number of non-zero pages. */
export function zero_scan(ptr: usize, npages: u32, bitmapPtr: usize): u32 {
  let word: u64 = 0;
  let count: u32 = 0;
  for (let i: u32 = 0; i < npages; i++) {
    if (pageNonZero(ptr + <usize>i * PAGE)) {
      word |= (<u64>1) << (<u64>(i & 63));
      count++;
    }
    if ((i & 63) == 63) {
      store<u64>(bitmapPtr + (<usize>(i >> 6) << 3), word);
      word = 0;
    }
  }
  if (npages & 63) store<u64>(bitmapPtr + (<usize>(npages >> 6) << 3), word);
  return count;
}

/** Fused pack: each non-zero page of src is copied to the next free page at dst
 *  (dst == src or dst below src allowed: in-place compaction) and fed to hash
 *  slot `slot`; bitmap as in zero_scan. One pass over the source: the zero check
 *  reads the page (stopping early on data pages), then one loop copies and
 *  hashes it, each 64-byte stripe loaded once (xxh3UpdateCopyRaw).
 *  Returns the number of pages stored. */
export function pages_pack(src: usize, npages: u32, dst: usize, bitmapPtr: usize, slot: u32): u32 {
  const st = slotPtr(slot);
  let d = dst;
  let word: u64 = 0;
  let count: u32 = 0;
  for (let i: u32 = 0; i < npages; i++) {
    const p = src + <usize>i * PAGE;
    if (pageNonZero(p)) {
      if (d != p) xxh3UpdateCopyRaw(st, d, p, PAGE);
      else xxh3UpdateRaw(st, d, PAGE);
      d += PAGE;
      word |= (<u64>1) << (<u64>(i & 63));
      count++;
    }
    if ((i & 63) == 63) {
      store<u64>(bitmapPtr + (<usize>(i >> 6) << 3), word);
      word = 0;
    }
  }
  if (npages & 63) store<u64>(bitmapPtr + (<usize>(npages >> 6) << 3), word);
  return count;
}

/** Inverse of pages_pack: expand the stored pages at src into npages pages at
 *  dst, zero-filling the pages whose bitmap bit is 0. src and dst must not overlap. */
export function pages_unpack(src: usize, bitmapPtr: usize, npages: u32, dst: usize): void {
  let s = src;
  for (let i: u32 = 0; i < npages; i++) {
    const d = dst + <usize>i * PAGE;
    const bit = (load<u64>(bitmapPtr + (<usize>(i >> 6) << 3)) >> (<u64>(i & 63))) & 1;
    if (bit) {
      copyFwd(d, s, PAGE);
      s += PAGE;
    } else {
      zeroFill(d, PAGE);
    }
  }
}

/** Copy npages pages from src to dst (non-overlapping), v128 loop. */
export function copy_pages(src: usize, dst: usize, npages: u32): void {
  copyFwd(dst, src, <usize>npages * PAGE);
}
