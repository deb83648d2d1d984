/**
 * The canonical plain form of a document state (codec.ts turns it into bytes) and its checked inverse for
 * untrusted input: `[type, vector, cloud, live, tags, tag vector, tag cloud, body, typeStamp | null,
 * origin | null, hidden bodies]`.
 * Equal states give equal forms: lists are sorted, hidden bodies are listed only when they hold something.
 */
import { CausalContext, compareDots } from '../context.js';
import { type Hlc, hlcCounterMax } from '../hlc.js';
import { contextCloudDotsMax, contextNodesMax } from '../limits.js';
import { checkRegion, checkTag } from '../names.js';
import { decodeFail, expectArray, expectDot, expectInt, expectNodeId, expectSorted } from '../shape.js';
import { type DocState, tagContextOf } from './document.js';
import { isBlankBody } from './join.js';
import { crdtType } from './registry.js';
import { decodeSet, encodeSet } from './set.js';
import { type OriginStamp, type TypeStamp } from './stamps.js';
import { type CrdtTypeName, crdtTypeNames } from './type.js';

/** Fields of a document's canonical form. */
export const docFormFields = 11;

/** Canonical plain form of a document state. */
export function docForm(doc: DocState): unknown[] {
  const { vector, cloud } = doc.ctx.toJSON();
  const tagCtx = tagContextOf(doc).toJSON();
  const typed = doc.typed === undefined ? null : [doc.typed.hlc.ms, doc.typed.hlc.c, doc.typed.node];
  const origin = doc.origin === undefined ? null : [doc.origin.region, doc.origin.hlc.ms, doc.origin.hlc.c, doc.origin.node];
  const others = [...(doc.others ?? [])]
    .filter(([name, body]) => name !== doc.type && !isBlankBody(crdtType(name), body))
    .sort(([x], [y]) => (x < y ? -1 : 1))
    .map(([name, body]) => [name, crdtType(name).encode(body)]);
  return [doc.type, vector, cloud, [...doc.live], encodeSet(doc.tags), tagCtx.vector, tagCtx.cloud, crdtType(doc.type).encode(doc.body), typed, origin, others];
}

function stampTime(ms: unknown, c: unknown, what: string): Hlc {
  return { ms: expectInt(ms, `${what} ms`), c: expectInt(c, `${what} counter`, 0, hlcCounterMax) };
}

function typeStampOf(form: unknown, type: CrdtTypeName): TypeStamp {
  const [ms, c, node] = expectArray(form, 'document type stamp', 3, 3);
  return { type, hlc: stampTime(ms, c, 'type stamp'), node: expectNodeId(node, 'type stamp node') };
}

function originOf(form: unknown): OriginStamp {
  const [region, ms, c, node] = expectArray(form, 'document origin', 4, 4);
  try {
    checkRegion(region);
  } catch (error) {
    return decodeFail(`document origin: ${(error as Error).message}`);
  }
  return { region, hlc: stampTime(ms, c, 'origin'), node: expectNodeId(node, 'origin node') };
}

function hiddenBodiesOf(form: unknown, type: CrdtTypeName): Array<readonly [CrdtTypeName, unknown]> {
  const list = expectArray(form, 'document hidden bodies', 0, crdtTypeNames.length).map((pair, i) => {
    const [name, bodyForm] = expectArray(pair, `hidden body ${i}`, 2, 2);
    let impl;
    try {
      impl = crdtType(name);
    } catch (error) {
      return decodeFail(`hidden body ${i}: ${(error as Error).message}`);
    }
    if (impl.name === type) decodeFail(`hidden body ${i}: of the document's own type`);
    const body = impl.decode(bodyForm);
    if (isBlankBody(impl, body)) decodeFail(`hidden body ${i}: holds nothing (not canonical)`);
    return [impl.name, body] as const;
  });
  expectSorted(list, (x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0), 'document hidden bodies');
  return list;
}

/** Inverse of `docForm` for untrusted input; throws `ERR_DECODE`. */
export function docFromForm(form: unknown): DocState {
  const [typeName, vector, cloud, liveForm, tagsForm, tagVector, tagCloud, bodyForm, typedForm, originForm, othersForm] = expectArray(
    form,
    'document',
    docFormFields,
    docFormFields,
  );
  let type;
  try {
    type = crdtType(typeName);
  } catch (error) {
    return decodeFail(`document: ${(error as Error).message}`);
  }
  const ctx = contextFromForm(vector, cloud);
  const live = expectArray(liveForm, 'document presence dots').map((dot, i) => expectDot(dot, `presence dot ${i}`));
  expectSorted(live, compareDots, 'document presence dots');
  const tags = decodeSet(tagsForm, 'document tags', isTag);
  const tagCtx = contextFromForm(tagVector, tagCloud);
  for (const entry of tags.values()) for (const dot of entry.dots) if (!tagCtx.has(dot)) decodeFail('document tags: a tag dot missing from the tag context');
  const body = type.decode(bodyForm);
  const typed = typedForm === null ? undefined : typeStampOf(typedForm, type.name);
  const origin = originForm === null ? undefined : originOf(originForm);
  const others = hiddenBodiesOf(othersForm, type.name);
  // Every delta with content carries its writer's type stamp: a body without one is no state Tessera writes.
  if (typed === undefined && (!type.isEmpty(body) || others.length > 0)) decodeFail('document: content without a type stamp');
  return {
    type: type.name,
    ctx,
    live,
    tags,
    body,
    ...(tagCtx.isEmpty ? {} : { tagCtx }),
    ...(typed === undefined ? {} : { typed }),
    ...(origin === undefined ? {} : { origin }),
    ...(others.length === 0 ? {} : { others: new Map(others) }),
  };
}

function isTag(tag: unknown): boolean {
  try {
    checkTag(tag);
    return true;
  } catch {
    return false;
  }
}

/** Decodes a causal context's canonical form, within the size bounds. */
export function contextFromForm(vectorForm: unknown, cloudForm: unknown): CausalContext {
  const vector = expectArray(vectorForm, 'context vector', 0, contextNodesMax).map((pair, i) => {
    const [node, max] = expectArray(pair, `context vector[${i}]`, 2, 2);
    return [expectNodeId(node, `context vector[${i}] node`), expectInt(max, `context vector[${i}] counter`, 1)] as const;
  });
  expectSorted(vector, (x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0), 'context vector');
  const cloud = expectArray(cloudForm, 'context cloud', 0, contextCloudDotsMax).map((dot, i) => expectDot(dot, `context cloud[${i}]`));
  expectSorted(cloud, compareDots, 'context cloud');
  const ctx = CausalContext.from(vector, cloud);
  if (ctx.size.nodes > contextNodesMax) decodeFail(`context names ${ctx.size.nodes} nodes, over the limit of ${contextNodesMax}`);
  return ctx;
}
