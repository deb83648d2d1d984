/**
 * Canonical binary encoding (MessagePack with sorted map keys, sorted entry lists): equal states encode to
 * equal bytes, so replicas can compare states by bytes. Decoding untrusted bytes is bounded in size, length
 * and depth and fails with `ERR_DECODE`, never a crash or a hang.
 */
import { Decoder, Encoder } from '@msgpack/msgpack';
import { type DocState } from './crdt/document.js';
import { docForm, docFormFields, docFromForm } from './crdt/form.js';
import { TesseraError } from './errors.js';
import { docBytesMax, jsonDepthMax } from './limits.js';
import { decodeFail, expectArray, expectInt } from './shape.js';

/**
 * The version of encoded documents and deltas. Version 2 added the origin and type stamps and hidden bodies;
 * version 1 (origin as an `origin:<region>` tag) is read only by the data-directory migration (legacy.ts).
 */
export const docFormatVersion = 2;

// A map level takes three array levels in the canonical form (node, field list, field pair) on top of the
// JSON value's own nesting; the default depth of 100 is too small for the documented limits.
/** Nesting bound of canonical forms: the encoder refuses deeper ones, and `decodeBounded` refuses deeper bytes. */
export const decodeDepthMax = 4 * jsonDepthMax + 16;
const encoder = new Encoder({ sortKeys: true, initialBufferSize: 4096, maxDepth: decodeDepthMax });

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

/** Bounds of `decodeBounded` besides the byte size. */
export interface DecodeLimits {
  /** Containers open at once (default `decodeDepthMax`). */
  readonly depthMax?: number;
  /** Values in all, scalars and containers (default: no bound beyond the byte size). */
  readonly itemsMax?: number;
}

/**
 * Decodes untrusted MessagePack bytes within `bytesMax`, `limits.depthMax` levels and `limits.itemsMax` values;
 * throws `ERR_DECODE`. The depth and count are checked on the bytes before decoding: the decoder allocates an
 * object per container, and 16 MiB of one-byte arrays (nested or side by side) cost gigabytes and a minute.
 */
export function decodeBounded(bytes: Uint8Array, what: string, bytesMax = docBytesMax, limits: DecodeLimits = {}): unknown {
  if (!(bytes instanceof Uint8Array)) decodeFail(`${what}: expected bytes`);
  if (bytes.length > bytesMax) {
    throw new TesseraError('ERR_DECODE', `${what}: ${bytes.length} bytes exceed the limit of ${bytesMax} bytes`);
  }
  checkShape(bytes, what, limits.depthMax ?? decodeDepthMax, limits.itemsMax ?? Infinity);
  try {
    return decoder.decode(bytes);
  } catch (error) {
    throw new TesseraError('ERR_DECODE', `${what}: ${(error as Error).message}`, { cause: error });
  }
}

/** Bytes after the first byte of a MessagePack value with a fixed-size payload, by its first byte. */
const fixedPayloadBytes: Readonly<Record<number, number>> = {
  202: 4,
  203: 8,
  204: 1,
  205: 2,
  206: 4,
  207: 8,
  208: 1,
  209: 2,
  210: 4,
  211: 8,
  212: 2,
  213: 3,
  214: 5,
  215: 9,
  216: 17,
};

/**
 * Walks the headers of one MessagePack value without decoding it, and throws `ERR_DECODE` when it nests more
 * than `depthMax` containers or holds more than `itemsMax` values, or is truncated. Payloads of strings, bytes
 * and extensions are skipped by their length, so the walk is linear in the number of values. Iterative: the
 * stack is an array of at most `depthMax` counts.
 */
function checkShape(bytes: Uint8Array, what: string, depthMax: number, itemsMax: number): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  /** Per open container, the values still to read in it. */
  const open: number[] = [];
  let at = 0;
  let items = 0;
  const length = (size: 1 | 2 | 4): number => {
    if (at + size > bytes.length) decodeFail(`${what}: truncated`);
    const value = size === 1 ? view.getUint8(at) : size === 2 ? view.getUint16(at) : view.getUint32(at);
    at += size;
    return value;
  };
  for (;;) {
    if (at >= bytes.length) decodeFail(`${what}: truncated`);
    if (++items > itemsMax) decodeFail(`${what}: more than ${itemsMax} values`);
    const first = bytes[at++]!;
    let children = 0;
    let skip = 0;
    if (first <= 0x7f || first >= 0xe0 || first === 0xc0 || first === 0xc2 || first === 0xc3) skip = 0;
    else if (first <= 0x8f) children = 2 * (first & 0x0f);
    else if (first <= 0x9f) children = first & 0x0f;
    else if (first <= 0xbf) skip = first & 0x1f;
    else if (first === 0xc4 || first === 0xd9) skip = length(1);
    else if (first === 0xc5 || first === 0xda) skip = length(2);
    else if (first === 0xc6 || first === 0xdb) skip = length(4);
    else if (first === 0xc7) skip = length(1) + 1;
    else if (first === 0xc8) skip = length(2) + 1;
    else if (first === 0xc9) skip = length(4) + 1;
    else if (first === 0xdc) children = length(2);
    else if (first === 0xdd) children = length(4);
    else if (first === 0xde) children = 2 * length(2);
    else if (first === 0xdf) children = 2 * length(4);
    else if (fixedPayloadBytes[first] !== undefined) skip = fixedPayloadBytes[first]!;
    else decodeFail(`${what}: byte 0x${first.toString(16)} at ${at - 1} starts no MessagePack value`);
    if (at + skip > bytes.length) decodeFail(`${what}: truncated`);
    at += skip;
    if (children > 0) {
      if (open.length >= depthMax) decodeFail(`${what}: nested more than ${depthMax} levels deep`);
      open.push(children);
      continue;
    }
    // A value is complete: so is every container whose last value it was.
    for (;;) {
      if (open.length === 0) return;
      const left = open[open.length - 1]! - 1;
      if (left > 0) {
        open[open.length - 1] = left;
        break;
      }
      open.pop();
    }
  }
}

/** Encodes a document state or delta. */
export function encodeDoc(doc: DocState): Uint8Array {
  return encodeCanonical([docFormatVersion, ...docForm(doc)]);
}

/** Decodes a document state or delta from untrusted bytes; throws `ERR_DECODE`. */
export function decodeDoc(bytes: Uint8Array, what = 'document'): DocState {
  const form = expectArray(decodeBounded(bytes, what), what, 1, docFormFields + 1);
  const version = expectInt(form[0], `${what} format version`);
  if (version !== docFormatVersion) decodeFail(`${what}: format version ${version} is not supported (expected ${docFormatVersion})`);
  try {
    return docFromForm(form.slice(1));
  } catch (error) {
    if (error instanceof TesseraError) throw new TesseraError(error.code, `${what}: ${error.message}`, { cause: error });
    throw error;
  }
}
