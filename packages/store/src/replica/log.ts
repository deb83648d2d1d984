/**
 * The delta log and the links' cursors: entries after a sequence number, the document scan of a state
 * catch-up, durable cursors, and truncation. Truncation keeps what is still owed: a purge notice that a
 * region it names has not acknowledged is carried to the head of the log instead of dropped, so a lagging
 * region — caught up from document states, which never include documents it may not hold — still hears that
 * it must drop its copy.
 */
import { type Hlc, TesseraError, checkNodeId, deltaBatchEntriesMax, expectInt } from '@tessera/core';
import { decodeLogEntry, encodeLogEntry } from '../log-entry.js';
import {
  allDocsRange,
  cursorKey,
  cursorRange,
  docKey,
  handoverKey,
  logFloorKey,
  logKey,
  logRange,
  owedKey,
  parseCursorKey,
  parseDocKey,
  parseLogKey,
} from '../layout.js';
import { type BatchOp } from '../storage/port.js';
import { type LogEntry } from '../types.js';
import { type ReplicaCore, jsonBytes, parseJsonBytes } from './core.js';

/** Default and maximum entries of one `deltasSince` answer. */
export const deltasLimitDefault = 1_000;

const lanePattern = /^[a-z0-9][a-z0-9-]{0,31}$/;

/** Throws `ERR_OPTION_INVALID` unless `lane` is a lane id (`main`, or `[a-z0-9-]`, at most 32 characters). */
export function checkLane(lane: unknown): asserts lane is string {
  if (typeof lane !== 'string' || !lanePattern.test(lane)) {
    throw new TesseraError('ERR_OPTION_INVALID', `lane ${JSON.stringify(lane)} is invalid: use 1 to 32 characters [a-z0-9-]`);
  }
}

/** Throws `ERR_OPTION_INVALID` unless `limit` is an integer from 1 to `max`. */
export function checkLimit(what: string, limit: unknown, max: number): number {
  if (!Number.isSafeInteger(limit) || (limit as number) < 1 || (limit as number) > max) {
    throw new TesseraError('ERR_OPTION_INVALID', `${what}: limit ${String(limit)} is outside 1 to ${max}`);
  }
  return limit as number;
}

function checkSeq(what: string, seq: unknown): asserts seq is number {
  if (!Number.isSafeInteger(seq) || (seq as number) < 0)
    throw new TesseraError('ERR_OPTION_INVALID', `${what}: seq ${String(seq)} is not a non-negative integer`);
}

/** Delta-log entries after `seq`, oldest first, at most `limit`; the log may have gaps a crash left. */
export async function deltasSince(c: ReplicaCore, seq: number, limit = deltasLimitDefault): Promise<{ entries: LogEntry[]; lastSeq: number }> {
  c.checkOpen();
  checkSeq('deltasSince', seq);
  checkLimit('deltasSince', limit, deltaBatchEntriesMax);
  if (seq < c.logFloorSeq) {
    throw new TesseraError(
      'ERR_LOG_TRUNCATED',
      `deltasSince(${seq}): the delta log was truncated up to ${c.logFloorSeq}; a peer this far behind needs a state catch-up`,
    );
  }
  const lastSeq = c.seqLast;
  const entries: LogEntry[] = [];
  for await (const [stored, bytes] of c.storage.entries({ gt: logKey(seq), lt: logRange.lt, limit })) entries.push(decodeLogEntry(parseLogKey(stored), bytes));
  return { entries, lastSeq };
}

/** Appends a state entry (the whole state to `to`) and a purge notice (the head to `to`) as the fanout asks. */
export function fanoutOps(
  c: ReplicaCore,
  dataset: string,
  key: string,
  hlc: Hlc,
  stateBytes: Uint8Array,
  headBytes: Uint8Array,
  stateTo: readonly string[],
  purgeTo: readonly string[],
): BatchOp[] {
  const ops: BatchOp[] = [];
  if (stateTo.length > 0) {
    const seq = c.nextSeq();
    ops.push({ type: 'put', key: logKey(seq), value: encodeLogEntry(dataset, key, c.node, seq, hlc, stateBytes, 'state', stateTo) });
  }
  if (purgeTo.length > 0) {
    const seq = c.nextSeq();
    ops.push({ type: 'put', key: logKey(seq), value: encodeLogEntry(dataset, key, c.node, seq, hlc, headBytes, 'purge', purgeTo) });
  }
  return ops;
}

/**
 * Truncates the log up to `seq` (entries every peer acknowledged, or past the log's size bound). Purge
 * notices in the range that a region they name has not acknowledged (`acknowledged(region)`, the lowest
 * cursor of its nodes) move to the head, in the same batch as the new floor; so does the seq of a pending
 * handover of their document (it waits for the notice). The floor is durable first, so a crash half-way leaves
 * extra entries, never a gap that looks whole.
 */
export async function truncateLog(c: ReplicaCore, seq: number, acknowledged?: (region: string) => number): Promise<number> {
  c.checkOpen();
  checkSeq('truncateLog', seq);
  const upto = Math.min(seq, c.seqCommitted);
  if (upto <= c.logFloorSeq) return c.logFloorSeq;
  const from = c.logFloorSeq;
  const carried: Array<{ entry: LogEntry; handover: { seq: number; regions: string[] } | null; owed: boolean }> = [];
  if (acknowledged !== undefined) {
    for await (const [stored, bytes] of c.storage.entries({ gt: logKey(from), lte: logKey(upto) })) {
      const entry = decodeLogEntry(parseLogKey(stored), bytes);
      if (entry.kind !== 'purge' || (entry.to ?? []).every((region) => acknowledged(region) >= entry.seq)) continue;
      const handover = await c.storage.get(handoverKey(entry.dataset, entry.key));
      carried.push({
        entry,
        handover: handover === undefined ? null : (parseJsonBytes(handover) as { seq: number; regions: string[] }),
        owed: (await c.storage.get(owedKey(entry.seq))) !== undefined,
      });
    }
  }
  // Sequence numbers are taken in the same turn as the commit is queued: groups commit in order, so every
  // number up to the committed mark is then durable.
  const ops: BatchOp[] = [{ type: 'put', key: logFloorKey, value: jsonBytes(upto) }];
  for (const { entry, handover, owed } of carried) {
    const moved = c.nextSeq();
    ops.push({
      type: 'put',
      key: logKey(moved),
      value: encodeLogEntry(entry.dataset, entry.key, entry.origin, moved, entry.hlc, entry.delta, 'purge', entry.to),
    });
    if (owed) ops.push({ type: 'del', key: owedKey(entry.seq) }, { type: 'put', key: owedKey(moved), value: jsonBytes(1) });
    if (handover !== null)
      ops.push({ type: 'put', key: handoverKey(entry.dataset, entry.key), value: jsonBytes({ ...handover, seq: Math.max(handover.seq, moved) }) });
  }
  const last = c.seqLast;
  c.logFloorSeq = upto;
  await c.commit(ops);
  if (carried.length > 0) {
    c.committed(last);
    c.events.emit('appended', last);
  }
  await c.storage.clear({ gt: logKey(from), lte: logKey(upto) });
  return upto;
}

/**
 * Committed document states in key order after `after` (an opaque position, null to start), for a state
 * catch-up: each state is a valid delta for `applyDeltas`.
 */
export async function documentsAfter(
  c: ReplicaCore,
  after: string | null,
  limit: number,
): Promise<{ entries: Array<LogEntry & { readonly position: string }>; next: string | null }> {
  c.checkOpen();
  checkLimit('documentsAfter', limit, deltaBatchEntriesMax);
  const range = after === null ? allDocsRange : { gt: after, lt: allDocsRange.lt };
  const entries: Array<LogEntry & { readonly position: string }> = [];
  let next: string | null = null;
  const hlc = c.clock.latest;
  for await (const [stored, bytes] of c.storage.entries({ ...range, limit })) {
    const { dataset, key } = parseDocKey(stored);
    entries.push({ seq: 0, dataset, key, origin: c.node, originSeq: 0, hlc, delta: bytes, position: stored });
    next = stored;
  }
  return { entries, next: entries.length < limit ? null : next };
}

/** The last sequence number `peer` acknowledged on `lane` (0 when none). */
export async function cursor(c: ReplicaCore, peer: string, lane = 'main'): Promise<number> {
  c.checkOpen();
  checkNodeId(peer);
  checkLane(lane);
  const bytes = await c.storage.get(cursorKey(peer, lane));
  return bytes === undefined ? 0 : expectInt(parseJsonBytes(bytes), `cursor of ${peer}`);
}

/** All stored cursors, keyed by peer (main lane) or `peer/lane`. */
export async function cursors(c: ReplicaCore): Promise<Record<string, number>> {
  c.checkOpen();
  const out: Record<string, number> = {};
  for await (const [stored, bytes] of c.storage.entries(cursorRange)) {
    const { peer, lane } = parseCursorKey(stored);
    out[lane === 'main' ? peer : `${peer}/${lane}`] = expectInt(parseJsonBytes(bytes), `cursor of ${peer}`);
  }
  return out;
}

/** Durably records that `peer` acknowledged up to `seq` on `lane`. Cursors never go backwards. */
export async function setCursor(c: ReplicaCore, peer: string, seq: number, lane = 'main'): Promise<number> {
  const current = await cursor(c, peer, lane);
  checkSeq('setCursor', seq);
  if (seq <= current) return current;
  await c.commit([{ type: 'put', key: cursorKey(peer, lane), value: jsonBytes(seq) }]);
  return seq;
}

/** Keys of the log entries of `docs` (for a purge), scanning the retained log once. */
export async function logKeysOf(c: ReplicaCore, docs: ReadonlySet<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const [stored, bytes] of c.storage.entries({ gt: logKey(c.logFloorSeq), lt: logRange.lt })) {
    const entry = decodeLogEntry(parseLogKey(stored), bytes);
    if (docs.has(docKey(entry.dataset, entry.key))) out.push(stored);
  }
  return out;
}
