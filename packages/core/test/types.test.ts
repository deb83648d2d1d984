// Goal: each CRDT type means what its documentation says, on small cases a reader can follow: which write
// wins, what a delete removes, what survives concurrently, what is recorded as a conflict, and which inputs
// are refused with which error code.
// Method: example-based. Nodes are played by hand with explicit timestamps; "concurrent" means neither node
// had received the other's delta. Every merge is checked in both join orders.
import t from 'tap';
import * as Y from 'yjs';
import * as A from '@automerge/automerge';
import { decode, encode } from '@msgpack/msgpack';
import {
  type AutomergeBody,
  type BodyMutator,
  type CrdtTypeName,
  type DocState,
  type Json,
  type Operation,
  type TagChange,
  type YjsBody,
  alreadySeen,
  automergeChange,
  crdtTypeNames,
  decodeDoc,
  docExists,
  docTags,
  docValue,
  emptyDoc,
  encodeDoc,
  isTesseraError,
  joinDocs,
  jsonDepthMax,
  mutate,
  operationMutator,
  operationsByType,
  remove,
  valueBytesMax,
  yjsChange,
  yjsDoc,
} from '@tessera/core';

const msStart = 1_700_000_000_000;
const at = (seconds: number) => ({ ms: msStart + seconds * 1000, c: 0 });

/** Applies `op` at `node` at time `seconds`; fails the test run if the operation changes nothing. */
function op(doc: DocState, node: string, seconds: number, operation: Operation, tags?: TagChange) {
  return write(doc, node, seconds, operationMutator(doc.type, operation, `test/${doc.type}`), tags);
}

function write(doc: DocState, node: string, seconds: number, mutator: BodyMutator | null, tags?: TagChange) {
  const result = mutate(doc, node, at(seconds), mutator, tags);
  if (result === null) throw new Error(`${node}: the write at ${seconds}s changed nothing`);
  return result;
}

function deleteDoc(doc: DocState, node: string, seconds: number) {
  const result = remove(doc, node, at(seconds));
  if (result === null) throw new Error(`${node}: nothing to delete`);
  return result;
}

const join = (a: DocState, b: DocState) => joinDocs(a, b).state;
const receive = (type: CrdtTypeName, ...deltas: DocState[]) => deltas.reduce(join, emptyDoc(type));
const hex = (doc: DocState) => Buffer.from(encodeDoc(doc)).toString('hex');

/** Joins `a` and `b` in both orders, checks the results are byte-identical, returns one. */
function joinBoth(a: DocState, b: DocState): DocState {
  const ab = join(a, b);
  const ba = join(b, a);
  if (hex(ab) !== hex(ba)) throw new Error('join is not commutative here');
  return ab;
}

/** The error code `fn` throws, or a description of what happened instead. */
function errorCode(fn: () => unknown): string {
  try {
    fn();
    return 'no error';
  } catch (error) {
    if (isTesseraError(error)) return error.code;
    return `not a TesseraError: ${String(error)}`;
  }
}

const set = (path: string[], value: Json): Operation => ({ op: 'set', path, value });
const put = (value: Json): Operation => ({ op: 'put', value });
const increment = (amount: number): Operation => ({ op: 'increment', amount });

// ---------------------------------------------------------------------------------------------------------
// map

t.test('map: nested objects merge field by field', async (t) => {
  const n1 = op(emptyDoc('map'), 'n1', 1, set(['profile', 'name'], 'Ada'));
  const n2 = op(emptyDoc('map'), 'n2', 2, set(['profile', 'age'], 36));
  const n2b = op(n2.state, 'n2', 3, set(['settings', 'theme'], 'dark'));
  const merged = joinBoth(n1.state, n2b.state);
  t.strictSame(docValue(merged), { profile: { age: 36, name: 'Ada' }, settings: { theme: 'dark' } });
  t.strictSame(joinDocs(n1.state, n2b.delta).conflicts, [], 'different fields do not conflict');
  // Whole-object puts that did not see each other merge the same way: a put removes only what it observed.
  const p1 = op(emptyDoc('map'), 'n1', 1, put({ profile: { name: 'Ada' } }));
  const p2 = op(emptyDoc('map'), 'n2', 2, put({ profile: { age: 36 } }));
  t.strictSame(docValue(joinBoth(p1.state, p2.state)), { profile: { age: 36, name: 'Ada' } });
});

t.test('map: deleting a field removes only the writes it observed', async (t) => {
  const w1 = op(emptyDoc('map'), 'n1', 1, put({ x: 1, y: 'keep' }));
  const atN2 = receive('map', w1.delta);
  const deleted = op(atN2, 'n2', 3, { op: 'delete-field', path: ['x'] });
  t.strictSame(docValue(deleted.state), { y: 'keep' }, 'the delete removes x at n2');
  // n1 writes x again without having seen the delete.
  const w2 = op(w1.state, 'n1', 2, set(['x'], 2));
  const merged = joinBoth(deleted.state, w2.state);
  t.strictSame(docValue(merged), { x: 2, y: 'keep' }, 'the concurrent write of x survives; the observed one does not come back');
  // A delete that observed both writes removes x for good.
  const final = op(merged, 'n2', 4, { op: 'delete-field', path: ['x'] });
  t.strictSame(docValue(joinBoth(final.state, w2.state)), { y: 'keep' });
  t.equal(
    mutate(final.state, 'n2', at(5), operationMutator('map', { op: 'delete-field', path: ['x'] }, 'test/map')),
    null,
    'deleting an absent field changes nothing',
  );
});

t.test('map: put replaces the whole object', async (t) => {
  const w1 = op(emptyDoc('map'), 'n1', 1, put({ a: 1, b: { c: 2 } }));
  const w2 = op(w1.state, 'n1', 2, set(['b', 'd'], 3));
  const replaced = op(w2.state, 'n1', 3, put({ e: 4 }));
  t.strictSame(docValue(replaced.state), { e: 4 });
  const elsewhere = receive('map', w1.delta, w2.delta);
  t.strictSame(docValue(join(elsewhere, replaced.delta)), { e: 4 }, 'the put replicates as a replacement');
  // A field written concurrently with the put is not something the put observed: it survives.
  const concurrent = op(elsewhere, 'n2', 4, set(['f'], 5));
  t.strictSame(docValue(joinBoth(replaced.state, concurrent.state)), { e: 4, f: 5 });
});

t.test('map: a register and an object written concurrently at one path: the later HLC shows, with a type-clash record', async (t) => {
  for (const registerLater of [true, false]) {
    const register = op(emptyDoc('map'), 'n1', registerLater ? 20 : 10, set(['x'], 5));
    const object = op(emptyDoc('map'), 'n2', registerLater ? 10 : 20, set(['x', 'y'], 1));
    const merged = joinBoth(register.state, object.state);
    t.strictSame(docValue(merged), registerLater ? { x: 5 } : { x: { y: 1 } }, `register ${registerLater ? 'later' : 'earlier'}: value`);
    for (const { conflicts } of [joinDocs(register.state, object.delta), joinDocs(object.state, register.delta)]) {
      const clash = conflicts.filter((c) => c.kind === 'type-clash');
      t.equal(clash.length, 1, 'one type-clash record');
      t.strictSame(clash[0]?.path, ['x']);
      t.strictSame(clash[0]?.winner.value, registerLater ? 5 : { y: 1 }, 'winner');
      t.strictSame(clash[0]?.loser.value, registerLater ? { y: 1 } : 5, 'loser');
    }
    // A write that saw both ends the clash.
    const resolved = op(merged, 'n3', 1, set(['x'], 'z'));
    t.strictSame(docValue(resolved.state), { x: 'z' });
    t.strictSame(joinDocs(merged, resolved.delta).conflicts, []);
  }
});

// Goal: "__proto__" can never become a field name — it could not be decoded again and would set a prototype
// when the value is read back. Method: every way in (field path, nested value, put, a peer's encoded delta).
t.test('map: a field named __proto__ is refused at every entry point', async (t) => {
  const polluted = JSON.parse('{"__proto__":{"polluted":true}}') as Json;
  t.throws(() => op(emptyDoc('map'), 'n1', 1, set(['__proto__'], 1)), { code: 'ERR_VALUE_INVALID' }, 'as a field path');
  t.throws(() => op(emptyDoc('map'), 'n1', 1, set(['a', '__proto__'], 1)), { code: 'ERR_VALUE_INVALID' }, 'inside a field path');
  t.throws(() => op(emptyDoc('map'), 'n1', 1, set(['a'], polluted)), { code: 'ERR_VALUE_INVALID' }, 'inside a field value');
  t.throws(() => op(emptyDoc('map'), 'n1', 1, put({ a: polluted })), { code: 'ERR_VALUE_INVALID' }, 'inside a put');
  // A delta from a peer that names the field directly in the canonical form does not decode.
  const honest = op(emptyDoc('map'), 'n1', 1, set(['x'], 1)).delta;
  const form = decode(encodeDoc(honest)) as unknown[];
  const body = form[8] as [unknown[], Array<[string, unknown]>];
  body[1][0]![0] = '__proto__';
  t.throws(() => decodeDoc(encode(form)), { code: 'ERR_DECODE' }, "in a peer's encoded delta");
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is untouched');
});

t.test('map: put {} on a new document creates it, empty', async (t) => {
  const created = mutate(emptyDoc('map'), 'n1', at(1), operationMutator('map', put({}), 'test/map'));
  t.not(created, null, 'the put is a change');
  t.ok(created !== null && docExists(created.state), 'the document exists afterwards');
  t.strictSame(created === null ? null : docValue(created.state), {});
});

// ---------------------------------------------------------------------------------------------------------
// lww and mv

t.test('lww: a write that saw another replaces it; concurrent writes show the later HLC with a conflict record', async (t) => {
  const first = op(emptyDoc('lww'), 'n1', 100, put('early-but-high-clock'));
  const later = op(receive('lww', first.delta), 'n2', 1, put('causally-later'));
  t.equal(docValue(joinBoth(first.state, later.state)), 'causally-later');
  const c1 = op(emptyDoc('lww'), 'n1', 5, put('a'));
  const c2 = op(emptyDoc('lww'), 'n2', 6, put('b'));
  t.equal(docValue(joinBoth(c1.state, c2.state)), 'b', 'the later HLC shows');
  const { conflicts } = joinDocs(c2.state, c1.delta);
  t.strictSame(
    conflicts.map((c) => [c.kind, c.winner.value, c.loser.value]),
    [['concurrent-write', 'b', 'a']],
  );
});

t.test('mv: concurrent writes are kept as siblings until a write that saw them', async (t) => {
  const a = op(emptyDoc('mv'), 'n1', 1, put('a'));
  const b = op(emptyDoc('mv'), 'n2', 2, put('b'));
  const both = joinBoth(a.state, b.state);
  t.strictSame(docValue(both), ['b', 'a'], 'siblings, newest first');
  t.strictSame(joinDocs(a.state, b.delta).conflicts, [], 'siblings are not conflict records: nothing is hidden');
  // n3 saw only a: its write replaces a but not b.
  const c = op(receive('mv', a.delta), 'n3', 3, put('c'));
  t.strictSame(docValue(joinBoth(both, c.state)), ['c', 'b']);
  // A write that saw everything resolves the siblings.
  const d = op(joinBoth(both, c.state), 'n1', 4, put('d'));
  t.strictSame(docValue(joinBoth(receive('mv', a.delta, b.delta, c.delta), d.delta)), ['d']);
});

// ---------------------------------------------------------------------------------------------------------
// counter

t.test('counter: increments and decrements from several nodes add up', async (t) => {
  const n1 = op(emptyDoc('counter'), 'n1', 1, increment(5));
  const n1b = op(n1.state, 'n1', 2, increment(1));
  const n2 = op(emptyDoc('counter'), 'n2', 1, increment(-2));
  const n3 = op(receive('counter', n1.delta), 'n3', 3, increment(10));
  const all = [n1.delta, n1b.delta, n2.delta, n3.delta];
  t.equal(docValue(receive('counter', ...all)), 14);
  t.equal(docValue(receive('counter', ...all.reverse())), 14, 'in any order');
  t.equal(docValue(receive('counter', ...all, ...all)), 14, 'and with duplicates');
});

t.test('counter: a delete resets; an increment from another node concurrent with the delete survives', async (t) => {
  const base = op(emptyDoc('counter'), 'n1', 1, increment(5));
  const atN2 = receive('counter', base.delta);
  const atN3 = receive('counter', base.delta);
  const reset = deleteDoc(atN2, 'n2', 2);
  t.equal(docValue(reset.state), 0);
  t.notOk(docExists(reset.state), 'the deleted counter does not exist');
  const concurrent = op(atN3, 'n3', 3, increment(2));
  const merged = joinBoth(reset.state, concurrent.state);
  t.equal(docValue(merged), 2, 'the observed 5 is reset, the concurrent +2 survives');
  t.ok(docExists(merged));
  const after = op(reset.state, 'n2', 4, increment(1));
  t.equal(docValue(after.state), 1, 'counting starts again from zero after the delete');
});

// Goal: pin the documented reset semantics of the causal counter (Almeida, Shoker, Baquero: each node keeps one
// entry with its running total; a delete removes the entries it observed). A node that increments
// concurrently with a delete carries its whole running total forward — the observed reset does not reach it.
// Method: n1 +5; n2 deletes having seen it; n1 +1 before hearing of the delete; merge both ways.
t.test('counter: a node incrementing concurrently with a delete keeps its running total (documented)', async (t) => {
  const base = op(emptyDoc('counter'), 'n1', 1, increment(5));
  const reset = deleteDoc(receive('counter', base.delta), 'n2', 2);
  const concurrent = op(base.state, 'n1', 3, increment(1));
  t.equal(docValue(joinBoth(reset.state, concurrent.state)), 6, "n1's entry (running total 6) survives the delete that removed its earlier entry");
  t.equal(docValue(joinBoth(concurrent.state, reset.state)), 6, 'in either order');
  t.ok(docExists(joinBoth(reset.state, concurrent.state)), 'the increment keeps the counter alive');
});

// ---------------------------------------------------------------------------------------------------------
// set

t.test('set: add wins over a concurrent remove', async (t) => {
  const added = op(emptyDoc('set'), 'n1', 1, { op: 'add', element: 'a' });
  const removed = op(receive('set', added.delta), 'n2', 2, { op: 'remove', element: 'a' });
  t.strictSame(docValue(removed.state), []);
  const readded = op(added.state, 'n1', 3, { op: 'add', element: 'a' });
  t.strictSame(docValue(joinBoth(removed.state, readded.state)), ['a'], 'the add n2 did not observe survives its remove');
  const other = op(emptyDoc('set'), 'n3', 1, { op: 'add', element: 'a' });
  t.strictSame(docValue(joinBoth(removed.state, other.state)), ['a'], 'so does an add from a node n2 never heard of');
  const removedAll = op(joinBoth(joinBoth(removed.state, readded.state), other.state), 'n2', 4, { op: 'remove', element: 'a' });
  t.strictSame(docValue(removedAll.state), [], 'a remove that observed every add removes the element');
  t.strictSame(docValue(op(emptyDoc('set'), 'n1', 1, { op: 'add', element: 1 }).state), [1], 'elements keep their type');
  const numberAndString = receive(
    'set',
    op(emptyDoc('set'), 'n1', 1, { op: 'add', element: 1 }).delta,
    op(emptyDoc('set'), 'n2', 1, { op: 'add', element: '1' }).delta,
  );
  t.strictSame(docValue(numberAndString), ['1', 1], '1 and "1" are different elements');
});

t.test('set: put replaces the observed elements; a concurrent add survives', async (t) => {
  const ab = op(op(emptyDoc('set'), 'n1', 1, { op: 'add', element: 'a' }).state, 'n1', 2, { op: 'add', element: 'b' });
  const replaced = op(ab.state, 'n1', 3, put(['x', 'y', 'x']));
  t.strictSame(docValue(replaced.state), ['x', 'y']);
  const concurrent = op(receive('set', ab.delta), 'n2', 4, { op: 'add', element: 'c' });
  t.strictSame(docValue(joinBoth(replaced.state, concurrent.state)), ['c', 'x', 'y']);
});

// ---------------------------------------------------------------------------------------------------------
// yjs and automerge

const yjsEdit =
  (edit: (doc: Y.Doc) => void): BodyMutator =>
  (body, ctx) =>
    yjsChange(body as YjsBody, edit, ctx);
const yjsText = (doc: DocState) =>
  yjsDoc(doc.body as YjsBody)
    .getText('t')
    .toString();
const amEdit =
  (edit: (doc: Record<string, unknown>) => void): BodyMutator =>
  (body, ctx) =>
    automergeChange<Record<string, unknown>>(body as AutomergeBody, edit, ctx);

t.test('yjs: concurrent text edits from two nodes merge', async (t) => {
  const hello = write(
    emptyDoc('yjs'),
    'n1',
    1,
    yjsEdit((doc) => doc.getText('t').insert(0, 'hello')),
  );
  const atN2 = receive('yjs', hello.delta);
  const n1 = write(
    hello.state,
    'n1',
    2,
    yjsEdit((doc) => doc.getText('t').insert(5, ' world')),
  );
  const n2 = write(
    atN2,
    'n2',
    2,
    yjsEdit((doc) => doc.getText('t').insert(0, 'Hi, ')),
  );
  t.equal(yjsText(joinBoth(n1.state, n2.state)), 'Hi, hello world');
  t.equal(yjsText(receive('yjs', n2.delta, n1.delta, hello.delta)), 'Hi, hello world', 'deltas in any order');
});

t.test('yjs: an update from an outside Yjs client applies through the yjs-update operation', async (t) => {
  const client = new Y.Doc();
  client.getText('t').insert(0, 'from the app');
  const applied = op(emptyDoc('yjs'), 'n1', 1, { op: 'yjs-update', update: Y.encodeStateAsUpdate(client) });
  t.equal(yjsText(applied.state), 'from the app');
  t.equal(
    errorCode(() => op(emptyDoc('yjs'), 'n1', 1, { op: 'yjs-update', update: new Uint8Array([255, 255, 255, 255]) })),
    'ERR_YJS_UPDATE_INVALID',
    'bytes that are not a Yjs update',
  );
  t.equal(
    errorCode(() => operationMutator('yjs', { op: 'yjs-update', update: 'text' as unknown as Uint8Array }, 'test/yjs')),
    'ERR_YJS_UPDATE_INVALID',
    'an update that is not bytes',
  );
});

t.test('automerge: concurrent changes from two nodes merge', async (t) => {
  const title = write(
    emptyDoc('automerge'),
    'n1',
    1,
    amEdit((doc) => {
      doc.title = 'notes';
    }),
  );
  const atN2 = receive('automerge', title.delta);
  const n1 = write(
    title.state,
    'n1',
    2,
    amEdit((doc) => {
      doc.a = 1;
    }),
  );
  const n2 = write(
    atN2,
    'n2',
    2,
    amEdit((doc) => {
      doc.b = 2;
    }),
  );
  t.strictSame(docValue(joinBoth(n1.state, n2.state)), { a: 1, b: 2, title: 'notes' });
  t.strictSame(docValue(receive('automerge', n2.delta, n1.delta, title.delta)), { a: 1, b: 2, title: 'notes' }, 'deltas in any order');
});

t.test('automerge: changes from an outside Automerge client apply through automerge-changes', async (t) => {
  const client = A.from<{ x: number }>({ x: 1 });
  const applied = op(emptyDoc('automerge'), 'n1', 1, { op: 'automerge-changes', changes: A.getAllChanges(client) });
  t.strictSame(docValue(applied.state), { x: 1 });
  t.equal(
    errorCode(() => op(emptyDoc('automerge'), 'n1', 1, { op: 'automerge-changes', changes: [new Uint8Array([1, 2, 3])] })),
    'ERR_AUTOMERGE_CHANGE_INVALID',
    'bytes that are not an Automerge change',
  );
  t.equal(
    errorCode(() => operationMutator('automerge', { op: 'automerge-changes', changes: [] }, 'test/automerge')),
    'ERR_AUTOMERGE_CHANGE_INVALID',
    'an empty list of changes',
  );
});

// Goal: a change the automerge-changes operation accepts can be read back; one that cannot be applied is
// refused with ERR_AUTOMERGE_CHANGE_INVALID (the operation only runs Automerge's decodeChange, which does not
// verify the change's checksum).
// Method: a valid change (actor 5f46118b3275ef80 sets a = "x") with two bytes flipped, which decodeChange
// still accepts. Today the write is accepted and docValue throws Automerge's PanicError.
t.test('automerge: a damaged change is refused by automerge-changes, or the document still reads', async (t) => {
  const change = Uint8Array.from([
    133, 111, 74, 131, 208, 251, 164, 59, 1, 66, 0, 8, 95, 70, 17, 139, 50, 117, 239, 128, 1, 1, 128, 226, 207, 170, 6, 0, 0, 9, 1, 4, 2, 4, 19, 4, 21, 5, 52,
    2, 66, 3, 86, 3, 87, 1, 112, 2, 0, 1, 127, 0, 0, 1, 127, 1, 0, 1, 127, 0, 127, 1, 97, 0, 1, 1, 1, 126, 4, 1, 126, 0, 22, 120, 2, 0,
  ]);
  t.strictSame(docValue(op(emptyDoc('automerge'), 'n1', 1, { op: 'automerge-changes', changes: [change] }).state), { a: 'x' }, 'the undamaged change applies');
  change[20] = change[20]! ^ 128;
  change[22] = change[22]! ^ 129;
  const outcome = errorCode(() => docValue(op(emptyDoc('automerge'), 'n1', 1, { op: 'automerge-changes', changes: [change] }).state));
  t.ok(outcome === 'ERR_AUTOMERGE_CHANGE_INVALID' || outcome === 'no error', `outcome: ${outcome}`);
});

t.test('yjs and automerge: a delete discards a concurrent update, with a delete-discarded-update record', async (t) => {
  const cases = [
    { type: 'yjs' as const, first: yjsEdit((doc) => doc.getText('t').insert(0, 'a')), second: yjsEdit((doc) => doc.getText('t').insert(0, 'b')) },
    {
      type: 'automerge' as const,
      first: amEdit((doc) => {
        doc.a = 1;
      }),
      second: amEdit((doc) => {
        doc.b = 2;
      }),
    },
  ];
  for (const { type, first, second } of cases) {
    const w1 = write(emptyDoc(type), 'n1', 1, first);
    const deleted = deleteDoc(receive(type, w1.delta), 'n2', 2);
    const w2 = write(w1.state, 'n1', 3, second);
    for (const [name, result] of [
      ['delete first', joinDocs(deleted.state, w2.delta)],
      ['update first', joinDocs(w2.state, deleted.delta)],
    ] as const) {
      t.notOk(docExists(result.state), `${type}, ${name}: the document stays deleted`);
      t.strictSame(
        result.conflicts.map((c) => c.kind),
        ['delete-discarded-update'],
        `${type}, ${name}: one delete-discarded-update record`,
      );
      const loser = result.conflicts[0]?.loser.value as { bytes?: number; base64?: string } | undefined;
      t.ok(
        loser !== undefined && typeof loser.bytes === 'number' && loser.bytes > 0 && typeof loser.base64 === 'string',
        `${type}, ${name}: the record keeps the discarded content`,
      );
    }
    t.strictSame(joinDocs(deleted.state, w1.delta).conflicts, [], `${type}: the update the delete observed is not a conflict`);
    // A write after the delete starts a new, empty incarnation that holds only the new content.
    const again = write(deleted.state, 'n2', 4, second);
    t.ok(docExists(again.state), `${type}: a write after the delete re-creates the document`);
  }
  const yjsAgain = write(
    deleteDoc(
      write(
        emptyDoc('yjs'),
        'n1',
        1,
        yjsEdit((d) => d.getText('t').insert(0, 'old')),
      ).state,
      'n1',
      2,
    ).state,
    'n1',
    3,
    yjsEdit((d) => d.getText('t').insert(0, 'new')),
  );
  t.equal(yjsText(yjsAgain.state), 'new', 'yjs: the new incarnation does not contain the deleted text');
});

// ---------------------------------------------------------------------------------------------------------
// every type

/** A first write for each type. */
const firstWrite: Record<CrdtTypeName, BodyMutator> = {
  map: operationMutator('map', set(['a'], 1), 'test/map'),
  lww: operationMutator('lww', put(1), 'test/lww'),
  mv: operationMutator('mv', put(1), 'test/mv'),
  counter: operationMutator('counter', increment(1), 'test/counter'),
  set: operationMutator('set', { op: 'add', element: 1 }, 'test/set'),
  yjs: yjsEdit((doc) => doc.getText('t').insert(0, 'a')),
  automerge: amEdit((doc) => {
    doc.a = 1;
  }),
};

t.test('deleted documents stay deleted when old deltas are replayed', async (t) => {
  for (const type of crdtTypeNames) {
    const w1 = write(emptyDoc(type), 'n1', 1, firstWrite[type], { add: ['t1'] });
    const w2 = write(w1.state, 'n1', 2, firstWrite[type]);
    const deleted = deleteDoc(w2.state, 'n2', 3);
    t.notOk(docExists(deleted.state), `${type}: deleted`);
    t.strictSame(docTags(deleted.state), [], `${type}: a delete removes the tags too`);
    let state = deleted.state;
    for (const old of [w1.delta, w2.delta, w1.delta]) {
      t.ok(alreadySeen(state, old), `${type}: the old delta is recognised as seen`);
      state = join(state, old);
    }
    t.equal(hex(state), hex(deleted.state), `${type}: replaying old deltas leaves the bytes unchanged`);
    const elsewhere = receive(type, deleted.delta, w2.delta, w1.delta);
    t.notOk(docExists(elsewhere), `${type}: a replica receiving the delete first never shows the document`);
  }
});

t.test('tags are added and removed with writes and replicate, add-wins', async (t) => {
  const w1 = write(emptyDoc('lww'), 'n1', 1, firstWrite.lww, { add: ['t1', 't2'] });
  const atN2 = receive('lww', w1.delta);
  t.strictSame(docTags(atN2), ['t1', 't2'], 'tags travel with the write');
  const untag = write(atN2, 'n2', 2, null, { remove: ['t1'] });
  t.strictSame(docTags(untag.state), ['t2'], 'a tag-only change');
  const retag = write(w1.state, 'n1', 3, null, { add: ['t1', 't3'] });
  t.strictSame(docTags(joinBoth(untag.state, retag.state)), ['t1', 't2', 't3'], 'a concurrent re-add wins over the remove');
  const observed = write(joinBoth(untag.state, retag.state), 'n2', 4, null, { remove: ['t1'] });
  t.strictSame(docTags(receive('lww', w1.delta, untag.delta, retag.delta, observed.delta)), ['t2', 't3'], 'a remove that saw every add');
  t.equal(mutate(observed.state, 'n2', at(5), null, { remove: ['t9'] }), null, 'removing an absent tag changes nothing');
  t.equal(
    errorCode(() => mutate(observed.state, 'n2', at(5), null, { add: ['Not A Tag'] })),
    'ERR_TAG_INVALID',
  );
});

/** One example of every operation. */
const operationExamples: Record<Operation['op'], Operation> = {
  put: put({ a: 1 }),
  set: set(['a'], 1),
  'delete-field': { op: 'delete-field', path: ['a'] },
  increment: increment(1),
  add: { op: 'add', element: 1 },
  remove: { op: 'remove', element: 1 },
  'yjs-update': { op: 'yjs-update', update: new Uint8Array([0, 0]) },
  'automerge-changes': { op: 'automerge-changes', changes: [new Uint8Array([1])] },
};

t.test('an operation of the wrong type throws ERR_TYPE_MISMATCH', async (t) => {
  let checked = 0;
  for (const type of crdtTypeNames) {
    for (const operation of Object.values(operationExamples)) {
      if (operationsByType[type].includes(operation.op)) continue;
      checked++;
      t.equal(
        errorCode(() => operationMutator(type, operation, `test/${type}`)),
        'ERR_TYPE_MISMATCH',
        `${operation.op} on ${type}`,
      );
    }
  }
  t.equal(checked, 45, 'all 45 (type, operation) pairs outside operationsByType were refused');
  const error = (() => {
    try {
      operationMutator('map', increment(1), 'users/u42');
    } catch (e) {
      return e;
    }
  })();
  t.ok(isTesseraError(error, 'ERR_TYPE_MISMATCH') && error.status === 409 && error.message.includes('users/u42'), 'status 409, message names the document');
});

function nested(depth: number): Json {
  let value: Json = 1;
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? { a: value } : [value];
  return value;
}

t.test('invalid values throw ERR_VALUE_INVALID', async (t) => {
  const invalid: Array<[string, unknown]> = [
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['-Infinity', -Infinity],
    ['undefined', undefined],
    ['a function', () => 1],
    ['a Date', new Date(0)],
    ['a Map', new Map()],
    ['a bigint', 1n],
    ['a symbol', Symbol('s')],
    ['NaN inside an array', { a: [1, NaN] }],
    ['undefined inside an object', { a: { b: undefined } }],
    [`nesting of ${jsonDepthMax + 1} levels`, nested(jsonDepthMax + 1)],
  ];
  for (const [name, value] of invalid) {
    for (const [type, operation] of [
      ['lww', put(value as Json)],
      ['mv', put(value as Json)],
      ['map', set(['f'], value as Json)],
    ] as const) {
      t.equal(
        errorCode(() => operationMutator(type, operation, `test/${type}`)),
        'ERR_VALUE_INVALID',
        `${type} ${operation.op}: ${name}`,
      );
    }
  }
  t.equal(
    errorCode(() => operationMutator('lww', put(nested(jsonDepthMax)), 'test/lww')),
    'no error',
    `nesting of exactly ${jsonDepthMax} levels is accepted`,
  );
  const shapes: Array<[string, CrdtTypeName, Operation]> = [
    ['a map put of a non-object', 'map', put([1, 2])],
    ['a map put of null', 'map', put(null)],
    ['a set put of a non-array', 'set', put({ a: 1 })],
    ['a set put of objects', 'set', put([{ a: 1 }])],
    ['a set element that is an object', 'set', { op: 'add', element: { a: 1 } as unknown as null }],
    ['a set element that is NaN', 'set', { op: 'remove', element: NaN }],
    ['an empty field path', 'map', set([], 1)],
    ['an empty field name', 'map', set(['a', ''], 1)],
    ['a field path that is not an array', 'map', { op: 'delete-field', path: 'a.b' as unknown as string[] }],
    [`a field name over 256 bytes`, 'map', set(['x'.repeat(257)], 1)],
  ];
  for (const [name, type, operation] of shapes) {
    t.equal(
      errorCode(() => operationMutator(type, operation, `test/${type}`)),
      'ERR_VALUE_INVALID',
      name,
    );
  }
  t.equal(
    errorCode(() => operationMutator('counter', increment(0.5), 'test/counter')),
    'ERR_COUNTER_RANGE',
    'a fractional increment',
  );
});

t.test('values over 1 MiB throw ERR_VALUE_TOO_LARGE', async (t) => {
  // A string of n >= 65536 characters encodes to n + 5 bytes (MessagePack str32).
  const fits = 'x'.repeat(valueBytesMax - 5);
  const over = 'x'.repeat(valueBytesMax - 4);
  t.equal(
    errorCode(() => operationMutator('lww', put(fits), 'test/lww')),
    'no error',
    'exactly 1 MiB encoded is accepted',
  );
  t.equal(
    errorCode(() => operationMutator('lww', put(over), 'test/lww')),
    'ERR_VALUE_TOO_LARGE',
    'lww put of 1 MiB + 1 byte',
  );
  t.equal(
    errorCode(() => operationMutator('map', set(['f'], over), 'test/map')),
    'ERR_VALUE_TOO_LARGE',
    'map field',
  );
  t.equal(
    errorCode(() => operationMutator('map', put({ f: over }), 'test/map')),
    'ERR_VALUE_TOO_LARGE',
    'map put',
  );
  t.equal(
    errorCode(() => operationMutator('set', { op: 'add', element: over }, 'test/set')),
    'ERR_VALUE_TOO_LARGE',
    'set element',
  );
  t.equal(
    errorCode(() => operationMutator('yjs', { op: 'yjs-update', update: new Uint8Array(valueBytesMax + 1) }, 'test/yjs')),
    'ERR_VALUE_TOO_LARGE',
    'Yjs update',
  );
  t.equal(
    errorCode(() => operationMutator('automerge', { op: 'automerge-changes', changes: [new Uint8Array(valueBytesMax), new Uint8Array(1)] }, 'test/automerge')),
    'ERR_VALUE_TOO_LARGE',
    'Automerge changes, counted together',
  );
  const error = (() => {
    try {
      operationMutator('lww', put(over), 'big/doc');
    } catch (e) {
      return e;
    }
  })();
  t.ok(isTesseraError(error) && error.status === 413 && error.message.includes(String(valueBytesMax)), 'status 413, the message names the limit');
});

t.test('an increment that is not a safe integer: ERR_COUNTER_RANGE on counters, ERR_TYPE_MISMATCH elsewhere', async (t) => {
  // The type is checked first, so the code says what is wrong with the request.
  const codes = crdtTypeNames.map((type) => errorCode(() => operationMutator(type, { op: 'increment', amount: NaN }, `test/${type}`)));
  t.strictSame(
    codes,
    crdtTypeNames.map((type) => (type === 'counter' ? 'ERR_COUNTER_RANGE' : 'ERR_TYPE_MISMATCH')),
  );
});
