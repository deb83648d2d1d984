/**
 * The workload of a chaos run: several clients per region, each talking to its own region's node over HTTP,
 * each drawing its operations from its own seeded stream. Most documents have one writer (a client, at its own
 * node), so that the checker knows which value and tags its acknowledged writes left; the shared ones (a field
 * per client), the hot field, the counters, the sets and the race documents have several, across regions.
 * Every value carries its write's marker (model.ts).
 */
import { type History, type Op, type OpKind, call } from './history.js';
import { type ChaosDataset, keys, markerOf, taggedDatasets } from './model.js';
import { type Random } from './random.js';
import { type Omissible } from './schedule.js';

/** Documents per client in the `own` and `tagged` families, and shared documents, counters, sets and race keys. */
export const ownSlots = 8;
export const taggedSlots = taggedDatasets.length;
export const sharedSlots = 3;
export const counterSlots = 2;
export const cartSlots = 2;
export const raceSlots = 2;
/** Race keys change every this many ms of run time, so that every client creates the same fresh keys at about the same time. */
export const raceEpochMs = 3_000;
/** How long a client waits between operations, and after a refused connection (its node is down). */
export const thinkMsMax = 40;
export const downBackoffMs = 300;
/** A request that takes longer is abandoned (its outcome unknown). */
export const requestMsMax = 10_000;
/** A retype document goes through at most this many lives (deleted and created again with another type). */
export const retypeLivesMax = 3;

/** Tags the `tagged` family adds and removes: every one that moves placement under some policy, and a plain one. */
export const placementTags = ['quarantine', 'reviewed', 'pii', 'move', 'shared', 'blue'] as const;
/** Types a `retype` document takes. */
export const retypeTypes = ['lww', 'map', 'mv', 'counter', 'set'] as const;
type RetypeType = (typeof retypeTypes)[number];

/** How often each action is drawn. */
export const actionWeights = {
  put: 5,
  field: 4,
  deleteField: 1,
  hot: 2,
  increment: 3,
  add: 3,
  remove: 2,
  tag: 1,
  delStep: 3,
  local: 2,
  order: 2,
  pii: 2,
  quarantine: 2,
  release: 2,
  readToken: 2,
  tagged: 5,
  retype: 4,
  race: 4,
} as const;
type Action = keyof typeof actionWeights;

/** The action weights of a run that leaves out `without` (see `omissible`). */
export function weightsWithout(without: ReadonlySet<Omissible>): Readonly<Record<Action, number>> {
  const left: Partial<Record<Omissible, readonly Action[]>> = { tags: ['tagged', 'pii', 'quarantine', 'release'], race: ['race'], retype: ['retype'] };
  const out: Record<Action, number> = { ...actionWeights };
  for (const part of without) for (const action of left[part] ?? []) out[action] = 0;
  return out;
}

/** A client's target: one node (of its region). */
export interface ClientTarget {
  readonly node: string;
  readonly region: string;
  readonly url: string;
}

/** One client. `run` loops until `stop()` is called, then resolves once its last request completed. */
export class Client {
  private stopped = false;
  private n = 0;
  /** Documents of the `del` family being written, and how many writes each still gets before its delete. */
  private readonly deleting: Array<{ key: string; writesLeft: number }> = [];
  /** Elements this client added (acknowledged) and has not removed, per cart. */
  private readonly added = new Map<string, string[]>();
  /** Quarantined documents (acknowledged) not yet released. */
  private readonly quarantined: string[] = [];
  /** The retype document being written: its key, the type of this life, writes left before its delete. */
  private retyping: { key: string; type: RetypeType; writesLeft: number; lives: number } | null = null;
  /** The last acknowledged write with a token, for session-token reads. */
  private lastWrite: Op | null = null;

  constructor(
    readonly id: number,
    private readonly target: ClientTarget,
    private readonly random: Random,
    private readonly history: History,
    /** Where a token read may go: every node. */
    private readonly everyNode: readonly ClientTarget[],
    private readonly weights: Readonly<Record<Action, number>> = actionWeights,
  ) {}

  stop(): void {
    this.stopped = true;
  }

  async run(): Promise<void> {
    while (!this.stopped) {
      const op = await this.step();
      if (op !== null && op.outcome === 'fail' && op.error !== undefined) await sleep(downBackoffMs);
      await sleep(this.random.int(0, thinkMsMax));
    }
  }

  private async step(): Promise<Op | null> {
    const c = this.id;
    const n = ++this.n;
    const m = markerOf(c, n);
    switch (this.random.weighted(this.weights)) {
      case 'put': {
        const key = keys.own(c, this.random.int(0, ownSlots - 1));
        return this.put('catalog', key, { value: { c, n, m } }, m);
      }
      case 'field': {
        const key = keys.shared(this.random.int(0, sharedSlots - 1));
        return this.ops('set-field', 'catalog', key, { op: 'set', path: [`c${c}`], value: m }, { field: `c${c}`, value: m, marker: m });
      }
      case 'deleteField': {
        const key = keys.shared(this.random.int(0, sharedSlots - 1));
        return this.ops('delete-field', 'catalog', key, { op: 'delete-field', path: [`c${c}`] }, { field: `c${c}` });
      }
      case 'hot':
        return this.ops('set-field', 'catalog', keys.hot(), { op: 'set', path: ['hot'], value: m }, { field: 'hot', value: m, marker: m });
      case 'increment': {
        const key = keys.counter(this.random.int(0, counterSlots - 1));
        const amount = this.random.int(1, 5);
        return this.ops('increment', 'visits', key, { op: 'increment', amount }, { amount });
      }
      case 'add': {
        const key = keys.cart(this.random.int(0, cartSlots - 1));
        const op = await this.ops('add', 'carts', key, { op: 'add', element: m }, { element: m, marker: m });
        if (op.outcome === 'ok') this.added.set(key, [...(this.added.get(key) ?? []), m]);
        return op;
      }
      case 'remove': {
        // Only elements this client's add was acknowledged for, at its own node: the remove observes the add.
        const key = keys.cart(this.random.int(0, cartSlots - 1));
        const elements = this.added.get(key) ?? [];
        if (elements.length === 0) return null;
        const element = elements.splice(this.random.int(0, elements.length - 1), 1)[0]!;
        return this.ops('remove', 'carts', key, { op: 'remove', element }, { element });
      }
      case 'tag': {
        const key = keys.own(c, this.random.int(0, ownSlots - 1));
        const tag = this.random.pick(['blue', 'green', 'red']);
        return this.tag('catalog', key, this.random.chance(0.6) ? { add: [tag] } : { remove: [tag] });
      }
      case 'delStep': {
        // Write a del-family document a few times, then delete it; after its delete, it is never written again.
        if (this.deleting.length === 0 || this.random.chance(0.3)) this.deleting.push({ key: keys.del(c, n), writesLeft: this.random.int(1, 3) });
        const doc = this.deleting[0]!;
        if (doc.writesLeft > 0) {
          doc.writesLeft--;
          return this.put('catalog', doc.key, { value: { c, n, m } }, m);
        }
        this.deleting.shift();
        return this.write('delete', 'catalog', doc.key, 'DELETE', `/v1/kv/catalog/${doc.key}`, undefined, {});
      }
      case 'local':
        return this.put('audits', keys.local(c, n), { value: { m } }, m);
      case 'order':
        return this.put('orders', keys.order(c, n), { value: { m } }, m);
      case 'pii':
        return this.put('catalog', keys.pii(c, n), { value: { m }, tags: ['pii'] }, m);
      case 'quarantine': {
        const key = keys.quar(c, n);
        const op = await this.put('catalog', key, { value: { m }, tags: ['quarantine'] }, m);
        if (op.outcome === 'ok') this.quarantined.push(key);
        return op;
      }
      case 'release': {
        if (this.quarantined.length === 0 || this.random.chance(0.4)) return null;
        return this.tag('catalog', this.quarantined.shift()!, { add: ['reviewed'] });
      }
      case 'tagged':
        return this.taggedStep(m);
      case 'retype':
        return this.retypeStep(n, m);
      case 'race':
        return this.raceStep(m);
      case 'readToken': {
        // A read elsewhere that presents the last write's token: when it answers 200, it must show the write.
        const last = this.lastWrite;
        if (last === null || last.token === null || last.token === undefined) return null;
        const reader = this.random.pick(this.everyNode);
        const op = this.history.invoke({
          client: c,
          node: reader.node,
          region: reader.region,
          kind: 'read-token',
          dataset: last.dataset,
          key: last.key,
          args: { token: last.token, dot: last.dot },
        });
        this.history.complete(
          op,
          await call(reader.url, 'GET', `/v1/kv/${last.dataset}/${encodeURIComponent(last.key)}?token=${last.token}&waitMs=500`, undefined, requestMsMax),
        );
        return op;
      }
    }
  }

  /** A `tagged` document: whole values with or without a new tag set, and single tags added and removed. */
  private taggedStep(m: string): Promise<Op> {
    const slot = this.random.int(0, taggedSlots - 1);
    const dataset = taggedDatasets[slot]!;
    const key = keys.tagged(this.id, slot);
    const tag = this.random.pick(placementTags);
    switch (this.random.weighted({ put: 3, putTagged: 3, add: 3, remove: 2 })) {
      case 'put':
        return this.put(dataset, key, { value: { m } }, m);
      case 'putTagged': {
        const tags = placementTags.filter(() => this.random.chance(0.25));
        return this.put(dataset, key, { value: { m }, tags }, m);
      }
      case 'add':
        return this.tag(dataset, key, { add: [tag] });
      case 'remove':
        return this.tag(dataset, key, { remove: [tag] });
    }
  }

  /** A `retype` document: a few writes of one type, a delete, then a new life with another type. */
  private async retypeStep(n: number, m: string): Promise<Op> {
    let doc = this.retyping;
    if (doc === null) {
      doc = { key: keys.retype(this.id, n), type: this.random.pick(retypeTypes), writesLeft: this.random.int(1, 3), lives: 1 };
      this.retyping = doc;
    }
    if (doc.writesLeft === 0) {
      const op = await this.write('delete', 'catalog', doc.key, 'DELETE', `/v1/kv/catalog/${doc.key}`, undefined, {});
      // After its last life the document stays deleted, or is left as it is for another key.
      if (doc.lives >= retypeLivesMax) this.retyping = null;
      else
        Object.assign(doc, {
          type: this.random.pick(retypeTypes.filter((type) => type !== doc!.type)),
          writesLeft: this.random.int(1, 3),
          lives: doc.lives + 1,
        });
      return op;
    }
    doc.writesLeft--;
    const type = doc.type;
    // Every write names the type: the first of a life creates the document with it, the others must agree.
    switch (type) {
      case 'lww':
        return this.put('catalog', doc.key, { value: m, type }, m);
      case 'map':
      case 'mv':
        return this.put('catalog', doc.key, { value: { m }, type }, m);
      case 'counter': {
        const amount = this.random.int(1, 5);
        return this.ops('increment', 'catalog', doc.key, { op: 'increment', amount, type }, { amount, type });
      }
      case 'set':
        return this.ops('add', 'catalog', doc.key, { op: 'add', element: m, type }, { element: m, type, marker: m });
    }
  }

  /** A `race` key: every client creates, quarantines, releases and un-quarantines the keys of the current epoch. */
  private raceStep(m: string): Promise<Op> {
    const slot = this.random.int(0, raceSlots - 1);
    const dataset: ChaosDataset = slot === 0 ? 'catalog' : 'profiles';
    const key = keys.race(Math.floor(this.history.now() / raceEpochMs), slot);
    switch (this.random.weighted({ put: 3, putQuarantined: 2, quarantine: 2, release: 2, unquarantine: 1, pii: 1 })) {
      case 'put':
        return this.put(dataset, key, { value: { m } }, m);
      case 'putQuarantined':
        return this.put(dataset, key, { value: { m }, tags: ['quarantine'] }, m);
      case 'quarantine':
        return this.tag(dataset, key, { add: ['quarantine'] });
      case 'release':
        return this.tag(dataset, key, { add: ['reviewed'] });
      case 'unquarantine':
        return this.tag(dataset, key, { remove: ['quarantine'] });
      case 'pii':
        return this.tag(dataset, key, { add: ['pii'] });
    }
  }

  private put(dataset: string, key: string, body: { value: unknown; tags?: string[]; type?: string }, marker: string): Promise<Op> {
    return this.write('put', dataset, key, 'PUT', `/v1/kv/${dataset}/${key}`, body, { ...body, marker });
  }

  private ops(kind: OpKind, dataset: string, key: string, body: Record<string, unknown>, args: Record<string, unknown>): Promise<Op> {
    return this.write(kind, dataset, key, 'POST', `/v1/kv/${dataset}/${key}/ops`, body, args);
  }

  private tag(dataset: string, key: string, change: { add?: string[]; remove?: string[] }): Promise<Op> {
    return this.ops('tag', dataset, key, { op: 'tag', ...change }, change);
  }

  private async write(kind: OpKind, dataset: string, key: string, method: string, path: string, body: unknown, args: Record<string, unknown>): Promise<Op> {
    const op = this.history.invoke({ client: this.id, node: this.target.node, region: this.target.region, kind, dataset, key, args });
    this.history.complete(op, await call(this.target.url, method, path, body, requestMsMax));
    if (op.outcome === 'ok' && op.token !== null && op.token !== undefined && kind !== 'delete') this.lastWrite = op;
    return op;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
