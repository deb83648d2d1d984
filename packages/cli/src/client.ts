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
 * How a request authenticates: the bearer token (`Authorization: Bearer <token>`), and the CA file that an
 * HTTPS node's certificate must chain to (the cluster CA). By default from `TESSERA_TOKEN` and `TESSERA_CA`.
 */
export interface ApiAuth {
  readonly token?: string | undefined;
  readonly caFile?: string | undefined;
}

const fetchByCa = new Map<string, typeof fetch>();

function fetchFor(caFile: string | undefined): typeof fetch {
  if (caFile === undefined || caFile === '') return fetch;
  let found = fetchByCa.get(caFile);
  if (found === undefined) {
    let pem: string;
    try {
      pem = readFileSync(caFile, 'utf8');
    } catch (error) {
      throw new TesseraError('ERR_OPTION_INVALID', `CA file ${JSON.stringify(caFile)} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    found = caFetch(pem);
    fetchByCa.set(caFile, found);
  }
  return found;
}

/** Calls the API; returns the parsed JSON body, or throws with the problem's code and detail. */
export async function callApi(
  base: URL, method: string, path: string, body?: unknown, timeoutMs = requestTimeoutMsDefault,
  auth: ApiAuth = { token: process.env.TESSERA_TOKEN, caFile: process.env.TESSERA_CA },
): Promise<unknown> {
  const url = new URL(path, base);
  const doFetch = fetchFor(auth.caFile);
  let response: Response;
  try {
    response = await doFetch(url, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(auth.token === undefined || auth.token === '' ? {} : { authorization: `Bearer ${auth.token}` }),
      },
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
