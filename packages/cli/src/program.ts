/**
 * The `tessera` command. Only commander and this file load up front: each group of commands is imported when
 * one of its commands runs (the store, the server and the CRDT libraries take most of a second to load), so
 * `--help` and `--version` answer at once. The other commands are registered as stubs with their summaries.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';

/** What a command reports back besides its output: the exit code it asks for (status checks), and notes for stderr. */
export interface CliContext {
  exitCode: number;
  /** Lines that are not the command's output (continuation hints): stderr, so that stdout stays data. */
  note: (line: string) => void;
}

type Print = (line: string) => void;

/** A group of commands in one module: their names with summaries, and how to load and register them. */
interface CommandGroup {
  readonly summaries: Readonly<Record<string, string>>;
  register(program: Command, print: Print, context: CliContext): Promise<void>;
}

const groups: readonly CommandGroup[] = [
  {
    summaries: { dev: 'start a local multi-region cluster: one process per region, WAN latency, demo data' },
    register: async (program, print) => (await import('./commands/dev.js')).registerDevCommand(program, print),
  },
  {
    summaries: { serve: 'run one node of a cluster (HTTP API and replication)' },
    register: async (program, print) => (await import('./commands/serve.js')).registerServeCommand(program, print),
  },
  {
    summaries: {
      get: 'read a document',
      put: 'write a document (value as JSON)',
      del: 'delete a document',
      list: "list a dataset's documents",
      tag: 'add or remove tags of a document',
    },
    register: async (program, print, context) => (await import('./commands/data.js')).registerDataCommands(program, print, context),
  },
  {
    summaries: {
      increment: 'add to a counter (alias incr)',
      add: 'add elements to a set',
      remove: 'remove elements from a set',
      set: 'set a field of a map',
      'delete-field': 'delete a field of a map',
      'yjs-update': 'apply a Yjs update',
      'automerge-changes': 'apply Automerge changes',
    },
    register: async (program, print) => (await import('./commands/ops.js')).registerOperationCommands(program, print),
  },
  {
    summaries: {
      import: 'write the documents of an NDJSON file in batches',
      export: "print a dataset's documents as NDJSON",
      watch: 'print the change feed as it comes',
    },
    register: async (program, print, context) => (await import('./commands/transfer.js')).registerTransferCommands(program, print, context),
  },
  {
    summaries: { status: 'the cluster from any node: nodes, links, lag; exit 1 on trouble' },
    register: async (program, print, context) => (await import('./commands/status.js')).registerStatusCommand(program, print, context),
  },
  {
    summaries: { inspect: "a replica's state, offline on a data directory or on a running node" },
    register: async (program, print) => (await import('./commands/inspect.js')).registerInspectCommand(program, print),
  },
  {
    summaries: { policy: 'validate, plan, apply and list replication policies' },
    register: async (program, print) => (await import('./commands/policy.js')).registerPolicyCommands(program, print),
  },
  {
    summaries: { audit: "list or verify a region's hash-chained audit log" },
    register: async (program, print, context) => (await import('./commands/audit.js')).registerAuditCommands(program, print, context),
  },
  {
    summaries: { token: 'create, list and revoke API tokens in a tokens file' },
    register: async (program, print) => (await import('./commands/token.js')).registerTokenCommands(program, print),
  },
  {
    summaries: { keys: 'create and rotate the master key that encrypts data directories at rest' },
    register: async (program, print) => (await import('./commands/keys.js')).registerKeysCommands(program, print),
  },
  {
    summaries: { certs: 'create a cluster CA and node certificates, or show one' },
    register: async (program, print) => (await import('./commands/certs.js')).registerCertsCommands(program, print),
  },
];

/** Aliases that select a group as its command names do. */
const aliases: Readonly<Record<string, string>> = { incr: 'increment' };

/** This package's version, from its package.json (one source for `--version` and the registry). */
export function cliVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** The command a command line names: its first word that is not an option (`help <command>` names the next). */
function commandOf(argv: readonly string[]): string | undefined {
  const words = argv.filter((arg) => !arg.startsWith('-'));
  const word = words[0] === 'help' ? words[1] : words[0];
  if (word === undefined) return undefined;
  return Object.hasOwn(aliases, word) ? aliases[word]! : word;
}

/**
 * Builds the program for `argv`: the group of the command it names is loaded and registered; the others are
 * stubs with their summaries (enough for the help text and for suggestions on a typo).
 */
export async function createProgram(
  argv: readonly string[],
  print: Print = (line) => process.stdout.write(`${line}\n`),
  context: CliContext = { exitCode: 0, note: (line) => process.stderr.write(`${line}\n`) },
): Promise<Command> {
  const program = new Command('tessera')
    .description('Tessera: a CRDT-based replicated key-value store with differential replication across regions')
    .version(cliVersion())
    .showHelpAfterError()
    .exitOverride();
  const named = commandOf(argv);
  for (const group of groups) {
    if (named !== undefined && Object.hasOwn(group.summaries, named)) await group.register(program, print, context);
    else for (const [name, summary] of Object.entries(group.summaries)) program.command(name).summary(summary);
  }
  return program;
}

/** A `TesseraError`'s code, told without loading @tessera/core (whose CRDT libraries this file must not load). */
function codeOf(error: unknown): string | null {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof Error && error.name === 'TesseraError' && typeof code === 'string' ? code : null;
}

/** Runs the CLI; returns the exit code (0 ok, 1 failure, 2 usage). */
export async function runCli(argv: readonly string[], print?: Print, printError: Print = (line) => process.stderr.write(`${line}\n`)): Promise<number> {
  const context: CliContext = { exitCode: 0, note: printError };
  try {
    const program = await createProgram(argv, print, context);
    await program.parseAsync([...argv], { from: 'user' });
    return context.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    const code = codeOf(error);
    printError(code === null ? `tessera: ${(error as Error).message}` : `tessera: ${code}: ${(error as Error).message}`);
    return 1;
  }
}
