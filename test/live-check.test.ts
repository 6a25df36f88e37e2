/**
 * crimg check (is it safe to checkpoint?), dump's refusal of unsafe targets,
 * --tree, and the clear errors for targets that cannot be dumped at all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crimg } from './helpers/cli.js';
import { PTRACE, WAIT, kill, ptraceRaw, spawn as rawSpawn, waitpid } from '../src/os/libc.js';
import { SIG } from '../src/os/consts.js';
import { checkProcesses } from '../src/live/check.js';
import { inspectProcesses } from '../src/live/inspect.js';
import { LIVE_FD_KINDS } from '../src/kinds/live.js';

let dir: string;
const bin = (n: string): string => path.join(dir, n);

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-check-'));
  for (const n of ['live-fds', 'live-tree', 'live-threads'])
    execFileSync('gcc', ['-O1', '-pthread', '-o', bin(n), path.resolve(`test/progs/${n}.c`)]);
  execFileSync('gcc', ['-O1', '-o', bin('golden-prog'), path.resolve('test/golden/golden-prog.c')]);
  fs.writeFileSync(path.join(dir, 'data.bin'), Buffer.alloc(20000, 1));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function startReady(argv: string[]): Promise<{ proc: ChildProcess; line: string; pid: number }> {
  const out = path.join(dir, `out-${Math.random().toString(36).slice(2)}.txt`);
  const fd = fs.openSync(out, 'w');
  const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  for (let i = 0; i < 1000; i++) {
    const m = /^READY .*$/m.exec(fs.readFileSync(out, 'utf8'));
    if (m) return { proc, line: m[0], pid: proc.pid! };
    await sleep(10);
  }
  proc.kill('SIGKILL');
  throw new Error(`${argv[0]} did not get ready`);
}

async function killWait(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await gone;
}

describe('crimg check', () => {
  it('reports a socket, a pipe, a memfd and friends with stable codes, exit 3 (not a plain eventfd or signalfd: those are saved)', async () => {
    let t;
    try {
      t = await startReady([bin('live-fds'), dir]);
      const r = crimg(['check', String(t.pid), '--json']);
      expect(r.code, r.stderr).toBe(3);
      const doc = JSON.parse(r.stdout);
      expect(doc.safe).toBe(false);
      const codes = new Set(doc.reasons.map((x: { code: string }) => x.code));
      for (const c of ['SOCKET', 'PIPE', 'MEMFD', 'TIMERFD', 'POSIX_TIMER', 'EPOLL', 'INOTIFY', 'FILE_DELETED'])
        expect(codes, c).toContain(c);
      for (const c of ['EVENTFD', 'SIGNALFD']) expect(codes, c).not.toContain(c); // saved whole
      for (const x of doc.reasons) {
        expect(x.pid).toBe(t.pid);
        expect(typeof x.text).toBe('string');
        expect(x.text.length).toBeGreaterThan(10);
      }
      expect(doc.reasons.filter((x: { code: string }) => x.code === 'SOCKET')).toHaveLength(2); // both ends of the socketpair
      expect(
        doc.reasons
          .filter((x: { code: string }) => x.code === 'MEMFD')
          .map((x: { text: string }) => x.text)
          .join(' '),
      ).toMatch(/mapping/);
      // the readable form lists the same codes
      const txt = crimg(['check', String(t.pid)]);
      expect(txt.code).toBe(3);
      for (const c of codes) expect(txt.stdout).toContain(c as string);

      // dump refuses without --force (and leaves the process running), records the reasons with it
      const img = path.join(dir, 'fds.crimg');
      const d = crimg(['dump', String(t.pid), '-o', img]);
      expect(d.code).toBe(1);
      expect(d.stderr).toMatch(/^crimg: UNSAFE: .*--force/);
      expect(fs.existsSync(img)).toBe(false);
      const f = crimg(['dump', String(t.pid), '-o', img, '--force', '--json']);
      expect(f.code, f.stderr).toBe(0);
      const show = JSON.parse(crimg(['show', '--json', img]).stdout);
      expect(new Set(show.tasks[0].nocr.map((x: { code: string }) => x.code))).toEqual(codes);
      expect(t.proc.exitCode).toBe(null);
      expect(fs.readFileSync(`/proc/${t.pid}/status`, 'utf8')).toMatch(/TracerPid:\s+0\n/);
    } finally {
      await killWait(t?.proc);
    }
  });

  it('says a quiet process with only regular files is safe (exit 0)', async () => {
    let t;
    try {
      t = await startReady([bin('live-threads'), path.join(dir, 'data.bin'), '2']);
      const r = crimg(['check', String(t.pid), '--json']);
      expect(r.code, r.stdout).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ pid: t.pid, safe: true, reasons: [] });
      const txt = crimg(['check', String(t.pid)]);
      expect(txt.stdout).toMatch(/safe to checkpoint/);
    } finally {
      await killWait(t?.proc);
    }
  });

  it('reports children outside the dump, and --tree takes them in', async () => {
    let t;
    try {
      t = await startReady([bin('live-tree')]);
      const m = /children=(\d+),(\d+) page=(0x[0-9a-f]+)/.exec(t.line)!;
      const kids = [Number(m[1]), Number(m[2])];
      const r = crimg(['check', String(t.pid), '--json']);
      expect(r.code).toBe(3);
      expect(JSON.parse(r.stdout).reasons.map((x: { code: string }) => x.code)).toEqual(['CHILDREN']);
      const rt = crimg(['check', String(t.pid), '--tree', '--json']);
      expect(rt.code, rt.stdout).toBe(0);
      expect(JSON.parse(rt.stdout).tasks).toEqual([t.pid, ...kids]);

      const img = path.join(dir, 'tree.crimg');
      const d = crimg(['dump', String(t.pid), '--tree', '-o', img]);
      expect(d.code, d.stderr).toBe(0);
      const show = JSON.parse(crimg(['show', '--json', img]).stdout);
      expect(show.tasks.map((x: { pid: number }) => x.pid)).toEqual([t.pid, ...kids]);
      expect(show.tasks[1].ppid).toBe(t.pid);
      expect(show.tasks[2].ppid).toBe(t.pid);
      [t.pid, ...kids].forEach((pid, rank) => {
        const page = crimg(['read', img, '--pid', String(pid), '--addr', m[3]!, '--len', '4096']).out;
        expect(
          page.every((b, i) => b === ((i + 37 * rank) & 0xff)),
          `page of ${pid}`,
        ).toBe(true);
      });
      for (const pid of [t.pid, ...kids])
        expect(fs.readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/State:\s+S[\s\S]*TracerPid:\s+0\n/);
    } finally {
      await killWait(t?.proc);
    }
  });

  it('reports an existing tracer; dump says TRACED', async () => {
    // started outside libuv, so that our own waitpid sees its ptrace stops
    const out = path.join(dir, 'traced.txt');
    const pid = rawSpawn([bin('live-threads'), path.join(dir, 'data.bin'), '2'], { stdout: out, stderr: out });
    try {
      for (let i = 0; i < 500 && !/READY/.test(fs.readFileSync(out, 'utf8')); i++) await sleep(10);
      expect(ptraceRaw(PTRACE.SEIZE, pid, 0, 0).ret).toBe(0);
      const r = crimg(['check', String(pid), '--json']);
      expect(r.code).toBe(3);
      const reasons = JSON.parse(r.stdout).reasons;
      expect(reasons.map((x: { code: string }) => x.code)).toContain('TRACED');
      expect(reasons.find((x: { code: string }) => x.code === 'TRACED').text).toContain(String(process.pid));
      const d = crimg(['dump', String(pid), '-o', path.join(dir, 'traced.crimg')]);
      expect(d.code).toBe(1);
      expect(d.stderr).toMatch(new RegExp(`^crimg: TRACED: .*traced by process ${process.pid}`));
    } finally {
      kill(pid, SIG.SIGKILL);
      for (;;) {
        const st = waitpid(pid, WAIT.__WALL).status;
        if ((st & 0x7f) !== 0x7f) break; // exited or killed
      }
    }
  });
});

describe('targets that cannot be dumped at all get one clear line', () => {
  it('no such process', () => {
    const r = crimg(['dump', '99999999999', '-o', path.join(dir, 'none.crimg')]);
    expect(r.code).toBe(2); // out of range is a usage error
    const r2 = crimg(['dump', '4000000', '-o', path.join(dir, 'none.crimg')]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toBe('crimg: NO_PROCESS: no process 4000000\n');
    const c = crimg(['check', '4000000']);
    expect(c.stderr).toBe('crimg: NO_PROCESS: no process 4000000\n');
  });

  it('a kernel thread', () => {
    const r = crimg(['dump', '2', '-o', path.join(dir, 'k.crimg')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^crimg: NO_PROCESS: process 2 \(kthreadd\) is a kernel thread/);
  });

  it('a zombie', async () => {
    // sh forks a short-lived child and then execs a sleeper that never reaps it
    const p = spawn('/bin/sh', ['-c', '/bin/true & exec sleep 30'], { stdio: 'ignore' });
    try {
      let z = 0;
      for (let i = 0; i < 500 && !z; i++) {
        await sleep(10);
        try {
          for (const c of fs.readFileSync(`/proc/${p.pid}/task/${p.pid}/children`, 'utf8').split(/\s+/).filter(Boolean)) {
            if (/\) Z /.test(fs.readFileSync(`/proc/${c}/stat`, 'utf8'))) z = Number(c);
          }
        } catch {
          /* not yet */
        }
      }
      expect(z).toBeGreaterThan(0);
      const r = crimg(['dump', String(z), '-o', path.join(dir, 'z.crimg')]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^crimg: NO_PROCESS: process \d+ \(true\) is a zombie/);
    } finally {
      await killWait(p);
    }
  });

  it('crimg itself', () => {
    // the CLI's own pid is not known in advance; the library refuses its own process
    return import('../src/live/dump.js').then(async ({ dumpProcess }) => {
      await expect(dumpProcess(process.pid, path.join(dir, 'self.crimg'))).rejects.toMatchObject({ code: 'USAGE' });
    });
  });
});

describe('one inspection for check and dump', () => {
  it('each fd is claimed by one kind; the reasons do not depend on whether the state is read; check leaves out the pipe bytes', async () => {
    let t;
    try {
      t = await startReady([bin('golden-prog'), dir]);
      const reasonsOnly = inspectProcesses([t.pid]);
      const withState = inspectProcesses([t.pid], { wantState: true });
      expect(withState.reasons).toEqual(reasonsOnly.reasons);
      expect(checkProcesses([t.pid])).toEqual(reasonsOnly.reasons);
      const fds = withState.fdStates.get(t.pid)!;
      // every fd kind saves something of this program: one of each kind of fd crimg saves
      const kinds = new Set([...fds.values()].flat().map((s) => s.kind.name));
      expect([...kinds].sort()).toEqual(LIVE_FD_KINDS.map((k) => k.name).sort());
      for (const [fd, states] of fds) expect(states.filter((s) => !s.kind.attribute).length, `fd ${fd}`).toBeLessThanOrEqual(1);
      const pipeData = (i: typeof withState): string[] =>
        [...i.fdStates.get(t!.pid)!.values()]
          .flat()
          .filter((s) => s.kind.name === 'pipe')
          .map((s) => Buffer.from((s.state as { data?: Uint8Array }).data ?? []).toString());
      expect(pipeData(withState)).toContain('golden');
      expect(pipeData(reasonsOnly).join('')).toBe('');
    } finally {
      await killWait(t?.proc);
    }
  });
});
