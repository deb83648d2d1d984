/**
 * `npm run sim -- [--seed S | --seeds N [--from S]] [--steps N] [--nodes N] [--without faults] [--trace]`: runs simulations and
 * prints one line per seed and a summary; a failing seed prints its report and the command that reproduces
 * it. Exits 1 if any seed failed.
 */
import { type DocState, docFacts, docValue } from '@tessera/core';
import { type FaultOptions, allFaults, runSimulation, stepsDefault } from './simulation.js';

/** A copy as `--dump` prints it: type, value, facts, presence, context. */
function describeState(state: DocState): string {
  const facts = docFacts('', '', state);
  return JSON.stringify({
    type: state.type,
    value: docValue(state),
    origin: facts.origin,
    tags: facts.tags,
    live: state.live,
    ctx: state.ctx.toJSON(),
    typed: state.typed,
    others: [...(state.others?.keys() ?? [])],
  });
}

interface CliOptions {
  seeds: number[];
  steps: number | undefined;
  nodes: number | undefined;
  trace: boolean;
  linkClock: 'monotonic' | 'wall';
  without: Array<keyof FaultOptions>;
  dump: string | null;
}

function parse(argv: readonly string[]): CliOptions {
  let seed: number | undefined;
  let count: number | undefined;
  let from = 1;
  const out: CliOptions = { seeds: [], steps: undefined, nodes: undefined, trace: false, linkClock: 'monotonic', without: [], dump: null };
  const int = (name: string, text: string | undefined): number => {
    const value = Number(text);
    if (text === undefined || !Number.isSafeInteger(value) || value < 0) throw new Error(`${name} needs a non-negative integer, got ${JSON.stringify(text)}`);
    return value;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    switch (arg) {
      case '--seed':
        seed = int(arg, argv[++i]);
        break;
      case '--seeds':
        count = int(arg, argv[++i]);
        break;
      case '--from':
        from = int(arg, argv[++i]);
        break;
      case '--steps':
        out.steps = int(arg, argv[++i]);
        break;
      case '--nodes':
        out.nodes = int(arg, argv[++i]);
        break;
      case '--trace':
        out.trace = true;
        break;
      case '--dump':
        out.dump = argv[++i] ?? null;
        break;
      case '--without':
        for (const name of (argv[++i] ?? '').split(',')) {
          if (!(name in allFaults)) throw new Error(`--without takes fault names (${Object.keys(allFaults).join(', ')}), got ${JSON.stringify(name)}`);
          out.without.push(name as keyof FaultOptions);
        }
        break;
      case '--wall-link-clock':
        out.linkClock = 'wall';
        break;
      case '--help':
        process.stdout.write(
          'usage: npm run sim -- [--seed S | --seeds N [--from S]] [--steps N] [--nodes 3..5] [--without fault,…] [--trace] [--dump dataset/key]\n',
        );
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${JSON.stringify(arg)} (try --help)`);
    }
  }
  if (seed !== undefined) out.seeds = [seed];
  else out.seeds = Array.from({ length: count ?? 20 }, (_, i) => from + i);
  return out;
}

async function main(): Promise<number> {
  const options = parse(process.argv.slice(2));
  const failed: number[] = [];
  const startedAt = performance.now();
  for (const seed of options.seeds) {
    currentSeed = seed;
    const t0 = performance.now();
    const result = await runSimulation({
      seed,
      steps: options.steps,
      nodes: options.nodes,
      linkClock: options.linkClock,
      faults: Object.fromEntries(options.without.map((name) => [name, false])),
      ...(options.trace ? { trace: (line: string) => process.stdout.write(`${line}\n`) } : {}),
      ...(options.dump === null
        ? {}
        : {
            onFinish: (states: ReadonlyMap<string, ReadonlyMap<string, DocState>>) => {
              for (const [node, state] of states.get(options.dump!) ?? []) process.stdout.write(`${node}: ${describeState(state)}\n`);
            },
          }),
    });
    const ms = Math.round(performance.now() - t0);
    const s = result.stats;
    process.stdout.write(
      `seed ${seed}: ${result.ok ? 'ok  ' : 'FAIL'} nodes ${result.nodes} steps ${result.steps} acked ${s.writesAcknowledged} crashes ${s.crashes} (mid-op ${s.midOpCrashes}) partitions ${s.partitions} policies ${s.policyVersions} events ${result.events} converged ${result.convergedAfterMs === null ? '-' : `${result.convergedAfterMs} ms`} digest ${result.digest} (${ms} ms real)\n`,
    );
    if (!result.ok) {
      failed.push(seed);
      process.stdout.write(`${result.report}\n`);
    }
  }
  const seconds = ((performance.now() - startedAt) / 1000).toFixed(1);
  process.stdout.write(
    `\n${options.seeds.length - failed.length} passed, ${failed.length} failed (${options.seeds.length} seeds, steps ${options.steps ?? stepsDefault}, ${seconds} s)\n`,
  );
  if (failed.length > 0) process.stdout.write(`failed seeds: ${failed.join(' ')}\n`);
  return failed.length === 0 ? 0 : 1;
}

// The event loop drained while a run still awaited something: a promise nothing will ever settle (a deadlock
// in the code under test or in the harness). Say so, instead of exiting silently with status 0.
let currentSeed: number | null = null;
process.on('beforeExit', () => {
  process.stderr.write(`the run of seed ${currentSeed ?? '?'} stopped with work pending: a promise nothing settles (deadlock)\n`);
  process.exit(2);
});

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`${error.stack ?? String(error)}\n`);
    process.exit(2);
  },
);
