/**
 * ELF core file -> model. The notes become tasks, threads, credentials and the
 * auxiliary vector; every PT_LOAD becomes a VMA whose pages are read straight
 * from the core file into the kernels' memory when the writer asks for them, so
 * a core of any size converts in bounded memory. NT_FILE names the file behind
 * each mapping (the kernel's page_size 4096 and gdb's page_size 1 both work);
 * file mappings that a core lists in NT_FILE but has no PT_LOAD for (gcore skips
 * unmodified file mappings) become VMAs without pages.
 *
 * What an ELF core does not hold is left at neutral values: namespaces, rlimits,
 * open files, environment, mm_struct boundaries. Signal information (NT_SIGINFO,
 * pr_cursig) has no place in the model and is dropped.
 */
import * as fs from 'node:fs';
import { CrimgError } from '../errors.js';
import { kernels } from '../kernels/index.js';
import type { Kernels } from '../kernels/api.js';
import { claimRegion, releaseRegion } from '../kernels/arena.js';
import {
  type Model,
  type Task,
  type Thread,
  type Vma,
  type PageSource,
  type XState,
  type Credentials,
  HeaderFlags,
  Prot,
  VmaFlags,
  NO_PAGES,
  defaultRlimits,
  emptyCreds,
  emptyNsIds,
  freshFxsave,
  newThread,
} from '../model.js';
import { REG_INDEX } from '../schema.js';
import { type Source, type SourceTarget, openSource } from '../source.js';
import { isSysError, syscall } from '../os/libc.js';
import { ERRNO, SEEK_DATA, SEEK_HOLE } from '../os/consts.js';
import { SYS } from '../os/syscalls.js';
import {
  CORE_PAGE,
  NT_FILE,
  PF_R,
  PF_W,
  PF_X,
  AT_SYSINFO_EHDR,
  AT_PHDR,
  AT_ENTRY,
  AT_UID,
  AT_EUID,
  AT_GID,
  AT_EGID,
  VSYSCALL_ADDR,
} from './consts.js';
import { type ParsedCore, type CoreSegment, type CoreThread, type CoreFileEntry, parseCore } from './parse.js';
import { guessLayout, isCompacted, toIntelExt, XSAVE_LEGACY_BYTES, XSTATE_XCR0_OFFSET, type XsaveComponent } from '../cpu/xsave.js';

export interface ElfImportOptions {
  kernels?: Kernels;
  /** Creation time for the model's header (default: the core file's mtime to the microsecond, or 0 for a non-file source). */
  createdNs?: bigint;
  /** Checkpoint id for the header (default 0). */
  crid?: bigint;
}

/** An opened core: its model (pages read lazily from the core) and what was parsed. Close it when done. */
export interface ElfCore {
  readonly model: Model;
  readonly core: ParsedCore;
  readonly source: Source;
  close(): void;
}

const PAGE = BigInt(CORE_PAGE);
const pageUp = (v: bigint): bigint => (v + PAGE - 1n) & ~(PAGE - 1n);
/** VMAs end at most here (the last page of the 64-bit space is never mapped; image fields are u64). */
const LAST_PAGE_END = (1n << 64n) - PAGE;

const SYS_LSEEK = SYS.lseek;

/**
 * Where the data of a sparse file lies (lseek SEEK_DATA/SEEK_HOLE): holes read as
 * zeros without a read(2), so a mostly-zero multi-GiB core converts at memory speed.
 * Any failure turns hole detection off for the file (plain reads are always right).
 */
class Extents {
  private ok = true;
  /** The last answer: [holeFrom, dataFrom) is a hole and [dataFrom, dataTo) data (dataFrom = Infinity: a hole to EOF). */
  private holeFrom = -1;
  private dataFrom = -1;
  private dataTo = -1;
  constructor(private readonly fd: number) {}
  /** [dataStart, dataEnd) of the first data at or after pos, clipped to end; null when none before end. */
  next(pos: number, end: number): [number, number] | null {
    if (!this.ok) return [pos, end];
    // Within the last answer: no system call (a dense core asks once per data extent, not per read).
    if (pos >= this.holeFrom && pos < this.dataTo) return this.clip(pos, end);
    if (pos >= this.holeFrom && this.dataFrom === Infinity) return null;
    try {
      let d: number;
      try {
        d = syscall(SYS_LSEEK, this.fd, pos, SEEK_DATA);
      } catch (e) {
        if (isSysError(e, ERRNO.ENXIO)) {
          // only a hole up to the end of the file
          this.holeFrom = pos;
          this.dataFrom = Infinity;
          this.dataTo = Infinity;
          return null;
        }
        throw e;
      }
      const h = syscall(SYS_LSEEK, this.fd, d, SEEK_HOLE);
      this.holeFrom = pos;
      this.dataFrom = Math.max(d, pos);
      this.dataTo = Math.max(h, d + 1);
      return this.clip(pos, end);
    } catch {
      this.ok = false;
      return [pos, end];
    }
  }
  private clip(pos: number, end: number): [number, number] | null {
    const d = Math.max(this.dataFrom, pos);
    if (d >= end) return null;
    return [d, Math.min(this.dataTo, end)];
  }
}

/** The pages of one PT_LOAD, read from the core file on demand. Pages past p_filesz are absent. */
class CoreSegmentPages implements PageSource {
  private readonly filePages: number;
  constructor(
    private readonly src: Source,
    private readonly seg: CoreSegment,
    npages: number,
    private readonly ext: Extents | null,
  ) {
    this.filePages = Math.min(npages, Math.ceil(seg.filesz / CORE_PAGE));
  }
  runs(): Iterable<[number, number]> {
    return this.filePages > 0 ? [[0, this.filePages]] : [];
  }
  read(k: Kernels, dst: number, first: number, n: number): void {
    const len = n * CORE_PAGE;
    const from = first * CORE_PAGE;
    const avail = Math.max(0, Math.min(len, this.seg.filesz - from));
    const m = k.u8();
    const base = this.seg.offset + from;
    let pos = base;
    const end = base + avail;
    while (pos < end) {
      const d = this.ext ? this.ext.next(pos, end) : [pos, end];
      if (!d) break; // the rest is a hole: zeros
      m.fill(0, dst + (pos - base), dst + (d[0] - base)); // a hole before the data
      // Straight into the kernels' memory: no intermediate buffer.
      const got = this.src.pread(m.subarray(dst + (d[0] - base), dst + (d[1] - base)), d[0]);
      if (got < d[1] - d[0]) {
        const msg = `core ends inside PT_LOAD ${this.seg.index} (file shrank while converting)`;
        throw new CrimgError('TRUNCATED', msg, { offset: d[0] + got });
      }
      pos = d[1];
    }
    m.fill(0, dst + (pos - base), dst + len); // holes to the end, and pages past p_filesz
  }
}

function protOf(flags: number): number {
  return (flags & PF_R ? Prot.READ : 0) | (flags & PF_W ? Prot.WRITE : 0) | (flags & PF_X ? Prot.EXEC : 0);
}

function auxGet(auxv: bigint[] | null, type: number): bigint | undefined {
  if (!auxv) return undefined;
  for (let i = 0; i + 1 < auxv.length; i += 2) if (auxv[i] === BigInt(type)) return auxv[i + 1];
  return undefined;
}

/** The XSAVE area of a core as the model's XState (Intel standard layout from offset 512). */
function importXstate(area: Uint8Array, layout: readonly XsaveComponent[] | null, k: Kernels, at: number): XState {
  let a = area;
  if (isCompacted(a)) {
    // Not written by Linux or gdb, but a compacted area is unambiguous: expand it.
    const cap = 1 << 20;
    const r = claimRegion(k, a.length + cap);
    try {
      k.u8().set(a, r);
      const n = k.xsaveToStandard(r, a.length, r + a.length, cap);
      if (n === 0) throw new CrimgError('BAD_CORE', 'NT_X86_XSTATE is a malformed compacted XSAVE area', { offset: at });
      a = k.u8().slice(r + a.length, r + a.length + n);
    } finally {
      releaseRegion(k, r);
    }
  }
  const dv = new DataView(a.buffer, a.byteOffset, a.byteLength);
  let xcr0 = dv.getBigUint64(XSTATE_XCR0_OFFSET, true);
  // A zero XCR0 slot (some tools leave it empty): the components the area says are in use.
  if (xcr0 === 0n) xcr0 = dv.getBigUint64(XSAVE_LEGACY_BYTES, true) | 3n;
  return { xcr0, ext: toIntelExt(a, xcr0, guessLayout(xcr0, a.length, layout)) };
}

function importThread(t: CoreThread, core: ParsedCore, k: Kernels): Thread {
  const th = newThread(t.tid);
  th.regs.set(t.regs);
  if (t.fpregs) th.fpu = t.fpregs.slice();
  else if (t.xstate) {
    th.fpu = t.xstate.slice(0, XSAVE_LEGACY_BYTES);
    th.fpu.fill(0, XSTATE_XCR0_OFFSET);
  } else th.fpu = freshFxsave();
  th.xstate = t.xstate ? importXstate(t.xstate, core.xsaveLayout, k, t.xstateOffset) : null;
  th.sigmask = t.sighold;
  th.sigpending = t.sigpend;
  return th;
}

/** NT_FILE entries sorted by start, checked not to overlap (after rounding to pages). */
function sortedFiles(core: ParsedCore): CoreFileEntry[] {
  const files = [...(core.files ?? [])].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const at = core.notes.find((n) => n.type === NT_FILE)?.offset ?? 0;
  for (let i = 0; i < files.length; i++) {
    const f = files[i]!;
    if (pageUp(f.end) > LAST_PAGE_END) {
      const msg = `NT_FILE entry for ${f.path} ends at 0x${f.end.toString(16)}, past the address space`;
      throw new CrimgError('BAD_CORE', msg, { offset: at });
    }
    if (i > 0 && f.start < pageUp(files[i - 1]!.end)) {
      const msg = `NT_FILE entries for ${files[i - 1]!.path} and ${f.path} overlap at 0x${f.start.toString(16)}`;
      throw new CrimgError('BAD_CORE', msg, { offset: at });
    }
  }
  return files;
}

/** The NT_FILE entry covering address a, if any (files sorted, disjoint). */
function fileAt(files: CoreFileEntry[], a: bigint): CoreFileEntry | undefined {
  let lo = 0,
    hi = files.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (files[mid]!.end <= a) lo = mid + 1;
    else hi = mid;
  }
  const f = files[lo];
  return f && f.start <= a && a < f.end ? f : undefined;
}

/** Name and flags of a VMA without a file: what can be told from the auxiliary vector and the stack pointer. */
function pseudo(start: bigint, end: bigint, vdso: bigint | undefined, rsp: bigint): { path: string | null; flags: number } {
  if (start === VSYSCALL_ADDR) return { path: '[vsyscall]', flags: VmaFlags.VSYSCALL };
  if (vdso !== undefined && start === vdso) return { path: '[vdso]', flags: VmaFlags.VDSO };
  if (start <= rsp && rsp < end) return { path: '[stack]', flags: VmaFlags.ANON | VmaFlags.STACK | VmaFlags.GROWSDOWN };
  return { path: null, flags: VmaFlags.ANON };
}

const DELETED = ' (deleted)';

function fileVma(start: bigint, end: bigint, prot: number, f: CoreFileEntry, pages: PageSource): Vma {
  return {
    start,
    end,
    prot,
    flags: f.path.endsWith(DELETED) ? VmaFlags.FILE_DELETED : 0,
    pgoff: (f.fileOfs + (start - f.start)) / PAGE,
    devMajor: 0,
    devMinor: 0,
    inode: 0n,
    path: f.path,
    pages,
  };
}

/** One VMA per PT_LOAD, its pages read from the core; named by NT_FILE, else by what auxv and rsp tell. */
function segmentVmas(core: ParsedCore, src: Source, files: CoreFileEntry[], vdso: bigint | undefined, rsp: bigint): Vma[] {
  const fd = (src as { fd?: unknown }).fd;
  const ext = typeof fd === 'number' ? new Extents(fd) : null;
  const vmas: Vma[] = [];
  for (const seg of core.segments) {
    const start = seg.vaddr;
    const end = pageUp(seg.vaddr + seg.memsz);
    if (end > LAST_PAGE_END) {
      const msg = `PT_LOAD ${seg.index} at 0x${start.toString(16)} reaches the end of the address space`;
      throw new CrimgError('BAD_CORE', msg, { offset: seg.phOff + 40 });
    }
    const npages = Number((end - start) / PAGE);
    const pages = new CoreSegmentPages(src, seg, npages, ext);
    const f = fileAt(files, start);
    if (f) vmas.push(fileVma(start, end, protOf(seg.flags), f, pages));
    else {
      const p = pseudo(start, end, vdso, rsp);
      vmas.push({
        start,
        end,
        prot: protOf(seg.flags),
        flags: p.flags,
        pgoff: 0n,
        devMajor: 0,
        devMinor: 0,
        inode: 0n,
        path: p.path,
        pages,
      });
    }
  }
  return vmas;
}

/**
 * File mappings that have no PT_LOAD (gcore leaves out unmodified file mappings): VMAs without pages.
 * Files and segments are both sorted and disjoint: one merge-like pass.
 */
function fileOnlyVmas(files: CoreFileEntry[], segs: CoreSegment[]): Vma[] {
  const vmas: Vma[] = [];
  let si = 0;
  for (const f of files) {
    let at = f.start & ~(PAGE - 1n);
    const fend = pageUp(f.end);
    while (si < segs.length && pageUp(segs[si]!.vaddr + segs[si]!.memsz) <= at) si++;
    for (let j = si; j < segs.length && segs[j]!.vaddr < fend; j++) {
      const s = segs[j]!;
      if (s.vaddr > at) vmas.push(fileVma(at, s.vaddr, Prot.READ, f, NO_PAGES));
      const sEnd = pageUp(s.vaddr + s.memsz);
      if (sEnd > at) at = sEnd;
    }
    if (at < fend) vmas.push(fileVma(at, fend, Prot.READ, f, NO_PAGES));
  }
  return vmas;
}

/** Credentials: uid and gid from NT_PRPSINFO, else AT_UID/AT_GID; the effective ones from AT_EUID/AT_EGID. */
function credsOf(core: ParsedCore): Credentials {
  const ps = core.psinfo;
  const creds = emptyCreds();
  // ids from the auxiliary vector are u32 in the kernel: anything larger means a damaged NT_AUXV
  const auxId = (type: number, name: string, fallback: number): number => {
    const v = auxGet(core.auxv, type);
    if (v === undefined) return fallback;
    if (v > 0xffffffffn) throw new CrimgError('BAD_CORE', `NT_AUXV ${name} 0x${v.toString(16)} is not a 32-bit id`);
    return Number(v);
  };
  const uid = ps?.uid ?? auxId(AT_UID, 'AT_UID', 0);
  const gid = ps?.gid ?? auxId(AT_GID, 'AT_GID', 0);
  const euid = auxId(AT_EUID, 'AT_EUID', uid);
  const egid = auxId(AT_EGID, 'AT_EGID', gid);
  Object.assign(creds, { uid, gid, euid, egid, suid: euid, sgid: egid, fsuid: euid, fsgid: egid });
  return creds;
}

/** The task of a core: ids from NT_PRPSINFO (else the main thread's NT_PRSTATUS); what a core does not hold is neutral. */
function taskOf(core: ParsedCore, pid: number, main: CoreThread, threads: Thread[], files: CoreFileEntry[], vmas: Vma[]): Task {
  const ps = core.psinfo;
  const exeAt = auxGet(core.auxv, AT_PHDR) ?? auxGet(core.auxv, AT_ENTRY);
  const exe = exeAt !== undefined ? (fileAt(files, exeAt)?.path ?? '') : '';
  return {
    pid,
    tgid: pid,
    ppid: ps?.ppid ?? main.ppid,
    pgid: ps?.pgrp ?? main.pgrp,
    sid: ps?.sid ?? main.sid,
    comm: ps?.fname ?? '',
    exe,
    cwd: '',
    root: '/',
    args: ps?.psargs ? ps.psargs.split(' ').filter((s) => s.length > 0) : [],
    env: [],
    personality: 0,
    exitSignal: 17,
    creds: credsOf(core),
    rlimits: defaultRlimits(),
    ns: emptyNsIds(),
    threads,
    mm: {
      startCode: 0n,
      endCode: 0n,
      startData: 0n,
      endData: 0n,
      startBrk: 0n,
      brk: 0n,
      startStack: 0n,
      argStart: 0n,
      argEnd: 0n,
      envStart: 0n,
      envEnd: 0n,
      auxv: core.auxv ?? [],
      vmas,
    },
    files: [],
    nocr: [],
  };
}

/** Build the model of a parsed core whose segments are read from src. */
export function coreToModel(core: ParsedCore, src: Source, opts: ElfImportOptions = {}): Model {
  const k = opts.kernels ?? kernels();
  const ps = core.psinfo;
  const pid = ps && ps.pid > 0 && core.threads.some((t) => t.tid === ps.pid) ? ps.pid : core.threads[0]!.tid;
  const main = core.threads.find((t) => t.tid === pid)!;
  const threads = core.threads.map((t) => importThread(t, core, k));
  if (ps?.sname) threads[core.threads.indexOf(main)]!.state = ps.sname;
  const files = sortedFiles(core);
  const vmas = segmentVmas(core, src, files, auxGet(core.auxv, AT_SYSINFO_EHDR), main.regs[REG_INDEX.rsp]!).concat(
    fileOnlyVmas(files, core.segments),
  );
  vmas.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  return {
    header: {
      crid: opts.crid ?? 0n,
      createdNs: opts.createdNs ?? 0n,
      flags: HeaderFlags.CORE,
      tool: 'crimg (from ELF core)',
      uts: { sysname: 'Linux', nodename: '', release: '', version: '', machine: 'x86_64', domainname: '' },
      freezeNs: 0n,
    },
    namespaces: [],
    tasks: [taskOf(core, pid, main, threads, files, vmas)],
  };
}

/**
 * Open an x86_64 Linux ELF core file (the kernel's or gdb's gcore's) as a model.
 * Headers and notes are checked now (BAD_CORE, TRUNCATED); page contents are read
 * from the core when the model's page sources are asked for them.
 */
export function fromElfCore(target: SourceTarget, opts: ElfImportOptions = {}): ElfCore {
  const src = openSource(target);
  const owns = src !== target;
  try {
    const core = parseCore(src);
    let createdNs = opts.createdNs;
    if (createdNs === undefined) {
      createdNs = 0n;
      if (typeof target === 'string') {
        // The core's mtime, to the microsecond (what file times carry through utimes, see toElfCore).
        try {
          createdNs = ((fs.statSync(target, { bigint: true }).mtimeNs + 500n) / 1000n) * 1000n;
        } catch {
          /* keep 0 */
        }
      }
    }
    const model = coreToModel(core, src, { ...opts, createdNs });
    let closed = false;
    return {
      model,
      core,
      source: src,
      close: () => {
        if (!closed && owns) src.close();
        closed = true;
      },
    };
  } catch (e) {
    if (owns) src.close();
    throw e;
  }
}
