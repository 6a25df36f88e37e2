/**
 * CRIU image directories. A real program (test/progs/regs-threads.c: known callee-saved
 * and vector registers in 4 threads, known memory patterns, a mapped open file) is dumped
 * with `crimg dump`; the image and a multi-task `crimg gen` image are exported with
 * `crimg convert --to criu`. CRIU's own decoder (`crit`, from the criu package) must decode
 * every file, and what it shows (registers, xmm/ymm, VMAs, page contents) must be the
 * crimg image's. The directory converts back to an image whose model equals the original
 * except for what CRIU does not carry (docs/CRIU.md). Damaged directories are refused
 * with BAD_CRIU / TRUNCATED, the file name and the byte offset.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crimg } from './helpers/cli.js';
import { flatten, rng } from './helpers/models.js';
import { type Running, GPR_NAMES, anonBytes, compileProg, gprValue, have, patternBytes, startProg, zmmQword } from './helpers/elf-prog.js';
import {
  type Model,
  type Task,
  type Vma,
  CrimgError,
  FdKind,
  NS_KINDS,
  VmaFlags,
  fromCriuImages,
  isCriuDir,
  kernels,
  openImage,
  toCriuImages,
} from '../src/index.js';
import { claimRegion, releaseRegion } from '../src/kernels/arena.js';
import { imageBytes } from '../src/criu/img.js';
import { decodeMessage, encodeMessage } from '../src/criu/pb.js';
import { intelXsaveSize } from '../src/cpu/xsave.js';
import { CRIU_KINDS, CRIU_UNMAPPED } from '../src/criu/kind-map.js';
import { RECORDS } from '../src/schema.js';
import { KINDS } from '../src/kinds/index.js';

const NTHREADS = 4;
let dir: string;
let prog: Running | undefined;
let liveImg: string;
let liveDir: string;
let genImg: string;
let genDir: string;
let dataFile: string;
const HAVE_CRIT = have('crit');

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-criu-'));
  try {
    const bin = compileProg(dir);
    dataFile = path.join(dir, 'data.bin');
    fs.writeFileSync(dataFile, patternBytes(4, 5 * 4096 + 123));
    prog = await startProg(bin, [dataFile, String(NTHREADS)]);
    liveImg = path.join(dir, 'live.crimg');
    // --force: the test runner holds the other end of the program's stdout pipe
    const d = crimg(['dump', String(prog.ready.pid), '-o', liveImg, '--force']);
    expect(d.code, d.stderr).toBe(0);
    liveDir = path.join(dir, 'live.criu');
    const c = crimg(['convert', liveImg, '-o', liveDir, '--to', 'criu', '--json']);
    expect(c.code, c.stderr).toBe(0);
    genImg = path.join(dir, 'gen.crimg');
    const g = crimg(['gen', '-o', genImg, '--seed', '5', '--size', '6MiB', '--tasks', '3', '--threads', '3']);
    expect(g.code, g.stderr).toBe(0);
    genDir = path.join(dir, 'gen.criu');
    const c2 = crimg(['convert', genImg, '-o', genDir, '--to', 'criu']);
    expect(c2.code, c2.stderr).toBe(0);
  } catch (e) {
    prog?.kill();
    throw e;
  }
}, 180_000);

afterAll(async () => {
  if (prog) {
    prog.kill();
    await prog.exited;
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ helpers

// biome-ignore lint/suspicious/noExplicitAny: crit's JSON has no types here; the tests read it field by field
type Json = any;

/** crit's JSON of one image file (--pretty: 64-bit fields as "0x" strings). */
function crit(file: string): Json {
  const r = spawnSync('crit', ['decode', '-i', file, '--pretty'], { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`crit decode ${path.basename(file)} failed (${r.status}): ${r.stderr}`);
  return parseBig(r.stdout);
}
/** JSON with integers past 2^53 kept exact (as strings). */
function parseBig(text: string): Json {
  return JSON.parse(text.replace(/(?<=[\s[:,])(\d{16,})(?=[\s,\]}])/g, '"$1"'));
}
/**
 * Decode many files in one Python process with pycriu, the library crit is a command line for, and encode
 * them again: [file, entries] when pycriu's encoding is byte for byte the file, else [file, error].
 */
function critAll(files: string[]): [string, number | string][] {
  const py = [
    'import io, json, sys, pycriu',
    'out = []',
    'for f in sys.argv[1:]:',
    '    try:',
    '        raw = open(f, "rb").read()',
    '        n = len(pycriu.images.load(io.BytesIO(raw), pretty=True)["entries"])',
    '        again = io.BytesIO()',
    '        pycriu.images.dump(pycriu.images.load(io.BytesIO(raw)), again)',
    '        out.append([f, n if again.getvalue() == raw else "pycriu encodes the decoded entries differently"])',
    '    except Exception as e: out.append([f, "%s: %s" % (type(e).__name__, e)])',
    'print(json.dumps(out))',
  ].join('\n');
  // the interpreter crit runs under (its #! line): pycriu is installed for that one
  const critBin = spawnSync('sh', ['-c', 'command -v crit'], { encoding: 'utf8' }).stdout.trim();
  const python = /^#!\s*(\S+)/.exec(fs.readFileSync(critBin, 'utf8'))?.[1] ?? 'python3';
  const r = spawnSync(python, ['-c', py, ...files], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`pycriu failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}
function critX(d: string, what: string): string {
  const r = spawnSync('crit', ['x', d, what], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`crit x ${what} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}
const big = (v: unknown): bigint => BigInt(v as string | number);
const hex = (v: bigint): string => `0x${v.toString(16)}`;

function withModel<T>(img: string, fn: (m: Model) => T): T {
  const i = openImage(img);
  try {
    return fn(i.model);
  } finally {
    i.close();
  }
}

function withRegion<T>(fn: (dst: number) => T): T {
  const k = kernels();
  const r = claimRegion(k, 64 << 20);
  try {
    return fn(r);
  } finally {
    releaseRegion(k, r);
  }
}

const PSEUDO: [number, string][] = [
  [VmaFlags.VSYSCALL, '[vsyscall]'],
  [VmaFlags.VDSO, '[vdso]'],
  [VmaFlags.VVAR, '[vvar]'],
  [VmaFlags.STACK, '[stack]'],
  [VmaFlags.HEAP, '[heap]'],
];
const isFile = (v: Vma): boolean =>
  v.path !== null && v.path.length > 0 && !(v.flags & VmaFlags.ANON) && !(v.path.startsWith('[') && v.path.endsWith(']'));

/** What a model looks like after a trip through CRIU images: the fields CRIU does not carry set as the import sets them. */
function afterCriu(m: Model): Model {
  const pids = new Set(m.tasks.map((t) => t.pid));
  return {
    header: {
      crid: 0n,
      createdNs: (m.header.createdNs / 1000n) * 1000n,
      flags: 0,
      tool: 'crimg (from CRIU images)',
      freezeNs: 0n,
      uts: { sysname: 'Linux', nodename: '', release: '', version: '', machine: 'x86_64', domainname: '' },
    },
    namespaces: m.tasks
      .flatMap((t) => NS_KINDS.map((kind) => ({ kind, id: t.ns[kind] })))
      .filter((n, i, all) => n.id > 0n && all.findIndex((x) => x.kind === n.kind && x.id === n.id) === i)
      .map((n) => {
        const o = m.namespaces.find((x) => x.kind === n.kind && x.id === n.id);
        return o?.nodename !== undefined || o?.domainname !== undefined
          ? { ...n, nodename: o.nodename ?? '', domainname: o.domainname ?? '' }
          : n;
      }),
    tasks: m.tasks.map((t): Task => {
      const main = t.threads.find((th) => th.tid === t.pid)!;
      const threads = [main, ...t.threads.filter((th) => th !== main)].map((th) => ({
        ...th,
        state: th === main && ['T', 't', 'Z'].includes(th.state) ? (th.state === 'Z' ? 'Z' : 'T') : '',
        rseq: th.rseq ? { ...th.rseq, flags: 0 } : null,
        futex: th.futex && (th.futex.clearChildTid || th.futex.robustHead || th.futex.robustLen) ? th.futex : undefined,
      }));
      const task: Task = {
        ...t,
        procAttrs: undefined, // PROC_ATTRS: not mapped (CRIU_UNMAPPED)
        tgid: t.pid,
        ppid: pids.has(t.ppid) && t.ppid !== t.pid ? t.ppid : 0,
        args: [],
        env: [],
        exitSignal: 17,
        creds: { ...t.creds, capAmb: 0n, noNewPrivs: 0 },
        threads,
        nocr: [],
        files: t.files
          .filter((f) => f.kind !== FdKind.OTHER || f.path.startsWith('/'))
          .map((f) => ({ ...f, devMajor: 0, devMinor: 0, inode: 0n })),
        mm: t.mm
          ? {
              ...t.mm,
              vmas: t.mm.vmas.map((v) => ({
                ...v,
                devMajor: 0,
                devMinor: 0,
                inode: v.flags & VmaFlags.SHARED && !isFile(v) ? v.inode : 0n,
                path: isFile(v) ? v.path : (PSEUDO.find(([f]) => v.flags & f)?.[1] ?? null),
                pages: v.flags & (VmaFlags.VSYSCALL | VmaFlags.VVAR) ? { runs: () => [], read: v.pages.read.bind(v.pages) } : v.pages,
              })),
            }
          : null,
      };
      if (!t.sigactions) delete task.sigactions;
      if (!t.itimers) delete task.itimers;
      return task;
    }),
  };
}

// ------------------------------------------------------------------ crit reads what crimg writes

describe('crimg image -> CRIU images, read by crit', () => {
  it('the directory is detected by its inventory.img magic', () => {
    expect(isCriuDir(liveDir)).toBe(true);
    expect(isCriuDir(dir)).toBe(false);
    expect(isCriuDir(liveImg)).toBe(false);
    const names = fs.readdirSync(liveDir).sort();
    const pid = prog!.ready.pid;
    for (const n of [
      'inventory.img',
      'pstree.img',
      `core-${pid}.img`,
      `mm-${pid}.img`,
      `pagemap-${pid}.img`,
      'pages-1.img',
      `ids-${pid}.img`,
      `creds-${pid}.img`,
      `fs-${pid}.img`,
      'fdinfo-1.img',
      'files.img',
    ]) {
      expect(names).toContain(n);
    }
    for (const tid of prog!.ready.tids) expect(names).toContain(`core-${tid}.img`);
    expect(names.filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it.runIf(HAVE_CRIT)("CRIU's decoder reads every file of both directories, and its encoder writes the same bytes", () => {
    const files = [liveDir, genDir].flatMap((d) =>
      fs
        .readdirSync(d)
        .filter((f) => !f.startsWith('pages-'))
        .map((f) => path.join(d, f)),
    );
    const res = critAll(files);
    expect(res.filter(([, n]) => typeof n !== 'number')).toEqual([]);
    for (const [f, n] of res) expect(n, f).toBeGreaterThan(path.basename(f).startsWith('fdinfo') ? -1 : 0);
    expect(res.length).toBeGreaterThan(30);
    // and the crit command line itself, on one file of each kind
    for (const f of [
      'inventory.img',
      'pstree.img',
      'files.img',
      `core-${prog!.ready.pid}.img`,
      `pagemap-${prog!.ready.pid}.img`,
      `fs-${prog!.ready.pid}.img`,
      `ids-${prog!.ready.pid}.img`,
      `creds-${prog!.ready.pid}.img`,
    ]) {
      expect(crit(path.join(liveDir, f)).entries.length, f).toBeGreaterThan(0);
    }
  });

  it.runIf(HAVE_CRIT)("registers, xmm and ymm of every thread are the program's (crit decode core-TID.img)", () => {
    const r = prog!.ready;
    withModel(liveImg, (m) => {
      const task = m.tasks[0]!;
      r.tids.forEach((tid, t) => {
        const j = crit(path.join(liveDir, `core-${tid}.img`)).entries[0];
        expect(j.mtype).toBe('X86_64');
        const gp = j.thread_info.gpregs;
        const crimgName: Record<string, string> = { rbx: 'bx', rbp: 'bp', r12: 'r12', r13: 'r13', r14: 'r14', r15: 'r15' };
        GPR_NAMES.forEach((name, k) => expect(big(gp[crimgName[name]!]), `thread ${t} ${name}`).toBe(gprValue(t, k)));
        const th = task.threads.find((x) => x.tid === tid)!;
        const R = { rip: 16, rsp: 19, fs_base: 21 };
        expect(big(gp.ip)).toBe(th.regs[R.rip]);
        expect(big(gp.sp)).toBe(th.regs[R.rsp]);
        expect(big(gp.fs_base)).toBe(th.regs[R.fs_base]);
        expect(gp.fs_base).not.toBe('0x0');
        const fp = j.thread_info.fpregs;
        const w = (a: number[], i: number): bigint => BigInt(a[i]!) | (BigInt(a[i + 1]!) << 32n);
        for (let k = 0; k < 16; k++) {
          expect(w(fp.xmm_space, 4 * k), `thread ${t} xmm${k} low`).toBe(zmmQword(t, k, 0));
          expect(w(fp.xmm_space, 4 * k + 2), `thread ${t} xmm${k} high`).toBe(zmmQword(t, k, 1));
        }
        if (r.avx) {
          for (let k = 0; k < 16; k++) expect(w(fp.xsave.ymmh_space, 4 * k), `thread ${t} ymm${k} q2`).toBe(zmmQword(t, k, 2));
        }
        if (r.avx512) {
          // zmm_upper: bits 256..511 of zmm0-15, 4 qwords each
          for (let k = 0; k < 16; k++) expect(big(fp.xsave.zmm_upper[4 * k + 1]), `thread ${t} zmm${k} q5`).toBe(zmmQword(t, k, 5));
        }
        if (th.xstate) expect(w(fp.padding, 12), 'XCR0 in the sw_reserved word').toBe(th.xstate.xcr0);
        if (th.futex) {
          expect(big(j.thread_info.clear_tid_addr)).toBe(th.futex.clearChildTid);
          expect(big(j.thread_core.futex_rla)).toBe(th.futex.robustHead);
          expect(BigInt(j.thread_core.futex_rla_len)).toBe(th.futex.robustLen);
          expect(th.futex.robustHead).not.toBe(0n);
        }
        expect(big(j.thread_core.blk_sigset)).toBe(th.sigmask);
        if (tid === r.pid) expect(j.tc.comm).toBe('regs-threads');
        else expect(j.tc).toBeUndefined();
      });
    });
  });

  it.runIf(HAVE_CRIT)("VMAs, the auxiliary vector and the mm fields are the image's (crit decode mm-PID.img, crit x mems)", () => {
    withModel(liveImg, (m) => {
      const t = m.tasks[0]!;
      const j = crit(path.join(liveDir, `mm-${t.pid}.img`)).entries[0];
      expect(j.vmas.map((v: Json) => [big(v.start), big(v.end)])).toEqual(t.mm!.vmas.map((v) => [v.start, v.end]));
      expect(big(j.mm_brk)).toBe(t.mm!.brk);
      expect(big(j.mm_arg_start)).toBe(t.mm!.argStart);
      expect(j.mm_saved_auxv.map(big).slice(0, t.mm!.auxv.length)).toEqual(t.mm!.auxv);
      const file = j.vmas.find((v: Json) => big(v.start) === prog!.ready.file);
      expect(file.status).toContain('VMA_FILE_PRIVATE');
      const mems = critX(liveDir, 'mems');
      expect(mems).toContain(`${prog!.ready.file.toString(16)}-`);
      expect(mems).toMatch(new RegExp(`${prog!.ready.file.toString(16)}-[0-9a-f]+\\s+r-- ${dataFile.replace(/[.]/g, '\\.')}`));
      expect(mems).toContain('[stack]');
      expect(mems).toContain('[vdso]');
      expect(critX(liveDir, 'ps')).toMatch(new RegExp(`${t.pid}\\s+\\d+\\s+\\d+\\s+regs-threads`));
      const fds = critX(liveDir, 'fds');
      expect(fds).toContain(`3: ${dataFile}`);
      expect(fds).toMatch(/cwd: \//);
    });
  });

  it.runIf(HAVE_CRIT)("page contents through pagemap-PID.img and pages-1.img are the program's memory", () => {
    const r = prog!.ready;
    const pm = crit(path.join(liveDir, `pagemap-${r.pid}.img`)).entries;
    expect(pm[0].pages_id).toBe(1);
    const pages = fs.readFileSync(path.join(liveDir, 'pages-1.img'));
    // address -> bytes, through the pagemap (absent pages read as zero, as CRIU restores anonymous memory)
    const read = (addr: bigint, len: number): Buffer => {
      const out = Buffer.alloc(len);
      let off = 0;
      for (const e of pm.slice(1)) {
        const a = big(e.vaddr);
        const n = BigInt(e.nr_pages) * 4096n;
        expect(e.flags).toBe('PE_PRESENT');
        const lo = a > addr ? a : addr,
          hi = a + n < addr + BigInt(len) ? a + n : addr + BigInt(len);
        if (lo < hi) pages.copy(out, Number(lo - addr), off + Number(lo - a), off + Number(hi - a));
        off += Number(n);
      }
      expect(off).toBe(pages.length);
      return out;
    };
    expect(read(r.data, 3 * 4096).equals(patternBytes(1, 3 * 4096))).toBe(true);
    expect(read(r.heap, 5 * 4096).equals(patternBytes(2, 5 * 4096))).toBe(true);
    expect(read(r.anon, 8 * 4096).equals(anonBytes())).toBe(true);
  });

  it('zero pages are holes of pages-N.img (a sparse file)', () => {
    const st = fs.statSync(path.join(genDir, 'pages-1.img'));
    expect(st.blocks * 512).toBeLessThan(st.size);
  });
});

// ------------------------------------------------------------------ back into crimg

describe('CRIU images -> crimg image', () => {
  it('a live dump comes back equal except for what CRIU does not carry', () => {
    const out = path.join(dir, 'live-back.crimg');
    const r = crimg(['convert', liveDir, '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ from: 'criu', to: 'crimg', tasks: 1, threads: NTHREADS });
    expect(crimg(['verify', out]).code).toBe(0);
    const k = kernels();
    withModel(liveImg, (orig) =>
      withModel(out, (back) =>
        withRegion((dst) => {
          expect(flatten(back, k, dst)).toEqual(flatten(afterCriu(orig), k, dst));
          // and the memory a reader sees: the program's patterns
          expect(back.tasks[0]!.threads.length).toBe(NTHREADS);
        }),
      ),
    );
    const rd = crimg(['read', out, '--pid', String(prog!.ready.pid), '--addr', hex(prog!.ready.anon), '--len', String(8 * 4096)]);
    expect(rd.code, rd.stderr).toBe(0);
    expect(rd.out.equals(anonBytes())).toBe(true);
  });

  it('a generated three-task image comes back equal (library: fromCriuImages)', () => {
    const k = kernels();
    const c = fromCriuImages(genDir);
    try {
      withModel(genImg, (orig) =>
        withRegion((dst) => {
          expect(orig.tasks.length).toBe(3);
          expect(c.model.tasks.map((t) => t.ppid)).toEqual([0, orig.tasks[1]!.ppid, orig.tasks[2]!.ppid]);
          expect(orig.tasks[1]!.ppid).toBe(orig.tasks[0]!.pid);
          expect(flatten(c.model, k, dst)).toEqual(flatten(afterCriu(orig), k, dst));
        }),
      );
    } finally {
      c.close();
    }
  });

  it('CRIU -> crimg -> CRIU gives the same files (except pages-N.img holes and times)', async () => {
    const back = path.join(dir, 'gen-back.crimg');
    expect(crimg(['convert', genDir, '-o', back]).code).toBe(0);
    const again = path.join(dir, 'gen-again.criu');
    const i = openImage(back);
    try {
      await toCriuImages(i, again);
    } finally {
      i.close();
    }
    for (const f of fs.readdirSync(genDir)) {
      expect(fs.readFileSync(path.join(again, f)).equals(fs.readFileSync(path.join(genDir, f))), f).toBe(true);
    }
    expect(fs.readdirSync(again).sort()).toEqual(fs.readdirSync(genDir).sort());
  });
});

// ------------------------------------------------------------------ protobuf codec

describe('POSIX timers', () => {
  it('go to task_timers_entry.posix (crit decodes them) and come back the same', async () => {
    const { generate } = await import('../src/gen/generate.js');
    const model = generate({ seed: 3, size: 256 * 1024, tasks: 1, threads: 2 });
    const t = model.tasks[0]!;
    const worker = t.threads[1]!.tid;
    t.itimers = [{ which: 0, intervalUs: 20_000n, valueUs: 5_000n }];
    t.posixTimers = [
      { id: 0, clock: 1, notify: 0, notifyTid: 0, signo: 10, sigevValue: 0x5eedn, intervalNs: 10_000_000n, valueNs: 3_000_000n },
      { id: 1, clock: -6, notify: 1, notifyTid: 0, signo: 0, sigevValue: 0n, intervalNs: 0n, valueNs: 2_500_000_000n },
      { id: 3, clock: 7, notify: 4, notifyTid: worker, signo: 12, sigevValue: 77n, intervalNs: 15_000_000n, valueNs: 0n },
    ];
    const out = path.join(dir, 'ptimers.criu');
    await toCriuImages(model, out);
    if (HAVE_CRIT) {
      const posix = crit(path.join(out, `core-${t.pid}.img`)).entries[0].tc.timers.posix as Json[];
      expect(posix.map((p) => [p.it_id, p.clock_id, p.si_signo, p.it_sigev_notify, p.notify_thread_id ?? 0])).toEqual([
        [0, 1, 10, 0, 0],
        [1, 0xfffffffa, 0, 1, 0],
        [3, 7, 12, 4, worker],
      ]);
    }
    const back = fromCriuImages(out);
    try {
      expect(back.model.tasks[0]!.posixTimers).toEqual(t.posixTimers);
      expect(back.model.tasks[0]!.itimers).toEqual(t.itimers);
    } finally {
      back.close();
    }
  });
});

describe('file locks', () => {
  it('go to filelocks.img (crit decodes them) and come back the same', async () => {
    const { generate } = await import('../src/gen/generate.js');
    const model = generate({ seed: 4, size: 256 * 1024, tasks: 1, files: 3 });
    const t = model.tasks[0]!;
    const regs = t.files.filter((f) => f.kind === FdKind.REGULAR);
    expect(regs.length).toBeGreaterThanOrEqual(2);
    const EOF = 0xffffffffffffffffn;
    regs[0]!.locks = [{ kind: 1, write: true, start: 0n, end: EOF }];
    regs[1]!.locks = [
      { kind: 2, write: false, start: 10n, end: 29n },
      { kind: 2, write: true, start: 100n, end: EOF },
      { kind: 3, write: true, start: 0n, end: 4095n },
    ];
    const out = path.join(dir, 'locks.criu');
    await toCriuImages(model, out);
    if (HAVE_CRIT) {
      const es = crit(path.join(out, 'filelocks.img')).entries as Json[];
      expect(es.map((e) => [e.flag, e.type, e.pid, e.fd, Number(e.start), Number(e.len)])).toEqual([
        [2, 1, t.pid, regs[0]!.fd, 0, 0],
        [1, 0, t.pid, regs[1]!.fd, 10, 20],
        [1, 1, t.pid, regs[1]!.fd, 100, 0],
        [4, 1, t.pid, regs[1]!.fd, 0, 4096],
      ]);
    }
    const back = fromCriuImages(out);
    try {
      expect(back.model.tasks[0]!.files.map((f) => f.locks)).toEqual(t.files.map((f) => f.locks));
      expect(back.model.tasks[0]!.nocr.filter((r) => r.code === 'FILE_LOCK')).toEqual([]);
    } finally {
      back.close();
    }
  });
});

describe('the kinds of optional state and their CRIU mapping', () => {
  const src = new URL('../src/', import.meta.url).pathname;

  it('every optional record is mapped by one module of the table or listed as unmapped, and docs/CRIU.md names each', () => {
    const mapped = CRIU_KINDS.map((m) => m.record);
    const optional = KINDS.map((k) => k.record.name);
    expect(optional.length, 'the kinds of optional state of the registry').toBeGreaterThanOrEqual(11);
    expect(new Set(mapped).size).toBe(mapped.length);
    expect(mapped.filter((r) => CRIU_UNMAPPED.includes(r))).toEqual([]);
    expect([...mapped, ...CRIU_UNMAPPED].filter((r) => !RECORDS.some((x) => x.name === r))).toEqual([]);
    const known = new Set<string>([...mapped, ...CRIU_UNMAPPED]);
    expect(
      optional.filter((r) => !known.has(r)),
      'map each new kind or list it in CRIU_UNMAPPED',
    ).toEqual([]);
    const doc = fs.readFileSync(new URL('../docs/CRIU.md', import.meta.url), 'utf8');
    expect(doc).toContain('## Kinds of optional state');
    const table = doc.slice(doc.indexOf('## Kinds of optional state'));
    for (const r of [...mapped, ...CRIU_UNMAPPED]) expect(table, r).toMatch(new RegExp(`\\b${r}\\b`));
  });

  it('each mapping is a src/kinds/<dir>/criu.ts importing only src/criu, model, schema, errors; src/criu: no live, no restore', () => {
    const dirs = fs.readdirSync(path.join(src, 'kinds')).filter((d) => fs.existsSync(path.join(src, 'kinds', d, 'criu.ts')));
    expect(dirs.length).toBe(CRIU_KINDS.length);
    const importsOf = (f: string): string[] =>
      [...fs.readFileSync(f, 'utf8').matchAll(/^import\s(?:[^;]*? from )?'([^']+)';/gm)].map((m) => m[1]!);
    for (const d of dirs) {
      const allowed = /^\.\.\/\.\.\/(criu\/[\w-]+|model|schema|errors)\.js$/;
      const bad = importsOf(path.join(src, 'kinds', d, 'criu.ts')).filter((i) => !allowed.test(i));
      expect(bad, `src/kinds/${d}/criu.ts`).toEqual([]);
    }
    for (const f of fs.readdirSync(path.join(src, 'criu'))) {
      expect(
        importsOf(path.join(src, 'criu', f)).filter((i) => /\/(live|restore)\//.test(i)),
        `src/criu/${f}`,
      ).toEqual([]);
    }
  });

  it('each mapped kind on every owner goes out and comes back (all-zero futex state and no POSIX timer: not recorded)', async () => {
    const { generate } = await import('../src/gen/generate.js');
    const model = generate({ seed: 8, size: 256 * 1024, tasks: 2, threads: 3, files: 3 });
    const [a, b] = model.tasks as [Task, Task];
    a.sigactions = [
      { sig: 2, handler: 0x401000n, flags: 0x4000000n, restorer: 0x402000n, mask: 5n },
      { sig: 13, handler: 1n, flags: 0n, restorer: 0n, mask: 0n },
      { sig: 64, handler: 0x401100n, flags: 4n, restorer: 0x402000n, mask: 1n << 63n },
    ];
    a.itimers = [{ which: 1, intervalUs: 1_500_000n, valueUs: 999_999n }];
    b.sigactions = [];
    b.itimers = [];
    b.posixTimers = [];
    a.threads[0]!.futex = { clearChildTid: 0x7f0000001000n, robustHead: 0x7f0000002000n, robustLen: 24n };
    a.threads[1]!.futex = { clearChildTid: 0n, robustHead: 0x7f0000003000n, robustLen: 0n };
    a.threads[2]!.futex = { clearChildTid: 0n, robustHead: 0n, robustLen: 0n };
    a.threads[0]!.sigaltstack = { sp: 0x7f0000010000n, size: 0x4000n, flags: 0x80000000 };
    a.threads[1]!.sigaltstack = { sp: 0n, size: 0n, flags: 2 };
    const reg = b.files.find((f) => f.kind === FdKind.REGULAR)!;
    reg.locks = [{ kind: 3, write: false, start: 7n, end: 7n }];
    const out = path.join(dir, 'kinds.criu');
    await toCriuImages(model, out);
    const back = fromCriuImages(out);
    try {
      const [a2, b2] = back.model.tasks as [Task, Task];
      expect(a2.sigactions).toEqual(a.sigactions);
      expect(a2.itimers).toEqual(a.itimers);
      expect(a2.posixTimers, 'timers are there (itimers), with no POSIX timer').toEqual([]);
      expect(b2.sigactions).toEqual([]);
      expect(b2.itimers).toEqual([]);
      expect(b2.posixTimers).toEqual([]);
      expect(a2.threads.map((t) => t.futex)).toEqual([a.threads[0]!.futex, a.threads[1]!.futex, undefined]);
      expect(a2.threads.map((t) => t.sigaltstack)).toEqual([a.threads[0]!.sigaltstack, a.threads[1]!.sigaltstack, undefined]);
      expect(b2.files.find((f) => f.fd === reg.fd)!.locks).toEqual(reg.locks);
      expect([...a2.files, ...b2.files].filter((f) => f.locks).length).toBe(1);
    } finally {
      back.close();
    }
  });

  it('filelocks.img entries import cannot take become FILE_LOCK reasons, in file order; the others go on their fds', async () => {
    const { generate } = await import('../src/gen/generate.js');
    const model = generate({ seed: 6, size: 128 * 1024, tasks: 1, files: 3 });
    const t = model.tasks[0]!;
    const [f1, f2] = t.files.filter((f) => f.kind === FdKind.REGULAR) as [(typeof t.files)[0], (typeof t.files)[0]];
    const out = path.join(dir, 'locks-bad.criu');
    await toCriuImages(model, out);
    const e = (flag: number, fd: number, start: bigint, len: bigint, type = 1): ['file_lock_entry', Json] => [
      'file_lock_entry',
      { flag, type, pid: t.pid, fd, start, len },
    ];
    fs.writeFileSync(
      path.join(out, 'filelocks.img'),
      imageBytes('FILE_LOCKS', [
        e(1, f2.fd, 10n, 5n),
        e(8, f1.fd, 0n, 0n),
        e(2, 77, 0n, 0n),
        e(1, f1.fd, -1n, 0n),
        e(4, f2.fd, 0n, 0n, 0),
        ['file_lock_entry', { flag: 1, type: 1, pid: t.pid + 1000, fd: f1.fd, start: 0n, len: 0n }],
      ]),
    );
    const back = fromCriuImages(out);
    try {
      const b = back.model.tasks[0]!;
      expect(b.nocr).toEqual([
        { code: 'FILE_LOCK', pid: t.pid, text: `filelocks.img: a lock (flag 8) on fd ${f1.fd} is not imported` },
        { code: 'FILE_LOCK', pid: t.pid, text: 'filelocks.img: a lock (flag 2) on fd 77, which crimg does not import is not imported' },
        { code: 'FILE_LOCK', pid: t.pid, text: `filelocks.img: a lock (flag 1) on fd ${f1.fd} is not imported` },
      ]);
      expect(b.files.find((f) => f.fd === f1.fd)!.locks).toBeUndefined();
      expect(b.files.find((f) => f.fd === f2.fd)!.locks).toEqual([
        { kind: 2, write: true, start: 10n, end: 14n },
        { kind: 3, write: false, start: 0n, end: 0xffffffffffffffffn },
      ]);
    } finally {
      back.close();
    }
  });
});

describe('protobuf codec', () => {
  it('round-trips every field kind it writes, reads packed repeated fields and skips unknown fields', () => {
    const vma = {
      start: 0x7fff00000000n,
      end: 0xffffffffff601000n,
      pgoff: 0n,
      shmid: 12n,
      prot: 5,
      flags: 0x22,
      status: 0x201,
      fd: -1n,
      fdflags: 2,
    };
    const b = encodeMessage('vma_entry', vma);
    expect(decodeMessage('vma_entry', b, { file: 'x', base: 0 })).toEqual(vma);
    // fd -1 as zigzag sint64: tag (8<<3)|0 then 0x01
    expect(Array.from(b.subarray(b.indexOf(0x40), b.indexOf(0x40) + 2))).toEqual([0x40, 0x01]);
    const reg = {
      id: 3,
      flags: 0o100002,
      pos: 0xffffffffffffffffn,
      fown: { uid: 1, euid: 2, signum: 0, pid_type: 0, pid: 0 },
      name: '/tmp/ünï cödé',
      mnt_id: -1,
      size: 1n << 40n,
      ext: true,
      mode: 0o100644,
    };
    expect(decodeMessage('reg_file_entry', encodeMessage('reg_file_entry', reg), { file: 'x', base: 0 })).toEqual(reg);
    const mm = encodeMessage('mm_entry', {
      exe_file_id: 4,
      dumpable: -1,
      mm_saved_auxv: [6n, 4096n, 0n, 0n],
      vmas: [vma, { ...vma, start: 0n, fd: 12345678901n }],
    });
    const mmBack = decodeMessage('mm_entry', mm, { file: 'x', base: 0 });
    expect(mmBack).toMatchObject({
      mm_start_code: 0n,
      exe_file_id: 4,
      dumpable: -1,
      mm_saved_auxv: [6n, 4096n, 0n, 0n],
      vmas: [vma, { ...vma, start: 0n, fd: 12345678901n }],
    });
    const q = { signals: [{ siginfo: new Uint8Array([10, 0, 0, 0, 1, 2, 3]) }] };
    expect(decodeMessage('signal_queue_entry', encodeMessage('signal_queue_entry', q), { file: 'x', base: 0 })).toEqual(q);
    // pstree_entry with threads packed (field 5, wire type 2) and an unknown field 9 (varint): accepted
    const packed = new Uint8Array([0x08, 0x07, 0x10, 0x00, 0x18, 0x07, 0x20, 0x07, 0x2a, 0x02, 0x07, 0x08, 0x48, 0x05]);
    expect(decodeMessage('pstree_entry', packed, { file: 'p', base: 0 })).toEqual({ pid: 7, ppid: 0, pgid: 7, sid: 7, threads: [7, 8] });
    const err = (bytes: number[]): CrimgError => {
      try {
        decodeMessage('pstree_entry', new Uint8Array(bytes), { file: 'pstree.img', base: 100 });
      } catch (e) {
        return e as CrimgError;
      }
      throw new Error('no error');
    };
    expect(err([0x08, 0x07]).line()).toMatch(
      /^BAD_CRIU: pstree\.img: pstree_entry: required field ppid \(2\) is missing \(at offset 100\)$/,
    );
    expect(err([0x08, 0x87]).line()).toMatch(/^BAD_CRIU: pstree\.img: protobuf varint runs past the end .* \(at offset 102\)$/);
    expect(err([0x08, 0x07, 0x12, 0x01]).line()).toMatch(/pstree_entry\.ppid: wire type 2, expected 0/);
  });
});

// ------------------------------------------------------------------ what criu dump writes and crimg does not use

/** Python (pycriu) that rewrites a directory with fields `criu dump` writes that crimg does not use. */
const CRIU_EXTRAS = `
import sys, pycriu
d, pid = sys.argv[1], sys.argv[2]
def rw(name, fn):
    with open(d + '/' + name, 'rb') as f: img = pycriu.images.load(f)
    fn(img['entries'])
    with open(d + '/' + name, 'wb') as f: pycriu.images.dump(img, f)
it = {'isec': 0, 'iusec': 0, 'vsec': 0, 'vusec': 0}
fown = {'uid': 0, 'euid': 0, 'signum': 0, 'pid_type': 0, 'pid': 0}
def core(es):
    e = es[0]
    e['thread_info']['tls'] = [{'entry_number': 12 + i, 'base_addr': 0, 'limit': 0, 'seg_32bit': False, 'contents_h': False,
        'contents_l': False, 'read_exec_only': True, 'limit_in_pages': False, 'seg_not_present': True, 'usable': False} for i in range(3)]
    e['thread_core'].update({'sched_nice': 0, 'sched_policy': 0, 'sas': {'ss_sp': 0, 'ss_size': 0, 'ss_flags': 2}, 'pdeath_sig': 0})
    if 'tc' in e:
        e['tc'].update({'timers': {'real': it, 'virt': it, 'prof': it}, 'cg_set': 1, 'loginuid': 4294967295, 'oom_score_adj': 0, 'child_subreaper': False})
def mm(es):
    es[0]['dumpable'] = 1
    es[0]['mm_saved_auxv'] += [0] * 20
    for v in es[0]['vmas']: v['madv'] = v.get('madv', 0)
def files(es):
    es.append({'type': 'PIPE', 'id': 1000, 'pipe': {'id': 1000, 'pipe_id': 123456, 'flags': 0, 'fown': fown}})
def fdinfo(es):
    es.append({'id': 1000, 'flags': 0, 'type': 'PIPE', 'fd': 42})
def pagemap(es):
    # criu dump merges runs that continue into the next VMA
    out = [es[0]]
    for e in es[1:]:
        last = out[-1]
        if len(out) > 1 and last['vaddr'] + last['nr_pages'] * 4096 == e['vaddr']: last['nr_pages'] += e['nr_pages']
        else: out.append(e)
    print(len(es) - len(out))
    es[:] = out
def inventory(es):
    es[0].update({'dump_uptime': 123456789, 'root_cg_set': 1, 'tcp_close': False, 'network_lock_method': 1})
import os
for f in os.listdir(d):
    if f.startswith('core-'): rw(f, core)
rw('mm-%s.img' % pid, mm); rw('files.img', files); rw('fdinfo-1.img', fdinfo); rw('pagemap-%s.img' % pid, pagemap); rw('inventory.img', inventory)
`;

describe('images with what criu dump writes besides', () => {
  it.runIf(HAVE_CRIT)(
    'TLS descriptors, timers, sas, madv, a pipe fd, merged pagemap runs: imported as before, the pipe as a reason',
    () => {
      const d = path.join(dir, 'criu-extras');
      fs.cpSync(liveDir, d, { recursive: true });
      const critBin = spawnSync('sh', ['-c', 'command -v crit'], { encoding: 'utf8' }).stdout.trim();
      const python = /^#!\s*(\S+)/.exec(fs.readFileSync(critBin, 'utf8'))?.[1] ?? 'python3';
      const r = spawnSync(python, ['-c', CRIU_EXTRAS, d, String(prog!.ready.pid)], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(Number(r.stdout.trim()), 'pagemap entries merged across VMAs').toBeGreaterThan(0);
      expect(fs.statSync(path.join(d, `mm-${prog!.ready.pid}.img`)).size).toBeGreaterThan(
        fs.statSync(path.join(liveDir, `mm-${prog!.ready.pid}.img`)).size,
      );
      const k = kernels();
      const a = fromCriuImages(liveDir);
      const b = fromCriuImages(d);
      try {
        withRegion((dst) => {
          const want = flatten(a.model, k, dst) as Json;
          want.tasks[0].nocr = [
            { code: 'PIPE', pid: prog!.ready.pid, text: 'fd 42 is a CRIU file of type 2, which crimg does not import' },
          ];
          const got = flatten(b.model, k, dst) as Json;
          want.header.createdNs = got.header.createdNs;
          expect(got).toEqual(want);
        });
      } finally {
        a.close();
        b.close();
      }
    },
  );
});

// ------------------------------------------------------------------ damaged directories

describe('damaged CRIU directories are refused with a code, the file and the offset', () => {
  let n = 0;
  /** A copy of the live directory with `damage` applied; returns the CLI's answer and the library's error. */
  function damaged(damage: (d: string) => void): { code: number; stderr: string; err: CrimgError } {
    const d = path.join(dir, `damaged-${n++}`);
    fs.cpSync(liveDir, d, { recursive: true });
    damage(d);
    const r = crimg(['convert', d, '-o', path.join(dir, `damaged-${n}.crimg`)]);
    let err: CrimgError | undefined;
    try {
      fromCriuImages(d).close();
    } catch (e) {
      err = e as CrimgError;
    }
    if (!err) throw new Error('fromCriuImages accepted the damaged directory');
    expect(fs.existsSync(path.join(dir, `damaged-${n}.crimg`))).toBe(false);
    return { code: r.code, stderr: r.stderr, err };
  }
  const pid = (): number => prog!.ready.pid;
  const trunc =
    (f: string, by: number) =>
    (d: string): void => {
      const p = path.join(d, f);
      fs.truncateSync(p, fs.statSync(p).size - by);
    };
  const poke =
    (f: string, at: (size: number) => number, v: number) =>
    (d: string): void => {
      const p = path.join(d, f);
      const b = fs.readFileSync(p);
      b[at(b.length)] = v;
      fs.writeFileSync(p, b);
    };

  it('a core file cut short: TRUNCATED, with the offset of the entry', () => {
    const { code, stderr, err } = damaged(trunc(`core-${pid()}.img`, 10));
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(new RegExp(`^crimg: TRUNCATED: core-${pid()}\\.img ends inside entry 0 .*\\(at offset 8\\)\\n$`));
    expect(err.code).toBe('TRUNCATED');
    expect(err.offset).toBe(8);
  });

  it('a wrong magic: BAD_CRIU at offset 4', () => {
    const { stderr, err } = damaged(poke('pstree.img', () => 4, 0x99));
    expect(stderr).toMatch(/^crimg: BAD_CRIU: pstree\.img has magic 0x50273099, expected 0x50273030 \(PSTREE\) \(at offset 4\)\n$/);
    expect(err.offset).toBe(4);
  });

  it('a protobuf varint running past its entry: BAD_CRIU with the offset inside the file', () => {
    const { stderr, err } = damaged(poke(`mm-${pid()}.img`, (n) => n - 1, 0x80));
    expect(err.code).toBe('BAD_CRIU');
    expect(stderr).toMatch(
      new RegExp(`^crimg: BAD_CRIU: mm-${pid()}\\.img: protobuf varint runs past the end of its entry \\(at offset \\d+\\)\\n$`),
    );
    expect(err.offset).toBe(fs.statSync(path.join(liveDir, `mm-${pid()}.img`)).size);
  });

  it('a missing core file, pages-1.img cut short, pages outside every VMA, a 32-bit task', () => {
    const tid = prog!.ready.tids[2]!;
    expect(damaged((d) => fs.rmSync(path.join(d, `core-${tid}.img`))).stderr).toMatch(
      new RegExp(`^crimg: BAD_CRIU: core-${tid}\\.img is missing from `),
    );
    const t = damaged(trunc('pages-1.img', 4096));
    expect(t.err.code).toBe('TRUNCATED');
    expect(t.stderr).toMatch(/^crimg: TRUNCATED: pages-1\.img holds \d+ bytes, pagemap-\d+\.img needs \d+ \(at offset \d+\)\n$/);
    const o = damaged((d) =>
      fs.writeFileSync(
        path.join(d, `pagemap-${pid()}.img`),
        imageBytes('PAGEMAP', [
          ['pagemap_head', { pages_id: 1 }],
          ['pagemap_entry', { vaddr: 0x1000n, nr_pages: 1, flags: 4 }],
        ]),
      ),
    );
    expect(o.stderr).toMatch(
      new RegExp(`^crimg: BAD_CRIU: pagemap-${pid()}\\.img: pages at 0x1000 are outside every VMA \\(at offset 14\\)\\n$`),
    );
    const c = damaged((d) => {
      const p = path.join(d, `core-${pid()}.img`);
      const b = fs.readFileSync(p);
      const m = decodeMessage('core_entry', b, { file: 'core', base: 0 }, 12, b.length) as Json;
      m.thread_info.gpregs.mode = 2; // COMPAT
      fs.writeFileSync(p, imageBytes('CORE', [['core_entry', m]]));
    });
    expect(c.stderr).toMatch(
      /^crimg: BAD_CRIU: core-\d+\.img: registers of a 32-bit \(compat\) task: only x86_64 tasks are imported \(at offset 8\)\n$/,
    );
  });
});

describe('XSAVE state CRIU has no field for', () => {
  it('XCR0 with AMX bits comes back through the sw_reserved word; the tile data does not', async () => {
    const i = openImage(genImg);
    const out = path.join(dir, 'amx.criu');
    try {
      const th = i.model.tasks[0]!.threads[0]!;
      const xcr0 = 0x602e7n;
      const ext = new Uint8Array(intelXsaveSize(xcr0) - 512);
      ext.set(th.xstate!.ext.subarray(0, Math.min(ext.length, th.xstate!.ext.length)));
      ext[2816 - 512 + 5] = 0x77; // a byte of XTILEDATA
      th.xstate = { xcr0, ext };
      await toCriuImages(i, out);
    } finally {
      i.close();
    }
    const c = fromCriuImages(out);
    try {
      const back = c.model.tasks[0]!.threads[0]!;
      expect(back.xstate!.xcr0).toBe(0x602e7n);
      expect(back.xstate!.ext.length).toBe(intelXsaveSize(0x602e7n) - 512);
      expect(back.xstate!.ext[2816 - 512 + 5]).toBe(0);
      expect(new DataView(back.fpu.buffer, back.fpu.byteOffset).getBigUint64(464, true)).toBe(0n);
    } finally {
      c.close();
    }
  });
});

describe('madvise and mlock state', () => {
  it('goes to vma_entry.madv (bit n: madvise advice n) and MAP_LOCKED, and comes back', async () => {
    const i = openImage(genImg);
    const out = path.join(dir, 'madv.criu');
    const extra = VmaFlags.DONTDUMP | VmaFlags.HUGEPAGE | VmaFlags.WIPEONFORK | VmaFlags.LOCKED | VmaFlags.SEQ_READ;
    let at = 0n;
    try {
      const v = i.model.tasks[0]!.mm!.vmas.find((x) => x.flags & VmaFlags.ANON && !(x.flags & VmaFlags.STACK))!;
      v.flags |= extra;
      at = v.start;
      await toCriuImages(i, out);
    } finally {
      i.close();
    }
    const c = fromCriuImages(out);
    try {
      const v = c.model.tasks[0]!.mm!.vmas.find((x) => x.start === at)!;
      expect(v.flags & extra).toBe(extra);
    } finally {
      c.close();
    }
    if (HAVE_CRIT) {
      const pid = fs.readdirSync(out).find((f) => f.startsWith('mm-'))!;
      const e = crit(path.join(out, pid)).entries[0].vmas.find((x: Json) => big(x.start) === at);
      expect(big(e.madv)).toBe((1n << 16n) | (1n << 14n) | (1n << 18n) | (1n << 2n)); // DONTDUMP, HUGEPAGE, WIPEONFORK, SEQUENTIAL
      expect(e.flags, 'MAP_LOCKED (crit names the flags it knows)').toBe('MAP_PRIVATE | MAP_ANON | 0x2000');
    }
  });
});

describe('export is atomic', () => {
  it('a failure while writing pages leaves neither the directory nor a temporary one', async () => {
    const parent = fs.mkdtempSync(path.join(dir, 'atomic-'));
    const i = openImage(genImg);
    try {
      const m = i.model;
      const bad = m.tasks[1]!.mm!.vmas.find((v) => [...v.pages.runs(Number((v.end - v.start) / 4096n))].length > 0)!;
      const orig = bad.pages;
      bad.pages = {
        runs: (n) => orig.runs(n),
        read: () => {
          throw new CrimgError('IO', 'disk on fire');
        },
      };
      await expect(toCriuImages(i, path.join(parent, 'out'))).rejects.toThrow('disk on fire');
      expect(fs.readdirSync(parent)).toEqual([]);
      // a non-empty destination is refused before anything is written
      fs.mkdirSync(path.join(parent, 'full'));
      fs.writeFileSync(path.join(parent, 'full', 'x'), 'x');
      bad.pages = orig;
      await expect(toCriuImages(i, path.join(parent, 'full'))).rejects.toThrow(/is not empty/);
      expect(fs.readdirSync(parent)).toEqual(['full']);
      // an empty one is replaced
      fs.mkdirSync(path.join(parent, 'empty'));
      const r = await toCriuImages(i, path.join(parent, 'empty'));
      expect(r.tasks).toBe(3);
      expect(fs.readdirSync(parent).sort()).toEqual(['empty', 'full']);
      expect(isCriuDir(path.join(parent, 'empty'))).toBe(true);
    } finally {
      i.close();
    }
  });
});

describe('random damage', () => {
  it('any byte changed or cut anywhere gives a CrimgError or a model, never another exception', () => {
    const files = fs
      .readdirSync(liveDir)
      .filter((f) => !f.startsWith('pages-'))
      .sort();
    const d = path.join(dir, 'fuzz');
    fs.cpSync(liveDir, d, { recursive: true });
    const r = rng(12345);
    const rnd = (n: number): number => Math.floor(r() * n);
    const codes = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const f = files[rnd(files.length)]!;
      const orig = fs.readFileSync(path.join(liveDir, f));
      const b = Buffer.from(orig);
      if (rnd(4) === 0) fs.writeFileSync(path.join(d, f), b.subarray(0, rnd(b.length)));
      else {
        for (let j = 1 + rnd(3); j > 0; j--) b[rnd(b.length)] = rnd(256);
        fs.writeFileSync(path.join(d, f), b);
      }
      let code = 'ok';
      try {
        fromCriuImages(d).close();
      } catch (e) {
        if (!(e instanceof CrimgError)) throw new Error(`${f} damaged (round ${i}): ${(e as Error).stack}`);
        code = e.code;
      }
      codes.set(code, (codes.get(code) ?? 0) + 1);
      fs.writeFileSync(path.join(d, f), orig);
    }
    expect(codes.get('BAD_CRIU')).toBeGreaterThan(50);
    expect(codes.get('TRUNCATED')).toBeGreaterThan(30);
  });
});
