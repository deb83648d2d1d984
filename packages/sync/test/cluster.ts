/** Test helper: in-process nodes (replica + SyncNode + HTTP server for the peer endpoint) on loopback. */
import { createServer, type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Replica, type ReplicaOptions } from '@tessera/store';
import { SyncNode, type PeerConfig, type SyncOptions } from '@tessera/sync';

export const secret = Buffer.from('test-cluster-secret-0123456789abcdef');

/** Peers of every node, as the cluster was started (for restarting a node's replication). */
export let lastPeers: PeerConfig[] = [];

export interface TestNode {
  readonly id: string;
  readonly region: string;
  replica: Replica;
  sync: SyncNode;
  server: Server;
  port: number;
}

/** Starts HTTP servers first (ports are needed for peer urls), then replicas and sync nodes. */
export async function startCluster(
  t: { teardown(fn: () => unknown): void },
  specs: ReadonlyArray<{ id: string; region: string }>,
  options: Partial<Omit<SyncOptions, 'replica' | 'peers'>> & {
    urlFor?: (node: string, port: number) => string;
    /** More options of each node's replica (its policy, policy trust). */
    replicaOptions?: (node: string) => Partial<ReplicaOptions>;
  } = {},
): Promise<TestNode[]> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-sync-'));
  const servers = await Promise.all(
    specs.map(
      () =>
        new Promise<Server>((resolve) => {
          const server = createServer((_req, res) => res.writeHead(404).end());
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as AddressInfo).port);
  const peers: PeerConfig[] = specs.map((spec, i) => ({
    node: spec.id,
    region: spec.region,
    url: options.urlFor?.(spec.id, ports[i]!) ?? `ws://127.0.0.1:${ports[i]}/v1/replicate`,
  }));
  lastPeers = peers;
  const nodes: TestNode[] = [];
  for (const [i, spec] of specs.entries()) {
    const { replicaOptions, urlFor: _urlFor, ...syncOptions } = options;
    const replica = await Replica.open({ path: join(dir, spec.id), node: spec.id, region: spec.region, durability: 'os', ...replicaOptions?.(spec.id) });
    const sync = new SyncNode({ cluster: 'test', secret, pingIntervalMs: 200, handshakeTimeoutMs: 1000, ...syncOptions, replica, peers });
    const node: TestNode = { id: spec.id, region: spec.region, replica, sync, server: servers[i]!, port: ports[i]! };
    // Through the node object, so a test can replace a node's SyncNode (a restart of replication).
    servers[i]!.on('upgrade', (req, socket, head) => node.sync.handleUpgrade(req, socket, head));
    nodes.push(node);
  }
  for (const node of nodes) node.sync.start();
  t.teardown(async () => {
    for (const node of nodes) {
      await node.sync.close();
      await node.replica.close();
      node.server.closeAllConnections();
      await new Promise((resolve) => node.server.close(resolve));
    }
    await rm(dir, { recursive: true, force: true });
  });
  return nodes;
}

/** Polls `check` every 20 ms until it is true or `timeoutMs` passes; returns whether it became true. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return check();
}
