// Goal (issue 11, class 10): residency and convergence hold at the level of the embedded API alone, under a
// policy whose placement depends on tags, origins and types: three replicas in three regions that only ever
// exchange what `deltasSince`, `sendable` (and the heads it gives) and `applyDeltas` say — the same steps a
// link takes — converge on one state per document in the regions that may hold it, hold nothing else, and
// lose no acknowledged write. Type switches (delete, re-create with another type), tag changes (pii,
// quarantine, reviewed) and concurrent creations are all in the mix.
// Method: fast-check histories of writes, deletes, tag changes and pairwise deliveries in random order; then
// every pair delivers until nothing changes; the simulation's checker (the same final checks the simulation
// runs) judges the copies. Replicas run on the in-memory storage engine.
import t from 'tap';
import fc from 'fast-check';
import { type CrdtTypeName, type DocState, parsePolicy } from '@tessera/core';
import { type Replica, memoryStorage } from '@tessera/store';
import { Checker, allDocs } from '@tessera/sim';

const nodes = [
  { node: 'w1', region: 'eu-west' },
  { node: 'c1', region: 'eu-central' },
  { node: 'u1', region: 'us-east' },
] as const;

const policy = parsePolicy(
  `version: 1
regions:
  eu-west:    { jurisdiction: eu }
  eu-central: { jurisdiction: eu }
  us-east:    { jurisdiction: us }
datasets:
  notes:    { type: lww, placement: global }
  profiles: { type: map, placement: { home: doc.origin, within: jurisdiction } }
rules:
  - name: pii stays in its jurisdiction
    deny: "'pii' in doc.tags && target.jurisdiction != source.jurisdiction"
  - name: reviewed documents leave quarantine
    release: "'reviewed' in doc.tags"
`,
  'property policy',
);

const types: readonly CrdtTypeName[] = ['lww', 'map', 'counter', 'set'];
const tagNames = ['pii', 'quarantine', 'reviewed'] as const;

type Step =
  | {
      readonly kind: 'write';
      readonly at: number;
      readonly dataset: 'notes' | 'profiles';
      readonly key: number;
      readonly type: CrdtTypeName;
      readonly value: number;
      readonly tags: readonly string[] | null;
    }
  | { readonly kind: 'delete'; readonly at: number; readonly dataset: 'notes' | 'profiles'; readonly key: number }
  | {
      readonly kind: 'tag';
      readonly at: number;
      readonly dataset: 'notes' | 'profiles';
      readonly key: number;
      readonly add: readonly string[];
      readonly remove: readonly string[];
    }
  | { readonly kind: 'deliver'; readonly from: number; readonly to: number };

const datasetArb = fc.constantFrom('notes' as const, 'profiles' as const);
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      at: fc.nat(2),
      dataset: datasetArb,
      key: fc.nat(2),
      type: fc.constantFrom(...types),
      value: fc.nat(99),
      tags: fc.option(fc.subarray([...tagNames]), { freq: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(2), dataset: datasetArb, key: fc.nat(2) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('tag' as const),
      at: fc.nat(2),
      dataset: datasetArb,
      key: fc.nat(2),
      add: fc.subarray([...tagNames]),
      remove: fc.subarray([...tagNames]),
    }),
  },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('deliver' as const), from: fc.nat(2), to: fc.nat(2) }) },
);

/** A replica's view of its peers: what each acknowledged of its log. */
interface Cluster {
  readonly replicas: Replica[];
  /** cursors[from][to]: the last seq of `from`'s log that `to` took. */
  readonly cursors: number[][];
}

/** One delivery from `from` to `to`, as a link makes it. Returns whether anything was sent. */
async function deliver(cluster: Cluster, from: number, to: number): Promise<boolean> {
  if (from === to) return false;
  const source = cluster.replicas[from]!;
  const target = cluster.replicas[to]!;
  const after = Math.max(cluster.cursors[from]![to]!, source.logFloor);
  const { entries } = await source.deltasSince(after, { limit: 1_000 });
  if (entries.length === 0) return false;
  const { allowed, heads } = await source.sendable(entries, target.region);
  const headed = new Set<string>();
  const wire = entries
    .filter((entry, i) => allowed[i] && entry.origin !== target.node)
    .map((entry) => {
      const id = `${entry.dataset}\u0000${entry.key}`;
      const head =
        entry.kind === 'purge' || headed.has(id) ? undefined : [...heads.entries()].find(([doc]) => doc.endsWith(`${entry.dataset}\u0000${entry.key}`))?.[1];
      if (head !== undefined) headed.add(id);
      return head === undefined ? entry : { ...entry, head };
    });
  if (wire.length > 0) {
    const result = await target.applyDeltas(wire, { from: source.region });
    const refusedSeqs = result.refused.map((index) => wire[index]!.seq!);
    if (refusedSeqs.length > 0) await source.noteRefused(target.region, refusedSeqs);
  }
  cluster.cursors[from]![to] = entries.at(-1)!.seq;
  await settle(cluster, from);
  return true;
}

async function settle(cluster: Cluster, index: number): Promise<void> {
  const replica = cluster.replicas[index]!;
  const acknowledged = (region: string) =>
    Math.min(...nodes.map((spec, i) => (spec.region === region && i !== index ? cluster.cursors[index]![i]! : Infinity)));
  await replica.settleHandovers(acknowledged);
}

async function states(cluster: Cluster): Promise<Map<string, Map<string, DocState>>> {
  const all = new Map<string, Map<string, DocState>>();
  for (const replica of cluster.replicas) {
    for (const { dataset, key, state } of await allDocs(replica)) {
      const id = `${dataset}/${key}`;
      if (!all.has(id)) all.set(id, new Map());
      all.get(id)!.set(replica.node, state);
    }
  }
  return all;
}

async function play(steps: readonly Step[]): Promise<string[]> {
  const { Replica } = await import('@tessera/store');
  let clockMs = 1_700_000_000_000;
  const replicas = await Promise.all(
    nodes.map((spec) =>
      Replica.open({
        storage: memoryStorage(spec.node),
        node: spec.node,
        region: spec.region,
        durability: 'os',
        policy,
        peers: nodes.map(({ node, region }) => ({ node, region })),
        wallClock: () => clockMs,
      }),
    ),
  );
  const cluster: Cluster = { replicas, cursors: nodes.map(() => nodes.map(() => 0)) };
  const checker = new Checker(
    (node) => nodes.find((spec) => spec.node === node)!.region,
    nodes.map((spec) => spec.node),
  );
  try {
    for (const step of steps) {
      clockMs += 7;
      if (step.kind === 'deliver') {
        await deliver(cluster, step.from, step.to);
        continue;
      }
      const replica = replicas[step.at]!;
      const key = `k${step.key}`;
      try {
        const result =
          step.kind === 'write'
            ? await replica.operate(step.dataset, key, writeOf(step.type, step.value), { type: step.type, ...(step.tags === null ? {} : { tags: step.tags }) })
            : step.kind === 'delete'
              ? await replica.delete(step.dataset, key)
              : await replica.tag(step.dataset, key, { add: step.add, remove: step.remove.filter((tag) => !step.add.includes(tag)) });
        if (process.env.PROPERTY_TRACE !== undefined) console.log(clockMs, JSON.stringify(step), '->', JSON.stringify(result.dot));
        if (result.dot !== null) {
          const write = { node: replica.node, dataset: step.dataset, key, dot: result.dot, hlc: result.hlc, atMs: clockMs, kind: step.kind };
          if (step.kind === 'delete') checker.ackedDelete({ ...write, ctx: (await replica.state(step.dataset, key))!.ctx });
          else checker.ackedWrite(write);
        }
      } catch (error) {
        // Refused writes (a type that differs, a tag of a missing document, a region that may not hold the
        // result) are the caller's mistakes: coded 4xx, and they acknowledge nothing. Anything else is a bug.
        const status = (error as { status?: number }).status;
        if (status === undefined || status >= 500) throw error;
      }
    }
    // Heal: every pair delivers until nothing moves.
    for (let round = 0; round < 40; round++) {
      let moved = false;
      for (let from = 0; from < nodes.length; from++) for (let to = 0; to < nodes.length; to++) moved = (await deliver(cluster, from, to)) || moved;
      for (let i = 0; i < nodes.length; i++) await settle(cluster, i);
      const pending = (await Promise.all(replicas.map(async (r) => (await r.pendingHandovers()) + (await r.pendingNotices())))).reduce((a, b) => a + b, 0);
      if (!moved && pending === 0) break;
    }
    return [...checker.failures, ...checker.finalChecks(await states(cluster), policy, clockMs)];
  } finally {
    await Promise.all(replicas.map((replica) => replica.close()));
  }
}

function writeOf(type: CrdtTypeName, value: number) {
  switch (type) {
    case 'map':
      return { op: 'set' as const, path: ['f'], value };
    case 'counter':
      return { op: 'increment' as const, amount: value + 1 };
    case 'set':
      return { op: 'add' as const, element: value };
    default:
      return { op: 'put' as const, value };
  }
}

t.test('three replicas exchanging only what the API hands out converge, hold what they may, and lose nothing', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(stepArb, { minLength: 5, maxLength: 60 }), async (steps) => {
      const failures = await play(steps);
      if (failures.length > 0) throw new Error(failures.join('\n'));
    }),
    {
      numRuns: Number(process.env.PROPERTY_RUNS ?? 60),
      ...(process.env.PROPERTY_SEED === undefined ? {} : { seed: Number(process.env.PROPERTY_SEED), path: process.env.PROPERTY_PATH }),
    },
  );
  t.pass('every history converged');
});
