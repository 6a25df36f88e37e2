import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// Runs in a child process so that its peak RSS is its own.
const script = `
import { generate } from './dist/gen/generate.js';
import { writeImage, verifyImage } from './dist/index.js';
const file = process.argv[1]; // node -e SCRIPT FILE: argv = [node, FILE]
const model = generate({ seed: 4n, size: 4 * 1024 ** 3, tasks: 1, threads: 1, vmas: 2, zeroRatio: 0.995 });
const w = await writeImage(model, file);
const v = verifyImage(file);
console.log(JSON.stringify({ bytes: w.bytes, stored: w.pagesStored, zero: w.pagesZero, records: v.stats.records, maxRssKiB: process.resourceUsage().maxRSS }));
`;

describe('streaming', () => {
  it('writing and verifying a 4 GiB sparse-but-not-empty image keeps peak RSS under 200 MiB', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-big-'));
    const file = path.join(dir, 'big.crimg');
    try {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, file], {
        cwd: path.resolve(__dirname, '..'),
        timeout: 300_000,
      });
      expect(r.status, r.stderr.toString()).toBe(0);
      const out = JSON.parse(r.stdout.toString());
      const pages = out.stored + out.zero;
      expect(pages).toBeGreaterThanOrEqual(((4 * 1024 ** 3) / 4096) * 0.99);
      expect(out.stored).toBeGreaterThan(1000); // not empty
      expect(out.bytes).toBeLessThan(256 * 1024 ** 2); // zero pages are elided
      expect(out.maxRssKiB / 1024).toBeLessThan(200);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
