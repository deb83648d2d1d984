/**
 * `map`: a JSON object whose fields are last-writer-wins registers; nested objects merge field by field.
 *
 * The body is a tree of nodes; each node holds register entries (a value written at that path) and child
 * fields. Writing a path removes the observed dots of the path's subtree and of registers on its prefixes,
 * so causally later writes always win. Concurrent entries are all kept (as in a multi-value register) and the
 * value shows the one with the latest HLC; keeping them is what makes the join associative. Each concurrent
 * overwrite found while joining produces a conflict record with the hidden value.
 */
import { type CausalContext, type Dot, compareDots } from '../context.js';
import { type Json, type JsonObject, isPlainObject } from '../json.js';
import { decodeFail, expectArray, expectSorted, expectString } from '../shape.js';
import { type RegEntry, compareRegEntries, conflictSide, decodeRegEntries, encodeRegEntries, joinEntries, winner } from './entries.js';
import { type ConflictFinding, type CrdtType, type Mutation, type MutationContext } from './type.js';
import { jsonDepthMax } from '../limits.js';

/** A node of the map tree. */
export interface MapNode {
  readonly entries: readonly RegEntry[];
  readonly fields: ReadonlyMap<string, MapNode>;
}

const emptyNode: MapNode = { entries: [], fields: new Map() };

function isEmptyNode(node: MapNode): boolean {
  return node.entries.length === 0 && node.fields.size === 0;
}

function joinNodes(a: MapNode, ctxA: CausalContext, b: MapNode, ctxB: CausalContext): MapNode {
  if (a === b) return a;
  const entries = joinEntries(a.entries, ctxA, b.entries, ctxB);
  const fields = new Map<string, MapNode>();
  for (const [name, child] of a.fields) {
    const joined = joinNodes(child, ctxA, b.fields.get(name) ?? emptyNode, ctxB);
    if (!isEmptyNode(joined)) fields.set(name, joined);
  }
  for (const [name, child] of b.fields) {
    if (a.fields.has(name)) continue;
    const joined = joinNodes(emptyNode, ctxA, child, ctxB);
    if (!isEmptyNode(joined)) fields.set(name, joined);
  }
  return { entries, fields };
}

function collectDots(node: MapNode, out: Dot[]): Dot[] {
  for (const entry of node.entries) out.push(entry.dot);
  for (const child of node.fields.values()) collectDots(child, out);
  return out;
}

/** The latest entry anywhere in the subtree (used to decide a clash between a register and an object). */
function latestIn(node: MapNode): RegEntry | undefined {
  let best = winner(node.entries);
  for (const child of node.fields.values()) {
    const candidate = latestIn(child);
    if (candidate !== undefined && (best === undefined || compareRegEntries(candidate, best) > 0)) best = candidate;
  }
  return best;
}

function objectValue(node: MapNode): JsonObject {
  const out: JsonObject = {};
  for (const name of [...node.fields.keys()].sort()) out[name] = nodeValue(node.fields.get(name)!);
  return out;
}

function nodeValue(node: MapNode): Json {
  const own = winner(node.entries);
  if (own !== undefined) {
    if (node.fields.size === 0) return own.value;
    const nested = latestIn({ entries: [], fields: node.fields })!;
    if (compareRegEntries(own, nested) > 0) return own.value;
  }
  return objectValue(node);
}

/** Builds the delta subtree for writing `value` at one path, issuing one dot per leaf. */
function buildSubtree(value: Json, ctx: MutationContext, added: Dot[]): MapNode {
  if (isPlainObject(value) && Object.keys(value).length > 0) {
    const fields = new Map<string, MapNode>();
    for (const name of Object.keys(value).sort()) fields.set(name, buildSubtree((value as JsonObject)[name]!, ctx, added));
    return { entries: [], fields };
  }
  const dot = ctx.nextDot();
  added.push(dot);
  return { entries: [{ dot, hlc: ctx.hlc, value }], fields: new Map() };
}

function nodeAt(root: MapNode, path: readonly string[]): MapNode | undefined {
  let node: MapNode | undefined = root;
  for (const name of path) {
    node = node.fields.get(name);
    if (node === undefined) return undefined;
  }
  return node;
}

/** Wraps `leaf` so that it sits at `path` under an otherwise empty root. */
function wrapAt(path: readonly string[], leaf: MapNode): MapNode {
  let node = leaf;
  for (let i = path.length - 1; i >= 0; i--) node = { entries: [], fields: new Map([[path[i]!, node]]) };
  return node;
}

/** Sets `value` at field `path` (the empty path replaces the whole object). */
export function mapSet(body: MapNode, path: readonly string[], value: Json, ctx: MutationContext): Mutation<MapNode> {
  const removed: Dot[] = [];
  // Registers on the prefixes are overwritten by an object now living below them.
  let node: MapNode | undefined = body;
  for (const name of path) {
    for (const entry of node.entries) removed.push(entry.dot);
    node = node.fields.get(name);
    if (node === undefined) break;
  }
  if (node !== undefined) collectDots(node, removed);
  const added: Dot[] = [];
  const subtree = path.length === 0 && isPlainObject(value) && Object.keys(value).length === 0 ? emptyNode : buildSubtree(value, ctx, added);
  return { body: wrapAt(path, subtree), added, removed, touch: path.length === 0 };
}

/** Removes field `path` and everything below it (only the dots this replica has observed). */
export function mapDelete(body: MapNode, path: readonly string[]): Mutation<MapNode> {
  const node = nodeAt(body, path);
  return { body: emptyNode, added: [], removed: node === undefined ? [] : collectDots(node, []) };
}

/** The register entries at `path`, or undefined when the path holds no register (for reading siblings). */
export function mapEntriesAt(body: MapNode, path: readonly string[]): readonly RegEntry[] | undefined {
  return nodeAt(body, path)?.entries;
}

function findConflicts(joined: MapNode, delta: MapNode, path: string[], out: ConflictFinding[]): void {
  if (delta.entries.length > 0) {
    const win = winner(joined.entries);
    if (win !== undefined) {
      for (const entry of joined.entries) {
        if (entry !== win) out.push({ path: [...path], kind: 'concurrent-write', winner: conflictSide(win), loser: conflictSide(entry) });
      }
    }
  }
  // A register and an object written concurrently at the same path: one of them is hidden.
  if ((delta.entries.length > 0 || delta.fields.size > 0) && joined.entries.length > 0 && joined.fields.size > 0) {
    const own = winner(joined.entries)!;
    const nested = latestIn({ entries: [], fields: joined.fields })!;
    const objectSide = { value: objectValue(joined), dot: nested.dot, hlc: nested.hlc };
    const registerWins = compareRegEntries(own, nested) > 0;
    out.push({
      path: [...path],
      kind: 'type-clash',
      winner: registerWins ? conflictSide(own) : objectSide,
      loser: registerWins ? objectSide : conflictSide(own),
    });
  }
  for (const [name, child] of delta.fields) {
    const joinedChild = joined.fields.get(name);
    if (joinedChild === undefined) continue;
    path.push(name);
    findConflicts(joinedChild, child, path, out);
    path.pop();
  }
}

function encodeNode(node: MapNode): unknown {
  const names = [...node.fields.keys()].sort();
  return [encodeRegEntries(node.entries), names.map((name) => [name, encodeNode(node.fields.get(name)!)])];
}

function decodeNode(form: unknown, depth: number, what: string): MapNode {
  if (depth > jsonDepthMax) decodeFail(`${what}: map nesting exceeds ${jsonDepthMax} levels`);
  const [entriesForm, fieldsForm] = expectArray(form, what, 2, 2);
  const entries = decodeRegEntries(entriesForm, `${what} entries`);
  const pairs = expectArray(fieldsForm, `${what} fields`).map((pair, i) => {
    const [name, child] = expectArray(pair, `${what} field ${i}`, 2, 2);
    const fieldName = expectString(name, `${what} field ${i} name`);
    if (fieldName === '__proto__') decodeFail(`${what}: field name "__proto__" is not allowed`);
    const node = decodeNode(child, depth + 1, `${what}.${fieldName}`);
    if (isEmptyNode(node)) decodeFail(`${what}.${fieldName}: empty node in canonical form`);
    return [fieldName, node] as const;
  });
  expectSorted(pairs, (x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0), `${what} fields`);
  return { entries, fields: new Map(pairs) };
}

/** The `map` CRDT type. */
export const mapType: CrdtType<MapNode, JsonObject> = {
  name: 'map',
  empty: () => emptyNode,
  isEmpty: isEmptyNode,
  join: joinNodes,
  value: (body) => {
    const value = nodeValue(body);
    // The root holds no register of its own: map documents are objects.
    return isPlainObject(value) ? (value as JsonObject) : {};
  },
  dots: (body) => collectDots(body, []).sort(compareDots),
  cleared: () => emptyNode,
  conflicts: (_before, _ctxBefore, delta, _deltaCtx, joined) => {
    const out: ConflictFinding[] = [];
    findConflicts(joined, delta, [], out);
    return out;
  },
  encode: encodeNode,
  decode: (form) => decodeNode(form, 0, 'map'),
};
