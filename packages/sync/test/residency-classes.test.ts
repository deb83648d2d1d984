// Goal: the classes of residency failure under concurrency found in the first round (issue 11) stay fixed —
// each scenario is what broke: no acknowledged write lost, the facts that decide placement (origin, type,
// tags) converge, each region holds exactly what the converged facts allow.
// Method: three in-process nodes over real WebSockets (residency-cluster.ts), one policy; replication paused
// on some nodes to make writes concurrent, wall clocks offset to order concurrent creations; then everything
// resumes and must go quiet. Only the public embedded API is used (these tests also ran, and failed, against
// the code before the fix).
import t from 'tap';
import * as Y from 'yjs';
import { parsePolicy } from '@tessera/core';
import { type RNode, copies, openCluster, quiet } from './residency-cluster.js';

const policyText = (version: number, drafts = 'global', texts = 'global') => `version: ${version}
regions:
  eu-west:    { jurisdiction: eu }
  eu-central: { jurisdiction: eu }
  us-east:    { jurisdiction: us }
datasets:
  catalog:  { type: map, placement: global }
  notes:    { type: lww, placement: global }
  drafts:   { type: automerge, placement: ${drafts} }
  texts:    { type: yjs, placement: ${texts} }
  profiles: { type: map, placement: { home: doc.origin, within: jurisdiction } }
rules:
  - name: pii stays in its jurisdiction
    deny: "'pii' in doc.tags && target.jurisdiction != source.jurisdiction"
  - name: reviewed documents leave quarantine
    release: "'reviewed' in doc.tags"
`;

const specs = [
  { id: 'eu-west-1', region: 'eu-west' },
  { id: 'us-east-1', region: 'us-east' },
  { id: 'eu-central-1', region: 'eu-central' },
];

async function settle(t: { ok(value: unknown, message: string): void }, nodes: readonly RNode[]): Promise<void> {
  t.ok(await quiet(nodes), 'replication went quiet');
}

for (const [name, westOffset, usOffset, winner] of [
  ['eu-west creates first', 0, 5_000, 'eu-west-1'],
  ['us-east (quarantining) creates first', 5_000, 0, 'us-east-1'],
] as const) {
  t.test(`1. a creation racing a quarantined creation loses no acknowledged write (${name})`, async (t) => {
    const nodes = await openCluster(t, specs, policyText(1), { paused: true });
    const [west, us] = nodes as [RNode, RNode, RNode];
    west.offsetMs = westOffset;
    us.offsetMs = usOffset;
    await west.replica.put('catalog', 'k', { a: 1 });
    await us.replica.put('catalog', 'k', { b: 2 }, { tags: ['quarantine'] });
    for (const node of nodes) node.resume();
    await settle(t, nodes);
    const all = await copies(nodes, 'catalog', 'k');
    const origin = winner === 'eu-west-1' ? 'eu-west' : 'us-east';
    t.same(all[winner]?.value, { a: 1, b: 2 }, `the origin's region (${origin}) holds both acknowledged writes`);
    t.same([all[winner]?.origin, all[winner]?.tags], [origin, ['quarantine']], 'the earliest creation is the origin; the document is quarantined there');
    for (const node of nodes) if (node.id !== winner) t.equal(all[node.id], undefined, `${node.id} holds no copy`);
  });
}

t.test('2. a document deleted and re-created with another type shows the new type everywhere', async (t) => {
  const nodes = await openCluster(t, specs, policyText(1));
  const [west] = nodes as [RNode, RNode, RNode];
  await west.replica.put('notes', 'k', 'first');
  await settle(t, nodes);
  await west.replica.delete('notes', 'k');
  await west.replica.put('notes', 'k', ['x', 'y'], { type: 'set' });
  await west.replica.operate('catalog', 'c', { op: 'increment', amount: 3 }, { type: 'counter' });
  await settle(t, nodes);
  await west.replica.delete('catalog', 'c');
  await west.replica.put('catalog', 'c', { now: 'a map' });
  await settle(t, nodes);
  for (const node of nodes) {
    const note = await node.replica.get('notes', 'k');
    t.same([note?.type, note?.value], ['set', ['x', 'y']], `${node.id}: notes/k is the set`);
    const doc = await node.replica.get('catalog', 'c');
    t.same([doc?.type, doc?.value], ['map', { now: 'a map' }], `${node.id}: catalog/c is the map`);
  }
});

t.test('3. after a purge, Automerge actors and Yjs client ids are never reused: new writes reach everyone', async (t) => {
  const nodes = await openCluster(t, specs, policyText(1));
  const [west, us, central] = nodes as [RNode, RNode, RNode];
  await west.replica.automerge('drafts', 'd').change((doc: Record<string, unknown>) => {
    doc.first = 1;
  });
  await west.replica.yjs('texts', 'x').change((doc) => doc.getText('t').insert(0, 'one '));
  await settle(t, nodes);
  // v2 moves both datasets out of eu-west: it hands its copies over and purges them.
  const v2 = parsePolicy(policyText(2, '{ regions: [us-east, eu-central] }', '{ regions: [us-east, eu-central] }'), 'v2');
  await west.replica.installPolicy(v2, 'enforce', 'test');
  west.sync?.policyChanged();
  await settle(t, nodes);
  t.equal(await west.replica.get('drafts', 'd'), undefined, 'eu-west purged the Automerge document');
  t.equal(await west.replica.get('texts', 'x'), undefined, 'and the Yjs document');
  // v3 lets eu-west hold them again; it writes before it has received the copies back.
  await west.pause();
  const v3 = parsePolicy(policyText(3), 'v3');
  for (const node of nodes) await node.replica.installPolicy(v3, 'enforce', 'test');
  await west.replica.automerge('drafts', 'd').change((doc: Record<string, unknown>) => {
    doc.second = 2;
  });
  await west.replica.yjs('texts', 'x').change((doc) => doc.getText('t').insert(0, 'two '));
  west.resume();
  for (const node of [us, central]) node.sync?.policyChanged();
  await settle(t, nodes);
  for (const node of nodes) {
    t.same((await node.replica.get('drafts', 'd'))?.value, { first: 1, second: 2 }, `${node.id}: both Automerge changes`);
    const text = (await node.replica.yjs('texts', 'x').doc())?.getText('t').toString();
    t.ok(text?.includes('one') === true && text.includes('two'), `${node.id}: both Yjs writes (${JSON.stringify(text)})`);
  }
  const reconnects = nodes.flatMap((node) => node.sync!.status().links.map((link) => link.reconnects));
  t.ok(Math.max(...reconnects) < 5, `no link resends a failing batch in a loop (reconnects ${reconnects.join(', ')})`);
  void Y;
});

t.test('4. a quarantine racing a release converges on the released document everywhere', async (t) => {
  const nodes = await openCluster(t, specs, policyText(1));
  const [west, us] = nodes as [RNode, RNode, RNode];
  await west.replica.put('catalog', 'q', { v: 1 });
  await settle(t, nodes);
  for (const node of nodes) await node.pause();
  await west.replica.tag('catalog', 'q', { add: ['quarantine'] });
  await us.replica.tag('catalog', 'q', { add: ['reviewed'] });
  for (const node of nodes) node.resume();
  await settle(t, nodes);
  await west.replica.map('catalog', 'q').set('after', true);
  await settle(t, nodes);
  for (const node of nodes) {
    const doc = await node.replica.get('catalog', 'q');
    t.same(
      [doc?.value, doc?.tags, doc?.origin],
      [{ v: 1, after: true }, ['quarantine', 'reviewed'], 'eu-west'],
      `${node.id}: the released document, whole, with its facts`,
    );
  }
});

t.test('5. copies created concurrently in two regions converge on one origin and one state', async (t) => {
  const nodes = await openCluster(t, specs, policyText(1), { paused: true });
  const [west, , central] = nodes as [RNode, RNode, RNode];
  central.offsetMs = 5_000;
  await west.replica.put('profiles', 'p', { name: 'from the west' });
  await central.replica.put('profiles', 'p', { city: 'from the centre' });
  for (const node of nodes) node.resume();
  await settle(t, nodes);
  const all = await copies(nodes, 'profiles', 'p');
  for (const id of ['eu-west-1', 'eu-central-1']) {
    t.same([all[id]?.value, all[id]?.origin], [{ name: 'from the west', city: 'from the centre' }, 'eu-west'], `${id}: one document, origin eu-west`);
  }
  t.equal(all['us-east-1'], undefined, 'us-east (another jurisdiction) holds no copy');
});

t.test('6. a write in a region that purged a key joins the document, it does not fork it', async (t) => {
  const nodes = await openCluster(t, specs, policyText(1));
  const [west, us] = nodes as [RNode, RNode, RNode];
  await west.replica.put('catalog', 'k', { a: 1 });
  await settle(t, nodes);
  await west.replica.tag('catalog', 'k', { add: ['quarantine'] });
  await settle(t, nodes);
  t.equal(await us.replica.get('catalog', 'k'), undefined, 'us-east purged its copy');
  await us.replica.put('catalog', 'k', { z: 9 });
  await settle(t, nodes);
  const all = await copies(nodes, 'catalog', 'k');
  t.same(
    [all['eu-west-1']?.value, all['eu-west-1']?.origin, all['eu-west-1']?.tags],
    [{ a: 1, z: 9 }, 'eu-west', ['quarantine']],
    "eu-west holds the one document, with us-east's write",
  );
  t.equal(all['us-east-1'], undefined, 'us-east holds none: the document is quarantined in eu-west');
  t.equal(all['eu-central-1'], undefined, 'nor eu-central');
});

t.test('8. a purge notice survives the truncation of the log: a lagging region still drops its copy', async (t) => {
  const nodes = await openCluster(t, specs, policyText(1), { logEntriesMax: 20 });
  const [west, us] = nodes as [RNode, RNode, RNode];
  await west.replica.put('catalog', 'secret', { v: 'x' });
  await settle(t, nodes);
  await us.pause();
  await west.replica.tag('catalog', 'secret', { add: ['quarantine'] });
  for (let i = 0; i < 80; i++) await west.replica.put('catalog', `other-${i}`, { i });
  await west.sync!.retain();
  t.ok(west.replica.logFloor > 20, `eu-west truncated its log (floor ${west.replica.logFloor})`);
  us.resume();
  await settle(t, nodes);
  t.equal(await us.replica.get('catalog', 'secret'), undefined, 'us-east dropped the quarantined copy');
  t.equal(await us.replica.state('catalog', 'secret'), undefined, 'no state left');
  t.same((await us.replica.get('catalog', 'other-79'))?.value, { i: 79 }, 'and caught up with the rest');
});

t.test('7. with a link cut, a third node forwards every change, whatever lane carried what', async (t) => {
  // eu-west-1 and eu-central-1 never connect: us-east-1 forwards between them. The catalog rides a lane of its
  // own, first in priority; notes ride the main lane on a slow fixed cadence, so the catalog lane delivers
  // later writes of eu-west-1 before the main lane delivers earlier ones. The peer's frontier of an origin is
  // what every lane delivered, never what one lane did.
  const lanes = [
    { id: 'hot', datasets: ['catalog'], priority: 0 },
    { id: 'slow', datasets: ['notes'], priority: 2, fixedCadenceMs: 400 },
  ];
  const nodes = await openCluster(t, specs, policyText(1), { lanes, cut: [['eu-west-1', 'eu-central-1']] });
  const [west, , central] = nodes as [RNode, RNode, RNode];
  for (let i = 0; i < 30; i++) {
    await west.replica.put('notes', `n${i}`, `note ${i}`);
    await west.replica.put('catalog', `c${i}`, { i });
  }
  const arrived = async () =>
    (await central.replica.list('notes', { limit: 100 })).items.length === 30 && (await central.replica.list('catalog', { limit: 100 })).items.length === 30;
  const deadline = Date.now() + 20_000;
  while (!(await arrived()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  t.ok(await arrived(), 'eu-central-1 holds every note and catalog entry of eu-west-1, forwarded by us-east-1');
  const link = central.sync!.status().links.find((l) => l.peer === 'eu-west-1');
  t.not(link?.state, 'open', 'the direct link never opened');
});
