// Goal: the simulation's invariants hold on seeds no earlier run has tried (a fixed list only proves what it
// already found). Method: SIM_FRESH seeds (default 3) drawn at random on every run, each printed with the
// command that reproduces it; every fault on, the default number of steps.
import t from 'tap';
import { randomInt } from 'node:crypto';
import { runSimulation } from '@tessera/sim';

const count = process.env.SIM_FRESH === undefined ? 3 : Number(process.env.SIM_FRESH);
const seeds = Array.from({ length: count }, () => randomInt(1, 2 ** 31));
t.comment(`fresh seeds: ${seeds.join(' ')} (reproduce one with: SIM_SEED=<seed> npx tap packages/sim/test/sim.test.ts)`);

t.setTimeout(600_000);
for (const seed of seeds) {
  t.test(`sim: fresh seed ${seed}, every fault`, async (t) => {
    const result = await runSimulation({ seed });
    t.ok(
      result.ok,
      result.ok ? `seed ${seed}: ${result.stats.writesAcknowledged} acknowledged writes, converged ${result.convergedAfterMs} ms after healing` : result.report,
    );
    t.ok(result.stats.writesAcknowledged > 0, `seed ${seed} acknowledged writes`);
  });
}
