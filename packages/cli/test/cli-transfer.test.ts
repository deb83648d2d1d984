// Goal (issue 14 item 3): `tessera import` writes an NDJSON file through the batch route in batches within the
// node's limits and reports each refused line by number and code (exit 1); `tessera export` prints what import
// reads back, so export → import → export is the identity; `export … | head -1` exits quietly; `tessera watch`
// prints the changes as they come, from the node's head unless --since says otherwise; TESSERA_URL and
// TESSERA_TOKEN stand in for --url and --token.
// Method: a real HTTP API (createHttpHandler) on 127.0.0.1:0 over a real replica in a temp directory; the CLI
// in-process (runCli) for the commands, and as a real process in a shell pipeline for `| head -1`.
import t from 'tap';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Replica } from '@tessera/store';
import { TokenStore, createHttpHandler, newToken } from '@tessera/server';
import { runCli } from '@tessera/cli';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));

async function setup(t: Test) {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-transfer-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const replica = await Replica.open({
    path: join(dir, 'n1'),
    node: 'eu-west-1',
    region: 'eu-west',
    durability: 'os',
    datasets: { visits: { type: 'counter' } },
  });
  const admin = newToken('admin', { roles: ['reader', 'writer'], datasets: ['*'] }, 0);
  const api = createHttpHandler({ replica, access: { tokens: TokenStore.of([admin.record]) }, node: { id: 'eu-west-1', region: 'eu-west' } });
  const server = createServer(api.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    api.setDraining(true);
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await replica.close();
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const saved = { url: process.env.TESSERA_URL, token: process.env.TESSERA_TOKEN };
  process.env.TESSERA_URL = url;
  process.env.TESSERA_TOKEN = admin.token;
  t.teardown(() => {
    for (const [name, value] of [
      ['TESSERA_URL', saved.url],
      ['TESSERA_TOKEN', saved.token],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
  return { replica, url, token: admin.token, dir, server };
}

async function cli(args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(
    args,
    (line) => out.push(line),
    (line) => err.push(line),
  );
  return { code, out, err };
}

t.test('import → export → import → export: the same documents; refused lines are named; batches stay within the limits', async (t) => {
  const { replica, dir } = await setup(t);
  const lines = Array.from({ length: 2_500 }, (_, i) =>
    JSON.stringify({ key: `k${String(i).padStart(4, '0')}`, value: { i, name: `n${i}` }, ...(i % 10 === 0 ? { tags: ['pii'] } : {}) }),
  );
  lines.splice(7, 0, '{not json');
  lines.splice(20, 0, JSON.stringify({ key: '', value: {} }));
  lines.push(JSON.stringify({ key: 'plain', value: 'text', type: 'lww' }), '', JSON.stringify({ key: 'k0001', delete: true }));
  const file = join(dir, 'in.ndjson');
  await writeFile(file, `${lines.join('\n')}\n`);
  const before = replica.commitStats.batches;
  const imported = await cli(['import', 'catalog', file]);
  t.equal(imported.code, 1, 'exit 1: some lines were refused');
  t.same(imported.out, ['imported 2504 documents into catalog: 2502 written, 2 refused']);
  t.match(imported.err.join('\n'), /line 8: ERR_BODY_INVALID: not JSON/);
  t.match(imported.err.join('\n'), /line 21: ERR_KEY_INVALID/);
  t.match(imported.err.join('\n'), /sent 1001 documents \(38%\)/, 'a plain progress line per batch when stderr is not a terminal');
  t.ok(replica.commitStats.batches - before < 500, 'group-committed, not one commit per document');
  t.equal(await replica.get('catalog', 'k0001'), undefined, 'a delete line deletes');

  const exported = await cli(['export', 'catalog']);
  t.equal(exported.code, 0);
  t.equal(exported.out.length, 2_500, 'every live document');
  const first = JSON.parse(exported.out[0]!) as Record<string, unknown>;
  t.same(first, { key: 'k0000', type: 'map', value: { i: 0, name: 'n0' }, tags: ['pii'] });
  t.match(JSON.parse(exported.out.find((line) => line.includes('"plain"'))!), { key: 'plain', type: 'lww', value: 'text' });

  // Every value type but Automerge comes back as it was: counters, sets, registers, Yjs documents, tags.
  await replica.counter('catalog', 'z-counter').increment(41);
  await replica.tag('catalog', 'z-counter', { add: ['hot'] });
  await replica.set('catalog', 'z-set').add('a');
  await replica.put('catalog', 'z-mv', { one: 1 }, { type: 'mv' });
  await replica.yjs('catalog', 'z-yjs').change((ydoc) => ydoc.getText('t').insert(0, 'hello'));
  await replica.automerge('catalog', 'z-am').change<{ n: number }>((d) => {
    d.n = 1;
  });
  const full = await cli(['export', 'catalog']);
  t.equal(full.out.length, 2_505);
  const copy = join(dir, 'copy.ndjson');
  await writeFile(copy, `${full.out.join('\n')}\n`);
  const again = await cli(['import', 'copy', copy]);
  t.equal(again.code, 1, 'the Automerge document is refused');
  t.match(again.err.join('\n'), /line 2501: ERR_VALUE_INVALID: an Automerge document is exported as its JSON view/);
  t.same(
    (await cli(['export', 'copy'])).out,
    full.out.filter((line) => !line.includes('"z-am"')),
    'export of the import of an export is the export',
  );
  t.match(await replica.get('copy', 'z-counter'), { type: 'counter', value: 41, tags: ['hot'] });
});

t.test('export | head -1 exits quietly; export | import - copies a dataset', async (t) => {
  const { replica, url, token } = await setup(t);
  for (let start = 0; start < 3_000; start += 500) {
    await Promise.all(Array.from({ length: 500 }, (_, i) => replica.put('catalog', `k${String(start + i).padStart(5, '0')}`, { i: start + i })));
  }
  const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn('bash', ['-c', `set -o pipefail; node ${bin} export catalog | head -1`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TESSERA_URL: url, TESSERA_TOKEN: token },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  t.equal(result.stdout, `${JSON.stringify({ key: 'k00000', type: 'map', value: { i: 0 }, tags: [] })}\n`);
  t.equal(result.stderr, '', 'nothing on stderr');
  t.equal(result.code, 0, 'exit 0');
  // A pipeline: export into import from stdin (`-`).
  const piped = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    const child = spawn('bash', ['-c', `set -o pipefail; node ${bin} export catalog | node ${bin} import copy -`], {
      stdio: ['ignore', 'pipe', 'ignore'],
      env: { ...process.env, TESSERA_URL: url, TESSERA_TOKEN: token },
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.on('close', (code) => resolve({ code, stdout }));
  });
  t.equal(piped.code, 0);
  t.equal(piped.stdout, 'imported 3000 documents into copy: 3000 written, 0 refused\n');
  t.same((await replica.get('copy', 'k02999'))?.value, { i: 2999 });
});

t.test('watch: changes as they come, from the head by default or from --since', async (t) => {
  const { replica } = await setup(t);
  await replica.put('catalog', 'old', { a: 0 });
  const watching = cli(['watch', '--dataset', 'catalog', '--count', '2']);
  setTimeout(
    () =>
      void (async () => {
        await replica.put('orders', 'o1', { hidden: true });
        await replica.put('catalog', 'new1', { a: 1 });
        await replica.delete('catalog', 'old');
      })(),
    300,
  );
  const watched = await watching;
  t.equal(watched.code, 0, watched.err.join('\n'));
  t.match(watched.out, [/^\d+\tcatalog\/new1\t\{"a":1\}$/, /^\d+\tcatalog\/old\t\(deleted\)$/], 'only what changed after it started, of the dataset asked');
  const replay = await cli(['watch', '--since', '0', '--count', '2', '--json']);
  t.same(
    replay.out.map((line) => (JSON.parse(line) as { key: string }).key),
    ['old', 'o1'],
  );
  t.equal((await cli(['watch', '--since', 'x'])).code, 1);
});

t.test('watch: a dropped connection is resumed from the last change, nothing lost or repeated', async (t) => {
  const { replica, server } = await setup(t);
  const watching = cli(['watch', '--since', '0', '--count', '4']);
  await replica.put('catalog', 'a', { n: 1 });
  await replica.put('catalog', 'b', { n: 2 });
  await new Promise((resolve) => setTimeout(resolve, 500));
  server.closeAllConnections();
  await replica.put('catalog', 'c', { n: 3 });
  await replica.put('catalog', 'd', { n: 4 });
  const watched = await watching;
  t.equal(watched.code, 0, watched.err.join('\n'));
  t.same(
    watched.out.map((line) => line.split('\t')[1]),
    ['catalog/a', 'catalog/b', 'catalog/c', 'catalog/d'],
  );
});
