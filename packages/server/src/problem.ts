/**
 * HTTP responses: JSON bodies and `application/problem+json` errors (RFC 9457) carrying a stable `code` from
 * the error catalogue and the catalogue's HTTP status.
 */
import { type ErrorCode, TesseraError, errorCatalogue } from '@tessera/core';

/** A problem document as the daemon sends it. Extension members (for example `token`) may be added. */
export interface Problem {
  /** `urn:tessera:error:<code>`: one type per catalogue code. */
  readonly type: string;
  /** The catalogue's summary of the code. */
  readonly title: string;
  readonly status: number;
  readonly code: ErrorCode;
  /** What went wrong with this request: names the object, the value and the limit. */
  readonly detail: string;
  readonly [extension: string]: unknown;
}

/** The problem document for `error`; anything that is not a `TesseraError` is a bug, answered as `ERR_INTERNAL`. */
export function problemOf(error: unknown, extensions: Record<string, unknown> = {}): Problem {
  if (error instanceof TesseraError) {
    // A document this region may not hold: say which regions may (the 421 answer).
    const regions = (error as TesseraError & { regions?: unknown }).regions;
    if (Array.isArray(regions)) extensions = { regions, ...extensions };
    return {
      ...extensions,
      type: problemType(error.code),
      title: errorCatalogue[error.code].summary,
      status: error.status,
      code: error.code,
      detail: error.message,
    };
  }
  // The message of an unexpected error may carry anything; the client gets a generic detail.
  return {
    ...extensions,
    type: problemType('ERR_INTERNAL'),
    title: errorCatalogue.ERR_INTERNAL.summary,
    status: errorCatalogue.ERR_INTERNAL.status,
    code: 'ERR_INTERNAL',
    detail: 'an unexpected failure occurred while handling the request; it is logged with the request id',
  };
}

/** The `type` URI of a problem with `code`. */
export function problemType(code: ErrorCode): string {
  return `urn:tessera:error:${code}`;
}

/**
 * A JSON replacer that sends bytes (Yjs state, conflict records of Yjs or Automerge documents) as base64.
 * It looks at the holder's own value because `Buffer#toJSON` runs before a replacer sees the value.
 */
export function bytesAsBase64(this: unknown, key: string, value: unknown): unknown {
  const original = (this as Record<string, unknown>)[key];
  if (original instanceof Uint8Array) return Buffer.from(original.buffer, original.byteOffset, original.byteLength).toString('base64');
  return value;
}
