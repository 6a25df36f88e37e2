/**
 * Faults around live processes: whatever goes wrong during `crimg dump`, `crimg run`
 * or `crimg restore` (crimg gets SIGINT/SIGTERM/SIGKILL, the target exits or is
 * killed, the disk is full, the destination is unwritable, permission is missing),
 * the target is left detached and running as before (or, for restore, the stub is
 * killed), no process is left stopped or traced, and no partial image is left at the
 * destination name.
 *
 * The target is a small C program compiled here: it fills MB megabytes with a pattern
 * (so that a dump takes a while), then appends "tick N" to a file every 20 ms.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { verifyImage } from '../src/index.js';
// @ts-expect-error plain JavaScript helper without types
import { buildLib } from './fuzz/lib-build.mjs';
import { mount, umount, umountAllUnder } from './helpers/tmpfs.js';

const TICK_C = `
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
  /* descriptors leaked by whoever started the test (pipes held elsewhere) would make the dump UNSAFE */
  for (int fd = 3; fd < 1024; fd++) close(fd);
  long mb = atol(argv[1]), life = atol(argv[2]);
  size_t n = (size_t)mb << 20;
  unsigned char *p = malloc(n + 1);
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 131 + (i >> 12));
  FILE *f = fopen(argv[3], "w");
  setvbuf(f, NULL, _IOLBF, 0);
  fprintf(f, "READY %d\\n", (int)getpid());
  struct timespec ts = { 0, 20 * 1000 * 1000 };
  for (long t = 0;; t++) {
    if (life >= 0 && t * 20 >= life) return 0;
    fprintf(f, "tick %ld %u\\n", t, p[(t * 4099) % (n + 1)]);
    nanosleep(&ts, NULL);
  }
}
`;

let lib: { dir: string; cli: string; cleanup: () => void };
let tmp: string;
let bin: string;
const started: ChildProcess[] = [];
/** Commands started by `crimg run` (not our children): killed at the end whatever happened. */
const commands: number[] = [];

beforeAll(async () => {
  lib = await buildLib();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-rel-live-'));
  fs.writeFileSync(path.join(tmp, 'tick.c'), TICK_C);
  bin = path.join(tmp, 'tick');
  const r = spawnSync('gcc', ['-O1', '-o', bin, path.join(tmp, 'tick.c')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc failed: ${r.stderr}`);
});
afterAll(() => {
  for (const c of started)
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
  for (const pid of commands) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  lib?.cleanup();
  if (tmp) {
    umountAllUnder(tmp);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Target {
  pid: number;
  child: ChildProcess;
  ticks: string;
  kill(): Promise<void>;
}

/** Start the target and wait until it has filled its memory and ticks. */
async function target(mb = 24, lifeMs = -1): Promise<Target> {
  const ticks = path.join(tmp, `ticks-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  const child = spawn(bin, [String(mb), String(lifeMs), ticks], { stdio: 'ignore' });
  started.push(child);
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  for (let i = 0; i < 1000 && !(fs.existsSync(ticks) && fs.readFileSync(ticks, 'utf8').includes('tick')); i++) await sleep(10);
  return {
    pid: child.pid!,
    child,
    ticks,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

function tickCount(t: Target): number {
  return (fs.readFileSync(t.ticks, 'utf8').match(/^tick /gm) ?? []).length;
}

function status(pid: number): { state: string; tracer: number } | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return { state: /^State:\s+(\S)/m.exec(s)![1]!, tracer: Number(/^TracerPid:\s+(\d+)/m.exec(s)![1]) };
  } catch {
    return null;
  }
}

/** The target is detached, not stopped, and keeps running (its tick count grows). */
async function expectRunningAsBefore(t: Target): Promise<void> {
  const st = status(t.pid);
  expect(st, 'target gone').not.toBeNull();
  expect(st!.tracer, 'target still traced').toBe(0);
  expect(['R', 'S', 'D'], `target state ${st!.state}`).toContain(st!.state);
  const n0 = tickCount(t);
  for (let i = 0; i < 500 && tickCount(t) <= n0 + 2; i++) await sleep(20);
  expect(tickCount(t)).toBeGreaterThan(n0 + 2);
  const st2 = status(t.pid)!;
  expect(st2.tracer).toBe(0);
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  stdout: string;
}

function crimgSync(args: string[], opts: { uid?: number; gid?: number } = {}): Run {
  const r = spawnSync(process.execPath, [lib.cli, ...args], { encoding: 'utf8', timeout: 120_000, ...opts });
  return { code: r.status, signal: r.signal, stderr: r.stderr, stdout: r.stdout };
}

function crimgSpawn(args: string[]): { child: ChildProcess; done: Promise<Run>; err: () => string } {
  const child = spawn(process.execPath, [lib.cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let stdout = '',
    stderr = '';
  child.stdout!.on('data', (d) => {
    stdout += d;
  });
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  // 'exit', not 'close': a command left running by crimg run keeps its stdio pipes open
  const done = new Promise<Run>((res) => child.on('exit', (code, signal) => setTimeout(() => res({ code, signal, stderr, stdout }), 50)));
  return { child, done, err: () => stderr };
}

function oneErrorLine(r: Run, code: RegExp): void {
  expect(r.code).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(code);
}

/** Nothing at `dest` but possibly a complete valid image. */
function absentOrComplete(dest: string): 'absent' | 'complete' {
  if (!fs.existsSync(dest)) return 'absent';
  expect(verifyImage(dest).ok).toBe(true);
  return 'complete';
}

function tempsOf(dir: string, base: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.startsWith(`.${base}.tmp-`));
}

/** Wait until the dump's temporary file shows up (the target is then frozen or being read), or crimg exits. */
async function whileWriting(dir: string, base: string, child: ChildProcess, maxMs: number): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < maxMs && child.exitCode === null && tempsOf(dir, base).length === 0) await sleep(2);
}

describe('dump: crimg interrupted or killed', () => {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    it(`${sig} to crimg dump at random moments: the target runs on untraced, no partial image`, async () => {
      const t = await target();
      try {
        const dir = path.join(tmp, `dump-${sig}`);
        fs.mkdirSync(dir);
        const outcomes = { interrupted: 0, finished: 0, beforeStart: 0 };
        for (let i = 0; i < 6; i++) {
          const dest = path.join(dir, `img${i}.crimg`);
          const { child, done } = crimgSpawn(['dump', String(t.pid), '-o', dest, '--quiet']);
          if (i % 2 === 0) await whileWriting(dir, `img${i}.crimg`, child, 10_000);
          else await sleep(Math.floor(Math.random() * 400));
          child.kill(sig);
          const r = await done;
          if (r.signal === sig) {
            // the signal came before crimg installed its handler (still starting up: nothing was touched)
            // or after it removed it (done and renamed, exiting): the destination is absent or complete
            outcomes.beforeStart++;
            expect(['absent', 'complete']).toContain(absentOrComplete(dest));
          } else if (r.code === 0) {
            outcomes.finished++;
            expect(absentOrComplete(dest)).toBe('complete');
          } else {
            outcomes.interrupted++;
            oneErrorLine(r, /^crimg: INTERRUPTED: /);
            expect(fs.existsSync(dest)).toBe(false);
          }
          expect(tempsOf(dir, `img${i}.crimg`)).toEqual([]);
          await expectRunningAsBefore(t);
        }
        expect(outcomes.interrupted + outcomes.finished + outcomes.beforeStart).toBe(6);
      } finally {
        await t.kill();
      }
    }, 180_000);
  }

  it('SIGKILL to crimg dump at random moments: the target runs on untraced, the destination absent or complete', async () => {
    const t = await target();
    try {
      const dir = path.join(tmp, 'dump-kill');
      fs.mkdirSync(dir);
      for (let i = 0; i < 6; i++) {
        const dest = path.join(dir, `img${i}.crimg`);
        const { child, done } = crimgSpawn(['dump', String(t.pid), '-o', dest, '--quiet']);
        if (i % 2 === 0) await whileWriting(dir, `img${i}.crimg`, child, 10_000);
        else await sleep(Math.floor(Math.random() * 400));
        child.kill('SIGKILL');
        await done;
        absentOrComplete(dest);
        await expectRunningAsBefore(t);
      }
    } finally {
      await t.kill();
    }
  }, 180_000);
});

describe('dump: the target goes away', () => {
  it('target killed during the dump: clear error or a complete image, never a partial one', async () => {
    const dir = path.join(tmp, 'dump-target-killed');
    fs.mkdirSync(dir);
    for (let i = 0; i < 4; i++) {
      const t = await target();
      const dest = path.join(dir, `img${i}.crimg`);
      const { child, done } = crimgSpawn(['dump', String(t.pid), '-o', dest, '--quiet']);
      if (i % 2 === 0) await whileWriting(dir, `img${i}.crimg`, child, 10_000);
      else await sleep(Math.floor(Math.random() * 200));
      await t.kill();
      const r = await done;
      if (r.code !== 0) oneErrorLine(r, /^crimg: [A-Z_]+: /);
      absentOrComplete(dest);
      expect(tempsOf(dir, `img${i}.crimg`)).toEqual([]);
    }
  }, 180_000);

  it('target exiting on its own during the dump: clear error or a complete image', async () => {
    const dir = path.join(tmp, 'dump-target-exits');
    fs.mkdirSync(dir);
    for (let i = 0; i < 4; i++) {
      const t = await target(24, 40 + 40 * i);
      const dest = path.join(dir, `img${i}.crimg`);
      const r = crimgSync(['dump', String(t.pid), '-o', dest, '--quiet']);
      if (r.code !== 0) oneErrorLine(r, /^crimg: [A-Z_]+: /);
      absentOrComplete(dest);
      expect(tempsOf(dir, `img${i}.crimg`)).toEqual([]);
      await t.kill();
    }
  }, 180_000);

  it('no such process: NO_PROCESS, exit 1, nothing written', () => {
    const dest = path.join(tmp, 'nope.crimg');
    oneErrorLine(crimgSync(['dump', '999999999', '-o', dest]), /^crimg: (NO_PROCESS|USAGE): /);
    const gone = spawnSync('true');
    oneErrorLine(crimgSync(['dump', String(gone.pid), '-o', dest]), /^crimg: NO_PROCESS: /);
    expect(fs.existsSync(dest)).toBe(false);
  });
});

describe('dump: the destination fails', () => {
  it('disk full: IO ENOSPC, exit 1, no partial file, the target runs on untraced', async () => {
    const t = await target(24);
    const mnt = path.join(tmp, 'dump-full');
    mount(mnt, 'size=2m');
    try {
      for (const extra of [[], ['--fsync']]) {
        const r = crimgSync(['dump', String(t.pid), '-o', path.join(mnt, 'img.crimg'), '--quiet', ...extra]);
        oneErrorLine(r, /^crimg: IO: .*ENOSPC/);
        expect(fs.readdirSync(mnt)).toEqual([]);
        await expectRunningAsBefore(t);
      }
    } finally {
      umount(mnt);
      await t.kill();
    }
  }, 120_000);

  it('read-only file system and missing directory: clear error, exit 1, the target runs on untraced', async () => {
    const t = await target(4);
    const mnt = path.join(tmp, 'dump-ro');
    mount(mnt, 'size=1m,ro');
    try {
      oneErrorLine(crimgSync(['dump', String(t.pid), '-o', path.join(mnt, 'img.crimg')]), /^crimg: IO: .*EROFS/);
      expect(fs.readdirSync(mnt)).toEqual([]);
      await expectRunningAsBefore(t);
      oneErrorLine(crimgSync(['dump', String(t.pid), '-o', path.join(tmp, 'no-such-dir', 'img.crimg')]), /^crimg: IO: .*ENOENT/);
      await expectRunningAsBefore(t);
    } finally {
      umount(mnt);
      await t.kill();
    }
  }, 120_000);

  it('permission: a dump by an unprivileged user of a root process fails cleanly, the target untouched', async () => {
    const t = await target(4);
    const out = path.join(tmp, 'nobody-out');
    fs.mkdirSync(out);
    fs.chmodSync(out, 0o777);
    // the transpiled crimg and the test directory must be readable by nobody
    // (only the directories this test made, below the temporary directory: never /tmp itself, which must stay 1777)
    const top = path.resolve(os.tmpdir());
    for (let d = path.resolve(lib.dir); path.dirname(d) !== d && d.startsWith(`${top}/`); d = path.dirname(d)) fs.chmodSync(d, 0o755);
    fs.chmodSync(tmp, 0o755);
    try {
      const r = crimgSync(['dump', String(t.pid), '-o', path.join(out, 'img.crimg')], { uid: 65534, gid: 65534 });
      oneErrorLine(r, /^crimg: (PERMISSION|PTRACE|NO_PROCESS): /);
      expect(fs.readdirSync(out)).toEqual([]);
      await expectRunningAsBefore(t);
    } finally {
      await t.kill();
    }
  }, 120_000);
});

describe('run: crimg interrupted', () => {
  it('SIGTERM to crimg run --leave-running: the command is detached and runs on', async () => {
    const ticks = path.join(tmp, 'run-ticks');
    const dir = path.join(tmp, 'run-out');
    const { child, done } = crimgSpawn(['run', '--out-dir', dir, '--leave-running', '--quiet', '--', bin, '4', '-1', ticks]);
    for (let i = 0; i < 1000 && !(fs.existsSync(ticks) && fs.readFileSync(ticks, 'utf8').includes('tick')); i++) await sleep(10);
    const pid = Number(/^READY (\d+)/m.exec(fs.readFileSync(ticks, 'utf8'))![1]);
    commands.push(pid);
    const t: Target = {
      pid,
      child,
      ticks,
      kill: async () => {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        for (let i = 0; i < 200 && status(pid) && status(pid)!.state !== 'Z'; i++) await sleep(10);
      },
    };
    try {
      expect(status(pid)!.tracer).toBe(child.pid);
      child.kill('SIGTERM');
      const r = await done;
      expect(r.signal).toBeNull();
      await expectRunningAsBefore(t);
    } finally {
      await t.kill();
    }
  }, 60_000);

  it('SIGINT to crimg run: the signal is forwarded, the command ends, nothing is left traced or stopped', async () => {
    const ticks = path.join(tmp, 'run-ticks2');
    const { child, done } = crimgSpawn(['run', '--out-dir', path.join(tmp, 'run-out2'), '--quiet', '--', bin, '4', '-1', ticks]);
    for (let i = 0; i < 1000 && !(fs.existsSync(ticks) && fs.readFileSync(ticks, 'utf8').includes('tick')); i++) await sleep(10);
    const pid = Number(/^READY (\d+)/m.exec(fs.readFileSync(ticks, 'utf8'))![1]);
    commands.push(pid);
    try {
      child.kill('SIGINT');
      await done;
      for (let i = 0; i < 200 && status(pid) !== null; i++) await sleep(10);
      expect(status(pid)).toBeNull();
    } finally {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }, 60_000);

  it('a checkpoint on a full disk: IO error reported, no image, the command runs on and is left running untraced', async () => {
    const mnt = path.join(tmp, 'run-full');
    mount(mnt, 'size=1m');
    const ticks = path.join(tmp, 'run-ticks3');
    const { child, done, err } = crimgSpawn(['run', '--out-dir', mnt, '--leave-running', '--', bin, '16', '-1', ticks]);
    let pid = 0;
    try {
      for (let i = 0; i < 1000 && !(fs.existsSync(ticks) && fs.readFileSync(ticks, 'utf8').includes('tick')); i++) await sleep(10);
      pid = Number(/^READY (\d+)/m.exec(fs.readFileSync(ticks, 'utf8'))![1]);
      commands.push(pid);
      const t: Target = {
        pid,
        child,
        ticks,
        kill: async () => {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        },
      };
      process.kill(pid, 'SIGUSR2');
      for (let i = 0; i < 500 && !/ENOSPC/.test(err()) && child.exitCode === null; i++) await sleep(20);
      expect(err()).toMatch(/ENOSPC/);
      expect(fs.readdirSync(mnt)).toEqual([]);
      if (child.exitCode === null) {
        // crimg run carries on: the command still runs (traced by crimg run only)
        expect([0, child.pid]).toContain(status(pid)!.tracer);
        child.kill('SIGTERM');
      }
      await done;
      await expectRunningAsBefore(t);
    } finally {
      if (pid) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      umount(mnt);
    }
  }, 120_000);
});

describe('restore: failures kill the stub', () => {
  /** Processes running `sleep 2147483647` (restore stubs). */
  function stubs(): Set<number> {
    const out = new Set<number>();
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      // the stub (comm sleep), not the holder and init of a --pid-ns restore elsewhere (their own names)
      try {
        if (
          fs.readFileSync(`/proc/${d}/cmdline`, 'utf8') === 'sleep\u00002147483647\u0000'
          && fs.readFileSync(`/proc/${d}/comm`, 'utf8') === 'sleep\n'
        )
          out.add(Number(d));
      } catch {
        /* gone */
      }
    }
    return out;
  }

  it('SIGINT, SIGTERM or SIGKILL to crimg restore at random moments leaves no stub and nothing stopped or traced', async () => {
    const t = await target(24);
    const img = path.join(tmp, 'restore-src.crimg');
    try {
      const r = crimgSync(['dump', String(t.pid), '-o', img, '--quiet']);
      expect(r.code, r.stderr).toBe(0);
    } finally {
      await t.kill();
    }
    const before = stubs();
    const restored: number[] = [];
    try {
      for (const [i, sig] of (['SIGINT', 'SIGTERM', 'SIGKILL', 'SIGINT', 'SIGTERM', 'SIGKILL'] as const).entries()) {
        const { child, done } = crimgSpawn(['restore', img, '--json']);
        // signal once the stub exists (the restore is under way), after a random short delay
        for (let k = 0; k < 2000 && child.exitCode === null && ![...stubs()].some((p) => !before.has(p) && !restored.includes(p)); k++)
          await sleep(2);
        await sleep(Math.floor(Math.random() * (i < 3 ? 60 : 10)));
        child.kill(sig);
        const r = await done;
        if (r.code === 0) {
          // the restore finished before the signal: a restored process runs, not traced
          const pid = Number(/"pid":\s*(\d+)/.exec(r.stdout)?.[1]);
          if (pid) restored.push(pid);
        }
        for (let k = 0; k < 100; k++) {
          const s = [...stubs()].filter((p) => !before.has(p) && !restored.includes(p));
          if (!s.length) break;
          await sleep(20);
        }
        const left = [...stubs()].filter((p) => !before.has(p) && !restored.includes(p));
        for (const p of left) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
        expect(left, `restore ${sig}: stubs left running`).toEqual([]);
        for (const p of restored) {
          const st = status(p);
          if (st) {
            expect(st.tracer).toBe(0);
          }
        }
      }
    } finally {
      for (const p of restored) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      // a restore let go just before its signal has no pid on stdout: its process is found by its command line
      for (const n of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
        let cmd = '';
        try {
          cmd = fs.readFileSync(`/proc/${n}/cmdline`, 'latin1');
        } catch {
          continue;
        }
        if (cmd.includes(t.ticks))
          try {
            process.kill(Number(n), 'SIGKILL');
          } catch {
            /* gone */
          }
      }
    }
  }, 180_000);

  it('a restore that fails (image of a missing program file) reports RESTORE and kills its stub', async () => {
    const copy = path.join(tmp, 'tick-copy');
    fs.copyFileSync(bin, copy);
    const ticks = path.join(tmp, 'ticks-copy');
    const child = spawn(copy, ['4', '-1', ticks], { stdio: 'ignore' });
    started.push(child);
    for (let i = 0; i < 1000 && !(fs.existsSync(ticks) && fs.readFileSync(ticks, 'utf8').includes('tick')); i++) await sleep(10);
    const img = path.join(tmp, 'restore-missing.crimg');
    try {
      expect(crimgSync(['dump', String(child.pid), '-o', img, '--quiet']).code).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
    fs.rmSync(copy);
    const before = stubs();
    const r = crimgSync(['restore', img]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^crimg: [A-Z_]+: /);
    const left = [...stubs()].filter((p) => !before.has(p));
    for (const p of left) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    expect(left).toEqual([]);
  }, 60_000);
});
