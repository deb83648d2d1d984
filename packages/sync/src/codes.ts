/** What logs and status fields may say about an error. */
import { isTesseraError } from '@tessera/core';

/**
 * An error's stable code (or class), never its message: messages of store and frame errors can quote a
 * document's dataset and key, which must not reach logs.
 */
export function codeOf(error: unknown): string {
  return isTesseraError(error) ? error.code : error instanceof Error ? error.name : 'unknown error';
}
