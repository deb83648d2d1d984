/** Request bodies: JSON only, bounded, checked for content type and encoding before they are parsed. */
import { type IncomingMessage } from 'node:http';
import { MiB, TesseraError } from '@tessera/core';

/** A request body (a put of a 1 MiB value, base64 Yjs updates or a batch of operations fit). */
export const requestBodyBytesMax = 2 * MiB;
/**
 * An oversized body is read and discarded up to this many bytes so the client, still sending, receives the
 * 413; past it the daemon answers at once and closes the connection.
 */
export const requestBodyDiscardBytesMax = 16 * MiB;

/** Requests whose body the daemon stopped reading because it is too large to drain. */
const abandoned = new WeakSet<IncomingMessage>();

/**
 * True when the connection must close after the response: the request's body was not read to its end and is
 * too large (or of unknown size) to be drained before the next request on the connection. Node drains the
 * other unread bodies itself.
 */
export function mustCloseConnection(req: IncomingMessage): boolean {
  if (req.complete) return false;
  if (abandoned.has(req)) return true;
  const declared = req.headers['content-length'];
  if (declared === undefined) return req.headers['transfer-encoding'] !== undefined;
  return !(Number(declared) <= requestBodyDiscardBytesMax);
}

const jsonContentType = /^application\/json\s*(?:;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;

/**
 * Reads and parses a JSON body of at most `bytesMax` bytes. Throws `ERR_CONTENT_TYPE` (not
 * `application/json` in UTF-8), `ERR_BODY_TOO_LARGE`, or `ERR_BODY_INVALID` (empty, not UTF-8, not JSON).
 * After it throws, `mustCloseConnection(req)` says whether the connection can carry another request.
 */
export async function readJsonBody(req: IncomingMessage, bytesMax = requestBodyBytesMax): Promise<unknown> {
  const contentType = req.headers['content-type'];
  if (contentType === undefined || !jsonContentType.test(contentType.trim())) {
    throw new TesseraError('ERR_CONTENT_TYPE',
      `content type ${contentType === undefined ? '(none)' : JSON.stringify(contentType.slice(0, 100))} is not accepted: send application/json (UTF-8)`);
  }
  const declared = req.headers['content-length'];
  const tooLarge = (bytes: number | string) =>
    new TesseraError('ERR_BODY_TOO_LARGE', `request body of ${bytes} bytes exceeds the limit of ${bytesMax} bytes`);
  const abandon = (bytes: number | string) => {
    abandoned.add(req);
    return tooLarge(bytes);
  };
  if (declared !== undefined && Number(declared) > bytesMax && Number(declared) > requestBodyDiscardBytesMax) throw abandon(declared);
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > requestBodyDiscardBytesMax) throw abandon(`more than ${requestBodyDiscardBytesMax}`);
    if (bytes <= bytesMax) chunks.push(chunk);
  }
  if (bytes > bytesMax) throw tooLarge(bytes);
  if (bytes === 0) throw new TesseraError('ERR_BODY_INVALID', 'the request body is empty: send a JSON document');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks, bytes));
  } catch {
    throw new TesseraError('ERR_BODY_INVALID', 'the request body is not valid UTF-8');
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new TesseraError('ERR_BODY_INVALID', `the request body is not valid JSON: ${(error as Error).message.slice(0, 200)}`);
  }
}
