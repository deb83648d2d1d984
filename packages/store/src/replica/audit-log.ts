/** The audit log as the replica serves it: appends for the replication layer, pages, and the chain check. */
import { TesseraError } from '@tessera/core';
import { type AuditEntry, type AuditKind, type AuditVerdict, isAuditEntry, isAuditHead, verifyAuditChain } from '../audit.js';
import { auditHeadKey, auditKey, auditRange, parseAuditKey } from '../layout.js';
import { type ReplicaCore, parseJsonBytes } from './core.js';
import { checkLimit } from './log.js';

/** Audit entries in one `audit` page. */
export const auditLimitMax = 10_000;

/** Appends an audit entry (for events the replication layer sees: denied sends, say). */
export async function recordAudit(c: ReplicaCore, kind: AuditKind, details: Record<string, unknown>): Promise<void> {
  c.checkOpen();
  await c.commit(c.auditOps(kind, details));
}

/** Audit entries after `after` (a sequence number), oldest first. */
export async function auditPage(c: ReplicaCore, options: { after?: number; limit?: number } = {}): Promise<AuditEntry[]> {
  c.checkOpen();
  const after = options.after ?? 0;
  if (!Number.isSafeInteger(after) || after < 0) throw new TesseraError('ERR_OPTION_INVALID', `audit: after ${String(after)} is not a non-negative integer`);
  const limit = checkLimit('audit', options.limit ?? 100, auditLimitMax);
  const out: AuditEntry[] = [];
  for await (const [, bytes] of c.storage.entries({ gt: auditKey(after), lt: auditRange.lt, limit })) out.push(parseJsonBytes(bytes) as AuditEntry);
  return out;
}

/** Checks a stored audit chain (also used offline on a data directory); reports, never throws. */
export async function verifyStoredAudit(db: {
  iterator(range: object): AsyncIterable<[string, Uint8Array]>;
  get(key: string): Promise<Uint8Array | undefined>;
}): Promise<AuditVerdict> {
  const items: Array<{ storedSeq: number; entry: AuditEntry }> = [];
  // What is checked was possibly edited: anything that is not an entry (or a head) is reported, never thrown.
  for await (const [stored, bytes] of db.iterator(auditRange)) {
    let entry: unknown;
    try {
      entry = parseJsonBytes(bytes);
    } catch {
      return { ok: false, entries: items.length + 1, problem: `entry stored at position ${parseAuditKey(stored)} is not readable` };
    }
    if (!isAuditEntry(entry)) {
      return {
        ok: false,
        entries: items.length + 1,
        problem: `entry stored at position ${parseAuditKey(stored)} is not an audit entry (its fields were edited)`,
      };
    }
    items.push({ storedSeq: parseAuditKey(stored), entry });
  }
  const headBytes = await db.get(auditHeadKey);
  if (headBytes === undefined) return verifyAuditChain(items, null);
  let head: unknown;
  try {
    head = parseJsonBytes(headBytes);
  } catch {
    head = undefined;
  }
  if (!isAuditHead(head))
    return { ok: false, entries: items.length, problem: "the head record (the last entry's number and hash) is not readable: it was edited" };
  return verifyAuditChain(items, head);
}
