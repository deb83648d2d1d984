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
import {
  type CrdtTypeName, type ErrorCode, type Json, type JsonScalar, TesseraError, checkDatasetName, checkKey,
} from '@tessera/core';
import { type DocumentView, type ListPage } from '@tessera/store';
import { type WriteAnswer } from '../http/context.js';
import { type BatchItemAnswer, batchBytesMax, batchDocumentsMax } from '../http/routes-batch.js';
import { type ChangeFeedEvent } from '../http/routes-changes.js';
import { type PlacementAnswer } from '../http/routes-placement.js';
import { bytesAsBase64 } from '../problem.js';
import { caFetch } from '../tls/fetch.js';
import { TesseraClientError, errorOfAnswer } from './errors.js';
import { readEventStream } from './feed.js';
import { type ClientLocation, type ClientNode, type RoutePlan, planRoute } from './routing.js';

export { type ClientLocation, type ClientNode, type RoutePlan, planRoute, distanceKm } from './routing.js';
export { TesseraClientError } from './errors.js';

/** Timeout of one request unless `timeoutMs` says otherwise. */
export const clientTimeoutMsDefault = 10_000;
/** Rounds over the allowed nodes before a call gives up. */
export const clientAttemptsMaxDefault = 4;
/** Back-off between rounds: from this… */
export const clientBackoffMsMin = 50;
/** …doubling up to this. */
export const clientBackoffMsMax = 2_000;
/** How long a node's readiness is trusted before it is probed again. */
export const clientHealthTtlMsDefault = 5_000;
/** Timeout of one readiness probe. */
export const clientProbeTimeoutMs = 2_000;
/** How long a dataset's placement is trusted before it is asked again. */
export const clientPlacementTtlMsDefault = 30_000;
/** Session tokens kept (one per document written, oldest dropped first). */
export const clientSessionsMax = 10_000;
/** Bytes of one batch request the client sends (below the node's `batchBytesMax`, leaving room for framing). */
export const clientBatchBytesMax = batchBytesMax - 64 * 1024;

/** What `new Client` takes. */
export interface ClientOptions {
  /** The nodes to call: at least one. */
  readonly nodes: readonly ClientNode[];
  /** An API token (`tessera token create`). */
  readonly token: string;
  /** The cluster CA (PEM) HTTPS nodes' certificates must chain to; default: the system's roots. */
  readonly ca?: string;
  /** The fetch to use (tests; a custom agent); overrides `ca`. */
  readonly fetch?: typeof fetch;
  /** Where the client is: a region name or `[lat, lon]`; nearer nodes are tried first. Default: the order of `nodes`. */
  readonly near?: ClientLocation;
  readonly timeoutMs?: number;
  readonly attemptsMax?: number;
  readonly healthTtlMs?: number;
  readonly placementTtlMs?: number;
}

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

interface Call {
  readonly method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  readonly path: string;
  readonly body?: string;
  readonly contentType?: string;
  /** Safe to send again after a failure that may have reached the node. */
  readonly idempotent: boolean;
}

interface Answer {
  readonly status: number;
  readonly body: unknown;
  readonly node: ClientNode;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Exponential back-off with full jitter: a random wait up to `min * 2^attempt`, at most `max`. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(clientBackoffMsMax, clientBackoffMsMin * 2 ** attempt));
}

/** The typed client of a Tessera cluster. */
export class Client {
  private readonly nodes: readonly ClientNode[];
  private readonly token: string;
  private readonly doFetch: typeof fetch;
  private readonly near: ClientLocation | undefined;
  private readonly timeoutMs: number;
  private readonly attemptsMax: number;
  private readonly healthTtlMs: number;
  private readonly placementTtlMs: number;
  private readonly health = new Map<string, { ready: boolean; atMs: number }>();
  private readonly placements = new Map<string, { answer: PlacementAnswer; atMs: number }>();
  private readonly sessions = new Map<string, string>();

  constructor(options: ClientOptions) {
    if (!Array.isArray(options.nodes) || options.nodes.length === 0) throw new TesseraError('ERR_OPTION_INVALID', 'Client: nodes must list at least one { url, region }');
    for (const node of options.nodes) {
      try {
        const url = new URL(node.url);
        if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http');
      } catch {
        throw new TesseraError('ERR_OPTION_INVALID', `Client: node url ${JSON.stringify(node.url)} is not an http(s) URL`);
      }
      if (typeof node.region !== 'string' || node.region === '') throw new TesseraError('ERR_OPTION_INVALID', `Client: node ${node.url} needs its region`);
    }
    if (typeof options.token !== 'string' || options.token === '') throw new TesseraError('ERR_OPTION_INVALID', 'Client: token is required (tessera token create)');
    this.nodes = options.nodes.map((node) => ({ url: node.url.replace(/\/+$/, ''), region: node.region }));
    this.token = options.token;
    this.doFetch = options.fetch ?? (options.ca === undefined ? fetch : caFetch(options.ca));
    this.near = options.near;
    this.timeoutMs = options.timeoutMs ?? clientTimeoutMsDefault;
    this.attemptsMax = options.attemptsMax ?? clientAttemptsMaxDefault;
    this.healthTtlMs = options.healthTtlMs ?? clientHealthTtlMsDefault;
    this.placementTtlMs = options.placementTtlMs ?? clientPlacementTtlMsDefault;
  }

  // ------------------------------------------------------------------ documents

  /** Writes a document's whole value (creating it with `type` and `tags`). */
  async put(dataset: string, key: string, value: Json, options: { type?: CrdtTypeName; tags?: readonly string[] } = {}): Promise<WriteAnswer> {
    const answer = await this.send(dataset, { method: 'PUT', path: docPath(dataset, key), body: JSON.stringify({ value, ...options }), idempotent: true }) as WriteAnswer;
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
      return await this.send(dataset, { method: 'GET', path: docPath(dataset, key) + query, idempotent: true }) as DocumentView;
    } catch (error) {
      if (error instanceof TesseraClientError && error.code === 'ERR_DOC_NOT_FOUND') return undefined;
      throw error;
    }
  }

  /** Deletes a document. */
  async delete(dataset: string, key: string): Promise<WriteAnswer> {
    const answer = await this.send(dataset, { method: 'DELETE', path: docPath(dataset, key), idempotent: true }) as WriteAnswer;
    this.remember(dataset, key, answer.token);
    return answer;
  }

  /** Applies CRDT operations and tag changes to a document, in order (not retried once it may have arrived). */
  async ops(dataset: string, key: string, operations: readonly ClientOperation[]): Promise<{ results: WriteAnswer[] }> {
    if (operations.length === 0) throw new TesseraError('ERR_OPTION_INVALID', 'ops: give at least one operation');
    const answer = await this.send(dataset, {
      method: 'POST', path: `${docPath(dataset, key)}/ops`, body: JSON.stringify(operations, bytesAsBase64), idempotent: false,
    }) as { results: WriteAnswer[] };
    this.remember(dataset, key, answer.results.at(-1)?.token ?? null);
    return answer;
  }

  /** Adds `amount` (negative: subtracts) to a counter. */
  increment(dataset: string, key: string, amount: number): Promise<WriteAnswer> {
    return this.one(dataset, key, { op: 'increment', amount });
  }

  /** Adds elements to a set. */
  add(dataset: string, key: string, ...elements: JsonScalar[]): Promise<{ results: WriteAnswer[] }> {
    return this.ops(dataset, key, elements.map((element) => ({ op: 'add', element })));
  }

  /** Removes elements from a set. */
  remove(dataset: string, key: string, ...elements: JsonScalar[]): Promise<{ results: WriteAnswer[] }> {
    return this.ops(dataset, key, elements.map((element) => ({ op: 'remove', element })));
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
      const answer = await this.send(dataset, {
        method: 'POST', path: `/v1/kv/${encodeURIComponent(dataset)}`, body: `${lines.join('\n')}\n`, contentType: 'application/x-ndjson', idempotent: true,
      }) as ClientBatchAnswer;
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
    return await this.send(dataset, { method: 'GET', path: `/v1/kv/${encodeURIComponent(dataset)}${query}`, idempotent: true }) as ListPage;
  }

  /** Every document of a dataset (paging through `list`). */
  async *documents(dataset: string, options: { prefix?: string; pageSize?: number } = {}): AsyncGenerator<ListPage['items'][number]> {
    let cursor: string | null = null;
    do {
      const page: ListPage = await this.list(dataset, { ...(options.prefix === undefined ? {} : { prefix: options.prefix }), limit: options.pageSize ?? 1_000, cursor });
      yield* page.items;
      cursor = page.cursor;
    } while (cursor !== null);
  }

  /** Which regions may hold a dataset, as a node's enforced policy says (cached for `placementTtlMs`). */
  async placement(dataset: string): Promise<PlacementAnswer> {
    checkDatasetName(dataset);
    const cached = this.placements.get(dataset);
    if (cached !== undefined && Date.now() - cached.atMs < this.placementTtlMs) return cached.answer;
    const answer = await this.send(null, { method: 'GET', path: `/v1/placement/${encodeURIComponent(dataset)}`, idempotent: true }) as PlacementAnswer;
    this.placements.set(dataset, { answer, atMs: Date.now() });
    return answer;
  }

  /** The nodes a dataset's requests may go to, nearest first. */
  async route(dataset: string): Promise<RoutePlan> {
    return planRoute(this.nodes, await this.placement(dataset), this.near);
  }

  /**
   * The change feed of one node as an async iterator: changes after `since` (that node's sequence numbers),
   * resumed after every reconnect from the last event, without loss or repetition. It follows the nearest
   * healthy node that may hold `dataset` (or `node`, a URL); when that node stays unreachable it throws
   * `ERR_NODE_UNAVAILABLE` (cursors do not carry over to another node). Ends when `signal` aborts.
   */
  async *changes(options: { since?: number; dataset?: string; node?: string; signal?: AbortSignal } = {}): AsyncGenerator<ChangeFeedEvent> {
    if (options.dataset !== undefined) checkDatasetName(options.dataset);
    const chosen = options.node?.replace(/\/+$/, '');
    const node = chosen !== undefined
      ? this.nodes.find((n) => n.url === chosen) ?? { url: chosen, region: '' }
      : await this.firstReady(options.dataset === undefined ? planRoute(this.nodes, null, this.near).nodes : (await this.route(options.dataset)).nodes, options.dataset ?? null);
    let cursor = options.since ?? 0;
    let failures = 0;
    let lastError = '';
    while (options.signal?.aborted !== true) {
      const connection = new AbortController();
      const onAbort = () => connection.abort();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const params = new URLSearchParams({ since: String(cursor) });
        if (options.dataset !== undefined) params.set('dataset', options.dataset);
        const response = await this.doFetch(`${node.url}/v1/changes?${params.toString()}`, {
          headers: { authorization: `Bearer ${this.token}`, accept: 'text/event-stream', 'last-event-id': String(cursor) },
          signal: connection.signal,
        });
        if (!response.ok) {
          const error = errorOfAnswer(response.status, await response.json().catch(() => null), node.url);
          if (response.status !== 503) throw error;
          lastError = `${error.code}: ${error.message}`;
          failures++;
        } else {
          failures = 0;
          for await (const event of readEventStream(response.body!)) {
            if (event.event === 'change') {
              const change = JSON.parse(event.data) as ChangeFeedEvent;
              cursor = change.seq;
              yield change;
            } else if (event.event === 'checkpoint' && event.id !== null) {
              cursor = Number(event.id);
            }
          }
        }
      } catch (error) {
        if ((options.signal as AbortSignal | undefined)?.aborted === true) return;
        if (error instanceof TesseraError) throw error;
        lastError = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
        failures++;
      } finally {
        options.signal?.removeEventListener('abort', onAbort);
        connection.abort();
      }
      if (failures > this.attemptsMax) {
        throw new TesseraClientError('ERR_NODE_UNAVAILABLE',
          `change feed of ${node.url}: ${failures} connections in a row failed (last: ${lastError}); resume from since=${cursor} on this node when it is back`, null, node.url);
      }
      if (failures > 0) await sleep(backoffMs(failures));
    }
  }

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

  /** True when the node answers `/readyz` with 200 (cached for `healthTtlMs`). */
  private async ready(node: ClientNode): Promise<boolean> {
    const known = this.health.get(node.url);
    if (known !== undefined && Date.now() - known.atMs < this.healthTtlMs) return known.ready;
    let ready = false;
    try {
      const response = await this.doFetch(`${node.url}/readyz`, { headers: { authorization: `Bearer ${this.token}` }, signal: AbortSignal.timeout(clientProbeTimeoutMs) });
      await response.arrayBuffer();
      // A refused credential is the request's to report, not a sign of a sick node.
      ready = response.status === 200 || response.status === 401 || response.status === 403;
    } catch {
      ready = false;
    }
    this.health.set(node.url, { ready, atMs: Date.now() });
    return ready;
  }

  private markDown(node: ClientNode): void {
    this.health.set(node.url, { ready: false, atMs: Date.now() });
  }

  private async firstReady(nodes: readonly ClientNode[], dataset: string | null): Promise<ClientNode> {
    for (const node of nodes) if (await this.ready(node)) return node;
    throw this.unavailable(dataset, nodes.map((node) => `${node.url} (not ready)`));
  }

  private unavailable(dataset: string | null, tried: readonly string[]): TesseraClientError {
    return new TesseraClientError('ERR_NODE_UNAVAILABLE',
      `no node${dataset === null ? '' : ` that may hold dataset ${dataset}`} answered after ${this.attemptsMax} rounds: ${tried.slice(-8).join('; ')}`, null, null);
  }

  /** Sends a call to the nodes `dataset` may use (any node when null), failing over and retrying as it may. */
  private async send(dataset: string | null, call: Call): Promise<unknown> {
    let candidates: readonly ClientNode[];
    if (dataset === null) candidates = planRoute(this.nodes, null, this.near).nodes;
    else {
      const plan = await this.route(dataset);
      if (plan.nodes.length === 0) {
        throw new TesseraClientError('ERR_POLICY_DENIED',
          `dataset ${dataset} may be held only in regions ${plan.regions!.length === 0 ? '(none)' : plan.regions!.join(', ')}; this client has nodes in ${[...new Set(this.nodes.map((n) => n.region))].join(', ')} only: give it a node of a region that may hold the dataset`,
          { regions: plan.regions }, null);
      }
      candidates = plan.nodes;
    }
    const tried: string[] = [];
    // A read whose session token's write has not reached a node yet: the other nodes of this round may have it.
    let notYet: TesseraClientError | null = null;
    for (let round = 0; round < this.attemptsMax && notYet === null; round++) {
      if (round > 0) await sleep(backoffMs(round));
      const order = [...candidates];
      // Ready nodes first, in route order; in the last round the others too (readiness may be stale).
      const ready: ClientNode[] = [];
      for (const node of order) if (await this.ready(node)) ready.push(node);
      const targets = round === this.attemptsMax - 1 ? [...ready, ...order.filter((node) => !ready.includes(node))] : ready;
      if (targets.length === 0) tried.push(`round ${round}: every node was down or draining`);
      for (const node of targets) {
        let answer: Answer;
        try {
          answer = await this.sendTo(node, call);
        } catch (error) {
          const code = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name;
          tried.push(`${node.url}: ${code}`);
          this.markDown(node);
          // A request that may have reached the node is not sent again unless doing so is harmless.
          if (!call.idempotent && code !== 'ECONNREFUSED') {
            throw new TesseraClientError('ERR_NODE_UNAVAILABLE', `${call.method} ${node.url}: ${code}; the operation may or may not have been applied (not retried: it is not idempotent)`, null, node.url);
          }
          continue;
        }
        if (answer.status < 400) return answer.body;
        const error = errorOfAnswer(answer.status, answer.body, node.url);
        if (answer.status === 503 && (call.idempotent || error.code === 'ERR_CONNECTIONS_EXCEEDED')) {
          tried.push(`${node.url}: ${answer.status} ${error.code}`);
          this.markDown(node);
          continue;
        }
        if (error.code === 'ERR_NOT_YET_REPLICATED' && call.idempotent) {
          notYet = error;
          tried.push(`${node.url}: 409 ${error.code}`);
          continue;
        }
        // The document lives elsewhere: go on with the nodes of the regions that may hold it.
        if (answer.status === 421 && error.code === 'ERR_POLICY_DENIED' && error.regions !== null && error.regions.length > 0) {
          const elsewhere = candidates.filter((n) => error.regions!.includes(n.region) && n.url !== node.url);
          if (elsewhere.length === 0) throw error;
          candidates = elsewhere;
          tried.push(`${node.url}: 421 (may live in ${error.regions.join(', ')})`);
          round--;
          break;
        }
        throw error;
      }
    }
    throw notYet ?? this.unavailable(dataset, tried);
  }

  private async sendTo(node: ClientNode, call: Call): Promise<Answer> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (call.body !== undefined) headers['content-type'] = call.contentType ?? 'application/json';
    const response = await this.doFetch(node.url + call.path, {
      method: call.method, headers, ...(call.body === undefined ? {} : { body: call.body }), signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await response.text();
    let body: unknown = null;
    try {
      body = text === '' ? null : JSON.parse(text);
    } catch {
      body = text;
    }
    return { status: response.status, body, node };
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
