/**
 * The join of two document states. Commutative, associative and idempotent: the type stamps and origins join
 * as registers (stamps.ts), presence and tags as dot-keyed sets, and the bodies per type — the current type
 * is the latest type stamp's; bodies of other types stay hidden (`others`) while they hold anything, so that
 * the result does not depend on the order in which type changes arrived.
 */
import { compareDots, type Dot } from '../context.js';
import { joinEntries, type DotEntry } from './entries.js';
import { crdtType } from './registry.js';
import { joinSets } from './set.js';
import { joinOrigins, joinTypeStamps } from './stamps.js';
import { type ConflictFinding, type CrdtType, type CrdtTypeName, crdtTypeNames } from './type.js';
import { type DocState, docExists, tagContextOf } from './document.js';

/** The result of joining: the new state and the automatic resolutions that hid a value. */
export interface JoinResult {
  readonly state: DocState;
  readonly conflicts: readonly ConflictFinding[];
}

/**
 * True when a body holds nothing at all — no content and no incarnation beyond the first (a Yjs or Automerge
 * body cleared by a delete is empty but not blank: its incarnation must survive joins).
 */
export function isBlankBody(impl: CrdtType<unknown, unknown>, body: unknown): boolean {
  if (!impl.isEmpty(body)) return false;
  return JSON.stringify(impl.encode(body)) === JSON.stringify(impl.encode(impl.empty()));
}

/** The bodies of a state by type: the current one and the hidden ones. */
function bodiesOf(doc: DocState): Map<CrdtTypeName, unknown> {
  const out = new Map<CrdtTypeName, unknown>(doc.others ?? []);
  out.set(doc.type, doc.body);
  return out;
}

function asEntry(dot: Dot): DotEntry {
  return { dot };
}

/** Joins two states of a document. Commutative, associative and idempotent. */
export function joinDocs(a: DocState, b: DocState): JoinResult {
  const conflicts: ConflictFinding[] = [];
  const typed = joinTypeStamps(a.typed, b.typed);
  const origin = joinOrigins(a.origin, b.origin);
  // Without any stamp both bodies are blank (every delta with content carries its writer's stamp): the type is
  // then only a label, chosen by a fixed order so that the join stays commutative.
  // biome-ignore lint/complexity/useMathMinMax: type names are strings; Math.min would make them numbers
  const type = typed?.type ?? (a.type <= b.type ? a.type : b.type);
  let body: unknown;
  let others: Map<CrdtTypeName, unknown> | null = null;
  if (a.type === b.type && a.type === type && a.others === undefined && b.others === undefined) {
    // The common case: one type on both sides, nothing hidden.
    const impl = crdtType(type);
    body = impl.join(a.body, a.ctx, b.body, b.ctx);
    conflicts.push(...impl.conflicts(a.body, a.ctx, b.body, b.ctx, body));
  } else {
    const bodiesA = bodiesOf(a);
    const bodiesB = bodiesOf(b);
    for (const name of crdtTypeNames) {
      const bodyA = bodiesA.get(name);
      const bodyB = bodiesB.get(name);
      if (bodyA === undefined && bodyB === undefined && name !== type) continue;
      const impl = crdtType(name);
      const left = bodyA ?? impl.empty();
      const right = bodyB ?? impl.empty();
      const joined = impl.join(left, a.ctx, right, b.ctx);
      if (name === type) {
        body = joined;
        if (bodyA !== undefined && bodyB !== undefined) conflicts.push(...impl.conflicts(left, a.ctx, right, b.ctx, joined));
      } else if (!isBlankBody(impl, joined)) {
        (others ??= new Map()).set(name, joined);
      }
    }
    if (a.type !== b.type) {
      // The side whose visible type lost shows its content no more: a conflict, unless the winner saw it all.
      const [lose, win] = a.type === type ? [b, a] : [a, b];
      if (docExists(lose) && !win.ctx.includes(lose.ctx)) {
        conflicts.push({
          path: [],
          kind: 'type-mismatch',
          winner: { value: { type }, dot: null, hlc: null },
          loser: { value: { type: lose.type }, dot: null, hlc: null },
        });
      }
    }
  }
  const live =
    a.live.length === 0 && b.live.length === 0
      ? []
      : joinEntries(a.live.map(asEntry), a.ctx, b.live.map(asEntry), b.ctx)
          .map((entry) => entry.dot)
          .sort(compareDots);
  const tagCtxA = tagContextOf(a);
  const tagCtxB = tagContextOf(b);
  const tags = joinSets(a.tags, tagCtxA, b.tags, tagCtxB);
  const ctx = a.ctx.clone();
  ctx.merge(b.ctx);
  let tagCtx = tagCtxA;
  if (!tagCtxA.includes(tagCtxB)) {
    tagCtx = tagCtxA.clone();
    tagCtx.merge(tagCtxB);
  }
  const state: DocState = {
    type,
    ctx,
    live,
    tags,
    body,
    ...(tagCtx.isEmpty ? {} : { tagCtx }),
    ...(typed === undefined ? {} : { typed }),
    ...(origin === undefined ? {} : { origin }),
    ...(others === null ? {} : { others }),
  };
  return { state, conflicts };
}
