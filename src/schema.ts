/**
 * The single source of truth for the image format: every record kind, its
 * number, its parent, its fields and its children (which records follow it, in
 * which order, how many), described once. The records of the optional kinds of
 * state come from their modules (src/kinds/). The writer's emission order, the
 * reader's grammar walk, `show`, `diff` and docs/FORMAT.md
 * (scripts/gen-format.mjs) follow from it.
 *
 * Encoding of fields, in order, little-endian, no implicit alignment:
 *   u32/i32: 4 bytes; u64: 8 bytes (bigint); str: u32 byte length + UTF-8 bytes;
 *   strn: like str, length 0xffffffff meaning null; u32[]/u64[]: u32 count + items;
 *   str[]: u32 count + strings; raw: the rest of the payload (must be last).
 * A u64[] field may name the members of the tuples it holds (`of`): its count is
 * still the number of u64 values, a multiple of the tuple size, and it decodes
 * to an array of objects with those members.
 */
import { CrimgError } from './errors.js';
import { KINDS_OF } from './kinds/index.js';

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
  'r15',
  'r14',
  'r13',
  'r12',
  'rbp',
  'rbx',
  'r11',
  'r10',
  'r9',
  'r8',
  'rax',
  'rcx',
  'rdx',
  'rsi',
  'rdi',
  'orig_rax',
  'rip',
  'cs',
  'eflags',
  'rsp',
  'ss',
  'fs_base',
  'gs_base',
  'ds',
  'es',
  'fs',
  'gs',
] as const;
export type RegName = (typeof REG_NAMES)[number];
export const REG_INDEX: Record<RegName, number> = Object.fromEntries(REG_NAMES.map((n, i) => [n, i])) as Record<RegName, number>;

export type FieldType = 'u32' | 'i32' | 'u64' | 'str' | 'strn' | 'u32[]' | 'u64[]' | 'str[]' | 'raw';
/** A field: name, type, documentation and, for a u64[] of tuples, the names of the tuple's members. */
export type Field = readonly [name: string, type: FieldType, doc?: string, of?: readonly string[]];

/**
 * How many records of a kind follow at a place of the grammar: exactly one ('1'), at most one ('?'), any number
 * ('*'), as many as a field of the parent says ({ field }), or one when a bit of a parent's field is set
 * ({ field, bit }). For the top level, the parent is the HEADER record.
 */
export type Count = '1' | '?' | '*' | { readonly field: string; readonly bit?: number };
export interface Child {
  readonly kind: number;
  readonly count: Count;
}

export interface RecordDef {
  kind: number;
  name: string;
  /** Kind of the enclosing record, 0 for top level. */
  parent: number;
  fields: readonly Field[];
  /** Exact payload length for fixed-size records. */
  fixedLen?: number;
  doc: string;
  /** The records that follow this one and belong to it, in order (none: a leaf). */
  children?: readonly Child[];
}

export const K = {
  HEADER: 0x0001,
  NS: 0x0002,
  TASK: 0x0101,
  CREDS: 0x0102,
  RLIMITS: 0x0103,
  NSIDS: 0x0104,
  NOCR: 0x0105,
  THREAD: 0x0201,
  REGS: 0x0211,
  FPU: 0x0212,
  XSTATE: 0x0213,
  MM: 0x0301,
  VMA: 0x0302,
  PAGES: 0x0303,
  FD: 0x0401,
  INDEX: 0x7f01,
  TRAILER: 0x7fff,
} as const;

const MM_FIELDS: Field[] = [
  ['startCode', 'u64'],
  ['endCode', 'u64'],
  ['startData', 'u64'],
  ['endData', 'u64'],
  ['startBrk', 'u64'],
  ['brk', 'u64'],
  ['startStack', 'u64'],
  ['argStart', 'u64'],
  ['argEnd', 'u64'],
  ['envStart', 'u64'],
  ['envEnd', 'u64'],
];

/** Optional kinds of an owner: at most one record each, in registry order. */
const optional = (owner: 'task' | 'thread' | 'fd'): Child[] => KINDS_OF[owner].map((k) => ({ kind: k.record.kind, count: '?' }));

/** The records of the format itself; the optional kinds' records are added from src/kinds (RECORDS). */
const CORE_RECORDS: readonly RecordDef[] = [
  {
    kind: K.HEADER,
    name: 'HEADER',
    parent: 0,
    doc: 'Image header; first record after the magic.',
    fields: [
      ['crid', 'u64', 'checkpoint id'],
      ['createdNs', 'u64', 'creation time, ns since the epoch'],
      ['freezeNs', 'u64', 'time the tasks were frozen, ns'],
      ['flags', 'u32', 'HeaderFlags'],
      ['ntasks', 'u32', 'TASK records that follow'],
      ['nns', 'u32', 'NS records that follow'],
      ['checksumAlgo', 'u32', '1 = XXH3-64'],
      ['pageSize', 'u32', '4096'],
      ['tool', 'str'],
      ['sysname', 'str'],
      ['nodename', 'str'],
      ['release', 'str'],
      ['version', 'str'],
      ['machine', 'str'],
      ['domainname', 'str'],
    ],
  },
  {
    kind: K.NS,
    name: 'NS',
    parent: 0,
    doc: 'A namespace referenced by tasks (after HEADER, before the first TASK).',
    fields: [
      ['nsKind', 'u32', 'index in uts,ipc,mnt,pid,net,user,cgroup,time'],
      ['nsFlags', 'u32', 'bit 0: uts strings present'],
      ['id', 'u64', 'inode number of /proc/PID/ns/KIND'],
      ['nodename', 'str'],
      ['domainname', 'str'],
    ],
  },
  {
    kind: K.TASK,
    name: 'TASK',
    parent: 0,
    doc: 'A task (process); tasks come parents first.',
    children: [
      { kind: K.CREDS, count: '1' },
      { kind: K.RLIMITS, count: '1' },
      { kind: K.NSIDS, count: '1' },
      ...optional('task'),
      { kind: K.THREAD, count: { field: 'nthreads' } },
      { kind: K.MM, count: { field: 'hasMm', bit: 0 } },
      { kind: K.FD, count: { field: 'nfiles' } },
      { kind: K.NOCR, count: { field: 'nnocr' } },
    ],
    fields: [
      ['pid', 'i32'],
      ['tgid', 'i32'],
      ['ppid', 'i32'],
      ['pgid', 'i32'],
      ['sid', 'i32'],
      ['personality', 'u32'],
      ['exitSignal', 'u32'],
      ['nthreads', 'u32'],
      ['nfiles', 'u32'],
      ['nnocr', 'u32'],
      ['hasMm', 'u32', '0 or 1: an MM record follows'],
      ['comm', 'str'],
      ['exe', 'str'],
      ['cwd', 'str'],
      ['root', 'str'],
      ['args', 'str[]'],
      ['env', 'str[]'],
    ],
  },
  {
    kind: K.CREDS,
    name: 'CREDS',
    parent: K.TASK,
    doc: 'Credentials.',
    fields: [
      ['uid', 'u32'],
      ['gid', 'u32'],
      ['euid', 'u32'],
      ['egid', 'u32'],
      ['suid', 'u32'],
      ['sgid', 'u32'],
      ['fsuid', 'u32'],
      ['fsgid', 'u32'],
      ['securebits', 'u32'],
      ['noNewPrivs', 'u32'],
      ['seccompMode', 'u32'],
      ['capInh', 'u64'],
      ['capPrm', 'u64'],
      ['capEff', 'u64'],
      ['capBnd', 'u64'],
      ['capAmb', 'u64'],
      ['groups', 'u32[]'],
    ],
  },
  {
    kind: K.RLIMITS,
    name: 'RLIMITS',
    parent: K.TASK,
    doc: 'Resource limits: (cur, max) pairs for RLIMIT_CPU..RLIMIT_RTTIME.',
    fields: [['limits', 'u64[]']],
  },
  {
    kind: K.NSIDS,
    name: 'NSIDS',
    parent: K.TASK,
    doc: 'Namespace ids of the task (0 = unknown).',
    fixedLen: 64,
    fields: [
      ['uts', 'u64'],
      ['ipc', 'u64'],
      ['mnt', 'u64'],
      ['pid', 'u64'],
      ['net', 'u64'],
      ['user', 'u64'],
      ['cgroup', 'u64'],
      ['time', 'u64'],
    ],
  },
  {
    kind: K.THREAD,
    name: 'THREAD',
    parent: K.TASK,
    doc: 'A thread.',
    children: [
      { kind: K.REGS, count: '1' },
      { kind: K.FPU, count: '1' },
      { kind: K.XSTATE, count: { field: 'thFlags', bit: 0 } },
      ...optional('thread'),
    ],
    fields: [
      ['tid', 'i32'],
      ['thFlags', 'u32', 'bit 0: XSTATE follows; bit 1: rseq registered'],
      ['sigmask', 'u64'],
      ['sigpending', 'u64'],
      ['rseqPtr', 'u64'],
      ['rseqLen', 'u32'],
      ['rseqSig', 'u32'],
      ['rseqFlags', 'u32'],
      ['state', 'str'],
    ],
  },
  {
    kind: K.REGS,
    name: 'REGS',
    parent: K.THREAD,
    fixedLen: 216,
    doc: 'user_regs_struct: 27 u64 in kernel order (the same bytes as PTRACE_GETREGS and ELF NT_PRSTATUS pr_reg).',
    fields: REG_NAMES.map((n) => [n, 'u64'] as Field),
  },
  {
    kind: K.FPU,
    name: 'FPU',
    parent: K.THREAD,
    fixedLen: 512,
    doc: 'FXSAVE area (x87, MXCSR, XMM0-15), 512 bytes.',
    fields: [['fxsave', 'raw']],
  },
  {
    kind: K.XSTATE,
    name: 'XSTATE',
    parent: K.THREAD,
    doc: 'Standard-form XSAVE area from byte 512 on (header + extended components); bytes 0..511 are the FPU record.',
    fields: [
      ['xcr0', 'u64'],
      ['ext', 'raw'],
    ],
  },
  {
    kind: K.MM,
    name: 'MM',
    parent: K.TASK,
    doc: 'Address space.',
    children: [{ kind: K.VMA, count: { field: 'nvmas' } }],
    fields: [...MM_FIELDS, ['nvmas', 'u32'], ['mmFlags', 'u32'], ['auxv', 'u64[]', '(type, value) pairs without AT_NULL']],
  },
  {
    kind: K.VMA,
    name: 'VMA',
    parent: K.MM,
    doc: 'A memory area; its PAGES records come in ascending address order.',
    children: [{ kind: K.PAGES, count: '*' }],
    fields: [
      ['start', 'u64'],
      ['end', 'u64'],
      ['pgoff', 'u64', 'file offset in pages'],
      ['inode', 'u64'],
      ['prot', 'u32', '1 read, 2 write, 4 exec'],
      ['vmaFlags', 'u32', 'VmaFlags'],
      ['devMajor', 'u32'],
      ['devMinor', 'u32'],
      ['path', 'strn'],
    ],
  },
  {
    kind: K.PAGES,
    name: 'PAGES',
    parent: K.VMA,
    doc: 'A run of npages pages from addr: the non-zero pages stored in order, then a bitmap (ceil(npages/64) u64 words, bit i = page i stored; 0 = zero page, not stored).',
    fields: [
      ['addr', 'u64'],
      ['npages', 'u32'],
      ['pgFlags', 'u32', 'reserved, 0'],
    ],
  },
  {
    kind: K.FD,
    name: 'FD',
    parent: K.TASK,
    doc: 'An open file descriptor.',
    children: optional('fd'),
    fields: [
      ['fd', 'i32'],
      ['fdKind', 'u32', '0 regular, 1 directory, 2 other'],
      ['flags', 'u32', 'open(2) flags'],
      ['mode', 'u32'],
      ['cloexec', 'u32'],
      ['devMajor', 'u32'],
      ['devMinor', 'u32'],
      ['pos', 'u64'],
      ['inode', 'u64'],
      ['size', 'u64'],
      ['path', 'str'],
    ],
  },
  {
    kind: K.NOCR,
    name: 'NOCR',
    parent: K.TASK,
    doc: 'A reason the task cannot be checkpointed or restarted faithfully.',
    fields: [
      ['pid', 'i32'],
      ['code', 'str'],
      ['text', 'str'],
    ],
  },
  {
    kind: K.INDEX,
    name: 'INDEX',
    parent: 0,
    doc: 'Index of PAGES records: count entries of INDEX_ENTRY {pid i32, npages u32, addr u64, offset u64 (of the record header)}, sorted by (pid order of TASK records, addr).',
    fields: [
      ['count', 'u32'],
      ['reserved', 'u32'],
    ],
  },
  {
    kind: K.TRAILER,
    name: 'TRAILER',
    parent: 0,
    fixedLen: 32,
    doc: 'Last record: magic "CRMGEND\\0", number of records before it, offset of INDEX, XXH3-64 of the magic and every record header before the trailer.',
    fields: [
      ['tmagic', 'u64'],
      ['records', 'u64'],
      ['indexOffset', 'u64'],
      ['imageCsum', 'u64'],
    ],
  },
];

/** The top level of an image after the magic; counts are fields of the HEADER record. */
export const IMAGE_GRAMMAR: readonly Child[] = [
  { kind: K.HEADER, count: '1' },
  { kind: K.NS, count: { field: 'nns' } },
  { kind: K.TASK, count: { field: 'ntasks' } },
  { kind: K.INDEX, count: '1' },
  { kind: K.TRAILER, count: '1' },
];

/** Every record kind, for the tables of docs/FORMAT.md in this order: each owner's optional kinds after the core
 *  record their records follow. */
const KINDS_AFTER: Record<number, 'task' | 'thread' | 'fd'> = { [K.NSIDS]: 'task', [K.XSTATE]: 'thread', [K.FD]: 'fd' };
export const RECORDS: readonly RecordDef[] = CORE_RECORDS.flatMap((r) => {
  const o = KINDS_AFTER[r.kind];
  return o ? [r, ...KINDS_OF[o].map((k) => k.record)] : [r];
});

/** Size of a fixed-size field. */
const FIXED_SIZE: Partial<Record<FieldType, number>> = { u32: 4, i32: 4, u64: 8 };

/** Byte offsets of the leading fixed-size fields of a layout, and its size (-1 when a field is not fixed-size). */
export function fieldOffsets(fields: readonly Field[]): { at: Record<string, number>; bytes: number } {
  const at: Record<string, number> = {};
  let o = 0;
  for (const [name, type] of fields) {
    at[name] = o;
    const n = FIXED_SIZE[type];
    if (n === undefined) return { at, bytes: -1 };
    o += n;
  }
  return { at, bytes: o };
}

/** Offset of a field in the payload of a record kind; only fixed-size fields may precede it. Code that patches or
 *  reads a field in place (the freeze time in a written HEADER, the TRAILER) takes its offset from here. */
export function fieldOffset(kind: number, name: string): number {
  const def = RECORD_BY_KIND.get(kind);
  const o = def ? fieldOffsets(def.fields).at[name] : undefined;
  if (o === undefined) throw new CrimgError('INTERNAL', `no fixed offset for ${kindName(kind)}.${name}`);
  return o;
}

/** The INDEX record: its two u32 fields, then `count` entries of this layout. */
export const INDEX_ENTRY: readonly Field[] = [
  ['pid', 'i32'],
  ['npages', 'u32'],
  ['addr', 'u64'],
  ['offset', 'u64', "of the PAGES record's header"],
];
/** Offsets of the INDEX entry's members. */
export const IX = fieldOffsets(INDEX_ENTRY).at as Record<'pid' | 'npages' | 'addr' | 'offset', number>;
export const INDEX_ENTRY_BYTES = fieldOffsets(INDEX_ENTRY).bytes;
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
  reset(): this {
    this.len = 0;
    return this;
  }
  /** When set, the builder writes into a foreign buffer (see attach) and cannot grow past this offset. */
  limit = -1;
  /** Write into `buf` (viewed by `dv`) from offset `at`, up to `limit`: a payload encoded in place.
   *  Running out of room throws NO_ROOM (the caller then encodes into its own builder). */
  attach(buf: Uint8Array, dv: DataView, at: number, limit: number): this {
    this.buf = buf;
    this.dv = dv;
    this.len = at;
    this.limit = limit;
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
    this.buf = b;
    this.dv = new DataView(b.buffer);
  }
  u32(v: number): void {
    this.room(4);
    this.dv.setUint32(this.len, v >>> 0, true);
    this.len += 4;
  }
  i32(v: number): void {
    this.room(4);
    this.dv.setInt32(this.len, v | 0, true);
    this.len += 4;
  }
  u64(v: bigint): void {
    this.room(8);
    this.dv.setBigUint64(this.len, BigInt.asUintN(64, v), true);
    this.len += 8;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
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
      if (i === n) {
        this.dv.setUint32(this.len, n, true);
        this.len = o + n;
        return;
      }
    }
    const { written } = te.encodeInto(s, this.buf.subarray(o));
    this.dv.setUint32(this.len, written, true);
    this.len = o + written;
  }
  view(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

export type Fields = Record<string, unknown>;

function badField(def: RecordDef, name: string, v: unknown): never {
  const type = def.fields.find((f) => f[0] === name.split('.')[0])?.[1] ?? 'u64';
  throw new CrimgError('USAGE', `model field ${def.name}.${name} = ${String(v)} does not fit its ${type} record field`);
}

const T_U32 = 0,
  T_I32 = 1,
  T_U64 = 2,
  T_STR = 3,
  T_STRN = 4,
  T_U32A = 5,
  T_U64A = 6,
  T_STRA = 7,
  T_RAW = 8,
  T_U64T = 9;
const TYPE_CODE: Record<FieldType, number> = {
  u32: T_U32,
  i32: T_I32,
  u64: T_U64,
  str: T_STR,
  strn: T_STRN,
  'u32[]': T_U32A,
  'u64[]': T_U64A,
  'str[]': T_STRA,
  raw: T_RAW,
};
/** Per record kind: field names and type codes, for the encoder's loop. */
interface Plan {
  names: string[];
  codes: number[];
  tuples: (readonly string[] | undefined)[];
}
const PLANS = new WeakMap<RecordDef, Plan>();
function planOf(def: RecordDef): Plan {
  let p = PLANS.get(def);
  if (!p) {
    p = {
      names: def.fields.map((f) => f[0]),
      codes: def.fields.map((f) => (f[3] ? T_U64T : TYPE_CODE[f[1]])),
      tuples: def.fields.map((f) => f[3]),
    };
    PLANS.set(def, p);
  }
  return p;
}

/** "pairs", "triples" ... for messages about tuple fields. */
export function tupleWord(n: number): string {
  return ['', 'singles', 'pairs', 'triples', 'quadruples', 'quintuples', 'sextuples', 'septuples', 'octuples'][n] ?? `${n}-tuples`;
}
const U64_MAX = 0xffffffffffffffffn;

/** Encode a record payload from an object holding the def's fields; `extra` supplies (or overrides)
 *  fields the object lacks, so that model objects need not be copied. */
export function encodeFields(def: RecordDef, obj: Fields, b: Builder, extra?: Fields): void {
  const { names, codes, tuples } = planOf(def);
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    const v = extra !== undefined && name in extra ? extra[name] : obj[name];
    switch (codes[i]) {
      case T_U32:
        if (!(typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff)) badField(def, name, v);
        b.u32(v as number);
        break;
      case T_I32:
        if (!(typeof v === 'number' && Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff)) badField(def, name, v);
        b.i32(v as number);
        break;
      case T_U64:
        if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) badField(def, name, v);
        b.room(8);
        b.dv.setBigUint64(b.len, v as bigint, true);
        b.len += 8;
        break;
      case T_STR:
        b.str(v as string);
        break;
      case T_STRN:
        if (v === null || v === undefined) b.u32(0xffffffff);
        else b.str(v as string);
        break;
      case T_U32A: {
        const a = v as number[];
        b.u32(a.length);
        for (const x of a) b.u32(x);
        break;
      }
      case T_U64A: {
        const a = v as bigint[];
        b.u32(a.length);
        b.room(8 * a.length);
        for (const x of a) b.u64(x);
        break;
      }
      case T_STRA: {
        const a = v as string[];
        b.u32(a.length);
        for (const x of a) b.str(x);
        break;
      }
      case T_RAW:
        b.bytes(v as Uint8Array);
        break;
      case T_U64T: {
        const a = v as Record<string, bigint>[],
          of = tuples[i]!;
        b.u32(a.length * of.length);
        b.room(8 * a.length * of.length);
        for (const x of a) {
          for (const m of of) {
            const e = x[m];
            if (typeof e !== 'bigint' || e < 0n || e > U64_MAX) badField(def, `${name}.${m}`, e);
            b.u64(e as bigint);
          }
        }
        break;
      }
    }
  }
}

// ------------------------------------------------------------------ decode

/** Reads the fields of one payload in order, each bounds-checked; refusals are BAD_RECORD at the field's offset. */
class PayloadReader {
  o = 0;
  private readonly dv: DataView;
  constructor(
    private readonly def: RecordDef,
    readonly p: Uint8Array,
    private readonly baseOffset: number,
  ) {
    this.dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  }
  bad(what: string): never {
    throw new CrimgError('BAD_RECORD', `${this.def.name} record: ${what}`, { offset: this.baseOffset + this.o, kind: this.def.kind });
  }
  private need(n: number): void {
    if (this.o + n > this.p.length) this.bad(`field runs past the payload end (${this.p.length} bytes)`);
  }
  u32(): number {
    this.need(4);
    const v = this.dv.getUint32(this.o, true);
    this.o += 4;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.dv.getInt32(this.o, true);
    this.o += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.dv.getBigUint64(this.o, true);
    this.o += 8;
    return v;
  }
  str(nullable: boolean): string | null {
    const n = this.u32();
    if (nullable && n === 0xffffffff) return null;
    if (n > MAX_STRING) {
      this.o -= 4;
      this.bad(`string of ${n} bytes exceeds ${MAX_STRING}`);
    }
    this.need(n);
    const s = td.decode(this.p.subarray(this.o, this.o + n));
    this.o += n;
    return s;
  }
  /** An array's count, checked against what is left for items of `item` bytes. */
  count(item: number): number {
    this.need(4);
    const n = this.dv.getUint32(this.o, true);
    if (n * item > this.p.length - this.o - 4) this.bad(`count ${n} exceeds the payload`);
    this.o += 4;
    return n;
  }
  array<T>(item: number, read: () => T): T[] {
    const n = this.count(item);
    const a: T[] = [];
    for (let i = 0; i < n; i++) a.push(read());
    return a;
  }
  /** A u64[] of tuples with the members `of`. */
  tuples(of: readonly string[]): Record<string, bigint>[] {
    const n = this.count(8);
    if (n % of.length) this.bad(`${n} values are not (${of.join(', ')}) ${tupleWord(of.length)}`);
    const a: Record<string, bigint>[] = [];
    for (let i = 0; i < n; i += of.length) {
      const x: Record<string, bigint> = {};
      for (const m of of) x[m] = this.u64();
      a.push(x);
    }
    return a;
  }
  field(type: FieldType): unknown {
    switch (type) {
      case 'u32':
        return this.u32();
      case 'i32':
        return this.i32();
      case 'u64':
        return this.u64();
      case 'str':
        return this.str(false);
      case 'strn':
        return this.str(true);
      case 'u32[]':
        return this.array(4, () => this.u32());
      case 'u64[]':
        return this.array(8, () => this.u64());
      case 'str[]':
        return this.array(4, () => this.str(false) as string);
      case 'raw': {
        const v = this.p.slice(this.o);
        this.o = this.p.length;
        return v;
      }
    }
  }
}

/** Decode a record payload; throws BAD_RECORD (with the absolute offset) on any inconsistency. */
export function decodeFields(def: RecordDef, p: Uint8Array, baseOffset: number): Fields {
  const r = new PayloadReader(def, p, baseOffset);
  const out: Fields = {};
  for (const [name, type, , of] of def.fields) out[name] = of ? r.tuples(of) : r.field(type);
  if (def.kind !== K.PAGES && def.kind !== K.INDEX && r.o !== p.length) r.bad(`${p.length - r.o} unexpected bytes after the last field`);
  return out;
}

/** Minimal payload length of a kind (sum of its fixed parts). */
export function minLen(def: RecordDef): number {
  let n = 0;
  for (const [, t] of def.fields) n += t === 'u64' ? 8 : t === 'raw' ? 0 : 4;
  return n;
}
