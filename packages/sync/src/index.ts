/** @tessera/sync: replication links — the link protocol machine, its driver, and the WebSocket transport. */
export * from './protocol.js';
export * from './auth.js';
export * from './cadence.js';
export * from './sender.js';
export * from './links.js';
export * from './host.js';
export * from './link/types.js';
export * from './link/handshake.js';
export { LinkMachine, type LinkCounters } from './link/machine.js';
export { ReceiveQueue, applyGroupBytesMax, applyGroupEntriesMax, receiveQueueFramesMax } from './link/receive.js';
export { SyncDriver, type DriverOptions, type AppliedEvent, codeOf, tracesMax, tracesLoggedMax, waitersMax } from './driver.js';
export { LinkRun, trafficDatasetsMax } from './link-run.js';
export { Retention } from './retention.js';
export { type LinkStatus, linkStatus, sampleRates } from './status.js';
export {
  SyncNode,
  type SyncOptions,
  ackTimeoutMsDefault,
  logEntriesMaxDefault,
  retentionIntervalMsDefault,
  handshakeTimeoutMsDefault,
  pingIntervalMsDefault,
  silentIntervalsMax,
  deniedAuditIntervalMsDefault,
  type SyncTls,
  handshakesPendingMaxDefault,
  handshakesPendingPerSourceMaxDefault,
} from './ws.js';
