/**
 * Assertions for broken invariants. A failed assertion is a bug in Tessera, not bad input: it throws an
 * `AssertionError` that callers must not catch and continue from. Expected failures use `TesseraError`.
 */
export class AssertionError extends Error {
  constructor(message: string) {
    super(`assertion failed: ${message}`);
    this.name = 'AssertionError';
  }
}

/** Throws an `AssertionError` unless `condition` holds. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Marks a branch that the type checker proves unreachable. */
export function assertNever(value: never): never {
  throw new AssertionError(`unexpected value ${JSON.stringify(value)}`);
}
