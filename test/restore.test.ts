/**
 * Restore of real processes: dump a running C program with `crimg dump --kill`,
 * bring it back with `crimg restore`, and check that it carries on exactly where
 * it was (counter, file positions, heap contents, every thread), twice in a row;
 * that registers and memory right after a restore equal the image; and that
 * failures (missing executable, a step failing half-way) leave nothing running.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crimg } from './helpers/cli.js';
import { readImage, type Image } from '../src/reader.js';
import { CrimgError } from '../src/errors.js';
import type { PosixTimer, Task, Vma } from '../src/model.js';
import { readPosixTimers } from '../src/kinds/posix-timers/live.js';
import { restartBlock, restoreImage, resumeRegs } from '../src/restore/restore.js';
import { buildXstate } from '../src/restore/xsave.js';
import { waitpid } from '../src/os/libc.js';
import { VmaFlags, newThread } from '../src/model.js';

let dir: string;
let counterExe: string;
let threadsExe: string;
let idsExe: string;
let sigExe: string;
let input: Buffer;
const running = new Set<number>();
const children: ChildProcess[] = [];

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-restore-'));
  counterExe = path.join(dir, 'restore-counter');
  threadsExe = path.join(dir, 'restore-threads');
  idsExe = path.join(dir, 'restore-ids');
  sigExe = path.join(dir, 'restore-signals');
  for (const [src, out, extra] of [
    ['restore-counter.c', counterExe, []],
    ['restore-threads.c', threadsExe, ['-pthread']],
    ['restore-ids.c', idsExe, ['-pthread']],
    ['restore-signals.c', sigExe, ['-pthread']],
  ] as const) {
    const r = spawnSync('gcc', ['-O1', '-o', out, ...extra, fileURLToPathSafe(`progs/${src}`)], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  }
  input = Buffer.alloc(1 << 20);
  for (let i = 0; i < input.length; i++) input[i] = (i * 2654435761) >>> 24;
  fs.writeFileSync(path.join(dir, 'in.bin'), input);
});

afterAll(() => {
  for (const pid of running) killHard(pid);
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Put before every program compileC builds: open_out(path) closes every inherited fd above 2 and opens path for
 *  appending, line-buffered (the programs' output). */
const C_COMMON = `#define _GNU_SOURCE
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
__attribute__((unused)) static FILE *open_out(const char *path) {
  syscall(SYS_close_range, 3, ~0U, 0);
  FILE *f = fopen(path, "a");
  setvbuf(f, 0, _IOLBF, 0);
  return f;
}
`;

/** Compiles a C program given as text (after C_COMMON) into the test directory; returns the executable's path. */
function compileC(name: string, code: string, extra: string[] = []): string {
  const src = path.join(dir, `${name}.c`);
  const exe = path.join(dir, name);
  fs.writeFileSync(src, C_COMMON + code);
  const cc = spawnSync('gcc', ['-O1', ...extra, '-o', exe, src], { encoding: 'utf8' });
  expect(cc.status, cc.stderr).toBe(0);
  return exe;
}

/** A program that closes every fd above 2 it inherited (the test runner leaves some open) and runs argv[1..]. */
let closeFds = '';
function closeFdsExe(): string {
  if (!closeFds)
    closeFds = compileC(
      'closefds',
      'int main(int argc, char **argv) { (void)argc; syscall(SYS_close_range, 3, ~0U, 0); execv(argv[1], argv + 1); return 127; }',
    );
  return closeFds;
}

function fileURLToPathSafe(rel: string): string {
  return new URL(rel, import.meta.url).pathname;
}

function alive(pid: number): boolean {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return st.slice(st.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function killHard(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
  running.delete(pid);
}

async function waitFor(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function lines(file: string): string[] {
  try {
    return fs
      .readFileSync(file, 'latin1')
      .split('\n')
      .filter((l) => l.length > 0);
  } catch {
    return [];
  }
}

/** Start a test program as our child (its fds: /dev/null stdio, its own files). */
function start(exe: string, args: string[]): number {
  const c = spawn(exe, args, { stdio: 'ignore', cwd: dir });
  children.push(c);
  running.add(c.pid!);
  return c.pid!;
}

/** `crimg dump PID -o IMAGE --kill`; waits until the process is gone. */
async function dumpKill(pid: number, image: string): Promise<void> {
  const r = crimg(['dump', String(pid), '-o', image, '--kill', '--force', '--quiet']);
  expect(r.code, r.stderr).toBe(0);
  await waitFor(`process ${pid} to die`, () => !alive(pid));
  running.delete(pid);
}

function restoreCli(image: string, extra: string[] = []): number {
  const r = crimg(['restore', ...extra, image]);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/^\d+\n$/);
  const pid = parseInt(r.stdout, 10);
  running.add(pid);
  return pid;
}

/** Every line of the counter's output continues the one before: n, the input position, the bytes read, the checksum. */
function checkCounter(file: string): { n: number; csum: string } {
  const ls = lines(file);
  expect(ls.length).toBeGreaterThan(0);
  let csum = '';
  ls.forEach((l, i) => {
    const m = /^(\d{8}) (\d{10}) ([0-9a-f]{16}) ([0-9a-f]{16})$/.exec(l);
    expect(m, `line ${i + 1}: ${l}`).not.toBeNull();
    const n = parseInt(m![1]!, 10);
    const pos = parseInt(m![2]!, 10);
    expect(n, `line ${i + 1}`).toBe(i + 1);
    expect(pos, `line ${i + 1}`).toBe(8 * (i + 1));
    expect(m![3], `line ${i + 1}`).toBe(
      input
        .readBigUInt64LE(pos - 8)
        .toString(16)
        .padStart(16, '0'),
    );
    if (i === 0) csum = m![4]!;
    expect(m![4], `line ${i + 1}`).toBe(csum);
  });
  return { n: ls.length, csum };
}

function stubsRunning(): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      // the stub (comm sleep), not the holder and init of a --pid-ns restore (their own names)
      if (
        fs.readFileSync(`/proc/${e}/cmdline`, 'latin1') === 'sleep\u00002147483647\u0000'
        && fs.readFileSync(`/proc/${e}/comm`, 'latin1') === 'sleep\n'
        && alive(Number(e))
      )
        out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

describe('restore a single-threaded counter', () => {
  it('continues with the next number, the same file position and the same heap checksum, two cycles in a row', async () => {
    const out = path.join(dir, 'counter.out');
    const pid = start(counterExe, [out, path.join(dir, 'in.bin'), '512']);
    const pids = [pid];
    try {
      await waitFor('20 lines', () => lines(out).length >= 20);
      const img1 = path.join(dir, 'c1.crimg');
      await dumpKill(pid, img1);
      const before1 = checkCounter(out);

      const r1 = restoreCli(img1);
      pids.push(r1);
      expect(r1).not.toBe(pid);
      expect(fs.readlinkSync(`/proc/${r1}/exe`)).toBe(counterExe);
      expect(fs.readlinkSync(`/proc/${r1}/cwd`)).toBe(fs.realpathSync(dir));
      expect(fs.readFileSync(`/proc/${r1}/comm`, 'latin1').trim()).toBe('restore-counter');
      expect(fs.readlinkSync(`/proc/${r1}/fd/3`)).toBe(out);
      const stat = fs.readFileSync(`/proc/${r1}/stat`, 'latin1');
      const [, , pgrp, session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      expect([Number(pgrp), Number(session)]).toEqual([r1, r1]); // a session of its own
      await waitFor('more lines after restore', () => lines(out).length >= before1.n + 20);
      const after1 = checkCounter(out);
      expect(after1.csum).toBe(before1.csum);

      const img2 = path.join(dir, 'c2.crimg');
      await dumpKill(r1, img2);
      const before2 = checkCounter(out);
      expect(before2.n).toBeGreaterThan(after1.n - 1);
      const r2 = restoreCli(img2);
      pids.push(r2);
      await waitFor('more lines after the second restore', () => lines(out).length >= before2.n + 20);
      const after2 = checkCounter(out);
      expect(after2.csum).toBe(before1.csum);
      // the restored process maps what the original did, [heap] included
      const maps = fs.readFileSync(`/proc/${r2}/maps`, 'latin1');
      expect(maps).toContain('[heap]');
      expect(maps).toContain('[stack]');
      expect(maps).toContain('[vdso]');
    } finally {
      for (const p of pids) killHard(p);
    }
  });
});

/** Adjacent VMAs with the same attributes, merged (the kernel merges neighbours whose flags the image does not record). */
function coalesce(vmas: Vma[]): { start: bigint; end: bigint; key: string }[] {
  const out: { start: bigint; end: bigint; key: string }[] = [];
  for (const v of vmas) {
    const key = `${v.prot}/${v.flags}/${v.path}/${v.inode}`;
    const last = out[out.length - 1];
    if (last && last.end === v.start && last.key === key && v.path === null) last.end = v.end;
    else out.push({ start: v.start, end: v.end, key });
  }
  return out;
}

const plain = (x: unknown): string =>
  JSON.stringify(x, (_k, v) =>
    typeof v === 'bigint'
      ? `0x${v.toString(16)}`
      : v instanceof Uint8Array || v instanceof BigUint64Array
        ? Array.from(v as ArrayLike<number | bigint>, (e) => e.toString(16)).join(',')
        : v,
  );

function compareTasks(a: Image, b: Image): string[] {
  const ta: Task = a.model.tasks[0]!,
    tb: Task = b.model.tasks[0]!;
  const diffs: string[] = [];
  for (const k of [
    'comm',
    'exe',
    'cwd',
    'root',
    'args',
    'env',
    'personality',
    'exitSignal',
    'creds',
    'rlimits',
    'ns',
    'sigactions',
  ] as const) {
    if (plain(ta[k]) !== plain(tb[k])) diffs.push(k);
  }
  const fileKeys = (t: Task): string => plain(t.files.map((f) => [f.fd, f.kind, f.path, f.flags, f.pos, f.cloexec, f.inode]));
  if (fileKeys(ta) !== fileKeys(tb)) diffs.push('files');
  const ma = ta.mm!,
    mb = tb.mm!;
  for (const k of [
    'startCode',
    'endCode',
    'startData',
    'endData',
    'startBrk',
    'brk',
    'startStack',
    'argStart',
    'argEnd',
    'envStart',
    'envEnd',
    'auxv',
  ] as const) {
    if (plain(ma[k]) !== plain(mb[k])) diffs.push(`mm.${k}`);
  }
  if (ta.threads.length !== tb.threads.length) diffs.push('threads');
  ta.threads.forEach((th, i) => {
    const u = tb.threads[i];
    if (!u) return;
    // a sleep interrupted at the dump is restored with EINTR in rax (docs/RESTORE.md)
    const want = restartBlock(th.regs) ? resumeRegs(th.regs) : th.regs;
    if (plain(want) !== plain(u.regs)) diffs.push(`thread ${i} regs`);
    for (const k of ['fpu', 'xstate', 'sigmask', 'rseq', 'futex', 'sigaltstack'] as const)
      if (plain(th[k]) !== plain(u[k])) diffs.push(`thread ${i} ${k}`);
  });
  const ca = coalesce(ma.vmas),
    cb = coalesce(mb.vmas);
  if (plain(ca) !== plain(cb)) diffs.push('vmas');
  // memory: every byte of every readable VMA (the kernel's [vvar] pages are not saved), except the fields of each
  // thread's rseq area the kernel itself rewrites on every return to user space (cpu_id_start, cpu_id, node_id, mm_cid)
  const kernelOwned = (t: Task): [bigint, bigint][] =>
    t.threads.flatMap((th) =>
      th.rseq
        ? ([
            [th.rseq.ptr, th.rseq.ptr + 8n],
            [th.rseq.ptr + 20n, th.rseq.ptr + 28n],
          ] as [bigint, bigint][])
        : [],
    );
  const mask = (buf: Uint8Array, start: bigint, ranges: [bigint, bigint][]): void => {
    for (const [s, e] of ranges) for (let p = s; p < e; p++) if (p >= start && p < start + BigInt(buf.length)) buf[Number(p - start)] = 0;
  };
  for (const v of ma.vmas) {
    if (!(v.prot & 1) || v.path === '[vvar]' || v.path === '[vvar_vclock]' || v.path === '[vsyscall]') continue;
    const len = Number(v.end - v.start);
    const x = a.readMemory(ta.pid, v.start, len),
      y = b.readMemory(tb.pid, v.start, len);
    mask(x, v.start, kernelOwned(ta));
    mask(y, v.start, kernelOwned(tb));
    if (Buffer.compare(Buffer.from(x), Buffer.from(y)) !== 0) diffs.push(`memory ${v.start.toString(16)} ${v.path ?? ''}`);
  }
  return diffs;
}

describe('restore credentials', () => {
  it('a task of another user comes back as that user, with its groups and without capabilities', async () => {
    const udir = path.join(dir, 'user');
    fs.mkdirSync(udir);
    fs.chmodSync(dir, 0o755);
    fs.chmodSync(udir, 0o777);
    const out = path.join(udir, 'counter.out');
    const c = spawn(counterExe, [out, path.join(dir, 'in.bin'), '64'], { stdio: 'ignore', cwd: udir, uid: 65534, gid: 65534 });
    children.push(c);
    const pid = c.pid!;
    running.add(pid);
    const pids = [pid];
    const status = (p: number): Record<string, string> =>
      Object.fromEntries(
        fs
          .readFileSync(`/proc/${p}/status`, 'latin1')
          .split('\n')
          .filter((l) => l.includes(':'))
          .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
      );
    try {
      await waitFor('lines', () => lines(out).length >= 5);
      const orig = status(pid);
      expect(orig.Uid).toBe('65534\t65534\t65534\t65534');
      const img = path.join(dir, 'user.crimg');
      await dumpKill(pid, img);
      const before = checkCounter(out);
      const r = restoreCli(img);
      pids.push(r);
      const st = status(r);
      for (const k of ['Uid', 'Gid', 'Groups', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs'])
        expect(st[k], k).toBe(orig[k]);
      expect(fs.statSync(`/proc/${r}`).uid).toBe(65534); // dumpable, like the original
      await waitFor('more lines', () => lines(out).length >= before.n + 5);
      checkCounter(out);
    } finally {
      for (const p of pids) killHard(p);
    }
  });
});

describe('state right after restore', () => {
  it('registers, FPU/XSAVE, signal mask, rseq, mm fields, files and every page equal the image (multi-threaded)', async () => {
    const tdir = fs.mkdtempSync(path.join(dir, 'eq-'));
    const pid = start(threadsExe, [tdir, '3']);
    const pids = [pid];
    try {
      await waitFor('all threads writing', () => [0, 1, 2].every((i) => lines(path.join(tdir, `t${i}`)).length >= 5));
      const img1 = path.join(dir, 'eq1.crimg');
      await dumpKill(pid, img1);
      const r = restoreCli(img1, ['--stopped']);
      pids.push(r);
      expect(fs.readFileSync(`/proc/${r}/stat`, 'latin1')).toMatch(/\) T /);
      const img2 = path.join(dir, 'eq2.crimg');
      const d = crimg(['dump', String(r), '-o', img2, '--leave-stopped', '--force', '--quiet']);
      expect(d.code, d.stderr).toBe(0);
      // crimg diff: only the expected differences (header identity and timing, pids, kernel-owned rseq bytes)
      const dj = crimg(['diff', '--json', img1, img2]);
      expect(dj.code, dj.stderr).toBe(1);
      const whats: string[] = JSON.parse(dj.stdout).differences.map((x: { what: string }) => x.what);
      const a = readImage(img1),
        b = readImage(img2);
      try {
        expect(b.model.tasks[0]!.pid).toBe(r);
        for (const th of a.model.tasks[0]!.threads) {
          // glibc registers both for every thread
          expect(th.futex?.clearChildTid, `thread ${th.tid}`).toBeGreaterThan(0n);
          expect(th.futex?.robustLen, `thread ${th.tid}`).toBe(24n);
        }
        const rseqAt = a.model.tasks[0]!.threads.flatMap((th) => (th.rseq ? [th.rseq.ptr] : []));
        const unexpected = whats.filter((w) => {
          if (/^header\.(crid|createdNs|freezeNs|flags)$/.test(w)) return false; // identity and timing of the dump
          if (/^task \d+\/\d+\.(pid|tgid|ppid|pgid|sid)$/.test(w)) return false; // new pid, own session
          if (/^task \d+\/\d+ thread \d+ (tid|state)$/.test(w)) return false; // new tids; restored --stopped
          const rb = /^task \d+\/\d+ thread (\d+) rax$/.exec(w); // a sleep interrupted at the dump: EINTR
          if (rb && a.model.tasks[0]!.threads.some((t) => t.tid === Number(rb[1]) && restartBlock(t.regs))) return false;
          if (/^task \d+\/\d+ vma [0-9a-f]+(\.end)?$/.test(w)) return false; // neighbours merged (VM flags not saved); coalesced below
          const m = /^task \d+ memory 0x([0-9a-f]+)-0x([0-9a-f]+)$/.exec(w); // the kernel rewrites rseq cpu ids
          if (m && rseqAt.some((p) => p >= BigInt(`0x${m[1]}`) && p < BigInt(`0x${m[2]}`))) return false;
          return true;
        });
        expect(unexpected).toEqual([]);
        expect(whats).toContain(`task ${pid}/${r}.pid`);
        expect(compareTasks(a, b)).toEqual([]);
        // and the comparison does see a difference when there is one
        b.model.tasks[0]!.threads[0]!.regs[5]! ^= 1n;
        expect(compareTasks(a, b)).toEqual(['thread 0 regs']);
      } finally {
        a.close();
        b.close();
      }
      // it was left stopped; it runs on when continued
      const n0 = lines(path.join(tdir, 't1')).length;
      process.kill(r, 'SIGCONT');
      await waitFor('thread 1 to write after SIGCONT', () => lines(path.join(tdir, 't1')).length >= n0 + 5);
    } finally {
      for (const p of pids) killHard(p);
    }
  });
});

describe('restore a multi-threaded program', () => {
  it('resumes every thread with its own counter', async () => {
    const tdir = fs.mkdtempSync(path.join(dir, 'mt-'));
    const n = 4;
    const files = Array.from({ length: n }, (_, i) => path.join(tdir, `t${i}`));
    const pid = start(threadsExe, [tdir, String(n)]);
    const pids = [pid];
    const check = (f: string, i: number): number => {
      const ls = lines(f);
      ls.forEach((l, j) => expect(l, `${f} line ${j + 1}`).toBe(`${String(j + 1).padStart(8, '0')} ${i}`));
      return ls.length;
    };
    try {
      await waitFor('all threads writing', () => files.every((f) => lines(f).length >= 10));
      const img = path.join(dir, 'mt.crimg');
      await dumpKill(pid, img);
      const before = files.map(check);
      const r = restoreCli(img);
      pids.push(r);
      await waitFor('every thread to go on', () => files.every((f, i) => lines(f).length >= before[i]! + 10));
      expect(fs.readdirSync(`/proc/${r}/task`)).toHaveLength(n);
      files.forEach(check);
    } finally {
      for (const p of pids) killHard(p);
    }
  });
});

/** Memory in the shapes page writing must handle: zero pages among stored ones (records with several runs), absent
 *  pages, long runs of stored pages (6 MiB), a read-only anonymous mapping with contents. Creates argv[1] when ready. */
const SHAPES_C = `
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
  syscall(SYS_close_range, 3, ~0U, 0); /* inherit no stray fds from the test runner */
  size_t n = 2048, full = 1536;
  unsigned char *p = mmap(0, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  for (size_t i = 0; i < n; i++) {
    if (i % 7 == 5) continue;                      /* absent */
    if (i % 3 == 1) { p[i * 4096] = 0; continue; } /* present, all zero */
    memset(p + i * 4096, (int)((i * 37) | 1), 4096);
    p[i * 4096] = (unsigned char)(i | 1);
  }
  unsigned char *q = mmap(0, full * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  for (size_t i = 0; i < full * 4096; i += 8) *(unsigned long *)(q + i) = (i + 1) * 0x9E3779B97F4A7C15ul;
  unsigned char *ro = mmap(0, 16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  for (int i = 0; i < 16 * 4096; i++) ro[i] = (unsigned char)(i * 7 + 3);
  mprotect(ro, 16 * 4096, PROT_READ);
  close(open(argv[1], O_WRONLY | O_CREAT, 0644));
  for (;;) pause();
}
`;

describe('page writing', () => {
  it('userfaultfd copies and process_vm_writev both put every stored page where it was (zero and absent pages, long records, read-only memory)', async () => {
    const exe = compileC('shapes', SHAPES_C);
    const ready = path.join(dir, 'shapes.ready');
    const pid = start(exe, [ready]);
    const pids = [pid];
    try {
      await waitFor('the shapes program to be ready', () => fs.existsSync(ready));
      const imgPath = path.join(dir, 'pw1.crimg');
      await dumpKill(pid, imgPath);
      const a = readImage(imgPath);
      try {
        const stored = a.stats.pagesStored; // one task
        const recs = a.model.tasks[0]!.mm!.vmas.flatMap((v) => a.runsOf(v));
        expect(recs.some((x) => x.nstored === x.npages && x.npages >= 256)).toBe(true); // whole, long records
        expect(recs.some((x) => x.nstored > 0 && x.nstored < x.npages)).toBe(true); // zero pages among stored ones
        for (const uffd of [true, false]) {
          const r = await restoreImage(a, { stopped: true, pageWriter: { uffd } });
          pids.push(r.pid);
          running.add(r.pid);
          expect(r.userfaultfd).toBe(uffd);
          // every stored page, [vdso] aside (the kernel's own, mapped rather than written)
          const vdso = a.model.tasks[0]!.mm!.vmas.find((v) => v.path === '[vdso]');
          const vdsoPages = vdso ? a.runsOf(vdso).reduce((n, x) => n + x.nstored, 0) : 0;
          expect(r.pagesWritten).toBe(stored - vdsoPages);
          // every byte of anonymous memory and every stored page of file mappings, read back from the stopped process
          const t = a.model.tasks[0]!;
          const mem = fs.openSync(`/proc/${r.pid}/mem`, 'r');
          const differ: string[] = [];
          try {
            for (const v of t.mm!.vmas) {
              if (v.path === '[vvar]' || v.path === '[vvar_vclock]' || v.path === '[vsyscall]') continue;
              const len = Number(v.end - v.start);
              const want = Buffer.from(a.readMemory(t.pid, v.start, len));
              const got = Buffer.alloc(len);
              expect(fs.readSync(mem, got, 0, len, v.start), `read ${v.start.toString(16)}`).toBe(len);
              for (const th of t.threads) {
                // the kernel rewrites the cpu ids in each rseq area
                if (!th.rseq || th.rseq.ptr < v.start || th.rseq.ptr >= v.end) continue;
                const o = Number(th.rseq.ptr - v.start);
                for (const [x, y] of [
                  [0, 8],
                  [20, 28],
                ]) {
                  want.fill(0, o + x!, o + y!);
                  got.fill(0, o + x!, o + y!);
                }
              }
              // file mappings and the vdso: only the pages the image holds (the rest is the file's, the kernel's)
              const anon = v.path === null || v.path === '[heap]' || v.path === '[stack]';
              const ranges = anon ? [[0, len / 4096]] : [...v.pages.runs(len / 4096)];
              for (const [first, n] of ranges) {
                if (!want.subarray(first! * 4096, (first! + n!) * 4096).equals(got.subarray(first! * 4096, (first! + n!) * 4096))) {
                  differ.push(`${v.start.toString(16)} ${v.path ?? ''} page ${first}+${n}`);
                }
              }
            }
          } finally {
            fs.closeSync(mem);
          }
          expect(differ, `pageWriter.uffd ${uffd}`).toEqual([]);
          // and what the kernel maps there: anonymous memory as before, the read-only mapping still read-only
          const maps = fs.readFileSync(`/proc/${r.pid}/maps`, 'latin1');
          for (const v of t.mm!.vmas.filter((x) => x.path === null && x.prot === 1)) {
            expect(maps, `read-only VMA ${v.start.toString(16)}`).toMatch(
              new RegExp(`^${v.start.toString(16)}-${v.end.toString(16)} r--p `, 'm'),
            );
          }
          killHard(r.pid);
          waitpid(r.pid, 0);
        }
      } finally {
        a.close();
      }
    } finally {
      for (const p of pids) killHard(p);
    }
  });
});

describe('restore failures leave nothing behind', () => {
  it('an image whose executable was removed is refused before anything starts', async () => {
    const exe = path.join(dir, 'gone-counter');
    fs.copyFileSync(counterExe, exe);
    fs.chmodSync(exe, 0o755);
    const out = path.join(dir, 'gone.out');
    const pid = start(exe, [out, path.join(dir, 'in.bin')]);
    try {
      await waitFor('a few lines', () => lines(out).length >= 3);
      const img = path.join(dir, 'gone.crimg');
      await dumpKill(pid, img);
      const ok = crimg(['restore', '--check', img]);
      expect(ok.code, ok.stdout + ok.stderr).toBe(0);
      fs.rmSync(exe);
      const chk = crimg(['restore', '--check', '--json', img]);
      expect(chk.code).toBe(1);
      const doc = JSON.parse(chk.stdout);
      expect(doc.restorable).toBe(false);
      expect(doc.reasons.map((x: { code: string }) => x.code)).toContain('EXE_MISSING');
      const stubsBefore = stubsRunning();
      const nLines = lines(out).length;
      const r = crimg(['restore', img]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^crimg: NOT_RESTORABLE: .*EXE_MISSING \(exe\): the executable .*gone-counter does not exist/);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(stubsRunning()).toEqual(stubsBefore);
      await new Promise((res) => setTimeout(res, 50));
      expect(lines(out).length).toBe(nLines);
    } finally {
      killHard(pid);
    }
  });

  it('a step failing half-way kills the stub and every thread it had, and names the step and address', async () => {
    const tdir = fs.mkdtempSync(path.join(dir, 'fail-'));
    const pid = start(threadsExe, [tdir, '3']);
    try {
      await waitFor('threads writing', () => [0, 1, 2].every((i) => lines(path.join(tdir, `t${i}`)).length >= 3));
      const imgPath = path.join(dir, 'fail.crimg');
      await dumpKill(pid, imgPath);
      const img = readImage(imgPath);
      try {
        for (const [failAt, re] of [
          ['unmap stub', /^step unmap stub at 0x[0-9a-f]+-0x[0-9a-f]+: failing on purpose \(failAt\); stub (\d+) killed$/],
          ['map', /^step map at vma 0x[0-9a-f]+-0x[0-9a-f]+.*: failing on purpose \(failAt\); stub (\d+) killed$/],
          ['write pages', /^step write pages at vma 0x[0-9a-f]+-0x[0-9a-f]+.*: failing on purpose \(failAt\); stub (\d+) killed$/],
          ['close userfaultfd', /^step close userfaultfd: failing on purpose \(failAt\); stub (\d+) killed$/],
          ['registers', /^step registers at thread \d+ \(now \d+\): failing on purpose \(failAt\); stub (\d+) killed$/],
          ['unmap park', /^step unmap park at 0x[0-9a-f]+: failing on purpose \(failAt\); stub (\d+) killed$/],
        ] as const) {
          let err: unknown;
          try {
            await restoreImage(img, { failAt });
          } catch (e) {
            err = e;
          }
          expect(err).toBeInstanceOf(CrimgError);
          expect((err as CrimgError).code).toBe('RESTORE');
          const m = re.exec((err as CrimgError).message);
          expect(m, (err as CrimgError).message).not.toBeNull();
          const stub = Number(m![1]);
          expect(fs.existsSync(`/proc/${stub}`)).toBe(false);
        }
        // a system call that fails in the middle of a batch (prlimit64 with cur > max) is the one named
        const rl = img.model.tasks[0]!.rlimits;
        rl[7] = { cur: 10n, max: 5n };
        let err: unknown;
        try {
          await restoreImage(img);
        } catch (e) {
          err = e;
        }
        expect((err as CrimgError).code).toBe('RESTORE');
        const m = /^step rlimit at resource 7: prlimit64: EINVAL; stub (\d+) killed$/.exec((err as CrimgError).message);
        expect(m, (err as CrimgError).message).not.toBeNull();
        expect(fs.existsSync(`/proc/${m![1]}`)).toBe(false);
        expect(stubsRunning()).toEqual([]);
      } finally {
        img.close();
      }
    } finally {
      killHard(pid);
    }
  });

  it('a page record damaged on disk fails the restore at its VMA, after earlier pages went in, and kills the stub', async () => {
    const out = path.join(dir, 'bad.out');
    const pid = start(counterExe, [out, path.join(dir, 'in.bin'), '12288']);
    try {
      await waitFor('a few lines', () => lines(out).length >= 3);
      const imgPath = path.join(dir, 'bad.crimg');
      await dumpKill(pid, imgPath);
      // the last record of the biggest VMA (the heap buffer): records before it are written, then this one fails
      const img = readImage(imgPath);
      let off = 0,
        vmaStart = 0n;
      try {
        const big = [...img.model.tasks[0]!.mm!.vmas].sort((x, y) => Number(y.end - y.start - (x.end - x.start)))[0]!;
        const recs = img.runsOf(big);
        expect(recs.length).toBeGreaterThan(1);
        off = recs[recs.length - 1]!.off + 16 + 16 + 1000; // header, fixed part, into the first stored page
        vmaStart = big.start;
      } finally {
        img.close();
      }
      const fd = fs.openSync(imgPath, 'r+');
      const b = Buffer.alloc(1);
      fs.readSync(fd, b, 0, 1, off);
      b[0]! ^= 0x5a;
      fs.writeSync(fd, b, 0, 1, off);
      fs.closeSync(fd);
      const stubsBefore = stubsRunning();
      const r = crimg(['restore', imgPath]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      const m = /^crimg: RESTORE: step write pages at vma 0x([0-9a-f]+)-0x[0-9a-f]+.*CHECKSUM_MISMATCH.*; stub (\d+) killed\n$/.exec(
        r.stderr,
      );
      expect(m, r.stderr).not.toBeNull();
      expect(BigInt(`0x${m![1]}`)).toBe(vmaStart);
      expect(fs.existsSync(`/proc/${m![2]}`)).toBe(false);
      expect(stubsRunning()).toEqual(stubsBefore);
    } finally {
      killHard(pid);
    }
  });
});

/** NSpid of a thread: its ids from crimg's PID namespace down to its own. */
function nsPids(pid: number, tid = pid): number[] {
  const st = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'latin1');
  return /^NSpid:\s+(.*)$/m.exec(st)![1]!.trim().split(/\s+/).map(Number);
}

describe('restore --pid-ns', () => {
  it("the task and each thread get their original pid and tids back in a new PID namespace (glibc's cached tids work again)", async () => {
    const tdir = fs.mkdtempSync(path.join(dir, 'ns-'));
    const n = 3;
    const files = Array.from({ length: n }, (_, i) => path.join(tdir, `ids${i}`));
    const pid = start(idsExe, [tdir, String(n)]);
    const pids = [pid];
    const parse = (f: string): { pid: number; tid: number; kill: number }[] =>
      lines(f).map((l) => {
        const m = /^(\d+) (\d+) (\d+)$/.exec(l);
        expect(m, `${f}: ${l}`).not.toBeNull();
        return { pid: Number(m![1]), tid: Number(m![2]), kill: Number(m![3]) };
      });
    try {
      await waitFor('all threads writing', () => files.every((f) => lines(f).length >= 5));
      const orig = files.map((f) => parse(f)[0]!);
      orig.forEach((o) => {
        expect(o.pid).toBe(pid);
        expect(o.kill).toBe(0);
      });
      expect(new Set(orig.map((o) => o.tid)).size).toBe(n);
      const img = path.join(dir, 'ns.crimg');
      await dumpKill(pid, img);
      const before = files.map((f) => lines(f).length);

      const r = crimg(['restore', '--pid-ns', '--json', img]);
      expect(r.code, r.stderr).toBe(0);
      const doc = JSON.parse(r.stdout);
      const host: number = doc.pid;
      running.add(host);
      pids.push(host, doc.pidNs.init, doc.pidNs.holder);
      expect(doc.pidNs.pid).toBe(pid);
      expect([...doc.pidNs.tids].sort()).toEqual(orig.map((o) => o.tid).sort());
      // seen from here: holder -> init (pid 1 of the new namespace) -> the task with its original pid
      expect(nsPids(host)).toEqual([host, pid]);
      expect(nsPids(doc.pidNs.init)).toEqual([doc.pidNs.init, 1]);
      const ppid = (p: number): number => Number(fs.readFileSync(`/proc/${p}/stat`, 'latin1').split(') ')[1]!.split(' ')[1]);
      expect(ppid(host)).toBe(doc.pidNs.init);
      expect(ppid(doc.pidNs.init)).toBe(doc.pidNs.holder);
      expect(fs.readFileSync(`/proc/${doc.pidNs.holder}/comm`, 'latin1')).toBe('crimg-pidns-hol\n'); // comm keeps 15 bytes
      expect(fs.readFileSync(`/proc/${doc.pidNs.init}/comm`, 'latin1')).toBe('crimg-pidns-ini\n');
      const tids = fs.readdirSync(`/proc/${host}/task`).map(Number);
      expect(tids.map((t) => nsPids(host, t)[1]).sort()).toEqual(orig.map((o) => o.tid).sort());
      // every thread goes on with the same pid, tid, and a working pthread_kill (its cached tid is right)
      await waitFor('every thread to go on', () => files.every((f, i) => lines(f).length >= before[i]! + 10));
      files.forEach((f, i) => {
        for (const x of parse(f)) expect(x, f).toEqual({ pid, tid: orig[i]!.tid, kill: 0 });
      });
      // the namespace ends with the task: init and holder reap and exit
      killHard(host);
      await waitFor('init and holder to exit', () => !alive(doc.pidNs.init) && !alive(doc.pidNs.holder));
    } finally {
      for (const p of pids) killHard(p);
    }
  });

  it("without --pid-ns the pid differs and the tids glibc cached are stale; with it, the holder exits with the task's status", async () => {
    const tdir = fs.mkdtempSync(path.join(dir, 'nons-'));
    const files = [0, 1].map((i) => path.join(tdir, `ids${i}`));
    const pid = start(idsExe, [tdir, '2']);
    const pids = [pid];
    try {
      await waitFor('both threads writing', () => files.every((f) => lines(f).length >= 3));
      const imgPath = path.join(dir, 'nons.crimg');
      await dumpKill(pid, imgPath);
      const before = files.map((f) => lines(f).length);
      const img = readImage(imgPath);
      try {
        const plainR = await restoreImage(img);
        pids.push(plainR.pid);
        running.add(plainR.pid);
        expect(plainR.pidNs).toBeUndefined();
        await waitFor('lines after restore', () => files.every((f, i) => lines(f).length >= before[i]! + 3));
        const last = lines(files[1]!).at(-1)!.split(' ').map(Number);
        expect(last[0]).toBe(plainR.pid);
        expect(last[2]).toBe(3); // ESRCH: pthread_kill signals the tid thread 0 had before
        killHard(plainR.pid);
        waitpid(plainR.pid, 0);

        // the library call: the holder is our child and exits with the task's status (killed: 128 + 9)
        const r = await restoreImage(img, { pidNs: true });
        pids.push(r.pid, r.pidNs!.init, r.pidNs!.holder);
        running.add(r.pid);
        expect(r.pidNs!.pid).toBe(pid);
        expect(nsPids(r.pid)).toEqual([r.pid, pid]);
        killHard(r.pid);
        const st = waitpid(r.pidNs!.holder, 0).status;
        expect((st >> 8) & 0xff).toBe(137);
        expect(alive(r.pidNs!.init)).toBe(false);
      } finally {
        img.close();
      }
    } finally {
      for (const p of pids) killHard(p);
    }
  });

  it('a step failing half-way kills holder, init and task', async () => {
    const tdir = fs.mkdtempSync(path.join(dir, 'nsfail-'));
    const pid = start(threadsExe, [tdir, '2']);
    try {
      await waitFor('threads writing', () => [0, 1].every((i) => lines(path.join(tdir, `t${i}`)).length >= 3));
      const imgPath = path.join(dir, 'nsfail.crimg');
      await dumpKill(pid, imgPath);
      const img = readImage(imgPath);
      try {
        for (const failAt of ['pid namespace: clone3 set_tid', 'map', 'clone thread', 'registers']) {
          let err: unknown;
          try {
            await restoreImage(img, { pidNs: true, failAt });
          } catch (e) {
            err = e;
          }
          expect((err as CrimgError).code, failAt).toBe('RESTORE');
          const m = /; stubs (\d+), (\d+)(?:, (\d+))? killed$/.exec((err as CrimgError).message);
          expect(m, (err as CrimgError).message).not.toBeNull();
          for (const p of m!.slice(1).filter(Boolean)) expect(fs.existsSync(`/proc/${p}`), `${failAt}: ${p}`).toBe(false); // not even a zombie
        }
        expect(stubsRunning()).toEqual([]);
      } finally {
        img.close();
      }
    } finally {
      killHard(pid);
    }
  });
});

describe('signal dispositions', () => {
  const SIGUSR1 = 10,
    SIGUSR2 = 12,
    SIGPIPE = 13,
    SIGALRM = 14,
    SIGINT = 2;
  const SA_SIGINFO = 4n,
    SA_RESTART = 0x10000000n,
    SA_RESTORER = 0x04000000n,
    SA_ONSTACK = 0x08000000n;
  const status = (p: number, k: string): string =>
    fs
      .readFileSync(`/proc/${p}/status`, 'latin1')
      .split('\n')
      .find((l) => l.startsWith(`${k}:`))!
      .split(/\s+/)[1]!;
  const parse = (f: string): { n: number; usr1: number; spurious: number; term: number; alrm: number }[] =>
    lines(f).map((l) => {
      const m = /^(\d+) (\d+) (\d+) ([01]) (\d+)$/.exec(l);
      expect(m, l).not.toBeNull();
      return { n: Number(m![1]), usr1: Number(m![2]), spurious: Number(m![3]), term: Number(m![4]), alrm: Number(m![5]) };
    });

  it('a process stopped by SIGSTOP before the dump has its handlers read and stays stopped until SIGCONT', async () => {
    const out = path.join(dir, 'sig-stopped.out');
    const pid = start(sigExe, [out, 'futex']);
    const state = (p: number): string => {
      const st = fs.readFileSync(`/proc/${p}/stat`, 'latin1');
      return st.slice(st.lastIndexOf(')') + 2)[0]!;
    };
    try {
      await waitFor('lines', () => lines(out).length >= 10);
      process.kill(pid, 'SIGSTOP');
      await waitFor(
        'stopped',
        () =>
          state(pid) === 'T'
          && fs.readdirSync(`/proc/${pid}/task`).every((t) => /\) T /.test(fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'latin1'))),
      );
      const n0 = lines(out).length;
      const img = path.join(dir, 'sig-stopped.crimg');
      const d = crimg(['dump', String(pid), '-o', img, '--quiet']);
      expect(d.code, d.stderr).toBe(0);
      const a = readImage(img);
      try {
        expect(a.model.tasks[0]!.nocr).toEqual([]);
        expect(a.model.tasks[0]!.sigactions!.find((x) => x.sig === SIGUSR1)!.handler).toBeGreaterThan(1n);
      } finally {
        a.close();
      }
      await new Promise((res) => setTimeout(res, 100));
      expect(state(pid)).toBe('T');
      expect(lines(out).length).toBe(n0);
      process.kill(pid, 'SIGCONT');
      await waitFor('lines after SIGCONT', () => lines(out).length >= n0 + 10);
      for (const x of parse(out)) expect(x.spurious, `line ${x.n}`).toBe(0);
    } finally {
      killHard(pid);
    }
  });

  for (const mode of ['futex', 'sleep'] as const) {
    it(`handlers, flags, masks and ignored signals are dumped without disturbing the program and restored (main thread in ${mode === 'futex' ? 'FUTEX_WAIT' : 'nanosleep()'})`, async () => {
      const out = path.join(dir, `sig-${mode}.out`);
      const pid = start(sigExe, [out, mode]);
      const pids = [pid];
      try {
        await waitFor('lines', () => lines(out).length >= 20);
        process.kill(pid, 'SIGUSR1');
        await waitFor('SIGUSR1 handled', () => (parse(out).at(-1)?.usr1 ?? 0) === 1);
        // dumped while it runs on: the handlers are read inside the process, which must not notice
        const live = path.join(dir, `sig-${mode}-live.crimg`);
        for (let i = 0; i < 5; i++) {
          const d = crimg(['dump', String(pid), '-o', live, '--quiet']);
          expect(d.code, d.stderr).toBe(0);
        }
        const n0 = lines(out).length;
        await waitFor('more lines', () => lines(out).length >= n0 + 20);
        for (const x of parse(out)) expect(x.spurious, `line ${x.n}`).toBe(0);
        const img = readImage(live);
        let acts, its, alt;
        try {
          alt = img.model.tasks[0]!.threads[0]!.sigaltstack;
          acts = img.model.tasks[0]!.sigactions!;
          its = img.model.tasks[0]!.itimers!;
          expect(img.model.tasks[0]!.nocr).toEqual([]);
        } finally {
          img.close();
        }
        expect(acts.map((a) => a.sig).filter((s) => s < 32)).toEqual([SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM]); // glibc's own handlers (SIGRTMIN-1 ...) come above
        const u1 = acts.find((a) => a.sig === SIGUSR1)!;
        expect(u1.handler).toBeGreaterThan(1n);
        expect(u1.flags & (SA_SIGINFO | SA_RESTART | SA_RESTORER | SA_ONSTACK)).toBe(SA_SIGINFO | SA_RESTART | SA_RESTORER | SA_ONSTACK);
        expect(alt).toMatchObject({ size: 65536n, flags: 0 });
        expect(u1.restorer).toBeGreaterThan(0n);
        expect(u1.mask).toBe(1n << BigInt(SIGINT - 1));
        expect(its.map((x) => [x.which, x.intervalUs])).toEqual([[0, 20_000n]]); // ITIMER_REAL every 20 ms
        expect(its[0]!.valueUs).toBeLessThanOrEqual(20_000n); // 0: expired during the freeze, SIGALRM pending
        for (const s of [SIGUSR2, SIGPIPE]) expect(acts.find((a) => a.sig === s)!.handler).toBe(1n);
        const shown = JSON.parse(crimg(['show', '--json', live]).stdout);
        expect(JSON.stringify(shown)).toContain('sigactions');

        const img1 = path.join(dir, `sig-${mode}-1.crimg`);
        const ign = status(pid, 'SigIgn'),
          cgt = status(pid, 'SigCgt');
        process.kill(pid, 'SIGTERM'); // blocked: stays pending, across the restore too
        await waitFor('SIGTERM pending', () => parse(out).at(-1)?.term === 1);
        await dumpKill(pid, img1);
        const atDump = lines(out).length;
        const r = restoreCli(img1);
        pids.push(r);
        expect(status(r, 'SigIgn')).toBe(ign);
        expect(status(r, 'SigCgt')).toBe(cgt);
        const before = lines(out).length;
        await waitFor('lines after restore', () => lines(out).length >= before + 10);
        expect(
          parse(out)
            .slice(before)
            .every((x) => x.term === 1),
        ).toBe(true);
        // the interval timer ticks on in the restored process
        const alrmAtDump = parse(out)[atDump - 1]!.alrm;
        await waitFor('SIGALRM ticks after restore', () => (parse(out).at(-1)?.alrm ?? 0) >= alrmAtDump + 10);
        // the handler runs (SIGUSR1's default would kill it); ignored signals stay ignored
        process.kill(r, 'SIGUSR1');
        process.kill(r, 'SIGPIPE');
        process.kill(r, 'SIGUSR2');
        await waitFor('SIGUSR1 handled after restore', () => (parse(out).at(-1)?.usr1 ?? 0) >= 2);
        expect(parse(out).at(-1)!.usr1).toBe(2); // on the alternate signal stack (1000 if not)
        expect(alive(r)).toBe(true);
        const n1 = lines(out).length;
        await waitFor('more lines', () => lines(out).length >= n1 + 10);
        // a sleep interrupted at the dump comes back as EINTR (its restart block stayed in the old kernel task, see
        // docs/RESTORE.md); a wait without a timeout (ERESTARTSYS) restarts
        parse(out).forEach((x, i) => {
          expect(x.n).toBe(i + 1);
          expect(x.spurious).toBe(i < atDump ? 0 : mode === 'sleep' ? Math.min(x.spurious, 1) : 0);
        });
        // and a dump of the restored process records the same dispositions
        const img2 = path.join(dir, `sig-${mode}-2.crimg`);
        const d2 = crimg(['dump', String(r), '-o', img2, '--quiet']);
        expect(d2.code, d2.stderr).toBe(0);
        const a = readImage(img1),
          b = readImage(img2);
        try {
          expect(b.model.tasks[0]!.sigactions).toEqual(a.model.tasks[0]!.sigactions);
          expect(b.model.tasks[0]!.threads.map((t) => t.sigaltstack)).toEqual(a.model.tasks[0]!.threads.map((t) => t.sigaltstack));
        } finally {
          a.close();
          b.close();
        }
      } finally {
        for (const p of pids) killHard(p);
      }
    });
  }
});

/** A worker thread that writes "w N" lines until the file argv[2] exists, then exits; the main thread waits in
 *  pthread_join, then writes "joined" and goes on writing "m N" lines. */
const JOIN_C = `
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>
static int out;
static const char *stop;
static void say(const char *s) { if (write(out, s, strlen(s)) < 0) _exit(1); }
static void nap(void) { struct timespec ts = {0, 2 * 1000 * 1000}; nanosleep(&ts, 0); }
static void *worker(void *a) {
  (void)a;
  char line[32];
  for (int i = 1; access(stop, F_OK) != 0; i++) { snprintf(line, sizeof line, "w %d\\n", i); say(line); nap(); }
  return 0;
}
int main(int argc, char **argv) {
  (void)argc;
  syscall(SYS_close_range, 3, ~0U, 0);
  out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  stop = argv[2];
  pthread_t t;
  if (pthread_create(&t, 0, worker, 0)) return 1;
  if (pthread_join(t, 0)) return 1;
  say("joined\\n");
  char line[32];
  for (int i = 1; ; i++) { snprintf(line, sizeof line, "m %d\\n", i); say(line); nap(); }
}
`;

describe('thread exit after restore', () => {
  it('pthread_join returns when a restored thread exits (clear_child_tid restored)', async () => {
    const exe = compileC('join', JOIN_C, ['-pthread']);
    const out = path.join(dir, 'join.out');
    const stop = path.join(dir, 'join.stop');
    const pid = start(exe, [out, stop]);
    const pids = [pid];
    try {
      await waitFor('the worker writing', () => lines(out).length >= 20);
      const img = path.join(dir, 'join.crimg');
      await dumpKill(pid, img);
      expect(lines(out)).not.toContain('joined');
      const r = restoreCli(img);
      pids.push(r);
      const n0 = lines(out).length;
      await waitFor('the restored worker writing', () => lines(out).length >= n0 + 10);
      fs.writeFileSync(stop, '');
      await waitFor('the main thread to join the worker and go on', () => lines(out).filter((l) => l.startsWith('m ')).length >= 5);
      const ls = lines(out);
      const ws = ls.filter((l) => l.startsWith('w '));
      expect(ws).toEqual(Array.from({ length: ws.length }, (_, i) => `w ${i + 1}`));
      expect(ls.indexOf('joined')).toBe(ws.length);
    } finally {
      for (const p of pids) killHard(p);
    }
  });
});

/** POSIX timers: A (MONOTONIC, SIGUSR1 to the process every 10 ms, value 0x5eed), B (REALTIME, SIGEV_NONE, one
 *  shot in 1000 s), a third one deleted (a gap in the ids), C (BOOTTIME, SIGUSR2 to the worker thread every 15 ms,
 *  value 77): ids 0, 1, 3. The handlers count ticks, and wrong ones (not SI_TIMER, wrong value or timer id, C not on
 *  the worker). Every 20 ms a line "n ticksA ticksC badA badC msLeftOnB" to argv[1]. */
const PTIMERS_C = `
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static volatile int ticksA, ticksC, badA, badC, idA, idC, ready;
static __thread int isWorker;
static void onA(int s, siginfo_t *si, void *u) {
  (void)s; (void)u;
  if (si->si_code != SI_TIMER || si->si_value.sival_ptr != (void *)0x5eed || si->si_timerid != idA) badA++;
  ticksA++;
}
static void onC(int s, siginfo_t *si, void *u) {
  (void)s; (void)u;
  if (si->si_code != SI_TIMER || si->si_value.sival_int != 77 || si->si_timerid != idC || !isWorker) badC++;
  ticksC++;
}
static void *worker(void *a) { (void)a; isWorker = 1; ready = (int)syscall(SYS_gettid); for (;;) pause(); return 0; }
int main(int argc, char **argv) {
  (void)argc;
  FILE *out = open_out(argv[1]);
  struct sigaction sa = {0};
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sa.sa_sigaction = onA; sigaction(SIGUSR1, &sa, 0);
  sa.sa_sigaction = onC; sigaction(SIGUSR2, &sa, 0);
  pthread_t th;
  pthread_create(&th, 0, worker, 0);
  while (!ready) usleep(1000);
  timer_t a, b, d, c;
  struct sigevent ev = {0};
  ev.sigev_notify = SIGEV_SIGNAL; ev.sigev_signo = SIGUSR1; ev.sigev_value.sival_ptr = (void *)0x5eed;
  if (timer_create(CLOCK_MONOTONIC, &ev, &a)) return 1;
  ev.sigev_notify = SIGEV_NONE;
  if (timer_create(CLOCK_REALTIME, &ev, &b)) return 1;
  ev.sigev_notify = SIGEV_SIGNAL;
  if (timer_create(CLOCK_MONOTONIC, &ev, &d)) return 1;
  ev.sigev_notify = SIGEV_THREAD_ID; ev.sigev_signo = SIGUSR2; ev.sigev_value.sival_ptr = 0; ev.sigev_value.sival_int = 77;
  ev._sigev_un._tid = ready;
  if (timer_create(CLOCK_BOOTTIME, &ev, &c)) return 1;
  timer_delete(d);
  idA = (int)(long)a; idC = (int)(long)c;
  struct itimerspec ia = {{0, 10000000}, {0, 10000000}}, ib = {{0, 0}, {1000, 0}}, ic = {{0, 15000000}, {0, 15000000}};
  timer_settime(a, 0, &ia, 0); timer_settime(b, 0, &ib, 0); timer_settime(c, 0, &ic, 0);
  for (int n = 1;; n++) {
    struct itimerspec g;
    timer_gettime(b, &g);
    fprintf(out, "%d %d %d %d %d %ld\\n", n, ticksA, ticksC, badA, badC, (long)(g.it_value.tv_sec * 1000 + g.it_value.tv_nsec / 1000000));
    struct timespec ts = {0, 20000000};
    while (nanosleep(&ts, &ts)) {}
  }
}
`;

describe('POSIX timers', () => {
  it('are dumped (id, clock, notification, signal, value, times) and come back with the same ids, ticking on', async () => {
    const exe = compileC('ptimers', PTIMERS_C, ['-pthread']);
    const out = path.join(dir, 'ptimers.out');
    const pid = start(exe, [out]);
    const pids = [pid];
    const last = (): number[] => (lines(out).at(-1) ?? '0 0 0 0 0 0').split(' ').map(Number);
    const byId = <T extends { id: number }>(xs: T[]): T[] => [...xs].sort((x, y) => x.id - y.id);
    try {
      await waitFor('ticks', () => last()[1]! >= 10 && last()[2]! >= 5);
      const chk = crimg(['check', String(pid), '--json']);
      expect(JSON.parse(chk.stdout).reasons).toEqual([]);
      const tids = fs.readdirSync(`/proc/${pid}/task`).map(Number);
      const img = path.join(dir, 'ptimers.crimg');
      await dumpKill(pid, img);
      const atDump = last();
      const m = readImage(img);
      let pts: PosixTimer[];
      try {
        pts = m.model.tasks[0]!.posixTimers!;
        expect(m.model.tasks[0]!.nocr).toEqual([]);
      } finally {
        m.close();
      }
      expect(pts.map((t) => [t.id, t.clock, t.notify, t.signo])).toEqual([
        [0, 1, 0, 10],
        [1, 0, 1, 0],
        [3, 7, 4, 12],
      ]);
      expect(pts[0]!.sigevValue).toBe(0x5eedn);
      expect(pts[0]!.intervalNs).toBe(10_000_000n);
      expect(pts[0]!.valueNs).toBeLessThanOrEqual(10_000_000n);
      expect([pts[1]!.intervalNs, pts[1]!.valueNs > 900_000_000_000n]).toEqual([0n, true]);
      expect([pts[2]!.sigevValue & 0xffffffffn, pts[2]!.intervalNs]).toEqual([77n, 15_000_000n]);
      expect(tids.filter((t) => t !== pid)).toEqual([pts[2]!.notifyTid]);
      const r = restoreCli(img);
      pids.push(r);
      await waitFor('ticks after restore', () => last()[1]! >= atDump[1]! + 20 && last()[2]! >= atDump[2]! + 10);
      const now = last();
      expect([now[3], now[4]]).toEqual([0, 0]); // every tick from the right timer, with its value, C's on the worker
      expect(now[5]).toBeLessThanOrEqual(atDump[5]!); // B's remaining time goes on from where it was
      expect(now[5]).toBeGreaterThan(atDump[5]! - 10_000);
      const got = byId(readPosixTimers(r));
      expect(got.map((t) => [t.id, t.clock, t.notify, t.signo, t.sigevValue & 0xffffffffn])).toEqual([
        [0, 1, 0, 10, 0x5eedn],
        [1, 0, 1, 0, 0x5eedn],
        [3, 7, 4, 12, 77n],
      ]);
      expect(
        fs
          .readdirSync(`/proc/${r}/task`)
          .map(Number)
          .filter((t) => t !== r),
      ).toEqual([got[2]!.notifyTid]);
    } finally {
      for (const p of pids) killHard(p);
    }
  });
});

/** File locks: flock LOCK_EX on argv[2]/a, POSIX read lock on bytes 10..29 and write lock from 100 to EOF on
 *  argv[2]/b (also open on a second fd), an OFD write lock on bytes 0..4095 of argv[2]/c. Lines "n" to argv[1]. */
const LOCKS_C = `
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
  (void)argc;
  FILE *out = open_out(argv[1]);
  char p[4096];
  snprintf(p, sizeof p, "%s/a", argv[2]); int a = open(p, O_RDWR | O_CREAT, 0644);
  snprintf(p, sizeof p, "%s/b", argv[2]); int b = open(p, O_RDWR | O_CREAT, 0644); int b2 = open(p, O_RDONLY);
  snprintf(p, sizeof p, "%s/c", argv[2]); int c = open(p, O_RDWR | O_CREAT, 0644);
  if (a < 0 || b < 0 || b2 < 0 || c < 0 || flock(a, LOCK_EX | LOCK_NB)) return 1;
  struct flock l = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 20 };
  if (fcntl(b, F_SETLK, &l)) return 2;
  l.l_type = F_WRLCK; l.l_start = 100; l.l_len = 0;
  if (fcntl(b, F_SETLK, &l)) return 3;
  struct flock o = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 4096 };
  if (fcntl(c, F_OFD_SETLK, &o)) return 4;
  for (int n = 1;; n++) {
    fprintf(out, "%d\\n", n);
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, 0);
  }
}
`;

describe('file locks', () => {
  const lockLines = (p: number): string[] =>
    fs
      .readdirSync(`/proc/${p}/fdinfo`)
      .map(Number)
      .sort((x, y) => x - y)
      .flatMap((fd) =>
        fs
          .readFileSync(`/proc/${p}/fdinfo/${fd}`, 'latin1')
          .split('\n')
          .filter((l) => l.startsWith('lock:'))
          .map(
            (l) =>
              `${fd} ${l
                .replace(/^lock:\s*\d+:\s*/, '')
                .replace(/\s+-?\d+\s+[0-9a-f]+:[0-9a-f]+:\d+/, '')
                .replace(/\s+/g, ' ')}`,
          ),
      );
  /** flock(1) on path: 0 when it got the lock (nobody held it), 1 when it is held. */
  const tryFlock = (path: string): number | null => spawnSync('flock', ['-n', '-x', path, 'true']).status;

  it('flock, POSIX and OFD locks are dumped and held again by the restored process; one held elsewhere fails the restore', async () => {
    const exe = compileC('locks', LOCKS_C);
    const ldir = fs.mkdtempSync(path.join(dir, 'locks-'));
    const out = path.join(dir, 'locks.out');
    const pid = start(exe, [out, ldir]);
    const pids = [pid];
    try {
      await waitFor('lines', () => lines(out).length >= 5);
      const before = lockLines(pid);
      expect(before).toEqual([
        // fd 3 is the output file
        '4 FLOCK ADVISORY WRITE 0 EOF',
        '5 POSIX ADVISORY READ 10 29',
        '5 POSIX ADVISORY WRITE 100 EOF', // shown on the descriptor they were taken through
        '7 OFDLCK ADVISORY WRITE 0 4095',
      ]);
      const chk = crimg(['check', String(pid), '--json']);
      expect(JSON.parse(chk.stdout).reasons).toEqual([]);
      // dumped while it runs: the locks are still its own, so a restore cannot take them
      const live = path.join(dir, 'locks-live.crimg');
      const d = crimg(['dump', String(pid), '-o', live, '--quiet']);
      expect(d.code, d.stderr).toBe(0);
      const shown = crimg(['show', live]).stdout;
      expect(shown).toContain('lock flock write 0..EOF');
      expect(shown).toContain('lock POSIX read 10..29');
      const busy = crimg(['restore', live]);
      expect(busy.code).toBe(1);
      expect(busy.stderr).toMatch(/^crimg: RESTORE: step file lock at fd 4 \S+\/a write lock 0\.\.EOF: .*EAGAIN.*; stub \d+ killed\n$/);
      expect(stubsRunning()).toEqual([]);
      expect(tryFlock(path.join(ldir, 'a'))).toBe(1); // the original still has it

      const img = path.join(dir, 'locks.crimg');
      await dumpKill(pid, img);
      expect(tryFlock(path.join(ldir, 'a'))).toBe(0); // gone with the process
      const r = restoreCli(img);
      pids.push(r);
      const n0 = lines(out).length;
      await waitFor('lines after restore', () => lines(out).length >= n0 + 3);
      // the same locks on the same fds, and they exclude others again
      expect(lockLines(r)).toEqual(before);
      expect(tryFlock(path.join(ldir, 'a'))).toBe(1);
    } finally {
      for (const p of pids) killHard(p);
    }
  });
});

/** An event loop: an eventfd (count 5, semaphore, non-blocking), a timerfd (MONOTONIC, every 10 ms), a signalfd for
 *  SIGUSR1 (blocked), and an epoll watching the timerfd (data 111) and the signalfd (data 222, edge-triggered).
 *  Each wakeup reads what is ready; when argv[2] exists the eventfd is read once (semaphore: 1). Every 20 ms or so
 *  a line "n ticks usr1 efdReads efdValue bad" to argv[1]. */
const ANONFD_C = `
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>
int main(int argc, char **argv) {
  (void)argc;
  FILE *out = open_out(argv[1]);
  int efd = eventfd(5, EFD_SEMAPHORE | EFD_NONBLOCK);
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  struct itimerspec its = {{0, 10000000}, {0, 10000000}};
  timerfd_settime(tfd, 0, &its, 0);
  sigset_t m; sigemptyset(&m); sigaddset(&m, SIGUSR1); sigprocmask(SIG_BLOCK, &m, 0);
  int sfd = signalfd(-1, &m, SFD_NONBLOCK);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = { .events = EPOLLIN, .data.u64 = 111 };
  epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &e);
  e.events = EPOLLIN | EPOLLET; e.data.u64 = 222;
  epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &e);
  if (efd < 0 || tfd < 0 || sfd < 0 || ep < 0) return 1;
  long ticks = 0, usr1 = 0, reads = 0, bad = 0, last = 0;
  uint64_t ev = 0;
  for (long n = 1;; ) {
    struct epoll_event evs[4];
    int k = epoll_wait(ep, evs, 4, 200);
    for (int i = 0; i < k; i++) {
      uint64_t v;
      if (evs[i].data.u64 == 111) { if (read(tfd, &v, 8) == 8) ticks += (long)v; }
      else if (evs[i].data.u64 == 222) { struct signalfd_siginfo si; while (read(sfd, &si, sizeof si) == sizeof si) { if (si.ssi_signo == SIGUSR1) usr1++; else bad++; } }
      else bad++;
    }
    if (!reads && access(argv[2], F_OK) == 0) { if (read(efd, &ev, 8) == 8) reads++; else bad++; }
    if (ticks >= last + 2) { last = ticks; fprintf(out, "%ld %ld %ld %ld %lu %ld\\n", n++, ticks, usr1, reads, (unsigned long)ev, bad); }
  }
}
`;

describe('eventfd, timerfd, signalfd, epoll', () => {
  it('are dumped with their state and rebuilt: the event loop goes on (timer ticks, a signal through the signalfd, the eventfd count)', async () => {
    const exe = compileC('anonfd', ANONFD_C);
    const out = path.join(dir, 'anonfd.out');
    const trigger = path.join(dir, 'anonfd.go');
    const pid = start(exe, [out, trigger]);
    const pids = [pid];
    const last = (): number[] => (lines(out).at(-1) ?? '0 0 0 0 0 0').split(' ').map(Number);
    const fdinfo = (p: number, fd: number): string => fs.readFileSync(`/proc/${p}/fdinfo/${fd}`, 'latin1');
    try {
      await waitFor('ticks', () => last()[1]! >= 10);
      process.kill(pid, 'SIGUSR1');
      await waitFor('SIGUSR1 through the signalfd', () => last()[2] === 1);
      const chk = crimg(['check', String(pid), '--json']);
      expect(JSON.parse(chk.stdout).reasons).toEqual([]);
      const img = path.join(dir, 'anonfd.crimg');
      await dumpKill(pid, img);
      const atDump = last();
      const m = readImage(img);
      try {
        const anon = m.model.tasks[0]!.files.filter((f) => f.anon).map((f) => [f.fd, f.anon!.kind, f.anon!.values.length]);
        expect(anon).toEqual([
          [4, 1, 2],
          [5, 2, 5],
          [6, 3, 1],
          [7, 4, 6],
        ]);
        const byFd = new Map(m.model.tasks[0]!.files.map((f) => [f.fd, f]));
        expect(byFd.get(4)!.anon!.values).toEqual([5n, 1n]); // count 5, semaphore
        expect(byFd.get(5)!.anon!.values.slice(0, 3)).toEqual([1n, 0n, 10_000_000n]); // MONOTONIC, relative, 10 ms
        expect(byFd.get(6)!.anon!.values).toEqual([1n << 9n]); // SIGUSR1
        expect(byFd.get(7)!.anon!.values).toEqual([5n, 0x19n, 111n, 6n, 0x80000019n, 222n]); // EPOLLERR | EPOLLHUP come with every watch
        expect(byFd.get(7)!.cloexec).toBe(true);
      } finally {
        m.close();
      }
      const r = restoreCli(img);
      pids.push(r);
      await waitFor('ticks after restore', () => last()[1]! >= atDump[1]! + 20);
      process.kill(r, 'SIGUSR1');
      await waitFor('SIGUSR1 through the restored signalfd', () => last()[2] === 2);
      fs.writeFileSync(trigger, '');
      await waitFor('the eventfd read', () => last()[3] === 1);
      expect(last()[4]).toBe(1); // semaphore mode: one at a time
      expect(last()[5]).toBe(0);
      expect(fdinfo(r, 4)).toMatch(/eventfd-count:\s+4\n/);
      expect(fdinfo(r, 5)).toMatch(/clockid: 1\n/);
      expect(fdinfo(r, 6)).toMatch(/sigmask:\s+0000000000000200\n/);
      expect(fdinfo(r, 7)).toMatch(/tfd:\s+5 events:\s+19 data:\s+6f/);
      expect(fdinfo(r, 7)).toMatch(/tfd:\s+6 events:\s+80000019 data:\s+de/);
    } finally {
      for (const p of pids) killHard(p);
    }
  });
});

/** Pipes of its own: p1 (both ends, 128 KiB, "hello-pipe" buffered, non-blocking read end, the write end also on a
 *  second fd), p2 (write end only: its reader closed), p3 (read end only: "tail-data" buffered, then its writer
 *  closed). Lines "n" to argv[1]; once argv[2] exists, one line "got1=.. size1=.. got3=.. eof3=.. epipe2=..". */
const PIPES_C = `
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <time.h>
int main(int argc, char **argv) {
  (void)argc;
  FILE *out = open_out(argv[1]);
  signal(SIGPIPE, SIG_IGN);
  int p1[2], p2[2], p3[2];
  if (pipe(p1) || pipe(p2) || pipe(p3)) return 1;
  fcntl(p1[1], F_SETPIPE_SZ, 128 * 1024);
  fcntl(p1[0], F_SETFL, O_NONBLOCK);
  if (write(p1[1], "hello-pipe", 10) != 10 || write(p3[1], "tail-data", 9) != 9) return 2;
  int w1b = dup(p1[1]);
  close(p2[0]); close(p3[1]);
  (void)w1b;
  for (int n = 1, done = 0;; n++) {
    if (!done && access(argv[2], F_OK) == 0) {
      char b1[64] = {0}, b3[64] = {0};
      long g1 = read(p1[0], b1, sizeof b1 - 1), g3 = read(p3[0], b3, sizeof b3 - 1), e3 = read(p3[0], b3 + 60, 1);
      long w2 = write(p2[1], "x", 1);
      int epipe = w2 < 0 && errno == EPIPE;
      long again = read(p1[0], b1 + 40, 1);
      fprintf(out, "got1=%s size1=%d got3=%s eof3=%d epipe2=%d again1=%d\\n", g1 > 0 ? b1 : "-", fcntl(p1[0], F_GETPIPE_SZ), g3 > 0 ? b3 : "-",
        e3 == 0, epipe, again < 0 && errno == EAGAIN);
      done = 1;
    } else fprintf(out, "%d\\n", n);
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, 0);
  }
}
`;

describe('pipes of the task', () => {
  it('come back with their bytes, capacity, flags and closed ends', async () => {
    const exe = compileC('pipes', PIPES_C);
    const out = path.join(dir, 'pipes.out');
    const trigger = path.join(dir, 'pipes.go');
    const pid = start(exe, [out, trigger]);
    const pids = [pid];
    try {
      await waitFor('lines', () => lines(out).length >= 3);
      const chk = crimg(['check', String(pid), '--json']);
      expect(JSON.parse(chk.stdout).reasons).toEqual([]);
      const img = path.join(dir, 'pipes.crimg');
      await dumpKill(pid, img);
      const m = readImage(img);
      try {
        const ps = m.model.tasks[0]!.files.filter((f) => f.pipe).map((f) => [
          f.fd,
          f.pipe!.write,
          f.pipe!.size,
          Buffer.from(f.pipe!.data ?? []).toString(),
        ]);
        expect(ps).toEqual([
          [4, false, 131072, 'hello-pipe'],
          [5, true, 131072, ''],
          [7, true, 65536, ''],
          [8, false, 65536, 'tail-data'],
          [10, true, 131072, ''],
        ]);
      } finally {
        m.close();
      }
      const r = restoreCli(img);
      pids.push(r);
      const n0 = lines(out).length;
      await waitFor('lines after restore', () => lines(out).length >= n0 + 3);
      const link = (fd: number): string => fs.readlinkSync(`/proc/${r}/fd/${fd}`);
      expect(link(4)).toBe(link(5));
      expect(link(4)).toBe(link(10));
      expect(link(4)).not.toBe(link(7));
      expect(fs.existsSync(`/proc/${r}/fd/6`)).toBe(false); // p2's read end was closed
      fs.writeFileSync(trigger, '');
      await waitFor('the pipes read', () => lines(out).some((l) => l.startsWith('got1=')));
      expect(lines(out).find((l) => l.startsWith('got1='))).toBe('got1=hello-pipe size1=131072 got3=tail-data eof3=1 epipe2=1 again1=1');
    } finally {
      for (const p of pids) killHard(p);
    }
  });
});

describe('a Node.js process', () => {
  it('(libuv: epoll, eventfds, its own pipes, a thread pool) is dumped and restored, and its interval timer goes on', async () => {
    const out = path.join(dir, 'node.out');
    // started through a program that closes what the test runner left open (a pipe to it would be a reason)
    const bare = closeFdsExe();
    const c = spawn(
      bare,
      [process.execPath, '-e', `let n = 0; setInterval(() => require('fs').appendFileSync(${JSON.stringify(out)}, (++n) + '\\n'), 20);`],
      { stdio: 'ignore', cwd: dir },
    );
    children.push(c);
    running.add(c.pid!);
    const pids = [c.pid!];
    try {
      await waitFor('lines', () => lines(out).length >= 5);
      const chk = JSON.parse(crimg(['check', String(c.pid), '--json']).stdout);
      expect(chk.reasons).toEqual([]);
      const img = path.join(dir, 'node.crimg');
      await dumpKill(c.pid!, img);
      const m = readImage(img);
      try {
        const files = m.model.tasks[0]!.files;
        expect(files.some((f) => f.anon?.kind === 4)).toBe(true); // epoll
        expect(files.some((f) => f.anon?.kind === 1)).toBe(true); // eventfd
        expect(files.some((f) => f.pipe)).toBe(true);
        expect(m.model.tasks[0]!.threads.length).toBeGreaterThan(1);
      } finally {
        m.close();
      }
      const n0 = lines(out).length;
      const r = restoreCli(img);
      pids.push(r);
      await waitFor('lines after restore', () => lines(out).length >= n0 + 10);
      const ls = lines(out);
      expect(ls).toEqual(ls.map((_, i) => String(i + 1))); // no number lost or repeated across the restore
    } finally {
      for (const p of pids) killHard(p);
    }
  });
});

/** A stream socketpair (fds 4, 5; "to-b" queued to 5, "to-a!" queued to 4; 4 non-blocking) and a datagram pair
 *  (fds 6, 7, nothing queued). Lines "n" to argv[1]; once argv[2] exists, one line "a=.. b=.. again=.. dgram=..". */
const SOCKPAIR_C = `
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
int main(int argc, char **argv) {
  (void)argc;
  FILE *out = open_out(argv[1]);
  int s[2], d[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) || socketpair(AF_UNIX, SOCK_DGRAM, 0, d)) return 1;
  fcntl(s[0], F_SETFL, O_NONBLOCK);
  if (write(s[0], "to-b", 4) != 4 || write(s[1], "to-a!", 5) != 5) return 2;
  for (int n = 1, done = 0;; n++) {
    if (!done && access(argv[2], F_OK) == 0) {
      char a[32] = {0}, b[32] = {0}, g[32] = {0};
      long ra = read(s[0], a, sizeof a - 1), rb = read(s[1], b, sizeof b - 1), again = read(s[0], a + 20, 1);
      int eagain = again < 0 && errno == EAGAIN;
      long sent = send(d[0], "dg", 2, 0), got = recv(d[1], g, sizeof g - 1, 0);
      fprintf(out, "a=%s b=%s again=%d dgram=%s\\n", ra > 0 ? a : "-", rb > 0 ? b : "-", eagain, sent == 2 && got == 2 ? g : "-");
      done = 1;
    } else fprintf(out, "%d\\n", n);
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, 0);
  }
}
`;

describe('UNIX socket pairs of the task', () => {
  it('come back connected, with the bytes queued each way and their flags', async () => {
    const exe = compileC('sockpair', SOCKPAIR_C);
    const out = path.join(dir, 'sockpair.out');
    const trigger = path.join(dir, 'sockpair.go');
    const pid = start(exe, [out, trigger]);
    const pids = [pid];
    try {
      await waitFor('lines', () => lines(out).length >= 3);
      expect(JSON.parse(crimg(['check', String(pid), '--json']).stdout).reasons).toEqual([]);
      const img = path.join(dir, 'sockpair.crimg');
      await dumpKill(pid, img);
      const m = readImage(img);
      try {
        const us = m.model.tasks[0]!.files.filter((f) => f.unixPair).map((f) => [
          f.fd,
          f.unixPair!.second,
          f.unixPair!.type,
          Buffer.from(f.unixPair!.data ?? []).toString(),
        ]);
        expect(us).toEqual([
          [4, false, 1, 'to-a!'],
          [5, true, 1, 'to-b'],
          [6, false, 2, ''],
          [7, true, 2, ''],
        ]);
      } finally {
        m.close();
      }
      const r = restoreCli(img);
      pids.push(r);
      const n0 = lines(out).length;
      await waitFor('lines after restore', () => lines(out).length >= n0 + 3);
      fs.writeFileSync(trigger, '');
      await waitFor('the sockets read', () => lines(out).some((l) => l.startsWith('a=')));
      expect(lines(out).find((l) => l.startsWith('a='))).toBe('a=to-a! b=to-b again=1 dgram=dg');
    } finally {
      for (const p of pids) killHard(p);
    }
  });

  it('a Python asyncio program (epoll and its self-pipe socketpair) comes back with --pid-ns and goes on', async () => {
    const out = path.join(dir, 'aio.out');
    const script = path.join(dir, 'aio.py');
    // asyncio takes its running loop for another process's when the pid changed (its fork check): --pid-ns keeps it
    fs.writeFileSync(
      script,
      `import asyncio, os\nos.closerange(3, 65536)\nasync def main():\n    n = 0\n    while True:\n        n += 1\n        with open(${JSON.stringify(out)}, 'a') as f: f.write(f'{n}\\n')\n        await asyncio.sleep(0.02)\nasyncio.run(main())\n`,
    );
    const pid = start('python3', [script]);
    const pids = [pid];
    try {
      await waitFor('lines', () => lines(out).length >= 5);
      expect(JSON.parse(crimg(['check', String(pid), '--json']).stdout).reasons).toEqual([]);
      const img = path.join(dir, 'aio.crimg');
      await dumpKill(pid, img);
      const n0 = lines(out).length;
      const r = crimg(['restore', '--pid-ns', '--json', img]);
      expect(r.code, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout);
      pids.push(j.pid, j.pidNs.holder, j.pidNs.init);
      await waitFor('lines after restore', () => lines(out).length >= n0 + 10);
      const ls = lines(out);
      expect(ls).toEqual(ls.map((_, i) => String(i + 1)));
    } finally {
      for (const p of pids) killHard(p);
    }
  });
});

describe("standard output on another process's pipe", () => {
  it("is a note, not a reason: the dump goes through; restore asks for --inherit-stdio and then writes to crimg's own", async () => {
    // prints n on stdout every 20 ms, and to argv[1]
    const exe = compileC(
      'stdio',
      `
#include <time.h>
int main(int argc, char **argv) {
  (void)argc;
  FILE *out = open_out(argv[1]);
  for (int n = 1;; n++) {
    fprintf(out, "%d\\n", n);
    printf("n=%d\\n", n);
    fflush(stdout);
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, 0);
  }
}
`,
    );
    const log = path.join(dir, 'stdio.log');
    const c = spawn(exe, [log], { stdio: ['ignore', 'pipe', 'ignore'], cwd: dir }); // stdout: a pipe (socket) of the test
    children.push(c);
    running.add(c.pid!);
    c.stdout!.resume();
    const pids = [c.pid!];
    try {
      await waitFor('lines', () => lines(log).length >= 3);
      const chk = crimg(['check', String(c.pid), '--json']);
      expect(chk.code).toBe(0);
      const doc = JSON.parse(chk.stdout);
      expect([doc.safe, doc.reasons, doc.notes.map((n: { code: string }) => n.code)]).toEqual([true, [], ['STDIO']]);
      const img = path.join(dir, 'stdio.crimg');
      await dumpKill(c.pid!, img); // no --force needed
      const refused = crimg(['restore', img]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(
        /NOT_RESTORABLE: .*STDIO \(task \d+\): fd 1 .*: restore with --inherit-stdio to give the task crimg's own/,
      );
      expect(refused.stderr).not.toContain('gives the restored task'); // dump's hint, for crimg check, is left out
      const chkRestore = JSON.parse(crimg(['restore', '--check', '--json', img]).stdout);
      expect(chkRestore.reasons.map((r: { code: string; at: { of: string; fd?: number } }) => [r.code, r.at.of, r.at.fd])).toEqual([
        ['STDIO', 'dump', undefined],
        ['FD_UNSUPPORTED', 'fd', 1],
      ]); // the note, and fd 1 that cannot be reopened
      const out = path.join(dir, 'stdio.out');
      const fd = fs.openSync(out, 'w');
      const r = spawnSync(process.execPath, [path.resolve('dist/cli/crimg.cjs'), 'restore', '--inherit-stdio', img], {
        stdio: ['ignore', fd, 'pipe'],
        encoding: 'utf8',
      });
      fs.closeSync(fd);
      expect(r.status, r.stderr).toBe(0);
      const outLines = (): string[] => fs.readFileSync(out, 'utf8').split('\n').filter(Boolean);
      const rpid = Number(outLines().find((l) => /^\d+$/.test(l))); // crimg's line: the new pid
      pids.push(rpid);
      running.add(rpid);
      await waitFor("lines on crimg's stdout", () => outLines().length >= 6);
      const printed = outLines()
        .filter((l) => l.startsWith('n='))
        .map((l) => Number(l.slice(2)));
      expect(printed).toEqual(printed.map((_, i) => printed[0]! + i)); // the restored program goes on, on crimg's stdout
      expect(lines(log).map(Number)).toEqual(lines(log).map((_, i) => i + 1)); // and in its file, without a gap
    } finally {
      for (const p of pids) killHard(p);
    }
  });
});

describe('inotify', () => {
  it('tail -f comes back watching its file (the watches at their wds) and prints what is appended after the restore', async () => {
    const bare = closeFdsExe();
    const watched = path.join(dir, 'tailed.txt');
    const out = path.join(dir, 'tail.out');
    fs.writeFileSync(watched, 'one\n');
    const ofd = fs.openSync(out, 'w');
    const c = spawn(bare, ['/usr/bin/tail', '-n', '+1', '-f', watched], { stdio: ['ignore', ofd, 'ignore'], cwd: dir });
    fs.closeSync(ofd);
    children.push(c);
    running.add(c.pid!);
    const pids = [c.pid!];
    const got = (): string[] => fs.readFileSync(out, 'utf8').split('\n').filter(Boolean);
    try {
      await waitFor('tail started', () => got().length === 1);
      fs.appendFileSync(watched, 'two\n');
      await waitFor('tail following', () => got().length === 2);
      const chk = JSON.parse(crimg(['check', String(c.pid), '--json']).stdout);
      expect(chk.reasons).toEqual([]);
      const img = path.join(dir, 'tail.crimg');
      await dumpKill(c.pid!, img);
      const m = readImage(img);
      let ws;
      try {
        ws = m.model.tasks[0]!.files.find((f) => f.inotify)!.inotify!;
      } finally {
        m.close();
      }
      expect(ws.map((w) => w.path)).toContain(watched);
      const r = restoreCli(img);
      pids.push(r);
      const infd = fs.readdirSync(`/proc/${r}/fd`).find((n) => fs.readlinkSync(`/proc/${r}/fd/${n}`).includes('inotify'))!;
      const lines2 = fs
        .readFileSync(`/proc/${r}/fdinfo/${infd}`, 'latin1')
        .split('\n')
        .filter((l) => l.startsWith('inotify wd:'));
      expect(lines2.map((l) => Number(/wd:(\d+)/.exec(l)![1])).sort()).toEqual(ws.map((w) => w.wd));
      fs.appendFileSync(watched, 'three\n');
      await waitFor('the restored tail printing the new line', () => got().length === 3);
      expect(got()).toEqual(['one', 'two', 'three']);
    } finally {
      for (const p of pids) killHard(p);
    }
  });
});

/** A parent and the child it forked: the child writes "c N PID" lines, the parent "p N CHILD W" with W what
 *  waitpid(CHILD, WNOHANG) returned (0: still running), and "reaped CHILD SIG" once it has reaped it. */
const TREE_C = `
#include <sys/wait.h>
#include <time.h>
int main(int argc, char **argv) {
  (void)argc;
  FILE *out = open_out(argv[1]);
  pid_t kid = fork();
  if (kid == 0) {
    for (int n = 1;; n++) { fprintf(out, "c %d %d\\n", n, getpid()); struct timespec ts = {0, 20000000}; nanosleep(&ts, 0); }
  }
  for (int n = 1;; n++) {
    int st = 0;
    pid_t w = waitpid(kid, &st, WNOHANG);
    if (w == kid) { fprintf(out, "reaped %d %d\\n", w, WIFSIGNALED(st) ? WTERMSIG(st) : -1); return 0; }
    fprintf(out, "p %d %d %d\\n", n, kid, (int)w);
    struct timespec ts = {0, 20000000}; nanosleep(&ts, 0);
  }
}
`;

/** A producer child writing "tick N" lines into a pipe every 10 ms and its parent reading them and writing them to
 *  argv[1] ("got tick N"), 4 lines at a time (so some wait in the pipe). */
const PIPELINE_C = `
#include <string.h>
#include <time.h>
int main(int argc, char **argv) {
  (void)argc;
  FILE *out = open_out(argv[1]);
  int p[2];
  if (pipe(p)) return 1;
  if (fork() == 0) {
    close(p[0]);
    FILE *w = fdopen(p[1], "w");
    setvbuf(w, 0, _IOLBF, 0);
    for (int n = 1;; n++) { fprintf(w, "tick %d\\n", n); struct timespec ts = {0, 10000000}; nanosleep(&ts, 0); }
  }
  close(p[1]);
  FILE *r = fdopen(p[0], "r");
  char line[64];
  for (int k = 0; fgets(line, sizeof line, r); k++) {
    fprintf(out, "got %s", line);
    if (k % 4 == 3) { struct timespec ts = {0, 30000000}; nanosleep(&ts, 0); }
  }
  return 0;
}
`;

describe('restore --tree', () => {
  it('a pipe between parent and child comes back with the bytes in it: nothing lost or repeated', async () => {
    const exe = compileC('pipeline', PIPELINE_C);
    const out = path.join(dir, 'pipeline.out');
    const pid = start(exe, [out]);
    const pids = [pid];
    try {
      await waitFor('lines', () => lines(out).length >= 10);
      expect(JSON.parse(crimg(['check', '--tree', String(pid), '--json']).stdout).reasons).toEqual([]);
      const img = path.join(dir, 'pipeline.crimg');
      const d = crimg(['dump', '--tree', String(pid), '-o', img, '--kill', '--quiet']);
      expect(d.code, d.stderr).toBe(0);
      await waitFor('gone', () => !alive(pid));
      const one = crimg(['restore', '--pid-ns', '--pid', String(pid), img]);
      expect(one.code).toBe(1);
      expect(one.stderr).toMatch(/PIPE.*restore the tree with --pid-ns --tree/);
      const n0 = lines(out).length;
      const r = crimg(['restore', '--pid-ns', '--tree', '--json', img]);
      expect(r.code, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout);
      pids.push(...j.tree.map((t: { hostPid: number }) => t.hostPid), j.pidNs.holder, j.pidNs.init);
      await waitFor('lines after restore', () => lines(out).length >= n0 + 20);
      const ls = lines(out);
      expect(ls).toEqual(ls.map((_, i) => `got tick ${i + 1}`));
    } finally {
      for (const p of pids) killHard(p);
    }
  });

  it("a shell loop (bash waiting for its sleep: the stub's own program) comes back and counts on", async () => {
    const bare = closeFdsExe();
    const out = path.join(dir, 'loop.out');
    const pid = start(bare, ['/bin/bash', '-c', `i=0; while true; do i=$((i+1)); echo $i >> ${out}; sleep 0.05; done`]);
    const pids = [pid];
    try {
      await waitFor('lines', () => lines(out).length >= 3);
      const img = path.join(dir, 'loop.crimg');
      const d = crimg(['dump', '--tree', String(pid), '-o', img, '--kill', '--quiet']);
      expect(d.code, d.stderr).toBe(0);
      await waitFor('bash gone', () => !alive(pid));
      const n0 = lines(out).length;
      const r = crimg(['restore', '--pid-ns', '--tree', '--json', img]);
      expect(r.code, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout);
      pids.push(...j.tree.map((t: { hostPid: number }) => t.hostPid), j.pidNs.holder, j.pidNs.init);
      expect(j.tree.length).toBe(2); // bash and the sleep it waits for
      await waitFor('more lines', () => lines(out).length >= n0 + 5);
      const ls = lines(out);
      expect(ls).toEqual(ls.map((_, i) => String(i + 1)));
    } finally {
      for (const p of pids) killHard(p);
    }
  });

  it('brings back a parent and its child with their pids (--pid-ns): the parent goes on waiting for it and reaps it', async () => {
    const exe = compileC('tree', TREE_C);
    const out = path.join(dir, 'tree.out');
    const pid = start(exe, [out]);
    const pids = [pid];
    try {
      await waitFor('both writing', () => lines(out).some((l) => l.startsWith('c ')) && lines(out).some((l) => l.startsWith('p ')));
      const kid = Number(
        lines(out)
          .find((l) => l.startsWith('p '))!
          .split(' ')[2],
      );
      pids.push(kid);
      expect(JSON.parse(crimg(['check', '--tree', String(pid), '--json']).stdout).reasons).toEqual([]);
      const img = path.join(dir, 'tree.crimg');
      const d = crimg(['dump', '--tree', String(pid), '-o', img, '--kill', '--quiet']);
      expect(d.code, d.stderr).toBe(0);
      await waitFor('both gone', () => !alive(pid) && !alive(kid));
      expect(crimg(['restore', '--tree', img]).code).toBe(2); // needs --pid-ns
      // a failure half-way (the child's stub made, not yet the task) leaves nothing behind
      for (const failAt of ['fork child', 'registers']) {
        const im = readImage(img);
        try {
          await expect(restoreImage(im, { pidNs: true, tree: true, failAt })).rejects.toThrow(new RegExp(`step ${failAt}`));
        } finally {
          im.close();
        }
        expect(stubsRunning()).toEqual([]);
      }
      const n0 = lines(out).length;
      const r = crimg(['restore', '--pid-ns', '--tree', '--json', img]);
      expect(r.code, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout);
      pids.push(...j.tree.map((t: { hostPid: number }) => t.hostPid), j.pidNs.holder, j.pidNs.init);
      expect(j.tree.map((t: { pid: number }) => t.pid)).toEqual([pid, kid]);
      await waitFor(
        'both writing again',
        () =>
          lines(out)
            .slice(n0)
            .filter((l) => l.startsWith('c ')).length >= 3
          && lines(out)
            .slice(n0)
            .filter((l) => l.startsWith('p ')).length >= 3,
      );
      for (const l of lines(out).slice(n0)) expect(l).toMatch(new RegExp(`^(c \\d+ ${kid}|p \\d+ ${kid} 0)$`)); // the child is still its child
      process.kill(j.tree[1].hostPid, 'SIGTERM');
      await waitFor('the parent reaping its child', () => lines(out).includes(`reaped ${kid} 15`));
    } finally {
      for (const p of pids) killHard(p);
    }
  });
});

describe('a listening TCP socket', () => {
  it('an idle Python HTTP server is dumped, killed and restored, and answers on the same port', async () => {
    const port = 20000 + (process.pid % 20000);
    const www = fs.mkdtempSync(path.join(dir, 'www-'));
    fs.writeFileSync(path.join(www, 'hello.txt'), 'hello from before the checkpoint\n');
    const c = spawn(closeFdsExe(), ['/usr/bin/python3', '-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', www], {
      stdio: 'ignore',
      cwd: www,
    });
    children.push(c);
    running.add(c.pid!);
    const pids = [c.pid!];
    const get = async (): Promise<string | null> => {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/hello.txt`);
        return r.ok ? await r.text() : null;
      } catch {
        return null;
      }
    };
    try {
      let body: string | null = null;
      for (let i = 0; i < 200 && body === null; i++) {
        body = await get();
        if (body === null) await new Promise((r) => setTimeout(r, 25));
      }
      expect(body).toBe('hello from before the checkpoint\n');
      expect(JSON.parse(crimg(['check', String(c.pid), '--json']).stdout).reasons).toEqual([]);
      const img = path.join(dir, 'http.crimg');
      await dumpKill(c.pid!, img);
      expect(await get()).toBeNull(); // nobody listens
      const m = readImage(img);
      try {
        const l = m.model.tasks[0]!.files.find((f) => f.tcpListen)!.tcpListen!;
        expect([l.family, [...l.addr], l.port, l.opts & 1]).toEqual([2, [127, 0, 0, 1], port, 1]); // SO_REUSEADDR: Python sets it
      } finally {
        m.close();
      }
      const r = restoreCli(img);
      pids.push(r);
      expect(await get()).toBe('hello from before the checkpoint\n');
    } finally {
      for (const p of pids) killHard(p);
    }
  });
});

/** Eight separate anonymous regions of 64 KiB, one per piece of advice (or mlock); prints their addresses to argv[1]. */
const VMFLAGS_C = `
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
  (void)argc;
  syscall(SYS_close_range, 3, ~0U, 0);
  int adv[] = {MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_DONTDUMP, MADV_DONTFORK, MADV_WIPEONFORK, MADV_RANDOM, MADV_SEQUENTIAL, -1};
  size_t sz = 16 * 4096;
  unsigned char *base = mmap(0, 16 * sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
  FILE *f = fopen(tmp, "w");
  for (int i = 0; i < 8; i++) {
    unsigned char *p = base + 2 * i * sz;
    munmap(p + sz, sz); /* a hole after each region: no merging */
    memset(p, i + 1, sz);
    if (adv[i] >= 0) { if (madvise(p, sz, adv[i])) return 10 + i; }
    else if (mlock(p, sz)) return 20;
    fprintf(f, "%lx\\n", (unsigned long)p);
  }
  fclose(f);
  rename(tmp, argv[1]);
  for (;;) pause();
}
`;

describe('VM flags', () => {
  it('madvise state and mlock are dumped (VmaFlags) and restored (smaps VmFlags of the new process)', async () => {
    const exe = compileC('vmflags', VMFLAGS_C);
    const ready = path.join(dir, 'vmflags.txt');
    const pid = start(exe, [ready]);
    const pids = [pid];
    const want = ['hg', 'nh', 'dd', 'dc', 'wf', 'rr', 'sr', 'lo'];
    const vmflagsAt = (p: number, addr: bigint): string[] => {
      const sm = fs.readFileSync(`/proc/${p}/smaps`, 'latin1').split('\n');
      let cur = false;
      for (const l of sm) {
        const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(l);
        if (m) cur = BigInt(`0x${m[1]}`) <= addr && addr < BigInt(`0x${m[2]}`);
        else if (cur && l.startsWith('VmFlags:')) return l.slice(8).trim().split(/\s+/);
      }
      return [];
    };
    try {
      await waitFor('the regions', () => fs.existsSync(ready));
      const addrs = fs
        .readFileSync(ready, 'latin1')
        .trim()
        .split('\n')
        .map((x) => BigInt(`0x${x}`));
      expect(addrs).toHaveLength(8);
      addrs.forEach((a, i) => expect(vmflagsAt(pid, a), want[i]).toContain(want[i]));
      const img = path.join(dir, 'vmflags.crimg');
      await dumpKill(pid, img);
      const bits = [
        VmaFlags.HUGEPAGE,
        VmaFlags.NOHUGEPAGE,
        VmaFlags.DONTDUMP,
        VmaFlags.DONTFORK,
        VmaFlags.WIPEONFORK,
        VmaFlags.RAND_READ,
        VmaFlags.SEQ_READ,
        VmaFlags.LOCKED,
      ];
      const a = readImage(img);
      try {
        addrs.forEach((x, i) => {
          const v = a.model.tasks[0]!.mm!.vmas.find((u) => u.start === x)!;
          expect(v.flags & bits[i]!, want[i]).toBe(bits[i]);
        });
      } finally {
        a.close();
      }
      const r = restoreCli(img);
      pids.push(r);
      addrs.forEach((x, i) => expect(vmflagsAt(r, x), want[i]).toContain(want[i]));
    } finally {
      for (const p of pids) killHard(p);
    }
  });
});

describe('restore pieces', () => {
  it('interrupted system calls resume as the kernel would restart them', () => {
    const regs = new BigUint64Array(27);
    const set = (rax: bigint, orig: bigint): BigUint64Array => {
      regs[10] = BigInt.asUintN(64, rax);
      regs[15] = BigInt.asUintN(64, orig);
      regs[16] = 0x401000n;
      return resumeRegs(regs);
    };
    for (const e of [-512n, -513n, -514n]) {
      const r = set(e, 35n);
      expect([r[10], r[16]]).toEqual([35n, 0x400ffen]);
    }
    const rb = set(-516n, 230n); // relative clock_nanosleep: the remaining time went with the restart block
    expect([BigInt.asIntN(64, rb[10]!), rb[16]]).toEqual([-4n, 0x401000n]);
    regs[13] = 1n; // rsi: TIMER_ABSTIME, the same deadline when made again
    const abs = set(-516n, 230n);
    expect([abs[10], abs[16]]).toEqual([230n, 0x400ffen]);
    regs[13] = 0n;
    const poll = set(-516n, 7n); // poll: made again (tail -f would end on EINTR)
    expect([poll[10], poll[16]]).toEqual([7n, 0x400ffen]);
    const done = set(-4n, 35n);
    expect([BigInt.asIntN(64, done[10]!), done[16]]).toEqual([-4n, 0x401000n]);
    const user = set(-512n, BigInt.asUintN(64, -1n)); // not in a system call: rax is just a value
    expect([BigInt.asIntN(64, user[10]!), user[16]]).toEqual([-512n, 0x401000n]);
  });

  it('XSAVE buffers take the image state in the host layout and size', () => {
    const host = new Uint8Array(2696);
    new DataView(host.buffer).setBigUint64(464, 0xe7n, true); // x87 SSE AVX opmask ZMM_Hi256 Hi16_ZMM
    const th = newThread(1);
    th.fpu[160] = 0x11; // xmm0 byte 0
    const ext = new Uint8Array(2696 - 512);
    const dv = new DataView(ext.buffer);
    dv.setBigUint64(0, 0x7n, true); // x87 SSE AVX in use
    ext[576 - 512] = 0x22; // ymm0 upper byte 0
    th.xstate = { xcr0: 0xe7n, ext };
    const b = buildXstate(host, th);
    expect(b.length).toBe(2696);
    const bdv = new DataView(b.buffer);
    expect(bdv.getBigUint64(512, true)).toBe(7n);
    expect(bdv.getBigUint64(520, true)).toBe(0n);
    expect(bdv.getBigUint64(464, true)).toBe(0xe7n);
    expect([b[160], b[576], bdv.getUint32(24, true)]).toEqual([0x11, 0x22, 0x1f80]);
    // components the host lacks are dropped from XSTATE_BV
    dv.setBigUint64(0, 0x207n, true);
    expect(new DataView(buildXstate(host, th).buffer).getBigUint64(512, true)).toBe(7n);
  });
});
