/** @tessera/store: the LevelDB-backed replica store and the embedded `Replica` API. */
export { Replica, conflictsPerGetMax, deltasLimitDefault, listLimitDefault } from './replica.js';
export { MapHandle, CounterHandle, SetHandle, YjsHandle, AutomergeHandle } from './handles.js';
export { GroupCommitter, groupOpsMax, type BatchOp } from './committer.js';
export { docCacheEntriesMax } from './cache.js';
export { storeFormatVersion } from './layout.js';
export type * from './types.js';
