/**
 * Restore into a new PID namespace with the image's pid and tids (`crimg restore --pid-ns`).
 *
 * A pid can only be chosen inside a PID namespace where the caller is privileged, and the first process of a new
 * PID namespace is always its pid 1. So three processes are built from the stub:
 *
 *     holder  (crimg's child, in crimg's PID namespace; a session of its own)
 *       `- init  (pid 1 of a new PID namespace: the holder ran unshare(CLONE_NEWPID) and then fork)
 *            `- task  (the image's pid: init ran clone3 with set_tid = [pid]); restore.ts turns it into the task
 *
 * and the task's extra threads are created by clone3 with set_tid = [tid], so gettid() and every tid glibc cached
 * in its thread descriptors (pthread_kill, raise, mutex owners) are right again. When the image's pid is 1 the
 * init itself becomes the task.
 *
 * At the end holder and init run a reaper loop written into a page of their own (`reaperCode`): wait4(-1) until
 * ECHILD, then exit with the status of the last child reaped: the init with the task's (orphans adopted in the
 * namespace are reaped too), the holder with the init's. So the namespace disappears with the task, and the
 * holder's exit status is the task's, as with `unshare --pid --fork`.
 */
import { PTRACE_O, ptraceDetach, ptraceGetRegs, ptraceSetOptions, ptraceSetRegs } from '../os/libc.js';
import { CLONE_NEWPID, MAP_ANONYMOUS, MAP_PRIVATE, PROT_EXEC, PROT_READ, PROT_WRITE, PR_SET_NAME, SIG } from '../os/consts.js';
import { Injector, NR, R, waitStop } from './inject.js';

const PROT_RWX = PROT_READ | PROT_WRITE | PROT_EXEC;
const { SIGCHLD } = SIG;
/** struct clone_args up to set_tid_size (CLONE_ARGS_SIZE_VER1). */
export const CLONE_ARGS_SIZE = 80;

/** Offsets in the holder's scratch page (copied into init by the fork). */
const STATUS_AT = 0x800n,
  ARGS_AT = 0x100n,
  SET_TID_AT = 0x200n,
  NAME_AT = 0x400n;

/** The process name (comm: what ps and top show, 15 bytes) becomes `name` instead of the stub program's; the
 *  string goes to `at` (scratch). */
function rename(inj: Injector, at: bigint, name: string): void {
  inj.write(at, new TextEncoder().encode(`${name}\0`));
  inj.call(NR.prctl, [PR_SET_NAME, at, 0, 0, 0]);
}

/**
 * x86_64 code of the reaper loop; `statusAt` is the address of a 4-byte status word:
 *
 *     mov rsi, statusAt ; again: mov eax, 61 (wait4) ; mov rdi, -1 ; xor edx, edx ; xor r10d, r10d ; syscall
 *     cmp rax, -10 (ECHILD) ; jne again
 *     mov edi, [rsi] ; mov eax, edi ; and eax, 0x7f ; jz exited ; lea edi, [rax+128] ; jmp out
 *     exited: shr edi, 8 ; movzx edi, dil ; out: mov eax, 231 (exit_group) ; syscall
 */
export function reaperCode(statusAt: bigint): Uint8Array {
  const head = [0x48, 0xbe, 0, 0, 0, 0, 0, 0, 0, 0];
  const body = [
    0xb8,
    0x3d,
    0x00,
    0x00,
    0x00, // 10: mov eax, 61
    0x48,
    0xc7,
    0xc7,
    0xff,
    0xff,
    0xff,
    0xff, // 15: mov rdi, -1
    0x31,
    0xd2, // 22: xor edx, edx
    0x45,
    0x31,
    0xd2, // 24: xor r10d, r10d
    0x0f,
    0x05, // 27: syscall
    0x48,
    0x83,
    0xf8,
    0xf6, // 29: cmp rax, -10
    0x75,
    0xe7, // 33: jne 10
    0x8b,
    0x3e, // 35: mov edi, [rsi]
    0x89,
    0xf8, // 37: mov eax, edi
    0x83,
    0xe0,
    0x7f, // 39: and eax, 0x7f
    0x74,
    0x08, // 42: jz 52
    0x8d,
    0xb8,
    0x80,
    0x00,
    0x00,
    0x00, // 44: lea edi, [rax+128]
    0xeb,
    0x07, // 50: jmp 59
    0xc1,
    0xef,
    0x08, // 52: shr edi, 8
    0x40,
    0x0f,
    0xb6,
    0xff, // 55: movzx edi, dil
    0xb8,
    0xe7,
    0x00,
    0x00,
    0x00, // 59: mov eax, 231
    0x0f,
    0x05, // 64: syscall
  ];
  const code = new Uint8Array(head.length + body.length);
  code.set(head);
  new DataView(code.buffer).setBigUint64(2, statusAt, true);
  code.set(body, head.length);
  return code;
}

/** The processes of a --pid-ns restore, as crimg sees them (pids in crimg's PID namespace). */
export interface PidNsProcs {
  holder: number;
  /** pid 1 of the new namespace (equal to `task` when the image's pid is 1). */
  init: number;
  /** The process that becomes the task (the image's pid inside the namespace). */
  task: number;
  /** The reaper code page (same address in holder and init). */
  scratch: bigint;
}

type Step = <T>(name: string, at: string, fn: () => T) => T;

/**
 * Turns the freshly seized stub `holder` (stopped, traced by crimg) into holder -> init -> task. `made` receives
 * every process as soon as it exists, so that a failure half-way can kill them all.
 */
export function buildPidNs(holder: number, nsPid: number, step: Step, made: number[]): PidNsProcs {
  const hi = step('pid namespace: bootstrap', `holder ${holder}`, () => new Injector(holder));
  step('pid namespace: trace forks', `holder ${holder}`, () =>
    ptraceSetOptions(holder, PTRACE_O.EXITKILL | PTRACE_O.TRACESYSGOOD | PTRACE_O.TRACECLONE | PTRACE_O.TRACEFORK),
  );
  step('pid namespace: setsid', `holder ${holder}`, () => hi.call(NR.setsid, []));
  // no fds: holder and init must not keep crimg's stdout (a pipe to whoever waits for crimg's output) open
  step('pid namespace: close fds', `holder ${holder}`, () => hi.call(NR.close_range, [0, 0xffffffff, 0]));
  const scratch = step('pid namespace: scratch page', `holder ${holder}`, () =>
    hi.call(NR.mmap, [0, 4096, PROT_RWX, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0]),
  );
  step('pid namespace: reaper code', `holder ${holder}`, () => hi.write(scratch, reaperCode(scratch + STATUS_AT)));
  step('pid namespace: name holder', `holder ${holder}`, () => rename(hi, scratch + NAME_AT, 'crimg-pidns-holder'));
  step('pid namespace: unshare', `holder ${holder}`, () => hi.call(NR.unshare, [CLONE_NEWPID], 'CLONE_NEWPID'));
  const init = step('pid namespace: fork init', `holder ${holder}`, () => {
    hi.cloned.length = 0;
    hi.call(NR.fork, []);
    const pid = hi.cloned[0];
    if (pid === undefined) throw new Error('fork reported no new process');
    made.push(pid);
    waitStop(pid);
    return pid;
  });
  if (nsPid === 1) return { holder, init, task: init, scratch };
  const ii = step('pid namespace: name init', `init ${init}`, () => {
    const inj = new Injector(init, hi.code);
    rename(inj, scratch + NAME_AT + 64n, 'crimg-pidns-init');
    return inj;
  });
  const task = step('pid namespace: clone3 set_tid', `pid ${nsPid}`, () => forkWithPid(ii, scratch, nsPid, SIGCHLD, made));
  return { holder, init, task, scratch };
}

/**
 * A child of the process `inj` runs in, with pid `nsPid` in their PID namespace (clone3 with set_tid; clone_args at
 * the scratch page `scratch`, which the process has), stopped and traced; returns its pid as crimg sees it.
 */
export function forkWithPid(inj: Injector, scratch: bigint, nsPid: number, exitSignal: number, made: number[]): number {
  const args = new Uint8Array(CLONE_ARGS_SIZE);
  const dv = new DataView(args.buffer);
  dv.setBigUint64(32, BigInt(exitSignal), true); // exit_signal
  dv.setBigUint64(64, scratch + SET_TID_AT, true); // set_tid
  dv.setBigUint64(72, 1n, true); // set_tid_size: the innermost namespace only
  inj.write(scratch + ARGS_AT, args);
  const tid = new Uint8Array(4);
  new DataView(tid.buffer).setInt32(0, nsPid, true);
  inj.write(scratch + SET_TID_AT, tid);
  inj.cloned.length = 0;
  inj.call(NR.clone3, [scratch + ARGS_AT, CLONE_ARGS_SIZE], `set_tid ${nsPid}`);
  const pid = inj.cloned[0];
  if (pid === undefined) throw new Error('clone3 reported no new process');
  made.push(pid);
  waitStop(pid);
  return pid;
}

/** clone_args for a thread of the task with tid `nsTid` (written at `at`; set_tid right after it). */
export function threadCloneArgs(flags: number, at: bigint, nsTid: number): Uint8Array {
  const b = new Uint8Array(CLONE_ARGS_SIZE + 8);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(0, BigInt(flags), true);
  dv.setBigUint64(64, at + BigInt(CLONE_ARGS_SIZE), true);
  dv.setBigUint64(72, 1n, true);
  dv.setInt32(CLONE_ARGS_SIZE, nsTid, true);
  return b;
}

/**
 * After a failure: kill init and task (and so the namespace), let crimg's waits see them go, have the holder reap
 * its dead init (injected wait4: a zombie must not outlive the restore), then kill the holder. Never throws.
 */
export function killPidNs(procs: number[], threads: number[], kill: (pid: number) => void, reap: (tids: number[]) => void): void {
  const [holder, ...inner] = procs;
  for (const p of inner) kill(p);
  reap([...threads.filter((t) => !procs.includes(t)), ...inner.reverse()]);
  try {
    const hi = new Injector(holder!);
    for (let i = 0; i < 4 && hi.raw(NR.wait4, -1, 0, WALL, 0) > 0n; i++) {
      /* reaped one */
    }
  } catch {
    /* the holder is beyond help: killing it leaves the zombie to the system's init */
  }
  kill(holder!);
  reap([holder!]);
}

const WALL = 0x40000000;

/** The holder and init (stopped at an injection trap) run the reaper loop from now on, untraced. */
export function releaseReapers(p: PidNsProcs): void {
  for (const pid of p.init === p.task ? [p.holder] : [p.init, p.holder]) {
    const r = ptraceGetRegs(pid);
    r[R.rip] = p.scratch;
    r[R.orig_rax] = 0xffffffffffffffffn;
    ptraceSetRegs(pid, r);
    ptraceDetach(pid, 0);
  }
}
