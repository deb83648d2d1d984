/** The `tessera` command. */
import { Command, CommanderError } from 'commander';
import { isTesseraError } from '@tessera/core';
import { registerAuditCommands } from './commands/audit.js';
import { registerCertsCommands } from './commands/certs.js';
import { registerDataCommands, registerTagCommand } from './commands/data.js';
import { registerDevCommand } from './commands/dev.js';
import { registerInspectCommand } from './commands/inspect.js';
import { registerPolicyCommands } from './commands/policy.js';
import { registerServeCommand } from './commands/serve.js';
import { registerStatusCommand } from './commands/status.js';
import { registerTokenCommands } from './commands/token.js';

/** What a command reports back besides its output: the exit code it asks for (status checks). */
export interface CliContext {
  exitCode: number;
}

/** Builds the program; `print` receives every line of normal output. */
export function createProgram(print: (line: string) => void = (line) => process.stdout.write(`${line}\n`), context: CliContext = { exitCode: 0 }): Command {
  const program = new Command('tessera')
    .description('Tessera: a CRDT-based replicated key-value store with differential replication across regions')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  registerDevCommand(program, print);
  registerServeCommand(program, print);
  registerDataCommands(program, print);
  registerTagCommand(program, print);
  registerStatusCommand(program, print, context);
  registerInspectCommand(program, print);
  registerPolicyCommands(program, print);
  registerAuditCommands(program, print, context);
  registerTokenCommands(program, print);
  registerCertsCommands(program, print);
  return program;
}

/** Runs the CLI; returns the exit code (0 ok, 1 failure, 2 usage). */
export async function runCli(argv: readonly string[], print?: (line: string) => void, printError: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): Promise<number> {
  const context: CliContext = { exitCode: 0 };
  const program = createProgram(print, context);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return context.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (isTesseraError(error)) {
      printError(`tessera: ${error.code}: ${error.message}`);
      return 1;
    }
    printError(`tessera: ${(error as Error).message}`);
    return 1;
  }
}
