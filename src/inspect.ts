/**
 * Views of an image for people and programs: the JSON document of `crimg show`
 * and the differences reported by `crimg diff`. Register names come from the
 * schema (REG_NAMES); nothing here lists them again.
 */
import type { Image } from './reader.js';
import { type Model, type Task, type Thread, type Vma, FD_KIND_NAMES, HeaderFlags, VmaFlags, Prot } from './model.js';
import { KINDS_OF } from './kinds/index.js';
import { type AnyKind, type Difference, type OwnerName, type Owners, kindValue } from './kinds/kind.js';
import { REG_NAMES, FORMAT_MAJOR, FORMAT_MINOR } from './schema.js';
import { claimRegion, releaseRegion } from './kernels/arena.js';
import { bytesEqual } from './platform.js';

export function protString(v: Vma): string {
  return `${v.prot & Prot.READ ? 'r' : '-'}${v.prot & Prot.WRITE ? 'w' : '-'}${v.prot & Prot.EXEC ? 'x' : '-'}${v.flags & VmaFlags.SHARED ? 's' : 'p'}`;
}

export function flagNames(flags: number, table: Record<string, number>): string[] {
  return Object.entries(table)
    .filter(([, b]) => flags & b)
    .map(([n]) => n.toLowerCase());
}

function u128(b: Uint8Array, off: number): bigint {
  const dv = new DataView(b.buffer, b.byteOffset + off, 16);
  return dv.getBigUint64(0, true) | (dv.getBigUint64(8, true) << 64n);
}

/** FXSAVE fields as JSON. */
export function fpuJson(fpu: Uint8Array): Record<string, unknown> {
  const dv = new DataView(fpu.buffer, fpu.byteOffset, 512);
  return {
    fcw: dv.getUint16(0, true),
    fsw: dv.getUint16(2, true),
    ftw: fpu[4],
    fop: dv.getUint16(6, true),
    rip: dv.getBigUint64(8, true),
    rdp: dv.getBigUint64(16, true),
    mxcsr: dv.getUint32(24, true),
    mxcsr_mask: dv.getUint32(28, true),
    st: Array.from({ length: 8 }, (_, i) => u128(fpu, 32 + 16 * i) & ((1n << 80n) - 1n)),
    xmm: Array.from({ length: 16 }, (_, i) => u128(fpu, 160 + 16 * i)),
  };
}

export function regsJson(th: Thread): Record<string, bigint> {
  const o: Record<string, bigint> = {};
  REG_NAMES.forEach((n, i) => {
    o[n] = th.regs[i]!;
  });
  return o;
}

function threadJson(th: Thread): Record<string, unknown> {
  const x = th.xstate;
  let xstate: Record<string, unknown> | null = null;
  if (x) {
    const dv = new DataView(x.ext.buffer, x.ext.byteOffset, x.ext.byteLength);
    xstate = {
      xcr0: x.xcr0,
      size: 512 + x.ext.length,
      xstate_bv: x.ext.length >= 8 ? dv.getBigUint64(0, true) : 0n,
      xcomp_bv: x.ext.length >= 16 ? dv.getBigUint64(8, true) : 0n,
      // upper halves of ymm0-15 (AVX component at standard offset 576)
      ymmh: x.ext.length >= 64 + 256 ? Array.from({ length: 16 }, (_, i) => u128(x.ext, 64 + 16 * i)) : [],
    };
  }
  return {
    tid: th.tid,
    state: th.state,
    regs: regsJson(th),
    fpu: fpuJson(th.fpu),
    xstate,
    sigmask: th.sigmask,
    sigpending: th.sigpending,
    rseq: th.rseq,
    ...kindsJson('thread', th, true),
  };
}

/** The values of an owner's kinds of state as `show --json` gives them, under their keys; not recorded: null
 *  (`withNull`) or left out (fds: most kinds are not for every file). */
function kindsJson<O extends OwnerName>(owner: O, o: Owners[O], withNull: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of KINDS_OF[owner]) {
    const v = kindValue(k, o);
    if (v !== undefined) out[k.key] = k.json ? k.json(v) : v;
    else if (withNull) out[k.key] = null;
  }
  return out;
}

/** The lines `show` prints for an owner's kinds of state, each with `ind` before it. */
function kindsText<O extends OwnerName>(owner: O, o: Owners[O], ind: string, out: string[]): void {
  for (const k of KINDS_OF[owner]) {
    const v = kindValue(k, o);
    if (v !== undefined) for (const line of k.text(v)) out.push(`${ind}${line}`);
  }
}

function taskJson(t: Task, img: Image | null): Record<string, unknown> {
  const st = img?.stats.tasks.find((s) => s.pid === t.pid);
  return {
    pid: t.pid,
    tgid: t.tgid,
    ppid: t.ppid,
    pgid: t.pgid,
    sid: t.sid,
    comm: t.comm,
    exe: t.exe,
    cwd: t.cwd,
    root: t.root,
    args: t.args,
    env: t.env,
    personality: t.personality,
    exitSignal: t.exitSignal,
    creds: t.creds,
    rlimits: t.rlimits,
    ns: t.ns,
    threads: t.threads.map(threadJson),
    mm: t.mm ? { ...Object.fromEntries(Object.entries(t.mm).filter(([k]) => k !== 'vmas' && k !== 'auxv')), auxv: t.mm.auxv } : null,
    vmas: (t.mm?.vmas ?? []).map((v, i) => {
      const vs = st?.vmas[i];
      return {
        start: v.start,
        end: v.end,
        prot: protString(v),
        flags: flagNames(v.flags, VmaFlags),
        pgoff: v.pgoff,
        dev: `${v.devMajor.toString(16).padStart(2, '0')}:${v.devMinor.toString(16).padStart(2, '0')}`,
        inode: v.inode,
        path: v.path,
        pages: vs?.stored ?? 0,
        zeroPages: vs?.zero ?? 0,
        totalPages: Number((v.end - v.start) / 4096n),
      };
    }),
    files: t.files.map((f) => ({
      fd: f.fd,
      kind: FD_KIND_NAMES[f.kind] ?? 'other',
      path: f.path,
      pos: f.pos,
      flags: f.flags,
      mode: f.mode,
      cloexec: f.cloexec,
      dev: `${f.devMajor}:${f.devMinor}`,
      inode: f.inode,
      size: f.size,
      ...kindsJson('fd', f, false),
    })),
    nocr: t.nocr,
    // null: not recorded (synthetic images, ELF cores)
    ...kindsJson('task', t, true),
  };
}

export function showJson(model: Model, img: Image | null): Record<string, unknown> {
  const h = model.header;
  return {
    format: { major: FORMAT_MAJOR, minor: FORMAT_MINOR, arch: 'x86_64', checksum: 'xxh3-64' },
    header: {
      crid: h.crid,
      createdNs: h.createdNs,
      created: new Date(Number(h.createdNs / 1_000_000n)).toISOString(),
      freezeNs: h.freezeNs,
      flags: flagNames(h.flags, HeaderFlags),
      tool: h.tool,
      uts: h.uts,
    },
    namespaces: model.namespaces,
    tasks: model.tasks.map((t) => taskJson(t, img)),
    stats: img
      ? {
          fileBytes: img.stats.fileBytes,
          records: img.stats.records,
          pagesStored: img.stats.pagesStored,
          pagesZero: img.stats.pagesZero,
          imageCsum: img.stats.imageCsum,
        }
      : undefined,
  };
}

const h = (v: bigint | number): string => `0x${BigInt(v).toString(16)}`;

/** The readable form of `crimg show`. */
export function showText(model: Model, img: Image | null): string {
  const out: string[] = [];
  const hd = model.header;
  out.push(
    `crimg image v${FORMAT_MAJOR}.${FORMAT_MINOR} x86_64  crid ${hd.crid}  created ${new Date(Number(hd.createdNs / 1_000_000n)).toISOString()}  [${flagNames(hd.flags, HeaderFlags).join(',')}]  by ${hd.tool}`,
  );
  out.push(
    `host: ${hd.uts.sysname} ${hd.uts.nodename} ${hd.uts.release} ${hd.uts.machine}${hd.freezeNs ? `  frozen ${(Number(hd.freezeNs) / 1e6).toFixed(1)} ms` : ''}`,
  );
  if (img)
    out.push(
      `size: ${img.stats.fileBytes} bytes, ${img.stats.records} records, ${img.stats.pagesStored} pages stored, ${img.stats.pagesZero} zero pages elided`,
    );
  if (model.namespaces.length)
    out.push(`namespaces: ${model.namespaces.map((n) => `${n.kind}:[${n.id}]${n.nodename ? `(${n.nodename})` : ''}`).join(' ')}`);
  const depth = new Map<number, number>();
  for (const t of model.tasks) {
    const d = (depth.get(t.ppid) ?? -1) + 1;
    depth.set(t.pid, d);
    const ind = '  '.repeat(d);
    out.push('');
    out.push(`${ind}task ${t.pid} (${t.comm}) ppid ${t.ppid} pgid ${t.pgid} sid ${t.sid} uid ${t.creds.uid} exe ${t.exe} cwd ${t.cwd}`);
    for (const th of t.threads) {
      out.push(`${ind}  thread ${th.tid}${th.state ? ` [${th.state}]` : ''}`);
      const regs = REG_NAMES.map((n, i) => `${n.padStart(8)}=${th.regs[i]!.toString(16).padStart(16, '0')}`);
      for (let i = 0; i < regs.length; i += 3) out.push(`${ind}    ${regs.slice(i, i + 3).join(' ')}`);
      const f = fpuJson(th.fpu);
      out.push(
        `${ind}    fcw=${h(f.fcw as number)} mxcsr=${h(f.mxcsr as number)} xcr0=${th.xstate ? h(th.xstate.xcr0) : '-'} sigmask=${h(th.sigmask)}`,
      );
      (f.xmm as bigint[]).forEach((x, i) => {
        if (x) out.push(`${ind}    xmm${i}=${x.toString(16).padStart(32, '0')}`);
      });
      kindsText('thread', th, `${ind}    `, out);
    }
    const st = img?.stats.tasks.find((s) => s.pid === t.pid);
    (t.mm?.vmas ?? []).forEach((v, i) => {
      const vs = st?.vmas[i];
      out.push(
        `${ind}  ${v.start.toString(16).padStart(12, '0')}-${v.end.toString(16).padStart(12, '0')} ${protString(v)} ${(v.pgoff * 4096n).toString(16).padStart(8, '0')} ${String(v.devMajor).padStart(2, '0')}:${String(v.devMinor).padStart(2, '0')} ${String(v.inode).padEnd(8)} ${(v.path ?? '').padEnd(40)} ${vs ? `${vs.stored} stored, ${vs.zero} zero` : ''}`,
      );
    });
    for (const f of t.files) {
      out.push(
        `${ind}  fd ${String(f.fd).padStart(3)} ${(FD_KIND_NAMES[f.kind] ?? 'other').padEnd(9)} pos ${f.pos} flags ${h(f.flags)} ${f.path}`,
      );
      kindsText('fd', f, `${ind}         `, out);
    }
    kindsText('task', t, `${ind}  `, out);
    for (const r of t.nocr) out.push(`${ind}  nocr ${r.code} (task ${r.pid}): ${r.text}`);
  }
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------- diff

export type { Difference };

const KIND_KEYS: Record<OwnerName, Set<string>> = {
  task: new Set(KINDS_OF.task.map((k) => k.key)),
  thread: new Set(KINDS_OF.thread.map((k) => k.key)),
  fd: new Set(KINDS_OF.fd.map((k) => k.key)),
};

/** The owner's fields without its kinds of state (those are compared by kindsDiff). */
function withoutKinds(owner: OwnerName, o: object, skip: string[] = []): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => !KIND_KEYS[owner].has(k) && !skip.includes(k)));
}

function defaultKindDiff(k: AnyKind, a: unknown, b: unknown, what: string): Difference[] {
  if (a === undefined && b === undefined) return [];
  const ja = a === undefined ? null : JSON.stringify(k.json ? k.json(a) : a, big);
  const jb = b === undefined ? null : JSON.stringify(k.json ? k.json(b) : b, big);
  if (ja === jb && (a === undefined || !hasBytesDiff(a, b))) return [];
  return [{ what, a: a ?? null, b: b ?? null }];
}

/** Whether two values differ in a byte array JSON does not show in full (pipe and socket data). */
function hasBytesDiff(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array || b instanceof Uint8Array) return !(a instanceof Uint8Array && b instanceof Uint8Array && bytesEqual(a, b));
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return false;
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (hasBytesDiff((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key])) return true;
  }
  return false;
}

/** Differences in an owner's kinds of state. */
function kindsDiff<O extends OwnerName>(owner: O, a: Owners[O], b: Owners[O], prefix: string, out: Difference[]): void {
  for (const k of KINDS_OF[owner]) {
    const va = kindValue(k, a),
      vb = kindValue(k, b);
    const what = `${prefix} ${k.label}`;
    out.push(...(k.diff ? k.diff(va, vb, what) : defaultKindDiff(k, va, vb, what)));
  }
}

function cmpObj(prefix: string, a: Record<string, unknown>, b: Record<string, unknown>, out: Difference[], skip: string[] = []): void {
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (skip.includes(key)) continue;
    const x = a[key],
      y = b[key];
    if (x instanceof Uint8Array || y instanceof Uint8Array) {
      if (!(x instanceof Uint8Array && y instanceof Uint8Array && bytesEqual(x, y))) out.push({ what: `${prefix}.${key}`, a: x, b: y });
    } else if (typeof x === 'object' && x !== null && typeof y === 'object' && y !== null && !Array.isArray(x)) {
      cmpObj(`${prefix}.${key}`, x as Record<string, unknown>, y as Record<string, unknown>, out);
    } else if (JSON.stringify(x, big) !== JSON.stringify(y, big)) {
      out.push({ what: `${prefix}.${key}`, a: x, b: y });
    }
  }
}
const big = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v);

export interface DiffOptions {
  /** Header fields to ignore (default: none). */
  ignoreHeader?: string[];
  /** Compare page contents (default true). */
  pages?: boolean;
}

/** Differences between two images: header, tasks, registers by name, VMAs, page contents by address range, files. */
export function diffImages(A: Image, B: Image, opts: DiffOptions = {}): Difference[] {
  const out: Difference[] = [];
  const a = A.model,
    b = B.model;
  cmpObj(
    'header',
    a.header as unknown as Record<string, unknown>,
    b.header as unknown as Record<string, unknown>,
    out,
    opts.ignoreHeader ?? [],
  );
  if (JSON.stringify(a.namespaces, big) !== JSON.stringify(b.namespaces, big))
    out.push({ what: 'namespaces', a: a.namespaces, b: b.namespaces });
  // Tasks pair by pid; those left over pair in tree order when both sides have as many (a restored
  // process has a new pid: its differences then show as pid fields, not as absent/present tasks).
  const taskPairs = pairUp(a.tasks, b.tasks, (t) => t.pid);
  for (const [ta, tb] of taskPairs) {
    if (!tb) {
      out.push({ what: `task ${ta!.pid}`, a: 'present', b: 'absent' });
      continue;
    }
    if (!ta) {
      out.push({ what: `task ${tb.pid}`, a: 'absent', b: 'present' });
      continue;
    }
    const p = ta.pid === tb.pid ? `task ${ta.pid}` : `task ${ta.pid}/${tb.pid}`;
    const strip = (t: Task): Record<string, unknown> => withoutKinds('task', t, ['threads', 'mm', 'files', 'nocr']);
    cmpObj(p, strip(ta), strip(tb), out);
    for (const [th, o] of pairUp(ta.threads, tb.threads, (t) => t.tid)) {
      if (!o) {
        out.push({ what: `${p} thread ${th!.tid}`, a: 'present', b: 'absent' });
        continue;
      }
      if (!th) {
        out.push({ what: `${p} thread ${o.tid}`, a: 'absent', b: 'present' });
        continue;
      }
      if (th.tid !== o.tid) out.push({ what: `${p} thread ${th.tid} tid`, a: th.tid, b: o.tid });
      REG_NAMES.forEach((n, i) => {
        if (th.regs[i] !== o.regs[i]) out.push({ what: `${p} thread ${th.tid} ${n}`, a: th.regs[i], b: o.regs[i] });
      });
      cmpObj(`${p} thread ${th.tid} fpu`, fpuJson(th.fpu), fpuJson(o.fpu), out);
      if (!bytesEqual(th.fpu, o.fpu)) {
        if (!out.some((d) => d.what.startsWith(`${p} thread ${th.tid} fpu`)))
          out.push({ what: `${p} thread ${th.tid} fpu (reserved bytes)`, a: 'differs', b: 'differs' });
      }
      const xa = th.xstate,
        xb = o.xstate;
      if (!!xa !== !!xb || (xa && xb && (xa.xcr0 !== xb.xcr0 || !bytesEqual(xa.ext, xb.ext)))) {
        out.push({
          what: `${p} thread ${th.tid} xstate`,
          a: xa ? `xcr0 0x${xa.xcr0.toString(16)}, ${xa.ext.length + 512} bytes` : null,
          b: xb ? `xcr0 0x${xb.xcr0.toString(16)}, ${xb.ext.length + 512} bytes` : null,
        });
      }
      for (const key of ['sigmask', 'sigpending', 'state'] as const)
        if (th[key] !== o[key]) out.push({ what: `${p} thread ${th.tid} ${key}`, a: th[key], b: o[key] });
      if (JSON.stringify(th.rseq, big) !== JSON.stringify(o.rseq, big))
        out.push({ what: `${p} thread ${th.tid} rseq`, a: th.rseq, b: o.rseq });
      kindsDiff('thread', th, o, `${p} thread ${th.tid}`, out);
    }
    if (ta.mm && tb.mm) {
      const { vmas: va, ...ma } = ta.mm;
      const { vmas: vb, ...mb } = tb.mm;
      cmpObj(`${p} mm`, ma as unknown as Record<string, unknown>, mb as unknown as Record<string, unknown>, out);
      const vbm = new Map(vb.map((v) => [v.start, v]));
      for (const v of va) {
        const o = vbm.get(v.start);
        const name = `${p} vma ${v.start.toString(16)}`;
        if (!o) {
          out.push({ what: name, a: `${protString(v)} ${v.path ?? ''}`, b: 'absent' });
          continue;
        }
        const { pages: _pa, ...ra } = v;
        const { pages: _pb, ...rb } = o;
        cmpObj(name, ra as unknown as Record<string, unknown>, rb as unknown as Record<string, unknown>, out);
        if (opts.pages !== false && v.end === o.end) diffPages(A, B, ta.pid, v, o, out);
      }
      for (const v of vb)
        if (!va.some((x) => x.start === v.start))
          out.push({ what: `${p} vma ${v.start.toString(16)}`, a: 'absent', b: `${protString(v)} ${v.path ?? ''}` });
    } else if (!!ta.mm !== !!tb.mm) out.push({ what: `${p} mm`, a: !!ta.mm, b: !!tb.mm });
    const fb = new Map(tb.files.map((f) => [f.fd, f]));
    for (const f of ta.files) {
      const o = fb.get(f.fd);
      if (!o) out.push({ what: `${p} fd ${f.fd}`, a: f.path, b: 'absent' });
      else {
        cmpObj(`${p} fd ${f.fd}`, withoutKinds('fd', f), withoutKinds('fd', o), out);
        kindsDiff('fd', f, o, `${p} fd ${f.fd}`, out);
      }
    }
    for (const f of tb.files)
      if (!fb.has(f.fd) || !ta.files.some((x) => x.fd === f.fd))
        if (!ta.files.some((x) => x.fd === f.fd)) out.push({ what: `${p} fd ${f.fd}`, a: 'absent', b: f.path });
    if (JSON.stringify(ta.nocr) !== JSON.stringify(tb.nocr)) out.push({ what: `${p} nocr`, a: ta.nocr, b: tb.nocr });
    kindsDiff('task', ta, tb, p, out);
  }
  return out;
}

/** Pairs of items with equal keys; the unmatched ones pair in order when both sides have the same
 *  number of them, otherwise they pair with undefined. */
function pairUp<T>(as: readonly T[], bs: readonly T[], key: (x: T) => number): [T | undefined, T | undefined][] {
  const bk = new Map(bs.map((x) => [key(x), x]));
  const ak = new Set(as.map(key));
  const pairs: [T | undefined, T | undefined][] = [];
  const restA: T[] = [];
  for (const x of as) {
    const y = bk.get(key(x));
    if (y) pairs.push([x, y]);
    else restA.push(x);
  }
  const restB = bs.filter((y) => !ak.has(key(y)));
  if (restA.length === restB.length) restA.forEach((x, i) => pairs.push([x, restB[i]]));
  else {
    for (const x of restA) pairs.push([x, undefined]);
    for (const y of restB) pairs.push([undefined, y]);
  }
  return pairs;
}

function diffPages(A: Image, B: Image, pid: number, va: Vma, vb: Vma, out: Difference[]): void {
  const k = A.k;
  const CH = 256;
  const total = Number((va.end - va.start) / 4096n);
  const ra = claimRegion(k, CH * 4096);
  const rb = claimRegion(B.k, CH * 4096);
  try {
    let runStart = -1;
    const flush = (end: number): void => {
      if (runStart >= 0) {
        const lo = va.start + BigInt(runStart) * 4096n,
          hi = va.start + BigInt(end) * 4096n;
        out.push({ what: `task ${pid} memory 0x${lo.toString(16)}-0x${hi.toString(16)}`, a: `${end - runStart} pages`, b: 'differ' });
        runStart = -1;
      }
    };
    for (let p = 0; p < total; p += CH) {
      const n = Math.min(CH, total - p);
      A.readVmaPages(va, ra, p, n);
      B.readVmaPages(vb, rb, p, n);
      const ma = k.u8().subarray(ra, ra + n * 4096);
      const mb = B.k.u8().subarray(rb, rb + n * 4096);
      for (let i = 0; i < n; i++) {
        const same = bytesEqual(ma.subarray(i * 4096, (i + 1) * 4096), mb.subarray(i * 4096, (i + 1) * 4096));
        if (!same && runStart < 0) runStart = p + i;
        if (same) flush(p + i);
      }
    }
    flush(total);
  } finally {
    releaseRegion(k, ra);
    releaseRegion(B.k, rb);
  }
}
