/** A node's replication as status pages, metrics and `tessera status` show it: per link, from the driver. */
import { type PolicyStamp } from './protocol.js';
import { type LinkRun } from './link-run.js';
import { type LinkState } from './link/types.js';

/** One peer link's status. */
export interface LinkStatus {
  readonly peer: string;
  readonly region: string;
  readonly state: LinkState;
  readonly role: 'dial' | 'accept';
  readonly lastError: string | null;
  readonly openSinceMs: number | null;
  readonly reconnects: number;
  readonly cursor: number;
  readonly head: number;
  readonly backlogEntries: number;
  /** A state catch-up is running (the peer was behind the retained log). */
  readonly catchingUp: boolean;
  readonly catchUps: number;
  /** Third-origin entries sent to this peer because its own link to their origin was down. */
  readonly forwardedEntries: number;
  readonly inflightBatches: number;
  readonly windowBatches: number;
  readonly rttMs: number | null;
  /** Age of the oldest entry sent but not yet acknowledged (≈ replication lag to this peer). */
  readonly lagMs: number;
  /** Entries and wire bytes per second over the last sample interval. */
  readonly rates: {
    readonly sentEntriesPerSecond: number;
    readonly sentBytesPerSecond: number;
    readonly receivedEntriesPerSecond: number;
    readonly receivedBytesPerSecond: number;
  };
  /** `adaptive`, `fixed N ms`, or `per lane`. */
  readonly cadence: string;
  /** Per lane: its cursor, backlog, batches in flight, lag and entries sent. */
  readonly lanes: ReadonlyArray<{
    readonly id: string;
    readonly priority: number;
    readonly cursor: number;
    readonly backlogEntries: number;
    readonly inflightBatches: number;
    readonly lagMs: number;
    readonly sentEntries: number;
  }>;
  readonly sent: { readonly batches: number; readonly entries: number; readonly deltaBytes: number; readonly wireBytes: number };
  readonly received: { readonly batches: number; readonly entries: number; readonly applied: number; readonly wireBytes: number };
  readonly peerPolicy: PolicyStamp | null;
  /** What the policy did on this link: entries kept from the peer, refused by the peer, refused here, shadow-denied. */
  readonly policy: { readonly deniedEntries: number; readonly rejectedByPeer: number; readonly rejectedHere: number; readonly shadowDenied: number };
}

/** The status of one link at `nowMs`; `lastSeq` is the replica's log head. */
export function linkStatus(link: LinkRun, nowMs: number, lastSeq: number, fixedCadenceMs: number | undefined): LinkStatus {
  const machine = link.machine;
  const views = [...machine.lanes.values()].map((sender) => ({ sender, view: sender.snapshot(nowMs) }));
  const cursor = Math.min(...views.map(({ view }) => view.cursor));
  const stat = (pick: (s: LinkStatus['lanes'][number] & { batches: number; bytes: number; catchUps: number; forwarded: number }) => number) =>
    views.reduce(
      (sum, { sender, view }) =>
        sum +
        pick({
          id: sender.lane.id,
          priority: sender.lane.priority,
          cursor: view.cursor,
          backlogEntries: 0,
          inflightBatches: view.inflightBatches,
          lagMs: 0,
          sentEntries: sender.stats.entries,
          batches: sender.stats.batches,
          bytes: sender.stats.bytes,
          catchUps: sender.stats.catchUps,
          forwarded: sender.stats.forwardedEntries,
        }),
      0,
    );
  const rtts = views.map(({ view }) => view.rttMs).filter((rtt): rtt is number => rtt !== null);
  return {
    peer: machine.config.peer.node,
    region: machine.config.peer.region,
    state: machine.state,
    role: machine.config.role,
    lastError: machine.lastError,
    openSinceMs: machine.openSinceMs,
    reconnects: machine.counters.reconnects,
    cursor,
    head: Math.max(...views.map(({ view }) => view.head), lastSeq),
    backlogEntries: Math.max(0, lastSeq - cursor),
    catchingUp: views.some(({ sender }) => sender.catchingUp),
    catchUps: stat((s) => s.catchUps),
    forwardedEntries: stat((s) => s.forwarded),
    inflightBatches: stat((s) => s.inflightBatches),
    windowBatches: views.reduce((sum, { view }) => sum + view.windowBatches, 0),
    rttMs: rtts.length === 0 ? null : Math.max(...rtts),
    lagMs: Math.max(0, ...views.map(({ view }) => view.oldestUnackedAgeMs ?? 0)),
    rates: { ...link.rates },
    cadence: views.length === 1 ? (fixedCadenceMs === undefined ? 'adaptive' : `fixed ${fixedCadenceMs} ms`) : 'per lane',
    lanes: views.map(({ sender, view }) => ({
      id: sender.lane.id,
      priority: sender.lane.priority,
      cursor: view.cursor,
      backlogEntries: Math.max(0, lastSeq - view.cursor),
      inflightBatches: view.inflightBatches,
      lagMs: view.oldestUnackedAgeMs ?? 0,
      sentEntries: sender.stats.entries,
    })),
    sent: { batches: stat((s) => s.batches), entries: stat((s) => s.sentEntries), deltaBytes: stat((s) => s.bytes), wireBytes: link.wireBytesSent },
    received: { ...machine.counters.received },
    peerPolicy: machine.peerPolicy,
    policy: {
      deniedEntries: link.policyCounts.deniedEntries,
      rejectedByPeer: machine.counters.policy.rejectedByPeer,
      rejectedHere: machine.counters.policy.rejectedHere,
      shadowDenied: link.policyCounts.shadowDenied,
    },
  };
}

/** Samples a link's traffic rates (called once per sample interval). */
export function sampleRates(link: LinkRun, nowMs: number): void {
  const sentEntries = [...link.machine.lanes.values()].reduce((sum, sender) => sum + sender.stats.entries, 0);
  const received = link.machine.counters.received;
  const sample = { atMs: nowMs, sentEntries, sentBytes: link.wireBytesSent, receivedEntries: received.entries, receivedBytes: received.wireBytes };
  const last = link.rateSample;
  if (last !== null && nowMs > last.atMs) {
    const perSecond = (now: number, then: number) => Math.round(((now - then) * 1000) / (nowMs - last.atMs));
    link.rates = {
      sentEntriesPerSecond: perSecond(sample.sentEntries, last.sentEntries),
      sentBytesPerSecond: perSecond(sample.sentBytes, last.sentBytes),
      receivedEntriesPerSecond: perSecond(sample.receivedEntries, last.receivedEntries),
      receivedBytesPerSecond: perSecond(sample.receivedBytes, last.receivedBytes),
    };
  }
  link.rateSample = sample;
}
