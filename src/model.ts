/**
 * The process model: plain data describing the user-visible state of x86_64
 * tasks. The writer turns a Model into an image, the reader turns an image back
 * into a Model. Page contents are not held here: each VMA has a PageSource that
 * produces its pages on demand into kernel memory, so gigabytes never sit in JS.
 */
import type { Kernels } from './kernels/api.js';
import type { SigAction } from './kinds/sigacts/format.js';
import type { Itimer } from './kinds/itimers/format.js';
import type { PosixTimer } from './kinds/posix-timers/format.js';
import type { ThreadFutex } from './kinds/futex/format.js';
import type { SigAltStack } from './kinds/sigaltstack/format.js';
import type { FileLock } from './kinds/flocks/format.js';
import type { AnonFd } from './kinds/anon-fd/format.js';
import type { PipeEnd } from './kinds/pipe/format.js';
import type { InotifyWatch } from './kinds/inotify/format.js';
import type { TcpListen } from './kinds/tcp-listen/format.js';
import type { UnixPairEnd } from './kinds/unix-pair/format.js';

// The model types of the optional kinds of state live in their modules (src/kinds/<kind>/format.ts).
export type { SigAction, Itimer, PosixTimer, ThreadFutex, SigAltStack, FileLock, AnonFd, PipeEnd, InotifyWatch, TcpListen, UnixPairEnd };
export { SIGEV, POSIX_TIMER_CLOCKS } from './kinds/posix-timers/format.js';
export { LOCK_KIND, LOCK_EOF } from './kinds/flocks/format.js';
export { ANON_KIND } from './kinds/anon-fd/format.js';

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
  uid: number;
  gid: number;
  euid: number;
  egid: number;
  suid: number;
  sgid: number;
  fsuid: number;
  fsgid: number;
  groups: number[];
  capInh: bigint;
  capPrm: bigint;
  capEff: bigint;
  capBnd: bigint;
  capAmb: bigint;
  securebits: number;
  noNewPrivs: number;
  seccompMode: number;
}

export interface Rlimit {
  cur: bigint;
  max: bigint;
}

/** Namespace kinds, in the order of NamespaceIds. */
export const NS_KINDS = ['uts', 'ipc', 'mnt', 'pid', 'net', 'user', 'cgroup', 'time'] as const;
export type NsKind = (typeof NS_KINDS)[number];
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
        if (u) {
          ns.nodename = u.nodename;
          ns.domainname = u.domainname;
        }
      }
      out.push(ns);
    }
  }
  return out;
}

export interface Rseq {
  ptr: bigint;
  len: number;
  sig: number;
  flags: number;
}

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
  // madvise/mlock state (smaps VmFlags), restored by src/restore/memory.ts
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
  ['hg', VmaFlags.HUGEPAGE],
  ['nh', VmaFlags.NOHUGEPAGE],
  ['dd', VmaFlags.DONTDUMP],
  ['dc', VmaFlags.DONTFORK],
  ['wf', VmaFlags.WIPEONFORK],
  ['mg', VmaFlags.MERGEABLE],
  ['lo', VmaFlags.LOCKED],
  ['sr', VmaFlags.SEQ_READ],
  ['rr', VmaFlags.RAND_READ],
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
  startCode: bigint;
  endCode: bigint;
  startData: bigint;
  endData: bigint;
  startBrk: bigint;
  brk: bigint;
  startStack: bigint;
  argStart: bigint;
  argEnd: bigint;
  envStart: bigint;
  envEnd: bigint;
}
export const MM_FIELD_NAMES = [
  'startCode',
  'endCode',
  'startData',
  'endData',
  'startBrk',
  'brk',
  'startStack',
  'argStart',
  'argEnd',
  'envStart',
  'envEnd',
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

export interface NocrReason {
  /** Stable code, e.g. SOCKET_EXTERNAL, PIPE, EVENTFD, DEVICE, TRACED. */
  code: string;
  /** Task (tid) the reason applies to. */
  pid: number;
  /** A plain sentence. */
  text: string;
}

export interface Task {
  pid: number;
  tgid: number;
  ppid: number;
  pgid: number;
  sid: number;
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
    uid: 0,
    gid: 0,
    euid: 0,
    egid: 0,
    suid: 0,
    sgid: 0,
    fsuid: 0,
    fsgid: 0,
    groups: [],
    capInh: 0n,
    capPrm: 0n,
    capEff: 0n,
    capBnd: 0n,
    capAmb: 0n,
    securebits: 0,
    noNewPrivs: 0,
    seccompMode: 0,
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
  return { tid, regs, fpu: freshFxsave(fpu), xstate: null, sigmask: 0n, sigpending: 0n, rseq: null, state: '' };
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
  read: (k, dst, _first, n) => {
    k.u8().fill(0, dst, dst + n * 4096);
  },
};
