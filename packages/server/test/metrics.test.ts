// Goal: /metrics exposes what an operator needs — replication lag per link, backlog, traffic per link and
// dataset, cadence window, rtt, clock skew, commit-to-visible lag, conflicts per dataset and kind, policy
// denials, read and write latency, HTTP requests — and no label ever carries a document's key, value or tag.
// Method: two in-process nodes replicating over real WebSockets (the sync tests' helper); documents whose keys,
// values and tags carry marker strings, a concurrent overwrite (a conflict), a local dataset the policy keeps
// home; then /metrics of each node is scraped through the HTTP API and checked line by line.
import t from 'tap';
import { parsePolicy } from '@tessera/core';
import { createHttpHandler, createMetrics, documentCounts } from '@tessera/server';
import { startCluster, eventually } from '../../sync/test/cluster.js';
import { bearer, testCredentials } from './helpers/auth.js';

const credentials = testCredentials();

const policy = parsePolicy(
  `version: 1
regions:
  eu-west: { jurisdiction: eu }
  us-east: { jurisdiction: us }
datasets:
  items: { type: map, placement: global }
  secrets: { type: map, placement: local }
`,
  'metrics test policy',
);

async function scrape(handler: ReturnType<typeof createHttpHandler>): Promise<string> {
  const { createServer } = await import('node:http');
  const server = createServer(handler.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  try {
    const response = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: bearer(credentials.admin) });
    t.equal(response.status, 200);
    t.match(response.headers.get('content-type'), /^text\/plain/);
    return await response.text();
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

/** The value of a sample line `name{labels} value` whose labels include every pair of `labels`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

t.test('metrics of two replicating nodes, and no key, value or tag in any label', async (t) => {
  const [west, us] = await startCluster(t, [
    { id: 'eu-west-1', region: 'eu-west' },
    { id: 'us-east-1', region: 'us-east' },
  ]);
  for (const node of [west!, us!]) await node.replica.installPolicy(policy, 'enforce', 'test');
  const metrics = [west!, us!].map((node) => createMetrics({ replica: node.replica, replication: node.sync, documents: documentCounts(node.replica, 0) }));
  t.teardown(() => metrics.forEach((m) => m.close()));
  const handlers = [west!, us!].map((node, i) =>
    createHttpHandler({
      replica: node.replica,
      node: { id: node.id, region: node.region },
      access: { tokens: credentials.tokens },
      replication: node.sync,
      metrics: metrics[i],
    }),
  );

  for (let i = 0; i < 20; i++) {
    await west!.replica.put('items', `marker-key-${i}`, { field: `marker-value-${i}` }, { tags: ['marker-tag'] });
  }
  await west!.replica.put('secrets', 'marker-secret-key', { v: 'marker-secret-value' });
  await west!.replica.put('items', 'marker-held', { v: 'marker-held-value' }, { tags: ['quarantine'] });
  await west!.replica.get('items', 'marker-key-1');
  // A concurrent overwrite of the same field of a document both hold: both sides record a conflict. (Created on
  // one side first: a concurrent creation would also send the merged facts back as a state, as it should.)
  await west!.replica.put('items', 'both', { f: 'marker-first' });
  t.ok(await eventually(async () => (await us!.replica.get('items', 'both')) !== undefined), 'both hold the document');
  await west!.replica.put('items', 'both', { f: 'marker-west' });
  await us!.replica.put('items', 'both', { f: 'marker-us' });
  t.ok(
    await eventually(
      async () => (await us!.replica.get('items', 'marker-key-19')) !== undefined && (await west!.replica.conflicts({ dataset: 'items' })).length > 0,
    ),
    'replicated',
  );

  const westText = await scrape(handlers[0]!);
  const usText = await scrape(handlers[1]!);
  for (const [text, self, peer] of [
    [westText, 'eu-west-1', 'us-east-1'],
    [usText, 'us-east-1', 'eu-west-1'],
  ] as const) {
    t.equal(sample(text, 'tessera_link_up', { peer, node: self }), 1, `${self}: the link to ${peer} is up`);
    t.ok(sample(text, 'tessera_replication_lag_seconds', { peer }) !== undefined, 'lag per link');
    t.ok(sample(text, 'tessera_replication_backlog_entries', { peer }) !== undefined, 'backlog per link');
    t.ok(sample(text, 'tessera_link_window_batches', { peer })! >= 1, 'the cadence window');
    t.ok(sample(text, 'tessera_operation_duration_seconds_count', { op: 'write', dataset: 'items' })! >= 1, 'write latency histogram');
  }
  t.equal(sample(westText, 'tessera_replication_sent_entries_total', { peer: 'us-east-1', dataset: 'items' }), 22, 'entries sent per link and dataset');
  t.ok(sample(westText, 'tessera_replication_sent_bytes_total', { peer: 'us-east-1', dataset: 'items' })! > 20 * 20, 'bytes sent per link and dataset');
  t.equal(
    sample(westText, 'tessera_replication_sent_entries_total', { peer: 'us-east-1', dataset: 'secrets' }),
    undefined,
    'nothing of the local dataset was sent',
  );
  t.equal(
    sample(westText, 'tessera_policy_denied_entries_total', { peer: 'us-east-1' }),
    2,
    'the denied sends are counted (the local document and the quarantined one)',
  );
  t.equal(sample(usText, 'tessera_replication_received_entries_total', { peer: 'eu-west-1', dataset: 'items' }), 22, 'entries received per link and dataset');
  t.equal(
    sample(usText, 'tessera_replication_visible_lag_seconds_count', { peer_region: 'eu-west', dataset: 'items' }),
    22,
    'commit-to-visible lag of every applied entry',
  );
  t.ok(sample(westText, 'tessera_operation_duration_seconds_count', { op: 'read', dataset: 'items' })! >= 1, 'read latency histogram');
  t.ok(
    (sample(westText, 'tessera_conflicts_total', { dataset: 'items', kind: 'lww-overwrite' }) ??
      sample(westText, 'tessera_conflicts_total', { dataset: 'items' }))! >= 1,
    'conflicts per dataset and kind',
  );
  t.equal(sample(westText, 'tessera_policy_version', { mode: 'enforce' }), 1);
  t.equal(sample(westText, 'tessera_quarantined_documents', { dataset: 'items' }), 1, 'quarantined documents per dataset');
  t.equal(
    sample(westText, 'tessera_documents', { dataset: 'items' }),
    22,
    `documents held per dataset: ${westText
      .split('\n')
      .filter((l) => l.startsWith('tessera_documents'))
      .join(' | ')}`,
  );
  t.ok(
    await eventually(async () => sample(await scrape(handlers[0]!), 'tessera_clock_skew_seconds', { peer: 'us-east-1' }) !== undefined, 5_000),
    'clock skew from pings',
  );
  const after = await scrape(handlers[0]!);
  t.ok(
    sample(after, 'tessera_http_request_duration_seconds_count', { route: '/metrics', method: 'GET', status: '200' })! >= 1,
    'HTTP requests by route pattern',
  );

  // Naming (Prometheus): every counter ends in _total, and none of Tessera's other metrics do (prom-client's own
  // nodejs_active_handles_total is a gauge); cumulative link counts are counters.
  const types = new Map([...westText.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  for (const [name, type] of types) {
    if (type === 'counter') t.match(name, /_total$/, `counter ${name} ends in _total`);
    else if (name.startsWith('tessera_')) t.notMatch(name, /_total$/, `${type} ${name} does not end in _total`);
  }
  for (const name of [
    'tessera_replication_sent_entries_total',
    'tessera_replication_received_bytes_total',
    'tessera_link_reconnects_total',
    'tessera_link_sent_wire_bytes_total',
    'tessera_policy_denied_entries_total',
    'tessera_policy_rejected_entries_total',
    'tessera_conflicts_total',
  ]) {
    t.equal(types.get(name), 'counter', `${name} is a counter`);
  }
  t.equal(types.get('tessera_link_up'), 'gauge');
  // The default process metrics, with the node's labels.
  t.ok(sample(westText, 'process_cpu_user_seconds_total', { node: 'eu-west-1' })! >= 0, 'process CPU');
  t.ok(sample(westText, 'process_resident_memory_bytes')! > 0, 'resident memory');
  t.ok(sample(westText, 'nodejs_eventloop_lag_seconds') !== undefined, 'event-loop lag');

  for (const text of [westText, usText, after]) {
    t.notMatch(text, /marker-/, 'no key, value or tag appears anywhere in the metrics');
  }
});
