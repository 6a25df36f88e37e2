/** ANON_FD: the state of an eventfd, timerfd, signalfd or epoll instance (src/kinds/anon-fd). */
import { describe, expect, it } from 'vitest';
import { FdKind, type Model, type OpenFile } from '../../src/index.js';
import { ANON_KIND, anonFd } from '../../src/kinds/anon-fd/format.js';
import { type Refusal, baseModel, diffOf, expectRefusal, jsonOf, roundTrip, showLines } from '../helpers/kinds.js';

const KIND = anonFd.record.kind;
const { EVENTFD, TIMERFD, SIGNALFD, EPOLL } = ANON_KIND;

const anonFile = (fd: number, what: string, kind: number, values: bigint[]): OpenFile => ({
  fd,
  kind: FdKind.OTHER,
  path: `anon_inode:[${what}]`,
  flags: 0o4002,
  pos: 0n,
  mode: 0o600,
  cloexec: fd === 13,
  devMajor: 0,
  devMinor: 15,
  inode: 1000n + BigInt(fd),
  size: 0n,
  anon: { kind, values },
});

/** Task 100: an eventfd in semaphore mode (fd 10), a periodic MONOTONIC timerfd with 2 ticks unread (11), a signalfd
 *  for SIGUSR1 (12), and an epoll (13) watching the timerfd and the signalfd. */
function model(): Model {
  const m = baseModel();
  m.tasks[0]!.files.push(
    anonFile(10, 'eventfd', EVENTFD, [5n, 1n]),
    anonFile(11, 'timerfd', TIMERFD, [1n, 0n, 10_000_000n, 3_000_000n, 2n]),
    anonFile(12, 'signalfd', SIGNALFD, [1n << 9n]),
    anonFile(13, 'eventpoll', EPOLL, [11n, 0x19n, 111n, 12n, 0x80000019n, 222n]),
  );
  return m;
}
/** The anon state of fd `fd` of task 100 set to kind, values. */
const set =
  (fd: number, kind: number, values: bigint[]) =>
  (m: Model): void => {
    m.tasks[0]!.files.find((f) => f.fd === fd)!.anon = { kind, values };
  };

describe('ANON_FD', () => {
  it('round-trips: model -> image -> model equal, image -> model -> image byte-identical', async () => {
    const m = model();
    // the largest values each field may have; an epoll watching nothing
    m.tasks[1]!.files.push(
      anonFile(20, 'eventfd', EVENTFD, [0xfffffffffffffffen, 0n]),
      anonFile(21, 'timerfd', TIMERFD, [9n, 3n, 0xffffffffffffffffn, 0n, 0xffffffffffffffffn]),
      anonFile(22, 'eventpoll', EPOLL, []),
      anonFile(23, 'eventpoll', EPOLL, [20n, 0xffffffffn, 0xffffffffffffffffn, 0n, 0n, 0n]),
    );
    const back = await roundTrip(m);
    expect(back.tasks.map((t) => t.files.map((f) => f.anon))).toEqual(m.tasks.map((t) => t.files.map((f) => f.anon)));
    expect(back.tasks[0]!.files[0]!.anon).toBeUndefined();
  });

  const refusals: [string, Refusal][] = [
    [
      'a reserved field not zero',
      {
        fields: (f) => {
          f.reserved = 7;
        },
        why: 'ANON_FD record: reserved field not zero',
        nth: 2,
      },
    ],
    ['the state on a regular file', { model: set(3, EVENTFD, [1n, 0n]), why: 'ANON_FD record: fd 3 is a regular file or directory' }],
    [
      'an epoll list that is not triples',
      { model: set(13, EPOLL, [11n, 1n]), why: 'ANON_FD record: fd 13: 2 values are not (fd, events, data) triples', nth: 3 },
    ],
    [
      'an epoll watching an fd out of range',
      { model: set(13, EPOLL, [0x80000000n, 1n, 0n]), why: 'ANON_FD record: fd 13: watch of fd 2147483648 with events 1', nth: 3 },
    ],
    [
      'an epoll watching with events out of range',
      { model: set(13, EPOLL, [11n, 0x100000000n, 0n]), why: 'ANON_FD record: fd 13: watch of fd 11 with events 4294967296', nth: 3 },
    ],
    [
      'an anonymous file of kind 0',
      { model: set(10, 0, [1n, 0n]), why: 'ANON_FD record: fd 10: anonymous file kind 0 is none of eventfd, timerfd, signalfd, epoll' },
    ],
    [
      'an anonymous file of kind 9',
      { model: set(12, 9, [1n]), why: 'ANON_FD record: fd 12: anonymous file kind 9 is none of eventfd, timerfd, signalfd, epoll', nth: 2 },
    ],
    ['an eventfd of one value', { model: set(10, EVENTFD, [5n]), why: 'ANON_FD record: fd 10: 1 values for a kind 1 file, expected 2' }],
    [
      'a timerfd of four values',
      { model: set(11, TIMERFD, [1n, 0n, 0n, 0n]), why: 'ANON_FD record: fd 11: 4 values for a kind 2 file, expected 5', nth: 1 },
    ],
    [
      'a signalfd of two values',
      { model: set(12, SIGNALFD, [1n, 2n]), why: 'ANON_FD record: fd 12: 2 values for a kind 3 file, expected 1', nth: 2 },
    ],
    [
      'an eventfd count of 2^64-1',
      {
        model: set(10, EVENTFD, [0xffffffffffffffffn, 0n]),
        why: `ANON_FD record: fd 10: eventfd count ${0xffffffffffffffffn} / semaphore 0`,
      },
    ],
    ['an eventfd semaphore flag of 2', { model: set(10, EVENTFD, [5n, 2n]), why: 'ANON_FD record: fd 10: eventfd count 5 / semaphore 2' }],
    [
      'a timerfd on a clock it cannot have',
      { model: set(11, TIMERFD, [3n, 0n, 0n, 0n, 0n]), why: 'ANON_FD record: fd 11: timerfd clock 3 / flags 0', nth: 1 },
    ],
    [
      'a timerfd with unknown settime flags',
      { model: set(11, TIMERFD, [0n, 4n, 0n, 0n, 0n]), why: 'ANON_FD record: fd 11: timerfd clock 0 / flags 4', nth: 1 },
    ],
    [
      'an epoll watching an fd the task does not have',
      {
        model: set(13, EPOLL, [11n, 1n, 0n, 99n, 1n, 0n]),
        why: 'ANON_FD record: epoll fd 13 watches fd 99, which the task does not have',
        nth: 3,
      },
    ],
    [
      'an epoll watching an epoll',
      { model: set(13, EPOLL, [13n, 1n, 0n]), why: 'ANON_FD record: epoll fd 13 watches another epoll (fd 13)', nth: 3 },
    ],
  ];
  for (const [what, r] of refusals) it(`refuses ${what}`, () => expectRefusal(model, KIND, r));

  it('show: the kind and its values under the fd; show --json: the kind by name and the values', async () => {
    const lines = await showLines(model());
    for (const l of ['eventfd 5 1', 'timerfd 1 0 10000000 3000000 2', 'signalfd 512', 'epoll 11 25 111 12 2147483673 222'])
      expect(lines).toContain(`         ${l}`);
    const doc = await jsonOf(model());
    expect(doc.tasks[0]!.files.map((f) => f.anon)).toEqual([
      undefined,
      undefined,
      undefined,
      { kind: 'eventfd', values: [5n, 1n] },
      { kind: 'timerfd', values: [1n, 0n, 10_000_000n, 3_000_000n, 2n] },
      { kind: 'signalfd', values: [512n] },
      { kind: 'epoll', values: [11n, 0x19n, 111n, 12n, 0x80000019n, 222n] },
    ]);
  });

  it("diff: a change and the state gone are reported as the fd's anon", async () => {
    const b = model();
    b.tasks[0]!.files[4]!.anon!.values[4] = 0n;
    const a = model().tasks[0]!.files;
    expect(await diffOf(model(), b)).toEqual([{ what: 'task 100 fd 11 anon', a: a[4]!.anon, b: b.tasks[0]!.files[4]!.anon }]);
    const c = model();
    delete c.tasks[0]!.files[3]!.anon;
    expect(await diffOf(model(), c)).toEqual([{ what: 'task 100 fd 10 anon', a: a[3]!.anon, b: null }]);
  });
});
