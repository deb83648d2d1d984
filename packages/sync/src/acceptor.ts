/**
 * The acceptor's side of the handshake, before a hello names the link: challenge every new connection, judge
 * the first frame as a hello (link/handshake.ts), welcome a peer this node accepts — its link's machine takes
 * the connection over — or refuse with a code and a reason. A connection that says nothing is refused when the
 * handshake timeout passes. Nothing of a connection is buffered before its hello is judged.
 *
 * A connection the transport authenticated (a verified TLS certificate) must claim that identity in its hello:
 * the link machine lets a newly accepted connection replace the live one (a peer that reconnects after a silent
 * failure), so the replace rule is decided here — only a connection of the peer's own identity reaches the link.
 * The dialer's clock, read into its hello, is bounded against this node's (`clockOffsetMsMax`).
 */
import { type ConnEvents } from './host.js';
import { type SyncDriver } from './driver.js';
import { codeOf } from './codes.js';
import { type CertifiedPeer, challengeFrame, judgeHello } from './link/handshake.js';
import { type ConnId, closeCodes } from './link/types.js';
import { type Frame, decodeFrame, encodeFrame, nonceBytes } from './protocol.js';

/** Connections waiting for their hello. */
export class Acceptor {
  private readonly pending = new Map<ConnId, { nonce: Uint8Array; cancel: () => void; certified: CertifiedPeer | null; challengedAtMs: number }>();

  /**
   * @param onMessage a frame on a connection whose hello named a link
   * @param onClosed the close of such a connection
   */
  constructor(
    private readonly driver: SyncDriver,
    private readonly onMessage: (conn: ConnId, bytes: Uint8Array) => void,
    private readonly onClosed: (conn: ConnId, code: number, reason: string) => void,
  ) {}

  /**
   * Takes a new incoming connection: challenges it; returns the handlers the transport calls. `certified`: the
   * identity its transport authenticated, or null.
   */
  accept(conn: ConnId, certified: CertifiedPeer | null = null): ConnEvents {
    const { host } = this.driver;
    if (this.driver.isClosed) {
      queueMicrotask(() => host.transport.close(conn, closeCodes.shutdown, 'node shutting down'));
      return { open: () => undefined, message: () => undefined, close: () => undefined };
    }
    const nonce = host.randomBytes(nonceBytes);
    const cancel = host.timer(this.driver.options.timing.handshakeTimeoutMs, 'accept-timeout', () =>
      this.refuse(conn, 'handshake-timeout', 'no hello in time'),
    );
    this.pending.set(conn, { nonce, cancel, certified, challengedAtMs: host.wallNow() });
    queueMicrotask(() => host.transport.send(conn, encodeFrame(challengeFrame(nonce))));
    return {
      open: () => undefined,
      message: (bytes) => (this.pending.has(conn) ? this.onHello(conn, bytes) : this.onMessage(conn, bytes)),
      close: (code, reason) => {
        const pending = this.pending.get(conn);
        if (pending === undefined) return this.onClosed(conn, code, reason);
        pending.cancel();
        this.pending.delete(conn);
      },
    };
  }

  /** Refuses every connection still waiting (the node stops). */
  refuseAll(code: string, reason: string): void {
    for (const conn of [...this.pending.keys()]) this.refuse(conn, code, reason);
  }

  private refuse(conn: ConnId, code: string, reason: string): void {
    const pending = this.pending.get(conn);
    if (pending === undefined) return;
    pending.cancel();
    this.pending.delete(conn);
    const { host } = this.driver;
    host.log({ event: 'peer-refused', code, reason });
    host.transport.send(conn, encodeFrame({ t: 'refuse', code, reason }));
    host.transport.close(conn, closeCodes.refused, code);
  }

  private onHello(conn: ConnId, bytes: Uint8Array): void {
    const pending = this.pending.get(conn)!;
    const { host, options, links } = this.driver;
    let frame: Frame;
    try {
      frame = decodeFrame(bytes);
    } catch (error) {
      this.refuse(conn, 'bad-frame', codeOf(error));
      return;
    }
    const self = { cluster: options.cluster, node: host.replica.node, region: host.replica.region, secret: options.secret };
    const offsetMsMax = options.clockOffsetMsMax;
    const timing = offsetMsMax === undefined ? null : { challengedAtMs: pending.challengedAtMs, receivedAtMs: host.wallNow(), offsetMsMax };
    const verdict = judgeHello(
      self,
      frame,
      pending.nonce,
      (node) => {
        const link = links.get(node);
        return link === undefined ? undefined : { region: link.machine.config.peer.region, role: link.machine.config.role };
      },
      host.replica.policyStamp(),
      { certified: pending.certified, timing },
    );
    if (!verdict.ok) {
      this.refuse(conn, verdict.code, verdict.reason);
      return;
    }
    pending.cancel();
    this.pending.delete(conn);
    const link = links.get(verdict.node)!;
    this.driver.byConn.set(conn, link);
    host.transport.send(conn, encodeFrame(verdict.welcome));
    this.driver.step(link, { kind: 'accepted', conn, policy: verdict.policy });
  }
}
