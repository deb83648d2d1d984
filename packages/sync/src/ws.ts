/**
 * A node's replication over WebSockets: the driver (driver.ts) with a production host — real time, Node's
 * timers and randomness, storage work as promises — and a WebSocket transport. The node with the lower id
 * dials, the other accepts (`handleUpgrade`, from the daemon's HTTP server).
 */
import { randomBytes } from 'node:crypto';
import { type IncomingMessage } from 'node:http';
import { type Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { type Dot } from '@tessera/core';
import { type Replica } from '@tessera/store';
import { type RateLimits } from './cadence.js';
import { type AppliedEvent, SyncDriver } from './driver.js';
import { type ConnEvents, type SyncHost, type Transport } from './host.js';
import { type ConnId, type PeerConfig } from './link/types.js';
import { type LaneConfig } from './links.js';
import { frameBytesMax } from './protocol.js';
import { type LinkStatus, linkStatus, sampleRates } from './status.js';

/** Options of a node's replication. */
export interface SyncOptions {
  readonly replica: Replica;
  readonly cluster: string;
  readonly secret: Uint8Array;
  readonly peers: readonly PeerConfig[];
  readonly limits?: RateLimits;
  /** Called after a newer policy version received from a peer was installed (the replica enforces it). */
  readonly onPolicy?: (event: { version: number; from: string }) => void;
  /** Forward a third node's changes to a peer that lacks them and reports its own link to that node down (default true). */
  readonly forward?: boolean;
  /** Structured events; never given keys or values. */
  readonly log?: (event: Record<string, unknown>) => void;
  readonly random?: () => number;
  readonly wallClock?: () => number;
  readonly handshakeTimeoutMs?: number;
  readonly pingIntervalMs?: number;
  readonly ackTimeoutMs?: number;
  /** How often the log is truncated (default 5 s). */
  readonly retentionIntervalMs?: number;
  /** How often the sends the policy denied are audited, one entry per link (default 30 s). */
  readonly deniedAuditIntervalMs?: number;
  /** The log's size bound in entries; past it, lagging peers are caught up from document states. */
  readonly logEntriesMax?: number;
  /** Flush every this many ms instead of adaptively (links staggered, ±10% jitter). */
  readonly fixedCadenceMs?: number;
  /** Lanes: groups of datasets with their own stream, cursor, priority and cadence on every link. */
  readonly lanes?: readonly LaneConfig[];
}

/** Log retention defaults. */
export const retentionIntervalMsDefault = 5_000;
export const logEntriesMaxDefault = 1_000_000;
/** Defaults. */
export const handshakeTimeoutMsDefault = 5_000;
export const pingIntervalMsDefault = 2_000;
/** A link that has heard nothing for this many ping intervals is presumed dead (a silent partition). */
export const silentIntervalsMax = 4;
/** A batch unacknowledged this long resets the link, and streaming resumes from the durable cursor. */
export const ackTimeoutMsDefault = 10_000;
/** Denied sends are audited in one entry per link and interval, not one per entry. */
export const deniedAuditIntervalMsDefault = 30_000;

function toBytes(data: RawData): Uint8Array {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return new Uint8Array(data);
}

/** WebSockets as a transport (host.ts). */
class WsTransport implements Transport {
  private readonly sockets = new Map<ConnId, WebSocket>();

  constructor(private readonly handshakeTimeoutMs: number) {}

  dial(conn: ConnId, url: string, events: ConnEvents): void {
    const ws = new WebSocket(url, { maxPayload: frameBytesMax, handshakeTimeout: this.handshakeTimeoutMs, perMessageDeflate: false });
    ws.on('open', () => events.open());
    this.register(conn, ws, events);
  }

  /** Attaches a socket (dialed, or accepted by the server) to a connection id. */
  register(conn: ConnId, ws: WebSocket, events: ConnEvents): void {
    ws.binaryType = 'nodebuffer';
    this.sockets.set(conn, ws);
    ws.on('message', (data: RawData) => events.message(toBytes(data)));
    ws.on('error', () => undefined);
    ws.once('close', (code, reason) => {
      this.sockets.delete(conn);
      events.close(code, reason.toString());
    });
  }

  send(conn: ConnId, bytes: Uint8Array): void {
    const ws = this.sockets.get(conn);
    if (ws !== undefined && ws.readyState === WebSocket.OPEN) ws.send(bytes);
  }

  close(conn: ConnId, code: number, reason: string): void {
    const ws = this.sockets.get(conn);
    if (ws === undefined) return;
    if (ws.readyState === WebSocket.OPEN) ws.close(code, reason);
    else ws.terminate();
  }

  /** Closes every socket at once (after the shutdown close frames had their chance). */
  terminateAll(): void {
    for (const ws of this.sockets.values()) ws.terminate();
  }
}

/** A node's replication with its peers over WebSockets. */
export class SyncNode {
  readonly driver: SyncDriver;
  private readonly transport: WsTransport;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: frameBytesMax });
  private readonly timers = new Set<NodeJS.Timeout>();
  private sampleTimer: NodeJS.Timeout | null = null;
  private readonly pingIntervalMs: number;

  constructor(private readonly options: SyncOptions) {
    const wallNow = options.wallClock ?? Date.now;
    const wallAtStartMs = wallNow();
    const monotonicAtStartMs = performance.now();
    this.pingIntervalMs = options.pingIntervalMs ?? pingIntervalMsDefault;
    this.transport = new WsTransport(options.handshakeTimeoutMs ?? handshakeTimeoutMsDefault);
    const log = options.log ?? (() => undefined);
    const host: SyncHost = {
      replica: options.replica,
      transport: this.transport,
      // The link clock is monotonic, started at the wall clock's reading: a wall clock can step back (NTP, a
      // restored VM), and the link machines assert that time never does. Whole milliseconds.
      now: () => wallAtStartMs + Math.floor(performance.now() - monotonicAtStartMs),
      wallNow: () => wallNow(),
      random: options.random ?? Math.random,
      randomBytes: (length) => new Uint8Array(randomBytes(length)),
      io: (_label, work, done) => {
        work().then((value) => done({ ok: true, value }), (error: unknown) => done({ ok: false, error }));
      },
      timer: (delayMs, _label, fn) => {
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          fn();
        }, delayMs);
        timer.unref();
        this.timers.add(timer);
        return () => {
          clearTimeout(timer);
          this.timers.delete(timer);
        };
      },
      log,
    };
    this.driver = new SyncDriver(host, {
      cluster: options.cluster, secret: options.secret, peers: options.peers, ...(options.limits === undefined ? {} : { limits: options.limits }),
      ...(options.forward === undefined ? {} : { forward: options.forward }),
      timing: {
        handshakeTimeoutMs: options.handshakeTimeoutMs ?? handshakeTimeoutMsDefault, pingIntervalMs: this.pingIntervalMs,
        silentIntervalsMax, ackTimeoutMs: options.ackTimeoutMs ?? ackTimeoutMsDefault,
      },
      lanes: options.lanes ?? [], ...(options.fixedCadenceMs === undefined ? {} : { fixedCadenceMs: options.fixedCadenceMs }),
      retentionIntervalMs: options.retentionIntervalMs ?? retentionIntervalMsDefault,
      logEntriesMax: options.logEntriesMax ?? logEntriesMaxDefault,
      deniedAuditIntervalMs: options.deniedAuditIntervalMs ?? deniedAuditIntervalMsDefault,
      ...(options.onPolicy === undefined ? {} : { onPolicy: options.onPolicy }),
    });
  }

  /** Starts dialing the peers this node dials, and the liveness pings. */
  start(): void {
    this.driver.start();
    this.sampleTimer = setInterval(() => {
      const nowMs = this.driver.host.now();
      for (const link of this.driver.links.values()) sampleRates(link, nowMs);
    }, this.pingIntervalMs);
    this.sampleTimer.unref();
  }

  /** Hands an HTTP upgrade request for `/v1/replicate` to replication. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.driver.isClosed) {
      socket.destroy();
      return;
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => {
      const { conn, events } = this.driver.accept();
      this.transport.register(conn, ws, events);
    });
  }

  /** Status of every link. */
  status(): { links: LinkStatus[] } {
    const nowMs = this.driver.host.now();
    const lastSeq = this.options.replica.lastSeq;
    return { links: [...this.driver.links.values()].map((link) => linkStatus(link, nowMs, lastSeq, this.options.fixedCadenceMs)) };
  }

  /** Per link: entries and bytes per dataset sent and received, and the estimated clock skew of the peer. */
  traffic(): Array<{ peer: string; region: string; sent: ReadonlyMap<string, { entries: number; bytes: number }>; received: ReadonlyMap<string, { entries: number; bytes: number }>; clockSkewMs: number | null }> {
    return [...this.driver.links.values()].map((link) => ({
      peer: link.machine.config.peer.node, region: link.machine.config.peer.region, sent: link.traffic.sent, received: link.traffic.received, clockSkewMs: link.machine.clockSkewMs,
    }));
  }

  /** Resolves true once this node's copy of (dataset, key) holds `dot`, false at `deadlineMs` (wall clock). */
  waitFor(dataset: string, key: string, dot: Dot, deadlineMs: number): Promise<boolean> {
    return this.driver.waitFor(dataset, key, dot, deadlineMs);
  }

  /** Remembers the trace id of a local write (sequence number `seq`), carried by the batches that send it. */
  noteTrace(seq: number, traceId: string): void {
    this.driver.noteTrace(seq, traceId);
  }

  /** Calls `listener` once each received batch is durable (for metrics; never given keys or values). */
  onApplied(listener: (event: AppliedEvent) => void): () => void {
    return this.driver.onApplied(listener);
  }

  /** After the enforced policy changed through the API: offer it to the peers. */
  policyChanged(): void {
    this.driver.policyChanged();
  }

  /** Truncates the log and settles handovers now; returns the log floor. */
  retain(): Promise<number> {
    return this.driver.retain();
  }

  /** Waits (up to `timeoutMs`) until every open link has acknowledged everything logged so far. */
  async flush(timeoutMs: number): Promise<boolean> {
    const target = this.options.replica.lastSeq;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const nowMs = this.driver.host.now();
      const open = [...this.driver.links.values()].filter((link) => link.machine.state === 'open');
      // A lane is done when the peer acknowledged the target, or when the lane has found that its log ends
      // before it (sequence numbers a crash left unused are never written, so no cursor reaches them).
      const done = open.every((link) => [...link.machine.lanes.values()].every((sender) => {
        const view = sender.snapshot(nowMs);
        return view.cursor >= target || view.head < target;
      }));
      if (done) return true;
      if (performance.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Closes every link and stops reconnecting. */
  async close(): Promise<void> {
    if (this.sampleTimer !== null) clearInterval(this.sampleTimer);
    await this.driver.close();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.transport.terminateAll();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
