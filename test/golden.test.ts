/**
 * Golden images made before the kinds refactor (test/golden/make.mjs, issue 13): each decodes to the model JSON
 * committed beside it and re-encodes to the same bytes. A change of format or model shows up here first.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { MemorySink, readImage, writeImage } from '../src/index.js';
// @ts-expect-error plain JS helper shared with the maker script
import { goldenJson } from './golden/json.mjs';

const dir = new URL('./golden/', import.meta.url).pathname;
const NAMES = ['gen-random', 'gen-text', 'all-kinds', 'live'];

describe('golden images', () => {
  for (const name of NAMES) {
    it(`${name}: decodes to its model and re-encodes byte for byte`, async () => {
      const bytes = new Uint8Array(readFileSync(`${dir}${name}.crimg`));
      const img = readImage(bytes);
      try {
        expect((goldenJson as (m: unknown, i: unknown) => string)(img.model, img)).toBe(readFileSync(`${dir}${name}.json`, 'utf8'));
        const sink = new MemorySink();
        await writeImage(img.model, sink);
        const out = sink.bytes();
        expect(out.length).toBe(bytes.length);
        expect(Buffer.compare(Buffer.from(out), Buffer.from(bytes))).toBe(0);
      } finally {
        img.close();
      }
    });
  }
});
