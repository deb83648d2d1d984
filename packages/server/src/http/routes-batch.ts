/**
 * Batch writes (issue 13 item 4): `POST /v1/kv/:dataset` takes many documents at once, as a JSON array or as
 * NDJSON (`application/x-ndjson`, one item a line), bounded in documents and bytes. Each item is a put
 * (`{ key, value, type?, tags? }`), a delete (`{ key, delete: true }`) or CRDT operations applied in order
 * (`{ key, ops: [...] }`, the body of `POST /v1/kv/:dataset/:key/ops`: counters, Yjs updates, tags).
 *
 * The writes are started together so that the store's group commit (store/committer.ts) puts them down in a
 * few atomic batches with one fsync each, instead of one per document; items on the same key run in their
 * order. Each item answers on its own — its sequence number and session token, or its error code — so a batch
 * with a refused item still lands the others. The route needs a writer grant on the dataset.
 */
import { type FastifyReply, type FastifyRequest } from 'fastify';
import { type CrdtTypeName, type Json, MiB, TesseraError, checkDatasetName, checkKey, checkUserTags, crdtType, isPlainObject } from '@tessera/core';
import { type WriteResult } from '@tessera/store';
import { type RequestOperation, checkOperations, parseOperations } from '../operations.js';
import { problemOf } from '../problem.js';
import { NdjsonBody, type RouteContext, type WriteAnswer, noteTrace, query, sendJson, writeAnswer } from './context.js';
import { type RouteSpec } from './define.js';
import { datasetParams, noQuery, objectOf, writeAnswerSchema } from './schemas.js';

/** Documents in one batch. */
export const batchDocumentsMax = 1_000;
/** Bytes of one batch body (JSON or NDJSON). */
export const batchBytesMax = 8 * MiB;

/** One item of a batch, checked. */
type BatchItem =
  | { readonly kind: 'put'; readonly key: string; readonly value: Json; readonly type?: CrdtTypeName; readonly tags?: readonly string[] }
  | { readonly kind: 'delete'; readonly key: string }
  | { readonly kind: 'ops'; readonly key: string; readonly operations: readonly RequestOperation[] };

/** What one item answers: its write, or its refusal. */
export type BatchItemAnswer =
  | ({ readonly index: number; readonly key: string; readonly ok: true } & WriteAnswer)
  | { readonly index: number; readonly key: string | null; readonly ok: false; readonly status: number; readonly code: string; readonly detail: string };

/** The refusal of a batch over its limits. */
function tooLarge(what: string): TesseraError {
  return new TesseraError(
    'ERR_BATCH_TOO_LARGE',
    `${what}: a batch holds at most ${batchDocumentsMax} documents and ${batchBytesMax} bytes (batchDocumentsMax, batchBytesMax); split it into several requests`,
  );
}

/** The items of a body: a JSON array or NDJSON lines, at most `batchDocumentsMax`. */
function itemsOf(body: unknown): readonly unknown[] {
  if (body === undefined)
    throw new TesseraError('ERR_CONTENT_TYPE', 'content type (none) is not accepted: send application/json (an array) or application/x-ndjson');
  const items = body instanceof NdjsonBody ? body.lines : body;
  if (!Array.isArray(items))
    throw new TesseraError('ERR_BODY_INVALID', 'a batch is a JSON array of items { "key": …, "value": … } (or NDJSON, one item a line)');
  if (items.length === 0) throw new TesseraError('ERR_BODY_INVALID', 'the batch is empty: send 1 to 1000 items');
  if (items.length > batchDocumentsMax) throw tooLarge(`the batch holds ${items.length} documents`);
  return items;
}

/** Checks one item; throws what makes it invalid (reported as that item's answer). */
function parseItem(item: unknown): BatchItem {
  if (!isPlainObject(item))
    throw new TesseraError(
      'ERR_BODY_INVALID',
      'an item is an object { "key": …, "value": …, "type"?: …, "tags"?: […] }, { "key": …, "delete": true } or { "key": …, "ops": [...] }',
    );
  for (const field of Object.keys(item)) {
    if (!['key', 'value', 'type', 'tags', 'delete', 'ops'].includes(field)) {
      throw new TesseraError('ERR_BODY_INVALID', `unknown field ${JSON.stringify(field).slice(0, 80)} (the fields are key, value, type, tags, delete, ops)`);
    }
  }
  checkKey(item.key);
  if (item.ops !== undefined) {
    if (Object.keys(item).length !== 2) throw new TesseraError('ERR_BODY_INVALID', 'an operations item is { "key": …, "ops": [...] } and nothing else');
    if (!Array.isArray(item.ops)) throw new TesseraError('ERR_BODY_INVALID', '"ops" is a list of operations like { "op": "increment", "amount": 1 }');
    return { kind: 'ops', key: item.key, operations: parseOperations(item.ops) };
  }
  if (item.delete !== undefined) {
    if (item.delete !== true || 'value' in item || 'type' in item || 'tags' in item) {
      throw new TesseraError('ERR_BODY_INVALID', 'a delete item is { "key": …, "delete": true } and nothing else');
    }
    return { kind: 'delete', key: item.key };
  }
  if (!('value' in item)) throw new TesseraError('ERR_BODY_INVALID', 'an item needs the field "value" (or "delete": true)');
  if (item.type !== undefined) crdtType(item.type);
  if (item.tags !== undefined) checkUserTags(item.tags);
  return {
    kind: 'put',
    key: item.key,
    value: item.value as Json,
    ...(item.type === undefined ? {} : { type: item.type as CrdtTypeName }),
    ...(item.tags === undefined ? {} : { tags: item.tags as string[] }),
  };
}

/** The batch route. */
export function batchRoutes(context: RouteContext): RouteSpec[] {
  const { replica } = context;

  async function postBatch(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const dataset = (request.params as { dataset: string }).dataset;
    checkDatasetName(dataset);
    query(request, []);
    const items = itemsOf(request.body);
    const answers: BatchItemAnswer[] = new Array(items.length);
    const refuse = (index: number, key: string | null, error: TesseraError) => {
      const problem = problemOf(error);
      answers[index] = {
        index,
        key,
        ok: false,
        status: problem.status,
        code: problem.code,
        detail: problem.detail,
        ...(problem.regions === undefined ? {} : { regions: problem.regions }),
      };
    };
    // Items on one key run in order; different keys run at once, so their commits share batches.
    const byKey = new Map<string, Array<{ index: number; item: BatchItem }>>();
    items.forEach((raw, index) => {
      try {
        const item = parseItem(raw);
        const chain = byKey.get(item.key);
        if (chain === undefined) byKey.set(item.key, [{ index, item }]);
        else chain.push({ index, item });
      } catch (error) {
        if (!(error instanceof TesseraError)) throw error;
        refuse(index, isPlainObject(raw) && typeof raw.key === 'string' ? raw.key : null, error);
      }
    });
    // Without the dataset types, a new document's type is the store's to decide (as routes-kv.ts does).
    const datasetType = replica.policy?.dataset(dataset).type ?? (context.datasets === undefined ? undefined : (context.datasets[dataset]?.type ?? 'map'));
    const write = async (item: BatchItem): Promise<WriteResult> => {
      if (item.kind === 'delete') return replica.delete(dataset, item.key);
      if (item.kind === 'put') {
        return replica.put(dataset, item.key, item.value, {
          ...(item.type === undefined ? {} : { type: item.type }),
          ...(item.tags === undefined ? {} : { tags: item.tags }),
        });
      }
      // Checked against the document first, so that an item is refused before any of its operations applies.
      checkOperations(dataset, item.key, item.operations, await replica.state(dataset, item.key), datasetType);
      let result: WriteResult | null = null;
      for (const operation of item.operations) {
        result =
          operation.kind === 'tag'
            ? await replica.tag(dataset, item.key, operation.change)
            : await replica.operate(dataset, item.key, operation.operation, operation.type === undefined ? {} : { type: operation.type });
        noteTrace(context, request, result);
      }
      return result!;
    };
    await Promise.all(
      [...byKey.values()].map(async (chain) => {
        for (const { index, item } of chain) {
          try {
            const result = await write(item);
            noteTrace(context, request, result);
            answers[index] = { index, key: item.key, ok: true, ...writeAnswer(dataset, item.key, result) };
          } catch (error) {
            if (!(error instanceof TesseraError)) throw error;
            refuse(index, item.key, error);
          }
        }
      }),
    );
    const failed = answers.filter((answer) => !answer.ok).length;
    return sendJson(reply, 200, { dataset, written: answers.length - failed, failed, results: answers });
  }

  const itemSchema = {
    type: 'object',
    required: ['key'],
    additionalProperties: false,
    properties: {
      key: { type: 'string' },
      value: {},
      type: { type: 'string' },
      tags: { type: 'array', items: { type: 'string' } },
      delete: { const: true },
      ops: { type: 'array', minItems: 1, maxItems: 100, items: { type: 'object', required: ['op'], properties: { op: { type: 'string' } } } },
    },
  };
  return [
    {
      method: 'POST',
      url: '/v1/kv/:dataset',
      tags: ['documents'],
      summary: `Write many documents at once (JSON array or NDJSON; at most ${batchDocumentsMax} documents and ${batchBytesMax} bytes), group-committed; one answer per item`,
      need: (request) => ({ kind: 'write', dataset: (request.params as { dataset: string }).dataset }),
      params: datasetParams,
      querystring: noQuery,
      body: { type: 'array', minItems: 1, maxItems: batchDocumentsMax, items: itemSchema },
      consumes: ['application/json', 'application/x-ndjson'],
      bodyLimit: batchBytesMax,
      bodyTooLarge: (limit) => tooLarge(`the batch body exceeds ${limit} bytes`),
      response: objectOf('One answer per item, in order: ok with its sequence number and session token, or its error code.', {
        dataset: { type: 'string' },
        written: { type: 'integer' },
        failed: { type: 'integer' },
        results: {
          type: 'array',
          items: {
            anyOf: [
              {
                ...writeAnswerSchema,
                properties: {
                  ...(writeAnswerSchema as { properties: object }).properties,
                  index: { type: 'integer' },
                  key: { type: 'string' },
                  ok: { const: true },
                },
              },
              objectOf('A refused item.', {
                index: { type: 'integer' },
                key: { type: ['string', 'null'] },
                ok: { const: false },
                status: { type: 'integer' },
                code: { type: 'string' },
                detail: { type: 'string' },
              }),
            ],
          },
        },
      }),
      handler: postBatch,
    },
  ];
}
