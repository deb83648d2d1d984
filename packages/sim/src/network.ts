/**
 * The simulated network: connections between nodes that behave like WebSockets over TCP (in order, a close
 * handshake, a reset when a process dies), with the faults a WAN and a bad middlebox add: latency by region
 * pair with jitter and spikes, symmetric and one-way partitions, and — inside a connection, as a faulty proxy
 * would — loss, duplication and reordering of messages.
 *
 * A message sent across a partition is lost (TCP would retransmit it after the partition heals; the link's
 * own liveness checks give up on the connection sooner, so losing it is the harsher model).
 */
import { assert } from '@tessera/core';
import { type Random } from './random.js';

/** One end of a connection, as its owner sees it (ws readyState). */
export type SocketState = 'connecting' | 'open' | 'closing' | 'closed';

/** What the owner of an endpoint is told. */
export interface EndpointHandler {
  onOpen(): void;
  onMessage(bytes: Uint8Array): void;
  onClose(code: number, reason: string): void;
}

/** One end of a connection. */
export interface Endpoint {
  readonly node: string;
  readonly incarnation: number;
  state: SocketState;
  handler: EndpointHandler | null;
}

/** A connection: the dialer's end and the acceptor's end. */
export interface SimConn {
  readonly id: number;
  readonly dialer: Endpoint;
  readonly acceptor: Endpoint;
  /** Per direction, when the last in-order message arrives (TCP delivers in order). */
  readonly lastAtMs: { toAcceptor: number; toDialer: number };
}

/** Message faults inside connections (phase one only). */
export interface MessageFaults {
  lossProbability: number;
  duplicateProbability: number;
  reorderProbability: number;
  spikeProbability: number;
}

/** How long a closing endpoint waits for the peer's close frame before it gives up (ws' default). */
export const closeTimeoutMs = 30_000;
/** WebSocket close code for an abnormal closure (no close frame). */
export const abnormalCloseCode = 1006;

/** What the network needs from the simulation. */
export interface NetworkHost {
  readonly nowMs: number;
  at(atMs: number, label: string, run: () => void | Promise<void>): void;
  /** The live incarnation of a node, or null while it is down. */
  incarnationOf(node: string): number | null;
  regionOf(node: string): string;
  jurisdictionOf(region: string): string;
  /** A new connection arrived at `node` (its process is up): it installs the acceptor's handler. */
  accept(node: string, conn: SimConn): void;
  /** A message reached a live endpoint's process (before its handler sees it). */
  delivered(conn: SimConn, from: string, to: string, bytes: Uint8Array): void;
}

/** The simulated network. */
export class SimNetwork {
  private connIdNext = 1;
  private readonly conns = new Set<SimConn>();
  /** Directed pairs `from>to` whose packets are dropped. */
  private readonly blocked = new Set<string>();
  faults: MessageFaults = { lossProbability: 0, duplicateProbability: 0, reorderProbability: 0, spikeProbability: 0 };
  readonly stats = { messages: 0, lost: 0, duplicated: 0, reordered: 0, partitionDrops: 0, connections: 0 };

  constructor(
    private readonly host: NetworkHost,
    private readonly random: Random,
  ) {}

  /** Blocks packets from `from` to `to` (one way). */
  block(from: string, to: string): void {
    this.blocked.add(`${from}>${to}`);
  }

  /** Heals every partition. */
  healAll(): void {
    this.blocked.clear();
  }

  /** Unblocks one direction. */
  unblock(from: string, to: string): void {
    this.blocked.delete(`${from}>${to}`);
  }

  /** The blocked directions, for traces. */
  get partitions(): string[] {
    return [...this.blocked].sort();
  }

  reachable(from: string, to: string): boolean {
    return !this.blocked.has(`${from}>${to}`);
  }

  /** One-way latency: a few ms inside a jurisdiction, tens across; jitter; rare spikes in phase one. */
  private latencyMs(from: string, to: string): number {
    const a = this.host.regionOf(from);
    const b = this.host.regionOf(to);
    const base = a === b ? 1 : this.host.jurisdictionOf(a) === this.host.jurisdictionOf(b) ? 6 : 40;
    let ms = base + this.random.exp(2);
    if (this.faults.spikeProbability > 0 && this.random.chance(this.faults.spikeProbability)) ms += this.random.exp(400);
    return ms;
  }

  /** Dials `to` from `from`: the acceptor learns of it one way later, the dialer's socket opens a round trip later. */
  connect(from: string, fromIncarnation: number, to: string, handler: EndpointHandler): SimConn {
    const conn: SimConn = {
      id: this.connIdNext++,
      dialer: { node: from, incarnation: fromIncarnation, state: 'connecting', handler },
      acceptor: { node: to, incarnation: -1, state: 'connecting', handler: null },
      lastAtMs: { toAcceptor: 0, toDialer: 0 },
    };
    this.stats.connections++;
    this.conns.add(conn);
    if (!this.reachable(from, to)) return conn; // SYN lost: the dialer's handshake timer gives up
    const there = this.host.nowMs + this.latencyMs(from, to);
    this.host.at(there, `net:syn ${from}>${to}#${conn.id}`, () => {
      if (!this.alive(conn.dialer)) return;
      const incarnation = this.host.incarnationOf(to);
      if (incarnation === null) {
        // Host up, process down: connection refused, if the reset gets back.
        if (this.reachable(to, from))
          this.host.at(this.host.nowMs + this.latencyMs(to, from), `net:refused #${conn.id}`, () =>
            this.closeLocal(conn.dialer, abnormalCloseCode, 'ECONNREFUSED'),
          );
        return;
      }
      (conn.acceptor as { incarnation: number }).incarnation = incarnation;
      conn.acceptor.state = 'open';
      // The dialer's socket opens before anything the acceptor sends can reach it.
      if (this.reachable(to, from)) {
        conn.lastAtMs.toDialer = Math.max(conn.lastAtMs.toDialer, this.host.nowMs + this.latencyMs(to, from));
        this.host.at(conn.lastAtMs.toDialer, `net:open #${conn.id}`, () => {
          if (!this.alive(conn.dialer) || conn.dialer.state !== 'connecting') return;
          conn.dialer.state = 'open';
          conn.dialer.handler?.onOpen();
        });
      }
      this.host.accept(to, conn);
    });
    return conn;
  }

  private alive(end: Endpoint): boolean {
    return this.host.incarnationOf(end.node) === end.incarnation && end.state !== 'closed';
  }

  private ends(conn: SimConn, from: string): { self: Endpoint; peer: Endpoint; dir: 'toAcceptor' | 'toDialer' } {
    if (conn.dialer.node === from) return { self: conn.dialer, peer: conn.acceptor, dir: 'toAcceptor' };
    assert(conn.acceptor.node === from, `node ${from} is an end of connection ${conn.id}`);
    return { self: conn.acceptor, peer: conn.dialer, dir: 'toDialer' };
  }

  /** Sends a message from `from`'s end (which must be open). */
  send(conn: SimConn, from: string, bytes: Uint8Array): void {
    const { self, peer, dir } = this.ends(conn, from);
    if (self.state !== 'open') return;
    this.stats.messages++;
    if (!this.reachable(from, peer.node)) {
      this.stats.partitionDrops++;
      return;
    }
    if (this.random.chance(this.faults.lossProbability)) {
      this.stats.lost++;
      return;
    }
    const copies = this.random.chance(this.faults.duplicateProbability) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      let atMs = this.host.nowMs + this.latencyMs(from, peer.node);
      if (this.random.chance(this.faults.reorderProbability)) {
        // Out of order: later than it should be, and not holding back what follows.
        this.stats.reordered++;
        atMs += this.random.exp(80);
      } else {
        atMs = Math.max(atMs, conn.lastAtMs[dir]);
        conn.lastAtMs[dir] = atMs;
      }
      this.host.at(atMs, `net:msg ${from}>${peer.node}#${conn.id}`, () => {
        if (!this.alive(peer) || peer.state === 'connecting') return;
        this.host.delivered(conn, from, peer.node, bytes);
        peer.handler?.onMessage(bytes);
      });
    }
  }

  /** ws.close(): a close frame to the peer; the close event fires when its reply arrives, or after a timeout. */
  close(conn: SimConn, from: string, code: number, reason: string): void {
    const { self, peer, dir } = this.ends(conn, from);
    if (self.state === 'closed' || self.state === 'closing') return;
    if (self.state === 'connecting') {
      this.terminate(conn, from);
      return;
    }
    self.state = 'closing';
    const incarnation = self.incarnation;
    this.host.at(this.host.nowMs + closeTimeoutMs, `net:close-timeout #${conn.id}`, () => {
      if (self.incarnation === incarnation) this.closeLocal(self, abnormalCloseCode, '');
    });
    if (!this.reachable(from, peer.node)) return;
    const atMs = Math.max(this.host.nowMs + this.latencyMs(from, peer.node), conn.lastAtMs[dir]);
    conn.lastAtMs[dir] = atMs;
    this.host.at(atMs, `net:close-frame ${from}>${peer.node}#${conn.id}`, () => {
      if (!this.alive(peer)) return;
      // The peer answers with its own close frame and closes.
      const back = dir === 'toAcceptor' ? 'toDialer' : 'toAcceptor';
      if (this.reachable(peer.node, from)) {
        const replyAt = Math.max(this.host.nowMs + this.latencyMs(peer.node, from), conn.lastAtMs[back]);
        conn.lastAtMs[back] = replyAt;
        this.host.at(replyAt, `net:close-reply #${conn.id}`, () => {
          if (this.alive(self)) this.closeLocal(self, code, reason);
        });
      }
      this.closeLocal(peer, code, reason);
    });
  }

  /** ws.terminate(): the socket is destroyed at once; the peer sees the connection drop if a packet gets there. */
  terminate(conn: SimConn, from: string): void {
    const { self, peer } = this.ends(conn, from);
    if (self.state === 'closed') return;
    self.state = 'closed';
    const handler = self.handler;
    this.host.at(this.host.nowMs, `net:terminated #${conn.id}`, () => handler?.onClose(abnormalCloseCode, ''));
    this.resetPeer(conn, self, peer);
  }

  /** A process died: its sockets vanish without events there; peers get a reset if it reaches them. */
  crashed(node: string, incarnation: number): void {
    for (const conn of [...this.conns]) {
      for (const [self, peer] of [
        [conn.dialer, conn.acceptor],
        [conn.acceptor, conn.dialer],
      ] as const) {
        if (self.node !== node || self.incarnation !== incarnation || self.state === 'closed') continue;
        self.state = 'closed';
        self.handler = null;
        this.resetPeer(conn, self, peer);
      }
    }
  }

  private resetPeer(conn: SimConn, self: Endpoint, peer: Endpoint): void {
    if (peer.state === 'closed' || peer.state === 'connecting') {
      this.forget(conn);
      return;
    }
    if (!this.reachable(self.node, peer.node)) return;
    this.host.at(this.host.nowMs + this.latencyMs(self.node, peer.node), `net:reset ${self.node}>${peer.node}#${conn.id}`, () => {
      if (this.alive(peer)) this.closeLocal(peer, abnormalCloseCode, '');
    });
  }

  private closeLocal(end: Endpoint, code: number, reason: string): void {
    if (end.state === 'closed') return;
    end.state = 'closed';
    end.handler?.onClose(code, reason);
  }

  private forget(conn: SimConn): void {
    if (conn.dialer.state === 'closed' && conn.acceptor.state === 'closed') this.conns.delete(conn);
  }

  /** Drops closed connections from the registry (they hold no state any more). */
  sweep(): void {
    for (const conn of [...this.conns]) this.forget(conn);
  }
}
