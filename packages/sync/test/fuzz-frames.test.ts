// Goal: `decodeFrame` is total on untrusted bytes: whatever a peer (authenticated or not) sends, it returns a
// valid frame or throws ERR_FRAME_INVALID — never another exception, never a hang or a memory blow-up — and a
// frame it accepts is one the encoder reproduces (encode(decode(x)) decodes equal).
// Method: fast-check. Valid frames of every type come from generators; mutants are made from their encodings
// at the byte level (flip, truncate, extend, splice, inject MessagePack headers declaring huge lengths) and at
// the structure level (decode, then replace a value by one of another MessagePack type, drop or add a field,
// nest a value deeply, re-encode). Each property counts runs, not time; FUZZ_RUNS scales them, FUZZ_SEED
// reproduces a run (fast-check also prints the seed and the shrunk counterexample on failure).
import t from 'tap';
import fc from 'fast-check';
import { Encoder } from '@msgpack/msgpack';
import { decodeBounded, hlcRemoteMsMax, isTesseraError } from '@tessera/core';
import { type Frame, batchEntriesMax, decodeFrame, encodeFrame, entryRegionsMax, frameBytesMax, frameDepthMax, frameItemsMax, nonceBytes } from '@tessera/sync';

const runsScale = Number(process.env.FUZZ_RUNS ?? 1);
// CI runs a fixed seed (a failure there is reproducible as is); FUZZ_SEED=random explores, FUZZ_SEED=<n> replays.
const seed =
  process.env.FUZZ_SEED === undefined
    ? 20_261_127
    : process.env.FUZZ_SEED === 'random'
      ? Date.now() ^ (Math.random() * 2 ** 31)
      : Number(process.env.FUZZ_SEED);
t.comment(`FUZZ_SEED=${seed} (reproduce: FUZZ_SEED=${seed} npx tap packages/sync/test/fuzz-frames.test.ts)`);
const params = (numRuns: number) => ({ numRuns: Math.max(1, Math.round(numRuns * runsScale)), seed });

/** Builds the out-of-bounds forms on purpose: no depth limit, keys kept in the order given. */
const rawEncoder = new Encoder({ maxDepth: 1_000_000, ignoreUndefined: true });

// ---------------------------------------------------------------- valid frames

const nodeId = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,20}$/);
const region = fc.stringMatching(/^[a-z][a-z0-9_-]{0,20}$/);
const dataset = fc.stringMatching(/^[a-z][a-z0-9_-]{0,20}$/);
// Keys: any text without control characters or lone surrogates, within 512 UTF-8 bytes.
const key = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }).filter((k) => !/[\u0000-\u001f\u007f-\u009f]/.test(k));
const uint = fc.nat({ max: Number.MAX_SAFE_INTEGER });
const bytes = (maxLength: number) => fc.uint8Array({ maxLength });
const nonce = fc.uint8Array({ minLength: nonceBytes, maxLength: nonceBytes });
const policyStamp = fc.record({ version: uint, hash: fc.string({ maxLength: 64 }) });
const lane = fc.option(fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,31}$/), { nil: undefined });
const peerState = fc.record({ have: fc.dictionary(nodeId, uint, { maxKeys: 5 }), down: fc.array(nodeId, { maxLength: 4 }) });

/** Entries of a batch or state frame: strictly increasing seqs, each a change, a state or a purge notice. */
const entries = fc
  .array(
    fc.record({
      dataset,
      key,
      origin: nodeId,
      originSeq: uint,
      ms: fc.nat({ max: hlcRemoteMsMax }),
      c: fc.nat({ max: 65_535 }),
      delta: bytes(64),
      kind: fc.constantFrom(undefined, 'state', 'purge'),
      to: fc.array(region, { minLength: 1, maxLength: 4 }),
      gap: fc.integer({ min: 1, max: 1000 }),
      head: fc.option(bytes(32), { nil: undefined }),
    }),
    { maxLength: 8 },
  )
  .map((raw) => {
    let seq = 0;
    return raw.map(({ gap, ms, c, kind, to, delta, head, ...rest }) => {
      seq += gap;
      const base = { seq, ...rest, hlc: { ms, c }, delta, ...(head === undefined ? {} : { head }) };
      return kind === undefined ? base : { ...base, kind, to };
    });
  });

/** Drops optional fields that are undefined, as the decoder never sets them. */
function compact<T extends Record<string, unknown>>(record: T): T {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined)) as T;
}

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({ t: fc.constant('challenge' as const), v: uint, nonce }),
  fc.record({
    t: fc.constant('hello' as const),
    v: uint,
    cluster: fc.string({ maxLength: 64 }),
    node: nodeId,
    region,
    policy: policyStamp,
    nonce,
    proof: bytes(40),
  }),
  fc.record({ t: fc.constant('welcome' as const), node: nodeId, region, policy: policyStamp, proof: bytes(40) }),
  fc.record({ t: fc.constant('refuse' as const), code: fc.string({ maxLength: 64 }), reason: fc.string({ maxLength: 200 }) }),
  fc
    .record({ t: fc.constant('batch' as const), id: uint, extra: fc.nat({ max: 100 }), entries, lane, traces: fc.boolean() })
    .map(({ extra, traces, entries: list, ...rest }) =>
      compact({
        ...rest,
        entries: list,
        last: (list.at(-1)?.seq ?? 0) + extra,
        traces: traces && list.length > 0 ? list.map((entry) => [entry.seq, entry.seq.toString(16).padStart(32, '0')] as const) : undefined,
      }),
    ),
  fc.record({ t: fc.constant('state' as const), id: uint, last: uint, entries, lane }).map(compact),
  fc
    .record({
      t: fc.constant('ack' as const),
      id: uint,
      last: uint,
      peer: fc.option(peerState, { nil: undefined }),
      lane,
      refused: fc.option(fc.array(fc.integer({ min: 1, max: 1e9 }), { minLength: 1, maxLength: 6 }), { nil: undefined }),
    })
    .map(compact),
  fc.record({ t: fc.constant('policy' as const), version: fc.integer({ min: 1, max: 1e6 }), text: fc.string({ maxLength: 300 }) }),
  fc.record({ t: fc.constant('ping' as const), ms: uint, peer: fc.option(peerState, { nil: undefined }) }).map(compact),
  fc.record({ t: fc.constant('pong' as const), ms: uint, at: fc.option(uint, { nil: undefined }) }).map(compact),
) as fc.Arbitrary<Frame>;

/** The frame as the decoder returns it: `main` is the default lane and is not sent, nor are empty traces. */
function normalised(frame: Frame): Frame {
  const out: Record<string, unknown> = { ...frame };
  if (out.lane === 'main') delete out.lane;
  if (Array.isArray(out.traces) && out.traces.length === 0) delete out.traces;
  return out as unknown as Frame;
}

/** Decodes, or returns null on ERR_FRAME_INVALID; anything else is thrown on (failing the property). */
function decodeOrNull(input: Uint8Array): Frame | null {
  try {
    return decodeFrame(input);
  } catch (error) {
    if (isTesseraError(error, 'ERR_FRAME_INVALID')) return null;
    throw new Error(`decodeFrame threw ${(error as Error)?.name}: ${(error as Error)?.message?.slice(0, 200)}`, { cause: error });
  }
}

/** A frame the decoder accepted is reproduced by the encoder, and the re-encoding decodes equal. */
function roundTrips(frame: Frame): boolean {
  const again = decodeFrame(encodeFrame(frame));
  return JSON.stringify(canonical(again)) === JSON.stringify(canonical(frame));
}

/** A comparable form (bytes as arrays, keys sorted). */
function canonical(value: unknown): unknown {
  if (value instanceof Uint8Array) return { bytes: [...value] };
  if (Array.isArray(value)) return value.map(canonical);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((name) => [name, canonical((value as Record<string, unknown>)[name])]),
    );
  }
  return value;
}

/** Outcomes over a property's runs, so a test can show the mutants reached both answers. */
const tally = () => ({ accepted: 0, refused: 0 });

function check(counts: { accepted: number; refused: number }, input: Uint8Array): boolean {
  const frame = decodeOrNull(input);
  if (frame === null) {
    counts.refused++;
    return true;
  }
  counts.accepted++;
  return roundTrips(frame);
}

t.test('valid frames of every type round-trip', async (t) => {
  const types = new Set<string>();
  fc.assert(
    fc.property(frameArb, (frame) => {
      types.add(frame.t);
      const bytesOnce = encodeFrame(frame);
      const decoded = decodeFrame(bytesOnce);
      if (JSON.stringify(canonical(decoded)) !== JSON.stringify(canonical(normalised(frame)))) return false;
      return Buffer.from(encodeFrame(decoded)).equals(Buffer.from(bytesOnce));
    }),
    params(1_500),
  );
  t.equal(types.size, 10, `every frame type was generated (${[...types].sort().join(', ')})`);
});

// ---------------------------------------------------------------- byte-level mutants

/** MessagePack headers that announce far more than follows: the decoder must not trust them. */
const hugeHeaders = [
  [0xdd, 0xff, 0xff, 0xff, 0xff], // array32 of 4 294 967 295
  [0xdf, 0xff, 0xff, 0xff, 0xff], // map32
  [0xdb, 0xff, 0xff, 0xff, 0xff], // str32
  [0xc6, 0x7f, 0xff, 0xff, 0xff], // bin32
  [0xc9, 0xff, 0xff, 0xff, 0xff, 0x01], // ext32
  [0xdc, 0xff, 0xff], // array16
  [0xde, 0xff, 0xff], // map16
  [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // uint64 beyond safe integers
  [0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0], // int64 minimum
  [0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0], // float64 NaN
  [0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0], // float64 +Infinity
  [0xc1], // never used
  [0xd6, 0xff, 0, 0, 0, 0], // timestamp extension
].map((header) => Uint8Array.from(header));

type ByteMutation =
  | { kind: 'flip'; at: number; xor: number }
  | { kind: 'truncate'; cut: number }
  | { kind: 'extend'; tail: Uint8Array }
  | { kind: 'splice'; at: number; remove: number; insert: Uint8Array }
  | { kind: 'header'; at: number; header: number; replace: boolean };

const byteMutation: fc.Arbitrary<ByteMutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), cut: fc.nat() }),
  fc.record({ kind: fc.constant('extend' as const), tail: bytes(16) }),
  fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), remove: fc.nat({ max: 8 }), insert: bytes(8) }),
  fc.record({ kind: fc.constant('header' as const), at: fc.nat(), header: fc.nat({ max: hugeHeaders.length - 1 }), replace: fc.boolean() }),
);

function mutateBytes(input: Uint8Array, mutation: ByteMutation): Uint8Array {
  const out = Buffer.from(input);
  const at = (index: number) => index % Math.max(1, out.length);
  switch (mutation.kind) {
    case 'flip':
      out[at(mutation.at)]! ^= mutation.xor;
      return out;
    case 'truncate':
      return out.subarray(0, mutation.cut % (out.length + 1));
    case 'extend':
      return Buffer.concat([out, mutation.tail]);
    case 'splice': {
      const i = at(mutation.at);
      return Buffer.concat([out.subarray(0, i), mutation.insert, out.subarray(i + mutation.remove)]);
    }
    case 'header': {
      const i = at(mutation.at);
      const header = hugeHeaders[mutation.header]!;
      return Buffer.concat([out.subarray(0, i), header, out.subarray(mutation.replace ? i + header.length : i)]);
    }
  }
}

t.test('byte-level mutants of valid frames decode to a valid frame or ERR_FRAME_INVALID', async (t) => {
  const counts = tally();
  fc.assert(
    fc.property(frameArb, fc.array(byteMutation, { minLength: 1, maxLength: 3 }), (frame, mutations) =>
      check(counts, mutations.reduce(mutateBytes, encodeFrame(frame))),
    ),
    params(6_000),
  );
  t.ok(counts.refused > 0 && counts.accepted > 0, `mutants were both refused (${counts.refused}) and accepted (${counts.accepted})`);
});

t.test('random bytes decode to a valid frame or ERR_FRAME_INVALID', async (t) => {
  const counts = tally();
  fc.assert(
    fc.property(fc.oneof(bytes(64), bytes(2048), fc.constantFrom(...hugeHeaders)), (input) => check(counts, input)),
    params(3_000),
  );
  t.ok(counts.refused > 0, `${counts.refused} refused`);
});

// ---------------------------------------------------------------- structure-level mutants

/** Any MessagePack value, of every type the decoder produces. */
const msgpackValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.constantFrom(0, -1, 1, 2 ** 31, 2 ** 32, 2 ** 53 - 1, -(2 ** 53) + 1, 2 ** 53 + 2, 2 ** 64, -(2 ** 63), 1e300),
    fc.double(),
    fc.string({ maxLength: 40 }),
    fc.constantFrom('', 'batch', 'hello', 'main', '__proto__', 'constructor', 'x'.repeat(600)),
    bytes(40),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('t', 'id', 'last', 'lane', 'peer', 'traces', 'entries')), tie('value'), { maxKeys: 4 }),
  ),
})).value;

type Path = ReadonlyArray<string | number>;

/** Every path into a decoded value (containers and leaves), the root first. */
function pathsOf(value: unknown, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  if (Array.isArray(value)) value.forEach((item, i) => pathsOf(item, [...at, i], out));
  else if (typeof value === 'object' && value !== null && !(value instanceof Uint8Array)) {
    for (const name of Object.keys(value)) pathsOf((value as Record<string, unknown>)[name], [...at, name], out);
  }
  return out;
}

/** `root` with the value at `path` passed through `change` (undefined removes it from its container). */
function update(root: unknown, path: Path, change: (value: unknown) => unknown): unknown {
  if (path.length === 0) return change(root);
  const [head, ...rest] = path;
  if (Array.isArray(root)) {
    const copy = [...root];
    const next = update(copy[head as number], rest, change);
    if (next === undefined) copy.splice(head as number, 1);
    else copy[head as number] = next;
    return copy;
  }
  const copy = { ...(root as Record<string, unknown>) };
  const next = update(copy[head as string], rest, change);
  if (next === undefined) delete copy[head as string];
  else copy[head as string] = next;
  return copy;
}

type StructureMutation =
  | { kind: 'replace'; pick: number; value: unknown }
  | { kind: 'drop'; pick: number }
  | { kind: 'add'; pick: number; name: string; value: unknown }
  | { kind: 'nest'; pick: number; depth: number; asMap: boolean };

const structureMutation: fc.Arbitrary<StructureMutation> = fc.oneof(
  fc.record({ kind: fc.constant('replace' as const), pick: fc.nat(), value: msgpackValue }),
  fc.record({ kind: fc.constant('drop' as const), pick: fc.nat() }),
  fc.record({
    kind: fc.constant('add' as const),
    pick: fc.nat(),
    name: fc.constantFrom('t', 'lane', 'peer', 'traces', 'at', 'extra', 'entries'),
    value: msgpackValue,
  }),
  fc.record({ kind: fc.constant('nest' as const), pick: fc.nat(), depth: fc.constantFrom(2, 9, 40, 300), asMap: fc.boolean() }),
);

function nest(value: unknown, depth: number, asMap: boolean): unknown {
  let out = value;
  for (let i = 0; i < depth; i++) out = asMap ? { a: out } : [out];
  return out;
}

function mutateStructure(root: unknown, mutation: StructureMutation): unknown {
  const paths = pathsOf(root);
  const path = paths[mutation.pick % paths.length]!;
  switch (mutation.kind) {
    case 'replace':
      return update(root, path, () => mutation.value);
    case 'drop':
      return path.length === 0 ? root : update(root, path, () => undefined);
    case 'add':
      return update(root, path, (value) =>
        typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
          ? { ...value, [mutation.name]: mutation.value }
          : Array.isArray(value)
            ? [...value, mutation.value]
            : value,
      );
    case 'nest':
      return update(root, path, (value) => nest(value, mutation.depth, mutation.asMap));
  }
}

t.test('structure-level mutants (types swapped, fields dropped or added, deep nesting) decode or are refused', async (t) => {
  const counts = tally();
  fc.assert(
    fc.property(frameArb, fc.array(structureMutation, { minLength: 1, maxLength: 3 }), (frame, mutations) => {
      const form = mutations.reduce(mutateStructure, decodeBounded(encodeFrame(frame), 'frame', frameBytesMax));
      return check(counts, rawEncoder.encode(form));
    }),
    params(4_000),
  );
  t.ok(counts.refused > 0 && counts.accepted > 0, `mutants were both refused (${counts.refused}) and accepted (${counts.accepted})`);
});

// ---------------------------------------------------------------- bounds, and the bugs this file found

t.test('frames at their bounds: the largest legitimate batch decodes; containers past the bounds are refused cheaply', async (t) => {
  // The bound on values must admit the largest frame the sender can build: a full batch of state entries
  // that each name the most regions, with a trace per entry.
  const to = Array.from({ length: entryRegionsMax }, (_, i) => `r${i}`);
  const full: Frame = {
    t: 'batch',
    id: 1,
    last: batchEntriesMax,
    entries: Array.from({ length: batchEntriesMax }, (_, i) => ({
      seq: i + 1,
      dataset: 'd',
      key: `k${i}`,
      origin: 'a1',
      originSeq: 0,
      hlc: { ms: 1, c: 0 },
      delta: new Uint8Array(1),
      kind: 'state' as const,
      to,
    })),
    traces: Array.from({ length: batchEntriesMax }, (_, i) => [i + 1, 'f'.repeat(32)] as const),
  };
  t.equal(
    (decodeFrame(encodeFrame(full)) as unknown as { entries: unknown[] }).entries.length,
    batchEntriesMax,
    'a full batch of state entries naming every region decodes',
  );

  // FUZZ-1 (found writing the nesting mutants of this file): a deeply nested `t` made the error message's
  // JSON.stringify overflow the stack (RangeError). FUZZ-2: 16 MiB of one-byte arrays — nested, or side by
  // side — made the MessagePack decoder allocate 2.7 GB (nested, ~60 s) or 750 MB (side by side, ~20 s)
  // before any check ran, for any client that opened a WebSocket, before the handshake.
  const deepT = Buffer.concat([Buffer.from([0x81, 0xa1, 0x74]), Buffer.alloc(frameBytesMax - 64, 0x91), Buffer.from([0xc0])]);
  t.throws(() => decodeFrame(deepT), { code: 'ERR_FRAME_INVALID', message: /nested more than/ }, 'a frame nested 17 million levels deep');
  const count = 1_000_000;
  const wide = Buffer.concat([
    Buffer.from([0x81, 0xa1, 0x74, 0xdd, (count >>> 24) & 255, (count >>> 16) & 255, (count >>> 8) & 255, count & 255]),
    Buffer.alloc(count * 16, 0x90),
  ]);
  t.throws(
    () => decodeFrame(wide),
    { code: 'ERR_FRAME_INVALID', message: new RegExp(`more than ${frameItemsMax} values`) },
    '16 million empty arrays side by side',
  );
  t.throws(
    () => decodeFrame(rawEncoder.encode({ t: nest('ping', frameDepthMax + 1, false) })),
    { code: 'ERR_FRAME_INVALID' },
    'a frame one level deeper than the bound',
  );
  // FUZZ-3: a batch's `traces` of the wrong shape threw ERR_DECODE, not ERR_FRAME_INVALID.
  for (const traces of [5, [5], [[1]], [['x', 'y']]]) {
    t.throws(
      () => decodeFrame(rawEncoder.encode({ t: 'batch', id: 1, last: 1, entries: [], traces })),
      { code: 'ERR_FRAME_INVALID' },
      `traces ${JSON.stringify(traces)}`,
    );
  }
});
