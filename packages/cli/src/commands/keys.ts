/**
 * `tessera keys create|rotate`: the master key that seals data directories at rest (storage/sealed.ts). A key
 * file holds 32 random bytes as base64 and is written 0600; a file group or others may read is refused
 * (ERR_FILE_MODE). Rotation rewraps each data directory's data key under the new master key, atomically; the
 * records are not rewritten and the old key no longer opens the directory. It is safe while the node runs
 * (the node keeps its unwrapped data key); give the node the new key file before its next start.
 */
import { type Command } from 'commander';
import { TesseraError } from '@tessera/core';
import { createMasterKeyFile, masterKeyId, readMasterKeyFile, rotateMasterKey } from '@tessera/store';

/** Registers `keys`. */
export function registerKeysCommands(program: Command, print: (line: string) => void): void {
  const keys = program.command('keys').description('create and rotate the master key that encrypts data directories at rest');

  keys
    .command('create')
    .description('write a new master key file (mode 0600; an existing file is never overwritten)')
    .requiredOption('--file <path>', 'the key file to create')
    .action(async (options: { file: string }) => {
      const key = await createMasterKeyFile(options.file).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'EEXIST') throw new TesseraError('ERR_OPTION_INVALID', `${options.file} exists already: a master key file is never overwritten`);
        throw error;
      });
      print(`created master key ${masterKeyId(key)} in ${options.file}`);
    });

  keys
    .command('rotate')
    .description('rewrap the data key of each data directory under a new master key')
    .requiredOption('--from <file>', 'the current master key file')
    .requiredOption('--to <file>', 'the new master key file (tessera keys create)')
    .argument('<data-dir...>', "the sealed data directories (the nodes' `data:`)")
    .action(async (dirs: string[], options: { from: string; to: string }) => {
      const current = await readMasterKeyFile(options.from);
      const next = await readMasterKeyFile(options.to);
      for (const dir of dirs) {
        const { from, to } = await rotateMasterKey(dir, current, next);
        print(`${dir}: data key rewrapped from master key ${from} to ${to}`);
      }
    });
}
