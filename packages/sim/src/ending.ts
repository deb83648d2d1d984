/**
 * The end of a run: quiescence (every node up, every link open and idle, one policy version, the final checks
 * pass) and the final checks — convergence, residency on disk and in the log, monotonic marks, idempotent
 * replay between every pair of nodes.
 */
import { type DocState, encodeDoc } from '@tessera/core';
import { allDocs } from './checks.js';
import { type SimNode } from './node.js';
import { type Simulation } from './simulation.js';
import { keysPerDataset } from './workload.js';
import { simDatasets } from './policy.js';
import { convergeBoundMsDefault } from './options.js';

/** Every node up, every link open and idle, one policy version, and the final checks pass. */
export async function quiescent(sim: Simulation): Promise<boolean> {
  if (!sim.nodes.every((node) => node.alive)) return false;
  const versions = new Set(sim.nodes.map((node) => node.replica!.policy?.version ?? 0));
  if (versions.size !== 1) return false;
  for (const node of sim.nodes) {
    for (const link of node.linkViews()) {
      if (link.state !== 'open' || link.applying) return false;
      if (link.lanes.some((lane) => lane.inflight > 0 || lane.catchingUp)) return false;
    }
  }
  for (const node of sim.nodes) if ((await node.replica!.pendingHandovers()) + (await node.replica!.pendingNotices()) > 0) return false;
  const states = await collectStates(sim);
  return sim.checker.finalChecks(states, sim.nodes[0]!.replica!.policy!, sim.nowMs).length === 0;
}

export async function collectStates(sim: Simulation): Promise<Map<string, Map<string, DocState>>> {
  const states = new Map<string, Map<string, DocState>>();
  for (const node of sim.nodes) {
    const replica = node.replica;
    if (replica === null) continue;
    for (const { dataset, key, state } of await allDocs(replica)) {
      const id = `${dataset}/${key}`;
      if (!states.has(id)) states.set(id, new Map());
      states.get(id)!.set(node.id, state);
    }
  }
  return states;
}

export async function finish(sim: Simulation, timedOut: boolean): Promise<void> {
  const down = sim.nodes.filter((node) => !node.alive).map((node) => node.id);
  if (down.length > 0) {
    sim.checker.fail(`convergence: ${down.join(', ')} still down at the end`);
    return;
  }
  const versions = [...new Set(sim.nodes.map((node) => `${node.id}=v${node.replica!.policy?.version ?? 0}`))];
  // The newest version any node stored (an install a crash cut off before its commit stored nothing).
  const stored = await Promise.all(sim.nodes.map(async (node) => (await node.replica!.policyHistory()).map((record) => record.version)));
  const newest = Math.max(...stored.flat());
  if (sim.nodes.some((node) => node.replica!.policy?.version !== newest)) {
    sim.checker.fail(`convergence: the policy did not reach every node (newest v${newest}; ${versions.join(', ')})`);
  }
  for (const node of sim.nodes) {
    const pending = await node.replica!.pendingHandovers();
    if (pending > 0) sim.checker.fail(`residency (disk): ${node.id} still keeps ${pending} documents for handovers at the end`);
  }
  const policy = sim.nodes[0]!.replica!.policy!;
  const states = await collectStates(sim);
  for (const failure of sim.checker.finalChecks(states, policy, sim.nowMs))
    sim.checker.fail(timedOut ? `${failure} (phase two did not converge within ${sim.options.convergeBoundMs ?? convergeBoundMsDefault} ms)` : failure);
  for (const node of sim.nodes) {
    await sim.checker.scanStored(node, 'at the end');
    sim.checker.checkMarks(node, node.replica!, await node.replica!.cursors());
    await checkLog(sim, node);
  }
  for (const from of sim.nodes) {
    for (const to of sim.nodes) await sim.checker.replay(from, to, sim.random.checks, 30, from === to ? 'at the end, to itself' : 'at the end, to a peer');
  }
  for (const [id, copies] of states) for (const [node, state] of copies) sim.mix(`${node}|${id}|${Buffer.from(encodeDoc(state)).toString('base64')}`);
  sim.options.onFinish?.(states);
  void keysPerDataset;
  void simDatasets;
}

/** Residency on disk, in the log: no delta-log entry of a document the node does not store. */
async function checkLog(sim: Simulation, node: SimNode): Promise<void> {
  const replica = node.replica!;
  const stored = new Set((await allDocs(replica)).map(({ dataset, key }) => `${dataset}/${key}`));
  let after = replica.logFloor;
  for (;;) {
    const { entries } = await replica.deltasSince(after, { limit: 1_000 });
    if (entries.length === 0) return;
    for (const entry of entries) {
      if (!stored.has(`${entry.dataset}/${entry.key}`)) {
        sim.checker.fail(
          `residency (disk): ${node.id}'s delta log keeps ${entry.kind ?? 'change'} entry ${entry.seq} of ${entry.dataset}/${entry.key}, a document it does not store`,
        );
      }
    }
    after = entries[entries.length - 1]!.seq;
  }
}
