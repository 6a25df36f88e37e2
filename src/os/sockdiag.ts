/**
 * The kernel's socket diagnostics (NETLINK_SOCK_DIAG): one dump of the sockets of a family in crimg's network
 * namespace. The request (unix_diag_req, inet_diag_req_v2) and the replies are the caller's to build and read.
 */
import * as fs from 'node:fs';
import { SysError, syscall } from './libc.js';
import { AF_NETLINK, SOCK_CLOEXEC, SOCK_DGRAM } from './consts.js';
import { SYS } from './syscalls.js';

const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20,
  NLM_F_REQUEST = 1,
  NLM_F_DUMP = 0x300,
  NLMSG_DONE = 3,
  NLMSG_ERROR = 2;

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
      for (let o = 0; o + 16 <= n; ) {
        const len = b.getUint32(o, true),
          type = b.getUint16(o + 4, true);
        if (len < 16 || o + len > n) throw new Error('sock_diag: malformed reply');
        if (type === NLMSG_DONE) return;
        if (type === NLMSG_ERROR) throw new SysError('sock_diag', -b.getInt32(o + 16, true), 'dump');
        each(buf, o + 16, o + len);
        o += (len + 3) & ~3;
      }
    }
  } finally {
    fs.closeSync(nl);
  }
}
