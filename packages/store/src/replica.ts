/**
 * The embedded API: one node's replica. A thin façade over the parts in replica/: the shared state
 * (core.ts), reads, local writes, the apply of remote deltas, the delta log and cursors, the sender's judgment,
 * governance (policy, handovers, purges) and the audit log. Storage sits behind a port (storage/port.ts):
 * LevelDB in production, memory in tests, a fault-injecting twin in the simulation.
 */
import {
  type BodyMutator,
  type CrdtTypeName,
  type DocState,
  type Json,
  type Operation,
  type Policy,
  type TagChange,
  TesseraError,
  checkUserTags,
  crdtType,
  isCrdtTypeName,
  operationMutator,
} from '@tessera/core';
import { type AuditEntry, type AuditKind, type AuditVerdict } from './audit.js';
import { AutomergeHandle, CounterHandle, MapHandle, SetHandle, YjsHandle } from './handles.js';
import { type StoreReader } from './inspect.js';
import { type ReplicaCore, type ReplicaObserver, policyHash } from './replica/core.js';
import { applyDeltas } from './replica/apply.js';
import { auditPage, recordAudit, verifyStoredAudit } from './replica/audit-log.js';
import {
  installPolicy,
  noteRefused,
  reofferRefused,
  openGovernance,
  pendingHandovers,
  pendingNotices,
  policyHistory,
  policyRecord,
  reevaluate,
  settleHandovers,
} from './replica/governance.js';
import { type Sendable, sendable } from './replica/judge.js';
import { cursor, cursors, deltasSince, documentsAfter, setCursor, truncateLog } from './replica/log.js';
import { checkOpenOptions, openCore } from './replica/open.js';
import { conflicts, list, state, view } from './replica/reads.js';
import { withSealing } from './storage/seal-open.js';
import { type LocalWrite, writeLocal } from './replica/writes.js';
import {
  type ApplyResult,
  type ChangeEvent,
  type PurgeEvent,
  type ConflictRecord,
  type DocumentView,
  type ListPage,
  type LogEntry,
  type PolicyMode,
  type PolicyRecord,
  type PolicyReport,
  type RemoteDelta,
  type ReplicaOptions,
  type WriteOptions,
  type WriteResult,
} from './types.js';

export { policyHash, type ReplicaObserver };

/** A node's replica: the embedded store. Open with `Replica.open`. */
export class Replica {
  private constructor(private readonly c: ReplicaCore) {}

  /** Opens (creating if needed) the replica at `options.path` (or in `options.storage`). */
  static async open(options: ReplicaOptions): Promise<Replica> {
    const { settings, storage } = checkOpenOptions(await withSealing(options));
    const c = await openCore(storage, settings, options.onMigrate);
    try {
      await openGovernance(c, options.policy, options.policySignature);
    } catch (error) {
      await storage.close();
      throw error;
    }
    return new Replica(c);
  }

  /** This node's id. */
  get node(): string {
    return this.c.node;
  }

  /** This node's region. */
  get region(): string {
    return this.c.region;
  }

  /** When a write counts as durable. */
  get durability(): ReplicaOptions['durability'] {
    return this.c.durability;
  }

  /**
   * Sees every read and write with its duration, and every conflict recorded (metrics hook it). Called
   * synchronously; it must be cheap and must not throw.
   */
  observe(observer: ReplicaObserver | null): void {
    this.c.observer = observer;
  }

  // ---------------------------------------------------------------- reads

  /** The document at (dataset, key), or undefined when it does not exist (never written, or deleted). */
  async get(dataset: string, key: string): Promise<DocumentView | undefined> {
    const startedMs = this.c.observer === null ? 0 : performance.now();
    const out = await view(this.c, dataset, key);
    this.c.observer?.read(dataset, performance.now() - startedMs);
    return out;
  }

  /** The raw CRDT state of a document (for inspection and tools), or undefined when absent. */
  state(dataset: string, key: string): Promise<DocState | undefined> {
    return state(this.c, dataset, key);
  }

  /** A page of a dataset's documents, in key order. Corrupt records appear as items with an error. */
  list(dataset: string, options: { prefix?: string; limit?: number; cursor?: string | null } = {}): Promise<ListPage> {
    return list(this.c, dataset, options);
  }

  /** Conflict records, optionally for one dataset or document, in key order. */
  conflicts(options: { dataset?: string; key?: string; limit?: number } = {}): Promise<ConflictRecord[]> {
    return conflicts(this.c, options);
  }

  /**
   * The committed records, read-only, in the on-disk layout: the daemon's inspect routes read them with the
   * functions of inspect.ts, as `tessera inspect` reads a stopped node's directory.
   */
  records(): StoreReader {
    this.c.checkOpen();
    const storage = this.c.storage;
    return { get: (key) => storage.get(key), iterator: (range) => storage.entries(range), keys: (range) => storage.keys(range) };
  }

  // ---------------------------------------------------------------- writes

  /** Writes the whole value of a document (map: object; lww/mv: any JSON; set: array of scalars). */
  async put(dataset: string, key: string, value: Json, options: WriteOptions = {}): Promise<WriteResult> {
    return this.operate(dataset, key, { op: 'put', value }, options);
  }

  /** Deletes a document (the observed state; writes concurrent with the delete survive it). Tags survive. */
  async delete(dataset: string, key: string): Promise<WriteResult> {
    return this.run(dataset, key, { kind: 'delete' });
  }

  /** Changes a document's tags. The document must exist. */
  async tag(dataset: string, key: string, change: TagChange): Promise<WriteResult> {
    if (typeof change !== 'object' || change === null) throw new TesseraError('ERR_OPTION_INVALID', 'tag: expected { add?, remove? }');
    checkUserTags(change.add ?? []);
    checkUserTags(change.remove ?? []);
    return this.run(dataset, key, { kind: 'mutate', body: null, tags: () => change, mustExist: true });
  }

  /** Applies one CRDT operation (the form the HTTP API and the CLI use). */
  async operate(dataset: string, key: string, operation: Operation, options: WriteOptions = {}): Promise<WriteResult> {
    if (typeof operation !== 'object' || operation === null) throw new TesseraError('ERR_OPTION_INVALID', 'operation must be an object');
    if (options.type !== undefined && !isCrdtTypeName(options.type)) crdtType(options.type);
    if (options.tags !== undefined) checkUserTags(options.tags);
    const wanted = options.tags;
    return this.run(dataset, key, {
      kind: 'mutate',
      ...(options.type === undefined ? {} : { type: options.type }),
      body: (type) => operationMutator(type, operation, `${dataset}/${key}`),
      // Replaces the user's tags (a deleted document keeps its tags until a write gives new ones).
      ...(wanted === undefined
        ? {}
        : { tags: (current) => ({ add: wanted.filter((tag) => !current.includes(tag)), remove: current.filter((tag) => !wanted.includes(tag)) }) }),
    });
  }

  /**
   * Runs a custom body change (the handles use it for Yjs and Automerge functions): `body` gets the type the
   * document has (or is created with) and returns the mutator; it may throw to refuse.
   */
  async write(dataset: string, key: string, type: CrdtTypeName | undefined, body: (type: CrdtTypeName) => BodyMutator): Promise<WriteResult> {
    return this.run(dataset, key, { kind: 'mutate', ...(type === undefined ? {} : { type }), body });
  }

  private async run(dataset: string, key: string, write: LocalWrite): Promise<WriteResult> {
    const startedMs = this.c.observer === null ? 0 : performance.now();
    const result = await writeLocal(this.c, dataset, key, write);
    this.c.observer?.write(dataset, performance.now() - startedMs);
    return result;
  }

  /** Field operations on a `map` document. */
  map(dataset: string, key: string): MapHandle {
    return new MapHandle(this, dataset, key);
  }

  /** A `counter` document. */
  counter(dataset: string, key: string): CounterHandle {
    return new CounterHandle(this, dataset, key);
  }

  /** A `set` document. */
  set(dataset: string, key: string): SetHandle {
    return new SetHandle(this, dataset, key);
  }

  /** A `yjs` document. */
  yjs(dataset: string, key: string): YjsHandle {
    return new YjsHandle(this, dataset, key);
  }

  /** An `automerge` document. */
  automerge(dataset: string, key: string): AutomergeHandle {
    return new AutomergeHandle(this, dataset, key);
  }

  // ---------------------------------------------------------------- replication

  /** The last sequence number assigned (the head of the delta log). */
  get lastSeq(): number {
    return this.c.seqLast;
  }

  /** Every write with a sequence number up to this one is committed and readable in the log. */
  get committedSeq(): number {
    return this.c.seqCommitted;
  }

  /** The highest sequence number truncated from the delta log; `deltasSince` below it fails. */
  get logFloor(): number {
    return this.c.logFloorSeq;
  }

  /** Number of entries the log holds (head minus floor, without a scan). */
  get logLength(): number {
    return Math.max(0, this.c.seqLast - this.c.logFloorSeq);
  }

  /** Delta-log entries after `seq`, oldest first, at most `limit`; the entries are durable. */
  deltasSince(seq: number, options: { limit?: number } = {}): Promise<{ entries: LogEntry[]; lastSeq: number }> {
    return deltasSince(this.c, seq, options.limit);
  }

  /** Per origin, the highest of its sequence numbers this replica holds (its own: the committed head). */
  frontier(): Record<string, number> {
    const out: Record<string, number> = Object.fromEntries(this.c.originFrontier);
    out[this.c.node] = this.c.seqCommitted;
    return out;
  }

  /**
   * Truncates the delta log up to `seq`. With `acknowledged` (per region, the lowest sequence number its
   * nodes acknowledged), purge notices a region has not acknowledged move to the head instead of going.
   */
  truncateLog(seq: number, acknowledged?: (region: string) => number): Promise<number> {
    return truncateLog(this.c, seq, acknowledged);
  }

  /** Committed document states after an opaque position, for a state catch-up. */
  documentsAfter(after: string | null, limit: number): Promise<{ entries: Array<LogEntry & { readonly position: string }>; next: string | null }> {
    return documentsAfter(this.c, after, limit);
  }

  /** The last sequence number `peer` acknowledged on `lane` (0 when none). */
  cursor(peer: string, lane = 'main'): Promise<number> {
    return cursor(this.c, peer, lane);
  }

  /** All stored cursors, keyed by peer (main lane) or `peer/lane`. */
  cursors(): Promise<Record<string, number>> {
    return cursors(this.c);
  }

  /** Durably records that `peer` acknowledged up to `seq` on `lane`. Cursors never go backwards. */
  setCursor(peer: string, seq: number, lane = 'main'): Promise<number> {
    return setCursor(this.c, peer, seq, lane);
  }

  /** Which entries may go to `region`, with the heads of their documents (judge.ts). */
  sendable(entries: readonly LogEntry[], region: string): Promise<Sendable> {
    return sendable(this.c, entries, region);
  }

  /** Joins deltas received from another replica (`from`: its region); see `ApplyResult`. */
  applyDeltas(batch: readonly RemoteDelta[], options: { readonly from?: string } = {}): Promise<ApplyResult> {
    return applyDeltas(this.c, batch, options);
  }

  // ---------------------------------------------------------------- policy and audit

  /** The enforced policy, or null when every document may live everywhere. */
  get policy(): Policy | null {
    return this.c.enforced;
  }

  /** A policy being tried in shadow mode (judged alongside, enforced never), or null. */
  get shadowPolicy(): Policy | null {
    return this.c.shadowed;
  }

  /** The enforced policy's version and content hash, as peers are told in the handshake (version 0: none). */
  policyStamp(): { version: number; hash: string } {
    const policy = this.c.enforced;
    return policy === null ? { version: 0, hash: '' } : { version: policy.version, hash: policyHash(policy) };
  }

  /** The region of a node of the cluster (this node's, or a peer's as configured). */
  regionOf(node: string, fallback?: string): string {
    return this.c.regionOf(node, fallback);
  }

  /**
   * Stores a policy version and puts it to use. `shadow`: judged alongside the enforced one but not enforced.
   * `enforce`: enforced from now on; the stored documents are judged again — those this region may no longer
   * hold are handed over and purged (each purge audited), those other regions may now hold are sent there.
   * Versions are immutable; an older version than the one in use is refused; the same one is a no-op (null).
   * With `policyTrust` (see ReplicaOptions), `signature` must be the operator's for this version
   * (ERR_POLICY_SIGNATURE_INVALID otherwise) and the version no further ahead than allowed
   * (ERR_POLICY_VERSION_JUMP); it is stored with the version and offered to peers with it.
   */
  installPolicy(policy: Policy, mode: PolicyMode, source: string, signature?: unknown): Promise<PolicyReport | null> {
    return installPolicy(this.c, policy, mode, source, signature);
  }

  /** The operator's signature of the enforced version (its text form), or null when it came without one. */
  get policySignature(): string | null {
    return this.c.enforcedSignature;
  }

  /** What enforcing `policy` would change in this replica's data (a dry run). */
  planPolicy(policy: Policy): Promise<PolicyReport> {
    this.c.checkOpen();
    return reevaluate(this.c, this.c.enforced, policy, true);
  }

  /** Stored policy versions, oldest first. */
  policyHistory(): Promise<PolicyRecord[]> {
    return policyHistory(this.c);
  }

  /** The stored record of one policy version. */
  policyRecord(version: number): Promise<PolicyRecord | undefined> {
    return policyRecord(this.c, version);
  }

  /** Purges handed-over copies the regions that may hold them acknowledged (governance.ts); returns how many. */
  settleHandovers(acknowledged: (region: string) => number): Promise<number> {
    return settleHandovers(this.c, acknowledged);
  }

  /** A peer in `region` refused entries `seqs` of this log: handovers to it of their documents are not done. */
  noteRefused(region: string, seqs: readonly number[]): Promise<void> {
    return noteRefused(this.c, region, seqs);
  }

  /** Offers `region` again the copies it refused that this region hands over (governance.ts); returns how many. */
  reofferRefused(region: string): Promise<number> {
    return reofferRefused(this.c, region);
  }

  /** Documents kept here only until the regions they were handed to acknowledge them. */
  pendingHandovers(): Promise<number> {
    return pendingHandovers(this.c);
  }

  /**
   * Purge notices this replica owes for documents it does not store (their keys and facts stay on disk until
   * the regions they name acknowledge them; `settleHandovers` then deletes them).
   */
  pendingNotices(): Promise<number> {
    return pendingNotices(this.c);
  }

  /** A document's name in audit entries and logs: a digest keyed by this data directory's salt. */
  keyDigest(dataset: string, key: string): string {
    return this.c.keyDigest(dataset, key);
  }

  /** Appends an audit entry (for events the replication layer sees: denied sends, say). */
  recordAudit(kind: AuditKind, details: Record<string, unknown>): Promise<void> {
    return recordAudit(this.c, kind, details);
  }

  /** Audit entries after `after` (a sequence number), oldest first. */
  audit(options: { after?: number; limit?: number } = {}): Promise<AuditEntry[]> {
    return auditPage(this.c, options);
  }

  /** The audit log's length (its last sequence number). */
  get auditLength(): number {
    return this.c.auditLength;
  }

  /** Checks the whole audit chain: any edited, removed or reordered entry is reported. */
  verifyAudit(): Promise<AuditVerdict> {
    this.c.checkOpen();
    const storage = this.c.storage;
    return verifyStoredAudit({ iterator: (range) => storage.entries(range), get: (key) => storage.get(key) });
  }

  // ---------------------------------------------------------------- events and lifecycle

  /**
   * Subscribes to durable changes, local and remote (`change`), to log growth that changes no document —
   * state entries and notices a policy change or truncation adds (`appended`, with the new head) — or to
   * copies this region dropped (`purged`: handed over, or erased because no region may hold them), or to a
   * new enforced policy (`policy`, with its version, in the turn it takes effect), or to a change of the
   * placement facts (tags, origin) of a document this replica held, or its purge (`facts`, with no argument:
   * what was judged before is to be judged again).
   */
  on(event: 'change', listener: (change: ChangeEvent) => void): this;
  on(event: 'appended', listener: (head: number) => void): this;
  on(event: 'purged', listener: (purge: PurgeEvent) => void): this;
  on(event: 'policy', listener: (version: number) => void): this;
  on(event: 'facts', listener: () => void): this;
  on(
    event: 'change' | 'appended' | 'purged' | 'policy' | 'facts',
    listener: ((change: ChangeEvent) => void) | ((head: number) => void) | ((purge: PurgeEvent) => void) | (() => void),
  ): this {
    this.c.events.on(event, listener);
    return this;
  }

  /** Unsubscribes. */
  off(event: 'change', listener: (change: ChangeEvent) => void): this;
  off(event: 'appended', listener: (head: number) => void): this;
  off(event: 'purged', listener: (purge: PurgeEvent) => void): this;
  off(event: 'policy', listener: (version: number) => void): this;
  off(event: 'facts', listener: () => void): this;
  off(
    event: 'change' | 'appended' | 'purged' | 'policy' | 'facts',
    listener: ((change: ChangeEvent) => void) | ((head: number) => void) | ((purge: PurgeEvent) => void) | (() => void),
  ): this {
    this.c.events.off(event, listener);
    return this;
  }

  /** Group-commit statistics (batches written and operations in them). */
  get commitStats(): { batches: number; ops: number } {
    return { ...this.c.committer.stats };
  }

  /** True until `close` (or a fatal I/O failure). */
  get isOpen(): boolean {
    return this.c.lifecycle === 'open';
  }

  /** Waits for writes in flight, then closes the store. */
  async close(): Promise<void> {
    if (this.c.lifecycle !== 'open') return;
    this.c.lifecycle = 'closing';
    await this.c.committer.idle();
    this.c.lifecycle = 'closed';
    await this.c.storage.close();
  }

  /**
   * Stops at once, as a killed process would: nothing in flight completes, and the storage is closed so that
   * it can be opened again (what was written stays). For simulations and crash tests.
   */
  async abandon(): Promise<void> {
    this.c.failure = new Error('abandoned');
    this.c.lifecycle = 'closed';
    await this.c.storage.close().catch(() => undefined);
  }
}
