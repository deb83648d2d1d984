#!/usr/bin/env node
/** Entry point of the `tessera` command. */
import { runCli } from './program.js';

// A reader that stops early (`tessera list catalog | head -1`) closes the pipe. The rest of the output has
// nowhere to go, and that is the reader's choice, not a failure: stop quietly instead of dying on EPIPE.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(0);
  });
}

process.exitCode = await runCli(process.argv.slice(2));
