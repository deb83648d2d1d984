/**
 * The facts a residency decision reads off a document's state: dataset, key, user tags and origin region.
 * Every replica derives the same facts from the same state, whatever path the state took (stamps.ts).
 */
import { type DocState, docTags } from '../crdt/document.js';
import { type DocFacts, isReservedTag, normalizeTags } from '../policy/facts.js';
import { type Policy } from '../policy/policy.js';

/** The facts of `doc` (null: no copy — no tags, no origin). */
export function docFacts(dataset: string, key: string, doc: DocState | null): DocFacts {
  if (doc === null) return { dataset, key, tags: [], origin: null };
  const tags = docTags(doc).filter((tag) => !isReservedTag(tag));
  return { dataset, key, tags: normalizeTags(tags), origin: doc.origin?.region ?? null };
}

/** True when two sets of facts decide alike under any policy (same dataset, key, tags and origin). */
export function sameFacts(a: DocFacts, b: DocFacts): boolean {
  if (a.dataset !== b.dataset || a.key !== b.key || a.origin !== b.origin || a.tags.length !== b.tags.length) return false;
  for (let i = 0; i < a.tags.length; i++) if (a.tags[i] !== b.tags[i]) return false;
  return true;
}

/** The regions that may hold a document with these facts (none without an origin), sorted. */
export function holdersOf(policy: Policy, facts: DocFacts | null): readonly string[] {
  if (facts === null || facts.origin === null) return [];
  return policy.holders(facts);
}

/** `a` without the regions of `b` and without `self`, sorted. */
export function regionsMinus(a: readonly string[], b: readonly string[], self?: string): string[] {
  const drop = new Set(b);
  if (self !== undefined) drop.add(self);
  return [...new Set(a)].filter((region) => !drop.has(region)).sort();
}

/** The union of region lists, sorted. */
export function regionsUnion(...lists: ReadonlyArray<readonly string[]>): string[] {
  return [...new Set(lists.flat())].sort();
}

/** The regions in both lists, sorted. */
export function regionsBoth(a: readonly string[], b: readonly string[]): string[] {
  const keep = new Set(b);
  return [...new Set(a)].filter((region) => keep.has(region)).sort();
}

/** True when the `quarantine` tag is what keeps the document from regions it could otherwise reach. */
export function quarantineHolds(policy: Policy, facts: DocFacts): boolean {
  if (!facts.tags.includes('quarantine')) return false;
  const without = { ...facts, tags: facts.tags.filter((tag) => tag !== 'quarantine') };
  return holdersOf(policy, facts).length < holdersOf(policy, without).length;
}
