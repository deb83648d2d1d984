/**
 * A chaos run: three real `tessera serve` processes (eu-west, eu-central, us-east) under the chaos policy,
 * every link through a FaultProxy whose tap scans what it delivers; a seeded fault schedule (partitions,
 * one-way stalls, silent blackholes, latency spikes and jitter, bandwidth limits, connection resets, kill -9
 * and restart, SIGSTOP pauses) played against a mixed workload of several clients per region; then every
 * fault heals, the run waits (bounded) for the allowed copies to converge, reads the final state of every
 * node and its data files, and hands everything to the checker.
 *
 * Slow disks are not simulated: the daemon has no I/O hook, and a FUSE or LD_PRELOAD shim is not worth it
 * here. A SIGSTOP pause freezes the whole process, which a stuck disk also does to a node's commits.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DevNode } from '@tessera/cli';
import { type TestCluster, startTestCluster } from '../harness.js';
import { WebSocketTap } from '../ws-tap.js';
import { type CheckResult, type FinalDoc, type WireEvent, check } from './checker.js';
import { History, call } from './history.js';
import { type ChaosRegion, chaosPolicyText, chaosRegions, docKeyOf, docOf, allowedRegions, forbiddenMarkers, quarantineMarkerPrefix } from './model.js';
import { Random } from './random.js';
import { type FaultAction, type ScheduledAction, buildSchedule, countFaults, describeAction, describeSchedule } from './schedule.js';
import { Client } from './workload.js';

/** Options of a run. */
export interface ChaosOptions {
  readonly seed: number;
  /** Length of the fault phase (the workload runs through it); the run takes this plus start-up, healing and checking. */
  readonly seconds: number;
  readonly clientsPerRegion?: number;
  /** One-way latency of every link outside its faults. */
  readonly baseLatencyMs?: number;
  /** Bound on the wait for convergence after healing. */
  readonly convergeMsMax?: number;
  /** Progress lines. */
  readonly log?: (line: string) => void;
}

/** What a run found. */
export interface ChaosReport {
  readonly seed: number;
  readonly seconds: number;
  readonly schedule: readonly string[];
  readonly faults: Record<string, number>;
  readonly ops: Record<string, Record<string, number>>;
  readonly acknowledgedWrites: number;
  readonly documents: number;
  readonly result: CheckResult;
  /** Wall-clock milliseconds of each phase. */
  readonly phasesMs: Record<string, number>;
  /** How long the copies took to converge after healing, or null if they did not within the bound. */
  readonly convergedAfterMs: number | null;
  /** Where the full history was written (always written; kept for failed runs). */
  readonly historyFile: string;
  /** The command that replays the run. */
  readonly reproduce: string;
}

/** The `t` the harness needs (a tap test, or a stand-in for the command-line runner). */
export type HarnessT = Parameters<typeof startTestCluster>[0];

const datasets = ['catalog', 'visits', 'carts', 'audits', 'orders'] as const;
const pollIntervalMs = 500;
/** Bytes of one chunk kept to find a marker split across two chunks. */
const carryBytes = 96;

export async function runChaos(t: HarnessT, options: ChaosOptions): Promise<ChaosReport> {
  const { seed, seconds } = options;
  const log = options.log ?? (() => undefined);
  const baseLatencyMs = options.baseLatencyMs ?? 10;
  const durationMs = Math.round(seconds * 1000);
  const random = new Random(seed);
  const reproduce = `npm run build && CHAOS_SEED=${seed} CHAOS_SECONDS=${seconds} npx tap packages/cli/test/chaos.test.ts   (or: npm run chaos -- --seed ${seed} --seconds ${seconds})`;
  const phasesMs: Record<string, number> = {};
  let phaseStartMs = Date.now();
  const phase = (name: string) => {
    phasesMs[name] = Date.now() - phaseStartMs;
    phaseStartMs = Date.now();
  };

  // ---------------------------------------------------------------- the taps
  const history = new History();
  const regionOfNode = (id: string) => id.replace(/-1$/, '') as ChaosRegion;
  const forbidden = Object.fromEntries(chaosRegions.map((region) => [region, forbiddenMarkers(region).map((marker) => Buffer.from(marker))])) as Record<ChaosRegion, Buffer[]>;
  const wireForbidden: WireEvent[] = [];
  const wireQuarantine: WireEvent[] = [];
  const seen = new Set<string>();
  const carry = new Map<string, Buffer>();
  const quarantinePrefix = Buffer.from(quarantineMarkerPrefix);
  // Payloads are scanned as the WebSocket decoder hands them on: what dialers send is masked on the wire.
  const tap = new WebSocketTap((stream, chunk) => {
    const [link, direction] = stream.split(':') as [string, 'forward' | 'backward'];
    const [from, to] = link.split('>') as [string, string];
    const region = regionOfNode(direction === 'forward' ? to : from);
    const previous = carry.get(stream);
    const bytes = previous === undefined ? chunk : Buffer.concat([previous, chunk]);
    carry.set(stream, Buffer.from(bytes.subarray(Math.max(0, bytes.length - carryBytes))));
    const atMs = history.now();
    for (const marker of forbidden[region]) {
      const at = bytes.indexOf(marker);
      if (at < 0) continue;
      const text = bytes.subarray(at, at + marker.length + 24).toString('latin1').replace(/[^\x20-\x7e].*$/, '');
      if (seen.has(`${text}>${region}`)) continue;
      seen.add(`${text}>${region}`);
      wireForbidden.push({ marker: text, region, link, atMs });
    }
    for (let at = bytes.indexOf(quarantinePrefix); at >= 0; at = bytes.indexOf(quarantinePrefix, at + 1)) {
      const end = bytes.indexOf(0x2e, at); // '.'
      if (end < 0 || end - at > 80) continue;
      const marker = bytes.subarray(at, end + 1).toString('latin1');
      if (marker.slice(quarantinePrefix.length).startsWith(`${region}-`) || seen.has(`${marker}>${region}`)) continue;
      seen.add(`${marker}>${region}`);
      wireQuarantine.push({ marker, region, link, atMs });
    }
    wireBytes.scanned += chunk.length;
  });
  const wireBytes = { scanned: 0 };
  const onData = (link: string, direction: 'forward' | 'backward', chunk: Buffer, connection: number) => tap.feed(`${link}:${direction}:${connection}`, chunk);

  // ---------------------------------------------------------------- the cluster
  log(`chaos: seed ${seed}, ${seconds} s of faults; starting ${chaosRegions.join(', ')}`);
  const cluster = await startTestCluster(t, [...chaosRegions], baseLatencyMs, { policyText: chaosPolicyText, onData });
  const nodeOf = Object.fromEntries(cluster.nodes.map((node) => [node.region, node.id])) as Record<ChaosRegion, string>;
  const nodeById = new Map(cluster.nodes.map((node) => [node.id, node]));
  const schedule = buildSchedule(random.fork('schedule'), { links: [...cluster.layout.proxies.keys()], nodes: cluster.nodes.map((node) => node.id), durationMs, baseLatencyMs });
  log(`chaos: schedule of ${schedule.length} actions: ${JSON.stringify(countFaults(schedule))}`);
  phase('start');

  // ---------------------------------------------------------------- workload, faults and polling
  const down = new Set<string>();
  const paused = new Set<string>();
  const incarnation = new Map(cluster.nodes.map((node) => [node.id, 0]));
  const restarts: Promise<void>[] = [];
  const startErrors: string[] = [];
  const restart = (node: DevNode) => {
    const done = cluster.restart(node).then(() => {
      incarnation.set(node.id, incarnation.get(node.id)! + 1);
      down.delete(node.id);
      history.fault(`${node.id} ready again`);
    }, (error: Error) => {
      startErrors.push(`${node.id} did not restart: ${error.message}`);
    });
    restarts.push(done);
    return done;
  };
  const perform = async (action: FaultAction) => {
    history.fault(describeAction(action));
    const proxy = 'link' in action ? cluster.layout.proxies.get(action.link)! : null;
    switch (action.kind) {
      case 'partition': return proxy!.partition(action.on);
      case 'blackhole': return proxy!.blackhole(action.on);
      case 'stall': return proxy!.stall(action.direction, action.on);
      case 'latency': return proxy!.setLatency(action.latencyMs, action.jitterMs);
      case 'bandwidth': return proxy!.setBandwidth(action.bytesPerSecond);
      case 'reset': return proxy!.resetConnections();
      case 'kill':
        down.add(action.node);
        return cluster.kill9(nodeById.get(action.node)!);
      case 'restart':
        void restart(nodeById.get(action.node)!);
        return;
      case 'pause': {
        const child = cluster.children.get(action.node)!;
        if (action.on) paused.add(action.node);
        else paused.delete(action.node);
        child.kill(action.on ? 'SIGSTOP' : 'SIGCONT');
        return;
      }
    }
  };

  const clientsPerRegion = options.clientsPerRegion ?? 2;
  const targets = cluster.nodes.map((node) => ({ node: node.id, region: node.region, url: node.url }));
  const clients = Array.from({ length: clientsPerRegion * cluster.nodes.length }, (_, i) => new Client(i, targets[i % targets.length]!, random.fork(`client-${i}`), history, targets));
  history.start();
  let polling = true;
  const poller = (async () => {
    while (polling) {
      await Promise.all(cluster.nodes.map(async (node) => {
        if (down.has(node.id) || paused.has(node.id)) return;
        const atMs = history.now();
        const generation = incarnation.get(node.id)!;
        const [status, peers] = await Promise.all([call(node.url, 'GET', '/v1/status', undefined, 3_000), call(node.url, 'GET', '/v1/peers', undefined, 3_000)]);
        if (status.kind !== 'answer' || peers.kind !== 'answer' || status.status !== 200 || peers.status !== 200) return;
        if (incarnation.get(node.id) !== generation) return;
        history.samples.push({ node: node.id, incarnation: generation, atMs, lastSeq: status.body.lastSeq, cursors: peers.body.cursors ?? {} });
      }));
      await new Promise((resolve) => setTimeout(resolve, pollIntervalMs));
    }
  })();
  const running = clients.map((client) => client.run());
  for (const { atMs, action } of schedule) {
    const waitMs = atMs - history.now();
    if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
    await perform(action);
  }
  const remainingMs = durationMs - history.now();
  if (remainingMs > 0) await new Promise((resolve) => setTimeout(resolve, remainingMs));
  for (const client of clients) client.stop();
  await Promise.all(running);
  phase('faults');

  // ---------------------------------------------------------------- heal
  history.fault('heal: every proxy healed, latency and bandwidth reset, paused nodes continued, down nodes restarted');
  for (const proxy of cluster.layout.proxies.values()) {
    proxy.heal();
    proxy.setLatency(baseLatencyMs, 0);
    proxy.setBandwidth(null);
  }
  for (const id of paused) cluster.children.get(id)!.kill('SIGCONT');
  paused.clear();
  await Promise.all(restarts);
  for (const id of [...down]) await restart(nodeById.get(id)!);
  const healedAtMs = Date.now();

  // ---------------------------------------------------------------- converge
  const convergeMsMax = options.convergeMsMax ?? 120_000;
  let convergedAfterMs: number | null = null;
  for (;;) {
    if (await listsConverged(cluster)) {
      convergedAfterMs = Date.now() - healedAtMs;
      break;
    }
    if (Date.now() - healedAtMs > convergeMsMax) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  log(`chaos: ${convergedAfterMs === null ? `no convergence within ${convergeMsMax} ms` : `converged ${convergedAfterMs} ms after healing`}`);
  polling = false;
  await poller;
  phase('converge');

  // ---------------------------------------------------------------- final state and check
  let result: CheckResult | null = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    const final = await finalState(cluster, history);
    const diskFindings = await scanDisks(cluster, history);
    result = check({ history, final, nodeOf, wireForbidden, wireQuarantine, diskFindings });
    // Contexts can trail values by a moment (a tag or an empty delta still in flight): look again before judging.
    const transient = result.violations.some((v) => v.startsWith('divergence') || v.startsWith('lost write'));
    if (!transient || Date.now() - healedAtMs > convergeMsMax) break;
    await new Promise((resolve) => setTimeout(resolve, 3_000));
  }
  result!.checked['residency: payload bytes scanned on the wire'] = wireBytes.scanned;
  for (const error of startErrors) result!.violations.push(`restart: ${error}`);
  if (convergedAfterMs === null) result!.violations.push(`convergence: the allowed copies did not converge within ${convergeMsMax} ms of healing`);
  phase('check');

  const historyFile = join(await mkdtemp(join(tmpdir(), 'tessera-chaos-')), `history-${seed}.json`);
  await writeFile(historyFile, JSON.stringify({ seed, seconds, schedule: describeSchedule(schedule), faults: history.faults, ops: history.ops, samples: history.samples, violations: result!.violations }, null, 1));
  const acknowledgedWrites = history.ops.filter((op) => op.outcome === 'ok' && op.kind !== 'read-token').length;
  const documents = new Set(history.ops.map((op) => docKeyOf(op.dataset, op.key))).size;
  return {
    seed, seconds, schedule: describeSchedule(schedule), faults: countFaults(schedule), ops: history.summary(), acknowledgedWrites, documents,
    result: result!, phasesMs, convergedAfterMs, historyFile, reproduce,
  };
}

/** Every document of every dataset on every node, as listed: key → value. */
async function listAll(node: DevNode): Promise<Map<string, Map<string, unknown>> | null> {
  const out = new Map<string, Map<string, unknown>>();
  for (const dataset of datasets) {
    const items = new Map<string, unknown>();
    let cursor: string | null = null;
    do {
      const answer = await call(node.url, 'GET', `/v1/kv/${dataset}?limit=1000${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`, undefined, 10_000);
      if (answer.kind !== 'answer' || answer.status !== 200) return null;
      for (const item of answer.body.items) items.set(item.key, { value: item.value, tags: item.tags });
      cursor = answer.body.cursor;
    } while (cursor !== null);
    out.set(dataset, items);
  }
  return out;
}

/** True when, for every listed document, every region allowed to hold it lists the same value and tags. */
async function listsConverged(cluster: TestCluster): Promise<boolean> {
  const lists = await Promise.all(cluster.nodes.map(listAll));
  if (lists.some((list) => list === null)) return false;
  const byRegion = new Map(cluster.nodes.map((node, i) => [node.region, lists[i]!]));
  for (const dataset of datasets) {
    const keys = new Set<string>();
    for (const list of lists) for (const key of list!.get(dataset)!.keys()) keys.add(key);
    for (const key of keys) {
      const doc = docOf(dataset, key);
      // A quarantined document: where it may be depends on its release, which the lists show in its tags.
      const holders = doc.family === 'quar' ? null : allowedRegions(doc);
      const regions = holders ?? chaosRegions;
      const views = regions.map((region) => JSON.stringify(byRegion.get(region)!.get(dataset)!.get(key) ?? null));
      if (holders === null) {
        const origin = JSON.stringify(byRegion.get(doc.origin!)!.get(dataset)!.get(key) ?? null);
        const released = views.some((view) => view.includes('"reviewed"'));
        if (released ? views.some((view) => view !== origin) : false) return false;
        continue;
      }
      if (new Set(views).size > 1) return false;
    }
  }
  return true;
}

/** Reads every document any client wrote or any node lists, on every node; and the tokens of 404 answers. */
async function finalState(cluster: TestCluster, history: History): Promise<Parameters<typeof check>[0]['final']> {
  const lists = new Map<string, Map<string, string[]>>();
  const universe = new Set<string>();
  for (const op of history.ops) universe.add(docKeyOf(op.dataset, op.key));
  for (const node of cluster.nodes) {
    const listed = await listAll(node);
    const perDataset = new Map<string, string[]>();
    for (const [dataset, items] of listed ?? []) {
      perDataset.set(dataset, [...items.keys()]);
      for (const key of items.keys()) universe.add(docKeyOf(dataset, key));
    }
    lists.set(node.id, perDataset);
  }
  const docs = new Map<string, Map<string, FinalDoc>>();
  const tokenReads = new Map<string, Map<string, number>>();
  const tokensByDoc = new Map<string, string[]>();
  for (const op of history.ops) {
    if (op.outcome === 'ok' && typeof op.token === 'string' && op.kind !== 'read-token') {
      const id = docKeyOf(op.dataset, op.key);
      tokensByDoc.set(id, [...(tokensByDoc.get(id) ?? []), op.token]);
    }
  }
  for (const node of cluster.nodes) {
    const answers = new Map<string, FinalDoc>();
    const tokens = new Map<string, number>();
    const ids = [...universe];
    // A few requests at a time: the node answers them one by one anyway.
    for (let i = 0; i < ids.length; i += 8) {
      await Promise.all(ids.slice(i, i + 8).map(async (id) => {
        const answer = await call(node.url, 'GET', `/v1/kv/${id}`, undefined, 10_000);
        const doc: FinalDoc = answer.kind !== 'answer' ? { status: 0 } : answer.status === 200
          ? { status: 200, value: answer.body.value, context: answer.body.context, tags: answer.body.tags }
          : { status: answer.status };
        answers.set(id, doc);
        if (doc.status !== 404) return;
        for (const token of tokensByDoc.get(id) ?? []) {
          const read = await call(node.url, 'GET', `/v1/kv/${id}?token=${token}&waitMs=0`, undefined, 10_000);
          tokens.set(token, read.kind === 'answer' ? read.status : 0);
        }
      }));
    }
    docs.set(node.id, answers);
    tokenReads.set(node.id, tokens);
  }
  return { docs, lists, tokenReads };
}

/**
 * Scans every file of every node's data directory for what may never be there: the node's forbidden markers,
 * and the values of other regions' quarantined documents whose release was never asked for. Whole markers
 * are searched for: LevelDB may split a record at a block boundary or compress a table, so this finds less
 * than the taps do, never more.
 */
async function scanDisks(cluster: TestCluster, history: History): Promise<string[]> {
  const findings: string[] = [];
  const releaseAsked = new Set(history.ops.filter((op) => op.kind === 'tag' && (op.args.add as string[] | undefined)?.includes('reviewed') && op.outcome !== 'fail').map((op) => op.key));
  const quarantined = history.ops.filter((op) => op.kind === 'put' && op.key.startsWith('mk-q-') && op.outcome !== 'fail' && !releaseAsked.has(op.key));
  for (const node of cluster.nodes) {
    const region = node.region as ChaosRegion;
    const dir = join(cluster.layout.dir, 'data', node.id);
    const markers = [
      ...forbiddenMarkers(region),
      ...quarantined.filter((op) => op.region !== region).map((op) => (op.args.value as { m: string }).m),
    ].map((marker) => Buffer.from(marker));
    for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
      if (!entry.isFile()) continue;
      const path = join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name);
      let bytes: Buffer;
      try {
        bytes = await readFile(path);
      } catch {
        continue; // a file LevelDB removed meanwhile (compaction)
      }
      for (const marker of markers) if (bytes.includes(marker)) findings.push(`${marker.toString()} is on ${region}'s disk in ${path}`);
    }
  }
  return [...new Set(findings)];
}

/** The lines a failed run prints: seed, schedule, faults as carried out, the reproduce command. */
export function failureText(report: ChaosReport, violationsMax = 40): string {
  return [
    `chaos run failed: seed ${report.seed}, ${report.seconds} s`,
    `reproduce: ${report.reproduce}`,
    `history: ${report.historyFile}`,
    `violations (${report.result.violations.length}):`,
    ...report.result.violations.slice(0, violationsMax).map((v) => `  ${v}`),
    ...(report.result.violations.length > violationsMax ? [`  … ${report.result.violations.length - violationsMax} more in the history file`] : []),
    'schedule:',
    ...report.schedule.map((line) => `  ${line}`),
  ].join('\n');
}

/** Removes the history file of a run that passed. */
export async function discardHistory(report: ChaosReport): Promise<void> {
  await rm(join(report.historyFile, '..'), { recursive: true, force: true });
}

export { describeSchedule, type ScheduledAction };
