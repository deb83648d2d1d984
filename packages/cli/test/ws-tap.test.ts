// Goal: a tap on a FaultProxy sees what both ends of a WebSocket send. Frames a client sends are masked
// (RFC 6455), so a search of the raw chunks misses everything a dialer sends; the decoder unmasks them.
// Method: a ws server behind a FaultProxy with a tiny bandwidth (so frames arrive split across chunks); the
// client and the server each send messages carrying a marker, large and small; compare what the raw chunks
// and the decoded payloads contain.
import t from 'tap';
import { type AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { FaultProxy } from '@tessera/cli';
import { WebSocketTap } from './ws-tap.js';

t.test('the decoder unmasks what the client sends, across chunk boundaries; raw chunks hide it', async (t) => {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const raw: Record<string, Buffer[]> = { forward: [], backward: [] };
  const decoded: Record<string, Buffer[]> = { forward: [], backward: [] };
  const tap = new WebSocketTap((stream, bytes) => decoded[stream.split(':')[0]!]!.push(Buffer.from(bytes)));
  const proxy = await FaultProxy.start({
    targetHost: '127.0.0.1',
    targetPort: (server.address() as AddressInfo).port,
    bandwidthBytesPerSecond: 2_000_000,
    onData: (direction, chunk, connection) => {
      raw[direction]!.push(Buffer.from(chunk));
      tap.feed(`${direction}:${connection}`, chunk);
    },
  });
  t.teardown(() => proxy.close());
  server.on('connection', (ws) => {
    ws.on('message', (data: Buffer) => {
      if (!data.toString().includes('client-marker-last')) return;
      ws.send(Buffer.concat([Buffer.alloc(70_000, 1), Buffer.from('server-marker')]));
      ws.send('server-done');
    });
  });
  const client = new WebSocket(`ws://127.0.0.1:${proxy.port}`);
  t.teardown(() => client.terminate());
  const done = new Promise<void>((resolve) => client.on('message', (data: Buffer) => data.toString() === 'server-done' && resolve()));
  await new Promise<void>((resolve) => client.once('open', () => resolve()));
  client.send(Buffer.concat([Buffer.alloc(200_000, 2), Buffer.from('client-marker-big')]));
  client.send('client-marker-small');
  client.send('client-marker-last');
  await done;
  const has = (chunks: Buffer[], marker: string) => Buffer.concat(chunks).includes(marker);
  t.notOk(has(raw.forward!, 'client-marker-small'), 'the raw forward chunks do not show what the client sent (masked)');
  t.ok(
    has(decoded.forward!, 'client-marker-big') && has(decoded.forward!, 'client-marker-small') && has(decoded.forward!, 'client-marker-last'),
    'the decoded forward payloads do',
  );
  t.ok(has(raw.backward!, 'server-marker') && has(decoded.backward!, 'server-marker'), 'what the server sent shows either way');
  t.ok(raw.forward!.length > 3, `the client's frames arrived in ${raw.forward!.length} chunks`);
});
