/**
 * Helpers of the per-kind tests (test/kinds/): a base model, a model's image, the records of an image, the refusal
 * of a malformed record (BAD_RECORD, its message, an offset inside that very record), a record rewritten field by
 * field (for what a model cannot express: a reserved field, arrays of different lengths), and the views of a model
 * (show, show --json, diff).
 */
import { expect } from 'vitest';
import { CrimgError, type Model, MemorySink, diffImages, kernels, readImage, showJson, showText, writeImage } from '../../src/index.js';
import type { Difference } from '../../src/kinds/kind.js';
import { RecordStream } from '../../src/reader.js';
import { Builder, type Fields, RECORD_BY_KIND, RECORD_HEADER_BYTES, decodeFields, encodeFields, pad8 } from '../../src/schema.js';
import { openSource } from '../../src/source.js';
import { claimRegion, releaseRegion } from '../../src/kernels/arena.js';
import { flatten, smallModel } from './models.js';
// @ts-expect-error plain JavaScript: the fuzzer's image surgery (its own record walker and checksums)
import { build, parse } from '../fuzz/image.mjs';

/** Two tasks (pids 100 and 200) of two threads each (tids 100, 101 and 200, 201), with fds 0 (other: /dev/null),
 *  3 (a regular file) and 4 (a directory), and a few pages: the owner of the values a kind test adds. */
export function baseModel(): Model {
  return smallModel(4, { pages: 2, anonPages: 3 });
}

/** The image of a model. */
export async function bytesOf(model: Model): Promise<Uint8Array> {
  const sink = new MemorySink();
  await writeImage(model, sink);
  return sink.bytes();
}

/**
 * model -> image -> model is the identity (pages included) and image -> model -> image is byte-identical. Returns
 * the model read back (its pages no longer readable: the image is closed).
 */
export async function roundTrip(model: Model): Promise<Model> {
  const bytes = await bytesOf(model);
  const img = readImage(bytes);
  const k = kernels();
  const scratch = claimRegion(k, 8 * 4096);
  try {
    expect(flatten(img.model, k, scratch)).toEqual(flatten(model, k, scratch));
    expect(Buffer.compare(Buffer.from(await bytesOf(img.model)), Buffer.from(bytes))).toBe(0);
    return img.model;
  } finally {
    releaseRegion(k, scratch);
    img.close();
  }
}

/** A record of an image: its kind, the offset of its header, the end of its (padded) payload. */
export interface RecordAt {
  kind: number;
  off: number;
  end: number;
}

/** Every record of an image, walked with the reader's framing (checksums checked; the grammar is not). */
export function recordsOf(bytes: Uint8Array): RecordAt[] {
  const rs = new RecordStream(openSource(bytes), kernels());
  try {
    rs.magic();
    const out: RecordAt[] = [];
    for (let r = rs.next(); r; r = rs.next()) out.push({ kind: r.kind, off: r.off, end: r.off + RECORD_HEADER_BYTES + pad8(r.len) });
    return out;
  } finally {
    rs.release();
  }
}

/** The `nth` record of `kind` in an image. */
export function recordOf(bytes: Uint8Array, kind: number, nth = 0): RecordAt {
  const r = recordsOf(bytes).filter((x) => x.kind === kind)[nth];
  if (!r) throw new Error(`no record ${nth} of kind 0x${kind.toString(16)} in the image`);
  return r;
}

/** The error reading an image throws (undefined when it reads). */
export function readError(bytes: Uint8Array): unknown {
  try {
    readImage(bytes).close();
  } catch (e) {
    return e;
  }
  return undefined;
}

/**
 * Reading `bytes` is refused: BAD_RECORD with the message `why` (a whole message, or a pattern), at an offset
 * inside the `nth` record of `kind`, naming that kind. The record is found by walking `walk`: the refused image
 * itself, or, when the framing of that record is what is refused, the image before the edit (where the record
 * starts at the same offset).
 */
export function expectBadRecord(bytes: Uint8Array, kind: number, why: string | RegExp, nth = 0, walk = bytes): void {
  const err = readError(bytes);
  expect(err, `refused: ${String(why)}`).toBeInstanceOf(CrimgError);
  const e = err as CrimgError;
  expect(e.code, e.line()).toBe('BAD_RECORD');
  if (typeof why === 'string') expect(e.message).toBe(why);
  else expect(e.message).toMatch(why);
  const rec = recordOf(walk, kind, nth);
  expect(e.offset, `${e.line()}: in record [${rec.off}, ${rec.end})`).toBeGreaterThanOrEqual(rec.off);
  expect(e.offset!).toBeLessThan(rec.end);
  expect(e.kind).toBe(kind);
}

/** The image with the payload of the `nth` record of `kind` replaced (record checksums, INDEX and TRAILER made
 *  right again, so that only the reader's checks of the record stand between it and acceptance). */
export function withPayload(bytes: Uint8Array, kind: number, nth: number, payload: (p: Uint8Array) => Uint8Array): Uint8Array {
  const img = parse(bytes) as { magic: Uint8Array; recs: { kind: number; payload: Uint8Array; pad?: Uint8Array; csum?: bigint }[] };
  const i = img.recs.map((r, j) => (r.kind === kind ? j : -1)).filter((j) => j >= 0)[nth];
  if (i === undefined) throw new Error(`no record ${nth} of kind 0x${kind.toString(16)} in the image`);
  const r = img.recs[i]!;
  img.recs[i] = { ...r, payload: payload(r.payload), pad: undefined, csum: undefined };
  return build(img.magic, img.recs, { fix: 'full', fixIndex: true }) as Uint8Array;
}

/** The image with the `nth` record of `kind` encoded again from its decoded fields, as `edit` changes them. */
export function withFields(bytes: Uint8Array, kind: number, nth: number, edit: (f: Fields) => void): Uint8Array {
  const def = RECORD_BY_KIND.get(kind)!;
  return withPayload(bytes, kind, nth, (p) => {
    const f = decodeFields(def, p, 0);
    edit(f);
    const b = new Builder();
    encodeFields(def, f, b);
    return b.view().slice();
  });
}

/**
 * A refusal of a kind's record: the base model changed by `model`, then (for what a model cannot express) the
 * `nth` record of the kind rewritten by `fields`; reading it gives BAD_RECORD `why` inside that record.
 */
export interface Refusal {
  why: string | RegExp;
  model?: (m: Model) => void;
  fields?: (f: Fields) => void;
  /** Which record of the kind the refusal points at (default the first). */
  nth?: number;
}

export async function expectRefusal(base: () => Model, kind: number, r: Refusal): Promise<void> {
  const m = base();
  r.model?.(m);
  let bytes = await bytesOf(m);
  if (r.fields) bytes = withFields(bytes, kind, r.nth ?? 0, r.fields);
  expectBadRecord(bytes, kind, r.why, r.nth ?? 0);
}

/** The lines of `crimg show` for a model (read from its image). */
export async function showLines(model: Model): Promise<string[]> {
  const img = readImage(await bytesOf(model));
  try {
    return showText(img.model, img).split('\n');
  } finally {
    img.close();
  }
}

/** The document of `crimg show --json` for a model (read from its image). */
export async function jsonOf(
  model: Model,
): Promise<{ tasks: (Record<string, unknown> & { threads: Record<string, unknown>[]; files: Record<string, unknown>[] })[] }> {
  const img = readImage(await bytesOf(model));
  try {
    return showJson(img.model, img) as never;
  } finally {
    img.close();
  }
}

/** The differences `crimg diff` reports between the images of two models (page contents not compared). */
export async function diffOf(a: Model, b: Model): Promise<Difference[]> {
  const A = readImage(await bytesOf(a));
  const B = readImage(await bytesOf(b));
  try {
    return diffImages(A, B, { pages: false });
  } finally {
    A.close();
    B.close();
  }
}
