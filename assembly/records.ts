// Record framing for the image writer: one call seals a record (padding,
// header, checksum) and feeds its header to the image checksum, instead of a
// JS round trip per hash step. Specified in docs/FORMAT.md: a record is a
// 16-byte header {u16 kind, u16 flags, u32 len, u64 csum} and the payload
// padded with zeros to a multiple of 8; csum = XXH3-64(padded payload ||
// header bytes 0..7); the image checksum is the streaming XXH3-64 of the magic
// and every record header.

import { slotPtr } from './abi';
import { xxh3_64, xxh3InitRaw, xxh3UpdateRaw, xxh3DigestRaw } from './xxh3';

// @ts-ignore: decorator
@inline function pad8(n: usize): usize { return (n + 7) & ~(<usize>7); }

/** Seal the record at `at` whose payload (len bytes) is in place at at + 16: zero the padding, write
 *  the header with its checksum, feed the header to hash slot imgSlot. Uses the 8 bytes after the
 *  padded record as scratch (they belong to whatever comes next and are overwritten by it).
 *  Returns the record's size (16 + padded payload). */
/** Record kind of PAGES (src/schema.ts K.PAGES; test/schema.test.ts checks it). */
const KIND_PAGES: u32 = 0x0303;

export function rec_seal(at: usize, kindFlags: u32, len: u32, imgSlot: u32): u32 {
  const p = at + 16;
  const padded = pad8(<usize>len);
  for (let i = <usize>len; i < padded; i++) store<u8>(p + i, 0);
  const hdr = <u64>kindFlags | (<u64>len << 32);
  store<u64>(p + padded, hdr);
  const csum = xxh3_64(p, padded + 8);
  store<u64>(at, hdr);
  store<u64>(at, csum, 8);
  xxh3UpdateRaw(slotPtr(imgSlot), at, 16);
  return 16 + <u32>padded;
}

/** Seal a record whose payload (len bytes) was already fed to hash slot recSlot: zero and feed the
 *  padding, feed header bytes 0..7, write the header with the digest, feed the header to imgSlot.
 *  Returns the record's size. */
export function rec_seal_stream(at: usize, kindFlags: u32, len: u32, recSlot: u32, imgSlot: u32): u32 {
  const p = at + 16;
  const padded = pad8(<usize>len);
  const st = slotPtr(recSlot);
  if (padded != <usize>len) {
    memory.fill(p + <usize>len, 0, padded - <usize>len);
    xxh3UpdateRaw(st, p + <usize>len, padded - <usize>len);
  }
  const hdr = <u64>kindFlags | (<u64>len << 32);
  store<u64>(at, hdr);
  xxh3UpdateRaw(st, at, 8);
  store<u64>(at, xxh3DigestRaw(st), 8);
  xxh3UpdateRaw(slotPtr(imgSlot), at, 16);
  return 16 + <u32>padded;
}

// PAGES records: {u64 addr, u32 npages, u32 pgFlags = 0}, the stored pages, the bitmap.

/** Start the PAGES record at `at`: write its fixed fields, reset hash slot recSlot and feed them.
 *  The pages then go to at + 32 (a pack kernel feeding recSlot). */
export function pages_rec_head(at: usize, addr: u64, npages: u32, recSlot: u32): void {
  const st = slotPtr(recSlot);
  store<u64>(at, addr, 16);
  store<u32>(at, npages, 24);
  store<u32>(at, 0, 28);
  xxh3InitRaw(st);
  xxh3UpdateRaw(st, at + 16, 16);
}

/** Finish the PAGES record at `at` holding `stored` packed pages: append the bitmap (ceil(npages/64)
 *  u64 words, copied from bitmapPtr), feed it to recSlot, seal the record (see rec_seal_stream).
 *  Returns the record's size. */
export function pages_rec_tail(at: usize, npages: u32, stored: u32, bitmapPtr: usize, recSlot: u32, imgSlot: u32): u32 {
  const bmBytes = <usize>((npages + 63) >> 6) << 3;
  const bm = at + 32 + (<usize>stored << 12);
  memory.copy(bm, bitmapPtr, bmBytes);
  xxh3UpdateRaw(slotPtr(recSlot), bm, bmBytes);
  return rec_seal_stream(at, KIND_PAGES, 16 + (stored << 12) + <u32>bmBytes, recSlot, imgSlot);
}
