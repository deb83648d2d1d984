/**
 * Hybrid logical clock (Kulkarni et al.). A timestamp is wall milliseconds plus a logical counter; it never
 * goes backwards and it moves past every timestamp it observes, so a write that saw another write gets a
 * later timestamp even when wall clocks are skewed. Timestamps only order *concurrent* writes; causality is
 * decided by dots (see context.ts). The clock takes wall time as an argument: core does no I/O.
 */
import { assert } from './assert.js';

/** A hybrid logical timestamp: wall milliseconds and a logical counter. */
export interface Hlc {
  readonly ms: number;
  readonly c: number;
}

/** The logical counter's bound; past it the clock borrows one millisecond. */
export const hlcCounterMax = 0xffff;

/** The zero timestamp. */
export const hlcZero: Hlc = { ms: 0, c: 0 };

/**
 * The latest wall time a timestamp from another node may carry: the end of year 9999. A clock that observed a
 * timestamp near `Number.MAX_SAFE_INTEGER` would issue ones no safe integer holds (the counter's carry adds a
 * millisecond), which every peer refuses: one bad entry from one peer stopped replication from each node it
 * reached. Below this bound, carries cannot reach the safe-integer limit in any realistic number of writes.
 */
export const hlcRemoteMsMax = 253_402_300_799_999;

/** Total order on timestamps. */
export function compareHlc(a: Hlc, b: Hlc): number {
  return a.ms !== b.ms ? a.ms - b.ms : a.c - b.c;
}

/** The later of two timestamps. */
export function maxHlc(a: Hlc, b: Hlc): Hlc {
  return compareHlc(a, b) >= 0 ? a : b;
}

/** True for a well-formed timestamp (used when decoding untrusted input). */
export function isHlc(value: unknown): value is Hlc {
  if (typeof value !== 'object' || value === null) return false;
  const { ms, c } = value as Hlc;
  return Number.isSafeInteger(ms) && ms >= 0 && Number.isSafeInteger(c) && c >= 0 && c <= hlcCounterMax;
}

/** One node's hybrid logical clock. */
export class HlcClock {
  private last: Hlc;

  constructor(last: Hlc = hlcZero) {
    assert(isHlc(last), 'initial HLC is well formed');
    this.last = last;
  }

  /** The latest timestamp issued or observed. */
  get latest(): Hlc {
    return this.last;
  }

  /** Issues a timestamp for a local event at wall time `wallMs`. */
  now(wallMs: number): Hlc {
    assert(Number.isSafeInteger(wallMs) && wallMs >= 0, 'wall time is a non-negative integer');
    if (wallMs > this.last.ms) {
      this.last = { ms: wallMs, c: 0 };
    } else if (this.last.c < hlcCounterMax) {
      this.last = { ms: this.last.ms, c: this.last.c + 1 };
    } else {
      this.last = { ms: this.last.ms + 1, c: 0 };
    }
    return this.last;
  }

  /**
   * Moves the clock past a timestamp received from another node. One past `hlcRemoteMsMax` is not followed:
   * the decoders refuse such timestamps, and a clock pushed there could no longer issue valid ones.
   */
  observe(remote: Hlc): void {
    if (remote.ms > hlcRemoteMsMax) return;
    if (compareHlc(remote, this.last) > 0) this.last = remote;
  }
}
