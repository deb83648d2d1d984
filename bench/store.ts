/**
 * Store benchmark: what one replica sustains on this machine, and how far the store is from the LevelDB
 * underneath it.
 *
 *   npm run bench:store                  default run (3 runs per measurement, median reported)
 *   npm run bench:store -- --runs 5      more runs
 *   npm run bench:store -- --quick       smaller counts, 1 run: a smoke test, not a result
 *   npm run bench:store -- --sealed      the replicas encrypt at rest (storage/sealed.ts); raw LevelDB stays plain
 *
 * Method. Every measurement opens a fresh replica (or raw LevelDB) in its own temporary directory, runs a
 * loop bounded by an operation count and by a time limit, and records each operation's latency with
 * `process.hrtime.bigint()`. Runs are interleaved (run 1 of every measurement, then run 2, ...) so that a
 * burst of noise on this shared machine lands on one run of many cases, not on every run of one case; the
 * report gives the median of the runs and their min–max. The raw LevelDB batch rate is measured in the same
 * run, next to the map puts it is compared with, so the ratio compares like with like.
 *
 * Targets are reported as PASS or BELOW and never fail the process: a benchmark on a noisy machine is
 * evidence for a person to read, not a gate.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Level } from 'level';
import { type Json, Replica, docCacheEntriesMax } from 'tesseradb';
import { type Spread, formatPercent, formatRange, machineInfo, percentile, benchDocument, parseBenchArgs, spread, table } from './lib.js';

// ---------------------------------------------------------------- settings

/** Size of every written value: a JSON map of nine fields, padded to exactly this many bytes. */
const valueBytes = 200;
/** Concurrent writers of the single-writer and the group-commit cases. */
const writersCounts = [1, 64] as const;
/** Durability modes; `os` maps to LevelDB `sync: false`, `fsync` to `sync: true`. */
const durabilities = ['os', 'fsync'] as const;
type DurabilityName = (typeof durabilities)[number];
/** Puts per raw LevelDB batch: the group commit of 64 writers if all of them landed in one batch. */
const rawBatchPutsCount = 64;
/** Counter documents; many increments land on each, so the counter cases measure updates, not creation. */
const counterKeysCount = 100;
/** Runs per measurement, and the limit of `--runs`. */
const runsDefault = 3;
const runsMax = 50;

/** Targets (reported, never enforced). */
const targetGroupCommitRatioMin = 0.5;
const targetGetLatencyMsP99Max = 1;

interface Limits {
  /** Map puts per measurement, each to a distinct key. */
  readonly putsCountMax: Readonly<Record<DurabilityName, number>>;
  /** Counter increments per measurement, spread over `counterKeysCount` keys. */
  readonly incrementsCountMax: Readonly<Record<DurabilityName, number>>;
  /** Documents written before the get cases, then each read once warm and once cold. */
  readonly getDocsCount: number;
  /** Puts in raw LevelDB batches per measurement (a multiple of `rawBatchPutsCount`). */
  readonly rawPutsCountMax: Readonly<Record<DurabilityName, number>>;
  /** Operations of the untimed warm-up, so the first timed run does not pay for JIT compilation. */
  readonly warmupOpsCount: number;
  /** Every timed loop stops here even if its count is not reached, so a slow disk cannot stall the run. */
  readonly loopTimeMsMax: number;
}

// fsync counts are lower so that fsync cases finish in seconds; sized for a default run under ~3 minutes
// here (about 20 s per run at the rates this machine showed), with the time limit as the backstop.
const limitsDefault: Limits = {
  putsCountMax: { os: 20_000, fsync: 5_000 },
  incrementsCountMax: { os: 20_000, fsync: 5_000 },
  getDocsCount: 5_000,
  rawPutsCountMax: { os: 64 * 1_000, fsync: 64 * 500 },
  warmupOpsCount: 3_000,
  loopTimeMsMax: 10_000,
};

const limitsQuick: Limits = {
  putsCountMax: { os: 4_000, fsync: 1_000 },
  incrementsCountMax: { os: 4_000, fsync: 1_000 },
  getDocsCount: 1_000,
  rawPutsCountMax: { os: 64 * 200, fsync: 64 * 100 },
  warmupOpsCount: 500,
  loopTimeMsMax: 3_000,
};

for (const limits of [limitsDefault, limitsQuick]) {
  for (const durability of durabilities) assert(limits.rawPutsCountMax[durability] % rawBatchPutsCount === 0);
  // The warm get case relies on every document written being still in the replica's document cache.
  assert(limits.getDocsCount <= docCacheEntriesMax, 'get documents must fit the default document cache');
}

const benchDir = dirname(fileURLToPath(import.meta.url));
const outDir = join(benchDir, 'out');
const dataset = 'bench';
const textEncoder = new TextEncoder();
/** Spread into every Replica.open: `{ encryption }` with --sealed. */
let sealing: { encryption?: { masterKey: Uint8Array } } = {};

// ---------------------------------------------------------------- arguments

interface Settings {
  readonly runs: number;
  readonly quick: boolean;
  readonly limits: Limits;
  /** Replicas are opened sealed (encryption at rest under a random master key). */
  readonly sealed: boolean;
}

function parseSettings(argv: readonly string[]): Settings {
  const { runs, quick, values } = parseBenchArgs(
    argv,
    'usage: npm run bench:store -- [--runs N] [--quick] [--sealed]',
    { sealed: 'boolean' },
    { default: runsDefault, max: runsMax },
  );
  const sealed = values.sealed === true;
  sealing = sealed ? { encryption: { masterKey: randomBytes(32) } } : {};
  return { runs, quick, limits: quick ? limitsQuick : limitsDefault, sealed };
}

// ---------------------------------------------------------------- helpers

function keyFor(i: number): string {
  return `doc-${String(i).padStart(8, '0')}`;
}

/** The benchmark's document number `i` (see `benchDocument`). */
function mapValue(i: number): Record<string, Json> {
  return benchDocument(i, keyFor(i), valueBytes);
}

/** Deterministic PRNG (mulberry32), so the read order is the same on every run and every machine. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function shuffled(count: number, seed: number): number[] {
  const random = prng(seed);
  const order = Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/**
 * A full garbage collection. The flag is set at run time so that `npm run bench:store` needs no extra node
 * option; `gc` is then reachable from a fresh context.
 */
const collectGarbage: () => void = (() => {
  v8.setFlagsFromString('--expose-gc');
  const gc: unknown = vm.runInNewContext('gc');
  assert(typeof gc === 'function', 'could not expose gc');
  return gc as () => void;
})();

// ---------------------------------------------------------------- the timed loop

interface LoopResult {
  readonly opsCount: number;
  readonly elapsedMs: number;
  readonly opsPerSecond: number;
  readonly latencyMsP50: number;
  readonly latencyMsP99: number;
  readonly latencyMsMax: number;
  /** True when the time limit, not the count, ended the loop. */
  readonly timeLimited: boolean;
}

/**
 * Runs `op(0..opsCountMax-1)` with `writersCount` operations in flight until the count is done or
 * `timeMsMax` has passed. A writer takes the next index only when its previous operation finished, so the
 * number in flight is exactly `writersCount` (a closed loop: latency includes waiting for the group commit).
 */
async function timedLoop(opsCountMax: number, writersCount: number, timeMsMax: number, op: (i: number) => Promise<unknown>): Promise<LoopResult> {
  const latenciesMs = new Float64Array(opsCountMax);
  let next = 0;
  let done = 0;
  let timeLimited = false;
  const startNs = process.hrtime.bigint();
  const deadlineNs = startNs + BigInt(timeMsMax) * 1_000_000n;
  const writer = async (): Promise<void> => {
    while (next < opsCountMax) {
      const beforeNs = process.hrtime.bigint();
      if (beforeNs >= deadlineNs) {
        timeLimited = true;
        return;
      }
      const i = next++;
      await op(i);
      latenciesMs[done++] = Number(process.hrtime.bigint() - beforeNs) / 1e6;
    }
  };
  await Promise.all(Array.from({ length: writersCount }, writer));
  const elapsedMs = Number(process.hrtime.bigint() - startNs) / 1e6;
  assert(done > 0, 'the loop completed no operation');
  const sorted = latenciesMs.subarray(0, done).sort();
  return {
    opsCount: done,
    elapsedMs,
    opsPerSecond: done / (elapsedMs / 1_000),
    latencyMsP50: percentile(sorted, 0.5),
    latencyMsP99: percentile(sorted, 0.99),
    latencyMsMax: sorted[sorted.length - 1]!,
    timeLimited,
  };
}

// ---------------------------------------------------------------- measurements

/** One run of one case. For raw LevelDB, ops are puts and the latencies are per batch. */
interface Sample extends LoopResult {
  /** Puts (or increments) per LevelDB batch, from `replica.commitStats`; absent for reads. */
  readonly putsPerBatch?: number;
  readonly batchesCount?: number;
}

let replicaSerial = 0;

async function openReplica(root: string, durability: DurabilityName): Promise<{ replica: Replica; path: string }> {
  const path = join(root, `replica-${++replicaSerial}`);
  const replica = await Replica.open({ path, node: 'bench-1', region: 'local', durability, ...sealing });
  return { replica, path };
}

function withCommitStats(result: LoopResult, replica: Replica): Sample {
  const { batches } = replica.commitStats;
  return { ...result, batchesCount: batches, putsPerBatch: batches === 0 ? 0 : result.opsCount / batches };
}

async function measureMapPuts(root: string, limits: Limits, durability: DurabilityName, writersCount: number): Promise<Sample> {
  const { replica, path } = await openReplica(root, durability);
  // Values are built before the clock starts: the benchmark measures the store, not the value generator.
  const opsCountMax = limits.putsCountMax[durability];
  const values = Array.from({ length: opsCountMax }, (_, i) => mapValue(i));
  try {
    const result = await timedLoop(opsCountMax, writersCount, limits.loopTimeMsMax, (i) => replica.put(dataset, keyFor(i), values[i]!));
    return withCommitStats(result, replica);
  } finally {
    await replica.close();
    await rm(path, { recursive: true, force: true });
  }
}

async function measureIncrements(root: string, limits: Limits, durability: DurabilityName, writersCount: number): Promise<Sample> {
  const { replica, path } = await openReplica(root, durability);
  try {
    const result = await timedLoop(limits.incrementsCountMax[durability], writersCount, limits.loopTimeMsMax, (i) =>
      replica.counter(dataset, `counter-${i % counterKeysCount}`).increment(1),
    );
    return withCommitStats(result, replica);
  } finally {
    await replica.close();
    await rm(path, { recursive: true, force: true });
  }
}

/**
 * Gets with one reader, over documents written before. Warm: the documents are in the replica's document
 * cache (writes put them there). Cold: the replica is reopened, so every get loads its document from
 * LevelDB. The operating system's page cache stays warm in both: dropping it needs root and would disturb
 * other users of this shared machine.
 */
async function measureGets(root: string, limits: Limits, run: number): Promise<{ warm: Sample; cold: Sample }> {
  const durability: DurabilityName = 'os'; // reads do not depend on durability; `os` makes the setup fast
  const path = join(root, `replica-${++replicaSerial}`);
  const docsCount = limits.getDocsCount;
  let replica = await Replica.open({ path, node: 'bench-1', region: 'local', durability, ...sealing });
  try {
    const setup = await timedLoop(docsCount, 64, limits.loopTimeMsMax * 3, (i) => replica.put(dataset, keyFor(i), mapValue(i)));
    assert(setup.opsCount === docsCount, `get setup wrote ${setup.opsCount} of ${docsCount} documents before its time limit`);
    const readOne = async (key: string): Promise<void> => {
      const view = await replica.get(dataset, key);
      assert(view !== undefined, `get ${key}: a written document is missing`);
    };
    const warmOrder = shuffled(docsCount, 1_000 + run);
    const warm = await timedLoop(docsCount, 1, limits.loopTimeMsMax, (i) => readOne(keyFor(warmOrder[i]!)));
    await replica.close();
    replica = await Replica.open({ path, node: 'bench-1', region: 'local', durability, ...sealing });
    // A different order from the warm pass, so LevelDB's own block cache is not replayed in the same sequence.
    const coldOrder = shuffled(docsCount, 2_000 + run);
    const cold = await timedLoop(docsCount, 1, limits.loopTimeMsMax, (i) => readOne(keyFor(coldOrder[i]!)));
    return { warm, cold };
  } finally {
    await replica.close();
    await rm(path, { recursive: true, force: true });
  }
}

/** Raw LevelDB: sequential batches of `rawBatchPutsCount` puts of the same value, the store's encodings. */
async function measureRawBatches(root: string, limits: Limits, durability: DurabilityName): Promise<Sample> {
  const path = join(root, `raw-${++replicaSerial}`);
  const db = new Level<string, Uint8Array>(path, { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  const value = textEncoder.encode(JSON.stringify(mapValue(0)));
  const sync = durability === 'fsync';
  const batchesCountMax = limits.rawPutsCountMax[durability] / rawBatchPutsCount;
  try {
    const result = await timedLoop(batchesCountMax, 1, limits.loopTimeMsMax, (batch) => {
      const ops = [];
      for (let i = 0; i < rawBatchPutsCount; i++) ops.push({ type: 'put' as const, key: keyFor(batch * rawBatchPutsCount + i), value });
      return db.batch(ops, { sync });
    });
    const putsCount = result.opsCount * rawBatchPutsCount;
    return {
      ...result,
      opsCount: putsCount,
      opsPerSecond: putsCount / (result.elapsedMs / 1_000),
      batchesCount: result.opsCount,
      putsPerBatch: rawBatchPutsCount,
    };
  } finally {
    await db.close();
    await rm(path, { recursive: true, force: true });
  }
}

/** Exercises every measured path once, untimed, so JIT compilation does not land on the first run. */
async function warmUp(root: string, limits: Limits): Promise<void> {
  const path = join(root, `replica-${++replicaSerial}`);
  const count = limits.warmupOpsCount;
  let replica = await Replica.open({ path, node: 'bench-1', region: 'local', durability: 'os', ...sealing });
  try {
    await timedLoop(count, 64, limits.loopTimeMsMax, (i) => replica.put(dataset, keyFor(i), mapValue(i)));
    await timedLoop(count, 1, limits.loopTimeMsMax, (i) => replica.put(dataset, keyFor(count + i), mapValue(i)));
    await timedLoop(count, 64, limits.loopTimeMsMax, (i) => replica.counter(dataset, `counter-${i % counterKeysCount}`).increment(1));
    await timedLoop(count, 1, limits.loopTimeMsMax, (i) => replica.get(dataset, keyFor(i)));
    // The cold get path (load and decode from LevelDB) runs only after a reopen; without this, run 1's cold
    // gets would pay for compiling the decoder.
    await replica.close();
    replica = await Replica.open({ path, node: 'bench-1', region: 'local', durability: 'os', ...sealing });
    await timedLoop(count, 1, limits.loopTimeMsMax, (i) => replica.get(dataset, keyFor(i)));
  } finally {
    await replica.close();
    await rm(path, { recursive: true, force: true });
  }
  await measureRawBatches(root, { ...limits, rawPutsCountMax: { os: 64 * 50, fsync: 64 * 10 } }, 'os');
  collectGarbage();
}

// ---------------------------------------------------------------- the run

/** Case ids, in the order they run within one run (raw LevelDB next to the map puts it is compared with). */
type CaseId = string;

function writeCaseId(kind: 'put' | 'increment', durability: DurabilityName, writersCount: number): CaseId {
  return `${kind}/${durability}/w${writersCount}`;
}

function rawCaseId(durability: DurabilityName): CaseId {
  return `raw/${durability}`;
}

async function runAll(root: string, settings: Settings, log: (line: string) => void): Promise<Map<CaseId, Sample[]>> {
  const samples = new Map<CaseId, Sample[]>();
  const record = (id: CaseId, sample: Sample): void => {
    // Collect now, untimed, so the next measurement does not pay for this one's garbage.
    collectGarbage();
    const list = samples.get(id) ?? [];
    list.push(sample);
    samples.set(id, list);
  };
  const { limits } = settings;
  for (let run = 1; run <= settings.runs; run++) {
    const runStartMs = performance.now();
    for (const durability of durabilities) {
      record(rawCaseId(durability), await measureRawBatches(root, limits, durability));
      for (const writersCount of writersCounts) {
        record(writeCaseId('put', durability, writersCount), await measureMapPuts(root, limits, durability, writersCount));
      }
    }
    for (const durability of durabilities) {
      for (const writersCount of writersCounts) {
        record(writeCaseId('increment', durability, writersCount), await measureIncrements(root, limits, durability, writersCount));
      }
    }
    const { warm, cold } = await measureGets(root, limits, run);
    record('get/warm', warm);
    record('get/cold', cold);
    log(`run ${run}/${settings.runs} done in ${((performance.now() - runStartMs) / 1_000).toFixed(1)} s`);
  }
  return samples;
}

// ---------------------------------------------------------------- the report

interface CaseSummary {
  readonly id: CaseId;
  readonly opsPerSecond: Spread;
  readonly latencyMsP50: Spread;
  readonly latencyMsP99: Spread;
  readonly putsPerBatch?: Spread;
  readonly opsCount: Spread;
  readonly timeLimitedRuns: number;
  readonly runs: readonly Sample[];
}

function summarise(id: CaseId, runs: readonly Sample[]): CaseSummary {
  const batched = runs.every((sample) => sample.putsPerBatch !== undefined);
  return {
    id,
    opsPerSecond: spread(runs.map((sample) => sample.opsPerSecond)),
    latencyMsP50: spread(runs.map((sample) => sample.latencyMsP50)),
    latencyMsP99: spread(runs.map((sample) => sample.latencyMsP99)),
    ...(batched ? { putsPerBatch: spread(runs.map((sample) => sample.putsPerBatch!)) } : {}),
    opsCount: spread(runs.map((sample) => sample.opsCount)),
    timeLimitedRuns: runs.filter((sample) => sample.timeLimited).length,
    runs,
  };
}

function formatRate(opsPerSecond: number): string {
  return Math.round(opsPerSecond).toLocaleString('en-US');
}

function formatMs(ms: number): string {
  // Truncated, not rounded, below 1 ms: 0.9996 must not print as 1.000 beside "PASS (p99 < 1 ms)".
  if (ms < 1) return (Math.floor(ms * 1_000) / 1_000).toFixed(3);
  if (ms < 10) return ms.toFixed(2);
  return ms.toFixed(1);
}

function labelOf(id: CaseId): { op: string; durability: string; writers: string } {
  const [kind, durability, writers] = id.split('/');
  return { op: kind === 'put' ? 'map put' : 'counter increment', durability: durability!, writers: writers!.slice(1) };
}

function verdict(pass: boolean): string {
  return pass ? 'PASS' : 'BELOW';
}

type Machine = ReturnType<typeof machineInfo>;

function headerLines(machine: Machine, settings: Settings, startedAt: Date): string[] {
  const { limits } = settings;
  return [
    '# Tessera store benchmark',
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
    `sealed       ${settings.sealed ? 'yes: replicas encrypt at rest (AES-256-GCM, storage/sealed.ts); raw LevelDB is plain' : 'no'}`,
    `value        ${valueBytes}-byte JSON map (9 fields), distinct key per put`,
    `writers      ${writersCounts.join(' and ')} operations in flight (closed loop: a writer issues its next op when the last one is acknowledged)`,
    `durability   ${durabilities.join(', ')} (os: LevelDB sync:false; fsync: sync:true)`,
    `map puts     ${limits.putsCountMax.os} (os), ${limits.putsCountMax.fsync} (fsync) per run, each into a fresh replica`,
    `increments   ${limits.incrementsCountMax.os} (os), ${limits.incrementsCountMax.fsync} (fsync) per run over ${counterKeysCount} counters`,
    `gets         ${limits.getDocsCount} documents, each read once warm and once cold, 1 reader`,
    `raw LevelDB  batches of ${rawBatchPutsCount} puts of one ${valueBytes}-byte value: ${limits.rawPutsCountMax.os} (sync:false), ${limits.rawPutsCountMax.fsync} (sync:true) puts per run`,
    `time limit   ${limits.loopTimeMsMax / 1_000} s per loop; a case cut short by it is marked *`,
    `warm-up      ${limits.warmupOpsCount} untimed operations per path (incl. cold gets) before run 1; a full GC before each measurement`,
  ];
}

interface Targets {
  readonly groupCommitRatio: Record<string, { readonly ratio: Spread; readonly pass: boolean }>;
  readonly getLatencyMsP99: Record<string, { readonly latencyMsP99: number; readonly pass: boolean }>;
}

/** The tables and target lines, from the per-case summaries. */
function reportLines(summaries: ReadonlyMap<CaseId, CaseSummary>, limits: Limits): { lines: string[]; targets: Targets } {
  const summary = (id: CaseId): CaseSummary => {
    const found = summaries.get(id);
    assert(found !== undefined, `no samples for ${id}`);
    return found;
  };
  const mark = (s: CaseSummary): string => (s.timeLimitedRuns > 0 ? '*' : '');
  const lines: string[] = [];
  const targets: Targets = { groupCommitRatio: {}, getLatencyMsP99: {} };

  const writeRows: string[][] = [];
  for (const kind of ['put', 'increment'] as const) {
    for (const durability of durabilities) {
      for (const writersCount of writersCounts) {
        const s = summary(writeCaseId(kind, durability, writersCount));
        const label = labelOf(s.id);
        writeRows.push([
          label.op,
          label.durability,
          label.writers,
          `${formatRate(s.opsPerSecond.median)}${mark(s)}`,
          formatRange(s.opsPerSecond, formatRate),
          formatMs(s.latencyMsP50.median),
          formatMs(s.latencyMsP99.median),
          formatRange(s.latencyMsP99, formatMs),
          s.putsPerBatch === undefined ? '' : s.putsPerBatch.median.toFixed(1),
        ]);
      }
    }
  }
  lines.push(
    '## Writes',
    '',
    table(['operation', 'durability', 'writers', 'ops/s', 'ops/s min–max', 'p50 ms', 'p99 ms', 'p99 min–max', 'puts/batch'], writeRows, [
      false,
      false,
      true,
      true,
      true,
      true,
      true,
      true,
      true,
    ]),
    '',
  );

  const getRows: string[][] = [];
  for (const temperature of ['warm', 'cold'] as const) {
    const s = summary(`get/${temperature}`);
    const pass = s.latencyMsP99.median < targetGetLatencyMsP99Max;
    targets.getLatencyMsP99[temperature] = { latencyMsP99: s.latencyMsP99.median, pass };
    getRows.push([
      `get (${temperature === 'warm' ? 'warm: in document cache' : 'cold: reopened replica'})`,
      `${formatRate(s.opsPerSecond.median)}${mark(s)}`,
      formatMs(s.latencyMsP50.median),
      formatMs(s.latencyMsP99.median),
      formatRange(s.latencyMsP99, formatMs),
      `${verdict(pass)} (p99 < ${targetGetLatencyMsP99Max} ms)`,
    ]);
  }
  lines.push('## Reads', '', table(['case', 'gets/s', 'p50 ms', 'p99 ms', 'p99 min–max', 'target'], getRows, [false, true, true, true, true, false]), '');

  const rawRows: string[][] = [];
  for (const durability of durabilities) {
    const raw = summary(rawCaseId(durability));
    const grouped = summary(writeCaseId('put', durability, 64));
    // Each run's ratio pairs two figures measured seconds apart, so drift in the machine's load cancels.
    const ratio = spread(raw.runs.map((rawRun, i) => grouped.runs[i]!.opsPerSecond / rawRun.opsPerSecond));
    const pass = ratio.median >= targetGroupCommitRatioMin;
    targets.groupCommitRatio[durability] = { ratio, pass };
    rawRows.push([
      durability,
      durability === 'fsync' ? 'true' : 'false',
      `${formatRate(raw.opsPerSecond.median)}${mark(raw)}`,
      formatRange(raw.opsPerSecond, formatRate),
      formatMs(raw.latencyMsP50.median),
      formatMs(raw.latencyMsP99.median),
      `${formatRate(grouped.opsPerSecond.median)}${mark(grouped)}`,
      grouped.putsPerBatch === undefined ? '' : grouped.putsPerBatch.median.toFixed(1),
      `${formatPercent(ratio.median)} (${formatRange(ratio, formatPercent)})`,
      `${verdict(pass)} (≥ ${formatPercent(targetGroupCommitRatioMin)})`,
    ]);
  }
  lines.push(
    `## Group commit vs raw LevelDB (batches of ${rawBatchPutsCount} puts)`,
    '',
    table(
      ['durability', 'sync', 'raw puts/s', 'raw min–max', 'batch p50 ms', 'batch p99 ms', 'map puts/s (64 w)', 'puts/batch', 'map / raw', 'target'],
      rawRows,
      [false, false, true, true, true, true, true, true, true, false],
    ),
    '',
  );
  lines.push(
    "puts/batch: writes acknowledged per LevelDB batch, from the replica's commitStats. Each map put or increment",
    'writes 2 LevelDB records (document state + delta-log entry) and each batch 2 more (seq, hlc).',
  );
  if ([...summaries.values()].some((s) => s.timeLimitedRuns > 0)) {
    lines.push(`* at least one run hit the ${limits.loopTimeMsMax / 1_000} s time limit before its count; its rate covers what completed.`);
  }

  lines.push('', '## Targets', '');
  for (const [durability, { ratio, pass }] of Object.entries(targets.groupCommitRatio)) {
    lines.push(
      `${verdict(pass).padEnd(5)}  group-committed map puts (${durability}, 64 writers) at ${formatPercent(ratio.median)} of raw LevelDB batch puts; target ≥ ${formatPercent(targetGroupCommitRatioMin)}`,
    );
  }
  for (const [temperature, { latencyMsP99, pass }] of Object.entries(targets.getLatencyMsP99)) {
    lines.push(`${verdict(pass).padEnd(5)}  get p99 (${temperature}) ${formatMs(latencyMsP99)} ms; target < ${targetGetLatencyMsP99Max} ms`);
  }
  return { lines, targets };
}

/** Writes every figure, per run and summarised, to bench/out/store-<ISO date>.json; returns the path. */
function writeFigures(machine: Machine, settings: Settings, startedAt: Date, summaries: ReadonlyMap<CaseId, CaseSummary>, targets: Targets): string {
  mkdirSync(outDir, { recursive: true });
  // Colons are legal on Linux but not on every filesystem a results folder gets copied to.
  const stamp = startedAt
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replaceAll(':', '-');
  const outPath = join(outDir, `store-${settings.sealed ? 'sealed-' : ''}${stamp}.json`);
  const figures = {
    benchmark: 'store',
    startedAt: startedAt.toISOString(),
    elapsedMs: Date.now() - startedAt.getTime(),
    machine,
    settings: {
      runs: settings.runs,
      quick: settings.quick,
      sealed: settings.sealed,
      valueBytes,
      writersCounts,
      durabilities,
      rawBatchPutsCount,
      counterKeysCount,
      ...settings.limits,
    },
    cases: Object.fromEntries(summaries),
    targets: { groupCommitRatioMin: targetGroupCommitRatioMin, getLatencyMsP99Max: targetGetLatencyMsP99Max, ...targets },
  };
  writeFileSync(outPath, `${JSON.stringify(figures, null, 2)}\n`);
  return outPath;
}

async function main(): Promise<void> {
  const settings = parseSettings(process.argv.slice(2));
  const startedAt = new Date();
  const root = await mkdtemp(join(os.tmpdir(), 'tessera-bench-'));
  // Ctrl-C must not leave LevelDB directories behind in the shared temporary directory.
  const removeRoot = (): void => rmSync(root, { recursive: true, force: true });
  process.once('SIGINT', () => {
    removeRoot();
    process.exit(130);
  });
  const machine = machineInfo(root);
  console.log([...headerLines(machine, settings, startedAt), ''].join('\n'));

  let samples: Map<CaseId, Sample[]>;
  try {
    await warmUp(root, settings.limits);
    // Progress goes to stderr so that stdout is the report alone.
    samples = await runAll(root, settings, (line) => console.error(line));
  } finally {
    removeRoot();
  }

  const summaries = new Map<CaseId, CaseSummary>();
  for (const [id, runs] of samples) summaries.set(id, summarise(id, runs));
  const { lines, targets } = reportLines(summaries, settings.limits);
  const outPath = writeFigures(machine, settings, startedAt, summaries, targets);
  console.log([...lines, '', `figures written to ${outPath}`].join('\n'));
}

await main();
