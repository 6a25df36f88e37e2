// Kernels for in-process cases: crimg's WebAssembly kernels (loaded straight from
// dist/kernels/wasm.js) and the bench's own read-only SIMD pass, compiled here from
// bench/kernels/readpass.ts and instantiated over the same WebAssembly memory.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT, TMP } from './harness.mjs';

let shared;

/** One WasmKernels instance for the bench's in-process cases. */
export async function crimgKernels() {
  if (!shared) {
    const { instantiateWasm } = await import('../../dist/kernels/wasm.js');
    shared = instantiateWasm();
  }
  return shared;
}

/** True when build/crimg.wasm exports every named kernel. */
export function hasExports(k, ...names) {
  return names.every((n) => typeof k.x[n] === 'function');
}

const SRC = path.join(ROOT, 'bench', 'kernels', 'readpass.ts');
const OUT = path.join(TMP, 'readpass.wasm');

/** Compile bench/kernels/readpass.ts (cached by mtime) and bind it to `memory`. */
export function readPass(memory) {
  fs.mkdirSync(TMP, { recursive: true });
  const stale = !fs.existsSync(OUT) || fs.statSync(OUT).mtimeMs < fs.statSync(SRC).mtimeMs;
  if (stale) {
    const asc = path.join(ROOT, 'node_modules', 'assemblyscript', 'bin', 'asc.js');
    const r = spawnSync(
      process.execPath,
      [
        asc,
        SRC,
        '-o',
        OUT,
        '-O3',
        '--converge',
        '--noAssert',
        '--runtime',
        'stub',
        '--importMemory',
        '--initialMemory',
        '1',
        '--maximumMemory',
        '65536',
        '--enable',
        'simd',
      ],
      { cwd: ROOT, encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`asc readpass.ts failed: ${r.stderr}`);
  }
  const inst = new WebAssembly.Instance(new WebAssembly.Module(fs.readFileSync(OUT)), { env: { memory } });
  return inst.exports.read_pass;
}
