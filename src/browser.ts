/**
 * crimg's platform-neutral core: model, writer, reader, verify, generator, inspection
 * and the kernels. It imports no Node built-in, so it runs in browsers and other JS
 * runtimes (call `await initKernels()` first there). Paths and file descriptors as
 * sources and sinks need Node; bytes, MemorySink and custom Source/Sink work anywhere.
 * Bundlers pick this entry through the "browser" export condition.
 */
export * from './model.js';
export * from './errors.js';
export {
  REG_NAMES,
  REG_INDEX,
  type RegName,
  K as RecordKind,
  RECORDS,
  kindName,
  FORMAT_MAJOR,
  FORMAT_MINOR,
  isCompatible,
  PAGE_SIZE,
  RUN_PAGES,
} from './schema.js';
export { writeImage, RecordWriter, type WriteOptions, type WriteResult, magicBytes } from './writer.js';
export { readImage, openImage, verifyImage, Image, type ImageStats, type VerifyResult, type ReadOptions } from './reader.js';
export { MemorySink, FileSink, openSink, type Sink, type SinkTarget } from './sink.js';
export { openSource, type Source, type SourceTarget } from './source.js';
export { kernels, initKernels } from './kernels/index.js';
export { generate, resolveSpec, type GenSpec } from './gen/generate.js';
export { showJson, showText, diffImages } from './inspect.js';
