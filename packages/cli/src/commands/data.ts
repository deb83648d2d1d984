/** `tessera get|put|del`: read and write documents on a running node. */
import { type Command } from 'commander';
import { TesseraError, checkDatasetName, checkKey, checkUserTags, isCrdtTypeName } from '@tessera/core';
import { callApi, parseBaseUrl } from '../client.js';

/** Bound on a value given on the command line or stdin. */
export const cliValueBytesMax = 1024 * 1024;

function docPath(dataset: string, key: string): string {
  checkDatasetName(dataset);
  checkKey(key);
  return `/v1/kv/${encodeURIComponent(dataset)}/${encodeURIComponent(key)}`;
}

function parseValue(text: string): unknown {
  if (Buffer.byteLength(text) > cliValueBytesMax) {
    throw new TesseraError('ERR_VALUE_TOO_LARGE', `value of ${Buffer.byteLength(text)} bytes exceeds the limit of ${cliValueBytesMax} bytes`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new TesseraError('ERR_VALUE_INVALID', `value is not JSON: ${(error as Error).message} (quote strings: '"text"')`);
  }
}

/** Registers the data commands. */
export function registerDataCommands(program: Command, print: (line: string) => void): void {
  program.command('get')
    .description('read a document from a running node')
    .argument('<dataset>').argument('<key>')
    .option('--url <url>', 'node API', 'http://127.0.0.1:7101')
    .option('--token <token>', 'session token from a write: wait until this node has it')
    .option('--json', 'print the whole document as JSON')
    .action(async (dataset: string, key: string, options: { url: string; token?: string; json?: boolean }) => {
      const query = options.token === undefined ? '' : `?token=${encodeURIComponent(options.token)}`;
      const doc = await callApi(parseBaseUrl(options.url), 'GET', docPath(dataset, key) + query) as { value: unknown; type: string; tags: string[] };
      print(options.json ? JSON.stringify(doc, null, 2) : JSON.stringify(doc.value));
    });

  program.command('put')
    .description('write a document on a running node (value as JSON)')
    .argument('<dataset>').argument('<key>').argument('<value>', "JSON value, e.g. '{\"name\":\"Ada\"}'")
    .option('--url <url>', 'node API', 'http://127.0.0.1:7101')
    .option('--type <type>', 'CRDT type when the write creates the document (map, lww, mv, set)')
    .option('--tag <tag...>', 'tags to set on the document')
    .action(async (dataset: string, key: string, value: string, options: { url: string; type?: string; tag?: string[] }) => {
      if (options.type !== undefined && !isCrdtTypeName(options.type)) {
        throw new TesseraError('ERR_TYPE_UNKNOWN', `--type ${JSON.stringify(options.type)} is unknown: use map, lww, mv, counter, set, yjs or automerge`);
      }
      const body = { value: parseValue(value), ...(options.type ? { type: options.type } : {}), ...(options.tag ? { tags: options.tag } : {}) };
      const result = await callApi(parseBaseUrl(options.url), 'PUT', docPath(dataset, key), body) as { seq: number; token: string };
      print(`ok seq=${result.seq} token=${result.token}`);
    });

  program.command('del')
    .description('delete a document on a running node')
    .argument('<dataset>').argument('<key>')
    .option('--url <url>', 'node API', 'http://127.0.0.1:7101')
    .action(async (dataset: string, key: string, options: { url: string }) => {
      const result = await callApi(parseBaseUrl(options.url), 'DELETE', docPath(dataset, key)) as { seq: number | null };
      print(result.seq === null ? 'ok (nothing to delete)' : `ok seq=${result.seq}`);
    });
}

/** Registers `tag`. */
export function registerTagCommand(program: Command, print: (line: string) => void): void {
  program.command('tag')
    .description('add or remove tags of a document on a running node (quarantine, pii, reviewed, …); tags replicate like values')
    .argument('<dataset>').argument('<key>')
    .option('--url <url>', 'node API', 'http://127.0.0.1:7101')
    .option('--add <tag...>', 'tags to add')
    .option('--remove <tag...>', 'tags to remove')
    .action(async (dataset: string, key: string, options: { url: string; add?: string[]; remove?: string[] }) => {
      if (options.add === undefined && options.remove === undefined) throw new TesseraError('ERR_OPTION_INVALID', 'give --add and/or --remove with the tags to change');
      checkUserTags([...(options.add ?? []), ...(options.remove ?? [])]);
      const body = { op: 'tag', ...(options.add ? { add: options.add } : {}), ...(options.remove ? { remove: options.remove } : {}) };
      const answer = await callApi(parseBaseUrl(options.url), 'POST', `${docPath(dataset, key)}/ops`, body) as { results: Array<{ seq: number | null; token: string }> };
      const result = answer.results[0]!;
      print(result.seq === null ? 'ok (no change)' : `ok seq=${result.seq} token=${result.token}`);
    });
}
