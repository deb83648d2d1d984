/**
 * Opening a replica: the options checked, the storage opened, the format record read (or written for a new
 * directory), and the state a crash may have left recovered — the last sequence number (the log's head can
 * be past the stored one), the clock, the log floor, the frontiers, the audit chain's head, the salt of key
 * digests, and the documents with conflict records.
 */
import { randomBytes } from 'node:crypto';
import {
  type Hlc,
  type PurgeMarker,
  TesseraError,
  checkDatasetName,
  checkNodeId,
  checkRegion,
  crdtType,
  expectArray,
  expectInt,
  expectString,
  isHlc,
  markerFromForm,
} from '@tessera/core';
import { auditGenesis } from '../audit.js';
import {
  auditHeadKey,
  conflictRange,
  docKey,
  floorRange,
  frontierRange,
  hlcKey,
  logFloorKey,
  logRange,
  metaKey,
  parseConflictKey,
  parseLogKey,
  saltKey,
  seqKey,
  storeFormatVersion,
} from '../layout.js';
import { levelStorage } from '../storage/level.js';
import { type StoragePort } from '../storage/port.js';
import { type ReplicaOptions } from '../types.js';
import { type CoreSettings, type Recovered, ReplicaCore, jsonBytes, parseJsonBytes } from './core.js';
import { migrateStore } from './migrate.js';

interface Meta {
  readonly format: number;
  readonly node: string;
  readonly region: string;
}

/** Checks the options of `Replica.open`; returns the settings and the storage to open. */
export function checkOpenOptions(options: ReplicaOptions): { settings: CoreSettings; storage: StoragePort } {
  if (typeof options !== 'object' || options === null) throw new TesseraError('ERR_OPTION_INVALID', 'Replica.open needs an options object');
  const storage = options.storage ?? (typeof options.path === 'string' && options.path.length > 0 ? levelStorage(options.path) : null);
  if (storage === null) {
    throw new TesseraError('ERR_OPTION_INVALID', `Replica.open: path must be a non-empty string (or give a storage), got ${JSON.stringify(options.path)}`);
  }
  checkNodeId(options.node);
  checkRegion(options.region);
  const durability = options.durability ?? 'fsync';
  if (durability !== 'fsync' && durability !== 'os') {
    throw new TesseraError('ERR_OPTION_INVALID', `Replica.open: durability must be "fsync" or "os", got ${JSON.stringify(durability)}`);
  }
  const datasets = options.datasets ?? {};
  for (const [name, config] of Object.entries(datasets)) {
    checkDatasetName(name);
    crdtType(config?.type);
  }
  const nodeRegions = new Map<string, string>();
  for (const peer of options.peers ?? []) {
    checkNodeId(peer.node);
    checkRegion(peer.region);
    nodeRegions.set(peer.node, peer.region);
  }
  nodeRegions.set(options.node, options.region);
  return {
    storage,
    settings: {
      node: options.node,
      region: options.region,
      durability,
      datasetTypes: datasets,
      wallClock: options.wallClock ?? Date.now,
      cacheEntriesMax: options.cacheEntriesMax,
      nodeRegions,
      policyTrust: options.policyTrust ?? null,
    },
  };
}

/** Opens the storage and recovers the replica's shared state. The storage is closed again on failure. */
export async function openCore(storage: StoragePort, settings: CoreSettings, onProgress?: (done: number, total: number) => void): Promise<ReplicaCore> {
  await storage.open();
  try {
    await readMeta(storage, settings, onProgress);
    return new ReplicaCore(storage, settings, await recover(storage));
  } catch (error) {
    await storage.close();
    throw error;
  }
}

async function readMeta(storage: StoragePort, settings: CoreSettings, onProgress?: (done: number, total: number) => void): Promise<void> {
  const where = storage.description;
  const bytes = await storage.get(metaKey);
  if (bytes === undefined) {
    for await (const _key of storage.keys({ limit: 1 })) {
      throw new TesseraError('ERR_STORE_FORMAT', `${where} holds a LevelDB that is not a Tessera replica`);
    }
    const meta: Meta = { format: storeFormatVersion, node: settings.node, region: settings.region };
    await storage.write([{ type: 'put', key: metaKey, value: jsonBytes(meta) }], { sync: true });
    return;
  }
  let meta: Meta;
  try {
    meta = parseJsonBytes(bytes) as Meta;
  } catch {
    throw new TesseraError('ERR_STORE_FORMAT', `${where}: the format record is unreadable`);
  }
  if (meta.node !== settings.node) throw new TesseraError('ERR_STORE_NODE_MISMATCH', `${where} belongs to node "${meta.node}", not "${settings.node}"`);
  if (meta.region !== settings.region)
    throw new TesseraError('ERR_STORE_NODE_MISMATCH', `${where} belongs to region "${meta.region}", not "${settings.region}"`);
  if (meta.format === storeFormatVersion) return;
  if (meta.format === 1) {
    await migrateStore(storage, settings, onProgress);
    await storage.write([{ type: 'put', key: metaKey, value: jsonBytes({ ...meta, format: storeFormatVersion }) }], { sync: true });
    return;
  }
  throw new TesseraError(
    'ERR_STORE_FORMAT',
    `${where} has format version ${JSON.stringify(meta.format)}; this Tessera reads versions 1 (migrated on open) and ${storeFormatVersion}`,
  );
}

async function recover(storage: StoragePort): Promise<Recovered> {
  let seqLast = 0;
  const seqBytes = await storage.get(seqKey);
  if (seqBytes !== undefined) seqLast = expectInt(parseJsonBytes(seqBytes), 'stored sequence number');
  // A batch that crashed after its log entries were written but before the trailer: the log knows better.
  for await (const key of storage.keys({ ...logRange, reverse: true, limit: 1 })) seqLast = Math.max(seqLast, parseLogKey(key));
  let hlcLast: Hlc = { ms: 0, c: 0 };
  const hlcBytes = await storage.get(hlcKey);
  if (hlcBytes !== undefined) {
    const [ms, c] = expectArray(parseJsonBytes(hlcBytes), 'stored clock', 2, 2);
    const hlc = { ms, c };
    if (isHlc(hlc)) hlcLast = hlc;
  }
  const conflicted = new Set<string>();
  for await (const stored of storage.keys(conflictRange())) {
    const { dataset, key } = parseConflictKey(stored);
    conflicted.add(docKey(dataset, key));
  }
  const floorBytes = await storage.get(logFloorKey);
  const logFloor = floorBytes === undefined ? 0 : expectInt(parseJsonBytes(floorBytes), 'stored log floor');
  const frontier = new Map<string, number>();
  for await (const [stored, bytes] of storage.entries(frontierRange)) {
    frontier.set(stored.slice(frontierRange.gte.length), expectInt(parseJsonBytes(bytes), 'stored frontier'));
  }
  let salt = await storage.get(saltKey);
  if (salt === undefined) {
    salt = new Uint8Array(randomBytes(32));
    await storage.write([{ type: 'put', key: saltKey, value: salt }], { sync: true });
  }
  const markers = new Map<string, PurgeMarker>();
  for await (const [stored, bytes] of storage.entries(floorRange)) markers.set(stored.slice(floorRange.gte.length), markerFromForm(parseJsonBytes(bytes)));
  let auditSeq = 0;
  let auditLast = auditGenesis;
  const head = await storage.get(auditHeadKey);
  if (head !== undefined) {
    const { seq, hash } = parseJsonBytes(head) as { seq: number; hash: string };
    auditSeq = expectInt(seq, 'audit head');
    auditLast = expectString(hash, 'audit head hash');
  }
  return { seqLast, hlcLast, conflicted, logFloor, frontier, salt, markers, auditSeq, auditLast };
}
