// Goal (issues 13 item 4, 14 item 4): a batch write lands many documents through the store's group commit and
// answers each item on its own (a refused item leaves the others written); it is bounded in documents and bytes
// with a 413 that names the limit; it needs a writer grant on the dataset. The change feed streams changes as
// server-sent events, resumable with Last-Event-ID without losing or repeating an event, shows only the
// datasets the caller may read, and answers a JSON long poll.
// Method: the API's handler on a real node:http server on 127.0.0.1:0 over a real replica in a temp directory,
// called with fetch; the event stream is read and cut by hand to stand for a dropped connection.
import t from 'tap';
import { createServer } from 'node:http';
import { type AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicy } from '@tessera/core';
import { Replica } from '@tessera/store';
import { batchBytesMax, batchDocumentsMax, createHttpHandler, feedScanEntriesMax } from '../src/http.js';
import { bearer, testCredentials } from './helpers/auth.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

async function setup(t: Test) {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-batch-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const replica = await Replica.open({
    path: join(dir, 'n1'),
    node: 'eu-west-1',
    region: 'eu-west',
    durability: 'os',
    datasets: { stats: { type: 'counter' } },
  });
  const credentials = testCredentials();
  const api = createHttpHandler({
    replica,
    access: { tokens: credentials.tokens },
    node: { id: 'eu-west-1', region: 'eu-west' },
    datasets: { stats: { type: 'counter' } },
  });
  const server = createServer(api.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    api.setDraining(true);
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await replica.close();
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const call = async (method: string, path: string, body?: string, headers: Record<string, string> = {}, token = credentials.admin) => {
    const res = await fetch(url + path, {
      method,
      headers: { ...bearer(token), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body }),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text === '' ? undefined : (JSON.parse(text) as any) };
  };
  return { replica, url, call, credentials };
}

t.test('batch: a JSON array and an NDJSON body are written, group-committed, each item answered in order', async (t) => {
  const { replica, call } = await setup(t);
  const items = Array.from({ length: 200 }, (_, i) => ({ key: `k${String(i).padStart(3, '0')}`, value: { n: i } }));
  const before = replica.commitStats.batches;
  const answer = await call('POST', '/v1/kv/catalog', JSON.stringify(items));
  t.equal(answer.status, 200);
  t.equal(answer.body.written, 200);
  t.equal(answer.body.failed, 0);
  t.same(
    answer.body.results.map((r: any) => r.key),
    items.map((i) => i.key),
    'answers in the order of the items',
  );
  t.ok(
    answer.body.results.every((r: any) => r.ok === true && typeof r.seq === 'number' && typeof r.token === 'string'),
    'each has a seq and a session token',
  );
  const batches = replica.commitStats.batches - before;
  t.ok(batches < 50, `200 writes went down in ${batches} group commits, not one each`);
  t.same((await replica.get('catalog', 'k042'))?.value, { n: 42 });

  const lines = [
    JSON.stringify({ key: 'a', value: { x: 1 }, tags: ['pii'] }),
    '',
    JSON.stringify({ key: 'a', value: { x: 2 } }),
    JSON.stringify({ key: 'k000', delete: true }),
  ].join('\n');
  const nd = await call('POST', '/v1/kv/catalog', lines, { 'content-type': 'application/x-ndjson' });
  t.equal(nd.status, 200, JSON.stringify(nd.body));
  t.equal(nd.body.written, 3);
  t.same((await replica.get('catalog', 'a'))?.value, { x: 2 }, 'items on one key run in their order');
  t.equal(await replica.get('catalog', 'k000'), undefined, 'a delete item deletes');
  // The session token of an item makes a read wait for it, as a single write's does.
  const token = nd.body.results[1].token as string;
  t.equal((await call('GET', `/v1/kv/catalog/a?token=${encodeURIComponent(token)}`)).status, 200);
  const badLine = await call('POST', '/v1/kv/catalog', '{"key":"b","value":1}\n{nope', { 'content-type': 'application/x-ndjson' });
  t.equal(badLine.body.code, 'ERR_BODY_INVALID');
  t.match(badLine.body.detail, /NDJSON line 2/);
  t.equal(
    (await call('PUT', '/v1/kv/catalog/z', '{"value":1}\n', { 'content-type': 'application/x-ndjson' })).body.code,
    'ERR_CONTENT_TYPE',
    'other routes do not take NDJSON',
  );
});

t.test('batch: a refused item is reported with its code; the others are written', async (t) => {
  const { replica, call } = await setup(t);
  await replica.put('catalog', 'counter-like', { a: 1 });
  const answer = await call(
    'POST',
    '/v1/kv/catalog',
    JSON.stringify([
      { key: 'ok1', value: 1, type: 'lww' },
      { key: 'counter-like', value: 5, type: 'counter' },
      { key: '', value: 1 },
      { key: 'ok2', value: { b: 2 }, extra: true },
      { value: 1 },
      'not an object',
      { key: 'ok3', value: { c: 3 } },
    ]),
  );
  t.equal(answer.status, 200);
  t.equal(answer.body.written, 2);
  t.equal(answer.body.failed, 5);
  const codes = answer.body.results.map((r: any) => (r.ok ? 'ok' : r.code));
  t.same(codes, ['ok', 'ERR_TYPE_MISMATCH', 'ERR_KEY_INVALID', 'ERR_BODY_INVALID', 'ERR_KEY_INVALID', 'ERR_BODY_INVALID', 'ok']);
  t.equal(answer.body.results[1].status, 409);
  t.equal(answer.body.results[1].key, 'counter-like');
  t.same((await replica.get('catalog', 'ok3'))?.value, { c: 3 });
  t.equal(await replica.get('catalog', 'ok2'), undefined);
});

t.test('batch: operations items apply in order; an item whose operations do not fit the document is refused before any applies', async (t) => {
  const { replica, call } = await setup(t);
  const answer = await call(
    'POST',
    '/v1/kv/stats',
    JSON.stringify([
      {
        key: 'home',
        ops: [
          { op: 'increment', amount: 3 },
          { op: 'increment', amount: -1 },
          { op: 'tag', add: ['hot'] },
        ],
      },
      {
        key: 'home',
        ops: [
          { op: 'increment', amount: 1 },
          { op: 'set', path: 'a', value: 1 },
        ],
      },
      { key: 'cart', ops: [{ op: 'nope' }] },
      { key: 'x', ops: [], value: 1 },
    ]),
  );
  t.same(
    answer.body.results.map((r: any) => (r.ok ? 'ok' : r.code)),
    ['ok', 'ERR_TYPE_MISMATCH', 'ERR_OP_UNKNOWN', 'ERR_BODY_INVALID'],
  );
  t.match(await replica.get('stats', 'home'), { type: 'counter', value: 2, tags: ['hot'] }, 'the refused item changed nothing');
});

t.test('batch: limits in documents and bytes answer 413 ERR_BATCH_TOO_LARGE naming the limit; grants are per dataset', async (t) => {
  const { replica, call, credentials } = await setup(t);
  const many = await call('POST', '/v1/kv/catalog', JSON.stringify(Array.from({ length: batchDocumentsMax + 1 }, (_, i) => ({ key: `k${i}`, value: 1 }))));
  t.equal(many.status, 413);
  t.equal(many.body.code, 'ERR_BATCH_TOO_LARGE');
  t.match(many.body.detail, new RegExp(`${batchDocumentsMax + 1} documents: a batch holds at most ${batchDocumentsMax} documents and ${batchBytesMax} bytes`));
  const big = await call('POST', '/v1/kv/catalog', JSON.stringify([{ key: 'k', value: 'x'.repeat(batchBytesMax) }]));
  t.equal(big.status, 413);
  t.equal(big.body.code, 'ERR_BATCH_TOO_LARGE');
  t.match(big.body.detail, new RegExp(`exceeds ${batchBytesMax} bytes`));
  t.equal((await call('POST', '/v1/kv/catalog', '[]')).body.code, 'ERR_BODY_INVALID');
  const writer = credentials.token('writer-catalog', { roles: ['writer'], datasets: ['catalog'] });
  const reader = credentials.token('reader-all', { roles: ['reader'], datasets: ['*'] });
  const body = JSON.stringify([{ key: 'k', value: { a: 1 } }]);
  t.equal((await call('POST', '/v1/kv/catalog', body, {}, writer)).status, 200);
  const other = await call('POST', '/v1/kv/orders', body, {}, writer);
  t.equal(other.status, 403);
  t.match(other.body.detail, /grant on dataset "orders"/);
  t.equal((await call('POST', '/v1/kv/catalog', body, {}, reader)).status, 403, 'a reader may not write');
  t.equal(replica.lastSeq, 1, 'only the granted batch was written');
});

t.test('batch: a document this region may not hold is refused per item with the regions that may', async (t) => {
  const { replica, call } = await setup(t);
  await replica.installPolicy(
    parsePolicy(
      `version: 1
regions:
  eu-west: { jurisdiction: eu }
  us-east: { jurisdiction: us }
datasets:
  catalog: { type: map, placement: global }
  us-only: { type: map, placement: { regions: [us-east] } }
`,
      'p',
    ),
    'enforce',
    'test',
  );
  const answer = await call('POST', '/v1/kv/us-only', JSON.stringify([{ key: 'a', value: { x: 1 } }]));
  t.equal(answer.body.results[0].code, 'ERR_POLICY_DENIED');
  t.same(answer.body.results[0].regions, ['us-east']);
});

/** Reads server-sent events from a fetch response until `count` events of kind `change` arrived, then cuts the connection. */
async function readEvents(url: string, headers: Record<string, string>, count: number): Promise<Array<{ id: string; event: string; data: any }>> {
  const controller = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
  if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
  const events: Array<{ id: string; event: string; data: any }> = [];
  const decoder = new TextDecoder();
  let buffer = '';
  const reader = res.body!.getReader();
  while (events.filter((e) => e.event === 'change').length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const fields = Object.fromEntries(
        block
          .split('\n')
          .filter((l) => !l.startsWith(':') && l.includes(':'))
          .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
      );
      if (fields.data !== undefined) events.push({ id: fields.id ?? '', event: fields.event ?? 'message', data: JSON.parse(fields.data) });
      if (events.filter((e) => e.event === 'change').length >= count) break;
    }
  }
  controller.abort();
  return events;
}

t.test('feed: server-sent events resume after a dropped connection with Last-Event-ID, losing and repeating nothing', async (t) => {
  const { replica, url, credentials } = await setup(t);
  for (let i = 0; i < 30; i++) await replica.put('catalog', `k${i}`, { n: i });
  const token = credentials.admin;
  const first = await readEvents(`${url}/v1/changes?dataset=catalog`, bearer(token), 12);
  const changes1 = first.filter((e) => e.event === 'change');
  t.equal(changes1.length, 12);
  t.same(changes1[0]!.data.value, { n: 0 }, 'an event carries the document as it is now');
  const lastId = changes1.at(-1)!.id;
  // Writes made while the client is away, and during the second stream.
  for (let i = 30; i < 40; i++) await replica.put('catalog', `k${i}`, { n: i });
  const later = (async () => {
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (let i = 40; i < 45; i++) await replica.put('catalog', `k${i}`, { n: i });
  })();
  const second = await readEvents(`${url}/v1/changes?dataset=catalog`, { ...bearer(token), 'last-event-id': lastId }, 45 - 12);
  await later;
  const keys = [...changes1, ...second.filter((e) => e.event === 'change')].map((e) => e.data.key);
  t.same(
    keys,
    Array.from({ length: 45 }, (_, i) => `k${i}`),
    'every change once, in order',
  );
  const ids = [...changes1, ...second].filter((e) => e.event === 'change').map((e) => Number(e.id));
  t.ok(
    ids.every((id, i) => i === 0 || id > ids[i - 1]!),
    'ids increase',
  );
});

t.test('feed: only datasets the caller may read; a named dataset needs a grant; long poll pages and waits', async (t) => {
  const { replica, url, call, credentials } = await setup(t);
  await replica.put('catalog', 'c1', { a: 1 });
  await replica.put('orders', 'o1', { secret: true });
  await replica.put('catalog', 'c2', { a: 2 });
  const reader = credentials.token('reader-catalog', { roles: ['reader'], datasets: ['catalog'] });
  const all = await call('GET', '/v1/changes', undefined, {}, reader);
  t.equal(all.status, 200);
  t.same(
    all.body.events.map((e: any) => e.key),
    ['c1', 'c2'],
    'orders is not shown to a catalog reader',
  );
  t.equal(all.body.next, 3, 'the cursor moves past what the caller does not see');
  t.notMatch(JSON.stringify(all.body), /o1|secret/);
  t.equal((await call('GET', '/v1/changes?dataset=orders', undefined, {}, reader)).status, 403);
  const page = await call('GET', '/v1/changes?since=0&limit=1');
  t.same(
    page.body.events.map((e: any) => e.key),
    ['c1'],
  );
  t.equal(page.body.next, 1);
  const startedMs = Date.now();
  const waiting = call('GET', `/v1/changes?since=3&waitMs=5000`);
  setTimeout(() => void replica.delete('catalog', 'c1'), 100);
  const woke = await waiting;
  t.ok(Date.now() - startedMs < 4_000, 'a long poll answers when a change arrives');
  t.match(woke.body.events, [{ key: 'c1', deleted: true }]);
  t.notOk('value' in woke.body.events[0], 'a deleted document has no value');
  t.equal((await call('GET', '/v1/changes?since=99')).body.code, 'ERR_OPTION_INVALID', 'a cursor past the head belongs to another node');
  const sse = await fetch(`${url}/v1/changes?since=0&limit=2`, { headers: { ...bearer(credentials.admin), accept: 'text/event-stream' } });
  const text = await sse.text();
  t.equal((text.match(/event: change/g) ?? []).length, 2, 'the stream ends after limit events');
});

t.test('feed: a document this node may no longer hold under its enforced policy is not shown, key and all', async (t) => {
  const { replica, call } = await setup(t);
  const text = (version: number, catalog: string) => `version: ${version}
regions:
  eu-west: { jurisdiction: eu }
  us-east: { jurisdiction: us }
datasets:
  catalog: { type: map, placement: ${catalog} }
  orders: { type: map, placement: global }
`;
  await replica.installPolicy(parsePolicy(text(1, 'global'), 'p'), 'enforce', 'test');
  await replica.put('catalog', 'marker-gone', { v: 'marker-value' });
  await replica.put('orders', 'o1', { v: 1 });
  t.same(
    (await call('GET', '/v1/changes')).body.events.map((e: any) => e.key),
    ['marker-gone', 'o1'],
  );
  await replica.installPolicy(parsePolicy(text(2, '{ regions: [us-east] }'), 'p'), 'enforce', 'test');
  const after = await call('GET', '/v1/changes');
  t.same(
    after.body.events.map((e: any) => e.key),
    ['o1'],
    'only what eu-west may hold',
  );
  t.notMatch(JSON.stringify(after.body), /marker-/);
});

t.test('feed: a page reads at most feedScanEntriesMax entries; past a long stretch of hidden entries the cursor moves on and the stream goes on', async (t) => {
  const { replica, url, call, credentials } = await setup(t);
  for (let start = 0; start < feedScanEntriesMax + 50; start += 1_000) {
    await Promise.all(Array.from({ length: 1_000 }, (_, i) => replica.put('orders', `o${start + i}`, { i })));
  }
  await replica.put('catalog', 'visible', { v: 1 });
  const reader = credentials.token('reader-catalog', { roles: ['reader'], datasets: ['catalog'] });
  const first = await call('GET', '/v1/changes?waitMs=5000', undefined, {}, reader);
  t.same(first.body.events, [], 'the first page found nothing to show…');
  t.equal(first.body.next, feedScanEntriesMax, '…and answered at once with its cursor moved on');
  const second = await call('GET', `/v1/changes?since=${first.body.next}`, undefined, {}, reader);
  t.same(
    second.body.events.map((e: any) => e.key),
    ['visible'],
  );
  const events = await readEvents(`${url}/v1/changes`, bearer(reader), 1);
  t.same(
    events.filter((e) => e.event === 'change').map((e) => e.data.key),
    ['visible'],
    'the stream goes past the hidden entries by itself',
  );
  t.ok(
    events.some((e) => e.event === 'checkpoint' && Number(e.id) === feedScanEntriesMax),
    'with a checkpoint on the way',
  );
});
