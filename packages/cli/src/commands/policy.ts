/**
 * `tessera policy validate|plan|apply|history`: check a policy file, see what it would change, roll it out
 * (shadow first, then enforce) and list the versions a node stores.
 *
 * Plan and apply talk to every node named with `--url` (repeatable) or listed in `--config` (the cluster
 * config): each node judges its own data. Nodes the command cannot reach get an enforced version from their
 * peers when they reconnect (the handshake announces versions; a newer one is sent across).
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { type Command } from 'commander';
import {
  type Policy,
  type PolicySignature,
  TesseraError,
  formatDurationMs,
  formatPolicySignature,
  parseDurationMs,
  parsePolicy,
  parsePolicySignature,
  policyBytesMax,
  signPolicy,
} from '@tessera/core';
import { checkPrivateFilePath, formatHostPort, loadClusterConfig } from '@tessera/server';
import { policyHash } from '@tessera/store';
import { type NodeApi, callApi, parseBaseUrl } from '../client.js';
import { type ConnectionOptions, addConnectionOptions, addTokenOptions, nodeApiOf, tokenOf, urlDefault, urlOf } from '../options.js';
import { table } from './status.js';

/** Nodes one plan or apply talks to. */
export const policyNodesMax = 64;
/** How long `apply` keeps a version in shadow mode before enforcing it, at most. */
export const shadowMsMax = 3_600_000;

/** Reads and parses a policy file (bounded), with errors that name the file, line and column. */
export async function readPolicyFile(path: string): Promise<Policy> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (error) {
    throw new TesseraError('ERR_POLICY_INVALID', `${path}: cannot read the policy file: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (size > policyBytesMax) throw new TesseraError('ERR_POLICY_INVALID', `${path}: ${size} bytes exceed the limit of ${policyBytesMax} bytes for a policy`);
  return parsePolicy(await readFile(path, 'utf8'), path);
}

/** Reads the signature of a policy file: `--signature`, or `<file>.sig` next to it. */
async function readSignature(file: string, given: string | undefined): Promise<PolicySignature> {
  const path = given ?? `${file}.sig`;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new TesseraError(
      'ERR_POLICY_SIGNATURE_INVALID',
      `${path}: no signature of ${file}: sign it first (tessera policy sign ${file} --key operator.key --config cluster.yaml)`,
    );
  }
  return parsePolicySignature(text);
}

/** Writes an Ed25519 operator key pair: `<prefix>.key` (0600, never on a data node) and `<prefix>.pub`. */
export async function writeOperatorKeys(prefix: string): Promise<{ keyPath: string; publicPath: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const keyPath = `${prefix}.key`;
  const publicPath = `${prefix}.pub`;
  await writeFile(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600, flag: 'wx' });
  await writeFile(publicPath, publicKey.export({ type: 'spki', format: 'pem' }) as string, { mode: 0o644, flag: 'wx' });
  return { keyPath, publicPath };
}

/** Signs a policy file with the operator key; returns the signature document's text. */
export async function signPolicyFile(file: string, keyPath: string, cluster: string, replaces: string | undefined): Promise<string> {
  const parsed = await readPolicyFile(file);
  checkPrivateFilePath(keyPath, 'operator key');
  const key = createPrivateKey(await readFile(keyPath, 'utf8'));
  let replaced: { version: number; hash: string } | null = null;
  if (replaces !== undefined) {
    const match = /^([0-9]{1,15}):([0-9a-f]{64})$/.exec(replaces);
    if (match === null)
      throw new TesseraError(
        'ERR_OPTION_INVALID',
        `--replaces ${JSON.stringify(replaces).slice(0, 100)} must be <version>:<64-hex content hash> (tessera policy history shows them)`,
      );
    replaced = { version: Number(match[1]), hash: match[2]! };
  }
  return formatPolicySignature(signPolicy(parsed, cluster, key, replaced));
}

interface Target {
  readonly url: NodeApi;
  readonly name: string;
}

/** Options of the commands that talk to several nodes. */
type TargetOptions = Omit<ConnectionOptions, 'url'> & { url?: string[]; config?: string };

/** The nodes to talk to: `--url` values, or every node of `--config`, else `$TESSERA_URL`; each with the token. */
async function targetsOf(options: TargetOptions): Promise<Target[]> {
  if (options.config !== undefined && options.url !== undefined) throw new TesseraError('ERR_OPTION_INVALID', 'give either --url or --config, not both');
  const token = await tokenOf(options);
  let targets: Target[];
  if (options.config !== undefined) {
    const config = await loadClusterConfig(options.config);
    targets = config.nodes.map((node) => ({
      url: { base: parseBaseUrl(`${node.tls === null ? 'http' : 'https'}://${formatHostPort(node.listen)}`), token },
      name: node.id,
    }));
  } else {
    targets = (options.url ?? [urlOf({})]).map((url) => ({ url: { base: parseBaseUrl(url), token }, name: url }));
  }
  if (targets.length > policyNodesMax) throw new TesseraError('ERR_OPTION_INVALID', `${targets.length} nodes exceed the limit of ${policyNodesMax}`);
  return targets;
}

interface Report {
  version: number;
  region: string;
  documents: number;
  datasets: Record<string, { held: number; purge: number; start: Record<string, number> }>;
}

/** One line per region and dataset: held here, purged here, and where documents start replicating. */
function reportRows(reports: ReadonlyArray<{ node: string; report: Report }>): string[][] {
  const rows: string[][] = [];
  for (const { node, report } of reports) {
    for (const [dataset, counts] of Object.entries(report.datasets).sort(([a], [b]) => (a < b ? -1 : 1))) {
      const start = Object.entries(counts.start)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([region, n]) => `${region} +${n}`)
        .join(', ');
      rows.push([report.region, node, dataset, String(counts.held), String(counts.purge), start === '' ? '-' : start]);
    }
    if (Object.keys(report.datasets).length === 0) rows.push([report.region, node, '(no documents)', '0', '0', '-']);
  }
  return rows;
}

const reportHeader = ['region', 'node', 'dataset', 'held', 'purge here', 'start replicating to'];

function describePlacement(
  placement: Policy['datasets'] extends ReadonlyMap<string, infer D> ? (D extends { placement: infer P } ? P : never) : never,
): string {
  const p = placement as { kind: string; regions?: readonly string[]; home?: string; within?: unknown };
  switch (p.kind) {
    case 'regions':
      return `regions ${p.regions!.join(', ')}`;
    case 'home':
      return `home ${p.home}${p.within === null ? '' : ` within ${Array.isArray(p.within) ? p.within.join(', ') : String(p.within)}`}`;
    default:
      return p.kind;
  }
}

/** Registers `policy` and its subcommands. */
export function registerPolicyCommands(program: Command, print: (line: string) => void): void {
  const policy = program.command('policy').description('validate, plan, apply and list replication policies');

  policy
    .command('validate')
    .description('check a policy file (YAML or JSON): every problem with its line and column; CEL rules type-checked')
    .argument('<file>')
    .option('--json', 'print the normalised policy as JSON')
    .action(async (file: string, options: { json?: boolean }) => {
      const parsed = await readPolicyFile(file);
      if (options.json) {
        print(JSON.stringify({ version: parsed.version, hash: policyHash(parsed), policy: JSON.parse(parsed.canonical) }, null, 2));
        return;
      }
      print(`${file}: policy version ${parsed.version} is valid (content hash ${policyHash(parsed).slice(0, 16)})`);
      print(
        table(
          ['region', 'jurisdiction', 'location'],
          [...parsed.regions.values()].map((r) => [r.name, r.jurisdiction, r.location === null ? '-' : r.location.join(', ')]),
        ),
      );
      print('');
      print(
        table(
          ['dataset', 'type', 'placement', 'priority', 'cadence'],
          [...parsed.datasets.values()].map((d) => [
            d.name,
            d.type,
            describePlacement(d.placement),
            d.priority,
            d.cadenceMs === null ? 'adaptive' : formatDurationMs(d.cadenceMs),
          ]),
        ),
      );
      if (parsed.rules.length > 0) {
        print('');
        print(
          table(
            ['rule', 'effect', 'expression'],
            parsed.rules.map((r) => [r.name, r.effect, r.expression]),
          ),
        );
      }
    });

  addTokenOptions(
    policy
      .command('plan')
      .description('dry run: per region, how many documents per dataset would start replicating and how many would be purged')
      .argument('<file>')
      .option('--url <url...>', `node APIs to ask, each judging its own data (default: $TESSERA_URL, else ${urlDefault})`),
  )
    .option('--config <file>', 'ask every node of this cluster config')
    .option('--json', 'print the reports as JSON')
    .action(async (file: string, options: TargetOptions & { json?: boolean }) => {
      const parsed = await readPolicyFile(file);
      const targets = await targetsOf(options);
      const reports: Array<{ node: string; report: Report }> = [];
      for (const target of targets) {
        if (!options.json) print(`planning on ${target.name} …`);
        const answer = (await callApi(target.url, 'POST', '/v1/policy', { text: parsed.text, mode: 'plan' }, 120_000)) as { report: Report };
        reports.push({ node: target.name, report: answer.report });
      }
      if (options.json) print(JSON.stringify({ version: parsed.version, hash: policyHash(parsed), reports }, null, 2));
      else {
        print(`plan for policy version ${parsed.version}:`);
        print(table(reportHeader, reportRows(reports)));
      }
    });

  policy
    .command('keygen')
    .description(
      'create the operator key pair that signs policies: <prefix>.key (keep it off every data node) and <prefix>.pub (operatorKey in the cluster config)',
    )
    .option('--out <prefix>', 'file name prefix', 'operator')
    .action(async (options: { out: string }) => {
      const { keyPath, publicPath } = await writeOperatorKeys(options.out);
      print(`created ${keyPath} (0600: keep it on the operator's machine) and ${publicPath} (name it as operatorKey in the cluster config)`);
    });

  policy
    .command('sign')
    .description('sign a policy file with the operator key (writes <file>.sig); --replaces supersedes a bad enforced version')
    .argument('<file>')
    .requiredOption('--key <file>', "the operator's Ed25519 private key")
    .option('--cluster <id>', 'the cluster id the signature is for')
    .option('--config <file>', 'take the cluster id from this cluster config')
    .option('--replaces <version:hash>', 'the enforced version this one replaces (audited; valid only while that version is enforced)')
    .option('--out <file>', 'where to write the signature (default <file>.sig)')
    .action(async (file: string, options: { key: string; cluster?: string; config?: string; replaces?: string; out?: string }) => {
      const cluster = options.cluster ?? (options.config === undefined ? undefined : (await loadClusterConfig(options.config)).cluster);
      if (cluster === undefined) throw new TesseraError('ERR_OPTION_INVALID', 'give --cluster or --config: a signature is for one cluster');
      const out = options.out ?? `${file}.sig`;
      await writeFile(out, await signPolicyFile(file, options.key, cluster, options.replaces));
      print(`signed ${file} for cluster ${cluster}: ${out}`);
    });

  addTokenOptions(
    policy
      .command('apply')
      .description('roll a policy out: shadow mode on every node, then enforce (stored data is re-judged: backfills and purges)')
      .argument('<file>')
      .option('--url <url...>', `node APIs to apply it on (default: $TESSERA_URL, else ${urlDefault})`),
  )
    .option('--config <file>', 'apply it on every node of this cluster config')
    .option('--shadow-for <duration>', 'how long to keep the version in shadow mode before enforcing (e.g. 30s)', '0s')
    .option('--shadow-only', 'stop after shadow mode (enforce later with another apply)')
    .option('--signature <file>', "the operator's signature of the policy (default <file>.sig, from tessera policy sign)")
    .action(async (file: string, options: TargetOptions & { shadowFor: string; shadowOnly?: boolean; signature?: string }) => {
      const shadowMs = parseDuration(options.shadowFor);
      const parsed = await readPolicyFile(file);
      const signature = await readSignature(file, options.signature);
      const targets = await targetsOf(options);
      const unreachable: string[] = [];
      for (const target of targets) {
        try {
          await callApi(target.url, 'POST', '/v1/policy', { text: parsed.text, mode: 'shadow', signature }, 60_000);
          print(`shadow: ${target.name} judges version ${parsed.version} alongside its enforced policy`);
        } catch (error) {
          if ((error as { status?: number }).status !== undefined) throw error;
          unreachable.push(target.name);
          print(`shadow: ${target.name} is unreachable (${(error as Error).message}); it gets the version from its peers`);
        }
      }
      if (options.shadowOnly) return;
      if (shadowMs > 0) {
        print(`waiting ${options.shadowFor} in shadow mode …`);
        await new Promise((resolve) => setTimeout(resolve, shadowMs));
      }
      const reports: Array<{ node: string; report: Report }> = [];
      for (const target of targets) {
        if (unreachable.includes(target.name)) continue;
        const answer = (await callApi(target.url, 'POST', '/v1/policy', { text: parsed.text, mode: 'enforce', signature }, 600_000)) as {
          changed: boolean;
          report: Report | null;
        };
        print(`enforce: ${target.name} ${answer.changed ? 'enforces' : 'already enforced'} version ${parsed.version}`);
        if (answer.report !== null) reports.push({ node: target.name, report: answer.report });
      }
      if (reports.length > 0) print(table(reportHeader, reportRows(reports)));
    });

  addConnectionOptions(policy.command('history').description('the policy versions a node stores, with their content hashes'))
    .option('--json', 'print as JSON')
    .action(async (options: ConnectionOptions & { json?: boolean }) => {
      const { history } = (await callApi(await nodeApiOf(options), 'GET', '/v1/policy/history')) as {
        history: Array<{ version: number; hash: string; storedAtMs: number; source: string; state: string }>;
      };
      if (options.json) print(JSON.stringify(history, null, 2));
      else
        print(
          table(
            ['version', 'state', 'hash', 'stored', 'source'],
            history.map((h) => [String(h.version), h.state, h.hash.slice(0, 16), new Date(h.storedAtMs).toISOString(), h.source]),
          ),
        );
    });
}

function parseDuration(text: string): number {
  const ms = parseDurationMs(text);
  if (ms === null || ms > shadowMsMax)
    throw new TesseraError('ERR_OPTION_INVALID', `--shadow-for ${JSON.stringify(text)} must be a duration like 30s or 5m, at most 1h`);
  return ms;
}
