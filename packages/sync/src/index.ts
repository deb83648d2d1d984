/** @tessera/sync: replication links over WebSockets — handshake, delta streaming, adaptive cadence. */
export * from './protocol.js';
export * from './auth.js';
export * from './cadence.js';
export * from './sender.js';
export { SyncNode, buildLanes, lanePriorities, lanesMax, type LaneConfig, ackTimeoutMsDefault, logEntriesMaxDefault, retentionIntervalMsDefault, closeCodes, handshakeTimeoutMsDefault, pingIntervalMsDefault, silentIntervalsMax, type LinkState, type LinkStatus, type PeerConfig, type SyncOptions } from './node.js';
