/**
 * The node: status, peers, metrics, health, audit, the cluster view and the read-only inspection routes.
 * These need the operator role (inspection that shows keys or values also a read grant on those datasets);
 * health needs any valid token and metrics the operator role, unless the config opens them (`api.open`).
 */
import { type FastifyReply, type FastifyRequest } from 'fastify';
import { performance } from 'node:perf_hooks';
import { TesseraError } from '@tessera/core';
import { clusterSnapshot, memberPart } from '../cluster-view.js';
import { type RouteContext, integerParam, query, schemaVerdict, sendJson } from './context.js';
import { type Need, type RouteSpec } from './define.js';
import { inspectRoutes } from './inspect-routes.js';
import { datasetParams, documentParamsSchema, integerString, noQuery, objectOf, queryOf } from './schemas.js';

/** The routes the config can open without a credential. */
export interface OpenRoutes {
  readonly health: boolean;
  readonly metrics: boolean;
}

const operator: Need = { kind: 'operator' };

/** The node routes. */
export function nodeRoutes(context: RouteContext, open: OpenRoutes): RouteSpec[] {
  const { replica, node } = context;
  const links = () => context.replication?.status().links ?? [];
  const simple = (
    url: string,
    summary: string,
    tags: string[],
    need: Need,
    response: object,
    answer: (request: FastifyRequest) => Promise<unknown>,
  ): RouteSpec => ({
    method: 'GET',
    url,
    summary,
    tags,
    need: () => need,
    querystring: noQuery,
    response,
    handler: async (request: FastifyRequest, reply: FastifyReply) => {
      query(request, []);
      schemaVerdict(request);
      return sendJson(reply, 200, await answer(request));
    },
  });
  const routes: RouteSpec[] = [
    simple(
      '/v1/status',
      'This node: id, region, log head, durability, uptime and every link',
      ['node'],
      operator,
      objectOf("The node's status.", { node: { type: 'string' }, region: { type: 'string' }, lastSeq: { type: 'integer' }, links: { type: 'array' } }),
      async () => ({
        node: node.id,
        region: node.region,
        zone: node.zone ?? null,
        lastSeq: replica.lastSeq,
        durability: replica.durability,
        uptimeMs: Math.round(performance.now() - context.startedMs),
        links: links(),
      }),
    ),
    simple(
      '/v1/peers',
      'Links and the durable cursors of every peer',
      ['node'],
      operator,
      objectOf('Links and cursors.', { links: { type: 'array' }, cursors: {} }),
      async () => ({ links: links(), cursors: await replica.cursors() }),
    ),
    simple(
      '/healthz',
      'Liveness: the process answers',
      ['health'],
      open.health ? 'public' : { kind: 'any' },
      objectOf('Always { ok: true }.', { ok: { type: 'boolean' } }),
      async () => ({ ok: true }),
    ),
    {
      method: 'GET',
      url: '/readyz',
      summary: 'Readiness: the store is open and the node is not draining (503 otherwise)',
      tags: ['health'],
      need: () => (open.health ? 'public' : { kind: 'any' }),
      querystring: noQuery,
      response: objectOf('Ready or not (the status says which: 200 or 503).', {
        ready: { type: 'boolean' },
        storeOpen: { type: 'boolean' },
        draining: { type: 'boolean' },
      }),
      handler: async (request, reply) => {
        query(request, []);
        const storeOpen = replica.isOpen;
        const ready = storeOpen && !context.draining();
        return sendJson(reply, ready ? 200 : 503, { ready, storeOpen, draining: context.draining() });
      },
    },
    {
      method: 'GET',
      url: '/metrics',
      summary: 'Prometheus metrics (text format)',
      tags: ['node'],
      produces: 'text/plain',
      need: () => (open.metrics ? 'public' : operator),
      querystring: noQuery,
      response: { description: 'Prometheus text exposition format.', type: 'string' },
      handler: async (request, reply) => {
        query(request, []);
        const metrics = context.metrics;
        if (metrics === undefined) throw new TesseraError('ERR_NOT_FOUND', 'this node serves no metrics (createHttpHandler was given none)');
        return reply
          .code(200)
          .type(metrics.registry.contentType)
          .send(await metrics.registry.metrics());
      },
    },
    {
      method: 'GET',
      url: '/v1/audit',
      summary: "This region's audit log, oldest first",
      tags: ['audit'],
      need: () => operator,
      querystring: queryOf({ after: integerString, limit: integerString }),
      response: objectOf('Audit entries.', { region: { type: 'string' }, length: { type: 'integer' }, entries: { type: 'array' } }),
      handler: async (request, reply) => {
        const params = query(request, ['after', 'limit']);
        const after = params.after === undefined ? undefined : integerParam('after', params.after);
        const limit = params.limit === undefined ? undefined : integerParam('limit', params.limit);
        schemaVerdict(request);
        const entries = await replica.audit({ ...(after === undefined ? {} : { after }), ...(limit === undefined ? {} : { limit }) });
        return sendJson(reply, 200, { region: node.region, length: replica.auditLength, entries });
      },
    },
    simple('/v1/audit/verify', "Checks this region's audit chain", ['audit'], operator, objectOf('The verdict.', { ok: { type: 'boolean' } }), async () => ({
      region: node.region,
      ...(await replica.verifyAudit()),
    })),
    simple(
      '/v1/cluster',
      'The cluster as this node sees it: nodes, links, counts, conflicts (ids and key digests) and the audit tail',
      ['cluster'],
      operator,
      objectOf('The cluster view; it carries no key or value.', {
        viewer: { type: 'object' },
        members: { type: 'array' },
        conflicts: { type: 'array' },
        audit: { type: 'array' },
      }),
      async (request) => clusterSnapshot(context.cluster, request.headers.authorization),
    ),
    {
      method: 'GET',
      url: '/v1/cluster/member',
      summary: "This node's part of the cluster view: status, policy stamps, counts, conflict ids and key digests, audit tail",
      tags: ['cluster'],
      need: () => operator,
      querystring: queryOf({ auditAfter: integerString }),
      response: objectOf("One node's part of the view; no key or value."),
      handler: async (request, reply) => {
        const params = query(request, ['auditAfter']);
        const auditAfter = params.auditAfter === undefined ? 0 : integerParam('auditAfter', params.auditAfter);
        schemaVerdict(request);
        return sendJson(reply, 200, await memberPart(replica, node, links(), auditAfter, context.startedMs));
      },
    },
  ];
  for (const route of inspectRoutes) {
    routes.push({
      method: 'GET',
      url: route.pattern,
      summary: route.summary,
      tags: ['inspect'],
      need: (request) => route.need(request.params as Record<string, string>, request.query as Record<string, unknown>),
      ...(route.pattern.includes(':key') ? { params: documentParamsSchema } : route.pattern.includes(':dataset') ? { params: datasetParams } : {}),
      querystring: queryOf(Object.fromEntries(route.query.map((name) => [name, { type: 'string' }]))),
      response: objectOf(route.summary),
      handler: async (request, reply) => {
        const params = query(request, route.query);
        schemaVerdict(request);
        return sendJson(reply, 200, await route.answer(replica, params, request.params as Record<string, string>));
      },
    });
  }
  return routes;
}
