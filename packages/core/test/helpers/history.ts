/**
 * Random operation histories at three nodes, for the property tests. A history is plain data (so fast-check
 * prints and shrinks it); `runHistory` plays it out with the real core functions: each node mutates its own
 * replica with its own skewed clock, and deltas travel between replicas at random points, out of causal
 * order, sometimes twice. Nothing here reads the wall clock or Math.random: a history is its own seed.
 */
import fc from 'fast-check';
import {
  type AutomergeBody,
  type BodyMutator,
  type ConflictFinding,
  type CrdtTypeName,
  type DocState,
  type Hlc,
  type JsonScalar,
  type Json,
  type Operation,
  type TagChange,
  type YjsBody,
  HlcClock,
  automergeChange,
  crdtTypeNames,
  emptyDoc,
  encodeDoc,
  joinDocs,
  alreadySeen,
  mutate,
  operationMutator,
  remove,
  yjsChange,
} from '@tessera/core';

/** The node ids of the three replicas. */
export const nodeIds = ['n1', 'n2', 'n3'] as const;
/** Every CRDT type, in catalogue order. */
export const typeNames: readonly CrdtTypeName[] = crdtTypeNames;
/** Start of simulated wall time (late 2023), far from zero so negative skews stay valid. */
export const wallMsStart = 1_700_000_000_000;
/** Clock skew between nodes: up to ten minutes either way. */
export const skewMsMax = 10 * 60 * 1000;
/** Commands in one history: enough for deletes, re-creations and conflicts, small enough to stay fast. */
export const commandsMax = 40;

/** A Yjs edit, as data. */
export type YjsEdit =
  | { readonly yjs: 'insert'; readonly at: number; readonly text: string }
  | { readonly yjs: 'delete'; readonly at: number; readonly length: number }
  | { readonly yjs: 'map-set'; readonly key: string; readonly value: number };

/** An Automerge edit, as data. */
export type AutomergeEdit =
  | { readonly am: 'put'; readonly key: string; readonly value: number | string }
  | { readonly am: 'delete'; readonly key: string }
  | { readonly am: 'push'; readonly value: number };

/** One body change: an `Operation` (through `operationMutator`), a Yjs or Automerge edit, or null (tags only). */
export type BodyChange = Operation | YjsEdit | AutomergeEdit | null;

/** One step of a history. */
export type Command =
  | { readonly kind: 'op'; readonly node: number; readonly stepMs: number; readonly change: BodyChange; readonly tags: TagChange | undefined }
  | { readonly kind: 'remove'; readonly node: number; readonly stepMs: number }
  | { readonly kind: 'deliver'; readonly to: number; readonly pick: number; readonly replay: boolean }
  | { readonly kind: 'sync'; readonly from: number; readonly to: number };

/** A whole history: the nodes' clock offsets, whether receivers observe remote timestamps, and the steps. */
export interface History {
  readonly type: CrdtTypeName;
  readonly offsetsMs: readonly number[];
  readonly observe: boolean;
  readonly commands: readonly Command[];
}

const fieldNames = ['a', 'b', 'c'];
const tagNames = ['t1', 't2', 't3'];

const scalarArb: fc.Arbitrary<JsonScalar> = fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom('x', 'y', ''), fc.boolean(), fc.constant(null));

const smallJsonArb: fc.Arbitrary<Json> = fc.oneof(
  { arbitrary: scalarArb, weight: 3 },
  { arbitrary: fc.dictionary(fc.constantFrom(...fieldNames), scalarArb, { maxKeys: 2 }), weight: 1 },
  { arbitrary: fc.array(scalarArb, { maxLength: 2 }), weight: 1 },
);

const pathArb = fc.array(fc.constantFrom(...fieldNames), { minLength: 1, maxLength: 2 });

const mapObjectArb = fc.dictionary(fc.constantFrom(...fieldNames), smallJsonArb, { maxKeys: 3 });

/** Body changes that apply to documents of `type`. */
export function bodyChangeArb(type: CrdtTypeName): fc.Arbitrary<BodyChange> {
  switch (type) {
    case 'map':
      return fc.oneof(
        { arbitrary: fc.record({ op: fc.constant('set' as const), path: pathArb, value: smallJsonArb }), weight: 4 },
        { arbitrary: fc.record({ op: fc.constant('delete-field' as const), path: pathArb }), weight: 2 },
        { arbitrary: fc.record({ op: fc.constant('put' as const), value: mapObjectArb }), weight: 1 },
      );
    case 'lww':
    case 'mv':
      return fc.record({ op: fc.constant('put' as const), value: smallJsonArb });
    case 'counter':
      return fc.record({ op: fc.constant('increment' as const), amount: fc.integer({ min: -5, max: 5 }) });
    case 'set':
      return fc.oneof(
        { arbitrary: fc.record({ op: fc.constant('add' as const), element: scalarArb }), weight: 4 },
        { arbitrary: fc.record({ op: fc.constant('remove' as const), element: scalarArb }), weight: 2 },
        { arbitrary: fc.record({ op: fc.constant('put' as const), value: fc.array(scalarArb, { maxLength: 3 }) }), weight: 1 },
      );
    case 'yjs':
      return fc.oneof(
        { arbitrary: fc.record({ yjs: fc.constant('insert' as const), at: fc.nat(20), text: fc.constantFrom('a', 'bc', 'xyz', 'é') }), weight: 4 },
        { arbitrary: fc.record({ yjs: fc.constant('delete' as const), at: fc.nat(20), length: fc.integer({ min: 1, max: 3 }) }), weight: 2 },
        {
          arbitrary: fc.record({ yjs: fc.constant('map-set' as const), key: fc.constantFrom(...fieldNames), value: fc.integer({ min: 0, max: 9 }) }),
          weight: 2,
        },
      );
    case 'automerge':
      return fc.oneof(
        {
          arbitrary: fc.record({
            am: fc.constant('put' as const),
            key: fc.constantFrom(...fieldNames),
            value: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.constantFrom('x', 'y')),
          }),
          weight: 4,
        },
        { arbitrary: fc.record({ am: fc.constant('delete' as const), key: fc.constantFrom(...fieldNames) }), weight: 1 },
        { arbitrary: fc.record({ am: fc.constant('push' as const), value: fc.integer({ min: 0, max: 9 }) }), weight: 2 },
      );
  }
}

const tagChangeArb: fc.Arbitrary<TagChange | undefined> = fc.option(fc.record({ add: fc.subarray(tagNames), remove: fc.subarray(tagNames) }), {
  freq: 3,
  nil: undefined,
});

const nodeArb = fc.integer({ min: 0, max: nodeIds.length - 1 });

/** Random histories of documents of `type`. */
export function historyArb(type: CrdtTypeName, commandsLengthMax = commandsMax): fc.Arbitrary<History> {
  const op = fc.record({
    kind: fc.constant('op' as const),
    node: nodeArb,
    stepMs: fc.integer({ min: 0, max: 5_000 }),
    change: fc.option(bodyChangeArb(type), { freq: 8, nil: null }),
    tags: tagChangeArb,
  });
  const removal = fc.record({ kind: fc.constant('remove' as const), node: nodeArb, stepMs: fc.integer({ min: 0, max: 5_000 }) });
  const deliver = fc.record({ kind: fc.constant('deliver' as const), to: nodeArb, pick: fc.nat(), replay: fc.constant(false) });
  const replay = fc.record({ kind: fc.constant('deliver' as const), to: nodeArb, pick: fc.nat(), replay: fc.constant(true) });
  const sync = fc.record({ kind: fc.constant('sync' as const), from: nodeArb, to: nodeArb });
  const command: fc.Arbitrary<Command> = fc.oneof(
    { arbitrary: op, weight: 6 },
    { arbitrary: removal, weight: 2 },
    { arbitrary: deliver, weight: 4 },
    { arbitrary: replay, weight: 1 },
    { arbitrary: sync, weight: 1 },
  );
  return fc.record({
    type: fc.constant(type),
    offsetsMs: fc.array(fc.integer({ min: -skewMsMax, max: skewMsMax }), { minLength: nodeIds.length, maxLength: nodeIds.length }),
    observe: fc.boolean(),
    commands: fc.array(command, { minLength: 4, maxLength: commandsLengthMax, size: 'max' }),
  });
}

function yjsMutator(edit: YjsEdit): BodyMutator {
  return (body, ctx) => {
    // A delete on empty text makes an empty Yjs update; histories keep it (it must change nothing anywhere).
    return yjsChange(
      body as YjsBody,
      (doc) => {
        const text = doc.getText('t');
        if (edit.yjs === 'insert') text.insert(edit.at % (text.length + 1), edit.text);
        else if (edit.yjs === 'delete') {
          if (text.length > 0) {
            const at = edit.at % text.length;
            text.delete(at, Math.min(edit.length, text.length - at));
          }
        } else doc.getMap('m').set(edit.key, edit.value);
      },
      ctx,
    );
  };
}

function automergeMutator(edit: AutomergeEdit): BodyMutator {
  return (body, ctx) =>
    automergeChange<Record<string, unknown>>(
      body as AutomergeBody,
      (doc) => {
        if (edit.am === 'put') doc[edit.key] = edit.value;
        else if (edit.am === 'delete') delete doc[edit.key];
        else {
          if (!Array.isArray(doc.list)) doc.list = [];
          (doc.list as number[]).push(edit.value);
        }
      },
      ctx,
    );
}

/** The body mutator for `change` on a document of `type`. */
export function mutatorFor(type: CrdtTypeName, change: BodyChange): BodyMutator | null {
  if (change === null) return null;
  if ('yjs' in change) return yjsMutator(change);
  if ('am' in change) return automergeMutator(change);
  return operationMutator(type, change, `test/${type}`);
}

/** One delta a node produced. */
export interface DeltaRecord {
  readonly seq: number;
  readonly origin: number;
  readonly hlc: Hlc;
  readonly delta: DocState;
  /** Deltas the origin replica had received when it produced this one. */
  readonly seenBefore: ReadonlySet<number>;
}

/** One replica at the end of a history. */
export interface Replica {
  readonly node: string;
  state: DocState;
  readonly clock: HlcClock;
  readonly offsetMs: number;
  /** Sequence numbers of the deltas this replica received (directly or inside a state). */
  readonly seen: Set<number>;
}

/** A re-delivery of a delta the replica had already received. */
export interface Replay {
  readonly seq: number;
  readonly to: number;
  readonly alreadySeen: boolean;
  readonly before: Uint8Array;
  readonly after: Uint8Array;
}

/** The outcome of playing a history. */
export interface HistoryRun {
  readonly type: CrdtTypeName;
  readonly deltas: readonly DeltaRecord[];
  readonly replicas: readonly Replica[];
  readonly replays: readonly Replay[];
  readonly conflicts: readonly ConflictFinding[];
  readonly removes: number;
}

/** Plays `history` out. */
export function runHistory(history: History): HistoryRun {
  const { type } = history;
  const replicas: Replica[] = nodeIds.map((node, i) => ({
    node,
    state: emptyDoc(type),
    clock: new HlcClock(),
    offsetMs: history.offsetsMs[i]!,
    seen: new Set<number>(),
  }));
  const deltas: DeltaRecord[] = [];
  const replays: Replay[] = [];
  const conflicts: ConflictFinding[] = [];
  let wallMs = wallMsStart;
  let removes = 0;
  const record = (origin: number, hlc: Hlc, delta: DocState, seenBefore: Set<number>) => {
    const seq = deltas.length;
    deltas.push({ seq, origin, hlc, delta, seenBefore });
    replicas[origin]!.seen.add(seq);
  };
  for (const command of history.commands) {
    switch (command.kind) {
      case 'op': {
        const replica = replicas[command.node]!;
        wallMs += command.stepMs;
        const hlc = replica.clock.now(wallMs + replica.offsetMs);
        const result = mutate(replica.state, replica.node, hlc, mutatorFor(type, command.change), command.tags);
        if (result === null) break;
        const seenBefore = new Set(replica.seen);
        replica.state = result.state;
        record(command.node, hlc, result.delta, seenBefore);
        break;
      }
      case 'remove': {
        const replica = replicas[command.node]!;
        wallMs += command.stepMs;
        const hlc = replica.clock.now(wallMs + replica.offsetMs);
        const result = remove(replica.state, replica.node, hlc);
        if (result === null) break;
        removes++;
        const seenBefore = new Set(replica.seen);
        replica.state = result.state;
        record(command.node, hlc, result.delta, seenBefore);
        break;
      }
      case 'deliver': {
        const replica = replicas[command.to]!;
        const candidates = deltas.filter((d) => replica.seen.has(d.seq) === command.replay);
        if (candidates.length === 0) break;
        const { seq, delta, hlc } = candidates[command.pick % candidates.length]!;
        const before = replica.state;
        const seenAlready = alreadySeen(before, delta);
        const joined = joinDocs(before, delta);
        conflicts.push(...joined.conflicts);
        replica.state = joined.state;
        replica.seen.add(seq);
        if (history.observe) replica.clock.observe(hlc);
        if (command.replay) replays.push({ seq, to: command.to, alreadySeen: seenAlready, before: encodeDoc(before), after: encodeDoc(joined.state) });
        break;
      }
      case 'sync': {
        if (command.from === command.to) break;
        const from = replicas[command.from]!;
        const to = replicas[command.to]!;
        const joined = joinDocs(to.state, from.state);
        conflicts.push(...joined.conflicts);
        to.state = joined.state;
        for (const seq of from.seen) to.seen.add(seq);
        if (history.observe) to.clock.observe(from.clock.latest);
        break;
      }
    }
  }
  return { type, deltas, replicas, replays, conflicts, removes };
}

/** Number of pairs of deltas produced concurrently (neither origin had received the other). */
export function concurrentPairs(run: HistoryRun): number {
  let pairs = 0;
  for (const later of run.deltas) {
    for (const earlier of run.deltas) {
      if (earlier.seq < later.seq && earlier.origin !== later.origin && !later.seenBefore.has(earlier.seq)) pairs++;
    }
  }
  return pairs;
}

/** The join of `states`, left to right, from the empty state of `type`. */
export function joinAll(type: CrdtTypeName, states: readonly DocState[]): DocState {
  let out = emptyDoc(type);
  for (const state of states) out = joinDocs(out, state).state;
  return out;
}

/** Canonical bytes as hex: equal states must give equal strings. */
export function hex(doc: DocState): string {
  return Buffer.from(encodeDoc(doc)).toString('hex');
}

/** Throws (failing the property) unless the two states encode to the same bytes. */
export function expectSameBytes(actual: DocState, expected: DocState, law: string): void {
  const a = hex(actual);
  const b = hex(expected);
  if (a !== b) throw new Error(`${law}: canonical bytes differ\n  actual:   ${a}\n  expected: ${b}`);
}

/** Deterministic Fisher–Yates shuffle of `items`, driven by fast-check's `randoms`. */
export function shuffled<T>(items: readonly T[], randoms: readonly number[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = (randoms[i % Math.max(1, randoms.length)] ?? 0) % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** `items` in a shuffled order with some items inserted a second time. */
export function shuffledWithDuplicates<T>(items: readonly T[], randoms: readonly number[], duplicates: readonly (readonly [number, number])[]): T[] {
  const out = shuffled(items, randoms);
  if (items.length === 0) return out;
  for (const [which, where] of duplicates) out.splice(where % (out.length + 1), 0, items[which % items.length]!);
  return out;
}

/** Arbitrary delivery orders: shuffle randoms and (item, position) duplicates. */
export const deliveryOrderArb = fc.record({
  randoms: fc.array(fc.nat(), { minLength: 1, maxLength: 64 }),
  duplicates: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 10 }),
});
