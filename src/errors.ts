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
  BAD_CRIU: 'a CRIU image directory is malformed (bad magic, protobuf entry, missing file, pages outside VMAs) or holds what crimg cannot import',
  NO_PROCESS: 'no such process (or it exited before crimg could attach)',
  PERMISSION: 'the operation needs privileges crimg does not have',
  TRACED: 'the process is already traced by another tracer',
  UNSAFE: 'the target has state that cannot be checkpointed faithfully (see crimg check); use --force to dump anyway',
  PTRACE: 'a ptrace operation failed',
  NOT_RESTORABLE: 'the image cannot be restored on this host (missing or changed executable or files, unsupported VMA or fd kinds, reasons recorded at dump time, another kernel vdso, CPU features); nothing was started',
  RESTORE: 'restoring the image failed; the half-restored process was killed',
  INTERRUPTED: 'crimg was interrupted; the target was resumed and no partial output was left',
  INTERNAL: 'an internal invariant was violated (a bug in crimg)',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * The reasons a live task cannot be checkpointed and restarted faithfully (`crimg check`, and NOCR records of a
 * dump), each a stable code with what it means.
 */
export const NOCR_CODES = {
  STDIO: 'fd 0, 1 or 2 is a terminal, or a pipe or socket another process holds (a shell, a supervisor, a log collector): no reason not to checkpoint, but `crimg restore` needs --inherit-stdio to give the task its own',
  TRACED: 'the task is traced by another process (debugger, strace)',
  SECCOMP: 'the task runs under seccomp (strict mode or filters), which crimg does not save',
  SOCKET: 'an open socket (other than a UNIX socket pair the task holds both of): connection state and queued data are not saved',
  PIPE: 'a pipe also held by a process outside the tree (a task\'s own pipes and those between tasks of the tree are saved with their bytes)',
  FIFO: 'an open named pipe (FIFO): its buffered data and the other end are not saved',
  EVENTFD: 'an eventfd whose counter fdinfo does not show',
  SIGNALFD: 'a signalfd whose mask fdinfo does not show',
  TIMERFD: 'a timerfd crimg cannot set up again (TFD_TIMER_CANCEL_ON_SET)',
  POSIX_TIMER: 'a POSIX timer (timer_create) on a clock crimg cannot restore it on (a thread\'s CPU time, another process\'s clock), or notifying in a way it does not know',
  INOTIFY: 'an inotify instance with events queued (no /proc file shows them), or watching a file crimg finds no path to',
  FANOTIFY: 'a fanotify instance: its marks and queued events are not saved',
  EPOLL: 'an epoll instance watching a file no longer at the fd it was added with, or another epoll',
  IO_URING: 'an io_uring instance: rings and in-flight requests are not saved',
  USERFAULTFD: 'a userfaultfd: registered ranges and pending faults are not saved',
  PIDFD: 'a pidfd: refers to a process that will not exist after a restart',
  PERF_EVENT: 'a perf event fd: not saved',
  BPF: 'a BPF map or program fd: not saved',
  ANON_INODE: 'another anonymous-inode file (kernel object without a path): not saved',
  DEVICE: 'an open device file (other than /dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom): device state is not saved',
  TTY: 'an open terminal: terminal state and the session\'s controlling terminal are not saved',
  FILE_DELETED: 'an open or mapped file that was deleted: it cannot be reopened by path',
  FILE_UNREACHABLE: 'an open file whose path no longer leads to the same file (renamed, replaced or in another mount namespace)',
  FILE_LOCK: 'a file lease or delegation, or a lock on a file crimg does not reopen: not saved (flock, POSIX and OFD locks on regular files and directories are)',
  MEMFD: 'a memfd (file or shared mapping): its contents are not saved',
  SYSV_SHM: 'a System V shared memory segment: the segment is not saved',
  POSIX_SHM: 'a POSIX shared memory object (/dev/shm) mapped shared: other users of it are not checkpointed',
  SHARED_ANON: 'shared anonymous memory also mapped by a task outside the tree',
  HUGETLB: 'hugetlb memory: not supported',
  DEVICE_MEMORY: 'a mapping of device memory (VM_IO/VM_PFNMAP): not saved',
  AIO: 'an AIO context: in-flight requests are not saved',
  NS_SHARED: 'a namespace (of a container dump) is shared with tasks outside the tree',
  CHILDREN: 'the process has children that are not part of the dump (use --tree)',
  ZOMBIE: 'a task of the tree is a zombie',
  VANISHED: 'a task of the tree exited while it was being examined',
  SIGACTIONS: 'the signal handlers, timers and futex state of a task could not be read (no stopped thread could run the system calls that ask for them)',
} as const;
export type NocrCode = keyof typeof NOCR_CODES;

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
