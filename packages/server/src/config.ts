/**
 * The cluster config file: which nodes form the cluster, where each listens and keeps its data, the shared
 * secret that authenticates peers, and the replication policy file (datasets, placement, rules: docs/policy.md).
 *
 * The YAML is walked as a syntax tree (never converted with `toJS`), so every refusal names the file, line and
 * column of the offending node, the field path, the value and the rule:
 *
 *     cluster.yaml:7:13: nodes[1].listen "localhost:99999": port must be 1–65535
 *
 * All problems in a file are reported together (up to `configProblemsMax`), one per line of the message.
 * The resolved secret never appears in `JSON.stringify(config)`, `util.inspect(config)` or a spread copy: it
 * is a getter on the prototype over a private store.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { dirname, resolve } from 'node:path';
import { type Node as YamlNode, type YAMLMap, type YAMLSeq, isMap, isScalar, isSeq } from 'yaml';
import {
  type Policy,
  type YamlDocumentKind,
  type YamlField as Field,
  KiB,
  MiB,
  TesseraError,
  YamlChecker,
  checkNodeId,
  checkRegion,
  parsePolicy,
  parseYamlMap,
  policyBytesMax,
  regionNameLengthMax,
} from '@tessera/core';
import { type Durability } from '@tessera/store';
import { masterKeyFileEnv } from '@tessera/store';
import { checkPrivateFile } from './files.js';
import { secretWeakness } from './secret-strength.js';

/** The config file, in bytes (it lists at most 64 nodes and a bounded number of datasets). */
export const configBytesMax = 1 * MiB;
/** Nodes in one cluster (a full mesh of links: 64 × 63 directed links). */
export const configNodesMax = 64;
/** Problems listed in one `ERR_CONFIG_INVALID` message; the rest are counted. */
export const configProblemsMax = 20;
/** A secret: at least this many characters (about 192 bits when random base64). */
export const secretLengthMin = 32;
/** A secret: at most this many characters. */
export const secretLengthMax = 4_096;
/** A file named by `secretFile`, in bytes. */
export const secretFileBytesMax = 64 * KiB;
/** A path in the config (`data`, `secretFile`), in characters. */
export const configPathLengthMax = 4_096;
/** Cluster ids: `[a-z0-9][a-z0-9._-]*`, at most this many characters. */
export const clusterIdLengthMax = 64;
/**
 * Bounds of `replication.logEntriesMax`, the delta log's size bound in entries (past it the oldest entries go
 * even if a peer has not acknowledged them, and that peer is caught up from document states; unset: SyncNode's
 * default, a million). The floor keeps a log that still carries a burst of writes.
 */
export const logEntriesMaxMin = 10;
export const logEntriesMaxMax = 1_000_000_000;
/** Bounds of `replication.retentionIntervalMs`, how often the log is truncated (unset: SyncNode's default, 5 s). */
export const retentionIntervalMsMin = 100;
export const retentionIntervalMsMax = 3_600_000;
/**
 * Bounds of `replication.clockOffsetMsMax`, how far a peer's wall clock may be from this node's at the handshake
 * (unset: 500 ms, CockroachDB's `--max-offset` default); a peer further off is refused (`ERR_PEER_CLOCK_OFFSET`).
 */
export const clockOffsetMsMaxMin = 1;
export const clockOffsetMsMaxMax = 3_600_000;

const clusterIdPattern = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const zonePattern = /^[a-z][a-z0-9_-]*$/;
const envNamePattern = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const hostnamePattern = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

const topLevelFields = ['cluster', 'secret', 'secretFile', 'secretEnv', 'nodes', 'policy', 'replication', 'api', 'tls', 'operatorKey', 'encryption'] as const;
const encryptionFields = ['masterKeyFile'] as const;
const replicationFields = ['logEntriesMax', 'retentionIntervalMs', 'clockOffsetMsMax'] as const;
const apiFields = ['tokensFile', 'open', 'hosts', 'origins'] as const;
const tlsFields = ['ca'] as const;
/** Routes the config can open without a credential (read-only). */
export const openableRoutes = ['health', 'metrics'] as const;
/** Hosts or origins one `api` list may hold. */
export const apiListMax = 64;
const secretFields = ['secret', 'secretFile', 'secretEnv'] as const;
const nodeFields = ['id', 'region', 'zone', 'listen', 'advertise', 'data', 'durability', 'cert', 'key'] as const;

/** A parsed `host:port`; an IPv6 host is kept without its brackets. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** One node of the cluster, with paths resolved and addresses parsed. */
export interface NodeConfig {
  readonly id: string;
  readonly region: string;
  readonly zone?: string;
  /** Where the daemon binds its HTTP API and peer WebSocket (one port). */
  readonly listen: HostPort;
  /** Where peers dial this node (through a proxy, say); `listen` when the file does not set it. */
  readonly advertise: HostPort;
  /** Absolute data directory. */
  readonly data: string;
  readonly durability: Durability;
  /** The node's TLS certificate and key (absolute paths), or null: then its API is plain HTTP. */
  readonly tls: { readonly cert: string; readonly key: string } | null;
}

/** The `api` section: who may call the HTTP API and from where. */
export interface ApiConfig {
  /** The tokens file (absolute path): hashed API tokens with their roles and grants (`tessera token`). */
  readonly tokensFile: string;
  /** Routes answered without a credential (read-only): `health` (/healthz, /readyz), `metrics`. */
  readonly open: ReadonlySet<(typeof openableRoutes)[number]>;
  /** Host names (without port) accepted in `Host` besides each node's own listen and advertise hosts and loopback. */
  readonly hosts: readonly string[];
  /** Origins (`https://dash.example.com`) allowed besides the node's own. */
  readonly origins: readonly string[];
}

/** Settings of every node's replication (the `replication:` section); an unset field keeps SyncNode's default. */
export interface ReplicationConfig {
  /** The delta log's size bound in entries; lagging peers past it are caught up from document states. */
  readonly logEntriesMax?: number;
  /** How often each node truncates its delta log, in milliseconds. */
  readonly retentionIntervalMs?: number;
  /** How far a peer's wall clock may be from this node's at the handshake, in milliseconds. */
  readonly clockOffsetMsMax?: number;
}

/** Where the secret came from (safe to log: names a file or variable, never the secret). */
export type SecretSource = { readonly kind: 'inline' } | { readonly kind: 'file'; readonly path: string } | { readonly kind: 'env'; readonly name: string };

/** A validated cluster config. */
export interface ClusterConfig {
  /** The file name the config was read from (as given), for messages. */
  readonly source: string;
  readonly cluster: string;
  /** The shared secret's bytes (UTF-8 of the configured text). Not enumerable: logging the config cannot leak it. */
  readonly secret: Buffer;
  readonly secretSource: SecretSource;
  readonly nodes: readonly NodeConfig[];
  /**
   * The replication policy named by `policy:` (parsed and checked: every node's region is declared in it), or
   * null without one: every dataset is then a `map` that may live in every region.
   */
  readonly policy: Policy | null;
  /** The absolute path of the policy file, or null. */
  readonly policyPath: string | null;
  /** Log bound and retention of every node (empty when the file has no `replication:` section). */
  readonly replication: ReplicationConfig;
  /** The `api` section. */
  readonly api: ApiConfig;
  /** The cluster CA certificate (absolute path) when the nodes have certificates, else null. */
  readonly tlsCa: string | null;
  /** The operator's Ed25519 public key file (absolute path) that signs policies, or null: no policy can then be installed through the API. */
  readonly operatorKey: string | null;
  /**
   * The master key file (absolute path) that seals every node's data directory (`encryption.masterKeyFile`, else
   * $TESSERA_MASTER_KEY_FILE), or null: data directories are then not encrypted at rest.
   */
  readonly masterKeyFile: string | null;
}

const secrets = new WeakMap<object, Buffer>();

/** The config object: plain enumerable fields, and the secret behind a prototype getter. */
class ClusterConfigRecord implements ClusterConfig {
  readonly source: string;
  readonly cluster: string;
  readonly secretSource: SecretSource;
  readonly nodes: readonly NodeConfig[];
  readonly policy: Policy | null;
  readonly policyPath: string | null;
  readonly replication: ReplicationConfig;
  readonly api: ApiConfig;
  readonly tlsCa: string | null;
  readonly operatorKey: string | null;
  readonly masterKeyFile: string | null;

  constructor(fields: Omit<ClusterConfig, 'secret'>, secret: Buffer) {
    this.source = fields.source;
    this.cluster = fields.cluster;
    this.secretSource = fields.secretSource;
    this.nodes = fields.nodes;
    this.policy = fields.policy;
    this.policyPath = fields.policyPath;
    this.replication = fields.replication;
    this.api = fields.api;
    this.tlsCa = fields.tlsCa;
    this.operatorKey = fields.operatorKey;
    this.masterKeyFile = fields.masterKeyFile;
    secrets.set(this, secret);
    Object.freeze(this);
  }

  get secret(): Buffer {
    return secrets.get(this)!;
  }
}

/** Formats a `HostPort` as `host:port`, bracketing IPv6 hosts. */
export function formatHostPort(address: HostPort): string {
  return isIPv6(address.host) ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** Throws `ERR_CONFIG_UNKNOWN_NODE` unless `id` names a node of `config`; returns that node. */
export function findNode(config: ClusterConfig, id: string): NodeConfig {
  const node = config.nodes.find((candidate) => candidate.id === id);
  if (node === undefined) {
    throw new TesseraError(
      'ERR_CONFIG_UNKNOWN_NODE',
      `node ${describe(id)} is not in ${config.source} (cluster "${config.cluster}"): the known nodes are ${config.nodes.map((n) => n.id).join(', ')}`,
    );
  }
  return node;
}

/** The other nodes of the cluster: the peers node `id` links to. Throws `ERR_CONFIG_UNKNOWN_NODE`. */
export function peersOf(config: ClusterConfig, id: string): NodeConfig[] {
  findNode(config, id);
  return config.nodes.filter((node) => node.id !== id);
}

/**
 * Reads and validates the config file at `path` (at most `configBytesMax` bytes, UTF-8). Relative `data` and
 * `secretFile` paths resolve against the file's directory; `secretEnv` reads `process.env`.
 * Throws `ERR_CONFIG_INVALID`.
 */
export async function loadClusterConfig(path: string): Promise<ClusterConfig> {
  let bytes: Uint8Array;
  try {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      if (size > configBytesMax) {
        throw new TesseraError('ERR_CONFIG_INVALID', `${path}: ${size} bytes exceed the limit of ${configBytesMax} bytes for a cluster config`);
      }
      // Read one byte past the limit: a file that grew after stat is still caught.
      const buffer = Buffer.alloc(configBytesMax + 1);
      let length = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
        if (bytesRead === 0) break;
        length += bytesRead;
        if (length > configBytesMax) {
          throw new TesseraError('ERR_CONFIG_INVALID', `${path}: more than ${configBytesMax} bytes, the limit for a cluster config`);
        }
      }
      bytes = buffer.subarray(0, length);
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (error instanceof TesseraError) throw error;
    throw new TesseraError('ERR_CONFIG_INVALID', `${path}: cannot read the cluster config: ${ioReason(error)}`, { cause: error });
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (error) {
    throw new TesseraError('ERR_CONFIG_INVALID', `${path}: the cluster config is not valid UTF-8 text`, { cause: error });
  }
  return parseClusterConfig(text, path, process.env);
}

/**
 * Validates the YAML `text` of a cluster config. `source` names the file in messages; relative paths resolve
 * against `options.baseDir`, by default the directory of `source`. A `secretFile` is read here (synchronously,
 * at most `secretFileBytesMax` bytes). Throws `ERR_CONFIG_INVALID` listing every problem found.
 */
export function parseClusterConfig(text: string, source: string, env: NodeJS.ProcessEnv, options: { readonly baseDir?: string } = {}): ClusterConfig {
  const { checker, root: rootMap } = parseYamlMap(text, source, configKind, {
    bytesMax: configBytesMax,
    emptyRule: `the file is empty: expected a map with cluster, nodes and one of ${secretFields.join(', ')}`,
    rootRule: `the file must be a map with the fields ${topLevelFields.join(', ')}`,
    checker: (lines) => new Checker(configKind, source, lines),
  });
  const baseDir = resolve(options.baseDir ?? dirname(resolve(source)));
  const top = checker.fields(rootMap, '', topLevelFields);
  const cluster = checker.string(top.get('cluster'), rootMap, 'cluster', true);
  if (cluster !== undefined && !clusterIdPattern.test(cluster)) {
    checker.add(
      top.get('cluster')!.value,
      'cluster',
      cluster,
      `a cluster id is 1 to ${clusterIdLengthMax} characters [a-z0-9._-], starting with a letter or digit`,
    );
  }
  const secret = readSecret(checker, top, rootMap, baseDir, env);
  const nodes = readNodes(checker, top.get('nodes'), rootMap, baseDir);
  const policy = readPolicy(checker, top.get('policy'), rootMap, baseDir, nodes);
  const replication = readReplication(checker, top.get('replication'));
  const api = readApi(checker, top.get('api'), rootMap, baseDir);
  const tlsCa = readTls(checker, top.get('tls'), rootMap, baseDir, nodes);
  const operatorKey = readPathField(checker, top.get('operatorKey'), rootMap, 'operatorKey', baseDir);
  const masterKeyFile = readEncryption(checker, top.get('encryption'), baseDir) ?? (env[masterKeyFileEnv] ? resolve(env[masterKeyFileEnv]!) : undefined);
  checker.throwIfAny();
  return new ClusterConfigRecord(
    {
      source,
      cluster: cluster!,
      secretSource: secret!.source,
      nodes: Object.freeze(nodes!),
      policy: policy?.policy ?? null,
      policyPath: policy?.path ?? null,
      replication: Object.freeze(replication),
      api: api!,
      tlsCa: tlsCa ?? null,
      operatorKey: operatorKey ?? null,
      masterKeyFile: masterKeyFile ?? null,
    },
    secret!.bytes,
  );
}

// ---------------------------------------------------------------- sections

function readSecret(
  checker: Checker,
  top: Map<string, Field>,
  root: YAMLMap,
  baseDir: string,
  env: NodeJS.ProcessEnv,
): { bytes: Buffer; source: SecretSource } | undefined {
  const present = secretFields.filter((name) => top.has(name)).sort((a, b) => (top.get(a)!.key.range?.[0] ?? 0) - (top.get(b)!.key.range?.[0] ?? 0));
  if (present.length === 0) {
    checker.add(root, '', undefined, `missing the secret: set exactly one of ${secretFields.join(', ')}`);
    return undefined;
  }
  if (present.length > 1) {
    const [first, ...rest] = present;
    for (const name of rest) {
      checker.add(
        top.get(name)!.key,
        name,
        undefined,
        `set exactly one of ${secretFields.join(', ')} (${first} is set at ${checker.position(top.get(first!)!.key)})`,
      );
    }
    return undefined;
  }
  const name = present[0]!;
  const field = top.get(name)!;
  switch (name) {
    case 'secret': {
      // The value is never echoed: messages describe it by its length only.
      const value = checker.string(field, root, 'secret', true, true);
      if (value === undefined) return undefined;
      if (!checkSecretLength(checker, field.value, 'secret', value, `(hidden, ${value.length} characters)`)) return undefined;
      return { bytes: secretBytes(value), source: { kind: 'inline' } };
    }
    case 'secretEnv': {
      const variable = checker.string(field, root, 'secretEnv', true);
      if (variable === undefined) return undefined;
      if (!envNamePattern.test(variable)) {
        checker.add(field.value, 'secretEnv', variable, 'an environment variable name is [A-Za-z_][A-Za-z0-9_]*, at most 128 characters');
        return undefined;
      }
      const value = env[variable];
      if (value === undefined || value === '') {
        checker.add(field.value, 'secretEnv', variable, 'the environment variable is not set');
        return undefined;
      }
      if (!checkSecretLength(checker, field.value, 'secretEnv', value, `${JSON.stringify(variable)} (hidden, ${value.length} characters)`)) return undefined;
      return { bytes: secretBytes(value), source: { kind: 'env', name: variable } };
    }
    case 'secretFile': {
      const given = checker.string(field, root, 'secretFile', true);
      if (given === undefined || !checker.path(field.value, 'secretFile', given)) return undefined;
      const path = resolve(baseDir, given);
      let value: string;
      try {
        value = readSmallTextFile(path, secretFileBytesMax, 'secret file').trimEnd();
      } catch (error) {
        const reason = error instanceof RangeError ? error.message : ioReason(error);
        checker.add(field.value, 'secretFile', given, `cannot read ${path}: ${reason}`);
        return undefined;
      }
      if (!checkSecretLength(checker, field.value, 'secretFile', value, `${JSON.stringify(given)} (hidden, ${value.length} characters)`)) return undefined;
      return { bytes: secretBytes(value), source: { kind: 'file', path } };
    }
  }
}

function checkSecretLength(checker: Checker, node: YamlNode | null, path: string, value: string, shown: string): boolean {
  if (value.length < secretLengthMin || value.length > secretLengthMax) {
    checker.addRaw(node, path, shown, `a secret is ${secretLengthMin} to ${secretLengthMax} characters (generate one with: openssl rand -base64 48)`);
    return false;
  }
  const weakness = secretWeakness(value);
  if (weakness !== null) {
    checker.addRaw(node, path, shown, `the secret is too weak: ${weakness} (generate one with: openssl rand -base64 48)`);
    return false;
  }
  return true;
}

// ---------------------------------------------------------------- api, tls, operator key

function readPathField(checker: Checker, field: Field | undefined, parent: YamlNode, path: string, baseDir: string, required = false): string | undefined {
  const given = checker.string(field, parent, path, required);
  if (given === undefined || !checker.path(field!.value, path, given)) return undefined;
  return resolve(baseDir, given);
}

function readStringList(checker: Checker, field: Field | undefined, path: string, check: (item: string) => string | null): string[] {
  if (field === undefined) return [];
  const list = field.value;
  if (!isSeq(list) || list.items.length > apiListMax) {
    checker.add(list ?? field.key, path, list, `${path} must be a list of at most ${apiListMax} strings`);
    return [];
  }
  const out: string[] = [];
  (list.items as (YamlNode | null)[]).forEach((item, i) => {
    const value = isScalar(item) ? item.value : undefined;
    const problem = typeof value === 'string' ? check(value) : 'must be a string';
    if (problem !== null) checker.add(item ?? list, `${path}[${i}]`, value, problem);
    else out.push(value as string);
  });
  return out;
}

/** The `api` section; its tokens file is required: a daemon without credentials would be open to anyone. */
function readApi(checker: Checker, field: Field | undefined, root: YAMLMap, baseDir: string): ApiConfig | undefined {
  if (field === undefined || !isMap(field.value)) {
    checker.add(
      field?.value ?? root,
      'api',
      undefined,
      'missing the api section with a tokensFile: every API call needs a token (create one with: tessera token create --config <this file> --name admin --role operator)',
    );
    return undefined;
  }
  const map = field.value as YAMLMap;
  const fields = checker.fields(map, 'api', apiFields);
  const tokensFile = readPathField(checker, fields.get('tokensFile'), map, 'api.tokensFile', baseDir, true);
  const open = readStringList(checker, fields.get('open'), 'api.open', (item) =>
    (openableRoutes as readonly string[]).includes(item) ? null : `can open ${openableRoutes.join(', ')} only`,
  );
  const hosts = readStringList(checker, fields.get('hosts'), 'api.hosts', (item) =>
    isIP(item) !== 0 || hostnamePattern.test(item) ? null : 'a host is a DNS name or an IP address, without port',
  );
  const origins = readStringList(checker, fields.get('origins'), 'api.origins', (item) =>
    /^https?:\/\/[^/?#\s]+$/.test(item) ? null : 'an origin is scheme://host[:port], without a path',
  );
  if (tokensFile === undefined) return undefined;
  return {
    tokensFile,
    open: new Set(open as Array<(typeof openableRoutes)[number]>),
    hosts: hosts.map((h) => h.toLowerCase()),
    origins: origins.map((o) => o.toLowerCase()),
  };
}

/** The `tls` section: the CA that issued the nodes' certificates. Every node has `cert` and `key`, or none does. */
/** The `encryption` section: `{ masterKeyFile }` (the file is read, and its mode checked, when a node opens its data). */
function readEncryption(checker: Checker, field: Field | undefined, baseDir: string): string | undefined {
  if (field === undefined) return undefined;
  if (!isMap(field.value)) {
    checker.add(field.value ?? field.key, 'encryption', field.value, 'encryption must be a map { masterKeyFile: <file of 32 random bytes, base64> }');
    return undefined;
  }
  const map = field.value as YAMLMap;
  const fields = checker.fields(map, 'encryption', encryptionFields);
  return readPathField(checker, fields.get('masterKeyFile'), map, 'encryption.masterKeyFile', baseDir, true);
}

function readTls(checker: Checker, field: Field | undefined, root: YAMLMap, baseDir: string, nodes: readonly NodeConfig[] | undefined): string | undefined {
  const withTls = (nodes ?? []).filter((node) => node.tls !== null).length;
  if (field === undefined) {
    if (withTls > 0) checker.add(root, 'tls', undefined, 'nodes have certificates: name the cluster CA in tls.ca');
    return undefined;
  }
  if (!isMap(field.value)) {
    checker.add(field.value ?? field.key, 'tls', field.value, 'tls must be a map { ca: <CA certificate file> }');
    return undefined;
  }
  const map = field.value as YAMLMap;
  const fields = checker.fields(map, 'tls', tlsFields);
  const ca = readPathField(checker, fields.get('ca'), map, 'tls.ca', baseDir, true);
  if (nodes !== undefined && withTls !== nodes.length) checker.add(field.key, 'tls', undefined, 'with tls, every node needs cert and key (tessera certs node)');
  return ca;
}

function readNodes(checker: Checker, field: Field | undefined, root: YAMLMap, baseDir: string): NodeConfig[] | undefined {
  if (field === undefined) {
    checker.add(root, '', undefined, 'missing field "nodes": list the cluster\'s nodes');
    return undefined;
  }
  const list = field.value;
  if (!isSeq(list)) {
    checker.add(list ?? field.key, 'nodes', list, 'nodes must be a list of nodes');
    return undefined;
  }
  const items = (list as YAMLSeq).items as (YamlNode | null)[];
  if (items.length === 0 || items.length > configNodesMax) {
    checker.addRaw(list, 'nodes', `(${items.length} nodes)`, `a cluster has 1 to ${configNodesMax} nodes`);
    return undefined;
  }
  const nodes: NodeConfig[] = [];
  const seen = { id: new Map<string, string>(), listen: new Map<string, string>(), advertise: new Map<string, string>(), data: new Map<string, string>() };
  items.forEach((item, i) => {
    const path = `nodes[${i}]`;
    if (!isMap(item)) {
      checker.add(item ?? list, path, item, `a node is a map with the fields ${nodeFields.join(', ')}`);
      return;
    }
    const fields = checker.fields(item as YAMLMap, path, nodeFields);
    const id = checker.named(fields.get('id'), item, `${path}.id`, checkNodeId);
    const region = checker.named(fields.get('region'), item, `${path}.region`, checkRegion);
    const zone = checker.string(fields.get('zone'), item, `${path}.zone`, false);
    if (zone !== undefined && (zone.length > regionNameLengthMax || !zonePattern.test(zone))) {
      checker.add(fields.get('zone')!.value, `${path}.zone`, zone, `a zone is 1 to ${regionNameLengthMax} characters [a-z0-9_-], starting with a letter`);
    }
    const listen = checker.address(fields.get('listen'), item, `${path}.listen`, true);
    let advertise = checker.address(fields.get('advertise'), item, `${path}.advertise`, false);
    if (listen !== undefined && advertise === undefined && !fields.has('advertise') && isWildcard(listen.host)) {
      checker.add(
        fields.get('listen')!.value,
        `${path}.listen`,
        formatHostPort(listen),
        'a wildcard address cannot be dialed by peers: set advertise to the address they should use',
      );
    }
    if (advertise !== undefined && isWildcard(advertise.host)) {
      checker.add(fields.get('advertise')!.value, `${path}.advertise`, formatHostPort(advertise), 'peers cannot dial a wildcard address');
      advertise = undefined;
    }
    const dataGiven = checker.string(fields.get('data'), item, `${path}.data`, true);
    const data = dataGiven !== undefined && checker.path(fields.get('data')!.value, `${path}.data`, dataGiven) ? resolve(baseDir, dataGiven) : undefined;
    const durabilityGiven = checker.string(fields.get('durability'), item, `${path}.durability`, false);
    if (durabilityGiven !== undefined && durabilityGiven !== 'fsync' && durabilityGiven !== 'os') {
      checker.add(
        fields.get('durability')!.value,
        `${path}.durability`,
        durabilityGiven,
        'durability is "fsync" (survives power loss, the default) or "os" (survives a process crash)',
      );
    }
    const unique = (kind: keyof typeof seen, value: string | undefined, shown: string | undefined, rule: string) => {
      if (value === undefined) return;
      const node = fields.get(kind)!.value;
      const earlier = seen[kind].get(value);
      if (earlier !== undefined) checker.add(node, `${path}.${kind}`, shown ?? value, `${rule} (also ${earlier})`);
      else seen[kind].set(value, `${path} at ${checker.position(node)}`);
    };
    unique('id', id, undefined, 'node ids must be unique');
    unique('listen', listen && addressKey(listen), listen && formatHostPort(listen), 'listen addresses must be unique');
    if (fields.has('advertise'))
      unique('advertise', advertise && addressKey(advertise), advertise && formatHostPort(advertise), 'advertise addresses must be unique');
    unique('data', data, dataGiven, 'each node needs its own data directory');
    const cert = readPathField(checker, fields.get('cert'), item, `${path}.cert`, baseDir);
    const key = readPathField(checker, fields.get('key'), item, `${path}.key`, baseDir);
    if ((cert === undefined) !== (key === undefined) && fields.has('cert') !== fields.has('key')) {
      checker.add(item, path, undefined, 'give both cert and key, or neither');
    }
    if (id === undefined || region === undefined || listen === undefined || data === undefined) return;
    nodes.push(
      Object.freeze({
        id,
        region,
        ...(zone === undefined ? {} : { zone }),
        listen: Object.freeze(listen),
        advertise: Object.freeze(advertise ?? listen),
        data,
        durability: (durabilityGiven ?? 'fsync') as Durability,
        tls: cert !== undefined && key !== undefined ? { cert, key } : null,
      }),
    );
  });
  return nodes;
}

/** Reads the policy file `policy:` names (relative to the config), and checks it declares every node's region. */
function readPolicy(
  checker: Checker,
  field: Field | undefined,
  root: YAMLMap,
  baseDir: string,
  nodes: readonly NodeConfig[] | undefined,
): { policy: Policy; path: string } | undefined {
  if (field === undefined) return undefined;
  const given = checker.string(field, root, 'policy', true);
  if (given === undefined || !checker.path(field.value, 'policy', given)) return undefined;
  const path = resolve(baseDir, given);
  let text: string;
  try {
    text = readSmallTextFile(path, policyBytesMax, null);
  } catch (error) {
    checker.add(field.value, 'policy', given, `cannot read ${path}: ${error instanceof RangeError ? error.message : ioReason(error)}`);
    return undefined;
  }
  let policy: Policy;
  try {
    policy = parsePolicy(text, path);
  } catch (error) {
    checker.add(field.value, 'policy', given, `the policy file is invalid:\n${(error as Error).message}`);
    return undefined;
  }
  for (const node of nodes ?? []) {
    if (!policy.regions.has(node.region)) {
      checker.add(
        field.value,
        'policy',
        given,
        `policy version ${policy.version} does not declare region ${JSON.stringify(node.region)} of node ${node.id} (it declares ${policy.regionNames.join(', ')})`,
      );
    }
  }
  return { policy, path };
}

/** The optional `replication:` section: each field an integer within its bounds, defaults for the rest. */
function readReplication(checker: Checker, field: Field | undefined): ReplicationConfig {
  if (field === undefined) return {};
  if (!isMap(field.value)) {
    checker.add(
      field.value ?? field.key,
      'replication',
      isScalar(field.value) ? field.value.value : field.value,
      `replication must be a map with the fields ${replicationFields.join(', ')}`,
    );
    return {};
  }
  const fields = checker.fields(field.value as YAMLMap, 'replication', replicationFields);
  const logEntriesMax = checker.integer(fields.get('logEntriesMax'), 'replication.logEntriesMax', logEntriesMaxMin, logEntriesMaxMax);
  const retentionIntervalMs = checker.integer(
    fields.get('retentionIntervalMs'),
    'replication.retentionIntervalMs',
    retentionIntervalMsMin,
    retentionIntervalMsMax,
  );
  const clockOffsetMsMax = checker.integer(fields.get('clockOffsetMsMax'), 'replication.clockOffsetMsMax', clockOffsetMsMaxMin, clockOffsetMsMaxMax);
  return {
    ...(logEntriesMax === undefined ? {} : { logEntriesMax }),
    ...(retentionIntervalMs === undefined ? {} : { retentionIntervalMs }),
    ...(clockOffsetMsMax === undefined ? {} : { clockOffsetMsMax }),
  };
}

// ---------------------------------------------------------------- the checker

const configKind: YamlDocumentKind = { code: 'ERR_CONFIG_INVALID', noun: 'a cluster config', problemsMax: configProblemsMax };

/** The shared YAML checker with the config's own value checks. */
class Checker extends YamlChecker {
  /** A `host:port` field. */
  address(field: Field | undefined, parent: YamlNode, path: string, required: boolean): HostPort | undefined {
    const text = this.string(field, parent, path, required);
    if (text === undefined) return undefined;
    const parsed = parseHostPort(text);
    if (typeof parsed === 'string') {
      this.add(field!.value, path, text, parsed);
      return undefined;
    }
    return parsed;
  }

  /** An optional integer field within [min, max]; undefined (with a problem when present and wrong) otherwise. */
  integer(field: Field | undefined, path: string, min: number, max: number): number | undefined {
    if (field === undefined) return undefined;
    const node = field.value;
    const value = isScalar(node) ? node.value : node;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      this.add(node ?? field.key, path, value, `must be an integer from ${min} to ${max}`);
      return undefined;
    }
    return value;
  }

  /** Checks a path's length and characters. */
  path(node: YamlNode | null, path: string, value: string): boolean {
    if (value.length > configPathLengthMax || value.includes('\u0000')) {
      this.add(node, path, value, `a path is at most ${configPathLengthMax} characters, without NUL`);
      return false;
    }
    return true;
  }
}

// ---------------------------------------------------------------- helpers

/** Parses `host:port` (IPv6 in brackets); returns the rule broken as a string. */
function parseHostPort(text: string): HostPort | string {
  const match = /^(?:\[([^\]]*)\]|([^:[\]]*)):([0-9]{1,10})$/.exec(text);
  if (match === null) return 'must be host:port (IPv6 hosts in brackets: [::1]:7101)';
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return 'port must be 1–65535';
  if (match[1] !== undefined) {
    return isIPv6(match[1]) ? { host: match[1], port } : 'the host in brackets must be an IPv6 address';
  }
  const host = match[2]!;
  if (/^[0-9.]+$/.test(host) ? !isIPv4(host) : !hostnamePattern.test(host)) {
    return 'the host must be an IPv4 address, [IPv6] address or a DNS name';
  }
  return { host: host.toLowerCase(), port };
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || (isIP(host) === 6 && /^[0:]+$/.test(host));
}

function addressKey(address: HostPort): string {
  return formatHostPort(address).toLowerCase();
}

function describe(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function secretBytes(text: string): Buffer {
  // Unpooled, so the secret does not share an ArrayBuffer with unrelated data.
  const bytes = Buffer.alloc(Buffer.byteLength(text, 'utf8'));
  bytes.write(text, 'utf8');
  return bytes;
}

/**
 * Reads a small UTF-8 file; throws RangeError with a message when it exceeds `bytesMax` or is not UTF-8, or
 * when `privateWhat` names a secret and others may read or write the file.
 */
function readSmallTextFile(path: string, bytesMax: number, privateWhat: string | null): string {
  const fd = openSync(path, 'r');
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new RangeError('not a regular file');
    if (privateWhat !== null) {
      try {
        checkPrivateFile(stats, path, privateWhat);
      } catch (error) {
        throw new RangeError((error as Error).message.slice(path.length + 2));
      }
    }
    const buffer = Buffer.alloc(bytesMax + 1);
    let length = 0;
    for (;;) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
      if (length > bytesMax) throw new RangeError(`more than ${bytesMax} bytes`);
    }
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(buffer.subarray(0, length));
    } catch {
      throw new RangeError('not valid UTF-8 text');
    } finally {
      buffer.fill(0);
    }
  } finally {
    closeSync(fd);
  }
}

function ioReason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'it is a directory';
  return code ?? (error as Error)?.message ?? String(error);
}
