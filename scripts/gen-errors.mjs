// Writes docs/ERRORS.md from the error table in src/errors.ts (its text is its doc), and docs/RESTORE-REASONS.md
// from the restore reason table in src/restore/reasons.ts. `node scripts/gen-errors.mjs --check` fails if either is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { ERROR_CODES } from '../dist/errors.js';
import { RESTORE_CODES } from '../dist/restore/reasons.js';

const row = ([c, t]) => `| \`${c}\` | ${t.replace(/\|/g, '\\|')} |`;
const errors = [
  '# crimg error codes',
  '',
  'Every failure is one line on stderr, `crimg: CODE: message (at offset N, record kind 0x....)`,',
  'with exit status 1 (2 for usage errors, 3 for `crimg check` on an unsafe target). The codes are stable;',
  'this table is generated from `src/errors.ts`.',
  '`NOT_RESTORABLE` names the reasons of [RESTORE-REASONS.md](RESTORE-REASONS.md).',
  '',
  '| code | meaning |',
  '|---|---|',
  ...Object.entries(ERROR_CODES).map(row),
  '',
];
const reasons = [
  '# crimg restore reasons',
  '',
  'Why an image cannot be restored on this host: `crimg restore --check IMAGE` lists every reason, one a line,',
  '`CODE<tab>where<tab>text` (`--json`: `{code, at, where, text}`, `at` the structured location: `of` what it is about,',
  '`task`, and `thread`, `fd`, `vma` and `end`, `path` where they apply); `crimg restore` refuses such an image with',
  '`NOT_RESTORABLE` and names the first three. The codes are stable; this table is generated from `src/restore/reasons.ts`.',
  '',
  '| code | meaning |',
  '|---|---|',
  ...Object.entries(RESTORE_CODES).map(row),
  '',
];

let stale = false;
for (const [name, lines] of [
  ['ERRORS.md', errors],
  ['RESTORE-REASONS.md', reasons],
]) {
  const file = new URL(`../docs/${name}`, import.meta.url);
  const next = lines.join('\n');
  if (!process.argv.includes('--check')) {
    writeFileSync(file, next);
    continue;
  }
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    /* missing: stale */
  }
  if (text !== next) {
    console.error(`docs/${name} is stale: run node scripts/gen-errors.mjs`);
    stale = true;
  }
}
if (stale) process.exit(1);
