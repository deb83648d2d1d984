/**
 * Long chaos runs from the command line: `npm run chaos -- --seed 42 --seconds 60 --runs 10 [--clients 3]`
 * plays runs with seeds 42, 43, … one after another, never two at once (`--clients`: clients per region,
 * default 2; `--without faults,clocks,policy,tags,race,retype`: leave parts out) and prints each verdict; a failed run prints its seed, violations by class, schedule and history
 * file. Exit code 1 if any run failed. (CI runs the short one in chaos.test.ts.)
 */
import { chaosSeed } from './random.js';
import { type Omissible, omissible } from './schedule.js';
import { type HarnessT, discardHistory, failureText, runChaos } from './run.js';

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} ${process.argv[at + 1]}: expected a positive number`);
  return value;
}

const firstSeed = option('seed', chaosSeed());
const seconds = option('seconds', 60);
const runs = option('runs', 1);
const clientsPerRegion = option('clients', 2);
/** `--without policy,clocks`: parts of the run to leave out, to narrow a failing seed down. */
const withoutAt = process.argv.indexOf('--without');
const without = new Set<Omissible>();
if (withoutAt >= 0) {
  for (const part of (process.argv[withoutAt + 1] ?? '').split(',')) {
    if (!(omissible as readonly string[]).includes(part)) throw new Error(`--without ${part}: expected a comma-separated list of ${omissible.join(', ')}`);
    without.add(part as Omissible);
  }
}
/** Notes printed per run; the history file keeps them all. */
const notesMax = 30;
let failed = 0;
for (let i = 0; i < runs; i++) {
  const seed = firstSeed + i;
  const teardowns: Array<() => unknown> = [];
  const problems: string[] = [];
  const t: HarnessT = { teardown: (fn) => teardowns.push(fn), fail: (message) => problems.push(message) };
  try {
    const report = await runChaos(t, { seed, seconds, clientsPerRegion, without, log: (line) => console.log(line) });
    report.result.violations.push(...problems);
    console.log(
      `faults ${JSON.stringify(report.faults)}; ${report.policyVersions} policy versions installed; log bound ${report.settings.logEntriesMax}; ops ${JSON.stringify(report.ops)}; checked ${JSON.stringify(report.result.checked)}; phases (ms) ${JSON.stringify(report.phasesMs)}`,
    );
    for (const note of report.result.notes.slice(0, notesMax)) console.log(`note: ${note}`);
    if (report.result.notes.length > notesMax) console.log(`… ${report.result.notes.length - notesMax} more notes in ${report.historyFile}`);
    if (report.result.violations.length > 0) {
      failed++;
      console.log(failureText(report));
    } else {
      console.log(`seed ${seed}: ok (${report.acknowledgedWrites} acknowledged writes, converged ${report.convergedAfterMs} ms after healing)`);
      await discardHistory(report);
    }
  } catch (error) {
    failed++;
    console.log(`seed ${seed}: the run itself failed: ${(error as Error).stack}`);
  } finally {
    for (const fn of teardowns.reverse()) await fn();
  }
}
console.log(`${runs - failed} of ${runs} chaos runs passed`);
process.exit(failed === 0 ? 0 : 1);
