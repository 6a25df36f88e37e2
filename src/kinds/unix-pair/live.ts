/**
 * UNIX socket pairs a task holds both sockets of (socketpair(2): an event
 * loop's wakeup channel, Python asyncio's self-pipe). Checkpoint and restart
 * side by side.
 *
 * Checkpoint: the kernel's sock_diag (NETLINK_SOCK_DIAG, unix_diag with
 * UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN | UDIAG_SHOW_NAME) gives each UNIX socket's
 * type, peer, bound name and queue length. A pair is the task's own when both
 * sockets are among its fds, neither has a name, and they are each other's
 * peer. The bytes queued to each socket are read without taking them (the socket
 * fetched with pidfd_getfd, recv with MSG_PEEK); stream sockets only carry
 * bytes: a datagram or seqpacket pair is saved when both queues are empty.
 *
 * Restart: socketpair(AF_UNIX, type) in the task, both sockets moved above every
 * fd the task will have, the bytes each had queued sent again from the other one
 * (fetched into crimg with pidfd_getfd), then every fd a copy of its socket with
 * its O_NONBLOCK and close-on-exec.
 */
import * as fs from 'node:fs';
import type { OpenFile, UnixPairEnd } from '../../model.js';
import { type FdInfo, socketIno } from '../../os/proc.js';
import { addressOf, syscall } from '../../os/libc.js';
import { AF_UNIX, F_DUPFD_CLOEXEC, F_SETFL, MSG_DONTWAIT, MSG_PEEK, O_CLOEXEC, O_NONBLOCK, SOCK_STREAM } from '../../os/consts.js';
import { sockDiag } from '../../os/sockdiag.js';
import { SYS } from '../../os/syscalls.js';
import { type TaskCall, fetchFd } from '../../os/taskcall.js';
import type { LiveFdKind, RestoreCalls } from '../live.js';
import { unixPair as kindFormat } from './format.js';

const UDIAG_SHOW_NAME = 1,
  UDIAG_SHOW_PEER = 4,
  UDIAG_SHOW_RQLEN = 16;
const UNIX_DIAG_NAME = 0,
  UNIX_DIAG_PEER = 2,
  UNIX_DIAG_RQLEN = 4;

/** What sock_diag says of one UNIX socket. */
interface UnixSock {
  ino: bigint;
  type: number;
  peer: bigint;
  named: boolean;
  rqueue: number;
}

/** Every UNIX socket of crimg's network namespace (sock_diag dump, unix_diag). */
function unixSockets(): Map<bigint, UnixSock> {
  const out = new Map<bigint, UnixSock>();
  const req = new Uint8Array(16 + 24);
  const dv = new DataView(req.buffer);
  req[16] = AF_UNIX;
  dv.setUint32(20, 0xffffffff, true); // every state
  dv.setUint32(28, UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN, true);
  dv.setUint32(32, 0xffffffff, true);
  dv.setUint32(36, 0xffffffff, true); // no cookie
  sockDiag(req, (buf, m, end) => {
    // unix_diag_msg: family, type, state, pad, ino, cookie[2]; then attributes
    const b = new DataView(buf.buffer);
    const s: UnixSock = { ino: BigInt(b.getUint32(m + 4, true)), type: buf[m + 1]!, peer: 0n, named: false, rqueue: 0 };
    for (let a = m + 16; a + 4 <= end; ) {
      const alen = b.getUint16(a, true),
        atype = b.getUint16(a + 2, true);
      if (alen < 4) break;
      if (atype === UNIX_DIAG_PEER) s.peer = BigInt(b.getUint32(a + 4, true));
      else if (atype === UNIX_DIAG_NAME) s.named = alen > 4;
      else if (atype === UNIX_DIAG_RQLEN) s.rqueue = b.getUint32(a + 4, true);
      a += (alen + 3) & ~3;
    }
    out.set(s.ino, s);
  });
  return out;
}

/**
 * The UNIX sockets of a task (fds) that are pairs it holds both of, unnamed, peers of each other: ino -> its peer.
 * `socks` from unixSockets().
 */
function ownPairs(fds: readonly FdInfo[], socks: Map<bigint, UnixSock>): Map<bigint, bigint> {
  const held = new Set(fds.map((f) => socketIno(f.link)).filter((x): x is bigint => x !== null));
  const out = new Map<bigint, bigint>();
  for (const ino of held) {
    const s = socks.get(ino);
    if (!s || s.named || !s.peer || !held.has(s.peer)) continue;
    const p = socks.get(s.peer);
    if (!p || p.named || p.peer !== ino || p.type !== s.type) continue;
    out.set(ino, s.peer);
  }
  return out;
}

// ------------------------------------------------------------------ checkpoint

/** What the look at the whole fd table found: the pairs the task owns (ino -> peer), what sock_diag says of each
 *  socket, and the sockets whose bytes were taken already (on their lowest fd). */
interface Pairs {
  pairs: Map<bigint, bigint>;
  socks: Map<bigint, UnixSock>;
  seen: Set<bigint>;
}

/**
 * The task's own socket pairs (ownPairs) whose sockets no other process holds and that can be saved (pairSavable):
 * each fd of one gets the pair's id (the lower inode), which socket it is and the type, and the lowest fd of each
 * socket the bytes queued to it. Other sockets are not this kind's: they get the generic SOCKET reason.
 */
export const unixPairLive: LiveFdKind<UnixPairEnd, Pairs> = {
  scope: 'fd',
  format: kindFormat,
  name: 'unix-pair',
  task(ctx) {
    const none: Pairs = { pairs: new Map(), socks: new Map(), seen: new Set() };
    if (!ctx.fds.some((f) => socketIno(f.link) !== null)) return none;
    const socks = ctx.once('unix sockets', () => {
      try {
        return unixSockets();
      } catch {
        return new Map<bigint, UnixSock>();
      }
    });
    const own = ctx.fds.filter(
      (f) => socketIno(f.link) !== null && !ctx.holdersOutside(f.link).length && !ctx.holdersInTree(f.link).length,
    );
    const pairs = ownPairs(own, socks);
    for (const ino of [...pairs.keys()]) if (!pairSavable(ino, socks) || !pairs.has(pairs.get(ino)!)) pairs.delete(ino);
    return { pairs, socks, seen: new Set() };
  },
  inspect(f, ctx, t) {
    const ino = socketIno(f.link);
    if (ino === null || !t.pairs.has(ino)) return null;
    const peer = t.pairs.get(ino)!;
    const s = t.socks.get(ino)!;
    // biome-ignore lint/complexity/useMathMinMax: bigints (Math.min takes numbers)
    const end: UnixPairEnd = { pair: ino < peer ? ino : peer, second: ino > peer, type: s.type };
    if (!t.seen.has(ino)) {
      t.seen.add(ino);
      if (s.rqueue > 0 && s.type === SOCK_STREAM && ctx.wantState) end.data = peek(ctx.pid, f.fd, s.rqueue);
    }
    return { state: end };
  },
  restore: [{ when: 'fd', has: (f) => f.unixPair !== undefined, run: (rc, f) => restoreUnixPair(rc, f.unixPair!) }],
};

/** Up to n bytes queued to socket fd of pid, without taking them. */
function peek(pid: number, fd: number, n: number): Uint8Array {
  const sock = fetchFd(pid, fd);
  try {
    const b = new Uint8Array(n);
    const got = syscall(SYS.recvfrom, sock, addressOf(b), n, MSG_PEEK | MSG_DONTWAIT, 0, 0);
    return b.slice(0, got);
  } finally {
    fs.closeSync(sock);
  }
}

/** Whether the pair of `ino` can be saved: stream pairs always, others only with nothing queued. */
function pairSavable(ino: bigint, socks: Map<bigint, UnixSock>): boolean {
  const s = socks.get(ino),
    p = s ? socks.get(s.peer) : undefined;
  return !!s && !!p && (s.type === SOCK_STREAM || (s.rqueue === 0 && p.rqueue === 0));
}

// ------------------------------------------------------------------ restart

/**
 * Make the pair whose fds are `ends` (all of one pair, lowest first) in the task: socketpair at a scratch address
 * (`pairAt`, read back with `readPair`), both sockets moved to fds from `above` up, the bytes each had queued sent
 * again from the other, then each fd a copy of its socket. Every fd number of `ends` must be free.
 */
export function createUnixPair(
  ends: OpenFile[],
  pid: number,
  call: TaskCall,
  pairAt: bigint,
  readPair: () => [number, number],
  above: number,
): void {
  const type = ends[0]!.unixPair!.type;
  call(SYS.socketpair, [AF_UNIX, type, 0, pairAt], 'socketpair');
  const [a0, b0] = readPair();
  const sv = [Number(call(SYS.fcntl, [a0, F_DUPFD_CLOEXEC, above])), Number(call(SYS.fcntl, [b0, F_DUPFD_CLOEXEC, above]))];
  call(SYS.close, [a0]);
  call(SYS.close, [b0]);
  try {
    for (const f of ends) {
      const data = f.unixPair!.data;
      if (!data?.length) continue;
      const from = fetchFd(pid, sv[f.unixPair!.second ? 0 : 1]!); // queued to this socket: sent by its peer
      try {
        let off = 0;
        while (off < data.length) off += fs.writeSync(from, data, off, data.length - off);
      } finally {
        fs.closeSync(from);
      }
    }
    for (const f of ends) {
      call(SYS.dup3, [sv[f.unixPair!.second ? 1 : 0]!, f.fd, f.cloexec ? O_CLOEXEC : 0], `dup3 to fd ${f.fd}`);
      if (f.flags & O_NONBLOCK) call(SYS.fcntl, [f.fd, F_SETFL, O_NONBLOCK], `O_NONBLOCK on fd ${f.fd}`);
    }
  } finally {
    call(SYS.close, [sv[0]!]);
    call(SYS.close, [sv[1]!]);
  }
}

/** The socket pair of one end, made with all the task's fds of it when the lowest comes. */
export function restoreUnixPair(rc: RestoreCalls, end: UnixPairEnd): void {
  const key = `socket pair ${end.pair}`;
  const ends = rc.fdsOnce(key, (x) => !x.pipe && x.unixPair?.pair === end.pair);
  if (!ends) return;
  rc.step('create socket', `fd ${ends.map((x) => x.fd).join(', ')} ${key}`, () =>
    createUnixPair(ends, rc.pid, rc.call, rc.scratchAt, rc.readPair, rc.fdsAbove),
  );
}
