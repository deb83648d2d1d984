/**
 * A chaos run: three real `tessera serve` processes (eu-west, eu-central, us-east) with a small delta-log
 * bound, each under libfaketime with a clock of its own, every link through a FaultProxy whose tap scans what
 * it delivers; a seeded schedule of faults (partitions, one-way stalls, silent blackholes, latency and jitter,
 * bandwidth limits, resets, kill -9 and restart — two nodes at once too — SIGSTOP pauses, clock jumps) and of
 * policy versions (installed through `POST /v1/policy` on one node or on each in turn) played against a mixed
 * workload of several clients per region; then every fault heals, the run waits (bounded) for the copies to
 * converge, reads every node's final state and data files, and hands everything to the checker.
 *
 * Slow disks are not simulated: the daemon has no I/O hook, and a FUSE or LD_PRELOAD shim is not worth it
 * here. A SIGSTOP pause freezes the whole process, which a stuck disk also does to a node's commits.
 */
import { createPrivateKey } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicy, signPolicy } from '@tessera/core';
import { type DevNode } from '@tessera/cli';
import { startTestCluster } from '../harness.js';
import { type CheckResult, check } from './checker.js';
import { Clocks, clockToleranceMs } from './clocks.js';
import { converged, finalState, scanDisks } from './final.js';
import { History, call } from './history.js';
import { type ChaosRegion, chaosRegions, docKeyOf } from './model.js';
import { basePolicyShape, describeShape, policyText } from './policy.js';
import { Random } from './random.js';
import {
  type FaultAction,
  type Omissible,
  type RunSettings,
  buildSchedule,
  buildSettings,
  clockJumpMsMax,
  clockOffsetMsMax,
  countFaults,
  describeAction,
  describeSchedule,
  formatOffset,
  regionOfNode,
} from './schedule.js';
import { WireScanner } from './wire.js';
import { Client, requestMsMax, weightsWithout } from './workload.js';

/** Options of a run. */
export interface ChaosOptions {
  readonly seed: number;
  /** Length of the fault phase (the workload runs through it); the run takes this plus start-up, healing and checking. */
  readonly seconds: number;
  readonly clientsPerRegion?: number;
  /** One-way latency of every link outside its faults. */
  readonly baseLatencyMs?: number;
  /** Bound on the wait for convergence after healing, and on a wait in which nothing changes. */
  readonly convergeMsMax?: number;
  readonly convergeStallMsMax?: number;
  /** Parts of the run to leave out (narrowing a failure down); CI leaves nothing out. */
  readonly without?: ReadonlySet<Omissible>;
  /** Progress lines. */
  readonly log?: (line: string) => void;
}

/** What a run found. */
export interface ChaosReport {
  readonly seed: number;
  readonly seconds: number;
  readonly settings: RunSettings;
  readonly schedule: readonly string[];
  readonly faults: Record<string, number>;
  readonly ops: Record<string, Record<string, number>>;
  readonly acknowledgedWrites: number;
  readonly documents: number;
  /** Policy versions installed (acknowledged by at least one node). */
  readonly policyVersions: number;
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

const pollIntervalMs = 500;

export async function runChaos(t: HarnessT, options: ChaosOptions): Promise<ChaosReport> {
  const { seed, seconds } = options;
  const log = options.log ?? (() => undefined);
  const baseLatencyMs = options.baseLatencyMs ?? 10;
  const durationMs = Math.round(seconds * 1000);
  const random = new Random(seed);
  const narrowed = options.without === undefined || options.without.size === 0 ? '' : ` --without ${[...options.without].join(',')}`;
  const reproduce =
    narrowed === ''
      ? `npm run build && CHAOS_SEED=${seed} CHAOS_SECONDS=${seconds} npx tap packages/cli/test/chaos.test.ts   (or: npm run chaos -- --seed ${seed} --seconds ${seconds})`
      : `npm run chaos -- --seed ${seed} --seconds ${seconds}${narrowed}`;
  const phasesMs: Record<string, number> = {};
  let phaseStartMs = Date.now();
  const phase = (name: string) => {
    phasesMs[name] = Date.now() - phaseStartMs;
    phaseStartMs = Date.now();
  };

  // ---------------------------------------------------------------- settings, clocks and taps
  const history = new History();
  const nodeIds = chaosRegions.map((region) => `${region}-1`);
  const without = options.without ?? new Set<Omissible>();
  const settings = buildSettings(random.fork('settings'), nodeIds, without);
  history.policies.set(1, basePolicyShape());
  const clocksDir = await mkdtemp(join(tmpdir(), 'tessera-chaos-clocks-'));
  t.teardown(() => rm(clocksDir, { recursive: true, force: true }));
  const clocks = new Clocks(clocksDir);
  for (const node of nodeIds) await clocks.set(node, settings.clockOffsetsMs[node]!);
  const liveVersions = new Map<string, number>();
  const wire = new WireScanner(
    () => history.now(),
    (node) => liveVersions.get(node) ?? 1,
  );

  // ---------------------------------------------------------------- the cluster
  log(
    `chaos: seed ${seed}, ${seconds} s of faults${narrowed === '' ? '' : ` (without ${[...without].join(', ')})`}; log bound ${settings.logEntriesMax} entries; clocks ${nodeIds.map((node) => `${node} ${formatOffset(settings.clockOffsetsMs[node]!)}`).join(', ')}`,
  );
  const cluster = await startTestCluster(t, [...chaosRegions], baseLatencyMs, {
    policyText: policyText(basePolicyShape()),
    onData: wire.onData,
    // Chaos skews clocks on purpose (causality must not depend on them): the handshake's clock offset bound,
    // an operator's guard, is opened to what the schedule can produce between two nodes.
    replication: {
      logEntriesMax: settings.logEntriesMax,
      retentionIntervalMs: settings.retentionIntervalMs,
      clockOffsetMsMax: 2 * (clockOffsetMsMax + clockJumpMsMax),
    },
    envOf: (node) => clocks.envOf(node.id),
    // Plaintext data files: the disk check scans them for values a region may not hold (sealed files would
    // hide a value left behind as well as a purged one; the store's sealed.test.ts covers sealing).
    sealed: false,
  });
  const nodeOf = Object.fromEntries(cluster.nodes.map((node) => [node.region, node.id])) as Record<ChaosRegion, string>;
  const nodeById = new Map(cluster.nodes.map((node) => [node.id, node]));
  await verifyClocks(cluster.nodes, clocks, 'at start');
  const schedule = buildSchedule(random.fork('schedule'), {
    links: [...cluster.layout.proxies.keys()],
    nodes: nodeIds,
    durationMs,
    baseLatencyMs,
    settings,
    without,
  });
  for (const { action } of schedule) if (action.kind === 'policy') history.policies.set(action.shape.version, action.shape);
  log(`chaos: schedule of ${schedule.length} actions: ${JSON.stringify(countFaults(schedule))}`);
  phase('start');

  // ---------------------------------------------------------------- workload, faults and polling
  const down = new Set<string>();
  const paused = new Set<string>();
  const incarnation = new Map(cluster.nodes.map((node) => [node.id, 0]));
  const pending: Promise<void>[] = [];
  const startErrors: string[] = [];
  // Kills per node, so that a restart cut by a scheduled kill -9 during its start-up (a fault like any other,
  // more frequent on a loaded machine where start-up is slow) is not taken for a node that cannot start.
  const kills = new Map<string, number>();
  const restart = (node: DevNode) => {
    const killsBefore = kills.get(node.id) ?? 0;
    const done = cluster.restart(node).then(
      () => {
        incarnation.set(node.id, incarnation.get(node.id)! + 1);
        down.delete(node.id);
        history.fault(`${node.id} ready again`);
      },
      (error: Error) => {
        if ((kills.get(node.id) ?? 0) > killsBefore) history.fault(`${node.id} killed during its start-up`);
        else startErrors.push(`${node.id} did not restart: ${error.message}`);
      },
    );
    pending.push(done);
    return done;
  };
  // Versions are signed with the cluster's operator key, as `tessera policy sign` does.
  const operatorKey = createPrivateKey(await readFile(cluster.layout.security.operatorKey, 'utf8'));
  const installPolicy = async (action: Extract<FaultAction, { kind: 'policy' }>) => {
    const text = policyText(action.shape);
    const signature = signPolicy(parsePolicy(text, `chaos policy v${action.shape.version}`), 'dev', operatorKey);
    for (const id of action.nodes) {
      const node = nodeById.get(id)!;
      const op = history.invoke({ client: -1, node: id, region: node.region, kind: 'policy', dataset: '', key: '', args: { version: action.shape.version } });
      history.complete(op, await call(node.url, 'POST', '/v1/policy', { text, mode: 'enforce', signature }, requestMsMax));
    }
  };
  const perform = async (action: FaultAction) => {
    history.fault(describeAction(action));
    const proxy = 'link' in action ? cluster.layout.proxies.get(action.link)! : null;
    switch (action.kind) {
      case 'partition':
        return proxy!.partition(action.on);
      case 'blackhole':
        return proxy!.blackhole(action.on);
      case 'stall':
        return proxy!.stall(action.direction, action.on);
      case 'latency':
        return proxy!.setLatency(action.latencyMs, action.jitterMs);
      case 'bandwidth':
        return proxy!.setBandwidth(action.bytesPerSecond);
      case 'reset':
        return proxy!.resetConnections();
      case 'kill':
        down.add(action.node);
        kills.set(action.node, (kills.get(action.node) ?? 0) + 1);
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
      case 'clock':
        return clocks.set(action.node, action.offsetMs);
      case 'policy':
        // Installs take their time (a node re-judges its documents); the schedule goes on meanwhile.
        pending.push(installPolicy(action));
        return;
    }
  };

  const clientsPerRegion = options.clientsPerRegion ?? 2;
  const targets = cluster.nodes.map((node) => ({ node: node.id, region: node.region, url: node.url }));
  const regionOfClient = (client: number) => targets[client % targets.length]!.region as ChaosRegion;
  const clients = Array.from(
    { length: clientsPerRegion * cluster.nodes.length },
    (_, i) => new Client(i, targets[i % targets.length]!, random.fork(`client-${i}`), history, targets, weightsWithout(without)),
  );
  history.start();
  let polling = true;
  const poller = (async () => {
    while (polling) {
      await Promise.all(
        cluster.nodes.map(async (node) => {
          if (down.has(node.id) || paused.has(node.id)) return;
          const atMs = history.now();
          const generation = incarnation.get(node.id)!;
          const [status, peers, policy] = await Promise.all([
            call(node.url, 'GET', '/v1/status', undefined, 3_000),
            call(node.url, 'GET', '/v1/peers', undefined, 3_000),
            call(node.url, 'GET', '/v1/policy', undefined, 3_000),
          ]);
          if ([status, peers, policy].some((answer) => answer.kind !== 'answer' || answer.status !== 200) || incarnation.get(node.id) !== generation) return;
          const policyVersion = (policy as { body: { enforced: { version: number } | null } }).body.enforced?.version ?? null;
          if (policyVersion !== null) liveVersions.set(node.id, Math.max(liveVersions.get(node.id) ?? 1, policyVersion));
          history.samples.push({
            node: node.id,
            incarnation: generation,
            atMs,
            answeredAtMs: history.now(),
            policyVersion,
            lastSeq: (status as { body: { lastSeq: number } }).body.lastSeq,
            cursors: (peers as { body: { cursors?: Record<string, number> } }).body.cursors ?? {},
            catchUps: ((status as { body: { links?: Array<{ catchUps?: number }> } }).body.links ?? []).reduce((sum, link) => sum + (link.catchUps ?? 0), 0),
          });
        }),
      );
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
  history.fault('heal: every proxy healed, latency and bandwidth reset, paused nodes continued, down nodes restarted (clocks stay skewed)');
  for (const proxy of cluster.layout.proxies.values()) {
    proxy.heal();
    proxy.setLatency(baseLatencyMs, 0);
    proxy.setBandwidth(null);
  }
  for (const id of paused) cluster.children.get(id)!.kill('SIGCONT');
  paused.clear();
  await Promise.all(pending);
  for (const id of [...down]) await restart(nodeById.get(id)!);
  const healedAtMs = Date.now();

  // ---------------------------------------------------------------- converge
  const convergeMsMax = options.convergeMsMax ?? 120_000;
  const convergeStallMsMax = options.convergeStallMsMax ?? 30_000;
  let convergedAfterMs: number | null = null;
  let lastDigest = '';
  let changedAtMs = Date.now();
  for (;;) {
    const { done, digest } = await converged(cluster, history, regionOfClient);
    if (done) {
      convergedAfterMs = Date.now() - healedAtMs;
      break;
    }
    if (digest !== lastDigest) [lastDigest, changedAtMs] = [digest, Date.now()];
    if (Date.now() - healedAtMs > convergeMsMax || Date.now() - changedAtMs > convergeStallMsMax) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  log(
    `chaos: ${convergedAfterMs === null ? `no convergence (bound ${convergeMsMax} ms, or nothing changed for ${convergeStallMsMax} ms)` : `converged ${convergedAfterMs} ms after healing`}`,
  );
  polling = false;
  await poller;
  const clockProblems = await verifyClocks(cluster.nodes, clocks, 'at the end').then(
    () => [],
    (error: Error) => [error.message],
  );
  phase('converge');

  // ---------------------------------------------------------------- final state and check
  let result: CheckResult | null = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    const final = await finalState(cluster, history);
    const disks = await scanDisks(cluster);
    result = check({ history, final, nodeOf, regionOfClient, wire: wire.events, disks });
    // Contexts can trail values by a moment (a tag or an empty delta still in flight): look again before judging.
    const transient = convergedAfterMs !== null && result.violations.some((v) => v.startsWith('divergence') || v.startsWith('lost write'));
    if (!transient || Date.now() - healedAtMs > convergeMsMax) break;
    await new Promise((resolve) => setTimeout(resolve, 3_000));
  }
  result!.checked['residency: payload bytes scanned on the wire'] = wire.bytesScanned;
  result!.checked['truncation: state catch-ups started'] = catchUpsOf(history);
  for (const error of startErrors) result!.violations.push(`restart: ${error}`);
  for (const problem of clockProblems) result!.notes.push(`clocks: ${problem}`);
  if (convergedAfterMs === null)
    result!.violations.push(`convergence: the copies did not converge within ${convergeMsMax} ms of healing (or nothing changed for ${convergeStallMsMax} ms)`);
  phase('check');

  const historyFile = join(await mkdtemp(join(tmpdir(), 'tessera-chaos-')), `history-${seed}.json`);
  await writeFile(
    historyFile,
    JSON.stringify(
      {
        seed,
        seconds,
        settings,
        schedule: describeSchedule(schedule),
        policies: [...history.policies.values()].map(describeShape),
        faults: history.faults,
        ops: history.ops,
        samples: history.samples,
        wire: wire.events,
        violations: result!.violations,
        notes: result!.notes,
      },
      null,
      1,
    ),
  );
  const acknowledgedWrites = history.ops.filter((op) => op.outcome === 'ok' && op.kind !== 'read-token' && op.kind !== 'policy').length;
  const documents = new Set(history.ops.filter((op) => op.kind !== 'policy').map((op) => docKeyOf(op.dataset, op.key))).size;
  const policyVersions = new Set(history.ops.filter((op) => op.kind === 'policy' && op.outcome === 'ok').map((op) => op.args.version)).size;
  return {
    seed,
    seconds,
    settings,
    schedule: describeSchedule(schedule),
    faults: countFaults(schedule),
    ops: history.summary(),
    acknowledgedWrites,
    documents,
    policyVersions,
    result: result!,
    phasesMs,
    convergedAfterMs,
    historyFile,
    reproduce,
  };
}

/** State catch-ups over the run: each incarnation's counters start at zero, so its last sample counts. */
function catchUpsOf(history: History): number {
  const last = new Map<string, number>();
  for (const sample of history.samples) last.set(`${sample.node}#${sample.incarnation}`, sample.catchUps);
  return [...last.values()].reduce((sum, n) => sum + n, 0);
}

/** Checks that each daemon's `Date` header shows the offset its clock file gives it (libfaketime works on the shipped daemon). */
async function verifyClocks(nodes: readonly DevNode[], clocks: Clocks, when: string): Promise<void> {
  for (const node of nodes) {
    const observed = await Clocks.observedOffsetMs(node.url);
    const expected = clocks.offsetOf(node.id);
    if (observed === null || Math.abs(observed - expected) > clockToleranceMs) {
      throw new Error(
        `clocks ${when}: ${node.id} (${regionOfNode(node.id)}) should run ${formatOffset(expected)} off, its Date header shows ${observed === null ? 'nothing' : formatOffset(observed)}`,
      );
    }
  }
}

/** The lines a failed run prints: seed, violations (grouped by class), schedule, the reproduce command. */
export function failureText(report: ChaosReport, violationsMax = 40): string {
  const classes = new Map<string, number>();
  for (const violation of report.result.violations) {
    const name = violation.split(':')[0]!;
    classes.set(name, (classes.get(name) ?? 0) + 1);
  }
  return [
    `chaos run failed: seed ${report.seed}, ${report.seconds} s`,
    `reproduce: ${report.reproduce}`,
    `history: ${report.historyFile}`,
    `violations (${report.result.violations.length}: ${[...classes].map(([name, n]) => `${name} ${n}`).join(', ')}):`,
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
