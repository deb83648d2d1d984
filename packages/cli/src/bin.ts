#!/usr/bin/env node
/** Entry point of the `tessera` command. */
import { runCli } from './program.js';

process.exitCode = await runCli(process.argv.slice(2));
