/** The public shapes of the embedded API. */
import { type KeyObject } from 'node:crypto';
import { type CrdtTypeName, type Dot, type Hlc, type JsonScalar, type Policy } from '@tessera/core';
import { type StoragePort } from './storage/port.js';

/** When a write counts as durable: `fsync` survives power loss, `os` survives a process crash. */
export type Durability = 'fsync' | 'os';

/** Options of `Replica.open`. */
export interface ReplicaOptions {
  /** Data directory (created if missing, mode 0700). Give `path` or `storage`. */
  readonly path?: string;
  /**
   * The engine to keep the replica in, instead of a LevelDB at `path`: `memoryStorage()` for application
   * tests (its content lives as long as the object), or a port of your own (storage/port.ts).
   */
  readonly storage?: StoragePort;
  /**
   * Encryption at rest (storage/sealed.ts): the master key (32 bytes, or their base64/hex text) or a file that
   * holds it (mode 0600). Needs `path`. A sealed directory cannot be opened without it.
   */
  readonly encryption?: { readonly masterKey: Uint8Array | string } | { readonly masterKeyFile: string } | null;
  /** Hears how far a migration of an older data directory got (records done of total). */
  readonly onMigrate?: (done: number, total: number) => void;
  /** This node's id, unique in the cluster; a data directory belongs to one node for life. */
  readonly node: string;
  /** This node's region. */
  readonly region: string;
  /** Default `fsync`. */
  readonly durability?: Durability;
  /** CRDT type per dataset for documents created without an explicit type; unlisted datasets use `map`. */
  readonly datasets?: Readonly<Record<string, { readonly type: CrdtTypeName }>>;
  /** Wall clock in milliseconds (tests inject one); default `Date.now`. */
  readonly wallClock?: () => number;
  /** Documents kept in memory. */
  readonly cacheEntriesMax?: number;
  /**
   * The replication policy to enforce (parsed with `parsePolicy`). A newer version already stored in the data
   * directory (distributed through the cluster) wins over an older one given here. Without any, every
   * document may live everywhere.
   */
  readonly policy?: Policy;
  /** The operator's signature of `policy` (stored with it, and sent with it to peers on older versions). */
  readonly policySignature?: unknown;
  /**
   * Who may change the policy: the cluster id and the operator's Ed25519 public keys. Given, every version that
   * does not come from `policy` must carry a signature by one of the keys for this cluster (from the API or a
   * peer alike), and may not jump further ahead than core's `policyVersionJumpMax`; with no keys, no version
   * can be installed but `policy`. Absent: versions are not checked (embedded use and tests).
   */
  readonly policyTrust?: PolicyTrust | null;
  /** The cluster's other nodes and their regions: a change is judged by the region it came from when its document does not say. */
  readonly peers?: ReadonlyArray<{ readonly node: string; readonly region: string }>;
}

/** Options of writes that may create a document. */
export interface WriteOptions {
  /** The CRDT type if the write creates the document; must match an existing document's type. */
  readonly type?: CrdtTypeName;
  /** Replace the document's tags with these. */
  readonly tags?: readonly string[];
}

/** What a write returns once it is durable. */
export interface WriteResult {
  /** The delta-log sequence number of the write; null when the write changed nothing. */
  readonly seq: number | null;
  /** The write's timestamp. */
  readonly hlc: Hlc;
  /** A dot the write issued (null when it changed nothing): a replica whose causal context holds it has the write. */
  readonly dot: Dot | null;
}

/** A conflict record: an automatic resolution that hid or discarded a value. */
export interface ConflictRecord {
  readonly id: string;
  readonly dataset: string;
  readonly key: string;
  readonly path: readonly string[];
  readonly kind: string;
  readonly winner: { readonly value: unknown; readonly dot: Dot | null; readonly hlc: Hlc | null };
  readonly loser: { readonly value: unknown; readonly dot: Dot | null; readonly hlc: Hlc | null };
  /** When this replica recorded it. */
  readonly recordedAt: Hlc;
  /** The node whose delta revealed the conflict. */
  readonly origin: string;
}

/** A document as `get` returns it. */
export interface DocumentView {
  readonly dataset: string;
  readonly key: string;
  readonly type: CrdtTypeName;
  /** map: object; lww: JSON; mv: array of siblings; counter: number; set: array; yjs: state update bytes; automerge: plain JSON. */
  readonly value: unknown;
  readonly tags: readonly string[];
  /** The region where the document was created (recorded with it; the policy's `doc.origin`). */
  readonly origin?: string;
  /** The causal context: per-node contiguous counters plus the gap dots. */
  readonly context: { readonly vector: ReadonlyArray<readonly [string, number]>; readonly cloud: readonly Dot[] };
  /** Concurrent values of an `lww` or `mv` register (more than one means a conflict). */
  readonly siblings?: readonly unknown[];
  /** Conflict records kept for this document (at most `conflictsPerGetMax`, oldest first). */
  readonly conflicts: readonly ConflictRecord[];
}

/** One delta-log entry: the seam replication uses. */
export interface LogEntry {
  readonly seq: number;
  readonly dataset: string;
  readonly key: string;
  /** The node that made the change. */
  readonly origin: string;
  /** The change's sequence number at its origin (0 for catch-up states): forwarding compares it with peers' frontiers. */
  readonly originSeq: number;
  readonly hlc: Hlc;
  /** The encoded delta (core/codec.ts); for a purge notice, the document's head (its facts, no value). */
  readonly delta: Uint8Array;
  /**
   * Absent for a change. `state`: the document's whole state, for regions that may now hold it (`to`) after a
   * change of facts or policy let it travel there. `purge`: a notice that regions `to` may no longer hold the
   * document and must hand over and drop their copy; it carries the facts that say so (`docHead`).
   */
  readonly kind?: 'state' | 'purge';
  /** The regions a `state` or `purge` entry is for. */
  readonly to?: readonly string[];
  /**
   * On the wire only: the sender's head of the document as it stood when sent (`docHead`, encoded), so that
   * the receiver judges the document by the facts the sender judged it by. `sendable` gives one per document.
   */
  readonly head?: Uint8Array;
}

/** A delta received from another replica (its sequence number there does not matter here). */
export type RemoteDelta = Omit<LogEntry, 'seq'> & { readonly seq?: number };

/** What `applyDeltas` did. */
export interface ApplyResult {
  /** Deltas that changed this replica (each now has a local log entry). */
  readonly applied: number;
  /** Deltas already seen (replays and duplicates), skipped. */
  readonly skipped: number;
  /**
   * Indexes of the deltas this region's policy refused: it may not hold their documents as they would be. They
   * were not applied; the refusal is audited, and the sender is told (the link acknowledges the batch with
   * them). A copy here whose facts the sender's head changed takes those facts and hands its writes over.
   */
  readonly refused: readonly number[];
  /** This replica's last sequence number after the batch. */
  readonly lastSeq: number;
  /**
   * Documents this region must give up (a notice or a sender's facts said so): handed over — dropped by
   * `settleHandovers` once the regions that may hold them have this replica's own changes — or dropped at once
   * when no region may hold them.
   */
  readonly purged: number;
}

/** How a stored policy version is used. */
export type PolicyMode = 'enforce' | 'shadow';

/** The keys that may sign policy versions for a cluster. */
export interface PolicyTrust {
  readonly cluster: string;
  readonly keys: readonly KeyObject[];
}

/** A stored policy version. */
export interface PolicyRecord {
  readonly version: number;
  /** SHA-256 of the policy's canonical form, hex. */
  readonly hash: string;
  /** Wall-clock milliseconds when this replica stored it. */
  readonly storedAtMs: number;
  /** Where it came from: `config`, `api` or `peer:<node>`. */
  readonly source: string;
  readonly text: string;
  /** The operator's signature (its text form), when the version came with one. */
  readonly signature?: string;
}

/** What a policy version would change (plan) or changed (enforce) in this replica's data. */
export interface PolicyReport {
  readonly version: number;
  readonly region: string;
  /** Documents scanned. */
  readonly documents: number;
  /** Per dataset: documents held here, to purge here, and per region the documents that start replicating there (counted by one region each). */
  readonly datasets: Readonly<Record<string, { held: number; purge: number; start: Record<string, number> }>>;
}

/** A change event, for local writes and applied remote deltas, emitted once durable. */
export interface ChangeEvent {
  readonly dataset: string;
  readonly key: string;
  readonly seq: number;
  readonly source: 'local' | 'remote';
  readonly origin: string;
  readonly deleted: boolean;
}

/** A copy this region dropped, as `purged` listeners hear it (after it is durable). */
export interface PurgeEvent {
  readonly dataset: string;
  readonly key: string;
  /** `handover` (the regions that may hold it have it), `policy` or `no region may hold it` (erased). */
  readonly reason: string;
}

/** One page of `list`. */
export interface ListPage {
  readonly items: ReadonlyArray<
    | { readonly key: string; readonly type: CrdtTypeName; readonly value: unknown; readonly tags: readonly string[] }
    | { readonly key: string; readonly error: { readonly code: string; readonly message: string } }
  >;
  /** Pass as `cursor` for the next page; null at the end. */
  readonly cursor: string | null;
}

/** A set element. */
export type SetElementValue = JsonScalar;
