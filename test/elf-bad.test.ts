/**
 * Bad ELF cores are refused with BAD_CORE or TRUNCATED (and the CLI prints one line
 * and leaves no output behind), never with a crash: hand-made defects plus a
 * seeded mutation run over a small valid core.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CrimgError, MemorySink, fromElfCore, toElfCore, writeImage } from '../src/index.js';
import { crimg } from './helpers/cli.js';
import { rng, smallModel } from './helpers/models.js';

let dir: string;
let good: Buffer;
let notesOff: number;
let notesSize: number;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-elfbad-'));
  const m = smallModel(9, { pages: 3 });
  m.tasks.length = 1;
  m.tasks[0]!.mm!.vmas[2]!.end = m.tasks[0]!.mm!.vmas[2]!.start + 8n * 4096n; // keep the core small
  const ms = new MemorySink();
  await toElfCore(m, ms);
  good = Buffer.from(ms.bytes());
  notesOff = Number(good.readBigUInt64LE(64 + 8));
  notesSize = Number(good.readBigUInt64LE(64 + 32));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The error code of importing and converting `b`, or 'OK'. Anything but a CrimgError fails the test. */
async function outcome(b: Uint8Array): Promise<string> {
  try {
    const c = fromElfCore(b);
    try {
      await writeImage(c.model, new MemorySink());
    } finally {
      c.close();
    }
    return 'OK';
  } catch (e) {
    if (!(e instanceof CrimgError)) throw new Error(`not a CrimgError: ${(e as Error)?.stack ?? e}`);
    return e.code;
  }
}

function mutate(f: (b: Buffer) => void): Buffer {
  const b = Buffer.from(good);
  f(b);
  return b;
}

describe('refused cores', () => {
  it('the valid core converts', async () => {
    expect(await outcome(good)).toBe('OK');
  });

  it('truncated anywhere: TRUNCATED', async () => {
    for (const len of [0, 3, 4, 20, 63, 64, 64 + 56 + 10, notesOff + 5, notesOff + notesSize - 1, good.length - 4096, good.length - 1]) {
      expect(await outcome(good.subarray(0, len)), `cut at ${len}`).toBe('TRUNCATED');
    }
  });

  it('wrong class, byte order, type or machine: BAD_CORE', async () => {
    expect(
      await outcome(
        mutate((b) => {
          b[4] = 1;
        }),
      ),
    ).toBe('BAD_CORE'); // ELFCLASS32
    expect(
      await outcome(
        mutate((b) => {
          b[5] = 2;
        }),
      ),
    ).toBe('BAD_CORE'); // big-endian
    expect(
      await outcome(
        mutate((b) => {
          b.writeUInt16LE(2, 16);
        }),
      ),
    ).toBe('BAD_CORE'); // ET_EXEC
    expect(
      await outcome(
        mutate((b) => {
          b.writeUInt16LE(183, 18);
        }),
      ),
    ).toBe('BAD_CORE'); // aarch64
    expect(
      await outcome(
        mutate((b) => {
          b.writeUInt16LE(3, 18);
        }),
      ),
    ).toBe('BAD_CORE'); // i386
    expect(
      await outcome(
        mutate((b) => {
          b.writeUInt16LE(40, 54);
        }),
      ),
    ).toBe('BAD_CORE'); // e_phentsize
    expect(await outcome(new Uint8Array(fs.readFileSync(process.execPath).subarray(0, 1 << 20)))).toBe('BAD_CORE'); // an executable
  });

  it('notes with lengths past the end: BAD_CORE; segments past the end: TRUNCATED', async () => {
    expect(
      await outcome(
        mutate((b) => {
          b.writeUInt32LE(0xfffffff0, notesOff + 4);
        }),
      ),
    ).toBe('BAD_CORE'); // descsz
    expect(
      await outcome(
        mutate((b) => {
          b.writeUInt32LE(notesSize, notesOff);
        }),
      ),
    ).toBe('BAD_CORE'); // namesz
    expect(
      await outcome(
        mutate((b) => {
          b.writeUInt32LE(notesSize - 20, notesOff + 4);
        }),
      ),
    ).toBe('BAD_CORE');
    expect(
      await outcome(
        mutate((b) => {
          b.writeBigUInt64LE(BigInt(good.length), 64 + 32);
        }),
      ),
    ).toBe('TRUNCATED'); // PT_NOTE p_filesz
    expect(
      await outcome(
        mutate((b) => {
          b.writeBigUInt64LE(1n << 40n, 64 + 8);
        }),
      ),
    ).toBe('TRUNCATED'); // PT_NOTE p_offset
    expect(
      await outcome(
        mutate((b) => {
          b.writeBigUInt64LE(1n << 62n, 64 + 8);
        }),
      ),
    ).toBe('BAD_CORE'); // beyond any file
    expect(
      await outcome(
        mutate((b) => {
          b.writeBigUInt64LE(BigInt(good.length), 64 + 56 + 32);
          b.writeBigUInt64LE(BigInt(good.length) * 2n, 64 + 56 + 40);
        }),
      ),
    ).toBe('TRUNCATED');
    expect(
      await outcome(
        mutate((b) => {
          b.writeUInt16LE(0xfffe, 56);
        }),
      ),
    ).toBe('TRUNCATED'); // e_phnum
  });

  it('inconsistent notes and segments: BAD_CORE', async () => {
    // NT_PRSTATUS of the wrong size: the first note after NT_PRPSINFO
    const second = notesOff + 12 + 8 + 136;
    expect(good.readUInt32LE(second + 8)).toBe(1);
    expect(
      await outcome(
        mutate((b) => {
          b.writeUInt32LE(200, second + 4);
        }),
      ),
    ).toBe('BAD_CORE');
    // the first two PT_LOADs overlap
    const ph2 = 64 + 2 * 56;
    expect(
      await outcome(
        mutate((b) => {
          b.writeBigUInt64LE(b.readBigUInt64LE(64 + 56 + 16) + 4096n, ph2 + 16);
        }),
      ),
    ).toBe('BAD_CORE');
    // a PT_LOAD that is not page aligned
    expect(
      await outcome(
        mutate((b) => {
          b.writeBigUInt64LE(b.readBigUInt64LE(ph2 + 16) + 8n, ph2 + 16);
        }),
      ),
    ).toBe('BAD_CORE');
    // p_filesz above p_memsz
    expect(
      await outcome(
        mutate((b) => {
          b.writeBigUInt64LE(b.readBigUInt64LE(ph2 + 40) + 4096n, ph2 + 32);
        }),
      ),
    ).toBe('BAD_CORE');
    // no threads: turn every NT_PRSTATUS into an unknown note type
    expect(
      await outcome(
        mutate((b) => {
          for (let o = notesOff; o < notesOff + notesSize; ) {
            const namesz = b.readUInt32LE(o),
              descsz = b.readUInt32LE(o + 4);
            if (b.readUInt32LE(o + 8) === 1) b.writeUInt32LE(0x99, o + 8);
            o += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3);
          }
        }),
      ),
    ).toBe('BAD_CORE');
  });

  it('a seeded run of random mutations never crashes', async () => {
    const r = rng(20260101);
    const codes = new Map<string, number>();
    for (let i = 0; i < 600; i++) {
      const b = Buffer.from(good);
      const n = 1 + Math.floor(r() * 6);
      for (let j = 0; j < n; j++) {
        // mostly the headers and notes, where the structure is
        const at = r() < 0.85 ? Math.floor(r() * (notesOff + notesSize)) : Math.floor(r() * b.length);
        if (r() < 0.5) b[at] = Math.floor(r() * 256);
        else b[at]! ^= 1 << Math.floor(r() * 8);
      }
      const cut = r() < 0.15 ? Math.floor(r() * b.length) : b.length;
      const code = await outcome(b.subarray(0, cut));
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    for (const c of codes.keys()) expect(['OK', 'BAD_CORE', 'TRUNCATED']).toContain(c);
    expect(codes.get('BAD_CORE') ?? 0).toBeGreaterThan(50);
    expect(codes.get('TRUNCATED') ?? 0).toBeGreaterThan(20);
  });
});

describe('crimg convert refuses them', () => {
  it('one line with the code, exit 1, no output file and no temporary file left', () => {
    const cases: [string, Buffer, string][] = [
      ['trunc.core', good.subarray(0, notesOff + 10), 'TRUNCATED'],
      [
        'class.core',
        mutate((b) => {
          b[4] = 1;
        }),
        'BAD_CORE',
      ],
      [
        'machine.core',
        mutate((b) => {
          b.writeUInt16LE(40, 18);
        }),
        'BAD_CORE',
      ],
      [
        'note.core',
        mutate((b) => {
          b.writeUInt32LE(0x7fffffff, notesOff + 4);
        }),
        'BAD_CORE',
      ],
      ['empty.core', Buffer.alloc(0), 'TRUNCATED'],
      ['text.core', Buffer.from('hello, this is not a core file\n'), 'BAD_MAGIC'],
    ];
    for (const [name, bytes, code] of cases) {
      const sub = path.join(dir, name.replace('.core', ''));
      fs.mkdirSync(sub);
      const input = path.join(sub, name);
      fs.writeFileSync(input, bytes);
      const r = crimg(['convert', input, '-o', path.join(sub, 'out.crimg')]);
      expect(r.code, name).toBe(1);
      expect(r.stderr.trim().split('\n'), name).toHaveLength(1);
      expect(r.stderr, name).toMatch(new RegExp(`^crimg: ${code}: `));
      expect(fs.readdirSync(sub), name).toEqual([name]);
    }
  });

  it('usage errors exit 2', () => {
    const input = path.join(dir, 'ok.core');
    fs.writeFileSync(input, good);
    expect(crimg(['convert', input, '-o', path.join(dir, 'x'), '--to', 'pdf']).code).toBe(2);
    expect(crimg(['convert', input, '-o', path.join(dir, 'x'), '--pid', '5']).code).toBe(2);
    expect(crimg(['convert', input]).code).toBe(2);
    const ok = crimg(['convert', input, '-o', path.join(dir, 'ok.crimg'), '--quiet']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toBe('');
  });
});
