/** The kernels singleton: WebAssembly by default, the TS twin on request (CRIMG_KERNELS=twin). */
import type { Kernels } from './api.js';
import { instantiateWasm } from './wasm.js';
import { TwinKernels } from './twin/index.js';

export * from './api.js';
export { WasmKernels, instantiateWasm } from './wasm.js';
export { TwinKernels } from './twin/index.js';

let shared: Kernels | undefined;

/** The process-wide kernels instance used by the writer, reader and generator. */
export function kernels(): Kernels {
  if (!shared) shared = process.env.CRIMG_KERNELS === 'twin' ? new TwinKernels() : instantiateWasm();
  return shared;
}
