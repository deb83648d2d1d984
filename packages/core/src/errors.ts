/**
 * The catalogue of expected failures. Every refusal Tessera makes carries one of these stable codes; the
 * message names the object, the value and the limit. `docs/errors.md` documents each code, and a test keeps
 * the two in agreement.
 */
export const errorCatalogue = {
  ERR_DATASET_NAME_INVALID: { status: 400, summary: 'A dataset name is empty, too long, or uses characters outside [a-z0-9_-].' },
  ERR_KEY_INVALID: { status: 400, summary: 'A document key is empty, too long, not valid UTF-8 text, or contains control characters.' },
  ERR_NODE_ID_INVALID: { status: 400, summary: 'A node id is empty, too long, or uses characters outside [a-z0-9._-].' },
  ERR_REGION_INVALID: { status: 400, summary: 'A region name is empty, too long, or uses characters outside [a-z0-9_-].' },
  ERR_TAG_INVALID: { status: 400, summary: 'A tag is empty, too long, uses characters outside [a-z0-9:._-], or a document has too many tags.' },
  ERR_VALUE_INVALID: {
    status: 400,
    summary: 'A value is not JSON (non-finite number, undefined, function, class instance), nests too deeply, or has the wrong shape for the operation.',
  },
  ERR_VALUE_TOO_LARGE: { status: 413, summary: 'An encoded value or document exceeds its size limit.' },
  ERR_TYPE_MISMATCH: { status: 409, summary: "An operation does not apply to the document's CRDT type (for example, increment on a map)." },
  ERR_TYPE_UNKNOWN: { status: 400, summary: 'A CRDT type name is not one of map, lww, mv, counter, set, yjs, automerge.' },
  ERR_COUNTER_RANGE: { status: 400, summary: 'A counter amount is not a safe integer, or the counter would leave the safe-integer range.' },
  ERR_OPTION_INVALID: { status: 400, summary: 'An option passed to an API call is missing, of the wrong type, or out of range.' },
  ERR_DECODE: {
    status: 400,
    summary: 'Bytes from outside (a peer, a file, a request) could not be decoded: malformed, truncated, over a size limit, or of an unknown version.',
  },
  ERR_DELTA_INVALID: { status: 400, summary: 'A delta batch passed to applyDeltas is malformed: wrong fields, wrong types, or it exceeds the batch limit.' },
  ERR_YJS_UPDATE_INVALID: { status: 400, summary: 'Bytes given as a Yjs update are not a valid Yjs update.' },
  ERR_AUTOMERGE_CHANGE_INVALID: { status: 400, summary: 'Bytes given as an Automerge change are not a valid Automerge change.' },
  ERR_STORE_CLOSED: { status: 503, summary: 'The replica store is closed (or was closed after a fatal I/O failure).' },
  ERR_STORE_LOCKED: { status: 503, summary: 'The data directory is in use by another program (a second daemon or CLI holds its lock).' },
  ERR_STORE_NOT_FOUND: { status: 404, summary: 'The data directory given to an offline tool (tessera inspect) does not exist.' },
  ERR_STORE_FORMAT: { status: 500, summary: 'The data directory was written by an incompatible format version, or is not a Tessera data directory.' },
  ERR_STORE_NODE_MISMATCH: { status: 500, summary: "The data directory belongs to a different node id; reusing it would reuse that node's dots." },
  ERR_STORE_CORRUPT: { status: 500, summary: 'A record on disk could not be decoded; the message names its dataset and key. Other records stay readable.' },
  ERR_FRAME_INVALID: {
    status: 400,
    summary: 'A replication frame from a peer is malformed, over its size limit, or out of protocol order; the link is closed with this reason.',
  },
  ERR_LOG_TRUNCATED: {
    status: 409,
    summary: 'Delta-log entries after the requested sequence number were truncated; a peer that far behind is caught up from document states instead.',
  },
  ERR_STORE_IO: { status: 500, summary: 'The storage engine failed to read or write; the replica closes itself rather than risk acknowledging lost writes.' },
  ERR_CONFIG_INVALID: {
    status: 400,
    summary: 'The cluster config file is unreadable, too large, not YAML, or breaks a rule; the message names the file, line, column, field, value and rule.',
  },
  ERR_POLICY_INVALID: {
    status: 400,
    summary:
      'A replication policy is too large, not YAML or JSON, or breaks a rule; the message lists every problem with its source, line, column, field path, value and rule.',
  },
  ERR_POLICY_RULE_INVALID: {
    status: 400,
    summary:
      'A CEL expression of a policy (a rule or a home placement) does not parse, does not type-check, returns the wrong type or exceeds a size limit; the message names the rule or dataset and the position.',
  },
  ERR_POLICY_DENIED: { status: 421, summary: 'The policy does not let this region hold the document; the message lists the regions that may.' },
  ERR_POLICY_CONFLICT: {
    status: 409,
    summary: 'A policy version is already stored with another content (versions are immutable), or is older than the version in use.',
  },
  ERR_CONFIG_UNKNOWN_NODE: { status: 400, summary: 'A node id is not one of the nodes in the cluster config; the message lists the known ids.' },
  ERR_NOT_FOUND: { status: 404, summary: 'No HTTP route matches the request path.' },
  ERR_METHOD_NOT_ALLOWED: { status: 405, summary: 'The HTTP route exists but not for this method; the Allow header lists the methods it takes.' },
  ERR_CONTENT_TYPE: { status: 415, summary: 'A request body is not sent as application/json (UTF-8).' },
  ERR_BODY_INVALID: {
    status: 400,
    summary: 'A request body is not valid UTF-8 JSON, or lacks a field, has an unknown field, or a field of the wrong type for the route.',
  },
  ERR_BODY_TOO_LARGE: { status: 413, summary: "A request body exceeds the daemon's body size limit." },
  ERR_BATCH_TOO_LARGE: {
    status: 413,
    summary: 'A batch write (POST /v1/kv/:dataset) holds more documents or bytes than one batch may; the message names the limit. Split it.',
  },
  ERR_NODE_UNAVAILABLE: {
    status: 503,
    summary:
      'The client reached no healthy node (down, draining or unreachable) in a region that may hold the dataset; the message lists the nodes tried and why.',
  },
  ERR_OP_UNKNOWN: { status: 400, summary: 'The op of an operation sent to POST /v1/kv/:dataset/:key/ops is not one the API knows.' },
  ERR_DOC_NOT_FOUND: { status: 404, summary: 'The document does not exist on the answering node (never written, deleted, or not replicated here yet).' },
  ERR_TOKEN_INVALID: { status: 400, summary: 'A session token is malformed, or was issued for a write to another document than the one read.' },
  ERR_NOT_YET_REPLICATED: {
    status: 409,
    summary: 'The answering node does not hold the write a session token names, even after waiting; retry later or read from the writing region.',
  },
  ERR_UNAUTHENTICATED: {
    status: 401,
    summary:
      'The request carries no credential, or one the node does not know (unknown, revoked or malformed token); the WWW-Authenticate header says what to send.',
  },
  ERR_FORBIDDEN: {
    status: 403,
    summary: 'The credential is valid but lacks the role or the dataset grant the route needs; the message names the route, the role and the dataset.',
  },
  ERR_HOST_FORBIDDEN: {
    status: 421,
    summary: 'The Host header is not one of the names this node answers to (a DNS-rebinding guard); the message lists the allowed hosts.',
  },
  ERR_ORIGIN_FORBIDDEN: { status: 403, summary: 'A browser request comes from an Origin this node does not allow (cross-site or DNS-rebinding requests).' },
  ERR_TLS_REQUIRED: { status: 400, summary: 'A plain-HTTP request reached a node that serves its API over HTTPS; use https://.' },
  ERR_CONNECTIONS_EXCEEDED: { status: 503, summary: 'The node holds as many connections as it allows in total or from this source address; retry later.' },
  ERR_POLICY_SIGNATURE_INVALID: {
    status: 403,
    summary:
      'A policy version is unsigned, or its signature is malformed, for another cluster, version or content, made with a key that is not an operator key, or does not verify.',
  },
  ERR_POLICY_VERSION_JUMP: { status: 409, summary: 'A policy version is further above the enforced version than a new version may be (policyVersionJumpMax).' },
  ERR_PEER_IDENTITY: {
    status: 403,
    summary:
      'A certificate does not carry exactly one valid Tessera identity (tessera://<cluster>/<region>/<node> URI), or names another cluster; or a peer connection has no certificate from the cluster CA, or claims another node or region than its certificate names, or the node dialed presents the certificate of another node.',
  },
  ERR_PEER_CLOCK_OFFSET: {
    status: 409,
    summary:
      "A peer's wall clock is further from this node's than the bound allows (clockOffsetMsMax, 500 ms by default); the link is refused at the handshake until the clocks are fixed.",
  },
  ERR_SEAL_KEY_INVALID: {
    status: 400,
    summary:
      'A master key (file or environment variable) is unreadable or is not 32 bytes as base64 (44 characters) or hex (64); the message names the file and the length found.',
  },
  ERR_SEAL_KEY_WRONG: {
    status: 500,
    summary:
      'The master key given does not unwrap the data key of the data directory (another key, or an altered seal.json); the message names both key ids, never the keys.',
  },
  ERR_SEAL_KEY_MISSING: {
    status: 500,
    summary:
      'A sealed data directory was opened without a master key, or a master key was given for a directory that holds unsealed records (it cannot be sealed in place).',
  },
  ERR_FILE_MODE: {
    status: 500,
    summary: 'A secret file (a master key) may be read or changed by group or others; the message names the file, its mode and the modes allowed (0600, 0400).',
  },
  ERR_INTERNAL: { status: 500, summary: 'An unexpected failure inside the daemon (a bug); the request may or may not have taken effect.' },
} as const satisfies Record<string, { status: number; summary: string }>;

/** A stable error code from the catalogue. */
export type ErrorCode = keyof typeof errorCatalogue;

/** An expected failure with a stable code; `status` is the HTTP status the daemon answers with. */
export class TesseraError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TesseraError';
    this.code = code;
    this.status = errorCatalogue[code].status;
  }
}

/** True when `error` is a `TesseraError`, optionally with the given code. */
export function isTesseraError(error: unknown, code?: ErrorCode): error is TesseraError {
  return error instanceof TesseraError && (code === undefined || error.code === code);
}
