/** JSON values: the only values maps, registers and sets hold. Checked at the boundary, bounded in depth. */
import { TesseraError } from './errors.js';
import { jsonDepthMax } from './limits.js';

/** A JSON scalar. */
export type JsonScalar = null | boolean | number | string;
/** A JSON value. */
export type Json = JsonScalar | Json[] | { [field: string]: Json };
/** A JSON object. */
export type JsonObject = { [field: string]: Json };

/**
 * A short description of an untrusted value for an error message: strings quoted and cut to `lengthMax`,
 * other scalars as they print, lists and objects by kind. It never walks into a value (a request body nested
 * 100 000 levels deep overflowed the stack of `JSON.stringify` and `String`) and never calls the value's own
 * methods (`String({ "toString": 1 })` throws).
 */
export function describeValue(value: unknown, lengthMax = 80): string {
  let text: string;
  if (typeof value === 'string') text = JSON.stringify(value.length > lengthMax ? value.slice(0, lengthMax) : value);
  else if (value === null || value === undefined || typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') text = String(value);
  else if (Array.isArray(value)) text = `(a list of ${value.length})`;
  else if (value instanceof Uint8Array) text = `(${value.length} bytes)`;
  else text = typeof value === 'object' ? '(an object)' : `(a ${typeof value})`;
  return text.length > lengthMax ? `${text.slice(0, Math.max(0, lengthMax - 3))}...` : text;
}

/** True for a plain object (not an array, not a class instance, not null). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** True for a JSON scalar. */
export function isJsonScalar(value: unknown): value is JsonScalar {
  return value === null || typeof value === 'boolean' || typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value));
}

/**
 * Throws `ERR_VALUE_INVALID` unless `value` is JSON within `jsonDepthMax` levels, without "__proto__" keys. `what` names the value in
 * the message (for example `value of users/u42`).
 */
export function checkJson(value: unknown, what: string): asserts value is Json {
  checkJsonSized(value, what);
}

/**
 * `checkJson` that also returns an upper bound of the value's MessagePack size, computed in the same walk:
 * callers skip the exact (encoding) size check when the bound is already under their limit.
 */
export function checkJsonSized(value: unknown, what: string, depthMax = jsonDepthMax): number {
  const size = { bytesMax: 0 };
  const problem = findJsonProblem(value, jsonDepthMax - depthMax, '', size);
  if (problem !== null) throw new TesseraError('ERR_VALUE_INVALID', `${what}: ${problem}`);
  return size.bytesMax;
}

// MessagePack: a header of at most 5 bytes, then at most 3 UTF-8 bytes per UTF-16 code unit; numbers 9.
function stringBytesMax(text: string): number {
  return 5 + 3 * text.length;
}

function findJsonProblem(value: unknown, depth: number, at: string, size: { bytesMax: number }): string | null {
  if (isJsonScalar(value)) {
    size.bytesMax += typeof value === 'string' ? stringBytesMax(value) : 9;
    return null;
  }
  if (typeof value === 'number') return `number ${value} at ${at || 'the top'} is not finite`;
  if (depth >= jsonDepthMax) return `nesting at ${at} exceeds the limit of ${jsonDepthMax} levels`;
  size.bytesMax += 5;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const problem = findJsonProblem(value[i], depth + 1, `${at}[${i}]`, size);
      if (problem !== null) return problem;
    }
    return null;
  }
  if (isPlainObject(value)) {
    for (const field of Object.keys(value)) {
      // An own "__proto__" key cannot be decoded again (and would set a prototype when read back).
      if (field === '__proto__') return `field name "__proto__" at ${at || 'the top'} is not allowed`;
      size.bytesMax += stringBytesMax(field);
      const problem = findJsonProblem(value[field], depth + 1, `${at}.${field}`, size);
      if (problem !== null) return problem;
    }
    return null;
  }
  const kind = value === undefined ? 'undefined' : typeof value === 'object' ? (value.constructor?.name ?? 'object') : typeof value;
  return `${kind} at ${at || 'the top'} is not a JSON value`;
}
