/**
 * Loads build/crimg.wasm and exposes it through the Kernels interface.
 * Range checks happen here, once per call, so kernels can use raw loads/stores.
 */
import { CrimgError } from '../errors.js';
import { nodeFs } from '../platform.js';
import { type GenParams, type Kernels, NSLOTS, PAGE, REGSET_RECORD_BYTES } from './api.js';

// biome-ignore lint/suspicious/noExplicitAny: the kernels' exports are typed where they are wrapped (src/kernels/api.ts)
type Exports = Record<string, any> & { memory: WebAssembly.Memory };

const MAX_STAGING = 1024 * 1024 * 1024; // 1 GiB hard cap on the staging area

export function wasmUrl(): URL {
  return new URL('../../build/crimg.wasm', import.meta.url);
}

export function instantiateWasm(bytes?: Uint8Array): WasmKernels {
  const buf = bytes ?? nodeFs().readFileSync(wasmUrl());
  const mod = new WebAssembly.Module(buf as Uint8Array<ArrayBuffer>);
  return new WasmKernels(new WebAssembly.Instance(mod, IMPORTS).exports as unknown as Exports);
}

const IMPORTS = {
  env: {
    abort(_msg: number, _file: number, line: number, col: number): never {
      throw new CrimgError('INTERNAL', `wasm kernel aborted at ${line}:${col}`);
    },
  },
};

/** Asynchronous instantiation, for browsers (where large modules cannot be compiled synchronously):
 *  from bytes, a fetch Response (streaming compile), or a URL (default: build/crimg.wasm next to the package). */
export async function instantiateWasmAsync(from?: Uint8Array | ArrayBuffer | Response | URL | string): Promise<WasmKernels> {
  let inst: WebAssembly.Instance;
  if (from === undefined || typeof from === 'string' || from instanceof URL) {
    const url = from ?? wasmUrl();
    if (String(url).startsWith('file:')) return instantiateWasm(nodeFs().readFileSync(url));
    return instantiateWasmAsync(await fetch(url));
  }
  if (typeof Response !== 'undefined' && from instanceof Response) {
    if (!from.ok) throw new CrimgError('IO', `cannot load the kernels: HTTP ${from.status} ${from.url}`);
    inst = (await WebAssembly.instantiateStreaming(from, IMPORTS)).instance;
  } else {
    inst = (await WebAssembly.instantiate(from as BufferSource, IMPORTS)).instance;
  }
  return new WasmKernels(inst.exports as unknown as Exports);
}

export class WasmKernels implements Kernels {
  readonly name = 'wasm' as const;
  readonly x: Exports;
  private view: Uint8Array;

  constructor(x: Exports) {
    this.x = x;
    if (!x.layoutOk()) throw new CrimgError('INTERNAL', 'wasm static data overlaps the kernel state area');
    this.view = new Uint8Array(x.memory.buffer);
  }

  u8(): Uint8Array {
    if (this.view.buffer !== this.x.memory.buffer) this.view = new Uint8Array(this.x.memory.buffer);
    return this.view;
  }

  staging(bytes: number): number {
    if (!(bytes >= 0) || bytes > MAX_STAGING) {
      throw new CrimgError('LIMIT_EXCEEDED', `staging request of ${bytes} bytes exceeds ${MAX_STAGING}`);
    }
    const p = this.x.stagingEnsure(bytes) >>> 0;
    if (p === 0) throw new CrimgError('LIMIT_EXCEEDED', `cannot grow WebAssembly memory to ${bytes} bytes of staging`);
    return p;
  }

  /** Memory size seen by the last range check (memory only grows: a miss re-reads it). */
  private memBytes = 0;
  private range(ptr: number, len: number): void {
    if (!Number.isInteger(ptr) || !Number.isInteger(len) || ptr < 0 || len < 0 || ptr + len > this.memBytes) {
      this.memBytes = this.x.memory.buffer.byteLength;
      if (!Number.isInteger(ptr) || !Number.isInteger(len) || ptr < 0 || len < 0 || ptr + len > this.memBytes) {
        throw new CrimgError('INTERNAL', `kernel range [${ptr}, +${len}) outside memory`);
      }
    }
  }
  private slot(s: number): void {
    if (!Number.isInteger(s) || s < 0 || s >= NSLOTS) throw new CrimgError('INTERNAL', `bad hash slot ${s}`);
  }

  xxh3(ptr: number, len: number): bigint {
    this.range(ptr, len);
    return BigInt.asUintN(64, this.x.xxh3_64(ptr, len));
  }
  xxh3Pages(ptr: number, npages: number, outPtr: number): void {
    this.range(ptr, npages * PAGE);
    this.range(outPtr, npages * 8);
    if (outPtr < ptr + npages * PAGE && ptr < outPtr + npages * 8) throw new CrimgError('INTERNAL', 'xxh3Pages: output overlaps the pages');
    this.x.xxh3_pages(ptr, npages, outPtr);
  }
  xxh3Init(slot: number): void {
    this.slot(slot);
    this.x.xxh3_init(slot);
  }
  xxh3Update(slot: number, ptr: number, len: number): void {
    this.slot(slot);
    this.range(ptr, len);
    this.x.xxh3_update(slot, ptr, len);
  }
  xxh3Digest(slot: number): bigint {
    this.slot(slot);
    return BigInt.asUintN(64, this.x.xxh3_digest(slot));
  }

  zeroScan(ptr: number, npages: number, bitmapPtr: number): number {
    this.range(ptr, npages * PAGE);
    this.range(bitmapPtr, Math.ceil(npages / 64) * 8);
    return this.x.zero_scan(ptr, npages, bitmapPtr) >>> 0;
  }
  pagesPack(src: number, npages: number, dst: number, bitmapPtr: number, slot: number): number {
    this.range(src, npages * PAGE);
    this.range(dst, npages * PAGE);
    this.range(bitmapPtr, Math.ceil(npages / 64) * 8);
    this.slot(slot);
    if (dst > src && dst < src + npages * PAGE) throw new CrimgError('INTERNAL', 'pagesPack: dst overlaps src from above');
    return this.x.pages_pack(src, npages, dst, bitmapPtr, slot) >>> 0;
  }
  pagesUnpack(src: number, bitmapPtr: number, npages: number, dst: number): void {
    this.range(dst, npages * PAGE);
    this.range(bitmapPtr, Math.ceil(npages / 64) * 8);
    this.range(src, 0);
    this.x.pages_unpack(src, bitmapPtr, npages, dst);
  }
  copyPages(src: number, dst: number, npages: number): void {
    this.range(src, npages * PAGE);
    this.range(dst, npages * PAGE);
    this.x.copy_pages(src, dst, npages);
  }

  genPages(dst: number, vaddr: bigint, npages: number, p: GenParams): void {
    this.range(dst, npages * PAGE);
    this.x.gen_pages(dst, vaddr, npages, p.seed, p.kind, p.zeroQ16, p.dupQ16, p.dupPool, p.epoch, p.dirtyQ16);
  }
  genPack(dst: number, vaddr: bigint, npages: number, p: GenParams, bitmapPtr: number, slot: number): number {
    this.range(dst, npages * PAGE);
    this.range(bitmapPtr, Math.ceil(npages / 64) * 8);
    this.slot(slot);
    return this.x.gen_pack(dst, vaddr, npages, p.seed, p.kind, p.zeroQ16, p.dupQ16, p.dupPool, p.epoch, p.dirtyQ16, bitmapPtr, slot) >>> 0;
  }

  xsaveToStandard(src: number, srcLen: number, dst: number, dstCap: number): number {
    this.range(src, srcLen);
    this.range(dst, dstCap);
    return this.x.xsave_to_standard(src, srcLen, dst, dstCap) >>> 0;
  }
  xsaveToCompacted(src: number, srcLen: number, xcompBv: bigint, dst: number, dstCap: number): number {
    this.range(src, srcLen);
    this.range(dst, dstCap);
    return this.x.xsave_to_compacted(src, srcLen, xcompBv, dst, dstCap) >>> 0;
  }
  xsaveStandardSize(xcr0: bigint): number {
    return this.x.xsave_standard_size(xcr0) >>> 0;
  }
  regsPack(src: number, n: number, dst: number): number {
    this.range(src, n * 728);
    this.range(dst, n * REGSET_RECORD_BYTES);
    return this.x.regs_pack(src, n, dst) >>> 0;
  }
  regsUnpack(src: number, n: number, dst: number): number {
    this.range(src, n * REGSET_RECORD_BYTES);
    this.range(dst, n * 728);
    return this.x.regs_unpack(src, n, dst) | 0;
  }
  regsPack1(regs: number, fpu: number, dst: number, imgSlot: number): void {
    this.range(regs, 216);
    this.range(fpu, 512);
    this.range(dst, REGSET_RECORD_BYTES);
    this.slot(imgSlot);
    this.x.regs_pack1(regs, fpu, dst, imgSlot);
  }

  recSeal(at: number, kind: number, flags: number, len: number, imgSlot: number): number {
    this.range(at, 16 + ((len + 7) & ~7) + 8);
    this.slot(imgSlot);
    return this.x.rec_seal(at, (kind & 0xffff) | ((flags & 0xffff) << 16), len, imgSlot) >>> 0;
  }
  recSealStream(at: number, kind: number, flags: number, len: number, recSlot: number, imgSlot: number): number {
    this.range(at, 16 + ((len + 7) & ~7));
    this.slot(recSlot);
    this.slot(imgSlot);
    return this.x.rec_seal_stream(at, (kind & 0xffff) | ((flags & 0xffff) << 16), len, recSlot, imgSlot) >>> 0;
  }
  pagesRecHead(at: number, addr: bigint, npages: number, recSlot: number): void {
    this.range(at, 32);
    this.slot(recSlot);
    this.x.pages_rec_head(at, addr, npages, recSlot);
  }
  pagesRecTail(at: number, npages: number, stored: number, bitmapPtr: number, recSlot: number, imgSlot: number): number {
    const bm = Math.ceil(npages / 64) * 8;
    this.range(at, 32 + stored * PAGE + bm);
    this.range(bitmapPtr, bm);
    this.slot(recSlot);
    this.slot(imgSlot);
    return this.x.pages_rec_tail(at, npages, stored, bitmapPtr, recSlot, imgSlot) >>> 0;
  }
}
