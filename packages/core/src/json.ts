/** JSON values: the only values maps, registers and sets hold. Checked at the boundary, bounded in depth. */
import { TesseraError } from './errors.js';
import { jsonDepthMax } from './limits.js';

/** A JSON scalar. */
export type JsonScalar = null | boolean | number | string;
/** A JSON value. */
export type Json = JsonScalar | Json[] | { [field: string]: Json };
/** A JSON object. */
export type JsonObject = { [field: string]: Json };

/** True for a plain object (not an array, not a class instance, not null). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** True for a JSON scalar. */
export function isJsonScalar(value: unknown): value is JsonScalar {
  return value === null || typeof value === 'boolean' || typeof value === 'string' ||
    (typeof value === 'number' && Number.isFinite(value));
}

/**
 * Throws `ERR_VALUE_INVALID` unless `value` is JSON within `jsonDepthMax` levels. `what` names the value in
 * the message (for example `value of users/u42`).
 */
export function checkJson(value: unknown, what: string): asserts value is Json {
  const problem = findJsonProblem(value, 0, '');
  if (problem !== null) throw new TesseraError('ERR_VALUE_INVALID', `${what}: ${problem}`);
}

function findJsonProblem(value: unknown, depth: number, at: string): string | null {
  if (isJsonScalar(value)) return null;
  if (typeof value === 'number') return `number ${value} at ${at || 'the top'} is not finite`;
  if (depth >= jsonDepthMax) return `nesting at ${at} exceeds the limit of ${jsonDepthMax} levels`;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const problem = findJsonProblem(value[i], depth + 1, `${at}[${i}]`);
      if (problem !== null) return problem;
    }
    return null;
  }
  if (isPlainObject(value)) {
    for (const field of Object.keys(value)) {
      const problem = findJsonProblem(value[field], depth + 1, `${at}.${field}`);
      if (problem !== null) return problem;
    }
    return null;
  }
  const kind = value === undefined ? 'undefined' : typeof value === 'object' ? (value.constructor?.name ?? 'object') : typeof value;
  return `${kind} at ${at || 'the top'} is not a JSON value`;
}
