/**
 * `set`: an add-wins observed-remove set of JSON scalars. Each element keeps the dots of the adds that put it
 * there; a remove deletes the observed dots, so an add concurrent with a remove survives it.
 */
import { type CausalContext, type Dot, compareDots } from '../context.js';
import { type JsonScalar, isJsonScalar } from '../json.js';
import { decodeFail, expectArray, expectDot, expectSorted } from '../shape.js';
import { type CrdtType, type Mutation, type MutationContext } from './type.js';

/** One element and the dots that added it. */
export interface SetElement {
  readonly element: JsonScalar;
  readonly dots: readonly Dot[];
}

/** A set body, keyed by the element's canonical text. */
export type SetBody = ReadonlyMap<string, SetElement>;

/** The canonical text of a scalar (distinguishes `1` from `"1"`). */
export function elementKey(element: JsonScalar): string {
  return JSON.stringify(element);
}

const emptySet: SetBody = new Map();

function joinDotSets(a: readonly Dot[], ctxA: CausalContext, b: readonly Dot[], ctxB: CausalContext): Dot[] {
  const out: Dot[] = [];
  for (const dot of a) if (b.some((d) => compareDots(d, dot) === 0) || !ctxB.has(dot)) out.push(dot);
  for (const dot of b) if (!a.some((d) => compareDots(d, dot) === 0) && !ctxA.has(dot)) out.push(dot);
  return out.sort(compareDots);
}

/** Joins two OR-set bodies (also used for document tags). */
export function joinSets(a: SetBody, ctxA: CausalContext, b: SetBody, ctxB: CausalContext): SetBody {
  if (a.size === 0 && b.size === 0) return emptySet;
  const out = new Map<string, SetElement>();
  for (const [key, entry] of a) {
    const dots = joinDotSets(entry.dots, ctxA, b.get(key)?.dots ?? [], ctxB);
    if (dots.length > 0) out.set(key, { element: entry.element, dots });
  }
  for (const [key, entry] of b) {
    if (a.has(key)) continue;
    const dots = joinDotSets([], ctxA, entry.dots, ctxB);
    if (dots.length > 0) out.set(key, { element: entry.element, dots });
  }
  return out;
}

/** Adds `element`; its earlier dots are folded into the new one. */
export function setAdd(body: SetBody, element: JsonScalar, ctx: MutationContext): Mutation<SetBody> {
  const key = elementKey(element);
  const dot = ctx.nextDot();
  return { body: new Map([[key, { element, dots: [dot] }]]), added: [dot], removed: body.get(key)?.dots ?? [] };
}

/** Removes `element` as observed here. */
export function setRemove(body: SetBody, element: JsonScalar): Mutation<SetBody> {
  return { body: emptySet, added: [], removed: body.get(elementKey(element))?.dots ?? [] };
}

/** Elements in canonical order. */
export function setElements(body: SetBody): JsonScalar[] {
  return [...body.keys()].sort().map((key) => body.get(key)!.element);
}

/** Canonical form of an OR-set body. */
export function encodeSet(body: SetBody): unknown[] {
  return [...body.keys()].sort().map((key) => [body.get(key)!.element, body.get(key)!.dots]);
}

/** Decodes an OR-set body; `checkElement` validates each element (scalars for sets, tag names for tags). */
export function decodeSet(form: unknown, what: string, checkElement: (element: unknown) => boolean): SetBody {
  const pairs = expectArray(form, what).map((item, i) => {
    const [element, dotsForm] = expectArray(item, `${what}[${i}]`, 2, 2);
    if (!checkElement(element)) decodeFail(`${what}[${i}]: invalid element`);
    const dots = expectArray(dotsForm, `${what}[${i}] dots`, 1).map((dot, j) => expectDot(dot, `${what}[${i}] dot ${j}`));
    expectSorted(dots, compareDots, `${what}[${i}] dots`);
    return [elementKey(element as JsonScalar), { element: element as JsonScalar, dots }] as const;
  });
  expectSorted(pairs, (x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0), what);
  return new Map(pairs);
}

/** The `set` CRDT type. */
export const setType: CrdtType<SetBody, JsonScalar[]> = {
  name: 'set',
  empty: () => emptySet,
  isEmpty: (body) => body.size === 0,
  join: joinSets,
  value: setElements,
  dots: (body) => [...body.values()].flatMap((entry) => entry.dots).sort(compareDots),
  cleared: () => emptySet,
  conflicts: () => [],
  encode: encodeSet,
  decode: (form) => decodeSet(form, 'set', isJsonScalar),
};
