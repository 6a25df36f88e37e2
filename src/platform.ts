/**
 * The Node built-ins the library uses, fetched at call time rather than imported,
 * so that the library (model, writer, reader, generator, kernels) loads in a
 * browser or any other JS runtime. Paths and file descriptors need Node; bytes,
 * MemorySink and custom Sources/Sinks work everywhere.
 */
import type * as FS from 'node:fs';
import type * as PATH from 'node:path';
import { CrimgError } from './errors.js';

type Proc = { getBuiltinModule?: (id: string) => unknown; env?: Record<string, string | undefined>; pid?: number };

function proc(): Proc | undefined {
  return (globalThis as { process?: Proc }).process;
}

function builtin<T>(id: string, what: string): T {
  const m = proc()?.getBuiltinModule?.(id);
  if (!m) throw new CrimgError('USAGE', `${what} needs Node.js (>= 20.16); elsewhere pass bytes, a MemorySink or your own Source/Sink`);
  return m as T;
}

export function nodeFs(): typeof FS {
  return builtin<typeof FS>('node:fs', 'file access');
}
export function nodePath(): typeof PATH {
  return builtin<typeof PATH>('node:path', 'file paths');
}
export function isNode(): boolean {
  return typeof proc()?.getBuiltinModule === 'function';
}
export function envVar(name: string): string | undefined {
  return proc()?.env?.[name];
}
export function pid(): number {
  return proc()?.pid ?? 0;
}
/** Monotonic clock in seconds. */
export function now(): number {
  return performance.now() / 1000;
}

type Buf = { from(b: ArrayBufferLike, off: number, len: number): { equals(o: unknown): boolean } };

/** Byte equality of two views: Node's memcmp when available, else a word loop. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  const B = (globalThis as { Buffer?: Buf }).Buffer;
  if (B) return B.from(a.buffer, a.byteOffset, a.length).equals(B.from(b.buffer, b.byteOffset, b.length));
  let i = 0;
  if ((a.byteOffset & 3) === 0 && (b.byteOffset & 3) === 0) {
    const n = a.length >>> 2;
    const x = new Int32Array(a.buffer, a.byteOffset, n),
      y = new Int32Array(b.buffer, b.byteOffset, n);
    for (; i < n; i++) if (x[i] !== y[i]) return false;
    i = n << 2;
  }
  for (; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
