/**
 * Tessera beside the peer systems its users would pick instead (PouchDB, Yjs, Automerge), on one machine, on
 * the same workloads, every replication stream through the same 40 ms FaultProxy.
 *
 *   npm run bench:peers                     3 runs, medians (builds Tessera and installs bench/peers first)
 *   npm run bench:peers -- --runs 5         more runs
 *   npm run bench:peers -- --quick          5,000 documents, short cases, 1 run: a smoke test, not a result
 *   npm run bench:peers -- --only yjs-per-record,tessera     some models only
 *
 * Topology, the same for every system: server A (region A) and server B (region B) are child processes with
 * their own data directories on loopback; B dials A through a FaultProxy in this (driver) process that adds
 * 40 ms one way in each direction and counts the bytes. Records are written in A; B reports when each one is
 * visible in its own store. Tessera's two nodes are `tessera serve` daemons; the peers' servers run
 * `worker.ts`. Every case starts fresh processes and directories, so peak RSS and CPU belong to that case.
 *
 * Cases: bulk (N records written in A while B is down; then B starts empty and catches up), steady (open-loop
 * writes at a fixed rate with B connected: commit-to-visible lag), differential (as bulk, but the even records
 * must not leave A: what crosses, what leaks, what it costs). Results: stdout, and bench/results/peers-<date>.md.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FaultProxy } from '@tessera/cli';
import { parsePolicy } from '@tessera/core';
import { newToken, writeTokensFile } from '@tessera/server';
import { Replica } from 'tesseradb';
import { machineInfo, parseBenchArgs, percentile, spread, table } from '../lib.js';
import {
  type Model,
  type Reply,
  type Request,
  type SteadyResult,
  type System,
  type VisibleState,
  type WorkerOptions,
  isLocal,
  keyFor,
  localKeyPattern,
  projectAfterMs,
  recordFor,
  shouldStop,
  sleep,
  steadyIndexBase,
  wallNowMs,
} from './common.js';

// ---------------------------------------------------------------- settings

const oneWayLatencyMs = 40;
const runsDefault = 3;
const runsMax = 10;
/** Tessera's load: PUTs in flight at once from the driver to A. */
const tesseraWritersCount = 64;
/** Tessera's steady case: one session-token read waits this long at most (the daemon's own bound is 5 s). */
const tokenWaitMs = 5_000;
/** Tessera's B: how often the driver asks B how many entries it applied (bounds the catch-up time's resolution). */
const tesseraPollMs = 25;
/** A catch-up is checked this often for whether it can still make its deadline. */
const catchUpStepMs = 5_000;
/** After a case, time for the last acknowledgements to cross the path before the bytes are read. */
const settleMs = 500;
const startTimeMsMax = 60_000;
const callTimeMsDefault = 30_000;
const stopTimeMsMax = 15_000;
/** Steady: writes at the rate for this long before the measured ones, so JIT and connections are warm. */
const warmupMs = 2_000;
/** The clock offset of each worker: the fastest of this many IPC round trips. */
const clockProbesCount = 10;

interface Limits {
  readonly bulkDocs: number;
  readonly differentialDocs: number;
  readonly steadyRatePerSecond: number;
  readonly steadyMs: number;
  /** Per-case deadlines. */
  readonly loadTimeMsMax: number;
  readonly catchUpTimeMsMax: number;
  readonly drainTimeMsMax: number;
}

const limitsDefault: Limits = {
  bulkDocs: 100_000,
  differentialDocs: 10_000,
  steadyRatePerSecond: 500,
  steadyMs: 20_000,
  loadTimeMsMax: 180_000,
  catchUpTimeMsMax: 180_000,
  drainTimeMsMax: 20_000,
};
const limitsQuick: Limits = {
  bulkDocs: 5_000,
  differentialDocs: 2_000,
  steadyRatePerSecond: 200,
  steadyMs: 5_000,
  loadTimeMsMax: 60_000,
  catchUpTimeMsMax: 60_000,
  drainTimeMsMax: 10_000,
};

/** A row of the tables: a system and how it models records. */
interface ModelSpec {
  readonly name: string;
  readonly system: System | 'tessera';
  readonly model: Model;
  /** Whether per-record residency can be expressed at all (else the differential case is not run). */
  readonly differential: boolean;
  readonly differentialHow: string;
}

const models: readonly ModelSpec[] = [
  {
    name: 'tessera',
    system: 'tessera',
    model: 'per-record',
    differential: true,
    differentialHow: 'policy: the local records in a dataset with `placement: local`; sender filters, receiver re-checks',
  },
  {
    name: 'pouchdb-per-record',
    system: 'pouchdb',
    model: 'per-record',
    differential: true,
    differentialHow: 'filtered replication: a filter function (design document on A) that A runs on its changes feed',
  },
  {
    name: 'yjs-per-record',
    system: 'yjs',
    model: 'per-record',
    differential: true,
    differentialHow: "local records kept out of the index; A refuses a peer's socket for them (own code in the upgrade hook)",
  },
  { name: 'yjs-one-doc', system: 'yjs', model: 'one-doc', differential: false, differentialHow: 'cannot express: a Y.Map syncs whole, every entry goes' },
  {
    name: 'automerge-per-record',
    system: 'automerge',
    model: 'per-record',
    differential: true,
    differentialHow: 'repo shareConfig on A: neither announce nor grant local documents (own code)',
  },
  {
    name: 'automerge-one-doc',
    system: 'automerge',
    model: 'one-doc',
    differential: false,
    differentialHow: 'cannot express: a document syncs whole, every key goes',
  },
];

const peersDir = dirname(fileURLToPath(import.meta.url));
const repoDir = dirname(dirname(peersDir));
const workerPath = join(peersDir, 'worker.ts');
const tesseraBin = join(repoDir, 'packages/cli/dist/bin.js');

// ---------------------------------------------------------------- processes and cleanup

/** Extra node options for every server process (`--profile` adds a V8 CPU profile per process). */
const nodeOptions: string[] = [];

const live = { children: new Set<ChildProcess>(), proxies: new Set<FaultProxy>(), tempRoot: '' };

async function cleanUp(): Promise<void> {
  for (const child of live.children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  live.children.clear();
  await Promise.all([...live.proxies].map((proxy) => proxy.close().catch(() => {})));
  live.proxies.clear();
  if (live.tempRoot !== '') rmSync(live.tempRoot, { recursive: true, force: true });
}

function stopProcess(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeMsMax);
    child.once('exit', () => {
      clearTimeout(timer);
      live.children.delete(child);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Peak resident set (VmHWM) and CPU time of a live process, from /proc. */
function processUsage(pid: number): { rssPeakBytes: number; cpuMs: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticksPerSecond = 100;
  const cpuTicks = Number(fields[11]) + Number(fields[12]);
  return { rssPeakBytes: Number(hwm?.[1] ?? 0) * 1024, cpuMs: (cpuTicks * 1_000) / ticksPerSecond };
}

/** Bytes the data directory takes on disk (du: allocated blocks). */
function diskBytes(dir: string): number {
  return Number(execFileSync('du', ['-sk', dir], { encoding: 'utf8' }).split('\t')[0]) * 1024;
}

// ---------------------------------------------------------------- peer workers

interface PeerWorker {
  readonly child: ChildProcess;
  readonly info: Record<string, string>;
  /** Worker wall clock minus driver wall clock, in ms. */
  offsetMs: number;
  call<T>(request: Request, timeMsMax?: number): Promise<T>;
}

async function startWorker(options: WorkerOptions): Promise<PeerWorker> {
  const child = spawn(process.execPath, [...nodeOptions, '--import', 'tsx', workerPath, JSON.stringify(options)], {
    cwd: repoDir,
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  live.children.add(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4_000);
  });
  let nextId = 1;
  const waiting = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  const ready = new Promise<Record<string, string>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${options.system} ${options.role} did not start within ${startTimeMsMax} ms: ${stderr}`)), startTimeMsMax);
    child.on('message', (message: Reply | { ready: true; info: Record<string, string> }) => {
      if ('ready' in message) {
        clearTimeout(timer);
        resolve(message.info);
        return;
      }
      const waiter = waiting.get(message.id);
      waiting.delete(message.id);
      if (message.ok) waiter?.resolve(message.result);
      else waiter?.reject(new Error(`${options.system} ${options.role}: ${message.error}`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const error = new Error(`${options.system} ${options.role} exited (code ${code}, signal ${signal}): ${stderr}`);
      reject(error);
      for (const waiter of waiting.values()) waiter.reject(error);
      waiting.clear();
    });
  });
  const info = await ready;
  const worker: PeerWorker = {
    child,
    info,
    offsetMs: 0,
    call<T>(requestBody: Request, timeMsMax = callTimeMsDefault): Promise<T> {
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`${options.system} ${options.role}: ${requestBody.op} took over ${timeMsMax} ms`));
        }, timeMsMax);
        waiting.set(id, {
          resolve: (value) => {
            clearTimeout(timer);
            resolve(value as T);
          },
          reject: (error) => {
            clearTimeout(timer);
            reject(error);
          },
        });
        child.send({ id, request: requestBody });
      });
    },
  };
  let best = Infinity;
  for (let probe = 0; probe < clockProbesCount; probe++) {
    const sentMs = wallNowMs();
    const workerMs = await worker.call<number>({ op: 'clock' });
    const receivedMs = wallNowMs();
    if (receivedMs - sentMs < best) {
      best = receivedMs - sentMs;
      worker.offsetMs = workerMs - (sentMs + receivedMs) / 2;
    }
  }
  return worker;
}

async function closeWorker(worker: PeerWorker): Promise<void> {
  try {
    await worker.call({ op: 'close' }, stopTimeMsMax);
  } catch {
    // It is stopped below either way; its data directory may then be short of its last writes.
  }
  await new Promise<void>((resolve) => {
    if (worker.child.exitCode !== null || worker.child.signalCode !== null) return resolve();
    worker.child.once('exit', () => resolve());
    setTimeout(() => worker.child.kill('SIGKILL'), stopTimeMsMax).unref();
  });
  live.children.delete(worker.child);
}

// ---------------------------------------------------------------- Tessera daemons

const tesseraDataset = 'bench';
/** The differential case's records that must stay in A go to this dataset, whose placement is `local`. */
const tesseraLocalDataset = 'resident';
const httpAgent = new Agent({ keepAlive: true, maxSockets: 256 });

/** The benchmark's token (every daemon needs one: a writer on every dataset is enough here). */
const benchToken = newToken('bench', { roles: ['reader', 'writer'], datasets: ['*'] }, 0);

function httpJson(port: number, method: string, path: string, body?: unknown, timeMsMax = callTimeMsDefault): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: httpAgent,
        timeout: timeMsMax,
        headers: {
          authorization: `Bearer ${benchToken.token}`,
          ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body: text === '' ? null : JSON.parse(text) });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} took over ${timeMsMax} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

interface TesseraNode {
  readonly id: string;
  readonly port: number;
  readonly child: ChildProcess;
}

/**
 * Writes both nodes' configs. Node ids decide who dials (the lower id): B (`east-1`) dials A (`west-1`), so a
 * B that starts late connects at once, through the proxy (B's config advertises A at the proxy's port).
 */
function writeTesseraConfigs(dir: string, portA: number, portB: number, proxyPort: number): { a: string; b: string; policy: string } {
  const secret = randomBytes(32).toString('base64url');
  const policy = join(dir, 'policy.yaml');
  writeFileSync(
    policy,
    [
      'version: 1',
      'regions:',
      '  west: { jurisdiction: w, location: [0, 0] }',
      '  east: { jurisdiction: e, location: [0, 40] }',
      'datasets:',
      `  ${tesseraDataset}: { type: map, placement: global }`,
      `  ${tesseraLocalDataset}: { type: map, placement: local }`,
      '',
    ].join('\n'),
  );
  writeTokensFile(join(dir, 'tokens.json'), [benchToken.record]);
  const text = (advertiseA: number) =>
    [
      'cluster: bench',
      `secret: ${JSON.stringify(secret)}`,
      `policy: ${JSON.stringify(policy)}`,
      `api: { tokensFile: ${JSON.stringify(join(dir, 'tokens.json'))} }`,
      'nodes:',
      '  - id: west-1',
      '    region: west',
      `    listen: 127.0.0.1:${portA}`,
      `    advertise: 127.0.0.1:${advertiseA}`,
      `    data: ${JSON.stringify(join(dir, 'a'))}`,
      '    durability: os',
      '  - id: east-1',
      '    region: east',
      `    listen: 127.0.0.1:${portB}`,
      `    data: ${JSON.stringify(join(dir, 'b'))}`,
      '    durability: os',
      '',
    ].join('\n');
  writeFileSync(join(dir, 'cluster-a.yaml'), text(portA));
  writeFileSync(join(dir, 'cluster-b.yaml'), text(proxyPort));
  return { a: join(dir, 'cluster-a.yaml'), b: join(dir, 'cluster-b.yaml'), policy };
}

async function startTessera(config: string, id: string, port: number): Promise<TesseraNode> {
  const child = spawn(process.execPath, [...nodeOptions, tesseraBin, 'serve', '--config', config, '--node', id], {
    cwd: repoDir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  live.children.add(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4_000);
  });
  const deadline = Date.now() + startTimeMsMax;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`tessera ${id} exited during start-up: ${stderr}`);
    try {
      if ((await httpJson(port, 'GET', '/readyz', undefined, 1_000)).status === 200) return { id, port, child };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`tessera ${id} was not ready within ${startTimeMsMax} ms`);
    await sleep(50);
  }
}

async function tesseraPut(node: TesseraNode, i: number, local: boolean): Promise<string> {
  const response = await httpJson(node.port, 'PUT', `/v1/kv/${local ? tesseraLocalDataset : tesseraDataset}/${keyFor(i, local)}`, {
    value: recordFor(i, local),
  });
  if (response.status !== 200 && response.status !== 201) throw new Error(`PUT ${keyFor(i, local)}: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body.token as string;
}

/**
 * Loads A's data directory through the embedded API before A's daemon starts: the daemon's HTTP API has no
 * batch write, and 100,000 single PUTs measure the HTTP path rather than the store (the peers load in their
 * server's own process too). The replica is opened exactly as the daemon opens it: same node, region, policy
 * and peers, so the daemon then serves the same state. 64 writers in flight, group-committed.
 */
async function tesseraEmbeddedLoad(dir: string, policyPath: string, count: number, differential: boolean, timeMsMax: number): Promise<number> {
  const replica = await Replica.open({
    path: join(dir, 'a'),
    node: 'west-1',
    region: 'west',
    durability: 'os',
    policy: parsePolicy(readFileSync(policyPath, 'utf8'), policyPath),
    peers: [{ node: 'east-1', region: 'east' }],
  });
  const startMs = wallNowMs();
  let next = 0;
  let written = 0;
  try {
    await Promise.all(
      Array.from({ length: tesseraWritersCount }, async () => {
        while (next < count && !shouldStop(written, count, wallNowMs() - startMs, timeMsMax)) {
          const i = next++;
          const local = isLocal(i, differential);
          await replica.put(local ? tesseraLocalDataset : tesseraDataset, keyFor(i, local), recordFor(i, local));
          written++;
        }
      }),
    );
  } finally {
    await replica.close();
  }
  return next;
}

/** Loads A with closed-loop writers; stops issuing at the deadline. Answers how many records were written. */
async function tesseraLoad(node: TesseraNode, first: number, count: number, differential: boolean, timeMsMax: number): Promise<number> {
  const startMs = wallNowMs();
  let next = first;
  let written = 0;
  await Promise.all(
    Array.from({ length: tesseraWritersCount }, async () => {
      while (next < first + count && !shouldStop(written, count, wallNowMs() - startMs, timeMsMax)) {
        const i = next++;
        await tesseraPut(node, i, isLocal(i, differential));
        written++;
      }
    }),
  );
  return next - first;
}

/** The slowest answer to a status poll of Tessera's B (its API stalls while it applies a large batch). */
let statusStallMsMax = 0;

/** Entries B has applied from A (its link's counter). */
async function tesseraApplied(node: TesseraNode): Promise<number> {
  const { body } = await httpJson(node.port, 'GET', '/v1/status', undefined, 30_000);
  return (body.links as { received: { applied: number } }[]).reduce((sum, link) => sum + link.received.applied, 0);
}

/** Documents of the local dataset that B holds (there should be none; B may also refuse to list it). */
async function tesseraLeaked(node: TesseraNode): Promise<number> {
  const { status, body } = await httpJson(node.port, 'GET', `/v1/kv/${tesseraLocalDataset}?limit=1000`, undefined, 5_000);
  return status === 200 ? (body.items as unknown[]).length : 0;
}

// ---------------------------------------------------------------- the proxy

interface Tap {
  readonly proxy: FaultProxy;
  /** Distinct forbidden keys seen in the bytes that crossed, either direction. */
  readonly forbiddenKeys: Set<string>;
}

async function startProxy(targetPort: number, scan: boolean): Promise<Tap> {
  const forbiddenKeys = new Set<string>();
  const tails = { forward: '', backward: '' };
  const proxy = await FaultProxy.start({
    targetHost: '127.0.0.1',
    targetPort,
    latencyMs: oneWayLatencyMs,
    name: 'A<-B',
    ...(scan
      ? {
          onData: (direction: 'forward' | 'backward', chunk: Buffer) => {
            // latin1 maps bytes 1:1, so a key split across chunks is found with the last 11 bytes carried over.
            const text = tails[direction] + chunk.toString('latin1');
            for (const match of text.matchAll(localKeyPattern)) forbiddenKeys.add(match[0]);
            tails[direction] = text.slice(-11);
          },
        }
      : {}),
  });
  live.proxies.add(proxy);
  return { proxy, forbiddenKeys };
}

async function closeProxy(tap: Tap): Promise<void> {
  await tap.proxy.close();
  live.proxies.delete(tap.proxy);
}

// ---------------------------------------------------------------- one case

interface ProcessFigures {
  readonly rssPeakBytes: number;
  readonly cpuMs: number;
  readonly diskBytes: number;
}

interface CatchUpSample {
  readonly docs: number;
  /** Records written in A before the load's deadline (= docs unless A could not keep up). */
  readonly loaded: number;
  readonly loadMs: number;
  /** How long B was waited for (= catch-up time when it finished). */
  readonly waitedMs: number;
  /** From B's spawn to its last record visible; null when the deadline passed first (or the rate said it would). */
  readonly catchUpMs: number | null;
  readonly visible: number;
  readonly leaked: number;
  readonly forbiddenKeysOnWire: number;
  readonly bytesAtoB: number;
  readonly bytesBtoA: number;
  readonly a: ProcessFigures;
  readonly b: ProcessFigures;
}

interface SteadyFigures {
  /** Issued per second over the issuing period. */
  readonly achievedPerSecond: number;
  /** Write issued in A → visible in B. */
  readonly lagsFromIssueMs: number[];
  /** Write committed in A (acknowledged, durable as configured) → visible in B; negative when B had it first. */
  readonly lagsMs: number[];
  /** Write issued → committed in A. */
  readonly commitMs: number[];
  readonly missing: number;
  readonly cutShort: boolean;
}

interface SteadySample extends SteadyFigures {
  readonly writes: number;
  /** Writes never seen in B by the drain deadline. */
  readonly missing: number;
  readonly cutShort: boolean;
  readonly bytesPerWrite: number;
  readonly a: ProcessFigures;
  readonly b: ProcessFigures;
}

/** A pair of servers of one model: the same calls for Tessera and for a peer worker. */
interface Pair {
  load(first: number, count: number, differential: boolean, timeMsMax: number): Promise<number>;
  startB(): Promise<void>;
  waitVisible(count: number, timeMsMax: number): Promise<VisibleState>;
  steady(first: number, count: number, ratePerSecond: number, issueTimeMsMax: number, drainTimeMsMax: number): Promise<SteadyFigures>;
  /** Reads each process's figures, stops both and measures their directories. */
  stop(): Promise<{ a: ProcessFigures; b: ProcessFigures }>;
}

async function makePair(spec: ModelSpec, dir: string, tap: Tap, portA: number, differential: boolean): Promise<Pair> {
  mkdirSync(join(dir, 'a'), { recursive: true });
  mkdirSync(join(dir, 'b'), { recursive: true });
  const portB = await freePort();
  const upstream = `127.0.0.1:${tap.proxy.port}`;
  const finish = async (stopA: () => Promise<void>, stopB: () => Promise<void>, pidA: number, pidB: number | null) => {
    const usageA = processUsage(pidA);
    const usageB = pidB === null ? { rssPeakBytes: 0, cpuMs: 0 } : processUsage(pidB);
    await Promise.all([stopA(), stopB()]);
    return {
      a: { ...usageA, diskBytes: diskBytes(join(dir, 'a')) },
      b: { ...usageB, diskBytes: diskBytes(join(dir, 'b')) },
    };
  };

  if (spec.system === 'tessera') {
    const configs = writeTesseraConfigs(dir, portA, portB, tap.proxy.port);
    // A's daemon starts after a bulk load (which writes its directory through the embedded API), or before B.
    let a: TesseraNode | null = null;
    let b: TesseraNode | null = null;
    const startA = async () => {
      a ??= await startTessera(configs.a, 'west-1', portA);
    };
    return {
      async load(first, count, diff, timeMsMax) {
        if (a !== null) return tesseraLoad(a, first, count, diff, timeMsMax);
        const loaded = await tesseraEmbeddedLoad(dir, configs.policy, count, diff, timeMsMax);
        await startA();
        return loaded;
      },
      async startB() {
        await startA();
        b = await startTessera(configs.b, 'east-1', portB);
      },
      async waitVisible(count, timeMsMax) {
        const deadline = wallNowMs() + timeMsMax;
        let applied = 0;
        for (;;) {
          // B's API can stall for seconds while it applies a large batch: a slow or failed poll is retried.
          const askedMs = wallNowMs();
          try {
            applied = await tesseraApplied(b!);
          } catch {
            // asked again below
          }
          statusStallMsMax = Math.max(statusStallMsMax, wallNowMs() - askedMs);
          const nowMs = wallNowMs();
          if (applied >= count || nowMs > deadline) {
            return { shared: applied, leaked: differential ? await tesseraLeaked(b!) : 0, reachedAtMs: applied >= count ? nowMs : null };
          }
          await sleep(tesseraPollMs);
        }
      },
      async steady(first, count, ratePerSecond, issueTimeMsMax, drainTimeMsMax) {
        // Open loop from the driver: PUT in A; on its acknowledgement, a read in B with the write's session
        // token, which B answers as soon as it holds the write. Both times are on the driver's clock.
        const figures = { lagsFromIssueMs: [] as number[], lagsMs: [] as number[], commitMs: [] as number[] };
        let missing = 0;
        const pending: Promise<void>[] = [];
        const startMs = wallNowMs();
        let issued = 0;
        let cutShort = false;
        while (issued < count) {
          const nowMs = wallNowMs();
          if (nowMs - startMs > issueTimeMsMax) {
            cutShort = true;
            break;
          }
          const due = Math.min(count, Math.floor(((nowMs - startMs) * ratePerSecond) / 1_000) + 1);
          while (issued < due) {
            const i = first + issued++;
            pending.push(
              (async () => {
                const issuedMs = wallNowMs();
                const token = await tesseraPut(a!, i, false);
                const ackMs = wallNowMs();
                figures.commitMs.push(ackMs - issuedMs);
                // The daemon bounds one token wait (5 s); ask again until the drain deadline.
                const deadlineMs = ackMs + drainTimeMsMax;
                for (;;) {
                  let status = 0;
                  try {
                    status = (
                      await httpJson(
                        b!.port,
                        'GET',
                        `/v1/kv/${tesseraDataset}/${keyFor(i, false)}?token=${token}&waitMs=${tokenWaitMs}`,
                        undefined,
                        tokenWaitMs + 5_000,
                      )
                    ).status;
                  } catch {
                    // A kept-alive socket closed under us (ECONNRESET): ask again.
                  }
                  const visibleMs = wallNowMs();
                  if (status === 200) {
                    figures.lagsMs.push(visibleMs - ackMs);
                    figures.lagsFromIssueMs.push(visibleMs - issuedMs);
                    return;
                  }
                  if (visibleMs > deadlineMs) {
                    missing++;
                    return;
                  }
                }
              })().catch(() => {
                missing++;
              }),
            );
          }
          await sleep(1);
        }
        const achievedPerSecond = (issued * 1_000) / (wallNowMs() - startMs);
        await Promise.all(pending);
        missing += count - issued;
        return { ...figures, missing, achievedPerSecond, cutShort };
      },
      async stop() {
        if (a === null) throw new Error('tessera A never started');
        const nodeA: TesseraNode = a;
        const nodeB = b as TesseraNode | null;
        return finish(
          () => stopProcess(nodeA.child),
          () => (nodeB === null ? Promise.resolve() : stopProcess(nodeB.child)),
          nodeA.child.pid!,
          nodeB === null ? null : nodeB.child.pid!,
        );
      },
    };
  }

  const base = { system: spec.system, model: spec.model, differential, upstream: null, docUrl: null };
  const a = await startWorker({ ...base, role: 'A', dataDir: join(dir, 'a'), port: portA });
  let b: PeerWorker | null = null;
  return {
    load: (first, count, _diff, timeMsMax) => a.call<number>({ op: 'load', first, count, timeMsMax }, timeMsMax + callTimeMsDefault),
    async startB() {
      b = await startWorker({ ...base, role: 'B', dataDir: join(dir, 'b'), port: portB, upstream, docUrl: a.info.docUrl ?? null });
    },
    // A busy worker answers late: the call's own bound leaves room for that.
    waitVisible: (count, timeMsMax) =>
      b!.call<VisibleState>({ op: 'waitVisible', count, timeMsMax }, timeMsMax + 60_000).then((state) => ({
        ...state,
        reachedAtMs: state.reachedAtMs === null ? null : state.reachedAtMs - b!.offsetMs,
      })),
    async steady(first, count, ratePerSecond, issueTimeMsMax, drainTimeMsMax) {
      const result = await a.call<SteadyResult>({ op: 'steady', first, count, ratePerSecond, issueTimeMsMax }, issueTimeMsMax + 20_000);
      // Wait until every committed write is visible in B (bounded), then pair the times up.
      const drainDeadline = wallNowMs() + drainTimeMsMax;
      let times = new Map<number, number>();
      for (;;) {
        times = new Map(await b!.call<[number, number][]>({ op: 'visibleTimes', from: first }));
        if (result.commits.every(([i]) => times.has(i)) || wallNowMs() > drainDeadline) break;
        await sleep(100);
      }
      const figures = { lagsFromIssueMs: [] as number[], lagsMs: [] as number[], commitMs: [] as number[] };
      let missing = count - result.commits.length;
      for (const [i, issuedMs, commitMs] of result.commits) {
        figures.commitMs.push(commitMs - issuedMs);
        const visibleMs = times.get(i);
        if (visibleMs === undefined) {
          missing++;
          continue;
        }
        // Both ends on the driver's clock.
        const visibleDriverMs = visibleMs - b!.offsetMs;
        figures.lagsMs.push(visibleDriverMs - (commitMs - a.offsetMs));
        figures.lagsFromIssueMs.push(visibleDriverMs - (issuedMs - a.offsetMs));
      }
      return { ...figures, missing, achievedPerSecond: (result.issued * 1_000) / result.issueMs, cutShort: result.cutShort };
    },
    stop: () =>
      finish(
        () => closeWorker(a),
        () => (b === null ? Promise.resolve() : closeWorker(b)),
        a.child.pid!,
        b === null ? null : (b as PeerWorker).child.pid!,
      ),
  };
}

/** Bulk and differential: load A with B down, then start B empty and time its catch-up. */
async function measureCatchUp(spec: ModelSpec, root: string, docs: number, differential: boolean, limits: Limits): Promise<CatchUpSample> {
  const dir = await mkdtemp(join(root, `${spec.name}-${differential ? 'diff' : 'bulk'}-`));
  const portA = await freePort();
  const tap = await startProxy(portA, differential);
  const pair = await makePair(spec, dir, tap, portA, differential);
  try {
    const loadStartMs = wallNowMs();
    const loaded = await pair.load(0, docs, differential, limits.loadTimeMsMax);
    const loadMs = wallNowMs() - loadStartMs;
    // Records 0..loaded-1 are in A; in the differential case the odd ones may leave.
    const shared = differential ? Math.floor(loaded / 2) : loaded;
    const startMs = wallNowMs();
    await pair.startB();
    // Wait in steps so that a catch-up far too slow for the deadline is cut once its rate says so.
    // The projection counts from the first record seen, so a slow start (process start, store open, a first
    // large batch) is not extrapolated over the whole catch-up.
    let state: VisibleState;
    let firstSeenMs: number | null = null;
    for (;;) {
      const elapsedMs = wallNowMs() - startMs;
      state = await pair.waitVisible(shared, Math.max(0, Math.min(catchUpStepMs, limits.catchUpTimeMsMax - elapsedMs)));
      const nowMs = wallNowMs();
      if (state.reachedAtMs !== null || nowMs - startMs > limits.catchUpTimeMsMax) break;
      if (state.shared === 0) {
        if (nowMs - startMs > 3 * projectAfterMs) break;
        continue;
      }
      firstSeenMs ??= nowMs;
      const ratePerMs = state.shared / Math.max(nowMs - firstSeenMs, catchUpStepMs);
      const projectedMs = nowMs - startMs + (shared - state.shared) / ratePerMs;
      if (nowMs - startMs > projectAfterMs && nowMs - firstSeenMs > projectAfterMs && projectedMs > limits.catchUpTimeMsMax) break;
    }
    const waitedMs = wallNowMs() - startMs;
    await sleep(settleMs);
    // Anything forbidden that arrived late is counted too.
    const after = await pair.waitVisible(shared, 0);
    const stats = tap.proxy.stats();
    const figures = await pair.stop();
    return {
      docs: shared,
      loaded,
      loadMs,
      waitedMs,
      catchUpMs: state.reachedAtMs === null ? null : state.reachedAtMs - startMs,
      visible: after.shared,
      leaked: after.leaked,
      forbiddenKeysOnWire: tap.forbiddenKeys.size,
      bytesAtoB: stats.bytesBackward,
      bytesBtoA: stats.bytesForward,
      ...figures,
    };
  } finally {
    await pair.stop().catch(() => {});
    await closeProxy(tap);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function measureSteady(spec: ModelSpec, root: string, limits: Limits): Promise<SteadySample> {
  const dir = await mkdtemp(join(root, `${spec.name}-steady-`));
  const portA = await freePort();
  const tap = await startProxy(portA, false);
  const pair = await makePair(spec, dir, tap, portA, false);
  try {
    await pair.startB();
    const rate = limits.steadyRatePerSecond;
    const warmupCount = Math.round((rate * warmupMs) / 1_000);
    await pair.steady(steadyIndexBase, warmupCount, rate, warmupMs * 4, limits.drainTimeMsMax);
    const bytesBefore = tap.proxy.stats().bytesForward + tap.proxy.stats().bytesBackward;
    const count = Math.round((rate * limits.steadyMs) / 1_000);
    const result = await pair.steady(steadyIndexBase + warmupCount, count, rate, limits.steadyMs + 5_000, limits.drainTimeMsMax);
    await sleep(settleMs);
    const bytes = tap.proxy.stats().bytesForward + tap.proxy.stats().bytesBackward - bytesBefore;
    const figures = await pair.stop();
    return { ...result, writes: count, bytesPerWrite: bytes / count, ...figures };
  } finally {
    await pair.stop().catch(() => {});
    await closeProxy(tap);
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- the report

type Figure = number | null;
const _noFigure = null;

function fmtSeconds(ms: number): string {
  return `${(ms / 1_000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}
function fmtMs(ms: number): string {
  return Math.abs(ms) < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}
function fmtRate(perSecond: number): string {
  return perSecond >= 10_000 ? `${Math.round(perSecond / 1_000)}k/s` : `${Math.round(perSecond).toLocaleString('en-US')}/s`;
}
function fmtBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${Math.round(bytes)} B`;
}

/** `value (×ratio to Tessera)`; the ratio is value / Tessera's value. */
function cell(value: Figure, tessera: Figure, format: (n: number) => string): string {
  if (value === null) return '—';
  if (tessera === null || tessera === 0) return format(value);
  const ratio = value / tessera;
  return `${format(value)} (×${ratio >= 10 ? ratio.toFixed(0) : ratio.toFixed(2)})`;
}

function med(values: readonly Figure[]): Figure {
  const present = values.filter((value): value is number => value !== null);
  return present.length === 0 || present.length < values.length ? null : spread(present).median;
}

interface Results {
  readonly bulk: Map<string, CatchUpSample[]>;
  readonly steady: Map<string, SteadySample[]>;
  readonly differential: Map<string, CatchUpSample[]>;
  readonly errors: Map<string, string[]>;
}

function report(results: Results, selected: readonly ModelSpec[], limits: Limits, runs: number, header: string[]): string {
  const lines = [...header];
  const tesseraBulk = results.bulk.get('tessera') ?? [];
  const tb = (pick: (sample: CatchUpSample) => Figure) => (tesseraBulk.length === 0 ? null : med(tesseraBulk.map(pick)));

  lines.push('', `## Bulk: ${limits.bulkDocs.toLocaleString('en-US')} records written in A while B is down, then B starts empty and catches up`, '');
  const bulkRows: string[][] = [];
  const catchUpMs = (s: CatchUpSample) => s.catchUpMs;
  const docsPerSecond = (s: CatchUpSample) => (s.catchUpMs === null ? null : (s.docs * 1_000) / s.catchUpMs);
  const wire = (s: CatchUpSample) => s.bytesAtoB + s.bytesBtoA;
  /** Records visible per second of waiting, finished or not (the rate of a cut catch-up). */
  const reachedRate = (s: CatchUpSample) => (s.visible * 1_000) / s.waitedMs;
  const loadRate = (s: CatchUpSample) => (s.loaded * 1_000) / s.loadMs;
  for (const spec of selected) {
    const samples = results.bulk.get(spec.name) ?? [];
    if (samples.length === 0) {
      bulkRows.push([spec.name, ...Array(8).fill(results.errors.has(spec.name) ? 'failed: see below' : 'not measured')]);
      continue;
    }
    const reached = samples.filter((s) => s.catchUpMs !== null).length;
    const time = med(samples.map(catchUpMs));
    const loaded = spread(samples.map((s) => s.loaded)).median;
    const visible = spread(samples.map((s) => s.visible)).median;
    bulkRows.push([
      spec.name,
      loaded === limits.bulkDocs ? 'all' : `${Math.round(loaded).toLocaleString('en-US')} (load cut *)`,
      time === null
        ? `cut: ${Math.round(visible).toLocaleString('en-US')} of ${Math.round(spread(samples.map((s) => s.docs)).median).toLocaleString('en-US')} visible after ${fmtSeconds(spread(samples.map((s) => s.waitedMs)).median)} (${reached}/${samples.length} runs finished)`
        : cell(time, tb(catchUpMs), fmtSeconds),
      time === null
        ? `${cell(spread(samples.map(reachedRate)).median, tb(docsPerSecond), fmtRate)} *`
        : cell(med(samples.map(docsPerSecond)), tb(docsPerSecond), fmtRate),
      `${cell(med(samples.map(wire)), tb(wire), fmtBytes)}; ${fmtBytes(spread(samples.map((s) => s.bytesAtoB)).median)} A→B`,
      `${cell(
        med(samples.map((s) => s.a.diskBytes)),
        tb((s) => s.a.diskBytes),
        fmtBytes,
      )} / ${cell(
        med(samples.map((s) => s.b.diskBytes)),
        tb((s) => s.b.diskBytes),
        fmtBytes,
      )}`,
      `${cell(
        med(samples.map((s) => s.a.rssPeakBytes)),
        tb((s) => s.a.rssPeakBytes),
        fmtBytes,
      )} / ${cell(
        med(samples.map((s) => s.b.rssPeakBytes)),
        tb((s) => s.b.rssPeakBytes),
        fmtBytes,
      )}`,
      `${cell(
        med(samples.map((s) => s.b.cpuMs)),
        tb((s) => s.b.cpuMs),
        fmtSeconds,
      )}`,
      cell(med(samples.map(loadRate)), tb(loadRate), fmtRate),
    ]);
  }
  lines.push(
    table(
      [
        'model',
        'records loaded in A',
        'catch-up time',
        'catch-up docs/s',
        'bytes on the wire (both ways; A→B)',
        'disk A / B',
        'peak RSS A / B',
        'CPU of B',
        'load into A',
      ],
      bulkRows,
      [false, true, true, true, true, true, true, true, true],
    ),
  );

  lines.push(
    '',
    `## Steady: ${limits.steadyRatePerSecond}/s open-loop writes in A for ${limits.steadyMs / 1_000} s, B connected: commit in A → visible in B`,
    '',
  );
  const tesseraSteady = results.steady.get('tessera') ?? [];
  const ts = (pick: (sample: SteadySample) => Figure) => (tesseraSteady.length === 0 ? null : med(tesseraSteady.map(pick)));
  const at = (pick: (s: SteadySample) => readonly number[], q: number) => (s: SteadySample) => {
    const values = pick(s);
    return values.length === 0 ? null : percentile(Float64Array.from(values).sort(), q);
  };
  const lag = (q: number) => at((s) => s.lagsMs, q);
  const fromIssue = (q: number) => at((s) => s.lagsFromIssueMs, q);
  const commit = (q: number) => at((s) => s.commitMs, q);
  const steadyRows: string[][] = [];
  for (const spec of selected) {
    const samples = results.steady.get(spec.name) ?? [];
    if (samples.length === 0) {
      steadyRows.push([spec.name, ...Array(9).fill(results.errors.has(spec.name) ? 'failed: see below' : 'not measured')]);
      continue;
    }
    const missing = spread(samples.map((s) => s.missing)).median;
    steadyRows.push([
      spec.name,
      `${fmtRate(spread(samples.map((s) => s.achievedPerSecond)).median)}${samples.some((s) => s.cutShort) ? ' (writer fell behind)' : ''}`,
      cell(med(samples.map(commit(0.99))), ts(commit(0.99)), fmtMs),
      cell(med(samples.map(lag(0.5))), ts(lag(0.5)), fmtMs),
      cell(med(samples.map(lag(0.99))), ts(lag(0.99)), fmtMs),
      cell(med(samples.map(fromIssue(0.5))), ts(fromIssue(0.5)), fmtMs),
      cell(med(samples.map(fromIssue(0.99))), ts(fromIssue(0.99)), fmtMs),
      missing === 0 ? '0' : `${Math.round(missing)} of ${samples[0]!.writes}`,
      cell(
        med(samples.map((s) => s.bytesPerWrite)),
        ts((s) => s.bytesPerWrite),
        fmtBytes,
      ),
      `${cell(
        med(samples.map((s) => s.a.cpuMs)),
        ts((s) => s.a.cpuMs),
        fmtSeconds,
      )} / ${cell(
        med(samples.map((s) => s.b.cpuMs)),
        ts((s) => s.b.cpuMs),
        fmtSeconds,
      )}`,
    ]);
  }
  lines.push(
    table(
      [
        'model',
        'issued',
        'commit in A p99',
        'lag p50',
        'lag p99',
        'issue→visible p50',
        'issue→visible p99',
        'not visible',
        'wire bytes/write',
        'CPU A / B (whole case)',
      ],
      steadyRows,
      [false, true, true, true, true, true, true, true, true, true],
    ),
  );

  lines.push(
    '',
    `## Differential: ${limits.differentialDocs.toLocaleString('en-US')} records in A, the even half must never leave A; then B starts empty and catches up`,
    '',
  );
  const tesseraDiff = results.differential.get('tessera') ?? [];
  const td = (pick: (sample: CatchUpSample) => Figure) => (tesseraDiff.length === 0 ? null : med(tesseraDiff.map(pick)));
  const diffRows: string[][] = [];
  for (const spec of selected) {
    const samples = results.differential.get(spec.name) ?? [];
    if (!spec.differential) {
      diffRows.push([spec.name, spec.differentialHow, 'n/a', 'n/a', 'all of them', 'all of them']);
      continue;
    }
    if (spec.system === 'tessera' && samples.length === 0) {
      diffRows.push([spec.name, spec.differentialHow, 'pending: policy not yet landed', 'pending', 'pending', 'pending']);
      continue;
    }
    if (samples.length === 0) {
      diffRows.push([spec.name, spec.differentialHow, results.errors.has(spec.name) ? 'failed: see below' : 'not measured', '', '', '']);
      continue;
    }
    const time = med(samples.map(catchUpMs));
    diffRows.push([
      spec.name,
      spec.differentialHow,
      time === null
        ? `cut: ${Math.round(spread(samples.map((s) => s.visible)).median).toLocaleString('en-US')} of ${Math.round(spread(samples.map((s) => s.docs)).median).toLocaleString('en-US')} visible *`
        : cell(time, td(catchUpMs), fmtSeconds),
      cell(med(samples.map(wire)), td(wire), fmtBytes),
      `${Math.max(...samples.map((s) => s.forbiddenKeysOnWire))}`,
      `${Math.max(...samples.map((s) => s.leaked))}`,
    ]);
  }
  lines.push(
    table(
      [
        'model',
        'how residency is expressed',
        'catch-up time (shared half)',
        'bytes on the wire',
        'forbidden keys seen on the wire (max)',
        'forbidden records in B (max)',
      ],
      diffRows,
      [false, false, true, true, true, true],
    ),
  );

  if (results.errors.size > 0) {
    lines.push('', '## Failures', '');
    for (const [name, errors] of results.errors) for (const error of errors) lines.push(`- ${name}: ${error.split('\n')[0]!.slice(0, 400)}`);
  }
  lines.push(
    '',
    `Medians of ${runs} run${runs === 1 ? '' : 's'}; (×r) is the figure divided by Tessera's. "—" means some run gave no figure (a deadline passed). ` +
      `* cut: a load or catch-up stops at its deadline (${fmtSeconds(limits.loadTimeMsMax)} / ${fmtSeconds(limits.catchUpTimeMsMax)}), or earlier when its rate cannot make it (a load after ${fmtSeconds(projectAfterMs)}; a catch-up ${fmtSeconds(projectAfterMs)} after its first record, from the rate since then); a cut catch-up's rate is records visible per second waited, and a cut load leaves B fewer records to catch up. ` +
      "Lag is commit in A → visible in B (negative: B had it before A's own store acknowledged it); issue→visible starts when the write is issued.",
  );
  return lines.join('\n');
}

function versions(): string[] {
  const peerPackage = JSON.parse(readFileSync(join(peersDir, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const installed = (name: string) => {
    const file = join(peersDir, 'node_modules', name, 'package.json');
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version : 'not installed';
  };
  const names = [...Object.keys(peerPackage.dependencies), 'leveldown', 'level', 'lib0'];
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoDir, encoding: 'utf8' }).trim();
  } catch {
    // not a git checkout
  }
  return [
    `tessera ${JSON.parse(readFileSync(join(repoDir, 'package.json'), 'utf8')).version} (commit ${commit})`,
    ...names.map((name) => `${name} ${installed(name)}`),
  ];
}

/** Whether the replication policy (DESIGN §4) is in this checkout: the cluster config names a policy file. */
function policyLanded(): boolean {
  const configSource = join(repoDir, 'packages/server/src/config.ts');
  return existsSync(join(repoDir, 'packages/core/src/policy')) && existsSync(configSource) && readFileSync(configSource, 'utf8').includes("'policy'");
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const usage = 'usage: node --import tsx bench/peers/run.ts [--runs N] [--quick] [--only name,name] [--profile]';
  const args = parseBenchArgs(process.argv.slice(2), usage, { only: 'string', profile: 'boolean' }, { default: runsDefault, max: runsMax });
  if (args.values.profile === true) {
    const profileDir = join(peersDir, '..', 'out', `profiles-peers-${new Date().toISOString().replace(/[:.]/g, '-')}`);
    mkdirSync(profileDir, { recursive: true });
    nodeOptions.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`);
    console.error(`CPU profiles of every server process go to ${profileDir}`);
  }
  const limits = args.quick ? limitsQuick : limitsDefault;
  const only = typeof args.values.only === 'string' ? args.values.only.split(',') : null;
  const selected = models.filter((spec) => only === null || only.includes(spec.name));
  if (selected.length === 0) {
    console.error(`--only names none of: ${models.map((spec) => spec.name).join(', ')}`);
    process.exit(2);
  }
  live.tempRoot = await mkdtemp(join(os.tmpdir(), 'tessera-bench-peers-'));
  const startedAt = new Date();
  const machine = machineInfo(live.tempRoot);
  const log = (line: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
  const results: Results = { bulk: new Map(), steady: new Map(), differential: new Map(), errors: new Map() };
  const record = <T>(map: Map<string, T[]>, name: string, sample: T) => map.set(name, [...(map.get(name) ?? []), sample]);
  const fail = (name: string, what: string, error: unknown) => {
    const text = `${what}: ${error instanceof Error ? error.message : String(error)}`;
    log(`${name} ${text}`);
    results.errors.set(name, [...(results.errors.get(name) ?? []), text]);
  };
  const tesseraDifferential = policyLanded();
  const loadAverages: number[] = [];
  // The report is rewritten after every model of every run, so a run stopped early still leaves its figures.
  const writeReport = (runsDone: number, final: boolean) => {
    const header = [
      `# Tessera and peer systems — ${startedAt.toISOString().slice(0, 10)}`,
      '',
      `Machine: ${machine.cpuModel}, ${machine.coresCount} cores, ${fmtBytes(machine.memoryBytesTotal)}, ${machine.os}; Node ${machine.node}; ` +
        `data in ${machine.tempDir} (${machine.tempFilesystem}). 1-minute load average at the start of each case: ` +
        `${Math.min(...loadAverages).toFixed(1)}–${Math.max(...loadAverages).toFixed(1)} (the machine is shared; ${machine.coresCount} cores).`,
      '',
      `Versions: ${versions().join(', ')}.`,
      '',
      `Command: \`npm run bench:peers --${args.quick ? ' --quick' : ''} --runs ${args.runs}${only === null ? '' : ` --only ${only.join(',')}`}\`` +
        `${final ? '' : ` (stopped after ${runsDone} of ${args.runs} runs)`}. ` +
        `Each server is its own process; B dials A through one FaultProxy (${oneWayLatencyMs} ms one way each direction, loopback). ` +
        'Tessera durability `os`; no peer fsyncs either. Bytes are TCP payload through the proxy; disk is `du` of each data directory after a clean stop; ' +
        'peak RSS is VmHWM of each server process; CPU is user+system of the process over the whole case. See bench/README.md.',
    ];
    const text = report(results, selected, limits, runsDone, header);
    // A quick run is a smoke test, not a record: it goes to the ignored bench/out.
    const resultsDir = join(peersDir, '..', args.quick ? 'out' : 'results');
    mkdirSync(resultsDir, { recursive: true });
    const file = join(resultsDir, `peers-${startedAt.toISOString().slice(0, 10)}${args.quick ? '-quick' : ''}.md`);
    writeFileSync(file, `${text}\n`);
    mkdirSync(join(peersDir, '..', 'out'), { recursive: true });
    writeFileSync(
      join(peersDir, '..', 'out', `peers-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`),
      JSON.stringify(
        {
          machine,
          limits,
          runs: runsDone,
          loadAverages,
          results: Object.fromEntries(Object.entries(results).map(([key, map]) => [key, Object.fromEntries(map as Map<string, unknown>)])),
        },
        null,
        1,
      ),
    );
    return { text, file };
  };

  for (let run = 1; run <= args.runs; run++) {
    for (const spec of selected) {
      loadAverages.push(os.loadavg()[0]!);
      try {
        log(`run ${run}/${args.runs} ${spec.name}: bulk ${limits.bulkDocs}`);
        const sample = await measureCatchUp(spec, live.tempRoot, limits.bulkDocs, false, limits);
        record(results.bulk, spec.name, sample);
        log(
          `  catch-up ${sample.catchUpMs === null ? 'deadline' : fmtSeconds(sample.catchUpMs)}, load ${fmtSeconds(sample.loadMs)}, wire ${fmtBytes(sample.bytesAtoB + sample.bytesBtoA)}` +
            (spec.system === 'tessera' ? `, B's slowest status answer ${fmtMs(statusStallMsMax)}` : ''),
        );
        statusStallMsMax = 0;
      } catch (error) {
        fail(spec.name, `bulk run ${run}`, error);
      }
      try {
        log(`run ${run}/${args.runs} ${spec.name}: steady ${limits.steadyRatePerSecond}/s`);
        const sample = await measureSteady(spec, live.tempRoot, limits);
        record(results.steady, spec.name, sample);
        const sorted = Float64Array.from(sample.lagsMs).sort();
        const p99FromIssue = sample.lagsFromIssueMs.length === 0 ? NaN : percentile(Float64Array.from(sample.lagsFromIssueMs).sort(), 0.99);
        log(
          `  lag p50 ${sorted.length ? fmtMs(percentile(sorted, 0.5)) : '-'} p99 ${sorted.length ? fmtMs(percentile(sorted, 0.99)) : '-'} (from issue ${fmtMs(p99FromIssue)}), missing ${sample.missing}`,
        );
      } catch (error) {
        fail(spec.name, `steady run ${run}`, error);
      }
      if (!spec.differential || (spec.system === 'tessera' && !tesseraDifferential)) {
        writeReport(run, false);
        continue;
      }
      try {
        log(`run ${run}/${args.runs} ${spec.name}: differential ${limits.differentialDocs}`);
        const sample = await measureCatchUp(spec, live.tempRoot, limits.differentialDocs, true, limits);
        record(results.differential, spec.name, sample);
        log(
          `  catch-up ${sample.catchUpMs === null ? 'deadline' : fmtSeconds(sample.catchUpMs)}, forbidden on wire ${sample.forbiddenKeysOnWire}, leaked ${sample.leaked}`,
        );
      } catch (error) {
        fail(spec.name, `differential run ${run}`, error);
      }
      writeReport(run, false);
    }
  }

  const { text, file } = writeReport(args.runs, true);
  console.log(text);
  log(`written ${file}`);
}

let interrupted = false;
// A bug that escapes (an unhandled rejection) must not leave servers running: stop them, then fail.
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.once(event, (error: unknown) => {
    console.error(`${event}:`, error);
    void cleanUp().finally(() => process.exit(1));
  });
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${signal}: stopping every child and removing ${live.tempRoot || 'nothing'}`);
    void cleanUp().finally(() => process.exit(130));
  });
}

try {
  await main();
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await cleanUp();
  httpAgent.destroy();
}
