/**
 * `GET /v1/placement/:dataset`: which regions may hold a new document of a dataset under this node's enforced
 * policy, with their jurisdictions and locations. Clients route with it (client/routing.ts): a request goes
 * only to a node whose region may hold the dataset. It needs a read grant on the dataset — unlike
 * `GET /v1/policy`, it shows no policy text, only the verdict for one dataset.
 */
import { type FastifyReply, type FastifyRequest } from 'fastify';
import { checkDatasetName, checkKey } from '@tessera/core';
import { policyHash } from '@tessera/store';
import { type RouteContext, query, schemaVerdict, sendJson } from './context.js';
import { type RouteSpec } from './define.js';
import { datasetParams, objectOf, queryOf } from './schemas.js';

/** One region as the placement answer shows it. */
export interface PlacementRegion {
  readonly name: string;
  readonly jurisdiction: string;
  readonly location: readonly [number, number] | null;
  /** True when a document of the dataset written in this region may be held there. */
  readonly mayHold: boolean;
}

/** The placement answer: null policy means none is enforced (every region may hold everything). */
export interface PlacementAnswer {
  readonly dataset: string;
  readonly node: string;
  readonly region: string;
  readonly policy: { readonly version: number; readonly hash: string } | null;
  readonly regions: readonly PlacementRegion[];
}

/** The placement route. */
export function placementRoutes(context: RouteContext): RouteSpec[] {
  const { replica, node } = context;

  async function getPlacement(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const dataset = (request.params as { dataset: string }).dataset;
    checkDatasetName(dataset);
    const params = query(request, ['key']);
    if (params.key !== undefined) checkKey(params.key);
    schemaVerdict(request);
    const policy = replica.policy;
    const answer: PlacementAnswer = {
      dataset,
      node: node.id,
      region: node.region,
      policy: policy === null ? null : { version: policy.version, hash: policyHash(policy) },
      // A new document's origin is the region it is written in: it may be written there if that region may hold it.
      regions:
        policy === null
          ? []
          : policy.regionNames.map((name) => {
              const spec = policy.regions.get(name)!;
              return {
                name,
                jurisdiction: spec.jurisdiction,
                location: spec.location,
                mayHold: policy.decide({ dataset, key: params.key ?? '', tags: [], origin: name }, name).allow,
              };
            }),
    };
    return sendJson(reply, 200, answer);
  }

  return [
    {
      method: 'GET',
      url: '/v1/placement/:dataset',
      tags: ['policy'],
      summary: 'Which regions may hold a new document of the dataset under the enforced policy (for client routing)',
      need: (request) => ({ kind: 'read', datasets: [(request.params as { dataset: string }).dataset] }),
      params: datasetParams,
      querystring: queryOf({ key: { type: 'string' } }),
      response: objectOf('The regions and whether each may hold the dataset; policy null when none is enforced.', {
        dataset: { type: 'string' },
        node: { type: 'string' },
        region: { type: 'string' },
        policy: { type: ['object', 'null'] },
        regions: { type: 'array', items: objectOf('A region.', { name: { type: 'string' }, jurisdiction: { type: 'string' }, mayHold: { type: 'boolean' } }) },
      }),
      handler: getPlacement,
    },
  ];
}
