import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// Runs in a child process so that its peak RSS is its own: a 4 GiB address space goes
// model -> ELF core (holes for zero pages) -> model -> image, in bounded memory.
const script = `
import { generate } from './dist/gen/generate.js';
import { toElfCore, fromElfCore, writeImage, verifyImage } from './dist/index.js';
import * as fs from 'node:fs';
const [core, img] = process.argv.slice(1);
const model = generate({ seed: 7n, size: 4 * 1024 ** 3, tasks: 1, threads: 2, vmas: 2, zeroRatio: 0.995 });
const e = await toElfCore(model, core);
const st = fs.statSync(core);
const c = fromElfCore(core);
const w = await writeImage(c.model, img);
c.close();
const v = verifyImage(img);
console.log(JSON.stringify({ coreBytes: st.size, coreDisk: st.blocks * 512, written: e.pagesWritten, holes: e.pagesHole,
  stored: w.pagesStored, zero: w.pagesZero, records: v.stats.records, maxRssKiB: process.resourceUsage().maxRSS }));
`;

describe('ELF streaming', () => {
  it('a 4 GiB address space goes to a sparse core and back to an image with peak RSS under 200 MiB', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-elfbig-'));
    try {
      const r = spawnSync(
        process.execPath,
        ['--input-type=module', '-e', script, path.join(dir, 'big.core'), path.join(dir, 'big.crimg')],
        { cwd: path.resolve(__dirname, '..'), timeout: 300_000 },
      );
      expect(r.status, r.stderr.toString()).toBe(0);
      const out = JSON.parse(r.stdout.toString());
      expect(out.coreBytes).toBeGreaterThan(4 * 1024 ** 3);
      expect(out.coreDisk).toBeLessThan(256 * 1024 ** 2); // zero pages are holes
      expect(out.written).toBeGreaterThan(1000);
      expect(out.stored).toBe(out.written); // every data page of the core, and only those, is stored
      expect(out.stored + out.zero).toBeGreaterThanOrEqual(((4 * 1024 ** 3) / 4096) * 0.99);
      expect(out.maxRssKiB / 1024).toBeLessThan(200);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
