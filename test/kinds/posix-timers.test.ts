/** POSIX_TIMERS: the POSIX timers of a process (timer_create; src/kinds/posix-timers). */
import { describe, expect, it } from 'vitest';
import type { Model } from '../../src/index.js';
import { type PosixTimer, SIGEV, posixTimers } from '../../src/kinds/posix-timers/format.js';
import { type Refusal, baseModel, diffOf, expectRefusal, jsonOf, roundTrip, showLines } from '../helpers/kinds.js';

const KIND = posixTimers.record.kind;
const timer = (id: number, x: Partial<PosixTimer> = {}): PosixTimer => ({
  id,
  clock: 1,
  notify: SIGEV.SIGNAL,
  notifyTid: 0,
  signo: 10,
  sigevValue: 0n,
  intervalNs: 0n,
  valueNs: 0n,
  ...x,
});

/** Task 100 (threads 100, 101): a periodic MONOTONIC timer, a disarmed one on the process CPU clock (glibc's -6)
 *  that signals nothing, a BOOTTIME timer aimed at thread 101 that expired with its signal pending. */
function model(): Model {
  const m = baseModel();
  m.tasks[0]!.posixTimers = [
    timer(0, { sigevValue: 0x5eedn, intervalNs: 10_000_000n, valueNs: 3_000_000n }),
    timer(2, { clock: -6, notify: SIGEV.NONE, signo: 0 }),
    timer(7, { clock: 7, notify: SIGEV.THREAD_ID, notifyTid: 101, signo: 12, sigevValue: 77n, intervalNs: 15_000_000n }),
  ];
  return m;
}
const set =
  (i: number, x: Partial<PosixTimer>) =>
  (m: Model): void => {
    Object.assign(m.tasks[0]!.posixTimers![i]!, x);
  };

describe('POSIX_TIMERS', () => {
  it('round-trips (every clock a timer may have, the largest id): model -> image -> model equal, image -> model -> image byte-identical', async () => {
    const m = model();
    m.tasks[1]!.posixTimers = [0, 1, 2, 7, 8, 9, 11, -6].map((clock, i) =>
      timer(i === 7 ? 0x7fffffff : i, { clock, sigevValue: 0xffffffffffffffffn }),
    );
    const back = await roundTrip(m);
    expect(back.tasks[0]!.posixTimers).toEqual(m.tasks[0]!.posixTimers);
    expect(back.tasks[1]!.posixTimers).toEqual(m.tasks[1]!.posixTimers);
    delete m.tasks[1]!.posixTimers;
    expect((await roundTrip(m)).tasks[1]!.posixTimers).toBeUndefined();
  });

  const refusals: [string, Refusal][] = [
    ['an id out of range', { model: set(2, { id: 0x80000000 }), why: 'POSIX_TIMERS record: POSIX timer id 2147483648 out of range' }],
    [
      'ids out of order',
      {
        model: (m) => {
          m.tasks[0]!.posixTimers!.reverse();
        },
        why: 'POSIX_TIMERS record: POSIX timer 2 out of order',
      },
    ],
    ['the same id twice', { model: set(1, { id: 0 }), why: 'POSIX_TIMERS record: POSIX timer 0 out of order' }],
    [
      'a clock no timer is restored on',
      { model: set(0, { clock: 3 }), why: 'POSIX_TIMERS record: POSIX timer 0: clock 3 is not one a timer can be restored on' },
    ],
    [
      'a thread CPU clock',
      { model: set(0, { clock: -2 }), why: 'POSIX_TIMERS record: POSIX timer 0: clock -2 is not one a timer can be restored on' },
    ],
    [
      'an unknown way to notify',
      {
        model: set(0, { notify: 2 }),
        why: 'POSIX_TIMERS record: POSIX timer 0: notify 2 is none of SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID',
      },
    ],
    [
      'a thread to notify without SIGEV_THREAD_ID',
      { model: set(0, { notifyTid: 5 }), why: 'POSIX_TIMERS record: POSIX timer 0: notify tid 5 with notify 0' },
    ],
    [
      'SIGEV_THREAD_ID without a thread',
      { model: set(2, { notifyTid: 0 }), why: 'POSIX_TIMERS record: POSIX timer 7: notify tid 0 with notify 4' },
    ],
    [
      'a thread id out of range',
      { model: set(2, { notifyTid: 0x80000000 }), why: 'POSIX_TIMERS record: POSIX timer 7: notify tid 2147483648 with notify 4' },
    ],
    ['a signal above 64', { model: set(0, { signo: 65 }), why: 'POSIX_TIMERS record: POSIX timer 0: signal 65' }],
    ['no signal to send', { model: set(0, { signo: 0 }), why: 'POSIX_TIMERS record: POSIX timer 0: signal 0' }],
    [
      "a thread to notify that is not the task's",
      {
        model: set(2, { notifyTid: 200 }),
        why: 'POSIX_TIMERS record: POSIX timer 7 notifies thread 200, which is not a thread of task 100',
      },
    ],
    [
      'in the second task',
      {
        model: (m) => {
          m.tasks[1]!.posixTimers = [timer(1, { notify: SIGEV.THREAD_ID, notifyTid: 101 })];
        },
        why: 'POSIX_TIMERS record: POSIX timer 1 notifies thread 101, which is not a thread of task 200',
        nth: 1,
      },
    ],
  ];
  for (const [what, r] of refusals) it(`refuses ${what}`, () => expectRefusal(model, KIND, r));

  it('show: one line a timer (its signal, thread and value, or no signal); show --json: the timers as they are', async () => {
    const lines = await showLines(model());
    expect(lines).toContain('  timer 0 clock 1 SIGUSR1 value 0x5eed interval 10000000 ns remaining 3000000 ns');
    expect(lines).toContain('  timer 2 clock -6 no signal interval 0 ns remaining 0 ns');
    expect(lines).toContain('  timer 7 clock 7 SIGUSR2 to thread 101 value 0x4d interval 15000000 ns remaining 0 ns');
    const doc = await jsonOf(model());
    expect(doc.tasks[0]!.posixTimers).toEqual(model().tasks[0]!.posixTimers);
    expect(doc.tasks[1]!.posixTimers).toBeNull();
  });

  it('diff: a changed timer and the record absent are reported as POSIX timers', async () => {
    const b = model();
    b.tasks[0]!.posixTimers![1]!.clock = 0;
    expect(await diffOf(model(), b)).toEqual([
      { what: 'task 100 POSIX timers', a: model().tasks[0]!.posixTimers, b: b.tasks[0]!.posixTimers },
    ]);
    const c = model();
    delete c.tasks[0]!.posixTimers;
    expect(await diffOf(model(), c)).toEqual([{ what: 'task 100 POSIX timers', a: model().tasks[0]!.posixTimers, b: null }]);
  });
});
