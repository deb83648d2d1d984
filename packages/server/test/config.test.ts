// Goal: the cluster config loader accepts a valid file with paths and addresses resolved, refuses every class of
// mistake with a message naming the file, line:column, field, value and rule, and never reveals the secret.
// Method: YAML texts parsed with parseClusterConfig (and files on disk through loadClusterConfig); refusals are
// checked for code ERR_CONFIG_INVALID and their exact first line.
import t from 'tap';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { TesseraError, hex64, parsePolicy } from '@tessera/core';
import {
  configBytesMax,
  configNodesMax,
  findNode,
  formatHostPort,
  loadClusterConfig,
  logEntriesMaxMax,
  logEntriesMaxMin,
  parseClusterConfig,
  peersOf,
  retentionIntervalMsMax,
  retentionIntervalMsMin,
} from '../src/config.js';
import { lanesOf } from '../src/daemon.js';

/** The type of a subtest's `t`. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const secret = 'correct-horse-battery-staple-0123456789';

const valid = `api: { tokensFile: ./tokens.json }
cluster: demo
secret: "${secret}"
nodes:
  - id: eu-west-1
    region: eu-west
    zone: eu-west-a
    listen: 127.0.0.1:7101
    advertise: 127.0.0.1:7201
    data: ./data/eu-west-1
  - id: us-east-1
    region: us-east
    listen: 127.0.0.1:7102
    data: ./data/us-east-1
    durability: os
`;

const policyText = `version: 3
regions:
  eu-west: { jurisdiction: eu }
  us-east: { jurisdiction: us }
datasets:
  profiles: { type: map, placement: { home: doc.origin, within: jurisdiction }, priority: high }
  visits: { type: counter, placement: global, priority: low, cadence: 30s }
`;

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The message of the ERR_CONFIG_INVALID that parsing `text` throws (fails the test if it does not throw). */
function refusal(t: Test, text: string, env: NodeJS.ProcessEnv = {}, baseDir = '/etc/tessera'): string {
  try {
    parseClusterConfig(text, 'cluster.yaml', env, { baseDir });
  } catch (error) {
    t.ok(error instanceof TesseraError, 'a TesseraError');
    t.equal((error as TesseraError).code, 'ERR_CONFIG_INVALID');
    return (error as Error).message;
  }
  t.fail('expected ERR_CONFIG_INVALID');
  return '';
}

t.test('a valid file: nodes, addresses, absolute data paths, defaults, the policy file', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'cluster.yaml');
  await writeFile(path, `${valid}policy: ./policy.yaml\n`);
  await writeFile(join(dir, 'policy.yaml'), policyText);
  const config = await loadClusterConfig(path);
  t.equal(config.cluster, 'demo');
  t.equal(config.source, path);
  t.same(config.secretSource, { kind: 'inline' });
  t.equal(config.api.tokensFile, join(dir, 'tokens.json'), 'the tokens file resolves against the config');
  t.equal(config.secret.toString('utf8'), secret);
  t.equal(config.nodes.length, 2);
  const [eu, us] = config.nodes;
  t.same(eu, {
    id: 'eu-west-1',
    region: 'eu-west',
    zone: 'eu-west-a',
    listen: { host: '127.0.0.1', port: 7101 },
    advertise: { host: '127.0.0.1', port: 7201 },
    data: join(dir, 'data/eu-west-1'),
    durability: 'fsync',
    tls: null,
  });
  t.same(us!.advertise, { host: '127.0.0.1', port: 7102 }, 'advertise defaults to listen');
  t.equal(us!.durability, 'os');
  t.equal(us!.zone, undefined);
  t.equal(config.policy?.version, 3, 'the policy file is read and parsed');
  t.equal(config.policyPath, join(dir, 'policy.yaml'), 'relative to the config file');
  t.equal(config.policy?.dataset('visits').type, 'counter');
  t.equal(findNode(config, 'us-east-1'), us);
  t.same(
    peersOf(config, 'eu-west-1').map((node) => node.id),
    ['us-east-1'],
  );
  t.equal(formatHostPort(eu!.listen), '127.0.0.1:7101');
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.nodes[0]), 'the config is immutable');
  t.same(config.replication, {}, "without a replication section, SyncNode's defaults apply");
});

t.test('the replication section sets the log bound and the retention interval', async (t) => {
  const config = parseClusterConfig(`${valid}replication:\n  logEntriesMax: 200\n  retentionIntervalMs: 500\n  clockOffsetMsMax: 250\n`, 'cluster.yaml', {});
  t.same(config.replication, { logEntriesMax: 200, retentionIntervalMs: 500, clockOffsetMsMax: 250 });
  t.ok(Object.isFrozen(config.replication));
  const one = parseClusterConfig(`${valid}replication: { logEntriesMax: ${logEntriesMaxMin} }\n`, 'cluster.yaml', {});
  t.same(one.replication, { logEntriesMax: logEntriesMaxMin }, 'each field is optional; the bounds are inclusive');
  const top = parseClusterConfig(
    `${valid}replication: { logEntriesMax: ${logEntriesMaxMax}, retentionIntervalMs: ${retentionIntervalMsMax} }\n`,
    'cluster.yaml',
    {},
  );
  t.same(top.replication, { logEntriesMax: logEntriesMaxMax, retentionIntervalMs: retentionIntervalMsMax });
});

t.test('IPv6 and DNS addresses; the policy may be omitted', async (t) => {
  const config = parseClusterConfig(
    `cluster: c1
secret: "${secret}"
nodes:
  - { id: a, region: r, listen: "[::]:7101", advertise: "[::1]:7101", data: /var/lib/a }
  - { id: b, region: r, listen: node-b.example.com:7102, data: b }
api: { tokensFile: tokens.json }
`,
    'cluster.yaml',
    {},
    { baseDir: '/etc/tessera' },
  );
  t.same(config.nodes[0]!.listen, { host: '::', port: 7101 });
  t.equal(formatHostPort(config.nodes[0]!.advertise), '[::1]:7101');
  t.equal(config.nodes[1]!.listen.host, 'node-b.example.com');
  t.equal(config.nodes[1]!.data, '/etc/tessera/b');
  t.equal(config.policy, null, 'without a policy every dataset may live everywhere');
});

t.test('findNode names the known nodes', async (t) => {
  const config = parseClusterConfig(valid, 'cluster.yaml', {});
  t.throws(() => findNode(config, 'ap-south-1'), {
    code: 'ERR_CONFIG_UNKNOWN_NODE',
    message: 'node "ap-south-1" is not in cluster.yaml (cluster "demo"): the known nodes are eu-west-1, us-east-1',
  });
  t.throws(() => peersOf(config, 'nope'), { code: 'ERR_CONFIG_UNKNOWN_NODE' });
});

t.test('each class of mistake is refused at its line and column', async (t) => {
  // [what, text, expected first line of the message]
  const cases: Array<[string, string, string]> = [
    [
      'port out of range',
      valid.replace('listen: 127.0.0.1:7102', 'listen: localhost:99999'),
      'cluster.yaml:13:13: nodes[1].listen "localhost:99999": port must be 1–65535',
    ],
    ['not host:port', valid.replace('listen: 127.0.0.1:7102', 'listen: 7102'), 'cluster.yaml:13:13: nodes[1].listen 7102: must be a string; quote it: "7102"'],
    [
      'host without port',
      valid.replace('listen: 127.0.0.1:7102', 'listen: localhost'),
      'cluster.yaml:13:13: nodes[1].listen "localhost": must be host:port (IPv6 hosts in brackets: [::1]:7101)',
    ],
    [
      'bad IPv4 host',
      valid.replace('listen: 127.0.0.1:7102', 'listen: 300.1.1.1:7102'),
      'cluster.yaml:13:13: nodes[1].listen "300.1.1.1:7102": the host must be an IPv4 address, [IPv6] address or a DNS name',
    ],
    [
      'wildcard listen without advertise',
      valid.replace('listen: 127.0.0.1:7102', 'listen: 0.0.0.0:7102'),
      'cluster.yaml:13:13: nodes[1].listen "0.0.0.0:7102": a wildcard address cannot be dialed by peers: set advertise to the address they should use',
    ],
    ['YAML syntax', valid.replace('    data: ./data/us-east-1', '    data: [./data/us-east-1'), 'cluster.yaml:15:5: YAML: '],
    [
      'unknown top-level field',
      valid.replace('cluster: demo', 'cluster: demo\nclsuter: typo'),
      'cluster.yaml:3:1: clsuter: unknown field: the fields are cluster, secret, secretFile, secretEnv, nodes, policy, replication, api, tls, operatorKey, encryption',
    ],
    [
      'replication not a map',
      `${valid}replication: 200\n`,
      'cluster.yaml:16:14: replication 200: replication must be a map with the fields logEntriesMax, retentionIntervalMs, clockOffsetMsMax',
    ],
    [
      'unknown replication field',
      `${valid}replication: { logEntries: 200 }\n`,
      'cluster.yaml:16:16: replication.logEntries: unknown field in replication: the fields are logEntriesMax, retentionIntervalMs, clockOffsetMsMax',
    ],
    [
      'log bound below its floor',
      `${valid}replication: { logEntriesMax: ${logEntriesMaxMin - 1} }\n`,
      `cluster.yaml:16:31: replication.logEntriesMax ${logEntriesMaxMin - 1}: must be an integer from ${logEntriesMaxMin} to ${logEntriesMaxMax}`,
    ],
    [
      'log bound above its ceiling',
      `${valid}replication: { logEntriesMax: ${logEntriesMaxMax + 1} }\n`,
      `cluster.yaml:16:31: replication.logEntriesMax ${logEntriesMaxMax + 1}: must be an integer from ${logEntriesMaxMin} to ${logEntriesMaxMax}`,
    ],
    [
      'log bound not an integer',
      `${valid}replication: { logEntriesMax: 20.5 }\n`,
      `cluster.yaml:16:31: replication.logEntriesMax 20.5: must be an integer from ${logEntriesMaxMin} to ${logEntriesMaxMax}`,
    ],
    [
      'log bound as a string',
      `${valid}replication: { logEntriesMax: "200" }\n`,
      `cluster.yaml:16:31: replication.logEntriesMax "200": must be an integer from ${logEntriesMaxMin} to ${logEntriesMaxMax}`,
    ],
    [
      'retention interval out of bounds',
      `${valid}replication: { retentionIntervalMs: ${retentionIntervalMsMin - 1} }\n`,
      `cluster.yaml:16:37: replication.retentionIntervalMs ${retentionIntervalMsMin - 1}: must be an integer from ${retentionIntervalMsMin} to ${retentionIntervalMsMax}`,
    ],
    [
      'unknown node field',
      valid.replace('    durability: os', '    durabilty: os'),
      'cluster.yaml:15:5: nodes[1].durabilty: unknown field in nodes[1]: the fields are id, region, zone, listen, advertise, data, durability, cert, key',
    ],
    ['duplicate key', valid.replace('    durability: os', '    durability: os\n    durability: fsync'), 'cluster.yaml:16:5: YAML: Map keys must be unique'],
    ['missing required node field', valid.replace('    region: us-east\n', ''), 'cluster.yaml:11:5: nodes[1]: missing field "region"'],
    ['missing cluster', valid.replace('cluster: demo\n', ''), 'cluster.yaml:1:1: missing field "cluster"'],
    [
      'bad cluster id',
      valid.replace('cluster: demo', 'cluster: Demo!'),
      'cluster.yaml:2:10: cluster "Demo!": a cluster id is 1 to 64 characters [a-z0-9._-], starting with a letter or digit',
    ],
    [
      'bad node id',
      valid.replace('id: us-east-1', 'id: US_East'),
      'cluster.yaml:11:9: nodes[1].id "US_East": use 1 to 64 characters [a-z0-9._-], starting with a letter or digit',
    ],
    [
      'bad region',
      valid.replace('region: us-east', 'region: us east'),
      'cluster.yaml:12:13: nodes[1].region "us east": use 1 to 64 characters [a-z0-9_-], starting with a letter',
    ],
    [
      'bad zone',
      valid.replace('zone: eu-west-a', 'zone: A'),
      'cluster.yaml:7:11: nodes[0].zone "A": a zone is 1 to 64 characters [a-z0-9_-], starting with a letter',
    ],
    [
      'bad durability',
      valid.replace('durability: os', 'durability: none'),
      'cluster.yaml:15:17: nodes[1].durability "none": durability is "fsync" (survives power loss, the default) or "os" (survives a process crash)',
    ],
    [
      'duplicate node id',
      valid.replace('id: us-east-1', 'id: eu-west-1'),
      'cluster.yaml:11:9: nodes[1].id "eu-west-1": node ids must be unique (also nodes[0] at 5:9)',
    ],
    [
      'duplicate listen address',
      valid.replace('listen: 127.0.0.1:7102', 'listen: 127.0.0.1:7101'),
      'cluster.yaml:13:13: nodes[1].listen "127.0.0.1:7101": listen addresses must be unique (also nodes[0] at 8:13)',
    ],
    [
      'shared data directory',
      valid.replace('data: ./data/us-east-1', 'data: data/eu-west-1'),
      'cluster.yaml:14:11: nodes[1].data "data/eu-west-1": each node needs its own data directory (also nodes[0] at 10:11)',
    ],
    ['nodes not a list', valid.replace(/nodes:\n[\s\S]*$/, 'nodes: eu-west-1\n'), 'cluster.yaml:4:8: nodes "eu-west-1": nodes must be a list of nodes'],
    ['no nodes', valid.replace(/nodes:\n[\s\S]*$/, 'nodes: []\n'), 'cluster.yaml:4:8: nodes (0 nodes): a cluster has 1 to 64 nodes'],
    [
      'too many nodes',
      valid.replace(
        /nodes:\n[\s\S]*$/,
        `nodes:\n${Array.from({ length: configNodesMax + 1 }, (_, i) => `  - { id: n${i}, region: r, listen: "127.0.0.1:${8000 + i}", data: d${i} }`).join(
          '\n',
        )}\n`,
      ),
      'cluster.yaml:5:3: nodes (65 nodes): a cluster has 1 to 64 nodes',
    ],
    [
      'alias',
      valid.replace('    durability: os', '    durability: &d os\n    zone: *d'),
      'cluster.yaml:16:11: aliases (*d) are not supported in a cluster config',
    ],
    ['policy not a string', `${valid}policy: 3\n`, 'cluster.yaml:16:9: policy 3: must be a string; quote it: "3"'],
    ['policy file missing', `${valid}policy: ./nope.yaml\n`, 'cluster.yaml:16:9: policy "./nope.yaml": cannot read /etc/tessera/nope.yaml: '],
    ['empty file', '# nothing here\n', 'cluster.yaml:1:1: the file is empty: expected a map with cluster, nodes and one of secret, secretFile, secretEnv'],
    [
      'not a map',
      '- a\n- b\n',
      'cluster.yaml:1:1: (a list): the file must be a map with the fields cluster, secret, secretFile, secretEnv, nodes, policy, replication, api, tls, operatorKey, encryption',
    ],
    ['no secret', valid.replace(/secret: .*\n/, ''), 'cluster.yaml:1:1: missing the secret: set exactly one of secret, secretFile, secretEnv'],
    [
      'two secrets',
      valid.replace('secret:', 'secretEnv: TESSERA_SECRET\nsecret:'),
      'cluster.yaml:4:1: secret: set exactly one of secret, secretFile, secretEnv (secretEnv is set at 3:1)',
    ],
    [
      'short secret',
      valid.replace(secret, 'too-short'),
      'cluster.yaml:3:9: secret (hidden, 9 characters): a secret is 32 to 4096 characters (generate one with: openssl rand -base64 48)',
    ],
    [
      'secret env not set',
      valid.replace(`secret: "${secret}"`, 'secretEnv: TESSERA_SECRET'),
      'cluster.yaml:3:12: secretEnv "TESSERA_SECRET": the environment variable is not set',
    ],
    [
      'secret env name',
      valid.replace(`secret: "${secret}"`, 'secretEnv: "not a name"'),
      'cluster.yaml:3:12: secretEnv "not a name": an environment variable name is [A-Za-z_][A-Za-z0-9_]*, at most 128 characters',
    ],
    [
      'secret file missing',
      valid.replace(`secret: "${secret}"`, 'secretFile: ./no-such-secret'),
      'cluster.yaml:3:13: secretFile "./no-such-secret": cannot read /etc/tessera/no-such-secret: no such file',
    ],
  ];
  for (const [what, text, expected] of cases) {
    const message = refusal(t, text);
    const first = message.split('\n')[0]!;
    if (expected.endsWith(': ')) t.ok(first.startsWith(expected), `${what}: ${first}`);
    else t.equal(first, expected, what);
  }
});

t.test('all problems of a file are reported together, in file order', async (t) => {
  const text = `${valid.replace('cluster: demo', 'cluster: Demo').replace('listen: 127.0.0.1:7102', 'listen: localhost:0')}policy: 7\n`;
  const lines = refusal(t, text).split('\n');
  t.same(
    lines.map((line) => line.split(': ')[0]),
    ['cluster.yaml:2:10', 'cluster.yaml:13:13', 'cluster.yaml:16:9'],
  );
});

t.test('the secret from an environment variable and from a file relative to the config', async (t) => {
  const fromEnv = parseClusterConfig(valid.replace(`secret: "${secret}"`, 'secretEnv: TESSERA_SECRET'), 'cluster.yaml', { TESSERA_SECRET: secret });
  t.equal(fromEnv.secret.toString(), secret);
  t.same(fromEnv.secretSource, { kind: 'env', name: 'TESSERA_SECRET' });
  t.match(
    refusal(t, valid.replace(`secret: "${secret}"`, 'secretEnv: TESSERA_SECRET'), { TESSERA_SECRET: 'short' }),
    /^cluster\.yaml:3:12: secretEnv "TESSERA_SECRET" \(hidden, 5 characters\): a secret is 32 to 4096 characters/,
  );

  const dir = await tempDir(t);
  await mkdir(join(dir, 'secrets'));
  await writeFile(join(dir, 'secrets', 'cluster.key'), `${secret}\n`, { mode: 0o600 });
  await writeFile(join(dir, 'cluster.yaml'), valid.replace(`secret: "${secret}"`, 'secretFile: secrets/cluster.key'));
  const fromFile = await loadClusterConfig(join(dir, 'cluster.yaml'));
  t.equal(fromFile.secret.toString(), secret, 'the trailing newline is not part of the secret');
  t.same(fromFile.secretSource, { kind: 'file', path: join(dir, 'secrets', 'cluster.key') });
});

t.test('the secret never appears when the config is printed, serialised or copied, nor in refusals', async (t) => {
  const config = parseClusterConfig(valid, 'cluster.yaml', {});
  t.equal(config.secret.toString(), secret, 'the daemon can read it');
  for (const [how, text] of [
    ['JSON.stringify', JSON.stringify(config)],
    ['util.inspect', inspect(config, { depth: Infinity })],
    ['util.inspect showHidden', inspect(config, { depth: Infinity, showHidden: true, getters: false })],
    ['spread', JSON.stringify({ ...config })],
    ['template string', `${String(config)}`],
  ] as const) {
    t.notOk(text.includes(secret), `${how} does not reveal it`);
    t.notOk(text.includes(Buffer.from(secret).toString('base64')), `${how} does not reveal it in base64`);
  }
  t.notOk(Object.keys(config).includes('secret'), 'not an enumerable field');
  const shortSecret = 'abcdefghijklmnopqrstuvwxyz';
  t.notOk(refusal(t, valid.replace(secret, shortSecret)).includes(shortSecret), 'a refused secret is not echoed');
});

t.test('files that cannot be config files', async (t) => {
  const dir = await tempDir(t);
  await t.rejects(loadClusterConfig(join(dir, 'absent.yaml')), {
    code: 'ERR_CONFIG_INVALID',
    message: `${join(dir, 'absent.yaml')}: cannot read the cluster config: no such file`,
  });
  const big = join(dir, 'big.yaml');
  await writeFile(big, `# ${'x'.repeat(configBytesMax)}\n`);
  await t.rejects(loadClusterConfig(big), {
    code: 'ERR_CONFIG_INVALID',
    message: `${big}: ${configBytesMax + 3} bytes exceed the limit of ${configBytesMax} bytes for a cluster config`,
  });
  const binary = join(dir, 'binary.yaml');
  await writeFile(binary, Buffer.from([0x63, 0x3a, 0x20, 0xff, 0xfe, 0x0a]));
  await t.rejects(loadClusterConfig(binary), { code: 'ERR_CONFIG_INVALID', message: `${binary}: the cluster config is not valid UTF-8 text` });
  t.throws(() => parseClusterConfig('a'.repeat(configBytesMax + 1), 'cluster.yaml', {}), { code: 'ERR_CONFIG_INVALID' });
});

// Goal: the policy file is checked with the config: its own errors keep their line and column, and it must
// declare the region of every node.
t.test("a policy file that is invalid or lacks a node's region is refused", async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'policy.yaml'), policyText.replace('us-east: { jurisdiction: us }', 'ap-south: { jurisdiction: ap }'));
  const missing = refusal(t, `${valid}policy: ./policy.yaml\n`, {}, dir);
  t.match(
    missing,
    /cluster\.yaml:16:9: policy "\.\/policy\.yaml": policy version 3 does not declare region "us-east" of node us-east-1 \(it declares ap-south, eu-west\)/,
  );
  await writeFile(join(dir, 'policy.yaml'), policyText.replace('cadence: 30s', 'cadence: 30 s'));
  const invalid = refusal(t, `${valid}policy: ./policy.yaml\n`, {}, dir);
  t.match(invalid, /the policy file is invalid:\n.*policy\.yaml:7:\d+: datasets\.visits\.cadence "30 s"/);
});

// Goal: dataset priorities and cadences become replication lanes: same priority and cadence share a lane;
// adaptive datasets of normal priority stay in the main lane.
t.test('dataset priority and cadence give the lanes of every link', async (t) => {
  t.same(lanesOf(parsePolicy(policyText, 'policy.yaml')), [
    { id: 'high', datasets: ['profiles'], priority: 0 },
    { id: 'low-30000ms', datasets: ['visits'], priority: 2, fixedCadenceMs: 30_000 },
  ]);
  t.same(lanesOf(null), [], 'without a policy everything is in the main lane');
  const rated = lanesOf(parsePolicy(policyText.replace('cadence: 30s }', 'cadence: 30s, rate: { bytesPerSecond: 65536 } }'), 'policy.yaml'));
  t.same(
    rated.find((lane) => lane.datasets.includes('visits')),
    {
      id: `rate-${hex64('visits')}`,
      datasets: ['visits'],
      priority: 2,
      fixedCadenceMs: 30_000,
      limits: { bytesPerSecondMax: 65_536, entriesPerSecondMax: null },
    },
    'a dataset with its own rate limit gets a lane of its own, named by a digest of its name',
  );
});

// Goal (issue 12 items 2 and 8): a config that would leave the API open, a typed secret, and a secret file
// others may read are refused at start, each with its line, field and rule.
t.test('secure by default: no tokens file, a weak secret, a secret file readable by others are refused', async (t) => {
  t.match(
    refusal(t, valid.replace(/^api: .*\n/, '# no api section\n')),
    /^cluster\.yaml:2:1: api: missing the api section with a tokensFile: every API call needs a token/,
  );
  t.match(
    refusal(t, valid.replace(secret, 'a'.repeat(32))),
    /^cluster\.yaml:3:9: secret \(hidden, 32 characters\): the secret is too weak: it repeats a 1-character pattern/,
  );
  t.match(refusal(t, valid.replace(secret, 'password1234'.repeat(3))), /the secret is too weak: it repeats a 12-character pattern/);
  t.match(
    refusal(t, valid.replace(secret, 'abababababababababababababababab01')),
    /the secret is too weak: about \d+ bits of entropy by its character frequencies, fewer than 128/,
  );
  t.notOk(refusal(t, valid.replace(secret, 'a'.repeat(32))).includes('a'.repeat(32)), 'the weak secret is not echoed');
  const generated = parseClusterConfig(valid.replace(secret, 'q3Xv9zL1pR7wN2cB8mK4tY6hJ0sD5fG_aE-uIoPlZx'), 'cluster.yaml', {});
  t.equal(generated.secret.length, 42, 'a generated secret passes');

  const dir = await tempDir(t);
  await writeFile(join(dir, 'secret'), `${secret}\n`, { mode: 0o644 });
  await writeFile(join(dir, 'cluster.yaml'), valid.replace(`secret: "${secret}"`, 'secretFile: secret'));
  await t.rejects(loadClusterConfig(join(dir, 'cluster.yaml')), {
    code: 'ERR_CONFIG_INVALID',
    message: /secretFile "secret": cannot read .*secret: the secret file has mode 0644: others may read or change it; allow its owner only \(chmod 600/,
  });
  await chmod(join(dir, 'secret'), 0o600);
  t.equal((await loadClusterConfig(join(dir, 'cluster.yaml'))).secret.toString(), secret, 'the same file at 0600 is accepted');
});

t.test('api, tls and operatorKey sections: paths resolve against the config, and half a TLS setup is refused', async (t) => {
  const config = parseClusterConfig(
    `${valid.replace(
      'api: { tokensFile: ./tokens.json }',
      'api: { tokensFile: ./tokens.json, open: [health], hosts: [tessera.example.com], origins: ["https://dash.example.com"] }',
    )}operatorKey: keys/operator.pub\n`,
    'cluster.yaml',
    {},
    { baseDir: '/etc/tessera' },
  );
  t.same([...config.api.open], ['health']);
  t.same(config.api.hosts, ['tessera.example.com']);
  t.same(config.api.origins, ['https://dash.example.com']);
  t.equal(config.operatorKey, '/etc/tessera/keys/operator.pub');
  t.equal(config.tlsCa, null);
  t.match(
    refusal(t, valid.replace('api: { tokensFile: ./tokens.json }', 'api: { tokensFile: t.json, open: [audit] }')),
    /api\.open\[0\] "audit": can open health, metrics only/,
  );
  t.match(
    refusal(t, valid.replace('    durability: os', '    durability: os\n    cert: c.crt\n    key: c.key')),
    /tls: nodes have certificates: name the cluster CA in tls\.ca/,
  );
  t.match(
    refusal(t, `${valid.replace('    durability: os', '    durability: os\n    cert: c.crt\n    key: c.key')}tls: { ca: ca.crt }\n`),
    /with tls, every node needs cert and key/,
  );
});
