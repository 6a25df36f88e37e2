/**
 * The crimg command line as a function: main.ts runs it (the unbundled entry), and
 * the shipped bin (dist/cli/crimg.cjs, built by scripts/bundle.mjs) runs the bundled copy.
 * Each command family lives in its own cmd-*.ts file.
 */
import { Command, CommanderError } from 'commander';
import { EXIT_USAGE, setDebug } from './common.js';

/**
 * Command families, loaded on demand: a command imports only its own family (the
 * live and restore ones load koffi, convert the ELF code), which keeps start-up short.
 * Help and unknown commands load them all.
 */
type Register = (program: Command) => void;
const FAMILIES: Record<string, () => Promise<Register>> = {
  image: async () => (await import('./cmd-image.js')).registerImageCommands,
  gen: async () => (await import('./cmd-gen.js')).registerGenCommands,
  live: async () => (await import('./cmd-live.js')).registerLiveCommands,
  restore: async () => (await import('./cmd-restore.js')).registerRestoreCommands,
  convert: async () => (await import('./cmd-convert.js')).registerConvertCommands,
};
const FAMILY_OF: Record<string, string> = {
  show: 'image',
  verify: 'image',
  stats: 'image',
  read: 'image',
  diff: 'image',
  gen: 'gen',
  demo: 'gen',
  dump: 'live',
  check: 'live',
  run: 'live',
  signal: 'live',
  restore: 'restore',
  convert: 'convert',
};

/** The subcommand named in argv (the first argument that is not a global option), if any. */
function commandName(argv: string[]): string | undefined {
  for (const a of argv.slice(2)) if (!a.startsWith('-')) return a;
  return undefined;
}

const VERSION = '0.1.0';

export async function buildProgram(argv: string[] = []): Promise<Command> {
  const program = new Command();
  program
    .name('crimg')
    .description('checkpoint images of x86_64 Linux tasks: generate, inspect, verify, convert, dump, restore')
    .version(VERSION)
    .option('--debug', 'print stack traces with errors')
    .showSuggestionAfterError(true)
    .configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `crimg: USAGE: ${s.slice(7)}` : s) })
    .exitOverride();
  program.hook('preAction', (cmd) => {
    setDebug(!!cmd.optsWithGlobals().debug);
  });
  const name = commandName(argv);
  const only = name !== undefined ? FAMILY_OF[name] : undefined;
  const versionOnly = name === undefined && argv.some((a) => a === '-V' || a === '--version');
  const families = only ? [only] : versionOnly ? [] : Object.keys(FAMILIES);
  for (const f of families) (await FAMILIES[f]!())(program);
  return program;
}

/** Run the command line `argv` (node, script, args...); the outcome is in process.exitCode. */
export async function main(argv: string[]): Promise<void> {
  const program = await buildProgram(argv);
  for (const c of program.commands) c.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version exit 0; everything else from commander is a usage error
      process.exitCode =
        e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help' ? 0 : EXIT_USAGE;
      return;
    }
    throw e;
  }
}
