// Peak RSS of crimg commands over 4 GiB: gen, verify, convert (both ways) and
// dump. Each command runs once under GNU time (%M = peak resident set).
import * as fs from 'node:fs';
import { GiB, crimgCmd } from '../lib/harness.mjs';
import { cliCommands, rmf, tmpPath, startBigmem } from '../lib/fixtures.mjs';

const LIMIT_MIB = 128;

export const rss = {
  name: 'rss-4g',
  title: 'peak RSS of gen / verify / convert / dump over 4 GiB',
  unit: 'GB/s',
  goalsText: '< 128 MiB each',
  async run() {
    if (!fs.existsSync('/usr/bin/time'))
      return { available: false, reason: 'GNU time (/usr/bin/time) is not installed: apt-get install -y time' };
    const have = cliCommands();
    const img = tmpPath('rss-4g.crimg');
    const core = tmpPath('rss-4g.core');
    const back = tmpPath('rss-4g-back.crimg');
    const dumped = tmpPath('rss-4g-dump.crimg');
    const rows = [];
    const notes = [];
    const measure = (name, args, units, cleanup = []) => {
      rmf(...cleanup);
      const r = crimgCmd(args);
      rows.push({
        name,
        role: 'crimg',
        median: units / r.seconds,
        min: units / r.seconds,
        max: units / r.seconds,
        reps: 1,
        peakRssMiB: +(r.rssKiB / 1024).toFixed(1),
      });
      return r;
    };
    try {
      measure('crimg gen --size 4GiB -o /dev/null', ['gen', '--size', '4GiB', '-o', '/dev/null', '--quiet'], 4 * GiB);
      measure('crimg gen --size 4GiB -o FILE', ['gen', '--size', '4GiB', '--zero-ratio', '0', '-o', img, '--quiet'], 4 * GiB, [img]);
      measure('crimg verify (4 GiB image)', ['verify', img], fs.statSync(img).size);
      if (have.has('convert')) {
        try {
          measure('crimg convert image -> ELF core', ['convert', img, '--to', 'elf', '-o', core, '--quiet'], fs.statSync(img).size, [core]);
          rmf(img);
          measure('crimg convert ELF core -> image', ['convert', core, '-o', back, '--quiet'], fs.statSync(core).size, [back]);
        } catch (e) {
          notes.push(`convert: ${String(e.message).split('\n')[0]}`);
        }
      } else notes.push('convert: the CLI has no `convert` command yet');
      rmf(img, core, back);
      if (have.has('dump')) {
        const p = await startBigmem(4096);
        try {
          measure('crimg dump (process with 4 GiB resident)', ['dump', String(p.pid), '-o', dumped, '--quiet'], p.len, [dumped]);
        } catch (e) {
          notes.push(`dump: ${String(e.message).split('\n')[0]}`);
        } finally {
          p.kill();
          rmf(dumped, p.out);
        }
      } else notes.push('dump: the CLI has no `dump` command yet');
    } finally {
      rmf(img, core, back, dumped);
    }
    const worst = rows.reduce((a, b) => (b.peakRssMiB > a.peakRssMiB ? b : a));
    const goals = rows.map((r) => ({
      text: `${r.name}: peak RSS < ${LIMIT_MIB} MiB`,
      value: r.peakRssMiB,
      target: LIMIT_MIB,
      unit: 'MiB',
      met: r.peakRssMiB < LIMIT_MIB,
    }));
    for (const n of notes) goals.push({ text: n, value: null, met: null });
    return {
      available: true,
      checks: [],
      rows,
      ratios: [],
      goals,
      notes,
      worstRssMiB: worst.peakRssMiB,
      setup:
        'Each command runs once over 4 GiB (gen: 4 GiB of populated memory; verify and convert: the generated image with no zero pages; dump: bench/progs/bigmem with 4 GiB resident). Peak RSS from GNU time (%M) of the whole node process; throughput is informational (one run).',
    };
  },
};
