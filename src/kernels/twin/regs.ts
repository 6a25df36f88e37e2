/**
 * Plain-TypeScript twin of assembly/regs.ts: XSAVE compacted <-> standard form
 * conversion and REGS/FPU record packing. Specification: docs/KERNELS.md ("Registers").
 */
import { xxh3_64 } from './xxh3.js';
import {
  XCOMP_BV_COMPACTED as BIT63,
  XCR0_KNOWN as KNOWN,
  XSAVE_BY_BIT as XSAVE_COMPONENTS,
  XSAVE_MIN_BYTES as HDR_END,
} from '../../cpu/xsave.js';

/** Component numbers >= 2 present in mask, ascending. */
function comps(mask: bigint): number[] {
  const out: number[] = [];
  for (let i = 2; i < 64; i++) if ((mask >> BigInt(i)) & 1n) out.push(i);
  return out;
}

function stdSize(mask: bigint): number {
  let end = HDR_END;
  for (const i of comps(mask)) {
    const c = XSAVE_COMPONENTS.get(i)!;
    end = Math.max(end, c.offset + c.size);
  }
  return end;
}

/** Compacted offsets of the components of mask, and the compacted size. */
function compactLayout(mask: bigint): { offs: Map<number, number>; size: number } {
  const offs = new Map<number, number>();
  let off = HDR_END;
  for (const i of comps(mask)) {
    const c = XSAVE_COMPONENTS.get(i)!;
    if (c.align64) off = Math.ceil(off / 64) * 64;
    offs.set(i, off);
    off += c.size;
  }
  return { offs, size: off };
}

function dv(m: Uint8Array): DataView {
  return new DataView(m.buffer, m.byteOffset, m.byteLength);
}

export function xsaveStandardSize(xcr0: bigint): number {
  xcr0 = BigInt.asUintN(64, xcr0);
  if (xcr0 & ~KNOWN) return 0;
  return stdSize(xcr0);
}

export function xsaveToStandard(m: Uint8Array, src: number, srcLen: number, dst: number, dstCap: number): number {
  if (srcLen < HDR_END) return 0;
  const v = dv(m);
  const xstate = v.getBigUint64(src + 512, true);
  const xcomp = v.getBigUint64(src + 520, true);
  if (!(xcomp & BIT63)) return 0;
  const mask = xcomp & ~BIT63;
  if (mask & ~KNOWN) return 0;
  if (xstate & ~mask) return 0;
  const lay = compactLayout(mask);
  if (lay.size > srcLen) return 0;
  const size = stdSize(mask);
  if (size > dstCap) return 0;
  m.copyWithin(dst, src, src + 512);
  v.setBigUint64(dst + 512, xstate, true);
  m.fill(0, dst + 520, dst + size);
  for (const [i, off] of lay.offs) {
    if (!((xstate >> BigInt(i)) & 1n)) continue;
    const c = XSAVE_COMPONENTS.get(i)!;
    m.copyWithin(dst + c.offset, src + off, src + off + c.size);
  }
  return size;
}

export function xsaveToCompacted(m: Uint8Array, src: number, srcLen: number, xcompBv: bigint, dst: number, dstCap: number): number {
  const mask = BigInt.asUintN(64, xcompBv) & ~BIT63;
  if (mask & ~KNOWN) return 0;
  if (srcLen < HDR_END) return 0;
  const v = dv(m);
  const xstate = v.getBigUint64(src + 512, true);
  if (v.getBigUint64(src + 520, true) !== 0n) return 0;
  if (xstate & ~mask) return 0;
  if (stdSize(xstate) > srcLen) return 0;
  const lay = compactLayout(mask);
  if (lay.size > dstCap) return 0;
  m.copyWithin(dst, src, src + 512);
  v.setBigUint64(dst + 512, xstate, true);
  v.setBigUint64(dst + 520, mask | BIT63, true);
  m.fill(0, dst + 528, dst + lay.size);
  for (const [i, off] of lay.offs) {
    if (!((xstate >> BigInt(i)) & 1n)) continue;
    const c = XSAVE_COMPONENTS.get(i)!;
    m.copyWithin(dst + off, src + c.offset, src + c.offset + c.size);
  }
  return lay.size;
}

const REGS_KIND = 0x0211;
const FPU_KIND = 0x0212;
const REGS_LEN = 216;
const FPU_LEN = 512;
const RAW = REGS_LEN + FPU_LEN;
const REC = 16 + REGS_LEN + 16 + FPU_LEN;

/** Checksum of a record: XXH3-64 of payload followed by header bytes 0..8. */
function recordCsum(payload: Uint8Array, kind: number, len: number): bigint {
  const buf = new Uint8Array(payload.length + 8);
  buf.set(payload);
  const h = new DataView(buf.buffer);
  h.setUint16(payload.length, kind, true);
  h.setUint16(payload.length + 2, 0, true);
  h.setUint32(payload.length + 4, len, true);
  return xxh3_64(buf);
}

function writeRecord(m: Uint8Array, v: DataView, at: number, kind: number, payload: Uint8Array): void {
  v.setUint16(at, kind, true);
  v.setUint16(at + 2, 0, true);
  v.setUint32(at + 4, payload.length, true);
  v.setBigUint64(at + 8, recordCsum(payload, kind, payload.length), true);
  m.set(payload, at + 16);
}

export function regsPack(m: Uint8Array, src: number, n: number, dst: number): number {
  const v = dv(m);
  for (let i = 0; i < n; i++) {
    const s = src + i * RAW;
    const d = dst + i * REC;
    const regs = m.slice(s, s + REGS_LEN);
    const fpu = m.slice(s + REGS_LEN, s + RAW);
    writeRecord(m, v, d, REGS_KIND, regs);
    writeRecord(m, v, d + 16 + REGS_LEN, FPU_KIND, fpu);
  }
  return n * REC;
}

function recordOk(m: Uint8Array, v: DataView, at: number, kind: number, len: number): boolean {
  if (v.getUint16(at, true) !== kind || v.getUint16(at + 2, true) !== 0 || v.getUint32(at + 4, true) !== len) return false;
  return recordCsum(m.subarray(at + 16, at + 16 + len), kind, len) === v.getBigUint64(at + 8, true);
}

export function regsUnpack(m: Uint8Array, src: number, n: number, dst: number): number {
  const v = dv(m);
  for (let i = 0; i < n; i++) {
    const s = src + i * REC;
    const f = s + 16 + REGS_LEN;
    if (!recordOk(m, v, s, REGS_KIND, REGS_LEN) || !recordOk(m, v, f, FPU_KIND, FPU_LEN)) return i;
    const d = dst + i * RAW;
    m.copyWithin(d, s + 16, s + 16 + REGS_LEN);
    m.copyWithin(d + REGS_LEN, f + 16, f + 16 + FPU_LEN);
  }
  return -1;
}
