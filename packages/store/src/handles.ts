/** Typed handles over one document: field operations on maps, counters, sets, Yjs and Automerge documents. */
import type * as Y from 'yjs';
import type * as A from '@automerge/automerge';
import {
  type AutomergeBody,
  type Json,
  type JsonScalar,
  type YjsBody,
  TesseraError,
  automergeChange,
  automergeDoc,
  toFieldPath,
  yjsChange,
  yjsDoc,
} from '@tessera/core';
import { type Replica } from './replica.js';
import { type WriteOptions, type WriteResult } from './types.js';

/** Field operations on a `map` document. */
export class MapHandle {
  constructor(
    private readonly replica: Replica,
    readonly dataset: string,
    readonly key: string,
  ) {}

  /** Sets the field at `path` (`'a.b'` or `['a', 'b']`); objects merge field by field with concurrent writes. */
  async set(path: string | readonly string[], value: Json, options: WriteOptions = {}): Promise<WriteResult> {
    return this.replica.operate(this.dataset, this.key, { op: 'set', path: toFieldPath(path), value }, { ...options, type: 'map' });
  }

  /** Deletes the field at `path` and everything below it. */
  async delete(path: string | readonly string[]): Promise<WriteResult> {
    return this.replica.operate(this.dataset, this.key, { op: 'delete-field', path: toFieldPath(path) }, { type: 'map' });
  }

  /** The whole object, or undefined when the document does not exist. */
  async value(): Promise<Record<string, Json> | undefined> {
    return (await this.replica.get(this.dataset, this.key))?.value as Record<string, Json> | undefined;
  }
}

/** A `counter` document. */
export class CounterHandle {
  constructor(
    private readonly replica: Replica,
    readonly dataset: string,
    readonly key: string,
  ) {}

  /** Adds `amount` (a safe integer, default 1). */
  async increment(amount = 1): Promise<WriteResult> {
    return this.replica.operate(this.dataset, this.key, { op: 'increment', amount }, { type: 'counter' });
  }

  /** Subtracts `amount` (default 1). */
  async decrement(amount = 1): Promise<WriteResult> {
    if (!Number.isSafeInteger(amount))
      throw new TesseraError('ERR_COUNTER_RANGE', `decrement of ${this.dataset}/${this.key}: amount ${amount} is not a safe integer`);
    return this.replica.operate(this.dataset, this.key, { op: 'increment', amount: -amount }, { type: 'counter' });
  }

  /** The current total (0 when the counter does not exist). */
  async value(): Promise<number> {
    return ((await this.replica.get(this.dataset, this.key))?.value as number | undefined) ?? 0;
  }
}

/** A `set` document (add-wins observed-remove set of JSON scalars). */
export class SetHandle {
  constructor(
    private readonly replica: Replica,
    readonly dataset: string,
    readonly key: string,
  ) {}

  /** Adds an element. */
  async add(element: JsonScalar): Promise<WriteResult> {
    return this.replica.operate(this.dataset, this.key, { op: 'add', element }, { type: 'set' });
  }

  /** Removes an element (as observed here; a concurrent add survives). */
  async remove(element: JsonScalar): Promise<WriteResult> {
    return this.replica.operate(this.dataset, this.key, { op: 'remove', element }, { type: 'set' });
  }

  /** The elements in canonical order (empty when the set does not exist). */
  async values(): Promise<JsonScalar[]> {
    return ((await this.replica.get(this.dataset, this.key))?.value as JsonScalar[] | undefined) ?? [];
  }
}

/** A `yjs` document. */
export class YjsHandle {
  constructor(
    private readonly replica: Replica,
    readonly dataset: string,
    readonly key: string,
  ) {}

  /** Runs `change` on the document in one Yjs transaction; the resulting update is the delta. */
  async change(change: (doc: Y.Doc) => void): Promise<WriteResult> {
    return this.replica.write(this.dataset, this.key, 'yjs', (type) => {
      if (type !== 'yjs') throw new TesseraError('ERR_TYPE_MISMATCH', `${this.dataset}/${this.key} is a ${type} document, not yjs`);
      return (body, ctx) => yjsChange(body as YjsBody, change, ctx);
    });
  }

  /** Applies a Yjs update produced elsewhere (for example by a browser client). */
  async applyUpdate(update: Uint8Array): Promise<WriteResult> {
    return this.replica.operate(this.dataset, this.key, { op: 'yjs-update', update }, { type: 'yjs' });
  }

  /** A fresh Y.Doc holding the current state (read-only copy: write with `change`), or undefined. */
  async doc(): Promise<Y.Doc | undefined> {
    const view = await this.replica.get(this.dataset, this.key);
    if (view === undefined) return undefined;
    return yjsDoc({ inc: 0, update: view.value as Uint8Array, writers: [] });
  }
}

/** An `automerge` document. */
export class AutomergeHandle {
  constructor(
    private readonly replica: Replica,
    readonly dataset: string,
    readonly key: string,
  ) {}

  /** Runs `change` on the document; the resulting Automerge change is the delta. */
  async change<T>(change: A.ChangeFn<T>): Promise<WriteResult> {
    return this.replica.write(this.dataset, this.key, 'automerge', (type) => {
      if (type !== 'automerge') throw new TesseraError('ERR_TYPE_MISMATCH', `${this.dataset}/${this.key} is a ${type} document, not automerge`);
      return (body, ctx) => automergeChange(body as AutomergeBody, change, ctx);
    });
  }

  /** Applies Automerge changes produced elsewhere. */
  async applyChanges(changes: readonly Uint8Array[]): Promise<WriteResult> {
    return this.replica.operate(this.dataset, this.key, { op: 'automerge-changes', changes }, { type: 'automerge' });
  }

  /** The document as a plain object, or undefined. */
  async value<T = Record<string, unknown>>(): Promise<T | undefined> {
    return (await this.replica.get(this.dataset, this.key))?.value as T | undefined;
  }

  /** The materialised Automerge document (read-only copy: write with `change`), or undefined. */
  async doc<T = Record<string, unknown>>(): Promise<A.Doc<T> | undefined> {
    const state = await this.replica.state(this.dataset, this.key);
    return state === undefined ? undefined : automergeDoc<T>(state.body as AutomergeBody);
  }
}
