/**
 * Seeded mutations of valid images. Each mutant says how deep its checksums
 * were repaired ("level"):
 *   raw   nothing recomputed: the record checksums (or the framing) are stale;
 *   rec   the changed records carry fresh checksums, the trailer's whole-image
 *         checksum is stale;
 *   full  record checksums, optionally the INDEX, and the TRAILER (record count,
 *         index offset, whole-image checksum) recomputed: only the reader's
 *         structural checks stand between the mutant and acceptance.
 * raw and rec mutants change checksummed bytes, so a reader must reject them;
 * full mutants may be valid images of another model.
 *
 * The record kinds, their fields (by name, tuple members included) and their
 * children come from the schema of the crimg under test (ctx.defs: its RECORDS):
 * the 'optional' operation targets the fields of the optional kinds of state by
 * name, so that each kind's decode checks are reached with its checksums right.
 */
import { HDR, K, KNOWN_KINDS, TRAILER_MAGIC, build, pad8, parse, slots, strings, INDEX_ENTRY } from './image.mjs';

// ------------------------------------------------------------------ rng

/** mulberry32 seeded from a string of numbers. */
export function rng32(...parts) {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (Number(BigInt.asUintN(32, BigInt(p))) >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  let s = h >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const r = {
    next,
    int: (n) => Math.floor(next() * n),
    range: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (a) => a[Math.floor(next() * a.length)],
    chance: (p) => next() < p,
    u32: () => (next() * 4294967296) >>> 0,
    u64: () => (BigInt((next() * 4294967296) >>> 0) << 32n) | BigInt((next() * 4294967296) >>> 0),
    weighted: (table) => {
      const total = table.reduce((a, [w]) => a + w, 0);
      let x = next() * total;
      for (const [w, v] of table) {
        if ((x -= w) < 0) return v;
      }
      return table[table.length - 1][1];
    },
  };
  return r;
}

// ------------------------------------------------------------------ values

const MAX_PAGES_PAYLOAD = 16 + 1024 * 4096 + 128;
const U32_INTERESTING = [
  0,
  1,
  2,
  3,
  4,
  7,
  8,
  15,
  16,
  17,
  31,
  32,
  63,
  64,
  65,
  127,
  128,
  255,
  256,
  257,
  511,
  512,
  1023,
  1024,
  1025,
  4095,
  4096,
  4097,
  0x7fff,
  0x8000,
  0xffff,
  0x10000,
  0xffffff,
  0x1000000,
  0x1000001,
  0x2000000,
  0x2000001,
  MAX_PAGES_PAYLOAD - 1,
  MAX_PAGES_PAYLOAD,
  MAX_PAGES_PAYLOAD + 1,
  0x7ffffffe,
  0x7fffffff,
  0x80000000,
  0x80000001,
  0xfffffff8,
  0xfffffffe,
  0xffffffff,
];
const U64_INTERESTING = [
  0n,
  1n,
  0xfffn,
  0x1000n,
  0x1001n,
  0xffffffffn,
  0x100000000n,
  0x7fffffffffffn,
  0x800000000000n,
  0x7fffffffffffffffn,
  0x8000000000000000n,
  0xfffffffffffff000n,
  0xfffffffffffffffen,
  0xffffffffffffffffn,
];

function u32Value(r, orig) {
  return r.weighted([
    [6, () => r.pick(U32_INTERESTING)],
    [3, () => (orig + r.pick([1, -1, 2, -2, 8, -8, 64, 4096, -4096])) >>> 0],
    [1, () => (orig * 2) >>> 0],
    [1, () => (orig ^ (1 << r.int(32))) >>> 0],
    [1, () => r.u32()],
  ])();
}
function u64Value(r, orig) {
  return r.weighted([
    [5, () => r.pick(U64_INTERESTING)],
    [3, () => BigInt.asUintN(64, orig + BigInt(r.pick([1, -1, 4096, -4096, 0x100000, -0x100000, 8, -8])))],
    [1, () => orig ^ (1n << BigInt(r.int(64)))],
    [1, () => r.u64()],
  ])();
}

// ------------------------------------------------------------------ helpers

const cloneRecs = (recs) => recs.map((x) => ({ ...x }));
const edit = (rec) => {
  rec.payload = rec.payload.slice();
  return new DataView(rec.payload.buffer);
};
const idxOf = (recs, kind) => recs.map((x, i) => (x.kind === kind ? i : -1)).filter((i) => i >= 0);
const nonTrailer = (recs) => recs.length - 1;

/** Names of the record kinds: image.mjs's core kinds, then the schema's (learnt by schemaOf). */
const NAMES = new Map(Object.entries(K).map(([n, v]) => [v, n]));

/**
 * What the mutations need of the schema (ctx.defs), computed once per context: every record kind below each kind
 * (its children's closure), the optional kinds (a child of some record with count '?'), and the bases that hold
 * records of each.
 */
function schemaOf(ctx) {
  if (ctx.schema) return ctx.schema;
  for (const [k, d] of ctx.defs) NAMES.set(k, d.name);
  const below = new Map();
  const closure = (k) => {
    if (below.has(k)) return below.get(k);
    const set = new Set();
    below.set(k, set);
    for (const c of ctx.defs.get(k)?.children ?? []) {
      set.add(c.kind);
      for (const x of closure(c.kind)) set.add(x);
    }
    return set;
  };
  for (const k of ctx.defs.keys()) closure(k);
  const optional = new Set([...ctx.defs.values()].flatMap((d) => (d.children ?? []).filter((c) => c.count === '?').map((c) => c.kind)));
  // each optional kind in the corpus, with the bases that hold it
  const optionalIn = new Map();
  ctx.bases.forEach((b, i) => {
    for (const k of new Set(b.parsed.recs.map((x) => x.kind).filter((k) => optional.has(k))))
      optionalIn.set(k, [...(optionalIn.get(k) ?? []), i]);
  });
  ctx.schema = { below, optional, optionalIn };
  return ctx.schema;
}

/** End (exclusive) of the subtree that starts at record i: the records below its kind in the schema (and unknown
 *  kinds among them). */
function subtreeEnd(ctx, recs, i) {
  const below = schemaOf(ctx).below.get(recs[i].kind);
  let j = i + 1;
  if (below) while (j < recs.length && (below.has(recs[j].kind) || !ctx.defs.has(recs[j].kind))) j++;
  return j;
}

function fieldsOf(ctx, kind) {
  return ctx.defs.get(kind)?.fields ?? [];
}

function setSlot(dv, s, v) {
  if (s.size === 4) dv.setUint32(s.off, Number(v) >>> 0, true);
  else dv.setBigUint64(s.off, BigInt.asUintN(64, BigInt(v)), true);
}
function getSlot(dv, s) {
  return s.size === 4 ? dv.getUint32(s.off, true) : dv.getBigUint64(s.off, true);
}

function fullLevel(r, fixIndex = 0.5) {
  return { fix: 'full', fixIndex: r.chance(fixIndex) };
}
function levelOf(r, weights = [1, 1, 2]) {
  return r.weighted([
    [weights[0], { fix: 'none' }],
    [weights[1], { fix: 'rec' }],
    [weights[2], fullLevel(r)],
  ]);
}
const LEVEL_NAME = { none: 'raw', rec: 'rec', full: 'full' };

// ------------------------------------------------------------------ byte-level mutations (raw)

function regionOf(bytes, recs, r) {
  // pick an interesting byte range: the magic, a record header, its payload, its padding, or the trailer
  const rec = r.pick(recs);
  const len = rec.payload.length;
  return r.weighted([
    [1, [0, 8]],
    [4, [rec.off, rec.off + HDR]],
    [4, len ? [rec.off + HDR, rec.off + HDR + len] : [rec.off, rec.off + HDR]],
    [1, pad8(len) > len ? [rec.off + HDR + len, rec.off + HDR + pad8(len)] : [rec.off + 4, rec.off + 8]],
    [1, [bytes.length - 48, bytes.length]],
    [2, [0, bytes.length]],
  ]);
}

const RAW = {
  flip(b, recs, r) {
    const out = b.slice();
    const n = r.weighted([
      [6, 1],
      [2, 2],
      [1, 4],
      [1, 8],
    ]);
    for (let i = 0; i < n; i++) {
      const [lo, hi] = regionOf(b, recs, r);
      const at = lo + r.int(hi - lo);
      out[at] ^= 1 << r.int(8);
    }
    return { bytes: out, op: `flip${n}` };
  },
  bytes(b, recs, r) {
    const out = b.slice();
    const n = r.range(1, 4);
    for (let i = 0; i < n; i++) {
      const [lo, hi] = regionOf(b, recs, r);
      const at = lo + r.int(hi - lo);
      let v = r.pick([0, 0xff, 0x7f, 0x80, 0x01, r.int(256)]);
      if (v === out[at]) v = (v + 1) & 0xff;
      out[at] = v;
    }
    return { bytes: out, op: `bytes${n}` };
  },
  truncate(b, recs, r) {
    const rec = r.pick(recs);
    const cls = r.pick(['magic', 'boundary', 'boundary-1', 'in-header', 'in-payload', 'in-padding', 'trailer', 'last', 'empty']);
    let at;
    switch (cls) {
      case 'magic':
        at = r.int(8);
        break;
      case 'boundary':
        at = rec.off;
        break;
      case 'boundary-1':
        at = rec.off - 1;
        break;
      case 'in-header':
        at = rec.off + 1 + r.int(HDR - 1);
        break;
      case 'in-payload':
        at = rec.off + HDR + r.int(Math.max(1, rec.payload.length));
        break;
      case 'in-padding':
        at = rec.off + HDR + rec.payload.length + r.int(Math.max(1, pad8(rec.payload.length) - rec.payload.length));
        break;
      case 'trailer':
        at = b.length - 48 + r.int(48);
        break;
      case 'last':
        at = b.length - 1;
        break;
      default:
        at = 0;
    }
    at = Math.max(0, Math.min(b.length - 1, at));
    return { bytes: b.slice(0, at), op: `truncate:${cls}` };
  },
  append(b, recs, r) {
    const what = r.pick(['zeros', 'random', 'trailer', 'record']);
    let extra;
    if (what === 'zeros') extra = new Uint8Array(r.pick([1, 7, 8, 16, 48, 100]));
    else if (what === 'random') extra = Uint8Array.from({ length: r.range(1, 64) }, () => r.int(256));
    else if (what === 'trailer') extra = b.slice(b.length - 48);
    else {
      const rec = r.pick(recs);
      extra = b.slice(rec.off, rec.off + HDR + pad8(rec.payload.length));
    }
    const out = new Uint8Array(b.length + extra.length);
    out.set(b);
    out.set(extra, b.length);
    return { bytes: out, op: `append:${what}` };
  },
  chunk(b, _recs, r) {
    const what = r.pick(['delete', 'insert', 'overwrite', 'delete8', 'insert8']);
    const at = r.int(b.length);
    const n = what.endsWith('8') ? 8 * r.range(1, 4) : r.range(1, 64);
    const src = r.int(b.length);
    let out;
    if (what.startsWith('delete')) {
      out = new Uint8Array(b.length - Math.min(n, b.length - at));
      out.set(b.subarray(0, at));
      out.set(b.subarray(at + n), at);
    } else if (what.startsWith('insert')) {
      const c = b.slice(src, src + n);
      out = new Uint8Array(b.length + c.length);
      out.set(b.subarray(0, at));
      out.set(c, at);
      out.set(b.subarray(at), at + c.length);
    } else {
      out = b.slice();
      out.set(b.subarray(src, src + n).slice(0, b.length - at), at);
    }
    return { bytes: out, op: `chunk:${what}` };
  },
  hdrLen(b, recs, r) {
    const rec = r.pick(recs);
    const out = b.slice();
    const dv = new DataView(out.buffer);
    const old = dv.getUint32(rec.off + 4, true);
    let v = u32Value(r, old);
    if (v === old) v = (v + 1) >>> 0;
    dv.setUint32(rec.off + 4, v, true);
    return { bytes: out, op: `hdrLen:${kindName(rec.kind)}=${v}` };
  },
};

export function kindName(k) {
  return NAMES.get(k) ?? `0x${k.toString(16).padStart(4, '0')}`;
}

// ------------------------------------------------------------------ fields of the optional kinds

/** Values at the edges of the kinds' checks: small enums, signal and clock numbers, page and pipe sizes, the i32,
 *  u32, i64 and u64 limits, -6 and -2 as 64-bit values (clocks). */
const KIND_VALUES = [
  0n,
  1n,
  2n,
  3n,
  4n,
  5n,
  6n,
  7n,
  8n,
  9n,
  10n,
  11n,
  12n,
  13n,
  33n,
  63n,
  64n,
  65n,
  4095n,
  4096n,
  4097n,
  65535n,
  65536n,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  0x100000000n,
  0x7fffffffffffffffn,
  0x8000000000000000n,
  0xfffffffffffffffan,
  0xfffffffffffffffen,
  0xffffffffffffffffn,
];
/** A tuple member's name without its tuple index: timers[1].clock -> timers.clock. */
const memberOf = (name) => name.replace(/\[\d+\]/, '');

/** Bytes [at, at + n) of a record's payload replaced by `insert`. */
function splicePayload(rec, at, n, insert = new Uint8Array(0)) {
  const p = new Uint8Array(rec.payload.length - n + insert.length);
  p.set(rec.payload.subarray(0, at));
  p.set(insert, at);
  p.set(rec.payload.subarray(at + n), at + insert.length);
  rec.payload = p;
}

/** A number (fixed field or array item) set to an edge value, a neighbour, or the same member of another tuple. */
function numberEdit(rec, s, ss, r) {
  const dv = edit(rec);
  const old = getSlot(dv, s);
  const peers = s.role === 'item' ? ss.filter((x) => x !== s && x.role === 'item' && memberOf(x.name) === memberOf(s.name)) : [];
  const small = s.size === 4;
  let v = r.weighted([
    [
      5,
      () => {
        const x = r.pick(small ? KIND_VALUES.filter((y) => y <= 0xffffffffn) : KIND_VALUES);
        return small ? Number(x) : x;
      },
    ],
    [2, () => (small ? (old + r.pick([1, -1])) >>> 0 : BigInt.asUintN(64, old + r.pick([1n, -1n])))],
    [peers.length ? 3 : 0, () => getSlot(dv, r.pick(peers))],
    [1, () => (small ? u32Value(r, old) : u64Value(r, old))],
  ])();
  if (v === old) v = small ? (old + 1) >>> 0 : BigInt.asUintN(64, old + 1n);
  setSlot(dv, s, v);
  return `${s.name}=${v}`;
}

/** An array made shorter or longer by whole elements (a tuple dropped or repeated, the last string dropped), or its
 *  count alone changed. */
function arrayEdit(def, rec, s, ss, r) {
  const [, type, , of] = def.fields.find((f) => f[0] === s.name);
  const dv = edit(rec);
  const n = dv.getUint32(s.off, true);
  if (type === 'str[]') {
    const last = ss.find((x) => x.name === `${s.name}[${n - 1}]`);
    if (!last || r.chance(0.3)) {
      dv.setUint32(s.off, (n + r.pick([1, -1])) >>> 0, true);
      return `${s.name}:count`;
    }
    splicePayload(rec, last.off, 4 + dv.getUint32(last.off, true));
    new DataView(rec.payload.buffer).setUint32(s.off, n - 1, true);
    return `${s.name}:drop`;
  }
  const item = type === 'u32[]' ? 4 : 8,
    t = of?.length ?? 1;
  const what = n >= t && n % t === 0 ? r.pick(['drop', 'dup', 'dup', 'count']) : 'count';
  if (what === 'count') {
    dv.setUint32(s.off, (n + r.pick([1, -1, t, -t])) >>> 0, true);
    return `${s.name}:count`;
  }
  const j = r.int(n / t),
    at = s.off + 4 + j * t * item,
    bytes = t * item;
  if (what === 'drop') splicePayload(rec, at, bytes);
  else splicePayload(rec, r.chance(0.5) ? at + bytes : s.off + 4, 0, rec.payload.slice(at, at + bytes));
  new DataView(rec.payload.buffer).setUint32(s.off, what === 'drop' ? n - t : n + t, true);
  return `${s.name}:${what}`;
}

/** A string made relative (its first byte) or empty. */
function stringEdit(rec, s, r) {
  const dv = edit(rec);
  const n = dv.getUint32(s.off, true);
  if (n === 0 || n === 0xffffffff || s.off + 4 + n > rec.payload.length) return null;
  if (r.chance(0.6)) {
    rec.payload[s.off + 4] = 0x61;
    return `${s.name}:relative`;
  }
  splicePayload(rec, s.off + 4, n);
  new DataView(rec.payload.buffer).setUint32(s.off, 0, true);
  return `${s.name}:empty`;
}

/** Raw bytes (an address, bytes buffered or queued) resized: emptied, to an address size or one more, one page or
 *  one byte past it. */
function rawEdit(rec, s, r) {
  const len = r.pick([0, 1, 4, 5, 15, 16, 17, s.size - 1, s.size + 1, 4097].filter((x) => x >= 0 && x !== s.size));
  const bytes = new Uint8Array(len).fill(0x41);
  bytes.set(rec.payload.subarray(s.off, s.off + Math.min(len, s.size)));
  splicePayload(rec, s.off, s.size, bytes);
  return `${s.name}:${s.size}->${len}`;
}

// ------------------------------------------------------------------ record-level mutations

const UNKNOWN_KINDS = [0x0000, 0x0003, 0x00ff, 0x01fe, 0x0214, 0x0304, 0x0402, 0x1234, 0x7f00, 0x7f02, 0x7ffe, 0x8000, 0xffff];

const RECS = {
  /** Payload resized: truncated or extended (zeros, random, or the next record's bytes). */
  resize(_ctx, recs, r) {
    const i = r.int(recs.length);
    const rec = recs[i];
    const old = rec.payload.length;
    let n = r.weighted([
      [3, () => r.int(old + 1)],
      [2, () => old + r.pick([-8, -4, -1, 1, 4, 8, 16, 24])],
      [1, () => 0],
      [1, () => old + r.range(1, 4096)],
      [1, () => old * 2],
    ])();
    n = Math.max(0, Math.min(n, old + 8192));
    if (n === old) n = old + 1;
    const p = new Uint8Array(n);
    p.set(rec.payload.subarray(0, n));
    if (n > old && r.chance(0.5)) for (let j = old; j < n; j++) p[j] = r.int(256);
    recs[i] = { ...rec, payload: p, pad: undefined };
    return `resize:${kindName(rec.kind)}:${old}->${n}`;
  },
  kind(ctx, recs, r) {
    const i = r.int(recs.length);
    const old = recs[i].kind;
    const how = r.pick(['known', 'unknown', 'swap']);
    if (how === 'swap') {
      const j = r.int(recs.length);
      if (recs[j].kind === old) return null;
      recs[i] = { ...recs[i], kind: recs[j].kind };
      recs[j] = { ...recs[j], kind: old };
      return `kind:swap:${kindName(old)}<->${kindName(recs[i].kind)}`;
    }
    let k = how === 'known' ? r.pick([...KNOWN_KINDS, ...ctx.defs.keys()]) : r.pick(UNKNOWN_KINDS.filter((x) => !ctx.defs.has(x)));
    if (k === old) k = K.NOCR === old ? K.FD : K.NOCR;
    const mu = how === 'unknown' && r.chance(0.5);
    recs[i] = { ...recs[i], kind: k, flags: mu ? recs[i].flags | 1 : recs[i].flags };
    return `kind:${kindName(old)}->${kindName(k)}${mu ? '+MU' : ''}`;
  },
  flags(_ctx, recs, r) {
    const i = r.int(recs.length);
    const f = r.pick([1, 2, 0x8000, 0xffff, 1 << r.int(16)]);
    if ((recs[i].flags ^ f) === recs[i].flags) return null;
    recs[i] = { ...recs[i], flags: recs[i].flags ^ f };
    return `flags:${kindName(recs[i].kind)}^${f}`;
  },
  /** A numeric field (counts included) set to an interesting value. */
  field(ctx, recs, r) {
    const numeric = (s) => s.role !== 'strlen' && s.role !== 'raw';
    const cand = recs.map((_x, i) => i).filter((i) => slots(fieldsOf(ctx, recs[i].kind), recs[i].payload).some(numeric));
    if (!cand.length) return null;
    const i = r.pick(cand);
    const rec = (recs[i] = { ...recs[i] });
    const ss = slots(fieldsOf(ctx, rec.kind), rec.payload).filter(numeric);
    // favour counts and the fields that steer the grammar
    const steering = ss.filter(
      (s) =>
        s.role === 'count'
        || /^n[a-z]|^has|Flags$|flags$|^npages$|^start$|^end$|^addr$|^pid$|^tid$|^fd$|^nsKind$|^fdKind$|^prot$|^checksumAlgo$|^pageSize$|^tmagic$|^records$|^indexOffset$|^count$|^reserved$/.test(
          s.name,
        ),
    );
    const s = steering.length && r.chance(0.7) ? r.pick(steering) : r.pick(ss);
    const dv = edit(rec);
    const old = getSlot(dv, s);
    let v = s.size === 4 ? u32Value(r, old) : u64Value(r, old);
    if (v === old) v = s.size === 4 ? (old + 1) >>> 0 : BigInt.asUintN(64, old + 1n);
    setSlot(dv, s, v);
    return `field:${kindName(rec.kind)}.${s.name}=${v}`;
  },
  strlen(ctx, recs, r) {
    const cand = recs.map((_x, i) => i).filter((i) => slots(fieldsOf(ctx, recs[i].kind), recs[i].payload).some((s) => s.role === 'strlen'));
    if (!cand.length) return null;
    const i = r.pick(cand);
    const rec = (recs[i] = { ...recs[i] });
    const s = r.pick(slots(fieldsOf(ctx, rec.kind), rec.payload).filter((x) => x.role === 'strlen'));
    const dv = edit(rec);
    const old = dv.getUint32(s.off, true);
    let v = r.weighted([
      [3, () => r.pick([0, 0xffffffff, 0xfffffffe, 0x100000, 0x100001, 0x7fffffff, rec.payload.length])],
      [3, () => (old + r.pick([1, -1, 4, -4])) >>> 0],
      [1, () => r.u32()],
    ])();
    if (v === old) v = (old + 1) >>> 0;
    dv.setUint32(s.off, v, true);
    return `strlen:${kindName(rec.kind)}.${s.name}=${v}`;
  },
  utf8(ctx, recs, r) {
    const cand = recs.map((_x, i) => i).filter((i) => strings(fieldsOf(ctx, recs[i].kind), recs[i].payload).some((s) => s.len > 0));
    if (!cand.length) return null;
    const i = r.pick(cand);
    const rec = (recs[i] = { ...recs[i] });
    const s = r.pick(strings(fieldsOf(ctx, rec.kind), rec.payload).filter((x) => x.len > 0));
    edit(rec);
    rec.payload[s.off + r.int(s.len)] = r.pick([0x80, 0xc0, 0xff, 0xfe, 0xed]);
    return `utf8:${kindName(rec.kind)}.${s.name}`;
  },
  /** A payload byte changed (page data, registers, strings...). */
  payload(_ctx, recs, r) {
    const cand = recs.map((_x, i) => i).filter((i) => recs[i].payload.length > 0);
    const i = r.pick(cand);
    const rec = (recs[i] = { ...recs[i] });
    edit(rec);
    const at = r.int(rec.payload.length);
    rec.payload[at] ^= 1 + r.int(255);
    return `payload:${kindName(rec.kind)}@${at}`;
  },
  padding(_ctx, recs, r) {
    const cand = recs.map((_x, i) => i).filter((i) => pad8(recs[i].payload.length) > recs[i].payload.length);
    if (!cand.length) return null;
    const i = r.pick(cand);
    const n = pad8(recs[i].payload.length) - recs[i].payload.length;
    const pad = new Uint8Array(n);
    pad[r.int(n)] = 1 + r.int(255);
    recs[i] = { ...recs[i], pad };
    return `padding:${kindName(recs[i].kind)}`;
  },
  dup(_ctx, recs, r) {
    const i = r.int(nonTrailer(recs));
    const to = r.chance(0.5) ? i + 1 : r.int(recs.length);
    recs.splice(to, 0, { ...recs[i] });
    return `dup:${kindName(recs[to].kind)}`;
  },
  drop(_ctx, recs, r) {
    const i = r.int(recs.length);
    const [x] = recs.splice(i, 1);
    return `drop:${kindName(x.kind)}`;
  },
  swap(_ctx, recs, r) {
    const i = r.int(recs.length);
    const j = r.chance(0.6) ? Math.min(recs.length - 1, i + 1) : r.int(recs.length);
    if (i === j || (recs[i].kind === recs[j].kind && recs[i].payload.length === recs[j].payload.length && recs[i].csum === recs[j].csum))
      return null;
    [recs[i], recs[j]] = [recs[j], recs[i]];
    return `swap:${kindName(recs[i].kind)}<->${kindName(recs[j].kind)}`;
  },
  move(_ctx, recs, r) {
    const i = r.int(recs.length);
    const [x] = recs.splice(i, 1);
    let j = r.int(recs.length + 1);
    if (j === i) j = (j + 1) % (recs.length + 1);
    recs.splice(j, 0, x);
    return `move:${kindName(x.kind)}`;
  },
  /** A whole subtree (task, thread, MM, VMA with its pages, FD with its kinds of state) dropped, duplicated or moved. */
  subtree(ctx, recs, r) {
    const cand = recs.map((_x, i) => i).filter((i) => [K.TASK, K.THREAD, K.MM, K.VMA, K.FD].includes(recs[i].kind));
    if (!cand.length) return null;
    const i = r.pick(cand);
    const end = subtreeEnd(ctx, recs, i);
    const kind = kindName(recs[i].kind);
    const what = r.pick(['drop', 'dup', 'move']);
    const part = recs.slice(i, end);
    if (what === 'drop') recs.splice(i, end - i);
    else if (what === 'dup') recs.splice(end, 0, ...part.map((x) => ({ ...x })));
    else {
      recs.splice(i, end - i);
      const others = recs
        .map((_x, j) => j)
        .filter((j) => recs[j].kind === recs[i]?.kind || [K.TASK, K.THREAD, K.MM, K.VMA, K.INDEX, K.FD].includes(recs[j].kind));
      const to = others.length ? r.pick(others) : r.int(recs.length);
      recs.splice(to, 0, ...part);
    }
    return `subtree:${what}:${kind}`;
  },
  index(_ctx, recs, r) {
    const ix = recs.findIndex((x) => x.kind === K.INDEX);
    if (ix < 0) return null;
    const rec = (recs[ix] = { ...recs[ix] });
    const n = Math.floor((rec.payload.length - 8) / INDEX_ENTRY);
    const dv = edit(rec);
    const what = r.pick(['count', 'reserved', 'entry', 'entry', 'swap', 'truncate', 'extend']);
    if (what === 'count') {
      const o = dv.getUint32(0, true);
      let v = u32Value(r, o);
      if (v === o) v++;
      dv.setUint32(0, v >>> 0, true);
    } else if (what === 'reserved') dv.setUint32(4, 1 + r.int(0xffff), true);
    else if (what === 'entry' && n > 0) {
      const e = 8 + r.int(n) * INDEX_ENTRY;
      const f = r.pick([0, 4, 8, 16]);
      if (f < 8) {
        const o = dv.getUint32(e + f, true);
        let v = u32Value(r, o);
        if (v === o) v++;
        dv.setUint32(e + f, v >>> 0, true);
      } else {
        const o = dv.getBigUint64(e + f, true);
        let v = u64Value(r, o);
        if (v === o) v++;
        dv.setBigUint64(e + f, BigInt.asUintN(64, v), true);
      }
    } else if (what === 'swap' && n > 1) {
      const a = 8 + r.int(n) * INDEX_ENTRY,
        b2 = 8 + r.int(n) * INDEX_ENTRY;
      if (a === b2) return null;
      const t = rec.payload.slice(a, a + INDEX_ENTRY);
      rec.payload.copyWithin(a, b2, b2 + INDEX_ENTRY);
      rec.payload.set(t, b2);
    } else if (what === 'truncate' && n > 0) rec.payload = rec.payload.slice(0, rec.payload.length - INDEX_ENTRY);
    else if (what === 'extend') {
      const p = new Uint8Array(rec.payload.length + INDEX_ENTRY);
      p.set(rec.payload);
      if (n) p.set(rec.payload.subarray(8, 8 + INDEX_ENTRY), rec.payload.length);
      rec.payload = p;
    } else return null;
    return `index:${what}`;
  },
  trailer(_ctx, recs, r) {
    const t = recs.length - 1;
    if (recs[t].kind !== K.TRAILER || recs[t].payload.length !== 32) return null;
    const rec = (recs[t] = { ...recs[t] });
    const dv = edit(rec);
    const f = r.pick([0, 8, 16, 24]);
    const o = dv.getBigUint64(f, true);
    let v = f === 0 ? r.pick([0n, TRAILER_MAGIC ^ 1n, TRAILER_MAGIC ^ (1n << 56n), r.u64()]) : u64Value(r, o);
    if (v === o) v = o ^ 1n;
    dv.setBigUint64(f, v, true);
    return `trailer:${['tmagic', 'records', 'indexOffset', 'imageCsum'][f / 8]}`;
  },
  /** PAGES structure: bitmap, page count, address, flags, stored data. */
  pages(_ctx, recs, r) {
    const cand = idxOf(recs, K.PAGES);
    if (!cand.length) return null;
    const i = r.pick(cand);
    if (recs[i].payload.length < 16) return null;
    const rec = (recs[i] = { ...recs[i] });
    const dv0 = new DataView(rec.payload.buffer, rec.payload.byteOffset, rec.payload.byteLength);
    const npages = dv0.getUint32(8, true);
    const bmBytes = Math.ceil(npages / 64) * 8;
    const dataLen = rec.payload.length - 16 - bmBytes;
    // a record that is not a well-formed PAGES run (another kind renamed PAGES, a resized one): only its fields
    const wellFormed = rec.payload.length >= 16 && npages >= 1 && npages <= 1024 && dataLen >= 0 && dataLen % 4096 === 0;
    const what = r.pick(
      wellFormed
        ? [
            'bit-set',
            'bit-clear',
            'bit-past',
            'npages',
            'npages-consistent',
            'addr',
            'addr-unaligned',
            'pgflags',
            'drop-page',
            'add-page',
            'bitmap-only',
          ]
        : ['npages', 'addr', 'addr-unaligned', 'pgflags'],
    );
    const bm = rec.payload.slice(16 + dataLen);
    const setBit = (p, on) => {
      if (on) bm[p >> 3] |= 1 << (p & 7);
      else bm[p >> 3] &= ~(1 << (p & 7));
    };
    const bit = (p) => (bm[p >> 3] >> (p & 7)) & 1;
    const data = rec.payload.slice(16, 16 + dataLen);
    let fixed = rec.payload.slice(0, 16);
    const fdv = new DataView(fixed.buffer);
    let newData = data,
      newBm = bm;
    switch (what) {
      case 'bit-set': {
        const p = r.int(npages);
        if (bit(p)) return null;
        setBit(p, true);
        break;
      }
      case 'bit-clear': {
        const p = r.int(npages);
        if (!bit(p)) return null;
        setBit(p, false);
        break;
      }
      case 'bit-past': {
        if (npages % 64 === 0) return null;
        setBit(npages + r.int(bmBytes * 8 - npages), true);
        break;
      }
      case 'npages': {
        const v = u32Value(r, npages);
        if (v === npages) return null;
        fdv.setUint32(8, v, true);
        break;
      }
      case 'npages-consistent': {
        // fewer pages, bitmap and data cut to match (a valid record of another size)
        if (npages < 2) return null;
        const n2 = 1 + r.int(npages - 1);
        let stored = 0;
        for (let p = 0; p < n2; p++) stored += bit(p);
        newBm = new Uint8Array(Math.ceil(n2 / 64) * 8);
        for (let p = 0; p < n2; p++) if (bit(p)) newBm[p >> 3] |= 1 << (p & 7);
        newData = data.slice(0, stored * 4096);
        fdv.setUint32(8, n2, true);
        break;
      }
      case 'addr': {
        const o = fdv.getBigUint64(0, true);
        fdv.setBigUint64(0, BigInt.asUintN(64, o + BigInt(r.pick([4096, -4096, 0x100000, 1 << 30]))), true);
        break;
      }
      case 'addr-unaligned': {
        const o = fdv.getBigUint64(0, true);
        fdv.setBigUint64(0, o + BigInt(1 + r.int(4095)), true);
        break;
      }
      case 'pgflags':
        fdv.setUint32(12, 1 << r.int(32), true);
        break;
      case 'drop-page': {
        if (dataLen < 4096) return null;
        newData = data.slice(0, dataLen - 4096);
        break;
      }
      case 'add-page': {
        const d = new Uint8Array(dataLen + 4096);
        d.set(data);
        d.fill(0x5a, dataLen);
        newData = d;
        break;
      }
      case 'bitmap-only': {
        newBm = new Uint8Array(0);
        break;
      }
    }
    let p;
    if (wellFormed) {
      p = new Uint8Array(16 + newData.length + newBm.length);
      p.set(fixed);
      p.set(newData, 16);
      p.set(newBm, 16 + newData.length);
    } else {
      p = rec.payload.slice();
      p.set(fixed);
    }
    rec.payload = p;
    rec.pad = undefined;
    void (fixed = null);
    return `pages:${what}`;
  },
  vma(_ctx, recs, r) {
    const cand = idxOf(recs, K.VMA);
    if (!cand.length) return null;
    const i = r.pick(cand);
    const rec = (recs[i] = { ...recs[i] });
    const dv = edit(rec);
    const start = dv.getBigUint64(0, true),
      end = dv.getBigUint64(8, true);
    const what = r.pick(['swap', 'empty', 'unaligned', 'shrink', 'grow', 'huge', 'prev-overlap', 'prot']);
    switch (what) {
      case 'swap':
        dv.setBigUint64(0, end, true);
        dv.setBigUint64(8, start, true);
        break;
      case 'empty':
        dv.setBigUint64(8, start, true);
        break;
      case 'unaligned':
        dv.setBigUint64(r.pick([0, 8]), (r.chance(0.5) ? start : end) + BigInt(1 + r.int(4095)), true);
        break;
      case 'shrink':
        if (end - start <= 4096n) return null;
        dv.setBigUint64(8, end - 4096n * BigInt(1 + r.int(Number((end - start) / 4096n) - 1)), true);
        break;
      case 'grow':
        dv.setBigUint64(8, end + 4096n * BigInt(1 + r.int(1 << 20)), true);
        break;
      case 'huge':
        dv.setBigUint64(8, 0xfffffffffffff000n, true);
        break;
      case 'prev-overlap':
        dv.setBigUint64(0, start > 4096n ? start - 4096n * BigInt(1 + r.int(1 << 16)) : 0n, true);
        break;
      case 'prot':
        dv.setUint32(32, 8 << r.int(4), true);
        break;
    }
    return `vma:${what}`;
  },
  /** A field of an optional kind's record, by its name in the schema (see numberEdit, arrayEdit, stringEdit,
   *  rawEdit): one of the kinds (`only`, or any), then one of its records. */
  optional(ctx, recs, r, only) {
    const { optional } = schemaOf(ctx);
    const kinds = only !== undefined ? [only] : [...new Set(recs.filter((x) => optional.has(x.kind)).map((x) => x.kind))];
    if (!kinds.length || !recs.some((x) => x.kind === kinds[0])) return null;
    const i = r.pick(idxOf(recs, r.pick(kinds)));
    const rec = (recs[i] = { ...recs[i], pad: undefined });
    const def = ctx.defs.get(rec.kind);
    const ss = slots(def.fields, rec.payload);
    if (!ss.length) return null;
    const s = r.pick(ss);
    let d;
    if (s.role === 'field' || s.role === 'item') d = numberEdit(rec, s, ss, r);
    else if (s.role === 'count') d = arrayEdit(def, rec, s, ss, r);
    else if (s.role === 'strlen') d = stringEdit(rec, s, r);
    else d = rawEdit(rec, s, r);
    return d === null ? null : `optional:${def.name}.${d}`;
  },
  unknown(ctx, recs, r) {
    const at = 1 + r.int(recs.length - 1);
    const mu = r.chance(0.4);
    const kind = r.pick(UNKNOWN_KINDS.filter((k) => (k !== 0 || mu) && !ctx.defs.has(k)));
    const payload = Uint8Array.from({ length: r.pick([0, 1, 8, 13, 64, 300]) }, () => r.int(256));
    recs.splice(at, 0, { kind, flags: mu ? 1 : 0, payload, csum: undefined });
    return `unknown:${kindName(kind)}${mu ? '+MU' : ''}@${kindName(recs[at + 1]?.kind ?? 0)}`;
  },
  splice(ctx, recs, r) {
    const other = r.pick(ctx.bases).parsed.recs;
    const i = r.int(other.length);
    const end = r.chance(0.5) ? subtreeEnd(ctx, other, i) : i + 1;
    const at = 1 + r.int(recs.length - 1);
    recs.splice(at, r.chance(0.5) ? end - i : 0, ...other.slice(i, end).map((x) => ({ ...x })));
    return `splice:${kindName(other[i].kind)}x${end - i}`;
  },
};

// ------------------------------------------------------------------ entry

const RAW_OPS = [
  [10, 'flip'],
  [8, 'bytes'],
  [8, 'truncate'],
  [3, 'append'],
  [4, 'chunk'],
  [6, 'hdrLen'],
];
const REC_OPS = [
  [6, 'resize'],
  [6, 'kind'],
  [3, 'flags'],
  [16, 'field'],
  [5, 'strlen'],
  [2, 'utf8'],
  [4, 'payload'],
  [3, 'padding'],
  [3, 'dup'],
  [3, 'drop'],
  [3, 'swap'],
  [2, 'move'],
  [4, 'subtree'],
  [5, 'index'],
  [4, 'trailer'],
  [9, 'pages'],
  [5, 'vma'],
  [4, 'unknown'],
  [3, 'splice'],
  [6, 'optional'],
];
/** Ops whose interesting checks sit behind a consistent index: usually rebuild it. */
const WANT_INDEX = new Set(['pages', 'vma', 'subtree', 'dup', 'drop', 'swap', 'move', 'unknown', 'splice', 'resize', 'kind', 'optional']);
/** Share of the image mutants that edit a field of an optional kind of state in a base that has them. */
const OPTIONAL_SHARE = 0.15;

/**
 * One mutant of one base image, fully determined by (seed, iteration).
 * @param {{ bases: { name: string, bytes: Uint8Array, parsed: ReturnType<typeof parse> }[], defs: Map<number, { fields: any[] }> }} ctx
 * @returns {{ base: number, bytes: Uint8Array, op: string, level: 'raw'|'rec'|'full', fixIndex: boolean }}
 */
export function mutate(ctx, seed, iteration) {
  const r = rng32(seed, iteration);
  const { optionalIn } = schemaOf(ctx);
  if (optionalIn.size && r.chance(OPTIONAL_SHARE)) {
    // each optional kind as often as the others, in a base that holds it
    const kind = r.pick([...optionalIn.keys()]);
    const m = optionalMutant(ctx, r.pick(optionalIn.get(kind)), kind, r);
    if (m) return m;
  }
  const base = r.int(ctx.bases.length);
  const { bytes, parsed } = ctx.bases[base];
  for (let attempt = 0; attempt < 20; attempt++) {
    if (r.chance(0.3)) {
      const name = r.weighted(RAW_OPS);
      const m = RAW[name](bytes, parsed.recs, r);
      if (sameBytes(m.bytes, bytes)) continue;
      return { base, bytes: m.bytes, op: m.op, level: 'raw', fixIndex: false };
    }
    const recs = cloneRecs(parsed.recs);
    const nops = r.weighted([
      [8, 1],
      [2, 2],
      [1, 3],
    ]);
    const names = [];
    let ok = true;
    for (let j = 0; j < nops; j++) {
      const name = r.weighted(REC_OPS);
      let d;
      try {
        d = RECS[name](ctx, recs, r);
      } catch {
        d = null; // the operation does not apply to a record an earlier one left malformed
      }
      if (d === null || recs.length === 0) {
        ok = false;
        break;
      }
      names.push(d);
    }
    if (!ok) continue;
    let lv;
    const firstOp = names[0].split(':')[0];
    if (firstOp === 'trailer') lv = r.chance(0.7) ? { fix: 'rec' } : { fix: 'none' };
    else lv = levelOf(r, [1, 1, 3]);
    if (lv.fix === 'full' && WANT_INDEX.has(firstOp) && r.chance(0.8)) lv.fixIndex = true;
    if (firstOp === 'index' && lv.fix === 'full') lv.fixIndex = false;
    let out;
    try {
      out = build(parsed.magic, recs, lv);
    } catch {
      continue;
    }
    if (sameBytes(out, bytes)) continue;
    return { base, bytes: out, op: names.join('+'), level: LEVEL_NAME[lv.fix], fixIndex: !!lv.fixIndex };
  }
  // magic edits, as a last resort and on their own schedule
  return magicMutant(ctx, base, r);
}

/** A field of an optional kind's record changed (sometimes with a second operation), its checksums, index and
 *  trailer mostly made right: what the kind's decode and checkTask must refuse or accept identically. */
function optionalMutant(ctx, base, kind, r) {
  const { bytes, parsed } = ctx.bases[base];
  for (let attempt = 0; attempt < 10; attempt++) {
    const recs = cloneRecs(parsed.recs);
    const names = [RECS.optional(ctx, recs, r, kind)];
    if (names[0] === null) continue;
    if (r.chance(0.15)) {
      let d = null;
      try {
        d = RECS[r.pick(['optional', 'field', 'subtree', 'dup', 'drop'])](ctx, recs, r);
      } catch {
        d = null;
      }
      if (d !== null) names.push(d);
    }
    const lv = r.chance(0.9) ? { fix: 'full', fixIndex: true } : { fix: 'rec' };
    let out;
    try {
      out = build(parsed.magic, recs, lv);
    } catch {
      continue;
    }
    if (sameBytes(out, bytes)) continue;
    return { base, bytes: out, op: names.join('+'), level: LEVEL_NAME[lv.fix], fixIndex: !!lv.fixIndex };
  }
  return null;
}

function magicMutant(ctx, base, r) {
  const { parsed } = ctx.bases[base];
  const magic = parsed.magic.slice();
  const at = r.int(8);
  magic[at] ^= 1 << r.int(8);
  const full = r.chance(0.5);
  return {
    base,
    bytes: build(magic, cloneRecs(parsed.recs), { fix: full ? 'full' : 'none' }),
    op: `magic@${at}`,
    level: full ? 'full' : 'raw',
    fixIndex: false,
  };
}

/** Used on a schedule by the driver so magic edits are always represented. */
export function mutateMagic(ctx, seed, iteration) {
  const r = rng32(seed, iteration, 0x6d61);
  return magicMutant(ctx, r.int(ctx.bases.length), r);
}

export function sameBytes(a, b) {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

export { parse, build };
