/** A socket of a UNIX socket pair the task holds both of: the UNIX_PAIR record under FD. */
import { FdKind } from '../../model.js';
import { defineKind } from '../kind.js';

/** A socket of a socketpair: the pair's id (its lower inode at the checkpoint), which of the two, the type
 *  (SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5), and on the socket's lowest fd the bytes queued to it. */
export interface UnixPairEnd {
  pair: bigint;
  second: boolean;
  type: number;
  data?: Uint8Array;
}

export const unixPair = defineKind<'fd', UnixPairEnd>({
  key: 'unixPair',
  label: 'unixPair',
  owner: 'fd',
  record: {
    kind: 0x0405,
    name: 'UNIX_PAIR',
    parent: 0x0401,
    doc: 'Optional, on an FD of kind 2 (other): one socket of a UNIX socket pair the task holds both of (absent: another kind of file).',
    fields: [
      ['pairId', 'u64', 'the pair (the lower inode of its two sockets at the checkpoint)'],
      ['second', 'u32', '0 the first socket, 1 the second'],
      ['sockType', 'u32', 'SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5'],
      ['data', 'raw', 'bytes queued to this socket (stream pairs), in the record of its first fd in the image; empty in the others'],
    ],
  },
  encode: (v) => ({ pairId: v.pair, second: v.second ? 1 : 0, sockType: v.type, data: v.data ?? new Uint8Array(0) }),
  decode(f, file, bad) {
    const type = f.sockType as number,
      second = f.second as number,
      data = f.data as Uint8Array;
    if (file.kind !== FdKind.OTHER) bad(`fd ${file.fd} is a regular file or directory`);
    if (second > 1) bad(`fd ${file.fd}: socket ${second} of a pair`);
    if (type !== 1 && type !== 2 && type !== 5) bad(`fd ${file.fd}: socket type ${type} is none of stream, datagram, seqpacket`);
    if (data.length && type !== 1) bad(`fd ${file.fd}: bytes queued to a socket of type ${type}`);
    const u: UnixPairEnd = { pair: f.pairId as bigint, second: second === 1, type };
    if (data.length) u.data = data;
    return u;
  },
  checkTask(_task, values, bad) {
    // a socket pair has both sockets, of one type; the queued bytes of a socket are on its first fd
    const first = new Map<string, number>();
    for (const [file, u] of values) {
      const key = `${u.pair}:${u.second}`;
      const f = first.get(key);
      if (f === undefined) first.set(key, file.fd);
      else if (u.data?.length) bad(file, `fd ${file.fd} carries bytes queued to a socket whose first fd is ${f}`);
      const other = values.find(([, x]) => x.pair === u.pair && x.second !== u.second);
      if (!other) bad(file, `fd ${file.fd} is a socket of pair ${u.pair}, whose other socket the task does not have`);
      else if (other[1].type !== u.type) bad(file, `fd ${file.fd}: the sockets of pair ${u.pair} differ in type`);
    }
  },
  json: (v) => ({ pair: v.pair, second: v.second, type: v.type, bytes: v.data?.length ?? 0 }),
  text: (v) => [
    `socket pair ${v.pair} (${v.second ? 'second' : 'first'}), type ${v.type}${v.data ? `, ${v.data.length} bytes queued` : ''}`,
  ],
});
