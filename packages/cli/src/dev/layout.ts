/**
 * A dev cluster's layout on disk and its processes: the policy (written only when absent: after the first
 * start it is the user's), one config per node whose links go through fault-injecting proxies, and the
 * `tessera serve` children, which stop when the process that spawned them dies (they watch their stdin pipe).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TesseraError, checkRegion } from '@tessera/core';
import { FaultProxy, type ProxyDirection, regionLocations, wanLatencyMs } from '../proxy.js';
import { type NodeApi, callApi } from '../client.js';
import { type DevSecurity, prepareDevSecurity, signDevPolicy } from './security.js';
import { type TlsWindow, startTlsWindow } from './tls-window.js';

/** Regions a dev cluster may have. */
export const devRegionsMax = 8;
/** How long to wait for every node to answer /readyz (a start loads the HTTP stack and checks keys and certificates; on a loaded machine that takes a while). */
export const devStartTimeoutMs = 60_000;

/** One node of a dev cluster. */
export interface DevNode {
  readonly id: string;
  readonly region: string;
  readonly port: number;
  readonly url: string;
}

/** The shape of a dev cluster. */
export interface DevShape {
  readonly regions: readonly string[];
  /** The folder of this cluster's configs, policy and data. */
  readonly dir: string;
  readonly basePort: number;
  /** One-way latency in ms, or null to derive it from the regions' distance. */
  readonly latencyMs: number | null;
  readonly durability: 'fsync' | 'os';
}

const binPath = fileURLToPath(new URL('../bin.js', import.meta.url));

function yamlString(value: string): string {
  return JSON.stringify(value);
}

/** A region's jurisdiction for the dev policy: the part before the first dash (`eu-west` → `eu`). */
function jurisdictionOf(region: string): string {
  return region.split('-')[0]!.slice(0, 32);
}

/**
 * The dev cluster's policy: global catalog (high priority), visits, carts and notes; profiles homed in the
 * region that creates them and kept in its jurisdiction; a local audit dataset; `pii` documents stay in their
 * jurisdiction; `reviewed` documents leave quarantine.
 */
export function devPolicyText(regions: readonly string[]): string {
  const lines = ['version: 1', 'regions:'];
  for (const region of regions) {
    const location = regionLocations[region];
    lines.push(`  ${region}: { jurisdiction: ${jurisdictionOf(region)}${location === undefined ? '' : `, location: [${location[0]}, ${location[1]}]`} }`);
  }
  lines.push(
    'datasets:',
    '  catalog:  { type: map, placement: global, priority: high }',
    '  profiles: { type: map, placement: { home: doc.origin, within: jurisdiction } }',
    '  visits:   { type: counter, placement: global }',
    '  carts:    { type: set, placement: global }',
    '  notes:    { type: yjs, placement: global, priority: low }',
    '  audits:   { type: lww, placement: local }',
    'rules:',
    '  - name: pii stays in its jurisdiction',
    '    deny: "\'pii\' in doc.tags && target.jurisdiction != source.jurisdiction"',
    '  - name: reviewed documents leave quarantine',
    '    release: "\'reviewed\' in doc.tags"',
  );
  return `${lines.join('\n')}\n`;
}

/** Writes one config per node: a node dials each peer through the proxy of that link. */
function configText(
  cluster: string,
  secret: string,
  nodes: readonly DevNode[],
  self: DevNode,
  proxyPort: (from: string, to: string) => number | null,
  dir: string,
  durability: string,
  security: DevSecurity,
  replication: { readonly logEntriesMax?: number; readonly retentionIntervalMs?: number; readonly clockOffsetMsMax?: number } = {},
): string {
  const lines = [
    `cluster: ${cluster}`,
    `secret: ${yamlString(secret)}`,
    `policy: ${yamlString(join(dir, 'policy.yaml'))}`,
    `api: { tokensFile: ${yamlString(security.tokensFile)}, open: [health] }`,
    `tls: { ca: ${yamlString(security.caFile)} }`,
    `operatorKey: ${yamlString(security.operatorPublicKey)}`,
    ...(security.masterKeyFile === null ? [] : [`encryption: { masterKeyFile: ${yamlString(security.masterKeyFile)} }`]),
  ];
  const settings = Object.entries(replication).filter(([, value]) => value !== undefined);
  if (settings.length > 0) lines.push('replication:', ...settings.map(([name, value]) => `  ${name}: ${value}`));
  lines.push('nodes:');
  for (const node of nodes) {
    lines.push(`  - id: ${node.id}`, `    region: ${node.region}`, `    listen: 127.0.0.1:${node.port}`);
    const port = proxyPort(self.id, node.id);
    if (node !== self && port !== null) lines.push(`    advertise: 127.0.0.1:${port}`);
    lines.push(`    data: ${yamlString(join(dir, 'data', node.id))}`, `    durability: ${durability}`);
    lines.push(`    cert: ${yamlString(join(security.certsDir, `${node.id}.crt`))}`, `    key: ${yamlString(join(security.certsDir, `${node.id}.key`))}`);
  }
  return `${lines.join('\n')}\n`;
}

/** A prepared cluster: proxies running, one config file per node, nothing spawned yet. */
export interface DevLayout {
  readonly dir: string;
  readonly nodes: readonly DevNode[];
  readonly proxies: ReadonlyMap<string, FaultProxy>;
  readonly configFiles: ReadonlyMap<string, string>;
  /** The CA, admin token and operator key the cluster was made with. */
  readonly security: DevSecurity;
  /** How the CLI reaches a node: its URL with the admin token and the cluster CA. */
  api(node: DevNode): NodeApi;
  /** Closes the proxies (and the TLS windows of a tapped layout). */
  close(): Promise<void>;
}

/** Starts the proxies and writes the configs of a dev cluster. */
export async function prepareDevCluster(
  options: DevShape & {
    secret?: string;
    /** The policy file's text if the folder has none yet (default: `devPolicyText` of the regions). */
    policyText?: string;
    /** Sees every chunk each link's proxy delivers, with the connection's number and how long the proxy held it (tests record what crossed, and when it was sent). */
    onData?: (link: string, direction: ProxyDirection, chunk: Buffer, connection: number, heldMs: number) => void;
    /** The cluster config's `replication:` section (log bound, retention interval, clock offset bound); absent: the daemon's defaults. */
    replication?: { readonly logEntriesMax?: number; readonly retentionIntervalMs?: number; readonly clockOffsetMsMax?: number };
    /** Encryption at rest for a new cluster (default true). The chaos runs turn it off: their disk scan reads plaintext. */
    sealed?: boolean;
  },
): Promise<DevLayout> {
  if (options.regions.length < 1 || options.regions.length > devRegionsMax) {
    throw new TesseraError('ERR_OPTION_INVALID', `--regions: give 1 to ${devRegionsMax} regions, got ${options.regions.length}`);
  }
  for (const region of options.regions) checkRegion(region);
  if (new Set(options.regions).size !== options.regions.length) throw new TesseraError('ERR_OPTION_INVALID', '--regions: a region is listed twice');
  const dir = resolve(options.dir);
  await mkdir(dir, { recursive: true });
  const nodes: DevNode[] = options.regions.map((region, i) => ({
    id: `${region}-1`,
    region,
    port: options.basePort + 1 + i,
    url: `https://127.0.0.1:${options.basePort + 1 + i}`,
  }));
  const security = await prepareDevSecurity(dir, 'dev', nodes, { sealed: options.sealed ?? true });
  // A proxy for every dialer → acceptor pair (the lower id dials): each link has its own latency and faults.
  const proxies = new Map<string, FaultProxy>();
  // With a tap, each link's TLS is ended on both sides of its proxy (tls-window.ts), so the tap reads frames.
  const windows = new Map<string, TlsWindow>();
  const linkPorts = new Map<string, number>();
  const credentials = async (id: string) => ({
    key: await readFile(join(security.certsDir, `${id}.key`), 'utf8'),
    cert: await readFile(join(security.certsDir, `${id}.crt`), 'utf8'),
  });
  let nextProxyPort = options.basePort + 101;
  try {
    for (const from of nodes) {
      for (const to of nodes) {
        if (from.id >= to.id) continue;
        const latencyMs = options.latencyMs ?? wanLatencyMs(regionLocations[from.region] ?? [0, 0], regionLocations[to.region] ?? [0, 0]);
        const name = `${from.id}>${to.id}`;
        const onData = options.onData;
        const port = nextProxyPort++;
        const window =
          onData === undefined
            ? null
            : await startTlsWindow({
                ca: await readFile(security.caFile, 'utf8'),
                dialer: await credentials(from.id),
                acceptor: await credentials(to.id),
                acceptorPort: to.port,
                frontPort: port,
              });
        if (window !== null) windows.set(name, window);
        const proxy = await FaultProxy.start({
          listenPort: window === null ? port : 0,
          targetHost: '127.0.0.1',
          targetPort: window?.backPort ?? to.port,
          latencyMs,
          name,
          ...(onData === undefined
            ? {}
            : { onData: (direction: ProxyDirection, chunk: Buffer, connection: number, heldMs: number) => onData(name, direction, chunk, connection, heldMs) }),
        });
        window?.setProxyPort(proxy.port);
        proxies.set(name, proxy);
        linkPorts.set(name, port);
      }
    }
  } catch (error) {
    await Promise.all([...proxies.values()].map((proxy) => proxy.close()));
    await Promise.all([...windows.values()].map((window) => window.close()));
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    throw new TesseraError(
      'ERR_OPTION_INVALID',
      `--base-port ${options.basePort}: proxy port ${nextProxyPort - 1} is in use (another dev cluster on these ports?): stop it or give another --base-port`,
    );
  }
  const secret = options.secret ?? randomBytes(32).toString('base64url');
  // Written once: later starts keep what the user made of it (a rollout bumps its version).
  await writeIfAbsent(join(dir, 'policy.yaml'), options.policyText ?? devPolicyText(options.regions));
  // Signed at every start with the dev operator key (a real cluster's key stays on its operator's machine).
  await signDevPolicy(security, join(dir, 'policy.yaml'), 'dev');
  const configFiles = new Map<string, string>();
  for (const node of nodes) {
    const file = join(dir, `cluster-${node.id}.yaml`);
    await writeFile(
      file,
      configText('dev', secret, nodes, node, (from, to) => linkPorts.get(`${from}>${to}`) ?? null, dir, options.durability, security, options.replication),
      { mode: 0o600 },
    );
    configFiles.set(node.id, file);
  }
  const api = (node: DevNode): NodeApi => ({ base: new URL(node.url), token: security.token, caFile: security.caFile });
  const close = async () => {
    await Promise.all([...proxies.values()].map((proxy) => proxy.close()));
    await Promise.all([...windows.values()].map((window) => window.close()));
  };
  return { dir, nodes, proxies, configFiles, security, api, close };
}

/** Writes `text` to `file` unless the file exists. */
async function writeIfAbsent(file: string, text: string): Promise<void> {
  try {
    await writeFile(file, text, { flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

/**
 * Spawns `tessera serve` for one node of a layout. Its stdin is a pipe from this process that nothing is
 * written to: when this process dies, even by SIGKILL, the pipe closes and the node drains and stops.
 */
export function spawnNode(layout: DevLayout, node: DevNode, output: 'ignore' | 'pipe' = 'pipe', env?: NodeJS.ProcessEnv): ChildProcess {
  // `env` replaces the inherited environment (tests run a node under libfaketime's LD_PRELOAD for a clock of its own).
  return spawn(process.execPath, [binPath, 'serve', '--config', layout.configFiles.get(node.id)!, '--node', node.id, '--stop-with-stdin'], {
    stdio: ['pipe', output, output],
    ...(env === undefined ? {} : { env }),
  });
}

/**
 * Resolves once `node` answers /readyz; throws after `timeoutMs` or if `child` exits first, with what
 * `lastWords` returns (the node's last lines of output: the reason it gave).
 */
export async function waitReady(
  node: DevNode,
  child: ChildProcess | null,
  timeoutMs = devStartTimeoutMs,
  lastWords: () => string = () => '',
  api: NodeApi = { base: new URL(node.url), token: null },
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child !== null && (child.exitCode !== null || child.signalCode !== null)) {
      const said = lastWords();
      throw new TesseraError(
        'ERR_OPTION_INVALID',
        `${node.id} exited during start-up (${child.exitCode === null ? `signal ${child.signalCode}` : `exit code ${child.exitCode}`})${said === '' ? '' : `: ${said}`}`,
      );
    }
    try {
      await callApi(api, 'GET', '/readyz', undefined, 1000);
      return;
    } catch {
      if (Date.now() > deadline) throw new TesseraError('ERR_OPTION_INVALID', `${node.id} was not ready within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Stops a child with SIGTERM (SIGKILL after `graceMs`); resolves when it exited. */
export function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  return new Promise((resolveExit) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolveExit();
    child.once('exit', () => resolveExit());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), graceMs).unref();
  });
}

/** Writes a little demo data in every region. */
export async function seedDemoData(nodes: readonly DevNode[], apiOf: (node: DevNode) => NodeApi): Promise<void> {
  for (const [i, node] of nodes.entries()) {
    const base = apiOf(node);
    await callApi(base, 'PUT', `/v1/kv/catalog/item-${i + 1}`, { value: { name: `Item ${i + 1}`, price: 10 * (i + 1), addedIn: node.region } });
    await callApi(base, 'PUT', `/v1/kv/profiles/user-${node.region}`, { value: { name: `User in ${node.region}`, home: node.region } });
    await callApi(base, 'POST', '/v1/kv/visits/home/ops', { op: 'increment', amount: 10 + i });
    await callApi(base, 'POST', '/v1/kv/carts/demo/ops', { op: 'add', element: `item-${i + 1}` });
  }
}
