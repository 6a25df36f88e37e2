/**
 * crimg: checkpoint images of x86_64 Linux tasks.
 *
 *   model  -> writer (writeImage) -> kernels -> sink
 *   source -> reader (readImage, openImage, verifyImage) -> model
 */
export * from './model.js';
export * from './errors.js';
export {
  REG_NAMES, REG_INDEX, type RegName, K as RecordKind, RECORDS, kindName, FORMAT_MAJOR, FORMAT_MINOR, isCompatible,
  PAGE_SIZE, RUN_PAGES,
} from './schema.js';
export { writeImage, RecordWriter, type WriteOptions, type WriteResult, magicBytes } from './writer.js';
export { readImage, openImage, verifyImage, Image, type ImageStats, type VerifyResult, type ReadOptions } from './reader.js';
export { MemorySink, FileSink, openSink, type Sink, type SinkTarget } from './sink.js';
export { openSource, type Source, type SourceTarget } from './source.js';
export { kernels } from './kernels/index.js';
