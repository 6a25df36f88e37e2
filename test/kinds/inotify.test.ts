/** INOTIFY: an inotify instance with nothing queued, and its watches (src/kinds/inotify). */
import { describe, expect, it } from 'vitest';
import { FdKind, type Model, type OpenFile } from '../../src/index.js';
import { type InotifyWatch, inotify } from '../../src/kinds/inotify/format.js';
import { type Refusal, baseModel, diffOf, expectRefusal, jsonOf, roundTrip, showLines } from '../helpers/kinds.js';

const KIND = inotify.record.kind;

const inoFile = (fd: number, watches: InotifyWatch[]): OpenFile => ({
  fd,
  kind: FdKind.OTHER,
  path: 'anon_inode:inotify',
  flags: 0,
  pos: 0n,
  mode: 0o600,
  cloexec: false,
  devMajor: 0,
  devMinor: 15,
  inode: 7n,
  size: 0n,
  inotify: watches,
});

/** Task 100: an instance with two watches (wd 2 was removed) on fd 30, one without watches on fd 31. */
function model(): Model {
  const m = baseModel();
  m.tasks[0]!.files.push(
    inoFile(30, [
      { wd: 1, mask: 2, path: '/tmp/a' },
      { wd: 3, mask: 0x80000100, path: '/tmp' },
    ]),
    inoFile(31, []),
  );
  return m;
}
const setWatches =
  (fd: number, watches: InotifyWatch[]) =>
  (m: Model): void => {
    m.tasks[0]!.files.find((f) => f.fd === fd)!.inotify = watches;
  };

describe('INOTIFY', () => {
  it('round-trips: model -> image -> model equal, image -> model -> image byte-identical', async () => {
    const m = model();
    m.tasks[1]!.files.push(
      inoFile(9, [
        { wd: 0x7ffffffe, mask: 0, path: '/' },
        { wd: 0x7fffffff, mask: 0xffffffff, path: '/ünï côdé' },
      ]),
    );
    const back = await roundTrip(m);
    expect(back.tasks.map((t) => t.files.map((f) => f.inotify))).toEqual(m.tasks.map((t) => t.files.map((f) => f.inotify)));
  });

  const refusals: [string, Refusal][] = [
    [
      'watches on a regular file',
      {
        model: (m) => {
          m.tasks[0]!.files[1]!.inotify = [];
        },
        why: 'INOTIFY record: fd 3 is a regular file or directory',
      },
    ],
    [
      'more watches than paths',
      {
        fields: (f) => {
          (f.paths as string[]).pop();
        },
        why: 'INOTIFY record: fd 30: 4 values and 1 paths are not (wd, mask) pairs with a path each',
      },
    ],
    ['a wd of 0', { model: setWatches(31, [{ wd: 0, mask: 2, path: '/a' }]), why: 'INOTIFY record: fd 31: wd 0 out of order', nth: 1 }],
    [
      'a wd past 2^31-1',
      {
        fields: (f) => {
          (f.watches as { wd: bigint }[])[1]!.wd = 0x80000000n;
        },
        why: 'INOTIFY record: fd 30: wd 2147483648 out of order',
      },
    ],
    [
      'wds out of order',
      {
        model: (m) => {
          m.tasks[0]!.files[3]!.inotify!.reverse();
        },
        why: 'INOTIFY record: fd 30: wd 1 out of order',
      },
    ],
    [
      'the same wd twice',
      {
        model: (m) => {
          m.tasks[0]!.files[3]!.inotify![1]!.wd = 1;
        },
        why: 'INOTIFY record: fd 30: wd 1 out of order',
      },
    ],
    [
      'a mask past 32 bits',
      {
        fields: (f) => {
          (f.watches as { mask: bigint }[])[0]!.mask = 0x100000000n;
        },
        why: "INOTIFY record: fd 30: watch 1 with mask 4294967296 on '/tmp/a'",
      },
    ],
    [
      'a relative path',
      { model: setWatches(31, [{ wd: 1, mask: 2, path: 'rel' }]), why: "INOTIFY record: fd 31: watch 1 with mask 2 on 'rel'", nth: 1 },
    ],
  ];
  for (const [what, r] of refusals) it(`refuses ${what}`, () => expectRefusal(model, KIND, r));

  it('show: one line a watch under the fd; show --json: the watches', async () => {
    const lines = await showLines(model());
    expect(lines).toContain('         inotify wd 1 mask 0x2 /tmp/a');
    expect(lines).toContain('         inotify wd 3 mask 0x80000100 /tmp');
    const doc = await jsonOf(model());
    expect(doc.tasks[0]!.files.slice(3).map((f) => f.inotify)).toEqual([model().tasks[0]!.files[3]!.inotify, []]);
  });

  it("diff: a changed watch and the instance's record gone are reported as the fd's inotify", async () => {
    const b = model();
    b.tasks[0]!.files[3]!.inotify![1]!.path = '/var';
    const a = model().tasks[0]!.files;
    expect(await diffOf(model(), b)).toEqual([{ what: 'task 100 fd 30 inotify', a: a[3]!.inotify, b: b.tasks[0]!.files[3]!.inotify }]);
    const c = model();
    delete c.tasks[0]!.files[4]!.inotify;
    expect(await diffOf(model(), c)).toEqual([{ what: 'task 100 fd 31 inotify', a: [], b: null }]);
  });
});
