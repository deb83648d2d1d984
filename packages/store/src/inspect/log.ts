/** The delta log (sizes; values only on request), cursors and frontiers, conflict records. */
import { decodeLogEntry } from '../log-entry.js';
import { TesseraError, checkDatasetName, decodeDoc, docValue, docFacts } from '@tessera/core';
import { conflictRange, cursorRange, frontierRange, logFloorKey, logKey, logRange, parseConflictKey, parseCursorKey, parseLogKey } from '../layout.js';
import { type ConflictRecord } from '../types.js';
import {
  type StoreReader,
  type LogItem,
  type InspectLog,
  type InspectPeers,
  type InspectConflicts,
  inspectLogLimitDefault,
  inspectLogLimitMax,
  inspectConflictsLimitDefault,
  inspectConflictsLimitMax,
  inspectPeersMax,
} from './types.js';
import { parseJson, checkCount, jsonSafe, node, readInt, expectStoredInt, logHead } from './read.js';

/**
 * Delta-log entries with `from` ≤ seq ≤ `to`: from `from` onwards when it is given, else the newest ones up to
 * `to` (the head by default). Sizes only; with `values`, each delta's value and the tags it adds.
 */
export async function inspectLog(reader: StoreReader, options: { from?: number; to?: number; limit?: number; values?: boolean } = {}): Promise<InspectLog> {
  const from = options.from === undefined ? undefined : checkCount('log: from', options.from, 0, Number.MAX_SAFE_INTEGER);
  const to = options.to === undefined ? undefined : checkCount('log: to', options.to, 0, Number.MAX_SAFE_INTEGER);
  if (from !== undefined && to !== undefined && from > to) throw new TesseraError('ERR_OPTION_INVALID', `log: from ${from} is after to ${to}`);
  const limit = checkCount('log: limit', options.limit ?? inspectLogLimitDefault, 1, inspectLogLimitMax);
  const named = await node(reader);
  const floor = await readInt(reader, logFloorKey, 'the stored log floor');
  const head = await logHead(reader);
  // Entries at or below the floor were truncated (a crash during truncation can leave some: skip them too).
  const lower = { gt: logKey(Math.max(floor, (from ?? 0) - 1)) };
  const upper = to === undefined ? { lt: logRange.lt } : { lte: logKey(to) };
  const forward = from !== undefined;
  const found: Array<[string, Uint8Array]> = [];
  for await (const item of reader.iterator({ ...lower, ...upper, limit: limit + 1, reverse: !forward })) found.push(item);
  const more = found.length > limit;
  const page = found.slice(0, limit);
  if (!forward) page.reverse();
  const entries = page.map(([stored, bytes]) => logItem(parseLogKey(stored), bytes, options.values === true));
  const first = entries[0]?.seq;
  const last = entries[entries.length - 1]?.seq;
  return {
    ...named,
    floor,
    head,
    entries,
    older: !forward && more && first !== undefined ? first - 1 : null,
    newer: forward && more && last !== undefined ? last + 1 : null,
  };
}

/** Decodes a delta-log entry as replica.ts encodes it: [dataset, key, origin, originSeq, [ms, c], delta, kind?, to?]. */
function logItem(seq: number, bytes: Uint8Array, values: boolean): LogItem {
  try {
    const entry = decodeLogEntry(seq, bytes);
    if (!(entry.delta instanceof Uint8Array)) throw new TesseraError('ERR_DECODE', 'delta is not bytes');
    const item = {
      seq,
      dataset: entry.dataset,
      key: entry.key,
      origin: entry.origin,
      originSeq: entry.originSeq,
      hlc: entry.hlc,
      kind: entry.kind ?? ('change' as const),
      to: entry.to ?? [],
      bytes: entry.delta.length,
    };
    if (!values || item.kind === 'purge') return item;
    const doc = decodeDoc(entry.delta, `log entry ${seq} delta`);
    return { ...item, value: jsonSafe(docValue(doc)), tags: docFacts(item.dataset, item.key, doc).tags };
  } catch (error) {
    const message = (error as Error).message;
    return {
      seq,
      bytes: bytes.length,
      error: { code: 'ERR_STORE_CORRUPT', message: message.startsWith('delta-log entry') ? message : `delta-log entry ${seq} is corrupt: ${message}` },
    };
  }
}

/** Durable cursors per peer and lane, and frontiers per origin. */
export async function inspectPeers(reader: StoreReader): Promise<InspectPeers> {
  const named = await node(reader);
  const head = await logHead(reader);
  let more = false;
  const cursors: Array<InspectPeers['cursors'][number]> = [];
  for await (const [stored, bytes] of reader.iterator({ ...cursorRange, limit: inspectPeersMax + 1 })) {
    if (cursors.length === inspectPeersMax) {
      more = true;
      break;
    }
    const { peer, lane } = parseCursorKey(stored);
    const acknowledged = expectStoredInt(parseJson(bytes, `the cursor of ${peer}`), `the cursor of ${peer}`);
    cursors.push({ peer, lane, acknowledged, behind: Math.max(0, head - acknowledged) });
  }
  const frontiers: Array<InspectPeers['frontiers'][number]> = [];
  for await (const [stored, bytes] of reader.iterator({ ...frontierRange, limit: inspectPeersMax + 1 })) {
    if (frontiers.length === inspectPeersMax) {
      more = true;
      break;
    }
    const origin = stored.slice(frontierRange.gte.length);
    frontiers.push({ origin, seq: expectStoredInt(parseJson(bytes, `the frontier of ${origin}`), `the frontier of ${origin}`) });
  }
  return { ...named, head, cursors, frontiers, more };
}

/** Conflict records, all or of one dataset, in key order. */
export async function inspectConflicts(reader: StoreReader, options: { dataset?: string; limit?: number } = {}): Promise<InspectConflicts> {
  if (options.dataset !== undefined) checkDatasetName(options.dataset);
  const limit = checkCount('conflicts: limit', options.limit ?? inspectConflictsLimitDefault, 1, inspectConflictsLimitMax);
  const named = await node(reader);
  const conflicts: ConflictRecord[] = [];
  let more = false;
  for await (const [stored, bytes] of reader.iterator({ ...conflictRange(options.dataset), limit: limit + 1 })) {
    if (conflicts.length === limit) {
      more = true;
      break;
    }
    const { dataset, key } = parseConflictKey(stored);
    conflicts.push(parseJson(bytes, `a conflict record of ${dataset}/${key}`) as ConflictRecord);
  }
  return { ...named, dataset: options.dataset ?? null, conflicts, more };
}
