/**
 * Signal dispositions of a frozen process (restored by src/restore/restore.ts).
 *
 * /proc/PID/status says which signals are ignored (SigIgn) and which are caught
 * (SigCgt), not where their handlers are. For the caught ones crimg runs
 * `rt_sigaction(sig, NULL, &old, 8)` inside one stopped thread of the process,
 * without changing a byte of its code:
 *
 *  - the `syscall` instruction used is one that is already there (the vdso has
 *    some, for its fallbacks; else any executable mapping);
 *  - `old` lands 256 bytes below the thread's stack pointer (below the red zone,
 *    where a signal frame would go), whose previous bytes are put back;
 *  - every signal is blocked in that thread meanwhile (PTRACE_SETSIGMASK), so no
 *    signal is dequeued on the way; its mask is restored afterwards;
 *  - PTRACE_SYSCALL stops the thread at the entry and the exit of each call.
 *
 * The thread is then left at the exit of the last call with its own registers,
 * and with an interrupted system call set up to restart exactly as the kernel
 * would have on leaving the interrupt stop (the stop crimg took it out of):
 * -ERESTARTSYS/-ERESTARTNOINTR/-ERESTARTNOHAND re-run the call, and
 * -ERESTART_RESTARTBLOCK runs restart_syscall (the task's restart block is
 * still there). The image keeps the registers as they were at the freeze.
 * When every thread was in a group stop (a stopped process), the first one is
 * used and gets a SIGSTOP afterwards, which puts it back into the stop as soon
 * as crimg lets it go.
 */
import type { SigAction } from '../model.js';
import {
  PTRACE, PTRACE_EVENT, PTRACE_O, SIG, WIFSTOPPED, tgkill, WPTRACEEVENT, WSTOPSIG, processVmRead, processVmWrite, ptrace, ptraceGetRegs,
  ptraceGetSigmask, ptraceSetOptions, ptraceSetRegs, ptraceSetSigmask, waitpid, WAIT,
} from './libc.js';
import { type MapEntry, readMaps, readStatus } from './proc.js';
import { REG_INDEX as R } from '../schema.js';

const SYS_RT_SIGACTION = 13, SYS_RESTART_SYSCALL = 219;
const SIG_IGN = 1n;
const ERESTARTSYS = -512n, ERESTARTNOINTR = -513n, ERESTARTNOHAND = -514n, ERESTART_RESTARTBLOCK = -516n;
/** Every signal but SIGKILL and SIGSTOP (which cannot be blocked anyway). */
const BLOCK_ALL = 0xfffffffffffbfeffn;
const SCRATCH_BELOW_SP = 256n;
const KSIGACTION_BYTES = 32;

const hexBig = (s: string | undefined): bigint => (s ? BigInt(`0x${s}`) : 0n);
const signed = (v: bigint): bigint => BigInt.asIntN(64, v);

/** Signal numbers (1..64) whose bit is set in mask. */
function signalsIn(mask: bigint): number[] {
  const out: number[] = [];
  for (let s = 1; s <= 64; s++) if (mask & (1n << BigInt(s - 1))) out.push(s);
  return out;
}

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

/** Registers that resume an interrupted system call the way the kernel restarts it after an interrupt stop. */
export function restartedRegs(regs: BigUint64Array): BigUint64Array {
  const r = new BigUint64Array(regs);
  if (signed(r[R.orig_rax]!) >= 0n) {
    const ax = signed(r[R.rax]!);
    if (ax === ERESTARTSYS || ax === ERESTARTNOINTR || ax === ERESTARTNOHAND) {
      r[R.rax] = r[R.orig_rax]!;
      r[R.rip] = r[R.rip]! - 2n;
    } else if (ax === ERESTART_RESTARTBLOCK) {
      r[R.rax] = BigInt(SYS_RESTART_SYSCALL);
      r[R.rip] = r[R.rip]! - 2n;
    }
  }
  r[R.orig_rax] = 0xffffffffffffffffn;
  return r;
}

/** Resumes tid to its next syscall stop (SIGTRAP | 0x80), passing over group-stop reports (a stopped process's
 *  thread re-reports its stop once); anything else is an error (every signal is blocked). */
function toSyscallStop(tid: number): void {
  for (let tries = 0; ; tries++) {
    ptrace(PTRACE.SYSCALL, tid, 0, 0);
    const { status } = waitpid(tid, WAIT.__WALL);
    if (!WIFSTOPPED(status)) throw new Error(`thread ${tid} ended while crimg read its signal handlers`);
    if (WPTRACEEVENT(status) === 0 && WSTOPSIG(status) === (5 | 0x80)) return;
    if (WPTRACEEVENT(status) !== PTRACE_EVENT.STOP || tries >= 3) {
      throw new Error(`thread ${tid} stopped with status 0x${status.toString(16)} instead of a system call stop`);
    }
  }
}

export type SigactionResult = { actions: SigAction[] } | { reason: string };

/**
 * The dispositions other than SIG_DFL of process pid, reading handlers inside thread `tid` (stopped in a ptrace
 * interrupt or signal-delivery stop, to be resumed with signal 0). Returns a reason instead when they cannot be read.
 */
export function collectSigactions(pid: number, tid: number, maps?: MapEntry[], restop = false): SigactionResult {
  const st = readStatus(pid);
  const ignored = hexBig(st.get('SigIgn'));
  const caught = hexBig(st.get('SigCgt'));
  const actions = new Map<number, SigAction>();
  for (const sig of signalsIn(ignored)) actions.set(sig, { sig, handler: SIG_IGN, flags: 0n, restorer: 0n, mask: 0n });
  const want = signalsIn(caught);
  if (want.length) {
    const got = readHandlers(pid, tid, want, maps ?? readMaps(pid, false), restop);
    if ('reason' in got) return got;
    for (const a of got.actions) actions.set(a.sig, a);
  }
  return { actions: [...actions.values()].sort((a, b) => a.sig - b.sig) };
}

function readHandlers(pid: number, tid: number, sigs: number[], maps: MapEntry[], restop: boolean): SigactionResult {
  const insn = findSyscallInsn(pid, maps);
  if (insn === null) return { reason: 'no syscall instruction found in an executable mapping' };
  const orig = ptraceGetRegs(tid);
  const scratch = (orig[R.rsp]! - SCRATCH_BELOW_SP) & ~63n;
  const vma = maps.find((m) => m.start <= scratch && scratch + BigInt(KSIGACTION_BYTES) <= m.end);
  if (!vma || !vma.write) return { reason: `the stack of thread ${tid} has no writable room below 0x${orig[R.rsp]!.toString(16)}` };
  const saved = new Uint8Array(KSIGACTION_BYTES);
  if (processVmRead(pid, saved, scratch) !== KSIGACTION_BYTES) return { reason: `the stack of thread ${tid} is not readable` };
  const mask = ptraceGetSigmask(tid);
  const out: SigAction[] = [];
  let entered = false;
  try {
    ptraceSetSigmask(tid, BLOCK_ALL);
    ptraceSetOptions(tid, PTRACE_O.TRACESYSGOOD);
    const buf = new Uint8Array(KSIGACTION_BYTES);
    const dv = new DataView(buf.buffer);
    for (const sig of sigs) {
      const r = new BigUint64Array(orig);
      r[R.rax] = BigInt(SYS_RT_SIGACTION);
      r[R.orig_rax] = 0xffffffffffffffffn;
      r[R.rdi] = BigInt(sig); r[R.rsi] = 0n; r[R.rdx] = scratch; r[R.r10] = 8n;
      r[R.rip] = insn;
      ptraceSetRegs(tid, r);
      entered = true;
      toSyscallStop(tid); // entry
      toSyscallStop(tid); // exit
      const res = signed(ptraceGetRegs(tid)[R.rax]!);
      if (res < 0n) throw new Error(`rt_sigaction(${sig}) in thread ${tid} returned ${res}`);
      if (processVmRead(pid, buf, scratch) !== KSIGACTION_BYTES) throw new Error(`cannot read the result of rt_sigaction(${sig})`);
      const handler = dv.getBigUint64(0, true);
      if (handler !== 0n) out.push({ sig, handler, flags: dv.getBigUint64(8, true), restorer: dv.getBigUint64(16, true), mask: dv.getBigUint64(24, true) });
    }
  } finally {
    // put everything back, whatever happened (a throw here means the thread is gone)
    try { processVmWrite(pid, saved, scratch); } catch { /* gone */ }
    try { ptraceSetRegs(tid, entered ? restartedRegs(orig) : orig); } catch { /* gone */ }
    try { ptraceSetSigmask(tid, mask); } catch { /* gone */ }
    try { ptraceSetOptions(tid, 0); } catch { /* gone */ }
    // it left its group stop to run the calls: a SIGSTOP puts it back as soon as it is let go (the process stays stopped)
    if (restop && entered) try { tgkill(pid, tid, SIG.SIGSTOP); } catch { /* gone */ }
  }
  return { actions: out };
}
