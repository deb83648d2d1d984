/**
 * JSON schemas shared by the routes. Each route declares its params, query, body and responses; the OpenAPI
 * description (`GET /openapi.json`) is generated from them, and requests that break them are refused.
 * Response schemas describe; answers are written by the routes' own serializer (bytes as base64), so a schema
 * never silently drops a field.
 */
import { policySignatureFormat } from '@tessera/core';

/** A problem document (RFC 9457) with the catalogue code. */
export const problemSchema = {
  $id: 'Problem',
  type: 'object',
  required: ['type', 'title', 'status', 'code', 'detail'],
  properties: {
    type: { type: 'string', description: 'urn:tessera:error:<code>' },
    title: { type: 'string' },
    status: { type: 'integer' },
    code: { type: 'string', pattern: '^ERR_[A-Z_]+$' },
    detail: { type: 'string' },
  },
  additionalProperties: true,
} as const;

/** Every error answer of every route. */
export const problemResponses = {
  '4xx': { description: 'A refusal: application/problem+json with a stable code (docs/errors.md).', $ref: 'Problem#' },
  '5xx': { description: 'A failure of the node: application/problem+json.', $ref: 'Problem#' },
} as const;

const name = { type: 'string', minLength: 1, maxLength: 64 } as const;

/** `:dataset`. */
export const datasetParams = { type: 'object', required: ['dataset'], properties: { dataset: name }, additionalProperties: false } as const;
/** `:dataset/:key`. */
export const documentParamsSchema = {
  type: 'object',
  required: ['dataset', 'key'],
  properties: { dataset: name, key: { type: 'string', minLength: 1, maxLength: 2048 } },
  additionalProperties: false,
} as const;

/** A non-negative integer in a query string. */
export const integerString = { type: 'string', pattern: '^[0-9]{1,15}$' } as const;
/** A query that takes no parameters. */
export const noQuery = { type: 'object', properties: {}, additionalProperties: false } as const;

/** A query of the given string parameters. */
export function queryOf(properties: Record<string, object>): object {
  return { type: 'object', properties, additionalProperties: false };
}

/** An object answer with the listed fields (others may follow). */
export function objectOf(description: string, properties: Record<string, object> = {}): object {
  return { description, type: 'object', properties, additionalProperties: true };
}

/** A hybrid logical clock timestamp. */
export const hlcSchema = { type: 'object', properties: { ms: { type: 'integer' }, c: { type: 'integer' } } } as const;

/** What a write answers. */
export const writeAnswerSchema = objectOf('The write: its log sequence number, timestamp and session token (null when it changed nothing).', {
  seq: { type: ['integer', 'null'] },
  hlc: { anyOf: [hlcSchema, { type: 'null' }] },
  token: { type: ['string', 'null'] },
});

/** A policy signature document (`tessera policy sign`). */
export const policySignatureSchema = {
  type: 'object',
  required: ['format', 'cluster', 'version', 'hash', 'replaces', 'keyId', 'signature'],
  properties: {
    format: { const: policySignatureFormat },
    cluster: { type: 'string' },
    version: { type: 'integer', minimum: 1 },
    hash: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    replaces: {
      anyOf: [{ type: 'null' }, { type: 'object', required: ['version', 'hash'], properties: { version: { type: 'integer' }, hash: { type: 'string' } } }],
    },
    keyId: { type: 'string', pattern: '^[0-9a-f]{16}$' },
    signature: { type: 'string' },
  },
  additionalProperties: false,
} as const;
