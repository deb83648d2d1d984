/**
 * tesseradb: a CRDT-based replicated key-value store with differential, policy-driven replication.
 *
 * One package, three uses: `import { Replica, parsePolicy } from 'tesseradb'` embeds a replica in an app;
 * `startDaemon` runs a region node (what `tessera serve` runs); the `tessera` command comes with it (`bin`).
 */
export * from '@tessera/store';
export {
  TesseraError,
  isTesseraError,
  errorCatalogue,
  type ErrorCode,
  type CrdtTypeName,
  crdtTypeNames,
  type Json,
  type JsonScalar,
  type Hlc,
  type Dot,
  type Operation,
  compareHlc,
  Policy,
  parsePolicy,
} from '@tessera/core';
export { startDaemon, joinCluster, type JoinOptions, type Daemon, type DaemonOptions, type LogEvent, createMetrics } from '@tessera/server';
export {
  Client,
  TesseraClientError,
  planRoute,
  type ClientOptions,
  type ClientNode,
  type ClientLocation,
  type ClientOperation,
  type ClientBatchItem,
  type ClientBatchAnswer,
  type WriteAnswer,
  type ChangeFeedEvent,
  type PlacementAnswer,
  type BatchItemAnswer,
  type RoutePlan,
} from '@tessera/server';
