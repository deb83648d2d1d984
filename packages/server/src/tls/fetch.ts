/**
 * `fetch` that trusts a given CA (the cluster CA) instead of the system's: Node's global fetch takes no CA, so
 * this is undici's own `fetch` with an agent whose TLS connections verify against `caPem` only. undici is
 * loaded on the first request, so that a CLI start that makes none does not pay for it.
 */
import type * as Undici from 'undici';

/** A `fetch` whose HTTPS connections trust `caPem` only. */
export function caFetch(caPem: string): typeof fetch {
  let client: Promise<{ fetch: typeof Undici.fetch; dispatcher: Undici.Agent }> | null = null;
  return (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    client ??= import('undici').then((undici) => ({ fetch: undici.fetch, dispatcher: new undici.Agent({ connect: { ca: caPem } }) }));
    const { fetch: undiciFetch, dispatcher } = await client;
    return undiciFetch(input as never, { ...(init as object), dispatcher } as never);
  }) as unknown as typeof fetch;
}
