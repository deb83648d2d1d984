// Goal: the store enforces the replication policy on every path it owns: local writes a region may not hold
// are refused (naming the regions that may), deltas a receiver may not hold are rejected whole and audited,
// tag changes that shut regions out emit purge notices (no value) and those that open regions emit the
// document's state, policy versions are immutable and re-judge stored data, and the audit chain detects
// tampering.
// Method: real LevelDB replicas in temp directories, one per region, synced by hand through `sendable`, the
// same filter the replication links apply.
import t from 'tap';
import { ClassicLevel } from 'classic-level';
import { type Policy, decodeDoc, docExists, docTags, isTesseraError, parsePolicy } from '@tessera/core';
import { type LogEntry, Replica, policyHash } from '@tessera/store';
import { openReplica, tempDir, rawRecordsSkip, sealedByEnv } from './helpers.js';
import { join } from 'node:path';

const regions = `
regions:
  eu-west:    { jurisdiction: eu }
  eu-central: { jurisdiction: eu }
  us-east:    { jurisdiction: us }
`;

function policy(version: number, datasets: string, rules = ''): Policy {
  return parsePolicy(`version: ${version}\n${regions}datasets:\n${datasets}\n${rules === '' ? '' : `rules:\n${rules}`}`, `test policy v${version}`);
}

const basePolicy = policy(
  1,
  `
  catalog: { placement: global }
  audits:  { placement: local }
  orders:  { placement: { regions: [eu-west, us-east] } }
  profiles: { placement: { home: doc.origin, within: jurisdiction } }`,
  `
  - name: pii stays in its jurisdiction
    deny: "'pii' in doc.tags && target.jurisdiction != source.jurisdiction"
  - name: reviewed documents leave quarantine
    release: "'reviewed' in doc.tags"`,
);

const peers = [
  { node: 'w1', region: 'eu-west' },
  { node: 'c1', region: 'eu-central' },
  { node: 'u1', region: 'us-east' },
];

async function cluster(t: Parameters<typeof openReplica>[0], given: Policy = basePolicy): Promise<Record<'west' | 'central' | 'us', Replica>> {
  return {
    west: await openReplica(t, { node: 'w1', region: 'eu-west', policy: given, peers }),
    central: await openReplica(t, { node: 'c1', region: 'eu-central', policy: given, peers }),
    us: await openReplica(t, { node: 'u1', region: 'us-east', policy: given, peers }),
  };
}

/** What `from` would send to `to` after `cursor`, as the link filters it. */
async function sendableTo(from: Replica, to: Replica, cursor = 0): Promise<LogEntry[]> {
  const { entries } = await from.deltasSince(cursor, { limit: 1000 });
  const { allowed } = await from.sendable(entries, to.region);
  return entries.filter((_, i) => allowed[i]);
}

async function sync(from: Replica, to: Replica, cursor = 0): Promise<void> {
  const entries = await sendableTo(from, to, cursor);
  if (entries.length > 0) await to.applyDeltas(entries, { from: from.region });
}

t.test('documents record their origin region; users cannot write the reserved tag', async (t) => {
  const { west } = await cluster(t);
  await west.put('catalog', 'c1', { name: 'lamp' }, { tags: ['new'] });
  const doc = await west.get('catalog', 'c1');
  t.equal(doc?.origin, 'eu-west');
  t.same(doc?.tags, ['new'], 'the origin tag is not among the user tags');
  await t.rejects(west.tag('catalog', 'c1', { add: ['origin:us-east'] }), { code: 'ERR_TAG_INVALID' });
  await t.rejects(west.put('catalog', 'c2', {}, { tags: ['origin:us-east'] }), { code: 'ERR_TAG_INVALID' });
  await west.delete('catalog', 'c1');
  await west.put('catalog', 'c1', { name: 'lamp 2' });
  const again = await west.get('catalog', 'c1');
  t.equal(again?.origin, 'eu-west', 'a recreated document keeps its origin');
  t.same(again?.tags, ['new'], 'tags survive a delete');
});

t.test('a local write this region may not hold is refused with the regions that may', async (t) => {
  const { central } = await cluster(t);
  const error = await central.put('orders', 'o1', { total: 3 }).catch((e: unknown) => e);
  t.ok(isTesseraError(error, 'ERR_POLICY_DENIED'), 'orders may not live in eu-central');
  t.same((error as { regions: string[] }).regions, ['eu-west', 'us-east']);
  t.equal(await central.get('orders', 'o1'), undefined, 'nothing was written');
  t.equal(central.lastSeq, 0, 'nothing was logged');
});

t.test('the sender filters by placement, rules and quarantine; release sends the whole state', async (t) => {
  const { west, central, us } = await cluster(t);
  await west.put('catalog', 'c1', { v: 1 });
  await west.put('audits', 'a1', { v: 1 });
  await west.put('orders', 'o1', { v: 1 });
  await west.put('profiles', 'p1', { v: 1 }, { tags: ['pii'] });
  await west.put('catalog', 'q1', { secret: 'hold' }, { tags: ['quarantine'] });
  const toCentral = (await sendableTo(west, central)).map((e) => `${e.dataset}/${e.key}`);
  const toUs = (await sendableTo(west, us)).map((e) => `${e.dataset}/${e.key}`);
  t.same(toCentral.sort(), ['catalog/c1', 'profiles/p1'], 'eu-central: global and same-jurisdiction home data');
  t.same(toUs.sort(), ['catalog/c1', 'orders/o1'], 'us-east: global and its listed dataset; no pii, no local, no quarantine');
  const audits = await west.audit();
  t.ok(
    audits.some((e) => e.kind === 'quarantine-hold'),
    'the quarantine hold is audited',
  );

  await sync(west, us);
  t.equal(await us.get('catalog', 'q1'), undefined, 'quarantined document did not reach us-east');
  const before = west.lastSeq;
  await west.map('catalog', 'q1').set('more', 'data');
  await west.tag('catalog', 'q1', { add: ['reviewed'] });
  const released = await sendableTo(west, us, before);
  t.ok(
    released.some((e) => e.kind === 'state' && e.key === 'q1' && e.to?.includes('us-east')),
    'release appends the whole state for the regions it opens',
  );
  await us.applyDeltas(released, { from: 'eu-west' });
  t.same((await us.get('catalog', 'q1'))?.value, { secret: 'hold', more: 'data' }, 'us-east converges on the whole document after the release');
  t.ok(
    (await west.audit()).some((e) => e.kind === 'quarantine-release'),
    'the release is audited',
  );
});

t.test("quarantining a replicated document purges the other regions' copies; the notice carries the facts, no value", async (t) => {
  const { west, us } = await cluster(t);
  await west.put('catalog', 'k', { name: 'secret-value' });
  await west.map('catalog', 'k').set('extra', 1);
  await sync(west, us);
  t.ok(await us.get('catalog', 'k'), 'replicated first');
  const before = west.lastSeq;
  await west.tag('catalog', 'k', { add: ['quarantine'] });
  const entries = await sendableTo(west, us, before);
  t.equal(entries.length, 1, 'only the purge notice goes out: the tag change itself stays home');
  t.equal(entries[0]!.kind, 'purge');
  const notice = decodeDoc(entries[0]!.delta);
  t.same([notice.live, docExists(notice), docTags(notice)], [[], false, ['quarantine']], 'the notice carries the facts that say so, no value');
  t.notOk(Buffer.from(entries[0]!.delta).includes('secret-value'), 'not a byte of the value');
  const result = await us.applyDeltas(entries, { from: 'eu-west' });
  t.equal(result.purged, 1);
  t.ok(await us.get('catalog', 'k'), 'us-east keeps its copy until eu-west has its own changes (none here)');
  t.equal(await us.settleHandovers(() => 0), 0, "not before eu-west acknowledged us-east's log");
  t.equal(await us.settleHandovers(() => us.lastSeq), 1, 'then it hands over');
  t.equal(await us.get('catalog', 'k'), undefined, 'us-east dropped its copy');
  t.equal(await us.state('catalog', 'k'), undefined, 'no state left');
  const { entries: usLog } = await us.deltasSince(0, { limit: 100 });
  const left = usLog.filter((e) => e.key === 'k');
  t.same(
    left.map((e) => [e.kind, e.to]),
    [['purge', ['eu-central']]],
    "of the document, us-east's log keeps only the notice it owes eu-central",
  );
  t.notOk(Buffer.from(left[0]!.delta).includes('secret-value'), 'which holds no value');
  t.equal(await us.pendingNotices(), 1);
  await us.settleHandovers(() => us.lastSeq);
  const { entries: afterAck } = await us.deltasSince(0, { limit: 100 });
  t.notOk(
    afterAck.some((e) => e.key === 'k'),
    'once eu-central acknowledged it, no delta-log entry of the document is left in us-east',
  );
  t.equal(await us.pendingNotices(), 0);
  const purge = (await us.audit()).find((e) => e.kind === 'purge');
  t.ok(purge, 'the purge is audited');
  t.notMatch(JSON.stringify(purge), /"k"|secret-value/, 'the audit entry names the document by digest only');
  t.equal((purge!.details as { doc: string }).doc, us.keyDigest('catalog', 'k'));
});

t.test('the receiver judges again: a document it may not hold is refused and audited, the rest applies', async (t) => {
  // eu-west runs an old policy that lets orders go everywhere; eu-central enforces the strict one.
  const loose = policy(
    1,
    `
  orders: { placement: global }
  catalog: { placement: global }`,
  );
  const west = await openReplica(t, { node: 'w1', region: 'eu-west', policy: loose, peers });
  const central = await openReplica(t, { node: 'c1', region: 'eu-central', policy: basePolicy, peers });
  await west.put('catalog', 'fine', { v: 1 });
  await west.put('orders', 'o-secret', { total: 99 });
  const entries = await sendableTo(west, central);
  t.equal(entries.length, 2, 'the loose sender sends both');
  const result = await central.applyDeltas(entries, { from: 'eu-west' });
  t.same(result.refused, [1], 'names the refused delta by its index');
  t.equal(result.applied, 1, 'the document it may hold is applied');
  t.ok(await central.get('catalog', 'fine'));
  t.equal(await central.get('orders', 'o-secret'), undefined, 'the refused one is not');
  t.equal(await central.state('orders', 'o-secret'), undefined, 'not even a trace of its state');
  const rejected = (await central.audit()).find((e) => e.kind === 'rejected');
  t.ok(rejected, 'the refusal is audited');
  t.equal((rejected!.details as { count: number }).count, 1);
  t.notMatch(JSON.stringify(rejected), /o-secret/, 'the audit entry does not carry the key');
  const again = await central.applyDeltas(entries, { from: 'eu-west' });
  t.same([again.applied, again.refused], [0, [1]], 'a replay changes nothing and is refused again');
});

t.test('policy versions are immutable, stored with their hash, and enforcing one re-judges stored data', async (t) => {
  const { west, central, us } = await cluster(t);
  await west.put('catalog', 'c1', { v: 1 });
  await west.put('catalog', 'c2', { v: 2 });
  await west.put('orders', 'o1', { v: 1 });
  await sync(west, central);
  await sync(west, us);
  t.ok(await us.get('orders', 'o1'));

  // v2: catalog stays in the EU; orders may also live in eu-central.
  const v2 = policy(
    2,
    `
  catalog: { placement: { regions: [eu-west, eu-central] } }
  audits:  { placement: local }
  orders:  { placement: { regions: [eu-west, eu-central, us-east] } }
  profiles: { placement: { home: doc.origin, within: jurisdiction } }`,
  );
  const plan = await us.planPolicy(v2);
  t.same(plan.datasets.catalog, { held: 2, purge: 2, start: {} }, 'the plan lists what us-east would purge');
  t.equal((await us.get('catalog', 'c1')) !== undefined, true, 'a plan changes nothing');
  const westPlan = await west.planPolicy(v2);
  t.same(westPlan.datasets.orders!.start, { 'eu-central': 1 }, 'eu-west, the first region holding orders, backfills eu-central');

  const report = await us.installPolicy(v2, 'enforce', 'test');
  t.same(report?.datasets.catalog?.purge, 2);
  t.ok(await us.get('catalog', 'c1'), 'us-east keeps its copies until the regions that may hold them have its changes');
  t.equal(await us.settleHandovers(() => us.lastSeq), 2);
  t.equal(await us.get('catalog', 'c1'), undefined, 'then purges them');
  t.equal((await us.audit()).filter((e) => e.kind === 'purge').length, 2, 'one audit entry per purge');
  const cursor = west.lastSeq;
  await west.installPolicy(v2, 'enforce', 'test');
  const early = await central.applyDeltas(await sendableTo(west, central, cursor), { from: 'eu-west' });
  t.ok(early.refused.length > 0, 'a receiver still on v1 refuses what only v2 allows');
  await central.installPolicy(v2, 'enforce', 'test');
  await sync(west, central, cursor);
  t.same((await central.get('orders', 'o1'))?.value, { v: 1 }, 'eu-central received the orders it may now hold');

  const changed = policy(
    2,
    `
  catalog: { placement: global }`,
  );
  await t.rejects(west.installPolicy(changed, 'enforce', 'test'), { code: 'ERR_POLICY_CONFLICT' }, 'a version is immutable');
  await t.rejects(west.installPolicy(basePolicy, 'enforce', 'test'), { code: 'ERR_POLICY_CONFLICT' }, 'no going back to an older version');
  const history = await west.policyHistory();
  t.same(
    history.map((h) => [h.version, h.hash]),
    [
      [1, policyHash(basePolicy)],
      [2, policyHash(v2)],
    ],
  );
  t.equal(west.policyStamp().version, 2);
});

t.test('the enforced policy survives a restart; an older one from the config does not win over it', async (t) => {
  const dir = join(await tempDir(t), 'w1');
  const first = await Replica.open({ ...sealedByEnv(), path: dir, node: 'w1', region: 'eu-west', durability: 'os', policy: basePolicy, peers });
  const v2 = policy(
    2,
    `
  catalog: { placement: local }`,
  );
  await first.installPolicy(v2, 'enforce', 'peer:c1');
  await first.close();
  const again = await Replica.open({ ...sealedByEnv(), path: dir, node: 'w1', region: 'eu-west', durability: 'os', policy: basePolicy, peers });
  t.teardown(() => again.close());
  t.equal(again.policy?.version, 2, 'the newer stored version stays enforced');
});

t.test('the audit chain detects an edited, a removed and a reordered entry', { skip: rawRecordsSkip }, async (t) => {
  const dir = join(await tempDir(t), 'w1');
  const replica = await Replica.open({ ...sealedByEnv(), path: dir, node: 'w1', region: 'eu-west', durability: 'os', policy: basePolicy, peers });
  for (let i = 0; i < 5; i++) await replica.recordAudit('send-denied', { peer: 'u1', datasets: { audits: i + 1 } });
  t.same(await replica.verifyAudit(), { ok: true, entries: replica.auditLength });
  const length = replica.auditLength;
  await replica.close();

  const tamper = async (change: (db: ClassicLevel<string, string>) => Promise<void>) => {
    const db = new ClassicLevel<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    await db.open();
    await change(db);
    await db.close();
    const reopened = await Replica.open({ ...sealedByEnv(), path: dir, node: 'w1', region: 'eu-west', durability: 'os', peers });
    const verdict = await reopened.verifyAudit();
    await reopened.close();
    return verdict;
  };
  const key = (seq: number) => `a\u0000${seq.toString(16).padStart(16, '0')}`;
  const original = new Map<number, string>();
  {
    const db = new ClassicLevel<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    await db.open();
    for (let seq = 1; seq <= length; seq++) original.set(seq, (await db.get(key(seq)))!);
    await db.close();
  }
  const restore = async (db: ClassicLevel<string, string>) => {
    for (const [seq, value] of original) await db.put(key(seq), value);
  };

  const edited = await tamper(async (db) => {
    const entry = JSON.parse(original.get(3)!);
    entry.details.datasets.audits = 999;
    await db.put(key(3), JSON.stringify(entry));
  });
  t.equal(edited.ok, false);
  t.match(edited.problem, /entry 3 .*edited/);

  const removed = await tamper(async (db) => {
    await restore(db);
    await db.del(key(2));
  });
  t.equal(removed.ok, false);
  t.match(removed.problem, /removed|reordered/);

  const reordered = await tamper(async (db) => {
    await restore(db);
    await db.put(key(2), original.get(4)!);
    await db.put(key(4), original.get(2)!);
  });
  t.equal(reordered.ok, false);

  const truncated = await tamper(async (db) => {
    await restore(db);
    await db.del(key(length));
  });
  t.equal(truncated.ok, false);
  t.match(truncated.problem, /removed from the end/);

  const intact = await tamper(restore);
  t.equal(intact.ok, true, 'restoring the entries restores the chain');
});

t.test('a document moved to regions none of its holders may stay in is handed over before it is purged', async (t) => {
  const v1 = policy(
    1,
    `
  moving: { placement: { regions: [eu-west] } }`,
  );
  const v2 = policy(
    2,
    `
  moving: { placement: { regions: [us-east] } }`,
  );
  const west = await openReplica(t, { node: 'w1', region: 'eu-west', policy: v1, peers });
  const us = await openReplica(t, { node: 'u1', region: 'us-east', policy: v1, peers });
  await west.put('moving', 'm1', { v: 'only copy' });
  const cursor = west.lastSeq;
  await us.installPolicy(v2, 'enforce', 'test');
  const report = await west.installPolicy(v2, 'enforce', 'test');
  t.same(report?.datasets.moving, { held: 1, purge: 1, start: { 'us-east': 1 } }, 'eu-west hands the document to us-east');
  t.ok(await west.get('moving', 'm1'), 'eu-west keeps it until us-east has it: it is the only copy');
  t.equal(await west.pendingHandovers(), 1);
  t.equal(await west.settleHandovers(() => cursor), 0, 'not before us-east acknowledged the state');
  t.equal(await west.settleHandovers(() => west.lastSeq - 1), 0, "nor before it acknowledged all of eu-west's log");
  await sync(west, us, cursor);
  t.same((await us.get('moving', 'm1'))?.value, { v: 'only copy' }, 'us-east received the whole state');
  t.equal(await west.settleHandovers(() => west.lastSeq), 1, 'once acknowledged, the handover completes');
  t.equal(await west.get('moving', 'm1'), undefined, 'and eu-west purged its copy');
  t.equal(await west.pendingHandovers(), 0);
  t.ok(
    (await west.audit()).some((e) => e.kind === 'purge' && (e.details as { reason: string }).reason === 'handover'),
    'the purge is audited as a handover',
  );
});

t.test('a region that purged a document never reuses its dots when it writes the document again', async (t) => {
  // Seed 104 of the simulation: after a purge erased the context here, a new write issued dots the other
  // regions already held, and they skipped it as seen.
  const v1 = policy(
    1,
    `
  docs: { placement: global }`,
  );
  const v2 = policy(
    2,
    `
  docs: { placement: { regions: [eu-west] } }`,
  );
  const v3 = policy(
    3,
    `
  docs: { placement: global }`,
  );
  const west = await openReplica(t, { node: 'w1', region: 'eu-west', policy: v1, peers });
  const us = await openReplica(t, { node: 'u1', region: 'us-east', policy: v1, peers });
  await us.put('docs', 'd', { a: 1 });
  await us.map('docs', 'd').set('b', 2);
  await sync(us, west);
  await west.installPolicy(v2, 'enforce', 'test');
  await us.installPolicy(v2, 'enforce', 'test');
  await us.settleHandovers(() => us.lastSeq);
  t.equal(await us.state('docs', 'd'), undefined, 'purged in us-east');
  await west.installPolicy(v3, 'enforce', 'test');
  await us.installPolicy(v3, 'enforce', 'test');
  const cursor = west.lastSeq;
  const written = await us.put('docs', 'd', { c: 3 });
  t.ok(written.dot![1] > 3, `the new write's dot (${written.dot!.join(':')}) is above every dot us-east issued before the purge`);
  await sync(us, west, 0);
  t.same((await west.get('docs', 'd'))?.value, { a: 1, b: 2, c: 3 }, 'eu-west applies it: nothing is skipped as already seen');
  t.ok(cursor >= 0);
});
