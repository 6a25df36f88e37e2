/** FLOCKS: the file locks held through a descriptor (flock, POSIX, OFD; src/kinds/flocks). */
import { describe, expect, it } from 'vitest';
import type { Model } from '../../src/index.js';
import { type FileLock, LOCK_EOF, flocks } from '../../src/kinds/flocks/format.js';
import { type Refusal, baseModel, bytesOf, diffOf, expectRefusal, jsonOf, roundTrip, showLines } from '../helpers/kinds.js';

const KIND = flocks.record.kind;
const I64_MAX = 0x7fffffffffffffffn;
const lock = (kind: number, write: boolean, start: bigint, end: bigint): FileLock => ({ kind, write, start, end });

/** Task 100: POSIX and OFD locks on the regular file (fd 3), a flock on the directory (fd 4). */
function model(): Model {
  const m = baseModel();
  const f = m.tasks[0]!.files;
  f[1]!.locks = [lock(2, false, 10n, 29n), lock(2, true, 100n, LOCK_EOF), lock(3, true, 0n, 4095n)];
  f[2]!.locks = [lock(1, false, 0n, LOCK_EOF)];
  return m;
}
const setLocks =
  (fd: number, locks: FileLock[]) =>
  (m: Model): void => {
    m.tasks[0]!.files.find((f) => f.fd === fd)!.locks = locks;
  };

describe('FLOCKS', () => {
  it('round-trips: model -> image -> model equal, image -> model -> image byte-identical; none is not recorded', async () => {
    const m = model();
    m.tasks[1]!.files[1]!.locks = [lock(3, false, I64_MAX, I64_MAX), lock(2, true, 0n, I64_MAX)];
    const back = await roundTrip(m);
    expect(back.tasks.map((t) => t.files.map((f) => f.locks))).toEqual(m.tasks.map((t) => t.files.map((f) => f.locks)));
    // an empty list is no record: the same image as none, read back as not recorded
    m.tasks[1]!.files[1]!.locks = [];
    const bytes = await bytesOf(m);
    delete m.tasks[1]!.files[1]!.locks;
    expect(Buffer.compare(Buffer.from(bytes), Buffer.from(await bytesOf(m)))).toBe(0);
    expect((await roundTrip(m)).tasks[1]!.files[1]!.locks).toBeUndefined();
  });

  const refusals: [string, Refusal][] = [
    [
      'an empty lock list',
      {
        fields: (f) => {
          f.locks = [];
        },
        why: 'FLOCKS record: 0 values are not (kind, type, start, end) quadruples',
        nth: 1,
      },
    ],
    [
      'locks on a file that is neither regular nor a directory',
      { model: setLocks(0, [lock(1, true, 0n, LOCK_EOF)]), why: 'FLOCKS record: locks on fd 0, which is not a regular file or directory' },
    ],
    [
      'a lock kind 0',
      { model: setLocks(3, [lock(0, true, 0n, 1n)]), why: 'FLOCKS record: fd 3: lock kind 0 is none of flock, POSIX, OFD' },
    ],
    [
      'a lock kind 4',
      { model: setLocks(4, [lock(4, true, 0n, 1n)]), why: 'FLOCKS record: fd 4: lock kind 4 is none of flock, POSIX, OFD', nth: 1 },
    ],
    [
      'a lock type neither read nor write',
      {
        fields: (f) => {
          (f.locks as { type: bigint }[])[1]!.type = 2n;
        },
        why: 'FLOCKS record: fd 3: lock type 2 is neither read nor write',
      },
    ],
    ['a range ending before it starts', { model: setLocks(3, [lock(2, true, 5n, 4n)]), why: 'FLOCKS record: fd 3: lock range 5..4' }],
    [
      'a start past 2^63-1',
      { model: setLocks(3, [lock(3, false, I64_MAX + 1n, LOCK_EOF)]), why: `FLOCKS record: fd 3: lock range ${I64_MAX + 1n}..${LOCK_EOF}` },
    ],
    [
      'an end past 2^63-1 that is not EOF',
      { model: setLocks(3, [lock(2, false, 0n, LOCK_EOF - 1n)]), why: `FLOCKS record: fd 3: lock range 0..${LOCK_EOF - 1n}` },
    ],
    [
      'a flock lock on part of a file',
      { model: setLocks(4, [lock(1, true, 0n, 100n)]), why: 'FLOCKS record: fd 4: a flock lock covers the whole file', nth: 1 },
    ],
  ];
  for (const [what, r] of refusals) it(`refuses ${what}`, () => expectRefusal(model, KIND, r));

  it('show: one line a lock under its fd; show --json: the locks on the fds that have them', async () => {
    const lines = await showLines(model());
    for (const l of ['lock POSIX read 10..29', 'lock POSIX write 100..EOF', 'lock OFD write 0..4095', 'lock flock read 0..EOF']) {
      expect(lines).toContain(`         ${l}`);
    }
    const doc = await jsonOf(model());
    expect(doc.tasks[0]!.files.map((f) => f.locks)).toEqual(model().tasks[0]!.files.map((f) => f.locks));
    expect(doc.tasks[1]!.files.every((f) => !('locks' in f))).toBe(true);
  });

  it("diff: a change and the locks gone are reported as the fd's locks", async () => {
    const b = model();
    b.tasks[0]!.files[1]!.locks![0]!.write = true;
    const locks = model().tasks[0]!.files;
    expect(await diffOf(model(), b)).toEqual([{ what: 'task 100 fd 3 locks', a: locks[1]!.locks, b: b.tasks[0]!.files[1]!.locks }]);
    const c = model();
    delete c.tasks[0]!.files[2]!.locks;
    expect(await diffOf(model(), c)).toEqual([{ what: 'task 100 fd 4 locks', a: locks[2]!.locks, b: null }]);
  });
});
