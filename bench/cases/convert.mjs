// `crimg convert` of a 1 GiB ELF core (made by gdb's gcore from a process with
// 1 GiB resident) to a crimg image, against `cp` of the same core.
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { GiB, runAlternating, runProcess, summarize, evaluateGoals, crimgCmd, inProcess, startupNote } from '../lib/harness.mjs';
import { createHash } from 'node:crypto';
import { missingCommands, rmf, tmpPath, startBigmem, bigmemMatches, warmFile, eachChunk } from '../lib/fixtures.mjs';

function fileHash(file) {
  const h = createHash('sha256');
  eachChunk(file, (b) => h.update(b));
  return h.digest('hex');
}

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
  } finally {
    p.kill();
    rmf(p.out);
  }
}

/**
 * How cp moves the bytes, from `strace -c -f` of one copy: the data system calls it made
 * (copy_file_range and friends copy inside the kernel, page cache to page cache, without
 * the bytes passing through user space; read/write pairs do not). null without strace.
 */
export function cpMethod(src, dst) {
  const r = spawnSync('strace', ['-c', '-f', '-e', 'trace=read,write,copy_file_range,sendfile,splice,ioctl,fallocate', 'cp', src, dst], {
    encoding: 'utf8',
  });
  if (r.error || r.status !== 0) return null;
  const calls = {};
  for (const line of String(r.stderr).split('\n')) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\w+)\s*$/.exec(line);
    if (m && m[3] !== 'total') calls[m[3]] = { calls: Number(m[1]), errors: Number(m[2] ?? 0) };
  }
  return calls;
}

/** Pages of `len` bytes at `addr` of task `pid` in an image, read with `crimg read`. */
export function imageBytes(file, pid, addr, len) {
  return Buffer.from(
    crimgCmd(['read', file, '--pid', String(pid), '--addr', `0x${addr.toString(16)}`, '--len', String(len)], { binary: true }).stdoutBuf,
  );
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
      try {
        crimgCmd(['verify', out]);
      } catch {
        verifyOk = false;
      }
      const offs = [0, fx.len / 2, fx.len - 4096];
      const pagesOk = offs.every((o) => bigmemMatches(imageBytes(out, fx.pid, fx.addr + BigInt(o), 4096), o));
      rmf(copy);
      const how = cpMethod(fx.core, copy);
      rmf(copy);
      runProcess('cp', [fx.core, copy]);
      const cpOk = fs.statSync(copy).size === size;
      const lib = await import('../../dist/index.js');
      const cliHash = fileHash(out);
      rmf(out);
      const core0 = lib.fromElfCore(fx.core);
      try {
        await lib.writeImage(core0.model, out);
      } finally {
        core0.close();
      }
      const libSame = fileHash(out) === cliHash;
      const checks = [
        { what: 'fromElfCore + writeImage in process writes the same image as `crimg convert`', ok: libSame },
        { what: 'the converted image passes `crimg verify`', ok: verifyOk },
        {
          what: 'first, middle and last page of the 1 GiB region read back from the image with `crimg read` hold the pattern',
          ok: pagesOk,
        },
        { what: `cp wrote all ${size} bytes`, ok: cpOk },
      ];
      if (checks.some((c) => !c.ok)) return { available: true, checks, checkFailed: 'conversion differs' };
      const contenders = [
        {
          name: 'crimg convert CORE -o IMAGE (whole process)',
          role: 'crimg',
          units: size,
          before: () => rmf(out),
          run: () => crimgCmd(['convert', fx.core, '-o', out, '--quiet']),
        },
        { name: 'cp CORE COPY', role: 'peer', units: size, before: () => rmf(copy), run: () => runProcess('cp', [fx.core, copy]) },
        inProcess(
          'fromElfCore(CORE) + writeImage(IMAGE) in this process (library, no start-up)',
          size,
          async () => {
            const core = lib.fromElfCore(fx.core);
            try {
              await lib.writeImage(core.model, out);
            } finally {
              core.close();
            }
          },
          () => rmf(out),
        ),
      ];
      const { per, rss } = await runAlternating(contenders, { reps, warmup: 1 });
      const { rows, ratios } = summarize(contenders, per, { primary: contenders[0].name, rss });
      const goals = evaluateGoals([{ text: '>= 0.8x cp', kind: 'ratio', vs: [contenders[1].name], atLeast: 0.8 }], rows, ratios);
      const kernelCopy = how && ['copy_file_range', 'sendfile', 'splice'].filter((c) => how[c] && how[c].calls > how[c].errors);
      const clone = how?.ioctl
        ? how.ioctl.errors >= how.ioctl.calls
          ? ' after a reflink attempt (FICLONE ioctl) that the file system refused'
          : ' and an ioctl (a reflink: no data copied at all)'
        : '';
      const cpNote = !how
        ? 'How cp copies was not checked (no strace).'
        : kernelCopy.length
          ? `cp copied with ${kernelCopy.map((c) => `${c} (${how[c].calls} calls)`).join(', ')}${clone} (strace -c of one copy): the kernel moves the bytes from page cache to page cache and they never pass through user space. A converter cannot do that: it must read every byte into memory (zero-page check, XXH3 checksum of each record) and write them in another layout, so crimg's floor is one read plus one write of 1 GiB where cp's is one in-kernel copy.`
          : `cp copied with read/write (${how.read?.calls ?? 0} reads, ${how.write?.calls ?? 0} writes${clone}; strace -c of one copy), through user space like crimg.`;
      return {
        available: true,
        checks,
        rows,
        ratios,
        goals,
        notes: startupNote(rows, contenders[0].name, contenders[1].name, size),
        setup: `The core: gcore of a process with ${fx.len / GiB} GiB of non-zero anonymous memory (${size} bytes, in the page cache). crimg convert parses the ELF notes and segments and writes a checksummed image; cp copies the file. Outputs go to the bench directory's file system and are removed before each run. Throughput counts core bytes. ${cpNote}`,
      };
    } finally {
      rmf(fx.core, out, copy);
    }
  },
};
