// Goal: replication carries and enforces the policy as README and docs/policy.md describe. (a) A node with a
// newer enforced version pushes it to a peer on connect, and a version installed later through the replica
// reaches every peer; the peers enforce it. (b) A receiver whose policy forbids a document refuses the whole
// batch, audits it, and tells the sender with a reject frame; the sender delivers everything else and does not
// send the refused entries again while the policies stay as they are. (c) Entries the sender's policy keeps
// from a peer are counted on the link and audited in aggregate (`send-denied`), never by key. (d) A hostile or
// buggy peer's malformed reject and policy frames close the link with a reason or are ignored with a logged
// reason; the node never crashes and installs nothing.
// Method: real replicas and SyncNodes over WebSockets on loopback (as in cluster.ts, with a policy per node and
// the cluster's regions known to each replica); conditions are polled with deadlines. For (d) a raw WebSocket
// client completes a valid handshake as a configured peer and then sends crafted frames.
import t from 'tap';
import { createServer, type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { encodeCanonical, isTesseraError, parsePolicy, policyBytesMax } from '@tessera/core';
import { type AuditEntry, Replica } from '@tessera/store';
import { type LinkStatus, type PeerConfig, type SyncOptions, SyncNode, decodeFrame, encodeFrame, helloProof, newNonce, protocolVersion } from '@tessera/sync';
import { eventually, secret } from './cluster.js';

/** The type of a subtest's `t`. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const regionsText = `regions:
  eu-west:    { jurisdiction: eu }
  eu-central: { jurisdiction: eu }
  us-east:    { jurisdiction: us }
`;

/** A policy of `version` where orders may live in `ordersIn`; catalog is global. */
function policyText(version: number, ordersIn: readonly string[], extra = ''): string {
  return `version: ${version}\n${regionsText}datasets:\n  catalog: { placement: global }\n  orders:  { placement: { regions: [${ordersIn.join(', ')}] } }\n${extra}`;
}

const everywhere = ['eu-west', 'eu-central', 'us-east'];

interface NodeSpec {
  readonly id: string;
  readonly region: string;
  /** The policy the replica opens with (null: none). */
  readonly policy: string | null;
  /** Runs on the open replica before replication starts. */
  readonly prepare?: (replica: Replica) => Promise<void>;
}

interface PolicyTestNode {
  readonly id: string;
  readonly region: string;
  readonly replica: Replica;
  sync: SyncNode;
  readonly port: number;
  /** Every log event of the node's replication. */
  readonly events: Array<Record<string, unknown>>;
  /** `onPolicy` calls. */
  readonly installed: Array<{ version: number; from: string }>;
}

/** Starts replicas (each knowing every node's region, each with its policy) and their SyncNodes on loopback. */
async function startNodes(
  t: Test,
  specs: readonly NodeSpec[],
  options: Partial<Omit<SyncOptions, 'replica' | 'peers'>> = {},
  start = true,
): Promise<PolicyTestNode[]> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-sync-policy-'));
  const servers = await Promise.all(
    specs.map(
      () =>
        new Promise<Server>((resolve) => {
          const server = createServer((_req, res) => res.writeHead(404).end());
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as AddressInfo).port);
  const peers: PeerConfig[] = specs.map((spec, i) => ({ node: spec.id, region: spec.region, url: `ws://127.0.0.1:${ports[i]}/v1/replicate` }));
  const nodes: PolicyTestNode[] = [];
  for (const [i, spec] of specs.entries()) {
    const replica = await Replica.open({
      path: join(dir, spec.id),
      node: spec.id,
      region: spec.region,
      durability: 'os',
      peers: specs.map(({ id, region }) => ({ node: id, region })),
      ...(spec.policy === null ? {} : { policy: parsePolicy(spec.policy, `${spec.id}.yaml`) }),
    });
    await spec.prepare?.(replica);
    const events: Array<Record<string, unknown>> = [];
    const installed: Array<{ version: number; from: string }> = [];
    const sync = new SyncNode({
      cluster: 'test',
      secret,
      pingIntervalMs: 100,
      handshakeTimeoutMs: 1000,
      ...options,
      replica,
      peers,
      log: (event) => events.push(event),
      onPolicy: (event) => installed.push(event),
    });
    const node: PolicyTestNode = { id: spec.id, region: spec.region, replica, sync, port: ports[i]!, events, installed };
    servers[i]!.on('upgrade', (req, socket, head) => node.sync.handleUpgrade(req, socket, head));
    nodes.push(node);
  }
  if (start) for (const node of nodes) node.sync.start();
  t.teardown(async () => {
    for (const [i, node] of nodes.entries()) {
      await node.sync.close();
      await node.replica.close();
      servers[i]!.closeAllConnections();
      await new Promise((resolve) => servers[i]!.close(resolve));
    }
    await rm(dir, { recursive: true, force: true });
  });
  return nodes;
}

function link(node: PolicyTestNode, peer: string): LinkStatus {
  return node.sync.status().links.find((l) => l.peer === peer)!;
}

async function auditOf(node: PolicyTestNode, kind?: AuditEntry['kind']): Promise<AuditEntry[]> {
  const entries = await node.replica.audit({ limit: 10_000 });
  return kind === undefined ? entries : entries.filter((entry) => entry.kind === kind);
}

async function keys(node: PolicyTestNode, dataset: string): Promise<string[]> {
  return (await node.replica.list(dataset, { limit: 1000 })).items.map((item) => item.key);
}

/** Polls `check`; on a timeout the assertion message carries `explain()`. */
async function until(t: Test, check: () => Promise<boolean> | boolean, what: string, explain: () => unknown = () => '', timeoutMs = 15_000): Promise<boolean> {
  const ok = await eventually(check, timeoutMs);
  t.ok(ok, ok ? what : `${what}: ${JSON.stringify(await explain())}`);
  return ok;
}

t.test('(a) a newer enforced version is pushed to a peer on connect, and a version installed later reaches every peer', async (t) => {
  const [west, central, us] = (await startNodes(t, [
    { id: 'eu-west-1', region: 'eu-west', policy: policyText(2, ['eu-west']) },
    { id: 'eu-central-1', region: 'eu-central', policy: policyText(1, everywhere) },
    { id: 'us-east-1', region: 'us-east', policy: null },
  ])) as [PolicyTestNode, PolicyTestNode, PolicyTestNode];
  // A version is enforced as soon as it is committed; `onPolicy` follows once stored data is re-judged.
  await until(
    t,
    () => central.installed.length > 0 && us.installed.length > 0,
    'both peers install v2 from eu-west',
    () => [central.replica.policy?.version, us.replica.policy?.version, central.events.filter((e) => String(e.event).startsWith('policy'))],
  );
  t.same([central.replica.policy?.version, us.replica.policy?.version], [2, 2], 'and enforce it');
  t.equal(central.replica.policy?.canonical, west.replica.policy?.canonical, 'the same policy, not just the same number');
  // eu-central may pass v2 on to us-east before eu-west's own frame arrives there: either may be first.
  t.same(central.installed, [{ version: 2, from: 'eu-west-1' }], 'eu-central installed v2 once, from eu-west');
  t.equal(us.installed.length, 1, 'us-east, which had no policy, installed v2 once, though two peers may send it');
  t.equal(us.installed[0]?.version, 2);
  t.equal((await auditOf(us, 'policy-stored')).length, 1, 'and stored it once');
  t.same(
    (await central.replica.policyHistory()).map((r) => [r.version, r.source]),
    [
      [1, 'config'],
      [2, 'peer:eu-west-1'],
    ],
    'eu-central keeps v1 in its history',
  );
  t.same(
    (await auditOf(central)).slice(2).map((e) => [e.kind, e.details.version, e.details.source]),
    [
      ['policy-stored', 2, 'peer:eu-west-1'],
      ['policy-activated', 2, 'peer:eu-west-1'],
    ],
    'eu-central audits the new version',
  );
  await until(t, () => link(west, 'eu-central-1').peerPolicy?.version === 2 && link(central, 'eu-west-1').state === 'open', 'the link shows the peer on v2');

  // Enforced, not just stored: v2 keeps orders in eu-west.
  const refused = await central.replica.put('orders', 'o-central', { v: 1 }).catch((error: unknown) => error);
  t.ok(isTesseraError(refused, 'ERR_POLICY_DENIED'), 'eu-central refuses an order under v2');
  await west.replica.put('orders', 'o-west', { v: 1 });
  await west.replica.put('catalog', 'c-west', { v: 1 });
  await until(
    t,
    async () => (await central.replica.get('catalog', 'c-west')) !== undefined && (await us.replica.get('catalog', 'c-west')) !== undefined,
    'catalog reaches both peers',
  );
  t.equal(await central.replica.get('orders', 'o-west'), undefined, 'the order written before it did not');
  t.equal(await us.replica.get('orders', 'o-west'), undefined);

  // v3 (orders everywhere) installed on us-east through the replica, announced with policyChanged.
  await us.replica.installPolicy(parsePolicy(policyText(3, everywhere), 'v3.yaml'), 'enforce', 'api');
  us.sync.policyChanged();
  await until(
    t,
    () => west.installed.length > 0 && central.installed.length > 1,
    'v3 reaches both peers',
    () => [west.replica.policy?.version, central.replica.policy?.version],
  );
  t.same([west.replica.policy?.version, central.replica.policy?.version], [3, 3], 'and both enforce it');
  t.same(
    west.installed.map((e) => e.version),
    [3],
    'eu-west installed v3 once (from us-east, or from eu-central which had it first)',
  );
  t.same(
    (await auditOf(west, 'policy-activated')).map((e) => e.details.version),
    [2, 3],
    'and audited it once',
  );
  // v3 opens orders to every region: eu-west, which held the order, sends it (a backfill, once).
  await until(
    t,
    async () => (await central.replica.get('orders', 'o-west')) !== undefined && (await us.replica.get('orders', 'o-west')) !== undefined,
    'the order v2 kept in eu-west reaches the regions v3 opens',
  );
  t.ok(await central.replica.put('orders', 'o-central', { v: 2 }), 'eu-central may now write orders');
  const statuses = [west, central, us].flatMap((node) => node.sync.status().links.map((l) => [node.id, l.peer, l.peerPolicy?.version]));
  await until(
    t,
    () => [west, central, us].every((node) => node.sync.status().links.every((l) => l.state === 'open' && l.peerPolicy?.version === 3)),
    'every link knows its peer is on v3',
    () => statuses,
  );
});

t.test('regression: versions that arrive at once are installed one at a time, in order; a version is stored once', async (t) => {
  // Found by (a): two peers sending one version at once made a replica store and activate it twice, and an
  // older version whose install started before a newer one finished was enforced after it (a policy that went
  // backwards). Installs are now serialized.
  const [node] = (await startNodes(t, [{ id: 'eu-west-1', region: 'eu-west', policy: policyText(1, everywhere) }], {}, false)) as [PolicyTestNode];
  const v = (version: number) => parsePolicy(policyText(version, everywhere), `v${version}.yaml`);
  const [newer, older] = await Promise.allSettled([
    node.replica.installPolicy(v(3), 'enforce', 'peer:a'),
    node.replica.installPolicy(v(2), 'enforce', 'peer:b'),
  ]);
  t.equal(newer.status, 'fulfilled', 'v3 is installed');
  t.ok(older.status === 'rejected' && isTesseraError(older.reason, 'ERR_POLICY_CONFLICT'), 'v2, older than v3 by the time it is judged, is refused');
  t.equal(node.replica.policy?.version, 3, 'v3 stays enforced');
  const [first, second] = await Promise.all([node.replica.installPolicy(v(4), 'enforce', 'peer:a'), node.replica.installPolicy(v(4), 'enforce', 'peer:b')]);
  t.ok(first !== null && second === null, 'the second install of v4 changes nothing');
  t.same(
    (await auditOf(node)).slice(2).map((e) => [e.kind, e.details.version]),
    [
      ['policy-stored', 3],
      ['policy-activated', 3],
      ['policy-stored', 4],
      ['policy-activated', 4],
    ],
    'each version stored and activated once',
  );
  t.same(
    (await node.replica.policyHistory()).map((r) => [r.version, r.source]),
    [
      [1, 'config'],
      [3, 'peer:a'],
      [4, 'peer:a'],
    ],
  );
});

t.test(
  '(b) a receiver refuses a batch its policy forbids, audits it and tells the sender, which sends everything else and not the refused entries again',
  async (t) => {
    // Both run version 2, but the texts differ (two rollouts of one version number): eu-west lets orders go to
    // eu-central, eu-central's own v2 keeps them in eu-west. eu-central's receiver check is what stops them.
    const [west, central] = (await startNodes(
      t,
      [
        { id: 'eu-west-1', region: 'eu-west', policy: policyText(2, everywhere) },
        { id: 'eu-central-1', region: 'eu-central', policy: policyText(2, ['eu-west']) },
      ],
      {},
      false,
    )) as [PolicyTestNode, PolicyTestNode];
    for (let i = 0; i < 5; i++) await west.replica.put('catalog', `c${i}`, { v: i });
    for (let i = 0; i < 3; i++) await west.replica.put('orders', `o${i}`, { v: i });
    west.sync.start();
    central.sync.start();
    await until(
      t,
      async () => (await keys(central, 'catalog')).length === 5,
      'the catalog reaches eu-central',
      () => [link(west, 'eu-central-1'), keys(central, 'catalog')],
    );
    t.same(await keys(central, 'orders'), [], 'no order was applied');
    const rejected = await auditOf(central, 'rejected');
    t.equal(rejected.length, 1, 'one refusal audited');
    t.match(
      rejected[0]?.details,
      { from: 'eu-west', count: 3, batch: 8, datasets: ['orders'], reasons: ['placement'] },
      'the refused batch: 3 of 8 entries, orders, by placement',
    );
    t.equal((rejected[0]?.details.docs as string[] | undefined)?.length, 3, 'the refused documents by digest');
    t.notOk(JSON.stringify(rejected).includes('"o0"') || JSON.stringify(rejected).match(/"o\d"/), 'not by key');
    t.equal(link(central, 'eu-west-1').policy.rejectedHere, 3, 'the receiver counts the refused entries');
    await until(
      t,
      () => link(west, 'eu-central-1').policy.rejectedByPeer === 3,
      'the sender was told with a reject frame',
      () => link(west, 'eu-central-1'),
    );
    t.ok(
      west.events.some((e) => e.event === 'policy-rejected-by-peer' && e.entries === 3),
      'and logged it',
    );

    // More traffic: the new catalog document and the new order go; the three refused orders are not sent again.
    await west.replica.put('catalog', 'c5', { v: 5 });
    await west.replica.put('orders', 'o3', { v: 3 });
    await until(t, async () => (await keys(central, 'catalog')).length === 6, 'a later catalog document arrives');
    await until(
      t,
      () => link(central, 'eu-west-1').policy.rejectedHere === 4,
      'the new order is refused on its own',
      () => link(central, 'eu-west-1').policy,
    );
    await west.replica.put('catalog', 'c6', { v: 6 });
    await until(t, async () => (await keys(central, 'catalog')).length === 7, 'and the link goes on delivering');
    t.equal(link(central, 'eu-west-1').policy.rejectedHere, 4, 'the refused entries were never offered again');
    t.equal(link(west, 'eu-central-1').policy.rejectedByPeer, 4);
    t.same(
      (await auditOf(central, 'rejected')).map((e) => e.details.count),
      [3, 1],
      'two refusals audited, one per refused batch',
    );
    t.same(await keys(central, 'orders'), [], 'still no order in eu-central');
    t.same(
      await Promise.all(['c0', 'c5', 'c6'].map(async (key) => (await central.replica.get('catalog', key))?.value)),
      [{ v: 0 }, { v: 5 }, { v: 6 }],
      'the allowed documents converged',
    );
  },
);

t.test('(b) a peer that does not take our newer version is not sent its refused entries over and over', async (t) => {
  // eu-west enforces v2 (orders everywhere). eu-central enforces v1 (orders in eu-west only) and already stores
  // another v2 (a draft in shadow), so it refuses eu-west's v2: versions are immutable. Its receiver check
  // refuses the orders; eu-west must not resend them on every reconnect in the belief that eu-central will
  // soon run v2.
  const draft = policyText(2, ['eu-west'], 'rules:\n  - name: draft\n    deny: "\'draft\' in doc.tags"\n');
  const [west, central] = (await startNodes(
    t,
    [
      { id: 'eu-west-1', region: 'eu-west', policy: policyText(2, everywhere) },
      {
        id: 'eu-central-1',
        region: 'eu-central',
        policy: policyText(1, ['eu-west']),
        prepare: async (replica) => void (await replica.installPolicy(parsePolicy(draft, 'draft.yaml'), 'shadow', 'test')),
      },
    ],
    {},
    false,
  )) as [PolicyTestNode, PolicyTestNode];
  for (let i = 0; i < 3; i++) await west.replica.put('catalog', `c${i}`, { v: i });
  for (let i = 0; i < 2; i++) await west.replica.put('orders', `o${i}`, { v: i });
  west.sync.start();
  central.sync.start();
  await until(
    t,
    async () => (await keys(central, 'catalog')).length === 3,
    'the catalog reaches eu-central',
    () => [link(west, 'eu-central-1'), link(central, 'eu-west-1')],
  );
  await until(
    t,
    () => central.events.some((e) => e.event === 'policy-refused' && e.reason === 'ERR_POLICY_CONFLICT'),
    "eu-central refused eu-west's v2 (it stores another v2)",
  );
  t.equal(central.replica.policy?.version, 1, 'eu-central still enforces v1');
  // Give a resend loop time to show: many ping intervals with the link open.
  const refusalsNow = (await auditOf(central, 'rejected')).length;
  await west.replica.put('catalog', 'c3', { v: 3 });
  await until(t, async () => (await keys(central, 'catalog')).length === 4, 'later documents arrive');
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  const refusals = (await auditOf(central, 'rejected')).length;
  t.ok(refusals <= 2, `the orders were refused ${refusals} times (at most once while eu-west expects eu-central to take v2, once after)`);
  t.equal(refusals, refusalsNow, 'no refusal since the catalog converged');
  t.equal(link(central, 'eu-west-1').state, 'open', 'the link stays up');
  t.same(await keys(central, 'orders'), [], 'no order in eu-central');
});

t.test('(b) a document released from quarantine before the link opens reaches the peer without a refusal', async (t) => {
  // The sender judges each log entry by the document as it stands now (released), so it sends the early
  // entries too; the receiver must judge what it would hold, not each step on the way there.
  const text = policyText(1, everywhere, 'rules:\n  - name: reviewed documents leave quarantine\n    release: "\'reviewed\' in doc.tags"\n');
  const [west, central] = (await startNodes(
    t,
    [
      { id: 'eu-west-1', region: 'eu-west', policy: text },
      { id: 'eu-central-1', region: 'eu-central', policy: text },
    ],
    {},
    false,
  )) as [PolicyTestNode, PolicyTestNode];
  await west.replica.put('catalog', 'q1', { draft: 1 }, { tags: ['quarantine'] });
  await west.replica.map('catalog', 'q1').set('more', 2);
  await west.replica.tag('catalog', 'q1', { add: ['reviewed'] });
  await west.replica.put('catalog', 'c1', { v: 1 });
  west.sync.start();
  central.sync.start();
  await until(
    t,
    async () => (await central.replica.get('catalog', 'q1'))?.tags.includes('reviewed') === true && (await central.replica.get('catalog', 'c1')) !== undefined,
    'the released document and the other document arrive',
    () => [link(central, 'eu-west-1'), auditOf(central, 'rejected')],
  );
  t.same((await central.replica.get('catalog', 'q1'))?.value, { draft: 1, more: 2 }, 'whole');
  t.same(await auditOf(central, 'rejected'), [], 'no refusal was audited (no false violation)');
  t.equal(link(central, 'eu-west-1').policy.rejectedHere, 0);
  t.equal(link(west, 'eu-central-1').policy.rejectedByPeer, 0);
});

t.test('(a) documents a new version opens to a peer are not refused by the peer while it installs that version', async (t) => {
  // The sender enforces v2 first and offers it; the state entries v2 makes it send follow the policy frame on
  // the same link. The peer must judge them by v2, not by v1 while v2 is still being installed (a refusal under
  // v1 was final: the sender skipped those entries for good, and the peer never got the documents).
  const v1 = policyText(1, everywhere, '').replace('datasets:\n', 'datasets:\n  drafts: { placement: local }\n');
  const v2 = v1.replace('version: 1', 'version: 2').replace('drafts: { placement: local }', 'drafts: { placement: global }');
  const [west, central] = (await startNodes(t, [
    { id: 'eu-west-1', region: 'eu-west', policy: v1 },
    { id: 'eu-central-1', region: 'eu-central', policy: v1 },
  ])) as [PolicyTestNode, PolicyTestNode];
  for (let i = 0; i < 20; i++) await west.replica.put('drafts', `d${i}`, { v: i });
  await west.replica.put('catalog', 'c0', { v: 0 });
  await until(t, async () => (await central.replica.get('catalog', 'c0')) !== undefined, 'the link works under v1');
  t.same(await keys(central, 'drafts'), [], 'drafts are local under v1');
  await west.replica.installPolicy(parsePolicy(v2, 'v2.yaml'), 'enforce', 'api');
  west.sync.policyChanged();
  await until(
    t,
    async () => (await keys(central, 'drafts')).length === 20,
    'the drafts v2 opens reach eu-central',
    async () => [link(central, 'eu-west-1').policy, await auditOf(central, 'rejected')],
  );
  t.same(await auditOf(central, 'rejected'), [], 'eu-central refused nothing');
  t.equal(link(west, 'eu-central-1').policy.rejectedByPeer, 0);
});

t.test("(c) entries the sender's policy keeps from a peer are counted and audited in aggregate, never by key", async (t) => {
  const [west, us] = (await startNodes(
    t,
    [
      { id: 'eu-west-1', region: 'eu-west', policy: policyText(1, ['eu-west', 'eu-central']) },
      { id: 'us-east-1', region: 'us-east', policy: policyText(1, ['eu-west', 'eu-central']) },
    ],
    { deniedAuditIntervalMs: 300 },
  )) as [PolicyTestNode, PolicyTestNode];
  await until(t, () => link(west, 'us-east-1').state === 'open', 'the link is open');
  for (let i = 0; i < 4; i++) await west.replica.put('orders', `secret-order-${i}`, { v: `secret-value-${i}` });
  await west.replica.map('orders', 'secret-order-0').set('more', 1);
  await west.replica.put('catalog', 'c0', { v: 0 });
  await until(t, async () => (await us.replica.get('catalog', 'c0')) !== undefined, 'the catalog document reaches us-east');
  await until(
    t,
    () => link(west, 'us-east-1').policy.deniedEntries === 5,
    'five order entries (four puts, one field set) were kept from us-east',
    () => link(west, 'us-east-1').policy,
  );
  t.equal(link(west, 'us-east-1').policy.rejectedByPeer, 0, 'us-east never had to refuse anything');
  t.equal(link(us, 'eu-west-1').policy.rejectedHere, 0);
  await until(t, async () => (await auditOf(west, 'send-denied')).length === 1, 'the denied sends are audited in one entry');
  t.same(
    (await auditOf(west, 'send-denied'))[0]?.details,
    { peer: 'us-east-1', region: 'us-east', datasets: { orders: 5 } },
    'per peer and dataset, with a count',
  );
  // A later denial goes into a later entry; an interval without denials adds none.
  await west.replica.put('orders', 'secret-order-9', { v: 'secret-value-9' });
  await until(t, async () => (await auditOf(west, 'send-denied')).length === 2, 'the next interval audits the next denial');
  t.same((await auditOf(west, 'send-denied'))[1]?.details.datasets, { orders: 1 });
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  t.equal((await auditOf(west, 'send-denied')).length, 2, 'intervals without denials add no entry');
  t.same(await keys(us, 'orders'), [], 'no order reached us-east');
  const text = JSON.stringify([await auditOf(west), west.events, west.sync.status()]);
  t.notOk(/secret-(order|value)/.test(text), 'no key or value in the audit log, the log events or the status');
});

t.test('(c) denials not audited yet are audited when replication stops', async (t) => {
  // With the default interval (30 s), a node stopped within it used to drop the denials it had counted.
  const [west, us] = (await startNodes(t, [
    { id: 'eu-west-1', region: 'eu-west', policy: policyText(1, ['eu-west']) },
    { id: 'us-east-1', region: 'us-east', policy: policyText(1, ['eu-west']) },
  ])) as [PolicyTestNode, PolicyTestNode];
  await until(t, () => link(west, 'us-east-1').state === 'open', 'the link is open');
  await west.replica.put('orders', 'o1', { v: 1 });
  await west.replica.put('orders', 'o2', { v: 2 });
  await until(t, () => link(west, 'us-east-1').policy.deniedEntries === 2, 'two entries kept from us-east');
  t.same(await auditOf(west, 'send-denied'), [], 'not audited yet: the interval has not passed');
  await west.sync.close();
  t.same(
    (await auditOf(west, 'send-denied')).map((e) => e.details),
    [{ peer: 'us-east-1', region: 'us-east', datasets: { orders: 2 } }],
    'audited when replication stopped',
  );
  t.ok(us.replica.isOpen);
});

/** Connects to `node` as its peer `as` with a valid handshake; resolves with the socket once welcomed. */
async function impersonate(
  node: PolicyTestNode,
  as: { id: string; region: string },
  policy = { version: 0, hash: '' },
): Promise<{ ws: WebSocket; frames: string[]; closed: Promise<{ code: number; reason: string }> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${node.port}/v1/replicate`);
  ws.on('error', () => undefined);
  const frames: string[] = [];
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await new Promise<void>((resolve, reject) => {
    ws.on('message', (data: Buffer) => {
      const frame = decodeFrame(data);
      frames.push(frame.t);
      if (frame.t === 'challenge') {
        const nonce = newNonce();
        ws.send(
          encodeFrame({
            t: 'hello',
            v: protocolVersion,
            cluster: 'test',
            node: as.id,
            region: as.region,
            policy,
            nonce,
            proof: helloProof(secret, 'test', as.id, as.region, frame.nonce, nonce),
          }),
        );
      } else if (frame.t === 'welcome') {
        resolve();
      } else if (frame.t === 'refuse') {
        reject(new Error('refused'));
      }
    });
  });
  return { ws, frames, closed };
}

t.test('(d) malformed acknowledgements and policy frames close the link or are ignored with a reason; nothing is installed, nothing crashes', async (t) => {
  // us-east-1 accepts eu-west-1 (the lower id dials); the test plays eu-west-1, whose own replication is stopped.
  const [us, west] = (await startNodes(t, [
    { id: 'us-east-1', region: 'us-east', policy: policyText(1, everywhere) },
    { id: 'eu-west-1', region: 'eu-west', policy: policyText(1, everywhere) },
  ])) as [PolicyTestNode, PolicyTestNode];
  await west.sync.close();
  await us.replica.put('catalog', 'secret-key-1', { v: 'secret-value-1' });
  const canonical = us.replica.policy!.canonical;
  const auditLength = us.replica.auditLength;

  // Frames that do not decode: the link closes as a protocol error (4400), with the reason logged by code.
  const malformed: Array<[string, Record<string, unknown>]> = [
    ['a reject frame (protocol 1; refusals ride acknowledgements now)', { t: 'reject', id: 1, last: 1, seqs: [1], code: 'x' }],
    ['ack with a string id', { t: 'ack', id: 'one', last: 1, refused: [1] }],
    ['ack refusing seq 0', { t: 'ack', id: 1, last: 1, refused: [0] }],
    ['ack refusing a negative seq', { t: 'ack', id: 1, last: 1, refused: [-5] }],
    ['ack with refusals not a list', { t: 'ack', id: 1, last: 1, refused: 7 }],
    ['ack refusing too many seqs', { t: 'ack', id: 1, last: 1, refused: Array.from({ length: 2_001 }, (_, i) => i + 1) }],
    ['ack with an empty refusal list (one form per frame)', { t: 'ack', id: 1, last: 1, refused: [] }],
    ['policy version 0', { t: 'policy', version: 0, text: policyText(0, everywhere) }],
    ['policy version negative', { t: 'policy', version: -3, text: policyText(3, everywhere) }],
    ['policy version a string', { t: 'policy', version: '9', text: policyText(9, everywhere) }],
    ['policy text not a string', { t: 'policy', version: 9, text: { version: 9 } }],
    ['policy text missing', { t: 'policy', version: 9 }],
    ['policy text over the limit', { t: 'policy', version: 9, text: `version: 9\n#${'x'.repeat(policyBytesMax)}` }],
  ];
  for (const [what, frame] of malformed) {
    const peer = await impersonate(us, west);
    peer.ws.send(encodeCanonical(frame));
    const { code } = await peer.closed;
    t.equal(code, 4400, `${what}: closed as a protocol error`);
  }
  t.ok(
    us.events.filter((e) => e.event === 'link-error' && e.reason === 'malformed frame: ERR_FRAME_INVALID').length >= malformed.length,
    'each logged as a malformed frame',
  );

  // Well-formed policy frames whose policy is not acceptable: ignored, the reason logged; the link stays open.
  const refusedPolicies: Array<[string, number, string, string]> = [
    ['a text that does not parse', 9, 'version: 9\nregions: [not, a, map\n', 'ERR_POLICY_INVALID'],
    ['a rule that does not type-check', 9, policyText(9, everywhere, 'rules:\n  - name: r\n    deny: "doc.nothing"\n'), 'ERR_POLICY_RULE_INVALID'],
    ['a text of another version than the frame', 9, policyText(8, everywhere), 'ERR_POLICY_INVALID'],
  ];
  const peer = await impersonate(us, west);
  for (const [what, version, text, code] of refusedPolicies) {
    const before = us.events.filter((e) => e.event === 'policy-refused').length;
    peer.ws.send(encodeFrame({ t: 'policy', version, text }));
    await until(t, () => us.events.filter((e) => e.event === 'policy-refused').length === before + 1, `${what}: refused`);
    t.match(us.events.filter((e) => e.event === 'policy-refused').at(-1), { version, from: 'eu-west-1', reason: code }, `${what}: logged with its code`);
  }
  // An older or equal version is ignored without a word.
  peer.ws.send(encodeFrame({ t: 'policy', version: 1, text: policyText(1, ['eu-west']) }));
  // An acknowledgement, with refusals, of a batch this node never sent: the link closes, nothing else changes.
  peer.ws.send(encodeFrame({ t: 'ack', id: 99, last: 99, refused: [1, 2, 3] }));
  const { code } = await peer.closed;
  t.equal(code, 4400, 'an acknowledgement of a batch never sent closes the link as a protocol error');
  t.equal(us.replica.policy?.version, 1, 'nothing was installed');
  t.equal(us.replica.policy?.canonical, canonical, 'the enforced policy is unchanged');
  t.same(
    (await us.replica.policyHistory()).map((r) => r.version),
    [1],
    'nothing was stored',
  );
  t.equal(us.replica.auditLength, auditLength, 'nothing was audited');
  t.ok(us.replica.isOpen, 'the node is still up');
  t.same((await us.replica.get('catalog', 'secret-key-1'))?.value, { v: 'secret-value-1' }, 'and serves its data');
  t.notOk(/secret-(key|value)/.test(JSON.stringify([us.events, us.sync.status()])), 'no key or value in the log events or the status');
});
