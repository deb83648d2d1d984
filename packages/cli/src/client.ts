/** A small HTTP client for the daemon's API, with errors a person can act on. */
import { TesseraError } from '@tessera/core';

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

/** A node's API as the CLI reaches it: where, and the bearer token it sends (null: none). */
export interface NodeApi {
  readonly base: URL;
  readonly token: string | null;
}

/**
 * Calls the API; returns the parsed JSON body, or throws with the problem's code and detail. `node` is a base
 * URL (no credentials) or a `NodeApi`, whose token goes in an `Authorization: Bearer` header.
 */
export async function callApi(node: URL | NodeApi, method: string, path: string, body?: unknown, timeoutMs = requestTimeoutMsDefault): Promise<unknown> {
  const { base, token } = node instanceof URL ? { base: node, token: null } : node;
  const url = new URL(path, base);
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
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
