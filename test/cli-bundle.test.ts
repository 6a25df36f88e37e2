/**
 * The shipped bin (dist/cli/crimg.cjs running the esbuild bundle crimg-bundle.cjs with its
 * V8 code cache, made by scripts/bundle.mjs) against the unbundled entry it is built
 * from (dist/cli/main.js): same bytes, same output, same exit codes; heavy modules stay
 * out of the commands that do not need them; a missing, foreign or damaged code cache
 * only costs time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CLI, CLI_UNBUNDLED, crimg } from './helpers/cli.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const CLI_DIR = path.dirname(CLI);

let dir: string;
let img: string;
let img2: string;
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-bundle-'));
  img = path.join(dir, 'a.crimg');
  img2 = path.join(dir, 'b.crimg');
  for (const [f, seed] of [
    [img, '3'],
    [img2, '4'],
  ] as const) {
    const r = crimg(['gen', '-o', f, '--size', '2MiB', '--tasks', '2', '--threads', '2', '--seed', seed, '--quiet'], {
      cli: CLI_UNBUNDLED,
    });
    expect(r.code, r.stderr).toBe(0);
  }
});

describe('the package bin', () => {
  it('is the bundle loader: executable, a node script, and what `npm pack` ships', () => {
    expect(PKG.bin.crimg).toBe('./dist/cli/crimg.cjs');
    expect(CLI).toBe(path.join(ROOT, 'dist', 'cli', 'crimg.cjs'));
    expect(fs.statSync(CLI).mode & 0o111).toBe(0o111);
    expect(fs.readFileSync(CLI, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    for (const f of ['crimg.cjs', 'crimg-bundle.cjs', 'crimg-bundle.cache']) expect(fs.existsSync(path.join(CLI_DIR, f)), f).toBe(true);
    expect(PKG.files).toContain('dist');
    expect(PKG.files).toContain('build/crimg.wasm');
    expect(PKG.scripts.start).toContain('dist/cli/crimg.cjs');
  });

  it('writes the same image bytes as the unbundled entry', () => {
    const args = (o: string) => ['gen', '-o', o, '--size', '3MiB', '--tasks', '3', '--threads', '2', '--seed', '9', '--quiet'];
    const a = path.join(dir, 'bundle.crimg'),
      b = path.join(dir, 'plain.crimg');
    expect(crimg(args(a)).code).toBe(0);
    expect(crimg(args(b), { cli: CLI_UNBUNDLED }).code).toBe(0);
    expect(fs.readFileSync(a).equals(fs.readFileSync(b))).toBe(true);
  });

  it.each([
    ['show', () => ['show', img]],
    ['show --json', () => ['show', '--json', img]],
    ['verify', () => ['verify', img]],
    ['read', () => ['read', img, '--pid', '1', '--addr', readAddr(), '--len', '8192']],
    ['diff (different)', () => ['diff', img, img2]],
    ['diff --json', () => ['diff', '--json', img, img2]],
    ['--version', () => ['--version']],
    ['--help', () => ['--help']],
    ['verify --help', () => ['verify', '--help']],
    ['unknown command', () => ['nosuch']],
    ['unknown option', () => ['verify', '--nosuch', img]],
    ['missing file', () => ['verify', path.join(dir, 'missing.crimg')]],
  ])('%s: same exit code, stdout and stderr', (_name, argv) => {
    const a = crimg(argv()),
      b = crimg(argv(), { cli: CLI_UNBUNDLED });
    expect(a.code).toBe(b.code);
    expect(a.stderr).toBe(b.stderr);
    if (a.out.equals(b.out)) return;
    expect(a.stdout).toBe(b.stdout); // a readable difference
    expect(a.out.equals(b.out)).toBe(true);
  });

  it('stats --json: same document apart from the measured verify time', () => {
    const strip = (s: string) => {
      const d = JSON.parse(s);
      delete d.verifySeconds;
      delete d.verifyGBps;
      return d;
    };
    const a = crimg(['stats', '--json', img]),
      b = crimg(['stats', '--json', img], { cli: CLI_UNBUNDLED });
    expect(a.code, a.stderr).toBe(0);
    expect(b.code).toBe(0);
    expect(strip(a.stdout)).toEqual(strip(b.stdout));
  });

  it('on a terminal (progress bar: cli-progress loads on demand): same image, exit 0', () => {
    // script(1) gives the command a pseudo-terminal, so stderr.isTTY and the bar is drawn
    const out = path.join(dir, 'tty.crimg'),
      ref = path.join(dir, 'tty-ref.crimg');
    const args = ['gen', '--size', '2MiB', '--seed', '8', '-o'];
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const r = spawnSync('script', ['-qec', [process.execPath, CLI, ...args, out].map(q).join(' '), '/dev/null'], { encoding: 'utf8' });
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).not.toMatch(/crimg: [A-Z_]+:/);
    expect(crimg([...args, ref, '--quiet'], { cli: CLI_UNBUNDLED }).code).toBe(0);
    expect(fs.readFileSync(out).equals(fs.readFileSync(ref))).toBe(true);
  });

  it('a damaged image fails the same way, with the code and offset', () => {
    const bad = path.join(dir, 'bad.crimg');
    const buf = fs.readFileSync(img);
    buf[300] ^= 0x10;
    fs.writeFileSync(bad, buf);
    const a = crimg(['verify', bad]),
      b = crimg(['verify', bad], { cli: CLI_UNBUNDLED });
    expect(a.code).toBe(1);
    expect(a.stderr).toBe(b.stderr);
    expect(a.stderr).toMatch(/^crimg: [A-Z_]+: [^\n]*at offset \d+[^\n]*\n$/);
  });
});

function readAddr(): string {
  const doc = JSON.parse(crimg(['show', '--json', img], { cli: CLI_UNBUNDLED }).stdout);
  const v = doc.tasks[0].vmas.find((x: { prot: string; pages: number }) => x.prot.startsWith('r') && x.pages > 0);
  return v.start;
}

/** Run `node -r PRELOAD CLI args` and return what the process loaded. */
function loaded(args: string[], cli = CLI): { code: number; builtins: string[]; files: string[] } {
  const out = path.join(dir, `loaded-${process.pid}-${Math.random().toString(36).slice(2)}.json`);
  const preload = path.join(dir, 'preload.cjs');
  fs.writeFileSync(
    preload,
    `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify({
    builtins: process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13)),
    files: Object.keys(require.cache) })));\n`,
  );
  const r = spawnSync(process.execPath, ['-r', preload, cli, ...args], { encoding: 'utf8' });
  const doc = JSON.parse(fs.readFileSync(out, 'utf8'));
  return { code: r.status ?? -1, ...doc };
}

describe('what the bin loads', () => {
  it('verify and gen load neither koffi nor child_process; help (all command families) loads koffi', () => {
    for (const args of [
      ['verify', img],
      ['gen', '--size', '1MiB', '-o', os.devNull, '--quiet'],
      ['show', img],
    ]) {
      const l = loaded(args);
      expect(l.code).toBe(0);
      expect(
        l.files.some((f) => f.includes(`${path.sep}koffi${path.sep}`)),
        args[0],
      ).toBe(false);
      expect(l.builtins).not.toContain('child_process');
      expect(l.files.filter((f) => f.startsWith(CLI_DIR))).toEqual([CLI]); // the bundle runs through the loader, not require()
    }
    const h = loaded(['--help']);
    expect(h.code).toBe(0);
    expect(h.files.some((f) => f.includes(`${path.sep}koffi${path.sep}`))).toBe(true);
  });
});

describe('the code cache', () => {
  const accepted = (bin: string) =>
    spawnSync(
      process.execPath,
      ['-e', `const r = require(${JSON.stringify(bin)}).load(); process.stdout.write(String(r.script.cachedDataRejected))`],
      { encoding: 'utf8' },
    );

  it('made at build time is accepted by this node', () => {
    const r = accepted(CLI);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('false');
  });

  it('missing, for another bundle, or damaged: ignored or rejected, and the CLI still works', () => {
    // a copy of dist/cli's bin files, with ../../build/crimg.wasm resolving as in the package
    const root = fs.mkdtempSync(path.join(dir, 'copy-'));
    const cli = path.join(root, 'dist', 'cli');
    fs.mkdirSync(cli, { recursive: true });
    fs.symlinkSync(path.join(ROOT, 'build'), path.join(root, 'build'));
    const bin = path.join(cli, 'crimg.cjs');
    for (const f of ['crimg.cjs', 'crimg-bundle.cjs']) fs.copyFileSync(path.join(CLI_DIR, f), path.join(cli, f));
    const cache = fs.readFileSync(path.join(CLI_DIR, 'crimg-bundle.cache'));
    const nl = cache.indexOf(10);
    const want = crimg(['show', img]).stdout;
    const cases: [string, Buffer | null, string][] = [
      ['missing', null, 'undefined'],
      ['another bundle id', Buffer.concat([Buffer.from('0123456789abcdef'), cache.subarray(nl)]), 'undefined'],
      ['damaged', Buffer.concat([cache.subarray(0, nl + 1), Buffer.alloc(cache.length - nl - 1, 0x5a)]), 'true'],
    ];
    for (const [what, data, rejected] of cases) {
      const f = path.join(cli, 'crimg-bundle.cache');
      fs.rmSync(f, { force: true });
      if (data) fs.writeFileSync(f, data);
      expect(accepted(bin).stdout, what).toBe(rejected);
      const r = crimg(['show', img], { cli: bin });
      expect(r.code, `${what}: ${r.stderr}`).toBe(0);
      expect(r.stdout, what).toBe(want);
    }
  });
});
