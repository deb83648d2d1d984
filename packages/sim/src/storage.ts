/**
 * The simulation's storage twin (TigerBeetle's storage simulator is the model): one in-memory engine per node
 * that outlives its processes, seen through a handle per incarnation. A crash kills the handle — every
 * operation of the dead process, in flight or later, never completes — while what was written stays. Writes
 * can be armed to strike a crash at the k-th write of an operation: that write and everything after it never
 * happen (LevelDB batches are atomic: a batch is either whole on disk or absent).
 */
import { type BatchOp, type StoragePort, type StorageRange, memoryStorage } from '@tessera/store';

const never = <T>(): Promise<T> => new Promise<T>(() => undefined);

/** Decides, per write, whether a crash strikes before it (the write then never happens). */
export type WriteHook = () => 'write' | 'strike';

/** A node's disk: survives crashes; `handle()` gives each incarnation its view. */
export class SimDisk {
  private readonly engine: StoragePort;
  private opened = false;
  /** Writes done, for the checks' statistics. */
  writes = 0;

  constructor(name: string) {
    this.engine = memoryStorage(`sim disk of ${name}`);
  }

  /** A view for one incarnation of the node's process. */
  handle(hook: WriteHook): DiskHandle {
    return new DiskHandle(this, this.engine, hook);
  }

  /** Opens the engine once (it stays open across incarnations). */
  async ensureOpen(): Promise<void> {
    if (this.opened) return;
    await this.engine.open();
    this.opened = true;
  }

  /** Closes the engine at the end of a run. */
  async dispose(): Promise<void> {
    if (this.opened) await this.engine.close();
    this.opened = false;
  }
}

/** One incarnation's view of a disk. */
export class DiskHandle implements StoragePort {
  private dead = false;
  readonly description: string;

  constructor(
    private readonly disk: SimDisk,
    private readonly engine: StoragePort,
    private readonly hook: WriteHook,
  ) {
    this.description = engine.description;
  }

  /** The process died: nothing it started or starts completes. */
  kill(): void {
    this.dead = true;
  }

  async open(): Promise<void> {
    if (this.dead) return never();
    await this.disk.ensureOpen();
  }

  async close(): Promise<void> {
    // The engine stays open for the next incarnation; a closed handle is a dead one.
    this.dead = true;
  }

  get(key: string): Promise<Uint8Array | undefined> {
    return this.dead ? never() : this.engine.get(key);
  }

  getMany(keys: readonly string[]): Promise<Array<Uint8Array | undefined>> {
    return this.dead ? never() : this.engine.getMany(keys);
  }

  write(ops: readonly BatchOp[], options: { readonly sync: boolean }): Promise<void> {
    if (this.dead || this.hook() === 'strike') return never();
    this.disk.writes++;
    return this.engine.write(ops, options);
  }

  entries(range: StorageRange): AsyncIterable<[string, Uint8Array]> {
    return this.dead ? deadIterable() : this.engine.entries(range);
  }

  keys(range: StorageRange): AsyncIterable<string> {
    return this.dead ? deadIterable() : this.engine.keys(range);
  }

  clear(range: StorageRange): Promise<void> {
    if (this.dead || this.hook() === 'strike') return never();
    return this.engine.clear(range);
  }

  compact(): Promise<void> {
    return this.dead ? never() : Promise.resolve();
  }
}

function deadIterable<T>(): AsyncIterable<T> {
  return { [Symbol.asyncIterator]: () => ({ next: () => never<IteratorResult<T>>() }) };
}
