/**
 * crimg: checkpoint images of x86_64 Linux tasks.
 *
 *   model  -> writer (writeImage) -> kernels -> sink
 *   source -> reader (readImage, openImage, verifyImage) -> model
 *
 * This is the Node entry: the platform-neutral core (./browser.ts) plus what needs
 * Node: ELF cores, live dump and check, restore.
 */
export * from './browser.js';
export { verifyImageAsync } from './reader.js';
export {
  fromElfCore,
  coreToModel,
  toElfCore,
  parseCore,
  type ElfCore,
  type ElfImportOptions,
  type ElfExportOptions,
  type ElfExportResult,
} from './elf/index.js';
export {
  toCriuImages,
  fromCriuImages,
  isCriuDir,
  type CriuImages,
  type CriuImportOptions,
  type CriuExportOptions,
  type CriuExportResult,
} from './criu/index.js';
export { restoreImage, checkRestore, type RestoreOptions, type RestoreResult } from './restore/restore.js';
export type { RestoreReason } from './restore/check.js';
export { dumpProcess, writeFrozen, checkProcesses, type DumpOptions, type DumpResult } from './live/dump.js';
