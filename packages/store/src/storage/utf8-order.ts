/**
 * Byte order of UTF-8 over JavaScript strings, as LevelDB sorts keys: UTF-16 code-unit order agrees with it
 * except that a surrogate (a code point past U+FFFF) sorts before U+E000–U+FFFF in UTF-16 and after them in
 * UTF-8. And a sorted array of keys kept in that order (the index of sealed storage).
 */

/** Compares `a` and `b` in UTF-8 byte order: negative, zero or positive. */
export function compareUtf8(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const xSurrogate = x >= 0xd800 && x <= 0xdfff;
    const ySurrogate = y >= 0xd800 && y <= 0xdfff;
    if (xSurrogate === ySurrogate) return x - y;
    // Only one is a surrogate: it stands for a code point above U+FFFF, which sorts last in UTF-8.
    return xSurrogate ? (y >= 0xe000 ? 1 : x - y) : x >= 0xe000 ? -1 : x - y;
  }
  return a.length - b.length;
}

/** Bounds of a key range as abstract-level takes them. */
export interface KeyBounds {
  readonly gt?: string;
  readonly gte?: string;
  readonly lt?: string;
  readonly lte?: string;
}

/** A set of keys in UTF-8 order: binary search, insertion and deletion by splice (memory: the keys themselves). */
export class SortedKeys {
  private keys: string[] = [];

  get size(): number {
    return this.keys.length;
  }

  /** Replaces the content with `keys` (any order, no duplicates). */
  reset(keys: string[]): void {
    this.keys = keys.sort(compareUtf8);
  }

  /** The first position whose key is not below `key` (or above it, with `after`). */
  private position(key: string, after: boolean): number {
    let low = 0;
    let high = this.keys.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const order = compareUtf8(this.keys[middle]!, key);
      if (order < 0 || (after && order === 0)) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  add(key: string): void {
    const at = this.position(key, false);
    if (this.keys[at] !== key) this.keys.splice(at, 0, key);
  }

  delete(key: string): void {
    const at = this.position(key, false);
    if (this.keys[at] === key) this.keys.splice(at, 1);
  }

  /** The keys within `bounds`, in order (reversed with `reverse`), at most `limit` of them: a copy. */
  range(bounds: KeyBounds, limit: number, reverse: boolean): string[] {
    const start = bounds.gt !== undefined ? this.position(bounds.gt, true) : bounds.gte !== undefined ? this.position(bounds.gte, false) : 0;
    const end = bounds.lt !== undefined ? this.position(bounds.lt, false) : bounds.lte !== undefined ? this.position(bounds.lte, true) : this.keys.length;
    if (end <= start) return [];
    const count = Math.min(end - start, limit);
    return reverse ? this.keys.slice(end - count, end).reverse() : this.keys.slice(start, start + count);
  }
}
