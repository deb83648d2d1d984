// Goal: the inspect routes answer exactly what the store's reader reads (so `tessera inspect --url` prints what
// `tessera inspect <dir>` prints), serve the delta log as sizes — values only when asked, bytes never — change
// nothing, and refuse bad input with problem+json like every other route.
// Method: the handler on a real node:http server on 127.0.0.1:0 over a real replica in a temp directory; data
// written through the API and by a second replica synced by hand (a conflict); answers compared with the
// reader's functions over the same replica's records.
import t from 'tap';
import { createServer } from 'node:http';
import { type AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorCatalogue } from '@tessera/core';
import { Replica, inspectDoc, inspectKeys, inspectLog, inspectPeers, inspectSummary } from '@tessera/store';
import { createHttpHandler } from '../src/http.js';
import { bearer, testCredentials } from './helpers/auth.js';

const credentials = testCredentials();

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

async function setup(t: Test): Promise<{ url: string; replica: Replica; events: Array<Record<string, unknown>> }> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-inspect-http-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const replica = await Replica.open({ path: join(dir, 'w1'), node: 'w1', region: 'eu-west', durability: 'os' });
  t.teardown(() => replica.close());
  const other = await Replica.open({ path: join(dir, 'u1'), node: 'u1', region: 'us-east', durability: 'os' });
  t.teardown(() => other.close());
  await replica.put('profiles', 'ada', { name: 'Ada' }, { tags: ['pii'] });
  await other.put('profiles', 'ada', { name: 'Ada L.' });
  await replica.put('profiles', 'a b/ü', { odd: true });
  for (let i = 0; i < 4; i++) await replica.put('profiles', `user-${i}`, { i });
  await replica.delete('profiles', 'user-3');
  await replica.applyDeltas((await other.deltasSince(0)).entries);
  await replica.setCursor('u1', 3);
  const events: Array<Record<string, unknown>> = [];
  const api = createHttpHandler({
    replica,
    node: { id: 'w1', region: 'eu-west' },
    access: { tokens: credentials.tokens },
    log: (event) => events.push(event as Record<string, unknown>),
  });
  const server = createServer(api.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, replica, events };
}

async function get(url: string, path: string, method = 'GET'): Promise<{ status: number; type: string | null; allow: string | null; body: any }> {
  const res = await fetch(url + path, { method, headers: bearer(credentials.admin) });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), allow: res.headers.get('allow'), body: text === '' ? undefined : JSON.parse(text) };
}

/** As the answer travels: plain JSON. */
function json(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}

t.test('the routes answer what the reader reads, and change nothing', async (t) => {
  const { url, replica, events } = await setup(t);
  const records = replica.records();
  const seqBefore = replica.lastSeq;
  const auditBefore = replica.auditLength;

  const summary = await get(url, '/v1/inspect/summary');
  t.equal(summary.status, 200);
  t.same(summary.body, json(await inspectSummary(records)));
  t.match(summary.body.datasets, [{ dataset: 'profiles', documents: 6, live: 5, deleted: 1, conflicts: 1 }]);
  t.same((await get(url, '/v1/inspect/summary?scanMax=2')).body.scan, { recordsMax: 2, complete: false });

  const keys = await get(url, '/v1/inspect/keys/profiles?prefix=user-&limit=2');
  t.same(keys.body, json(await inspectKeys(records, 'profiles', { prefix: 'user-', limit: 2 })));
  t.equal(keys.body.next, 'user-1');
  const rest = await get(url, `/v1/inspect/keys/profiles?prefix=user-&after=${keys.body.next}`);
  t.same(
    rest.body.items.map((item: { key: string; state: string }) => `${item.key}:${item.state}`),
    ['user-2:live', 'user-3:deleted'],
  );

  const doc = await get(url, '/v1/inspect/doc/profiles/ada');
  t.same(doc.body, json(await inspectDoc(records, 'profiles', 'ada')));
  t.equal(doc.body.conflicts.length, 1);
  t.equal(doc.body.siblings[0].entries.length, 2);
  const odd = await get(url, `/v1/inspect/doc/profiles/${encodeURIComponent('a b/ü')}`);
  t.equal(odd.status, 200, 'a percent-encoded key');
  t.same(odd.body.value, { odd: true });

  const log = await get(url, '/v1/inspect/log?from=1&limit=3');
  t.same(log.body, json(await inspectLog(records, { from: 1, limit: 3 })));
  t.equal(log.body.newer, 4);
  for (const entry of log.body.entries) {
    t.same(
      Object.keys(entry).sort(),
      ['bytes', 'dataset', 'hlc', 'key', 'kind', 'origin', 'originSeq', 'seq', 'to'],
      `entry ${entry.seq}: sizes, no value, no bytes`,
    );
  }
  const tail = await get(url, '/v1/inspect/log?limit=2');
  t.same(
    tail.body.entries.map((e: { seq: number }) => e.seq),
    [replica.lastSeq - 1, replica.lastSeq],
  );
  const values = await get(url, '/v1/inspect/log?from=1&to=1&values=true');
  t.same(values.body.entries[0].value, { name: 'Ada' }, 'values only when asked');
  t.same(values.body.entries[0].tags, ['pii']);

  const peers = await get(url, '/v1/inspect/peers');
  t.same(peers.body, json(await inspectPeers(records)));
  t.same(peers.body.cursors, [{ peer: 'u1', lane: 'main', acknowledged: 3, behind: replica.lastSeq - 3 }]);
  t.same(peers.body.frontiers, [{ origin: 'u1', seq: 1 }]);

  t.equal(replica.lastSeq, seqBefore, 'no write');
  t.equal(replica.auditLength, auditBefore, 'no audit entry');
  const routes = events.map((event) => event.route);
  t.ok(routes.includes('/v1/inspect/doc/:dataset/:key'), 'requests are logged by route pattern');
  // The key as a value or a path segment (random request and trace ids are hex and may contain "ada").
  t.notMatch(JSON.stringify(events), /"ada"|\/ada\b/, 'no key in the logs');
});

t.test('refusals are problem+json with catalogue codes', async (t) => {
  const { url } = await setup(t);
  const cases: Array<[string, keyof typeof errorCatalogue, RegExp]> = [
    ['/v1/inspect/summary?verbose=1', 'ERR_OPTION_INVALID', /query parameter "verbose" is unknown here: use scanMax/],
    ['/v1/inspect/summary?scanMax=0', 'ERR_OPTION_INVALID', /scanMax 0 is outside 1 to 10000000/],
    ['/v1/inspect/keys/profiles?limit=abc', 'ERR_OPTION_INVALID', /limit "abc" is not a non-negative integer/],
    ['/v1/inspect/keys/profiles?limit=1001', 'ERR_OPTION_INVALID', /limit 1001 is outside 1 to 1000/],
    ['/v1/inspect/keys/profiles?limit=1&limit=2', 'ERR_OPTION_INVALID', /given more than once/],
    ['/v1/inspect/keys/Bad%20Name', 'ERR_DATASET_NAME_INVALID', /dataset name "Bad Name" is invalid/],
    ['/v1/inspect/doc/profiles/nobody', 'ERR_DOC_NOT_FOUND', /profiles\/nobody is not stored on node w1/],
    ['/v1/inspect/doc/profiles/%E0%A4%A', 'ERR_KEY_INVALID', /not valid percent-encoded UTF-8/],
    ['/v1/inspect/doc/profiles/ada?values=true', 'ERR_OPTION_INVALID', /this route takes none/],
    ['/v1/inspect/log?from=9&to=3', 'ERR_OPTION_INVALID', /from 9 is after to 3/],
    ['/v1/inspect/log?values=yes', 'ERR_OPTION_INVALID', /values "yes" must be true or false/],
    ['/v1/inspect/log?limit=5000', 'ERR_OPTION_INVALID', /limit 5000 is outside 1 to 1000/],
  ];
  for (const [path, code, detail] of cases) {
    const answer = await get(url, path);
    t.equal(answer.status, errorCatalogue[code].status, `${path}: status`);
    t.match(answer.type, /^application\/problem\+json/, `${path}: problem+json`);
    t.match(answer.body, { code, type: `urn:tessera:error:${code}`, detail }, path);
  }
  const post = await get(url, '/v1/inspect/summary', 'POST');
  t.equal(post.status, 405);
  t.equal(post.allow, 'GET, HEAD', 'read-only: GET and HEAD only');
});
