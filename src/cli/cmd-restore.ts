/** `crimg restore IMAGE`: bring a checkpointed task back to life as a new process. */
import type { Command } from 'commander';
import { openImage } from '../reader.js';
import { checkRestore, restoreImage } from '../restore/restore.js';
import { EXIT_FAIL, EXIT_OK, action, parseIntArg, printJson } from './common.js';

interface RestoreCliOpts {
  pid?: string;
  pidNs?: boolean;
  tree?: boolean;
  stopped?: boolean;
  inheritStdio?: boolean;
  check?: boolean;
  json?: boolean;
  stub?: string;
}

export function registerRestoreCommands(program: Command): void {
  program
    .command('restore')
    .description(
      'restore the task of an image as a new process (new pid unless --pid-ns) and print its pid; --check only lists why it could not be',
    )
    .argument('<image>', 'image file (from crimg dump)')
    .option('--pid <pid>', 'task of the image to restore when it holds several')
    .option(
      '--pid-ns',
      'restore into a new PID namespace where the task keeps its original pid and tids (root; prints the pid as seen from here)',
    )
    .option('--tree', 'with --pid-ns: the task and all the tasks below it in the image (from crimg dump --tree), as a process tree')
    .option('--stopped', 'leave the restored process stopped (SIGSTOP); continue it with kill -CONT')
    .option(
      '--inherit-stdio',
      "fds 0-2 that cannot be reopened (another process's pipe or socket) or are a terminal get crimg's own stdin/stdout/stderr",
    )
    .option('--check', 'restore nothing: list every reason the image cannot be restored here (exit 0 when restorable)')
    .option('--stub <program>', 'program started as the stub that becomes the task (default: sleep)')
    .option('--json', 'one JSON document on stdout')
    .action(
      action(async (path: string, o: RestoreCliOpts) => {
        const opts = {
          pid: o.pid !== undefined ? parseIntArg('--pid', o.pid, { min: 1 }) : undefined,
          stopped: !!o.stopped,
          inheritStdio: !!o.inheritStdio,
          stub: o.stub,
          pidNs: !!o.pidNs,
          tree: !!o.tree,
        };
        const img = openImage(path); // metadata verified now; each page record is verified as it is loaded
        try {
          if (o.check) {
            const reasons = checkRestore(img, opts);
            if (o.json) printJson({ restorable: reasons.length === 0, reasons });
            else if (reasons.length === 0) process.stdout.write(`${path}: restorable\n`);
            else for (const r of reasons) process.stdout.write(`${r.code}\t${r.where}\t${r.text}\n`);
            return reasons.length === 0 ? EXIT_OK : EXIT_FAIL;
          }
          const r = await restoreImage(img, opts);
          if (o.json)
            printJson({
              pid: r.pid,
              tids: r.tids,
              pagesWritten: r.pagesWritten,
              userfaultfd: r.userfaultfd,
              seconds: r.seconds,
              stopped: opts.stopped,
              ...(r.pidNs ? { pidNs: r.pidNs } : {}),
              ...(r.tree ? { tree: r.tree } : {}),
            });
          else process.stdout.write(`${r.pid}\n`);
          return EXIT_OK;
        } finally {
          img.close();
        }
      }),
    );
}
