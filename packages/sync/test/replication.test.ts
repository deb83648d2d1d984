// Goal: nodes linked by SyncNode converge over real WebSockets: every value type, writes in every region,
// deletes; cursors advance durably; an impostor is refused and receives no data.
// Method: three in-process nodes on loopback HTTP servers; write concurrently, wait for convergence (bounded),
// compare values everywhere; a raw WebSocket client performs the handshake with a wrong secret.
import t from 'tap';
import { WebSocket } from 'ws';
import { decodeFrame, encodeFrame, helloProof, newNonce, protocolVersion } from '@tessera/sync';
import { eventually, startCluster } from './cluster.js';

const regions = [
  { id: 'a1', region: 'eu-west' },
  { id: 'b1', region: 'us-east' },
  { id: 'c1', region: 'ap-south' },
];

t.test('three nodes converge on every value type', async (t) => {
  const nodes = await startCluster(t, regions);
  t.ok(await eventually(() => nodes.every((n) => n.sync.status().links.every((l) => l.state === 'open'))), 'all links open');
  await Promise.all(
    nodes.map(async (node, i) => {
      await node.replica.put('profiles', `p-${node.id}`, { by: node.id, n: i });
      await node.replica.map('profiles', 'shared').set(node.id, i);
      await node.replica.counter('stats', 'hits').increment(i + 1);
      await node.replica.set('tags', 'all').add(node.id);
      await node.replica.put('config', 'mode', `mode-${node.id}`, { type: 'lww' });
      await node.replica.yjs('notes', 'n').change((doc) => doc.getText('t').insert(0, node.id));
      await node.replica.automerge('boards', 'b').change<{ [k: string]: number }>((doc) => {
        doc[node.id] = i;
      });
    }),
  );
  await nodes[0]!.replica.put('profiles', 'doomed', { x: 1 });
  const converged = await eventually(async () => {
    const views = await Promise.all(
      nodes.map(async (n) =>
        JSON.stringify([
          await n.replica.get('profiles', 'shared').then((d) => d?.value),
          await n.replica.counter('stats', 'hits').value(),
          await n.replica.set('tags', 'all').values(),
          await n.replica.get('config', 'mode').then((d) => d?.value),
          (await n.replica.yjs('notes', 'n').doc())?.getText('t').toString().length,
          await n.replica.automerge('boards', 'b').value(),
          await n.replica.list('profiles').then((p) => p.items.length),
        ]),
      ),
    );
    return views.every((v) => v === views[0]);
  });
  t.ok(converged, 'all values converge');
  t.same(await nodes[2]!.replica.get('profiles', 'shared').then((d) => d?.value), { a1: 0, b1: 1, c1: 2 });
  t.equal(await nodes[1]!.replica.counter('stats', 'hits').value(), 6);
  await nodes[1]!.replica.delete('profiles', 'doomed');
  t.ok(
    await eventually(async () => (await Promise.all(nodes.map((n) => n.replica.get('profiles', 'doomed')))).every((d) => d === undefined)),
    'delete replicates',
  );
  // Cursors: every peer acknowledged everything each node wrote.
  t.ok(
    await eventually(async () => {
      for (const node of nodes) {
        const cursors = await node.replica.cursors();
        const peers = nodes.filter((n) => n !== node);
        if (!peers.every((p) => (cursors[p.id] ?? 0) >= node.replica.lastSeq)) return false;
      }
      return true;
    }),
    'cursors reach the head of every log',
  );
  const status = nodes[0]!.sync.status();
  t.ok(
    status.links.every((l) => l.sent.entries > 0 && l.received.entries > 0),
    'traffic both ways on every link',
  );
});

t.test('a peer with a wrong secret, or from another cluster, is refused and receives no data', async (t) => {
  const [node] = await startCluster(t, [regions[1]!, regions[0]!]);
  await node!.replica.put('profiles', 'secret-doc', { ssn: '123' });
  for (const [label, cluster, secret] of [
    ['wrong secret', 'test', Buffer.from('not-the-secret-0123456789abcdefgh')],
    ['wrong cluster', 'other', Buffer.from('test-cluster-secret-0123456789abcdef')],
  ] as const) {
    const frames: string[] = [];
    let bytes = 0;
    const ws = new WebSocket(`ws://127.0.0.1:${node!.port}/v1/replicate`);
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    ws.on('message', (data: Buffer) => {
      bytes += data.length;
      const frame = decodeFrame(data);
      frames.push(frame.t);
      if (frame.t === 'challenge') {
        const nonce = newNonce();
        ws.send(
          encodeFrame({
            t: 'hello',
            v: protocolVersion,
            cluster,
            node: 'a1',
            region: 'eu-west',
            policy: { version: 0, hash: '' },
            nonce,
            proof: helloProof(secret, cluster, 'a1', 'eu-west', frame.nonce, nonce),
          }),
        );
      }
    });
    t.equal(await closed, 4401, `${label}: closed as refused`);
    t.same(frames, ['challenge', 'refuse'], `${label}: only the challenge and the refusal arrived`);
    t.ok(bytes < 400, `${label}: ${bytes} bytes received, no data`);
  }
  t.notOk(node!.sync.status().links.some((l) => l.received.entries > 0));
});
