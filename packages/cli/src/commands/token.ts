/**
 * `tessera token create|list|revoke`: the API tokens a cluster's daemons accept (issue 12 item 2). The tokens
 * file is the one the cluster config names (`api.tokensFile`) or `--file`; it holds SHA-256 digests only and is
 * written 0600. A new token is printed once and never stored; running daemons pick changes up within a second.
 */
import { type Command } from 'commander';
import { TesseraError } from '@tessera/core';
import { type Role, type TokenRecord, loadClusterConfig, newToken, readTokensFile, roles, writeTokensFile } from '@tessera/server';
import { table } from './status.js';

async function tokensPath(options: { config?: string; file?: string }): Promise<string> {
  if ((options.config === undefined) === (options.file === undefined))
    throw new TesseraError('ERR_OPTION_INVALID', 'give --config (its api.tokensFile) or --file, one of them');
  if (options.file !== undefined) return options.file;
  return (await loadClusterConfig(options.config!)).api.tokensFile;
}

function list(text: string | undefined): string[] {
  return (text ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** Registers `token`. */
export function registerTokenCommands(program: Command, print: (line: string) => void): void {
  const token = program.command('token').description('create, list and revoke API tokens (stored hashed in the tokens file)');
  const where = (command: Command) =>
    command.option('--config <file>', 'the cluster config: use its api.tokensFile').option('--file <path>', 'the tokens file itself');

  where(token.command('create'))
    .description('create a token and print it once')
    .requiredOption('--name <name>', 'what the token is for (ci-deploy, dashboard-alice)')
    .requiredOption('--role <roles>', `comma-separated roles: ${roles.join(', ')}`)
    .option('--datasets <list>', 'datasets the reader and writer roles apply to (comma-separated, or *)')
    .action(async (options: { config?: string; file?: string; name: string; role: string; datasets?: string }) => {
      const path = await tokensPath(options);
      const records = readTokensFile(path, true);
      if (records.some((record) => record.name === options.name))
        throw new TesseraError('ERR_OPTION_INVALID', `a token named ${options.name} exists already (revoke it first)`);
      const created = newToken(options.name, { roles: list(options.role) as Role[], datasets: list(options.datasets) }, Date.now());
      writeTokensFile(path, [...records, created.record]);
      print(created.token);
      process.stderr.write(`tessera: token ${created.record.name} (${created.record.id}) stored hashed in ${path}; it is shown only now\n`);
    });

  where(token.command('list'))
    .description('list tokens (names, ids, roles and grants; never the tokens)')
    .option('--json', 'print as JSON')
    .action(async (options: { config?: string; file?: string; json?: boolean }) => {
      const records = readTokensFile(await tokensPath(options), true);
      if (options.json)
        print(
          JSON.stringify(
            records.map(({ hash: _hash, ...rest }) => rest),
            null,
            2,
          ),
        );
      else
        print(
          table(
            ['id', 'name', 'roles', 'datasets', 'created'],
            records.map((r: TokenRecord) => [r.id, r.name, r.roles.join(','), r.datasets.join(',') || '-', new Date(r.createdAtMs).toISOString()]),
          ),
        );
    });

  where(token.command('revoke'))
    .description('revoke a token by id or name (daemons stop accepting it within a second)')
    .argument('<id-or-name>')
    .action(async (which: string, options: { config?: string; file?: string }) => {
      const path = await tokensPath(options);
      const records = readTokensFile(path);
      const kept = records.filter((record) => record.id !== which && record.name !== which);
      if (kept.length === records.length) throw new TesseraError('ERR_OPTION_INVALID', `no token with id or name ${JSON.stringify(which)} in ${path}`);
      writeTokensFile(path, kept);
      print(`revoked ${records.length - kept.length} token(s)`);
    });
}
