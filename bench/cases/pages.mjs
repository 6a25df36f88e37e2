// pages_pack (fused zero check + copy + checksum of 4 KiB pages) against copying
// the same pages with Buffer.copy (no zero check, no checksum: the peer is told
// which pages to copy). 64 MiB in crimg's WebAssembly memory, packed in runs of
// 256 pages as the writer does.
import { randomFillSync } from 'node:crypto';
import { xxh3 } from '@node-rs/xxhash';
import { MiB, runInProcess, summarize, evaluateGoals } from '../lib/harness.mjs';
import { crimgKernels, hasExports } from '../lib/kernels.mjs';

const LEN = 64 * MiB;
const PAGE = 4096;
const NPAGES = LEN / PAGE;
const RUN = 256; // RUN_PAGES in src/schema.ts: pages per PAGES record

function makeCase(name, zeroPct) {
  return {
    name,
    title: `pages_pack of 64 MiB (${zeroPct}% zero pages) vs Buffer.copy of the same pages`,
    unit: 'GB/s',
    goalsText: '>= 0.9x Buffer.copy',
    async run({ rounds }) {
      const k = await crimgKernels();
      if (!hasExports(k, 'pages_pack', 'copy_pages', 'zero_scan', 'xxh3_64'))
        return { available: false, reason: 'pages kernels missing from build/crimg.wasm' };
      const base = k.staging(3 * LEN + 2 * MiB);
      const src = base + MiB;
      const dstC = src + LEN; // crimg's output
      const dstP = dstC + LEN; // the peer's output
      const bm = dstP + LEN; // bitmaps: NPAGES / 8 bytes
      const mem = k.x.memory;
      const u8 = new Uint8Array(mem.buffer);
      randomFillSync(u8, src, LEN);
      // zero pages chosen by a fixed LCG so every run packs the same layout
      const nonZero = new Uint8Array(NPAGES);
      let x = 12345;
      for (let i = 0; i < NPAGES; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        const zero = (x >>> 16) % 100 < zeroPct;
        if (zero) u8.fill(0, src + i * PAGE, src + (i + 1) * PAGE);
        else nonZero[i] = 1;
      }
      // the peer copies maximal runs of non-zero pages, compacted, in one Buffer.copy each
      const runs = [];
      let stored = 0;
      for (let i = 0; i < NPAGES; ) {
        if (!nonZero[i]) {
          i++;
          continue;
        }
        let j = i;
        while (j < NPAGES && nonZero[j]) j++;
        runs.push([i * PAGE, stored * PAGE, (j - i) * PAGE]);
        stored += j - i;
        i = j;
      }
      const srcBuf = Buffer.from(mem.buffer, src, LEN);
      const dstBuf = Buffer.from(mem.buffer, dstP, LEN);
      const slot = 0;
      const crimgPack = () => {
        k.xxh3Init(slot);
        let d = dstC;
        for (let p = 0; p < NPAGES; p += RUN) d += k.pagesPack(src + p * PAGE, RUN, d, bm + p / 8, slot) * PAGE;
        return k.xxh3Digest(slot);
      };
      const contenders = [
        { name: 'crimg pagesPack', role: 'crimg', units: LEN, fn: crimgPack },
        {
          name: 'Buffer.copy per run of non-zero pages',
          role: 'peer',
          units: LEN,
          fn: () => {
            for (const [s, d, n] of runs) srcBuf.copy(dstBuf, d, s, s + n);
          },
        },
        {
          name: 'Buffer.copy per non-zero page',
          role: 'peer',
          units: LEN,
          fn: () => {
            let d = 0;
            for (let i = 0; i < NPAGES; i++)
              if (nonZero[i]) {
                srcBuf.copy(dstBuf, d, i * PAGE, (i + 1) * PAGE);
                d += PAGE;
              }
          },
        },
        { name: 'crimg copyPages (plain v128 copy, all pages)', role: 'info', units: LEN, fn: () => k.copyPages(src, dstP, NPAGES) },
        { name: 'crimg zeroScan', role: 'info', units: LEN, fn: () => k.zeroScan(src, NPAGES, bm) },
        { name: 'crimg xxh3 of the 64 MiB', role: 'info', units: LEN, fn: () => k.xxh3(src, LEN) },
      ];
      // same answer: same stored bytes, bitmap = the layout, checksum = XXH3 of the stored bytes
      const csum = crimgPack();
      contenders[1].fn();
      const sameBytes = Buffer.compare(Buffer.from(mem.buffer, dstC, stored * PAGE), Buffer.from(mem.buffer, dstP, stored * PAGE)) === 0;
      let bmOk = true;
      for (let i = 0; i < NPAGES; i++)
        if (((u8[bm + (i >> 3)] >> (i & 7)) & 1) !== nonZero[i]) {
          bmOk = false;
          break;
        }
      const want = xxh3.xxh64(Buffer.from(mem.buffer, dstP, stored * PAGE));
      const checks = [
        { what: `stored pages (${stored} of ${NPAGES}) identical to the Buffer.copy output`, ok: sameBytes },
        { what: 'bitmap marks exactly the non-zero pages', ok: bmOk },
        {
          what: `checksum slot = @node-rs xxh3 of the stored pages (0x${want.toString(16)})`,
          ok: csum === want,
          detail: `got 0x${csum.toString(16)}`,
        },
      ];
      if (checks.some((c) => !c.ok)) return { available: true, checks, checkFailed: 'pack output differs' };
      const per = await runInProcess(contenders, { rounds });
      const { rows, ratios } = summarize(contenders, per, { primary: contenders[0].name });
      const goals = evaluateGoals(
        [{ text: '>= 0.9x Buffer.copy of the same pages', kind: 'ratio', vs: [contenders[1].name, contenders[2].name], atLeast: 0.9 }],
        rows,
        ratios,
      );
      return {
        available: true,
        checks,
        rows,
        ratios,
        goals,
        setup: `64 MiB of random pages in WebAssembly memory, ${zeroPct}% of them zero (${stored} stored). crimg packs runs of ${RUN} pages into a second 64 MiB area (zero check, copy, bitmap, streaming XXH3); Buffer.copy copies the same non-zero pages into a third area, compacted, knowing in advance which pages to copy. Throughput counts input bytes.`,
      };
    },
  };
}

export const pagesPack = makeCase('pages-pack', 0);
export const pagesPackZero = makeCase('pages-pack-z30', 30);
