/** UNIX_PAIR: a socket of a UNIX socket pair the task holds both sockets of (src/kinds/unix-pair). */
import { describe, expect, it } from 'vitest';
import { FdKind, type Model, type OpenFile } from '../../src/index.js';
import { type UnixPairEnd, unixPair } from '../../src/kinds/unix-pair/format.js';
import { type Refusal, baseModel, diffOf, expectRefusal, jsonOf, roundTrip, showLines } from '../helpers/kinds.js';

const KIND = unixPair.record.kind;
const te = new TextEncoder();

const sockFile = (fd: number, pair: bigint, second: boolean, type: number, data?: string): OpenFile => ({
  fd,
  kind: FdKind.OTHER,
  path: `socket:[${900 + fd}]`,
  flags: 2,
  pos: 0n,
  mode: 0o140777,
  cloexec: false,
  devMajor: 0,
  devMinor: 8,
  inode: 900n + BigInt(fd),
  size: 0n,
  unixPair: { pair, second, type, ...(data !== undefined ? { data: te.encode(data) } : {}) },
});

/** Task 100: stream pair 920, bytes queued to each socket, its first socket also on fd 22; datagram pair 930. */
function model(): Model {
  const m = baseModel();
  m.tasks[0]!.files.push(
    sockFile(20, 920n, false, 1, 'to-a'),
    sockFile(21, 920n, true, 1, 'to-b'),
    sockFile(22, 920n, false, 1),
    sockFile(23, 930n, false, 2),
    sockFile(24, 930n, true, 2),
  );
  return m;
}
const set =
  (fd: number, x: Partial<UnixPairEnd>) =>
  (m: Model): void => {
    const f = m.tasks[0]!.files.find((y) => y.fd === fd)!;
    f.unixPair = { ...f.unixPair!, ...x };
  };

describe('UNIX_PAIR', () => {
  it('round-trips: model -> image -> model equal, image -> model -> image byte-identical', async () => {
    const m = model();
    m.tasks[1]!.files.push(sockFile(30, 0xffffffffffffffffn, true, 5), sockFile(31, 0xffffffffffffffffn, false, 5));
    const back = await roundTrip(m);
    expect(back.tasks.map((t) => t.files.map((f) => f.unixPair))).toEqual(m.tasks.map((t) => t.files.map((f) => f.unixPair)));
    expect(back.tasks[0]!.files[5]!.unixPair!.data).toBeUndefined();
  });

  const refusals: [string, Refusal][] = [
    [
      'a socket on a directory',
      {
        model: (m) => {
          m.tasks[0]!.files[2]!.unixPair = { pair: 1n, second: false, type: 1 };
        },
        why: 'UNIX_PAIR record: fd 4 is a regular file or directory',
      },
    ],
    [
      'a socket that is neither the first nor the second',
      {
        fields: (f) => {
          f.second = 2;
        },
        why: 'UNIX_PAIR record: fd 24: socket 2 of a pair',
        nth: 4,
      },
    ],
    [
      'an unknown socket type',
      { model: set(23, { type: 3 }), why: 'UNIX_PAIR record: fd 23: socket type 3 is none of stream, datagram, seqpacket', nth: 3 },
    ],
    [
      'bytes queued to a datagram socket',
      { model: set(23, { data: te.encode('d') }), why: 'UNIX_PAIR record: fd 23: bytes queued to a socket of type 2', nth: 3 },
    ],
    [
      "bytes queued on an fd that is not the socket's first",
      {
        model: set(22, { data: te.encode('again') }),
        why: 'UNIX_PAIR record: fd 22 carries bytes queued to a socket whose first fd is 20',
        nth: 2,
      },
    ],
    [
      'a socket whose other socket the task does not have',
      {
        model: set(24, { pair: 931n }),
        why: 'UNIX_PAIR record: fd 23 is a socket of pair 930, whose other socket the task does not have',
        nth: 3,
      },
    ],
    [
      'the sockets of a pair of two types',
      { model: set(24, { type: 5 }), why: 'UNIX_PAIR record: fd 23: the sockets of pair 930 differ in type', nth: 3 },
    ],
  ];
  for (const [what, r] of refusals) it(`refuses ${what}`, () => expectRefusal(model, KIND, r));

  it('show: the pair, socket, type and bytes queued under the fd; show --json: the same, the bytes counted', async () => {
    const lines = await showLines(model());
    expect(lines).toContain('         socket pair 920 (first), type 1, 4 bytes queued');
    expect(lines).toContain('         socket pair 920 (second), type 1, 4 bytes queued');
    expect(lines).toContain('         socket pair 930 (second), type 2');
    const doc = await jsonOf(model());
    expect(doc.tasks[0]!.files.slice(3).map((f) => f.unixPair)).toEqual([
      { pair: 920n, second: false, type: 1, bytes: 4 },
      { pair: 920n, second: true, type: 1, bytes: 4 },
      { pair: 920n, second: false, type: 1, bytes: 0 },
      { pair: 930n, second: false, type: 2, bytes: 0 },
      { pair: 930n, second: true, type: 2, bytes: 0 },
    ]);
  });

  it("diff: other bytes queued (same count), and the socket gone, are reported as the fd's unixPair", async () => {
    const b = model();
    b.tasks[0]!.files[4]!.unixPair!.data = te.encode('TO-B');
    const a = model().tasks[0]!.files;
    expect(await diffOf(model(), b)).toEqual([{ what: 'task 100 fd 21 unixPair', a: a[4]!.unixPair, b: b.tasks[0]!.files[4]!.unixPair }]);
    const c = model();
    delete c.tasks[0]!.files[5]!.unixPair;
    expect(await diffOf(model(), c)).toEqual([{ what: 'task 100 fd 22 unixPair', a: a[5]!.unixPair, b: null }]);
  });
});
