/**
 * Why an image cannot be restored here: the restore reason codes (one table, the single source of their meaning:
 * docs/RESTORE-REASONS.md is generated from it by scripts/gen-errors.mjs) and where a reason applies (a structured
 * location; the one-word or one-phrase `where` of `crimg restore --check` is derived from it).
 */

/** The codes `restore --check` (and NOT_RESTORABLE) report, with what they mean. */
export const RESTORE_CODES = {
  SYNTHETIC: 'the image was made by `crimg gen`: it describes no real process',
  TASKS: 'the task asked for (--pid) is not in the image, or the image holds no task, or several and none was picked',
  NO_MM: 'the task has no address space (a kernel thread or a zombie)',
  REGS: 'the task has no threads, or a thread is not a 64-bit task (cs / ss are not the 64-bit user segments)',
  CREDS:
    "the task ran as another user and crimg is not root, or it had capabilities other than those that follow from its uids, or a larger bounding set than crimg's",
  ROOT: 'the task ran chrooted: restoring a root directory is not supported',
  EXE_MISSING: 'the image names no executable, or the executable does not exist or is not a regular file',
  EXE_CHANGED: 'the executable was replaced since the dump (another inode or device)',
  CWD_MISSING: 'the working directory does not exist',
  VMA_UNSUPPORTED:
    'a mapping crimg cannot rebuild: hugetlb memory, a deleted file (memfd, SysV shared memory), bounds not page-aligned, or no file path to reopen',
  FILE_MISSING: 'a mapped or open file, or a file an inotify watch is on, does not exist',
  FILE_CHANGED:
    'a mapped or open file was replaced since the dump (another inode or device), is no longer of its kind, or shrank below the saved position of a read-only fd',
  VDSO_MISMATCH:
    "the vdso of this kernel differs from the image's (the layout of [vvar], [vvar_vclock] and [vdso], or the stored vdso bytes): restore on the kernel that made the image",
  FD_UNSUPPORTED:
    "an open fd crimg can neither reopen nor rebuild (a socket other than the task's own pairs and listeners, a pipe to another process, ...); for fds 0-2, --inherit-stdio gives crimg's own",
  PIPE: 'a pipe another task of the image holds too: restore the tree with --pid-ns --tree',
  NOCR: 'a reason recorded at dump time (`crimg dump --force`); the text names its code (see `crimg check`)',
  STDIO:
    "fd 0, 1 or 2 was a terminal or another process's pipe or socket (a STDIO note at dump time): restore with --inherit-stdio to give the task crimg's own",
  XSAVE_FEATURES: 'a thread uses XSAVE components (AVX-512, AMX ...) this CPU lacks',
  PID_NS: 'restoring into a new PID namespace (--pid-ns) needs root (CAP_SYS_ADMIN)',
} as const;

export type RestoreCode = keyof typeof RESTORE_CODES;

/** What a reason is about; each has its own `where` text (WHERE). */
export type RestoreSubject =
  | 'image'
  | 'pid'
  | 'task'
  | 'dump'
  | 'exe'
  | 'cwd'
  | 'root'
  | 'creds'
  | 'thread'
  | 'vma'
  | 'fd'
  | 'vdso'
  | 'pid-ns';

/** Where a reason applies. */
export interface RestoreAt {
  of: RestoreSubject;
  /** The task (its pid in the image; with `of: 'pid'`, the pid asked for); 0 for the image as a whole. */
  task: number;
  /** A thread (its tid in the image); with `of: 'dump'`, the thread a dump-time reason was recorded on. */
  thread?: number;
  fd?: number;
  /** Start and end of the VMA. */
  vma?: bigint;
  end?: bigint;
  /** The file (executable, working directory, mapped or open file) or the special mapping ([vdso], [vvar] ...). */
  path?: string;
}

export interface RestoreReason {
  code: RestoreCode;
  at: RestoreAt;
  /** `at` in words, as `restore --check` prints it: "exe", "vma 0x...-0x... /lib/x.so", "fd 3", "thread 12" ... */
  where: string;
  text: string;
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** The words for each subject. */
const WHERE: Record<RestoreSubject, (a: RestoreAt) => string> = {
  image: () => 'image',
  pid: (a) => `pid ${a.task}`,
  task: () => 'task',
  dump: (a) => `task ${a.thread ?? a.task}`,
  exe: () => 'exe',
  cwd: () => 'cwd',
  root: () => 'root',
  creds: () => 'creds',
  thread: (a) => `thread ${a.thread}`,
  vma: (a) => `vma ${hex(a.vma ?? 0n)}-${hex(a.end ?? 0n)}${a.path ? ` ${a.path}` : ''}`,
  fd: (a) => `fd ${a.fd}`,
  vdso: (a) => a.path ?? 'vdso',
  'pid-ns': () => 'pid namespace',
};

export function whereOf(at: RestoreAt): string {
  return WHERE[at.of](at);
}

/** A reason with its `where` derived from `at`. */
export function reason(code: RestoreCode, at: RestoreAt, text: string): RestoreReason {
  return { code, at, where: whereOf(at), text };
}

/** The reason of a task below the one restored (restore --tree): its where names the task. */
export function inTask(r: RestoreReason, pid: number): RestoreReason {
  return { ...r, where: `task ${pid} ${r.where}` };
}

/** The reasons as one line: the first three, then how many more (all of them: `crimg restore --check`). */
export function formatReasons(r: RestoreReason[]): string {
  const shown = r
    .slice(0, 3)
    .map((x) => `${x.code} (${x.where}): ${x.text}`)
    .join('; ');
  return r.length > 3 ? `${shown}; and ${r.length - 3} more (see crimg restore --check)` : shown;
}
