/**
 * Documents: a CRDT body plus what every document has — the causal context of every dot it has seen, the
 * presence dots that say it exists, and its tags (an add-wins set, replicated like any other state).
 *
 * A delta is itself a document state (small: only the new entries, with a context holding the new dots and
 * the observed dots it removes), so applying a delta and merging replicas are the same join. Every delta
 * carries at least one fresh dot, so a delta whose context holds a dot this replica has not seen always
 * changes it. The converse does not hold (a later delta's removals can put an earlier delta's dots in the
 * context before the earlier delta arrives), so `joinDelta` (apply.ts) decides "changed" exactly.
 */
import { CausalContext, type Dot, compareDots } from '../context.js';
import { contextCloudDotsMax, contextNodesMax } from '../limits.js';
import { decodeFail, expectArray, expectDot, expectInt, expectNodeId, expectSorted } from '../shape.js';
import { type Hlc } from '../hlc.js';
import { checkTag } from '../names.js';
import { type SetBody, decodeSet, encodeSet, joinSets, setAdd, setElements, setRemove } from './set.js';
import { joinEntries, type DotEntry } from './entries.js';
import { crdtType } from './registry.js';
import { type ConflictFinding, type CrdtTypeName, type Mutation, type MutationContext } from './type.js';

/** A document's replicated state. Immutable: joins and mutations return new states. */
export interface DocState {
  readonly type: CrdtTypeName;
  readonly ctx: CausalContext;
  /** Presence: a document exists while it holds a presence dot or a non-empty body. */
  readonly live: readonly Dot[];
  readonly tags: SetBody;
  readonly body: unknown;
  /**
   * Not replicated state: a counter below which this replica must not issue dots for the writing node (set by
   * a store that dropped the document's state and its context with it, so that a new write cannot reuse dots
   * other replicas have already seen). Absent almost always.
   */
  readonly counterFloor?: number;
}

/** Changes to a document's tags that travel with a mutation. */
export interface TagChange {
  readonly add?: readonly string[];
  readonly remove?: readonly string[];
}

/** A mutation applied to a document: the delta to log and replicate, the new state, and the write's own dot. */
export interface DocMutation {
  readonly delta: DocState;
  readonly state: DocState;
  /** A dot this write issued: a replica whose context holds it has the write (or a write that saw it). */
  readonly dot: Dot;
}

/** A body mutation for `mutate`; returns null when the operation changes nothing. */
export type BodyMutator = (body: unknown, ctx: MutationContext) => Mutation<unknown> | null;

/** A state with nothing seen, of type `type`. */
export function emptyDoc(type: CrdtTypeName): DocState {
  return { type, ctx: new CausalContext(), live: [], tags: new Map(), body: crdtType(type).empty() };
}

/** True when the document exists (it was written and not deleted since, or a concurrent write survived). */
export function docExists(doc: DocState): boolean {
  return doc.live.length > 0 || !crdtType(doc.type).isEmpty(doc.body);
}

/** The value users read. */
export function docValue(doc: DocState): unknown {
  return crdtType(doc.type).value(doc.body);
}

/** The document's tags, sorted. */
export function docTags(doc: DocState): string[] {
  return setElements(doc.tags) as string[];
}

/** Every dot the document's state holds (not the whole context). */
export function docDots(doc: DocState): Dot[] {
  const dots = [...doc.live, ...crdtType(doc.type).dots(doc.body)];
  for (const entry of doc.tags.values()) dots.push(...entry.dots);
  return dots.sort(compareDots);
}

function dotIssuer(doc: DocState, node: string, hlc: Hlc): MutationContext & { issued: Dot[] } {
  let counter = Math.max(doc.ctx.maxCounter(node), doc.counterFloor ?? 0);
  const issued: Dot[] = [];
  return {
    hlc,
    node,
    issued,
    nextDot: () => {
      const dot: Dot = [node, ++counter];
      issued.push(dot);
      return dot;
    },
  };
}

function applyTagChange(doc: DocState, change: TagChange | undefined, mctx: MutationContext, removed: Dot[]): SetBody {
  if (change === undefined) return new Map();
  const out = new Map<string, { element: string; dots: readonly Dot[] }>();
  for (const tag of change.remove ?? []) {
    checkTag(tag);
    removed.push(...setRemove(doc.tags, tag).removed);
  }
  for (const tag of change.add ?? []) {
    checkTag(tag);
    const add = setAdd(doc.tags, tag, mctx);
    removed.push(...add.removed);
    for (const [key, entry] of add.body) out.set(key, entry as { element: string; dots: readonly Dot[] });
  }
  return out;
}

/**
 * Applies one operation at `node` with timestamp `hlc`. `mutator` changes the body (or is null for a change
 * of tags only). Returns null when nothing would change.
 */
export function mutate(doc: DocState, node: string, hlc: Hlc, mutator: BodyMutator | null, tags?: TagChange): DocMutation | null {
  const mctx = dotIssuer(doc, node, hlc);
  const type = crdtType(doc.type);
  const result = mutator === null ? null : mutator(doc.body, mctx);
  // An operation that neither adds nor removes a dot (deleting an absent field) changes nothing — unless it
  // is a whole-value write that creates the document (`put {}`).
  const unchanged = result !== null && result.added.length === 0 && result.removed.length === 0 &&
    !(result.touch === true && !docExists(doc));
  const mutation = unchanged ? null : result;
  const removed: Dot[] = [...(mutation?.removed ?? [])];
  const tagBody = applyTagChange(doc, tags, mctx, removed);
  if (mutation === null && mctx.issued.length === 0 && removed.length === 0) return null;
  // Writing to a document that does not exist (re)creates it.
  const live = doc.live.length === 0 && mutation !== null ? [mctx.nextDot()] : [];
  // Every delta carries a fresh dot, even a pure removal (see the file comment).
  if (mctx.issued.length === 0) mctx.nextDot();
  const ctx = CausalContext.from([], [...mctx.issued, ...removed]);
  const delta: DocState = { type: doc.type, ctx, live, tags: tagBody, body: mutation?.body ?? type.empty() };
  return { delta, state: joinDocs(doc, delta).state, dot: mctx.issued[0]! };
}

/**
 * Deletes the document as observed here; returns null when there is nothing to delete. With `keepTags` the
 * tags survive the delete: they are the document's classification (`quarantine`, `pii`, its origin region),
 * which decides where even its tombstone may travel.
 */
export function remove(doc: DocState, node: string, hlc: Hlc, options: { readonly keepTags?: boolean } = {}): DocMutation | null {
  const keepTags = options.keepTags === true;
  if (!docExists(doc) && (keepTags || doc.tags.size === 0)) return null;
  const mctx = dotIssuer(doc, node, hlc);
  mctx.nextDot();
  const removed = keepTags ? [...doc.live, ...crdtType(doc.type).dots(doc.body)] : docDots(doc);
  const ctx = CausalContext.from([], [...mctx.issued, ...removed]);
  const delta: DocState = { type: doc.type, ctx, live: [], tags: new Map(), body: crdtType(doc.type).cleared(doc.body) };
  return { delta, state: joinDocs(doc, delta).state, dot: mctx.issued[0]! };
}

/** The result of joining: the new state and the automatic resolutions that hid a value. */
export interface JoinResult {
  readonly state: DocState;
  readonly conflicts: readonly ConflictFinding[];
}


function typeWinner(a: DocState, b: DocState): DocState {
  // A causally later state (one that saw the other entirely) decides the type; otherwise a fixed order.
  const aSawB = a.ctx.includes(b.ctx);
  const bSawA = b.ctx.includes(a.ctx);
  if (aSawB !== bSawA) return aSawB ? a : b;
  return a.type < b.type ? a : b;
}

/** Joins two states of a document. Commutative, associative and idempotent. */
export function joinDocs(a: DocState, b: DocState): JoinResult {
  const conflicts: ConflictFinding[] = [];
  if (a.type !== b.type) {
    const win = typeWinner(a, b);
    const lose = win === a ? b : a;
    const ctx = a.ctx.clone();
    ctx.merge(b.ctx);
    if (docExists(lose) && !win.ctx.includes(lose.ctx)) {
      conflicts.push({
        path: [],
        kind: 'type-mismatch',
        winner: { value: { type: win.type }, dot: null, hlc: null },
        loser: { value: { type: lose.type }, dot: null, hlc: null },
      });
    }
    return { state: { ...win, ctx }, conflicts };
  }
  const type = crdtType(a.type);
  const body = type.join(a.body, a.ctx, b.body, b.ctx);
  conflicts.push(...type.conflicts(a.body, a.ctx, b.body, b.ctx, body));
  const live = joinEntries(a.live.map(asEntry), a.ctx, b.live.map(asEntry), b.ctx).map((entry) => entry.dot);
  const tags = joinSets(a.tags, a.ctx, b.tags, b.ctx);
  const ctx = a.ctx.clone();
  ctx.merge(b.ctx);
  return { state: { type: a.type, ctx, live, tags, body }, conflicts };
}

function asEntry(dot: Dot): DotEntry {
  return { dot };
}

/** Canonical plain form of a document state (see codec.ts for the bytes). */
export function docForm(doc: DocState): unknown[] {
  const { vector, cloud } = doc.ctx.toJSON();
  return [doc.type, vector, cloud, [...doc.live], encodeSet(doc.tags), crdtType(doc.type).encode(doc.body)];
}

/** Inverse of `docForm` for untrusted input; throws `ERR_DECODE`. */
export function docFromForm(form: unknown): DocState {
  const [typeName, vector, cloud, liveForm, tagsForm, bodyForm] = expectArray(form, 'document', 6, 6);
  let type;
  try {
    type = crdtType(typeName);
  } catch (error) {
    return decodeFail(`document: ${(error as Error).message}`);
  }
  const ctx = contextFromForm(vector, cloud);
  const live = expectArray(liveForm, 'document presence dots').map((dot, i) => expectDot(dot, `presence dot ${i}`));
  expectSorted(live, compareDots, 'document presence dots');
  const tags = decodeSet(tagsForm, 'document tags', isTag);
  return { type: type.name, ctx, live, tags, body: type.decode(bodyForm) };
}

function isTag(tag: unknown): boolean {
  try {
    checkTag(tag);
    return true;
  } catch {
    return false;
  }
}

/** Decodes a causal context's canonical form, within the size bounds. */
export function contextFromForm(vectorForm: unknown, cloudForm: unknown): CausalContext {
  const vector = expectArray(vectorForm, 'context vector', 0, contextNodesMax).map((pair, i) => {
    const [node, max] = expectArray(pair, `context vector[${i}]`, 2, 2);
    return [expectNodeId(node, `context vector[${i}] node`), expectInt(max, `context vector[${i}] counter`, 1)] as const;
  });
  expectSorted(vector, (x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0), 'context vector');
  const cloud = expectArray(cloudForm, 'context cloud', 0, contextCloudDotsMax).map((dot, i) => expectDot(dot, `context cloud[${i}]`));
  expectSorted(cloud, compareDots, 'context cloud');
  const ctx = CausalContext.from(vector, cloud);
  if (ctx.size.nodes > contextNodesMax) decodeFail(`context names ${ctx.size.nodes} nodes, over the limit of ${contextNodesMax}`);
  return ctx;
}
