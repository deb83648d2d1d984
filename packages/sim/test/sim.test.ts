// Goal: the invariants of DESIGN.md §8 hold under injected faults — no lost acknowledged write, convergence of
// every allowed copy, residency on the wire and on disk, idempotent replay, monotonic sequence numbers,
// cursors and frontiers, no resurrected deletes.
// Method: the deterministic simulation (packages/sim) of the code that ships: real replicas over a simulated
// disk and real link drivers over a simulated network and clock; phase one injects every fault (crashes, also
// in the middle of storage writes, partitions, message loss and reordering, clock skew, policy and tag
// changes), phase two heals and must converge. A fixed list of seeds — each once failed and was fixed — runs
// every time, and sim-fresh.test.ts runs seeds no run has tried. SIM_SEED=S (with SIM_STEPS, SIM_NODES,
// SIM_WITHOUT) runs one seed instead: that is how a failure printed here is reproduced.
import t from 'tap';
import { runSimulation } from '@tessera/sim';

/**
 * Seeds that each exposed a bug (the note says which): stuck handovers behind a refusal (10, 57, 85),
 * a stale copy's sender never told the origin (107), purge notices left on disk (1017, 1061), replaying a
 * notice to its author (1073), a resurrected delete (94), a run that drained mid-batch (2065), judging cut by a
 * crash (2077), a handover waiting for a region that must drop the copy (2080), a notice lagging a later
 * quarantine (3044), a batch judged before a local tag change (3136), a copy given up to a region that had
 * refused it as stale (195218454), a fragment that lost the quarantine every copy that saw it had purged
 * (10179), a delete after a purge reusing a dot (10260), a state joined at a third node never sent on
 * (10304), a handover held for good by a refusal made under an older policy (30280), and the first seeds of the first round (4, 6).
 */
export const regressionSeeds = [4, 6, 10, 57, 85, 94, 107, 1017, 1061, 1073, 2065, 2077, 2080, 3044, 3136, 10179, 10260, 10304, 30280, 195218454];

const envSeed = process.env.SIM_SEED;
const seeds = envSeed === undefined ? regressionSeeds : [Number(envSeed)];
const steps = process.env.SIM_STEPS === undefined ? undefined : Number(process.env.SIM_STEPS);
const nodes = process.env.SIM_NODES === undefined ? undefined : Number(process.env.SIM_NODES);
const faults = Object.fromEntries(
  (process.env.SIM_WITHOUT ?? '')
    .split(',')
    .filter((name) => name !== '')
    .map((name) => [name, false]),
);

t.setTimeout(600_000);
for (const seed of seeds) {
  t.test(`sim: seed ${seed}, every fault`, async (t) => {
    const result = await runSimulation({ seed, steps, nodes, faults });
    t.ok(
      result.ok,
      result.ok ? `seed ${seed}: ${result.stats.writesAcknowledged} acknowledged writes, converged ${result.convergedAfterMs} ms after healing` : result.report,
    );
    t.ok(result.convergedAfterMs !== null, `seed ${seed} converged within the bound; reproduce: ${result.reproduce}`);
    t.ok(result.stats.writesAcknowledged > 0, `seed ${seed} acknowledged writes (a run that writes nothing checks nothing)`);
  });
}
