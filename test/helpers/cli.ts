/** Run the built CLI (dist/cli/main.js) and capture its output. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface CliResult { code: number; stdout: string; stderr: string; out: Buffer }

export function crimg(args: string[], opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv; timeout?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    input: opts.input, env: { ...process.env, ...opts.env }, timeout: opts.timeout ?? 120_000, maxBuffer: 1 << 30,
  });
  return { code: r.status ?? -1, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8'), out: r.stdout };
}
