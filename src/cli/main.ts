#!/usr/bin/env node
/** The crimg command line. Each command family lives in its own cmd-*.ts file. */
import { Command, CommanderError } from 'commander';
import { EXIT_USAGE, setDebug } from './common.js';
import { registerImageCommands } from './cmd-image.js';
import { registerGenCommands } from './cmd-gen.js';
import { registerLiveCommands } from './cmd-live.js';
import { registerRestoreCommands } from './cmd-restore.js';
import { registerConvertCommands } from './cmd-convert.js';

const VERSION = '0.1.0';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('crimg')
    .description('checkpoint images of x86_64 Linux tasks: generate, inspect, verify, convert, dump, restore')
    .version(VERSION)
    .option('--debug', 'print stack traces with errors')
    .showSuggestionAfterError(true)
    .configureOutput({
      writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `crimg: USAGE: ${s.slice(7)}` : s),
    })
    .exitOverride();
  program.hook('preAction', (cmd) => { setDebug(!!cmd.optsWithGlobals().debug); });
  registerImageCommands(program);
  registerGenCommands(program);
  // command families registered by other modules:
  registerLiveCommands(program);
  registerRestoreCommands(program);
  registerConvertCommands(program);
  return program;
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  for (const c of program.commands) c.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version exit 0; everything else from commander is a usage error
      process.exitCode = e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help' ? 0 : EXIT_USAGE;
      return;
    }
    throw e;
  }
}

await main(process.argv);
