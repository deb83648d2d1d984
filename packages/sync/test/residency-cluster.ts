/**
 * Test helper for the residency regressions: in-process nodes (a replica on LevelDB in a temp directory, a
 * SyncNode, an HTTP server for the peer endpoint) on loopback, each knowing every node's region and opened
 * under one policy, with per-node wall-clock offsets (to order concurrent creations) and replication that a
 * test pauses and resumes per node (to make writes concurrent). Only the public API is used, so the same
 * tests run against earlier versions of Tessera.
 */
import { createServer, type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicy } from '@tessera/core';
import { Replica } from '@tessera/store';
import { type PeerConfig, type SyncOptions, SyncNode } from '@tessera/sync';
import { eventually, secret } from './cluster.js';

/** One node of a residency test cluster. */
export interface RNode {
  readonly id: string;
  readonly region: string;
  replica: Replica;
  sync: SyncNode | null;
  /** Milliseconds added to the wall clock (the HLC reads it). */
  offsetMs: number;
  /** Stops the node's replication (its links close; writes stay local). */
  pause(): Promise<void>;
  /** Starts a fresh SyncNode for the node. */
  resume(): void;
}

/** Starts nodes with `policy` (YAML); replication runs unless `paused`. */
export async function openCluster(
  t: { teardown(fn: () => unknown): void },
  specs: ReadonlyArray<{ id: string; region: string; offsetMs?: number }>,
  policy: string,
  options: Partial<Omit<SyncOptions, 'replica' | 'peers'>> & {
    paused?: boolean;
    /** Pairs of nodes whose link never connects (each reports the other down: third nodes forward between them). */
    cut?: ReadonlyArray<readonly [string, string]>;
  } = {},
): Promise<RNode[]> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-residency-'));
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
  const { cut = [], paused, ...syncOptions } = options;
  const isCut = (a: string, b: string) => cut.some(([x, y]) => (x === a && y === b) || (x === b && y === a));
  // A cut link dials a port nothing listens on (port 1 is refused on loopback).
  const peersOf = (self: string): PeerConfig[] =>
    specs.map((spec, i) => ({
      node: spec.id,
      region: spec.region,
      url: `ws://127.0.0.1:${isCut(self, spec.id) ? 1 : ports[i]}/v1/replicate`,
    }));
  const nodes: RNode[] = [];
  for (const [i, spec] of specs.entries()) {
    const node: RNode = {
      id: spec.id,
      region: spec.region,
      offsetMs: spec.offsetMs ?? 0,
      sync: null,
      replica: undefined as unknown as Replica,
      async pause() {
        const sync = node.sync;
        node.sync = null;
        await sync?.close();
      },
      resume() {
        node.sync = new SyncNode({
          cluster: 'test',
          secret,
          pingIntervalMs: 100,
          handshakeTimeoutMs: 1_000,
          retentionIntervalMs: 100,
          deniedAuditIntervalMs: 1_000,
          // The wall-clock offsets order concurrent creations on purpose: the handshake's offset bound is opened.
          clockOffsetMsMax: 3_600_000,
          wallClock: () => Date.now() + node.offsetMs,
          ...syncOptions,
          replica: node.replica,
          peers: peersOf(node.id),
        });
        node.sync.start();
      },
    };
    node.replica = await Replica.open({
      path: join(dir, spec.id),
      node: spec.id,
      region: spec.region,
      durability: 'os',
      peers: specs.map(({ id, region }) => ({ node: id, region })),
      wallClock: () => Date.now() + node.offsetMs,
      policy: parsePolicy(policy, 'test policy'),
    });
    servers[i]!.on('upgrade', (req, socket, head) => {
      if (node.sync === null) socket.destroy();
      else node.sync.handleUpgrade(req, socket, head);
    });
    nodes.push(node);
  }
  if (paused !== true) for (const node of nodes) node.resume();
  t.teardown(async () => {
    for (const node of nodes) {
      await node.pause();
      await node.replica.close();
    }
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    await rm(dir, { recursive: true, force: true });
  });
  return nodes;
}

/**
 * Waits until replication is quiet: every link open, every node's log acknowledged by every peer, no copy
 * kept for a handover — twice in a row, a few retention intervals apart. Returns whether it got there.
 */
export async function quiet(nodes: readonly RNode[], timeoutMs = 20_000): Promise<boolean> {
  const settled = async () => {
    for (const node of nodes) {
      if (node.sync === null) return false;
      const { links } = node.sync.status();
      if (links.some((link) => link.state !== 'open' || link.backlogEntries > 0 || link.inflightBatches > 0)) return false;
      if ((await node.replica.pendingHandovers()) > 0) return false;
    }
    return true;
  };
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await settled()) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      if (await settled()) return true;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

/** A document's copy at every node, as users read it (undefined: none). */
export async function copies(nodes: readonly RNode[], dataset: string, key: string) {
  return Object.fromEntries(await Promise.all(nodes.map(async (node) => [node.id, await node.replica.get(dataset, key)] as const)));
}

export { eventually };
