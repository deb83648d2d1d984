/**
 * After the faults heal: waiting (bounded) until the copies have converged, then reading what every node
 * holds — every document through `GET`, every listing, the enforced policy version — and what every data
 * directory holds on disk (the write markers in its files).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type DevNode } from '@tessera/cli';
import { type TestCluster } from '../harness.js';
import { type FinalDoc, type FinalState } from './checker.js';
import { type History, call } from './history.js';
import { type ChaosRegion, chaosDatasetNames, chaosRegions, docKeyOf, docOf, markerBytesMax, markerPrefix } from './model.js';
import { type PolicyShape, holders } from './policy.js';
import { lineagesOf } from './checker-docs.js';

/** Documents listed per page; requests in flight per node while reading the final state. */
const listLimit = 1000;
const readsInFlightMax = 8;

/** A listed document: type, value and tags. */
type Listed = { readonly type: string; readonly value: unknown; readonly tags: readonly string[] };

/** Every document of every dataset on a node, as listed; null when the node does not answer. */
export async function listAll(node: DevNode): Promise<Map<string, Map<string, Listed>> | null> {
  const out = new Map<string, Map<string, Listed>>();
  for (const dataset of chaosDatasetNames) {
    const items = new Map<string, Listed>();
    let cursor: string | null = null;
    do {
      const answer = await call(
        node.url,
        'GET',
        `/v1/kv/${dataset}?limit=${listLimit}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`,
        undefined,
        10_000,
      );
      if (answer.kind !== 'answer' || answer.status !== 200) return null;
      for (const item of answer.body.items) items.set(item.key, { type: item.type, value: item.value, tags: item.tags });
      cursor = answer.body.cursor;
    } while (cursor !== null);
    out.set(dataset, items);
  }
  return out;
}

/** The policy version a node enforces, or null (no answer, or no policy). */
export async function enforcedVersion(node: DevNode): Promise<number | null> {
  const answer = await call(node.url, 'GET', '/v1/policy', undefined, 5_000);
  return answer.kind === 'answer' && answer.status === 200 ? (answer.body?.enforced?.version ?? null) : null;
}

/**
 * True when every node enforces the same policy version and, for every listed document, the regions that
 * must hold it (under that version and its listed tags) list the same type, value and tags, and no region
 * that may not hold it lists it. The origin of a single-writer document is its writer's region; for the
 * others every region that wrote it is a candidate, and only what holds for every candidate is required.
 */
export async function converged(
  cluster: TestCluster,
  history: History,
  regionOfClient: (client: number) => ChaosRegion,
): Promise<{ done: boolean; digest: string }> {
  const [lists, versions] = await Promise.all([Promise.all(cluster.nodes.map(listAll)), Promise.all(cluster.nodes.map(enforcedVersion))]);
  const digest = JSON.stringify([lists.map((list) => (list === null ? null : [...list].map(([dataset, items]) => [dataset, [...items]]))), versions]);
  if (lists.some((list) => list === null) || new Set(versions).size > 1) return { done: false, digest };
  const shape = history.policies.get(versions[0] ?? 1);
  if (shape === undefined) return { done: false, digest };
  const byRegion = new Map(cluster.nodes.map((node, i) => [node.region as ChaosRegion, lists[i]!]));
  const writers = new Map<string, Set<ChaosRegion>>();
  for (const op of history.ops) {
    if (op.kind === 'read-token' || op.kind === 'policy') continue;
    const id = docKeyOf(op.dataset, op.key);
    writers.set(id, (writers.get(id) ?? new Set()).add(op.region as ChaosRegion));
  }
  for (const dataset of chaosDatasetNames) {
    const ids = new Set<string>();
    for (const list of lists) for (const key of list!.get(dataset)!.keys()) ids.add(key);
    for (const key of ids) {
      const views = chaosRegions.map((region) => byRegion.get(region)!.get(dataset)!.get(key) ?? null);
      const listed = views.filter((view) => view !== null).map((view) => JSON.stringify(view));
      if (new Set(listed).size > 1) {
        // Copies that differ may be separate lineages of the key (created where they may never meet): settled
        // when each lineage is listed, identically, by exactly the regions its own facts allow.
        if (!(await lineagesSettled(cluster, shape, dataset, key))) return { done: false, digest };
        continue;
      }
      const doc = docOf(dataset, key);
      const origins = doc?.owner !== null && doc?.owner !== undefined ? [regionOfClient(doc.owner)] : [...(writers.get(docKeyOf(dataset, key)) ?? [])];
      const tags = views.find((view) => view !== null)!.tags;
      const holderSets = origins.map((origin) => holders(shape, { dataset, origin, tags }));
      for (const region of chaosRegions) {
        const must = holderSets.length > 0 && holderSets.every((set) => set.includes(region));
        const may = holderSets.some((set) => set.includes(region));
        const isListed = views[chaosRegions.indexOf(region)] !== null;
        if ((must && !isListed) || (!may && isListed)) return { done: false, digest };
      }
    }
  }
  return { done: true, digest };
}

/** A node's answer for document `id` (`dataset/key`): its copy, or the status it answered (0: no answer). */
async function readDoc(node: DevNode, id: string): Promise<FinalDoc> {
  const answer = await call(node.url, 'GET', `/v1/kv/${id}`, undefined, 10_000);
  if (answer.kind !== 'answer') return { status: 0 };
  if (answer.status !== 200) return { status: answer.status };
  const body = answer.body;
  return { status: 200, type: body.type, value: body.value, context: body.context, tags: body.tags, origin: body.origin ?? null };
}

/** Whether every lineage of `dataset/key` is held, identically, by exactly the regions its facts allow. */
async function lineagesSettled(cluster: TestCluster, shape: PolicyShape, dataset: string, key: string): Promise<boolean> {
  const answers = new Map<ChaosRegion, FinalDoc>();
  await Promise.all(
    cluster.nodes.map(async (node) => {
      answers.set(node.region as ChaosRegion, await readDoc(node, docKeyOf(dataset, key)));
    }),
  );
  for (const lineage of lineagesOf(answers)) {
    const copies = lineage.map((region) => answers.get(region)!);
    if (new Set(copies.map((copy) => JSON.stringify([copy.type, copy.value, copy.context, copy.tags, copy.origin]))).size > 1) return false;
    const first = copies[0];
    if (first === undefined) continue;
    const allowed = holders(shape, { dataset, origin: first.origin ?? '(none)', tags: [...(first.tags ?? [])].sort() });
    if ([...allowed].sort().join() !== [...lineage].sort().join()) return false;
  }
  return true;
}

/** Reads every document any client wrote or any node lists, on every node; the tokens of 404 answers; lists and policy versions. */
export async function finalState(cluster: TestCluster, history: History): Promise<FinalState> {
  const lists = new Map<string, Map<string, string[]>>();
  const universe = new Set<string>();
  for (const op of history.ops) if (op.kind !== 'policy') universe.add(docKeyOf(op.dataset, op.key));
  for (const node of cluster.nodes) {
    const listed = await listAll(node);
    const perDataset = new Map<string, string[]>();
    for (const [dataset, items] of listed ?? []) {
      perDataset.set(dataset, [...items.keys()]);
      for (const key of items.keys()) universe.add(docKeyOf(dataset, key));
    }
    lists.set(node.id, perDataset);
  }
  const tokensByDoc = new Map<string, string[]>();
  for (const op of history.ops) {
    if (op.outcome === 'ok' && typeof op.token === 'string' && op.kind !== 'read-token') {
      const id = docKeyOf(op.dataset, op.key);
      tokensByDoc.set(id, [...(tokensByDoc.get(id) ?? []), op.token]);
    }
  }
  const docs = new Map<string, Map<string, FinalDoc>>();
  const tokenReads = new Map<string, Map<string, number>>();
  const policyVersions = new Map<string, number | null>();
  for (const node of cluster.nodes) {
    const answers = new Map<string, FinalDoc>();
    const tokens = new Map<string, number>();
    const ids = [...universe];
    for (let i = 0; i < ids.length; i += readsInFlightMax) {
      await Promise.all(
        ids.slice(i, i + readsInFlightMax).map(async (id) => {
          const doc = await readDoc(node, id);
          answers.set(id, doc);
          if (doc.status === 200) return;
          for (const token of tokensByDoc.get(id) ?? []) {
            const read = await call(node.url, 'GET', `/v1/kv/${id}?token=${token}&waitMs=0`, undefined, 10_000);
            tokens.set(token, read.kind === 'answer' ? read.status : 0);
          }
        }),
      );
    }
    docs.set(node.id, answers);
    tokenReads.set(node.id, tokens);
    policyVersions.set(node.id, await enforcedVersion(node));
  }
  return { docs, lists, tokenReads, policyVersions };
}

/**
 * The write markers in every file of every node's data directory: per node, marker → a file that holds it.
 * Whole markers only: LevelDB may split a record at a block boundary or compress a table, so this finds less
 * than the taps do, never more.
 */
export async function scanDisks(cluster: TestCluster): Promise<Map<string, Map<string, string>>> {
  const out = new Map<string, Map<string, string>>();
  const prefix = Buffer.from(markerPrefix);
  for (const node of cluster.nodes) {
    const found = new Map<string, string>();
    const dir = join(cluster.layout.dir, 'data', node.id);
    for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
      if (!entry.isFile()) continue;
      const path = join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name);
      let bytes: Buffer;
      try {
        bytes = await readFile(path);
      } catch {
        continue; // a file LevelDB removed meanwhile (compaction)
      }
      for (let at = bytes.indexOf(prefix); at >= 0; at = bytes.indexOf(prefix, at + 1)) {
        const end = bytes.indexOf(0x2e, at);
        if (end < 0 || end - at >= markerBytesMax) continue;
        const marker = bytes.subarray(at, end + 1).toString('latin1');
        if (!found.has(marker)) found.set(marker, path);
      }
    }
    out.set(node.id, found);
  }
  return out;
}
