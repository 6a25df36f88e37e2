/** An inotify instance and its watches: the INOTIFY record under FD. */
import { FdKind } from '../../model.js';
import { defineKind } from '../kind.js';
import { hex } from '../show.js';

/** A watch of an inotify instance: its wd, the mask it was added with, and the watched file's path. */
export interface InotifyWatch {
  wd: number;
  mask: number;
  path: string;
}

export const inotify = defineKind<'fd', InotifyWatch[]>({
  key: 'inotify',
  label: 'inotify',
  owner: 'fd',
  record: {
    kind: 0x0406,
    name: 'INOTIFY',
    parent: 0x0401,
    doc: 'Optional, on an FD of kind 2 (other): an inotify instance, with nothing queued (absent: another kind of file).',
    fields: [
      ['watches', 'u64[]', 'by ascending wd', ['wd', 'mask']],
      ['paths', 'str[]', 'the watched file of each watch, in the same order'],
    ],
  },
  encode: (v) => ({ watches: v.map((x) => ({ wd: BigInt(x.wd), mask: BigInt(x.mask) })), paths: v.map((x) => x.path) }),
  decode(f, file, bad) {
    const rows = f.watches as { wd: bigint; mask: bigint }[],
      paths = f.paths as string[];
    if (file.kind !== FdKind.OTHER) bad(`fd ${file.fd} is a regular file or directory`);
    if (rows.length !== paths.length)
      bad(`fd ${file.fd}: ${rows.length * 2} values and ${paths.length} paths are not (wd, mask) pairs with a path each`);
    const out: InotifyWatch[] = [];
    rows.forEach(({ wd, mask }, i) => {
      const path = paths[i]!;
      if (wd < 1n || wd > 0x7fffffffn || (out.length && Number(wd) <= out[out.length - 1]!.wd)) bad(`fd ${file.fd}: wd ${wd} out of order`);
      if (mask > 0xffffffffn || !path.startsWith('/')) bad(`fd ${file.fd}: watch ${wd} with mask ${mask} on '${path}'`);
      out.push({ wd: Number(wd), mask: Number(mask), path });
    });
    return out;
  },
  text: (v) => v.map((w) => `inotify wd ${w.wd} mask ${hex(w.mask)} ${w.path}`),
});
