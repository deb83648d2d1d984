/**
 * Yjs: a y-websocket server (`@y/websocket-server`'s `setupWSConnection`) with y-leveldb persistence in each
 * region. y-websocket syncs one document per WebSocket and has no server-to-server replication, so B runs the
 * bridge such a deployment needs: y-websocket clients (`WebsocketProvider`) inside B's server process that
 * dial A through the proxy and sync into B's own persisted documents.
 *
 * - `one-doc`: every record is an entry of one `Y.Map` (`records`), its value the record's JSON. B keeps one
 *   provider on it open.
 * - `per-record`: one `Y.Doc` per record (a `Y.Map` of its nine fields), named by its key. A also keeps an
 *   index document (a `Y.Array` of the record names) so that B can discover new records; B follows the index
 *   and syncs each record once over its own WebSocket (at most `bridgeSocketsMax` at a time), then closes it,
 *   since a socket per record held open would not scale past a few thousand records.
 *
 * Differential: only shared records go into the index, and A refuses a peer's WebSocket upgrade for a local
 * record (the "check auth here" hook of the y-websocket server). In the one-doc model it cannot be expressed.
 */
import { createServer } from 'node:http';
import { WebSocket, WebSocketServer } from 'ws';
import * as Y from 'yjs';
import { LeveldbPersistence } from 'y-leveldb';
import { WebsocketProvider } from 'y-websocket';
import { docs, getYDoc, setPersistence, setupWSConnection } from '@y/websocket-server/utils';
import { isLocal, keyFor, localKeyPrefix, recordFor, sleep } from '../common.js';
import { type StartPeer } from './types.js';

/** Records written per transaction when loading A. */
const loadBatchRecords = 1_000;
/** B's bridge: record documents syncing at once, one WebSocket each. */
export const bridgeSocketsMax = 128;
/** On close, writes still queued for LevelDB are waited for this long at most. */
const closeWaitMsMax = 8_000;
/** A record document that has not synced in this long is dropped and tried again. */
const recordSyncTimeMsMax = 30_000;

export const start: StartPeer = async ({ options, onVisible }) => {
  process.setMaxListeners(0); // every WebsocketProvider adds an `exit` listener
  const ldb = new LeveldbPersistence(`${options.dataDir}/yjs`);
  const pending = new Set<Promise<unknown>>();
  const track = (promise: Promise<unknown>) => {
    pending.add(promise);
    void promise.finally(() => pending.delete(promise));
  };
  const bound = new Map<string, Promise<void>>();
  // The y-websocket server's own y-leveldb binding, with its writes tracked so that a write can wait for them.
  setPersistence({
    provider: ldb,
    bindState: (name: string, doc: Y.Doc) => {
      const binding = (async () => {
        const persisted = await ldb.getYDoc(name);
        track(ldb.storeUpdate(name, Y.encodeStateAsUpdate(doc)));
        Y.applyUpdate(doc, Y.encodeStateAsUpdate(persisted));
        doc.on('update', (update: Uint8Array) => track(ldb.storeUpdate(name, update)));
      })();
      bound.set(name, binding);
      track(binding);
    },
    writeState: async () => {},
  });
  /** Resolves once every update stored so far is in LevelDB. */
  const persisted = async () => {
    while (pending.size > 0) await Promise.allSettled([...pending]);
  };
  /** Resolves once record `name`'s writes so far are in LevelDB (a snapshot: later writes are not waited for). */
  const persistedName = async (name: string) => {
    await bound.get(name);
    await Promise.allSettled([...pending]);
  };
  /** Drops a record document from memory once nobody is connected to it (as the server does on the last close). */
  const release = (name: string) => {
    const doc = docs.get(name);
    if (doc === undefined || doc.conns.size > 0) return;
    docs.delete(name);
    bound.delete(name);
    doc.destroy();
  };

  const wss = new WebSocketServer({ noServer: true });
  wss.on('connection', (socket, request) => setupWSConnection(socket, request));
  const http = createServer((_request, response) => {
    response.writeHead(200);
    response.end('okay');
  });
  http.on('upgrade', (request, socket, head) => {
    const url = new URL(request.url ?? '/', 'http://x');
    // Residency: a peer region never gets a record that must stay here.
    if (options.differential && url.searchParams.has('peer') && url.pathname.slice(1).startsWith(localKeyPrefix)) {
      socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
  });
  await new Promise<void>((resolve) => http.listen(options.port, '127.0.0.1', resolve));

  const providers = new Set<WebsocketProvider>();
  const upstreamUrl = `ws://${options.upstream ?? ''}`;
  const provide = (name: string, doc: Y.Doc) => {
    const provider = new WebsocketProvider(upstreamUrl, name, doc, { WebSocketPolyfill: WebSocket as never, disableBc: true, params: { peer: 'b' } });
    providers.add(provider);
    return provider;
  };

  let closing = false;
  if (options.role === 'B') {
    if (options.model === 'one-doc') {
      const doc = getYDoc('records');
      doc.getMap('records').observe((event) => {
        for (const key of event.keysChanged) onVisible(key);
      });
      provide('records', doc);
    } else {
      const queue: string[] = [];
      let active = 0;
      const pump = () => {
        while (!closing && active < bridgeSocketsMax && queue.length > 0) {
          const name = queue.shift()!;
          active++;
          const doc = getYDoc(name);
          const provider = provide(name, doc);
          const finish = (synced: boolean) => {
            clearTimeout(timer);
            doc.off('update', check);
            provider.destroy();
            providers.delete(provider);
            active--;
            if (synced && doc.getMap('record').get('id') === name) onVisible(name);
            else if (!closing) queue.push(name);
            void persistedName(name).then(() => release(name));
            pump();
          };
          const timer = setTimeout(() => finish(false), recordSyncTimeMsMax);
          // A's server answers the first sync before it has loaded the record from its LevelDB (its
          // bindState is asynchronous) and sends the content as an update once loaded; so the bridge waits
          // for the content, not just for the first sync.
          let done = false;
          const check = () => {
            if (done || doc.getMap('record').get('id') !== name) return;
            done = true;
            doc.off('update', check);
            finish(true);
          };
          provider.on('sync', (synced: boolean) => {
            if (synced) check();
          });
          doc.on('update', check);
        }
      };
      const index = getYDoc('index');
      index.getArray<string>('names').observe((event) => {
        for (const delta of event.changes.delta) if (delta.insert !== undefined) queue.push(...(delta.insert as string[]));
        pump();
      });
      provide('index', index);
    }
  }

  const writeRecord = (i: number) => {
    const local = isLocal(i, options.differential);
    const name = keyFor(i, local);
    const record = recordFor(i, local);
    if (options.model === 'one-doc') {
      getYDoc('records').getMap('records').set(name, record);
      return null;
    }
    const doc = getYDoc(name);
    doc.transact(() => {
      const map = doc.getMap('record');
      for (const [field, value] of Object.entries(record)) map.set(field, value);
    });
    return local ? null : name;
  };
  const index = options.role === 'A' && options.model === 'per-record' ? getYDoc('index').getArray<string>('names') : null;

  return {
    info: {},
    async load(first, count, stop) {
      for (let offset = 0; offset < count; offset += loadBatchRecords) {
        if (stop(offset)) return offset;
        const names: string[] = [];
        const batch = () => {
          for (let i = first + offset; i < first + Math.min(count, offset + loadBatchRecords); i++) {
            const name = writeRecord(i);
            if (name !== null) names.push(name);
          }
        };
        if (options.model === 'one-doc') getYDoc('records').transact(batch);
        else batch();
        index?.push(names);
        await persisted();
        if (options.model === 'per-record')
          for (let i = first + offset; i < first + Math.min(count, offset + loadBatchRecords); i++) release(keyFor(i, isLocal(i, options.differential)));
      }
      return count;
    },
    // As with y-websocket's own server, a change is applied in memory and stored in y-leveldb asynchronously;
    // so a write counts as committed once applied. A per-record document leaves memory once stored.
    async write(i) {
      const name = writeRecord(i);
      if (name !== null) index?.push([name]);
      if (options.model === 'per-record') {
        const key = keyFor(i, isLocal(i, options.differential));
        void persistedName(key).then(() => release(key));
      }
    },
    async close() {
      closing = true;
      for (const provider of providers) provider.destroy();
      await sleep(50);
      await Promise.race([persisted(), sleep(closeWaitMsMax)]);
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
      await ldb.destroy();
    },
  };
};
