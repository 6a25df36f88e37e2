import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CrimgError,
  MemorySink,
  RecordKind as K,
  RecordWriter,
  kernels,
  readImage,
  verifyImage,
  verifyImageAsync,
  writeImage,
  openImage,
} from '../src/index.js';
import { claimRegion, releaseRegion } from '../src/kernels/arena.js';
import { ERROR_CODES } from '../src/errors.js';
import { verifyBulk } from '../src/reader.js';
import type { Source } from '../src/source.js';
import { flatten, smallModel } from './helpers/models.js';

async function toBytes(model = smallModel()): Promise<Uint8Array> {
  const sink = new MemorySink();
  await writeImage(model, sink);
  return sink.bytes();
}

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof CrimgError) return e.code;
    throw e;
  }
  return 'OK';
}

/** Offsets of every record header in an image. */
function recordOffsets(b: Uint8Array): { off: number; kind: number; len: number }[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out = [];
  let o = 8;
  while (o < b.length) {
    const kind = dv.getUint16(o, true),
      len = dv.getUint32(o + 4, true);
    out.push({ off: o, kind, len });
    o += 16 + ((len + 7) & ~7);
  }
  return out;
}

describe('round trips', () => {
  it('model -> image -> model is deep-equal, pages included', async () => {
    const k = kernels();
    const scratch = claimRegion(k, 400 * 4096);
    try {
      const model = smallModel(3);
      const bytes = await toBytes(model);
      const img = readImage(bytes);
      expect(flatten(img.model, k, scratch)).toEqual(flatten(model, k, scratch));
      img.close();
    } finally {
      releaseRegion(k, scratch);
    }
  });

  it('image -> model -> image is byte-identical', async () => {
    const bytes = await toBytes(smallModel(5));
    const img = readImage(bytes);
    const again = await toBytes(img.model);
    img.close();
    expect(Buffer.from(again).equals(Buffer.from(bytes))).toBe(true);
  });

  it('writes the same bytes to a file, through a temp name, as to memory', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-'));
    try {
      const file = path.join(dir, 'a.crimg');
      const r = await writeImage(smallModel(9), file);
      expect(fs.readdirSync(dir)).toEqual(['a.crimg']);
      expect(fs.statSync(file).size).toBe(r.bytes);
      expect(Buffer.from(fs.readFileSync(file)).equals(Buffer.from(await toBytes(smallModel(9))))).toBe(true);
      expect(verifyImage(file).stats.records).toBe(r.records);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('readMemory returns stored bytes, zeros for zero and absent pages, and refuses unmapped ranges', async () => {
    const model = smallModel(4);
    const bytes = await toBytes(model);
    const img = openImage(bytes);
    const k = kernels();
    const scratch = claimRegion(k, 8 * 4096);
    try {
      const heap = model.tasks[0]!.mm!.vmas[1]!;
      heap.pages.read(k, scratch, 0, 8);
      const expected = new Uint8Array(8 * 4096);
      for (const [f, n] of heap.pages.runs(8)) expected.set(k.u8().subarray(scratch + f * 4096, scratch + (f + n) * 4096), f * 4096);
      const got = img.readMemory(100, 0x600000n + 100n, 8 * 4096 - 200);
      expect(Buffer.from(got).equals(Buffer.from(expected.subarray(100, 8 * 4096 - 100)))).toBe(true);
      expect(codeOf(() => img.readMemory(100, 0x500000n, 16))).toBe('UNMAPPED');
      expect(codeOf(() => img.readMemory(100, 0x600000n + 8n * 4096n - 8n, 16))).toBe('UNMAPPED');
      expect(codeOf(() => img.readMemory(999, 0x600000n, 16))).toBe('NOT_FOUND');
    } finally {
      releaseRegion(k, scratch);
      img.close();
    }
  });
});

describe('records read ahead (fetchRun, two slots)', () => {
  it('a fetched record verifies and reads like a loaded one; a damaged one fails at loadRun; slots do not mix', async () => {
    const k = kernels();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-fetch-'));
    try {
      const file = path.join(dir, 'a.crimg');
      fs.writeFileSync(file, await toBytes(smallModel(11, { pages: 300, anonPages: 300 })));
      const img = openImage(file);
      const recs = img.model.tasks.flatMap((t) => t.mm!.vmas.flatMap((v) => img.runsOf(v))).filter((r) => r.nstored > 0);
      expect(recs.length).toBeGreaterThan(2);
      const bytesOf = (p: { data: number }, r: { nstored: number }): Buffer => Buffer.from(k.u8().slice(p.data, p.data + r.nstored * 4096));
      const direct = recs.map((r) => bytesOf(img.loadRun(r), r));
      // two reads in flight into the two slots, then verified in either order
      for (let i = 0; i + 1 < recs.length; i += 2) {
        await Promise.all([img.fetchRun(recs[i]!, 0), img.fetchRun(recs[i + 1]!, 1)]);
        expect(bytesOf(img.loadRun(recs[i + 1]!, 1), recs[i + 1]!).equals(direct[i + 1]!)).toBe(true);
        expect(bytesOf(img.loadRun(recs[i]!, 0), recs[i]!).equals(direct[i]!)).toBe(true);
      }
      img.close();
      // a byte changed in the stored pages of the second record: fetched fine, refused when verified
      const r = recs[1]!;
      const fd = fs.openSync(file, 'r+');
      const b = Buffer.alloc(1);
      fs.readSync(fd, b, 0, 1, r.off + 32 + 100);
      b[0]! ^= 0x40;
      fs.writeSync(fd, b, 0, 1, r.off + 32 + 100);
      fs.closeSync(fd);
      const img2 = openImage(file);
      const r2 = img2.model.tasks.flatMap((t) => t.mm!.vmas.flatMap((v) => img2.runsOf(v))).filter((x) => x.nstored > 0)[1]!;
      await img2.fetchRun(r2, 1);
      let err: unknown;
      try {
        img2.loadRun(r2, 1);
      } catch (e) {
        err = e;
      }
      expect((err as { code?: string }).code).toBe('CHECKSUM_MISMATCH');
      img2.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('corruption', () => {
  it('a flipped bit in any byte is reported, never accepted', async () => {
    const bytes = await toBytes(smallModel(2, { pages: 2, anonPages: 12 }));
    const recs = recordOffsets(bytes);
    // every byte outside page data, and a sample of page-data bytes
    // every header byte; a sample of the rest (page data sparsely)
    const headers = new Set<number>();
    for (const r of recs) for (let i = r.off; i < r.off + 32; i++) headers.add(i);
    const pageData = new Set<number>();
    for (const r of recs) if (r.kind === K.PAGES) for (let i = r.off + 32; i < r.off + 16 + r.len - 64; i++) pageData.add(i);
    // each flip of page data costs a full verify (~ms): sample about 400 of them, spread evenly
    const stride = Math.max(1, Math.floor(pageData.size / 400)) | 1;
    const codes = new Map<string, number>();
    for (let i = 0; i < bytes.length; i++) {
      if (!headers.has(i) && (pageData.has(i) ? i % stride !== 0 : i % 5 !== 0)) continue;
      const m = bytes.slice();
      m[i] ^= 1 << (i % 8);
      const c = codeOf(() => verifyImage(m));
      expect(c, `flip at ${i}`).not.toBe('OK');
      codes.set(c, (codes.get(c) ?? 0) + 1);
    }
    expect(codes.get('CHECKSUM_MISMATCH')).toBeGreaterThan(100);
    expect(codes.size).toBeGreaterThan(2);
  });

  it('truncation at every record boundary gives TRUNCATED', async () => {
    const bytes = await toBytes();
    const recs = recordOffsets(bytes);
    expect(recs.length).toBeGreaterThan(20);
    for (const r of recs)
      expect(
        codeOf(() => verifyImage(bytes.subarray(0, r.off))),
        `cut at ${r.off}`,
      ).toBe('TRUNCATED');
    for (const cut of [0, 3, 7, 8, 9, bytes.length - 1]) {
      const c = codeOf(() => verifyImage(bytes.subarray(0, cut)));
      expect(c === 'TRUNCATED' || (cut === 0 && c === 'TRUNCATED')).toBe(true);
    }
  });

  it('errors carry the byte offset', async () => {
    const bytes = await toBytes();
    const m = bytes.slice();
    const recs = recordOffsets(m);
    const target = recs[5]!;
    m[target.off + 20] ^= 0xff;
    try {
      verifyImage(m);
      expect.unreachable();
    } catch (e) {
      expect((e as CrimgError).code).toBe('CHECKSUM_MISMATCH');
      expect((e as CrimgError).offset).toBe(target.off);
      expect((e as CrimgError).line()).toMatch(/^CHECKSUM_MISMATCH: .*at offset \d+/);
    }
  });
});

describe('one test per error code', () => {
  it('BAD_MAGIC', async () => {
    const b = (await toBytes()).slice();
    b[0] = 0x7f;
    expect(codeOf(() => verifyImage(b))).toBe('BAD_MAGIC');
    expect(codeOf(() => verifyImage(new TextEncoder().encode('hello world, not an image')))).toBe('BAD_MAGIC');
  });
  it('WRONG_ARCH', async () => {
    const b = (await toBytes()).slice();
    b[4] = 183; // EM_AARCH64
    expect(codeOf(() => verifyImage(b))).toBe('WRONG_ARCH');
  });
  it('UNSUPPORTED_VERSION: newer minor or other major', async () => {
    const b = (await toBytes()).slice();
    b[7] = 1;
    expect(codeOf(() => verifyImage(b))).toBe('UNSUPPORTED_VERSION');
    const c = (await toBytes()).slice();
    c[6] = 2;
    expect(codeOf(() => verifyImage(c))).toBe('UNSUPPORTED_VERSION');
  });
  it('TRUNCATED', async () => {
    const b = await toBytes();
    expect(codeOf(() => verifyImage(b.subarray(0, b.length - 8)))).toBe('TRUNCATED');
  });
  it('CHECKSUM_MISMATCH', async () => {
    const b = (await toBytes()).slice();
    b[b.length - 60] ^= 4;
    expect(codeOf(() => verifyImage(b))).toBe('CHECKSUM_MISMATCH');
  });
  it('LIMIT_EXCEEDED: a length field larger than any record may be', async () => {
    const b = (await toBytes()).slice();
    new DataView(b.buffer).setUint32(8 + 4, 0xffffffff, true); // HEADER len
    expect(codeOf(() => verifyImage(b))).toBe('LIMIT_EXCEEDED');
  });
  it('BAD_RECORD: well-checksummed records in the wrong order', async () => {
    const sink = new MemorySink();
    const w = new RecordWriter(sink);
    await w.magic();
    await w.record(K.TASK, {
      pid: 1,
      tgid: 1,
      ppid: 0,
      pgid: 1,
      sid: 1,
      personality: 0,
      exitSignal: 17,
      nthreads: 0,
      nfiles: 0,
      nnocr: 0,
      hasMm: 0,
      comm: 'x',
      exe: '',
      cwd: '',
      root: '',
      args: [],
      env: [],
    });
    await w.finish();
    expect(codeOf(() => verifyImage(sink.bytes()))).toBe('BAD_RECORD');
  });
  it('BAD_RECORD: unknown must-understand kind; unknown optional kinds are skipped', async () => {
    const model = smallModel();
    for (const [flags, want] of [
      [1, 'BAD_RECORD'],
      [0, 'OK'],
    ] as const) {
      const sink = new MemorySink();
      const w = new RecordWriter(sink);
      await w.magic();
      await w.raw(0x6001, new Uint8Array([1, 2, 3]), flags);
      // an otherwise empty image: HEADER with no tasks follows the unknown record
      await w.record(K.HEADER, { ...model.header, ...model.header.uts, ntasks: 0, nns: 0, checksumAlgo: 1, pageSize: 4096 });
      await w.finish();
      expect(codeOf(() => verifyImage(sink.bytes()))).toBe(want);
    }
  });
  it('IO', () => {
    expect(codeOf(() => verifyImage('/nonexistent/crimg/image'))).toBe('IO');
  });
  it('NOT_FOUND and UNMAPPED come from readMemory (tested above); every code has its doc text', () => {
    for (const [code, text] of Object.entries(ERROR_CODES)) {
      expect(text.length, code).toBeGreaterThan(20);
    }
  });
});

describe('sinks', () => {
  it('a failed write leaves no file at the destination and no temp file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-'));
    try {
      const file = path.join(dir, 'x.crimg');
      const model = smallModel();
      model.tasks[0]!.threads[0]!.regs = new BigUint64Array(3); // invalid: writer must refuse
      await expect(writeImage(model, file)).rejects.toThrow(/registers/);
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  it('an unwritable destination is an IO error', async () => {
    await expect(writeImage(smallModel(), '/nonexistent-dir/x.crimg')).rejects.toMatchObject({ code: 'IO' });
  });
});

/** A source over bytes that also reads asynchronously; counts the bytes each kind of read fetched. */
function asyncSource(b: Uint8Array): { src: Source; count: { sync: number; async: number } } {
  const count = { sync: 0, async: 0 };
  const copy = (dst: Uint8Array, pos: number): number => {
    const n = Math.max(0, Math.min(dst.length, b.length - pos));
    dst.set(b.subarray(pos, pos + n));
    return n;
  };
  const src: Source = {
    name: 'bytes',
    size: b.length,
    pread(dst, pos) {
      const n = copy(dst, pos);
      count.sync += n;
      return n;
    },
    // the bytes land at once (as from a fast thread), the promise settles later
    preadAsync(dst, pos) {
      const n = copy(dst, pos);
      count.async += n;
      return new Promise((res) => setImmediate(() => res(n)));
    },
    close() {
      /* nothing */
    },
  };
  return { src, count };
}

/** What a verification ends with: OK, or code, offset and message of the error. */
async function outcome(f: () => unknown): Promise<string> {
  try {
    await f();
    return 'OK';
  } catch (e) {
    if (e instanceof CrimgError) return `${e.code} @${e.offset} ${e.message}`;
    throw e;
  }
}

describe('verifyImageAsync: bulk pass, then the grammar walk', () => {
  it('accepts an intact image with the same stats, page payloads read only by the bulk pass', async () => {
    const bytes = await toBytes(smallModel(2, { anonPages: 700 }));
    const want = verifyImage(bytes).stats;
    for (const chunk of [4096, 4100, 999, 1 << 20]) {
      const { src, count } = asyncSource(bytes);
      const r = await verifyBulk(src, {}, chunk, 0);
      expect(r.stats, `chunk ${chunk}`).toEqual(want);
      expect(count.async).toBe(bytes.length);
      // the grammar walk read headers, metadata and bitmaps only
      expect(count.sync).toBeLessThan(bytes.length / 4);
    }
  });

  it('reports the same error, offset and message as verifyImage for corrupted and truncated images', async () => {
    const bytes = await toBytes(smallModel(3, { pages: 3, anonPages: 40 }));
    const recs = recordOffsets(bytes);
    const variants: [string, Uint8Array][] = [];
    for (const r of recs) {
      for (let i = r.off; i < Math.min(r.off + 32, bytes.length); i++) {
        const m = bytes.slice();
        m[i]! ^= 1 << (i % 8);
        variants.push([`flip ${i}`, m]);
      }
      if (r.kind === K.PAGES) {
        for (const at of [r.off + 40, r.off + 16 + Math.floor(r.len / 2), r.off + 16 + r.len - 3]) {
          const m = bytes.slice();
          m[at]! ^= 0x10;
          variants.push([`flip ${at} in PAGES`, m]);
        }
      }
      variants.push([`cut at ${r.off}`, bytes.subarray(0, r.off)], [`cut at ${r.off + 20}`, bytes.subarray(0, r.off + 20)]);
    }
    // a page flip followed by an earlier structural error: the earlier one wins in both readers
    const pr = recs.filter((r) => r.kind === K.PAGES);
    const two = bytes.slice();
    two[pr[pr.length - 1]!.off + 100]! ^= 1;
    two[recs[1]!.off + 20]! ^= 1;
    variants.push(['two errors', two]);
    let failures = 0;
    for (const [vi, [what, m]] of variants.entries()) {
      const want = await outcome(() => verifyImage(m));
      if (want !== 'OK') failures++;
      const chunk = [4100, 999, 64 * 1024][vi % 3]!; // reads that end inside headers, payloads and bitmaps
      expect(await outcome(() => verifyBulk(asyncSource(m).src, {}, chunk, 0)), `${what}, chunk ${chunk}`).toBe(want);
    }
    expect(failures).toBeGreaterThan(variants.length * 0.9);
  });

  it('reads files with preadAsync; sources without it and small files take one pass', async () => {
    const bytes = await toBytes(smallModel(4, { anonPages: 500 }));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-vasync-'));
    try {
      const file = path.join(dir, 'a.crimg');
      fs.writeFileSync(file, bytes);
      const want = verifyImage(bytes).stats;
      expect((await verifyBulk(file, {}, 65536 + 8, 0)).stats).toEqual(want);
      expect((await verifyImageAsync(file)).stats).toEqual(want); // under the size threshold: one pass
      expect((await verifyImageAsync(bytes)).stats).toEqual(want); // bytes: no preadAsync
      const bad = bytes.slice();
      bad[bytes.length >> 1]! ^= 2;
      fs.writeFileSync(file, bad);
      const w = await outcome(() => verifyImage(bad));
      expect(w).toMatch(/^CHECKSUM_MISMATCH/);
      expect(await outcome(() => verifyBulk(file, {}, 65536 + 8, 0))).toBe(w);
      expect(await outcome(() => verifyBulk(path.join(dir, 'none'), {}, 65536, 0))).toMatch(/^IO/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
