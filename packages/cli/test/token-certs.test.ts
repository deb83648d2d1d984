// Goal (issue 12 items 1 and 2): `tessera token` creates a 256-bit token shown once and stored only as a digest
// in a 0600 file, lists without tokens, and revokes — a running daemon stops accepting a revoked token within
// its reload bound, without a restart; `tessera certs` makes a CA and node certificates whose keys are 0600 and
// whose identity a daemon accepts.
// Method: the CLI in-process (runCli) on a temp directory; one daemon (startDaemon) on loopback with HTTPS.
import t from 'tap';
import { createServer } from 'node:net';
import { readFile, stat, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '@tessera/cli';
import { caFetch, startDaemon, tokensReloadMs } from '@tessera/server';

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(
    args,
    (line) => out.push(line),
    (line) => err.push(line),
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

t.test('token create, list, revoke; certs ca and node; a daemon with both', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-token-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const tokens = join(dir, 'tokens.json');

  const created = await cli(['token', 'create', '--file', tokens, '--name', 'ci', '--role', 'writer', '--datasets', 'catalog,orders']);
  t.equal(created.code, 0, created.err);
  const token = created.out.trim();
  t.match(token, /^tsr_[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
  t.equal((await stat(tokens)).mode & 0o777, 0o600, 'the tokens file is 0600');
  const stored = await readFile(tokens, 'utf8');
  t.notOk(stored.includes(token.slice(4)), 'the token is not stored');
  t.match(stored, /"hash": "sha256:[0-9a-f]{64}"/, 'only its digest');
  const listed = await cli(['token', 'list', '--file', tokens]);
  t.match(listed.out, /ci\s+writer\s+catalog,orders/);
  t.notOk(listed.out.includes(token), 'listing never shows a token');
  t.equal((await cli(['token', 'create', '--file', tokens, '--name', 'ci', '--role', 'reader', '--datasets', '*'])).code, 1, 'names are unique');
  const bad = await cli(['token', 'create', '--file', tokens, '--name', 'x', '--role', 'root']);
  t.match(bad.err, /role "root" is unknown \(the roles are reader, writer, operator, policy-admin\)/);
  t.match((await cli(['token', 'create', '--file', tokens, '--name', 'y', '--role', 'reader'])).err, /the reader and writer roles need datasets/);
  const ops = (await cli(['token', 'create', '--file', tokens, '--name', 'ops', '--role', 'operator'])).out.trim();

  const certs = join(dir, 'certs');
  t.equal((await cli(['certs', 'ca', '--cluster', 'acme', '--dir', certs])).code, 0);
  const node = await cli(['certs', 'node', '--dir', certs, '--cluster', 'acme', '--region', 'eu-west', '--node', 'eu-west-1', '--host', '127.0.0.1']);
  t.equal(node.code, 0, node.err);
  t.equal((await stat(join(certs, 'ca.key'))).mode & 0o777, 0o600, 'the CA key is 0600');
  t.equal((await stat(join(certs, 'eu-west-1.key'))).mode & 0o777, 0o600, 'the node key is 0600');
  t.equal((await cli(['certs', 'ca', '--cluster', 'acme', '--dir', certs])).code, 1, 'an existing key is never overwritten');
  const shown = await cli(['certs', 'show', join(certs, 'eu-west-1.crt')]);
  t.match(JSON.parse(shown.out), { identity: { cluster: 'acme', region: 'eu-west', node: 'eu-west-1' }, ca: false });

  const port = await freePort();
  await writeFile(
    join(dir, 'cluster.yaml'),
    [
      'cluster: acme',
      'secret: "q3Xv9zL1pR7wN2cB8mK4tY6hJ0sD5fG_aE-uIoPlZx"',
      'api: { tokensFile: tokens.json }',
      'tls: { ca: certs/ca.crt }',
      'nodes:',
      `  - { id: eu-west-1, region: eu-west, listen: "127.0.0.1:${port}", data: ./data, durability: os, cert: certs/eu-west-1.crt, key: certs/eu-west-1.key }`,
      '',
    ].join('\n'),
  );
  const daemon = await startDaemon({ configPath: join(dir, 'cluster.yaml'), nodeId: 'eu-west-1', drainGraceMs: 0 });
  t.teardown(() => daemon.stop());
  const secureFetch = caFetch(await readFile(join(certs, 'ca.crt'), 'utf8'));
  const put = (bearer: string, dataset: string) =>
    secureFetch(`${daemon.url}/v1/kv/${dataset}/k1`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
      body: '{"value":{"a":1}}',
    }).then((answer) => answer.status);
  t.equal(await put(token, 'catalog'), 200, 'the writer token writes its dataset');
  t.equal(await put(token, 'profiles'), 403, 'but no other');
  t.equal(await put(ops, 'catalog'), 403, 'an operator token writes nothing');
  const revoked = await cli(['token', 'revoke', '--file', tokens, 'ci']);
  t.equal(revoked.code, 0, revoked.err);
  await new Promise((resolve) => setTimeout(resolve, tokensReloadMs + 200));
  t.equal(await put(token, 'catalog'), 401, 'a revoked token is refused by the running daemon');
});
