/**
 * Plain-TypeScript twin of assembly/records.ts: record framing for the image
 * writer (docs/FORMAT.md): header {u16 kind, u16 flags, u32 len, u64 csum}, payload
 * padded with zeros to a multiple of 8, csum = XXH3-64(padded payload || header
 * bytes 0..7), image checksum = XXH3-64 stream of the magic and every header.
 */
import { xxh3_64, type Xxh3Stream } from './xxh3.js';

const pad8 = (n: number): number => (n + 7) & ~7;

function header(m: Uint8Array, at: number, kind: number, flags: number, len: number): DataView {
  const v = new DataView(m.buffer, m.byteOffset + at, 16);
  v.setUint16(0, kind, true);
  v.setUint16(2, flags, true);
  v.setUint32(4, len, true);
  return v;
}

export function recSeal(m: Uint8Array, at: number, kind: number, flags: number, len: number, img: Xxh3Stream): number {
  const padded = pad8(len);
  m.fill(0, at + 16 + len, at + 16 + padded);
  const v = header(m, at, kind, flags, len);
  const buf = new Uint8Array(padded + 8);
  buf.set(m.subarray(at + 16, at + 16 + padded));
  buf.set(m.subarray(at, at + 8), padded);
  v.setBigUint64(8, xxh3_64(buf), true);
  m.set(m.subarray(at, at + 8), at + 16 + padded); // the scratch bytes the WASM kernel leaves there
  img.update(m.subarray(at, at + 16));
  return 16 + padded;
}

export function recSealStream(
  m: Uint8Array,
  at: number,
  kind: number,
  flags: number,
  len: number,
  rec: Xxh3Stream,
  img: Xxh3Stream,
): number {
  const padded = pad8(len);
  m.fill(0, at + 16 + len, at + 16 + padded);
  rec.update(m.subarray(at + 16 + len, at + 16 + padded));
  const v = header(m, at, kind, flags, len);
  rec.update(m.subarray(at, at + 8));
  v.setBigUint64(8, rec.digest(), true);
  img.update(m.subarray(at, at + 16));
  return 16 + padded;
}

export function pagesRecHead(m: Uint8Array, at: number, addr: bigint, npages: number, rec: Xxh3Stream): void {
  const v = new DataView(m.buffer, m.byteOffset + at + 16, 16);
  v.setBigUint64(0, BigInt.asUintN(64, addr), true);
  v.setUint32(8, npages, true);
  v.setUint32(12, 0, true);
  rec.update(m.subarray(at + 16, at + 32));
}

export function pagesRecTail(
  m: Uint8Array,
  at: number,
  npages: number,
  stored: number,
  bitmapPtr: number,
  rec: Xxh3Stream,
  img: Xxh3Stream,
): number {
  const bmBytes = Math.ceil(npages / 64) * 8;
  const bm = at + 32 + stored * 4096;
  m.copyWithin(bm, bitmapPtr, bitmapPtr + bmBytes);
  rec.update(m.subarray(bm, bm + bmBytes));
  return recSealStream(m, at, 0x0303, 0, 16 + stored * 4096 + bmBytes, rec, img);
}
