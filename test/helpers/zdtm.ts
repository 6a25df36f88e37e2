/**
 * zdtm-style cycles, as CRIU's test suite runs its programs: a small program sets up some state, writes `READY` to
 * its output file, and waits for SIGUSR1; crimg checks it (it must be called safe), dumps it with --kill, restores
 * it; the restored program gets SIGUSR1, checks its own state and writes PASS or FAIL (with what differs).
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crimg } from './cli.js';

export interface ZdtmResult {
  /** PASS, or FAIL and what differs. */
  verdict: string;
  /** What `crimg check` printed. */
  check: string;
}

function alive(pid: number): boolean {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return st.slice(st.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function waitFor(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const lines = (f: string): string[] => {
  try {
    return fs.readFileSync(f, 'latin1').split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

/** Compile a test program of test/progs into `dir`; returns the executable. */
export function compileProg(dir: string, name: string, extra: string[] = []): string {
  const exe = path.join(dir, name);
  const r = spawnSync('gcc', ['-O1', ...extra, '-o', exe, new URL(`../progs/${name}.c`, import.meta.url).pathname], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc ${name}: ${r.stderr}`);
  return exe;
}

/**
 * One cycle: start `exe OUT ...args` in `dir`, check, dump --kill, restore (with `restoreArgs`), SIGUSR1, verdict.
 * Every process it started is killed on the way out, also on failure. When check refuses (as it must for state
 * crimg cannot bring back), the cycle stops there and the verdict is `CHECK <its output>`.
 */
export async function zdtmCycle(exe: string, dir: string, opts: { args?: string[]; restoreArgs?: string[] } = {}): Promise<ZdtmResult> {
  const out = path.join(dir, `${path.basename(exe)}.out`);
  fs.rmSync(out, { force: true });
  const image = path.join(dir, `${path.basename(exe)}.crimg`);
  const started: number[] = [];
  try {
    const c = spawn(exe, [out, ...(opts.args ?? [])], { stdio: 'ignore', cwd: dir });
    started.push(c.pid!);
    await waitFor('READY', () => lines(out).some((l) => l.startsWith('READY')) || !alive(c.pid!));
    if (!alive(c.pid!)) throw new Error(`${exe} did not get ready: ${lines(out).join(' | ')}`);
    const check = crimg(['check', String(c.pid)]);
    if (check.code !== 0) return { verdict: `CHECK ${check.stdout.trim()}`, check: check.stdout };
    const dump = crimg(['dump', String(c.pid), '-o', image, '--kill', '--quiet']);
    if (dump.code !== 0) throw new Error(`dump: ${dump.stderr}`);
    await waitFor('the original to die', () => !alive(c.pid!));
    const r = crimg(['restore', ...(opts.restoreArgs ?? []), image]);
    if (r.code !== 0) throw new Error(`restore: ${r.stderr}`);
    const pid = Number.parseInt(r.stdout, 10);
    started.push(pid);
    process.kill(pid, 'SIGUSR1');
    await waitFor('a verdict', () => lines(out).some((l) => /^(PASS|FAIL)/.test(l)));
    return { verdict: lines(out).find((l) => /^(PASS|FAIL)/.test(l))!, check: check.stdout };
  } finally {
    for (const pid of started)
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    fs.rmSync(image, { force: true });
  }
}
