/**
 * Live dump internals that make the freeze short: which pages are read
 * (PAGEMAP_SCAN must select exactly what /proc/PID/pagemap selects), the target
 * let go as soon as its last page is read (before the image is written out), and
 * a preallocated image file cut to its real size.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readImage, verifyImage, type Sink } from '../src/index.js';
import { dumpProcess } from '../src/live/dump.js';
import { ProcMemory } from '../src/live/pages.js';
import { pagePolicy } from '../src/live/collect.js';
import { readMaps } from '../src/os/proc.js';

let dir: string;
let prog: string;
let dataFile: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-live-pages-'));
  prog = path.join(dir, 'live-pages');
  execFileSync('gcc', ['-O1', '-o', prog, path.resolve('test/progs/live-pages.c')]);
  dataFile = path.join(dir, 'data.bin');
  fs.writeFileSync(dataFile, Buffer.alloc(16 * 4096, 0x33));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Target {
  proc: ChildProcess;
  pid: number;
  anon: bigint;
  file: bigint;
  shared: bigint;
}

async function start(): Promise<Target> {
  const out = path.join(dir, `out-${Date.now()}-${Math.random().toString(36).slice(2)}.txt`);
  const fd = fs.openSync(out, 'w');
  const proc = spawn(prog, [dataFile], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  for (let i = 0; i < 1000; i++) {
    const m = /READY pid=(\d+) anon=(0x[0-9a-f]+) file=(0x[0-9a-f]+) shared=(0x[0-9a-f]+)/.exec(fs.readFileSync(out, 'utf8'));
    if (m) return { proc, pid: Number(m[1]), anon: BigInt(m[2]!), file: BigInt(m[3]!), shared: BigInt(m[4]!) };
    if (proc.exitCode !== null) throw new Error(`target exited: ${fs.readFileSync(out, 'utf8')}`);
    await sleep(10);
  }
  throw new Error('target did not get ready');
}

async function stop(t: Target | undefined): Promise<void> {
  if (!t) return;
  t.proc.kill('SIGKILL');
  for (let i = 0; i < 500 && t.proc.exitCode === null && t.proc.signalCode === null; i++) await sleep(10);
}

/** Scheduler state letter and TracerPid of a process. */
function stateOf(pid: number): { state: string; tracer: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return { state: stat[stat.lastIndexOf(')') + 2]!, tracer: Number(/TracerPid:\s*(\d+)/.exec(status)![1]) };
}

describe('page selection', () => {
  it('PAGEMAP_SCAN and /proc/PID/pagemap select the same pages, and the right ones', async () => {
    let t: Target | undefined;
    try {
      t = await start();
      const pm = new ProcMemory(t.pid);
      try {
        const maps = readMaps(t.pid, true);
        let compared = 0;
        for (const e of maps) {
          const n = Number((e.end - e.start) / 4096n);
          for (const policy of new Set([pagePolicy(e), 'populated' as const, 'private-file' as const])) {
            if (policy === 'none') continue;
            expect(pm.runs(e.start, n, policy, true), `${e.path || 'anonymous'} ${policy}`).toEqual(pm.runs(e.start, n, policy, false));
            compared++;
          }
        }
        expect(compared).toBeGreaterThan(10);
        const runsAt = (addr: bigint, n: number, policy: 'populated' | 'private-file', scan: boolean): [number, number][] => {
          const e = maps.find((m) => m.start <= addr && addr < m.end)!;
          const first = Number((addr - e.start) / 4096n);
          return pm
            .runs(e.start, Number((e.end - e.start) / 4096n), policy, scan)
            .filter(([f]) => f >= first && f < first + n)
            .map(([f, c]) => [f - first, c]);
        };
        for (const scan of [true, false]) {
          expect(runsAt(t.anon, 64, 'populated', scan)).toEqual([
            [0, 3],
            [5, 1],
            [10, 10],
          ]);
          expect(runsAt(t.file, 16, 'private-file', scan)).toEqual([
            [1, 1],
            [3, 1],
          ]);
          expect(runsAt(t.file, 16, 'populated', scan)).toEqual([[0, 16]]);
          expect(runsAt(t.shared, 8, 'populated', scan)).toEqual([[2, 2]]);
        }
      } finally {
        pm.close();
      }
    } finally {
      await stop(t);
    }
  });
});

describe('freeze', () => {
  it('lets the target go once its last page is read, before the image is written out', async () => {
    let t: Target | undefined;
    try {
      t = await start();
      const seen: { state: string; tracer: number; bytes: number }[] = [];
      const chunks: Uint8Array[] = [];
      let written = 0;
      const sink: Sink = {
        get written() {
          return written;
        },
        write(b: Uint8Array) {
          seen.push({ ...stateOf(t!.pid), bytes: b.length });
          chunks.push(b.slice());
          written += b.length;
        },
        async close() {
          /* nothing */
        },
        abort() {
          chunks.length = 0;
        },
      };
      const r = await dumpProcess(t.pid, sink);
      // the image is small: one write, at the end, made with the target already running
      expect(seen.length).toBeGreaterThan(0);
      const last = seen[seen.length - 1]!;
      expect(last.tracer).toBe(0);
      expect(last.state).not.toBe('t');
      expect(r.freezeNs).toBeGreaterThan(0n);
      expect(r.freezeInHeader).toBe(false);
      const all = new Uint8Array(written);
      let o = 0;
      for (const c of chunks) {
        all.set(c, o);
        o += c.length;
      }
      const img = readImage(all);
      try {
        const vma = img.model.tasks[0]!.mm!.vmas.find((v) => v.start === t!.anon)!;
        const runs = [...vma.pages.runs(64)];
        expect(runs).toEqual([
          [0, 3],
          [5, 1],
          [10, 10],
        ]);
        const page = img.readMemory(t.pid, t.anon + 10n * 4096n, 4096);
        expect(page[7]).toBe(5); // written[4] = 10 holds i + 1 = 5
      } finally {
        img.close();
      }
      expect(stateOf(t.pid).tracer).toBe(0);
    } finally {
      await stop(t);
    }
  });

  it('a preallocated image file is cut to the bytes written', async () => {
    let t: Target | undefined;
    const img = path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : dir, `crimg-live-pages-${process.pid}.crimg`);
    try {
      t = await start();
      const r = await dumpProcess(t.pid, img);
      expect(fs.statSync(img).size).toBe(r.bytes);
      expect(verifyImage(img).ok).toBe(true);
      expect(fs.readdirSync(path.dirname(img)).filter((n) => n.startsWith(`.crimg-live-pages-${process.pid}`))).toEqual([]);
    } finally {
      fs.rmSync(img, { force: true });
      await stop(t);
    }
  });
});
