/**
 * Listening TCP sockets (an idle server): checkpoint and restart side by side.
 *
 * Checkpoint: the kernel's sock_diag (NETLINK_SOCK_DIAG, inet_diag, TCP sockets in
 * LISTEN of the target's network namespace when it is crimg's) gives each
 * listener's address, port, backlog (idiag_wqueue) and the connections waiting
 * to be accepted (idiag_rqueue); SO_REUSEADDR, SO_REUSEPORT and IPV6_V6ONLY come
 * from getsockopt on a copy of the socket (pidfd_getfd). A listener with
 * connections waiting is a reason (SOCKET): they cannot be moved.
 *
 * Restart: socket, the options, bind to the same address and port, listen with
 * the same backlog.
 */
import * as fs from 'node:fs';
import type { OpenFile, TcpListen } from '../../model.js';
import { type FdInfo, fileType, sameNetNs, socketIno } from '../../os/proc.js';
import { getsockoptInt } from '../../os/libc.js';
import {
  AF_INET,
  AF_INET6,
  IPPROTO_IPV6,
  IPPROTO_TCP,
  IPV6_V6ONLY,
  O_CLOEXEC,
  O_NONBLOCK,
  SOCK_STREAM,
  SOL_SOCKET,
  SO_REUSEADDR,
  SO_REUSEPORT,
  S_IFSOCK,
} from '../../os/consts.js';
import { sockDiag } from '../../os/sockdiag.js';
import { SYS } from '../../os/syscalls.js';
import { type TaskCall, type TaskScratch, fetchFd } from '../../os/taskcall.js';
import type { LiveFdKind } from '../live.js';
import { tcpListen as kindFormat } from './format.js';

/** The TCP state of a listening socket (inet_diag idiag_states bit). */
const TCP_LISTEN = 10;
/** TcpListen.opts bits */
export const LISTEN_OPT = { REUSEADDR: 1, REUSEPORT: 2, V6ONLY: 4 } as const;

/** What inet_diag says of a listening TCP socket. */
interface Listener {
  family: number;
  addr: Uint8Array;
  port: number;
  backlog: number;
  queued: number;
}

/** Listening TCP sockets of crimg's network namespace, by inode (sock_diag dump, inet_diag, IPv4 and IPv6). */
function tcpListeners(): Map<bigint, Listener> {
  const out = new Map<bigint, Listener>();
  for (const family of [AF_INET, AF_INET6]) {
    const req = new Uint8Array(16 + 56);
    req[16] = family;
    req[17] = IPPROTO_TCP;
    new DataView(req.buffer).setUint32(20, 1 << TCP_LISTEN, true);
    sockDiag(req, (buf, m) => {
      // inet_diag_msg: family, state, timer, retrans, id { sport be16, dport be16, src[16], dst[16], if, cookie[2] },
      // expires, rqueue, wqueue, uid, inode
      const b = new DataView(buf.buffer);
      const fam = buf[m]!;
      out.set(BigInt(b.getUint32(m + 68, true)), {
        family: fam,
        port: b.getUint16(m + 4, false),
        addr: buf.slice(m + 8, m + 8 + (fam === AF_INET ? 4 : 16)),
        queued: b.getUint32(m + 56, true),
        backlog: b.getUint32(m + 60, true),
      });
    });
  }
  return out;
}

// ------------------------------------------------------------------ checkpoint

/** The listener behind socket fd `f` of pid, why it cannot be saved, or null when it is not a listening TCP socket. */
function listenState(pid: number, f: FdInfo, listeners: Map<bigint, Listener>): { listen: TcpListen } | { problem: string } | null {
  const ino = socketIno(f.link);
  const l = ino === null ? undefined : listeners.get(ino);
  if (!l) return null;
  if (l.queued) return { problem: `${l.queued} connection(s) wait to be accepted` };
  let opts = 0;
  try {
    const s = fetchFd(pid, f.fd);
    try {
      if (getsockoptInt(s, SOL_SOCKET, SO_REUSEADDR)) opts |= LISTEN_OPT.REUSEADDR;
      if (getsockoptInt(s, SOL_SOCKET, SO_REUSEPORT)) opts |= LISTEN_OPT.REUSEPORT;
      if (l.family === AF_INET6 && getsockoptInt(s, IPPROTO_IPV6, IPV6_V6ONLY)) opts |= LISTEN_OPT.V6ONLY;
    } finally {
      fs.closeSync(s);
    }
  } catch (e) {
    return { problem: `its options cannot be read (${(e as Error).message})` };
  }
  return { listen: { family: l.family, addr: l.addr, port: l.port, backlog: l.backlog, opts } };
}

/**
 * A listening TCP socket of the task's own (no other process holds it), in crimg's network namespace: saved, or
 * a SOCKET reason (connections waiting, options that cannot be read). Other sockets are not this kind's.
 */
export const tcpListenLive: LiveFdKind<TcpListen, boolean> = {
  scope: 'fd',
  format: kindFormat,
  name: 'tcp-listen',
  task(ctx) {
    return ctx.fds.some((f) => socketIno(f.link) !== null) && sameNetNs(ctx.pid);
  },
  inspect(f, ctx, sameNs) {
    if (!sameNs || !f.stat || fileType(f.stat.mode) !== S_IFSOCK || socketIno(f.link) === null) return null;
    if (ctx.holdersOutside(f.link).length || ctx.holdersInTree(f.link).length) return null;
    const listeners = ctx.once('tcp listeners', () => {
      try {
        return tcpListeners();
      } catch {
        return new Map<bigint, Listener>();
      }
    });
    const st = listenState(ctx.pid, f, listeners);
    if (!st) return null;
    if ('problem' in st) return { reason: { code: 'SOCKET', text: `fd ${f.fd} is a listening TCP socket (${f.link}): ${st.problem}` } };
    return { state: st.listen };
  },
  restore: [
    {
      when: 'fd',
      has: (f) => f.tcpListen !== undefined,
      run(rc, f) {
        const at = `fd ${f.fd} listening socket`;
        rc.placeFd(
          f,
          at,
          rc.step('create file', at, () => createListener(f, rc.call, rc.scratch)),
        );
      },
    },
  ],
};

// ------------------------------------------------------------------ restart

/** Make listening socket `f` in the task; returns the fd the kernel gave it. `scratch` writes bytes into the task
 *  and returns their address. */
export function createListener(f: OpenFile, call: TaskCall, scratch: TaskScratch): number {
  const l = f.tcpListen!;
  const fd = Number(call(SYS.socket, [l.family, SOCK_STREAM | (f.flags & O_NONBLOCK) | (f.cloexec ? O_CLOEXEC : 0), 0], 'socket'));
  const one = (level: number, opt: number, what: string): void => {
    call(SYS.setsockopt, [fd, level, opt, scratch(new Uint8Array(new Int32Array([1]).buffer)), 4], what);
  };
  if (l.opts & LISTEN_OPT.REUSEADDR) one(SOL_SOCKET, SO_REUSEADDR, 'SO_REUSEADDR');
  if (l.opts & LISTEN_OPT.REUSEPORT) one(SOL_SOCKET, SO_REUSEPORT, 'SO_REUSEPORT');
  if (l.family === AF_INET6)
    call(
      SYS.setsockopt,
      [fd, IPPROTO_IPV6, IPV6_V6ONLY, scratch(new Uint8Array(new Int32Array([l.opts & LISTEN_OPT.V6ONLY ? 1 : 0]).buffer)), 4],
      'IPV6_V6ONLY',
    );
  const sa = new Uint8Array(l.family === AF_INET ? 16 : 28);
  const dv = new DataView(sa.buffer);
  dv.setUint16(0, l.family, true);
  dv.setUint16(2, l.port, false);
  sa.set(l.addr, l.family === AF_INET ? 4 : 8);
  const where = `${l.family === AF_INET ? [...l.addr].join('.') : `[${Buffer.from(l.addr).toString('hex')}]`}:${l.port}`;
  call(SYS.bind, [fd, scratch(sa), sa.length], `bind ${where}`);
  call(SYS.listen, [fd, l.backlog], `listen ${where}`);
  return fd;
}
