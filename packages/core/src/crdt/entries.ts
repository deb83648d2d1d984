/**
 * Dot-keyed entry lists: the dot functions of delta-state CRDT theory. An entry survives a join if both sides
 * hold it, or if the other side has not seen its dot (so it was not removed there).
 */
import { type CausalContext, type Dot, compareDots, sameDot } from '../context.js';
import { type Hlc, compareHlc } from '../hlc.js';
import { type Json } from '../json.js';
import { type ConflictSide } from './type.js';
import { expectArray, expectDot, expectHlc, expectJson, expectSorted } from '../shape.js';

/** An entry identified by its dot. */
export interface DotEntry {
  readonly dot: Dot;
}

/** A register value written at `dot` with timestamp `hlc`. */
export interface RegEntry extends DotEntry {
  readonly hlc: Hlc;
  readonly value: Json;
}

/** Join of two dot-keyed entry lists; the result is sorted by dot. */
export function joinEntries<E extends DotEntry>(a: readonly E[], ctxA: CausalContext, b: readonly E[], ctxB: CausalContext): E[] {
  if (a.length === 0 && b.length === 0) return [];
  const out: E[] = [];
  for (const entry of a) {
    if (b.some((other) => sameDot(other.dot, entry.dot)) || !ctxB.has(entry.dot)) out.push(entry);
  }
  for (const entry of b) {
    if (!a.some((other) => sameDot(other.dot, entry.dot)) && !ctxA.has(entry.dot)) out.push(entry);
  }
  return out.length > 1 ? out.sort((x, y) => compareDots(x.dot, y.dot)) : out;
}

/** Order of concurrent register entries: the later timestamp wins, ties broken by dot (node id, counter). */
export function compareRegEntries(a: RegEntry, b: RegEntry): number {
  return compareHlc(a.hlc, b.hlc) || compareDots(a.dot, b.dot);
}

/** The winning entry of a register, or undefined when it holds none. */
export function winner(entries: readonly RegEntry[]): RegEntry | undefined {
  let best: RegEntry | undefined;
  for (const entry of entries) if (best === undefined || compareRegEntries(entry, best) > 0) best = entry;
  return best;
}

/** A register entry as one side of a conflict record. */
export function conflictSide(entry: RegEntry): ConflictSide {
  return { value: entry.value, dot: entry.dot, hlc: entry.hlc };
}

/** Canonical form of register entries. */
export function encodeRegEntries(entries: readonly RegEntry[]): unknown[] {
  return entries.map((entry) => [entry.dot, [entry.hlc.ms, entry.hlc.c], entry.value]);
}

/** Decodes register entries (values are checked by the document decoder's JSON check). */
export function decodeRegEntries(form: unknown, what: string): RegEntry[] {
  const entries = expectArray(form, what).map((item, i) => {
    const [dot, hlc, value] = expectArray(item, `${what}[${i}]`, 3, 3);
    return { dot: expectDot(dot, `${what}[${i}] dot`), hlc: expectHlc(hlc, `${what}[${i}] hlc`), value: expectJson(value, `${what}[${i}] value`) };
  });
  expectSorted(entries, (x, y) => compareDots(x.dot, y.dot), what);
  return entries;
}
