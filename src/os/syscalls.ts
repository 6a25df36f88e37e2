/**
 * The x86_64 Linux system call numbers crimg uses (arch/x86/entry/syscalls/syscall_64.tbl), by their kernel
 * names: the one table for calls crimg makes itself (libc's syscall()), runs in a frozen thread (taskcall.ts) or
 * injects into a task being restored (src/restore/inject.ts).
 */
export const SYS = {
  read: 0, write: 1, open: 2, close: 3, poll: 7, lseek: 8, mmap: 9, mprotect: 10, munmap: 11, brk: 12,
  rt_sigaction: 13, rt_sigprocmask: 14, ioctl: 16, mremap: 25, madvise: 28, dup2: 33, getitimer: 36, setitimer: 38,
  getpid: 39, socket: 41, recvfrom: 45, bind: 49, listen: 50, socketpair: 53, setsockopt: 54, clone: 56, fork: 57,
  wait4: 61, uname: 63, fcntl: 72, flock: 73, chdir: 80, fchdir: 81, ptrace: 101, setpgid: 109, setsid: 112,
  setgroups: 116, setresuid: 117, setresgid: 119, setfsuid: 122, setfsgid: 123, sigaltstack: 131, personality: 135,
  mlock: 149, prctl: 157, arch_prctl: 158, gettid: 186, set_tid_address: 218, restart_syscall: 219,
  timer_create: 222, timer_settime: 223, timer_gettime: 224, timer_delete: 226, clock_nanosleep: 230,
  exit_group: 231, epoll_ctl: 233, inotify_add_watch: 254, inotify_rm_watch: 255, openat: 257, unshare: 272,
  set_robust_list: 273, get_robust_list: 274, tee: 276, timerfd_create: 283, timerfd_settime: 286, signalfd4: 289,
  eventfd2: 290, epoll_create1: 291, dup3: 292, pipe2: 293, inotify_init1: 294, rt_tgsigqueueinfo: 297,
  prlimit64: 302, open_by_handle_at: 304, setns: 308, userfaultfd: 323, rseq: 334, pidfd_open: 434, clone3: 435,
  close_range: 436, pidfd_getfd: 438,
} as const;

export type SyscallName = keyof typeof SYS;

const NAMES = new Map<number, string>(Object.entries(SYS).map(([k, v]) => [v, k]));

/** The name of system call nr (`syscall N` when crimg does not use it). */
export function nrName(nr: number): string {
  return NAMES.get(nr) ?? `syscall ${nr}`;
}
