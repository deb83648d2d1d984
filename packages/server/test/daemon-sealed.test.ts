// Goal (issue 12 part 4): a daemon whose config names a master key seals its data directory at rest — no value,
// key or tag of a document in any of its files, the directory 0700 and its files 0600 — and refuses to start
// with a master key file that group or others may read; the config's `encryption` section and
// $TESSERA_MASTER_KEY_FILE name the key file.
// Method: startDaemon in-process on loopback with a config, tokens and key file in a temp directory; writes
// through the HTTP API; a raw scan of the data directory's files after the daemon stopped.
import t from 'tap';
import { createServer } from 'node:net';
import { chmod, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isTesseraError } from '@tessera/core';
import { createMasterKeyFile } from '@tessera/store';
import { startDaemon } from '../src/daemon.js';
import { newToken, parseClusterConfig, writeTokensFile } from '../src/index.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const admin = newToken('admin', { roles: ['reader', 'writer', 'operator', 'policy-admin'], datasets: ['*'] }, 0);
const auth = { authorization: `Bearer ${admin.token}` };
const secret = 'secret: "q3Xv9zL1pR7wN2cB8mK4tY6hJ0sD5fG_aE-uIoPlZx"';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function setup(t: Test): Promise<{ dir: string; port: number; config: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-sealed-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  writeTokensFile(join(dir, 'tokens.json'), [admin.record]);
  await createMasterKeyFile(join(dir, 'master.key'));
  await writeFile(
    join(dir, 'cluster.yaml'),
    [
      'cluster: test',
      secret,
      'api: { tokensFile: tokens.json }',
      'encryption: { masterKeyFile: master.key }',
      'nodes:',
      `  - { id: eu-west-1, region: eu-west, listen: "127.0.0.1:${port}", data: ./data, durability: fsync }`,
      '',
    ].join('\n'),
  );
  return { dir, port, config: join(dir, 'cluster.yaml') };
}

t.test('a daemon with a master key seals its data directory', async (t) => {
  const s = await setup(t);
  const daemon = await startDaemon({ configPath: s.config, nodeId: 'eu-west-1', drainGraceMs: 0 });
  let stopped = false;
  t.teardown(() => (stopped ? undefined : daemon.stop()));
  const put = await fetch(`${daemon.url}/v1/kv/profiles/KEYMARK9d2`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', ...auth },
    body: JSON.stringify({ value: { name: 'VALUEMARK9d2' }, tags: ['tagmark9d2'] }),
  });
  t.equal(put.status, 200);
  const got = await fetch(`${daemon.url}/v1/kv/profiles/KEYMARK9d2`, { headers: auth });
  t.match(await got.json(), { value: { name: 'VALUEMARK9d2' } }, 'the API reads the data back');
  await daemon.stop();
  stopped = true;
  const data = join(s.dir, 'data');
  const names = await readdir(data);
  t.ok(names.includes('seal.json') && names.includes('seal.keys'), 'the directory holds the wrapped data key and the key slots');
  for (const name of names) {
    const bytes = await readFile(join(data, name));
    for (const marker of ['KEYMARK9d2', 'VALUEMARK9d2', 'tagmark9d2']) t.notOk(bytes.includes(marker), `${marker} is not readable in ${name}`);
    t.equal(((await stat(join(data, name))).mode & 0o777).toString(8), '600', `${name} is 0600`);
  }
  t.equal(((await stat(data)).mode & 0o777).toString(8), '700', 'the data directory is 0700');
});

t.test('a master key file that group or others may read is refused at start', async (t) => {
  const s = await setup(t);
  await chmod(join(s.dir, 'master.key'), 0o640);
  const error = await startDaemon({ configPath: s.config, nodeId: 'eu-west-1', drainGraceMs: 0 }).catch((caught: unknown) => caught);
  t.ok(isTesseraError(error, 'ERR_FILE_MODE'), `refused: ${(error as Error).message}`);
  t.match((error as Error).message, /master\.key.*mode 0640/);
});

t.test('the config names the key file; $TESSERA_MASTER_KEY_FILE when it does not; no key, no encryption', async (t) => {
  const nodes = 'nodes:\n  - { id: n1, region: eu-west, listen: "127.0.0.1:7001", data: ./data }\n';
  const base = `cluster: test\n${secret}\napi: { tokensFile: tokens.json }\n`;
  t.equal(
    parseClusterConfig(`${base}encryption: { masterKeyFile: keys/master.key }\n${nodes}`, 'c.yaml', {}, { baseDir: '/etc/tessera' }).masterKeyFile,
    '/etc/tessera/keys/master.key',
  );
  t.equal(
    parseClusterConfig(`${base}${nodes}`, 'c.yaml', { TESSERA_MASTER_KEY_FILE: '/run/keys/m.key' }, { baseDir: '/etc/tessera' }).masterKeyFile,
    '/run/keys/m.key',
  );
  t.equal(parseClusterConfig(`${base}${nodes}`, 'c.yaml', {}, { baseDir: '/etc/tessera' }).masterKeyFile, null);
  t.throws(() => parseClusterConfig(`${base}encryption: { keyFile: x }\n${nodes}`, 'c.yaml', {}), { code: 'ERR_CONFIG_INVALID' }, 'unknown fields are refused');
});
