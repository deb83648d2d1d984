// Goal: the fault proxy that sits between region nodes forwards TCP streams intact and in order under
// latency, jitter and bandwidth limits, injects blackholes, partitions and connection kills as documented,
// counts exactly what it delivers and drops, bounds its memory, and never crashes the process.
// Method: real sockets on 127.0.0.1 with ephemeral ports: echo, responder and slow-sink servers behind a
// proxy. Jitter and payloads come from a seeded PRNG (SEED=... reproduces a run). Timing is only ever
// checked as a lower bound; waits poll a condition with a bounded number of steps.
import t from 'tap';
import net from 'node:net';
import { createHash, randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { getDefaultHighWaterMark } from 'node:stream';
import { FaultProxy, regionLocations, resetSocket, wanLatencyMs, type FaultProxyOptions } from '../src/proxy.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Bound on every wait in this file: 2 ms polls, 15 s in all. */
const pollMs = 2;
const pollStepsMax = 7_500;
/** Node reads at most this much from a socket at once, so a queue can overshoot its bound by this much. */
const socketReadBytesMax = 64 * KiB;

const seed = process.env.SEED !== undefined ? Number(process.env.SEED) : randomInt(2 ** 31);
t.comment(`SEED=${seed}`);

/** A small seeded PRNG (mulberry32), returning values in [0, 1). */
function prng(seedValue: number): () => number {
  let a = seedValue >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
}

function randomBytes(random: () => number, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(random() * 256);
  return bytes;
}

function sha256(chunks: readonly Buffer[]): string {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return hash.digest('hex');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until `condition` holds; fails with `what` after the poll bound. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let step = 0; step < pollStepsMax; step++) {
    if (condition()) return;
    await sleep(pollMs);
  }
  throw new Error(`timed out waiting for ${what} (SEED=${seed})`);
}

type Test = { teardown(fn: () => unknown): void };

/** A server whose sockets are all tracked, torn down with the test. */
interface TestServer {
  readonly port: number;
  readonly sockets: net.Socket[];
  /** Bytes the server received over all its connections. */
  bytesReceived: number;
}

async function startServer(t: Test, onSocket: (socket: net.Socket, server: TestServer) => void): Promise<TestServer> {
  const state: TestServer = { port: 0, sockets: [], bytesReceived: 0 };
  const server = net.createServer((socket) => {
    socket.on('error', () => {}); // resets are expected here
    socket.on('data', (chunk: Buffer) => (state.bytesReceived += chunk.length));
    state.sockets.push(socket);
    onSocket(socket, state);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (state as { port: number }).port = (server.address() as net.AddressInfo).port;
  t.teardown(async () => {
    for (const socket of state.sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return state;
}

const startEcho = (t: Test): Promise<TestServer> => startServer(t, (socket) => socket.pipe(socket));

async function startProxy(t: Test, options: Omit<FaultProxyOptions, 'targetHost'>): Promise<FaultProxy> {
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', ...options });
  t.teardown(() => proxy.close());
  return proxy;
}

/** A client socket that records what it receives and how it ended. */
class Client {
  readonly chunks: Buffer[] = [];
  bytes = 0;
  closed = false;
  error: Error | null = null;
  firstByteAtMs: number | null = null;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.firstByteAtMs ??= performance.now();
      this.chunks.push(chunk);
      this.bytes += chunk.length;
    });
    socket.on('error', (error) => (this.error = error));
    socket.on('close', () => (this.closed = true));
  }

  /** Connects without waiting: for a connection the proxy may reset before the connect completes. */
  static open(t: Test, port: number): Client {
    const socket = net.connect({ host: '127.0.0.1', port });
    t.teardown(() => socket.destroy());
    return new Client(socket);
  }

  static connect(t: Test, port: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      t.teardown(() => socket.destroy());
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new Client(socket));
      });
    });
  }

  text(): string {
    return Buffer.concat(this.chunks).toString();
  }
}

t.test('latency with jitter keeps a stream intact and in order', { timeout: 30_000 }, async (t) => {
  // Goal: jitter larger than the gaps between chunks must not reorder bytes, and no byte arrives early.
  // Method: 300 random-sized chunks with random gaps through an echo; compare SHA-256 sent, echoed and seen
  // by onData; the first echo must take at least two one-way latencies.
  const random = prng(seed);
  const latencyMs = 15;
  const forward: Buffer[] = [];
  const backward: Buffer[] = [];
  const heldMs: number[] = [];
  const echo = await startEcho(t);
  const proxy = await startProxy(t, {
    targetPort: echo.port,
    latencyMs,
    jitterMs: 10,
    random: prng(seed + 1),
    onData: (direction, chunk, _connection, held) => {
      (direction === 'forward' ? forward : backward).push(chunk);
      heldMs.push(held);
    },
  });
  const client = await Client.connect(t, proxy.port);
  const sent: Buffer[] = [];
  let sentBytes = 0;
  const firstWriteAtMs = performance.now();
  for (let i = 0; i < 300; i++) {
    const chunk = randomBytes(random, 1 + Math.floor(random() * 8 * KiB));
    sent.push(chunk);
    sentBytes += chunk.length;
    client.socket.write(chunk);
    // Gaps of 0-2 ms, shorter than the jitter, so chunks would overtake each other if order were not kept.
    if (random() < 0.5) await sleep(Math.floor(random() * 3));
  }
  await until(() => client.bytes === sentBytes, 'the echo of every byte');
  t.equal(sha256(client.chunks), sha256(sent), `echo is intact and in order (SEED=${seed})`);
  t.equal(sha256(forward), sha256(sent), 'onData saw the forward stream in order');
  t.equal(sha256(backward), sha256(sent), 'onData saw the backward stream in order');
  t.ok(client.firstByteAtMs! - firstWriteAtMs >= 2 * latencyMs, 'the first echo took at least one latency each way');
  // A chunk is held at least the latency (jitter only adds), and never absurdly long on an idle loopback.
  t.ok(
    heldMs.every((held) => held >= latencyMs - 1 && held < 5_000),
    `onData reports how long each chunk was held (${Math.min(...heldMs).toFixed(1)}–${Math.max(...heldMs).toFixed(1)} ms)`,
  );
  t.match(proxy.stats(), { bytesForward: sentBytes, bytesBackward: sentBytes, droppedBytes: 0, queuedBytes: 0 });
});

t.test('lowering the latency mid-stream does not let later bytes overtake', { timeout: 10_000 }, async (t) => {
  // Goal: delivery times are monotonic per direction even when the latency drops.
  // Method: send "A" with 200 ms latency, drop the latency to 0, send "B"; the echo must read "AB".
  const echo = await startEcho(t);
  const proxy = await startProxy(t, { targetPort: echo.port, latencyMs: 200 });
  const client = await Client.connect(t, proxy.port);
  client.socket.write('A');
  await until(() => proxy.queuedBytes() === 1, 'the proxy to queue "A"');
  proxy.setLatency(0);
  client.socket.write('B');
  await until(() => client.bytes === 2, 'the echo of "AB"');
  t.equal(client.text(), 'AB');
});

t.test('bandwidth limit delays delivery by the transfer time', { timeout: 10_000 }, async (t) => {
  // Goal: a bandwidth limit serialises bytes: N bytes take at least N / rate.
  // Method: 64 KiB through an echo at 256 KiB/s; the full echo must take at least 250 ms (a lower bound).
  const echo = await startEcho(t);
  const bandwidthBytesPerSecond = 256 * KiB;
  const proxy = await startProxy(t, { targetPort: echo.port, bandwidthBytesPerSecond });
  const client = await Client.connect(t, proxy.port);
  const payload = randomBytes(prng(seed), 64 * KiB);
  const startMs = performance.now();
  client.socket.write(payload);
  await until(() => client.bytes === payload.length, 'the echo');
  t.ok(performance.now() - startMs >= (payload.length * 1000) / bandwidthBytesPerSecond, 'took at least bytes / rate');
  t.ok(Buffer.concat(client.chunks).equals(payload), 'echo intact');
});

t.test('blackhole drops and counts bytes, keeps connections, and heal restores them', { timeout: 10_000 }, async (t) => {
  // Goal: a blackhole is a partition TCP cannot see: bytes vanish both ways, connections stay open, a new
  // connection is accepted but never reaches the target; after heal the same connections carry data again.
  // Method: echo behind the proxy; count bytes at the proxy and at the echo server before and after heal.
  const echo = await startEcho(t);
  const proxy = await startProxy(t, { targetPort: echo.port });
  const first = await Client.connect(t, proxy.port);
  first.socket.write('a');
  await until(() => first.bytes === 1, 'the echo of "a"');

  proxy.blackhole(true);
  first.socket.write(Buffer.alloc(100, 'x'));
  await until(() => proxy.stats().droppedBytes === 100, 'the proxy to drop 100 bytes');
  const second = await Client.connect(t, proxy.port);
  second.socket.write(Buffer.alloc(7, 'y'));
  await until(() => proxy.stats().droppedBytes === 107, "the proxy to drop the new connection's 7 bytes");
  t.equal(echo.bytesReceived, 1, 'the echo server received nothing while blackholed');
  t.equal(echo.sockets.length, 1, 'the new connection did not reach the target');
  t.equal(first.bytes, 1, 'the client received nothing more');
  t.match(proxy.stats(), { connections: 2, connectionsOpen: 2, bytesForward: 1, bytesBackward: 1 });
  t.notOk(first.closed || second.closed, 'both connections are still open');

  proxy.heal();
  first.socket.write('b');
  second.socket.write('c');
  await until(() => first.bytes === 2 && second.bytes === 1, 'echoes after heal');
  t.equal(first.text(), 'ab', 'the first connection carries data again');
  t.equal(second.text(), 'c', 'the connection accepted during the blackhole reaches the target after heal');
  t.match(proxy.stats(), { bytesForward: 3, bytesBackward: 3, droppedBytes: 107 });
});

t.test('blackhole drops bytes already in flight', { timeout: 10_000 }, async (t) => {
  // Goal: bytes still queued in the proxy when the blackhole starts are lost too, as on a dead path.
  // Method: 300 ms latency; wait until "hello" has reached the echo and its echo is queued on the way back,
  // then blackhole: the echo never arrives and its 5 bytes are counted as dropped.
  const echo = await startEcho(t);
  const proxy = await startProxy(t, { targetPort: echo.port, latencyMs: 300 });
  const client = await Client.connect(t, proxy.port);
  client.socket.write('hello');
  await until(() => echo.bytesReceived === 5 && proxy.queuedBytes() === 5, 'the echo to be queued backward');
  proxy.blackhole(true);
  await until(() => proxy.queuedBytes() === 0, 'the queued echo to be dropped');
  t.equal(client.bytes, 0, 'nothing came back');
  t.match(proxy.stats(), { bytesForward: 5, bytesBackward: 0, droppedBytes: 5 });
});

t.test('stall holds one direction in order, lets the other flow, and delivers everything when it ends', { timeout: 10_000 }, async (t) => {
  // Goal: a one-way partition: bytes in the stalled direction are held (not dropped) and arrive in order
  // after the stall ends, while the other direction keeps flowing on the same connection.
  // Method: a server that echoes and can also speak first; stall forward, write both ways, then end the stall.
  let serverSocket: net.Socket | null = null;
  const echo = await startServer(t, (socket) => {
    serverSocket = socket;
    socket.pipe(socket);
  });
  const proxy = await startProxy(t, { targetPort: echo.port });
  const client = await Client.connect(t, proxy.port);
  client.socket.write('a');
  await until(() => client.bytes === 1, 'the echo of "a"');

  proxy.stall('forward', true);
  client.socket.write('b');
  client.socket.write('c');
  serverSocket!.write('S');
  await until(() => client.bytes === 2, "the server's own byte through the open direction");
  await sleep(50);
  t.equal(echo.bytesReceived, 1, 'nothing crossed the stalled direction');
  t.equal(proxy.queuedBytes(), 2, 'the stalled bytes are held');
  proxy.stall('forward', false);
  await until(() => client.bytes === 4, 'the held bytes and their echoes');
  t.equal(client.text(), 'aSbc', 'held bytes arrive in order after the stall');
  t.match(proxy.stats(), { droppedBytes: 0, connectionsOpen: 1 });
  t.notOk(client.closed, 'the connection stayed open');
});

t.test('partition resets live connections and refuses new ones until heal', { timeout: 10_000 }, async (t) => {
  // Goal: a partition the endpoints notice: both ends of live connections are reset, new connections are
  // closed on accept without reaching the target, and heal accepts again.
  // Method: two echo connections, partition, watch them close; connect again (refused); heal; echo works.
  const echo = await startEcho(t);
  const proxy = await startProxy(t, { targetPort: echo.port });
  const a = await Client.connect(t, proxy.port);
  const b = await Client.connect(t, proxy.port);
  a.socket.write('1');
  b.socket.write('2');
  await until(() => a.bytes === 1 && b.bytes === 1, 'both echoes');

  proxy.partition(true);
  await until(() => a.closed && b.closed, 'both clients to be reset');
  await until(() => echo.sockets.every((socket) => socket.destroyed), 'the target side to be reset');
  t.equal(proxy.stats().connectionsOpen, 0);

  // The kernel completes the handshake, then the proxy resets: the client may see the reset even as it connects.
  const refused = Client.open(t, proxy.port);
  refused.socket.write('z');
  await until(() => refused.closed, 'the new connection to be closed');
  t.equal(refused.bytes, 0, 'the refused client received nothing');
  t.equal(echo.sockets.length, 2, 'the refused connection never reached the target');
  t.match(proxy.stats(), { connections: 3, connectionsRefused: 1, connectionsOpen: 0 });

  proxy.heal();
  const c = await Client.connect(t, proxy.port);
  c.socket.write('3');
  await until(() => c.bytes === 1, 'the echo after heal');
  t.equal(c.text(), '3');
});

t.test('resetConnections kills the current connections only', { timeout: 10_000 }, async (t) => {
  // Goal: a connection kill is one-off: current connections are reset at both ends, later ones work.
  // Method: one echo connection, resetConnections, watch both ends close, then a new connection echoes.
  const echo = await startEcho(t);
  const proxy = await startProxy(t, { targetPort: echo.port });
  const old = await Client.connect(t, proxy.port);
  old.socket.write('o');
  await until(() => old.bytes === 1, 'the echo');
  proxy.resetConnections();
  await until(() => old.closed && echo.sockets[0]!.destroyed, 'both ends of the old connection to close');
  const fresh = await Client.connect(t, proxy.port);
  fresh.socket.write('n');
  await until(() => fresh.bytes === 1, 'the echo on the new connection');
  t.equal(fresh.text(), 'n');
  t.match(proxy.stats(), { connections: 2, connectionsOpen: 1, connectionsRefused: 0 });
});

t.test('stats and onData count delivered bytes per direction exactly', { timeout: 10_000 }, async (t) => {
  // Goal: the tap sees exactly the bytes that crossed, per direction, and half-closes pass through in order.
  // Method: a responder reads the request until FIN, then answers with a different, larger payload and
  // ends; compare the proxy counters and onData records with both payloads.
  const random = prng(seed + 2);
  const request = randomBytes(random, 12_345);
  const response = randomBytes(random, 54_321);
  const responder = await startServer(t, (socket) => {
    socket.on('end', () => socket.end(response));
    socket.resume();
  });
  const seen = { forward: [] as Buffer[], backward: [] as Buffer[] };
  const proxy = await startProxy(t, {
    targetPort: responder.port,
    latencyMs: 5,
    onData: (direction, chunk) => seen[direction].push(chunk),
  });
  const client = await Client.connect(t, proxy.port);
  client.socket.end(request);
  await until(() => client.closed, 'the response and its FIN');
  t.equal(client.error, null, 'the connection closed cleanly');
  t.ok(Buffer.concat(client.chunks).equals(response), 'response intact');
  t.ok(Buffer.concat(seen.forward).equals(request), 'onData forward = the request');
  t.ok(Buffer.concat(seen.backward).equals(response), 'onData backward = the response');
  await until(() => proxy.stats().connectionsOpen === 0, 'the proxy to forget the closed connection');
  t.match(proxy.stats(), {
    connections: 1,
    bytesForward: request.length,
    bytesBackward: response.length,
    droppedBytes: 0,
    queuedBytes: 0,
  });
});

t.test('a refused target resets the client and does not crash the proxy', { timeout: 10_000 }, async (t) => {
  // Goal: ECONNREFUSED from the target is an expected failure: the client is closed, the proxy keeps serving.
  // Method: point a proxy at a port nothing listens on (taken and released), connect three times.
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const deadPort = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const proxy = await startProxy(t, { targetPort: deadPort });
  for (let i = 0; i < 3; i++) {
    const client = await Client.connect(t, proxy.port);
    client.socket.write('hello?');
    await until(() => client.closed, 'the client to be closed');
    t.equal(client.bytes, 0, `attempt ${i}: nothing received`);
  }
  await until(() => proxy.stats().connectionsOpen === 0, 'no connection left open');
  t.match(proxy.stats(), { connections: 3, bytesForward: 0, bytesBackward: 0 });
});

t.test('close() resets connections and releases the port', { timeout: 10_000 }, async (t) => {
  // Goal: after close() resolves, the listening port is free and every connection is gone.
  // Method: open a connection, close (twice, it is idempotent), then listen on the same port.
  const echo = await startEcho(t);
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: echo.port });
  const client = await Client.connect(t, proxy.port);
  client.socket.write('x');
  await until(() => client.bytes === 1, 'the echo');
  await Promise.all([proxy.close(), proxy.close()]);
  t.equal(proxy.stats().connectionsOpen, 0);
  await until(() => client.closed, 'the client to be closed');
  const reuse = net.createServer();
  await new Promise<void>((resolve, reject) => {
    reuse.once('error', reject);
    reuse.listen(proxy.port, '127.0.0.1', resolve);
  });
  t.pass(`port ${proxy.port} is free again`);
  await new Promise<void>((resolve) => reuse.close(() => resolve()));
});

t.test('resetSocket closes a socket whose FIN is still being sent', { timeout: 10_000 }, async (t) => {
  // Goal: regression: libuv refuses a reset while a shutdown is in flight, after which Node never emitted
  // 'close', so close() hung when a partition hit a connection right after the proxy passed on a FIN.
  // Method: end() a connected socket and reset it before the shutdown completes; it must emit 'close'.
  const server = await startServer(t, () => {});
  const client = await Client.connect(t, server.port);
  client.socket.end();
  t.notOk(client.socket.writableFinished, 'the shutdown is still in flight');
  resetSocket(client.socket);
  await until(() => client.closed, 'the socket to close');
  t.ok(client.socket.destroyed, 'the socket is destroyed');
});

t.test('backpressure bounds the queue when the consumer is slow', { timeout: 60_000 }, async (t) => {
  // Goal: a sender far faster than a consumer that stalls, then reads slowly, never makes the proxy queue
  // more than its bound or pile bytes into the destination's write buffer, and the stream arrives intact.
  // Method: the sink stops reading; the client writes until the proxy's queue passes its 1 MiB bound (only
  // possible once the sink's kernel buffers are full and its socket refuses writes; the kernel may absorb
  // tens of MiB first, hence up to 96 MiB), and the queue must stay there while the sink is stalled. Then 8 MiB more while the sink reads slowly. Check the peaks, a
  // SHA-256 and the byte counts.
  const queuedBytesMax = 1 * MiB;
  const sentBytesMax = 96 * MiB;
  const chunkBytes = 64 * KiB;
  let sinkSocket: net.Socket | null = null;
  const sinkHash = createHash('sha256');
  let sinkBytes = 0;
  let sinkEnded = false;
  const sink = await startServer(t, (socket) => {
    socket.pause();
    sinkSocket = socket;
  });
  const proxy = await startProxy(t, { targetPort: sink.port, queuedBytesMax });
  const client = await Client.connect(t, proxy.port);

  // The payload is generated one chunk at a time, so the test itself holds only one chunk.
  const random = prng(seed + 3);
  const sentHash = createHash('sha256');
  let sentBytes = 0;
  let stopAtBytes = sentBytesMax;
  const writing = (async () => {
    while (sentBytes < stopAtBytes) {
      const chunk = Buffer.alloc(chunkBytes);
      for (let i = 0; i < chunkBytes; i += 4) chunk.writeUInt32LE(Math.floor(random() * 2 ** 32), i);
      sentHash.update(chunk);
      sentBytes += chunk.length;
      if (!client.socket.write(chunk)) await new Promise((resolve) => client.socket.once('drain', resolve));
    }
    client.socket.end();
  })();

  // The peak, not the current size: once the source is paused, delivery may shrink the queue a little
  // before the sink's socket refuses more, and the source resumes only at half the bound.
  const boundReached = (): boolean => proxy.stats().queuedBytesPeak > queuedBytesMax;
  await until(() => boundReached() || sentBytes >= sentBytesMax, 'the proxy queue to reach its bound');
  t.ok(boundReached(), `the queue reached its bound after ${sentBytes} bytes sent`);
  stopAtBytes = Math.min(sentBytesMax, sentBytes + 8 * MiB);
  await sleep(50); // give a missing backpressure the chance to show itself
  t.ok(proxy.queuedBytes() <= queuedBytesMax + socketReadBytesMax, 'the queue stays at its bound while stalled');

  // Read slowly: pause for 1 ms after every 256 KiB.
  const consumer = sinkSocket as net.Socket | null;
  t.ok(consumer !== null, 'the sink has its connection');
  let sinceBreakBytes = 0;
  consumer!.on('end', () => (sinkEnded = true));
  consumer!.on('data', (chunk: Buffer) => {
    sinkHash.update(chunk);
    sinkBytes += chunk.length;
    sinceBreakBytes += chunk.length;
    if (sinceBreakBytes >= 256 * KiB) {
      sinceBreakBytes = 0;
      consumer!.pause();
      setTimeout(() => consumer!.resume(), 1);
    }
  });
  consumer!.resume();
  await writing;
  await until(() => sinkEnded, 'the sink to receive everything and the FIN');
  t.equal(sinkBytes, sentBytes, 'every byte arrived');
  t.equal(sinkHash.digest('hex'), sentHash.digest('hex'), `the stream is intact (SEED=${seed})`);
  const stats = proxy.stats();
  t.ok(stats.queuedBytesPeak <= queuedBytesMax + socketReadBytesMax, `queue peak ${stats.queuedBytesPeak} within one read of the bound`);
  const writeBufferedBytesMax = getDefaultHighWaterMark(false) + socketReadBytesMax;
  t.ok(stats.writeBufferedBytesPeak <= writeBufferedBytesMax, `write buffer peak ${stats.writeBufferedBytesPeak} <= ${writeBufferedBytesMax}`);
  t.match(stats, { bytesForward: sentBytes, droppedBytes: 0, queuedBytes: 0 });
});

t.test('wanLatencyMs gives plausible one-way latencies', async (t) => {
  // Goal: the WAN model gives numbers close to real inter-region pings.
  // Method: known pairs against public ping ranges; symmetry; the same place costs only the fixed 2 ms.
  const at = (region: string): [number, number] => regionLocations[region]!;
  const transatlanticMs = wanLatencyMs(at('eu-west'), at('us-east'));
  t.ok(transatlanticMs >= 30 && transatlanticMs <= 80, `eu-west↔us-east ${transatlanticMs} ms`);
  const europeMs = wanLatencyMs(at('eu-west'), at('eu-central'));
  t.ok(europeMs >= 5 && europeMs <= 20, `eu-west↔eu-central ${europeMs} ms`);
  t.equal(wanLatencyMs(at('us-west'), at('us-west')), 2, 'same location');
  t.ok(Number.isInteger(transatlanticMs), 'rounded to whole milliseconds');
  const regions = Object.keys(regionLocations);
  for (const a of ['eu-west', 'eu-central', 'us-east', 'us-west', 'ap-south', 'ap-northeast', 'sa-east']) {
    t.ok(regions.includes(a), `regionLocations has ${a}`);
  }
  for (const a of regions) {
    for (const b of regions) {
      const ms = wanLatencyMs(at(a), at(b));
      t.equal(ms, wanLatencyMs(at(b), at(a)), `${a}↔${b} symmetric`);
      // Half the Earth's circumference (20,000 km) bounds every pair: 20000 / 200 × 1.5 + 2 = 152.
      if (a !== b) t.ok(ms > 2 && ms <= 152, `${a}↔${b} ${ms} ms`);
    }
  }
});
