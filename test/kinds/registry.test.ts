/**
 * Every kind of the registry (src/kinds/index.ts) has what a kind must have besides its module: a test file here,
 * its record in the schema under its owner's record, and an arbitrary of valid values (test/helpers/kinds-arb.ts)
 * whose values round-trip. Adding a kind without its test file or its arbitrary fails here. And the refusals the
 * schema makes of any kind's record (tuples, fixed lengths, bytes after the last field), for each kind.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync } from 'node:fs';
import { fc } from '@fast-check/vitest';
import { KINDS } from '../../src/kinds/index.js';
import { LIVE_KINDS } from '../../src/kinds/live.js';
import { type AnyKind, kindValue } from '../../src/kinds/kind.js';
import { K, RECORDS, RECORD_BY_KIND, tupleWord } from '../../src/schema.js';
import { KIND_ARBS, withKind } from '../helpers/kinds-arb.js';
import { baseModel, bytesOf, expectBadRecord, recordsOf, roundTrip, withPayload } from '../helpers/kinds.js';
// @ts-expect-error plain JavaScript: the fuzzer's reading of payloads by the schema's fields
import { slots } from '../fuzz/image.mjs';

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
    for (const [k, dir] of dirs)
      expect(existsSync(new URL(`./${dir}.test.ts`, import.meta.url)), `test/kinds/${dir}.test.ts for ${k.record.name}`).toBe(true);
    expect(new Set(KINDS.map((k) => k.key)).size).toBe(KINDS.length);
  });

  it('each live facet is the live side of a registered kind (its format), of the same owner, once', () => {
    for (const l of LIVE_KINDS) {
      expect(KINDS, l.name).toContain(l.format);
      expect(l.format.owner, l.name).toBe(l.scope);
    }
    expect(new Set(LIVE_KINDS.map((l) => l.format)).size).toBe(LIVE_KINDS.length);
  });

  it("each kind's record is in the schema under its owner's record, and one of its children", () => {
    for (const k of KINDS) {
      expect(RECORD_BY_KIND.get(k.record.kind), k.record.name).toBe(k.record);
      expect(RECORDS).toContain(k.record);
      expect(k.record.parent, k.record.name).toBe(OWNER_RECORD[k.owner]);
      expect(
        RECORD_BY_KIND.get(OWNER_RECORD[k.owner])!.children!.filter((c) => c.kind === k.record.kind),
        k.record.name,
      ).toEqual([{ kind: k.record.kind, count: '?' }]);
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
      await fc.assert(
        fc.asyncProperty(withKind(k, task), async (t) => {
          const m = { ...base, tasks: [t, base.tasks[1]!] };
          const owners: object[] = k.owner === 'task' ? [t] : k.owner === 'thread' ? t.threads : t.files;
          expect(owners.some((o) => kindValue(k, o as never) !== undefined)).toBe(true);
          const back = await roundTrip(m);
          const ownersBack: object[] =
            k.owner === 'task' ? [back.tasks[0]!] : k.owner === 'thread' ? back.tasks[0]!.threads : back.tasks[0]!.files;
          expect(ownersBack.map((o) => kindValue(k, o as never))).toEqual(owners.map((o) => kindValue(k, o as never)));
          expect(recordsOf(await bytesOf(m)).some((r) => r.kind === k.record.kind)).toBe(true);
        }),
        { numRuns: 25, seed: 13 },
      );
    });
  }

  /** An image of the base model with values of kind `k` from its arbitrary. */
  async function imageWith(k: AnyKind): Promise<Uint8Array> {
    const base = baseModel();
    const [t] = fc.sample(withKind(k, base.tasks[0]!), { numRuns: 1, seed: 5 });
    return bytesOf({ ...base, tasks: [t!, base.tasks[1]!] });
  }

  for (const k of KINDS.filter((x) => x.record.fields.some((f) => f[3]))) {
    it(`${k.record.name}: a count of values that is not a whole number of tuples is refused`, async () => {
      const [name, , , of] = k.record.fields.find((f) => f[3])!;
      let count = 0;
      const bytes = await imageWith(k);
      const bad = withPayload(bytes, k.record.kind, 0, (p) => {
        const s = (slots(k.record.fields, p) as { name: string; off: number; role: string }[]).find(
          (x) => x.name === name && x.role === 'count',
        )!;
        count = new DataView(p.buffer, p.byteOffset).getUint32(s.off, true) + 1;
        const q = new Uint8Array(p.length + 8);
        q.set(p.subarray(0, s.off + 4));
        q.set(p.subarray(s.off + 4), s.off + 12);
        new DataView(q.buffer).setUint32(s.off, count, true);
        return q;
      });
      expectBadRecord(bad, k.record.kind, `${k.record.name} record: ${count} values are not (${of!.join(', ')}) ${tupleWord(of!.length)}`);
    });
  }

  for (const k of KINDS.filter((x) => x.record.fixedLen !== undefined)) {
    it(`${k.record.name}: a record of another length than ${k.record.fixedLen} bytes is refused`, async () => {
      const bytes = await imageWith(k);
      for (const len of [0, k.record.fixedLen! - 1, k.record.fixedLen! + 8]) {
        const bad = withPayload(bytes, k.record.kind, 0, (p) => {
          const q = new Uint8Array(len);
          q.set(p.subarray(0, len));
          return q;
        });
        expectBadRecord(bad, k.record.kind, `${k.record.name} record length ${len} is invalid for its kind`, 0, bytes);
      }
    });
  }

  for (const k of KINDS.filter((x) => !x.record.fields.some((f) => f[1] === 'raw'))) {
    it(`${k.record.name}: bytes after the last field are refused`, async () => {
      const bytes = await imageWith(k);
      const bad = withPayload(bytes, k.record.kind, 0, (p) => {
        const q = new Uint8Array(p.length + 4);
        q.set(p);
        return q;
      });
      if (k.record.fixedLen !== undefined)
        expectBadRecord(bad, k.record.kind, `${k.record.name} record length ${k.record.fixedLen + 4} is invalid for its kind`, 0, bytes);
      else expectBadRecord(bad, k.record.kind, `${k.record.name} record: 4 unexpected bytes after the last field`);
    });
  }
});
