/**
 * Sinks: where image bytes go. A path is written under a temporary name in the
 * same directory and renamed into place only when complete (optionally fsynced),
 * so a crash never leaves a partial image at the destination name.
 */
import type { Writable } from 'node:stream';
import { CrimgError, ioError } from './errors.js';
import { nodeFs, nodePath, pid } from './platform.js';

export interface Sink {
  /** Write bytes; the view may be reused by the caller right after the call (or the promise). */
  write(b: Uint8Array): void | Promise<void>;
  /** Finish: flush, fsync if asked, rename into place. */
  close(): Promise<void>;
  /** Abandon: remove the temporary file. Never throws. */
  abort(): void;
  /** Bytes written so far. */
  readonly written: number;
  /** Optional: advance by n bytes that read back as zeros, leaving a hole in the file where possible. */
  skip?(n: number): void;
}

export type SinkTarget = string | number | Writable | MemorySink | Sink;

export interface SinkOptions {
  fsync?: boolean;
}

class FdSink implements Sink {
  written = 0;
  /** Set by hole(): from then on writes are positioned (pwrite at `written`) and close() sets the final size. */
  private positioned = false;
  constructor(
    readonly fd: number,
    readonly what: string,
    readonly fsync = false,
  ) {}
  write(b: Uint8Array): void {
    let off = 0;
    try {
      while (off < b.length) {
        off += this.positioned
          ? nodeFs().writeSync(this.fd, b, off, b.length - off, this.written + off)
          : nodeFs().writeSync(this.fd, b, off, b.length - off);
      }
    } catch (e) {
      throw ioError(`writing ${this.what}`, e);
    }
    this.written += b.length;
  }
  /**
   * Write b on libuv's thread pool (off the main thread), where a synchronous write would go. The caller leaves b
   * unchanged and starts no other write until the promise settles.
   */
  writeAsync(b: Uint8Array): Promise<void> {
    const at = this.positioned ? this.written : null;
    return new Promise((resolve, reject) => {
      const go = (off: number): void => {
        nodeFs().write(this.fd, b, off, b.length - off, at === null ? null : at + off, (e, n) => {
          if (e) {
            reject(ioError(`writing ${this.what}`, e));
            return;
          }
          if (off + n < b.length) {
            go(off + n);
            return;
          }
          this.written += b.length;
          resolve();
        });
      };
      go(0);
    });
  }
  /** A hole of n bytes (regular files only: FileSink uses it for its temporary file; not part of Sink here). */
  hole(n: number): void {
    this.positioned = true;
    this.written += n;
  }
  async close(): Promise<void> {
    if (this.positioned) {
      try {
        nodeFs().ftruncateSync(this.fd, this.written);
      } catch (e) {
        throw ioError(`sizing ${this.what}`, e);
      }
    }
    if (this.fsync) {
      try {
        nodeFs().fsyncSync(this.fd);
      } catch (e) {
        throw ioError(`fsync ${this.what}`, e);
      }
    }
  }
  abort(): void {
    /* caller owns the fd */
  }
}

/** Writes a path atomically: temp file in the same directory, then rename. Devices and FIFOs are written directly. */
export class FileSink implements Sink {
  private inner: FdSink;
  private readonly tmp: string | null;
  private closed = false;
  /** Settles (never rejects) when the write in flight is done; null when none is. */
  private inflight: Promise<void> | null = null;
  /** abort() was called with a write in flight: it runs when that write is done. */
  private abortLater = false;

  constructor(
    readonly dest: string,
    readonly opts: SinkOptions = {},
  ) {
    let direct = false;
    try {
      const st = nodeFs().statSync(dest);
      direct = !st.isFile();
    } catch {
      /* does not exist yet */
    }
    this.tmp = direct
      ? null
      : nodePath().join(nodePath().dirname(dest), `.${nodePath().basename(dest)}.tmp-${pid()}-${Math.random().toString(36).slice(2, 10)}`);
    let fd: number;
    try {
      fd = nodeFs().openSync(this.tmp ?? dest, direct ? 'w' : 'wx+', 0o644); // readable too: live dump patches its header before close
    } catch (e) {
      throw ioError(`cannot create ${this.tmp ?? dest}`, e);
    }
    this.inner = new FdSink(fd, dest, !!opts.fsync && !direct);
    if (!direct) this.writeAsync = (b) => this.writeInPool(b);
  }
  get written(): number {
    return this.inner.written;
  }
  /** The descriptor being written (the temporary file until close); for in-place patches before close. */
  get fd(): number {
    return this.inner.fd;
  }
  write(b: Uint8Array): void {
    this.inner.write(b);
  }
  /**
   * Regular files only (absent for devices and FIFOs: writing to /dev/null is faster in place). Write b on libuv's
   * thread pool, so that the caller can prepare the next bytes meanwhile (the writer uses it with two output buffers
   * in turn). One such write at a time; b stays unchanged until the promise settles. An abort() meanwhile closes
   * and removes the file once the write is done: the descriptor is not reused under it.
   */
  readonly writeAsync?: (b: Uint8Array) => Promise<void>;
  private writeInPool(b: Uint8Array): Promise<void> {
    const p = this.inner.writeAsync(b);
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    this.inflight = settled;
    void settled.then(() => {
      if (this.inflight === settled) this.inflight = null;
      if (this.abortLater) {
        this.abortLater = false;
        this.abort();
      }
    });
    return p;
  }
  /** Resolves once no asynchronous write is in flight. */
  async idle(): Promise<void> {
    while (this.inflight) await this.inflight;
  }
  /** A hole of n zero bytes: sparse in the temporary regular file, written as zeros on devices and FIFOs. */
  skip(n: number): void {
    if (this.tmp) {
      this.inner.hole(n);
      return;
    }
    const z = new Uint8Array(Math.min(n, 1 << 20));
    for (let left = n; left > 0; left -= z.length) this.inner.write(left >= z.length ? z : z.subarray(0, left));
  }
  async close(): Promise<void> {
    await this.idle();
    if (this.closed) return;
    try {
      await this.inner.close();
      nodeFs().closeSync(this.inner.fd);
      this.closed = true;
      if (this.tmp) {
        nodeFs().renameSync(this.tmp, this.dest);
        if (this.opts.fsync) {
          const dfd = nodeFs().openSync(nodePath().dirname(this.dest), 'r');
          try {
            nodeFs().fsyncSync(dfd);
          } finally {
            nodeFs().closeSync(dfd);
          }
        }
      }
    } catch (e) {
      this.abort();
      throw ioError(`finishing ${this.dest}`, e);
    }
  }
  abort(): void {
    if (this.inflight) {
      this.abortLater = true;
      return;
    }
    if (!this.closed) {
      try {
        nodeFs().closeSync(this.inner.fd);
      } catch {
        /* ignore */
      }
      this.closed = true;
    }
    if (this.tmp) {
      try {
        nodeFs().unlinkSync(this.tmp);
      } catch {
        /* ignore */
      }
    }
  }
}

/** Collects the image in memory. */
export class MemorySink implements Sink {
  private chunks: Uint8Array[] = [];
  written = 0;
  write(b: Uint8Array): void {
    this.chunks.push(b.slice());
    this.written += b.length;
  }
  async close(): Promise<void> {
    /* nothing */
  }
  abort(): void {
    this.chunks = [];
  }
  /** The bytes written, concatenated. */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.written);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    this.chunks = [out];
    return out;
  }
}

class StreamSink implements Sink {
  written = 0;
  constructor(readonly s: Writable) {}
  write(b: Uint8Array): void | Promise<void> {
    this.written += b.length;
    const ok = this.s.write(b.slice()); // copy: the caller reuses its buffer
    if (!ok)
      return new Promise((res, rej) => {
        this.s.once('drain', res);
        this.s.once('error', rej);
      });
  }
  async close(): Promise<void> {
    await new Promise<void>((res, rej) => {
      this.s.end(res);
      this.s.once('error', rej);
    });
  }
  abort(): void {
    this.s.destroy();
  }
}

function isSink(x: unknown): x is Sink {
  return typeof x === 'object' && x !== null && 'abort' in x && 'close' in x && 'write' in x && 'written' in x;
}

export function openSink(t: SinkTarget, opts: SinkOptions = {}): Sink {
  if (typeof t === 'string') return new FileSink(t, opts);
  if (typeof t === 'number') return new FdSink(t, `fd ${t}`, opts.fsync);
  if (t instanceof MemorySink || isSink(t)) return t;
  if (typeof t === 'object' && t !== null && typeof (t as Writable).write === 'function') return new StreamSink(t);
  throw new CrimgError('USAGE', `not an image destination: ${String(t)}`);
}
