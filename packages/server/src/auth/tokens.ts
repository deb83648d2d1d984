/**
 * API tokens (issue 12 item 2): random 256-bit bearer tokens, shown once when created and stored only as a
 * SHA-256 digest in the tokens file the cluster config names (`api.tokensFile`), created 0600.
 *
 * A token is `tsr_` + 43 base64url characters (32 random bytes). Because the token itself is high-entropy, a
 * plain SHA-256 digest is enough (no salt or slow hash: there is nothing to brute-force); a lookup hashes the
 * presented token and compares it with every stored digest in constant time, without stopping at a match.
 *
 * The file is JSON: `{ "format": "tessera-tokens-v1", "tokens": [ { id, name, hash, roles, datasets, createdAtMs } ] }`.
 * A running daemon re-reads it when it changes (checked at most every `tokensReloadMs`), so a revoked token
 * stops working within that time, without a restart. A file that cannot be read or parsed refuses every token
 * (fail closed) until it is fixed.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { TesseraError, checkDatasetName } from '@tessera/core';
import { checkPrivateFile } from '../files.js';
import { type Grant, type Principal, type Role, roles } from './access.js';

/** Tokens one file holds. */
export const tokensMax = 1_000;
/** The tokens file, in bytes. */
export const tokensFileBytesMax = 1024 * 1024;
/** How often a daemon looks at the tokens file for changes, at most. */
export const tokensReloadMs = 1_000;
/** Random bytes in a token (256 bits). */
export const tokenRandomBytes = 32;
/** A token name: what it is for (`ci-deploy`), shown in listings and audit entries. */
export const tokenNameLengthMax = 64;

const tokenPattern = /^tsr_[A-Za-z0-9_-]{43}$/;
const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const format = 'tessera-tokens-v1';

/** One stored token: everything but the token. */
export interface TokenRecord {
  /** A short public id (the first 12 hex characters of the digest), for listing and revoking. */
  readonly id: string;
  readonly name: string;
  /** `sha256:<hex>` of the token's text. */
  readonly hash: string;
  readonly roles: readonly Role[];
  /** Datasets the reader and writer roles apply to; `["*"]` for every dataset. */
  readonly datasets: readonly string[];
  readonly createdAtMs: number;
}

/** A new token: the record stored, and the token itself (shown once). */
export interface CreatedToken {
  readonly record: TokenRecord;
  readonly token: string;
}

/** Creates a token record for `grant` (does not store it). `nowMs` stamps it. */
export function newToken(name: string, grant: Grant, nowMs: number): CreatedToken {
  checkGrant(name, grant);
  const token = `tsr_${randomBytes(tokenRandomBytes).toString('base64url')}`;
  const digest = digestOf(token);
  return {
    token,
    record: {
      id: digest.toString('hex').slice(0, 12),
      name,
      hash: `sha256:${digest.toString('hex')}`,
      roles: [...grant.roles],
      datasets: [...grant.datasets],
      createdAtMs: nowMs,
    },
  };
}

/** Parses and checks a tokens file's text. Throws `ERR_CONFIG_INVALID` naming the file. */
export function parseTokensFile(text: string, path: string): TokenRecord[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad(path, 'not JSON');
  }
  const file = value as { format?: unknown; tokens?: unknown };
  if (typeof value !== 'object' || value === null || file.format !== format || !Array.isArray(file.tokens))
    throw bad(path, `expected { "format": "${format}", "tokens": [...] }`);
  if (file.tokens.length > tokensMax) throw bad(path, `${file.tokens.length} tokens exceed the limit of ${tokensMax}`);
  const ids = new Set<string>();
  const names = new Set<string>();
  return file.tokens.map((item: unknown, i: number) => {
    const record = item as Partial<TokenRecord>;
    const where = `tokens[${i}]`;
    if (typeof record !== 'object' || record === null) throw bad(path, `${where} is not an object`);
    if (typeof record.id !== 'string' || !/^[0-9a-f]{12}$/.test(record.id)) throw bad(path, `${where}.id must be 12 hex characters`);
    if (typeof record.hash !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(record.hash)) throw bad(path, `${where}.hash must be sha256:<64 hex>`);
    if (typeof record.createdAtMs !== 'number' || !Number.isSafeInteger(record.createdAtMs)) throw bad(path, `${where}.createdAtMs must be an integer`);
    if (!Array.isArray(record.roles) || !Array.isArray(record.datasets)) throw bad(path, `${where} needs roles and datasets lists`);
    try {
      checkGrant(record.name, { roles: record.roles as Role[], datasets: record.datasets as string[] });
    } catch (error) {
      throw bad(path, `${where}: ${(error as Error).message}`);
    }
    if (ids.has(record.id) || names.has(record.name!)) throw bad(path, `${where}: id ${record.id} or name ${record.name} is used twice`);
    ids.add(record.id);
    names.add(record.name!);
    return record as TokenRecord;
  });
}

/** The text of a tokens file. */
export function formatTokensFile(records: readonly TokenRecord[]): string {
  return `${JSON.stringify({ format, tokens: records }, null, 2)}\n`;
}

/**
 * Reads a tokens file; a missing file reads as none when `missingOk`. Refuses a file others may read or write
 * (`checkPrivateFile`). Throws `ERR_CONFIG_INVALID`.
 */
export function readTokensFile(path: string, missingOk = false): TokenRecord[] {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    if (missingOk && (error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw bad(path, `cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  try {
    checkPrivateFile(fstatSync(fd), path, 'tokens file');
    const buffer = Buffer.alloc(tokensFileBytesMax + 1);
    let length = 0;
    for (;;) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
      if (length > tokensFileBytesMax) throw bad(path, `more than ${tokensFileBytesMax} bytes`);
    }
    return parseTokensFile(buffer.subarray(0, length).toString('utf8'), path);
  } finally {
    closeSync(fd);
  }
}

/** Writes a tokens file atomically (a 0600 temporary file renamed over it). */
export function writeTokensFile(path: string, records: readonly TokenRecord[]): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, formatTokensFile(records), { mode: 0o600, flag: 'wx' });
  renameSync(temporary, path);
}

/** Checks how a token may be used. Throws `ERR_OPTION_INVALID`. */
export function checkGrant(name: unknown, grant: Grant): void {
  if (typeof name !== 'string' || !namePattern.test(name))
    throw new TesseraError(
      'ERR_OPTION_INVALID',
      `token name ${JSON.stringify(name)?.slice(0, 80)} must be 1 to ${tokenNameLengthMax} characters [A-Za-z0-9._-]`,
    );
  if (grant.roles.length === 0) throw new TesseraError('ERR_OPTION_INVALID', `token ${name}: give at least one role (${roles.join(', ')})`);
  for (const role of grant.roles) {
    if (!(roles as readonly string[]).includes(role))
      throw new TesseraError('ERR_OPTION_INVALID', `token ${name}: role ${JSON.stringify(role).slice(0, 40)} is unknown (the roles are ${roles.join(', ')})`);
  }
  const dataRole = grant.roles.includes('reader') || grant.roles.includes('writer');
  if (dataRole && grant.datasets.length === 0)
    throw new TesseraError('ERR_OPTION_INVALID', `token ${name}: the reader and writer roles need datasets (a list, or * for every dataset)`);
  if (!dataRole && grant.datasets.length > 0)
    throw new TesseraError('ERR_OPTION_INVALID', `token ${name}: datasets are granted with the reader or writer role only`);
  if (grant.datasets.includes('*') && grant.datasets.length > 1) throw new TesseraError('ERR_OPTION_INVALID', `token ${name}: * already means every dataset`);
  for (const dataset of grant.datasets) if (dataset !== '*') checkDatasetName(dataset);
}

/** SHA-256 of a token's text. */
function digestOf(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

function bad(path: string, reason: string): TesseraError {
  return new TesseraError('ERR_CONFIG_INVALID', `${path}: tokens file: ${reason}`);
}

/** The tokens a daemon accepts: the tokens file, reloaded when it changes; or a fixed list (tests, embedded). */
export class TokenStore {
  private records: Array<{ record: TokenRecord; digest: Buffer }> = [];
  private checkedMs = -Infinity;
  private fileStamp = '';
  private broken = false;

  private constructor(
    private readonly path: string | null,
    private readonly clock: () => number,
  ) {}

  /** Tokens from the file at `path` (read now: a bad file fails the start). */
  static fromFile(path: string, clock: () => number = Date.now): TokenStore {
    const store = new TokenStore(path, clock);
    store.load(readTokensFile(path));
    store.fileStamp = stampOf(path);
    store.checkedMs = clock();
    return store;
  }

  /** A fixed list of tokens (tests and embedded servers). */
  static of(records: readonly TokenRecord[]): TokenStore {
    const store = new TokenStore(null, Date.now);
    store.load(records);
    return store;
  }

  /** Replaces the tokens of a fixed-list store (tests and embedded servers; a file store follows its file). */
  setRecords(records: readonly TokenRecord[]): void {
    if (this.path !== null) throw new TesseraError('ERR_OPTION_INVALID', `the tokens of ${this.path} change through the file (tessera token)`);
    this.load(records);
  }

  /** How many tokens are known. */
  get size(): number {
    return this.records.length;
  }

  /** The principal a presented token stands for, or null (unknown, revoked, malformed). */
  lookup(token: string): Principal | null {
    this.reloadIfChanged();
    if (this.broken || !tokenPattern.test(token)) return null;
    const digest = digestOf(token);
    let found: TokenRecord | null = null;
    // Every record is compared, whether or not an earlier one matched: the time does not say which matched.
    for (const { record, digest: stored } of this.records) if (timingSafeEqual(stored, digest)) found = record;
    if (found === null) return null;
    return { id: found.id, name: found.name, roles: new Set(found.roles), datasets: found.datasets.includes('*') ? '*' : new Set(found.datasets) };
  }

  private load(records: readonly TokenRecord[]): void {
    this.records = records.map((record) => ({ record, digest: Buffer.from(record.hash.slice('sha256:'.length), 'hex') }));
    this.broken = false;
  }

  private reloadIfChanged(): void {
    if (this.path === null) return;
    const nowMs = this.clock();
    if (nowMs - this.checkedMs < tokensReloadMs) return;
    this.checkedMs = nowMs;
    try {
      const stamp = stampOf(this.path);
      if (stamp === this.fileStamp && !this.broken) return;
      this.load(readTokensFile(this.path));
      this.fileStamp = stamp;
    } catch {
      // Fail closed: a tokens file that became unreadable or invalid accepts no token until it is fixed.
      this.broken = true;
      this.fileStamp = '';
    }
  }
}

function stampOf(path: string): string {
  const stat = statSync(path, { bigint: true });
  return `${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.mode}`;
}
