/**
 * What crossed the links of a chaos run: every proxy's tap feeds a WebSocket decoder (a dialer's frames are
 * masked on the wire, so a raw byte search would see half the traffic), and each payload piece is searched for
 * write markers. A sighting records the marker, the region it was delivered to, the node that sent it and when
 * the sender wrote it (the proxy reads eagerly and says how long it held the chunk). The checker then judges
 * each sighting against the facts and policy versions the sender could have had (checker-wire.ts).
 */
import { WebSocketTap } from '../ws-tap.js';
import { type ChaosRegion, markerBytesMax, markerPrefix } from './model.js';
import { regionOfNode } from './schedule.js';

/** A marker delivered to `region` over `link` from `from`, written by the sender at `sentAtMs` (run time). */
export interface WireEvent {
  readonly marker: string;
  readonly region: ChaosRegion;
  readonly from: string;
  readonly link: string;
  readonly sentAtMs: number;
}

/** Bytes of one stream kept to find a marker split across two payload pieces. */
const carryBytes = markerBytesMax;

/** Scans what the proxies deliver. */
export class WireScanner {
  readonly events: WireEvent[] = [];
  /** Payload bytes searched, for the report. */
  bytesScanned = 0;
  private readonly tap: WebSocketTap;
  private readonly carry = new Map<string, Buffer>();
  /** A marker is recorded again for a region only when its sender may enforce a newer policy version than at the last sighting. */
  private readonly seen = new Map<string, number>();
  private readonly prefix = Buffer.from(markerPrefix);
  private sentAtMs = 0;

  /**
   * `now()`: run time in ms; `versionOf(node)`: the newest policy version the node was seen to enforce (the key
   * under which a repeated sighting is worth judging again).
   */
  constructor(
    private readonly now: () => number,
    private readonly versionOf: (node: string) => number,
  ) {
    this.tap = new WebSocketTap((stream, piece) => this.scan(stream, piece));
  }

  /** The proxies' `onData`. */
  readonly onData = (link: string, direction: 'forward' | 'backward', chunk: Buffer, connection: number, heldMs: number): void => {
    this.sentAtMs = this.now() - heldMs;
    this.tap.feed(`${link}:${direction}:${connection}`, chunk);
  };

  private scan(stream: string, piece: Buffer): void {
    const [link, direction] = stream.split(':') as [string, 'forward' | 'backward'];
    const [dialer, acceptor] = link.split('>') as [string, string];
    const [from, to] = direction === 'forward' ? [dialer, acceptor] : [acceptor, dialer];
    const region = regionOfNode(to);
    const previous = this.carry.get(stream);
    const bytes = previous === undefined ? piece : Buffer.concat([previous, piece]);
    this.carry.set(stream, Buffer.from(bytes.subarray(Math.max(0, bytes.length - carryBytes))));
    this.bytesScanned += piece.length;
    // Markers that lie wholly in the carried tail were seen with the previous piece.
    const firstNew = previous === undefined ? 0 : previous.length;
    for (let at = bytes.indexOf(this.prefix); at >= 0; at = bytes.indexOf(this.prefix, at + 1)) {
      const end = bytes.indexOf(0x2e, at); // '.'
      if (end < 0 || end - at >= markerBytesMax) continue;
      if (end < firstNew) continue;
      const marker = bytes.subarray(at, end + 1).toString('latin1');
      const version = this.versionOf(from);
      const key = `${marker}>${region}<${from}`;
      const last = this.seen.get(key);
      if (last !== undefined && last >= version) continue;
      this.seen.set(key, version);
      this.events.push({ marker, region, from, link, sentAtMs: this.sentAtMs });
    }
  }
}
