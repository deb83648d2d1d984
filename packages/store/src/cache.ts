/**
 * The document cache: the latest state of recently used documents, and of every document with a write in
 * flight. `state` includes writes still being committed (so the next write builds on them); `committed` is
 * what reads see. Entries in use (`pins`) are never evicted, so a writer that loaded a document can rely on
 * it until it is done.
 */
import { type DocState } from '@tessera/core';

/** A cached document. `null` states mean the document is absent on disk. */
export interface CacheEntry {
  state: DocState | null;
  committed: DocState | null;
  committedSeq: number;
  pins: number;
}

/** Documents kept in memory beyond those in use. */
export const docCacheEntriesMax = 50_000;

/** An LRU of documents with pinning. */
export class DocCache {
  private readonly entries = new Map<string, CacheEntry>();

  constructor(private readonly entriesMax = docCacheEntriesMax) {}

  /** The entry for `key`, refreshed as most recently used. */
  get(key: string): CacheEntry | undefined {
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    return entry;
  }

  /** Inserts an entry loaded from disk, unless one arrived meanwhile; returns the entry to use. */
  insert(key: string, state: DocState | null): CacheEntry {
    const existing = this.entries.get(key);
    if (existing !== undefined) return existing;
    const entry: CacheEntry = { state, committed: state, committedSeq: 0, pins: 0 };
    this.entries.set(key, entry);
    this.evict();
    return entry;
  }

  /** Number of cached documents. */
  get size(): number {
    return this.entries.size;
  }

  private evict(): void {
    if (this.entries.size <= this.entriesMax) return;
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.entriesMax) break;
      if (entry.pins === 0) this.entries.delete(key);
    }
  }
}
