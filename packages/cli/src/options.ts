/**
 * What every command that talks to a node shares: where the node is (`--url`, else `$TESSERA_URL`, else the
 * first node of `tessera dev`) and the bearer token it is sent (`--token` or `--token-file`, else
 * `$TESSERA_TOKEN` or `$TESSERA_TOKEN_FILE`), as an `Authorization: Bearer` header.
 */
import { readFile, stat } from 'node:fs/promises';
import { type Command } from 'commander';
import { TesseraError } from '@tessera/core';
import { type NodeApi, parseBaseUrl } from './client.js';

/** The node a command talks to when neither `--url` nor `$TESSERA_URL` says. */
export const urlDefault = 'http://127.0.0.1:7101';
/** Bound on a token file's size: a bearer token is a line, not a document. */
export const tokenFileBytesMax = 16 * 1024;
/** Bound on a token's length (HTTP servers commonly refuse header lines much past 8 KiB). */
export const tokenCharsMax = 4096;

/** The connection options as commander hands them over. */
export interface ConnectionOptions {
  readonly url?: string;
  readonly token?: string;
  readonly tokenFile?: string;
}

/** Adds `--token` and `--token-file`. */
export function addTokenOptions(command: Command): Command {
  return command
    .option('--token <token>', 'bearer token for the node (default: $TESSERA_TOKEN)')
    .option('--token-file <file>', 'read the bearer token from a file (default: $TESSERA_TOKEN_FILE)');
}

/** Adds `--url` (no commander default, so a command can tell whether it was given), `--token`, `--token-file`. */
export function addConnectionOptions(command: Command, what = 'node API'): Command {
  return addTokenOptions(command.option('--url <url>', `${what} (default: $TESSERA_URL, else ${urlDefault})`));
}

/** An environment variable, or undefined when unset or empty (an empty `TESSERA_URL=` means unset, as in most tools). */
function env(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value === '' ? undefined : value;
}

/** `--url`, else `$TESSERA_URL`, else `urlDefault`. */
export function urlOf(options: { readonly url?: string }): string {
  return options.url ?? env('TESSERA_URL') ?? urlDefault;
}

/** The bearer token from the options or the environment; null when none is given. Never echoes the token. */
export async function tokenOf(options: Pick<ConnectionOptions, 'token' | 'tokenFile'>): Promise<string | null> {
  if (options.token !== undefined && options.tokenFile !== undefined) throw new TesseraError('ERR_OPTION_INVALID', 'give --token or --token-file, not both');
  if (options.token !== undefined) return checkToken(options.token, '--token');
  if (options.tokenFile !== undefined) return readTokenFile(options.tokenFile, '--token-file');
  const token = env('TESSERA_TOKEN');
  const file = env('TESSERA_TOKEN_FILE');
  if (token !== undefined && file !== undefined) throw new TesseraError('ERR_OPTION_INVALID', 'TESSERA_TOKEN and TESSERA_TOKEN_FILE are both set: unset one');
  if (token !== undefined) return checkToken(token, 'TESSERA_TOKEN');
  if (file !== undefined) return readTokenFile(file, 'TESSERA_TOKEN_FILE');
  return null;
}

/** The node to call: `url` (a listed node) or the options' URL, with the options' token. */
export async function nodeApiOf(options: ConnectionOptions, url = urlOf(options)): Promise<NodeApi> {
  return { base: parseBaseUrl(url), token: await tokenOf(options) };
}

async function readTokenFile(path: string, source: string): Promise<string> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (error) {
    throw new TesseraError(
      'ERR_OPTION_INVALID',
      `${source} ${JSON.stringify(path)}: cannot read the token file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    );
  }
  if (size > tokenFileBytesMax)
    throw new TesseraError(
      'ERR_OPTION_INVALID',
      `${source} ${JSON.stringify(path)}: ${size} bytes exceed the limit of ${tokenFileBytesMax} bytes for a token file`,
    );
  // Files written by `echo` or an editor end with a newline; a secret store's may not.
  return checkToken((await readFile(path, 'utf8')).trim(), `${source} ${JSON.stringify(path)}`);
}

/** A token must fit an HTTP header: 1 to `tokenCharsMax` visible ASCII characters. */
function checkToken(token: string, source: string): string {
  if (token.length === 0) throw new TesseraError('ERR_OPTION_INVALID', `${source}: the token is empty`);
  if (token.length > tokenCharsMax)
    throw new TesseraError('ERR_OPTION_INVALID', `${source}: a token of ${token.length} characters exceeds the limit of ${tokenCharsMax}`);
  const bad = [...token].findIndex((c) => c < '!' || c > '~');
  if (bad !== -1)
    throw new TesseraError(
      'ERR_OPTION_INVALID',
      `${source}: the token has a space, control or non-ASCII character at position ${bad} (tokens are visible ASCII)`,
    );
  return token;
}
