/**
 * Group commit. Writers enqueue their batch operations and wait; whenever no LevelDB batch is in flight, all
 * queued operations go down in one atomic batch (with `sync` for fsync durability), and every writer in the
 * group is acknowledged together. One fsync then serves many concurrent writes.
 */
import { assert } from '@tessera/core';
import { type BatchOp } from './storage/port.js';

export type { BatchOp };

/** The storage engine's atomic batch write. */
export type BatchWriter = (ops: BatchOp[], sync: boolean) => Promise<void>;

interface Waiter {
  readonly ops: readonly BatchOp[];
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/** Operations in one group; past it the group is cut and the rest wait for the next batch. */
export const groupOpsMax = 16_384;

/** Queues batch operations and commits them in groups. */
export class GroupCommitter {
  private queue: Waiter[] = [];
  private inFlight: Promise<void> | null = null;
  private failure: Error | null = null;
  /** Batches written and operations in them, for benchmarks and metrics. */
  readonly stats = { batches: 0, ops: 0 };

  /**
   * @param write the engine's batch write
   * @param sync whether each batch is fsynced
   * @param trailer operations appended to every batch (the replica's sequence number and clock)
   * @param onFailure called once when a batch fails; the committer refuses everything afterwards
   */
  constructor(
    private readonly write: BatchWriter,
    private readonly sync: boolean,
    private readonly trailer: () => BatchOp[],
    private readonly onFailure: (error: Error) => void,
  ) {}

  /** Commits `ops` atomically with whatever else is queued; resolves once they are durable. */
  commit(ops: readonly BatchOp[]): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ ops, resolve, reject });
      if (this.inFlight === null) this.inFlight = this.drain();
    });
  }

  /** Resolves when nothing is queued or in flight. */
  async idle(): Promise<void> {
    while (this.inFlight !== null) await this.inFlight;
  }

  private async drain(): Promise<void> {
    // Let writers that are already running in this tick join the first group.
    await Promise.resolve();
    while (this.queue.length > 0 && this.failure === null) {
      const group: Waiter[] = [];
      const ops: BatchOp[] = [];
      while (this.queue.length > 0 && (group.length === 0 || ops.length + this.queue[0]!.ops.length <= groupOpsMax)) {
        const waiter = this.queue.shift()!;
        group.push(waiter);
        ops.push(...waiter.ops);
      }
      ops.push(...this.trailer());
      try {
        await this.write(ops, this.sync);
      } catch (error) {
        this.failure = error as Error;
        for (const waiter of [...group, ...this.queue]) waiter.reject(this.failure);
        this.queue = [];
        this.onFailure(this.failure);
        break;
      }
      this.stats.batches++;
      this.stats.ops += ops.length;
      for (const waiter of group) waiter.resolve();
    }
    assert(this.queue.length === 0 || this.failure !== null, 'drain leaves nothing queued');
    this.inFlight = null;
  }
}
