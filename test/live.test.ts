/**
 * Live dump of real processes (crimg dump / dumpProcess): registers of several
 * threads, memory patterns, open files; the target keeps running unaffected;
 * --leave-stopped, --kill; failures leave nothing stopped, traced or half-written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crimg, CLI } from './helpers/cli.js';
import { MemorySink, readImage } from '../src/index.js';
import { dumpProcess } from '../src/live/dump.js';
import { processVmRead } from '../src/os/libc.js';

let dir: string;
let prog: string;
let dataFile: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-live-'));
  prog = path.join(dir, 'live-threads');
  execFileSync('gcc', ['-O1', '-pthread', '-o', prog, path.resolve('test/progs/live-threads.c')]);
  dataFile = path.join(dir, 'data.bin');
  fs.writeFileSync(dataFile, Buffer.alloc(50000, 0x5a));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Target {
  proc: ChildProcess;
  pid: number;
  out: string;
  tids: number[];
  sigTid: number;
  fd: number;
  data: bigint;
  heap: bigint;
  anon: bigint;
  vals: bigint;
  stride: number;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
}

let nameSeq = 0;
async function start(nthreads = 4): Promise<Target> {
  const out = path.join(dir, `out-${nameSeq++}.txt`);
  const fd = fs.openSync(out, 'w');
  const proc = spawn(prog, [dataFile, String(nthreads)], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  const t = { proc, out, exit: null } as Target;
  proc.on('exit', (code, signal) => {
    t.exit = { code, signal };
  });
  for (let i = 0; i < 1000; i++) {
    const text = fs.readFileSync(out, 'utf8');
    const m =
      /READY pid=(\d+) tids=([\d,]+) sig=(\d+) data=(0x[0-9a-f]+) heap=(0x[0-9a-f]+) anon=(0x[0-9a-f]+) fd=(\d+) vals=(0x[0-9a-f]+) stride=(\d+)/.exec(
        text,
      );
    if (m) {
      Object.assign(t, {
        pid: Number(m[1]),
        tids: m[2]!.split(',').map(Number),
        sigTid: Number(m[3]),
        data: BigInt(m[4]!),
        heap: BigInt(m[5]!),
        anon: BigInt(m[6]!),
        fd: Number(m[7]),
        vals: BigInt(m[8]!),
        stride: Number(m[9]),
      });
      return t;
    }
    if (t.exit) throw new Error(`target exited early: ${JSON.stringify(t.exit)} ${text}`);
    await sleep(10);
  }
  throw new Error('target did not get ready');
}

async function stop(t: Target | undefined): Promise<void> {
  if (!t || t.exit) return;
  try {
    process.kill(t.pid, 'SIGCONT');
  } catch {
    /* gone */
  }
  t.proc.kill('SIGKILL');
  for (let i = 0; i < 500 && !t.exit; i++) await sleep(10);
}

function counters(t: Target): bigint[] {
  return t.tids.map((_, i) => {
    const b = new Uint8Array(8);
    processVmRead(t.pid, b, t.vals + BigInt(t.stride * i + 320));
    return new DataView(b.buffer).getBigUint64(0, true);
  });
}

/** Wait until every parked thread made progress past `before` (and the target did not exit). */
async function progressed(t: Target, before: bigint[]): Promise<bigint[]> {
  for (let i = 0; i < 600; i++) {
    if (t.exit) throw new Error(`target exited: ${JSON.stringify(t.exit)} (3 = EINTR leaked, 4 = register changed)`);
    const now = counters(t);
    if (now.every((c, j) => c > before[j]!)) return now;
    await sleep(10);
  }
  throw new Error(`threads stopped making progress: ${before} -> ${counters(t)}`);
}

function procState(pid: number): { states: string[]; tracers: number[] } {
  const tids = fs.readdirSync(`/proc/${pid}/task`);
  const states: string[] = [];
  const tracers: number[] = [];
  for (const tid of tids) {
    const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    states.push(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
    const st = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    tracers.push(Number(/TracerPid:\s*(\d+)/.exec(st)![1]));
  }
  return { states, tracers };
}

const pattern = (r: number, i: number): number => (i * 131 + r * 17 + (i >> 12) * 7) & 0xff;
const gpr = (t: number, j: number): bigint => 0xa5a5000000000000n | (BigInt(t) << 32n) | (BigInt(j) << 16n) | 0xbeefn;
const xmm = (t: number, k: number): bigint => {
  const lo = 0x3c00000000000000n | (BigInt(t) << 32n) | (BigInt(k) << 16n) | 0x1234n;
  return ((lo | (1n << 52n)) << 64n) | lo;
};
const hx = (v: bigint): string => `0x${v.toString(16)}`;

function readMem(img: string, pid: number, addr: bigint, len: number): Buffer {
  const r = crimg(['read', img, '--pid', String(pid), '--addr', hx(addr), '--len', String(len)]);
  expect(r.code, r.stderr).toBe(0);
  return r.out;
}

describe('crimg dump of a multi-threaded process', () => {
  it("records every thread's registers, memory and files, and the process goes on unaffected", async () => {
    let t: Target | undefined;
    try {
      t = await start(4);
      const before = counters(t);
      const img = path.join(dir, 'mt.crimg');
      const r = crimg(['dump', String(t.pid), '-o', img, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const sum = JSON.parse(r.stdout);
      expect(Number(BigInt(sum.freezeNs))).toBeGreaterThan(0);
      expect(sum.freezeInHeader).toBe(true);
      expect(sum.tasks[0].threads.sort()).toEqual([...t.tids, t.sigTid].sort());

      // nothing left traced or stopped, and every parked thread continues (EINTR or a clobbered register would exit it)
      const ps = procState(t.pid);
      expect(ps.tracers.every((x) => x === 0)).toBe(true);
      expect(ps.states.every((s) => s === 'S' || s === 'R')).toBe(true);
      const after1 = await progressed(t, before);
      await progressed(t, after1); // thread 1 sleeps 1 s at a time: its interrupted sleep was restarted, not failed

      expect(crimg(['verify', img]).code).toBe(0);
      const doc = JSON.parse(crimg(['show', '--json', img]).stdout);
      expect(doc.header.flags).toContain('live');
      expect(doc.header.freezeNs).toBe(sum.freezeNs);
      expect(doc.header.crid).toBe(sum.crid);
      expect(doc.tasks).toHaveLength(1);
      const task = doc.tasks[0];
      expect(task.pid).toBe(t.pid);
      expect(task.comm).toBe('live-threads');
      expect(task.exe).toBe(prog);
      expect(task.args).toEqual([prog, dataFile, '4']);
      expect(task.cwd).toBe(process.cwd());
      expect(task.creds.uid).toBe(process.getuid!());
      expect(task.threads).toHaveLength(5);
      t.tids.forEach((tid, ti) => {
        const th = task.threads.find((x: { tid: number }) => x.tid === tid);
        expect(th, `thread ${tid}`).toBeTruthy();
        ['rbx', 'rbp', 'r12', 'r13', 'r14', 'r15'].forEach((reg, j) => expect(th.regs[reg], `${reg} of thread ${ti}`).toBe(hx(gpr(ti, j))));
        for (let k = 0; k < 16; k++) expect(th.fpu.xmm[k], `xmm${k} of thread ${ti}`).toBe(hx(xmm(ti, k)));
        expect(BigInt(th.sigmask) & (1n << 9n)).toBe(1n << 9n); // SIGUSR1 blocked in parked threads
        expect(th.fpu.mxcsr).toBe(0x1f80);
        expect(th.xstate === null || BigInt(th.xstate.xcr0) & 3n).toBeTruthy();
      });
      const sigTh = task.threads.find((x: { tid: number }) => x.tid === t!.sigTid);
      expect(BigInt(sigTh.sigmask) & (1n << 9n)).toBe(0n);
      // distinct TLS per thread
      expect(new Set(task.threads.map((x: { regs: { fs_base: string } }) => x.regs.fs_base)).size).toBe(5);

      // the open file, at its position
      const f = task.files.find((x: { fd: number }) => x.fd === t!.fd);
      expect(f.path).toBe(dataFile);
      expect(f.kind).toBe('regular');
      expect(BigInt(f.pos)).toBe(12345n);
      expect(f.flags & 3).toBe(2); // O_RDWR
      expect(BigInt(f.size)).toBe(50000n);

      // memory: patterns, untouched pages absent, the zeroed page elided
      const data = readMem(img, t.pid, t.data, 3 * 4096);
      expect(data.every((b, i) => b === pattern(1, i))).toBe(true);
      const heap = readMem(img, t.pid, t.heap, 5 * 4096);
      expect(heap.every((b, i) => b === pattern(2, i))).toBe(true);
      const anon = readMem(img, t.pid, t.anon, 8 * 4096);
      for (let p = 0; p < 8; p++) {
        const pg = anon.subarray(p * 4096, (p + 1) * 4096);
        if ([1, 2, 5, 6].includes(p))
          expect(
            pg.every((b) => b === 0),
            `anon page ${p}`,
          ).toBe(true);
        else
          expect(
            pg.every((b, i) => b === pattern(3, p * 4096 + i)),
            `anon page ${p}`,
          ).toBe(true);
      }
      const av = task.vmas.find((v: { start: string }) => BigInt(v.start) === t!.anon);
      expect(av.totalPages).toBe(8);
      expect(av.pages).toBe(4); // pages 0, 3, 4, 7
      expect(av.zeroPages).toBe(1); // page 5; never-touched pages 1, 2, 6 are not recorded at all
      expect(task.vmas.some((v: { path: string }) => v.path === '[stack]')).toBe(true);
      expect(task.vmas.some((v: { path: string }) => v.path === prog)).toBe(true);
      expect(task.mm.auxv.length).toBeGreaterThan(10);
      // namespaces with the UTS names
      const uts = doc.namespaces.find((n: { kind: string }) => n.kind === 'uts');
      expect(uts.nodename).toBe(os.hostname());
      expect(task.ns.uts).toBe(uts.id);
      expect(task.nocr).toEqual([]);
    } finally {
      await stop(t);
    }
  });

  it('agrees with a gcore core of the same process taken right after', async () => {
    let t: Target | undefined;
    try {
      t = await start(3);
      const img = path.join(dir, 'g.crimg');
      expect(crimg(['dump', String(t.pid), '-o', img]).code).toBe(0);
      const core = path.join(dir, 'g.core');
      execFileSync('gcore', ['-o', path.join(dir, 'g'), String(t.pid)], { stdio: 'ignore', timeout: 60_000 });
      fs.renameSync(`${path.join(dir, 'g')}.${t.pid}`, core);
      const conv = path.join(dir, 'g-core.crimg');
      const c = crimg(['convert', core, '-o', conv]);
      expect(c.code, c.stderr).toBe(0);
      const a = JSON.parse(crimg(['show', '--json', img]).stdout).tasks[0];
      const b = JSON.parse(crimg(['show', '--json', conv]).stdout).tasks[0];
      expect(b.threads.map((x: { tid: number }) => x.tid).sort()).toEqual(a.threads.map((x: { tid: number }) => x.tid).sort());
      for (const ta of a.threads) {
        const tb = b.threads.find((x: { tid: number }) => x.tid === ta.tid);
        for (const reg of ['rbx', 'rbp', 'r12', 'r13', 'r14', 'r15', 'fs_base', 'cs', 'ss'])
          expect(tb.regs[reg], `${reg} of ${ta.tid}`).toBe(ta.regs[reg]);
        expect(tb.fpu.xmm).toEqual(ta.fpu.xmm);
        expect(tb.fpu.mxcsr).toBe(ta.fpu.mxcsr);
        if (ta.xstate && tb.xstate) expect(tb.xstate.ymmh).toEqual(ta.xstate.ymmh);
      }
      for (const [addr, len] of [
        [t.data, 3 * 4096],
        [t.heap, 5 * 4096],
      ] as [bigint, number][]) {
        expect(readMem(conv, t.pid, addr, len).equals(readMem(img, t.pid, addr, len))).toBe(true);
      }
      expect(t.exit).toBe(null);
    } finally {
      await stop(t);
    }
  });

  it('delivers signals exactly once around a dump', async () => {
    let t: Target | undefined;
    try {
      t = await start(2);
      const usr1 = (): number => (fs.readFileSync(t!.out, 'utf8').match(/^USR1$/gm) ?? []).length;
      const waitUsr1 = async (n: number): Promise<void> => {
        for (let i = 0; i < 500 && usr1() < n; i++) await sleep(10);
        expect(usr1()).toBe(n);
      };
      process.kill(t.pid, 'SIGUSR1');
      await waitUsr1(1);
      expect(crimg(['dump', String(t.pid), '-o', path.join(dir, 's1.crimg')]).code).toBe(0);
      process.kill(t.pid, 'SIGUSR1');
      await waitUsr1(2);
      expect(crimg(['dump', String(t.pid), '-o', path.join(dir, 's2.crimg')]).code).toBe(0);
      await progressed(t, counters(t));
      expect(usr1()).toBe(2);
      expect(t.exit).toBe(null);
    } finally {
      await stop(t);
    }
  });
});

describe('crimg dump --leave-stopped / --kill', () => {
  it('--leave-stopped leaves every thread in a plain stop; SIGCONT resumes it without EINTR', async () => {
    let t: Target | undefined;
    try {
      t = await start(3);
      const img = path.join(dir, 'stopped.crimg');
      const r = crimg(['dump', String(t.pid), '-o', img, '--leave-stopped']);
      expect(r.code, r.stderr).toBe(0);
      let ps = procState(t.pid);
      for (let i = 0; i < 200 && !ps.states.every((s) => s === 'T'); i++) {
        await sleep(10);
        ps = procState(t.pid);
      }
      expect(ps.states.every((s) => s === 'T')).toBe(true);
      expect(ps.tracers.every((x) => x === 0)).toBe(true);
      const doc = JSON.parse(crimg(['show', '--json', img]).stdout);
      expect(doc.header.flags).toContain('left_stopped');
      const c0 = counters(t);
      process.kill(t.pid, 'SIGCONT');
      await progressed(t, c0);
      expect(procState(t.pid).states.every((s) => s === 'S' || s === 'R')).toBe(true);
    } finally {
      await stop(t);
    }
  });

  it('--kill kills the process once the image is written', async () => {
    let t: Target | undefined;
    try {
      t = await start(2);
      const img = path.join(dir, 'killed.crimg');
      const r = crimg(['dump', String(t.pid), '-o', img, '--kill']);
      expect(r.code, r.stderr).toBe(0);
      for (let i = 0; i < 500 && !t.exit; i++) await sleep(10);
      expect(t.exit?.signal).toBe('SIGKILL');
      expect(crimg(['verify', img]).code).toBe(0);
    } finally {
      await stop(t);
    }
  });

  it('--leave-stopped and --kill together are a usage error', () => {
    const r = crimg(['dump', '1', '-o', path.join(dir, 'x.crimg'), '--kill', '--leave-stopped']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^crimg: USAGE: /);
  });
});

describe('dump failures leave the target running and no image behind', () => {
  const leftovers = (d: string): string[] => fs.readdirSync(d).filter((f) => f.includes('.tmp-') || f === 'out.crimg');

  it('disk full: IO error, target resumed', async () => {
    let t: Target | undefined;
    try {
      t = await start(2);
      const c0 = counters(t);
      const r = crimg(['dump', String(t.pid), '-o', '/dev/full']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^crimg: IO: .*ENOSPC/);
      expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
      const ps = procState(t.pid);
      expect(ps.tracers.every((x) => x === 0)).toBe(true);
      await progressed(t, c0);
    } finally {
      await stop(t);
    }
  });

  it('SIGINT or SIGTERM to crimg while the target is frozen: INTERRUPTED, target resumed, no partial image', async () => {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      let t: Target | undefined;
      const d = fs.mkdtempSync(path.join(dir, 'int-'));
      try {
        t = await start(2);
        const c0 = counters(t);
        const child = spawn(process.execPath, [CLI, 'dump', String(t.pid), '-o', path.join(d, 'out.crimg')], {
          env: { ...process.env, CRIMG_DEBUG_HOLD_FROZEN_MS: '20000' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stderr = '';
        child.stderr!.on('data', (b) => {
          stderr += b;
        });
        const done = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
        // wait until crimg holds the target frozen
        for (let i = 0; i < 1000 && !procState(t.pid).tracers.every((x) => x === child.pid); i++) await sleep(10);
        expect(procState(t.pid).tracers.every((x) => x === child.pid)).toBe(true);
        child.kill(sig);
        expect(await done).toBe(1);
        expect(stderr).toMatch(/^crimg: INTERRUPTED: /);
        expect(leftovers(d)).toEqual([]);
        expect(procState(t.pid).tracers.every((x) => x === 0)).toBe(true);
        await progressed(t, c0);
      } finally {
        await stop(t);
      }
    }
  });

  it('the target exits during the dump: NO_PROCESS, no partial image', async () => {
    let t: Target | undefined;
    const d = fs.mkdtempSync(path.join(dir, 'exit-'));
    try {
      t = await start(2);
      const child = spawn(process.execPath, [CLI, 'dump', String(t.pid), '-o', path.join(d, 'out.crimg')], {
        env: { ...process.env, CRIMG_DEBUG_HOLD_FROZEN_MS: '1500' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr!.on('data', (b) => {
        stderr += b;
      });
      const done = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      for (let i = 0; i < 1000 && !procState(t.pid).tracers.every((x) => x === child.pid); i++) await sleep(10);
      process.kill(t.pid, 'SIGKILL');
      expect(await done).toBe(1);
      expect(stderr).toMatch(/^crimg: NO_PROCESS: .*exited/);
      expect(leftovers(d)).toEqual([]);
    } finally {
      await stop(t);
    }
  });
});

describe('freezing while threads come and go', () => {
  it('dumps a process that keeps creating and ending threads, which goes on afterwards', async () => {
    const churn = path.join(dir, 'live-churn');
    execFileSync('gcc', ['-O1', '-pthread', '-o', churn, path.resolve('test/progs/live-churn.c')]);
    const out = path.join(dir, 'churn.txt');
    const fd = fs.openSync(out, 'w');
    const proc = spawn(churn, [], { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    let exit: number | null | undefined;
    proc.on('exit', (code) => {
      exit = code;
    });
    const rounds = (): number => (fs.readFileSync(out, 'utf8').match(/^ROUND /gm) ?? []).length;
    try {
      for (let i = 0; i < 1000 && rounds() < 1; i++) await sleep(10);
      for (let n = 0; n < 3; n++) {
        const img = path.join(dir, `churn-${n}.crimg`);
        const r = crimg(['dump', String(proc.pid), '-o', img, '--json']);
        expect(r.code, r.stderr).toBe(0);
        const doc = JSON.parse(crimg(['show', '--json', img]).stdout);
        expect(doc.tasks[0].threads.length).toBeGreaterThanOrEqual(1);
        expect(doc.tasks[0].threads[0].tid).toBe(proc.pid);
        expect(crimg(['verify', img]).code).toBe(0);
        const r0 = rounds();
        for (let i = 0; i < 1000 && rounds() <= r0 && exit === undefined; i++) await sleep(10);
        expect(exit).toBe(undefined);
        expect(rounds()).toBeGreaterThan(r0);
      }
    } finally {
      proc.kill('SIGKILL');
    }
  });
});

describe('dumpProcess (library)', () => {
  it('writes to a MemorySink with the freeze time in the header', async () => {
    let t: Target | undefined;
    try {
      t = await start(2);
      const sink = new MemorySink();
      const r = await dumpProcess(t.pid, sink);
      expect(r.freezeNs).toBeGreaterThan(0n);
      expect(r.freezeInHeader).toBe(true);
      const img = readImage(sink.bytes());
      try {
        expect(img.model.header.freezeNs).toBe(r.freezeNs);
        expect(img.stats.imageCsum).toBe(r.imageCsum);
        expect(img.model.tasks[0]!.threads.map((x) => x.tid).sort()).toEqual([...t.tids, t.sigTid].sort());
        const th0 = img.model.tasks[0]!.threads.find((x) => x.tid === t!.tids[0])!;
        expect(th0.regs[5]).toBe(gpr(0, 0)); // rbx
      } finally {
        img.close();
      }
      await progressed(t, counters(t));
    } finally {
      await stop(t);
    }
  });
});
