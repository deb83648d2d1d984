// Goal: the inspect reader shows what the replica holds — counts, keys with tombstones, a document's value,
// tags, context, dots with HLCs, siblings and conflicts, the delta log with state and purge entries, cursors,
// frontiers, the policy and the audit length — and reads a stopped node's directory without writing a byte
// to it; a missing, locked, foreign or other-format directory is refused with a coded, actionable error.
// Method: real replicas in temp directories, written to (writes, deletes, concurrent writes synced by hand,
// tags, a policy whose tag rules emit state and purge entries, a policy change that purges); every answer is
// compared with the replica's own API, read once through the open replica and once offline from a snapshot
// of the closed directory (the two must be equal); the directory's files (names, bytes, mtimes) are compared
// before and after.
import t from 'tap';
import { readFile, readdir, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { type Policy, isTesseraError, parsePolicy } from '@tessera/core';
import {
  type InspectSummary,
  type StoreReader,
  Replica,
  inspectConflicts,
  inspectDoc,
  inspectKeys,
  inspectLog,
  inspectPeers,
  inspectSummary,
  openDataDirectorySnapshot,
  policyHash,
  storeFormatVersion,
} from '@tessera/store';
import { openReplica, rawRecordsSkip, snapshotKeyByEnv, syncOnce, tempDir } from './helpers.js';

const regions = `
regions:
  eu-west:    { jurisdiction: eu }
  eu-central: { jurisdiction: eu }
  us-east:    { jurisdiction: us }
`;

function policy(version: number, audits: string): Policy {
  return parsePolicy(
    `version: ${version}\n${regions}datasets:
  profiles: { type: map, placement: global }
  notes:    { type: mv, placement: global }
  visits:   { type: counter, placement: global }
  carts:    { type: set, placement: global }
  audits:   { type: lww, placement: ${audits} }
rules:
  - name: pii stays in its jurisdiction
    deny: "'pii' in doc.tags && target.jurisdiction != source.jurisdiction"
  - name: reviewed documents leave quarantine
    release: "'reviewed' in doc.tags"
`,
    `inspect test policy v${version}`,
  );
}

const peers = [
  { node: 'w1', region: 'eu-west' },
  { node: 'u1', region: 'us-east' },
];

/** Every answer of the reader over `reader`, for comparing online and offline reads. */
async function everything(reader: StoreReader): Promise<Record<string, unknown>> {
  return {
    summary: await inspectSummary(reader),
    profiles: await inspectKeys(reader, 'profiles'),
    ada: await inspectDoc(reader, 'profiles', 'ada'),
    note: await inspectDoc(reader, 'notes', 'n1'),
    log: await inspectLog(reader, { from: 0, limit: 1000, values: true }),
    peers: await inspectPeers(reader),
    conflicts: await inspectConflicts(reader),
  };
}

/**
 * Names, bytes and modification times of a directory's files. LOCK is only stat'ed: closing any descriptor of
 * a file drops the POSIX locks this process holds on it, so reading it would unlock a replica open here.
 */
async function files(dir: string): Promise<Record<string, { bytes: string; mtimeMs: number }>> {
  const out: Record<string, { bytes: string; mtimeMs: number }> = {};
  for (const name of (await readdir(dir)).sort()) {
    const info = await stat(join(dir, name));
    out[name] = { bytes: name === 'LOCK' ? `${info.size} bytes` : (await readFile(join(dir, name))).toString('base64'), mtimeMs: info.mtimeMs };
  }
  return out;
}

async function populated(t: Parameters<typeof openReplica>[0]): Promise<{ west: Replica; us: Replica; path: string }> {
  const path = join(await tempDir(t), 'w1');
  const west = await openReplica(t, { path, node: 'w1', region: 'eu-west', policy: policy(1, 'global'), peers });
  const us = await openReplica(t, { node: 'u1', region: 'us-east', policy: policy(1, 'global'), peers });
  await west.put('profiles', 'ada', { name: 'Ada', city: 'London' });
  await us.put('profiles', 'ada', { name: 'Ada L.' });
  await west.put('profiles', 'bob', { name: 'Bob' });
  await west.delete('profiles', 'bob');
  for (let i = 0; i < 5; i++) await west.put('profiles', `user-${i}`, { i });
  await west.put('notes', 'n1', 'from west');
  await us.put('notes', 'n1', 'from us');
  await west.counter('visits', 'home').increment(3);
  await west.set('carts', 'c1').add('apple');
  await west.put('audits', 'a1', 'kept here');
  // A tag that shuts us-east out (a purge notice), and a quarantine released by a tag (a state entry).
  await west.put('profiles', 'eve', { name: 'Eve' });
  await west.tag('profiles', 'eve', { add: ['pii'] });
  await west.put('profiles', 'held', { name: 'Held' }, { tags: ['quarantine'] });
  await west.put('profiles', 'freed', { name: 'Freed' }, { tags: ['quarantine'] });
  await west.tag('profiles', 'freed', { add: ['reviewed'] });
  await syncOnce(us, west);
  await west.setCursor('u1', 4);
  await west.setCursor('u1', 2, 'high');
  return { west, us, path };
}

t.test('the reader agrees with the replica, online and offline, and never writes', async (t) => {
  const { west, path } = await populated(t);
  const reader = west.records();

  const summary = await inspectSummary(reader);
  t.equal(summary.node, 'w1');
  t.equal(summary.region, 'eu-west');
  t.equal(summary.format, storeFormatVersion);
  const profiles = summary.datasets.find((d) => d.dataset === 'profiles')!;
  t.match(
    profiles,
    { documents: 10, live: 9, deleted: 1, quarantined: 1, conflicts: 1, corrupt: 0 },
    'profiles: bob is a tombstone, held is quarantined, ada has a conflict',
  );
  t.ok(profiles.bytes > 0, 'bytes are counted');
  t.same(
    summary.datasets.map((d) => d.dataset),
    ['audits', 'carts', 'notes', 'profiles', 'visits'],
  );
  t.same(summary.policy.enforced, west.policyStamp(), 'the policy in force: version and hash');
  t.same(summary.log, { floor: 0, head: west.lastSeq, entries: (await west.deltasSince(0, { limit: 1000 })).entries.length });
  t.same(summary.audit, { length: west.auditLength });
  t.ok(summary.audit.length >= 3, 'policy stored, activated, quarantine hold and release are audited');
  t.same(summary.scan, { recordsMax: 100_000, complete: true });

  const keys = await inspectKeys(reader, 'profiles');
  const live = (await west.list('profiles')).items.map((item) => item.key);
  t.same(
    keys.items.filter((item) => 'state' in item && item.state === 'live').map((item) => item.key),
    live,
    'live keys are the listed ones',
  );
  t.match(
    keys.items.find((item) => item.key === 'bob'),
    { state: 'deleted', type: 'map' },
    'a tombstone is shown',
  );
  t.match(
    keys.items.find((item) => item.key === 'eve'),
    { tags: ['pii'], origin: 'eu-west' },
  );
  const page = await inspectKeys(reader, 'profiles', { prefix: 'user-', limit: 2 });
  t.same(
    page.items.map((item) => item.key),
    ['user-0', 'user-1'],
  );
  t.equal(page.next, 'user-1', 'a full page says where to continue');
  const rest = await inspectKeys(reader, 'profiles', { prefix: 'user-', after: page.next!, limit: 10 });
  t.same(
    rest.items.map((item) => item.key),
    ['user-2', 'user-3', 'user-4'],
  );
  t.equal(rest.next, null, 'the last page says there is no more');

  const ada = await inspectDoc(reader, 'profiles', 'ada');
  const view = (await west.get('profiles', 'ada'))!;
  t.same(ada.value, view.value);
  t.same(ada.context, view.context);
  t.same(ada.conflicts, view.conflicts);
  t.equal(ada.conflicts.length, 1, 'the concurrent overwrite left a conflict record');
  t.same(
    ada.nodes.map((n) => n.node),
    ['u1', 'w1'],
    'both writers are in the context',
  );
  const names = ada.dots.filter((dot) => dot.role === 'value' && dot.path?.[0] === 'name');
  t.equal(names.length, 2, 'both writes of name are held, with their HLCs');
  for (const dot of names) t.ok(dot.hlc !== undefined && dot.hlc.ms > 0);
  t.equal(ada.siblings.length, 1);
  t.same(ada.siblings[0]!.path, ['name']);
  t.same(ada.siblings[0]!.entries.find((entry) => entry.wins)!.value, (view.value as { name: string }).name, 'the shown value wins');
  const note = await inspectDoc(reader, 'notes', 'n1');
  t.same(note.siblings[0]!.entries.map((entry) => entry.value).sort(), ['from us', 'from west'], 'mv siblings');
  const bob = await inspectDoc(reader, 'profiles', 'bob');
  t.match(bob, { state: 'deleted', value: null }, 'a tombstone keeps its context');
  t.ok(bob.context.vector.length > 0);
  t.same((await inspectDoc(reader, 'visits', 'home')).dots.filter((dot) => dot.role === 'counter').length, 1);
  t.same(
    (await inspectDoc(reader, 'carts', 'c1')).dots.filter((dot) => dot.role === 'element').map((dot) => dot.element),
    ['apple'],
  );

  const log = await inspectLog(reader, { from: 0, limit: 1000 });
  const deltas = (await west.deltasSince(0, { limit: 1000 })).entries;
  t.same(
    log.entries,
    deltas.map((entry) => ({
      seq: entry.seq,
      dataset: entry.dataset,
      key: entry.key,
      origin: entry.origin,
      originSeq: entry.originSeq,
      hlc: entry.hlc,
      kind: entry.kind ?? 'change',
      to: entry.to ?? [],
      bytes: entry.delta.length,
    })),
    "log entries are the replica's, as sizes",
  );
  t.same(
    log.entries.filter((e) => 'kind' in e && e.kind === 'purge').map((e) => 'to' in e && e.to),
    [['us-east']],
    "eve's pii tag shut us-east out",
  );
  t.same(
    log.entries.filter((e) => 'kind' in e && e.kind === 'state').map((e) => 'to' in e && e.to),
    [['eu-central', 'us-east']],
    'freed was released',
  );
  t.notOk(
    log.entries.some((e) => 'value' in e),
    'no values unless asked',
  );
  const withValues = await inspectLog(reader, { from: 1, limit: 1, values: true });
  t.same(withValues.entries[0], { ...log.entries[0], value: { name: 'Ada', city: 'London' }, tags: [] });
  t.equal(withValues.newer, 2, 'a full page says where to continue');
  const tail = await inspectLog(reader, { limit: 2 });
  t.same(
    tail.entries.map((e) => e.seq),
    [west.lastSeq - 1, west.lastSeq],
    'without from: the newest entries',
  );
  t.equal(tail.older, west.lastSeq - 2);
  const bounded = await inspectLog(reader, { from: 3, to: 4 });
  t.same(
    bounded.entries.map((e) => e.seq),
    [3, 4],
  );
  t.same([bounded.older, bounded.newer], [null, null]);

  const peersView = await inspectPeers(reader);
  t.same(
    peersView.cursors,
    [
      { peer: 'u1', lane: 'main', acknowledged: 4, behind: west.lastSeq - 4 },
      { peer: 'u1', lane: 'high', acknowledged: 2, behind: west.lastSeq - 2 },
    ],
    "cursors in key order: a peer's main lane, then its other lanes",
  );
  const { w1: _own, ...frontier } = west.frontier();
  t.same(Object.fromEntries(peersView.frontiers.map((f) => [f.origin, f.seq])), frontier);

  const conflicts = await inspectConflicts(reader);
  t.same(conflicts.conflicts, await west.conflicts());
  t.equal(conflicts.more, false);
  t.same((await inspectConflicts(reader, { dataset: 'notes' })).conflicts, []);

  const online = await everything(reader);
  await west.close();
  const before = await files(path);
  const snapshot = await openDataDirectorySnapshot(path, snapshotKeyByEnv());
  t.same(snapshot.meta, { format: storeFormatVersion, node: 'w1', region: 'eu-west' });
  t.same(await everything(snapshot.reader), online, 'offline answers equal the online ones');
  await snapshot.close();
  t.same(await files(path), before, 'the directory is unchanged: same files, bytes and mtimes');
});

t.test('a policy change that purges shows in the summary, the log and the audit length', async (t) => {
  const west = await openReplica(t, { node: 'w1', region: 'eu-west', policy: policy(1, 'global'), peers });
  await west.put('audits', 'a1', 'one');
  await west.put('audits', 'a2', 'two');
  await west.put('profiles', 'p1', { x: 1 });
  const auditBefore = west.auditLength;
  const v2 = policy(2, '{ regions: [us-east] }');
  await west.installPolicy(v2, 'enforce', 'api');
  // eu-west hands the documents over to us-east; once acknowledged there, it purges them.
  await west.settleHandovers(() => west.lastSeq);
  const summary = await inspectSummary(west.records());
  t.same(
    summary.datasets.map((d) => d.dataset),
    ['profiles'],
    'the purged documents are gone',
  );
  t.same(summary.policy, { enforced: { version: 2, hash: policyHash(v2) }, shadow: null, versionsStored: 2 });
  t.equal(summary.audit.length, auditBefore + 4, 'v2 stored, activated, and one purge entry per document');
  const log = await inspectLog(west.records(), { from: 0, limit: 1000 });
  t.notOk(
    log.entries.some((e) => 'dataset' in e && e.dataset === 'audits'),
    'their log entries are gone too',
  );
  await t.rejects(inspectDoc(west.records(), 'audits', 'a1'), { code: 'ERR_DOC_NOT_FOUND' });
});

t.test('bounds: limits are checked, summaries say when they stopped, truncated logs start at the floor', async (t) => {
  const west = await openReplica(t, { node: 'w1', region: 'eu-west' });
  for (let i = 0; i < 6; i++) await west.put('profiles', `k${i}`, { i });
  const reader = west.records();
  await t.rejects(inspectKeys(reader, 'profiles', { limit: 0 }), { code: 'ERR_OPTION_INVALID', message: /limit 0 is outside 1 to 1000/ });
  await t.rejects(inspectKeys(reader, 'profiles', { limit: 1001 }), { code: 'ERR_OPTION_INVALID' });
  await t.rejects(inspectKeys(reader, 'Bad Name'), { code: 'ERR_DATASET_NAME_INVALID' });
  await t.rejects(inspectLog(reader, { from: 5, to: 2 }), { code: 'ERR_OPTION_INVALID', message: /from 5 is after to 2/ });
  await t.rejects(inspectLog(reader, { limit: 5000 }), { code: 'ERR_OPTION_INVALID' });
  await t.rejects(inspectConflicts(reader, { limit: -1 }), { code: 'ERR_OPTION_INVALID' });
  await t.rejects(inspectSummary(reader, { scanMax: 0 }), { code: 'ERR_OPTION_INVALID' });
  const partial = await inspectSummary(reader, { scanMax: 4 });
  t.same(partial.scan, { recordsMax: 4, complete: false });
  t.equal(partial.datasets[0]!.documents, 4, 'counts cover the records read');
  await west.truncateLog(4);
  const log = await inspectLog(reader, { from: 1 });
  t.equal(log.floor, 4);
  t.same(
    log.entries.map((e) => e.seq),
    [5, 6],
    'entries start after the floor',
  );
  t.same((await inspectSummary(reader)).log, { floor: 4, head: 6, entries: 2 });
});

t.test('refusals: missing, locked, not a LevelDB, a foreign LevelDB, another format version, a corrupt record', { skip: rawRecordsSkip }, async (t) => {
  const dir = await tempDir(t);
  const code = async (path: string) => {
    try {
      const snapshot = await openDataDirectorySnapshot(path, snapshotKeyByEnv());
      await snapshot.close();
      return 'opened';
    } catch (error) {
      t.ok(isTesseraError(error), `${path}: a coded error`);
      return `${(error as { code: string }).code}: ${(error as Error).message}`;
    }
  };
  t.match(await code(join(dir, 'nope')), /^ERR_STORE_NOT_FOUND: data directory .*nope does not exist/);

  const running = await openReplica(t, { path: join(dir, 'running'), node: 'r1', region: 'eu-west' });
  await running.put('profiles', 'k', { v: 1 });
  const beforeLocked = await files(join(dir, 'running'));
  t.match(await code(join(dir, 'running')), /^ERR_STORE_LOCKED: .*in use by a running node \(process \d+\).*--url/);
  t.same(await files(join(dir, 'running')), beforeLocked, "a refused inspection does not touch a running node's files either");

  await mkdir(join(dir, 'empty'));
  t.match(await code(join(dir, 'empty')), /^ERR_STORE_FORMAT: .*holds no LevelDB/);
  await writeFile(join(dir, 'file'), 'x');
  t.match(await code(join(dir, 'file')), /^ERR_STORE_FORMAT: .*is not a directory/);

  const foreign = new ClassicLevel<string, string>(join(dir, 'foreign'));
  await foreign.put('hello', 'world');
  await foreign.close();
  t.match(await code(join(dir, 'foreign')), /^ERR_STORE_FORMAT: .*a LevelDB that is not a Tessera replica/);
  const emptyDb = new ClassicLevel<string, string>(join(dir, 'emptydb'));
  await emptyDb.open();
  await emptyDb.close();
  t.match(await code(join(dir, 'emptydb')), /^ERR_STORE_FORMAT: .*an empty LevelDB/);

  const old = await Replica.open({ path: join(dir, 'future'), node: 'f1', region: 'eu-west', durability: 'os' });
  await old.close();
  const raw = new ClassicLevel<string, string>(join(dir, 'future'));
  await raw.put('meta', JSON.stringify({ format: storeFormatVersion + 1, node: 'f1', region: 'eu-west' }));
  await raw.close();
  t.match(
    await code(join(dir, 'future')),
    new RegExp(`^ERR_STORE_FORMAT: .*has format version ${storeFormatVersion + 1}; this Tessera reads version ${storeFormatVersion}`),
  );

  const corrupt = await Replica.open({ path: join(dir, 'corrupt'), node: 'c1', region: 'eu-west', durability: 'os' });
  await corrupt.put('profiles', 'fine', { ok: true });
  await corrupt.close();
  const bytes = new ClassicLevel<string, Uint8Array>(join(dir, 'corrupt'), { valueEncoding: 'view' });
  await bytes.put('d\u0000profiles\u0000broken', new Uint8Array([1, 2, 3]));
  await bytes.close();
  const snapshot = await openDataDirectorySnapshot(join(dir, 'corrupt'));
  t.teardown(() => snapshot.close());
  const summary: InspectSummary = await inspectSummary(snapshot.reader);
  t.match(summary.datasets[0], { dataset: 'profiles', documents: 2, live: 1, corrupt: 1 });
  const keys = await inspectKeys(snapshot.reader, 'profiles');
  t.match(keys.items[0], { key: 'broken', error: { code: 'ERR_STORE_CORRUPT' } }, 'a corrupt record is an item with an error');
  t.match(keys.items[1], { key: 'fine', state: 'live' }, 'the rest stays readable');
  await t.rejects(inspectDoc(snapshot.reader, 'profiles', 'broken'), { code: 'ERR_STORE_CORRUPT' });
});
