/**
 * The dashboard's static shell (`/`, `/static/:file`) and the API description (`/openapi.json`).
 *
 * The shell is public on purpose, as a login page is: it is the same few files in every installation and holds
 * no data. Everything it shows comes from `/v1/cluster`, which needs an operator token; the page asks for one
 * (or takes it from the `#token=` fragment `tessera dev` prints, which browsers never send to the server) and
 * keeps it in the tab's session storage only. The OpenAPI description needs any valid token.
 */
import { type FastifyInstance } from 'fastify';
import { dashboardFile, dashboardHeaders } from '../dashboard.js';
import { query } from './context.js';
import { type RouteSpec } from './define.js';
import { noQuery, objectOf } from './schemas.js';

/** The dashboard and API description routes. */
export function staticRoutes(app: () => FastifyInstance): RouteSpec[] {
  const file =
    (name: (params: Record<string, string>) => string): RouteSpec['handler'] =>
    async (request, reply) => {
      query(request, []);
      const found = await dashboardFile(name(request.params as Record<string, string>));
      return reply.code(200).headers(dashboardHeaders(found)).type(found.contentType).send(found.bytes);
    };
  const page = { description: 'A file of the dashboard.', type: 'string' };
  return [
    {
      method: 'GET',
      url: '/',
      summary: 'The dashboard page (static; its data needs an operator token)',
      tags: ['dashboard'],
      need: () => 'public',
      querystring: noQuery,
      produces: 'text/html',
      response: page,
      handler: file(() => 'index.html'),
    },
    {
      method: 'GET',
      url: '/static/:file',
      summary: 'A file of the dashboard (static)',
      tags: ['dashboard'],
      need: () => 'public',
      querystring: noQuery,
      produces: 'text/javascript',
      params: { type: 'object', required: ['file'], properties: { file: { type: 'string', maxLength: 64 } } },
      response: page,
      handler: file((params) => params.file!),
    },
    {
      method: 'GET',
      url: '/openapi.json',
      summary: "This API's OpenAPI 3 description, generated from the routes' schemas",
      tags: ['docs'],
      need: () => ({ kind: 'any' }),
      querystring: noQuery,
      response: objectOf('An OpenAPI 3.0 document.'),
      handler: async (request, reply) => {
        query(request, []);
        return reply.code(200).type('application/json; charset=utf-8').send(JSON.stringify(app().swagger()));
      },
    },
  ];
}
