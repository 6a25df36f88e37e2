/**
 * State the kernel tells only the task itself, read by system calls run inside
 * the frozen threads (incall.ts): signal dispositions (rt_sigaction), interval
 * timers (getitimer), the times of POSIX timers (timer_gettime; their ids,
 * clocks and notification come from /proc/PID/timers), and per
 * thread clear_child_tid (prctl PR_GET_TID_ADDRESS) and the robust futex list
 * (get_robust_list). Restored by src/restore/restore.ts.
 *
 * /proc/PID/status says which signals are ignored (SigIgn) and which are caught
 * (SigCgt); only the caught ones need calls, for their handler, flags, restorer
 * and mask.
 */
import type { Itimer, PosixTimer, SigAction, SigAltStack, ThreadFutex } from '../model.js';
import { type MapEntry, readPosixTimers, readStatus } from '../os/proc.js';
import { posixTimerSupported } from './check.js';
import { InCall, findSyscallInsn } from '../os/taskcall.js';
import { PR_GET_TID_ADDRESS, SIG_IGN } from '../os/consts.js';
import { SYS } from '../os/syscalls.js';

const hexBig = (s: string | undefined): bigint => (s ? BigInt(`0x${s}`) : 0n);

/** Signal numbers (1..64) whose bit is set in mask. */
function signalsIn(mask: bigint): number[] {
  const out: number[] = [];
  for (let s = 1; s <= 64; s++) if (mask & (1n << BigInt(s - 1))) out.push(s);
  return out;
}

/** How crimg may run calls in a thread: 'run' (interrupt or signal-delivery stop, resumed with signal 0 afterwards),
 *  'restop' (a group stop: it gets a SIGSTOP back afterwards). */
export type CallMode = 'run' | 'restop';

export interface SelfState {
  /** null with `reason` when no thread could be used. */
  sigactions: SigAction[] | null;
  /** Armed interval timers (read with the handlers), or null. */
  itimers: Itimer[] | null;
  /** POSIX timers that can be restored (read with the handlers), or null; check.ts reports the others. */
  posixTimers: PosixTimer[] | null;
  futex: Map<number, ThreadFutex>;
  altstacks: Map<number, SigAltStack>;
  /** Why something could not be read (for a NOCR reason), or ''. */
  reason: string;
}

/** Reads the dispositions of process pid and the futex state of each thread in `threads` (tid -> how). */
export function collectSelfState(pid: number, threads: Map<number, CallMode>, maps: MapEntry[]): SelfState {
  const out: SelfState = { sigactions: null, itimers: null, posixTimers: null, futex: new Map(), altstacks: new Map(), reason: '' };
  const st = readStatus(pid);
  const ignored = hexBig(st.get('SigIgn'));
  const caught = signalsIn(hexBig(st.get('SigCgt')));
  const actions = new Map<number, SigAction>();
  for (const sig of signalsIn(ignored)) actions.set(sig, { sig, handler: BigInt(SIG_IGN), flags: 0n, restorer: 0n, mask: 0n });
  const insn = threads.size ? findSyscallInsn(pid, maps) : null;
  if (insn === null) {
    out.reason = threads.size ? 'no syscall instruction found in an executable mapping' : 'no stopped thread to run system calls in';
    if (!caught.length) out.sigactions = [...actions.values()];
    return out;
  }
  const problems: string[] = [];
  let first = true;
  for (const [tid, mode] of threads) {
    let s: InCall;
    try { s = new InCall(pid, tid, insn, maps, mode === 'restop'); } catch (e) { problems.push((e as Error).message); continue; }
    try {
      if (first) {
        for (const sig of caught) {
          const r = s.call(SYS.rt_sigaction, [sig, 0, s.scratch, 8]);
          if (r < 0n) throw new Error(`rt_sigaction(${sig}) in thread ${tid} returned ${r}`);
          const dv = new DataView(s.read(32).buffer);
          const handler = dv.getBigUint64(0, true);
          if (handler !== 0n) actions.set(sig, { sig, handler, flags: dv.getBigUint64(8, true), restorer: dv.getBigUint64(16, true), mask: dv.getBigUint64(24, true) });
        }
        out.sigactions = [...actions.values()].sort((a, b) => a.sig - b.sig);
        const timers: Itimer[] = [];
        for (let which = 0; which <= 2; which++) {
          const r = s.call(SYS.getitimer, [which, s.scratch]);
          if (r < 0n) throw new Error(`getitimer(${which}) in thread ${tid} returned ${r}`);
          const dv = new DataView(s.read(32).buffer);
          const us = (o: number): bigint => dv.getBigUint64(o, true) * 1_000_000n + dv.getBigUint64(o + 8, true);
          // remaining 0 with an interval: expired, its signal pending (the kernel re-arms ITIMER_REAL when it is taken)
          if (us(16) !== 0n || us(0) !== 0n) timers.push({ which, intervalUs: us(0), valueUs: us(16) });
        }
        out.itimers = timers;
        const pts: PosixTimer[] = [];
        for (const t of readPosixTimers(pid).filter(posixTimerSupported)) {
          const r = s.call(SYS.timer_gettime, [t.id, s.scratch]);
          if (r < 0n) throw new Error(`timer_gettime(${t.id}) in thread ${tid} returned ${r}`);
          const dv = new DataView(s.read(32).buffer);
          const ns = (o: number): bigint => dv.getBigUint64(o, true) * 1_000_000_000n + dv.getBigUint64(o + 8, true);
          pts.push({ ...t, signo: t.notify === 1 ? 0 : t.signo, intervalNs: ns(0), valueNs: ns(16) }); // SIGEV_NONE: no signal
        }
        out.posixTimers = pts.sort((a, b) => a.id - b.id);
        first = false;
      }
      const a = s.call(SYS.prctl, [PR_GET_TID_ADDRESS, s.scratch, 0, 0, 0]);
      const b = s.call(SYS.get_robust_list, [0, s.scratch + 8n, s.scratch + 16n]);
      const c = s.call(SYS.sigaltstack, [0, s.scratch + 32n]);
      if (a < 0n || b < 0n || c < 0n) throw new Error(`PR_GET_TID_ADDRESS / get_robust_list / sigaltstack in thread ${tid} returned ${a} / ${b} / ${c}`);
      const dv = new DataView(s.read(56).buffer);
      out.futex.set(tid, { clearChildTid: dv.getBigUint64(0, true), robustHead: dv.getBigUint64(8, true), robustLen: dv.getBigUint64(16, true) });
      out.altstacks.set(tid, { sp: dv.getBigUint64(32, true), flags: dv.getUint32(40, true), size: dv.getBigUint64(48, true) });
    } catch (e) {
      problems.push((e as Error).message);
    } finally {
      s.close();
    }
  }
  if (out.sigactions === null && !caught.length) out.sigactions = [...actions.values()];
  out.reason = problems.join('; ');
  return out;
}
