// Made the golden images of test/golden ONCE, on main before the kinds refactor (issue 13), with that commit's
// dist/. Do not re-run to "fix" a failing golden test: the point of the goldens is that they do not move.
// Kept to show how each was made: node test/golden/make.mjs (after npm run build).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as crimg from '../../dist/index.js';
import { goldenJson } from './json.mjs';

const here = new URL('.', import.meta.url).pathname;
const cli = ['dist/cli/crimg.cjs'];
const run = (args) => execFileSync(process.execPath, [...cli, ...args], { stdio: 'pipe' });

async function save(name) {
  const img = crimg.readImage(join(here, `${name}.crimg`));
  try {
    writeFileSync(join(here, `${name}.json`), goldenJson(img.model, img));
  } finally {
    img.close();
  }
}

// 1. generated images: the default content and text, two tasks of two threads
run(['gen', '-o', join(here, 'gen-random.crimg'), '--size', '1MiB', '--tasks', '2', '--threads', '2', '--seed', '7']);
run(['gen', '-o', join(here, 'gen-text.crimg'), '--size', '512KiB', '--tasks', '3', '--threads', '1', '--seed', '11', '--content', 'text']);

// 2. a model with every optional kind of the format as it stood (INOTIFY and TCP_LISTEN on different fds: on one fd the
// old reader refused them)
const m = crimg.generate({ seed: 5n, size: 256 << 10, tasks: 2, threads: 2 });
const [t0, t1] = m.tasks;
t0.sigactions = [
  { sig: 10, handler: 0x401000n, flags: 0x4000000n, restorer: 0x402000n, mask: 1n << 13n },
  { sig: 13, handler: 1n, flags: 0n, restorer: 0n, mask: 0n },
];
t0.itimers = [
  { which: 0, intervalUs: 50_000_000n, valueUs: 1_234_567n },
  { which: 2, intervalUs: 0n, valueUs: 10n },
];
t0.posixTimers = [
  { id: 0, clock: 1, notify: 0, notifyTid: 0, signo: 10, sigevValue: 77n, intervalNs: 30_000_000_000n, valueNs: 12_345n },
  { id: 3, clock: -6, notify: 4, notifyTid: t0.threads[1].tid, signo: 12, sigevValue: 0x7f0000001000n, intervalNs: 0n, valueNs: 5_000n },
];
t0.threads[0].futex = { clearChildTid: 0x7f00000010d0n, robustHead: 0x7f00000010e0n, robustLen: 24n };
t0.threads[0].sigaltstack = { sp: 0x7f0000100000n, size: 65536n, flags: 0 };
t0.threads[1].sigaltstack = { sp: 0n, size: 0n, flags: 2 };
const f = (fd, path, extra) => ({
  fd,
  kind: 2,
  path,
  flags: 2,
  pos: 0n,
  mode: 0o600,
  cloexec: fd % 2 === 0,
  devMajor: 0,
  devMinor: 15,
  inode: BigInt(9000 + fd),
  size: 0n,
  ...extra,
});
t0.files = [
  {
    fd: 3,
    kind: 0,
    path: '/tmp/locked',
    flags: 2,
    pos: 7n,
    mode: 0o100644,
    cloexec: false,
    devMajor: 8,
    devMinor: 1,
    inode: 77n,
    size: 100n,
    locks: [
      { kind: 1, write: true, start: 0n, end: 0xffffffffffffffffn },
      { kind: 2, write: false, start: 10n, end: 19n },
    ],
  },
  f(4, 'pipe:[5084]', { pipe: { ino: 5084n, write: false, size: 65536, data: new TextEncoder().encode('golden') } }),
  f(5, 'pipe:[5084]', { pipe: { ino: 5084n, write: true, size: 65536 } }),
  f(6, 'socket:[5085]', { unixPair: { pair: 5085n, second: false, type: 1 } }),
  f(7, 'socket:[5086]', { unixPair: { pair: 5085n, second: true, type: 1, data: new TextEncoder().encode('pair') } }),
  f(8, 'anon_inode:[eventfd]', { anon: { kind: 1, values: [5n, 1n] } }),
  f(9, 'anon_inode:[timerfd]', { anon: { kind: 2, values: [1n, 0n, 100_000_000_000n, 99_000_000_000n, 0n] } }),
  f(10, 'anon_inode:[signalfd]', { anon: { kind: 3, values: [1n << 9n] } }),
  f(11, 'anon_inode:[eventpoll]', { anon: { kind: 4, values: [8n, 25n, 42n, 10n, 1n, 0xffffffffffffffffn] } }),
  f(12, 'anon_inode:inotify', {
    inotify: [
      { wd: 1, mask: 0x100, path: '/tmp/watched' },
      { wd: 3, mask: 0xfff, path: '/etc' },
    ],
  }),
  f(13, 'socket:[5087]', { tcpListen: { family: 2, addr: new Uint8Array([127, 0, 0, 1]), port: 46709, backlog: 7, opts: 1 } }),
  f(14, 'socket:[5088]', {
    tcpListen: { family: 10, addr: new Uint8Array(16).fill(0).map((_, i) => (i === 15 ? 1 : 0)), port: 8080, backlog: 128, opts: 7 },
  }),
];
t1.nocr = [
  { code: 'SOCKET', pid: t1.pid, text: 'fd 5 is a socket (socket:[1])' },
  { code: 'PTRACED', pid: t1.threads[0].tid, text: 'traced' },
];
await crimg.writeImage(m, join(here, 'all-kinds.crimg'));

// 3. a live dump of test/golden/golden-prog.c (static): every kind it holds is saved
const dir = mkdtempSync(join(tmpdir(), 'crimg-golden-'));
try {
  const bin = join(dir, 'golden-prog');
  execFileSync('gcc', ['-O1', '-static', '-o', bin, join(here, 'golden-prog.c')]);
  const child = spawn(bin, [dir], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise((res) => child.stdout.once('data', res));
  try {
    run(['dump', String(child.pid), '-o', join(here, 'live.crimg')]);
  } finally {
    child.kill('SIGKILL');
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

for (const n of ['gen-random', 'gen-text', 'all-kinds', 'live']) await save(n);
for (const n of ['gen-random', 'gen-text', 'all-kinds', 'live']) console.log(n, readFileSync(join(here, `${n}.crimg`)).length);
