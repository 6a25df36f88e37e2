/**
 * System calls in another task, both ways crimg makes them:
 *
 *  - `TaskCall`: the signature restore and the kinds' restart steps use to run one call in the task being
 *    restored (src/restore/inject.ts runs it), with `TaskScratch` to put bytes into its memory; `fetchFd` takes a
 *    copy of one of a task's descriptors into crimg (pidfd_getfd) to read or write through it.
 *  - `InCall`: a session of calls inside a frozen thread of a checkpointed task, for the state the kernel only
 *    tells the task itself (signal handlers, timers, clear_child_tid, the robust futex list), described next.
 *
 * InCall runs the calls without changing a byte of the task's code:
 *  - the `syscall` instruction used is one that is already there (the vdso has
 *    some, for its fallbacks; else any executable mapping);
 *  - results land in a scratch area 256 bytes below the thread's stack pointer
 *    (below the red zone, where a signal frame would go), whose bytes are put
 *    back at the end;
 *  - every signal is blocked in that thread meanwhile (PTRACE_SETSIGMASK), so no
 *    signal is dequeued on the way; its mask is restored afterwards;
 *  - PTRACE_SYSCALL stops the thread at the entry and the exit of each call.
 *
 * The thread is then left at the exit of the last call with its own registers,
 * and with an interrupted system call set up to restart exactly as the kernel
 * would have on leaving the interrupt stop crimg took it out of:
 * -ERESTARTSYS/-ERESTARTNOINTR/-ERESTARTNOHAND re-run the call, and
 * -ERESTART_RESTARTBLOCK runs restart_syscall (the task's restart block is still
 * there). When the thread was in a group stop (a stopped process) it gets a
 * SIGSTOP afterwards, which puts it back into the stop as soon as crimg lets it
 * go. The image keeps the registers as they were at the freeze.
 */
import * as fs from 'node:fs';
import {
  PTRACE,
  PTRACE_EVENT,
  PTRACE_O,
  WAIT,
  WIFSTOPPED,
  WPTRACEEVENT,
  WSTOPSIG,
  processVmRead,
  processVmWrite,
  ptrace,
  ptraceGetRegs,
  ptraceGetSigmask,
  ptraceSetOptions,
  ptraceSetRegs,
  ptraceSetSigmask,
  syscall,
  tgkill,
  waitpid,
} from './libc.js';
import type { MapEntry } from './proc.js';
import { EINTR, SIG } from './consts.js';
import { SYS } from './syscalls.js';
import { REG_INDEX as R } from '../schema.js';

const ERESTARTSYS = -512n,
  ERESTARTNOINTR = -513n,
  ERESTARTNOHAND = -514n,
  ERESTART_RESTARTBLOCK = -516n;
/** Every signal but SIGKILL and SIGSTOP (which cannot be blocked anyway). */
const BLOCK_ALL = 0xfffffffffffbfeffn;
const SCRATCH_BELOW_SP = 256n;
/** Bytes of scratch memory a session offers. */
export const SCRATCH_BYTES = 64;

const signed = (v: bigint): bigint => BigInt.asIntN(64, v);

// ------------------------------------------------------------------ calls in a task being restored

/** A system call in the task (throws when it fails); `detail` names what it was for in the error. */
export type TaskCall = (nr: number, args: (number | bigint)[], detail?: string) => bigint;

/** Writes bytes into the task's scratch memory and returns their address. */
export type TaskScratch = (bytes: Uint8Array) => bigint;

/** A descriptor of another process (pidfd_open, pidfd_getfd); the caller closes it. */
export function fetchFd(pid: number, fd: number): number {
  const pidfd = syscall(SYS.pidfd_open, pid, 0);
  try {
    return syscall(SYS.pidfd_getfd, pidfd, fd, 0);
  } finally {
    fs.closeSync(pidfd);
  }
}

/** Closes descriptors of crimg's own (those < 0 are not open), ignoring errors. */
export function closeQuietly(...fds: number[]): void {
  for (const fd of fds)
    if (fd >= 0)
      try {
        fs.closeSync(fd);
      } catch {
        /* ignore */
      }
}

// ------------------------------------------------------------------ calls in a frozen thread

/** Address of a `syscall` instruction (0f 05) in an executable mapping of pid: the vdso first. */
export function findSyscallInsn(pid: number, maps: MapEntry[]): bigint | null {
  const exec = maps.filter((m) => m.read && m.exec && m.path !== '[vsyscall]');
  exec.sort((a, b) => (a.path === '[vdso]' ? -1 : b.path === '[vdso]' ? 1 : 0));
  const buf = new Uint8Array(64 * 1024);
  for (const m of exec) {
    for (let at = m.start; at < m.end && at - m.start < 4n << 20n; at += BigInt(buf.length - 1)) {
      const want = Number(m.end - at < BigInt(buf.length) ? m.end - at : BigInt(buf.length));
      const n = processVmRead(pid, buf.subarray(0, want), at);
      if (n <= 1) break;
      for (let i = 0; i + 1 < n; i++) if (buf[i] === 0x0f && buf[i + 1] === 0x05) return at + BigInt(i);
    }
  }
  return null;
}

/**
 * In a new task (restore), the restart block of an interrupted call is gone. These calls can simply be made again:
 * poll (7; with a timeout it waits its whole timeout again: later, where EINTR would end programs such as `tail -f`)
 * and clock_nanosleep with TIMER_ABSTIME (230: the same deadline). Others (nanosleep, a relative clock_nanosleep,
 * futex waits with a timeout) get EINTR, as the remaining time is not known.
 */
function reissuable(r: BigUint64Array): boolean {
  const nr = r[R.orig_rax]!;
  return nr === BigInt(SYS.poll) || (nr === BigInt(SYS.clock_nanosleep) && (r[R.rsi]! & 1n) === 1n);
}

/**
 * Registers that resume an interrupted system call the way the kernel restarts it when no handler runs:
 * -ERESTARTSYS/-ERESTARTNOINTR/-ERESTARTNOHAND re-run the call; -ERESTART_RESTARTBLOCK runs restart_syscall when
 * the task's restart block is there (`sameTask`: the thread crimg ran calls in), else returns -EINTR (a restored
 * task: the restart block, e.g. a sleep's remaining time, stayed in the old kernel task). With `sameTask` orig_rax
 * becomes -1, so that the kernel does nothing more on the way out.
 */
export function restartedRegs(regs: BigUint64Array, sameTask: boolean): BigUint64Array {
  const r = new BigUint64Array(regs);
  if (signed(r[R.orig_rax]!) >= 0n) {
    const ax = signed(r[R.rax]!);
    if (ax === ERESTARTSYS || ax === ERESTARTNOINTR || ax === ERESTARTNOHAND) {
      r[R.rax] = r[R.orig_rax]!;
      r[R.rip] = r[R.rip]! - 2n;
    } else if (ax === ERESTART_RESTARTBLOCK) {
      if (sameTask) {
        r[R.rax] = BigInt(SYS.restart_syscall);
        r[R.rip] = r[R.rip]! - 2n;
      } else if (reissuable(r)) {
        r[R.rax] = r[R.orig_rax]!; // the call again, with its arguments (still in their registers)
        r[R.rip] = r[R.rip]! - 2n;
      } else r[R.rax] = BigInt.asUintN(64, -BigInt(EINTR));
    }
  }
  if (sameTask) r[R.orig_rax] = 0xffffffffffffffffn;
  return r;
}

/** Resumes tid to its next syscall stop (SIGTRAP | 0x80), passing over group-stop reports (a stopped process's
 *  thread re-reports its stop once); anything else is an error (every signal is blocked). */
function toSyscallStop(tid: number): void {
  for (let tries = 0; ; tries++) {
    ptrace(PTRACE.SYSCALL, tid, 0, 0);
    const { status } = waitpid(tid, WAIT.__WALL);
    if (!WIFSTOPPED(status)) throw new Error(`thread ${tid} ended while crimg ran a system call in it`);
    if (WPTRACEEVENT(status) === 0 && WSTOPSIG(status) === (5 | 0x80)) return;
    if (WPTRACEEVENT(status) !== PTRACE_EVENT.STOP || tries >= 3) {
      throw new Error(`thread ${tid} stopped with status 0x${status.toString(16)} instead of a system call stop`);
    }
  }
}

/** A session of system calls in one stopped thread; close() puts everything back. */
export class InCall {
  private readonly orig: BigUint64Array;
  private readonly mask: bigint;
  private readonly saved = new Uint8Array(SCRATCH_BYTES);
  private entered = false;
  private closed = false;
  /** Address of SCRATCH_BYTES bytes of the target's memory that calls may write into. */
  readonly scratch: bigint;

  /** Throws (with nothing changed) when the thread offers no writable stack room below its stack pointer. */
  constructor(
    readonly pid: number,
    readonly tid: number,
    private readonly insn: bigint,
    maps: MapEntry[],
    private readonly restop = false,
  ) {
    this.orig = ptraceGetRegs(tid);
    this.scratch = (this.orig[R.rsp]! - SCRATCH_BELOW_SP) & ~63n;
    const vma = maps.find((m) => m.start <= this.scratch && this.scratch + BigInt(SCRATCH_BYTES) <= m.end);
    if (!vma?.write) throw new Error(`the stack of thread ${tid} has no writable room below 0x${this.orig[R.rsp]!.toString(16)}`);
    if (processVmRead(pid, this.saved, this.scratch) !== SCRATCH_BYTES) throw new Error(`the stack of thread ${tid} is not readable`);
    this.mask = ptraceGetSigmask(tid);
    ptraceSetSigmask(tid, BLOCK_ALL);
    ptraceSetOptions(tid, PTRACE_O.TRACESYSGOOD);
  }

  /** Runs system call nr in the thread; returns its raw result (-errno on failure). */
  call(nr: number, args: (number | bigint)[]): bigint {
    const r = new BigUint64Array(this.orig);
    r[R.rax] = BigInt(nr);
    r[R.orig_rax] = 0xffffffffffffffffn;
    const regs = [R.rdi, R.rsi, R.rdx, R.r10, R.r8, R.r9];
    regs.forEach((x, i) => {
      r[x] = BigInt.asUintN(64, BigInt(args[i] ?? 0));
    });
    r[R.rip] = this.insn;
    ptraceSetRegs(this.tid, r);
    this.entered = true;
    toSyscallStop(this.tid); // entry
    toSyscallStop(this.tid); // exit
    return signed(ptraceGetRegs(this.tid)[R.rax]!);
  }

  /** The scratch area's bytes now. */
  read(n = SCRATCH_BYTES): Uint8Array {
    const b = new Uint8Array(n);
    if (processVmRead(this.pid, b, this.scratch) !== n) throw new Error(`cannot read the scratch area of thread ${this.tid}`);
    return b;
  }

  /** Puts everything back, whatever happened (failures here mean the thread is gone). Never throws. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      processVmWrite(this.pid, this.saved, this.scratch);
    } catch {
      /* gone */
    }
    try {
      ptraceSetRegs(this.tid, this.entered ? restartedRegs(this.orig, true) : this.orig);
    } catch {
      /* gone */
    }
    try {
      ptraceSetSigmask(this.tid, this.mask);
    } catch {
      /* gone */
    }
    try {
      ptraceSetOptions(this.tid, 0);
    } catch {
      /* gone */
    }
    // it left its group stop to run the calls: a SIGSTOP puts it back as soon as it is let go (the process stays stopped)
    if (this.restop && this.entered)
      try {
        tgkill(this.pid, this.tid, SIG.SIGSTOP);
      } catch {
        /* gone */
      }
  }
}
