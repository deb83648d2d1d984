// Goal: the daemon fails fast with a clear, coded message for an unknown node, a port in use and an
// unwritable data directory; a graceful stop loses no acknowledged write; the config's log bound reaches the
// links (a log past it is truncated although a peer has acknowledged nothing).
// Method: startDaemon in-process on loopback with configs written to a temp directory.
import t from 'tap';
import { createServer } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Replica } from '@tessera/store';
import { startDaemon } from '../src/daemon.js';
import { caFetch, createClusterCa, createNodeCertificate, newToken, writeTokensFile } from '../src/index.js';

/** The admin token of the configs these tests write (its tokens file is written next to each config). */
const admin = newToken('admin', { roles: ['reader', 'writer', 'operator', 'policy-admin'], datasets: ['*'] }, 0);
const auth = { authorization: `Bearer ${admin.token}` };

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function writeConfig(dir: string, port: number, data: string, name = 'cluster.yaml'): Promise<string> {
  const path = join(dir, name);
  writeTokensFile(join(dir, `${name}.tokens`), [admin.record]);
  await writeFile(
    path,
    [
      'cluster: test',
      'secret: "q3Xv9zL1pR7wN2cB8mK4tY6hJ0sD5fG_aE-uIoPlZx"',
      `api: { tokensFile: ${name}.tokens }`,
      'nodes:',
      `  - { id: eu-west-1, region: eu-west, listen: "127.0.0.1:${port}", data: ${JSON.stringify(data)}, durability: os }`,
      '',
    ].join('\n'),
  );
  return path;
}

t.test('start-up fails fast: unknown node, port in use, unwritable data directory', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-daemon-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const config = await writeConfig(dir, port, './data');
  await t.rejects(startDaemon({ configPath: config, nodeId: 'us-east-9' }), { code: 'ERR_CONFIG_UNKNOWN_NODE', message: /eu-west-1/ });

  const squatter = createServer();
  await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', () => resolve()));
  await t.rejects(startDaemon({ configPath: config, nodeId: 'eu-west-1' }), {
    code: 'ERR_CONFIG_INVALID',
    message: new RegExp(`127.0.0.1:${port} is already in use`),
  });
  await new Promise((resolve) => squatter.close(resolve));

  const locked = join(dir, 'locked');
  await writeFile(locked, 'a file where a directory should be');
  const bad = await writeConfig(dir, port, './locked/data', 'bad.yaml');
  await t.rejects(startDaemon({ configPath: bad, nodeId: 'eu-west-1' }), { code: 'ERR_STORE_IO', message: /locked\/data/ });

  // The failed starts left nothing running: the port and the data directory are free for a real start.
  const daemon = await startDaemon({ configPath: config, nodeId: 'eu-west-1' });
  t.equal(daemon.url, `http://127.0.0.1:${port}`);
  await daemon.stop();
});

t.test('a graceful stop keeps every acknowledged write', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-daemon-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const config = await writeConfig(dir, port, './data');
  const daemon = await startDaemon({ configPath: config, nodeId: 'eu-west-1', drainGraceMs: 0 });
  const acknowledged: string[] = [];
  await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const response = await fetch(`${daemon.url}/v1/kv/profiles/p${i}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', ...auth },
        body: JSON.stringify({ value: { i } }),
      });
      if (response.status === 200) acknowledged.push(`p${i}`);
    }),
  );
  t.equal(acknowledged.length, 50);
  await daemon.stop();
  const ready = await fetch(`${daemon.url}/readyz`).then(
    () => 'answered',
    () => 'refused',
  );
  t.equal(ready, 'refused', 'a stopped daemon accepts nothing');
  const replica = await Replica.open({ path: join(dir, 'data'), node: 'eu-west-1', region: 'eu-west', durability: 'os' });
  t.teardown(() => replica.close());
  for (const key of acknowledged) t.ok(await replica.get('profiles', key), `${key} survived the stop`);
});

t.test("the config's replication.logEntriesMax bounds the log even while a peer acknowledges nothing", async (t) => {
  // Method: two nodes in the config, only one started (its peer never acknowledges): the log keeps everything
  // by default, and keeps at most logEntriesMax entries when the config sets it.
  const dir = await mkdtemp(join(tmpdir(), 'tessera-daemon-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const [port, peerPort] = [await freePort(), await freePort()];
  const writes = 40;
  // A node with peers links to them over mutual TLS only: both nodes get certificates from a cluster CA.
  const authority = await createClusterCa('test', Date.now());
  await writeFile(join(dir, 'ca.crt'), authority.certPem);
  for (const [id, region] of [
    ['eu-west-1', 'eu-west'],
    ['us-east-1', 'us-east'],
  ] as const) {
    const cert = await createNodeCertificate(authority, { cluster: 'test', region, node: id }, ['127.0.0.1'], Date.now());
    await writeFile(join(dir, `${id}.crt`), cert.certPem);
    await writeFile(join(dir, `${id}.key`), cert.keyPem, { mode: 0o600 });
  }
  const fetch = caFetch(authority.certPem);
  const floorAfterWrites = async (replication: string): Promise<number> => {
    const name = `cluster-${replication === '' ? 'default' : 'bounded'}.yaml`;
    const path = join(dir, name);
    writeTokensFile(join(dir, `${name}.tokens`), [admin.record]);
    await writeFile(
      path,
      [
        'cluster: test',
        'secret: "q3Xv9zL1pR7wN2cB8mK4tY6hJ0sD5fG_aE-uIoPlZx"',
        `api: { tokensFile: ${name}.tokens }`,
        'tls: { ca: ca.crt }',
        'nodes:',
        `  - { id: eu-west-1, region: eu-west, listen: "127.0.0.1:${port}", data: ${JSON.stringify(`./data-${replication === '' ? 'default' : 'bounded'}`)}, durability: os, cert: eu-west-1.crt, key: eu-west-1.key }`,
        `  - { id: us-east-1, region: us-east, listen: "127.0.0.1:${peerPort}", data: ./peer, durability: os, cert: us-east-1.crt, key: us-east-1.key }`,
        replication,
        '',
      ].join('\n'),
    );
    const daemon = await startDaemon({ configPath: path, nodeId: 'eu-west-1' });
    try {
      for (let i = 0; i < writes; i++) {
        const response = await fetch(`${daemon.url}/v1/kv/profiles/p${i}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json', ...auth },
          body: JSON.stringify({ value: { i } }),
        });
        t.equal(response.status, 200);
      }
      // Several retention intervals of 100 ms (the default interval is 5 s; the test waits 1.5 s).
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const log = (await (await fetch(`${daemon.url}/v1/inspect/log?limit=1`, { headers: auth })).json()) as { floor: number; head: number };
      t.equal(log.head, writes, 'every write is logged');
      return log.floor;
    } finally {
      await daemon.stop();
    }
  };
  t.equal(await floorAfterWrites(''), 0, 'by default nothing unacknowledged is truncated');
  t.equal(await floorAfterWrites('replication: { logEntriesMax: 10, retentionIntervalMs: 100 }'), writes - 10, 'the log keeps the newest 10 entries');
});

t.test('a node with peers and no certificate does not start: links between daemons are never plain', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-daemon-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const [port, peerPort] = [await freePort(), await freePort()];
  writeTokensFile(join(dir, 'plain.yaml.tokens'), [admin.record]);
  const path = join(dir, 'plain.yaml');
  await writeFile(
    path,
    [
      'cluster: test',
      'secret: "q3Xv9zL1pR7wN2cB8mK4tY6hJ0sD5fG_aE-uIoPlZx"',
      'api: { tokensFile: plain.yaml.tokens }',
      'nodes:',
      `  - { id: eu-west-1, region: eu-west, listen: "127.0.0.1:${port}", data: ./data, durability: os }`,
      `  - { id: us-east-1, region: us-east, listen: "127.0.0.1:${peerPort}", data: ./peer, durability: os }`,
      '',
    ].join('\n'),
  );
  await t.rejects(startDaemon({ configPath: path, nodeId: 'eu-west-1' }), {
    code: 'ERR_CONFIG_INVALID',
    message: /node eu-west-1: links to peers are mutual TLS/,
  });
});
