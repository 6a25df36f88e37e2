/** Run the built CLI (the package's bin, dist/cli/crimg.cjs: the bundled command line) and capture its output. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const PKG = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { bin: { crimg: string } };
/** The bin that `npm install` links as `crimg`. */
export const CLI = fileURLToPath(new URL(`../../${PKG.bin.crimg}`, import.meta.url));
/** The unbundled entry (tsc's output under dist/), which the bundle is built from. */
export const CLI_UNBUNDLED = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  out: Buffer;
}

export function crimg(
  args: string[],
  opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv; timeout?: number; cli?: string } = {},
): CliResult {
  const r = spawnSync(process.execPath, [opts.cli ?? CLI, ...args], {
    input: opts.input,
    env: { ...process.env, ...opts.env },
    timeout: opts.timeout ?? 120_000,
    maxBuffer: 1 << 30,
  });
  return { code: r.status ?? -1, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8'), out: r.stdout };
}
