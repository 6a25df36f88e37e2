/** TCP_LISTEN: a listening TCP socket with no connection waiting (src/kinds/tcp-listen). */
import { describe, expect, it } from 'vitest';
import { FdKind, type Model, type OpenFile } from '../../src/index.js';
import { type TcpListen, tcpListen } from '../../src/kinds/tcp-listen/format.js';
import { type Refusal, baseModel, diffOf, expectRefusal, jsonOf, roundTrip, showLines } from '../helpers/kinds.js';

const KIND = tcpListen.record.kind;
const LOOPBACK6 = Uint8Array.from({ length: 16 }, (_, i) => (i === 15 ? 1 : 0));

const lstFile = (fd: number, l: TcpListen): OpenFile => ({
  fd,
  kind: FdKind.OTHER,
  path: `socket:[${70 + fd}]`,
  flags: 2,
  pos: 0n,
  mode: 0o140777,
  cloexec: true,
  devMajor: 0,
  devMinor: 8,
  inode: 70n + BigInt(fd),
  size: 0n,
  tcpListen: l,
});

/** Task 100: 127.0.0.1:46709 with SO_REUSEADDR (fd 31), [::1]:8080 with SO_REUSEADDR and IPV6_V6ONLY (fd 32). */
function model(): Model {
  const m = baseModel();
  m.tasks[0]!.files.push(
    lstFile(31, { family: 2, addr: new Uint8Array([127, 0, 0, 1]), port: 46709, backlog: 7, opts: 1 }),
    lstFile(32, { family: 10, addr: LOOPBACK6.slice(), port: 8080, backlog: 128, opts: 5 }),
  );
  return m;
}
const set =
  (fd: number, x: Partial<TcpListen>) =>
  (m: Model): void => {
    const f = m.tasks[0]!.files.find((y) => y.fd === fd)!;
    f.tcpListen = { ...f.tcpListen!, ...x };
  };

describe('TCP_LISTEN', () => {
  it('round-trips: model -> image -> model equal, image -> model -> image byte-identical', async () => {
    const m = model();
    m.tasks[1]!.files.push(
      lstFile(9, { family: 2, addr: new Uint8Array(4), port: 65535, backlog: 0xffffffff, opts: 7 }),
      lstFile(10, { family: 10, addr: new Uint8Array(16).fill(0xff), port: 1, backlog: 0, opts: 0 }),
    );
    const back = await roundTrip(m);
    expect(back.tasks.map((t) => t.files.map((f) => f.tcpListen))).toEqual(m.tasks.map((t) => t.files.map((f) => f.tcpListen)));
  });

  const refusals: [string, Refusal][] = [
    [
      'a listener on a regular file',
      {
        model: (m) => {
          m.tasks[0]!.files[1]!.tcpListen = model().tasks[0]!.files[3]!.tcpListen;
        },
        why: 'TCP_LISTEN record: fd 3 is a regular file or directory',
      },
    ],
    [
      'an AF_INET socket with an IPv6 address',
      { model: set(32, { family: 2 }), why: 'TCP_LISTEN record: fd 32: family 2 with a 16-byte address', nth: 1 },
    ],
    [
      'an AF_INET6 socket with an IPv4 address',
      { model: set(31, { family: 10 }), why: 'TCP_LISTEN record: fd 31: family 10 with a 4-byte address' },
    ],
    ['another family', { model: set(31, { family: 1 }), why: 'TCP_LISTEN record: fd 31: family 1 with a 4-byte address' }],
    ['port 0', { model: set(31, { port: 0 }), why: 'TCP_LISTEN record: fd 31: port 0, options 1' }],
    ['a port past 65535', { model: set(32, { port: 65536 }), why: 'TCP_LISTEN record: fd 32: port 65536, options 5', nth: 1 }],
    ['unknown options', { model: set(31, { opts: 8 }), why: 'TCP_LISTEN record: fd 31: port 46709, options 8' }],
  ];
  for (const [what, r] of refusals) it(`refuses ${what}`, () => expectRefusal(model, KIND, r));

  it('show: the address, port and backlog under the fd; show --json: the address as text', async () => {
    const lines = await showLines(model());
    expect(lines).toContain('         listening on 127.0.0.1:46709 backlog 7');
    expect(lines).toContain('         listening on [00000000000000000000000000000001]:8080 backlog 128');
    const doc = await jsonOf(model());
    expect(doc.tasks[0]!.files.slice(3).map((f) => f.tcpListen)).toEqual([
      { family: 2, addr: '127.0.0.1', port: 46709, backlog: 7, opts: 1 },
      { family: 10, addr: '[00000000000000000000000000000001]', port: 8080, backlog: 128, opts: 5 },
    ]);
  });

  it("diff: another address and the listener gone are reported as the fd's tcpListen", async () => {
    const b = model();
    b.tasks[0]!.files[3]!.tcpListen!.addr = new Uint8Array([0, 0, 0, 0]);
    const a = model().tasks[0]!.files;
    expect(await diffOf(model(), b)).toEqual([
      { what: 'task 100 fd 31 tcpListen', a: a[3]!.tcpListen, b: b.tasks[0]!.files[3]!.tcpListen },
    ]);
    const c = model();
    delete c.tasks[0]!.files[4]!.tcpListen;
    expect(await diffOf(model(), c)).toEqual([{ what: 'task 100 fd 32 tcpListen', a: a[4]!.tcpListen, b: null }]);
  });
});
