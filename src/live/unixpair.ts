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
import type { OpenFile, UnixPairEnd } from '../model.js';
import type { FdInfo } from '../os/proc.js';
import { SysError, addressOf, syscall } from '../os/libc.js';
import {
  AF_NETLINK, AF_UNIX, F_DUPFD_CLOEXEC, F_SETFL, MSG_DONTWAIT, MSG_PEEK, O_CLOEXEC, O_NONBLOCK, SOCK_CLOEXEC,
  SOCK_DGRAM, SOCK_STREAM,
} from '../os/consts.js';
import { SYS } from '../os/syscalls.js';
import { type TaskCall, fetchFd } from '../os/taskcall.js';

const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20, NLM_F_REQUEST = 1, NLM_F_DUMP = 0x300, NLMSG_DONE = 3, NLMSG_ERROR = 2;
const UDIAG_SHOW_NAME = 1, UDIAG_SHOW_PEER = 4, UDIAG_SHOW_RQLEN = 16;
const UNIX_DIAG_NAME = 0, UNIX_DIAG_PEER = 2, UNIX_DIAG_RQLEN = 4;

/** What sock_diag says of one UNIX socket. */
export interface UnixSock { ino: bigint; type: number; peer: bigint; named: boolean; rqueue: number }

/** The inode of a socket link (socket:[123]), or null. */
export function socketIno(link: string): bigint | null {
  const m = /^socket:\[(\d+)\]$/.exec(link);
  return m ? BigInt(m[1]!) : null;
}

/**
 * One sock_diag dump (NETLINK_SOCK_DIAG): sends `req` (a SOCK_DIAG_BY_FAMILY request after the 16-byte netlink
 * header, which this fills in) and calls `each` with every reply message: its bytes and the offset of its payload.
 */
export function sockDiag(req: Uint8Array, each: (buf: Uint8Array, at: number, end: number) => void): void {
  const nl = syscall(SYS.socket, AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  try {
    const dv = new DataView(req.buffer, req.byteOffset, req.length);
    dv.setUint32(0, req.length, true);
    dv.setUint16(4, SOCK_DIAG_BY_FAMILY, true);
    dv.setUint16(6, NLM_F_REQUEST | NLM_F_DUMP, true);
    dv.setUint32(8, 1, true);
    fs.writeSync(nl, req);
    const buf = new Uint8Array(64 * 1024);
    for (;;) {
      const n = fs.readSync(nl, buf, 0, buf.length, null);
      const b = new DataView(buf.buffer, 0, n);
      for (let o = 0; o + 16 <= n;) {
        const len = b.getUint32(o, true), type = b.getUint16(o + 4, true);
        if (len < 16 || o + len > n) throw new Error('sock_diag: malformed reply');
        if (type === NLMSG_DONE) return;
        if (type === NLMSG_ERROR) throw new SysError('sock_diag', -b.getInt32(o + 16, true), 'dump');
        each(buf, o + 16, o + len);
        o += (len + 3) & ~3;
      }
    }
  } finally { fs.closeSync(nl); }
}

/** Every UNIX socket of crimg's network namespace (sock_diag dump, unix_diag). */
export function unixSockets(): Map<bigint, UnixSock> {
  const out = new Map<bigint, UnixSock>();
  const req = new Uint8Array(16 + 24);
  const dv = new DataView(req.buffer);
  req[16] = AF_UNIX;
  dv.setUint32(20, 0xffffffff, true); // every state
  dv.setUint32(28, UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN, true);
  dv.setUint32(32, 0xffffffff, true); dv.setUint32(36, 0xffffffff, true); // no cookie
  sockDiag(req, (buf, m, end) => {
    // unix_diag_msg: family, type, state, pad, ino, cookie[2]; then attributes
    const b = new DataView(buf.buffer);
    const s: UnixSock = { ino: BigInt(b.getUint32(m + 4, true)), type: buf[m + 1]!, peer: 0n, named: false, rqueue: 0 };
    for (let a = m + 16; a + 4 <= end;) {
      const alen = b.getUint16(a, true), atype = b.getUint16(a + 2, true);
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
export function ownPairs(fds: FdInfo[], socks: Map<bigint, UnixSock>): Map<bigint, bigint> {
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

/**
 * Mark the sockets of the task's own pairs among `files`: each gets the pair's id (the lower inode), which socket
 * it is, the type, and (on the lowest fd of each socket) the bytes queued to it. Sockets whose link is in `shared`
 * (another process holds them too) and pairs that cannot be saved (pairSavable) are left as plain files: check.ts
 * reports them.
 */
export function collectUnixPairs(pid: number, fds: FdInfo[], files: OpenFile[], shared?: Set<string>, socks = unixSockets()): void {
  const pairs = ownPairs(fds.filter((f) => !shared?.has(f.link)), socks);
  for (const ino of [...pairs.keys()]) if (!pairSavable(ino, socks) || !pairs.has(pairs.get(ino)!)) pairs.delete(ino);
  const seen = new Set<bigint>();
  for (const f of [...files].sort((a, b) => a.fd - b.fd)) {
    const ino = socketIno(f.path);
    if (ino === null || !pairs.has(ino)) continue;
    const peer = pairs.get(ino)!;
    const s = socks.get(ino)!;
    const end: UnixPairEnd = { pair: ino < peer ? ino : peer, second: ino > peer, type: s.type };
    if (!seen.has(ino)) {
      seen.add(ino);
      if (s.rqueue > 0 && s.type === SOCK_STREAM) end.data = peek(pid, f.fd, s.rqueue);
    }
    f.unixPair = end;
  }
}

/** Up to n bytes queued to socket fd of pid, without taking them. */
function peek(pid: number, fd: number, n: number): Uint8Array {
  const sock = fetchFd(pid, fd);
  try {
    const b = new Uint8Array(n);
    const got = syscall(SYS.recvfrom, sock, addressOf(b), n, MSG_PEEK | MSG_DONTWAIT, 0, 0);
    return b.slice(0, got);
  } finally { fs.closeSync(sock); }
}

/** Whether the pair of `ino` can be saved: stream pairs always, others only with nothing queued. */
export function pairSavable(ino: bigint, socks: Map<bigint, UnixSock>): boolean {
  const s = socks.get(ino), p = s ? socks.get(s.peer) : undefined;
  return !!s && !!p && (s.type === SOCK_STREAM || (s.rqueue === 0 && p.rqueue === 0));
}

// ------------------------------------------------------------------ restart


/**
 * Make the pair whose fds are `ends` (all of one pair, lowest first) in the task: socketpair at a scratch address
 * (`pairAt`, read back with `readPair`), both sockets moved to fds from `above` up, the bytes each had queued sent
 * again from the other, then each fd a copy of its socket. Every fd number of `ends` must be free.
 */
export function createUnixPair(ends: OpenFile[], pid: number, call: TaskCall, pairAt: bigint, readPair: () => [number, number], above: number): void {
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
      } finally { fs.closeSync(from); }
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

