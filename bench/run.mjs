#!/usr/bin/env node
// crimg benchmarks: `npm run bench [-- PATTERN] [--quick]`.
// Runs every case whose name matches PATTERN (a regular expression; default: all),
// writes bench/results/<case>.json, then rebuilds bench/results/latest.md and the
// README section between <!-- bench:begin --> and <!-- bench:end --> from all
// the case results present. Method, cases and goals: docs/BENCH.md.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  TMP, RESULTS, machine, writeCaseResult, readAllResults, latestMarkdown, updateReadme,
} from './lib/harness.mjs';
import { xxh3Whole, xxh3Pages } from './cases/xxh3.mjs';
import { pagesPack } from './cases/pages.mjs';
import { regsPack } from './cases/regs.mjs';
import { genNull, genFile, genSmall } from './cases/gen.mjs';
import { verify } from './cases/verify.mjs';
import { convert } from './cases/convert.mjs';
import { dump } from './cases/dump.mjs';
import { rss } from './cases/rss.mjs';

export const CASES = [xxh3Whole, xxh3Pages, pagesPack, regsPack, genNull, genFile, genSmall, verify, convert, dump, rss];

function parseArgs(argv) {
  const o = { pattern: null, quick: false, list: false };
  for (const a of argv) {
    if (a === '--quick') o.quick = true;
    else if (a === '--list') o.list = true;
    else if (a === '--help' || a === '-h') o.help = true;
    else if (o.pattern === null) o.pattern = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  return o;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.help) {
    process.stdout.write('usage: npm run bench [-- PATTERN] [--quick] [--list]\n  PATTERN  regular expression on case names\n  --quick  fewer repetitions (smoke run)\n  --list   list the cases\n');
    return;
  }
  if (o.list) { for (const c of CASES) process.stdout.write(`${c.name.padEnd(14)} ${c.title}\n`); return; }
  const re = o.pattern ? new RegExp(o.pattern) : null;
  const selected = CASES.filter((c) => !re || re.test(c.name));
  if (!selected.length) throw new Error(`no case matches ${o.pattern}; cases: ${CASES.map((c) => c.name).join(', ')}`);
  fs.mkdirSync(TMP, { recursive: true });
  const m = machine();
  process.stderr.write(`machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.kernel}, node ${m.node}\n`);
  const ctx = { rounds: o.quick ? 2 : 5, reps: o.quick ? 2 : 5, quick: o.quick };
  let failures = 0;
  for (const c of selected) {
    const t0 = Date.now();
    process.stderr.write(`${c.name}: ${c.title} ... `);
    let res;
    try {
      res = await c.run(ctx);
    } catch (e) {
      res = { available: false, reason: `error: ${String(e?.message ?? e).split('\n')[0]}` };
      if (process.env.CRIMG_BENCH_DEBUG) console.error(e);
    }
    const full = {
      case: c.name, title: c.title, unit: c.unit, goalsText: c.goalsText, date: new Date().toISOString(), machine: m,
      seconds: +((Date.now() - t0) / 1000).toFixed(1), ...res,
    };
    writeCaseResult(full);
    if (res.checkFailed) failures++;
    const summary = !res.available ? `not available (${res.reason})`
      : res.checkFailed ? `CHECK FAILED (${res.checkFailed})`
        : (res.goals ?? []).map((g) => `${g.text}: ${g.met === true ? 'met' : g.met === false ? 'MISSED' : 'n/a'}`).join('; ');
    process.stderr.write(`${full.seconds} s: ${summary}\n`);
  }
  const order = new Map(CASES.map((c, i) => [c.name, i]));
  const all = readAllResults().filter((r) => order.has(r.case)).sort((a, b) => order.get(a.case) - order.get(b.case));
  fs.writeFileSync(path.join(RESULTS, 'latest.md'), latestMarkdown(all, m));
  updateReadme(all, m);
  process.stderr.write(`results: ${path.relative(process.cwd(), path.join(RESULTS, 'latest.md'))}\n`);
  if (failures) process.exitCode = 1;
}

await main();
