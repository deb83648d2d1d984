/**
 * The body of `POST /v1/kv/:dataset/:key/ops`: one operation or a list, turned into core `Operation`s (bytes
 * decoded from base64, dotted paths split) and tag changes. This file checks the request's shape only; values
 * and types are checked by core's `operationMutator`, the same code the store runs.
 */
import {
  type CrdtTypeName,
  type DocState,
  type Json,
  type JsonScalar,
  type Operation,
  type TagChange,
  TesseraError,
  checkUserTags,
  crdtType,
  describeValue,
  docExists,
  isPlainObject,
  operationMutator,
  toFieldPath,
} from '@tessera/core';

/** Operations in one request, applied in order. */
export const opsPerRequestMax = 100;
/** Automerge changes in one `automerge-changes` operation. */
export const automergeChangesPerOpMax = 1_000;

/** One operation of a request: a CRDT operation (optionally creating the document with `type`), or a tag change. */
export type RequestOperation =
  | { readonly kind: 'operate'; readonly operation: Operation; readonly type?: CrdtTypeName }
  | { readonly kind: 'tag'; readonly change: TagChange };

/** The fields each op takes, besides `op`; `type` is accepted by every CRDT operation. */
const opFields = {
  put: { required: ['value'], optional: ['type'] },
  set: { required: ['path', 'value'], optional: ['type'] },
  'delete-field': { required: ['path'], optional: ['type'] },
  increment: { required: ['amount'], optional: ['type'] },
  add: { required: ['element'], optional: ['type'] },
  remove: { required: ['element'], optional: ['type'] },
  'yjs-update': { required: ['update'], optional: ['type'] },
  'automerge-changes': { required: ['changes'], optional: ['type'] },
  tag: { required: [], optional: ['add', 'remove'] },
} as const satisfies Record<Operation['op'] | 'tag', { required: readonly string[]; optional: readonly string[] }>;

type OpName = keyof typeof opFields;
const opNames = Object.keys(opFields) as OpName[];
const base64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;

/** Parses the body: an operation object or an array of 1 to `opsPerRequestMax`. Throws `ERR_BODY_INVALID`, `ERR_OP_UNKNOWN`. */
export function parseOperations(body: unknown): RequestOperation[] {
  if (Array.isArray(body)) {
    if (body.length === 0 || body.length > opsPerRequestMax) {
      throw new TesseraError('ERR_BODY_INVALID', `a list of ${body.length} operations: send 1 to ${opsPerRequestMax} operations`);
    }
    return body.map((item, i) => parseOperation(item, `operation ${i}`));
  }
  return [parseOperation(body, 'operation')];
}

function parseOperation(item: unknown, what: string): RequestOperation {
  if (!isPlainObject(item)) throw new TesseraError('ERR_BODY_INVALID', `${what}: expected an object like { "op": "increment", "amount": 1 }`);
  const op = item.op;
  if (typeof op !== 'string' || !(opNames as string[]).includes(op)) {
    throw new TesseraError('ERR_OP_UNKNOWN', `${what}: op ${op === undefined ? '(missing)' : describeValue(op)} is unknown: use one of ${opNames.join(', ')}`);
  }
  const name = op as OpName;
  const { required, optional } = opFields[name] as { required: readonly string[]; optional: readonly string[] };
  for (const field of Object.keys(item)) {
    if (field !== 'op' && !required.includes(field) && !optional.includes(field)) {
      throw new TesseraError(
        'ERR_BODY_INVALID',
        `${what}: "${name}" takes no field ${JSON.stringify(field).slice(0, 80)} (it takes ${[...required, ...optional].join(', ') || 'no fields'})`,
      );
    }
  }
  for (const field of required) {
    if (!(field in item)) throw new TesseraError('ERR_BODY_INVALID', `${what}: "${name}" needs the field "${field}"`);
  }
  if (name === 'tag') {
    if (item.add === undefined && item.remove === undefined) {
      throw new TesseraError('ERR_BODY_INVALID', `${what}: "tag" needs "add" or "remove" (arrays of tags)`);
    }
    const add = item.add ?? [];
    const remove = item.remove ?? [];
    checkUserTags(add);
    checkUserTags(remove);
    return { kind: 'tag', change: { add, remove } };
  }
  let type: CrdtTypeName | undefined;
  if (item.type !== undefined) {
    crdtType(item.type);
    type = item.type as CrdtTypeName;
  }
  const operation = toOperation(name, item, what);
  return type === undefined ? { kind: 'operate', operation } : { kind: 'operate', operation, type };
}

function toOperation(name: Exclude<OpName, 'tag'>, item: Record<string, unknown>, what: string): Operation {
  switch (name) {
    case 'put':
      return { op: 'put', value: item.value as Json };
    case 'set':
      return { op: 'set', path: fieldPath(item.path, what), value: item.value as Json };
    case 'delete-field':
      return { op: 'delete-field', path: fieldPath(item.path, what) };
    case 'increment':
      return { op: 'increment', amount: item.amount as number };
    case 'add':
    case 'remove':
      return { op: name, element: item.element as JsonScalar };
    case 'yjs-update':
      return { op: 'yjs-update', update: base64(item.update, `${what}: update`) };
    case 'automerge-changes': {
      const changes = item.changes;
      if (!Array.isArray(changes) || changes.length === 0 || changes.length > automergeChangesPerOpMax) {
        throw new TesseraError('ERR_BODY_INVALID', `${what}: changes must be a list of 1 to ${automergeChangesPerOpMax} base64 strings`);
      }
      return { op: 'automerge-changes', changes: changes.map((change, i) => base64(change, `${what}: changes[${i}]`)) };
    }
  }
}

function fieldPath(path: unknown, what: string): string[] {
  if (typeof path === 'string') return toFieldPath(path);
  if (Array.isArray(path) && path.every((name) => typeof name === 'string')) return toFieldPath(path as string[]);
  throw new TesseraError('ERR_BODY_INVALID', `${what}: path must be a dotted string ("address.city") or a list of field names`);
}

function base64(value: unknown, what: string): Uint8Array {
  if (typeof value !== 'string' || !base64Pattern.test(value)) {
    throw new TesseraError('ERR_BODY_INVALID', `${what} must be base64 text`);
  }
  const bytes = Buffer.from(value, 'base64');
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Checks a request's operations against the document before any is applied: each must suit the type the
 * document has (or will get from the batch's first write), with a valid value. `state` is the document's
 * current state; `datasetType` the type the store gives new documents of the dataset, or undefined when not
 * known (then operations on a new document without an explicit `type` are left to the store). Throws what the
 * store would throw. Checks that need the write itself (a Yjs update's content, a counter's range) still
 * happen when it is applied.
 */
export function checkOperations(
  dataset: string,
  key: string,
  operations: readonly RequestOperation[],
  state: DocState | undefined,
  datasetType: CrdtTypeName | undefined,
): void {
  const what = `${dataset}/${key}`;
  let exists = state !== undefined && docExists(state);
  // The document's type as the batch goes; undefined while it does not exist, null once it is not predictable.
  let type: CrdtTypeName | undefined | null = exists ? state!.type : undefined;
  operations.forEach((item, i) => {
    const where = operations.length > 1 ? `operation ${i}: ` : '';
    try {
      if (item.kind === 'tag') {
        if (!exists) throw new TesseraError('ERR_OPTION_INVALID', `tag: ${what} does not exist`);
        return;
      }
      // Removals do not create a document; every other operation does.
      const creates = item.operation.op !== 'delete-field' && item.operation.op !== 'remove';
      if (type === null) {
        if (creates) exists = true;
        return;
      }
      if (type !== undefined && item.type !== undefined && item.type !== type) {
        throw new TesseraError('ERR_TYPE_MISMATCH', `${what} is a ${type} document, not ${item.type}`);
      }
      const target = type ?? item.type ?? datasetType;
      if (target !== undefined) operationMutator(target, item.operation, what);
      if (creates) {
        exists = true;
        type = target ?? null;
      }
    } catch (error) {
      if (error instanceof TesseraError && where !== '') throw new TesseraError(error.code, `${where}${error.message}`, { cause: error });
      throw error;
    }
  });
}
