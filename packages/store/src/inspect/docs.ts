/** Keys of a dataset and one document's internals: dots, context per node, siblings, conflicts. */
import {
  type DocState,
  type Dot,
  type MapNode,
  type RegEntry,
  type SetBody,
  TesseraError,
  checkDatasetName,
  checkKey,
  compareDots,
  compareHlc,
  decodeDoc,
  docExists,
  docValue,
  docFacts,
  winner,
} from '@tessera/core';
import { conflictRange, docKey, docRange, parseDocKey } from '../layout.js';
import { type ConflictRecord } from '../types.js';
import {
  type StoreReader,
  type KeyItem,
  type InspectKeys,
  type DotView,
  type SiblingsView,
  type InspectDoc,
  inspectKeysLimitDefault,
  inspectKeysLimitMax,
  inspectDocDotsMax,
  inspectDocConflictsMax,
} from './types.js';
import { parseJson, checkCount, jsonSafe, node } from './read.js';

/** A page of a dataset's documents in key order — deleted ones too — with type, state, size and tags. */
export async function inspectKeys(
  reader: StoreReader,
  dataset: string,
  options: { prefix?: string; after?: string; limit?: number } = {},
): Promise<InspectKeys> {
  checkDatasetName(dataset);
  const prefix = options.prefix ?? '';
  if (prefix !== '') checkKey(prefix);
  if (options.after !== undefined) checkKey(options.after);
  const limit = checkCount('keys: limit', options.limit ?? inspectKeysLimitDefault, 1, inspectKeysLimitMax);
  const named = await node(reader);
  const range = docRange(dataset, prefix);
  const afterKey = options.after === undefined ? undefined : docKey(dataset, options.after);
  const bounds = afterKey !== undefined && afterKey >= range.gte ? { gt: afterKey, lt: range.lt } : range;
  const items: KeyItem[] = [];
  let more = false;
  for await (const [stored, bytes] of reader.iterator({ ...bounds, limit: limit + 1 })) {
    if (items.length === limit) {
      more = true;
      break;
    }
    const { key } = parseDocKey(stored);
    try {
      const doc = decodeDoc(bytes, `${dataset}/${key}`);
      const facts = docFacts(dataset, key, doc);
      items.push({ key, type: doc.type, state: docExists(doc) ? 'live' : 'deleted', bytes: bytes.length, tags: facts.tags, origin: facts.origin });
    } catch (error) {
      items.push({ key, bytes: bytes.length, error: { code: 'ERR_STORE_CORRUPT', message: (error as Error).message } });
    }
  }
  return { ...named, dataset, prefix, items, next: more ? items[items.length - 1]!.key : null };
}

/**
 * One document's internals: value, tags, origin, causal context (per node: seen, beyond, held), the dots its
 * state holds with what they stand for and their HLCs where the type keeps them, concurrent register entries,
 * and its conflict records. A deleted document (a tombstone) is shown with a null value.
 */
export async function inspectDoc(reader: StoreReader, dataset: string, key: string): Promise<InspectDoc> {
  checkDatasetName(dataset);
  checkKey(key);
  const named = await node(reader);
  const bytes = await reader.get(docKey(dataset, key));
  if (bytes === undefined) {
    throw new TesseraError(
      'ERR_DOC_NOT_FOUND',
      `document ${dataset}/${key} is not stored on node ${named.node} (never written or received here, collected after a delete, or purged)`,
    );
  }
  let doc: DocState;
  try {
    doc = decodeDoc(bytes, `${dataset}/${key}`);
  } catch (error) {
    throw new TesseraError('ERR_STORE_CORRUPT', `stored document ${dataset}/${key} is corrupt: ${(error as Error).message}`, { cause: error });
  }
  const exists = docExists(doc);
  const facts = docFacts(dataset, key, doc);
  const context = doc.ctx.toJSON();
  const dots = dotsOf(doc);
  const nodes = new Map<string, { seen: number; beyond: number; held: number }>();
  const nodeOf = (name: string) => {
    let view = nodes.get(name);
    if (view === undefined) nodes.set(name, (view = { seen: 0, beyond: 0, held: 0 }));
    return view;
  };
  for (const [name, max] of context.vector) nodeOf(name).seen = max;
  for (const [name] of context.cloud) nodeOf(name).beyond++;
  for (const dot of dots) nodeOf(dot.node).held++;
  const conflicts: ConflictRecord[] = [];
  let conflictsMore = false;
  for await (const [, record] of reader.iterator({ ...conflictRange(dataset, key), limit: inspectDocConflictsMax + 1 })) {
    if (conflicts.length === inspectDocConflictsMax) {
      conflictsMore = true;
      break;
    }
    conflicts.push(parseJson(record, `a conflict record of ${dataset}/${key}`) as ConflictRecord);
  }
  return {
    ...named,
    dataset,
    key,
    type: doc.type,
    state: exists ? 'live' : 'deleted',
    bytes: bytes.length,
    value: exists ? jsonSafe(docValue(doc)) : null,
    tags: facts.tags,
    origin: facts.origin,
    context,
    nodes: [...nodes.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, view]) => ({ node: name, ...view })),
    dots: dots.slice(0, inspectDocDotsMax),
    dotsOmitted: Math.max(0, dots.length - inspectDocDotsMax),
    siblings: siblingsOf(doc),
    conflicts,
    conflictsMore,
  };
}

/** Every dot a state holds, sorted, with its role. */
function dotsOf(doc: DocState): DotView[] {
  const out: DotView[] = doc.live.map((dot) => ({ node: dot[0], counter: dot[1], role: 'presence' }));
  for (const { element, dots } of doc.tags.values()) for (const dot of dots) out.push({ node: dot[0], counter: dot[1], role: 'tag', tag: element as string });
  const register = (entries: readonly RegEntry[], path: readonly string[]) => {
    for (const entry of entries) out.push({ node: entry.dot[0], counter: entry.dot[1], role: 'value', path, hlc: entry.hlc });
  };
  switch (doc.type) {
    case 'map':
      walkMap(doc.body as MapNode, [], register);
      break;
    case 'lww':
    case 'mv':
      register(doc.body as readonly RegEntry[], []);
      break;
    case 'counter':
      for (const entry of doc.body as ReadonlyArray<{ dot: Dot }>) out.push({ node: entry.dot[0], counter: entry.dot[1], role: 'counter' });
      break;
    case 'set':
      for (const { element, dots } of (doc.body as SetBody).values())
        for (const dot of dots) out.push({ node: dot[0], counter: dot[1], role: 'element', element });
      break;
    default:
      // Yjs and Automerge keep their history inside their own format: the state holds no dots.
      break;
  }
  return out.sort((a, b) => compareDots([a.node, a.counter], [b.node, b.counter]));
}

function walkMap(node: MapNode, path: readonly string[], visit: (entries: readonly RegEntry[], path: readonly string[]) => void): void {
  if (node.entries.length > 0) visit(node.entries, path);
  for (const name of [...node.fields.keys()].sort()) walkMap(node.fields.get(name)!, [...path, name], visit);
}

/** Register entries kept side by side (concurrent writes), per path. */
function siblingsOf(doc: DocState): SiblingsView[] {
  const out: SiblingsView[] = [];
  const visit = (entries: readonly RegEntry[], path: readonly string[]) => {
    if (entries.length < 2) return;
    const best = winner(entries)!;
    out.push({
      path,
      entries: [...entries]
        .sort((a, b) => compareHlc(b.hlc, a.hlc) || compareDots(b.dot, a.dot))
        .map((entry) => ({ value: jsonSafe(entry.value), dot: entry.dot, hlc: entry.hlc, wins: entry === best })),
    });
  };
  if (doc.type === 'map') walkMap(doc.body as MapNode, [], visit);
  if (doc.type === 'lww' || doc.type === 'mv') visit(doc.body as readonly RegEntry[], []);
  return out;
}
