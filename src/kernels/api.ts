/**
 * The one interface every crimg byte kernel implements, twice: in WebAssembly
 * (assembly/, loaded by wasm.ts) and as a plain-TypeScript twin (twin/) that
 * serves as the test oracle. Both operate on a linear memory with the same
 * layout (see assembly/abi.ts): fixed hash-state slots, a scratch area and a
 * growable staging area. All pointers are byte offsets into that memory.
 *
 * Callers place input in memory (u8() view), call kernels with pointers, and
 * read results from memory. Growing the staging area may replace the memory's
 * ArrayBuffer: fetch u8() again after staging().
 */
export const PAGE = 4096;
export const NSLOTS = 16;
export const SLOT_BYTES = 1024;
export const SCRATCH_BYTES = 256 * 1024;
export const STATE_BASE = 64 * 1024;
export const SCRATCH_BASE = STATE_BASE + 64 * 1024;
export const STAGING_BASE = SCRATCH_BASE + SCRATCH_BYTES;

/** Raw register set given to regsPack: user_regs_struct (216) + FXSAVE (512). */
export const REGSET_RAW_BYTES = 216 + 512;
/** Bytes of one packed register set: REGS record (16 + 216) + FPU record (16 + 512). */
export const REGSET_RECORD_BYTES = 16 + 216 + 16 + 512;

/** Content kinds for synthetic pages. */
export enum FillKind {
  Random = 0,
  Text = 1,
  Pattern = 2,
}

export interface GenParams {
  /** 64-bit seed of the whole series. */
  seed: bigint;
  kind: FillKind;
  /** Fraction of pages that are zero, in 1/65536 units (0..65536). */
  zeroQ16: number;
  /** Fraction of non-zero pages whose content duplicates a page of a small pool, 1/65536 units. */
  dupQ16: number;
  /** Size of the duplicate pool (number of distinct duplicated contents), >= 1. */
  dupPool: number;
  /** Position in an incremental series (0 = first image). */
  epoch: number;
  /** Fraction of pages rewritten between neighbouring epochs, 1/65536 units. */
  dirtyQ16: number;
}

export interface Kernels {
  readonly name: 'wasm' | 'twin';
  /** A view of the whole linear memory (valid until the next staging() growth). */
  u8(): Uint8Array;
  /** Ensure the staging area holds `bytes`; returns STAGING_BASE. Throws LIMIT_EXCEEDED if memory cannot grow. */
  staging(bytes: number): number;

  // ---- checksum: XXH3-64, seed 0 ----
  /** One-shot XXH3-64 of memory [ptr, ptr+len). */
  xxh3(ptr: number, len: number): bigint;
  /** XXH3-64 of each of npages consecutive 4 KiB pages at ptr: npages little-endian u64 at outPtr
   *  (8 bytes per page, in page order). The output must not overlap the pages. */
  xxh3Pages(ptr: number, npages: number, outPtr: number): void;
  /** Reset streaming state `slot` (0..NSLOTS-1). */
  xxh3Init(slot: number): void;
  /** Feed [ptr, ptr+len) to streaming state `slot`. */
  xxh3Update(slot: number, ptr: number, len: number): void;
  /** Digest of everything fed to `slot` since init; the state stays usable. */
  xxh3Digest(slot: number): bigint;

  // ---- pages (4096 bytes each) ----
  /** Zero-page detection: bit i of the little-endian u64 bitmap at bitmapPtr is 1 when page i is not all zero.
   *  Writes ceil(npages/64) u64 words. Returns the number of non-zero pages. */
  zeroScan(ptr: number, npages: number, bitmapPtr: number): number;
  /** Fused copy + zero check + checksum, in one pass: for each page i of src, if it is not all zero,
   *  copy it to the next free page slot at dst and feed it to hash slot `slot`; set bitmap bit i.
   *  dst may equal src or lie below it (in-place compaction). Returns the number of pages stored. */
  pagesPack(src: number, npages: number, dst: number, bitmapPtr: number, slot: number): number;
  /** Inverse of pagesPack: expand the stored pages at src into npages full pages at dst, zero-filling
   *  pages whose bitmap bit is 0. src and dst must not overlap. */
  pagesUnpack(src: number, bitmapPtr: number, npages: number, dst: number): void;
  /** Plain page copy (v128 loop), non-overlapping. */
  copyPages(src: number, dst: number, npages: number): void;

  // ---- synthetic content ----
  /** Fill npages full pages at dst with the deterministic content of the pages at virtual address
   *  vaddr.. under params (zero pages written as zeros). Content depends only on (params, vaddr of the page). */
  genPages(dst: number, vaddr: bigint, npages: number, p: GenParams): void;
  /** Fused generate + pack + checksum: like genPages followed by pagesPack(dst) but writing only the
   *  non-zero pages, compacted, at dst. Returns pages stored; bitmap as in pagesPack. */
  genPack(dst: number, vaddr: bigint, npages: number, p: GenParams, bitmapPtr: number, slot: number): number;

  // ---- registers ----
  /** Expand an XSAVE area in compacted form (XCOMP_BV bit 63 set) at src to standard form at dst.
   *  Returns the standard-form size in bytes (0 if the area is malformed). */
  xsaveToStandard(src: number, srcLen: number, dst: number, dstCap: number): number;
  /** Compact a standard-form XSAVE area for the components in `xcompBv` (bit 63 is set by the kernel).
   *  Returns the compacted size (0 if malformed or dstCap too small). */
  xsaveToCompacted(src: number, srcLen: number, xcompBv: bigint, dst: number, dstCap: number): number;
  /** Size of a standard-form XSAVE area covering the components of xcr0. */
  xsaveStandardSize(xcr0: bigint): number;
  /** Pack n register sets: input at src is n entries of (user_regs_struct 216 bytes + FXSAVE 512 bytes);
   *  output at dst is n pairs of framed image records (REGS then FPU, see docs/FORMAT.md) with
   *  their checksums filled. Returns bytes written (n * REGSET_RECORD_BYTES). */
  regsPack(src: number, n: number, dst: number): number;
  /** Inverse of regsPack: parse n record pairs at src, verify kinds, lengths and checksums, and write the
   *  raw 728-byte entries to dst. Returns -1 on success or the index of the first bad record pair. */
  regsUnpack(src: number, n: number, dst: number): number;
  /** regsPack of one set whose user_regs_struct (216 bytes at regs) and FXSAVE area (512 bytes at fpu)
   *  lie apart, writing its 760 bytes of records at dst; then feeds both record headers to hash slot
   *  imgSlot (the image checksum). */
  regsPack1(regs: number, fpu: number, dst: number, imgSlot: number): void;

  // ---- record framing (the image writer) ----
  /** Seal the record at `at` whose payload (len bytes) is in place at at + 16: zero its padding to a
   *  multiple of 8, write the header {kind, flags, len, XXH3-64(padded payload || header bytes 0..7)}
   *  and feed the 16 header bytes to hash slot imgSlot. May overwrite the 8 bytes after the padded
   *  record (scratch). Returns the record size (16 + padded length). */
  recSeal(at: number, kind: number, flags: number, len: number, imgSlot: number): number;
  /** recSeal for a record whose payload was already fed to hash slot recSlot (pages packed while hashed):
   *  the padding and header bytes 0..7 are fed to recSlot and its digest becomes the checksum. */
  recSealStream(at: number, kind: number, flags: number, len: number, recSlot: number, imgSlot: number): number;
  /** Begin the PAGES record at `at`: fixed fields {addr, npages, 0}, reset recSlot and feed them to it.
   *  The packed pages go to at + 32 (fed to recSlot by the pack kernel). */
  pagesRecHead(at: number, addr: bigint, npages: number, recSlot: number): void;
  /** End the PAGES record at `at` holding `stored` packed pages: append the bitmap copied from bitmapPtr
   *  (ceil(npages/64) u64 words), feed it to recSlot, seal as recSealStream. Returns the record size. */
  pagesRecTail(at: number, npages: number, stored: number, bitmapPtr: number, recSlot: number, imgSlot: number): number;
}
