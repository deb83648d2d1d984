/**
 * The daemon's HTTP API over a `Replica` (DESIGN §6), on Fastify: one file per route group under `http/`,
 * JSON schemas for every route (served as OpenAPI at `/openapi.json`), `application/problem+json` failures with
 * the catalogue's stable codes, pino logs through Fastify's logger (one event per request, naming the route
 * pattern — never a concrete key, value or token), and every route behind a credential (http/guard.ts).
 *
 * Session tokens (DESIGN §5): every write answers a token naming its dot. `GET /v1/kv/:dataset/:key?token=`
 * waits, up to a bound, until this node's copy of the document holds that dot.
 */
import { type IncomingMessage, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { type FastifyInstance } from 'fastify';
import { type Logger, pino } from 'pino';
import { type CrdtTypeName, TesseraError } from '@tessera/core';
import { type Replica } from '@tessera/store';
import { type ClusterView } from './cluster-view.js';
import { type NodeMetrics } from './metrics.js';
import { buildApp } from './http/app.js';
import { type HttpNodeInfo, type PolicySigning, type Replication, type RouteContext } from './http/context.js';
import { type AccessOptions } from './http/guard.js';
import { batchRoutes } from './http/routes-batch.js';
import { changesRoutes } from './http/routes-changes.js';
import { kvRoutes } from './http/routes-kv.js';
import { placementRoutes } from './http/routes-placement.js';
import { type OpenRoutes, nodeRoutes } from './http/routes-node.js';
import { policyRoutes } from './http/routes-policy.js';
import { staticRoutes } from './http/routes-static.js';
import { SessionWaits, readTokenWaitMsDefault } from './http/session-wait.js';

export type { Replication, HttpNodeInfo, PolicySigning } from './http/context.js';
export { type HttpRequestEvent, requestIdLengthMax } from './http/app.js';
export { type AccessOptions, type TokenLookup, bearerChallenge } from './http/guard.js';
export type { OpenRoutes } from './http/routes-node.js';
export { policyBodyBytesMax } from './http/routes-policy.js';
export type { PlacementAnswer, PlacementRegion } from './http/routes-placement.js';
export { type BatchItemAnswer, batchBytesMax, batchDocumentsMax } from './http/routes-batch.js';
export {
  type ChangeFeedEvent,
  feedEventsDefault,
  feedEventsMax,
  feedHeartbeatMs,
  feedReadEntriesMax,
  feedResponseMsMax,
  feedScanEntriesMax,
  feedWaitMsMax,
} from './http/routes-changes.js';
export { readTokenWaitMsDefault, readTokenPollMs, tokenWaitersMax } from './http/session-wait.js';

/** What `createHttpHandler` needs. */
export interface HttpHandlerDeps {
  readonly replica: Replica;
  readonly node: HttpNodeInfo;
  /** Who may call (tokens, hosts, origins). Required: an API without credentials would be open to anyone. */
  readonly access: AccessOptions;
  /** Routes answered without a credential (`api.open`); none by default. */
  readonly open?: Partial<OpenRoutes>;
  /** How signed policies are checked; without it no policy can be installed through the API. */
  readonly policySigning?: PolicySigning;
  readonly replication?: Replication;
  /** Served at `/metrics` (Prometheus text format); every request is observed in it. */
  readonly metrics?: NodeMetrics;
  /** Gathers `GET /v1/cluster` (the dashboard's view of every node); the daemon gives one. */
  readonly cluster?: ClusterView;
  /** The logger (Fastify's); without it, `log` receives each event as an object, or nothing is logged. */
  readonly logger?: Logger;
  /** Receives each log event (see `HttpRequestEvent`) when no `logger` is given. */
  readonly log?: (event: object) => void;
  /** Upper bound (and default) of a token wait; default `readTokenWaitMsDefault`. */
  readonly readTokenWaitMsMax?: number;
  /**
   * The dataset types the replica was opened with (`ReplicaOptions.datasets`; the cluster config's `datasets`
   * fit). Used to check a batch of operations on a new document before applying any; unlisted datasets are
   * `map`, as in the store.
   */
  readonly datasets?: Readonly<Record<string, { readonly type: CrdtTypeName }>>;
}

/** The HTTP API: the Fastify `app` (for `inject`), its request listener, and drain control. */
export interface HttpApi {
  readonly app: FastifyInstance;
  /** Resolves once the routes are mounted; `handle` waits for it by itself. */
  ready(): Promise<void>;
  /** The `http.createServer` request listener (bound; pass it as is). */
  readonly handle: (req: IncomingMessage, res: ServerResponse) => void;
  /**
   * Marks the node as draining (or not): `/readyz` answers 503 so load balancers stop sending traffic, and
   * reads waiting for a session token stop waiting. Requests are still served.
   */
  setDraining(draining: boolean): void;
  readonly draining: boolean;
  /** Requests whose response has not finished. */
  readonly inFlight: number;
  /** Resolves when no request is in flight (for shutdown: drain, close the server, await idle, close the replica). */
  idle(): Promise<void>;
}

/** A pino logger that hands each event to `log` as an object (levels as names), or a silent one. */
export function eventLogger(log: ((event: object) => void) | undefined): Logger {
  if (log === undefined) return pino({ level: 'silent' });
  return pino({ base: undefined, formatters: { level: (label) => ({ level: label }) } }, { write: (line: string) => log(JSON.parse(line) as object) });
}

/** Creates the HTTP API over `deps.replica`. */
export function createHttpHandler(deps: HttpHandlerDeps): HttpApi {
  const waitMsMax = deps.readTokenWaitMsMax ?? readTokenWaitMsDefault;
  if (!Number.isSafeInteger(waitMsMax) || waitMsMax < 0) {
    throw new TesseraError('ERR_OPTION_INVALID', `createHttpHandler: readTokenWaitMsMax ${String(waitMsMax)} is not a non-negative integer`);
  }
  let drainController = new AbortController();
  let draining = false;
  let inFlight = 0;
  const idleWaiters: Array<() => void> = [];
  const context: RouteContext = {
    replica: deps.replica,
    node: deps.node,
    replication: deps.replication,
    metrics: deps.metrics,
    cluster: deps.cluster,
    datasets: deps.datasets,
    waits: new SessionWaits(deps.replica, deps.replication),
    startedMs: performance.now(),
    policySigning: deps.policySigning,
    draining: () => draining,
  };
  const open: OpenRoutes = { health: deps.open?.health ?? false, metrics: deps.open?.metrics ?? false };
  let appRef: FastifyInstance | null = null;
  const built = buildApp({
    context,
    access: deps.access,
    logger: deps.logger ?? eventLogger(deps.log),
    routes: [
      ...kvRoutes(context, waitMsMax),
      ...batchRoutes(context),
      ...changesRoutes(context),
      ...nodeRoutes(context, open),
      ...policyRoutes(context),
      ...placementRoutes(context),
      ...staticRoutes(() => appRef!),
    ],
    drainSignal: () => drainController.signal,
    onRequestStart: () => inFlight++,
    onRequestEnd: (route, method, status, durationMs) => {
      if (route !== null) deps.metrics?.observeRequest(route, method, status, durationMs);
      inFlight--;
      if (inFlight === 0) for (const resolve of idleWaiters.splice(0)) resolve();
    },
  });
  appRef = built.app;
  const ready = Promise.resolve(built.app.ready()).then(() => undefined);
  return {
    app: built.app,
    ready: () => ready,
    handle: (req, res) => {
      ready.then(
        () => built.handler()(req, res),
        (error: unknown) => {
          res.destroy(error as Error);
        },
      );
    },
    setDraining(value: boolean) {
      if (value === draining) return;
      draining = value;
      if (value) drainController.abort();
      else drainController = new AbortController();
    },
    get draining() {
      return draining;
    },
    get inFlight() {
      return inFlight;
    },
    idle() {
      if (inFlight === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}
