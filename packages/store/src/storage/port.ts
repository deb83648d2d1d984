/**
 * The storage port: what the replica needs from a key-value engine, and no more (Kysely's `Driver` is the
 * model). Keys are UTF-8 strings in byte order, values bytes. Production uses LevelDB (`classic-level`), tests
 * an in-memory engine, and the simulation a twin that injects crashes, failures and latency (packages/sim).
 * One contract suite (test/storage-contract.test.ts) runs over every adapter.
 */

/** One operation of an atomic batch. */
export type BatchOp = { readonly type: 'put'; readonly key: string; readonly value: Uint8Array } | { readonly type: 'del'; readonly key: string };

/** A key range: bounds as in abstract-level, an optional limit and direction. */
export interface StorageRange {
  readonly gt?: string;
  readonly gte?: string;
  readonly lt?: string;
  readonly lte?: string;
  readonly limit?: number;
  readonly reverse?: boolean;
}

/** A key-value engine as the replica uses it. */
export interface StoragePort {
  /** What backs it, for messages (`leveldb <path>`, `memory`). */
  readonly description: string;
  /** Opens the engine; throws `ERR_STORE_LOCKED` when another process holds it, `ERR_STORE_IO` otherwise. */
  open(): Promise<void>;
  /** Closes the engine; what was written stays (a memory engine keeps it for the next `open`). */
  close(): Promise<void>;
  get(key: string): Promise<Uint8Array | undefined>;
  /** Many reads in one call: as cheap as a few single reads in LevelDB. */
  getMany(keys: readonly string[]): Promise<Array<Uint8Array | undefined>>;
  /** Applies `ops` atomically; with `sync` the batch survives power loss once this resolves. */
  write(ops: readonly BatchOp[], options: { readonly sync: boolean }): Promise<void>;
  /** Key-value pairs of a range, in key order (or reversed). */
  entries(range: StorageRange): AsyncIterable<[string, Uint8Array]>;
  /** Keys of a range, in key order (or reversed). */
  keys(range: StorageRange): AsyncIterable<string>;
  /** Deletes every key of a range. */
  clear(range: StorageRange): Promise<void>;
  /**
   * Rewrites the engine's files so that records deleted in `range` (everything when absent) no longer appear
   * in them. A no-op for engines without files.
   */
  compact(range?: { readonly gte: string; readonly lt: string }): Promise<void>;
}
