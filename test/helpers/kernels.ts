/** The two kernel implementations under test, and a small deterministic PRNG for test inputs. */
import { instantiateWasm } from '../../src/kernels/wasm.js';
import { TwinKernels } from '../../src/kernels/twin/index.js';
import type { Kernels } from '../../src/kernels/api.js';

export const wasm = instantiateWasm();
export const twin = new TwinKernels();
export const both: Kernels[] = [wasm, twin];

/** mulberry32: uniform numbers in [0, 1) from a 32-bit seed. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
