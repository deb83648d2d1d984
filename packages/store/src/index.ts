/** @tessera/store: the LevelDB-backed replica store and the embedded `Replica` API. */
export { Replica, conflictsPerGetMax, deltasLimitDefault, listLimitDefault } from './replica.js';
export { MapHandle, CounterHandle, SetHandle, YjsHandle, AutomergeHandle } from './handles.js';
export { GroupCommitter, groupOpsMax, type BatchOp } from './committer.js';
export { docCacheEntriesMax } from './cache.js';
export { storeFormatVersion } from './layout.js';
export type * from './types.js';
export { type ReplicaObserver, policyHash, verifyStoredAudit, auditLimitMax, policyScanStepMax, entryRegionsMax } from './replica.js';
export { type AuditEntry, type AuditKind, type AuditVerdict, auditGenesis, auditHash, keyDigest, verifyAuditChain, canonicalJson } from './audit.js';
export { docFacts, holderChange, quarantineHolds, backfillLeader } from './residency.js';
export {
  type StoreReader, type StoreRange, type StoreMeta, type InspectedNode, type InspectRecordError, type DatasetSummary, type PolicyStampView,
  type InspectSummary, type KeyItem, type InspectKeys, type DotView, type ContextNodeView, type SiblingsView, type InspectDoc, type LogItem,
  type InspectLog, type InspectPeers, type InspectConflicts, readStoreMeta, inspectSummary, inspectKeys, inspectDoc, inspectLog, inspectPeers,
  inspectConflicts, jsonSafe, inspectKeysLimitDefault, inspectKeysLimitMax, inspectLogLimitDefault, inspectLogLimitMax,
  inspectConflictsLimitDefault, inspectConflictsLimitMax, inspectDocDotsMax, inspectDocConflictsMax, inspectPeersMax, summaryDatasetsMax,
  summaryScanRecordsDefault, summaryScanRecordsMax,
} from './inspect.js';
export { type DataDirectorySnapshot, openDataDirectorySnapshot, lockHolder } from './snapshot.js';
