import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ERROR_CODES } from '../src/errors.js';

describe('docs follow the code', () => {
  it('docs/FORMAT.md record tables are generated from the schema and current', () => {
    execFileSync(process.execPath, ['scripts/gen-format.mjs', '--check'], { stdio: 'pipe' });
    const text = readFileSync('docs/FORMAT.md', 'utf8');
    expect(text).toMatch(/### REGS \(0x0211\)/);
    expect(text).toMatch(/`orig_rax`/);
  });
  it('every error code is documented in docs/ERRORS.md', () => {
    const text = readFileSync('docs/ERRORS.md', 'utf8');
    for (const code of Object.keys(ERROR_CODES)) expect(text, code).toContain(`\`${code}\``);
  });
});
