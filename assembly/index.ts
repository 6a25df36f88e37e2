// Entry point of the crimg WebAssembly module: re-exports every kernel.
// One export line per kernel file; the ABI is described in abi.ts and docs/KERNELS.md.
export { stagingEnsure, stagingBase, scratchBase, stateBase, layoutOk } from './abi';
