/**
 * Properties over generated models (fast-check): model -> image -> model is the
 * identity (pages included), image -> model -> image is byte-identical, writing is
 * deterministic, the lazy reader agrees with the full reader and serves the exact
 * bytes of every page, and any single changed or missing byte of an image is
 * rejected with a crimg error code. The generated tasks carry every optional kind of
 * state of the registry (src/kinds/index.ts), from the arbitraries of
 * test/helpers/kinds-arb.ts: a kind without one fails here.
 */
import { describe, expect } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import {
  CrimgError,
  ERROR_CODES,
  MemorySink,
  MemoryPageSource,
  NO_PAGES,
  NS_KINDS,
  kernels,
  openImage,
  readImage,
  verifyImage,
  writeImage,
  type Model,
  type Namespace,
  type OpenFile,
  type Task,
  type Thread,
  type Vma,
} from '../src/index.js';
import { claimRegion, releaseRegion } from '../src/kernels/arena.js';
import { KINDS } from '../src/kinds/index.js';
import { kindValue } from '../src/kinds/kind.js';
import { flatten } from './helpers/models.js';
import { KIND_ARBS, KIND_FD_BASE, KIND_FD_END, withKinds } from './helpers/kinds-arb.js';

const MAX_VMA_PAGES = 300;
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const i32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
const str = (maxLength = 12): fc.Arbitrary<string> => fc.string({ unit: 'binary', maxLength });

const header = fc.record({
  crid: u64,
  createdNs: u64,
  freezeNs: u64,
  flags: u32,
  tool: str(20),
  uts: fc.record({ sysname: str(), nodename: str(), release: str(), version: str(), machine: str(), domainname: str() }),
});

const namespace: fc.Arbitrary<Namespace> = fc
  .tuple(fc.constantFrom(...NS_KINDS), u64, fc.option(fc.tuple(str(), str()), { nil: undefined }))
  .map(([kind, id, uts]) => (uts ? { kind, id, nodename: uts[0], domainname: uts[1] } : { kind, id }));

const thread = (tid: number): fc.Arbitrary<Thread> =>
  fc
    .record({
      regs: fc.array(u64, { minLength: 27, maxLength: 27 }),
      fpu: fc.uint8Array({ minLength: 512, maxLength: 512 }),
      xstate: fc.option(fc.record({ xcr0: u64, ext: fc.uint8Array({ maxLength: 1200 }) }), { nil: null }),
      sigmask: u64,
      sigpending: u64,
      rseq: fc.option(fc.record({ ptr: u64, len: u32, sig: u32, flags: u32 }), { nil: null }),
      state: str(2),
    })
    .map((t) => ({ ...t, tid, regs: BigUint64Array.from(t.regs) }));

/** Page contents: zero pages, sparse bytes, pages filled with one value. */
const pageSpec = fc.oneof(
  { weight: 2, arbitrary: fc.constant(null) },
  {
    weight: 3,
    arbitrary: fc.array(fc.tuple(fc.integer({ min: 0, max: 4095 }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
  },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 255 }) },
);

interface VmaSpec {
  gap: number;
  npages: number;
  prot: number;
  flags: number;
  pgoff: bigint;
  devMajor: number;
  devMinor: number;
  inode: bigint;
  path: string | null;
  presence: 'all' | 'none' | 'some';
  present: boolean[];
  pages: (null | number | [number, number][])[];
}

const vmaSpec: fc.Arbitrary<VmaSpec> = fc.record({
  gap: fc.integer({ min: 0, max: 3 }),
  npages: fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 1, max: 70 }) },
    { weight: 1, arbitrary: fc.integer({ min: 250, max: MAX_VMA_PAGES }) },
  ),
  prot: fc.integer({ min: 0, max: 7 }),
  flags: u32,
  pgoff: u64,
  devMajor: u32,
  devMinor: u32,
  inode: u64,
  path: fc.option(str(30), { nil: null }),
  presence: fc.constantFrom('all', 'none', 'some'),
  present: fc.array(fc.boolean(), { minLength: MAX_VMA_PAGES, maxLength: MAX_VMA_PAGES }),
  pages: fc.array(pageSpec, { minLength: 8, maxLength: 8 }),
}) as fc.Arbitrary<VmaSpec>;

function buildVmas(specs: VmaSpec[]): Vma[] {
  let at = 0x400000n;
  return specs.map((s) => {
    const start = at + BigInt(s.gap * 4096);
    const end = start + BigInt(s.npages * 4096);
    at = end;
    const data = new Uint8Array(s.npages * 4096);
    for (let p = 0; p < s.npages; p++) {
      const spec = s.pages[p % s.pages.length];
      if (spec === null) continue;
      if (typeof spec === 'number') data.fill(spec, p * 4096, (p + 1) * 4096);
      else for (const [o, v] of spec) data[p * 4096 + o] = v;
    }
    let pages;
    if (s.presence === 'none') pages = NO_PAGES;
    else if (s.presence === 'all') pages = new MemoryPageSource(data);
    else {
      const runs: [number, number][] = [];
      for (let p = 0; p < s.npages; p++) {
        if (!s.present[p]) continue;
        const last = runs[runs.length - 1];
        if (last && last[0] + last[1] === p) last[1]++;
        else runs.push([p, 1]);
      }
      pages = new MemoryPageSource(data, runs);
    }
    return {
      start,
      end,
      prot: s.prot,
      flags: s.flags,
      pgoff: s.pgoff,
      devMajor: s.devMajor,
      devMinor: s.devMinor,
      inode: s.inode,
      path: s.path,
      pages,
    };
  });
}

const file = (fd: number): fc.Arbitrary<OpenFile> =>
  fc
    .record({
      kind: fc.integer({ min: 0, max: 2 }),
      path: str(30),
      flags: u32,
      pos: u64,
      mode: u32,
      cloexec: fc.boolean(),
      devMajor: u32,
      devMinor: u32,
      inode: u64,
      size: u64,
    })
    .map((f) => ({ ...f, fd }));

const task = (pid: number): fc.Arbitrary<Task> =>
  fc
    .record({
      tgid: i32,
      ppid: i32,
      pgid: i32,
      sid: i32,
      comm: str(16),
      exe: str(30),
      cwd: str(30),
      root: str(5),
      args: fc.array(str(), { maxLength: 4 }),
      env: fc.array(str(), { maxLength: 4 }),
      personality: u32,
      exitSignal: u32,
      creds: fc.record({
        uid: u32,
        gid: u32,
        euid: u32,
        egid: u32,
        suid: u32,
        sgid: u32,
        fsuid: u32,
        fsgid: u32,
        groups: fc.array(u32, { maxLength: 5 }),
        capInh: u64,
        capPrm: u64,
        capEff: u64,
        capBnd: u64,
        capAmb: u64,
        securebits: u32,
        noNewPrivs: u32,
        seccompMode: u32,
      }),
      rlimits: fc.array(fc.record({ cur: u64, max: u64 }), { maxLength: 16 }),
      ns: fc.record({ uts: u64, ipc: u64, mnt: u64, pid: u64, net: u64, user: u64, cgroup: u64, time: u64 }),
      threads: fc.uniqueArray(i32, { maxLength: 3 }).chain((tids) => fc.tuple(...tids.map(thread))),
      mm: fc.option(
        fc.record({
          startCode: u64,
          endCode: u64,
          startData: u64,
          endData: u64,
          startBrk: u64,
          brk: u64,
          startStack: u64,
          argStart: u64,
          argEnd: u64,
          envStart: u64,
          envEnd: u64,
          auxv: fc.array(fc.tuple(u64, u64), { maxLength: 4 }).map((a) => a.flat()),
          vmas: fc.array(vmaSpec, { maxLength: 4 }).map(buildVmas),
        }),
        { nil: null },
      ),
      // fds of their own: the files of the kinds of state come from [KIND_FD_BASE, KIND_FD_END)
      files: fc
        .uniqueArray(
          i32.filter((fd) => fd < KIND_FD_BASE || fd >= KIND_FD_END),
          { maxLength: 4 },
        )
        .chain((fds) => fc.tuple(...fds.map(file))),
      nocr: fc.array(fc.record({ code: str(16), pid: i32, text: str(30) }), { maxLength: 2 }),
    })
    .chain((t) => withKinds({ ...t, pid }));

const model: fc.Arbitrary<Model> = fc.record({
  header,
  namespaces: fc.array(namespace, { maxLength: 4 }),
  tasks: fc.uniqueArray(i32, { maxLength: 3 }).chain((pids) => fc.tuple(...pids.map(task))),
});

async function toBytes(m: Model): Promise<Uint8Array> {
  const sink = new MemorySink();
  await writeImage(m, sink);
  return sink.bytes();
}

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof CrimgError) return e.code;
    throw e;
  }
  return 'ACCEPTED';
}

const k = kernels();
const withScratch = <T>(f: (dst: number) => T): T => {
  const dst = claimRegion(k, MAX_VMA_PAGES * 4096);
  try {
    return f(dst);
  } finally {
    releaseRegion(k, dst);
  }
};

describe('properties of model -> image -> model', () => {
  test('the model generator covers the shapes the properties are about', () => {
    const seen = { tasks: 0, noMm: 0, vmas: 0, emptyVma: 0, partial: 0, bigVma: 0, xstate: 0, rseq: 0, files: 0, utsNs: 0, nullPath: 0 };
    for (const m of fc.sample(model, { numRuns: 150, seed: 8 })) {
      seen.tasks += m.tasks.length;
      seen.utsNs += m.namespaces.filter((n) => n.nodename !== undefined).length;
      for (const t of m.tasks) {
        if (!t.mm) seen.noMm++;
        seen.files += t.files.length;
        seen.xstate += t.threads.filter((th) => th.xstate).length;
        seen.rseq += t.threads.filter((th) => th.rseq).length;
        for (const v of t.mm?.vmas ?? []) {
          seen.vmas++;
          if (v.pages === NO_PAGES) seen.emptyVma++;
          if (v.pages instanceof MemoryPageSource && v.pages.present) seen.partial++;
          if (v.end - v.start > 256n * 4096n) seen.bigVma++;
          if (v.path === null) seen.nullPath++;
        }
      }
    }
    for (const [what, n] of Object.entries(seen)) expect(n, what).toBeGreaterThan(3);
  });

  test('every kind of the registry has an arbitrary, and the model generator gives each kind values', () => {
    for (const k of KINDS)
      expect(KIND_ARBS[k.key], `${k.record.name} (${k.key}) has no arbitrary in test/helpers/kinds-arb.ts`).toBeDefined();
    // values of each kind, on as many owners: tasks, threads, files; and fds carrying several kinds at once
    const seen = new Map(KINDS.map((k) => [k.key, 0]));
    let stacked = 0;
    for (const m of fc.sample(model, { numRuns: 150, seed: 9 })) {
      for (const t of m.tasks) {
        for (const k of KINDS) {
          const owners: object[] = k.owner === 'task' ? [t] : k.owner === 'thread' ? t.threads : t.files;
          seen.set(k.key, seen.get(k.key)! + owners.filter((o) => kindValue(k, o as never) !== undefined).length);
        }
        stacked += t.files.filter((f) => KINDS.filter((k) => k.owner === 'fd' && kindValue(k, f) !== undefined).length > 1).length;
      }
    }
    for (const [key, n] of seen) expect(n, key).toBeGreaterThan(20);
    expect(stacked).toBeGreaterThan(10);
  });

  test.prop([model], { numRuns: 60 })('model -> image -> model is the identity, pages included', async (m) => {
    const bytes = await toBytes(m);
    const img = readImage(bytes);
    try {
      withScratch((dst) => expect(flatten(img.model, k, dst)).toEqual(flatten(m, k, dst)));
    } finally {
      img.close();
    }
  });

  test.prop([model], { numRuns: 40 })('image -> model -> image is byte-identical, and writing is deterministic', async (m) => {
    const bytes = await toBytes(m);
    expect(Buffer.from(await toBytes(m)).equals(Buffer.from(bytes))).toBe(true);
    const img = readImage(bytes);
    try {
      expect(Buffer.from(await toBytes(img.model)).equals(Buffer.from(bytes))).toBe(true);
    } finally {
      img.close();
    }
  });

  test.prop([model, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 3 * 4096 })), { minLength: 1, maxLength: 6 })], { numRuns: 40 })(
    'the lazy reader serves the bytes of every page, and its stats count every recorded page',
    async (m, probes) => {
      const bytes = await toBytes(m);
      const img = openImage(bytes);
      try {
        const stats = verifyImage(bytes).stats;
        let present = 0,
          nonZero = 0;
        for (const t of m.tasks) {
          for (const v of t.mm?.vmas ?? []) {
            const n = Number((v.end - v.start) / 4096n);
            const want = withScratch((dst) => {
              const out = new Uint8Array(n * 4096);
              for (const [f, c] of v.pages.runs(n)) {
                v.pages.read(k, dst, f, c);
                out.set(k.u8().subarray(dst, dst + c * 4096), f * 4096);
                present += c;
                for (let p = 0; p < c; p++)
                  if (
                    k
                      .u8()
                      .subarray(dst + p * 4096, dst + (p + 1) * 4096)
                      .some((b) => b !== 0)
                  )
                    nonZero++;
              }
              return out;
            });
            expect(Buffer.from(img.readMemory(t.pid, v.start, n * 4096)).equals(Buffer.from(want))).toBe(true);
            for (const [a, len] of probes) {
              const off = a % (n * 4096);
              const l = Math.min(len, n * 4096 - off);
              expect(Buffer.from(img.readMemory(t.pid, v.start + BigInt(off), l)).equals(Buffer.from(want.subarray(off, off + l)))).toBe(
                true,
              );
            }
          }
        }
        expect(stats.pagesStored + stats.pagesZero).toBe(present);
        expect(stats.pagesStored).toBe(nonZero);
      } finally {
        img.close();
      }
    },
  );

  test.prop([model, fc.nat(), fc.integer({ min: 1, max: 255 })], { numRuns: 150 })(
    'any changed byte of an image is rejected with a crimg error code',
    async (m, at, mask) => {
      const bytes = (await toBytes(m)).slice();
      const pos = at % bytes.length;
      bytes[pos] ^= mask;
      const code = codeOf(() => readImage(bytes).close());
      expect(Object.keys(ERROR_CODES)).toContain(code);
    },
  );

  test.prop([model, fc.nat()], { numRuns: 100 })('any truncated image is rejected with a crimg error code', async (m, at) => {
    const bytes = await toBytes(m);
    const cut = bytes.subarray(0, at % bytes.length);
    const code = codeOf(() => readImage(cut).close());
    expect(['TRUNCATED', 'BAD_MAGIC', 'BAD_RECORD']).toContain(code);
    expect(codeOf(() => openImage(cut).close())).not.toBe('ACCEPTED');
  });
});
