/**
 * The simulation: N nodes with real replicas and link state machines in one process, over a simulated clock
 * and network, driven by one seed. Events run one at a time from a queue ordered by (simulated time,
 * sequence), each awaited fully — its LevelDB I/O included — before the next starts, so a seed replays the
 * same run.
 *
 * Phase one runs a random workload while injecting faults; phase two heals everything (partitions, crashed
 * nodes, message faults, clock jumps) and must converge within a bound of simulated time. Then the final
 * checks run (checks.ts).
 */
import { type Policy, assert, isTesseraError } from '@tessera/core';
import { type LogEntry, type PurgeEvent } from '@tessera/store';
import { Checker } from './checks.js';
import { SimNetwork, type SimConn } from './network.js';
import { SimNode } from './node.js';
import { type PolicyShape, type SimRegion, basePolicyShape, buildPolicy, nextPolicyShape, simRegions } from './policy.js';
import { EventQueue } from './queue.js';
import { scheduleFaults } from './faults.js';
import { finish, quiescent } from './ending.js';
import {
  type FaultOptions,
  type SimulationOptions,
  type SimulationResult,
  allFaults,
  convergeBoundMsDefault,
  eventsMax,
  operationGapMsMean,
  reproduceCommand,
  stepsDefault,
  timing,
  wallBaseMs,
} from './options.js';

export {
  type FaultOptions,
  type SimulationOptions,
  type SimulationResult,
  allFaults,
  noFaults,
  reproduceCommand,
  stepsDefault,
  convergeBoundMsDefault,
} from './options.js';
import { Random } from './random.js';
import { type Operation, execute, expectedRefusals, randomOperation } from './workload.js';

/** Runs one simulation. */
export async function runSimulation(options: SimulationOptions): Promise<SimulationResult> {
  const simulation = new Simulation(options);
  return simulation.run();
}

/** One run (see runSimulation). */
export class Simulation {
  nowMs = 0;
  readonly cluster = 'sim';
  readonly secret = new TextEncoder().encode('sim-secret-0123456789abcdef');
  readonly timing = timing;
  readonly network: SimNetwork;
  readonly observer;
  private readonly queue = new EventQueue();
  private readonly seed: number;
  readonly steps: number;
  readonly faults: FaultOptions;
  private readonly regions: readonly SimRegion[];
  readonly nodes: SimNode[] = [];
  private readonly byId = new Map<string, SimNode>();
  readonly offsets = new Map<string, number>();
  readonly checker: Checker;
  readonly random: { net: Random; workload: Random; faults: Random; disk: Random; checks: Random };
  private policyShape: PolicyShape;
  readonly policies: Policy[] = [];
  private readonly restartAt = new Map<string, number>();
  healed = false;
  private digestState = 0x811c9dc5;
  private events = 0;
  private readonly reproduce: string;
  readonly counts = { operations: 0, acknowledged: 0, refused: 0, nodeDown: 0, crashedInOp: 0, crashes: 0, partitions: 0, clockJumps: 0, policyVersions: 1 };

  constructor(readonly options: SimulationOptions) {
    this.seed = options.seed;
    const pick = new Random(options.seed, 'shape');
    const nodeCount = options.nodes ?? pick.range(3, 5);
    assert(nodeCount >= 3 && nodeCount <= simRegions.length, `3 to ${simRegions.length} nodes`);
    this.steps = options.steps ?? stepsDefault;
    this.faults = { ...allFaults, ...options.faults };
    this.regions = simRegions.slice(0, nodeCount);
    this.random = {
      net: new Random(options.seed, 'network'),
      workload: new Random(options.seed, 'workload'),
      faults: new Random(options.seed, 'faults'),
      disk: new Random(options.seed, 'disk'),
      checks: new Random(options.seed, 'checks'),
    };
    this.network = new SimNetwork(this, this.random.net);
    this.policyShape = basePolicyShape(this.regions);
    this.policies.push(buildPolicy(this.policyShape, this.regions));
    const ids = this.regions.map((region) => `${region.name}-1`);
    this.checker = new Checker((node) => this.regionOf(node), ids);
    this.reproduce = options.reproduce ?? reproduceCommand(options.seed, { steps: options.steps, nodes: options.nodes, faults: options.faults });
    const simulation = this;
    this.observer = {
      changed(node: SimNode, dataset: string, key: string) {
        simulation.checker.docChanged(node, dataset, key);
      },
      sent(node: SimNode, peer: string, entries: readonly LogEntry[]) {
        simulation.checker.sent(node, peer, entries);
      },
      purged(node: SimNode, purge: PurgeEvent) {
        simulation.traceLine(`${node.id}: purged ${purge.dataset}/${purge.key} (${purge.reason})`);
        simulation.checker.purged(purge, simulation.nowMs);
      },
      policyInstalled(node: SimNode, version: number, from: string) {
        simulation.traceLine(`${node.id}: installed policy v${version} from ${from}`);
        simulation.afterPolicy.add(node);
      },
      trace(text: string) {
        simulation.traceLine(text);
      },
    };
  }

  /** Nodes whose policy changed in the current event: fully re-scanned after it. */
  private readonly afterPolicy = new Set<SimNode>();

  traceLine(text: string): void {
    this.options.trace?.(`[${String(this.nowMs).padStart(6)}] ${text}`);
  }

  // ---------------------------------------------------------------- hosts' view

  at(atMs: number, label: string, run: () => void | Promise<void>): void {
    this.queue.push(Math.max(atMs, this.nowMs), label, run);
  }

  incarnationOf(node: string): number | null {
    const sim = this.byId.get(node)!;
    return sim.alive ? sim.incarnation : null;
  }

  regionOf(node: string): string {
    return this.byId.get(node)?.region ?? node.replace(/-\d+$/, '');
  }

  jurisdictionOf(region: string): string {
    return this.regions.find((r) => r.name === region)?.jurisdiction ?? '';
  }

  accept(node: string, conn: SimConn): void {
    this.byId.get(node)!.accept(conn);
  }

  delivered(_conn: SimConn, _from: string, _to: string, _bytes: Uint8Array): void {
    this.checker.counts.deliveredEntries++;
  }

  wallMs(node: string): number {
    return wallBaseMs + this.nowMs + (this.offsets.get(node) ?? 0);
  }

  linkMs(node: string): number {
    return this.options.linkClock === 'wall' ? this.wallMs(node) : wallBaseMs + this.nowMs;
  }

  diskDelayMs(): number {
    return this.random.disk.int(3);
  }

  configPolicy(): Policy {
    return this.policies[0]!;
  }

  // ---------------------------------------------------------------- the run

  async run(): Promise<SimulationResult> {
    let convergedAfterMs: number | null = null;
    try {
      for (const [i, region] of this.regions.entries()) {
        const id = `${region.name}-1`;
        const peers = this.regions.filter((_, j) => j !== i).map((r) => ({ node: `${r.name}-1`, region: r.name }));
        const node = new SimNode(id, region.name, peers, this, new Random(this.seed, `node:${id}`));
        this.nodes.push(node);
        this.byId.set(id, node);
        if (this.faults.clocks) this.offsets.set(id, this.random.faults.range(-3_000, 3_000));
      }
      for (const node of this.nodes) await node.start();
      const phaseOneEndMs = this.schedulePhaseOne();
      this.at(phaseOneEndMs, 'heal', () => this.heal());
      const boundMs = phaseOneEndMs + (this.options.convergeBoundMs ?? convergeBoundMsDefault);
      this.schedulePolls(phaseOneEndMs + 2_000, boundMs);
      convergedAfterMs = await this.loop(boundMs, phaseOneEndMs);
      if (this.checker.failures.length === 0) await this.finish(convergedAfterMs === null);
    } catch (error) {
      this.checker.fail(`the simulation itself failed: ${(error as Error).stack ?? String(error)}`);
    } finally {
      for (const node of this.nodes) await node.stop().catch(() => undefined);
    }
    const failures = this.checker.failures;
    const stats: Record<string, number> = { ...this.counts, ...this.checker.counts, ...this.network.stats };
    for (const node of this.nodes) for (const [name, value] of Object.entries(node.stats)) stats[name] = (stats[name] ?? 0) + value;
    stats.writesAcknowledged = this.checker.writes.length;
    const report =
      failures.length === 0
        ? ''
        : [
            `simulation seed ${this.seed} failed (${failures.length} problem${failures.length === 1 ? '' : 's'}, ${this.nodes.length} nodes, ${this.steps} steps, at simulated t=${this.nowMs} ms):`,
            ...failures.slice(0, 20).map((failure) => `  - ${failure}`),
            ...(failures.length > 20 ? [`  … and ${failures.length - 20} more`] : []),
            `reproduce: ${this.reproduce}`,
          ].join('\n');
    return {
      seed: this.seed,
      nodes: this.nodes.length,
      steps: this.steps,
      ok: failures.length === 0,
      failures,
      report,
      reproduce: this.reproduce,
      simulatedMs: this.nowMs,
      convergedAfterMs,
      events: this.events,
      digest: (this.digestState >>> 0).toString(16).padStart(8, '0'),
      stats,
    };
  }

  mix(text: string): void {
    let h = this.digestState;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    this.digestState = h >>> 0;
  }

  private converged = false;

  /** Runs events until the bound, a failure, or convergence in phase two. Returns when it converged (ms after healing). */
  private async loop(boundMs: number, healMs: number): Promise<number | null> {
    while (this.checker.failures.length === 0) {
      const next = this.queue.peekMs();
      if (next === null || next > boundMs) break;
      const event = this.queue.pop()!;
      this.nowMs = event.atMs;
      this.events++;
      assert(this.events <= eventsMax, `more than ${eventsMax} events`);
      this.mix(`${event.atMs}|${event.label};`);
      try {
        await event.run();
      } catch (error) {
        this.checker.fail(`unexpected error in event "${event.label}": ${(error as Error).stack ?? String(error)}`);
        break;
      }
      await this.checker.afterEvent(this.nodes);
      for (const node of [...this.afterPolicy]) {
        this.afterPolicy.delete(node);
        await this.checker.scanStored(node, 'after a policy change');
      }
      this.scheduleRestarts();
      if (this.converged) return this.nowMs - healMs;
    }
    return null;
  }

  private scheduleRestarts(): void {
    for (const node of this.nodes) {
      if (node.alive || this.restartAt.has(node.id)) continue;
      const delayMs = this.healed ? 100 : 200 + this.random.faults.exp(2_000);
      this.restartAt.set(node.id, this.nowMs + delayMs);
      this.traceLine(`${node.id}: down, restarts in ${delayMs} ms`);
      this.at(this.nowMs + delayMs, `restart ${node.id}`, async () => {
        this.restartAt.delete(node.id);
        if (node.alive) return;
        await node.start();
        this.traceLine(`${node.id}: restarted (incarnation ${node.incarnation}, head ${node.replica!.lastSeq}, policy v${node.replica!.policy?.version ?? 0})`);
        this.checker.checkMarks(node, node.replica!, await node.replica!.cursors());
        await this.checker.scanStored(node, 'after a restart');
      });
    }
  }

  // ---------------------------------------------------------------- phase one

  private schedulePhaseOne(): number {
    let t = 0;
    for (let i = 0; i < this.steps; i++) {
      t += this.random.workload.exp(operationGapMsMean);
      let op: Operation = randomOperation(this.random.workload);
      while (!this.faults.tagChanges && (op.kind === 'tag' || (op.kind === 'put' && op.tags !== undefined && op.tags.length > 0)))
        op = randomOperation(this.random.workload);
      const node = this.random.workload.pick(this.nodes);
      this.at(t, `op ${node.id} ${op.kind} ${op.dataset}/${op.key}`, () => this.operation(node, op));
    }
    const endMs = t + 1_000;
    const during = scheduleFaults(this, endMs);
    for (let i = 0; i < 3; i++) {
      this.at(during(), 'check replay', async () => {
        const node = this.random.checks.pick(this.nodes);
        await this.checker.replay(node, node, this.random.checks, 20, 'mid-run, to itself');
      });
    }
    this.every(1_000, 'check cursors', async () => {
      for (const node of this.nodes) if (node.replica !== null) this.checker.checkMarks(node, node.replica, await node.replica.cursors());
    });
    return endMs;
  }

  private every(intervalMs: number, label: string, run: () => Promise<void>): void {
    this.at(this.nowMs + intervalMs, label, async () => {
      await run();
      this.every(intervalMs, label, run);
    });
  }

  private async operation(node: SimNode, op: Operation): Promise<void> {
    this.counts.operations++;
    if (!node.alive) {
      this.counts.nodeDown++;
      return;
    }
    const outcome = await node.operate(
      async (replica) => {
        try {
          return await execute(replica, op);
        } catch (error) {
          if (isTesseraError(error) && expectedRefusals.has(error.code)) return null;
          throw error;
        }
      },
      async (result) => {
        const detail =
          op.kind === 'tag'
            ? ` +[${op.add.join(',')}] -[${op.remove.join(',')}]`
            : op.kind === 'put' && op.tags !== undefined
              ? ` tags [${op.tags.join(',')}]`
              : '';
        if (result === null) {
          this.counts.refused++;
          this.traceLine(`${node.id}: ${op.kind} ${op.dataset}/${op.key}${detail} refused`);
          return;
        }
        this.traceLine(
          `${node.id}: ${op.kind} ${op.dataset}/${op.key}${detail} acknowledged${result.dot === null ? ' (no change)' : ` dot ${result.dot.join(':')}`}`,
        );
        if (result.dot === null) return;
        this.counts.acknowledged++;
        const write = { node: node.id, dataset: op.dataset, key: op.key, dot: result.dot, hlc: result.hlc, atMs: this.nowMs, kind: op.kind };
        if (op.kind === 'delete') {
          const state = await node.replica!.state(op.dataset, op.key);
          this.checker.ackedDelete({ ...write, ctx: state!.ctx.clone() });
        } else {
          this.checker.ackedWrite(write);
        }
      },
    );
    if (outcome === 'crashed') {
      this.counts.crashedInOp++;
      this.checker.uncertain.add(`${op.dataset}/${op.key}`);
    }
  }

  /** A new policy version, installed on one node (the cluster distributes it) or on every node in turn. */
  async changePolicy(onAll: boolean): Promise<void> {
    if (this.healed) return;
    this.policyShape = nextPolicyShape(this.policyShape, this.regions, this.random.faults);
    const policy = buildPolicy(this.policyShape, this.regions);
    this.policies.push(policy);
    this.counts.policyVersions++;
    const targets = onAll ? this.nodes : [this.random.faults.pick(this.nodes)];
    this.traceLine(`policy v${policy.version} on ${targets.map((n) => n.id).join(', ')}:\n${policy.text}`);
    targets.forEach((node, i) => {
      this.at(this.nowMs + i * this.random.faults.range(0, 300), `policy v${policy.version} on ${node.id}`, async () => {
        // As `tessera policy apply` does through the API: install, then the links offer it to the peers.
        let refused = false;
        const outcome = await node.operate(
          async (replica) => {
            try {
              await replica.installPolicy(policy, 'enforce', 'api');
            } catch (error) {
              if (isTesseraError(error, 'ERR_POLICY_CONFLICT')) refused = true;
              else throw error;
            }
          },
          () => {
            if (!refused) node.driver?.policyChanged();
          },
        );
        if (outcome === 'done' && !refused) this.afterPolicy.add(node);
      });
    });
  }

  // ---------------------------------------------------------------- phase two

  private heal(): void {
    this.healed = true;
    this.network.healAll();
    this.network.faults = { lossProbability: 0, duplicateProbability: 0, reorderProbability: 0, spikeProbability: 0 };
    for (const node of this.nodes) node.disarm();
    this.traceLine('heal: partitions and message faults off, crashed nodes restart');
    // Nodes still down restart now (scheduleRestarts sees `healed`).
    for (const node of this.nodes) {
      if (!node.alive && this.restartAt.has(node.id)) {
        this.restartAt.delete(node.id);
      }
    }
  }

  private schedulePolls(fromMs: number, boundMs: number): void {
    const poll = async (): Promise<void> => {
      if (await this.quiescent()) {
        this.converged = true;
        return;
      }
      if (this.nowMs + 1_000 <= boundMs) this.at(this.nowMs + 1_000, 'check convergence', poll);
    };
    this.at(fromMs, 'check convergence', poll);
  }

  /** Every node up, every link open and idle, one policy version, and the final checks pass. */
  private quiescent(): Promise<boolean> {
    return quiescent(this);
  }

  private finish(timedOut: boolean): Promise<void> {
    return finish(this, timedOut);
  }
}
