/** SIGACTS: the signal dispositions other than SIG_DFL of a task (src/kinds/sigacts). */
import { describe, expect, it } from 'vitest';
import type { Model } from '../../src/index.js';
import { sigacts } from '../../src/kinds/sigacts/format.js';
import { type Refusal, baseModel, diffOf, expectRefusal, jsonOf, roundTrip, showLines } from '../helpers/kinds.js';

const KIND = sigacts.record.kind;
const act = (sig: number, handler = 1n, extra: Partial<{ flags: bigint; restorer: bigint; mask: bigint }> = {}) => ({
  sig,
  handler,
  flags: 0n,
  restorer: 0n,
  mask: 0n,
  ...extra,
});

/** Task 100 handles SIGUSR1 and SIGRTMIN+1 and ignores SIGPIPE; task 200 has no record. */
function model(): Model {
  const m = baseModel();
  m.tasks[0]!.sigactions = [
    act(10, 0x401000n, { flags: 0x14000004n, restorer: 0x7f0000001000n, mask: 2n }),
    act(13),
    act(35, 0x402000n, { flags: 0x4000000n, restorer: 0x7f0000001000n }),
  ];
  return m;
}

describe('SIGACTS', () => {
  it('round-trips: model -> image -> model equal, image -> model -> image byte-identical; absent stays absent', async () => {
    const m = model();
    const back = await roundTrip(m);
    expect(back.tasks[0]!.sigactions).toEqual(m.tasks[0]!.sigactions);
    expect(back.tasks[1]!.sigactions).toBeUndefined();
    // recorded with nothing but SIG_DFL: an empty list, not "not recorded"
    m.tasks[1]!.sigactions = [];
    expect((await roundTrip(m)).tasks[1]!.sigactions).toEqual([]);
  });

  const refusals: [string, Refusal][] = [
    [
      'a signal below 1',
      {
        model: (m) => {
          m.tasks[0]!.sigactions = [act(0)];
        },
        why: 'SIGACTS record: signal 0 out of range 1..64',
      },
    ],
    [
      'a signal above 64',
      {
        model: (m) => {
          m.tasks[0]!.sigactions![2]!.sig = 65;
        },
        why: 'SIGACTS record: signal 65 out of range 1..64',
      },
    ],
    [
      'signals out of order',
      {
        model: (m) => {
          m.tasks[0]!.sigactions!.reverse();
        },
        why: 'SIGACTS record: signal 13 out of order',
      },
    ],
    [
      'the same signal twice',
      {
        model: (m) => {
          m.tasks[0]!.sigactions![1]!.sig = 10;
        },
        why: 'SIGACTS record: signal 10 out of order',
      },
    ],
    [
      'a SIG_DFL entry',
      {
        model: (m) => {
          m.tasks[0]!.sigactions![1]!.handler = 0n;
        },
        why: 'SIGACTS record: signal 13 recorded with SIG_DFL',
      },
    ],
    [
      'in the second task',
      {
        model: (m) => {
          m.tasks[1]!.sigactions = [act(15, 0n)];
        },
        why: 'SIGACTS record: signal 15 recorded with SIG_DFL',
        nth: 1,
      },
    ],
  ];
  for (const [what, r] of refusals) it(`refuses ${what}`, () => expectRefusal(model, KIND, r));

  it('show: ignored signals on one line, each handler on its own; show --json: each disposition with its name', async () => {
    const lines = await showLines(model());
    expect(lines).toContain('  signals ignored: SIGPIPE');
    expect(lines).toContain('  signal SIGUSR1 handler 0x401000 flags 0x14000004 restorer 0x7f0000001000 mask 0x2');
    expect(lines).toContain('  signal SIGRTMIN+1 handler 0x402000 flags 0x4000000 restorer 0x7f0000001000 mask 0x0');
    const doc = await jsonOf(model());
    expect(doc.tasks[0]!.sigactions).toEqual([
      { sig: 10, name: 'SIGUSR1', handler: 0x401000n, flags: 0x14000004n, restorer: 0x7f0000001000n, mask: 2n },
      { sig: 13, name: 'SIGPIPE', handler: 1n, flags: 0n, restorer: 0n, mask: 0n },
      { sig: 35, name: 'SIGRTMIN+1', handler: 0x402000n, flags: 0x4000000n, restorer: 0x7f0000001000n, mask: 0n },
    ]);
    expect(doc.tasks[1]!.sigactions).toBeNull();
  });

  it('diff: a changed handler, a disposition set on one side only, and the record absent', async () => {
    const b = model();
    b.tasks[0]!.sigactions![0]!.handler = 0x401080n;
    b.tasks[0]!.sigactions!.splice(1, 1);
    expect(await diffOf(model(), b)).toEqual([
      { what: 'task 100 sigaction SIGUSR1.handler', a: 0x401000n, b: 0x401080n },
      { what: 'task 100 sigaction SIGPIPE', a: 'set', b: 'SIG_DFL' },
    ]);
    const c = model();
    delete c.tasks[0]!.sigactions;
    expect(await diffOf(model(), c)).toEqual([{ what: 'task 100 sigactions', a: 'recorded', b: 'not recorded' }]);
    expect(await diffOf(model(), model())).toEqual([]);
  });
});
