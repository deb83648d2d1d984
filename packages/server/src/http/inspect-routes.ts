/**
 * Read-only inspection routes (`tessera inspect --url`): what the existing routes do not show — the summary,
 * keys with tombstones and sizes, a document's dots and HLCs, the delta log, durable cursors and frontiers.
 * Each answers exactly what `tessera inspect <dir>` reads from a stopped node's directory: both run the
 * functions of the store's inspect.ts, here over the open replica's committed records.
 *
 * The delta log is served as sizes. Its bytes never leave the node: they are the replication wire's business,
 * and decoded values only on request (`values=true`) — values this node already serves through /v1/kv.
 * Conflict records are listed by the existing `GET /v1/conflicts`.
 *
 * The routes are data: routes-node.ts mounts each pattern with `query(request, route.query)`, so unknown or
 * repeated query parameters are refused there, with the same problem+json as every other route.
 *
 * Access: the operator role; the routes that show keys or values (keys, doc, log with values) also need a read
 * grant on the datasets they show (the log's values: every dataset).
 */
import { TesseraError } from '@tessera/core';
import { type Replica, inspectDoc, inspectKeys, inspectLog, inspectPeers, inspectSummary } from '@tessera/store';
import { type Requirement } from '../auth/access.js';

/** One inspection route: its pattern, the query parameters it takes, what it needs, and its answer. */
export interface InspectRoute {
  readonly pattern: string;
  readonly summary: string;
  readonly query: readonly string[];
  need(params: Readonly<Record<string, string>>, query: Readonly<Record<string, unknown>>): Requirement;
  answer(replica: Replica, query: Readonly<Record<string, string | undefined>>, params: Readonly<Record<string, string>>): Promise<unknown>;
}

/** The inspection routes (all GET). */
export const inspectRoutes: readonly InspectRoute[] = [
  {
    pattern: '/v1/inspect/summary',
    summary: 'Per dataset: documents, tombstones, quarantined and bytes',
    query: ['scanMax'],
    need: () => ({ kind: 'operator' }),
    answer: (replica, q) => inspectSummary(replica.records(), optional({ scanMax: integer('scanMax', q.scanMax) })),
  },
  {
    pattern: '/v1/inspect/keys/:dataset',
    summary: "A dataset's keys with tombstones and sizes",
    query: ['prefix', 'after', 'limit'],
    need: (params) => ({ kind: 'operator', datasets: [params.dataset!] }),
    answer: (replica, q, params) =>
      inspectKeys(replica.records(), params.dataset!, optional({ prefix: q.prefix, after: q.after, limit: integer('limit', q.limit) })),
  },
  {
    pattern: '/v1/inspect/doc/:dataset/:key',
    summary: "A document's dots, HLCs and tags as stored",
    query: [],
    need: (params) => ({ kind: 'operator', datasets: [params.dataset!] }),
    answer: (replica, _q, params) => inspectDoc(replica.records(), params.dataset!, params.key!),
  },
  {
    pattern: '/v1/inspect/log',
    summary: 'The delta log as sizes (decoded values with values=true)',
    query: ['from', 'to', 'limit', 'values'],
    // Decoded values span every dataset: only a read grant on all of them may see them.
    need: (_params, query) => (query.values === 'false' || query.values === undefined ? { kind: 'operator' } : { kind: 'operator', datasets: '*' }),
    answer: (replica, q) =>
      inspectLog(
        replica.records(),
        optional({
          from: integer('from', q.from),
          to: integer('to', q.to),
          limit: integer('limit', q.limit),
          values: boolean('values', q.values),
        }),
      ),
  },
  {
    pattern: '/v1/inspect/peers',
    summary: 'Durable cursors and frontiers of every peer',
    query: [],
    need: () => ({ kind: 'operator' }),
    answer: (replica) => inspectPeers(replica.records()),
  },
];

/** `options` without its undefined members (the store's options are exact). */
function optional<T extends Record<string, unknown>>(options: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

function integer(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]{1,15}$/.test(value)) {
    throw new TesseraError('ERR_OPTION_INVALID', `query parameter ${name} ${JSON.stringify(value.slice(0, 40))} is not a non-negative integer`);
  }
  return Number(value);
}

function boolean(name: string, value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  if (value !== 'true' && value !== 'false') {
    throw new TesseraError('ERR_OPTION_INVALID', `query parameter ${name} ${JSON.stringify(value.slice(0, 40))} must be true or false`);
  }
  return value === 'true';
}
