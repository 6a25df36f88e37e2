import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generate, resolveSpec } from '../src/gen/generate.js';
import { MemorySink, writeImage, readImage, verifyImage, CrimgError, VmaFlags, REG_INDEX } from '../src/index.js';
import { crimg } from './helpers/cli.js';

async function bytesOf(spec: Parameters<typeof generate>[0]): Promise<Buffer> {
  const s = new MemorySink();
  await writeImage(generate(spec), s);
  return Buffer.from(s.bytes());
}

describe('generate()', () => {
  it('is deterministic: the same spec and seed give identical bytes; other seeds differ', async () => {
    const spec = { seed: 11n, size: 2 << 20, tasks: 2, threads: 3 };
    const a = await bytesOf(spec),
      b = await bytesOf(spec),
      c = await bytesOf({ ...spec, seed: 12n });
    expect(a.equals(b)).toBe(true);
    expect(a.equals(c)).toBe(false);
    expect(verifyImage(a).ok).toBe(true);
  });

  it.each([3n, 11n, 12345n, 987654321n])('looks like a real process (seed %s)', (seed) => {
    const m = generate({ seed, size: 4 << 20, tasks: 4, fanout: 2, threads: 3 });
    expect(m.tasks).toHaveLength(4);
    expect(m.tasks[1]!.ppid).toBe(m.tasks[0]!.pid);
    expect(m.tasks[3]!.ppid).toBe(m.tasks[1]!.pid);
    for (const t of m.tasks) {
      const v = t.mm!.vmas;
      const paths = v.map((x) => x.path);
      for (const p of ['[heap]', '[stack]', '[vdso]', '[vvar]']) expect(paths).toContain(p);
      expect(paths.some((p) => p?.startsWith('/usr/lib/x86_64-linux-gnu/libc.so'))).toBe(true);
      for (let i = 1; i < v.length; i++) expect(v[i]!.start >= v[i - 1]!.end).toBe(true);
      expect(v.at(-1)!.end <= 0x7ffffffff000n).toBe(true); // canonical user-space addresses only
      for (const th of t.threads) {
        const rip = th.regs[REG_INDEX.rip]!,
          rsp = th.regs[REG_INDEX.rsp]!,
          fs_ = th.regs[REG_INDEX.fs_base]!;
        expect(v.some((x) => x.start <= rip && rip < x.end && x.prot & 4)).toBe(true);
        expect(v.some((x) => x.start <= rsp && rsp < x.end && (x.flags & VmaFlags.STACK || x.flags & VmaFlags.ANON))).toBe(true);
        expect(v.some((x) => x.start <= fs_ && fs_ < x.end && x.flags & VmaFlags.ANON)).toBe(true);
        const dv = new DataView(th.fpu.buffer, th.fpu.byteOffset, th.fpu.byteLength);
        expect(dv.getUint16(0, true)).toBe(0x37f);
        expect(dv.getUint32(24, true)).toBe(0x1f80);
      }
    }
  });

  it('honours size, zero ratio and content kinds', async () => {
    const img = readImage(await bytesOf({ seed: 5n, size: 8 << 20, zeroRatio: 0.5 }));
    const total = img.stats.pagesStored + img.stats.pagesZero;
    expect(total).toBeGreaterThanOrEqual(2048 * 0.95);
    expect(total).toBeLessThanOrEqual(2048 * 1.05);
    expect(img.stats.pagesZero / total).toBeGreaterThan(0.4);
    expect(img.stats.pagesZero / total).toBeLessThan(0.6);
    img.close();
  });

  it('an incremental series changes about the dirty ratio of pages between neighbours', async () => {
    const spec = { seed: 9n, size: 4 << 20, zeroRatio: 0, dirtyRatio: 0.2 };
    const a = readImage(await bytesOf({ ...spec, epoch: 3 }));
    const b = readImage(await bytesOf({ ...spec, epoch: 4 }));
    const t = a.model.tasks[0]!;
    const heap = [...t.mm!.vmas].sort((p, q) => Number(q.end - q.start - (p.end - p.start)))[0]!; // the largest VMA
    const n = Math.min(256, Number((heap.end - heap.start) / 4096n));
    expect(n).toBeGreaterThan(100);
    const x = a.readMemory(t.pid, heap.start, n * 4096),
      y = b.readMemory(t.pid, heap.start, n * 4096);
    let changed = 0;
    for (let i = 0; i < n; i++)
      if (!Buffer.from(x.subarray(i * 4096, (i + 1) * 4096)).equals(Buffer.from(y.subarray(i * 4096, (i + 1) * 4096)))) changed++;
    expect(changed / n).toBeGreaterThan(0.1);
    expect(changed / n).toBeLessThan(0.3);
    a.close();
    b.close();
  });

  it('gives the same bytes as the format and generator always did (pinned XXH3-64 of whole images)', async () => {
    const { xxh3 } = await import('@node-rs/xxhash');
    const pinned: [Parameters<typeof generate>[0], number, bigint][] = [
      [{ seed: 1, size: 0 }, 11744, 0x2ed1d5ccec878c4cn],
      [{ seed: 5, size: 64 * 1024 }, 56384, 0xbf17ae823e7813a4n],
      [{ seed: 123456789n, size: 3 << 20 }, 2261120, 0xd0d29639ddadfe9dn],
      [{ seed: 3, size: 8 << 20, tasks: 5, threads: 3, fanout: 2 }, 5931848, 0xe26117bd6a15658en],
      [{ seed: 9, size: 4 << 20, content: 'text', epoch: 3, dirtyRatio: 0.2 }, 2958160, 0xbf669926e530ca8dn],
      [
        { seed: 10, size: 4 << 20, content: 'pattern', zeroRatio: 0, dupRatio: 0.5, namespaces: false, files: 7, vmas: 9 },
        4207088,
        0xef4d5521a4b3e758n,
      ],
    ];
    for (const [spec, bytes, hash] of pinned) {
      const b = await bytesOf(spec);
      expect(b.length).toBe(bytes);
      expect(xxh3.xxh64(b)).toBe(hash);
    }
  });

  it('rejects bad specs with BAD_SPEC', () => {
    for (const bad of [{ tasks: 0 }, { zeroRatio: 1.5 }, { size: -1 }, { content: 'zebra' as never }]) {
      expect(() => resolveSpec(bad)).toThrow(CrimgError);
      try {
        resolveSpec(bad);
      } catch (e) {
        expect((e as CrimgError).code).toBe('BAD_SPEC');
      }
    }
  });
});

describe('crimg gen', () => {
  it('shards give the same bytes as one machine', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-gen-'));
    try {
      const common = ['--count', '5', '--size', '1MiB', '--seed', '77', '--quiet'];
      expect(crimg(['gen', ...common, '--out-dir', path.join(dir, 'all')]).code).toBe(0);
      for (const s of ['0/2', '1/2']) expect(crimg(['gen', ...common, '--out-dir', path.join(dir, 'sh'), '--shard', s]).code).toBe(0);
      for (const s of ['0/3', '1/3', '2/3'])
        expect(crimg(['gen', ...common, '--out-dir', path.join(dir, 'sh3'), '--shard', s]).code).toBe(0);
      const all = fs.readdirSync(path.join(dir, 'all')).sort();
      expect(all).toHaveLength(5);
      expect(fs.readdirSync(path.join(dir, 'sh')).sort()).toEqual(all);
      for (const f of all) {
        const a = fs.readFileSync(path.join(dir, 'all', f));
        expect(fs.readFileSync(path.join(dir, 'sh', f)).equals(a)).toBe(true);
        expect(fs.readFileSync(path.join(dir, 'sh3', f)).equals(a)).toBe(true);
      }
      expect(fs.readFileSync(path.join(dir, 'all', all[0]!)).equals(fs.readFileSync(path.join(dir, 'all', all[1]!)))).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  it('--series writes neighbours that diff only in page contents; each verifies', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-series-'));
    try {
      const r = crimg(['gen', '--series', '3', '--out-dir', dir, '--size', '2MiB', '--dirty-ratio', '0.05', '--seed', '5', '--quiet']);
      expect(r.code, r.stderr).toBe(0);
      const files = fs.readdirSync(dir).sort();
      expect(files).toEqual(['000000.crimg', '000001.crimg', '000002.crimg']);
      for (const f of files) expect(crimg(['verify', path.join(dir, f)]).code).toBe(0);
      const d = crimg(['diff', path.join(dir, files[0]!), path.join(dir, files[1]!), '--json']);
      expect(d.code, d.stderr).toBe(1);
      const j = JSON.parse(d.stdout);
      // a running process between checkpoints: some memory ranges and registers change, nothing else
      const whats: string[] = j.differences.map((x: { what: string }) => x.what);
      expect(whats.some((w) => /^task \d+ memory 0x[0-9a-f]+-0x[0-9a-f]+$/.test(w))).toBe(true);
      expect(whats.every((w) => /^task \d+ (memory 0x|thread \d+ [a-z0-9_]+$)/.test(w))).toBe(true);
      // usage: --series without --out-dir, and -o together with --count
      expect(crimg(['gen', '--series', '2']).code).toBe(2);
      expect(crimg(['gen', '-o', path.join(dir, 'x'), '--count', '2', '--out-dir', dir]).code).toBe(2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--json summary and /dev/null output', () => {
    const r = crimg(['gen', '-o', '/dev/null', '--size', '2MiB', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d.images[0].bytes).toBeGreaterThan(1 << 20);
    expect(d.images[0].imageCsum).toMatch(/^0x[0-9a-f]+$/);
  });
});
