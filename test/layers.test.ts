/**
 * The layers of src/ (issue 13), read from the import statements of every source file:
 *  - elf/, criu/ and restore/ import nothing from live/;
 *  - os/ and cpu/ import nothing above them (live/, restore/, elf/, criu/, kinds/, cli/);
 *  - a kind's live facet (kinds/<dir>/live.ts) imports only os/, model, errors, schema, the live interface
 *    (kinds/live.ts), its own directory and Node modules: never live/, restore/, elf/, criu/ or cli/;
 *  - a kind's format facet (kinds/<dir>/format.ts) and the registry kinds/index.ts are in the browser bundle: no
 *    Node module, nothing from os/, live/ or restore/.
 * Each rule is also run on made-up imports that break it, so that a rule that can no longer fail fails here.
 */
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../src', import.meta.url));

/** The module specifiers a TypeScript source imports or re-exports (static, side-effect and dynamic imports). */
function importsOf(text: string): string[] {
  const out: string[] = [];
  const patterns = [
    /(?:^|\n)[ \t]*(?:import|export)\s+(?:type\s+)?[\w*{}\s,$]+?\s+from\s+['"]([^'"]+)['"]/g,
    /(?:^|\n)[ \t]*import\s+['"]([^'"]+)['"]/g,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) out.push(m[1]!);
  return out;
}

/** Where an import of `spec` from src/`from` leads: `src/<path>` without extension for a source file, else the
 *  module name (node:fs, koffi). */
function target(from: string, spec: string): string {
  if (!spec.startsWith('.')) return spec;
  return `src/${path.posix.join(path.posix.dirname(from), spec).replace(/\.(js|ts)$/, '')}`;
}

const under = (t: string, dir: string): boolean => t === `src/${dir}` || t.startsWith(`src/${dir}/`);
const NODE_BUILTINS = new Set(['fs', 'path', 'os', 'child_process', 'crypto', 'url', 'module', 'util', 'stream', 'worker_threads']);
const isNode = (t: string): boolean => t.startsWith('node:') || NODE_BUILTINS.has(t);

/** The rule that importing `t` (see target) from src/`file` breaks, or null. */
function violation(file: string, t: string): string | null {
  const layer = file.split('/')[0]!;
  if (['elf', 'criu', 'restore'].includes(layer) && under(t, 'live')) return `${layer}/ must not import live/`;
  if (layer === 'os' || layer === 'cpu') {
    const above = ['live', 'restore', 'elf', 'criu', 'kinds', 'cli'].find((d) => under(t, d));
    if (above) return `${layer}/ must not import ${above}/, a layer above it`;
  }
  const kind = /^kinds\/([^/]+)\/(live|format)\.ts$/.exec(file);
  if (kind?.[2] === 'live' && t.startsWith('src/')) {
    const ok = under(t, 'os') || ['src/model', 'src/errors', 'src/schema', 'src/kinds/live'].includes(t) || under(t, `kinds/${kind[1]}`);
    if (!ok) return `${file} may import only os/, model, errors, schema, kinds/live and its own directory`;
  }
  if (kind?.[2] === 'format' || file === 'kinds/index.ts') {
    if (isNode(t)) return `${file} is in the browser bundle: no Node module`;
    const d = ['os', 'live', 'restore'].find((x) => under(t, x));
    if (d) return `${file} is in the browser bundle: nothing from ${d}/`;
  }
  return null;
}

function sources(dir = SRC): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.split(path.sep).join('/'))
    .sort();
}

describe('layers of src/', () => {
  it('every import statement follows the rules', () => {
    const files = sources();
    expect(files).toContain('os/syscalls.ts');
    expect(files).toContain('kinds/live.ts');
    const bad: string[] = [];
    for (const f of files) {
      for (const spec of importsOf(fs.readFileSync(path.join(SRC, f), 'utf8'))) {
        const v = violation(f, target(f, spec));
        if (v) bad.push(`${f}: import '${spec}': ${v}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('the live facets of the kinds are all registered, and the core does not reach live/', () => {
    const registry = fs.readFileSync(path.join(SRC, 'kinds/live.ts'), 'utf8');
    const facets = sources().filter((f) => /^kinds\/[^/]+\/live\.ts$/.test(f));
    expect(facets.length).toBeGreaterThanOrEqual(11);
    for (const f of facets) expect(registry, f).toContain(`'./${f.slice('kinds/'.length).replace(/\.ts$/, '.js')}'`);
  });

  it('finds the imports of every statement form', () => {
    const text = [
      "import koffi from 'koffi';",
      "import * as fs from 'node:fs';",
      "import {\n  a,\n  type B,\n} from '../live/check.js';",
      "import type { C } from './c.js';",
      "export { d as e } from '../os/consts.js';",
      "export * from './f.js';",
      "import './side.js';",
      "const g = await import('../restore/restore.js');",
      " * import { not } from '../live/comment.js';",
      "export const h = 'from';",
    ].join('\n');
    expect(importsOf(text)).toEqual([
      'koffi',
      'node:fs',
      '../live/check.js',
      './c.js',
      '../os/consts.js',
      './f.js',
      './side.js',
      '../restore/restore.js',
    ]);
  });

  it('each rule catches an import that breaks it', () => {
    const broken: [string, string][] = [
      ['restore/restore.ts', '../live/pipes.js'],
      ['elf/import.ts', '../live/libc.js'],
      ['criu/import.ts', '../live/proc.js'],
      ['os/proc.ts', '../live/check.js'],
      ['os/taskcall.ts', '../restore/inject.js'],
      ['os/consts.ts', '../kinds/live.js'],
      ['cpu/xsave.ts', '../elf/xsave.js'],
      ['cpu/xsave.ts', '../cli/common.js'],
      ['kinds/pipe/live.ts', '../../live/inspect.js'],
      ['kinds/pipe/live.ts', '../../restore/inject.js'],
      ['kinds/pipe/live.ts', '../unix-pair/live.js'],
      ['kinds/pipe/format.ts', 'node:fs'],
      ['kinds/pipe/format.ts', '../../os/consts.js'],
      ['kinds/pipe/format.ts', '../../live/check.js'],
      ['kinds/index.ts', '../restore/restore.js'],
      ['kinds/index.ts', 'node:path'],
    ];
    for (const [file, spec] of broken) expect(violation(file, target(file, spec)), `${file} -> ${spec}`).not.toBeNull();
    const fine: [string, string][] = [
      ['restore/restore.ts', '../kinds/pipe/live.js'],
      ['restore/restore.ts', '../os/libc.js'],
      ['os/taskcall.ts', '../schema.js'],
      ['kinds/pipe/live.ts', '../../os/taskcall.js'],
      ['kinds/pipe/live.ts', '../../model.js'],
      ['kinds/pipe/live.ts', '../live.js'],
      ['kinds/pipe/live.ts', './format.js'],
      ['kinds/pipe/live.ts', 'node:fs'],
      ['kinds/pipe/format.ts', '../../schema.js'],
      ['kinds/index.ts', './pipe/format.js'],
      ['live/dump.ts', '../kinds/live.js'],
    ];
    for (const [file, spec] of fine) expect(violation(file, target(file, spec)), `${file} -> ${spec}`).toBeNull();
  });
});
