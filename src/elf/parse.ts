/**
 * Parsing of x86_64 Linux ELF core files (the kernel's and gdb's gcore's):
 * the ELF header, the program headers and the notes. Everything is checked
 * before use; any inconsistency is a CrimgError BAD_CORE (TRUNCATED when the
 * file ends too early) carrying the file offset of the problem. Segment
 * contents are not read here.
 */
import { CrimgError } from '../errors.js';
import type { Source } from '../source.js';
import {
  ELF_MAGIC,
  ELFCLASS64,
  ELFDATA2LSB,
  EV_CURRENT,
  ET_CORE,
  EM_X86_64,
  EHDR_BYTES,
  PHDR_BYTES,
  SHDR_BYTES,
  PN_XNUM,
  PT_LOAD,
  PT_NOTE,
  NOTE_HDR_BYTES,
  NAME_CORE,
  NAME_LINUX,
  NT_PRSTATUS,
  NT_FPREGSET,
  NT_PRPSINFO,
  NT_AUXV,
  NT_SIGINFO,
  NT_FILE,
  NT_X86_XSTATE,
  NT_X86_XSAVE_LAYOUT,
  PRSTATUS_BYTES,
  PRS_SIGNO,
  PRS_CODE,
  PRS_ERRNO,
  PRS_CURSIG,
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
  PSI_NICE,
  PSI_FLAG,
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
  CORE_PAGE,
  align4,
} from './consts.js';
import { NREGS } from '../model.js';
import { type XsaveComponent, XSAVE_MIN_BYTES } from '../cpu/xsave.js';
import { parseLayoutNote } from './xsave.js';

/** Largest number of program headers accepted (the kernel's map count limit is 65530). */
export const MAX_PHNUM = 1 << 21;
/** Largest number of NT_FILE entries accepted (the kernel's note is at most a few MiB: ~100k mappings). */
export const MAX_FILE_ENTRIES = 1 << 20;
/** Largest total size of the note segments accepted. */
export const MAX_NOTES_BYTES = 256 * 1024 * 1024;
/** Largest single note descriptors accepted, by kind. */
const MAX_XSTATE_BYTES = 1 << 20;
const MAX_AUXV_BYTES = 64 * 1024;
const MAX_SIGINFO_BYTES = 4096;

export interface CoreSegment {
  /** Index of the program header. */
  index: number;
  /** File offset of the program header (for error reports). */
  phOff: number;
  vaddr: bigint;
  memsz: bigint;
  /** File offset and length of the segment's bytes. */
  offset: number;
  filesz: number;
  /** p_flags: PF_R 4, PF_W 2, PF_X 1. */
  flags: number;
}

export interface CoreThread {
  tid: number;
  /** File offset of the NT_PRSTATUS descriptor. */
  noteOffset: number;
  signo: number;
  code: number;
  errno: number;
  cursig: number;
  sigpend: bigint;
  sighold: bigint;
  ppid: number;
  pgrp: number;
  sid: number;
  regs: BigUint64Array;
  fpvalid: number;
  fpregs: Uint8Array | null;
  /** The NT_X86_XSTATE descriptor as stored (whole XSAVE area). */
  xstate: Uint8Array | null;
  xstateOffset: number;
  siginfo: Uint8Array | null;
}

export interface CorePsinfo {
  state: number;
  sname: string;
  zomb: number;
  nice: number;
  flag: bigint;
  uid: number;
  gid: number;
  pid: number;
  ppid: number;
  pgrp: number;
  sid: number;
  fname: string;
  psargs: string;
}

export interface CoreFileEntry {
  start: bigint;
  end: bigint;
  /** Offset in the file, in bytes (NT_FILE stores it in units of its page_size). */
  fileOfs: bigint;
  path: string;
}

export interface CoreNote {
  name: string;
  type: number;
  offset: number;
  size: number;
}

export interface ParsedCore {
  size: number;
  segments: CoreSegment[];
  threads: CoreThread[];
  psinfo: CorePsinfo | null;
  /** (type, value) pairs without AT_NULL. */
  auxv: bigint[] | null;
  files: CoreFileEntry[] | null;
  /** NT_FILE's page_size (4096 from the kernel, 1 from gdb's gcore). */
  filePageSize: number;
  xsaveLayout: XsaveComponent[] | null;
  notes: CoreNote[];
}

const td = new TextDecoder('utf-8', { fatal: false });

function bad(msg: string, offset: number): never {
  throw new CrimgError('BAD_CORE', msg, { offset });
}

function readAt(src: Source, pos: number, len: number, what: string): Uint8Array {
  if (pos + len > src.size) {
    const msg = `${what} (${len} bytes at ${pos}) runs past the end of the core (${src.size} bytes)`;
    throw new CrimgError('TRUNCATED', msg, { offset: Math.min(pos, src.size) });
  }
  const b = new Uint8Array(len);
  const got = src.pread(b, pos);
  if (got < len) throw new CrimgError('TRUNCATED', `short read of ${what} at ${pos}`, { offset: pos + got });
  return b;
}

/** A u64 file offset or size as a safe number, or BAD_CORE. */
function num(v: bigint, what: string, at: number): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) bad(`${what} 0x${v.toString(16)} is out of range`, at);
  return Number(v);
}

/** C string from a fixed-size field. */
function cstr(b: Uint8Array): string {
  const z = b.indexOf(0);
  return td.decode(z < 0 ? b : b.subarray(0, z));
}

/** True when the first bytes are the ELF magic. */
export function isElf(head: Uint8Array): boolean {
  return head.length >= 4 && ELF_MAGIC.every((b, i) => head[i] === b);
}

/** Where the program headers are and how many there are (e_phnum, or sh_info of section header 0 with PN_XNUM). */
interface PhTable {
  phoff: number;
  phnum: number;
}

/** Check the ELF header: a little-endian x86_64 ET_CORE of version 1; the program header table it names. */
function readElfHeader(src: Source): PhTable {
  const size = src.size;
  const head = readAt(src, 0, Math.min(EHDR_BYTES, size), 'ELF header');
  for (let i = 0; i < Math.min(4, size); i++) if (head[i] !== ELF_MAGIC[i]) bad('not an ELF file (magic \\x7fELF expected)', i);
  if (size < EHDR_BYTES) throw new CrimgError('TRUNCATED', `core of ${size} bytes is shorter than an ELF header`, { offset: size });
  const eh = new DataView(head.buffer);
  if (head[4] !== ELFCLASS64) bad(`ELF class ${head[4]} is not ELFCLASS64: only x86_64 cores are supported`, 4);
  if (head[5] !== ELFDATA2LSB) bad(`ELF data encoding ${head[5]} is not little-endian`, 5);
  if (head[6] !== EV_CURRENT) bad(`ELF version ${head[6]} is not 1`, 6);
  const type = eh.getUint16(16, true);
  if (type !== ET_CORE) bad(`ELF type ${type} is not ET_CORE (4): not a core file`, 16);
  const machine = eh.getUint16(18, true);
  if (machine !== EM_X86_64) bad(`ELF machine ${machine} is not x86_64 (62)`, 18);
  if (eh.getUint32(20, true) !== EV_CURRENT) bad(`e_version ${eh.getUint32(20, true)} is not 1`, 20);
  const phoff = num(eh.getBigUint64(32, true), 'e_phoff', 32);
  const shoff = num(eh.getBigUint64(40, true), 'e_shoff', 40);
  const phentsize = eh.getUint16(54, true);
  let phnum = eh.getUint16(56, true);
  const shentsize = eh.getUint16(58, true);
  if (phentsize !== PHDR_BYTES) bad(`e_phentsize ${phentsize} is not ${PHDR_BYTES}`, 54);
  if (phnum === PN_XNUM) phnum = extendedPhnum(src, shoff, shentsize);
  if (phnum === 0) bad('the core has no program headers', 56);
  if (phnum > MAX_PHNUM) bad(`${phnum} program headers exceed the limit ${MAX_PHNUM}`, 56);
  if (phoff < EHDR_BYTES && phoff + phnum * PHDR_BYTES > 0) bad(`program headers at ${phoff} overlap the ELF header`, 32);
  if (phoff + phnum * PHDR_BYTES > size) {
    const msg = `${phnum} program headers at ${phoff} run past the end of the core (${size} bytes)`;
    throw new CrimgError('TRUNCATED', msg, { offset: Math.min(phoff, size) });
  }
  return { phoff, phnum };
}

/** Extended numbering (e_phnum PN_XNUM): the real count is in sh_info of section header 0. */
function extendedPhnum(src: Source, shoff: number, shentsize: number): number {
  if (shoff === 0) bad('e_phnum is PN_XNUM but there is no section header 0', 40);
  if (shentsize !== SHDR_BYTES) bad(`e_shentsize ${shentsize} is not ${SHDR_BYTES}`, 58);
  const sh = readAt(src, shoff, SHDR_BYTES, 'section header 0');
  const phnum = new DataView(sh.buffer).getUint32(44, true);
  if (phnum < PN_XNUM) bad(`sh_info ${phnum} of section header 0 is below PN_XNUM`, shoff + 44);
  return phnum;
}

/** A PT_NOTE segment: where its bytes are, and its program header (for error reports). */
interface NoteSegment {
  offset: number;
  filesz: number;
  phOff: number;
}

const MAX_ADDR = 1n << 64n;

/** The PT_LOAD segments (sorted by address, checked not to overlap) and the PT_NOTE segments of a core. */
function readProgramHeaders(src: Source, { phoff, phnum }: PhTable): { segments: CoreSegment[]; noteSegs: NoteSegment[] } {
  const ph = readAt(src, phoff, phnum * PHDR_BYTES, 'program headers');
  const pdv = new DataView(ph.buffer);
  const segments: CoreSegment[] = [];
  const noteSegs: NoteSegment[] = [];
  let notesTotal = 0;
  for (let i = 0; i < phnum; i++) {
    const o = i * PHDR_BYTES;
    const at = phoff + o;
    const ptype = pdv.getUint32(o, true);
    if (ptype !== PT_LOAD && ptype !== PT_NOTE) continue;
    const flags = pdv.getUint32(o + 4, true);
    const offset = num(pdv.getBigUint64(o + 8, true), 'p_offset', at + 8);
    const vaddr = pdv.getBigUint64(o + 16, true);
    const filesz = num(pdv.getBigUint64(o + 32, true), 'p_filesz', at + 32);
    const memsz = pdv.getBigUint64(o + 40, true);
    if (offset + filesz > src.size) {
      const msg = `segment ${i} (${filesz} bytes at ${offset}) runs past the end of the core (${src.size} bytes)`;
      throw new CrimgError('TRUNCATED', msg, { offset: at + 8 });
    }
    if (ptype === PT_NOTE) {
      notesTotal += filesz;
      if (notesTotal > MAX_NOTES_BYTES) bad(`notes of more than ${MAX_NOTES_BYTES} bytes`, at + 32);
      noteSegs.push({ offset, filesz, phOff: at });
      continue;
    }
    if (memsz === 0n) continue;
    if (vaddr % BigInt(CORE_PAGE) !== 0n) bad(`PT_LOAD ${i} at 0x${vaddr.toString(16)} is not page aligned`, at + 16);
    if (BigInt(filesz) > memsz) bad(`PT_LOAD ${i}: p_filesz ${filesz} exceeds p_memsz ${memsz}`, at + 32);
    if (vaddr + memsz > MAX_ADDR) bad(`PT_LOAD ${i} at 0x${vaddr.toString(16)} of ${memsz} bytes wraps around the address space`, at + 40);
    segments.push({ index: i, phOff: at, vaddr, memsz, offset, filesz, flags });
  }
  sortSegments(segments);
  if (noteSegs.length === 0) bad('the core has no PT_NOTE segment', phoff);
  return { segments, noteSegs };
}

/** Sort PT_LOADs by address; overlapping ones are BAD_CORE. */
function sortSegments(segments: CoreSegment[]): void {
  segments.sort((a, b) => (a.vaddr < b.vaddr ? -1 : a.vaddr > b.vaddr ? 1 : a.index - b.index));
  for (let i = 1; i < segments.length; i++) {
    const p = segments[i - 1]!,
      s = segments[i]!;
    if (s.vaddr < p.vaddr + p.memsz) {
      const prev = `PT_LOAD ${p.index} (0x${p.vaddr.toString(16)}-0x${(p.vaddr + p.memsz).toString(16)})`;
      bad(`PT_LOAD ${s.index} at 0x${s.vaddr.toString(16)} overlaps ${prev}`, s.phOff + 16);
    }
  }
}

/** One note: its name, type and descriptor, the file offsets of its header and descriptor. */
interface Note {
  name: string;
  type: number;
  desc: Uint8Array;
  at: number;
  descAt: number;
}

/** The notes read so far: the parse result, the thread ids seen, and the thread later per-thread notes belong to. */
interface NoteState {
  out: ParsedCore;
  tids: Set<number>;
  cur: CoreThread | null;
}

/** The thread of a per-thread note: the last NT_PRSTATUS before it. */
function threadOf(st: NoteState, what: string, at: number): CoreThread {
  if (!st.cur) bad(`${what} before any NT_PRSTATUS`, at);
  return st.cur;
}

/** Walk the notes of one PT_NOTE segment (its bytes `buf`, at file offset `base`). */
function parseNoteSegment(buf: Uint8Array, base: number, st: NoteState): void {
  const dv = new DataView(buf.buffer);
  let o = 0;
  while (o < buf.length) {
    const at = base + o;
    if (buf.length - o < NOTE_HDR_BYTES) {
      // Trailing padding (zeros) is tolerated; anything else is a cut note header.
      if (buf.subarray(o).every((b) => b === 0)) break;
      bad(`note header at ${at} runs past the end of its segment`, at);
    }
    const namesz = dv.getUint32(o, true);
    const descsz = dv.getUint32(o + 4, true);
    const ntype = dv.getUint32(o + 8, true);
    const nameAt = o + NOTE_HDR_BYTES;
    if (namesz > buf.length - nameAt) bad(`note name of ${namesz} bytes runs past the end of its segment`, at);
    const descAt = nameAt + align4(namesz);
    if (descAt > buf.length || descsz > buf.length - descAt) {
      bad(`note descriptor of ${descsz} bytes runs past the end of its segment`, at + 4);
    }
    const name = cstr(buf.subarray(nameAt, nameAt + namesz));
    st.out.notes.push({ name, type: ntype, offset: at, size: descsz });
    o = Math.min(buf.length, descAt + align4(descsz));
    const note: Note = { name, type: ntype, desc: buf.subarray(descAt, descAt + descsz), at, descAt: base + descAt };
    if (name === NAME_CORE) coreNote(note, st);
    else if (name === NAME_LINUX) linuxNote(note, st);
  }
}

/** A "CORE" note: process status and registers, FPU, siginfo, process info, auxv, mapped files. */
function coreNote(n: Note, st: NoteState): void {
  switch (n.type) {
    case NT_PRSTATUS:
      prstatusNote(n, st);
      break;
    case NT_FPREGSET: {
      const t = threadOf(st, 'NT_FPREGSET', n.at);
      if (n.desc.length !== FPREGSET_BYTES) bad(`NT_FPREGSET of ${n.desc.length} bytes; expected ${FPREGSET_BYTES}`, n.at + 4);
      if (t.fpregs) bad(`second NT_FPREGSET for thread ${t.tid}`, n.at);
      t.fpregs = n.desc.slice();
      break;
    }
    case NT_SIGINFO: {
      const t = threadOf(st, 'NT_SIGINFO', n.at);
      if (n.desc.length > MAX_SIGINFO_BYTES) bad(`NT_SIGINFO of ${n.desc.length} bytes`, n.at + 4);
      if (t.siginfo) bad(`second NT_SIGINFO for thread ${t.tid}`, n.at);
      t.siginfo = n.desc.slice();
      break;
    }
    case NT_PRPSINFO:
      prpsinfoNote(n, st.out);
      break;
    case NT_AUXV:
      auxvNote(n, st.out);
      break;
    case NT_FILE: {
      if (st.out.files) bad('second NT_FILE', n.at);
      const r = parseFileNote(n.desc, n.descAt);
      st.out.files = r.files;
      st.out.filePageSize = r.pageSize;
      break;
    }
    default:
      break;
  }
}

/** A "LINUX" note: a thread's XSAVE area, the XSAVE layout. */
function linuxNote(n: Note, st: NoteState): void {
  if (n.type === NT_X86_XSTATE) {
    const t = threadOf(st, 'NT_X86_XSTATE', n.at);
    const size = n.desc.length;
    if (size < XSAVE_MIN_BYTES || size > MAX_XSTATE_BYTES) {
      bad(`NT_X86_XSTATE of ${size} bytes is outside ${XSAVE_MIN_BYTES}..${MAX_XSTATE_BYTES}`, n.at + 4);
    }
    if (t.xstate) bad(`second NT_X86_XSTATE for thread ${t.tid}`, n.at);
    t.xstate = n.desc.slice();
    t.xstateOffset = n.descAt;
  } else if (n.type === NT_X86_XSAVE_LAYOUT) {
    if (st.out.xsaveLayout) bad('second NT_X86_XSAVE_LAYOUT', n.at);
    st.out.xsaveLayout = parseLayoutNote(n.desc, n.descAt);
  }
}

/** NT_PRSTATUS: a new thread (the per-thread notes after it are its own). */
function prstatusNote(n: Note, st: NoteState): void {
  const { desc, at, descAt } = n;
  if (desc.length !== PRSTATUS_BYTES) bad(`NT_PRSTATUS of ${desc.length} bytes; an x86_64 core has ${PRSTATUS_BYTES}`, at + 4);
  const d = new DataView(desc.buffer, desc.byteOffset, desc.length);
  const tid = d.getInt32(PRS_PID, true);
  if (tid <= 0) bad(`NT_PRSTATUS with thread id ${tid}`, descAt + PRS_PID);
  if (st.tids.has(tid)) bad(`second NT_PRSTATUS for thread ${tid}`, at);
  st.tids.add(tid);
  const regs = new BigUint64Array(NREGS);
  for (let r = 0; r < NREGS; r++) regs[r] = d.getBigUint64(PRS_REG + r * 8, true);
  st.cur = {
    tid,
    noteOffset: descAt,
    signo: d.getInt32(PRS_SIGNO, true),
    code: d.getInt32(PRS_CODE, true),
    errno: d.getInt32(PRS_ERRNO, true),
    cursig: d.getInt16(PRS_CURSIG, true),
    sigpend: d.getBigUint64(PRS_SIGPEND, true),
    sighold: d.getBigUint64(PRS_SIGHOLD, true),
    ppid: d.getInt32(PRS_PPID, true),
    pgrp: d.getInt32(PRS_PGRP, true),
    sid: d.getInt32(PRS_SID, true),
    regs,
    fpvalid: d.getInt32(PRS_FPVALID, true),
    fpregs: null,
    xstate: null,
    xstateOffset: 0,
    siginfo: null,
  };
  st.out.threads.push(st.cur);
}

/** NT_PRPSINFO: the process's state letter, ids, command name and arguments. */
function prpsinfoNote({ desc, at }: Note, out: ParsedCore): void {
  if (desc.length !== PRPSINFO_BYTES) bad(`NT_PRPSINFO of ${desc.length} bytes; an x86_64 core has ${PRPSINFO_BYTES}`, at + 4);
  if (out.psinfo) bad('second NT_PRPSINFO', at);
  const d = new DataView(desc.buffer, desc.byteOffset, desc.length);
  const sname = desc[PSI_SNAME]!;
  out.psinfo = {
    state: desc[PSI_STATE]!,
    sname: sname >= 0x21 && sname < 0x7f ? String.fromCharCode(sname) : '',
    zomb: desc[PSI_ZOMB]!,
    nice: d.getInt8(PSI_NICE),
    flag: d.getBigUint64(PSI_FLAG, true),
    uid: d.getUint32(PSI_UID, true),
    gid: d.getUint32(PSI_GID, true),
    pid: d.getInt32(PSI_PID, true),
    ppid: d.getInt32(PSI_PPID, true),
    pgrp: d.getInt32(PSI_PGRP, true),
    sid: d.getInt32(PSI_SID, true),
    fname: cstr(desc.subarray(PSI_FNAME, PSI_FNAME + PSI_FNAME_BYTES)),
    psargs: cstr(desc.subarray(PSI_PSARGS, PSI_PSARGS + PSI_PSARGS_BYTES)),
  };
}

/** NT_AUXV: (type, value) pairs up to AT_NULL. */
function auxvNote({ desc, at }: Note, out: ParsedCore): void {
  const descsz = desc.length;
  if (descsz % 16) bad(`NT_AUXV of ${descsz} bytes is not a whole number of entries`, at + 4);
  if (descsz > MAX_AUXV_BYTES) bad(`NT_AUXV of ${descsz} bytes exceeds ${MAX_AUXV_BYTES}`, at + 4);
  if (out.auxv) bad('second NT_AUXV', at);
  const d = new DataView(desc.buffer, desc.byteOffset, descsz);
  const auxv: bigint[] = [];
  for (let p = 0; p < descsz; p += 16) {
    const t = d.getBigUint64(p, true);
    if (t === 0n) break;
    auxv.push(t, d.getBigUint64(p + 8, true));
  }
  out.auxv = auxv;
}

/** Parse and check the ELF header, program headers and notes of a core. */
export function parseCore(src: Source): ParsedCore {
  const ph = readElfHeader(src);
  const { segments, noteSegs } = readProgramHeaders(src, ph);
  const out: ParsedCore = {
    size: src.size,
    segments,
    threads: [],
    psinfo: null,
    auxv: null,
    files: null,
    filePageSize: 0,
    xsaveLayout: null,
    notes: [],
  };
  const st: NoteState = { out, tids: new Set(), cur: null };
  for (const ns of noteSegs) parseNoteSegment(readAt(src, ns.offset, ns.filesz, 'note segment'), ns.offset, st);
  if (out.threads.length === 0) bad('the core has no NT_PRSTATUS note (no threads)', noteSegs[0]!.offset);
  return out;
}

/** NT_FILE: u64 count, u64 page_size, count x {u64 start, u64 end, u64 file_ofs}, then count NUL-terminated names. */
function parseFileNote(desc: Uint8Array, at: number): { files: CoreFileEntry[]; pageSize: number } {
  if (desc.length < 16) bad(`NT_FILE of ${desc.length} bytes is shorter than its header`, at);
  const d = new DataView(desc.buffer, desc.byteOffset, desc.byteLength);
  const count = d.getBigUint64(0, true);
  const pageSize = d.getBigUint64(8, true);
  if (count > BigInt(Math.floor((desc.length - 16) / 24))) bad(`NT_FILE count ${count} does not fit its ${desc.length} bytes`, at);
  if (count > BigInt(MAX_FILE_ENTRIES)) bad(`NT_FILE count ${count} exceeds the limit ${MAX_FILE_ENTRIES}`, at);
  if (pageSize === 0n || pageSize > 1n << 30n || (pageSize & (pageSize - 1n)) !== 0n) {
    bad(`NT_FILE page size ${pageSize} is not a power of two`, at + 8);
  }
  const n = Number(count);
  const files: CoreFileEntry[] = [];
  let s = 16 + n * 24;
  for (let i = 0; i < n; i++) {
    const e = 16 + i * 24;
    const start = d.getBigUint64(e, true);
    const end = d.getBigUint64(e + 8, true);
    const ofs = d.getBigUint64(e + 16, true);
    if (end < start) bad(`NT_FILE entry ${i}: end 0x${end.toString(16)} below start 0x${start.toString(16)}`, at + e);
    const z = desc.indexOf(0, s);
    if (z < 0) bad(`NT_FILE: name ${i} of ${n} is missing or not terminated`, at + s);
    if (ofs * pageSize >= 1n << 64n) {
      bad(`NT_FILE entry ${i}: file offset 0x${ofs.toString(16)} x ${pageSize} is out of range`, at + e + 16);
    }
    files.push({ start, end, fileOfs: ofs * pageSize, path: td.decode(desc.subarray(s, z)) });
    s = z + 1;
  }
  return { files, pageSize: Number(pageSize) };
}
