/**
 * `yjs`: a Yjs document; deltas are Yjs updates. The body is an incarnation number and the document's state
 * as one canonical Yjs update. Equal incarnations merge their updates; a delete starts a higher, empty
 * incarnation, so Yjs content written concurrently with a delete is discarded — with a conflict record.
 * A node writes with a Yjs client id of its own, recorded in the body (`writers`): the first write of a node in
 * an incarnation derives one from the node id, the incarnation and the write's dot — dots never repeat for a
 * node on a document, also after a purge dropped its copy (the store keeps a counter floor) — and later
 * writes reuse it. A node that lost its copy therefore never continues an id whose history it no longer has
 * (Yjs would drop such structs as already seen). Writes to one document are serialised by the store.
 */
import * as Y from 'yjs';
import { type CausalContext } from '../context.js';
import { TesseraError } from '../errors.js';
import { fnv1a32 } from '../hash.js';
import { decodeFail, expectArray, expectBytes, expectInt, expectNodeId } from '../shape.js';
import { discardedBytesInlineMax } from '../limits.js';
import { type ConflictFinding, type CrdtType, type Mutation, type MutationContext } from './type.js';

/** A node and the Yjs client id (or Automerge actor id) it writes with. */
export type Writer<Id> = readonly [node: string, id: Id];

/** A Yjs body: incarnation, state update (empty when nothing was written in it) and the nodes' client ids. */
export interface YjsBody {
  readonly inc: number;
  readonly update: Uint8Array;
  readonly writers: ReadonlyArray<Writer<number>>;
}

const emptyBytes = new Uint8Array(0);
const emptyYjs: YjsBody = { inc: 0, update: emptyBytes, writers: [] };

/** Writers recorded per body: one id per node and lineage (a node that purged its copy twice has three). */
export const writersMax = 4_096;

/**
 * A fresh Yjs client id for `node`'s first write of incarnation `inc`, whose dot has counter `counter`
 * (Yjs ids are 32-bit; 0 is the reader's). `attempt` re-derives past an id the document already uses.
 */
export function yjsClientId(node: string, inc: number, counter: number, attempt = 0): number {
  return fnv1a32(`${node}#${inc}#${counter}${attempt === 0 ? '' : `#${attempt}`}`) || 1;
}

/** The id `node` writes with: the highest recorded for it (a merged copy holds every id's history). */
export function writerIdOf<Id extends number | string>(writers: ReadonlyArray<Writer<Id>>, node: string): Id | undefined {
  let best: Id | undefined;
  for (const [writer, id] of writers) if (writer === node && (best === undefined || id > best)) best = id;
  return best;
}

function compareWriters<Id extends number | string>(a: Writer<Id>, b: Writer<Id>): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  return a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
}

/** The union of two sorted writer lists, sorted and without duplicates. */
export function joinWriters<Id extends number | string>(a: ReadonlyArray<Writer<Id>>, b: ReadonlyArray<Writer<Id>>): ReadonlyArray<Writer<Id>> {
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  const out: Array<Writer<Id>> = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const order = i >= a.length ? 1 : j >= b.length ? -1 : compareWriters(a[i]!, b[j]!);
    if (order < 0) out.push(a[i++]!);
    else if (order > 0) out.push(b[j++]!);
    else {
      out.push(a[i++]!);
      j++;
    }
  }
  return out;
}

/** Decodes a writer list: sorted, unique, within `writersMax`. */
export function decodeWriters<Id>(form: unknown, what: string, expectId: (value: unknown, what: string) => Id): Array<Writer<Id>> {
  const list = expectArray(form, what, 0, writersMax).map((pair, i) => {
    const [node, id] = expectArray(pair, `${what}[${i}]`, 2, 2);
    return [expectNodeId(node, `${what}[${i}] node`), expectId(id, `${what}[${i}] id`)] as const;
  });
  for (let i = 1; i < list.length; i++) {
    if (compareWriters(list[i - 1] as Writer<string | number>, list[i] as Writer<string | number>) >= 0) decodeFail(`${what}: not in canonical order`);
  }
  return list;
}

function applyUpdate(doc: Y.Doc, update: Uint8Array, what: string): void {
  if (update.length === 0) return;
  try {
    Y.applyUpdate(doc, update);
  } catch (error) {
    throw new TesseraError('ERR_YJS_UPDATE_INVALID', `${what}: ${(error as Error).message}`, { cause: error });
  }
}

/** The client id of documents that are only read: no node's derived id is 0 (see `yjsClientId`). */
const readerClientId = 0;

/**
 * Loads a body into a fresh Y.Doc that writes as `clientId`. The id is set after loading: Yjs replaces a
 * document's id with a random one when a loaded update contains structs of that id, and the node's own
 * earlier writes do.
 */
export function yjsDoc(body: YjsBody, clientId = readerClientId): Y.Doc {
  const doc = new Y.Doc({ gc: true });
  doc.clientID = readerClientId;
  applyUpdate(doc, body.update, 'yjs state');
  doc.clientID = clientId;
  return doc;
}

/** The canonical update of a document: Yjs writes clients and delete sets in sorted order. */
function canonical(updates: Uint8Array[]): Uint8Array {
  const doc = new Y.Doc({ gc: true });
  doc.clientID = readerClientId;
  for (const update of updates) applyUpdate(doc, update, 'yjs update');
  const state = Y.encodeStateAsUpdate(doc);
  doc.destroy();
  return isEmptyUpdate(state) ? emptyBytes : state;
}

function isEmptyUpdate(update: Uint8Array): boolean {
  // An update with no structs and no deletions encodes as two zero varints.
  return update.length === 0 || (update.length === 2 && update[0] === 0 && update[1] === 0);
}

/** Applies a Yjs update given from outside (validated), producing the delta. */
export function yjsApplyUpdate(body: YjsBody, update: Uint8Array, ctx: MutationContext): Mutation<YjsBody> {
  // Integrating it once proves it is a well-formed update before it reaches the log.
  canonical([body.update, update]);
  const dot = ctx.nextDot();
  return { body: { inc: body.inc, update: canonical([update]), writers: [] }, added: [dot], removed: [] };
}

/** The client id `ctx.node` writes `body` with, and whether it is new (first write of its lineage). */
function clientIdFor(body: YjsBody, doc: Y.Doc, ctx: MutationContext, counter: number): number {
  const known = writerIdOf(body.writers, ctx.node);
  if (known !== undefined) return known;
  const used = Y.decodeStateVector(Y.encodeStateVector(doc));
  let id = yjsClientId(ctx.node, body.inc, counter);
  for (let attempt = 1; used.has(id); attempt++) id = yjsClientId(ctx.node, body.inc, counter, attempt);
  return id;
}

/** Runs `change` on the document as `ctx.node` and returns the delta holding the resulting Yjs update. */
export function yjsChange(body: YjsBody, change: (doc: Y.Doc) => void, ctx: MutationContext): Mutation<YjsBody> {
  const dot = ctx.nextDot();
  const doc = yjsDoc(body);
  const clientId = clientIdFor(body, doc, ctx, dot[1]);
  doc.clientID = clientId;
  const before = Y.encodeStateVector(doc);
  doc.transact(() => change(doc));
  const update = Y.encodeStateAsUpdate(doc, before);
  doc.destroy();
  // Deltas are canonical too, so that a delta joined with the empty state gives the same bytes either way.
  return { body: { inc: body.inc, update: canonical([update]), writers: [[ctx.node, clientId]] }, added: [dot], removed: [] };
}

function yjsJoin(a: YjsBody, _ctxA: CausalContext, b: YjsBody, _ctxB: CausalContext): YjsBody {
  if (a.inc !== b.inc) return a.inc > b.inc ? a : b;
  const writers = joinWriters(a.writers, b.writers);
  if (b.update.length === 0 || a.update === b.update) return writers === a.writers ? a : { ...a, writers };
  if (a.update.length === 0) return { inc: a.inc, update: canonical([b.update]), writers };
  return { inc: a.inc, update: canonical([a.update, b.update]), writers };
}

/** Discarded content kept in a conflict record: the update itself when small, else its size. */
export function discardedBytesValue(bytes: Uint8Array): { bytes: number; base64?: string } {
  return bytes.length <= discardedBytesInlineMax ? { bytes: bytes.length, base64: Buffer.from(bytes).toString('base64') } : { bytes: bytes.length };
}

function contentValue(body: YjsBody): { bytes: number; base64?: string } {
  return discardedBytesValue(body.update);
}

/** The `yjs` CRDT type. Its value is the document state as one Yjs update. */
export const yjsType: CrdtType<YjsBody, Uint8Array> = {
  name: 'yjs',
  empty: () => emptyYjs,
  isEmpty: (body) => body.update.length === 0,
  bodyDecidesExistence: true,
  join: yjsJoin,
  value: (body) => body.update,
  dots: () => [],
  cleared: (body) => ({ inc: body.inc + 1, update: emptyBytes, writers: [] }),
  conflicts: (before, ctxBefore, delta, deltaCtx) => {
    const out: ConflictFinding[] = [];
    if (delta.inc < before.inc && delta.update.length > 0 && !ctxBefore.includes(deltaCtx)) {
      out.push({
        path: [],
        kind: 'delete-discarded-update',
        winner: { value: null, dot: null, hlc: null },
        loser: { value: contentValue(delta), dot: null, hlc: null },
      });
    }
    if (delta.inc > before.inc && before.update.length > 0 && !deltaCtx.includes(ctxBefore)) {
      out.push({
        path: [],
        kind: 'delete-discarded-update',
        winner: { value: null, dot: null, hlc: null },
        loser: { value: contentValue(before), dot: null, hlc: null },
      });
    }
    return out;
  },
  encode: (body) => [body.inc, body.update, body.writers.map(([node, id]) => [node, id])],
  decode: (form) => {
    const [inc, update, writers] = expectArray(form, 'yjs', 3, 3);
    return {
      inc: expectInt(inc, 'yjs incarnation'),
      update: expectBytes(update, 'yjs update'),
      writers: decodeWriters(writers, 'yjs writers', (value, what) => expectInt(value, what, 1, 0xffffffff)),
    };
  },
};
