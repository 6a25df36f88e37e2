/** No function in src/ is longer than 100 lines (scripts/fn-length.mjs lists them, longest first). */
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain JS script
import { longFunctions } from '../scripts/fn-length.mjs';

describe('function length', () => {
  it('no function in src/ is over 100 lines', () => {
    const long = (longFunctions as (n: number) => { file: string; name: string; lines: number }[])(100);
    expect(long.map((f) => `${f.file} ${f.name}: ${f.lines} lines`)).toEqual([]);
  });
  it('the scan finds long functions (one over 20 lines exists)', () => {
    expect((longFunctions as (n: number) => unknown[])(20).length).toBeGreaterThan(0);
  });
});
