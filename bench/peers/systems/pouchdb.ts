/**
 * PouchDB on LevelDB (pouchdb-node), served over HTTP by express-pouchdb as pouchdb-server does. One document
 * per record (`_id` = the key). B pulls from A with PouchDB's own replicator (live, retrying), run inside B's
 * process: `PouchDB.replicate('http://<proxy>/bench', localDb)`. The differential case uses CouchDB's filtered
 * replication: a filter function in a design document on A, which A runs on its changes feed, so the records
 * that must stay never leave A. (A Mango `selector` would be the newer way, but express-pouchdb 4.2 answers
 * `_changes?filter=_selector` with 404.)
 */
import { type Server } from 'node:http';
import express from 'express';
import expressPouchdb from 'express-pouchdb';
import PouchDB from 'pouchdb-node';
import { keyFor, isLocal, recordFor, sharedKeyPrefix } from '../common.js';
import { type StartPeer } from './types.js';

/** Documents per `bulkDocs` call when loading A. */
const loadBatchDocs = 1_000;
/** Replicator batch size (PouchDB's default is 100); see the README for why 1,000. */
export const replicationBatchSize = 1_000;

export const start: StartPeer = async ({ options, onVisible }) => {
  const Pouch = PouchDB.defaults({ prefix: `${options.dataDir}/` });
  const db = new Pouch('bench');
  await db.info();
  if (options.role === 'A' && options.differential) {
    await db.put({ _id: '_design/residency', filters: { shared: `function (doc) { return doc._id.indexOf('${sharedKeyPrefix}') === 0; }` } });
  }
  const app = express();
  app.use(
    '/',
    expressPouchdb(Pouch, {
      mode: 'minimumForPouchDB',
      logPath: `${options.dataDir}/log.txt`,
      configPath: `${options.dataDir}/config.json`,
    }),
  );
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(options.port, '127.0.0.1', () => resolve(s));
  });

  let replication: { cancel(): void } | null = null;
  let changes: { cancel(): void } | null = null;
  if (options.role === 'B') {
    changes = db.changes({ live: true, since: 'now' }).on('change', (change: { id: string }) => onVisible(change.id));
    const replicator = Pouch.replicate(`http://${options.upstream!}/bench`, db, {
      live: true,
      retry: true,
      batch_size: replicationBatchSize,
      ...(options.differential ? { filter: 'residency/shared' } : {}),
    });
    replicator.on('error', (error: unknown) => console.error('pouchdb replication error', error));
    replication = replicator;
  }

  return {
    info: {},
    async load(first, count, stop) {
      for (let offset = 0; offset < count; offset += loadBatchDocs) {
        if (stop(offset)) return offset;
        const docs: Record<string, unknown>[] = [];
        for (let i = first + offset; i < first + Math.min(count, offset + loadBatchDocs); i++) {
          const local = isLocal(i, options.differential);
          docs.push({ _id: keyFor(i, local), ...recordFor(i, local) });
        }
        const results = await db.bulkDocs(docs);
        for (const result of results) if ('error' in result && result.error) throw new Error(`bulkDocs: ${JSON.stringify(result)}`);
      }
      return count;
    },
    async write(i) {
      const local = isLocal(i, options.differential);
      await db.put({ _id: keyFor(i, local), ...recordFor(i, local) });
    },
    async close() {
      replication?.cancel();
      changes?.cancel();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await db.close();
    },
  };
};
