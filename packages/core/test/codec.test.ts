// Goal: the canonical codec is safe on bytes from outside and exact on its own output. `decodeDoc` on any
// input either returns a usable DocState or throws a TesseraError with code ERR_DECODE (a decoded Yjs or
// Automerge body may later fail with ERR_YJS_UPDATE_INVALID / ERR_AUTOMERGE_CHANGE_INVALID when used) —
// never another exception, never a prototype change. decode(encode(x)) re-encodes to the same bytes.
// Method: fast-check over random bytes, over valid encodings of random states (from the history generator)
// that are truncated or mutated, and over canonical forms made non-canonical (unsorted, duplicated, wrong
// version, wrong shape); examples for the size bound, deep nesting and `__proto__` keys.
import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import fc from 'fast-check';
import {
  type CrdtTypeName,
  type DocState,
  type Json,
  decodeBounded,
  decodeDoc,
  docBytesMax,
  docExists,
  docFormatVersion,
  decodeDepthMax,
  docTags,
  docValue,
  emptyDoc,
  encodeCanonical,
  encodeDoc,
  isTesseraError,
  joinDocs,
  jsonDepthMax,
  mutate,
  operationMutator,
  alreadySeen,
} from '@tessera/core';
import { Encoder } from '@msgpack/msgpack';
import { historyArb, runHistory, typeNames } from './helpers/history.js';

/** An encoder without the depth bound of the canonical one, to build forms nested too deep on purpose. */
const deepEncoder = new Encoder({ sortKeys: true, maxDepth: 1_000_000 });

/** What using a decoded state may throw: decoding errors, and invalid Yjs/Automerge content found on use. */
const codesOnUse = new Set(['ERR_DECODE', 'ERR_YJS_UPDATE_INVALID', 'ERR_AUTOMERGE_CHANGE_INVALID']);

/**
 * Decodes `bytes` and, if that succeeds, uses the state the ways a replica would. Throws (failing the
 * property) on any exception other than the allowed TesseraErrors. Returns whether decoding succeeded.
 */
function decodeAndUse(bytes: Uint8Array): boolean {
  let doc: DocState;
  try {
    doc = decodeDoc(bytes);
  } catch (error) {
    if (isTesseraError(error, 'ERR_DECODE')) return false;
    throw new Error(`decodeDoc threw something other than ERR_DECODE: ${describe(error)}`, { cause: error });
  }
  for (const [what, use] of [
    ['encodeDoc', () => encodeDoc(doc)],
    ['docValue', () => docValue(doc)],
    ['docExists', () => docExists(doc)],
    ['docTags', () => docTags(doc)],
    ['join with itself', () => joinDocs(doc, doc)],
    ['join into an empty state', () => joinDocs(emptyDoc(doc.type), doc)],
  ] as const) {
    try {
      use();
    } catch (error) {
      if (isTesseraError(error) && codesOnUse.has(error.code)) continue;
      throw new Error(`${what} on a decoded state threw ${describe(error)}`, { cause: error });
    }
  }
  return true;
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}${isTesseraError(error) ? ` ${error.code}` : ''}: ${error.message}` : String(error);
}

function prototypesClean(): boolean {
  return Object.getPrototypeOf({}) === Object.prototype && !('polluted' in {}) && !('polluted' in Object.prototype);
}

/** Random states of one of `types`: the deltas and final replica states of a random history. */
function statesOf(types: readonly CrdtTypeName[], commandsMax = 25): fc.Arbitrary<DocState[]> {
  return fc
    .constantFrom(...types)
    .chain((type) => historyArb(type, commandsMax))
    .map((history) => {
      const run = runHistory(history);
      return [...run.deltas.map((d) => d.delta), ...run.replicas.map((r) => r.state)];
    });
}

const statesArb = statesOf(typeNames);

// Goal: decoding is the exact inverse of encoding, for every type and every shape a history produces.
// Method: encode every delta and replica state of random histories, decode, re-encode: same bytes; the decoded
// state reads the same value, existence and tags, and is causally equal to the original.
t.test('decode(encode(x)) re-encodes to identical bytes for random states of every type', async (t) => {
  const seenTypes = new Set<CrdtTypeName>();
  fc.assert(
    fc.property(statesArb, (states) => {
      for (const state of states) {
        seenTypes.add(state.type);
        const bytes = encodeDoc(state);
        const decoded = decodeDoc(bytes);
        if (Buffer.compare(encodeDoc(decoded), bytes) !== 0) throw new Error(`${state.type}: re-encoding differs`);
        if (!isDeepStrictEqual(comparable(docValue(decoded)), comparable(docValue(state)))) throw new Error(`${state.type}: value differs`);
        if (docExists(decoded) !== docExists(state)) throw new Error(`${state.type}: existence differs`);
        if (!isDeepStrictEqual(docTags(decoded), docTags(state))) throw new Error(`${state.type}: tags differ`);
        if (!alreadySeen(decoded, state) || !alreadySeen(state, decoded)) throw new Error(`${state.type}: contexts differ`);
      }
    }),
    { numRuns: 150 },
  );
  t.strictSame([...seenTypes].sort(), [...typeNames].sort(), 'every type was generated');
});

/** A value in a form `isDeepStrictEqual` compares by content: bytes as hex, JSON through JSON (which also
 * drops the difference between null-prototype and ordinary objects, both valid input). */
function comparable(value: unknown): unknown {
  return value instanceof Uint8Array ? Buffer.from(value).toString('hex') : JSON.parse(JSON.stringify(value ?? null));
}

// Goal: arbitrary bytes never crash the decoder.
// Method: fully random bytes, and random bytes behind the header of a 7-item array with version 1 (so the
// decoder gets past the first checks).
t.test('random bytes decode to a usable DocState or throw ERR_DECODE', async (t) => {
  const header = encodeCanonical([docFormatVersion]).slice(0, 1); // fixarray marker, patched below
  header[0] = 0x97; // fixarray of 7 items
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (random, withHeader) => {
      const bytes = withHeader ? Buffer.concat([header, Uint8Array.of(docFormatVersion), random]) : random;
      decodeAndUse(bytes);
      if (!prototypesClean()) throw new Error('a prototype changed');
    }),
    { numRuns: 2_000 },
  );
  t.ok(prototypesClean());
});

// Goal: damaged encodings of real states (a cut-off file, a flipped bit, spliced bytes) never crash.
// Method: take a random valid encoding, then truncate it, overwrite bytes, insert bytes or delete a range.
// Count how many mutants still decoded, so the property is known to reach the body decoders.
t.test('truncated and mutated encodings decode to a usable DocState or throw ERR_DECODE', async (t) => {
  const mutationArb = fc.oneof(
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('xor' as const), at: fc.nat(), byte: fc.integer({ min: 1, max: 255 }) }),
    fc.record({ kind: fc.constant('overwrite' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }) }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
  );
  let decodedMutants = 0;
  let mutants = 0;
  fc.assert(
    fc.property(statesArb, fc.nat(), fc.array(mutationArb, { minLength: 1, maxLength: 2 }), (states, pick, mutations) => {
      let bytes = Buffer.from(encodeDoc(states[pick % states.length]!));
      for (const m of mutations) {
        const at = m.at % (bytes.length + 1);
        if (m.kind === 'truncate') bytes = bytes.subarray(0, at);
        else if (m.kind === 'xor') {
          bytes = Buffer.from(bytes);
          if (at < bytes.length) bytes[at] = bytes[at]! ^ m.byte;
        } else if (m.kind === 'overwrite') {
          bytes = Buffer.from(bytes);
          bytes.set(m.bytes.subarray(0, bytes.length - at), at);
        } else if (m.kind === 'insert') bytes = Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]);
        else bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + m.length)]);
      }
      mutants++;
      if (decodeAndUse(bytes)) decodedMutants++;
      if (!prototypesClean()) throw new Error('a prototype changed');
    }),
    { numRuns: 600 },
  );
  t.ok(decodedMutants > 0 && decodedMutants < mutants, `${decodedMutants} of ${mutants} mutants decoded; the rest were refused`);
});

const corruptionArb = fc.array(
  fc.record({
    kind: fc.constantFrom('xor', 'truncate', 'extend'),
    at: fc.nat(),
    byte: fc.integer({ min: 1, max: 255 }),
  }),
  { minLength: 1, maxLength: 3 },
);

type Corruption = { kind: string; at: number; byte: number };

/**
 * Corrupts the Yjs update or one Automerge change inside each state's form and decodes and uses the result.
 * Returns [corrupted, decoded] counts.
 */
function corruptContent(states: readonly DocState[], corruptions: readonly Corruption[]): [number, number] {
  let corrupted = 0;
  let decoded = 0;
  for (const state of states) {
    const form = formOf(state);
    const body = form[bodyAt] as [number, Uint8Array | Uint8Array[]];
    const payloads = body[1] instanceof Uint8Array ? [body[1]] : body[1];
    if (payloads.length === 0) continue;
    const which = corruptions[0]!.at % payloads.length;
    let bytes = Buffer.from(payloads[which]!);
    for (const c of corruptions) {
      const at = c.at % Math.max(1, bytes.length);
      if (c.kind === 'xor' && bytes.length > 0) bytes[at] = bytes[at]! ^ c.byte;
      else if (c.kind === 'truncate') bytes = bytes.subarray(0, at);
      else bytes = Buffer.concat([bytes, Buffer.from([c.byte])]);
    }
    if (body[1] instanceof Uint8Array) body[1] = bytes;
    else body[1][which] = bytes;
    corrupted++;
    if (decodeAndUse(encodeCanonical(form))) decoded++;
  }
  return [corrupted, decoded];
}

// Goal: a Yjs update is opaque bytes inside the document; a corrupted one must fail with
// ERR_YJS_UPDATE_INVALID when used (decodeDoc does not parse it), not crash or hang.
// Method: take Yjs states from random histories, corrupt the update inside an otherwise valid form (flip,
// truncate, extend), re-encode, decode and use.
t.test('corrupted Yjs updates inside a valid document decode, and fail on use with ERR_YJS_UPDATE_INVALID or work', async (t) => {
  let corrupted = 0;
  let decoded = 0;
  fc.assert(
    fc.property(statesOf(['yjs'], 20), corruptionArb, (states, corruptions) => {
      const [c, d] = corruptContent(states, corruptions);
      corrupted += c;
      decoded += d;
    }),
    { numRuns: 150 },
  );
  t.ok(corrupted > 100, `${corrupted} documents with a corrupted Yjs update were used (${decoded} decoded)`);
});

// Goal: the same for Automerge changes, which decodeDoc checks with Automerge's change decoder.
// Method: as above, for Automerge states. Today some corrupted changes pass `A.decodeChange` (it does not
// verify the checksum), so decodeDoc accepts them, and reading the document then throws Automerge's
// PanicError ("called `Option::unwrap()` on a `None` value") instead of a TesseraError.
t.test('corrupted Automerge changes inside a valid document are refused or fail with a code', async (t) => {
  // One known counterexample runs first, so the test fails on every run, not only when the search finds one:
  // a change setting a = "x", with bytes 20 and 22 flipped.
  const change = Uint8Array.from([
    133, 111, 74, 131, 208, 251, 164, 59, 1, 66, 0, 8, 95, 70, 17, 139, 50, 117, 239, 128, 1, 1, 128, 226, 207, 170, 6, 0, 0, 9, 1, 4, 2, 4, 19, 4, 21, 5, 52,
    2, 66, 3, 86, 3, 87, 1, 112, 2, 0, 1, 127, 0, 0, 1, 127, 1, 0, 1, 127, 0, 127, 1, 97, 0, 1, 1, 1, 126, 4, 1, 126, 0, 22, 120, 2, 0,
  ]);
  const known = mutate(
    emptyDoc('automerge'),
    'n1',
    { ms: 1, c: 0 },
    operationMutator('automerge', { op: 'automerge-changes', changes: [change] }, 'test/automerge'),
  )!.state;
  const knownCorruption = [
    { kind: 'xor', at: 20, byte: 128 },
    { kind: 'xor', at: 22, byte: 129 },
  ];
  let corrupted = 0;
  fc.assert(
    fc.property(statesOf(['automerge'], 20), corruptionArb, (states, corruptions) => {
      corrupted += corruptContent(states, corruptions)[0];
    }),
    { numRuns: 200, examples: [[[known], knownCorruption]] },
  );
  t.ok(corrupted > 100, `${corrupted} documents with a corrupted Automerge change were decoded or refused`);
});

/**
 * A canonical form as the decoder sees it: [version, type, vector, cloud, live, tags, tag vector, tag cloud,
 * body, type stamp, origin, hidden bodies].
 */
type Form = unknown[];
/** Where the body sits in a form. */
const bodyAt = 8;

function formOf(state: DocState): Form {
  return decodeBounded(encodeDoc(state), 'test') as Form;
}

/** Every sorted list of a form, as [name, list]: the lists the canonical form requires in order. */
function sortedLists(form: Form): Array<[string, unknown[]]> {
  const [, type, vector, cloud, live, tags, tagVector, tagCloud, body] = form as [
    number,
    string,
    unknown[],
    unknown[],
    unknown[],
    unknown[][],
    unknown[],
    unknown[],
    unknown,
  ];
  const lists: Array<[string, unknown[]]> = [
    ['context vector', vector],
    ['context cloud', cloud],
    ['presence dots', live],
    ['tags', tags],
    ['tag vector', tagVector],
    ['tag cloud', tagCloud],
  ];
  tags.forEach((tag, i) => lists.push([`tag ${i} dots`, tag[1] as unknown[]]));
  switch (type) {
    case 'lww':
    case 'mv':
    case 'counter':
      lists.push([`${type} entries`, body as unknown[]]);
      break;
    case 'set':
      lists.push(['set elements', body as unknown[]]);
      (body as unknown[][]).forEach((element, i) => lists.push([`set element ${i} dots`, element[1] as unknown[]]));
      break;
    case 'automerge':
      lists.push(['automerge changes', (body as unknown[])[1] as unknown[]], ['automerge writers', (body as unknown[])[2] as unknown[]]);
      break;
    case 'yjs':
      lists.push(['yjs writers', (body as unknown[])[2] as unknown[]]);
      break;
    case 'map': {
      const visit = (node: unknown[], path: string) => {
        lists.push([`map ${path} entries`, node[0] as unknown[]], [`map ${path} fields`, node[1] as unknown[]]);
        for (const [name, child] of node[1] as Array<[string, unknown[]]>) visit(child, `${path}.${name}`);
      };
      visit(body as unknown[], '');
      break;
    }
  }
  return lists;
}

// Goal: the decoder accepts only the canonical form: lists out of order or with a repeated item are refused,
// so two replicas can never hold different bytes for the same state.
// Method: for random states, take every sorted list with at least two items; swap two items, or repeat one;
// re-encode the form and decode: ERR_DECODE.
t.test('non-canonical lists (unsorted or repeated items) throw ERR_DECODE', async (t) => {
  const listsChecked = new Set<string>();
  fc.assert(
    fc.property(statesArb, fc.nat(), fc.boolean(), (states, pick, repeat) => {
      for (const state of states) {
        const lists = sortedLists(formOf(state)).filter(([, list]) => list.length >= 2);
        if (lists.length === 0) continue;
        const form = formOf(state);
        const [name, list] = sortedLists(form).filter(([, l]) => l.length >= 2)[pick % lists.length]!;
        const i = pick % (list.length - 1);
        if (repeat) list[i + 1] = list[i];
        else [list[i], list[i + 1]] = [list[i + 1], list[i]];
        listsChecked.add(name.replace(/[0-9]+|\.[a-z.]+/g, '*'));
        let code = 'no error';
        try {
          decodeDoc(encodeCanonical(form));
        } catch (error) {
          code = isTesseraError(error) ? error.code : describe(error);
        }
        if (code !== 'ERR_DECODE') throw new Error(`${state.type}: ${repeat ? 'repeating' : 'swapping'} items of ${name} gave ${code}`);
      }
    }),
    { numRuns: 300 },
  );
  t.ok(listsChecked.size >= 10, `lists made non-canonical: ${[...listsChecked].sort().join(', ')}`);
});

t.test('wrong version and wrong shapes throw ERR_DECODE', async (t) => {
  const lww = mutate(emptyDoc('lww'), 'n1', { ms: 1, c: 0 }, operationMutator('lww', { op: 'put', value: 'v' }, 'test/lww'))!.state;
  const form = formOf(lww);
  /** The form with field `at` replaced (and the type at 1 when given). */
  const withField = (at: number, value: unknown, type?: string): unknown[] => {
    const out = [...form];
    out[at] = value;
    if (type !== undefined) out[1] = type;
    return out;
  };
  const stamp = form[bodyAt + 1];
  const cases: Array<[string, unknown]> = [
    ['version 0', [0, ...form.slice(1)]],
    ['version 1 (read only by the migration)', [1, ...form.slice(1)]],
    ['version 3', [3, ...form.slice(1)]],
    ['version -1', [-1, ...form.slice(1)]],
    ['version "2"', ['2', ...form.slice(1)]],
    ['version 1.5', [1.5, ...form.slice(1)]],
    ['eleven items', form.slice(0, 11)],
    ['thirteen items', [...form, null]],
    ['a map instead of an array', { version: 2 }],
    ['a bare number', 2],
    ['nil', null],
    ['an unknown type', withField(1, 'graph')],
    ['a type that is not a string', withField(1, 7)],
    ['a vector entry with counter 0', withField(2, [['n1', 0]])],
    ['a vector entry with an invalid node id', withField(2, [['N 1', 1]])],
    ['a cloud dot with a fractional counter', withField(3, [['n1', 2.5]])],
    ['a presence dot that is not a pair', withField(4, [['n1']])],
    ['a tag that is not a valid tag', withField(5, [['Bad Tag', [['n1', 1]]]])],
    ['a tag without dots', withField(5, [['t1', []]])],
    ['a tag whose dot is not in the tag context', withField(5, [['t1', [['n1', 7]]]])],
    ['a register entry with an HLC counter over 0xffff', withField(bodyAt, [[['n1', 1], [1, 0x10000], 'v']])],
    ['a register value that is not JSON (bytes)', withField(bodyAt, [[['n1', 1], [1, 0], new Uint8Array(1)]])],
    ['a register value that is NaN', withField(bodyAt, [[['n1', 1], [1, 0], NaN]])],
    ['a counter amount over the safe range', withField(bodyAt, [[['n1', 1], 2 ** 53, 0]], 'counter')],
    ['a set element that is an array', withField(bodyAt, [[[1], [['n1', 1]]]], 'set')],
    ['a map node that is empty', withField(bodyAt, [[], [['a', [[], []]]]], 'map')],
    ['a yjs body with a string update', withField(bodyAt, [0, 'update', []], 'yjs')],
    ['a yjs body with a negative incarnation', withField(bodyAt, [-1, new Uint8Array(0), []], 'yjs')],
    ['a yjs body without its writers', withField(bodyAt, [0, new Uint8Array(0)], 'yjs')],
    ['a yjs writer with client id 0', withField(bodyAt, [0, new Uint8Array(0), [['n1', 0]]], 'yjs')],
    ['an automerge change that is not a change', withField(bodyAt, [0, [new Uint8Array([1, 2, 3])], []], 'automerge')],
    ['an automerge writer that is not an actor id', withField(bodyAt, [0, [], [['n1', 'xyz']]], 'automerge')],
    ['a type stamp with a bad node', withField(bodyAt + 1, [1, 0, 'N 1'])],
    ['a type stamp that is not a triple', withField(bodyAt + 1, [1, 0])],
    ['an origin with an invalid region', withField(bodyAt + 2, ['EU West', 1, 0, 'n1'])],
    ['an origin that is not a quadruple', withField(bodyAt + 2, ['eu-west', 1, 0])],
    ['content without a type stamp', withField(bodyAt + 1, null)],
    ['a hidden body of the current type', withField(bodyAt + 3, [['lww', form[bodyAt]]])],
    ['a hidden body that holds nothing', withField(bodyAt + 3, [['counter', []]])],
    ['a hidden body of an unknown type', withField(bodyAt + 3, [['graph', []]])],
  ];
  void stamp;
  cases.push(['a map nested deeper than the limit', withField(bodyAt, deepMapForm(jsonDepthMax + 2), 'map')]);
  for (const [name, bad] of cases) {
    let code = 'no error';
    try {
      decodeDoc(deepEncoder.encode(bad));
    } catch (error) {
      code = isTesseraError(error) ? error.code : describe(error);
    }
    t.equal(code, 'ERR_DECODE', name);
  }
  t.equal(decodeAndUse(encodeCanonical(form)), true, 'the unmodified form decodes (the cases above differ from it in one place)');
});

function deepMapForm(depth: number): unknown {
  let node: unknown = [[[['n1', 1], [1, 0], 1]], []];
  for (let i = 0; i < depth; i++) node = [[], [['a', node]]];
  return node;
}

t.test('oversize and non-byte input throw ERR_DECODE', async (t) => {
  const oversize = new Uint8Array(docBytesMax + 1);
  t.equal(
    code(() => decodeDoc(oversize)),
    'ERR_DECODE',
    `${docBytesMax + 1} bytes`,
  );
  t.match(
    message(() => decodeDoc(oversize)),
    String(docBytesMax),
    'the message names the limit',
  );
  t.equal(
    code(() => decodeBounded(new Uint8Array(11), 'test', 10)),
    'ERR_DECODE',
    'a smaller bound is respected',
  );
  for (const notBytes of ['text', [1, 2], null, undefined, 42]) {
    t.equal(
      code(() => decodeDoc(notBytes as unknown as Uint8Array)),
      'ERR_DECODE',
      `input ${JSON.stringify(notBytes)}`,
    );
  }
  t.equal(
    code(() => decodeDoc(new Uint8Array(0))),
    'ERR_DECODE',
    'no bytes',
  );
  // MessagePack headers that declare more than there is, or more than the limits allow.
  const declared: Array<[string, number[]]> = [
    ['an array32 of 4 billion items', [0xdd, 0xff, 0xff, 0xff, 0xff]],
    ['a map32 of 4 billion entries', [0xdf, 0xff, 0xff, 0xff, 0xff]],
    ['a str32 of 4 GiB', [0xdb, 0xff, 0xff, 0xff, 0xff]],
    ['a bin32 of 4 GiB', [0xc6, 0xff, 0xff, 0xff, 0xff]],
    ['an ext32 of 4 GiB', [0xc9, 0xff, 0xff, 0xff, 0xff, 0x01]],
    ['a timestamp extension', [0xd6, 0xff, 0, 0, 0, 0]],
    ['the reserved byte 0xc1', [0xc1]],
    ['100 000 nested arrays', [...new Array(100_000).fill(0x91), 0xc0]],
  ];
  for (const [name, bytes] of declared)
    t.equal(
      code(() => decodeDoc(Uint8Array.from(bytes))),
      'ERR_DECODE',
      name,
    );
  // A register value nested 100 000 arrays deep inside an otherwise valid document (0x91: a one-item array).
  const lww = mutate(emptyDoc('lww'), 'n1', { ms: 1, c: 0 }, operationMutator('lww', { op: 'put', value: 'MARKER' }, 'test/lww'))!.state;
  const valid = Buffer.from(encodeDoc(lww));
  const marker = valid.indexOf(Buffer.from([0xa6, ...Buffer.from('MARKER')]));
  t.ok(marker > 0, 'found the value in the encoding');
  const deep = Buffer.concat([valid.subarray(0, marker), Buffer.alloc(100_000, 0x91), Buffer.from([0xc0]), valid.subarray(marker + 7)]);
  t.equal(
    code(() => decodeDoc(deep)),
    'ERR_DECODE',
    'a register value nested 100 000 arrays deep',
  );
});

function code(fn: () => unknown): string {
  try {
    fn();
    return 'no error';
  } catch (error) {
    return isTesseraError(error) ? error.code : describe(error);
  }
}

function message(fn: () => unknown): string {
  try {
    fn();
    return '';
  } catch (error) {
    return (error as Error).message;
  }
}

// Goal: a `__proto__` key in a MessagePack map (a JSON value from a peer) cannot change any prototype.
// Method: encode forms whose register value, nested value and set of keys include `__proto__` (as an own
// key, the way JSON.parse creates it); decode; the result is ERR_DECODE or a state whose value has the key as
// an own field — and Object.prototype is untouched either way.
t.test('a __proto__ key in a MessagePack map does not pollute prototypes', async (t) => {
  const lww = mutate(emptyDoc('lww'), 'n1', { ms: 1, c: 0 }, operationMutator('lww', { op: 'put', value: 'v' }, 'test/lww'))!.state;
  const form = formOf(lww);
  const values = [
    JSON.parse('{"__proto__": {"polluted": true}}'),
    JSON.parse('{"a": {"__proto__": {"polluted": true}}}'),
    JSON.parse('[{"__proto__": {"polluted": true}}]'),
    JSON.parse('{"constructor": {"prototype": {"polluted": true}}}'),
  ];
  for (const value of values) {
    const bytes = encodeCanonical([...form.slice(0, 6), [[['n1', 1], [1, 0], value]]]);
    let outcome: string;
    try {
      const decoded = decodeDoc(bytes);
      outcome = 'decoded';
      const read = JSON.stringify(docValue(decoded));
      t.equal(read, JSON.stringify(value), `${JSON.stringify(value)}: read back as own fields`);
    } catch (error) {
      outcome = isTesseraError(error) ? error.code : describe(error);
    }
    t.ok(outcome === 'decoded' || outcome === 'ERR_DECODE', `${JSON.stringify(value)}: ${outcome}`);
    t.ok(prototypesClean(), `${JSON.stringify(value)}: Object.prototype untouched`);
    t.equal(({} as Record<string, unknown>).polluted, undefined);
  }
});

// ---------------------------------------------------------------------------------------------------------
// Regression tests for bugs these tests found (fixed in core).

/** Writes `operation`, then checks encode/decode; returns 'refused' when the write was refused as invalid. */
function writeThenRoundTrip(type: CrdtTypeName, operation: Parameters<typeof operationMutator>[1]): string {
  let state: DocState;
  try {
    const result = mutate(emptyDoc(type), 'n1', { ms: 1, c: 0 }, operationMutator(type, operation, `test/${type}`));
    if (result === null) return 'no change';
    state = result.state;
  } catch (error) {
    return isTesseraError(error, 'ERR_VALUE_INVALID') ? 'refused' : `write threw ${describe(error)}`;
  }
  try {
    const bytes = encodeDoc(state);
    return Buffer.compare(encodeDoc(decodeDoc(bytes)), bytes) === 0 ? 'round-trips' : 're-encodes differently';
  } catch (error) {
    return `codec threw ${describe(error)}`;
  }
}

function nestedObject(depth: number): Json {
  let value: Json = 1;
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

// Goal: every value a write accepts can be stored and read back (or the write refuses it up front).
// Method: map writes at the nesting limits: a put of an object nested jsonDepthMax levels, and a field path of
// 17 names holding an object nested 17 levels (each within its own limit). Today encodeDoc throws a plain
// Error ("Too deep objects in depth 101") from the MessagePack encoder's default depth of 100.
t.test('map values within the nesting limits encode and decode (or are refused as invalid)', async (t) => {
  const outcomes = [
    ['put of an object nested 31 levels', writeThenRoundTrip('map', { op: 'put', value: nestedObject(jsonDepthMax - 1) })],
    [`put of an object nested ${jsonDepthMax} levels`, writeThenRoundTrip('map', { op: 'put', value: nestedObject(jsonDepthMax) })],
    ['set at a 17-name path of an object nested 17 levels', writeThenRoundTrip('map', { op: 'set', path: new Array(17).fill('p'), value: nestedObject(17) })],
    [`set at a ${jsonDepthMax}-name path`, writeThenRoundTrip('map', { op: 'set', path: new Array(jsonDepthMax).fill('p'), value: 1 })],
  ] as const;
  for (const [name, outcome] of outcomes) t.ok(outcome === 'round-trips' || outcome === 'refused', `${name}: ${outcome}`);
});

// Goal: a JSON value with an own `__proto__` key (what JSON.parse makes of '{"__proto__": …}') is either
// refused by the write or stored in a form that decodes. Today the write accepts it and the encoder writes
// the key, but the MessagePack decoder refuses `__proto__` keys: the stored document can never be read back.
t.test('a value with an own __proto__ key is refused or survives encode/decode', async (t) => {
  const value = JSON.parse('{"__proto__": {"x": 1}, "y": 2}') as Json;
  for (const type of ['lww', 'mv'] as const) {
    const outcome = writeThenRoundTrip(type, { op: 'put', value });
    t.ok(outcome === 'round-trips' || outcome === 'refused', `${type} put: ${outcome}`);
  }
  const mapOutcome = writeThenRoundTrip('map', { op: 'set', path: ['f'], value });
  t.ok(mapOutcome === 'round-trips' || mapOutcome === 'refused', `map set: ${mapOutcome}`);
});

t.test('decodeBounded checks depth and value count on the bytes, before the decoder allocates', async (t) => {
  // Found by the frame fuzzer (packages/sync/test/fuzz-frames.test.ts): 16 MiB of one-byte arrays, nested,
  // cost the decoder 2.7 GB and a minute before any check could run.
  let nested: unknown = 0;
  for (let i = 0; i < decodeDepthMax - 1; i++) nested = [nested];
  t.same(
    decodeBounded(encodeCanonical(nested), 'deepest canonical form'),
    nested,
    `a form nested ${decodeDepthMax - 1} levels (what the encoder allows) decodes`,
  );
  t.throws(
    () => decodeBounded(Buffer.concat([Buffer.alloc(decodeDepthMax + 1, 0x91), Buffer.from([0xc0])]), 'x'),
    { code: 'ERR_DECODE', message: /nested more than/ },
    'one level deeper than the bound',
  );
  t.throws(
    () => decodeBounded(Buffer.concat([Buffer.alloc(docBytesMax - 1, 0x91), Buffer.from([0xc0])]), 'x'),
    { code: 'ERR_DECODE', message: /nested more than/ },
    '16 MiB of nested arrays',
  );
  t.throws(
    () => decodeBounded(Buffer.from([0x94, 1, 2, 3, 4]), 'x', docBytesMax, { itemsMax: 4 }),
    { code: 'ERR_DECODE', message: /more than 4 values/ },
    'a value count over the bound',
  );
  t.same(decodeBounded(Buffer.from([0x93, 1, 2, 3]), 'x', docBytesMax, { itemsMax: 4 }), [1, 2, 3], 'a value count at the bound');
  t.throws(() => decodeBounded(Buffer.from([0xdd, 0, 0, 0, 2, 1]), 'x'), { code: 'ERR_DECODE' }, 'a truncated array');
});
