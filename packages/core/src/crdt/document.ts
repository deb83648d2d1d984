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
import { type Hlc, compareHlc, hlcCounterMax } from '../hlc.js';
import { checkTag } from '../names.js';
import { type OriginStamp, type TypeStamp } from './stamps.js';
import { type SetBody, setAdd, setElements, setRemove } from './set.js';
import { crdtType } from './registry.js';
import { type CrdtTypeName, type Mutation, type MutationContext } from './type.js';
import { isBlankBody, joinDocs } from './join.js';

/** A document's replicated state. Immutable: joins and mutations return new states. */
export interface DocState {
  /** The current CRDT type: the type of `typed` when the document was ever created. */
  readonly type: CrdtTypeName;
  readonly ctx: CausalContext;
  /** Presence: a document exists while it holds a presence dot or a non-empty body. */
  readonly live: readonly Dot[];
  readonly tags: SetBody;
  /**
   * The dots of tag operations seen (adds, and the adds that removes took away): the tags' own causal context,
   * so that the tags and their context alone — a document's head (`docHead`) — carry removals too. Absent
   * when empty.
   */
  readonly tagCtx?: CausalContext;
  /** The body of the current type. */
  readonly body: unknown;
  /** The creating write of the lineage (stamps.ts); absent until a creating write is seen. */
  readonly origin?: OriginStamp;
  /**
   * The creating write that chose `type` (stamps.ts). Every state with a non-empty body has one: deltas carry
   * their writer's, so that every replica resolves the type alike whatever the order of delivery.
   */
  readonly typed?: TypeStamp;
  /**
   * Bodies of other types that still hold writes the change of type did not observe (writes concurrent with
   * the delete that preceded a re-creation with another type). Hidden from readers, reported as conflicts,
   * and kept so that the join stays associative. Absent or empty almost always.
   */
  readonly others?: ReadonlyMap<CrdtTypeName, unknown>;
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
  const type = crdtType(doc.type);
  return (doc.live.length > 0 && type.bodyDecidesExistence !== true) || !type.isEmpty(doc.body);
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
    peekCounter: () => counter + 1,
    nextDot: () => {
      const dot: Dot = [node, ++counter];
      issued.push(dot);
      return dot;
    },
  };
}

/** Applies a tag change: the delta's tags, and the tag dots it adds or removes (pushed to `tagDots`). */
function applyTagChange(doc: DocState, change: TagChange | undefined, mctx: MutationContext, tagDots: Dot[]): SetBody {
  if (change === undefined) return new Map();
  const out = new Map<string, { element: string; dots: readonly Dot[] }>();
  for (const tag of change.remove ?? []) {
    checkTag(tag);
    tagDots.push(...setRemove(doc.tags, tag).removed);
  }
  for (const tag of change.add ?? []) {
    checkTag(tag);
    const add = setAdd(doc.tags, tag, mctx);
    tagDots.push(...add.removed, ...add.added);
    for (const [key, entry] of add.body) out.set(key, entry as { element: string; dots: readonly Dot[] });
  }
  return out;
}

/** The empty context, shared (contexts in states are never mutated). */
const noDots = new CausalContext();

/** A state's tag context (empty when absent). */
export function tagContextOf(doc: DocState): CausalContext {
  return doc.tagCtx ?? noDots;
}

/** What a write knows besides its node and timestamp. */
export interface MutateOptions {
  /** The writer's region: recorded as the origin when the write creates a document that has none. */
  readonly region?: string;
  /**
   * The type the write creates the document with, when it does not exist; it may differ from `doc.type` (a
   * re-creation with another type after a delete). Ignored for a document that exists.
   */
  readonly type?: CrdtTypeName;
}

/**
 * `doc` seen as a document of `type` (for a write that re-creates a deleted document with another type): the
 * current body moves to `others` when it holds anything, and the body of `type` comes from there.
 */
function viewAs(doc: DocState, type: CrdtTypeName): DocState {
  if (doc.type === type) return doc;
  const others = new Map(doc.others ?? []);
  if (!isBlankBody(crdtType(doc.type), doc.body)) others.set(doc.type, doc.body);
  const body = others.get(type) ?? crdtType(type).empty();
  others.delete(type);
  return { ...doc, type, body, others };
}

/** A type stamp for a creating write at `hlc`, later than the one the writer observed. */
function typeStampFor(doc: DocState, type: CrdtTypeName, node: string, hlc: Hlc): TypeStamp {
  const seen = doc.typed;
  if (seen === undefined || compareHlc(hlc, seen.hlc) > 0) return { type, hlc, node };
  // The writer's clock is behind a stamp it observed (a state carries stamps whose timestamps the clock
  // never saw): the re-creation still comes after what it saw.
  const next = seen.hlc.c < hlcCounterMax ? { ms: seen.hlc.ms, c: seen.hlc.c + 1 } : { ms: seen.hlc.ms + 1, c: 0 };
  return { type, hlc: next, node };
}

/**
 * Applies one operation at `node` with timestamp `hlc`. `mutator` changes the body (or is null for a change
 * of tags only). Returns null when nothing would change. A write that makes a document exist that did not
 * (a creating write) stamps the type, and the origin when the document has none (`options.region`); every
 * delta carries its writer's stamps (stamps.ts).
 */
export function mutate(doc: DocState, node: string, hlc: Hlc, mutator: BodyMutator | null, tags?: TagChange, options: MutateOptions = {}): DocMutation | null {
  const target = options.type !== undefined && !docExists(doc) ? viewAs(doc, options.type) : doc;
  const mctx = dotIssuer(target, node, hlc);
  const type = crdtType(target.type);
  const result = mutator === null ? null : mutator(target.body, mctx);
  // An operation that neither adds nor removes a dot (deleting an absent field) changes nothing — unless it
  // is a whole-value write that creates the document (`put {}`).
  const unchanged = result !== null && result.added.length === 0 && result.removed.length === 0 && !(result.touch === true && !docExists(target));
  const mutation = unchanged ? null : result;
  const removed: Dot[] = [...(mutation?.removed ?? [])];
  const tagDots: Dot[] = [];
  const tagBody = applyTagChange(target, tags, mctx, tagDots);
  removed.push(...tagDots);
  if (mutation === null && mctx.issued.length === 0 && removed.length === 0) return null;
  // Writing to a document that does not exist (re)creates it.
  const creating = mutation !== null && !docExists(target);
  // Presence is an enable-wins flag: every body write replaces the presence dots it observed with its own.
  // A write that saw another thus also saw that it exists; a delete removes the presence it observed, and
  // only writes it did not observe survive it — also when a region learned of an earlier write only through
  // a later write that replaced it (the earlier write's own delta never reached it).
  const live = mutation !== null ? [mctx.nextDot()] : [];
  if (mutation !== null) removed.push(...target.live);
  // Every delta carries a fresh dot, even a pure removal (see the file comment).
  if (mctx.issued.length === 0) mctx.nextDot();
  const ctx = CausalContext.from([], [...mctx.issued, ...removed]);
  const typed = creating ? typeStampFor(target, target.type, node, hlc) : target.typed;
  const origin = target.origin ?? (creating && options.region !== undefined ? { region: options.region, hlc, node } : undefined);
  const delta: DocState = {
    type: target.type,
    ctx,
    live,
    tags: tagBody,
    body: mutation?.body ?? type.empty(),
    ...(tagDots.length === 0 ? {} : { tagCtx: CausalContext.from([], tagDots) }),
    ...(typed === undefined ? {} : { typed }),
    ...(origin === undefined ? {} : { origin }),
  };
  return { delta, state: joinDocs(target, delta).state, dot: mctx.issued[0]! };
}

/**
 * Deletes the document as observed here; returns null when there is nothing to delete. With `keepTags` the
 * tags survive the delete: they are the document's classification (`quarantine`, `pii`), which decides where
 * even its tombstone may travel. The origin and type stamps always survive.
 */
export function remove(doc: DocState, node: string, hlc: Hlc, options: { readonly keepTags?: boolean } = {}): DocMutation | null {
  const keepTags = options.keepTags === true;
  const others = [...(doc.others ?? new Map<CrdtTypeName, unknown>())];
  if (!docExists(doc) && others.length === 0 && (keepTags || doc.tags.size === 0)) return null;
  const mctx = dotIssuer(doc, node, hlc);
  mctx.nextDot();
  const removed = keepTags ? [...doc.live, ...crdtType(doc.type).dots(doc.body)] : docDots(doc);
  // Hidden bodies of other types are part of what the delete observed.
  const othersCleared = new Map<CrdtTypeName, unknown>();
  for (const [name, body] of others) {
    const impl = crdtType(name);
    removed.push(...impl.dots(body));
    // Types without dots (Yjs, Automerge) clear by a higher incarnation, which must travel.
    if (impl.dots(body).length === 0) othersCleared.set(name, impl.cleared(body));
  }
  const ctx = CausalContext.from([], [...mctx.issued, ...removed]);
  const tagDots = keepTags ? [] : [...doc.tags.values()].flatMap((entry) => entry.dots);
  const delta: DocState = {
    type: doc.type,
    ctx,
    live: [],
    tags: new Map(),
    body: crdtType(doc.type).cleared(doc.body),
    ...(tagDots.length === 0 ? {} : { tagCtx: CausalContext.from([], tagDots) }),
    ...(doc.typed === undefined ? {} : { typed: doc.typed }),
    ...(doc.origin === undefined ? {} : { origin: doc.origin }),
    ...(othersCleared.size === 0 ? {} : { others: othersCleared }),
  };
  return { delta, state: joinDocs(doc, delta).state, dot: mctx.issued[0]! };
}

/**
 * The placement facts of a document as a state of their own: its origin, type stamp and tags with the tags'
 * own context (nothing of the body). Joining it into any copy brings the copy's facts up to this one's —
 * tag removals included — and touches no body entry; a sender attaches it to what it sends, so that the
 * receiver judges the document by the facts the sender judged it by.
 */
export function docHead(doc: DocState): DocState {
  const tagCtx = tagContextOf(doc);
  return {
    type: doc.type,
    ctx: tagCtx,
    live: [],
    tags: doc.tags,
    body: crdtType(doc.type).empty(),
    ...(tagCtx.isEmpty ? {} : { tagCtx }),
    ...(doc.typed === undefined ? {} : { typed: doc.typed }),
    ...(doc.origin === undefined ? {} : { origin: doc.origin }),
  };
}
