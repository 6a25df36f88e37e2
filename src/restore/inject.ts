/**
 * System-call injection into a ptrace-stopped thread.
 *
 * The tracee sits in a ptrace stop. To run one system call in it we set its
 * registers (rax = number, rdi..r9 = arguments, rip = the address of a
 * `syscall; int3` sequence, orig_rax = -1 so that the kernel does not apply
 * its syscall-restart logic to the stop it leaves), continue it and wait for
 * the SIGTRAP of the int3. rax then holds the result. The SIGTRAP is never
 * delivered: the next PTRACE_CONT passes signal 0.
 *
 * The very first calls run from the code the stub was stopped in (we poke the
 * sequence over the bytes at its rip; the stub is a throwaway process); after
 * that the code lives in a "park" mapping that crimg places at an address that
 * is free both in the stub and in the image.
 */
import {
  PTRACE,
  PTRACE_EVENT,
  WAIT,
  WIFEXITED,
  WIFSIGNALED,
  WIFSTOPPED,
  WPTRACEEVENT,
  WSTOPSIG,
  WTERMSIG,
  errnoName,
  ptrace,
  ptraceCont,
  ptraceGetEventMsg,
  ptraceGetRegs,
  ptraceSetRegs,
  processVmRead,
  processVmWrite,
  waitpid,
} from '../os/libc.js';
import { SIG, signalName } from '../os/consts.js';
import { SYS as NR, nrName } from '../os/syscalls.js';
import { REG_INDEX } from '../schema.js';

/** System call numbers by name (the one table, src/os/syscalls.ts). */
export { NR, nrName };

/** user_regs_struct indices (the one register list is REG_NAMES in schema.ts). */
export const R = REG_INDEX;
/** Registers of the x86_64 system call arguments, in order. */
const SYSCALL_ARG_REGS = [R.rdi, R.rsi, R.rdx, R.r10, R.r8, R.r9];

/** `syscall; int3; int3 ...` as a little-endian word. */
export const SYSCALL_INT3 = 0xcccccccccccc050fn;

const EFLAGS_TF = 0x100n,
  EFLAGS_DF = 0x400n;

/** A system call that returned an error: errno is positive. */
export class InjectError extends Error {
  constructor(
    readonly nr: number,
    readonly errno: number,
    detail: string,
  ) {
    super(`${nrName(nr)}${detail ? ` ${detail}` : ''}: ${errnoName(errno)}`);
    this.name = 'InjectError';
  }
}

type Arg = bigint | number;

/** One system call of a batch. */
export interface BatchCall {
  nr: number;
  args: Arg[];
}

/** Machine code per batched call: mov rax and up to 6 argument registers (10 bytes each), syscall (2), mov [addr], rax (10). */
export const BATCH_CALL_BYTES = 82;
const big = (v: Arg): bigint => BigInt.asUintN(64, BigInt(v));

/** Signed view of a 64-bit register value. */
export const signed = (v: bigint): bigint => BigInt.asIntN(64, v);

/** Waits for a stop of `tid` (any thread, __WALL); throws when the thread died instead. */
export function waitStop(tid: number): number {
  const { status } = waitpid(tid, WAIT.__WALL);
  if (WIFEXITED(status)) throw new Error(`thread ${tid} exited with status ${(status >> 8) & 0xff}`);
  if (WIFSIGNALED(status)) throw new Error(`thread ${tid} was killed by ${signalName(WTERMSIG(status))}`);
  if (!WIFSTOPPED(status)) throw new Error(`thread ${tid}: unexpected wait status 0x${status.toString(16)}`);
  return status;
}

export class Injector {
  /** Address of the `syscall; int3` sequence used for injected calls. */
  code: bigint;
  /** Registers the thread had when it came under our control (template for injected calls). */
  readonly base: BigUint64Array;
  /** New threads and processes reported by PTRACE_EVENT_CLONE / PTRACE_EVENT_FORK during the last call (pids as crimg sees them). */
  readonly cloned: number[] = [];

  constructor(
    readonly tid: number,
    code?: bigint,
  ) {
    this.base = ptraceGetRegs(tid);
    this.base[R.eflags] = this.base[R.eflags]! & ~(EFLAGS_TF | EFLAGS_DF);
    if (code === undefined) {
      // bootstrap: overwrite the code at the current rip (the stub is a throwaway process)
      code = this.base[R.rip]!;
      ptrace(PTRACE.POKEDATA, tid, code, SYSCALL_INT3);
    }
    this.code = code;
  }

  /** The base registers set up to run system call `nr` with `args` at the injected code. */
  private syscallRegs(nr: number, args: Arg[]): BigUint64Array {
    const r = new BigUint64Array(this.base);
    r[R.rax] = big(nr);
    r[R.orig_rax] = 0xffffffffffffffffn;
    for (let i = 0; i < 6; i++) r[SYSCALL_ARG_REGS[i]!] = i < args.length ? big(args[i]!) : 0n;
    r[R.rip] = this.code;
    return r;
  }

  /** Run one system call; returns the raw (signed) result, -errno on failure. */
  raw(nr: number, ...args: Arg[]): bigint {
    ptraceSetRegs(this.tid, this.syscallRegs(nr, args));
    this.runToTrap(nrName(nr));
    const out = ptraceGetRegs(this.tid);
    return signed(out[R.rax]!);
  }

  /**
   * Run several system calls in one stop: machine code at `codeAt` (codeBytes of writable, executable memory) loads
   * each call's registers, runs it and stores its result at resultsAt + 8 * i; an int3 ends it. Every call runs
   * whatever the ones before returned: only for calls that do not depend on one another. Returns the raw results
   * (-errno on failure), in order.
   */
  batchRaw(calls: BatchCall[], codeAt: bigint, codeBytes: number, resultsAt: bigint): bigint[] {
    const out: bigint[] = [];
    const per = Math.floor((codeBytes - 1) / BATCH_CALL_BYTES);
    for (let first = 0; first < calls.length; first += per) {
      const part = calls.slice(first, first + per);
      const code = new Uint8Array(part.length * BATCH_CALL_BYTES + 1);
      const dv = new DataView(code.buffer);
      let o = 0;
      const mov = (rex: number, op: number, v: Arg): void => {
        code[o] = rex;
        code[o + 1] = op;
        dv.setBigUint64(o + 2, big(v), true);
        o += 10;
      };
      part.forEach((c, i) => {
        mov(0x48, 0xb8, c.nr); // mov rax, imm64
        const regOps: [number, number][] = [
          [0x48, 0xbf],
          [0x48, 0xbe],
          [0x48, 0xba],
          [0x49, 0xba],
          [0x49, 0xb8],
          [0x49, 0xb9],
        ];
        c.args.forEach((a, j) => mov(regOps[j]![0], regOps[j]![1], a)); // rdi rsi rdx r10 r8 r9
        code[o] = 0x0f;
        code[o + 1] = 0x05;
        o += 2; // syscall
        mov(0x48, 0xa3, resultsAt + BigInt(8 * i)); // mov [moffs64], rax
      });
      code[o++] = 0xcc; // int3
      this.write(codeAt, code.subarray(0, o));
      const r = new BigUint64Array(this.base);
      r[R.orig_rax] = 0xffffffffffffffffn;
      r[R.rip] = codeAt;
      ptraceSetRegs(this.tid, r);
      this.runToTrap(`batch of ${part.length} system calls (${nrName(part[0]!.nr)} ...)`);
      const res = new Uint8Array(part.length * 8);
      if (processVmRead(this.tid, res, resultsAt) !== res.length)
        throw new Error(`cannot read the results of a batch of system calls from ${this.tid}`);
      const rv = new DataView(res.buffer);
      for (let i = 0; i < part.length; i++) out.push(rv.getBigInt64(i * 8, true));
    }
    return out;
  }

  /** Continue the thread until the int3 after the injected code, passing over events and stray signals. */
  private runToTrap(what: string): void {
    ptraceCont(this.tid, 0);
    for (;;) {
      const st = waitStop(this.tid);
      const ev = WPTRACEEVENT(st);
      if (ev === PTRACE_EVENT.CLONE || ev === PTRACE_EVENT.FORK) {
        this.cloned.push(Number(ptraceGetEventMsg(this.tid)));
        ptraceCont(this.tid, 0);
        continue;
      }
      const sig = WSTOPSIG(st);
      if (ev === 0 && sig === SIG.SIGTRAP) break;
      if (ev === PTRACE_EVENT.STOP) {
        ptraceCont(this.tid, 0);
        continue;
      }
      // a stray signal for the stub (it becomes a new process: nothing was meant for it): suppress it
      if (ev === 0 && sig !== SIG.SIGTRAP) {
        ptraceCont(this.tid, 0);
        continue;
      }
      throw new Error(
        `${what}: thread ${this.tid} stopped with ${signalName(sig)} at 0x${ptraceGetRegs(this.tid)[R.rip]!.toString(16)} instead of returning`,
      );
    }
  }

  /** Run one system call; throws InjectError when it fails. */
  call(nr: number, args: Arg[], detail = ''): bigint {
    const v = this.raw(nr, ...args);
    if (v < 0n && v >= -4095n) throw new InjectError(nr, Number(-v), detail);
    return v;
  }

  /**
   * Run a system call that removes the code it runs from (the last munmap of the park area), stopping at
   * syscall exit: the thread never returns to the unmapped page; the caller sets its final registers next.
   */
  callAtExit(nr: number, args: Arg[], detail = ''): void {
    ptraceSetRegs(this.tid, this.syscallRegs(nr, args));
    let entered = false;
    ptrace(PTRACE.SYSCALL, this.tid, 0, 0);
    for (;;) {
      const st = waitStop(this.tid);
      const sig = WSTOPSIG(st);
      if (WPTRACEEVENT(st) === 0 && sig === (SIG.SIGTRAP | 0x80)) {
        if (entered) break;
        entered = true;
        ptrace(PTRACE.SYSCALL, this.tid, 0, 0);
        continue;
      }
      if (WPTRACEEVENT(st) === PTRACE_EVENT.STOP || (WPTRACEEVENT(st) === 0 && sig !== SIG.SIGTRAP)) {
        ptrace(PTRACE.SYSCALL, this.tid, 0, 0); // group stop or a stray signal: go on, suppressing it
        continue;
      }
      throw new Error(`${nrName(nr)}: thread ${this.tid} stopped with ${signalName(sig & 0x7f)} instead of a syscall stop`);
    }
    const v = signed(ptraceGetRegs(this.tid)[R.rax]!);
    if (v < 0n && v >= -4095n) throw new InjectError(nr, Number(-v), detail);
  }

  /** Write bytes into the tracee (the target must be writable memory). */
  write(addr: bigint, bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) {
      const n = processVmWrite(this.tid, bytes.subarray(done), addr + BigInt(done));
      if (n <= 0) throw new Error(`short write into ${this.tid} at 0x${(addr + BigInt(done)).toString(16)}`);
      done += n;
    }
  }
}
