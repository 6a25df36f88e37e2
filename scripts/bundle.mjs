// Builds the package's bin after tsc (npm run build runs it):
//   dist/cli/crimg-bundle.cjs   the command line (dist/cli/program.js and everything it
//                               imports) bundled by esbuild into one CommonJS module body,
//                               stored wrapped in its function expression
//   dist/cli/crimg.cjs          the bin: scripts/bin-loader.cjs, which runs the bundle
//   dist/cli/crimg-bundle.cache V8's code cache of the bundle, taken after a training
//                               run of common commands in a child process
// Start-up is what this buys: one file read instead of ~20 ESM modules resolved and
// loaded, no parse and compile of the bundle when the cache is accepted, and commander's
// child_process (with net and streams behind it) loaded only if commander spawns.
// koffi (live, restore) and cli-progress stay outside and load on first use.
//
// `node scripts/bundle.mjs --train` is the child that makes the cache.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI_DIR = path.join(ROOT, 'dist', 'cli');
const ENTRY = path.join(CLI_DIR, 'program.js');
const BIN = path.join(CLI_DIR, 'crimg.cjs');
const BUNDLE = path.join(CLI_DIR, 'crimg-bundle.cjs');
const CACHE = path.join(CLI_DIR, 'crimg-bundle.cache');
const LOADER = path.join(ROOT, 'scripts', 'bin-loader.cjs');

/** Commands run once at build time; the functions they compile go into the code cache. */
function trainingRuns(dir) {
  const img = path.join(dir, 'train.crimg');
  return [
    ['gen', '-o', img, '--size', '1MiB', '--tasks', '2', '--threads', '2', '--quiet'],
    ['verify', img],
    ['show', img],
    ['show', '--json', img],
    ['stats', img],
    ['gen', '--size', '1MiB', '-o', os.devNull, '--quiet'],
  ];
}

/** commander requires child_process (and so net and streams) at load time, for executable
 *  subcommands that crimg does not have: give it a stand-in that loads it on first use. */
const lazyChildProcess = {
  name: 'lazy-child-process',
  setup(b) {
    b.onResolve({ filter: /^(node:)?child_process$/ }, (a) =>
      a.importer.includes(`${path.sep}node_modules${path.sep}commander${path.sep}`)
        ? { path: 'child_process', namespace: 'crimg-lazy' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'crimg-lazy' }, () => ({
      loader: 'js',
      contents: "let m;\nmodule.exports = new Proxy({}, { get: (_t, k) => (m ??= require('node:child_process'))[k] });\n",
    }));
  },
};

/** Write through a temporary name and rename, so that a CLI started meanwhile (another
 *  build and a test run can overlap) sees the old file or the new one, never half of one. */
function writeAtomic(file, data, mode = 0o644) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}

async function build() {
  if (!fs.existsSync(ENTRY)) throw new Error(`${path.relative(ROOT, ENTRY)} is missing: run tsc first (npm run build)`);
  const esbuild = await import('esbuild');
  const r = await esbuild.build({
    entryPoints: [ENTRY],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['koffi', 'cli-progress'],
    // the bundle sits in dist/cli/ like the modules it replaces: '../../build/crimg.wasm' still resolves
    define: { 'import.meta.url': '__crimg_import_meta_url' },
    // ('use strict' first: the banner would otherwise push esbuild's own directive out of place)
    banner: { js: '"use strict";\nvar __crimg_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
    plugins: [lazyChildProcess],
    // import() of an external (cli-progress) becomes require(): the bundle runs as a vm.Script,
    // which has no module loader behind import()
    supported: { 'dynamic-import': false },
    minifyWhitespace: true,
    minifySyntax: true,
    charset: 'ascii',
    legalComments: 'none',
    outfile: BUNDLE,
    write: false,
    logLevel: 'warning',
  });
  if (r.warnings.length)
    throw new Error(
      `esbuild warnings (e.g. import.meta other than .url has no meaning in the bundle): ${r.warnings.map((w) => w.text).join('; ')}`,
    );
  let text = r.outputFiles[0].text.replace(/^#!.*\n/, '');
  if (/[^\p{ASCII}]/u.test(text)) throw new Error('bundle is not ASCII (the loader reads it as latin1)');
  if (/(?<![\w$.])import\s*\(/.test(text)) throw new Error('bundle has a dynamic import() left: the vm.Script it runs as cannot load it');
  const id = createHash('sha256').update(text).digest('hex').slice(0, 16);
  // the loader compiles the file as it is: one function expression around the module body
  text = `// crimg-bundle ${id}\n(function (exports, require, module, __filename, __dirname) {${text}\n})\n`;
  fs.rmSync(CACHE, { force: true });
  writeAtomic(BUNDLE, text);
  writeAtomic(BIN, fs.readFileSync(LOADER), 0o755);

  // The code cache: made in a child with plain V8 flags (the flags are part of V8's check).
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const t = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--train'], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
  });
  if (t.status !== 0) throw new Error(`code cache training run failed (${t.status ?? t.signal}): ${t.stderr.trim()}`);
  const check = spawnSync(
    process.execPath,
    ['-e', `const r = require(${JSON.stringify(BIN)}).load(); process.stdout.write(String(r.script.cachedDataRejected))`],
    { env, encoding: 'utf8' },
  );
  const accepted = check.status === 0 && check.stdout === 'false';
  if (!accepted)
    process.stderr.write(
      `bundle: warning: V8 did not accept the code cache (${check.stdout || check.stderr}); the bin still works, compiling from source\n`,
    );
  const kib = (f) => (fs.statSync(f).size / 1024).toFixed(0);
  process.stdout.write(
    `bundle: ${path.relative(ROOT, BUNDLE)} ${kib(BUNDLE)} KiB, code cache ${kib(CACHE)} KiB${accepted ? '' : ' (rejected)'}\n`,
  );
}

async function train() {
  const { load } = createRequire(import.meta.url)(BIN);
  const { exports, script, id } = load({ useCache: false });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crimg-bundle-'));
  try {
    for (const argv of trainingRuns(dir)) {
      await exports.main([process.execPath, BIN, ...argv]);
      if ((process.exitCode ?? 0) !== 0) throw new Error(`training run 'crimg ${argv.join(' ')}' exited ${process.exitCode}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  writeAtomic(CACHE, Buffer.concat([Buffer.from(`${id}\n`, 'latin1'), script.createCachedData()]));
}

if (process.argv[2] === '--train') await train();
else await build();
