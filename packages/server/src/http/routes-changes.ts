/**
 * The change feed (issue 14 item 4): `GET /v1/changes?since=<seq>&dataset=<name>` streams this node's changes
 * — local writes and those replication brought — in its delta-log order, as server-sent events
 * (`Accept: text/event-stream`) or, for any other `Accept`, as a long poll answering a JSON page.
 *
 * Resumable: each event's id is its sequence number in this node's log; a client reconnects with
 * `Last-Event-ID` (or `since`) and gets exactly the changes after it. A `checkpoint` event moves the cursor past
 * entries the caller does not see (other datasets, state and purge notices) so a reconnect does not rescan them.
 * Sequence numbers are this node's: a cursor does not carry over to another node.
 *
 * Bounded: at most `limit` events per response (default `feedEventsDefault`, at most `feedEventsMax`) and
 * `feedResponseMsMax` per stream, then the stream ends and the client reconnects; a slow reader holds the stream
 * (the socket's backpressure), never a queue in the node. Only datasets the caller may read are shown, and only
 * documents this node holds and may hold under its enforced policy: a change to a document it gave up (purged,
 * handed over) or may not serve is skipped, key and all.
 */
import { once } from 'node:events';
import { type FastifyReply, type FastifyRequest } from 'fastify';
import { type Hlc, TesseraError, checkDatasetName, docFacts } from '@tessera/core';
import { type LogEntry } from '@tessera/store';
import { bytesAsBase64 } from '../problem.js';
import { type RouteContext, integerParam, query, schemaVerdict, sendJson } from './context.js';
import { type RouteSpec } from './define.js';
import { hlcSchema, integerString, objectOf, queryOf } from './schemas.js';

/** Events of one response unless `limit` says fewer. */
export const feedEventsDefault = 1_000;
/** Events of one response at most. */
export const feedEventsMax = 10_000;
/** Log entries read from the store at once. */
export const feedReadEntriesMax = 256;
/** Log entries one page scans at most (entries the caller does not see count too); the cursor then moves on. */
export const feedScanEntriesMax = 10_000;
/** How long one event stream lasts at most; the client then reconnects from its last event id. */
export const feedResponseMsMax = 60_000;
/** An idle stream sends a comment this often, so proxies and clients see it alive. */
export const feedHeartbeatMs = 15_000;
/** Longest wait of a long poll (`waitMs`). */
export const feedWaitMsMax = 30_000;

/** One change as the feed shows it: the document as it is when the event is sent. */
export interface ChangeFeedEvent {
  /** This node's log sequence number of the change (the event id). */
  readonly seq: number;
  readonly dataset: string;
  readonly key: string;
  /** The node that made the change. */
  readonly origin: string;
  readonly hlc: Hlc;
  /** True when the document does not exist now (deleted). */
  readonly deleted: boolean;
  readonly type?: string;
  readonly value?: unknown;
  readonly tags?: readonly string[];
}

/** The feed route. */
export function changesRoutes(context: RouteContext): RouteSpec[] {
  const { replica, node } = context;

  /** The event of a log entry, or null when the caller may not see it or the node may not serve it. */
  async function eventOf(entry: LogEntry, visible: (dataset: string) => boolean): Promise<ChangeFeedEvent | null> {
    if (entry.kind !== undefined || !visible(entry.dataset)) return null;
    const state = await replica.state(entry.dataset, entry.key);
    // Not held here any more (purged, handed over): not this node's to name.
    if (state === undefined) return null;
    const policy = replica.policy;
    if (policy !== null && !policy.decide(docFacts(entry.dataset, entry.key, state), node.region).allow) return null;
    const base = { seq: entry.seq, dataset: entry.dataset, key: entry.key, origin: entry.origin, hlc: entry.hlc };
    const view = await replica.get(entry.dataset, entry.key);
    if (view === undefined) return { ...base, deleted: true };
    return { ...base, deleted: false, type: view.type, value: view.value, tags: view.tags };
  }

  /**
   * Up to `max` events after `cursor`, and the cursor after the entries read (also past the skipped ones); at
   * most `feedScanEntriesMax` entries are read, so a page over a long stretch of hidden entries may be empty
   * with its cursor moved on.
   */
  async function page(
    cursor: number,
    max: number,
    visible: (dataset: string) => boolean,
  ): Promise<{ events: ChangeFeedEvent[]; cursor: number; more: boolean }> {
    const events: ChangeFeedEvent[] = [];
    let scanned = 0;
    while (events.length < max && scanned < feedScanEntriesMax) {
      const { entries } = await replica.deltasSince(cursor, {
        limit: Math.min(feedReadEntriesMax, feedScanEntriesMax - scanned, Math.max(1, max - events.length)),
      });
      if (entries.length === 0) break;
      scanned += entries.length;
      for (const entry of entries) {
        cursor = entry.seq;
        const event = await eventOf(entry, visible);
        if (event !== null) events.push(event);
        if (events.length >= max) break;
      }
    }
    // `more`: the page stopped at a bound, not at the end of the log.
    return { events, cursor, more: events.length >= max || scanned >= feedScanEntriesMax };
  }

  /**
   * Resolves when a change past `head` is durable (`head`: the committed sequence number read before the last
   * page), after `ms`, or when `signal` aborts.
   */
  async function changedAfter(head: number, ms: number, signal: AbortSignal): Promise<void> {
    if (replica.committedSeq > head || signal.aborted || ms <= 0) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        replica.off('change', onChange);
        replica.off('appended', onAppended);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const onChange = (change: { seq: number }) => {
        if (change.seq > head) done();
      };
      const onAppended = (last: number) => {
        if (last > head) done();
      };
      const timer = setTimeout(done, ms);
      replica.on('change', onChange);
      replica.on('appended', onAppended);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  async function getChanges(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const params = query(request, ['since', 'dataset', 'limit', 'waitMs']);
    if (params.dataset !== undefined) checkDatasetName(params.dataset);
    const lastEventId = request.headers['last-event-id'];
    const sinceText = typeof lastEventId === 'string' && lastEventId !== '' ? lastEventId : (params.since ?? '0');
    const since = integerParam(typeof lastEventId === 'string' && lastEventId !== '' ? 'Last-Event-ID' : 'since', sinceText, 15);
    const limit = params.limit === undefined ? feedEventsDefault : integerParam('limit', params.limit);
    if (limit < 1 || limit > feedEventsMax)
      throw new TesseraError('ERR_OPTION_INVALID', `query parameter limit ${limit} is outside 1 to ${feedEventsMax} (feedEventsMax)`);
    const waitMs = Math.min(params.waitMs === undefined ? 0 : integerParam('waitMs', params.waitMs), feedWaitMsMax);
    schemaVerdict(request);
    if (since > replica.lastSeq) {
      throw new TesseraError(
        'ERR_OPTION_INVALID',
        `since ${since} is past the log head ${replica.lastSeq} of node ${node.id}: feed cursors are one node's sequence numbers; start again from 0 on another node`,
      );
    }
    if (since < replica.logFloor) {
      throw new TesseraError(
        'ERR_LOG_TRUNCATED',
        `since ${since}: node ${node.id} truncated its delta log up to ${replica.logFloor}; changes between are gone from the feed: read the documents (GET /v1/kv/:dataset) and follow from ${replica.lastSeq}`,
      );
    }
    const principal = request.tessera.principal;
    const granted = (dataset: string) => principal === null || principal.datasets === '*' || principal.datasets.has(dataset);
    const visible = (dataset: string) => (params.dataset === undefined || dataset === params.dataset) && granted(dataset);
    const signal = request.tessera.signal;

    const accept = String(request.headers.accept ?? '');
    // HEAD gets the long poll's headers: a stream without a body would only hold the connection.
    if (!accept.includes('text/event-stream') || request.method === 'HEAD') {
      let head = replica.committedSeq;
      let answer = await page(since, limit, visible);
      const deadlineMs = Date.now() + waitMs;
      while (answer.events.length === 0 && !answer.more && Date.now() < deadlineMs && !signal.aborted) {
        await changedAfter(head, deadlineMs - Date.now(), signal);
        head = replica.committedSeq;
        answer = await page(answer.cursor, limit, visible);
      }
      return sendJson(reply, 200, { node: node.id, head: replica.committedSeq, events: answer.events, next: answer.cursor });
    }

    // An event stream: the reply is written by hand from here.
    const res = reply.raw;
    reply.hijack();
    const headers: Record<string, string | number | string[]> = {};
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) headers[name] = value;
    res.writeHead(200, { ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    const write = async (text: string) => {
      if (!res.write(text) && !signal.aborted) await Promise.race([once(res, 'drain'), once(signal, 'abort')]);
    };
    const endsAtMs = Date.now() + feedResponseMsMax;
    let cursor = since;
    let announced = since;
    let sent = 0;
    try {
      await write(`retry: 1000\n: node ${node.id}\n\n`);
      while (sent < limit && !signal.aborted && Date.now() < endsAtMs && !res.destroyed) {
        const head = replica.committedSeq;
        const answer = await page(cursor, limit - sent, visible);
        for (const event of answer.events) {
          if (signal.aborted) break;
          await write(`id: ${event.seq}\nevent: change\ndata: ${JSON.stringify(event, bytesAsBase64)}\n\n`);
          announced = event.seq;
          sent++;
        }
        cursor = answer.cursor;
        if (answer.events.length > 0) continue;
        if (cursor > announced) {
          await write(`id: ${cursor}\nevent: checkpoint\ndata: {"seq":${cursor}}\n\n`);
          announced = cursor;
        }
        if (answer.more) continue;
        await changedAfter(head, Math.min(feedHeartbeatMs, endsAtMs - Date.now()), signal);
        if (replica.committedSeq === head && !signal.aborted) await write(': heartbeat\n\n');
      }
    } catch (error) {
      // The stream is open: a failure can only end it (the client resumes from its last event id).
      if (!(error instanceof TesseraError)) request.log.error({ event: 'feed_failed', name: (error as Error).name });
    } finally {
      res.end();
    }
    return reply;
  }

  return [
    {
      method: 'GET',
      url: '/v1/changes',
      tags: ['documents'],
      summary: 'The change feed after a sequence number: server-sent events (Accept: text/event-stream, resumable with Last-Event-ID) or a JSON long poll',
      // A named dataset needs a read grant on it; without one the feed shows the datasets the caller may read.
      need: (request) => {
        const dataset = (request.query as { dataset?: unknown }).dataset;
        return { kind: 'read', datasets: typeof dataset === 'string' ? [dataset] : [] };
      },
      querystring: queryOf({ since: integerString, dataset: { type: 'string' }, limit: integerString, waitMs: integerString }),
      response: objectOf(
        'A page of changes (long poll) and the cursor to ask from next; as text/event-stream, `change` events with the same fields and `checkpoint` events.',
        {
          node: { type: 'string' },
          head: { type: 'integer', description: "The node's durable log head: follow from it to see only what changes from now on." },
          next: { type: 'integer' },
          events: {
            type: 'array',
            items: objectOf('A change.', {
              seq: { type: 'integer' },
              dataset: { type: 'string' },
              key: { type: 'string' },
              origin: { type: 'string' },
              hlc: hlcSchema,
              deleted: { type: 'boolean' },
              type: { type: 'string' },
              value: {},
              tags: { type: 'array', items: { type: 'string' } },
            }),
          },
        },
      ),
      handler: getChanges,
    },
  ];
}
