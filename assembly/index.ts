// Entry point of the crimg WebAssembly module: re-exports every kernel.
// One export line per kernel file; the ABI is described in abi.ts and docs/KERNELS.md.
export { stagingEnsure, stagingBase, scratchBase, stateBase, layoutOk } from './abi';
export { xxh3_64, xxh3_pages, xxh3_init, xxh3_update, xxh3_digest } from './xxh3';
export { zero_scan, pages_pack, pages_unpack, copy_pages } from './pages';
export { gen_pages, gen_pack, gen_dict_size } from './gen';
export { xsave_standard_size, xsave_to_standard, xsave_to_compacted, regs_pack, regs_pack1, regs_unpack } from './regs';
export { rec_seal, rec_seal_stream, pages_rec_head, pages_rec_tail } from './records';
