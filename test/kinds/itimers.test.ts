/** ITIMERS: the armed interval timers of a task (setitimer, alarm; src/kinds/itimers). */
import { describe, expect, it } from 'vitest';
import type { Model } from '../../src/index.js';
import { itimers } from '../../src/kinds/itimers/format.js';
import { type Refusal, baseModel, diffOf, expectRefusal, jsonOf, roundTrip, showLines } from '../helpers/kinds.js';

const KIND = itimers.record.kind;

/** Task 100: ITIMER_REAL expired with its signal pending (remaining 0), ITIMER_PROF one-shot. */
function model(): Model {
  const m = baseModel();
  m.tasks[0]!.itimers = [
    { which: 0, intervalUs: 20_000n, valueUs: 0n },
    { which: 2, intervalUs: 0n, valueUs: 1_500_000n },
  ];
  return m;
}

describe('ITIMERS', () => {
  it('round-trips: model -> image -> model equal, image -> model -> image byte-identical; absent stays absent', async () => {
    const m = model();
    m.tasks[1]!.itimers = [{ which: 1, intervalUs: 0xffffffffffffffffn, valueUs: 1n }];
    const back = await roundTrip(m);
    expect(back.tasks[0]!.itimers).toEqual(m.tasks[0]!.itimers);
    expect(back.tasks[1]!.itimers).toEqual(m.tasks[1]!.itimers);
    delete m.tasks[1]!.itimers;
    expect((await roundTrip(m)).tasks[1]!.itimers).toBeUndefined();
  });

  const refusals: [string, Refusal][] = [
    [
      'a timer none of REAL, VIRTUAL, PROF',
      {
        model: (m) => {
          m.tasks[0]!.itimers![1]!.which = 3;
        },
        why: 'ITIMERS record: interval timer 3 is none of ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF',
      },
    ],
    [
      'timers out of order',
      {
        model: (m) => {
          m.tasks[0]!.itimers!.reverse();
        },
        why: 'ITIMERS record: interval timer 0 out of order',
      },
    ],
    [
      'the same timer twice',
      {
        model: (m) => {
          m.tasks[0]!.itimers![1]!.which = 0;
        },
        why: 'ITIMERS record: interval timer 0 out of order',
      },
    ],
    [
      'a disarmed timer',
      {
        model: (m) => {
          m.tasks[0]!.itimers![1]!.valueUs = 0n;
        },
        why: 'ITIMERS record: interval timer 2 recorded disarmed',
      },
    ],
    [
      'in the second task',
      {
        model: (m) => {
          m.tasks[1]!.itimers = [{ which: 1, intervalUs: 0n, valueUs: 0n }];
        },
        why: 'ITIMERS record: interval timer 1 recorded disarmed',
        nth: 1,
      },
    ],
  ];
  for (const [what, r] of refusals) it(`refuses ${what}`, () => expectRefusal(model, KIND, r));

  it('show: one line a timer; show --json: the timers as they are, null when not recorded', async () => {
    const lines = await showLines(model());
    expect(lines).toContain('  itimer REAL interval 20000 us remaining 0 us');
    expect(lines).toContain('  itimer PROF interval 0 us remaining 1500000 us');
    expect(lines.filter((l) => l.includes('itimer'))).toHaveLength(2);
    const doc = await jsonOf(model());
    expect(doc.tasks[0]!.itimers).toEqual(model().tasks[0]!.itimers);
    expect(doc.tasks[1]!.itimers).toBeNull();
  });

  it('diff: a changed timer and the record absent are reported as itimers', async () => {
    const b = model();
    b.tasks[0]!.itimers![0]!.valueUs = 5n;
    expect(await diffOf(model(), b)).toEqual([{ what: 'task 100 itimers', a: model().tasks[0]!.itimers, b: b.tasks[0]!.itimers }]);
    const c = model();
    delete c.tasks[0]!.itimers;
    expect(await diffOf(model(), c)).toEqual([{ what: 'task 100 itimers', a: model().tasks[0]!.itimers, b: null }]);
    expect(await diffOf(c, model())).toEqual([{ what: 'task 100 itimers', a: null, b: model().tasks[0]!.itimers }]);
  });
});
