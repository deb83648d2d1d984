// Goal (issue 14 item 5): the typed Client sends a dataset's requests only to nodes whose region may hold it,
// nearest first; fails over between the nodes of an allowed region when one is killed or draining; refuses
// (ERR_POLICY_DENIED) to send a dataset to a region that may not hold it, so nothing reaches that node; carries
// session tokens so a read elsewhere waits for the client's own write; turns problem+json into typed errors;
// writes every value type; splits large batches; and follows the change feed across a dropped connection
// without losing or repeating an event.
// Method: three real HTTP APIs on 127.0.0.1 (two nodes of eu-west, one of us-east) over real replicas in temp
// directories with the same enforced policy, called through the Client over real sockets. A node is "killed" by
// closing its server and every connection; replication is done by hand with deltasSince/applyDeltas.
import t from 'tap';
import { createServer, type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as Y from 'yjs';
import { parsePolicy } from '@tessera/core';
import { Replica } from '@tessera/store';
import {
  Client,
  TesseraClientError,
  backoffMs,
  clientBackoffMsMax,
  createHttpHandler,
  decodeSessionToken,
  encodeSessionToken,
  planRoute,
  type HttpApi,
} from '../src/index.js';
import { testCredentials } from './helpers/auth.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const policyText = `version: 1
regions:
  eu-west: { jurisdiction: eu, location: [53.3, -6.3] }
  us-east: { jurisdiction: us, location: [38.9, -77.0] }
datasets:
  catalog:  { type: map, placement: global }
  profiles: { type: map, placement: { regions: [eu-west] } }
  visits:   { type: counter, placement: global }
  carts:    { type: set, placement: global }
  notes:    { type: yjs, placement: global }
`;

interface TestNode {
  readonly id: string;
  readonly region: string;
  readonly url: string;
  readonly replica: Replica;
  readonly api: HttpApi;
  readonly server: Server;
  kill(): Promise<void>;
}

async function cluster(t: Test) {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-client-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const credentials = testCredentials();
  const policy = parsePolicy(policyText, 'policy');
  const start = async (id: string, region: string): Promise<TestNode> => {
    const replica = await Replica.open({ path: join(dir, id), node: id, region, durability: 'os' });
    await replica.installPolicy(policy, 'enforce', 'test');
    const api = createHttpHandler({ replica, access: { tokens: credentials.tokens }, node: { id, region }, readTokenWaitMsMax: 3_000 });
    const server = createServer(api.handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    let killed = false;
    const kill = async () => {
      if (killed) return;
      killed = true;
      api.setDraining(true);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    };
    t.teardown(async () => {
      await kill();
      await replica.close();
    });
    return { id, region, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, replica, api, server, kill };
  };
  const nodes = [await start('eu-west-1', 'eu-west'), await start('eu-west-2', 'eu-west'), await start('us-east-1', 'us-east')];
  const client = (which = nodes, options: { near?: string } = {}) =>
    new Client({
      nodes: which.map((n) => ({ url: n.url, region: n.region })),
      token: credentials.admin,
      healthTtlMs: 0,
      near: options.near ?? 'eu-west',
    });
  return { nodes, client, credentials };
}

t.test('routing plan: nodes of regions that may hold the dataset, nearest first', async (t) => {
  const placement = {
    dataset: 'x',
    node: 'n',
    region: 'eu-west',
    policy: { version: 1, hash: 'h' },
    regions: [
      { name: 'eu-west', jurisdiction: 'eu', location: [53.3, -6.3] as [number, number], mayHold: true },
      { name: 'us-east', jurisdiction: 'us', location: [38.9, -77.0] as [number, number], mayHold: true },
      { name: 'ap-south', jurisdiction: 'ap', location: [19.1, 72.9] as [number, number], mayHold: false },
    ],
  };
  const nodes = [
    { url: 'http://a', region: 'us-east' },
    { url: 'http://b', region: 'ap-south' },
    { url: 'http://c', region: 'eu-west' },
  ];
  t.same(
    planRoute(nodes, placement, [50.1, 8.7]).nodes.map((n) => n.url),
    ['http://c', 'http://a'],
    'Frankfurt: eu-west, then us-east; never ap-south',
  );
  t.same(
    planRoute(nodes, placement, 'us-east').nodes.map((n) => n.url),
    ['http://a', 'http://c'],
  );
  t.same(
    planRoute(nodes, null, undefined).nodes.map((n) => n.url),
    ['http://a', 'http://b', 'http://c'],
    'no policy: every node, in the given order',
  );
  t.equal(
    backoffMs(3, () => 0.999),
    399,
    'back-off doubles from 50 ms…',
  );
  t.equal(
    backoffMs(30, () => 0.9999999),
    clientBackoffMsMax - 1,
    '…up to its bound',
  );
  t.equal(
    backoffMs(3, () => 0),
    0,
    'full jitter',
  );
});

t.test('failover: a killed node of an allowed region is skipped; the dataset never reaches a region that may not hold it', async (t) => {
  const { nodes, client } = await cluster(t);
  const [eu1, eu2, us1] = nodes as [TestNode, TestNode, TestNode];
  const c = client();
  const first = await c.put('profiles', 'ada', { name: 'Ada' });
  t.equal(typeof first.token, 'string');
  t.same((await eu1.replica.get('profiles', 'ada'))?.value, { name: 'Ada' }, 'the nearest node took the write');
  await eu1.kill();
  await c.put('profiles', 'bob', { name: 'Bob' });
  t.same((await eu2.replica.get('profiles', 'bob'))?.value, { name: 'Bob' }, 'the other eu-west node took it after the first died');
  await eu2.kill();
  const error = await c.put('profiles', 'cyd', { name: 'Cyd' }).catch((e: unknown) => e);
  t.ok(error instanceof TesseraClientError, 'a typed error');
  t.equal((error as TesseraClientError).code, 'ERR_NODE_UNAVAILABLE');
  t.match((error as TesseraClientError).message, /dataset profiles/);
  t.equal(await us1.replica.get('profiles', 'cyd'), undefined, 'with every eu-west node down, us-east got nothing');
  t.equal((await us1.replica.list('profiles')).items.length, 0);
  // A global dataset may go to us-east.
  await c.put('catalog', 'c1', { a: 1 });
  t.same((await us1.replica.get('catalog', 'c1'))?.value, { a: 1 }, 'a global dataset fails over to us-east');
});

t.test('a draining node (readyz 503) is skipped', async (t) => {
  const { nodes, client } = await cluster(t);
  const [eu1, eu2] = nodes as [TestNode, TestNode, TestNode];
  const c = client();
  eu1.api.setDraining(true);
  await c.put('catalog', 'k', { v: 1 });
  t.equal(await eu1.replica.get('catalog', 'k'), undefined);
  t.same((await eu2.replica.get('catalog', 'k'))?.value, { v: 1 });
});

t.test('refusal: a client whose nodes are all in a region that may not hold the dataset sends nothing', async (t) => {
  const { nodes, client } = await cluster(t);
  const us1 = nodes[2]!;
  const c = client([us1], { near: 'us-east' });
  const before = us1.replica.lastSeq;
  const error = await c.put('profiles', 'ada', { name: 'Ada' }).catch((e: unknown) => e);
  t.ok(error instanceof TesseraClientError);
  t.equal((error as TesseraClientError).code, 'ERR_POLICY_DENIED');
  t.equal((error as TesseraClientError).status, 421);
  t.match((error as TesseraClientError).message, /may be held only in regions eu-west; this client has nodes in us-east only/);
  t.same((error as TesseraClientError).regions, ['eu-west']);
  t.equal(await c.get('profiles', 'ada').catch((e: TesseraClientError) => e.code), 'ERR_POLICY_DENIED', 'reads are refused as well');
  t.equal(us1.replica.lastSeq, before, 'nothing was written at us-east');
});

t.test("session tokens: a read on another node waits for this client's write; problems are typed errors", async (t) => {
  const { nodes, client } = await cluster(t);
  const [eu1, eu2, us1] = nodes as [TestNode, TestNode, TestNode];
  const c = client();
  await c.put('catalog', 'doc', { v: 1 });
  await eu1.kill();
  // eu-west-2 does not hold the write until it is replicated by hand, while the read waits.
  const reading = c.get('catalog', 'doc');
  setTimeout(
    () =>
      void (async () => {
        const { entries } = await eu1.replica.deltasSince(0);
        await eu2.replica.applyDeltas(entries);
      })(),
    300,
  );
  t.same((await reading)?.value, { v: 1 }, 'the read waited for the write its token names');
  t.equal(await c.get('catalog', 'missing'), undefined, 'a document the node does not hold reads as undefined');
  // A write that only eu-west-1 (now unreachable) holds: each node waits, then answers 409; the client asks the next.
  const only = await eu1.replica.put('catalog', 'late', { v: 5 });
  const token = encodeSessionToken('catalog', 'late', only.dot!);
  const notYet = await c.get('catalog', 'late', { token, waitMs: 100 }).catch((e: unknown) => e);
  t.ok(notYet instanceof TesseraClientError);
  t.equal((notYet as TesseraClientError).code, 'ERR_NOT_YET_REPLICATED', 'no node holds it yet: the typed 409');
  await us1.replica.applyDeltas((await eu1.replica.deltasSince(0)).entries);
  t.same((await c.get('catalog', 'late', { token, waitMs: 100 }))?.value, { v: 5 }, 'eu-west-2 still lacks it; us-east has it and answers');
  const mismatch = await c.increment('catalog', 'doc', 1).catch((e: unknown) => e);
  t.ok(mismatch instanceof TesseraClientError);
  t.equal((mismatch as TesseraClientError).code, 'ERR_TYPE_MISMATCH');
  t.equal((mismatch as TesseraClientError).status, 409);
  t.match((mismatch as TesseraClientError).problem, { code: 'ERR_TYPE_MISMATCH', type: 'urn:tessera:error:ERR_TYPE_MISMATCH' });
});

t.test('every value type, list and batches', async (t) => {
  const { client } = await cluster(t);
  const c = client();
  await c.increment('visits', 'home', 3);
  await c.increment('visits', 'home', -1);
  t.equal((await c.get('visits', 'home'))?.value, 2);
  await c.add('carts', 'u1', 'apple', 'pear');
  await c.remove('carts', 'u1', 'apple');
  t.same((await c.get('carts', 'u1'))?.value, ['pear']);
  await c.setField('catalog', 'm', 'address.city', 'Dublin');
  await c.setField('catalog', 'm', 'name', 'x');
  await c.deleteField('catalog', 'm', 'name');
  t.same((await c.get('catalog', 'm'))?.value, { address: { city: 'Dublin' } });
  await c.tag('catalog', 'm', { add: ['reviewed'] });
  t.same((await c.get('catalog', 'm'))?.tags, ['reviewed']);
  await c.put('catalog', 'lww', 'plain', { type: 'lww' });
  t.equal((await c.get('catalog', 'lww'))?.type, 'lww');
  const ydoc = new Y.Doc();
  ydoc.getText('t').insert(0, 'hello');
  await c.yjsUpdate('notes', 'n1', Y.encodeStateAsUpdate(ydoc));
  const note = await c.get('notes', 'n1');
  const copy = new Y.Doc();
  Y.applyUpdate(copy, Buffer.from(note!.value as string, 'base64'));
  t.equal(copy.getText('t').toString(), 'hello');
  await c.delete('catalog', 'lww');
  t.equal(await c.get('catalog', 'lww'), undefined);

  const items = Array.from({ length: 2_500 }, (_, i) => ({ key: `b${String(i).padStart(4, '0')}`, value: { i } }));
  const answer = await c.batch('catalog', [...items, { key: 'b0000', delete: true as const }, { key: '', value: {} }]);
  t.equal(answer.written, 2_501);
  t.equal(answer.failed, 1);
  t.match(answer.results[2_501], { index: 2_501, ok: false, code: 'ERR_KEY_INVALID' }, 'indexes count across the split requests');
  const keys: string[] = [];
  for await (const doc of c.documents('catalog', { prefix: 'b', pageSize: 700 })) keys.push(doc.key);
  t.equal(keys.length, 2_499, 'every document but the deleted one, across pages');
});

t.test('changes: the iterator resumes after the connection drops, losing and repeating nothing', async (t) => {
  const { nodes, client } = await cluster(t);
  const eu1 = nodes[0]!;
  const c = client([eu1]);
  const controller = new AbortController();
  const seen: string[] = [];
  const following = (async () => {
    for await (const change of c.changes({ dataset: 'catalog', signal: controller.signal })) seen.push(change.key);
  })();
  const until = async (n: number) => {
    for (let i = 0; i < 200 && seen.length < n; i++) await new Promise((resolve) => setTimeout(resolve, 25));
  };
  for (let i = 0; i < 5; i++) await eu1.replica.put('catalog', `k${i}`, { i });
  await eu1.replica.put('profiles', 'hidden', { x: 1 });
  await until(5);
  eu1.server.closeAllConnections();
  for (let i = 5; i < 10; i++) await eu1.replica.put('catalog', `k${i}`, { i });
  await until(10);
  controller.abort();
  await following;
  t.same(
    seen,
    Array.from({ length: 10 }, (_, i) => `k${i}`),
    'every change once, in order, across the reconnect',
  );
});

t.test('a stale placement: a node answering 421 with the regions that may hold the document sends the call there', async (t) => {
  const { nodes, credentials } = await cluster(t);
  const [eu1, eu2, us1] = nodes as [TestNode, TestNode, TestNode];
  const c = new Client({ nodes: nodes.map((n) => ({ url: n.url, region: n.region })), token: credentials.admin, healthTtlMs: 0, near: 'eu-west' });
  t.same(
    (await c.route('catalog')).nodes.map((n) => n.region),
    ['eu-west', 'eu-west', 'us-east'],
    'catalog is global: eu-west first',
  );
  // The policy changes under the client's cached placement: catalog may now live in us-east only.
  const v2 = parsePolicy(
    policyText
      .replace('version: 1', 'version: 2')
      .replace('catalog:  { type: map, placement: global }', 'catalog:  { type: map, placement: { regions: [us-east] } }'),
    'policy',
  );
  for (const node of nodes) await node.replica.installPolicy(v2, 'enforce', 'test');
  const answer = await c.put('catalog', 'moved', { v: 1 });
  t.equal(decodeSessionToken(answer.token).dot[0], 'us-east-1', 'the write went to us-east after eu-west answered 421');
  t.equal(await eu1.replica.get('catalog', 'moved'), undefined);
  t.equal(await eu2.replica.get('catalog', 'moved'), undefined);
  t.same((await us1.replica.get('catalog', 'moved'))?.value, { v: 1 });
});
