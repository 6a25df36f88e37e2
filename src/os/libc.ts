/**
 * Typed bindings to the few libc functions live checkpoint and restore need,
 * through koffi (loaded lazily: importing this module costs nothing until a
 * function is called).
 *
 * Conventions:
 *  - Every wrapper throws a SysError (errno, name, syscall) when the call fails;
 *    callers turn it into a CrimgError with context (no such process, permission...).
 *  - All calls are synchronous and happen on the calling (JS main) thread. ptrace
 *    requests must always come from the thread that attached, so never use koffi's
 *    async calls with ptrace.
 *  - Buffers passed to the kernel are typed arrays (koffi hands the kernel a pointer
 *    to their contents for the duration of the call; no copy). For reads straight
 *    into WebAssembly memory use addressOf() on the memory view and the *Raw forms.
 */
import koffi from 'koffi';
import { fstatSync } from 'node:fs';
import { ERRNO, FIONREAD, O_APPEND, O_CREAT, O_RDONLY, O_TRUNC, O_WRONLY, signalName } from './consts.js';
import { SYS } from './syscalls.js';

// ------------------------------------------------------------------ constants

export const PTRACE = {
  TRACEME: 0,
  PEEKTEXT: 1,
  PEEKDATA: 2,
  PEEKUSER: 3,
  POKETEXT: 4,
  POKEDATA: 5,
  POKEUSER: 6,
  CONT: 7,
  KILL: 8,
  SINGLESTEP: 9,
  GETREGS: 12,
  SETREGS: 13,
  GETFPREGS: 14,
  SETFPREGS: 15,
  ATTACH: 16,
  DETACH: 17,
  SYSCALL: 24,
  SETOPTIONS: 0x4200,
  GETEVENTMSG: 0x4201,
  GETSIGINFO: 0x4202,
  SETSIGINFO: 0x4203,
  GETREGSET: 0x4204,
  SETREGSET: 0x4205,
  SEIZE: 0x4206,
  INTERRUPT: 0x4207,
  LISTEN: 0x4208,
  PEEKSIGINFO: 0x4209,
  GETSIGMASK: 0x420a,
  SETSIGMASK: 0x420b,
  SECCOMP_GET_FILTER: 0x420c,
  SECCOMP_GET_METADATA: 0x420d,
  GET_SYSCALL_INFO: 0x420e,
  GET_RSEQ_CONFIGURATION: 0x420f,
} as const;

export const PTRACE_O = {
  TRACESYSGOOD: 0x1,
  TRACEFORK: 0x2,
  TRACEVFORK: 0x4,
  TRACECLONE: 0x8,
  TRACEEXEC: 0x10,
  TRACEVFORKDONE: 0x20,
  TRACEEXIT: 0x40,
  TRACESECCOMP: 0x80,
  EXITKILL: 0x100000,
  SUSPEND_SECCOMP: 0x200000,
} as const;

export const PTRACE_EVENT = { FORK: 1, VFORK: 2, CLONE: 3, EXEC: 4, VFORK_DONE: 5, EXIT: 6, SECCOMP: 7, STOP: 128 } as const;

/** ELF note types used with PTRACE_GETREGSET / SETREGSET. */
export const NT = { PRSTATUS: 1, PRFPREG: 2, X86_XSTATE: 0x202 } as const;

export const WAIT = {
  WNOHANG: 1,
  WUNTRACED: 2,
  WEXITED: 4,
  WCONTINUED: 8,
  WNOWAIT: 0x1000000,
  __WNOTHREAD: 0x20000000,
  __WALL: 0x40000000,
  __WCLONE: 0x80000000,
} as const;

// ------------------------------------------------------------------ wait status

export const WIFEXITED = (s: number): boolean => (s & 0x7f) === 0;
export const WEXITSTATUS = (s: number): number => (s >> 8) & 0xff;
export const WIFSIGNALED = (s: number): boolean => (s & 0x7f) !== 0 && (s & 0x7f) !== 0x7f;
export const WTERMSIG = (s: number): number => s & 0x7f;
export const WIFSTOPPED = (s: number): boolean => (s & 0xff) === 0x7f;
export const WSTOPSIG = (s: number): number => (s >> 8) & 0xff;
/** The PTRACE_EVENT_* of a ptrace stop (0 for signal-delivery-stops). */
export const WPTRACEEVENT = (s: number): number => (s >>> 16) & 0xff;

// ------------------------------------------------------------------ errors

let errnoNames: Map<number, string> | undefined;
export function errnoName(n: number): string {
  if (!errnoNames) {
    errnoNames = new Map();
    for (const [k, v] of Object.entries(koffi.os.errno)) if (!errnoNames.has(v)) errnoNames.set(v, k);
  }
  return errnoNames.get(n) ?? `errno ${n}`;
}

/** A failed system call. */
export class SysError extends Error {
  constructor(
    readonly syscall: string,
    readonly errno: number,
    detail = '',
  ) {
    super(`${syscall}${detail ? ` ${detail}` : ''}: ${errnoName(errno)} (${strerror(errno)})`);
    this.name = 'SysError';
  }
  get code(): string {
    return errnoName(this.errno);
  }
}

export function isSysError(e: unknown, errno?: number): e is SysError {
  return e instanceof SysError && (errno === undefined || e.errno === errno);
}

// ------------------------------------------------------------------ the bindings

/** A function bound by koffi (its argument and result types are declared in the binding). */
// biome-ignore lint/suspicious/noExplicitAny: koffi converts arguments and results by the declared C types
export type Fn = (...args: any[]) => any;
interface Libc {
  ptrace: Fn;
  syscall: Fn;
  waitpid: Fn;
  kill: Fn;
  tgkill: Fn;
  strerror: Fn;
  mempcpy: Fn;
  process_vm_readv: Fn;
  process_vm_writev: Fn;
  prctl: Fn;
  getpid: Fn;
  gettid: Fn;
  posix_spawnp: Fn;
  fa_init: Fn;
  fa_destroy: Fn;
  fa_addopen: Fn;
  fa_adddup2: Fn;
  fa_addchdir: Fn;
  attr_init: Fn;
  attr_destroy: Fn;
  attr_setflags: Fn;
  attr_setsigdefault: Fn;
  attr_setsigmask: Fn;
  attr_setpgroup: Fn;
  sigfillset: Fn;
  sigemptyset: Fn;
  fcntl: Fn;
  ioctl: Fn;
  fallocate: Fn;
  madvise: Fn;
  getsockopt: Fn;
}

let L: Libc | undefined;

function libc(): Libc {
  if (L) return L;
  const lib = koffi.load('libc.so.6');
  L = {
    ptrace: lib.func('long ptrace(int request, ...)'),
    syscall: lib.func('long syscall(long number, ...)'),
    waitpid: lib.func('int waitpid(int pid, void *status, int options)'),
    kill: lib.func('int kill(int pid, int sig)'),
    tgkill: lib.func('int tgkill(int tgid, int tid, int sig)'),
    strerror: lib.func('const char *strerror(int errnum)'),
    mempcpy: lib.func('uintptr_t mempcpy(void *dst, void *src, size_t n)'),
    process_vm_readv: lib.func(
      'intptr_t process_vm_readv(int pid, void *local, unsigned long liovcnt, void *remote, unsigned long riovcnt, unsigned long flags)',
    ),
    process_vm_writev: lib.func(
      'intptr_t process_vm_writev(int pid, void *local, unsigned long liovcnt, void *remote, unsigned long riovcnt, unsigned long flags)',
    ),
    prctl: lib.func('int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)'),
    getpid: lib.func('int getpid()'),
    gettid: lib.func('int gettid()'),
    posix_spawnp: lib.func(
      'int posix_spawnp(void *pid, const char *file, void *file_actions, void *attrp, const char **argv, const char **envp)',
    ),
    fa_init: lib.func('int posix_spawn_file_actions_init(void *fa)'),
    fa_destroy: lib.func('int posix_spawn_file_actions_destroy(void *fa)'),
    fa_addopen: lib.func('int posix_spawn_file_actions_addopen(void *fa, int fd, const char *path, int oflag, unsigned int mode)'),
    fa_adddup2: lib.func('int posix_spawn_file_actions_adddup2(void *fa, int fd, int newfd)'),
    fa_addchdir: lib.func('int posix_spawn_file_actions_addchdir_np(void *fa, const char *path)'),
    attr_init: lib.func('int posix_spawnattr_init(void *attr)'),
    attr_destroy: lib.func('int posix_spawnattr_destroy(void *attr)'),
    attr_setflags: lib.func('int posix_spawnattr_setflags(void *attr, short flags)'),
    attr_setsigdefault: lib.func('int posix_spawnattr_setsigdefault(void *attr, void *sigset)'),
    attr_setsigmask: lib.func('int posix_spawnattr_setsigmask(void *attr, void *sigset)'),
    attr_setpgroup: lib.func('int posix_spawnattr_setpgroup(void *attr, int pgroup)'),
    sigfillset: lib.func('int sigfillset(void *set)'),
    sigemptyset: lib.func('int sigemptyset(void *set)'),
    fcntl: lib.func('int fcntl(int fd, int cmd, ...)'),
    ioctl: lib.func('int ioctl(int fd, unsigned long request, ...)'),
    fallocate: lib.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)'),
    madvise: lib.func('int madvise(uintptr_t addr, size_t len, int advice)'),
    getsockopt: lib.func('int getsockopt(int fd, int level, int opt, _Out_ int *val, _Inout_ unsigned int *len)'),
  };
  return L;
}

/** Load libc and declare the bindings now (they are otherwise loaded on first use). */
export function loadLibc(): void {
  libc();
}

/** errno left by the last libc call made through these bindings. */
export function errno(): number {
  return koffi.errno();
}
export function setErrno(v: number): void {
  koffi.errno(v);
}

export function strerror(n: number): string {
  try {
    return String(libc().strerror(n));
  } catch {
    return `errno ${n}`;
  }
}

type Word = bigint | number;
type Data = Word | ArrayBufferView | null | undefined;

function argOf(v: Data): [string, unknown] {
  if (v === null || v === undefined) return ['uintptr_t', 0];
  if (typeof v === 'number' || typeof v === 'bigint') return ['uintptr_t', v];
  return ['void *', v];
}

/** ptrace(2) without throwing: returns {ret, errno} (errno 0 on success). */
export function ptraceRaw(req: number, pid: number, addr: Data = 0, data: Data = 0): { ret: number; errno: number } {
  const l = libc();
  koffi.errno(0);
  const [ta, va] = argOf(addr);
  const [td, vd] = argOf(data);
  const ret = Number(l.ptrace(req, 'int', pid, ta, va, td, vd));
  return { ret, errno: ret === -1 ? koffi.errno() : 0 };
}

/** ptrace(2) for requests that return 0 or a small count; throws SysError on failure.
 *  (For PTRACE_PEEK* use ptracePeek, whose result can be any 64-bit word.) */
export function ptrace(req: number, pid: number, addr: Data = 0, data: Data = 0): number {
  const r = ptraceRaw(req, pid, addr, data);
  if (r.ret === -1 && r.errno) throw new SysError('ptrace', r.errno, `${ptraceName(req)} ${pid}`);
  return r.ret;
}

export function ptraceName(req: number): string {
  for (const [k, v] of Object.entries(PTRACE)) if (v === req) return `PTRACE_${k}`;
  return `ptrace request 0x${req.toString(16)}`;
}

/** PTRACE_PEEKDATA / PEEKTEXT / PEEKUSER through the raw system call (exact 64-bit result). */
export function ptracePeek(req: number, pid: number, addr: Word): bigint {
  const out = new BigUint64Array(1);
  koffi.errno(0);
  const r = Number(libc().syscall(SYS.ptrace, 'long', req, 'long', pid, 'uintptr_t', addr, 'void *', out));
  if (r === -1) throw new SysError('ptrace', koffi.errno(), `${ptraceName(req)} ${pid} 0x${BigInt(addr).toString(16)}`);
  return out[0]!;
}

/** Raw system call with up to 6 integer arguments; returns the result, throws SysError on -1. */
export function syscall(nr: number, ...args: Word[]): number {
  const a: unknown[] = [];
  for (const x of args) a.push('long', x);
  koffi.errno(0);
  const r = Number(libc().syscall(nr, ...a));
  if (r === -1 && koffi.errno()) throw new SysError(`syscall ${nr}`, koffi.errno());
  return r;
}

// ---- typed ptrace wrappers

export const USER_REGS_BYTES = 216;

export function ptraceSeize(tid: number, options = 0): void {
  ptrace(PTRACE.SEIZE, tid, 0, options);
}
export function ptraceInterrupt(tid: number): void {
  ptrace(PTRACE.INTERRUPT, tid, 0, 0);
}
export function ptraceCont(tid: number, sig = 0): void {
  ptrace(PTRACE.CONT, tid, 0, sig);
}
export function ptraceListen(tid: number): void {
  ptrace(PTRACE.LISTEN, tid, 0, 0);
}
export function ptraceDetach(tid: number, sig = 0): void {
  ptrace(PTRACE.DETACH, tid, 0, sig);
}
export function ptraceSetOptions(tid: number, options: number): void {
  ptrace(PTRACE.SETOPTIONS, tid, 0, options);
}

export function ptraceGetEventMsg(tid: number): bigint {
  const out = new BigUint64Array(1);
  ptrace(PTRACE.GETEVENTMSG, tid, 0, out);
  return out[0]!;
}

/** PTRACE_GETREGS: user_regs_struct as 27 u64 (schema REG_NAMES order). */
export function ptraceGetRegs(tid: number): BigUint64Array {
  const regs = new BigUint64Array(USER_REGS_BYTES / 8);
  ptrace(PTRACE.GETREGS, tid, 0, regs);
  return regs;
}

export function ptraceSetRegs(tid: number, regs: BigUint64Array): void {
  if (regs.length !== USER_REGS_BYTES / 8) throw new RangeError('ptraceSetRegs: need 27 registers');
  ptrace(PTRACE.SETREGS, tid, 0, regs);
}

/** PTRACE_GETREGSET into buf; returns the number of bytes the kernel filled. */
export function ptraceGetRegset(tid: number, nt: number, buf: Uint8Array): number {
  const iov = new BigUint64Array(2);
  iov[0] = BigInt(addressOf(buf));
  iov[1] = BigInt(buf.byteLength);
  ptrace(PTRACE.GETREGSET, tid, nt, iov);
  return Number(iov[1]);
}

/** PTRACE_SETREGSET from buf (its whole length). */
export function ptraceSetRegset(tid: number, nt: number, buf: Uint8Array): void {
  const iov = new BigUint64Array(2);
  iov[0] = BigInt(addressOf(buf));
  iov[1] = BigInt(buf.byteLength);
  ptrace(PTRACE.SETREGSET, tid, nt, iov);
}

export function ptraceGetSigmask(tid: number): bigint {
  const m = new BigUint64Array(1);
  ptrace(PTRACE.GETSIGMASK, tid, 8, m);
  return m[0]!;
}

export function ptraceSetSigmask(tid: number, mask: bigint): void {
  const m = new BigUint64Array([mask]);
  ptrace(PTRACE.SETSIGMASK, tid, 8, m);
}

export interface RseqConfig {
  ptr: bigint;
  len: number;
  sig: number;
  flags: number;
}

/** PTRACE_GET_RSEQ_CONFIGURATION (Linux 5.13+). Returns null when the kernel lacks it (EIO/EINVAL). */
export function ptraceGetRseq(tid: number): RseqConfig | null {
  const b = new Uint8Array(32);
  const r = ptraceRaw(PTRACE.GET_RSEQ_CONFIGURATION, tid, b.length, b);
  if (r.ret === -1) {
    if (r.errno === ERRNO.EIO || r.errno === ERRNO.EINVAL) return null;
    throw new SysError('ptrace', r.errno, `PTRACE_GET_RSEQ_CONFIGURATION ${tid}`);
  }
  const dv = new DataView(b.buffer);
  return { ptr: dv.getBigUint64(0, true), len: dv.getUint32(8, true), sig: dv.getUint32(12, true), flags: dv.getUint32(16, true) };
}

// ---- wait, signals

export interface WaitResult {
  pid: number;
  status: number;
}

/** waitpid(2); EINTR is retried. With WNOHANG, pid 0 means nothing to report. */
export function waitpid(pid: number, options = 0): WaitResult {
  const st = new Int32Array(1);
  for (;;) {
    koffi.errno(0);
    const r = libc().waitpid(pid, st, options) as number;
    if (r === -1) {
      const e = koffi.errno();
      if (e === ERRNO.EINTR) continue;
      throw new SysError('waitpid', e, String(pid));
    }
    return { pid: r, status: st[0]! };
  }
}

export function kill(pid: number, sig: number): void {
  koffi.errno(0);
  if (libc().kill(pid, sig) === -1) throw new SysError('kill', koffi.errno(), `${pid} ${signalName(sig)}`);
}

export function tgkill(tgid: number, tid: number, sig: number): void {
  koffi.errno(0);
  if (libc().tgkill(tgid, tid, sig) === -1) throw new SysError('tgkill', koffi.errno(), `${tgid}/${tid} ${signalName(sig)}`);
}

export function gettid(): number {
  return libc().gettid() as number;
}

export function prctl(option: number, a2: Word = 0, a3: Word = 0, a4: Word = 0, a5: Word = 0): number {
  koffi.errno(0);
  const r = libc().prctl(option, a2, a3, a4, a5) as number;
  if (r === -1) throw new SysError('prctl', koffi.errno(), String(option));
  return r;
}

// ---- file descriptors

export function fcntl(fd: number, cmd: number, arg = 0): number {
  koffi.errno(0);
  const r = libc().fcntl(fd, cmd, 'long', arg) as number;
  if (r === -1) throw new SysError('fcntl', koffi.errno(), `${fd} ${cmd}`);
  return r;
}

/** ioctl(fd, request, arg) with a pointer argument; returns the result, throws SysError on -1. */
export function ioctlPtr(fd: number, request: number, arg: ArrayBufferView): number {
  koffi.errno(0);
  const r = libc().ioctl(fd, request, 'void *', arg) as number;
  if (r === -1) throw new SysError('ioctl', koffi.errno(), `${fd} 0x${request.toString(16)}`);
  return r;
}

/** Bytes waiting to be read in a pipe, FIFO or socket (ioctl FIONREAD). */
export function fionread(fd: number): number {
  const n = new Int32Array(1);
  koffi.errno(0);
  if ((libc().ioctl(fd, FIONREAD, 'void *', n) as number) === -1) throw new SysError('ioctl', koffi.errno(), `${fd} FIONREAD`);
  return n[0]!;
}

/** getsockopt(2) of an int option. */
export function getsockoptInt(fd: number, level: number, opt: number): number {
  const v = new Int32Array(1),
    l = new Uint32Array([4]);
  koffi.errno(0);
  if ((libc().getsockopt(fd, level, opt, v, l) as number) !== 0) throw new SysError('getsockopt', koffi.errno(), `${level}/${opt}`);
  return v[0]!;
}

/** fallocate(2) of [offset, offset + len) (mode 0: allocate, extending the file size); false when it failed. */
export function fallocate(fd: number, offset: number, len: number): boolean {
  koffi.errno(0);
  return (libc().fallocate(fd, 0, offset, len) as number) === 0;
}

/** madvise(2) on [addr, addr + len) (addr page aligned); false when it failed. */
export function madvise(addr: number, len: number, advice: number): boolean {
  koffi.errno(0);
  return (libc().madvise(addr, len, advice) as number) === 0;
}

// ---- memory of other processes

/** The address of a typed array's first byte (valid while the array's buffer is neither detached nor moved:
 *  true for WebAssembly memory and for buffers above 64 bytes, which V8 keeps off its heap). */
export function addressOf(v: ArrayBufferView): number {
  void v.buffer; // materializes small on-heap typed arrays off the V8 heap, where they no longer move
  return Number(libc().mempcpy(v, v, 0));
}

/** process_vm_readv of len bytes at remote into the raw local address; returns bytes read (short on a fault). */
export function processVmReadRaw(pid: number, local: number, remote: bigint, len: number): number {
  const iov = new BigUint64Array([BigInt(local), BigInt(len), remote, BigInt(len)]);
  koffi.errno(0);
  const r = Number(libc().process_vm_readv(pid, iov, 1, iov.subarray(2), 1, 0));
  if (r === -1) throw new SysError('process_vm_readv', koffi.errno(), `${pid} 0x${remote.toString(16)}+${len}`);
  return r;
}

/** process_vm_writev of len bytes from the raw local address to remote; returns bytes written. */
export function processVmWriteRaw(pid: number, local: number, remote: bigint, len: number): number {
  const iov = new BigUint64Array([BigInt(local), BigInt(len), remote, BigInt(len)]);
  koffi.errno(0);
  const r = Number(libc().process_vm_writev(pid, iov, 1, iov.subarray(2), 1, 0));
  if (r === -1) throw new SysError('process_vm_writev', koffi.errno(), `${pid} 0x${remote.toString(16)}+${len}`);
  return r;
}

/** Read dst.length bytes of another process's memory at remote into dst (no intermediate copy). */
export function processVmRead(pid: number, dst: Uint8Array, remote: bigint): number {
  if (dst.byteLength === 0) return 0;
  return processVmReadRaw(pid, addressOf(dst), remote, dst.byteLength);
}

/** Write src into another process's memory at remote. */
export function processVmWrite(pid: number, src: Uint8Array, remote: bigint): number {
  if (src.byteLength === 0) return 0;
  return processVmWriteRaw(pid, addressOf(src), remote, src.byteLength);
}

// ---- starting processes without libuv (so libuv never reaps them or steals their ptrace stops)

export interface SpawnOptions {
  /** Environment as NAME=value strings (default: process.env). */
  env?: string[];
  cwd?: string;
  /** File to open as stdin (default: inherit). */
  stdin?: string;
  /** File to open (create/truncate, or append with append: true) as stdout / stderr; a number = dup2 of our fd. */
  stdout?: string | number;
  stderr?: string | number;
  append?: boolean;
  /** Put the child in its own process group. */
  newProcessGroup?: boolean;
}

const POSIX_SPAWN_SETPGROUP = 0x02;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;

/**
 * posix_spawnp(3) with every signal reset to its default action and an empty signal mask (Node ignores
 * SIGPIPE; children must not inherit that). The child is not known to libuv: reap it with waitpid().
 */
export function spawn(argv: string[], opts: SpawnOptions = {}): number {
  if (argv.length === 0) throw new RangeError('spawn: empty argv');
  const l = libc();
  const fa = Buffer.alloc(256);
  const attr = Buffer.alloc(1024);
  const sigall = Buffer.alloc(256);
  const signone = Buffer.alloc(256);
  const check = (what: string, r: number): void => {
    if (r !== 0) throw new SysError(what, r);
  };
  check('posix_spawn_file_actions_init', l.fa_init(fa));
  check('posix_spawnattr_init', l.attr_init(attr));
  try {
    l.sigfillset(sigall);
    l.sigemptyset(signone);
    check('posix_spawnattr_setsigdefault', l.attr_setsigdefault(attr, sigall));
    check('posix_spawnattr_setsigmask', l.attr_setsigmask(attr, signone));
    let flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
    if (opts.newProcessGroup) {
      flags |= POSIX_SPAWN_SETPGROUP;
      check('posix_spawnattr_setpgroup', l.attr_setpgroup(attr, 0));
    }
    check('posix_spawnattr_setflags', l.attr_setflags(attr, flags));
    if (opts.cwd) check('posix_spawn_file_actions_addchdir_np', l.fa_addchdir(fa, opts.cwd));
    if (opts.stdin) check('posix_spawn_file_actions_addopen', l.fa_addopen(fa, 0, opts.stdin, O_RDONLY, 0));
    const out = (fd: number, t: string | number | undefined): void => {
      if (t === undefined) return;
      if (typeof t === 'number') {
        check('posix_spawn_file_actions_adddup2', l.fa_adddup2(fa, t, fd));
        return;
      }
      check('posix_spawn_file_actions_addopen', l.fa_addopen(fa, fd, t, O_WRONLY | O_CREAT | (opts.append ? O_APPEND : O_TRUNC), 0o644));
    };
    out(1, opts.stdout);
    out(2, opts.stderr);
    // Node marks its own stdio close-on-exec: inherit the ones not redirected explicitly
    // (dup2 onto the same number clears FD_CLOEXEC in the child).
    const given = [opts.stdin, opts.stdout, opts.stderr];
    for (let fd = 0; fd <= 2; fd++) {
      if (given[fd] !== undefined) continue;
      let open = true;
      try {
        fstatSync(fd);
      } catch {
        open = false;
      }
      if (open) check('posix_spawn_file_actions_adddup2', l.fa_adddup2(fa, fd, fd));
    }
    const env =
      opts.env
      ?? Object.entries(process.env)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${v}`);
    const pid = new Int32Array(1);
    const r = l.posix_spawnp(pid, argv[0], fa, attr, [...argv, null], [...env, null]) as number;
    if (r !== 0) throw new SysError('posix_spawnp', r, argv[0]);
    return pid[0]!;
  } finally {
    l.fa_destroy(fa);
    l.attr_destroy(attr);
  }
}
