#!/usr/bin/env node
'use strict';
// The crimg bin (copied to dist/cli/crimg.cjs by scripts/bundle.mjs). It runs the
// bundled command line, dist/cli/crimg-bundle.cjs: one file instead of the ESM graph
// under dist/ (no module resolution per file), and hands V8 the code cache that the
// build made for it (crimg-bundle.cache), so the bundle is not parsed and compiled
// again at every start. The cache is used only when its first line names the bundle's
// build id; V8 itself rejects a cache from another Node/V8 build or other V8 flags, and
// then the bundle is simply compiled from source.
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { createRequire } = require('node:module');

const BUNDLE = path.join(__dirname, 'crimg-bundle.cjs');
const CACHE = path.join(__dirname, 'crimg-bundle.cache');
const ID_LINE = /^\/\/ crimg-bundle ([0-9a-f]+)\n/;

/** The cached data for the bundle with build id `id`, or undefined. */
function cachedData(id) {
  let b;
  try {
    b = fs.readFileSync(CACHE);
  } catch {
    return undefined;
  }
  const nl = b.indexOf(10);
  return nl > 0 && b.toString('latin1', 0, nl) === id ? b.subarray(nl + 1) : undefined;
}

/**
 * Compile and evaluate the bundle and return its exports with the vm.Script, whose
 * createCachedData() scripts/bundle.mjs stores after a training run. The bundle file is
 * already the function expression `(function (exports, require, module, __filename,
 * __dirname) {...})` around a CommonJS module body, so its text goes to V8 as read (no
 * second copy of it).
 */
function load({ useCache = true } = {}) {
  const source = fs.readFileSync(BUNDLE, 'latin1'); // esbuild writes ASCII only
  const id = ID_LINE.exec(source)?.[1];
  const script = new vm.Script(source, { filename: BUNDLE, cachedData: useCache && id ? cachedData(id) : undefined });
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(BUNDLE), module, BUNDLE, __dirname);
  return { exports: module.exports, script, id };
}

if (require.main === module) load().exports.main(process.argv);
else module.exports = { load, BUNDLE, CACHE };
