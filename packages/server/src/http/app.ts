/**
 * The Fastify application of the HTTP API: options and limits, the JSON body parser, the hooks every request
 * passes (request id and trace, one log event, the guard), problem+json for every failure, and the routes of
 * the route files. `http.ts` wraps it for servers; tests use `app.inject()`.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import { performance } from 'node:perf_hooks';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import { type Logger } from 'pino';
import { type ErrorCode, TesseraError } from '@tessera/core';
import { requestBodyBytesMax } from '../body.js';
import { type Problem, problemOf } from '../problem.js';
import { NdjsonBody, type RequestState, type RouteContext, sendProblem } from './context.js';
import { type Need, type RouteSpec, registerRoutes } from './define.js';
import { type AccessOptions, Unauthenticated, bearerChallenge, guard } from './guard.js';
import { problemSchema } from './schemas.js';

/** A client's `x-request-id` is echoed when it is this short and plain; otherwise the daemon makes one. */
export const requestIdLengthMax = 128;
/** Longest path parameter (a 512-byte key percent-encoded is at most 1 536 characters). */
export const pathParamLengthMax = 4_096;

const requestIdPattern = new RegExp(`^[A-Za-z0-9._:-]{1,${requestIdLengthMax}}$`);
const jsonContentType = /^application\/json\s*(?:;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;
const traceparentPattern = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

/** The log event of one request: names the route pattern, never a concrete path, key, value or token. */
export interface HttpRequestEvent {
  readonly event: 'http_request';
  readonly requestId: string;
  /** The W3C trace id (from the request's `traceparent`, or new): a write's id is carried to every region. */
  readonly traceId: string;
  readonly method: string;
  /** The route pattern (`/v1/kv/:dataset/:key`), or null when no route matched. */
  readonly route: string | null;
  readonly status: number;
  readonly durationMs: number;
  /** The problem's code when the request failed. */
  readonly code?: ErrorCode;
  /** The token's public id and name, when the request carried a valid one. */
  readonly principal?: string;
  /** True when the client went away before the response was complete (status is then 499 if nothing was sent). */
  readonly aborted?: true;
  /** For `ERR_INTERNAL` only: the error's class and stack frames (not its message, which may hold data). */
  readonly error?: { readonly name: string; readonly stack: readonly string[] };
}

/** What `buildApp` needs besides the route context. */
export interface AppOptions {
  readonly context: RouteContext;
  readonly access: AccessOptions;
  readonly logger: Logger;
  readonly routes: readonly RouteSpec[];
  /** Aborted when the API starts draining. */
  readonly drainSignal: () => AbortSignal;
  /** Called when a request starts and when it is over (answered or abandoned). */
  readonly onRequestStart: () => void;
  readonly onRequestEnd: (route: string | null, method: string, status: number, durationMs: number) => void;
}

/** The app, and the request listener that serves it (valid once `ready` resolved). */
export interface BuiltApp {
  readonly app: FastifyInstance;
  handler(): (req: IncomingMessage, res: import('node:http').ServerResponse) => void;
}

/** Builds the Fastify app of the API. */
export function buildApp(options: AppOptions): BuiltApp {
  let listener: ((req: IncomingMessage, res: import('node:http').ServerResponse) => void) | null = null;
  const app: FastifyInstance = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    // Fastify's own request lines name concrete URLs (keys); the API logs one event per request itself.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    genReqId: (req) => {
      const header = req.headers['x-request-id'];
      return typeof header === 'string' && requestIdPattern.test(header) ? header : randomUUID();
    },
    bodyLimit: requestBodyBytesMax,
    routerOptions: { maxParamLength: pathParamLengthMax },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
    // The daemon brings its own servers (TLS, connection caps, the peer upgrade); this one only hands out the listener.
    serverFactory: (handler) => {
      listener = handler as never;
      return createServer(handler) as Server;
    },
    frameworkErrors: (error, request, reply) => {
      // A path that is not valid percent-encoding: no route ran, so the state is made here.
      startRequest(request, reply, options);
      const segment = badSegment(request.raw.url ?? '');
      const code: ErrorCode = segment === 'key' ? 'ERR_KEY_INVALID' : segment === 'dataset' ? 'ERR_DATASET_NAME_INVALID' : 'ERR_NOT_FOUND';
      const what = segment === 'key' ? 'document key' : segment === 'dataset' ? 'dataset name' : 'path';
      void sendProblem(request, reply, problemOf(new TesseraError(code, `${what} in the path is not valid percent-encoded UTF-8 (${error.code})`)));
    },
  });
  app.addSchema(problemSchema);
  void app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Tessera node API',
        version: '1',
        description: "The HTTP API of one Tessera region node (DESIGN §6). Every route but the dashboard's static files needs a bearer token.",
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API token (tessera token create)' } } },
      security: [{ bearer: [] }],
    },
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    try {
      done(null, parseJson(request.headers['content-type'] ?? '', body as Buffer));
    } catch (error) {
      done(error as Error, undefined);
    }
  });

  // NDJSON (one JSON document a line) for batch writes; other routes refuse it (`requireBody`).
  app.addContentTypeParser(ndjsonContentType, { parseAs: 'buffer' }, (_request, body, done) => {
    try {
      done(null, parseNdjson(body as Buffer));
    } catch (error) {
      done(error as Error, undefined);
    }
  });

  app.addHook('onRequest', async (request, reply) => {
    startRequest(request, reply, options);
    const need: Need = request.routeOptions.config.need?.(request) ?? { kind: 'any' };
    guard(request, need, request.routeOptions.url ?? 'this path', options.access);
  });

  app.setNotFoundHandler(async (request) => {
    throw new TesseraError(
      'ERR_NOT_FOUND',
      `no route for ${request.method} ${(request.raw.url ?? '').split('?')[0]!.slice(0, 200)}: the routes are ${[...new Set(options.routes.map((r) => r.url))].join(', ')}`,
    );
  });

  app.setErrorHandler(async (error: Error & { code?: string; statusCode?: number }, request, reply) => {
    if (request.tessera === undefined) startRequest(request, reply, options);
    // A client that went away while sending its body is not a failure of the node.
    if (request.raw.destroyed && !request.raw.complete) return reply;
    const bodyLimit = request.routeOptions.bodyLimit ?? requestBodyBytesMax;
    const tooLarge = error.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? request.routeOptions.config?.bodyTooLarge : undefined;
    const tessera = tooLarge === undefined ? asTesseraError(error, bodyLimit) : tooLarge(bodyLimit);
    if (tessera === null) request.tessera.error = errorForLog(error);
    if (error instanceof Unauthenticated) reply.header('www-authenticate', error.invalidToken ? `${bearerChallenge}, error="invalid_token"` : bearerChallenge);
    // An unread body that Node cannot cheaply drain (large or chunked, of any size) must not hold the
    // connection: the answer closes it, so a client still sending gets its 413 and a drain never waits on it.
    if (mustClose(request.raw)) {
      reply.header('connection', 'close');
      lingerOnClose(request.raw.socket);
    }
    const problem: Problem = problemOf(tessera ?? error);
    return sendProblem(request, reply, problem);
  });

  // In a plugin of their own, registered after swagger: its route hook then sees every route.
  void app.register(async (scope) => registerRoutes(scope, options.routes));
  return {
    app,
    handler: () => {
      if (listener === null) throw new Error('the API is not ready: await ready() first');
      return listener;
    },
  };
}

/** Starts the bookkeeping of one request: ids, trace, abort signal, and the log event when it is over. */
function startRequest(request: FastifyRequest, reply: FastifyReply, options: AppOptions): void {
  if (request.tessera !== undefined) return;
  const startedMs = performance.now();
  const trace = traceOf(request.headers.traceparent);
  const aborter = new AbortController();
  const drain = options.drainSignal();
  const onDrain = () => aborter.abort();
  if (drain.aborted) aborter.abort();
  else drain.addEventListener('abort', onDrain, { once: true });
  const state: RequestState = { traceId: trace.traceId, signal: aborter.signal, principal: null };
  request.tessera = state;
  reply.header('x-request-id', request.id);
  reply.header('traceparent', `00-${trace.traceId}-${trace.spanId}-01`);
  options.onRequestStart();
  reply.raw.once('close', () => {
    drain.removeEventListener('abort', onDrain);
    aborter.abort();
    const raw = reply.raw;
    const route = request.routeOptions?.url ?? null;
    const matched = route !== null && request.is404 !== true ? route : null;
    const event: HttpRequestEvent = {
      event: 'http_request',
      requestId: String(request.id),
      traceId: trace.traceId,
      method: request.method,
      route: matched,
      // 499 (as nginx logs it): the client closed the connection before an answer was sent.
      status: raw.headersSent ? raw.statusCode : 499,
      durationMs: Math.round((performance.now() - startedMs) * 10) / 10,
      ...(state.code === undefined ? {} : { code: state.code }),
      ...(state.principal === null ? {} : { principal: `${state.principal.name} (${state.principal.id})` }),
      ...(raw.writableFinished ? {} : { aborted: true as const }),
      ...(state.error === undefined ? {} : { error: state.error }),
    };
    if (event.status >= 500) options.logger.error(event);
    else options.logger.info(event);
    options.onRequestEnd(matched, event.method, event.status, performance.now() - startedMs);
  });
}

/** An unread body Node drains before the next request on the connection; anything larger closes it. */
export const unreadBodyDrainBytesMax = 64 * 1024;

/** True when the request's body is unread and too large (or of unknown size) to drain. */
function mustClose(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const declared = req.headers['content-length'];
  if (declared === undefined) return req.headers['transfer-encoding'] !== undefined;
  return !(Number(declared) <= unreadBodyDrainBytesMax);
}

/** A closing connection reads and discards what the client still sends for at most this long… */
export const lingerMsMax = 2_000;
/** …or this many bytes, so the client reads its answer rather than a reset (a lingering close, as Apache's). */
export const lingerBytesMax = 4 * 1024 * 1024;

/**
 * Makes the close that Node starts after the answer a lingering one: the node's side ends (the client sees the
 * whole answer and the end), then what the client is still sending is read and dropped, bounded in time and
 * bytes. Closing at once with unread bytes would reset the connection and the client could lose its 413.
 */
function lingerOnClose(socket: IncomingMessage['socket']): void {
  const closing = socket as IncomingMessage['socket'] & { destroySoon?: () => void };
  if (typeof closing.destroySoon !== 'function') return;
  closing.destroySoon = () => {
    socket.end();
    const timer = setTimeout(() => socket.destroy(), lingerMsMax);
    let bytes = 0;
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > lingerBytesMax) socket.destroy();
    });
    socket.once('close', () => clearTimeout(timer));
    socket.resume();
  };
}

/** Parses a JSON body: UTF-8 only, by content type and by bytes. Throws `ERR_CONTENT_TYPE` or `ERR_BODY_INVALID`. */
function parseJson(contentType: string, body: Buffer): unknown {
  if (!jsonContentType.test(contentType.trim())) {
    throw new TesseraError('ERR_CONTENT_TYPE', `content type ${JSON.stringify(contentType.slice(0, 100))} is not accepted: send application/json (UTF-8)`);
  }
  if (body.length === 0) throw new TesseraError('ERR_BODY_INVALID', 'the request body is empty: send a JSON document');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw new TesseraError('ERR_BODY_INVALID', 'the request body is not valid UTF-8');
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new TesseraError('ERR_BODY_INVALID', `the request body is not valid JSON: ${(error as Error).message.slice(0, 200)}`);
  }
}

/** The content type of newline-delimited JSON (`application/x-ndjson`, UTF-8). */
export const ndjsonContentType = /^application\/x-ndjson\s*(?:;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;

/** Parses an NDJSON body: one JSON document per non-blank line. Throws `ERR_BODY_INVALID` naming the line. */
function parseNdjson(body: Buffer): NdjsonBody {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw new TesseraError('ERR_BODY_INVALID', 'the request body is not valid UTF-8');
  }
  const lines: unknown[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      lines.push(JSON.parse(line) as unknown);
    } catch (error) {
      throw new TesseraError('ERR_BODY_INVALID', `NDJSON line ${i + 1} is not valid JSON: ${(error as Error).message.slice(0, 200)}`);
    }
  });
  return new NdjsonBody(lines);
}

/** Fastify's own refusals as catalogue errors; null for anything else (a bug). */
function asTesseraError(error: Error & { code?: string; statusCode?: number }, bodyLimit: number): TesseraError | null {
  if (error instanceof TesseraError) return error;
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new TesseraError('ERR_BODY_TOO_LARGE', `request body exceeds the limit of ${bodyLimit} bytes`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new TesseraError('ERR_CONTENT_TYPE', 'the content type is not accepted: send application/json (UTF-8)');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new TesseraError('ERR_BODY_INVALID', `the request body does not match its headers (${error.code})`);
    case 'FST_ERR_VALIDATION':
      return new TesseraError('ERR_OPTION_INVALID', error.message.slice(0, 300));
    default:
      return null;
  }
}

/** Which document-route segment of a raw path fails to decode. */
function badSegment(url: string): 'dataset' | 'key' | null {
  const segments = url.split('?')[0]!.split('/');
  const bad = (segment: string | undefined) => {
    if (segment === undefined) return false;
    try {
      decodeURIComponent(segment);
      return false;
    } catch {
      return true;
    }
  };
  const base = segments[2] === 'inspect' ? 4 : 3;
  if ((segments[2] === 'kv' || segments[2] === 'inspect') && bad(segments[base])) return 'dataset';
  if ((segments[2] === 'kv' || segments[2] === 'inspect') && bad(segments[base + 1])) return 'key';
  return null;
}

function errorForLog(error: unknown): { name: string; stack: string[] } {
  if (!(error instanceof Error)) return { name: typeof error, stack: [] };
  // The first line of a stack repeats the message; only the frames are logged.
  const frames = (error.stack ?? '')
    .split('\n')
    .slice(1)
    .map((line) => line.trim())
    .filter((line) => line.startsWith('at '));
  return { name: error.name, stack: frames.slice(0, 20) };
}

/**
 * The trace of a request: the trace id of its W3C `traceparent` header when it has a valid one (all-zero ids
 * are invalid), else a new one; and a new span id for this node's handling of it.
 */
function traceOf(header: string | string[] | undefined): { traceId: string; spanId: string } {
  const spanId = randomBytes(8).toString('hex');
  const match = typeof header === 'string' ? traceparentPattern.exec(header) : null;
  if (match !== null && !/^0+$/.test(match[1]!) && !/^0+$/.test(match[2]!)) return { traceId: match[1]!, spanId };
  return { traceId: randomBytes(16).toString('hex'), spanId };
}
