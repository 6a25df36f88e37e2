/** File locks held through a descriptor (flock, POSIX, OFD): the FLOCKS record under FD. */
import { FdKind } from '../../model.js';
import { defineKind } from '../kind.js';

/** Kinds of file lock: flock(2) (per open file description), POSIX fcntl (per process), OFD fcntl (per description). */
export const LOCK_KIND = { FLOCK: 1, POSIX: 2, OFD: 3 } as const;
/** `end` of a lock that reaches to the end of the file, however long it grows. */
export const LOCK_EOF = 0xffffffffffffffffn;

/** A file lock: its kind (LOCK_KIND), read or write, and the bytes [start, end] it covers (flock: 0, LOCK_EOF). */
export interface FileLock {
  kind: number;
  write: boolean;
  start: bigint;
  end: bigint;
}

const I64_MAX = 0x7fffffffffffffffn;

export const flocks = defineKind<'fd', FileLock[]>({
  key: 'locks',
  label: 'locks',
  owner: 'fd',
  record: {
    kind: 0x0402,
    name: 'FLOCKS',
    parent: 0x0401,
    doc: 'Optional: the file locks held through that descriptor (absent: none).',
    fields: [
      [
        'locks',
        'u64[]',
        'kind 1 flock, 2 POSIX (fcntl F_SETLK), 3 OFD (F_OFD_SETLK); type 0 read (shared), 1 write (exclusive); '
          + 'the bytes start..end, end 2^64-1 = to the end of the file (flock: 0, 2^64-1)',
        ['kind', 'type', 'start', 'end'],
      ],
    ],
  },
  present: (v) => v.length > 0,
  encode: (v) => ({ locks: v.map((l) => ({ kind: BigInt(l.kind), type: l.write ? 1n : 0n, start: l.start, end: l.end })) }),
  decode(f, file, bad) {
    const rows = f.locks as { kind: bigint; type: bigint; start: bigint; end: bigint }[];
    if (!rows.length) bad('0 values are not (kind, type, start, end) quadruples');
    if (file.kind !== FdKind.REGULAR && file.kind !== FdKind.DIRECTORY)
      bad(`locks on fd ${file.fd}, which is not a regular file or directory`);
    return rows.map(({ kind, type, start, end }) => {
      if (kind < 1n || kind > 3n) bad(`fd ${file.fd}: lock kind ${kind} is none of flock, POSIX, OFD`);
      if (type > 1n) bad(`fd ${file.fd}: lock type ${type} is neither read nor write`);
      if (start > end || start > I64_MAX || (end !== LOCK_EOF && end > I64_MAX)) bad(`fd ${file.fd}: lock range ${start}..${end}`);
      if (kind === BigInt(LOCK_KIND.FLOCK) && (start !== 0n || end !== LOCK_EOF)) bad(`fd ${file.fd}: a flock lock covers the whole file`);
      return { kind: Number(kind), write: type === 1n, start, end };
    });
  },
  text: (v) =>
    v.map(
      (l) =>
        `lock ${['', 'flock', 'POSIX', 'OFD'][l.kind]} ${l.write ? 'write' : 'read'} ${l.start}..${l.end === LOCK_EOF ? 'EOF' : l.end}`,
    ),
});
