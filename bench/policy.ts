/**
 * Policy benchmark: how many placement decisions per second one core makes — the question the sender asks for
 * every delta and every peer, and the receiver again for every delta it receives.
 *
 *   npm run bench:policy                  default run (5 runs per measurement, median reported)
 *   npm run bench:policy -- --runs 9      more runs
 *   npm run bench:policy -- --quick       smaller counts, 1 run: a smoke test, not a result
 *
 * Method. The policy is the example of docs/policy.md (3 regions, 4 listed datasets, a deny, an allow and a
 * release rule) plus, for the keyed case, one rule that reads `doc.key`. The documents are built before the
 * clock starts: 4,096 facts over 5 datasets (one unlisted), 3 origins and tag sets drawn from 6 tags (with a
 * fixed seed), each asked about every region. Cases:
 *
 *   cached      `decide` on documents whose decisions are in the cache (after an untimed warm-up pass)
 *   uncached    `decideUncached`: every decision evaluates the CEL programs (the cost of a cache miss)
 *   keyed miss  `decide` under a policy whose rule reads the key, on keys never seen: a miss, an evaluation and
 *               a cache insert each, the cache rolling over its bound (the worst case of the cache)
 *   holders     `holders` (one decision per region, cached) per second
 *   parse       `parsePolicy` of the example, milliseconds
 *
 * Each loop is bounded by a decision count and by a time limit. Runs are interleaved (run 1 of every case,
 * then run 2, ...); each figure is the median of the runs with the min–max beside it. The target (≥ 1M cached
 * decisions/s) is reported as PASS or BELOW and never fails the process.
 */
import os from 'node:os';
import { type DocFacts, type Policy, parsePolicy } from '@tessera/core';
import { type Spread, formatRange, machineInfo, parseBenchArgs, spread, table } from './lib.js';
import { examplePolicyText } from '../packages/core/test/helpers/policy.js';

const usage = 'usage: npm run bench:policy -- [--runs N] [--quick]';
const runsDefault = 5;
const runsMax = 50;
/** Distinct documents asked about. */
const docsCount = 4_096;
/** A loop stops after this long even if its count is not reached. */
const loopMsMax = 5_000;
/** Target (reported, never enforced). */
const targetCachedPerSecondMin = 1_000_000;

interface Limits {
  readonly cachedDecisions: number;
  readonly uncachedDecisions: number;
  readonly keyedDecisions: number;
  readonly holdersCalls: number;
  readonly parses: number;
}
const limitsFull: Limits = { cachedDecisions: 5_000_000, uncachedDecisions: 300_000, keyedDecisions: 300_000, holdersCalls: 1_000_000, parses: 200 };
const limitsQuick: Limits = { cachedDecisions: 500_000, uncachedDecisions: 30_000, keyedDecisions: 30_000, holdersCalls: 100_000, parses: 20 };

const policyText = examplePolicyText;
const keyedRule = `  - name: test keys stay in europe
    deny: "doc.key.startsWith('test-') && target.jurisdiction != 'eu'"
`;

/** A small deterministic generator (mulberry32): the same documents on every run and machine. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function documents(count: number, keyPrefix: string): DocFacts[] {
  const next = generator(42);
  const datasets = ['catalog', 'profiles', 'orders', 'audits', 'visits'];
  const origins = ['eu-west', 'eu-central', 'us-east'];
  const tagPool = ['pii', 'shared', 'quarantine', 'reviewed', 'vip', 'archived'];
  return Array.from({ length: count }, (_, i) => ({
    dataset: datasets[Math.floor(next() * datasets.length)]!,
    key: `${keyPrefix}${i}`,
    tags: tagPool.filter(() => next() < 0.2).sort(),
    origin: origins[Math.floor(next() * origins.length)]!,
  }));
}

/** Runs `step(i)` up to `count` times or `loopMsMax`; returns operations per second. */
function rate(count: number, step: (i: number) => number): { perSecond: number; done: number; sink: number } {
  let sink = 0;
  let done = 0;
  const started = process.hrtime.bigint();
  const deadline = started + BigInt(loopMsMax) * 1_000_000n;
  // Check the clock every 1,024 steps: reading it costs about as much as a cached decision.
  while (done < count) {
    const batchEnd = Math.min(count, done + 1_024);
    for (; done < batchEnd; done++) sink += step(done);
    if (process.hrtime.bigint() > deadline) break;
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { perSecond: done / seconds, done, sink };
}

interface Sample {
  readonly case: string;
  readonly perSecond: number;
  readonly cutShort: boolean;
}

function main(): void {
  const args = parseBenchArgs(process.argv.slice(2), usage, {}, { default: runsDefault, max: runsMax });
  const limits = args.quick ? limitsQuick : limitsFull;
  const machine = machineInfo(os.tmpdir());
  const startedAt = new Date();
  const policy = parsePolicy(policyText, 'policy.yaml');
  const regions = policy.regionNames;
  const docs = documents(docsCount, 'k');
  const pairsCount = docs.length * regions.length;
  const decideAt = (target: Policy, list: readonly DocFacts[], i: number): number =>
    target.decide(list[Math.floor(i / regions.length) % list.length]!, regions[i % regions.length]!).allow ? 1 : 0;

  // Warm-up, untimed: fills the cache and lets V8 optimise every path.
  for (let i = 0; i < pairsCount; i++) decideAt(policy, docs, i);
  for (let i = 0; i < 20_000; i++) policy.decideUncached(docs[i % docs.length]!, regions[i % regions.length]!);
  const warmKeyed = parsePolicy(policyText + keyedRule, 'policy.yaml');
  for (let i = 0; i < 20_000; i++) decideAt(warmKeyed, docs, i);

  const samples: Sample[] = [];
  let sink = 0;
  for (let run = 0; run < args.runs; run++) {
    process.stderr.write(`run ${run + 1}/${args.runs}\n`);
    const cached = rate(limits.cachedDecisions, (i) => decideAt(policy, docs, i));
    const uncached = rate(limits.uncachedDecisions, (i) =>
      policy.decideUncached(docs[Math.floor(i / regions.length) % docs.length]!, regions[i % regions.length]!).allow ? 1 : 0,
    );
    // Fresh keys for every run: each decision misses.
    const keyed = parsePolicy(policyText + keyedRule, 'policy.yaml');
    const keyedDocs = documents(Math.ceil(limits.keyedDecisions / regions.length), `test-${run}-`);
    const keyedMiss = rate(limits.keyedDecisions, (i) => decideAt(keyed, keyedDocs, i));
    const holders = rate(limits.holdersCalls, (i) => policy.holders(docs[i % docs.length]!).length);
    const parse = rate(limits.parses, () => parsePolicy(policyText, 'policy.yaml').version);
    sink += cached.sink + uncached.sink + keyedMiss.sink + holders.sink + parse.sink;
    samples.push(
      { case: 'cached', perSecond: cached.perSecond, cutShort: cached.done < limits.cachedDecisions },
      { case: 'uncached', perSecond: uncached.perSecond, cutShort: uncached.done < limits.uncachedDecisions },
      { case: 'keyed miss', perSecond: keyedMiss.perSecond, cutShort: keyedMiss.done < limits.keyedDecisions },
      { case: 'holders', perSecond: holders.perSecond, cutShort: holders.done < limits.holdersCalls },
      { case: 'parse', perSecond: parse.perSecond, cutShort: parse.done < limits.parses },
    );
  }

  const summary = (name: string): Spread & { cutShort: boolean } => {
    const mine = samples.filter((sample) => sample.case === name);
    return { ...spread(mine.map((sample) => sample.perSecond)), cutShort: mine.some((sample) => sample.cutShort) };
  };
  const count = (n: number) => Math.round(n).toLocaleString('en-US');
  const rows: string[][] = [];
  const what: Record<string, string> = {
    cached: 'decisions/s, decide() answered from the cache',
    uncached: 'decisions/s, decideUncached(): CEL evaluated every time',
    'keyed miss': 'decisions/s, decide() on unseen keys, a rule reads doc.key',
    holders: `holders() calls/s (${regions.length} cached decisions each)`,
  };
  for (const name of Object.keys(what)) {
    const s = summary(name);
    rows.push([name, `${count(s.median)}${s.cutShort ? ' *' : ''}`, formatRange(s, count), what[name]!]);
  }
  const parse = summary('parse');
  const ms = (perSecond: number) => (1_000 / perSecond).toFixed(2);
  rows.push(['parse', ms(parse.median), `${ms(parse.max)}–${ms(parse.min)}`, 'ms per parsePolicy() of the example (YAML, checks, CEL compile)']);
  const cachedMedian = summary('cached').median;
  console.log(
    [
      '# Tessera policy benchmark',
      '',
      `cpu          ${machine.cpuModel}`,
      `cores        ${machine.coresCount} (the benchmark uses one)`,
      `memory       ${(machine.memoryBytesTotal / 2 ** 30).toFixed(1)} GiB`,
      `node         ${machine.node}`,
      `os           ${machine.os} (${machine.osVersion})`,
      `date         ${startedAt.toISOString()}`,
      `load (1 min) ${machine.loadAverage1m.toFixed(2)} at start`,
      '',
      `runs         ${args.runs}${args.quick ? ' (--quick: smaller counts; a smoke test, not a result)' : ''}; each figure is the median of the runs, min–max beside it`,
      `documents    ${docsCount} facts × ${regions.length} regions; 5 datasets (1 unlisted), 3 origins, tags from 6 (each with probability 0.2)`,
      `bounds       each loop stops at its count or after ${loopMsMax / 1_000} s (marked *)`,
      '',
      table(['case', 'median', 'min–max', 'unit'], rows, [false, true, true, false]),
      '',
      `target: cached decisions ≥ ${count(targetCachedPerSecondMin)}/s: ${count(cachedMedian)}/s ${cachedMedian >= targetCachedPerSecondMin ? 'PASS' : 'BELOW'}`,
      `(checksum ${sink})`,
    ].join('\n'),
  );
}

main();
