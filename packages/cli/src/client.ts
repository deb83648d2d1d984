/** A small HTTP client for the daemon's API, with errors a person can act on. */
import { readFileSync } from 'node:fs';
import { TesseraError } from '@tessera/core';
import { caFetch } from '@tessera/server';

/** Timeout of one CLI request. */
export const requestTimeoutMsDefault = 10_000;

/** Checks and normalises a `--url` option. */
export function parseBaseUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TesseraError('ERR_OPTION_INVALID', `--url ${JSON.stringify(value)} is not a URL (expected e.g. http://127.0.0.1:7101)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TesseraError('ERR_OPTION_INVALID', `--url ${JSON.stringify(value)} must use http or https`);
  }
  return url;
}

/**
 * A node's API as the CLI reaches it: where, the bearer token it sends (null: none) and the CA file an HTTPS
 * node's certificate must chain to (the cluster CA; null: the system's roots).
 */
export interface NodeApi {
  readonly base: URL;
  readonly token: string | null;
  readonly caFile?: string | null;
}

const fetchByCa = new Map<string, typeof fetch>();

function fetchFor(caFile: string | null | undefined): typeof fetch {
  if (caFile === undefined || caFile === null || caFile === '') return fetch;
  let found = fetchByCa.get(caFile);
  if (found === undefined) {
    let pem: string;
    try {
      pem = readFileSync(caFile, 'utf8');
    } catch (error) {
      throw new TesseraError(
        'ERR_OPTION_INVALID',
        `CA file ${JSON.stringify(caFile)} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      );
    }
    found = caFetch(pem);
    fetchByCa.set(caFile, found);
  }
  return found;
}

/** An environment variable, or null when unset or empty. */
function envOrNull(name: string): string | null {
  const value = process.env[name];
  return value === undefined || value === '' ? null : value;
}

/** A request body sent as it is, with its content type (NDJSON batches), instead of as JSON. */
export class RawBody {
  constructor(
    readonly text: string,
    readonly contentType: string,
  ) {}
}

/**
 * Opens a request and returns the response unread (a change feed's stream), with the node's token and CA.
 * Throws `ERR_OPTION_INVALID` when the node cannot be reached.
 */
export async function openApi(node: NodeApi, path: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
  const url = new URL(path, node.base);
  const doFetch = fetchFor(node.caFile === undefined ? envOrNull('TESSERA_CA') : node.caFile);
  try {
    return await doFetch(url, {
      headers: { ...headers, ...(node.token === null ? {} : { authorization: `Bearer ${node.token}` }) },
      ...(signal === undefined ? {} : { signal }),
    });
  } catch (error) {
    if (signal?.aborted === true) throw error;
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name;
    throw new TesseraError('ERR_OPTION_INVALID', `GET ${url.origin}: cannot reach the node (${cause})`);
  }
}

/**
 * Calls the API; returns the parsed JSON body, or throws with the problem's code and detail. `node` is a
 * `NodeApi`, or a base URL called with `$TESSERA_TOKEN` and `$TESSERA_CA`.
 */
export async function callApi(node: URL | NodeApi, method: string, path: string, body?: unknown, timeoutMs = requestTimeoutMsDefault): Promise<unknown> {
  const { base, token, caFile } = node instanceof URL ? { base: node, token: envOrNull('TESSERA_TOKEN'), caFile: envOrNull('TESSERA_CA') } : node;
  const url = new URL(path, base);
  const doFetch = fetchFor(caFile === undefined ? envOrNull('TESSERA_CA') : caFile);
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = body instanceof RawBody ? body.contentType : 'application/json';
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let response: Response;
  try {
    response = await doFetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : body instanceof RawBody ? body.text : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name;
    throw new TesseraError('ERR_OPTION_INVALID', `${method} ${url.origin}: cannot reach the node (${cause})`);
  }
  const text = await response.text();
  let parsed: unknown = null;
  try {
    parsed = text.length === 0 ? null : JSON.parse(text);
  } catch {
    parsed = text;
  }
  if (!response.ok) {
    const problem = parsed as { code?: string; detail?: string; title?: string } | null;
    const error = new Error(`${response.status} ${problem?.code ?? ''}: ${problem?.detail ?? problem?.title ?? text}`.trim());
    (error as Error & { status: number; problem: unknown }).status = response.status;
    (error as Error & { status: number; problem: unknown }).problem = problem;
    throw error;
  }
  return parsed;
}
