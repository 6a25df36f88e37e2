import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crimg } from './helpers/cli.js';
import { REG_NAMES } from '../src/schema.js';
import { readImage, writeImage } from '../src/index.js';

let dir: string;
let img: string;
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-cli-'));
  img = path.join(dir, 'a.crimg');
  const r = crimg(['gen', '-o', img, '--size', '4MiB', '--tasks', '3', '--threads', '2', '--seed', '5', '--quiet']);
  expect(r.code, r.stderr).toBe(0);
});

const HEX = /^0x[0-9a-f]+$/;

describe('crimg show', () => {
  it('--json has the documented shape', () => {
    const r = crimg(['show', '--json', img]);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.tasks).toHaveLength(3);
    for (const t of doc.tasks) {
      for (const k of ['pid', 'tgid', 'ppid', 'comm', 'threads', 'vmas', 'files']) expect(t).toHaveProperty(k);
      expect(t.threads).toHaveLength(2);
      for (const th of t.threads) {
        expect(typeof th.tid).toBe('number');
        expect(Object.keys(th.regs)).toEqual([...REG_NAMES]);
        for (const v of Object.values(th.regs)) expect(v).toMatch(HEX);
        expect(th.fpu.mxcsr).toBe(0x1f80);
        expect(th.fpu.xmm).toHaveLength(16);
        for (const x of th.fpu.xmm) expect(x).toMatch(HEX);
      }
      for (const v of t.vmas) {
        expect(v.start).toMatch(HEX);
        expect(v.end).toMatch(HEX);
        expect(v.pgoff).toMatch(HEX);
        expect(v.prot).toMatch(/^[r-][w-][x-][ps]$/);
        expect(v.path === null || typeof v.path === 'string').toBe(true);
        expect(typeof v.pages).toBe('number');
      }
      for (const f of t.files) {
        expect(typeof f.fd).toBe('number');
        expect(['regular', 'directory', 'other']).toContain(f.kind);
        expect(f.pos).toMatch(HEX);
        expect(typeof f.flags).toBe('number');
        expect(typeof f.path).toBe('string');
      }
    }
    // rip in the text VMA, rsp in the stack
    const t0 = doc.tasks[0];
    const rip = BigInt(t0.threads[0].regs.rip),
      rsp = BigInt(t0.threads[0].regs.rsp);
    const inside = (a: bigint, pred: (v: { prot: string; path: string | null }) => boolean): boolean =>
      t0.vmas.some(
        (v: { start: string; end: string; prot: string; path: string | null }) => BigInt(v.start) <= a && a < BigInt(v.end) && pred(v),
      );
    expect(inside(rip, (v) => v.prot.includes('x'))).toBe(true);
    expect(inside(rsp, (v) => v.path === '[stack]')).toBe(true);
  });
  it('text form shows tasks, registers and VMAs', () => {
    const r = crimg(['show', img]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/task \d+ \(/);
    expect(r.stdout).toMatch(/rip=[0-9a-f]{16}/);
    expect(r.stdout).toMatch(/\[stack\]/);
  });
});

describe('crimg verify / stats / read', () => {
  it('verify exits 0 on a good image and 1 with code and offset on a bad one', () => {
    expect(crimg(['verify', img]).code).toBe(0);
    const bad = path.join(dir, 'bad.crimg');
    const b = fs.readFileSync(img);
    b[200] ^= 0x40;
    fs.writeFileSync(bad, b);
    const r = crimg(['verify', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^crimg: [A-Z_]+: .*at offset \d+/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    const d = crimg(['verify', '--debug', bad]);
    expect(d.stderr).toMatch(/\n\s+at /);
  });
  it('stats --json reports sizes and per-VMA breakdown', () => {
    const r = crimg(['stats', '--json', img]);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.checksum).toBe('xxh3-64');
    expect(s.fileBytes).toBe(fs.statSync(img).size);
    expect(s.pagesStored).toBeGreaterThan(0);
    expect(s.pagesZero).toBeGreaterThan(0);
    expect(s.tasks[0].vmas.length).toBeGreaterThan(5);
  });
  it('read returns memory bytes, zero for elided pages, and refuses unmapped ranges', () => {
    const doc = JSON.parse(crimg(['show', '--json', img]).stdout);
    const t = doc.tasks[0];
    const heap = t.vmas.find((v: { path: string }) => v.path === '[heap]');
    const r = crimg(['read', img, '--pid', String(t.pid), '--addr', heap.start, '--len', '8192']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.out.length).toBe(8192);
    const out = path.join(dir, 'mem.bin');
    const r2 = crimg(['read', img, '--pid', String(t.pid), '--addr', heap.start, '--len', '8192', '-o', out]);
    expect(r2.code).toBe(0);
    expect(fs.readFileSync(out).equals(r.out)).toBe(true);
    const bad = crimg(['read', img, '--pid', String(t.pid), '--addr', '0x1000', '--len', '16']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^crimg: UNMAPPED:/);
  });
});

describe('crimg diff', () => {
  it('exit 0 for identical, 1 with register names for different, 2 for trouble', () => {
    const b = path.join(dir, 'b.crimg');
    expect(crimg(['gen', '-o', b, '--size', '4MiB', '--tasks', '3', '--threads', '2', '--seed', '5', '--quiet']).code).toBe(0);
    expect(crimg(['diff', img, b]).code).toBe(0);
    const c = path.join(dir, 'c.crimg');
    expect(
      crimg([
        'gen',
        '-o',
        c,
        '--size',
        '4MiB',
        '--tasks',
        '3',
        '--threads',
        '2',
        '--seed',
        '5',
        '--series',
        '2',
        '--out-dir',
        path.join(dir, 's'),
        '--quiet',
      ]).code,
    ).toBe(2);
    expect(
      crimg(['gen', '--series', '2', '--out-dir', path.join(dir, 's'), '--size', '4MiB', '--tasks', '3', '--seed', '5', '--quiet']).code,
    ).toBe(0);
    const r = crimg(['diff', '--json', path.join(dir, 's', '000000.crimg'), path.join(dir, 's', '000001.crimg')]);
    expect(r.code).toBe(1);
    const d = JSON.parse(r.stdout);
    expect(d.same).toBe(false);
    expect(d.differences.some((x: { what: string }) => /memory 0x/.test(x.what))).toBe(true);
    expect(d.differences.some((x: { what: string }) => / rax$/.test(x.what))).toBe(true);
    expect(crimg(['diff', img, path.join(dir, 'missing.crimg')]).code).toBe(2);
  });
});

describe('crimg diff of a process and its restored copy (new pids)', () => {
  it('pairs tasks and threads in order and reports only the pid fields', async () => {
    const src = readImage(img);
    const m = src.model;
    for (const t of m.tasks) {
      t.pid += 5000;
      t.tgid += 5000;
      if (t.ppid) t.ppid += 5000;
      t.pgid += 5000;
      t.sid += 5000;
      for (const th of t.threads) th.tid += 5000;
    }
    const moved = path.join(dir, 'moved.crimg');
    await writeImage(m, moved);
    src.close();
    const r = crimg(['diff', '--json', img, moved]);
    expect(r.code, r.stderr).toBe(1);
    const whats: string[] = JSON.parse(r.stdout).differences.map((x: { what: string }) => x.what);
    expect(whats.length).toBeGreaterThan(0);
    for (const w of whats) expect(w).toMatch(/^task \d+\/\d+(\.(pid|tgid|ppid|pgid|sid)| thread \d+ tid)$/);
    expect(whats).toContain('task 1/5001.pid');
    expect(whats).toContain('task 1/5001 thread 1 tid');
  });
});

describe('usage errors', () => {
  it('exit 2, one line, no stack trace', () => {
    for (const args of [
      ['gen'],
      ['gen', '-o', 'x', '--size', 'lots'],
      ['gen', '-o', 'x', '--zero-ratio', '2'],
      ['nosuchcommand'],
      ['read', img, '--pid', 'x', '--addr', '0', '--len', '1'],
      ['show'],
    ]) {
      const r = crimg(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(/^crimg: USAGE: /);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });
  it('--help exits 0', () => {
    expect(crimg(['--help']).code).toBe(0);
  });
});
