import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  type Model,
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
  showText,
} from '../src/index.js';
import { claimRegion, releaseRegion } from '../src/kernels/arena.js';
import { ERROR_CODES } from '../src/errors.js';
import { verifyBulk } from '../src/reader.js';
import type { Source } from '../src/source.js';
import { flatten, smallModel } from './helpers/models.js';

/** The error reading the image of `model` throws (undefined when it reads). */
async function readError(model: Model): Promise<unknown> {
  try {
    readImage(await toBytes(model));
  } catch (e) {
    return e;
  }
  return undefined;
}

/** With obj[key] set to `value` the image of `model` is refused (BAD_RECORD matching `why`); obj[key] is put back. */
async function refusedWith<T extends object, K extends keyof T>(model: Model, obj: T, key: K, value: T[K], why: RegExp): Promise<void> {
  const keep = obj[key];
  obj[key] = value;
  const err = await readError(model);
  obj[key] = keep;
  expectBadRecord(err, why);
}

/** A BAD_RECORD error whose text matches `why`. */
function expectBadRecord(err: unknown, why: RegExp): void {
  expect((err as { code?: string }).code, String(why)).toBe('BAD_RECORD');
  expect((err as Error).message).toMatch(why);
}

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

  it('optional records: signal dispositions (SIGACTS), interval timers (ITIMERS), per-thread futex state (FUTEX) and alternate signal stacks (SIGALTSTACK) round-trip; absent stays absent', async () => {
    const k = kernels();
    const scratch = claimRegion(k, 400 * 4096);
    try {
      const model = smallModel(4);
      const t = model.tasks[0]!;
      expect(t.sigactions).toBeUndefined();
      const plainImg = readImage(await toBytes(model));
      expect(plainImg.model.tasks[0]!.sigactions).toBeUndefined();
      expect(plainImg.model.tasks[0]!.threads.every((th) => th.futex === undefined)).toBe(true);
      plainImg.close();
      t.sigactions = [
        { sig: 10, handler: 0x401000n, flags: 0x14000004n, restorer: 0x7f0000001000n, mask: 2n },
        { sig: 13, handler: 1n, flags: 0n, restorer: 0n, mask: 0n },
      ];
      t.threads[0]!.futex = { clearChildTid: 0x7f00000002d0n, robustHead: 0x7f00000002e0n, robustLen: 24n };
      t.threads[0]!.sigaltstack = { sp: 0x7f0000100000n, size: 65536n, flags: 0x80000000 };
      t.itimers = [
        { which: 0, intervalUs: 20_000n, valueUs: 0n },
        { which: 2, intervalUs: 0n, valueUs: 1_500_000n },
      ];
      const bytes = await toBytes(model);
      const img = readImage(bytes);
      expect(img.model.tasks[0]!.sigactions).toEqual(t.sigactions);
      expect(img.model.tasks[0]!.threads[0]!.futex).toEqual(t.threads[0]!.futex);
      expect(img.model.tasks[0]!.threads[0]!.sigaltstack).toEqual(t.threads[0]!.sigaltstack);
      expect(img.model.tasks[0]!.itimers).toEqual(t.itimers);
      expect(flatten(img.model, k, scratch)).toEqual(flatten(model, k, scratch));
      expect(Buffer.from(await toBytes(img.model)).equals(Buffer.from(bytes))).toBe(true);
      img.close();
      // interval timers the reader refuses: unknown kind, out of order, disarmed
      for (const [bad, why] of [
        [[{ which: 3, intervalUs: 1n, valueUs: 1n }], /interval timer 3 is none of/],
        [
          [
            { which: 1, intervalUs: 1n, valueUs: 1n },
            { which: 0, intervalUs: 1n, valueUs: 1n },
          ],
          /interval timer 0 out of order/,
        ],
        [[{ which: 0, intervalUs: 0n, valueUs: 0n }], /interval timer 0 recorded disarmed/],
      ] as const) {
        t.itimers = bad.map((x) => ({ ...x }));
        const err = await readError(model);
        expectBadRecord(err, why);
      }
      t.itimers = undefined;
      // POSIX timers: round trip (a negative clock: glibc's CLOCK_PROCESS_CPUTIME_ID), then what the reader refuses
      const tid = t.threads[0]!.tid;
      t.posixTimers = [
        { id: 0, clock: 1, notify: 0, notifyTid: 0, signo: 10, sigevValue: 0x5eedn, intervalNs: 10_000_000n, valueNs: 3_000_000n },
        { id: 2, clock: -6, notify: 1, notifyTid: 0, signo: 0, sigevValue: 0n, intervalNs: 0n, valueNs: 0n },
        { id: 7, clock: 7, notify: 4, notifyTid: tid, signo: 12, sigevValue: 77n, intervalNs: 15_000_000n, valueNs: 0n },
      ];
      const pimg = readImage(await toBytes(model));
      expect(pimg.model.tasks[0]!.posixTimers).toEqual(t.posixTimers);
      expect(showText(pimg.model, pimg)).toContain('timer 7 clock 7 SIGUSR2 to thread');
      pimg.close();
      const good = t.posixTimers.map((x) => ({ ...x }));
      for (const [bad, why] of [
        [[good[1], good[0]], /POSIX timer 0 out of order/],
        [[{ ...good[0]!, clock: 3 }], /clock 3 is not one/],
        [[{ ...good[0]!, clock: -2 }], /clock -2 is not one/],
        [[{ ...good[0]!, notify: 2 }], /notify 2 is none of/],
        [[{ ...good[0]!, notifyTid: 5 }], /notify tid 5 with notify 0/],
        [[{ ...good[2]!, notifyTid: tid + 1000 }], /notifies thread \d+, which is not a thread/],
        [[{ ...good[0]!, signo: 65 }], /signal 65/],
        [[{ ...good[0]!, signo: 0 }], /signal 0/],
      ] as const) {
        t.posixTimers = bad.map((x) => ({ ...x! }));
        const err = await readError(model);
        expectBadRecord(err, why);
      }
      t.posixTimers = undefined;
      // file locks: round trip on the regular file (fd 3) and the directory (fd 4), then what the reader refuses
      const EOF = 0xffffffffffffffffn;
      const [devnull, data, tmpdir] = [t.files[0]!, t.files[1]!, t.files[2]!];
      data.locks = [
        { kind: 2, write: false, start: 10n, end: 29n },
        { kind: 2, write: true, start: 100n, end: EOF },
        { kind: 3, write: true, start: 0n, end: 4095n },
      ];
      tmpdir.locks = [{ kind: 1, write: false, start: 0n, end: EOF }];
      const limg = readImage(await toBytes(model));
      expect(limg.model.tasks[0]!.files.map((f) => f.locks)).toEqual([undefined, data.locks, tmpdir.locks]);
      expect(showText(limg.model, limg)).toContain('lock POSIX write 100..EOF');
      limg.close();
      for (const [f, bad, why] of [
        [data, [{ kind: 4, write: true, start: 0n, end: 1n }], /lock kind 4 is none of/],
        [data, [{ kind: 2, write: true, start: 5n, end: 4n }], /lock range 5\.\.4/],
        [data, [{ kind: 1, write: true, start: 0n, end: 100n }], /a flock lock covers the whole file/],
        [devnull, [{ kind: 1, write: true, start: 0n, end: EOF }], /locks on fd 0, which is not a regular file or directory/],
      ] as const) {
        await refusedWith(
          model,
          f,
          'locks',
          bad.map((x) => ({ ...x })),
          why,
        );
      }
      data.locks = undefined;
      tmpdir.locks = undefined;
      // eventfd, timerfd, signalfd, epoll: round trip, then what the reader refuses
      const anonFile = (fd: number, what: string, kind: number, values: bigint[]): (typeof t.files)[number] => ({
        fd,
        kind: 2,
        path: `anon_inode:[${what}]`,
        flags: 0o4002,
        pos: 0n,
        mode: 0o600,
        cloexec: fd === 13,
        devMajor: 0,
        devMinor: 15,
        inode: 1000n + BigInt(fd),
        size: 0n,
        anon: { kind, values },
      });
      const nfiles = t.files.length;
      t.files.push(
        anonFile(10, 'eventfd', 1, [5n, 1n]),
        anonFile(11, 'timerfd', 2, [1n, 0n, 10_000_000n, 3_000_000n, 2n]),
        anonFile(12, 'signalfd', 3, [1n << 9n]),
        anonFile(13, 'eventpoll', 4, [11n, 0x19n, 111n, 12n, 0x80000019n, 222n]),
      );
      const aimg = readImage(await toBytes(model));
      expect(aimg.model.tasks[0]!.files.slice(nfiles)).toEqual(t.files.slice(nfiles));
      expect(showText(aimg.model, aimg)).toContain('epoll 11 25 111 12 2147483673 222');
      aimg.close();
      for (const [i, values, why] of [
        [0, [5n], /1 values for a kind 1 file, expected 2/],
        [0, [5n, 2n], /eventfd count 5 \/ semaphore 2/],
        [1, [3n, 0n, 0n, 0n, 0n], /timerfd clock 3/],
        [3, [11n, 1n], /not \(fd, events, data\) triples/],
        [3, [99n, 1n, 0n], /watches fd 99, which the task does not have/],
        [3, [13n, 1n, 0n], /watches another epoll/],
      ] as const) {
        const f = t.files[nfiles + i]!;
        await refusedWith(model, f.anon!, 'values', [...values], why);
      }
      t.files[nfiles]!.anon!.kind = 9;
      await expect((async () => readImage(await toBytes(model)))()).rejects.toThrow(/kind 9 is none of/);
      t.files.splice(nfiles);
      // inotify: round trip, then what the reader refuses
      const ino: (typeof t.files)[number] = {
        fd: 30,
        kind: 2,
        path: 'anon_inode:inotify',
        flags: 0,
        pos: 0n,
        mode: 0o600,
        cloexec: false,
        devMajor: 0,
        devMinor: 15,
        inode: 7n,
        size: 0n,
        inotify: [
          { wd: 1, mask: 2, path: '/tmp/a' },
          { wd: 3, mask: 0x80000100, path: '/tmp' },
        ],
      };
      t.files.push(ino);
      const iimg = readImage(await toBytes(model));
      expect(iimg.model.tasks[0]!.files.at(-1)).toEqual(ino);
      expect(showText(iimg.model, iimg)).toContain('inotify wd 3 mask 0x80000100 /tmp');
      iimg.close();
      for (const [watches, why] of [
        [
          [
            { wd: 3, mask: 2, path: '/a' },
            { wd: 1, mask: 2, path: '/b' },
          ],
          /wd 1 out of order/,
        ],
        [[{ wd: 0, mask: 2, path: '/a' }], /wd 0 out of order/],
        [[{ wd: 1, mask: 2, path: 'rel' }], /watch 1 with mask 2 on 'rel'/],
      ] as const) {
        ino.inotify = watches.map((w) => ({ ...w }));
        const err = await readError(model);
        expectBadRecord(err, why);
      }
      t.files.splice(nfiles);
      // a listening TCP socket: round trip (IPv6), then what the reader refuses
      const lst: (typeof t.files)[number] = {
        fd: 31,
        kind: 2,
        path: 'socket:[77]',
        flags: 2,
        pos: 0n,
        mode: 0o140777,
        cloexec: true,
        devMajor: 0,
        devMinor: 8,
        inode: 77n,
        size: 0n,
        tcpListen: { family: 10, addr: new Uint8Array(16).fill(0).map((_, i) => (i === 15 ? 1 : 0)), port: 8080, backlog: 128, opts: 5 },
      };
      t.files.push(lst);
      const limg2 = readImage(await toBytes(model));
      expect(limg2.model.tasks[0]!.files.at(-1)).toEqual(lst);
      expect(showText(limg2.model, limg2)).toContain(':8080 backlog 128');
      limg2.close();
      for (const [change, why] of [
        [{ family: 2 }, /family 2 with a 16-byte address/],
        [{ port: 0 }, /port 0/],
        [{ opts: 8 }, /options 8/],
      ] as const) {
        await refusedWith(model, lst, 'tcpListen', { ...lst.tcpListen!, ...change }, why);
      }
      t.files.splice(nfiles);
      // socket pairs: round trip, then what the reader refuses
      const sockFile = (fd: number, second: boolean, type: number, data?: string): (typeof t.files)[number] => ({
        fd,
        kind: 2,
        path: `socket:[${900 + fd}]`,
        flags: 2,
        pos: 0n,
        mode: 0o140777,
        cloexec: false,
        devMajor: 0,
        devMinor: 8,
        inode: 900n + BigInt(fd),
        size: 0n,
        unixPair: { pair: 920n, second, type, ...(data ? { data: new TextEncoder().encode(data) } : {}) },
      });
      t.files.push(sockFile(20, false, 1, 'to-a'), sockFile(21, true, 1, 'to-b'));
      const simg = readImage(await toBytes(model));
      expect(simg.model.tasks[0]!.files.slice(nfiles)).toEqual(t.files.slice(nfiles));
      expect(showText(simg.model, simg)).toContain('socket pair 920 (second), type 1, 4 bytes queued');
      simg.close();
      for (const [i, change, why] of [
        [1, { type: 2, data: undefined }, /differ in type/],
        [0, { type: 2 }, /bytes queued to a socket of type 2/],
        [0, { type: 3 }, /socket type 3 is none of/],
        [1, { pair: 921n }, /whose other socket the task does not have/],
      ] as const) {
        const f = t.files[nfiles + i]!;
        await refusedWith(model, f, 'unixPair', { ...f.unixPair!, ...change }, why);
      }
      t.files.splice(nfiles);
      // pipes: round trip (the bytes on the first fd of a pipe), then what the reader refuses
      const pipeFile = (fd: number, write: boolean, data?: string): (typeof t.files)[number] => ({
        fd,
        kind: 2,
        path: 'pipe:[4242]',
        flags: write ? 1 : 0o4000,
        pos: 0n,
        mode: 0o10600,
        cloexec: false,
        devMajor: 0,
        devMinor: 14,
        inode: 4242n,
        size: 0n,
        pipe: { ino: 4242n, write, size: 131072, ...(data ? { data: new TextEncoder().encode(data) } : {}) },
      });
      t.files.push(pipeFile(20, false, 'hello-pipe'), pipeFile(21, true));
      const pimg2 = readImage(await toBytes(model));
      expect(pimg2.model.tasks[0]!.files.slice(nfiles)).toEqual(t.files.slice(nfiles));
      pimg2.close();
      for (const [i, change, why] of [
        [1, { data: new Uint8Array([1]) }, /fd 21 carries bytes of pipe 4242, whose lowest fd is 20/],
        [1, { size: 65536 }, /fd 21 gives pipe 4242 capacity 65536, fd 20 131072/],
        [0, { size: 5000 }, /pipe capacity 5000/],
        [0, { size: 4096, data: new Uint8Array(4097) }, /4097 bytes buffered in a pipe of 4096/],
      ] as const) {
        const f = t.files[nfiles + i]!;
        await refusedWith(model, f, 'pipe', { ...f.pipe!, ...change }, why);
      }
      t.files.splice(nfiles);
      // dispositions the reader refuses: out of range, out of order, a SIG_DFL entry
      for (const [bad, why] of [
        [[{ sig: 65, handler: 1n, flags: 0n, restorer: 0n, mask: 0n }], /signal 65 out of range/],
        [
          [
            { sig: 12, handler: 1n, flags: 0n, restorer: 0n, mask: 0n },
            { sig: 10, handler: 1n, flags: 0n, restorer: 0n, mask: 0n },
          ],
          /signal 10 out of order/,
        ],
        [[{ sig: 15, handler: 0n, flags: 0n, restorer: 0n, mask: 0n }], /signal 15 recorded with SIG_DFL/],
      ] as const) {
        t.sigactions = bad.map((x) => ({ ...x }));
        expectBadRecord(await readError(model), why);
      }
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
    const file = path.join(dir, 'a.crimg');
    const r = await writeImage(smallModel(9), file);
    expect(fs.readdirSync(dir)).toEqual(['a.crimg']);
    expect(fs.statSync(file).size).toBe(r.bytes);
    expect(Buffer.from(fs.readFileSync(file)).equals(Buffer.from(await toBytes(smallModel(9))))).toBe(true);
    expect(verifyImage(file).stats.records).toBe(r.records);
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
    const file = path.join(dir, 'x.crimg');
    const model = smallModel();
    model.tasks[0]!.threads[0]!.regs = new BigUint64Array(3); // invalid: writer must refuse
    await expect(writeImage(model, file)).rejects.toThrow(/registers/);
    expect(fs.readdirSync(dir)).toEqual([]);
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
