/**
 * Replication benchmark: how soon a write acknowledged in one region is visible in another across a simulated
 * WAN, what that costs on the wire, how much one link carries, and how far bulk catch-up is from a plain
 * WebSocket-into-LevelDB pipe on the same path.
 *
 *   npm run bench:replication                  default run (3 runs per measurement, median reported)
 *   npm run bench:replication -- --runs 5      more runs
 *   npm run bench:replication -- --quick       smaller counts, 1 run: a smoke test, not a result
 *   npm run bench:replication -- --profile     also write a V8 CPU profile of every child process
 *   npm run bench:replication -- --trace       also split each write's lag into stages (costs CPU: a diagnosis)
 *   npm run bench:replication -- --rates 100,1000,5000   other open-loop rates for the lag cases (must include 1000)
 *
 * Method. This one file is both the driver and the worker: the driver spawns itself with `--worker <json>`
 * once per region node (and for the raw pipe's two ends), so each region runs in its own process with its own
 * event loop, as it would in production. The driver holds the FaultProxies (one per link, 40 ms one way in
 * each direction) and talks to the workers over IPC. Workers record wall times as `performance.timeOrigin +
 * performance.now()`; the driver measures each worker's clock offset with IPC round trips and corrects for it,
 * so "acknowledged in A" and "visible in B" are comparable to well under a millisecond.
 *
 * Runs are interleaved (run 1 of every measurement, then run 2, ...); every figure is the median of the runs
 * with the min–max beside it. Every loop and every wait is bounded by a count and by a time limit. Targets are
 * reported as PASS or BELOW and never fail the process: a benchmark on a shared machine is evidence for a
 * person to read, not a gate.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { type AddressInfo } from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Level } from 'level';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import { type ChangeEvent, type Json, Replica } from 'tesseradb';
import { type LinkStatus, type PeerConfig, SyncNode, batchEntriesMax, decodeFrame, windowBatchesMax } from '@tessera/sync';
import { FaultProxy } from '@tessera/cli';
import { type Spread, formatPercent, formatRange, machineInfo, median, percentile, benchDocument, parseBenchArgs, spread, table } from './lib.js';

// ---------------------------------------------------------------- settings

/** One-way latency the proxy adds on every link, in each direction. */
const oneWayLatencyMs = 40;
/** The fixed cadence compared with the adaptive one. */
const fixedCadenceMs = 100;
/** Size of every written value: a JSON map of nine fields, padded to exactly this many bytes. */
const valueBytes = 200;
/**
 * Distinct values built before the clock starts; puts cycle through them (keys are always distinct). Values
 * are not compressed anywhere on the path, so repeating them changes nothing that is measured.
 */
const valuePoolSize = 1_024;
/** Closed-loop writers of the throughput case and of the catch-up fill. */
const writersCount = 64;
/** Raw pipe: records per batch, and batches unacknowledged at once (the protocol's own window bound). */
const rawBatchRecordsCount = 1_000;
const rawWindowBatches = windowBatchesMax;
/** IPC round trips per worker to estimate its clock offset; the fastest one is used. */
const clockProbesCount = 20;
/** After a phase, time for the last acknowledgements to cross the 40 ms path before bytes are counted. */
const settleMs = 300;
/** Bounds on the harness itself. */
const workerStartTimeMsMax = 30_000;
const linksOpenTimeMsMax = 15_000;
const callTimeMsDefault = 15_000;
const stopTimeMsMax = 5_000;
/** Runs per measurement, and the limit of `--runs`. */
const runsDefault = 3;
const runsMax = 20;
/** The limit of `--rates`: beyond it the open loop's 1 ms timer issues bursts too large to call a rate. */
const lagRatePerSecondMax = 50_000;

/** Targets (reported, never enforced). */
const targetLagMsP99Max = oneWayLatencyMs + 10;
const targetLagRatePerSecond = 1_000;
const targetCatchUpDocsPerSecondMin = 50_000;

/** The two cadences compared; each runs on a fresh cluster. */
const cadences = [
  { name: 'adaptive', fixedCadenceMs: null },
  { name: `fixed ${fixedCadenceMs} ms`, fixedCadenceMs },
] as const;
type CadenceName = (typeof cadences)[number]['name'];

interface Limits {
  /** Open-loop write rates of the lag cases, in ops/s; 1,000 (the low-load target's) must be one; the highest is the high load. */
  readonly lagRatesPerSecond: readonly number[];
  /** How long each lag case issues writes; its count is rate × duration. */
  readonly lagDurationMs: number;
  /** The open-loop writer stops issuing here even when behind schedule (an overloaded writer). */
  readonly lagIssueTimeMsMax: number;
  /** Writes issued but not acknowledged are waited for this long at most. */
  readonly ackWaitTimeMsMax: number;
  /** After the writer is done, B is given this long at most to see every write. */
  readonly drainTimeMsMax: number;
  /** Untimed writes on each fresh cluster before its first measurement, so JIT compilation is done. */
  readonly warmupOpsCount: number;
  readonly warmupRatePerSecond: number;
  /** Throughput: writes stop at this count or at ramp + window, whichever comes first. */
  readonly throughputOpsCountMax: number;
  readonly throughputRampMs: number;
  readonly throughputWindowMs: number;
  /** Catch-up: documents written in A while B is down, and the bounds of writing and catching up. */
  readonly bulkDocsCount: number;
  readonly fillTimeMsMax: number;
  readonly catchUpTimeMsMax: number;
}

// Sized for a default run of about 4 minutes on 2 shared cores; the time limits are the backstop.
const limitsDefault: Limits = {
  lagRatesPerSecond: [1_000, 5_000],
  lagDurationMs: 5_000,
  lagIssueTimeMsMax: 8_000,
  ackWaitTimeMsMax: 10_000,
  drainTimeMsMax: 15_000,
  warmupOpsCount: 2_000,
  warmupRatePerSecond: 2_000,
  throughputOpsCountMax: 200_000,
  throughputRampMs: 2_000,
  throughputWindowMs: 4_000,
  bulkDocsCount: 100_000,
  fillTimeMsMax: 120_000,
  catchUpTimeMsMax: 60_000,
};

const limitsQuick: Limits = {
  lagRatesPerSecond: [1_000, 5_000],
  lagDurationMs: 2_000,
  lagIssueTimeMsMax: 4_000,
  ackWaitTimeMsMax: 5_000,
  drainTimeMsMax: 5_000,
  warmupOpsCount: 1_000,
  warmupRatePerSecond: 2_000,
  throughputOpsCountMax: 100_000,
  throughputRampMs: 1_000,
  throughputWindowMs: 2_000,
  bulkDocsCount: 10_000,
  fillTimeMsMax: 30_000,
  catchUpTimeMsMax: 20_000,
};

for (const limits of [limitsDefault, limitsQuick]) {
  assert(limits.lagRatesPerSecond.includes(targetLagRatePerSecond), 'the low-load target needs its rate measured');
  assert(limits.lagIssueTimeMsMax > limits.lagDurationMs, 'the issue deadline leaves room for a late writer');
}

const benchDir = dirname(fileURLToPath(import.meta.url));
const scriptPath = fileURLToPath(import.meta.url);
const repoDir = dirname(benchDir);
const outDir = join(benchDir, 'out');
const textEncoder = new TextEncoder();

/** Wall time in ms with sub-ms resolution, comparable across processes on one machine (after offset correction). */
function wallNowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** CPU time (user + system) this process has used, in ms. */
function processCpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1_000;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------- values and statistics

const keyPrefix = 'doc-';

function keyFor(i: number): string {
  return `${keyPrefix}${String(i).padStart(8, '0')}`;
}

function indexOfKey(key: string): number {
  return key.startsWith(keyPrefix) ? Number(key.slice(keyPrefix.length)) : -1;
}

/** The benchmark's document number `i` (see `benchDocument`). */
function mapValue(i: number): Record<string, Json> {
  return benchDocument(i, keyFor(i), valueBytes);
}

/**
 * A full garbage collection. The flag is set at run time so that the npm script needs no extra node option;
 * `gc` is then reachable from a fresh context.
 */
function makeCollectGarbage(): () => void {
  v8.setFlagsFromString('--expose-gc');
  const gc: unknown = vm.runInNewContext('gc');
  assert(typeof gc === 'function', 'could not expose gc');
  return gc as () => void;
}

// ---------------------------------------------------------------- the IPC protocol between driver and workers

/** What a child process is, given on its command line as `--worker <json>`. */
type WorkerSpec =
  | { readonly role: 'node'; readonly node: string; readonly region: string; readonly dir: string; readonly trace: boolean }
  | { readonly role: 'raw-sender'; readonly dir: string; readonly recordsCount: number }
  | { readonly role: 'raw-receiver'; readonly dir: string };

/** Commands every worker answers. */
type BaseCommands = {
  /** The worker's wall clock, for the offset estimate. */
  clock: { args: null; result: number };
  gc: { args: null; result: null };
  /** CPU time (user + system) this process has used, in ms. */
  cpu: { args: null; result: number };
  /** Closes everything, deletes the worker's directory, answers, then exits. */
  stop: { args: null; result: null };
};

/** A node records, for each key of one dataset, when it first became visible there (a remote change event). */
interface WatchArgs {
  readonly dataset: string;
  readonly count: number;
}

interface StartArgs {
  readonly cluster: string;
  readonly secretHex: string;
  readonly peers: readonly PeerConfig[];
  readonly fixedCadenceMs: number | null;
  /** Set before replication starts, so a node that catches up records from its first entry. */
  readonly watch: WatchArgs | null;
}

interface Visibility {
  /** Wall time at which key i became visible; NaN if it did not within the wait. */
  readonly visibleAtMs: Float64Array;
  readonly visibleCount: number;
  /** Wall time at which each peer's link first opened. */
  readonly linkOpenAtMs: Readonly<Record<string, number>>;
}

interface OpenLoopArgs {
  readonly dataset: string;
  readonly ratePerSecond: number;
  readonly count: number;
  readonly issueTimeMsMax: number;
  readonly ackWaitTimeMsMax: number;
}

interface LoopResult {
  readonly startedAtMs: number;
  /** Wall time at which write i was acknowledged; NaN if it was not issued or not acknowledged in time. */
  readonly ackAtMs: Float64Array;
  readonly issuedCount: number;
  readonly ackedCount: number;
  /** True when a time limit, not the count, ended the loop. */
  readonly timeLimited: boolean;
  /** Open loop only: how late writes were issued against their schedule (the writer's own overload). */
  readonly issueLateMsP99: number;
}

interface ClosedLoopArgs {
  readonly dataset: string;
  readonly writersCount: number;
  readonly countMax: number;
  readonly timeMsMax: number;
}

interface NodeStatus {
  readonly links: readonly LinkStatus[];
}

type NodeCommands = BaseCommands & {
  start: { args: StartArgs; result: { startedAtMs: number } };
  status: { args: null; result: NodeStatus };
  /** Waits until every open link acknowledged everything logged; false at the time limit. */
  flush: { args: { timeMsMax: number }; result: boolean };
  watch: { args: WatchArgs; result: null };
  /** Waits until every watched key is visible, or the time limit. */
  await: { args: { timeMsMax: number }; result: Visibility };
  openLoop: { args: OpenLoopArgs; result: LoopResult };
  closedLoop: { args: ClosedLoopArgs; result: LoopResult };
  /** With `--trace`, for the watched dataset: when each key left for B (in A), when B began applying it (in B). */
  traces: { args: null; result: Traces };
};

interface Traces {
  readonly sentToBAtMs: Float64Array;
  readonly applyStartAtMs: Float64Array;
}

interface RawStreamArgs {
  readonly url: string;
  readonly count: number;
  readonly timeMsMax: number;
}

type RawSenderCommands = BaseCommands & {
  stream: { args: RawStreamArgs; result: { startedAtMs: number; openAtMs: number; doneAtMs: number; ackedCount: number } };
};

type RawReceiverCommands = BaseCommands & {
  expect: { args: { count: number }; result: null };
  await: { args: { timeMsMax: number }; result: { firstAtMs: number; lastCommitAtMs: number; recordsCount: number } };
};

type CommandMap = Record<string, { args: unknown; result: unknown }>;
type Handlers<C extends CommandMap> = { [K in keyof C]: (args: C[K]['args']) => Promise<C[K]['result']> | C[K]['result'] };

interface Request {
  readonly id: number;
  readonly cmd: string;
  readonly args: unknown;
}

type Reply = { readonly id: number; readonly result: unknown } | { readonly id: number; readonly error: string } | { readonly ready: unknown };

// ---------------------------------------------------------------- worker side

/** Answers the driver's requests; `dir` is deleted if the driver goes away without stopping this worker. */
function serve<C extends CommandMap>(handlers: Handlers<C>, dir: string): void {
  const table = handlers as unknown as Record<string, ((args: unknown) => unknown) | undefined>;
  process.on('message', (message: unknown) => {
    const request = message as Request;
    void (async () => {
      try {
        const handler = table[request.cmd];
        if (handler === undefined) throw new Error(`unknown command "${request.cmd}"`);
        const result = await handler(request.args);
        // The driver waits for the answer to `stop`; exit only once it has been handed to the channel.
        process.send!({ id: request.id, result } satisfies Reply, undefined, undefined, () => {
          if (request.cmd === 'stop') process.exit(0);
        });
      } catch (error) {
        process.send!({ id: request.id, error: (error as Error).stack ?? String(error) } satisfies Reply);
      }
    })();
  });
  // The driver died (or was killed) without stopping us: leave nothing behind in the shared temp directory.
  process.on('disconnect', () => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(1);
  });
}

function ready(info: unknown): void {
  process.send!({ ready: info } satisfies Reply);
}

/** A region node: a replica, its HTTP server for the peer endpoint, and (once started) its SyncNode. */
async function runNodeWorker(spec: Extract<WorkerSpec, { role: 'node' }>): Promise<void> {
  const collectGarbage = makeCollectGarbage();
  const replica = await Replica.open({ path: spec.dir, node: spec.node, region: spec.region, durability: 'os' });
  const valuePool = Array.from({ length: valuePoolSize }, (_, i) => mapValue(i));
  let sync: SyncNode | null = null;
  const linkOpenAtMs: Record<string, number> = {};
  let watch: { args: WatchArgs; visibleAtMs: Float64Array; visibleCount: number; onComplete: (() => void) | null } | null = null;

  let traces: Traces | null = null;
  const startWatch = (args: WatchArgs): void => {
    watch = { args, visibleAtMs: new Float64Array(args.count).fill(Number.NaN), visibleCount: 0, onComplete: null };
    if (spec.trace) traces = { sentToBAtMs: new Float64Array(args.count).fill(Number.NaN), applyStartAtMs: new Float64Array(args.count).fill(Number.NaN) };
  };
  const traceKeys = (entries: ReadonlyArray<{ readonly dataset: string; readonly key: string }>, times: (t: Traces) => Float64Array): void => {
    if (traces === null || watch === null) return;
    const nowMs = wallNowMs();
    for (const entry of entries) {
      const i = indexOfKey(entry.key);
      if (entry.dataset === watch.args.dataset && i >= 0 && i < watch.args.count && Number.isNaN(times(traces)[i]!)) times(traces)[i] = nowMs;
    }
  };
  if (spec.trace) {
    // Diagnosis only, from outside the packages: every frame this process sends is decoded again, and every
    // applied batch is timed. In this topology the only server-side sockets of A are its link to B (B dials A,
    // A dials C), so a socket without a url is the A→B stream.
    const prototype = WebSocket.prototype as unknown as { send: (this: WebSocket, data: unknown, ...rest: unknown[]) => void };
    const send = prototype.send;
    prototype.send = function (this: WebSocket, data: unknown, ...rest: unknown[]): void {
      if (traces !== null && (this.url === undefined || this.url === '') && data instanceof Uint8Array) {
        const frame = decodeFrame(data);
        if (frame.t === 'batch') traceKeys(frame.entries, (t) => t.sentToBAtMs);
      }
      send.call(this, data, ...rest);
    };
    const applyDeltas = replica.applyDeltas.bind(replica);
    replica.applyDeltas = (batch) => {
      traceKeys(batch, (t) => t.applyStartAtMs);
      return applyDeltas(batch);
    };
  }
  replica.on('change', (change: ChangeEvent) => {
    if (watch === null || change.source !== 'remote' || change.dataset !== watch.args.dataset) return;
    const i = indexOfKey(change.key);
    // First visibility only: a later change of the same key is not the replication of this write.
    if (!(i >= 0 && i < watch.args.count) || !Number.isNaN(watch.visibleAtMs[i]!)) return;
    watch.visibleAtMs[i] = wallNowMs();
    if (++watch.visibleCount === watch.args.count) watch.onComplete?.();
  });

  const server = createServer((_request, response) => response.writeHead(404).end());
  // Replication is not started until the driver knows every port and has set up the proxies.
  server.on('upgrade', (request, socket, head) => (sync === null ? socket.destroy() : sync.handleUpgrade(request, socket, head)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  serve<NodeCommands>(
    {
      clock: () => wallNowMs(),
      cpu: () => processCpuMs(),
      gc: () => {
        collectGarbage();
        return null;
      },
      start: (args) => {
        assert(sync === null, `${spec.node} started twice`);
        if (args.watch !== null) startWatch(args.watch);
        sync = new SyncNode({
          replica,
          cluster: args.cluster,
          secret: Buffer.from(args.secretHex, 'hex'),
          peers: args.peers,
          fixedCadenceMs: args.fixedCadenceMs ?? undefined,
          log: (event) => {
            if (event.event === 'link-open' && typeof event.peer === 'string') linkOpenAtMs[event.peer] ??= wallNowMs();
          },
        });
        const startedAtMs = wallNowMs();
        sync.start();
        return { startedAtMs };
      },
      status: () => ({ links: sync?.status().links ?? [] }),
      flush: async ({ timeMsMax }) => (sync === null ? true : sync.flush(timeMsMax)),
      watch: (args) => {
        startWatch(args);
        return null;
      },
      await: async ({ timeMsMax }) => {
        const current = watch;
        assert(current !== null, 'await without a watch');
        if (current.visibleCount < current.args.count) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, timeMsMax);
            current.onComplete = () => {
              clearTimeout(timer);
              resolve();
            };
          });
        }
        current.onComplete = null;
        return { visibleAtMs: current.visibleAtMs, visibleCount: current.visibleCount, linkOpenAtMs: { ...linkOpenAtMs } };
      },
      traces: () => {
        assert(traces !== null, 'traces without --trace or without a watch');
        return traces;
      },
      openLoop: (args) => openLoop(replica, valuePool, args),
      closedLoop: (args) => closedLoop(replica, valuePool, args),
      stop: async () => {
        await sync?.close();
        await replica.close();
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
        await rm(spec.dir, { recursive: true, force: true });
        return null;
      },
    },
    spec.dir,
  );
  ready({ port: (server.address() as AddressInfo).port });
}

/**
 * Open loop: write i is issued at start + i / rate whatever happened to the writes before it, so a slow
 * acknowledgement does not slow the offered load down. A 1 ms timer issues every write that is due.
 */
async function openLoop(replica: Replica, valuePool: readonly Json[], args: OpenLoopArgs): Promise<LoopResult> {
  const { dataset, ratePerSecond, count } = args;
  const ackAtMs = new Float64Array(count).fill(Number.NaN);
  const issueLateMs = new Float64Array(count);
  let issuedCount = 0;
  let ackedCount = 0;
  let timeLimited = false;
  const startedAtMs = wallNowMs();
  // Set once issuing is over: from then on the last acknowledgement ends the wait.
  let onAllAcked: (() => void) | null = null;
  const acked = (i: number) => (): void => {
    ackAtMs[i] = wallNowMs();
    if (++ackedCount === issuedCount) onAllAcked?.();
  };
  const failed = (error: Error): void => {
    // A put that fails is a bug in the store or the harness, not a measurement.
    process.nextTick(() => {
      throw error;
    });
  };
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const nowMs = wallNowMs();
      const elapsedMs = nowMs - startedAtMs;
      if (elapsedMs >= args.issueTimeMsMax) {
        timeLimited = issuedCount < count;
        resolve();
        return;
      }
      const dueCount = Math.min(count, Math.floor((elapsedMs * ratePerSecond) / 1_000) + 1);
      while (issuedCount < dueCount) {
        const i = issuedCount++;
        issueLateMs[i] = nowMs - (startedAtMs + (i * 1_000) / ratePerSecond);
        replica.put(dataset, keyFor(i), valuePool[i % valuePool.length]!).then(acked(i), failed);
      }
      if (issuedCount < count) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  if (ackedCount < issuedCount) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, args.ackWaitTimeMsMax);
      onAllAcked = () => {
        clearTimeout(timer);
        resolve();
      };
      if (ackedCount === issuedCount) onAllAcked();
    });
    timeLimited ||= ackedCount < issuedCount;
  }
  const late = issueLateMs.subarray(0, Math.max(1, issuedCount)).sort();
  return { startedAtMs, ackAtMs, issuedCount, ackedCount, timeLimited, issueLateMsP99: percentile(late, 0.99) };
}

/** Closed loop: `writersCount` writers, each issuing its next put when the last one is acknowledged. */
async function closedLoop(replica: Replica, valuePool: readonly Json[], args: ClosedLoopArgs): Promise<LoopResult> {
  const ackAtMs = new Float64Array(args.countMax).fill(Number.NaN);
  let next = 0;
  let ackedCount = 0;
  let timeLimited = false;
  const startedAtMs = wallNowMs();
  const deadlineMs = startedAtMs + args.timeMsMax;
  const writer = async (): Promise<void> => {
    while (next < args.countMax) {
      if (wallNowMs() >= deadlineMs) {
        timeLimited = true;
        return;
      }
      const i = next++;
      await replica.put(args.dataset, keyFor(i), valuePool[i % valuePool.length]!);
      ackAtMs[i] = wallNowMs();
      ackedCount++;
    }
  };
  await Promise.all(Array.from({ length: args.writersCount }, writer));
  return { startedAtMs, ackAtMs, issuedCount: next, ackedCount, timeLimited, issueLateMsP99: 0 };
}

// The raw pipe's frames. Batch: u32 id, u32 count, then per record u16 key length, key, u32 value length,
// value (little-endian). Ack: u32 id. The minimum a batched, acknowledged stream needs.

function encodeRawBatch(id: number, records: ReadonlyArray<readonly [Uint8Array, Uint8Array]>): Buffer {
  let bytes = 8;
  for (const [key, value] of records) bytes += 2 + key.length + 4 + value.length;
  const frame = Buffer.allocUnsafe(bytes);
  frame.writeUInt32LE(id, 0);
  frame.writeUInt32LE(records.length, 4);
  let at = 8;
  for (const [key, value] of records) {
    frame.writeUInt16LE(key.length, at);
    frame.set(key, at + 2);
    at += 2 + key.length;
    frame.writeUInt32LE(value.length, at);
    frame.set(value, at + 4);
    at += 4 + value.length;
  }
  assert(at === bytes, 'raw batch encoded to its computed size');
  return frame;
}

function decodeRawBatch(frame: Buffer): { id: number; records: Array<[Uint8Array, Uint8Array]> } {
  const id = frame.readUInt32LE(0);
  const count = frame.readUInt32LE(4);
  const records: Array<[Uint8Array, Uint8Array]> = [];
  let at = 8;
  for (let i = 0; i < count; i++) {
    const keyLength = frame.readUInt16LE(at);
    const key = frame.subarray(at + 2, at + 2 + keyLength);
    at += 2 + keyLength;
    const valueLength = frame.readUInt32LE(at);
    records.push([key, frame.subarray(at + 4, at + 4 + valueLength)]);
    at += 4 + valueLength;
  }
  assert(at === frame.length, `raw batch ${id}: ${frame.length - at} trailing bytes`);
  return { id, records };
}

function rawBytes(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/**
 * The raw pipe's sending end: the same documents in a LevelDB (as a delta log would hold them), read in
 * batches and streamed over one WebSocket with at most `rawWindowBatches` unacknowledged, reading the next
 * batch while the window has room.
 */
async function runRawSender(spec: Extract<WorkerSpec, { role: 'raw-sender' }>): Promise<void> {
  const collectGarbage = makeCollectGarbage();
  const db = new Level<Uint8Array, Uint8Array>(spec.dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  for (let first = 0; first < spec.recordsCount; first += rawBatchRecordsCount) {
    const ops = [];
    for (let i = first; i < Math.min(spec.recordsCount, first + rawBatchRecordsCount); i++) {
      ops.push({ type: 'put' as const, key: textEncoder.encode(keyFor(i)), value: textEncoder.encode(JSON.stringify(mapValue(i % valuePoolSize))) });
    }
    await db.batch(ops, { sync: false });
  }
  serve<RawSenderCommands>(
    {
      clock: () => wallNowMs(),
      cpu: () => processCpuMs(),
      gc: () => {
        collectGarbage();
        return null;
      },
      stream: async ({ url, count, timeMsMax }) => {
        const startedAtMs = wallNowMs();
        const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * 2 ** 20 });
        ws.binaryType = 'nodebuffer';
        await new Promise<void>((resolve, reject) => {
          ws.once('open', () => resolve());
          ws.once('error', reject);
        });
        const openAtMs = wallNowMs();
        const iterator = db.iterator();
        const inflight = new Map<number, number>();
        let nextId = 1;
        let sentCount = 0;
        let ackedCount = 0;
        let reading = false;
        try {
          await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(resolve, timeMsMax);
            const pump = async (): Promise<void> => {
              if (reading) return;
              reading = true;
              try {
                while (inflight.size < rawWindowBatches && sentCount < count) {
                  // nextv returns what the iterator has buffered (about 16 KiB), often fewer than asked: fill the batch.
                  const records: Array<[Uint8Array, Uint8Array]> = [];
                  const wanted = Math.min(rawBatchRecordsCount, count - sentCount);
                  while (records.length < wanted) {
                    const more = await iterator.nextv(wanted - records.length);
                    assert(more.length > 0, `raw sender: the database ended after ${sentCount + records.length} of ${count} records`);
                    records.push(...more);
                  }
                  const id = nextId++;
                  ws.send(encodeRawBatch(id, records));
                  inflight.set(id, records.length);
                  sentCount += records.length;
                }
              } finally {
                reading = false;
              }
            };
            ws.on('message', (data: RawData) => {
              const id = rawBytes(data).readUInt32LE(0);
              const records = inflight.get(id);
              assert(records !== undefined, `raw sender: ack for unknown batch ${id}`);
              inflight.delete(id);
              ackedCount += records;
              if (ackedCount >= count) {
                clearTimeout(timer);
                resolve();
              } else {
                pump().catch(reject);
              }
            });
            ws.once('close', () => reject(new Error(`raw sender: connection closed after ${ackedCount} of ${count} records`)));
            pump().catch(reject);
          });
        } finally {
          ws.removeAllListeners('close');
          ws.close();
          await iterator.close();
        }
        return { startedAtMs, openAtMs, doneAtMs: wallNowMs(), ackedCount };
      },
      stop: async () => {
        await db.close();
        await rm(spec.dir, { recursive: true, force: true });
        return null;
      },
    },
    spec.dir,
  );
  ready(null);
}

/** The raw pipe's receiving end: each batch is written with one LevelDB batch (in order), then acknowledged. */
async function runRawReceiver(spec: Extract<WorkerSpec, { role: 'raw-receiver' }>): Promise<void> {
  const collectGarbage = makeCollectGarbage();
  const db = new Level<Uint8Array, Uint8Array>(spec.dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  let expected = 0;
  let recordsCount = 0;
  let firstAtMs = Number.NaN;
  let lastCommitAtMs = Number.NaN;
  let onComplete: (() => void) | null = null;
  let chain: Promise<void> = Promise.resolve();
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 64 * 2 ** 20 });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  wss.on('connection', (ws) => {
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: RawData) => {
      if (Number.isNaN(firstAtMs)) firstAtMs = wallNowMs();
      const { id, records } = decodeRawBatch(rawBytes(data));
      // Batches are written one after another, like the protocol's apply chain, and acknowledged once written.
      chain = chain.then(async () => {
        await db.batch(
          records.map(([key, value]) => ({ type: 'put' as const, key, value })),
          { sync: false },
        );
        recordsCount += records.length;
        lastCommitAtMs = wallNowMs();
        const ack = Buffer.allocUnsafe(4);
        ack.writeUInt32LE(id, 0);
        ws.send(ack);
        if (recordsCount >= expected) onComplete?.();
      });
    });
  });
  serve<RawReceiverCommands>(
    {
      clock: () => wallNowMs(),
      cpu: () => processCpuMs(),
      gc: () => {
        collectGarbage();
        return null;
      },
      expect: ({ count }) => {
        expected = count;
        return null;
      },
      await: async ({ timeMsMax }) => {
        if (recordsCount < expected) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, timeMsMax);
            onComplete = () => {
              clearTimeout(timer);
              resolve();
            };
          });
        }
        onComplete = null;
        return { firstAtMs, lastCommitAtMs, recordsCount };
      },
      stop: async () => {
        for (const client of wss.clients) client.terminate();
        await new Promise((resolve) => wss.close(resolve));
        await chain.catch(() => undefined);
        await db.close();
        await rm(spec.dir, { recursive: true, force: true });
        return null;
      },
    },
    spec.dir,
  );
  ready({ port: (wss.address() as AddressInfo).port });
}

async function workerMain(spec: WorkerSpec): Promise<void> {
  switch (spec.role) {
    case 'node':
      return runNodeWorker(spec);
    case 'raw-sender':
      return runRawSender(spec);
    case 'raw-receiver':
      return runRawReceiver(spec);
  }
}

// ---------------------------------------------------------------- driver side: workers, proxies, clusters

/** Everything the driver must tear down if it stops early (error or Ctrl-C). */
const live = {
  workers: new Set<{ kill(): void; readonly exited: Promise<void> }>(),
  proxies: new Set<FaultProxy>(),
};

/** Where `--profile` puts the children's CPU profiles; null without it. */
let profileDir: string | null = null;
let workerSerial = 0;
/** `--trace`: the lag cases also record when each write left A and when B began applying it. */
let traceEnabled = false;

/** A child process running this file with `--worker`, and its request/answer channel. */
class Worker<C extends CommandMap & BaseCommands> {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  private exitedAs: string | null = null;
  private onReady: ((info: unknown) => void) | null = null;
  readonly exited: Promise<void>;
  /** The worker's clock minus the driver's, and half the round trip it was measured with. */
  clock = { offsetMs: 0, uncertaintyMs: 0 };

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitedAs = signal === null ? `code ${code}` : `signal ${signal}`;
        for (const { reject } of this.pending.values()) reject(new Error(`${this.name} exited (${this.exitedAs})`));
        this.pending.clear();
        live.workers.delete(this);
        resolve();
      });
    });
    child.on('message', (message: unknown) => {
      const reply = message as Reply;
      if ('ready' in reply) {
        this.onReady?.(reply.ready);
        return;
      }
      const waiter = this.pending.get(reply.id);
      if (waiter === undefined) return;
      this.pending.delete(reply.id);
      if ('error' in reply) waiter.reject(new Error(`${this.name}: ${reply.error}`));
      else waiter.resolve(reply.result);
    });
  }

  /** Spawns a worker, waits until it is ready, and measures its clock offset. */
  static async spawn<C extends CommandMap & BaseCommands, R>(name: string, spec: WorkerSpec): Promise<{ worker: Worker<C>; ready: R }> {
    // A directory per process: with `--import tsx` the module loader's thread writes a profile of its own.
    const profileArgs = profileDir === null ? [] : ['--cpu-prof', '--cpu-prof-dir', join(profileDir, `${name}-${++workerSerial}`)];
    // The child's stdout goes to our stderr: stdout is the report alone.
    const child = spawn(process.execPath, ['--import', 'tsx', ...profileArgs, scriptPath, '--worker', JSON.stringify(spec)], {
      cwd: repoDir,
      stdio: ['ignore', 2, 2, 'ipc'],
      serialization: 'advanced',
    });
    const worker = new Worker<C>(name, child);
    live.workers.add(worker);
    const readyInfo = await new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} not ready after ${workerStartTimeMsMax} ms`)), workerStartTimeMsMax);
      worker.onReady = (info) => {
        clearTimeout(timer);
        resolve(info as R);
      };
      void worker.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${worker.exitedAs}) before it was ready`));
      });
    });
    await worker.measureClock();
    return { worker, ready: readyInfo };
  }

  call<K extends keyof C & string>(cmd: K, args: C[K]['args'], timeMsMax = callTimeMsDefault): Promise<C[K]['result']> {
    if (this.exitedAs !== null) return Promise.reject(new Error(`${this.name} exited (${this.exitedAs}) before "${cmd}"`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: "${cmd}" got no answer in ${timeMsMax} ms`));
      }, timeMsMax);
      this.pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as C[K]['result']);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.child.send({ id, cmd, args } satisfies Request);
    });
  }

  /** CPU time (user + system) the worker has used so far, in ms. */
  cpuMs(): Promise<number> {
    return this.call('cpu', null);
  }

  /** A worker's wall time on the driver's clock. */
  toDriverMs(workerMs: number): number {
    return workerMs - this.clock.offsetMs;
  }

  /** Offset from the fastest of several IPC round trips: its error is at most half that round trip. */
  private async measureClock(): Promise<void> {
    let best = { roundTripMs: Number.POSITIVE_INFINITY, offsetMs: 0 };
    for (let i = 0; i < clockProbesCount; i++) {
      const sentAtMs = wallNowMs();
      const workerMs = await this.call('clock', null);
      const receivedAtMs = wallNowMs();
      const roundTripMs = receivedAtMs - sentAtMs;
      if (roundTripMs < best.roundTripMs) best = { roundTripMs, offsetMs: workerMs - (sentAtMs + receivedAtMs) / 2 };
    }
    this.clock = { offsetMs: best.offsetMs, uncertaintyMs: best.roundTripMs / 2 };
  }

  /** Asks the worker to stop cleanly; kills it if it does not exit in time. */
  async stop(): Promise<void> {
    if (this.exitedAs !== null) return;
    await this.call('stop', null, stopTimeMsMax).catch(() => undefined);
    await Promise.race([this.exited, sleep(stopTimeMsMax)]);
    if (this.exitedAs === null) {
      this.kill();
      await this.exited;
    }
  }

  kill(): void {
    if (this.exitedAs === null) this.child.kill('SIGKILL');
  }
}

type AnyWorker = Worker<NodeCommands> | Worker<RawSenderCommands> | Worker<RawReceiverCommands>;

/** CPU used per operation by each process of a case, in µs, and how many cores all of them kept busy. */
interface CpuUse {
  readonly usPerOp: Readonly<Record<string, number>>;
  readonly coresBusy: number;
}

/**
 * Measures the CPU time each process uses between `start` and `stop`. `driver` is this process: during a case
 * it runs the proxies and little else, so its figure is the proxies' cost.
 */
class CpuMeter {
  private constructor(
    private readonly workers: Readonly<Record<string, AnyWorker>>,
    private readonly startMs: Readonly<Record<string, number>>,
    private readonly startedAtMs: number,
  ) {}

  static async start(workers: Readonly<Record<string, AnyWorker>>): Promise<CpuMeter> {
    return new CpuMeter(workers, await CpuMeter.read(workers), wallNowMs());
  }

  private static async read(workers: Readonly<Record<string, AnyWorker>>): Promise<Record<string, number>> {
    const entries = await Promise.all(Object.entries(workers).map(async ([name, worker]) => [name, await worker.cpuMs()] as const));
    return { ...Object.fromEntries(entries), driver: processCpuMs() };
  }

  async stop(opsCount: number): Promise<CpuUse> {
    const endMs = await CpuMeter.read(this.workers);
    const elapsedMs = wallNowMs() - this.startedAtMs;
    const usPerOp: Record<string, number> = {};
    let totalMs = 0;
    for (const [name, ms] of Object.entries(endMs)) {
      const usedMs = ms - this.startMs[name]!;
      totalMs += usedMs;
      usPerOp[name] = (usedMs * 1_000) / opsCount;
    }
    return { usPerOp, coresBusy: totalMs / elapsedMs };
  }
}

type RegionName = 'a' | 'b' | 'c';
const regionNames: Readonly<Record<RegionName, string>> = { a: 'region-a', b: 'region-b', c: 'region-c' };
/**
 * Node ids. The lower id of a pair dials; B's sorts first so that B dials A and C. A restarted B then connects
 * at once, instead of waiting out A's reconnect back-off (full jitter up to 10 s), which catch-up would measure.
 */
const nodeIds: Readonly<Record<RegionName, string>> = { b: 'n1-b', a: 'n2-a', c: 'n3-c' };

interface ClusterNode {
  readonly region: RegionName;
  readonly id: string;
  readonly worker: Worker<NodeCommands>;
  readonly port: number;
}

/** A link between two nodes, through its own FaultProxy; `dialer` connects to the proxy, which connects to `acceptor`. */
class ProxiedLink {
  constructor(
    readonly dialer: ClusterNode,
    readonly acceptor: ClusterNode,
    readonly proxy: FaultProxy,
  ) {}

  static async open(x: ClusterNode, y: ClusterNode): Promise<ProxiedLink> {
    const [dialer, acceptor] = x.id < y.id ? [x, y] : [y, x];
    const proxy = await FaultProxy.start({
      targetHost: '127.0.0.1',
      targetPort: acceptor.port,
      latencyMs: oneWayLatencyMs,
      name: `${dialer.id}→${acceptor.id}`,
    });
    live.proxies.add(proxy);
    return new ProxiedLink(dialer, acceptor, proxy);
  }

  get url(): string {
    return `ws://127.0.0.1:${this.proxy.port}/v1/replicate`;
  }

  joins(x: RegionName, y: RegionName): boolean {
    return (this.dialer.region === x && this.acceptor.region === y) || (this.dialer.region === y && this.acceptor.region === x);
  }

  /** Bytes delivered so far from `from`'s side to the other side (TCP payload: WebSocket frames and headers). */
  bytesFrom(from: RegionName): number {
    const stats = this.proxy.stats();
    return from === this.dialer.region ? stats.bytesForward : stats.bytesBackward;
  }

  bytesBoth(): number {
    const stats = this.proxy.stats();
    return stats.bytesForward + stats.bytesBackward;
  }

  async close(): Promise<void> {
    await this.proxy.close();
    live.proxies.delete(this.proxy);
  }
}

async function spawnNode(root: string, region: RegionName, id: string): Promise<ClusterNode> {
  const dir = join(root, `${id}-${randomBytes(4).toString('hex')}`);
  const { worker, ready: info } = await Worker.spawn<NodeCommands, { port: number }>(id, {
    role: 'node',
    node: id,
    region: regionNames[region],
    dir,
    trace: traceEnabled,
  });
  return { region, id, worker, port: info.port };
}

/** The peers as `self` must be told: the url of each is the proxy of their link (only the dialer uses it). */
function peersFor(self: ClusterNode, links: readonly ProxiedLink[], extra: readonly PeerConfig[]): PeerConfig[] {
  const peers: PeerConfig[] = [{ node: self.id, region: regionNames[self.region], url: 'ws://127.0.0.1:9/self' }];
  for (const link of links) {
    if (link.dialer !== self && link.acceptor !== self) continue;
    const other = link.dialer === self ? link.acceptor : link.dialer;
    peers.push({ node: other.id, region: regionNames[other.region], url: link.url });
  }
  return [...peers, ...extra];
}

/** Region nodes in their own processes, a proxied link between every pair, replication started and open. */
class Cluster {
  private constructor(
    readonly nodes: ReadonlyMap<RegionName, ClusterNode>,
    readonly links: readonly ProxiedLink[],
    readonly secretHex: string,
    readonly fixedCadenceMs: number | null,
  ) {}

  /** `extraPeers` are nodes that will join later; they dial in, so their urls here are never used. */
  static async start(root: string, regions: readonly RegionName[], fixedCadence: number | null, extraPeers: readonly PeerConfig[] = []): Promise<Cluster> {
    const nodes = new Map<RegionName, ClusterNode>();
    const links: ProxiedLink[] = [];
    const secretHex = randomBytes(32).toString('hex');
    const cluster = new Cluster(nodes, links, secretHex, fixedCadence);
    try {
      for (const node of await Promise.all(regions.map((region) => spawnNode(root, region, nodeIds[region])))) nodes.set(node.region, node);
      const list = [...nodes.values()];
      for (let i = 0; i < list.length; i++) for (let j = i + 1; j < list.length; j++) links.push(await ProxiedLink.open(list[i]!, list[j]!));
      for (const node of list) {
        await node.worker.call('start', { cluster: 'bench', secretHex, peers: peersFor(node, links, extraPeers), fixedCadenceMs: fixedCadence, watch: null });
      }
      await cluster.waitOpen(list);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  node(region: RegionName): ClusterNode {
    const found = this.nodes.get(region);
    assert(found !== undefined, `no node in region ${region}`);
    return found;
  }

  link(x: RegionName, y: RegionName): ProxiedLink {
    const found = this.links.find((link) => link.joins(x, y));
    assert(found !== undefined, `no link between ${x} and ${y}`);
    return found;
  }

  /** Waits until every link among `members` is open on both sides (`others` may be extra, idle peers). */
  async waitOpen(members: readonly ClusterNode[]): Promise<void> {
    const ids = new Set(members.map((node) => node.id));
    const deadlineMs = wallNowMs() + linksOpenTimeMsMax;
    for (;;) {
      const statuses = await Promise.all(members.map((node) => node.worker.call('status', null)));
      const links = statuses.flatMap((status) => status.links.filter((link) => ids.has(link.peer)));
      if (links.every((link) => link.state === 'open')) return;
      if (wallNowMs() > deadlineMs) {
        throw new Error(
          `links not open after ${linksOpenTimeMsMax} ms: ${links.map((link) => `${link.peer} ${link.state} ${link.lastError ?? ''}`).join('; ')}`,
        );
      }
      await sleep(50);
    }
  }

  async gc(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((node) => node.worker.call('gc', null)));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((node) => node.worker.stop()));
    await Promise.all(this.links.map((link) => link.close()));
  }
}

// ---------------------------------------------------------------- measurements

/** One run of one lag case. */
interface LagSample {
  readonly cadence: CadenceName;
  readonly ratePerSecond: number;
  readonly issuedCount: number;
  readonly ackedCount: number;
  readonly achievedOpsPerSecond: number;
  readonly issueLateMsP99: number;
  readonly lagMsP50: number;
  readonly lagMsP99: number;
  readonly lagMsMax: number;
  /** Writes acknowledged in A but not visible in B within the drain limit. */
  readonly missingCount: number;
  /** Proxy bytes per acknowledged write: A→B (the data stream), A–B both directions, all three links. */
  readonly bytesPerOpAToB: number;
  readonly bytesPerOpLink: number;
  readonly bytesPerOpAllLinks: number;
  /** A's sender to B: batches and entries in this case. */
  readonly batchesCount: number;
  readonly entriesPerBatch: number;
  readonly cpu: CpuUse;
  /** With `--trace`: the lag split into A (ack → frame sent to B), path (sent → B starts applying), B (→ visible). */
  readonly stagesMs: LagStages | null;
  readonly timeLimited: boolean;
}

interface LagStages {
  readonly inA: { readonly p50: number; readonly p99: number };
  readonly path: { readonly p50: number; readonly p99: number };
  readonly inB: { readonly p50: number; readonly p99: number };
}

function stagePercentiles(valuesMs: readonly number[]): { p50: number; p99: number } {
  if (valuesMs.length === 0) return { p50: Number.NaN, p99: Number.NaN };
  const sorted = Float64Array.from(valuesMs).sort();
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) };
}

/** The CPU meter's names for the processes of a cluster. */
function clusterWorkers(cluster: Cluster): Record<string, AnyWorker> {
  return Object.fromEntries([...cluster.nodes.values()].map((node) => [node.region.toUpperCase(), node.worker]));
}

async function linkTo(node: ClusterNode, peer: ClusterNode): Promise<LinkStatus> {
  const status = await node.worker.call('status', null);
  const link = status.links.find((candidate) => candidate.peer === peer.id);
  assert(link !== undefined, `${node.id} has no link to ${peer.id}`);
  return link;
}

function allLinkBytes(links: readonly ProxiedLink[]): number {
  return links.reduce((sum, link) => sum + link.bytesBoth(), 0);
}

/** Open-loop writes in A at `ratePerSecond`; B records when each becomes visible. */
async function measureLag(
  cluster: Cluster,
  cadence: CadenceName,
  ratePerSecond: number,
  limits: Limits,
  dataset: string,
  durationMs: number,
): Promise<LagSample> {
  const a = cluster.node('a');
  const b = cluster.node('b');
  const linkAB = cluster.link('a', 'b');
  const count = Math.round((ratePerSecond * durationMs) / 1_000);
  await cluster.gc();
  await b.worker.call('watch', { dataset, count });
  if (traceEnabled) await a.worker.call('watch', { dataset, count });
  const senderBefore = await linkTo(a, b);
  const bytesBefore = { aToB: linkAB.bytesFrom('a'), link: linkAB.bytesBoth(), all: allLinkBytes(cluster.links) };
  const cpuMeter = await CpuMeter.start(clusterWorkers(cluster));
  const loop = await a.worker.call(
    'openLoop',
    { dataset, ratePerSecond, count, issueTimeMsMax: limits.lagIssueTimeMsMax, ackWaitTimeMsMax: limits.ackWaitTimeMsMax },
    limits.lagIssueTimeMsMax + limits.ackWaitTimeMsMax + callTimeMsDefault,
  );
  const seen = await b.worker.call('await', { timeMsMax: limits.drainTimeMsMax }, limits.drainTimeMsMax + callTimeMsDefault);
  await sleep(settleMs);
  const cpu = await cpuMeter.stop(loop.ackedCount);
  const senderAfter = await linkTo(a, b);
  const bytes = {
    aToB: linkAB.bytesFrom('a') - bytesBefore.aToB,
    link: linkAB.bytesBoth() - bytesBefore.link,
    all: allLinkBytes(cluster.links) - bytesBefore.all,
  };

  const lagsMs: number[] = [];
  let lastAckMs = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < count; i++) {
    const ackMs = loop.ackAtMs[i]!;
    if (Number.isNaN(ackMs)) continue;
    lastAckMs = Math.max(lastAckMs, ackMs);
    const visibleMs = seen.visibleAtMs[i]!;
    if (!Number.isNaN(visibleMs)) lagsMs.push(b.worker.toDriverMs(visibleMs) - a.worker.toDriverMs(ackMs));
  }
  assert(lagsMs.length > 0, `${cadence} at ${ratePerSecond} ops/s: no write became visible in B`);
  let stagesMs: LagStages | null = null;
  if (traceEnabled) {
    const [inA, inB] = await Promise.all([a.worker.call('traces', null), b.worker.call('traces', null)]);
    const stages = { inA: [] as number[], path: [] as number[], inB: [] as number[] };
    for (let i = 0; i < count; i++) {
      const ackMs = a.worker.toDriverMs(loop.ackAtMs[i]!);
      const sentMs = a.worker.toDriverMs(inA.sentToBAtMs[i]!);
      const applyMs = b.worker.toDriverMs(inB.applyStartAtMs[i]!);
      const visibleMs = b.worker.toDriverMs(seen.visibleAtMs[i]!);
      if ([ackMs, sentMs, applyMs, visibleMs].some(Number.isNaN)) continue;
      stages.inA.push(sentMs - ackMs);
      stages.path.push(applyMs - sentMs);
      stages.inB.push(visibleMs - applyMs);
    }
    stagesMs = { inA: stagePercentiles(stages.inA), path: stagePercentiles(stages.path), inB: stagePercentiles(stages.inB) };
  }
  const sorted = Float64Array.from(lagsMs).sort();
  const batchesCount = senderAfter.sent.batches - senderBefore.sent.batches;
  return {
    cadence,
    ratePerSecond,
    issuedCount: loop.issuedCount,
    ackedCount: loop.ackedCount,
    achievedOpsPerSecond: loop.ackedCount / ((lastAckMs - loop.startedAtMs) / 1_000),
    issueLateMsP99: loop.issueLateMsP99,
    lagMsP50: percentile(sorted, 0.5),
    lagMsP99: percentile(sorted, 0.99),
    lagMsMax: sorted[sorted.length - 1]!,
    missingCount: loop.ackedCount - lagsMs.length,
    bytesPerOpAToB: bytes.aToB / loop.ackedCount,
    bytesPerOpLink: bytes.link / loop.ackedCount,
    bytesPerOpAllLinks: bytes.all / loop.ackedCount,
    batchesCount,
    entriesPerBatch: batchesCount === 0 ? 0 : (senderAfter.sent.entries - senderBefore.sent.entries) / batchesCount,
    cpu,
    stagesMs,
    timeLimited: loop.timeLimited,
  };
}

/** One run of the throughput case. */
interface ThroughputSample {
  /** Entries that became visible in B per second, over the window. */
  readonly arrivalsPerSecond: number;
  /** Writes acknowledged in A per second, over the same window. */
  readonly acksPerSecond: number;
  /** Acknowledged in A but not yet visible in B, at the start and the end of the window. */
  readonly backlogAtWindowStart: number;
  readonly backlogAtWindowEnd: number;
  readonly entriesPerBatch: number;
  readonly lagMsP50: number;
  /** Over the window, per entry that arrived in B in it. */
  readonly cpu: CpuUse;
  readonly timeLimited: boolean;
}

/** Closed-loop writers in A as fast as the store allows; B's arrivals are counted over a window after a ramp. */
async function measureThroughput(cluster: Cluster, limits: Limits): Promise<ThroughputSample> {
  const a = cluster.node('a');
  const b = cluster.node('b');
  const dataset = 'throughput';
  const countMax = limits.throughputOpsCountMax;
  const loopTimeMs = limits.throughputRampMs + limits.throughputWindowMs;
  await cluster.gc();
  await b.worker.call('watch', { dataset, count: countMax });
  const senderBefore = await linkTo(a, b);
  const looping = a.worker.call('closedLoop', { dataset, writersCount, countMax, timeMsMax: loopTimeMs }, loopTimeMs + callTimeMsDefault);
  // The CPU meter covers the window alone (to within the few ms of an IPC round trip), when the pipeline is steady.
  await sleep(limits.throughputRampMs);
  const cpuMeter = await CpuMeter.start(clusterWorkers(cluster));
  await sleep(limits.throughputWindowMs);
  const cpuStopping = cpuMeter.stop(1);
  const loop = await looping;
  const cpuTotal = await cpuStopping;
  const senderAfter = await linkTo(a, b);
  // B may well be behind when the writers stop; only the window counts, so B is not waited for beyond it.
  const seen = await b.worker.call('await', { timeMsMax: settleMs }, settleMs + callTimeMsDefault);
  const windowStartMs = a.worker.toDriverMs(loop.startedAtMs) + limits.throughputRampMs;
  const windowEndMs = windowStartMs + limits.throughputWindowMs;
  let acksInWindow = 0;
  let arrivalsInWindow = 0;
  let backlogAtWindowStart = 0;
  let backlogAtWindowEnd = 0;
  const lagsMs: number[] = [];
  for (let i = 0; i < countMax; i++) {
    const rawAckMs = loop.ackAtMs[i]!;
    if (Number.isNaN(rawAckMs)) continue;
    const ackMs = a.worker.toDriverMs(rawAckMs);
    const rawVisibleMs = seen.visibleAtMs[i]!;
    const visibleMs = Number.isNaN(rawVisibleMs) ? Number.POSITIVE_INFINITY : b.worker.toDriverMs(rawVisibleMs);
    if (ackMs >= windowStartMs && ackMs < windowEndMs) acksInWindow++;
    if (visibleMs >= windowStartMs && visibleMs < windowEndMs) {
      arrivalsInWindow++;
      lagsMs.push(visibleMs - ackMs);
    }
    if (ackMs < windowStartMs && visibleMs >= windowStartMs) backlogAtWindowStart++;
    if (ackMs < windowEndMs && visibleMs >= windowEndMs) backlogAtWindowEnd++;
  }
  const batchesCount = senderAfter.sent.batches - senderBefore.sent.batches;
  const cpu = {
    usPerOp: Object.fromEntries(Object.entries(cpuTotal.usPerOp).map(([name, us]) => [name, us / Math.max(1, arrivalsInWindow)])),
    coresBusy: cpuTotal.coresBusy,
  };
  return {
    arrivalsPerSecond: arrivalsInWindow / (limits.throughputWindowMs / 1_000),
    acksPerSecond: acksInWindow / (limits.throughputWindowMs / 1_000),
    backlogAtWindowStart,
    backlogAtWindowEnd,
    entriesPerBatch: batchesCount === 0 ? 0 : (senderAfter.sent.entries - senderBefore.sent.entries) / batchesCount,
    lagMsP50: lagsMs.length === 0 ? Number.NaN : percentile(Float64Array.from(lagsMs).sort(), 0.5),
    cpu,
    timeLimited: loop.timeLimited,
  };
}

/** The catch-up cluster: A and C up with `bulkDocsCount` documents written in A; a fresh B joins per run. */
interface CatchUpSetup {
  readonly cluster: Cluster;
  readonly docsCount: number;
  readonly fillDocsPerSecond: number;
}

/** B's id in run `run`: a new node each run, so A streams its whole log to it (A's cursor for it is 0). */
function catchUpNodeId(run: number): string {
  return `${nodeIds.b}-r${run}`;
}

async function prepareCatchUp(root: string, settings: Settings): Promise<CatchUpSetup> {
  // A and C know every B that will join; B's id sorts first, so B dials and these urls are never used.
  const futurePeers = Array.from(
    { length: settings.runs },
    (_, i): PeerConfig => ({ node: catchUpNodeId(i + 1), region: regionNames.b, url: 'ws://127.0.0.1:9/never-dialed' }),
  );
  const cluster = await Cluster.start(root, ['a', 'c'], null, futurePeers);
  try {
    const { limits } = settings;
    const fill = await cluster
      .node('a')
      .worker.call(
        'closedLoop',
        { dataset: 'bulk', writersCount, countMax: limits.bulkDocsCount, timeMsMax: limits.fillTimeMsMax },
        limits.fillTimeMsMax + callTimeMsDefault,
      );
    const lastAckMs = Math.max(...Array.from(fill.ackAtMs).filter((ms) => !Number.isNaN(ms)));
    // C must hold everything (and be quiet) before B joins, or C's own catch-up would share the CPU with B's.
    for (const region of ['a', 'c'] as const) {
      const flushed = await cluster.node(region).worker.call('flush', { timeMsMax: limits.fillTimeMsMax }, limits.fillTimeMsMax + callTimeMsDefault);
      assert(flushed, `catch-up setup: ${region} did not flush its links in ${limits.fillTimeMsMax} ms`);
    }
    return { cluster, docsCount: fill.ackedCount, fillDocsPerSecond: fill.ackedCount / ((lastAckMs - fill.startedAtMs) / 1_000) };
  } catch (error) {
    await cluster.stop();
    throw error;
  }
}

/** One run of the catch-up case. */
interface CatchUpSample {
  readonly docsCount: number;
  readonly visibleCount: number;
  /** From B's `sync.start()` to its last document visible. */
  readonly elapsedMs: number;
  readonly docsPerSecond: number;
  /** From B's start to its link with A open (connect and handshake through the proxy). */
  readonly linkOpenMs: number;
  /** From the link open to the last document visible: the streaming rate alone. */
  readonly streamDocsPerSecond: number;
  /** Spawning B's process and opening its replica: not replication, reported for completeness. */
  readonly processStartMs: number;
  readonly bytesPerDocAToB: number;
  readonly bytesPerDocLink: number;
  /** Both of B's links (A–B and C–B), both directions. */
  readonly bytesPerDocAllLinks: number;
  /** A caught B up from document states (its log no longer reached B's cursor), not from its log. */
  readonly fromStates: boolean;
  /** From B's start until it has everything, per document. */
  readonly cpu: CpuUse;
}

async function measureCatchUp(root: string, setup: CatchUpSetup, limits: Limits, run: number): Promise<CatchUpSample> {
  const a = setup.cluster.node('a');
  const c = setup.cluster.node('c');
  await setup.cluster.gc();
  const spawnedAtMs = wallNowMs();
  const b = await spawnNode(root, 'b', catchUpNodeId(run));
  const processStartMs = wallNowMs() - spawnedAtMs;
  const links: ProxiedLink[] = [];
  try {
    links.push(await ProxiedLink.open(b, a), await ProxiedLink.open(b, c));
    const [linkAB] = links as [ProxiedLink, ProxiedLink];
    const cpuMeter = await CpuMeter.start({ A: a.worker, B: b.worker, C: c.worker });
    const { startedAtMs } = await b.worker.call('start', {
      cluster: 'bench',
      secretHex: setup.cluster.secretHex,
      peers: peersFor(b, links, []),
      fixedCadenceMs: null,
      watch: { dataset: 'bulk', count: setup.docsCount },
    });
    const seen = await b.worker.call('await', { timeMsMax: limits.catchUpTimeMsMax }, limits.catchUpTimeMsMax + callTimeMsDefault);
    const cpu = await cpuMeter.stop(seen.visibleCount);
    await sleep(settleMs);
    let lastVisibleMs = Number.NEGATIVE_INFINITY;
    for (const ms of seen.visibleAtMs) if (!Number.isNaN(ms)) lastVisibleMs = Math.max(lastVisibleMs, ms);
    const senderAB = await linkTo(a, b);
    const linkOpenAtMs = seen.linkOpenAtMs[a.id];
    assert(linkOpenAtMs !== undefined && seen.visibleCount > 0, `catch-up run ${run}: B received nothing from A`);
    // All three times are B's own clock: no offset correction needed.
    const elapsedMs = lastVisibleMs - startedAtMs;
    return {
      docsCount: setup.docsCount,
      visibleCount: seen.visibleCount,
      elapsedMs,
      docsPerSecond: seen.visibleCount / (elapsedMs / 1_000),
      linkOpenMs: linkOpenAtMs - startedAtMs,
      streamDocsPerSecond: seen.visibleCount / ((lastVisibleMs - linkOpenAtMs) / 1_000),
      processStartMs,
      bytesPerDocAToB: linkAB.bytesFrom('a') / seen.visibleCount,
      bytesPerDocLink: linkAB.bytesBoth() / seen.visibleCount,
      bytesPerDocAllLinks: allLinkBytes(links) / seen.visibleCount,
      fromStates: senderAB.catchUps > 0,
      cpu,
    };
  } finally {
    await b.worker.stop();
    await Promise.all(links.map((link) => link.close()));
  }
}

/** One run of the raw pipe. */
interface RawSample {
  readonly docsCount: number;
  readonly receivedCount: number;
  /** From the sender's start (before connecting) to the receiver's last batch written. */
  readonly elapsedMs: number;
  readonly docsPerSecond: number;
  readonly connectMs: number;
  /** Proxy bytes per document: sender → receiver, and both directions. */
  readonly bytesPerDocData: number;
  readonly bytesPerDocBoth: number;
  readonly cpu: CpuUse;
}

async function measureRaw(root: string, sender: Worker<RawSenderCommands>, docsCount: number, limits: Limits): Promise<RawSample> {
  const dir = join(root, `raw-receiver-${randomBytes(4).toString('hex')}`);
  const { worker: receiver, ready: info } = await Worker.spawn<RawReceiverCommands, { port: number }>('raw-receiver', { role: 'raw-receiver', dir });
  let proxy: FaultProxy | null = null;
  try {
    proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: info.port, latencyMs: oneWayLatencyMs, name: 'raw' });
    live.proxies.add(proxy);
    await Promise.all([sender.call('gc', null), receiver.call('gc', null)]);
    await receiver.call('expect', { count: docsCount });
    const cpuMeter = await CpuMeter.start({ sender, receiver });
    const streamed = await sender.call(
      'stream',
      { url: `ws://127.0.0.1:${proxy.port}/`, count: docsCount, timeMsMax: limits.catchUpTimeMsMax },
      limits.catchUpTimeMsMax + callTimeMsDefault,
    );
    const received = await receiver.call('await', { timeMsMax: limits.drainTimeMsMax }, limits.drainTimeMsMax + callTimeMsDefault);
    const cpu = await cpuMeter.stop(received.recordsCount);
    await sleep(settleMs);
    const stats = proxy.stats();
    const elapsedMs = receiver.toDriverMs(received.lastCommitAtMs) - sender.toDriverMs(streamed.startedAtMs);
    return {
      docsCount,
      receivedCount: received.recordsCount,
      elapsedMs,
      docsPerSecond: received.recordsCount / (elapsedMs / 1_000),
      connectMs: streamed.openAtMs - streamed.startedAtMs,
      // The sender dials, so forward is its data.
      bytesPerDocData: stats.bytesForward / received.recordsCount,
      bytesPerDocBoth: (stats.bytesForward + stats.bytesBackward) / received.recordsCount,
      cpu,
    };
  } finally {
    await receiver.stop();
    if (proxy !== null) {
      await proxy.close();
      live.proxies.delete(proxy);
    }
  }
}

// ---------------------------------------------------------------- the run

interface Settings {
  readonly runs: number;
  readonly quick: boolean;
  readonly profile: boolean;
  readonly trace: boolean;
  readonly limits: Limits;
}

function parseSettings(argv: readonly string[]): Settings {
  const usage = 'usage: npm run bench:replication -- [--runs N] [--quick] [--profile] [--trace] [--rates R1,R2,...]';
  const { runs, quick, values } = parseBenchArgs(
    argv,
    usage,
    { profile: 'boolean', trace: 'boolean', rates: 'string' },
    { default: runsDefault, max: runsMax },
  );
  let limits = quick ? limitsQuick : limitsDefault;
  if (typeof values.rates === 'string') {
    const rates = values.rates.split(',').map(Number);
    if (!rates.every((rate) => Number.isSafeInteger(rate) && rate >= 1 && rate <= lagRatePerSecondMax) || !rates.includes(targetLagRatePerSecond)) {
      console.error(
        `--rates ${values.rates} is invalid: use integers from 1 to ${lagRatePerSecondMax} ops/s, including ${targetLagRatePerSecond} (the target's rate)`,
      );
      process.exit(2);
    }
    limits = { ...limits, lagRatesPerSecond: [...new Set(rates)].sort((x, y) => x - y) };
  }
  return { runs, quick, profile: values.profile === true, trace: values.trace === true, limits };
}

interface Samples {
  readonly lag: LagSample[];
  readonly throughput: ThroughputSample[];
  readonly catchUp: CatchUpSample[];
  readonly raw: RawSample[];
  /** Clock offsets of every worker measured (worker minus driver), and their uncertainty. */
  readonly clocks: Array<{ name: string; offsetMs: number; uncertaintyMs: number }>;
  catchUpFillDocsPerSecond: number;
}

function noteClock(samples: Samples, worker: Worker<NodeCommands> | Worker<RawSenderCommands>): void {
  samples.clocks.push({ name: worker.name, ...worker.clock });
}

async function runAll(root: string, settings: Settings, log: (line: string) => void): Promise<Samples> {
  const { limits } = settings;
  const samples: Samples = { lag: [], throughput: [], catchUp: [], raw: [], clocks: [], catchUpFillDocsPerSecond: 0 };

  log(`setup: writing ${limits.bulkDocsCount} documents in A (C up, B not started) for the catch-up case`);
  const setupStartMs = performance.now();
  const catchUp = await prepareCatchUp(root, settings);
  samples.catchUpFillDocsPerSecond = catchUp.fillDocsPerSecond;
  const { worker: rawSender } = await Worker.spawn<RawSenderCommands, null>('raw-sender', {
    role: 'raw-sender',
    dir: join(root, 'raw-sender'),
    recordsCount: catchUp.docsCount,
  });
  noteClock(samples, rawSender);
  log(
    `setup done in ${((performance.now() - setupStartMs) / 1_000).toFixed(1)} s (${catchUp.docsCount} documents at ${Math.round(catchUp.fillDocsPerSecond)}/s)`,
  );
  try {
    for (let run = 1; run <= settings.runs; run++) {
      const runStartMs = performance.now();
      for (const cadence of cadences) {
        const cluster = await Cluster.start(root, ['a', 'b', 'c'], cadence.fixedCadenceMs);
        try {
          for (const node of cluster.nodes.values()) noteClock(samples, node.worker);
          // Untimed: JIT compilation of every path (writes, sends, applies) before the first measured write.
          await measureLag(cluster, cadence.name, limits.warmupRatePerSecond, limits, 'warmup', (limits.warmupOpsCount / limits.warmupRatePerSecond) * 1_000);
          for (const ratePerSecond of limits.lagRatesPerSecond) {
            const sample = await measureLag(cluster, cadence.name, ratePerSecond, limits, `lag-${ratePerSecond}`, limits.lagDurationMs);
            samples.lag.push(sample);
            log(`run ${run}: ${cadence.name} ${ratePerSecond} ops/s: p99 ${sample.lagMsP99.toFixed(1)} ms, ${sample.bytesPerOpAToB.toFixed(0)} B/op A→B`);
          }
          if (cadence.fixedCadenceMs === null) {
            const sample = await measureThroughput(cluster, limits);
            samples.throughput.push(sample);
            log(`run ${run}: throughput ${Math.round(sample.arrivalsPerSecond)} entries/s into B`);
          }
        } finally {
          await cluster.stop();
        }
      }
      const catchUpSample = await measureCatchUp(root, catchUp, limits, run);
      samples.catchUp.push(catchUpSample);
      const rawSample = await measureRaw(root, rawSender, catchUp.docsCount, limits);
      samples.raw.push(rawSample);
      log(`run ${run}: catch-up ${Math.round(catchUpSample.docsPerSecond)} docs/s, raw ${Math.round(rawSample.docsPerSecond)} docs/s`);
      log(`run ${run}/${settings.runs} done in ${((performance.now() - runStartMs) / 1_000).toFixed(1)} s`);
    }
  } finally {
    await rawSender.stop();
    await catchUp.cluster.stop();
  }
  for (const node of catchUp.cluster.nodes.values()) noteClock(samples, node.worker);
  return samples;
}

// ---------------------------------------------------------------- the report

function formatRate(perSecond: number): string {
  return Math.round(perSecond).toLocaleString('en-US');
}

function formatMs(ms: number): string {
  if (ms < 10) return ms.toFixed(2);
  return ms.toFixed(1);
}

function formatBytes(bytes: number): string {
  return bytes.toFixed(1);
}

type Machine = ReturnType<typeof machineInfo>;

function verdict(pass: boolean): string {
  return pass ? 'PASS' : 'BELOW';
}

function headerLines(machine: Machine, settings: Settings, startedAt: Date): string[] {
  const { limits } = settings;
  return [
    '# Tessera replication benchmark',
    '',
    `cpu          ${machine.cpuModel}`,
    `cores        ${machine.coresCount}`,
    `memory       ${(machine.memoryBytesTotal / 2 ** 30).toFixed(1)} GiB`,
    `node         ${machine.node}`,
    `os           ${machine.os} (${machine.osVersion})`,
    `date         ${startedAt.toISOString()}`,
    `load (1 min) ${machine.loadAverage1m.toFixed(2)} at start`,
    `temp dir     ${machine.tempDir} (${machine.tempFilesystem})`,
    '',
    `runs         ${settings.runs}${settings.quick ? ' (--quick: smaller counts; a smoke test, not a result)' : ''}; each figure is the median of the runs, min–max beside it`,
    'topology     3 regions A, B, C, one node each, each node its own child process (replica + HTTP peer endpoint + SyncNode);',
    `             every link through its own FaultProxy in the driver process: ${oneWayLatencyMs} ms one way in each direction, no jitter, loopback`,
    'durability   os (LevelDB sync:false) on every replica; values are 200-byte JSON maps, a distinct key per put',
    `lag          open loop in A (writes issued on schedule, not waiting for acks) at ${limits.lagRatesPerSecond.map(formatRate).join(' and ')} ops/s for ${limits.lagDurationMs / 1_000} s each;`,
    '             lag = ack of the put in A → change event in B; each cadence on a fresh cluster, after an untimed warm-up',
    `cadences     ${cadences.map((cadence) => cadence.name).join(', ')} (fixedCadenceMs: ${fixedCadenceMs})`,
    `throughput   ${writersCount} closed-loop writers in A; entries visible in B per second over ${limits.throughputWindowMs / 1_000} s after ${limits.throughputRampMs / 1_000} s of ramp`,
    `catch-up     ${formatRate(limits.bulkDocsCount)} documents written in A once (C up, B never started); each run starts a fresh B process`,
    "             and times B's sync.start() → last document visible in B",
    `raw pipe     ws client → same proxy → ws server writing a LevelDB: the same documents read from a LevelDB, ${rawBatchRecordsCount} per batch,`,
    `             ${rawWindowBatches} batches unacknowledged at most, each acked after its db.batch (sync:false); sender start → last batch written`,
    'bytes        TCP payload delivered by the proxies (WebSocket frames with their headers), divided by acknowledged writes',
    `bounds       every loop stops at its count or its time limit (lag issue ${limits.lagIssueTimeMsMax / 1_000} s, drain ${limits.drainTimeMsMax / 1_000} s, catch-up ${limits.catchUpTimeMsMax / 1_000} s); a case cut short is marked *`,
  ];
}

function clockLine(samples: Samples): string {
  const offsetMsMax = Math.max(...samples.clocks.map((clock) => Math.abs(clock.offsetMs)));
  const uncertaintyMsMax = Math.max(...samples.clocks.map((clock) => clock.uncertaintyMs));
  return `clocks       ${samples.clocks.length} worker clocks vs the driver's: |offset| ≤ ${offsetMsMax.toFixed(3)} ms, measured to ±${uncertaintyMsMax.toFixed(3)} ms (corrected for)`;
}

interface LagSummary {
  readonly cadence: CadenceName;
  readonly ratePerSecond: number;
  readonly achievedOpsPerSecond: Spread;
  readonly lagMsP50: Spread;
  readonly lagMsP99: Spread;
  readonly lagMsMax: Spread;
  readonly bytesPerOpAToB: Spread;
  readonly bytesPerOpLink: Spread;
  readonly bytesPerOpAllLinks: Spread;
  readonly entriesPerBatch: Spread;
  readonly issueLateMsP99: Spread;
  readonly missingCountMax: number;
  readonly timeLimitedRuns: number;
  readonly runs: readonly LagSample[];
}

function summariseLag(samples: readonly LagSample[], cadence: CadenceName, ratePerSecond: number): LagSummary {
  const runs = samples.filter((sample) => sample.cadence === cadence && sample.ratePerSecond === ratePerSecond);
  assert(runs.length > 0, `no lag samples for ${cadence} at ${ratePerSecond}`);
  const of = (pick: (sample: LagSample) => number): Spread => spread(runs.map(pick));
  return {
    cadence,
    ratePerSecond,
    achievedOpsPerSecond: of((s) => s.achievedOpsPerSecond),
    lagMsP50: of((s) => s.lagMsP50),
    lagMsP99: of((s) => s.lagMsP99),
    lagMsMax: of((s) => s.lagMsMax),
    bytesPerOpAToB: of((s) => s.bytesPerOpAToB),
    bytesPerOpLink: of((s) => s.bytesPerOpLink),
    bytesPerOpAllLinks: of((s) => s.bytesPerOpAllLinks),
    entriesPerBatch: of((s) => s.entriesPerBatch),
    issueLateMsP99: of((s) => s.issueLateMsP99),
    missingCountMax: Math.max(...runs.map((s) => s.missingCount)),
    timeLimitedRuns: runs.filter((s) => s.timeLimited).length,
    runs,
  };
}

interface Targets {
  readonly lagP99: { readonly lagMsP99: number; readonly limitMs: number; readonly pass: boolean };
  readonly catchUp: { readonly docsPerSecond: number; readonly minimum: number; readonly pass: boolean };
  readonly adaptiveLagAtLowLoad: { readonly adaptiveMs: number; readonly fixedMs: number; readonly betterRuns: number; readonly pass: boolean };
  readonly adaptiveBytesAtHighLoad: {
    readonly adaptiveBytesPerOp: number;
    readonly fixedBytesPerOp: number;
    readonly betterRuns: number;
    readonly pass: boolean;
  };
}

function reportLines(samples: Samples, settings: Settings): { lines: string[]; summaries: Record<string, unknown>; targets: Targets } {
  const { limits } = settings;
  const lines: string[] = [];
  const lagSummaries = cadences.flatMap((cadence) => limits.lagRatesPerSecond.map((rate) => summariseLag(samples.lag, cadence.name, rate)));
  const lagRows = lagSummaries.map((s) => [
    s.cadence,
    formatRate(s.ratePerSecond),
    `${formatRate(s.achievedOpsPerSecond.median)}${s.timeLimitedRuns > 0 ? '*' : ''}`,
    formatMs(s.lagMsP50.median),
    formatMs(s.lagMsP99.median),
    formatRange(s.lagMsP99, formatMs),
    formatMs(s.lagMsMax.median),
    formatBytes(s.bytesPerOpAToB.median),
    formatBytes(s.bytesPerOpLink.median),
    formatBytes(s.bytesPerOpAllLinks.median),
    s.entriesPerBatch.median.toFixed(1),
    String(s.missingCountMax),
  ]);
  lines.push(
    '## Replication lag: put acknowledged in A → visible in B',
    '',
    table(
      [
        'cadence',
        'offered ops/s',
        'achieved ops/s',
        'p50 ms',
        'p99 ms',
        'p99 min–max',
        'max ms',
        'B/op A→B',
        'B/op A↔B',
        'B/op all links',
        'entries/batch',
        'missing',
      ],
      lagRows,
      [false, true, true, true, true, true, true, true, true, true, true, true],
    ),
    '',
  );
  lines.push(
    `B/op: proxy bytes per acknowledged write. A→B is the data stream; A↔B adds what B sends back (acks, pings, its own stream);`,
    `all links adds A↔C and B↔C. entries/batch: A's sender to B. missing: acknowledged in A, not visible in B within ${limits.drainTimeMsMax / 1_000} s (worst run).`,
    `Open-loop issue delay p99 (A's own event loop): ${lagSummaries.map((s) => `${s.cadence} ${formatRate(s.ratePerSecond)}: ${formatMs(s.issueLateMsP99.median)} ms`).join('; ')}.`,
    '',
  );
  if (settings.trace) {
    const stageCell = (s: LagSummary, pick: (stages: LagStages) => { p50: number; p99: number }): string => {
      const traced = s.runs.flatMap((run) => (run.stagesMs === null ? [] : [pick(run.stagesMs)]));
      return traced.length === 0 ? '' : `${formatMs(median(traced.map((t) => t.p50)))} / ${formatMs(median(traced.map((t) => t.p99)))}`;
    };
    lines.push(
      '## Lag by stage (--trace), p50 / p99 ms',
      '',
      table(
        ['cadence', 'offered ops/s', 'in A: ack → frame sent to B', 'path: sent → B starts applying', 'in B: apply start → visible'],
        lagSummaries.map((s) => [s.cadence, formatRate(s.ratePerSecond), stageCell(s, (t) => t.inA), stageCell(s, (t) => t.path), stageCell(s, (t) => t.inB)]),
        [false, true, true, true, true],
      ),
      '',
    );
    lines.push(
      `path includes the proxy's ${oneWayLatencyMs} ms, both kernels' sockets, B's frame decoding and any wait behind B's previous batch.`,
      'Tracing decodes every frame A sends a second time, so with --trace the lag figures themselves are a little pessimistic.',
      '',
    );
  }

  const tput = {
    arrivalsPerSecond: spread(samples.throughput.map((s) => s.arrivalsPerSecond)),
    acksPerSecond: spread(samples.throughput.map((s) => s.acksPerSecond)),
    backlogAtWindowStart: spread(samples.throughput.map((s) => s.backlogAtWindowStart)),
    backlogAtWindowEnd: spread(samples.throughput.map((s) => s.backlogAtWindowEnd)),
    entriesPerBatch: spread(samples.throughput.map((s) => s.entriesPerBatch)),
    lagMsP50: spread(samples.throughput.map((s) => s.lagMsP50)),
  };
  lines.push(
    `## One link's sustained throughput (${writersCount} closed-loop writers in A, adaptive cadence)`,
    '',
    table(
      ['entries/s into B', 'min–max', 'acks/s in A', 'backlog at window start', 'backlog at window end', 'entries/batch', 'lag p50 ms'],
      [
        [
          formatRate(tput.arrivalsPerSecond.median),
          formatRange(tput.arrivalsPerSecond, formatRate),
          formatRate(tput.acksPerSecond.median),
          formatRate(tput.backlogAtWindowStart.median),
          formatRate(tput.backlogAtWindowEnd.median),
          tput.entriesPerBatch.median.toFixed(1),
          formatMs(tput.lagMsP50.median),
        ],
      ],
      [true, true, true, true, true, true, true],
    ),
    '',
  );
  lines.push(
    'Backlog: writes acknowledged in A and not yet visible in B. A backlog that grows over the window means the link (or B) is the',
    "bottleneck and entries/s is the link's ceiling; a steady one means A's writers are, and the link had room to spare.",
    '',
  );

  const catchUp = {
    docsPerSecond: spread(samples.catchUp.map((s) => s.docsPerSecond)),
    elapsedMs: spread(samples.catchUp.map((s) => s.elapsedMs)),
    linkOpenMs: spread(samples.catchUp.map((s) => s.linkOpenMs)),
    streamDocsPerSecond: spread(samples.catchUp.map((s) => s.streamDocsPerSecond)),
    processStartMs: spread(samples.catchUp.map((s) => s.processStartMs)),
    bytesPerDocAToB: spread(samples.catchUp.map((s) => s.bytesPerDocAToB)),
    bytesPerDocLink: spread(samples.catchUp.map((s) => s.bytesPerDocLink)),
    bytesPerDocAllLinks: spread(samples.catchUp.map((s) => s.bytesPerDocAllLinks)),
  };
  const raw = {
    docsPerSecond: spread(samples.raw.map((s) => s.docsPerSecond)),
    elapsedMs: spread(samples.raw.map((s) => s.elapsedMs)),
    connectMs: spread(samples.raw.map((s) => s.connectMs)),
    bytesPerDocData: spread(samples.raw.map((s) => s.bytesPerDocData)),
    bytesPerDocBoth: spread(samples.raw.map((s) => s.bytesPerDocBoth)),
  };
  // Each run's ratio pairs two figures measured seconds apart, so drift in the machine's load cancels.
  const ratio = spread(samples.catchUp.map((s, i) => s.docsPerSecond / samples.raw[i]!.docsPerSecond));
  const incomplete = samples.catchUp.some((s) => s.visibleCount < s.docsCount) || samples.raw.some((s) => s.receivedCount < s.docsCount);
  const docsCount = samples.catchUp[0]!.docsCount;
  const fromStates = samples.catchUp.some((s) => s.fromStates);
  lines.push(
    `## Bulk catch-up: ${formatRate(docsCount)} documents into a B that was down`,
    '',
    table(
      ['path', 'docs/s', 'min–max', 'total s', 'connect ms', 'docs/s after connect', 'B/doc data direction', 'B/doc both directions', "B/doc all of B's links"],
      [
        [
          `Tessera: A → fresh B${fromStates ? ' (from states)' : ''}`,
          formatRate(catchUp.docsPerSecond.median),
          formatRange(catchUp.docsPerSecond, formatRate),
          (catchUp.elapsedMs.median / 1_000).toFixed(2),
          formatMs(catchUp.linkOpenMs.median),
          formatRate(catchUp.streamDocsPerSecond.median),
          formatBytes(catchUp.bytesPerDocAToB.median),
          formatBytes(catchUp.bytesPerDocLink.median),
          formatBytes(catchUp.bytesPerDocAllLinks.median),
        ],
        [
          'raw: ws + level',
          formatRate(raw.docsPerSecond.median),
          formatRange(raw.docsPerSecond, formatRate),
          (raw.elapsedMs.median / 1_000).toFixed(2),
          formatMs(raw.connectMs.median),
          '',
          formatBytes(raw.bytesPerDocData.median),
          formatBytes(raw.bytesPerDocBoth.median),
          '',
        ],
      ],
      [false, true, true, true, true, true, true, true, true],
    ),
    '',
  );
  lines.push(
    `Tessera / raw: ${formatPercent(ratio.median)} (${formatRange(ratio, formatPercent)}), per run.${incomplete ? ' * a run did not deliver every document within its time limit.' : ''}`,
    `connect: Tessera from sync.start() to the link with A open (WebSocket upgrade + challenge/hello/welcome through the proxy);`,
    `raw from the sender's start to the WebSocket open. B's process start (spawn, module load, replica open), not counted: ${formatRate(catchUp.processStartMs.median)} ms.`,
    `A streamed ${fromStates ? "document states (its log had been truncated past B's cursor)" : "its delta log (B's cursor was still within it)"}. Tessera moves more per document than`,
    'the raw pipe: each entry carries dataset, key, origin, clock and a delta with per-field causal metadata; and B writes a',
    'document state and a delta-log entry per document where the raw receiver writes one record.',
    '',
  );

  // Where the time goes: CPU per write (or document), process by process, medians of the runs.
  const cpuRow = (label: string, uses: readonly CpuUse[], names: readonly [string, string, string | null]): string[] => {
    const usOf = (name: string | null): string => (name === null ? '–' : median(uses.map((use) => use.usPerOp[name]!)).toFixed(0));
    const total = median(uses.map((use) => Object.values(use.usPerOp).reduce((sum, us) => sum + us, 0)));
    return [label, usOf(names[0]), usOf(names[1]), usOf(names[2]), usOf('driver'), total.toFixed(0), median(uses.map((use) => use.coresBusy)).toFixed(2)];
  };
  const cluster3 = ['A', 'B', 'C'] as const;
  lines.push(
    '## Where the CPU goes: µs of CPU per write (per document for catch-up), by process',
    '',
    table(
      ['case', 'A (writer / raw sender)', 'B (reader / raw receiver)', 'C', 'driver (proxies)', 'total', 'cores busy'],
      [
        ...lagSummaries.map((s) =>
          cpuRow(
            `lag, ${s.cadence}, ${formatRate(s.ratePerSecond)} ops/s`,
            s.runs.map((run) => run.cpu),
            cluster3,
          ),
        ),
        cpuRow(
          'throughput (per entry into B)',
          samples.throughput.map((run) => run.cpu),
          cluster3,
        ),
        cpuRow(
          'catch-up, Tessera',
          samples.catchUp.map((run) => run.cpu),
          cluster3,
        ),
        cpuRow(
          'catch-up, raw ws + level',
          samples.raw.map((run) => run.cpu),
          ['sender', 'receiver', null],
        ),
      ],
      [false, true, true, true, true, true, true],
    ),
    '',
  );
  lines.push(
    'From process.cpuUsage() of every process over the case (user + system), divided by writes acknowledged in A (documents',
    `delivered for catch-up). cores busy: all of our processes together; this machine has ${os.cpus().length} cores, shared with other users.`,
    '',
  );

  const lowRate = targetLagRatePerSecond;
  const highRate = Math.max(...limits.lagRatesPerSecond);
  const adaptiveLow = summariseLag(samples.lag, 'adaptive', lowRate);
  const fixedLow = summariseLag(samples.lag, cadences[1].name, lowRate);
  const adaptiveHigh = summariseLag(samples.lag, 'adaptive', highRate);
  const fixedHigh = summariseLag(samples.lag, cadences[1].name, highRate);
  const betterRuns = (adaptive: LagSummary, fixed: LagSummary, pick: (sample: LagSample) => number): number =>
    adaptive.runs.filter((sample, i) => fixed.runs[i] !== undefined && pick(sample) < pick(fixed.runs[i]!)).length;
  const targets: Targets = {
    lagP99: { lagMsP99: adaptiveLow.lagMsP99.median, limitMs: targetLagMsP99Max, pass: adaptiveLow.lagMsP99.median <= targetLagMsP99Max },
    catchUp: {
      docsPerSecond: catchUp.docsPerSecond.median,
      minimum: targetCatchUpDocsPerSecondMin,
      pass: catchUp.docsPerSecond.median >= targetCatchUpDocsPerSecondMin,
    },
    adaptiveLagAtLowLoad: {
      adaptiveMs: adaptiveLow.lagMsP99.median,
      fixedMs: fixedLow.lagMsP99.median,
      betterRuns: betterRuns(adaptiveLow, fixedLow, (s) => s.lagMsP99),
      pass: adaptiveLow.lagMsP99.median < fixedLow.lagMsP99.median,
    },
    adaptiveBytesAtHighLoad: {
      adaptiveBytesPerOp: adaptiveHigh.bytesPerOpLink.median,
      fixedBytesPerOp: fixedHigh.bytesPerOpLink.median,
      betterRuns: betterRuns(adaptiveHigh, fixedHigh, (s) => s.bytesPerOpLink),
      pass: adaptiveHigh.bytesPerOpLink.median < fixedHigh.bytesPerOpLink.median,
    },
  };
  const runsCount = settings.runs;
  lines.push('## Targets', '');
  lines.push(
    `${verdict(targets.lagP99.pass).padEnd(5)}  lag p99 at ${formatRate(lowRate)} ops/s (adaptive) ${formatMs(targets.lagP99.lagMsP99)} ms; target ≤ ${targetLagMsP99Max} ms (one-way latency + 10 ms)`,
  );
  lines.push(
    `${verdict(targets.catchUp.pass).padEnd(5)}  bulk catch-up ${formatRate(targets.catchUp.docsPerSecond)} docs/s on one link; target ≥ ${formatRate(targetCatchUpDocsPerSecondMin)} docs/s`,
  );
  lines.push(
    `${verdict(targets.adaptiveLagAtLowLoad.pass).padEnd(5)}  adaptive beats fixed on lag p99 at ${formatRate(lowRate)} ops/s: ${formatMs(targets.adaptiveLagAtLowLoad.adaptiveMs)} vs ${formatMs(targets.adaptiveLagAtLowLoad.fixedMs)} ms (better in ${targets.adaptiveLagAtLowLoad.betterRuns}/${runsCount} runs)`,
  );
  lines.push(
    `${verdict(targets.adaptiveBytesAtHighLoad.pass).padEnd(5)}  adaptive beats fixed on bytes/op at ${formatRate(highRate)} ops/s (A↔B both directions): ${formatBytes(targets.adaptiveBytesAtHighLoad.adaptiveBytesPerOp)} vs ${formatBytes(targets.adaptiveBytesAtHighLoad.fixedBytesPerOp)} B/op (better in ${targets.adaptiveBytesAtHighLoad.betterRuns}/${runsCount} runs; A→B alone: ${formatBytes(adaptiveHigh.bytesPerOpAToB.median)} vs ${formatBytes(fixedHigh.bytesPerOpAToB.median)})`,
  );

  const summaries = { lag: lagSummaries.map(({ runs: _runs, ...rest }) => rest), throughput: tput, catchUp, raw, catchUpOverRaw: ratio };
  return { lines, summaries, targets };
}

/** Writes every figure, per run and summarised, to bench/out/replication-<ISO date>.json; returns the path. */
function writeFigures(machine: Machine, settings: Settings, startedAt: Date, samples: Samples, summaries: Record<string, unknown>, targets: Targets): string {
  mkdirSync(outDir, { recursive: true });
  // Colons are legal on Linux but not on every filesystem a results folder gets copied to.
  const stamp = startedAt
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replaceAll(':', '-');
  const outPath = join(outDir, `replication-${stamp}.json`);
  const figures = {
    benchmark: 'replication',
    startedAt: startedAt.toISOString(),
    elapsedMs: Date.now() - startedAt.getTime(),
    machine,
    settings: {
      runs: settings.runs,
      quick: settings.quick,
      oneWayLatencyMs,
      fixedCadenceMs,
      durability: 'os',
      valueBytes,
      writersCount,
      rawBatchRecordsCount,
      rawWindowBatches,
      protocolBatchEntriesMax: batchEntriesMax,
      ...settings.limits,
    },
    catchUpFillDocsPerSecond: samples.catchUpFillDocsPerSecond,
    clocks: samples.clocks,
    summaries,
    runs: { lag: samples.lag, throughput: samples.throughput, catchUp: samples.catchUp, raw: samples.raw },
    targets: { lagMsP99Max: targetLagMsP99Max, catchUpDocsPerSecondMin: targetCatchUpDocsPerSecondMin, ...targets },
  };
  writeFileSync(outPath, `${JSON.stringify(figures, null, 2)}\n`);
  return outPath;
}

/** Kills every child and proxy still alive, and waits (bounded) for the children to exit. */
async function tearDownLive(): Promise<void> {
  const workers = [...live.workers];
  for (const worker of workers) worker.kill();
  await Promise.race([Promise.all(workers.map((worker) => worker.exited)), sleep(stopTimeMsMax)]);
  await Promise.race([Promise.all([...live.proxies].map((proxy) => proxy.close())), sleep(stopTimeMsMax)]);
}

async function main(): Promise<void> {
  const settings = parseSettings(process.argv.slice(2));
  const startedAt = new Date();
  const root = await mkdtemp(join(os.tmpdir(), 'tessera-bench-replication-'));
  traceEnabled = settings.trace;
  if (settings.profile) {
    profileDir = join(
      outDir,
      `profiles-${startedAt
        .toISOString()
        .replace(/\.\d+Z$/, 'Z')
        .replaceAll(':', '-')}`,
    );
    mkdirSync(profileDir, { recursive: true });
  }
  const removeRoot = (): void => rmSync(root, { recursive: true, force: true });
  // Ctrl-C must leave no child process and no LevelDB directory behind in the shared temporary directory.
  process.once('SIGINT', () => {
    void tearDownLive().finally(() => {
      removeRoot();
      process.exit(130);
    });
  });
  const machine = machineInfo(root);
  console.log([...headerLines(machine, settings, startedAt), ''].join('\n'));

  let samples: Samples;
  try {
    // Progress goes to stderr so that stdout is the report alone.
    samples = await runAll(root, settings, (line) => console.error(line));
  } finally {
    await tearDownLive();
    removeRoot();
  }
  const { lines, summaries, targets } = reportLines(samples, settings);
  const outPath = writeFigures(machine, settings, startedAt, samples, summaries, targets);
  console.log(
    [
      clockLine(samples),
      '',
      ...lines,
      '',
      `figures written to ${outPath}`,
      ...(profileDir === null ? [] : [`CPU profiles of the child processes in ${profileDir}`]),
    ].join('\n'),
  );
}

if (process.argv[2] === '--worker') {
  const json = process.argv[3];
  assert(json !== undefined, '--worker needs a JSON spec');
  await workerMain(JSON.parse(json) as WorkerSpec);
} else {
  await main();
}
