/**
 * One link's cadence controller. It decides how many batches may be unacknowledged (the window) and whether
 * the rate limit lets the next batch go. Pure: time comes in as an argument.
 *
 * - Idle link: the window is open, so a write is flushed at once (lowest lag).
 * - Under load: the window fills; entries accumulate meanwhile and the next batch carries them all, so batches
 *   grow with load (throughput) without any timer.
 * - Congestion: additive increase of the window per acknowledged batch while the round-trip time stays near its
 *   floor; multiplicative decrease when it rises well above it (the peer or the path is backing up).
 * - Rate limit: a token bucket on bytes/s and entries/s; a batch waits for tokens, never exceeds them.
 */
import { assert } from '@tessera/core';

/** Bounds of the unacknowledged-batch window. */
export const windowBatchesMin = 1;
export const windowBatchesMax = 64;
/** The window starts here: a new link may have this many batches unacknowledged. */
export const windowBatchesInitial = 8;
/**
 * While batches are in flight, a small batch waits up to this long for more entries (an idle link still
 * flushes at once): under load, fewer and larger batches cost less CPU per entry at both ends.
 */
export const coalesceMs = 5;
/** A batch with at least this many entries is not small: it goes without waiting. */
export const coalesceEntriesMin = 64;
/** Bytes of deltas unacknowledged on one link, whatever the window says. */
export const inflightBytesMax = 8 * 1024 * 1024;
/** RTT above this multiple of the floor counts as congestion. */
export const rttCongestionFactor = 2;
/** The RTT floor forgets old samples slowly, so a route change is eventually accepted as the new normal. */
export const rttFloorDecay = 1.01;

/** Rate limits of a link (null = unlimited). */
export interface RateLimits {
  readonly bytesPerSecondMax: number | null;
  readonly entriesPerSecondMax: number | null;
}

/** A token bucket refilled continuously; capacity is one second of rate. */
class TokenBucket {
  private tokens: number;
  private refilledAtMs: number;

  constructor(
    private readonly ratePerSecond: number,
    nowMs: number,
  ) {
    assert(ratePerSecond > 0, 'a bucket has a positive rate');
    this.tokens = ratePerSecond;
    this.refilledAtMs = nowMs;
  }

  private refill(nowMs: number): void {
    const elapsedMs = Math.max(0, nowMs - this.refilledAtMs);
    this.tokens = Math.min(this.ratePerSecond, this.tokens + (elapsedMs / 1000) * this.ratePerSecond);
    this.refilledAtMs = nowMs;
  }

  /** Milliseconds until `amount` tokens are available (0 = now). Amounts above capacity wait for a full bucket. */
  waitMs(amount: number, nowMs: number): number {
    this.refill(nowMs);
    const needed = Math.min(amount, this.ratePerSecond);
    return this.tokens >= needed ? 0 : Math.ceil(((needed - this.tokens) / this.ratePerSecond) * 1000);
    // (An amount above capacity waits for a full bucket, then `take` leaves the rest as debt.)
  }

  /** Takes `amount` tokens; a single item larger than the bucket leaves a debt that later waits repay. */
  take(amount: number, nowMs: number): void {
    this.refill(nowMs);
    this.tokens -= amount;
  }

  /** The most one batch may carry: a bucket's worth. */
  get capacity(): number {
    return this.ratePerSecond;
  }

  get available(): number {
    return this.tokens;
  }
}

/** How long a lane held back by a higher-priority lane waits before asking the gate again. */
export const priorityRetryMs = 10;

/**
 * A link's rate limit, shared by its lanes (one lane per group of datasets). Under the limit, a lane of lower
 * priority (a higher number) gets no tokens while a lane of higher priority is waiting for them.
 */
export class RateGate {
  private readonly bytes: TokenBucket | null;
  private readonly entries: TokenBucket | null;
  private readonly waiting = new Set<number>();

  constructor(limits: RateLimits, nowMs: number) {
    this.bytes = limits.bytesPerSecondMax === null ? null : new TokenBucket(limits.bytesPerSecondMax, nowMs);
    this.entries = limits.entriesPerSecondMax === null ? null : new TokenBucket(limits.entriesPerSecondMax, nowMs);
  }

  /** Milliseconds until a batch of this size may go for a lane of `priority` (0 = now). */
  admitWaitMs(bytes: number, entries: number, nowMs: number, priority: number): number {
    for (const other of this.waiting) if (other < priority) return priorityRetryMs;
    const waitMs = Math.max(this.bytes?.waitMs(bytes, nowMs) ?? 0, this.entries?.waitMs(entries, nowMs) ?? 0);
    if (waitMs > 0) this.waiting.add(priority);
    return waitMs;
  }

  /** Charges a batch that is being sent by a lane of `priority`. */
  charge(bytes: number, entries: number, nowMs: number, priority: number): void {
    this.waiting.delete(priority);
    this.bytes?.take(bytes, nowMs);
    this.entries?.take(entries, nowMs);
  }

  /** A lane of `priority` no longer waits (it has nothing to send, or its link closed). */
  release(priority: number): void {
    this.waiting.delete(priority);
  }

  /** The largest batch the limits allow in one go (bytes, entries); null = no limit. */
  batchCaps(): { bytes: number | null; entries: number | null } {
    return { bytes: this.bytes?.capacity ?? null, entries: this.entries?.capacity ?? null };
  }
}

/**
 * The controller of one lane of a link. A lane obeys the link's rate limit (shared with the other lanes) and,
 * when its datasets have one in the policy, its own.
 */
export class CadenceController {
  private window = windowBatchesInitial;
  private rttFloorMs: number | null = null;
  private rttLastMs: number | null = null;
  private readonly gate: RateGate;
  private readonly own: RateGate | null;

  constructor(
    limits: RateLimits | RateGate,
    nowMs: number,
    private readonly priority = 0,
    laneLimits: RateLimits | null = null,
  ) {
    this.gate = limits instanceof RateGate ? limits : new RateGate(limits, nowMs);
    this.own = laneLimits === null ? null : new RateGate(laneLimits, nowMs);
  }

  /** Unacknowledged batches allowed now. */
  get windowBatches(): number {
    return this.window;
  }

  /** The last and the lowest round-trip times seen, in ms. */
  get rtt(): { lastMs: number | null; floorMs: number | null } {
    return { lastMs: this.rttLastMs, floorMs: this.rttFloorMs };
  }

  /** Milliseconds until the rate limits admit a batch of this size (0 = now). */
  admitWaitMs(bytes: number, entries: number, nowMs: number): number {
    // The lane's own limit first: a lane waiting for its own tokens must not hold the link's other lanes back.
    const ownWaitMs = this.own?.admitWaitMs(bytes, entries, nowMs, this.priority) ?? 0;
    if (ownWaitMs > 0) return ownWaitMs;
    return this.gate.admitWaitMs(bytes, entries, nowMs, this.priority);
  }

  /** The largest batch the rate limits allow in one go (bytes, entries); null = no limit. */
  batchCaps(): { bytes: number | null; entries: number | null } {
    const link = this.gate.batchCaps();
    const own = this.own?.batchCaps() ?? { bytes: null, entries: null };
    const min = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.min(a, b));
    return { bytes: min(link.bytes, own.bytes), entries: min(link.entries, own.entries) };
  }

  /** Charges a batch that is being sent. */
  charge(bytes: number, entries: number, nowMs: number): void {
    this.own?.charge(bytes, entries, nowMs, this.priority);
    this.gate.charge(bytes, entries, nowMs, this.priority);
  }

  /** Nothing waits for tokens any more (the lane closed or has nothing pending). */
  release(): void {
    this.own?.release(this.priority);
    this.gate.release(this.priority);
  }

  /** A batch was acknowledged after `rttMs`: grow the window, or shrink it on congestion. */
  onAck(rttMs: number): void {
    assert(rttMs >= 0, 'round-trip time is not negative');
    this.rttLastMs = rttMs;
    this.rttFloorMs = this.rttFloorMs === null ? rttMs : Math.min(rttMs, this.rttFloorMs * rttFloorDecay);
    if (rttMs > Math.max(1, this.rttFloorMs) * rttCongestionFactor) {
      this.window = Math.max(windowBatchesMin, Math.floor(this.window / 2));
    } else {
      this.window = Math.min(windowBatchesMax, this.window + 1);
    }
  }

  /** The link dropped: start again conservatively. */
  onReset(): void {
    this.window = windowBatchesInitial;
  }
}

/** Reconnect back-off bounds. */
export const backoffMsMin = 100;
export const backoffMsMax = 10_000;

/** Exponential back-off with full jitter: uniform in [0, min(max, min·2^attempt)]. `random` is in [0, 1). */
export function backoffMs(attempt: number, random: number): number {
  const ceiling = Math.min(backoffMsMax, backoffMsMin * 2 ** Math.min(attempt, 20));
  return Math.floor(random * ceiling);
}
