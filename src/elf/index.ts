/** ELF core files: import (fromElfCore) and export (toElfCore). */
export { fromElfCore, coreToModel, type ElfCore, type ElfImportOptions } from './import.js';
export { toElfCore, isFileVma, type ElfExportOptions, type ElfExportResult } from './export.js';
export { parseCore, isElf, type ParsedCore } from './parse.js';
