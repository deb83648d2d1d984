/**
 * The audit log: an append-only, hash-chained record of what the policy did in this region — policy versions
 * stored and activated, sends it denied, deltas a receiver rejected, purges, quarantine holds and releases.
 *
 * Each entry stores the hash of the entry before it, and its own hash over its content and that link, so
 * editing, removing or reordering any entry breaks the chain from there on. A head record holds the last
 * sequence number and hash, so cutting entries off the end shows too. (Whoever can rewrite the whole data
 * directory can rebuild a consistent chain; anchoring the head elsewhere is what defeats that.)
 *
 * Entries never carry a document's key or value: documents are named by a keyed digest of dataset and key
 * (`keyDigest`), which an operator holding the data directory can recompute for a key they know.
 */
import { createHash, createHmac } from 'node:crypto';
import { TesseraError } from '@tessera/core';

/** What an audit entry records. */
export type AuditKind = 'policy-stored' | 'policy-activated' | 'send-denied' | 'rejected' | 'purge' | 'quarantine-hold' | 'quarantine-release';

/** One audit entry as stored and listed. */
export interface AuditEntry {
  /** 1, 2, 3, … without gaps. */
  readonly seq: number;
  /** Wall-clock milliseconds when it was recorded. */
  readonly atMs: number;
  readonly kind: AuditKind;
  readonly node: string;
  readonly region: string;
  /** Kind-specific fields (counts, datasets, regions, policy versions, key digests, reasons; never keys or values). */
  readonly details: Readonly<Record<string, unknown>>;
  /** The previous entry's hash (64 zeros for the first). */
  readonly prev: string;
  /** SHA-256 over the fields above. */
  readonly hash: string;
}

/** The hash before the first entry. */
export const auditGenesis = '0'.repeat(64);
/** Bytes of one entry's details (they hold counts and digests; a bound keeps a bad caller from bloating the log). */
export const auditDetailsBytesMax = 16 * 1024;

/** The content hash of an entry: SHA-256 over its canonical JSON without `hash`. */
export function auditHash(entry: Omit<AuditEntry, 'hash'>): string {
  return createHash('sha256')
    .update(canonicalJson([entry.seq, entry.atMs, entry.kind, entry.node, entry.region, entry.details, entry.prev]))
    .digest('hex');
}

/** A document's name in audit entries and logs: a keyed digest of dataset and key (16 hex characters). */
export function keyDigest(salt: Uint8Array, dataset: string, key: string): string {
  return createHmac('sha256', salt).update(`${dataset}\u0000${key}`).digest('hex').slice(0, 16);
}

/** True when `value` has the fields of an audit entry, of their types (a stored entry may have been edited). */
export function isAuditEntry(value: unknown): value is AuditEntry {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const entry = value as Record<string, unknown>;
  return (
    Number.isSafeInteger(entry.seq) &&
    typeof entry.atMs === 'number' &&
    typeof entry.kind === 'string' &&
    typeof entry.node === 'string' &&
    typeof entry.region === 'string' &&
    typeof entry.details === 'object' &&
    entry.details !== null &&
    !Array.isArray(entry.details) &&
    typeof entry.prev === 'string' &&
    typeof entry.hash === 'string'
  );
}

/** True when `value` is an audit head record: `{ seq, hash }`. */
export function isAuditHead(value: unknown): value is { seq: number; hash: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const head = value as Record<string, unknown>;
  return Number.isSafeInteger(head.seq) && typeof head.hash === 'string';
}

/** The outcome of checking a chain. */
export interface AuditVerdict {
  readonly ok: boolean;
  readonly entries: number;
  /** The first problem found, naming the entry. */
  readonly problem?: string;
}

/**
 * Checks a chain read in key order: sequence numbers 1.. without gaps or repeats, every `prev` the hash of the
 * entry before, every `hash` matching its content, and the head naming the last entry.
 */
export function verifyAuditChain(
  entries: Iterable<{ readonly storedSeq: number; readonly entry: AuditEntry }>,
  head: { seq: number; hash: string } | null,
): AuditVerdict {
  let expectedSeq = 1;
  let prev = auditGenesis;
  let count = 0;
  for (const { storedSeq, entry } of entries) {
    count++;
    if (entry.seq !== storedSeq)
      return { ok: false, entries: count, problem: `entry stored at position ${storedSeq} says it is entry ${entry.seq}: entries were moved` };
    if (entry.seq !== expectedSeq)
      return {
        ok: false,
        entries: count,
        problem: `entry ${entry.seq} follows entry ${expectedSeq - 1}: entries ${expectedSeq}–${entry.seq - 1} were removed or reordered`,
      };
    if (entry.prev !== prev)
      return {
        ok: false,
        entries: count,
        problem: `entry ${entry.seq} does not link to entry ${entry.seq - 1} (its prev hash differs): an entry before it was edited, removed or reordered`,
      };
    const { hash, ...content } = entry;
    const recomputed = auditHash(content);
    if (recomputed !== hash)
      return { ok: false, entries: count, problem: `entry ${entry.seq} (${entry.kind}) was edited: its content no longer matches its hash` };
    prev = hash;
    expectedSeq++;
  }
  const last = expectedSeq - 1;
  if (head === null) {
    return last === 0 ? { ok: true, entries: 0 } : { ok: false, entries: count, problem: `the head record is missing although ${last} entries exist` };
  }
  if (head.seq !== last || head.hash !== prev) {
    return {
      ok: false,
      entries: count,
      problem:
        head.seq > last
          ? `the head names entry ${head.seq} but the log ends at entry ${last}: entries were removed from the end`
          : `the head names entry ${head.seq} with another hash than the log's last entry ${last}: the head or the last entries were edited`,
    };
  }
  return { ok: true, entries: count };
}

/** Canonical JSON: object keys sorted, no whitespace. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const record = value as Record<string, unknown>;
  return `{${Object.keys(record)
    .sort()
    .filter((k) => record[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`)
    .join(',')}}`;
}

/** Checks an entry's details before it is chained. */
export function checkAuditDetails(details: Record<string, unknown>): void {
  const bytes = Buffer.byteLength(canonicalJson(details));
  if (bytes > auditDetailsBytesMax) {
    throw new TesseraError('ERR_OPTION_INVALID', `audit entry details of ${bytes} bytes exceed the limit of ${auditDetailsBytesMax} bytes`);
  }
}
