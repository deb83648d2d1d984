/** The inputs and effects of a link's protocol machine (machine.ts), and its configuration. */
import { type LogEntry } from '@tessera/store';
import { type RateLimits } from '../cadence.js';
import { type Frame, type PeerState, type PolicyStamp, type WireEntry } from '../protocol.js';
import { type FixedCadence, type LaneSpec } from '../sender.js';
import { type LocalIdentity } from './handshake.js';

/** A connection, as the driver numbers them (never reused). */
export type ConnId = number;

/** A peer as the cluster config names it. */
export interface PeerConfig {
  readonly node: string;
  readonly region: string;
  /** Where to dial it: `wss://host:port/v1/replicate` (the daemon), `ws://` only for nodes built without TLS (tests). */
  readonly url: string;
}

/** Timing of a link. */
export interface LinkTiming {
  readonly handshakeTimeoutMs: number;
  readonly pingIntervalMs: number;
  /** A link that has heard nothing for this many ping intervals is presumed dead (a silent partition). */
  readonly silentIntervalsMax: number;
  /** A batch unacknowledged this long resets the link; streaming resumes from the durable cursor. */
  readonly ackTimeoutMs: number;
}

/** What a link machine is made with. */
export interface LinkConfig {
  readonly self: LocalIdentity;
  readonly peer: PeerConfig;
  /** The node with the lower id dials, the other accepts. */
  readonly role: 'dial' | 'accept';
  readonly timing: LinkTiming;
  readonly limits: RateLimits;
  readonly lanes: ReadonlyArray<{ readonly spec: LaneSpec; readonly fixed: FixedCadence | null }>;
  /** Forward third nodes' changes to a peer that lacks them and reports its link to their origin down. */
  readonly forward: boolean;
}

/** This node's enforced policy, as the link offers it to peers on older versions. */
export interface LocalPolicy {
  readonly stamp: PolicyStamp;
  /** The policy's text (null without a policy). */
  readonly text: string | null;
  /** The operator's signature of it (text form; null when it has none: peers that check signatures refuse it). */
  readonly signature: string | null;
}

/** The inputs of a link machine. Inputs naming a connection that is no longer the link's are ignored. */
export type LinkInput =
  | { readonly kind: 'start' }
  /** The dialer's socket opened; `nonce` is fresh randomness for the hello. */
  | { readonly kind: 'connected'; readonly conn: ConnId; readonly nonce: Uint8Array }
  /** The acceptor verified a hello for this link (driver + handshake.ts) and sent the welcome. */
  | { readonly kind: 'accepted'; readonly conn: ConnId; readonly policy: PolicyStamp }
  | { readonly kind: 'frame'; readonly conn: ConnId; readonly frame: Frame; readonly wireBytes: number }
  /** The connection closed (`random`: in [0, 1), for the back-off's jitter). */
  | { readonly kind: 'closed'; readonly conn: ConnId; readonly code: number; readonly reason: string; readonly random: number }
  | {
      readonly kind: 'cursor';
      readonly conn: ConnId;
      readonly lane: string;
      readonly cursor: number;
      readonly head: number;
      readonly floor: number;
      readonly committed: number;
    }
  | {
      readonly kind: 'read';
      readonly conn: ConnId;
      readonly lane: string;
      readonly after: number;
      readonly entries: readonly LogEntry[];
      readonly head: number;
      readonly denied: ReadonlySet<number>;
      readonly heads: ReadonlyMap<string, Uint8Array>;
      readonly epoch: number;
      readonly through?: number;
    }
  | { readonly kind: 'truncated'; readonly conn: ConnId; readonly lane: string; readonly committed: number; readonly floor: number; readonly epoch: number }
  | {
      readonly kind: 'scanned';
      readonly conn: ConnId;
      readonly lane: string;
      readonly after: string | null;
      readonly entries: ReadonlyArray<LogEntry & { readonly position: string }>;
      readonly next: string | null;
      readonly denied: ReadonlySet<string>;
      readonly heads: ReadonlyMap<string, Uint8Array>;
      readonly epoch: number;
    }
  /** A batch group is durable (`refused`: indexes into its entries). */
  | { readonly kind: 'applied'; readonly conn: ConnId; readonly refused: readonly number[]; readonly applied: number }
  /** Storage work for the connection failed (`code`: the error's code, never its message). */
  | { readonly kind: 'failed'; readonly conn: ConnId; readonly what: string; readonly code: string }
  /** A policy install the machine asked for finished; `policy` is what this node enforces now. */
  | { readonly kind: 'installed'; readonly policy: LocalPolicy }
  /** The enforced policy changed (API, config, another peer): offer it. */
  | { readonly kind: 'policy-changed'; readonly policy: LocalPolicy }
  /** A stored document's placement facts changed (tags, origin) or it was purged: what lanes judged before waits. */
  | { readonly kind: 'facts-changed' }
  | { readonly kind: 'appended'; readonly head: number }
  | { readonly kind: 'tick' }
  | { readonly kind: 'shutdown' };

/** The effects a link machine asks its driver to carry out. */
export type LinkEffect =
  | { readonly kind: 'dial'; readonly conn: ConnId }
  /** `peerState`: the driver adds this node's peer state (`have`, `down`) to an ack or a ping. */
  | { readonly kind: 'send'; readonly conn: ConnId; readonly frame: Frame; readonly peerState?: boolean }
  | { readonly kind: 'close'; readonly conn: ConnId; readonly code: number; readonly reason: string }
  | { readonly kind: 'load-cursor'; readonly conn: ConnId; readonly lane: string }
  /** `epoch`: the lane's policy epoch; the answer carries it back (answers judged under an older policy are dropped). */
  | { readonly kind: 'read'; readonly conn: ConnId; readonly lane: string; readonly after: number; readonly limit: number; readonly epoch: number }
  | { readonly kind: 'scan'; readonly conn: ConnId; readonly lane: string; readonly after: string | null; readonly limit: number; readonly epoch: number }
  /** `traces`: trace ids the batches named (so a write can be followed to every region). */
  | { readonly kind: 'apply'; readonly conn: ConnId; readonly entries: readonly WireEntry[]; readonly traces: readonly string[] }
  | { readonly kind: 'persist-cursor'; readonly lane: string; readonly cursor: number }
  | { readonly kind: 'install-policy'; readonly version: number; readonly text: string; readonly signature: string | null }
  | { readonly kind: 'wake'; readonly atMs: number }
  /** A peer refused entries (counted and audited by the driver). */
  | { readonly kind: 'refused-by-peer'; readonly seqs: readonly number[] }
  /** The peer may judge anew (the link opened, or it was offered a newer policy): offer again what it refused. */
  | { readonly kind: 'reoffer-refused' }
  | { readonly kind: 'log'; readonly event: Record<string, unknown> };

/** WebSocket close codes. */
export const closeCodes = { refused: 4401, protocol: 4400, policy: 4403, replaced: 4409, shutdown: 1001 } as const;

/** What a link reports about itself. */
export type LinkState = 'idle' | 'connecting' | 'handshaking' | 'open' | 'backoff' | 'closed';

export type { PeerState };
