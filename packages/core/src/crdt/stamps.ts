/**
 * The two facts of a document's lineage that are registers rather than dot-based state:
 *
 * - its **origin**: the region whose write created the document, fixed by the creating write. Two regions
 *   that create the same key concurrently each stamp one; the earliest stamp wins everywhere (by HLC, then
 *   node id), so every replica derives the same origin from any subset of the writes that reached it. A
 *   re-creation after a delete keeps the stamp (tombstones keep it); a re-creation by a region that holds no
 *   copy (it never had one, or purged it) stamps a later one, which loses to the original.
 * - its **type stamp**: the creating write that chose the document's current CRDT type. The latest stamp
 *   wins, so a delete followed by a re-creation with another type changes the type everywhere; a concurrent
 *   creation with another type resolves the same way on every replica.
 *
 * Both joins are min/max under a total order: commutative, associative, idempotent.
 */
import { type Hlc, compareHlc } from '../hlc.js';
import { type CrdtTypeName } from './type.js';

/** The creating write of a document's lineage: its region, timestamp and node. */
export interface OriginStamp {
  readonly region: string;
  readonly hlc: Hlc;
  readonly node: string;
}

/** The creating write that chose a document's current type. */
export interface TypeStamp {
  readonly type: CrdtTypeName;
  readonly hlc: Hlc;
  readonly node: string;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Total order on origin stamps: timestamp, then node id, then region. */
export function compareOrigins(a: OriginStamp, b: OriginStamp): number {
  return compareHlc(a.hlc, b.hlc) || compareText(a.node, b.node) || compareText(a.region, b.region);
}

/** Total order on type stamps: timestamp, then node id, then type name. */
export function compareTypeStamps(a: TypeStamp, b: TypeStamp): number {
  return compareHlc(a.hlc, b.hlc) || compareText(a.node, b.node) || compareText(a.type, b.type);
}

/** The join of two origins: the earlier stamp (absent is the identity). */
export function joinOrigins(a: OriginStamp | undefined, b: OriginStamp | undefined): OriginStamp | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return compareOrigins(a, b) <= 0 ? a : b;
}

/** The join of two type stamps: the later stamp (absent is the identity). */
export function joinTypeStamps(a: TypeStamp | undefined, b: TypeStamp | undefined): TypeStamp | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return compareTypeStamps(a, b) >= 0 ? a : b;
}

/** True when two optional stamps are the same write. */
export function sameStamp(a: { readonly hlc: Hlc; readonly node: string } | undefined, b: { readonly hlc: Hlc; readonly node: string } | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.node === b.node && a.hlc.ms === b.hlc.ms && a.hlc.c === b.hlc.c;
}
