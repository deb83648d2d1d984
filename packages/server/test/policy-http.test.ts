// Goal: the policy and audit routes of the HTTP API do what README and docs/policy.md promise: GET /v1/policy shows
// the enforced and shadow versions (text and content hash); POST /v1/policy plans (changes nothing), shadows and
// enforces (re-judging stored data, telling replication), says whether anything changed, and refuses bad bodies,
// invalid policies (every problem at its line:col) and conflicting versions with their catalogue codes; a write
// or read of a document this region may not hold answers 421 naming the regions that may; users cannot write the
// store's reserved origin tags; the audit log pages and verifies — and detects an entry edited on disk; no log
// event of any of these requests carries a key or a value.
// Method: the handler on a real node:http server on 127.0.0.1:0 over real replicas in temp directories, called
// with fetch; replication is a stub that records `policyChanged`. Keys and values carry marker strings that the
// test looks for in every log event.
import t from 'tap';
import { createServer } from 'node:http';
import { type AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { generateKeyPairSync } from 'node:crypto';
import { errorCatalogue, parsePolicy, policyBytesMax, signPolicy } from '@tessera/core';
import { type AuditEntry, Replica, policyHash } from '@tessera/store';
import { type HttpApi, type Replication, createHttpHandler, policyBodyBytesMax } from '../src/http.js';
import { bearer, testCredentials } from './helpers/auth.js';

const credentials = testCredentials();
/** The operator key of these tests' cluster ("test"). */
const operator = generateKeyPairSync('ed25519');

/**
 * An install body signed by the operator key, as `tessera policy apply` sends it: these tests are about what
 * a signed policy does (the signature tests say `signature` themselves, or leave it out on purpose).
 */
function signed(body: unknown): unknown {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || 'signature' in body) return body;
  const { text, mode } = body as { text?: unknown; mode?: unknown };
  if ((mode !== 'shadow' && mode !== 'enforce') || typeof text !== 'string') return body;
  try {
    return { ...body, signature: signPolicy(parsePolicy(text, 'x'), 'test', operator.privateKey) };
  } catch {
    return body;
  }
}

/** The type of a subtest's `t`. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const regions = `regions:
  eu-west:    { jurisdiction: eu, location: [53.3, -6.3] }
  eu-central: { jurisdiction: eu, location: [50.1, 8.7] }
  us-east:    { jurisdiction: us, location: [38.9, -77.0] }
`;
const policyV1 = `version: 1
${regions}datasets:
  catalog:  { type: map, placement: global, priority: high }
  orders:   { type: map, placement: { regions: [eu-west, us-east] } }
  audits:   { type: lww, placement: local }
rules:
  - name: pii stays in its jurisdiction
    deny: "'pii' in doc.tags && target.jurisdiction != source.jurisdiction"
`;
/**
 * v2: orders are no longer listed, and unlisted datasets are refused everywhere: no region may hold an order,
 * so a region purges its copies at once (a region that hands documents over to others keeps them until they
 * have them; that is replication's part, not this file's).
 */
const policyV2 = policyV1
  .replace('version: 1', 'version: 2\nunlisted: refuse')
  .replace('  orders:   { type: map, placement: { regions: [eu-west, us-east] } }\n', '');
/** Another text under version 2: versions are immutable. */
const policyV2Other = policyV1.replace('version: 1', 'version: 2').replace('placement: local', 'placement: global');

const peers = [
  { node: 'eu-west-1', region: 'eu-west' },
  { node: 'eu-central-1', region: 'eu-central' },
  { node: 'us-east-1', region: 'us-east' },
];

interface Harness {
  readonly url: string;
  readonly replica: Replica;
  readonly api: HttpApi;
  readonly events: Array<Record<string, unknown>>;
  /** How often the API told replication that the enforced policy changed. */
  readonly policyChanges: { count: number };
  readonly dir: string;
}

async function serve(t: Test, replica: Replica, dir: string): Promise<Harness> {
  const events: Array<Record<string, unknown>> = [];
  const policyChanges = { count: 0 };
  const replication: Replication = { status: () => ({ links: [] }), policyChanged: () => void policyChanges.count++ };
  const api = createHttpHandler({
    replica,
    node: { id: replica.node, region: replica.region },
    access: { tokens: credentials.tokens },
    policySigning: { cluster: 'test', operatorKeys: [operator.publicKey] },
    replication,
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
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, replica, api, events, policyChanges, dir };
}

/** A node of `region` (its replica opened with `policyText`, if any) behind the HTTP API. */
async function setup(t: Test, region: 'eu-west' | 'eu-central' | 'us-east', policyText: string | null = policyV1): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-policy-http-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const replica = await Replica.open({
    path: join(dir, 'data'),
    node: `${region}-1`,
    region,
    durability: 'os',
    peers,
    ...(policyText === null ? {} : { policy: parsePolicy(policyText, 'policy.yaml') }),
  });
  t.teardown(() => replica.close());
  return serve(t, replica, dir);
}

interface Answer {
  readonly status: number;
  readonly contentType: string | null;
  readonly body: any;
}

async function call(h: Harness, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const init: RequestInit = { method, headers: { ...bearer(credentials.admin), ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(path === '/v1/policy' ? signed(body) : body);
    if (!('content-type' in headers)) (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  const res = await fetch(h.url + path, init);
  const text = await res.text();
  return { status: res.status, contentType: res.headers.get('content-type'), body: text === '' ? undefined : JSON.parse(text) };
}

/** Asserts a problem+json answer with `code` and the catalogue's status. */
function isProblem(t: Test, answer: Answer, code: keyof typeof errorCatalogue, what: string = code): void {
  const status = errorCatalogue[code].status;
  t.equal(answer.status, status, `${what}: status ${status}`);
  t.equal(answer.contentType, 'application/problem+json; charset=utf-8', `${what}: problem+json`);
  t.equal(answer.body?.code, code, `${what}: code ${code} (${String(answer.body?.detail).slice(0, 300)})`);
}

/** Asserts that no log event mentions any of `markers` (keys and values the test used). */
function noMarkersLogged(t: Test, h: Harness, markers: readonly string[]): void {
  t.ok(h.events.length > 0, 'requests were logged');
  const logged = JSON.stringify(h.events);
  for (const marker of markers) t.notOk(logged.includes(marker), `no log event carries ${marker}`);
}

t.test('GET /v1/policy: the enforced version with its text and content hash; none without a policy', async (t) => {
  const bare = await setup(t, 'eu-west', null);
  const none = await call(bare, 'GET', '/v1/policy');
  t.equal(none.status, 200);
  t.same(none.body, { region: 'eu-west', enforced: null, shadow: null }, 'a node without a policy says so');

  const h = await setup(t, 'eu-west');
  const answer = await call(h, 'GET', '/v1/policy');
  t.equal(answer.status, 200);
  t.same(
    answer.body,
    {
      region: 'eu-west',
      enforced: { version: 1, hash: policyHash(parsePolicy(policyV1, 'x')), text: policyV1 },
      shadow: null,
    },
    'the enforced version, its hash and its text as given',
  );
  t.match(answer.body.enforced.hash, /^[0-9a-f]{64}$/, 'the hash is SHA-256 hex');
  isProblem(t, await call(h, 'GET', '/v1/policy?version=1'), 'ERR_OPTION_INVALID', 'a query parameter');
});

t.test('POST /v1/policy: plan changes nothing; shadow and enforce install, say whether anything changed, and enforce re-judges stored data', async (t) => {
  const h = await setup(t, 'eu-west');
  for (const [dataset, key] of [
    ['catalog', 'mk-cat-1'],
    ['catalog', 'mk-cat-2'],
    ['orders', 'mk-order-1'],
    ['audits', 'mk-audit-1'],
  ] as const) {
    t.equal((await call(h, 'PUT', `/v1/kv/${dataset}/${key}`, { value: { v: `mv-${key}` } })).status, 200, `PUT ${dataset}`);
  }
  const auditBefore = h.replica.auditLength;
  const v2 = { version: 2, hash: policyHash(parsePolicy(policyV2, 'x')) };
  const expectedReport = {
    version: 2,
    region: 'eu-west',
    documents: 4,
    datasets: {
      audits: { held: 1, purge: 0, start: {} },
      catalog: { held: 2, purge: 0, start: {} },
      // orders go: no region may hold them, and none starts replicating them.
      orders: { held: 1, purge: 1, start: {} },
    },
  };

  const plan = await call(h, 'POST', '/v1/policy', { text: policyV2, mode: 'plan' });
  t.equal(plan.status, 200, JSON.stringify(plan.body));
  t.same(plan.body, { mode: 'plan', policy: v2, report: expectedReport }, 'plan: what enforcing v2 would do here');
  t.equal((await call(h, 'GET', '/v1/policy')).body.enforced.version, 1, 'plan: v1 is still enforced');
  t.equal((await call(h, 'GET', '/v1/policy')).body.shadow, null, 'plan: no shadow');
  t.equal((await call(h, 'GET', '/v1/policy/history')).body.history.length, 1, 'plan: nothing stored');
  t.equal(h.replica.auditLength, auditBefore, 'plan: nothing audited');
  t.equal((await call(h, 'GET', '/v1/kv/orders/mk-order-1')).status, 200, 'plan: the order is still here');

  const shadow = await call(h, 'POST', '/v1/policy', { text: policyV2, mode: 'shadow' });
  t.equal(shadow.status, 200, JSON.stringify(shadow.body));
  t.match(shadow.body, { mode: 'shadow', policy: v2, changed: true }, 'shadow: v2 is now judged alongside');
  const shown = (await call(h, 'GET', '/v1/policy')).body;
  t.same([shown.enforced.version, shown.shadow?.version, shown.shadow?.hash], [1, 2, v2.hash], 'GET shows v1 enforced, v2 in shadow');
  t.equal((await call(h, 'GET', '/v1/kv/orders/mk-order-1')).status, 200, 'shadow: nothing is purged');
  const shadowAgain = await call(h, 'POST', '/v1/policy', { text: policyV2, mode: 'shadow' });
  t.match(shadowAgain.body, { mode: 'shadow', changed: false }, 'the same shadow again changes nothing');
  t.same(
    (await call(h, 'GET', '/v1/policy/history')).body.history.map((r: { version: number; state: string }) => [r.version, r.state]),
    [
      [1, 'enforced'],
      [2, 'shadow'],
    ],
  );
  t.equal(h.policyChanges.count, 0, 'plan and shadow do not tell replication');

  const enforce = await call(h, 'POST', '/v1/policy', { text: policyV2, mode: 'enforce' });
  t.equal(enforce.status, 200, JSON.stringify(enforce.body));
  t.same(enforce.body, { mode: 'enforce', policy: v2, changed: true, report: expectedReport }, 'enforce: the report is what the plan said');
  t.equal(h.policyChanges.count, 1, 'enforce tells replication (which offers v2 to peers)');
  const after = (await call(h, 'GET', '/v1/policy')).body;
  t.same([after.enforced.version, after.enforced.hash, after.shadow], [2, v2.hash, null], 'v2 enforced, no shadow left');
  const gone = await call(h, 'GET', '/v1/kv/orders/mk-order-1');
  isProblem(t, gone, 'ERR_POLICY_DENIED', 'the purged order');
  t.same(gone.body.regions, [], 'the answer says that no region may hold orders now');
  t.match(gone.body.detail, /no region may/);
  t.equal((await call(h, 'GET', '/v1/kv/catalog/mk-cat-1')).status, 200, 'catalog documents stay');
  t.match(
    (await call(h, 'GET', '/v1/policy/history')).body.history.map((r: { version: number; state: string; source: string }) => [r.version, r.state, r.source]),
    [
      [1, 'stored', 'config'],
      [2, 'enforced', /^api token admin \([0-9a-f]{12}\) signed by [0-9a-f]{16}$/],
    ],
    'history: both versions, v1 stored, v2 enforced; the source names the token and the signing key',
  );
  const kinds = (await call(h, 'GET', `/v1/audit?after=${auditBefore}`)).body.entries.map((e: AuditEntry) => e.kind);
  t.same(kinds, ['policy-stored', 'policy-activated', 'policy-activated', 'purge'], 'audit: stored and shadowed, enforced, one purge');

  const auditAfter = h.replica.auditLength;
  const enforceAgain = await call(h, 'POST', '/v1/policy', { text: policyV2, mode: 'enforce' });
  t.same(enforceAgain.body, { mode: 'enforce', policy: v2, changed: false, report: null }, 'enforcing the enforced version changes nothing');
  t.equal(h.policyChanges.count, 1, 'and does not tell replication again');
  // Regression: a repeated `policy apply` shadows the version before enforcing it; that used to make the
  // enforced version the shadow too (an audit entry, and links judging every send twice by one policy).
  const shadowEnforced = await call(h, 'POST', '/v1/policy', { text: policyV2, mode: 'shadow' });
  t.same(shadowEnforced.body, { mode: 'shadow', policy: v2, changed: false, report: null }, 'shadowing the enforced version changes nothing');
  t.equal((await call(h, 'GET', '/v1/policy')).body.shadow, null, 'there is still no shadow');
  t.equal(h.replica.auditLength, auditAfter, 'and nothing more is audited');
  noMarkersLogged(t, h, ['mk-cat-1', 'mk-order-1', 'mk-audit-1', 'mv-mk']);
});

t.test('POST /v1/policy refuses a version already stored with other content, and an older version', async (t) => {
  const h = await setup(t, 'eu-west');
  t.equal((await call(h, 'POST', '/v1/policy', { text: policyV2, mode: 'enforce' })).status, 200);
  const auditLength = h.replica.auditLength;
  for (const mode of ['shadow', 'enforce'] as const) {
    const other = await call(h, 'POST', '/v1/policy', { text: policyV2Other, mode });
    isProblem(t, other, 'ERR_POLICY_CONFLICT', `${mode}: version 2 with other content`);
    t.match(other.body.detail, /policy version 2 is already stored with content hash [0-9a-f]{12}…, not [0-9a-f]{12}…/);
    const older = await call(h, 'POST', '/v1/policy', { text: policyV1, mode });
    isProblem(t, older, 'ERR_POLICY_CONFLICT', `${mode}: version 1 after version 2`);
    t.match(older.body.detail, /policy version 1 is older than the enforced version 2/);
  }
  const plan = await call(h, 'POST', '/v1/policy', { text: policyV2Other, mode: 'plan' });
  t.equal(plan.status, 200, 'a plan of any version is a dry run: nothing to conflict with');
  t.equal((await call(h, 'GET', '/v1/policy')).body.enforced.hash, policyHash(parsePolicy(policyV2, 'x')), 'v2 as first stored is still enforced');
  t.equal(h.replica.auditLength, auditLength, 'refusals store and audit nothing');
  t.equal(h.policyChanges.count, 1, 'only the first enforce told replication');
});

t.test('POST /v1/policy validates its body: text, mode, no other field, size; an invalid policy names every problem at its line:col', async (t) => {
  const h = await setup(t, 'eu-west');
  const cases: Array<[string, unknown, keyof typeof errorCatalogue, RegExp]> = [
    ['missing text', { mode: 'plan' }, 'ERR_BODY_INVALID', /"text" must be the policy as a string/],
    ['text not a string', { text: 7, mode: 'plan' }, 'ERR_BODY_INVALID', /"text" must be the policy as a string/],
    ['missing mode', { text: policyV2 }, 'ERR_BODY_INVALID', /"mode" must be "plan", "shadow" or "enforce", got undefined/],
    ['bad mode', { text: policyV2, mode: 'apply' }, 'ERR_BODY_INVALID', /"mode" must be "plan", "shadow" or "enforce", got "apply"/],
    ['unknown field', { text: policyV2, mode: 'plan', force: true }, 'ERR_BODY_INVALID', /unknown field "force" \(the fields are text, mode, signature\)/],
    ['not an object', [policyV2, 'plan'], 'ERR_BODY_INVALID', /must be an object/],
    ['not JSON', '{"text":', 'ERR_BODY_INVALID', /not valid JSON/],
  ];
  for (const [what, body, code, detail] of cases) {
    const answer = await call(h, 'POST', '/v1/policy', body);
    isProblem(t, answer, code, what);
    t.match(answer.body?.detail, detail, `${what}: ${answer.body?.detail}`);
  }
  isProblem(
    t,
    await call(h, 'POST', '/v1/policy', JSON.stringify({ text: policyV2, mode: 'plan' }), { 'content-type': 'text/yaml' }),
    'ERR_CONTENT_TYPE',
    'a YAML content type',
  );

  // A text over the policy limit inside a body the route accepts: the policy's own limit refuses it.
  const overText = `version: 3\n# ${'x'.repeat(policyBytesMax)}\n`;
  const over = await call(h, 'POST', '/v1/policy', { text: overText, mode: 'plan' });
  isProblem(t, over, 'ERR_POLICY_INVALID', 'a policy text over 1 MiB');
  t.match(over.body.detail, new RegExp(`^policy: ${Buffer.byteLength(overText)} bytes exceed the limit of ${policyBytesMax} bytes`));
  // A body past the route's bound is refused before it is parsed.
  const huge = await call(h, 'POST', '/v1/policy', { text: `version: 3\n# ${'x'.repeat(policyBodyBytesMax)}\n`, mode: 'plan' });
  isProblem(t, huge, 'ERR_BODY_TOO_LARGE', 'a body far over the limit');
  // Regression: a policy just under its limit whose JSON string is longer (quotes and line breaks are escaped)
  // used to be refused as a too large body, though `policy validate` accepts it.
  const padding = '# "quoted"\n'.repeat(Math.floor((policyBytesMax - Buffer.byteLength(policyV2) - 16) / 11));
  const nearLimit = `${policyV2}${padding}`;
  t.ok(
    Buffer.byteLength(nearLimit) <= policyBytesMax && Buffer.byteLength(JSON.stringify(nearLimit)) > policyBytesMax + 64 * 1024,
    'a valid policy under its limit, larger as JSON',
  );
  const planned = await call(h, 'POST', '/v1/policy', { text: nearLimit, mode: 'plan' });
  t.equal(planned.status, 200, `a policy at the limit can be posted: ${planned.body?.detail ?? ''}`);

  // Structural problems: every one at its line and column of the text.
  const broken = policyV1
    .replace('jurisdiction: us,', 'jurisdiction: US,')
    .replace('priority: high', 'priority: urgent')
    .replace('[eu-west, us-east]', '[eu-west, eu-north]');
  const invalid = await call(h, 'POST', '/v1/policy', { text: broken, mode: 'enforce' });
  isProblem(t, invalid, 'ERR_POLICY_INVALID', 'an invalid policy');
  t.same(
    invalid.body.detail.split('\n'),
    [
      'policy:5:31: regions.us-east.jurisdiction "US": a jurisdiction is 1 to 32 characters [a-z0-9-]',
      'policy:7:55: datasets.catalog.priority "urgent": the priority is one of high, normal, low',
      'policy:8:58: datasets.orders.placement.regions[1] "eu-north": not a region of this policy (regions: eu-west, eu-central, us-east)',
    ],
    'every problem, in file order, at line:col',
  );
  // A rule that does not type-check: the rule is named and the position is inside its expression.
  const badRule = await call(h, 'POST', '/v1/policy', { text: policyV2.replace('target.jurisdiction != source', 'target.country != source'), mode: 'shadow' });
  isProblem(t, badRule, 'ERR_POLICY_RULE_INVALID', 'a rule that does not type-check');
  t.match(badRule.body.detail, /^policy:12:40: rules\[0\]\.deny \(rule "pii stays in its jurisdiction"\): No such key: country/);
  t.equal((await call(h, 'GET', '/v1/policy')).body.enforced.version, 1, 'nothing of it was installed');
  t.equal((await call(h, 'GET', '/v1/policy/history')).body.history.length, 1, 'nor stored');
  t.equal(h.policyChanges.count, 0);
});

t.test('a document this region may not hold: PUT, ops and GET answer 421 naming the regions that may; nothing is stored', async (t) => {
  const h = await setup(t, 'eu-central');
  const put = await call(h, 'PUT', '/v1/kv/orders/mk-order-central', { value: { total: 'mv-order-total' } });
  isProblem(t, put, 'ERR_POLICY_DENIED', 'PUT an order in eu-central');
  t.same(put.body.regions, ['eu-west', 'us-east'], 'PUT: the problem lists the regions that may hold orders');
  t.match(put.body.detail, /may not be held in region eu-central under policy v1 \(placement\); it may live in eu-west, us-east/);
  const ops = await call(h, 'POST', '/v1/kv/orders/mk-order-central/ops', { op: 'set', path: 'total', value: 3 });
  isProblem(t, ops, 'ERR_POLICY_DENIED', 'an operation on an order in eu-central');
  t.same(ops.body.regions, ['eu-west', 'us-east'], 'ops: the same regions');
  const get = await call(h, 'GET', '/v1/kv/orders/mk-order-central');
  isProblem(t, get, 'ERR_POLICY_DENIED', 'GET an order in eu-central');
  t.same(get.body.regions, ['eu-west', 'us-east'], 'GET: the problem lists the regions that may hold orders');
  t.equal(h.replica.lastSeq, 0, 'nothing was logged');
  t.same((await call(h, 'GET', '/v1/kv/orders')).body.items, [], 'nothing was stored');
  isProblem(t, await call(h, 'GET', '/v1/kv/catalog/mk-absent'), 'ERR_DOC_NOT_FOUND', 'an absent document this region may hold is just absent');
  isProblem(t, await call(h, 'GET', '/v1/kv/audits/mk-absent'), 'ERR_DOC_NOT_FOUND', 'so is an absent local document');

  // Under `unlisted: refuse` no region may hold an unlisted dataset: the problem says so with an empty list.
  const refuse = await setup(t, 'eu-central', policyV1.replace('version: 1\n', 'version: 1\nunlisted: refuse\n'));
  const unlisted = await call(refuse, 'PUT', '/v1/kv/misc/mk-misc', { value: { v: 'mv-misc' } });
  isProblem(t, unlisted, 'ERR_POLICY_DENIED', 'PUT in a refused dataset');
  t.same(unlisted.body.regions, [], 'no region may hold it');
  const unlistedGet = await call(refuse, 'GET', '/v1/kv/misc/mk-misc');
  isProblem(t, unlistedGet, 'ERR_POLICY_DENIED', 'GET in a refused dataset');
  t.same(unlistedGet.body.regions, [], 'GET: no region may hold it');
  noMarkersLogged(t, h, ['mk-order-central', 'mv-order-total', 'mk-absent']);
  noMarkersLogged(t, refuse, ['mk-misc', 'mv-misc']);
});

t.test("tags starting with origin: are the store's: PUT and tag operations refuse them (ERR_TAG_INVALID) and change nothing", async (t) => {
  const h = await setup(t, 'eu-west');
  t.equal((await call(h, 'PUT', '/v1/kv/catalog/mk-tagged', { value: { v: 'mv-tagged' }, tags: ['new'] })).status, 200);
  const seq = h.replica.lastSeq;
  const cases: Array<[string, string, string, unknown]> = [
    ['PUT with an origin tag', 'PUT', '/v1/kv/catalog/mk-tagged', { value: { v: 2 }, tags: ['origin:us-east'] }],
    ['PUT of a new document with an origin tag', 'PUT', '/v1/kv/catalog/mk-fresh', { value: { v: 1 }, tags: ['ok', 'origin:eu-west'] }],
    ['tag add', 'POST', '/v1/kv/catalog/mk-tagged/ops', { op: 'tag', add: ['origin:us-east'] }],
    ['tag remove of the real origin', 'POST', '/v1/kv/catalog/mk-tagged/ops', { op: 'tag', remove: ['origin:eu-west'] }],
    [
      'tag in a batch after a valid operation',
      'POST',
      '/v1/kv/catalog/mk-tagged/ops',
      [
        { op: 'set', path: 'v', value: 3 },
        { op: 'tag', add: ['origin:'] },
      ],
    ],
  ];
  for (const [what, method, path, body] of cases) {
    const answer = await call(h, method, path, body);
    isProblem(t, answer, 'ERR_TAG_INVALID', what);
    t.match(answer.body.detail, /is reserved: tags starting with origin: are written by the store/, `${what}: says why`);
  }
  t.equal(h.replica.lastSeq, seq, 'nothing was written');
  const doc = (await call(h, 'GET', '/v1/kv/catalog/mk-tagged')).body;
  t.same([doc.origin, doc.tags, doc.value], ['eu-west', ['new'], { v: 'mv-tagged' }], 'the document keeps its origin, tags and value');
  isProblem(t, await call(h, 'GET', '/v1/kv/catalog/mk-fresh'), 'ERR_DOC_NOT_FOUND', 'the refused new document was not created');
  const retag = await call(h, 'POST', '/v1/kv/catalog/mk-tagged/ops', { op: 'tag', add: ['origin-story', 'regional:eu'] });
  t.equal(retag.status, 200, "tags that merely look alike are the user's");
  noMarkersLogged(t, h, ['mk-tagged', 'mv-tagged', 'mk-fresh']);
});

t.test('GET /v1/audit pages with after and limit; entries name documents by digest, never by key', async (t) => {
  const h = await setup(t, 'eu-west');
  // Quarantine holds are audited: one entry per document put in quarantine.
  for (let i = 0; i < 5; i++)
    t.equal((await call(h, 'PUT', `/v1/kv/catalog/mk-held-${i}`, { value: { v: `mv-held-${i}` }, tags: ['quarantine'] })).status, 200);
  const all = await call(h, 'GET', '/v1/audit');
  t.equal(all.status, 200);
  t.equal(all.body.region, 'eu-west');
  t.equal(all.body.length, 7, 'policy stored and activated at start, then five holds');
  t.same(
    all.body.entries.map((e: AuditEntry) => [e.seq, e.kind]),
    [
      [1, 'policy-stored'],
      [2, 'policy-activated'],
      [3, 'quarantine-hold'],
      [4, 'quarantine-hold'],
      [5, 'quarantine-hold'],
      [6, 'quarantine-hold'],
      [7, 'quarantine-hold'],
    ],
  );
  t.same(all.body.entries[0].details, { version: 1, hash: policyHash(parsePolicy(policyV1, 'x')), source: 'config' });
  t.ok(
    all.body.entries.every(
      (e: AuditEntry, i: number) => e.node === 'eu-west-1' && e.region === 'eu-west' && (i === 0 || e.prev === all.body.entries[i - 1].hash),
    ),
    'each entry links to the one before',
  );
  const digests = all.body.entries.slice(2).map((e: AuditEntry) => (e.details as { doc: string }).doc);
  t.equal(new Set(digests).size, 5, 'five documents, five digests');
  t.ok(
    digests.every((d: string) => /^[0-9a-f]{16}$/.test(d)),
    'documents are named by a 16-hex digest',
  );
  t.notOk(JSON.stringify(all.body).includes('mk-held') || JSON.stringify(all.body).includes('mv-held'), 'no key or value in the audit log');

  const pages: number[][] = [];
  for (let after = 0; ; ) {
    const page = await call(h, 'GET', `/v1/audit?after=${after}&limit=3`);
    t.equal(page.status, 200);
    t.equal(page.body.length, 7, "every page reports the log's length");
    if (page.body.entries.length === 0) break;
    pages.push(page.body.entries.map((e: AuditEntry) => e.seq));
    after = page.body.entries.at(-1).seq;
  }
  t.same(pages, [[1, 2, 3], [4, 5, 6], [7]], 'pages of three follow each other without gaps or repeats');
  t.same((await call(h, 'GET', '/v1/audit?after=7')).body.entries, [], 'after the last entry: nothing');
  t.same(
    (await call(h, 'GET', '/v1/audit?after=5&limit=1')).body.entries.map((e: AuditEntry) => e.seq),
    [6],
  );
  const bad: Array<[string, RegExp]> = [
    ['/v1/audit?after=-1', /after "-1" is not a non-negative integer/],
    ['/v1/audit?limit=0', /audit: limit 0 is outside 1 to 10000/],
    ['/v1/audit?limit=10001', /audit: limit 10001 is outside 1 to 10000/],
    ['/v1/audit?limit=abc', /limit "abc" is not a non-negative integer/],
    ['/v1/audit?after=1&after=2', /"after" is given more than once/],
    ['/v1/audit?kind=purge', /query parameter "kind" is unknown here: use after, limit/],
  ];
  for (const [path, detail] of bad) {
    const answer = await call(h, 'GET', path);
    isProblem(t, answer, 'ERR_OPTION_INVALID', path);
    t.match(answer.body.detail, detail, path);
  }
  noMarkersLogged(t, h, ['mk-held', 'mv-held']);
});

t.test('GET /v1/audit/verify: an intact chain is ok; an entry edited on disk is named', async (t) => {
  const h = await setup(t, 'eu-west');
  await call(h, 'PUT', '/v1/kv/catalog/mk-q', { value: { v: 1 }, tags: ['quarantine'] });
  await call(h, 'POST', '/v1/kv/catalog/mk-q/ops', { op: 'tag', remove: ['quarantine'] });
  const intact = await call(h, 'GET', '/v1/audit/verify');
  t.same(intact.body, { region: 'eu-west', ok: true, entries: 4 }, 'policy stored, activated, quarantine hold and release: intact');
  isProblem(t, await call(h, 'GET', '/v1/audit/verify?full=1'), 'ERR_OPTION_INVALID', 'verify takes no parameters');

  // Stop the node, edit entry 3 (the hold) in LevelDB, start it again: verify names the entry.
  await h.replica.close();
  const db = new ClassicLevel<string, Uint8Array>(join(h.dir, 'data'), { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  const key = `a\u0000${(3).toString(16).padStart(16, '0')}`;
  const entry = JSON.parse(Buffer.from((await db.get(key))!).toString('utf8')) as AuditEntry;
  t.equal(entry.kind, 'quarantine-hold', 'entry 3 is the hold');
  await db.put(key, Buffer.from(JSON.stringify({ ...entry, kind: 'quarantine-release' })));
  await db.close();
  const reopened = await Replica.open({ path: join(h.dir, 'data'), node: 'eu-west-1', region: 'eu-west', durability: 'os', peers });
  t.teardown(() => reopened.close());
  const again = await serve(t, reopened, h.dir);
  const broken = await call(again, 'GET', '/v1/audit/verify');
  t.equal(broken.status, 200, 'the check ran');
  t.same(broken.body, { region: 'eu-west', ok: false, entries: 3, problem: 'entry 3 (quarantine-release) was edited: its content no longer matches its hash' });
});
