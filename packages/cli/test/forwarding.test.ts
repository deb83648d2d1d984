// Goal: with the direct link between two regions down, changes still arrive through the third region; in a
// healthy full mesh every change is sent once per target (nothing is forwarded).
// Method: three `tessera serve` processes through fault proxies. Healthy: write at eu-west, then read every
// link's counters (entries sent, forwarded, received). Outage: partition eu-west↔us-east (connections refused),
// write at eu-west, wait for us-east to hold everything, check that ap-south forwarded it.
import t from 'tap';
import { api, dump, eventually, linkReport, startTestCluster } from './harness.js';

const regions = ['eu-west', 'us-east', 'ap-south'];

interface Link {
  peer: string;
  state: string;
  sent: { entries: number };
  received: { entries: number };
  forwardedEntries: number;
}
async function links(node: { url: string }): Promise<Link[]> {
  return (await api(node as never, 'GET', '/v1/status')).body.links as Link[];
}

t.test('healthy mesh: each change is sent once per target', async (t) => {
  const cluster = await startTestCluster(t, regions);
  const [euWest, usEast, apSouth] = cluster.nodes;
  t.ok(await eventually(async () => (await Promise.all(cluster.nodes.map(links))).flat().every((l) => l.state === 'open'), 10_000), 'all links open');
  const writes = 200;
  for (let i = 0; i < writes; i++) await api(euWest!, 'PUT', `/v1/kv/profiles/h${i}`, { value: { i } });
  t.ok(
    await eventually(
      async () => Object.keys(await dump(usEast!, 'profiles')).length >= writes && Object.keys(await dump(apSouth!, 'profiles')).length >= writes,
      20_000,
    ),
    'both regions hold every write',
  );
  await new Promise((resolve) => setTimeout(resolve, 2_500)); // a couple of ping rounds: late forwarding would show now
  const fromEu = await links(euWest!);
  for (const peer of [usEast!, apSouth!]) {
    const link = fromEu.find((l) => l.peer === peer.id)!;
    t.ok(link.sent.entries >= writes && link.sent.entries <= writes + 10, `eu-west sent ${link.sent.entries} entries to ${peer.id} (${writes} written)`);
  }
  for (const node of [usEast!, apSouth!]) {
    for (const link of await links(node)) t.equal(link.forwardedEntries, 0, `${node.id} forwarded nothing to ${link.peer}`);
  }
  const usFromAp = (await links(usEast!)).find((l) => l.peer === apSouth!.id)!;
  t.ok(usFromAp.received.entries <= 10, `us-east received ${usFromAp.received.entries} entries from ap-south (no copies of eu-west's writes)`);
});

t.test('direct link down: changes arrive through the third region', async (t) => {
  const cluster = await startTestCluster(t, regions);
  const [euWest, usEast, apSouth] = cluster.nodes;
  t.ok(await eventually(async () => (await Promise.all(cluster.nodes.map(links))).flat().every((l) => l.state === 'open'), 10_000), 'all links open');
  const direct = cluster.layout.proxies.get(`${euWest!.id}>${usEast!.id}`)!;
  direct.partition(true);
  t.ok(
    await eventually(async () => (await links(usEast!)).find((l) => l.peer === euWest!.id)!.state !== 'open', 10_000),
    'us-east sees its link to eu-west down',
  );
  const writes = 100;
  for (let i = 0; i < writes; i++) await api(euWest!, 'PUT', `/v1/kv/profiles/f${i}`, { value: { i } });
  const arrived = await eventually(async () => Object.keys(await dump(usEast!, 'profiles')).filter((k) => k.startsWith('f')).length === writes, 20_000);
  t.ok(arrived, `us-east holds all ${writes} writes without its link to eu-west`);
  if (!arrived) t.comment(await linkReport(cluster.nodes));
  const forwarded = (await links(apSouth!)).find((l) => l.peer === usEast!.id)!.forwardedEntries;
  t.ok(forwarded >= writes, `ap-south forwarded ${forwarded} entries to us-east`);
  direct.heal();
  t.ok(await eventually(async () => (await links(usEast!)).every((l) => l.state === 'open'), 20_000), 'the direct link comes back');
});
