/**
 * The request engine of `Client`: where a call may go (placement, nearest first; routing.ts), whether a node is
 * ready (`/readyz`, cached), and sending with failover, back-off and retries as far as the call allows. The
 * typed methods live in client.ts; the change feed's loop in changes.ts.
 */
import { TesseraError, checkDatasetName } from '@tessera/core';
import { type PlacementAnswer } from '../http/routes-placement.js';
import { caFetch } from '../tls/fetch.js';
import { TesseraClientError, errorOfAnswer } from './errors.js';
import { type ClientLocation, type ClientNode, type RoutePlan, planRoute } from './routing.js';

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

/** What the transport needs (the `Client`'s options). */
export interface TransportOptions {
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

/** One HTTP call. */
export interface Call {
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

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Exponential back-off with full jitter: a random wait up to `min * 2^attempt`, at most `max`. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(clientBackoffMsMax, clientBackoffMsMin * 2 ** attempt));
}

/** Sends calls to the nodes a dataset may use. */
export class Transport {
  readonly nodes: readonly ClientNode[];
  readonly token: string;
  readonly doFetch: typeof fetch;
  readonly near: ClientLocation | undefined;
  readonly timeoutMs: number;
  readonly attemptsMax: number;
  private readonly healthTtlMs: number;
  private readonly placementTtlMs: number;
  private readonly health = new Map<string, { ready: boolean; atMs: number }>();
  private readonly placements = new Map<string, { answer: PlacementAnswer; atMs: number }>();

  constructor(options: TransportOptions) {
    if (!Array.isArray(options.nodes) || options.nodes.length === 0)
      throw new TesseraError('ERR_OPTION_INVALID', 'Client: nodes must list at least one { url, region }');
    for (const node of options.nodes) {
      try {
        const url = new URL(node.url);
        if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http');
      } catch {
        throw new TesseraError('ERR_OPTION_INVALID', `Client: node url ${JSON.stringify(node.url)} is not an http(s) URL`);
      }
      if (typeof node.region !== 'string' || node.region === '') throw new TesseraError('ERR_OPTION_INVALID', `Client: node ${node.url} needs its region`);
    }
    if (typeof options.token !== 'string' || options.token === '')
      throw new TesseraError('ERR_OPTION_INVALID', 'Client: token is required (tessera token create)');
    this.nodes = options.nodes.map((node) => ({ url: node.url.replace(/\/+$/, ''), region: node.region }));
    this.token = options.token;
    this.doFetch = options.fetch ?? (options.ca === undefined ? fetch : caFetch(options.ca));
    this.near = options.near;
    this.timeoutMs = options.timeoutMs ?? clientTimeoutMsDefault;
    this.attemptsMax = options.attemptsMax ?? clientAttemptsMaxDefault;
    this.healthTtlMs = options.healthTtlMs ?? clientHealthTtlMsDefault;
    this.placementTtlMs = options.placementTtlMs ?? clientPlacementTtlMsDefault;
  }

  /** Which regions may hold a dataset, as a node's enforced policy says (cached for `placementTtlMs`). */
  async placement(dataset: string): Promise<PlacementAnswer> {
    checkDatasetName(dataset);
    const cached = this.placements.get(dataset);
    if (cached !== undefined && Date.now() - cached.atMs < this.placementTtlMs) return cached.answer;
    const answer = (await this.send(null, { method: 'GET', path: `/v1/placement/${encodeURIComponent(dataset)}`, idempotent: true })) as PlacementAnswer;
    this.placements.set(dataset, { answer, atMs: Date.now() });
    return answer;
  }

  /** The nodes a dataset's requests may go to, nearest first. */
  async route(dataset: string): Promise<RoutePlan> {
    return planRoute(this.nodes, await this.placement(dataset), this.near);
  }

  /** True when the node answers `/readyz` with 200 (cached for `healthTtlMs`). */
  async ready(node: ClientNode): Promise<boolean> {
    const known = this.health.get(node.url);
    if (known !== undefined && Date.now() - known.atMs < this.healthTtlMs) return known.ready;
    let ready = false;
    try {
      const response = await this.doFetch(`${node.url}/readyz`, {
        headers: { authorization: `Bearer ${this.token}` },
        signal: AbortSignal.timeout(clientProbeTimeoutMs),
      });
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

  /** The first of `nodes` that is ready; `ERR_NODE_UNAVAILABLE` when none is. */
  async firstReady(nodes: readonly ClientNode[], dataset: string | null): Promise<ClientNode> {
    for (const node of nodes) if (await this.ready(node)) return node;
    throw this.unavailable(
      dataset,
      nodes.map((node) => `${node.url} (not ready)`),
    );
  }

  /** The error of a call no node answered. */
  unavailable(dataset: string | null, tried: readonly string[]): TesseraClientError {
    return new TesseraClientError(
      'ERR_NODE_UNAVAILABLE',
      `no node${dataset === null ? '' : ` that may hold dataset ${dataset}`} answered after ${this.attemptsMax} rounds: ${tried.slice(-8).join('; ')}`,
      null,
      null,
    );
  }

  /** Sends a call to the nodes `dataset` may use (any node when null), failing over and retrying as it may. */
  async send(dataset: string | null, call: Call): Promise<unknown> {
    let candidates: readonly ClientNode[];
    if (dataset === null) candidates = planRoute(this.nodes, null, this.near).nodes;
    else {
      const plan = await this.route(dataset);
      if (plan.nodes.length === 0) {
        throw new TesseraClientError(
          'ERR_POLICY_DENIED',
          `dataset ${dataset} may be held only in regions ${plan.regions!.length === 0 ? '(none)' : plan.regions!.join(', ')}; this client has nodes in ${[...new Set(this.nodes.map((n) => n.region))].join(', ')} only: give it a node of a region that may hold the dataset`,
          { regions: plan.regions },
          null,
        );
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
            throw new TesseraClientError(
              'ERR_NODE_UNAVAILABLE',
              `${call.method} ${node.url}: ${code}; the operation may or may not have been applied (not retried: it is not idempotent)`,
              null,
              node.url,
            );
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
      method: call.method,
      headers,
      ...(call.body === undefined ? {} : { body: call.body }),
      signal: AbortSignal.timeout(this.timeoutMs),
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
