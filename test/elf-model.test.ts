/**
 * ELF export/import on hand-made models: what a core keeps, the kernel's page_size 4096
 * NT_FILE, holes for zero and absent pages, PN_XNUM, sinks without holes, task choice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import {
  type Model,
  type Vma,
  MemoryPageSource,
  NO_PAGES,
  newThread,
  emptyCreds,
  emptyNsIds,
  defaultRlimits,
  HeaderFlags,
  Prot,
  VmaFlags,
  MemorySink,
  CrimgError,
  fromElfCore,
  toElfCore,
  writeImage,
  readImage,
  kernels,
  REG_INDEX,
} from '../src/index.js';
import { claimRegion, releaseRegion } from '../src/kernels/arena.js';
import { intelXsaveSize } from '../src/cpu/xsave.js';
import { flatten, smallModel, vmaBytes } from './helpers/models.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-elfm-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const P = 4096n;
const page = (fill: (i: number) => number, n = 1): Uint8Array => Uint8Array.from({ length: n * 4096 }, (_, i) => fill(i));

/** A process as a core can describe it (no [heap] name, no dev/inode, no files). */
function coreModel(): Model {
  const XCR0 = 0x2e7n; // x87 SSE AVX opmask ZMM_Hi256 Hi16_ZMM PKRU
  const threads = [4242, 4243].map((tid, t) => {
    const th = newThread(tid);
    for (let i = 0; i < 27; i++) th.regs[i] = BigInt(tid) * 0x10000n + BigInt(i);
    th.regs[REG_INDEX.rsp] = 0x7ffc00010f00n - BigInt(t) * 0x100n;
    th.regs[REG_INDEX.cs] = 0x33n;
    th.regs[REG_INDEX.ss] = 0x2bn;
    for (let k = 0; k < 16; k++)
      th.fpu.set(
        Uint8Array.from({ length: 16 }, (_, b) => (k * 16 + b + t) & 0xff),
        160 + 16 * k,
      );
    const ext = new Uint8Array(intelXsaveSize(XCR0) - 512);
    const dv = new DataView(ext.buffer);
    dv.setBigUint64(0, XCR0, true); // xstate_bv: every component in use
    for (let i = 64; i < 64 + 256; i++) ext[i] = (i * 3 + t) & 0xff; // YMM_Hi128
    for (let i = 1088 - 512; i < 2696 - 512; i++) ext[i] = (i * 7 + t) & 0xff; // opmask, ZMM_Hi256, Hi16_ZMM, PKRU
    th.xstate = { xcr0: XCR0, ext };
    th.sigmask = 0x10000n;
    th.sigpending = t ? 0n : 0x4n;
    return th;
  });
  threads[0]!.state = 'S';
  const vmas: Vma[] = [
    {
      start: 0x555500000000n,
      end: 0x555500003000n,
      prot: Prot.READ | Prot.EXEC,
      flags: 0,
      pgoff: 0n,
      devMajor: 0,
      devMinor: 0,
      inode: 0n,
      path: '/usr/bin/prog',
      pages: NO_PAGES,
    },
    {
      start: 0x555500003000n,
      end: 0x555500005000n,
      prot: Prot.READ | Prot.WRITE,
      flags: 0,
      pgoff: 3n,
      devMajor: 0,
      devMinor: 0,
      inode: 0n,
      path: '/usr/bin/prog',
      pages: new MemoryPageSource(page((i) => i & 0xff, 2)),
    },
    {
      start: 0x555500005000n,
      end: 0x55550000d000n,
      prot: Prot.READ | Prot.WRITE,
      flags: VmaFlags.ANON,
      pgoff: 0n,
      devMajor: 0,
      devMinor: 0,
      inode: 0n,
      path: null,
      pages: new MemoryPageSource(
        Uint8Array.from({ length: 8 * 4096 }, (_, i) => (i >> 12 === 3 ? 0 : (i * 13) & 0xff) | 0),
        [
          [2, 3],
          [7, 1],
        ],
      ),
    },
    {
      start: 0x7f0000000000n,
      end: 0x7f0000100000n,
      prot: Prot.READ,
      flags: 0,
      pgoff: 0x10n,
      devMajor: 0,
      devMinor: 0,
      inode: 0n,
      path: '/lib/libthing.so (deleted)',
      pages: NO_PAGES,
    },
    {
      start: 0x7f0000100000n,
      end: 0x7f0000101000n,
      prot: 0,
      flags: VmaFlags.ANON,
      pgoff: 0n,
      devMajor: 0,
      devMinor: 0,
      inode: 0n,
      path: null,
      pages: NO_PAGES,
    },
    {
      start: 0x7ffc00000000n,
      end: 0x7ffc00011000n,
      prot: Prot.READ | Prot.WRITE,
      flags: VmaFlags.ANON | VmaFlags.STACK | VmaFlags.GROWSDOWN,
      pgoff: 0n,
      devMajor: 0,
      devMinor: 0,
      inode: 0n,
      path: '[stack]',
      pages: new MemoryPageSource(
        page((i) => (i * 5) & 0xff, 0x11),
        [[0x10, 1]],
      ),
    },
    {
      start: 0x7ffc00100000n,
      end: 0x7ffc00102000n,
      prot: Prot.READ | Prot.EXEC,
      flags: VmaFlags.VDSO,
      pgoff: 0n,
      devMajor: 0,
      devMinor: 0,
      inode: 0n,
      path: '[vdso]',
      pages: new MemoryPageSource(page((i) => (i ^ 0x5a) & 0xff, 2)),
    },
    {
      start: 0xffffffffff600000n,
      end: 0xffffffffff601000n,
      prot: Prot.EXEC,
      flags: VmaFlags.VSYSCALL,
      pgoff: 0n,
      devMajor: 0,
      devMinor: 0,
      inode: 0n,
      path: '[vsyscall]',
      pages: NO_PAGES,
    },
  ];
  return {
    header: {
      crid: 0n,
      createdNs: 1_750_000_000_123_456_000n,
      freezeNs: 0n,
      flags: HeaderFlags.CORE,
      tool: 'crimg (from ELF core)',
      uts: { sysname: 'Linux', nodename: '', release: '', version: '', machine: 'x86_64', domainname: '' },
    },
    namespaces: [],
    tasks: [
      {
        pid: 4242,
        tgid: 4242,
        ppid: 1,
        pgid: 4240,
        sid: 4000,
        comm: 'prog',
        exe: '/usr/bin/prog',
        cwd: '',
        root: '/',
        args: ['/usr/bin/prog', '--flag', 'ünïcode'],
        env: [],
        personality: 0,
        exitSignal: 17,
        creds: { ...emptyCreds(), uid: 1000, gid: 100, euid: 1000, egid: 100, suid: 1000, sgid: 100, fsuid: 1000, fsgid: 100 },
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
          auxv: [6n, 4096n, 33n, 0x7ffc00100000n, 3n, 0x555500000040n, 11n, 1000n, 12n, 1000n, 13n, 100n, 14n, 100n],
          vmas,
        },
        files: [],
        nocr: [],
      },
    ],
  };
}

function withRegion<T>(fn: (dst: number) => T): T {
  const k = kernels();
  const r = claimRegion(k, 1 << 20);
  try {
    return fn(r);
  } finally {
    releaseRegion(k, r);
  }
}

describe('model -> ELF core -> model', () => {
  it('keeps registers, vector state, credentials, auxv, mappings and memory', async () => {
    const m = coreModel();
    const file = path.join(dir, 'a.core');
    const r = await toElfCore(m, file);
    expect(r).toMatchObject({ pid: 4242, threads: 2, segments: m.tasks[0]!.mm!.vmas.length });
    expect(fs.statSync(file).size).toBe(r.bytes);
    const c = fromElfCore(file);
    try {
      expect(c.core.filePageSize).toBe(4096);
      // data + anon (8 pages incl. absent and zero) + stack (top page) + vdso are in the file
      expect(c.core.segments.filter((s) => s.filesz > 0).map((s) => s.filesz / 4096)).toEqual([2, 8, 0x11, 2]);
      const k = kernels();
      // everything the core format holds comes back as it was
      withRegion((dst) => expect(flatten(c.model, k, dst)).toEqual(flatten(expectedAfterCore(m), k, dst)));
    } finally {
      c.close();
    }
  });

  it('is stable: a second round gives an equal model (NT_FILE page_size 4096, holes, p_filesz < p_memsz)', async () => {
    const a = path.join(dir, 'b1.core'),
      b = path.join(dir, 'b2.core');
    await toElfCore(coreModel(), a);
    const c1 = fromElfCore(a);
    try {
      await toElfCore(c1.model, b);
      const c2 = fromElfCore(b);
      try {
        const k = kernels();
        withRegion((dst) => expect(flatten(c2.model, k, dst)).toEqual(flatten(c1.model, k, dst)));
      } finally {
        c2.close();
      }
    } finally {
      c1.close();
    }
    expect(Buffer.compare(fs.readFileSync(a), fs.readFileSync(b))).toBe(0);
  });

  it('leaves zero and absent pages as holes in a regular file, and writes the same bytes to a sink without holes', async () => {
    const m = coreModel();
    const big: Vma = {
      start: 0x600000000000n,
      end: 0x600000000000n + 4096n * 4096n,
      prot: Prot.READ | Prot.WRITE,
      flags: VmaFlags.ANON,
      pgoff: 0n,
      devMajor: 0,
      devMinor: 0,
      inode: 0n,
      path: null,
      pages: new MemoryPageSource(page((i) => ((i >> 12) % 512 === 0 && (i & 0xfff) === 7 ? 1 : 0), 4096)),
    };
    m.tasks[0]!.mm!.vmas.splice(3, 0, big);
    const file = path.join(dir, 'sparse.core');
    const r = await toElfCore(m, file);
    expect(r.pagesHole).toBeGreaterThan(0);
    const st = fs.statSync(file);
    expect(st.size).toBeGreaterThan(16 << 20);
    expect(st.blocks * 512).toBeLessThan(1 << 20); // 8 of its 4096 pages hold data; the rest are holes
    const ms = new MemorySink();
    await toElfCore(m, ms);
    expect(Buffer.from(ms.bytes()).equals(fs.readFileSync(file))).toBe(true);
    const pt = new PassThrough();
    const chunks: Buffer[] = [];
    pt.on('data', (d: Buffer) => chunks.push(d));
    await toElfCore(m, pt);
    expect(Buffer.concat(chunks).equals(fs.readFileSync(file))).toBe(true);
  });

  it('reads a sparse core back exactly, in pieces that start and end in holes and in data, over stale memory', async () => {
    const m = coreModel();
    // 3000 pages: data in runs of 1..5 pages at uneven spacing, zero pages (holes) between
    const isData = (p: number): boolean => p % 331 < 1 + (p % 5) || p % 1024 > 1019;
    const content = page((i) => (isData(i >> 12) ? ((i * 7 + (i >> 12)) & 0xff) | 1 : 0), 3000);
    const big: Vma = {
      start: 0x610000000000n,
      end: 0x610000000000n + 4096n * 3000n,
      prot: Prot.READ | Prot.WRITE,
      flags: VmaFlags.ANON,
      pgoff: 0n,
      devMajor: 0,
      devMinor: 0,
      inode: 0n,
      path: null,
      pages: new MemoryPageSource(content),
    };
    m.tasks[0]!.mm!.vmas.splice(3, 0, big);
    const file = path.join(dir, 'sparse2.core');
    const r = await toElfCore(m, file);
    expect(r.pagesHole).toBeGreaterThan(2000);
    expect(fs.statSync(file).blocks * 512).toBeLessThan(content.length / 2); // holes on disk
    const c = fromElfCore(file);
    try {
      const v = c.model.tasks[0]!.mm!.vmas.find((x) => x.start === big.start)!;
      const k = kernels();
      const reg = claimRegion(k, 3000 * 4096);
      try {
        for (const [first, n] of [
          [0, 3000],
          [0, 1],
          [1, 330],
          [330, 3],
          [500, 700],
          [1019, 7],
          [2047, 953],
          [2999, 1],
          [1, 2998],
        ] as const) {
          k.u8().fill(0xee, reg, reg + n * 4096); // stale bytes: holes must come back as zeros
          v.pages.read(k, reg, first, n);
          expect(
            Buffer.compare(k.u8().subarray(reg, reg + n * 4096), content.subarray(first * 4096, (first + n) * 4096)),
            `pages ${first}+${n}`,
          ).toBe(0);
        }
      } finally {
        releaseRegion(k, reg);
      }
    } finally {
      c.close();
    }
  });

  it('writes more than 65534 segments with PN_XNUM, and reads them back', async () => {
    const m = coreModel();
    const extra: Vma[] = [];
    for (let i = 0; i < 70000; i++) {
      const s = 0x100000000000n + BigInt(i) * 2n * P;
      extra.push({
        start: s,
        end: s + P,
        prot: Prot.READ,
        flags: VmaFlags.ANON,
        pgoff: 0n,
        devMajor: 0,
        devMinor: 0,
        inode: 0n,
        path: null,
        pages: i % 1000 ? NO_PAGES : new MemoryPageSource(page(() => (i % 251) + 1)),
      });
    }
    m.tasks[0]!.mm!.vmas.unshift(...extra);
    const file = path.join(dir, 'xnum.core');
    await toElfCore(m, file);
    const head = fs.readFileSync(file).subarray(0, 64);
    expect(head.readUInt16LE(56)).toBe(0xffff);
    const re = spawnSync('readelf', ['-h', file], { encoding: 'utf8' });
    expect(re.stdout).toMatch(/Number of program headers:\s+65535 \(70009\)/);
    const c = fromElfCore(file);
    try {
      expect(c.model.tasks[0]!.mm!.vmas).toHaveLength(70008);
      const v = c.model.tasks[0]!.mm!.vmas.find((x) => x.start === 0x100000000000n + 2000n * 2n * P)!;
      withRegion((dst) => expect(vmaBytes(kernels(), v, dst)[0]).toBe((2000 % 251) + 1));
    } finally {
      c.close();
    }
  });

  it('writes the task asked for; refuses unknown pids and tasks without memory', async () => {
    const m = smallModel(3);
    const ms = new MemorySink();
    const r = await toElfCore(m, ms, { pid: 200 });
    expect(r.pid).toBe(200);
    const c = fromElfCore(ms.bytes());
    try {
      expect(c.model.tasks[0]!.pid).toBe(200);
      expect(c.model.tasks[0]!.threads.map((t) => t.tid)).toEqual([200, 201]);
      expect(c.model.tasks[0]!.comm).toBe('t200');
    } finally {
      c.close();
    }
    await expect(toElfCore(m, new MemorySink(), { pid: 999 })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    m.tasks[0]!.mm = null;
    await expect(toElfCore(m, path.join(dir, 'nomm.core'))).rejects.toMatchObject({ code: 'UNMAPPED' });
    expect(fs.existsSync(path.join(dir, 'nomm.core'))).toBe(false);
  });

  it('an image of a core exports to the same core', async () => {
    const a = path.join(dir, 'i1.core'),
      img = path.join(dir, 'i.crimg'),
      b = path.join(dir, 'i2.core');
    await toElfCore(coreModel(), a);
    const c = fromElfCore(a);
    try {
      await writeImage(c.model, img);
    } finally {
      c.close();
    }
    const im = readImage(img);
    try {
      await toElfCore(im, b);
    } finally {
      im.close();
    }
    expect(Buffer.compare(fs.readFileSync(a), fs.readFileSync(b))).toBe(0);
    // the core's mtime carries the snapshot time
    expect(((fs.statSync(b, { bigint: true }).mtimeNs + 500n) / 1000n) * 1000n).toBe(coreModel().header.createdNs);
  });
});

/** What fromElfCore(toElfCore(m)) is expected to give for coreModel(): the model minus what ELF cores cannot hold. */
function expectedAfterCore(m: Model): Model {
  const t = m.tasks[0]!;
  const vmas = t.mm!.vmas.map((v): Vma => {
    const file = v.path !== null && !v.path.startsWith('[');
    const n = Number((v.end - v.start) / P);
    const runs = [...v.pages.runs(n)];
    const last = runs.reduce((e, [f, c]) => Math.max(e, f + c), 0);
    const src = v.pages;
    const pages =
      last === 0
        ? NO_PAGES
        : {
            runs: () => [[0, last] as [number, number]],
            read: (k: Parameters<typeof src.read>[0], dst: number, first: number, cnt: number) => {
              k.u8().fill(0, dst, dst + cnt * 4096);
              for (const [f, c] of runs) {
                const lo = Math.max(f, first),
                  hi = Math.min(f + c, first + cnt);
                if (lo < hi) src.read(k, dst + (lo - first) * 4096, lo, hi - lo);
              }
            },
          };
    return {
      ...v,
      devMajor: 0,
      devMinor: 0,
      inode: 0n,
      pages,
      flags: file ? (v.path!.endsWith(' (deleted)') ? VmaFlags.FILE_DELETED : 0) : v.flags,
      pgoff: file ? v.pgoff : 0n,
    };
  });
  return {
    ...m,
    tasks: [{ ...t, threads: t.threads.map((th, i) => ({ ...th, state: i === 0 ? th.state : '' })), mm: { ...t.mm!, vmas } }],
  };
}

describe('refused cores', () => {
  it('a core whose NT_FILE entries overlap is BAD_CORE', async () => {
    const m = coreModel();
    m.tasks[0]!.mm!.vmas[0]!.path = '/a';
    const ms = new MemorySink();
    await toElfCore(m, ms);
    const b = ms.bytes();
    // make the second entry start inside the first: entries follow count and page_size in NT_FILE
    const buf = Buffer.from(b);
    const at = buf.indexOf(Buffer.from('/a\0'));
    expect(at).toBeGreaterThan(0);
    const descStart = findNtFile(buf);
    buf.writeBigUInt64LE(0x555500001000n, descStart + 16 + 24); // entry 1 start
    expect(() => fromElfCore(new Uint8Array(buf))).toThrow(CrimgError);
    try {
      fromElfCore(new Uint8Array(buf));
    } catch (e) {
      expect((e as CrimgError).code).toBe('BAD_CORE');
    }
  });
});

/** File offset of the NT_FILE descriptor in a core crimg wrote. */
function findNtFile(b: Buffer): number {
  const notesOff = Number(b.readBigUInt64LE(64 + 8));
  const size = Number(b.readBigUInt64LE(64 + 32));
  let o = notesOff;
  while (o < notesOff + size) {
    const namesz = b.readUInt32LE(o),
      descsz = b.readUInt32LE(o + 4),
      type = b.readUInt32LE(o + 8);
    const desc = o + 12 + ((namesz + 3) & ~3);
    if (type === 0x46494c45) return desc;
    o = desc + ((descsz + 3) & ~3);
  }
  throw new Error('no NT_FILE');
}
