/**
 * Storage adapters over abstract-level engines: `classic-level` (LevelDB, production) and `memory-level`
 * (tests, the simulation, and apps that embed a replica in their own tests).
 */
import { mkdir } from 'node:fs/promises';
import { ClassicLevel } from 'classic-level';
import { MemoryLevel } from 'memory-level';
import { TesseraError } from '@tessera/core';
import { type BatchOp, type StoragePort, type StorageRange } from './port.js';

/** What the adapter needs of an abstract-level database (string keys, byte values). */
interface LevelLike {
  open(): Promise<void>;
  close(): Promise<void>;
  get(key: string): Promise<Uint8Array | undefined>;
  getMany(keys: string[]): Promise<Array<Uint8Array | undefined>>;
  batch(ops: BatchOp[], options?: { sync?: boolean }): Promise<void>;
  iterator(range: StorageRange): AsyncIterable<[string, Uint8Array]>;
  keys(range: StorageRange): AsyncIterable<string>;
  clear(range: StorageRange): Promise<void>;
}

class LevelStorage implements StoragePort {
  private instance: LevelLike | null = null;

  /**
   * @param create makes the database object; called on the first `open` only (an abstract-level database
   *   starts opening when it is constructed, so nothing is constructed before the options are checked)
   */
  constructor(
    readonly description: string,
    private readonly create: () => Promise<{ db: LevelLike; compactRange: ((start: string, end: string) => Promise<void>) | null }>,
  ) {}

  private compactRange: ((start: string, end: string) => Promise<void>) | null = null;

  private get db(): LevelLike {
    if (this.instance === null) throw new TesseraError('ERR_STORE_CLOSED', `${this.description} is not open`);
    return this.instance;
  }

  async open(): Promise<void> {
    if (this.instance === null) {
      const made = await this.create();
      this.instance = made.db;
      this.compactRange = made.compactRange;
    }
    try {
      await this.db.open();
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new TesseraError('ERR_STORE_LOCKED', `${this.description} is in use by another process`, { cause: error });
      }
      throw new TesseraError('ERR_STORE_IO', `${this.description} could not be opened: ${(error as Error).message}`, { cause: error });
    }
  }

  close(): Promise<void> {
    return this.db.close();
  }

  get(key: string): Promise<Uint8Array | undefined> {
    return this.db.get(key);
  }

  getMany(keys: readonly string[]): Promise<Array<Uint8Array | undefined>> {
    return this.db.getMany([...keys]);
  }

  write(ops: readonly BatchOp[], options: { readonly sync: boolean }): Promise<void> {
    return this.db.batch([...ops], { sync: options.sync });
  }

  entries(range: StorageRange): AsyncIterable<[string, Uint8Array]> {
    return this.db.iterator(range);
  }

  keys(range: StorageRange): AsyncIterable<string> {
    return this.db.keys(range);
  }

  clear(range: StorageRange): Promise<void> {
    return this.db.clear(range);
  }

  async compact(range?: { readonly gte: string; readonly lt: string }): Promise<void> {
    if (this.compactRange === null) return;
    void this.db;
    // LevelDB compacts [start, end] inclusive; U+10FFFF sorts after every key the layout writes.
    await this.compactRange(range?.gte ?? '', range?.lt ?? '\u{10ffff}');
  }
}

/** A LevelDB data directory at `path` (created if missing). */
export function levelStorage(path: string): StoragePort {
  return new LevelStorage(`data directory ${path}`, async () => {
    await mkdir(path, { recursive: true, mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
      throw new TesseraError('ERR_STORE_IO', `data directory ${path}: ${error.code ?? error.message}`, { cause: error });
    });
    const db = new ClassicLevel<string, Uint8Array>(path, { keyEncoding: 'utf8', valueEncoding: 'view' });
    return { db: db as unknown as LevelLike, compactRange: (start, end) => db.compactRange(start, end) };
  });
}

/** An in-memory engine: its content lives as long as the object (closing and reopening keeps it). */
export function memoryStorage(name = 'memory'): StoragePort {
  return new LevelStorage(name, async () => ({
    db: new MemoryLevel<string, Uint8Array>({ keyEncoding: 'utf8', valueEncoding: 'view' }) as unknown as LevelLike,
    compactRange: null,
  }));
}
