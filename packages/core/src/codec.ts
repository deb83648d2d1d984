/**
 * Canonical binary encoding (MessagePack with sorted map keys, sorted entry lists): equal states encode to
 * equal bytes, so replicas can compare states by bytes. Decoding untrusted bytes is bounded in size, length
 * and depth and fails with `ERR_DECODE`, never a crash or a hang.
 */
import { Decoder, Encoder } from '@msgpack/msgpack';
import { type DocState, docForm, docFromForm } from './crdt/document.js';
import { TesseraError } from './errors.js';
import { docBytesMax, jsonDepthMax } from './limits.js';
import { decodeFail, expectArray, expectInt } from './shape.js';

/** The version byte of encoded documents and deltas. */
export const docFormatVersion = 1;

// A map level takes three array levels in the canonical form (node, field list, field pair) on top of the
// JSON value's own nesting; the default depth of 100 is too small for the documented limits.
const encoder = new Encoder({ sortKeys: true, initialBufferSize: 4096, maxDepth: 4 * jsonDepthMax + 16 });

/** Limits for the MessagePack decoder: nothing it allocates can exceed the document bound. */
const decoder = new Decoder({
  maxStrLength: docBytesMax,
  maxBinLength: docBytesMax,
  maxArrayLength: 1_000_000,
  maxMapLength: 100_000,
  maxExtLength: 0,
});

/** Encodes any canonical plain form. */
export function encodeCanonical(form: unknown): Uint8Array {
  // The encoder reuses its buffer: copy out the bytes.
  return encoder.encode(form).slice();
}

/** Decodes untrusted MessagePack bytes within `bytesMax`; throws `ERR_DECODE`. */
export function decodeBounded(bytes: Uint8Array, what: string, bytesMax = docBytesMax): unknown {
  if (!(bytes instanceof Uint8Array)) decodeFail(`${what}: expected bytes`);
  if (bytes.length > bytesMax) {
    throw new TesseraError('ERR_DECODE', `${what}: ${bytes.length} bytes exceed the limit of ${bytesMax} bytes`);
  }
  try {
    return decoder.decode(bytes);
  } catch (error) {
    throw new TesseraError('ERR_DECODE', `${what}: ${(error as Error).message}`, { cause: error });
  }
}

/** Encodes a document state or delta. */
export function encodeDoc(doc: DocState): Uint8Array {
  return encodeCanonical([docFormatVersion, ...docForm(doc)]);
}

/** Decodes a document state or delta from untrusted bytes; throws `ERR_DECODE`. */
export function decodeDoc(bytes: Uint8Array, what = 'document'): DocState {
  const form = expectArray(decodeBounded(bytes, what), what, 7, 7);
  const version = expectInt(form[0], `${what} format version`);
  if (version !== docFormatVersion) decodeFail(`${what}: format version ${version} is not supported (expected ${docFormatVersion})`);
  try {
    return docFromForm(form.slice(1));
  } catch (error) {
    if (error instanceof TesseraError) throw new TesseraError(error.code, `${what}: ${error.message}`, { cause: error });
    throw error;
  }
}
