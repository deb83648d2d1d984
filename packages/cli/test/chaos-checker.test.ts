// Goal: the chaos checker can fail — each kind of violation it promises to see, it reports, and a clean
// history with a converged final state passes. (A checker that never fails would make every chaos run green.)
// Method: synthetic histories and final states, in process: one clean case, then one broken fact at a time.
import t from 'tap';
import { type CheckInput, type FinalDoc, check } from './chaos/checker.js';
import { History, type Op } from './chaos/history.js';
import { type ChaosRegion, chaosRegions } from './chaos/model.js';

const nodeOf = { 'eu-west': 'eu-west-1', 'eu-central': 'eu-central-1', 'us-east': 'us-east-1' } as const satisfies Record<ChaosRegion, string>;

/** A session token as the daemon encodes it. */
const token = (dataset: string, key: string, node: string, counter: number) => Buffer.from(JSON.stringify([dataset, key, node, counter])).toString('base64url');

/** Records a completed operation at `region`'s node. */
function op(history: History, region: ChaosRegion, client: number, kind: Op['kind'], dataset: string, key: string, args: Record<string, unknown>, outcome: Op['outcome'], counter?: number, seq?: number): Op {
  const recorded = history.invoke({ client, node: nodeOf[region], region, kind, dataset, key, args });
  recorded.completeMs = recorded.invokeMs;
  recorded.outcome = outcome;
  if (outcome === 'ok') {
    recorded.status = 200;
    recorded.seq = seq ?? counter ?? null;
    recorded.token = counter === undefined ? null : token(dataset, key, nodeOf[region], counter);
    recorded.dot = counter === undefined ? null : [nodeOf[region], counter];
  } else if (outcome === 'fail') {
    recorded.status = dataset === 'orders' ? 421 : 400;
  }
  return recorded;
}

/** The clean world: a history and a final state in which every copy agrees with it. */
function world(): { history: History; docs: Map<string, Map<string, FinalDoc>>; lists: Map<string, Map<string, string[]>>; tokenReads: Map<string, Map<string, number>> } {
  const history = new History();
  op(history, 'eu-west', 0, 'put', 'catalog', 'g-c0-0', { value: { c: 0, n: 1 } }, 'ok', 1);
  op(history, 'eu-west', 0, 'put', 'catalog', 'd-c0-2', { value: { c: 0, n: 2 } }, 'ok', 2);
  op(history, 'eu-west', 0, 'delete', 'catalog', 'd-c0-2', {}, 'ok', 3);
  op(history, 'us-east', 2, 'increment', 'visits', 'v-0', { amount: 3 }, 'ok', 1);
  op(history, 'us-east', 2, 'increment', 'visits', 'v-0', { amount: 2 }, 'info');
  op(history, 'eu-central', 1, 'add', 'carts', 'cart-0', { element: 'c1-1' }, 'ok', 1);
  op(history, 'eu-west', 0, 'put', 'audits', 'mk-loc-eu-west-c0-4', { value: { m: 'mv-loc-eu-west-c0-4' } }, 'ok', 4);
  op(history, 'eu-central', 1, 'put', 'orders', 'mk-ord-c1-5', { value: { m: 'mv-ord-c1-5' } }, 'fail');
  history.samples.push({ node: 'eu-west-1', incarnation: 0, atMs: 1, lastSeq: 4, cursors: { 'us-east-1': 2 } });
  history.samples.push({ node: 'eu-west-1', incarnation: 0, atMs: 2, lastSeq: 5, cursors: { 'us-east-1': 3 } });
  const ctx = (node: string, counter: number) => ({ vector: [[node, counter]] as Array<[string, number]>, cloud: [] });
  const docs = new Map<string, Map<string, FinalDoc>>();
  const lists = new Map<string, Map<string, string[]>>();
  const tokenReads = new Map<string, Map<string, number>>();
  for (const region of chaosRegions) {
    const node = nodeOf[region];
    const mine = new Map<string, FinalDoc>([
      ['catalog/g-c0-0', { status: 200, value: { c: 0, n: 1 }, context: ctx('eu-west-1', 1), tags: [] }],
      ['catalog/d-c0-2', { status: 404 }],
      ['visits/v-0', { status: 200, value: 5, context: ctx('us-east-1', 2), tags: [] }],
      ['carts/cart-0', { status: 200, value: ['c1-1'], context: ctx('eu-central-1', 1), tags: [] }],
      ['audits/mk-loc-eu-west-c0-4', region === 'eu-west' ? { status: 200, value: { m: 'mv-loc-eu-west-c0-4' }, context: ctx('eu-west-1', 4), tags: [] } : { status: 404 }],
      ['orders/mk-ord-c1-5', { status: region === 'eu-central' ? 421 : 404 }],
    ]);
    docs.set(node, mine);
    lists.set(node, new Map([['catalog', ['g-c0-0']], ['visits', ['v-0']], ['carts', ['cart-0']], ['audits', region === 'eu-west' ? ['mk-loc-eu-west-c0-4'] : []], ['orders', []]]));
    tokenReads.set(node, new Map([[token('catalog', 'd-c0-2', 'eu-west-1', 2), 404], [token('catalog', 'd-c0-2', 'eu-west-1', 3), 404]]));
  }
  return { history, docs, lists, tokenReads };
}

function run(w: ReturnType<typeof world>, extra: Partial<CheckInput> = {}) {
  return check({ history: w.history, final: { docs: w.docs, lists: w.lists, tokenReads: w.tokenReads }, nodeOf, wireForbidden: [], wireQuarantine: [], diskFindings: [], ...extra });
}

t.test('a clean history and a converged final state pass', async (t) => {
  const result = run(world());
  t.same(result.violations, []);
  t.ok(result.checked['lost writes: acknowledged dots checked']! > 0 && result.checked['convergence: documents']! > 0);
});

t.test('every kind of violation is reported', async (t) => {
  const cases: Array<[string, RegExp, (w: ReturnType<typeof world>) => Partial<CheckInput> | void]> = [
    ['a copy lacks an acknowledged write', /^lost write: us-east's catalog\/g-c0-0 lacks/, (w) => {
      w.docs.get('us-east-1')!.set('catalog/g-c0-0', { status: 200, value: { c: 0, n: 1 }, context: { vector: [], cloud: [] }, tags: [] });
    }],
    ['copies differ', /^divergence: catalog\/g-c0-0/, (w) => {
      w.docs.get('eu-central-1')!.set('catalog/g-c0-0', { status: 200, value: { c: 0, n: 1 }, context: { vector: [['eu-west-1', 1]], cloud: [] }, tags: ['blue'] });
    }],
    ['a single writer\'s value is not its last acknowledged one', /^value: catalog\/g-c0-0 at eu-west/, (w) => {
      for (const node of Object.values(nodeOf)) w.docs.get(node)!.set('catalog/g-c0-0', { status: 200, value: { c: 0, n: 0 }, context: { vector: [['eu-west-1', 1]], cloud: [] }, tags: [] });
    }],
    ['a deleted document is back', /^resurrection: catalog\/d-c0-2 at us-east/, (w) => {
      w.docs.get('us-east-1')!.set('catalog/d-c0-2', { status: 200, value: { c: 0, n: 2 }, context: { vector: [['eu-west-1', 3]], cloud: [] }, tags: [] });
    }],
    ['a deleted document\'s node never got the delete', /^lost write: eu-central answers 404 for catalog\/d-c0-2 and 409/, (w) => {
      w.tokenReads.get('eu-central-1')!.set(token('catalog', 'd-c0-2', 'eu-west-1', 3), 409);
    }],
    ['a counter outside its possible range', /^value: counter visits\/v-0 at eu-west is 9/, (w) => {
      for (const node of Object.values(nodeOf)) w.docs.get(node)!.set('visits/v-0', { status: 200, value: 9, context: { vector: [['us-east-1', 2]], cloud: [] }, tags: [] });
    }],
    ['an acknowledged set add is missing', /^lost write: set carts\/cart-0 at eu-west lacks c1-1/, (w) => {
      for (const node of Object.values(nodeOf)) w.docs.get(node)!.set('carts/cart-0', { status: 200, value: [], context: { vector: [['eu-central-1', 1]], cloud: [] }, tags: [] });
    }],
    ['a local document is held elsewhere', /^residency: us-east (lists|answers 200 for) audits\/mk-loc-eu-west-c0-4/, (w) => {
      w.lists.get('us-east-1')!.set('audits', ['mk-loc-eu-west-c0-4']);
      w.docs.get('us-east-1')!.set('audits/mk-loc-eu-west-c0-4', { status: 200, value: { m: 'mv-loc-eu-west-c0-4' }, context: { vector: [['eu-west-1', 4]], cloud: [] }, tags: [] });
    }],
    ['a forbidden marker crossed a link', /^residency: mv-loc-eu-west-c0-4 reached us-east/, () => ({ wireForbidden: [{ marker: 'mv-loc-eu-west-c0-4', region: 'us-east', link: 'eu-west-1>us-east-1', atMs: 5 }] })],
    ['a quarantined value crossed before its release', /^residency: quarantined mk-q-eu-west-c0-9 reached us-east/, () => ({ wireQuarantine: [{ marker: 'mv-q-eu-west-c0-9.', region: 'us-east', link: 'eu-west-1>us-east-1', atMs: 5 }] })],
    ['a forbidden marker on disk', /^residency: mv-ord-/, () => ({ diskFindings: ['mv-ord-… is on eu-central\'s disk in /x'] })],
    ['lastSeq went backwards without a restart', /^monotonicity: eu-west-1's lastSeq went from 5 to 3/, (w) => {
      w.history.samples.push({ node: 'eu-west-1', incarnation: 0, atMs: 3, lastSeq: 3, cursors: { 'us-east-1': 3 } });
    }],
    ['lastSeq fell below an acknowledged write after a restart', /^monotonicity: eu-west-1's lastSeq 3 .* is below the acknowledged seq 4/, (w) => {
      w.history.samples.push({ node: 'eu-west-1', incarnation: 1, atMs: 3, lastSeq: 3, cursors: { 'us-east-1': 3 } });
    }],
    ['a durable cursor went backwards', /^monotonicity: eu-west-1's durable cursor for us-east-1 went from 3/, (w) => {
      w.history.samples.push({ node: 'eu-west-1', incarnation: 1, atMs: 3, lastSeq: 6, cursors: { 'us-east-1': 1 } });
    }],
    ['a forbidden write was acknowledged', /^refusal: eu-central acknowledged a write of orders/, (w) => {
      op(w.history, 'eu-central', 1, 'put', 'orders', 'mk-ord-c1-6', { value: { m: 'mv-ord-c1-6' } }, 'ok', 7);
      w.lists.get('eu-west-1')!.set('orders', ['mk-ord-c1-6']);
    }],
    ['a daemon answered 500', /^refusal: op \d+ .* answered 500/, (w) => {
      const broken = op(w.history, 'eu-west', 0, 'put', 'catalog', 'g-c0-1', { value: {} }, 'info');
      broken.status = 500;
    }],
    ['a token read answered without the write', /^lost write: a read of catalog\/g-c0-0 at us-east-1 with the token/, (w) => {
      const read = op(w.history, 'us-east', 2, 'read-token', 'catalog', 'g-c0-0', { token: 'x', dot: ['eu-west-1', 1] }, 'ok');
      read.readContext = { vector: [], cloud: [] };
    }],
  ];
  for (const [what, pattern, breakIt] of cases) {
    const w = world();
    const extra = breakIt(w) ?? {};
    const { violations } = run(w, extra);
    t.ok(violations.some((v) => pattern.test(v)), `${what}: ${violations.join(' / ') || 'no violation'}`);
  }
});
