/** PIPE: one end of a pipe the task holds, and on the pipe's lowest fd the bytes buffered in it (src/kinds/pipe). */
import { describe, expect, it } from 'vitest';
import { FdKind, type Model, type OpenFile } from '../../src/index.js';
import { type PipeEnd, pipe } from '../../src/kinds/pipe/format.js';
import { type Refusal, baseModel, diffOf, expectRefusal, jsonOf, roundTrip, showLines } from '../helpers/kinds.js';

const KIND = pipe.record.kind;
const te = new TextEncoder();

const pipeFile = (fd: number, ino: bigint, write: boolean, size: number, data?: string): OpenFile => ({
  fd,
  kind: FdKind.OTHER,
  path: `pipe:[${ino}]`,
  flags: write ? 1 : 0o4000,
  pos: 0n,
  mode: 0o10600,
  cloexec: false,
  devMajor: 0,
  devMinor: 14,
  inode: ino,
  size: 0n,
  pipe: { ino, write, size, ...(data !== undefined ? { data: te.encode(data) } : {}) },
});

/** Task 100: pipe 4242 (128 KiB) with 10 bytes buffered, its read end on fds 20 and 22, its write end on 21; pipe
 *  4243 (one page, empty) of which only the write end is left (fd 23). */
function model(): Model {
  const m = baseModel();
  m.tasks[0]!.files.push(
    pipeFile(20, 4242n, false, 131072, 'hello-pipe'),
    pipeFile(21, 4242n, true, 131072),
    pipeFile(22, 4242n, false, 131072),
    pipeFile(23, 4243n, true, 4096),
  );
  return m;
}
const set =
  (fd: number, x: Partial<PipeEnd>) =>
  (m: Model): void => {
    const f = m.tasks[0]!.files.find((y) => y.fd === fd)!;
    f.pipe = { ...f.pipe!, ...x };
  };

describe('PIPE', () => {
  it('round-trips: model -> image -> model equal, image -> model -> image byte-identical', async () => {
    const m = model();
    // a full pipe of the largest capacity a u32 holds that is a power of two
    m.tasks[1]!.files.push(pipeFile(9, 0xffffffffffffffffn, true, 0x80000000, 'x'.repeat(4096)));
    const back = await roundTrip(m);
    expect(back.tasks.map((t) => t.files.map((f) => f.pipe))).toEqual(m.tasks.map((t) => t.files.map((f) => f.pipe)));
    expect(back.tasks[0]!.files[4]!.pipe!.data).toBeUndefined();
  });

  const refusals: [string, Refusal][] = [
    [
      'a pipe end on a regular file',
      {
        model: (m) => {
          m.tasks[0]!.files[1]!.pipe = { ino: 1n, write: false, size: 4096 };
        },
        why: 'PIPE record: fd 3 is a regular file or directory',
      },
    ],
    [
      'an end that is neither read nor write',
      {
        fields: (f) => {
          f.end = 2;
        },
        why: 'PIPE record: fd 21: pipe end 2',
        nth: 1,
      },
    ],
    ['a capacity under a page', { model: set(23, { size: 2048 }), why: 'PIPE record: fd 23: pipe capacity 2048', nth: 3 }],
    ['a capacity that is not a power of two', { model: set(20, { size: 5000 }), why: 'PIPE record: fd 20: pipe capacity 5000' }],
    [
      'more bytes buffered than the pipe holds',
      { model: set(23, { data: new Uint8Array(4097) }), why: 'PIPE record: fd 23: 4097 bytes buffered in a pipe of 4096', nth: 3 },
    ],
    [
      "bytes on an fd that is not the pipe's lowest",
      {
        model: set(22, { data: new Uint8Array([1]) }),
        why: 'PIPE record: fd 22 carries bytes of pipe 4242, whose lowest fd is 20',
        nth: 2,
      },
    ],
    [
      'two capacities for one pipe',
      { model: set(21, { size: 65536 }), why: 'PIPE record: fd 21 gives pipe 4242 capacity 65536, fd 20 131072', nth: 1 },
    ],
  ];
  for (const [what, r] of refusals) it(`refuses ${what}`, () => expectRefusal(model, KIND, r));

  it('show: the end, capacity and bytes buffered under the fd; show --json: the same, the bytes counted', async () => {
    const lines = await showLines(model());
    expect(lines).toContain('         pipe 4242 read end, capacity 131072, 10 bytes buffered');
    expect(lines).toContain('         pipe 4242 write end, capacity 131072');
    expect(lines).toContain('         pipe 4243 write end, capacity 4096');
    const doc = await jsonOf(model());
    expect(doc.tasks[0]!.files.slice(3).map((f) => f.pipe)).toEqual([
      { ino: 4242n, write: false, size: 131072, bytes: 10 },
      { ino: 4242n, write: true, size: 131072, bytes: 0 },
      { ino: 4242n, write: false, size: 131072, bytes: 0 },
      { ino: 4243n, write: true, size: 4096, bytes: 0 },
    ]);
  });

  it("diff: other bytes buffered (same count), and the end gone, are reported as the fd's pipe", async () => {
    const b = model();
    b.tasks[0]!.files[3]!.pipe!.data = te.encode('HELLO-PIPE');
    const a = model().tasks[0]!.files;
    expect(await diffOf(model(), b)).toEqual([{ what: 'task 100 fd 20 pipe', a: a[3]!.pipe, b: b.tasks[0]!.files[3]!.pipe }]);
    const c = model();
    delete c.tasks[0]!.files[6]!.pipe;
    expect(await diffOf(model(), c)).toEqual([{ what: 'task 100 fd 23 pipe', a: a[6]!.pipe, b: null }]);
  });
});
