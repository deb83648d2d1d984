/** Request bodies: JSON only (UTF-8), bounded per route; parsed by the API's content-type parser (http/app.ts). */
import { MiB } from '@tessera/core';

/** A request body (a put of a 1 MiB value, base64 Yjs updates or a batch of operations fit). */
export const requestBodyBytesMax = 2 * MiB;
