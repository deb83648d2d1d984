// Goal (issue 12 item 3): connections that have not authenticated as a peer cannot make a node hold memory.
// 200 of them at once, each trying to push megabytes of WebSocket frames or headers at the peer endpoint, leave
// the daemon's resident memory within a fixed bound, and the node still serves and answers afterwards.
// Method: a daemon (TLS, one peer configured and absent) in a child process that reports its RSS over IPC;
// 200 clients from 40 loopback addresses: TLS without a client certificate asking to upgrade /v1/replicate and
// then streaming a frame that announces 1 GiB, TLS clients sending endless headers, and plain TCP clients doing
// the same upgrade; the daemon's RSS is sampled throughout and its peak growth compared with the bound.
import t from 'tap';
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type Socket, connect as netConnect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { caFetch, createClusterCa, createNodeCertificate, newToken, writeTokensFile } from '../src/index.js';

const MiB = 1024 * 1024;
/** Connections the attack opens at once. */
const attackers = 200;
/** Loopback source addresses they come from (so that the per-source connection cap is not the only defence). */
const sources = 40;
/** What each attacker tries to push. */
const bytesPerAttackerMax = 8 * MiB;
/** The bound on the daemon's RSS growth under the attack (the brief asked for < 300 MiB). */
const rssGrowthBytesMax = 100 * MiB;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function request(child: ChildProcess, message: string): Promise<Record<string, number>> {
  return new Promise((resolve) => {
    child.once('message', (reply) => resolve(reply as Record<string, number>));
    child.send(message);
  });
}

/**
 * `tls-upgrade`: TLS without a client certificate, the upgrade and a frame pushed at once (the node's refusal
 * is usually lost in the reset that follows); `tls-polite`: the same, reading the answer before pushing;
 * `tls-headers`: endless headers; `plain-upgrade`: the upgrade over plain TCP.
 */
type Kind = 'tls-upgrade' | 'tls-polite' | 'tls-headers' | 'plain-upgrade';

/** One attacker: opens a connection of `kind` and pushes data until refused or `bytesPerAttackerMax` is sent. */
function attack(kind: Kind, port: number, localAddress: string, ca: string): Promise<{ sent: number; answer: string }> {
  return new Promise((resolve) => {
    let sent = 0;
    let answer = '';
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const socket: Socket =
      kind === 'plain-upgrade'
        ? netConnect({ port, host: '127.0.0.1', localAddress })
        : tlsConnect({ port, host: '127.0.0.1', ca, servername: 'localhost', localAddress } as ConnectionOptions);
    const upgrade = [
      'GET /v1/replicate HTTP/1.1',
      `Host: 127.0.0.1:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Version: 13',
      '',
      '',
    ].join('\r\n');
    // A masked binary frame announcing 1 GiB (64-bit length), then its payload for as long as the node reads.
    const frameHeader = Buffer.from([0x82, 0x80 | 127, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4]);
    const pump = () => {
      while (sent < bytesPerAttackerMax && !socket.destroyed) {
        sent += chunk.length;
        if (!socket.write(chunk)) return;
      }
      if (sent >= bytesPerAttackerMax) socket.end();
    };
    socket.on(kind === 'plain-upgrade' ? 'connect' : 'secureConnect', () => {
      if (kind === 'tls-headers') socket.write('GET /v1/replicate HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ');
      else {
        socket.write(upgrade);
        socket.write(frameHeader);
      }
      if (kind !== 'tls-polite') pump();
    });
    socket.on('drain', pump);
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => {
      if (answer.length === 0 && kind === 'tls-polite') setImmediate(pump);
      if (answer.length < 200) answer += text;
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve({ sent, answer: answer.split('\r\n')[0] ?? '' }));
  });
}

t.test("200 unauthenticated connections pushing large frames leave the node's memory bounded", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-peer-memory-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const [port, peerPort] = [await freePort(), await freePort()];
  const authority = await createClusterCa('test', Date.now());
  await writeFile(join(dir, 'ca.crt'), authority.certPem);
  for (const [id, region] of [
    ['eu-west-1', 'eu-west'],
    ['us-east-1', 'us-east'],
  ] as const) {
    const cert = await createNodeCertificate(authority, { cluster: 'test', region, node: id }, ['127.0.0.1', 'localhost'], Date.now());
    await writeFile(join(dir, `${id}.crt`), cert.certPem);
    await writeFile(join(dir, `${id}.key`), cert.keyPem, { mode: 0o600 });
  }
  const admin = newToken('admin', { roles: ['reader', 'writer', 'operator', 'policy-admin'], datasets: ['*'] }, 0);
  writeTokensFile(join(dir, 'tokens.json'), [admin.record]);
  await writeFile(
    join(dir, 'cluster.yaml'),
    [
      'cluster: test',
      'secret: "q3Xv9zL1pR7wN2cB8mK4tY6hJ0sD5fG_aE-uIoPlZx"',
      'api: { tokensFile: tokens.json }',
      'tls: { ca: ca.crt }',
      'nodes:',
      `  - { id: eu-west-1, region: eu-west, listen: "127.0.0.1:${port}", data: ./data, durability: os, cert: eu-west-1.crt, key: eu-west-1.key }`,
      `  - { id: us-east-1, region: us-east, listen: "127.0.0.1:${peerPort}", data: ./peer, durability: os, cert: us-east-1.crt, key: us-east-1.key }`,
      '',
    ].join('\n'),
  );

  const child = fork(join(import.meta.dirname, 'helpers/daemon-child.ts'), [join(dir, 'cluster.yaml'), 'eu-west-1'], {
    execArgv: [...process.execArgv, '--expose-gc'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const ready = await new Promise<{ url: string }>((resolve, reject) => {
    child.once('message', (message) => resolve(message as { url: string }));
    child.once('exit', (code) => reject(new Error(`the daemon exited with ${code}`)));
  });
  const fetchCa = caFetch(authority.certPem);
  const health = async () => (await fetchCa(`${ready.url}/healthz`, { headers: { authorization: `Bearer ${admin.token}` } })).status;
  t.equal(await health(), 200, 'the daemon serves');
  const baseline = (await request(child, 'rss')).rss!;

  let peak = baseline;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, (await request(child, 'rss')).rss!);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  const kinds: Kind[] = ['tls-upgrade', 'tls-polite', 'tls-headers', 'plain-upgrade'];
  const results = await Promise.all(
    Array.from({ length: attackers }, (_, i) => attack(kinds[i % kinds.length]!, port, `127.0.0.${2 + (i % sources)}`, authority.certPem)),
  );
  sampling = false;
  await sampler;

  const offered = results.reduce((sum, r) => sum + r.sent, 0);
  const answers = new Map<string, number>();
  for (const r of results) answers.set(r.answer, (answers.get(r.answer) ?? 0) + 1);
  t.comment(
    `offered ${(offered / MiB).toFixed(0)} MiB; answers ${JSON.stringify(Object.fromEntries(answers))}; RSS ${(baseline / MiB).toFixed(0)} → peak ${(peak / MiB).toFixed(0)} MiB`,
  );
  t.ok(
    results.every((r) => !r.answer.startsWith('HTTP/1.1 101')),
    'no attacker got a WebSocket',
  );
  t.ok((answers.get('HTTP/1.1 403 Forbidden') ?? 0) > 0, 'TLS clients without a certificate were refused at the upgrade (403)');
  t.ok((answers.get('HTTP/1.1 400 Bad Request') ?? 0) > 0, 'plain clients were refused (ERR_TLS_REQUIRED)');
  t.ok(peak - baseline < rssGrowthBytesMax, `RSS grew by ${((peak - baseline) / MiB).toFixed(1)} MiB, under ${rssGrowthBytesMax / MiB} MiB`);
  t.equal(await health(), 200, 'and still serves afterwards');
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.send('stop');
  await exited;
});
