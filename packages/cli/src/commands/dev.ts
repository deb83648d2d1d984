/**
 * `tessera dev`: a local multi-region cluster on loopback. Each region is a separate `tessera serve` process;
 * each replication link goes through a fault-injecting TCP proxy with WAN-like latency derived from the
 * distance between the regions. Seeds demo data, prints the endpoints, and stops everything on Ctrl-C — and on
 * any failure: a node that dies, a seeding error, or this process dying (the nodes watch a pipe from it).
 *
 * Each set of regions gets its own folder under `--dir` (`.tessera-dev/eu-west+us-east+ap-south/`): a cluster
 * of other regions never meets the data and policy of another one, and two of them can run side by side.
 */
import { type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { TesseraError, parsePolicy } from '@tessera/core';
import { type DevLayout, type DevNode, type DevShape, prepareDevCluster, seedDemoData, spawnNode, stopChild, waitReady } from '../dev/layout.js';
import { type DevLogLevel, devLogLevels, devLogger, logNodeLine } from '../dev/logs.js';
import { type FaultProxy } from '../proxy.js';
import { type NodeApi } from '../client.js';
import { type DevSecurity } from '../dev/security.js';

/** Lines of a node's output kept to explain its exit. */
export const lastLinesMax = 5;

/** A running dev cluster. */
export interface DevCluster {
  readonly dir: string;
  readonly nodes: readonly DevNode[];
  readonly proxies: ReadonlyMap<string, FaultProxy>;
  /** The CA, admin token and operator key the cluster was made with. */
  readonly security: DevSecurity;
  /** How the CLI reaches a node: its URL with the admin token and the cluster CA. */
  api(node: DevNode): NodeApi;
  /** Resolves with the first node that exits on its own, and how. */
  readonly exited: Promise<{ node: DevNode; code: number | null; signal: string | null; lastLines: readonly string[] }>;
  /** Stops every node and proxy (idempotent). */
  stop(): Promise<void>;
}

/** Options of `startDevCluster`. */
export interface DevOptions extends DevShape {
  /** Receives every line a node prints. */
  readonly onNodeLine?: (node: DevNode, line: string, stream: 'stdout' | 'stderr') => void;
}

/** The folder of a set of regions under `--dir`. */
export function devClusterDir(dir: string, regions: readonly string[]): string {
  return join(resolve(dir), regions.join('+'));
}

/**
 * Checks a policy file the user may have edited against the regions asked for: every region must be in it.
 * Absent is fine (it is written at start).
 */
export async function checkDevPolicy(file: string, regions: readonly string[]): Promise<void> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  const policy = parsePolicy(text, file);
  const missing = regions.filter((region) => !policy.regions.has(region));
  if (missing.length > 0) {
    throw new TesseraError(
      'ERR_POLICY_INVALID',
      `${file} (version ${policy.version}) has no region ${missing.join(', ')}, which --regions asks for: add ${missing.length === 1 ? 'it' : 'them'} ` +
        `with a higher version, or remove the file to start from the default policy`,
    );
  }
}

/** Starts a dev cluster and resolves once every node is ready; on any failure, stops what it started. */
export async function startDevCluster(options: DevOptions): Promise<DevCluster> {
  const layout: DevLayout = await prepareDevCluster(options);
  const children: ChildProcess[] = [];
  const lastLines = new Map<string, string[]>();
  let stopping = false;
  let reportExit: (exit: Awaited<DevCluster['exited']>) => void = () => {};
  const exited = new Promise<Awaited<DevCluster['exited']>>((resolveExit) => (reportExit = resolveExit));
  let stopped: Promise<void> | null = null;
  const stop = () => {
    stopping = true;
    stopped ??= (async () => {
      await Promise.all(children.map((child) => stopChild(child)));
      await layout.close();
    })();
    return stopped;
  };
  try {
    for (const node of layout.nodes) {
      const child = spawnNode(layout, node, 'pipe');
      lastLines.set(node.id, []);
      for (const [stream, name] of [
        [child.stdout, 'stdout'],
        [child.stderr, 'stderr'],
      ] as const) {
        stream?.setEncoding('utf8');
        let partial = '';
        stream?.on('data', (chunk: string) => {
          const lines = (partial + chunk).split('\n');
          partial = lines.pop()!;
          for (const line of lines) {
            if (line.trim() === '') continue;
            const kept = lastLines.get(node.id)!;
            kept.push(line);
            if (kept.length > lastLinesMax) kept.shift();
            options.onNodeLine?.(node, line, name);
          }
        });
      }
      child.on('exit', (code, signal) => {
        if (!stopping) reportExit({ node, code, signal, lastLines: [...lastLines.get(node.id)!] });
      });
      children.push(child);
    }
    for (const [i, node] of layout.nodes.entries()) await waitReady(node, children[i]!, undefined, () => lastLines.get(node.id)!.join(' | '), layout.api(node));
  } catch (error) {
    await stop();
    throw error;
  }
  return { dir: layout.dir, nodes: layout.nodes, proxies: layout.proxies, security: layout.security, api: layout.api, exited, stop };
}

function parseOptions(options: { regions: string; basePort: string; latency?: string; durability: string; logLevel?: string; verbose?: boolean }) {
  const regions = options.regions
    .split(',')
    .map((r) => r.trim())
    .filter((r) => r !== '');
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
  const logLevel: DevLogLevel = (options.logLevel as DevLogLevel | undefined) ?? (options.verbose ? 'info' : 'warn');
  return { regions, basePort, latencyMs, durability: options.durability as 'fsync' | 'os', logLevel };
}

/** Registers `dev`. */
export function registerDevCommand(program: Command, print: (line: string) => void): void {
  program
    .command('dev')
    .description('start a local multi-region cluster: one process per region, WAN latency through proxies, demo data')
    .option('--regions <list>', 'comma-separated regions', 'eu-west,us-east,ap-south')
    .option('--dir <path>', 'where clusters keep their configs, policy and data (one folder per set of regions)', '.tessera-dev')
    .option('--base-port <port>', 'node i listens on base+i, proxies from base+101', '7100')
    .option('--latency <ms>', "one-way latency of every link in ms (default: from the regions' distance)")
    .option('--durability <mode>', 'fsync or os', 'os')
    .option('--no-seed', 'do not write demo data')
    .option('--verbose', "log the nodes' lifecycle and link events too (default: warnings and errors)")
    .addOption(new Option('--log-level <level>', "log level of the nodes' events").choices(devLogLevels))
    .action(
      async (raw: {
        regions: string;
        dir: string;
        basePort: string;
        latency?: string;
        durability: string;
        seed: boolean;
        verbose?: boolean;
        logLevel?: string;
      }) => {
        const options = parseOptions(raw);
        const dir = devClusterDir(raw.dir, options.regions);
        const policyFile = join(dir, 'policy.yaml');
        await checkDevPolicy(policyFile, options.regions);
        const logger = devLogger(options.logLevel, process.stderr);
        // Ctrl-C during start-up stops what started (once it has), as after it.
        let interrupted = false;
        let signalled: () => void = () => {};
        const signal = new Promise<'signal'>(
          (resolveSignal) =>
            (signalled = () => {
              interrupted = true;
              resolveSignal('signal');
            }),
        );
        process.once('SIGINT', signalled);
        process.once('SIGTERM', signalled);
        print(`starting ${options.regions.length} regions in ${dir} …`);
        const cluster = await startDevCluster({
          ...options,
          dir,
          onNodeLine: (node, line, stream) => logNodeLine(logger, node.id, line, stream),
        });
        try {
          if (raw.seed && !interrupted) await seedDemoData(cluster.nodes, cluster.api);
          if (interrupted) return;
          print('');
          print('Tessera dev cluster is up (HTTPS; every call needs a token):');
          for (const node of cluster.nodes) print(`  ${node.region.padEnd(12)} ${node.id.padEnd(14)} ${node.url}   (tessera status --url ${node.url})`);
          for (const [name, proxy] of cluster.proxies) print(`  link ${name.padEnd(28)} via proxy 127.0.0.1:${proxy.port}`);
          print('Use the CLI with the admin token and the cluster CA it generated:');
          print(`  export TESSERA_TOKEN=$(cat ${cluster.security.tokenFile}) TESSERA_CA=${cluster.security.caFile}`);
          print(
            `Try: npx tessera put catalog lamp '{"name":"Lamp"}' --url ${cluster.nodes[0]!.url}   then   npx tessera get catalog lamp --url ${cluster.nodes.at(-1)!.url}`,
          );
          print(
            `Dashboard: ${cluster.nodes[0]!.url}/#token=$(cat ${cluster.security.tokenFile})   (trust ${cluster.security.caFile} in your browser, or accept its warning)`,
          );
          print(`More tokens: npx tessera token create --file ${cluster.security.tokensFile} --name alice --role reader --datasets catalog`);
          print(`The cluster enforces the policy in ${policyFile}: yours to edit (it is never overwritten); sign a new version with`);
          print(`  npx tessera policy sign <file> --key ${cluster.security.operatorKey} --cluster dev   and roll it out with tessera policy apply.`);
          print(
            `Node logs: ${options.logLevel === 'warn' ? 'warnings and errors (--verbose for more)' : `level ${options.logLevel}`}. Ctrl-C stops every node.`,
          );
          const outcome = await Promise.race([signal, cluster.exited]);
          if (outcome !== 'signal') {
            const how = outcome.code === null ? `signal ${outcome.signal}` : `exit code ${outcome.code}`;
            throw new TesseraError(
              'ERR_INTERNAL',
              `${outcome.node.id} exited (${how}); the cluster is stopped. Its last lines: ${outcome.lastLines.join(' | ')}`,
            );
          }
        } finally {
          print('stopping…');
          process.off('SIGINT', signalled);
          process.off('SIGTERM', signalled);
          await cluster.stop();
        }
        print('stopped');
      },
    );
}
