/**
 * The change feed as the client follows it: one node's server-sent events (`GET /v1/changes`), reconnected from
 * the last event id after every drop, with back-off, until the caller stops.
 */
import { TesseraError, checkDatasetName } from '@tessera/core';
import { type ChangeFeedEvent } from '../http/routes-changes.js';
import { TesseraClientError, errorOfAnswer } from './errors.js';
import { readEventStream } from './feed.js';
import { planRoute } from './routing.js';
import { type Transport, backoffMs, sleep } from './transport.js';

/** What `Client.changes` takes. */
export interface ChangesOptions {
  /** Changes after this sequence number of the node (default 0: from the start of its log). */
  readonly since?: number;
  /** Only this dataset (it also picks the node: one whose region may hold it). */
  readonly dataset?: string;
  /** Follow this node (a URL) instead of the nearest ready one. */
  readonly node?: string;
  readonly signal?: AbortSignal;
}

/** The change feed of one node (see `Client.changes`). */
export async function* followChanges(transport: Transport, options: ChangesOptions): AsyncGenerator<ChangeFeedEvent> {
  if (options.dataset !== undefined) checkDatasetName(options.dataset);
  const chosen = options.node?.replace(/\/+$/, '');
  const node =
    chosen !== undefined
      ? (transport.nodes.find((n) => n.url === chosen) ?? { url: chosen, region: '' })
      : await transport.firstReady(
          options.dataset === undefined ? planRoute(transport.nodes, null, transport.near).nodes : (await transport.route(options.dataset)).nodes,
          options.dataset ?? null,
        );
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
      const response = await transport.doFetch(`${node.url}/v1/changes?${params.toString()}`, {
        headers: { authorization: `Bearer ${transport.token}`, accept: 'text/event-stream', 'last-event-id': String(cursor) },
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
    if (failures > transport.attemptsMax) {
      throw new TesseraClientError(
        'ERR_NODE_UNAVAILABLE',
        `change feed of ${node.url}: ${failures} connections in a row failed (last: ${lastError}); resume from since=${cursor} on this node when it is back`,
        null,
        node.url,
      );
    }
    if (failures > 0) await sleep(backoffMs(failures));
  }
}
