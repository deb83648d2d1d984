// Goal: the daemon's HTTP API does what DESIGN §5–§6 promise: every route answers its documented shape, every
// refusal is problem+json with a catalogue code and status and leaves the store unchanged, session tokens make a
// read wait for the write they name (409 when it does not arrive in time), and logs carry no key, value or token.
// Method: the handler on a real node:http server on 127.0.0.1:0 over real replicas in temp directories, called with
// fetch; replication between two replicas is done by hand with deltasSince/applyDeltas while a read waits.
import t from 'tap';
import { createServer, request } from 'node:http';
import { type AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as Y from 'yjs';
import * as A from '@automerge/automerge';
import { errorCatalogue } from '@tessera/core';
import { Replica } from '@tessera/store';
import { type HttpApi, type HttpHandlerDeps, type Replication, createHttpHandler } from '../src/http.js';
import { requestBodyBytesMax } from '../src/body.js';
import { encodeSessionToken } from '../src/token.js';
import { bearer, testCredentials } from './helpers/auth.js';

/** The type of a subtest's `t`. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

interface Harness {
  readonly url: string;
  readonly replica: Replica;
  readonly api: HttpApi;
  readonly events: Array<Record<string, unknown>>;
  /** The admin token every call sends unless it names another `authorization`. */
  readonly token: string;
}

async function openReplica(t: Test, node: string, region: string): Promise<Replica> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-http-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const replica = await Replica.open({ path: join(dir, node), node, region, durability: 'os', datasets: { stats: { type: 'counter' } } });
  t.teardown(() => replica.close());
  return replica;
}

async function serve(t: Test, replica: Replica, options: Partial<HttpHandlerDeps> = {}): Promise<Harness> {
  const events: Array<Record<string, unknown>> = [];
  const credentials = testCredentials();
  const api = createHttpHandler({
    replica,
    access: { tokens: credentials.tokens },
    node: { id: replica.node, region: replica.region, zone: `${replica.region}-a` },
    log: (event) => events.push(event as Record<string, unknown>),
    datasets: { stats: { type: 'counter' } },
    ...options,
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
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, replica, api, events, token: credentials.admin };
}

async function setup(t: Test, options: Partial<HttpHandlerDeps> = {}): Promise<Harness> {
  return serve(t, await openReplica(t, 'eu-west-1', 'eu-west'), options);
}

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: any;
}

async function call(h: Harness, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const init: RequestInit = { method, headers: { ...bearer(h.token), ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
    if (!('content-type' in headers)) (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  const res = await fetch(h.url + path, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === '' ? undefined : JSON.parse(text) };
}

/** Asserts a problem+json answer with `code` and the catalogue's status. */
function isProblem(t: Test, answer: Answer, code: keyof typeof errorCatalogue, what: string = code): void {
  const status = errorCatalogue[code].status;
  t.equal(answer.status, status, `${what}: status ${status}`);
  t.equal(answer.headers.get('content-type'), 'application/problem+json; charset=utf-8', `${what}: problem+json`);
  t.equal(answer.body?.code, code, `${what}: code`);
  t.equal(answer.body?.status, status);
  t.equal(answer.body?.type, `urn:tessera:error:${code}`);
  t.equal(answer.body?.title, errorCatalogue[code].summary);
  t.type(answer.body?.detail, 'string');
}

/** The status of a request sent with node:http (no URL normalisation). */
function rawStatus(h: Harness, method: string, path: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(h.url);
    const req = request({ hostname, port, path, method, headers: { 'content-type': 'application/json', ...bearer(h.token) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

t.test('PUT, GET and DELETE a document; writes answer seq, hlc and a session token', async (t) => {
  const h = await setup(t);
  const put = await call(h, 'PUT', '/v1/kv/profiles/u42', { value: { name: 'Ada', city: 'Dublin' }, tags: ['pii'] });
  t.equal(put.status, 200);
  t.equal(put.headers.get('content-type'), 'application/json; charset=utf-8');
  t.equal(put.body.seq, 1);
  t.match(put.body.hlc, { ms: Number, c: Number });
  const [dataset, key, node, counter] = JSON.parse(Buffer.from(put.body.token, 'base64url').toString('utf8'));
  t.same([dataset, key, node], ['profiles', 'u42', 'eu-west-1'], 'the token names the document and the writing node');
  t.ok((await h.replica.state('profiles', 'u42'))!.ctx.has([node, counter]), 'and a dot the document holds');
  const got = await call(h, 'GET', '/v1/kv/profiles/u42');
  t.equal(got.status, 200);
  t.match(got.body, { dataset: 'profiles', key: 'u42', type: 'map', value: { name: 'Ada', city: 'Dublin' }, tags: ['pii'], conflicts: [] });
  t.match(got.body.context, { vector: [['eu-west-1', Number]], cloud: [] }, 'the causal context is part of the view');
  const lww = await call(h, 'PUT', '/v1/kv/config/colour', { value: 'blue', type: 'lww' });
  t.equal(lww.status, 200);
  t.equal((await call(h, 'GET', '/v1/kv/config/colour')).body.value, 'blue');
  const deleted = await call(h, 'DELETE', '/v1/kv/profiles/u42');
  t.equal(deleted.status, 200);
  t.equal(deleted.body.seq, 3);
  t.type(deleted.body.token, 'string');
  isProblem(t, await call(h, 'GET', '/v1/kv/profiles/u42'), 'ERR_DOC_NOT_FOUND');
  const again = await call(h, 'DELETE', '/v1/kv/profiles/u42');
  t.same([again.status, again.body.seq, again.body.token], [200, null, null], 'deleting an absent document changes nothing and has no token');
});

t.test('keys are percent-decoded path segments; bad names are refused', async (t) => {
  const h = await setup(t);
  const key = 'users/ü 42?#%';
  t.equal((await call(h, 'PUT', `/v1/kv/profiles/${encodeURIComponent(key)}`, { value: { a: 1 } })).status, 200);
  t.equal((await call(h, 'GET', `/v1/kv/profiles/${encodeURIComponent(key)}`)).body.key, key);
  // fetch normalises "..", so this one goes through node:http, which sends the path as is.
  t.equal(await rawStatus(h, 'PUT', '/v1/kv/profiles/..', '{"value":{"dots":true}}'), 200, 'a key ".." is a key, not a path step');
  t.same(
    (await call(h, 'GET', '/v1/kv/profiles')).body.items.map((item: { key: string }) => item.key),
    ['..', key],
  );
  const seq = h.replica.lastSeq;
  isProblem(t, await call(h, 'PUT', '/v1/kv/profiles/%E0%A4%A', { value: {} }), 'ERR_KEY_INVALID', 'malformed percent-encoding');
  isProblem(t, await call(h, 'PUT', '/v1/kv/profiles/a%00b', { value: {} }), 'ERR_KEY_INVALID', 'control character');
  isProblem(t, await call(h, 'PUT', `/v1/kv/profiles/${'k'.repeat(513)}`, { value: {} }), 'ERR_KEY_INVALID', 'key too long');
  isProblem(t, await call(h, 'PUT', '/v1/kv/profiles/', { value: {} }), 'ERR_KEY_INVALID', 'empty key');
  isProblem(t, await call(h, 'PUT', '/v1/kv/Profiles/u1', { value: {} }), 'ERR_DATASET_NAME_INVALID', 'upper-case dataset');
  isProblem(t, await call(h, 'PUT', '/v1/kv/%ZZ/u1', { value: {} }), 'ERR_DATASET_NAME_INVALID', 'malformed dataset encoding');
  isProblem(t, await call(h, 'GET', '/v1/kv/Profiles'), 'ERR_DATASET_NAME_INVALID', 'list of a bad dataset');
  t.equal(h.replica.lastSeq, seq, 'refused requests wrote nothing');
});

t.test('POST …/ops: every operation kind, single or batched', async (t) => {
  const h = await setup(t);
  const one = await call(h, 'POST', '/v1/kv/stats/visits/ops', { op: 'increment', amount: 3 });
  t.equal(one.status, 200);
  t.equal(one.body.results.length, 1);
  t.match(one.body.results[0], { seq: 1, hlc: { ms: Number, c: Number }, token: String });
  const batch = await call(h, 'POST', '/v1/kv/stats/visits/ops', [
    { op: 'increment', amount: 2 },
    { op: 'increment', amount: -1 },
  ]);
  t.same(
    batch.body.results.map((r: { seq: number }) => r.seq),
    [2, 3],
    'applied in order',
  );
  t.equal((await call(h, 'GET', '/v1/kv/stats/visits')).body.value, 4, 'the dataset default type (counter) applies');
  const unaware = await serve(t, await openReplica(t, 'eu-west-2', 'eu-west'), { datasets: undefined });
  const fresh = await call(unaware, 'POST', '/v1/kv/stats/hits/ops', [
    { op: 'increment', amount: 1 },
    { op: 'increment', amount: 1 },
  ]);
  t.equal(fresh.status, 200, "without the dataset types, the store decides a new document's type");
  t.equal((await call(unaware, 'GET', '/v1/kv/stats/hits')).body.value, 2);

  await call(h, 'POST', '/v1/kv/profiles/u1/ops', [
    { op: 'set', path: 'address.city', value: 'Dublin' },
    { op: 'set', path: ['address', 'zip'], value: 'D01' },
    { op: 'set', path: 'name', value: 'Ada' },
    { op: 'delete-field', path: ['name'] },
    { op: 'tag', add: ['pii', 'residency:eu'] },
    { op: 'tag', remove: ['residency:eu'] },
  ]);
  const profile = (await call(h, 'GET', '/v1/kv/profiles/u1')).body;
  t.same(profile.value, { address: { city: 'Dublin', zip: 'D01' } });
  t.same(profile.tags, ['pii']);

  await call(h, 'POST', '/v1/kv/labels/l1/ops', [
    { op: 'add', element: 'a', type: 'set' },
    { op: 'add', element: 2 },
    { op: 'remove', element: 'a' },
  ]);
  t.same((await call(h, 'GET', '/v1/kv/labels/l1')).body.value, [2]);
  await call(h, 'POST', '/v1/kv/labels/l1/ops', { op: 'put', value: ['x', 'y'] });
  t.same((await call(h, 'GET', '/v1/kv/labels/l1')).body.value, ['x', 'y']);

  const ydoc = new Y.Doc();
  ydoc.getText('body').insert(0, 'hello');
  const yjs = await call(h, 'POST', '/v1/kv/notes/n1/ops', { op: 'yjs-update', update: b64(Y.encodeStateAsUpdate(ydoc)), type: 'yjs' });
  t.equal(yjs.status, 200);
  const note = (await call(h, 'GET', '/v1/kv/notes/n1')).body;
  t.equal(note.type, 'yjs');
  const copy = new Y.Doc();
  Y.applyUpdate(copy, Buffer.from(note.value, 'base64'));
  t.equal(copy.getText('body').toString(), 'hello', 'a Yjs document reads as base64 of its state update');

  const board = A.from<{ cards: string[] }>({ cards: ['x'] });
  const am = await call(h, 'POST', '/v1/kv/boards/b1/ops', { op: 'automerge-changes', changes: A.getAllChanges(board).map(b64), type: 'automerge' });
  t.equal(am.status, 200);
  t.same((await call(h, 'GET', '/v1/kv/boards/b1')).body.value, { cards: ['x'] }, 'an Automerge document reads as its JSON');
});

t.test('refused operations leave the store unchanged', async (t) => {
  const h = await setup(t);
  await call(h, 'PUT', '/v1/kv/profiles/u1', { value: { name: 'Ada' } });
  const seq = h.replica.lastSeq;
  const cases: Array<[string, unknown, keyof typeof errorCatalogue]> = [
    ['wrong-type operation', { op: 'increment', amount: 1 }, 'ERR_TYPE_MISMATCH'],
    [
      'wrong-type operation later in a batch',
      [
        { op: 'set', path: 'a', value: 1 },
        { op: 'increment', amount: 1 },
      ],
      'ERR_TYPE_MISMATCH',
    ],
    [
      'explicit type that differs',
      [
        { op: 'set', path: 'a', value: 1 },
        { op: 'put', value: 1, type: 'lww' },
      ],
      'ERR_TYPE_MISMATCH',
    ],
    [
      'bad value later in a batch',
      [
        { op: 'set', path: 'a', value: 1 },
        { op: 'set', path: '', value: 1 },
      ],
      'ERR_VALUE_INVALID',
    ],
    ['unknown op', { op: 'multiply', by: 2 }, 'ERR_OP_UNKNOWN'],
    ['missing op', { amount: 2 }, 'ERR_OP_UNKNOWN'],
    ['unknown field', { op: 'set', path: 'a', value: 1, ttl: 5 }, 'ERR_BODY_INVALID'],
    ['missing field', { op: 'set', path: 'a' }, 'ERR_BODY_INVALID'],
    ['bad path', { op: 'set', path: 7, value: 1 }, 'ERR_BODY_INVALID'],
    ['not an object', 'increment', 'ERR_BODY_INVALID'],
    ['empty batch', [], 'ERR_BODY_INVALID'],
    ['batch too long', Array.from({ length: 101 }, () => ({ op: 'set', path: 'a', value: 1 })), 'ERR_BODY_INVALID'],
    ['unknown type', { op: 'set', path: 'a', value: 1, type: 'graph' }, 'ERR_TYPE_UNKNOWN'],
    ['bad base64', { op: 'yjs-update', update: 'not base64!', type: 'yjs' }, 'ERR_BODY_INVALID'],
    ['bad tag', { op: 'tag', add: ['Not A Tag'] }, 'ERR_TAG_INVALID'],
    ['tag without changes', { op: 'tag' }, 'ERR_BODY_INVALID'],
    ['tag of an absent document', { op: 'tag', add: ['pii'] }, 'ERR_OPTION_INVALID'],
  ];
  for (const [what, body, code] of cases) {
    const path = what === 'tag of an absent document' ? '/v1/kv/profiles/absent/ops' : '/v1/kv/profiles/u1/ops';
    isProblem(t, await call(h, 'POST', path, body), code, what);
  }
  isProblem(t, await call(h, 'POST', '/v1/kv/stats/hits/ops', { op: 'increment', amount: 1.5 }), 'ERR_COUNTER_RANGE', 'fractional amount');
  isProblem(t, await call(h, 'PUT', '/v1/kv/profiles/u1', { value: 'not an object' }), 'ERR_VALUE_INVALID', 'map value not an object');
  isProblem(t, await call(h, 'PUT', '/v1/kv/profiles/u1', { value: {}, type: 'graph' }), 'ERR_TYPE_UNKNOWN', 'PUT unknown type');
  isProblem(t, await call(h, 'PUT', '/v1/kv/profiles/u1', { value: {}, tags: ['Bad'] }), 'ERR_TAG_INVALID', 'PUT bad tag');
  isProblem(t, await call(h, 'PUT', '/v1/kv/profiles/u1', { value: {}, ttl: 1 }), 'ERR_BODY_INVALID', 'PUT unknown field');
  isProblem(t, await call(h, 'PUT', '/v1/kv/profiles/u1', { tags: [] }), 'ERR_BODY_INVALID', 'PUT without value');
  isProblem(t, await call(h, 'PUT', '/v1/kv/profiles/u1', [1]), 'ERR_BODY_INVALID', 'PUT body not an object');
  isProblem(t, await call(h, 'PUT', '/v1/kv/profiles/u1', '{"value": '), 'ERR_BODY_INVALID', 'bad JSON');
  isProblem(t, await call(h, 'PUT', '/v1/kv/profiles/u1', new Uint8Array([0x7b, 0xff, 0x7d])), 'ERR_BODY_INVALID', 'not UTF-8');
  isProblem(t, await call(h, 'PUT', '/v1/kv/profiles/u1', ''), 'ERR_BODY_INVALID', 'empty body');
  isProblem(t, await call(h, 'PUT', '/v1/kv/profiles/u1', '{"value":{}}', { 'content-type': 'text/plain' }), 'ERR_CONTENT_TYPE', 'text/plain');
  isProblem(
    t,
    await call(h, 'PUT', '/v1/kv/profiles/u1', '{"value":{}}', { 'content-type': 'application/json; charset=latin1' }),
    'ERR_CONTENT_TYPE',
    'other charset',
  );
  const noType = await fetch(`${h.url}/v1/kv/profiles/u1`, { method: 'PUT', headers: bearer(h.token), body: new Blob(['{"value":{}}']) });
  t.equal(noType.status, 415, 'no content type');
  const big = `{"value":{"big":"${'x'.repeat(requestBodyBytesMax)}"}}`;
  const tooLarge = await call(h, 'PUT', '/v1/kv/profiles/u1', big);
  isProblem(t, tooLarge, 'ERR_BODY_TOO_LARGE', 'body over the limit');
  t.match(tooLarge.body.detail, `exceeds the limit of ${requestBodyBytesMax} bytes`);
  t.equal(h.replica.lastSeq, seq, 'no refused request wrote anything');
  t.same((await call(h, 'GET', '/v1/kv/profiles/u1')).body.value, { name: 'Ada' });
  t.equal((await call(h, 'PUT', '/v1/kv/profiles/u1', { value: { name: 'Grace' } })).status, 200, 'the server still serves after a 413');
});

t.test('a batch that fails while applying reports what was applied', async (t) => {
  const h = await setup(t);
  const ydoc = new Y.Doc();
  ydoc.getText('t').insert(0, 'a');
  // The second update is bytes Yjs cannot read: only applying it finds that out.
  const answer = await call(h, 'POST', '/v1/kv/notes/n1/ops', [
    { op: 'yjs-update', update: b64(Y.encodeStateAsUpdate(ydoc)), type: 'yjs' },
    { op: 'yjs-update', update: b64(new Uint8Array([0xff, 0xff, 0xff, 0xff])) },
  ]);
  isProblem(t, answer, 'ERR_YJS_UPDATE_INVALID');
  t.equal(answer.body.failedOperation, 1);
  t.equal(answer.body.results.length, 1, 'the first operation took effect and is reported');
  t.equal(answer.body.results[0].seq, h.replica.lastSeq);
});

t.test('list with prefix, limit and cursor; conflicts', async (t) => {
  const h = await setup(t);
  for (const key of ['a1', 'a2', 'a3', 'b1']) await call(h, 'PUT', `/v1/kv/profiles/${key}`, { value: { key } });
  const first = await call(h, 'GET', '/v1/kv/profiles?prefix=a&limit=2');
  t.same(
    first.body.items.map((item: { key: string }) => item.key),
    ['a1', 'a2'],
  );
  t.match(first.body.items[0], { key: 'a1', type: 'map', value: { key: 'a1' }, tags: [] });
  const second = await call(h, 'GET', `/v1/kv/profiles?prefix=a&limit=2&cursor=${first.body.cursor}`);
  t.same(
    second.body.items.map((item: { key: string }) => item.key),
    ['a3'],
  );
  t.equal(second.body.cursor, null);
  isProblem(t, await call(h, 'GET', '/v1/kv/profiles?limit=0'), 'ERR_OPTION_INVALID', 'limit 0');
  isProblem(t, await call(h, 'GET', '/v1/kv/profiles?limit=ten'), 'ERR_OPTION_INVALID', 'limit not a number');
  isProblem(t, await call(h, 'GET', '/v1/kv/profiles?limt=2'), 'ERR_OPTION_INVALID', 'unknown parameter');
  isProblem(t, await call(h, 'GET', '/v1/kv/profiles?limit=1&limit=2'), 'ERR_OPTION_INVALID', 'repeated parameter');

  // A conflict: two nodes write the same field concurrently; the loser is kept in a conflict record.
  const other = await openReplica(t, 'us-east-1', 'us-east');
  await h.replica.put('profiles', 'c1', { colour: 'red' });
  await other.put('profiles', 'c1', { colour: 'blue' });
  const { entries } = await other.deltasSince(0);
  await h.replica.applyDeltas(entries);
  const conflicts = await call(h, 'GET', '/v1/conflicts?dataset=profiles&key=c1');
  t.equal(conflicts.status, 200);
  t.equal(conflicts.body.conflicts.length, 1);
  t.match(conflicts.body.conflicts[0], { dataset: 'profiles', key: 'c1', path: ['colour'] });
  t.equal((await call(h, 'GET', '/v1/conflicts')).body.conflicts.length, 1);
  t.same((await call(h, 'GET', '/v1/conflicts?dataset=stats')).body.conflicts, []);
  t.equal((await call(h, 'GET', '/v1/kv/profiles/c1')).body.conflicts.length, 1, 'a document read lists its conflicts');
  isProblem(t, await call(h, 'GET', '/v1/conflicts?key=c1'), 'ERR_OPTION_INVALID', 'key without dataset');
  isProblem(t, await call(h, 'GET', '/v1/conflicts?limit=-1'), 'ERR_OPTION_INVALID', 'negative limit');
});

t.test('status, peers, health and readiness; draining', async (t) => {
  const replication: Replication = {
    status: () => ({ links: [{ peer: 'us-east-1', region: 'us-east', state: 'open', lagMs: 12 }] }),
  };
  const h = await setup(t, { replication });
  await call(h, 'PUT', '/v1/kv/profiles/u1', { value: {} });
  await h.replica.setCursor('us-east-1', 1);
  const status = await call(h, 'GET', '/v1/status');
  t.match(status.body, { node: 'eu-west-1', region: 'eu-west', zone: 'eu-west-a', lastSeq: 1, durability: 'os', uptimeMs: Number });
  t.same(status.body.links, [{ peer: 'us-east-1', region: 'us-east', state: 'open', lagMs: 12 }]);
  const peers = await call(h, 'GET', '/v1/peers');
  t.same(peers.body, { links: status.body.links, cursors: { 'us-east-1': 1 } });
  t.same((await call(h, 'GET', '/healthz')).body, { ok: true });
  const head = await fetch(`${h.url}/healthz`, { method: 'HEAD', headers: bearer(h.token) });
  t.equal(head.status, 200, 'HEAD works where GET does');
  t.equal(await head.text(), '');
  const ready = await call(h, 'GET', '/readyz');
  t.same([ready.status, ready.body], [200, { ready: true, storeOpen: true, draining: false }]);
  h.api.setDraining(true);
  t.equal(h.api.draining, true);
  const draining = await call(h, 'GET', '/readyz');
  t.same([draining.status, draining.body], [503, { ready: false, storeOpen: true, draining: true }]);
  t.equal((await call(h, 'GET', '/healthz')).status, 200, 'still alive while draining');
  t.equal((await call(h, 'GET', '/v1/kv/profiles/u1')).status, 200, 'still serving while draining');
  h.api.setDraining(false);
  t.equal((await call(h, 'GET', '/readyz')).status, 200);
  await h.replica.close();
  const closed = await call(h, 'GET', '/readyz');
  t.same([closed.status, closed.body.storeOpen], [503, false]);
  isProblem(t, await call(h, 'GET', '/v1/kv/profiles/u1'), 'ERR_STORE_CLOSED', 'reads after the store closed');
  t.equal(h.api.inFlight, 0);
  await h.api.idle();

  const bare = await setup(t);
  t.same((await call(bare, 'GET', '/v1/status')).body.links, [], 'no replication: no links');
});

t.test('unknown routes, wrong methods, and unexpected failures', async (t) => {
  const replication: Replication = {
    status: () => {
      throw new TypeError('links table is broken for u-secret-key');
    },
  };
  const h = await setup(t, { replication });
  isProblem(t, await call(h, 'GET', '/v2/kv/profiles/u1'), 'ERR_NOT_FOUND');
  isProblem(t, await call(h, 'GET', '/v1/kv/profiles/u1/ops/extra'), 'ERR_NOT_FOUND', 'too many segments');
  isProblem(t, await call(h, 'GET', '/index.php'), 'ERR_NOT_FOUND', 'a path no route knows');
  const wrong = await call(h, 'POST', '/v1/kv/profiles/u1', { value: {} });
  isProblem(t, wrong, 'ERR_METHOD_NOT_ALLOWED');
  t.equal(wrong.headers.get('allow'), 'GET, PUT, DELETE, HEAD');
  t.equal((await call(h, 'GET', '/v1/kv/profiles/u1/ops')).headers.get('allow'), 'POST');
  t.equal((await call(h, 'DELETE', '/v1/status')).headers.get('allow'), 'GET, HEAD');
  t.equal(h.replica.lastSeq, 0, 'nothing was written');
  const broken = await call(h, 'GET', '/v1/status');
  isProblem(t, broken, 'ERR_INTERNAL', 'a bug in a dependency');
  t.notMatch(broken.body.detail, 'u-secret-key', "the client does not see the bug's message");
  const event = h.events.at(-1)!;
  t.match(event, { route: '/v1/status', status: 500, code: 'ERR_INTERNAL', error: { name: 'TypeError', stack: Array } });
  t.notOk(JSON.stringify(event).includes('u-secret-key'), "the log does not carry the bug's message");
});

/** Sends `text` on a fresh connection and collects what comes back until `done(text)` or the server closes. */
async function rawExchange(t: Test, h: Harness, text: string, done: (received: string) => boolean): Promise<string> {
  const socket = connect(Number(new URL(h.url).port), '127.0.0.1');
  t.teardown(() => socket.destroy());
  socket.setEncoding('utf8');
  let received = '';
  await new Promise<void>((resolve) => {
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (done(received)) resolve();
    });
    socket.on('close', () => resolve());
    socket.on('error', () => resolve());
    socket.write(text);
  });
  return received;
}

t.test('connections: a refused body does not spill into the next request; a huge one closes the connection', async (t) => {
  const h = await setup(t);
  const body = '{"value":{"x":1}}';
  // Pipelined on one connection: a request refused before its body is read, then a health check.
  const received = await rawExchange(
    t,
    h,
    `PUT /v1/kv/profiles/u1 HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${h.token}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}` +
      `GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${h.token}\r\n\r\n`,
    (text) => text.includes('{"ok":true}'),
  );
  t.match(received, /^HTTP\/1\.1 415 /, 'the first request is refused');
  t.match(received, /HTTP\/1\.1 200 OK[\s\S]*\{"ok":true\}$/, 'the second is answered on the same connection');
  t.notMatch(received, /connection: close/i);
  t.equal(h.replica.lastSeq, 0);

  const huge = await rawExchange(
    t,
    h,
    `PUT /v1/kv/profiles/u1 HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${h.token}\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\n\r\n{"value":`,
    (text) => text.includes('ERR_BODY_TOO_LARGE'),
  );
  t.match(huge, /^HTTP\/1\.1 413 /, 'a declared length far over the limit is refused at once');
  t.match(huge, /connection: close/i, 'and the connection closes rather than read the body');
  t.equal(h.replica.lastSeq, 0);

  // A client that disconnects half-way through its body: logged as aborted (499), not as a daemon failure.
  const socket = connect(Number(new URL(h.url).port), '127.0.0.1');
  socket.write(
    `PUT /v1/kv/profiles/u1 HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${h.token}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"value":`,
  );
  while (h.api.inFlight === 0) await new Promise((resolve) => setImmediate(resolve));
  socket.destroy();
  await h.api.idle();
  t.match(h.events.at(-1), { route: '/v1/kv/:dataset/:key', status: 499, aborted: true });
  t.notOk('code' in h.events.at(-1)! || 'error' in h.events.at(-1)!, 'no error code or stack');
  t.equal(h.replica.lastSeq, 0);
});

t.test('session tokens: a read waits for the write it names, or answers 409', async (t) => {
  const eu = await setup(t, { readTokenWaitMsMax: 60_000 });
  const us = await serve(t, await openReplica(t, 'us-east-1', 'us-east'));
  const written = await call(us, 'PUT', '/v1/kv/profiles/u42', { value: { name: 'Ada' } });
  const token: string = written.body.token;

  t.equal((await call(us, 'GET', `/v1/kv/profiles/u42?token=${token}`)).status, 200, 'the writing node holds its own write');

  const late = await call(eu, 'GET', `/v1/kv/profiles/u42?token=${token}&waitMs=30`);
  isProblem(t, late, 'ERR_NOT_YET_REPLICATED', 'not replicated within the wait');
  t.equal(late.body.token, token, 'the problem carries the token');
  t.match(late.body.detail, token);
  t.match(late.body.detail, 'us-east-1');
  isProblem(t, await call(eu, 'GET', `/v1/kv/profiles/u42?token=${token}&waitMs=0`), 'ERR_NOT_YET_REPLICATED', 'waitMs=0 does not wait');

  // Start a read that waits, then replicate the write to this node while it waits.
  let settled = false;
  const reading = call(eu, 'GET', `/v1/kv/profiles/u42?token=${token}`).finally(() => {
    settled = true;
  });
  while (eu.api.inFlight === 0) await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.notOk(settled, 'the read is waiting');
  const { entries } = await us.replica.deltasSince(0);
  await eu.replica.applyDeltas(entries);
  const read = await reading;
  t.equal(read.status, 200, 'the read answers once the write arrived');
  t.same(read.body.value, { name: 'Ada' });

  // The token of a later write is waited for too; a write's token is for its document only.
  const later = await call(us, 'PUT', '/v1/kv/profiles/u42', { value: { name: 'Ada Lovelace' } });
  isProblem(t, await call(eu, 'GET', `/v1/kv/profiles/u42?token=${later.body.token}&waitMs=10`), 'ERR_NOT_YET_REPLICATED', 'a later write');
  isProblem(t, await call(eu, 'GET', `/v1/kv/profiles/u43?token=${token}`), 'ERR_TOKEN_INVALID', 'token of another key');
  isProblem(t, await call(eu, 'GET', `/v1/kv/visits/u42?token=${token}`), 'ERR_TOKEN_INVALID', 'token of another dataset');
  const forged = Buffer.from('["profiles","u42","us-east-1",1.5]').toString('base64url');
  const padded = `${Buffer.from('["profiles","u42","us-east-1",1]').toString('base64')}=`;
  const spaced = Buffer.from('[ "profiles","u42","us-east-1",1]').toString('base64url');
  for (const [what, bad] of [
    ['garbage', 'not-a-token'],
    ['not JSON', Buffer.from('hello').toString('base64url')],
    ['fractional counter', forged],
    ['padding', encodeURIComponent(padded)],
    ['not canonical', spaced],
    ['too long', 'A'.repeat(5_000)],
    ['bad node id', encodeSessionToken('profiles', 'u42', ['US', 1])],
    ['empty', ''],
  ] as const) {
    isProblem(t, await call(eu, 'GET', `/v1/kv/profiles/u42?token=${bad}`), 'ERR_TOKEN_INVALID', `token: ${what}`);
  }
  isProblem(t, await call(eu, 'GET', `/v1/kv/profiles/u42?token=${token}&waitMs=soon`), 'ERR_OPTION_INVALID', 'waitMs not a number');
  isProblem(t, await call(eu, 'GET', '/v1/kv/profiles/u42?waitMs=10'), 'ERR_OPTION_INVALID', 'waitMs without a token');

  // Draining releases waiting reads at once.
  const waiting = call(eu, 'GET', `/v1/kv/profiles/u42?token=${later.body.token}`);
  while (eu.api.inFlight === 0) await new Promise((resolve) => setImmediate(resolve));
  eu.api.setDraining(true);
  isProblem(t, await waiting, 'ERR_NOT_YET_REPLICATED', 'released by draining');
  isProblem(t, await call(eu, 'GET', `/v1/kv/profiles/u42?token=${later.body.token}`), 'ERR_NOT_YET_REPLICATED', 'no wait while draining');
});

t.test('session tokens through the replication hook', async (t) => {
  const us = await openReplica(t, 'us-east-1', 'us-east');
  const calls: Array<[string, string, readonly [string, number], number]> = [];
  let deliver = true;
  let eu: Harness;
  const replication: Replication = {
    status: () => ({ links: [] }),
    // Stands in for SyncNode: the write "arrives" through replication before the hook resolves.
    waitFor: async (dataset, key, dot, deadlineMs) => {
      calls.push([dataset, key, dot, deadlineMs]);
      if (!deliver) return false;
      await eu.replica.applyDeltas((await us.deltasSince(0)).entries);
      return true;
    },
  };
  eu = await setup(t, { replication });
  const result = await us.put('profiles', 'u7', { n: 7 });
  const token = encodeSessionToken('profiles', 'u7', result.dot!);
  const before = Date.now();
  const read = await call(eu, 'GET', `/v1/kv/profiles/u7?token=${token}&waitMs=1000`);
  t.equal(read.status, 200);
  t.same(read.body.value, { n: 7 });
  t.equal(calls.length, 1);
  t.same(calls[0]!.slice(0, 3), ['profiles', 'u7', result.dot]);
  t.ok(calls[0]![3] >= before, 'the deadline is an absolute Date.now() time');
  deliver = false;
  const next = await us.put('profiles', 'u7', { n: 8 });
  isProblem(t, await call(eu, 'GET', `/v1/kv/profiles/u7?token=${encodeSessionToken('profiles', 'u7', next.dot!)}&waitMs=1000`), 'ERR_NOT_YET_REPLICATED');
});

t.test('one log event per request, with the route pattern and no key, value or token', async (t) => {
  const h = await setup(t);
  const key = 'secret-key-4711';
  const value = 'secret-value-0815';
  const put = await call(h, 'PUT', `/v1/kv/profiles/${key}`, { value: { v: value } }, { 'x-request-id': 'req-1' });
  t.equal(put.headers.get('x-request-id'), 'req-1', 'a client request id is echoed');
  await call(h, 'GET', `/v1/kv/profiles/${key}?token=${put.body.token}`);
  await call(h, 'POST', `/v1/kv/profiles/${key}/ops`, { op: 'set', path: 'v', value });
  await call(h, 'GET', `/v1/kv/profiles?prefix=${key}`);
  await call(h, 'GET', `/v1/kv/profiles/${key}-absent`);
  await call(h, 'PUT', `/v1/kv/profiles/${key}`, `{"value": "${value}"`);
  await call(h, 'GET', `/v1/nothing/${key}`);
  const odd = await call(h, 'GET', '/healthz', undefined, { 'x-request-id': 'bad id with spaces' });
  t.match(odd.headers.get('x-request-id'), /^[0-9a-f-]{36}$/, 'an odd request id is replaced');
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(h.events.length, 8, 'one event per request');
  t.same(
    h.events.map((event) => [event.method, event.route, event.status, event.code ?? null]),
    [
      ['PUT', '/v1/kv/:dataset/:key', 200, null],
      ['GET', '/v1/kv/:dataset/:key', 200, null],
      ['POST', '/v1/kv/:dataset/:key/ops', 200, null],
      ['GET', '/v1/kv/:dataset', 200, null],
      ['GET', '/v1/kv/:dataset/:key', 404, 'ERR_DOC_NOT_FOUND'],
      ['PUT', '/v1/kv/:dataset/:key', 400, 'ERR_BODY_INVALID'],
      ['GET', null, 404, 'ERR_NOT_FOUND'],
      ['GET', '/healthz', 200, null],
    ],
  );
  t.equal(h.events[0]!.requestId, 'req-1');
  for (const event of h.events) {
    // pino adds the level and time; the principal is the token's public id and name, never the token.
    t.same(
      Object.keys(event).filter(
        (name) => !['level', 'time', 'event', 'requestId', 'traceId', 'method', 'route', 'status', 'durationMs', 'code', 'principal'].includes(name),
      ),
      [],
    );
    t.equal(event.level, 'info', 'a request event is logged at info level');
    t.match(event.principal, /^admin \([0-9a-f]{12}\)$/);
    t.type(event.durationMs, 'number');
    const text = JSON.stringify(event);
    for (const secret of [key, value, put.body.token]) t.notOk(text.includes(secret), `no key, value or token in ${text}`);
  }
});
