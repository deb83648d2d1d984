/**
 * The store's side of the policy: the facts a decision needs, read off a document's state, and what a change
 * of tags or of policy means for the set of regions that may hold a document.
 *
 * A document records the region that created it as a reserved tag (`origin:<region>`), so every replica
 * derives the same facts from the same state, whatever path the state took. A state that lacks it (a
 * fragment that arrived before the write that created the document) is judged by the region its change
 * came from.
 */
import { type DocFacts, type DocState, type Policy, docTags, factsOf } from '@tessera/core';

/** The facts the policy judges a document by. */
export function docFacts(dataset: string, key: string, state: DocState | null, fallbackOrigin: string): DocFacts {
  const facts = factsOf(dataset, key, state === null ? [] : docTags(state));
  return facts.origin === undefined || facts.origin === null ? { ...facts, origin: fallbackOrigin } : facts;
}

/** Regions gained and lost between two sets of holders. */
export function holderChange(before: readonly string[], after: readonly string[]): { added: string[]; removed: string[] } {
  const was = new Set(before);
  const now = new Set(after);
  return { added: after.filter((region) => !was.has(region)), removed: before.filter((region) => !now.has(region)) };
}

/** True when the `quarantine` tag is what keeps the document from regions it could otherwise reach. */
export function quarantineHolds(policy: Policy, facts: DocFacts): boolean {
  if (!facts.tags.includes('quarantine')) return false;
  const without = { ...facts, tags: facts.tags.filter((tag) => tag !== 'quarantine') };
  return policy.holders(facts).length < policy.holders(without).length;
}

/**
 * The region that sends a document to regions a new policy opens for it: the first (by name) of the regions
 * that held it before and still may, or of those that held it before when none still may. Every replica
 * computes the same one, so a backfill is sent once, not once per holder.
 */
export function backfillLeader(before: readonly string[], after: readonly string[]): string | undefined {
  const now = new Set(after);
  const staying = before.filter((region) => now.has(region));
  return [...(staying.length > 0 ? staying : before)].sort()[0];
}
