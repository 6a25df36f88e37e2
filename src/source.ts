/** Sources: where image bytes come from (a path, a file descriptor, or memory), read by offset. */
import { CrimgError, ioError } from './errors.js';
import { nodeFs } from './platform.js';

export interface Source {
  readonly name: string;
  readonly size: number;
  /** Read up to dst.length bytes at pos; returns bytes read (short only at end of file). */
  pread(dst: Uint8Array, pos: number): number;
  /**
   * Optional: the same read done off the calling thread (Node: the libuv thread pool), so
   * reading the next bytes overlaps work on the last ones. `dst` must stay valid (and, for
   * WebAssembly memory, the memory must not grow) until the promise settles.
   */
  preadAsync?(dst: Uint8Array, pos: number): Promise<number>;
  close(): void;
}

export type SourceTarget = string | number | Uint8Array | Source;

class FdSource implements Source {
  /** node:fs, looked up once rather than on every read. */
  private readonly fs = nodeFs();
  constructor(
    readonly fd: number,
    readonly name: string,
    readonly size: number,
    private readonly owned: boolean,
  ) {}
  /** Straight into dst (typically kernel memory): no intermediate buffer, one read(2) per call when possible. */
  pread(dst: Uint8Array, pos: number): number {
    let got = 0;
    try {
      while (got < dst.length) {
        const n = this.fs.readSync(this.fd, dst, got, dst.length - got, pos + got);
        if (n === 0) break;
        got += n;
      }
    } catch (e) {
      throw ioError(`reading ${this.name}`, e);
    }
    return got;
  }
  preadAsync(dst: Uint8Array, pos: number): Promise<number> {
    return new Promise((resolve, reject) => {
      let got = 0;
      const step = (): void => {
        this.fs.read(this.fd, dst, got, dst.length - got, pos + got, (err, n) => {
          if (err) {
            reject(ioError(`reading ${this.name}`, err));
            return;
          }
          got += n;
          if (n === 0 || got >= dst.length) resolve(got);
          else step();
        });
      };
      step();
    });
  }
  close(): void {
    if (this.owned) {
      try {
        this.fs.closeSync(this.fd);
      } catch {
        /* ignore */
      }
    }
  }
}

class MemSource implements Source {
  readonly name = 'memory';
  constructor(readonly buf: Uint8Array) {}
  get size(): number {
    return this.buf.length;
  }
  pread(dst: Uint8Array, pos: number): number {
    const n = Math.max(0, Math.min(dst.length, this.buf.length - pos));
    dst.set(this.buf.subarray(pos, pos + n));
    return n;
  }
  close(): void {
    /* nothing */
  }
}

export function openSource(t: SourceTarget): Source {
  if (t instanceof Uint8Array) return new MemSource(t);
  if (typeof t === 'number') {
    const st = nodeFs().fstatSync(t);
    return new FdSource(t, `fd ${t}`, st.size, false);
  }
  if (typeof t === 'string') {
    let fd: number;
    try {
      fd = nodeFs().openSync(t, 'r');
    } catch (e) {
      throw ioError(`cannot open ${t}`, e);
    }
    const st = nodeFs().fstatSync(fd);
    if (st.isDirectory()) {
      nodeFs().closeSync(fd);
      throw new CrimgError('IO', `${t} is a directory`);
    }
    return new FdSource(fd, t, st.size, true);
  }
  return t;
}
