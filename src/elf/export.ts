/**
 * Model -> ELF core file that gdb, readelf and eu-readelf read: the layout of the
 * kernel's cores (ELF header, program headers, one PT_NOTE, then one page-aligned
 * PT_LOAD per VMA). Notes in gdb's order: NT_PRPSINFO; per thread NT_PRSTATUS,
 * NT_FPREGSET and NT_X86_XSTATE (Intel layout, XCR0 at bytes 464..471, size that
 * matches XCR0); NT_AUXV; NT_FILE (page_size 4096). A VMA's PT_LOAD has p_filesz
 * up to its last recorded page (0 when no page is recorded, as the kernel does for
 * file mappings it leaves out); zero and absent pages inside are file holes when
 * the destination is a regular file. More than 65534 segments use PN_XNUM with
 * the count in section header 0.
 *
 * Pages stream from each VMA's PageSource through the kernels' memory into the
 * sink, a run at a time: memory use does not depend on the size of the address space.
 */
import * as fs from 'node:fs';
import { CrimgError } from '../errors.js';
import { kernels } from '../kernels/index.js';
import type { Kernels } from '../kernels/api.js';
import { claimRegion, releaseRegion } from '../kernels/arena.js';
import { type Model, type Task, type Thread, type Vma, Prot, VmaFlags, FXSAVE_BYTES } from '../model.js';
import { type Sink, type SinkOptions, type SinkTarget, openSink } from '../sink.js';
import { Image } from '../reader.js';
import {
  EHDR_BYTES,
  PHDR_BYTES,
  SHDR_BYTES,
  PN_XNUM,
  PT_LOAD,
  PT_NOTE,
  PF_R,
  PF_W,
  PF_X,
  CORE_PAGE,
  ELFCLASS64,
  ELFDATA2LSB,
  EV_CURRENT,
  ET_CORE,
  EM_X86_64,
  NOTE_HDR_BYTES,
  NAME_CORE,
  NAME_LINUX,
  NT_PRSTATUS,
  NT_FPREGSET,
  NT_PRPSINFO,
  NT_AUXV,
  NT_FILE,
  NT_X86_XSTATE,
  PRSTATUS_BYTES,
  PRS_SIGPEND,
  PRS_SIGHOLD,
  PRS_PID,
  PRS_PPID,
  PRS_PGRP,
  PRS_SID,
  PRS_REG,
  PRS_FPVALID,
  PRPSINFO_BYTES,
  PSI_STATE,
  PSI_SNAME,
  PSI_ZOMB,
  PSI_UID,
  PSI_GID,
  PSI_PID,
  PSI_PPID,
  PSI_PGRP,
  PSI_SID,
  PSI_FNAME,
  PSI_FNAME_BYTES,
  PSI_PSARGS,
  PSI_PSARGS_BYTES,
  FPREGSET_BYTES,
  align4,
} from './consts.js';
import { gdbXstateNote } from './xsave.js';
import { pageSpans } from '../pagespans.js';

export interface ElfExportOptions extends SinkOptions {
  /** Task to write (an ELF core holds one process); default the first task of the model. */
  pid?: number;
  kernels?: Kernels;
  /** Called after each run of pages with the bytes written so far. */
  onProgress?: (bytesWritten: number) => void;
}

export interface ElfExportResult {
  pid: number;
  /** Size of the core file (holes included). */
  bytes: number;
  threads: number;
  /** PT_LOAD segments (one per VMA). */
  segments: number;
  notesBytes: number;
  /** Pages written with data, and pages left as holes (zero or absent inside p_filesz). */
  pagesWritten: number;
  pagesHole: number;
}

const te = new TextEncoder();
/** Pages read from a page source per step. */
const CHUNK_PAGES = 256;

/** Notes in memory: they are small (a few KiB per thread, 24 bytes + a path per file mapping). */
class NoteBuilder {
  private parts: Uint8Array[] = [];
  size = 0;
  add(name: string, type: number, desc: Uint8Array): void {
    const nm = te.encode(name);
    const namesz = nm.length + 1;
    const b = new Uint8Array(NOTE_HDR_BYTES + align4(namesz) + align4(desc.length));
    const dv = new DataView(b.buffer);
    dv.setUint32(0, namesz, true);
    dv.setUint32(4, desc.length, true);
    dv.setUint32(8, type, true);
    b.set(nm, NOTE_HDR_BYTES);
    b.set(desc, NOTE_HDR_BYTES + align4(namesz));
    this.parts.push(b);
    this.size += b.length;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

/** Copy a string into a fixed NUL-terminated field, cut at a UTF-8 character boundary. */
function putCStr(dst: Uint8Array, at: number, cap: number, s: string): void {
  let b = te.encode(s);
  if (b.length > cap - 1) {
    let n = cap - 1;
    while (n > 0 && (b[n]! & 0xc0) === 0x80) n--; // do not split a character
    b = b.subarray(0, n);
  }
  dst.set(b, at);
}

function prstatus(task: Task, th: Thread): Uint8Array {
  const b = new Uint8Array(PRSTATUS_BYTES);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(PRS_SIGPEND, th.sigpending, true);
  dv.setBigUint64(PRS_SIGHOLD, th.sigmask, true);
  dv.setInt32(PRS_PID, th.tid, true);
  dv.setInt32(PRS_PPID, task.ppid, true);
  dv.setInt32(PRS_PGRP, task.pgid, true);
  dv.setInt32(PRS_SID, task.sid, true);
  for (let i = 0; i < 27; i++) dv.setBigUint64(PRS_REG + 8 * i, th.regs[i]!, true);
  dv.setInt32(PRS_FPVALID, 1, true);
  return b;
}

const STATES = 'RSDTZW';

function prpsinfo(task: Task): Uint8Array {
  const b = new Uint8Array(PRPSINFO_BYTES);
  const dv = new DataView(b.buffer);
  const main = task.threads.find((t) => t.tid === task.pid) ?? task.threads[0];
  const sname = main?.state && main.state.length === 1 ? main.state : 'R';
  const st = STATES.indexOf(sname.toUpperCase());
  b[PSI_STATE] = Math.max(st, 0);
  b[PSI_SNAME] = sname.charCodeAt(0) & 0x7f;
  b[PSI_ZOMB] = sname === 'Z' ? 1 : 0;
  dv.setUint32(PSI_UID, task.creds.uid, true);
  dv.setUint32(PSI_GID, task.creds.gid, true);
  dv.setInt32(PSI_PID, task.pid, true);
  dv.setInt32(PSI_PPID, task.ppid, true);
  dv.setInt32(PSI_PGRP, task.pgid, true);
  dv.setInt32(PSI_SID, task.sid, true);
  putCStr(b, PSI_FNAME, PSI_FNAME_BYTES, task.comm);
  putCStr(b, PSI_PSARGS, PSI_PSARGS_BYTES, task.args.join(' '));
  return b;
}

function auxvNote(auxv: bigint[]): Uint8Array {
  const n = auxv.length >> 1;
  const b = new Uint8Array((n + 1) * 16); // + AT_NULL
  const dv = new DataView(b.buffer);
  for (let i = 0; i < n * 2; i++) dv.setBigUint64(i * 8, auxv[i]!, true);
  return b;
}

/** True for VMAs whose path names a file (not anonymous, not [heap]/[stack]/[vdso]...). */
export function isFileVma(v: Vma): boolean {
  return v.path !== null && v.path.length > 0 && !(v.flags & VmaFlags.ANON) && !(v.path.startsWith('[') && v.path.endsWith(']'));
}

function fileNote(vmas: Vma[]): Uint8Array | null {
  const files = vmas.filter(isFileVma);
  if (files.length === 0) return null;
  const names = files.map((v) => te.encode(v.path!));
  const b = new Uint8Array(16 + files.length * 24 + names.reduce((s, n) => s + n.length + 1, 0));
  const dv = new DataView(b.buffer);
  dv.setBigUint64(0, BigInt(files.length), true);
  dv.setBigUint64(8, BigInt(CORE_PAGE), true);
  let s = 16 + files.length * 24;
  files.forEach((v, i) => {
    dv.setBigUint64(16 + i * 24, v.start, true);
    dv.setBigUint64(16 + i * 24 + 8, v.end, true);
    dv.setBigUint64(16 + i * 24 + 16, v.pgoff, true);
    b.set(names[i]!, s);
    s += names[i]!.length + 1;
  });
  return b;
}

function buildNotes(task: Task): Uint8Array {
  const nb = new NoteBuilder();
  nb.add(NAME_CORE, NT_PRPSINFO, prpsinfo(task));
  for (const th of task.threads) {
    if (th.regs.length !== 27) throw new CrimgError('INTERNAL', `thread ${th.tid}: ${th.regs.length} registers, expected 27`);
    if (th.fpu.length !== FXSAVE_BYTES) throw new CrimgError('INTERNAL', `thread ${th.tid}: FXSAVE area of ${th.fpu.length} bytes`);
    nb.add(NAME_CORE, NT_PRSTATUS, prstatus(task, th));
    nb.add(NAME_CORE, NT_FPREGSET, th.fpu.subarray(0, FPREGSET_BYTES));
    if (th.xstate) nb.add(NAME_LINUX, NT_X86_XSTATE, gdbXstateNote(th.fpu, th.xstate.xcr0, th.xstate.ext).bytes);
  }
  nb.add(NAME_CORE, NT_AUXV, auxvNote(task.mm!.auxv));
  const f = fileNote(task.mm!.vmas);
  if (f) nb.add(NAME_CORE, NT_FILE, f);
  return nb.bytes();
}

/** Pages of a VMA that go into the file: up to the end of its last recorded run. */
function filePagesOf(v: Vma): number {
  const npages = Number((v.end - v.start) / BigInt(CORE_PAGE));
  let end = 0;
  for (const [first, count] of v.pages.runs(npages)) {
    if (first < 0 || count <= 0 || first + count > npages) {
      throw new CrimgError('INTERNAL', `page source of VMA 0x${v.start.toString(16)} gave a bad run [${first}, +${count})`);
    }
    end = Math.max(end, first + count);
  }
  return end;
}

function pflags(prot: number): number {
  return (prot & Prot.READ ? PF_R : 0) | (prot & Prot.WRITE ? PF_W : 0) | (prot & Prot.EXEC ? PF_X : 0);
}

/** Writes bytes and holes to a sink, keeping count. */
class Out {
  private zeros: Uint8Array | null = null;
  constructor(readonly sink: Sink) {}
  get at(): number {
    return this.sink.written;
  }
  async write(b: Uint8Array): Promise<void> {
    const r = this.sink.write(b);
    if (r) await r;
  }
  async hole(n: number): Promise<void> {
    if (n <= 0) return;
    if (this.sink.skip) {
      this.sink.skip(n);
      return;
    }
    this.zeros ??= new Uint8Array(1 << 20);
    for (let left = n; left > 0; left -= this.zeros.length) {
      await this.write(left >= this.zeros.length ? this.zeros : this.zeros.subarray(0, left));
    }
  }
}

/** Where everything goes in the core: notes after the program headers, then each VMA's pages, page aligned. */
interface CoreLayout {
  vmas: Vma[];
  notes: Uint8Array;
  /** Program headers: the PT_NOTE and one PT_LOAD per VMA; xnum: too many for e_phnum (PN_XNUM). */
  nseg: number;
  xnum: boolean;
  notesOff: number;
  /** Pages of each VMA in the file (p_filesz / page), and the file offset of each. */
  filePages: number[];
  offsets: number[];
  /** End of the last PT_LOAD's bytes: section header 0 goes here with PN_XNUM. */
  dataEnd: number;
}

function layoutOf(task: Task): CoreLayout {
  const vmas = task.mm!.vmas;
  const notes = buildNotes(task);
  const nseg = 1 + vmas.length;
  const notesOff = EHDR_BYTES + nseg * PHDR_BYTES;
  let off = Math.ceil((notesOff + notes.length) / CORE_PAGE) * CORE_PAGE;
  const filePages = vmas.map(filePagesOf);
  const offsets = filePages.map((n) => {
    const o = off;
    off += n * CORE_PAGE;
    return o;
  });
  return { vmas, notes, nseg, xnum: nseg >= PN_XNUM, notesOff, filePages, offsets, dataEnd: off };
}

/** The ELF header and the program headers (PT_NOTE, then a PT_LOAD per VMA). */
function headersOf(l: CoreLayout): Uint8Array {
  const head = new Uint8Array(l.notesOff);
  const dv = new DataView(head.buffer);
  head.set([0x7f, 0x45, 0x4c, 0x46, ELFCLASS64, ELFDATA2LSB, EV_CURRENT], 0);
  dv.setUint16(16, ET_CORE, true);
  dv.setUint16(18, EM_X86_64, true);
  dv.setUint32(20, EV_CURRENT, true);
  dv.setBigUint64(32, BigInt(EHDR_BYTES), true); // e_phoff
  dv.setBigUint64(40, BigInt(l.xnum ? l.dataEnd : 0), true); // e_shoff
  dv.setUint16(52, EHDR_BYTES, true);
  dv.setUint16(54, PHDR_BYTES, true);
  dv.setUint16(56, l.xnum ? PN_XNUM : l.nseg, true);
  dv.setUint16(58, l.xnum ? SHDR_BYTES : 0, true);
  dv.setUint16(60, l.xnum ? 1 : 0, true);
  // PT_NOTE
  let p = EHDR_BYTES;
  dv.setUint32(p, PT_NOTE, true);
  dv.setUint32(p + 4, PF_R, true);
  dv.setBigUint64(p + 8, BigInt(l.notesOff), true);
  dv.setBigUint64(p + 32, BigInt(l.notes.length), true);
  dv.setBigUint64(p + 48, 4n, true);
  l.vmas.forEach((v, i) => {
    p = EHDR_BYTES + (i + 1) * PHDR_BYTES;
    dv.setUint32(p, PT_LOAD, true);
    dv.setUint32(p + 4, pflags(v.prot), true);
    dv.setBigUint64(p + 8, BigInt(l.offsets[i]!), true);
    dv.setBigUint64(p + 16, v.start, true);
    dv.setBigUint64(p + 32, BigInt(l.filePages[i]! * CORE_PAGE), true);
    dv.setBigUint64(p + 40, v.end - v.start, true);
    dv.setBigUint64(p + 48, BigInt(CORE_PAGE), true);
  });
  return head;
}

/** Pages written with data and left as holes. */
interface PageCounts {
  pagesWritten: number;
  pagesHole: number;
}

/** Stream the pages of one VMA up to `limit` (its p_filesz in pages): recorded non-zero pages as data, the rest holes. */
async function writeVmaPages(
  out: Out,
  v: Vma,
  limit: number,
  k: Kernels,
  region: number,
  c: PageCounts,
  opts: ElfExportOptions,
): Promise<void> {
  let at = 0; // next page of the VMA to emit
  const npages = Number((v.end - v.start) / BigInt(CORE_PAGE));
  for (const [first, count] of v.pages.runs(npages)) {
    if (first < at) throw new CrimgError('INTERNAL', `page source of VMA 0x${v.start.toString(16)} gave runs out of order`);
    await out.hole((first - at) * CORE_PAGE);
    c.pagesHole += first - at;
    for (const s of pageSpans(k, v, first, count, region, CHUNK_PAGES)) {
      if (!s.zero) {
        await out.write(k.u8().subarray(s.at, s.at + s.pages * CORE_PAGE));
        c.pagesWritten += s.pages;
      } else {
        await out.hole(s.pages * CORE_PAGE);
        c.pagesHole += s.pages;
      }
      if (s.chunkEnd) opts.onProgress?.(out.at);
    }
    at = first + count;
  }
  await out.hole((limit - at) * CORE_PAGE);
  c.pagesHole += Math.max(0, limit - at);
}

/** The whole core: headers, notes, the PT_LOADs' bytes, and section header 0 with PN_XNUM. */
async function writeCore(out: Out, l: CoreLayout, k: Kernels, region: number, opts: ElfExportOptions): Promise<PageCounts> {
  const c: PageCounts = { pagesWritten: 0, pagesHole: 0 };
  await out.write(headersOf(l));
  await out.write(l.notes);
  await out.hole(CORE_PAGE - ((l.notesOff + l.notes.length) % CORE_PAGE || CORE_PAGE));
  for (let i = 0; i < l.vmas.length; i++) {
    if (out.at !== l.offsets[i]) throw new CrimgError('INTERNAL', `PT_LOAD ${i + 1} at ${out.at}, expected ${l.offsets[i]}`);
    await writeVmaPages(out, l.vmas[i]!, l.filePages[i]!, k, region, c, opts);
  }
  if (out.at !== l.dataEnd) throw new CrimgError('INTERNAL', `core data ends at ${out.at}, expected ${l.dataEnd}`);
  if (l.xnum) {
    // Section header 0 carries the real segment count (sh_info); e_shnum 1, sh_size 1 as the kernel writes.
    const sh = new Uint8Array(SHDR_BYTES);
    const sdv = new DataView(sh.buffer);
    sdv.setBigUint64(32, 1n, true); // sh_size = e_shnum
    sdv.setUint32(44, l.nseg, true); // sh_info
    await out.write(sh);
  }
  return c;
}

/** The task to write: the one asked for (default the first), with an address space and threads. */
function taskToWrite(model: Model, pid: number | undefined): Task {
  const task = pid !== undefined ? model.tasks.find((t) => t.pid === pid) : model.tasks[0];
  if (!task) throw new CrimgError('NOT_FOUND', pid !== undefined ? `no task with pid ${pid} in the image` : 'the image has no tasks');
  if (!task.mm) throw new CrimgError('UNMAPPED', `task ${task.pid} has no address space: it cannot be written as a core`);
  if (task.threads.length === 0) throw new CrimgError('NOT_FOUND', `task ${task.pid} has no threads`);
  return task;
}

/**
 * Write one task of a model (or of an opened image) as an ELF core. The sink may be
 * a path (temporary name + rename; holes for zero pages), a file descriptor, a
 * Node Writable or any Sink.
 */
export async function toElfCore(src: Model | Image, target: SinkTarget, opts: ElfExportOptions = {}): Promise<ElfExportResult> {
  const model = src instanceof Image ? src.model : src;
  const k = opts.kernels ?? (src instanceof Image ? src.k : kernels());
  const task = taskToWrite(model, opts.pid);
  const l = layoutOf(task);
  const sink = openSink(target, opts);
  const out = new Out(sink);
  const region = claimRegion(k, CHUNK_PAGES * CORE_PAGE + CHUNK_PAGES / 8);
  try {
    const c = await writeCore(out, l, k, region, opts);
    const bytes = out.at;
    await sink.close();
    // A core file's mtime is when its snapshot was taken (fromElfCore reads it back as header.createdNs).
    if (typeof target === 'string' && model.header.createdNs > 0n) {
      try {
        // Node passes times as microseconds, truncating: aim at the middle of the microsecond.
        if (fs.statSync(target).isFile()) fs.utimesSync(target, new Date(), Number(model.header.createdNs / 1000n) / 1e6 + 5e-7);
      } catch {
        /* times are a courtesy; the core is complete */
      }
    }
    return { pid: task.pid, bytes, threads: task.threads.length, segments: l.vmas.length, notesBytes: l.notes.length, ...c };
  } catch (e) {
    sink.abort();
    throw e;
  } finally {
    releaseRegion(k, region);
  }
}
