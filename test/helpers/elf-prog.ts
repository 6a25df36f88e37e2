/** Runs test/progs/regs-threads.c for the ELF core tests: compile, start, wait for READY, kill. */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROG_SRC = fileURLToPath(new URL('../progs/regs-threads.c', import.meta.url));

export interface Ready {
  pid: number;
  tids: number[];
  data: bigint;
  heap: bigint;
  anon: bigint;
  file: bigint;
  fd: number;
  avx: boolean;
  avx512: boolean;
  /** The CPU's standard-form XSAVE offset of ZMM_Hi256 (1152 Intel, 896 AMD Zen 4; 0 without AVX-512). */
  zmmOff: number;
}

/** Byte i of memory region r (1 data, 2 heap, 3 anon) as the program writes it. */
export function pattern(r: number, i: number): number {
  return (i * 131 + r * 17 + (i >> 12) * 7) & 0xff;
}
export function patternBytes(r: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = pattern(r, i);
  return b;
}
/** The anonymous region: 8 pages; pages 1, 2, 6 never touched and page 5 zeroed, the others hold pattern 3. */
export function anonBytes(): Buffer {
  const b = patternBytes(3, 8 * 4096);
  for (const p of [1, 2, 5, 6]) b.fill(0, p * 4096, (p + 1) * 4096);
  return b;
}
/** Value of callee-saved register j (rbx, rbp, r12, r13, r14, r15) in thread t. */
export function gprValue(t: number, j: number): bigint {
  return 0xa5a5000000000000n | (BigInt(t) << 32n) | (BigInt(j) << 16n) | 0xbeefn;
}
/** Qword q (0..7) of zmm k in thread t. */
export function zmmQword(t: number, k: number, q: number): bigint {
  return 0x3c00000000000000n | (BigInt(q) << 52n) | (BigInt(t) << 32n) | (BigInt(k) << 16n) | 0x1234n;
}
export const GPR_NAMES = ['rbx', 'rbp', 'r12', 'r13', 'r14', 'r15'] as const;

export function compileProg(dir: string): string {
  const bin = path.join(dir, 'regs-threads');
  const r = spawnSync('gcc', ['-O1', '-g', '-pthread', '-o', bin, PROG_SRC], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc failed: ${r.stderr || r.error}`);
  return bin;
}

export function parseReady(line: string): Ready {
  const kv = Object.fromEntries(
    line
      .trim()
      .split(/\s+/)
      .slice(1)
      .map((s) => s.split('=') as [string, string]),
  );
  return {
    pid: Number(kv.pid),
    tids: kv.tids!.split(',').map(Number),
    data: BigInt(kv.data!),
    heap: BigInt(kv.heap!),
    anon: BigInt(kv.anon!),
    file: kv.file === '(nil)' ? 0n : BigInt(kv.file!),
    fd: Number(kv.fd),
    avx: kv.avx === '1',
    avx512: kv.avx512 === '1',
    zmmOff: Number(kv.zmm_off ?? 0),
  };
}

export interface Running {
  child: ChildProcess;
  ready: Ready;
  kill(): void;
  exited: Promise<void>;
}

/** Start a command whose stdout ends up printing the READY line; resolves when it has. */
export function startProg(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<Running> {
  const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
  };
  return new Promise((resolve, reject) => {
    let out = '',
      err = '';
    let seen = false;
    const timer = setTimeout(() => {
      kill();
      reject(new Error(`no READY line within 20 s; stdout: ${out} stderr: ${err}`));
    }, 20_000);
    child.stderr!.on('data', (d) => {
      err += d;
    });
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /^READY .*$/m.exec(out);
      if (m && !seen) {
        seen = true;
        const ready = parseReady(m[0]);
        // The main thread prints READY just before it parks: wait until every thread sits in pause().
        waitParked(ready).then(
          () => {
            clearTimeout(timer);
            resolve({ child, ready, kill, exited });
          },
          (e) => {
            clearTimeout(timer);
            kill();
            reject(e);
          },
        );
      }
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`program exited (${code ?? sig}) before READY; stderr: ${err}`));
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** True when thread tid of pid is in syscall 34 (pause). */
function inPause(pid: number, tid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${tid}/syscall`, 'utf8').startsWith('34 ');
  } catch {
    return false;
  }
}

async function waitParked(r: Ready): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (r.tids.every((t) => inPause(r.pid, t))) return;
    await new Promise((res) => setTimeout(res, 5));
  }
  throw new Error(`threads of ${r.pid} did not all park in pause()`);
}

/** Core of a running process made by gdb's gcore. */
export function gcore(pid: number, prefix: string): string {
  const r = spawnSync('gcore', ['-o', prefix, String(pid)], { encoding: 'utf8', timeout: 120_000 });
  const core = `${prefix}.${pid}`;
  if (!fs.existsSync(core)) throw new Error(`gcore failed (${r.status}): ${r.stderr}`);
  return core;
}

const GDB_BASE = [
  '-batch',
  '-nx',
  '-q',
  '-ex',
  'set pagination off',
  '-ex',
  'set debuginfod enabled off',
  '-ex',
  'set width 0',
  '-ex',
  'set confirm off',
];

/** gdb's answers to `cmds` on a core, from a marker on (the loading messages are left out). */
export function gdbBatch(bin: string, core: string, cmds: string[]): { out: string; stderr: string } {
  const args = [...GDB_BASE, '-ex', 'echo @@BEGIN\\n'];
  for (const c of cmds) args.push('-ex', c);
  args.push(bin, core);
  const r = spawnSync('gdb', args, { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 });
  const all = r.stdout ?? '';
  const at = all.indexOf('@@BEGIN\n');
  return { out: at >= 0 ? all.slice(at + 8) : `gdb failed (${r.status}): ${all}${r.stderr}`, stderr: r.stderr ?? '' };
}

export function have(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}
