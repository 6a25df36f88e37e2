/**
 * One error class for everything crimg reports. Each code is stable; its text
 * here is its documentation (shown by `crimg help errors` and docs/ERRORS.md).
 */
export const ERROR_CODES = {
  BAD_MAGIC: 'the file does not start with the crimg magic (or the trailer magic is wrong): not a crimg image',
  UNSUPPORTED_VERSION: 'the image format version is newer than this reader (same major, minor not newer is required)',
  WRONG_ARCH: 'the image is for another architecture than x86_64',
  TRUNCATED: 'the image ends before a record, its payload or the trailer is complete',
  BAD_RECORD: 'a record is malformed: unknown required kind, bad length for its kind, bad nesting, bad count, or non-zero padding',
  CHECKSUM_MISMATCH: 'a record payload or the whole-image checksum does not match the stored XXH3-64 value',
  LIMIT_EXCEEDED: 'a length or count exceeds the limits crimg accepts (guards against allocation driven by hostile input)',
  IO: 'reading or writing a file failed (the message carries the system error)',
  USAGE: 'the command line is wrong',
  NOT_FOUND: 'the requested task, address or file is not in the image',
  UNMAPPED: 'the requested address range is not inside a VMA of the task',
  BAD_SPEC: 'a generation spec is invalid',
  BAD_CORE: 'an ELF core file is malformed or not an x86_64 core',
  BAD_CRIU:
    'a CRIU image directory is malformed (bad magic, protobuf entry, missing file, pages outside VMAs) or holds what crimg cannot import',
  NO_PROCESS: 'no such process (or it exited before crimg could attach)',
  PERMISSION: 'the operation needs privileges crimg does not have',
  TRACED: 'the process is already traced by another tracer',
  UNSAFE: 'the target has state that cannot be checkpointed faithfully (see crimg check); use --force to dump anyway',
  PTRACE: 'a ptrace operation failed',
  NOT_RESTORABLE:
    'the image cannot be restored on this host (missing or changed executable or files, unsupported VMA or fd kinds, reasons recorded at dump time, another kernel vdso, CPU features); nothing was started',
  RESTORE: 'restoring the image failed; the half-restored process was killed',
  INTERRUPTED: 'crimg was interrupted; the target was resumed and no partial output was left',
  INTERNAL: 'an internal invariant was violated (a bug in crimg)',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorContext {
  /** Byte offset in the image or file where the problem was found. */
  offset?: number;
  /** Record kind involved, if any. */
  kind?: number;
  /** Underlying cause. */
  cause?: unknown;
}

export class CrimgError extends Error {
  readonly code: ErrorCode;
  readonly offset?: number;
  readonly kind?: number;

  constructor(code: ErrorCode, message: string, ctx: ErrorContext = {}) {
    super(message, ctx.cause !== undefined ? { cause: ctx.cause } : undefined);
    this.name = 'CrimgError';
    this.code = code;
    if (ctx.offset !== undefined) this.offset = ctx.offset;
    if (ctx.kind !== undefined) this.kind = ctx.kind;
  }

  /** One line: `CODE: message (at offset N, record kind 0x...)`. */
  line(): string {
    const where: string[] = [];
    if (this.offset !== undefined) where.push(`at offset ${this.offset}`);
    if (this.kind !== undefined) where.push(`record kind 0x${this.kind.toString(16).padStart(4, '0')}`);
    return `${this.code}: ${this.message}${where.length ? ` (${where.join(', ')})` : ''}`;
  }
}

export function isCrimgError(e: unknown): e is CrimgError {
  return e instanceof CrimgError;
}

/** Wraps a Node system error (ENOENT, ENOSPC, ...) as an IO error. */
export function ioError(what: string, e: unknown): CrimgError {
  if (e instanceof CrimgError) return e;
  const err = e as NodeJS.ErrnoException;
  const msg = err?.message ?? String(e);
  const text = err?.code && !msg.startsWith(err.code) ? `${err.code}: ${msg}` : msg;
  return new CrimgError('IO', `${what}: ${text}`, { cause: e });
}
