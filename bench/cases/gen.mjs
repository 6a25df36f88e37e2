// Synthetic images: `crimg gen --size 1GiB` to /dev/null against the machine's
// copy bandwidth, to a file against writing the same bytes from a prepared
// buffer, and in-process generate() + writeImage() of 64 KiB images.
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { GiB, runAlternating, runInProcess, summarize, evaluateGoals, crimgCmd, inProcess, startupNote } from '../lib/harness.mjs';
import { tmpPath, rmf, missingCommands, eachChunk } from '../lib/fixtures.mjs';
import { Peer } from '../lib/peer.mjs';

const SIZE = '1GiB';

function sha256File(file) {
  const h = createHash('sha256');
  eachChunk(file, (b) => h.update(b));
  return h.digest('hex');
}

export const genNull = {
  name: 'gen-null',
  title: '`crimg gen --size 1GiB -o /dev/null` vs Buffer.copy of 1 GiB',
  unit: 'GB/s',
  goalsText: '>= 0.5x Buffer.copy bandwidth',
  async run({ reps }) {
    const miss = missingCommands('gen');
    if (miss) return { available: false, reason: miss };
    // Same answer: the image streamed to /dev/null is the one written to a file, which verifies.
    const file = tmpPath('gen-null-check.crimg');
    rmf(file);
    const toFile = JSON.parse(crimgCmd(['gen', '--size', SIZE, '-o', file, '--json']).stdout).images[0];
    const toNull = JSON.parse(crimgCmd(['gen', '--size', SIZE, '-o', '/dev/null', '--json']).stdout).images[0];
    const lib = await import('../../dist/index.js');
    const inProc = await lib.writeImage(lib.generate({ size: GiB }), '/dev/null');
    let verifyOk = true;
    try {
      crimgCmd(['verify', file]);
    } catch {
      verifyOk = false;
    }
    rmf(file);
    // The peer: one Buffer.copy of 1 GiB between two prefaulted buffers (in the peer process).
    const peer = Peer.start();
    try {
      const copyOk =
        (await peer.call({ op: 'alloc', bytes: GiB })).ok && (await peer.call({ op: 'copy' })) && (await peer.call({ op: 'equal' })).ok;
      const checks = [
        {
          what: `gen to /dev/null streams the same image as gen to a file (${toFile.bytes} bytes, checksum ${toFile.imageCsum})`,
          ok: toNull.bytes === toFile.bytes && toNull.imageCsum === toFile.imageCsum,
          detail: `got ${toNull.bytes} bytes, ${toNull.imageCsum}`,
        },
        { what: 'that image passes `crimg verify`', ok: verifyOk },
        {
          what: "writeImage(generate({ size: 1 GiB }), '/dev/null') in process streams the same image",
          ok: inProc.bytes === toFile.bytes && `0x${inProc.imageCsum.toString(16)}` === toFile.imageCsum,
        },
        { what: 'Buffer.copy output = source', ok: copyOk },
      ];
      if (checks.some((c) => !c.ok)) return { available: true, checks, checkFailed: 'outputs differ' };
      const contenders = [
        {
          name: 'crimg gen --size 1GiB -o /dev/null (whole process)',
          role: 'crimg',
          units: GiB,
          run: () => crimgCmd(['gen', '--size', SIZE, '-o', '/dev/null', '--quiet']),
        },
        { name: 'Buffer.copy 1 GiB (warm buffers, peer process)', role: 'limit', units: GiB, run: () => peer.call({ op: 'copy' }) },
        inProcess("writeImage(generate(), '/dev/null') in this process (library, no start-up)", GiB, () =>
          lib.writeImage(lib.generate({ size: GiB }), '/dev/null'),
        ),
      ];
      const { per, rss } = await runAlternating(contenders, { reps, warmup: 1 });
      const { rows, ratios } = summarize(contenders, per, { primary: contenders[0].name, rss });
      const goals = evaluateGoals(
        [{ text: '>= 0.5x Buffer.copy bandwidth', kind: 'ratio', vs: [contenders[1].name], atLeast: 0.5 }],
        rows,
        ratios,
      );
      return {
        available: true,
        checks,
        rows,
        ratios,
        goals,
        notes: startupNote(rows, contenders[0].name, contenders[1].name, GiB),
        setup: `crimg generates an image of 1 GiB of populated memory (default spec: 30% zero pages elided, 5% duplicate pages; ${toFile.bytes} image bytes) and streams it to /dev/null, timed as a whole process (node start-up included). Throughput counts the 1 GiB of memory content for both sides; Buffer.copy copies 1 GiB between two prefaulted buffers held by a separate peer process that never forks (see bench/README.md on page faults).`,
      };
    } finally {
      peer.close();
    }
  },
};

export const genFile = {
  name: 'gen-file',
  title: '`crimg gen --size 1GiB -o FILE` vs writing the same bytes from one buffer',
  unit: 'GB/s',
  goalsText: '>= 0.9x writing the bytes from a prepared buffer',
  async run({ reps }) {
    const miss = missingCommands('gen');
    if (miss) return { available: false, reason: miss };
    const file = tmpPath('gen-file.crimg');
    rmf(file);
    const sum = JSON.parse(crimgCmd(['gen', '--size', SIZE, '-o', file, '--json']).stdout).images[0];
    // The peer writes the very bytes of the image, from one prepared buffer, to the same path.
    const crimgHash = sha256File(file);
    const peer = Peer.start();
    try {
      const { bytes } = await peer.call({ op: 'load', file });
      rmf(file);
      await peer.call({ op: 'write', file });
      const peerHash = sha256File(file);
      const lib = await import('../../dist/index.js');
      rmf(file);
      await lib.writeImage(lib.generate({ size: GiB }), file);
      const libHash = sha256File(file);
      const checks = [
        {
          what: `the buffer writer leaves the same ${bytes} bytes as crimg gen (sha256 ${crimgHash.slice(0, 16)}…)`,
          ok: crimgHash === peerHash && sum.bytes === bytes,
        },
        { what: 'writeImage(generate({ size: 1 GiB }), FILE) in process writes the same bytes', ok: libHash === crimgHash },
      ];
      if (checks.some((c) => !c.ok)) return { available: true, checks, checkFailed: 'files differ' };
      const units = bytes;
      const contenders = [
        {
          name: 'crimg gen --size 1GiB -o FILE (whole process)',
          role: 'crimg',
          units,
          before: () => rmf(file),
          run: () => crimgCmd(['gen', '--size', SIZE, '-o', file, '--quiet']),
        },
        {
          name: 'open + write(prepared buffer) + close (peer process)',
          role: 'limit',
          units,
          before: () => rmf(file),
          run: () => peer.call({ op: 'write', file }),
        },
        inProcess(
          'writeImage(generate(), FILE) in this process (library, no start-up)',
          units,
          () => lib.writeImage(lib.generate({ size: GiB }), file),
          () => rmf(file),
        ),
      ];
      const { per, rss } = await runAlternating(contenders, { reps, warmup: 1 });
      const { rows, ratios } = summarize(contenders, per, { primary: contenders[0].name, rss });
      const goals = evaluateGoals(
        [{ text: '>= 0.9x writing from a prepared buffer', kind: 'ratio', vs: [contenders[1].name], atLeast: 0.9 }],
        rows,
        ratios,
      );
      return {
        available: true,
        checks,
        rows,
        ratios,
        goals,
        notes: startupNote(rows, contenders[0].name, contenders[1].name, units),
        setup: `Both write the same ${units} bytes (the image of 1 GiB of populated memory) to the same path on the bench directory's file system; the file is removed before each run, outside the timing. crimg is timed as a whole process (node start-up, generation, temporary name + rename); the peer (a separate process holding the bytes in one buffer) writes them with 256 MiB write() calls. Throughput counts file bytes.`,
      };
    } finally {
      peer.close();
      rmf(file);
    }
  },
};

export const genSmall = {
  name: 'gen-64k',
  title: 'in-process generate() + writeImage() of 64 KiB images',
  unit: 'images/s',
  goalsText: '>= 10,000 images/s',
  async run({ rounds }) {
    const { generate, writeImage, MemorySink } = await import('../../dist/index.js');
    const SIZE64 = 64 * 1024;
    // A sink that keeps nothing: counts bytes and hashes nothing (the writer checksums already).
    class NullSink {
      constructor() {
        this.written = 0;
      }
      write(b) {
        this.written += b.length;
      }
      async close() {}
      abort() {}
    }
    // Same answer: in-process bytes = the CLI's `gen --size 64KiB --seed 5`.
    const mem = new MemorySink();
    await writeImage(generate({ size: SIZE64, seed: 5 }), mem);
    const file = tmpPath('gen-64k.crimg');
    rmf(file);
    crimgCmd(['gen', '--size', '64KiB', '--seed', '5', '-o', file]);
    const same = Buffer.compare(Buffer.from(mem.bytes()), fs.readFileSync(file)) === 0;
    rmf(file);
    const checks = [
      {
        what: `generate({ size: 64 KiB, seed: 5 }) written in process = \`crimg gen --size 64KiB --seed 5\` (${mem.written} bytes)`,
        ok: same,
      },
    ];
    if (!same) return { available: true, checks, checkFailed: 'images differ' };
    const BATCH = 200;
    let seed = 1;
    const contenders = [
      {
        name: 'generate() + writeImage() to a null sink',
        role: 'crimg',
        units: BATCH,
        fn: async () => {
          for (let i = 0; i < BATCH; i++) await writeImage(generate({ size: SIZE64, seed: seed++ }), new NullSink());
        },
      },
      {
        name: 'generate() only (model, no bytes)',
        role: 'info',
        units: BATCH,
        fn: () => {
          for (let i = 0; i < BATCH; i++) generate({ size: SIZE64, seed: seed++ });
        },
      },
    ];
    const per = await runInProcess(contenders, { rounds, time: 300 });
    const { rows, ratios } = summarize(contenders, per, { primary: contenders[0].name });
    const goals = evaluateGoals([{ text: '>= 10,000 images/s', kind: 'abs', of: contenders[0].name, atLeast: 10000 }], rows, ratios);
    return {
      available: true,
      checks,
      rows,
      ratios,
      goals,
      setup: `Each image: default spec (1 task, 2 threads, standard mappings, 3 files, a namespace set) with 64 KiB of populated memory and a new seed, written completely (${mem.written} bytes: records, register sets, page runs, checksums, index, trailer) to a sink that drops the bytes.`,
    };
  },
};
