/** A small seeded PRNG for chaos runs: the schedule and every client's choices derive from one seed. */

/** A random source over [0, 1) with helpers; `fork` derives an independent stream (one per client). */
export class Random {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** mulberry32: fast, 32 bits of state, good enough to draw schedules and workloads. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let x = Math.imul(this.state ^ (this.state >>> 15), 1 | this.state);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Picks a key of `weights` with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as Array<[K, number]>;
    const total = entries.reduce((sum, [, weight]) => sum + weight, 0);
    let draw = this.next() * total;
    for (const [key, weight] of entries) {
      draw -= weight;
      if (draw < 0) return key;
    }
    // Rounding can leave a sliver: the last key with any weight takes it (a zero weight is never drawn).
    return entries.filter(([, weight]) => weight > 0).at(-1)![0];
  }

  /** An independent stream for `label` (the same seed and label give the same stream). */
  fork(label: string): Random {
    let hash = this.seed >>> 0;
    for (let i = 0; i < label.length; i++) hash = Math.imul(hash ^ label.charCodeAt(i), 0x01000193) >>> 0;
    return new Random(hash);
  }
}

/** The seed of a run: `CHAOS_SEED` if set, else a fresh one. */
export function chaosSeed(env: NodeJS.ProcessEnv = process.env): number {
  if (env.CHAOS_SEED !== undefined && env.CHAOS_SEED !== '') {
    const seed = Number(env.CHAOS_SEED);
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`CHAOS_SEED=${env.CHAOS_SEED} is not a non-negative integer`);
    return seed;
  }
  return Math.floor(Math.random() * 2 ** 31);
}
