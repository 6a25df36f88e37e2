/**
 * The process model: plain data describing the user-visible state of x86_64
 * tasks. The writer turns a Model into an image, the reader turns an image back
 * into a Model. Page contents are not held here: each VMA has a PageSource that
 * produces its pages on demand into kernel memory, so gigabytes never sit in JS.
 */
import type { Kernels } from './kernels/api.js';

export const ARCH_X86_64 = 62; // EM_X86_64

export interface Uts {
  sysname: string;
  nodename: string;
  release: string;
  version: string;
  machine: string;
  domainname: string;
}

export const HeaderFlags = {
  SYNTHETIC: 1, // made by the generator
  LIVE: 2, // dumped from a live process
  CORE: 4, // converted from an ELF core file
  LEFT_STOPPED: 8, // the dumped process was left stopped
} as const;

export interface ImageHeader {
  /** Checkpoint id: unique per container/checkpointer (Linux-CR's crid). */
  crid: bigint;
  /** Creation time, nanoseconds since the Unix epoch. */
  createdNs: bigint;
  flags: number;
  /** Program that wrote the image, e.g. "crimg 0.1.0". */
  tool: string;
  /** uname of the host that made the image. */
  uts: Uts;
  /** How long the tasks were frozen while dumping, in nanoseconds (0 if not live). */
  freezeNs: bigint;
}

export interface Credentials {
  uid: number; gid: number; euid: number; egid: number;
  suid: number; sgid: number; fsuid: number; fsgid: number;
  groups: number[];
  capInh: bigint; capPrm: bigint; capEff: bigint; capBnd: bigint; capAmb: bigint;
  securebits: number;
  noNewPrivs: number;
  seccompMode: number;
}

export interface Rlimit { cur: bigint; max: bigint }

/** Namespace kinds, in the order of NamespaceIds. */
export const NS_KINDS = ['uts', 'ipc', 'mnt', 'pid', 'net', 'user', 'cgroup', 'time'] as const;
export type NsKind = typeof NS_KINDS[number];
/** Namespace ids (the inode numbers of /proc/PID/ns/*; 0 = unknown). */
export type NamespaceIds = Record<NsKind, bigint>;

export interface Namespace {
  kind: NsKind;
  id: bigint;
  /** For uts namespaces: the host and domain names seen inside. */
  nodename?: string;
  domainname?: string;
}

/**
 * The namespaces `tasks` use, one entry per distinct kind and id, in task order; a UTS namespace with the names
 * `uts` gives for it (null: unknown).
 */
export function namespacesOf(tasks: Task[], uts: (t: Task, id: bigint) => { nodename: string; domainname: string } | null): Namespace[] {
  const out: Namespace[] = [];
  for (const t of tasks) {
    for (const kind of NS_KINDS) {
      const id = t.ns[kind];
      if (!id || out.some((n) => n.kind === kind && n.id === id)) continue;
      const ns: Namespace = { kind, id };
      if (kind === 'uts') {
        const u = uts(t, id);
        if (u) { ns.nodename = u.nodename; ns.domainname = u.domainname; }
      }
      out.push(ns);
    }
  }
  return out;
}

export interface Rseq { ptr: bigint; len: number; sig: number; flags: number }

export interface XState {
  /** XCR0 of the CPU that produced the state (what ELF cores store at bytes 464..471). */
  xcr0: bigint;
  /** Standard-form XSAVE bytes from offset 512 on (XSAVE header + extended components).
   *  The legacy region 0..511 is the thread's FXSAVE area. */
  ext: Uint8Array;
}

export interface Thread {
  tid: number;
  /** user_regs_struct: 27 u64 in kernel order (see schema REG_NAMES). */
  regs: BigUint64Array;
  /** FXSAVE area, 512 bytes. */
  fpu: Uint8Array;
  xstate: XState | null;
  sigmask: bigint;
  sigpending: bigint;
  rseq: Rseq | null;
  /** Scheduler state letter from /proc (R, S, D, t, ...), or '' if unknown. */
  state: string;
  /** clear_child_tid and the robust futex list; undefined when not recorded. */
  futex?: ThreadFutex;
  /** The alternate signal stack (sigaltstack; flags SS_DISABLE = 2 when there is none); undefined when not recorded. */
  sigaltstack?: SigAltStack;
}

/** stack_t of sigaltstack(2): SA_ONSTACK handlers run on [sp, sp + size). flags: SS_ONSTACK 1, SS_DISABLE 2,
 *  SS_AUTODISARM 1 << 31. */
export interface SigAltStack { sp: bigint; size: bigint; flags: number }

/** Per-thread futex state: where the kernel clears the tid and wakes a futex when the thread exits
 *  (set_tid_address, CLONE_CHILD_CLEARTID; pthread_join waits on it) and the robust futex list (set_robust_list). */
export interface ThreadFutex { clearChildTid: bigint; robustHead: bigint; robustLen: bigint }

export const Prot = { READ: 1, WRITE: 2, EXEC: 4 } as const;
export const VmaFlags = {
  SHARED: 1, // MAP_SHARED (else private)
  ANON: 2, // no backing file
  GROWSDOWN: 4,
  STACK: 8,
  HEAP: 16,
  VDSO: 32,
  VVAR: 64,
  VSYSCALL: 128,
  FILE_DELETED: 256, // backing file was deleted
  HUGETLB: 512,
  // madvise/mlock state (smaps VmFlags), restored by restore.ts
  HUGEPAGE: 1 << 10, // MADV_HUGEPAGE (hg)
  NOHUGEPAGE: 1 << 11, // MADV_NOHUGEPAGE (nh)
  DONTDUMP: 1 << 12, // MADV_DONTDUMP (dd)
  DONTFORK: 1 << 13, // MADV_DONTFORK (dc)
  WIPEONFORK: 1 << 14, // MADV_WIPEONFORK (wf)
  MERGEABLE: 1 << 15, // MADV_MERGEABLE, KSM (mg)
  LOCKED: 1 << 16, // mlock (lo)
  SEQ_READ: 1 << 17, // MADV_SEQUENTIAL (sr)
  RAND_READ: 1 << 18, // MADV_RANDOM (rr)
} as const;

/** smaps VmFlags mnemonics of the VmaFlags that record madvise/mlock state. */
export const VMFLAG_MNEMONICS: readonly [string, number][] = [
  ['hg', VmaFlags.HUGEPAGE], ['nh', VmaFlags.NOHUGEPAGE], ['dd', VmaFlags.DONTDUMP], ['dc', VmaFlags.DONTFORK],
  ['wf', VmaFlags.WIPEONFORK], ['mg', VmaFlags.MERGEABLE], ['lo', VmaFlags.LOCKED], ['sr', VmaFlags.SEQ_READ], ['rr', VmaFlags.RAND_READ],
];

/** Produces the pages of one VMA into kernel memory. Page indices are relative to the VMA start. */
export interface PageSource {
  /** Sorted, disjoint [first, count] runs of pages that exist (were populated). Absent pages are not
   *  recorded at all (a restore leaves them as the mapping provides: zero for anonymous memory, file
   *  contents for file mappings). */
  runs(npages: number): Iterable<[number, number]>;
  /** Write n full pages (page `first` on) at dst in the kernels' memory. */
  read(k: Kernels, dst: number, first: number, n: number): void;
  /** Optional fused path: write only the non-zero pages, compacted, at dst; set the bitmap; feed the
   *  stored pages to hash slot `slot`. Returns the number of pages stored. */
  pack?(k: Kernels, dst: number, first: number, n: number, bitmapPtr: number, slot: number): number;
}

export interface Vma {
  start: bigint;
  end: bigint;
  prot: number;
  flags: number;
  /** Offset into the backing file in pages (the kernel's vm_pgoff). */
  pgoff: bigint;
  devMajor: number;
  devMinor: number;
  inode: bigint;
  /** Backing file path, or a pseudo name such as "[heap]", "[stack]", "[vdso]"; null for anonymous. */
  path: string | null;
  pages: PageSource;
}

export interface MmFields {
  startCode: bigint; endCode: bigint; startData: bigint; endData: bigint;
  startBrk: bigint; brk: bigint; startStack: bigint;
  argStart: bigint; argEnd: bigint; envStart: bigint; envEnd: bigint;
}
export const MM_FIELD_NAMES = [
  'startCode', 'endCode', 'startData', 'endData', 'startBrk', 'brk', 'startStack',
  'argStart', 'argEnd', 'envStart', 'envEnd',
] as const;

export interface Mm extends MmFields {
  /** Auxiliary vector as (type, value) u64 pairs flattened, without the terminating AT_NULL. */
  auxv: bigint[];
  vmas: Vma[];
}

export const FdKind = { REGULAR: 0, DIRECTORY: 1, OTHER: 2 } as const;
export type FdKindName = 'regular' | 'directory' | 'other';
export const FD_KIND_NAMES: FdKindName[] = ['regular', 'directory', 'other'];

export interface OpenFile {
  fd: number;
  kind: number;
  /** Path for regular files and directories; the link text (socket:[123], anon_inode:[eventfd]) for others. */
  path: string;
  /** open(2) flags (O_ACCMODE | O_APPEND | ...). */
  flags: number;
  pos: bigint;
  mode: number;
  cloexec: boolean;
  devMajor: number;
  devMinor: number;
  inode: bigint;
  size: bigint;
  /** Locks held through this descriptor (each lock on one of the fds that reach it); undefined: none. */
  locks?: FileLock[];
  /** An eventfd, timerfd, signalfd or epoll (kind OTHER): the object's state; undefined for other files. */
  anon?: AnonFd;
  /** One end of a pipe the task holds (kind OTHER, path pipe:[INO]); undefined for other files. */
  pipe?: PipeEnd;
  /** One socket of a UNIX socket pair the task holds both of (kind OTHER, path socket:[INO]). */
  unixPair?: UnixPairEnd;
  /** An inotify instance (kind OTHER): its watches by ascending wd. */
  inotify?: InotifyWatch[];
  /** A listening TCP socket with no connection waiting (kind OTHER). */
  tcpListen?: TcpListen;
}

/** A listening TCP socket: family (AF_INET 2, AF_INET6 10), address (4 or 16 bytes), port, backlog, and options
 *  (bit 0 SO_REUSEADDR, bit 1 SO_REUSEPORT, bit 2 IPV6_V6ONLY). */
export interface TcpListen { family: number; addr: Uint8Array; port: number; backlog: number; opts: number }

/** A watch of an inotify instance: its wd, the mask it was added with, and the watched file's path. */
export interface InotifyWatch { wd: number; mask: number; path: string }

/** A socket of a socketpair: the pair's id (its lower inode at the checkpoint), which of the two, the type
 *  (SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5), and on the socket's lowest fd the bytes queued to it. */
export interface UnixPairEnd { pair: bigint; second: boolean; type: number; data?: Uint8Array }

/** An end of a pipe: the pipe's inode (the fds of one pipe share it), which end, the capacity, and on the pipe's
 *  lowest fd the bytes buffered in it. */
export interface PipeEnd { ino: bigint; write: boolean; size: number; data?: Uint8Array }

/** Anonymous-inode files crimg saves whole (see src/live/anonfd.ts). */
export const ANON_KIND = { EVENTFD: 1, TIMERFD: 2, SIGNALFD: 3, EPOLL: 4 } as const;

/** The state of an anonymous-inode file, as the ANON_FD record holds it: eventfd (count, semaphore 0/1), timerfd
 *  (clock, settime flags, interval ns, remaining ns, ticks), signalfd (mask), epoll ((fd, events, data) triples). */
export interface AnonFd { kind: number; values: bigint[] }

/** Kinds of file lock: flock(2) (per open file description), POSIX fcntl (per process), OFD fcntl (per description). */
export const LOCK_KIND = { FLOCK: 1, POSIX: 2, OFD: 3 } as const;
/** `end` of a lock that reaches to the end of the file, however long it grows. */
export const LOCK_EOF = 0xffffffffffffffffn;

/** A file lock: its kind (LOCK_KIND), read or write, and the bytes [start, end] it covers (flock: 0, LOCK_EOF). */
export interface FileLock { kind: number; write: boolean; start: bigint; end: bigint }

export interface NocrReason {
  /** Stable code, e.g. SOCKET_EXTERNAL, PIPE, EVENTFD, DEVICE, TRACED. */
  code: string;
  /** Task (tid) the reason applies to. */
  pid: number;
  /** A plain sentence. */
  text: string;
}

/** A signal disposition other than SIG_DFL: the kernel's struct sigaction for rt_sigaction(2). */
export interface SigAction {
  sig: number;
  /** Handler address, or 1 for SIG_IGN. */
  handler: bigint;
  /** SA_* flags (SA_RESTORER, SA_SIGINFO, SA_RESTART, SA_ONSTACK, ...). */
  flags: bigint;
  restorer: bigint;
  /** Signals blocked while the handler runs (bit n-1 = signal n). */
  mask: bigint;
}

/** An interval timer in use (setitimer): which 0 ITIMER_REAL, 1 ITIMER_VIRTUAL, 2 ITIMER_PROF; microseconds.
 *  valueUs 0 with an interval: it expired and its signal is pending (ITIMER_REAL is re-armed when that signal is
 *  taken); restore queues that signal again and starts a new interval. */
export interface Itimer { which: number; intervalUs: bigint; valueUs: bigint }

/** How a POSIX timer notifies (sigev_notify): a signal to the process, nothing, or a signal to one thread. */
export const SIGEV = { SIGNAL: 0, NONE: 1, THREAD_ID: 4 } as const;

/** Clocks a POSIX timer may have in an image: REALTIME, MONOTONIC, PROCESS_CPUTIME_ID, BOOTTIME, REALTIME_ALARM,
 *  BOOTTIME_ALARM, TAI, and -6, the process's own CPU clock as glibc asks for CLOCK_PROCESS_CPUTIME_ID
 *  (MAKE_PROCESS_CPUCLOCK(0, CPUCLOCK_SCHED)). Not a thread's CPU clock (glibc's CLOCK_THREAD_CPUTIME_ID is -2: the
 *  thread that created the timer, which the kernel does not tell) nor another process's. */
export const POSIX_TIMER_CLOCKS: readonly number[] = [0, 1, 2, 7, 8, 9, 11, -6];

/** A POSIX timer (timer_create): its id (the process's timer_t), clock, how it notifies (SIGEV; notifyTid for
 *  SIGEV_THREAD_ID), the signal and sigev_value it delivers, and its interval and remaining time as at the freeze
 *  in nanoseconds (both 0: disarmed; remaining 0 with an interval: it expired and its signal is pending). */
export interface PosixTimer {
  id: number; clock: number; notify: number; notifyTid: number; signo: number; sigevValue: bigint; intervalNs: bigint; valueNs: bigint;
}

export interface Task {
  pid: number; tgid: number; ppid: number; pgid: number; sid: number;
  comm: string;
  exe: string;
  cwd: string;
  root: string;
  args: string[];
  env: string[];
  personality: number;
  exitSignal: number;
  creds: Credentials;
  /** RLIMIT_CPU .. RLIMIT_RTTIME, 16 entries. */
  rlimits: Rlimit[];
  ns: NamespaceIds;
  threads: Thread[];
  mm: Mm | null;
  files: OpenFile[];
  nocr: NocrReason[];
  /** Signal dispositions other than SIG_DFL, by ascending signal; undefined when the image does not record them
   *  (synthetic images, ELF cores). Shared by all threads of the task. */
  sigactions?: SigAction[];
  /** Armed interval timers (setitimer; alarm is ITIMER_REAL), remaining time as at the freeze; undefined when not
   *  recorded. */
  itimers?: Itimer[];
  /** POSIX timers (timer_create) by ascending id; undefined when not recorded. */
  posixTimers?: PosixTimer[];
}

export interface Model {
  header: ImageHeader;
  namespaces: Namespace[];
  /** Tasks in pre-order: every parent before its children. */
  tasks: Task[];
}

// ---------------------------------------------------------------- helpers

export const NREGS = 27;
export const FXSAVE_BYTES = 512;

export function emptyCreds(): Credentials {
  return {
    uid: 0, gid: 0, euid: 0, egid: 0, suid: 0, sgid: 0, fsuid: 0, fsgid: 0, groups: [],
    capInh: 0n, capPrm: 0n, capEff: 0n, capBnd: 0n, capAmb: 0n, securebits: 0, noNewPrivs: 0, seccompMode: 0,
  };
}

export function emptyNsIds(): NamespaceIds {
  return { uts: 0n, ipc: 0n, mnt: 0n, pid: 0n, net: 0n, user: 0n, cgroup: 0n, time: 0n };
}

export const RLIM_INFINITY = 0xffffffffffffffffn;
export function defaultRlimits(): Rlimit[] {
  const r: Rlimit[] = [];
  for (let i = 0; i < 16; i++) r.push({ cur: RLIM_INFINITY, max: RLIM_INFINITY });
  r[3] = { cur: 8n << 20n, max: RLIM_INFINITY }; // RLIMIT_STACK
  r[4] = { cur: 0n, max: RLIM_INFINITY }; // RLIMIT_CORE
  r[7] = { cur: 1024n, max: 1048576n }; // RLIMIT_NOFILE
  return r;
}

/** A fresh FXSAVE area as the kernel gives a new process: fcw 0x37f, mxcsr 0x1f80, mxcsr_mask 0xffff. */
export function freshFxsave(b = new Uint8Array(FXSAVE_BYTES)): Uint8Array {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  dv.setUint16(0, 0x37f, true);
  dv.setUint32(24, 0x1f80, true);
  dv.setUint32(28, 0xffff, true);
  return b;
}

/** A thread with zero registers and a fresh FXSAVE area (optionally in caller-provided storage). */
export function newThread(tid: number, regs = new BigUint64Array(NREGS), fpu = new Uint8Array(FXSAVE_BYTES)): Thread {
  return {
    tid, regs, fpu: freshFxsave(fpu), xstate: null,
    sigmask: 0n, sigpending: 0n, rseq: null, state: '',
  };
}

/** Page sources held in JS memory: for tests and small models. */
export class MemoryPageSource implements PageSource {
  constructor(
    /** Full contents of the VMA (or a prefix; pages past it read as zero). */
    readonly data: Uint8Array,
    /** Present runs; default: every page. */
    readonly present?: [number, number][],
  ) {}
  runs(npages: number): Iterable<[number, number]> {
    return this.present ?? (npages > 0 ? [[0, npages]] : []);
  }
  read(k: Kernels, dst: number, first: number, n: number): void {
    const m = k.u8();
    const from = first * 4096;
    const to = from + n * 4096;
    m.fill(0, dst, dst + n * 4096);
    if (from < this.data.length) m.set(this.data.subarray(from, Math.min(to, this.data.length)), dst);
  }
}

/** A VMA without any recorded pages. */
export const NO_PAGES: PageSource = {
  runs: () => [],
  read: (k, dst, _first, n) => { k.u8().fill(0, dst, dst + n * 4096); },
};
