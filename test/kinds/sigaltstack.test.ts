/** SIGALTSTACK: a thread's alternate signal stack (sigaltstack; src/kinds/sigaltstack). */
import { describe, expect, it } from 'vitest';
import type { Model } from '../../src/index.js';
import { sigaltstack } from '../../src/kinds/sigaltstack/format.js';
import { baseModel, bytesOf, diffOf, expectBadRecord, expectRefusal, jsonOf, roundTrip, showLines, withPayload } from '../helpers/kinds.js';

const KIND = sigaltstack.record.kind;

/** Thread 100: a 64 KiB stack with SS_AUTODISARM; thread 101: disabled. Task 200's threads: not recorded. */
function model(): Model {
  const m = baseModel();
  m.tasks[0]!.threads[0]!.sigaltstack = { sp: 0x7f0000100000n, size: 65536n, flags: 0x80000000 };
  m.tasks[0]!.threads[1]!.sigaltstack = { sp: 0n, size: 0n, flags: 2 };
  return m;
}

describe('SIGALTSTACK', () => {
  it('round-trips: model -> image -> model equal, image -> model -> image byte-identical; absent stays absent', async () => {
    const m = model();
    m.tasks[1]!.threads[0]!.sigaltstack = { sp: 0xffffffffffffffffn, size: 0xffffffffffffffffn, flags: 0xffffffff };
    const back = await roundTrip(m);
    expect(back.tasks.map((t) => t.threads.map((th) => th.sigaltstack))).toEqual(m.tasks.map((t) => t.threads.map((th) => th.sigaltstack)));
    expect(back.tasks[1]!.threads[1]!.sigaltstack).toBeUndefined();
  });

  it('refuses a reserved field not zero', () =>
    expectRefusal(model, KIND, {
      fields: (f) => {
        f.reserved = 1;
      },
      why: 'SIGALTSTACK record: reserved field not zero',
      nth: 1,
    }));

  it('refuses a record of another length than 24 bytes', async () => {
    const bytes = await bytesOf(model());
    const bad = withPayload(bytes, KIND, 0, (p) => p.slice(0, 20));
    expectBadRecord(bad, KIND, 'SIGALTSTACK record length 20 is invalid for its kind', 0, bytes);
  });

  it('show: the stack or "disabled" under its thread; show --json: the values, null when not recorded', async () => {
    const lines = await showLines(model());
    expect(lines).toContain('    sigaltstack 0x7f0000100000 size 65536 flags 0x80000000');
    expect(lines).toContain('    sigaltstack disabled');
    const doc = await jsonOf(model());
    expect(doc.tasks[0]!.threads.map((th) => th.sigaltstack)).toEqual(model().tasks[0]!.threads.map((th) => th.sigaltstack));
    expect(doc.tasks[1]!.threads.map((th) => th.sigaltstack)).toEqual([null, null]);
  });

  it("diff: a change and the record absent are reported as the thread's sigaltstack", async () => {
    const b = model();
    b.tasks[0]!.threads[0]!.sigaltstack!.size = 8192n;
    expect(await diffOf(model(), b)).toEqual([
      { what: 'task 100 thread 100 sigaltstack', a: model().tasks[0]!.threads[0]!.sigaltstack, b: b.tasks[0]!.threads[0]!.sigaltstack },
    ]);
    const c = model();
    delete c.tasks[0]!.threads[1]!.sigaltstack;
    expect(await diffOf(c, model())).toEqual([
      { what: 'task 100 thread 101 sigaltstack', a: null, b: model().tasks[0]!.threads[1]!.sigaltstack },
    ]);
  });
});
