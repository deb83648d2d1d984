/**
 * Migration of a data directory from store format 1 (Tessera 0.1) to 2, in place, on open: documents and the
 * deltas in the log are rewritten in document format 2 (core's legacy.ts), a purge notice gains the facts of
 * the document it names (notices carry them from format 2 on; a notice for a document no longer stored is
 * dropped). Records are rewritten in batches; a crash half-way leaves both formats side by side, and the next
 * open finishes the job (each record is converted only if it is still in format 1). `onProgress` hears how
 * far it got.
 */
import { decodeDoc, docBytesVersion, docHead, encodeDoc, upgradeDocV1 } from '@tessera/core';
import { decodeLogEntry, encodeLogEntry } from '../log-entry.js';
import { allDocsRange, docKey, logRange, parseLogKey } from '../layout.js';
import { type BatchOp, type StoragePort } from '../storage/port.js';
import { type CoreSettings } from './core.js';

/** Records rewritten per batch. */
export const migrateBatchRecordsMax = 1_000;

/** Rewrites every format-1 record of `storage` in format 2. */
export async function migrateStore(storage: StoragePort, settings: CoreSettings, onProgress?: (done: number, total: number) => void): Promise<void> {
  let total = 0;
  for await (const _key of storage.keys(allDocsRange)) total++;
  for await (const _key of storage.keys(logRange)) total++;
  let done = 0;
  const sync = settings.durability === 'fsync';
  let ops: BatchOp[] = [];
  const flush = async () => {
    if (ops.length > 0) await storage.write(ops, { sync });
    ops = [];
    onProgress?.(done, total);
  };
  for await (const [stored, bytes] of storage.entries(allDocsRange)) {
    done++;
    if (docBytesVersion(bytes) === 1) ops.push({ type: 'put', key: stored, value: encodeDoc(upgradeDocV1(bytes, stored)) });
    if (ops.length >= migrateBatchRecordsMax) await flush();
  }
  await flush();
  for await (const [stored, bytes] of storage.entries(logRange)) {
    done++;
    const entry = decodeLogEntry(parseLogKey(stored), bytes);
    if (entry.kind === 'purge') {
      if (entry.delta.length > 0) continue;
      const doc = await storage.get(docKey(entry.dataset, entry.key));
      if (doc === undefined) ops.push({ type: 'del', key: stored });
      else {
        const head = encodeDoc(docHead(docBytesVersion(doc) === 1 ? upgradeDocV1(doc) : decodeDoc(doc)));
        ops.push({
          type: 'put',
          key: stored,
          value: encodeLogEntry(entry.dataset, entry.key, entry.origin, entry.originSeq, entry.hlc, head, 'purge', entry.to),
        });
      }
    } else if (entry.delta.length > 0 && docBytesVersion(entry.delta) === 1) {
      const delta = encodeDoc(upgradeDocV1(entry.delta, `log entry ${entry.seq}`));
      ops.push({
        type: 'put',
        key: stored,
        value: encodeLogEntry(entry.dataset, entry.key, entry.origin, entry.originSeq, entry.hlc, delta, entry.kind, entry.to),
      });
    }
    if (ops.length >= migrateBatchRecordsMax) await flush();
  }
  await flush();
}
