// XXH3-64 over data already in crimg's WebAssembly memory: one 64 MiB buffer, and
// the same 64 MiB as 16384 separate 4 KiB pages (one call per page).
// Peers get a Uint8Array view of the same bytes.
import { randomFillSync } from 'node:crypto';
import { createXXHash3, xxhash3 } from 'hash-wasm';
import xxhashWasm from 'xxhash-wasm';
import { xxh3, xxh64 } from '@node-rs/xxhash';
import { MiB, runInProcess, summarize, evaluateGoals } from '../lib/harness.mjs';
import { crimgKernels, readPass, hasExports } from '../lib/kernels.mjs';

const LEN = 64 * MiB;
const PAGE = 4096;
const NPAGES = LEN / PAGE;

async function setup() {
  const k = await crimgKernels();
  if (!hasExports(k, 'xxh3_64')) return { reason: 'build/crimg.wasm has no xxh3_64 kernel' };
  const base = k.staging(LEN + 2 * MiB); // everything the case needs, before views are made
  const ptr = base + MiB;
  const mem = k.x.memory;
  const data = new Uint8Array(mem.buffer, ptr, LEN);
  for (let o = 0; o < LEN; o += 16 * MiB) randomFillSync(data, o, 16 * MiB);
  const rp = readPass(mem);
  const hw = await createXXHash3();
  const xw = await xxhashWasm();
  return { k, ptr, data, rp, hw, xw };
}

const be64 = (b) => new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, false);

export const xxh3Whole = {
  name: 'xxh3-64mib',
  title: 'XXH3-64 of 64 MiB in WebAssembly memory',
  unit: 'GB/s',
  goalsText: '>= 1.2x fastest peer; >= 0.8x read-only SIMD pass',
  async run({ rounds }) {
    const s = await setup();
    if (s.reason) return { available: false, reason: s.reason };
    const { k, ptr, data, rp, hw, xw } = s;
    const slot = 0;
    const contenders = [
      { name: 'crimg xxh3 (Kernels.xxh3)', role: 'crimg', algo: 'xxh3', units: LEN, fn: () => k.xxh3(ptr, LEN) },
      {
        name: 'crimg xxh3 streaming, 1 MiB updates',
        role: 'info',
        algo: 'xxh3',
        units: LEN,
        fn: () => {
          k.xxh3Init(slot);
          for (let o = 0; o < LEN; o += MiB) k.xxh3Update(slot, ptr + o, MiB);
          return k.xxh3Digest(slot);
        },
      },
      { name: 'read-only SIMD pass', role: 'limit', units: LEN, fn: () => rp(ptr, LEN) },
      {
        name: 'hash-wasm createXXHash3',
        role: 'peer',
        algo: 'xxh3',
        units: LEN,
        fn: () => {
          hw.init();
          hw.update(data);
          return be64(hw.digest('binary'));
        },
      },
      { name: 'hash-wasm xxhash3 (async)', role: 'peer', algo: 'xxh3', units: LEN, fn: async () => BigInt(`0x${await xxhash3(data)}`) },
      { name: '@node-rs/xxhash xxh3.xxh64', role: 'peer', algo: 'xxh3', units: LEN, fn: () => xxh3.xxh64(data) },
      { name: '@node-rs/xxhash xxh64', role: 'peer', algo: 'xxh64', units: LEN, fn: () => xxh64(data) },
      { name: 'xxhash-wasm h64Raw', role: 'peer', algo: 'xxh64', units: LEN, fn: () => xw.h64Raw(data, 0n) },
    ];
    // same answer: every XXH3-64 implementation agrees with crimg; the two XXH64 ones agree with each other
    const checks = [];
    const ref = await contenders[0].fn();
    const ref64 = xxh64(data);
    for (const c of contenders) {
      if (!c.algo) continue;
      const v = await c.fn();
      const want = c.algo === 'xxh3' ? ref : ref64;
      checks.push({
        what: `${c.name} = ${c.algo === 'xxh3' ? 'crimg' : '@node-rs xxh64'} (0x${want.toString(16)})`,
        ok: v === want,
        detail: `got 0x${v.toString(16)}`,
      });
    }
    if (checks.some((c) => !c.ok)) return { available: true, checks, checkFailed: 'hash values differ' };
    const per = await runInProcess(contenders, { rounds });
    const { rows, ratios } = summarize(contenders, per, { primary: contenders[0].name });
    const goals = evaluateGoals(
      [
        {
          text: '>= 1.2x fastest xxhash peer',
          kind: 'ratio',
          vs: contenders.filter((c) => c.role === 'peer').map((c) => c.name),
          atLeast: 1.2,
        },
        { text: '>= 0.8x read-only SIMD pass', kind: 'ratio', vs: ['read-only SIMD pass'], atLeast: 0.8 },
      ],
      rows,
      ratios,
    );
    return {
      available: true,
      checks,
      rows,
      ratios,
      goals,
      setup:
        "64 MiB of random bytes in crimg's WebAssembly memory; peers hash a Uint8Array view of the same bytes (hash-wasm and xxhash-wasm copy it into their own memory). xxhash-wasm and @node-rs xxh64 compute XXH64 (xxhash-wasm has no XXH3); they are checked against each other.",
    };
  },
};

export const xxh3Pages = {
  name: 'xxh3-pages',
  title: 'XXH3-64 of 16384 separate 4 KiB pages (one result per page)',
  unit: 'GB/s',
  goalsText: '>= 1.2x fastest peer; >= 0.8x read-only SIMD pass',
  async run({ rounds }) {
    const s = await setup();
    if (s.reason) return { available: false, reason: s.reason };
    const { k, ptr, data, rp, hw, xw } = s;
    const views = Array.from({ length: NPAGES }, (_, i) => data.subarray(i * PAGE, (i + 1) * PAGE));
    const outs = new Map();
    const out = (name) => {
      if (!outs.has(name)) outs.set(name, new BigUint64Array(NPAGES));
      return outs.get(name);
    };
    const raw = new Uint8Array(NPAGES * 8);
    // the batch kernel writes its 16384 results into WebAssembly memory, after the data
    const outPtr = ptr + LEN;
    const batch = hasExports(k, 'xxh3_pages');
    const contenders = [
      ...(batch
        ? [
            {
              name: 'crimg xxh3Pages (one call, 16384 results)',
              role: 'crimg',
              algo: 'xxh3',
              units: LEN,
              fn: () => {
                k.xxh3Pages(ptr, NPAGES, outPtr);
              },
              result: () => new BigUint64Array(k.x.memory.buffer.slice(outPtr, outPtr + NPAGES * 8)),
            },
          ]
        : []),
      {
        name: 'crimg xxh3 (Kernels.xxh3)',
        role: batch ? 'info' : 'crimg',
        algo: 'xxh3',
        units: LEN,
        fn: () => {
          const o = out('c');
          for (let i = 0; i < NPAGES; i++) o[i] = k.xxh3(ptr + i * PAGE, PAGE);
          return o;
        },
      },
      {
        name: 'crimg raw export xxh3_64',
        role: 'info',
        algo: 'xxh3',
        units: LEN,
        fn: () => {
          const o = out('r');
          const f = k.x.xxh3_64;
          for (let i = 0; i < NPAGES; i++) o[i] = f(ptr + i * PAGE, PAGE);
          return o;
        },
      },
      { name: 'read-only SIMD pass (whole 64 MiB)', role: 'limit', units: LEN, fn: () => rp(ptr, LEN) },
      {
        name: 'hash-wasm createXXHash3',
        role: 'peer',
        algo: 'xxh3',
        units: LEN,
        fn: () => {
          for (let i = 0; i < NPAGES; i++) {
            hw.init();
            hw.update(views[i]);
            raw.set(hw.digest('binary'), i * 8);
          }
          return raw;
        },
        result: () => {
          const o = new BigUint64Array(NPAGES);
          const dv = new DataView(raw.buffer);
          for (let i = 0; i < NPAGES; i++) o[i] = dv.getBigUint64(i * 8, false);
          return o;
        },
      },
      {
        name: '@node-rs/xxhash xxh3.xxh64',
        role: 'peer',
        algo: 'xxh3',
        units: LEN,
        fn: () => {
          const o = out('n3');
          for (let i = 0; i < NPAGES; i++) o[i] = xxh3.xxh64(views[i]);
          return o;
        },
      },
      {
        name: '@node-rs/xxhash xxh64',
        role: 'peer',
        algo: 'xxh64',
        units: LEN,
        fn: () => {
          const o = out('n64');
          for (let i = 0; i < NPAGES; i++) o[i] = xxh64(views[i]);
          return o;
        },
      },
      {
        name: 'xxhash-wasm h64Raw',
        role: 'peer',
        algo: 'xxh64',
        units: LEN,
        fn: () => {
          const o = out('xw');
          for (let i = 0; i < NPAGES; i++) o[i] = xw.h64Raw(views[i], 0n);
          return o;
        },
      },
    ];
    const checks = [];
    const ref = contenders
      .find((c) => c.name === 'crimg xxh3 (Kernels.xxh3)')
      .fn()
      .slice();
    const ref64 = contenders
      .find((c) => c.name === '@node-rs/xxhash xxh64')
      .fn()
      .slice();
    for (const c of contenders) {
      if (!c.algo) continue;
      let v = c.fn();
      if (c.result) v = c.result();
      const want = c.algo === 'xxh3' ? ref : ref64;
      let bad = -1;
      for (let i = 0; i < NPAGES && bad < 0; i++) if (v[i] !== want[i]) bad = i;
      checks.push({
        what: `${c.name}: all ${NPAGES} page hashes = ${c.algo === 'xxh3' ? 'crimg' : '@node-rs xxh64'}`,
        ok: bad < 0,
        detail: `page ${bad}`,
      });
    }
    if (checks.some((c) => !c.ok)) return { available: true, checks, checkFailed: 'page hashes differ' };
    const per = await runInProcess(contenders, { rounds });
    const { rows, ratios } = summarize(contenders, per, { primary: contenders[0].name });
    const goals = evaluateGoals(
      [
        {
          text: '>= 1.2x fastest xxhash peer',
          kind: 'ratio',
          vs: contenders.filter((c) => c.role === 'peer').map((c) => c.name),
          atLeast: 1.2,
        },
        { text: '>= 0.8x read-only SIMD pass', kind: 'ratio', vs: ['read-only SIMD pass (whole 64 MiB)'], atLeast: 0.8 },
      ],
      rows,
      ratios,
    );
    return {
      available: true,
      checks,
      rows,
      ratios,
      goals,
      setup:
        "The same 64 MiB, hashed as 16384 independent 4 KiB pages, one 64-bit result per page. crimg: the batch kernel xxh3Pages hashes all pages in one call and writes the 16384 results (little-endian u64) to WebAssembly memory; Kernels.xxh3 (one call per page, results in a BigUint64Array) is shown for reference. Peers: one call per page, results in a BigUint64Array. The checks compare every page hash of every contender with Kernels.xxh3 (and the XXH64 ones with @node-rs xxh64). hash-wasm's one-shot xxhash3() is async and returns a hex string; it is left out here (see xxh3-64mib).",
    };
  },
};
