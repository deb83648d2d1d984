/**
 * The event queue: a binary heap ordered by (simulated time, sequence). Events at the same millisecond run in
 * the order they were scheduled, so a seed replays the same order whatever the I/O underneath.
 */
import { assert } from '@tessera/core';

/** A scheduled event. */
export interface SimEvent {
  readonly atMs: number;
  readonly seq: number;
  /** What it is, for traces and failure reports. */
  readonly label: string;
  readonly run: () => void | Promise<void>;
}

/** Events pending at once; a run that schedules more is broken (a timer loop). */
export const queueEventsMax = 1_000_000;

/** A min-heap of events. */
export class EventQueue {
  private readonly heap: SimEvent[] = [];
  private seqNext = 0;

  get size(): number {
    return this.heap.length;
  }

  /** Schedules `run` at `atMs`. */
  push(atMs: number, label: string, run: () => void | Promise<void>): void {
    assert(Number.isFinite(atMs), `event ${label} has a finite time`);
    assert(this.heap.length < queueEventsMax, `more than ${queueEventsMax} events pending`);
    const event: SimEvent = { atMs, seq: this.seqNext++, label, run };
    this.heap.push(event);
    let i = this.heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(this.heap[i]!, this.heap[parent]!)) break;
      [this.heap[i], this.heap[parent]] = [this.heap[parent]!, this.heap[i]!];
      i = parent;
    }
  }

  /** The earliest event's time, or null. */
  peekMs(): number | null {
    return this.heap[0]?.atMs ?? null;
  }

  /** Removes and returns the earliest event. */
  pop(): SimEvent | undefined {
    const top = this.heap[0];
    if (top === undefined) return undefined;
    const last = this.heap.pop()!;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.heap.length && before(this.heap[l]!, this.heap[m]!)) m = l;
        if (r < this.heap.length && before(this.heap[r]!, this.heap[m]!)) m = r;
        if (m === i) break;
        [this.heap[i], this.heap[m]] = [this.heap[m]!, this.heap[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.atMs !== b.atMs ? a.atMs < b.atMs : a.seq < b.seq;
}
