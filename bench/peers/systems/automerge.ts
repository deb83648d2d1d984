/**
 * Automerge with automerge-repo: each region runs a `Repo` with Node filesystem storage; A's has a WebSocket
 * server adapter, and B's dials A through the proxy with the WebSocket client adapter. One WebSocket carries
 * every document.
 *
 * - `per-record`: one Automerge document per record (`repo.create(record)`). A announces every document to
 *   its peers (the repo's default share policy), so B learns of new records without an index.
 * - `one-doc`: one document whose root map holds every record under its key; B finds it by URL.
 *
 * Differential: A's `shareConfig` neither announces nor grants access to a local record's document, so B
 * never receives it. Inside the one-doc model it cannot be expressed.
 */
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { type AutomergeUrl, type DocHandle, type DocumentId, Repo } from '@automerge/automerge-repo';
import { WebSocketClientAdapter, WebSocketServerAdapter } from '@automerge/automerge-repo-network-websocket';
import { NodeFSStorageAdapter } from '@automerge/automerge-repo-storage-nodefs';
import { isLocal, keyFor, localKeyPrefix, recordFor } from '../common.js';
import { type StartPeer } from './types.js';

/** A's WebSocket keep-alive interval (the adapter's default is 5 s; see below). */
const keepAliveMs = 30_000;
/** Records per batch when loading A (one change of the one-doc model; documents created, then flushed). */
const loadBatchRecords = 1_000;

type Records = Record<string, unknown>;

export const start: StartPeer = async ({ options, onVisible }) => {
  const http = createServer((_request, response) => {
    response.writeHead(200);
    response.end('okay');
  });
  const wss = new WebSocketServer({ server: http });
  await new Promise<void>((resolve) => http.listen(options.port, '127.0.0.1', resolve));
  // B has only the client adapter: with a server adapter beside it (for B's own clients), B's repo never
  // completed a sync with A (automerge-repo 2.5.6), so B's local clients are left out of this benchmark.
  // A's keep-alive: the default (5 s) drops B whenever B's event loop is busy that long (B loading a thousand
  // documents from its storage at once, on a shared 2-core machine), and B then marks every document it was
  // fetching unavailable; 30 s keeps the measurement about sync rather than a reconnect storm.
  const network =
    options.role === 'A' ? [new WebSocketServerAdapter(wss as never, keepAliveMs)] : [new WebSocketClientAdapter(`ws://${options.upstream ?? ''}`) as never];

  const localDocs = new Set<DocumentId>();
  const mayLeave = async (_peer: unknown, documentId?: DocumentId) => {
    if (documentId === undefined) return true;
    if (localDocs.has(documentId)) return false;
    const id = docOf(repo.handles[documentId])?.id;
    return typeof id !== 'string' || !id.startsWith(localKeyPrefix);
  };
  const repo: Repo = new Repo({
    storage: new NodeFSStorageAdapter(`${options.dataDir}/automerge`),
    network,
    peerId: `region-${options.role}` as never,
    ...(options.differential && options.role === 'A' ? { shareConfig: { announce: mayLeave, access: (peer, id) => mayLeave(peer, id) } } : {}),
  });

  let big: DocHandle<Records> | null = null;
  if (options.model === 'one-doc') {
    if (options.role === 'A') {
      big = repo.create<Records>({});
    } else {
      big = await repo.find<Records>(options.docUrl as AutomergeUrl);
      big.on('change', ({ patches }) => {
        for (const patch of patches) if (patch.path.length >= 1) onVisible(String(patch.path[0]));
      });
      for (const key of Object.keys(big.doc() ?? {})) onVisible(key);
    }
  } else if (options.role === 'B') {
    const visibleDocs = new Set<string>();
    const check = (documentId: DocumentId) => {
      if (visibleDocs.has(documentId)) return;
      const id = docOf(repo.handles[documentId])?.id;
      if (typeof id === 'string') {
        visibleDocs.add(documentId);
        onVisible(id);
      }
    };
    repo.on('doc-metrics', (event) => {
      if (event.type === 'receive-sync-message') setImmediate(() => check(event.documentId as DocumentId));
    });
  }

  const create = (i: number) => {
    const local = isLocal(i, options.differential);
    const handle = repo.create<Records>(recordFor(i, local));
    if (local) localDocs.add(handle.documentId);
    return handle.documentId;
  };

  return {
    info: big === null ? {} : ({ docUrl: String(big.url) } as Record<string, string>),
    async load(first, count, stop) {
      for (let offset = 0; offset < count; offset += loadBatchRecords) {
        if (stop(offset)) return offset;
        const end = first + Math.min(count, offset + loadBatchRecords);
        if (big !== null) {
          big.change((doc) => {
            for (let i = first + offset; i < end; i++) doc[keyFor(i, false)] = recordFor(i, false);
          });
          await repo.flush([big.documentId]);
        } else {
          const ids: DocumentId[] = [];
          for (let i = first + offset; i < end; i++) ids.push(create(i));
          await repo.flush(ids);
        }
      }
      return count;
    },
    // The idiom: a change is applied in memory and the repo saves it shortly after (throttled, 100 ms); a
    // user does not flush every change. So a write counts as committed once applied, not once on disk.
    async write(i) {
      if (big !== null)
        big.change((doc) => {
          doc[keyFor(i, false)] = recordFor(i, false);
        });
      else create(i);
    },
    async close() {
      await repo.flush();
      await repo.shutdown();
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
    },
  };
};

/** A handle's document if it has one yet. */
function docOf(handle: DocHandle<Records> | undefined): Records | undefined {
  if (handle === undefined) return undefined;
  try {
    return handle.doc() as Records | undefined;
  } catch {
    return undefined;
  }
}
