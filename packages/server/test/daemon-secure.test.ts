// Goal (issue 12 items 1, 2, 5, 8; issue 14 item 7): a daemon starts secure or not at all, serves its API over
// HTTPS with a certificate that names it, bounds what unauthenticated and slow clients can hold, and drains
// with /readyz at 503 while requests finish, closing what would not.
// Method: startDaemon in-process on loopback with configs, tokens, certificates and keys written to a temp
// directory; raw sockets where a client must misbehave.
import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { connect, createServer } from 'node:net';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicy, signPolicy } from '@tessera/core';
import { startDaemon } from '../src/daemon.js';
import { caFetch, createClusterCa, createListener, createNodeCertificate, newToken, writeTokensFile } from '../src/index.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

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

interface Setup {
  readonly dir: string;
  readonly port: number;
  readonly config: string;
  readonly ca: string;
}

/** A one-node cluster config with tokens, and with `tls` a CA and the node's certificate. */
async function setup(t: Test, options: { tls?: boolean; certFor?: string; keyMode?: number; extra?: string[] } = {}): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-secure-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  writeTokensFile(join(dir, 'tokens.json'), [admin.record]);
  const lines = ['cluster: test', 'secret: "q3Xv9zL1pR7wN2cB8mK4tY6hJ0sD5fG_aE-uIoPlZx"', 'api: { tokensFile: tokens.json }', ...(options.extra ?? [])];
  let ca = '';
  let node = `  - { id: eu-west-1, region: eu-west, listen: "127.0.0.1:${port}", data: ./data, durability: os }`;
  if (options.tls === true) {
    const authority = await createClusterCa('test', Date.now());
    ca = authority.certPem;
    const cert = await createNodeCertificate(
      authority,
      { cluster: 'test', region: 'eu-west', node: options.certFor ?? 'eu-west-1' },
      ['127.0.0.1'],
      Date.now(),
    );
    await writeFile(join(dir, 'ca.crt'), authority.certPem);
    await writeFile(join(dir, 'node.crt'), cert.certPem);
    await writeFile(join(dir, 'node.key'), cert.keyPem, { mode: 0o600 });
    if (options.keyMode !== undefined) await chmod(join(dir, 'node.key'), options.keyMode);
    lines.push('tls: { ca: ca.crt }');
    node = `  - { id: eu-west-1, region: eu-west, listen: "127.0.0.1:${port}", data: ./data, durability: os, cert: node.crt, key: node.key }`;
  }
  lines.push('nodes:', node, '');
  await writeFile(join(dir, 'cluster.yaml'), lines.join('\n'));
  return { dir, port, config: join(dir, 'cluster.yaml'), ca };
}

/** Sends raw bytes; resolves with what came back when the server closes (or after `waitMs`). */
function raw(port: number, text: string, waitMs = 5_000): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(received);
    }, waitMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(received);
    });
    socket.on('error', () => undefined);
    socket.write(text);
  });
}

t.test("the API over HTTPS with the node's certificate; plain HTTP is refused; anonymous calls get 401", async (t) => {
  const s = await setup(t, { tls: true });
  const daemon = await startDaemon({ configPath: s.config, nodeId: 'eu-west-1', drainGraceMs: 0 });
  t.teardown(() => daemon.stop());
  t.equal(daemon.url, `https://127.0.0.1:${s.port}`);
  const secureFetch = caFetch(s.ca);
  const put = await secureFetch(`${daemon.url}/v1/kv/profiles/u1`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', ...auth },
    body: '{"value":{"a":1}}',
  });
  t.equal(put.status, 200, 'a client that trusts the cluster CA and has a token writes');
  const anonymous = await secureFetch(`${daemon.url}/v1/kv/profiles/u1`);
  t.equal(anonymous.status, 401);
  t.equal(anonymous.headers.get('www-authenticate'), 'Bearer realm="tessera"');
  t.match(await anonymous.json(), { code: 'ERR_UNAUTHENTICATED' });
  await t.rejects(fetch(`${daemon.url}/healthz`, { headers: auth }), 'a client without the cluster CA does not trust the node');
  const plain = await raw(s.port, `GET /v1/kv/profiles/u1 HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${admin.token}\r\n\r\n`);
  t.match(plain, /^HTTP\/1\.1 400 /, 'plain HTTP on the HTTPS port is refused');
  t.match(plain, /ERR_TLS_REQUIRED/);
  t.notMatch(plain, /"a":1/, 'and answers nothing of the data');
});

t.test(
  "start-up refuses what would not be secure: another node's certificate, a key others may read, an operator private key, a world-readable tokens file",
  async (t) => {
    const other = await setup(t, { tls: true, certFor: 'eu-west-2' });
    await t.rejects(startDaemon({ configPath: other.config, nodeId: 'eu-west-1' }), {
      code: 'ERR_PEER_IDENTITY',
      message: /certificate is for node eu-west-2 in eu-west, not eu-west-1/,
    });
    const open = await setup(t, { tls: true, keyMode: 0o644 });
    await t.rejects(startDaemon({ configPath: open.config, nodeId: 'eu-west-1' }), {
      code: 'ERR_CONFIG_INVALID',
      message: /node\.key: the TLS key has mode 0644/,
    });
    const withPrivate = await setup(t, { extra: ['operatorKey: operator.pem'] });
    await writeFile(join(withPrivate.dir, 'operator.pem'), generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, {
      mode: 0o600,
    });
    await t.rejects(startDaemon({ configPath: withPrivate.config, nodeId: 'eu-west-1' }), {
      code: 'ERR_CONFIG_INVALID',
      message: /operatorKey holds a private key/,
    });
    const unsigned = await setup(t, { extra: ['operatorKey: operator.pub', 'policy: policy.yaml'] });
    await writeFile(join(unsigned.dir, 'operator.pub'), generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string);
    await writeFile(
      join(unsigned.dir, 'policy.yaml'),
      'version: 1\nregions:\n  eu-west: { jurisdiction: eu }\ndatasets:\n  catalog: { type: map, placement: global }\n',
    );
    await t.rejects(startDaemon({ configPath: unsigned.config, nodeId: 'eu-west-1' }), {
      code: 'ERR_POLICY_SIGNATURE_INVALID',
      message: /policy\.yaml\.sig: the policy file .* is not signed/,
    });
    await writeFile(
      join(unsigned.dir, 'policy.yaml.sig'),
      JSON.stringify(
        signPolicy(
          parsePolicy('version: 1\nregions:\n  eu-west: { jurisdiction: eu }\ndatasets:\n  catalog: { type: map, placement: global }\n', 'p'),
          'test',
          generateKeyPairSync('ed25519').privateKey,
        ),
      ),
    );
    await t.rejects(
      startDaemon({ configPath: unsigned.config, nodeId: 'eu-west-1' }),
      { code: 'ERR_POLICY_SIGNATURE_INVALID', message: /not an operator key of this cluster/ },
      'signed by another key',
    );
    const readable = await setup(t);
    await chmod(join(readable.dir, 'tokens.json'), 0o644);
    await t.rejects(startDaemon({ configPath: readable.config, nodeId: 'eu-west-1' }), {
      code: 'ERR_CONFIG_INVALID',
      message: /tokens\.json: the tokens file has mode 0644/,
    });
  },
);

t.test('a chunked body over the limit is answered 413 with Connection: close, and the drain does not wait for it', async (t) => {
  const s = await setup(t);
  const daemon = await startDaemon({ configPath: s.config, nodeId: 'eu-west-1', drainGraceMs: 0 });
  const socket = connect(s.port, '127.0.0.1');
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (received += chunk));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.write(
    `PUT /v1/kv/profiles/u1 HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${admin.token}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`,
  );
  // Keep sending 64 KiB chunks — 17 MiB in all, past the 2 MiB limit and past the old 16 MiB discard bound.
  const chunk = `${(64 * 1024).toString(16)}\r\n${'x'.repeat(64 * 1024)}\r\n`;
  for (let i = 0; i < 272 && !socket.destroyed; i++) {
    if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve).once('close', resolve));
    if (received.length > 0) break;
  }
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 10_000))]);
  t.match(received, /^HTTP\/1\.1 413 /, 'refused as too large');
  t.match(received, /connection: close/i, 'and the connection is closed');
  t.match(received, /ERR_BODY_TOO_LARGE/);
  t.ok(socket.destroyed || socket.readableEnded, 'the server closed the connection');
  const startedMs = Date.now();
  await daemon.stop();
  t.ok(Date.now() - startedMs < 10_000, "SIGTERM's drain finishes");
});

t.test('an anonymous request is refused before its body is read: nothing it sends is buffered', async (t) => {
  const s = await setup(t);
  const daemon = await startDaemon({ configPath: s.config, nodeId: 'eu-west-1', drainGraceMs: 0 });
  t.teardown(() => daemon.stop());
  const startedMs = Date.now();
  // A declared 50 MiB body of which only a little is ever sent: the answer must not wait for it.
  const answer = await raw(
    s.port,
    `PUT /v1/kv/profiles/u1 HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${50 * 1024 * 1024}\r\n\r\n{"value":`,
    5_000,
  );
  t.match(answer, /^HTTP\/1\.1 401 /, 'refused at once');
  t.match(answer, /www-authenticate: Bearer realm="tessera"/i);
  t.match(answer, /connection: close/i, 'and the connection closes rather than read the body');
  t.ok(Date.now() - startedMs < 4_000, 'without waiting for the body');
  t.equal(daemon.replica.lastSeq, 0);
});

t.test('the drain answers /readyz 503 during its grace period while requests still finish', async (t) => {
  const s = await setup(t);
  const daemon = await startDaemon({ configPath: s.config, nodeId: 'eu-west-1', drainGraceMs: 1_500 });
  t.equal((await fetch(`${daemon.url}/readyz`, { headers: auth })).status, 200);
  const stopping = daemon.stop();
  await new Promise((resolve) => setTimeout(resolve, 200));
  const ready = await fetch(`${daemon.url}/readyz`, { headers: auth });
  t.equal(ready.status, 503, 'draining: not ready');
  t.match(await ready.json(), { ready: false, draining: true });
  const write = await fetch(`${daemon.url}/v1/kv/profiles/late`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', ...auth },
    body: '{"value":{"late":true}}',
  });
  t.equal(write.status, 200, 'a request during the grace period is still served');
  await stopping;
  await t.rejects(fetch(`${daemon.url}/readyz`, { headers: auth }), 'after the drain nothing is accepted');
});

t.test('connection caps: per source and in total; a connection that never speaks is closed', async (t) => {
  const events: Array<Record<string, unknown>> = [];
  const listener = createListener({
    handle: (_req, res) => res.end('ok'),
    upgrade: (_req, socket) => socket.destroy(),
    tls: null,
    log: (event) => events.push(event),
    connectionsMax: 4,
    connectionsPerSourceMax: 2,
  });
  await new Promise<void>((resolve) => listener.front.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(() => {
    listener.destroyAll();
    return listener.close();
  });
  const port = (listener.front.address() as { port: number }).port;
  const open = () =>
    new Promise<{ closed: Promise<boolean> }>((resolve) => {
      const socket = connect(port, '127.0.0.1', () =>
        resolve({
          closed: new Promise((done) => {
            socket.on('close', () => done(true));
            setTimeout(() => done(false), 500);
          }),
        }),
      );
      socket.on('error', () => undefined);
      t.teardown(() => socket.destroy());
    });
  const first = await open();
  const second = await open();
  const third = await open();
  t.equal(await third.closed, true, 'a third connection from one source is closed at once');
  t.equal(await first.closed, false, 'the first two stay');
  t.equal(await second.closed, false);
  t.match(events.at(-1), { event: 'connection-refused', code: 'ERR_CONNECTIONS_EXCEEDED', connectionsPerSourceMax: 2 });
});
