/**
 * The replica store and the embedded API: a LevelDB-backed CRDT store for one node.
 *
 * Write path: load the document (cache or disk), apply the operation in memory (core), then commit the new
 * state, the delta-log entry and any conflict records in one atomic batch, group-committed with concurrent
 * writes. The write is acknowledged (its promise resolves, its change event fires) only after that batch is
 * durable. Reads see acknowledged writes. An I/O failure closes the replica: it never acknowledges a write
 * it may have lost.
 */
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { ClassicLevel } from 'classic-level';
import {
  type CrdtTypeName, type DocMutation, type DocState, type Dot, type Hlc, type Json, type Operation, type TagChange,
  HlcClock, TesseraError, assert, checkDatasetName, checkKey, checkNodeId, checkRegion, checkTags,
  conflictsLimitMax, crdtType, decodeBounded, decodeDoc, deltaBatchBytesMax, deltaBatchEntriesMax, docBytesMax,
  docExists, docTags, docValue, emptyDoc, encodeCanonical, encodeDoc, expectArray, expectHlc, expectInt,
  expectNodeId, expectString, hex64, isCrdtTypeName, isHlc, joinDelta, listLimitMax, mutate, operationMutator,
  joinDocs, remove, toFieldPath, type Policy, type DocFacts, parsePolicy, originTag, isReservedTag, checkUserTags, factsOf,
} from '@tessera/core';
import {
  type AuditEntry, type AuditKind, type AuditVerdict, auditGenesis, auditHash, checkAuditDetails, isAuditEntry, isAuditHead, keyDigest, verifyAuditChain,
} from './audit.js';
import { backfillLeader, docFacts, holderChange, quarantineHolds } from './residency.js';
import { type BatchOp, GroupCommitter } from './committer.js';
import { decodeLogEntry, encodeLogEntry } from './log-entry.js';
import { type CacheEntry, DocCache } from './cache.js';
import {
  allDocsRange, conflictKey, conflictRange, frontierKey, frontierRange, cursorKey, parseCursorKey, parseConflictKey, cursorRange, docKey, docRange, hlcKey, logFloorKey, logKey, logRange, metaKey, parseDocKey,
  parseLogKey, seqKey, storeFormatVersion, auditKey, auditRange, auditHeadKey, parseAuditKey, saltKey, policyKey, policyRange,
  policyStateKey, handoverKey, handoverRange, parseHandoverKey, floorKey, floorRange,
} from './layout.js';
import {
  type ApplyResult, type ChangeEvent, type ConflictRecord, type DocumentView, type Durability, type ListPage, type LogEntry,
  type RemoteDelta, type ReplicaOptions, type WriteOptions, type WriteResult, type PolicyMode, type PolicyRecord,
  type PolicyReport,
} from './types.js';
import { AutomergeHandle, CounterHandle, MapHandle, SetHandle, YjsHandle } from './handles.js';
import { type StoreReader } from './inspect.js';

/** What `Replica.observe` reports (durations in milliseconds). No key or value is ever passed. */
export interface ReplicaObserver {
  read(dataset: string, durationMs: number): void;
  write(dataset: string, durationMs: number): void;
  conflict(dataset: string, kind: string): void;
}

/** Conflict records returned with one `get`. */
export const conflictsPerGetMax = 100;
/** Default page size of `list`. */
export const listLimitDefault = 100;
/** Default and maximum entries of one `deltasSince` answer. */
export const deltasLimitDefault = 1_000;
/** Audit entries in one `audit` page. */
export const auditLimitMax = 10_000;
/** Documents re-evaluated per step when a policy is enforced or planned (one write batch per step). */
export const policyScanStepMax = 500;
/** Document digests listed in one audit entry about a rejected batch. */
export const auditDigestsMax = 20;

/** The policy state kept in the data directory. */
interface PolicyState {
  readonly enforce: { readonly version: number; readonly hash: string } | null;
  readonly shadow: { readonly version: number; readonly hash: string } | null;
}

/** SHA-256 of a policy's canonical form: its content hash. */
export function policyHash(policy: Policy): string {
  return createHash('sha256').update(policy.canonical).digest('hex');
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

function jsonBytes(value: unknown): Uint8Array {
  return textEncoder.encode(JSON.stringify(value));
}

function parseJsonBytes(bytes: Uint8Array): unknown {
  return JSON.parse(textDecoder.decode(bytes));
}

interface Meta {
  readonly format: number;
  readonly node: string;
  readonly region: string;
}

/** A node's replica: the embedded store. Open with `Replica.open`. */
export class Replica {
  private readonly cache: DocCache;
  private readonly loading = new Map<string, Promise<void>>();
  private readonly loadQueue: Array<{ dataset: string; key: string; id: string; resolve: () => void; reject: (error: Error) => void }> = [];
  private readonly events = new EventEmitter();
  private readonly committer: GroupCommitter;
  private readonly clock: HlcClock;
  private seqLast: number;
  /** Every write with a sequence number up to this one is committed (groups commit in sequence order). */
  private seqCommitted: number;
  private logFloorSeq: number;
  /** Per origin, the highest of its sequence numbers this replica holds (applied or already seen). */
  private readonly originFrontier: Map<string, number>;
  private lifecycle: 'open' | 'closing' | 'closed' = 'open';
  private failure: Error | null = null;
  /** Documents that have conflict records, so `get` scans for them only where there are some. */
  private readonly conflicted: Set<string>;
  /** The enforced policy (null: every document may live everywhere) and one being tried in shadow mode. */
  private enforced: Policy | null = null;
  private shadowed: Policy | null = null;
  private readonly nodeRegions = new Map<string, string>();
  private auditSeq = 0;
  private auditLast = auditGenesis;
  private salt: Uint8Array = new Uint8Array(0);
  /** The policy install in progress (installs are serialized). */
  private policyInstalls: Promise<unknown> = Promise.resolve();
  private observer: ReplicaObserver | null = null;
  /** Counter floors kept for purged documents (a read on a write that creates a document only when there are any). */
  private floorCount = 0;

  private constructor(
    private readonly db: ClassicLevel<string, Uint8Array>,
    readonly node: string,
    readonly region: string,
    readonly durability: Durability,
    private readonly datasetTypes: Readonly<Record<string, { readonly type: CrdtTypeName }>>,
    private readonly wallClock: () => number,
    seqLast: number,
    hlcLast: Hlc,
    cacheEntriesMax: number | undefined,
    conflicted: Set<string>,
    logFloor: number,
    frontier: Map<string, number>,
  ) {
    this.originFrontier = frontier;
    this.conflicted = conflicted;
    this.seqLast = seqLast;
    this.seqCommitted = seqLast;
    this.logFloorSeq = logFloor;
    this.clock = new HlcClock(hlcLast);
    this.cache = new DocCache(cacheEntriesMax);
    this.committer = new GroupCommitter(
      (ops, sync) => this.db.batch(ops, { sync }),
      durability === 'fsync',
      () => [
        { type: 'put', key: seqKey, value: jsonBytes(this.seqLast) },
        { type: 'put', key: hlcKey, value: jsonBytes([this.clock.latest.ms, this.clock.latest.c]) },
      ],
      (error) => this.fail(error),
    );
  }

  /** Opens (creating if needed) the replica at `options.path`. */
  static async open(options: ReplicaOptions): Promise<Replica> {
    if (typeof options !== 'object' || options === null) throw new TesseraError('ERR_OPTION_INVALID', 'Replica.open needs an options object');
    if (typeof options.path !== 'string' || options.path.length === 0) {
      throw new TesseraError('ERR_OPTION_INVALID', `Replica.open: path must be a non-empty string, got ${JSON.stringify(options.path)}`);
    }
    checkNodeId(options.node);
    checkRegion(options.region);
    const durability = options.durability ?? 'fsync';
    if (durability !== 'fsync' && durability !== 'os') {
      throw new TesseraError('ERR_OPTION_INVALID', `Replica.open: durability must be "fsync" or "os", got ${JSON.stringify(durability)}`);
    }
    const datasets = options.datasets ?? {};
    for (const [name, config] of Object.entries(datasets)) {
      checkDatasetName(name);
      crdtType(config?.type);
    }
    await mkdir(options.path, { recursive: true }).catch((error: NodeJS.ErrnoException) => {
      throw new TesseraError('ERR_STORE_IO', `data directory ${options.path}: ${error.code ?? error.message}`, { cause: error });
    });
    const db = new ClassicLevel<string, Uint8Array>(options.path, { keyEncoding: 'utf8', valueEncoding: 'view' });
    try {
      await db.open();
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new TesseraError('ERR_STORE_LOCKED', `data directory ${options.path} is in use by another process`, { cause: error });
      }
      throw new TesseraError('ERR_STORE_IO', `data directory ${options.path} could not be opened: ${(error as Error).message}`, { cause: error });
    }
    try {
      const meta = await Replica.readMeta(db, options);
      const seqLast = await Replica.recoverSeq(db);
      const hlcBytes = await db.get(hlcKey);
      let hlcLast: Hlc = { ms: 0, c: 0 };
      if (hlcBytes !== undefined) {
        const [ms, c] = expectArray(parseJsonBytes(hlcBytes), 'stored clock', 2, 2);
        const hlc = { ms, c };
        if (isHlc(hlc)) hlcLast = hlc;
      }
      const conflicted = await Replica.loadConflicted(db);
      const floorBytes = await db.get(logFloorKey);
      const logFloor = floorBytes === undefined ? 0 : expectInt(parseJsonBytes(floorBytes), 'stored log floor');
      const frontier = new Map<string, number>();
      for await (const [stored, bytes] of db.iterator(frontierRange)) {
        frontier.set(stored.slice(frontierRange.gte.length), expectInt(parseJsonBytes(bytes), 'stored frontier'));
      }
      const replica = new Replica(db, meta.node, meta.region, durability, datasets, options.wallClock ?? Date.now, seqLast, hlcLast, options.cacheEntriesMax, conflicted, logFloor, frontier);
      await replica.openGovernance(options);
      return replica;
    } catch (error) {
      await db.close();
      throw error;
    }
  }

  private static async readMeta(db: ClassicLevel<string, Uint8Array>, options: ReplicaOptions): Promise<Meta> {
    const bytes = await db.get(metaKey);
    if (bytes === undefined) {
      for await (const _key of db.keys({ limit: 1 })) {
        throw new TesseraError('ERR_STORE_FORMAT', `data directory ${options.path} holds a LevelDB that is not a Tessera replica`);
      }
      const meta: Meta = { format: storeFormatVersion, node: options.node, region: options.region };
      await db.put(metaKey, jsonBytes(meta), { sync: true });
      return meta;
    }
    let meta: Meta;
    try {
      meta = parseJsonBytes(bytes) as Meta;
    } catch {
      throw new TesseraError('ERR_STORE_FORMAT', `data directory ${options.path}: the format record is unreadable`);
    }
    if (meta.format !== storeFormatVersion) {
      throw new TesseraError('ERR_STORE_FORMAT',
        `data directory ${options.path} has format version ${JSON.stringify(meta.format)}; this Tessera reads version ${storeFormatVersion}`);
    }
    if (meta.node !== options.node) {
      throw new TesseraError('ERR_STORE_NODE_MISMATCH',
        `data directory ${options.path} belongs to node "${meta.node}", not "${options.node}"`);
    }
    if (meta.region !== options.region) {
      throw new TesseraError('ERR_STORE_NODE_MISMATCH',
        `data directory ${options.path} belongs to region "${meta.region}", not "${options.region}"`);
    }
    return meta;
  }

  private static async loadConflicted(db: ClassicLevel<string, Uint8Array>): Promise<Set<string>> {
    const out = new Set<string>();
    for await (const stored of db.keys(conflictRange())) {
      const { dataset, key } = parseConflictKey(stored);
      out.add(docKey(dataset, key));
    }
    return out;
  }

  private static async recoverSeq(db: ClassicLevel<string, Uint8Array>): Promise<number> {
    let seq = 0;
    const stored = await db.get(seqKey);
    if (stored !== undefined) seq = expectInt(parseJsonBytes(stored), 'stored sequence number');
    for await (const key of db.keys({ ...logRange, reverse: true, limit: 1 })) seq = Math.max(seq, parseLogKey(key));
    return seq;
  }

  // ---------------------------------------------------------------- reads

  /**
   * Sees every read and write with its duration, and every conflict recorded (metrics hook it). Called
   * synchronously; it must be cheap and must not throw.
   */
  observe(observer: ReplicaObserver | null): void {
    this.observer = observer;
  }

  /** The document at (dataset, key), or undefined when it does not exist (never written, or deleted). */
  async get(dataset: string, key: string): Promise<DocumentView | undefined> {
    const startedMs = this.observer === null ? 0 : performance.now();
    const view = await this.view(dataset, key);
    this.observer?.read(dataset, performance.now() - startedMs);
    return view;
  }

  private async view(dataset: string, key: string): Promise<DocumentView | undefined> {
    const doc = await this.state(dataset, key);
    if (doc === undefined || !docExists(doc)) return undefined;
    const conflicts = this.conflicted.has(docKey(dataset, key)) ? await this.conflicts({ dataset, key, limit: conflictsPerGetMax }) : [];
    const context = doc.ctx.toJSON();
    const facts = factsOf(dataset, key, docTags(doc));
    const view: DocumentView = {
      dataset, key, type: doc.type, value: docValue(doc), tags: facts.tags, ...(facts.origin === null ? {} : { origin: facts.origin }), context, conflicts,
    };
    if ((doc.type === 'lww' || doc.type === 'mv') && (doc.body as unknown[]).length > 1) {
      return { ...view, siblings: crdtType('mv').value(doc.body) as unknown[] };
    }
    return view;
  }

  /** The raw CRDT state of a document (for inspection and tools), or undefined when absent. */
  async state(dataset: string, key: string): Promise<DocState | undefined> {
    this.checkOpen();
    checkDatasetName(dataset);
    checkKey(key);
    const entry = await this.pin(dataset, key);
    this.unpin(entry);
    return entry.committed ?? undefined;
  }

  /** A page of a dataset's documents, in key order. Corrupt records appear as items with an error. */
  async list(dataset: string, options: { prefix?: string; limit?: number; cursor?: string | null } = {}): Promise<ListPage> {
    this.checkOpen();
    checkDatasetName(dataset);
    const prefix = options.prefix ?? '';
    if (typeof prefix !== 'string') throw new TesseraError('ERR_OPTION_INVALID', 'list: prefix must be a string');
    if (prefix !== '') checkKey(prefix);
    const limit = checkLimit('list', options.limit ?? listLimitDefault, listLimitMax);
    const range: { gte?: string; gt?: string; lt: string } = docRange(dataset, prefix);
    if (options.cursor !== undefined && options.cursor !== null) {
      const after = Buffer.from(String(options.cursor), 'base64url').toString('utf8');
      checkKey(after);
      delete range.gte;
      range.gt = docKey(dataset, after);
    }
    const items: ListPage['items'][number][] = [];
    let last: string | null = null;
    let more = false;
    // A page reads a bounded number of records; deleted documents are skipped, so a page may end short.
    const scanMax = limit * 4 + 1;
    let scanned = 0;
    for await (const [stored, bytes] of this.db.iterator({ ...range, limit: scanMax })) {
      scanned++;
      const { key } = parseDocKey(stored);
      if (items.length === limit) {
        more = true;
        break;
      }
      last = key;
      let doc: DocState;
      try {
        doc = decodeDoc(bytes, `${dataset}/${key}`);
      } catch (error) {
        items.push({ key, error: { code: 'ERR_STORE_CORRUPT', message: (error as Error).message } });
        continue;
      }
      if (!docExists(doc)) continue;
      items.push({ key, type: doc.type, value: docValue(doc), tags: factsOf(dataset, key, docTags(doc)).tags });
    }
    // The scan stopping on its bound (not at the end of the range) also means there may be more.
    if (scanned === scanMax) more = true;
    return { items, cursor: more && last !== null ? Buffer.from(last, 'utf8').toString('base64url') : null };
  }

  /** Conflict records, optionally for one dataset or document, in key order. */
  async conflicts(options: { dataset?: string; key?: string; limit?: number } = {}): Promise<ConflictRecord[]> {
    this.checkOpen();
    if (options.dataset !== undefined) checkDatasetName(options.dataset);
    if (options.key !== undefined) {
      if (options.dataset === undefined) throw new TesseraError('ERR_OPTION_INVALID', 'conflicts: key needs a dataset');
      checkKey(options.key);
    }
    const limit = checkLimit('conflicts', options.limit ?? conflictsLimitMax, conflictsLimitMax);
    const out: ConflictRecord[] = [];
    for await (const bytes of this.db.values({ ...conflictRange(options.dataset, options.key), limit })) {
      out.push(parseJsonBytes(bytes) as ConflictRecord);
    }
    return out;
  }

  /** The last sequence number assigned (the head of the delta log). */
  get lastSeq(): number {
    return this.seqLast;
  }

  /**
   * Delta-log entries after `seq`, oldest first, at most `limit`. The entries are durable. The log may have
   * gaps (numbers assigned to writes that a crash lost before they were acknowledged).
   */
  async deltasSince(seq: number, options: { limit?: number } = {}): Promise<{ entries: LogEntry[]; lastSeq: number }> {
    this.checkOpen();
    if (!Number.isSafeInteger(seq) || seq < 0) throw new TesseraError('ERR_OPTION_INVALID', `deltasSince: seq ${String(seq)} is not a non-negative integer`);
    const limit = checkLimit('deltasSince', options.limit ?? deltasLimitDefault, deltaBatchEntriesMax);
    if (seq < this.logFloorSeq) {
      throw new TesseraError('ERR_LOG_TRUNCATED', `deltasSince(${seq}): the delta log was truncated up to ${this.logFloorSeq}; a peer this far behind needs a state catch-up`);
    }
    const lastSeq = this.seqLast;
    const entries: LogEntry[] = [];
    for await (const [stored, bytes] of this.db.iterator({ gt: logKey(seq), lt: logRange.lt, limit })) {
      entries.push(decodeLogEntry(parseLogKey(stored), bytes));
    }
    return { entries, lastSeq };
  }

  /**
   * Per origin, the highest of its sequence numbers this replica holds (its own: the committed head). Peers
   * exchange these so that a node forwards a third node's change only to a peer that lacks it.
   */
  frontier(): Record<string, number> {
    const out: Record<string, number> = Object.fromEntries(this.originFrontier);
    out[this.node] = this.seqCommitted;
    return out;
  }

  /** Every write with a sequence number up to this one is committed and readable in the log. */
  get committedSeq(): number {
    return this.seqCommitted;
  }

  /** The highest sequence number truncated from the delta log; `deltasSince` below it fails. */
  get logFloor(): number {
    return this.logFloorSeq;
  }

  /**
   * Truncates the delta log up to `seq` (entries every peer has acknowledged, or past the log's size bound).
   * The floor is made durable first, so a crash half-way leaves extra entries, never a gap that looks whole.
   */
  async truncateLog(seq: number): Promise<number> {
    this.checkOpen();
    if (!Number.isSafeInteger(seq) || seq < 0) throw new TesseraError('ERR_OPTION_INVALID', `truncateLog: seq ${String(seq)} is not a non-negative integer`);
    const upto = Math.min(seq, this.seqCommitted);
    if (upto <= this.logFloorSeq) return this.logFloorSeq;
    const from = this.logFloorSeq;
    this.logFloorSeq = upto;
    await this.committer.commit([{ type: 'put', key: logFloorKey, value: jsonBytes(upto) }]);
    await this.db.clear({ gt: logKey(from), lte: logKey(upto) });
    return upto;
  }

  /** Number of entries the log holds (bounded scan-free estimate: head minus floor). */
  get logLength(): number {
    return Math.max(0, this.seqLast - this.logFloorSeq);
  }

  /**
   * The committed records, read-only, in the on-disk layout: the daemon's inspect routes read them with the
   * functions of inspect.ts, as `tessera inspect` reads a stopped node's directory.
   */
  records(): StoreReader {
    this.checkOpen();
    const db = this.db;
    return { get: (key) => db.get(key), iterator: (range) => db.iterator(range), keys: (range) => db.keys(range) };
  }

  /**
   * Committed document states in key order after `after` (an opaque position, null to start), for a state
   * catch-up: each state is a valid delta for `applyDeltas`.
   */
  async documentsAfter(after: string | null, limit: number): Promise<{ entries: Array<LogEntry & { readonly position: string }>; next: string | null }> {
    this.checkOpen();
    checkLimit('documentsAfter', limit, deltaBatchEntriesMax);
    const range = after === null ? allDocsRange : { gt: after, lt: allDocsRange.lt };
    const entries: Array<LogEntry & { readonly position: string }> = [];
    let next: string | null = null;
    const hlc = this.clock.latest;
    for await (const [stored, bytes] of this.db.iterator({ ...range, limit })) {
      const { dataset, key } = parseDocKey(stored);
      entries.push({ seq: 0, dataset, key, origin: this.node, originSeq: 0, hlc, delta: bytes, position: stored });
      next = stored;
    }
    return { entries, next: entries.length < limit ? null : next };
  }

  /** The last sequence number `peer` acknowledged on `lane` (0 when none). */
  async cursor(peer: string, lane = 'main'): Promise<number> {
    this.checkOpen();
    checkNodeId(peer);
    checkLane(lane);
    const bytes = await this.db.get(cursorKey(peer, lane));
    return bytes === undefined ? 0 : expectInt(parseJsonBytes(bytes), `cursor of ${peer}`);
  }

  /** All stored cursors, keyed by peer (main lane) or `peer/lane`. */
  async cursors(): Promise<Record<string, number>> {
    this.checkOpen();
    const out: Record<string, number> = {};
    for await (const [stored, bytes] of this.db.iterator(cursorRange)) {
      const { peer, lane } = parseCursorKey(stored);
      out[lane === 'main' ? peer : `${peer}/${lane}`] = expectInt(parseJsonBytes(bytes), `cursor of ${peer}`);
    }
    return out;
  }

  /** Durably records that `peer` acknowledged up to `seq` on `lane`. Cursors never go backwards: a lower value is ignored. */
  async setCursor(peer: string, seq: number, lane = 'main'): Promise<number> {
    const current = await this.cursor(peer, lane);
    if (!Number.isSafeInteger(seq) || seq < 0) throw new TesseraError('ERR_OPTION_INVALID', `setCursor: seq ${String(seq)} is not a non-negative integer`);
    if (seq <= current) return current;
    await this.committer.commit([{ type: 'put', key: cursorKey(peer, lane), value: jsonBytes(seq) }]);
    return seq;
  }

  // ---------------------------------------------------------------- writes

  /** Writes the whole value of a document (map: object; lww/mv: any JSON; set: array of scalars). */
  async put(dataset: string, key: string, value: Json, options: WriteOptions = {}): Promise<WriteResult> {
    return this.operate(dataset, key, { op: 'put', value }, options);
  }

  /** Deletes a document (the observed state; writes concurrent with the delete survive it). */
  async delete(dataset: string, key: string): Promise<WriteResult> {
    // Tags survive a delete: they classify the document, and decide where its tombstone may travel.
    return this.write(dataset, key, undefined, (doc, hlc) => (doc === null ? null : remove(doc, this.node, hlc, { keepTags: true })));
  }

  /** Changes a document's tags. The document must exist. */
  async tag(dataset: string, key: string, change: TagChange): Promise<WriteResult> {
    if (typeof change !== 'object' || change === null) throw new TesseraError('ERR_OPTION_INVALID', 'tag: expected { add?, remove? }');
    checkUserTags(change.add ?? []);
    checkUserTags(change.remove ?? []);
    return this.write(dataset, key, undefined, (doc, hlc) => {
      if (doc === null || !docExists(doc)) {
        throw new TesseraError('ERR_OPTION_INVALID', `tag: ${dataset}/${key} does not exist`);
      }
      return mutate(doc, this.node, hlc, null, change);
    });
  }

  /** Applies one CRDT operation (the form the HTTP API and the CLI use). */
  async operate(dataset: string, key: string, operation: Operation, options: WriteOptions = {}): Promise<WriteResult> {
    if (typeof operation !== 'object' || operation === null) throw new TesseraError('ERR_OPTION_INVALID', 'operation must be an object');
    if (options.type !== undefined && !isCrdtTypeName(options.type)) crdtType(options.type);
    if (options.tags !== undefined) {
      checkUserTags(options.tags);
    }
    return this.write(dataset, key, options.type, (doc, hlc, type) => {
      const mutator = operationMutator(type, operation, `${dataset}/${key}`);
      const base = doc ?? emptyDoc(type);
      let tags: TagChange | undefined;
      if (options.tags !== undefined) {
        // Replaces the user's tags (a deleted document keeps its tags until a write gives new ones).
        const current = factsOf(dataset, key, docTags(base)).tags;
        tags = { add: options.tags.filter((tag) => !current.includes(tag)), remove: current.filter((tag) => !options.tags!.includes(tag)) };
      }
      return mutate(base, this.node, hlc, mutator, tags);
    });
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

  /**
   * Runs a custom mutation (used by the handles for Yjs and Automerge functions). `build` gets the current
   * state (null when absent) and the write's timestamp, and returns the mutation or null for no change.
   */
  async write(
    dataset: string,
    key: string,
    typeOption: CrdtTypeName | undefined,
    build: (doc: DocState | null, hlc: Hlc, type: CrdtTypeName) => DocMutation | null,
  ): Promise<WriteResult> {
    const startedMs = this.observer === null ? 0 : performance.now();
    const result = await this.writeNow(dataset, key, typeOption, build);
    this.observer?.write(dataset, performance.now() - startedMs);
    return result;
  }

  private async writeNow(
    dataset: string,
    key: string,
    typeOption: CrdtTypeName | undefined,
    build: (doc: DocState | null, hlc: Hlc, type: CrdtTypeName) => DocMutation | null,
  ): Promise<WriteResult> {
    this.checkOpen();
    checkDatasetName(dataset);
    checkKey(key);
    const entry = await this.pin(dataset, key);
    // A document this region purged once: new dots start above those its state had (other regions have them).
    let counterFloor = 0;
    if (this.floorCount > 0 && entry.state === null) {
      try {
        counterFloor = await this.counterFloorOf(dataset, key);
      } catch (error) {
        this.unpin(entry);
        throw error;
      }
    }
    let ops: BatchOp[];
    let seq: number;
    /** The write's last sequence number (a state or purge notice may follow the change). */
    let seqEnd: number;
    let next: DocState;
    let hlc: Hlc;
    let dot: Dot;
    try {
      this.checkOpen();
      const current = entry.state;
      const type = this.typeFor(dataset, key, current, typeOption);
      hlc = this.clock.now(this.wallNow());
      // A document of another type that no longer exists is replaced by the new type.
      const base = current !== null && current.type !== type ? { ...emptyDoc(type), ctx: current.ctx.clone() }
        : current === null && counterFloor > 0 ? { ...emptyDoc(type), counterFloor } : current;
      const built = build(base, hlc, type);
      if (built === null) {
        this.unpin(entry);
        return { seq: null, hlc, dot: null };
      }
      const mutation = this.withOrigin(built, hlc);
      dot = mutation.dot;
      next = mutation.state;
      const governance = this.judgeWrite(dataset, key, base, next);
      const deltaBytes = encodeDoc(mutation.delta);
      // A document this write creates (nothing seen before) has the delta as its whole state — except for
      // Yjs, whose stored state is re-encoded canonically while a delta keeps the update as Yjs made it.
      const created = (base === null || base.ctx.isEmpty) && next.type !== 'yjs';
      const stateBytes = created ? deltaBytes : encodeDoc(next);
      if (stateBytes.length > docBytesMax) {
        throw new TesseraError('ERR_VALUE_TOO_LARGE', `${dataset}/${key}: the document would grow to ${stateBytes.length} bytes, over the limit of ${docBytesMax} bytes`);
      }
      seq = ++this.seqLast;
      const entryBytes = encodeLogEntry(dataset, key, this.node, seq, hlc, deltaBytes);
      ops = [
        { type: 'put', key: docKey(dataset, key), value: stateBytes },
        { type: 'put', key: logKey(seq), value: entryBytes },
      ];
      if (governance !== null) {
        // Regions this write lets the document reach get its whole state; regions it shuts out get a purge notice.
        if (governance.added.length > 0) {
          const stateSeq = ++this.seqLast;
          ops.push({ type: 'put', key: logKey(stateSeq), value: encodeLogEntry(dataset, key, this.node, stateSeq, hlc, stateBytes, 'state', governance.added) });
        }
        if (governance.removed.length > 0) {
          const purgeSeq = ++this.seqLast;
          ops.push({ type: 'put', key: logKey(purgeSeq), value: encodeLogEntry(dataset, key, this.node, purgeSeq, hlc, new Uint8Array(0), 'purge', governance.removed) });
        }
        for (const kind of governance.audit) ops.push(...this.auditOps(kind, { dataset, doc: this.keyDigest(dataset, key) }));
      }
      seqEnd = this.seqLast;
      entry.state = next;
    } catch (error) {
      this.unpin(entry);
      throw error;
    }
    try {
      await this.committer.commit(ops);
    } finally {
      this.unpin(entry);
    }
    if (seq > entry.committedSeq) {
      entry.committed = next;
      entry.committedSeq = seq;
    }
    this.seqCommitted = Math.max(this.seqCommitted, seqEnd);
    this.emitChange({ dataset, key, seq, source: 'local', origin: this.node, deleted: !docExists(next) });
    return { seq, hlc, dot };
  }

  /** Adds the origin tag to a state that has none (a write creating the document), in the same delta. */
  private withOrigin(mutation: DocMutation, hlc: Hlc): DocMutation {
    if (docTags(mutation.state).some(isReservedTag)) return mutation;
    const tagged = mutate(mutation.state, this.node, hlc, null, { add: [originTag(this.region)] });
    if (tagged === null) return mutation;
    // The join of two deltas is a delta: one log entry carries both.
    return { delta: joinDocs(mutation.delta, tagged.delta).state, state: tagged.state, dot: mutation.dot };
  }

  /**
   * Checks a local write against the enforced policy: this region must still be allowed to hold the document
   * afterwards (else `ERR_POLICY_DENIED`, naming the regions that may). Returns the regions the write opens and
   * shuts for the document, and the quarantine events to audit; null without a policy.
   */
  private judgeWrite(dataset: string, key: string, before: DocState | null, after: DocState): { added: string[]; removed: string[]; audit: AuditKind[] } | null {
    const policy = this.enforced;
    if (policy === null) return null;
    const factsAfter = docFacts(dataset, key, after, this.region);
    const decision = policy.decide(factsAfter, this.region);
    if (!decision.allow) throw policyDenied(policy, factsAfter, this.region, decision.reason);
    const existed = before !== null && !before.ctx.isEmpty;
    const factsBefore = existed ? docFacts(dataset, key, before, this.region) : null;
    const holdersAfter = policy.holders(factsAfter);
    const holdersBefore = factsBefore === null ? holdersAfter : policy.holders(factsBefore);
    const { added, removed } = holderChange(holdersBefore, holdersAfter);
    const audit: AuditKind[] = [];
    const heldBefore = factsBefore !== null && quarantineHolds(policy, factsBefore);
    const heldAfter = quarantineHolds(policy, factsAfter);
    if (heldAfter && !heldBefore) audit.push('quarantine-hold');
    if (heldBefore && !heldAfter) audit.push('quarantine-release');
    return { added: added.filter((region) => region !== this.region), removed, audit };
  }

  /**
   * Joins deltas received from other replicas. The batch is validated whole before anything is applied; deltas
   * already seen are skipped; the rest are joined, logged and committed in one atomic batch, then acknowledged.
   */
  async applyDeltas(batch: readonly RemoteDelta[], options: { readonly from?: string } = {}): Promise<ApplyResult> {
    this.checkOpen();
    const decoded = validateBatch(batch);
    const policy = this.enforced;
    /** Documents a purge notice in this batch tells this region to drop. */
    const purges = new Map<string, { dataset: string; key: string; origin: string }>();
    const rejected: Array<{ index: number; dataset: string; key: string; reason: string }> = [];
    const entries = new Map<string, CacheEntry>();
    try {
      for (const item of decoded) {
        const id = docKey(item.dataset, item.key);
        if (!entries.has(id)) entries.set(id, await this.pin(item.dataset, item.key));
      }
      this.checkOpen();
      const ops: BatchOp[] = [];
      const changes: Array<{ entry: CacheEntry; state: DocState; event: ChangeEvent }> = [];
      let skipped = 0;
      // Conflict records are stamped with one timestamp per batch, issued only if the batch has any.
      let recordedAt: Hlc | null = null;
      // New states are staged here and published to the cache only when the whole batch has been joined,
      // so a delta that fails half-way (an invalid Yjs update, an oversize document) leaves no trace.
      const staged = new Map<CacheEntry, DocState>();
      const conflictedNow: string[] = [];
      const frontierNow = new Map<string, number>();
      /** Per document the batch changes: the deltas that change it, judged together (below). */
      const judged = new Map<CacheEntry, { dataset: string; key: string; origin: string; indexes: number[] }>();
      for (const [index, item] of decoded.entries()) {
        // Applied or already seen, this replica now holds the change: its origin's frontier moves.
        if (item.origin !== this.node && item.originSeq > (frontierNow.get(item.origin) ?? this.originFrontier.get(item.origin) ?? 0)) {
          frontierNow.set(item.origin, item.originSeq);
        }
        if (item.doc === null) {
          // A purge notice: the sender's policy says this region may no longer hold the document.
          if (item.to.includes(this.region)) purges.set(docKey(item.dataset, item.key), { dataset: item.dataset, key: item.key, origin: item.origin });
          else skipped++;
          continue;
        }
        const entry = entries.get(docKey(item.dataset, item.key))!;
        const before = staged.get(entry) ?? entry.state;
        const { state, conflicts, changed } = joinDelta(before ?? emptyDoc(item.doc.type), item.doc);
        if (!changed) {
          skipped++;
          continue;
        }
        if (policy !== null) {
          const judging = judged.get(entry);
          if (judging === undefined) judged.set(entry, { dataset: item.dataset, key: item.key, origin: this.regionOf(item.origin, options.from), indexes: [index] });
          else judging.indexes.push(index);
        }
        try {
          crdtType(state.type).check?.(state.body);
        } catch (error) {
          throw new TesseraError('ERR_DELTA_INVALID', `applyDeltas: delta for ${item.dataset}/${item.key} from ${item.origin}: ${(error as Error).message}`, { cause: error });
        }
        const stateBytes = encodeDoc(state);
        if (stateBytes.length > docBytesMax) {
          throw new TesseraError('ERR_VALUE_TOO_LARGE', `${item.dataset}/${item.key}: a remote delta would grow the document to ${stateBytes.length} bytes, over the limit of ${docBytesMax} bytes`);
        }
        this.clock.observe(item.hlc);
        const seq = ++this.seqLast;
        staged.set(entry, state);
        ops.push({ type: 'put', key: docKey(item.dataset, item.key), value: stateBytes });
        ops.push({ type: 'put', key: logKey(seq), value: encodeLogEntry(item.dataset, item.key, item.origin, item.originSeq, item.hlc, item.bytes) });
        for (const finding of conflicts) {
          const id = hex64(`${finding.path.join('\u0000')}|${finding.kind}|${JSON.stringify(finding.loser.dot)}|${JSON.stringify(finding.loser.hlc)}|${finding.loser.dot === null ? JSON.stringify(finding.loser.value) : ''}`);
          recordedAt ??= this.clock.now(this.wallNow());
          const record: ConflictRecord = { id, dataset: item.dataset, key: item.key, ...finding, recordedAt, origin: item.origin };
          ops.push({ type: 'put', key: conflictKey(item.dataset, item.key, id), value: jsonBytes(record) });
          conflictedNow.push(docKey(item.dataset, item.key));
          this.observer?.conflict(item.dataset, finding.kind);
        }
        changes.push({ entry, state, event: { dataset: item.dataset, key: item.key, seq, source: 'remote', origin: item.origin, deleted: !docExists(state) } });
      }
      // The receiver judges again, by its own policy, each document as it would hold it once the batch is
      // applied — not each step on the way: a document released from quarantine comes with its deltas from
      // before the release, and the sender, which judges the document as it stands, sends them all.
      for (const [entry, doc] of judged) {
        const decision = policy!.decide(docFacts(doc.dataset, doc.key, staged.get(entry)!, doc.origin), this.region);
        if (!decision.allow) for (const index of doc.indexes) rejected.push({ index, dataset: doc.dataset, key: doc.key, reason: decision.reason });
      }
      if (rejected.length > 0) {
        rejected.sort((a, b) => a.index - b.index);
        // Nothing of the batch is applied; the refusal is audited (documents by digest, never by key).
        const datasets = [...new Set(rejected.map((r) => r.dataset))].sort();
        const reasons = [...new Set(rejected.map((r) => r.reason))].sort();
        await this.committer.commit(this.auditOps('rejected', {
          from: options.from ?? null, count: rejected.length, batch: decoded.length, datasets, reasons,
          docs: [...new Set(rejected.map((r) => this.keyDigest(r.dataset, r.key)))].slice(0, auditDigestsMax),
        }));
        throw policyRejected(rejected.map((r) => r.index), `applyDeltas: ${rejected.length} of ${decoded.length} deltas${options.from === undefined ? '' : ` from region ${options.from}`} may not be held in region ${this.region} under policy v${policy!.version} (datasets ${datasets.join(', ')}; ${reasons.join(', ')}); the batch was not applied`);
      }
      for (const [entry, state] of staged) entry.state = state;
      for (const [origin, originSeq] of frontierNow) ops.push({ type: 'put', key: frontierKey(origin), value: jsonBytes(originSeq) });
      if (ops.length > 0) await this.committer.commit(ops);
      for (const [origin, originSeq] of frontierNow) {
        if (originSeq > (this.originFrontier.get(origin) ?? 0)) this.originFrontier.set(origin, originSeq);
      }
      for (const id of conflictedNow) this.conflicted.add(id);
      for (const { entry, state, event } of changes) {
        if (event.seq > entry.committedSeq) {
          entry.committed = state;
          entry.committedSeq = event.seq;
        }
        this.seqCommitted = Math.max(this.seqCommitted, event.seq);
      }
      for (const { event } of changes) this.emitChange(event);
      // A notice is handed over, not obeyed at once: this region's own changes not yet replicated go to the
      // notice's region first (the document may stay there), then the copy here is purged.
      let purged = 0;
      const handovers = [...purges.values()].map((doc) => ({ dataset: doc.dataset, key: doc.key, regions: [this.regionOf(doc.origin, options.from)], policy: false }));
      const immediate = [...purges.values()].filter((_, i) => handovers[i]!.regions[0] === '');
      if (immediate.length > 0) purged = await this.purgeDocs(immediate, (doc) => ({ reason: 'notice', fromNode: doc.origin }));
      const pending = handovers.filter((handover) => handover.regions[0] !== '');
      if (pending.length > 0) await this.committer.commit(pending.map((handover) => this.handoverOp(handover)));
      return { applied: changes.length, skipped, lastSeq: this.seqLast, purged: purged + pending.length };
    } finally {
      for (const entry of entries.values()) this.unpin(entry);
    }
  }

  // ---------------------------------------------------------------- policy and audit

  /** The enforced policy, or null when every document may live everywhere. */
  get policy(): Policy | null {
    return this.enforced;
  }

  /** A policy being tried in shadow mode (judged alongside, enforced never), or null. */
  get shadowPolicy(): Policy | null {
    return this.shadowed;
  }

  /** The enforced policy's version and content hash, as peers are told in the handshake (version 0: none). */
  policyStamp(): { version: number; hash: string } {
    return this.enforced === null ? { version: 0, hash: '' } : { version: this.enforced.version, hash: policyHash(this.enforced) };
  }

  /** The region of a node of the cluster (this node's, or a peer's as configured). */
  regionOf(node: string, fallback?: string): string {
    return this.nodeRegions.get(node) ?? fallback ?? '';
  }

  /**
   * Stores a policy version and puts it to use. `shadow`: judged alongside the enforced one (status and plans
   * show what it would change) but not enforced. `enforce`: enforced from now on; the documents stored here
   * are judged again — those this region may no longer hold are purged (each purge audited), and those that
   * other regions may now hold are sent there. Versions are immutable: a version already stored with another
   * content is refused. An older version than the one in use is refused; the same one is a no-op (null).
   * Installs run one at a time, in call order (two peers can send a version at once).
   */
  installPolicy(policy: Policy, mode: PolicyMode, source: string): Promise<PolicyReport | null> {
    // Each install reads the versions in use, then commits: interleaved, a slower older version would be
    // checked against the state before a newer one and enforced after it, and one version stored twice.
    const run = this.policyInstalls.then(() => this.installPolicyNow(policy, mode, source));
    this.policyInstalls = run.catch(() => undefined);
    return run;
  }

  private async installPolicyNow(policy: Policy, mode: PolicyMode, source: string): Promise<PolicyReport | null> {
    this.checkOpen();
    if (mode !== 'enforce' && mode !== 'shadow') throw new TesseraError('ERR_OPTION_INVALID', `installPolicy: mode must be "enforce" or "shadow", got ${JSON.stringify(mode)}`);
    const hash = policyHash(policy);
    const stored = await this.policyRecord(policy.version);
    if (stored !== undefined && stored.hash !== hash) {
      throw new TesseraError('ERR_POLICY_CONFLICT',
        `policy version ${policy.version} is already stored with content hash ${stored.hash.slice(0, 12)}…, not ${hash.slice(0, 12)}…: versions are immutable, so give the changed policy a higher version`);
    }
    const current = mode === 'enforce' ? this.enforced : this.shadowed;
    if (current !== null && current.version === policy.version) return null;
    if (this.enforced !== null && policy.version < this.enforced.version) {
      throw new TesseraError('ERR_POLICY_CONFLICT', `policy version ${policy.version} is older than the enforced version ${this.enforced.version}`);
    }
    // The enforced version is not tried in shadow mode again (a repeated apply shadows it first): nothing to do.
    if (this.enforced !== null && policy.version === this.enforced.version) return null;
    const ops: BatchOp[] = [];
    if (stored === undefined) {
      const record: PolicyRecord = { version: policy.version, hash, storedAtMs: this.wallNow(), source, text: policy.text };
      ops.push({ type: 'put', key: policyKey(policy.version), value: jsonBytes(record) });
      ops.push(...this.auditOps('policy-stored', { version: policy.version, hash, source }));
    }
    const stamp = (p: Policy | null) => (p === null ? null : { version: p.version, hash: policyHash(p) });
    const enforce = mode === 'enforce' ? policy : this.enforced;
    const shadow = mode === 'shadow' ? policy : this.shadowed !== null && this.shadowed.version > policy.version ? this.shadowed : null;
    const state: PolicyState = { enforce: stamp(enforce), shadow: stamp(shadow) };
    ops.push({ type: 'put', key: policyStateKey, value: jsonBytes(state) });
    ops.push(...this.auditOps('policy-activated', { version: policy.version, hash, mode, previous: this.enforced?.version ?? null, source }));
    await this.committer.commit(ops);
    const previous = this.enforced;
    this.enforced = enforce;
    this.shadowed = shadow;
    if (mode === 'shadow') return null;
    return this.reevaluate(previous, policy, false);
  }

  /** What enforcing `policy` would change in this replica's data (a dry run). */
  async planPolicy(policy: Policy): Promise<PolicyReport> {
    this.checkOpen();
    return this.reevaluate(this.enforced, policy, true);
  }

  /** Stored policy versions, oldest first. */
  async policyHistory(): Promise<PolicyRecord[]> {
    this.checkOpen();
    const out: PolicyRecord[] = [];
    for await (const bytes of this.db.values(policyRange)) out.push(parseJsonBytes(bytes) as PolicyRecord);
    return out;
  }

  /** The stored record of one policy version. */
  async policyRecord(version: number): Promise<PolicyRecord | undefined> {
    const bytes = await this.db.get(policyKey(version));
    return bytes === undefined ? undefined : parseJsonBytes(bytes) as PolicyRecord;
  }

  /**
   * For each entry, whether it may go to `region`: a change or state only if the region may hold the document
   * as it stands here now (quarantine defers, a release lets it go); a purge notice only if the region is
   * one it names and may indeed no longer hold the document. Also counts entries the shadow policy would deny.
   */
  async sendable(entries: readonly LogEntry[], region: string): Promise<{ allowed: boolean[]; shadowDenied: number }> {
    const policy = this.enforced;
    const shadow = this.shadowed;
    if (policy === null && shadow === null) return { allowed: entries.map((entry) => entry.kind !== 'purge'), shadowDenied: 0 };
    const pinned = new Map<string, CacheEntry>();
    try {
      await Promise.all(entries.map(async (entry) => {
        const id = docKey(entry.dataset, entry.key);
        if (pinned.has(id)) return;
        pinned.set(id, undefined as unknown as CacheEntry);
        pinned.set(id, await this.pin(entry.dataset, entry.key));
      }));
      let shadowDenied = 0;
      const allowed = entries.map((entry) => {
        const state = pinned.get(docKey(entry.dataset, entry.key))!.committed;
        const facts = docFacts(entry.dataset, entry.key, state, this.regionOf(entry.origin));
        const may = policy === null || policy.mayHold(facts, region);
        if (entry.kind === 'purge') return (entry.to ?? []).includes(region) && !may;
        const ok = may && state !== null && (entry.kind !== 'state' || (entry.to ?? []).includes(region));
        if (ok && shadow !== null && !shadow.mayHold(facts, region)) shadowDenied++;
        return ok;
      });
      return { allowed, shadowDenied };
    } finally {
      for (const entry of pinned.values()) if (entry !== undefined) this.unpin(entry);
    }
  }

  /** A document's name in audit entries and logs: a digest keyed by this data directory's salt. */
  keyDigest(dataset: string, key: string): string {
    return keyDigest(this.salt, dataset, key);
  }

  /** Appends an audit entry (for events the replication layer sees: denied sends, say). */
  async recordAudit(kind: AuditKind, details: Record<string, unknown>): Promise<void> {
    this.checkOpen();
    await this.committer.commit(this.auditOps(kind, details));
  }

  /** Audit entries after `after` (a sequence number), oldest first. */
  async audit(options: { after?: number; limit?: number } = {}): Promise<AuditEntry[]> {
    this.checkOpen();
    const after = options.after ?? 0;
    if (!Number.isSafeInteger(after) || after < 0) throw new TesseraError('ERR_OPTION_INVALID', `audit: after ${String(after)} is not a non-negative integer`);
    const limit = checkLimit('audit', options.limit ?? 100, auditLimitMax);
    const out: AuditEntry[] = [];
    for await (const bytes of this.db.values({ gt: auditKey(after), lt: auditRange.lt, limit })) out.push(parseJsonBytes(bytes) as AuditEntry);
    return out;
  }

  /** The audit log's length (its last sequence number). */
  get auditLength(): number {
    return this.auditSeq;
  }

  /** Checks the whole audit chain: any edited, removed or reordered entry is reported. */
  async verifyAudit(): Promise<AuditVerdict> {
    this.checkOpen();
    return verifyStoredAudit(this.db);
  }

  private auditOps(kind: AuditKind, details: Record<string, unknown>): BatchOp[] {
    checkAuditDetails(details);
    const content = { seq: this.auditSeq + 1, atMs: this.wallNow(), kind, node: this.node, region: this.region, details, prev: this.auditLast };
    const entry: AuditEntry = { ...content, hash: auditHash(content) };
    this.auditSeq = entry.seq;
    this.auditLast = entry.hash;
    return [
      { type: 'put', key: auditKey(entry.seq), value: jsonBytes(entry) },
      { type: 'put', key: auditHeadKey, value: jsonBytes({ seq: entry.seq, hash: entry.hash }) },
    ];
  }

  private async openGovernance(options: ReplicaOptions): Promise<void> {
    for (const peer of options.peers ?? []) {
      checkNodeId(peer.node);
      checkRegion(peer.region);
      this.nodeRegions.set(peer.node, peer.region);
    }
    this.nodeRegions.set(this.node, this.region);
    let salt = await this.db.get(saltKey);
    if (salt === undefined) {
      salt = new Uint8Array(randomBytes(32));
      await this.db.put(saltKey, salt, { sync: true });
    }
    this.salt = salt;
    for await (const _key of this.db.keys(floorRange)) this.floorCount++;
    const head = await this.db.get(auditHeadKey);
    if (head !== undefined) {
      const { seq, hash } = parseJsonBytes(head) as { seq: number; hash: string };
      this.auditSeq = expectInt(seq, 'audit head');
      this.auditLast = expectString(hash, 'audit head hash');
    }
    const stateBytes = await this.db.get(policyStateKey);
    const state = stateBytes === undefined ? { enforce: null, shadow: null } : parseJsonBytes(stateBytes) as PolicyState;
    if (state.enforce !== null) this.enforced = await this.storedPolicy(state.enforce.version);
    if (state.shadow !== null) this.shadowed = await this.storedPolicy(state.shadow.version);
    const given = options.policy;
    // A newer version already stored (distributed through the cluster) stays; an older one given is ignored.
    if (given !== undefined && (this.enforced === null || given.version >= this.enforced.version)) {
      await this.installPolicy(given, 'enforce', 'config');
    }
  }

  private async storedPolicy(version: number): Promise<Policy> {
    const record = await this.policyRecord(version);
    if (record === undefined) throw new TesseraError('ERR_STORE_CORRUPT', `policy version ${version} is in use but its record is missing`);
    const policy = parsePolicy(record.text, `stored policy v${version}`);
    if (policyHash(policy) !== record.hash) throw new TesseraError('ERR_STORE_CORRUPT', `stored policy version ${version} does not match its content hash`);
    return policy;
  }

  /**
   * Judges every stored document under `next` against `previous` (null: everywhere allowed). Unless `dryRun`,
   * purges what this region may no longer hold and sends each document to the regions `next` opens for it
   * (from one region only, see `backfillLeader`).
   */
  private async reevaluate(previous: Policy | null, next: Policy, dryRun: boolean): Promise<PolicyReport> {
    const everywhere = [...next.regions.keys()].sort();
    const datasets: Record<string, { held: number; purge: number; start: Record<string, number> }> = {};
    let documents = 0;
    let after: string | null = null;
    for (;;) {
      const page: Array<[string, Uint8Array]> = [];
      for await (const item of this.db.iterator({ ...(after === null ? { gte: allDocsRange.gte } : { gt: after }), lt: allDocsRange.lt, limit: policyScanStepMax })) page.push(item);
      if (page.length === 0) break;
      after = page[page.length - 1]![0];
      const purges: Array<{ dataset: string; key: string }> = [];
      const handovers: Array<{ dataset: string; key: string; regions: readonly string[]; policy: boolean }> = [];
      const ops: BatchOp[] = [];
      for (const [stored, bytes] of page) {
        const { dataset, key } = parseDocKey(stored);
        let doc: DocState;
        try {
          doc = decodeDoc(bytes, `${dataset}/${key}`);
        } catch {
          continue;
        }
        documents++;
        const counts = (datasets[dataset] ??= { held: 0, purge: 0, start: {} });
        counts.held++;
        const facts = docFacts(dataset, key, doc, this.region);
        const before = previous === null ? everywhere : previous.holders(facts);
        const now = next.holders(facts);
        const { added } = holderChange(before, now);
        // Counted once over the cluster (by the first region holding it), so that per-region plans add up.
        if (added.length > 0 && backfillLeader(before, now) === this.region) {
          for (const region of added) counts.start[region] = (counts.start[region] ?? 0) + 1;
        }
        const leaving = !now.includes(this.region);
        if (leaving) counts.purge++;
        if (dryRun) continue;
        // Every holder sends its copy to the regions the policy opens: copies may still differ (a tag that
        // decides the placement may not have reached every holder), and joins make duplicates harmless.
        if (added.length > 0) {
          const seq = ++this.seqLast;
          ops.push({ type: 'put', key: logKey(seq), value: encodeLogEntry(dataset, key, this.node, seq, this.clock.now(this.wallNow()), bytes, 'state', added) });
        }
        if (!leaving) continue;
        if (now.length === 0) {
          purges.push({ dataset, key });
          continue;
        }
        // A region that may no longer hold the document keeps it until the regions that may have acknowledged
        // everything it logged so far (its own writes not yet replicated included), then purges it.
        handovers.push({ dataset, key, regions: now, policy: true });
      }
      if (!dryRun) {
        for (const handover of handovers) ops.push(this.handoverOp(handover));
        if (ops.length > 0) {
          await this.committer.commit(ops);
          this.seqCommitted = Math.max(this.seqCommitted, this.seqLast);
          // No document changed, but the log grew: links have entries to send.
          this.events.emit('appended', this.seqLast);
        }
        await this.purgeDocs(purges, () => ({ reason: 'policy', version: next.version }));
      }
    }
    return { version: next.version, region: this.region, documents, datasets };
  }

  /**
   * Completes handovers: a document this region may no longer hold, kept only until the regions it was sent to
   * acknowledged its state, is purged once `acknowledged(region)` (the lowest sequence number every node of
   * that region has acknowledged from this one) reaches the state's entry for all of them. Returns how many.
   */
  async settleHandovers(acknowledged: (region: string) => number): Promise<number> {
    this.checkOpen();
    const ready: Array<{ dataset: string; key: string; stored: string }> = [];
    const cancelled: BatchOp[] = [];
    for await (const [stored, bytes] of this.db.iterator({ ...handoverRange, limit: policyScanStepMax })) {
      const { seq, regions, policy } = parseJsonBytes(bytes) as { seq: number; regions: string[]; policy: boolean };
      const { dataset, key } = parseHandoverKey(stored);
      if (policy && this.enforced !== null) {
        // A handover the policy ordered is cancelled if a later version lets this region keep the document.
        const state = await this.state(dataset, key);
        if (state !== undefined && this.enforced.mayHold(docFacts(dataset, key, state, this.region), this.region)) {
          cancelled.push({ type: 'del', key: stored });
          continue;
        }
      }
      if (regions.every((region) => acknowledged(region) >= seq)) ready.push({ dataset, key, stored });
    }
    if (cancelled.length > 0) await this.committer.commit(cancelled);
    if (ready.length === 0) return 0;
    await this.purgeDocs(ready, () => ({ reason: 'handover' }), ready.map((doc) => ({ type: 'del' as const, key: doc.stored })));
    return ready.length;
  }

  /** The record of a pending handover: purge once `regions` acknowledged what this replica logged so far. */
  private handoverOp(handover: { dataset: string; key: string; regions: readonly string[]; policy: boolean }): BatchOp {
    return { type: 'put', key: handoverKey(handover.dataset, handover.key), value: jsonBytes({ seq: this.seqLast, regions: handover.regions, policy: handover.policy }) };
  }

  /** The counter floor of a purged document (0 when none). */
  private async counterFloorOf(dataset: string, key: string): Promise<number> {
    const bytes = await this.db.get(floorKey(this.keyDigest(dataset, key)));
    return bytes === undefined ? 0 : expectInt(parseJsonBytes(bytes), 'stored counter floor');
  }

  /** Documents kept here only until the regions they were handed to acknowledge them. */
  async pendingHandovers(): Promise<number> {
    let count = 0;
    for await (const _key of this.db.keys(handoverRange)) count++;
    return count;
  }

  /**
   * Drops this region's copy of documents: their state, conflict records and delta-log entries, in one batch,
   * with an audit entry each. Nothing of them stays on disk here.
   */
  private async purgeDocs<T extends { dataset: string; key: string }>(docs: readonly T[], details: (doc: T) => Record<string, unknown>, extraOps: readonly BatchOp[] = []): Promise<number> {
    if (docs.length === 0) return 0;
    const ids = new Set(docs.map((doc) => docKey(doc.dataset, doc.key)));
    const pinned = await Promise.all(docs.map((doc) => this.pin(doc.dataset, doc.key)));
    try {
      const ops: BatchOp[] = [...extraOps];
      const logKeys: string[] = [];
      for await (const [stored, bytes] of this.db.iterator({ gt: logKey(this.logFloorSeq), lt: logRange.lt })) {
        const entry = decodeLogEntry(parseLogKey(stored), bytes);
        if (ids.has(docKey(entry.dataset, entry.key))) logKeys.push(stored);
      }
      for (const stored of logKeys) ops.push({ type: 'del', key: stored });
      let floors = 0;
      for (const [i, doc] of docs.entries()) {
        // The state goes, and its context with it: remember (by digest, never the key) the highest counter of
        // this node's dots in it, so a later write here cannot issue a dot other regions already hold.
        const counter = pinned[i]!.state?.ctx.maxCounter(this.node) ?? 0;
        if (counter > 0) {
          ops.push({ type: 'put', key: floorKey(this.keyDigest(doc.dataset, doc.key)), value: jsonBytes(counter) });
          floors++;
        }
        ops.push({ type: 'del', key: docKey(doc.dataset, doc.key) });
        for await (const stored of this.db.keys(conflictRange(doc.dataset, doc.key))) ops.push({ type: 'del', key: stored });
        ops.push(...this.auditOps('purge', { dataset: doc.dataset, doc: this.keyDigest(doc.dataset, doc.key), ...details(doc) }));
      }
      await this.committer.commit(ops);
      this.floorCount += floors;
      for (const entry of pinned) {
        entry.state = null;
        entry.committed = null;
      }
      for (const id of ids) this.conflicted.delete(id);
      // A delete leaves the old bytes in LevelDB's files until compaction rewrites them: compact what the purge
      // touched, so that nothing of the documents stays on this region's disk. The ranges are whole datasets
      // and sequence numbers, never document keys: LevelDB writes the bounds of a manual compaction to its
      // LOG file.
      for (const dataset of new Set(docs.map((doc) => doc.dataset))) {
        const range = docRange(dataset);
        await this.db.compactRange(range.gte, range.lt);
        const conflicts = conflictRange(dataset);
        await this.db.compactRange(conflicts.gte, conflicts.lt);
      }
      if (logKeys.length > 0) await this.db.compactRange(logKeys[0]!, logKeys[logKeys.length - 1]!);
      // Handover records name the document too.
      if (extraOps.length > 0) await this.db.compactRange(handoverRange.gte, handoverRange.lt);
      return docs.length;
    } finally {
      for (const entry of pinned) this.unpin(entry);
    }
  }

  // ---------------------------------------------------------------- events and lifecycle

  /**
   * Subscribes to durable changes, local and remote (`change`), or to log growth that changes no document —
   * state entries a policy change sends to regions it opens (`appended`, with the new head).
   */
  on(event: 'change', listener: (change: ChangeEvent) => void): this;
  on(event: 'appended', listener: (head: number) => void): this;
  on(event: 'change' | 'appended', listener: ((change: ChangeEvent) => void) | ((head: number) => void)): this {
    this.events.on(event, listener);
    return this;
  }

  /** Unsubscribes. */
  off(event: 'change', listener: (change: ChangeEvent) => void): this;
  off(event: 'appended', listener: (head: number) => void): this;
  off(event: 'change' | 'appended', listener: ((change: ChangeEvent) => void) | ((head: number) => void)): this {
    this.events.off(event, listener);
    return this;
  }

  /** Group-commit statistics (batches written and operations in them). */
  get commitStats(): { batches: number; ops: number } {
    return { ...this.committer.stats };
  }

  /** True until `close` (or a fatal I/O failure). */
  get isOpen(): boolean {
    return this.lifecycle === 'open';
  }

  /** Waits for writes in flight, then closes the store. */
  async close(): Promise<void> {
    if (this.lifecycle !== 'open') return;
    this.lifecycle = 'closing';
    await this.committer.idle();
    this.lifecycle = 'closed';
    await this.db.close();
  }

  // ---------------------------------------------------------------- internals

  private typeFor(dataset: string, key: string, current: DocState | null, requested: CrdtTypeName | undefined): CrdtTypeName {
    if (current !== null && docExists(current)) {
      if (requested !== undefined && requested !== current.type) {
        throw new TesseraError('ERR_TYPE_MISMATCH', `${dataset}/${key} is a ${current.type} document, not ${requested}`);
      }
      return current.type;
    }
    return requested ?? this.datasetTypes[dataset]?.type ?? this.enforced?.dataset(dataset).type ?? 'map';
  }

  /** Loads a document into the cache and pins it; callers must `unpin`. */
  private async pin(dataset: string, key: string): Promise<CacheEntry> {
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

  private unpin(entry: CacheEntry): void {
    assert(entry.pins > 0, 'unpin of an unpinned entry');
    entry.pins--;
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
    let values: (Uint8Array | undefined)[];
    try {
      values = await this.db.getMany(batch.map((item) => item.id));
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
          item.reject(new TesseraError('ERR_STORE_CORRUPT', `stored document ${item.dataset}/${item.key} is corrupt: ${(error as Error).message}`, { cause: error }));
          return;
        }
      }
      this.cache.insert(item.id, state);
      item.resolve();
    });
  }


  private wallNow(): number {
    return Math.max(0, Math.floor(this.wallClock()));
  }

  private emitChange(event: ChangeEvent): void {
    if (this.events.listenerCount('change') === 0) return;
    try {
      this.events.emit('change', event);
    } catch (error) {
      // A listener's bug must not turn an acknowledged write into a failed one.
      queueMicrotask(() => {
        throw error;
      });
    }
  }

  private checkOpen(): void {
    if (this.lifecycle !== 'open') {
      throw new TesseraError('ERR_STORE_CLOSED', this.failure === null
        ? `replica ${this.node} is closed`
        : `replica ${this.node} closed after a storage failure: ${this.failure.message}`);
    }
  }

  private fail(error: Error): void {
    this.failure = error;
    this.lifecycle = 'closed';
    void this.db.close().catch(() => undefined);
  }
}

const lanePattern = /^[a-z0-9][a-z0-9-]{0,31}$/;

/** Throws `ERR_OPTION_INVALID` unless `lane` is a lane id (`main`, or `[a-z0-9-]`, at most 32 characters). */
function checkLane(lane: unknown): asserts lane is string {
  if (typeof lane !== 'string' || !lanePattern.test(lane)) {
    throw new TesseraError('ERR_OPTION_INVALID', `lane ${JSON.stringify(lane)} is invalid: use 1 to 32 characters [a-z0-9-]`);
  }
}

/** Throws `ERR_OPTION_INVALID` unless `limit` is an integer from 1 to `max`. */
function checkLimit(what: string, limit: unknown, max: number): number {
  if (!Number.isSafeInteger(limit) || (limit as number) < 1 || (limit as number) > max) {
    throw new TesseraError('ERR_OPTION_INVALID', `${what}: limit ${String(limit)} is outside 1 to ${max}`);
  }
  return limit as number;
}

interface DecodedDelta {
  readonly dataset: string;
  readonly key: string;
  readonly origin: string;
  readonly originSeq: number;
  readonly hlc: Hlc;
  readonly bytes: Uint8Array;
  /** Null for a purge notice. */
  readonly doc: DocState | null;
  /** The regions of a state or purge entry (empty for a change). */
  readonly to: readonly string[];
}

/** Regions one state or purge entry may name. */
export const entryRegionsMax = 64;

function validateBatch(batch: readonly RemoteDelta[]): DecodedDelta[] {
  if (!Array.isArray(batch)) throw new TesseraError('ERR_DELTA_INVALID', 'applyDeltas: expected an array of deltas');
  if (batch.length > deltaBatchEntriesMax) {
    throw new TesseraError('ERR_DELTA_INVALID', `applyDeltas: ${batch.length} deltas exceed the limit of ${deltaBatchEntriesMax} per batch`);
  }
  let bytesTotal = 0;
  return batch.map((item, i) => {
    const what = `applyDeltas: delta ${i}`;
    try {
      if (typeof item !== 'object' || item === null) throw new TesseraError('ERR_DELTA_INVALID', `${what}: expected an object`);
      checkDatasetName(item.dataset);
      checkKey(item.key);
      checkNodeId(item.origin);
      if (!isHlc(item.hlc)) throw new TesseraError('ERR_DELTA_INVALID', `${what}: hlc must be { ms, c }`);
      if (!Number.isSafeInteger(item.originSeq) || item.originSeq < 0) throw new TesseraError('ERR_DELTA_INVALID', `${what}: originSeq must be a non-negative integer`);
      if (!(item.delta instanceof Uint8Array)) throw new TesseraError('ERR_DELTA_INVALID', `${what}: delta must be bytes`);
      bytesTotal += item.delta.length;
      if (bytesTotal > deltaBatchBytesMax) {
        throw new TesseraError('ERR_DELTA_INVALID', `${what}: the batch exceeds the limit of ${deltaBatchBytesMax} bytes`);
      }
      let to: string[] = [];
      if (item.kind !== undefined) {
        if (item.kind !== 'state' && item.kind !== 'purge') throw new TesseraError('ERR_DELTA_INVALID', `${what}: kind must be "state" or "purge"`);
        if (!Array.isArray(item.to) || item.to.length === 0 || item.to.length > entryRegionsMax) {
          throw new TesseraError('ERR_DELTA_INVALID', `${what}: a ${item.kind} entry names 1 to ${entryRegionsMax} regions in "to"`);
        }
        to = item.to.map((region: unknown) => {
          checkRegion(region);
          return region;
        });
      }
      if (item.kind === 'purge') {
        if (item.delta.length !== 0) throw new TesseraError('ERR_DELTA_INVALID', `${what}: a purge notice carries no value (got ${item.delta.length} bytes)`);
        return { dataset: item.dataset, key: item.key, origin: item.origin, originSeq: item.originSeq, hlc: item.hlc, bytes: item.delta, doc: null, to };
      }
      const doc = decodeDoc(item.delta, `${item.dataset}/${item.key} delta`);
      return { dataset: item.dataset, key: item.key, origin: item.origin, originSeq: item.originSeq, hlc: item.hlc, bytes: item.delta, doc, to };
    } catch (error) {
      if (error instanceof TesseraError && error.code === 'ERR_DELTA_INVALID') throw error;
      throw new TesseraError('ERR_DELTA_INVALID', `${what}: ${(error as Error).message}`, { cause: error });
    }
  });
}


/** Checks a stored audit chain (also used offline on a data directory). */
export async function verifyStoredAudit(db: { iterator(range: object): AsyncIterable<[string, Uint8Array]>; get(key: string): Promise<Uint8Array | undefined> }): Promise<AuditVerdict> {
  const items: Array<{ storedSeq: number; entry: AuditEntry }> = [];
  // What is checked was possibly edited: anything that is not an entry (or a head) is reported, never thrown.
  for await (const [stored, bytes] of db.iterator(auditRange)) {
    let entry: unknown;
    try {
      entry = parseJsonBytes(bytes);
    } catch {
      return { ok: false, entries: items.length + 1, problem: `entry stored at position ${parseAuditKey(stored)} is not readable` };
    }
    if (!isAuditEntry(entry)) {
      return { ok: false, entries: items.length + 1, problem: `entry stored at position ${parseAuditKey(stored)} is not an audit entry (its fields were edited)` };
    }
    items.push({ storedSeq: parseAuditKey(stored), entry });
  }
  const headBytes = await db.get(auditHeadKey);
  if (headBytes === undefined) return verifyAuditChain(items, null);
  let head: unknown;
  try {
    head = parseJsonBytes(headBytes);
  } catch {
    head = undefined;
  }
  if (!isAuditHead(head)) return { ok: false, entries: items.length, problem: 'the head record (the last entry\'s number and hash) is not readable: it was edited' };
  return verifyAuditChain(items, head);
}

/** `ERR_POLICY_DENIED`, naming the regions that may hold the document (`regions` on the error). */
function policyDenied(policy: Policy, facts: DocFacts, region: string, reason: string): TesseraError & { regions: string[] } {
  const regions = [...policy.holders(facts)];
  const error = new TesseraError('ERR_POLICY_DENIED',
    `${facts.dataset}/${facts.key} may not be held in region ${region} under policy v${policy.version} (${reason}); ${regions.length === 0 ? 'no region may hold it' : `it may live in ${regions.join(', ')}`}`);
  return Object.assign(error, { regions });
}

/** `ERR_POLICY_REJECTED` with the indexes of the refused deltas (`rejected` on the error). */
function policyRejected(indexes: number[], message: string): TesseraError & { rejected: number[] } {
  return Object.assign(new TesseraError('ERR_POLICY_REJECTED', message), { rejected: indexes });
}
