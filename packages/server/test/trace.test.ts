// Goal: a write can be followed from its origin to every region by its W3C trace id, and no log line carries a
// key or a value: the HTTP request's `traceparent` (or a new trace) names the write in the request log, the
// batch that replicates it carries the id, and the receiving node logs it when the batch is durable.
// Method: two in-process nodes replicating over real WebSockets; a PUT with a traceparent through the HTTP API
// of one; every log event of both nodes captured.
import t from 'tap';
import { createServer } from 'node:http';
import { createHttpHandler } from '@tessera/server';
import { startCluster, eventually } from '../../sync/test/cluster.js';
import { bearer, testCredentials } from './helpers/auth.js';

const credentials = testCredentials();

t.test("a write's trace id travels from the HTTP request to the batch applied in the other region", async (t) => {
  const events: Array<Record<string, unknown>> = [];
  const [west, us] = await startCluster(
    t,
    [
      { id: 'eu-west-1', region: 'eu-west' },
      { id: 'us-east-1', region: 'us-east' },
    ],
    {
      log: (event) => events.push(event),
    },
  );
  const api = createHttpHandler({
    replica: west!.replica,
    node: { id: west!.id, region: west!.region },
    access: { tokens: credentials.tokens },
    replication: west!.sync,
    log: (event) => events.push(event as Record<string, unknown>),
  });
  const server = createServer(api.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const port = (server.address() as { port: number }).port;

  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const response = await fetch(`http://127.0.0.1:${port}/v1/kv/items/secret-key`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-00f067aa0ba902b7-01`, ...bearer(credentials.admin) },
    body: JSON.stringify({ value: { v: 'secret-value' } }),
  });
  t.equal(response.status, 200);
  t.match(response.headers.get('traceparent'), new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`), 'the answer continues the trace');
  t.ok(
    events.some((e) => e.event === 'http_request' && e.traceId === traceId),
    'the request log names the trace',
  );
  t.ok(
    await eventually(() => events.some((e) => e.event === 'batch-applied' && (e.traceIds as string[]).includes(traceId))),
    'the receiving node logs the trace id when the write is durable there',
  );
  t.ok((await us!.replica.get('items', 'secret-key')) !== undefined, JSON.stringify(events.filter((e) => e.event !== 'http_request')));

  const fresh = await fetch(`http://127.0.0.1:${port}/healthz`, { headers: { traceparent: 'garbage', ...bearer(credentials.admin) } });
  t.match(fresh.headers.get('traceparent'), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, 'a malformed traceparent starts a new trace');
  t.notMatch(JSON.stringify(events), /secret-key|secret-value/, 'no log event carries the key or the value');
});
