// Goal (issue 12 items 2, 3 and 8): every route needs a credential — anonymous and unknown tokens get 401 with
// WWW-Authenticate, wrong roles and missing dataset grants get 403 — before any body is read; foreign Hosts and
// Origins are refused; the OpenAPI description lists exactly the routes; unsigned, foreign and replayed policy
// versions and version jumps are refused, and an audited replacement works only against the version it names.
// Method: the Fastify app in-process (`app.inject()`) over a real replica in a temp directory.
import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type PolicySignature, errorCatalogue, parsePolicy, policyVersionJumpMax, signPolicy } from '@tessera/core';
import { Replica, policyHash } from '@tessera/store';
import { type HttpApi, createHttpHandler } from '../src/http.js';
import { bearer, testCredentials } from './helpers/auth.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const operator = generateKeyPairSync('ed25519');
const policyText = (version: number, orders = 'global') => `version: ${version}
regions:
  eu-west: { jurisdiction: eu }
  us-east: { jurisdiction: us }
datasets:
  catalog: { type: map, placement: global }
  orders: { type: map, placement: ${orders} }
`;

async function setup(t: Test) {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-access-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const replica = await Replica.open({ path: join(dir, 'eu-west-1'), node: 'eu-west-1', region: 'eu-west', durability: 'os' });
  t.teardown(() => replica.close());
  const credentials = testCredentials();
  const api: HttpApi = createHttpHandler({
    replica,
    node: { id: 'eu-west-1', region: 'eu-west' },
    access: { tokens: credentials.tokens, hosts: ['tessera.example.com'], origins: ['https://dash.example.com'] },
    policySigning: { cluster: 'test', operatorKeys: [operator.publicKey] },
  });
  await api.ready();
  t.teardown(() => api.app.close());
  const tokens = {
    admin: credentials.admin,
    reader: credentials.token('reader-catalog', { roles: ['reader'], datasets: ['catalog'] }),
    writer: credentials.token('writer-catalog', { roles: ['writer'], datasets: ['catalog'] }),
    operator: credentials.token('operator', { roles: ['operator'], datasets: [] }),
    policyAdmin: credentials.token('policy-admin', { roles: ['policy-admin'], datasets: [] }),
  };
  const inject = async (method: string, url: string, token: string | null, body?: unknown, headers: Record<string, string> = {}) => {
    const answer = await api.app.inject({
      method: method as 'GET',
      url,
      headers: {
        host: '127.0.0.1',
        ...(token === null ? {} : bearer(token)),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
    return { status: answer.statusCode, headers: answer.headers, body: answer.body.length === 0 ? undefined : (JSON.parse(answer.body) as any) };
  };
  return { api, replica, tokens, inject };
}

/** Every route with a concrete path and a valid body: what the matrix calls. */
const calls: Array<{ method: string; url: string; route: string; body?: unknown }> = [
  { method: 'GET', url: '/v1/kv/catalog/k1', route: '/v1/kv/:dataset/:key' },
  { method: 'PUT', url: '/v1/kv/catalog/k1', route: '/v1/kv/:dataset/:key', body: { value: { a: 1 } } },
  { method: 'DELETE', url: '/v1/kv/catalog/k1', route: '/v1/kv/:dataset/:key' },
  { method: 'POST', url: '/v1/kv/catalog/k1/ops', route: '/v1/kv/:dataset/:key/ops', body: { op: 'set', path: 'a', value: 2 } },
  { method: 'GET', url: '/v1/kv/catalog', route: '/v1/kv/:dataset' },
  { method: 'POST', url: '/v1/kv/catalog', route: '/v1/kv/:dataset', body: [{ key: 'k2', value: { a: 1 } }] },
  { method: 'GET', url: '/v1/changes?dataset=catalog', route: '/v1/changes' },
  { method: 'GET', url: '/v1/placement/catalog', route: '/v1/placement/:dataset' },
  { method: 'GET', url: '/v1/conflicts?dataset=catalog', route: '/v1/conflicts' },
  { method: 'GET', url: '/v1/status', route: '/v1/status' },
  { method: 'GET', url: '/v1/peers', route: '/v1/peers' },
  { method: 'GET', url: '/healthz', route: '/healthz' },
  { method: 'GET', url: '/readyz', route: '/readyz' },
  { method: 'GET', url: '/metrics', route: '/metrics' },
  { method: 'GET', url: '/v1/audit', route: '/v1/audit' },
  { method: 'GET', url: '/v1/audit/verify', route: '/v1/audit/verify' },
  { method: 'GET', url: '/v1/cluster', route: '/v1/cluster' },
  { method: 'GET', url: '/v1/cluster/member', route: '/v1/cluster/member' },
  { method: 'GET', url: '/v1/inspect/summary', route: '/v1/inspect/summary' },
  { method: 'GET', url: '/v1/inspect/keys/catalog', route: '/v1/inspect/keys/:dataset' },
  { method: 'GET', url: '/v1/inspect/doc/catalog/k1', route: '/v1/inspect/doc/:dataset/:key' },
  { method: 'GET', url: '/v1/inspect/log', route: '/v1/inspect/log' },
  { method: 'GET', url: '/v1/inspect/peers', route: '/v1/inspect/peers' },
  { method: 'GET', url: '/v1/policy', route: '/v1/policy' },
  { method: 'POST', url: '/v1/policy', route: '/v1/policy', body: { text: policyText(1), mode: 'plan' } },
  { method: 'GET', url: '/v1/policy/history', route: '/v1/policy/history' },
  { method: 'GET', url: '/openapi.json', route: '/openapi.json' },
];
/** The dashboard's static shell: the only routes without a credential (see routes-static.ts). */
const publicRoutes = ['/', '/static/:file'];

t.test('anonymous, unknown and malformed credentials get 401 on every route, with WWW-Authenticate, before the body is read', async (t) => {
  const { inject, replica } = await setup(t);
  for (const call of calls) {
    for (const [what, headers] of [
      ['anonymous', {}],
      ['unknown token', { authorization: `Bearer tsr_${'A'.repeat(43)}` }],
      ['not bearer', { authorization: 'Basic YWRtaW46YWRtaW4=' }],
    ] as const) {
      const answer = await inject(call.method, call.url, null, call.body, headers);
      t.equal(answer.status, 401, `${what}: ${call.method} ${call.route}`);
      t.equal(answer.body?.code, 'ERR_UNAUTHENTICATED');
      t.match(answer.headers['www-authenticate'], /^Bearer realm="tessera"/);
      t.equal(answer.headers['content-type'], 'application/problem+json; charset=utf-8');
    }
  }
  t.equal((await inject('GET', '/no/such/route', null)).status, 401, 'unknown paths too');
  t.equal(replica.lastSeq, 0, 'nothing was written');
});

t.test('roles and dataset grants: 403 where the role or the grant is missing, the route answers where both are there', async (t) => {
  const { inject, tokens } = await setup(t);
  // What each token may do, by route and method: true = allowed.
  const data = ['/v1/kv/:dataset/:key', '/v1/kv/:dataset/:key/ops', '/v1/kv/:dataset', '/v1/conflicts', '/v1/changes', '/v1/placement/:dataset'];
  const allowed = (token: keyof typeof tokens, call: (typeof calls)[number]): boolean => {
    const write = call.method !== 'GET' && call.route !== '/v1/policy';
    if (token === 'admin') return true;
    if (call.route === '/healthz' || call.route === '/readyz' || call.route === '/openapi.json') return true;
    if (data.includes(call.route)) return token === 'writer' || (token === 'reader' && !write);
    if (call.route === '/v1/inspect/keys/:dataset' || call.route === '/v1/inspect/doc/:dataset/:key') return false;
    return token === 'operator' || token === 'policyAdmin';
  };
  for (const token of Object.keys(tokens) as Array<keyof typeof tokens>) {
    for (const call of calls) {
      const answer = await inject(call.method, call.url, tokens[token], call.body);
      if (allowed(token, call)) t.not(answer.status, 403, `${token}: ${call.method} ${call.route} is allowed (${answer.status} ${answer.body?.code ?? ''})`);
      else {
        t.equal(answer.status, 403, `${token}: ${call.method} ${call.route} is refused`);
        t.equal(answer.body?.code, 'ERR_FORBIDDEN');
        t.match(
          answer.body?.detail,
          new RegExp(`token ${tokens[token] === tokens.admin ? 'admin' : '[a-z-]+'} \\(`),
          'the refusal names the token by name, never its text',
        );
        t.notMatch(answer.body?.detail, tokens[token]);
      }
    }
  }
  // Grants are per dataset: the catalog reader and writer reach nothing of orders.
  for (const [method, url, body] of [
    ['GET', '/v1/kv/orders/o1'],
    ['PUT', '/v1/kv/orders/o1', { value: {} }],
    ['GET', '/v1/kv/orders'],
    ['GET', '/v1/conflicts'],
    ['POST', '/v1/kv/orders', [{ key: 'o1', value: {} }]],
    ['GET', '/v1/changes?dataset=orders'],
  ] as const) {
    for (const token of [tokens.reader, tokens.writer]) {
      const answer = await inject(method, url, token, body);
      t.equal(answer.status, 403, `${method} ${url} without a grant on orders`);
      t.match(
        answer.body.detail,
        url === '/v1/conflicts'
          ? /grant on every dataset/
          : token === tokens.reader && (method === 'PUT' || method === 'POST')
            ? /lacks the writer role/
            : /grant on dataset "orders"/,
      );
    }
  }
  const values = await inject('GET', '/v1/inspect/log?values=true', tokens.operator);
  t.equal(values.status, 403, 'decoded log values need a read grant on every dataset as well');
  t.equal((await inject('GET', '/v1/inspect/log', tokens.operator)).status, 200, 'sizes alone do not');
  const install = await inject('POST', '/v1/policy', tokens.operator, {
    text: policyText(1),
    mode: 'enforce',
    signature: signPolicy(parsePolicy(policyText(1), 'p'), 'test', operator.privateKey),
  });
  t.equal(install.status, 403, 'an operator may plan but not install a policy');
  t.match(install.body.detail, /lacks the policy-admin role/);
});

t.test('Host and Origin: DNS-rebinding names and cross-site origins are refused; IP literals, localhost and listed names pass', async (t) => {
  const { inject, tokens } = await setup(t);
  for (const host of ['127.0.0.1:7101', 'localhost:7101', '[::1]:7101', 'tessera.example.com'])
    t.equal((await inject('GET', '/healthz', tokens.admin, undefined, { host })).status, 200, `Host ${host}`);
  const rebound = await inject('GET', '/v1/kv/catalog/k1', tokens.admin, undefined, { host: 'evil.example:7101' });
  t.equal(rebound.status, errorCatalogue.ERR_HOST_FORBIDDEN.status);
  t.equal(rebound.body.code, 'ERR_HOST_FORBIDDEN');
  t.equal((await inject('GET', '/healthz', tokens.admin, undefined, { origin: 'http://127.0.0.1' })).status, 200, "the request's own origin");
  t.equal((await inject('GET', '/healthz', tokens.admin, undefined, { origin: 'https://dash.example.com' })).status, 200, 'a listed origin');
  const cross = await inject('PUT', '/v1/kv/catalog/k1', tokens.admin, { value: {} }, { origin: 'https://evil.example' });
  t.equal(cross.status, 403);
  t.equal(cross.body.code, 'ERR_ORIGIN_FORBIDDEN');
  t.equal((await inject('GET', '/healthz', tokens.admin, undefined, { origin: 'null' })).body.code, 'ERR_ORIGIN_FORBIDDEN', 'an opaque origin');
});

t.test('OpenAPI: the description lists exactly the routes, each with its schemas and the bearer scheme', async (t) => {
  const { inject, tokens, api } = await setup(t);
  const answer = await inject('GET', '/openapi.json', tokens.operator);
  t.equal(answer.status, 200);
  const doc = answer.body;
  t.equal(doc.openapi, '3.0.3');
  t.same(doc.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer', description: 'An API token (tessera token create)' });
  const described = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
    .flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`))
    .sort();
  const served = [...calls.map((c) => `${c.method} ${c.route}`), ...publicRoutes.map((r) => `GET ${r}`)].filter((v, i, all) => all.indexOf(v) === i).sort();
  t.same(described, served, 'every route is described and every description is a route');
  // Fastify's own view of the routes agrees (HEAD routes are GET's shadow; 405 answers are hidden).
  const printed = api.app.printRoutes({ commonPrefix: false });
  for (const route of served) t.ok(printed.includes(route.split(' ')[1]!.split('/').at(-1)!), `${route} is mounted`);
  const put = doc.paths['/v1/kv/{dataset}/{key}'].put;
  t.match(put.requestBody.content['application/json'].schema, { type: 'object', required: ['value'] });
  t.ok(put.responses['200'] && put.responses['4XX'], 'a 200 and the problem answers');
  const batch = doc.paths['/v1/kv/{dataset}'].post;
  t.same(Object.keys(batch.requestBody.content).sort(), ['application/json', 'application/x-ndjson'], 'a batch is JSON or NDJSON');
  t.match(batch.requestBody.content['application/json'].schema, { type: 'array', maxItems: 1000 });
  t.ok(
    doc.paths['/v1/changes'].get.parameters.some((p: { name: string }) => p.name === 'since'),
    'the feed takes since',
  );
});

t.test('signed policies: unsigned, foreign, tampered, replayed and far-jumping versions are refused; a replacement is audited', async (t) => {
  const { inject, tokens, replica } = await setup(t);
  const sign = (text: string, options: { cluster?: string; key?: typeof operator.privateKey; replaces?: { version: number; hash: string } | null } = {}) =>
    signPolicy(parsePolicy(text, 'p'), options.cluster ?? 'test', options.key ?? operator.privateKey, options.replaces ?? null);
  const post = (text: string, signature: PolicySignature | undefined | object) =>
    inject('POST', '/v1/policy', tokens.policyAdmin, { text, mode: 'enforce', ...(signature === undefined ? {} : { signature }) });
  const refused = async (what: string, answer: Awaited<ReturnType<typeof post>>, code: string, detail: RegExp) => {
    t.equal(answer.body?.code, code, `${what}: ${answer.body?.detail}`);
    t.equal(answer.status, (errorCatalogue as Record<string, { status: number }>)[code]!.status);
    t.match(answer.body?.detail, detail, what);
  };
  await refused('unsigned', await post(policyText(1), undefined), 'ERR_POLICY_SIGNATURE_INVALID', /policy version 1 is not signed/);
  await refused(
    'another key',
    await post(policyText(1), sign(policyText(1), { key: generateKeyPairSync('ed25519').privateKey })),
    'ERR_POLICY_SIGNATURE_INVALID',
    /not an operator key of this cluster/,
  );
  await refused(
    'another cluster',
    await post(policyText(1), sign(policyText(1), { cluster: 'staging' })),
    'ERR_POLICY_SIGNATURE_INVALID',
    /for cluster "staging", not this cluster "test"/,
  );
  await refused(
    'tampered text',
    await post(policyText(1, 'local'), sign(policyText(1))),
    'ERR_POLICY_SIGNATURE_INVALID',
    /the policy changed after it was signed/,
  );
  await refused('another version', await post(policyText(2), sign(policyText(1))), 'ERR_POLICY_SIGNATURE_INVALID', /for version 1, not version 2/);
  const forged = { ...sign(policyText(1)), signature: Buffer.alloc(64, 7).toString('base64') };
  await refused('forged bytes', await post(policyText(1), forged), 'ERR_POLICY_SIGNATURE_INVALID', /does not verify with operator key/);
  await refused('malformed', await post(policyText(1), { format: 'x' }), 'ERR_POLICY_SIGNATURE_INVALID', /format must be/);
  t.equal(replica.policy, null, 'nothing was installed');
  t.equal(replica.auditLength, 0, 'nor audited');

  const v1 = await post(policyText(1), sign(policyText(1)));
  t.equal(v1.status, 200, 'a signed version is enforced');
  const far = policyText(1 + policyVersionJumpMax + 1);
  await refused('2^53-1 style jump', await post(far, sign(far)), 'ERR_POLICY_VERSION_JUMP', new RegExp(`at most ${policyVersionJumpMax} above it`));
  const huge = policyText(Number.MAX_SAFE_INTEGER);
  await refused('the 2^53-1 takeover', await post(huge, sign(huge)), 'ERR_POLICY_VERSION_JUMP', /above the enforced version 1/);
  t.equal((await post(policyText(1 + policyVersionJumpMax), sign(policyText(1 + policyVersionJumpMax)))).status, 200, 'a jump of exactly the bound is allowed');

  // The audited replacement of a bad version: signed against the enforced version it names, and only that one.
  const bad = replica.policy!;
  const fixed = policyText(bad.version + 1, 'local');
  const stale = await post(fixed, sign(fixed, { replaces: { version: 1, hash: policyHash(parsePolicy(policyText(1), 'p')) } }));
  await refused(
    'a replacement of a version no longer enforced',
    stale,
    'ERR_POLICY_CONFLICT',
    /signed to replace version 1 .* but the enforced version is 1001/,
  );
  const replaced = await post(fixed, sign(fixed, { replaces: { version: bad.version, hash: policyHash(bad) } }));
  t.equal(replaced.status, 200);
  const audit = await replica.audit({ after: 0, limit: 100 });
  const activation = audit.filter((entry) => entry.kind === 'policy-activated').at(-1)!;
  t.match(
    activation.details,
    {
      version: bad.version + 1,
      previous: bad.version,
      source: new RegExp(`^api token policy-admin \\([0-9a-f]{12}\\) signed by [0-9a-f]{16} replacing v${bad.version} [0-9a-f]{12}$`),
    },
    'the audit names the token, the key and the replaced version',
  );
});
