/**
 * Reading format version 1 of documents and deltas (before origin and type stamps), for the migration of a
 * data directory written by Tessera 0.1. Version 1 recorded the origin as a reserved tag `origin:<region>`
 * (the lexicographically smallest won) and had no type stamp, no tag context and no writer ids. The upgrade
 * keeps every dot and value, turns the smallest origin tag into an origin stamp at time zero (so it precedes
 * any creation made after the upgrade), gives content a type stamp at time zero, and records no Yjs or
 * Automerge writers (a node's next write mints a fresh id: the ids of version 1 are never continued).
 */
import { CausalContext } from './context.js';
import { decodeBounded } from './codec.js';
import { type DocState } from './crdt/document.js';
import { docFromForm } from './crdt/form.js';
import { crdtType } from './crdt/registry.js';
import { type OriginStamp } from './crdt/stamps.js';
import { hlcZero } from './hlc.js';
import { originTagPrefix } from './policy/facts.js';
import { decodeFail, expectArray, expectInt } from './shape.js';

/** The format version of a document's bytes (1 or 2), without decoding the rest. */
export function docBytesVersion(bytes: Uint8Array): number {
  // Both versions are a MessagePack array whose first item is the version, a positive fixint.
  if (bytes.length < 2 || ((bytes[0]! & 0xf0) !== 0x90 && bytes[0] !== 0xdc)) decodeFail('document: not a document');
  const at = bytes[0] === 0xdc ? 3 : 1;
  const version = bytes[at];
  if (version === undefined || version > 0x7f) decodeFail('document: no format version');
  return version;
}

/** Node id of the stamps the upgrade writes when the state names no writer. */
const upgradeNode = 'v1';

/** Decodes a version-1 document or delta and returns it as a version-2 state; throws `ERR_DECODE`. */
export function upgradeDocV1(bytes: Uint8Array, what = 'document'): DocState {
  const form = expectArray(decodeBounded(bytes, what), what, 7, 7);
  if (expectInt(form[0], `${what} format version`) !== 1) decodeFail(`${what}: not format version 1`);
  const [type, vector, cloud, live, tagsForm, bodyForm] = form.slice(1) as [string, unknown, unknown, unknown[], unknown, unknown];
  const tags = expectArray(tagsForm, `${what} tags`) as Array<[string, Array<[string, number]>]>;
  let origin: OriginStamp | undefined;
  const userTags: Array<[string, Array<[string, number]>]> = [];
  for (const entry of tags) {
    const [tag, dots] = expectArray(entry, `${what} tag`, 2, 2) as [string, Array<[string, number]>];
    if (typeof tag === 'string' && tag.startsWith(originTagPrefix)) {
      const region = tag.slice(originTagPrefix.length);
      if (origin === undefined || region < origin.region) origin = { region, hlc: hlcZero, node: dots[0]?.[0] ?? upgradeNode };
    } else {
      userTags.push([tag, dots]);
    }
  }
  const tagCtx = CausalContext.from(
    [],
    userTags.flatMap(([, dots]) => dots),
  ).toJSON();
  let body = bodyForm;
  if (type === 'yjs' || type === 'automerge') body = [...expectArray(bodyForm, `${what} ${type} body`, 2, 2), []];
  const impl = crdtType(type);
  const hasContent = live.length > 0 || !impl.isEmpty(impl.decode(body));
  const writer = origin?.node ?? (expectArray(vector, `${what} vector`)[0] as [string, number] | undefined)?.[0] ?? upgradeNode;
  const typed = hasContent ? [hlcZero.ms, hlcZero.c, writer] : null;
  const originForm = origin === undefined ? null : [origin.region, hlcZero.ms, hlcZero.c, origin.node];
  return docFromForm([type, vector, cloud, live, userTags, tagCtx.vector, tagCtx.cloud, body, typed, originForm, []]);
}
