/**
 * The on-disk layout: one LevelDB per replica, keys as UTF-8 strings with a one-letter prefix. Dataset names
 * and document keys cannot contain control characters, so the NUL separator is unambiguous and keys sort by
 * dataset, then key.
 *
 *   meta                         format version, node id, region (JSON)
 *   seq                          the last sequence number assigned (written in every batch)
 *   hlc                          the latest hybrid logical timestamp (written in every batch)
 *   logfloor                     the highest sequence number truncated from the delta log
 *   d␀<dataset>␀<key>            the document's state (canonical encoding, core/codec.ts)
 *   l␀<seq as 16 hex digits>     a delta-log entry
 *   p␀<peer>[␀<lane>]            a peer's cursor (per lane): the last sequence number it acknowledged (JSON)
 *   x␀<dataset>␀<key>␀<id>       a conflict record (JSON)
 *   f␀<origin>                   the highest sequence number of that origin this replica holds (JSON)
 *   a␀<seq as 16 hex digits>     an audit entry (JSON, hash-chained; audit.ts)
 *   ahead                        the audit log's last sequence number and hash (JSON)
 *   salt                         random bytes that key the digests naming documents in audit entries
 *   y␀<version as 16 hex digits> a policy version: its text and content hash (JSON; immutable)
 *   ypolicy                      the enforced policy version, and the shadow one if any (JSON)
 *   g␀<key digest>               a purged document's counter floor: the highest counter of this node's dots it had
 *   h␀<dataset>␀<key>            a document this region hands over (its state entry's seq, the regions) and
 *                                purges once they have acknowledged it (JSON)
 *   k␀<dataset>␀<key>            never stored: a purge deletes it, and sealed storage (storage/sealed.ts) then
 *                                shreds the document's key in the same batch
 */
export const storeFormatVersion = 2;

export const metaKey = 'meta';
export const seqKey = 'seq';
export const hlcKey = 'hlc';
/** The highest sequence number truncated from the delta log (0 = nothing truncated). */
export const logFloorKey = 'logfloor';

const sep = '\u0000';
/**
 * The upper bound of a key range: U+10FFFF, whose UTF-8 encoding sorts after every character a key may hold
 * (keys may not hold it). '\uffff' would not do: characters past the BMP encode above it and fell outside.
 */
export const keyRangeEnd = '\u{10ffff}';
const docPrefix = `d${sep}`;
const logPrefix = `l${sep}`;
const cursorPrefix = `p${sep}`;
const conflictPrefix = `x${sep}`;

/** Key of a document. */
export function docKey(dataset: string, key: string): string {
  return `${docPrefix}${dataset}${sep}${key}`;
}

/** Key range of a dataset's documents whose keys start with `prefix`. */
export function docRange(dataset: string, prefix = ''): { gte: string; lt: string } {
  const start = `${docPrefix}${dataset}${sep}${prefix}`;
  return { gte: start, lt: `${start}${keyRangeEnd}` };
}

/** Splits a document key into dataset and key. */
export function parseDocKey(stored: string): { dataset: string; key: string } {
  const at = stored.indexOf(sep, docPrefix.length);
  return { dataset: stored.slice(docPrefix.length, at), key: stored.slice(at + 1) };
}

/** Key of a delta-log entry; hex keeps numeric order under byte order. */
export function logKey(seq: number): string {
  return `${logPrefix}${seq.toString(16).padStart(16, '0')}`;
}

/** Key range of the whole delta log. */
export const logRange = { gte: logPrefix, lt: `l${String.fromCharCode(1)}` };

/** The sequence number of a log key. */
export function parseLogKey(stored: string): number {
  return Number.parseInt(stored.slice(logPrefix.length), 16);
}

/** Key of a peer's cursor (for one lane of the link; the main lane has the plain key). */
export function cursorKey(peer: string, lane = 'main'): string {
  return lane === 'main' ? `${cursorPrefix}${peer}` : `${cursorPrefix}${peer}${sep}${lane}`;
}

/** The peer and lane of a cursor key. */
export function parseCursorKey(stored: string): { peer: string; lane: string } {
  const rest = stored.slice(cursorPrefix.length);
  const at = rest.indexOf(sep);
  return at < 0 ? { peer: rest, lane: 'main' } : { peer: rest.slice(0, at), lane: rest.slice(at + 1) };
}

/** Key range of all cursors. */
export const cursorRange = { gte: cursorPrefix, lt: `p${String.fromCharCode(1)}` };

/** Key of a conflict record. */
export function conflictKey(dataset: string, key: string, id: string): string {
  return `${conflictPrefix}${dataset}${sep}${key}${sep}${id}`;
}

/** Key range of conflict records, for all datasets, one dataset, or one document. */
export function conflictRange(dataset?: string, key?: string): { gte: string; lt: string } {
  const start =
    dataset === undefined ? conflictPrefix : key === undefined ? `${conflictPrefix}${dataset}${sep}` : `${conflictPrefix}${dataset}${sep}${key}${sep}`;
  return { gte: start, lt: dataset === undefined ? `x${String.fromCharCode(1)}` : `${start}${keyRangeEnd}` };
}

/** Splits a conflict-record key into dataset, key and record id. */
export function parseConflictKey(stored: string): { dataset: string; key: string; id: string } {
  const first = stored.indexOf(sep, conflictPrefix.length);
  const last = stored.lastIndexOf(sep);
  return { dataset: stored.slice(conflictPrefix.length, first), key: stored.slice(first + 1, last), id: stored.slice(last + 1) };
}

/** Key range of all documents. */
export const allDocsRange = { gte: docPrefix, lt: `d${String.fromCharCode(1)}` };

/** Key of an origin's frontier. */
export function frontierKey(origin: string): string {
  return `f${sep}${origin}`;
}

/** Key range of all frontiers. */
export const frontierRange = { gte: `f${sep}`, lt: `f${String.fromCharCode(1)}` };

/** Key of an audit entry. */
export function auditKey(seq: number): string {
  return `a${sep}${seq.toString(16).padStart(16, '0')}`;
}

/** The sequence number of an audit key. */
export function parseAuditKey(stored: string): number {
  return Number.parseInt(stored.slice(2), 16);
}

/** Key range of the audit log. */
export const auditRange = { gte: `a${sep}`, lt: `a${String.fromCharCode(1)}` };
/** The audit log's head: last sequence number and hash. */
export const auditHeadKey = 'ahead';
/** The salt of key digests. */
export const saltKey = 'salt';

/** Key of a stored policy version. */
export function policyKey(version: number): string {
  return `y${sep}${version.toString(16).padStart(16, '0')}`;
}

/** Key range of stored policy versions. */
export const policyRange = { gte: `y${sep}`, lt: `y${String.fromCharCode(1)}` };
/** Which stored versions are enforced and shadowed. */
export const policyStateKey = 'ypolicy';

/** Key of a pending handover. */
export function handoverKey(dataset: string, key: string): string {
  return `h${sep}${dataset}${sep}${key}`;
}

/** Key range of pending handovers. */
export const handoverRange = { gte: `h${sep}`, lt: `h${String.fromCharCode(1)}` };

/** The dataset and key of a handover key. */
export function parseHandoverKey(stored: string): { dataset: string; key: string } {
  const at = stored.indexOf(sep, 2);
  return { dataset: stored.slice(2, at), key: stored.slice(at + 1) };
}

/**
 * Key of a purge notice this region owes for a document it does not store (it purged it, or refused a stale
 * copy): the notice is deleted as soon as the regions it names acknowledged it, not at the next truncation.
 */
export function owedKey(seq: number): string {
  return `o${sep}${seq.toString(16).padStart(16, '0')}`;
}

/** Key range of owed purge notices. */
export const owedRange = { gte: `o${sep}`, lt: `o${String.fromCharCode(1)}` };

/** The log sequence number of an owed-notice key. */
export function parseOwedKey(stored: string): number {
  return Number.parseInt(stored.slice(2), 16);
}

/** Key of a purged document's counter floor, by its key digest (never the key: the document is gone). */
export function floorKey(digest: string): string {
  return `g${sep}${digest}`;
}

/** Key range of counter floors. */
export const floorRange = { gte: `g${sep}`, lt: `g${String.fromCharCode(1)}` };

/**
 * The document's secret: never stored as such. A purge deletes it in its batch; sealed storage (storage/sealed.ts)
 * takes that delete as the order to shred the key the document's records are sealed under. Plain storage
 * deletes nothing.
 */
export function docSecretKey(dataset: string, key: string): string {
  return `k${sep}${dataset}${sep}${key}`;
}
