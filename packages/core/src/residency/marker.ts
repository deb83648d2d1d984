/**
 * What a region remembers of a document it purged, by key digest — never its key, value or tags: the highest
 * counter of its own dots (so later writes here never reuse one), and the facts' bare dots and stamps (the
 * tag operations seen, the origin and type stamps). A copy that arrives later for that key is accepted only
 * from a sender whose head covers them: one that has not seen what made this region purge is stale, and its
 * copy would put the document back where the facts it lacks keep it from (a region still holding a stale copy
 * re-infecting regions that already purged theirs).
 */
import { CausalContext } from '../context.js';
import { type DocState, tagContextOf } from '../crdt/document.js';
import { type OriginStamp, type TypeStamp, compareOrigins, compareTypeStamps, joinOrigins, joinTypeStamps } from '../crdt/stamps.js';
import { type Dot } from '../context.js';
import { type Hlc } from '../hlc.js';

/** A purged document's marker. */
export interface PurgeMarker {
  /** The highest counter of the purging node's dots in the copy. */
  readonly counter: number;
  /** The tag operations the copy had seen (dots only). */
  readonly tagDots: CausalContext;
  readonly origin: OriginStamp | null;
  readonly typed: TypeStamp | null;
}

/** The marker of `state` purged at `node`, joined with an earlier marker of the same key. */
export function markerOf(state: DocState | null, node: string, previous: PurgeMarker | null): PurgeMarker {
  const tagDots = (previous?.tagDots ?? new CausalContext()).clone();
  if (state !== null) tagDots.merge(tagContextOf(state));
  return {
    counter: Math.max(previous?.counter ?? 0, state?.ctx.maxCounter(node) ?? 0),
    tagDots,
    origin: joinOrigins(previous?.origin ?? undefined, state?.origin) ?? null,
    typed: joinTypeStamps(previous?.typed ?? undefined, state?.typed) ?? null,
  };
}

/**
 * True when `facts` (a sender's head, or the copy an apply would make) have seen everything the marker
 * records: every tag operation, an origin no later, a type stamp no earlier.
 */
export function coversMarker(facts: DocState, marker: PurgeMarker): boolean {
  if (!tagContextOf(facts).includes(marker.tagDots)) return false;
  if (marker.origin !== null && (facts.origin === undefined || compareOrigins(facts.origin, marker.origin) > 0)) return false;
  if (marker.typed !== null && (facts.typed === undefined || compareTypeStamps(facts.typed, marker.typed) < 0)) return false;
  return true;
}

/** The marker as stored (JSON: dots, stamps and a counter; no names of the document). */
export function markerForm(marker: PurgeMarker): unknown {
  const stamp = (s: { hlc: Hlc; node: string } | null) => (s === null ? null : [s.hlc.ms, s.hlc.c, s.node]);
  return {
    counter: marker.counter,
    tags: marker.tagDots.toJSON(),
    origin: marker.origin === null ? null : [...stamp(marker.origin)!, marker.origin.region],
    typed: marker.typed === null ? null : [...stamp(marker.typed)!, marker.typed.type],
  };
}

/** Reads a stored marker (a bare number is a counter floor of store format 1). Trusted input: the store's own. */
export function markerFromForm(form: unknown): PurgeMarker {
  if (typeof form === 'number') return { counter: form, tagDots: new CausalContext(), origin: null, typed: null };
  const record = form as { counter: number; tags: { vector: Array<[string, number]>; cloud: Dot[] }; origin: [number, number, string, string] | null; typed: [number, number, string, string] | null };
  return {
    counter: record.counter,
    tagDots: CausalContext.from(record.tags.vector, record.tags.cloud),
    origin: record.origin === null ? null : { hlc: { ms: record.origin[0], c: record.origin[1] }, node: record.origin[2], region: record.origin[3] },
    typed: record.typed === null ? null : { hlc: { ms: record.typed[0], c: record.typed[1] }, node: record.typed[2], type: record.typed[3] as TypeStamp['type'] },
  };
}
