/**
 * Plain-TypeScript twin of the WebAssembly kernels: same interface, same memory
 * layout, written for clarity rather than speed. It is the test oracle: every
 * WASM kernel is checked against it on random inputs.
 */
import { CrimgError } from '../../errors.js';
import { type GenParams, type Kernels, NSLOTS, STAGING_BASE } from '../api.js';
import { xxh3_64, xxh3Pages, Xxh3Stream } from './xxh3.js';
import { zeroScan, pagesPack, pagesUnpack, copyPages } from './pages.js';
import { genPages, genPack } from './gen.js';
import { xsaveToStandard, xsaveToCompacted, xsaveStandardSize, regsPack, regsUnpack } from './regs.js';
import { recSeal, recSealStream, pagesRecHead, pagesRecTail } from './records.js';

export class TwinKernels implements Kernels {
  readonly name = 'twin' as const;
  private mem: Uint8Array;
  private slots: Xxh3Stream[] = [];

  constructor(initialBytes = STAGING_BASE + 1024 * 1024) {
    this.mem = new Uint8Array(initialBytes);
    for (let i = 0; i < NSLOTS; i++) this.slots.push(new Xxh3Stream());
  }

  u8(): Uint8Array {
    return this.mem;
  }

  staging(bytes: number): number {
    const need = STAGING_BASE + bytes;
    if (need > this.mem.length) {
      const next = new Uint8Array(Math.ceil(need / 65536) * 65536);
      next.set(this.mem);
      this.mem = next;
    }
    return STAGING_BASE;
  }

  private slot(s: number): Xxh3Stream {
    const st = this.slots[s];
    if (!st) throw new CrimgError('INTERNAL', `bad hash slot ${s}`);
    return st;
  }

  xxh3(ptr: number, len: number): bigint {
    return xxh3_64(this.mem.subarray(ptr, ptr + len));
  }
  xxh3Pages(ptr: number, npages: number, outPtr: number): void {
    xxh3Pages(this.mem, ptr, npages, outPtr);
  }
  xxh3Init(slot: number): void {
    this.slots[slot] = new Xxh3Stream();
  }
  xxh3Update(slot: number, ptr: number, len: number): void {
    this.slot(slot).update(this.mem.subarray(ptr, ptr + len));
  }
  xxh3Digest(slot: number): bigint {
    return this.slot(slot).digest();
  }

  zeroScan(ptr: number, npages: number, bitmapPtr: number): number {
    return zeroScan(this.mem, ptr, npages, bitmapPtr);
  }
  pagesPack(src: number, npages: number, dst: number, bitmapPtr: number, slot: number): number {
    return pagesPack(this.mem, src, npages, dst, bitmapPtr, this.slot(slot));
  }
  pagesUnpack(src: number, bitmapPtr: number, npages: number, dst: number): void {
    pagesUnpack(this.mem, src, bitmapPtr, npages, dst);
  }
  copyPages(src: number, dst: number, npages: number): void {
    copyPages(this.mem, src, dst, npages);
  }

  genPages(dst: number, vaddr: bigint, npages: number, p: GenParams): void {
    genPages(this.mem, dst, vaddr, npages, p);
  }
  genPack(dst: number, vaddr: bigint, npages: number, p: GenParams, bitmapPtr: number, slot: number): number {
    return genPack(this.mem, dst, vaddr, npages, p, bitmapPtr, this.slot(slot));
  }

  xsaveToStandard(src: number, srcLen: number, dst: number, dstCap: number): number {
    return xsaveToStandard(this.mem, src, srcLen, dst, dstCap);
  }
  xsaveToCompacted(src: number, srcLen: number, xcompBv: bigint, dst: number, dstCap: number): number {
    return xsaveToCompacted(this.mem, src, srcLen, xcompBv, dst, dstCap);
  }
  xsaveStandardSize(xcr0: bigint): number {
    return xsaveStandardSize(xcr0);
  }
  regsPack(src: number, n: number, dst: number): number {
    return regsPack(this.mem, src, n, dst);
  }
  regsUnpack(src: number, n: number, dst: number): number {
    return regsUnpack(this.mem, src, n, dst);
  }
  regsPack1(regs: number, fpu: number, dst: number, imgSlot: number): void {
    const tmp = new Uint8Array(728 + 760);
    tmp.set(this.mem.subarray(regs, regs + 216));
    tmp.set(this.mem.subarray(fpu, fpu + 512), 216);
    regsPack(tmp, 0, 1, 728);
    this.mem.set(tmp.subarray(728), dst);
    this.slot(imgSlot).update(this.mem.subarray(dst, dst + 16));
    this.slot(imgSlot).update(this.mem.subarray(dst + 232, dst + 248));
  }

  recSeal(at: number, kind: number, flags: number, len: number, imgSlot: number): number {
    return recSeal(this.mem, at, kind, flags, len, this.slot(imgSlot));
  }
  recSealStream(at: number, kind: number, flags: number, len: number, recSlot: number, imgSlot: number): number {
    return recSealStream(this.mem, at, kind, flags, len, this.slot(recSlot), this.slot(imgSlot));
  }
  pagesRecHead(at: number, addr: bigint, npages: number, recSlot: number): void {
    this.xxh3Init(recSlot);
    pagesRecHead(this.mem, at, addr, npages, this.slot(recSlot));
  }
  pagesRecTail(at: number, npages: number, stored: number, bitmapPtr: number, recSlot: number, imgSlot: number): number {
    return pagesRecTail(this.mem, at, npages, stored, bitmapPtr, this.slot(recSlot), this.slot(imgSlot));
  }
}
