/** The shapes and bounds of `tessera inspect` answers (see inspect/index.ts). */
import { type CrdtTypeName, type Dot, type Hlc, type JsonScalar } from '@tessera/core';
import { type ConflictRecord } from '../types.js';

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
  | {
      readonly key: string;
      readonly type: CrdtTypeName;
      readonly state: 'live' | 'deleted';
      readonly bytes: number;
      readonly tags: readonly string[];
      readonly origin: string | null;
    }
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
      readonly seq: number;
      readonly dataset: string;
      readonly key: string;
      readonly origin: string;
      readonly originSeq: number;
      readonly hlc: Hlc;
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
