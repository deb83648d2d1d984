/**
 * Inspection of a replica's stored state, read straight from the on-disk layout (layout.ts): a summary,
 * keys, one document's internals, the delta log, cursors and frontiers, conflict records.
 *
 * Every function reads through a `StoreReader` and never writes. `tessera inspect <dir>` passes a read-only
 * snapshot of a stopped node's data directory (snapshot.ts); the daemon's inspect routes pass the open
 * replica's records (`Replica.records()`). Both run these same functions, so the CLI prints the same either
 * way. Answers are plain JSON (bytes as base64, no Maps), bounded by the limits below, and say when more
 * exist. A record that does not decode is reported (an item with an error, or a count), never skipped
 * silently and never fatal to the rest of the answer.
 */
export * from './inspect/types.js';
export { jsonSafe, readStoreMeta } from './inspect/read.js';
export { inspectSummary } from './inspect/summary.js';
export { inspectKeys, inspectDoc } from './inspect/docs.js';
export { inspectLog, inspectPeers, inspectConflicts } from './inspect/log.js';
