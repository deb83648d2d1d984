/**
 * Inspection of a replica's stored state, read straight from the on-disk layout (layout.ts): a summary,
 * keys, one document's internals, the delta log, cursors and frontiers, conflict records.
 *
 * Every function reads through a `StoreReader` and never writes. `tessera inspect <dir>` passes a read-only
 * snapshot of a stopped node's data directory (snapshot.ts); the daemon's inspect routes pass the open
 * replica's records (`Replica.records()`). Both run these same functions, so the CLI prints the same either
 * way. Answers are plain JSON (bytes as base64, no Maps), bounded by the limits below, and say when more
 * exist. A record that does not decode is reported (an item with an error, or a count), never skipped
 * silently and never fatal to the rest of the answer.
 */
import { decodeLogEntry } from './log-entry.js';
import {
  type CrdtTypeName, type DocState, type Dot, type Hlc, type JsonScalar, type MapNode,
  type RegEntry, type SetBody, TesseraError, checkDatasetName, checkKey, compareDots, compareHlc, decodeBounded,
  decodeDoc, docExists, docTags, docValue, expectArray, expectHlc, expectInt, expectNodeId, expectString, docFacts, quarantineHolds,
  type Policy, parsePolicy, quarantineTag, winner,
} from '@tessera/core';
import {
  allDocsRange, auditHeadKey, conflictRange, cursorRange, docKey, docRange, frontierRange, hlcKey, logFloorKey,
  logKey, logRange, metaKey, parseConflictKey, parseCursorKey, parseDocKey, parseLogKey, policyKey, policyRange, policyStateKey,
  seqKey, storeFormatVersion,
} from './layout.js';
import { type ConflictRecord } from './types.js';

/** Default and maximum documents of one `inspectKeys` answer. */
export const inspectKeysLimitDefault = 100;
export const inspectKeysLimitMax = 1_000;
/** Default and maximum entries of one `inspectLog` answer. */
export const inspectLogLimitDefault = 100;
export const inspectLogLimitMax = 1_000;
/** Default and maximum records of one `inspectConflicts` answer. */
export const inspectConflictsLimitDefault = 100;
export const inspectConflictsLimitMax = 1_000;
/** Dots and conflict records listed for one document. */
export const inspectDocDotsMax = 1_000;
export const inspectDocConflictsMax = 100;
/** Cursors and frontiers listed by `inspectPeers` (each). */
export const inspectPeersMax = 1_000;
/** Datasets listed by `inspectSummary`. */
export const summaryDatasetsMax = 1_000;
/**
 * Records of each kind (documents, conflict records, log entries, policy versions) a summary reads. Past the
 * bound its counts cover the first records only, and it says so.
 */
export const summaryScanRecordsDefault = 100_000;
export const summaryScanRecordsMax = 10_000_000;

/** A key range of the store; the same options LevelDB iterators take. */
export interface StoreRange {
  readonly gt?: string;
  readonly gte?: string;
  readonly lt?: string;
  readonly lte?: string;
  readonly limit?: number;
  readonly reverse?: boolean;
}

/** Read access to a replica's records, keys in the layout of layout.ts. It offers no way to write. */
export interface StoreReader {
  get(key: string): Promise<Uint8Array | undefined>;
  iterator(range: StoreRange): AsyncIterable<[string, Uint8Array]>;
  keys(range: StoreRange): AsyncIterable<string>;
}

/** The format record of a data directory. */
export interface StoreMeta {
  readonly format: number;
  readonly node: string;
  readonly region: string;
}

/** What every inspect answer names: the node whose records were read. */
export interface InspectedNode {
  readonly node: string;
  readonly region: string;
}

/** A record that could not be decoded, as answers report it. */
export interface InspectRecordError {
  readonly code: 'ERR_STORE_CORRUPT';
  readonly message: string;
}

/** Per-dataset counts of a summary. */
export interface DatasetSummary {
  readonly dataset: string;
  /** Documents stored (live and deleted). */
  readonly documents: number;
  readonly live: number;
  /** Tombstones: deleted documents whose causal context is kept until every holder has the delete. */
  readonly deleted: number;
  /** Bytes of the stored document states (encoded, without LevelDB overhead). */
  readonly bytes: number;
  /**
   * Live documents the `quarantine` tag keeps in this region under the enforced policy (tagged, and no release
   * rule matches; without a policy nothing is held).
   */
  readonly quarantined: number;
  /** Conflict records. */
  readonly conflicts: number;
  /** Document records that do not decode. */
  readonly corrupt: number;
}

/** A policy version's stamp. */
export interface PolicyStampView {
  readonly version: number;
  readonly hash: string;
}

/** `inspectSummary`'s answer. */
export interface InspectSummary extends InspectedNode {
  readonly format: number;
  /** The latest hybrid logical timestamp this replica issued or observed (null before any write). */
  readonly hlc: Hlc | null;
  readonly datasets: readonly DatasetSummary[];
  /** Datasets past `summaryDatasetsMax`, not listed. */
  readonly datasetsOmitted: number;
  readonly policy: { readonly enforced: PolicyStampView | null; readonly shadow: PolicyStampView | null; readonly versionsStored: number };
  /** The delta log: entries up to `floor` were truncated; `head` is the last sequence number assigned. */
  readonly log: { readonly floor: number; readonly head: number; readonly entries: number };
  readonly audit: { readonly length: number };
  /** `complete` is false when a kind of record had more than `recordsMax` records: counts cover the first ones. */
  readonly scan: { readonly recordsMax: number; readonly complete: boolean };
}

/** One document of `inspectKeys`. */
export type KeyItem =
  | { readonly key: string; readonly type: CrdtTypeName; readonly state: 'live' | 'deleted'; readonly bytes: number; readonly tags: readonly string[]; readonly origin: string | null }
  | { readonly key: string; readonly bytes: number; readonly error: InspectRecordError };

/** `inspectKeys`'s answer. */
export interface InspectKeys extends InspectedNode {
  readonly dataset: string;
  readonly prefix: string;
  readonly items: readonly KeyItem[];
  /** Pass as `after` for the next page; null when there are no more documents. */
  readonly next: string | null;
}

/** A dot the document's state holds, with what it stands for. */
export interface DotView {
  readonly node: string;
  readonly counter: number;
  /** presence: the document exists; tag: a tag's add; value: a register entry (map field, lww/mv value); counter: a node's counter entry; element: a set element's add. */
  readonly role: 'presence' | 'tag' | 'value' | 'counter' | 'element';
  readonly path?: readonly string[];
  readonly tag?: string;
  readonly element?: JsonScalar;
  /** Known for register entries (map fields, lww and mv values). */
  readonly hlc?: Hlc;
}

/** Per node named in a document's causal context. */
export interface ContextNodeView {
  readonly node: string;
  /** The contiguous prefix: every dot 1..seen of this node has been seen. */
  readonly seen: number;
  /** Dots seen beyond the prefix (gaps not yet filled). */
  readonly beyond: number;
  /** Dots of this node the state still holds (the rest were overwritten or removed). */
  readonly held: number;
}

/** Concurrent register entries at one path: all kept, the latest HLC shown (`wins`). */
export interface SiblingsView {
  readonly path: readonly string[];
  readonly entries: ReadonlyArray<{ readonly value: unknown; readonly dot: Dot; readonly hlc: Hlc; readonly wins: boolean }>;
}

/** `inspectDoc`'s answer. */
export interface InspectDoc extends InspectedNode {
  readonly dataset: string;
  readonly key: string;
  readonly type: CrdtTypeName;
  readonly state: 'live' | 'deleted';
  readonly bytes: number;
  /** Null for a deleted document. Bytes (a Yjs state) as base64. */
  readonly value: unknown;
  readonly tags: readonly string[];
  readonly origin: string | null;
  readonly context: { readonly vector: ReadonlyArray<readonly [string, number]>; readonly cloud: readonly Dot[] };
  readonly nodes: readonly ContextNodeView[];
  readonly dots: readonly DotView[];
  /** Dots past `inspectDocDotsMax`, not listed. */
  readonly dotsOmitted: number;
  readonly siblings: readonly SiblingsView[];
  readonly conflicts: readonly ConflictRecord[];
  /** True when more than `inspectDocConflictsMax` conflict records exist. */
  readonly conflictsMore: boolean;
}

/** One delta-log entry of `inspectLog`: sizes, never bytes. */
export type LogItem =
  | {
    readonly seq: number; readonly dataset: string; readonly key: string; readonly origin: string; readonly originSeq: number; readonly hlc: Hlc;
    /** change: a write's delta; state: a document's whole state for regions `to`; purge: a notice without value that regions `to` must drop it. */
    readonly kind: 'change' | 'state' | 'purge';
    readonly to: readonly string[];
    /** Bytes of the encoded delta. */
    readonly bytes: number;
    /** Only when values were asked for: the delta's value and the tags it adds. */
    readonly value?: unknown;
    readonly tags?: readonly string[];
  }
  | { readonly seq: number; readonly bytes: number; readonly error: InspectRecordError };

/** `inspectLog`'s answer. */
export interface InspectLog extends InspectedNode {
  readonly floor: number;
  readonly head: number;
  readonly entries: readonly LogItem[];
  /** Entries exist before the first one listed (within `from`): pass this as `to` to see them; else null. */
  readonly older: number | null;
  /** Entries exist after the last one listed (within `to`): pass this as `from` to see them; else null. */
  readonly newer: number | null;
}

/** `inspectPeers`'s answer: what is durable in the directory (the live links are the daemon's status). */
export interface InspectPeers extends InspectedNode {
  readonly head: number;
  /** Per peer and lane: the last sequence number it acknowledged durably, and how far that is behind the head. */
  readonly cursors: ReadonlyArray<{ readonly peer: string; readonly lane: string; readonly acknowledged: number; readonly behind: number }>;
  /** Per origin node: the highest of its sequence numbers this replica holds. */
  readonly frontiers: ReadonlyArray<{ readonly origin: string; readonly seq: number }>;
  /** True when there are more than `inspectPeersMax` cursors or frontiers (the first ones are listed). */
  readonly more: boolean;
}

/** `inspectConflicts`'s answer. */
export interface InspectConflicts extends InspectedNode {
  readonly dataset: string | null;
  readonly conflicts: readonly ConflictRecord[];
  /** True when more records exist than were listed. */
  readonly more: boolean;
}

const textDecoder = new TextDecoder();

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(textDecoder.decode(bytes));
  } catch (error) {
    throw new TesseraError('ERR_STORE_CORRUPT', `${what} is not readable JSON`, { cause: error });
  }
}

function checkCount(what: string, value: unknown, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) {
    throw new TesseraError('ERR_OPTION_INVALID', `${what} ${String(value)} is outside ${min} to ${max}`);
  }
  return value as number;
}

/** Bytes anywhere in `value` as base64 strings, so that every answer is plain JSON. */
export function jsonSafe(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, jsonSafe(v)]));
  }
  return value;
}

/**
 * Reads and checks the format record. `where` names the directory in messages. Throws `ERR_STORE_FORMAT`
 * for a LevelDB that is not a Tessera replica and for another format version.
 */
export async function readStoreMeta(reader: StoreReader, where: string): Promise<StoreMeta> {
  const bytes = await reader.get(metaKey);
  if (bytes === undefined) {
    for await (const _key of reader.keys({ limit: 1 })) {
      throw new TesseraError('ERR_STORE_FORMAT', `${where} holds a LevelDB that is not a Tessera replica (it has no format record)`);
    }
    throw new TesseraError('ERR_STORE_FORMAT', `${where} holds an empty LevelDB, not a Tessera replica`);
  }
  let meta: Partial<StoreMeta>;
  try {
    meta = JSON.parse(textDecoder.decode(bytes)) as Partial<StoreMeta>;
  } catch {
    throw new TesseraError('ERR_STORE_FORMAT', `${where}: the format record is unreadable`);
  }
  if (meta?.format !== storeFormatVersion) {
    throw new TesseraError('ERR_STORE_FORMAT',
      `${where} has format version ${JSON.stringify(meta?.format)}; this Tessera reads version ${storeFormatVersion}`);
  }
  if (typeof meta.node !== 'string' || typeof meta.region !== 'string') {
    throw new TesseraError('ERR_STORE_FORMAT', `${where}: the format record names no node and region`);
  }
  return { format: meta.format, node: meta.node, region: meta.region };
}

async function node(reader: StoreReader): Promise<InspectedNode> {
  const { node, region } = await readStoreMeta(reader, 'the data directory');
  return { node, region };
}

async function readInt(reader: StoreReader, key: string, what: string): Promise<number> {
  const bytes = await reader.get(key);
  return bytes === undefined ? 0 : expectStoredInt(parseJson(bytes, what), what);
}

function expectStoredInt(value: unknown, what: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) throw new TesseraError('ERR_STORE_CORRUPT', `${what} is not a non-negative integer`);
  return value as number;
}

/** The log's head as the replica recovers it: the stored sequence number, or the last entry if later. */
async function logHead(reader: StoreReader): Promise<number> {
  let head = await readInt(reader, seqKey, 'the stored sequence number');
  for await (const stored of reader.keys({ ...logRange, reverse: true, limit: 1 })) head = Math.max(head, parseLogKey(stored));
  return head;
}

/** A stored policy version, parsed (the replica refuses to open without it, so a missing one is corruption). */
async function storedPolicy(reader: StoreReader, version: number): Promise<Policy> {
  const bytes = await reader.get(policyKey(version));
  if (bytes === undefined) throw new TesseraError('ERR_STORE_CORRUPT', `policy version ${version} is in use but its record is missing`);
  const record = parseJson(bytes, `the record of policy version ${version}`) as { text?: unknown };
  if (typeof record.text !== 'string') throw new TesseraError('ERR_STORE_CORRUPT', `the record of policy version ${version} holds no text`);
  return parsePolicy(record.text, `stored policy v${version}`);
}

function readPolicyStamp(value: unknown): PolicyStampView | null {
  if (value === null || typeof value !== 'object') return null;
  const { version, hash } = value as { version?: unknown; hash?: unknown };
  return typeof version === 'number' && typeof hash === 'string' ? { version, hash } : null;
}

/**
 * Counts per dataset (documents live and deleted, bytes, quarantined, conflict records), the policy in force,
 * the delta log's range and the audit log's length. Reads at most `scanMax` records of each kind.
 */
export async function inspectSummary(reader: StoreReader, options: { scanMax?: number } = {}): Promise<InspectSummary> {
  const scanMax = checkCount('summary: scanMax', options.scanMax ?? summaryScanRecordsDefault, 1, summaryScanRecordsMax);
  const meta = await readStoreMeta(reader, 'the data directory');
  const stateBytes = await reader.get(policyStateKey);
  const state = stateBytes === undefined ? {} : parseJson(stateBytes, 'the policy state record') as { enforce?: unknown; shadow?: unknown };
  const enforced = readPolicyStamp(state.enforce);
  const policy = enforced === null ? null : await storedPolicy(reader, enforced.version);
  let complete = true;
  const datasets = new Map<string, { documents: number; live: number; deleted: number; bytes: number; quarantined: number; conflicts: number; corrupt: number }>();
  const countsOf = (dataset: string) => {
    let counts = datasets.get(dataset);
    if (counts === undefined) datasets.set(dataset, (counts = { documents: 0, live: 0, deleted: 0, bytes: 0, quarantined: 0, conflicts: 0, corrupt: 0 }));
    return counts;
  };
  let scanned = 0;
  for await (const [stored, bytes] of reader.iterator({ ...allDocsRange, limit: scanMax + 1 })) {
    if (++scanned > scanMax) {
      complete = false;
      break;
    }
    const { dataset, key } = parseDocKey(stored);
    const counts = countsOf(dataset);
    counts.documents++;
    counts.bytes += bytes.length;
    let doc: DocState;
    try {
      doc = decodeDoc(bytes, `${dataset}/${key}`);
    } catch {
      counts.corrupt++;
      continue;
    }
    if (!docExists(doc)) {
      counts.deleted++;
      continue;
    }
    counts.live++;
    if (policy !== null && docTags(doc).includes(quarantineTag) && quarantineHolds(policy, docFacts(dataset, key, doc))) counts.quarantined++;
  }
  scanned = 0;
  for await (const stored of reader.keys({ ...conflictRange(), limit: scanMax + 1 })) {
    if (++scanned > scanMax) {
      complete = false;
      break;
    }
    countsOf(parseConflictKey(stored).dataset).conflicts++;
  }
  const floor = await readInt(reader, logFloorKey, 'the stored log floor');
  const head = await logHead(reader);
  let entries = 0;
  for await (const _stored of reader.keys({ gt: logKey(floor), lt: logRange.lt, limit: scanMax + 1 })) {
    if (++entries > scanMax) {
      entries = scanMax;
      complete = false;
      break;
    }
  }
  let versionsStored = 0;
  for await (const _stored of reader.keys({ ...policyRange, limit: scanMax + 1 })) {
    if (++versionsStored > scanMax) {
      versionsStored = scanMax;
      complete = false;
      break;
    }
  }
  const auditBytes = await reader.get(auditHeadKey);
  const auditLength = auditBytes === undefined ? 0 : expectStoredInt((parseJson(auditBytes, 'the audit head') as { seq?: unknown }).seq, 'the audit head');
  const hlcBytes = await reader.get(hlcKey);
  let hlc: Hlc | null = null;
  if (hlcBytes !== undefined) {
    const stored = parseJson(hlcBytes, 'the stored clock');
    if (!Array.isArray(stored) || stored.length !== 2) throw new TesseraError('ERR_STORE_CORRUPT', 'the stored clock is not [ms, counter]');
    hlc = { ms: expectStoredInt(stored[0], 'the stored clock'), c: expectStoredInt(stored[1], 'the stored clock') };
  }
  const names = [...datasets.keys()].sort();
  return {
    node: meta.node, region: meta.region, format: meta.format, hlc,
    datasets: names.slice(0, summaryDatasetsMax).map((dataset) => ({ dataset, ...datasets.get(dataset)! })),
    datasetsOmitted: Math.max(0, names.length - summaryDatasetsMax),
    policy: { enforced, shadow: readPolicyStamp(state.shadow), versionsStored },
    log: { floor, head, entries },
    audit: { length: auditLength },
    scan: { recordsMax: scanMax, complete },
  };
}

/** A page of a dataset's documents in key order — deleted ones too — with type, state, size and tags. */
export async function inspectKeys(reader: StoreReader, dataset: string, options: { prefix?: string; after?: string; limit?: number } = {}): Promise<InspectKeys> {
  checkDatasetName(dataset);
  const prefix = options.prefix ?? '';
  if (prefix !== '') checkKey(prefix);
  if (options.after !== undefined) checkKey(options.after);
  const limit = checkCount('keys: limit', options.limit ?? inspectKeysLimitDefault, 1, inspectKeysLimitMax);
  const named = await node(reader);
  const range = docRange(dataset, prefix);
  const afterKey = options.after === undefined ? undefined : docKey(dataset, options.after);
  const bounds = afterKey !== undefined && afterKey >= range.gte ? { gt: afterKey, lt: range.lt } : range;
  const items: KeyItem[] = [];
  let more = false;
  for await (const [stored, bytes] of reader.iterator({ ...bounds, limit: limit + 1 })) {
    if (items.length === limit) {
      more = true;
      break;
    }
    const { key } = parseDocKey(stored);
    try {
      const doc = decodeDoc(bytes, `${dataset}/${key}`);
      const facts = docFacts(dataset, key, doc);
      items.push({ key, type: doc.type, state: docExists(doc) ? 'live' : 'deleted', bytes: bytes.length, tags: facts.tags, origin: facts.origin });
    } catch (error) {
      items.push({ key, bytes: bytes.length, error: { code: 'ERR_STORE_CORRUPT', message: (error as Error).message } });
    }
  }
  return { ...named, dataset, prefix, items, next: more ? items[items.length - 1]!.key : null };
}

/**
 * One document's internals: value, tags, origin, causal context (per node: seen, beyond, held), the dots its
 * state holds with what they stand for and their HLCs where the type keeps them, concurrent register entries,
 * and its conflict records. A deleted document (a tombstone) is shown with a null value.
 */
export async function inspectDoc(reader: StoreReader, dataset: string, key: string): Promise<InspectDoc> {
  checkDatasetName(dataset);
  checkKey(key);
  const named = await node(reader);
  const bytes = await reader.get(docKey(dataset, key));
  if (bytes === undefined) {
    throw new TesseraError('ERR_DOC_NOT_FOUND',
      `document ${dataset}/${key} is not stored on node ${named.node} (never written or received here, collected after a delete, or purged)`);
  }
  let doc: DocState;
  try {
    doc = decodeDoc(bytes, `${dataset}/${key}`);
  } catch (error) {
    throw new TesseraError('ERR_STORE_CORRUPT', `stored document ${dataset}/${key} is corrupt: ${(error as Error).message}`, { cause: error });
  }
  const exists = docExists(doc);
  const facts = docFacts(dataset, key, doc);
  const context = doc.ctx.toJSON();
  const dots = dotsOf(doc);
  const nodes = new Map<string, { seen: number; beyond: number; held: number }>();
  const nodeOf = (name: string) => {
    let view = nodes.get(name);
    if (view === undefined) nodes.set(name, (view = { seen: 0, beyond: 0, held: 0 }));
    return view;
  };
  for (const [name, max] of context.vector) nodeOf(name).seen = max;
  for (const [name] of context.cloud) nodeOf(name).beyond++;
  for (const dot of dots) nodeOf(dot.node).held++;
  const conflicts: ConflictRecord[] = [];
  let conflictsMore = false;
  for await (const [, record] of reader.iterator({ ...conflictRange(dataset, key), limit: inspectDocConflictsMax + 1 })) {
    if (conflicts.length === inspectDocConflictsMax) {
      conflictsMore = true;
      break;
    }
    conflicts.push(parseJson(record, `a conflict record of ${dataset}/${key}`) as ConflictRecord);
  }
  return {
    ...named, dataset, key, type: doc.type, state: exists ? 'live' : 'deleted', bytes: bytes.length,
    value: exists ? jsonSafe(docValue(doc)) : null,
    tags: facts.tags, origin: facts.origin, context,
    nodes: [...nodes.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, view]) => ({ node: name, ...view })),
    dots: dots.slice(0, inspectDocDotsMax), dotsOmitted: Math.max(0, dots.length - inspectDocDotsMax),
    siblings: siblingsOf(doc), conflicts, conflictsMore,
  };
}

/** Every dot a state holds, sorted, with its role. */
function dotsOf(doc: DocState): DotView[] {
  const out: DotView[] = doc.live.map((dot) => ({ node: dot[0], counter: dot[1], role: 'presence' }));
  for (const { element, dots } of doc.tags.values()) for (const dot of dots) out.push({ node: dot[0], counter: dot[1], role: 'tag', tag: element as string });
  const register = (entries: readonly RegEntry[], path: readonly string[]) => {
    for (const entry of entries) out.push({ node: entry.dot[0], counter: entry.dot[1], role: 'value', path, hlc: entry.hlc });
  };
  switch (doc.type) {
    case 'map':
      walkMap(doc.body as MapNode, [], register);
      break;
    case 'lww':
    case 'mv':
      register(doc.body as readonly RegEntry[], []);
      break;
    case 'counter':
      for (const entry of doc.body as ReadonlyArray<{ dot: Dot }>) out.push({ node: entry.dot[0], counter: entry.dot[1], role: 'counter' });
      break;
    case 'set':
      for (const { element, dots } of (doc.body as SetBody).values()) for (const dot of dots) out.push({ node: dot[0], counter: dot[1], role: 'element', element });
      break;
    default:
      // Yjs and Automerge keep their history inside their own format: the state holds no dots.
      break;
  }
  return out.sort((a, b) => compareDots([a.node, a.counter], [b.node, b.counter]));
}

function walkMap(node: MapNode, path: readonly string[], visit: (entries: readonly RegEntry[], path: readonly string[]) => void): void {
  if (node.entries.length > 0) visit(node.entries, path);
  for (const name of [...node.fields.keys()].sort()) walkMap(node.fields.get(name)!, [...path, name], visit);
}

/** Register entries kept side by side (concurrent writes), per path. */
function siblingsOf(doc: DocState): SiblingsView[] {
  const out: SiblingsView[] = [];
  const visit = (entries: readonly RegEntry[], path: readonly string[]) => {
    if (entries.length < 2) return;
    const best = winner(entries)!;
    out.push({
      path,
      entries: [...entries].sort((a, b) => compareHlc(b.hlc, a.hlc) || compareDots(b.dot, a.dot))
        .map((entry) => ({ value: jsonSafe(entry.value), dot: entry.dot, hlc: entry.hlc, wins: entry === best })),
    });
  };
  if (doc.type === 'map') walkMap(doc.body as MapNode, [], visit);
  if (doc.type === 'lww' || doc.type === 'mv') visit(doc.body as readonly RegEntry[], []);
  return out;
}

/**
 * Delta-log entries with `from` ≤ seq ≤ `to`: from `from` onwards when it is given, else the newest ones up to
 * `to` (the head by default). Sizes only; with `values`, each delta's value and the tags it adds.
 */
export async function inspectLog(reader: StoreReader, options: { from?: number; to?: number; limit?: number; values?: boolean } = {}): Promise<InspectLog> {
  const from = options.from === undefined ? undefined : checkCount('log: from', options.from, 0, Number.MAX_SAFE_INTEGER);
  const to = options.to === undefined ? undefined : checkCount('log: to', options.to, 0, Number.MAX_SAFE_INTEGER);
  if (from !== undefined && to !== undefined && from > to) throw new TesseraError('ERR_OPTION_INVALID', `log: from ${from} is after to ${to}`);
  const limit = checkCount('log: limit', options.limit ?? inspectLogLimitDefault, 1, inspectLogLimitMax);
  const named = await node(reader);
  const floor = await readInt(reader, logFloorKey, 'the stored log floor');
  const head = await logHead(reader);
  // Entries at or below the floor were truncated (a crash during truncation can leave some: skip them too).
  const lower = { gt: logKey(Math.max(floor, (from ?? 0) - 1)) };
  const upper = to === undefined ? { lt: logRange.lt } : { lte: logKey(to) };
  const forward = from !== undefined;
  const found: Array<[string, Uint8Array]> = [];
  for await (const item of reader.iterator({ ...lower, ...upper, limit: limit + 1, reverse: !forward })) found.push(item);
  const more = found.length > limit;
  const page = found.slice(0, limit);
  if (!forward) page.reverse();
  const entries = page.map(([stored, bytes]) => logItem(parseLogKey(stored), bytes, options.values === true));
  const first = entries[0]?.seq;
  const last = entries[entries.length - 1]?.seq;
  return {
    ...named, floor, head, entries,
    older: !forward && more && first !== undefined ? first - 1 : null,
    newer: forward && more && last !== undefined ? last + 1 : null,
  };
}

/** Decodes a delta-log entry as replica.ts encodes it: [dataset, key, origin, originSeq, [ms, c], delta, kind?, to?]. */
function logItem(seq: number, bytes: Uint8Array, values: boolean): LogItem {
  try {
    const entry = decodeLogEntry(seq, bytes);
    if (!(entry.delta instanceof Uint8Array)) throw new TesseraError('ERR_DECODE', 'delta is not bytes');
    const item = {
      seq, dataset: entry.dataset, key: entry.key, origin: entry.origin, originSeq: entry.originSeq, hlc: entry.hlc,
      kind: entry.kind ?? ('change' as const), to: entry.to ?? [], bytes: entry.delta.length,
    };
    if (!values || item.kind === 'purge') return item;
    const doc = decodeDoc(entry.delta, `log entry ${seq} delta`);
    return { ...item, value: jsonSafe(docValue(doc)), tags: docFacts(item.dataset, item.key, doc).tags };
  } catch (error) {
    const message = (error as Error).message;
    return { seq, bytes: bytes.length, error: { code: 'ERR_STORE_CORRUPT', message: message.startsWith('delta-log entry') ? message : `delta-log entry ${seq} is corrupt: ${message}` } };
  }
}

/** Durable cursors per peer and lane, and frontiers per origin. */
export async function inspectPeers(reader: StoreReader): Promise<InspectPeers> {
  const named = await node(reader);
  const head = await logHead(reader);
  let more = false;
  const cursors: Array<InspectPeers['cursors'][number]> = [];
  for await (const [stored, bytes] of reader.iterator({ ...cursorRange, limit: inspectPeersMax + 1 })) {
    if (cursors.length === inspectPeersMax) {
      more = true;
      break;
    }
    const { peer, lane } = parseCursorKey(stored);
    const acknowledged = expectStoredInt(parseJson(bytes, `the cursor of ${peer}`), `the cursor of ${peer}`);
    cursors.push({ peer, lane, acknowledged, behind: Math.max(0, head - acknowledged) });
  }
  const frontiers: Array<InspectPeers['frontiers'][number]> = [];
  for await (const [stored, bytes] of reader.iterator({ ...frontierRange, limit: inspectPeersMax + 1 })) {
    if (frontiers.length === inspectPeersMax) {
      more = true;
      break;
    }
    const origin = stored.slice(frontierRange.gte.length);
    frontiers.push({ origin, seq: expectStoredInt(parseJson(bytes, `the frontier of ${origin}`), `the frontier of ${origin}`) });
  }
  return { ...named, head, cursors, frontiers, more };
}

/** Conflict records, all or of one dataset, in key order. */
export async function inspectConflicts(reader: StoreReader, options: { dataset?: string; limit?: number } = {}): Promise<InspectConflicts> {
  if (options.dataset !== undefined) checkDatasetName(options.dataset);
  const limit = checkCount('conflicts: limit', options.limit ?? inspectConflictsLimitDefault, 1, inspectConflictsLimitMax);
  const named = await node(reader);
  const conflicts: ConflictRecord[] = [];
  let more = false;
  for await (const [stored, bytes] of reader.iterator({ ...conflictRange(options.dataset), limit: limit + 1 })) {
    if (conflicts.length === limit) {
      more = true;
      break;
    }
    const { dataset, key } = parseConflictKey(stored);
    conflicts.push(parseJson(bytes, `a conflict record of ${dataset}/${key}`) as ConflictRecord);
  }
  return { ...named, dataset: options.dataset ?? null, conflicts, more };
}
