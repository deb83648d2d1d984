/** Credentials for tests: a token store with an admin token, more tokens on demand, and the header for each. */
import { type Grant, type TokenRecord, TokenStore, newToken } from '../../src/index.js';

/** Tokens of a test API: `admin` holds every role on every dataset. */
export interface TestCredentials {
  readonly tokens: TokenStore;
  readonly admin: string;
  /** Adds a token with `grant` to the same store; returns it. */
  token(name: string, grant: Grant): string;
}

/** A fresh store with an admin token. */
export function testCredentials(): TestCredentials {
  const records: TokenRecord[] = [];
  const tokens = TokenStore.of([]);
  const token = (name: string, grant: Grant) => {
    const created = newToken(name, grant, 0);
    records.push(created.record);
    tokens.setRecords(records);
    return created.token;
  };
  const admin = token('admin', { roles: ['reader', 'writer', 'operator', 'policy-admin'], datasets: ['*'] });
  return { tokens, admin, token };
}

/** The `Authorization` header of a token. */
export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}
