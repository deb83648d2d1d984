/**
 * `Client`: the typed HTTP client of a Tessera cluster (issue 14 item 5). Given several nodes (URL and region)
 * and a token, it
 *
 * - routes each dataset's requests only to nodes whose region may hold the dataset (it asks a node's
 *   `GET /v1/placement/:dataset`, cached for `placementTtlMs`), nearest first (`near`), and refuses with
 *   `ERR_POLICY_DENIED` when none of its nodes may — a request never reaches a region that may not hold it;
 * - skips nodes that are down or draining (`/readyz` not 200, probed at most every `healthTtlMs`), fails over
 *   to the next allowed node and retries idempotent calls with exponential back-off and full jitter; a call
 *   that is not idempotent (CRDT operations) is sent again only when it surely never arrived;
 * - carries session tokens: a read of a document this client wrote presents the write's token, so the
 *   answering node waits until it holds the write (read-your-writes across nodes);
 * - turns problem+json answers into `TesseraClientError`s with the stable code.
 *
 * HTTPS nodes are verified against the cluster CA (`ca`, PEM) with undici (tls/fetch.ts).
 */
import { type CrdtTypeName, type ErrorCode, type Json, type JsonScalar, TesseraError, checkDatasetName, checkKey } from '@tessera/core';
import { type DocumentView, type ListPage } from '@tessera/store';
import { type WriteAnswer } from '../http/context.js';
import { type BatchItemAnswer, batchBytesMax, batchDocumentsMax } from '../http/routes-batch.js';
import { type ChangeFeedEvent } from '../http/routes-changes.js';
import { type PlacementAnswer } from '../http/routes-placement.js';
import { bytesAsBase64 } from '../problem.js';
import { type ChangesOptions, followChanges } from './changes.js';
import { TesseraClientError } from './errors.js';
import { type RoutePlan } from './routing.js';
import { Transport, type TransportOptions } from './transport.js';

export { type ClientLocation, type ClientNode, type RoutePlan, planRoute, distanceKm } from './routing.js';
export { TesseraClientError } from './errors.js';
export type { ChangesOptions } from './changes.js';
export {
  backoffMs,
  clientAttemptsMaxDefault,
  clientBackoffMsMax,
  clientBackoffMsMin,
  clientHealthTtlMsDefault,
  clientPlacementTtlMsDefault,
  clientProbeTimeoutMs,
  clientTimeoutMsDefault,
} from './transport.js';

/** Session tokens kept (one per document written, oldest dropped first). */
export const clientSessionsMax = 10_000;
/** Bytes of one batch request the client sends (below the node's `batchBytesMax`, leaving room for framing). */
export const clientBatchBytesMax = batchBytesMax - 64 * 1024;

/** What `new Client` takes: the transport's options (transport.ts). */
export type ClientOptions = TransportOptions;

/** A CRDT operation (`POST /v1/kv/:dataset/:key/ops`); bytes are sent as base64. */
export type ClientOperation =
  | { readonly op: 'put'; readonly value: Json; readonly type?: CrdtTypeName }
  | { readonly op: 'set'; readonly path: string | readonly string[]; readonly value: Json; readonly type?: CrdtTypeName }
  | { readonly op: 'delete-field'; readonly path: string | readonly string[]; readonly type?: CrdtTypeName }
  | { readonly op: 'increment'; readonly amount: number; readonly type?: CrdtTypeName }
  | { readonly op: 'add' | 'remove'; readonly element: JsonScalar; readonly type?: CrdtTypeName }
  | { readonly op: 'yjs-update'; readonly update: Uint8Array; readonly type?: CrdtTypeName }
  | { readonly op: 'automerge-changes'; readonly changes: readonly Uint8Array[]; readonly type?: CrdtTypeName }
  | { readonly op: 'tag'; readonly add?: readonly string[]; readonly remove?: readonly string[] };

/** One item of `batch`: a put, a delete, or CRDT operations applied in order. */
export type ClientBatchItem =
  | { readonly key: string; readonly value: Json; readonly type?: CrdtTypeName; readonly tags?: readonly string[] }
  | { readonly key: string; readonly delete: true }
  | { readonly key: string; readonly ops: readonly ClientOperation[] };

/** What `batch` answers: one result per item, in order. */
export interface ClientBatchAnswer {
  readonly written: number;
  readonly failed: number;
  readonly results: readonly BatchItemAnswer[];
}

/** The answers' types (a write, a feed event, a placement, a batch item), re-exported for the client's users. */
export type { WriteAnswer, ChangeFeedEvent, PlacementAnswer, BatchItemAnswer };

/** The typed client of a Tessera cluster. */
export class Client {
  private readonly transport: Transport;
  private readonly sessions = new Map<string, string>();

  constructor(options: ClientOptions) {
    this.transport = new Transport(options);
  }

  /** Writes a document's whole value (creating it with `type` and `tags`). */
  async put(dataset: string, key: string, value: Json, options: { type?: CrdtTypeName; tags?: readonly string[] } = {}): Promise<WriteAnswer> {
    const answer = (await this.transport.send(dataset, {
      method: 'PUT',
      path: docPath(dataset, key),
      body: JSON.stringify({ value, ...options }),
      idempotent: true,
    })) as WriteAnswer;
    this.remember(dataset, key, answer.token);
    return answer;
  }

  /**
   * Reads a document, or undefined when the answering node does not hold it. After a write of this client to
   * the document, the read waits (up to `waitMs`, bounded by the node) until the answering node holds it.
   */
  async get(dataset: string, key: string, options: { token?: string; waitMs?: number } = {}): Promise<DocumentView | undefined> {
    const token = options.token ?? this.sessions.get(docId(dataset, key));
    const params = new URLSearchParams();
    if (token !== undefined) params.set('token', token);
    if (token !== undefined && options.waitMs !== undefined) params.set('waitMs', String(options.waitMs));
    const query = params.size === 0 ? '' : `?${params.toString()}`;
    try {
      return (await this.transport.send(dataset, { method: 'GET', path: docPath(dataset, key) + query, idempotent: true })) as DocumentView;
    } catch (error) {
      if (error instanceof TesseraClientError && error.code === 'ERR_DOC_NOT_FOUND') return undefined;
      throw error;
    }
  }

  /** Deletes a document. */
  async delete(dataset: string, key: string): Promise<WriteAnswer> {
    const answer = (await this.transport.send(dataset, { method: 'DELETE', path: docPath(dataset, key), idempotent: true })) as WriteAnswer;
    this.remember(dataset, key, answer.token);
    return answer;
  }

  /** Applies CRDT operations and tag changes to a document, in order (not retried once it may have arrived). */
  async ops(dataset: string, key: string, operations: readonly ClientOperation[]): Promise<{ results: WriteAnswer[] }> {
    if (operations.length === 0) throw new TesseraError('ERR_OPTION_INVALID', 'ops: give at least one operation');
    const answer = (await this.transport.send(dataset, {
      method: 'POST',
      path: `${docPath(dataset, key)}/ops`,
      body: JSON.stringify(operations, bytesAsBase64),
      idempotent: false,
    })) as { results: WriteAnswer[] };
    this.remember(dataset, key, answer.results.at(-1)?.token ?? null);
    return answer;
  }

  /** Adds `amount` (negative: subtracts) to a counter. */
  increment(dataset: string, key: string, amount: number): Promise<WriteAnswer> {
    return this.one(dataset, key, { op: 'increment', amount });
  }

  /** Adds elements to a set. */
  add(dataset: string, key: string, ...elements: JsonScalar[]): Promise<{ results: WriteAnswer[] }> {
    return this.ops(
      dataset,
      key,
      elements.map((element) => ({ op: 'add', element })),
    );
  }

  /** Removes elements from a set. */
  remove(dataset: string, key: string, ...elements: JsonScalar[]): Promise<{ results: WriteAnswer[] }> {
    return this.ops(
      dataset,
      key,
      elements.map((element) => ({ op: 'remove', element })),
    );
  }

  /** Sets a field of a map (`path`: dotted or a list of names). */
  setField(dataset: string, key: string, path: string | readonly string[], value: Json): Promise<WriteAnswer> {
    return this.one(dataset, key, { op: 'set', path, value });
  }

  /** Deletes a field of a map. */
  deleteField(dataset: string, key: string, path: string | readonly string[]): Promise<WriteAnswer> {
    return this.one(dataset, key, { op: 'delete-field', path });
  }

  /** Applies a Yjs update to a `yjs` document. */
  yjsUpdate(dataset: string, key: string, update: Uint8Array): Promise<WriteAnswer> {
    return this.one(dataset, key, { op: 'yjs-update', update });
  }

  /** Applies Automerge changes to an `automerge` document. */
  automergeChanges(dataset: string, key: string, changes: readonly Uint8Array[]): Promise<WriteAnswer> {
    return this.one(dataset, key, { op: 'automerge-changes', changes });
  }

  /** Adds and removes tags of an existing document. */
  tag(dataset: string, key: string, change: { add?: readonly string[]; remove?: readonly string[] }): Promise<WriteAnswer> {
    return this.one(dataset, key, { op: 'tag', ...change });
  }

  /**
   * Writes many documents: split into requests of at most `batchDocumentsMax` items and `clientBatchBytesMax`
   * bytes, each group-committed by the node. Each item answers on its own (`results[i].index` is the item's
   * index in `items`); a refused item does not stop the others.
   */
  async batch(dataset: string, items: readonly ClientBatchItem[]): Promise<ClientBatchAnswer> {
    checkDatasetName(dataset);
    const results: BatchItemAnswer[] = [];
    let start = 0;
    while (start < items.length) {
      const lines: string[] = [];
      let bytes = 0;
      while (start + lines.length < items.length && lines.length < batchDocumentsMax) {
        const line = JSON.stringify(items[start + lines.length], bytesAsBase64);
        const lineBytes = Buffer.byteLength(line) + 1;
        if (lines.length > 0 && bytes + lineBytes > clientBatchBytesMax) break;
        lines.push(line);
        bytes += lineBytes;
      }
      const answer = (await this.transport.send(dataset, {
        method: 'POST',
        path: `/v1/kv/${encodeURIComponent(dataset)}`,
        body: `${lines.join('\n')}\n`,
        contentType: 'application/x-ndjson',
        idempotent: true,
      })) as ClientBatchAnswer;
      for (const result of answer.results) {
        results.push({ ...result, index: result.index + start });
        if (result.ok && result.key !== null) this.remember(dataset, result.key, result.token);
      }
      start += lines.length;
    }
    const failed = results.filter((result) => !result.ok).length;
    return { written: results.length - failed, failed, results };
  }

  /** A page of a dataset's documents in key order. */
  async list(dataset: string, options: { prefix?: string; limit?: number; cursor?: string | null } = {}): Promise<ListPage> {
    checkDatasetName(dataset);
    const params = new URLSearchParams();
    if (options.prefix !== undefined) params.set('prefix', options.prefix);
    if (options.limit !== undefined) params.set('limit', String(options.limit));
    if (options.cursor !== undefined && options.cursor !== null) params.set('cursor', options.cursor);
    const query = params.size === 0 ? '' : `?${params.toString()}`;
    return (await this.transport.send(dataset, { method: 'GET', path: `/v1/kv/${encodeURIComponent(dataset)}${query}`, idempotent: true })) as ListPage;
  }

  /** Every document of a dataset (paging through `list`). */
  async *documents(dataset: string, options: { prefix?: string; pageSize?: number } = {}): AsyncGenerator<ListPage['items'][number]> {
    let cursor: string | null = null;
    do {
      const page: ListPage = await this.list(dataset, {
        ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
        limit: options.pageSize ?? 1_000,
        cursor,
      });
      yield* page.items;
      cursor = page.cursor;
    } while (cursor !== null);
  }

  /** Which regions may hold a dataset, as a node's enforced policy says (cached for `placementTtlMs`). */
  placement(dataset: string): Promise<PlacementAnswer> {
    return this.transport.placement(dataset);
  }

  /** The nodes a dataset's requests may go to, nearest first. */
  route(dataset: string): Promise<RoutePlan> {
    return this.transport.route(dataset);
  }

  /**
   * The change feed of one node as an async iterator: changes after `since` (that node's sequence numbers),
   * resumed after every reconnect from the last event, without loss or repetition. It follows the nearest
   * ready node that may hold `dataset` (or `node`, a URL); when that node stays unreachable it throws
   * `ERR_NODE_UNAVAILABLE` (cursors do not carry over to another node). Ends when `signal` aborts.
   */
  changes(options: ChangesOptions = {}): AsyncGenerator<ChangeFeedEvent> {
    return followChanges(this.transport, options);
  }

  // ------------------------------------------------------------------ internals
  // ------------------------------------------------------------------ internals

  private async one(dataset: string, key: string, operation: ClientOperation): Promise<WriteAnswer> {
    return (await this.ops(dataset, key, [operation])).results[0]!;
  }

  private remember(dataset: string, key: string, token: string | null): void {
    if (token === null) return;
    const id = docId(dataset, key);
    this.sessions.delete(id);
    this.sessions.set(id, token);
    if (this.sessions.size > clientSessionsMax) this.sessions.delete(this.sessions.keys().next().value!);
  }
}

function docPath(dataset: string, key: string): string {
  checkDatasetName(dataset);
  checkKey(key);
  return `/v1/kv/${encodeURIComponent(dataset)}/${encodeURIComponent(key)}`;
}

function docId(dataset: string, key: string): string {
  return `${dataset}\u0000${key}`;
}

/** Codes a `Client` raises itself (besides those nodes answer). */
export const clientErrorCodes: readonly ErrorCode[] = ['ERR_NODE_UNAVAILABLE', 'ERR_POLICY_DENIED', 'ERR_OPTION_INVALID'];
