/** Commands that inspect images: show, verify, stats, read, diff. */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { openImage, verifyImageAsync, type VerifyResult } from '../reader.js';
import { diffImages, showJson, showText } from '../inspect.js';
import { FileSink } from '../sink.js';
import { CrimgError } from '../errors.js';
import { EXIT_FAIL, EXIT_OK, EXIT_USAGE, action, hex, parseBigArg, parseIntArg, printJson, progress, reportError } from './common.js';

export function registerImageCommands(program: Command): void {
  registerShow(program);
  registerVerify(program);
  registerStats(program);
  registerRead(program);
  registerDiff(program);
}

function registerShow(program: Command): void {
  program
    .command('show')
    .description('print a summary of an image: header, task tree, registers, VMAs, files, namespaces, nocr reasons')
    .argument('<image>', 'image file')
    .option('--json', 'one JSON document on stdout')
    .action(
      action((path: string, o: { json?: boolean }) => {
        // Metadata, record headers, bitmaps, index and trailer are verified; page payloads
        // are not read (that is `crimg verify`), so a summary of a big image is quick.
        const img = openImage(path);
        try {
          if (o.json) printJson(showJson(img.model, img));
          else process.stdout.write(showText(img.model, img));
        } finally {
          img.close();
        }
      }),
    );
}

function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('check magic, version, every record, every checksum, the index and the trailer')
    .argument('<image>', 'image file')
    .option('--json', 'one JSON document on stdout')
    .option('--quiet', 'print nothing on success')
    .action(
      action(async (path: string, o: { json?: boolean; quiet?: boolean }) => {
        try {
          const r = await verifyWithProgress(path, o, 'verify');
          if (o.json)
            printJson({ ok: true, records: r.stats.records, bytes: r.stats.fileBytes, imageCsum: r.stats.imageCsum, seconds: r.seconds });
          else if (!o.quiet)
            process.stderr.write(`${path}: OK (${r.stats.records} records, ${r.stats.fileBytes} bytes, xxh3 ${hex(r.stats.imageCsum)})\n`);
          return EXIT_OK;
        } catch (e) {
          if (o.json && e instanceof CrimgError) {
            printJson({ ok: false, code: e.code, offset: e.offset ?? null, message: e.message });
            reportError(e);
            return EXIT_FAIL;
          }
          throw e;
        }
      }),
    );
}

function registerStats(program: Command): void {
  program
    .command('stats')
    .description('sizes, pages stored vs elided, per-VMA breakdown, checksum algorithm, time to verify')
    .argument('<image>', 'image file')
    .option('--json', 'one JSON document on stdout')
    .action(
      action(async (path: string, o: { json?: boolean }) => {
        const r = await verifyWithProgress(path, o, 'stats');
        const img = openImage(path);
        try {
          const s = r.stats;
          const doc = {
            file: path,
            fileBytes: s.fileBytes,
            records: s.records,
            pageRecords: s.pageRecords,
            pagesStored: s.pagesStored,
            pagesZero: s.pagesZero,
            pageBytes: s.pageBytes,
            metadataBytes: s.metaBytes,
            checksum: 'xxh3-64',
            imageCsum: s.imageCsum,
            verifySeconds: r.seconds,
            verifyGBps: r.seconds > 0 ? s.fileBytes / r.seconds / 1e9 : null,
            freezeNs: img.model.header.freezeNs,
            tasks: s.tasks.map((t) => ({
              pid: t.pid,
              vmas: t.vmas.map((v) => ({ start: v.start, end: v.end, path: v.path, pages: v.pages, stored: v.stored, zero: v.zero })),
            })),
          };
          if (o.json) {
            printJson(doc);
            return;
          }
          const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
          const lines = [
            `file           ${path}`,
            `size           ${s.fileBytes} bytes (${mib(s.fileBytes)}): pages ${mib(s.pageBytes)}, metadata ${s.metaBytes} bytes`,
            `records        ${s.records} (${s.pageRecords} page runs)`,
            `pages          ${s.pagesStored} stored, ${s.pagesZero} zero elided (${s.pagesStored + s.pagesZero ? ((100 * s.pagesZero) / (s.pagesStored + s.pagesZero)).toFixed(1) : '0'}% elided)`,
            `checksum       xxh3-64 ${hex(s.imageCsum)}`,
            `verify         ${(r.seconds * 1000).toFixed(1)} ms${r.seconds > 0 ? ` (${(s.fileBytes / r.seconds / 1e9).toFixed(2)} GB/s)` : ''}`,
          ];
          if (img.model.header.freezeNs) lines.push(`frozen         ${(Number(img.model.header.freezeNs) / 1e6).toFixed(2)} ms`);
          for (const t of s.tasks) {
            lines.push(`task ${t.pid}`);
            for (const v of t.vmas)
              lines.push(
                `  ${v.start.toString(16).padStart(12, '0')}-${v.end.toString(16).padStart(12, '0')} ${String(v.pages).padStart(8)} pages ${String(v.stored).padStart(8)} stored ${String(v.zero).padStart(8)} zero  ${v.path ?? ''}`,
              );
          }
          process.stdout.write(`${lines.join('\n')}\n`);
        } finally {
          img.close();
        }
      }),
    );
}

function registerRead(program: Command): void {
  program
    .command('read')
    .description("the bytes of a task's memory from the image (zero-filled for elided pages)")
    .argument('<image>', 'image file')
    .requiredOption('--pid <pid>', 'task id')
    .requiredOption('--addr <addr>', 'start address (decimal or 0x hex)')
    .requiredOption('--len <len>', 'number of bytes')
    .option('-o, --output <file>', 'write to a file instead of stdout')
    .action(
      action((path: string, o: { pid: string; addr: string; len: string; output?: string }) => {
        const pid = parseIntArg('--pid', o.pid, { min: 0, max: 0x7fffffff });
        const addr = parseBigArg('--addr', o.addr);
        const len = parseIntArg('--len', o.len, { min: 0, max: 1 << 30 });
        const img = openImage(path);
        try {
          const bytes = img.readMemory(pid, addr, len);
          if (o.output) {
            const s = new FileSink(o.output);
            try {
              s.write(bytes);
            } catch (e) {
              s.abort();
              throw e;
            }
            return s.close();
          }
          fs.writeSync(1, bytes);
        } finally {
          img.close();
        }
      }),
    );
}

function registerDiff(program: Command): void {
  program
    .command('diff')
    .description('what differs between two images (exit 0 same, 1 different, 2 trouble, like cmp)')
    .argument('<a>', 'first image')
    .argument('<b>', 'second image')
    .option('--json', 'one JSON document on stdout')
    .option('--ignore <fields>', 'comma-separated header fields to ignore (e.g. crid,createdNs,freezeNs)')
    .option('--no-pages', 'do not compare page contents')
    .action(async (pa: string, pb: string, o: { json?: boolean; ignore?: string; pages?: boolean }) => {
      let A, B;
      try {
        A = openImage(pa);
        B = openImage(pb);
        const d = diffImages(A, B, { ignoreHeader: o.ignore ? o.ignore.split(',') : [], pages: o.pages !== false });
        if (o.json) printJson({ same: d.length === 0, differences: d });
        else for (const x of d) process.stdout.write(`${x.what}: ${fmt(x.a)} != ${fmt(x.b)}\n`);
        process.exitCode = d.length ? 1 : 0;
      } catch (e) {
        reportError(e);
        process.exitCode = EXIT_USAGE; // trouble
      } finally {
        A?.close();
        B?.close();
      }
    });
}

function fmt(v: unknown): string {
  if (typeof v === 'bigint') return hex(v);
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (typeof v === 'object') return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? hex(x) : x));
  return String(v);
}

/** verifyImageAsync with a progress bar on a TTY (images of a few GiB take seconds). */
async function verifyWithProgress(path: string, o: { json?: boolean; quiet?: boolean }, label: string): Promise<VerifyResult> {
  let size = 0;
  try {
    size = fs.statSync(path).size;
  } catch {
    /* verifyImageAsync reports it */
  }
  const bar = await progress(size >= 256 << 20 ? size : 0, o, label);
  try {
    return await verifyImageAsync(path, { onProgress: (n) => bar.update(n) });
  } finally {
    bar.stop();
  }
}
