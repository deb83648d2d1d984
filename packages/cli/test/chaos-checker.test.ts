// Goal: the chaos checker can fail — each kind of violation it promises to see, it reports, with policy and tag
// changes in the history; what the history allows (an older policy still possibly in force, a release asked
// for, a write erased because a policy left its document no region) it does not report; and a clean history
// with a converged final state passes. (A checker that never fails would make every chaos run green.)
// Method: a synthetic history (policy v1, then v2 installed at 10 s, which makes `audits` global and drops the
// pii rule) and final state, in process: one clean case, then one broken fact at a time.
import t from 'tap';
import { type CheckInput, type FinalDoc, check } from './chaos/checker.js';
import { History, type Op } from './chaos/history.js';
import { type ChaosRegion, chaosRegions, markerOf } from './chaos/model.js';
import { type PolicyShape, basePolicyShape } from './chaos/policy.js';
import { type WireEvent } from './chaos/wire.js';

const nodeOf = { 'eu-west': 'eu-west-1', 'eu-central': 'eu-central-1', 'us-east': 'us-east-1' } as const satisfies Record<ChaosRegion, string>;
/** Client c writes at region c % 3, as the run places them. */
const regionOfClient = (client: number): ChaosRegion => chaosRegions[client % 3]!;
const v1 = basePolicyShape();
const v2: PolicyShape = { version: 2, placements: { ...v1.placements, audits: { kind: 'global' } }, rules: { ...v1.rules, pii: false } };

/** A session token as the daemon encodes it. */
const token = (dataset: string, key: string, node: string, counter: number) => Buffer.from(JSON.stringify([dataset, key, node, counter])).toString('base64url');
const ctx = (node: string, counter: number) => ({ vector: [[node, counter]] as Array<[string, number]>, cloud: [] });

/** Records a completed operation of client `client` at `atMs` (run time); `counter` is its dot's counter at the client's node. */
function op(
  history: History,
  client: number,
  kind: Op['kind'],
  dataset: string,
  key: string,
  args: Record<string, unknown>,
  outcome: Op['outcome'],
  atMs: number,
  counter?: number,
): Op {
  const region = regionOfClient(client);
  const recorded = history.invoke({ client, node: nodeOf[region], region, kind, dataset, key, args });
  Object.assign(recorded, { invokeMs: atMs });
  recorded.completeMs = atMs + 5;
  recorded.outcome = outcome;
  if (outcome === 'ok') {
    recorded.status = 200;
    recorded.seq = counter ?? null;
    recorded.token = counter === undefined ? null : token(dataset, key, nodeOf[region], counter);
    recorded.dot = counter === undefined ? null : [nodeOf[region], counter];
  } else if (outcome === 'fail') {
    recorded.status = 421;
  }
  return recorded;
}

type World = {
  history: History;
  docs: Map<string, Map<string, FinalDoc>>;
  lists: Map<string, Map<string, string[]>>;
  tokenReads: Map<string, Map<string, number>>;
  policyVersions: Map<string, number | null>;
  wire: WireEvent[];
  disks: Map<string, Map<string, string>>;
};

/** A copy of a document at `region`, or its absence. */
function set(w: World, region: ChaosRegion, id: string, doc: FinalDoc): void {
  w.docs.get(nodeOf[region])!.set(id, doc);
  const [dataset, key] = id.split('/') as [string, string];
  const listed = w.lists.get(nodeOf[region])!;
  const keys = (listed.get(dataset) ?? []).filter((k) => k !== key);
  listed.set(dataset, doc.status === 200 ? [...keys, key].sort() : keys);
}

/** Sets every region's copy of `id`: `holders` hold `doc`, the others answer `otherStatus`. */
function place(w: World, id: string, holders: readonly ChaosRegion[], doc: Omit<FinalDoc, 'status'> = {}, otherStatus = 404): void {
  for (const region of chaosRegions) set(w, region, id, holders.includes(region) ? { status: 200, ...doc } : { status: otherStatus });
}

/** The clean world: a history with a policy change and tags, and a final state in which every copy agrees with it. */
function world(): World {
  const history = new History();
  history.policies.set(1, v1);
  history.policies.set(2, v2);
  const w: World = {
    history,
    docs: new Map(),
    lists: new Map(),
    tokenReads: new Map(),
    policyVersions: new Map(),
    wire: [],
    disks: new Map(),
  };
  for (const region of chaosRegions) {
    w.docs.set(nodeOf[region], new Map());
    w.lists.set(nodeOf[region], new Map());
    w.tokenReads.set(nodeOf[region], new Map());
    w.policyVersions.set(nodeOf[region], 2);
    w.disks.set(nodeOf[region], new Map());
  }
  // Client 0 at eu-west: an own document, a deleted one, a quarantined one released, an audit, a pii document.
  op(history, 0, 'put', 'catalog', 'g-c0-0', { value: { c: 0, n: 1, m: markerOf(0, 1) }, marker: markerOf(0, 1) }, 'ok', 1_000, 1);
  op(history, 0, 'put', 'catalog', 'd-c0-2', { value: { c: 0, n: 2, m: markerOf(0, 2) }, marker: markerOf(0, 2) }, 'ok', 1_100, 2);
  op(history, 0, 'delete', 'catalog', 'd-c0-2', {}, 'ok', 1_200, 3);
  op(history, 0, 'put', 'audits', 'l-c0-4', { value: { m: markerOf(0, 4) }, marker: markerOf(0, 4) }, 'ok', 1_300, 4);
  op(history, 0, 'put', 'catalog', 'q-c0-5', { value: { m: markerOf(0, 5) }, tags: ['quarantine'], marker: markerOf(0, 5) }, 'ok', 2_000, 5);
  op(history, 0, 'tag', 'catalog', 'q-c0-5', { add: ['reviewed'] }, 'ok', 5_000, 6);
  // Client 2 at us-east: a pii document (us jurisdiction), a counter, a retyped document; client 1 (eu-central) a set and a refused order.
  op(history, 2, 'put', 'catalog', 'pii-c2-7', { value: { m: markerOf(2, 7) }, tags: ['pii'], marker: markerOf(2, 7) }, 'ok', 3_000, 1);
  op(history, 2, 'increment', 'visits', 'v-0', { amount: 3 }, 'ok', 3_100, 2);
  op(history, 2, 'increment', 'visits', 'v-0', { amount: 2 }, 'info', 3_200);
  op(history, 2, 'put', 'catalog', 'rt-c2-9', { value: markerOf(2, 9), type: 'lww', marker: markerOf(2, 9) }, 'ok', 3_300, 3);
  op(history, 2, 'delete', 'catalog', 'rt-c2-9', {}, 'ok', 3_400, 4);
  op(history, 2, 'add', 'catalog', 'rt-c2-9', { element: markerOf(2, 11), type: 'set', marker: markerOf(2, 11) }, 'ok', 3_500, 5);
  op(history, 1, 'add', 'carts', 'cart-0', { element: markerOf(1, 1), marker: markerOf(1, 1) }, 'ok', 1_000, 1);
  op(history, 1, 'put', 'orders', 'o-c1-5', { value: { m: markerOf(1, 5) }, marker: markerOf(1, 5) }, 'fail', 1_500);
  // v2 installed on eu-west at 10 s; samples show every node on v1 before, v2 after.
  const install = history.invoke({ client: -1, node: 'eu-west-1', region: 'eu-west', kind: 'policy', dataset: '', key: '', args: { version: 2 } });
  Object.assign(install, { invokeMs: 10_000, completeMs: 10_050, outcome: 'ok', status: 200 });
  for (const node of Object.values(nodeOf)) {
    history.samples.push({
      node,
      incarnation: 0,
      atMs: 1_000,
      answeredAtMs: 1_010,
      policyVersion: 1,
      lastSeq: node === 'eu-west-1' ? 6 : 5,
      cursors: { x: 2 },
      catchUps: 0,
    });
    history.samples.push({ node, incarnation: 0, atMs: 20_000, answeredAtMs: 20_010, policyVersion: 2, lastSeq: 7, cursors: { x: 3 }, catchUps: 0 });
  }
  // The final state under v2: audits global (the eu-west audit backfilled everywhere), pii rule gone.
  place(w, 'catalog/g-c0-0', chaosRegions, {
    type: 'map',
    value: { c: 0, n: 1, m: markerOf(0, 1) },
    context: ctx('eu-west-1', 1),
    tags: [],
    origin: 'eu-west',
  });
  place(w, 'catalog/d-c0-2', []);
  for (const region of chaosRegions) for (const counter of [2, 3]) w.tokenReads.get(nodeOf[region])!.set(token('catalog', 'd-c0-2', 'eu-west-1', counter), 404);
  place(w, 'audits/l-c0-4', chaosRegions, { type: 'map', value: { m: markerOf(0, 4) }, context: ctx('eu-west-1', 4), tags: [], origin: 'eu-west' });
  place(w, 'catalog/q-c0-5', chaosRegions, {
    type: 'map',
    value: { m: markerOf(0, 5) },
    context: ctx('eu-west-1', 6),
    tags: ['quarantine', 'reviewed'],
    origin: 'eu-west',
  });
  place(w, 'catalog/pii-c2-7', chaosRegions, { type: 'map', value: { m: markerOf(2, 7) }, context: ctx('us-east-1', 1), tags: ['pii'], origin: 'us-east' });
  place(w, 'visits/v-0', chaosRegions, { type: 'counter', value: 5, context: ctx('us-east-1', 2), tags: [], origin: 'us-east' });
  place(w, 'catalog/rt-c2-9', chaosRegions, { type: 'set', value: [markerOf(2, 11)], context: ctx('us-east-1', 5), tags: [], origin: 'us-east' });
  place(w, 'carts/cart-0', chaosRegions, { type: 'set', value: [markerOf(1, 1)], context: ctx('eu-central-1', 1), tags: [], origin: 'eu-central' });
  place(w, 'orders/o-c1-5', [], {});
  // What crossed the wire and lies on the disks, all of it allowed.
  w.wire.push({ marker: markerOf(0, 1), region: 'us-east', from: 'eu-west-1', link: 'eu-west-1>us-east-1', sentAtMs: 1_020 });
  w.wire.push({ marker: markerOf(0, 5), region: 'us-east', from: 'eu-west-1', link: 'eu-west-1>us-east-1', sentAtMs: 5_020 });
  w.wire.push({ marker: markerOf(2, 7), region: 'eu-west', from: 'us-east-1', link: 'eu-west-1>us-east-1', sentAtMs: 22_000 });
  for (const region of chaosRegions) w.disks.get(nodeOf[region])!.set(markerOf(0, 4), `/data/${region}/000005.ldb`);
  return w;
}

function run(w: World) {
  return check({
    history: w.history,
    final: { docs: w.docs, lists: w.lists, tokenReads: w.tokenReads, policyVersions: w.policyVersions },
    nodeOf,
    regionOfClient,
    wire: w.wire,
    disks: w.disks,
  } satisfies CheckInput);
}

t.test('a clean history and a converged final state pass', async (t) => {
  const result = run(world());
  t.same(result.violations, []);
  for (const what of [
    'lost writes: acknowledged dots checked',
    'convergence: documents',
    'residency: marker sightings on the wire judged',
    'residency: markers on disk judged',
    'values: single-writer documents',
  ]) {
    t.ok(result.checked[what]! > 0, `checked ${what}`);
  }
});

t.test('every kind of violation is reported', async (t) => {
  const doc = (value: unknown, node: string, counter: number, tags: string[] = [], origin = 'eu-west', type = 'map'): Omit<FinalDoc, 'status'> => ({
    type,
    value,
    context: ctx(node, counter),
    tags,
    origin,
  });
  const cases: Array<[string, RegExp, (w: World) => void]> = [
    [
      'a copy lacks an acknowledged write',
      /^lost write: us-east's catalog\/g-c0-0 lacks/,
      (w) => {
        set(w, 'us-east', 'catalog/g-c0-0', { status: 200, ...doc({ c: 0, n: 1, m: markerOf(0, 1) }, 'eu-west-1', 0) });
      },
    ],
    [
      'copies differ in value',
      /^divergence: catalog\/g-c0-0 differs/,
      (w) => {
        set(w, 'eu-central', 'catalog/g-c0-0', { status: 200, ...doc({ c: 0, n: 1, m: markerOf(0, 1), x: 1 }, 'eu-west-1', 1) });
      },
    ],
    [
      'copies disagree on a placement fact (tags)',
      /^divergence: the copies of catalog\/q-c0-5 disagree on its placement facts/,
      (w) => {
        set(w, 'us-east', 'catalog/q-c0-5', { status: 200, ...doc({ m: markerOf(0, 5) }, 'eu-west-1', 6, ['quarantine']) });
      },
    ],
    [
      'a copy keeps a tag its single writer removed, and so a document it may not hold',
      /^residency: us-east (lists|answers 200 for) catalog\/pii-c0-8, which it may not hold/,
      (w) => {
        // eu-west tagged pii-c0-8 shared (it went everywhere), then removed the tag: us-east must drop its copy.
        w.history.policies.set(2, { ...v2, rules: { ...v2.rules, pii: true } });
        op(w.history, 0, 'put', 'catalog', 'pii-c0-8', { value: { m: markerOf(0, 8) }, tags: ['pii', 'shared'], marker: markerOf(0, 8) }, 'ok', 3_000, 7);
        op(w.history, 0, 'tag', 'catalog', 'pii-c0-8', { remove: ['shared'] }, 'ok', 4_000, 8);
        place(w, 'catalog/pii-c0-8', ['eu-west', 'eu-central'], doc({ m: markerOf(0, 8) }, 'eu-west-1', 8, ['pii']));
        set(w, 'us-east', 'catalog/pii-c0-8', { status: 200, ...doc({ m: markerOf(0, 8) }, 'eu-west-1', 7, ['pii', 'shared']) });
        place(w, 'catalog/pii-c2-7', ['us-east'], doc({ m: markerOf(2, 7) }, 'us-east-1', 1, ['pii'], 'us-east'));
        w.wire.pop();
      },
    ],
    [
      'copies disagree on a placement fact (origin)',
      /^divergence: the copies of visits\/v-0 disagree/,
      (w) => {
        set(w, 'eu-west', 'visits/v-0', { status: 200, ...doc(5, 'us-east-1', 2, [], 'eu-west', 'counter') });
      },
    ],
    [
      'an origin that never wrote the document',
      /^facts: catalog\/pii-c2-7 has origin eu-central/,
      (w) => {
        place(w, 'catalog/pii-c2-7', chaosRegions, doc({ m: markerOf(2, 7) }, 'us-east-1', 1, ['pii'], 'eu-central'));
      },
    ],
    [
      'the nodes end on different policy versions',
      /^divergence: the nodes end on different policy versions/,
      (w) => {
        w.policyVersions.set('us-east-1', 1);
      },
    ],
    [
      'an acknowledged policy version lost',
      /^policy: v2 was acknowledged, but the cluster ended on v1/,
      (w) => {
        for (const node of Object.values(nodeOf)) w.policyVersions.set(node, 1);
        // Under v1 audits are local and pii stays home: make the final state agree, so only the version is wrong.
        place(w, 'audits/l-c0-4', ['eu-west'], doc({ m: markerOf(0, 4) }, 'eu-west-1', 4));
        place(w, 'catalog/pii-c2-7', ['us-east'], doc({ m: markerOf(2, 7) }, 'us-east-1', 1, ['pii'], 'us-east'));
        for (const region of ['eu-central', 'us-east'] as const) w.disks.get(nodeOf[region])!.clear();
      },
    ],
    [
      "a single writer's value is not its last acknowledged one",
      /^value: catalog\/g-c0-0 at eu-west/,
      (w) => {
        place(w, 'catalog/g-c0-0', chaosRegions, doc({ c: 0, n: 0 }, 'eu-west-1', 1));
      },
    ],
    [
      'a re-created document keeps its old type',
      /^value: catalog\/rt-c2-9 at eu-west is lww/,
      (w) => {
        place(w, 'catalog/rt-c2-9', chaosRegions, doc(markerOf(2, 9), 'us-east-1', 5, [], 'us-east', 'lww'));
      },
    ],
    [
      'a re-created document is missing',
      /^lost write: catalog\/rt-c2-9 at eu-central is absent/,
      (w) => {
        set(w, 'eu-central', 'catalog/rt-c2-9', { status: 404 });
        w.tokenReads.get('eu-central-1')!.set(token('catalog', 'rt-c2-9', 'us-east-1', 5), 404);
        w.tokenReads.get('eu-central-1')!.set(token('catalog', 'rt-c2-9', 'us-east-1', 3), 404);
      },
    ],
    [
      'a deleted document is back',
      /^resurrection: catalog\/d-c0-2 at us-east/,
      (w) => {
        set(w, 'us-east', 'catalog/d-c0-2', { status: 200, ...doc({ c: 0, n: 2, m: markerOf(0, 2) }, 'eu-west-1', 3) });
      },
    ],
    [
      "a deleted document's node never got the delete",
      /^lost write: eu-central answers 404 for catalog\/d-c0-2 and 409/,
      (w) => {
        w.tokenReads.get('eu-central-1')!.set(token('catalog', 'd-c0-2', 'eu-west-1', 3), 409);
      },
    ],
    [
      'a counter outside its possible range',
      /^value: counter visits\/v-0 at eu-west is 9/,
      (w) => {
        place(w, 'visits/v-0', chaosRegions, doc(9, 'us-east-1', 2, [], 'us-east', 'counter'));
      },
    ],
    [
      'an acknowledged set add is missing',
      /^lost write: set carts\/cart-0 at eu-west lacks/,
      (w) => {
        place(w, 'carts/cart-0', chaosRegions, doc([], 'eu-central-1', 1, [], 'eu-central', 'set'));
      },
    ],
    [
      'a region serves a document the final policy forbids it (pii without the rule, then with it)',
      /^residency: (eu-west|eu-central) (lists|answers 200 for) catalog\/pii-c2-7/,
      (w) => {
        // Restore the pii rule in v2: the eu copies of the us pii document must be gone.
        w.history.policies.set(2, { ...v2, rules: { ...v2.rules, pii: true } });
      },
    ],
    [
      'a quarantined value crossed before its release',
      /^residency: the value of catalog\/q-c0-5 written by op \d+ .* reached eu-central from eu-west-1/,
      (w) => {
        w.wire.push({ marker: markerOf(0, 5), region: 'eu-central', from: 'eu-west-1', link: 'eu-central-1>eu-west-1', sentAtMs: 3_000 });
      },
    ],
    [
      'a local value crossed while every version its sender could enforce kept it home',
      /^residency: the value of audits\/l-c0-4 .* reached us-east/,
      (w) => {
        w.wire.push({ marker: markerOf(0, 4), region: 'us-east', from: 'eu-west-1', link: 'eu-west-1>us-east-1', sentAtMs: 8_000 });
      },
    ],
    [
      'a local value crossed while a later sample shows the sender still on the version that kept it home',
      /^residency: the value of audits\/l-c0-4 .* reached us-east .* could enforce v1 and/,
      (w) => {
        // Without the sample, v2 (invoked at 10 s) may be in force at 12 s; a sample asked for at 12.5 s showing v1 rules it out.
        w.history.samples.push({
          node: 'eu-west-1',
          incarnation: 0,
          atMs: 12_500,
          answeredAtMs: 12_510,
          policyVersion: 1,
          lastSeq: 6,
          cursors: { x: 2 },
          catchUps: 0,
        });
        w.wire.push({ marker: markerOf(0, 4), region: 'us-east', from: 'eu-west-1', link: 'eu-west-1>us-east-1', sentAtMs: 12_000 });
      },
    ],
    [
      'a pii value crossed after every node enforced the version that restored the rule',
      /^residency: the value of catalog\/pii-c2-7 .* reached eu-west/,
      (w) => {
        w.history.policies.set(2, { ...v2, rules: { ...v2.rules, pii: true } });
        place(w, 'catalog/pii-c2-7', ['us-east'], doc({ m: markerOf(2, 7) }, 'us-east-1', 1, ['pii'], 'us-east'));
      },
    ],
    [
      'a value on the disk of a region the final policy forbids it',
      /^residency: the value of catalog\/pii-c2-7 written by op \d+ \(wv-c2-7\.\) is in eu-central's data files/,
      (w) => {
        w.history.policies.set(2, { ...v2, rules: { ...v2.rules, pii: true } });
        place(w, 'catalog/pii-c2-7', ['us-east'], doc({ m: markerOf(2, 7) }, 'us-east-1', 1, ['pii'], 'us-east'));
        w.wire.pop();
        w.disks.get('eu-central-1')!.set(markerOf(2, 7), '/data/eu-central/000007.ldb');
      },
    ],
    [
      'a write acknowledged where the policy forbids it',
      /^residency: eu-central acknowledged op \d+ \(put orders\/o-c1-6\)/,
      (w) => {
        op(w.history, 1, 'put', 'orders', 'o-c1-6', { value: { m: markerOf(1, 6) }, marker: markerOf(1, 6) }, 'ok', 1_600, 7);
        place(w, 'orders/o-c1-6', ['eu-west', 'us-east'], doc({ m: markerOf(1, 6) }, 'eu-central-1', 7, [], 'eu-central'));
      },
    ],
    [
      'copies that disagree on the origin, neither holding an acknowledged write',
      /^lost write: visits\/v-0's acknowledged write us-east-1:2 .* is on no copy/,
      (w) => {
        // Under a final policy that keeps visits at their origin, the copies' two origins leave no region that must hold it.
        w.history.policies.set(2, { ...v2, placements: { ...v2.placements, visits: { kind: 'local' } } });
        place(w, 'visits/v-0', ['eu-west'], doc(3, 'us-east-1', 1, [], 'eu-west', 'counter'));
        set(w, 'us-east', 'visits/v-0', { status: 200, ...doc(3, 'us-east-1', 1, [], 'us-east', 'counter') });
      },
    ],
    [
      'lastSeq went backwards without a restart',
      /^monotonicity: eu-west-1's lastSeq went from 7 to 3/,
      (w) => {
        w.history.samples.push({
          node: 'eu-west-1',
          incarnation: 0,
          atMs: 21_000,
          answeredAtMs: 21_010,
          policyVersion: 2,
          lastSeq: 3,
          cursors: { x: 3 },
          catchUps: 0,
        });
      },
    ],
    [
      'lastSeq fell below an acknowledged write after a restart',
      /^monotonicity: eu-west-1's lastSeq 3 .* is below the acknowledged seq 6/,
      (w) => {
        w.history.samples.push({
          node: 'eu-west-1',
          incarnation: 1,
          atMs: 21_000,
          answeredAtMs: 21_010,
          policyVersion: 2,
          lastSeq: 3,
          cursors: { x: 3 },
          catchUps: 0,
        });
      },
    ],
    [
      'a durable cursor went backwards',
      /^monotonicity: eu-west-1's durable cursor for x went from 3/,
      (w) => {
        w.history.samples.push({
          node: 'eu-west-1',
          incarnation: 1,
          atMs: 21_000,
          answeredAtMs: 21_010,
          policyVersion: 2,
          lastSeq: 8,
          cursors: { x: 1 },
          catchUps: 0,
        });
      },
    ],
    [
      'a daemon answered 500',
      /^refusal: op \d+ .* answered 500/,
      (w) => {
        const broken = op(w.history, 0, 'put', 'catalog', 'g-c0-1', { value: {} }, 'info', 2_000);
        broken.status = 500;
      },
    ],
    [
      'a token read answered without the write',
      /^lost write: a read of catalog\/g-c0-0 at us-east-1 with the token/,
      (w) => {
        const read = op(w.history, 2, 'read-token', 'catalog', 'g-c0-0', { token: 'x', dot: ['eu-west-1', 1] }, 'ok', 2_000);
        read.readContext = { vector: [], cloud: [] };
      },
    ],
  ];
  for (const [what, pattern, breakIt] of cases) {
    const w = world();
    breakIt(w);
    const { violations } = run(w);
    t.ok(
      violations.some((v) => pattern.test(v)),
      `${what}: ${violations.join(' / ') || 'no violation'}`,
    );
  }
});

t.test('what the history allows is not reported', async (t) => {
  const allowed: Array<[string, (w: World) => void]> = [
    [
      'a local value sent while its sender may still enforce the version that made the dataset global',
      (w) => {
        // v2 was invoked at 10 s; at 12 s no sample has shown eu-west on v2 yet, so v1 or v2 may be in force.
        w.wire.push({ marker: markerOf(0, 4), region: 'us-east', from: 'eu-west-1', link: 'eu-west-1>us-east-1', sentAtMs: 12_000 });
      },
    ],
    [
      'a pii value sent when the sender may enforce v2 (no pii rule)',
      (w) => {
        w.wire.push({ marker: markerOf(2, 7), region: 'eu-central', from: 'us-east-1', link: 'eu-central-1>us-east-1', sentAtMs: 11_000 });
      },
    ],
    [
      'a quarantined value sent after its release was asked for',
      (w) => {
        w.wire.push({ marker: markerOf(0, 5), region: 'eu-central', from: 'eu-west-1', link: 'eu-central-1>eu-west-1', sentAtMs: 5_001 });
      },
    ],
    ['an order refused (421) where it may not live', () => undefined],
    [
      'a tag change acknowledged without a change (seq null) where the document may not live',
      (w) => {
        op(w.history, 1, 'tag', 'orders', 'o-c1-5', { remove: ['blue'] }, 'ok', 1_700);
      },
    ],
  ];
  for (const [what, change] of allowed) {
    const w = world();
    change(w);
    t.same(run(w).violations, [], what);
  }
});

t.test('a write erased because a policy version left its document no region is a note, not a lost write', async (t) => {
  // v2 moves catalog to us-east only; the quarantined eu-west document may then live nowhere, and is purged.
  const w = world();
  const homeless: PolicyShape = { ...v2, placements: { ...v2.placements, catalog: { kind: 'regions', regions: ['us-east'] } } };
  w.history.policies.set(2, homeless);
  const v3: PolicyShape = { ...v2, version: 3 };
  w.history.policies.set(3, v3);
  const install = w.history.invoke({ client: -1, node: 'us-east-1', region: 'us-east', kind: 'policy', dataset: '', key: '', args: { version: 3 } });
  Object.assign(install, { invokeMs: 30_000, completeMs: 30_050, outcome: 'ok', status: 200 });
  for (const node of Object.values(nodeOf)) w.policyVersions.set(node, 3);
  place(w, 'catalog/q-c0-5', [], {});
  for (const region of chaosRegions) for (const counter of [5, 6]) w.tokenReads.get(nodeOf[region])!.set(token('catalog', 'q-c0-5', 'eu-west-1', counter), 409);
  const result = run(w);
  t.same(
    result.violations.filter((v) => v.includes('q-c0-5')),
    [],
    'no violation for the erased document',
  );
  t.ok(
    result.notes.some((note) => /^erased: catalog\/q-c0-5's acknowledged write .* under v2 no region may hold it/.test(note)),
    `a note says why: ${result.notes.join(' / ')}`,
  );
  // Without that version, the same final state is a lost write.
  const without = world();
  place(without, 'catalog/q-c0-5', [], {});
  for (const region of chaosRegions)
    for (const counter of [5, 6]) without.tokenReads.get(nodeOf[region])!.set(token('catalog', 'q-c0-5', 'eu-west-1', counter), 409);
  t.ok(
    run(without).violations.some((v) => /^lost write: .* catalog\/q-c0-5/.test(v)),
    'the same absence under policies that always give it a region is a lost write',
  );
});

t.test('a key created in two regions that may not share it is two documents; copies that must meet but share no dot are a divergence', async (t) => {
  // Both clients create race-0-0 in catalog under quarantine at once: each copy stays in its origin region.
  const quarantined = world();
  op(quarantined.history, 0, 'put', 'catalog', 'race-0-0', { value: { m: markerOf(0, 20) }, tags: ['quarantine'], marker: markerOf(0, 20) }, 'ok', 2_000, 7);
  op(quarantined.history, 2, 'put', 'catalog', 'race-0-0', { value: { m: markerOf(2, 20) }, tags: ['quarantine'], marker: markerOf(2, 20) }, 'ok', 2_000, 6);
  set(quarantined, 'eu-west', 'catalog/race-0-0', {
    status: 200,
    type: 'map',
    value: { m: markerOf(0, 20) },
    context: ctx('eu-west-1', 7),
    tags: ['quarantine'],
    origin: 'eu-west',
  });
  set(quarantined, 'us-east', 'catalog/race-0-0', {
    status: 200,
    type: 'map',
    value: { m: markerOf(2, 20) },
    context: ctx('us-east-1', 6),
    tags: ['quarantine'],
    origin: 'us-east',
  });
  set(quarantined, 'eu-central', 'catalog/race-0-0', { status: 404 });
  const result = run(quarantined);
  t.same(
    result.violations.filter((v) => v.includes('race-0-0')),
    [],
    'two quarantined lineages, each in its origin region',
  );
  t.ok(result.checked['convergence: keys with separate lineages']! >= 1, 'counted as separate lineages');

  // The same creations without the tag: catalog is global, so the copies must have met.
  const global = world();
  op(global.history, 0, 'put', 'catalog', 'race-0-0', { value: { m: markerOf(0, 20) }, marker: markerOf(0, 20) }, 'ok', 2_000, 7);
  op(global.history, 2, 'put', 'catalog', 'race-0-0', { value: { m: markerOf(2, 20) }, marker: markerOf(2, 20) }, 'ok', 2_000, 6);
  set(global, 'eu-west', 'catalog/race-0-0', {
    status: 200,
    type: 'map',
    value: { m: markerOf(0, 20) },
    context: ctx('eu-west-1', 7),
    tags: [],
    origin: 'eu-west',
  });
  set(global, 'us-east', 'catalog/race-0-0', {
    status: 200,
    type: 'map',
    value: { m: markerOf(2, 20) },
    context: ctx('us-east-1', 6),
    tags: [],
    origin: 'us-east',
  });
  set(global, 'eu-central', 'catalog/race-0-0', {
    status: 200,
    type: 'map',
    value: { m: markerOf(0, 20) },
    context: ctx('eu-west-1', 7),
    tags: [],
    origin: 'eu-west',
  });
  const violations = run(global).violations.filter((v) => v.includes('race-0-0'));
  t.ok(
    violations.some((v) => /lost write: us-east .*race-0-0/.test(v) || /lost write: us-east's catalog\/race-0-0/.test(v)),
    `us-east holds another lineage where it must hold eu-west's: ${violations.join(' / ')}`,
  );
});
