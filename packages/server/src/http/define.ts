/**
 * Routes are data: a method, a URL pattern, what the caller needs (`need`), the schemas, and a handler.
 * `registerRoutes` mounts them on Fastify with the shared problem answers and answers 405 (with `Allow`) for
 * the other methods on each pattern.
 */
import { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { TesseraError } from '@tessera/core';
import { type Requirement } from '../auth/access.js';
import { problemResponses } from './schemas.js';

/** The methods the API serves. */
export type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';

/** What a route needs from its caller: a requirement, or nothing (`public`: the dashboard's static shell, opened routes). */
export type Need = Requirement | 'public';

/** One route. */
export interface RouteSpec {
  readonly method: Method;
  readonly url: string;
  readonly summary: string;
  readonly tags: readonly string[];
  /** Judged after authentication, before the body is read. */
  readonly need: (request: FastifyRequest) => Need;
  readonly params?: object;
  readonly querystring?: object;
  readonly body?: object;
  /** The 200 answer; problem answers are added to every route. */
  readonly response: object;
  /** Content type of the 200 answer when it is not JSON. */
  readonly produces?: string;
  readonly bodyLimit?: number;
  /** Content types of the body besides JSON (for the OpenAPI description); the app's parsers decide what is read. */
  readonly consumes?: readonly string[];
  /** The refusal of a body over `bodyLimit` (default: `ERR_BODY_TOO_LARGE`). */
  readonly bodyTooLarge?: (bodyLimit: number) => TesseraError;
  readonly handler: (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What the route needs (see `Need`); absent on Fastify's own answers (404). */
    need?: (request: FastifyRequest) => Need;
    /** The route's refusal of a body over its limit (see `RouteSpec.bodyTooLarge`). */
    bodyTooLarge?: (bodyLimit: number) => TesseraError;
  }
}

/** Every method a client might send, for the 405 answers. */
const allMethods = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS'] as const;

/** Mounts `routes`, and a 405 answer for the other methods of each pattern. */
export function registerRoutes(app: FastifyInstance, routes: readonly RouteSpec[]): void {
  const byUrl = new Map<string, Method[]>();
  for (const spec of routes) {
    byUrl.set(spec.url, [...(byUrl.get(spec.url) ?? []), spec.method]);
    app.route({
      method: spec.method,
      url: spec.url,
      attachValidation: true,
      ...(spec.bodyLimit === undefined ? {} : { bodyLimit: spec.bodyLimit }),
      config: { need: spec.need, ...(spec.bodyTooLarge === undefined ? {} : { bodyTooLarge: spec.bodyTooLarge }) },
      schema: {
        summary: spec.summary,
        tags: [...spec.tags],
        ...(spec.params === undefined ? {} : { params: spec.params }),
        ...(spec.querystring === undefined ? {} : { querystring: spec.querystring }),
        ...(spec.body === undefined ? {} : { body: spec.body }),
        ...(spec.produces === undefined ? {} : { produces: [spec.produces] }),
        ...(spec.consumes === undefined ? {} : { consumes: [...spec.consumes] }),
        response: { 200: spec.response, ...problemResponses },
      },
      handler: spec.handler,
    });
  }
  for (const [url, methods] of byUrl) {
    const allowed = methods.includes('GET') ? [...methods, 'HEAD'] : methods;
    app.route({
      method: allMethods.filter((method) => !allowed.includes(method)),
      url,
      config: { need: () => ({ kind: 'any' }) },
      schema: { hide: true },
      handler: async (request, reply) => {
        reply.header('allow', allowed.join(', '));
        throw new TesseraError('ERR_METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${url}: use ${allowed.join(', ')}`);
      },
    });
  }
}
