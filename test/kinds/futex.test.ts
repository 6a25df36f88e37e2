/** FUTEX: a thread's clear_child_tid and robust futex list (src/kinds/futex). */
import { describe, expect, it } from 'vitest';
import type { Model } from '../../src/index.js';
import { futex } from '../../src/kinds/futex/format.js';
import { baseModel, bytesOf, diffOf, expectBadRecord, jsonOf, roundTrip, showLines, withPayload } from '../helpers/kinds.js';

const KIND = futex.record.kind;

/** Thread 100 of task 100 has its futex state recorded (a glibc thread: both set), thread 101 zeros; the threads of
 *  task 200 have none. */
function model(): Model {
  const m = baseModel();
  m.tasks[0]!.threads[0]!.futex = { clearChildTid: 0x7f00000002d0n, robustHead: 0x7f00000002e0n, robustLen: 24n };
  m.tasks[0]!.threads[1]!.futex = { clearChildTid: 0n, robustHead: 0n, robustLen: 0n };
  return m;
}

describe('FUTEX', () => {
  it('round-trips: model -> image -> model equal, image -> model -> image byte-identical; absent stays absent', async () => {
    const m = model();
    m.tasks[1]!.threads[1]!.futex = { clearChildTid: 0xffffffffffffffffn, robustHead: 1n, robustLen: 0xffffffffffffffffn };
    const back = await roundTrip(m);
    expect(back.tasks.map((t) => t.threads.map((th) => th.futex))).toEqual(m.tasks.map((t) => t.threads.map((th) => th.futex)));
    expect(back.tasks[1]!.threads[0]!.futex).toBeUndefined();
  });

  it('has no field to refuse; a record of another length than 24 bytes is refused', async () => {
    const bytes = await bytesOf(model());
    for (const [nth, len] of [
      [0, 32],
      [1, 16],
      [1, 0],
    ] as const) {
      const bad = withPayload(bytes, KIND, nth, (p) => {
        const q = new Uint8Array(len);
        q.set(p.subarray(0, len));
        return q;
      });
      expectBadRecord(bad, KIND, `FUTEX record length ${len} is invalid for its kind`, nth, bytes);
    }
  });

  it('show: one line under its thread; show --json: the values, null when not recorded', async () => {
    const lines = await showLines(model());
    expect(lines).toContain('    futex clear_child_tid 0x7f00000002d0 robust list 0x7f00000002e0 (24 bytes)');
    expect(lines).toContain('    futex clear_child_tid 0x0 robust list 0x0 (0 bytes)');
    const doc = await jsonOf(model());
    expect(doc.tasks[0]!.threads.map((th) => th.futex)).toEqual(model().tasks[0]!.threads.map((th) => th.futex));
    expect(doc.tasks[1]!.threads.map((th) => th.futex)).toEqual([null, null]);
  });

  it("diff: a change and the record absent are reported as the thread's futex", async () => {
    const b = model();
    b.tasks[0]!.threads[0]!.futex!.robustLen = 0n;
    expect(await diffOf(model(), b)).toEqual([
      { what: 'task 100 thread 100 futex', a: model().tasks[0]!.threads[0]!.futex, b: b.tasks[0]!.threads[0]!.futex },
    ]);
    const c = model();
    delete c.tasks[0]!.threads[1]!.futex;
    expect(await diffOf(model(), c)).toEqual([{ what: 'task 100 thread 101 futex', a: model().tasks[0]!.threads[1]!.futex, b: null }]);
  });
});
