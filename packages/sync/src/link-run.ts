/**
 * What the driver keeps per link beside its machine: the durable-cursor writers (coalescing), traffic and
 * policy counters, rate samples, the denied sends since the last audit entry, and the wake-ups armed.
 */
import { type SyncHost } from './host.js';
import { type LinkMachine } from './link/machine.js';

/** Datasets counted separately in a link's traffic (the rest as `(other)`), so metric labels stay bounded. */
export const trafficDatasetsMax = 256;
/** Wake-ups armed per link at once; past it only earlier ones are armed. */
export const wakesArmedMax = 64;

/** Entries and bytes, per dataset. */
export type TrafficCounters = Map<string, { entries: number; bytes: number }>;

/** A link's driver-side state. */
export class LinkRun {
  readonly traffic = { sent: new Map() as TrafficCounters, received: new Map() as TrafficCounters };
  wireBytesSent = 0;
  /** Traffic rates over the last sample interval. */
  rates = { sentEntriesPerSecond: 0, sentBytesPerSecond: 0, receivedEntriesPerSecond: 0, receivedBytesPerSecond: 0 };
  rateSample: { atMs: number; sentEntries: number; sentBytes: number; receivedEntries: number; receivedBytes: number } | null = null;
  /** Entries kept from the peer, and entries the shadow policy would keep. */
  readonly policyCounts = { deniedEntries: 0, shadowDenied: 0 };
  /** Denied sends per dataset since the last audit entry. */
  readonly deniedSinceAudit = new Map<string, number>();
  /** Seqs the peer refused, to record before the cursor that acknowledges them is written. */
  readonly refusedPending: number[] = [];
  /** This node's log head when it last offered the peer a newer policy (null: not on this run). */
  policyOfferedAtSeq: number | null = null;
  /** The peer refused entries sent before that offer: offer again once the refusals are recorded. */
  reofferPending = false;
  private readonly wakes = new Set<number>();
  private readonly cursors = new Map<string, { wanted: number; written: number; writing: Promise<void> | null }>();

  constructor(readonly machine: LinkMachine) {}

  /** Counts one entry sent or received. */
  count(direction: 'sent' | 'received', dataset: string, bytes: number): void {
    const counters = this.traffic[direction];
    let counter = counters.get(dataset);
    if (counter === undefined) {
      const name = counters.size < trafficDatasetsMax ? dataset : '(other)';
      counter = counters.get(name) ?? { entries: 0, bytes: 0 };
      counters.set(name, counter);
    }
    counter.entries++;
    counter.bytes += bytes;
  }

  /** Counts an entry the policy kept from the peer. */
  denied(dataset: string): void {
    this.policyCounts.deniedEntries++;
    this.deniedSinceAudit.set(dataset, (this.deniedSinceAudit.get(dataset) ?? 0) + 1);
  }

  /** True when a timer must be armed for `atMs` (none armed for that time yet). */
  armWake(atMs: number): boolean {
    if (this.wakes.has(atMs) || this.wakes.size >= wakesArmedMax) return false;
    this.wakes.add(atMs);
    return true;
  }

  /** The timer for `atMs` fired. */
  firedWake(atMs: number): void {
    this.wakes.delete(atMs);
  }

  /**
   * Writes a lane's cursor durably, coalescing: at most one write in flight per lane, always of the latest
   * value. A cursor that lags on disk only means a few duplicates are resent after a crash (skipped there).
   */
  persistCursor(host: SyncHost, peer: string, lane: string, cursor: number): void {
    let state = this.cursors.get(lane);
    if (state === undefined) this.cursors.set(lane, (state = { wanted: 0, written: 0, writing: null }));
    state.wanted = Math.max(state.wanted, cursor);
    if (state.writing !== null) return;
    const writer = state;
    const writeLatest = (): void => {
      const target = writer.wanted;
      let finish!: () => void;
      writer.writing = new Promise<void>((resolve) => (finish = resolve));
      // Refusals first, in the same step: a copy handed over to a region that refused it is not handed over.
      const refused = this.refusedPending.splice(0, this.refusedPending.length);
      const reoffer = this.reofferPending;
      this.reofferPending = false;
      const region = this.machine.config.peer.region;
      host.io(
        `cursor-write-${peer}`,
        async () => {
          if (refused.length > 0) await host.replica.noteRefused(region, refused);
          // Refusals made under the version this node has since offered the peer: its state goes again, after
          // the policy frame on this connection, so the peer judges it by the new version (seed 40163).
          if (reoffer) await host.replica.reofferRefused(region);
          return host.replica.setCursor(peer, target, lane);
        },
        (outcome) => {
          const done = finish;
          writer.writing = null;
          if (outcome.ok) writer.written = target;
          else {
            this.refusedPending.unshift(...refused);
            this.reofferPending ||= reoffer;
            this.machine.lastError = 'cursor write failed';
          }
          if (outcome.ok && writer.written < writer.wanted) writeLatest();
          done();
        },
      );
    };
    writeLatest();
  }

  /** Resolves once every cursor write in flight finished. */
  async cursorsWritten(): Promise<void> {
    for (;;) {
      const writing = [...this.cursors.values()].map((state) => state.writing).filter((p): p is Promise<void> => p !== null);
      if (writing.length === 0) return;
      await Promise.all(writing);
    }
  }
}
