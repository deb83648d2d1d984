// Goal: the delta log is bounded: entries every peer acknowledged are truncated, and past the size bound the
// oldest go even if a peer lags; that peer is then caught up from document states (deletes included) and
// streaming resumes after the catch-up.
// Method: two in-process nodes with a 50-entry log bound; b1's replication is stopped while a1 writes 300
// documents and deletes 10; a1 truncates past b1's cursor; b1's replication restarts; compare.
import t from 'tap';
import { SyncNode } from '@tessera/sync';
import { eventually, lastPeers, secret, startCluster } from './cluster.js';

t.test('a peer behind the retained log catches up from document states, then streams', async (t) => {
  const options = { logEntriesMax: 50, retentionIntervalMs: 100 };
  const [a, b] = await startCluster(
    t,
    [
      { id: 'a1', region: 'eu-west' },
      { id: 'b1', region: 'us-east' },
    ],
    options,
  );
  t.ok(await eventually(() => a!.sync.status().links.every((l) => l.state === 'open')));
  await a!.replica.put('docs', 'before', { ok: true });
  t.ok(await eventually(async () => (await b!.replica.get('docs', 'before')) !== undefined), 'streaming works before the outage');
  await b!.sync.close();
  for (let i = 0; i < 300; i++) await a!.replica.put('docs', `d${i}`, { i });
  for (let i = 0; i < 10; i++) await a!.replica.delete('docs', `d${i}`);
  await a!.replica.delete('docs', 'before');
  const cursor = (await a!.replica.cursors()).b1 ?? 0;
  t.ok(await eventually(() => a!.replica.logFloor > cursor), `the size bound truncated a1's log past b1's cursor ${cursor} (floor ${a!.replica.logFloor})`);
  t.ok(await eventually(() => a!.replica.logLength <= 50), `a1's log is cut to its bound of 50 entries at the next retention tick (${a!.replica.logLength})`);

  b!.sync = new SyncNode({ cluster: 'test', secret, pingIntervalMs: 200, handshakeTimeoutMs: 1000, ...options, replica: b!.replica, peers: lastPeers });
  b!.sync.start();
  // a1's reconnect back-off may have grown to its 10 s ceiling while b1 was away: allow for it.
  const caughtUp = await eventually(async () => (await b!.replica.list('docs', { limit: 1000 })).items.length === 290, 45_000);
  t.ok(caughtUp, 'b1 holds the 290 live documents');
  t.equal(await b!.replica.get('docs', 'd3'), undefined, 'a document deleted during the outage is deleted on b1 too');
  t.equal(await b!.replica.get('docs', 'before'), undefined, 'including one b1 had held');
  t.same((await b!.replica.get('docs', 'd299'))?.value, { i: 299 });
  t.ok(a!.sync.status().links[0]!.catchUps >= 1, 'the link ran a state catch-up');

  await a!.replica.put('docs', 'after', { streamed: true });
  t.ok(await eventually(async () => (await b!.replica.get('docs', 'after')) !== undefined, 20_000), 'streaming resumes after the catch-up');
  // With every entry acknowledged, retention truncates the log to its head.
  t.ok(
    await eventually(
      async () => a!.replica.logFloor >= ((await a!.replica.cursors()).b1 ?? 0) && ((await a!.replica.cursors()).b1 ?? 0) >= a!.replica.committedSeq,
      20_000,
    ),
    'acknowledged entries are truncated',
  );
});
