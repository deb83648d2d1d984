/**
 * `automerge`: an Automerge document; deltas are Automerge changes. The body is an incarnation number and the
 * set of changes (sorted by hash, so equal sets encode to equal bytes); joining unions the sets. Like `yjs`,
 * a delete starts a higher, empty incarnation and concurrent changes to the old one are discarded with a
 * conflict record. A node writes with an actor id derived from its node id and the incarnation.
 */
import * as A from '@automerge/automerge';
import { type CausalContext } from '../context.js';
import { TesseraError } from '../errors.js';
import { hex64 } from '../hash.js';
import { decodeFail, expectArray, expectBytes, expectInt } from '../shape.js';
import { type ConflictFinding, type CrdtType, type Mutation, type MutationContext } from './type.js';
import { discardedBytesValue } from './yjs.js';

/** One change and its hash (the sort key). */
export interface AutomergeChange {
  readonly hash: string;
  readonly bytes: Uint8Array;
}

/** An Automerge body: incarnation and its changes sorted by hash. */
export interface AutomergeBody {
  readonly inc: number;
  readonly changes: readonly AutomergeChange[];
}

const emptyAutomerge: AutomergeBody = { inc: 0, changes: [] };

/** The Automerge actor id `node` uses in incarnation `inc`. */
export function automergeActorId(node: string, inc: number): string {
  return hex64(`${node}#${inc}`);
}

/** Decodes a change given from outside; throws `ERR_AUTOMERGE_CHANGE_INVALID`. */
export function automergeChangeFromBytes(bytes: Uint8Array): AutomergeChange {
  try {
    return { hash: A.decodeChange(bytes).hash, bytes };
  } catch (error) {
    throw new TesseraError('ERR_AUTOMERGE_CHANGE_INVALID', `automerge change of ${bytes.length} bytes: ${(error as Error).message}`, { cause: error });
  }
}

/** Materialises the document, writing as `actor` if given. */
export function automergeDoc<T = Record<string, unknown>>(body: AutomergeBody, actor?: string): A.Doc<T> {
  const doc = A.init<T>(actor === undefined ? undefined : { actor });
  if (body.changes.length === 0) return doc;
  try {
    const [loaded] = A.applyChanges(doc, body.changes.map((change) => change.bytes));
    return loaded;
  } catch (error) {
    // Automerge panics on some damaged changes that its decoder accepted.
    throw new TesseraError('ERR_AUTOMERGE_CHANGE_INVALID', `automerge document of ${body.changes.length} changes does not load: ${(error as Error).message}`, { cause: error });
  }
}

/** Throws `ERR_AUTOMERGE_CHANGE_INVALID` unless the body's changes load into a document. */
export function automergeCheck(body: AutomergeBody): void {
  automergeDoc(body);
}

function unionChanges(a: readonly AutomergeChange[], b: readonly AutomergeChange[]): AutomergeChange[] {
  const out: AutomergeChange[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]!.hash < b[j]!.hash)) out.push(a[i++]!);
    else if (i >= a.length || b[j]!.hash < a[i]!.hash) out.push(b[j++]!);
    else {
      out.push(a[i++]!);
      j++;
    }
  }
  return out;
}

/** Runs `change` on the document as `ctx.node` and returns the delta holding the new change. */
export function automergeChange<T>(body: AutomergeBody, change: A.ChangeFn<T>, ctx: MutationContext): Mutation<AutomergeBody> | null {
  const doc = automergeDoc<T>(body, automergeActorId(ctx.node, body.inc));
  const next = A.change(doc, { time: Math.floor(ctx.hlc.ms / 1000) }, change);
  const bytes = A.getLastLocalChange(next);
  if (bytes === undefined) return null;
  const dot = ctx.nextDot();
  return { body: { inc: body.inc, changes: [automergeChangeFromBytes(bytes)] }, added: [dot], removed: [] };
}

/** Adds changes produced elsewhere (for example by an Automerge client of the app). */
export function automergeApplyChanges(body: AutomergeBody, changes: readonly Uint8Array[], ctx: MutationContext): Mutation<AutomergeBody> {
  const decoded = changes.map(automergeChangeFromBytes).sort((x, y) => (x.hash < y.hash ? -1 : x.hash > y.hash ? 1 : 0));
  const unique = unionChanges([], decoded);
  // A change can decode and still fail to load: prove the document loads with it before it is logged.
  automergeCheck({ inc: body.inc, changes: unionChanges(body.changes, unique) });
  const dot = ctx.nextDot();
  return { body: { inc: body.inc, changes: unique }, added: [dot], removed: [] };
}

function automergeJoin(a: AutomergeBody, _ctxA: CausalContext, b: AutomergeBody, _ctxB: CausalContext): AutomergeBody {
  if (a.inc !== b.inc) return a.inc > b.inc ? a : b;
  if (b.changes.length === 0) return a;
  if (a.changes.length === 0) return b;
  return { inc: a.inc, changes: unionChanges(a.changes, b.changes) };
}

function contentValue(body: AutomergeBody): { changes: number; bytes: number; base64?: string } {
  const total = new Uint8Array(body.changes.reduce((sum, change) => sum + change.bytes.length, 0));
  let at = 0;
  for (const change of body.changes) {
    total.set(change.bytes, at);
    at += change.bytes.length;
  }
  return { changes: body.changes.length, ...discardedBytesValue(total) };
}

/** The `automerge` CRDT type. Its value is the document as plain JSON. */
export const automergeType: CrdtType<AutomergeBody, unknown> = {
  name: 'automerge',
  empty: () => emptyAutomerge,
  isEmpty: (body) => body.changes.length === 0,
  join: automergeJoin,
  value: (body) => A.toJS(automergeDoc(body)),
  dots: () => [],
  cleared: (body) => ({ inc: body.inc + 1, changes: [] }),
  check: automergeCheck,
  conflicts: (before, ctxBefore, delta, deltaCtx) => {
    const out: ConflictFinding[] = [];
    const discarded = { value: null, dot: null, hlc: null };
    if (delta.inc < before.inc && delta.changes.length > 0 && !ctxBefore.includes(deltaCtx)) {
      out.push({ path: [], kind: 'delete-discarded-update', winner: discarded, loser: { value: contentValue(delta), dot: null, hlc: null } });
    }
    if (delta.inc > before.inc && before.changes.length > 0 && !deltaCtx.includes(ctxBefore)) {
      out.push({ path: [], kind: 'delete-discarded-update', winner: discarded, loser: { value: contentValue(before), dot: null, hlc: null } });
    }
    return out;
  },
  encode: (body) => [body.inc, body.changes.map((change) => change.bytes)],
  decode: (form) => {
    const [inc, changesForm] = expectArray(form, 'automerge', 2, 2);
    const changes = expectArray(changesForm, 'automerge changes').map((bytes, i) => {
      try {
        return automergeChangeFromBytes(expectBytes(bytes, `automerge change ${i}`));
      } catch (error) {
        return decodeFail(`automerge change ${i}: ${(error as Error).message}`);
      }
    });
    for (let i = 1; i < changes.length; i++) {
      if (changes[i - 1]!.hash >= changes[i]!.hash) decodeFail('automerge changes: not in canonical order');
    }
    return { inc: expectInt(inc, 'automerge incarnation'), changes };
  },
};
