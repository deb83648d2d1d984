/** Reading helpers shared by the inspect functions: JSON records, counts, the format record, the policy in force. */
import { TesseraError, type Policy, parsePolicy } from '@tessera/core';
import { logRange, metaKey, parseLogKey, policyKey, seqKey, storeFormatVersion } from '../layout.js';
import { type StoreReader, type StoreMeta, type InspectedNode, type PolicyStampView } from './types.js';

const textDecoder = new TextDecoder();

export function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(textDecoder.decode(bytes));
  } catch (error) {
    throw new TesseraError('ERR_STORE_CORRUPT', `${what} is not readable JSON`, { cause: error });
  }
}

export function checkCount(what: string, value: unknown, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) {
    throw new TesseraError('ERR_OPTION_INVALID', `${what} ${String(value)} is outside ${min} to ${max}`);
  }
  return value as number;
}

/** Bytes anywhere in `value` as base64 strings, so that every answer is plain JSON. */
export function jsonSafe(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, jsonSafe(v)]));
  }
  return value;
}

/**
 * Reads and checks the format record. `where` names the directory in messages. Throws `ERR_STORE_FORMAT`
 * for a LevelDB that is not a Tessera replica and for another format version.
 */
export async function readStoreMeta(reader: StoreReader, where: string): Promise<StoreMeta> {
  const bytes = await reader.get(metaKey);
  if (bytes === undefined) {
    for await (const _key of reader.keys({ limit: 1 })) {
      throw new TesseraError('ERR_STORE_FORMAT', `${where} holds a LevelDB that is not a Tessera replica (it has no format record)`);
    }
    throw new TesseraError('ERR_STORE_FORMAT', `${where} holds an empty LevelDB, not a Tessera replica`);
  }
  let meta: Partial<StoreMeta>;
  try {
    meta = JSON.parse(textDecoder.decode(bytes)) as Partial<StoreMeta>;
  } catch {
    throw new TesseraError('ERR_STORE_FORMAT', `${where}: the format record is unreadable`);
  }
  if (meta?.format !== storeFormatVersion) {
    throw new TesseraError('ERR_STORE_FORMAT', `${where} has format version ${JSON.stringify(meta?.format)}; this Tessera reads version ${storeFormatVersion}`);
  }
  if (typeof meta.node !== 'string' || typeof meta.region !== 'string') {
    throw new TesseraError('ERR_STORE_FORMAT', `${where}: the format record names no node and region`);
  }
  return { format: meta.format, node: meta.node, region: meta.region };
}

export async function node(reader: StoreReader): Promise<InspectedNode> {
  const { node, region } = await readStoreMeta(reader, 'the data directory');
  return { node, region };
}

export async function readInt(reader: StoreReader, key: string, what: string): Promise<number> {
  const bytes = await reader.get(key);
  return bytes === undefined ? 0 : expectStoredInt(parseJson(bytes, what), what);
}

export function expectStoredInt(value: unknown, what: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) throw new TesseraError('ERR_STORE_CORRUPT', `${what} is not a non-negative integer`);
  return value as number;
}

/** The log's head as the replica recovers it: the stored sequence number, or the last entry if later. */
export async function logHead(reader: StoreReader): Promise<number> {
  let head = await readInt(reader, seqKey, 'the stored sequence number');
  for await (const stored of reader.keys({ ...logRange, reverse: true, limit: 1 })) head = Math.max(head, parseLogKey(stored));
  return head;
}

/** A stored policy version, parsed (the replica refuses to open without it, so a missing one is corruption). */
export async function storedPolicy(reader: StoreReader, version: number): Promise<Policy> {
  const bytes = await reader.get(policyKey(version));
  if (bytes === undefined) throw new TesseraError('ERR_STORE_CORRUPT', `policy version ${version} is in use but its record is missing`);
  const record = parseJson(bytes, `the record of policy version ${version}`) as { text?: unknown };
  if (typeof record.text !== 'string') throw new TesseraError('ERR_STORE_CORRUPT', `the record of policy version ${version} holds no text`);
  return parsePolicy(record.text, `stored policy v${version}`);
}

export function readPolicyStamp(value: unknown): PolicyStampView | null {
  if (value === null || typeof value !== 'object') return null;
  const { version, hash } = value as { version?: unknown; hash?: unknown };
  return typeof version === 'number' && typeof hash === 'string' ? { version, hash } : null;
}
