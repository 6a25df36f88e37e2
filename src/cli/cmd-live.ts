/** Commands on live processes: dump, check, run, signal. */
import type { Command } from 'commander';
import { dumpProcess, type DumpResult } from '../live/dump.js';
import { blocking, checkProcesses } from '../live/check.js';
import { checkTarget, listTree } from '../live/freeze.js';
import { runTraced } from '../live/run.js';
import { kill } from '../os/libc.js';
import { signalName, signalNumber } from '../os/consts.js';
import { readStat } from '../os/proc.js';
import { CrimgError } from '../errors.js';
import { EXIT_OK, EXIT_UNSAFE, action, hex, parseIntArg, printJson, usage } from './common.js';

/** Abort on SIGINT/SIGTERM while fn runs (the dump then resumes the target and removes its partial image). */
export async function withInterrupts<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const onSig = (sig: NodeJS.Signals): void => {
    ac.abort(sig);
  };
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  process.on('SIGHUP', onSig);
  try {
    return await fn(ac.signal);
  } finally {
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
    process.off('SIGHUP', onSig);
  }
}

function parsePid(s: string): number {
  return parseIntArg('PID', s, { min: 1, max: 0x3fffffff });
}

function dumpJson(r: DumpResult, path: string): Record<string, unknown> {
  return {
    image: path,
    crid: r.crid,
    bytes: r.bytes,
    records: r.records,
    pagesStored: r.pagesStored,
    pagesZero: r.pagesZero,
    freezeNs: r.freezeNs,
    freezeMs: Number(r.freezeNs) / 1e6,
    freezeInHeader: r.freezeInHeader,
    after: r.after,
    imageCsum: r.imageCsum,
    tasks: r.tasks,
    nocr: r.nocr,
    signalsDelivered: r.signalsDelivered.map(signalName),
    memFallbackPages: r.memFallbackPages,
    unreadablePages: r.unreadablePages,
  };
}

export function registerLiveCommands(program: Command): void {
  registerDump(program);
  registerCheck(program);
  registerRun(program);
  registerSignal(program);
}

function registerDump(program: Command): void {
  program
    .command('dump')
    .description('checkpoint a running process (tree) into an image; it continues unaffected afterwards')
    .argument('<pid>', 'process id')
    .requiredOption('-o, --output <image>', 'image to write (temporary name, renamed when complete)')
    .option('--tree', 'also dump every descendant process')
    .option('--leave-stopped', 'leave the process (tree) stopped (SIGSTOP) after the dump')
    .option('--kill', 'kill the process (tree) once the image is written')
    .option('--force', 'dump even if check finds reasons it cannot be restarted faithfully (recorded in the image)')
    .option('--fsync', 'fsync the image before renaming it into place')
    .option('--json', 'print a JSON summary (with the freeze time) on stdout')
    .option('--quiet', 'print nothing on success')
    .action(
      action(
        async (
          pidArg: string,
          o: {
            output: string;
            tree?: boolean;
            leaveStopped?: boolean;
            kill?: boolean;
            force?: boolean;
            fsync?: boolean;
            json?: boolean;
            quiet?: boolean;
          },
        ) => {
          const pid = parsePid(pidArg);
          if (o.leaveStopped && o.kill) throw usage('--leave-stopped and --kill are exclusive');
          const hold = Number(process.env.CRIMG_DEBUG_HOLD_FROZEN_MS ?? 0);
          const r = await withInterrupts((signal) =>
            dumpProcess(pid, o.output, {
              tree: !!o.tree,
              force: !!o.force,
              fsync: !!o.fsync,
              after: o.kill ? 'kill' : o.leaveStopped ? 'stop' : 'resume',
              signal,
              holdFrozenMs: Number.isFinite(hold) && hold > 0 ? hold : undefined,
            }),
          );
          if (o.json) printJson(dumpJson(r, o.output));
          else if (!o.quiet) {
            const th = r.tasks.reduce((s, t) => s + t.threads.length, 0);
            process.stderr.write(
              `${o.output}: ${r.tasks.length} task${r.tasks.length === 1 ? '' : 's'}, ${th} thread${th === 1 ? '' : 's'}, ${r.pagesStored} pages stored, ${r.pagesZero} zero pages elided, ${r.bytes} bytes; frozen ${(Number(r.freezeNs) / 1e6).toFixed(1)} ms${r.after === 'stop' ? ' (left stopped)' : r.after === 'kill' ? ' (killed)' : ''}${r.nocr.length ? `; ${r.nocr.length} nocr reason(s) recorded` : ''}\n`,
            );
          }
          return EXIT_OK;
        },
      ),
    );
}

function registerCheck(program: Command): void {
  program
    .command('check')
    .description('is it safe to checkpoint? list every reason the process (tree) cannot be restarted faithfully (exit 0 safe, 3 not)')
    .argument('<pid>', 'process id')
    .option('--tree', 'check the process and all its descendants')
    .option('--json', 'one JSON document on stdout')
    .action(
      action((pidArg: string, o: { tree?: boolean; json?: boolean }) => {
        const pid = parsePid(pidArg);
        try {
          checkTarget(pid);
        } catch (e) {
          if (!(e instanceof CrimgError) || e.code !== 'TRACED') throw e; // traced: reported as a reason below
        }
        const pids = listTree(pid, !!o.tree);
        const all = checkProcesses(pids, { tree: !!o.tree });
        const reasons = blocking(all);
        const notes = all.filter((r) => !reasons.includes(r));
        const safe = reasons.length === 0;
        if (o.json) printJson({ pid, tree: !!o.tree, tasks: pids, safe, reasons, notes });
        else {
          for (const r of [...reasons, ...notes]) process.stdout.write(`${r.code.padEnd(16)} ${String(r.pid).padStart(7)}  ${r.text}\n`);
          if (safe)
            process.stdout.write(
              `process ${pid}${o.tree ? ` and its ${pids.length - 1} descendant(s)` : ''}: safe to checkpoint${notes.length ? ` (${notes.length} note(s) for the restore)` : ''}\n`,
            );
          else process.stdout.write(`process ${pid}: ${reasons.length} reason(s) it cannot be checkpointed faithfully\n`);
        }
        return safe ? EXIT_OK : EXIT_UNSAFE;
      }),
    );
}

function registerRun(program: Command): void {
  program
    .command('run')
    .description('start CMD traced by crimg; every time it receives the checkpoint signal, write an image and hide the signal from it')
    .argument('<cmd...>', 'command and arguments (after --)')
    .option('--on-signal <sig>', 'checkpoint signal (default SIGUSR2)', 'SIGUSR2')
    .option('--out-dir <dir>', 'directory for the images (NNNNNN.crimg)', '.')
    .option('--leave-running', 'do not kill CMD when crimg is interrupted (it is detached instead)')
    .option('--json', 'print one JSON line per checkpoint on stderr')
    .option('--quiet', 'print nothing per checkpoint')
    .action(
      action(async (cmd: string[], o: { onSignal: string; outDir: string; json?: boolean; quiet?: boolean; leaveRunning?: boolean }) => {
        const sig = signalNumber(o.onSignal);
        if (!sig || sig === 9 || sig === 19) throw usage(`--on-signal: '${o.onSignal}' is not a signal crimg can catch`);
        const code = await withInterrupts((signal) =>
          runTraced(cmd, {
            signal: sig,
            outDir: o.outDir,
            abort: signal,
            leaveRunning: !!o.leaveRunning,
            onCheckpoint: (c) => {
              if (o.quiet) return;
              if (o.json)
                process.stderr.write(
                  `${JSON.stringify({ image: c.path, seq: c.seq, tid: c.tid, bytes: c.bytes, freezeNs: hex(c.freezeNs) })}\n`,
                );
              else
                process.stderr.write(
                  `crimg: checkpoint ${c.seq} of ${c.pid} -> ${c.path} (${c.bytes} bytes, frozen ${(Number(c.freezeNs) / 1e6).toFixed(1)} ms)\n`,
                );
            },
          }),
        );
        return code;
      }),
    );
}

function registerSignal(program: Command): void {
  program
    .command('signal')
    .description('ask a process started by `crimg run` for a checkpoint (sends it the checkpoint signal)')
    .argument('<pid>', 'process id')
    .option('--signal <sig>', 'signal to send (default SIGUSR2)', 'SIGUSR2')
    .action(
      action((pidArg: string, o: { signal: string }) => {
        const pid = parsePid(pidArg);
        const sig = signalNumber(o.signal);
        if (!sig) throw usage(`--signal: '${o.signal}' is not a signal`);
        try {
          readStat(pid);
        } catch {
          throw new CrimgError('NO_PROCESS', `no process ${pid}`);
        }
        try {
          kill(pid, sig);
        } catch (e) {
          throw new CrimgError('PERMISSION', `cannot signal process ${pid}: ${(e as Error).message}`);
        }
        return EXIT_OK;
      }),
    );
}
