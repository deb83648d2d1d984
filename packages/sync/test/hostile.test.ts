// Goal: a malformed or hostile batch from an authenticated peer closes that link with a reason; it never
// crashes the node, never reaches the store, and neither the log nor the status carries the document's key.
// Method: a raw WebSocket client completes a valid handshake, then sends a batch whose delta is garbage, and
// then a frame that is not a frame; capture every log event of the node and read its status.
import t from 'tap';
import { WebSocket } from 'ws';
import { decodeFrame, encodeFrame, helloProof, newNonce, protocolVersion } from '@tessera/sync';
import { eventually, secret, startCluster } from './cluster.js';

t.test('a bad batch closes the link, changes nothing, and logs no key', async (t) => {
  const events: Array<Record<string, unknown>> = [];
  const [node, impersonated] = await startCluster(
    t,
    [
      { id: 'b1', region: 'us-east' },
      { id: 'a1', region: 'eu-west' },
    ],
    { log: (event) => events.push(event) },
  );
  // The test plays a1 by hand; a1's own replication is stopped so that it cannot replace the test's connection.
  await impersonated!.sync.close();
  for (const [label, payload] of [
    [
      'garbage delta',
      (ws: WebSocket) =>
        ws.send(
          encodeFrame({
            t: 'batch',
            id: 1,
            last: 1,
            entries: [
              { seq: 1, dataset: 'users', key: 'secret-key-123', origin: 'a1', originSeq: 1, hlc: { ms: 1, c: 0 }, delta: new Uint8Array([0x93, 1, 2]) },
            ],
          }),
        ),
    ],
    ['not a frame', (ws: WebSocket) => ws.send(Buffer.from('secret-key-123 is not msgpack'))],
  ] as const) {
    const ws = new WebSocket(`ws://127.0.0.1:${node!.port}/v1/replicate`);
    ws.on('error', () => undefined);
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    ws.on('message', (data: Buffer) => {
      const frame = decodeFrame(data);
      if (frame.t === 'challenge') {
        const nonce = newNonce();
        ws.send(
          encodeFrame({
            t: 'hello',
            v: protocolVersion,
            cluster: 'test',
            node: 'a1',
            region: 'eu-west',
            policy: { version: 0, hash: '' },
            nonce,
            proof: helloProof(secret, 'test', 'a1', 'eu-west', frame.nonce, nonce),
          }),
        );
      } else if (frame.t === 'welcome') {
        payload(ws);
      }
    });
    t.equal(await closed, 4400, `${label}: the link is closed as a protocol error`);
  }
  t.equal(await node!.replica.get('users', 'secret-key-123'), undefined, 'nothing reached the store');
  t.equal(node!.replica.lastSeq, 0, 'the log is untouched');
  t.ok(await eventually(() => events.some((e) => e.event === 'link-error')), 'the errors were logged');
  const logged = JSON.stringify(events);
  t.notOk(logged.includes('secret-key-123'), 'no log event carries the key');
  t.notOk(JSON.stringify(node!.sync.status()).includes('secret-key-123'), 'neither does the status');
  t.ok(node!.replica.isOpen, 'the node is still up');
});
