/**
 * What the route files share: the handler's dependencies, the per-request state the hooks attach, and the
 * small helpers every route uses to read its query and answer (JSON or problem+json, with bytes as base64).
 */
import { type FastifyReply, type FastifyRequest } from 'fastify';
import { type CrdtTypeName, type ErrorCode, TesseraError, checkDatasetName, checkKey } from '@tessera/core';
import { type Replica, type WriteResult } from '@tessera/store';
import { type Principal } from '../auth/access.js';
import { type ClusterView } from '../cluster-view.js';
import { type NodeMetrics } from '../metrics.js';
import { type Problem, bytesAsBase64 } from '../problem.js';
import { encodeSessionToken } from '../token.js';
import { type SessionWaits } from './session-wait.js';

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

/** The state a request carries from the hooks to its route. */
export interface RequestState {
  /** The W3C trace id of the request (from its `traceparent`, or new). */
  readonly traceId: string;
  /** Aborted when the client goes away or the API starts draining. */
  readonly signal: AbortSignal;
  /** Who made the request (null only on routes open without a credential). */
  principal: Principal | null;
  /** The problem's code when the request failed (for the request log). */
  code?: ErrorCode;
  /** For `ERR_INTERNAL` only: the error's class and stack frames (not its message, which may hold data). */
  error?: { readonly name: string; readonly stack: readonly string[] };
}

declare module 'fastify' {
  interface FastifyRequest {
    tessera: RequestState;
  }
}

/** What the route files get. */
export interface RouteContext {
  readonly replica: Replica;
  readonly node: HttpNodeInfo;
  readonly replication: Replication | undefined;
  readonly metrics: NodeMetrics | undefined;
  readonly cluster: ClusterView | undefined;
  readonly datasets: Readonly<Record<string, { readonly type: CrdtTypeName }>> | undefined;
  readonly waits: SessionWaits;
  readonly startedMs: number;
  readonly policySigning: PolicySigning | undefined;
  /** True while the node drains (`/readyz` answers 503). */
  draining(): boolean;
}

/** How `POST /v1/policy` checks signatures: the cluster id and the operator's public keys. */
export interface PolicySigning {
  readonly cluster: string;
  readonly operatorKeys: readonly import('node:crypto').KeyObject[];
}

/** Sends a JSON body (`Uint8Array`s as base64), never cached. */
export function sendJson(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.code(status).header('cache-control', 'no-store').type('application/json; charset=utf-8').send(JSON.stringify(body, bytesAsBase64));
}

/** Sends a problem document. */
export function sendProblem(request: FastifyRequest, reply: FastifyReply, problem: Problem): FastifyReply {
  request.tessera.code = problem.code;
  return reply
    .code(problem.status)
    .header('cache-control', 'no-store')
    .type('application/problem+json; charset=utf-8')
    .send(JSON.stringify(problem, bytesAsBase64));
}

/**
 * The query's parameters, each at most once and all in `allowed`. Throws `ERR_OPTION_INVALID`. (The route's
 * schema says the same; this check runs first so its message names the parameter and the allowed ones.)
 */
export function query(request: FastifyRequest, allowed: readonly string[]): Record<string, string | undefined> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.query as Record<string, string | string[]>)) {
    if (!allowed.includes(name)) {
      throw new TesseraError(
        'ERR_OPTION_INVALID',
        `query parameter ${JSON.stringify(name).slice(0, 80)} is unknown here${allowed.length === 0 ? ': this route takes none' : `: use ${allowed.join(', ')}`}`,
      );
    }
    if (Array.isArray(value)) throw new TesseraError('ERR_OPTION_INVALID', `query parameter "${name}" is given more than once`);
    out[name] = value;
  }
  return out;
}

/** A non-negative integer query parameter. Throws `ERR_OPTION_INVALID`. */
export function integerParam(name: string, value: string, digitsMax = 9): number {
  if (!new RegExp(`^[0-9]{1,${digitsMax}}$`).test(value)) {
    throw new TesseraError('ERR_OPTION_INVALID', `query parameter ${name} ${JSON.stringify(value.slice(0, 40))} is not a non-negative integer`);
  }
  return Number(value);
}

/** The (decoded, checked) dataset and key of a document route. */
export function documentParams(request: FastifyRequest): { dataset: string; key: string } {
  const params = request.params as { dataset: string; key: string };
  checkDatasetName(params.dataset);
  checkKey(params.key);
  return { dataset: params.dataset, key: params.key };
}

/** What a write answers: its sequence number, timestamp and session token (null when it changed nothing). */
export interface WriteAnswer {
  readonly seq: number | null;
  readonly hlc: WriteResult['hlc'];
  readonly token: string | null;
}

/** The answer of a write. */
export function writeAnswer(dataset: string, key: string, result: WriteResult): WriteAnswer {
  const { seq, hlc, dot } = result;
  return { seq, hlc, token: seq === null || dot === null ? null : encodeSessionToken(dataset, key, dot) };
}

/** Tells replication the trace id of a local write. */
export function noteTrace(context: RouteContext, request: FastifyRequest, result: WriteResult): void {
  if (result.seq !== null) context.replication?.noteTrace?.(result.seq, request.tessera.traceId);
}

/**
 * Throws the schema's verdict when the request broke its route's schema and the route's own, more specific
 * checks did not already refuse it (they run first, for their messages).
 */
export function schemaVerdict(request: FastifyRequest): void {
  const error = (request as FastifyRequest & { validationError?: Error & { validationContext?: string } }).validationError;
  if (error === undefined) return;
  const where = error.validationContext ?? 'request';
  const code: ErrorCode = where === 'body' ? 'ERR_BODY_INVALID' : where === 'params' ? 'ERR_OPTION_INVALID' : 'ERR_OPTION_INVALID';
  throw new TesseraError(code, `${where}: ${error.message.slice(0, 300)}`);
}

/** An NDJSON request body, parsed: one JSON document per line (only batch writes take it). */
export class NdjsonBody {
  constructor(readonly lines: readonly unknown[]) {}
}

/** The parsed JSON body; a request without one (and without a content type) is refused as `ERR_CONTENT_TYPE`. */
export function requireBody(request: FastifyRequest): unknown {
  if (request.body === undefined) throw new TesseraError('ERR_CONTENT_TYPE', 'content type (none) is not accepted: send application/json (UTF-8)');
  if (request.body instanceof NdjsonBody)
    throw new TesseraError('ERR_CONTENT_TYPE', `${request.routeOptions.url ?? 'this route'} does not take application/x-ndjson: send application/json (UTF-8)`);
  return request.body;
}
