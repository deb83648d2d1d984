/** Small deterministic hashes (FNV-1a) for ids derived from names. Not for security. */

/** 32-bit FNV-1a of a string's UTF-16 code units. */
export function fnv1a32(text: string, seed = 0x811c9dc5): number {
  let hash = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/** 64 bits as 16 hex characters, from two differently seeded 32-bit hashes. */
export function hex64(text: string): string {
  const a = fnv1a32(text);
  const b = fnv1a32(text, a ^ 0x5bd1e995);
  return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
}
