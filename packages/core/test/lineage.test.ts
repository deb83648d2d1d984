// Goal: the facts that decide placement — origin, type and tags — are state like any other: a join of
// copies is commutative, associative and idempotent also when regions create the same key concurrently,
// delete it and re-create it with another type, and tag and untag it; every copy that received the same
// deltas reads the same facts; the origin is the earliest creating write's region, fixed for the lineage.
// Method: fast-check histories at three nodes in three regions with skewed clocks: writes of a random type
// (a write to a document that does not exist creates it, possibly with another type), deletes, tag changes,
// and deliveries of deltas out of order and twice. States are compared by their canonical bytes.
import t from 'tap';
import fc from 'fast-check';
import {
  type CrdtTypeName,
  type DocState,
  type Hlc,
  HlcClock,
  crdtType,
  docExists,
  docFacts,
  docHead,
  emptyDoc,
  joinDocs,
  mutate,
  operationMutator,
  remove,
} from '@tessera/core';
import { expectSameBytes, shuffledWithDuplicates, deliveryOrderArb } from './helpers/history.js';

const regions = ['eu-west', 'us-east', 'ap-south'] as const;
const nodes = ['n1', 'n2', 'n3'] as const;
const types: readonly CrdtTypeName[] = ['map', 'lww', 'counter', 'set', 'mv'];

type Step =
  | { readonly kind: 'write'; readonly node: number; readonly type: CrdtTypeName; readonly stepMs: number; readonly value: number }
  | { readonly kind: 'delete'; readonly node: number; readonly stepMs: number }
  | { readonly kind: 'tag'; readonly node: number; readonly add: readonly string[]; readonly remove: readonly string[]; readonly stepMs: number }
  | { readonly kind: 'deliver'; readonly to: number; readonly pick: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant('write' as const), node: fc.nat(2), type: fc.constantFrom(...types), stepMs: fc.nat(2_000), value: fc.nat(9) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), node: fc.nat(2), stepMs: fc.nat(2_000) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('tag' as const),
      node: fc.nat(2),
      stepMs: fc.nat(2_000),
      add: fc.subarray(['quarantine', 'pii', 'reviewed']),
      remove: fc.subarray(['quarantine', 'pii', 'reviewed']),
    }),
  },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('deliver' as const), to: fc.nat(2), pick: fc.nat() }) },
);

const historyArb = fc.record({
  offsets: fc.array(fc.integer({ min: -600_000, max: 600_000 }), { minLength: 3, maxLength: 3 }),
  steps: fc.array(stepArb, { minLength: 4, maxLength: 40 }),
});

interface Delta {
  readonly origin: number;
  readonly delta: DocState;
  readonly hlc: Hlc;
  readonly creating: boolean;
}

function bodyWrite(type: CrdtTypeName, value: number) {
  switch (type) {
    case 'map':
      return operationMutator(type, { op: 'set', path: ['f'], value }, 'test/map');
    case 'counter':
      return operationMutator(type, { op: 'increment', amount: value + 1 }, 'test/counter');
    case 'set':
      return operationMutator(type, { op: 'add', element: value }, 'test/set');
    default:
      return operationMutator(type, { op: 'put', value }, `test/${type}`);
  }
}

function play(history: { readonly offsets: readonly number[]; readonly steps: readonly Step[] }) {
  const states: DocState[] = nodes.map(() => emptyDoc('map'));
  const clocks = nodes.map(() => new HlcClock());
  const deltas: Delta[] = [];
  let wallMs = 1_700_000_000_000;
  for (const step of history.steps) {
    if (step.kind === 'deliver') {
      if (deltas.length === 0) continue;
      const { delta, hlc } = deltas[step.pick % deltas.length]!;
      states[step.to] = joinDocs(states[step.to]!, delta).state;
      clocks[step.to]!.observe(hlc);
      continue;
    }
    wallMs += step.stepMs;
    const i = step.node;
    const doc = states[i]!;
    const hlc = clocks[i]!.now(wallMs + history.offsets[i]!);
    let result;
    let creating = false;
    if (step.kind === 'write') {
      // A write of another type than a document that exists is refused (ERR_TYPE_MISMATCH in the store).
      if (docExists(doc) && doc.type !== step.type) continue;
      creating = !docExists(doc);
      result = mutate(doc, nodes[i]!, hlc, bodyWrite(step.type, step.value), undefined, { region: regions[i]!, type: step.type });
    } else if (step.kind === 'delete') {
      result = remove(doc, nodes[i]!, hlc, { keepTags: true });
    } else {
      if (!docExists(doc)) continue;
      result = mutate(doc, nodes[i]!, hlc, null, { add: step.add, remove: step.remove.filter((tag) => !step.add.includes(tag)) }, { region: regions[i]! });
    }
    if (result === null) continue;
    states[i] = result.state;
    deltas.push({ origin: i, delta: result.delta, hlc, creating });
  }
  return { states, deltas };
}

const join = (a: DocState, b: DocState) => joinDocs(a, b).state;

t.test('copies with concurrent creations, type changes and tags: the join is a semilattice', async (t) => {
  let typeChanges = 0;
  fc.assert(
    fc.property(historyArb, (history) => {
      const { states, deltas } = play(history);
      if (new Set(deltas.filter((d) => d.creating).map((d) => d.delta.type)).size > 1) typeChanges++;
      for (const a of [...states, ...deltas.map((d) => d.delta)]) {
        expectSameBytes(join(a, a), a, 'idempotent');
        for (const b of states) expectSameBytes(join(a, b), join(b, a), 'commutative');
      }
      const [s1, s2, s3] = states as [DocState, DocState, DocState];
      expectSameBytes(join(join(s1, s2), s3), join(s1, join(s2, s3)), 'associative');
      expectSameBytes(join(join(s3, s1), s2), join(s3, join(s1, s2)), 'associative');
    }),
    { numRuns: 300 },
  );
  t.ok(typeChanges > 30, `${typeChanges} of 300 histories created the document with more than one type`);
});

t.test('every delivery order of the deltas gives the same state and the same facts', async (t) => {
  fc.assert(
    fc.property(historyArb, deliveryOrderArb, deliveryOrderArb, (history, orderA, orderB) => {
      const { deltas } = play(history);
      const all = deltas.map((d) => d.delta);
      const a = shuffledWithDuplicates(all, orderA.randoms, orderA.duplicates).reduce(join, emptyDoc('lww'));
      const b = shuffledWithDuplicates(all, orderB.randoms, orderB.duplicates).reduce(join, emptyDoc('lww'));
      expectSameBytes(a, b, 'same deltas, different order');
      const facts = (doc: DocState) => JSON.stringify({ ...docFacts('d', 'k', doc), type: doc.type });
      if (facts(a) !== facts(b)) throw new Error(`facts differ: ${facts(a)} / ${facts(b)}`);
    }),
    { numRuns: 300 },
  );
  t.pass('converged');
});

t.test('the origin is the earliest creating write, and the type the latest creation', async (t) => {
  let concurrentCreations = 0;
  fc.assert(
    fc.property(historyArb, (history) => {
      const { deltas } = play(history);
      const creations = deltas.filter((d) => d.creating);
      if (creations.length === 0) return;
      if (new Set(creations.map((c) => c.origin)).size > 1) concurrentCreations++;
      const final = deltas.map((d) => d.delta).reduce(join, emptyDoc('map'));
      const first = final.origin!;
      // The earliest stamp any creation carried: a re-creation that saw the document keeps its stamp.
      const stamps = creations.map((c) => c.delta.origin!).sort((x, y) => x.hlc.ms - y.hlc.ms || x.hlc.c - y.hlc.c || (x.node < y.node ? -1 : 1));
      if (first.node !== stamps[0]!.node || first.region !== regions[nodes.indexOf(first.node as (typeof nodes)[number])]) {
        throw new Error(`origin ${JSON.stringify(first)}, expected ${JSON.stringify(stamps[0])}`);
      }
      const latest = creations.map((c) => c.delta.typed!).sort((x, y) => y.hlc.ms - x.hlc.ms || y.hlc.c - x.hlc.c || (x.node < y.node ? 1 : -1))[0]!;
      if (final.type !== latest.type) throw new Error(`type ${final.type}, the latest creation made ${latest.type}`);
    }),
    { numRuns: 300 },
  );
  t.ok(concurrentCreations > 20, `${concurrentCreations} histories created the document in more than one region`);
});

t.test('a head carries the facts, tag removals included, and nothing of the body', async (t) => {
  fc.assert(
    fc.property(historyArb, fc.nat(2), fc.nat(2), (history, from, to) => {
      const { states } = play(history);
      const sender = states[from]!;
      const receiver = states[to]!;
      const adopted = join(receiver, docHead(sender));
      const full = join(receiver, sender);
      const facts = (doc: DocState) => JSON.stringify(docFacts('d', 'k', doc));
      if (facts(adopted) !== facts(full)) throw new Error(`head facts ${facts(adopted)} differ from the full join's ${facts(full)}`);
      if (adopted.type !== full.type) throw new Error(`head type ${adopted.type}, full join ${full.type}`);
      // The receiver's own body entries and presence survive: the head removes none.
      const bodyOf = (doc: DocState) => JSON.stringify(crdtType(doc.type).encode(doc.body));
      if (adopted.type === receiver.type && bodyOf(adopted) !== bodyOf(receiver)) throw new Error('the head changed the body');
      if (JSON.stringify(adopted.live) !== JSON.stringify(receiver.live)) throw new Error('the head changed the presence dots');
    }),
    { numRuns: 300 },
  );
  t.pass('heads agree with full joins on the facts');
});
