/** Synthetic images: gen (one, many, shards, incremental series) and demo. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { generate, resolveSpec, type GenSpec, type ContentKind } from '../gen/generate.js';
import { writeImage } from '../writer.js';
import { readImage } from '../reader.js';
import { showText } from '../inspect.js';
import { ioError } from '../errors.js';
import { action, parseIntArg, parseSize, printJson, progress, usage, hex, type GlobalOpts } from './common.js';

interface GenOpts extends GlobalOpts {
  output?: string;
  count?: string;
  outDir?: string;
  shard?: string;
  series?: string;
  dirtyRatio?: string;
  seed?: string;
  tasks?: string;
  threads?: string;
  vmas?: string;
  size?: string;
  zeroRatio?: string;
  dupRatio?: string;
  content?: string;
  files?: string;
  namespaces?: boolean;
  fanout?: string;
  fsync?: boolean;
}

function ratio(name: string, s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const v = Number(s);
  if (!/^\d*\.?\d+$/.test(s) || !(v >= 0 && v <= 1)) throw usage(`${name}: '${s}' is not a ratio in 0..1`);
  return v;
}

export function specFromOptions(o: GenOpts): GenSpec {
  const spec: GenSpec = {};
  if (o.seed !== undefined) {
    if (!/^(0x[0-9a-f]+|\d+)$/i.test(o.seed)) throw usage(`--seed: '${o.seed}' is not an integer`);
    spec.seed = BigInt(o.seed);
  }
  if (o.tasks !== undefined) spec.tasks = parseIntArg('--tasks', o.tasks, { min: 1, max: 100000 });
  if (o.fanout !== undefined) spec.fanout = parseIntArg('--fanout', o.fanout, { min: 1, max: 1000 });
  if (o.threads !== undefined) spec.threads = parseIntArg('--threads', o.threads, { min: 1, max: 10000 });
  if (o.vmas !== undefined) spec.vmas = parseIntArg('--vmas', o.vmas, { min: 0, max: 60000 });
  if (o.files !== undefined) spec.files = parseIntArg('--files', o.files, { min: 0, max: 100000 });
  if (o.size !== undefined) spec.size = parseSize('--size', o.size);
  spec.zeroRatio = ratio('--zero-ratio', o.zeroRatio);
  spec.dupRatio = ratio('--dup-ratio', o.dupRatio);
  spec.dirtyRatio = ratio('--dirty-ratio', o.dirtyRatio);
  if (o.content !== undefined) {
    if (!['random', 'text', 'pattern'].includes(o.content)) throw usage(`--content: '${o.content}' is not one of random, text, pattern`);
    spec.content = o.content as ContentKind;
  }
  if (o.namespaces === false) spec.namespaces = false;
  for (const k of Object.keys(spec) as (keyof GenSpec)[]) if (spec[k] === undefined) delete spec[k];
  resolveSpec(spec); // validate early
  return spec;
}

export function registerGenCommands(program: Command): void {
  registerGen(program);
  registerDemo(program);
}

function registerGen(program: Command): void {
  program
    .command('gen')
    .description('write deterministic synthetic images (same spec and seed: same bytes on any machine and shard split)')
    .option('-o, --output <path>', 'image to write (one image)')
    .option('--count <n>', 'write N distinct images into --out-dir')
    .option('--series <n>', 'write N successive images of one process into --out-dir (incremental-checkpoint series)')
    .option('--out-dir <dir>', 'directory for --count/--series images (NNNNNN.crimg)')
    .option('--shard <i/n>', 'write only shard I of N of the series (images whose number mod N is I)')
    .option('--seed <n>', 'seed (default 1)')
    .option('--size <bytes>', 'populated memory over all tasks, e.g. 64MiB, 1GiB (default 64MiB)')
    .option('--tasks <n>', 'tasks in the tree (default 1)')
    .option('--fanout <n>', 'children per task (default 3)')
    .option('--threads <n>', 'threads per task (default 2)')
    .option('--vmas <n>', 'extra anonymous mappings per task (default 4)')
    .option('--files <n>', 'open files per task besides 0-2 (default 3)')
    .option('--zero-ratio <f>', 'fraction of zero pages (default 0.3)')
    .option('--dup-ratio <f>', 'fraction of duplicated pages (default 0.05)')
    .option('--dirty-ratio <f>', 'fraction of pages changed between neighbours of a --series (default 0.1)')
    .option('--content <kind>', 'random | text | pattern (default random)')
    .option('--no-namespaces', 'tasks in the host namespaces instead of a container')
    .option('--fsync', 'fsync each image before renaming it into place')
    .option('--json', 'print a JSON summary on stdout')
    .option('--quiet', 'no progress bar')
    .action(
      action(async (o: GenOpts) => {
        const spec = specFromOptions(o);
        const jobs = genJobs(o, spec);
        const { results, secs } = await writeJobs(jobs, o, jobs.length * resolveSpec(spec).size);
        if (o.json) printJson({ images: results, seconds: secs });
        else if (!o.quiet)
          process.stderr.write(
            `wrote ${results.length} image${results.length === 1 ? '' : 's'}, ${results.reduce((a, r) => a + r.bytes, 0)} bytes in ${secs.toFixed(2)} s\n`,
          );
      }),
    );
}

interface GenJob {
  file: string;
  spec: GenSpec;
}

/** The images to write: one (-o), or the shard of a --count/--series in --out-dir (created). */
function genJobs(o: GenOpts, spec: GenSpec): GenJob[] {
  const many = o.count !== undefined || o.series !== undefined;
  if (many === (o.output !== undefined)) throw usage('give either -o PATH, or --count N / --series N with --out-dir DIR');
  if (o.count !== undefined && o.series !== undefined) throw usage('--count and --series are exclusive');
  if (many && !o.outDir) throw usage('--out-dir is required with --count/--series');
  if (o.shard !== undefined && !many) throw usage('--shard needs --count or --series');
  const [shardI, shardN] = parseShard(o.shard);
  if (!many) return [{ file: o.output!, spec }];
  const jobs: GenJob[] = [];
  const n = parseIntArg(o.count !== undefined ? '--count' : '--series', (o.count ?? o.series)!, { min: 1, max: 10_000_000 });
  try {
    fs.mkdirSync(o.outDir!, { recursive: true });
  } catch (e) {
    throw ioError(`cannot create ${o.outDir}`, e);
  }
  for (let i = shardI; i < n; i += shardN) {
    const s: GenSpec = o.series !== undefined ? { ...spec, epoch: i } : { ...spec, index: i };
    jobs.push({ file: path.join(o.outDir!, `${String(i).padStart(6, '0')}.crimg`), spec: s });
  }
  return jobs;
}

/** --shard I/N as [I, N] ([0, 1] without it). */
function parseShard(shard: string | undefined): [number, number] {
  if (shard === undefined) return [0, 1];
  const m = /^(\d+)\/(\d+)$/.exec(shard);
  if (!m || Number(m[2]) < 1 || Number(m[1]) >= Number(m[2])) throw usage(`--shard: '${shard}' is not I/N with 0 <= I < N`);
  return [Number(m[1]), Number(m[2])];
}

interface GenResult {
  file: string;
  bytes: number;
  pagesStored: number;
  pagesZero: number;
  imageCsum: string;
}

/** Generate and write each image in turn, with one progress bar over totalBytes; secs: time spent writing. */
async function writeJobs(jobs: GenJob[], o: GenOpts, totalBytes: number): Promise<{ results: GenResult[]; secs: number }> {
  const bar = await progress(totalBytes, o, 'gen');
  const results: GenResult[] = [];
  let done = 0;
  const t0 = process.hrtime.bigint();
  try {
    for (const j of jobs) {
      const model = generate(j.spec);
      const r = await writeImage(model, j.file, { fsync: o.fsync, onProgress: (b) => bar.update(done + b) });
      done += r.bytes;
      bar.update(done);
      results.push({ file: j.file, bytes: r.bytes, pagesStored: r.pagesStored, pagesZero: r.pagesZero, imageCsum: hex(r.imageCsum) });
    }
  } finally {
    bar.stop();
  }
  return { results, secs: Number(process.hrtime.bigint() - t0) / 1e9 };
}

function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('generate a small sample image in the temp directory, verify it and show it')
    .option('--keep <path>', 'write the sample here instead of a temporary file')
    .action(
      action(async (o: { keep?: string }) => {
        const file = o.keep ?? path.join(fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'crimg-demo-')), 'sample.crimg');
        const model = generate({ seed: 42, size: 8 * 1024 * 1024, tasks: 2, threads: 2 });
        const r = await writeImage(model, file);
        process.stderr.write(`generated ${file}: ${r.bytes} bytes, ${r.pagesStored} pages stored, ${r.pagesZero} zero pages elided\n`);
        const img = readImage(file);
        try {
          process.stdout.write(showText(img.model, img));
        } finally {
          img.close();
        }
        process.stderr.write(
          `\nverified OK. Try: crimg show --json ${file} | crimg stats ${file} | crimg read ${file} --pid ${model.tasks[0]!.pid} --addr 0x${model.tasks[0]!.mm!.vmas[0]!.start.toString(16)} --len 64 | xxd\n`,
        );
      }),
    );
}
