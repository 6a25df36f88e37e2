// `crimg dump` of a live process with 1 GiB resident against gdb's `gcore`, both
// writing to the bench directory; then crimg's freeze time with the image on
// tmpfs; and `crimg restore` of the dumped image.
import * as fs from 'node:fs';
import { GiB, median, runAlternating, runProcess, summarize, evaluateGoals, crimgCmd, startupNote } from '../lib/harness.mjs';
import { missingCommands, rmf, tmpPath, startBigmem, bigmemMatches, readProcMem, killPid } from '../lib/fixtures.mjs';
import { imageBytes } from './convert.mjs';

const MIB = 1024;
const SHM = '/dev/shm';

export const dump = {
  name: 'dump',
  title: '`crimg dump` of a process with 1 GiB resident vs `gcore`',
  unit: 'GB/s',
  goalsText: '>= 1.5x gcore; frozen <= 250 ms per GiB with the image on tmpfs',
  async run({ reps }) {
    const miss = missingCommands('dump', 'verify', 'read');
    if (miss) return { available: false, reason: miss };
    const p = await startBigmem(MIB);
    const img = tmpPath('dump.crimg');
    const prefix = tmpPath('dump-core');
    const core = `${prefix}.${p.pid}`;
    const shmImg = `${SHM}/crimg-bench-dump-${process.pid}.crimg`;
    try {
      rmf(img, core);
      const d = JSON.parse(crimgCmd(['dump', String(p.pid), '-o', img, '--json']).stdout);
      let verifyOk = true;
      try {
        crimgCmd(['verify', img]);
      } catch {
        verifyOk = false;
      }
      const offs = [0, p.len / 2, p.len - 4096];
      const pagesOk = offs.every((o) => bigmemMatches(imageBytes(img, p.pid, p.addr + BigInt(o), 4096), o));
      const stillRuns =
        bigmemMatches(readProcMem(p.pid, p.addr + BigInt(p.len / 2), 4096), p.len / 2)
        && fs.readFileSync(`/proc/${p.pid}/stat`, 'utf8').split(') ')[1][0] !== 'T';
      runProcess('gcore', ['-o', prefix, String(p.pid)]);
      const coreOk = fs.existsSync(core) && fs.statSync(core).size >= p.len;
      const checks = [
        { what: `crimg dump wrote an image that passes \`crimg verify\` (${d.bytes} bytes, ${d.pagesStored} pages stored)`, ok: verifyOk },
        { what: 'first, middle and last page of the 1 GiB region in the image hold the pattern', ok: pagesOk },
        { what: 'the process runs on, memory intact, after the dump', ok: stillRuns },
        { what: 'gcore wrote a core of at least 1 GiB', ok: coreOk },
      ];
      if (checks.some((c) => !c.ok)) return { available: true, checks, checkFailed: 'dumps differ' };
      const freezeMs = [];
      const contenders = [
        {
          name: 'crimg dump PID -o IMAGE (whole process)',
          role: 'crimg',
          units: p.len,
          before: () => rmf(img),
          run: () => {
            const r = crimgCmd(['dump', String(p.pid), '-o', img, '--json']);
            freezeMs.push(JSON.parse(r.stdout).freezeMs);
            return r;
          },
        },
        {
          name: 'gcore -o CORE PID',
          role: 'peer',
          units: p.len,
          before: () => rmf(core),
          run: () => runProcess('gcore', ['-o', prefix, String(p.pid)]),
        },
      ];
      const { per, rss } = await runAlternating(contenders, { reps, warmup: 1 });
      rmf(img, core);
      // Freeze time with the image on tmpfs.
      const shmFreeze = [];
      const shmRss = [];
      const shmSecs = [];
      for (let i = 0; i < reps + 1; i++) {
        rmf(shmImg);
        const r = crimgCmd(['dump', String(p.pid), '-o', shmImg, '--json']);
        if (i === 0) continue;
        shmFreeze.push(JSON.parse(r.stdout).freezeMs);
        shmSecs.push(r.seconds);
        if (r.rssKiB) shmRss.push(r.rssKiB);
      }
      rmf(shmImg);
      const perGiB = median(shmFreeze) / (p.len / GiB);
      const { rows, ratios } = summarize(contenders, per, { primary: contenders[0].name, rss });
      rows.push({
        name: 'crimg dump to tmpfs (info)',
        role: 'info',
        median: p.len / median(shmSecs),
        min: p.len / Math.max(...shmSecs),
        max: p.len / Math.min(...shmSecs),
        reps: shmSecs.length,
        peakRssMiB: shmRss.length ? +(Math.max(...shmRss) / 1024).toFixed(1) : undefined,
      });
      const goals = evaluateGoals(
        [
          { text: '>= 1.5x faster than gcore', kind: 'ratio', vs: [contenders[1].name], atLeast: 1.5 },
          { text: 'frozen <= 250 ms per GiB (image on tmpfs)', kind: 'maxValue', value: perGiB, atMost: 250, unit: 'ms/GiB' },
        ],
        rows,
        ratios,
      );
      return {
        available: true,
        checks,
        rows,
        ratios,
        goals,
        freezeMs: { disk: { median: median(freezeMs), all: freezeMs }, tmpfs: { median: median(shmFreeze), all: shmFreeze } },
        setup: `The target: bench/progs/bigmem with ${p.len / GiB} GiB of non-zero anonymous memory, dumped repeatedly while it runs (it is resumed after each dump). crimg dump and gcore write to the bench directory's file system, files removed before each run; both timed as whole processes. Then ${reps} crimg dumps to ${SHM} (tmpfs) for the freeze time crimg reports (target stopped to resumed).`,
        notes: [
          ...startupNote(rows, contenders[0].name, contenders[1].name, p.len),
          `freeze time, image on the bench file system: median ${median(freezeMs).toFixed(1)} ms (${freezeMs.map((x) => x.toFixed(0)).join(', ')})`,
          `freeze time, image on tmpfs: median ${median(shmFreeze).toFixed(1)} ms (${shmFreeze.map((x) => x.toFixed(0)).join(', ')})`,
        ],
      };
    } finally {
      p.kill();
      rmf(img, core, shmImg, p.out);
    }
  },
};

export const restore = {
  name: 'restore',
  title: '`crimg restore` of a 1 GiB image',
  unit: 'GB/s',
  goalsText: '<= 0.5 s per GiB',
  async run({ reps }) {
    const miss = missingCommands('dump', 'restore');
    if (miss) return { available: false, reason: miss };
    const p = await startBigmem(MIB);
    const img = tmpPath('restore.crimg');
    const restored = [];
    try {
      rmf(img);
      crimgCmd(['dump', String(p.pid), '-o', img, '--quiet']);
      p.kill();
      const first = JSON.parse(crimgCmd(['restore', img, '--json']).stdout);
      restored.push(first.pid);
      const offs = [0, p.len / 2, p.len - 4096];
      let memOk = false;
      try {
        memOk = offs.every((o) => bigmemMatches(readProcMem(first.pid, p.addr + BigInt(o), 4096), o));
      } catch {
        /* no such process */
      }
      killPid(first.pid);
      const checks = [
        {
          what: `the restored process (pid ${first.pid}) holds the pattern in the first, middle and last page of its 1 GiB region`,
          ok: memOk,
        },
      ];
      if (!memOk) return { available: true, checks, checkFailed: 'restored memory differs' };
      const inRestore = [];
      const contenders = [
        {
          name: 'crimg restore IMAGE (whole process)',
          role: 'crimg',
          units: p.len,
          before: () => {
            while (restored.length) killPid(restored.pop());
          },
          run: () => {
            const r = crimgCmd(['restore', img, '--json']);
            const j = JSON.parse(r.stdout);
            restored.push(j.pid);
            inRestore.push(j.seconds);
            return r;
          },
        },
      ];
      const { per, rss } = await runAlternating(contenders, { reps, warmup: 1 });
      const { rows, ratios } = summarize(contenders, per, { primary: contenders[0].name, rss });
      const secPerGiB = GiB / rows[0].median;
      const goals = evaluateGoals(
        [{ text: '<= 0.5 s per GiB', kind: 'maxValue', value: secPerGiB, atMost: 0.5, unit: 's/GiB' }],
        rows,
        ratios,
      );
      return {
        available: true,
        checks,
        rows,
        ratios,
        goals,
        notes: [
          ...startupNote(rows, contenders[0].name, null, p.len),
          `restoreImage() itself (the \`seconds\` crimg restore --json reports: image opened to new process let go): median ${(median(inRestore) * 1000).toFixed(0)} ms per GiB`,
        ],
        setup: `The image: crimg dump of bench/progs/bigmem with ${p.len / GiB} GiB of non-zero anonymous memory (then killed). Each run restores it as a new process, timed as a whole \`crimg restore\` process until it prints the new pid; the restored process is killed before the next run.`,
      };
    } finally {
      p.kill();
      while (restored.length) killPid(restored.pop());
      rmf(img, p.out);
    }
  },
};
