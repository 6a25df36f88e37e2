/**
 * Every kind of the registry (src/kinds/index.ts) has what a kind must have besides its module: a test file here,
 * its record in the schema under its owner's record, and an arbitrary of valid values (test/helpers/kinds-arb.ts)
 * whose values round-trip. Adding a kind without its test file or its arbitrary fails here.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync } from 'node:fs';
import { fc } from '@fast-check/vitest';
import { KINDS } from '../../src/kinds/index.js';
import { type AnyKind, valueOf } from '../../src/kinds/kind.js';
import { K, RECORDS, RECORD_BY_KIND } from '../../src/schema.js';
import { KIND_ARBS, withKind } from '../helpers/kinds-arb.js';
import { baseModel, bytesOf, recordsOf, roundTrip } from '../helpers/kinds.js';

const KINDS_DIR = new URL('../../src/kinds/', import.meta.url);
const OWNER_RECORD = { task: K.TASK, thread: K.THREAD, fd: K.FD };

/** The directory under src/kinds of each kind of the registry, from the format.ts modules that export it. */
async function kindDirs(): Promise<Map<AnyKind, string>> {
  const out = new Map<AnyKind, string>();
  for (const d of readdirSync(KINDS_DIR, { withFileTypes: true })) {
    if (!d.isDirectory() || !existsSync(new URL(`${d.name}/format.ts`, KINDS_DIR))) continue;
    const mod = (await import(new URL(`${d.name}/format.ts`, KINDS_DIR).href)) as Record<string, unknown>;
    const kinds = Object.values(mod).filter((v) => KINDS.includes(v as AnyKind)) as AnyKind[];
    expect(kinds, `src/kinds/${d.name}/format.ts exports one kind of the registry`).toHaveLength(1);
    out.set(kinds[0]!, d.name);
  }
  return out;
}

describe('the registry of kinds', () => {
  it('each kind lives in src/kinds/<dir>/format.ts and has its test file test/kinds/<dir>.test.ts', async () => {
    const dirs = await kindDirs();
    expect([...dirs.keys()].map((k) => k.key).sort()).toEqual(KINDS.map((k) => k.key).sort());
    for (const [k, dir] of dirs) expect(existsSync(new URL(`./${dir}.test.ts`, import.meta.url)), `test/kinds/${dir}.test.ts for ${k.record.name}`).toBe(true);
    expect(new Set(KINDS.map((k) => k.key)).size).toBe(KINDS.length);
  });

  it('each kind\'s record is in the schema under its owner\'s record, and one of its children', () => {
    for (const k of KINDS) {
      expect(RECORD_BY_KIND.get(k.record.kind), k.record.name).toBe(k.record);
      expect(RECORDS).toContain(k.record);
      expect(k.record.parent, k.record.name).toBe(OWNER_RECORD[k.owner]);
      expect(RECORD_BY_KIND.get(OWNER_RECORD[k.owner])!.children!.filter((c) => c.kind === k.record.kind), k.record.name).toEqual([{ kind: k.record.kind, count: '?' }]);
    }
  });

  it('each kind has an arbitrary of its values (test/helpers/kinds-arb.ts), for its owner', () => {
    for (const k of KINDS) {
      expect(KIND_ARBS[k.key], `${k.record.name}: KIND_ARBS.${k.key}`).toBeDefined();
      expect(KIND_ARBS[k.key]!.owner, k.key).toBe(k.owner);
    }
    expect(Object.keys(KIND_ARBS).sort()).toEqual(KINDS.map((k) => k.key).sort());
  });

  for (const k of KINDS) {
    it(`${k.record.name}: values from its arbitrary round-trip, and are written as its record`, async () => {
      const base = baseModel();
      const task = base.tasks[0]!;
      await fc.assert(fc.asyncProperty(withKind(k, task), async (t) => {
        const m = { ...base, tasks: [t, base.tasks[1]!] };
        const owners: object[] = k.owner === 'task' ? [t] : k.owner === 'thread' ? t.threads : t.files;
        expect(owners.some((o) => valueOf(k, o as never) !== undefined)).toBe(true);
        const back = await roundTrip(m);
        const ownersBack: object[] = k.owner === 'task' ? [back.tasks[0]!] : k.owner === 'thread' ? back.tasks[0]!.threads : back.tasks[0]!.files;
        expect(ownersBack.map((o) => valueOf(k, o as never))).toEqual(owners.map((o) => valueOf(k, o as never)));
        expect(recordsOf(await bytesOf(m)).some((r) => r.kind === k.record.kind)).toBe(true);
      }), { numRuns: 25, seed: 13 });
    });
  }
});
