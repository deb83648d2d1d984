/** Delta-log entries as stored: canonical MessagePack `[dataset, key, origin, originSeq, [ms, c], delta, kind?, to?]`. */
import { type Hlc, TesseraError, decodeBounded, encodeCanonical, expectArray, expectHlc, expectInt, expectNodeId, expectString } from '@tessera/core';
import { type LogEntry } from './types.js';

/** Encodes a log entry; `kind` and `to` only for state entries and purge notices. */
export function encodeLogEntry(
  dataset: string,
  key: string,
  origin: string,
  originSeq: number,
  hlc: Hlc,
  delta: Uint8Array,
  kind?: 'state' | 'purge',
  to?: readonly string[],
): Uint8Array {
  const fields: unknown[] = [dataset, key, origin, originSeq, [hlc.ms, hlc.c], delta];
  if (kind !== undefined) fields.push(kind, [...(to ?? [])]);
  return encodeCanonical(fields);
}

/** Decodes a stored log entry; throws `ERR_STORE_CORRUPT` naming its sequence number. */
export function decodeLogEntry(seq: number, bytes: Uint8Array): LogEntry {
  try {
    const [dataset, key, origin, originSeq, hlc, delta, kind, to] = expectArray(decodeBounded(bytes, `log entry ${seq}`), `log entry ${seq}`, 6, 8);
    return {
      seq,
      dataset: expectString(dataset, 'dataset'),
      key: expectString(key, 'key'),
      origin: expectNodeId(origin, 'origin'),
      originSeq: expectInt(originSeq, 'origin seq'),
      hlc: expectHlc(hlc, 'hlc'),
      delta: delta as Uint8Array,
      ...(kind === 'state' || kind === 'purge' ? { kind, to: expectArray(to, 'to').map((region) => expectString(region, 'region')) } : {}),
    };
  } catch (error) {
    throw new TesseraError('ERR_STORE_CORRUPT', `delta-log entry ${seq} is corrupt: ${(error as Error).message}`, { cause: error });
  }
}
