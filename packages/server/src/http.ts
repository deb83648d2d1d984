/**
 * The daemon's HTTP API over a `Replica` (DESIGN §6), on node:http alone.
 *
 * Routes are data (`routes` below): a pattern, and a handler per method. Every request gets a request id
 * (`x-request-id`, echoed when the client sends a sane one) and exactly one structured log event naming the
 * route pattern — never the concrete key, a value or a token. Failures answer `application/problem+json`
 * with a stable code from the catalogue and its HTTP status.
 *
 * Session tokens (DESIGN §5): every write answers a token naming its dot. `GET /v1/kv/:dataset/:key?token=`
 * waits, up to a bound, until this node's copy of the document holds that dot.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { type IncomingMessage, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import {
  type CrdtTypeName, type Dot, type ErrorCode, type Json, type Policy, TesseraError, assertMayHold, checkDatasetName, checkKey,
  describeValue, isPlainObject, parsePolicy, policyBytesMax,
} from '@tessera/core';
import { type ChangeEvent, type Replica, type WriteResult, policyHash } from '@tessera/store';
import { type NodeMetrics } from './metrics.js';
import { type ClusterView, clusterSnapshot } from './cluster-view.js';
import { dashboardReply } from './dashboard.js';
import { inspectRoutes } from './inspect-routes.js';
import { mustCloseConnection, readJsonBody } from './body.js';
import { checkOperations, parseOperations } from './operations.js';
import { type Problem, problemOf, sendJson, sendProblem } from './problem.js';
import { decodeSessionToken, encodeSessionToken } from './token.js';

/** Default and upper bound of a token-carrying read's wait. */
export const readTokenWaitMsDefault = 5_000;
/** How often a waiting read re-checks the store when no replication hook is given (it also wakes on changes). */
export const readTokenPollMs = 20;
/** Reads waiting for a token at once; past this, a read answers from what the node holds now. */
export const tokenWaitersMax = 10_000;
/**
 * The body of `POST /v1/policy`: a policy of up to `policyBytesMax` bytes as a JSON string, which escaping can
 * double (quotes, backslashes, line breaks, tabs; the other characters JSON escapes are no part of a YAML text).
 */
export const policyBodyBytesMax = 2 * policyBytesMax + 64 * 1024;
/** A client's `x-request-id` is echoed when it is this short and plain; otherwise the daemon makes one. */
export const requestIdLengthMax = 128;

const requestIdPattern = new RegExp(`^[A-Za-z0-9._:-]{1,${requestIdLengthMax}}$`);

/** What the daemon needs from replication (implemented by @tessera/sync's SyncNode). */
export interface Replication {
  status(): { links: ReadonlyArray<{ readonly peer: string; readonly region: string; readonly state: string }> };
  /**
   * Resolves true once this node holds `dot` for the document (it arrived through replication), false at the
   * deadline. `deadlineMs` is an absolute `Date.now()` time.
   */
  waitFor?(dataset: string, key: string, dot: readonly [string, number], deadlineMs: number): Promise<boolean>;
  /** Called after the enforced policy changed through the API: replication offers it to the peers. */
  policyChanged?(): void;
  /** Remembers the trace id of a local write, so that replication carries it to every region. */
  noteTrace?(seq: number, traceId: string): void;
}

/** The node the API answers for. */
export interface HttpNodeInfo {
  readonly id: string;
  readonly region: string;
  readonly zone?: string;
}

/** What `createHttpHandler` needs. */
export interface HttpHandlerDeps {
  readonly replica: Replica;
  readonly node: HttpNodeInfo;
  readonly replication?: Replication;
  /** Served at `/metrics` (Prometheus text format); every request is observed in it. */
  readonly metrics?: NodeMetrics;
  /** Gathers `GET /v1/cluster` (the dashboard's view of every node); the daemon gives one. */
  readonly cluster?: ClusterView;
  /** Receives one event per request (see `HttpRequestEvent`). */
  readonly log?: (event: object) => void;
  /** Upper bound (and default) of a token wait; default `readTokenWaitMsDefault`. */
  readonly readTokenWaitMsMax?: number;
  /**
   * The dataset types the replica was opened with (`ReplicaOptions.datasets`; the cluster config's `datasets`
   * fit). Used to check a batch of operations on a new document before applying any; unlisted datasets are
   * `map`, as in the store. Without it, such a batch is checked as it is applied (a failure part-way answers
   * which operations took effect).
   */
  readonly datasets?: Readonly<Record<string, { readonly type: CrdtTypeName }>>;
}

/** The log event of one request. */
export interface HttpRequestEvent {
  readonly event: 'http_request';
  readonly requestId: string;
  /** The W3C trace id (from the request's `traceparent`, or new): a write's id is carried to every region. */
  readonly traceId: string;
  readonly method: string;
  /** The route pattern (`/v1/kv/:dataset/:key`), or null when no route matched. */
  readonly route: string | null;
  readonly status: number;
  readonly durationMs: number;
  /** The problem's code when the request failed. */
  readonly code?: ErrorCode;
  /** True when the client went away before the response was complete (status is then 499 if nothing was sent). */
  readonly aborted?: true;
  /** For `ERR_INTERNAL` only: the error's class and stack frames (not its message, which may hold data). */
  readonly error?: { readonly name: string; readonly stack: readonly string[] };
}

/** The HTTP API: `handle` is the request listener; `setDraining(true)` makes `/readyz` answer 503. */
export interface HttpApi {
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

type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';

/**
 * A route's successful answer (JSON `body`, or `raw` bytes or text of `contentType` with extra `headers`), or a
 * problem to send.
 */
type Reply =
  | { readonly status: number; readonly body: unknown }
  | { readonly status: number; readonly raw: string | Uint8Array; readonly contentType: string; readonly headers?: Readonly<Record<string, string>> }
  | { readonly problem: Problem };

interface RequestContext {
  readonly req: IncomingMessage;
  /** The W3C trace id of the request (from its `traceparent`, or new). */
  readonly traceId: string;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** Aborted when the client goes away or the API starts draining. */
  readonly signal: AbortSignal;
}

interface Route {
  readonly pattern: string;
  readonly segments: readonly string[];
  readonly methods: Partial<Record<Method, (ctx: RequestContext) => Promise<Reply>>>;
}

/** Creates the HTTP API over `deps.replica`. */
export function createHttpHandler(deps: HttpHandlerDeps): HttpApi {
  return new HttpApiImpl(deps);
}

class HttpApiImpl implements HttpApi {
  private readonly replica: Replica;
  private readonly waitMsMax: number;
  private readonly startedMs = performance.now();
  private readonly routes: readonly Route[];
  private readonly waiters: ChangeWaiters;
  private drainController = new AbortController();
  private drainingNow = false;
  private inFlightCount = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly deps: HttpHandlerDeps) {
    this.replica = deps.replica;
    this.waiters = new ChangeWaiters(deps.replica);
    const waitMsMax = deps.readTokenWaitMsMax ?? readTokenWaitMsDefault;
    if (!Number.isSafeInteger(waitMsMax) || waitMsMax < 0) {
      throw new TesseraError('ERR_OPTION_INVALID', `createHttpHandler: readTokenWaitMsMax ${String(waitMsMax)} is not a non-negative integer`);
    }
    this.waitMsMax = waitMsMax;
    this.routes = [
      route('/v1/kv/:dataset/:key', {
        GET: (ctx) => this.getDocument(ctx),
        PUT: (ctx) => this.putDocument(ctx),
        DELETE: (ctx) => this.deleteDocument(ctx),
      }),
      route('/v1/kv/:dataset/:key/ops', { POST: (ctx) => this.postOperations(ctx) }),
      route('/v1/kv/:dataset', { GET: (ctx) => this.listDocuments(ctx) }),
      route('/v1/conflicts', { GET: (ctx) => this.listConflicts(ctx) }),
      route('/v1/status', { GET: (ctx) => this.status(ctx) }),
      route('/v1/peers', { GET: (ctx) => this.peers(ctx) }),
      route('/v1/policy', { GET: (ctx) => this.getPolicy(ctx), POST: (ctx) => this.postPolicy(ctx) }),
      route('/v1/policy/history', { GET: (ctx) => this.policyHistory(ctx) }),
      route('/v1/audit', { GET: (ctx) => this.listAudit(ctx) }),
      route('/v1/audit/verify', { GET: (ctx) => this.verifyAudit(ctx) }),
      ...inspectRoutes.map((r) => route(r.pattern, { GET: async (ctx) => ({ status: 200, body: await r.answer(this.replica, query(ctx, r.query), ctx.params) }) })),
      route('/metrics', { GET: (ctx) => this.metricsText(ctx) }),
      route('/healthz', { GET: async (ctx) => (query(ctx, []), { status: 200, body: { ok: true } }) }),
      route('/readyz', { GET: (ctx) => this.ready(ctx) }),
      route('/v1/cluster', { GET: async (ctx) => (query(ctx, []), { status: 200, body: await clusterSnapshot(this.deps.cluster) }) }),
      route('/', { GET: async (ctx) => (query(ctx, []), dashboardReply('index.html')) }),
      route('/static/:file', { GET: async (ctx) => (query(ctx, []), dashboardReply(ctx.params.file!)) }),
    ];
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const startedMs = performance.now();
    this.inFlightCount++;
    const requestIdHeader = req.headers['x-request-id'];
    const requestId = typeof requestIdHeader === 'string' && requestIdPattern.test(requestIdHeader) ? requestIdHeader : randomUUID();
    res.setHeader('x-request-id', requestId);
    const trace = traceOf(req.headers.traceparent);
    res.setHeader('traceparent', `00-${trace.traceId}-${trace.spanId}-01`);
    const outcome: { route: string | null; code?: ErrorCode; error?: HttpRequestEvent['error'] } = { route: null };
    const aborter = new AbortController();
    const drainSignal = this.drainController.signal;
    const onDrain = () => aborter.abort();
    if (drainSignal.aborted) aborter.abort();
    else drainSignal.addEventListener('abort', onDrain, { once: true });
    res.once('close', () => {
      drainSignal.removeEventListener('abort', onDrain);
      aborter.abort();
      const event: HttpRequestEvent = {
        event: 'http_request',
        requestId,
        traceId: trace.traceId,
        method: req.method ?? '',
        route: outcome.route,
        // 499 (as nginx logs it): the client closed the connection before an answer was sent.
        status: res.headersSent ? res.statusCode : 499,
        durationMs: Math.round((performance.now() - startedMs) * 10) / 10,
        ...(outcome.code === undefined ? {} : { code: outcome.code }),
        ...(res.writableFinished ? {} : { aborted: true as const }),
        ...(outcome.error === undefined ? {} : { error: outcome.error }),
      };
      this.deps.log?.(event);
      if (outcome.route !== null) this.deps.metrics?.observeRequest(outcome.route, event.method, event.status, performance.now() - startedMs);
      this.inFlightCount--;
      if (this.inFlightCount === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    });
    void this.serve(req, res, aborter.signal, outcome, trace.traceId).catch((error: unknown) => {
      // Only a failure to write the response gets here; the socket is unusable.
      outcome.error = errorForLog(error);
      res.destroy();
    });
  };

  setDraining(draining: boolean): void {
    if (draining === this.drainingNow) return;
    this.drainingNow = draining;
    if (draining) this.drainController.abort();
    else this.drainController = new AbortController();
  }

  get draining(): boolean {
    return this.drainingNow;
  }

  get inFlight(): number {
    return this.inFlightCount;
  }

  idle(): Promise<void> {
    if (this.inFlightCount === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async serve(
    req: IncomingMessage, res: ServerResponse, signal: AbortSignal, outcome: { route: string | null; code?: ErrorCode; error?: HttpRequestEvent['error'] },
    traceId: string,
  ): Promise<void> {
    let reply: Reply;
    const headers: Record<string, string> = {};
    try {
      const [rawPath, rawQuery] = splitTarget(req.url ?? '/');
      const match = this.match(rawPath);
      if (match === null) throw new TesseraError('ERR_NOT_FOUND', `no route for ${req.method} ${rawPath.slice(0, 200)}: the routes are ${this.routes.map((r) => r.pattern).join(', ')}`);
      outcome.route = match.route.pattern;
      const method = (req.method === 'HEAD' ? 'GET' : req.method) as Method;
      const handler = match.route.methods[method];
      if (handler === undefined) {
        const allowed = allowedMethods(match.route);
        headers.allow = allowed.join(', ');
        throw new TesseraError('ERR_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${match.route.pattern}: use ${allowed.join(', ')}`);
      }
      reply = await handler({ req, traceId, params: match.params, query: new URLSearchParams(rawQuery), signal });
    } catch (error) {
      // A client that goes away while sending its body is not a failure of the daemon.
      if (res.destroyed || (req.destroyed && !req.complete)) return;
      if (!(error instanceof TesseraError)) outcome.error = errorForLog(error);
      reply = { problem: problemOf(error) };
    }
    if (res.destroyed || res.headersSent) return;
    if (mustCloseConnection(req)) headers.connection = 'close';
    if ('problem' in reply) {
      outcome.code = reply.problem.code;
      sendProblem(res, reply.problem, headers);
    } else if ('raw' in reply) {
      const bytes = typeof reply.raw === 'string' ? Buffer.from(reply.raw, 'utf8') : reply.raw;
      res.writeHead(reply.status, { ...headers, ...reply.headers, 'content-type': reply.contentType, 'content-length': String(bytes.length) });
      res.end(req.method === 'HEAD' ? undefined : bytes);
    } else {
      sendJson(res, reply.status, reply.body, headers);
    }
  }

  private match(rawPath: string): { route: Route; params: Record<string, string> } | null {
    const segments = rawPath.split('/');
    for (const candidate of this.routes) {
      if (candidate.segments.length !== segments.length) continue;
      const params: Record<string, string> = {};
      let matched = true;
      for (let i = 0; i < segments.length && matched; i++) {
        const expected = candidate.segments[i]!;
        if (expected.startsWith(':')) params[expected.slice(1)] = segments[i]!;
        else matched = expected === segments[i];
      }
      if (matched) return { route: candidate, params };
    }
    return null;
  }

  // ---------------------------------------------------------------- documents

  private async getDocument(ctx: RequestContext): Promise<Reply> {
    const { dataset, key } = documentParams(ctx);
    const params = query(ctx, ['token', 'waitMs']);
    if (params.waitMs !== undefined && params.token === undefined) {
      throw new TesseraError('ERR_OPTION_INVALID', 'waitMs applies only to a read with a token');
    }
    if (params.token !== undefined) {
      const token = decodeSessionToken(params.token);
      if (token.dataset !== dataset || token.key !== key) {
        throw new TesseraError('ERR_TOKEN_INVALID',
          `session token is for a write to ${token.dataset}/${token.key}, not ${dataset}/${key}: present it only when reading that document`);
      }
      const waitMs = Math.min(params.waitMs === undefined ? this.waitMsMax : integerParam('waitMs', params.waitMs), this.waitMsMax);
      if (!(await this.waitForDot(dataset, key, token.dot, waitMs, ctx.signal))) {
        const problem = problemOf(new TesseraError('ERR_NOT_YET_REPLICATED',
          `node ${this.deps.node.id} (${this.deps.node.region}) does not hold the write ${token.dot[0]}:${token.dot[1]} of ${dataset}/${key} ` +
          `named by session token ${params.token} after waiting ${waitMs} ms: retry later, or read from node ${token.dot[0]}`), { token: params.token });
        return { problem };
      }
    }
    const view = await this.replica.get(dataset, key);
    if (view === undefined) {
      // A document of a dataset this region may not hold at all is another region's to answer for.
      const policy = this.replica.policy;
      if (policy !== null) assertMayHold(policy, { dataset, key, tags: [], origin: this.deps.node.region }, this.deps.node.region);
      throw new TesseraError('ERR_DOC_NOT_FOUND', `document ${dataset}/${key} does not exist on node ${this.deps.node.id}`);
    }
    return { status: 200, body: view };
  }

  private async putDocument(ctx: RequestContext): Promise<Reply> {
    const { dataset, key } = documentParams(ctx);
    query(ctx, []);
    const body = await readJsonBody(ctx.req);
    if (!isPlainObject(body)) throw new TesseraError('ERR_BODY_INVALID', 'PUT body must be an object { "value": …, "type"?: …, "tags"?: […] }');
    for (const field of Object.keys(body)) {
      if (field !== 'value' && field !== 'type' && field !== 'tags') {
        throw new TesseraError('ERR_BODY_INVALID', `PUT body: unknown field ${JSON.stringify(field).slice(0, 80)} (the fields are value, type, tags)`);
      }
    }
    if (!('value' in body)) throw new TesseraError('ERR_BODY_INVALID', 'PUT body needs the field "value"');
    const options: { type?: CrdtTypeName; tags?: readonly string[] } = {};
    if (body.type !== undefined) options.type = body.type as CrdtTypeName;
    if (body.tags !== undefined) options.tags = body.tags as string[];
    const result = await this.replica.put(dataset, key, body.value as Json, options);
    this.noteTrace(ctx, result);
    return { status: 200, body: writeAnswer(dataset, key, result) };
  }

  private async deleteDocument(ctx: RequestContext): Promise<Reply> {
    const { dataset, key } = documentParams(ctx);
    query(ctx, []);
    const result = await this.replica.delete(dataset, key);
    this.noteTrace(ctx, result);
    return { status: 200, body: writeAnswer(dataset, key, result) };
  }

  private async postOperations(ctx: RequestContext): Promise<Reply> {
    const { dataset, key } = documentParams(ctx);
    query(ctx, []);
    const operations = parseOperations(await readJsonBody(ctx.req));
    // Without the dataset types, a new document's type is the store's to decide.
    const datasetType = this.replica.policy?.dataset(dataset).type ?? (this.deps.datasets === undefined ? undefined : this.deps.datasets[dataset]?.type ?? 'map');
    checkOperations(dataset, key, operations, await this.replica.state(dataset, key), datasetType);
    const results: WriteAnswer[] = [];
    for (const [i, item] of operations.entries()) {
      try {
        const result = item.kind === 'tag'
          ? await this.replica.tag(dataset, key, item.change)
          : await this.replica.operate(dataset, key, item.operation, item.type === undefined ? {} : { type: item.type });
        this.noteTrace(ctx, result);
        results.push(writeAnswer(dataset, key, result));
      } catch (error) {
        if (results.length === 0 || !(error instanceof TesseraError)) throw error;
        // Earlier operations are durable: say which, so the client knows what took effect.
        const failed = new TesseraError(error.code,
          `operation ${i} failed after operations 0 to ${i - 1} were applied (see results): ${error.message}`, { cause: error });
        return { problem: problemOf(failed, { failedOperation: i, results }) };
      }
    }
    return { status: 200, body: { results } };
  }

  private async listDocuments(ctx: RequestContext): Promise<Reply> {
    const dataset = decodeParam(ctx.params.dataset!, 'ERR_DATASET_NAME_INVALID', 'dataset name');
    checkDatasetName(dataset);
    const params = query(ctx, ['prefix', 'limit', 'cursor']);
    const page = await this.replica.list(dataset, {
      ...(params.prefix === undefined ? {} : { prefix: params.prefix }),
      ...(params.limit === undefined ? {} : { limit: integerParam('limit', params.limit) }),
      ...(params.cursor === undefined ? {} : { cursor: params.cursor }),
    });
    return { status: 200, body: page };
  }

  private async listConflicts(ctx: RequestContext): Promise<Reply> {
    const params = query(ctx, ['dataset', 'key', 'limit']);
    const conflicts = await this.replica.conflicts({
      ...(params.dataset === undefined ? {} : { dataset: params.dataset }),
      ...(params.key === undefined ? {} : { key: params.key }),
      ...(params.limit === undefined ? {} : { limit: integerParam('limit', params.limit) }),
    });
    return { status: 200, body: { conflicts } };
  }

  // ---------------------------------------------------------------- node

  private async status(ctx: RequestContext): Promise<Reply> {
    query(ctx, []);
    const { node } = this.deps;
    return {
      status: 200,
      body: {
        node: node.id,
        region: node.region,
        zone: node.zone ?? null,
        lastSeq: this.replica.lastSeq,
        durability: this.replica.durability,
        uptimeMs: Math.round(performance.now() - this.startedMs),
        links: this.deps.replication?.status().links ?? [],
      },
    };
  }

  private async peers(ctx: RequestContext): Promise<Reply> {
    query(ctx, []);
    const cursors = await this.replica.cursors();
    return { status: 200, body: { links: this.deps.replication?.status().links ?? [], cursors } };
  }

  private noteTrace(ctx: RequestContext, result: WriteResult): void {
    if (result.seq !== null) this.deps.replication?.noteTrace?.(result.seq, ctx.traceId);
  }

  private async metricsText(ctx: RequestContext): Promise<Reply> {
    query(ctx, []);
    const metrics = this.deps.metrics;
    if (metrics === undefined) throw new TesseraError('ERR_NOT_FOUND', 'this node serves no metrics (createHttpHandler was given none)');
    return { status: 200, raw: await metrics.registry.metrics(), contentType: metrics.registry.contentType };
  }

  // ---------------------------------------------------------------- policy and audit

  private async getPolicy(ctx: RequestContext): Promise<Reply> {
    query(ctx, []);
    const describe = (policy: Policy | null) => (policy === null ? null : { version: policy.version, hash: policyHash(policy), text: policy.text });
    return { status: 200, body: { region: this.deps.node.region, enforced: describe(this.replica.policy), shadow: describe(this.replica.shadowPolicy) } };
  }

  /** `{ text, mode }`: `plan` reports what the policy would change here; `shadow` and `enforce` install it. */
  private async postPolicy(ctx: RequestContext): Promise<Reply> {
    query(ctx, []);
    const body = await readJsonBody(ctx.req, policyBodyBytesMax);
    if (!isPlainObject(body)) throw new TesseraError('ERR_BODY_INVALID', 'POST /v1/policy body must be an object { "text": "<policy YAML or JSON>", "mode": "plan" | "shadow" | "enforce" }');
    for (const field of Object.keys(body)) {
      if (field !== 'text' && field !== 'mode') throw new TesseraError('ERR_BODY_INVALID', `POST /v1/policy body: unknown field ${JSON.stringify(field).slice(0, 80)} (the fields are text, mode)`);
    }
    if (typeof body.text !== 'string') throw new TesseraError('ERR_BODY_INVALID', 'POST /v1/policy body: "text" must be the policy as a string');
    const mode = body.mode;
    if (mode !== 'plan' && mode !== 'shadow' && mode !== 'enforce') {
      throw new TesseraError('ERR_BODY_INVALID', `POST /v1/policy body: "mode" must be "plan", "shadow" or "enforce", got ${describeValue(mode, 40)}`);
    }
    const policy = parsePolicy(body.text, 'policy');
    const stamp = { version: policy.version, hash: policyHash(policy) };
    if (mode === 'plan') return { status: 200, body: { mode, policy: stamp, report: await this.replica.planPolicy(policy) } };
    const shadowBefore = this.replica.shadowPolicy;
    const report = await this.replica.installPolicy(policy, mode, 'api');
    // Installing a shadow reports nothing; it changed something if the shadow is now another one.
    const changed = mode === 'enforce' ? report !== null : this.replica.shadowPolicy !== shadowBefore;
    // Only a change is news to the links (telling them makes them offer entries the peers refused again).
    if (mode === 'enforce' && changed) this.deps.replication?.policyChanged?.();
    return { status: 200, body: { mode, policy: stamp, changed, report } };
  }

  private async policyHistory(ctx: RequestContext): Promise<Reply> {
    query(ctx, []);
    const enforced = this.replica.policy?.version ?? null;
    const shadow = this.replica.shadowPolicy?.version ?? null;
    const history = (await this.replica.policyHistory()).map((record) => ({
      ...record, state: record.version === enforced ? 'enforced' : record.version === shadow ? 'shadow' : 'stored',
    }));
    return { status: 200, body: { history } };
  }

  private async listAudit(ctx: RequestContext): Promise<Reply> {
    const params = query(ctx, ['after', 'limit']);
    const entries = await this.replica.audit({
      ...(params.after === undefined ? {} : { after: integerParam('after', params.after) }),
      ...(params.limit === undefined ? {} : { limit: integerParam('limit', params.limit) }),
    });
    return { status: 200, body: { region: this.deps.node.region, length: this.replica.auditLength, entries } };
  }

  private async verifyAudit(ctx: RequestContext): Promise<Reply> {
    query(ctx, []);
    return { status: 200, body: { region: this.deps.node.region, ...(await this.replica.verifyAudit()) } };
  }

  private async ready(ctx: RequestContext): Promise<Reply> {
    query(ctx, []);
    const storeOpen = this.replica.isOpen;
    const ready = storeOpen && !this.drainingNow;
    return { status: ready ? 200 : 503, body: { ready, storeOpen, draining: this.drainingNow } };
  }

  // ---------------------------------------------------------------- session tokens

  /** True once this node's copy of (dataset, key) holds `dot`; false after `waitMs` or when `signal` aborts. */
  private async waitForDot(dataset: string, key: string, dot: Dot, waitMs: number, signal: AbortSignal): Promise<boolean> {
    const holds = async () => (await this.replica.state(dataset, key))?.ctx.has(dot) ?? false;
    if (await holds()) return true;
    if (waitMs === 0 || signal.aborted || this.waiters.size >= tokenWaitersMax) return false;
    const { waitFor } = this.deps.replication ?? {};
    if (waitFor !== undefined) {
      const arrived = await abortable(waitFor.call(this.deps.replication, dataset, key, dot, Date.now() + waitMs), signal, false);
      // Confirm in the store: the answer must show what the token promised.
      return arrived && (await holds());
    }
    const deadlineMs = performance.now() + waitMs;
    let wake: (() => void) | null = null;
    const unsubscribe = this.waiters.add(dataset, key, () => wake?.());
    const onAbort = () => wake?.();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      // Bounded by the deadline; wakes on a change to the document, on abort, or every `readTokenPollMs`.
      for (;;) {
        const remainingMs = deadlineMs - performance.now();
        if (remainingMs <= 0 || signal.aborted) return false;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, Math.min(readTokenPollMs, remainingMs));
          function done() {
            clearTimeout(timer);
            wake = null;
            resolve();
          }
          wake = done;
        });
        if (await holds()) return true;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      unsubscribe();
    }
  }

}

/** Wakes waiting reads when their document changes, through one `change` listener on the replica. */
class ChangeWaiters {
  private readonly byDoc = new Map<string, Set<() => void>>();
  private count = 0;
  private readonly listener = (change: ChangeEvent) => {
    for (const wake of this.byDoc.get(docId(change.dataset, change.key)) ?? []) wake();
  };

  constructor(private readonly replica: Replica) {}

  /** Reads waiting now. */
  get size(): number {
    return this.count;
  }

  add(dataset: string, key: string, wake: () => void): () => void {
    const id = docId(dataset, key);
    let set = this.byDoc.get(id);
    if (set === undefined) this.byDoc.set(id, (set = new Set()));
    set.add(wake);
    if (this.count++ === 0) this.replica.on('change', this.listener);
    return () => {
      set!.delete(wake);
      if (set!.size === 0) this.byDoc.delete(id);
      if (--this.count === 0) this.replica.off('change', this.listener);
    };
  }
}

// ---------------------------------------------------------------- helpers

/** What a write answers: its sequence number, timestamp and session token (null when it changed nothing). */
interface WriteAnswer {
  readonly seq: number | null;
  readonly hlc: WriteResult['hlc'];
  readonly token: string | null;
}

function writeAnswer(dataset: string, key: string, result: WriteResult): WriteAnswer {
  const { seq, hlc, dot } = result;
  return { seq, hlc, token: seq === null || dot === null ? null : encodeSessionToken(dataset, key, dot) };
}

function route(pattern: string, methods: Route['methods']): Route {
  return { pattern, segments: pattern.split('/'), methods };
}

function allowedMethods(candidate: Route): string[] {
  const methods = Object.keys(candidate.methods);
  return methods.includes('GET') ? [...methods, 'HEAD'] : methods;
}

/** Splits a request target into its raw path and query, without normalising dot segments or decoding. */
function splitTarget(target: string): [string, string] {
  let path = target;
  if (!path.startsWith('/')) {
    // The absolute form (`GET http://host/path`), which HTTP/1.1 servers must accept.
    try {
      const url = new URL(target);
      path = url.pathname + url.search;
    } catch {
      throw new TesseraError('ERR_NOT_FOUND', 'the request target is not a path');
    }
  }
  const mark = path.indexOf('?');
  return mark < 0 ? [path, ''] : [path.slice(0, mark), path.slice(mark + 1)];
}

function decodeParam(raw: string, code: ErrorCode, what: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new TesseraError(code, `${what} ${JSON.stringify(raw.slice(0, 80))} in the path is not valid percent-encoded UTF-8`);
  }
}

function documentParams(ctx: RequestContext): { dataset: string; key: string } {
  const dataset = decodeParam(ctx.params.dataset!, 'ERR_DATASET_NAME_INVALID', 'dataset name');
  checkDatasetName(dataset);
  const key = decodeParam(ctx.params.key!, 'ERR_KEY_INVALID', 'document key');
  checkKey(key);
  return { dataset, key };
}

/** The query's parameters, each at most once and all in `allowed`. Throws `ERR_OPTION_INVALID`. */
function query(ctx: RequestContext, allowed: readonly string[]): Record<string, string | undefined> {
  const out: Record<string, string> = {};
  for (const [name, value] of ctx.query) {
    if (!allowed.includes(name)) {
      throw new TesseraError('ERR_OPTION_INVALID',
        `query parameter ${JSON.stringify(name).slice(0, 80)} is unknown here${allowed.length === 0 ? ': this route takes none' : `: use ${allowed.join(', ')}`}`);
    }
    if (name in out) throw new TesseraError('ERR_OPTION_INVALID', `query parameter "${name}" is given more than once`);
    out[name] = value;
  }
  return out;
}

function integerParam(name: string, value: string): number {
  if (!/^[0-9]{1,9}$/.test(value)) {
    throw new TesseraError('ERR_OPTION_INVALID', `query parameter ${name} ${JSON.stringify(value.slice(0, 40))} is not a non-negative integer`);
  }
  return Number(value);
}

function docId(dataset: string, key: string): string {
  // Keys cannot contain control characters, so NUL separates unambiguously.
  return `${dataset}\u0000${key}`;
}

/** `promise`, or `fallback` as soon as `signal` aborts. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal, fallback: T): Promise<T> {
  if (signal.aborted) return Promise.resolve(fallback);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => resolve(fallback);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function errorForLog(error: unknown): { name: string; stack: string[] } {
  if (!(error instanceof Error)) return { name: typeof error, stack: [] };
  // The first line of a stack repeats the message; only the frames are logged.
  const frames = (error.stack ?? '').split('\n').slice(1).map((line) => line.trim()).filter((line) => line.startsWith('at '));
  return { name: error.name, stack: frames.slice(0, 20) };
}

const traceparentPattern = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

/**
 * The trace of a request: the trace id of its W3C `traceparent` header when it has a valid one (all-zero ids
 * are invalid), else a new one; and a new span id for this node's handling of it.
 */
function traceOf(header: string | string[] | undefined): { traceId: string; spanId: string } {
  const spanId = randomBytes(8).toString('hex');
  const match = typeof header === 'string' ? traceparentPattern.exec(header) : null;
  if (match !== null && !/^0+$/.test(match[1]!) && !/^0+$/.test(match[2]!)) return { traceId: match[1]!, spanId };
  return { traceId: randomBytes(16).toString('hex'), spanId };
}
