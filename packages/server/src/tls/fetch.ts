/**
 * `fetch` that trusts a given CA (the cluster CA) instead of the system's: Node's global fetch takes no CA, so
 * this is undici's own `fetch` with an agent whose TLS connections verify against `caPem` only.
 */
import { Agent, fetch as undiciFetch } from 'undici';

/** A `fetch` whose HTTPS connections trust `caPem` only. */
export function caFetch(caPem: string): typeof fetch {
  const dispatcher = new Agent({ connect: { ca: caPem } });
  return ((input: Parameters<typeof fetch>[0], init?: RequestInit) =>
    undiciFetch(input as never, { ...(init as object), dispatcher } as never)) as unknown as typeof fetch;
}
