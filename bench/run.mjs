#!/usr/bin/env node
// crimg benchmarks: `npm run bench [-- PATTERN] [--quick]`.
// Runs every case whose name matches PATTERN (a regular expression; default: all),
// writes bench/results/<case>.json, then rebuilds bench/results/latest.md and the
// README section between <!-- bench:begin --> and <!-- bench:end --> from all
// the case results present. Method, cases and goals: bench/README.md.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TMP, RESULTS, machine, writeCaseResult, readAllResults, latestMarkdown, updateReadme } from './lib/harness.mjs';
import { xxh3Whole, xxh3Pages } from './cases/xxh3.mjs';
import { pagesPack, pagesPackZero } from './cases/pages.mjs';
import { regsPack } from './cases/regs.mjs';
import { genNull, genFile, genSmall } from './cases/gen.mjs';
import { verify } from './cases/verify.mjs';
import { convert } from './cases/convert.mjs';
import { dump, restore } from './cases/dump.mjs';
import { rss } from './cases/rss.mjs';

export const CASES = [
  xxh3Whole,
  xxh3Pages,
  pagesPack,
  pagesPackZero,
  regsPack,
  genNull,
  genFile,
  genSmall,
  verify,
  convert,
  dump,
  restore,
  rss,
];

function parseArgs(argv) {
  const o = { pattern: null, quick: false, list: false, child: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') o.quick = true;
    else if (a === '--list') o.list = true;
    else if (a === '--report') o.report = true;
    else if (a === '--help' || a === '-h') o.help = true;
    else if (a === '--case') o.child = argv[++i];
    else if (o.pattern === null) o.pattern = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  return o;
}

/** Run one case in this process and write its result file (the child side). */
async function runCase(c, o, m) {
  const ctx = { rounds: o.quick ? 2 : 5, reps: o.quick ? 2 : 5, quick: o.quick };
  const t0 = Date.now();
  const loadBefore = os.loadavg()[0];
  let res;
  try {
    res = await c.run(ctx);
  } catch (e) {
    res = { available: false, reason: `error: ${String(e?.message ?? e).split('\n')[0]}` };
    if (process.env.CRIMG_BENCH_DEBUG) console.error(e);
  }
  const full = {
    case: c.name,
    title: c.title,
    unit: c.unit,
    goalsText: c.goalsText,
    date: new Date().toISOString(),
    machine: m,
    seconds: +((Date.now() - t0) / 1000).toFixed(1),
    load: [+loadBefore.toFixed(2), +os.loadavg()[0].toFixed(2)],
    ...res,
  };
  writeCaseResult(full);
  return full;
}

function summaryLine(full) {
  return !full.available
    ? `not available (${full.reason})`
    : full.checkFailed
      ? `CHECK FAILED (${full.checkFailed})`
      : (full.goals ?? []).map((g) => `${g.text}: ${g.met === true ? 'met' : g.met === false ? 'MISSED' : 'n/a'}`).join('; ');
}

function writeReports(m) {
  const order = new Map(CASES.map((c, i) => [c.name, i]));
  const all = readAllResults()
    .filter((r) => order.has(r.case))
    .sort((a, b) => order.get(a.case) - order.get(b.case));
  fs.writeFileSync(path.join(RESULTS, 'latest.md'), latestMarkdown(all, m));
  updateReadme(all, m);
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.help) {
    process.stdout.write(
      'usage: npm run bench [-- PATTERN] [--quick] [--list] [--report]\n  PATTERN  regular expression on case names\n  --quick  fewer repetitions (smoke run)\n  --list   list the cases\n  --report rebuild results/latest.md and the README table from the result files, run nothing\n',
    );
    return;
  }
  if (o.list) {
    for (const c of CASES) process.stdout.write(`${c.name.padEnd(14)} ${c.title}\n`);
    return;
  }
  const m = machine();
  if (o.child) {
    const c = CASES.find((x) => x.name === o.child);
    if (!c) throw new Error(`no case ${o.child}`);
    await runCase(c, o, m);
    process.exit(0); // do not wait for stray handles (peer pipes, timers)
  }
  if (o.report) {
    writeReports(m);
    return;
  }
  const re = o.pattern ? new RegExp(o.pattern) : null;
  const selected = CASES.filter((c) => !re || re.test(c.name));
  if (!selected.length) throw new Error(`no case matches ${o.pattern}; cases: ${CASES.map((c) => c.name).join(', ')}`);
  fs.mkdirSync(TMP, { recursive: true });
  process.stderr.write(`machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.kernel}, node ${m.node}\n`);
  let failures = 0;
  const t0 = Date.now();
  for (const c of selected) {
    process.stderr.write(`${c.name}: ${c.title} ... `);
    // Each case runs in a fresh node process: no memory, JIT state or page-cache
    // pressure carried over from the previous case, and a small process to fork
    // the whole-command contenders from.
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--case', c.name, ...(o.quick ? ['--quick'] : [])], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    let full;
    try {
      full = JSON.parse(fs.readFileSync(path.join(RESULTS, `${c.name}.json`), 'utf8'));
    } catch {
      full = null;
    }
    if (r.status !== 0 || !full || Date.parse(full.date) < t0) {
      full = {
        case: c.name,
        title: c.title,
        unit: c.unit,
        goalsText: c.goalsText,
        date: new Date().toISOString(),
        machine: m,
        available: false,
        reason: `error: case process exited ${r.status ?? r.signal}`,
      };
      writeCaseResult(full);
    }
    if (full.checkFailed) failures++;
    process.stderr.write(`${full.seconds ?? '?'} s: ${summaryLine(full)}\n`);
  }
  writeReports(m);
  process.stderr.write(
    `total ${((Date.now() - t0) / 1000).toFixed(0)} s; results: ${path.relative(process.cwd(), path.join(RESULTS, 'latest.md'))}\n`,
  );
  if (failures) process.exitCode = 1;
}

await main();
