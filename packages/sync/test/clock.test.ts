// Goal: a node's wall clock stepping back (an NTP step, a VM restored from a snapshot) neither crashes its
// replication nor stalls it. Found by the simulation (seed 1 with wall-clock link timing): SyncNode fed the
// wall clock to LinkSender, whose step asserts that time never goes backwards.
// Method: two in-process nodes over real WebSockets; node a's injected wall clock jumps back an hour while the
// link carries writes both ways; every write still reaches the other side.
import t from 'tap';
import { eventually, startCluster } from './cluster.js';

t.test('a wall clock that steps back an hour does not break the link', async (t) => {
  let offsetMs = 0;
  const nodes = await startCluster(
    t,
    [
      { id: 'a', region: 'eu-west' },
      { id: 'b', region: 'us-east' },
    ],
    { wallClock: () => Date.now() + offsetMs },
  );
  const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
  await a.replica.put('docs', 'before', { n: 1 });
  t.ok(await eventually(async () => (await b.replica.get('docs', 'before')) !== undefined), 'replicated before the jump');
  offsetMs = -3_600_000;
  for (let i = 0; i < 20; i++) {
    await a.replica.put('docs', `after-${i}`, { n: i });
    await b.replica.put('docs', `back-${i}`, { n: i });
  }
  t.ok(
    await eventually(async () => (await b.replica.get('docs', 'after-19')) !== undefined && (await a.replica.get('docs', 'back-19')) !== undefined),
    'writes on both sides replicate after the clock stepped back',
  );
  const link = a.sync.status().links[0]!;
  t.equal(link.state, 'open', `the link stayed usable (${link.lastError ?? 'no error'})`);
});
