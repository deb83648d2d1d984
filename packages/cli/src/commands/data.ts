/** `tessera get|put|del|list|tag`: read, write and list documents on a running node. */
import { type Command } from 'commander';
import { TesseraError, checkDatasetName, checkKey, checkUserTags, isCrdtTypeName } from '@tessera/core';
import { callApi } from '../client.js';
import { type ConnectionOptions, addConnectionOptions, nodeApiOf } from '../options.js';
import { type CliContext } from '../program.js';

/** Bound on a value given on the command line or stdin. */
export const cliValueBytesMax = 1024 * 1024;
/** Documents per `list` page when `--limit` is not given. */
export const listLimitDefault = 100;
/** Documents per `list` page at most (the store's page bound). */
export const listLimitMax = 1_000;
/** Pages `list --all` reads at most (ten million documents at the largest page). */
export const listPagesMax = 10_000;

/** The path of a document, its names checked as the node would check them. */
export function docPath(dataset: string, key: string): string {
  checkDatasetName(dataset);
  checkKey(key);
  return `/v1/kv/${encodeURIComponent(dataset)}/${encodeURIComponent(key)}`;
}

/** Parses a JSON value given on the command line (bounded). */
export function parseValue(text: string, what = 'value'): unknown {
  if (Buffer.byteLength(text) > cliValueBytesMax) {
    throw new TesseraError('ERR_VALUE_TOO_LARGE', `${what} of ${Buffer.byteLength(text)} bytes exceeds the limit of ${cliValueBytesMax} bytes`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new TesseraError('ERR_VALUE_INVALID', `${what} is not JSON: ${(error as Error).message} (quote strings: '"text"')`);
  }
}

/** Checks `--type`. */
export function checkTypeOption(type: string | undefined): void {
  if (type !== undefined && !isCrdtTypeName(type)) {
    throw new TesseraError('ERR_TYPE_UNKNOWN', `--type ${JSON.stringify(type)} is unknown: use map, lww, mv, counter, set, yjs or automerge`);
  }
}

/** A write's answer as one line: its sequence number and the session token to read it elsewhere. */
export function writeLine(result: { seq: number | null; token: string }, unchanged = 'ok (no change)'): string {
  return result.seq === null ? unchanged : `ok seq=${result.seq} session=${result.token}`;
}

function pageSize(text: string | undefined): number {
  if (text === undefined) return listLimitDefault;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > listLimitMax)
    throw new TesseraError('ERR_OPTION_INVALID', `--limit ${JSON.stringify(text)} must be an integer from 1 to ${listLimitMax}`);
  return n;
}

type ListItem = { key: string; type: string; value: unknown; tags: string[] } | { key: string; error: { code: string; message: string } };

/** Registers `get`, `put`, `del`, `list` and `tag`. */
export function registerDataCommands(program: Command, print: (line: string) => void, context: CliContext): void {
  addConnectionOptions(program.command('get').description('read a document from a running node').argument('<dataset>').argument('<key>'))
    .option('--session <token>', 'session token a write printed: wait until this node has that write')
    .option('--json', 'print the whole document as JSON')
    .action(async (dataset: string, key: string, options: ConnectionOptions & { session?: string; json?: boolean }) => {
      const query = options.session === undefined ? '' : `?token=${encodeURIComponent(options.session)}`;
      const doc = (await callApi(await nodeApiOf(options), 'GET', docPath(dataset, key) + query)) as { value: unknown };
      print(options.json ? JSON.stringify(doc, null, 2) : JSON.stringify(doc.value));
    });

  addConnectionOptions(
    program
      .command('put')
      .description('write a document on a running node (value as JSON); prints the session token of the write')
      .argument('<dataset>')
      .argument('<key>')
      .argument('<value>', 'JSON value, e.g. \'{"name":"Ada"}\''),
  )
    .option('--type <type>', 'CRDT type when the write creates the document (map, lww, mv, set)')
    .option('--tag <tag...>', 'tags to set on the document')
    .action(async (dataset: string, key: string, value: string, options: ConnectionOptions & { type?: string; tag?: string[] }) => {
      checkTypeOption(options.type);
      const body = { value: parseValue(value), ...(options.type ? { type: options.type } : {}), ...(options.tag ? { tags: options.tag } : {}) };
      print(writeLine((await callApi(await nodeApiOf(options), 'PUT', docPath(dataset, key), body)) as { seq: number; token: string }));
    });

  addConnectionOptions(program.command('del').description('delete a document on a running node').argument('<dataset>').argument('<key>')).action(
    async (dataset: string, key: string, options: ConnectionOptions) => {
      print(
        writeLine(
          (await callApi(await nodeApiOf(options), 'DELETE', docPath(dataset, key))) as { seq: number | null; token: string },
          'ok (nothing to delete)',
        ),
      );
    },
  );

  addConnectionOptions(
    program
      .command('list')
      .description("list a dataset's documents in key order: one line per document, key and value separated by a tab")
      .argument('<dataset>'),
  )
    .option('--prefix <prefix>', 'only keys starting with this')
    .option('--limit <n>', `documents per page (default ${listLimitDefault}, at most ${listLimitMax})`)
    .option('--cursor <cursor>', 'continue where a previous page ended')
    .option('--all', `follow the cursor to the end (at most ${listPagesMax} pages)`)
    .option('--json', 'one JSON document per line (key, type, value, tags)')
    .action(async (dataset: string, options: ConnectionOptions & { prefix?: string; limit?: string; cursor?: string; all?: boolean; json?: boolean }) => {
      checkDatasetName(dataset);
      if (options.prefix !== undefined && options.prefix !== '') checkKey(options.prefix);
      const limit = pageSize(options.limit);
      const node = await nodeApiOf(options);
      let cursor: string | null = options.cursor ?? null;
      for (let page = 0; page < listPagesMax; page++) {
        const params = new URLSearchParams({ limit: String(limit) });
        if (options.prefix !== undefined) params.set('prefix', options.prefix);
        if (cursor !== null) params.set('cursor', cursor);
        const answer = (await callApi(node, 'GET', `/v1/kv/${encodeURIComponent(dataset)}?${params}`)) as { items: ListItem[]; cursor: string | null };
        for (const item of answer.items) {
          if (options.json) print(JSON.stringify(item));
          else print('error' in item ? `${item.key}\t(unreadable: ${item.error.code} ${item.error.message})` : `${item.key}\t${JSON.stringify(item.value)}`);
        }
        cursor = answer.cursor;
        if (cursor === null) return;
        if (!options.all) break;
      }
      context.note(options.all ? `stopped after ${listPagesMax} pages: continue with --cursor ${cursor}` : `more documents: --cursor ${cursor}`);
    });

  addConnectionOptions(
    program
      .command('tag')
      .description('add or remove tags of a document on a running node (quarantine, pii, reviewed, …); tags replicate like values')
      .argument('<dataset>')
      .argument('<key>'),
  )
    .option('--add <tag...>', 'tags to add')
    .option('--remove <tag...>', 'tags to remove')
    .action(async (dataset: string, key: string, options: ConnectionOptions & { add?: string[]; remove?: string[] }) => {
      if (options.add === undefined && options.remove === undefined)
        throw new TesseraError('ERR_OPTION_INVALID', 'give --add and/or --remove with the tags to change');
      checkUserTags([...(options.add ?? []), ...(options.remove ?? [])]);
      const body = { op: 'tag', ...(options.add ? { add: options.add } : {}), ...(options.remove ? { remove: options.remove } : {}) };
      const answer = (await callApi(await nodeApiOf(options), 'POST', `${docPath(dataset, key)}/ops`, body)) as {
        results: Array<{ seq: number | null; token: string }>;
      };
      print(writeLine(answer.results[0]!));
    });
}
