/**
 * A guard against secrets people typed rather than generated (issue 12 item 8: 32 × "a" was accepted). The
 * estimate is deliberately simple and conservative: the text's length times the Shannon entropy of its own
 * character frequencies, and a check that it does not repeat itself. It cannot prove a secret random, but
 * a generated one (`openssl rand -base64 48`: ~280 bits by this estimate) passes by far, while a repeated
 * character, a short pattern repeated, or a word padded out does not.
 */

/** Estimated bits a secret must have. */
export const secretBitsMin = 128;

/** Why `text` is too weak to be a secret, or null when it passes. */
export function secretWeakness(text: string): string | null {
  const chars = [...text];
  const period = smallestPeriod(chars);
  if (period < chars.length) return `it repeats a ${period}-character pattern`;
  const bits = estimatedBits(chars);
  if (bits < secretBitsMin) return `about ${Math.floor(bits)} bits of entropy by its character frequencies, fewer than ${secretBitsMin}`;
  return null;
}

/** Length × the Shannon entropy (bits per character) of the text's own character distribution. */
export function estimatedBits(chars: readonly string[]): number {
  const counts = new Map<string, number>();
  for (const char of chars) counts.set(char, (counts.get(char) ?? 0) + 1);
  let perChar = 0;
  for (const count of counts.values()) {
    const p = count / chars.length;
    perChar -= p * Math.log2(p);
  }
  return perChar * chars.length;
}

/** The smallest p such that the text is a prefix of its first p characters repeated (its length if none). */
function smallestPeriod(chars: readonly string[]): number {
  // KMP failure function: the longest proper border gives the smallest period.
  const border = new Array<number>(chars.length).fill(0);
  for (let i = 1, k = 0; i < chars.length; i++) {
    while (k > 0 && chars[i] !== chars[k]) k = border[k - 1]!;
    if (chars[i] === chars[k]) k++;
    border[i] = k;
  }
  const period = chars.length - (border[chars.length - 1] ?? 0);
  // A period counts only when the pattern occurs at least twice in full.
  return period * 2 <= chars.length ? period : chars.length;
}
