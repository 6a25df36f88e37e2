/**
 * The single source of truth for the image format: every record kind, its
 * number, its parent, and its fields, described once. The writer, the reader,
 * `show`, `diff` and docs/FORMAT.md (scripts/gen-format-tables.mjs) follow from it.
 *
 * Encoding of fields, in order, little-endian, no implicit alignment:
 *   u32/i32: 4 bytes; u64: 8 bytes (bigint); str: u32 byte length + UTF-8 bytes;
 *   strn: like str, length 0xffffffff meaning null; u32[]/u64[]: u32 count + items;
 *   str[]: u32 count + strings; raw: the rest of the payload (must be last).
 */
import { CrimgError } from './errors.js';

export const MAGIC = 'CRMG';
export const FORMAT_MAJOR = 1;
export const FORMAT_MINOR = 0;
export const MAGIC_BYTES = 8;
export const RECORD_HEADER_BYTES = 16;
export const TRAILER_MAGIC = 0x00444e45474d5243n; // "CRMGEND\0" little-endian
export const CHECKSUM_XXH3_64 = 1;
export const PAGE_SIZE = 4096;
/** Pages per PAGES record written by crimg (1 MiB of data). */
export const RUN_PAGES = 256;
/** Largest page count a reader accepts in one PAGES record. */
export const MAX_RUN_PAGES = 1024;
/** Largest payload a reader accepts for any record other than PAGES and INDEX. */
export const MAX_META_RECORD = 16 * 1024 * 1024;
/** Largest INDEX payload a reader accepts (about 1.4 million runs, 1.4 TiB of stored pages). */
export const MAX_INDEX_RECORD = 32 * 1024 * 1024;
/** Largest string accepted inside a record. */
export const MAX_STRING = 1024 * 1024;

/** Record flag: a reader that does not know this kind must refuse the image. */
export const RF_MUST_UNDERSTAND = 1;

/** Compatibility rule: same major, minor not newer than this reader's. */
export function isCompatible(major: number, minor: number): boolean {
  return major === FORMAT_MAJOR && minor <= FORMAT_MINOR;
}

/** The 27 registers of user_regs_struct, in kernel (ptrace, ELF prstatus) order. The only list. */
export const REG_NAMES = [
  'r15', 'r14', 'r13', 'r12', 'rbp', 'rbx', 'r11', 'r10', 'r9', 'r8', 'rax', 'rcx', 'rdx', 'rsi', 'rdi',
  'orig_rax', 'rip', 'cs', 'eflags', 'rsp', 'ss', 'fs_base', 'gs_base', 'ds', 'es', 'fs', 'gs',
] as const;
export type RegName = typeof REG_NAMES[number];
export const REG_INDEX: Record<RegName, number> = Object.fromEntries(REG_NAMES.map((n, i) => [n, i])) as Record<RegName, number>;

export type FieldType = 'u32' | 'i32' | 'u64' | 'str' | 'strn' | 'u32[]' | 'u64[]' | 'str[]' | 'raw';
export type Field = readonly [name: string, type: FieldType, doc?: string];

export interface RecordDef {
  kind: number;
  name: string;
  /** Kind of the enclosing record, 0 for top level. */
  parent: number;
  fields: readonly Field[];
  /** Exact payload length for fixed-size records. */
  fixedLen?: number;
  doc: string;
}

export const K = {
  HEADER: 0x0001,
  NS: 0x0002,
  TASK: 0x0101,
  CREDS: 0x0102,
  RLIMITS: 0x0103,
  NSIDS: 0x0104,
  NOCR: 0x0105,
  SIGACTS: 0x0106,
  ITIMERS: 0x0107,
  POSIX_TIMERS: 0x0108,
  THREAD: 0x0201,
  REGS: 0x0211,
  FPU: 0x0212,
  XSTATE: 0x0213,
  FUTEX: 0x0215,
  SIGALTSTACK: 0x0216,
  MM: 0x0301,
  VMA: 0x0302,
  PAGES: 0x0303,
  FD: 0x0401,
  FLOCKS: 0x0402,
  ANON_FD: 0x0403,
  PIPE: 0x0404,
  UNIX_PAIR: 0x0405,
  INOTIFY: 0x0406,
  TCP_LISTEN: 0x0407,
  INDEX: 0x7f01,
  TRAILER: 0x7fff,
} as const;

const MM_FIELDS: Field[] = [
  ['startCode', 'u64'], ['endCode', 'u64'], ['startData', 'u64'], ['endData', 'u64'],
  ['startBrk', 'u64'], ['brk', 'u64'], ['startStack', 'u64'],
  ['argStart', 'u64'], ['argEnd', 'u64'], ['envStart', 'u64'], ['envEnd', 'u64'],
];

export const RECORDS: readonly RecordDef[] = [
  {
    kind: K.HEADER, name: 'HEADER', parent: 0, doc: 'Image header; first record after the magic.',
    fields: [
      ['crid', 'u64', 'checkpoint id'], ['createdNs', 'u64', 'creation time, ns since the epoch'],
      ['freezeNs', 'u64', 'time the tasks were frozen, ns'], ['flags', 'u32', 'HeaderFlags'],
      ['ntasks', 'u32', 'TASK records that follow'], ['nns', 'u32', 'NS records that follow'],
      ['checksumAlgo', 'u32', '1 = XXH3-64'], ['pageSize', 'u32', '4096'],
      ['tool', 'str'], ['sysname', 'str'], ['nodename', 'str'], ['release', 'str'],
      ['version', 'str'], ['machine', 'str'], ['domainname', 'str'],
    ],
  },
  {
    kind: K.NS, name: 'NS', parent: 0, doc: 'A namespace referenced by tasks (after HEADER, before the first TASK).',
    fields: [['nsKind', 'u32', 'index in uts,ipc,mnt,pid,net,user,cgroup,time'], ['nsFlags', 'u32', 'bit 0: uts strings present'],
      ['id', 'u64', 'inode number of /proc/PID/ns/KIND'], ['nodename', 'str'], ['domainname', 'str']],
  },
  {
    kind: K.TASK, name: 'TASK', parent: 0, doc: 'A task (process); tasks come parents first. Followed by CREDS, RLIMITS, NSIDS, nthreads THREAD subtrees, MM subtree if hasMm, nfiles FD, nnocr NOCR.',
    fields: [
      ['pid', 'i32'], ['tgid', 'i32'], ['ppid', 'i32'], ['pgid', 'i32'], ['sid', 'i32'],
      ['personality', 'u32'], ['exitSignal', 'u32'], ['nthreads', 'u32'], ['nfiles', 'u32'], ['nnocr', 'u32'], ['hasMm', 'u32'],
      ['comm', 'str'], ['exe', 'str'], ['cwd', 'str'], ['root', 'str'], ['args', 'str[]'], ['env', 'str[]'],
    ],
  },
  {
    kind: K.CREDS, name: 'CREDS', parent: K.TASK, doc: 'Credentials.',
    fields: [
      ['uid', 'u32'], ['gid', 'u32'], ['euid', 'u32'], ['egid', 'u32'], ['suid', 'u32'], ['sgid', 'u32'], ['fsuid', 'u32'], ['fsgid', 'u32'],
      ['securebits', 'u32'], ['noNewPrivs', 'u32'], ['seccompMode', 'u32'],
      ['capInh', 'u64'], ['capPrm', 'u64'], ['capEff', 'u64'], ['capBnd', 'u64'], ['capAmb', 'u64'], ['groups', 'u32[]'],
    ],
  },
  { kind: K.RLIMITS, name: 'RLIMITS', parent: K.TASK, doc: 'Resource limits: (cur, max) pairs for RLIMIT_CPU..RLIMIT_RTTIME.', fields: [['limits', 'u64[]']] },
  {
    kind: K.NSIDS, name: 'NSIDS', parent: K.TASK, doc: 'Namespace ids of the task (0 = unknown).', fixedLen: 64,
    fields: [['uts', 'u64'], ['ipc', 'u64'], ['mnt', 'u64'], ['pid', 'u64'], ['net', 'u64'], ['user', 'u64'], ['cgroup', 'u64'], ['time', 'u64']],
  },
  {
    kind: K.SIGACTS, name: 'SIGACTS', parent: K.TASK,
    doc: 'Optional, right after NSIDS: the signal dispositions other than SIG_DFL (absent: not recorded).',
    fields: [['actions', 'u64[]', '(signal, handler, flags, restorer, mask) quintuples by ascending signal; handler 1 = SIG_IGN']],
  },
  {
    kind: K.ITIMERS, name: 'ITIMERS', parent: K.TASK,
    doc: 'Optional, after NSIDS (and SIGACTS): the armed interval timers (absent: not recorded).',
    fields: [['timers', 'u64[]', '(which, interval us, remaining us) triples by ascending which: 0 ITIMER_REAL, 1 ITIMER_VIRTUAL, 2 ITIMER_PROF; not both 0']],
  },
  {
    kind: K.POSIX_TIMERS, name: 'POSIX_TIMERS', parent: K.TASK,
    doc: 'Optional, after NSIDS (and SIGACTS, ITIMERS): the POSIX timers of the process (absent: not recorded).',
    fields: [['timers', 'u64[]', '(id, clock, notify, notify tid, signal, sigev_value, interval ns, remaining ns) octuples by ascending id; '
      + 'clock (two\'s complement) 0 REALTIME, 1 MONOTONIC, 2 PROCESS_CPUTIME_ID, 7 BOOTTIME, 8 REALTIME_ALARM, 9 BOOTTIME_ALARM, 11 TAI, -6 the process\'s CPU clock (glibc\'s CLOCK_PROCESS_CPUTIME_ID); '
      + 'notify 0 SIGEV_SIGNAL, 1 SIGEV_NONE, 4 SIGEV_THREAD_ID (notify tid: a thread of the task; 0 otherwise); '
      + 'signal 1..64 (0 with SIGEV_NONE); interval and remaining both 0: disarmed']],
  },
  {
    kind: K.THREAD, name: 'THREAD', parent: K.TASK, doc: 'A thread; followed by REGS, FPU and, if flags bit 0, XSTATE.',
    fields: [['tid', 'i32'], ['thFlags', 'u32', 'bit 0: XSTATE follows; bit 1: rseq registered'],
      ['sigmask', 'u64'], ['sigpending', 'u64'], ['rseqPtr', 'u64'], ['rseqLen', 'u32'], ['rseqSig', 'u32'], ['rseqFlags', 'u32'], ['state', 'str']],
  },
  {
    kind: K.REGS, name: 'REGS', parent: K.THREAD, fixedLen: 216,
    doc: 'user_regs_struct: 27 u64 in kernel order (the same bytes as PTRACE_GETREGS and ELF NT_PRSTATUS pr_reg).',
    fields: REG_NAMES.map((n) => [n, 'u64'] as Field),
  },
  { kind: K.FPU, name: 'FPU', parent: K.THREAD, fixedLen: 512, doc: 'FXSAVE area (x87, MXCSR, XMM0-15), 512 bytes.', fields: [['fxsave', 'raw']] },
  {
    kind: K.XSTATE, name: 'XSTATE', parent: K.THREAD, doc: 'Standard-form XSAVE area from byte 512 on (header + extended components); bytes 0..511 are the FPU record.',
    fields: [['xcr0', 'u64'], ['ext', 'raw']],
  },
  {
    kind: K.FUTEX, name: 'FUTEX', parent: K.THREAD, fixedLen: 24,
    doc: 'Optional, after the thread\'s FPU/XSTATE: clear_child_tid (set_tid_address) and the robust futex list (set_robust_list) (absent: not recorded).',
    fields: [['clearChildTid', 'u64'], ['robustHead', 'u64'], ['robustLen', 'u64']],
  },
  {
    kind: K.SIGALTSTACK, name: 'SIGALTSTACK', parent: K.THREAD, fixedLen: 24,
    doc: 'Optional, after the thread\'s FUTEX: its alternate signal stack (sigaltstack; absent: not recorded).',
    fields: [['sp', 'u64'], ['size', 'u64'], ['ssFlags', 'u32', 'SS_ONSTACK 1, SS_DISABLE 2, SS_AUTODISARM 1 << 31'], ['reserved', 'u32', '0']],
  },
  {
    kind: K.MM, name: 'MM', parent: K.TASK, doc: 'Address space; followed by nvmas VMA subtrees.',
    fields: [...MM_FIELDS, ['nvmas', 'u32'], ['mmFlags', 'u32'], ['auxv', 'u64[]', '(type, value) pairs without AT_NULL']],
  },
  {
    kind: K.VMA, name: 'VMA', parent: K.MM, doc: 'A memory area; followed by its PAGES records in ascending address order.',
    fields: [['start', 'u64'], ['end', 'u64'], ['pgoff', 'u64', 'file offset in pages'], ['inode', 'u64'],
      ['prot', 'u32', '1 read, 2 write, 4 exec'], ['vmaFlags', 'u32', 'VmaFlags'], ['devMajor', 'u32'], ['devMinor', 'u32'], ['path', 'strn']],
  },
  {
    kind: K.PAGES, name: 'PAGES', parent: K.VMA,
    doc: 'A run of npages pages from addr: the non-zero pages stored in order, then a bitmap (ceil(npages/64) u64 words, bit i = page i stored; 0 = zero page, not stored).',
    fields: [['addr', 'u64'], ['npages', 'u32'], ['pgFlags', 'u32', 'reserved, 0']],
  },
  {
    kind: K.FD, name: 'FD', parent: K.TASK, doc: 'An open file descriptor.',
    fields: [['fd', 'i32'], ['fdKind', 'u32', '0 regular, 1 directory, 2 other'], ['flags', 'u32', 'open(2) flags'], ['mode', 'u32'],
      ['cloexec', 'u32'], ['devMajor', 'u32'], ['devMinor', 'u32'], ['pos', 'u64'], ['inode', 'u64'], ['size', 'u64'], ['path', 'str']],
  },
  {
    kind: K.FLOCKS, name: 'FLOCKS', parent: K.FD,
    doc: 'Optional, right after its FD: the file locks held through that descriptor (absent: none).',
    fields: [['locks', 'u64[]', '(kind, type, start, end) quadruples: kind 1 flock, 2 POSIX (fcntl F_SETLK), 3 OFD (F_OFD_SETLK); '
      + 'type 0 read (shared), 1 write (exclusive); the bytes start..end, end 2^64-1 = to the end of the file (flock: 0, 2^64-1)']],
  },
  {
    kind: K.ANON_FD, name: 'ANON_FD', parent: K.FD,
    doc: 'Optional, after its FD (kind 2, other): the state of an eventfd, timerfd, signalfd or epoll instance (absent: another kind of file).',
    fields: [['anonKind', 'u32', '1 eventfd, 2 timerfd, 3 signalfd, 4 epoll'], ['reserved', 'u32', '0'],
      ['values', 'u64[]', 'eventfd: count, semaphore (0/1); timerfd: clock, settime flags, interval ns, remaining ns, ticks (expirations not read); '
        + 'signalfd: signal mask; epoll: (fd, events, data) triples, its interest list (each fd one of the task\'s, not an epoll)']],
  },
  {
    kind: K.PIPE, name: 'PIPE', parent: K.FD,
    doc: 'Optional, after its FD (kind 2, other): one end of a pipe the task holds (absent: another kind of file).',
    fields: [['pipeIno', 'u64', 'inode of the pipe: the fds of one pipe share it'], ['end', 'u32', '0 read end, 1 write end'],
      ['size', 'u32', 'capacity in bytes (F_GETPIPE_SZ): a power of two, at least 4096'],
      ['data', 'raw', 'the bytes buffered in the pipe, in the record of its first fd in the image (the lowest: files are in fd order; empty in the others)']],
  },
  {
    kind: K.UNIX_PAIR, name: 'UNIX_PAIR', parent: K.FD,
    doc: 'Optional, after its FD (kind 2, other): one socket of a UNIX socket pair the task holds both of (absent: another kind of file).',
    fields: [['pairId', 'u64', 'the pair (the lower inode of its two sockets at the checkpoint)'], ['second', 'u32', '0 the first socket, 1 the second'],
      ['sockType', 'u32', 'SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5'],
      ['data', 'raw', 'bytes queued to this socket (stream pairs), in the record of its first fd in the image; empty in the others']],
  },
  {
    kind: K.INOTIFY, name: 'INOTIFY', parent: K.FD,
    doc: 'Optional, after its FD (kind 2, other): an inotify instance, with nothing queued (absent: another kind of file).',
    fields: [['watches', 'u64[]', '(wd, mask) pairs by ascending wd'], ['paths', 'str[]', 'the watched file of each pair, in the same order']],
  },
  {
    kind: K.TCP_LISTEN, name: 'TCP_LISTEN', parent: K.FD,
    doc: 'Optional, after its FD (kind 2, other): a listening TCP socket with no connection waiting (absent: another kind of file).',
    fields: [['family', 'u32', 'AF_INET 2, AF_INET6 10'], ['port', 'u32'], ['backlog', 'u32'],
      ['opts', 'u32', 'bit 0 SO_REUSEADDR, bit 1 SO_REUSEPORT, bit 2 IPV6_V6ONLY'], ['addr', 'raw', 'the bound address: 4 bytes (AF_INET) or 16 (AF_INET6)']],
  },
  { kind: K.NOCR, name: 'NOCR', parent: K.TASK, doc: 'A reason the task cannot be checkpointed or restarted faithfully.', fields: [['pid', 'i32'], ['code', 'str'], ['text', 'str']] },
  {
    kind: K.INDEX, name: 'INDEX', parent: 0,
    doc: 'Index of PAGES records: count entries of {pid i32, npages u32, addr u64, offset u64 (of the record header)}, sorted by (pid order of TASK records, addr).',
    fields: [['count', 'u32'], ['reserved', 'u32']],
  },
  {
    kind: K.TRAILER, name: 'TRAILER', parent: 0, fixedLen: 32,
    doc: 'Last record: magic "CRMGEND\\0", number of records before it, offset of INDEX, XXH3-64 of the magic and every record header before the trailer.',
    fields: [['tmagic', 'u64'], ['records', 'u64'], ['indexOffset', 'u64'], ['imageCsum', 'u64']],
  },
];

export const INDEX_ENTRY_BYTES = 24;
export const TRAILER_RECORD_BYTES = RECORD_HEADER_BYTES + 32;

export const RECORD_BY_KIND: ReadonlyMap<number, RecordDef> = new Map(RECORDS.map((r) => [r.kind, r]));
export function kindName(kind: number): string {
  return RECORD_BY_KIND.get(kind)?.name ?? `0x${kind.toString(16).padStart(4, '0')}`;
}

export const pad8 = (n: number): number => (n + 7) & ~7;

// ------------------------------------------------------------------ encode

const te = new TextEncoder();
const td = new TextDecoder('utf-8', { fatal: false });

/** Thrown by an attached Builder that runs out of room. */
export const NO_ROOM = new Error('builder: no room');

/** A growable little-endian byte builder for metadata payloads. */
export class Builder {
  buf: Uint8Array<ArrayBufferLike> = new Uint8Array(4096);
  dv: DataView<ArrayBufferLike> = new DataView(this.buf.buffer);
  len = 0;
  reset(): this { this.len = 0; return this; }
  /** When set, the builder writes into a foreign buffer (see attach) and cannot grow past this offset. */
  limit = -1;
  /** Write into `buf` (viewed by `dv`) from offset `at`, up to `limit`: a payload encoded in place.
   *  Running out of room throws NO_ROOM (the caller then encodes into its own builder). */
  attach(buf: Uint8Array, dv: DataView, at: number, limit: number): this {
    this.buf = buf; this.dv = dv; this.len = at; this.limit = limit;
    return this;
  }
  /** Make room for n more bytes. */
  room(n: number): void {
    if (this.len + n <= this.buf.length && (this.limit < 0 || this.len + n <= this.limit)) return;
    if (this.limit >= 0) throw NO_ROOM;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b; this.dv = new DataView(b.buffer);
  }
  u32(v: number): void { this.room(4); this.dv.setUint32(this.len, v >>> 0, true); this.len += 4; }
  i32(v: number): void { this.room(4); this.dv.setInt32(this.len, v | 0, true); this.len += 4; }
  u64(v: bigint): void { this.room(8); this.dv.setBigUint64(this.len, BigInt.asUintN(64, v), true); this.len += 8; }
  bytes(b: Uint8Array): void { this.room(b.length); this.buf.set(b, this.len); this.len += b.length; }
  str(s: string): void {
    const n = s.length;
    this.room(4 + n * 3); // UTF-8: at most 3 bytes per UTF-16 unit
    const o = this.len + 4;
    if (n <= 64) {
      // short ASCII strings (nearly all of them) byte by byte: no view, no encoder call
      const buf = this.buf;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[o + i] = c;
      }
      if (i === n) { this.dv.setUint32(this.len, n, true); this.len = o + n; return; }
    }
    const { written } = te.encodeInto(s, this.buf.subarray(o));
    this.dv.setUint32(this.len, written, true);
    this.len = o + written;
  }
  view(): Uint8Array { return this.buf.subarray(0, this.len); }
}

export type Fields = Record<string, unknown>;

function badField(def: RecordDef, name: string, v: unknown): never {
  throw new CrimgError('USAGE', `model field ${def.name}.${name} = ${String(v)} does not fit its ${def.fields.find((f) => f[0] === name)![1]} record field`);
}

const T_U32 = 0, T_I32 = 1, T_U64 = 2, T_STR = 3, T_STRN = 4, T_U32A = 5, T_U64A = 6, T_STRA = 7, T_RAW = 8;
const TYPE_CODE: Record<FieldType, number> = {
  u32: T_U32, i32: T_I32, u64: T_U64, str: T_STR, strn: T_STRN, 'u32[]': T_U32A, 'u64[]': T_U64A, 'str[]': T_STRA, raw: T_RAW,
};
/** Per record kind: field names and type codes, for the encoder's loop. */
const PLANS = new WeakMap<RecordDef, { names: string[]; codes: number[] }>();
function planOf(def: RecordDef): { names: string[]; codes: number[] } {
  let p = PLANS.get(def);
  if (!p) { p = { names: def.fields.map((f) => f[0]), codes: def.fields.map((f) => TYPE_CODE[f[1]]) }; PLANS.set(def, p); }
  return p;
}
const U64_MAX = 0xffffffffffffffffn;

/** Encode a record payload from an object holding the def's fields; `extra` supplies (or overrides)
 *  fields the object lacks, so that model objects need not be copied. */
export function encodeFields(def: RecordDef, obj: Fields, b: Builder, extra?: Fields): void {
  const { names, codes } = planOf(def);
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    const v = extra !== undefined && name in extra ? extra[name] : obj[name];
    switch (codes[i]) {
      case T_U32: if (!(typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff)) badField(def, name, v); b.u32(v as number); break;
      case T_I32: if (!(typeof v === 'number' && Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff)) badField(def, name, v); b.i32(v as number); break;
      case T_U64:
        if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) badField(def, name, v);
        b.room(8); b.dv.setBigUint64(b.len, v as bigint, true); b.len += 8;
        break;
      case T_STR: b.str(v as string); break;
      case T_STRN: if (v === null || v === undefined) b.u32(0xffffffff); else b.str(v as string); break;
      case T_U32A: { const a = v as number[]; b.u32(a.length); for (const x of a) b.u32(x); break; }
      case T_U64A: { const a = v as bigint[]; b.u32(a.length); b.room(8 * a.length); for (const x of a) b.u64(x); break; }
      case T_STRA: { const a = v as string[]; b.u32(a.length); for (const x of a) b.str(x); break; }
      case T_RAW: b.bytes(v as Uint8Array); break;
    }
  }
}

// ------------------------------------------------------------------ decode

/** Decode a record payload; throws BAD_RECORD (with the absolute offset) on any inconsistency. */
export function decodeFields(def: RecordDef, p: Uint8Array, baseOffset: number): Fields {
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  let o = 0;
  const out: Fields = {};
  const bad = (what: string): never => {
    throw new CrimgError('BAD_RECORD', `${def.name} record: ${what}`, { offset: baseOffset + o, kind: def.kind });
  };
  const need = (n: number): void => { if (o + n > p.length) bad(`field runs past the payload end (${p.length} bytes)`); };
  const str = (nullable: boolean): string | null => {
    need(4);
    const n = dv.getUint32(o, true);
    if (nullable && n === 0xffffffff) { o += 4; return null; }
    if (n > MAX_STRING) bad(`string of ${n} bytes exceeds ${MAX_STRING}`);
    o += 4; need(n);
    const s = td.decode(p.subarray(o, o + n)); o += n;
    return s;
  };
  const count = (item: number): number => {
    need(4);
    const n = dv.getUint32(o, true);
    if (n * item > p.length - o - 4) bad(`count ${n} exceeds the payload`);
    o += 4; return n;
  };
  for (const [name, type] of def.fields) {
    switch (type) {
      case 'u32': need(4); out[name] = dv.getUint32(o, true); o += 4; break;
      case 'i32': need(4); out[name] = dv.getInt32(o, true); o += 4; break;
      case 'u64': need(8); out[name] = dv.getBigUint64(o, true); o += 8; break;
      case 'str': out[name] = str(false); break;
      case 'strn': out[name] = str(true); break;
      case 'u32[]': { const n = count(4); const a: number[] = []; for (let i = 0; i < n; i++) { a.push(dv.getUint32(o, true)); o += 4; } out[name] = a; break; }
      case 'u64[]': { const n = count(8); const a: bigint[] = []; for (let i = 0; i < n; i++) { a.push(dv.getBigUint64(o, true)); o += 8; } out[name] = a; break; }
      case 'str[]': { const n = count(4); const a: string[] = []; for (let i = 0; i < n; i++) a.push(str(false) as string); out[name] = a; break; }
      case 'raw': out[name] = p.slice(o); o = p.length; break;
    }
  }
  if (def.kind !== K.PAGES && def.kind !== K.INDEX && o !== p.length) bad(`${p.length - o} unexpected bytes after the last field`);
  return out;
}

/** Minimal payload length of a kind (sum of its fixed parts). */
export function minLen(def: RecordDef): number {
  let n = 0;
  for (const [, t] of def.fields) n += t === 'u64' ? 8 : t === 'raw' ? 0 : 4;
  return n;
}
