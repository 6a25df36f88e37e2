/**
 * x86_64 Linux constants crimg passes to the kernel or reads from it, each declared once: open and fcntl flags,
 * mmap and mremap, prctl, signals, sockets, errno values. Constants only one kind of state uses (an epoll op, a
 * unix_diag attribute) stay with that kind's module.
 */

// ------------------------------------------------------------------ open(2), fcntl(2), lseek(2)

export const O_RDONLY = 0,
  O_WRONLY = 1,
  O_RDWR = 2,
  O_ACCMODE = 3;
export const O_CREAT = 0o100,
  O_EXCL = 0o200,
  O_NOCTTY = 0o400,
  O_TRUNC = 0o1000,
  O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000,
  O_DIRECTORY = 0o200000,
  O_CLOEXEC = 0o2000000,
  O_PATH = 0o10000000;
export const AT_FDCWD = -100;
export const SEEK_SET = 0,
  SEEK_DATA = 3,
  SEEK_HOLE = 4;

export const F_GETFL = 3,
  F_SETFL = 4,
  F_SETLK = 6,
  F_OFD_SETLK = 37;
export const F_DUPFD_CLOEXEC = 1030,
  F_SETPIPE_SZ = 1031,
  F_GETPIPE_SZ = 1032;
export const F_RDLCK = 0,
  F_WRLCK = 1;
export const FD_CLOEXEC = 1;
/** flock(2) operations. */
export const LOCK_SH = 1,
  LOCK_EX = 2,
  LOCK_NB = 4;
/** ioctl: bytes waiting to be read in a pipe, FIFO or socket. */
export const FIONREAD = 0x541b;

/** File types of st_mode. */
export const S_IFMT = 0o170000,
  S_IFSOCK = 0o140000,
  S_IFREG = 0o100000,
  S_IFBLK = 0o060000,
  S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000,
  S_IFIFO = 0o010000;

// ------------------------------------------------------------------ memory

export const PROT_READ = 1,
  PROT_WRITE = 2,
  PROT_EXEC = 4;
export const MAP_SHARED = 1,
  MAP_PRIVATE = 2,
  MAP_ANONYMOUS = 0x20,
  MAP_GROWSDOWN = 0x100,
  MAP_LOCKED = 0x2000;
export const MAP_FIXED_NOREPLACE = 0x100000;
export const MREMAP_MAYMOVE = 1,
  MREMAP_FIXED = 2;
export const MADV_HUGEPAGE = 14;

// ------------------------------------------------------------------ processes

export const PR_SET_DUMPABLE = 4,
  PR_SET_NAME = 15,
  PR_CAPBSET_DROP = 24,
  PR_SET_MM = 35,
  PR_SET_CHILD_SUBREAPER = 36;
export const PR_GET_CHILD_SUBREAPER = 37,
  PR_SET_NO_NEW_PRIVS = 38,
  PR_GET_TID_ADDRESS = 40;
export const PR_GET_DUMPABLE = 3,
  PR_SET_TIMERSLACK = 29,
  PR_GET_THP_DISABLE = 42,
  PR_SET_THP_DISABLE = 41;
export const PR_TIMER_CREATE_RESTORE_IDS = 77;
/** PR_SET_MM sub-option: the whole struct prctl_mm_map. */
export const PR_SET_MM_MAP = 14;
export const ARCH_REQ_XCOMP_PERM = 0x1023;
export const RSEQ_FLAG_UNREGISTER = 1;
export const CLONE_NEWUTS = 0x04000000,
  CLONE_NEWPID = 0x20000000;
/** PF_* flag of /proc/PID/stat: a kernel thread. */
export const PF_KTHREAD = 0x00200000;

// ------------------------------------------------------------------ signals

export const SIG = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPWR: 30,
  SIGSYS: 31,
} as const;
export type SignalName = keyof typeof SIG;

/** Signals whose default action stops the process (group-stop). */
export const STOP_SIGNALS: ReadonlySet<number> = new Set([SIG.SIGSTOP, SIG.SIGTSTP, SIG.SIGTTIN, SIG.SIGTTOU]);

/** Handlers of rt_sigaction(2) that are not addresses. */
export const SIG_DFL = 0,
  SIG_IGN = 1;
/** sigaltstack(2) flags. */
export const SS_ONSTACK = 1,
  SS_DISABLE = 2;
/** si_code of a signal a POSIX timer sends. */
export const SI_TIMER = -2;

/** Parse "USR2", "SIGUSR2", "12" or "RTMIN+3" into a signal number. Returns 0 when unknown. */
export function signalNumber(s: string): number {
  const t = s.trim().toUpperCase();
  if (/^\d+$/.test(t)) {
    const n = parseInt(t, 10);
    return n >= 1 && n <= 64 ? n : 0;
  }
  const name = t.startsWith('SIG') ? t : `SIG${t}`;
  if (name in SIG) return SIG[name as SignalName];
  const rt = /^SIGRTMIN(?:\+(\d+))?$/.exec(name);
  if (rt) {
    const n = 34 + (rt[1] ? parseInt(rt[1], 10) : 0);
    return n <= 64 ? n : 0;
  }
  const rtm = /^SIGRTMAX(?:-(\d+))?$/.exec(name);
  if (rtm) {
    const n = 64 - (rtm[1] ? parseInt(rtm[1], 10) : 0);
    return n >= 34 ? n : 0;
  }
  return 0;
}

export function signalName(n: number): string {
  for (const [k, v] of Object.entries(SIG)) if (v === n) return k;
  if (n >= 34 && n <= 64) return n === 34 ? 'SIGRTMIN' : `SIGRTMIN+${n - 34}`;
  return `signal ${n}`;
}

// ------------------------------------------------------------------ sockets

export const AF_UNIX = 1,
  AF_INET = 2,
  AF_INET6 = 10,
  AF_NETLINK = 16;
export const SOCK_STREAM = 1,
  SOCK_DGRAM = 2,
  SOCK_NONBLOCK = O_NONBLOCK,
  SOCK_CLOEXEC = O_CLOEXEC;
export const SOL_SOCKET = 1,
  SO_REUSEADDR = 2,
  SO_REUSEPORT = 15;
export const IPPROTO_TCP = 6,
  IPPROTO_IPV6 = 41,
  IPV6_V6ONLY = 26;
export const MSG_PEEK = 2,
  MSG_DONTWAIT = 0x40;

// ------------------------------------------------------------------ errno

export const EPERM = 1,
  ENOENT = 2,
  ESRCH = 3,
  EINTR = 4,
  EIO = 5,
  ENXIO = 6,
  E2BIG = 7,
  EBADF = 9,
  ECHILD = 10;
export const EAGAIN = 11,
  ENOMEM = 12,
  EACCES = 13,
  EFAULT = 14,
  EBUSY = 16,
  EEXIST = 17,
  EINVAL = 22,
  ENOTTY = 25;
export const ENOSYS = 38,
  EOPNOTSUPP = 95;

export const ERRNO = {
  EPERM,
  ENOENT,
  ESRCH,
  EINTR,
  EIO,
  ENXIO,
  E2BIG,
  EBADF,
  ECHILD,
  EAGAIN,
  ENOMEM,
  EACCES,
  EFAULT,
  EBUSY,
  EEXIST,
  EINVAL,
  ENOTTY,
  ENOSYS,
  EOPNOTSUPP,
} as const;
