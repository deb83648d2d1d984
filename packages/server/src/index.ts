/** @tessera/server: the daemon — cluster config, HTTP API, peer endpoint. */
export * from './config.js';
export * from './http.js';
export * from './daemon.js';
export { encodeSessionToken, decodeSessionToken } from './token.js';
export * from './metrics.js';
export { ClusterView, clusterMembersOf, type ClusterMember, type ClusterSnapshot, type MemberView } from './cluster-view.js';
