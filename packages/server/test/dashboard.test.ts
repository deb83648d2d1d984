// Goal: the dashboard's files are served with the right types and headers and nothing else can be reached
// through their routes; the cluster view marks unreachable and silent nodes down within its deadline, shares
// gathers between callers, merges conflicts and audit tails over nodes, and bounds what it reads.
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
  type ClusterMember, ClusterView, clusterAuditMax, clusterAuditTailEntries, clusterConflictsMax, clusterMemberDeadlineMs,
  clusterResponseBytesMax, clusterSnapshotReuseMs, clusterSummaryRefreshMs, conflictValuePreviewCharsMax,
} from '../src/cluster-view.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

async function listen(t: Test, server: ReturnType<typeof createServer>): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function serveReplica(t: Test, options: Partial<HttpHandlerDeps> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-dashboard-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const replica = await Replica.open({ path: join(dir, 'eu-west-1'), node: 'eu-west-1', region: 'eu-west', durability: 'os' });
  t.teardown(() => replica.close());
  return listen(t, createServer(createHttpHandler({ replica, node: { id: 'eu-west-1', region: 'eu-west' }, ...options }).handle));
}

/** Status and body of a request sent as is (fetch would resolve `..` and `%2e%2e` before sending). */
function raw(base: string, method: string, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(base);
    const req = request({ hostname, port, path, method }, (res) => {
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
    '/static/../package.json', '/static/%2e%2e%2fpackage.json', '/static/..%2F..%2Fpackage.json', '/static/dashboard.ts',
    '/static/.%2E/src/http.ts', '/static/', '/static/app.js/', '/static//etc/passwd', '/static/APP.JS', `/static/${'a'.repeat(5000)}`,
    '/index.html', '/static/node_modules/uplot/package.json', '/static/uPlot.esm.js%00.css',
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
  const listed = [...dashboardFiles.entries()].filter(([, entry]) => entry.path().startsWith(dashboardDir)).map(([name]) => name).sort();
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
  const answer = await fetch(`${url}/v1/cluster`);
  t.equal(answer.status, 404);
  t.match(await answer.json(), { code: 'ERR_NOT_FOUND', detail: /no cluster view/ });
});

/** A fake node: canned answers per path, every request counted by path. */
interface FakeNode {
  readonly url: string;
  readonly hits: Map<string, number>;
}

async function fakeNode(t: Test, node: string, region: string, answers: (path: string, query: URLSearchParams) => { status: number; body: unknown } | undefined): Promise<FakeNode> {
  const hits = new Map<string, number>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    hits.set(url.pathname, (hits.get(url.pathname) ?? 0) + 1);
    const answer = url.pathname === '/v1/status' ? { status: 200, body: { node, region, lastSeq: 7, links: [] } } : answers(url.pathname, url.searchParams);
    const body = Buffer.from(JSON.stringify(answer?.body ?? { code: 'ERR_NOT_FOUND' }));
    res.writeHead(answer?.status ?? 404, { 'content-type': answer === undefined ? 'application/problem+json' : 'application/json', 'content-length': String(body.length) });
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
  t.teardown(() => new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy();
    server.close(() => resolve());
  }));
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

const conflict = (id: string, key: string, ms: number, loser: unknown = 'old') => ({
  id, dataset: 'profiles', key, path: ['city'], kind: 'lww', origin: 'us-east-1', recordedAt: { ms, c: 0 },
  winner: { value: 'new', dot: ['us-east-1', 1], hlc: { ms, c: 0 } }, loser: { value: loser, dot: ['eu-west-1', 2], hlc: { ms: ms - 1, c: 0 } },
});

/** Answers of a healthy fake: a policy, conflicts, an audit log of `auditLength` entries, and counts when asked. */
function healthy(node: string, region: string, conflicts: unknown[], auditLengthNow: number | (() => number), summary = true) {
  return (path: string, query: URLSearchParams): { status: number; body: unknown } | undefined => {
    const auditLength = typeof auditLengthNow === 'number' ? auditLengthNow : auditLengthNow();
    if (path === '/v1/policy') return { status: 200, body: { region, enforced: { version: 3, hash: 'ab', text: 'secret text' }, shadow: null } };
    if (path === '/v1/conflicts') return { status: 200, body: { conflicts } };
    if (path === '/v1/audit') {
      const after = Number(query.get('after') ?? 0);
      const limit = Number(query.get('limit') ?? 100);
      const entries = [];
      for (let seq = after + 1; seq <= Math.min(auditLength, after + limit); seq++) {
        entries.push({ seq, atMs: 1_000_000 + seq * 10 + (node === 'b' ? 5 : 0), kind: 'send-denied', node, region, details: { entries: seq }, prev: 'p', hash: 'h' });
      }
      return { status: 200, body: { region, length: auditLength, entries } };
    }
    if (path === '/v1/inspect/summary' && summary) return { status: 200, body: { node, region, datasets: [{ dataset: 'profiles', live: 4, quarantined: 1 }] } };
    return undefined;
  };
}

t.test('cluster view: reachable, refused and silent nodes; one deadline per node', async (t) => {
  const a = await fakeNode(t, 'a', 'eu-west', healthy('a', 'eu-west', [conflict('c1', 'k1', 500), conflict('c2', 'k2', 900)], 3));
  const b = await fakeNode(t, 'b', 'us-east', healthy('b', 'us-east', [conflict('c1', 'k1', 500), conflict('c3', 'k3', 700, 'x'.repeat(500))], 30, false));
  const members: ClusterMember[] = [
    { node: 'a', region: 'eu-west', url: a.url },
    { node: 'b', region: 'us-east', url: b.url },
    { node: 'c', region: 'ap-south', url: await closedPort() },
    { node: 'd', region: 'sa-east', url: await silentNode(t) },
  ];
  const view = new ClusterView({ node: 'a', region: 'eu-west' }, members);
  const startedMs = performance.now();
  const snapshot = await view.snapshot();
  const tookMs = performance.now() - startedMs;
  t.ok(tookMs < clusterMemberDeadlineMs + 1_500, `a silent node costs one deadline, not more (took ${Math.round(tookMs)} ms)`);
  t.same(snapshot.viewer, { node: 'a', region: 'eu-west' });
  t.same(snapshot.members.map((m) => [m.node, m.reachable, m.self]), [['a', true, true], ['b', true, false], ['c', false, false], ['d', false, false]]);
  t.match(snapshot.members[2]!.error, /connection failed \(ECONNREFUSED\)/, 'a refused connection says so');
  t.equal(snapshot.members[3]!.error, `no answer within ${clusterMemberDeadlineMs} ms`, 'a silent node times out');
  t.match(snapshot.members[0]!, { status: { node: 'a', lastSeq: 7 }, policy: { enforced: { version: 3, hash: 'ab' }, shadow: null }, auditLength: 3, error: null });
  t.notOk(JSON.stringify(snapshot).includes('secret text'), 'policy texts are not part of the view');
  t.match(snapshot.members[0]!.summary, { datasets: [{ dataset: 'profiles', live: 4, quarantined: 1 }] });
  t.equal(snapshot.members[1]!.summary, null, 'a node without the inspect route has no counts, and that is no error');
  t.equal(snapshot.members[1]!.error, null);

  // Conflicts: one per id over nodes, newest first, values cut short.
  t.same(snapshot.conflicts.map((c) => [c.id, c.seenOn]), [['c2', ['a']], ['c3', ['b']], ['c1', ['a', 'b']]]);
  t.equal(snapshot.conflicts[1]!.loser.length, conflictValuePreviewCharsMax, 'a long value is previewed');
  t.equal(snapshot.conflicts[0]!.winner, '"new"');
  // Audit: the end of each node's log, merged newest first, without chain hashes.
  t.equal(snapshot.audit.length, Math.min(clusterAuditMax, 3 + clusterAuditTailEntries));
  t.same(snapshot.audit.slice(0, 3).map((e) => [e.node, e.seq]), [['b', 30], ['b', 29], ['b', 28]]);
  t.ok(snapshot.audit.every((e, i) => i === 0 || snapshot.audit[i - 1]!.atMs >= e.atMs), 'newest first');
  t.equal(Math.min(...snapshot.audit.filter((e) => e.node === 'b').map((e) => e.seq)), 30 - clusterAuditTailEntries + 1, 'only the tail of a long log is read');
  t.notOk('hash' in snapshot.audit[0]!);
  t.ok(clusterConflictsMax >= 3);
});

t.test('cluster view: callers share gathers; counts are refreshed less often', async (t) => {
  let auditLength = 0;
  const a = await fakeNode(t, 'a', 'eu-west', healthy('a', 'eu-west', [], () => auditLength));
  const view = new ClusterView({ node: 'a', region: 'eu-west' }, [{ node: 'a', region: 'eu-west', url: a.url }]);
  const [first, second] = await Promise.all([view.snapshot(), view.snapshot()]);
  t.equal(first, second, 'callers during a gather get its result');
  t.equal(a.hits.get('/v1/status'), 1);
  t.equal(await view.snapshot(), first, 'a fresh result is reused');
  t.equal(a.hits.get('/v1/status'), 1);
  await new Promise((resolve) => setTimeout(resolve, clusterSnapshotReuseMs + 50));
  const third = await view.snapshot();
  t.not(third, first, 'an old result is gathered again');
  t.equal(a.hits.get('/v1/status'), 2);
  t.equal(a.hits.get('/v1/inspect/summary'), 1, `counts are asked for at most every ${clusterSummaryRefreshMs} ms`);
  t.ok(third.members[0]!.summaryAgeMs! >= clusterSnapshotReuseMs, 'and the view says how old they are');
  t.same(third.members[0]!.summary, first.members[0]!.summary);
  t.equal(a.hits.get('/v1/audit'), 2, 'an empty audit log takes one request');

  // The audit tail: one request while the log grows by less than a tail between gathers, two past that.
  const gatherAgain = async () => {
    await new Promise((resolve) => setTimeout(resolve, clusterSnapshotReuseMs + 20));
    return view.snapshot();
  };
  const auditAsks = async (length: number) => {
    auditLength = length;
    const before = a.hits.get('/v1/audit')!;
    const snapshot = await gatherAgain();
    t.same(snapshot.audit.map((e) => e.seq), Array.from({ length: Math.min(length, clusterAuditTailEntries) }, (_, i) => length - i), `log of ${length}: its end, newest first`);
    return a.hits.get('/v1/audit')! - before;
  };
  t.equal(await auditAsks(5), 1, 'a log that grew by a few entries: one request');
  t.equal(await auditAsks(5 + clusterAuditTailEntries), 1, 'by a tail: one');
  t.equal(await auditAsks(5 + 2 * clusterAuditTailEntries + 1), 2, 'by more than a tail: two');
  t.equal(await auditAsks(5 + 2 * clusterAuditTailEntries + 4), 1);
  t.equal(await auditAsks(2), 2, 'a log that shrank (a new data directory): two');
});

t.test('cluster view: an answer over the size bound or with an error status is a missing part, named', async (t) => {
  const big = 'x'.repeat(clusterResponseBytesMax + 1);
  const a = await fakeNode(t, 'a', 'eu-west', (path) => {
    if (path === '/v1/conflicts') return { status: 200, body: { conflicts: [], padding: big } };
    if (path === '/v1/policy') return { status: 503, body: { code: 'ERR_STORE_CLOSED' } };
    if (path === '/v1/audit') return { status: 200, body: { region: 'eu-west', length: 0, entries: [] } };
    return undefined;
  });
  const snapshot = await new ClusterView({ node: 'a', region: 'eu-west' }, [{ node: 'a', region: 'eu-west', url: a.url }]).snapshot();
  const [member] = snapshot.members;
  t.equal(member!.reachable, true, 'a node that answers its status is reachable');
  t.match(member!.error, /policy: HTTP 503 ERR_STORE_CLOSED/);
  t.match(member!.error, new RegExp(`conflicts: answer of \\d+ bytes is over the limit of ${clusterResponseBytesMax} bytes`));
  t.equal(member!.policy, null);
  t.same(snapshot.conflicts, []);
});

t.test('GET /v1/cluster through the handler: the view of real nodes', async (t) => {
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
    members.push({ node: replica.node, region: replica.region, url: await listen(t, createServer((req, res) => handlers[i]!(req, res))) });
  }
  for (const replica of [west, east]) {
    const view = new ClusterView({ node: replica.node, region: replica.region }, members);
    handlers.push(createHttpHandler({ replica, node: { id: replica.node, region: replica.region }, cluster: view }).handle);
  }
  // Concurrent writes to one field, exchanged by hand: both replicas record the same conflict.
  await west.put('profiles', 'u1', { city: 'Cork' });
  await east.put('profiles', 'u1', { city: 'Boston' });
  await east.applyDeltas((await west.deltasSince(0)).entries, { from: 'eu-west' });
  await west.applyDeltas((await east.deltasSince(0)).entries.filter((e) => e.origin === 'us-east-1'), { from: 'us-east' });
  const answer = await fetch(`${members[1]!.url}/v1/cluster`);
  t.equal(answer.status, 200);
  const snapshot = await answer.json() as any;
  t.same(snapshot.viewer, { node: 'us-east-1', region: 'us-east' });
  t.same(snapshot.members.map((m: { node: string; reachable: boolean; self: boolean }) => [m.node, m.reachable, m.self]), [['eu-west-1', true, false], ['us-east-1', true, true]]);
  t.same(snapshot.members.map((m: { status: { lastSeq: number } }) => m.status.lastSeq), [west.lastSeq, east.lastSeq], 'each node reports its own log head');
  t.equal(snapshot.conflicts.length, 1, 'the conflict both recorded is listed once');
  t.match(snapshot.conflicts[0], { dataset: 'profiles', key: 'u1', path: ['city'], seenOn: ['eu-west-1', 'us-east-1'] });
});
