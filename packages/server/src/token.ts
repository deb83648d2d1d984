/**
 * Session tokens (DESIGN §5): a write returns a token naming the document and the write's dot; a read in
 * another region that presents it waits until that region holds the dot. A token is the base64url of the JSON
 * `[dataset, key, node, counter]`. It is not secret and not signed: forging one can only make a read wait.
 */
import { type Dot, TesseraError, checkDatasetName, checkKey, checkNodeId } from '@tessera/core';

/**
 * Characters in a token. The longest valid token (64-character dataset, 512-byte key whose characters JSON
 * escapes to at most 3 bytes per byte, 64-character node id, 16-digit counter) stays well under this.
 */
export const sessionTokenLengthMax = 4_096;

/** What a session token names: the write `dot` on document (dataset, key). */
export interface SessionToken {
  readonly dataset: string;
  readonly key: string;
  readonly dot: Dot;
}

const base64urlPattern = /^[A-Za-z0-9_-]+$/;

/** The token for the write `dot` on (dataset, key). */
export function encodeSessionToken(dataset: string, key: string, dot: Dot): string {
  return Buffer.from(JSON.stringify([dataset, key, dot[0], dot[1]]), 'utf8').toString('base64url');
}

/** Parses a token strictly: bounded length, canonical encoding, valid names. Throws `ERR_TOKEN_INVALID`. */
export function decodeSessionToken(text: unknown): SessionToken {
  if (typeof text !== 'string' || text.length === 0 || text.length > sessionTokenLengthMax) {
    throw invalid(`a token is 1 to ${sessionTokenLengthMax} characters of base64url`);
  }
  if (!base64urlPattern.test(text)) throw invalid('a token is base64url text ([A-Za-z0-9_-], no padding)');
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(text, 'base64url')));
  } catch {
    throw invalid('the token does not decode to JSON');
  }
  if (!Array.isArray(parsed) || parsed.length !== 4) throw invalid('the token does not hold [dataset, key, node, counter]');
  const [dataset, key, node, counter] = parsed as unknown[];
  try {
    checkDatasetName(dataset);
    checkKey(key);
    checkNodeId(node);
  } catch (error) {
    throw invalid(`the token names an invalid document or node: ${(error as Error).message}`);
  }
  if (!Number.isSafeInteger(counter) || (counter as number) < 1) throw invalid("the token's counter is not a positive integer");
  // One write, one token: a token that decodes but was not produced by `encodeSessionToken` is refused.
  if (encodeSessionToken(dataset, key, [node, counter as number]) !== text) throw invalid('the token is not in canonical form');
  return { dataset, key, dot: [node, counter as number] };
}

function invalid(reason: string): TesseraError {
  return new TesseraError('ERR_TOKEN_INVALID', `session token is invalid: ${reason}`);
}
