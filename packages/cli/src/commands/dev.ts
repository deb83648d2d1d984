/**
 * `tessera dev`: a local multi-region cluster on loopback. Each region is a separate `tessera serve` process;
 * each replication link goes through a fault-injecting TCP proxy with WAN-like latency derived from the
 * distance between the regions. Seeds demo data, prints the endpoints, and stops everything on Ctrl-C.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Command } from 'commander';
import { TesseraError, checkRegion } from '@tessera/core';
import { FaultProxy, type ProxyDirection, regionLocations, wanLatencyMs } from '../proxy.js';
import { type ApiAuth, callApi } from '../client.js';
import { type DevSecurity, prepareDevSecurity, signDevPolicy } from '../dev-security.js';

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

/** A running dev cluster. */
export interface DevCluster {
  readonly nodes: readonly DevNode[];
  readonly proxies: ReadonlyMap<string, FaultProxy>;
  readonly auth: ApiAuth;
  readonly security: DevSecurity;
  stop(): Promise<void>;
}

/** Options of a dev cluster. */
export interface DevOptions {
  readonly regions: readonly string[];
  readonly dir: string;
  readonly basePort: number;
  /** One-way latency in ms, or null to derive it from the regions' distance. */
  readonly latencyMs: number | null;
  readonly durability: 'fsync' | 'os';
  readonly log: (line: string) => void;
  /** Where each node's output goes (default: inherited, prefixed). */
  readonly quiet?: boolean;
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
  cluster: string, secret: string, nodes: readonly DevNode[], self: DevNode, proxyPort: (from: string, to: string) => number | null, dir: string, durability: string,
  security: DevSecurity,
): string {
  const lines = [
    `cluster: ${cluster}`, `secret: ${yamlString(secret)}`, `policy: ${yamlString(join(dir, 'policy.yaml'))}`,
    `api: { tokensFile: ${yamlString(security.tokensFile)}, open: [health] }`,
    `tls: { ca: ${yamlString(security.caFile)} }`,
    `operatorKey: ${yamlString(security.operatorPublicKey)}`,
    'nodes:',
  ];
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
  /** How the CLI reaches the nodes: the admin token and the cluster CA. */
  readonly auth: ApiAuth;
}

/** Starts the proxies and writes the configs of a dev cluster. */
export async function prepareDevCluster(options: Omit<DevOptions, 'log' | 'quiet'> & {
  secret?: string;
  /** The policy file's text (default: `devPolicyText` of the regions). */
  policyText?: string;
  /** Sees every chunk each link's proxy delivers, with the connection's number (tests record what crossed). */
  onData?: (link: string, direction: ProxyDirection, chunk: Buffer, connection: number) => void;
}): Promise<DevLayout> {
  if (options.regions.length < 1 || options.regions.length > devRegionsMax) {
    throw new TesseraError('ERR_OPTION_INVALID', `--regions: give 1 to ${devRegionsMax} regions, got ${options.regions.length}`);
  }
  for (const region of options.regions) checkRegion(region);
  if (new Set(options.regions).size !== options.regions.length) throw new TesseraError('ERR_OPTION_INVALID', '--regions: a region is listed twice');
  const dir = resolve(options.dir);
  await mkdir(dir, { recursive: true });
  const nodes: DevNode[] = options.regions.map((region, i) => ({ id: `${region}-1`, region, port: options.basePort + 1 + i, url: `https://127.0.0.1:${options.basePort + 1 + i}` }));
  const security = await prepareDevSecurity(dir, 'dev', nodes);
  // A proxy for every dialer → acceptor pair (the lower id dials): each link has its own latency and faults.
  const proxies = new Map<string, FaultProxy>();
  let nextProxyPort = options.basePort + 101;
  try {
    for (const from of nodes) {
      for (const to of nodes) {
        if (from.id >= to.id) continue;
        const latencyMs = options.latencyMs ?? wanLatencyMs(regionLocations[from.region] ?? [0, 0], regionLocations[to.region] ?? [0, 0]);
        const name = `${from.id}>${to.id}`;
        const onData = options.onData;
        proxies.set(name, await FaultProxy.start({
          listenPort: nextProxyPort++, targetHost: '127.0.0.1', targetPort: to.port, latencyMs, name,
          ...(onData === undefined ? {} : { onData: (direction: ProxyDirection, chunk: Buffer, connection: number) => onData(name, direction, chunk, connection) }),
        }));
      }
    }
  } catch (error) {
    await Promise.all([...proxies.values()].map((proxy) => proxy.close()));
    throw error;
  }
  const secret = options.secret ?? randomBytes(32).toString('base64url');
  await writeFile(join(dir, 'policy.yaml'), options.policyText ?? devPolicyText(options.regions));
  await signDevPolicy(security, join(dir, 'policy.yaml'), 'dev');
  const configFiles = new Map<string, string>();
  for (const node of nodes) {
    const file = join(dir, `cluster-${node.id}.yaml`);
    await writeFile(file, configText('dev', secret, nodes, node, (from, to) => proxies.get(`${from}>${to}`)?.port ?? null, dir, options.durability, security), { mode: 0o600 });
    configFiles.set(node.id, file);
  }
  return { dir, nodes, proxies, configFiles, security, auth: { token: security.token, caFile: security.caFile } };
}

/** Spawns `tessera serve` for one node of a layout. */
export function spawnNode(layout: DevLayout, node: DevNode, output: 'ignore' | 'pipe' = 'pipe'): ChildProcess {
  return spawn(process.execPath, [binPath, 'serve', '--config', layout.configFiles.get(node.id)!, '--node', node.id], { stdio: ['ignore', output, output] });
}

/** Resolves once `node` answers /readyz; throws after `timeoutMs` or if `child` exits first. */
export async function waitReady(node: DevNode, child: ChildProcess | null, timeoutMs = devStartTimeoutMs, auth?: ApiAuth): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child !== null && child.exitCode !== null) throw new TesseraError('ERR_OPTION_INVALID', `${node.id} exited during start-up (exit code ${child.exitCode})`);
    try {
      await callApi(new URL(node.url), 'GET', '/readyz', undefined, 1000, auth);
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

/** Starts a dev cluster and resolves once every node is ready. */
export async function startDevCluster(options: DevOptions): Promise<DevCluster> {
  const layout = await prepareDevCluster(options);
  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(children.map((child) => stopChild(child)));
    await Promise.all([...layout.proxies.values()].map((proxy) => proxy.close()));
  };
  try {
    for (const node of layout.nodes) {
      const child = spawnNode(layout, node, options.quiet ? 'ignore' : 'pipe');
      for (const stream of [child.stdout, child.stderr]) {
        stream?.setEncoding('utf8');
        stream?.on('data', (chunk: string) => {
          // Request logs would drown the console; link and lifecycle events stay.
          for (const line of chunk.split('\n')) if (line.trim() !== '' && !line.includes('"event":"http_request"')) options.log(`[${node.id}] ${line}`);
        });
      }
      children.push(child);
    }
    for (const [i, node] of layout.nodes.entries()) await waitReady(node, children[i]!, devStartTimeoutMs, layout.auth);
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes: layout.nodes, proxies: layout.proxies, auth: layout.auth, security: layout.security, stop };
}

/** Writes a little demo data in every region. */
export async function seedDemoData(nodes: readonly DevNode[], auth?: ApiAuth): Promise<void> {
  for (const [i, node] of nodes.entries()) {
    const base = new URL(node.url);
    const timeoutMs = 10_000;
    await callApi(base, 'PUT', `/v1/kv/catalog/item-${i + 1}`, { value: { name: `Item ${i + 1}`, price: 10 * (i + 1), addedIn: node.region } }, timeoutMs, auth);
    await callApi(base, 'PUT', `/v1/kv/profiles/user-${node.region}`, { value: { name: `User in ${node.region}`, home: node.region } }, timeoutMs, auth);
    await callApi(base, 'POST', '/v1/kv/visits/home/ops', { op: 'increment', amount: 10 + i }, timeoutMs, auth);
    await callApi(base, 'POST', '/v1/kv/carts/demo/ops', { op: 'add', element: `item-${i + 1}` }, timeoutMs, auth);
  }
}

/** Registers `dev`. */
export function registerDevCommand(program: Command, print: (line: string) => void): void {
  program.command('dev')
    .description('start a local multi-region cluster: one process per region, WAN latency through proxies, demo data')
    .option('--regions <list>', 'comma-separated regions', 'eu-west,us-east,ap-south')
    .option('--dir <path>', 'where the config and data go', '.tessera-dev')
    .option('--base-port <port>', 'node i listens on base+i, proxies from base+101', '7100')
    .option('--latency <ms>', 'one-way latency of every link in ms (default: from the regions\' distance)')
    .option('--durability <mode>', 'fsync or os', 'os')
    .option('--no-seed', 'do not write demo data')
    .action(async (options: { regions: string; dir: string; basePort: string; latency?: string; durability: string; seed: boolean }) => {
      const basePort = Number(options.basePort);
      if (!Number.isInteger(basePort) || basePort < 1024 || basePort > 65_000 - 200) {
        throw new TesseraError('ERR_OPTION_INVALID', `--base-port ${JSON.stringify(options.basePort)} must be an integer from 1024 to 64800`);
      }
      const latencyMs = options.latency === undefined ? null : Number(options.latency);
      if (latencyMs !== null && (!Number.isFinite(latencyMs) || latencyMs < 0 || latencyMs > 5_000)) {
        throw new TesseraError('ERR_OPTION_INVALID', `--latency ${JSON.stringify(options.latency)} must be 0 to 5000 ms`);
      }
      if (options.durability !== 'fsync' && options.durability !== 'os') {
        throw new TesseraError('ERR_OPTION_INVALID', `--durability ${JSON.stringify(options.durability)} must be fsync or os`);
      }
      const cluster = await startDevCluster({
        regions: options.regions.split(',').map((r) => r.trim()).filter((r) => r !== ''), dir: options.dir, basePort, latencyMs,
        durability: options.durability, log: print,
      });
      if (options.seed) await seedDemoData(cluster.nodes, cluster.auth);
      print('');
      print('Tessera dev cluster is up (HTTPS, every call needs a token):');
      for (const node of cluster.nodes) print(`  ${node.region.padEnd(12)} ${node.id.padEnd(14)} ${node.url}   (tessera status --url ${node.url})`);
      for (const [name, proxy] of cluster.proxies) print(`  link ${name.padEnd(28)} via proxy 127.0.0.1:${proxy.port}`);
      const dir = resolve(options.dir);
      print('Use the CLI with the admin token and the cluster CA it generated:');
      print(`  export TESSERA_TOKEN=$(cat ${cluster.security.tokenFile}) TESSERA_CA=${cluster.security.caFile}`);
      print('Try: npx tessera put catalog lamp \'{"name":"Lamp"}\' --url ' + cluster.nodes[0]!.url + '   then   npx tessera get catalog lamp --url ' + cluster.nodes.at(-1)!.url);
      print(`Dashboard: ${cluster.nodes[0]!.url}/#token=<the admin token> (your browser will ask you to trust ${cluster.security.caFile}, or accept the warning)`);
      print(`More tokens: npx tessera token create --file ${join(dir, 'tokens.json')} --name alice --role reader --datasets catalog`);
      print(`Policies are signed with ${join(dir, 'operator.key')}: npx tessera policy sign <file> --key ${join(dir, 'operator.key')} --cluster dev`);
      print(`The cluster enforces the policy in ${join(resolve(options.dir), 'policy.yaml')} (tessera policy validate|plan|apply).`);
      print('Ctrl-C stops every node.');
      await new Promise<void>((resolveSignal) => {
        const onSignal = () => resolveSignal();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
      });
      print('stopping…');
      await cluster.stop();
      print('stopped');
    });
}
