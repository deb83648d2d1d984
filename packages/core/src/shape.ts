/**
 * Checks for decoded, untrusted data. Each helper throws `ERR_DECODE` naming what it expected, so a decoder
 * reads as a description of the format and never indexes into something it has not checked.
 */
import { TesseraError } from './errors.js';
import { type Dot } from './context.js';
import { type Hlc, isHlc } from './hlc.js';
import { nodeIdLengthMax } from './limits.js';
import { type Json, checkJson } from './json.js';

const nodeIdPattern = /^[a-z0-9][a-z0-9._-]*$/;

/** Throws `ERR_DECODE` with `message`. */
export function decodeFail(message: string): never {
  throw new TesseraError('ERR_DECODE', message);
}

/** An array with a length in [min, max]. */
export function expectArray(value: unknown, what: string, min = 0, max = Number.MAX_SAFE_INTEGER): unknown[] {
  if (!Array.isArray(value)) decodeFail(`${what}: expected an array`);
  if (value.length < min || value.length > max) {
    decodeFail(`${what}: expected ${min === max ? min : `${min} to ${max}`} items, got ${value.length}`);
  }
  return value;
}

/** A string. */
export function expectString(value: unknown, what: string): string {
  if (typeof value !== 'string') decodeFail(`${what}: expected a string`);
  return value;
}

/** A safe integer in [min, max]. */
export function expectInt(value: unknown, what: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) {
    decodeFail(`${what}: expected an integer from ${min} to ${max}`);
  }
  return value as number;
}

/** Bytes. */
export function expectBytes(value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) decodeFail(`${what}: expected bytes`);
  return value;
}

/** A node id. */
export function expectNodeId(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > nodeIdLengthMax || !nodeIdPattern.test(value)) {
    decodeFail(`${what}: expected a node id`);
  }
  return value;
}

/** A dot `[node, counter]`. */
export function expectDot(value: unknown, what: string): Dot {
  const [node, counter] = expectArray(value, what, 2, 2);
  return [expectNodeId(node, `${what} node`), expectInt(counter, `${what} counter`, 1)];
}

/** An HLC `[ms, c]`. */
export function expectHlc(value: unknown, what: string): Hlc {
  const [ms, c] = expectArray(value, what, 2, 2);
  const hlc = { ms, c };
  if (!isHlc(hlc)) decodeFail(`${what}: expected an HLC [ms, counter]`);
  return hlc;
}

/** Throws unless `items` are strictly increasing under `compare` (canonical forms are sorted, no duplicates). */
export function expectSorted<T>(items: readonly T[], compare: (a: T, b: T) => number, what: string): void {
  for (let i = 1; i < items.length; i++) {
    if (compare(items[i - 1]!, items[i]!) >= 0) decodeFail(`${what}: not in canonical order`);
  }
}

/** A JSON value within the depth limit. */
export function expectJson(value: unknown, what: string): Json {
  try {
    checkJson(value, what);
  } catch (error) {
    decodeFail((error as Error).message);
  }
  return value;
}
