/**
 * The replica's shared state: the one room every part of the replica works in (reads, writes, applies,
 * governance, the log). It owns the storage port, the group committer, the document cache, the clock and the
 * sequence numbers, and offers the few helpers every part needs. It decides nothing about residency: the
 * parts ask core's pure plans and carry them out.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type CrdtTypeName, type DocState, type Hlc, type Policy, type PurgeMarker, HlcClock, TesseraError, assert, decodeDoc } from '@tessera/core';
import { type AuditKind, auditGenesis, auditHash, checkAuditDetails, keyDigest } from '../audit.js';
import { type CacheEntry, DocCache } from '../cache.js';
import { GroupCommitter } from '../committer.js';
import { auditHeadKey, auditKey, docKey, hlcKey, seqKey } from '../layout.js';
import { type BatchOp, type StoragePort } from '../storage/port.js';
import { type ChangeEvent, type Durability, type PolicyTrust } from '../types.js';

/** What `Replica.observe` reports (durations in milliseconds). No key or value is ever passed. */
export interface ReplicaObserver {
  read(dataset: string, durationMs: number): void;
  write(dataset: string, durationMs: number): void;
  conflict(dataset: string, kind: string): void;
}

/** SHA-256 of a policy's canonical form: its content hash. */
export function policyHash(policy: Policy): string {
  return createHash('sha256').update(policy.canonical).digest('hex');
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** JSON as stored bytes (small records: cursors, counters, audit entries, policy records). */
export function jsonBytes(value: unknown): Uint8Array {
  return textEncoder.encode(JSON.stringify(value));
}

/** Parses stored JSON bytes. */
export function parseJsonBytes(bytes: Uint8Array): unknown {
  return JSON.parse(textDecoder.decode(bytes));
}

/** What the opening recovered from the data directory. */
export interface Recovered {
  readonly seqLast: number;
  readonly hlcLast: Hlc;
  readonly conflicted: Set<string>;
  readonly logFloor: number;
  readonly frontier: Map<string, number>;
  readonly salt: Uint8Array;
  /** Markers of purged documents, by key digest. */
  readonly markers: Map<string, PurgeMarker>;
  readonly auditSeq: number;
  readonly auditLast: string;
}

/** The replica's identity and settings. */
export interface CoreSettings {
  readonly node: string;
  readonly region: string;
  readonly durability: Durability;
  readonly datasetTypes: Readonly<Record<string, { readonly type: CrdtTypeName }>>;
  readonly wallClock: () => number;
  readonly cacheEntriesMax: number | undefined;
  /** The cluster's nodes and their regions (this one's included). */
  readonly nodeRegions: ReadonlyMap<string, string>;
  /** Who may sign policy versions (null: versions are not checked). */
  readonly policyTrust: PolicyTrust | null;
}

/** The replica's shared state. */
export class ReplicaCore {
  readonly node: string;
  readonly region: string;
  readonly durability: Durability;
  readonly datasetTypes: Readonly<Record<string, { readonly type: CrdtTypeName }>>;
  readonly nodeRegions: ReadonlyMap<string, string>;
  readonly cache: DocCache;
  readonly events = new EventEmitter();
  readonly committer: GroupCommitter;
  readonly clock: HlcClock;
  /** The last sequence number assigned. */
  seqLast: number;
  /** Every write with a sequence number up to this one is committed (groups commit in sequence order). */
  seqCommitted: number;
  logFloorSeq: number;
  /** Per origin, the highest of its sequence numbers this replica holds (applied or already seen). */
  readonly originFrontier: Map<string, number>;
  /** Documents that have conflict records, so `get` scans for them only where there are some. */
  readonly conflicted: Set<string>;
  /** The enforced policy (null: every document may live everywhere) and one being tried in shadow mode. */
  enforced: Policy | null = null;
  shadowed: Policy | null = null;
  /** The operator's signature of the enforced version (its text form), when it came with one. */
  enforcedSignature: string | null = null;
  readonly policyTrust: PolicyTrust | null;
  /** The policy install in progress (installs are serialized). */
  policyInstalls: Promise<unknown> = Promise.resolve();
  observer: ReplicaObserver | null = null;
  /**
   * Markers of documents this region purged, by key digest (core's marker.ts): a later write here issues dots
   * above the counter they record, whatever copy it builds on; a copy from a sender whose facts do not cover
   * them is refused.
   */
  readonly markers: Map<string, PurgeMarker>;
  lifecycle: 'open' | 'closing' | 'closed' = 'open';
  failure: Error | null = null;
  private auditSeq: number;
  private auditLast: string;
  private readonly salt: Uint8Array;
  private readonly loading = new Map<string, Promise<void>>();
  private readonly loadQueue: Array<{ dataset: string; key: string; id: string; resolve: () => void; reject: (error: Error) => void }> = [];
  private readonly wallClock: () => number;

  constructor(
    readonly storage: StoragePort,
    settings: CoreSettings,
    recovered: Recovered,
  ) {
    this.node = settings.node;
    this.region = settings.region;
    this.durability = settings.durability;
    this.datasetTypes = settings.datasetTypes;
    this.nodeRegions = settings.nodeRegions;
    this.policyTrust = settings.policyTrust;
    this.wallClock = settings.wallClock;
    this.seqLast = recovered.seqLast;
    this.seqCommitted = recovered.seqLast;
    this.logFloorSeq = recovered.logFloor;
    this.originFrontier = recovered.frontier;
    this.conflicted = recovered.conflicted;
    this.salt = recovered.salt;
    this.markers = recovered.markers;
    this.auditSeq = recovered.auditSeq;
    this.auditLast = recovered.auditLast;
    this.clock = new HlcClock(recovered.hlcLast);
    this.cache = new DocCache(settings.cacheEntriesMax);
    this.committer = new GroupCommitter(
      (ops, sync) => this.storage.write(ops, { sync }),
      settings.durability === 'fsync',
      () => [
        { type: 'put', key: seqKey, value: jsonBytes(this.seqLast) },
        { type: 'put', key: hlcKey, value: jsonBytes([this.clock.latest.ms, this.clock.latest.c]) },
      ],
      (error) => this.fail(error),
    );
  }

  /** Commits `ops` atomically with concurrent writes; resolves once durable. */
  commit(ops: readonly BatchOp[]): Promise<void> {
    return this.committer.commit(ops);
  }

  /** The next sequence number of the delta log. */
  nextSeq(): number {
    return ++this.seqLast;
  }

  /** Marks everything up to `seq` committed (after its batch is durable). */
  committed(seq: number): void {
    this.seqCommitted = Math.max(this.seqCommitted, seq);
    assert(this.seqCommitted <= this.seqLast, 'nothing past the last sequence number is committed');
  }

  /** Wall-clock milliseconds (never negative, whole). */
  wallNow(): number {
    return Math.max(0, Math.floor(this.wallClock()));
  }

  /** A timestamp for a local event, after every stamp the caller observed. */
  now(observed: ReadonlyArray<Hlc | undefined> = []): Hlc {
    for (const hlc of observed) if (hlc !== undefined) this.clock.observe(hlc);
    return this.clock.now(this.wallNow());
  }

  /** The region of a node of the cluster (this node's, or a peer's as configured). */
  regionOf(node: string, fallback?: string): string {
    return this.nodeRegions.get(node) ?? fallback ?? '';
  }

  /** The marker of a document this region purged, or null. */
  markerOf(dataset: string, key: string): PurgeMarker | null {
    return this.markers.size === 0 ? null : (this.markers.get(this.keyDigest(dataset, key)) ?? null);
  }

  /** A document's name in audit entries and logs: a digest keyed by this data directory's salt. */
  keyDigest(dataset: string, key: string): string {
    return keyDigest(this.salt, dataset, key);
  }

  /** The audit log's length (its last sequence number). */
  get auditLength(): number {
    return this.auditSeq;
  }

  /** The operations that append an audit entry (chained to the previous one). */
  auditOps(kind: AuditKind, details: Record<string, unknown>): BatchOp[] {
    checkAuditDetails(details);
    const content = { seq: this.auditSeq + 1, atMs: this.wallNow(), kind, node: this.node, region: this.region, details, prev: this.auditLast };
    const entry = { ...content, hash: auditHash(content) };
    this.auditSeq = entry.seq;
    this.auditLast = entry.hash;
    return [
      { type: 'put', key: auditKey(entry.seq), value: jsonBytes(entry) },
      { type: 'put', key: auditHeadKey, value: jsonBytes({ seq: entry.seq, hash: entry.hash }) },
    ];
  }

  /** Emits a change event; a listener's bug never turns an acknowledged write into a failed one. */
  emitChange(event: ChangeEvent): void {
    if (this.events.listenerCount('change') === 0) return;
    try {
      this.events.emit('change', event);
    } catch (error) {
      queueMicrotask(() => {
        throw error;
      });
    }
  }

  /** Throws `ERR_STORE_CLOSED` unless the replica is open. */
  checkOpen(): void {
    if (this.lifecycle !== 'open') {
      throw new TesseraError(
        'ERR_STORE_CLOSED',
        this.failure === null ? `replica ${this.node} is closed` : `replica ${this.node} closed after a storage failure: ${this.failure.message}`,
      );
    }
  }

  /** A storage failure: the replica closes and never acknowledges a write it may have lost. */
  fail(error: Error): void {
    this.failure = error;
    this.lifecycle = 'closed';
    void this.storage.close().catch(() => undefined);
  }

  // ---------------------------------------------------------------- the document cache

  /** Loads a document into the cache and pins it; callers must `unpin`. */
  async pin(dataset: string, key: string): Promise<CacheEntry> {
    const id = docKey(dataset, key);
    for (;;) {
      const entry = this.cache.get(id);
      if (entry !== undefined) {
        entry.pins++;
        return entry;
      }
      let loading = this.loading.get(id);
      if (loading === undefined) {
        loading = this.load(dataset, key, id).finally(() => this.loading.delete(id));
        this.loading.set(id, loading);
      }
      await loading;
    }
  }

  /** Pins every document of a list (one `getMany` for those not cached); callers must `unpin` each. */
  async pinAll(docs: ReadonlyArray<{ readonly dataset: string; readonly key: string }>): Promise<Map<string, CacheEntry>> {
    const out = new Map<string, CacheEntry>();
    const wanted = new Map<string, { dataset: string; key: string }>();
    for (const doc of docs) wanted.set(docKey(doc.dataset, doc.key), doc);
    try {
      await Promise.all(
        [...wanted].map(async ([id, doc]) => {
          out.set(id, await this.pin(doc.dataset, doc.key));
        }),
      );
    } catch (error) {
      for (const entry of out.values()) this.unpin(entry);
      throw error;
    }
    return out;
  }

  unpin(entry: CacheEntry): void {
    assert(entry.pins > 0, 'unpin of an unpinned entry');
    entry.pins--;
  }

  /** The committed state of a document (a read), or null. */
  async committedState(dataset: string, key: string): Promise<DocState | null> {
    const entry = await this.pin(dataset, key);
    this.unpin(entry);
    return entry.committed;
  }

  /**
   * Reads a document into the cache. Loads requested in the same tick (concurrent writers that all missed the
   * cache) are read with one `getMany`, which costs about as much as a single `get`.
   */
  private load(dataset: string, key: string, id: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.loadQueue.push({ dataset, key, id, resolve, reject });
      if (this.loadQueue.length === 1) queueMicrotask(() => void this.flushLoads());
    });
  }

  private async flushLoads(): Promise<void> {
    const batch = this.loadQueue.splice(0, this.loadQueue.length);
    let values: Array<Uint8Array | undefined>;
    try {
      values = await this.storage.getMany(batch.map((item) => item.id));
    } catch (error) {
      for (const item of batch) {
        item.reject(new TesseraError('ERR_STORE_IO', `${item.dataset}/${item.key}: read failed: ${(error as Error).message}`, { cause: error }));
      }
      return;
    }
    batch.forEach((item, i) => {
      const bytes = values[i];
      let state: DocState | null = null;
      if (bytes !== undefined) {
        try {
          state = decodeDoc(bytes, `${item.dataset}/${item.key}`);
        } catch (error) {
          item.reject(
            new TesseraError('ERR_STORE_CORRUPT', `stored document ${item.dataset}/${item.key} is corrupt: ${(error as Error).message}`, { cause: error }),
          );
          return;
        }
      }
      this.cache.insert(item.id, state);
      item.resolve();
    });
  }
}

/** The audit chain's start, for a new data directory. */
export const auditStart = { seq: 0, hash: auditGenesis };
