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
import { addressOf, isSysError, processVmReadRaw } from './libc.js';
import { PM_FILE, PM_PRESENT, PM_SWAPPED, procPath } from './proc.js';

export const PAGE = 4096;
const CHUNK = 64 * 1024; // pagemap entries per read (512 KiB)
const HI_PRESENT = Number(PM_PRESENT >> 32n);
const HI_SWAPPED = Number(PM_SWAPPED >> 32n);
const HI_FILE = Number(PM_FILE >> 32n);

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

  constructor(readonly pid: number) {}

  private pagemap(): number {
    if (this.pagemapFd < 0) {
      try { this.pagemapFd = fs.openSync(procPath(this.pid, 'pagemap'), 'r'); } catch (e) {
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
  runs(start: bigint, npages: number, policy: PagePolicy): [number, number][] {
    const out: [number, number][] = [];
    if (policy === 'none' || npages === 0) return out;
    const fd = this.pagemap();
    const buf = Buffer.alloc(Math.min(npages, CHUNK) * 8);
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const firstPfn = start / BigInt(PAGE);
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
      for (let i = 0; i < n; i++) {
        let take = false;
        if (i < entries) {
          const hi = dv.getUint32(i * 8 + 4, true); // flags live in bits 55..63
          const swapped = (hi & HI_SWAPPED) !== 0;
          const present = (hi & HI_PRESENT) !== 0;
          take = policy === 'populated' ? present || swapped : swapped || (present && (hi & HI_FILE) === 0);
        }
        const idx = at + i;
        if (take && runStart < 0) runStart = idx;
        else if (!take && runStart >= 0) { out.push([runStart, idx - runStart]); runStart = -1; }
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
  }

  close(): void {
    for (const fd of [this.pagemapFd, this.memFd]) if (fd >= 0) { try { fs.closeSync(fd); } catch { /* ignore */ } }
    this.pagemapFd = this.memFd = -1;
  }
}

/** The pages of one VMA of a frozen process. Runs are computed up front (while the process is frozen). */
export class LivePageSource implements PageSource {
  constructor(readonly mem: ProcMemory, readonly start: bigint, readonly present: [number, number][]) {}
  runs(): Iterable<[number, number]> { return this.present; }
  read(k: Kernels, dst: number, first: number, n: number): void {
    this.mem.read(k, dst, this.start + BigInt(first * PAGE), n);
  }
  /** Number of pages in the runs. */
  get pageCount(): number { return this.present.reduce((s, [, c]) => s + c, 0); }
}
