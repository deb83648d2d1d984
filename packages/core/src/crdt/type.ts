/**
 * The one interface every CRDT type implements. A body is the type-specific part of a document; the causal
 * context is shared by the whole document (document.ts), so joins take both sides' contexts. Mutations are
 * type-specific functions that return a `Mutation`: the delta body plus the dots it adds and removes.
 */
import { type CausalContext, type Dot } from '../context.js';
import { type Hlc } from '../hlc.js';
import { type Json } from '../json.js';

/** The CRDT type names. */
export const crdtTypeNames = ['map', 'lww', 'mv', 'counter', 'set', 'yjs', 'automerge'] as const;
/** A CRDT type name. */
export type CrdtTypeName = (typeof crdtTypeNames)[number];

/** What a mutation needs from the document it mutates: fresh dots, the timestamp, the writing node. */
export interface MutationContext {
  /** Issues the next dot for this document at this node. */
  nextDot(): Dot;
  /** The counter the next dot will have, without issuing it. */
  peekCounter?(): number;
  readonly hlc: Hlc;
  readonly node: string;
}

/** A mutation's result: the delta body, the dots it created, and the observed dots it removes. */
export interface Mutation<Body> {
  readonly body: Body;
  readonly added: readonly Dot[];
  readonly removed: readonly Dot[];
  /** True for a whole-value write that (re)creates the document even when no dot changes (`put {}`). */
  readonly touch?: boolean;
}

/** One value that took part in an automatic resolution. */
export interface ConflictSide {
  readonly value: Json | null;
  readonly dot: Dot | null;
  readonly hlc: Hlc | null;
}

/** An automatic resolution that discarded (or hid) a value, found while joining a delta. */
export interface ConflictFinding {
  /** Field path inside the document; empty for the whole value. */
  readonly path: readonly string[];
  readonly kind: 'concurrent-write' | 'type-clash' | 'delete-discarded-update' | 'type-mismatch';
  readonly winner: ConflictSide;
  readonly loser: ConflictSide;
}

/** The operations every CRDT type provides. */
export interface CrdtType<Body, Value> {
  readonly name: CrdtTypeName;
  /** The body of a document that holds nothing. */
  empty(): Body;
  /** True when the body holds nothing (an existing document may still be empty, see `live` in document.ts). */
  isEmpty(body: Body): boolean;
  /**
   * The body alone decides whether the document exists (Yjs, Automerge): a delete starts a new incarnation,
   * and an update to an older one is discarded with a conflict record — its presence must not outlive it.
   */
  readonly bodyDecidesExistence?: true;
  /** Join of two bodies with their documents' contexts. Commutative, associative, idempotent. */
  join(a: Body, ctxA: CausalContext, b: Body, ctxB: CausalContext): Body;
  /** The value users read. */
  value(body: Body): Value;
  /** Every dot the body holds (a delete removes them). */
  dots(body: Body): Dot[];
  /** The body of a delete delta that observed `body`. */
  cleared(body: Body): Body;
  /** Resolutions that discarded a value when `delta` (with `deltaCtx`) was joined into `before`. */
  conflicts(before: Body, ctxBefore: CausalContext, delta: Body, deltaCtx: CausalContext, joined: Body): ConflictFinding[];
  /**
   * For types whose content is opaque to the join (Automerge), throws a coded error unless the body's content
   * is usable. The store calls it on states built from remote deltas before committing them.
   */
  check?(body: Body): void;
  /** Canonical plain form for the encoder: equal bodies give equal forms. */
  encode(body: Body): unknown;
  /** Inverse of `encode` for untrusted input; throws `ERR_DECODE`. */
  decode(form: unknown): Body;
}
