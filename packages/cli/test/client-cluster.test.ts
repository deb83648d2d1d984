// Goal (issue 14 item 5, on real daemons): the Client, over HTTPS with the cluster CA and a token, sends a
// dataset's writes to the nearest node of a region that may hold it, fails over to the other allowed region's
// node when that node is killed (kill -9), never sends the dataset to a region that may not hold it, reads its
// own writes through session tokens, and follows the change feed of a node over TLS.
// Method: three `tessera serve` processes (eu-west, eu-central, us-east) from the test harness; which node took
// a write is read from the session token's dot; us-east is asked directly for what it holds.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { Client, TesseraClientError, decodeSessionToken } from '@tessera/server';
import { api, eventually, startTestCluster } from './harness.js';

const policyText = `version: 1
regions:
  eu-west:    { jurisdiction: eu, location: [53.3, -6.3] }
  eu-central: { jurisdiction: eu, location: [50.1, 8.7] }
  us-east:    { jurisdiction: us, location: [38.9, -77.0] }
datasets:
  catalog:  { type: map, placement: global }
  orders:   { type: map, placement: { regions: [eu-west, eu-central] } }
`;

t.test('client on a real cluster: nearest allowed node, failover after kill -9, never a forbidden region', async (t) => {
  const cluster = await startTestCluster(t, ['eu-west', 'eu-central', 'us-east'], 10, { policyText });
  const [west, central, us] = cluster.nodes as [(typeof cluster.nodes)[number], (typeof cluster.nodes)[number], (typeof cluster.nodes)[number]];
  const ca = await readFile(cluster.layout.security.caFile, 'utf8');
  const client = new Client({
    nodes: cluster.nodes.map((node) => ({ url: node.url, region: node.region })),
    token: cluster.layout.security.token,
    ca,
    near: [51.5, -0.1],
    healthTtlMs: 0,
  });
  const writer = (token: string | null) => decodeSessionToken(token).dot[0];

  const o1 = await client.put('orders', 'o1', { total: 1 });
  t.equal(writer(o1.token), west.id, 'London: eu-west is nearest');
  t.same((await client.get('orders', 'o1'))?.value, { total: 1 });
  t.ok(await eventually(async () => (await api(central, 'GET', '/v1/kv/orders/o1')).status === 200, 10_000), 'replicated to eu-central');

  const feed = new AbortController();
  const seen: string[] = [];
  const following = (async () => {
    for await (const change of client.changes({ dataset: 'orders', node: central.url, signal: feed.signal })) seen.push(change.key);
  })();

  await cluster.kill9(west);
  const o2 = await client.put('orders', 'o2', { total: 2 });
  t.equal(writer(o2.token), central.id, 'after kill -9 of eu-west-1 the write went to eu-central-1');
  t.same((await client.get('orders', 'o2'))?.value, { total: 2 }, 'read back');
  const batch = await client.batch('orders', [
    { key: 'o3', value: { total: 3 } },
    { key: 'o4', value: { total: 4 } },
  ]);
  t.equal(batch.written, 2);
  t.equal(writer(batch.results[0]!.ok ? batch.results[0]!.token : null), central.id);

  t.ok(await eventually(async () => seen.length >= 4, 10_000), `the feed of eu-central showed every order (${seen.join(', ')})`);
  feed.abort();
  await following;
  t.same(seen, ['o1', 'o2', 'o3', 'o4']);

  for (const key of ['o1', 'o2', 'o3']) {
    const answer = await api(us, 'GET', `/v1/kv/orders/${key}`);
    t.equal(answer.status, 421, `us-east does not hold orders/${key}`);
  }
  const usOnly = new Client({ nodes: [{ url: us.url, region: us.region }], token: cluster.layout.security.token, ca });
  const refused = await usOnly.put('orders', 'o9', { total: 9 }).catch((error: unknown) => error);
  t.ok(refused instanceof TesseraClientError);
  t.equal((refused as TesseraClientError).code, 'ERR_POLICY_DENIED');
  t.same([...(refused as TesseraClientError).regions!].sort(), ['eu-central', 'eu-west']);
  const catalog = await usOnly.put('catalog', 'c1', { ok: true });
  t.equal(writer(catalog.token), us.id, 'a global dataset is written where the client is');
});
