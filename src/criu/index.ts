/** CRIU image directories: export (toCriuImages) and import (fromCriuImages). */
export { toCriuImages, type CriuExportOptions, type CriuExportResult } from './export.js';
export { fromCriuImages, isCriuDir, type CriuImages, type CriuImportOptions } from './import.js';
