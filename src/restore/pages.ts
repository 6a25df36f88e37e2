/**
 * Page contents into the new process.
 *
 * The stored pages of each VMA come from the image's PAGES records, each read and
 * verified (XXH3) in WebAssembly memory by Image.loadRun, and go from there
 * straight into the stub — no copy in JavaScript, no page fault exception in the
 * stub, one kernel call per contiguous run of pages (a record holds up to 4 MiB):
 *
 *  - private anonymous memory (nearly all of a big process): UFFDIO_COPY on a
 *    userfaultfd the stub creates (an injected `userfaultfd(UFFD_USER_MODE_ONLY)`,
 *    fetched with pidfd_getfd; crimg registers the VMAs): the kernel allocates each
 *    page and copies into it. A write into fresh memory would first fault in a
 *    zeroed page and then copy over it: on the machine this was measured on, the
 *    zeroing was a third of the cost;
 *  - everything else (private file mappings, shared memory, or when userfaultfd is
 *    not available): process_vm_writev, one call per record with its iovecs built
 *    from the record's bitmap. It faults the pages in from the kernel side
 *    (get_user_pages), never through the stub's page tables.
 *
 * Stored pages are non-zero by the format (zero pages are recorded, not stored),
 * so the records' bitmaps say exactly what to write; absent and zero pages of
 * anonymous memory stay untouched (zero).
 *
 * The userfaultfd must be closed (end()) before anything else touches the stub's
 * memory from the kernel side (rseq registration, process_vm_*): with
 * UFFD_USER_MODE_ONLY such an access to a registered page not copied would fail
 * with EFAULT. Closing it unregisters every range.
 *
 * Pages that do not come from an open image (a model built in memory) take the
 * generic path: PageSource.read into a staging region, zero pages skipped
 * (zeroScan), then process_vm_writev.
 *
 * Reading the image overlaps the copies: while one record is verified and
 * copied, the next is read into a second region on libuv's thread pool
 * (writeVmaAsync; about 10% off a 1 GiB restore).
 *
 * A second thread for the copies was tried twice — a Node worker (jobs in shared
 * memory; its start-up alone took 100 ms of CPU) and a native loop on a libuv
 * thread (futex-woken, hand-assembled, started by a koffi async call): on the
 * loaded 2-CPU VM this was measured on, neither was faster than copying on the
 * main thread between reads, so there is none. A third try had the stub read
 * its pages from the image file itself (one preadv per record, after
 * MADV_POPULATE_WRITE, in batches running while crimg verified the same records):
 * allocating the pages from inside the stub cost it 2.5-3.1 s of CPU per GiB on
 * that VM, against about 0.4 s for the whole restore by UFFDIO_COPY.
 */
import koffi from 'koffi';
import type { Image, PageRec } from '../reader.js';
import { VmaFlags, type Vma } from '../model.js';
import type { Kernels } from '../kernels/api.js';
import { claimRegion, releaseRegion } from '../kernels/arena.js';
import { nodeFs } from '../platform.js';
import { SysError, addressOf, syscall } from '../os/libc.js';
import type { Fn } from '../os/libc.js';
import { EAGAIN, O_CLOEXEC, O_NONBLOCK } from '../os/consts.js';
import { SYS } from '../os/syscalls.js';
import { isFileVma } from './check.js';

const PAGE_SIZE = 4096;
/** Most pages in one PAGES record (schema MAX_RUN_PAGES): at most 512 runs of set bits; UIO_MAXIOV is 1024. */
const MAX_IOV = 1024;
/** Pages per write on the generic path. */
const GENERIC_CHUNK_PAGES = 1024;

const SYS_USERFAULTFD = SYS.userfaultfd,
  SYS_PIDFD_OPEN = SYS.pidfd_open,
  SYS_PIDFD_GETFD = SYS.pidfd_getfd,
  SYS_CLOSE = SYS.close;
const UFFD_USER_MODE_ONLY = 1;
const UFFD_API = 0xaa,
  UFFDIO_API = 0xc018aa3f,
  UFFDIO_REGISTER = 0xc020aa00,
  UFFDIO_COPY = 0xc028aa03;
const UFFDIO_REGISTER_MODE_MISSING = 1,
  UFFDIO_COPY_MODE_DONTWAKE = 1;
/** uffdio_copy: dst, src, len, mode, copy (s64, written by the kernel: bytes copied or -errno). */
const COPY_STRUCT = 40;

let fns: { pvw: Fn; ioctl: Fn } | null = null;
/** libc calls with raw addresses (iovecs and uffdio structures live in WebAssembly memory). */
function lib(): { pvw: Fn; ioctl: Fn } {
  if (!fns) {
    const l = koffi.load('libc.so.6');
    fns = {
      pvw: l.func(
        'intptr_t process_vm_writev(int pid, uintptr_t local, unsigned long liovcnt, uintptr_t remote, unsigned long riovcnt, unsigned long flags)',
      ),
      ioctl: l.func('int ioctl(int fd, unsigned long request, uintptr_t arg)'),
    };
  }
  return fns;
}

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;

/** Runs a system call in the stub; throws when it fails. */
export type InjectFn = (nr: number, args: (number | bigint)[]) => bigint;

export interface PageWriterOptions {
  /** Use userfaultfd for private anonymous memory when the kernel allows it (default true). */
  uffd?: boolean;
}

export class PageWriter {
  private readonly k: Kernels;
  /** Local and remote iovecs (MAX_IOV each), zero-scan bitmap, the argument of the userfaultfd ioctls. */
  private readonly region: number;
  private readonly liov: number;
  private readonly riov: number;
  private readonly zbits: number;
  private readonly uarg: number;
  private stage = -1;
  private pid = 0;
  /** Our descriptor of the stub's userfaultfd (-1: none). */
  private uffd = -1;
  private closed = false;
  /** Why userfaultfd is not used ('' when it is). */
  uffdOff = 'not started';
  /** Pages written so far. */
  pages = 0;
  /** Kernel calls that wrote pages (UFFDIO_COPY, process_vm_writev). */
  calls = 0;
  /** Of the pages, those copied with UFFDIO_COPY. */
  copied = 0;

  constructor(
    private readonly image: Image,
    private readonly opts: PageWriterOptions = {},
  ) {
    this.k = image.k;
    const iovBytes = MAX_IOV * 16;
    this.region = claimRegion(this.k, 2 * iovBytes + 4096 + 64);
    this.liov = this.region;
    this.riov = this.region + iovBytes;
    this.zbits = this.riov + iovBytes;
    this.uarg = this.zbits + 4096;
  }

  /** Set up userfaultfd in the stub (when allowed); on any refusal the writer uses process_vm_writev only. */
  begin(pid: number, inject: InjectFn): void {
    this.pid = pid;
    if (this.opts.uffd === false) {
      this.uffdOff = 'disabled';
      return;
    }
    let tfd: number;
    try {
      tfd = Number(inject(SYS_USERFAULTFD, [O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY]));
    } catch (e) {
      this.uffdOff = `userfaultfd: ${(e as Error).message}`; // old kernel, no CONFIG_USERFAULTFD, seccomp ...
      return;
    }
    let pidfd = -1;
    try {
      pidfd = syscall(SYS_PIDFD_OPEN, pid, 0);
      this.uffd = syscall(SYS_PIDFD_GETFD, pidfd, tfd, 0);
      this.setArg([UFFD_API, 0, 0]);
      this.ioctl(UFFDIO_API, 'UFFDIO_API');
      this.uffdOff = '';
    } catch (e) {
      this.uffdOff = (e as Error).message;
      this.closeUffd();
    } finally {
      if (pidfd >= 0)
        try {
          nodeFs().closeSync(pidfd);
        } catch {
          /* ignore */
        }
    }
    inject(SYS_CLOSE, [tfd]); // ours (if any) keeps it open; the task must not inherit it
  }

  /**
   * Write the stored pages of `v`: all of them (for a private file mapping they are the pages that differ from the
   * file). Returns the pages written.
   */
  writeVma(v: Vma): number {
    const before = this.pages;
    const recs = this.image.runsOf(v);
    if (!recs.length) {
      this.writeGeneric(v, !isFileVma(v));
      return this.pages - before;
    }
    const uffd = this.uffd >= 0 && uffdEligible(v) && this.register(v);
    for (const r of recs) {
      const { data, bitmap } = this.image.loadRun(r);
      if (uffd) this.copyRecord(r, data, bitmap);
      else this.writeRecord(r, data, bitmap);
    }
    return this.pages - before;
  }

  /**
   * writeVma with the next record read off the main thread (the libuv thread pool, i.e. the other CPU) while this
   * one is verified and copied into the stub: two record regions used in turn.
   */
  async writeVmaAsync(v: Vma): Promise<number> {
    const recs = this.image.runsOf(v);
    if (recs.length < 2) return this.writeVma(v);
    const before = this.pages;
    const uffd = this.uffd >= 0 && uffdEligible(v) && this.register(v);
    let next: Promise<void> | null = this.image.fetchRun(recs[0]!, 0);
    try {
      for (let i = 0; i < recs.length; i++) {
        const slot = (i & 1) as 0 | 1;
        await next;
        next = i + 1 < recs.length ? this.image.fetchRun(recs[i + 1]!, (slot ^ 1) as 0 | 1) : null;
        const r = recs[i]!;
        const { data, bitmap } = this.image.loadRun(r, slot);
        if (uffd) this.copyRecord(r, data, bitmap);
        else this.writeRecord(r, data, bitmap);
      }
    } catch (e) {
      if (next) await next.catch(() => undefined); // no read left in flight into memory the caller may release
      throw e;
    }
    return this.pages - before;
  }

  /** All pages in: close the userfaultfd (which unregisters every range). */
  end(): void {
    this.closeUffd();
  }

  /** Release everything. Never throws. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closeUffd();
    releaseRegion(this.k, this.region);
    if (this.stage >= 0) releaseRegion(this.k, this.stage);
  }

  private closeUffd(): void {
    if (this.uffd >= 0) {
      try {
        nodeFs().closeSync(this.uffd);
      } catch {
        /* ignore */
      }
      this.uffd = -1;
    }
  }

  /** u64 words of the ioctl argument. */
  private setArg(words: number[]): void {
    const m = this.k.u8();
    const dv = new DataView(m.buffer, m.byteOffset + this.uarg, 64);
    words.forEach((w, i) => setU64(dv, i * 8, w));
  }

  private ioctl(req: number, what: string): number {
    koffi.errno(0);
    const r = lib().ioctl(this.uffd, req, addressOf(this.k.u8()) + this.uarg) as number;
    if (r === -1) throw new SysError('ioctl', koffi.errno(), what);
    return r;
  }

  private register(v: Vma): boolean {
    this.setArg([Number(v.start), Number(v.end - v.start), UFFDIO_REGISTER_MODE_MISSING, 0]);
    try {
      this.ioctl(UFFDIO_REGISTER, `UFFDIO_REGISTER ${hex(v.start)}-${hex(v.end)}`);
      return true;
    } catch {
      return false; // a kind of VMA userfaultfd refuses: written with process_vm_writev
    }
  }

  /** Runs of stored pages of a loaded record as pairs [page number in the record, pages]. */
  private runs(r: PageRec, bitmap: number): number[] {
    const m = this.k.u8();
    const bm = new DataView(m.buffer, m.byteOffset + bitmap, Math.ceil(r.npages / 64) * 8);
    const out: number[] = [];
    let start = 0,
      len = 0;
    const words = Math.ceil(r.npages / 32);
    for (let w = 0; w < words; w++) {
      const word = bm.getUint32(w * 4, true);
      if (word === 0xffffffff) {
        // 32 stored pages
        if (len === 0) start = w * 32;
        len += 32;
        continue;
      }
      for (let b = 0; b < 32; b++) {
        if ((word >>> b) & 1) {
          if (len === 0) start = w * 32 + b;
          len++;
        } else if (len) {
          out.push(start, len);
          len = 0;
        }
      }
    }
    if (len) out.push(start, len);
    return out;
  }

  /** One record by UFFDIO_COPY: one call per run of stored pages. */
  private copyRecord(r: PageRec, data: number, bitmap: number): void {
    const runs = this.runs(r, bitmap);
    const base = addressOf(this.k.u8());
    const addr0 = Number(r.addr);
    let stored = 0;
    for (let i = 0; i < runs.length; i += 2) {
      this.setArg([addr0 + runs[i]! * PAGE_SIZE, base + data + stored * PAGE_SIZE, runs[i + 1]! * PAGE_SIZE, UFFDIO_COPY_MODE_DONTWAKE, 0]);
      this.finishCopy(this.uarg, this.uffdCopy(base + this.uarg));
      this.calls++;
      stored += runs[i + 1]!;
    }
    this.pages += stored;
    this.copied += stored;
  }

  /** One UFFDIO_COPY of the uffdio_copy at raw address addr; returns 0 or -errno. */
  private uffdCopy(addr: number): number {
    koffi.errno(0);
    const rc = lib().ioctl(this.uffd, UFFDIO_COPY, addr) as number;
    return rc === -1 ? -(koffi.errno() || 5) : rc;
  }

  /** Check a finished UFFDIO_COPY (result ret: 0 or -errno); a short one is completed here. */
  private finishCopy(at: number, ret: number): void {
    for (let tries = 0; ; tries++) {
      const m = this.k.u8();
      const dv = new DataView(m.buffer, m.byteOffset + at, COPY_STRUCT);
      const dst = getU64(dv, 0),
        src = getU64(dv, 8),
        len = getU64(dv, 16);
      const copied = Number(dv.getBigInt64(32, true));
      if (ret === 0 && copied === len) return;
      // a short copy (the kernel stops at a signal or when memory runs short) goes on where it stopped
      if (copied > 0 && copied < len) {
        setU64(dv, 0, dst + copied);
        setU64(dv, 8, src + copied);
        setU64(dv, 16, len - copied);
        setU64(dv, 32, 0);
      } else if (!((ret === -EAGAIN || copied === -EAGAIN) && tries < 100)) {
        throw new SysError('ioctl', ret < 0 ? -ret : copied < 0 ? -copied : 5, `UFFDIO_COPY ${hex(dst)}+${len} into ${this.pid}`);
      }
      ret = this.uffdCopy(addressOf(m) + at);
    }
  }

  /** One record by process_vm_writev: one call (more only after a short write). */
  private writeRecord(r: PageRec, data: number, bitmap: number): void {
    const runs = this.runs(r, bitmap);
    if (!runs.length) return;
    const m = this.k.u8();
    const base = addressOf(m);
    const iv = new DataView(m.buffer, m.byteOffset + this.liov, MAX_IOV * 32);
    const addr0 = Number(r.addr);
    let stored = 0;
    for (let i = 0; i < runs.length; i += 2) {
      const len = runs[i + 1]! * PAGE_SIZE;
      setIov(iv, i / 2, base + data + stored * PAGE_SIZE, len);
      setIov(iv, MAX_IOV + i / 2, addr0 + runs[i]! * PAGE_SIZE, len);
      stored += runs[i + 1]!;
    }
    this.writev(runs.length / 2, stored * PAGE_SIZE);
    this.pages += stored;
  }

  /** process_vm_writev of the n iovecs built in the region (same boundaries on both sides); retries short writes. */
  private writev(n: number, bytes: number): void {
    const base = addressOf(this.k.u8());
    let first = 0;
    let left = bytes;
    while (left > 0) {
      koffi.errno(0);
      const got = Number(lib().pvw(this.pid, base + this.liov + first * 16, n - first, base + this.riov + first * 16, n - first, 0));
      this.calls++;
      const m = this.k.u8();
      const lv = new DataView(m.buffer, m.byteOffset + this.liov, MAX_IOV * 16);
      const rv = new DataView(m.buffer, m.byteOffset + this.riov, MAX_IOV * 16);
      if (got < 0) throw new SysError('process_vm_writev', koffi.errno(), `${this.pid} at ${hex(getIov(rv, first)[0])}`);
      if (got === 0) throw new Error(`process_vm_writev wrote nothing at ${hex(getIov(rv, first)[0])}`);
      left -= got;
      // short write (the stub's page at the next address could not be written): skip what was written and try
      // again from there, which reports the error
      let skip = left > 0 ? got : 0;
      while (skip > 0) {
        const [la, len] = getIov(lv, first);
        if (skip >= len) {
          skip -= len;
          first++;
          continue;
        }
        const [ra] = getIov(rv, first);
        setIov(lv, first, la + skip, len - skip);
        setIov(rv, first, ra + skip, len - skip);
        skip = 0;
      }
    }
  }

  /** Pages from a PageSource that is not an open image: read in chunks, then written (zero pages skipped). */
  private writeGeneric(v: Vma, skipZero: boolean): void {
    const k = this.k;
    const npages = Number((v.end - v.start) / BigInt(PAGE_SIZE));
    if (this.stage < 0) this.stage = claimRegion(k, GENERIC_CHUNK_PAGES * PAGE_SIZE);
    const stage = this.stage;
    for (const [first, count] of v.pages.runs(npages)) {
      for (let p = first; p < first + count; p += GENERIC_CHUNK_PAGES) {
        const n = Math.min(GENERIC_CHUNK_PAGES, first + count - p);
        v.pages.read(k, stage, p, n);
        const all = !skipZero || k.zeroScan(stage, n, this.zbits) === n;
        const m = k.u8();
        const base = addressOf(m);
        const iv = new DataView(m.buffer, m.byteOffset + this.liov, MAX_IOV * 32);
        const zv = new DataView(m.buffer, m.byteOffset + this.zbits, Math.ceil(n / 64) * 8);
        const bit = (j: number): boolean => all || ((zv.getUint32((j >> 5) * 4, true) >>> (j & 31)) & 1) !== 0;
        const remote0 = Number(v.start) + p * PAGE_SIZE;
        let iovs = 0,
          bytes = 0,
          i = 0;
        while (i < n) {
          if (!bit(i)) {
            i++;
            continue;
          }
          let j = i + 1;
          while (j < n && bit(j)) j++;
          setIov(iv, iovs, base + stage + i * PAGE_SIZE, (j - i) * PAGE_SIZE);
          setIov(iv, MAX_IOV + iovs, remote0 + i * PAGE_SIZE, (j - i) * PAGE_SIZE);
          iovs++;
          bytes += (j - i) * PAGE_SIZE;
          i = j;
        }
        if (iovs) {
          this.writev(iovs, bytes);
          this.pages += bytes / PAGE_SIZE;
        }
      }
    }
  }
}

/** Private anonymous memory (heap, stacks, anonymous mappings): what userfaultfd copies into. */
function uffdEligible(v: Vma): boolean {
  return !isFileVma(v) && !(v.flags & VmaFlags.SHARED);
}

function setU64(dv: DataView, o: number, v: number): void {
  dv.setUint32(o, v >>> 0, true);
  dv.setUint32(o + 4, Math.floor(v / 0x100000000), true);
}

function getU64(dv: DataView, o: number): number {
  return dv.getUint32(o, true) + dv.getUint32(o + 4, true) * 0x100000000;
}

/** struct iovec i of the array the view starts at (values < 2^53). */
function setIov(dv: DataView, i: number, addr: number, len: number): void {
  setU64(dv, i * 16, addr);
  setU64(dv, i * 16 + 8, len);
}

function getIov(dv: DataView, i: number): [number, number] {
  return [getU64(dv, i * 16), getU64(dv, i * 16 + 8)];
}
