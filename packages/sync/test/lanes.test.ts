// Goal: per-dataset lanes on real links: a high-priority adaptive lane and a low-priority lane on a fixed
// cadence both replicate, each with its own durable cursor, and status shows them.
// Method: two in-process nodes over WebSockets with lanes configured; write to both datasets; check values,
// per-lane cursors and the lane report.
import t from 'tap';
import { eventually, startCluster } from './cluster.js';

t.test('datasets in lanes replicate, each lane with its own cursor', async (t) => {
  const lanes = [
    { id: 'hot', datasets: ['orders'], priority: 0 },
    { id: 'cold', datasets: ['archive'], priority: 2, fixedCadenceMs: 300 },
  ];
  const [a, b] = await startCluster(
    t,
    [
      { id: 'a1', region: 'eu-west' },
      { id: 'b1', region: 'us-east' },
    ],
    { lanes },
  );
  t.ok(await eventually(() => a!.sync.status().links.every((l) => l.state === 'open')), 'link open');
  for (let i = 0; i < 20; i++) {
    await a!.replica.put('orders', `o${i}`, { i });
    await a!.replica.put('archive', `r${i}`, { i });
    await a!.replica.put('profiles', `p${i}`, { i });
  }
  const replicated = await eventually(async () => {
    const counts = await Promise.all(['orders', 'archive', 'profiles'].map(async (d) => (await b!.replica.list(d)).items.length));
    return counts.every((n) => n === 20);
  }, 20_000);
  t.ok(replicated, 'every dataset arrives: its own lane, or the main lane');
  const link = a!.sync.status().links[0]!;
  t.same(
    link.lanes.map((l) => [l.id, l.priority]).sort(),
    [
      ['cold', 2],
      ['hot', 0],
      ['main', 1],
    ],
    'three lanes with their priorities',
  );
  t.equal(link.cadence, 'per lane');
  t.ok(
    await eventually(async () => {
      const cursors = await a!.replica.cursors();
      return (
        (cursors.b1 ?? 0) >= a!.replica.committedSeq &&
        (cursors['b1/hot'] ?? 0) >= a!.replica.committedSeq &&
        (cursors['b1/cold'] ?? 0) >= a!.replica.committedSeq
      );
    }),
    "each lane's durable cursor reaches the head of the log",
  );
  for (const lane of link.lanes) t.ok(lane.sentEntries >= 20, `lane ${lane.id} sent its ${lane.sentEntries} entries`);
});
