// Goal: an app's own node joins a cluster with one call (issue 14): `joinCluster` takes the cluster config as
// an object — the same fields as the daemon's YAML file — and the node id, keeps its data where the app says
// (here in memory, as an app's tests would), and replicates over mutual TLS with a running daemon, whichever
// side dials (the lower node id dials: `ap-south-1` dials the daemon, the daemon dials `us-east-1`).
// Method: one daemon started from a config file (startDaemon) and two embedded nodes started from that file's
// content as an object (joinCluster, memory storage), all in this process on loopback; each writes, and every
// write must appear on the other two.
import t from 'tap';
import { createServer } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { memoryStorage } from '@tessera/store';
import { type Daemon, createClusterCa, createNodeCertificate, joinCluster, newToken, startDaemon, writeTokensFile } from '../src/index.js';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

t.test('an embedded node joins the cluster from a config object and replicates with a daemon, dialing or dialed', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-join-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const nodes = [
    { id: 'ap-south-1', region: 'ap-south' },
    { id: 'eu-west-1', region: 'eu-west' },
    { id: 'us-east-1', region: 'us-east' },
  ];
  const authority = await createClusterCa('test', Date.now());
  await writeFile(join(dir, 'ca.crt'), authority.certPem);
  writeTokensFile(join(dir, 'tokens.json'), [newToken('admin', { roles: ['reader', 'writer', 'operator'], datasets: ['*'] }, 0).record]);
  const lines = ['cluster: test', 'secret: "q3Xv9zL1pR7wN2cB8mK4tY6hJ0sD5fG_aE-uIoPlZx"', 'api: { tokensFile: tokens.json }', 'tls: { ca: ca.crt }', 'nodes:'];
  for (const node of nodes) {
    const cert = await createNodeCertificate(authority, { cluster: 'test', region: node.region, node: node.id }, ['127.0.0.1'], Date.now());
    await writeFile(join(dir, `${node.id}.crt`), cert.certPem);
    await writeFile(join(dir, `${node.id}.key`), cert.keyPem, { mode: 0o600 });
    lines.push(
      `  - { id: ${node.id}, region: ${node.region}, listen: "127.0.0.1:${await freePort()}", data: ./${node.id}, durability: os, cert: ${node.id}.crt, key: ${node.id}.key }`,
    );
  }
  await writeFile(join(dir, 'cluster.yaml'), `${lines.join('\n')}\n`);

  const started: Daemon[] = [];
  t.teardown(async () => {
    // Each stops while its peers still hold links to it (a drain once waited for those links forever).
    for (const daemon of started.reverse()) await daemon.stop();
  });
  started.push(await startDaemon({ configPath: join(dir, 'cluster.yaml'), nodeId: 'eu-west-1', drainGraceMs: 0, log: () => undefined }));
  // The app's config is the same content, as an object: what an app would build in code.
  const config = parse(await readFile(join(dir, 'cluster.yaml'), 'utf8')) as Record<string, unknown>;
  for (const node of ['ap-south-1', 'us-east-1']) {
    started.push(await joinCluster({ config, node, baseDir: dir, storage: memoryStorage(node), drainGraceMs: 0, log: () => undefined }));
  }
  const [daemon, dialer, dialed] = started as [Daemon, Daemon, Daemon];
  t.equal(dialer.replica.region, 'ap-south', "the embedded node has the config's identity");

  await daemon.replica.put('catalog', 'from-daemon', { n: 1 });
  await dialer.replica.put('catalog', 'from-ap', { n: 2 });
  await dialed.replica.put('catalog', 'from-us', { n: 3 });
  for (const node of started) {
    await eventually(`${node.node.id} holds every write`, async () => {
      const got = await Promise.all(['from-daemon', 'from-ap', 'from-us'].map((key) => node.replica.get('catalog', key)));
      return got.every((view) => view !== undefined);
    });
  }
  t.pass('every write reached every node: the app that dials the daemon, and the app the daemon dials');
  const links = dialer.sync.status().links;
  t.ok(
    links.every((link) => link.state === 'open'),
    `the embedded node's links are open (${links.map((link) => `${link.peer}: ${link.state}`).join(', ')})`,
  );

  await t.rejects(
    joinCluster({ config: { cluster: 'test' }, node: 'x-1', storage: memoryStorage() }),
    { code: 'ERR_CONFIG_INVALID' },
    'a config object is validated like the file',
  );
  await t.rejects(startDaemon({ nodeId: 'eu-west-1' }), { code: 'ERR_OPTION_INVALID' }, 'no config at all is refused');
});
