// Goal: CausalContext is a set of dots — nothing more, nothing less — kept in a canonical compact form.
// Method: fast-check drives the real context and a reference (a Set of "node@counter" strings) with the same
// adds and merges, then compares membership over the whole small universe of dots, `includes` against the
// subset relation, `maxCounter`/`next`, and `toJSON` against the canonical form computed from the reference
// (each node's contiguous prefix 1..n in the vector, the rest sorted in the cloud).
import t from 'tap';
import fc from 'fast-check';
import { CausalContext, type Dot, dotKey } from '@tessera/core';

const nodes = ['a', 'b', 'n1', 'n1.x'];
/** Counters stay small so that gaps appear and fill often. */
const counterMax = 12;

const dotArb: fc.Arbitrary<Dot> = fc.tuple(fc.constantFrom(...nodes), fc.integer({ min: 1, max: counterMax }));
const dotsArb = fc.array(dotArb, { maxLength: 40, size: 'medium' });

type Reference = Set<string>;

function contextOf(dots: readonly Dot[]): CausalContext {
  const ctx = new CausalContext();
  for (const dot of dots) ctx.add(dot);
  return ctx;
}

function referenceOf(dots: readonly Dot[]): Reference {
  return new Set(dots.map(dotKey));
}

/** The canonical form of a set of dots, computed the obvious way. */
function canonical(reference: Reference): { vector: Array<[string, number]>; cloud: Dot[] } {
  const vector: Array<[string, number]> = [];
  const cloud: Dot[] = [];
  for (const node of [...nodes].sort()) {
    let prefix = 0;
    while (reference.has(`${node}@${prefix + 1}`)) prefix++;
    if (prefix > 0) vector.push([node, prefix]);
    for (let counter = prefix + 2; counter <= counterMax; counter++) if (reference.has(`${node}@${counter}`)) cloud.push([node, counter]);
  }
  return { vector, cloud };
}

/** Throws unless `ctx` holds exactly the dots of `reference`, in canonical form. */
function expectMatches(ctx: CausalContext, reference: Reference, what: string): void {
  for (const node of nodes) {
    let max = 0;
    for (let counter = 1; counter <= counterMax + 1; counter++) {
      const key = `${node}@${counter}`;
      if (ctx.has([node, counter]) !== reference.has(key)) throw new Error(`${what}: has(${key}) is ${ctx.has([node, counter])}`);
      if (reference.has(key)) max = counter;
    }
    if (ctx.maxCounter(node) !== max) throw new Error(`${what}: maxCounter(${node}) is ${ctx.maxCounter(node)}, expected ${max}`);
    const next = ctx.next(node);
    if (next[0] !== node || next[1] !== max + 1) throw new Error(`${what}: next(${node}) is ${JSON.stringify(next)}`);
  }
  const form = JSON.stringify(ctx.toJSON());
  const expected = JSON.stringify(canonical(reference));
  if (form !== expected) throw new Error(`${what}: toJSON ${form}, expected ${expected}`);
  if (ctx.isEmpty !== (reference.size === 0)) throw new Error(`${what}: isEmpty is ${ctx.isEmpty}`);
  const { cloud } = canonical(reference);
  const named = new Set([...reference].map((key) => key.split('@')[0]));
  if (ctx.size.nodes !== named.size || ctx.size.cloudDots !== cloud.length) throw new Error(`${what}: size ${JSON.stringify(ctx.size)}`);
}

t.test('add and has agree with a set of dots; toJSON is the canonical form', async (t) => {
  let cloudSeen = 0;
  fc.assert(
    fc.property(dotsArb, (dots) => {
      const ctx = new CausalContext();
      const reference: Reference = new Set();
      for (const dot of dots) {
        ctx.add(dot);
        reference.add(dotKey(dot));
        expectMatches(ctx, reference, `after adding ${dotKey(dot)}`);
      }
      if (ctx.toJSON().cloud.length > 0) cloudSeen++;
    }),
    { numRuns: 300 },
  );
  t.ok(cloudSeen > 30, `${cloudSeen} runs ended with gaps in the cloud`);
});

t.test('merge is set union; includes is the subset relation', async (t) => {
  let subsets = 0;
  fc.assert(
    fc.property(dotsArb, dotsArb, (left, right) => {
      const a = contextOf(left);
      const b = contextOf(right);
      const refA = referenceOf(left);
      const refB = referenceOf(right);
      const aIncludesB = [...refB].every((key) => refA.has(key));
      if (a.includes(b) !== aIncludesB) throw new Error(`includes is ${a.includes(b)}, subset is ${aIncludesB}`);
      if (aIncludesB) subsets++;
      if (!a.includes(a) || !a.includes(new CausalContext())) throw new Error('a context includes itself and the empty context');
      const merged = a.clone();
      merged.merge(b);
      expectMatches(merged, new Set([...refA, ...refB]), 'a merge b');
      expectMatches(a, refA, 'a after cloning and merging the clone');
      if (!merged.includes(a) || !merged.includes(b)) throw new Error('a merge includes both sides');
      const other = b.clone();
      other.merge(a);
      if (JSON.stringify(other.toJSON()) !== JSON.stringify(merged.toJSON())) throw new Error('merge is not commutative');
      const again = merged.clone();
      again.merge(merged);
      if (JSON.stringify(again.toJSON()) !== JSON.stringify(merged.toJSON())) throw new Error('merge is not idempotent');
    }),
    { numRuns: 300, seed: 20_261_127 },
  ); // seeded: the floor below counts random outcomes
  t.ok(subsets > 10, `${subsets} pairs were subsets (includes was true)`);
});

t.test('equal sets give equal forms, however they were built; from(toJSON()) round-trips', async (t) => {
  fc.assert(
    fc.property(dotsArb, fc.array(fc.nat()), fc.nat(), (dots, randoms, split) => {
      const reference = referenceOf(dots);
      // The same dots in another order, some twice, added partly through `merge` and partly through `from`.
      const shuffled = [...dots];
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = (randoms[i % Math.max(1, randoms.length)] ?? 0) % (i + 1);
        [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
      }
      const cut = shuffled.length === 0 ? 0 : split % shuffled.length;
      const built = CausalContext.from([], shuffled.slice(0, cut));
      built.merge(contextOf([...shuffled.slice(cut), ...shuffled.slice(0, cut)]));
      expectMatches(built, reference, 'built another way');
      const form = built.toJSON();
      expectMatches(CausalContext.from(form.vector, form.cloud), reference, 'from(toJSON())');
    }),
    { numRuns: 300 },
  );
  t.pass('forms agreed');
});

t.test('gaps fold into the vector when they are filled', async (t) => {
  const ctx = CausalContext.from(
    [['n1', 2]],
    [
      ['n1', 4],
      ['n1', 6],
      ['a', 2],
    ],
  );
  t.strictSame(ctx.toJSON(), {
    vector: [['n1', 2]],
    cloud: [
      ['a', 2],
      ['n1', 4],
      ['n1', 6],
    ],
  });
  ctx.add(['n1', 3]);
  t.strictSame(
    ctx.toJSON(),
    {
      vector: [['n1', 4]],
      cloud: [
        ['a', 2],
        ['n1', 6],
      ],
    },
    'filling 3 folds 3 and 4',
  );
  ctx.merge(
    CausalContext.from(
      [],
      [
        ['n1', 5],
        ['a', 1],
      ],
    ),
  );
  t.strictSame(
    ctx.toJSON(),
    {
      vector: [
        ['a', 2],
        ['n1', 6],
      ],
      cloud: [],
    },
    'a merge that fills the gaps empties the cloud',
  );
  const vectorOnly = CausalContext.from(
    [['n1', 3]],
    [
      ['n1', 2],
      ['n1', 4],
    ],
  );
  t.strictSame(vectorOnly.toJSON(), { vector: [['n1', 4]], cloud: [] }, 'cloud dots at or below the vector, or next to it, fold in');
  t.strictSame(CausalContext.from([['n1', 0]]).toJSON(), { vector: [], cloud: [] }, 'a zero vector entry is no entry');
});

t.test('includes is exact when the other context has a long contiguous prefix', async (t) => {
  // `includes` walks a vector prefix beyond its own against the cloud: every counter must be present.
  const big = CausalContext.from([['n1', 1_000]]);
  const holes = CausalContext.from(
    [['n1', 10]],
    Array.from({ length: 989 }, (_, i): Dot => ['n1', 12 + i]),
  );
  t.notOk(holes.includes(big), 'a single missing counter (11) is found');
  holes.add(['n1', 11]);
  t.ok(holes.includes(big), 'once 11 is added, everything up to 1000 is there');
  t.strictSame(holes.toJSON(), { vector: [['n1', 1_000]], cloud: [] });
});
