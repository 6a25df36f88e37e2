/** The shape of restore: the kind steps in their order, nothing done for a kind with nothing to restore, short
 *  functions. (What the steps do to a real process: test/restore.test.ts.) */
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';
import { ANON_KIND, type OpenFile, type Thread } from '../src/model.js';
import type { RestoreCtx } from '../src/restore/ctx.js';
import { KIND_STEPS, kindSteps, restoreCalls, restoreRseq } from '../src/restore/kind-steps.js';
import { LIVE_KINDS, RESTORE_KINDS } from '../src/kinds/live.js';
import { restoreFlocks } from '../src/kinds/flocks/live.js';
import { restoreItimers } from '../src/kinds/itimers/live.js';
import { restorePosixTimers } from '../src/kinds/posix-timers/live.js';
import { restoreSigaltstack } from '../src/kinds/sigaltstack/live.js';

describe('kind steps', () => {
  it('run in this order, each kind when it must', () => {
    const order = (when: Parameters<typeof kindSteps>[0]): string[] =>
      kindSteps(when).map((k) => ('late' in k && k.late ? `${k.kind} (late)` : k.kind));
    expect(order('task')).toEqual(['sigacts', 'proc-attrs']);
    expect(order('fd')).toEqual(['pipe', 'unix-pair', 'tcp-listen', 'inotify', 'anon-fd', 'anon-fd (late)']);
    expect(order('thread')).toEqual(['rseq', 'futex', 'sigaltstack']);
    expect(order('last')).toEqual(['itimers', 'posix-timers', 'flocks', 'proc-attrs']);
    expect(KIND_STEPS).toHaveLength(15);
  });

  it('the restore order names every kind with a live facet once', () => {
    expect(new Set(RESTORE_KINDS)).toEqual(new Set(LIVE_KINDS));
    expect(RESTORE_KINDS).toHaveLength(LIVE_KINDS.length);
  });

  it('an epoll fd is made after the others; each fd is claimed by one kind at most', () => {
    const fd = kindSteps('fd');
    const epoll = { fd: 3, anon: { kind: ANON_KIND.EPOLL, values: [] } } as unknown as OpenFile;
    const eventfd = { fd: 4, anon: { kind: ANON_KIND.EVENTFD, values: [] } } as unknown as OpenFile;
    expect(fd.find((k) => k.has(epoll))!.late).toBe(true);
    expect(fd.find((k) => k.has(eventfd))!.late).toBe(false);
    for (const f of [epoll, eventfd]) expect(fd.filter((k) => k.has(f))).toHaveLength(1);
  });

  it('a value with nothing to restore makes no step and no system call', () => {
    const none = (): never => {
      throw new Error('no step expected');
    };
    const ctx = {
      step: none,
      batch: none,
      inj: { call: none, write: none },
      injs: new Map(),
      task: { threads: [] },
      fds: { made: new Set(), sorted: [], inherit: new Set(), treePipes: new Map(), above: 3 },
    } as unknown as RestoreCtx;
    const th = { tid: 1 } as Thread;
    const rc = restoreCalls(ctx);
    const tc = { tid: 2, at: 'thread 1 (now 2)', call: none, scratch: none };
    restoreRseq(ctx, th, { ptr: 0n, len: 32, sig: 0, flags: 0 });
    restoreSigaltstack(rc, tc, { sp: 0x1000n, size: 8192n, flags: 2 });
    restoreItimers(rc, []);
    restorePosixTimers(rc, { threads: [] }, []);
    restoreFlocks(rc, { fd: 3 } as OpenFile, []);
  });
});

describe('short functions', () => {
  it('no function in src/restore is longer than 100 lines', () => {
    const long: string[] = [];
    for (const name of fs.readdirSync('src/restore').filter((f) => f.endsWith('.ts'))) {
      const file = path.join('src/restore', name);
      const sf = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
      const visit = (n: ts.Node): void => {
        if (ts.isFunctionLike(n) && 'body' in n && n.body) {
          const a = sf.getLineAndCharacterOfPosition(n.getStart()).line,
            b = sf.getLineAndCharacterOfPosition(n.getEnd()).line;
          if (b - a + 1 > 100) long.push(`${file}:${a + 1} (${b - a + 1} lines)`);
        }
        ts.forEachChild(n, visit);
      };
      visit(sf);
    }
    expect(long).toEqual([]);
  });
});
