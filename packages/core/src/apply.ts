/**
 * Joining a delta into a replica's state, deciding exactly whether it changed anything. Replay and
 * duplication must be no-ops that leave no log entry, and a delta that still changes the state must never be
 * skipped: dots alone cannot tell (see document.ts), so when every dot of the delta is already in the context,
 * the joined state is compared with the old one by canonical bytes.
 */
import { type DocState } from './crdt/document.js';
import { type JoinResult, joinDocs } from './crdt/join.js';
import { encodeDoc } from './codec.js';

/** A join and whether it changed the state. */
export interface DeltaJoin extends JoinResult {
  readonly changed: boolean;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Joins `delta` into `doc`; `changed` is false exactly when the state is unchanged. */
export function joinDelta(doc: DocState, delta: DocState): DeltaJoin {
  const result = joinDocs(doc, delta);
  // A dot the replica has not seen enters its context: the state changed.
  if (!doc.ctx.includes(delta.ctx)) return { ...result, changed: true };
  return { ...result, changed: !sameBytes(encodeDoc(result.state), encodeDoc(doc)) };
}

/** True when joining `delta` into `doc` would change nothing (a replay or a duplicate). */
export function alreadySeen(doc: DocState, delta: DocState): boolean {
  return !joinDelta(doc, delta).changed;
}
