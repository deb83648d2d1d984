/**
 * What a region remembers of a document it purged, by key digest — never its key or value: the highest
 * counter of its own dots (so later writes here never reuse one), every dot the copy had seen, and its
 * placement facts (the tags with the dots of their operations, the type and origin stamps). A copy of the same lineage (it shares a dot) that
 * arrives later is accepted only from a sender whose head covers them: one that has not seen what made this
 * region purge is stale, and its copy would put the document back where the facts it lacks keep it from (a
 * region still holding a stale copy re-infecting regions that already purged theirs); the marker sends such a
 * sender the facts it lacks, which it may have no other way to learn (every copy that saw them may be gone).
 * A copy of another lineage (a re-creation by a region that held none) shares no dot and is judged as any copy.
 */
import { CausalContext } from '../context.js';
import { type DocState, emptyDoc, tagContextOf } from '../crdt/document.js';
import { type SetBody, decodeSet, encodeSet, joinSets } from '../crdt/set.js';
import { type OriginStamp, type TypeStamp, compareTypeStamps, joinOrigins, joinTypeStamps } from '../crdt/stamps.js';
import { type CrdtTypeName } from '../crdt/type.js';
import { type Dot } from '../context.js';
import { type Hlc } from '../hlc.js';

/** A purged document's marker. */
export interface PurgeMarker {
  /** The highest counter of the purging node's dots in the copy. */
  readonly counter: number;
  /** Every dot the copy had seen. */
  readonly seen: CausalContext;
  /** The tag operations the copy had seen: the tags' causal context. */
  readonly tagDots: CausalContext;
  /** The tags as the copy had them (with the dots that added them). */
  readonly tags: SetBody;
  readonly typed: TypeStamp | null;
  /** The lineage's origin stamp as the copy knew it (a region and a timestamp: no name of the document). */
  readonly origin: OriginStamp | null;
}

/** The marker of `state` purged at `node`, joined with an earlier marker of the same key. */
export function markerOf(state: DocState | null, node: string, previous: PurgeMarker | null): PurgeMarker {
  const tagDots = (previous?.tagDots ?? new CausalContext()).clone();
  const seen = (previous?.seen ?? new CausalContext()).clone();
  let tags: SetBody = previous?.tags ?? new Map();
  if (state !== null) {
    tags = joinSets(tags, tagDots, state.tags, tagContextOf(state));
    tagDots.merge(tagContextOf(state));
    seen.merge(state.ctx);
  }
  return {
    counter: Math.max(previous?.counter ?? 0, state?.ctx.maxCounter(node) ?? 0),
    seen,
    tagDots,
    tags,
    typed: joinTypeStamps(previous?.typed ?? undefined, state?.typed) ?? null,
    origin: joinOrigins(previous?.origin ?? undefined, state?.origin) ?? null,
  };
}

/**
 * What a marker can still tell a stale sender: the lineage's facts — origin and type stamps, the tags and the
 * dots of their operations — as a head without body (as `docHead`: tag dots are never body dots, so joining it
 * changes the tags only). `type`: the sender's type when the marker has no type stamp.
 */
export function markerHead(marker: PurgeMarker, type: CrdtTypeName): DocState {
  return {
    ...emptyDoc(marker.typed?.type ?? type),
    ctx: marker.tagDots.clone(),
    tags: marker.tags,
    ...(marker.tagDots.isEmpty ? {} : { tagCtx: marker.tagDots.clone() }),
    ...(marker.typed === null ? {} : { typed: marker.typed }),
    ...(marker.origin === null ? {} : { origin: marker.origin }),
  };
}

/**
 * False when a copy (`content`: everything that arrived of it; `facts`: the sender's head, or that content)
 * is of the marker's lineage — it shares a dot — and has not seen everything the marker records: every tag
 * operation and a type stamp no earlier. Such a sender is stale.
 */
export function coversMarker(content: DocState, facts: DocState, marker: PurgeMarker): boolean {
  if (!content.ctx.overlaps(marker.seen) && !facts.ctx.overlaps(marker.seen)) return true;
  if (!tagContextOf(facts).includes(marker.tagDots)) return false;
  if (marker.typed !== null && (facts.typed === undefined || compareTypeStamps(facts.typed, marker.typed) < 0)) return false;
  return true;
}

/** The marker as stored (JSON: dots, stamps, tags and a counter; no key or value of the document). */
export function markerForm(marker: PurgeMarker): unknown {
  const stamp = (s: { hlc: Hlc; node: string } | null) => (s === null ? null : [s.hlc.ms, s.hlc.c, s.node]);
  return {
    counter: marker.counter,
    seen: marker.seen.toJSON(),
    tags: marker.tagDots.toJSON(),
    tagSet: encodeSet(marker.tags),
    typed: marker.typed === null ? null : [...stamp(marker.typed)!, marker.typed.type],
    ...(marker.origin === null ? {} : { origin: [...stamp(marker.origin)!, marker.origin.region] }),
  };
}

/** Reads a stored marker (a bare number is a counter floor of store format 1). Trusted input: the store's own. */
export function markerFromForm(form: unknown): PurgeMarker {
  if (typeof form === 'number') return { counter: form, seen: new CausalContext(), tagDots: new CausalContext(), tags: new Map(), typed: null, origin: null };
  type Dots = { vector: Array<[string, number]>; cloud: Dot[] };
  const record = form as {
    counter: number;
    seen: Dots;
    tags: Dots;
    tagSet?: unknown;
    typed: [number, number, string, string] | null;
    origin?: [number, number, string, string];
  };
  return {
    counter: record.counter,
    seen: CausalContext.from(record.seen.vector, record.seen.cloud),
    tagDots: CausalContext.from(record.tags.vector, record.tags.cloud),
    // Markers written before tags were kept (this round's first builds) have their dots only.
    tags: decodeSet(record.tagSet ?? [], 'purge marker tags', (element) => typeof element === 'string'),
    typed:
      record.typed === null ? null : { hlc: { ms: record.typed[0], c: record.typed[1] }, node: record.typed[2], type: record.typed[3] as TypeStamp['type'] },
    origin: record.origin === undefined ? null : { hlc: { ms: record.origin[0], c: record.origin[1] }, node: record.origin[2], region: record.origin[3] },
  };
}
