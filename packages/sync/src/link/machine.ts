/**
 * One peer link as a pure state machine, in the manner of etcd's raft `RawNode`: inputs (transport events,
 * decoded frames, answers of the replica, time) go in through `step`, effects (dial, send, close, read the log,
 * apply a batch, persist a cursor, install a policy, wake me at) come out; it does no I/O. The daemon's
 * WebSocket transport and the simulation's network run this same machine through the same driver (driver.ts).
 *
 * It owns: the dialer's handshake (the acceptor's first step is in the driver, before a hello names the
 * link), the lanes' senders (sender.ts), the receive queue and the order of acknowledgements (receive.ts), the
 * wait for a policy a peer announced before its batches are judged, liveness (pings, silence, ack timeouts),
 * back-off with full jitter, and offering this node's policy to a peer on an older version.
 */
import { assert, assertNever } from '@tessera/core';
import { RateGate, backoffMs } from '../cadence.js';
import { type Frame, type PolicyStamp } from '../protocol.js';
import { LinkSender, type SenderEffect, type SenderInput } from '../sender.js';
import { helloFor, welcomeMatches } from './handshake.js';
import { ReceiveQueue } from './receive.js';
import { type ConnId, type LinkConfig, type LinkEffect, type LinkInput, type LinkState, type LocalPolicy, closeCodes } from './types.js';

/** Counters of a link since start, for status pages and metrics. */
export interface LinkCounters {
  reconnects: number;
  received: { batches: number; entries: number; applied: number; wireBytes: number };
  policy: { rejectedByPeer: number; rejectedHere: number };
}

/** A link's protocol machine. */
export class LinkMachine {
  state: LinkState = 'idle';
  /** The current connection (null while none). */
  conn: ConnId | null = null;
  lastError: string | null = null;
  openSinceMs: number | null = null;
  peerPolicy: PolicyStamp | null = null;
  /** The peer's wall clock minus ours, estimated from the last pong (ms), or null. */
  clockSkewMs: number | null = null;
  readonly counters: LinkCounters = {
    reconnects: 0,
    received: { batches: 0, entries: 0, applied: 0, wireBytes: 0 },
    policy: { rejectedByPeer: 0, rejectedHere: 0 },
  };
  readonly lanes = new Map<string, LinkSender>();
  /** Per lane, the `last` of the newest batch from this peer made durable here (its seqs, in order). */
  private readonly deliveredLast = new Map<string, number>();
  private readonly receive = new ReceiveQueue();
  private dialer: { stage: 'challenge' | 'welcome'; dialerNonce: Uint8Array | null; acceptorNonce: Uint8Array | null } | null = null;
  private handshakeDeadlineMs: number | null = null;
  private lastHeardMs = 0;
  private nextPingAtMs: number | null = null;
  private attempt = 0;
  private dialAtMs: number | null = null;
  private installing = 0;
  private shutDown = false;
  private nowMsLast: number;

  constructor(
    readonly config: LinkConfig,
    private local: LocalPolicy,
    nowMs: number,
    private readonly newConn: () => ConnId,
  ) {
    this.nowMsLast = nowMs;
    // The lanes of a link share its rate limit; higher-priority lanes are served first.
    const gate = new RateGate(config.limits, nowMs);
    for (const lane of config.lanes) {
      this.lanes.set(lane.spec.id, new LinkSender(config.peer.node, config.self.node, config.forward, gate, nowMs, lane.fixed, lane.spec));
    }
  }

  /** What the link delivered from this peer in order on every lane: the lowest lane's last (0 if one has none). */
  get delivered(): number {
    let low = Infinity;
    for (const lane of this.lanes.keys()) low = Math.min(low, this.deliveredLast.get(lane) ?? 0);
    return Number.isFinite(low) ? low : 0;
  }

  /** True while received batches wait or are applied. */
  get applying(): boolean {
    return this.receive.size > 0;
  }

  /** Advances the machine by one input at link time `nowMs`. */
  step(input: LinkInput, nowMs: number, wallMs = nowMs): LinkEffect[] {
    assert(nowMs >= this.nowMsLast, 'the link clock went backwards');
    this.nowMsLast = nowMs;
    if ('conn' in input && input.kind !== 'accepted' && input.conn !== this.conn) return [];
    switch (input.kind) {
      case 'start':
        return this.config.role === 'dial' ? this.dial(nowMs) : [];
      case 'connected':
        this.state = 'handshaking';
        this.dialer = { stage: 'challenge', dialerNonce: input.nonce, acceptorNonce: null };
        return [];
      case 'accepted':
        return this.accepted(input.conn, input.policy, nowMs);
      case 'frame':
        this.lastHeardMs = nowMs;
        this.counters.received.wireBytes += input.wireBytes;
        return this.state === 'open' ? this.onFrame(input.frame, nowMs, wallMs) : this.onHandshake(input.frame, nowMs, wallMs);
      case 'closed':
        return this.onClosed(input.code, input.reason, input.random, nowMs);
      case 'cursor':
        return this.toLane(input.lane, { kind: 'open', cursor: input.cursor, head: input.head, floor: input.floor, committed: input.committed }, nowMs);
      case 'read':
        return this.toLane(
          input.lane,
          {
            kind: 'read',
            after: input.after,
            entries: input.entries,
            head: input.head,
            denied: input.denied,
            heads: input.heads,
            epoch: input.epoch,
            through: input.through,
          },
          nowMs,
        );
      case 'truncated':
        return [
          { kind: 'log', event: { event: 'link-catch-up', peer: this.config.peer.node, reason: 'log truncated past the cursor' } },
          ...this.toLane(input.lane, { kind: 'truncated', committed: input.committed, floor: input.floor, epoch: input.epoch }, nowMs),
        ];
      case 'scanned':
        return this.toLane(
          input.lane,
          { kind: 'scanned', after: input.after, entries: input.entries, next: input.next, denied: input.denied, heads: input.heads, epoch: input.epoch },
          nowMs,
        );
      case 'applied':
        return this.onApplied(input.refused, input.applied, nowMs);
      case 'failed':
        return this.close(closeCodes.protocol, `${input.what} failed: ${input.code}`);
      case 'installed':
        this.installing--;
        return [...this.onPolicy(input.policy, nowMs), ...this.pumpApply()];
      case 'policy-changed':
        return this.onPolicy(input.policy, nowMs);
      case 'facts-changed':
        // Batches judged before the change are judged again, as after a new policy.
        return this.state === 'open' ? this.toLanes({ kind: 'policy' }, nowMs) : [];
      case 'appended':
        return this.state === 'open' ? this.toLanes({ kind: 'appended', head: input.head }, nowMs) : [];
      case 'tick':
        return this.onTick(nowMs);
      case 'shutdown':
        this.shutDown = true;
        this.state = 'closed';
        return this.conn === null ? [] : [{ kind: 'close', conn: this.conn, code: closeCodes.shutdown, reason: 'node shutting down' }];
      default:
        return assertNever(input);
    }
  }

  // ---------------------------------------------------------------- connections

  private dial(nowMs: number): LinkEffect[] {
    if (this.shutDown) return [];
    this.conn = this.newConn();
    this.state = 'connecting';
    this.dialAtMs = null;
    this.dialer = { stage: 'challenge', dialerNonce: null, acceptorNonce: null };
    this.handshakeDeadlineMs = nowMs + this.config.timing.handshakeTimeoutMs;
    return [
      { kind: 'dial', conn: this.conn },
      { kind: 'wake', atMs: this.handshakeDeadlineMs },
    ];
  }

  private accepted(conn: ConnId, policy: PolicyStamp, nowMs: number): LinkEffect[] {
    if (this.shutDown) return [{ kind: 'close', conn, code: closeCodes.shutdown, reason: 'node shutting down' }];
    const effects: LinkEffect[] = [];
    // A peer that reconnects replaces its previous connection (which may be a silent zombie).
    if (this.conn !== null && this.conn !== conn) {
      effects.push({ kind: 'close', conn: this.conn, code: closeCodes.replaced, reason: 'replaced by a new connection' });
      this.detach();
    }
    this.conn = conn;
    this.peerPolicy = policy;
    return [...effects, ...this.established(nowMs)];
  }

  private onHandshake(frame: Frame, nowMs: number, wallMs: number): LinkEffect[] {
    const dialer = this.dialer;
    if (frame.t === 'refuse') return this.close(closeCodes.refused, `refused by ${this.config.peer.node}: ${frame.code}: ${frame.reason}`);
    if (dialer === null) return this.close(closeCodes.protocol, `unexpected ${frame.t} frame before the link is open`);
    if (dialer.stage === 'challenge' && frame.t === 'challenge' && dialer.dialerNonce !== null) {
      const hello = helloFor(this.config.self, frame, dialer.dialerNonce, this.local.stamp, wallMs);
      if ('reason' in hello) return this.close(closeCodes.protocol, hello.reason);
      dialer.acceptorNonce = frame.nonce;
      dialer.stage = 'welcome';
      return [{ kind: 'send', conn: this.conn!, frame: hello.frame }];
    }
    if (dialer.stage === 'welcome' && frame.t === 'welcome') {
      if (!welcomeMatches(this.config.self, frame, this.config.peer, dialer.acceptorNonce!, dialer.dialerNonce!)) {
        return this.close(closeCodes.refused, `peer at ${this.config.peer.url} failed authentication (expected ${this.config.peer.node})`);
      }
      this.peerPolicy = frame.policy;
      return this.established(nowMs);
    }
    return this.close(closeCodes.protocol, `unexpected ${frame.t} frame during the handshake`);
  }

  private established(nowMs: number): LinkEffect[] {
    this.state = 'open';
    this.dialer = null;
    this.handshakeDeadlineMs = null;
    this.openSinceMs = nowMs;
    this.lastHeardMs = nowMs;
    this.lastError = null;
    this.attempt = 0;
    this.nextPingAtMs = nowMs + this.config.timing.pingIntervalMs;
    const conn = this.conn!;
    const offered = this.offerPolicy();
    return [
      { kind: 'log', event: { event: 'link-open', peer: this.config.peer.node, peerRegion: this.config.peer.region, role: this.config.role } },
      // The peer may judge anew: offer again what it refused (after our policy, when we offer it one).
      ...offered,
      ...[...this.lanes.keys()].map((lane): LinkEffect => ({ kind: 'load-cursor', conn, lane })),
      { kind: 'wake', atMs: this.nextPingAtMs },
    ];
  }

  /** Forgets the connection: the senders forget what was in flight, the receive queue empties. */
  private detach(): void {
    for (const sender of this.lanes.values()) sender.step({ kind: 'closed' }, this.nowMsLast);
    this.receive.clear();
    this.conn = null;
    this.dialer = null;
    this.openSinceMs = null;
    this.nextPingAtMs = null;
    this.handshakeDeadlineMs = null;
  }

  private onClosed(code: number, reason: string, random: number, nowMs: number): LinkEffect[] {
    const wasOpen = this.state === 'open';
    this.detach();
    if (code !== closeCodes.shutdown || reason !== 'node shutting down') this.lastError ??= `closed (${code}${reason === '' ? '' : `: ${reason}`})`;
    const effects: LinkEffect[] = wasOpen ? [{ kind: 'log', event: { event: 'link-closed', peer: this.config.peer.node, code, reason } }] : [];
    if (this.shutDown) {
      this.state = 'closed';
      return effects;
    }
    if (this.config.role === 'accept') {
      this.state = 'idle';
      return effects;
    }
    this.state = 'backoff';
    this.counters.reconnects++;
    const delayMs = backoffMs(this.attempt++, random);
    this.dialAtMs = nowMs + delayMs;
    effects.push({ kind: 'log', event: { event: 'link-backoff', peer: this.config.peer.node, attempt: this.attempt, delayMs, lastError: this.lastError } });
    return [...effects, { kind: 'wake', atMs: this.dialAtMs }];
  }

  /** Closes the connection with a reason; the `closed` input that follows schedules what comes next. */
  private close(code: number, reason: string): LinkEffect[] {
    if (this.conn === null) return [];
    this.lastError = reason;
    return [
      { kind: 'log', event: { event: 'link-error', peer: this.config.peer.node, code, reason } },
      { kind: 'close', conn: this.conn, code, reason: reason.slice(0, 120) },
    ];
  }

  // ---------------------------------------------------------------- frames on an open link

  private onFrame(frame: Frame, nowMs: number, wallMs: number): LinkEffect[] {
    const conn = this.conn!;
    switch (frame.t) {
      case 'batch':
      case 'state':
        this.counters.received.batches++;
        this.counters.received.entries += frame.entries.length;
        if (!this.receive.push(frame)) return this.close(closeCodes.protocol, 'the peer sent more batches than the receive queue holds');
        return this.pumpApply();
      case 'ack': {
        const lane = this.lanes.get(frame.lane ?? 'main');
        if (lane === undefined) return this.close(closeCodes.protocol, `ack for unknown lane ${JSON.stringify(frame.lane)}`);
        const effects: LinkEffect[] = [];
        if (frame.refused !== undefined) {
          // Before the cursor moves past them: a refused entry is acknowledged, not handed over.
          this.counters.policy.rejectedByPeer += frame.refused.length;
          effects.push({ kind: 'refused-by-peer', seqs: frame.refused });
        }
        effects.push(...this.fromLane(lane, lane.step({ kind: 'ack', id: frame.id, last: frame.last }, nowMs)));
        if (frame.peer !== undefined) effects.push(...this.toLanes({ kind: 'peer-state', ...frame.peer }, nowMs));
        return effects;
      }
      case 'ping':
        return [
          { kind: 'send', conn, frame: { t: 'pong', ms: frame.ms, at: wallMs } },
          ...(frame.peer === undefined ? [] : this.toLanes({ kind: 'peer-state', ...frame.peer }, nowMs)),
        ];
      case 'pong':
        // The peer answered halfway through the round trip (on average): its clock minus ours.
        if (frame.at !== undefined && nowMs >= frame.ms) this.clockSkewMs = frame.at - (wallMs - (nowMs - frame.ms) / 2);
        return [];
      case 'policy':
        if (frame.version <= this.local.stamp.version) return [];
        // Batches that follow the frame wait for the install (pumpApply): they were sent under this version.
        this.installing++;
        return [{ kind: 'install-policy', version: frame.version, text: frame.text, signature: frame.signature ?? null }];
      default:
        return this.close(closeCodes.protocol, `unexpected ${frame.t} frame on an open link`);
    }
  }

  /**
   * Starts the next apply, unless one runs or a policy the peer sent is still being installed (the batches
   * that follow it were judged by the sender under that version). A version this node cannot install (it
   * stores another text under that number) leaves it judging by its own: refusals are then told as usual.
   */
  private pumpApply(): LinkEffect[] {
    if (this.conn === null || this.state !== 'open' || this.receive.applying || this.installing > 0) return [];
    const group = this.receive.take();
    if (group === null) return [];
    const traces = group.frames.flatMap((frame) => (frame.t === 'batch' ? (frame.traces ?? []) : []).map(([, trace]) => trace));
    return [{ kind: 'apply', conn: this.conn, entries: group.entries, traces }];
  }

  private onApplied(refused: readonly number[], applied: number, nowMs: number): LinkEffect[] {
    const conn = this.conn!;
    this.counters.received.applied += applied;
    this.counters.policy.rejectedHere += refused.length;
    const effects: LinkEffect[] = [];
    for (const ack of this.receive.applied(refused)) {
      const lane = ack.lane ?? 'main';
      this.deliveredLast.set(lane, Math.max(this.deliveredLast.get(lane) ?? 0, ack.last));
      effects.push({ kind: 'send', conn, frame: ack, peerState: true });
    }
    void nowMs;
    return [...effects, ...this.pumpApply()];
  }

  /** This node's policy changed (or was re-read): lanes judge again what they have not sent; peers get it. */
  private onPolicy(policy: LocalPolicy, nowMs: number): LinkEffect[] {
    const changed = policy.stamp.version !== this.local.stamp.version || policy.stamp.hash !== this.local.stamp.hash;
    this.local = policy;
    return [...(changed ? this.toLanes({ kind: 'policy' }, nowMs) : []), ...this.offerPolicy()];
  }

  /** Sends this node's policy to a peer whose handshake announced an older one. */
  private offerPolicy(): LinkEffect[] {
    if (this.conn === null || this.state !== 'open' || this.local.text === null) return [];
    if ((this.peerPolicy?.version ?? 0) >= this.local.stamp.version) return [];
    this.peerPolicy = this.local.stamp;
    const { signature } = this.local;
    // What the peer refused under its older version is offered again after the new one (its batches wait for
    // the install).
    return [
      {
        kind: 'send',
        conn: this.conn,
        frame: { t: 'policy', version: this.local.stamp.version, text: this.local.text, ...(signature === null ? {} : { signature }) },
      },
      { kind: 'reoffer-refused' },
    ];
  }

  // ---------------------------------------------------------------- time

  private onTick(nowMs: number): LinkEffect[] {
    if (this.dialAtMs !== null && nowMs >= this.dialAtMs && this.state === 'backoff') return this.dial(nowMs);
    if (this.handshakeDeadlineMs !== null && nowMs >= this.handshakeDeadlineMs && this.state !== 'open')
      return this.close(closeCodes.protocol, 'handshake timed out');
    // The driver arms a bounded number of timers (link-run.ts): a deadline whose wake found no room is asked
    // for again at every tick, so a burst of reconnects cannot lose the handshake timer of the live attempt.
    if (this.state !== 'open') return this.pendingDeadlines(nowMs);
    const timing = this.config.timing;
    if (nowMs - this.lastHeardMs > timing.pingIntervalMs * timing.silentIntervalsMax) {
      // Nothing heard for several intervals: a partition TCP cannot see. Reconnecting finds out.
      return this.close(closeCodes.protocol, `no frames from ${this.config.peer.node} for ${nowMs - this.lastHeardMs} ms`);
    }
    const sentAts = [...this.lanes.values()].map((lane) => lane.snapshot(nowMs).oldestInflightSentAtMs).filter((ms): ms is number => ms !== null);
    if (sentAts.length > 0 && nowMs - Math.min(...sentAts) > timing.ackTimeoutMs) {
      return this.close(closeCodes.protocol, `a batch sent ${nowMs - Math.min(...sentAts)} ms ago is still unacknowledged`);
    }
    const effects = this.toLanes({ kind: 'tick' }, nowMs);
    if (this.nextPingAtMs !== null && nowMs >= this.nextPingAtMs) {
      this.nextPingAtMs = nowMs + timing.pingIntervalMs;
      effects.push({ kind: 'send', conn: this.conn!, frame: { t: 'ping', ms: nowMs }, peerState: true });
    }
    return [...effects, ...this.pendingDeadlines(nowMs)];
  }

  /** Wakes for the link's own deadlines still ahead: the next dial, the handshake's end, the next ping. */
  private pendingDeadlines(nowMs: number): LinkEffect[] {
    const ahead = [
      this.state === 'backoff' ? this.dialAtMs : null,
      this.state === 'open' ? null : this.handshakeDeadlineMs,
      this.state === 'open' ? this.nextPingAtMs : null,
    ];
    return ahead.filter((atMs): atMs is number => atMs !== null && atMs > nowMs).map((atMs): LinkEffect => ({ kind: 'wake', atMs }));
  }

  // ---------------------------------------------------------------- lanes

  private toLane(id: string, input: SenderInput, nowMs: number): LinkEffect[] {
    const lane = this.lanes.get(id);
    if (lane === undefined || this.state !== 'open') return [];
    return this.fromLane(lane, lane.step(input, nowMs));
  }

  private toLanes(input: SenderInput, nowMs: number): LinkEffect[] {
    return [...this.lanes.values()].flatMap((lane) => this.fromLane(lane, lane.step(input, nowMs)));
  }

  private fromLane(lane: LinkSender, effects: readonly SenderEffect[]): LinkEffect[] {
    const conn = this.conn;
    if (conn === null) return [];
    const id = lane.lane.id;
    return effects.flatMap((effect): LinkEffect[] => {
      switch (effect.kind) {
        case 'read':
          return [{ kind: 'read', conn, lane: id, after: effect.after, limit: effect.limit, epoch: effect.epoch }];
        case 'scan':
          return [{ kind: 'scan', conn, lane: id, after: effect.after, limit: effect.limit, epoch: effect.epoch }];
        case 'send':
          return [
            {
              kind: 'send',
              conn,
              frame: { t: effect.frame, id: effect.id, last: effect.last, entries: effect.entries, ...(id === 'main' ? {} : { lane: id }) },
            },
          ];
        case 'persist-cursor':
          return [{ kind: 'persist-cursor', lane: id, cursor: effect.cursor }];
        case 'wake':
          return [{ kind: 'wake', atMs: effect.atMs }];
        case 'protocol-error':
          return this.close(closeCodes.protocol, effect.reason);
        default:
          return assertNever(effect);
      }
    });
  }
}
