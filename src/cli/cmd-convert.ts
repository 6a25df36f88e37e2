/** crimg convert: ELF core files <-> crimg images (input format detected from its magic). */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { CrimgError, ioError } from '../errors.js';
import { openImage, type Image } from '../reader.js';
import { writeImage } from '../writer.js';
import { fromElfCore, type ElfCore } from '../elf/import.js';
import { toElfCore } from '../elf/export.js';
import { fromCriuImages, isCriuDir, toCriuImages, type CriuImages } from '../criu/index.js';
import type { Model } from '../model.js';
import { action, parseIntArg, printJson, progress, usage, type GlobalOpts } from './common.js';

export type InputFormat = 'elf' | 'crimg';

/** The format of a file from its first bytes: "\x7fELF" or "CRMG". */
export function detectFormat(path: string): InputFormat {
  const head = new Uint8Array(4);
  let n = 0;
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    throw ioError(`cannot open ${path}`, e);
  }
  try {
    if (fs.fstatSync(fd).isDirectory()) throw new CrimgError('IO', `${path} is a directory`);
    n = fs.readSync(fd, head, 0, 4, 0);
  } catch (e) {
    throw ioError(`reading ${path}`, e);
  } finally {
    fs.closeSync(fd);
  }
  if (n >= 4 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46) return 'elf';
  if (n >= 4 && String.fromCharCode(...head) === 'CRMG') return 'crimg';
  if (n < 4) throw new CrimgError('TRUNCATED', `${path} is ${n} bytes long: too short to be an ELF core or a crimg image`, { offset: n });
  throw new CrimgError('BAD_MAGIC', `${path} is neither an ELF core ("\\x7fELF") nor a crimg image ("CRMG")`, { offset: 0 });
}

interface ConvertOpts extends GlobalOpts {
  output: string;
  to?: string;
  pid?: string;
  fsync?: boolean;
}

function modelBytes(m: Model): number {
  let n = 0;
  for (const t of m.tasks) for (const v of t.mm?.vmas ?? []) n += Number(v.end - v.start);
  return n;
}

export function registerConvertCommands(program: Command): void {
  program
    .command('convert')
    .description('convert between ELF core files, CRIU image directories and crimg images (the input format is detected from its magic)')
    .argument('<input>', 'ELF core file, CRIU image directory or crimg image')
    .requiredOption('-o, --output <path>', 'file to write (temporary name, renamed into place when complete)')
    .option(
      '--to <format>',
      'output format: crimg, elf or criu (a directory; default: crimg for an ELF or CRIU input, elf for a crimg input)',
    )
    .option('--pid <pid>', 'with --to elf: the task to write (an ELF core holds one process; default the first task)')
    .option('--fsync', 'fsync the output before renaming it into place')
    .option('--json', 'print a JSON summary on stdout')
    .option('--quiet', 'no progress bar')
    .action(
      action(async (input: string, o: ConvertOpts) => {
        const from = isCriuDir(input) ? 'criu' : detectFormat(input);
        const to = o.to ?? (from === 'crimg' ? 'elf' : 'crimg');
        if (to !== 'crimg' && to !== 'elf' && to !== 'criu') throw usage(`--to: '${o.to}' is not one of crimg, elf, criu`);
        const pid = o.pid !== undefined ? parseIntArg('--pid', o.pid, { min: 1, max: 0x7fffffff }) : undefined;
        if (pid !== undefined && to !== 'elf') throw usage('--pid applies to --to elf only');
        const t0 = process.hrtime.bigint();
        let core: ElfCore | undefined;
        let img: Image | undefined;
        let criu: CriuImages | undefined;
        try {
          let model: Model;
          if (from === 'criu') {
            criu = fromCriuImages(input);
            model = criu.model;
          } else if (from === 'elf') {
            core = fromElfCore(input);
            model = core.model;
          } else {
            img = openImage(input);
            model = img.model;
          }
          const bar = await progress(modelBytes(model), o, `convert ${from} -> ${to}`);
          const onProgress = (n: number): void => bar.update(n);
          let summary: Record<string, unknown>;
          try {
            if (to === 'crimg') {
              const r = await writeImage(model, o.output, { fsync: o.fsync, onProgress, ...(img ? { kernels: img.k } : {}) });
              summary = { bytes: r.bytes, records: r.records, pagesStored: r.pagesStored, pagesZero: r.pagesZero };
            } else if (to === 'criu') {
              const r = await toCriuImages(img ?? model, o.output, { fsync: o.fsync, onProgress });
              summary = {
                bytes: r.bytes,
                files: r.files,
                pagesWritten: r.pagesWritten,
                pagesHole: r.pagesHole,
                pagesDropped: r.pagesDropped,
                fdsSkipped: r.fdsSkipped,
              };
            } else {
              const r = await toElfCore(img ?? model, o.output, { fsync: o.fsync, pid, onProgress });
              summary = {
                bytes: r.bytes,
                pid: r.pid,
                segments: r.segments,
                notesBytes: r.notesBytes,
                pagesWritten: r.pagesWritten,
                pagesHole: r.pagesHole,
              };
            }
          } finally {
            bar.stop();
          }
          const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
          const threads = model.tasks.reduce((s, t) => s + t.threads.length, 0);
          const vmas = model.tasks.reduce((s, t) => s + (t.mm?.vmas.length ?? 0), 0);
          const doc = { input, from, output: o.output, to, tasks: model.tasks.length, threads, vmas, ...summary, seconds };
          if (o.json) printJson(doc);
          else if (!o.quiet)
            process.stderr.write(
              `${input} (${from}) -> ${o.output} (${to}): ${summary.bytes} bytes, ${threads} threads, ${vmas} VMAs, ${seconds.toFixed(2)} s\n`,
            );
        } finally {
          core?.close();
          criu?.close();
          img?.close();
        }
      }),
    );
}
