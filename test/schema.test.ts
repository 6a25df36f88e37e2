/**
 * The schema describes structure and everything follows from it: the registry of kinds, the grammar the writer
 * emits and the reader walks, `show --json` and `diff` (every record kind appears in both), the kernels' record
 * kinds.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { KIND_ARBS } from './helpers/kinds-arb.js';
import { type Model, MemorySink, diffImages, readImage, showJson, showText, writeImage } from '../src/index.js';
import { IMAGE_GRAMMAR, K, RECORDS, RECORD_BY_KIND } from '../src/schema.js';
import { KINDS, KINDS_OF } from '../src/kinds/index.js';
import { kindValue as kindValueOf } from '../src/kinds/kind.js';
import { RecordStream } from '../src/reader.js';
import { kernels } from '../src/kernels/index.js';
import { openSource } from '../src/source.js';

const golden = new URL('./golden/all-kinds.crimg', import.meta.url).pathname;

/** The golden image with every kind: the kinds added after it was made get a generated value (task 0, thread 0). */
let allKinds: Uint8Array | null = null;
async function allKindsBytes(): Promise<Uint8Array> {
  if (allKinds) return allKinds;
  const img = readImage(golden);
  const t = img.model.tasks[0]!;
  for (const k of KINDS) {
    const arb = KIND_ARBS[k.key]!;
    const owner = arb.owner === 'task' ? t : arb.owner === 'thread' ? t.threads[0]! : null;
    if (!owner) continue; // the golden image has every fd kind
    if (kindValueOf(k, owner as never) === undefined) {
      const a = arb.owner === 'task' ? arb.value(t.threads.map((th) => th.tid)) : (arb as { value(): fc.Arbitrary<unknown> }).value();
      (owner as unknown as Record<string, unknown>)[k.key] = fc.sample(a, { numRuns: 1, seed: 1 })[0];
    }
  }
  allKinds = await bytesOf(img.model);
  img.close();
  return allKinds;
}

async function bytesOf(model: Model): Promise<Uint8Array> {
  const sink = new MemorySink();
  await writeImage(model, sink);
  return sink.bytes();
}

/** The kinds of the records of an image, in order. */
function recordKinds(bytes: Uint8Array): number[] {
  const rs = new RecordStream(openSource(bytes), kernels());
  try {
    rs.magic();
    const out: number[] = [];
    for (let r = rs.next(); r; r = rs.next()) out.push(r.kind);
    return out;
  } finally {
    rs.release();
  }
}

describe('schema', () => {
  it("record kinds are unique; each kind hangs under its owner's record and is a child of it, once", () => {
    expect(new Set(RECORDS.map((r) => r.kind)).size).toBe(RECORDS.length);
    expect(new Set(RECORDS.map((r) => r.name)).size).toBe(RECORDS.length);
    const ownerKind = { task: K.TASK, thread: K.THREAD, fd: K.FD };
    for (const k of KINDS) {
      expect(k.record.parent, k.record.name).toBe(ownerKind[k.owner]);
      const kids = RECORD_BY_KIND.get(ownerKind[k.owner])!.children!;
      expect(
        kids.filter((c) => c.kind === k.record.kind),
        k.record.name,
      ).toEqual([{ kind: k.record.kind, count: '?' }]);
    }
    // every record but the top level's is somebody's child, under the parent it names
    const children = new Map<number, number>();
    for (const r of RECORDS) for (const c of r.children ?? []) children.set(c.kind, r.kind);
    for (const r of RECORDS) {
      if (r.parent === 0)
        expect(
          IMAGE_GRAMMAR.map((c) => c.kind),
          r.name,
        ).toContain(r.kind);
      else expect(children.get(r.kind), r.name).toBe(r.parent);
    }
  });

  it("an fd carrying several optional records is written in the schema's order and read back (INOTIFY with TCP_LISTEN was refused)", async () => {
    const img0 = readImage(await allKindsBytes());
    const model = img0.model;
    const f = model.tasks[0]!.files.find((x) => x.inotify)!;
    const other = model.tasks[0]!.files.find((x) => x.tcpListen)!;
    f.tcpListen = other.tcpListen;
    const bytes = await bytesOf(model);
    img0.close();
    const img = readImage(bytes);
    expect(img.model.tasks[0]!.files.find((x) => x.fd === f.fd)!.tcpListen).toEqual(other.tcpListen);
    expect(img.model.tasks[0]!.files.find((x) => x.fd === f.fd)!.inotify).toEqual(f.inotify);
    img.close();
    // the records of that fd come in registry order
    const kinds = recordKinds(bytes);
    const fdKinds = new Set(KINDS_OF.fd.map((k) => k.record.kind));
    const runs: number[][] = [];
    for (let i = 0; i < kinds.length; i++) {
      if (kinds[i] !== K.FD) continue;
      const run: number[] = [];
      for (let j = i + 1; j < kinds.length && fdKinds.has(kinds[j]!); j++) run.push(kinds[j]!);
      runs.push(run);
    }
    const order = KINDS_OF.fd.map((k) => k.record.kind);
    for (const run of runs) expect(run).toEqual([...run].sort((a, b) => order.indexOf(a) - order.indexOf(b)));
    expect(runs.some((r) => r.length === 2)).toBe(true);
  });

  it('every record kind appears in show --json and in diff', async () => {
    const img = readImage(await allKindsBytes());
    try {
      const json = JSON.stringify(showJson(img.model, img), (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
      // the core records, by the key show --json gives them
      const CORE_KEYS: Record<string, string> = {
        HEADER: '"header"',
        NS: '"namespaces"',
        TASK: '"tasks"',
        CREDS: '"creds"',
        RLIMITS: '"rlimits"',
        NSIDS: '"ns"',
        THREAD: '"threads"',
        REGS: '"regs"',
        FPU: '"fpu"',
        XSTATE: '"xstate"',
        MM: '"mm"',
        VMA: '"vmas"',
        PAGES: '"zeroPages"',
        FD: '"files"',
        NOCR: '"nocr"',
        INDEX: '"pagesStored"',
        TRAILER: '"imageCsum"',
      };
      for (const r of RECORDS) {
        const kd = KINDS.find((k) => k.record.kind === r.kind);
        const key = kd ? `"${kd.key}"` : CORE_KEYS[r.name];
        expect(key, `${r.name} has a show --json key`).toBeDefined();
        expect(json, r.name).toContain(`${key}:`);
      }
      // each kind's value is shown (not null) in this image, which has them all
      const t = img.model.tasks[0]!;
      const doc = showJson(img.model, img) as {
        tasks: { threads: Record<string, unknown>[]; files: Record<string, unknown>[] }[];
      } & Record<string, unknown>;
      for (const k of KINDS_OF.task) expect((doc.tasks[0] as unknown as Record<string, unknown>)[k.key], k.key).not.toBeNull();
      for (const k of KINDS_OF.thread)
        expect(
          doc.tasks[0]!.threads.some((th) => th[k.key] !== null),
          k.key,
        ).toBe(true);
      for (const k of KINDS_OF.fd)
        expect(
          doc.tasks[0]!.files.some((f) => f[k.key] !== undefined),
          k.key,
        ).toBe(true);
      // and each shows in the text view
      const text = showText(img.model, img);
      for (const k of KINDS) {
        const owner =
          k.owner === 'task'
            ? t
            : k.owner === 'thread'
              ? t.threads.find((th) => kindValueOf(k, th))
              : t.files.find((f) => kindValueOf(k, f));
        const v = kindValueOf(k, owner as never);
        for (const line of k.text(v)) expect(text, k.key).toContain(line);
      }
    } finally {
      img.close();
    }
  });

  it('diff reports a change of each kind of state, and its absence', async () => {
    const base = await allKindsBytes();
    for (const k of KINDS) {
      const A = readImage(new Uint8Array(base));
      const B = readImage(new Uint8Array(base));
      try {
        const tb = B.model.tasks[0]!;
        const owners: object[] = k.owner === 'task' ? [tb] : k.owner === 'thread' ? tb.threads : tb.files;
        const owner = owners.find((o) => kindValueOf(k, o as never) !== undefined)!;
        delete (owner as Record<string, unknown>)[k.key];
        const d = diffImages(A, B, { pages: false });
        expect(d.length, k.key).toBeGreaterThan(0);
        expect(
          d.some((x) => x.what.includes(k.label) || x.what.includes(k.label.replace(/s$/, ''))),
          `${k.key}: ${JSON.stringify(d.map((x) => x.what))}`,
        ).toBe(true);
        expect(diffImages(A, A, { pages: false })).toEqual([]);
      } finally {
        A.close();
        B.close();
      }
    }
  });

  it("the kernels' record kinds are the schema's", () => {
    const found = new Map<string, number>();
    for (const f of ['records.ts', 'regs.ts']) {
      const src = readFileSync(new URL(`../assembly/${f}`, import.meta.url), 'utf8');
      for (const m of src.matchAll(/const KIND_(\w+): u\d+ = (0x[0-9a-f]+);/g)) found.set(m[1]!, Number(m[2]));
    }
    expect([...found.keys()].sort()).toEqual(['FPU', 'PAGES', 'REGS']);
    for (const [name, kind] of found) expect(kind, name).toBe((K as Record<string, number>)[name]);
    // and no other record kind is spelled as a number in the kernels
    for (const f of ['records.ts', 'regs.ts', 'pages.ts', 'index.ts']) {
      const src = readFileSync(new URL(`../assembly/${f}`, import.meta.url), 'utf8').replace(/const KIND_\w+: u\d+ = 0x[0-9a-f]+;/g, '');
      for (const r of RECORDS) expect(src.includes(`0x${r.kind.toString(16).padStart(4, '0')},`), `${f}: ${r.name}`).toBe(false);
    }
  });
});
