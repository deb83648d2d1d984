/** @tessera/server: the daemon — cluster config, HTTP API, peer endpoint. */
export * from './config.js';
export * from './http.js';
export * from './daemon.js';
export * from './serving.js';
export { loadNodeSecurity, type NodeSecurity } from './daemon-security.js';
export { checkPrivateFile, checkPrivateFilePath } from './files.js';
export { secretWeakness, secretBitsMin } from './secret-strength.js';
export * from './auth/access.js';
export * from './auth/tokens.js';
export * from './tls/identity.js';
export * from './tls/certs.js';
export { caFetch } from './tls/fetch.js';
export { encodeSessionToken, decodeSessionToken } from './token.js';
export * from './metrics.js';
export {
  ClusterView,
  clusterMembersOf,
  memberPart,
  type ClusterFetch,
  type ClusterMember,
  type ClusterSnapshot,
  type MemberView,
  type MemberPart,
  type ConflictView,
} from './cluster-view.js';
export * from './client/client.js';
export { readEventStream, type StreamEvent, streamEventBytesMax } from './client/feed.js';
