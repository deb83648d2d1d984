// Goal: `tessera policy validate|plan|apply|history` and `tessera audit [verify]` work as a new user would try
// them (README "Versions and rollout", "Audit"): validate prints the policy as tables, or every problem at its
// file:line:col with exit 1; plan reports per region and dataset what each node holds, would purge and would
// start replicating — matching what the nodes hold — and changes nothing; apply shadows then enforces on every
// node named, and history shows both versions; audit lists the log and verify checks it, on a running node and
// offline on a stopped node's data directory, where an entry edited with classic-level is found (exit 1, the
// entry named); a missing or locked data directory is a clear error.
// Method: a two-region cluster of real `tessera serve` processes (harness startTestCluster) with its own
// policy; the CLI runs in-process (runCli) and its output is read as a user would read it.
import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { parsePolicy } from '@tessera/core';
import { type AuditEntry, Replica, policyHash } from '@tessera/store';
import { runCli, stopChild } from '@tessera/cli';
import { api, dump, eventually, linkReport, startTestCluster } from './harness.js';

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

/** The rows of a table the CLI printed (columns split on runs of two or more spaces), after its header. */
function rowsOf(text: string, header: string): string[][] {
  const lines = text.split('\n');
  const at = lines.findIndex((line) => line.startsWith(header));
  if (at < 0) return [];
  const rows: string[][] = [];
  for (const line of lines.slice(at + 2)) {
    if (line.trim() === '' || !/ {2,}/.test(line)) break;
    rows.push(line.split(/ {2,}/));
  }
  return rows;
}

const regions = ['eu-west', 'us-east'];
const policyV1 = `version: 1
regions:
  eu-west: { jurisdiction: eu, location: [53.3, -6.3] }
  us-east: { jurisdiction: us }
datasets:
  catalog: { type: map, placement: global, priority: high }
  orders:  { type: map, placement: { regions: [eu-west, us-east] }, priority: low }
  drafts:  { type: map, placement: local }
rules:
  - name: pii stays in its jurisdiction
    deny: "'pii' in doc.tags && target.jurisdiction != source.jurisdiction"
`;
// v2: orders only in eu-west (us-east purges its copies); drafts become global (eu-west starts sending them).
const policyV2 = policyV1
  .replace('version: 1', 'version: 2')
  .replace('{ regions: [eu-west, us-east] }, priority: low', '{ regions: [eu-west] }, priority: low')
  .replace('drafts:  { type: map, placement: local }', 'drafts:  { type: map, placement: global }');

t.test('policy validate: a valid file as tables; an invalid one with every problem at file:line:col, exit 1', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-policy-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const good = join(dir, 'policy.yaml');
  await writeFile(good, policyV1);
  const valid = await cli(['policy', 'validate', good]);
  t.equal(valid.code, 0, valid.err);
  t.match(valid.out, `${good}: policy version 1 is valid (content hash ${policyHash(parsePolicy(policyV1, 'x')).slice(0, 16)})`);
  t.same(
    rowsOf(valid.out, 'region'),
    [
      ['eu-west', 'eu', '53.3, -6.3'],
      ['us-east', 'us', '-'],
    ],
    'the regions',
  );
  t.same(
    rowsOf(valid.out, 'dataset'),
    [
      ['catalog', 'map', 'global', 'high', 'adaptive'],
      ['orders', 'map', 'regions eu-west, us-east', 'low', 'adaptive'],
      ['drafts', 'map', 'local', 'normal', 'adaptive'],
    ],
    'the datasets with their defaults written out',
  );
  t.same(
    rowsOf(valid.out, 'rule'),
    [['pii stays in its jurisdiction', 'deny', "'pii' in doc.tags && target.jurisdiction != source.jurisdiction"]],
    'the rules',
  );
  const json = await cli(['policy', 'validate', good, '--json']);
  t.equal(JSON.parse(json.out).hash, policyHash(parsePolicy(policyV1, 'x')), '--json gives the content hash');

  const bad = join(dir, 'bad.yaml');
  await writeFile(
    bad,
    policyV1
      .replace('jurisdiction: us }', 'jurisdiction: US }')
      .replace('[eu-west, us-east]', '[eu-west, eu-north]')
      .replace('placement: local', 'placement: nowhere')
      .replace('target.jurisdiction != source.jurisdiction', 'target.country != source.jurisdiction'),
  );
  const invalid = await cli(['policy', 'validate', bad]);
  t.equal(invalid.code, 1, 'an invalid policy exits 1');
  t.equal(invalid.out, '', 'and prints no summary');
  const lines = invalid.err.split('\n');
  t.match(lines[0], /^tessera: ERR_POLICY_INVALID: /, 'the code comes first');
  t.same(
    lines.map((line) => line.replace(/^tessera: ERR_POLICY_INVALID: /, '').replace(/: .*$/, '')),
    [`${bad}:4:28`, `${bad}:7:57`, `${bad}:8:36`, `${bad}:11:40`],
    'every problem, in file order, at file:line:col',
  );
  t.match(invalid.err, `${bad}:4:28: regions.us-east.jurisdiction "US": a jurisdiction is 1 to 32 characters [a-z0-9-]`);
  t.match(invalid.err, `${bad}:7:57: datasets.orders.placement.regions[1] "eu-north": not a region of this policy (regions: eu-west, us-east)`);
  t.match(invalid.err, `${bad}:8:36: datasets.drafts.placement "nowhere": a placement is global, local`);
  t.match(invalid.err, `${bad}:11:40: rules[0].deny (rule "pii stays in its jurisdiction"): No such key: country`);

  const missing = await cli(['policy', 'validate', join(dir, 'nope.yaml')]);
  t.equal(missing.code, 1);
  t.match(missing.err, `tessera: ERR_POLICY_INVALID: ${join(dir, 'nope.yaml')}: cannot read the policy file: ENOENT`);
});

t.test('plan, apply, history, audit and audit verify against a running cluster; verify --data offline', async (t) => {
  const cluster = await startTestCluster(t, regions, 10, { policyText: policyV1 });
  const [west, us] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
  const put = async (node: typeof west, dataset: string, key: string) => {
    const answer = await api(node, 'PUT', `/v1/kv/${dataset}/${key}`, { value: { v: `mv-${key}` } });
    t.equal(answer.status, 200, `PUT ${dataset}/${key} on ${node.region}`);
  };
  for (const key of ['mk-c1', 'mk-c2', 'mk-c3']) await put(west, 'catalog', key);
  for (const key of ['mk-o1', 'mk-o2']) await put(west, 'orders', key);
  await put(us, 'orders', 'mk-o3');
  await put(west, 'drafts', 'mk-d1');
  await put(us, 'drafts', 'mk-d2');
  t.ok(
    await eventually(
      async () =>
        Object.keys(await dump(us, 'catalog')).length === 3 &&
        Object.keys(await dump(us, 'orders')).length === 3 &&
        Object.keys(await dump(west, 'orders')).length === 3,
      20_000,
    ),
    'catalog and orders replicate under v1',
  );
  const dir = cluster.layout.dir;
  const file = join(dir, 'policy-v2.yaml');
  await writeFile(file, policyV2);

  const plan = await cli(['policy', 'plan', file, '--url', west.url, '--url', us.url]);
  t.equal(plan.code, 0, plan.err);
  t.match(plan.out, 'plan for policy version 2:');
  const planned = rowsOf(plan.out, 'region');
  t.same(
    planned,
    [
      ['eu-west', west.url, 'catalog', '3', '0', '-'],
      ['eu-west', west.url, 'drafts', '1', '0', 'us-east +1'],
      ['eu-west', west.url, 'orders', '3', '0', '-'],
      ['us-east', us.url, 'catalog', '3', '0', '-'],
      ['us-east', us.url, 'drafts', '1', '0', 'eu-west +1'],
      ['us-east', us.url, 'orders', '3', '3', '-'],
    ],
    'per region and dataset: held, purged here, where documents start replicating',
  );
  // The held counts are what the nodes hold.
  for (const [region, node] of [
    ['eu-west', west],
    ['us-east', us],
  ] as const) {
    for (const dataset of ['catalog', 'drafts', 'orders']) {
      const row = planned.find((r) => r[0] === region && r[2] === dataset);
      t.equal(row?.[3], String(Object.keys(await dump(node, dataset)).length), `${region} ${dataset}: held = the documents the node lists`);
    }
  }
  const planJson = JSON.parse((await cli(['policy', 'plan', file, '--url', us.url, '--json'])).out);
  t.same(planJson.reports[0].report.datasets.orders, { held: 3, purge: 3, start: {} }, '--json: the same report');
  t.same(
    (await api(us, 'GET', '/v1/policy/history')).body.history.map((r: { version: number }) => r.version),
    [1],
    'plan stores nothing',
  );
  t.equal(Object.keys(await dump(us, 'orders')).length, 3, 'and purges nothing');

  // Unsigned, the version is refused by every node; signed with the cluster's operator key, it is applied.
  const unsigned = await cli(['policy', 'apply', file, '--url', west.url, '--url', us.url]);
  t.equal(unsigned.code, 1);
  t.match(unsigned.err, /ERR_POLICY_SIGNATURE_INVALID: .*no signature of .*policy-v2\.yaml: sign it first/);
  const wrongKey = await cli(['policy', 'keygen', '--out', join(dir, 'stranger')]);
  t.equal(wrongKey.code, 0, wrongKey.err);
  t.equal((await cli(['policy', 'sign', file, '--key', join(dir, 'stranger.key'), '--cluster', 'dev'])).code, 0);
  const forged = await cli(['policy', 'apply', file, '--url', west.url, '--url', us.url]);
  t.equal(forged.code, 1, 'a signature by a key the cluster does not name is refused');
  t.match(
    forged.err,
    /403 ERR_POLICY_SIGNATURE_INVALID: policy signature refused: the signature was made with key [0-9a-f]{16}, which is not an operator key of this cluster/,
  );
  const sign = await cli(['policy', 'sign', file, '--key', cluster.layout.security.operatorKey, '--cluster', 'dev']);
  t.equal(sign.code, 0, sign.err);
  const apply = await cli(['policy', 'apply', file, '--url', west.url, '--url', us.url]);
  t.equal(apply.code, 0, apply.err);
  t.match(apply.out, `shadow: ${west.url} judges version 2 alongside its enforced policy`);
  t.match(apply.out, `shadow: ${us.url} judges version 2 alongside its enforced policy`);
  t.match(apply.out, `enforce: ${west.url} enforces version 2`);
  // us-east enforces it from the CLI, or already did: eu-west offers a version it enforces to its peers at once.
  const usEnforced = new RegExp(`enforce: ${us.url.replace(/[.]/g, '\\.')} (enforces|already enforced) version 2`).exec(apply.out)?.[1];
  t.ok(usEnforced !== undefined, `us-east enforces version 2:\n${apply.out}`);
  if (usEnforced === 'enforces')
    t.ok(
      rowsOf(apply.out, 'region').some((r) => r[0] === 'us-east' && r[2] === 'orders' && r[4] === '3'),
      'apply reports the purge it did',
    );
  // us-east purges its copies (at once, or once eu-west has acknowledged what us-east logged: a handover).
  t.ok(await eventually(async () => Object.keys(await dump(us, 'orders')).length === 0, 20_000), 'us-east purged its orders');
  if (usEnforced !== 'enforces') {
    const purges = (await api(us, 'GET', '/v1/audit?limit=1000')).body.entries.filter((e: { kind: string }) => e.kind === 'purge');
    t.equal(purges.length, 3, "the purges a peer's version made are audited");
  }
  t.equal(Object.keys(await dump(west, 'orders')).length, 3, 'eu-west keeps them');
  t.ok(
    await eventually(async () => Object.keys(await dump(us, 'drafts')).length === 2 && Object.keys(await dump(west, 'drafts')).length === 2, 20_000),
    `drafts, now global, reach the other region\n${await linkReport(cluster.nodes)}\n${JSON.stringify([await dump(west, 'drafts'), await dump(us, 'drafts')])}`,
  );
  const again = await cli(['policy', 'apply', file, '--url', west.url, '--url', us.url]);
  t.equal(again.code, 0, again.err);
  t.match(again.out, `enforce: ${us.url} already enforced version 2`, 'applying again is a no-op');
  for (const node of [west, us]) t.equal((await api(node, 'GET', '/v1/policy')).body.shadow, null, `${node.region}: no version left in shadow mode`);

  for (const node of [west, us]) {
    const history = await cli(['policy', 'history', '--url', node.url]);
    t.equal(history.code, 0, history.err);
    t.match(
      rowsOf(history.out, 'version').map((r) => [r[0], r[1], r[2], r[4]]),
      [
        ['1', 'stored', policyHash(parsePolicy(policyV1, 'x')).slice(0, 16), 'config'],
        ['2', 'enforced', policyHash(parsePolicy(policyV2, 'x')).slice(0, 16), /^api token admin \([0-9a-f]{12}\) signed by [0-9a-f]{16}$/],
      ],
      `${node.region}: both versions, v1 stored, v2 enforced by the admin token, signed by the operator key`,
    );
  }

  const audit = await cli(['audit', '--url', us.url]);
  t.equal(audit.code, 0, audit.err);
  const length = Number(/^audit log of us-east: (\d+) entries$/m.exec(audit.out)?.[1]);
  const kinds = rowsOf(audit.out, 'seq').map((r) => r[2]);
  t.equal(kinds.length, length, 'every entry is listed');
  t.same(kinds.slice(0, 2), ['policy-stored', 'policy-activated'], 'v1 from the config first');
  t.equal(kinds.filter((k) => k === 'purge').length, 3, 'one purge entry per order');
  t.equal(kinds.filter((k) => k === 'policy-activated').length, 3, 'v1 enforced, v2 shadowed, v2 enforced');
  t.notOk(/mk-|mv-/.test(audit.out), 'no key or value in the audit listing');
  const page = await cli(['audit', '--url', us.url, '--after', '2', '--limit', '2', '--json']);
  t.same(
    JSON.parse(page.out).entries.map((e: AuditEntry) => e.seq),
    [3, 4],
    '--after and --limit page the log',
  );

  const verify = await cli(['audit', 'verify', '--url', us.url]);
  t.equal(verify.code, 0, verify.err);
  t.equal(verify.out, `audit log intact: ${length} entries, hash chain verified`);

  // A running node's directory is locked: the offline check says so instead of reading a moving target.
  const dataOf = (node: typeof west) => join(dir, 'data', node.id);
  const locked = await cli(['audit', 'verify', '--data', dataOf(us)]);
  t.equal(locked.code, 1, "a running node's directory is refused");
  t.match(locked.err, /tessera: ERR_STORE_LOCKED: data directory .* is in use by a running node/);
  const missing = await cli(['audit', 'verify', '--data', join(dir, 'data', 'nowhere')]);
  t.equal(missing.code, 1, 'a missing directory is refused');
  t.match(missing.err, /tessera: ERR_STORE_NOT_FOUND: data directory .*nowhere does not exist/);
  const both = await cli(['audit', 'verify', '--data', dataOf(us), '--url', us.url]);
  t.equal(both.code, 1);
  t.match(both.err, 'give either --url or --data, not both');

  // Stop us-east, check its directory offline, edit one entry with classic-level, check again.
  await stopChild(cluster.children.get(us.id)!);
  // The dev cluster seals its data directories: offline reads take the master key from the environment.
  const sealedWithout = await cli(['audit', 'verify', '--data', dataOf(us)]);
  t.match(sealedWithout.err, /ERR_SEAL_KEY_MISSING/, 'a sealed directory is not read without its master key');
  process.env.TESSERA_MASTER_KEY_FILE = cluster.layout.security.masterKeyFile!;
  t.teardown(() => {
    delete process.env.TESSERA_MASTER_KEY_FILE;
  });
  const offline = await cli(['audit', 'verify', '--data', dataOf(us)]);
  t.equal(offline.code, 0, offline.err);
  // Stopping may add an entry (denied sends counted since the last audit of them).
  t.match(offline.out, /^audit log intact: \d+ entries, hash chain verified$/, "the stopped node's log verifies offline");
  t.ok(Number(/(\d+) entries/.exec(offline.out)?.[1]) >= length, 'every entry verified, and none lost');
  // An entry edited on disk: sealed, its bytes no longer authenticate, and the check fails naming it.
  const db = new ClassicLevel<string, Uint8Array>(dataOf(us), { keyEncoding: 'utf8', valueEncoding: 'view', createIfMissing: false });
  await db.open();
  const key = `a\u0000${(4).toString(16).padStart(16, '0')}`;
  const stored = Buffer.from((await db.get(key))!);
  stored[stored.length - 1]! ^= 0x01;
  await db.put(key, stored);
  await db.close();
  const tampered = await cli(['audit', 'verify', '--data', dataOf(us)]);
  t.not(tampered.code, 0, `an edited entry fails the check: ${tampered.out} ${tampered.err}`);
  t.match(`${tampered.out} ${tampered.err}`, /ERR_STORE_CORRUPT|corrupt|BROKEN|authenticat/i, 'and says the log was tampered with');
});

t.test('audit verify --data: an entry or head that is not a record of its kind is reported, not thrown; other directories are refused', async (t) => {
  // Regression: a stored entry edited to `null` made the check throw a TypeError, and an edited head record a
  // SyntaxError (exit 1 with a JavaScript error instead of the verdict).
  const dir = await mkdtemp(join(tmpdir(), 'tessera-audit-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const data = join(dir, 'eu-west-1');
  const replica = await Replica.open({ path: data, node: 'eu-west-1', region: 'eu-west', durability: 'os', policy: parsePolicy(policyV1, 'policy.yaml') });
  await replica.put('catalog', 'k1', { v: 1 }, { tags: ['quarantine'] });
  await replica.close();
  t.equal((await cli(['audit', 'verify', '--data', data])).out, 'audit log intact: 3 entries, hash chain verified');
  const edit = async (key: string, text: string | null): Promise<string | null> => {
    const db = new ClassicLevel<string, Uint8Array>(data, { keyEncoding: 'utf8', valueEncoding: 'view', createIfMissing: false });
    await db.open();
    const before = await db.get(key);
    if (text !== null) await db.put(key, Buffer.from(text));
    await db.close();
    return before === undefined ? null : Buffer.from(before).toString('utf8');
  };
  const entry2 = `a\u0000${(2).toString(16).padStart(16, '0')}`;
  const original = await edit(entry2, 'null');
  const notEntry = await cli(['audit', 'verify', '--data', data]);
  t.equal(notEntry.code, 1, notEntry.err);
  t.equal(notEntry.out, 'audit log BROKEN after 2 entries: entry stored at position 2 is not an audit entry (its fields were edited)');
  await edit(entry2, original);
  await edit('ahead', 'garbage');
  const badHead = await cli(['audit', 'verify', '--data', data]);
  t.equal(badHead.code, 1, badHead.err);
  t.equal(badHead.out, "audit log BROKEN after 3 entries: the head record (the last entry's number and hash) is not readable: it was edited");
  const notData = await cli(['audit', 'verify', '--data', dir]);
  t.equal(notData.code, 1);
  t.match(notData.err, /tessera: ERR_STORE_FORMAT: .* is not a Tessera data directory/, 'a directory that is not a data directory is refused');
});
