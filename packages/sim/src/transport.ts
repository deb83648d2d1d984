/**
 * The simulated network as a sync transport (host.ts of @tessera/sync): connection ids of the driver mapped
 * to simulated connections, peers addressed as `sim://<node>`. Every frame a node puts on the wire is shown
 * to the observer before it leaves, decoded, so the checks judge what really went out.
 */
import { type ConnEvents, type ConnId, type Transport, decodeFrame } from '@tessera/sync';
import { type LogEntry } from '@tessera/store';
import { type EndpointHandler, type SimConn, type SimNetwork } from './network.js';

/** The sim's address of a node. */
export function simUrl(node: string): string {
  return `sim://${node}`;
}

function handlerOf(events: ConnEvents): EndpointHandler {
  return { onOpen: () => events.open(), onMessage: (bytes) => events.message(bytes), onClose: (code, reason) => events.close(code, reason) };
}

/** One incarnation's transport. */
export class SimTransport implements Transport {
  private readonly conns = new Map<ConnId, SimConn>();

  constructor(
    private readonly network: SimNetwork,
    private readonly node: string,
    private readonly incarnation: number,
    private readonly onSent: (peer: string, entries: readonly LogEntry[]) => void,
  ) {}

  dial(conn: ConnId, url: string, events: ConnEvents): void {
    const peer = url.slice('sim://'.length);
    this.conns.set(conn, this.network.connect(this.node, this.incarnation, peer, handlerOf(events)));
  }

  /** A connection the network delivered to this node, for a connection id of the driver. */
  accept(conn: ConnId, simConn: SimConn, events: ConnEvents): void {
    simConn.acceptor.handler = handlerOf(events);
    this.conns.set(conn, simConn);
  }

  send(conn: ConnId, bytes: Uint8Array): void {
    const simConn = this.conns.get(conn);
    if (simConn === undefined) return;
    const peer = simConn.dialer.node === this.node ? simConn.acceptor.node : simConn.dialer.node;
    // Frames are small to decode again; only data frames matter to the checks.
    if (bytes.length > 20) {
      const frame = decodeFrame(bytes);
      if (frame.t === 'batch' || frame.t === 'state') this.onSent(peer, frame.entries);
    }
    this.network.send(simConn, this.node, bytes);
  }

  close(conn: ConnId, code: number, reason: string): void {
    const simConn = this.conns.get(conn);
    if (simConn === undefined) return;
    this.network.close(simConn, this.node, code, reason);
  }
}
