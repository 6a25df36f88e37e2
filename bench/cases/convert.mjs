// `crimg convert` of a 1 GiB ELF core (made by gdb's gcore from a process with
// 1 GiB resident) to a crimg image, against `cp` of the same core.
import * as fs from 'node:fs';
import { GiB, runAlternating, runProcess, summarize, evaluateGoals, crimgCmd } from '../lib/harness.mjs';
import { missingCommands, rmf, tmpPath, startBigmem, bigmemMatches, warmFile } from '../lib/fixtures.mjs';

/** gcore of a fresh bigmem process of `mib` MiB: { core, pid, addr, len }. The process is gone afterwards. */
export async function gcoreFixture(name, mib) {
  const p = await startBigmem(mib);
  try {
    const prefix = tmpPath(name);
    const core = `${prefix}.${p.pid}`;
    rmf(core);
    runProcess('gcore', ['-o', prefix, String(p.pid)]);
    if (!fs.existsSync(core)) throw new Error(`gcore wrote no ${core}`);
    return { core, pid: p.pid, addr: p.addr, len: p.len };
  } finally { p.kill(); rmf(p.out); }
}

/** Pages of `len` bytes at `addr` of task `pid` in an image, read with `crimg read`. */
export function imageBytes(file, pid, addr, len) {
  return Buffer.from(crimgCmd(['read', file, '--pid', String(pid), '--addr', `0x${addr.toString(16)}`, '--len', String(len)], { binary: true }).stdoutBuf);
}

export const convert = {
  name: 'convert',
  title: '`crimg convert` of a 1 GiB ELF core (from gcore) vs `cp` of the core',
  unit: 'GB/s',
  goalsText: '>= 0.8x cp',
  async run({ reps }) {
    const miss = missingCommands('convert', 'verify', 'read');
    if (miss) return { available: false, reason: miss };
    const fx = await gcoreFixture('convert-core', 1024);
    const out = tmpPath('convert-out.crimg');
    const copy = tmpPath('convert-copy.core');
    try {
      warmFile(fx.core);
      const size = fs.statSync(fx.core).size;
      rmf(out);
      crimgCmd(['convert', fx.core, '-o', out, '--quiet']);
      let verifyOk = true;
      try { crimgCmd(['verify', out]); } catch { verifyOk = false; }
      const offs = [0, fx.len / 2, fx.len - 4096];
      const pagesOk = offs.every((o) => bigmemMatches(imageBytes(out, fx.pid, fx.addr + BigInt(o), 4096), o));
      rmf(copy);
      runProcess('cp', [fx.core, copy]);
      const cpOk = fs.statSync(copy).size === size;
      const checks = [
        { what: 'the converted image passes `crimg verify`', ok: verifyOk },
        { what: 'first, middle and last page of the 1 GiB region read back from the image with `crimg read` hold the pattern', ok: pagesOk },
        { what: `cp wrote all ${size} bytes`, ok: cpOk },
      ];
      if (checks.some((c) => !c.ok)) return { available: true, checks, checkFailed: 'conversion differs' };
      const contenders = [
        { name: 'crimg convert CORE -o IMAGE (whole process)', role: 'crimg', units: size, before: () => rmf(out), run: () => crimgCmd(['convert', fx.core, '-o', out, '--quiet']) },
        { name: 'cp CORE COPY', role: 'peer', units: size, before: () => rmf(copy), run: () => runProcess('cp', [fx.core, copy]) },
      ];
      const { per, rss } = await runAlternating(contenders, { reps, warmup: 1 });
      const { rows, ratios } = summarize(contenders, per, { primary: contenders[0].name, rss });
      const goals = evaluateGoals([{ text: '>= 0.8x cp', kind: 'ratio', vs: [contenders[1].name], atLeast: 0.8 }], rows, ratios);
      return {
        available: true, checks, rows, ratios, goals,
        setup: `The core: gcore of a process with ${fx.len / GiB} GiB of non-zero anonymous memory (${size} bytes, in the page cache). crimg convert parses the ELF notes and segments and writes a checksummed image; cp copies the file. Outputs go to the bench directory's file system and are removed before each run. Throughput counts core bytes.`,
      };
    } finally { rmf(fx.core, out, copy); }
  },
};
