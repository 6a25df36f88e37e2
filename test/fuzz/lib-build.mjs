/**
 * Makes a runnable plain-JavaScript copy of src/ for child processes and worker
 * threads started by the tests (vitest runs the TypeScript sources in-process,
 * but a child `node` cannot). Each file is transpiled on its own
 * (ts.transpileModule, no type check): fast and always in step with src/.
 *
 * Layout of the result (a fresh temporary directory):
 *   DIR/src/**.js          the transpiled sources (DIR/src/index.js, DIR/src/cli/main.js)
 *   DIR/build -> ROOT/build   so src/kernels/wasm.js finds ../../build/crimg.wasm
 *   DIR/node_modules -> ROOT/node_modules
 *   DIR/package.json       {"type": "module"}
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function walk(dir, out = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/**
 * Transpile ROOT/src into a new temporary directory; returns its paths.
 * @returns {Promise<{ dir: string, lib: string, cli: string, cleanup: () => void }>}
 */
export async function buildLib(root = ROOT) {
  const { default: ts } = await import('typescript');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-lib-'));
  const srcDir = path.join(root, 'src');
  for (const file of walk(srcDir)) {
    const rel = path.relative(srcDir, file);
    const out = path.join(dir, 'src', rel.replace(/\.ts$/, '.js'));
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const r = ts.transpileModule(fs.readFileSync(file, 'utf8'), {
      fileName: file,
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, sourceMap: false },
    });
    fs.writeFileSync(out, r.outputText);
  }
  fs.symlinkSync(path.join(root, 'build'), path.join(dir, 'build'));
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}\n');
  return {
    dir,
    lib: path.join(dir, 'src', 'index.js'),
    cli: path.join(dir, 'src', 'cli', 'main.js'),
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** The compiled package (npm run build): ROOT/dist. */
export function distLib(root = ROOT) {
  return {
    dir: path.join(root, 'dist'),
    lib: path.join(root, 'dist', 'index.js'),
    cli: path.join(root, 'dist', 'cli', 'main.js'),
    cleanup: () => {},
  };
}
