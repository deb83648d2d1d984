/**
 * Prometheus metrics of one node (`prom-client`), served at `/metrics` by the daemon and usable by embedded
 * users: `createMetrics({ replica, replication })` returns a registry to expose however they like.
 *
 * Naming follows Prometheus: a cumulative count is a Counter whose name ends in `_total` (mirrored from the
 * link's own counters at each scrape), a level is a Gauge; the default process metrics (`process_*`,
 * `nodejs_*`: CPU, memory, event-loop lag, handles, GC) are collected too.
 *
 * Labels name nodes, regions, lanes, datasets, conflict kinds, operations and routes — never a document's key,
 * value or tag (a test scrapes the output for them). Datasets are bounded by the policy (and by the links'
 * traffic counters, which fold datasets past a bound into `(other)`).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { type Replica, inspectSummary } from '@tessera/store';
import { type SyncNode } from '@tessera/sync';

/** Buckets of latency histograms, in seconds (0.1 ms to 10 s). */
export const latencyBucketsSeconds = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Buckets of commit-to-visible replication lag, in seconds (1 ms to 5 min). */
export const lagBucketsSeconds = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** How often the per-dataset document counts are recounted at most (a scan of the store). */
export const documentCountsRefreshMs = 30_000;

/**
 * Per-dataset counts of live and quarantined documents from a summary scan of the replica (bounded by the
 * summary's scan limit), recounted at most every `refreshMs`; concurrent callers share one scan.
 */
export function documentCounts(
  replica: Replica,
  refreshMs = documentCountsRefreshMs,
  clock: () => number = Date.now,
): () => Promise<ReadonlyArray<{ dataset: string; documents: number; quarantined: number }>> {
  let last: { atMs: number; rows: Array<{ dataset: string; documents: number; quarantined: number }> } | null = null;
  let running: Promise<Array<{ dataset: string; documents: number; quarantined: number }>> | null = null;
  return async () => {
    if (last !== null && clock() - last.atMs < refreshMs) return last.rows;
    running ??= inspectSummary(replica.records())
      .then((summary) => {
        const rows = summary.datasets.map((d) => ({ dataset: d.dataset, documents: d.live, quarantined: d.quarantined }));
        last = { atMs: clock(), rows };
        return rows;
      })
      .finally(() => {
        running = null;
      });
    return running;
  };
}

/** What the metrics read. */
export interface MetricsSources {
  readonly replica: Replica;
  readonly replication?: SyncNode;
  /** Wall clock (ms), for commit-to-visible lag; default Date.now. */
  readonly wallClock?: () => number;
  /** Per dataset, documents held here and how many are quarantined (a bounded scan; refreshed by the caller's schedule). */
  readonly documents?: () => Promise<ReadonlyArray<{ dataset: string; documents: number; quarantined: number }>>;
}

/** A node's metrics. */
export interface NodeMetrics {
  readonly registry: Registry;
  /** Records one HTTP request (the daemon's request log calls it). */
  observeRequest(route: string, method: string, status: number, durationMs: number): void;
  /** Stops observing the replica and replication. */
  close(): void;
}

/** Creates the metrics of a node over its replica and, when it replicates, its links. */
export function createMetrics(sources: MetricsSources): NodeMetrics {
  const { replica, replication } = sources;
  const wallClock = sources.wallClock ?? Date.now;
  const registry = new Registry();
  registry.setDefaultLabels({ node: replica.node, region: replica.region });
  collectDefaultMetrics({ register: registry });

  const operationSeconds = new Histogram({
    name: 'tessera_operation_duration_seconds',
    help: 'Read and write latency of the replica (writes include the durable commit).',
    labelNames: ['op', 'dataset'] as const,
    buckets: latencyBucketsSeconds,
    registers: [registry],
  });
  const conflicts = new Counter({
    name: 'tessera_conflicts_total',
    help: 'Conflict records written (an automatic resolution hid a value), by dataset and kind.',
    labelNames: ['dataset', 'kind'] as const,
    registers: [registry],
  });
  replica.observe({
    read: (dataset, ms) => operationSeconds.observe({ op: 'read', dataset }, ms / 1000),
    write: (dataset, ms) => operationSeconds.observe({ op: 'write', dataset }, ms / 1000),
    conflict: (dataset, kind) => conflicts.inc({ dataset, kind }),
  });

  const httpSeconds = new Histogram({
    name: 'tessera_http_request_duration_seconds',
    help: 'HTTP API requests by route pattern, method and status.',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: latencyBucketsSeconds,
    registers: [registry],
  });

  new Gauge({
    name: 'tessera_log_head_seq',
    help: 'The last sequence number of the delta log.',
    registers: [registry],
    collect() {
      this.set(replica.lastSeq);
    },
  });
  new Gauge({
    name: 'tessera_log_entries',
    help: 'Entries the delta log holds (head minus truncation floor).',
    registers: [registry],
    collect() {
      this.set(replica.logLength);
    },
  });
  new Gauge({
    name: 'tessera_policy_version',
    help: 'The enforced policy version (0: none), and the shadow one.',
    labelNames: ['mode'] as const,
    registers: [registry],
    collect() {
      this.set({ mode: 'enforce' }, replica.policy?.version ?? 0);
      this.set({ mode: 'shadow' }, replica.shadowPolicy?.version ?? 0);
    },
  });
  new Gauge({
    name: 'tessera_audit_entries',
    help: "Entries in this region's audit log.",
    registers: [registry],
    collect() {
      this.set(replica.auditLength);
    },
  });

  if (sources.documents !== undefined) {
    const documents = sources.documents;
    const countGauge = (name: string, help: string, field: 'documents' | 'quarantined') =>
      new Gauge({
        name,
        help,
        labelNames: ['dataset'] as const,
        registers: [registry],
        async collect() {
          this.reset();
          for (const row of await documents()) this.set({ dataset: row.dataset }, row[field]);
        },
      });
    countGauge('tessera_documents', 'Live documents held here, by dataset.', 'documents');
    countGauge('tessera_quarantined_documents', 'Documents held here that the quarantine tag keeps in this region, by dataset.', 'quarantined');
  }

  let unsubscribe: () => void = () => undefined;
  if (replication !== undefined) {
    const linkGauge = (name: string, help: string, read: (link: ReturnType<SyncNode['status']>['links'][number]) => number | null) =>
      new Gauge({
        name,
        help,
        labelNames: ['peer', 'peer_region'] as const,
        registers: [registry],
        collect() {
          this.reset();
          for (const link of replication.status().links) {
            const value = read(link);
            if (value !== null) this.set({ peer: link.peer, peer_region: link.region }, value);
          }
        },
      });
    linkGauge('tessera_link_up', 'Whether the link to the peer is open (1) or not (0).', (link) => (link.state === 'open' ? 1 : 0));
    linkGauge('tessera_replication_lag_seconds', 'Age of the oldest entry sent to the peer and not yet acknowledged.', (link) => link.lagMs / 1000);
    linkGauge('tessera_replication_backlog_entries', "Log entries after the peer's cursor (not yet acknowledged).", (link) => link.backlogEntries);
    linkGauge('tessera_link_inflight_batches', 'Batches sent and not yet acknowledged.', (link) => link.inflightBatches);
    linkGauge('tessera_link_window_batches', "The adaptive cadence's window of unacknowledged batches.", (link) => link.windowBatches);
    linkGauge('tessera_link_rtt_seconds', 'The last round-trip time of a batch.', (link) => (link.rttMs === null ? null : link.rttMs / 1000));
    /** A cumulative count of each link, read from the link at each scrape (it never goes down while the process lives). */
    const linkCounter = (name: string, help: string, read: (link: ReturnType<SyncNode['status']>['links'][number]) => number) =>
      new Counter({
        name,
        help,
        labelNames: ['peer', 'peer_region'] as const,
        registers: [registry],
        collect() {
          this.reset();
          for (const link of replication.status().links) this.inc({ peer: link.peer, peer_region: link.region }, read(link));
        },
      });
    linkCounter('tessera_link_reconnects_total', 'Reconnects of the link since start.', (link) => link.reconnects);
    linkGauge('tessera_link_catching_up', 'Whether the peer is being caught up from document states (1) or not (0).', (link) => (link.catchingUp ? 1 : 0));
    linkCounter('tessera_link_sent_wire_bytes_total', 'Bytes of frames sent to the peer since start.', (link) => link.sent.wireBytes);
    linkCounter('tessera_link_received_wire_bytes_total', 'Bytes of frames received from the peer since start.', (link) => link.received.wireBytes);
    linkCounter('tessera_policy_denied_entries_total', 'Entries the policy kept from the peer (not sent).', (link) => link.policy.deniedEntries);
    linkCounter('tessera_policy_rejected_by_peer_entries_total', "Entries the peer's policy refused.", (link) => link.policy.rejectedByPeer);
    linkCounter('tessera_policy_rejected_entries_total', "Entries from the peer this node's policy refused (violations).", (link) => link.policy.rejectedHere);
    linkCounter(
      'tessera_policy_shadow_denied_entries_total',
      'Entries sent that the shadow policy would have kept from the peer.',
      (link) => link.policy.shadowDenied,
    );
    new Gauge({
      name: 'tessera_lane_lag_seconds',
      help: 'Per lane of a link: age of the oldest unacknowledged entry.',
      labelNames: ['peer', 'lane'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const link of replication.status().links) for (const lane of link.lanes) this.set({ peer: link.peer, lane: lane.id }, lane.lagMs / 1000);
      },
    });
    new Gauge({
      name: 'tessera_link_cadence_fixed_seconds',
      help: "A lane's fixed flush interval (absent: adaptive).",
      labelNames: ['peer'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const link of replication.status().links) {
          const match = /^fixed (\d+) ms$/.exec(link.cadence);
          if (match !== null) this.set({ peer: link.peer }, Number(match[1]) / 1000);
        }
      },
    });
    new Gauge({
      name: 'tessera_clock_skew_seconds',
      help: "The peer's wall clock minus this node's, estimated from pings.",
      labelNames: ['peer'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const link of replication.traffic()) if (link.clockSkewMs !== null) this.set({ peer: link.peer }, link.clockSkewMs / 1000);
      },
    });
    const trafficCounter = (name: string, help: string, direction: 'sent' | 'received', field: 'entries' | 'bytes') =>
      new Counter({
        name,
        help,
        labelNames: ['peer', 'dataset'] as const,
        registers: [registry],
        collect() {
          this.reset();
          for (const link of replication.traffic()) for (const [dataset, counts] of link[direction]) this.inc({ peer: link.peer, dataset }, counts[field]);
        },
      });
    trafficCounter('tessera_replication_sent_entries_total', 'Entries sent to the peer since start, by dataset.', 'sent', 'entries');
    trafficCounter(
      'tessera_replication_sent_bytes_total',
      'Delta bytes sent to the peer since start, by dataset (cross-region traffic cost).',
      'sent',
      'bytes',
    );
    trafficCounter('tessera_replication_received_entries_total', 'Entries received from the peer since start, by dataset.', 'received', 'entries');
    trafficCounter('tessera_replication_received_bytes_total', 'Delta bytes received from the peer since start, by dataset.', 'received', 'bytes');
    const visibleSeconds = new Histogram({
      name: 'tessera_replication_visible_lag_seconds',
      help: 'Commit-to-visible lag of applied entries: from the write at its origin to durable here.',
      labelNames: ['peer_region', 'dataset'] as const,
      buckets: lagBucketsSeconds,
      registers: [registry],
    });
    unsubscribe = replication.onApplied((event) => {
      const nowMs = wallClock();
      for (const entry of event.entries) visibleSeconds.observe({ peer_region: event.region, dataset: entry.dataset }, Math.max(0, nowMs - entry.hlcMs) / 1000);
    });
  }

  return {
    registry,
    observeRequest: (route, method, status, durationMs) => httpSeconds.observe({ route, method, status: String(status) }, durationMs / 1000),
    close: () => {
      replica.observe(null);
      unsubscribe();
    },
  };
}
