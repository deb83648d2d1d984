// Goal: the dashboard's files are served with the right types and headers and nothing else can be reached
// through their routes; the cluster view marks unreachable and silent nodes down within its deadline, shares
// gathers between callers of one credential, merges conflicts and audit tails over nodes, bounds what it reads,
// and never carries a key or a value (issue 12 item 6: us-east served EU-only pii conflict values).
// Method: the HTTP handler on a real node:http server over a real replica, called with fetch and with node:http
// (which sends paths without normalising them); the cluster view over fake nodes on loopback: canned answers,
// a closed port, and a server that accepts connections and never answers.
import t from 'tap';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo, createServer as createTcpServer, type Socket } from 'node:net';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Replica } from '@tessera/store';
import { createHttpHandler, type HttpHandlerDeps } from '../src/http.js';
import { dashboardDir, dashboardFiles } from '../src/dashboard.js';
import {
  type ClusterMember,
  type MemberPart,
  ClusterView,
  clusterAuditMax,
  clusterAuditTailEntries,
  clusterConflictsMax,
  clusterMemberDeadlineMs,
  clusterResponseBytesMax,
  clusterSnapshotReuseMs,
} from '../src/cluster-view.js';
import { bearer, testCredentials } from './helpers/auth.js';

const credentials = testCredentials();
const admin = bearer(credentials.admin).authorization!;

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

async function listen(t: Test, server: ReturnType<typeof createServer>): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function serveReplica(t: Test, options: Partial<HttpHandlerDeps> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-dashboard-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const replica = await Replica.open({ path: join(dir, 'eu-west-1'), node: 'eu-west-1', region: 'eu-west', durability: 'os' });
  t.teardown(() => replica.close());
  return listen(
    t,
    createServer(createHttpHandler({ replica, node: { id: 'eu-west-1', region: 'eu-west' }, access: { tokens: credentials.tokens }, ...options }).handle),
  );
}

/**
 * Status and body of a request sent as is (fetch would resolve `..` and `%2e%2e` before sending), with a token:
 * a path outside the dashboard's files is no route, and unknown paths answer a caller with a credential only.
 */
function raw(base: string, method: string, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(base);
    const req = request({ hostname, port, path, method, headers: { authorization: admin } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('GET / and /static/<file>: every listed file with its type and headers; nothing else', async (t) => {
  const url = await serveReplica(t);
  const index = await fetch(`${url}/`);
  t.equal(index.status, 200);
  t.equal(index.headers.get('content-type'), 'text/html; charset=utf-8');
  t.equal(index.headers.get('cache-control'), 'no-cache', 'revalidated on every load, so an upgrade shows at once');
  t.equal(index.headers.get('x-content-type-options'), 'nosniff');
  t.match(index.headers.get('content-security-policy'), /default-src 'self'/, 'the page may load only its own files');
  const html = await index.text();
  t.match(html, '<script type="module" src="/static/app.js"></script>');
  t.equal((await fetch(`${url}/`, { method: 'HEAD' })).status, 200, 'HEAD works');

  for (const [name, entry] of dashboardFiles) {
    const answer = await fetch(`${url}/static/${name}`);
    t.equal(answer.status, 200, `${name} is served`);
    t.equal(answer.headers.get('content-type'), entry.contentType, `${name}: ${entry.contentType}`);
    t.equal((await answer.arrayBuffer()).byteLength, (await readFile(entry.path())).length, `${name}: the whole file`);
  }
  t.match(await (await fetch(`${url}/static/uPlot.esm.js`)).text(), /export \{ uPlot as default \}|export default uPlot/, 'uPlot as an ES module');

  // Every way of naming another file is a 404 problem, never a file.
  for (const path of [
    '/static/../package.json',
    '/static/%2e%2e%2fpackage.json',
    '/static/..%2F..%2Fpackage.json',
    '/static/dashboard.ts',
    '/static/.%2E/src/http.ts',
    '/static/',
    '/static/app.js/',
    '/static//etc/passwd',
    '/static/APP.JS',
    `/static/${'a'.repeat(5000)}`,
    '/index.html',
    '/static/node_modules/uplot/package.json',
    '/static/uPlot.esm.js%00.css',
  ]) {
    const answer = await raw(url, 'GET', path);
    t.equal(answer.status, 404, `${path.slice(0, 60)}: 404`);
    t.equal(answer.type, 'application/problem+json; charset=utf-8');
    t.match(JSON.parse(answer.body), { code: 'ERR_NOT_FOUND' });
  }
  t.equal((await raw(url, 'GET', '/?x=1')).status, 400, 'no query parameters');
  t.equal((await raw(url, 'POST', '/static/app.js')).status, 405, 'GET only');
});

t.test('the allow-list, the static folder and the files the page loads agree', async (t) => {
  const onDisk = (await readdir(dashboardDir)).sort();
  const listed = [...dashboardFiles.entries()]
    .filter(([, entry]) => entry.path().startsWith(dashboardDir))
    .map(([name]) => name)
    .sort();
  t.same(listed, onDisk, 'every file of the static folder is served, and only those (besides uPlot)');
  // What index.html and the modules refer to must be served, or the page breaks without a build step to notice.
  const wanted = new Set<string>();
  for (const name of onDisk) {
    const text = await readFile(join(dashboardDir, name), 'utf8');
    for (const match of text.matchAll(/(?:from\s+|import\s+)['"]\.\/([^'"]+)['"]|(?:src|href)="\/static\/([^"]+)"/g)) wanted.add(match[1] ?? match[2]!);
  }
  t.ok(wanted.has('uPlot.esm.js') && wanted.has('app.js') && wanted.has('dashboard.css'), 'the scan finds the references');
  for (const name of wanted) t.ok(dashboardFiles.has(name), `${name} is on the list`);
});

t.test('GET /v1/cluster: the view of a handler without a cluster is a 404 problem', async (t) => {
  const url = await serveReplica(t);
  const answer = await fetch(`${url}/v1/cluster`, { headers: { authorization: admin } });
  t.equal(answer.status, 404);
  t.match(await answer.json(), { code: 'ERR_NOT_FOUND', detail: /no cluster view/ });
});

/** A fake node: answers its part of the view (or what `answer` says), every request counted with its credential. */
interface FakeNode {
  readonly url: string;
  readonly hits: string[];
}

async function fakeNode(t: Test, answer: (query: URLSearchParams) => { status: number; body: unknown }): Promise<FakeNode> {
  const hits: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    hits.push(`${url.pathname} ${req.headers.authorization ?? '-'}`);
    const reply = url.pathname === '/v1/cluster/member' ? answer(url.searchParams) : { status: 404, body: { code: 'ERR_NOT_FOUND' } };
    const body = Buffer.from(JSON.stringify(reply.body));
    res.writeHead(reply.status, { 'content-type': 'application/json', 'content-length': String(body.length) });
    res.end(body);
  });
  return { url: await listen(t, server), hits };
}

/** A server that accepts connections and never answers (a blackholed path looks the same to the client). */
async function silentNode(t: Test): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A loopback URL nothing listens on. */
async function closedPort(): Promise<string> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** A member part: conflicts by (id, ms), an audit log of `auditLength` entries of which the tail after `after` is given. */
function part(node: string, region: string, conflicts: Array<[string, number]>, auditLength: number, after: number): MemberPart {
  const entries = [];
  for (let seq = Math.max(after, auditLength - clusterAuditTailEntries) + 1; seq <= auditLength; seq++) {
    entries.push({ seq, atMs: 1_000_000 + seq * 10 + (node === 'b' ? 5 : 0), kind: 'send-denied', node, region, details: { entries: seq } });
  }
  return {
    status: { node, region, lastSeq: 7, uptimeMs: 1, links: [] },
    policy: { enforced: { version: 3, hash: 'ab' }, shadow: null },
    summary: { datasets: [{ dataset: 'profiles', live: 4, quarantined: 1 }] },
    summaryAgeMs: 10,
    conflicts: conflicts.map(([id, ms]) => ({
      id,
      dataset: 'profiles',
      keyDigest: `digest-${id}`,
      pathDepth: 1,
      kind: 'concurrent-write',
      origin: 'us-east-1',
      recordedAt: { ms, c: 0 },
    })),
    audit: { length: auditLength, entries },
  };
}

t.test('cluster view: reachable, refused and silent nodes; one deadline per node; conflicts and audit merged', async (t) => {
  const a = await fakeNode(t, (q) => ({
    status: 200,
    body: part(
      'a',
      'eu-west',
      [
        ['c1', 500],
        ['c2', 900],
      ],
      3,
      Number(q.get('auditAfter')),
    ),
  }));
  const b = await fakeNode(t, (q) => ({
    status: 200,
    body: part(
      'b',
      'us-east',
      [
        ['c1', 500],
        ['c3', 700],
      ],
      30,
      Number(q.get('auditAfter')),
    ),
  }));
  const members: ClusterMember[] = [
    { node: 'a', region: 'eu-west', url: a.url },
    { node: 'b', region: 'us-east', url: b.url },
    { node: 'c', region: 'ap-south', url: await closedPort() },
    { node: 'd', region: 'sa-east', url: await silentNode(t) },
  ];
  const view = new ClusterView({ node: 'a', region: 'eu-west' }, members);
  const startedMs = performance.now();
  const snapshot = await view.snapshot(admin);
  const tookMs = performance.now() - startedMs;
  t.ok(tookMs < clusterMemberDeadlineMs + 1_500, `a silent node costs one deadline, not more (took ${Math.round(tookMs)} ms)`);
  t.same(snapshot.viewer, { node: 'a', region: 'eu-west' });
  t.same(
    snapshot.members.map((m) => [m.node, m.reachable, m.self]),
    [
      ['a', true, true],
      ['b', true, false],
      ['c', false, false],
      ['d', false, false],
    ],
  );
  t.match(snapshot.members[2]!.error, /connection failed \(ECONNREFUSED\)/, 'a refused connection says so');
  t.equal(snapshot.members[3]!.error, `no answer within ${clusterMemberDeadlineMs} ms`, 'a silent node times out');
  t.match(snapshot.members[0]!, {
    status: { node: 'a', lastSeq: 7 },
    policy: { enforced: { version: 3, hash: 'ab' }, shadow: null },
    auditLength: 3,
    error: null,
  });
  t.match(snapshot.members[0]!.summary, { datasets: [{ dataset: 'profiles', live: 4, quarantined: 1 }] });
  t.ok(
    a.hits.every((hit) => hit === `/v1/cluster/member ${admin}`),
    "each node is asked once, with the caller's credential",
  );
  // Conflicts: one per id over nodes, newest first.
  t.same(
    snapshot.conflicts.map((c) => [c.id, c.seenOn]),
    [
      ['c2', ['a']],
      ['c3', ['b']],
      ['c1', ['a', 'b']],
    ],
  );
  // Audit: the end of each node's log, merged newest first.
  t.equal(snapshot.audit.length, Math.min(clusterAuditMax, 3 + clusterAuditTailEntries));
  t.same(
    snapshot.audit.slice(0, 3).map((e) => [e.node, e.seq]),
    [
      ['b', 30],
      ['b', 29],
      ['b', 28],
    ],
  );
  t.ok(
    snapshot.audit.every((e, i) => i === 0 || snapshot.audit[i - 1]!.atMs >= e.atMs),
    'newest first',
  );
  t.ok(clusterConflictsMax >= 3);
});

t.test('cluster view: callers with one credential share gathers; another credential gathers its own; error answers are named', async (t) => {
  let status = 200;
  const a = await fakeNode(t, (q) =>
    status === 200 ? { status, body: part('a', 'eu-west', [], 0, Number(q.get('auditAfter'))) } : { status, body: { code: 'ERR_FORBIDDEN' } },
  );
  const view = new ClusterView({ node: 'a', region: 'eu-west' }, [{ node: 'a', region: 'eu-west', url: a.url }]);
  const [first, second] = await Promise.all([view.snapshot(admin), view.snapshot(admin)]);
  t.equal(first, second, 'callers during a gather get its result');
  t.equal(await view.snapshot(admin), first, 'a fresh result is reused');
  t.equal(a.hits.length, 1);
  status = 403;
  const other = await view.snapshot('Bearer someone-else');
  t.equal(a.hits.length, 2, "another credential is not served the admin's view");
  t.equal(other.members[0]!.reachable, false);
  t.equal(other.members[0]!.error, 'HTTP 403 ERR_FORBIDDEN', 'the node refused that credential, and the view says so');
  await new Promise((resolve) => setTimeout(resolve, clusterSnapshotReuseMs + 50));
  status = 200;
  t.not(await view.snapshot(admin), first, 'an old result is gathered again');
});

t.test('cluster view: an answer over the size bound is a missing node, named', async (t) => {
  const big = 'x'.repeat(clusterResponseBytesMax + 1);
  const a = await fakeNode(t, () => ({ status: 200, body: { padding: big } }));
  const snapshot = await new ClusterView({ node: 'a', region: 'eu-west' }, [{ node: 'a', region: 'eu-west', url: a.url }]).snapshot(admin);
  t.match(snapshot.members[0]!.error, new RegExp(`answer of \\d+ bytes is over the limit of ${clusterResponseBytesMax} bytes`));
  t.same(snapshot.conflicts, []);
});

t.test('GET /v1/cluster through the handler: the view of real nodes carries no key or value, and needs an operator', async (t) => {
  // Two handlers over real replicas, each with a view of both: what the dashboard of either shows.
  const dirs: string[] = [];
  const open = async (node: string, region: string) => {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-dashboard-'));
    dirs.push(dir);
    const replica = await Replica.open({ path: join(dir, node), node, region, durability: 'os' });
    t.teardown(() => replica.close());
    return replica;
  };
  t.teardown(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));
  const west = await open('eu-west-1', 'eu-west');
  const east = await open('us-east-1', 'us-east');
  // The servers listen first: each view needs every node's address.
  const handlers: Array<(req: IncomingMessage, res: ServerResponse) => void> = [];
  const members: ClusterMember[] = [];
  for (const [i, replica] of [west, east].entries()) {
    members.push({
      node: replica.node,
      region: replica.region,
      url: await listen(
        t,
        createServer((req, res) => handlers[i]!(req, res)),
      ),
    });
  }
  for (const replica of [west, east]) {
    const view = new ClusterView({ node: replica.node, region: replica.region }, members);
    handlers.push(
      createHttpHandler({ replica, node: { id: replica.node, region: replica.region }, access: { tokens: credentials.tokens }, cluster: view }).handle,
    );
  }
  // Concurrent writes to one field of an EU pii profile, exchanged by hand: both replicas record the conflict.
  await west.put('profiles', 'pii-key-ada', { email: 'marker-ada@example.eu' }, { tags: ['pii'] });
  await east.put('profiles', 'pii-key-ada', { email: 'marker-other@example.eu' });
  await east.applyDeltas((await west.deltasSince(0)).entries, { from: 'eu-west' });
  await west.applyDeltas(
    (await east.deltasSince(0)).entries.filter((e) => e.origin === 'us-east-1'),
    { from: 'us-east' },
  );
  const answer = await fetch(`${members[1]!.url}/v1/cluster`, { headers: { authorization: admin } });
  t.equal(answer.status, 200);
  const text = await answer.text();
  const snapshot = JSON.parse(text) as any;
  t.same(snapshot.viewer, { node: 'us-east-1', region: 'us-east' });
  t.same(
    snapshot.members.map((m: { node: string; reachable: boolean; self: boolean }) => [m.node, m.reachable, m.self]),
    [
      ['eu-west-1', true, false],
      ['us-east-1', true, true],
    ],
  );
  t.same(
    snapshot.members.map((m: { status: { lastSeq: number } }) => m.status.lastSeq),
    [west.lastSeq, east.lastSeq],
    'each node reports its own log head',
  );
  t.equal(snapshot.conflicts.length, 1, 'the conflict both recorded is listed once');
  t.match(snapshot.conflicts[0], { dataset: 'profiles', keyDigest: /^[0-9a-f]+$/, pathDepth: 1, seenOn: ['eu-west-1', 'us-east-1'] });
  for (const marker of ['pii-key-ada', 'marker-ada', 'marker-other', 'email']) t.notOk(text.includes(marker), `the view carries no ${marker}`);
  const reader = credentials.token('reader-view', { roles: ['reader'], datasets: ['*'] });
  const refused = await fetch(`${members[1]!.url}/v1/cluster`, { headers: bearer(reader) });
  t.equal(refused.status, 403, 'a reader may not see the cluster view');
  t.equal((await fetch(`${members[1]!.url}/v1/cluster`)).status, 401, 'nor may an anonymous caller');
});
