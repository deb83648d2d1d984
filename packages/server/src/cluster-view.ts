/**
 * The cluster view from any node (`GET /v1/cluster`, which the dashboard polls). This node asks every node of
 * the cluster config — itself included, through the same HTTP API, so every node is seen the same way — for
 * its status, its policy stamp, its per-dataset counts, its recent conflicts and its audit tail. Peers are
 * asked at their advertised address (their HTTP API shares the port of their peer WebSocket), each with one
 * deadline for all its requests, a bounded number at once; a node that does not answer in time is marked
 * unreachable. The view is what this node can see: a peer it cannot reach may well be up for others.
 *
 * Gathers are shared: requests that arrive while one runs get its result, and a result is reused for
 * `clusterSnapshotReuseMs`, so any number of open dashboards costs the peers one gather per interval.
 */
import { performance } from 'node:perf_hooks';
import { MiB, TesseraError, assert } from '@tessera/core';
import { type ClusterConfig, type HostPort, findNode, formatHostPort } from './config.js';

/** One deadline for all the requests to one node in a gather. */
export const clusterMemberDeadlineMs = 2_000;
/** Nodes asked at once. A gather takes at most ⌈nodes / this⌉ × `clusterMemberDeadlineMs`. */
export const clusterFetchConcurrencyMax = 8;
/** A finished gather is reused this long. */
export const clusterSnapshotReuseMs = 500;
/** Largest answer read from a node; past it that part of the view is missing. */
export const clusterResponseBytesMax = 4 * MiB;
/** Conflicts asked of each node (its list is ordered by document, not time: this bounds the work, not recency). */
export const clusterConflictsPerNodeMax = 50;
/** Conflicts in the view: the newest, deduplicated over nodes. */
export const clusterConflictsMax = 25;
/** Audit entries asked of each node: the end of its log. */
export const clusterAuditTailEntries = 20;
/** Audit entries in the view: the newest over all nodes. */
export const clusterAuditMax = 40;
/** A conflict's winning and losing values are shown as JSON cut to this many characters. */
export const conflictValuePreviewCharsMax = 80;
/**
 * A node's per-dataset counts are asked for at most this often (the node scans its store to count); between
 * times the view shows the last counts with their age.
 */
export const clusterSummaryRefreshMs = 5_000;
/** The route of per-dataset counts (`tessera inspect summary --url`); a node without it shows no counts. */
export const inspectSummaryPath = '/v1/inspect/summary';

assert(clusterConflictsMax <= clusterConflictsPerNodeMax, 'the view keeps at most what it asks each node for');

/** A node the view asks. */
export interface ClusterMember {
  readonly node: string;
  readonly region: string;
  /** The base URL of its HTTP API. */
  readonly url: string;
}

/** One node as this node sees it. */
export interface MemberView extends ClusterMember {
  readonly self: boolean;
  readonly reachable: boolean;
  /** Why the node is unreachable, or which parts of its view are missing and why; null when all came. */
  readonly error: string | null;
  /** How long its gather took. */
  readonly gatherMs: number;
  /** Its `GET /v1/status` answer (node, lastSeq, uptime, every link's state, lag, backlog, rates, policy counts). */
  readonly status: unknown;
  /** Its enforced and shadow policy version and hash (without the text). */
  readonly policy: { readonly enforced: PolicyStamp | null; readonly shadow: PolicyStamp | null } | null;
  /** Its `GET /v1/inspect/summary` answer (datasets with document and quarantined counts), or null. */
  readonly summary: unknown;
  /** How old `summary` is (it is refreshed every `clusterSummaryRefreshMs`). */
  readonly summaryAgeMs: number | null;
  /** Its audit log's length. */
  readonly auditLength: number | null;
}

/** A policy version as a node reports it. */
export interface PolicyStamp {
  readonly version: number;
  readonly hash: string;
}

/** A conflict as the view shows it: values as short previews, and the nodes that recorded it. */
export interface ConflictView {
  readonly id: string;
  readonly dataset: string;
  readonly key: string;
  readonly path: readonly string[];
  readonly kind: string;
  readonly origin: string;
  readonly recordedAt: { readonly ms: number; readonly c: number };
  readonly winner: string;
  readonly loser: string;
  readonly seenOn: readonly string[];
}

/** An audit entry as the view shows it (without its chain hashes). */
export interface AuditView {
  readonly seq: number;
  readonly atMs: number;
  readonly kind: string;
  readonly node: string;
  readonly region: string;
  readonly details: Readonly<Record<string, unknown>>;
}

/** The answer of `GET /v1/cluster`. */
export interface ClusterSnapshot {
  /** The node that gathered the view. */
  readonly viewer: { readonly node: string; readonly region: string };
  /** Wall-clock time of the gather. */
  readonly atMs: number;
  readonly members: readonly MemberView[];
  /** Newest first. */
  readonly conflicts: readonly ConflictView[];
  /** Newest first, over all reachable nodes. */
  readonly audit: readonly AuditView[];
}

/** The nodes of `config` as `nodeId` reaches them: itself at its listen address, peers at their advertised one. */
export function clusterMembersOf(config: ClusterConfig, nodeId: string): ClusterMember[] {
  findNode(config, nodeId);
  return config.nodes.map((node) => ({
    node: node.id,
    region: node.region,
    url: `http://${formatHostPort(node.id === nodeId ? dialable(node.listen) : node.advertise)}`,
  }));
}

/** A listen address this process can dial: a wildcard becomes loopback. */
function dialable(address: HostPort): HostPort {
  if (address.host === '0.0.0.0') return { ...address, host: '127.0.0.1' };
  if (address.host === '::') return { ...address, host: '::1' };
  return address;
}

/** Gathers the cluster view; see the file comment. */
export class ClusterView {
  private running: Promise<ClusterSnapshot> | null = null;
  private last: { readonly doneMs: number; readonly snapshot: ClusterSnapshot } | null = null;
  /** What the last gathers learnt of each node: its per-dataset counts (with when they came), its audit log's length. */
  private readonly memory = new Map<string, MemberMemory>();

  constructor(
    private readonly viewer: { readonly node: string; readonly region: string },
    private readonly members: readonly ClusterMember[],
  ) {
    assert(members.some((member) => member.node === viewer.node), 'the viewer is a member of its cluster');
  }

  /** The current view: a recent one, the one being gathered, or a new gather. */
  snapshot(): Promise<ClusterSnapshot> {
    if (this.last !== null && performance.now() - this.last.doneMs < clusterSnapshotReuseMs) return Promise.resolve(this.last.snapshot);
    this.running ??= this.gather().then((snapshot) => {
      this.last = { doneMs: performance.now(), snapshot };
      return snapshot;
    }).finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async gather(): Promise<ClusterSnapshot> {
    const atMs = Date.now();
    const gathered = await mapBounded(this.members, clusterFetchConcurrencyMax, async (member) => {
      const known = this.memory.get(member.node) ?? {};
      const one = await gatherMember(member, member.node === this.viewer.node, known);
      this.memory.set(member.node, { summary: one.summary ?? known.summary, auditLength: one.view.auditLength ?? known.auditLength });
      return one;
    });
    return {
      viewer: this.viewer,
      atMs,
      members: gathered.map((one) => one.view),
      conflicts: mergeConflicts(gathered),
      audit: gathered.flatMap((one) => one.audit)
        .sort((a, b) => b.atMs - a.atMs || (a.node < b.node ? -1 : a.node > b.node ? 1 : b.seq - a.seq))
        .slice(0, clusterAuditMax),
    };
  }
}

interface CachedSummary {
  readonly fetchedMs: number;
  readonly body: unknown;
}

interface MemberMemory {
  readonly summary?: CachedSummary | undefined;
  readonly auditLength?: number | undefined;
}

interface Gathered {
  readonly view: MemberView;
  readonly summary: CachedSummary | null;
  readonly conflicts: readonly RawConflict[];
  readonly audit: readonly AuditView[];
}

interface RawConflict {
  readonly id: string;
  readonly dataset: string;
  readonly key: string;
  readonly path: readonly string[];
  readonly kind: string;
  readonly origin: string;
  readonly recordedAt: { readonly ms: number; readonly c: number };
  readonly winner: { readonly value: unknown };
  readonly loser: { readonly value: unknown };
}

/**
 * Asks one node for its part of the view, all parts at once (a far region costs one round trip, not several);
 * never throws: a failure is the node's `error`. A node is reachable when it answers its status.
 */
async function gatherMember(member: ClusterMember, self: boolean, known: MemberMemory): Promise<Gathered> {
  const startedMs = performance.now();
  const signal = AbortSignal.timeout(clusterMemberDeadlineMs);
  const get = (path: string) => getJson(member.url, path, signal);
  const missing: string[] = [];
  const part = async <T>(what: string, run: () => Promise<T>): Promise<T | null> => {
    try {
      return await run();
    } catch (error) {
      missing.push(`${what}: ${reasonOf(error)}`);
      return null;
    }
  };
  const [status, policy, summary, conflicts, audit] = await Promise.all([
    get('/v1/status').then((body) => ({ body }), (error: unknown) => ({ error })),
    part('policy', async () => {
      const body = await get('/v1/policy') as { enforced?: PolicyStamp | null; shadow?: PolicyStamp | null };
      return { enforced: stampOf(body.enforced), shadow: stampOf(body.shadow) };
    }),
    part('summary', async (): Promise<CachedSummary | null> => {
      if (known.summary !== undefined && performance.now() - known.summary.fetchedMs < clusterSummaryRefreshMs) return known.summary;
      try {
        return { fetchedMs: performance.now(), body: await get(inspectSummaryPath) };
      } catch (error) {
        // A node without the inspect route (an older version) simply shows no counts.
        if (error instanceof PeerAnswerError && error.status === 404) return null;
        throw error;
      }
    }),
    part('conflicts', async () => ((await get(`/v1/conflicts?limit=${clusterConflictsPerNodeMax}`)) as { conflicts: RawConflict[] }).conflicts),
    part('audit', async () => {
      // The log is listed from its start: ask from the end as of the last gather, with room for as many new
      // entries again; if the log has grown past that (or shrunk: a new data directory), ask for its end.
      const tail = async (after: number) => ({ after, ...((await get(`/v1/audit?after=${after}&limit=${2 * clusterAuditTailEntries}`)) as { length: number; entries: AuditView[] }) });
      let answer = await tail(Math.max(0, (known.auditLength ?? 0) - clusterAuditTailEntries));
      if (answer.after + answer.entries.length !== answer.length) answer = await tail(Math.max(0, answer.length - clusterAuditTailEntries));
      const entries = answer.entries.slice(-clusterAuditTailEntries);
      return { length: answer.length, entries: entries.map(({ seq, atMs, kind, node, region, details }) => ({ seq, atMs, kind, node, region, details })) };
    }),
  ]);
  const base = { node: member.node, region: member.region, url: member.url, self, gatherMs: elapsedMs(startedMs) };
  if ('error' in status) {
    const view: MemberView = { ...base, reachable: false, error: reasonOf(status.error), status: null, policy: null, summary: null, summaryAgeMs: null, auditLength: null };
    return { view, summary: null, conflicts: [], audit: [] };
  }
  const view: MemberView = {
    ...base, reachable: true, error: missing.length === 0 ? null : missing.join('; '), status: status.body, policy,
    summary: summary?.body ?? null, summaryAgeMs: summary === null ? null : Math.round(performance.now() - summary.fetchedMs), auditLength: audit?.length ?? null,
  };
  return { view, summary, conflicts: conflicts ?? [], audit: audit?.entries ?? [] };
}

function stampOf(value: PolicyStamp | null | undefined): PolicyStamp | null {
  return value === null || value === undefined ? null : { version: value.version, hash: value.hash };
}

/** Conflicts of every node, one per (document, id), newest first, with the nodes that recorded each. */
function mergeConflicts(gathered: readonly Gathered[]): ConflictView[] {
  const byId = new Map<string, { conflict: RawConflict; seenOn: string[] }>();
  for (const one of gathered) {
    for (const conflict of one.conflicts) {
      const id = `${conflict.dataset}\u0000${conflict.key}\u0000${conflict.id}`;
      const seen = byId.get(id);
      if (seen === undefined) byId.set(id, { conflict, seenOn: [one.view.node] });
      else seen.seenOn.push(one.view.node);
    }
  }
  return [...byId.values()]
    .sort((a, b) => b.conflict.recordedAt.ms - a.conflict.recordedAt.ms || b.conflict.recordedAt.c - a.conflict.recordedAt.c)
    .slice(0, clusterConflictsMax)
    .map(({ conflict, seenOn }) => ({
      id: conflict.id, dataset: conflict.dataset, key: conflict.key, path: conflict.path, kind: conflict.kind, origin: conflict.origin,
      recordedAt: conflict.recordedAt, winner: preview(conflict.winner.value), loser: preview(conflict.loser.value), seenOn,
    }));
}

/** A value as JSON, cut to `conflictValuePreviewCharsMax` characters. */
function preview(value: unknown): string {
  const text = JSON.stringify(value) ?? 'undefined';
  return text.length <= conflictValuePreviewCharsMax ? text : `${text.slice(0, conflictValuePreviewCharsMax - 1)}…`;
}

/** A node answered, but not with 200. */
class PeerAnswerError extends Error {
  constructor(readonly status: number, readonly code: string | null) {
    super(`HTTP ${status}${code === null ? '' : ` ${code}`}`);
  }
}

/** GETs `path` of the node at `base` as JSON, reading at most `clusterResponseBytesMax` bytes. */
async function getJson(base: string, path: string, signal: AbortSignal): Promise<unknown> {
  const response = await fetch(new URL(path, base), { signal, headers: { accept: 'application/json' }, redirect: 'error' });
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > clusterResponseBytesMax) {
    await response.body?.cancel();
    throw new Error(`answer of ${declared} bytes is over the limit of ${clusterResponseBytesMax} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for await (const chunk of response.body ?? []) {
    bytes += chunk.byteLength;
    if (bytes > clusterResponseBytesMax) throw new Error(`answer is over the limit of ${clusterResponseBytesMax} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!response.ok) {
    let code: string | null = null;
    try {
      const problem = JSON.parse(text) as { code?: unknown };
      if (typeof problem.code === 'string' && /^ERR_[A-Z_]{1,60}$/.test(problem.code)) code = problem.code;
    } catch {
      // Not a problem document (a proxy or another server answered): the status says enough.
    }
    throw new PeerAnswerError(response.status, code);
  }
  return JSON.parse(text);
}

/** A short reason for a failed request, without anything the peer said beyond its status and code. */
function reasonOf(error: unknown): string {
  if (error instanceof PeerAnswerError) return error.message;
  if (error instanceof Error) {
    if (error.name === 'TimeoutError' || error.name === 'AbortError') return `no answer within ${clusterMemberDeadlineMs} ms`;
    const code = (error.cause as { code?: unknown } | undefined)?.code;
    if (typeof code === 'string') return `connection failed (${code})`;
    if (error instanceof SyntaxError) return 'answer is not JSON';
    return error.message.slice(0, 200);
  }
  return String(error).slice(0, 200);
}

function elapsedMs(startedMs: number): number {
  return Math.round(performance.now() - startedMs);
}

/** `run` over `items`, at most `concurrency` at once, results in the order of `items`. */
async function mapBounded<T, R>(items: readonly T[], concurrency: number, run: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await run(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

/** The view for `GET /v1/cluster`; a handler created without one (embedded, tests) answers `ERR_NOT_FOUND`. */
export function clusterSnapshot(view: ClusterView | undefined): Promise<ClusterSnapshot> {
  if (view === undefined) throw new TesseraError('ERR_NOT_FOUND', 'this node has no cluster view: createHttpHandler was given no cluster (the daemon gives one)');
  return view.snapshot();
}
