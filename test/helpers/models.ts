/** Small hand-made models for core tests. */
import {
  type Model,
  type Task,
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
  FdKind,
  readImage,
  type Image,
} from '../../src/index.js';
import type { Kernels } from '../../src/kernels/api.js';

export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/** A model with two tasks, threads with distinct registers, VMAs with data, zero and absent pages. */
export function smallModel(seed = 1, opts: { pages?: number; anonPages?: number } = {}): Model {
  const r = rng(seed);
  const npages = opts.pages ?? 5;
  const anonPages = opts.anonPages ?? 300;
  const mkData = (n: number, zeroEvery = 3): Uint8Array => {
    const d = new Uint8Array(n * 4096);
    for (let p = 0; p < n; p++) {
      if (p % zeroEvery === 1) continue; // zero page
      for (let i = 0; i < 4096; i += 8) d[p * 4096 + i] = Math.floor(r() * 256) | 1;
    }
    return d;
  };
  const task = (pid: number, ppid: number): Task => {
    const th = newThread(pid);
    for (let i = 0; i < 27; i++) th.regs[i] = BigInt(pid) * 0x1000n + BigInt(i) + (BigInt(Math.floor(r() * 2 ** 32)) << 32n);
    th.fpu[160] = pid & 0xff;
    th.fpu[161] = 0x5a; // xmm0
    th.xstate = { xcr0: 0x207n, ext: new Uint8Array(2696 - 512).map((_, i) => (i * 7 + pid) & 0xff) };
    th.sigmask = 0x4000n;
    th.state = 'S';
    const th2 = newThread(pid + 1);
    th2.rseq = { ptr: 0x7f0000001000n, len: 32, sig: 0x53053053, flags: 0 };
    const vmas: Vma[] = [
      {
        start: 0x400000n,
        end: 0x400000n + BigInt(npages * 4096),
        prot: Prot.READ | Prot.EXEC,
        flags: 0,
        pgoff: 0n,
        devMajor: 8,
        devMinor: 1,
        inode: 1234n,
        path: '/usr/bin/test',
        pages: new MemoryPageSource(mkData(npages)),
      },
      {
        start: 0x600000n,
        end: 0x600000n + 8n * 4096n,
        prot: Prot.READ | Prot.WRITE,
        flags: VmaFlags.ANON | VmaFlags.HEAP,
        pgoff: 0n,
        devMajor: 0,
        devMinor: 0,
        inode: 0n,
        path: '[heap]',
        pages: new MemoryPageSource(mkData(8, 2), [
          [1, 2],
          [5, 3],
        ]),
      },
      {
        start: 0x7f0000000000n,
        end: 0x7f0000000000n + 4096n * BigInt(anonPages),
        prot: Prot.READ | Prot.WRITE,
        flags: VmaFlags.ANON,
        pgoff: 0n,
        devMajor: 0,
        devMinor: 0,
        inode: 0n,
        path: null,
        pages: new MemoryPageSource(mkData(anonPages, 5)),
      },
      {
        start: 0x7ffd00000000n,
        end: 0x7ffd00002000n,
        prot: Prot.READ,
        flags: VmaFlags.VVAR,
        pgoff: 0n,
        devMajor: 0,
        devMinor: 0,
        inode: 0n,
        path: '[vvar]',
        pages: NO_PAGES,
      },
    ];
    return {
      pid,
      tgid: pid,
      ppid,
      pgid: 100,
      sid: 100,
      comm: `t${pid}`,
      exe: '/usr/bin/test',
      cwd: '/tmp',
      root: '/',
      args: ['test', '-x', 'ünïcode'],
      env: ['A=1'],
      personality: 0,
      exitSignal: 17,
      creds: { ...emptyCreds(), uid: 1000, euid: 1000, groups: [1000, 27], capBnd: 0x1ffffffffffn },
      rlimits: defaultRlimits(),
      ns: { ...emptyNsIds(), pid: 4026531836n, uts: 4026531838n },
      threads: [th, th2],
      mm: {
        startCode: 0x400000n,
        endCode: 0x405000n,
        startData: 0x600000n,
        endData: 0x601000n,
        startBrk: 0x600000n,
        brk: 0x608000n,
        startStack: 0x7ffd00001000n,
        argStart: 1n,
        argEnd: 2n,
        envStart: 3n,
        envEnd: 4n,
        auxv: [6n, 4096n, 33n, 0x7ffd00000000n],
        vmas,
      },
      files: [
        {
          fd: 0,
          kind: FdKind.OTHER,
          path: '/dev/null',
          flags: 0,
          pos: 0n,
          mode: 0o20666,
          cloexec: false,
          devMajor: 1,
          devMinor: 3,
          inode: 5n,
          size: 0n,
        },
        {
          fd: 3,
          kind: FdKind.REGULAR,
          path: '/tmp/data',
          flags: 2,
          pos: 12345n,
          mode: 0o100644,
          cloexec: true,
          devMajor: 8,
          devMinor: 1,
          inode: 99n,
          size: 65536n,
        },
        {
          fd: 4,
          kind: FdKind.DIRECTORY,
          path: '/tmp',
          flags: 0o200000,
          pos: 0n,
          mode: 0o40755,
          cloexec: false,
          devMajor: 8,
          devMinor: 1,
          inode: 2n,
          size: 4096n,
        },
      ],
      nocr: pid === 200 ? [{ code: 'SOCKET', pid, text: 'fd 5 is a socket' }] : [],
    };
  };
  return {
    header: {
      crid: 7n,
      createdNs: 1_700_000_000_000_000_000n,
      freezeNs: 123n,
      flags: HeaderFlags.LIVE,
      tool: 'crimg test',
      uts: { sysname: 'Linux', nodename: 'box', release: '6.1', version: '#1', machine: 'x86_64', domainname: '(none)' },
    },
    namespaces: [
      { kind: 'uts', id: 4026531838n, nodename: 'box', domainname: '(none)' },
      { kind: 'pid', id: 4026531836n },
    ],
    tasks: [task(100, 1), task(200, 100)],
  };
}

/** All pages of a VMA read through its page source, as bytes (absent pages zero). */
export function vmaBytes(k: Kernels, v: Vma, dst: number): Uint8Array {
  const n = Number((v.end - v.start) / 4096n);
  const out = new Uint8Array(n * 4096);
  for (const [first, count] of v.pages.runs(n)) {
    v.pages.read(k, dst, first, count);
    out.set(k.u8().subarray(dst, dst + count * 4096), first * 4096);
  }
  return out;
}

/** Plain-data form of a model with page contents, for deep equality. */
export function flatten(model: Model, k: Kernels, dst: number): unknown {
  return {
    ...model,
    tasks: model.tasks.map((t) => ({
      ...t,
      threads: t.threads.map((th) => ({
        ...th,
        regs: Array.from(th.regs),
        fpu: Array.from(th.fpu),
        xstate: th.xstate ? { xcr0: th.xstate.xcr0, ext: Array.from(th.xstate.ext) } : null,
      })),
      mm: t.mm
        ? {
            ...t.mm,
            vmas: t.mm.vmas.map((v) => ({
              ...v,
              pages: {
                runs: mergeRuns([...v.pages.runs(Number((v.end - v.start) / 4096n))]),
                bytes: Buffer.from(vmaBytes(k, v, dst)).toString('base64'),
              },
            })),
          }
        : null,
    })),
  };
}

export function readBytes(bytes: Uint8Array): Image {
  return readImage(bytes);
}

export function mergeRuns(runs: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const [f, n] of runs) {
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === f) last[1] += n;
    else out.push([f, n]);
  }
  return out;
}
