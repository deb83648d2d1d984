/**
 * Local writes. Load the document (cache or disk), apply the operation in memory (core), judge it
 * (`planWrite`: this region must still be allowed to hold the document afterwards), then commit the new
 * state, the delta-log entry and what the plan sets in motion — the whole state for regions the write opens,
 * a purge notice for regions it shuts, audit entries — in one atomic batch, group-committed with concurrent
 * writes. The write is acknowledged (its promise resolves, its change event fires) only once that is durable.
 */
import {
  type BodyMutator,
  type CrdtTypeName,
  type DocFacts,
  type DocMutation,
  type DocState,
  type Policy,
  type PurgeMarker,
  type TagChange,
  TesseraError,
  checkDatasetName,
  checkKey,
  docBytesMax,
  docExists,
  docFacts,
  docHead,
  emptyDoc,
  encodeDoc,
  mutate,
  planWrite,
  remove,
  sameFacts,
} from '@tessera/core';
import { type CacheEntry } from '../cache.js';
import { encodeLogEntry } from '../log-entry.js';
import { docKey, logKey } from '../layout.js';
import { type BatchOp } from '../storage/port.js';
import { type WriteResult } from '../types.js';
import { type ReplicaCore } from './core.js';
import { fanoutOps } from './log.js';

/** One local write, as the façade describes it. */
export type LocalWrite =
  | {
      readonly kind: 'mutate';
      /** The type to create the document with if it does not exist (default: the dataset's). */
      readonly type?: CrdtTypeName;
      /** The body change for a document of `type` (null: tags only). May throw to refuse the operation. */
      readonly body: ((type: CrdtTypeName) => BodyMutator) | null;
      /** The tag change, given the document's current user tags. */
      readonly tags?: (current: readonly string[]) => TagChange | undefined;
      /** Refuse (`ERR_OPTION_INVALID`) unless the document exists. */
      readonly mustExist?: boolean;
    }
  | { readonly kind: 'delete' };

/** `ERR_POLICY_DENIED`, naming the regions that may hold the document (`regions` on the error). */
export function policyDenied(
  policy: Policy,
  facts: DocFacts,
  region: string,
  reason: string,
  regions: readonly string[],
): TesseraError & { regions: string[] } {
  const error = new TesseraError(
    'ERR_POLICY_DENIED',
    `${facts.dataset}/${facts.key} may not be held in region ${region} under policy v${policy.version} (${reason}); ${regions.length === 0 ? 'no region may hold it' : `it may live in ${regions.join(', ')}`}`,
  );
  return Object.assign(error, { regions: [...regions] });
}

/** `ERR_POLICY_DENIED` for a write to a document this region purged (`regions` empty: unknown here). */
function givenUp(dataset: string, key: string, region: string): TesseraError & { regions: string[] } {
  const error = new TesseraError(
    'ERR_POLICY_DENIED',
    `${dataset}/${key} is not held in region ${region}: this region gave it up (the policy or its facts keep it elsewhere); write to a region that holds it`,
  );
  return Object.assign(error, { regions: [] as string[] });
}

/** The type a write gives a document: an existing document's own, else the requested or the dataset's. */
function typeFor(c: ReplicaCore, dataset: string, key: string, current: DocState | null, requested: CrdtTypeName | undefined): CrdtTypeName {
  if (current !== null && docExists(current)) {
    if (requested !== undefined && requested !== current.type) {
      throw new TesseraError('ERR_TYPE_MISMATCH', `${dataset}/${key} is a ${current.type} document, not ${requested}`);
    }
    return current.type;
  }
  return requested ?? c.datasetTypes[dataset]?.type ?? c.enforced?.dataset(dataset).type ?? 'map';
}

function build(
  c: ReplicaCore,
  dataset: string,
  key: string,
  current: DocState | null,
  floor: number,
  write: LocalWrite,
  marker: PurgeMarker | null,
): { mutation: DocMutation | null; hlc: ReturnType<ReplicaCore['now']> } {
  // The timestamp comes after the stamps of the copy, so that a re-creation's type stamp wins over them.
  const hlc = c.now([current?.typed?.hlc, current?.origin?.hlc]);
  if (write.kind === 'delete') {
    // A delete's dot too starts above the dots of a copy this region purged once (seed 10260).
    const floored = current !== null && floor > 0 ? { ...current, counterFloor: floor } : current;
    return { mutation: floored === null ? null : remove(floored, c.node, hlc, { keepTags: true }), hlc };
  }
  if (write.mustExist === true && (current === null || !docExists(current))) {
    throw new TesseraError('ERR_OPTION_INVALID', `tag: ${dataset}/${key} does not exist`);
  }
  const type = typeFor(c, dataset, key, current, write.type);
  // A document this region purged once: new dots start above those its copy had (other regions hold them),
  // also when the write builds on a copy that came back without them (a head, a fragment).
  // A document this region purged keeps its lineage's origin: a write here joins that document (and is judged
  // by where it lives), it does not start another one under the same key.
  const copy = current ?? (marker?.origin == null ? emptyDoc(type) : { ...emptyDoc(type), origin: marker.origin });
  const base: DocState = floor > 0 ? { ...copy, counterFloor: floor } : copy;
  const tags = write.tags?.(docFacts(dataset, key, current).tags);
  const mutation = mutate(base, c.node, hlc, write.body?.(type) ?? null, tags, { region: c.region, type });
  return { mutation, hlc };
}

/** Carries out one local write; resolves once it is durable. */
export async function writeLocal(c: ReplicaCore, dataset: string, key: string, write: LocalWrite): Promise<WriteResult> {
  c.checkOpen();
  checkDatasetName(dataset);
  checkKey(key);
  const entry: CacheEntry = await c.pin(dataset, key);
  let ops: BatchOp[];
  let seq: number;
  let seqEnd: number;
  let next: DocState;
  let result: WriteResult;
  let factsChanged = false;
  try {
    const floor = c.markerOf(dataset, key)?.counter ?? 0;
    const current = entry.state;
    const marker = current === null ? c.markerOf(dataset, key) : null;
    // A region that gave the document up (a handover, a purge) cannot delete, tag or change what it no longer
    // holds: the write would change nothing here and never reach the document. It is refused like a write
    // this region may not hold, naming no region (the facts that decide which are gone with the copy).
    if (marker !== null && (write.kind === 'delete' || write.mustExist === true)) throw givenUp(dataset, key, c.region);
    const { mutation, hlc } = build(c, dataset, key, current, floor, write, marker);
    if (mutation === null && marker !== null) throw givenUp(dataset, key, c.region);
    if (mutation === null) {
      c.unpin(entry);
      return { seq: null, hlc, dot: null };
    }
    next = mutation.state;
    const before = current === null ? null : docFacts(dataset, key, current);
    const after = docFacts(dataset, key, next);
    const plan = planWrite(c.enforced, c.region, before, after);
    factsChanged = before !== null && !sameFacts(before, after);
    if (!plan.allowed) throw policyDenied(c.enforced!, after, c.region, plan.decision.reason, plan.holders);
    const deltaBytes = encodeDoc(mutation.delta);
    // A write that creates the document (nothing seen before) has the delta as its whole state — except for
    // Yjs, whose stored state is re-encoded canonically while a delta keeps the update as Yjs made it.
    const created = (current === null || current.ctx.isEmpty) && next.type !== 'yjs';
    const stateBytes = created ? deltaBytes : encodeDoc(next);
    if (stateBytes.length > docBytesMax) {
      throw new TesseraError(
        'ERR_VALUE_TOO_LARGE',
        `${dataset}/${key}: the document would grow to ${stateBytes.length} bytes, over the limit of ${docBytesMax} bytes`,
      );
    }
    // From here to the commit nothing awaits: sequence numbers are taken in the turn their batch is queued.
    seq = c.nextSeq();
    ops = [
      { type: 'put', key: docKey(dataset, key), value: stateBytes },
      { type: 'put', key: logKey(seq), value: encodeLogEntry(dataset, key, c.node, seq, hlc, deltaBytes) },
      ...fanoutOps(c, dataset, key, hlc, stateBytes, encodeDoc(docHead(next)), plan.stateTo, plan.purgeTo),
    ];
    for (const kind of plan.audit) ops.push(...c.auditOps(kind, { dataset, doc: c.keyDigest(dataset, key) }));
    seqEnd = c.seqLast;
    entry.state = next;
    result = { seq, hlc, dot: mutation.dot };
  } catch (error) {
    c.unpin(entry);
    throw error;
  }
  try {
    await c.commit(ops);
  } finally {
    c.unpin(entry);
  }
  if (seq > entry.committedSeq) {
    entry.committed = next;
    entry.committedSeq = seq;
  }
  c.committed(seqEnd);
  c.emitChange({ dataset, key, seq, source: 'local', origin: c.node, deleted: !docExists(next) });
  if (factsChanged) c.events.emit('facts');
  return result;
}
