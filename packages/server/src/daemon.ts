/**
 * The daemon: one region node as a process. Loads the cluster config, opens the replica, serves the HTTP API
 * and the peer WebSocket on one port, and replicates with the other nodes. Start-up fails fast with a clear
 * message (bad config, unknown node, port in use, unwritable data directory). Shutdown stops accepting, lets
 * in-flight requests finish, flushes the links (bounded), and closes the store: no acknowledged write is lost.
 */
import { type Server } from 'node:net';
import { type Logger } from 'pino';
import { TesseraError } from '@tessera/core';
import { Replica, type StoragePort } from '@tessera/store';
import { stringify } from 'yaml';
import { SyncNode, lanesOfPolicy } from '@tessera/sync';
import { type ClusterFetch, ClusterView, clusterMembersOf } from './cluster-view.js';
import { type ClusterConfig, type NodeConfig, findNode, formatHostPort, loadClusterConfig, parseClusterConfig, peersOf } from './config.js';
import { type HttpApi, createHttpHandler, eventLogger } from './http.js';
import { loadNodeSecurity } from './daemon-security.js';
import { createListener } from './serving.js';
import { caFetch } from './tls/fetch.js';
import { peerIdentity } from './tls/identity.js';
import { createMetrics, documentCounts } from './metrics.js';

/** How long shutdown waits for links to deliver what is logged. */
export const shutdownFlushMsMax = 5_000;
/** How long a stopping daemon keeps serving with `/readyz` at 503 before it stops accepting (the load balancer's cue). */
export const drainGraceMsDefault = 2_000;
/** How long a stopping daemon then waits for in-flight requests before it closes every connection. */
export const drainRequestsMsMax = 10_000;

/** A structured log line; never given keys or values. */
export type LogEvent = Record<string, unknown>;

/** Options of `startDaemon`. */
export interface DaemonOptions {
  /** The cluster config file; or `config`, the same content as an object (`joinCluster`). */
  readonly configPath?: string;
  /** The cluster config as the object the YAML file holds; relative paths resolve against `baseDir` (default: the working directory). */
  readonly config?: Readonly<Record<string, unknown>>;
  readonly baseDir?: string;
  readonly nodeId: string;
  /** Where the replica keeps its data instead of the node's `data` directory (e.g. `memoryStorage()` for an app's tests). */
  readonly storage?: StoragePort;
  readonly log?: (event: LogEvent) => void;
  /** The logger (pino); without it, `log` receives each event as an object. */
  readonly logger?: Logger;
  /** The drain's grace period (default `drainGraceMsDefault`). */
  readonly drainGraceMs?: number;
}

/** A running daemon. */
export interface Daemon {
  readonly config: ClusterConfig;
  readonly node: NodeConfig;
  readonly replica: Replica;
  readonly sync: SyncNode;
  readonly api: HttpApi;
  readonly url: string;
  /** Drains and stops; resolves when the store is closed. */
  stop(): Promise<void>;
}

/** Lanes from the policy's datasets (@tessera/sync's `lanesOfPolicy`). */
export const lanesOf = lanesOfPolicy;

function listen(server: Server, node: NodeConfig): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      const address = formatHostPort(node.listen);
      if (error.code === 'EADDRINUSE') reject(new TesseraError('ERR_CONFIG_INVALID', `node ${node.id}: listen address ${address} is already in use`));
      else if (error.code === 'EACCES') reject(new TesseraError('ERR_CONFIG_INVALID', `node ${node.id}: no permission to listen on ${address}`));
      else if (error.code === 'EADDRNOTAVAIL')
        reject(new TesseraError('ERR_CONFIG_INVALID', `node ${node.id}: listen address ${address} is not an address of this machine`));
      else reject(error);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(node.listen.port, node.listen.host);
  });
}

/** Starts the daemon for `nodeId` of the cluster in `configPath`. */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const config = await configOf(options);
  const node = findNode(config, options.nodeId);
  const base = { node: node.id, region: node.region };
  const logger = (options.logger ?? eventLogger(options.log as ((event: object) => void) | undefined)).child(base);
  const log = (event: LogEvent) => logger.info(event);
  // Credentials and keys before the store opens: a daemon that would be open to anyone never starts.
  const security = loadNodeSecurity(config, node, Date.now());
  const peers = peersOf(config, node.id);
  // Whatever the daemon and its store create is its owner's only (data files 0600, directories 0700).
  process.umask(0o077);
  const replica = await Replica.open({
    ...(options.storage === undefined ? { path: node.data } : { storage: options.storage }),
    node: node.id,
    region: node.region,
    durability: node.durability,
    // Encryption at rest whenever a master key is configured (a file others may read is refused: ERR_FILE_MODE).
    ...(config.masterKeyFile === null ? {} : { encryption: { masterKeyFile: config.masterKeyFile } }),
    peers: peers.map((peer) => ({ node: peer.id, region: peer.region })),
    ...(config.policy === null ? {} : { policy: config.policy }),
    // Every version but the config's must be signed by an operator key (from the API and from peers alike).
    policyTrust: { cluster: config.cluster, keys: security.operatorKeys },
    ...(security.policySignature === null ? {} : { policySignature: security.policySignature }),
  });
  const tls = security.tls;
  const sync = new SyncNode({
    replica,
    cluster: config.cluster,
    // The secret's proof stays as a second factor: a stolen node key alone does not join the cluster.
    secret: config.secret,
    // Peer links are mutual TLS with the node's certificate; a peer is who its certificate names.
    tls: tls === null ? null : { key: tls.key, cert: tls.cert, ca: tls.ca, identityOf: (cert) => peerIdentity(cert, config.cluster) },
    // Lanes are set at start from the policy in force (a newer stored version wins over the file's).
    lanes: lanesOf(replica.policy),
    onPolicy: (event) => log({ event: 'policy-installed', version: event.version, from: event.from }),
    peers: peers.map((peer) => ({ node: peer.id, region: peer.region, url: `wss://${formatHostPort(peer.advertise)}/v1/replicate` })),
    // The log bound and retention interval of the config's `replication:` section; SyncNode's defaults otherwise.
    ...config.replication,
    log,
  });
  const metrics = createMetrics({ replica, replication: sync, documents: documentCounts(replica) });
  const cluster = new ClusterView({ node: node.id, region: node.region }, clusterMembersOf(config, node.id), clusterFetch(security.tls?.ca ?? null));
  const api = createHttpHandler({
    replica,
    node,
    replication: sync,
    metrics,
    cluster,
    logger,
    access: { tokens: security.tokens, hosts: security.hosts, origins: config.api.origins },
    open: { health: config.api.open.has('health'), metrics: config.api.open.has('metrics') },
    policySigning: { cluster: config.cluster, operatorKeys: security.operatorKeys },
  });
  await api.ready();
  const listener = createListener({
    handle: api.handle,
    upgrade: (request, socket, head) => {
      if (tls !== null && new URL(request.url ?? '/', 'http://x').pathname === '/v1/replicate') sync.handleUpgrade(request, socket, head);
      else socket.destroy();
    },
    tls: security.tls,
    log,
  });
  try {
    await listen(listener.front, node);
  } catch (error) {
    await replica.close();
    throw error;
  }
  sync.start();
  const url = `${security.tls === null ? 'http' : 'https'}://${formatHostPort(node.listen)}`;
  log({
    event: 'daemon-started',
    url,
    peers: config.nodes.length - 1,
    durability: node.durability,
    policy: replica.policyStamp().version,
    sealed: config.masterKeyFile !== null,
    tokens: security.tokens.size,
    ...config.replication,
  });
  const drainGraceMs = options.drainGraceMs ?? drainGraceMsDefault;
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      log({ event: 'daemon-stopping', drainGraceMs });
      // Load balancers see /readyz answer 503 for the grace period while requests still come and finish.
      api.setDraining(true);
      await sleep(drainGraceMs);
      // Stop accepting; the promise settles once every connection ended — peer links included, which close
      // only below: awaiting it here would wait for them forever.
      const listenerClosed = listener.close();
      const idle = await Promise.race([api.idle().then(() => true), sleep(drainRequestsMsMax).then(() => false)]);
      const flushed = await sync.flush(shutdownFlushMsMax);
      await sync.close();
      // Whatever is still open (a client that never finishes its body, an idle keep-alive) is closed now.
      listener.destroyAll();
      await listenerClosed;
      metrics.close();
      await replica.close();
      log({ event: 'daemon-stopped', linksFlushed: flushed, requestsFinished: idle });
    })();
    return stopping;
  };
  return { config, node, replica, sync, api, url, stop };
}

/** What `joinCluster` takes: the daemon's options with the config as an object. */
export type JoinOptions = Omit<DaemonOptions, 'configPath' | 'config' | 'nodeId'> & {
  /** The cluster config, the same fields as the YAML file (`cluster`, `nodes`, `secretFile`, `ca`, `tokens`, `policy`…). */
  readonly config: Readonly<Record<string, unknown>>;
  /** This node's id in `config.nodes`. */
  readonly node: string;
};

/**
 * An app's own node joins its cluster with one call: a replica in the app's process, replicating with the other
 * regions' nodes over mutual TLS, serving the HTTP API on the node's `listen` address, with the policy, tokens and
 * keys of the config — what `tessera serve` runs, without a config file. Which side dials does not matter (the
 * lower node id dials; the listener accepts). `stop()` drains and closes it.
 */
export function joinCluster(options: JoinOptions): Promise<Daemon> {
  const { config, node, ...rest } = options;
  return startDaemon({ ...rest, config, nodeId: node });
}

async function configOf(options: DaemonOptions): Promise<ClusterConfig> {
  if (options.config !== undefined && options.configPath !== undefined) {
    throw new TesseraError('ERR_OPTION_INVALID', 'startDaemon: give configPath or config, not both');
  }
  if (options.config !== undefined) {
    if (typeof options.config !== 'object' || options.config === null || Array.isArray(options.config)) {
      throw new TesseraError('ERR_CONFIG_INVALID', 'the cluster config must be an object with cluster, nodes and a secret');
    }
    // The object goes through the file's own validation, so every field is checked the same way.
    return parseClusterConfig(stringify(options.config), 'the embedded cluster config', process.env, { baseDir: options.baseDir ?? process.cwd() });
  }
  if (options.configPath === undefined) throw new TesseraError('ERR_OPTION_INVALID', 'startDaemon: give configPath or config');
  return loadClusterConfig(options.configPath);
}

/** A fetch for the cluster view: with TLS, trusting the cluster CA only. */
function clusterFetch(ca: string | null): ClusterFetch | undefined {
  if (ca === null) return undefined;
  const fetchWithCa = caFetch(ca);
  return (url, init) => fetchWithCa(url, { ...init, redirect: 'error' });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
