/**
 * Forwarding, for one stream: a node's log holds what it received too, so a third node's change can reach a
 * peer through this node while the peer's own link to that change's origin is down — and only then: in a
 * healthy mesh every change goes once per target, from its origin. The peer reports, per origin, what it
 * received from that origin directly and in order (`have`, contiguous), and which of its links are down.
 */
import { type LogEntry } from '@tessera/store';

/** What a stream knows of its peer's links. */
export class Forwarding {
  private readonly peerHave = new Map<string, number>();
  private peerDown = new Set<string>();
  /**
   * Third-origin entries skipped because the peer's own link to their origin was up: per origin, the lowest
   * log position and the highest origin sequence number not yet confirmed by the peer's report. If that link
   * goes down first, the stream rewinds to the position and forwards what the peer still lacks.
   */
  private readonly direct = new Map<string, { seqMin: number; originSeqMax: number }>();

  /** Whether to send a third node's entry: only to a peer that lacks it and cannot get it directly. */
  shouldForward(entry: LogEntry): boolean {
    if ((this.peerHave.get(entry.origin) ?? 0) >= entry.originSeq) return false;
    if (this.peerDown.has(entry.origin)) return true;
    // The origin sends it directly; remember it in case that link fails before it arrives.
    const direct = this.direct.get(entry.origin);
    if (direct === undefined) this.direct.set(entry.origin, { seqMin: entry.seq, originSeqMax: entry.originSeq });
    else direct.originSeqMax = Math.max(direct.originSeqMax, entry.originSeq);
    return false;
  }

  /** The peer's report; returns the log position to rewind to (null: none) to forward what it now lacks. */
  peerState(have: Readonly<Record<string, number>>, down: readonly string[]): number | null {
    for (const [origin, originSeq] of Object.entries(have)) {
      if (originSeq > (this.peerHave.get(origin) ?? 0)) this.peerHave.set(origin, originSeq);
    }
    const nowDown = new Set(down);
    let rewindTo: number | null = null;
    for (const [origin, direct] of this.direct) {
      if ((this.peerHave.get(origin) ?? 0) >= direct.originSeqMax) this.direct.delete(origin);
      else if (nowDown.has(origin)) {
        // The peer lost its link to the origin before it got these: forward them after all.
        rewindTo = Math.min(rewindTo ?? Infinity, direct.seqMin - 1);
        this.direct.delete(origin);
      }
    }
    this.peerDown = nowDown;
    return rewindTo;
  }
}
