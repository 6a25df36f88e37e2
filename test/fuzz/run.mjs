#!/usr/bin/env node
/**
 * crimg fuzzer: seeded mutations of valid images of many shapes (corpus.mjs, mutate.mjs)
 * and of ELF core files (elf.mjs), each read by crimg under a watchdog, in worker threads.
 *
 *   node test/fuzz/run.mjs [--seconds 60] [--seed 1] [--iterations N] [--workers 2]
 *                          [--lib dist|src|DIR] [--timeout-ms 10000] [--max-wasm-mb 256]
 *                          [--max-heap-mb 768] [--json] [--small] [--only I] [--dump DIR]
 *                          [--target image|elf|both] [--core FILE]...
 *
 * --target both (default) makes every fifth mutant an ELF core; --core adds real cores
 * (e.g. from gdb's gcore) to the ELF seeds; --lib src runs a fresh transpiled copy of src/.
 *
 * Images: every mutant must be rejected with a CrimgError carrying a documented code and a
 * one-line message, or be accepted; only a mutant whose checksums are all right (record
 * checksums and the trailer's whole-image checksum: image.mjs isConsistent) may be
 * accepted, and it must read back identically after a rewrite (model -> image -> model),
 * through the full reader and through the lazy (openImage) reader alike.
 * ELF cores: rejected with a code, or imported; an imported core's pages must read (or
 * fail with a code) and its model must convert to an image that reads back identically.
 * Anything else is counted:
 *
 *   crash       an exception that is not a CrimgError, a worker death (out of memory...),
 *               or a hang (a read not finished within --timeout-ms; the worker is killed
 *               and replaced)
 *   violation   a broken invariant: a mutant with a stale checksum accepted, an accepted
 *               mutant that does not read back identically, the lazy reader accepting what
 *               the full reader rejects (and serving its pages), the input modified, a file
 *               left next to the input, kernel memory regions or hash slots leaked, memory
 *               beyond --max-wasm-mb / --max-heap-mb, a CrimgError with an undocumented
 *               code or a multi-line message
 *   warning     a CrimgError whose offset lies outside the file (misleading, not unsafe)
 *
 * Exit status 0 only when crashes and violations are 0. Mutant I of seed S is fully
 * determined by (S, I, --target, corpus): `--only I --seed S` replays one mutant in-process
 * and prints what happened (--dump DIR also writes its bytes). The report gives the counts
 * (tried, rejected by code, BAD_RECORD by the record kind refused, accepted, crashes),
 * per-target and per-operation counts (the edits of an optional kind's fields counted per
 * kind: optional:NAME), the seeds with the record kinds each holds, the slowest mutant and
 * the peak memory measured (WASM memory, worker heap, process RSS).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { xxh3 } from '@node-rs/xxhash';
import { buildCorpus } from './corpus.mjs';
import { isConsistent, parse } from './image.mjs';
import { mutate, mutateMagic } from './mutate.mjs';
import { buildElfCorpus, elfMutant, parseElf } from './elf.mjs';

const SELF = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SELF), '../..');

// ------------------------------------------------------------------ options

function parseArgs(argv) {
  const o = {
    seconds: 60,
    seed: 1,
    iterations: Infinity,
    workers: Math.max(1, Math.min(2, os.cpus().length)),
    lib: 'dist',
    timeoutMs: 10_000,
    maxWasmMb: 256,
    maxHeapMb: 768,
    json: false,
    small: false,
    only: null,
    dump: null,
    quiet: false,
    target: 'both',
    cores: [],
  };
  const num = (name, s) => {
    const v = Number(s);
    if (!Number.isFinite(v) || v < 0) {
      process.stderr.write(`fuzz: ${name}: '${s}' is not a number\n`);
      process.exit(2);
    }
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) {
        process.stderr.write(`fuzz: ${a} needs a value\n`);
        process.exit(2);
      }
      return argv[++i];
    };
    switch (a) {
      case '--seconds':
        o.seconds = num(a, val());
        break;
      case '--seed':
        o.seed = Math.floor(num(a, val()));
        break;
      case '--iterations':
        o.iterations = Math.floor(num(a, val()));
        break;
      case '--workers':
        o.workers = Math.max(1, Math.floor(num(a, val())));
        break;
      case '--lib':
        o.lib = val();
        break;
      case '--timeout-ms':
        o.timeoutMs = num(a, val());
        break;
      case '--max-wasm-mb':
        o.maxWasmMb = num(a, val());
        break;
      case '--max-heap-mb':
        o.maxHeapMb = num(a, val());
        break;
      case '--json':
        o.json = true;
        break;
      case '--quiet':
        o.quiet = true;
        break;
      case '--small':
        o.small = true;
        break;
      case '--target':
        o.target = val();
        if (!['image', 'elf', 'both'].includes(o.target)) {
          process.stderr.write('fuzz: --target must be image, elf or both\n');
          process.exit(2);
        }
        break;
      case '--core':
        o.cores.push(path.resolve(val()));
        break;
      case '--only':
        o.only = Math.floor(num(a, val()));
        break;
      case '--dump':
        o.dump = val();
        break;
      case '-h':
      case '--help':
        process.stdout.write(
          fs
            .readFileSync(SELF, 'utf8')
            .split('*/')[0]
            .replace(/^#!.*\n\/\*\*\n/, '')
            .replace(/^ \* ?/gm, ''),
        );
        process.exit(0);
        break;
      default:
        process.stderr.write(`fuzz: unknown option ${a} (try --help)\n`);
        process.exit(2);
    }
  }
  return o;
}

/** Directory holding the crimg JavaScript modules (index.js, gen/, kernels/, inspect.js). */
async function resolveLib(spec) {
  if (spec === 'dist') {
    const dir = path.join(ROOT, 'dist');
    if (!fs.existsSync(path.join(dir, 'index.js')))
      throw new Error('dist/ is not built: run `npm run build` (npm run fuzz does) or use --lib src');
    return { dir, cleanup: () => {} };
  }
  if (spec === 'src') {
    const { buildLib } = await import('./lib-build.mjs');
    const b = await buildLib(ROOT);
    return { dir: path.join(b.dir, 'src'), cleanup: b.cleanup };
  }
  return { dir: path.resolve(spec), cleanup: () => {} };
}

async function loadLib(dir) {
  const imp = (f) => import(pathToFileURL(path.join(dir, f)).href);
  const [index, gen, inspect, arena, api] = await Promise.all([
    imp('index.js'),
    imp('gen/generate.js'),
    imp('inspect.js'),
    imp('kernels/arena.js'),
    imp('kernels/api.js'),
  ]);
  // ELF core import and export, when this crimg has them
  const elf = await Promise.all([imp('elf/import.js'), imp('elf/export.js')]).catch(() => null);
  return {
    ...index,
    generate: gen.generate,
    showText: inspect.showText,
    showJson: inspect.showJson,
    arena,
    api,
    fromElfCore: elf?.[0].fromElfCore,
    toElfCore: elf?.[1].toElfCore,
  };
}

// ------------------------------------------------------------------ one mutant

const PROBE_PAGES = 256;
/** Canonical JSON: 64-bit values in hex, byte arrays in base64, object keys sorted. */
const jsonBig = (x) =>
  JSON.stringify(x, (_, v) => {
    if (typeof v === 'bigint') return `0x${v.toString(16)}`;
    if (v instanceof Uint8Array || v instanceof BigUint64Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
    if (v && typeof v === 'object' && !Array.isArray(v))
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, v[k]]),
      );
    return v;
  });

class Checker {
  constructor(lib, opts) {
    this.lib = lib;
    this.opts = opts;
    this.k = lib.kernels();
    this.scratch = lib.arena.claimRegion(this.k, PROBE_PAGES * 4096);
    // where the next region would go when nothing else is claimed: leak probe
    this.freeAt = lib.arena.claimRegion(this.k, 1);
    lib.arena.releaseRegion(this.k, this.freeAt);
    // under the run's own directory when there is one: a worker killed by the watchdog cannot remove its own
    this.dir = fs.mkdtempSync(path.join(opts.tmpRoot ?? os.tmpdir(), 'crimg-fuzz-'));
    this.validCodes = new Set(Object.keys(lib.ERROR_CODES));
  }

  close() {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Plain form of an opened image's model with page contents hashed (runs merged). */
  flatten(img) {
    const m = img.model;
    const tasks = m.tasks.map((t) => ({
      ...t,
      mm: t.mm && {
        ...t.mm,
        vmas: t.mm.vmas.map((v) => {
          const npages = Number((v.end - v.start) / 4096n);
          const runs = [];
          for (const [f, n] of v.pages.runs(npages)) {
            const last = runs[runs.length - 1];
            if (last && last[0] + last[1] === f) last[1] += n;
            else runs.push([f, n]);
          }
          const h = xxh3.Xxh3.withSeed(0n);
          for (const [f, n] of runs) {
            for (let p = f; p < f + n; p += PROBE_PAGES) {
              const c = Math.min(PROBE_PAGES, f + n - p);
              v.pages.read(this.k, this.scratch, p, c);
              h.update(this.k.u8().subarray(this.scratch, this.scratch + c * 4096));
            }
          }
          return { ...v, pages: { runs, hash: h.digest() } };
        }),
      },
    }));
    return jsonBig({ ...m, tasks });
  }

  /** Classify a thrown value: a documented CrimgError code, or a crash. */
  classify(e, size) {
    if (e instanceof this.lib.CrimgError) {
      const problems = [],
        warnings = [];
      if (!this.validCodes.has(e.code)) problems.push(`undocumented code ${e.code}`);
      const line = e.line();
      if (/[\n\r]/.test(line)) problems.push('multi-line message');
      // an offset past the end of the file is misleading but not unsafe: a warning
      if (e.offset !== undefined && !(Number.isInteger(e.offset) && e.offset >= 0 && e.offset <= size))
        warnings.push(`offset ${e.offset} outside the ${size}-byte file`);
      return { code: e.code, line, problems, warnings };
    }
    return { crash: e instanceof Error ? `${e.name}: ${e.message}` : String(e), stack: e?.stack?.split('\n').slice(0, 6).join('\n') };
  }

  /**
   * Read one mutant every way there is and check the invariants.
   * Returns { outcome: code | 'ACCEPTED', crash?, violations: string[] }.
   */
  async check(m, viaFile) {
    const { lib } = this;
    const violations = [];
    const size = m.bytes.length;
    const inHash = xxh3.xxh64(m.bytes);
    let src = m.bytes;
    let file = null;
    if (viaFile) {
      file = path.join(this.dir, m.elf ? 'mutant.core' : 'mutant.crimg');
      fs.writeFileSync(file, m.bytes);
      src = file;
    }
    const result = { outcome: null, crash: null, violations, warnings: [] };
    const crashOf = (where, e) => {
      const c = this.classify(e, size);
      if (c.crash) {
        result.crash = { where, error: c.crash, stack: c.stack };
        return null;
      }
      for (const p of c.problems) violations.push(`${where}: ${c.code}: ${p}: ${c.line}`);
      for (const p of c.warnings) result.warnings.push(`${where}: ${c.code}: ${p}: ${c.line}`);
      return c.code;
    };

    if (m.elf) await this.checkElf(src, result, crashOf, violations);
    else await this.checkImage(m, src, result, crashOf, violations);

    // 3. nothing written: the input unchanged, nothing left beside it, no kernel memory leaked
    if (xxh3.xxh64(m.bytes) !== inHash) violations.push('the input buffer was modified');
    if (file) {
      if (xxh3.xxh64(fs.readFileSync(file)) !== inHash) violations.push('the input file was modified');
      fs.unlinkSync(file);
    }
    const left = fs.readdirSync(this.dir);
    if (left.length) {
      violations.push(`files left beside the input: ${left.join(' ')}`);
      for (const f of left) fs.rmSync(path.join(this.dir, f), { recursive: true, force: true });
    }
    const probe = lib.arena.claimRegion(this.k, 1);
    lib.arena.releaseRegion(this.k, probe);
    if (probe !== this.freeAt) {
      violations.push('kernel memory region leaked');
      this.freeAt = probe; // report once
    }
    const slot = lib.arena.claimSlot(this.k);
    lib.arena.releaseSlot(this.k, slot);
    if (slot !== 0) violations.push(`hash slot ${slot - 1} leaked`);
    return result;
  }

  /**
   * An ELF core: rejected with a code, or imported; an imported core's pages must read
   * (or fail with a code: pages are read lazily), and its model must convert to an image
   * that the reader accepts and that reads back as the same model.
   */
  async checkElf(src, result, crashOf, violations) {
    const { lib } = this;
    let core = null;
    try {
      core = lib.fromElfCore(src, { createdNs: 0n });
    } catch (e) {
      result.outcome = crashOf('fromElfCore', e);
      return;
    }
    result.outcome = 'ACCEPTED';
    try {
      let flat;
      try {
        flat = this.flatten(core);
      } catch (e) {
        const code = crashOf('core pages', e);
        if (code) result.outcome = code; // rejected when its pages were read
        return;
      }
      const sink = new lib.MemorySink();
      try {
        await lib.writeImage(core.model, sink);
      } catch (e) {
        const code = crashOf('convert (writeImage of an imported core)', e);
        if (code) violations.push(`an imported core does not convert: ${code}`);
        return;
      }
      let img;
      try {
        img = lib.readImage(sink.bytes());
      } catch (e) {
        const code = crashOf('readImage of a converted core', e);
        if (code) violations.push(`an imported core converts to an image the reader rejects: ${code}`);
        return;
      }
      try {
        if (this.flatten(img) !== flat) violations.push('an imported core does not read back identically after conversion');
      } finally {
        img.close();
      }
    } finally {
      core.close();
    }
  }

  async checkImage(m, src, result, crashOf, violations) {
    const { lib } = this;
    // 1. the full reader (every payload verified now)
    let full = null,
      fullFlat = null;
    try {
      full = lib.readImage(src);
    } catch (e) {
      result.outcome = crashOf('readImage', e);
      if (e instanceof lib.CrimgError) result.message = e.message;
    }
    if (full) {
      result.outcome = 'ACCEPTED';
      try {
        if (!isConsistent(m.bytes)) violations.push(`accepted a mutant with a stale checksum (level ${m.level})`);
        fullFlat = this.flatten(full);
        lib.showText(full.model, full);
        jsonBig(lib.showJson(full.model, full));
        // model -> image -> model: the accepted model must survive a rewrite unchanged
        const sink = new lib.MemorySink();
        await lib.writeImage(full.model, sink);
        const again = lib.readImage(sink.bytes());
        try {
          if (this.flatten(again) !== fullFlat) violations.push('accepted mutant does not read back identically after a rewrite');
        } finally {
          again.close();
        }
      } catch (e) {
        const code = crashOf('accepted image (flatten/show/rewrite)', e);
        if (code) violations.push(`accepted image fails later with ${code}`);
      } finally {
        full.close();
      }
    }

    // 2. the lazy reader (metadata now, pages verified when read)
    if (!result.crash) {
      let meta = null;
      try {
        meta = lib.openImage(src);
      } catch (e) {
        const code = crashOf('openImage', e);
        if (code && full) violations.push(`openImage rejects (${code}) what readImage accepts`);
      }
      if (meta) {
        let pageErr = null;
        try {
          try {
            const flat = this.flatten(meta);
            if (fullFlat && flat !== fullFlat) violations.push('openImage and readImage read different models');
          } catch (e) {
            pageErr = crashOf('openImage pages', e);
            if (pageErr && full) violations.push(`openImage pages fail (${pageErr}) where readImage accepted`);
          }
          if (!full && !pageErr && !result.crash)
            violations.push(`openImage serves every page of an image readImage rejects (${result.outcome})`);
          // random access: mapped, unmapped, straddling, unknown pid
          if (!result.crash) {
            for (const t of meta.model.tasks.slice(0, 3)) {
              const probes = [
                [t.pid, 0n, 16],
                [t.pid + 1000000, 0x1000n, 1],
              ];
              for (const v of (t.mm?.vmas ?? []).slice(0, 4))
                probes.push([t.pid, v.start, 100], [t.pid, v.end - 8n, 16], [t.pid, v.start + 4000n, 200]);
              for (const [pid, addr, len] of probes) {
                try {
                  meta.readMemory(pid, addr, len);
                } catch (e) {
                  if (!crashOf('readMemory', e)) break;
                }
              }
              if (result.crash) break;
            }
          }
        } finally {
          meta.close();
        }
      }
    }
  }

  memory() {
    return { wasm: this.k.u8().length, heap: v8.getHeapStatistics().used_heap_size };
  }
}

async function setup(libDir, small, target = 'image', cores = []) {
  const lib = await loadLib(libDir);
  const corpus = await buildCorpus(lib, { small });
  const bases = corpus.map((b) => ({ ...b, parsed: parse(b.bytes) }));
  // every base must be valid to start with
  for (const b of bases) lib.verifyImage(b.bytes);
  const defs = new Map(lib.RECORDS.map((d) => [d.kind, d]));
  let elf = null;
  if (target !== 'image') {
    if (!lib.fromElfCore || !lib.toElfCore) {
      if (target === 'elf') throw new Error('this crimg has no ELF core import (src/elf/import.ts)');
    } else {
      const ecorpus = await buildElfCorpus(lib, corpus);
      for (const f of cores) ecorpus.push({ name: `core:${path.basename(f)}`, bytes: new Uint8Array(fs.readFileSync(f)) });
      const ebases = ecorpus.map((b) => ({ ...b, parsed: parseElf(b.bytes) }));
      for (const b of ebases) lib.fromElfCore(b.bytes, { createdNs: 0n }).close();
      elf = { bases: ebases };
    }
  }
  return { lib, ctx: { bases, defs, elf, target: elf ? target : 'image' } };
}

/**
 * Mutant I of seed S: with --target both every fifth mutant is an ELF core; of the
 * images, magic edits on a fixed schedule and the rest from mutate().
 */
function mutantOf(ctx, seed, i) {
  if (ctx.elf && (ctx.target === 'elf' || i % 5 === 4)) {
    const m = elfMutant(ctx.elf, seed, i);
    return { ...m, elf: true, baseName: ctx.elf.bases[m.base].name };
  }
  const m = i % 97 === 96 ? mutateMagic(ctx, seed, i) : mutate(ctx, seed, i);
  return { ...m, baseName: ctx.bases[m.base].name };
}

/** The seeds: name, size and, for images, the names of the record kinds they hold. */
function corpusOf(ctx) {
  const names = (b) => [...new Set(b.parsed.recs.map((x) => ctx.defs.get(x.kind)?.name).filter(Boolean))];
  return [
    ...ctx.bases.map((b) => ({ name: b.name, bytes: b.bytes.length, kinds: names(b) })),
    ...(ctx.elf?.bases ?? []).map((b) => ({ name: b.name, bytes: b.bytes.length })),
  ];
}

/** The family of an operation, for the per-operation counts (the optional kinds' fields: one family per record). */
const family = (op) => {
  if (op.startsWith('elf:')) return `elf:${op.slice(4).split(/[.:]/)[0].replace(/\d+$/, '')}`;
  if (op.startsWith('optional:')) return `optional:${op.slice(9).split('.')[0]}`;
  return op.split('+')[0].split(/[:@=]/)[0].replace(/\d+$/, '');
};

// ------------------------------------------------------------------ worker

async function workerMain() {
  const { libDir, seed, small, target, cores, worker, stride, startJ, iterations, stop, cur, started, opts } = workerData;
  const stopFlag = new Int32Array(stop);
  const curArr = new Float64Array(cur);
  const startArr = new Float64Array(started);
  const { lib, ctx } = await setup(libDir, small, target, cores);
  const ck = new Checker(lib, opts);
  const stats = newStats();
  const post = (final) => {
    parentPort.postMessage({ type: 'stats', worker, stats, final });
    resetDeltas(stats);
  };
  parentPort.postMessage({ type: 'ready', worker, bases: corpusOf(ctx) });
  try {
    for (let j = startJ; ; j++) {
      const i = worker + j * stride;
      if (i >= iterations || Atomics.load(stopFlag, 0)) break;
      curArr[worker] = i;
      startArr[worker] = Date.now();
      let m;
      try {
        m = mutantOf(ctx, seed, i);
      } catch (e) {
        // the fuzzer's own bug: reported as a crash of the fuzzer, not of crimg
        stats.tried++;
        stats.crashes++;
        parentPort.postMessage({
          type: 'finding',
          worker,
          finding: { iteration: i, seed, crash: { where: 'mutate', error: `${e?.name}: ${e?.message}`, stack: e?.stack } },
        });
        curArr[worker] = -1;
        continue;
      }
      startArr[worker] = Date.now(); // the watchdog bounds the reads, not the making of the mutant
      const t0 = process.hrtime.bigint();
      let r;
      try {
        r = await ck.check(m, i % 8 === 3);
      } catch (e) {
        // an exception that escaped the checks themselves: count it, keep going
        r = {
          outcome: null,
          violations: [],
          crash: { where: 'fuzzer', error: `${e?.name}: ${e?.message}`, stack: e?.stack?.split('\n').slice(0, 6).join('\n') },
        };
      }
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      curArr[worker] = -1;
      const mem = ck.memory();
      record(stats, m, r, ms, mem, i, ctx, opts);
      if (r.crash || r.violations.length) {
        parentPort.postMessage({ type: 'finding', worker, finding: findingOf(m, r, i, ctx, seed) });
      } else if (r.warnings.length) {
        parentPort.postMessage({ type: 'warning', worker, finding: { ...findingOf(m, r, i, ctx, seed), violations: r.warnings } });
      }
      post(false); // after every mutant: a worker killed by the watchdog loses nothing
    }
  } finally {
    ck.close();
  }
  post(true);
}

function findingOf(m, r, i, _ctx, seed) {
  return {
    iteration: i,
    seed,
    base: m.baseName,
    op: m.op,
    level: m.level,
    fixIndex: m.fixIndex,
    size: m.bytes.length,
    outcome: r.outcome,
    crash: r.crash,
    violations: r.violations,
  };
}

function newStats() {
  return {
    tried: 0,
    rejected: 0,
    accepted: 0,
    crashes: 0,
    violationMutants: 0,
    warnings: 0,
    codes: {},
    ops: {},
    levels: {},
    acceptedByLevel: {},
    targets: {},
    maxMs: 0,
    maxMsOp: '',
    peakWasm: 0,
    peakHeap: 0,
    totalMs: 0,
    viaFile: 0,
    bytes: 0,
    recordRejects: {},
  };
}
function resetDeltas(s) {
  Object.assign(s, newStats());
}

function record(s, m, r, ms, mem, i, _ctx, opts) {
  s.tried++;
  s.bytes += m.bytes.length;
  s.totalMs += ms;
  if (i % 8 === 3) s.viaFile++;
  const fam = family(m.op);
  const op = (s.ops[fam] ??= { tried: 0, rejected: 0, accepted: 0, crashes: 0 });
  op.tried++;
  s.levels[m.level] = (s.levels[m.level] ?? 0) + 1;
  const tg = (s.targets[m.elf ? 'elf' : 'image'] ??= { tried: 0, rejected: 0, accepted: 0, crashes: 0 });
  tg.tried++;
  if (r.crash) tg.crashes++;
  else if (r.outcome === 'ACCEPTED') tg.accepted++;
  else tg.rejected++;
  if (r.crash) {
    s.crashes++;
    op.crashes++;
  } else if (r.outcome === 'ACCEPTED') {
    s.accepted++;
    op.accepted++;
    s.acceptedByLevel[m.level] = (s.acceptedByLevel[m.level] ?? 0) + 1;
  } else {
    s.rejected++;
    op.rejected++;
    s.codes[r.outcome] = (s.codes[r.outcome] ?? 0) + 1;
    // BAD_RECORD "NAME record: why": refused by the checks of that record's decoding
    const named = r.outcome === 'BAD_RECORD' && /^([A-Z][A-Z0-9_]*) record: /.exec(r.message ?? '');
    if (named) s.recordRejects[named[1]] = (s.recordRejects[named[1]] ?? 0) + 1;
  }
  if (r.violations.length) s.violationMutants++;
  if (r.warnings?.length) {
    s.warnings++;
    tg.warnings = (tg.warnings ?? 0) + 1;
  }
  if (ms > s.maxMs) {
    s.maxMs = ms;
    s.maxMsOp = `${m.baseName}/${m.op} (#${i})`;
  }
  s.peakWasm = Math.max(s.peakWasm, mem.wasm);
  s.peakHeap = Math.max(s.peakHeap, mem.heap);
  if (mem.wasm > opts.maxWasmMb * 1048576 && !s.wasmReported) {
    s.wasmReported = true;
    r.violations.push(`WASM memory ${(mem.wasm / 1048576).toFixed(0)} MiB exceeds ${opts.maxWasmMb} MiB`);
    s.violationMutants++;
  }
  if (mem.heap > opts.maxHeapMb * 1048576) {
    r.violations.push(`worker heap ${(mem.heap / 1048576).toFixed(0)} MiB exceeds ${opts.maxHeapMb} MiB`);
    s.violationMutants++;
  }
}

function merge(into, d) {
  for (const k of ['tried', 'rejected', 'accepted', 'crashes', 'violationMutants', 'warnings', 'totalMs', 'viaFile', 'bytes'])
    into[k] += d[k];
  for (const [c, n] of Object.entries(d.codes)) into.codes[c] = (into.codes[c] ?? 0) + n;
  for (const [c, n] of Object.entries(d.levels)) into.levels[c] = (into.levels[c] ?? 0) + n;
  for (const [c, n] of Object.entries(d.acceptedByLevel)) into.acceptedByLevel[c] = (into.acceptedByLevel[c] ?? 0) + n;
  for (const [c, n] of Object.entries(d.recordRejects)) into.recordRejects[c] = (into.recordRejects[c] ?? 0) + n;
  for (const [f, o] of Object.entries(d.targets)) {
    const t = (into.targets[f] ??= { tried: 0, rejected: 0, accepted: 0, crashes: 0 });
    for (const k of Object.keys(o)) t[k] = (t[k] ?? 0) + o[k];
  }
  for (const [f, o] of Object.entries(d.ops)) {
    const t = (into.ops[f] ??= { tried: 0, rejected: 0, accepted: 0, crashes: 0 });
    for (const k of Object.keys(o)) t[k] += o[k];
  }
  if (d.maxMs > into.maxMs) {
    into.maxMs = d.maxMs;
    into.maxMsOp = d.maxMsOp;
  }
  into.peakWasm = Math.max(into.peakWasm, d.peakWasm);
  into.peakHeap = Math.max(into.peakHeap, d.peakHeap);
}

// ------------------------------------------------------------------ main

async function only(o, libDir) {
  const { lib, ctx } = await setup(libDir, o.small, o.target, o.cores);
  const m = mutantOf(ctx, o.seed, o.only);
  const ck = new Checker(lib, o);
  try {
    const r = await ck.check(m, o.only % 8 === 3);
    const f = findingOf(m, r, o.only, ctx, o.seed);
    if (o.dump) {
      fs.mkdirSync(o.dump, { recursive: true });
      fs.writeFileSync(path.join(o.dump, `mutant-${o.seed}-${o.only}.crimg`), m.bytes);
    }
    process.stdout.write(`${JSON.stringify(f, null, 2)}\n`);
    return r.crash || r.violations.length ? 1 : 0;
  } finally {
    ck.close();
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const lib = await resolveLib(o.lib);
  try {
    if (o.only !== null) return await only(o, lib.dir);
    return await runWorkers(o, lib.dir);
  } finally {
    lib.cleanup();
  }
}

function runWorkers(o, libDir) {
  return new Promise((resolve) => {
    const W = o.workers;
    const stop = new SharedArrayBuffer(4);
    const cur = new SharedArrayBuffer(8 * W);
    const started = new SharedArrayBuffer(8 * W);
    const stopFlag = new Int32Array(stop);
    const curArr = new Float64Array(cur).fill(-1);
    const startArr = new Float64Array(started);
    const total = newStats();
    const findings = [];
    const warnings = [];
    const hangs = [];
    let bases = null;
    const t0 = Date.now();
    let deadline = Infinity;
    const workers = new Array(W);
    const nextJ = new Array(W).fill(0);
    let live = 0;
    let peakRss = process.memoryUsage().rss;
    const rssTimer = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }, 100);
    // the workers' files go under one directory, removed at the end (also those of workers the watchdog killed)
    const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-fuzzrun-'));
    const opts = { maxWasmMb: o.maxWasmMb, maxHeapMb: o.maxHeapMb, tmpRoot };

    const spawn = (w) => {
      const worker = new Worker(SELF, {
        workerData: {
          fuzzWorker: true,
          libDir,
          seed: o.seed,
          small: o.small,
          target: o.target,
          cores: o.cores,
          worker: w,
          stride: W,
          startJ: nextJ[w],
          iterations: o.iterations,
          stop,
          cur,
          started,
          opts,
        },
        resourceLimits: { maxOldGenerationSizeMb: Math.max(256, o.maxHeapMb * 2) },
        stdout: false,
        stderr: false,
      });
      workers[w] = { worker, done: false, killed: false };
      live++;
      worker.on('message', (msg) => {
        if (msg.type === 'ready') {
          bases ??= msg.bases;
          if (deadline === Infinity && Number.isFinite(o.seconds) && o.seconds > 0) deadline = Date.now() + o.seconds * 1000;
        } else if (msg.type === 'stats') {
          merge(total, msg.stats);
          if (msg.final) workers[w].done = true;
        } else if (msg.type === 'warning') {
          if (warnings.length < 20) warnings.push(msg.finding);
        } else if (msg.type === 'finding') {
          if (findings.length < 200) findings.push(msg.finding);
          if (!o.quiet && !o.json)
            process.stderr.write(
              `fuzz: FINDING #${msg.finding.iteration} ${msg.finding.base}/${msg.finding.op}: ${msg.finding.crash ? msg.finding.crash.error : msg.finding.violations.join('; ')}\n`,
            );
        }
      });
      const died = (why) => {
        const i = curArr[w];
        if (i >= 0) {
          total.tried++;
          total.crashes++;
          const f = { iteration: i, seed: o.seed, crash: { where: 'worker', error: why } };
          findings.push(f);
          if (!o.quiet && !o.json) process.stderr.write(`fuzz: CRASH #${i}: ${why}\n`);
          curArr[w] = -1;
          nextJ[w] = Math.floor((i - w) / W) + 1;
          return true;
        }
        return false;
      };
      worker.on('error', (e) => {
        workers[w].error = e;
      });
      worker.on('exit', (codeNum) => {
        live--;
        const ws = workers[w];
        if (ws.killed) {
          // hang: already counted; carry on with the next mutant of this worker
          if (!stopFlag[0]) spawn(w);
          else if (live === 0) finish();
          return;
        }
        if (!ws.done) {
          const why = ws.error ? `${ws.error.code ?? ws.error.name}: ${ws.error.message}` : `worker exited with code ${codeNum}`;
          if (died(why)) {
            if (!stopFlag[0]) {
              spawn(w);
              return;
            }
          } else {
            // a failure outside any mutant (setup): fatal for this worker
            total.crashes++;
            findings.push({ iteration: -1, seed: o.seed, crash: { where: 'setup', error: why, stack: ws.error?.stack } });
          }
        }
        if (live === 0) finish();
      });
    };

    const watchdog = setInterval(() => {
      const now = Date.now();
      if (now >= deadline && !stopFlag[0]) Atomics.store(stopFlag, 0, 1);
      for (let w = 0; w < W; w++) {
        const ws = workers[w];
        if (!ws || ws.killed || ws.done) continue;
        const i = curArr[w];
        if (i >= 0 && now - startArr[w] > o.timeoutMs) {
          ws.killed = true;
          total.tried++;
          total.crashes++;
          hangs.push(i);
          findings.push({
            iteration: i,
            seed: o.seed,
            crash: { where: 'watchdog', error: `hang: mutant not finished in ${o.timeoutMs} ms` },
          });
          if (!o.quiet && !o.json) process.stderr.write(`fuzz: HANG #${i} (> ${o.timeoutMs} ms), worker restarted\n`);
          curArr[w] = -1;
          nextJ[w] = Math.floor((i - w) / W) + 1;
          ws.worker.terminate();
        }
      }
      if (!o.quiet && !o.json && process.stderr.isTTY) {
        process.stderr.write(
          `\rfuzz: ${total.tried} tried, ${total.rejected} rejected, ${total.accepted} accepted, ${total.crashes} crashes, ${total.violationMutants} violations  `,
        );
      }
    }, 100);

    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearInterval(watchdog);
      clearInterval(rssTimer);
      fs.rmSync(tmpRoot, { recursive: true, force: true });
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      const seconds = (Date.now() - t0) / 1000;
      const report = {
        seed: o.seed,
        workers: W,
        seconds: Number(seconds.toFixed(2)),
        lib: o.lib,
        target: o.target,
        cores: o.cores,
        tried: total.tried,
        rejectedByCode: total.rejected,
        accepted: total.accepted,
        crashes: total.crashes,
        violations: total.violationMutants,
        hangs: hangs.length,
        warnings: total.warnings,
        targets: total.targets,
        codes: sortObj(total.codes),
        rejectedByRecord: sortObj(total.recordRejects),
        acceptedByLevel: total.acceptedByLevel,
        levels: total.levels,
        readViaFile: total.viaFile,
        ops: Object.fromEntries(Object.entries(total.ops).sort((a, b) => b[1].tried - a[1].tried)),
        corpus: bases,
        mutantsPerSecond: Number((total.tried / Math.max(seconds, 0.001)).toFixed(1)),
        mutantBytes: total.bytes,
        slowestMs: Number(total.maxMs.toFixed(1)),
        slowest: total.maxMsOp,
        timeoutMs: o.timeoutMs,
        memory: {
          peakWasmMiB: mib(total.peakWasm),
          peakWorkerHeapMiB: mib(total.peakHeap),
          peakProcessRssMiB: mib(peakRss),
          limits: { wasmMiB: o.maxWasmMb, workerHeapMiB: o.maxHeapMb },
        },
        findings,
        warningExamples: warnings,
      };
      if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else printReport(report);
      resolve(total.crashes || total.violationMutants || total.tried === 0 ? 1 : 0);
    };

    for (let w = 0; w < W; w++) spawn(w);
  });
}

const mib = (b) => Number((b / 1048576).toFixed(1));
const sortObj = (o) => Object.fromEntries(Object.entries(o).sort((a, b) => b[1] - a[1]));

function printReport(r) {
  const out = [];
  if (process.stderr.isTTY) process.stderr.write('\n');
  out.push(`crimg fuzz: seed ${r.seed}, ${r.workers} worker(s), ${r.seconds} s, ${r.mutantsPerSecond} mutants/s`);
  out.push(`corpus: ${(r.corpus ?? []).map((b) => `${b.name} (${b.bytes} B)`).join(', ')}`);
  out.push(`mutants tried      ${r.tried}`);
  out.push(
    `rejected by code   ${r.rejectedByCode}   ${Object.entries(r.codes)
      .map(([c, n]) => `${c} ${n}`)
      .join(', ')}`,
  );
  out.push(
    `  BAD_RECORD by the record refused: ${
      Object.entries(r.rejectedByRecord)
        .map(([c, n]) => `${c} ${n}`)
        .join(', ') || '-'
    }`,
  );
  out.push(
    `accepted           ${r.accepted}   (by checksum level: ${
      Object.entries(r.acceptedByLevel)
        .map(([c, n]) => `${c} ${n}`)
        .join(', ') || '-'
    })`,
  );
  for (const [t, c] of Object.entries(r.targets))
    out.push(`  ${t.padEnd(16)} ${c.tried} tried, ${c.rejected} rejected, ${c.accepted} accepted, ${c.crashes} crashes`);
  out.push(`crashes            ${r.crashes}${r.hangs ? ` (hangs ${r.hangs})` : ''}`);
  out.push(`violations         ${r.violations}`);
  out.push(
    `warnings           ${r.warnings}${r.warnings ? `   e.g. #${r.warningExamples[0].iteration} ${r.warningExamples[0].base}/${r.warningExamples[0].op}: ${r.warningExamples[0].violations[0]}` : ''}`,
  );
  out.push(`slowest mutant     ${r.slowestMs} ms  ${r.slowest}  (watchdog ${r.timeoutMs} ms)`);
  out.push(
    `peak memory        WASM ${r.memory.peakWasmMiB} MiB, worker heap ${r.memory.peakWorkerHeapMiB} MiB, process RSS ${r.memory.peakProcessRssMiB} MiB`,
  );
  out.push('operations (tried / rejected / accepted / crashes):');
  for (const [f, s] of Object.entries(r.ops))
    out.push(
      `  ${f.padEnd(22)} ${String(s.tried).padStart(7)} ${String(s.rejected).padStart(7)} ${String(s.accepted).padStart(7)} ${String(s.crashes).padStart(5)}`,
    );
  for (const f of r.findings.slice(0, 20)) {
    out.push(
      `FINDING #${f.iteration} ${f.base ?? ''}/${f.op ?? ''} [${f.level ?? ''}]: ${f.crash ? `${f.crash.where}: ${f.crash.error}` : f.violations.join('; ')}`,
    );
    if (f.crash?.stack) out.push(f.crash.stack.replace(/^/gm, '    '));
    if (f.iteration >= 0)
      out.push(
        `    replay: node test/fuzz/run.mjs --seed ${f.seed} --only ${f.iteration} --target ${r.target} --lib ${r.lib}${r.cores.map((c) => ` --core ${c}`).join('')}`,
      );
  }
  out.push(r.crashes || r.violations ? 'FAIL' : 'OK: every mutant was rejected with a crimg error code or accepted identically');
  process.stdout.write(`${out.join('\n')}\n`);
}

export { Checker, setup, mutantOf, loadLib, resolveLib };

if (isMainThread && process.argv[1] && path.resolve(process.argv[1]) === SELF) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`fuzz: ${e?.stack ?? e}\n`);
      process.exitCode = 2;
    },
  );
} else if (!isMainThread && workerData?.fuzzWorker) {
  await workerMain();
}
