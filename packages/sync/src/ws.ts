/**
 * A node's replication over WebSockets: the driver (driver.ts) with a production host — real time, Node's
 * timers and randomness, storage work as promises — and a WebSocket transport. The node with the lower id
 * dials, the other accepts (`handleUpgrade`, from the daemon's HTTPS server).
 *
 * Mutual TLS (issue 12 item 1; `tls` in the options, which the daemon always gives): a dialer presents its
 * node certificate, trusts the cluster CA only, and accepts the acceptor only if its certificate names the peer
 * it dialed (node and region; where it is reached does not matter, so links through proxies work). An acceptor
 * upgrades only a connection whose client certificate the cluster CA issued, and binds that identity to the
 * connection: its hello must claim it (acceptor.ts). Before that, a connection never gets a WebSocket, so an
 * unauthenticated connection holds no more than the HTTP parser's header buffer. Connections upgraded but not
 * yet past their hello are capped in total and per source address, and the handshake timeout ends them.
 * Without `tls` (in-process tests only) links are plain `ws://` and authenticated by the shared secret alone.
 */
import { randomBytes } from 'node:crypto';
import { type IncomingMessage } from 'node:http';
import { type Duplex } from 'node:stream';
import { type ConnectionOptions, type PeerCertificate, TLSSocket } from 'node:tls';
import { type ClientOptions, WebSocket, WebSocketServer, type RawData } from 'ws';
import { type Dot, TesseraError, errorCatalogue } from '@tessera/core';
import { type Replica } from '@tessera/store';
import { type RateLimits } from './cadence.js';
import { type AppliedEvent, SyncDriver } from './driver.js';
import { type ConnEvents, type SyncHost, type Transport } from './host.js';
import { type CertifiedPeer, clockOffsetMsMaxDefault } from './link/handshake.js';
import { type ConnId, type PeerConfig } from './link/types.js';
import { type LaneConfig } from './links.js';
import { frameBytesMax } from './protocol.js';
import { type LinkStatus, linkStatus, sampleRates } from './status.js';

/** A node's TLS material for peer links (PEM), and how an identity is read from a verified certificate. */
export interface SyncTls {
  readonly key: string;
  readonly cert: string;
  /** The cluster CA: the only issuer trusted, both ways. */
  readonly ca: string;
  /** The node and region a CA-verified certificate names; throws (`ERR_PEER_IDENTITY`) when it names none of this cluster. */
  readonly identityOf: (cert: PeerCertificate) => CertifiedPeer;
}

/** Options of a node's replication. */
export interface SyncOptions {
  readonly replica: Replica;
  readonly cluster: string;
  /** The cluster secret: a second factor on top of mutual TLS (a proof bound to both nonces and identities). */
  readonly secret: Uint8Array;
  /** Mutual TLS on peer links (`wss://` peer URLs); null or absent: plain `ws://` for in-process tests only. */
  readonly tls?: SyncTls | null;
  /** Refuse a peer whose wall clock is off ours by more than this at the handshake (default 500 ms). */
  readonly clockOffsetMsMax?: number;
  /** Incoming connections upgraded but not yet past their hello, in total and from one source address. */
  readonly handshakesPendingMax?: number;
  readonly handshakesPendingPerSourceMax?: number;
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
/** Incoming connections upgraded but not yet past their hello (each bounded by the handshake timeout). */
export const handshakesPendingMaxDefault = 64;
/** The same, from one source address. */
export const handshakesPendingPerSourceMaxDefault = 8;
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

/** How a dialer authenticates itself and its peer. */
interface DialTls {
  readonly tls: SyncTls;
  /** The peer a URL names, as the config says (its certificate must name the same). */
  readonly peerAt: (url: string) => CertifiedPeer | undefined;
}

/** WebSockets as a transport (host.ts). */
class WsTransport implements Transport {
  private readonly sockets = new Map<ConnId, WebSocket>();

  constructor(
    private readonly handshakeTimeoutMs: number,
    private readonly dialTls: DialTls | null,
  ) {}

  dial(conn: ConnId, url: string, events: ConnEvents): void {
    const options = { maxPayload: frameBytesMax, handshakeTimeout: this.handshakeTimeoutMs, perMessageDeflate: false };
    const dialTls = this.dialTls;
    let ws: WebSocket;
    if (dialTls === null) ws = new WebSocket(url, options);
    else {
      const { tls } = dialTls;
      const expected = dialTls.peerAt(url);
      const tlsOptions: ConnectionOptions = {
        key: tls.key,
        cert: tls.cert,
        ca: tls.ca,
        rejectUnauthorized: true,
        // The chain is verified against the cluster CA; this then decides who the peer is: the node and region
        // the config names at this URL, whatever host name or proxy it is reached through.
        checkServerIdentity: (_host: string, cert: PeerCertificate) => checkDialedIdentity(tls, cert, expected),
      };
      // ws hands these to tls.connect as they are (its typings still describe an old checkServerIdentity).
      ws = new WebSocket(url, { ...options, ...tlsOptions } as unknown as ClientOptions);
    }
    ws.on('open', () => events.open());
    this.register(conn, ws, events);
  }

  /** Attaches a socket (dialed, or accepted by the server) to a connection id. */
  register(conn: ConnId, ws: WebSocket, events: ConnEvents): void {
    ws.binaryType = 'nodebuffer';
    this.sockets.set(conn, ws);
    // A connection that fails before any close frame (TLS refused, the peer's certificate names someone else)
    // closes with 1006 and no reason: the error says why, by its code (messages of TLS errors hold no data).
    let failure = '';
    ws.on('message', (data: RawData) => events.message(toBytes(data)));
    ws.on('error', (error: Error & { code?: string }) => {
      failure = `${error.code ?? error.name}: ${error.message}`.slice(0, 300);
    });
    ws.once('close', (code, reason) => {
      this.sockets.delete(conn);
      const text = reason.toString();
      events.close(code, text === '' ? failure : text);
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

/** The dialer's check of the acceptor's (CA-verified) certificate: it names the peer dialed. */
function checkDialedIdentity(tls: SyncTls, cert: PeerCertificate, expected: CertifiedPeer | undefined): Error | undefined {
  let identity: CertifiedPeer;
  try {
    identity = tls.identityOf(cert);
  } catch (error) {
    return error as Error;
  }
  if (expected === undefined || identity.node !== expected.node || identity.region !== expected.region) {
    return new TesseraError(
      'ERR_PEER_IDENTITY',
      `the peer's certificate is for node ${identity.node} in region ${identity.region}, not ${expected?.node ?? '(no peer at this URL)'} in ${expected?.region ?? '-'}`,
    );
  }
  return undefined;
}

/** Answers an upgrade request that is refused with an HTTP error (no WebSocket is created) and closes. */
function refuseUpgrade(socket: Duplex, code: 'ERR_PEER_IDENTITY' | 'ERR_CONNECTIONS_EXCEEDED', detail: string): void {
  const { status } = errorCatalogue[code];
  const body = JSON.stringify({ type: `urn:tessera:error:${code}`, title: code, status, code, detail });
  socket.on('error', () => undefined);
  socket.end(
    [
      `HTTP/1.1 ${status} ${status === 403 ? 'Forbidden' : 'Service Unavailable'}`,
      'content-type: application/problem+json; charset=utf-8',
      `content-length: ${Buffer.byteLength(body)}`,
      'connection: close',
      '',
      body,
    ].join('\r\n'),
  );
  // Whatever the client still sends is never read: the socket goes once the answer is out.
  socket.once('finish', () => socket.destroy());
}

/** A node's replication with its peers over WebSockets. */
export class SyncNode {
  readonly driver: SyncDriver;
  private readonly transport: WsTransport;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: frameBytesMax });
  private readonly timers = new Set<NodeJS.Timeout>();
  private sampleTimer: NodeJS.Timeout | null = null;
  private readonly pingIntervalMs: number;
  private readonly tls: SyncTls | null;
  /** Connections upgraded (or upgrading) whose hello has not come yet, by source address. */
  private readonly handshakesPending = new Map<string, number>();
  private handshakesPendingTotal = 0;

  constructor(private readonly options: SyncOptions) {
    this.tls = options.tls ?? null;
    for (const peer of options.peers) {
      const scheme = new URL(peer.url).protocol;
      if (scheme !== (this.tls === null ? 'ws:' : 'wss:')) {
        throw new TesseraError(
          'ERR_CONFIG_INVALID',
          `peer ${peer.node}: URL ${peer.url} is ${scheme}//, but links ${this.tls === null ? 'without TLS are ws://' : 'are mutual TLS: wss://'}`,
        );
      }
    }
    const wallNow = options.wallClock ?? Date.now;
    const wallAtStartMs = wallNow();
    const monotonicAtStartMs = performance.now();
    this.pingIntervalMs = options.pingIntervalMs ?? pingIntervalMsDefault;
    const tls = this.tls;
    this.transport = new WsTransport(
      options.handshakeTimeoutMs ?? handshakeTimeoutMsDefault,
      tls === null
        ? null
        : {
            tls,
            peerAt: (url) => options.peers.find((peer) => peer.url === url),
          },
    );
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
        work().then(
          (value) => done({ ok: true, value }),
          (error: unknown) => done({ ok: false, error }),
        );
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
      cluster: options.cluster,
      secret: options.secret,
      peers: options.peers,
      ...(options.limits === undefined ? {} : { limits: options.limits }),
      ...(options.forward === undefined ? {} : { forward: options.forward }),
      timing: {
        handshakeTimeoutMs: options.handshakeTimeoutMs ?? handshakeTimeoutMsDefault,
        pingIntervalMs: this.pingIntervalMs,
        silentIntervalsMax,
        ackTimeoutMs: options.ackTimeoutMs ?? ackTimeoutMsDefault,
      },
      lanes: options.lanes ?? [],
      ...(options.fixedCadenceMs === undefined ? {} : { fixedCadenceMs: options.fixedCadenceMs }),
      retentionIntervalMs: options.retentionIntervalMs ?? retentionIntervalMsDefault,
      logEntriesMax: options.logEntriesMax ?? logEntriesMaxDefault,
      deniedAuditIntervalMs: options.deniedAuditIntervalMs ?? deniedAuditIntervalMsDefault,
      ...(options.onPolicy === undefined ? {} : { onPolicy: options.onPolicy }),
      clockOffsetMsMax: options.clockOffsetMsMax ?? clockOffsetMsMaxDefault,
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

  /**
   * Hands an HTTP upgrade request for `/v1/replicate` to replication. With TLS, only a connection whose client
   * certificate the cluster CA issued is upgraded (403 `ERR_PEER_IDENTITY` otherwise), and its identity goes
   * with it to the acceptor; past the caps on pending handshakes it is refused (503 `ERR_CONNECTIONS_EXCEEDED`).
   */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.driver.isClosed) {
      socket.destroy();
      return;
    }
    let certified: CertifiedPeer | null = null;
    if (this.tls !== null) {
      const tlsSocket = request.socket;
      if (!(tlsSocket instanceof TLSSocket) || !tlsSocket.authorized) {
        const why = tlsSocket instanceof TLSSocket ? String(tlsSocket.authorizationError ?? 'no client certificate') : 'not a TLS connection';
        this.options.log?.({ event: 'peer-refused', code: 'ERR_PEER_IDENTITY', reason: why });
        refuseUpgrade(socket, 'ERR_PEER_IDENTITY', `a peer connection needs a client certificate issued by the cluster CA (${why})`);
        return;
      }
      try {
        certified = this.tls.identityOf(tlsSocket.getPeerCertificate());
      } catch (error) {
        this.options.log?.({ event: 'peer-refused', code: 'ERR_PEER_IDENTITY', reason: (error as Error).message });
        refuseUpgrade(socket, 'ERR_PEER_IDENTITY', (error as Error).message);
        return;
      }
    }
    const source = request.socket.remoteAddress ?? '';
    const fromSource = this.handshakesPending.get(source) ?? 0;
    const total = this.options.handshakesPendingMax ?? handshakesPendingMaxDefault;
    const perSource = this.options.handshakesPendingPerSourceMax ?? handshakesPendingPerSourceMaxDefault;
    if (this.handshakesPendingTotal >= total || fromSource >= perSource) {
      this.options.log?.({
        event: 'peer-refused',
        code: 'ERR_CONNECTIONS_EXCEEDED',
        handshakesPending: this.handshakesPendingTotal,
        fromSource,
        handshakesPendingMax: total,
        handshakesPendingPerSourceMax: perSource,
      });
      refuseUpgrade(
        socket,
        'ERR_CONNECTIONS_EXCEEDED',
        `${this.handshakesPendingTotal} peer handshakes pending (${fromSource} from this address); the limits are ${total} and ${perSource} from one address`,
      );
      return;
    }
    this.handshakesPendingTotal++;
    this.handshakesPending.set(source, fromSource + 1);
    let pending = true;
    const settle = () => {
      if (!pending) return;
      pending = false;
      this.handshakesPendingTotal--;
      const left = (this.handshakesPending.get(source) ?? 1) - 1;
      if (left === 0) this.handshakesPending.delete(source);
      else this.handshakesPending.set(source, left);
    };
    // The upgrade may fail (bad headers) without calling back: the socket's close settles it then.
    socket.once('close', settle);
    this.wss.handleUpgrade(request, socket, head, (ws) => {
      const { conn, events } = this.driver.accept(certified);
      // The first frame is the hello, judged at once: accepted or refused, the connection is no longer pending.
      this.transport.register(conn, ws, {
        open: () => events.open(),
        message: (bytes) => {
          settle();
          events.message(bytes);
        },
        close: (code, reason) => {
          settle();
          events.close(code, reason);
        },
      });
    });
  }

  /** Status of every link. */
  status(): { links: LinkStatus[] } {
    const nowMs = this.driver.host.now();
    const lastSeq = this.options.replica.lastSeq;
    return { links: [...this.driver.links.values()].map((link) => linkStatus(link, nowMs, lastSeq, this.options.fixedCadenceMs)) };
  }

  /** Per link: entries and bytes per dataset sent and received, and the estimated clock skew of the peer. */
  traffic(): Array<{
    peer: string;
    region: string;
    sent: ReadonlyMap<string, { entries: number; bytes: number }>;
    received: ReadonlyMap<string, { entries: number; bytes: number }>;
    clockSkewMs: number | null;
  }> {
    return [...this.driver.links.values()].map((link) => ({
      peer: link.machine.config.peer.node,
      region: link.machine.config.peer.region,
      sent: link.traffic.sent,
      received: link.traffic.received,
      clockSkewMs: link.machine.clockSkewMs,
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
      const done = open.every((link) =>
        [...link.machine.lanes.values()].every((sender) => {
          const view = sender.snapshot(nowMs);
          return view.cursor >= target || view.head < target;
        }),
      );
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
