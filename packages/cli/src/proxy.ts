/**
 * A fault-injecting TCP proxy. `tessera dev` and the multi-process tests put one between every pair of region
 * nodes, because the machine has no `tc netem`: it adds one-way latency with jitter, limits bandwidth, and
 * injects the network faults a replication link must survive: a silent partition (`blackhole`), a one-way
 * partition (`stall`), a partition the endpoints notice (`partition`) and a connection kill (`resetConnections`).
 *
 * Each direction of a connection is a `Pipe`: a FIFO of chunks, each stamped with the time it may be
 * delivered, drained in order by one timer. Jitter can only delay a chunk, never let it overtake: a stamp is
 * never earlier than the one before it, so a TCP stream keeps its byte order. Every queue is bounded: past `queuedBytesMax` the source socket is paused,
 * and a destination whose `write()` reports a full buffer stops the pipe until it drains, so a fast sender
 * behind a slow receiver is slowed down instead of filling memory.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { assert, MiB } from '@tessera/core';

/** A direction through the proxy: `forward` is client → target, `backward` is target → client. */
export type ProxyDirection = 'forward' | 'backward';

/** Default bound on the bytes queued in one direction of one connection; past it the source is paused. */
export const queuedBytesMaxDefault = 64 * MiB;
/** Bound on the connections open at once through one proxy; more are refused (reset on accept). */
export const connectionsOpenMax = 4096;
/** Latency or jitter above this is a mistake in the caller (ten minutes is no WAN). */
export const latencyMsMax = 600_000;

/** Options of `FaultProxy.start`. */
export interface FaultProxyOptions {
  /** Address to listen on; default 127.0.0.1. */
  readonly listenHost?: string;
  /** Port to listen on; 0 (the default) picks an ephemeral port, read it from `FaultProxy.port`. */
  readonly listenPort?: number;
  /** Where every accepted connection is forwarded. */
  readonly targetHost: string;
  readonly targetPort: number;
  /** One-way latency, applied in both directions; default 0. */
  readonly latencyMs?: number;
  /** Extra one-way delay drawn uniformly from [0, jitterMs) per chunk; default 0. */
  readonly jitterMs?: number;
  /** Bytes per second per direction of each connection; null (the default) means unlimited. */
  readonly bandwidthBytesPerSecond?: number | null;
  /** A label for messages and for telling proxies apart in a cluster. */
  readonly name?: string;
  /** Source of jitter, returning values in [0, 1); default Math.random. Inject a seeded one in tests. */
  readonly random?: () => number;
  /** Bound on the bytes queued per direction of one connection; default `queuedBytesMaxDefault`. */
  readonly queuedBytesMax?: number;
  /**
   * Called with every chunk when it is delivered to the other side (not when received), so a test can record
   * exactly what crossed. Dropped bytes are never passed here. An exception thrown here is a bug in the test
   * and is not caught. `connection` numbers the proxy's connections from 1 in accept order, so that a tap can
   * follow each TCP stream on its own (a WebSocket decoder must not mix two connections' bytes). `heldMs` is
   * how long the proxy held the chunk (received from its source until delivered): `now − heldMs` is when its
   * sender wrote it, within the kernel's buffering, because the proxy reads eagerly (up to `queuedBytesMax`).
   */
  readonly onData?: (direction: ProxyDirection, chunk: Buffer, connection: number, heldMs: number) => void;
}

/** Counters of a `FaultProxy`, for tests and the dev dashboard. */
export interface FaultProxyStats {
  /** Connections accepted by the listener since start, including refused ones. */
  readonly connections: number;
  /** Connections currently forwarded (accepted, not yet closed or reset). */
  readonly connectionsOpen: number;
  /** Connections reset on accept (partition, connection bound, closing). */
  readonly connectionsRefused: number;
  /** Bytes delivered client → target. */
  readonly bytesForward: number;
  /** Bytes delivered target → client. */
  readonly bytesBackward: number;
  /** Bytes received but never delivered: blackholed, or still queued when their connection was reset. */
  readonly droppedBytes: number;
  /** Bytes queued for delivery now, over all connections and directions. */
  readonly queuedBytes: number;
  /** The most bytes any one direction of one connection has held queued since start. */
  readonly queuedBytesPeak: number;
  /**
   * The most bytes a destination socket has held written but not yet taken by the kernel. Because the proxy
   * stops writing when `write()` returns false, this stays within one chunk of the socket's high-water mark.
   */
  readonly writeBufferedBytesPeak: number;
}

/** One queued piece of a stream: a chunk of bytes, or null for the end of the stream (a FIN). */
interface QueueEntry {
  readonly chunk: Buffer | null;
  readonly deliverAtMs: number;
  /** When the proxy read it from its source (`performance.now()`). */
  readonly receivedAtMs: number;
}

/** A FIFO with O(1) removal at the head; `Array.shift` is O(n) on the long queues a slow consumer builds. */
class Fifo<T> {
  private items: T[] = [];
  private headIndex = 0;

  get length(): number {
    return this.items.length - this.headIndex;
  }

  peek(): T | undefined {
    return this.items[this.headIndex];
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    if (this.headIndex >= this.items.length) return undefined;
    const item = this.items[this.headIndex++];
    // Compact once the dead prefix is both large and most of the array, so the cost stays amortised O(1).
    if (this.headIndex >= 1024 && this.headIndex * 2 >= this.items.length) {
      this.items = this.items.slice(this.headIndex);
      this.headIndex = 0;
    }
    return item;
  }

  clear(): T[] {
    const rest = this.items.slice(this.headIndex);
    this.items = [];
    this.headIndex = 0;
    return rest;
  }
}

/**
 * Resets a socket (RST) so the peer notices at once. A socket still connecting, or whose FIN is still being
 * sent, is destroyed instead.
 */
export function resetSocket(socket: net.Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting) {
    // resetAndDestroy would wait for the connect to finish; a partition must act now.
    socket.destroy();
    return;
  }
  if (socket.writableEnded && !socket.writableFinished) {
    // libuv refuses a reset while a shutdown is in flight (EINVAL), and Node then never emits 'close' nor
    // closes the handle (Node 20). The peer has our FIN on its way anyway.
    socket.destroy();
    return;
  }
  try {
    socket.resetAndDestroy();
  } catch {
    // Not a TCP handle (cannot happen for sockets this proxy creates); destroying is the next best thing.
    socket.destroy();
  }
}

/** One direction of one connection: delays, orders and rate-limits the chunks from `source` to `destination`. */
class Pipe {
  source: net.Socket | null = null;
  destination: net.Socket | null = null;
  /** False until the destination is connected; chunks queue meanwhile. */
  destinationReady = false;
  queuedBytes = 0;
  /** True once the FIN has been passed on; nothing follows it. */
  finSent = false;
  private readonly queue = new Fifo<QueueEntry>();
  private deliverAtMsLast = 0;
  /** When the simulated link finishes sending what is queued; only meaningful with a bandwidth limit. */
  private linkFreeAtMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private waitingForDrain = false;
  private sourcePaused = false;
  private discarded = false;

  constructor(
    private readonly proxy: FaultProxy,
    readonly direction: ProxyDirection,
    /** The connection's number, for the tap. */
    private readonly connection: number,
  ) {}

  /** Wires the destination's drain event; called once when the destination socket exists. */
  attachDestination(destination: net.Socket): void {
    this.destination = destination;
    destination.on('drain', () => {
      if (!this.waitingForDrain) return;
      this.waitingForDrain = false;
      this.flush();
    });
  }

  receive(chunk: Buffer): void {
    if (this.discarded || this.proxy.isBlackholed()) {
      this.proxy.countDropped(chunk.length);
      return;
    }
    const nowMs = performance.now();
    const bandwidthBytesPerSecond = this.proxy.bandwidth();
    if (bandwidthBytesPerSecond === null) {
      this.linkFreeAtMs = nowMs;
    } else {
      // The chunk is serialised after whatever the link is still sending, then travels for the latency.
      this.linkFreeAtMs = Math.max(nowMs, this.linkFreeAtMs) + (chunk.length * 1000) / bandwidthBytesPerSecond;
    }
    this.enqueue({ chunk, deliverAtMs: this.deliverAtMs(this.linkFreeAtMs), receivedAtMs: nowMs });
    this.queuedBytes += chunk.length;
    this.proxy.noteQueued(chunk.length, this.queuedBytes);
    if (!this.sourcePaused && this.queuedBytes > this.proxy.queuedBytesMax && this.source !== null) {
      // Backpressure: stop reading; TCP flow control then slows the sender down.
      this.source.pause();
      this.sourcePaused = true;
    }
    this.schedule();
  }

  /** The source sent its FIN: pass it on after the queued bytes and the same delay. */
  receiveEnd(): void {
    if (this.discarded) return;
    const nowMs = performance.now();
    this.enqueue({ chunk: null, deliverAtMs: this.deliverAtMs(nowMs), receivedAtMs: nowMs });
    this.schedule();
  }

  /** Delivers every entry that is due, in order, until the destination's buffer is full. */
  flush(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.discarded || !this.destinationReady || this.waitingForDrain || this.destination === null) return;
    // A stalled direction holds everything (the queue's bound pauses the source); `stall(…, false)` flushes.
    if (this.proxy.isStalled(this.direction)) return;
    const destination = this.destination;
    const nowMs = performance.now();
    // Bounded: the queue holds at most queuedBytesMax plus one read of bytes, each entry at least one byte.
    for (let entry = this.queue.peek(); entry !== undefined && entry.deliverAtMs <= nowMs; entry = this.queue.peek()) {
      if (entry.chunk === null) {
        // A FIN waits out a blackhole rather than being lost: TCP retransmits it until the path heals.
        if (this.proxy.isBlackholed()) break;
        this.queue.shift();
        assert(this.queue.length === 0, `${this.proxy.name}: ${this.direction} queue holds data after its FIN`);
        this.finSent = true;
        destination.end();
        break;
      }
      this.queue.shift();
      this.queuedBytes -= entry.chunk.length;
      this.proxy.noteQueued(-entry.chunk.length, this.queuedBytes);
      if (this.proxy.isBlackholed()) {
        this.proxy.countDropped(entry.chunk.length);
        continue;
      }
      this.proxy.countDelivered(this.direction, entry.chunk, this.connection, nowMs - entry.receivedAtMs);
      const writable = destination.write(entry.chunk);
      this.proxy.noteWriteBuffered(destination.writableLength);
      if (!writable) {
        this.waitingForDrain = true;
        break;
      }
    }
    // Resume at half the bound, not at the bound, so a steady stream does not pause on every chunk.
    if (this.sourcePaused && this.queuedBytes <= this.proxy.queuedBytesMax / 2) {
      this.sourcePaused = false;
      this.source?.resume();
    }
    this.schedule();
  }

  /** Drops everything queued (the connection is being reset) and stops the timer for good. */
  discard(): void {
    if (this.discarded) return;
    this.discarded = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    for (const entry of this.queue.clear()) {
      if (entry.chunk === null) continue;
      this.proxy.countDropped(entry.chunk.length);
      this.proxy.noteQueued(-entry.chunk.length, 0);
    }
    this.queuedBytes = 0;
  }

  private enqueue(entry: QueueEntry): void {
    assert(!this.finSent, `${this.proxy.name}: ${this.direction} received data after its FIN`);
    this.queue.push(entry);
    this.deliverAtMsLast = entry.deliverAtMs;
  }

  /**
   * Delivery time for something sent at `sentAtMs`: latency plus jitter, but never before its predecessor.
   * The FIFO alone keeps the order; monotonic stamps make the head's stamp the time the pipe must wake.
   */
  private deliverAtMs(sentAtMs: number): number {
    const { latencyMs, jitterMs } = this.proxy.latency();
    const jitterFraction = jitterMs === 0 ? 0 : this.proxy.random();
    assert(jitterFraction >= 0 && jitterFraction < 1, `${this.proxy.name}: random() returned ${jitterFraction}, not in [0, 1)`);
    return Math.max(sentAtMs + latencyMs + jitterFraction * jitterMs, this.deliverAtMsLast);
  }

  private schedule(): void {
    if (this.timer !== null || this.discarded || !this.destinationReady || this.waitingForDrain || this.proxy.isStalled(this.direction)) return;
    const head = this.queue.peek();
    if (head === undefined) return;
    if (head.chunk === null && this.proxy.isBlackholed()) return; // heal() flushes it
    // Round up: Node timers have millisecond resolution and a chunk must never arrive before its time.
    const delayMs = Math.max(0, Math.ceil(head.deliverAtMs - performance.now()));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush();
    }, delayMs);
  }
}

/** One client connection and its connection to the target. */
class ProxyConnection {
  readonly forward: Pipe;
  readonly backward: Pipe;
  target: net.Socket | null = null;
  /** Set while blackholed: a reset the other endpoint must not see until the path heals. */
  abortHeld = false;
  aborted = false;
  private clientClosed = false;
  private targetClosed = false;

  constructor(
    private readonly proxy: FaultProxy,
    readonly client: net.Socket,
    connection: number,
  ) {
    this.forward = new Pipe(proxy, 'forward', connection);
    this.backward = new Pipe(proxy, 'backward', connection);
    this.forward.source = client;
    this.backward.attachDestination(client);
    this.backward.destinationReady = true;
    client.setNoDelay(true);
    client.on('data', (chunk: Buffer) => this.forward.receive(chunk));
    client.on('end', () => this.forward.receiveEnd());
    client.on('close', (hadError: boolean) => {
      this.clientClosed = true;
      // A clean close comes after we passed on the target's FIN; anything else is a reset to pass on.
      if (hadError || !this.backward.finSent) this.requestAbort();
      this.maybeGone();
    });
  }

  /** Opens the connection to the target; deferred while blackholed, as a dead path would drop the SYN. */
  connectTarget(targetHost: string, targetPort: number): void {
    assert(this.target === null, `${this.proxy.name}: target connected twice`);
    const target = net.connect({ host: targetHost, port: targetPort, allowHalfOpen: true });
    this.target = target;
    this.proxy.track(target);
    target.setNoDelay(true);
    this.forward.attachDestination(target);
    this.backward.source = target;
    target.on('connect', () => {
      this.forward.destinationReady = true;
      this.forward.flush();
    });
    target.on('data', (chunk: Buffer) => this.backward.receive(chunk));
    target.on('end', () => this.backward.receiveEnd());
    target.on('close', (hadError: boolean) => {
      this.targetClosed = true;
      // Includes a refused or failed connect: the client is reset, as it would see ECONNREFUSED directly.
      if (hadError || !this.forward.finSent) this.requestAbort();
      this.maybeGone();
    });
  }

  requestAbort(): void {
    if (this.aborted) return;
    // A dead path carries no RST either: the other endpoint learns only when the path heals.
    if (this.proxy.isBlackholed()) this.abortHeld = true;
    else this.abort();
  }

  /** Resets both sides now, dropping whatever is queued. */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.abortHeld = false;
    this.forward.discard();
    this.backward.discard();
    resetSocket(this.client);
    if (this.target !== null) resetSocket(this.target);
    this.proxy.forget(this);
  }

  private maybeGone(): void {
    if (this.clientClosed && (this.target === null ? this.aborted : this.targetClosed)) this.proxy.forget(this);
  }
}

/** Ignores a socket error: the matching 'close' event (hadError) does the handling. */
function ignoreError(): void {}

/**
 * A TCP proxy to one target that injects latency, jitter, bandwidth limits and partitions, changeable at run
 * time. Start it with `FaultProxy.start`, point a client at `port`, stop it with `close`.
 */
export class FaultProxy {
  readonly name: string;
  readonly queuedBytesMax: number;
  private portListening = 0;
  private latencyMs: number;
  private jitterMs: number;
  private bandwidthBytesPerSecond: number | null;
  private blackholed = false;
  private partitioned = false;
  private readonly stalled: Record<ProxyDirection, boolean> = { forward: false, backward: false };
  private closing: Promise<void> | null = null;
  private readonly connectionsLive = new Set<ProxyConnection>();
  /** Every socket not yet closed, so `close` can wait for all of them. */
  private readonly sockets = new Set<net.Socket>();
  private readonly socketsClosedWaiters = new Set<() => void>();
  private counts = {
    connections: 0,
    connectionsRefused: 0,
    bytesForward: 0,
    bytesBackward: 0,
    droppedBytes: 0,
    queuedBytes: 0,
    queuedBytesPeak: 0,
    writeBufferedBytesPeak: 0,
  };
  /** The source of jitter, in [0, 1). */
  readonly random: () => number;

  private constructor(
    private readonly server: net.Server,
    private readonly options: FaultProxyOptions,
  ) {
    this.name = options.name ?? `proxy→${options.targetHost}:${options.targetPort}`;
    this.queuedBytesMax = options.queuedBytesMax ?? queuedBytesMaxDefault;
    assert(
      Number.isSafeInteger(this.queuedBytesMax) && this.queuedBytesMax > 0,
      `${this.name}: queuedBytesMax ${this.queuedBytesMax} is not a positive integer`,
    );
    this.random = options.random ?? Math.random;
    this.latencyMs = 0;
    this.jitterMs = 0;
    this.bandwidthBytesPerSecond = null;
    this.setLatency(options.latencyMs ?? 0, options.jitterMs ?? 0);
    this.setBandwidth(options.bandwidthBytesPerSecond ?? null);
    server.on('connection', (client: net.Socket) => this.accept(client));
    // Accept errors (EMFILE and the like) must not crash the process; the client simply is not served.
    server.on('error', ignoreError);
  }

  /** Starts listening; resolves once `port` is known. */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const server = net.createServer({ allowHalfOpen: true });
    const proxy = new FaultProxy(server, options);
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      server.once('error', onError);
      server.listen(options.listenPort ?? 0, options.listenHost ?? '127.0.0.1', () => {
        server.off('error', onError);
        resolve();
      });
    });
    const address = server.address();
    assert(address !== null && typeof address === 'object', `${proxy.name}: listener has no TCP address`);
    proxy.portListening = address.port;
    return proxy;
  }

  /** The port the proxy listens on. */
  get port(): number {
    return this.portListening;
  }

  /** Sets the one-way latency (both directions) and its jitter for bytes received from now on. */
  setLatency(latencyMs: number, jitterMs = 0): void {
    assert(Number.isFinite(latencyMs) && latencyMs >= 0 && latencyMs <= latencyMsMax, `${this.name}: latencyMs ${latencyMs} not in [0, ${latencyMsMax}]`);
    assert(Number.isFinite(jitterMs) && jitterMs >= 0 && jitterMs <= latencyMsMax, `${this.name}: jitterMs ${jitterMs} not in [0, ${latencyMsMax}]`);
    this.latencyMs = latencyMs;
    this.jitterMs = jitterMs;
  }

  /** Limits each direction of each connection to `bytesPerSecond`; null removes the limit. */
  setBandwidth(bytesPerSecond: number | null): void {
    assert(bytesPerSecond === null || (Number.isFinite(bytesPerSecond) && bytesPerSecond > 0), `${this.name}: bandwidth ${bytesPerSecond} B/s is not positive`);
    this.bandwidthBytesPerSecond = bytesPerSecond;
  }

  /**
   * A partition TCP cannot see: while on, bytes in both directions are dropped (and counted), connections
   * stay open, new connections are accepted but not connected to the target, and FINs and resets are held
   * until the path heals. Note that bytes dropped mid-stream leave a gap in the stream after healing.
   */
  blackhole(on: boolean): void {
    this.blackholed = on;
    if (!on) this.afterBlackhole();
  }

  /**
   * A one-way partition: while on, bytes going in `direction` (`forward`: client → target) are held, not
   * dropped, and delivered in order when it ends — as TCP retransmits across a path that lost one direction —
   * while the other direction flows. Held bytes are bounded like any queue (the source is paused past
   * `queuedBytesMax`). Resets still pass both ways: an endpoint that gives up on the connection is noticed.
   */
  stall(direction: ProxyDirection, on: boolean): void {
    this.stalled[direction] = on;
    if (!on) for (const connection of [...this.connectionsLive]) connection[direction].flush();
  }

  /** A partition the endpoints notice: while on, live connections are reset and new ones reset on accept. */
  partition(on: boolean): void {
    this.partitioned = on;
    if (on) this.resetConnections();
  }

  /** Ends every fault: blackhole, stalls and partition off (latency and bandwidth stay). */
  heal(): void {
    this.partition(false);
    this.stall('forward', false);
    this.stall('backward', false);
    this.blackhole(false);
  }

  /** Resets every current connection once; new connections are accepted as usual. */
  resetConnections(): void {
    for (const connection of [...this.connectionsLive]) connection.abort();
  }

  /** Counters since start. */
  stats(): FaultProxyStats {
    return { ...this.counts, connectionsOpen: this.connectionsLive.size };
  }

  /** Bytes queued for delivery now, over all connections and directions. */
  queuedBytes(): number {
    return this.counts.queuedBytes;
  }

  /** Closes the listener and resets every connection; resolves when all sockets are closed. */
  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.resetConnections();
    for (const socket of this.sockets) resetSocket(socket);
    await serverClosed;
    if (this.sockets.size > 0) await new Promise<void>((resolve) => this.socketsClosedWaiters.add(resolve));
  }

  // The methods below are for Pipe and ProxyConnection only.

  /** @internal */
  isBlackholed(): boolean {
    return this.blackholed;
  }

  /** @internal */
  isStalled(direction: ProxyDirection): boolean {
    return this.stalled[direction];
  }

  /** @internal */
  latency(): { latencyMs: number; jitterMs: number } {
    return { latencyMs: this.latencyMs, jitterMs: this.jitterMs };
  }

  /** @internal */
  bandwidth(): number | null {
    return this.bandwidthBytesPerSecond;
  }

  /** @internal */
  countDropped(bytes: number): void {
    this.counts.droppedBytes += bytes;
  }

  /** @internal */
  countDelivered(direction: ProxyDirection, chunk: Buffer, connection: number, heldMs: number): void {
    if (direction === 'forward') this.counts.bytesForward += chunk.length;
    else this.counts.bytesBackward += chunk.length;
    this.options.onData?.(direction, chunk, connection, heldMs);
  }

  /** @internal Tracks the total queued bytes and the peak of one pipe (`pipeQueuedBytes`, after the change). */
  noteQueued(bytesDelta: number, pipeQueuedBytes: number): void {
    this.counts.queuedBytes += bytesDelta;
    assert(this.counts.queuedBytes >= 0, `${this.name}: queued bytes went negative`);
    if (pipeQueuedBytes > this.counts.queuedBytesPeak) this.counts.queuedBytesPeak = pipeQueuedBytes;
  }

  /** @internal */
  noteWriteBuffered(bytes: number): void {
    if (bytes > this.counts.writeBufferedBytesPeak) this.counts.writeBufferedBytesPeak = bytes;
  }

  /** @internal Tracks a socket until it closes, and makes sure its errors never go unhandled. */
  track(socket: net.Socket): void {
    const untrack = (): void => {
      if (!this.sockets.delete(socket) || this.sockets.size > 0) return;
      for (const resolve of this.socketsClosedWaiters) resolve();
      this.socketsClosedWaiters.clear();
    };
    this.sockets.add(socket);
    socket.once('close', untrack);
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // A failed reset is the one error after which Node emits no 'close'; `close()` must not wait for it.
      if (error.syscall === 'reset') untrack();
    });
  }

  /** @internal */
  forget(connection: ProxyConnection): void {
    this.connectionsLive.delete(connection);
  }

  private accept(client: net.Socket): void {
    this.track(client);
    this.counts.connections += 1;
    if (this.closing !== null || this.partitioned || this.connectionsLive.size >= connectionsOpenMax) {
      this.counts.connectionsRefused += 1;
      resetSocket(client);
      return;
    }
    const connection = new ProxyConnection(this, client, this.counts.connections);
    this.connectionsLive.add(connection);
    if (!this.blackholed) connection.connectTarget(this.options.targetHost, this.options.targetPort);
  }

  /** The path is back: connect deferred targets, pass on held resets and FINs, resume delivery. */
  private afterBlackhole(): void {
    for (const connection of [...this.connectionsLive]) {
      if (connection.abortHeld) {
        connection.abort();
        continue;
      }
      if (connection.target === null) connection.connectTarget(this.options.targetHost, this.options.targetPort);
      connection.forward.flush();
      connection.backward.flush();
    }
  }
}

/** Mean Earth radius, for great-circle distances. */
const earthRadiusKm = 6371;
/** Light in glass fibre travels at about two thirds of c: 200 km per millisecond. */
const fibreKmPerMs = 200;
/** Real routes are longer than the great circle (cables follow coasts, routers add hops): about 1.5×. */
const pathInflation = 1.5;
/** Fixed cost of the last miles, switches and the kernel at both ends. */
const latencyMsBase = 2;

/**
 * A one-way latency estimate, in milliseconds, between two [latitude, longitude] points in degrees.
 * Model: the haversine great-circle distance, divided by the speed of light in fibre (200 km/ms), times a
 * path inflation of 1.5 for real cable routes, plus 2 ms of fixed cost, rounded to an integer. It matches
 * public inter-region ping tables within about 20% — good enough to make a local cluster feel like a WAN;
 * it models no queueing or congestion. The same point gives the fixed cost alone (2 ms).
 */
export function wanLatencyMs(a: [lat: number, lon: number], b: [lat: number, lon: number]): number {
  const radians = (degrees: number): number => (degrees * Math.PI) / 180;
  const [latA, lonA] = a;
  const [latB, lonB] = b;
  assert(Math.abs(latA) <= 90 && Math.abs(latB) <= 90, `latitude ${latA} or ${latB} is not in [-90, 90]`);
  const dLat = radians(latB - latA);
  const dLon = radians(lonB - lonA);
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(radians(latA)) * Math.cos(radians(latB)) * Math.sin(dLon / 2) ** 2;
  const distanceKm = 2 * earthRadiusKm * Math.asin(Math.min(1, Math.sqrt(h)));
  return Math.round((distanceKm / fibreKmPerMs) * pathInflation + latencyMsBase);
}

/** [latitude, longitude] of the cloud regions `tessera dev` can simulate, for `wanLatencyMs`. */
export const regionLocations: Record<string, [lat: number, lon: number]> = {
  'eu-west': [53.3, -6.3], // Dublin
  'eu-central': [50.1, 8.7], // Frankfurt
  'us-east': [38.9, -77.0], // Washington
  'us-west': [37.4, -122.1], // San Francisco Bay
  'ap-south': [19.1, 72.9], // Mumbai
  'ap-northeast': [35.7, 139.7], // Tokyo
  'ap-southeast': [1.3, 103.8], // Singapore
  'sa-east': [-23.5, -46.6], // São Paulo
};
