// Goal: `tessera inspect` shows a replica's state as an operator would check it — on a running node (--url) and
// offline on its data directory once it is stopped — with the same answers both ways, tables that agree with
// the JSON, JSON that agrees with the node's API and the store, and a clear refusal of a running node's
// directory that points to --url; the offline reads change no file of the directory.
// Method: a two-region cluster of real daemons (startTestCluster); documents written through the API, a
// conflict made by writing both sides of a partitioned link; the CLI run in-process (runCli). Once the
// cluster is quiet, online answers are compared with the API; the node is stopped and the offline answers
// are compared with the online ones and with the store's reader on the same directory.
import t from 'tap';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, stopChild } from '@tessera/cli';
import { inspectLog, inspectPeers, inspectSummary, masterKeyFromEnv, openDataDirectorySnapshot, storeFormatVersion } from '@tessera/store';
import { api, eventually, startTestCluster } from './harness.js';

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

/** The type of a subtest's `t`. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

async function json(t: Test, args: string[]): Promise<any> {
  const result = await cli([...args, '--json']);
  t.equal(result.code, 0, `tessera ${args.join(' ')} --json: ${result.err}`);
  return JSON.parse(result.out);
}

/** Names, bytes and modification times of a directory's files (LOCK only stat'ed, as no process holds it). */
async function files(dir: string): Promise<Record<string, { bytes: string; mtimeMs: number }>> {
  const out: Record<string, { bytes: string; mtimeMs: number }> = {};
  for (const name of (await readdir(dir)).sort()) {
    const info = await stat(join(dir, name));
    out[name] = { bytes: name === 'LOCK' ? `${info.size}` : (await readFile(join(dir, name))).toString('base64'), mtimeMs: info.mtimeMs };
  }
  return out;
}

t.test('inspect a running node with --url, then its directory offline: the same answers', async (t) => {
  const cluster = await startTestCluster(t, ['eu-west', 'us-east']);
  const [eu, us] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
  const dir = join(cluster.layout.dir, 'data', eu.id);
  const put = async (node: typeof eu, path: string, body: unknown) => t.equal((await api(node, 'PUT', path, body)).status, 200, `PUT ${path}`);
  await put(eu, '/v1/kv/profiles/ada', { value: { name: 'Ada' }, tags: ['pii'] });
  await put(eu, '/v1/kv/profiles/bob', { value: { name: 'Bob' } });
  t.equal((await api(eu, 'DELETE', '/v1/kv/profiles/bob')).status, 200);
  for (let i = 0; i < 3; i++) await put(eu, `/v1/kv/profiles/user-${i}`, { value: { i } });
  for (const proxy of cluster.layout.proxies.values()) proxy.partition(true);
  await put(eu, '/v1/kv/catalog/item', { value: { price: 1 } });
  await put(us, '/v1/kv/catalog/item', { value: { price: 2 } });
  for (const proxy of cluster.layout.proxies.values()) proxy.heal();
  const quiet = async () => {
    const status = (await api(eu, 'GET', '/v1/status')).body as { links: Array<{ state: string; backlogEntries: number; inflightBatches: number }> };
    const conflicts = (await api(eu, 'GET', '/v1/conflicts')).body.conflicts as unknown[];
    return conflicts.length > 0 && status.links.every((link) => link.state === 'open' && link.backlogEntries === 0 && link.inflightBatches === 0);
  };
  t.ok(await eventually(quiet, 30_000), 'the link heals, the conflict is recorded and everything is acknowledged');

  // ---- online
  const locked = await cli(['inspect', dir, 'summary']);
  t.equal(locked.code, 1, "the running node's directory is refused");
  t.match(locked.err, /ERR_STORE_LOCKED: data directory .* is in use by a running node .*--url/);

  const summary = await json(t, ['inspect', '--url', eu.url, 'summary']);
  t.match(summary, { node: eu.id, region: 'eu-west', format: storeFormatVersion, scan: { complete: true } });
  t.match(
    summary.datasets.find((d: { dataset: string }) => d.dataset === 'profiles'),
    { documents: 5, live: 4, deleted: 1, conflicts: 0 },
  );
  t.ok(summary.datasets.find((d: { dataset: string }) => d.dataset === 'catalog').conflicts >= 1, 'catalog has the conflict');
  t.equal(summary.log.head, (await api(eu, 'GET', '/v1/status')).body.lastSeq, "the log head is the node's");
  t.same(summary.policy.enforced.version, (await api(eu, 'GET', '/v1/policy')).body.enforced.version);
  t.same(summary.policy.enforced.hash, (await api(eu, 'GET', '/v1/policy')).body.enforced.hash);
  const summaryTable = await cli(['inspect', '--url', eu.url, 'summary']);
  t.match(summaryTable.out, /^profiles\s+5\s+4\s+1\s+\d+ B\s+0\s+0$/m, 'the table row agrees with the JSON');
  t.match(summaryTable.out, new RegExp(`policy v${summary.policy.enforced.version} enforced`));

  const keys = await json(t, ['inspect', '--url', eu.url, 'keys', 'profiles']);
  t.same(
    keys.items.map((item: { key: string }) => item.key),
    ['ada', 'bob', 'user-0', 'user-1', 'user-2'],
  );
  const listed = (await api(eu, 'GET', '/v1/kv/profiles')).body.items.map((item: { key: string }) => item.key);
  t.same(
    keys.items.filter((item: { state: string }) => item.state === 'live').map((item: { key: string }) => item.key),
    listed,
    "live keys are the API's",
  );
  const keysTable = await cli(['inspect', '--url', eu.url, 'keys', 'profiles', '--prefix', 'user-', '--limit', '2']);
  t.match(keysTable.out, /^user-0\s+map\s+live/m);
  t.match(keysTable.out, /more documents: continue with --after "user-1"/);
  t.match((await cli(['inspect', '--url', eu.url, 'keys', 'profiles'])).out, /^bob\s+map\s+deleted/m, 'a tombstone is listed');

  const item = await json(t, ['inspect', '--url', eu.url, 'doc', 'catalog', 'item']);
  const view = (await api(eu, 'GET', '/v1/kv/catalog/item')).body;
  t.same(item.value, view.value, "the value is the API's");
  t.same(item.context, view.context);
  t.same(item.conflicts, view.conflicts);
  t.equal(item.siblings[0].entries.length, 2, 'both concurrent prices are kept');
  t.same(
    item.nodes.map((n: { node: string }) => n.node),
    [eu.id, us.id],
  );
  const docTable = await cli(['inspect', '--url', eu.url, 'doc', 'catalog', 'item']);
  t.match(docTable.out, /concurrent values at price/);
  t.match(docTable.out, new RegExp(`^${view.value.price}\\s+\\S+:1\\s+\\S+\\s+yes$`, 'm'), 'the shown value is marked');
  t.match(docTable.out, /concurrent-write/);

  const tail = await json(t, ['inspect', '--url', eu.url, 'log', '--limit', '3']);
  t.ok(tail.entries.length > 0 && tail.entries.length <= 3);
  t.equal(tail.entries[tail.entries.length - 1].seq, summary.log.head, 'the newest entries end at the head');
  t.notOk(
    tail.entries.some((e: object) => 'value' in e),
    'no values unless asked',
  );
  const withValues = await json(t, ['inspect', '--url', eu.url, 'log', '--from', '1', '--to', '1', '--values']);
  t.same(
    withValues.entries.map((e: { value?: unknown }) => e.value),
    [{ name: 'Ada' }],
  );

  const peers = await json(t, ['inspect', '--url', eu.url, 'peers']);
  t.match(peers.links, [{ peer: us.id, state: 'open' }], 'with --url: the live links');
  t.ok(
    peers.cursors.some((c: { peer: string }) => c.peer === us.id),
    'the durable cursors',
  );
  t.same(
    peers.frontiers.map((f: { origin: string }) => f.origin),
    [us.id],
  );
  t.match((await cli(['inspect', '--url', eu.url, 'peers'])).out, new RegExp(`^${us.id}\\s+main\\s+\\d+\\s+\\d+\\s+open\\s+\\d+\\s+\\d+ ms\\s+\\d+$`, 'm'));

  const conflicts = await json(t, ['inspect', '--url', eu.url, 'conflicts']);
  t.same(conflicts.conflicts, (await api(eu, 'GET', '/v1/conflicts')).body.conflicts, "the API's conflict records");
  t.equal(conflicts.more, false);

  // ---- offline, once the node is stopped
  await stopChild(cluster.children.get(eu.id)!);
  const before = await files(dir);
  // A dev cluster seals its data directories: the offline reads take the master key from the environment.
  const masterKeyFile = cluster.layout.security.masterKeyFile!;
  t.match((await cli(['inspect', dir, 'summary'])).err, /ERR_SEAL_KEY_MISSING/, 'without the master key a sealed directory is refused');
  process.env.TESSERA_MASTER_KEY_FILE = masterKeyFile;
  t.teardown(() => delete process.env.TESSERA_MASTER_KEY_FILE);
  const offline = async (args: string[]) => json(t, ['inspect', dir, ...args]);
  t.same(await offline(['keys', 'profiles']), keys, 'keys: the same answer offline');
  t.same(await offline(['doc', 'catalog', 'item']), item, 'doc: the same answer offline');
  t.same(await offline(['conflicts']), conflicts, 'conflicts: the same answer offline');
  t.same((await offline(['summary'])).datasets, summary.datasets, 'summary: the same counts offline');
  t.same((await cli(['inspect', dir, 'doc', 'catalog', 'item'])).out, docTable.out, 'and the same table');
  const offlinePeers = await offline(['peers']);
  t.equal(offlinePeers.links, null, 'offline there are no live links');
  t.match((await cli(['inspect', dir, 'peers'])).out, /shown with --url on the running node/);

  const snapshot = await openDataDirectorySnapshot(dir, await masterKeyFromEnv());
  t.teardown(() => snapshot.close());
  t.same(await offline(['summary']), JSON.parse(JSON.stringify(await inspectSummary(snapshot.reader))), "summary: the store's answer");
  t.same(
    await offline(['log', '--from', '0', '--limit', '1000']),
    JSON.parse(JSON.stringify(await inspectLog(snapshot.reader, { from: 0, limit: 1000 }))),
    "log: the store's answer",
  );
  t.same(
    { ...offlinePeers, links: undefined },
    { ...JSON.parse(JSON.stringify(await inspectPeers(snapshot.reader))), links: undefined },
    "peers: the store's answer",
  );
  t.same(await files(dir), before, 'the offline reads changed no file of the directory');
});

t.test('usage: a directory or --url, coded errors, exit codes', async (t) => {
  const cases: Array<[string[], number, RegExp]> = [
    [['inspect', 'summary'], 1, /ERR_OPTION_INVALID: tessera inspect needs a stopped node's data directory .* or a running node \(tessera inspect --url/],
    [['inspect', '/nonexistent/tessera/data', 'summary'], 1, /ERR_STORE_NOT_FOUND: data directory \/nonexistent\/tessera\/data does not exist/],
    [['inspect', './data', '--url', 'http://127.0.0.1:1', 'summary'], 1, /give a data directory \(\.\/data\) or --url \(http:\/\/127\.0\.0\.1:1\), not both/],
    [['inspect', '--url', 'http://127.0.0.1:1', 'keys', 'profiles', '--limit', 'ten'], 1, /--limit "ten" is not a non-negative integer/],
    [['inspect', '--url', 'http://127.0.0.1:1', 'summary'], 1, /cannot reach the node/],
    [['inspect', './data', 'no-such-subcommand'], 2, /./],
    [['inspect', '--help'], 0, /Commands:\n\s+summary .*\n[\s\S]*keys .*<dataset>[\s\S]*doc .*<dataset> <key>[\s\S]*log[\s\S]*peers[\s\S]*conflicts/],
  ];
  for (const [args, code, message] of cases) {
    const result = await cli(args);
    t.equal(result.code, code, `tessera ${args.join(' ')} exits ${code}`);
    if (code === 1) t.match(result.err, message, `tessera ${args.join(' ')}: ${result.err}`);
    if (code === 0) t.match(result.out, message, `tessera ${args.join(' ')} lists the subcommands`);
  }
});
