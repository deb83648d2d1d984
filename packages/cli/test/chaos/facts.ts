/**
 * What the history says about a document's facts — the origin and tags that decide its placement — and, for
 * documents one client writes, about its value.
 *
 * A node's copy is the join of some of the document's deltas: with forwarding, lanes and catch-up, the deltas
 * need not arrive in the order they were made, so a copy may hold a later write without an earlier tag change.
 * The candidates below are therefore per tag: a tag may be present once some write that adds it was invoked,
 * and absent unless the state is known to carry its add and nothing that removed it was invoked since. This
 * over-approximates what any node could have held, so a residency finding against every candidate is a real
 * one; the price is that some violations go unseen (documented in docs/testing.md).
 */
import { type Op } from './history.js';
import { type ChaosRegion, chaosRegions } from './model.js';
import { type PlacementFacts } from './policy.js';

/** Operations that create a document when it does not exist (a tag change or a delete needs one). */
const creatingKinds: ReadonlySet<Op['kind']> = new Set(['put', 'set-field', 'delete-field', 'increment', 'add', 'remove']);
/** Bound on the fact combinations one question enumerates (2^6 tag sets times three origins). */
export const factCandidatesMax = 3 * 64;

/** True for an operation that may have taken effect (acknowledged, or outcome unknown). */
export const mayHaveHappened = (op: Op): boolean => op.outcome === 'ok' || op.outcome === 'info';

/** The tags an operation gives the document, if it adds any (a PUT with `tags` replaces the user's tags). */
export function tagsAdded(op: Op): readonly string[] {
  if (op.kind === 'put' && Array.isArray(op.args.tags)) return op.args.tags as string[];
  if (op.kind === 'tag' && Array.isArray(op.args.add)) return op.args.add as string[];
  return [];
}

/** True when `op` removes `tag` if the document has it. */
export function removesTag(op: Op, tag: string): boolean {
  if (op.kind === 'put' && Array.isArray(op.args.tags)) return !(op.args.tags as string[]).includes(tag);
  return op.kind === 'tag' && Array.isArray(op.args.remove) && (op.args.remove as string[]).includes(tag);
}

/**
 * The tag sets a copy holding `write` (or any copy, when `write` is null) may have had at a moment up to
 * `atMs`, judging by the operations on the document (`ops`, in invocation order).
 */
export function tagCandidates(ops: readonly Op[], atMs: number, write: Op | null): string[][] {
  const possible = ops.filter((op) => mayHaveHappened(op) && op.invokeMs <= atMs);
  const universe = [...new Set(possible.flatMap(tagsAdded))].sort();
  const choices: Array<readonly boolean[]> = universe.map((tag) => {
    const present = possible.some((op) => tagsAdded(op).includes(tag));
    // The write certainly carries the tag's add only when it adds the tag and nothing before it could have:
    // a PUT with tags adds only the tags its node's copy lacked.
    const carried = write !== null && tagsAdded(write).includes(tag) && !possible.some((op) => op.id < write.id && tagsAdded(op).includes(tag));
    const absent = !carried || possible.some((op) => op.id > write!.id && removesTag(op, tag));
    return [...(present ? [true] : []), ...(absent ? [false] : [])];
  });
  const out: string[][] = [[]];
  universe.forEach((tag, i) => {
    const next: string[][] = [];
    for (const tags of out) for (const present of choices[i]!) next.push(present ? [...tags, tag] : tags);
    out.splice(0, out.length, ...next);
  });
  return out;
}

/** The regions that may be a document's origin: those of the writes that could have created it by `atMs`. */
export function originCandidates(ops: readonly Op[], atMs: number): ChaosRegion[] {
  const regions = new Set(ops.filter((op) => mayHaveHappened(op) && creatingKinds.has(op.kind) && op.invokeMs <= atMs).map((op) => op.region));
  return chaosRegions.filter((region) => regions.has(region));
}

/** Every combination of candidate origin and tags, as the policy reads them. */
export function factCandidates(dataset: string, ops: readonly Op[], atMs: number, write: Op | null): PlacementFacts[] {
  const out: PlacementFacts[] = [];
  for (const origin of originCandidates(ops, atMs)) for (const tags of tagCandidates(ops, atMs, write)) out.push({ dataset, origin, tags });
  if (out.length > factCandidatesMax)
    throw new Error(`${dataset}: ${out.length} fact combinations exceed the bound of ${factCandidatesMax}: the workload uses too many tags on one document`);
  return out;
}

// ---------------------------------------------------------------- one writer's documents

/** A single-writer document as its writer's operations leave it. `value` as `GET` shows it (a set's elements sorted). */
export interface ModelState {
  readonly exists: boolean;
  readonly type: string | null;
  readonly value: unknown;
  readonly tags: readonly string[];
}

/** Unknown outcomes enumerated at most (2^this states); beyond, the value of the document is not judged. */
export const unknownOutcomesMax = 10;

/**
 * The states a single writer's operations (in its program order, at its own node) may have left: acknowledged
 * operations happened, failed ones did not, each unknown one may or may not have. Null when there are more
 * than `unknownOutcomesMax` unknown outcomes.
 */
export function finalStates(ops: readonly Op[], datasetType: string): ModelState[] | null {
  let states: ModelState[] = [{ exists: false, type: null, value: null, tags: [] }];
  let unknown = 0;
  for (const op of ops) {
    if (!mayHaveHappened(op) || op.kind === 'read-token' || op.kind === 'policy') continue;
    const next = states.flatMap((state) => recreations(state, op).map((from) => apply(from, op, datasetType)));
    if (op.outcome === 'ok') {
      states = next;
      continue;
    }
    if (++unknown > unknownOutcomesMax) return null;
    states = [...states, ...next];
  }
  const seen = new Map<string, ModelState>();
  for (const state of states) seen.set(canonical(state), state);
  return [...seen.values()];
}

/**
 * A deleted document keeps its tags; whether a write that creates it again keeps them too is not specified
 * (DESIGN.md says only that re-creation keeps one document per key), so both are candidates.
 */
function recreations(state: ModelState, op: Op): ModelState[] {
  if (state.exists || state.tags.length === 0 || !creatingKinds.has(op.kind)) return [state];
  return [state, { ...state, tags: [] }];
}

function apply(state: ModelState, op: Op, datasetType: string): ModelState {
  const args = op.args;
  const created = state.exists ? state.type : ((args.type as string | undefined) ?? datasetType);
  switch (op.kind) {
    case 'put':
      return {
        exists: true,
        type: created,
        value: created === 'mv' ? [args.value] : args.value,
        tags: Array.isArray(args.tags) ? [...(args.tags as string[])].sort() : state.tags,
      };
    case 'set-field':
      return { ...state, exists: true, type: created, value: { ...(state.exists ? (state.value as object) : {}), [args.field as string]: args.value } };
    case 'delete-field': {
      const value = { ...(state.exists ? (state.value as Record<string, unknown>) : {}) };
      delete value[args.field as string];
      return { ...state, exists: true, type: created, value };
    }
    case 'increment':
      return { ...state, exists: true, type: created, value: (state.exists ? (state.value as number) : 0) + (args.amount as number) };
    case 'add':
      return {
        ...state,
        exists: true,
        type: created,
        value: [...new Set([...(state.exists ? (state.value as string[]) : []), args.element as string])].sort(),
      };
    case 'remove':
      return { ...state, exists: true, type: created, value: (state.exists ? (state.value as string[]) : []).filter((element) => element !== args.element) };
    case 'tag': {
      // A tag change of a document that does not exist is refused (it would have failed, not been unknown).
      if (!state.exists) return state;
      const tags = new Set(state.tags);
      for (const tag of (args.add as string[] | undefined) ?? []) tags.add(tag);
      for (const tag of (args.remove as string[] | undefined) ?? []) tags.delete(tag);
      return { ...state, tags: [...tags].sort() };
    }
    case 'delete':
      // Tags survive a delete (they decide where the tombstone may travel); the next creation picks a type anew.
      return { exists: false, type: null, value: null, tags: state.tags };
    default:
      return state;
  }
}

/** JSON with object keys sorted, for comparing values. */
export function canonical(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((name) => [name, sortKeys((value as Record<string, unknown>)[name])]),
    );
  }
  return value;
}
