/**
 * The faults phase one injects, drawn from the seed: message faults inside connections (loss, duplication,
 * reordering, latency spikes), crashes between and in the middle of operations, symmetric and one-way
 * partitions, wall-clock jumps, and new policy versions installed on one node or on every node in turn.
 */
import { type Simulation } from './simulation.js';

/** Schedules the faults of phase one (which ends at `endMs`); returns the draw of a moment inside it. */
export function scheduleFaults(sim: Simulation, endMs: number): () => number {
  const f = sim.random.faults;
  const during = () => f.int(Math.max(1, endMs - 500));
  if (sim.faults.messages) {
    const intensity = f.pick([0, 0.002, 0.01, 0.03]);
    sim.network.faults = { lossProbability: intensity, duplicateProbability: intensity, reorderProbability: intensity, spikeProbability: 0.02 };
  }
  if (sim.faults.crashes) {
    for (let i = Math.max(1, Math.round(sim.steps / 60)); i > 0; i--) {
      const node = f.pick(sim.nodes);
      const midOp = sim.faults.midOpCrashes && f.chance(0.6);
      const atWrite = f.int(3);
      sim.at(during(), `fault crash ${node.id}${midOp ? ` at write ${atWrite}` : ''}`, async () => {
        if (sim.healed || !node.alive) return;
        sim.counts.crashes++;
        if (midOp) {
          sim.traceLine(`${node.id}: crash armed at write ${atWrite} of its next operation`);
          node.armCrash(atWrite);
        } else {
          await node.crash();
        }
      });
    }
  }
  if (sim.faults.partitions) {
    for (let i = Math.max(1, Math.round(sim.steps / 50)); i > 0; i--) {
      const start = during();
      const lengthMs = 500 + f.exp(3_000);
      const oneWay = f.chance(0.4);
      const a = f.pick(sim.nodes).id;
      const others = sim.nodes.map((n) => n.id).filter((id) => id !== a);
      const side = oneWay ? [f.pick(others)] : f.sample(others, f.range(1, others.length));
      const cut: Array<[string, string]> = oneWay
        ? [[a, side[0]!]]
        : [
            ...side.flatMap(
              (b) =>
                [
                  [a, b],
                  [b, a],
                ] as Array<[string, string]>,
            ),
          ];
      sim.at(start, `fault partition ${cut.map(([x, y]) => `${x}>${y}`).join(' ')}`, () => {
        if (sim.healed) return;
        sim.counts.partitions++;
        for (const [x, y] of cut) sim.network.block(x, y);
        sim.traceLine(`partition: ${sim.network.partitions.join(' ')}`);
      });
      sim.at(start + lengthMs, 'fault partition heals', () => {
        for (const [x, y] of cut) sim.network.unblock(x, y);
      });
    }
  }
  if (sim.faults.clocks) {
    for (let i = Math.max(1, Math.round(sim.steps / 80)); i > 0; i--) {
      const node = f.pick(sim.nodes);
      const jumpMs = f.chance(0.2) ? f.pick([-3_600_000, 3_600_000]) : f.range(-60_000, 60_000);
      sim.at(during(), `fault clock ${node.id} ${jumpMs}`, () => {
        if (sim.healed) return;
        sim.counts.clockJumps++;
        sim.offsets.set(node.id, (sim.offsets.get(node.id) ?? 0) + jumpMs);
        sim.traceLine(`${node.id}: wall clock jumps ${jumpMs} ms`);
      });
    }
  }
  if (sim.faults.policyChanges) {
    const changes = f.range(1, 2);
    for (let i = 0; i < changes; i++) {
      const atMs = during();
      const onAll = f.chance(0.4);
      sim.at(atMs, 'fault policy', () => sim.changePolicy(onAll));
    }
  }
  return during;
}
