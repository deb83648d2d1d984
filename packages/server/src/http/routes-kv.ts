/**
 * Documents (DESIGN §6): `PUT/GET/DELETE /v1/kv/:dataset/:key`, `POST /v1/kv/:dataset/:key/ops`,
 * `GET /v1/kv/:dataset` and `GET /v1/conflicts`. Reads need a reader (or writer) grant on the dataset, writes
 * a writer grant. Every write answers a session token; a read that presents one waits for its write.
 */
import { type FastifyReply, type FastifyRequest } from 'fastify';
import { type CrdtTypeName, type Json, TesseraError, assertMayHold, checkDatasetName, isPlainObject } from '@tessera/core';
import { problemOf } from '../problem.js';
import { decodeSessionToken } from '../token.js';
import { checkOperations, parseOperations } from '../operations.js';
import {
  type RouteContext,
  type WriteAnswer,
  documentParams,
  integerParam,
  noteTrace,
  query,
  requireBody,
  schemaVerdict,
  sendJson,
  sendProblem,
  writeAnswer,
} from './context.js';
import { type RouteSpec } from './define.js';
import { datasetParams, documentParamsSchema, noQuery, objectOf, queryOf, writeAnswerSchema } from './schemas.js';

const tags = ['documents'];
const doc = (request: FastifyRequest) => (request.params as { dataset: string }).dataset;

/** The document routes. */
export function kvRoutes(context: RouteContext, waitMsMax: number): RouteSpec[] {
  const { replica, node } = context;

  async function getDocument(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const { dataset, key } = documentParams(request);
    const params = query(request, ['token', 'waitMs']);
    if (params.waitMs !== undefined && params.token === undefined) throw new TesseraError('ERR_OPTION_INVALID', 'waitMs applies only to a read with a token');
    schemaVerdict(request);
    if (params.token !== undefined) {
      const token = decodeSessionToken(params.token);
      if (token.dataset !== dataset || token.key !== key) {
        throw new TesseraError(
          'ERR_TOKEN_INVALID',
          `session token is for a write to ${token.dataset}/${token.key}, not ${dataset}/${key}: present it only when reading that document`,
        );
      }
      const waitMs = Math.min(params.waitMs === undefined ? waitMsMax : integerParam('waitMs', params.waitMs), waitMsMax);
      if (!(await context.waits.waitForDot(dataset, key, token.dot, waitMs, request.tessera.signal))) {
        return sendProblem(
          request,
          reply,
          problemOf(
            new TesseraError(
              'ERR_NOT_YET_REPLICATED',
              `node ${node.id} (${node.region}) does not hold the write ${token.dot[0]}:${token.dot[1]} of ${dataset}/${key} ` +
                `named by session token ${params.token} after waiting ${waitMs} ms: retry later, or read from node ${token.dot[0]}`,
            ),
            { token: params.token },
          ),
        );
      }
    }
    const view = await replica.get(dataset, key);
    if (view === undefined) {
      // A document of a dataset this region may not hold at all is another region's to answer for.
      const policy = replica.policy;
      if (policy !== null) assertMayHold(policy, { dataset, key, tags: [], origin: node.region }, node.region);
      throw new TesseraError('ERR_DOC_NOT_FOUND', `document ${dataset}/${key} does not exist on node ${node.id}`);
    }
    return sendJson(reply, 200, view);
  }

  async function putDocument(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const { dataset, key } = documentParams(request);
    query(request, []);
    const body = requireBody(request);
    if (!isPlainObject(body)) throw new TesseraError('ERR_BODY_INVALID', 'PUT body must be an object { "value": …, "type"?: …, "tags"?: […] }');
    for (const field of Object.keys(body)) {
      if (field !== 'value' && field !== 'type' && field !== 'tags') {
        throw new TesseraError('ERR_BODY_INVALID', `PUT body: unknown field ${JSON.stringify(field).slice(0, 80)} (the fields are value, type, tags)`);
      }
    }
    if (!('value' in body)) throw new TesseraError('ERR_BODY_INVALID', 'PUT body needs the field "value"');
    schemaVerdict(request);
    const options: { type?: CrdtTypeName; tags?: readonly string[] } = {};
    if (body.type !== undefined) options.type = body.type as CrdtTypeName;
    if (body.tags !== undefined) options.tags = body.tags as string[];
    const result = await replica.put(dataset, key, body.value as Json, options);
    noteTrace(context, request, result);
    return sendJson(reply, 200, writeAnswer(dataset, key, result));
  }

  async function deleteDocument(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const { dataset, key } = documentParams(request);
    query(request, []);
    schemaVerdict(request);
    const result = await replica.delete(dataset, key);
    noteTrace(context, request, result);
    return sendJson(reply, 200, writeAnswer(dataset, key, result));
  }

  async function postOperations(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const { dataset, key } = documentParams(request);
    query(request, []);
    const operations = parseOperations(requireBody(request));
    schemaVerdict(request);
    // Without the dataset types, a new document's type is the store's to decide.
    const datasetType = replica.policy?.dataset(dataset).type ?? (context.datasets === undefined ? undefined : (context.datasets[dataset]?.type ?? 'map'));
    checkOperations(dataset, key, operations, await replica.state(dataset, key), datasetType);
    const results: WriteAnswer[] = [];
    for (const [i, item] of operations.entries()) {
      try {
        const result =
          item.kind === 'tag'
            ? await replica.tag(dataset, key, item.change)
            : await replica.operate(dataset, key, item.operation, item.type === undefined ? {} : { type: item.type });
        noteTrace(context, request, result);
        results.push(writeAnswer(dataset, key, result));
      } catch (error) {
        if (results.length === 0 || !(error instanceof TesseraError)) throw error;
        // Earlier operations are durable: say which, so the client knows what took effect.
        const failed = new TesseraError(error.code, `operation ${i} failed after operations 0 to ${i - 1} were applied (see results): ${error.message}`, {
          cause: error,
        });
        return sendProblem(request, reply, problemOf(failed, { failedOperation: i, results }));
      }
    }
    return sendJson(reply, 200, { results });
  }

  async function listDocuments(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const dataset = (request.params as { dataset: string }).dataset;
    checkDatasetName(dataset);
    const params = query(request, ['prefix', 'limit', 'cursor']);
    const limit = params.limit === undefined ? undefined : integerParam('limit', params.limit);
    schemaVerdict(request);
    const page = await replica.list(dataset, {
      ...(params.prefix === undefined ? {} : { prefix: params.prefix }),
      ...(limit === undefined ? {} : { limit }),
      ...(params.cursor === undefined ? {} : { cursor: params.cursor }),
    });
    return sendJson(reply, 200, page);
  }

  async function listConflicts(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const params = query(request, ['dataset', 'key', 'limit']);
    const limit = params.limit === undefined ? undefined : integerParam('limit', params.limit);
    schemaVerdict(request);
    const conflicts = await replica.conflicts({
      ...(params.dataset === undefined ? {} : { dataset: params.dataset }),
      ...(params.key === undefined ? {} : { key: params.key }),
      ...(limit === undefined ? {} : { limit }),
    });
    return sendJson(reply, 200, { conflicts });
  }

  const documentView = objectOf('The document: value, type, tags, causal context and conflicts.', {
    dataset: { type: 'string' },
    key: { type: 'string' },
    type: { type: 'string' },
    value: {},
    tags: { type: 'array', items: { type: 'string' } },
    context: { type: 'object' },
    conflicts: { type: 'array' },
  });
  return [
    {
      method: 'GET',
      url: '/v1/kv/:dataset/:key',
      tags,
      summary: 'Read a document; with a session token, wait until this node holds its write',
      need: (request) => ({ kind: 'read', datasets: [doc(request)] }),
      params: documentParamsSchema,
      querystring: queryOf({ token: { type: 'string' }, waitMs: { type: 'string', pattern: '^[0-9]{1,9}$' } }),
      response: documentView,
      handler: getDocument,
    },
    {
      method: 'PUT',
      url: '/v1/kv/:dataset/:key',
      tags,
      summary: 'Write a document (creating it with a type and tags)',
      need: (request) => ({ kind: 'write', dataset: doc(request) }),
      params: documentParamsSchema,
      querystring: noQuery,
      body: {
        type: 'object',
        required: ['value'],
        properties: { value: {}, type: { type: 'string' }, tags: { type: 'array', items: { type: 'string' } } },
        additionalProperties: false,
      },
      response: writeAnswerSchema,
      handler: putDocument,
    },
    {
      method: 'DELETE',
      url: '/v1/kv/:dataset/:key',
      tags,
      summary: 'Delete a document',
      need: (request) => ({ kind: 'write', dataset: doc(request) }),
      params: documentParamsSchema,
      querystring: noQuery,
      response: writeAnswerSchema,
      handler: deleteDocument,
    },
    {
      method: 'POST',
      url: '/v1/kv/:dataset/:key/ops',
      tags,
      summary: 'Apply CRDT operations and tag changes to a document, in order',
      need: (request) => ({ kind: 'write', dataset: doc(request) }),
      params: documentParamsSchema,
      querystring: noQuery,
      body: {
        oneOf: [
          { type: 'object', required: ['op'], properties: { op: { type: 'string' } } },
          { type: 'array', minItems: 1, maxItems: 100, items: { type: 'object' } },
        ],
      },
      response: objectOf('One answer per operation.', { results: { type: 'array', items: writeAnswerSchema } }),
      handler: postOperations,
    },
    {
      method: 'GET',
      url: '/v1/kv/:dataset',
      tags,
      summary: "List a dataset's documents by key (paged)",
      need: (request) => ({ kind: 'read', datasets: [doc(request)] }),
      params: datasetParams,
      querystring: queryOf({ prefix: { type: 'string' }, limit: { type: 'string', pattern: '^[0-9]{1,9}$' }, cursor: { type: 'string' } }),
      response: objectOf('A page of documents and the cursor of the next one (null at the end).', {
        items: { type: 'array' },
        cursor: { type: ['string', 'null'] },
      }),
      handler: listDocuments,
    },
    {
      method: 'GET',
      url: '/v1/conflicts',
      tags,
      summary: 'Conflict records (values an automatic resolution hid)',
      // Without a dataset the list spans every dataset: only a grant on all of them may see it.
      need: (request) => ({
        kind: 'read',
        datasets: typeof (request.query as { dataset?: unknown }).dataset === 'string' ? [(request.query as { dataset: string }).dataset] : '*',
      }),
      querystring: queryOf({ dataset: { type: 'string' }, key: { type: 'string' }, limit: { type: 'string', pattern: '^[0-9]{1,9}$' } }),
      response: objectOf('Conflict records.', { conflicts: { type: 'array' } }),
      handler: listConflicts,
    },
  ];
}
