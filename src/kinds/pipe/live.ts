/**
 * Pipes a task holds both ends of (or one end of, the other closed): a self-pipe,
 * the wakeup pipe of an event loop. Checkpoint and restart side by side.
 *
 * Checkpoint: the fds of one pipe share its inode (pipe:[INO]); O_RDONLY ones are
 * read ends, O_WRONLY ones write ends. The bytes buffered in it are read without
 * taking them: crimg fetches a read end (pidfd_getfd), `tee`s its contents into a
 * pipe of its own as big (F_GETPIPE_SZ / F_SETPIPE_SZ) and reads that one. They
 * go in the PIPE record of the pipe's lowest fd, with the capacity.
 *
 * Restart: pipe2 in the task, F_SETPIPE_SZ when the capacity was not the default,
 * the buffered bytes written through the write end (fetched into crimg with
 * pidfd_getfd), then every fd of the pipe made a copy of its end (dup3) with its
 * own O_NONBLOCK and close-on-exec; an end no fd had is closed, as it was.
 *
 * A pipe that a process outside the tree also holds is a reason (PIPE).
 */
import * as fs from 'node:fs';
import type { OpenFile, PipeEnd } from '../../model.js';
import { type FdInfo, pipeIno, processesText } from '../../os/proc.js';
import { addressOf, fcntl, fionread, syscall } from '../../os/libc.js';
import { F_DUPFD_CLOEXEC, F_GETPIPE_SZ, F_SETFL, F_SETPIPE_SZ, O_ACCMODE, O_CLOEXEC, O_NONBLOCK, O_WRONLY } from '../../os/consts.js';
import { SYS } from '../../os/syscalls.js';
import { type TaskCall, closeQuietly, fetchFd } from '../../os/taskcall.js';
import type { FdInspectCtx, LiveFdKind, RestoreCalls } from '../live.js';
import { pipe as kindFormat } from './format.js';

const SPLICE_F_NONBLOCK = 2;
const DEFAULT_PIPE_SIZE = 65536;

// ------------------------------------------------------------------ checkpoint

/** Capacity and buffered bytes of the pipe that fd `fd` of process pid reads from, without taking the bytes. */
function peekPipe(pid: number, fd: number): { size: number; data: Uint8Array } {
  const rd = fetchFd(pid, fd);
  let ours = [-1, -1];
  try {
    const size = fcntl(rd, F_GETPIPE_SZ);
    const n = fionread(rd);
    if (n === 0) return { size, data: new Uint8Array(0) };
    const pair = new Int32Array(2);
    syscall(SYS.pipe2, addressOf(pair), O_NONBLOCK | O_CLOEXEC);
    ours = [pair[0]!, pair[1]!];
    if (size > DEFAULT_PIPE_SIZE) fcntl(ours[1]!, F_SETPIPE_SZ, size);
    // tee copies from the head of the source without taking anything: one call for all of it
    const copied = syscall(SYS.tee, rd, ours[1]!, n, SPLICE_F_NONBLOCK);
    if (copied !== n) throw new Error(`pipe at fd ${fd} of ${pid}: tee copied ${copied} of its ${n} buffered bytes`);
    const data = new Uint8Array(copied);
    let off = 0;
    while (off < copied) off += fs.readSync(ours[0]!, data, off, copied - off, null);
    return { size, data };
  } finally {
    closeQuietly(rd, ...ours);
  }
}

/**
 * The ends of the pipes among the task's fds that no process outside the tree holds: each gets its pipe's inode,
 * which end it is, the capacity, and the lowest fd of each pipe the bytes buffered in it (when the task has a read
 * end to take them; only when the state is wanted, like the capacity).
 */
function pipeEnds(ctx: FdInspectCtx): Map<number, PipeEnd> {
  const byIno = new Map<bigint, FdInfo[]>();
  for (const f of ctx.fds) {
    const ino = pipeIno(f.link);
    if (ino === null || ctx.holdersOutside(f.link).length) continue;
    byIno.set(ino, [...(byIno.get(ino) ?? []), f]);
  }
  const out = new Map<number, PipeEnd>();
  for (const [ino, ends] of byIno) {
    ends.sort((a, b) => a.fd - b.fd);
    const reader = ctx.wantState ? ends.find((f) => (f.flags & O_ACCMODE) !== O_WRONLY) : undefined;
    const { size, data } = reader ? peekPipe(ctx.pid, reader.fd) : { size: DEFAULT_PIPE_SIZE, data: new Uint8Array(0) };
    ends.forEach((f, i) => {
      const end: PipeEnd = { ino, write: (f.flags & O_ACCMODE) === O_WRONLY, size };
      if (i === 0 && data.length) end.data = data;
      out.set(f.fd, end);
    });
  }
  return out;
}

/**
 * A pipe: saved with its bytes, unless a process outside the tree also holds it (a PIPE reason). Pipes between
 * tasks of the tree are saved by each (restore --pid-ns --tree makes them once).
 */
export const pipeLive: LiveFdKind<PipeEnd, Map<number, PipeEnd>> = {
  scope: 'fd',
  format: kindFormat,
  name: 'pipe',
  task: pipeEnds,
  inspect(f, ctx, ends) {
    if (pipeIno(f.link) === null) return null;
    const ext = ctx.holdersOutside(f.link);
    if (ext.length)
      return { reason: { code: 'PIPE', text: `fd ${f.fd} is a pipe (${f.link}) also held by ${processesText(ext)} outside the tree` } };
    return { state: ends.get(f.fd)! };
  },
  restore: [{ when: 'fd', has: (f) => f.pipe !== undefined, run: (rc, f) => restorePipe(rc, f.pipe!) }],
};

// ------------------------------------------------------------------ restart

/**
 * Make a pipe in the task: pipe2 at a scratch address the task can write (`pairAt`, read back with `readPair`), both
 * ends moved to fds from `above` up (above every fd the task will have, so no placement overwrites the other end),
 * the capacity `size` and the bytes `data` (written through the write end, fetched into crimg with pidfd_getfd).
 * Returns the two fds [read, write].
 */
export function makePipe(
  pid: number,
  call: TaskCall,
  pairAt: bigint,
  readPair: () => [number, number],
  above: number,
  size: number,
  data?: Uint8Array,
): [number, number] {
  call(SYS.pipe2, [pairAt, 0], 'pipe2');
  const [r0, w0] = readPair();
  const r = Number(call(SYS.fcntl, [r0, F_DUPFD_CLOEXEC, above], 'F_DUPFD_CLOEXEC'));
  const w = Number(call(SYS.fcntl, [w0, F_DUPFD_CLOEXEC, above], 'F_DUPFD_CLOEXEC'));
  call(SYS.close, [r0]);
  call(SYS.close, [w0]);
  if (size !== DEFAULT_PIPE_SIZE) call(SYS.fcntl, [w, F_SETPIPE_SZ, size], `F_SETPIPE_SZ ${size}`);
  if (data?.length) {
    const wd = fetchFd(pid, w);
    try {
      let off = 0;
      while (off < data.length) off += fs.writeSync(wd, data, off, data.length - off);
    } finally {
      closeQuietly(wd);
    }
  }
  return [r, w];
}

/** Each fd of `ends` a copy of its end of the pipe whose ends the task has at fds r and w, with its O_NONBLOCK. */
export function placeEnds(ends: OpenFile[], r: number, w: number, call: TaskCall): void {
  for (const f of ends) {
    call(SYS.dup3, [f.pipe!.write ? w : r, f.fd, f.cloexec ? O_CLOEXEC : 0], `dup3 to fd ${f.fd}`);
    if (f.flags & O_NONBLOCK) call(SYS.fcntl, [f.fd, F_SETFL, O_NONBLOCK], `O_NONBLOCK on fd ${f.fd}`);
  }
}

/**
 * Make the pipe whose fds are `ends` (all of one pipe, lowest first) in the task (makePipe; its bytes only when the
 * task has a read end to take them), then each fd a copy of its end. Every fd number of `ends` must be free.
 */
export function createPipe(
  ends: OpenFile[],
  pid: number,
  call: TaskCall,
  pairAt: bigint,
  readPair: () => [number, number],
  above: number,
): void {
  const first = ends[0]!.pipe!;
  const readable = ends.some((f) => !f.pipe!.write);
  const [r, w] = makePipe(pid, call, pairAt, readPair, above, first.size, readable ? first.data : undefined);
  try {
    placeEnds(ends, r, w, call);
  } finally {
    call(SYS.close, [r]);
    call(SYS.close, [w]);
  }
}

/** The pipe of one end, made with all the task's fds of it when the lowest comes (from the ends every stub has when
 *  tasks of the tree share it). */
export function restorePipe(rc: RestoreCalls, pipe: PipeEnd): void {
  const key = `pipe ${pipe.ino}`;
  const ends = rc.fdsOnce(key, (x) => x.pipe?.ino === pipe.ino);
  if (!ends) return;
  const at = `fd ${ends.map((x) => x.fd).join(', ')} ${key}`;
  const shared = rc.treePipe(pipe.ino); // between tasks of the tree: placed from the ends every stub has
  if (shared) {
    rc.step('place pipe', at, () => placeEnds(ends, shared[0], shared[1], rc.call));
    return;
  }
  rc.step('create pipe', at, () => createPipe(ends, rc.pid, rc.call, rc.scratchAt, rc.readPair, rc.fdsAbove));
}
