/**
 * The workload of a chaos run: several clients per region, each talking to its own region's node over HTTP,
 * each drawing its operations from its own seeded stream. A document is written by one client only, except
 * the shared ones (a field per client), the hot field, the counters and the sets — so that the checker knows,
 * for most documents, exactly which value the last acknowledged write left.
 */
import { type History, type Op, type OpKind, call } from './history.js';
import { keys, markers } from './model.js';
import { type Random } from './random.js';

/** Documents per client in the `own` family, and shared documents, counters and sets. */
export const ownSlots = 8;
export const sharedSlots = 3;
export const counterSlots = 2;
export const cartSlots = 2;
/** How long a client waits between operations, and after a refused connection (its node is down). */
export const thinkMsMax = 40;
export const downBackoffMs = 300;
/** A request that takes longer is abandoned (its outcome unknown). */
export const requestMsMax = 10_000;

/** How often each action is drawn. */
const actionWeights = {
  put: 6, field: 5, deleteField: 1, hot: 2, increment: 4, add: 3, remove: 2, tag: 1,
  delStep: 3, local: 2, order: 2, pii: 2, quarantine: 2, release: 2, readToken: 2,
} as const;

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
  /** The last acknowledged write with a token, for session-token reads. */
  private lastWrite: Op | null = null;

  constructor(
    readonly id: number,
    private readonly target: ClientTarget,
    private readonly random: Random,
    private readonly history: History,
    /** Where a token read may go: every node. */
    private readonly everyNode: readonly ClientTarget[],
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
    const region = this.target.region;
    const n = ++this.n;
    switch (this.random.weighted(actionWeights)) {
      case 'put': {
        const key = keys.own(c, this.random.int(0, ownSlots - 1));
        return this.write('put', 'catalog', key, 'PUT', `/v1/kv/catalog/${key}`, { value: { c, n, m: `gv-c${c}-${n}` } }, { value: { c, n, m: `gv-c${c}-${n}` } });
      }
      case 'field': {
        const key = keys.shared(this.random.int(0, sharedSlots - 1));
        return this.write('set-field', 'catalog', key, 'POST', `/v1/kv/catalog/${key}/ops`, { op: 'set', path: [`c${c}`], value: n }, { field: `c${c}`, value: n });
      }
      case 'deleteField': {
        const key = keys.shared(this.random.int(0, sharedSlots - 1));
        return this.write('delete-field', 'catalog', key, 'POST', `/v1/kv/catalog/${key}/ops`, { op: 'delete-field', path: [`c${c}`] }, { field: `c${c}` });
      }
      case 'hot':
        return this.write('set-field', 'catalog', keys.hot(), 'POST', '/v1/kv/catalog/hot/ops', { op: 'set', path: ['hot'], value: `c${c}-${n}` }, { field: 'hot', value: `c${c}-${n}` });
      case 'increment': {
        const key = keys.counter(this.random.int(0, counterSlots - 1));
        const amount = this.random.int(1, 5);
        return this.write('increment', 'visits', key, 'POST', `/v1/kv/visits/${key}/ops`, { op: 'increment', amount }, { amount });
      }
      case 'add': {
        const key = keys.cart(this.random.int(0, cartSlots - 1));
        const element = `c${c}-${n}`;
        const op = await this.write('add', 'carts', key, 'POST', `/v1/kv/carts/${key}/ops`, { op: 'add', element }, { element });
        if (op.outcome === 'ok') this.added.set(key, [...(this.added.get(key) ?? []), element]);
        return op;
      }
      case 'remove': {
        // Only elements this client's add was acknowledged for, at its own node: the remove observes the add.
        const key = keys.cart(this.random.int(0, cartSlots - 1));
        const elements = this.added.get(key) ?? [];
        if (elements.length === 0) return null;
        const element = elements.splice(this.random.int(0, elements.length - 1), 1)[0]!;
        return this.write('remove', 'carts', key, 'POST', `/v1/kv/carts/${key}/ops`, { op: 'remove', element }, { element });
      }
      case 'tag': {
        const key = keys.own(c, this.random.int(0, ownSlots - 1));
        const tag = this.random.pick(['blue', 'green', 'red']);
        const add = this.random.chance(0.6);
        return this.write('tag', 'catalog', key, 'POST', `/v1/kv/catalog/${key}/ops`, add ? { op: 'tag', add: [tag] } : { op: 'tag', remove: [tag] }, add ? { add: [tag] } : { remove: [tag] });
      }
      case 'delStep': {
        // Write a del-family document a few times, then delete it; after its delete, it is never written again.
        if (this.deleting.length === 0 || this.random.chance(0.3)) this.deleting.push({ key: keys.del(c, n), writesLeft: this.random.int(1, 3) });
        const doc = this.deleting[0]!;
        if (doc.writesLeft > 0) {
          doc.writesLeft--;
          return this.write('put', 'catalog', doc.key, 'PUT', `/v1/kv/catalog/${doc.key}`, { value: { c, n } }, { value: { c, n } });
        }
        this.deleting.shift();
        return this.write('delete', 'catalog', doc.key, 'DELETE', `/v1/kv/catalog/${doc.key}`, undefined, {});
      }
      case 'local': {
        const key = keys.local(region, c, n);
        const value = { m: markers.local(region, c, n) };
        return this.write('put', 'audits', key, 'PUT', `/v1/kv/audits/${key}`, { value }, { value });
      }
      case 'order': {
        // Refused with 421 in eu-central: orders may not live there.
        const key = keys.order(c, n);
        const value = { m: markers.order(c, n) };
        return this.write('put', 'orders', key, 'PUT', `/v1/kv/orders/${key}`, { value }, { value });
      }
      case 'pii': {
        const key = keys.pii(region, c, n);
        const value = { m: markers.pii(region, c, n) };
        return this.write('put', 'catalog', key, 'PUT', `/v1/kv/catalog/${key}`, { value, tags: ['pii'] }, { value, tags: ['pii'] });
      }
      case 'quarantine': {
        const key = keys.quar(region, c, n);
        const value = { m: markers.quar(region, c, n) };
        const op = await this.write('put', 'catalog', key, 'PUT', `/v1/kv/catalog/${key}`, { value, tags: ['quarantine'] }, { value, tags: ['quarantine'] });
        if (op.outcome === 'ok') this.quarantined.push(key);
        return op;
      }
      case 'release': {
        if (this.quarantined.length === 0 || this.random.chance(0.4)) return null;
        const key = this.quarantined.shift()!;
        return this.write('tag', 'catalog', key, 'POST', `/v1/kv/catalog/${key}/ops`, { op: 'tag', add: ['reviewed'] }, { add: ['reviewed'] });
      }
      case 'readToken': {
        // A read elsewhere that presents the last write's token: when it answers 200, it must show the write.
        const last = this.lastWrite;
        if (last === null || last.token === null || last.token === undefined || last.dataset === 'audits' || last.dataset === 'orders' || last.key.startsWith('mk-')) return null;
        const reader = this.random.pick(this.everyNode);
        const op = this.history.invoke({ client: c, node: reader.node, region: reader.region, kind: 'read-token', dataset: last.dataset, key: last.key, args: { token: last.token, dot: last.dot } });
        this.history.complete(op, await call(reader.url, 'GET', `/v1/kv/${last.dataset}/${encodeURIComponent(last.key)}?token=${last.token}&waitMs=500`, undefined, requestMsMax));
        return op;
      }
    }
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
