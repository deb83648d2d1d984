/**
 * The cluster view from any node (`GET /v1/cluster`, which the dashboard polls). This node asks every node of
 * the cluster config — itself included, through the same HTTP API, so every node is seen the same way — for
 * its part (`GET /v1/cluster/member`): status, policy stamps, per-dataset counts, recent conflicts and its audit
 * tail. Peers are asked at their advertised address, with the caller's own credential (each node checks the
 * operator role itself) and, with TLS, the cluster CA; one deadline per node, a bounded number at once; a node
 * that does not answer in time is marked unreachable.
 *
 * Residency (issue 12 item 6): a member's part carries counts, ids and key digests only — never a key, a value
 * or a conflict's winning or losing value — so no node's view holds anything of a document its region may not
 * hold, whichever node gathers it.
 *
 * Gathers are shared: requests that arrive while one runs get its result, and a result is reused for
 * `clusterSnapshotReuseMs`, so any number of open dashboards costs the peers one gather per interval.
 */
import { performance } from 'node:perf_hooks';
import { MiB, TesseraError, assert } from '@tessera/core';
import { type Replica, inspectSummary, policyHash } from '@tessera/store';
import { type ClusterConfig, type HostPort, findNode, formatHostPort } from './config.js';

/** One deadline for the request to one node in a gather. */
export const clusterMemberDeadlineMs = 2_000;
/** Nodes asked at once. A gather takes at most ⌈nodes / this⌉ × `clusterMemberDeadlineMs`. */
export const clusterFetchConcurrencyMax = 8;
/** A finished gather is reused this long (per credential: each caller's view is gathered with its own token). */
export const clusterSnapshotReuseMs = 500;
/** Largest answer read from a node; past it that node's part is missing. */
export const clusterResponseBytesMax = 4 * MiB;
/** Conflicts each node lists (its list is ordered by document, not time: this bounds the work, not recency). */
export const clusterConflictsPerNodeMax = 50;
/** Conflicts in the view: the newest, deduplicated over nodes. */
export const clusterConflictsMax = 25;
/** Audit entries each node gives: the end of its log. */
export const clusterAuditTailEntries = 20;
/** Audit entries in the view: the newest over all nodes. */
export const clusterAuditMax = 40;
/** A node recounts its per-dataset documents at most this often (a scan of its store); between times it gives the last counts with their age. */
export const clusterSummaryRefreshMs = 5_000;
/** The route of a node's part of the view. */
export const clusterMemberPath = '/v1/cluster/member';

assert(clusterConflictsMax <= clusterConflictsPerNodeMax, 'the view keeps at most what it asks each node for');

/** A node the view asks. */
export interface ClusterMember {
  readonly node: string;
  readonly region: string;
  /** The base URL of its HTTP API. */
  readonly url: string;
}

/** A policy version as a node reports it. */
export interface PolicyStamp {
  readonly version: number;
  readonly hash: string;
}

/** A conflict as the view shows it: ids and a key digest, never the key or a value. */
export interface ConflictView {
  readonly id: string;
  readonly dataset: string;
  /** The key's digest on the node that reported it first (keyed by that node's salt). */
  readonly keyDigest: string;
  /** How deep in the document the conflict is (the field names are data too). */
  readonly pathDepth: number;
  readonly kind: string;
  readonly origin: string;
  readonly recordedAt: { readonly ms: number; readonly c: number };
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

/** One node's part of the view (`GET /v1/cluster/member`). */
export interface MemberPart {
  readonly status: { readonly node: string; readonly region: string; readonly lastSeq: number; readonly uptimeMs: number; readonly links: readonly unknown[] };
  readonly policy: { readonly enforced: PolicyStamp | null; readonly shadow: PolicyStamp | null };
  /** Per-dataset counts (documents, tombstones, quarantined, bytes), and how old they are. */
  readonly summary: unknown;
  readonly summaryAgeMs: number;
  readonly conflicts: readonly Omit<ConflictView, 'seenOn'>[];
  readonly audit: { readonly length: number; readonly entries: readonly AuditView[] };
}

/** One node as this node sees it. */
export interface MemberView extends ClusterMember {
  readonly self: boolean;
  readonly reachable: boolean;
  /** Why the node is unreachable, or null. */
  readonly error: string | null;
  /** How long its gather took. */
  readonly gatherMs: number;
  readonly status: MemberPart['status'] | null;
  readonly policy: MemberPart['policy'] | null;
  readonly summary: unknown;
  readonly summaryAgeMs: number | null;
  readonly auditLength: number | null;
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

/** How the view reaches nodes: `fetch` (with the cluster CA when the API is HTTPS). */
export type ClusterFetch = (url: URL, init: { signal: AbortSignal; headers: Record<string, string> }) => Promise<Response>;

/** The nodes of `config` as `nodeId` reaches them: itself at its listen address, peers at their advertised one. */
export function clusterMembersOf(config: ClusterConfig, nodeId: string): ClusterMember[] {
  findNode(config, nodeId);
  return config.nodes.map((node) => ({
    node: node.id,
    region: node.region,
    url: `${node.tls === null ? 'http' : 'https'}://${formatHostPort(node.id === nodeId ? dialable(node.listen) : node.advertise)}`,
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
  private readonly running = new Map<string, Promise<ClusterSnapshot>>();
  private readonly last = new Map<string, { readonly doneMs: number; readonly snapshot: ClusterSnapshot }>();
  /** The audit log length each node had at the last gather, so the next asks only for its tail. */
  private readonly auditLengths = new Map<string, number>();

  constructor(
    private readonly viewer: { readonly node: string; readonly region: string },
    private readonly members: readonly ClusterMember[],
    private readonly fetchImpl: ClusterFetch = (url, init) => fetch(url, { ...init, redirect: 'error' }),
  ) {
    assert(
      members.some((member) => member.node === viewer.node),
      'the viewer is a member of its cluster',
    );
  }

  /** The current view gathered with `authorization` (the caller's own header): a recent one, the running one, or a new gather. */
  snapshot(authorization: string): Promise<ClusterSnapshot> {
    const last = this.last.get(authorization);
    if (last !== undefined && performance.now() - last.doneMs < clusterSnapshotReuseMs) return Promise.resolve(last.snapshot);
    let running = this.running.get(authorization);
    if (running === undefined) {
      running = this.gather(authorization)
        .then((snapshot) => {
          // One remembered view per credential; old ones are dropped rather than kept forever.
          this.last.clear();
          this.last.set(authorization, { doneMs: performance.now(), snapshot });
          return snapshot;
        })
        .finally(() => this.running.delete(authorization));
      this.running.set(authorization, running);
    }
    return running;
  }

  private async gather(authorization: string): Promise<ClusterSnapshot> {
    const atMs = Date.now();
    const gathered = await mapBounded(this.members, clusterFetchConcurrencyMax, async (member) => {
      const startedMs = performance.now();
      const base = { node: member.node, region: member.region, url: member.url, self: member.node === this.viewer.node };
      try {
        const after = Math.max(0, (this.auditLengths.get(member.node) ?? 0) - clusterAuditTailEntries);
        const part = (await getJson(this.fetchImpl, member.url, `${clusterMemberPath}?auditAfter=${after}`, authorization)) as MemberPart;
        this.auditLengths.set(member.node, part.audit.length);
        const view: MemberView = {
          ...base,
          reachable: true,
          error: null,
          gatherMs: elapsedMs(startedMs),
          status: part.status,
          policy: part.policy,
          summary: part.summary,
          summaryAgeMs: part.summaryAgeMs,
          auditLength: part.audit.length,
        };
        return { view, part };
      } catch (error) {
        const view: MemberView = {
          ...base,
          reachable: false,
          error: reasonOf(error),
          gatherMs: elapsedMs(startedMs),
          status: null,
          policy: null,
          summary: null,
          summaryAgeMs: null,
          auditLength: null,
        };
        return { view, part: null };
      }
    });
    return {
      viewer: this.viewer,
      atMs,
      members: gathered.map((one) => one.view),
      conflicts: mergeConflicts(gathered),
      audit: gathered
        .flatMap((one) => one.part?.audit.entries ?? [])
        .sort((a, b) => b.atMs - a.atMs || (a.node < b.node ? -1 : a.node > b.node ? 1 : b.seq - a.seq))
        .slice(0, clusterAuditMax),
    };
  }
}

/** Per replica, the last per-dataset counts and when they were taken (a scan of the store is not free). */
const summaries = new WeakMap<Replica, { readonly atMs: number; readonly body: Promise<unknown> }>();

/**
 * This node's part of the cluster view: its status, policy stamps, counts, newest conflicts (ids and key
 * digests), and its audit entries after `auditAfter` (at most `clusterAuditTailEntries`, the newest).
 */
export async function memberPart(
  replica: Replica,
  node: { readonly id: string; readonly region: string },
  links: readonly unknown[],
  auditAfter: number,
  startedMs: number,
): Promise<MemberPart> {
  let summary = summaries.get(replica);
  if (summary === undefined || performance.now() - summary.atMs >= clusterSummaryRefreshMs) {
    summary = { atMs: performance.now(), body: inspectSummary(replica.records()) };
    summary.body.catch(() => summaries.delete(replica));
    summaries.set(replica, summary);
  }
  const stamp = (policy: typeof replica.policy) => (policy === null ? null : { version: policy.version, hash: policyHash(policy) });
  const conflicts = await replica.conflicts({ limit: clusterConflictsPerNodeMax });
  // The log is listed from its start: ask from the given point with room for twice the tail, keep the tail.
  let entries = await replica.audit({ after: auditAfter, limit: 2 * clusterAuditTailEntries });
  if (auditAfter + entries.length < replica.auditLength)
    entries = await replica.audit({ after: Math.max(0, replica.auditLength - clusterAuditTailEntries), limit: clusterAuditTailEntries });
  return {
    status: { node: node.id, region: node.region, lastSeq: replica.lastSeq, uptimeMs: Math.round(performance.now() - startedMs), links },
    policy: { enforced: stamp(replica.policy), shadow: stamp(replica.shadowPolicy) },
    summary: await summary.body,
    summaryAgeMs: Math.round(performance.now() - summary.atMs),
    conflicts: conflicts.map((c) => ({
      id: c.id,
      dataset: c.dataset,
      keyDigest: replica.keyDigest(c.dataset, c.key),
      pathDepth: c.path.length,
      kind: c.kind,
      origin: c.origin,
      recordedAt: c.recordedAt,
    })),
    audit: {
      length: replica.auditLength,
      entries: entries.slice(-clusterAuditTailEntries).map(({ seq, atMs, kind, node: n, region, details }) => ({ seq, atMs, kind, node: n, region, details })),
    },
  };
}

/** Conflicts of every node, one per (dataset, id), newest first, with the nodes that recorded each. */
function mergeConflicts(gathered: ReadonlyArray<{ view: MemberView; part: MemberPart | null }>): ConflictView[] {
  const byId = new Map<string, ConflictView & { seenOn: string[] }>();
  for (const one of gathered) {
    for (const conflict of one.part?.conflicts ?? []) {
      const id = `${conflict.dataset}\u0000${conflict.id}`;
      const seen = byId.get(id);
      if (seen === undefined) byId.set(id, { ...conflict, seenOn: [one.view.node] });
      else seen.seenOn.push(one.view.node);
    }
  }
  return [...byId.values()].sort((a, b) => b.recordedAt.ms - a.recordedAt.ms || b.recordedAt.c - a.recordedAt.c).slice(0, clusterConflictsMax);
}

/** A node answered, but not with 200. */
class PeerAnswerError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | null,
  ) {
    super(`HTTP ${status}${code === null ? '' : ` ${code}`}`);
  }
}

/** GETs `path` of the node at `base` as JSON, reading at most `clusterResponseBytesMax` bytes. */
async function getJson(fetchImpl: ClusterFetch, base: string, path: string, authorization: string): Promise<unknown> {
  const response = await fetchImpl(new URL(path, base), {
    signal: AbortSignal.timeout(clusterMemberDeadlineMs),
    headers: { accept: 'application/json', authorization },
  });
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
export function clusterSnapshot(view: ClusterView | undefined, authorization: string | undefined): Promise<ClusterSnapshot> {
  if (view === undefined)
    throw new TesseraError('ERR_NOT_FOUND', 'this node has no cluster view: createHttpHandler was given no cluster (the daemon gives one)');
  return view.snapshot(authorization ?? '');
}
