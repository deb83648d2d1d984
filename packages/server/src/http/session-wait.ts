/**
 * Session tokens (DESIGN §5): a read that presents a token waits, up to a bound, until this node's copy of the
 * document holds the write the token names. It wakes on the replica's change events (one listener for all
 * waiting reads), on replication's own `waitFor` when it has one, on abort (client gone, drain) or on a poll.
 */
import { performance } from 'node:perf_hooks';
import { type Dot } from '@tessera/core';
import { type ChangeEvent, type Replica } from '@tessera/store';
import { type Replication } from './context.js';

/** Default and upper bound of a token-carrying read's wait. */
export const readTokenWaitMsDefault = 5_000;
/** How often a waiting read re-checks the store when no replication hook is given (it also wakes on changes). */
export const readTokenPollMs = 20;
/** Reads waiting for a token at once; past this, a read answers from what the node holds now. */
export const tokenWaitersMax = 10_000;

/** The waits of one API. */
export class SessionWaits {
  private readonly byDoc = new Map<string, Set<() => void>>();
  private count = 0;
  private readonly listener = (change: ChangeEvent) => {
    for (const wake of this.byDoc.get(docId(change.dataset, change.key)) ?? []) wake();
  };

  constructor(
    private readonly replica: Replica,
    private readonly replication: Replication | undefined,
  ) {}

  /** True once this node's copy of (dataset, key) holds `dot`; false after `waitMs` or when `signal` aborts. */
  async waitForDot(dataset: string, key: string, dot: Dot, waitMs: number, signal: AbortSignal): Promise<boolean> {
    const holds = async () => (await this.replica.state(dataset, key))?.ctx.has(dot) ?? false;
    if (await holds()) return true;
    if (waitMs === 0 || signal.aborted || this.count >= tokenWaitersMax) return false;
    const waitFor = this.replication?.waitFor;
    if (waitFor !== undefined) {
      const arrived = await abortable(waitFor.call(this.replication, dataset, key, dot, Date.now() + waitMs), signal, false);
      // Confirm in the store: the answer must show what the token promised.
      return arrived && (await holds());
    }
    const deadlineMs = performance.now() + waitMs;
    let wake: (() => void) | null = null;
    const unsubscribe = this.add(dataset, key, () => wake?.());
    const onAbort = () => wake?.();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      // Bounded by the deadline; wakes on a change to the document, on abort, or every `readTokenPollMs`.
      for (;;) {
        const remainingMs = deadlineMs - performance.now();
        if (remainingMs <= 0 || signal.aborted) return false;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, Math.min(readTokenPollMs, remainingMs));
          function done() {
            clearTimeout(timer);
            wake = null;
            resolve();
          }
          wake = done;
        });
        if (await holds()) return true;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      unsubscribe();
    }
  }

  private add(dataset: string, key: string, wake: () => void): () => void {
    const id = docId(dataset, key);
    let set = this.byDoc.get(id);
    if (set === undefined) this.byDoc.set(id, (set = new Set()));
    set.add(wake);
    if (this.count++ === 0) this.replica.on('change', this.listener);
    return () => {
      set!.delete(wake);
      if (set!.size === 0) this.byDoc.delete(id);
      if (--this.count === 0) this.replica.off('change', this.listener);
    };
  }
}

function docId(dataset: string, key: string): string {
  // Keys cannot contain control characters, so NUL separates unambiguously.
  return `${dataset}\u0000${key}`;
}

/** `promise`, or `fallback` as soon as `signal` aborts. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal, fallback: T): Promise<T> {
  if (signal.aborted) return Promise.resolve(fallback);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => resolve(fallback);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
