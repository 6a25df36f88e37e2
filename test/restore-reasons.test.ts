/** Restore reasons: one documented table of codes, structured locations, no parsing of dump-time reason text. */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generate } from '../src/gen/generate.js';
import { FdKind, VmaFlags, writeImage, type Model, type OpenFile, type Task, type Vma } from '../src/index.js';
import { STDIO_DUMP_HINT, checkTask, pickTask } from '../src/restore/check.js';
import { RESTORE_CODES, formatReasons, reason, whereOf } from '../src/restore/reasons.js';
import { crimg } from './helpers/cli.js';

const SRC = 'src/restore';
const sources = (): [string, string][] =>
  fs
    .readdirSync(SRC)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => [f, fs.readFileSync(path.join(SRC, f), 'utf8')]);

describe('the restore reason table', () => {
  it('docs/RESTORE-REASONS.md (and docs/ERRORS.md) are generated from it and current', () => {
    execFileSync(process.execPath, ['scripts/gen-errors.mjs', '--check'], { stdio: 'pipe' });
    const text = fs.readFileSync('docs/RESTORE-REASONS.md', 'utf8');
    for (const [code, meaning] of Object.entries(RESTORE_CODES)) expect(text, code).toContain(`| \`${code}\` | ${meaning} |`);
    expect(fs.readFileSync('docs/RESTORE.md', 'utf8')).toContain('(RESTORE-REASONS.md)');
  });

  it('holds every code src/restore reports, and only those', () => {
    const used = new Set<string>();
    for (const [, text] of sources()) for (const m of text.matchAll(/\b(?:reason|add)\(\s*'([A-Z][A-Z0-9_]*)'/g)) used.add(m[1]!);
    expect(used.size).toBeGreaterThan(10); // the scan finds the reasons
    for (const code of used) expect(Object.keys(RESTORE_CODES), `${code} is used in ${SRC} but not in RESTORE_CODES`).toContain(code);
    for (const code of Object.keys(RESTORE_CODES)) expect([...used], `${code} is in RESTORE_CODES but never reported`).toContain(code);
  });

  it('reasons are made only through reason() (where derived from at) and no reason text is parsed', () => {
    for (const [file, text] of sources()) {
      if (file === 'reasons.ts') continue;
      expect(text, file).not.toMatch(/\bwhere:\s*['`]/); // a hand-made { code, where, text }
      expect(text, file).not.toMatch(/\.test\(\s*\w+\.text\b/);
      expect(text, file).not.toMatch(/\.text\.(match|replace|search|split)\(/);
      expect(text, file).not.toMatch(/\.exec\(\s*\w+\.text\b/);
    }
  });
});

/** A generated single-task model with its task (real files aside: reasons about them are filtered out below). */
function model(): { m: Model; t: Task } {
  const m = generate({ seed: 5n, size: 1 << 20, tasks: 1, threads: 2 });
  return { m, t: m.tasks[0]! };
}

const vvarOf = (t: Task): Vma => t.mm!.vmas.find((v) => v.path === '[vvar]')!;
const codes = (m: Model, t: Task, opts = {}): string[] => checkTask(m, t, opts).map((r) => r.code);

describe('reasons recorded at dump time', () => {
  it('DEVICE_MEMORY is let through when it can only be about [vvar], decided from the VMAs and not the text', () => {
    const { m, t } = model();
    expect(vvarOf(t)).toBeDefined();
    t.nocr = [{ code: 'DEVICE_MEMORY', pid: t.pid, text: 'mapping 0x1000-0x2000 (/dev/fb0) maps device memory' }];
    expect(codes(m, t)).not.toContain('NOCR'); // the text names a device: no matter, the task maps none
    // more of them than the task has vvar mappings: at least one is about something else
    const vvars = t.mm!.vmas.filter((v) => v.flags & VmaFlags.VVAR || v.path === '[vvar]' || v.path === '[vvar_vclock]').length;
    t.nocr = Array.from({ length: vvars + 1 }, () => ({
      code: 'DEVICE_MEMORY',
      pid: t.pid,
      text: 'mapping (0x0-0x1000 ([vvar])) maps device memory',
    }));
    expect(codes(m, t).filter((c) => c === 'NOCR')).toHaveLength(vvars + 1);
    // the task maps a device file: the reason stands, whatever its text says
    t.nocr = [{ code: 'DEVICE_MEMORY', pid: t.pid, text: 'mapping 0x0-0x1000 ([vvar]) maps device memory' }];
    const v = t.mm!.vmas.find((x) => !(x.flags & VmaFlags.ANON) && x.path?.startsWith('/'))!;
    v.path = '/dev/null';
    const rs = checkTask(m, t).filter((r) => r.code === 'NOCR');
    expect(rs).toHaveLength(1);
    expect(rs[0]).toMatchObject({
      at: { of: 'dump', task: t.pid },
      where: `task ${t.pid}`,
      text: 'recorded at dump time: DEVICE_MEMORY: mapping 0x0-0x1000 ([vvar]) maps device memory',
    });
  });

  it('STDIO asks for --inherit-stdio (without the hint dump gave) and goes away with it; on a thread it names the thread', () => {
    const { m, t } = model();
    const tid = t.threads[1]!.tid;
    t.nocr = [{ code: 'STDIO', pid: tid, text: `fd 1 is a pipe also held by process 7${STDIO_DUMP_HINT}` }];
    const [r] = checkTask(m, t).filter((x) => x.code === 'STDIO');
    expect(r).toEqual({
      code: 'STDIO',
      at: { of: 'dump', task: t.pid, thread: tid },
      where: `task ${tid}`,
      text: "fd 1 is a pipe also held by process 7: restore with --inherit-stdio to give the task crimg's own",
    });
    expect(codes(m, t, { inheritStdio: true })).not.toContain('STDIO');
  });

  it('the hint is the one crimg check writes (one constant, used by both)', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the source text of inspect.ts
    expect(fs.readFileSync('src/live/inspect.ts', 'utf8')).toContain('${STDIO_DUMP_HINT}');
    expect(fs.readFileSync('src/restore/check.ts', 'utf8')).toContain("from '../kinds/live.js'");
  });
});

describe('structured locations', () => {
  it('each reason has at (task, thread, fd, vma, path) and the where restore --check prints, derived from it', () => {
    const { m, t } = model();
    t.exe = '/nonexistent/crimg-exe';
    t.cwd = '/nonexistent/crimg-cwd';
    t.root = '/srv/jail';
    const th = t.threads[1]!;
    th.regs[17] = 0x23n;
    const v = t.mm!.vmas.find((x) => x.flags & VmaFlags.ANON)!;
    v.flags |= VmaFlags.HUGETLB;
    const f: OpenFile = {
      fd: 7,
      kind: FdKind.REGULAR,
      path: '/nonexistent/crimg-file',
      flags: 0,
      pos: 0n,
      mode: 0o100644,
      cloexec: false,
      devMajor: 0,
      devMinor: 0,
      inode: 1n,
      size: 0n,
    };
    t.files = [f];
    const rs = checkTask(m, t);
    const by = (code: string): unknown => rs.find((r) => r.code === code);
    expect(by('SYNTHETIC')).toEqual({ code: 'SYNTHETIC', at: { of: 'image', task: 0 }, where: 'image', text: expect.any(String) });
    expect(by('EXE_MISSING')).toMatchObject({ at: { of: 'exe', task: t.pid, path: t.exe }, where: 'exe' });
    expect(by('CWD_MISSING')).toMatchObject({ at: { of: 'cwd', task: t.pid, path: t.cwd }, where: 'cwd' });
    expect(by('ROOT')).toMatchObject({ at: { of: 'root', task: t.pid, path: '/srv/jail' }, where: 'root' });
    expect(by('REGS')).toMatchObject({ at: { of: 'thread', task: t.pid, thread: th.tid }, where: `thread ${th.tid}` });
    const hex = (x: bigint): string => `0x${x.toString(16)}`;
    expect(by('VMA_UNSUPPORTED')).toMatchObject({
      at: { of: 'vma', task: t.pid, vma: v.start, end: v.end },
      where: `vma ${hex(v.start)}-${hex(v.end)}${v.path ? ` ${v.path}` : ''}`,
    });
    expect(by('FILE_MISSING')).toMatchObject({ at: { of: 'fd', task: t.pid, fd: 7, path: '/nonexistent/crimg-file' }, where: 'fd 7' });
    for (const r of rs) expect(r.where, r.code).toBe(whereOf(r.at));
  });

  it('picking the task: a pid the image lacks, several tasks', () => {
    const m = generate({ seed: 6n, size: 1 << 20, tasks: 2 });
    expect(pickTask(m, 999999).reasons).toEqual([reason('TASKS', { of: 'pid', task: 999999 }, 'the image has no task with pid 999999')]);
    expect(pickTask(m, 999999).reasons[0]!.where).toBe('pid 999999');
    expect(pickTask(m).reasons[0]).toMatchObject({ code: 'TASKS', at: { of: 'image', task: 0 }, where: 'image' });
    expect(formatReasons(pickTask(m).reasons)).toBe(
      'TASKS (image): the image holds 2 tasks; restoring process trees is not supported (pick one with --pid)',
    );
  });

  it('restore --check prints CODE, where and text; --json adds at (addresses in hex)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-reasons-'));
    try {
      const img = path.join(dir, 'g.crimg');
      const m = generate({ seed: 7n, size: 1 << 20, tasks: 1 });
      m.tasks[0]!.mm!.vmas.find((x) => x.flags & VmaFlags.ANON)!.flags |= VmaFlags.HUGETLB;
      await writeImage(m, img);
      const text = crimg(['restore', '--check', img]);
      expect(text.code).toBe(1);
      const json = crimg(['restore', '--check', '--json', img]);
      const doc = JSON.parse(json.stdout) as {
        restorable: boolean;
        reasons: { code: string; at: Record<string, unknown>; where: string; text: string }[];
      };
      expect(doc.restorable).toBe(false);
      expect(text.stdout).toBe(doc.reasons.map((r) => `${r.code}\t${r.where}\t${r.text}\n`).join(''));
      const hugetlb = doc.reasons.find((r) => r.code === 'VMA_UNSUPPORTED' && r.text.startsWith('hugetlb'))!;
      expect(hugetlb.at).toMatchObject({ of: 'vma', task: m.tasks[0]!.pid, vma: expect.stringMatching(/^0x[0-9a-f]+$/) });
      expect(hugetlb.where.startsWith(`vma ${hugetlb.at.vma}-${hugetlb.at.end}`)).toBe(true);
      expect(doc.reasons[0]).toEqual({ code: 'SYNTHETIC', at: { of: 'image', task: 0 }, where: 'image', text: expect.any(String) });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
