import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');

/** Every module reachable from dist/index.js by static import, and the bare specifiers they import. */
function importGraph(entry: string): { files: string[]; external: string[] } {
  const seen = new Set<string>(),
    external = new Set<string>();
  const todo = [entry];
  while (todo.length) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    const src = fs.readFileSync(f, 'utf8');
    for (const m of src.matchAll(/^\s*(?:import|export)\s[^;'"]*?from\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm)) {
      const spec = (m[1] ?? m[2])!;
      if (spec.startsWith('.')) todo.push(path.resolve(path.dirname(f), spec));
      else external.add(spec);
    }
  }
  return { files: [...seen], external: [...external] };
}

// The library in a runtime without Node's process and built-ins, as in a browser.
const script = `
import { readFileSync } from 'node:fs';
const wasm = readFileSync('build/crimg.wasm');
const out = (x) => globalThis.__stdout(JSON.stringify(x) + '\\n');
globalThis.__stdout = process.stdout.write.bind(process.stdout);
Object.defineProperty(globalThis, 'process', { value: undefined, configurable: true, writable: true });
const c = await import('./dist/browser.js');
const r = {};
try { c.kernels(); r.sync = 'loaded'; } catch (e) { r.sync = e.code; }
await c.initKernels(wasm);
const model = c.generate({ seed: 2n, size: 1 << 20, tasks: 2 });
const sink = new c.MemorySink();
const w = await c.writeImage(model, sink);
const bytes = sink.bytes();
const v = c.verifyImage(bytes);
const img = c.readImage(bytes);
const t = img.model.tasks[0], vma = t.mm.vmas.find((x) => x.path === '[heap]');
r.mem = Array.from(img.readMemory(t.pid, vma.start, 16));
r.ok = v.ok && w.bytes === bytes.length;
r.show = c.showJson(img.model, img).tasks.length;
try { await c.writeImage(model, 'x.crimg'); r.path = 'wrote'; } catch (e) { r.path = e.code; }
out(r);
`;

describe('outside Node (browser-like runtimes)', () => {
  it('the library core (the "browser" export) imports no Node built-ins or packages statically', () => {
    const g = importGraph(path.join(root, 'dist/browser.js'));
    expect(g.files.length).toBeGreaterThan(10);
    expect(g.external).toEqual([]);
  });

  it('works without process: initKernels from bytes, generate, write to memory, read, verify', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, timeout: 60_000 });
    expect(r.status, r.stderr.toString()).toBe(0);
    const o = JSON.parse(r.stdout.toString());
    expect(o.sync).toBe('USAGE'); // kernels() before initKernels() says what to do
    expect(o.ok).toBe(true);
    expect(o.mem).toHaveLength(16);
    expect(o.show).toBe(2);
    expect(o.path).toBe('USAGE'); // file paths need Node
    expect(fs.existsSync(path.join(root, 'x.crimg'))).toBe(false);
  });
});
