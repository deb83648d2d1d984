/**
 * The receiving side of a link, pure: batches queue in arrival order; batches that queued while the previous
 * apply was committing are applied together (one durable commit), then acknowledged one by one, in order, each
 * with the seqs of its entries the receiver's policy refused.
 */
import { assert } from '@tessera/core';
import { type Frame, type WireEntry } from '../protocol.js';

/** A batch or state frame. */
export type DataFrame = Extract<Frame, { t: 'batch' | 'state' }>;

/** Entries joined in one apply when received batches queue up (within applyDeltas' own bound). */
export const applyGroupEntriesMax = 5_000;
/** Delta bytes joined in one apply. */
export const applyGroupBytesMax = 32 * 1024 * 1024;
/** Frames waiting to be applied on one link; past it the link is reset (the sender outruns the window). */
export const receiveQueueFramesMax = 256;

function bytesOf(frame: DataFrame): number {
  return frame.entries.reduce((sum, entry) => sum + entry.delta.length + (entry.head?.length ?? 0), 0);
}

/** The receive queue of one connection. */
export class ReceiveQueue {
  private readonly queue: DataFrame[] = [];
  private group: DataFrame[] | null = null;

  /** Frames waiting or being applied. */
  get size(): number {
    return this.queue.length + (this.group?.length ?? 0);
  }

  /** True while a group is being applied. */
  get applying(): boolean {
    return this.group !== null;
  }

  /** Queues a frame; false when the queue is over its bound (the caller resets the link). */
  push(frame: DataFrame): boolean {
    if (this.queue.length >= receiveQueueFramesMax) return false;
    this.queue.push(frame);
    return true;
  }

  /** The next group of frames to apply (their entries concatenated), or null when busy or empty. */
  take(): { frames: readonly DataFrame[]; entries: readonly WireEntry[] } | null {
    if (this.group !== null || this.queue.length === 0) return null;
    const frames: DataFrame[] = [];
    let entries = 0;
    let bytes = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      const nextBytes = bytesOf(next);
      if (frames.length > 0 && (entries + next.entries.length > applyGroupEntriesMax || bytes + nextBytes > applyGroupBytesMax)) break;
      frames.push(this.queue.shift()!);
      entries += next.entries.length;
      bytes += nextBytes;
    }
    this.group = frames;
    return { frames, entries: frames.flatMap((frame) => frame.entries) };
  }

  /**
   * The group is durable: its acknowledgements, in order, each naming the seqs of its refused entries
   * (`refused`: indexes into the group's concatenated entries).
   */
  applied(refused: readonly number[]): Array<Extract<Frame, { t: 'ack' }>> {
    const frames = this.group;
    assert(frames !== null, 'an apply finished that was not started');
    this.group = null;
    const refusedSet = new Set(refused);
    const acks: Array<Extract<Frame, { t: 'ack' }>> = [];
    let at = 0;
    for (const frame of frames) {
      const seqs: number[] = [];
      for (const entry of frame.entries) {
        if (refusedSet.has(at) && frame.t === 'batch') seqs.push(entry.seq);
        at++;
      }
      acks.push({
        t: 'ack',
        id: frame.id,
        last: frame.last,
        ...(frame.lane === undefined ? {} : { lane: frame.lane }),
        ...(seqs.length === 0 ? {} : { refused: seqs }),
      });
    }
    return acks;
  }

  /** Forgets everything (the connection went away; the sender resends from its cursor). */
  clear(): void {
    this.queue.length = 0;
    this.group = null;
  }
}
