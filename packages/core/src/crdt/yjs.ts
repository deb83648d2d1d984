/**
 * `yjs`: a Yjs document; deltas are Yjs updates. The body is an incarnation number and the document's state
 * as one canonical Yjs update. Equal incarnations merge their updates; a delete starts a higher, empty
 * incarnation, so Yjs content written concurrently with a delete is discarded — with a conflict record.
 * A node writes with a Yjs client id derived from its node id and the incarnation, and writes to one
 * document are serialised by the store, so client ids never collide within an incarnation.
 */
import * as Y from 'yjs';
import { type CausalContext } from '../context.js';
import { TesseraError } from '../errors.js';
import { fnv1a32 } from '../hash.js';
import { expectArray, expectBytes, expectInt } from '../shape.js';
import { discardedBytesInlineMax } from '../limits.js';
import { type ConflictFinding, type CrdtType, type Mutation, type MutationContext } from './type.js';

/** A Yjs body: incarnation and state update (empty when nothing was written in this incarnation). */
export interface YjsBody {
  readonly inc: number;
  readonly update: Uint8Array;
}

const emptyBytes = new Uint8Array(0);
const emptyYjs: YjsBody = { inc: 0, update: emptyBytes };

/** The Yjs client id `node` uses in incarnation `inc` (Yjs ids are 32-bit; 0 is avoided). */
export function yjsClientId(node: string, inc: number): number {
  return fnv1a32(`${node}#${inc}`) || 1;
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
  return { body: { inc: body.inc, update: canonical([update]) }, added: [dot], removed: [] };
}

/** Runs `change` on the document as `ctx.node` and returns the delta holding the resulting Yjs update. */
export function yjsChange(body: YjsBody, change: (doc: Y.Doc) => void, ctx: MutationContext): Mutation<YjsBody> {
  const doc = yjsDoc(body, yjsClientId(ctx.node, body.inc));
  const before = Y.encodeStateVector(doc);
  doc.transact(() => change(doc));
  const update = Y.encodeStateAsUpdate(doc, before);
  doc.destroy();
  const dot = ctx.nextDot();
  // Deltas are canonical too, so that a delta joined with the empty state gives the same bytes either way.
  return { body: { inc: body.inc, update: canonical([update]) }, added: [dot], removed: [] };
}

function yjsJoin(a: YjsBody, _ctxA: CausalContext, b: YjsBody, _ctxB: CausalContext): YjsBody {
  if (a.inc !== b.inc) return a.inc > b.inc ? a : b;
  if (b.update.length === 0 || a.update === b.update) return a;
  if (a.update.length === 0) return { inc: a.inc, update: canonical([b.update]) };
  return { inc: a.inc, update: canonical([a.update, b.update]) };
}

/** Discarded content kept in a conflict record: the update itself when small, else its size. */
export function discardedBytesValue(bytes: Uint8Array): { bytes: number; base64?: string } {
  return bytes.length <= discardedBytesInlineMax
    ? { bytes: bytes.length, base64: Buffer.from(bytes).toString('base64') }
    : { bytes: bytes.length };
}

function contentValue(body: YjsBody): { bytes: number; base64?: string } {
  return discardedBytesValue(body.update);
}

/** The `yjs` CRDT type. Its value is the document state as one Yjs update. */
export const yjsType: CrdtType<YjsBody, Uint8Array> = {
  name: 'yjs',
  empty: () => emptyYjs,
  isEmpty: (body) => body.update.length === 0,
  join: yjsJoin,
  value: (body) => body.update,
  dots: () => [],
  cleared: (body) => ({ inc: body.inc + 1, update: emptyBytes }),
  conflicts: (before, ctxBefore, delta, deltaCtx) => {
    const out: ConflictFinding[] = [];
    if (delta.inc < before.inc && delta.update.length > 0 && !ctxBefore.includes(deltaCtx)) {
      out.push({ path: [], kind: 'delete-discarded-update', winner: { value: null, dot: null, hlc: null }, loser: { value: contentValue(delta), dot: null, hlc: null } });
    }
    if (delta.inc > before.inc && before.update.length > 0 && !deltaCtx.includes(ctxBefore)) {
      out.push({ path: [], kind: 'delete-discarded-update', winner: { value: null, dot: null, hlc: null }, loser: { value: contentValue(before), dot: null, hlc: null } });
    }
    return out;
  },
  encode: (body) => [body.inc, body.update],
  decode: (form) => {
    const [inc, update] = expectArray(form, 'yjs', 2, 2);
    return { inc: expectInt(inc, 'yjs incarnation'), update: expectBytes(update, 'yjs update') };
  },
};
