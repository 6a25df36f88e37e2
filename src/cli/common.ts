/** Shared CLI conventions: exit codes, one-line errors, JSON encoding of 64-bit values, progress bars. */
import { CrimgError, isCrimgError } from '../errors.js';

export const EXIT_OK = 0;
export const EXIT_FAIL = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNSAFE = 3;

export interface GlobalOpts {
  debug?: boolean;
  quiet?: boolean;
  json?: boolean;
}

let debug = false;
export function setDebug(on: boolean): void {
  debug = on;
}
export function isDebug(): boolean {
  return debug;
}

/** Print the error as one line `crimg: CODE: message` (stack only with --debug) and return the exit code. */
export function reportError(e: unknown): number {
  if (isCrimgError(e)) {
    process.stderr.write(`crimg: ${e.line()}\n`);
    if (debug && e.stack) process.stderr.write(`${e.stack}\n`);
    return e.code === 'USAGE' ? EXIT_USAGE : EXIT_FAIL;
  }
  const err = e as Error;
  process.stderr.write(`crimg: INTERNAL: ${err?.message ?? String(e)}\n`);
  if (debug && err?.stack) process.stderr.write(`${err.stack}\n`);
  return EXIT_FAIL;
}

/** Wrap a command action: errors become one line and an exit code. */
// biome-ignore lint/suspicious/noConfusingVoidType: an action returns an exit code or nothing (void functions and async ones)
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void> | number | void) {
  return async (...args: A): Promise<void> => {
    try {
      const code = await fn(...args);
      process.exitCode = typeof code === 'number' ? code : EXIT_OK;
    } catch (e) {
      process.exitCode = reportError(e);
    }
  };
}

export function usage(msg: string): CrimgError {
  return new CrimgError('USAGE', msg);
}

/** 64-bit and wider values in JSON: "0x"-prefixed lowercase hex of the integer value. */
export function hex(v: bigint | number): string {
  return `0x${BigInt.asUintN(128, BigInt(v)).toString(16)}`;
}

/** Print one JSON document on stdout (bigints as hex strings, Uint8Arrays as hex). */
export function printJson(doc: unknown): void {
  process.stdout.write(
    `${JSON.stringify(
      doc,
      (_k, v) => {
        if (typeof v === 'bigint') return hex(v);
        if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
        return v;
      },
      2,
    )}\n`,
  );
}

export function parseIntArg(name: string, s: string, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}): number {
  const v = /^0x[0-9a-f]+$/i.test(s) ? parseInt(s, 16) : /^\d+$/.test(s) ? parseInt(s, 10) : NaN;
  if (!Number.isSafeInteger(v) || v < min || v > max) throw usage(`${name}: '${s}' is not an integer in ${min}..${max}`);
  return v;
}

export function parseBigArg(name: string, s: string): bigint {
  try {
    if (!/^(0x[0-9a-f]+|\d+)$/i.test(s)) throw new Error();
    const v = BigInt(s);
    if (v < 0n || v >= 1n << 64n) throw new Error();
    return v;
  } catch {
    throw usage(`${name}: '${s}' is not a 64-bit unsigned integer (decimal or 0x hex)`);
  }
}

const UNITS: Record<string, number> = {
  '': 1,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1e6,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1e9,
  t: 1024 ** 4,
  tib: 1024 ** 4,
};
/** Parse sizes such as 4096, 64KiB, 1GiB, 512M. */
export function parseSize(name: string, s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(s.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw usage(`${name}: '${s}' is not a size (e.g. 4096, 64KiB, 1GiB)`);
  const v = Math.round(parseFloat(m[1]!) * unit);
  if (!Number.isSafeInteger(v)) throw usage(`${name}: '${s}' is too large`);
  return v;
}

/** A progress bar on stderr, only when stderr is a TTY and neither --json nor --quiet is given. */
export async function progress(total: number, opts: GlobalOpts, label: string): Promise<{ update(n: number): void; stop(): void }> {
  if (!process.stderr.isTTY || opts.json || opts.quiet || total <= 0) return { update() {}, stop() {} };
  const { default: cliProgress } = await import('cli-progress');
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: `${label} [{bar}] {percentage}% {value}/{total} MiB`, hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  const mib = (n: number): number => Math.round(n / 1048576);
  bar.start(mib(total), 0);
  return { update: (n: number) => bar.update(Math.min(mib(n), mib(total))), stop: () => bar.stop() };
}
