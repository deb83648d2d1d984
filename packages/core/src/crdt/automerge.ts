/**
 * `automerge`: an Automerge document; deltas are Automerge changes. The body is an incarnation number and the
 * set of changes (sorted by hash, so equal sets encode to equal bytes); joining unions the sets. Like `yjs`,
 * a delete starts a higher, empty incarnation and concurrent changes to the old one are discarded with a
 * conflict record. A node writes with an actor id of its own, recorded in the body (`writers`), minted like a
 * Yjs client id (yjs.ts) from its first write's dot: a node that lost its copy never reuses an actor whose
 * change sequence it no longer has (Automerge refuses a second change with the same actor and sequence).
 */
import * as A from '@automerge/automerge';
import { type CausalContext } from '../context.js';
import { TesseraError } from '../errors.js';
import { hex64 } from '../hash.js';
import { decodeFail, expectArray, expectBytes, expectInt } from '../shape.js';
import { type ConflictFinding, type CrdtType, type Mutation, type MutationContext } from './type.js';
import { type Writer, decodeWriters, discardedBytesValue, joinWriters, writerIdOf } from './yjs.js';

/** One change and its hash (the sort key). */
export interface AutomergeChange {
  readonly hash: string;
  readonly bytes: Uint8Array;
}

/** An Automerge body: incarnation, its changes sorted by hash, and the nodes' actor ids. */
export interface AutomergeBody {
  readonly inc: number;
  readonly changes: readonly AutomergeChange[];
  readonly writers: ReadonlyArray<Writer<string>>;
}

const emptyAutomerge: AutomergeBody = { inc: 0, changes: [], writers: [] };

/** A fresh Automerge actor id for `node`'s first write of incarnation `inc`, whose dot has counter `counter`. */
export function automergeActorId(node: string, inc: number, counter: number): string {
  return hex64(`${node}#${inc}#${counter}`);
}

const actorPattern = /^[0-9a-f]{16}$/;

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
    const [loaded] = A.applyChanges(
      doc,
      body.changes.map((change) => change.bytes),
    );
    return loaded;
  } catch (error) {
    // Automerge panics on some damaged changes that its decoder accepted.
    throw new TesseraError('ERR_AUTOMERGE_CHANGE_INVALID', `automerge document of ${body.changes.length} changes does not load: ${(error as Error).message}`, {
      cause: error,
    });
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
  const known = writerIdOf(body.writers, ctx.node);
  // A fresh actor is derived from the write's dot, which is issued only if the change changes anything: the
  // next dot's counter is known without issuing it (one past what this node issued on the document).
  const actor = known ?? automergeActorId(ctx.node, body.inc, ctx.peekCounter?.() ?? 0);
  const doc = automergeDoc<T>(body, actor);
  const next = A.change(doc, { time: Math.floor(ctx.hlc.ms / 1000) }, change);
  const bytes = A.getLastLocalChange(next);
  if (bytes === undefined) return null;
  const dot = ctx.nextDot();
  return { body: { inc: body.inc, changes: [automergeChangeFromBytes(bytes)], writers: [[ctx.node, actor]] }, added: [dot], removed: [] };
}

/** Adds changes produced elsewhere (for example by an Automerge client of the app). */
export function automergeApplyChanges(body: AutomergeBody, changes: readonly Uint8Array[], ctx: MutationContext): Mutation<AutomergeBody> {
  const decoded = changes.map(automergeChangeFromBytes).sort((x, y) => (x.hash < y.hash ? -1 : x.hash > y.hash ? 1 : 0));
  const unique = unionChanges([], decoded);
  // A change can decode and still fail to load: prove the document loads with it before it is logged.
  automergeCheck({ inc: body.inc, changes: unionChanges(body.changes, unique), writers: [] });
  const dot = ctx.nextDot();
  return { body: { inc: body.inc, changes: unique, writers: [] }, added: [dot], removed: [] };
}

function automergeJoin(a: AutomergeBody, _ctxA: CausalContext, b: AutomergeBody, _ctxB: CausalContext): AutomergeBody {
  if (a.inc !== b.inc) return a.inc > b.inc ? a : b;
  const writers = joinWriters(a.writers, b.writers);
  if (b.changes.length === 0) return writers === a.writers ? a : { ...a, writers };
  if (a.changes.length === 0) return writers === b.writers ? b : { ...b, writers };
  return { inc: a.inc, changes: unionChanges(a.changes, b.changes), writers };
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
  bodyDecidesExistence: true,
  join: automergeJoin,
  value: (body) => A.toJS(automergeDoc(body)),
  dots: () => [],
  cleared: (body) => ({ inc: body.inc + 1, changes: [], writers: [] }),
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
  encode: (body) => [body.inc, body.changes.map((change) => change.bytes), body.writers.map(([node, id]) => [node, id])],
  decode: (form) => {
    const [inc, changesForm, writersForm] = expectArray(form, 'automerge', 3, 3);
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
    const writers = decodeWriters(writersForm, 'automerge writers', (value, what) => {
      if (typeof value !== 'string' || !actorPattern.test(value)) decodeFail(`${what}: expected 16 hex digits`);
      return value as string;
    });
    return { inc: expectInt(inc, 'automerge incarnation'), changes, writers };
  },
};
