// Goal: every CRDT type is a join-semilattice over canonical bytes: join is commutative, associative and
// idempotent; deltas joined one by one give the same state as the replicas' full states; any delivery order,
// with duplicates, converges; a replayed delta changes nothing. Concurrency is decided by causality (dots),
// not by timestamps, even when the nodes' clocks are minutes apart.
// Method: fast-check generates operation histories at three nodes with independently skewed clocks (see
// helpers/history.ts); deltas travel between replicas at random points, out of causal order and repeated.
// States are compared by `encodeDoc` bytes. A failure prints fast-check's seed and the shrunk history.
import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import fc from 'fast-check';
import * as Y from 'yjs';
import {
  type CrdtTypeName,
  type DocState,
  type Json,
  type YjsBody,
  alreadySeen,
  docValue,
  emptyDoc,
  joinDocs,
  mutate,
  operationMutator,
  remove,
  yjsChange,
  yjsClientId,
  yjsDoc,
} from '@tessera/core';
import {
  type HistoryRun,
  concurrentPairs,
  deliveryOrderArb,
  expectSameBytes,
  hex,
  historyArb,
  joinAll,
  runHistory,
  shuffledWithDuplicates,
  typeNames,
  wallMsStart,
} from './helpers/history.js';

/** Runs per property: the document types backed by Yjs and Automerge are much slower per operation. */
const numRunsByType: Record<CrdtTypeName, number> = {
  map: 200,
  lww: 200,
  mv: 200,
  counter: 200,
  set: 200,
  yjs: 80,
  automerge: 60,
};

const join = (a: DocState, b: DocState): DocState => joinDocs(a, b).state;

for (const type of typeNames) {
  const numRuns = numRunsByType[type];

  // Goal: join of replica states is commutative, associative and idempotent, and the histories really are
  // concurrent (so the laws are not checked only on causally ordered states).
  // Method: play random histories; join the three final states in every order and compare bytes; count
  // histories with concurrent deltas and with deletes, and require both to be common.
  t.test(`${type}: join of replica states is commutative, associative and idempotent`, async (t) => {
    let concurrentHistories = 0;
    let deletingHistories = 0;
    fc.assert(
      fc.property(historyArb(type), (history) => {
        const run = runHistory(history);
        if (concurrentPairs(run) > 0) concurrentHistories++;
        if (run.removes > 0) deletingHistories++;
        const states = run.replicas.map((replica) => replica.state);
        for (const a of states) {
          expectSameBytes(join(a, a), a, 'idempotent: a ⊔ a = a');
          for (const b of states) expectSameBytes(join(a, b), join(b, a), 'commutative: a ⊔ b = b ⊔ a');
        }
        const [s1, s2, s3] = states as [DocState, DocState, DocState];
        expectSameBytes(join(join(s1, s2), s3), join(s1, join(s2, s3)), 'associative: (s1 ⊔ s2) ⊔ s3 = s1 ⊔ (s2 ⊔ s3)');
        expectSameBytes(join(join(s2, s3), s1), join(s2, join(s3, s1)), 'associative: (s2 ⊔ s3) ⊔ s1 = s2 ⊔ (s3 ⊔ s1)');
      }),
      { numRuns },
    );
    t.ok(concurrentHistories > numRuns / 4, `${concurrentHistories} of ${numRuns} histories had concurrent deltas`);
    t.ok(deletingHistories > numRuns / 10, `${deletingHistories} of ${numRuns} histories deleted the document`);
  });

  // Goal: the laws hold on deltas too (a delta is a state), including the empty state.
  // Method: pick random pairs and triples from the history's deltas, its final states and the empty state.
  t.test(`${type}: join of deltas is commutative, associative and idempotent`, async (t) => {
    const picksArb = fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat()), { minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(historyArb(type), picksArb, (history, picks) => {
        const run = runHistory(history);
        const deltas = run.deltas.map((d) => d.delta);
        const pool = [emptyDoc(type), ...deltas, ...run.replicas.map((r) => r.state)];
        for (const [i, j, k] of picks) {
          const a = pool[i % pool.length]!;
          const b = pool[j % pool.length]!;
          const c = pool[k % pool.length]!;
          expectSameBytes(join(a, a), a, 'idempotent: d ⊔ d = d');
          expectSameBytes(join(a, b), join(b, a), 'commutative: a ⊔ b = b ⊔ a');
          expectSameBytes(join(join(a, b), c), join(a, join(b, c)), 'associative: (a ⊔ b) ⊔ c = a ⊔ (b ⊔ c)');
        }
      }),
      { numRuns },
    );
    t.pass('laws held on random pairs and triples');
  });

  // Goal: a delta carries exactly what its mutation changed: joining every delta gives the replicas' state.
  // Method: fold all deltas, in creation order, into the empty state; compare with the join of the three
  // replicas' final states (each replica holds the join of the deltas it produced or received).
  t.test(`${type}: joining every delta equals joining the replica states`, async (t) => {
    fc.assert(
      fc.property(historyArb(type), (history) => {
        const run = runHistory(history);
        const fromDeltas = joinAll(
          type,
          run.deltas.map((d) => d.delta),
        );
        const fromStates = joinAll(
          type,
          run.replicas.map((r) => r.state),
        );
        expectSameBytes(fromDeltas, fromStates, 'join of all deltas = join of all states');
      }),
      { numRuns },
    );
    t.pass('delta joins and state joins agreed');
  });

  // Goal: delivery order and duplication do not matter.
  // Method: two independent shuffles of the delta list, each with random duplicates inserted, folded into
  // fresh replicas; both must equal (in bytes and in value) the join of the replica states.
  t.test(`${type}: any delivery order with duplicates converges`, async (t) => {
    fc.assert(
      fc.property(historyArb(type), deliveryOrderArb, deliveryOrderArb, (history, order1, order2) => {
        const run = runHistory(history);
        const deltas = run.deltas.map((d) => d.delta);
        const expected = joinAll(
          type,
          run.replicas.map((r) => r.state),
        );
        const first = joinAll(type, shuffledWithDuplicates(deltas, order1.randoms, order1.duplicates));
        const second = joinAll(type, shuffledWithDuplicates(deltas, order2.randoms, order2.duplicates));
        expectSameBytes(first, expected, 'order 1 converges');
        expectSameBytes(second, expected, 'order 2 converges');
        if (!isDeepStrictEqual(valueForm(docValue(first)), valueForm(docValue(second)))) {
          throw new Error('equal bytes but different values');
        }
      }),
      { numRuns },
    );
    t.pass('every order converged');
  });

  // Goal: replaying a delta (an old message, a retry) is a no-op, and `alreadySeen` says so.
  // Method: replays during the history (a replica is sent a delta it has) must report alreadySeen and leave
  // the bytes unchanged; at the end, every replica (and the join of all of them) must report alreadySeen for
  // every delta it received, directly or inside another replica's state, and joining it must change nothing.
  t.test(`${type}: a replayed delta is a no-op`, async (t) => {
    let replays = 0;
    fc.assert(
      fc.property(historyArb(type), (history) => {
        const run = runHistory(history);
        for (const replay of run.replays) {
          replays++;
          if (!replay.alreadySeen) throw new Error(`replay of delta ${replay.seq} to replica ${replay.to}: alreadySeen is false`);
          if (Buffer.compare(replay.before, replay.after) !== 0) throw new Error(`replay of delta ${replay.seq} to replica ${replay.to} changed the state`);
        }
        for (const holder of holders(run)) {
          for (const { seq, delta } of run.deltas) {
            if (!holder.seen.has(seq)) continue;
            if (!alreadySeen(holder.state, delta)) throw new Error(`${holder.name} received delta ${seq} but alreadySeen is false`);
            expectSameBytes(join(holder.state, delta), holder.state, `${holder.name}: replaying delta ${seq} is a no-op`);
          }
        }
      }),
      { numRuns },
    );
    t.ok(replays > 0, `${replays} replays happened during the histories`);
  });
}

for (const type of typeNames) {
  // Goal: core is deterministic: time and randomness come in as arguments, so the same history gives the
  // same deltas and states, byte for byte (what makes seeded simulations reproducible).
  // Method: play each random history twice and compare every delta and every final state.
  const name =
    type === 'yjs'
      ? "yjs: the same history gives the same bytes (every write uses the node's derived Yjs client id)"
      : `${type}: the same history gives the same bytes`;
  t.test(name, async (t) => {
    fc.assert(
      fc.property(historyArb(type), (history) => {
        const first = runHistory(history);
        const second = runHistory(history);
        first.deltas.forEach((d, i) => expectSameBytes(second.deltas[i]!.delta, d.delta, `delta ${i} replayed`));
        first.replicas.forEach((r, i) => expectSameBytes(second.replicas[i]!.state, r.state, `replica ${r.node} replayed`));
      }),
      { numRuns: Math.ceil(numRunsByType[type] / 2) },
    );
    t.pass('histories replayed to identical bytes');
  });
}

/** The replicas at the end of a history, and the join of all of them, with the deltas each received. */
function holders(run: HistoryRun): Array<{ name: string; state: DocState; seen: ReadonlySet<number> }> {
  const full = joinAll(
    run.type,
    run.replicas.map((r) => r.state),
  );
  return [
    ...run.replicas.map((r) => ({ name: r.node, state: r.state, seen: r.seen })),
    { name: 'full join', state: full, seen: new Set(run.deltas.map((d) => d.seq)) },
  ];
}

/** Values of Yjs documents are bytes: compare them as hex. */
function valueForm(value: unknown): unknown {
  return value instanceof Uint8Array ? Buffer.from(value).toString('hex') : value;
}

// ---------------------------------------------------------------------------------------------------------
// Causality versus skewed clocks.

const registerTypes = ['map', 'lww', 'mv'] as const;
type RegisterTypeName = (typeof registerTypes)[number];

function writeX(type: RegisterTypeName, doc: DocState, node: string, ms: number, value: Json) {
  const op = type === 'map' ? { op: 'set' as const, path: ['x'], value } : { op: 'put' as const, value };
  const result = mutate(doc, node, { ms, c: 0 }, operationMutator(type, op, `test/${type}`));
  if (result === null) throw new Error('a write changed nothing');
  return result;
}

/** The value a reader sees at x: the field of a map, the register's value, or the mv register's siblings. */
function readX(type: RegisterTypeName, doc: DocState): unknown {
  const value = docValue(doc);
  return type === 'map' ? (value as Record<string, unknown>).x : value;
}

function expectedX(type: RegisterTypeName, values: readonly Json[]): unknown {
  return type === 'mv' ? values : values[0];
}

const skewArb = fc.integer({ min: 60_000, max: 10 * 60_000 });
const valueArb = fc.integer({ min: 0, max: 1_000 });

// Goal: a write that causally follows another wins over it even when its HLC is minutes earlier, and no
// conflict is recorded (nothing concurrent was discarded).
// Method: node n1 writes x with a clock far ahead; n2 receives that delta and overwrites x with a clock
// minutes behind (it does not observe n1's timestamp). A third replica receives the two deltas and the two
// full states in seven orders (both directions, mixed, repeated); x must read n2's value and no join may
// report a conflict.
t.test('a causally later write wins over an earlier write with a later HLC, without a conflict', async (t) => {
  fc.assert(
    fc.property(fc.constantFrom(...registerTypes), skewArb, skewArb, valueArb, valueArb, (type, aheadMs, behindMs, valueA, valueB) => {
      const a = writeX(type, emptyDoc(type), 'n1', wallMsStart + aheadMs, valueA);
      const bBase = joinDocs(emptyDoc(type), a.delta);
      if (bBase.conflicts.length !== 0) throw new Error('receiving the first write reported a conflict');
      const b = writeX(type, bBase.state, 'n2', wallMsStart - behindMs, valueB);
      const orders: Array<readonly DocState[]> = [
        [a.delta, b.delta],
        [b.delta, a.delta],
        [a.state, b.state],
        [b.state, a.state],
        [b.delta, a.state],
        [a.state, b.delta],
        [b.delta, a.delta, b.delta, a.delta],
      ];
      for (const order of orders) {
        let state = emptyDoc(type);
        for (const item of order) {
          const joined = joinDocs(state, item);
          if (joined.conflicts.length !== 0) throw new Error(`conflict reported: ${JSON.stringify(joined.conflicts)}`);
          state = joined.state;
        }
        const read = readX(type, state);
        if (!isDeepStrictEqual(read, expectedX(type, [valueB]))) {
          throw new Error(`${type}: x reads ${JSON.stringify(read)}, expected n2's causally later ${valueB}`);
        }
      }
    }),
    { numRuns: 150 },
  );
  t.pass('the causally later write won in every order');
});

// Goal: two truly concurrent writes are resolved by HLC (map, lww) and the join records a conflict naming
// the hidden value, its dot and its HLC; mv keeps both as siblings, newest first, with no record.
// Method: n1 and n2 write x without seeing each other, with independently skewed clocks (ties included);
// join each state with the other's delta (both directions) and check the value and the conflict records.
t.test('truly concurrent writes are resolved by HLC with a conflict record naming the loser', async (t) => {
  const offsetArb = fc.integer({ min: -10 * 60_000, max: 10 * 60_000 });
  let ties = 0;
  fc.assert(
    fc.property(fc.constantFrom(...registerTypes), offsetArb, offsetArb, valueArb, valueArb, (type, offset1, offset2, value1, value2) => {
      const w1 = writeX(type, emptyDoc(type), 'n1', wallMsStart + offset1, value1);
      const w2 = writeX(type, emptyDoc(type), 'n2', wallMsStart + offset2, value2);
      if (offset1 === offset2) ties++;
      // Same HLC: the dot breaks the tie, and n2 > n1.
      const n1Wins = offset1 > offset2;
      const win = n1Wins ? { value: value1, node: 'n1', ms: wallMsStart + offset1 } : { value: value2, node: 'n2', ms: wallMsStart + offset2 };
      const lose = n1Wins ? { value: value2, node: 'n2', ms: wallMsStart + offset2 } : { value: value1, node: 'n1', ms: wallMsStart + offset1 };
      for (const [state, delta] of [
        [w1.state, w2.delta],
        [w2.state, w1.delta],
      ] as const) {
        const joined = joinDocs(state, delta);
        const read = readX(type, joined.state);
        const expected = expectedX(type, type === 'mv' ? [win.value, lose.value] : [win.value]);
        if (!isDeepStrictEqual(read, expected)) throw new Error(`${type}: x reads ${JSON.stringify(read)}, expected ${JSON.stringify(expected)}`);
        if (type === 'mv') {
          if (joined.conflicts.length !== 0) throw new Error('mv recorded a conflict for siblings');
          continue;
        }
        // The value's dot is the first dot each node issued on the document (the presence dot comes after).
        const want = [
          {
            path: type === 'map' ? ['x'] : [],
            kind: 'concurrent-write',
            winner: { value: win.value, dot: [win.node, 1], hlc: { ms: win.ms, c: 0 } },
            loser: { value: lose.value, dot: [lose.node, 1], hlc: { ms: lose.ms, c: 0 } },
          },
        ];
        if (!isDeepStrictEqual(joined.conflicts, want)) {
          throw new Error(`conflicts ${JSON.stringify(joined.conflicts)}, expected ${JSON.stringify(want)}`);
        }
      }
      // A later write that saw both resolves the conflict for good.
      const both = join(w1.state, w2.state);
      const resolved = writeX(type, both, 'n3', wallMsStart - 20 * 60_000, 7);
      if (!isDeepStrictEqual(readX(type, resolved.state), expectedX(type, [7]))) throw new Error('a write that saw both did not resolve x');
      if (hex(join(join(w1.delta, w2.delta), resolved.delta)) !== hex(resolved.state)) throw new Error('resolution does not replicate');
    }),
    {
      numRuns: 200,
      examples: [
        ['lww', 0, 0, 1, 2],
        ['map', 5, 5, 3, 4],
        ['mv', 1, 1, 5, 6],
      ],
    },
  );
  t.ok(ties > 0, 'timestamp ties (broken by dot) were exercised');
});

// ---------------------------------------------------------------------------------------------------------
// Regression tests for bugs these property tests found (fixed in core; see the commit that fixed them).

// Goal: `alreadySeen(state, delta)` is true only when joining the delta can change nothing — the store skips
// such deltas (and does not log them), so a wrong "true" loses the delta's effect at that replica for good.
// Method: n1 increments a counter three times (deltas d0, d1, d2; each new entry replaces n1's previous one).
// Replica r receives d0 and d2 but not yet d1. d2 removed d1's dot, so r's context already holds every dot of
// d1, yet r still holds d0's entry, which only d1 removes.
t.test('alreadySeen is false for a delta whose removals the replica has not applied', async (t) => {
  const increment = (doc: DocState, ms: number) => {
    const result = mutate(doc, 'n1', { ms, c: 0 }, operationMutator('counter', { op: 'increment', amount: 1 }, 'test/counter'));
    if (result === null) throw new Error('increment changed nothing');
    return result;
  };
  const d0 = increment(emptyDoc('counter'), wallMsStart);
  const d1 = increment(d0.state, wallMsStart + 1);
  const d2 = increment(d1.state, wallMsStart + 2);
  t.equal(docValue(d2.state), 3, 'n1 counts three increments');
  const r = joinAll('counter', [d0.delta, d2.delta]);
  const withD1 = join(r, d1.delta);
  t.equal(docValue(withD1), 3, 'once d1 is joined, r counts three increments too');
  t.equal(docValue(r), 4, "before d1, r counts d0 twice (d2 carries n1's running total)");
  t.notOk(alreadySeen(r, d1.delta), 'alreadySeen(r, d1) is false: joining d1 still changes r (a store that skips it keeps 4 forever)');
});

// Goal: the same claim, for every type, on random histories with out-of-order delivery.
// Method: for every final replica and every delta of the history: if alreadySeen says true, joining the delta
// must leave the canonical bytes unchanged.
t.test('alreadySeen(state, delta) implies that joining the delta changes nothing', async (t) => {
  fc.assert(
    fc.property(
      fc.constantFrom(...typeNames).chain((type) => historyArb(type)),
      (history) => {
        const run = runHistory(history);
        for (const holder of holders(run)) {
          for (const { seq, delta } of run.deltas) {
            if (alreadySeen(holder.state, delta)) {
              expectSameBytes(join(holder.state, delta), holder.state, `${holder.name}: alreadySeen(delta ${seq}) but joining it changes the state`);
            }
          }
        }
      },
    ),
    { numRuns: 300 },
  );
  t.pass('alreadySeen never hid a change');
});

function yjsWrite(doc: DocState, node: string, ms: number, text: string) {
  const result = mutate(doc, node, { ms, c: 0 }, (body, ctx) => yjsChange(body as YjsBody, (y) => y.getText('t').insert(0, text), ctx));
  if (result === null) throw new Error('a Yjs write changed nothing');
  return result;
}

// Goal: a node writes Yjs content with a client id of its own, minted from its first write's dot and recorded
// in the body (`yjsClientId`, `writers`), so writes are deterministic and ids never collide.
// Method: n1 writes three times in incarnation 0; decode each delta's Yjs update and read its authors.
// (Yjs replaces a document's client id with a random one when a remote update it applies contains structs
// of that id, so yjsDoc must set the id only after loading the node's own earlier writes.)
t.test('yjs: every write by a node uses its derived Yjs client id', async (t) => {
  let state = emptyDoc('yjs');
  const authors: number[] = [];
  for (let i = 0; i < 3; i++) {
    const result = yjsWrite(state, 'n1', wallMsStart + i, `w${i}`);
    state = result.state;
    authors.push(...Y.decodeUpdate((result.delta.body as YjsBody).update).structs.map((struct) => struct.id.client));
  }
  // The first write (dot n1:1) mints the id; the next two reuse the one recorded in the body.
  const id = yjsClientId('n1', 0, 1);
  t.strictSame(authors, [id, id, id], `all three writes are authored by yjsClientId('n1', 0, 1) = ${id}`);
  t.strictSame((state.body as YjsBody).writers, [['n1', id]], 'the body records the writer');
});

// Goal: a node that lost its copy (a purge) never writes with a client id another replica already holds
// history of: Yjs would drop its new structs as already seen.
// Method: n1 writes twice; its copy is dropped and it writes again from an empty state with a counter floor
// past its old dots (as the store does after a purge); the new write's id differs, and joining both lineages
// keeps all three writes.
t.test('yjs: a node that lost its copy writes with a new client id, and nothing is dropped', async (t) => {
  let first = emptyDoc('yjs');
  for (let i = 0; i < 2; i++) first = yjsWrite(first, 'n1', wallMsStart + i, `a${i}`).state;
  const floor = first.ctx.maxCounter('n1');
  const again = yjsWrite({ ...emptyDoc('yjs'), counterFloor: floor }, 'n1', wallMsStart + 10, 'b');
  const oldId = (first.body as YjsBody).writers[0]![1];
  const newId = (again.state.body as YjsBody).writers[0]![1];
  t.not(newId, oldId, 'a new client id');
  const joined = joinDocs(first, again.state).state;
  const text = yjsDoc(joined.body as YjsBody)
    .getText('t')
    .toString();
  t.equal(text.length, 'a0a1b'.length, `every write is in the joined text (${JSON.stringify(text)})`);
  t.strictSame(
    (joined.body as YjsBody).writers.map(([node]) => node),
    ['n1', 'n1'],
    'both lineages are recorded',
  );
});

// Goal: replicas that receive the same Yjs deltas hold the same bytes and the same value, whatever the order.
// Method: n2 writes and deletes the document (incarnation 1); n1 sees the delete and applies an empty Yjs
// update (what y-protocols sends when there is nothing new). Replica A receives [empty, write, delete],
// replica B [delete, empty, write]. (Raw, non-canonical [0, 0] updates once made them differ.)
t.test('yjs: an empty Yjs update leaves replicas with the same bytes whatever the delivery order', async (t) => {
  const d0 = yjsWrite(emptyDoc('yjs'), 'n2', wallMsStart, 'hello');
  const d1 = remove(d0.state, 'n2', { ms: wallMsStart + 1, c: 0 })!;
  const n1 = join(emptyDoc('yjs'), d1.delta);
  const emptyUpdate = Y.encodeStateAsUpdate(new Y.Doc());
  const d2 = mutate(n1, 'n1', { ms: wallMsStart + 2, c: 0 }, operationMutator('yjs', { op: 'yjs-update', update: emptyUpdate }, 'test/yjs'))!;
  const a = joinAll('yjs', [d2.delta, d0.delta, d1.delta]);
  const b = joinAll('yjs', [d1.delta, d2.delta, d0.delta]);
  t.strictSame(Buffer.from(docValue(a) as Uint8Array), Buffer.from(docValue(b) as Uint8Array), 'both replicas read the same Yjs state');
  t.equal(hex(a), hex(b), 'both replicas hold the same bytes');
});

// Goal: join is commutative in bytes also for a Yjs delta and the empty state.
// Method: n1 sets a Y.Map key twice; the second delta carries the raw update of that write (it overwrites,
// so it holds a delete set for an item it does not contain). Deltas must be canonical for
// join(delta, ⊥) and join(⊥, delta) to give the same bytes.
t.test('yjs: a delta joined with the empty state gives the same bytes in both orders', async (t) => {
  const setA = (doc: DocState, ms: number, value: number) => {
    const result = mutate(doc, 'n1', { ms, c: 0 }, (body, ctx) => yjsChange(body as YjsBody, (y) => y.getMap('m').set('a', value), ctx));
    if (result === null) throw new Error('a Yjs write changed nothing');
    return result;
  };
  const first = setA(emptyDoc('yjs'), wallMsStart, 0);
  const second = setA(first.state, wallMsStart + 1, 1);
  const bottom = emptyDoc('yjs');
  t.equal(hex(join(first.delta, bottom)), hex(join(bottom, first.delta)), 'first delta: delta ⊔ ⊥ = ⊥ ⊔ delta');
  t.equal(hex(join(second.delta, bottom)), hex(join(bottom, second.delta)), 'second delta: delta ⊔ ⊥ = ⊥ ⊔ delta');
});
