/**
 * The checks a batch of remote deltas passes before anything of it is applied: shapes, names, bounds, and the
 * decoding of every delta and head. A batch that fails is refused whole with `ERR_DELTA_INVALID`.
 */
import {
  type DocState,
  type Hlc,
  TesseraError,
  checkDatasetName,
  checkKey,
  checkNodeId,
  checkRegion,
  crdtType,
  decodeDoc,
  deltaBatchBytesMax,
  deltaBatchEntriesMax,
  isHlc,
} from '@tessera/core';
import { type RemoteDelta } from '../types.js';

/** Regions one state or purge entry may name. */
export const entryRegionsMax = 64;

/** A remote delta, checked and decoded. */
export interface DecodedDelta {
  readonly index: number;
  readonly dataset: string;
  readonly key: string;
  readonly origin: string;
  readonly originSeq: number;
  readonly hlc: Hlc;
  readonly bytes: Uint8Array;
  /** The delta (for a purge notice: the facts it carries). */
  readonly doc: DocState;
  readonly kind: 'change' | 'state' | 'purge';
  /** The regions of a state or purge entry (empty for a change). */
  readonly to: readonly string[];
  /** The sender's head of the document, when it attached one. */
  readonly head: DocState | null;
}

/** True for a state that carries facts only: no presence, no content, nothing hidden. */
function isHead(doc: DocState): boolean {
  return doc.live.length === 0 && crdtType(doc.type).isEmpty(doc.body) && doc.others === undefined;
}

function fail(what: string, message: string): never {
  throw new TesseraError('ERR_DELTA_INVALID', `${what}: ${message}`);
}

/** Checks and decodes a batch; throws `ERR_DELTA_INVALID` naming the first bad delta. */
export function validateBatch(batch: readonly RemoteDelta[]): DecodedDelta[] {
  if (!Array.isArray(batch)) throw new TesseraError('ERR_DELTA_INVALID', 'applyDeltas: expected an array of deltas');
  if (batch.length > deltaBatchEntriesMax) {
    throw new TesseraError('ERR_DELTA_INVALID', `applyDeltas: ${batch.length} deltas exceed the limit of ${deltaBatchEntriesMax} per batch`);
  }
  let bytesTotal = 0;
  return batch.map((item, index) => {
    const what = `applyDeltas: delta ${index}`;
    try {
      if (typeof item !== 'object' || item === null) fail(what, 'expected an object');
      checkDatasetName(item.dataset);
      checkKey(item.key);
      checkNodeId(item.origin);
      if (!isHlc(item.hlc)) fail(what, 'hlc must be { ms, c }');
      if (!Number.isSafeInteger(item.originSeq) || item.originSeq < 0) fail(what, 'originSeq must be a non-negative integer');
      if (!(item.delta instanceof Uint8Array)) fail(what, 'delta must be bytes');
      if (item.head !== undefined && !(item.head instanceof Uint8Array)) fail(what, 'head must be bytes');
      bytesTotal += item.delta.length + (item.head?.length ?? 0);
      if (bytesTotal > deltaBatchBytesMax) fail(what, `the batch exceeds the limit of ${deltaBatchBytesMax} bytes`);
      let to: string[] = [];
      if (item.kind !== undefined) {
        if (item.kind !== 'state' && item.kind !== 'purge') fail(what, 'kind must be "state" or "purge"');
        if (!Array.isArray(item.to) || item.to.length === 0 || item.to.length > entryRegionsMax) {
          fail(what, `a ${item.kind} entry names 1 to ${entryRegionsMax} regions in "to"`);
        }
        to = item.to.map((region: unknown) => {
          checkRegion(region);
          return region;
        });
      }
      const doc = decodeDoc(item.delta, `${item.dataset}/${item.key} delta`);
      if (item.kind === 'purge' && !isHead(doc)) fail(what, "a purge notice carries the document's facts, no value");
      const head = item.head === undefined ? null : decodeDoc(item.head, `${item.dataset}/${item.key} head`);
      if (head !== null && !isHead(head)) fail(what, "a head carries the document's facts, no value");
      return {
        index,
        dataset: item.dataset,
        key: item.key,
        origin: item.origin,
        originSeq: item.originSeq,
        hlc: item.hlc,
        bytes: item.delta,
        doc,
        kind: item.kind ?? 'change',
        to,
        head,
      };
    } catch (error) {
      if (error instanceof TesseraError && error.code === 'ERR_DELTA_INVALID') throw error;
      throw new TesseraError('ERR_DELTA_INVALID', `${what}: ${(error as Error).message}`, { cause: error });
    }
  });
}
