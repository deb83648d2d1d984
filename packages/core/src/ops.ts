/**
 * Operations: the one place that maps a user's request (put, field set, increment, …) onto a CRDT type's
 * mutation, after validating it. The store, the daemon's HTTP API and the CLI all go through here, so a
 * wrong-type operation is refused the same way everywhere.
 */
import { type Json, type JsonScalar, checkJsonSized, describeValue, isJsonScalar, isPlainObject } from './json.js';
import { TesseraError } from './errors.js';
import { type BodyMutator } from './crdt/document.js';
import { type CrdtTypeName } from './crdt/type.js';
import { type MapNode, mapDelete, mapSet } from './crdt/map.js';
import { type RegisterBody, registerSet } from './crdt/register.js';
import { type CounterBody, counterAdd } from './crdt/counter.js';
import { type SetBody, setAdd, setRemove } from './crdt/set.js';
import { type YjsBody, yjsApplyUpdate } from './crdt/yjs.js';
import { type AutomergeBody, automergeApplyChanges } from './crdt/automerge.js';
import { fieldNameBytesMax, fieldPathLengthMax, jsonDepthMax, valueBytesMax } from './limits.js';
import { encodeCanonical } from './codec.js';

/** A CRDT operation, as the embedded API, HTTP (`POST …/ops`) and the CLI express it. */
export type Operation =
  | { readonly op: 'put'; readonly value: Json }
  | { readonly op: 'set'; readonly path: readonly string[]; readonly value: Json }
  | { readonly op: 'delete-field'; readonly path: readonly string[] }
  | { readonly op: 'increment'; readonly amount: number }
  | { readonly op: 'add'; readonly element: JsonScalar }
  | { readonly op: 'remove'; readonly element: JsonScalar }
  | { readonly op: 'yjs-update'; readonly update: Uint8Array }
  | { readonly op: 'automerge-changes'; readonly changes: readonly Uint8Array[] };

/** Which operations each type accepts. */
export const operationsByType: Record<CrdtTypeName, readonly Operation['op'][]> = {
  map: ['put', 'set', 'delete-field'],
  lww: ['put'],
  mv: ['put'],
  counter: ['increment'],
  set: ['put', 'add', 'remove'],
  yjs: ['yjs-update'],
  automerge: ['automerge-changes'],
};

/**
 * Throws `ERR_VALUE_TOO_LARGE` when a value encodes to more than `valueBytesMax`. `bytesMax`, an upper bound
 * from `checkJsonSized`, spares the encoding when it already proves the value small.
 */
export function checkValueSize(value: unknown, what: string, bytesMax = Infinity): void {
  if (bytesMax <= valueBytesMax) return;
  const bytes = value instanceof Uint8Array ? value.length : encodeCanonical(value).length;
  if (bytes > valueBytesMax) {
    throw new TesseraError('ERR_VALUE_TOO_LARGE', `${what}: ${bytes} bytes exceed the limit of ${valueBytesMax} bytes`);
  }
}

/** Validates a field path: 1 to `fieldPathLengthMax` non-empty names of at most `fieldNameBytesMax` bytes. */
export function checkFieldPath(path: unknown, what: string): asserts path is string[] {
  if (!Array.isArray(path) || path.length === 0 || path.length > fieldPathLengthMax) {
    throw new TesseraError('ERR_VALUE_INVALID', `${what}: a field path is 1 to ${fieldPathLengthMax} field names`);
  }
  for (const name of path) {
    if (typeof name !== 'string' || name.length === 0 || Buffer.byteLength(name) > fieldNameBytesMax) {
      throw new TesseraError('ERR_VALUE_INVALID', `${what}: field name ${describeValue(name)} must be 1 to ${fieldNameBytesMax} bytes`);
    }
    if (name === '__proto__') throw new TesseraError('ERR_VALUE_INVALID', `${what}: field name "__proto__" is not allowed`);
  }
}

/** Parses `a.b.c` or an array into a field path. */
export function toFieldPath(path: string | readonly string[]): string[] {
  return typeof path === 'string' ? path.split('.') : [...path];
}

/**
 * Validates `operation` against the document's type and returns the body mutator. `what` names the document
 * in messages (for example `users/u42`). Throws `ERR_TYPE_MISMATCH`, `ERR_VALUE_INVALID`, `ERR_VALUE_TOO_LARGE`.
 */
export function operationMutator(type: CrdtTypeName, operation: Operation, what: string): BodyMutator {
  if (!operationsByType[type].includes(operation.op)) {
    throw new TesseraError(
      'ERR_TYPE_MISMATCH',
      `${what} is a ${type} document: operation "${operation.op}" does not apply (it accepts ${operationsByType[type].join(', ')})`,
    );
  }
  switch (operation.op) {
    case 'put': {
      checkValueSize(operation.value, `value of ${what}`, checkJsonSized(operation.value, `value of ${what}`));
      if (type === 'map') {
        if (!isPlainObject(operation.value)) throw new TesseraError('ERR_VALUE_INVALID', `value of ${what}: a map document's value must be a JSON object`);
        const value = operation.value;
        return (body, ctx) => mapSet(body as MapNode, [], value, ctx);
      }
      if (type === 'set') {
        const elements = operation.value;
        if (!Array.isArray(elements) || !elements.every(isJsonScalar)) {
          throw new TesseraError('ERR_VALUE_INVALID', `value of ${what}: a set document's value must be an array of JSON scalars`);
        }
        return (body, ctx) => replaceSet(body as SetBody, elements as JsonScalar[], ctx);
      }
      const value = operation.value;
      return (body, ctx) => registerSet(body as RegisterBody, value, ctx);
    }
    case 'set': {
      checkFieldPath(operation.path, `field of ${what}`);
      const field = `value of ${what}.${operation.path.join('.')}`;
      // The path and the value nest in one tree: together they stay within the depth limit.
      checkValueSize(operation.value, field, checkJsonSized(operation.value, field, jsonDepthMax - operation.path.length));
      const { path, value } = operation;
      return (body, ctx) => mapSet(body as MapNode, path, value, ctx);
    }
    case 'delete-field': {
      checkFieldPath(operation.path, `field of ${what}`);
      const { path } = operation;
      return (body) => mapDelete(body as MapNode, path);
    }
    case 'increment': {
      const { amount } = operation;
      if (typeof amount !== 'number' || !Number.isSafeInteger(amount)) {
        throw new TesseraError('ERR_COUNTER_RANGE', `increment of ${what}: amount ${describeValue(amount)} is not a safe integer`);
      }
      return (body, ctx) => counterAdd(body as CounterBody, amount, ctx);
    }
    case 'add':
    case 'remove': {
      const { element } = operation;
      if (!isJsonScalar(element))
        throw new TesseraError('ERR_VALUE_INVALID', `${operation.op} on ${what}: set elements are JSON scalars (string, number, boolean, null)`);
      checkValueSize(element, `element of ${what}`, checkJsonSized(element, `element of ${what}`));
      return operation.op === 'add' ? (body, ctx) => setAdd(body as SetBody, element, ctx) : (body) => setRemove(body as SetBody, element);
    }
    case 'yjs-update': {
      const { update } = operation;
      if (!(update instanceof Uint8Array)) throw new TesseraError('ERR_YJS_UPDATE_INVALID', `update of ${what}: expected bytes`);
      checkValueSize(update, `Yjs update of ${what}`);
      return (body, ctx) => yjsApplyUpdate(body as YjsBody, update, ctx);
    }
    case 'automerge-changes': {
      const { changes } = operation;
      if (!Array.isArray(changes) || changes.length === 0 || !changes.every((change) => change instanceof Uint8Array)) {
        throw new TesseraError('ERR_AUTOMERGE_CHANGE_INVALID', `changes of ${what}: expected a non-empty array of byte arrays`);
      }
      const bytes = changes.reduce((sum, change) => sum + change.length, 0);
      if (bytes > valueBytesMax) {
        throw new TesseraError('ERR_VALUE_TOO_LARGE', `Automerge changes of ${what}: ${bytes} bytes exceed the limit of ${valueBytesMax} bytes`);
      }
      return (body, ctx) => automergeApplyChanges(body as AutomergeBody, changes, ctx);
    }
  }
}

function replaceSet(body: SetBody, elements: readonly JsonScalar[], ctx: Parameters<BodyMutator>[1]) {
  const removed = [...body.values()].flatMap((entry) => entry.dots);
  const added = [];
  const out = new Map<string, { element: JsonScalar; dots: readonly [string, number][] }>();
  for (const element of elements) {
    const add = setAdd(new Map(), element, ctx);
    for (const [key, entry] of add.body) if (!out.has(key)) out.set(key, entry as never);
    added.push(...add.added);
  }
  return { body: out as SetBody, added, removed, touch: true };
}
