/**
 * What every request passes before its route runs (and before its body is read, so nothing an anonymous
 * client sends is buffered): the `Host` allow-list and the `Origin` check (DNS rebinding: a page of
 * evil.example whose name resolves to 127.0.0.1 must not reach the node with the visitor's browser), then the
 * credential (401 with `WWW-Authenticate`), then the route's requirement (403).
 *
 * Hosts allowed by default are IP literals and `localhost` — a rebinding page can make a browser send neither —
 * plus the names the config lists (`api.hosts`, and the daemon adds each node's listen and advertise names).
 * Origins: the request's own (`scheme://host`), plus `api.origins`.
 */
import { type FastifyRequest } from 'fastify';
import { isIP } from 'node:net';
import { TesseraError } from '@tessera/core';
import { type Principal, authorize } from '../auth/access.js';
import { type Need } from './define.js';

/** What the guard needs of a token store (`TokenStore` is one). */
export interface TokenLookup {
  /** The principal a presented token stands for, or null. */
  lookup(token: string): Principal | null;
}

/** Who may call: the tokens, and the hosts and origins requests may name. */
export interface AccessOptions {
  readonly tokens: TokenLookup;
  /** Host names (lowercase, no port) accepted besides IP literals and localhost. */
  readonly hosts?: readonly string[];
  /** Origins (`https://dash.example.com`) accepted besides the request's own. */
  readonly origins?: readonly string[];
}

/** The `WWW-Authenticate` challenge of a 401 (RFC 6750). */
export const bearerChallenge = 'Bearer realm="tessera"';

/** A 401 refusal; the error handler adds the challenge. */
export class Unauthenticated extends TesseraError {
  constructor(
    message: string,
    readonly invalidToken: boolean,
  ) {
    super('ERR_UNAUTHENTICATED', message);
  }
}

/** Checks the request's Host, Origin, credential and the route's need; records the principal on the request. */
export function guard(request: FastifyRequest, need: Need, route: string, access: AccessOptions): void {
  const host = hostOf(request.headers.host);
  if (host !== null && !hostAllowed(host, access.hosts ?? [])) {
    throw new TesseraError(
      'ERR_HOST_FORBIDDEN',
      `Host ${JSON.stringify(host).slice(0, 100)} is not a name of this node: it answers to IP addresses, localhost${(access.hosts ?? []).length === 0 ? '' : `, ${access.hosts!.join(', ')}`} (api.hosts)`,
    );
  }
  const origin = request.headers.origin;
  if (origin !== undefined) {
    const own = `${(request.raw.socket as { encrypted?: boolean }).encrypted === true ? 'https' : 'http'}://${String(request.headers.host ?? '').toLowerCase()}`;
    if (origin.toLowerCase() !== own && !(access.origins ?? []).includes(origin.toLowerCase())) {
      throw new TesseraError(
        'ERR_ORIGIN_FORBIDDEN',
        `Origin ${JSON.stringify(origin).slice(0, 100)} may not call this node (allowed: its own origin${(access.origins ?? []).length === 0 ? '' : `, ${access.origins!.join(', ')}`}; api.origins)`,
      );
    }
  }
  if (need === 'public') return;
  const header = request.headers.authorization;
  if (header === undefined) throw new Unauthenticated(`${route} needs a credential: send Authorization: Bearer <token> (tessera token create)`, false);
  const match = /^Bearer ([!-~]{1,512})$/.exec(header);
  if (match === null) throw new Unauthenticated('the Authorization header is not "Bearer <token>"', true);
  const principal = access.tokens.lookup(match[1]!);
  if (principal === null) throw new Unauthenticated('the token is unknown or revoked', true);
  request.tessera.principal = principal;
  authorize(principal, need, route);
}

/** The host name of a Host header, lowercase, without port or IPv6 brackets; null when absent. */
function hostOf(header: string | undefined): string | null {
  if (header === undefined || header === '') return null;
  const text = header.toLowerCase();
  if (text.startsWith('[')) return text.slice(1, text.indexOf(']') < 0 ? undefined : text.indexOf(']'));
  const colon = text.lastIndexOf(':');
  return colon < 0 ? text : text.slice(0, colon);
}

function hostAllowed(host: string, hosts: readonly string[]): boolean {
  return isIP(host) !== 0 || host === 'localhost' || hosts.includes(host);
}
