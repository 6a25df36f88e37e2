/** A listening TCP socket with no connection waiting: the TCP_LISTEN record under FD. */
import { FdKind } from '../../model.js';
import { defineKind } from '../kind.js';

/** A listening TCP socket: family (AF_INET 2, AF_INET6 10), address (4 or 16 bytes), port, backlog, and options
 *  (bit 0 SO_REUSEADDR, bit 1 SO_REUSEPORT, bit 2 IPV6_V6ONLY). */
export interface TcpListen {
  family: number;
  addr: Uint8Array;
  port: number;
  backlog: number;
  opts: number;
}

/** 127.0.0.1 or [00000000000000000000000000000001] */
export function addrText(family: number, addr: Uint8Array): string {
  return family === 2 ? [...addr].join('.') : `[${[...addr].map((x) => x.toString(16).padStart(2, '0')).join('')}]`;
}

export const tcpListen = defineKind<'fd', TcpListen>({
  key: 'tcpListen',
  label: 'tcpListen',
  owner: 'fd',
  record: {
    kind: 0x0407,
    name: 'TCP_LISTEN',
    parent: 0x0401,
    doc: 'Optional, on an FD of kind 2 (other): a listening TCP socket with no connection waiting (absent: another kind of file).',
    fields: [
      ['family', 'u32', 'AF_INET 2, AF_INET6 10'],
      ['port', 'u32'],
      ['backlog', 'u32'],
      ['opts', 'u32', 'bit 0 SO_REUSEADDR, bit 1 SO_REUSEPORT, bit 2 IPV6_V6ONLY'],
      ['addr', 'raw', 'the bound address: 4 bytes (AF_INET) or 16 (AF_INET6)'],
    ],
  },
  encode: (v) => ({ family: v.family, port: v.port, backlog: v.backlog, opts: v.opts, addr: v.addr }),
  decode(f, file, bad) {
    const family = f.family as number,
      addr = f.addr as Uint8Array,
      port = f.port as number,
      opts = f.opts as number;
    if (file.kind !== FdKind.OTHER) bad(`fd ${file.fd} is a regular file or directory`);
    if (!((family === 2 && addr.length === 4) || (family === 10 && addr.length === 16)))
      bad(`fd ${file.fd}: family ${family} with a ${addr.length}-byte address`);
    if (port < 1 || port > 65535 || opts > 7) bad(`fd ${file.fd}: port ${port}, options ${opts}`);
    return { family, addr, port, backlog: f.backlog as number, opts };
  },
  json: (v) => ({ family: v.family, addr: addrText(v.family, v.addr), port: v.port, backlog: v.backlog, opts: v.opts }),
  text: (v) => [`listening on ${addrText(v.family, v.addr)}:${v.port} backlog ${v.backlog}`],
});
