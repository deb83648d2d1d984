/** @tessera/store: the LevelDB-backed replica store and the embedded `Replica` API. */
export { Replica } from './replica.js';
export { conflictsPerGetMax, listLimitDefault } from './replica/reads.js';
export { deltasLimitDefault } from './replica/log.js';
export type { StoragePort, StorageRange } from './storage/port.js';
export { levelStorage, memoryStorage } from './storage/level.js';
export {
  type SealedOptions,
  type DataKeySource,
  SealedStorage,
  sealedStorage,
  sealedLevelStorage,
  sealedLevelStorageFromKeyFile,
  sealedMemoryStorage,
  sealDigestBytes,
  sealedFetchRecordsMax,
} from './storage/sealed.js';
export {
  parseMasterKey,
  newMasterKeyText,
  readMasterKeyFile,
  createMasterKeyFile,
  rotateMasterKey,
  masterKeyId,
  isSealedDirectory,
  checkOwnerOnly,
  loadDataKey,
  masterKeyFromEnv,
  masterKeyFileEnv,
  sealFileName,
  slotsFileName,
  sealKeyBytes,
  masterKeyFileBytesMax,
} from './storage/seal-keys.js';
export { type SlotStore, fileSlots, memorySlots, slotBytes, slotsMax } from './storage/slots.js';
export type { Sendable } from './replica/judge.js';
export { MapHandle, CounterHandle, SetHandle, YjsHandle, AutomergeHandle } from './handles.js';
export { GroupCommitter, groupOpsMax, type BatchOp } from './committer.js';
export { docCacheEntriesMax } from './cache.js';
export { storeFormatVersion, docKey, docSecretKey } from './layout.js';
export type * from './types.js';
export { type ReplicaObserver, policyHash } from './replica.js';
export { verifyStoredAudit, auditLimitMax } from './replica/audit-log.js';
export { policyScanStepMax } from './replica/governance.js';
export { entryRegionsMax } from './replica/validate.js';
export { migrateBatchRecordsMax } from './replica/migrate.js';
export { type AuditEntry, type AuditKind, type AuditVerdict, auditGenesis, auditHash, keyDigest, verifyAuditChain, canonicalJson } from './audit.js';
export {
  type StoreReader,
  type StoreRange,
  type StoreMeta,
  type InspectedNode,
  type InspectRecordError,
  type DatasetSummary,
  type PolicyStampView,
  type InspectSummary,
  type KeyItem,
  type InspectKeys,
  type DotView,
  type ContextNodeView,
  type SiblingsView,
  type InspectDoc,
  type LogItem,
  type InspectLog,
  type InspectPeers,
  type InspectConflicts,
  readStoreMeta,
  inspectSummary,
  inspectKeys,
  inspectDoc,
  inspectLog,
  inspectPeers,
  inspectConflicts,
  jsonSafe,
  inspectKeysLimitDefault,
  inspectKeysLimitMax,
  inspectLogLimitDefault,
  inspectLogLimitMax,
  inspectConflictsLimitDefault,
  inspectConflictsLimitMax,
  inspectDocDotsMax,
  inspectDocConflictsMax,
  inspectPeersMax,
  summaryDatasetsMax,
  summaryScanRecordsDefault,
  summaryScanRecordsMax,
} from './inspect.js';
export { type DataDirectorySnapshot, openDataDirectorySnapshot, lockHolder } from './snapshot.js';
