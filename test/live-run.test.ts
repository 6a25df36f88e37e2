/**
 * crimg run --on-signal: checkpoints taken at the signal-delivery stop of the
 * checkpoint signal, which the program never sees.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI, crimg } from './helpers/cli.js';

let dir: string;
let prog: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-run-'));
  prog = path.join(dir, 'live-count');
  execFileSync('gcc', ['-O1', '-o', prog, path.resolve('test/progs/live-count.c')]);
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, f: () => boolean): Promise<void> {
  for (let i = 0; i < 1500; i++) {
    if (f()) return;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('crimg run --on-signal', () => {
  it('writes an image per checkpoint signal and hides the signal from the program', async () => {
    const out = path.join(dir, 'images');
    const child = spawn(process.execPath, [CLI, 'run', '--out-dir', out, '--', prog, '100000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b) => {
      stdout += b;
    });
    child.stderr!.on('data', (b) => {
      stderr += b;
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    let pid = 0;
    try {
      await until('START', () => /START pid=(\d+)/.test(stdout));
      pid = Number(/START pid=(\d+)/.exec(stdout)![1]);
      expect(fs.readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(new RegExp(`TracerPid:\\s+${child.pid}\\n`));
      const images = (): string[] =>
        fs.existsSync(out)
          ? fs
              .readdirSync(out)
              .filter((f) => f.endsWith('.crimg'))
              .sort()
          : [];
      for (let n = 1; n <= 3; n++) {
        const at = (stdout.match(/^count /gm) ?? []).length;
        await until(`count past ${at}`, () => (stdout.match(/^count /gm) ?? []).length > at + 2);
        if (n === 2) {
          const sg = crimg(['signal', String(pid)]);
          expect(sg.code, sg.stderr).toBe(0);
        } else process.kill(pid, 'SIGUSR2');
        await until(`image ${n}`, () => images().length === n && stderr.includes(`checkpoint ${n} `));
      }
      expect(images()).toEqual(['000001.crimg', '000002.crimg', '000003.crimg']);
      const last = (stdout.match(/^count /gm) ?? []).length;
      await until('counting on', () => (stdout.match(/^count /gm) ?? []).length > last + 2);
      process.kill(pid, 'SIGTERM');
      expect(await exited).toBe(128 + 15);

      // the program never saw the signal, and none of its sleeps failed
      expect(stdout).not.toMatch(/GOT SIGUSR2|EINTR/);
      const counts = stdout
        .split('\n')
        .filter((l) => l.startsWith('count '))
        .map((l) => Number(l.slice(6)));
      expect(counts).toEqual(counts.map((_, i) => i + 1));

      const counters: bigint[] = [];
      for (const f of images()) {
        const img = path.join(out, f);
        const v = crimg(['verify', img]);
        expect(v.code, v.stderr).toBe(0);
        const doc = JSON.parse(crimg(['show', '--json', img]).stdout);
        expect(doc.header.flags).toContain('live');
        expect(doc.tasks).toHaveLength(1);
        const t = doc.tasks[0];
        expect(t.pid).toBe(pid);
        expect(t.comm).toBe('live-count');
        expect(t.threads).toHaveLength(1);
        // stopped on the way back to user space: SIGUSR2 is neither pending nor blocked
        expect(BigInt(t.threads[0].sigpending) & (1n << 11n)).toBe(0n);
        counters.push(BigInt(t.threads[0].regs.rip));
      }
      expect(counters.every((x) => x > 0n)).toBe(true);
    } finally {
      if (pid) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      child.kill('SIGKILL');
    }
  });

  it('exits with the status of the command', () => {
    const r = crimg(['run', '--out-dir', path.join(dir, 'x'), '--', '/bin/sh', '-c', 'exit 7']);
    expect(r.code, r.stderr).toBe(7);
    const bad = crimg(['run', '--on-signal', 'NOPE', '--', '/bin/true']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^crimg: USAGE: --on-signal/);
  });
});
