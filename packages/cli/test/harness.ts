/** Test harness: a cluster of real `tessera serve` processes on loopback, every link through a FaultProxy. */
import { type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DevLayout, type DevNode, prepareDevCluster, spawnNode, stopChild, waitReady } from '@tessera/cli';
import { caFetch } from '@tessera/server';

/** True if every port can be bound on loopback right now. */
async function portsFree(ports: readonly number[]): Promise<boolean> {
  for (const port of ports) {
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (!free) return false;
  }
  return true;
}

/**
 * A base port whose node ports (base+1…) and proxy ports (base+101…) are free: test files run in parallel,
 * and ephemeral client ports come and go, so a fixed or pid-derived range can collide.
 */
export async function freeBasePort(regions: number): Promise<number> {
  const proxies = (regions * (regions - 1)) / 2;
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 21_000 + 100 * Math.floor(Math.random() * 90) * 2;
    const ports = [...Array.from({ length: regions }, (_, i) => base + 1 + i), ...Array.from({ length: proxies }, (_, i) => base + 101 + i)];
    if (await portsFree(ports)) return base;
  }
  throw new Error('no free block of ports found for a test cluster');
}

/**
 * The policy of test clusters that do not bring their own: the dev cluster's datasets and types, all global
 * (the tests of replication itself are not about residency).
 */
export function globalPolicyText(regions: readonly string[]): string {
  return [
    'version: 1',
    'regions:',
    ...regions.map((region) => `  ${region}: { jurisdiction: ${region.split('-')[0]} }`),
    'datasets:',
    '  profiles: { type: map, placement: global }',
    '  catalog:  { type: map, placement: global, priority: high }',
    '  visits:   { type: counter, placement: global }',
    '  carts:    { type: set, placement: global }',
    '  notes:    { type: yjs, placement: global }',
    '',
  ].join('\n');
}

/** A running test cluster. */
export interface TestCluster {
  readonly layout: DevLayout;
  readonly nodes: readonly DevNode[];
  readonly children: Map<string, ChildProcess>;
  /** SIGKILLs a node's process; resolves once it is gone. */
  kill9(node: DevNode): Promise<void>;
  /** Starts a node's process again and waits until it is ready. */
  restart(node: DevNode): Promise<void>;
  /** The proxies on the links that `node` takes part in. */
  proxiesOf(node: DevNode): ReturnType<DevLayout['proxies']['get']>[];
}

/** Starts a cluster; it is stopped and removed when the test ends. */
export async function startTestCluster(
  t: { teardown(fn: () => unknown): void; fail(message: string): void },
  regions: string[],
  latencyMs = 20,
  options: Pick<Parameters<typeof prepareDevCluster>[0], 'policyText' | 'onData' | 'replication' | 'sealed'> & {
    /** The environment of a node's process (default: the test's own). */
    envOf?: (node: DevNode, dir: string) => NodeJS.ProcessEnv;
  } = {},
): Promise<TestCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-cluster-'));
  const basePort = await freeBasePort(regions.length);
  const { envOf, ...layoutOptions } = options;
  const layout = await prepareDevCluster({ regions, dir, basePort, latencyMs, durability: 'os', policyText: globalPolicyText(regions), ...layoutOptions });
  // The cluster runs secure (HTTPS, tokens): the CLI in this process and `api` below use its admin token and CA.
  process.env.TESSERA_TOKEN = layout.security.token;
  process.env.TESSERA_CA = layout.security.caFile;
  clusterFetch.set(layout.security.token, { fetch: caFetch(await readFile(layout.security.caFile, 'utf8')), token: layout.security.token });
  for (const node of layout.nodes) nodeAuth.set(node.url, layout.security.token);
  const children = new Map<string, ChildProcess>();
  const start = async (node: DevNode) => {
    const child = spawnNode(layout, node, 'pipe', envOf?.(node, dir));
    let stderr = '';
    child.stdout?.resume();
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
    // A daemon that dies on its own is a bug: fail loudly with what it said.
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL' && signal !== 'SIGTERM' && code !== 0) {
        (t as { fail?: (message: string) => void }).fail?.(`${node.id} exited (code ${code}, signal ${signal}): ${stderr}`);
      }
    });
    children.set(node.id, child);
    await waitReady(node, child, undefined, () => stderr.slice(-500), layout.api(node));
  };
  t.teardown(async () => {
    await Promise.all([...children.values()].map((child) => stopChild(child, 5_000)));
    await layout.close();
    await rm(dir, { recursive: true, force: true });
  });
  await Promise.all(layout.nodes.map(start));
  return {
    layout,
    nodes: layout.nodes,
    children,
    kill9: async (node) => {
      const child = children.get(node.id)!;
      if (child.exitCode !== null || child.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      });
    },
    restart: start,
    proxiesOf: (node) => [...layout.proxies.entries()].filter(([name]) => name.split('>').includes(node.id)).map(([, proxy]) => proxy),
  };
}

/** The fetch (trusting the cluster CA) and admin token of each running test cluster, by token. */
const clusterFetch = new Map<string, { fetch: typeof fetch; token: string }>();
/** Which cluster's token a node URL belongs to. */
const nodeAuth = new Map<string, string>();

/** Calls a node's API with the cluster's admin token; returns status and JSON body. */
export async function api(node: DevNode, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const cluster = clusterFetch.get(nodeAuth.get(node.url) ?? '');
  const response = await (cluster?.fetch ?? fetch)(new URL(path, node.url), {
    method,
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(cluster === undefined ? {} : { authorization: `Bearer ${cluster.token}` }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? null : JSON.parse(text) };
}

/** Polls until `check` holds or `timeoutMs` passes. */
export async function eventually(check: () => Promise<boolean>, timeoutMs: number, intervalMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return true;
    } catch {
      // A node restarting or a link down: keep polling until the deadline.
    }
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Every document of a dataset on a node, as key → value (paging through the list API). */
export async function dump(node: DevNode, dataset: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  let cursor: string | null = null;
  do {
    const query: string = `?limit=1000${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
    const { status, body } = await api(node, 'GET', `/v1/kv/${dataset}${query}`);
    if (status !== 200) throw new Error(`list ${dataset} on ${node.id}: ${status}`);
    for (const item of body.items) out[item.key] = item.value;
    cursor = body.cursor;
  } while (cursor !== null);
  return out;
}

/** Every node's links, one line each, for failure messages. */
export async function linkReport(nodes: readonly DevNode[]): Promise<string> {
  const lines: string[] = [];
  for (const node of nodes) {
    try {
      const { body } = await api(node, 'GET', '/v1/status');
      for (const l of body.links)
        lines.push(
          `${node.id}>${l.peer}: ${l.state} cursor=${l.cursor} head=${l.head} backlog=${l.backlogEntries} inflight=${l.inflightBatches} sent=${l.sent.entries} recv=${l.received.entries}/${l.received.applied} err=${l.lastError}`,
        );
    } catch (error) {
      lines.push(`${node.id}: status failed: ${(error as Error).message}`);
    }
  }
  return lines.join('\n');
}
