/** The kernels singleton: WebAssembly by default, the TS twin on request (CRIMG_KERNELS=twin). */
import type { Kernels } from './api.js';
import { instantiateWasm, instantiateWasmAsync } from './wasm.js';
import { envVar, isNode } from '../platform.js';
import { CrimgError } from '../errors.js';
import { TwinKernels } from './twin/index.js';

export * from './api.js';
export { WasmKernels, instantiateWasm, instantiateWasmAsync } from './wasm.js';
export { TwinKernels } from './twin/index.js';

let shared: Kernels | undefined;

/** The process-wide kernels instance used by the writer, reader and generator. */
export function kernels(): Kernels {
  if (!shared) {
    if (envVar('CRIMG_KERNELS') === 'twin') shared = new TwinKernels();
    else if (isNode()) shared = instantiateWasm();
    else throw new CrimgError('USAGE', 'the kernels are not loaded: call `await initKernels()` first (outside Node)');
  }
  return shared;
}

/**
 * Load the kernels asynchronously: required once in browsers before anything else
 * (from a URL, a fetch Response, or the module's bytes); optional in Node.
 * `twin: true` selects the plain-TypeScript kernels instead.
 */
export async function initKernels(from?: Uint8Array | ArrayBuffer | Response | URL | string | { twin: true }): Promise<Kernels> {
  if (!shared) {
    shared =
      from && typeof from === 'object' && 'twin' in from ? new TwinKernels() : await instantiateWasmAsync(from as Uint8Array | undefined);
  }
  return shared;
}
