// Synthetic page content for `crimg gen`: deterministic, reproducible on any
// machine, and generated at memory bandwidth.
//
// The content of a page depends only on (seed, page number, epoch parameters),
// never on how a range is split into calls, so any chunking of the work gives
// identical bytes. The exact algorithm is part of the reproducibility contract
// and is specified in docs/KERNELS.md ("Synthetic content"); the plain-TS twin
// in src/kernels/twin/gen.ts implements the same specification.

import { PAGE, slotPtr } from './abi';
import { xxh3UpdateRaw } from './xxh3';

// ---------------------------------------------------------------------------
// Constants of the specification (do not change: they define the bytes).

const GOLDEN: u64 = 0x9E3779B97F4A7C15;
const C_SEED: u64 = 0x63726D672D67656E; // "crmg-gen"
const C_EPOCH: u64 = 0xD1B54A32D192ED03;
const C_VER: u64 = 0x8CB92BA72F3D8DD7;
const C_DUP: u64 = 0xA0761D6478BD642F;

/** splitmix64 finaliser: a bijection of u64 with full avalanche. */
// @ts-ignore: decorator
@inline function mix64(z: u64): u64 {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
  return z ^ (z >> 31);
}

// ---------------------------------------------------------------------------
// Text dictionary: 256 entries (185 words, 71 two-word phrases with '_' for the
// inner space), each at most 13 bytes. Stored padded to 16 bytes so that one
// v128 store writes an entry.

const D0 = 'the of and to in is that for it as with was on be by at this are from or have an not but which they ';
const D1 = 'you his all one had their were there can been has more will her would if so what about when into ';
const D2 = 'than them only some other time could these may two first then its new also any after most over such ';
const D3 = 'like our where made very through being many those before must system data memory page process kernel ';
const D4 = 'thread signal file value number state table image record return buffer address region offset length ';
const D5 = 'stack heap register vector check point restore write read open close map copy move store load start ';
const D6 = 'stop level order group field block cache queue server client network socket stream packet header ';
const D7 = 'payload version format object string array index count total error result report limit option ';
const D8 = 'control device driver module function class method type update create delete insert select commit ';
const D9 = 'branch merge change event handle timer clock people world water house small large great little early ';
const D10 = 'late long short high low right left good well back of_the in_the to_the on_the for_the and_the to_be ';
const D11 = 'it_is that_the with_the from_the at_the by_the is_a as_a in_a of_a for_a with_a it_was there_is ';
const D12 = 'there_are this_is we_have they_are can_be will_be has_been have_been would_be one_of all_of some_of ';
const D13 = 'part_of most_of out_of each_other as_well such_as so_that more_than rather_than in_order the_same ';
const D14 = 'the_first the_new the_other the_kernel the_process the_system the_page page_table the_file the_data ';
const D15 = 'the_memory the_stack the_signal file_system data_block memory_map free_list hash_table error_code ';
const D16 = 'return_value user_space address_space time_slice run_queue page_fault stack_frame call_site ';

const WTAB: usize = memory.data(256 * 16, 16);
const WLEN: usize = memory.data(256, 16);
/** Separators: 16 entries as u16 (byte 0, byte 1) and their lengths. */
const SEPS: usize = memory.data<u16>([
  0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0A, 0x0A, 0x202E, 0x202C,
], 16);
const SEPLEN: usize = memory.data<u8>([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2], 16);
/** Tail buffer for the last words of a text page (a group is at most 5 * 15 bytes). */
const TAIL: usize = memory.data(128, 16);

let nwords: i32 = 0;

function addWords(s: string): void {
  const n = s.length;
  let start = 0;
  for (let i = 0; i < n; i++) {
    if (s.charCodeAt(i) == 0x20) {
      if (i > start) {
        const e = WTAB + (<usize>nwords << 4);
        for (let k = start; k < i; k++) {
          const c = s.charCodeAt(k);
          store<u8>(e + <usize>(k - start), c == 0x5F ? 0x20 : c);
        }
        for (let k = i - start; k < 16; k++) store<u8>(e + <usize>k, 0x20);
        store<u8>(WLEN + <usize>nwords, <u8>(i - start));
        nwords++;
      }
      start = i + 1;
    }
  }
}

addWords(D0); addWords(D1); addWords(D2); addWords(D3); addWords(D4); addWords(D5);
addWords(D6); addWords(D7); addWords(D8); addWords(D9); addWords(D10); addWords(D11);
addWords(D12); addWords(D13); addWords(D14); addWords(D15); addWords(D16);

/** Number of dictionary entries parsed at start (must be 256; checked by tests). */
export function gen_dict_size(): i32 { return nwords; }

// ---------------------------------------------------------------------------
// Per-page decision. Results are left in these globals.

let gKey: u64 = 0;
let gBase: u64 = 0;

/** Returns false when the page is a zero page; otherwise sets gKey/gBase. */
// @ts-ignore: decorator
@inline function pageDesc(
  sk: u64, pn: u64, zeroQ16: u32, dupQ16: u32, dupPool: u32, epoch: u32, dirtyQ16: u32,
): bool {
  const ph = mix64(sk ^ (pn * GOLDEN));
  if (<u32>(ph & 0xFFFF) < zeroQ16) return false;
  // Content version: last epoch j in [1, epoch] at which the page was dirtied.
  let v: u32 = 0;
  if (dirtyQ16 != 0) {
    for (let j = epoch; j >= 1; j--) {
      const dh = mix64(ph ^ mix64(<u64>j * GOLDEN + C_EPOCH));
      if (<u32>(dh & 0xFFFF) < dirtyQ16) { v = j; break; }
    }
  }
  const vh = mix64(ph ^ mix64(<u64>v * GOLDEN + C_VER));
  if (<u32>((ph >> 16) & 0xFFFF) < dupQ16) {
    const pool: u64 = dupPool == 0 ? 1 : <u64>dupPool;
    const idx = ((vh >> 32) * pool) >> 32;
    gKey = mix64(sk ^ mix64(idx * GOLDEN + C_DUP));
    gBase = idx << 12;
  } else {
    gKey = vh;
    gBase = pn << 12;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Content kinds.

/** Kind 0: eight xorshift128+ lanes (four i64x2 vectors), seeded per page by
 *  splitmix64 from the content key. Output word of lane L is x_L + y_L. */
function fillRandom(dst: usize, key: u64): void {
  let x0 = i64x2.splat(mix64(key + GOLDEN * 1));
  x0 = i64x2.replace_lane(x0, 1, mix64(key + GOLDEN * 3));
  let y0 = i64x2.splat(mix64(key + GOLDEN * 2));
  y0 = i64x2.replace_lane(y0, 1, mix64(key + GOLDEN * 4));
  let x1 = i64x2.splat(mix64(key + GOLDEN * 5));
  x1 = i64x2.replace_lane(x1, 1, mix64(key + GOLDEN * 7));
  let y1 = i64x2.splat(mix64(key + GOLDEN * 6));
  y1 = i64x2.replace_lane(y1, 1, mix64(key + GOLDEN * 8));
  let x2 = i64x2.splat(mix64(key + GOLDEN * 9));
  x2 = i64x2.replace_lane(x2, 1, mix64(key + GOLDEN * 11));
  let y2 = i64x2.splat(mix64(key + GOLDEN * 10));
  y2 = i64x2.replace_lane(y2, 1, mix64(key + GOLDEN * 12));
  let x3 = i64x2.splat(mix64(key + GOLDEN * 13));
  x3 = i64x2.replace_lane(x3, 1, mix64(key + GOLDEN * 15));
  let y3 = i64x2.splat(mix64(key + GOLDEN * 14));
  y3 = i64x2.replace_lane(y3, 1, mix64(key + GOLDEN * 16));
  const end = dst + PAGE;
  for (let p = dst; p < end; p += 64) {
    v128.store(p, i64x2.add(x0, y0));
    v128.store(p, i64x2.add(x1, y1), 16);
    v128.store(p, i64x2.add(x2, y2), 32);
    v128.store(p, i64x2.add(x3, y3), 48);
    let t0 = v128.xor(x0, i64x2.shl(x0, 23));
    let t1 = v128.xor(x1, i64x2.shl(x1, 23));
    let t2 = v128.xor(x2, i64x2.shl(x2, 23));
    let t3 = v128.xor(x3, i64x2.shl(x3, 23));
    x0 = y0; x1 = y1; x2 = y2; x3 = y3;
    y0 = v128.xor(v128.xor(t0, y0), v128.xor(i64x2.shr_u(t0, 18), i64x2.shr_u(y0, 5)));
    y1 = v128.xor(v128.xor(t1, y1), v128.xor(i64x2.shr_u(t1, 18), i64x2.shr_u(y1, 5)));
    y2 = v128.xor(v128.xor(t2, y2), v128.xor(i64x2.shr_u(t2, 18), i64x2.shr_u(y2, 5)));
    y3 = v128.xor(v128.xor(t3, y3), v128.xor(i64x2.shr_u(t3, 18), i64x2.shr_u(y3, 5)));
  }
}

/** Kind 2: word w (u64 at byte 8w) = (base + 8w) XOR key. */
function fillPattern(dst: usize, base: u64, key: u64): void {
  const k = i64x2.splat(key);
  let a = i64x2.replace_lane(i64x2.splat(base), 1, base + 8);
  const step = i64x2.splat(16);
  let a2 = i64x2.add(a, i64x2.splat(32));
  const step2 = i64x2.splat(64);
  const end = dst + PAGE;
  for (let p = dst; p < end; p += 64) {
    v128.store(p, v128.xor(a, k));
    v128.store(p, v128.xor(i64x2.add(a, step), k), 16);
    v128.store(p, v128.xor(a2, k), 32);
    v128.store(p, v128.xor(i64x2.add(a2, step), k), 48);
    a = i64x2.add(a, step2);
    a2 = i64x2.add(a2, step2);
  }
}

/** Writes the five entries of one 64-bit draw at p; returns bytes of text produced. */
// @ts-ignore: decorator
@inline function textGroup(p: usize, r: u64): usize {
  let q = p;
  for (let j = 0; j < 5; j++) {
    const w = <usize>(r & 0xFF);
    const s = <usize>((r >> 8) & 0xF);
    r >>= 12;
    v128.store(q, v128.load(WTAB + (w << 4)));
    q += <usize>load<u8>(WLEN + w);
    store<u16>(q, load<u16>(SEPS + (s << 1)));
    q += <usize>load<u8>(SEPLEN + s);
  }
  return q - p;
}

/** Kind 1: the first 4096 bytes of a stream of dictionary entries and separators.
 *  Draw t (t = 1, 2, ...) is r_t = mix64(key + t * GOLDEN); it yields five
 *  (entry, separator) pairs from its 12-bit fields, low bits first. */
function fillText(dst: usize, key: u64): void {
  let s = key;
  let pos: usize = 0;
  while (pos <= PAGE - 80) {
    s += GOLDEN;
    pos += textGroup(dst + pos, mix64(s));
  }
  while (pos < PAGE) {
    s += GOLDEN;
    const g = textGroup(TAIL, mix64(s));
    const n = min(g, PAGE - pos);
    memory.copy(dst + pos, TAIL, n);
    pos += g;
  }
}

// @ts-ignore: decorator
@inline function fillPage(dst: usize, kind: u32): void {
  if (kind == 1) fillText(dst, gKey);
  else if (kind == 2) fillPattern(dst, gBase, gKey);
  else fillRandom(dst, gKey);
}

// ---------------------------------------------------------------------------
// Exports.

/** Fill npages full pages at dst with the content of pages vaddr, vaddr+4096, ... */
export function gen_pages(
  dst: usize, vaddr: u64, npages: u32, seed: u64, kind: u32,
  zeroQ16: u32, dupQ16: u32, dupPool: u32, epoch: u32, dirtyQ16: u32,
): void {
  const sk = mix64(seed ^ C_SEED);
  let pn = vaddr >> 12;
  for (let i: u32 = 0; i < npages; i++, pn++) {
    const p = dst + (<usize>i << 12);
    if (pageDesc(sk, pn, zeroQ16, dupQ16, dupPool, epoch, dirtyQ16)) fillPage(p, kind);
    else memory.fill(p, 0, PAGE);
  }
}

/** gen_pages fused with pages_pack: only non-zero pages are written, compacted at
 *  dst; bitmap bit i = page i stored; stored pages are fed to hash slot `slot`.
 *  Returns the number of pages stored. */
export function gen_pack(
  dst: usize, vaddr: u64, npages: u32, seed: u64, kind: u32,
  zeroQ16: u32, dupQ16: u32, dupPool: u32, epoch: u32, dirtyQ16: u32,
  bitmapPtr: usize, slot: u32,
): u32 {
  const sk = mix64(seed ^ C_SEED);
  const st = slotPtr(slot);
  let pn = vaddr >> 12;
  let stored: u32 = 0;
  let bits: u64 = 0;
  for (let i: u32 = 0; i < npages; i++, pn++) {
    if (pageDesc(sk, pn, zeroQ16, dupQ16, dupPool, epoch, dirtyQ16)) {
      const p = dst + (<usize>stored << 12);
      fillPage(p, kind);
      xxh3UpdateRaw(st, p, PAGE);
      bits |= (<u64>1) << (<u64>(i & 63));
      stored++;
    }
    if ((i & 63) == 63) {
      store<u64>(bitmapPtr + (<usize>(i >> 6) << 3), bits);
      bits = 0;
    }
  }
  if ((npages & 63) != 0) store<u64>(bitmapPtr + (<usize>(npages >> 6) << 3), bits);
  return stored;
}
