/**
 * Dots and causal contexts. A dot `(node, counter)` names one event; a causal context is the set of dots a
 * document has seen, kept compact as a per-node contiguous prefix (a version vector) plus a cloud of dots
 * beyond each prefix (gaps from out-of-order delivery). When the gaps fill, the cloud folds into the vector.
 */
import { assert } from './assert.js';

/** One event: the `counter`-th event at `node` on this document. */
export type Dot = readonly [node: string, counter: number];

/** A string key for a dot (node ids cannot contain '@'). */
export function dotKey(dot: Dot): string {
  return `${dot[0]}@${dot[1]}`;
}

/** Total order on dots: by node id, then counter. */
export function compareDots(a: Dot, b: Dot): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  return a[1] - b[1];
}

/** True when the two dots are the same event. */
export function sameDot(a: Dot, b: Dot): boolean {
  return a[0] === b[0] && a[1] === b[1];
}

/** A compact set of dots. Mutable; `clone` before sharing. */
export class CausalContext {
  /** node → highest counter of the contiguous prefix 1..n. */
  private readonly vector = new Map<string, number>();
  /** node → counters seen beyond the prefix. */
  private readonly cloud = new Map<string, Set<number>>();

  /** Builds a context from a vector and cloud (as produced by `toJSON`); normalises them. */
  static from(vector: Iterable<readonly [string, number]>, cloud: Iterable<Dot> = []): CausalContext {
    const ctx = new CausalContext();
    for (const [node, max] of vector) {
      assert(Number.isSafeInteger(max) && max >= 0, 'vector counter is a non-negative integer');
      if (max > (ctx.vector.get(node) ?? 0)) ctx.vector.set(node, max);
    }
    for (const dot of cloud) ctx.add(dot);
    for (const node of ctx.cloud.keys()) ctx.compact(node);
    return ctx;
  }

  /** True if the context has seen `dot`. */
  has(dot: Dot): boolean {
    const [node, counter] = dot;
    if (counter <= (this.vector.get(node) ?? 0)) return true;
    return this.cloud.get(node)?.has(counter) ?? false;
  }

  /** Adds one dot. */
  add(dot: Dot): void {
    const [node, counter] = dot;
    assert(Number.isSafeInteger(counter) && counter >= 1, 'dot counter is a positive integer');
    const max = this.vector.get(node) ?? 0;
    if (counter <= max) return;
    if (counter === max + 1) {
      this.vector.set(node, counter);
      this.compact(node);
      return;
    }
    let gaps = this.cloud.get(node);
    if (gaps === undefined) this.cloud.set(node, (gaps = new Set()));
    gaps.add(counter);
  }

  /** Adds every dot of `other`. */
  merge(other: CausalContext): void {
    for (const [node, max] of other.vector) {
      if (max > (this.vector.get(node) ?? 0)) this.vector.set(node, max);
    }
    for (const [node, gaps] of other.cloud) {
      for (const counter of gaps) this.add([node, counter]);
    }
    for (const node of other.vector.keys()) this.compact(node);
  }

  /** The highest counter of `node` seen (contiguous or not); 0 when none. */
  maxCounter(node: string): number {
    let max = this.vector.get(node) ?? 0;
    for (const counter of this.cloud.get(node) ?? []) if (counter > max) max = counter;
    return max;
  }

  /** The next dot `node` issues on this document: one past everything seen from it. */
  next(node: string): Dot {
    return [node, this.maxCounter(node) + 1];
  }

  /** True if every dot of `other` is in this context. */
  includes(other: CausalContext): boolean {
    for (const [node, max] of other.vector) {
      const own = this.vector.get(node) ?? 0;
      if (max > own) {
        for (let counter = own + 1; counter <= max; counter++) if (!this.has([node, counter])) return false;
      }
    }
    for (const [node, gaps] of other.cloud) {
      for (const counter of gaps) if (!this.has([node, counter])) return false;
    }
    return true;
  }

  /** True if some dot is in both contexts. */
  overlaps(other: CausalContext): boolean {
    for (const [node, max] of this.vector) {
      // This context holds 1..max of node: any dot of node the other holds at or below max is shared.
      if ((other.vector.get(node) ?? 0) >= 1) return true;
      for (const counter of other.cloud.get(node) ?? []) if (counter <= max) return true;
    }
    for (const [node, gaps] of this.cloud) for (const counter of gaps) if (other.has([node, counter])) return true;
    return false;
  }

  /** True when no dot has been seen. */
  get isEmpty(): boolean {
    return this.vector.size === 0 && this.cloud.size === 0;
  }

  /** Number of nodes named and number of cloud dots (for bounds checks). */
  get size(): { nodes: number; cloudDots: number } {
    const nodes = new Set([...this.vector.keys(), ...this.cloud.keys()]).size;
    let cloudDots = 0;
    for (const gaps of this.cloud.values()) cloudDots += gaps.size;
    return { nodes, cloudDots };
  }

  /** A deep copy. */
  clone(): CausalContext {
    const copy = new CausalContext();
    for (const [node, max] of this.vector) copy.vector.set(node, max);
    for (const [node, gaps] of this.cloud) copy.cloud.set(node, new Set(gaps));
    return copy;
  }

  /** Canonical form: vector entries and cloud dots sorted. Equal contexts give equal forms. */
  toJSON(): { vector: Array<[string, number]>; cloud: Dot[] } {
    const vector = [...this.vector].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const cloud: Dot[] = [];
    for (const [node, gaps] of this.cloud) for (const counter of gaps) cloud.push([node, counter]);
    cloud.sort(compareDots);
    return { vector, cloud };
  }

  private compact(node: string): void {
    const gaps = this.cloud.get(node);
    if (gaps === undefined) return;
    let max = this.vector.get(node) ?? 0;
    for (const counter of gaps) if (counter <= max) gaps.delete(counter);
    while (gaps.delete(max + 1)) max++;
    if (max > 0) this.vector.set(node, max);
    if (gaps.size === 0) this.cloud.delete(node);
  }
}
