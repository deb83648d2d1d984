/**
 * Random client operations over every value type: whole-value puts, map field sets and deletes, counter
 * increments, set adds and removes, Yjs and Automerge changes, document deletes and tag changes (quarantine,
 * reviewed, pii, shared, move). Keys come from a small space per dataset so that writes collide.
 */
import { type Json, type JsonScalar } from '@tessera/core';
import { type Replica, type WriteResult } from '@tessera/store';
import { simDatasets } from './policy.js';
import { type Random } from './random.js';

/** Keys per dataset: small, so that concurrent writes meet. */
export const keysPerDataset = 5;
/** The user tags the workload sets. */
export const workloadTags = ['quarantine', 'reviewed', 'pii', 'shared', 'move'] as const;

/** One client operation. */
export type Operation =
  | { readonly kind: 'put'; readonly dataset: string; readonly key: string; readonly value: Json; readonly tags?: readonly string[] }
  | { readonly kind: 'set-field'; readonly dataset: string; readonly key: string; readonly path: string; readonly value: Json }
  | { readonly kind: 'delete-field'; readonly dataset: string; readonly key: string; readonly path: string }
  | { readonly kind: 'increment'; readonly dataset: string; readonly key: string; readonly amount: number }
  | { readonly kind: 'add' | 'remove'; readonly dataset: string; readonly key: string; readonly element: JsonScalar }
  | { readonly kind: 'yjs'; readonly dataset: string; readonly key: string; readonly text: string; readonly at: number; readonly cut: number }
  | { readonly kind: 'automerge'; readonly dataset: string; readonly key: string; readonly field: string; readonly value: number }
  | { readonly kind: 'delete'; readonly dataset: string; readonly key: string }
  | { readonly kind: 'tag'; readonly dataset: string; readonly key: string; readonly add: readonly string[]; readonly remove: readonly string[] };

function smallValue(random: Random): Json {
  return random.weighted<() => Json>([
    [3, () => random.int(1000)],
    [3, () => `v${random.int(100)}`],
    [1, () => random.chance(0.5)],
    [1, () => null],
    [2, () => ({ a: random.int(10), b: `s${random.int(10)}` })],
    [1, () => [random.int(5), random.int(5)]],
  ])();
}

function tagsOf(random: Random): string[] {
  const tags: string[] = [];
  for (const tag of workloadTags) if (random.chance(0.12)) tags.push(tag);
  return tags;
}

/** Draws one operation. */
export function randomOperation(random: Random): Operation {
  const dataset = random.pick(simDatasets);
  const key = `k${random.int(keysPerDataset)}`;
  const name = dataset.name;
  if (random.chance(0.07)) return { kind: 'delete', dataset: name, key };
  if (random.chance(0.1)) {
    const add = tagsOf(random);
    const remove = workloadTags.filter((tag) => !add.includes(tag) && random.chance(0.25));
    if (add.length + remove.length > 0) return { kind: 'tag', dataset: name, key, add, remove };
  }
  const field = random.pick(['f1', 'f2', 'f3', 'nested.x', 'nested.y']);
  switch (dataset.type) {
    case 'map':
      return random.weighted<() => Operation>([
        [
          2,
          () => ({
            kind: 'put',
            dataset: name,
            key,
            value: { [field.split('.')[0]!]: smallValue(random), n: random.int(100) },
            ...(random.chance(0.3) ? { tags: tagsOf(random) } : {}),
          }),
        ],
        [4, () => ({ kind: 'set-field', dataset: name, key, path: field, value: smallValue(random) })],
        [1, () => ({ kind: 'delete-field', dataset: name, key, path: field })],
      ])();
    case 'lww':
    case 'mv':
      return { kind: 'put', dataset: name, key, value: smallValue(random), ...(random.chance(0.2) ? { tags: tagsOf(random) } : {}) };
    case 'counter':
      return { kind: 'increment', dataset: name, key, amount: random.range(-5, 10) || 1 };
    case 'set':
      return random.weighted<() => Operation>([
        [1, () => ({ kind: 'put', dataset: name, key, value: [random.int(6), random.int(6)] })],
        [4, () => ({ kind: 'add', dataset: name, key, element: random.pick<JsonScalar>([random.int(6), `e${random.int(6)}`]) })],
        [2, () => ({ kind: 'remove', dataset: name, key, element: random.pick<JsonScalar>([random.int(6), `e${random.int(6)}`]) })],
      ])();
    case 'yjs':
      return { kind: 'yjs', dataset: name, key, text: `t${random.int(100)}`, at: random.int(20), cut: random.chance(0.3) ? random.range(1, 3) : 0 };
    case 'automerge':
      return { kind: 'automerge', dataset: name, key, field: random.pick(['a', 'b', 'c']), value: random.int(1000) };
  }
}

/** Carries out an operation on a replica. */
export function execute(replica: Replica, op: Operation): Promise<WriteResult> {
  switch (op.kind) {
    case 'put':
      return replica.put(op.dataset, op.key, op.value, op.tags === undefined ? {} : { tags: op.tags });
    case 'set-field':
      return replica.map(op.dataset, op.key).set(op.path, op.value);
    case 'delete-field':
      return replica.map(op.dataset, op.key).delete(op.path);
    case 'increment':
      return replica.counter(op.dataset, op.key).increment(op.amount);
    case 'add':
      return replica.set(op.dataset, op.key).add(op.element);
    case 'remove':
      return replica.set(op.dataset, op.key).remove(op.element);
    case 'yjs':
      return replica.yjs(op.dataset, op.key).change((doc) => {
        const text = doc.getText('t');
        const at = Math.min(op.at, text.length);
        if (op.cut > 0 && text.length > at) text.delete(at, Math.min(op.cut, text.length - at));
        else text.insert(at, op.text);
      });
    case 'automerge':
      return replica.automerge(op.dataset, op.key).change((doc: Record<string, unknown>) => {
        doc[op.field] = op.value;
      });
    case 'delete':
      return replica.delete(op.dataset, op.key);
    case 'tag':
      return replica.tag(op.dataset, op.key, { add: op.add, remove: op.remove });
  }
}

/** Error codes a client may legitimately get back (the operation changed nothing). */
export const expectedRefusals: ReadonlySet<string> = new Set([
  // The policy keeps the document from this region (or would after the write).
  'ERR_POLICY_DENIED',
  // A tag change on a document that does not exist here.
  'ERR_OPTION_INVALID',
]);
