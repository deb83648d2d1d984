/**
 * Reads: a document as users see it, a page of a dataset's documents, conflict records. Reads see every
 * acknowledged write (the cache holds the committed state of documents with writes in flight).
 */
import {
  type DocState,
  TesseraError,
  checkDatasetName,
  checkKey,
  conflictsLimitMax,
  crdtType,
  decodeDoc,
  docExists,
  docFacts,
  docValue,
  listLimitMax,
} from '@tessera/core';
import { conflictRange, docKey, docRange, parseDocKey } from '../layout.js';
import { type ConflictRecord, type DocumentView, type ListPage } from '../types.js';
import { type ReplicaCore, parseJsonBytes } from './core.js';
import { checkLimit } from './log.js';

/** Conflict records returned with one `get`. */
export const conflictsPerGetMax = 100;
/** Default page size of `list`. */
export const listLimitDefault = 100;

/** The committed state of a document, or undefined when absent (checks its names). */
export async function state(c: ReplicaCore, dataset: string, key: string): Promise<DocState | undefined> {
  c.checkOpen();
  checkDatasetName(dataset);
  checkKey(key);
  return (await c.committedState(dataset, key)) ?? undefined;
}

/** The document as users see it, or undefined when it does not exist (never written, or deleted). */
export async function view(c: ReplicaCore, dataset: string, key: string): Promise<DocumentView | undefined> {
  const doc = await state(c, dataset, key);
  if (doc === undefined || !docExists(doc)) return undefined;
  const conflictList = c.conflicted.has(docKey(dataset, key)) ? await conflicts(c, { dataset, key, limit: conflictsPerGetMax }) : [];
  const facts = docFacts(dataset, key, doc);
  const out: DocumentView = {
    dataset,
    key,
    type: doc.type,
    value: docValue(doc),
    tags: facts.tags,
    ...(facts.origin === null ? {} : { origin: facts.origin }),
    context: doc.ctx.toJSON(),
    conflicts: conflictList,
  };
  if ((doc.type === 'lww' || doc.type === 'mv') && (doc.body as unknown[]).length > 1) {
    return { ...out, siblings: crdtType('mv').value(doc.body) as unknown[] };
  }
  return out;
}

/** A page of a dataset's documents, in key order. Corrupt records appear as items with an error. */
export async function list(c: ReplicaCore, dataset: string, options: { prefix?: string; limit?: number; cursor?: string | null } = {}): Promise<ListPage> {
  c.checkOpen();
  checkDatasetName(dataset);
  const prefix = options.prefix ?? '';
  if (typeof prefix !== 'string') throw new TesseraError('ERR_OPTION_INVALID', 'list: prefix must be a string');
  if (prefix !== '') checkKey(prefix);
  const limit = checkLimit('list', options.limit ?? listLimitDefault, listLimitMax);
  const range: { gte?: string; gt?: string; lt: string } = docRange(dataset, prefix);
  if (options.cursor !== undefined && options.cursor !== null) {
    const after = Buffer.from(String(options.cursor), 'base64url').toString('utf8');
    checkKey(after);
    delete range.gte;
    range.gt = docKey(dataset, after);
  }
  const items: Array<ListPage['items'][number]> = [];
  let last: string | null = null;
  let more = false;
  // A page reads a bounded number of records; deleted documents are skipped, so a page may end short.
  const scanMax = limit * 4 + 1;
  let scanned = 0;
  for await (const [stored, bytes] of c.storage.entries({ ...range, limit: scanMax })) {
    scanned++;
    const { key } = parseDocKey(stored);
    if (items.length === limit) {
      more = true;
      break;
    }
    last = key;
    let doc: DocState;
    try {
      doc = decodeDoc(bytes, `${dataset}/${key}`);
    } catch (error) {
      items.push({ key, error: { code: 'ERR_STORE_CORRUPT', message: (error as Error).message } });
      continue;
    }
    if (!docExists(doc)) continue;
    items.push({ key, type: doc.type, value: docValue(doc), tags: docFacts(dataset, key, doc).tags });
  }
  // The scan stopping on its bound (not at the end of the range) also means there may be more.
  if (scanned === scanMax) more = true;
  return { items, cursor: more && last !== null ? Buffer.from(last, 'utf8').toString('base64url') : null };
}

/** Conflict records, optionally for one dataset or document, in key order. */
export async function conflicts(c: ReplicaCore, options: { dataset?: string; key?: string; limit?: number } = {}): Promise<ConflictRecord[]> {
  c.checkOpen();
  if (options.dataset !== undefined) checkDatasetName(options.dataset);
  if (options.key !== undefined) {
    if (options.dataset === undefined) throw new TesseraError('ERR_OPTION_INVALID', 'conflicts: key needs a dataset');
    checkKey(options.key);
  }
  const limit = checkLimit('conflicts', options.limit ?? conflictsLimitMax, conflictsLimitMax);
  const out: ConflictRecord[] = [];
  for await (const [, bytes] of c.storage.entries({ ...conflictRange(options.dataset, options.key), limit })) out.push(parseJsonBytes(bytes) as ConflictRecord);
  return out;
}
