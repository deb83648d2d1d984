/**
 * The history of a chaos run, in the manner of Jepsen: every client operation as invoked and as completed
 * (ok with the answer's seq, token and dot; fail when it certainly did not happen; info when it may have),
 * the samples of every node's sequence numbers and cursors taken during the run, the faults as they were
 * carried out, and the final state of every node.
 */
import { readFileSync } from 'node:fs';
import { caFetch } from '@tessera/server';

import { type PolicyShape } from './policy.js';

/** What a client asked for; `policy` is the schedule installing a policy version on one node. */
export type OpKind = 'put' | 'set-field' | 'delete-field' | 'increment' | 'add' | 'remove' | 'tag' | 'delete' | 'read-token' | 'policy';

/** One acknowledged write's identity: the dot a replica holding the write has in the document's context. */
export type Dot = readonly [node: string, counter: number];

/** One client operation. */
export interface Op {
  readonly id: number;
  readonly client: number;
  readonly node: string;
  readonly region: string;
  readonly kind: OpKind;
  readonly dataset: string;
  readonly key: string;
  /**
   * The operation's arguments as the checker needs them (value, field, amount, element, tags, type; `marker`:
   * the marker its value carries; for `policy`, the version).
   */
  readonly args: Readonly<Record<string, unknown>>;
  readonly invokeMs: number;
  completeMs: number | null;
  /** ok: answered 2xx; fail: certainly not applied (4xx, connection refused); info: may or may not have been applied. */
  outcome: 'pending' | 'ok' | 'fail' | 'info';
  status?: number;
  code?: string;
  error?: string;
  /** For writes answered 2xx: the sequence number at the writing node, the session token and its dot. */
  seq?: number | null;
  token?: string | null;
  dot?: Dot | null;
  /** For token reads answered 200: the context of the document as read. */
  readContext?: unknown;
}

/** A sample of a node's progress, polled during the run. */
export interface NodeSample {
  readonly node: string;
  /** How many times the node was (re)started before this sample. */
  readonly incarnation: number;
  /** When the sample was asked for, and when its last answer came (the node enforced `policyVersion` by then). */
  readonly atMs: number;
  readonly answeredAtMs: number;
  /** The policy version the node enforced (`GET /v1/policy`); null without one. */
  readonly policyVersion: number | null;
  readonly lastSeq: number;
  /** Durable cursors (`GET /v1/peers`): how far each peer has acknowledged this node's log. */
  readonly cursors: Readonly<Record<string, number>>;
  /** State catch-ups this incarnation's links started (a peer behind the truncated log), summed over links. */
  readonly catchUps: number;
}

/** A fault as carried out, for the report. */
export interface FaultRecord {
  readonly atMs: number;
  readonly text: string;
}

/** The decoded session token: [dataset, key, node, counter]. */
export function dotOfToken(token: string): Dot {
  const [, , node, counter] = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as [string, string, string, number];
  return [node, counter];
}

/** The answer of an HTTP call, or why there is none. */
export type CallResult =
  | { readonly kind: 'answer'; readonly status: number; readonly body: any }
  | { readonly kind: 'error'; readonly definite: boolean; readonly message: string };

let fetchWithCa: { ca: string; fetch: typeof fetch } | null = null;

/** A fetch that trusts the CA named by TESSERA_CA (the test cluster's), or the global one. */
export function secureFetch(): typeof fetch {
  const ca = process.env.TESSERA_CA;
  if (ca === undefined) return fetch;
  if (fetchWithCa?.ca !== ca) fetchWithCa = { ca, fetch: caFetch(readFileSync(ca, 'utf8')) };
  return fetchWithCa.fetch;
}

/**
 * Calls a node's API. A refused connection is definite (the request never reached the node); any other
 * failure (reset, timeout) leaves the request's effect unknown.
 */
export async function call(url: string, method: string, path: string, body?: unknown, timeoutMs = 10_000): Promise<CallResult> {
  try {
    // The cluster runs secure: the harness put its admin token and CA in the environment.
    const token = process.env.TESSERA_TOKEN;
    const response = await secureFetch()(new URL(path, url), {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    let parsed: unknown = null;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch {
      parsed = text;
    }
    return { kind: 'answer', status: response.status, body: parsed };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    const code = cause?.code ?? (error as Error).name;
    return { kind: 'error', definite: code === 'ECONNREFUSED', message: `${code}: ${(error as Error).message}` };
  }
}

/** The recorder: operations, samples and faults, with times relative to the run's start. */
export class History {
  readonly ops: Op[] = [];
  readonly samples: NodeSample[] = [];
  readonly faults: FaultRecord[] = [];
  /** Every policy version the schedule installs (version 1 is the cluster's file). */
  readonly policies = new Map<number, PolicyShape>();
  private startMs = Date.now();

  /** Times are relative to this moment: the start of the workload and the fault schedule. */
  start(): void {
    this.startMs = Date.now();
  }

  now(): number {
    return Date.now() - this.startMs;
  }

  invoke(op: Omit<Op, 'id' | 'invokeMs' | 'completeMs' | 'outcome'>): Op {
    const recorded: Op = { ...op, id: this.ops.length, invokeMs: this.now(), completeMs: null, outcome: 'pending' };
    this.ops.push(recorded);
    return recorded;
  }

  /** Completes `op` with the result of its call. */
  complete(op: Op, result: CallResult): void {
    op.completeMs = this.now();
    if (result.kind === 'error') {
      op.outcome = result.definite ? 'fail' : 'info';
      op.error = result.message;
      return;
    }
    op.status = result.status;
    if (result.status >= 200 && result.status < 300) {
      op.outcome = 'ok';
      const answer = op.kind === 'read-token' || op.kind === 'policy' ? null : Array.isArray(result.body?.results) ? result.body.results[0] : result.body;
      if (answer !== null && answer !== undefined) {
        op.seq = answer.seq ?? null;
        op.token = answer.token ?? null;
        op.dot = typeof answer.token === 'string' ? dotOfToken(answer.token) : null;
      }
      if (op.kind === 'read-token') op.readContext = result.body?.context;
      return;
    }
    op.code = typeof result.body?.code === 'string' ? result.body.code : undefined;
    // A 4xx is a refusal: nothing was applied (the HTTP fuzz checks that). A 5xx may have been applied.
    op.outcome = result.status < 500 ? 'fail' : 'info';
  }

  fault(text: string): void {
    this.faults.push({ atMs: this.now(), text });
  }

  /** Counts by kind and outcome, for the report. */
  summary(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const op of this.ops) {
      const row = (out[op.kind] ??= {});
      row[op.outcome] = (row[op.outcome] ?? 0) + 1;
    }
    return out;
  }
}
