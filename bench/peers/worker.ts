/**
 * One peer server (PouchDB, Yjs or Automerge), region A or B, in its own process so that its memory and CPU
 * are its own. Started by `run.ts` as `node --import tsx bench/peers/worker.ts '<WorkerOptions JSON>'`; takes
 * requests over IPC (see `Request` in common.ts) and exits after `close`, or at once if the driver goes away.
 *
 * A writes the records; B replicates from A through the driver's proxy and reports when each record becomes
 * visible in its own store.
 */
import {
  type Reply,
  type Request,
  type SteadyResult,
  type VisibleState,
  type WorkerOptions,
  indexOfKey,
  localKeyPrefix,
  shouldStop,
  sleep,
  wallNowMs,
} from './common.js';
import { type PeerServer, type StartPeer } from './systems/types.js';

const options = JSON.parse(process.argv[2] ?? '') as WorkerOptions;
if (process.send === undefined) throw new Error('worker.ts runs as a child of run.ts (it needs an IPC channel)');

/** A steady writer more than this far behind its schedule has the measurement cut short. */
const writerBehindMsMax = 3_000;
/** After the last write is issued, its commit is awaited this long at most. */
const commitWaitMsMax = 10_000;

// ---------------------------------------------------------------- what B has seen

const seen = new Set<string>();
let sharedVisible = 0;
let leakedVisible = 0;
const firstVisibleMs = new Map<number, number>();
let countWaiter: { count: number; resolve: () => void } | null = null;

function onVisible(key: string): void {
  if (seen.has(key)) return;
  seen.add(key);
  const atMs = wallNowMs();
  if (key.startsWith(localKeyPrefix)) leakedVisible++;
  else sharedVisible++;
  const index = indexOfKey(key);
  if (index >= 0) firstVisibleMs.set(index, atMs);
  if (countWaiter !== null && sharedVisible >= countWaiter.count) countWaiter.resolve();
}

async function waitVisible(count: number, timeMsMax: number): Promise<VisibleState> {
  if (sharedVisible < count) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeMsMax);
      countWaiter = {
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
    });
    countWaiter = null;
  }
  const reached = sharedVisible >= count;
  return { shared: sharedVisible, leaked: leakedVisible, reachedAtMs: reached ? maxVisibleMs() : null };
}

/** The time the last record became visible (the count was reached at the latest of them). */
function maxVisibleMs(): number {
  let latest = 0;
  for (const atMs of firstVisibleMs.values()) if (atMs > latest) latest = atMs;
  return latest;
}

// ---------------------------------------------------------------- A's open-loop writer

async function steady(server: PeerServer, first: number, count: number, ratePerSecond: number, issueTimeMsMax: number): Promise<SteadyResult> {
  const commits: [number, number, number][] = [];
  const pending = new Set<Promise<void>>();
  const startMs = wallNowMs();
  let issued = 0;
  let cutShort = false;
  while (issued < count) {
    const nowMs = wallNowMs();
    if (nowMs - startMs > issueTimeMsMax || nowMs - (startMs + (issued * 1_000) / ratePerSecond) > writerBehindMsMax) {
      cutShort = true;
      break;
    }
    const due = Math.min(count, Math.floor(((nowMs - startMs) * ratePerSecond) / 1_000) + 1);
    while (issued < due) {
      const i = first + issued++;
      const issuedMs = wallNowMs();
      const write = server.write(i).then(() => {
        commits.push([i, issuedMs, wallNowMs()]);
      });
      pending.add(write);
      void write.finally(() => pending.delete(write));
    }
    await sleep(1);
  }
  const issueMs = wallNowMs() - startMs;
  await Promise.race([Promise.allSettled([...pending]), sleep(commitWaitMsMax)]);
  return { commits, issued, issueMs, cutShort };
}

// ---------------------------------------------------------------- IPC

const modules: Record<WorkerOptions['system'], () => Promise<{ start: StartPeer }>> = {
  pouchdb: () => import('./systems/pouchdb.js'),
  yjs: () => import('./systems/yjs.js'),
  automerge: () => import('./systems/automerge.js'),
};

process.on('disconnect', () => process.exit(1));

const { start } = await modules[options.system]();
const server = await start({ options, onVisible });

async function handle(request: Request): Promise<unknown> {
  switch (request.op) {
    case 'clock':
      return wallNowMs();
    case 'load': {
      const startMs = wallNowMs();
      return server.load(
        request.first,
        request.count,
        (written) => written < request.count && shouldStop(written, request.count, wallNowMs() - startMs, request.timeMsMax),
      );
    }
    case 'steady':
      return steady(server, request.first, request.count, request.ratePerSecond, request.issueTimeMsMax);
    case 'waitVisible':
      return waitVisible(request.count, request.timeMsMax);
    case 'visibleTimes':
      return [...firstVisibleMs].filter(([index]) => index >= request.from);
    case 'close':
      await server.close();
      setTimeout(() => process.exit(0), 50);
      return null;
  }
}

process.on('message', (message: { id: number; request: Request }) => {
  handle(message.request).then(
    (result) => process.send!({ id: message.id, ok: true, result } satisfies Reply),
    (error: unknown) =>
      process.send!({ id: message.id, ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) } satisfies Reply),
  );
});
process.send({ ready: true, info: server.info });
