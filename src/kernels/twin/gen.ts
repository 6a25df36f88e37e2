/**
 * Plain-TypeScript twin of assembly/gen.ts: synthetic page content, written for
 * clarity. Implements the specification in docs/KERNELS.md ("Synthetic
 * content"); the WASM kernel must produce identical bytes.
 */
import { type GenParams, PAGE } from '../api.js';
import type { Xxh3Stream } from './xxh3.js';

const M64 = (1n << 64n) - 1n;
const GOLDEN = 0x9e3779b97f4a7c15n;
const C_SEED = 0x63726d672d67656en; // "crmg-gen"
const C_EPOCH = 0xd1b54a32d192ed03n;
const C_VER = 0x8cb92ba72f3d8dd7n;
const C_DUP = 0xa0761d6478bd642fn;

/** splitmix64 finaliser. */
export function mix64(z: bigint): bigint {
  z &= M64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  return z ^ (z >> 31n);
}

/** The 256 text dictionary entries ('_' stands for a space inside a phrase). */
export const DICT: readonly string[] = `
the of and to in is that for it as with was on be by at this are from or have an not but which they
you his all one had their were there can been has more will her would if so what about when into
than them only some other time could these may two first then its new also any after most over such
like our where made very through being many those before must system data memory page process kernel
thread signal file value number state table image record return buffer address region offset length
stack heap register vector check point restore write read open close map copy move store load start
stop level order group field block cache queue server client network socket stream packet header
payload version format object string array index count total error result report limit option
control device driver module function class method type update create delete insert select commit
branch merge change event handle timer clock people world water house small large great little early
late long short high low right left good well back of_the in_the to_the on_the for_the and_the to_be
it_is that_the with_the from_the at_the by_the is_a as_a in_a of_a for_a with_a it_was there_is
there_are this_is we_have they_are can_be will_be has_been have_been would_be one_of all_of some_of
part_of most_of out_of each_other as_well such_as so_that more_than rather_than in_order the_same
the_first the_new the_other the_kernel the_process the_system the_page page_table the_file the_data
the_memory the_stack the_signal file_system data_block memory_map free_list hash_table error_code
return_value user_space address_space time_slice run_queue page_fault stack_frame call_site
`
  .trim()
  .split(/\s+/)
  .map((w) => w.replace(/_/g, ' '));

/** Separator for each 4-bit selector: 12/16 space, 2/16 newline, 1/16 ". ", 1/16 ", ". */
const SEPS: readonly string[] = [' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', '\n', '\n', '. ', ', '];

const enc = new TextEncoder();
const DICT_BYTES = DICT.map((w) => enc.encode(w));
const SEP_BYTES = SEPS.map((s) => enc.encode(s));

export interface PageDesc {
  zero: boolean;
  key: bigint;
  base: bigint;
}

/** Seed key of a series. */
export function seedKey(seed: bigint): bigint {
  return mix64(seed ^ C_SEED);
}

/** The decision for page number pn (= address >> 12). */
export function pageDesc(sk: bigint, pn: bigint, p: GenParams): PageDesc {
  const ph = mix64(sk ^ ((pn * GOLDEN) & M64));
  if (Number(ph & 0xffffn) < p.zeroQ16) return { zero: true, key: 0n, base: 0n };
  let v = 0;
  if (p.dirtyQ16 !== 0) {
    for (let j = p.epoch; j >= 1; j--) {
      const dh = mix64(ph ^ mix64(BigInt(j) * GOLDEN + C_EPOCH));
      if (Number(dh & 0xffffn) < p.dirtyQ16) {
        v = j;
        break;
      }
    }
  }
  const vh = mix64(ph ^ mix64(BigInt(v) * GOLDEN + C_VER));
  if (Number((ph >> 16n) & 0xffffn) < p.dupQ16) {
    const pool = BigInt(p.dupPool === 0 ? 1 : p.dupPool);
    const idx = ((vh >> 32n) * pool) >> 32n;
    return { zero: false, key: mix64(sk ^ mix64(idx * GOLDEN + C_DUP)), base: (idx << 12n) & M64 };
  }
  return { zero: false, key: vh, base: (pn << 12n) & M64 };
}

/** Kind 0: eight xorshift128+ lanes; lane L seeded x = mix64(key+(2L+1)G), y = mix64(key+(2L+2)G);
 *  64-byte block t holds the lanes' outputs x+y in lane order, then each lane steps. */
function fillRandom(dv: DataView, off: number, key: bigint): void {
  const xh = new Uint32Array(8),
    xl = new Uint32Array(8),
    yh = new Uint32Array(8),
    yl = new Uint32Array(8);
  for (let L = 0; L < 8; L++) {
    const x = mix64(key + BigInt(2 * L + 1) * GOLDEN);
    const y = mix64(key + BigInt(2 * L + 2) * GOLDEN);
    xh[L] = Number(x >> 32n);
    xl[L] = Number(x & 0xffffffffn);
    yh[L] = Number(y >> 32n);
    yl[L] = Number(y & 0xffffffffn);
  }
  for (let t = 0; t < 64; t++) {
    for (let L = 0; L < 8; L++) {
      const a = xl[L]!,
        b = xh[L]!,
        c = yl[L]!,
        d = yh[L]!;
      const lo = (a + c) >>> 0;
      const hi = (b + d + (lo < a ? 1 : 0)) >>> 0;
      const o = off + t * 64 + L * 8;
      dv.setUint32(o, lo, true);
      dv.setUint32(o + 4, hi, true);
      // t = x ^ (x << 23)
      const tl = (a ^ (a << 23)) >>> 0;
      const th = (b ^ ((b << 23) | (a >>> 9))) >>> 0;
      // y' = t ^ y ^ (t >> 18) ^ (y >> 5)
      const nl = (tl ^ c ^ ((tl >>> 18) | (th << 14)) ^ ((c >>> 5) | (d << 27))) >>> 0;
      const nh = (th ^ d ^ (th >>> 18) ^ (d >>> 5)) >>> 0;
      xl[L] = c;
      xh[L] = d;
      yl[L] = nl;
      yh[L] = nh;
    }
  }
}

/** Kind 2: u64 word w = (base + 8w) XOR key. */
function fillPattern(dv: DataView, off: number, base: bigint, key: bigint): void {
  for (let w = 0; w < 512; w++) dv.setBigUint64(off + w * 8, ((base + BigInt(8 * w)) & M64) ^ key, true);
}

/** Kind 1: first 4096 bytes of the stream of (entry, separator) pairs; draw t = 1, 2, ... is
 *  mix64(key + t*G) and gives five pairs from 12-bit fields (entry = low 8 bits, separator = next 4). */
function fillText(m: Uint8Array, off: number, key: bigint): void {
  let s = key;
  let pos = 0;
  const put = (b: Uint8Array): void => {
    const n = Math.min(b.length, PAGE - pos);
    if (n > 0) m.set(n === b.length ? b : b.subarray(0, n), off + pos);
    pos += b.length;
  };
  while (pos < PAGE) {
    s = (s + GOLDEN) & M64;
    let r = mix64(s);
    for (let j = 0; j < 5; j++) {
      put(DICT_BYTES[Number(r & 0xffn)]!);
      put(SEP_BYTES[Number((r >> 8n) & 0xfn)]!);
      r >>= 12n;
    }
  }
}

function fillPage(m: Uint8Array, dv: DataView, off: number, d: PageDesc, kind: number): void {
  if (kind === 1) fillText(m, off, d.key);
  else if (kind === 2) fillPattern(dv, off, d.base, d.key);
  else fillRandom(dv, off, d.key);
}

export function genPages(m: Uint8Array, dst: number, vaddr: bigint, npages: number, p: GenParams): void {
  const dv = new DataView(m.buffer, m.byteOffset, m.byteLength);
  const sk = seedKey(p.seed);
  const pn0 = (vaddr & M64) >> 12n;
  for (let i = 0; i < npages; i++) {
    const d = pageDesc(sk, pn0 + BigInt(i), p);
    const off = dst + i * PAGE;
    if (d.zero) m.fill(0, off, off + PAGE);
    else fillPage(m, dv, off, d, p.kind);
  }
}

export function genPack(
  m: Uint8Array,
  dst: number,
  vaddr: bigint,
  npages: number,
  p: GenParams,
  bitmapPtr: number,
  stream: Xxh3Stream,
): number {
  const dv = new DataView(m.buffer, m.byteOffset, m.byteLength);
  const sk = seedKey(p.seed);
  const pn0 = (vaddr & M64) >> 12n;
  const nwords = Math.ceil(npages / 64);
  m.fill(0, bitmapPtr, bitmapPtr + nwords * 8);
  let stored = 0;
  for (let i = 0; i < npages; i++) {
    const d = pageDesc(sk, pn0 + BigInt(i), p);
    if (d.zero) continue;
    const off = dst + stored * PAGE;
    fillPage(m, dv, off, d, p.kind);
    stream.update(m.subarray(off, off + PAGE));
    m[bitmapPtr + (i >> 3)] |= 1 << (i & 7);
    stored++;
  }
  return stored;
}
