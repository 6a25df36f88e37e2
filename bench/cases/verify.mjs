// `crimg verify` of an image of 1 GiB in the page cache against `xxhsum -H3` of
// the same file (both whole processes).
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { xxh3 } from '@node-rs/xxhash';
import { runAlternating, runProcess, summarize, evaluateGoals, crimgCmd, inProcess, startupNote } from '../lib/harness.mjs';
import { genImage, missingCommands, rmf, warmFile, eachChunk } from '../lib/fixtures.mjs';

function xxhsumPath() {
  const r = spawnSync('sh', ['-c', 'command -v xxhsum'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function fileXxh3(file) {
  const h = xxh3.Xxh3.withSeed(0n);
  eachChunk(file, (b) => h.update(b));
  return h.digest().toString(16).padStart(16, '0');
}

/** Flip one byte at `off` (in place) and return a function that restores it. */
function flipByte(file, off) {
  const fd = fs.openSync(file, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, off);
  const orig = b[0];
  b[0] = orig ^ 0x40;
  fs.writeSync(fd, b, 0, 1, off);
  return () => {
    b[0] = orig;
    fs.writeSync(fd, b, 0, 1, off);
    fs.closeSync(fd);
  };
}

export const verify = {
  name: 'verify',
  title: '`crimg verify` of a 1 GiB image in the page cache vs `xxhsum -H3`',
  unit: 'GB/s',
  goalsText: '>= 0.8x xxhsum -H3',
  async run({ reps }) {
    const miss = missingCommands('gen', 'verify');
    if (miss) return { available: false, reason: miss };
    const xxhsum = xxhsumPath();
    if (!xxhsum) return { available: false, reason: 'xxhsum is not installed (apt-get install -y xxhash)' };
    const { file, summary } = genImage('verify-1g.crimg', '1GiB', ['--zero-ratio', '0', '--dup-ratio', '0']);
    try {
      warmFile(file);
      const size = fs.statSync(file).size;
      // Same answers: both accept the intact file (xxhsum's digest = XXH3-64 of the bytes),
      // both notice one flipped byte in the middle of page data.
      const xs = runProcess(xxhsum, ['-H3', file]).stdout.trim().split(/\s+/);
      const digest = xs.find((w) => /^[0-9a-f]{16}$/.test(w.replace(/^XXH3_/, '')))?.replace(/^XXH3_/, '');
      const want = fileXxh3(file);
      let crimgOk = true;
      try {
        crimgCmd(['verify', file]);
      } catch {
        crimgOk = false;
      }
      const restore = flipByte(file, Math.floor(size / 2));
      let crimgCaught = false;
      let xxhChanged = false;
      try {
        try {
          crimgCmd(['verify', file]);
        } catch (e) {
          crimgCaught = /CHECKSUM|BAD_|exited 1/.test(String(e.message));
        }
        const d2 = runProcess(xxhsum, ['-H3', file]).stdout;
        xxhChanged = !d2.includes(want);
      } finally {
        restore();
      }
      const lib = await import('../../dist/index.js');
      const inProc = await lib.verifyImageAsync(file);
      const checks = [
        { what: '`verifyImageAsync` in process accepts it too', ok: inProc.ok === true },
        {
          what: `xxhsum -H3 = XXH3-64 of the file computed in process (${want})`,
          ok: digest === want,
          detail: `xxhsum printed ${xs.join(' ')}`,
        },
        { what: '`crimg verify` accepts the intact image', ok: crimgOk },
        {
          what: 'one flipped byte in the middle: `crimg verify` fails with a checksum error, the xxhsum digest changes',
          ok: crimgCaught && xxhChanged,
        },
      ];
      if (checks.some((c) => !c.ok)) return { available: true, checks, checkFailed: 'verifiers disagree' };
      const contenders = [
        { name: 'crimg verify (whole process)', role: 'crimg', units: size, run: () => crimgCmd(['verify', file]) },
        { name: 'xxhsum -H3 (whole process)', role: 'peer', units: size, run: () => runProcess(xxhsum, ['-H3', file]) },
        // what reading the file alone costs: the page-cache copy into a process, no hashing
        {
          name: 'dd if=IMAGE of=/dev/null bs=1M (page-cache read, whole process)',
          role: 'info',
          units: size,
          run: () => runProcess('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', 'status=none']),
        },
        inProcess('verifyImageAsync(IMAGE) in this process (library, no start-up)', size, async () => {
          if (!(await lib.verifyImageAsync(file)).ok) throw new Error('verify failed');
        }),
      ];
      const { per, rss } = await runAlternating(contenders, { reps, warmup: 1 });
      const { rows, ratios } = summarize(contenders, per, { primary: contenders[0].name, rss });
      const goals = evaluateGoals([{ text: '>= 0.8x xxhsum -H3', kind: 'ratio', vs: [contenders[1].name], atLeast: 0.8 }], rows, ratios);
      return {
        available: true,
        checks,
        rows,
        ratios,
        goals,
        notes: startupNote(rows, contenders[0].name, contenders[1].name, size),
        setup: `A generated image of 1 GiB of populated memory with no zero or duplicate pages (${size} bytes, ${summary.pagesStored} pages), read once beforehand so it is in the page cache. crimg verify checks the magic, every record (kind, length, XXH3 checksum), the index and the trailer; xxhsum -H3 computes one XXH3-64 over the file. Both timed as whole processes. crimg verify reads the file in 1 MiB pieces straight into WebAssembly memory on the libuv thread pool, three reads in flight, and checksums each record while the next pieces are read (the other core copies from the page cache); a second walk then checks the structure from the headers and bitmaps. The page-cache read alone (dd) is the info row.`,
      };
    } finally {
      rmf(file);
    }
  },
};
