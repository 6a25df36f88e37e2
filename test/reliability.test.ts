/**
 * Crashes and faults while writing images: `crimg gen` killed with SIGKILL at random
 * moments never leaves anything but a complete valid image at the destination name;
 * a full disk and unwritable destinations give one clear error line, exit status 1
 * and no partial file; many images written at once (worker threads, separate
 * processes, concurrent writers in one process) are all valid and none mixed.
 *
 * The CLI and library run from a fresh transpiled copy of src/ (test/fuzz/lib-build.mjs).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { xxh3 } from '@node-rs/xxhash';
import { CrimgError, FileSink, verifyImage, writeImage } from '../src/index.js';
import { generate, type GenSpec } from '../src/gen/generate.js';
// @ts-expect-error plain JavaScript helper without types
import { buildLib } from './fuzz/lib-build.mjs';
import { mount, umount, umountAllUnder } from './helpers/tmpfs.js';

let lib: { dir: string; lib: string; cli: string; cleanup: () => void };
let tmp: string;

beforeAll(async () => {
  lib = await buildLib();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-rel-'));
});
afterAll(() => {
  lib?.cleanup();
  if (tmp) {
    umountAllUnder(tmp);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function crimg(args: string[]): Run {
  const r = spawnSync(process.execPath, [lib.cli, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function crimgAsync(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [lib.cli, ...args]);
    let stdout = '',
      stderr = '';
    p.stdout.on('data', (d) => {
      stdout += d;
    });
    p.stderr.on('data', (d) => {
      stderr += d;
    });
    p.on('error', reject);
    p.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const hashFile = (f: string): bigint => xxh3.xxh64(fs.readFileSync(f));
const sleep = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

/** Bytes of the image `crimg gen` writes for a spec, made in-process (gen is deterministic). */
async function reference(spec: GenSpec, file: string): Promise<bigint> {
  await writeImage(generate(spec), file);
  return hashFile(file);
}

/** One clear error line: `crimg: IO: ...`. */
function expectIoError(r: Run, pattern: RegExp): void {
  expect(r.code).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^crimg: IO: /);
  expect(lines[0]).toMatch(pattern);
}

describe('kill -9 while writing', () => {
  it('crimg gen killed at random moments leaves either no image or the complete one at the destination', async () => {
    const dir = path.join(tmp, 'kill');
    fs.mkdirSync(dir);
    const spec = { seed: 5, size: 24 * 1024 * 1024, tasks: 2 };
    const refHash = await reference(spec, path.join(tmp, 'kill-ref.crimg'));
    const refSize = fs.statSync(path.join(tmp, 'kill-ref.crimg')).size;
    const dest = path.join(dir, 'img.crimg');
    const args = ['gen', '-o', dest, '--seed', '5', '--size', '24MiB', '--tasks', '2', '--quiet'];
    const outcomes = { absent: 0, complete: 0, tempSeen: 0 };
    let seed = 12345;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    for (let i = 0; i < 16; i++) {
      for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f));
      const fsync = i % 4 === 3;
      const p = spawn(process.execPath, [lib.cli, ...args, ...(fsync ? ['--fsync'] : [])], { stdio: 'ignore' });
      const exited = new Promise<void>((res) => p.on('exit', () => res()));
      // half the kills at a random amount of progress of the temporary file, half at a random time
      const t0 = Date.now();
      if (i % 2 === 0) {
        const want = Math.floor(rand() * refSize);
        for (;;) {
          const tmpFile = fs.readdirSync(dir).find((f) => f.startsWith('.img.crimg.tmp-'));
          let size = -1;
          if (tmpFile) {
            try {
              size = fs.statSync(path.join(dir, tmpFile)).size;
            } catch {
              /* renamed meanwhile */
            }
          }
          if (size >= want || fs.existsSync(dest) || p.exitCode !== null || Date.now() - t0 > 60_000) break;
          sleep(1);
        }
      } else {
        sleep(Math.floor(rand() * 1500));
      }
      p.kill('SIGKILL');
      await exited;
      const names = fs.readdirSync(dir);
      if (names.some((f) => f.startsWith('.img.crimg.tmp-'))) outcomes.tempSeen++;
      // nothing but the destination and temporary files of the killed writer
      for (const f of names) expect(f === 'img.crimg' || f.startsWith(`.img.crimg.tmp-${p.pid}-`), f).toBe(true);
      if (fs.existsSync(dest)) {
        outcomes.complete++;
        expect(verifyImage(dest).ok).toBe(true);
        expect(hashFile(dest)).toBe(refHash);
      } else outcomes.absent++;
    }
    // the last run is left to finish: the destination then holds the complete image
    for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f));
    const r = crimg(args);
    expect(r.code).toBe(0);
    expect(fs.readdirSync(dir)).toEqual(['img.crimg']);
    expect(hashFile(dest)).toBe(refHash);
    // progress-based kills always land while the temporary file is being written
    expect(outcomes.absent).toBeGreaterThan(0);
    expect(outcomes.absent + outcomes.complete).toBe(16);
  });
});

describe('kill -9 while converting', () => {
  it('crimg convert (image -> ELF core and core -> image) killed at random moments leaves no partial output', async () => {
    const dir = path.join(tmp, 'convert');
    fs.mkdirSync(dir);
    const img = path.join(tmp, 'convert-src.crimg');
    await writeImage(generate({ seed: 6, size: 24 * 1024 * 1024, tasks: 1 }), img);
    const core = path.join(tmp, 'convert-ref.core');
    expect(crimg(['convert', img, '-o', core, '--to', 'elf', '--quiet']).code).toBe(0);
    const back = path.join(tmp, 'convert-ref.crimg');
    expect(crimg(['convert', core, '-o', back, '--quiet']).code).toBe(0);
    const refs = { elf: hashFile(core), crimg: hashFile(back) };
    let seed = 777;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    for (let i = 0; i < 8; i++) {
      const to = i % 2 === 0 ? 'elf' : 'crimg';
      const input = to === 'elf' ? img : core;
      const name = `out.${to}`;
      const dest = path.join(dir, name);
      for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f));
      const refSize = fs.statSync(to === 'elf' ? core : back).size;
      const p = spawn(process.execPath, [lib.cli, 'convert', input, '-o', dest, '--to', to, '--quiet'], { stdio: 'ignore' });
      const exited = new Promise<void>((res) => p.on('exit', () => res()));
      const want = Math.floor(rand() * refSize);
      const t0 = Date.now();
      for (;;) {
        const tmpFile = fs.readdirSync(dir).find((f) => f.startsWith(`.${name}.tmp-`));
        let size = -1;
        if (tmpFile) {
          try {
            size = fs.statSync(path.join(dir, tmpFile)).size;
          } catch {
            /* renamed meanwhile */
          }
        }
        if (size >= want || fs.existsSync(dest) || p.exitCode !== null || Date.now() - t0 > 60_000) break;
        sleep(1);
      }
      p.kill('SIGKILL');
      await exited;
      for (const f of fs.readdirSync(dir)) expect(f === name || f.startsWith(`.${name}.tmp-${p.pid}-`), f).toBe(true);
      if (fs.existsSync(dest)) {
        expect(hashFile(dest)).toBe(refs[to]);
        if (to === 'crimg') expect(verifyImage(dest).ok).toBe(true);
      }
    }
  });
});

describe('disk full and unwritable destinations', () => {
  it('a full disk: one IO error line, exit 1, no partial file; images finished before stay valid', async () => {
    const mnt = path.join(tmp, 'full');
    mount(mnt, 'size=8m');
    try {
      const dest = path.join(mnt, 'big.crimg');
      for (const fsync of [false, true]) {
        const r = crimg(['gen', '-o', dest, '--size', '16MiB', '--quiet', ...(fsync ? ['--fsync'] : [])]);
        expectIoError(r, /ENOSPC/);
        expect(r.stderr).toContain(dest);
        expect(fs.readdirSync(mnt)).toEqual([]);
      }
      // a series of small images (about 1 MB each): the first ones fit, then the disk fills up
      const out = path.join(mnt, 'series');
      const r = crimg([
        'gen',
        '--count',
        '20',
        '--out-dir',
        out,
        '--size',
        '1MiB',
        '--threads',
        '1',
        '--vmas',
        '0',
        '--files',
        '0',
        '--quiet',
      ]);
      expectIoError(r, /ENOSPC/);
      const names = fs.readdirSync(out);
      expect(names.length).toBeGreaterThan(0);
      expect(names.length).toBeLessThan(20);
      names.forEach((f, i) => {
        expect(f).toBe(`${String(i).padStart(6, '0')}.crimg`);
        expect(verifyImage(path.join(out, f)).ok).toBe(true);
      });
      // space freed: the same command now succeeds
      fs.rmSync(out, { recursive: true });
      const again = crimg(['gen', '-o', path.join(mnt, 'small.crimg'), '--size', '64KiB', '--quiet']);
      expect(again.code).toBe(0);
      expect(verifyImage(path.join(mnt, 'small.crimg')).ok).toBe(true);
    } finally {
      umount(mnt);
    }
  });

  it('a read-only file system: clear error, exit 1, the existing image left untouched', async () => {
    const mnt = path.join(tmp, 'ro');
    mount(mnt, 'size=4m');
    try {
      const dest = path.join(mnt, 'old.crimg');
      expect(crimg(['gen', '-o', dest, '--size', '64KiB', '--seed', '1', '--quiet']).code).toBe(0);
      const before = hashFile(dest);
      execFileSync('mount', ['-o', 'remount,ro', mnt]);
      const r = crimg(['gen', '-o', dest, '--size', '64KiB', '--seed', '2', '--quiet']);
      expectIoError(r, /EROFS/);
      expect(fs.readdirSync(mnt)).toEqual(['old.crimg']);
      expect(hashFile(dest)).toBe(before);
      expectIoError(crimg(['gen', '-o', path.join(mnt, 'new.crimg'), '--size', '64KiB', '--quiet']), /EROFS/);
      expect(fs.readdirSync(mnt)).toEqual(['old.crimg']);
    } finally {
      umount(mnt);
    }
  });

  it('missing directory, a file as directory, a directory as destination: clear error, exit 1, nothing written', () => {
    const dir = path.join(tmp, 'unwritable');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'plain'), 'x');
    fs.mkdirSync(path.join(dir, 'adir'));
    expectIoError(crimg(['gen', '-o', path.join(dir, 'nope', 'img.crimg'), '--size', '64KiB', '--quiet']), /ENOENT/);
    expectIoError(crimg(['gen', '-o', path.join(dir, 'plain', 'img.crimg'), '--size', '64KiB', '--quiet']), /ENOTDIR/);
    expectIoError(crimg(['gen', '-o', path.join(dir, 'adir'), '--size', '64KiB', '--quiet']), /EISDIR/);
    expect(fs.readdirSync(dir).sort()).toEqual(['adir', 'plain']);
    expect(fs.readdirSync(path.join(dir, 'adir'))).toEqual([]);
    expect(fs.readFileSync(path.join(dir, 'plain'), 'utf8')).toBe('x');
  });

  it('the library reports the same errors as CrimgError IO and leaves no file', async () => {
    const mnt = path.join(tmp, 'libfull');
    mount(mnt, 'size=512k');
    try {
      const err = await writeImage(generate({ seed: 3, size: 2 * 1024 * 1024 }), path.join(mnt, 'x.crimg')).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CrimgError);
      expect((err as CrimgError).code).toBe('IO');
      expect((err as CrimgError).message).toMatch(/ENOSPC/);
      expect(fs.readdirSync(mnt)).toEqual([]);
    } finally {
      umount(mnt);
    }
  });
});

describe('many images at once', () => {
  const specs: GenSpec[] = Array.from({ length: 8 }, (_, i) => ({
    seed: 100 + i,
    size: (1 + (i % 3)) * 1024 * 1024,
    tasks: 1 + (i % 2),
    threads: 2,
  }));
  let refs: bigint[];

  beforeAll(async () => {
    fs.mkdirSync(path.join(tmp, 'refs'), { recursive: true });
    refs = [];
    for (const [i, s] of specs.entries()) refs.push(await reference(s, path.join(tmp, 'refs', `${i}.crimg`)));
    expect(new Set(refs.map(String)).size).toBe(specs.length);
  });

  it('worker threads writing different files: all valid, each exactly its own image', async () => {
    const dir = path.join(tmp, 'threads');
    fs.mkdirSync(dir);
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      (async () => {
        const { writeImage } = await import(workerData.lib);
        const { generate } = await import(workerData.gen);
        for (const j of workerData.jobs) await writeImage(generate(j.spec), j.file);
        parentPort.postMessage('done');
      })().catch((e) => { parentPort.postMessage('error: ' + (e && e.stack || e)); });
    `;
    const nworkers = 4;
    const runs = Array.from(
      { length: nworkers },
      (_, w) =>
        new Promise<string>((resolve, reject) => {
          const jobs = specs.map((spec, i) => ({ spec, file: path.join(dir, `${i}.crimg`) })).filter((_, i) => i % nworkers === w);
          const worker = new Worker(code, {
            eval: true,
            workerData: { lib: `file://${lib.lib}`, gen: `file://${path.join(lib.dir, 'src/gen/generate.js')}`, jobs },
          });
          worker.once('message', (m) => {
            resolve(String(m));
            void worker.terminate();
          });
          worker.once('error', reject);
        }),
    );
    expect(await Promise.all(runs)).toEqual(Array(nworkers).fill('done'));
    expect(fs.readdirSync(dir).sort()).toEqual(specs.map((_, i) => `${i}.crimg`).sort());
    specs.forEach((_, i) => {
      const f = path.join(dir, `${i}.crimg`);
      expect(verifyImage(f).ok).toBe(true);
      expect(hashFile(f)).toBe(refs[i]);
    });
  });

  it('separate processes writing different files (and shards of one series) at once: all valid, none mixed', async () => {
    const dir = path.join(tmp, 'procs');
    fs.mkdirSync(dir);
    const runs = specs.map((s, i) =>
      crimgAsync([
        'gen',
        '-o',
        path.join(dir, `${i}.crimg`),
        '--seed',
        String(s.seed),
        '--size',
        String(s.size),
        '--tasks',
        String(s.tasks),
        '--threads',
        String(s.threads),
        '--quiet',
      ]),
    );
    // four processes sharing one --count series by shards, into one directory
    const series = path.join(dir, 'series');
    for (let sh = 0; sh < 4; sh++)
      runs.push(
        crimgAsync(['gen', '--count', '8', '--out-dir', series, '--shard', `${sh}/4`, '--size', '512KiB', '--seed', '9', '--quiet']),
      );
    const results = await Promise.all(runs);
    for (const r of results) expect(r, r.stderr).toMatchObject({ code: 0 });
    specs.forEach((_, i) => {
      const f = path.join(dir, `${i}.crimg`);
      expect(verifyImage(f).ok).toBe(true);
      expect(hashFile(f)).toBe(refs[i]);
    });
    // the sharded series equals the series written by a single process
    const single = path.join(tmp, 'series-single');
    expect(crimg(['gen', '--count', '8', '--out-dir', single, '--size', '512KiB', '--seed', '9', '--quiet']).code).toBe(0);
    const names = fs.readdirSync(series).sort();
    expect(names).toEqual(fs.readdirSync(single).sort());
    expect(names).toHaveLength(8);
    for (const f of names) {
      expect(verifyImage(path.join(series, f)).ok).toBe(true);
      expect(hashFile(path.join(series, f))).toBe(hashFile(path.join(single, f)));
    }
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('concurrent writers in one process (one shared kernels instance): all valid, none mixed', async () => {
    const dir = path.join(tmp, 'inproc');
    fs.mkdirSync(dir);
    await Promise.all(specs.map((s, i) => writeImage(generate(s), path.join(dir, `${i}.crimg`))));
    specs.forEach((_, i) => {
      const f = path.join(dir, `${i}.crimg`);
      expect(verifyImage(f).ok).toBe(true);
      expect(hashFile(f)).toBe(refs[i]);
    });
  });
});

describe('asynchronous writes (the writer fills one buffer while the other is written)', () => {
  it('FileSink: abort() during a write removes the file once the write is done; a file opened meanwhile gets none of it', async () => {
    const dir = path.join(tmp, 'async-abort');
    fs.mkdirSync(dir);
    const sink = new FileSink(path.join(dir, 'a.crimg'));
    const big = new Uint8Array(64 << 20).fill(0xab);
    const p = sink.writeAsync!(big);
    sink.abort();
    // the descriptor of the pending write stays open, so this one cannot take its number
    const other = path.join(dir, 'other');
    const fd = fs.openSync(other, 'w');
    await p;
    await sink.idle();
    fs.closeSync(fd);
    expect(fs.statSync(other).size).toBe(0);
    expect(fs.readdirSync(dir)).toEqual(['other']);
  });

  it('a page source failing after several buffers were handed to the thread pool: writeImage rejects with its error, no file left', async () => {
    const dir = path.join(tmp, 'async-fail');
    fs.mkdirSync(dir);
    const model = generate({ seed: 5, size: 48 << 20, tasks: 1, vmas: 1 });
    const vmas = model.tasks[0]!.mm!.vmas;
    const big = vmas.reduce((a, v) => (v.end - v.start > a.end - a.start ? v : a));
    const inner = big.pages;
    let pagesRead = 0;
    const failAt = (Number((big.end - big.start) / 4096n) * 3) / 4;
    const fail = (n: number): void => {
      pagesRead += n;
      if (pagesRead > failAt) throw new Error('source failed on purpose');
    };
    big.pages = {
      runs: (n) => inner.runs(n),
      read: (k, dst, first, n) => {
        fail(n);
        inner.read(k, dst, first, n);
      },
      pack: inner.pack
        ? (k, dst, first, n, bm, slot) => {
            fail(n);
            return inner.pack!(k, dst, first, n, bm, slot);
          }
        : undefined,
    };
    await expect(writeImage(model, path.join(dir, 'x.crimg'))).rejects.toThrow('source failed on purpose');
    expect(pagesRead).toBeGreaterThan(4096); // more than 16 MiB went through: two 8 MiB buffers were written
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
