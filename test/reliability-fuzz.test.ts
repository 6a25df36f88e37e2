/**
 * The mutation fuzzer (test/fuzz/run.mjs) run briefly with a fixed seed: every
 * mutant rejected with a crimg error code or accepted identically, no crash, no
 * hang, bounded memory, every mutation family exercised, every record kind of the
 * schema in the seed corpus, and the fields of every optional kind of state
 * mutated by name until its checks refuse them. Then the fuzzer itself is
 * checked: against copies of the reader with a planted crash, a planted checksum
 * bypass and a planted endless loop it must report them and exit 1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { fileURLToPath } from 'node:url';
import { compileProg, gcore, startProg } from './helpers/elf-prog.js';
import { KINDS } from '../src/kinds/index.js';
import { RECORDS } from '../src/schema.js';
// @ts-expect-error plain JavaScript helper without types
import { buildLib } from './fuzz/lib-build.mjs';

const RUN = fileURLToPath(new URL('./fuzz/run.mjs', import.meta.url));

interface Report {
  targets: Record<string, { tried: number; rejected: number; accepted: number; crashes: number; warnings?: number }>;
  corpus: { name: string; bytes: number; kinds?: string[] }[];
  rejectedByRecord: Record<string, number>;
  warnings: number;
  tried: number;
  rejectedByCode: number;
  accepted: number;
  crashes: number;
  violations: number;
  hangs: number;
  codes: Record<string, number>;
  ops: Record<string, { tried: number; rejected: number; accepted: number; crashes: number }>;
  memory: { peakWasmMiB: number; peakWorkerHeapMiB: number; peakProcessRssMiB: number };
  findings: { iteration: number; crash?: { where: string; error: string }; violations?: string[] }[];
  readViaFile: number;
}

function fuzz(libDir: string, args: string[]): { code: number | null; report: Report; stderr: string } {
  const r = spawnSync(process.execPath, [RUN, '--lib', libDir, '--json', '--workers', '1', ...args], {
    encoding: 'utf8',
    timeout: 300_000,
    maxBuffer: 64 << 20,
  });
  let report: Report;
  try {
    report = JSON.parse(r.stdout) as Report;
  } catch {
    throw new Error(`fuzzer printed no report (status ${r.status}): ${r.stderr}`);
  }
  return { code: r.status, report, stderr: r.stderr };
}

let lib: { dir: string; cleanup: () => void };
const planted: { dir: string; cleanup: () => void }[] = [];

/** A transpiled copy of src/ whose reader/<file> is edited by `edit` (which must change it). */
async function plant(name: 'framing.js' | 'grammar.js', edit: (src: string) => string): Promise<string> {
  const b = await buildLib();
  planted.push(b);
  const file = path.join(b.dir, 'src', 'reader', name);
  const before = fs.readFileSync(file, 'utf8');
  const after = edit(before);
  expect(after).not.toBe(before);
  fs.writeFileSync(file, after);
  return path.join(b.dir, 'src');
}

beforeAll(async () => {
  lib = await buildLib();
});
afterAll(() => {
  lib?.cleanup();
  for (const p of planted) p.cleanup();
});

describe('image fuzzing', () => {
  it('1500 image mutants of seed 1: all rejected by code or accepted identically, no crash or hang, memory bounded', () => {
    const { code, report, stderr } = fuzz(path.join(lib.dir, 'src'), [
      '--seed',
      '1',
      '--iterations',
      '1500',
      '--seconds',
      '0',
      '--timeout-ms',
      '30000',
      '--target',
      'image',
    ]);
    expect(report.findings, stderr).toEqual([]);
    expect(report.crashes).toBe(0);
    expect(report.hangs).toBe(0);
    expect(report.violations).toBe(0);
    expect(report.warnings).toBe(0);
    expect(report.tried).toBe(1500);
    expect(report.rejectedByCode + report.accepted).toBe(1500);
    expect(code).toBe(0);
    // the mutants reach every kind of check
    for (const c of ['BAD_RECORD', 'CHECKSUM_MISMATCH', 'TRUNCATED', 'BAD_MAGIC', 'LIMIT_EXCEEDED', 'WRONG_ARCH', 'UNSUPPORTED_VERSION']) {
      expect(report.codes[c] ?? 0, c).toBeGreaterThan(0);
    }
    expect(report.accepted).toBeGreaterThan(0);
    const families = [
      'flip',
      'bytes',
      'truncate',
      'append',
      'chunk',
      'hdrLen',
      'resize',
      'kind',
      'flags',
      'field',
      'strlen',
      'utf',
      'payload',
      'padding',
      'dup',
      'drop',
      'swap',
      'move',
      'subtree',
      'index',
      'trailer',
      'pages',
      'vma',
      'unknown',
      'splice',
      'magic',
    ];
    for (const f of families) expect(report.ops[f]?.tried ?? 0, f).toBeGreaterThan(0);
    expect(report.readViaFile).toBeGreaterThan(0);
    // the seeds hold every record kind of the schema
    const seeded = new Set(report.corpus.flatMap((b) => b.kinds ?? []));
    for (const r of RECORDS) expect(seeded.has(r.name), `${r.name} in the corpus (test/fuzz/corpus.mjs)`).toBe(true);
    // the fields of each optional kind are mutated by name, and a kind that can refuse a record (its decode takes
    // `bad`, or it checks across the task) refuses some of them
    for (const k of KINDS) {
      const name = k.record.name;
      expect(report.ops[`optional:${name}`]?.tried ?? 0, `optional:${name}`).toBeGreaterThan(5);
      if (k.decode.length >= 3 || k.checkTask) expect(report.rejectedByRecord[name] ?? 0, `BAD_RECORD from ${name}`).toBeGreaterThan(0);
    }
    // bounded memory: the reader's WASM memory never grows past its fixed windows
    expect(report.memory.peakWasmMiB).toBeGreaterThan(0);
    expect(report.memory.peakWasmMiB).toBeLessThan(128);
    expect(report.memory.peakWorkerHeapMiB).toBeLessThan(512);
  }, 300_000);
});

describe('ELF core fuzzing', () => {
  it('600 core mutants (exporter-made cores and a gcore core of a live process): rejected by code or imported and converted identically', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-fuzzcore-'));
    try {
      const bin = compileProg(dir);
      const prog = await startProg(bin, []);
      let core: string;
      try {
        core = gcore(prog.ready.pid, path.join(dir, 'core'));
      } finally {
        prog.kill();
        await prog.exited;
      }
      const { code, report, stderr } = fuzz(path.join(lib.dir, 'src'), [
        '--seed',
        '2',
        '--iterations',
        '600',
        '--seconds',
        '0',
        '--timeout-ms',
        '30000',
        '--target',
        'elf',
        '--core',
        core,
      ]);
      expect(report.findings, stderr).toEqual([]);
      expect(report.crashes).toBe(0);
      expect(report.violations).toBe(0);
      expect(report.tried).toBe(600);
      expect(report.targets.elf!.tried).toBe(600);
      expect(code).toBe(0);
      expect(report.corpus.some((b) => b.name.startsWith('core:'))).toBe(true);
      expect(report.codes.BAD_CORE ?? 0).toBeGreaterThan(0);
      expect(report.codes.TRUNCATED ?? 0).toBeGreaterThan(0);
      expect(report.targets.elf!.accepted).toBeGreaterThan(0);
      for (const f of ['elf:flip', 'elf:truncate', 'elf:ehdr', 'elf:phdr', 'elf:overlap', 'elf:phswap', 'elf:note', 'elf:ntfile']) {
        expect(report.ops[f]?.tried ?? 0, f).toBeGreaterThan(0);
      }
      expect(report.memory.peakWasmMiB).toBeLessThan(128);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});

describe('the fuzzer finds planted reader bugs', () => {
  it('a TypeError instead of a CrimgError is a crash', async () => {
    const from = "throw new CrimgError('BAD_RECORD', `PAGES record: $" + '{why}`';
    const dir = await plant('framing.js', (s) => s.replace(from, 'throw new TypeError(`PAGES record: $' + '{why}`'));
    const { code, report } = fuzz(dir, ['--seed', '1', '--iterations', '300', '--seconds', '0', '--target', 'image', '--small']);
    expect(report.crashes).toBeGreaterThan(0);
    expect(report.findings.some((f) => f.crash?.error.startsWith('TypeError: PAGES record'))).toBe(true);
    expect(code).toBe(1);
  }, 300_000);

  it('a skipped record checksum shows as accepted stale mutants', async () => {
    const dir = await plant('framing.js', (s) => s.replace('if (got !== csum) {', 'if (got !== csum && false) {'));
    const { code, report } = fuzz(dir, ['--seed', '1', '--iterations', '300', '--seconds', '0', '--target', 'image', '--small']);
    expect(report.violations).toBeGreaterThan(0);
    expect(report.findings.some((f) => f.violations?.some((v) => v.includes('stale checksum')))).toBe(true);
    expect(code).toBe(1);
  }, 300_000);

  it('an endless loop is stopped by the watchdog and counted as a crash', async () => {
    // loop forever when the header announces a huge number of tasks or namespaces
    const dir = await plant('grammar.js', (s) =>
      s.replace(
        'model.header = this.header(r, hf);',
        'model.header = this.header(r, hf); if (hf.ntasks > 1000 || hf.nns > 1000) for (;;) { /* planted */ }',
      ),
    );
    const { code, report } = fuzz(dir, [
      '--seed',
      '1',
      '--iterations',
      '300',
      '--seconds',
      '0',
      '--timeout-ms',
      '3000',
      '--target',
      'image',
      '--small',
    ]);
    expect(report.hangs).toBeGreaterThan(0);
    expect(report.crashes).toBeGreaterThanOrEqual(report.hangs);
    expect(report.tried).toBe(300);
    expect(code).toBe(1);
  }, 300_000);
});
