/** One end of a pipe the task holds: the PIPE record under FD. */
import { FdKind } from '../../model.js';
import { defineKind } from '../kind.js';

/** An end of a pipe: the pipe's inode (the fds of one pipe share it), which end, the capacity, and on the pipe's
 *  lowest fd the bytes buffered in it. */
export interface PipeEnd {
  ino: bigint;
  write: boolean;
  size: number;
  data?: Uint8Array;
}

export const pipe = defineKind<'fd', PipeEnd>({
  key: 'pipe',
  label: 'pipe',
  owner: 'fd',
  record: {
    kind: 0x0404,
    name: 'PIPE',
    parent: 0x0401,
    doc: 'Optional, on an FD of kind 2 (other): one end of a pipe the task holds (absent: another kind of file).',
    fields: [
      ['pipeIno', 'u64', 'inode of the pipe: the fds of one pipe share it'],
      ['end', 'u32', '0 read end, 1 write end'],
      ['size', 'u32', 'capacity in bytes (F_GETPIPE_SZ): a power of two, at least 4096'],
      [
        'data',
        'raw',
        'the bytes buffered in the pipe, in the record of its first fd in the image (the lowest: files are in fd order; empty in the others)',
      ],
    ],
  },
  encode: (v) => ({ pipeIno: v.ino, end: v.write ? 1 : 0, size: v.size, data: v.data ?? new Uint8Array(0) }),
  decode(f, file, bad) {
    const end = f.end as number,
      size = f.size as number,
      data = f.data as Uint8Array;
    if (file.kind !== FdKind.OTHER) bad(`fd ${file.fd} is a regular file or directory`);
    if (end > 1) bad(`fd ${file.fd}: pipe end ${end}`);
    if (size < 4096 || (size & (size - 1)) !== 0) bad(`fd ${file.fd}: pipe capacity ${size}`);
    if (data.length > size) bad(`fd ${file.fd}: ${data.length} bytes buffered in a pipe of ${size}`);
    const pe: PipeEnd = { ino: f.pipeIno as bigint, write: end === 1, size };
    if (data.length) pe.data = data;
    return pe;
  },
  checkTask(_task, values, bad) {
    // the buffered bytes of a pipe are on its lowest fd, which has the pipe's capacity like its other fds
    const first = new Map<bigint, [number, PipeEnd]>();
    for (const [file, p] of values) {
      const f = first.get(p.ino);
      if (!f) {
        first.set(p.ino, [file.fd, p]);
        continue;
      }
      if (p.data?.length) bad(file, `fd ${file.fd} carries bytes of pipe ${p.ino}, whose lowest fd is ${f[0]}`);
      if (p.size !== f[1].size) bad(file, `fd ${file.fd} gives pipe ${p.ino} capacity ${p.size}, fd ${f[0]} ${f[1].size}`);
    }
  },
  json: (v) => ({ ino: v.ino, write: v.write, size: v.size, bytes: v.data?.length ?? 0 }),
  text: (v) => [`pipe ${v.ino} ${v.write ? 'write' : 'read'} end, capacity ${v.size}${v.data ? `, ${v.data.length} bytes buffered` : ''}`],
});
