/**
 * A small protocol-buffers wire-format codec for CRIU images, driven by the one
 * message table in ./proto.ts: varints (32 and 64 bit, zigzag for sint32/sint64),
 * fixed64, length-delimited (strings, bytes, nested messages) and repeated fields
 * (written unpacked as CRIU's protobuf-c does for proto2; read packed or unpacked).
 *
 * Decoded messages are plain objects keyed by field name: uint64/sint64/fixed64 as
 * bigint, 32-bit kinds and enums as number, bool as boolean, string, bytes as
 * Uint8Array, nested messages as objects, repeated fields as arrays. Unknown fields
 * are skipped (images from newer CRIU versions carry fields this table lacks); a
 * missing required field, a wrong wire type or a length past the end is an error.
 */
import { CrimgError } from '../errors.js';
import { MESSAGES, type FieldDef, type MessageName } from './proto.js';

/** A decoded (or to-be-encoded) message. */
export type Msg = { [field: string]: unknown };

const WT_VARINT = 0;
const WT_I64 = 1;
const WT_LEN = 2;
const WT_I32 = 5;

/** Where a decode error is reported: the file name and the offset of the buffer in that file. */
export interface DecodeAt {
  file: string;
  base: number;
}

function fail(at: DecodeAt, pos: number, msg: string): never {
  throw new CrimgError('BAD_CRIU', `${at.file}: ${msg}`, { offset: at.base + pos });
}

// ------------------------------------------------------------------ writer

class Writer {
  private buf = new Uint8Array(256);
  len = 0;
  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }
  byte(v: number): void {
    this.room(1);
    this.buf[this.len++] = v;
  }
  varint(v: number): void {
    // v: a non-negative integer below 2^53
    this.room(10);
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.len++] = v;
  }
  varint64(v: bigint): void {
    let x = BigInt.asUintN(64, v);
    this.room(10);
    while (x >= 0x80n) {
      this.buf[this.len++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.buf[this.len++] = Number(x);
  }
  fixed64(v: bigint): void {
    this.room(8);
    new DataView(this.buf.buffer).setBigUint64(this.len, BigInt.asUintN(64, v), true);
    this.len += 8;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  tag(num: number, wt: number): void {
    this.varint(num * 8 + wt);
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

const te = new TextEncoder();
const td = new TextDecoder('utf-8', { fatal: false });

function toBig(v: unknown, f: FieldDef): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  throw new CrimgError('INTERNAL', `CRIU field ${f.name}: ${String(v)} is not an integer`);
}
function toNum(v: unknown, f: FieldDef): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  throw new CrimgError('INTERNAL', `CRIU field ${f.name}: ${String(v)} is not an integer`);
}

function writeValue(w: Writer, f: FieldDef, v: unknown): void {
  switch (f.type) {
    case 'uint32':
    case 'enum': {
      const n = toNum(v, f);
      if (n < 0 || n > 0xffffffff) throw new CrimgError('INTERNAL', `CRIU field ${f.name}: ${n} does not fit uint32`);
      w.tag(f.num, WT_VARINT);
      w.varint(n);
      return;
    }
    case 'int32': {
      const n = toNum(v, f);
      w.tag(f.num, WT_VARINT);
      if (n >= 0) w.varint(n);
      else w.varint64(BigInt(n)); // negative int32: sign-extended to 64 bits
      return;
    }
    case 'sint32': {
      const n = toNum(v, f);
      w.tag(f.num, WT_VARINT);
      w.varint(n >= 0 ? n * 2 : -n * 2 - 1);
      return;
    }
    case 'bool':
      w.tag(f.num, WT_VARINT);
      w.varint(v ? 1 : 0);
      return;
    case 'uint64':
    case 'int64':
      w.tag(f.num, WT_VARINT);
      w.varint64(toBig(v, f));
      return; // int64: two's complement
    case 'sint64': {
      const n = toBig(v, f);
      w.tag(f.num, WT_VARINT);
      w.varint64(n >= 0n ? n * 2n : -n * 2n - 1n);
      return;
    }
    case 'fixed64':
      w.tag(f.num, WT_I64);
      w.fixed64(toBig(v, f));
      return;
    case 'string': {
      const b = te.encode(String(v));
      w.tag(f.num, WT_LEN);
      w.varint(b.length);
      w.bytes(b);
      return;
    }
    case 'bytes': {
      const b = v as Uint8Array;
      w.tag(f.num, WT_LEN);
      w.varint(b.length);
      w.bytes(b);
      return;
    }
    case 'message': {
      const b = encodeMessage(f.msg!, v as Msg);
      w.tag(f.num, WT_LEN);
      w.varint(b.length);
      w.bytes(b);
      return;
    }
  }
}

/** Zero value of a required scalar field that the caller left out. */
function zeroOf(f: FieldDef): unknown {
  switch (f.type) {
    case 'uint64':
    case 'int64':
    case 'sint64':
    case 'fixed64':
      return 0n;
    case 'string':
      return '';
    case 'bytes':
      return new Uint8Array(0);
    case 'bool':
      return false;
    case 'message':
      return {};
    default:
      return 0;
  }
}

/** Encode a message of the table (fields in table order; required fields always written). */
export function encodeMessage(name: MessageName, m: Msg): Uint8Array {
  const w = new Writer();
  for (const f of MESSAGES[name]) {
    const v = m[f.name];
    if (f.label === 'repeated') {
      if (v === undefined) continue;
      for (const x of v as Iterable<unknown>) writeValue(w, f, x);
    } else if (v !== undefined && v !== null) writeValue(w, f, v);
    else if (f.label === 'required') writeValue(w, f, zeroOf(f));
  }
  return w.result();
}

// ------------------------------------------------------------------ reader

class Reader {
  pos: number;
  constructor(
    readonly b: Uint8Array,
    readonly at: DecodeAt,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }
  varint64(): bigint {
    let r = 0n,
      shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) fail(this.at, this.pos, 'protobuf varint runs past the end of its entry');
      const c = this.b[this.pos++]!;
      r |= BigInt(c & 0x7f) << shift;
      if (!(c & 0x80)) return BigInt.asUintN(64, r);
      shift += 7n;
    }
    fail(this.at, this.pos, 'protobuf varint longer than 10 bytes');
  }
  varint(): number {
    // fast path for values below 2^28
    let r = 0;
    for (let i = 0; i < 4; i++) {
      if (this.pos >= this.end) fail(this.at, this.pos, 'protobuf varint runs past the end of its entry');
      const c = this.b[this.pos++]!;
      r |= (c & 0x7f) << (7 * i);
      if (!(c & 0x80)) return r >>> 0;
    }
    this.pos -= 4;
    const v = this.varint64();
    return Number(v);
  }
  skip(wt: number, start: number): void {
    switch (wt) {
      case WT_VARINT:
        this.varint64();
        return;
      case WT_I64:
        this.need(8);
        this.pos += 8;
        return;
      case WT_I32:
        this.need(4);
        this.pos += 4;
        return;
      case WT_LEN: {
        const n = this.varint();
        this.need(n);
        this.pos += n;
        return;
      }
      default:
        fail(this.at, start, `protobuf wire type ${wt} is not supported`);
    }
  }
  need(n: number): void {
    if (n > this.end - this.pos) fail(this.at, this.pos, `protobuf field of ${n} bytes runs past the end of its entry`);
  }
}

const wireOf = (f: FieldDef): number => {
  switch (f.type) {
    case 'fixed64':
      return WT_I64;
    case 'string':
    case 'bytes':
    case 'message':
      return WT_LEN;
    default:
      return WT_VARINT;
  }
};

function readScalar(r: Reader, f: FieldDef, start: number): unknown {
  switch (f.type) {
    case 'uint32':
    case 'enum': {
      const v = r.varint64();
      return Number(BigInt.asUintN(32, v));
    }
    case 'int32':
      return Number(BigInt.asIntN(32, r.varint64()));
    case 'sint32': {
      const v = Number(BigInt.asUintN(32, r.varint64()));
      return (v >>> 1) ^ -(v & 1);
    }
    case 'bool':
      return r.varint64() !== 0n;
    case 'uint64':
      return r.varint64();
    case 'int64':
      return BigInt.asIntN(64, r.varint64());
    case 'sint64': {
      const v = r.varint64();
      return (v >> 1n) ^ -(v & 1n);
    }
    case 'fixed64': {
      r.need(8);
      const v = new DataView(r.b.buffer, r.b.byteOffset + r.pos, 8).getBigUint64(0, true);
      r.pos += 8;
      return v;
    }
    default:
      fail(r.at, start, `field ${f.name} is not a scalar`);
  }
}

function decodeRange(name: MessageName, b: Uint8Array, at: DecodeAt, start: number, end: number, depth: number): Msg {
  if (depth > 16) fail(at, start, `${name}: messages nested too deeply`);
  const defs = MESSAGES[name];
  const byNum = BY_NUM[name]!;
  const r = new Reader(b, at, start, end);
  const out: Msg = {};
  for (const f of defs) if (f.label === 'repeated') out[f.name] = [];
  while (r.pos < end) {
    const tagAt = r.pos;
    const tag = r.varint64();
    const num = Number(tag >> 3n);
    const wt = Number(tag & 7n);
    if (num === 0) fail(at, tagAt, `${name}: protobuf field number 0`);
    const f = byNum.get(num);
    if (!f) {
      r.skip(wt, tagAt);
      continue;
    } // a field this table does not know
    const want = wireOf(f);
    if (f.label === 'repeated' && wt === WT_LEN && want !== WT_LEN) {
      // packed repeated scalars
      const n = r.varint();
      r.need(n);
      const sub = new Reader(b, at, r.pos, r.pos + n);
      const arr = out[f.name] as unknown[];
      while (sub.pos < sub.end) arr.push(readScalar(sub, f, sub.pos));
      r.pos += n;
      continue;
    }
    if (wt !== want) fail(at, tagAt, `${name}.${f.name}: wire type ${wt}, expected ${want}`);
    let v: unknown;
    if (want === WT_LEN) {
      const n = r.varint();
      r.need(n);
      if (f.type === 'string') v = td.decode(b.subarray(r.pos, r.pos + n));
      else if (f.type === 'bytes') v = b.slice(r.pos, r.pos + n);
      else v = decodeRange(f.msg!, b, at, r.pos, r.pos + n, depth + 1);
      r.pos += n;
    } else v = readScalar(r, f, tagAt);
    if (f.label === 'repeated') (out[f.name] as unknown[]).push(v);
    else out[f.name] = v;
  }
  for (const f of defs) {
    if (f.label === 'required' && out[f.name] === undefined) fail(at, start, `${name}: required field ${f.name} (${f.num}) is missing`);
  }
  return out;
}

const BY_NUM: Partial<Record<MessageName, Map<number, FieldDef>>> = {};
for (const [name, defs] of Object.entries(MESSAGES)) BY_NUM[name as MessageName] = new Map(defs.map((f) => [f.num, f]));

/** Decode one message from b[start, end); errors name `at.file` and the offset at.base + position. */
export function decodeMessage(name: MessageName, b: Uint8Array, at: DecodeAt, start = 0, end = b.length): Msg {
  return decodeRange(name, b, at, start, end, 0);
}
