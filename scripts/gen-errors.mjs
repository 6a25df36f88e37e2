// Writes docs/ERRORS.md from the error table in src/errors.ts (its text is its doc).
import { writeFileSync } from 'node:fs';
import { ERROR_CODES } from '../dist/errors.js';
const lines = [
  '# crimg error codes',
  '',
  'Every failure is one line on stderr, `crimg: CODE: message (at offset N, record kind 0x....)`,',
  'with exit status 1 (2 for usage errors, 3 for `crimg check` on an unsafe target). The codes are stable;',
  'this table is generated from `src/errors.ts`.',
  '',
  '| code | meaning |',
  '|---|---|',
  ...Object.entries(ERROR_CODES).map(([c, t]) => `| \`${c}\` | ${t} |`),
  '',
];
writeFileSync(new URL('../docs/ERRORS.md', import.meta.url), lines.join('\n'));
