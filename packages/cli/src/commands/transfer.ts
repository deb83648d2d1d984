/**
 * `tessera import|export|watch` (issue 14 item 3): documents in and out of a running node as NDJSON, and the
 * change feed.
 *
 * - `import <dataset> <file>` reads one item a line (`{ "key", "value", "type"?, "tags"? }`,
 *   `{ "key", "delete": true }` or `{ "key", "ops": [...] }`; `-` reads stdin; see `importItem`) and sends them through the batch route
 *   (`POST /v1/kv/:dataset`, NDJSON) in batches within the node's limits; a progress bar on a terminal, a plain
 *   line per batch otherwise; every refused line is reported with its number and code, and the exit status is 1.
 * - `export <dataset>` prints every document as one such line (what `import` reads back).
 * - `watch` prints the change feed as it comes (server-sent events), resuming after a dropped connection.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { type Command } from 'commander';
import { TesseraError, checkDatasetName } from '@tessera/core';
import { batchBytesMax, batchDocumentsMax, readEventStream } from '@tessera/server';
import { RawBody, callApi, openApi } from '../client.js';
import { type ConnectionOptions, addConnectionOptions, nodeApiOf } from '../options.js';
import { type CliContext } from '../program.js';

/** Bytes of one import request (below the node's `batchBytesMax`, leaving room for framing). */
export const importBatchBytesMax = batchBytesMax - 64 * 1024;
/** Timeout of one batch request. */
export const importBatchTimeoutMs = 120_000;
/** Refused lines reported one by one; past this only counted. */
export const importFailuresShownMax = 100;
/** Pages `export` reads at most (ten million documents). */
export const exportPagesMax = 10_000;
/** Documents per `export` page. */
export const exportPageSize = 1_000;
/** Reconnects of `watch` in a row before it gives up. */
export const watchReconnectsMax = 10;

type BatchResult = { index: number; ok: boolean; code?: string; detail?: string };

/**
 * A line of the file as the batch item to send. Lines `export` wrote (`{ key, type, value, tags }`) are turned
 * into what recreates the document: a counter's value into an increment, a Yjs state into an update, an `mv`
 * register's single value into a put; other lines go as they are. Throws a `TesseraError` for what cannot be
 * recreated (an `mv` register with concurrent values, an Automerge document's JSON view).
 */
export function importItem(item: unknown): unknown {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return item;
  const line = item as { key?: unknown; type?: unknown; value?: unknown; tags?: unknown; ops?: unknown; delete?: unknown };
  if (line.ops !== undefined || line.delete !== undefined || !('value' in line)) return item;
  const tags = Array.isArray(line.tags) && line.tags.length > 0 ? [{ op: 'tag', add: line.tags }] : [];
  switch (line.type) {
    case 'counter':
      return { key: line.key, ops: [{ op: 'increment', amount: line.value, type: 'counter' }, ...tags] };
    case 'yjs':
      return { key: line.key, ops: [{ op: 'yjs-update', update: line.value, type: 'yjs' }, ...tags] };
    case 'mv':
      if (!Array.isArray(line.value) || line.value.length !== 1) {
        throw new TesseraError(
          'ERR_VALUE_INVALID',
          `an mv register with ${Array.isArray(line.value) ? line.value.length : 'no list of'} concurrent values cannot be recreated: write one value to resolve them, then export again`,
        );
      }
      return { ...line, value: line.value[0] as unknown };
    case 'automerge':
      throw new TesseraError(
        'ERR_VALUE_INVALID',
        'an Automerge document is exported as its JSON view, which is no Automerge change: copy it with the embedded API (replica.automerge)',
      );
    default:
      return item;
  }
}

/** Registers `import`, `export` and `watch`. */
export function registerTransferCommands(program: Command, print: (line: string) => void, context: CliContext): void {
  addConnectionOptions(
    program
      .command('import')
      .description('write the documents of an NDJSON file (one { "key", "value", "type"?, "tags"? } a line; - for stdin) in batches')
      .argument('<dataset>')
      .argument('<file>'),
  ).action(async (dataset: string, file: string, options: ConnectionOptions) => {
    checkDatasetName(dataset);
    const node = await nodeApiOf(options);
    const totalBytes = file === '-' ? null : await fileSize(file);
    const progress = progressReporter(context, totalBytes);
    const input = file === '-' ? process.stdin : createReadStream(file);
    const lines = createInterface({ input, crlfDelay: Infinity });
    let batch: Array<{ line: number; text: string }> = [];
    let batchBytes = 0;
    let readBytes = 0;
    let lineNumber = 0;
    const totals = { written: 0, failed: 0, shown: 0 };
    const fail = (line: number, code: string, detail: string) => {
      totals.failed++;
      if (totals.shown++ < importFailuresShownMax) context.note(`line ${line}: ${code}: ${detail}`);
    };
    const flush = async () => {
      if (batch.length === 0) return;
      const body = new RawBody(`${batch.map((item) => item.text).join('\n')}\n`, 'application/x-ndjson');
      const answer = (await callApi(node, 'POST', `/v1/kv/${encodeURIComponent(dataset)}`, body, importBatchTimeoutMs)) as { results: BatchResult[] };
      for (const result of answer.results) {
        if (result.ok) totals.written++;
        else fail(batch[result.index]!.line, result.code ?? 'ERR_INTERNAL', result.detail ?? '');
      }
      batch = [];
      batchBytes = 0;
      progress(readBytes, totals.written + totals.failed);
    };
    for await (let text of lines) {
      lineNumber++;
      readBytes += Buffer.byteLength(text) + 1;
      if (text.trim() === '') continue;
      if (Buffer.byteLength(text) + 1 > importBatchBytesMax) {
        fail(lineNumber, 'ERR_BATCH_TOO_LARGE', `the line has ${Buffer.byteLength(text) + 1} bytes; one batch holds at most ${importBatchBytesMax} bytes`);
        continue;
      }
      let item: unknown;
      try {
        item = importItem(JSON.parse(text));
      } catch (error) {
        if (error instanceof TesseraError) fail(lineNumber, error.code, error.message);
        else fail(lineNumber, 'ERR_BODY_INVALID', `not JSON: ${(error as Error).message.slice(0, 200)}`);
        continue;
      }
      text = JSON.stringify(item);
      const bytes = Buffer.byteLength(text) + 1;
      if (bytes > importBatchBytesMax) {
        fail(lineNumber, 'ERR_BATCH_TOO_LARGE', `the item has ${bytes} bytes; one batch holds at most ${importBatchBytesMax} bytes`);
        continue;
      }
      if (batch.length >= batchDocumentsMax || batchBytes + bytes > importBatchBytesMax) await flush();
      batch.push({ line: lineNumber, text });
      batchBytes += bytes;
    }
    await flush();
    progress(null, totals.written + totals.failed);
    if (totals.shown > importFailuresShownMax) context.note(`… and ${totals.shown - importFailuresShownMax} more refused lines`);
    print(`imported ${totals.written + totals.failed} documents into ${dataset}: ${totals.written} written, ${totals.failed} refused`);
    if (totals.failed > 0) context.exitCode = 1;
  });

  addConnectionOptions(
    program
      .command('export')
      .description('print every document of a dataset as NDJSON ({ "key", "type", "value", "tags" } a line; what import reads)')
      .argument('<dataset>'),
  )
    .option('--prefix <prefix>', 'only keys that start with this')
    .action(async (dataset: string, options: ConnectionOptions & { prefix?: string }) => {
      checkDatasetName(dataset);
      const node = await nodeApiOf(options);
      let cursor: string | null = null;
      for (let page = 0; page < exportPagesMax; page++) {
        const params = new URLSearchParams({ limit: String(exportPageSize) });
        if (options.prefix !== undefined) params.set('prefix', options.prefix);
        if (cursor !== null) params.set('cursor', cursor);
        const answer = (await callApi(node, 'GET', `/v1/kv/${encodeURIComponent(dataset)}?${params}`)) as {
          items: Array<{ key: string; type?: string; value?: unknown; tags?: string[]; error?: { code: string; message: string } }>;
          cursor: string | null;
        };
        for (const item of answer.items) {
          if (item.error !== undefined) {
            context.note(`${item.key}: unreadable (${item.error.code} ${item.error.message})`);
            context.exitCode = 1;
            continue;
          }
          print(JSON.stringify({ key: item.key, type: item.type, value: item.value, tags: item.tags }));
        }
        cursor = answer.cursor;
        if (cursor === null) return;
        // A slow reader: let stdout drain before the next page instead of buffering the dataset.
        if (process.stdout.writableNeedDrain) await once(process.stdout, 'drain');
      }
      context.note(`stopped after ${exportPagesMax} pages: the dataset has more documents (use --prefix to export it in parts)`);
      context.exitCode = 1;
    });

  addConnectionOptions(program.command('watch').description('print the change feed as it comes: one line per change (seq, dataset/key, value or (deleted))'))
    .option('--dataset <name>', 'only this dataset')
    .option('--since <seq>', 'start after this sequence number of the node (default: its current head)')
    .option('--json', 'print each change as JSON')
    .option('--count <n>', 'stop after n changes')
    .action(async (options: ConnectionOptions & { dataset?: string; since?: string; json?: boolean; count?: string }) => {
      if (options.dataset !== undefined) checkDatasetName(options.dataset);
      const count = options.count === undefined ? Infinity : positiveInteger('--count', options.count);
      const node = await nodeApiOf(options);
      // Without --since, from the node's head: what changes from now on.
      let cursor =
        options.since === undefined
          ? (
              (await callApi(
                node,
                'GET',
                `/v1/changes?${new URLSearchParams({ limit: '1', ...(options.dataset === undefined ? {} : { dataset: options.dataset }) })}`,
              )) as { head: number }
            ).head
          : positiveInteger('--since', options.since, true);
      let seen = 0;
      let failures = 0;
      while (seen < count) {
        const params = new URLSearchParams({ since: String(cursor) });
        if (options.dataset !== undefined) params.set('dataset', options.dataset);
        const controller = new AbortController();
        try {
          const response = await openApi(node, `/v1/changes?${params}`, { accept: 'text/event-stream', 'last-event-id': String(cursor) }, controller.signal);
          if (!response.ok) {
            const problem = (await response.json().catch(() => null)) as { code?: string; detail?: string } | null;
            throw new TesseraError('ERR_OPTION_INVALID', `GET /v1/changes: ${response.status} ${problem?.code ?? ''}: ${problem?.detail ?? ''}`.trim());
          }
          failures = 0;
          for await (const event of readEventStream(response.body!)) {
            if (event.event === 'checkpoint' && event.id !== null) cursor = Number(event.id);
            if (event.event !== 'change') continue;
            const change = JSON.parse(event.data) as { seq: number; dataset: string; key: string; deleted: boolean; value?: unknown };
            cursor = change.seq;
            print(options.json ? event.data : `${change.seq}\t${change.dataset}/${change.key}\t${change.deleted ? '(deleted)' : JSON.stringify(change.value)}`);
            if (++seen >= count) break;
          }
        } catch (error) {
          if (error instanceof TesseraError && !/cannot reach the node/.test(error.message)) throw error;
          if (++failures > watchReconnectsMax) throw error;
          await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 100 * 2 ** failures)));
        } finally {
          controller.abort();
        }
      }
    });
}

function positiveInteger(option: string, text: string, zero = false): number {
  const n = Number(text);
  if (!/^[0-9]{1,15}$/.test(text) || (!zero && n === 0))
    throw new TesseraError('ERR_OPTION_INVALID', `${option} ${JSON.stringify(text)} must be a ${zero ? 'non-negative' : 'positive'} integer`);
  return n;
}

async function fileSize(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch (error) {
    throw new TesseraError(
      'ERR_OPTION_INVALID',
      `file ${JSON.stringify(file)} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    );
  }
}

/** Reports progress: a bar redrawn on a terminal's stderr, else a plain line per batch. `bytes` null: done. */
function progressReporter(context: CliContext, totalBytes: number | null): (bytes: number | null, documents: number) => void {
  const tty = process.stderr.isTTY === true;
  const width = 30;
  return (bytes, documents) => {
    if (!tty) {
      if (bytes !== null)
        context.note(
          `sent ${documents} documents${totalBytes === null ? '' : ` (${Math.floor((100 * Math.min(bytes, totalBytes)) / Math.max(1, totalBytes))}%)`}`,
        );
      return;
    }
    if (bytes === null) {
      process.stderr.write('\n');
      return;
    }
    const share = totalBytes === null || totalBytes === 0 ? null : Math.min(1, bytes / totalBytes);
    const bar = share === null ? '' : `[${'#'.repeat(Math.round(share * width)).padEnd(width, '.')}] ${Math.floor(share * 100)}% `;
    process.stderr.write(`\r${bar}${documents} documents`);
  };
}
