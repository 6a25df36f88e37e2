// The bench harness: machine description, alternating runners (in-process on
// tinybench, whole processes timed from outside), statistics, goal evaluation.
// Plain ESM JavaScript: it runs against the built package (../../dist).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const RESULTS = path.join(ROOT, 'bench', 'results');
export const TMP = path.join(RESULTS, 'tmp');
// the package's bin (dist/cli/crimg.cjs: the bundled command line), as `npm install` links it
export const CLI = path.join(ROOT, JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).bin.crimg);
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

// ------------------------------------------------------------------ machine

export function machine() {
  let cpu = 'unknown';
  let flags = '';
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    cpu = /^model name\s*:\s*(.*)$/m.exec(info)?.[1]?.trim() ?? cpu;
    flags = /^flags\s*:\s*(.*)$/m.exec(info)?.[1] ?? '';
  } catch {
    /* not Linux */
  }
  const simd = ['sse4_2', 'avx2', 'avx512f', 'avx512bw'].filter((f) => flags.split(/\s+/).includes(f));
  return {
    cpu,
    simd: simd.join(' '),
    cores: os.cpus().length,
    memoryGiB: +(os.totalmem() / GiB).toFixed(1),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    v8: process.versions.v8,
  };
}

// ------------------------------------------------------------------ statistics

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}
const min = (xs) => Math.min(...xs);
const max = (xs) => Math.max(...xs);

/** Rotate an array by r so that each contender leads some rounds. */
function rotate(a, r) {
  const k = r % a.length;
  return r % 2 ? [...a.slice(k), ...a.slice(0, k)].reverse() : [...a.slice(k), ...a.slice(0, k)];
}

// ------------------------------------------------------------------ runners

/**
 * In-process contenders, timed by tinybench. Each round builds one Bench with the
 * contenders in a rotated order (so none always runs first or last), warms each up
 * and samples it for `time` ms; the round's figure for a contender is its median
 * sample. Returns, per contender, the per-round throughputs (units per second).
 * contender: { name, role: 'crimg'|'peer'|'limit'|'info', units, fn }
 */
export async function runInProcess(contenders, { rounds = 5, time = 150, warmupTime = 60 } = {}) {
  const per = new Map(contenders.map((c) => [c.name, []]));
  for (let r = 0; r < rounds; r++) {
    const bench = new Bench({ time, warmupTime, warmupIterations: 3, iterations: 5, throws: true });
    for (const c of rotate(contenders, r)) bench.add(c.name, c.fn);
    await bench.run();
    for (const t of bench.tasks) {
      const res = t.result;
      if (res.state !== 'completed') throw new Error(`${t.name}: ${res.state}${res.error ? `: ${res.error.message}` : ''}`);
      const c = contenders.find((x) => x.name === t.name);
      per.get(t.name).push(c.units / (res.latency.p50 / 1000));
    }
  }
  return per;
}

/**
 * Contenders timed one run at a time (whole processes, or in-process steps such as a
 * 1 GiB copy timed with hrtime), alternating: every repetition runs each contender
 * once, in an order that alternates between repetitions, after `warmup` untimed runs.
 * contender: { name, role, units, run(): { seconds, rssKiB? } (or a promise of it), before?(): void }
 */
export async function runAlternating(contenders, { reps = 5, warmup = 1 } = {}) {
  const per = new Map(contenders.map((c) => [c.name, []]));
  const rss = new Map(contenders.map((c) => [c.name, []]));
  for (let w = 0; w < warmup; w++)
    for (const c of contenders) {
      await c.before?.();
      await c.run();
    }
  for (let r = 0; r < reps; r++) {
    for (const c of rotate(contenders, r)) {
      await c.before?.();
      const { seconds, rssKiB } = await c.run();
      per.get(c.name).push(c.units / seconds);
      if (rssKiB) rss.get(c.name).push(rssKiB);
    }
  }
  return { per, rss };
}

/** Time one hrtime step. */
export function timed(fn) {
  const t0 = process.hrtime.bigint();
  fn();
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

const GNU_TIME = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : null;

/**
 * Run a command to completion, timed from outside; peak RSS from GNU time's %M
 * (the wrapper adds the same ~1 ms to every contender). Throws on a non-zero exit.
 */
export function runProcess(cmd, args, { env, cwd = ROOT, input } = {}) {
  const rssFile = path.join(TMP, `rss-${process.pid}.txt`);
  const argv = GNU_TIME ? ['-f', '%M', '-o', rssFile, cmd, ...args] : args;
  const t0 = process.hrtime.bigint();
  const r = spawnSync(GNU_TIME ?? cmd, argv, {
    cwd,
    env: { ...process.env, ...env },
    input,
    maxBuffer: 64 * MiB,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.error) throw r.error;
  if (r.status !== 0) {
    throw new Error(
      `${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}: ${String(r.stderr).trim().split('\n').slice(-3).join(' | ')}`,
    );
  }
  let rssKiB;
  if (GNU_TIME) {
    try {
      rssKiB = Number(fs.readFileSync(rssFile, 'utf8').trim().split('\n').pop());
    } catch {
      /* ignore */
    }
    fs.rmSync(rssFile, { force: true });
  }
  return { seconds, rssKiB, stdout: String(r.stdout), stdoutBuf: r.stdout, stderr: String(r.stderr) };
}

/** `node dist/cli/crimg.cjs ARGS...` (the bin) as a contender step. */
export function crimgCmd(args, opts) {
  return runProcess(process.execPath, [CLI, ...args], opts);
}

/**
 * A contender that runs the library in this process (no start-up), for an info row beside a whole-process crimg
 * command: what the same work costs without launching node.
 */
export function inProcess(name, units, fn, before) {
  return {
    name,
    role: 'info',
    units,
    before,
    run: async () => {
      const t0 = process.hrtime.bigint();
      await fn();
      return { seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
    },
  };
}

let startupCache = null;
/** Median seconds of `node -e 0` and of `crimg --version` (5 runs each, once per bench run). */
export function startupCost() {
  if (!startupCache) {
    const med = (f) => median(Array.from({ length: 5 }, () => f().seconds));
    startupCache = { node: med(() => runProcess(process.execPath, ['-e', '0'])), crimg: med(() => crimgCmd(['--version'])) };
  }
  return startupCache;
}

/**
 * A note for a whole-process case: the share of crimg's median time that is start-up (`crimg --version`), and the
 * ratio to `peerName` (a row of `rows`) once that is taken out. Nothing when the rows are missing.
 */
export function startupNote(rows, crimgName, peerName, units, unitName = 'GB/s') {
  const c = rows.find((r) => r.name === crimgName);
  const p = peerName ? rows.find((r) => r.name === peerName) : null;
  if (!c) return [];
  const st = startupCost();
  const secs = units / c.median;
  const work = Math.max(secs - st.crimg, 1e-6);
  const peerPart = p
    ? `; without it crimg would run at ${fmtThroughput(units / work, unitName)}, ${(units / work / p.median).toFixed(2)}x ${p.name}`
    : '';
  return [
    `start-up: \`node -e 0\` ${(st.node * 1000).toFixed(0)} ms, \`crimg --version\` ${(st.crimg * 1000).toFixed(0)} ms, ${((100 * st.crimg) / secs).toFixed(0)}% of crimg's median ${(secs * 1000).toFixed(0)} ms${peerPart}`,
  ];
}

// ------------------------------------------------------------------ results

/**
 * Turn per-repetition throughputs into rows and ratios. `primary` names the crimg
 * contender that ratios are taken from. Ratio per repetition = crimg / other in the
 * same repetition; reported as median and min–max.
 */
export function summarize(contenders, per, { primary, rss } = {}) {
  const rows = contenders.map((c) => {
    const xs = per.get(c.name);
    const row = { name: c.name, role: c.role, median: median(xs), min: min(xs), max: max(xs), reps: xs.length };
    if (c.note) row.note = c.note;
    const r = rss?.get(c.name);
    if (r?.length) row.peakRssMiB = +(max(r) / 1024).toFixed(1);
    return row;
  });
  const base = per.get(primary);
  const ratios = [];
  if (base) {
    for (const c of contenders) {
      if (c.name === primary || c.role === 'crimg' || c.role === 'info') continue;
      const xs = per.get(c.name);
      const rs = base.map((b, i) => b / xs[i]);
      ratios.push({ crimg: primary, vs: c.name, median: median(rs), min: min(rs), max: max(rs) });
    }
  }
  return { rows, ratios };
}

/**
 * Goals: { text, kind: 'ratio', vs: [names] (the fastest of them by median), atLeast }
 *        { text, kind: 'abs', of: name, atLeast }      throughput in the case's unit base
 *        { text, kind: 'maxValue', value, atMost, unit }  any measured value (RSS, freeze)
 */
export function evaluateGoals(goals, rows, ratios) {
  return goals.map((g) => {
    if (g.kind === 'ratio') {
      const cands = rows.filter((r) => g.vs.includes(r.name));
      if (!cands.length) return { ...g, met: null, value: null, detail: 'peer not measured' };
      const fastest = cands.reduce((a, b) => (b.median > a.median ? b : a));
      const ratio = ratios.find((x) => x.vs === fastest.name);
      return {
        text: g.text,
        against: fastest.name,
        value: ratio.median,
        min: ratio.min,
        max: ratio.max,
        target: g.atLeast,
        met: ratio.median >= g.atLeast,
      };
    }
    if (g.kind === 'abs') {
      const row = rows.find((r) => r.name === g.of);
      return { text: g.text, value: row?.median ?? null, target: g.atLeast, met: row ? row.median >= g.atLeast : null };
    }
    if (g.kind === 'maxValue') {
      return { text: g.text, value: g.value, target: g.atMost, unit: g.unit, met: g.value == null ? null : g.value <= g.atMost };
    }
    throw new Error(`unknown goal kind ${g.kind}`);
  });
}

export function writeCaseResult(res) {
  fs.mkdirSync(RESULTS, { recursive: true });
  fs.writeFileSync(path.join(RESULTS, `${res.case}.json`), `${JSON.stringify(res, null, 2)}\n`);
}

export function readAllResults() {
  if (!fs.existsSync(RESULTS)) return [];
  return fs
    .readdirSync(RESULTS)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      try {
        return JSON.parse(fs.readFileSync(path.join(RESULTS, f), 'utf8'));
      } catch {
        return null;
      }
    })
    .filter(Boolean);
}

// ------------------------------------------------------------------ formatting

export function fmtThroughput(v, unit) {
  if (v == null || !Number.isFinite(v)) return '-';
  if (unit === 'GB/s') return `${(v / 1e9).toFixed(2)} GB/s`;
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)} M ${unit}`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)} k ${unit}`;
  return `${v.toFixed(1)} ${unit}`;
}

export function fmtRatio(r) {
  if (!r) return '-';
  return `${r.median.toFixed(2)}x (${r.min.toFixed(2)}–${r.max.toFixed(2)})`;
}

function fmtGoalValue(g, unit) {
  if (g.value == null) return '-';
  if (g.against) return `${g.value.toFixed(2)}x vs ${g.against} (${g.min.toFixed(2)}–${g.max.toFixed(2)})`;
  if (g.unit) return `${g.value.toFixed(g.value < 10 ? 2 : g.value < 100 ? 1 : 0)} ${g.unit}`;
  return fmtThroughput(g.value, unit);
}

/** One table cell: no pipes or newlines, at most 200 characters. */
const short = (t) => {
  const s = String(t).replace(/[|\n]/g, ' ');
  return s.length > 200 ? `${s.slice(0, 197)}...` : s;
};

const mark = (met) => (met === true ? 'met' : met === false ? '**missed**' : 'n/a');

/** One markdown table of every goal of every case (for README and the top of latest.md). */
export function goalsTable(results) {
  const lines = ['| case | goal | measured | |', '|---|---|---|---|'];
  for (const r of results) {
    if (!r.available) {
      lines.push(`| ${r.case} | ${r.goalsText ?? '-'} | ${short(r.reason)} | n/a |`);
      continue;
    }
    if (r.checkFailed) {
      lines.push(`| ${r.case} | - | check failed: ${r.checkFailed} | **failed** |`);
      continue;
    }
    for (const g of r.goals ?? []) lines.push(`| ${r.case} | ${short(g.text)} | ${fmtGoalValue(g, r.unit)} | ${mark(g.met)} |`);
  }
  return lines.join('\n');
}

function machineLine(m) {
  return `${m.cpu} (${m.simd}), ${m.cores} cores, ${m.memoryGiB} GiB, ${m.kernel}, node ${m.node}`;
}

/** The readable report: machine, goals, then one table per case. */
export function latestMarkdown(results, m) {
  const out = [];
  out.push('# crimg benchmarks: latest results', '');
  out.push(`Machine: ${machineLine(m)}.`, '');
  out.push('Generated by `npm run bench` (bench/run.mjs); method and cases in [bench/README.md](../README.md).', '');
  out.push('## Goals', '', goalsTable(results), '', loadLine(results), '');
  for (const r of results) {
    out.push(`## ${r.case}: ${r.title}`, '');
    out.push(
      `Run ${r.date}${r.machine && machineLine(r.machine) !== machineLine(m) ? ` on ${machineLine(r.machine)}` : ''}, ${r.seconds} s${r.load ? `; 1-minute load average ${r.load[0]} before, ${r.load[1]} after (2 cores: above 2, other work shared the CPUs)` : ''}.`,
      '',
    );
    if (!r.available) {
      out.push(`Not available yet: ${r.reason}`, '');
      continue;
    }
    if (r.setup) out.push(r.setup, '');
    for (const c of r.checks ?? []) out.push(`- check: ${c.what}: ${c.ok ? 'ok' : `**FAILED** ${c.detail ?? ''}`}`);
    if (r.checks?.length) out.push('');
    if (r.checkFailed) {
      out.push(`Timing skipped: check failed (${r.checkFailed}).`, '');
      continue;
    }
    const hasRss = r.rows.some((x) => x.peakRssMiB != null);
    out.push(`| implementation | role | median | min–max | crimg/this (min–max)${hasRss ? ' | peak RSS' : ''} |`);
    out.push(`|---|---|---|---|---|${hasRss ? '---|' : ''}`);
    for (const row of r.rows) {
      const ratio = r.ratios.find((x) => x.vs === row.name);
      out.push(
        `| ${row.name}${row.note ? ` (${row.note})` : ''} | ${row.role} | ${fmtThroughput(row.median, r.unit)} | ${fmtThroughput(row.min, r.unit)}–${fmtThroughput(row.max, r.unit)} | ${ratio ? fmtRatio(ratio) : row.role === 'crimg' ? '-' : ''}${hasRss ? ` | ${row.peakRssMiB != null ? `${row.peakRssMiB} MiB` : '-'}` : ''} |`,
      );
    }
    out.push('');
    for (const n of r.notes ?? []) out.push(`- ${n}`);
    if (r.notes?.length) out.push('');
  }
  return `${out.join('\n')}\n`;
}

/** How busy the machine was while the cases ran (their recorded 1-minute load averages). */
function loadLine(results) {
  const loads = results.flatMap((r) => r.load ?? []);
  if (!loads.length) return '';
  return `1-minute load average during the cases: ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)} on ${results[0]?.machine?.cores ?? '?'} cores (above the core count, other work shared the CPUs: absolute figures drop, ratios from alternating runs less so).`;
}

export const README_BEGIN = '<!-- bench:begin -->';
export const README_END = '<!-- bench:end -->';

/** Rewrite only the README text between the bench markers (adding them at the end if missing). */
export function updateReadme(results, m) {
  const file = path.join(ROOT, 'README.md');
  let text = fs.readFileSync(file, 'utf8');
  if (!text.includes(README_BEGIN) || !text.includes(README_END)) {
    text = `${text.replace(/\s*$/, '\n')}\n${README_BEGIN}\n${README_END}\n`;
  }
  const body = [
    '## Benchmarks',
    '',
    `\`npm run bench\` checks that crimg and each peer give the same answer, then times them alternately in one run ([bench/README.md](bench/README.md); all figures: [bench/results/latest.md](bench/results/latest.md)). Latest, on ${machineLine(m)}:`,
    '',
    goalsTable(results),
    '',
    loadLine(results),
    '',
  ].join('\n');
  const a = text.indexOf(README_BEGIN) + README_BEGIN.length;
  const b = text.indexOf(README_END);
  fs.writeFileSync(file, `${text.slice(0, a)}\n${body}${text.slice(b)}`);
}
