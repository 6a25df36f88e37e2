/**
 * PROC_ATTRS: attributes of a process its programs see and set (umask, oom_score_adj, dumpable, THP disabled, child
 * subreaper, timer slack; src/kinds/proc-attrs). The format, and a real program that sets them, is dumped, killed and
 * restored, then checks them itself (zdtm style: test/progs/zdtm-proc-attrs.c).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../src/index.js';
import { procAttrs } from '../../src/kinds/proc-attrs/format.js';
import { type Refusal, baseModel, diffOf, expectRefusal, jsonOf, roundTrip, showLines } from '../helpers/kinds.js';
import { compileProg, zdtmCycle } from '../helpers/zdtm.js';

const KIND = procAttrs.record.kind;

function model(): Model {
  const m = baseModel();
  m.tasks[0]!.procAttrs = {
    umask: 0o027,
    oomScoreAdj: -345,
    dumpable: false,
    thpDisable: true,
    childSubreaper: true,
    timerSlackNs: 123456n,
  };
  return m;
}

describe('PROC_ATTRS', () => {
  it('round-trips: model -> image -> model equal, image -> model -> image byte-identical; absent stays absent', async () => {
    const m = model();
    m.tasks[1]!.procAttrs = { umask: 0o777, oomScoreAdj: 1000, dumpable: true, thpDisable: false, childSubreaper: false, timerSlackNs: 1n };
    const back = await roundTrip(m);
    expect(back.tasks[0]!.procAttrs).toEqual(m.tasks[0]!.procAttrs);
    expect(back.tasks[1]!.procAttrs).toEqual(m.tasks[1]!.procAttrs);
    delete m.tasks[1]!.procAttrs;
    expect((await roundTrip(m)).tasks[1]!.procAttrs).toBeUndefined();
  });

  const refusals: [string, Refusal][] = [
    [
      'a umask above 0o777',
      { model: (m) => void (m.tasks[0]!.procAttrs!.umask = 0o1000), why: 'PROC_ATTRS record: umask 0o1000 has bits above 0o777' },
    ],
    [
      'oom_score_adj below -1000',
      {
        model: (m) => void (m.tasks[0]!.procAttrs!.oomScoreAdj = -1001),
        why: 'PROC_ATTRS record: oom_score_adj -1001 outside -1000..1000',
      },
    ],
    [
      'oom_score_adj above 1000',
      { model: (m) => void (m.tasks[0]!.procAttrs!.oomScoreAdj = 1001), why: 'PROC_ATTRS record: oom_score_adj 1001 outside -1000..1000' },
    ],
    ['a timer slack of 0', { model: (m) => void (m.tasks[0]!.procAttrs!.timerSlackNs = 0n), why: 'PROC_ATTRS record: timer slack 0' }],
    ['unknown flags', { fields: (f) => void (f.flags = 8), why: 'PROC_ATTRS record: unknown flags 0x8' }],
    ['a reserved field not zero', { fields: (f) => void (f.reserved = 1), why: 'PROC_ATTRS record: reserved field not zero' }],
  ];
  for (const [what, r] of refusals) it(`refuses ${what}`, () => expectRefusal(model, KIND, r));

  it('show: one line; show --json: the attributes, null when not recorded', async () => {
    expect(await showLines(model())).toContain(
      '  umask 0027 oom_score_adj -345 timer slack 123456 ns not-dumpable thp-disabled child-subreaper',
    );
    const doc = await jsonOf(model());
    expect(doc.tasks[0]!.procAttrs).toEqual(model().tasks[0]!.procAttrs);
    expect(doc.tasks[1]!.procAttrs).toBeNull();
  });

  it('diff: a changed attribute and the record absent are reported as process attributes', async () => {
    const b = model();
    b.tasks[0]!.procAttrs!.umask = 0o022;
    expect(await diffOf(model(), b)).toEqual([
      { what: 'task 100 process attributes', a: model().tasks[0]!.procAttrs, b: b.tasks[0]!.procAttrs },
    ]);
    const c = model();
    delete c.tasks[0]!.procAttrs;
    expect(await diffOf(model(), c)).toEqual([{ what: 'task 100 process attributes', a: model().tasks[0]!.procAttrs, b: null }]);
  });
});

describe('PROC_ATTRS of a live process', () => {
  let dir: string;
  let exe: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-procattrs-'));
    exe = compileProg(dir, 'zdtm-proc-attrs');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('umask, oom_score_adj, dumpable, THP disabled, child subreaper and timer slack come back (the program checks them)', async () => {
    const r = await zdtmCycle(exe, dir);
    expect(r.check).toMatch(/safe to checkpoint/);
    expect(r.verdict).toBe('PASS');
  }, 60_000);

  it('with --pid-ns too', async () => {
    const r = await zdtmCycle(exe, dir, { restoreArgs: ['--pid-ns'] });
    expect(r.verdict).toBe('PASS');
  }, 60_000);
});
