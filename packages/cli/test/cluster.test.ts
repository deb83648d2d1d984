// Goal: real daemons replicating through real sockets converge and lose no acknowledged write — with
// concurrent writes of every type, a partition while everyone writes, a kill -9 mid-stream — and refuse an
// impostor, which receives nothing.
// Method: three `tessera serve` processes, every link through a FaultProxy (20 ms one-way); faults are injected
// with the proxies (blackhole) and signals (SIGKILL); convergence is awaited with a bound and then compared
// document by document on every node.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { FaultProxy } from '@tessera/cli';
import { decodeFrame, encodeFrame, helloProof, newNonce, protocolVersion } from '@tessera/sync';
import { api, dump, eventually, linkReport, startTestCluster } from './harness.js';

const regions = ['eu-west', 'us-east', 'ap-south'];
const convergeMsMax = 30_000;

t.test('concurrent writes of every value type in every region converge', async (t) => {
  const cluster = await startTestCluster(t, regions);
  await Promise.all(
    cluster.nodes.map(async (node, i) => {
      for (let k = 0; k < 20; k++) t.equal((await api(node, 'PUT', `/v1/kv/profiles/${node.region}-${k}`, { value: { k, from: node.region } })).status, 200);
      await api(node, 'POST', '/v1/kv/profiles/shared/ops', { op: 'set', path: ['by', node.region], value: i });
      await api(node, 'POST', '/v1/kv/visits/home/ops', { op: 'increment', amount: i + 1 });
      await api(node, 'POST', '/v1/kv/carts/c1/ops', [
        { op: 'add', element: node.region },
        { op: 'add', element: 'shared' },
      ]);
    }),
  );
  // Truly concurrent writes of one field: cut every link, write in every region, heal.
  for (const proxy of cluster.layout.proxies.values()) proxy.partition(true);
  await Promise.all(cluster.nodes.map((node, i) => api(node, 'PUT', '/v1/kv/catalog/price', { value: { price: 10 + i } })));
  for (const proxy of cluster.layout.proxies.values()) proxy.heal();
  const converged = await eventually(async () => {
    const views = await Promise.all(
      cluster.nodes.map(async (node) =>
        JSON.stringify([await dump(node, 'profiles'), await dump(node, 'visits'), await dump(node, 'carts'), await dump(node, 'catalog')]),
      ),
    );
    return views.every((view) => view === views[0]);
  }, convergeMsMax);
  t.ok(converged, 'every node holds the same documents');
  const profiles = await dump(cluster.nodes[2]!, 'profiles');
  t.equal(Object.keys(profiles).length, 61, '60 profiles and the shared one');
  t.same((profiles.shared as { by: unknown }).by, { 'eu-west': 0, 'us-east': 1, 'ap-south': 2 });
  t.equal((await dump(cluster.nodes[0]!, 'visits')).home, 6);
  t.same((await dump(cluster.nodes[1]!, 'carts')).c1, ['ap-south', 'eu-west', 'shared', 'us-east']);
  const conflicts = await api(cluster.nodes[0]!, 'GET', '/v1/conflicts?dataset=catalog');
  t.ok(conflicts.body.conflicts.length >= 1, 'the concurrent catalog price writes left a conflict record');
});

t.test('a partitioned region (blackhole) catches up after healing; no acknowledged write is lost', async (t) => {
  const cluster = await startTestCluster(t, regions);
  const [euWest, usEast, apSouth] = cluster.nodes;
  const cut = cluster.proxiesOf(usEast!);
  for (const proxy of cut) proxy!.blackhole(true);
  const acknowledged = new Map<string, number>();
  const deadline = Date.now() + 3_000;
  let n = 0;
  // Everyone keeps writing during the partition.
  while (Date.now() < deadline) {
    const node = cluster.nodes[n % 3]!;
    const key = `w${n}`;
    const { status } = await api(node, 'PUT', `/v1/kv/profiles/${key}`, { value: { n } });
    if (status === 200) acknowledged.set(key, n);
    n++;
  }
  t.ok(acknowledged.size > 30, `${acknowledged.size} writes acknowledged during the partition`);
  const before = await dump(usEast!, 'profiles');
  t.ok(Object.keys(before).length < acknowledged.size, "us-east did not see the others' writes while cut off");
  for (const proxy of cut) proxy!.heal();
  const converged = await eventually(async () => {
    const views = await Promise.all([euWest!, usEast!, apSouth!].map((node) => dump(node, 'profiles')));
    return views.every((view) => Object.keys(view).length === acknowledged.size);
  }, convergeMsMax);
  t.ok(converged, `all regions hold all ${acknowledged.size} acknowledged writes within ${convergeMsMax} ms of healing`);
  if (!converged) t.comment(await linkReport(cluster.nodes));
  for (const node of cluster.nodes) {
    const view = await dump(node, 'profiles');
    const missing = [...acknowledged].filter(([key, value]) => (view[key] as { n?: number } | undefined)?.n !== value);
    t.same(missing, [], `${node.id}: no acknowledged write missing`);
  }
});

t.test('kill -9 of a daemon mid-stream: restart, convergence, no loss, cursors never go backwards', async (t) => {
  const cluster = await startTestCluster(t, regions);
  const [euWest, usEast] = cluster.nodes;
  const acknowledged = new Set<string>();
  // A stream of concurrent writes into eu-west; us-east is killed in the middle of receiving it.
  const writers = Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; i < 60; i++) {
      const key = `k${w}-${i}`;
      const { status } = await api(euWest!, 'PUT', `/v1/kv/profiles/${key}`, { value: { w, i, pad: 'x'.repeat(200) } });
      if (status === 200) acknowledged.add(key);
    }
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const cursorsBefore = (await api(usEast!, 'GET', '/v1/peers')).body.cursors as Record<string, number>;
  await cluster.kill9(usEast!);
  await Promise.all(writers);
  await cluster.restart(usEast!);
  const cursorsAfter = (await api(usEast!, 'GET', '/v1/peers')).body.cursors as Record<string, number>;
  for (const [peer, cursor] of Object.entries(cursorsBefore)) {
    t.ok((cursorsAfter[peer] ?? 0) >= cursor, `us-east's cursor for ${peer} did not go backwards (${cursor} → ${cursorsAfter[peer]})`);
  }
  const converged = await eventually(async () => {
    const views = await Promise.all(cluster.nodes.map((node) => dump(node, 'profiles')));
    return views.every((view) => [...acknowledged].every((key) => key in view));
  }, convergeMsMax);
  t.ok(converged, `every node holds all ${acknowledged.size} acknowledged writes`);
  const euCursors = (await api(euWest!, 'GET', '/v1/peers')).body.cursors as Record<string, number>;
  const head = (await api(euWest!, 'GET', '/v1/status')).body.lastSeq as number;
  t.ok(
    await eventually(async () => ((await api(euWest!, 'GET', '/v1/peers')).body.cursors[usEast!.id] ?? 0) >= head, 10_000),
    `eu-west's cursor for us-east reaches its log head ${head} (was ${euCursors[usEast!.id]})`,
  );
});

t.test('an impostor is refused and receives no data: without a cluster certificate, or with one but the wrong secret or cluster id', async (t) => {
  const cluster = await startTestCluster(t, regions.slice(0, 2));
  const target = cluster.nodes.find((node) => node.id === 'us-east-1')!;
  await api(target, 'PUT', '/v1/kv/profiles/private', { value: { ssn: '078-05-1120' } });
  const ca = await readFile(cluster.layout.security.caFile, 'utf8');
  // eu-west-1's own certificate (us-east-1 accepts it): the second factor, the cluster secret, still decides.
  const certsDir = cluster.layout.security.certsDir;
  const credentials = { key: await readFile(join(certsDir, 'eu-west-1.key'), 'utf8'), cert: await readFile(join(certsDir, 'eu-west-1.crt'), 'utf8') };
  for (const [label, scheme, withCert, clusterId, secret] of [
    ['plain ws://', 'ws', false, 'dev', 'x'.repeat(43)],
    ['no client certificate', 'wss', false, 'dev', 'x'.repeat(43)],
    ['a node certificate but the wrong secret', 'wss', true, 'dev', 'x'.repeat(43)],
    ['a node certificate but the wrong cluster', 'wss', true, 'other', 'y'.repeat(43)],
  ] as const) {
    const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: target.port });
    const ws = new WebSocket(`${scheme}://127.0.0.1:${proxy.port}/v1/replicate`, { ca, ...(withCert ? credentials : {}) });
    const frames: string[] = [];
    const received: Buffer[] = [];
    let status: number | null = null;
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    ws.on('error', () => undefined);
    ws.on('unexpected-response', (_req, res) => {
      status = res.statusCode ?? null;
      res.resume();
      ws.terminate();
    });
    ws.on('message', (data: Buffer) => {
      received.push(Buffer.from(data));
      const frame = decodeFrame(data);
      frames.push(frame.t);
      if (frame.t === 'challenge') {
        const nonce = newNonce();
        const key = Buffer.from(secret);
        ws.send(
          encodeFrame({
            t: 'hello',
            v: protocolVersion,
            cluster: clusterId,
            node: 'eu-west-1',
            region: 'eu-west',
            policy: { version: 0, hash: '' },
            nonce,
            proof: helloProof(key, clusterId, 'eu-west-1', 'eu-west', frame.nonce, nonce),
          }),
        );
      }
    });
    const code = await closed;
    await proxy.close();
    if (withCert) {
      t.equal(code, 4401, `${label}: refused`);
      t.same(frames, ['challenge', 'refuse'], `${label}: only a challenge and a refusal`);
    } else {
      t.equal(status, scheme === 'ws' ? 400 : 403, `${label}: the upgrade is refused (${status}), no WebSocket`);
      t.same(frames, [], `${label}: not a frame`);
    }
    const bytes = Buffer.concat(received);
    t.notOk(bytes.includes('078-05-1120') || bytes.includes('private'), `${label}: no key or value among the ${bytes.length} bytes of frames it received`);
  }
});
