/**
 * `lww` and `mv`: whole-value registers. Both keep every concurrent entry (a write removes the entries it
 * observed); `lww` shows the entry with the latest HLC and records a conflict for each hidden one, `mv` shows
 * all of them as siblings until a write that saw them resolves them.
 */
import { type Dot } from '../context.js';
import { type Json } from '../json.js';
import { type RegEntry, compareRegEntries, conflictSide, decodeRegEntries, encodeRegEntries, joinEntries, winner } from './entries.js';
import { type ConflictFinding, type CrdtType, type Mutation, type MutationContext } from './type.js';

/** A register body: its concurrent entries, sorted by dot. */
export type RegisterBody = readonly RegEntry[];

/** Writes `value`, replacing every entry this replica has observed. */
export function registerSet(body: RegisterBody, value: Json, ctx: MutationContext): Mutation<RegisterBody> {
  const dot = ctx.nextDot();
  return { body: [{ dot, hlc: ctx.hlc, value }], added: [dot], removed: body.map((entry) => entry.dot) };
}

const registerBase = {
  empty: (): RegisterBody => [],
  isEmpty: (body: RegisterBody) => body.length === 0,
  join: joinEntries<RegEntry>,
  dots: (body: RegisterBody): Dot[] => body.map((entry) => entry.dot),
  cleared: (): RegisterBody => [],
  encode: encodeRegEntries,
  decode: (form: unknown): RegisterBody => decodeRegEntries(form, 'register'),
};

/** The `lww` CRDT type: last writer (by HLC among concurrent writes) wins. */
export const lwwType: CrdtType<RegisterBody, Json | undefined> = {
  ...registerBase,
  name: 'lww',
  value: (body) => winner(body)?.value,
  conflicts: (_before, _ctxBefore, delta, _deltaCtx, joined) => {
    if (delta.length === 0 || joined.length < 2) return [];
    const win = winner(joined)!;
    const out: ConflictFinding[] = [];
    for (const entry of joined) {
      if (entry !== win) out.push({ path: [], kind: 'concurrent-write', winner: conflictSide(win), loser: conflictSide(entry) });
    }
    return out;
  },
};

/** The `mv` CRDT type: concurrent values are all kept as siblings (newest first). */
export const mvType: CrdtType<RegisterBody, Json[]> = {
  ...registerBase,
  name: 'mv',
  value: (body) => [...body].sort((a, b) => compareRegEntries(b, a)).map((entry) => entry.value),
  // Siblings are the conflict, visible in the value; nothing is discarded.
  conflicts: () => [],
};
