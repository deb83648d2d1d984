/** The inputs, effects and settings of a link's sending side (sender.ts). */
import { type LogEntry } from '@tessera/store';
import { type RateLimits } from './cadence.js';
import { type WireEntry } from './protocol.js';

/** Inputs of the sender. */
export type SenderInput =
  /** `floor`: the log is truncated up to it; `committed`: every entry up to it is in the log. */
  | { readonly kind: 'open'; readonly cursor: number; readonly head: number; readonly floor?: number; readonly committed?: number }
  /** A read failed because the log was truncated past the cursor (up to `floor`): switch to a state catch-up. */
  | { readonly kind: 'truncated'; readonly committed: number; readonly floor: number; readonly epoch?: number }
  /** `denied`: positions of documents the policy keeps from this peer (skipped). */
  | {
      readonly kind: 'scanned';
      readonly after: string | null;
      readonly entries: ReadonlyArray<LogEntry & { readonly position: string }>;
      readonly next: string | null;
      readonly denied?: ReadonlySet<string>;
      readonly heads?: ReadonlyMap<string, Uint8Array>;
      readonly epoch?: number;
    }
  | { readonly kind: 'appended'; readonly head: number }
  /**
   * A log read finished; `head` is the replica's last sequence number taken just before the read. `denied`:
   * sequence numbers of entries the policy keeps from this peer (skipped like entries it already has).
   */
  | {
      readonly kind: 'read';
      readonly after: number;
      readonly entries: readonly LogEntry[];
      readonly head: number;
      readonly denied?: ReadonlySet<number>;
      readonly heads?: ReadonlyMap<string, Uint8Array>;
      readonly epoch?: number;
      /**
       * When the read reached the end of the log: the committed sequence number before it began. The log holds
       * nothing else up to there (numbers a purge or a crash left unused), so the cursor may pass them.
       */
      readonly through?: number;
    }
  /**
   * The enforced policy changed: what was judged under the previous one and not sent yet is judged again
   * (reads and scans in flight are dropped when they answer, a batch waiting to go is read again).
   */
  | { readonly kind: 'policy' }
  | { readonly kind: 'ack'; readonly id: number; readonly last: number }
  /** What the peer reported: per origin what it holds, and which of its links are down. */
  | { readonly kind: 'peer-state'; readonly have: Readonly<Record<string, number>>; readonly down: readonly string[] }
  | { readonly kind: 'tick' }
  | { readonly kind: 'closed' };

/** Effects for the caller to carry out. */
export type SenderEffect =
  /** `epoch`: the policy epoch the read is judged in; the answer carries it back. */
  | { readonly kind: 'read'; readonly after: number; readonly limit: number; readonly epoch: number }
  | { readonly kind: 'scan'; readonly after: string | null; readonly limit: number; readonly epoch: number }
  | {
      readonly kind: 'send';
      readonly frame: 'batch' | 'state';
      readonly id: number;
      readonly last: number;
      readonly entries: readonly WireEntry[];
      readonly bytes: number;
    }
  | { readonly kind: 'persist-cursor'; readonly cursor: number }
  | { readonly kind: 'wake'; readonly atMs: number }
  | { readonly kind: 'protocol-error'; readonly reason: string };

/** A batch sent and not yet acknowledged. */
export interface InFlight {
  readonly id: number;
  readonly last: number;
  readonly sentAtMs: number;
  readonly bytes: number;
  readonly entries: number;
  readonly hlcMsMin: number | null;
}

/**
 * A fixed flush cadence instead of the adaptive one: batches leave only every `intervalMs` (for cold data, or
 * to compare with the adaptive controller). `offsetFraction` (in [0, 1)) staggers links; `jitter` (in [0, 1),
 * drawn by the caller) spreads each interval by up to ±10%.
 */
export interface FixedCadence {
  readonly intervalMs: number;
  readonly offsetFraction: number;
  readonly jitter: () => number;
}

/**
 * A lane of a link: the datasets one stream carries, with its priority and cadence. A link runs one sender per
 * lane, each with its own durable cursor, sharing the link's rate limit (higher priority first).
 */
export interface LaneSpec {
  /** `main` for the lane of every dataset not named elsewhere. */
  readonly id: string;
  /** The datasets of this lane; null = every dataset no other lane names. */
  readonly datasets: ReadonlySet<string> | null;
  /** Datasets of other lanes (used when `datasets` is null). */
  readonly excluded: ReadonlySet<string>;
  /** 0 is the highest. */
  readonly priority: number;
  /** The lane's own rate limit on every link (from its datasets' `rate` in the policy); absent = the link's only. */
  readonly limits?: RateLimits;
}

/** The single lane of a link without per-dataset settings. */
export const mainLane: LaneSpec = { id: 'main', datasets: null, excluded: new Set(), priority: 0 };

/** True if `dataset` travels in `lane`. */
export function laneCarries(lane: LaneSpec, dataset: string): boolean {
  return lane.datasets === null ? !lane.excluded.has(dataset) : lane.datasets.has(dataset);
}

/** Documents read per scan step of a state catch-up. */
export const catchUpScanEntriesMax = 500;

/** Counters of one link's sending side. */
export interface SenderStats {
  batches: number;
  entries: number;
  bytes: number;
  skippedEntries: number;
  /** Entries the policy kept from this peer. */
  deniedEntries: number;
  forwardedEntries: number;
  rewinds: number;
  catchUps: number;
}
