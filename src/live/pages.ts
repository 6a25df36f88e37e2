/**
 * Page contents of a frozen process: which pages exist (/proc/PID/pagemap) and a
 * PageSource that reads them with process_vm_readv straight into the kernels'
 * WebAssembly memory (the writer's input region), falling back to
 * /proc/PID/mem for what process_vm_readv cannot read (PROT_NONE pages, races).
 * Zero pages are elided later by the writer's pagesPack.
 */
import * as fs from 'node:fs';
import type { Kernels } from '../kernels/api.js';
import type { PageSource } from '../model.js';
import { CrimgError } from '../errors.js';
import { addressOf, ioctlPtr, isSysError, processVmReadRaw } from '../os/libc.js';
import { PM_FILE, PM_PRESENT, PM_SWAPPED, procPath } from '../os/proc.js';
import { EFAULT, EINVAL, ENOTTY, EOPNOTSUPP } from '../os/consts.js';

export const PAGE = 4096;
let pmBuf: Buffer | null = null;
/** A reused buffer for pagemap entries (fresh memory is slow to touch on some VMs). */
function pagemapBuffer(entries: number): Buffer {
  if (!pmBuf || pmBuf.length < entries * 8) pmBuf = Buffer.allocUnsafe(Math.max(entries, 4096) * 8);
  return pmBuf;
}
const CHUNK = 64 * 1024; // pagemap entries per read (512 KiB)
const HI_PRESENT = Number(PM_PRESENT >> 32n);
const HI_SWAPPED = Number(PM_SWAPPED >> 32n);
const HI_FILE = Number(PM_FILE >> 32n);

// PAGEMAP_SCAN (Linux 6.7+): the kernel returns runs of pages by category instead of one
// 64-bit entry per page.
const PAGEMAP_SCAN = 0xc0606610; // _IOWR('f', 16, struct pm_scan_arg)
const PAGE_IS_FILE = 1n << 2n;
const PAGE_IS_PRESENT = 1n << 3n;
const PAGE_IS_SWAPPED = 1n << 4n;
const SCAN_VEC = 1024; // struct page_region entries per call
let scanSupported = true;
let scanArg: BigUint64Array | null = null;
let scanVec: BigUint64Array | null = null;

/** Which pages of a VMA go into the image. */
export type PagePolicy =
  /** anonymous memory: every present or swapped page */
  | 'populated'
  /** private file mapping: pages that were copied on write (present and not file pages) or swapped */
  | 'private-file'
  /** nothing (contents live elsewhere, or cannot be read: [vvar], device memory) */
  | 'none';

/** Open handles of one process used while reading its memory. */
export class ProcMemory {
  private pagemapFd = -1;
  private memFd = -1;
  /** Pages that neither process_vm_readv nor /proc/PID/mem could read (stored as zero). */
  unreadablePages = 0;
  /** Pages read through /proc/PID/mem. */
  memFallbackPages = 0;
  /** Called after each read with the number of pages read (the dump lets the target go after the last one). */
  onRead: ((pages: number) => void) | null = null;

  constructor(readonly pid: number) {}

  private pagemap(): number {
    if (this.pagemapFd < 0) {
      try {
        this.pagemapFd = fs.openSync(procPath(this.pid, 'pagemap'), 'r');
      } catch (e) {
        throw new CrimgError('PERMISSION', `cannot open /proc/${this.pid}/pagemap: ${(e as NodeJS.ErrnoException).code}`, { cause: e });
      }
    }
    return this.pagemapFd;
  }

  private mem(): number {
    if (this.memFd < 0) this.memFd = fs.openSync(procPath(this.pid, 'mem'), 'r');
    return this.memFd;
  }

  /** Runs [first, count] of the pages of [start, start + npages pages) selected by the policy. */
  runs(start: bigint, npages: number, policy: PagePolicy, allowScan = true): [number, number][] {
    if (policy === 'none' || npages === 0) return [];
    if (allowScan && scanSupported) {
      const r = this.scanRuns(start, npages, policy);
      if (r) return r;
    }
    return this.readRuns(start, npages, policy);
  }

  /** runs() through the PAGEMAP_SCAN ioctl; null when the kernel does not have it. */
  private scanRuns(start: bigint, npages: number, policy: PagePolicy): [number, number][] | null {
    const fd = this.pagemap();
    const arg = (scanArg ??= new BigUint64Array(12));
    const vec = (scanVec ??= new BigUint64Array(SCAN_VEC * 3));
    const end = start + BigInt(npages * PAGE);
    arg.fill(0n);
    arg[0] = 96n; // size
    arg[2] = start;
    arg[3] = end;
    arg[5] = BigInt(addressOf(vec));
    arg[6] = BigInt(SCAN_VEC);
    if (policy === 'private-file') {
      arg[8] = PAGE_IS_FILE;
      arg[9] = PAGE_IS_FILE;
    } // not a file page...
    arg[10] = PAGE_IS_PRESENT | PAGE_IS_SWAPPED; // ...and present or swapped
    arg[11] = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
    const out: [number, number][] = [];
    for (;;) {
      let n: number;
      try {
        n = ioctlPtr(fd, PAGEMAP_SCAN, arg);
      } catch (e) {
        if (isSysError(e) && (e.errno === ENOTTY || e.errno === EINVAL || e.errno === EOPNOTSUPP) && out.length === 0) {
          scanSupported = false;
          return null;
        }
        if (isSysError(e) && e.errno === EFAULT /* not a user address, e.g. [vsyscall] */ && out.length === 0) return null;
        throw new CrimgError('IO', `reading /proc/${this.pid}/pagemap: ${(e as Error).message}`, { cause: e });
      }
      let ok = true;
      for (let i = 0; i < n; i++) {
        const first = Number((vec[i * 3]! - start) / 4096n);
        const count = Number((vec[i * 3 + 1]! - vec[i * 3]!) / 4096n);
        const last = out[out.length - 1];
        const lastEnd = last ? last[0] + last[1] : 0;
        if (first < lastEnd || count <= 0 || first + count > npages) ok = false;
        if (last && lastEnd === first) last[1] += count;
        else out.push([first, count]);
      }
      if (!ok) {
        return null; // not sorted, disjoint and inside the range: read the pagemap instead
      }
      const walkEnd = arg[4]!;
      if (walkEnd >= end || walkEnd === 0n) break;
      arg[2] = walkEnd;
    }
    return out;
  }

  /** runs() from the 64-bit entries of /proc/PID/pagemap. */
  private readRuns(start: bigint, npages: number, policy: PagePolicy): [number, number][] {
    const out: [number, number][] = [];
    const fd = this.pagemap();
    const buf = pagemapBuffer(Math.min(npages, CHUNK));
    const hi = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >> 2);
    const firstPfn = start / BigInt(PAGE);
    const want = policy === 'populated' ? HI_PRESENT | HI_SWAPPED : 0;
    let runStart = -1;
    for (let at = 0; at < npages; at += CHUNK) {
      const n = Math.min(CHUNK, npages - at);
      let got = 0;
      try {
        while (got < n * 8) {
          const r = fs.readSync(fd, buf, got, n * 8 - got, (firstPfn + BigInt(at)) * 8n + BigInt(got));
          if (r === 0) break;
          got += r;
        }
      } catch (e) {
        throw new CrimgError('IO', `reading /proc/${this.pid}/pagemap: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
      }
      const entries = got >> 3;
      // flags live in bits 55..63 of each entry: the odd 32-bit words
      for (let i = 0; i < n; i++) {
        let take = false;
        if (i < entries) {
          const h = hi[2 * i + 1]!;
          take = want ? (h & want) !== 0 : (h & HI_SWAPPED) !== 0 || ((h & HI_PRESENT) !== 0 && (h & HI_FILE) === 0);
        }
        if (take) {
          if (runStart < 0) runStart = at + i;
        } else if (runStart >= 0) {
          out.push([runStart, at + i - runStart]);
          runStart = -1;
        }
      }
    }
    if (runStart >= 0) out.push([runStart, npages - runStart]);
    return out;
  }

  /** Read n pages at addr into kernels memory at dst. */
  read(k: Kernels, dst: number, addr: bigint, n: number): void {
    const len = n * PAGE;
    let got = 0;
    try {
      got = processVmReadRaw(this.pid, addressOf(k.u8()) + dst, addr, len);
    } catch (e) {
      if (!isSysError(e)) throw e;
      if (e.code === 'ESRCH') throw new CrimgError('NO_PROCESS', `process ${this.pid} exited during the dump`);
      got = 0; // EFAULT (unreadable page), EPERM...: try /proc/PID/mem
    }
    got -= got % PAGE;
    while (got < len) {
      const m = k.u8();
      let r = 0;
      try {
        r = fs.readSync(this.mem(), m, dst + got, len - got, addr + BigInt(got));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ESRCH') throw new CrimgError('NO_PROCESS', `process ${this.pid} exited during the dump`);
        r = 0;
      }
      if (r > 0) {
        this.memFallbackPages += Math.ceil(r / PAGE);
        got += r;
        continue;
      }
      // this page cannot be read at all: store it as zero and go on with the next
      m.fill(0, dst + got, dst + got + PAGE);
      this.unreadablePages++;
      got += PAGE;
      got -= got % PAGE;
    }
    this.onRead?.(n);
  }

  close(): void {
    for (const fd of [this.pagemapFd, this.memFd])
      if (fd >= 0) {
        try {
          fs.closeSync(fd);
        } catch {
          /* ignore */
        }
      }
    this.pagemapFd = this.memFd = -1;
  }
}

/** The pages of one VMA of a frozen process. Runs are computed up front (while the process is frozen). */
export class LivePageSource implements PageSource {
  constructor(
    readonly mem: ProcMemory,
    readonly start: bigint,
    readonly present: [number, number][],
  ) {}
  runs(): Iterable<[number, number]> {
    return this.present;
  }
  read(k: Kernels, dst: number, first: number, n: number): void {
    this.mem.read(k, dst, this.start + BigInt(first * PAGE), n);
  }
  /** Read straight into the writer's output and pack there (in place): no intermediate copy. */
  pack(k: Kernels, dst: number, first: number, n: number, bitmapPtr: number, slot: number): number {
    this.mem.read(k, dst, this.start + BigInt(first * PAGE), n);
    return k.pagesPack(dst, n, dst, bitmapPtr, slot);
  }
  /** Number of pages in the runs. */
  get pageCount(): number {
    return this.present.reduce((s, [, c]) => s + c, 0);
  }
}
